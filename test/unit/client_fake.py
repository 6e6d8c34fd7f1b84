"""A scripted drachtio control server for the client unit tests (speaks wire frames on loopback).

It answers ``authenticate``, ``route`` and ``ping`` by itself and records every frame the app
sends; the test plays the server's side of each SIP exchange with the helpers below.
"""
from __future__ import annotations

import socket
import threading
import time

from drachtio_srf import wire

WAIT = 5.0
HOSTPORT = "udp/127.0.0.1:5060,tcp/127.0.0.1:5060"
VERSION = "v0.9.10"

SDP_A = ("v=0\r\no=- 100 1 IN IP4 10.0.0.1\r\ns=-\r\nc=IN IP4 10.0.0.1\r\nt=0 0\r\n"
         "m=audio 5000 RTP/AVP 0\r\na=sendrecv\r\n")
SDP_B = ("v=0\r\no=- 200 1 IN IP4 10.0.0.2\r\ns=-\r\nc=IN IP4 10.0.0.2\r\nt=0 0\r\n"
         "m=audio 6000 RTP/AVP 0\r\na=sendrecv\r\n")


class FakeServer:
    """Accepts one app connection; ``frames`` collects what the app sent."""

    def __init__(self, *, secret: str = "cymru", version: str = VERSION) -> None:
        self.secret = secret
        self.version = version
        self._lsock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        self._lsock.bind(("127.0.0.1", 0))
        self._lsock.listen(4)
        self.port = self._lsock.getsockname()[1]
        self._cond = threading.Condition()
        self._frames: list[wire.Frame] = []
        self.routes: list[str] = []
        self.conn: socket.socket | None = None
        self.connections = 0
        self._stop = False
        self._thread = threading.Thread(target=self._run, name="fake-drachtio", daemon=True)
        self._thread.start()

    # -- server loop ----------------------------------------------------------------------------
    def _run(self) -> None:
        while not self._stop:
            try:
                conn, _ = self._lsock.accept()
            except OSError:
                return
            with self._cond:
                self.conn = conn
                self.connections += 1
                self._cond.notify_all()
            decoder = wire.FrameDecoder()
            while True:
                try:
                    data = conn.recv(65536)
                except OSError:
                    break
                if not data:
                    break
                for payload in decoder.feed(data):
                    self._on_payload(conn, wire.parse(payload))
            conn.close()

    def _on_payload(self, conn: socket.socket, f: wire.Frame) -> None:
        if f.type == "authenticate":
            if f.field(2) == self.secret:
                self._send_on(conn, wire.reply(wire.new_id(), f.msg_id, "OK", [HOSTPORT, self.version, HOSTPORT]))
            else:
                self._send_on(conn, wire.reply(wire.new_id(), f.msg_id, "NO", ["incorrect secret"]))
                conn.shutdown(socket.SHUT_RDWR)
            return
        if f.type == "route":
            self.routes.append(f.field(2))
            self._send_on(conn, wire.reply(wire.new_id(), f.msg_id, "OK"))
        if f.type == "ping":
            self._send_on(conn, wire.reply(wire.new_id(), f.msg_id, "OK", ["pong"]))
        with self._cond:
            self._frames.append(f)
            self._cond.notify_all()

    def _send_on(self, conn: socket.socket, payload: str) -> None:
        conn.sendall(wire.encode(payload))

    # -- test side ------------------------------------------------------------------------------
    def send(self, payload: str) -> None:
        assert self.conn is not None
        self._send_on(self.conn, payload)

    def next_frame(self, pred=lambda f: True, timeout: float = WAIT) -> wire.Frame:
        """The first recorded frame matching ``pred`` (removed from the record)."""
        deadline = time.monotonic() + timeout
        with self._cond:
            while True:
                for i, f in enumerate(self._frames):
                    if pred(f):
                        return self._frames.pop(i)
                remaining = deadline - time.monotonic()
                if remaining <= 0:
                    raise TimeoutError("expected frame not sent by the app")
                self._cond.wait(remaining)

    def sip_frame(self, start: str, timeout: float = WAIT) -> wire.Frame:
        """The next ``sip`` frame whose SIP text starts with ``start``."""
        return self.next_frame(lambda f: f.type == "sip" and (f.sip or "").startswith(start), timeout)

    def no_sip_frame(self, start: str, within: float = 0.3) -> bool:
        try:
            self.sip_frame(start, timeout=within)
        except TimeoutError:
            return True
        return False

    def drop(self) -> None:
        """Close the app's connection abruptly."""
        if self.conn is not None:
            try:
                self.conn.shutdown(socket.SHUT_RDWR)
            except OSError:
                pass

    def close(self) -> None:
        self._stop = True
        self.drop()
        try:
            self._lsock.shutdown(socket.SHUT_RDWR)   # wakes the blocked accept()
        except OSError:
            pass
        self._lsock.close()
        self._thread.join(5)

    # -- SIP plays ---------------------------------------------------------------------------------
    def deliver(self, sip_text: str, *, txn_id: str, dialog_id: str = "", source: str = "network") -> None:
        """A ``sip`` frame carrying a request or response from the network."""
        self.send(wire.sip_event(wire.new_id(), source=source, nbytes=len(sip_text), protocol="udp",
                                 address="10.0.0.1", port=5060, time=wire.stack_time(), txn_id=txn_id,
                                 dialog_id=dialog_id, received_on=None if dialog_id else ("127.0.0.1", 5060),
                                 sip_text=sip_text))

    def echo_response(self, f: wire.Frame, *, dialog_id: str = "", to_tag: str = "srvtag") -> str:
        """Echo a response the app sent, adding a To tag and Contact as the real server does."""
        text = f.sip or ""
        head, _, body = text.partition("\r\n\r\n")
        lines = head.split("\r\n")
        out = []
        for line in lines:
            if line.lower().startswith("to:") and "tag=" not in line:
                line = f"{line};tag={to_tag}"
            out.append(line)
        if not any(line.lower().startswith("contact:") for line in out):
            out.insert(1, "Contact: <sip:127.0.0.1:5060>")
        sent = "\r\n".join(out) + "\r\n\r\n" + body
        self.send(wire.echo_response(wire.new_id(), f.msg_id, nbytes=len(sent), protocol="udp",
                                     address="10.0.0.1", port=5060, time=wire.stack_time(),
                                     txn_id=f.field(2), dialog_id=dialog_id, sip_text=sent))
        return sent

    def echo_request(self, f: wire.Frame, *, txn_id: str, call_id: str = "uac-call-1",
                     from_tag: str = "ourtag") -> str:
        """Echo a request the app sent, filling in Call-ID/From/To/CSeq/Contact like the server."""
        text = f.sip or ""
        head, _, body = text.partition("\r\n\r\n")
        lines = head.split("\r\n")
        method = lines[0].split(" ")[0]
        names = {line.split(":", 1)[0].lower() for line in lines[1:]}
        extra = []
        if "call-id" not in names:
            extra.append(f"Call-ID: {call_id}")
        if "from" not in names:
            extra.append(f"From: <sip:app@127.0.0.1>;tag={from_tag}")
        if "to" not in names:
            extra.append(f"To: <{lines[0].split(' ')[1]}>")
        if "cseq" not in names:
            extra.append(f"CSeq: 1 {method}")
        if "contact" not in names:
            extra.append("Contact: <sip:127.0.0.1:5060>")
        sent = "\r\n".join([lines[0], "Via: SIP/2.0/UDP 127.0.0.1:5060;branch=z9hG4bKx", *extra, *lines[1:]])
        sent += "\r\n\r\n" + body
        self.send(wire.echo_request(wire.new_id(), f.msg_id, nbytes=len(sent), protocol="udp",
                                    address="127.0.0.1", port=5060, time=wire.stack_time(),
                                    txn_id=txn_id, sip_text=sent))
        return sent

    def nok(self, f: wire.Frame, text: str) -> None:
        self.send(wire.reply(wire.new_id(), f.msg_id, "NOK", [text]))


def invite(call_id: str = "call-1", from_tag: str = "farTag", *, to_tag: str | None = None,
           cseq: int = 1, method: str = "INVITE", body: str = SDP_A, extra: str = "") -> str:
    """A request as the server delivers it (from the far end)."""
    to = "<sip:app@127.0.0.1>" + (f";tag={to_tag}" if to_tag else "")
    ct = "Content-Type: application/sdp\r\n" if body else ""
    return (f"{method} sip:app@127.0.0.1 SIP/2.0\r\n"
            "Via: SIP/2.0/UDP 10.0.0.1:5060;branch=z9hG4bK1\r\n"
            f"From: <sip:far@10.0.0.1>;tag={from_tag}\r\n"
            f"To: {to}\r\n"
            f"Call-ID: {call_id}\r\n"
            f"CSeq: {cseq} {method}\r\n"
            "Contact: <sip:far@10.0.0.1:5060>\r\n"
            f"{extra}{ct}Content-Length: {len(body)}\r\n\r\n{body}")


def response(status: int, reason: str, *, call_id: str = "uac-call-1", from_tag: str = "ourtag",
             to_tag: str | None = "remTag", method: str = "INVITE", body: str = "", extra: str = "",
             contact: bool = True) -> str:
    """A response from the far end to a request the app sent."""
    to = "<sip:far@10.0.0.2>" + (f";tag={to_tag}" if to_tag else "")
    ct = "Content-Type: application/sdp\r\n" if body else ""
    cont = "Contact: <sip:far@10.0.0.2:5060>\r\n" if contact else ""
    return (f"SIP/2.0 {status} {reason}\r\n"
            "Via: SIP/2.0/UDP 127.0.0.1:5060;branch=z9hG4bKx\r\n"
            f"From: <sip:app@127.0.0.1>;tag={from_tag}\r\n"
            f"To: {to}\r\n"
            f"Call-ID: {call_id}\r\n"
            f"CSeq: 1 {method}\r\n"
            f"{cont}{extra}{ct}Content-Length: {len(body)}\r\n\r\n{body}")
