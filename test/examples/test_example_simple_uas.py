"""examples/simple_uas.py, tested with the drachtio_srf pytest plugin's fixtures only: the Python
SIP peer calls it, and sipp too."""
from __future__ import annotations

from examples import simple_uas


def test_answers_with_callers_sdp_then_holds_and_unholds(srf, drachtio_server, sip_peer):
    simple_uas.install(srf, hold_after=0.05, unhold_after=0.05)

    call = sip_peer.invite(drachtio_server.sip_uri)

    assert call.status == 200
    assert call.final.get("user-agent") == "simple-uas"
    assert "c=IN IP4 0.0.0.0" in call.remote_sdp          # the caller's SDP, address blanked
    assert "m=audio 49170 RTP/AVP 0" in call.remote_sdp
    hold = call.wait_for("INVITE")                         # the re-INVITE putting us on hold
    assert "a=inactive" in hold.body or "a=sendonly" in hold.body
    unhold = call.wait_for("INVITE")
    assert "a=sendrecv" in unhold.body
    assert call.bye().status == 200


def test_sipp_call_completes(srf, drachtio_server, sipp):
    simple_uas.install(srf, hold_after=5, unhold_after=5)
    sipp("uac", drachtio_server).expect_success()


def test_port_defaults_to_the_servers_9022(monkeypatch):
    for name in ("DRACHTIO_HOST", "DRACHTIO_PORT", "DRACHTIO_SECRET"):
        monkeypatch.delenv(name, raising=False)
    assert simple_uas.server_address([]) == ("127.0.0.1", 9022, "cymru")
    monkeypatch.setenv("DRACHTIO_PORT", "9999")
    assert simple_uas.server_address([]) == ("127.0.0.1", 9999, "cymru")
    assert simple_uas.server_address(["10.0.0.1", "7000", "s"]) == ("10.0.0.1", 7000, "s")
