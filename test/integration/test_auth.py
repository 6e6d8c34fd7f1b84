"""Digest authentication of requests the app sends: create_uac, srf.request, in-dialog requests."""
from __future__ import annotations

import queue

import pytest
from helpers import LOOPBACK
from itest_support import SDP, WAIT, Callback, camel, get, invoke

from drachtio_srf import SipError

CREDS = {"username": "bob", "password": "secret"}


def _uac(style, srf, uri, opts, progress=None):
    """create_uac in `style`, with optional progress callbacks (cb_request ...)."""
    if progress is None:
        return invoke(style, srf.create_uac, uri, opts=opts)
    if style == "callback":
        cb = Callback()
        srf.create_uac(uri, camel(opts), camel(progress), cb)
        return cb
    return srf.create_uac(uri, opts, progress)


@pytest.mark.parametrize("creds", ["dict", "function"])
def test_401_answered_with_credentials_and_call_completes(srf, far_end, style, creds):
    """A 401 is answered by a new INVITE carrying a valid digest; the call is set up."""
    sipp = far_end("uas-auth-401.xml")
    asked: queue.Queue = queue.Queue()

    def credentials(req, res):
        asked.put((req, res))
        return dict(CREDS)
    auth = CREDS if creds == "dict" else credentials
    sent: queue.Queue = queue.Queue()
    authenticated: queue.Queue = queue.Queue()

    def on_request(err, req):
        sent.put((err, req, req.get("CSeq"), req.call_id))
        req.on("authenticate", lambda new_req: authenticated.put(new_req))
    outcome = _uac(style, srf, f"sip:farend@{LOOPBACK}:{sipp.port}", {"local_sdp": SDP, "auth": auth},
                   {"cb_request": on_request})
    dialog = outcome.result(WAIT)
    err, req, first_cseq, call_id = get(sent, "cb_request")
    assert err is None
    new_req = get(authenticated, "the authenticate event")
    assert new_req is not req and new_req.call_id == call_id
    assert req.get("CSeq") == first_cseq, "the request the app holds keeps its own message"
    assert int(new_req.get("CSeq").split()[0]) == int(first_cseq.split()[0]) + 1
    assert new_req.get("Authorization").startswith("Digest ")
    assert new_req.get_parsed_header("From").params["tag"] == req.msg.from_tag
    assert sent.empty(), "cb_request is called once, not again for the retry"
    if creds == "function":
        got_req, got_res = get(asked, "the credentials function call")
        assert got_res.status == 401 and got_req.method == "INVITE"
    assert dialog.connected and dialog.sip.call_id == call_id
    invoke(style, dialog.destroy).result(WAIT)
    sipp.expect_success()


def test_407_with_wrong_credentials_fails_with_sip_error(srf, far_end, style):
    """A 407 is answered once with Proxy-Authorization; a second 407 fails create_uac."""
    sipp = far_end("uas-auth-407.xml")
    outcome = invoke(style, srf.create_uac, f"sip:farend@{LOOPBACK}:{sipp.port}",
                     opts={"local_sdp": SDP, "auth": {"username": "bob", "password": "wrong"}})
    err = outcome.exception(WAIT)
    assert isinstance(err, SipError), f"expected SipError, got {err!r}"
    assert err.status == 407
    assert "77ab" in err.res.get("Proxy-Authenticate")
    sipp.expect_success()


def test_options_with_auth_is_answered_after_the_challenge(srf, far_end, style):
    """srf.request OPTIONS with auth: the 401 (Basic and Digest offered) is answered with the
    digest and the app's response listener sees only the final 200."""
    sipp = far_end("uas-auth-options.xml")
    responses: queue.Queue = queue.Queue()
    uri = f"sip:farend@{LOOPBACK}:{sipp.port}"
    opts = {"method": "OPTIONS", "auth": CREDS}
    if style == "callback":
        def on_sent(err, req=None):
            if err is not None:
                responses.put(err)
                return
            req.on("response", lambda res, *rest: responses.put(res))
        srf.request(uri, opts, on_sent)
    else:
        req = srf.request(uri, **opts).result(WAIT)
        req.on("response", lambda res, *rest: responses.put(res))
    res = get(responses, "the response to OPTIONS")
    assert res.status == 200
    assert res.req.get("Authorization").startswith("Digest ")
    sipp.expect_success()
    assert responses.empty()


def test_drachtio_callback_style_credentials_and_challenged_bye(srf, far_end, style):
    """auth as fn(req, res, callback(err, username, password)) given to create_uac is also used
    for the dialog's BYE when the far end challenges it."""
    sipp = far_end("uas-auth-bye.xml")
    calls: queue.Queue = queue.Queue()

    def credentials(req, res, callback):
        calls.put(req.method)
        callback(None, "bob", "secret")
    dialog = invoke(style, srf.create_uac, f"sip:farend@{LOOPBACK}:{sipp.port}",
                    opts={"local_sdp": SDP, "auth": credentials}).result(WAIT)
    assert calls.empty()                          # the INVITE was not challenged
    invoke(style, dialog.destroy).result(WAIT)
    assert get(calls, "credentials asked for the BYE") == "BYE"
    sipp.expect_success()
