"""Requests the app sends inside a dialog: modify('hold'/'unhold'), info(), request()."""
from __future__ import annotations

import queue

from itest_support import SDP, WAIT, complete, get, invoke


def _answered_dialog(srf, server, far_end, style, scenario):
    answered: queue.Queue = queue.Queue()

    def on_invite(req, res):
        complete(style, lambda err, dialog: answered.put(err or dialog),
                 srf.create_uas, req, res, opts={"local_sdp": SDP})

    srf.invite(on_invite)
    sipp = far_end(scenario, server.sip_port)
    dialog = get(answered, "create_uas to complete")
    assert not isinstance(dialog, BaseException), f"create_uas failed: {dialog!r}"
    return sipp, dialog


def test_modify_hold_then_unhold(srf, server, far_end, style):
    """modify('hold') re-INVITEs with a=inactive, modify('unhold') with a=sendrecv (sipp checks
    both bodies); each gives the far end's answer SDP."""
    sipp, dialog = _answered_dialog(srf, server, far_end, style, "uac-expect-hold-unhold.xml")

    remote = invoke(style, dialog.modify, "hold").result(WAIT)
    assert "a=inactive" in remote and "o=farend 1001 2" in remote
    assert dialog.on_hold is True
    assert "a=inactive" in dialog.local.sdp and "a=sendrecv" not in dialog.local.sdp
    assert dialog.remote.sdp == remote

    remote = invoke(style, dialog.modify, "unhold").result(WAIT)
    assert "a=sendrecv" in remote and "o=farend 1001 3" in remote
    assert dialog.on_hold is False
    assert "a=sendrecv" in dialog.local.sdp and "a=inactive" not in dialog.local.sdp

    invoke(style, dialog.destroy).result(WAIT)
    sipp.expect_success()


def test_info_shortcut_and_request(srf, server, far_end, style):
    """dialog.info(...) and dialog.request(method='INFO') reach sipp; each gives the 200."""
    sipp, dialog = _answered_dialog(srf, server, far_end, style, "uac-expect-info-twice.xml")
    text = {"Content-Type": "text/plain"}

    res = invoke(style, dialog.info, opts={"headers": text, "body": "via-shortcut"}).result(WAIT)
    assert res.status == 200
    res = invoke(style, dialog.request,
                 opts={"method": "INFO", "headers": text, "body": "via-request"}).result(WAIT)
    assert res.status == 200

    invoke(style, dialog.destroy).result(WAIT)
    sipp.expect_success()
