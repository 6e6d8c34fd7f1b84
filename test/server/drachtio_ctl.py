"""A raw drachtio control-protocol client for the server tests (built on drachtio_srf.wire only).

It is deliberately not the drachtio_srf client library: the tests check the server's frames as an
app would receive them, field by field.
"""
from __future__ import annotations

import queue
import socket
import threading
import time
from collections.abc import Callable

from drachtio_srf import wire

CRLF = "\r\n"


class ControlClient:
    """One TCP control connection; a reader thread queues every frame the server sends."""

    def __init__(self, port: int, host: str = "127.0.0.1") -> None:
        self.sock = socket.create_connection((host, port), timeout=5)
        self.sock.settimeout(None)
        self.frames: queue.Queue[wire.Frame | None] = queue.Queue()
        self.backlog: list[wire.Frame] = []
        self.closed = threading.Event()
        self._reader = threading.Thread(target=self._read, daemon=True)
        self._reader.start()

    def _read(self) -> None:
        decoder = wire.FrameDecoder()
        try:
            while True:
                data = self.sock.recv(65536)
                if not data:
                    break
                for payload in decoder.feed(data):
                    self.frames.put(wire.parse(payload))
        except OSError:
            pass
        finally:
            self.closed.set()
            self.frames.put(None)

    # ------------------------------------------------------------------ sending
    def send(self, payload: str) -> None:
        self.sock.sendall(wire.encode(payload))

    def send_raw(self, data: bytes) -> None:
        self.sock.sendall(data)

    def command(self, build: Callable[..., str], *args, **kwargs) -> str:
        """Send ``build(msg_id, *args)``; return the msgId."""
        msg_id = wire.new_id()
        self.send(build(msg_id, *args, **kwargs))
        return msg_id

    # ------------------------------------------------------------------ receiving
    def next(self, pred: Callable[[wire.Frame], bool] | None = None, timeout: float = 10.0) -> wire.Frame:
        """The next frame matching ``pred`` (others are kept for later calls)."""
        for i, f in enumerate(self.backlog):
            if pred is None or pred(f):
                return self.backlog.pop(i)
        deadline = time.monotonic() + timeout
        while True:
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                raise TimeoutError(f"no matching frame in {timeout}s; backlog: "
                                   f"{[b.payload[:120] for b in self.backlog]}")
            try:
                f = self.frames.get(timeout=remaining)
            except queue.Empty:
                continue
            if f is None:
                self.frames.put(None)
                raise ConnectionError("control connection closed by the server")
            if pred is None or pred(f):
                return f
            self.backlog.append(f)

    def reply_to(self, msg_id: str, timeout: float = 10.0) -> wire.Frame:
        return self.next(lambda f: f.type == "response" and f.field(2) == msg_id, timeout)

    def sip(self, pred: Callable[[wire.Frame], bool] | None = None, timeout: float = 15.0) -> wire.Frame:
        """The next ``sip`` frame (optionally matching ``pred``)."""
        return self.next(lambda f: f.type == "sip" and (pred is None or pred(f)), timeout)

    def sip_method(self, method: str, timeout: float = 15.0) -> wire.Frame:
        return self.sip(lambda f: (f.sip or "").startswith(method + " "), timeout)

    def sip_status(self, status: int, timeout: float = 15.0) -> wire.Frame:
        return self.sip(lambda f: (f.sip or "").startswith(f"SIP/2.0 {status} "), timeout)

    # ------------------------------------------------------------------ conveniences
    def authenticate(self, secret: str = "cymru") -> wire.Frame:
        return self.reply_to(self.command(wire.authenticate, secret))

    def route(self, verb: str) -> wire.Frame:
        return self.reply_to(self.command(wire.route, verb))

    def respond(self, txn_id: str, text: str) -> wire.Frame:
        """Answer a delivered request; return the server's reply (the echo)."""
        return self.reply_to(self.command(wire.sip_response, txn_id, text))

    def request(self, text: str, dialog_id: str = "", route_uri: str | None = None) -> wire.Frame:
        return self.reply_to(self.command(wire.sip_request, text, dialog_id, route_uri))

    def wait_closed(self, timeout: float = 5.0) -> bool:
        return self.closed.wait(timeout)

    def close(self) -> None:
        try:
            self.sock.shutdown(socket.SHUT_RDWR)
        except OSError:
            pass
        self.sock.close()


def header(sip_text: str, name: str) -> str | None:
    """First value of a header in SIP text (case-insensitive), None if absent."""
    head = sip_text.split(CRLF + CRLF, 1)[0]
    for line in head.split(CRLF)[1:]:
        n, _, v = line.partition(":")
        if n.strip().lower() == name.lower():
            return v.strip()
    return None


def response_for(request_text: str, status: int, reason: str, *, body: str = "",
                 extra: list[str] | None = None, to: str | None = None) -> str:
    """What drachtio-srf sends to answer a request: Call-ID, CSeq, From, To copied, then extras."""
    lines = [f"SIP/2.0 {status} {reason}",
             f"Call-ID: {header(request_text, 'call-id')}",
             f"cseq: {header(request_text, 'cseq')}",
             f"from: {header(request_text, 'from')}",
             f"to: {to or header(request_text, 'to')}",
             f"Content-Length: {len(body.encode())}"]
    lines += extra or []
    return CRLF.join(lines) + CRLF + CRLF + body


SDP = ("v=0\r\no=- 1 1 IN IP4 127.0.0.1\r\ns=-\r\nc=IN IP4 127.0.0.1\r\nt=0 0\r\n"
       "m=audio 40000 RTP/AVP 0\r\na=rtpmap:0 PCMU/8000\r\na=sendrecv\r\n")
