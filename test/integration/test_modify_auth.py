"""dialog.modify with credentials: the far end challenges the re-INVITE (401) and accepts the
re-sent one; the new session is in place and the call goes on."""
from __future__ import annotations

from helpers import LOOPBACK
from itest_support import SDP, WAIT, invoke

CREDS = {"username": "bob", "password": "secret"}
NEW_SDP = SDP.replace("s=drachtio-itest", "s=drachtio-modified")


def test_reinvite_challenged_then_accepted(srf, far_end, style):
    sipp = far_end("uas-modify-auth.xml")
    dialog = invoke(style, srf.create_uac, f"sip:farend@{LOOPBACK}:{sipp.port}",
                    opts={"local_sdp": SDP}).result(WAIT)
    assert "s=farend-answer" in dialog.remote.sdp
    remote = invoke(style, dialog.modify, NEW_SDP, opts={"auth": CREDS}).result(WAIT)
    # the promise resolves with the far end's new SDP, taken from the 200 to the authenticated retry
    assert "s=farend-modified" in remote
    assert "s=farend-modified" in dialog.remote.sdp and "s=drachtio-modified" in dialog.local.sdp
    assert dialog.connected
    invoke(style, dialog.destroy).result(WAIT)
    sipp.expect_success()     # sipp verified the digest and the new offer, then got ACK and BYE
