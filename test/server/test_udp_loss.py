"""Lost UDP datagrams around the end of a call (the dialogs left open under load, issue #4).

Under bursts the kernel dropped datagrams on the server's UDP socket. When both the ACK and the
BYE of a call were lost, the server (correctly) resent its 2xx to the INVITE; sipp's default
scenario accepts any 200 whose CSeq method it ever sent as the answer to its BYE, so it ended
the call on that 2xx and stopped resending the BYE, while the dialog stayed open until the ACK
timeout (64*T1). These tests replay that packet sequence with a raw UDP peer and pin down what the
server must do: never answer a BYE without the app, stop resending a 2xx once a BYE shows the
peer has it, and end a dialog whose ACK never comes. They also check the receive buffer and the
drop counter that keep and report bursts.
"""
from __future__ import annotations

import asyncio
import socket
import time

import pytest
from drachtio_ctl import SDP, ControlClient, header, response_for
from udp_peer import UdpSipPeer

from drachtio_srf.server.sip_transport import (
    UDP_RCVBUF,
    Transports,
    UdpDropCounter,
    tune_udp_socket,
)

CRLF = "\r\n"
T1 = 0.05


@pytest.fixture(scope="module")
def server_config() -> dict:
    return {"t1": T1}


@pytest.fixture
def app(app):
    """The conftest's authenticated app, routed for INVITE."""
    assert app.route("invite").field(3) == "OK"
    return app


class Peer(UdpSipPeer):
    """A UDP caller that sends exactly what the test says (so 'lost' datagrams are never sent)."""

    def __init__(self, server_port: int, call: str) -> None:
        super().__init__(server_port)
        self.call_id = f"{call}@127.0.0.1"
        self.from_tag = f"tag-{call}"

    def request(self, method: str, cseq: int, branch: str, to_tag: str | None = None,
                body: str = "") -> None:
        to = f"<sip:service@127.0.0.1:{self.server_port}>" + (f";tag={to_tag}" if to_tag else "")
        lines = [f"{method} sip:service@127.0.0.1:{self.server_port} SIP/2.0",
                 f"Via: SIP/2.0/UDP 127.0.0.1:{self.port};branch={branch}",
                 f"From: sipp <sip:sipp@127.0.0.1:{self.port}>;tag={self.from_tag}",
                 f"To: {to}", f"Call-ID: {self.call_id}", f"CSeq: {cseq} {method}",
                 f"Contact: <sip:sipp@127.0.0.1:{self.port}>", "Max-Forwards: 70"]
        if body:
            lines.append("Content-Type: application/sdp")
        self.send("\n".join(lines) + "\n\n" + body)


@pytest.fixture
def peer(server, request):
    p = Peer(server.sip_port, request.node.name[-40:].replace("[", "-").replace("]", ""))
    yield p
    p.close()


def is_(status: int, method: str):
    return lambda m: m.status == status and m.cseq is not None and m.cseq.method == method


def answered_call(app: ControlClient, peer: Peer) -> tuple[str, str]:
    """INVITE from the peer, 200 from the app; returns (our To tag, dialog id)."""
    peer.request("INVITE", 1, "z9hG4bK-inv", body=SDP)
    inv = app.sip_method("INVITE")
    echo = app.respond(inv.fields[8], response_for(inv.sip, 200, "OK", body=SDP))
    assert echo.field(3) == "OK"
    ok = peer.recv(is_(200, "INVITE"))
    return ok.to_tag, echo.fields[11]


def test_ack_and_bye_lost_then_bye_resent_reaches_the_app(server, app, peer):
    """The exact sequence of the leaked calls: 2xx sent, ACK and BYE lost, 2xx resent, BYE resent."""
    to_tag, dialog_id = answered_call(app, peer)
    # the ACK and the first BYE are lost: the server resends its 2xx (the message sipp took for
    # the answer to its BYE) - it is the INVITE's 200, never a BYE's
    again = peer.recv(lambda m: m.status is not None and m.status >= 200, timeout=10 * T1)
    assert again.status == 200 and again.cseq.method == "INVITE" and again.to_tag == to_tag

    peer.request("BYE", 2, "z9hG4bK-bye", to_tag=to_tag)   # the BYE retransmission
    bye = app.sip_method("BYE")
    assert bye.fields[9] == dialog_id
    # nothing answers the BYE before the app does
    early = [m for m in peer.received_for(4 * T1) if m.cseq is not None and m.cseq.method == "BYE"]
    assert early == []
    echo = app.respond(bye.fields[8], response_for(bye.sip, 200, "OK"))
    assert echo.field(3) == "OK"
    ok = peer.recv(is_(200, "BYE"))
    assert header(echo.sip, "cseq") == "2 BYE" and ok.to_tag == to_tag

    # the BYE showed the peer has the 2xx: no more 2xx retransmissions (they went on for 64*T1)
    late = peer.received_for(8 * T1)
    assert [m for m in late if m.cseq is not None and m.cseq.method == "INVITE"] == []
    # and the dialog is gone on the server: the app cannot use it any more
    nok = app.request(f"INFO sip:sipp@127.0.0.1:{peer.port} SIP/2.0{CRLF}Content-Length: 0{CRLF}{CRLF}",
                      dialog_id)
    assert nok.field(3) == "NOK"


def test_peer_that_gives_up_gets_a_bye_at_the_ack_timeout(server, app, peer):
    """sipp's side of the leak: it stops after the resent 2xx. The server resends the 2xx with
    T1 doubling, then after 64*T1 without ACK ends the dialog: BYE to the peer, BYE frame to the app."""
    to_tag, dialog_id = answered_call(app, peer)
    start = time.monotonic()
    resent = []
    bye = None
    while bye is None:
        msg = peer.recv(timeout=64 * T1 + 2.0)
        if msg.method == "BYE":
            bye = msg
        elif msg.status == 200 and msg.cseq.method == "INVITE":
            resent.append(time.monotonic() - start)
    waited = time.monotonic() - start
    assert len(resent) >= 4                                  # T1, 2T1, 4T1, ... retransmissions
    assert 64 * T1 * 0.9 <= waited <= 64 * T1 + 1.5
    assert bye.from_tag == to_tag and "ACK timeout" in (bye.get("reason") or "")
    frame = app.sip_method("BYE")
    assert frame.fields[8] == "unsolicited" and frame.fields[9] == dialog_id


def test_bye_resent_after_the_answer_gets_the_same_200_without_the_app(server, app, peer):
    """A BYE retransmission after the app answered is absorbed by the transaction (RFC 3261 17.2.2)."""
    to_tag, dialog_id = answered_call(app, peer)
    peer.request("ACK", 1, "z9hG4bK-ack", to_tag=to_tag)
    assert app.sip_method("ACK").fields[9] == dialog_id
    peer.request("BYE", 2, "z9hG4bK-bye2", to_tag=to_tag)
    bye = app.sip_method("BYE")
    app.respond(bye.fields[8], response_for(bye.sip, 200, "OK"))
    first = peer.recv(is_(200, "BYE"))
    peer.request("BYE", 2, "z9hG4bK-bye2", to_tag=to_tag)
    second = peer.recv(is_(200, "BYE"))
    assert str(second) == str(first)
    with pytest.raises(TimeoutError):
        app.sip_method("BYE", timeout=4 * T1)


def test_invite_resent_after_the_2xx_gets_the_2xx_not_a_new_call(server, app, peer):
    """An INVITE retransmission that arrives after the 2xx is answered with the 2xx again."""
    to_tag, _ = answered_call(app, peer)
    peer.request("INVITE", 1, "z9hG4bK-inv", body=SDP)
    again = peer.recv(is_(200, "INVITE"))
    assert again.to_tag == to_tag
    with pytest.raises(TimeoutError):
        app.sip_method("INVITE", timeout=4 * T1)
    peer.request("ACK", 1, "z9hG4bK-ack", to_tag=to_tag)
    assert app.sip_method("ACK").sip.startswith("ACK ")
    peer.request("BYE", 2, "z9hG4bK-bye3", to_tag=to_tag)
    bye = app.sip_method("BYE")
    app.respond(bye.fields[8], response_for(bye.sip, 200, "OK"))
    peer.recv(is_(200, "BYE"))


def _rmem_max() -> int:
    try:
        with open("/proc/sys/net/core/rmem_max") as f:
            return int(f.read())
    except OSError:
        return 0


def test_udp_socket_gets_a_large_receive_buffer():
    """The SIP UDP socket asks for UDP_RCVBUF bytes (the kernel grants up to its limit)."""
    async def main() -> int:
        t = Transports("127.0.0.1", 0, lambda data, source: None)
        await t.start()
        try:
            return t.udp_rcvbuf
        finally:
            t.close()
    granted = asyncio.run(main())
    assert granted >= min(UDP_RCVBUF, _rmem_max()) and granted >= 212992


def test_drop_counter_reports_datagrams_the_kernel_dropped(caplog):
    """Overflow a tiny receive buffer on purpose: the counter sees the drops and logs them."""
    rx = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    tx = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    try:
        rx.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
        rx.bind(("127.0.0.1", 0))
        counter = UdpDropCounter(rx)
        if counter.read() is None:
            pytest.fail("no /proc/net/udp drop count on this system")
        assert counter.check() == 0
        for _ in range(200):
            tx.sendto(b"x" * 500, rx.getsockname())
        with caplog.at_level("WARNING", logger="drachtio_srf.server.sip_transport"):
            dropped = counter.check()
        assert dropped > 0
        assert "dropped by the kernel" in caplog.text
        assert counter.check() == 0            # counted once
        assert tune_udp_socket(rx, 1 << 20) >= 1 << 16
    finally:
        rx.close()
        tx.close()
