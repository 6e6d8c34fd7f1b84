"""RFC 4475 torture messages sent to the embedded server over UDP (#9.11).

test/data/rfc4475/index.json says, per message, what drachtio-server (sofia-sip) does with it:
``400`` (or ``505``) answered by the stack, ``drop`` (a response that does not parse: nothing to
answer), ``accept`` (a request reaches the app). The server must do the same and keep serving.
"""
from __future__ import annotations

import json
import re
from pathlib import Path

import pytest
from drachtio_ctl import ControlClient
from udp_peer import UdpSipPeer

from drachtio_srf.server import EmbeddedServer

DATA = Path(__file__).resolve().parent.parent / "data" / "rfc4475"
INDEX = json.loads((DATA / "index.json").read_text())["messages"]
METHODS = ("invite", "options", "register", "message", "info", "notify", "subscribe", "publish")
#: where the embedded server still differs from sofia-sip (listed in docs/differences.md)
KNOWN_DIFFERENCES = {
    "quotbal": "unterminated quoted display name is accepted, sofia-sip answers 400",
    "lwsruri": "request line with four parts is accepted, sofia-sip answers 400",
    "baddate": "Date without GMT is accepted, sofia-sip answers 400",
    "baddn": "unquoted display name with ',' is accepted, sofia-sip answers 400",
    "insuf": "no 400 is sent when To/From/Call-ID are missing (nothing to build it from)",
}
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


def _param(e: dict) -> object:
    why = KNOWN_DIFFERENCES.get(e["name"])
    marks = [pytest.mark.xfail(reason=why, strict=False)] if why else []
    return pytest.param(e, id=e["name"], marks=marks)


def _new_request_for_app(raw: bytes) -> bool:
    """A request of a routed method with no To tag: one the server hands to the app."""
    head = raw.split(b"\r\n\r\n", 1)[0].decode("utf-8", "replace")
    head = re.sub(r"\r\n[ \t]+", " ", head)       # unfold continuation lines
    method = head.split(" ", 1)[0]
    to = re.search(r"^(?:To|t)[ \t]*:(.*)$", head, re.IGNORECASE | re.MULTILINE)
    return method in NEW_REQUESTS and to is not None and not re.search(r";\s*tag\s*=", to.group(1))


@pytest.mark.parametrize("entry", [_param(e) for e in INDEX])
def test_server_treats_torture_message_as_sofia_sip(server, torture_app, entry):
    raw = (DATA / f"{entry['name']}.dat").read_bytes()
    expect = entry["server"]
    peer = UdpSipPeer(server.sip_port)
    try:
        peer.sock.sendto(raw, ("127.0.0.1", server.sip_port))
        if expect in ("400", "505"):
            resp = peer.recv(lambda m: m.status is not None, timeout=5)
            assert resp.status == int(expect), f"{entry['name']}: got {resp.status}, want {expect}"
        elif expect == "accept" and _is_request(raw):
            if _new_request_for_app(raw):
                call_id = _call_id(raw)
                frame = torture_app.sip(lambda f: call_id is not None and call_id in (f.sip or ""),
                                        timeout=10)
                assert frame.field(2) == "network"
            # the stack took it: no 400/505 (an in-dialog one may get 481 from the core)
            assert peer.silent_for(lambda m: m.status in (400, 505), 0.3)
        else:   # dropped (or a response, which nobody answers)
            assert peer.silent_for(lambda m: True, 0.3)
        _still_serving(peer, server.sip_port, torture_app, entry["name"])
    finally:
        peer.close()
