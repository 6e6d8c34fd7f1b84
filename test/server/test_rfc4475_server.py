"""RFC 4475 torture messages sent to the embedded server (#9.11).

test/data/rfc4475/index.json says, per message, what the real drachtio-server does with it (found
with scripts/rfc4475_probe.py against a build of it): ``400`` with a given reason phrase,
``drop`` (nothing answered, nothing to the app), ``accept`` (the stack takes it; a new request
of a routed method reaches the app). Each message goes over the transport its top Via names (TCP
for a TCP Via, else UDP), as the probe sends it. The server must do the same and keep serving.
"""
from __future__ import annotations

import json
import re
import socket
import time
from pathlib import Path

import pytest
from drachtio_ctl import ControlClient
from udp_peer import UdpSipPeer

from drachtio_srf.server import EmbeddedServer

DATA = Path(__file__).resolve().parent.parent / "data" / "rfc4475"
INDEX = json.loads((DATA / "index.json").read_text())["messages"]
METHODS = ("invite", "options", "register", "message", "info", "notify", "subscribe", "publish")
NEW_REQUESTS = {m.upper() for m in METHODS}


@pytest.fixture
def server():
    """A fresh server per message: several corpus messages share a branch, and a second one
    would rightly be taken for a retransmission of the first."""
    s = EmbeddedServer(admin_port=0, sip_port=0).start()
    yield s
    s.stop()


@pytest.fixture
def torture_app(server):
    app = ControlClient(server.admin_port)
    app.authenticate()
    for m in METHODS:
        assert app.route(m).field(3) == "OK"
    yield app
    app.close()


def _call_id(raw: bytes) -> str | None:
    m = re.search(rb"^(?:Call-ID|i)[ \t]*:[ \t]*(\S+)", raw, re.IGNORECASE | re.MULTILINE)
    return m.group(1).decode("utf-8", "replace") if m else None


def _is_request(raw: bytes) -> bool:
    return not raw.lstrip().startswith(b"SIP/")


def _still_serving(peer: UdpSipPeer, server_port: int, app: ControlClient, n: str) -> None:
    """A good OPTIONS after the torture message still reaches the app (nothing crashed)."""
    peer.send(f"OPTIONS sip:alive@127.0.0.1:{server_port} SIP/2.0\n"
              f"Via: SIP/2.0/UDP 127.0.0.1:{peer.port};branch=z9hG4bK-alive-{n}\n"
              f"From: <sip:t@127.0.0.1>;tag=alive\nTo: <sip:alive@127.0.0.1>\n"
              f"Call-ID: alive-{n}@test\nCSeq: 1 OPTIONS\nMax-Forwards: 70\n")
    app.sip(lambda f: f"alive-{n}@test" in (f.sip or ""), timeout=10)


def _via_transport(raw: bytes) -> str:
    """The transport the message's top Via names (header lines unfolded first)."""
    head = re.sub(rb"\r\n[ \t]+", b" ", raw.split(b"\r\n\r\n", 1)[0])
    m = re.search(rb"^(?:via|v)[ \t]*:[ \t]*SIP[ \t]*/[ \t]*2\.0[ \t]*/[ \t]*(\w+)", head,
                  re.IGNORECASE | re.MULTILINE)
    return m.group(1).decode().upper() if m else "UDP"


class TcpSipPeer:
    """A TCP connection to the server's SIP port that sends bytes and collects response lines."""

    def __init__(self, server_port: int) -> None:
        self.sock = socket.create_connection(("127.0.0.1", server_port), timeout=5)
        self.data = b""

    def _statuses(self) -> list[tuple[int, str]]:
        return [(int(m.group(1)), m.group(2).decode("utf-8", "replace"))
                for m in re.finditer(rb"(?:^|\r\n)SIP/2\.0 (\d{3}) ?([^\r\n]*)", self.data)]

    def responses_within(self, seconds: float, *, until_one: bool = False) -> list[tuple[int, str]]:
        """Status and reason of what the server sent back in ``seconds`` (or up to the first non-1xx)."""
        deadline = time.monotonic() + seconds
        while (left := deadline - time.monotonic()) > 0:
            if until_one and any(code >= 200 for code, _ in self._statuses()):
                break
            self.sock.settimeout(left)
            try:
                chunk = self.sock.recv(65536)
            except TimeoutError:
                break
            if not chunk:
                break
            self.data += chunk
        return self._statuses()

    def close(self) -> None:
        self.sock.close()


def _new_request_for_app(raw: bytes) -> bool:
    """A request of a routed method with no To tag: one the server hands to the app."""
    head = raw.split(b"\r\n\r\n", 1)[0].decode("utf-8", "replace")
    head = re.sub(r"\r\n[ \t]+", " ", head)       # unfold continuation lines
    method = head.split(" ", 1)[0]
    to = re.search(r"^(?:To|t)[ \t]*:(.*)$", head, re.IGNORECASE | re.MULTILINE)
    return method in NEW_REQUESTS and to is not None and not re.search(r";\s*tag\s*=", to.group(1))


@pytest.mark.parametrize("entry", INDEX, ids=[e["name"] for e in INDEX])
def test_server_treats_torture_message_as_drachtio_server(server, torture_app, entry):
    raw = (DATA / f"{entry['name']}.dat").read_bytes()
    expect = entry["server"]
    peer = UdpSipPeer(server.sip_port)
    tcp = TcpSipPeer(server.sip_port) if _via_transport(raw) == "TCP" else None
    try:
        if tcp is not None:
            tcp.sock.sendall(raw)
        else:
            peer.sock.sendto(raw, ("127.0.0.1", server.sip_port))
        if expect == "400":
            if tcp is not None:
                finals = [r for r in tcp.responses_within(5, until_one=True) if r[0] >= 200]
                assert finals, f"{entry['name']}: no response"
                status, reason = finals[0]
            else:
                resp = peer.recv(lambda m: m.status is not None and m.status >= 200, timeout=5)
                status, reason = resp.status, resp.reason
            assert (status, reason) == (400, entry["reason"]), entry["name"]
        elif expect == "accept" and _is_request(raw):
            if _new_request_for_app(raw):
                call_id = _call_id(raw)
                frame = torture_app.sip(lambda f: call_id is not None and call_id in (f.sip or ""),
                                        timeout=10)
                assert frame.field(2) == "network"
            # the stack took it: no 400/505 (an in-dialog one may get 481 from the core)
            if tcp is not None:
                assert not [r for r in tcp.responses_within(0.3) if r[0] in (400, 505)]
            else:
                assert peer.silent_for(lambda m: m.status in (400, 505), 0.3)
        else:   # dropped, or a response (which nobody answers): nothing back, nothing to the app
            if tcp is not None:
                assert tcp.responses_within(0.3) == []
            else:
                assert peer.silent_for(lambda m: True, 0.3)
        _still_serving(peer, server.sip_port, torture_app, entry["name"])
        if expect != "accept":   # frames before the good OPTIONS's wait in the backlog
            assert not [f for f in torture_app.backlog if f.type == "sip"], f"{entry['name']} reached the app"
    finally:
        peer.close()
        if tcp is not None:
            tcp.close()
