"""Calls and requests the app places: create_uac (answered, busy, canceled), srf.request OPTIONS."""
from __future__ import annotations

import queue

from helpers import LOOPBACK
from itest_support import SDP, WAIT, get, invoke

from drachtio_srf import SipError


def test_create_uac_answered_then_destroy(srf, far_end, style):
    """create_uac to a sipp UAS gives a connected dialog; destroy sends the BYE sipp expects."""
    sipp = far_end("uas-answer.xml")
    uri = f"sip:farend@{LOOPBACK}:{sipp.port}"
    dialog = invoke(style, srf.create_uac, uri, opts={"local_sdp": SDP}).result(WAIT)

    assert dialog.type == "uac" and dialog.connected is True
    assert srf.find_dialog_by_id(dialog.id) is dialog
    assert dialog.local.sdp == SDP
    assert "s=farend-answer" in dialog.remote.sdp
    assert dialog.remote.uri.startswith(f"sip:farend@{LOOPBACK}:{sipp.port}")
    assert dialog.sip.remote_tag == "answer-1"
    assert dialog.sip.call_id and dialog.sip.local_tag

    invoke(style, dialog.destroy).result(WAIT)
    sipp.expect_success()
    assert dialog.connected is False
    assert srf.find_dialog_by_id(dialog.id) is None


def test_create_uac_busy_fails_with_sip_error(srf, far_end, style):
    """A 486 final fails create_uac with SipError(486) carrying the response."""
    sipp = far_end("uas-busy.xml")
    outcome = invoke(style, srf.create_uac, f"sip:farend@{LOOPBACK}:{sipp.port}",
                     opts={"local_sdp": SDP})
    err = outcome.exception(WAIT)
    sipp.expect_success()
    assert isinstance(err, SipError), f"expected SipError, got {err!r}"
    assert err.status == 486
    assert err.res is not None and err.res.status == 486


def test_create_uac_canceled_from_cb_request(srf, far_end, style):
    """req.cancel() on the INVITE handed to cb_request, once ringing, fails create_uac with 487."""
    sipp = far_end("uas-ring-cancel.xml")
    sent: queue.Queue = queue.Queue()
    ringing: queue.Queue = queue.Queue()
    progress = {"cb_request": lambda err, req: sent.put((err, req)),
                "cb_provisional": lambda res: ringing.put(res)}
    uri = f"sip:farend@{LOOPBACK}:{sipp.port}"
    if style == "callback":
        outcome = invoke(style, srf.create_uac, uri, {"localSdp": SDP},
                         {"cbRequest": progress["cb_request"], "cbProvisional": progress["cb_provisional"]})
    else:
        outcome = srf.create_uac(uri, {"local_sdp": SDP}, progress)

    err, req = get(sent, "cb_request with the sent INVITE")
    assert err is None and req.method == "INVITE"
    assert get(ringing, "the 180").status == 180
    req.cancel()
    err = outcome.exception(WAIT)
    sipp.expect_success()
    assert isinstance(err, SipError), f"expected SipError, got {err!r}"
    assert err.status == 487


def test_out_of_dialog_options(srf, far_end, style):
    """srf.request(uri, {method: 'OPTIONS'}) gives the sent request; its response event has 200."""
    sipp = far_end("uas-options.xml")
    responses: queue.Queue = queue.Queue()
    uri = f"sip:farend@{LOOPBACK}:{sipp.port}"
    if style == "callback":
        def on_sent(err, req=None):
            if err is not None:
                responses.put(err)
                return
            req.on("response", lambda res, *rest: responses.put(res))
        srf.request(uri, {"method": "OPTIONS", "headers": {"Subject": "ping"}}, on_sent)
    else:
        req = srf.request(uri, method="OPTIONS", headers={"Subject": "ping"}).result(WAIT)
        assert req.method == "OPTIONS" and req.get("Subject") == "ping"
        req.on("response", lambda res, *rest: responses.put(res))
    res = get(responses, "the OPTIONS response event")
    assert not isinstance(res, BaseException), f"srf.request failed: {res!r}"
    sipp.expect_success()
    assert res.status == 200
    assert res.get("Accept") == "application/sdp"
