"""Admin connections that have not authenticated: nothing served, little buffered, closed soon."""
from __future__ import annotations

import socket
import time

import pytest
from drachtio_ctl import ControlClient
from udp_peer import UdpSipPeer

from drachtio_srf import wire
from drachtio_srf.server import EmbeddedServer


@pytest.fixture
def short_auth_server():
    s = EmbeddedServer(admin_port=0, sip_port=0, auth_timeout=0.3)
    s.start()
    yield s
    s.stop()


def test_route_before_authenticate_is_refused_and_closes(server, client):
    r = client.route("invite")
    assert r.fields[3:] == ["NO", "not authenticated"]
    assert client.wait_closed()
    # and that connection never receives a new request: the INVITE finds no app (503)
    peer = UdpSipPeer(server.sip_port)
    try:
        peer.send(f"OPTIONS sip:x@127.0.0.1:{server.sip_port} SIP/2.0\n"
                  f"Via: SIP/2.0/UDP 127.0.0.1:{peer.port};branch=z9hG4bK-unauth-1\n"
                  f"From: <sip:a@127.0.0.1>;tag=1\nTo: <sip:x@127.0.0.1>\nCall-ID: unauth-1\n"
                  f"CSeq: 1 OPTIONS\nMax-Forwards: 70\n")
        assert peer.recv(lambda m: m.status is not None).status == 503
    finally:
        peer.close()


def test_sip_before_authenticate_sends_nothing(server, client):
    """An unauthenticated `sip` command must not make the server send SIP anywhere (open relay)."""
    target = UdpSipPeer(server.sip_port)
    try:
        msg_id = client.command(wire.sip_request,
                                f"OPTIONS sip:x@127.0.0.1:{target.port} SIP/2.0\r\n"
                                "Content-Length: 0\r\n\r\n")
        assert client.reply_to(msg_id).fields[3:] == ["NO", "not authenticated"]
        assert client.wait_closed()
        assert target.silent_for(lambda m: True, 0.3)
    finally:
        target.close()


def test_authenticated_connection_is_served_after_a_refusal(server, client):
    client.authenticate()
    assert client.route("invite").fields[3:] == ["OK"]


def test_unauthenticated_connection_is_closed_after_the_timeout(short_auth_server):
    c = ControlClient(short_auth_server.admin_port)
    try:
        assert c.wait_closed(5.0)
    finally:
        c.close()


def test_authenticated_connection_outlives_the_timeout(short_auth_server):
    c = ControlClient(short_auth_server.admin_port)
    try:
        assert c.authenticate().fields[3] == "OK"
        assert not c.wait_closed(0.8)
        assert c.reply_to(c.command(wire.ping)).fields[3:] == ["OK", "pong"]
    finally:
        c.close()


def _closed_by_server(sock: socket.socket, timeout: float = 5.0) -> bool:
    sock.settimeout(timeout)
    deadline = time.monotonic() + timeout
    try:
        while time.monotonic() < deadline:
            if sock.recv(65536) == b"":
                return True
    except (ConnectionResetError, BrokenPipeError):
        return True
    except TimeoutError:
        return False
    return False


def test_six_length_digits_close_the_connection(server):
    """drachtio-server reads at most five digits of frame length; a sixth is a protocol error."""
    c = ControlClient(server.admin_port)
    try:
        c.authenticate()
        c.send_raw(b"100000#")
        assert c.wait_closed()
    finally:
        c.close()


def test_five_length_digits_are_accepted(server):
    c = ControlClient(server.admin_port)
    try:
        c.authenticate()
        msg_id = wire.new_id()
        payload = f"{msg_id}|ping|" + "x" * 10000
        c.send_raw(wire.encode(payload))
        assert c.reply_to(msg_id).fields[3:] == ["OK", "pong"]
    finally:
        c.close()


def test_large_frame_before_authenticate_is_not_buffered(server):
    """An unauthenticated peer announcing a big frame is cut off after a few KB, not 99,999 bytes."""
    sock = socket.create_connection(("127.0.0.1", server.admin_port), timeout=5)
    try:
        sock.sendall(b"99999#" + b"x" * 8192)
        assert _closed_by_server(sock)
    finally:
        sock.close()
