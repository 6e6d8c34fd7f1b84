"""In-dialog requests the app drives by hand.  Third-party call control through dialog.request:
an offerless re-INVITE sent with request(method='INVITE', no_ack=True) gives back the far end's
200 and the ack function, and the app's answer goes in the ACK it sends with that function.  And
the shortcuts with no automatic use in a dialog: register(), cancel(), ack()."""
from __future__ import annotations

import pytest
from helpers import LOOPBACK
from itest_support import SDP, WAIT, Callback, invoke

SDP_3PCC = SDP.replace("s=drachtio-itest", "s=drachtio-3pcc")


@pytest.mark.parametrize("ack_arg", ["opts", "sdp"])
def test_request_invite_no_ack_gives_response_and_ack_function(srf, far_end, style, ack_arg):
    """The callback gets (err, res, ack), the Future {'res', 'ack'}; nothing is ACKed until the
    app calls ack, with {'body': sdp} as drachtio-srf or with the SDP itself; sipp checks the
    ACK carries that answer (s=drachtio-3pcc)."""
    sipp = far_end("api-uas-3pcc-reinvite.xml")
    dialog = invoke(style, srf.create_uac, f"sip:farend@{LOOPBACK}:{sipp.port}",
                    opts={"local_sdp": SDP}).result(WAIT)
    if style == "callback":
        cb = Callback()
        assert dialog.request({"method": "INVITE", "noAck": True}, cb) is dialog
        res, ack = cb.result(WAIT)
    else:
        got = dialog.request(method="INVITE", no_ack=True).result(WAIT)
        assert set(got) == {"res", "ack"}
        res, ack = got["res"], got["ack"]
    assert res.status == 200 and res.get("CSeq").endswith("INVITE")
    assert "s=farend-3pcc-offer" in res.body
    assert callable(ack)
    if ack_arg == "opts":
        ack({"body": SDP_3PCC, "headers": {"Content-Type": "application/sdp"}})
    else:
        ack(SDP_3PCC)
    assert dialog.connected
    invoke(style, dialog.destroy).result(WAIT)
    sipp.expect_success()


def test_register_cancel_and_ack_shortcuts_send_their_method_in_the_dialog(srf, far_end, style):
    """dialog.register() gives the far end's 200; dialog.cancel() and dialog.ack() get no
    response reported to the app (B5), so they give the request as sent once it is on the
    wire; sipp checks each method and its X-Shortcut header inside the dialog."""
    sipp = far_end("api-uas-register-cancel-ack.xml")
    dialog = invoke(style, srf.create_uac, f"sip:farend@{LOOPBACK}:{sipp.port}",
                    opts={"local_sdp": SDP}).result(WAIT)
    res = invoke(style, dialog.register, opts={"headers": {"X-Shortcut": "REGISTER"}}).result(WAIT)
    assert res.status == 200 and res.get("CSeq").endswith("REGISTER")
    for name in ("cancel", "ack"):
        sent = invoke(style, getattr(dialog, name), opts={"headers": {"X-Shortcut": name.upper()}}).result(WAIT)
        assert sent.method == name.upper() and sent.get("X-Shortcut") == name.upper()
        assert sent.call_id == dialog.sip.call_id
    assert dialog.connected
    invoke(style, dialog.destroy).result(WAIT)
    sipp.expect_success()
