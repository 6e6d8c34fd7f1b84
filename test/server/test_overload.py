"""Overload: new requests get 503 with Retry-After instead of piling up in memory (#9.12)."""
from __future__ import annotations

import pytest
from drachtio_ctl import SDP, ControlClient, response_for
from udp_peer import UdpSipPeer

from drachtio_srf.server import EmbeddedServer


@pytest.fixture
def small_server():
    s = EmbeddedServer(admin_port=0, sip_port=0, max_pending=3, retry_after=7).start()
    yield s
    s.stop()


def invite(peer: UdpSipPeer, n: int) -> str:
    return (f"INVITE sip:service@127.0.0.1:{peer.server_port} SIP/2.0\n"
            f"Via: SIP/2.0/UDP 127.0.0.1:{peer.port};branch=z9hG4bK-ovl-{n}\n"
            f"From: <sip:peer@127.0.0.1:{peer.port}>;tag=ovl-{n}\n"
            f"To: <sip:service@127.0.0.1>\nCall-ID: ovl-{n}@test\nCSeq: 1 INVITE\n"
            f"Contact: <sip:peer@127.0.0.1:{peer.port}>\nMax-Forwards: 70\n"
            f"Content-Type: application/sdp\n\n{SDP}")


def test_new_requests_beyond_max_pending_get_503_retry_after(small_server):
    app = ControlClient(small_server.admin_port)
    peer = UdpSipPeer(small_server.sip_port)
    try:
        app.authenticate()
        assert app.route("invite").field(3) == "OK"
        delivered = []
        for n in range(3):
            peer.send(invite(peer, n))
            delivered.append(app.sip_method("INVITE"))
        # the app answers none of them: the next two are refused by the server itself
        for n in (3, 4):
            peer.send(invite(peer, n))
            resp = peer.recv(lambda m: m.status is not None and m.status >= 200)
            assert resp.status == 503 and resp.call_id == f"ovl-{n}@test"
            assert resp.get("retry-after") == "7"
        # one is answered: room for a new one again
        f = delivered[0]
        assert app.respond(f.field(8), response_for(f.sip, 486, "Busy Here")).field(3) == "OK"
        assert peer.recv(lambda m: m.status == 486).call_id == "ovl-0@test"
        peer.send(invite(peer, 5))
        assert "ovl-5@test" in (app.sip_method("INVITE").sip or "")
    finally:
        app.close()
        peer.close()
