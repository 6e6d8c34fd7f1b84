"""An answered INVITE never ACKed, whose Contact cannot be used as a target (#9.2).

At the ACK timeout the server ends the dialog: it must finish that cleanup whatever the Contact
holds (a Unicode digit or 5000 digits as port): BYE to where the INVITE came from, and the
unsolicited BYE frame to the app, as for a normal Contact (else the app's Dialog leaks).
"""
from __future__ import annotations

import pytest
from drachtio_ctl import SDP, response_for
from udp_peer import UdpSipPeer

T1 = 0.02


@pytest.fixture(scope="module")
def server_config() -> dict:
    return {"t1": T1}


@pytest.fixture
def app(app):
    assert app.route("invite").field(3) == "OK"
    return app


@pytest.mark.parametrize("port", ["\u00b2", "5" * 5000, "99999"], ids=["superscript", "5000-digits", "too-big"])
def test_ack_timeout_with_unusable_contact_still_byes_and_tells_the_app(server, app, port):
    peer = UdpSipPeer(server.sip_port)
    try:
        call_id = f"bad-contact-{len(port)}-{ord(port[0])}@127.0.0.1"
        peer.send(f"INVITE sip:service@127.0.0.1:{server.sip_port} SIP/2.0\n"
                  f"Via: SIP/2.0/UDP 127.0.0.1:{peer.port};branch=z9hG4bK-bc-{len(port)}-{ord(port[0])}\n"
                  f"From: <sip:caller@127.0.0.1:{peer.port}>;tag=caller-tag\n"
                  f"To: <sip:service@127.0.0.1:{server.sip_port}>\n"
                  f"Call-ID: {call_id}\nCSeq: 1 INVITE\n"
                  f"Contact: <sip:caller@127.0.0.1:{port}>\nMax-Forwards: 70\n"
                  f"Content-Type: application/sdp\n\n{SDP}")
        inv = app.sip_method("INVITE")
        echo = app.respond(inv.fields[8], response_for(inv.sip, 200, "OK", body=SDP))
        assert echo.field(3) == "OK"
        dialog_id = echo.fields[11]
        # never ACKed: after 64*T1 the app hears of the server's BYE
        frame = app.sip_method("BYE", timeout=64 * T1 + 10)
        assert frame.fields[8] == "unsolicited" and frame.fields[9] == dialog_id
        bye = peer.recv(lambda m: m.method == "BYE", timeout=5)
        assert bye.call_id == call_id and "ACK timeout" in (bye.get("reason") or "")
    finally:
        peer.close()
