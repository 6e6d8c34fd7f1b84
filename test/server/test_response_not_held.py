"""A response to an app's request is forwarded at once, as drachtio-server does (#9.10).

The server used to hold such a response for 10 ms after the echo of the request; an app that
closed its connection within that time never got it. The far end here answers the app's OPTIONS
and then sends a new request on the same UDP socket: the server reads them in that order, so the
app must get the 200 before the new request.
"""
from __future__ import annotations

import pytest
from drachtio_ctl import CRLF, ControlClient
from udp_peer import UdpSipPeer

from drachtio_srf.server import EmbeddedServer


@pytest.fixture
def server():
    s = EmbeddedServer(admin_port=0, sip_port=0, echo_gap=0).start()
    yield s
    s.stop()


@pytest.fixture
def app(server):
    c = ControlClient(server.admin_port)
    c.authenticate()
    assert c.route("options").field(3) == "OK"
    yield c
    c.close()


def test_response_reaches_the_app_before_a_later_request(server, app):
    peer = UdpSipPeer(server.sip_port)
    try:
        echo = app.request(f"OPTIONS sip:far@127.0.0.1:{peer.port} SIP/2.0{CRLF}"
                           f"Content-Length: 0{CRLF}{CRLF}")
        assert echo.field(3) == "OK"
        opt = peer.recv(lambda m: m.method == "OPTIONS")
        peer.send("SIP/2.0 200 OK\n" + "".join(f"Via: {v}\n" for v in opt.get_all("via"))
                  + f"From: {opt.get('from')}\nTo: {opt.get('to')};tag=far\n"
                  f"Call-ID: {opt.call_id}\nCSeq: {opt.get('cseq')}\n")
        peer.send(f"OPTIONS sip:service@127.0.0.1:{server.sip_port} SIP/2.0\n"
                  f"Via: SIP/2.0/UDP 127.0.0.1:{peer.port};branch=z9hG4bK-later-1\n"
                  f"From: <sip:far@127.0.0.1:{peer.port}>;tag=later\n"
                  f"To: <sip:service@127.0.0.1>\nCall-ID: later-1@test\nCSeq: 7 OPTIONS\n"
                  "Max-Forwards: 70\n")
        first = app.sip()
        assert (first.sip or "").startswith("SIP/2.0 200 "), first.sip
        assert app.sip_method("OPTIONS").field(8) != ""
    finally:
        peer.close()
