"""A blocking raw UDP SIP far end for the control-protocol tests of the embedded server.

Tests that must control exactly which datagrams reach the server (their order, or which ones
are "lost") play the far end with a plain UDP socket on loopback: they write SIP as text and
wait, with a timeout, for the server's messages that match a predicate. Imported by the tests in
this directory as ``from udp_peer import UdpSipPeer`` (pytest puts test/server on sys.path, as
for drachtio_ctl). The asyncio ``UdpPeer`` in conftest.py is for the bare SIP stack tests.
"""
from __future__ import annotations

import socket
import time
from collections.abc import Callable

from drachtio_srf.sip import SipMessage

LOOPBACK = "127.0.0.1"
CRLF = "\r\n"

Predicate = Callable[[SipMessage], bool]


def sip_datagram(text: str) -> bytes:
    """SIP written with ``\\n`` line ends, head and body split by a blank line, as wire bytes.

    Blank lines in the head are dropped and a Content-Length for the body is appended, so test
    code never has to count bytes or get CRLFs right.
    """
    head, _, body = text.partition("\n\n")
    lines = [ln for ln in head.split("\n") if ln] + [f"Content-Length: {len(body.encode())}"]
    return (CRLF.join(lines) + CRLF + CRLF + body).encode()


class UdpSipPeer:
    """A UDP socket on loopback that sends SIP text to the server and waits for what comes back."""

    def __init__(self, server_port: int) -> None:
        self.sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        self.sock.bind((LOOPBACK, 0))
        self.port: int = self.sock.getsockname()[1]
        self.server: tuple[str, int] = (LOOPBACK, server_port)

    @property
    def server_port(self) -> int:
        return self.server[1]

    def send(self, text: str) -> None:
        """Send ``text`` (see :func:`sip_datagram`) to the server as one datagram."""
        self.sock.sendto(sip_datagram(text), self.server)

    def recv(self, pred: Predicate | None = None, timeout: float = 5.0) -> SipMessage:
        """The next message matching ``pred`` (any message if None); others are discarded.

        Raises TimeoutError if none arrives within ``timeout`` seconds.
        """
        deadline = time.monotonic() + timeout
        while True:
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                raise TimeoutError("no matching SIP message from the server")
            self.sock.settimeout(remaining)
            try:
                data, _ = self.sock.recvfrom(65536)
            except TimeoutError:
                continue
            msg = SipMessage(data)
            if pred is None or pred(msg):
                return msg

    def silent_for(self, pred: Predicate, seconds: float) -> bool:
        """True if nothing matching ``pred`` arrives within ``seconds``."""
        try:
            self.recv(pred, seconds)
        except TimeoutError:
            return True
        return False

    def count(self, pred: Predicate, seconds: float) -> int:
        """How many matching messages arrive within ``seconds`` (e.g. retransmissions)."""
        n = 0
        deadline = time.monotonic() + seconds
        while time.monotonic() < deadline:
            try:
                self.recv(pred, timeout=max(0.01, deadline - time.monotonic()))
                n += 1
            except TimeoutError:
                break
        return n

    def received_for(self, seconds: float) -> list[SipMessage]:
        """Everything that arrives until ``seconds`` pass with nothing new."""
        got = []
        try:
            while True:
                got.append(self.recv(timeout=seconds))
        except TimeoutError:
            return got

    def close(self) -> None:
        self.sock.close()
