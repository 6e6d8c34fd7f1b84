"""UPDATE during an early dialog (before the INVITE is answered), on the UAS and the UAC side."""
from __future__ import annotations

import queue

from helpers import LOOPBACK
from itest_support import SDP, WAIT, complete, get


def test_uas_update_listener_answers_then_call_is_answered(srf, server, far_end, style):
    """req.on('update') gets (upd_req, upd_res) for the caller's early UPDATE; then create_uas."""
    events: queue.Queue = queue.Queue()

    def on_invite(req, res):
        def on_update(upd_req, upd_res):
            events.put(("update", upd_req))
            complete(style, lambda err, msg: events.put(("update-sent", err, msg)),
                     upd_res.send, 200, opts={"body": SDP})
            complete(style, lambda err, dialog: events.put(("uas", err, dialog)),
                     srf.create_uas, req, res, opts={"local_sdp": SDP})
        req.on("update", on_update)
        res.send(180)

    srf.invite(on_invite)
    caller = far_end("early-uac-update.xml", server.sip_port)
    kind, upd = get(events, "the update event")
    assert kind == "update" and upd.method == "UPDATE" and "o=farend 1001 2" in upd.body
    kind, err, sent = get(events, "the 200 to the UPDATE")
    assert err is None and sent.status == 200 and sent.get("CSeq") == "2 UPDATE"
    kind, err, dialog = get(events, "create_uas")
    assert err is None, err
    caller.expect_success()
    assert dialog.sip.call_id == upd.get("Call-ID")


def test_uas_update_without_listener_gets_500_retry_after(srf, server, far_end):
    """Nobody listens for 'update': the library answers 500 with Retry-After: 5 by itself."""
    canceled: queue.Queue = queue.Queue()

    def on_invite(req, res):
        req.on("cancel", lambda *_: canceled.put(True))
        res.send(180)

    srf.invite(on_invite)
    caller = far_end("early-uac-update-500.xml", server.sip_port)
    assert get(canceled, "the caller's CANCEL after the 500") is True
    caller.expect_success()


def test_uac_answers_early_update_with_its_offer(srf, server, far_end, style):
    """create_uac: an UPDATE from the called party before the answer gets 200 with our offer."""
    callee = far_end("early-uas-update.xml")
    outcome: queue.Queue = queue.Queue()
    complete(style, lambda err, dialog: outcome.put((err, dialog)), srf.create_uac,
             f"sip:service@{LOOPBACK}:{callee.port}", opts={"local_sdp": SDP})
    err, dialog = get(outcome, "create_uac", WAIT)
    assert err is None, err
    assert "farend-answer" in dialog.remote.sdp
    dialog.destroy()
    callee.expect_success()
