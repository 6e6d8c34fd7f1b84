"""Reliable provisional responses (RFC 3262) and UPDATE in an early dialog (PROTOCOL 3.3 case c).

A raw UDP socket plays the caller so the test sees every retransmission the server makes.
"""
from __future__ import annotations

import time

import pytest
from drachtio_ctl import header
from udp_peer import UdpSipPeer

from drachtio_srf import wire

T1 = 0.1


@pytest.fixture(scope="module")
def server_config() -> dict:
    return {"t1": T1}


@pytest.fixture
def app(app):
    """The conftest's authenticated app, routed for INVITE."""
    assert app.route("invite").field(3) == "OK"
    return app


class Caller(UdpSipPeer):
    """The UDP caller of one call: sends requests in its dialog and reads what comes back."""

    def __init__(self, server_port: int) -> None:
        super().__init__(server_port)
        self.call_id = f"prack-{time.monotonic_ns()}@test"

    def request(self, method: str, cseq: int, *, to_tag: str | None = None, extra: str = "",
                branch: str | None = None) -> None:
        to = f"<sip:service@127.0.0.1:{self.server_port}>" + (f";tag={to_tag}" if to_tag else "")
        self.send(f"{method} sip:service@127.0.0.1:{self.server_port} SIP/2.0\n"
                  f"Via: SIP/2.0/UDP 127.0.0.1:{self.port};branch={branch or 'z9hG4bK-' + method + str(cseq)}\n"
                  f"From: <sip:caller@127.0.0.1:{self.port}>;tag=caller-tag\n"
                  f"To: {to}\n"
                  f"Call-ID: {self.call_id}\n"
                  f"CSeq: {cseq} {method}\n"
                  f"Contact: <sip:caller@127.0.0.1:{self.port}>\n"
                  f"Max-Forwards: 70\n{extra}")


def status(code: int):
    return lambda m: m.status == code


def app_response(frame: wire.Frame, code: int, reason: str, extra: str = "") -> str:
    sip = frame.sip or ""
    lines = [f"SIP/2.0 {code} {reason}"]
    for name in ("call-id", "cseq", "from", "to"):
        lines.append(f"{name}: {header(sip, name)}")
    return "\r\n".join(lines) + ("\r\n" + extra if extra else "") + "\r\nContent-Length: 0\r\n\r\n"


def test_reliable_183_is_retransmitted_until_prack(server, app):
    caller = Caller(server.sip_port)
    try:
        caller.request("INVITE", 1, extra="Supported: 100rel\n")
        inv = app.sip_method("INVITE")
        txn = inv.fields[8]
        echo = app.respond(txn, app_response(inv, 183, "Session Progress", "Require: 100rel"))
        assert echo.fields[3] == "OK"
        dialog_id = echo.fields[11]
        rseq = int(header(echo.sip, "rseq"))
        assert 1 <= rseq < 2**31       # random, as drachtio-server's
        first = caller.recv(status(183))
        to_tag = first.to_tag
        assert first.get("RSeq") == str(rseq) and "100rel" in (first.get("Require") or "")
        # no PRACK yet: the 183 comes again (T1, 2*T1, ...)
        assert caller.count(status(183), 4 * T1) >= 2
        # a PRACK that acknowledges nothing is refused by the server itself
        caller.request("PRACK", 2, to_tag=to_tag, extra=f"RAck: {rseq + 1} 1 INVITE\n")
        assert caller.recv(lambda m: m.status is not None and m.get("CSeq") == "2 PRACK").status == 481
        caller.request("PRACK", 3, to_tag=to_tag, extra=f"RAck: {rseq} 1 INVITE\n")
        prack = app.sip_method("PRACK")
        assert prack.fields[9] == dialog_id and prack.fields[8] != txn
        app.respond(prack.fields[8], app_response(prack, 200, "OK"))
        assert caller.recv(lambda m: m.get("CSeq") == "3 PRACK").status == 200
        # acknowledged: the retransmissions stop
        assert caller.count(status(183), 6 * T1) == 0
        app.respond(txn, app_response(inv, 486, "Busy Here"))
        assert caller.recv(status(486)).to_tag == to_tag
    finally:
        caller.close()


def test_reliable_provisional_needs_100rel_offer(server, app):
    caller = Caller(server.sip_port)
    try:
        caller.request("INVITE", 1)
        inv = app.sip_method("INVITE")
        nok = app.respond(inv.fields[8], app_response(inv, 183, "Session Progress", "Require: 100rel"))
        assert nok.fields[3:] == ["NOK", "Remote endpoint does not support 100rel"]
        app.respond(inv.fields[8], app_response(inv, 480, "Temporarily Unavailable"))
        caller.recv(status(480))
    finally:
        caller.close()


def test_update_in_early_dialog_goes_to_the_invite_app(server, app):
    caller = Caller(server.sip_port)
    try:
        caller.request("INVITE", 1)
        inv = app.sip_method("INVITE")
        txn = inv.fields[8]
        app.respond(txn, app_response(inv, 180, "Ringing"))
        to_tag = caller.recv(status(180)).to_tag
        caller.request("UPDATE", 2, to_tag=to_tag)
        upd = app.sip_method("UPDATE")
        # case c: the INVITE's txnId and the future dialog id
        assert upd.fields[8] == txn
        assert upd.fields[9] == f"{caller.call_id};from-tag=caller-tag"
        echo = app.respond(txn, app_response(upd, 500, "Server Internal Error", "Retry-After: 5"))
        assert echo.fields[3] == "OK" and echo.fields[10] == txn and echo.fields[11] == upd.fields[9]
        got = caller.recv(lambda m: m.get("CSeq") == "2 UPDATE")
        assert got.status == 500 and got.get("Retry-After") == "5"
        # the INVITE is still pending: the app can answer it with the same txnId
        app.respond(txn, app_response(inv, 486, "Busy Here"))
        assert caller.recv(status(486)).get("CSeq") == "1 INVITE"
    finally:
        caller.close()


def test_update_outside_any_early_dialog_gets_481(server, app):
    caller = Caller(server.sip_port)
    try:
        caller.request("UPDATE", 5, to_tag="nobody")
        assert caller.recv(lambda m: m.get("CSeq") == "5 UPDATE").status == 481
    finally:
        caller.close()
