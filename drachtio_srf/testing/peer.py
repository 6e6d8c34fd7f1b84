"""A small SIP user agent in pure Python, for tests that should not need sipp.

``SipPeer`` binds a UDP socket on loopback (or listens on TCP: ``transport="tcp"``) and plays
both roles:

* UAC: ``peer.invite(target, sdp=...)`` places a call (ACKs the 2xx) and returns a
  :class:`PeerDialog`, whose ``request()``/``bye()``/``info()``/``reinvite()``/``update()`` send
  requests in the dialog and return the final response.
* UAS: an INVITE is answered on its own (100, optionally 180, then 200 with the peer's SDP;
  ``set_reply`` changes the status, headers or body per method); in-dialog requests get 200.

Everything the peer receives is recorded: ``peer.received`` (parsed :class:`SipMessage`, in
arrival order, retransmissions kept apart in ``peer.retransmitted``) and ``peer.wait_for("BYE")``
blocks until a matching message arrives. Built on ``drachtio_srf.sip`` and the standard library
only. It follows RFC 3261's basics (Via branch, tags, CSeq, Contact, Record-Route, ACK of a 2xx
as its own transaction) and answers retransmitted requests again, but does not retransmit
itself: on loopback nothing is lost.
"""
from __future__ import annotations

import contextlib
import itertools
import logging
import re
import secrets
import socket
import threading
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any, TypeAlias

from drachtio_srf import digest
from drachtio_srf.sip import SipMessage, SipParseError, parse_uri, reason_phrase

from .ports import LOOPBACK

logger = logging.getLogger(__name__)

DEFAULT_SDP = ("v=0\r\no=peer 1 1 IN IP4 127.0.0.1\r\ns=drachtio-test-peer\r\nc=IN IP4 127.0.0.1\r\n"
               "t=0 0\r\nm=audio 49170 RTP/AVP 0\r\na=rtpmap:0 PCMU/8000\r\na=sendrecv\r\n")
"""The SDP a peer offers and answers with unless given another."""

Match: TypeAlias = "str | int | Callable[[SipMessage], bool]"
"""What ``wait_for`` looks for: a method name, a status code or a predicate."""


class PeerTimeout(AssertionError):
    """The peer did not receive what a test waited for; the message lists what it did receive."""


def _token() -> str:
    return secrets.token_hex(6)


def _addr_of(uri: str) -> tuple[str, int]:
    """(host, port) a request to ``uri`` goes to (no DNS: tests run on loopback)."""
    text = uri.strip()
    if "<" in text:
        text = text[text.index("<") + 1:text.index(">")]
    parsed = parse_uri(text)
    if not parsed or not parsed.get("host"):
        raise ValueError(f"not a SIP URI: {uri!r}")
    return str(parsed["host"]), int(parsed.get("port") or 5060)


def _uri_of(name_addr: str) -> str:
    text = name_addr.strip()
    if "<" in text:
        return text[text.index("<") + 1:text.index(">")]
    return text.split(";", 1)[0]


def _describe(msg: SipMessage) -> str:
    if msg.method:
        return f"{msg.method} {msg.uri}"
    cseq = msg.cseq
    return f"{msg.status} {msg.reason} ({cseq.method if cseq else '?'})"


def matches(msg: SipMessage, what: Match, cseq_method: str | None = None) -> bool:
    """Does ``msg`` match ``what`` (a method, a status, or a predicate)? ``cseq_method``
    narrows responses to those of one method (200 of the BYE, not of the INVITE)."""
    if callable(what):
        return bool(what(msg))
    if isinstance(what, int):
        ok = msg.status == what
    else:
        ok = msg.method == what.upper()
    if ok and cseq_method is not None:
        cseq = msg.cseq
        ok = cseq is not None and cseq.method == cseq_method.upper()
    return ok


class _Stream:
    """One TCP connection of a peer: frames messages by Content-Length and hands them up."""

    def __init__(self, peer: SipPeer, sock: socket.socket, label: str) -> None:
        self.peer = peer
        self.sock = sock
        self.label = label
        self.closed = False
        self._lock = threading.Lock()
        self._thread = threading.Thread(target=self._read, name=f"sip-peer-{peer.port}-{label}", daemon=True)

    def start(self) -> None:
        self._thread.start()

    def send(self, data: bytes) -> None:
        with self._lock:
            self.sock.sendall(data)

    def close(self) -> None:
        self.closed = True
        with contextlib.suppress(OSError):
            self.sock.shutdown(socket.SHUT_RDWR)
        self._thread.join(5)
        self.sock.close()

    def _read(self) -> None:
        buf = b""
        while True:
            try:
                chunk = self.sock.recv(65536)
            except OSError:
                chunk = b""
            if not chunk:
                self.closed = True
                return
            buf += chunk
            while True:
                buf = buf.lstrip(b"\r\n")        # keep-alives between messages
                end = buf.find(b"\r\n\r\n")
                if end < 0:
                    break
                match = _CONTENT_LENGTH.search(buf[:end + 2])
                size = int(match.group(1)) if match else 0
                total = end + 4 + size
                if len(buf) < total:
                    break
                data, buf = buf[:total], buf[total:]
                self.peer._dispatch(data, self, self.label)


_CONTENT_LENGTH = re.compile(rb"\r\n(?:content-length|l)[ \t]*:[ \t]*([0-9]{1,9})[ \t]*\r\n", re.IGNORECASE)

Source: TypeAlias = "tuple[str, int] | _Stream"
"""Where a message came from: a UDP address or the TCP connection it arrived on."""


@dataclass
class Reply:
    """How the peer answers requests of one method: ``status`` (None for INVITE: ring and
    wait for :meth:`PeerDialog.answer` or a CANCEL), extra ``headers``, and a ``body`` with
    its ``content_type`` (for INVITE/re-INVITE/UPDATE the default body is the peer's SDP)."""

    status: int | None = 200
    """Final status to answer with; None for INVITE: ring and wait for answer() or a CANCEL."""
    headers: Mapping[str, str] = field(default_factory=dict)
    """Extra headers added to the reply."""
    body: str | None = None
    """Reply body (None: the peer's SDP for INVITE/re-INVITE/UPDATE, else no body)."""
    content_type: str = "application/sdp"
    """Content-Type sent with the body."""


class PeerDialog:
    """A call of the peer (placed or answered): its identifiers, what the far side said, and
    methods to send requests in it."""

    def __init__(self, peer: SipPeer, role: str, call_id: str, local_tag: str, local_uri: str,
                 remote_uri: str) -> None:
        self.peer = peer
        """The SipPeer this call belongs to."""
        self.role = role
        """"uac" when the peer placed the call, "uas" when it answered it."""
        self.call_id = call_id
        """The Call-ID."""
        self.local_tag = local_tag
        """The peer's own tag."""
        self.remote_tag: str | None = None
        """The far side's tag (None until it answered)."""
        self.local_uri = local_uri
        """The peer's URI in this call (From as UAC, To as UAS)."""
        self.remote_uri = remote_uri
        """The other side's URI (To as UAC, From as UAS)."""
        self.remote_target: str | None = None
        """The far side's Contact URI: where in-dialog requests go."""
        self.route_set: list[str] = []
        """Record-Route entries in the order the peer sends them as Route."""
        self.local_cseq = 0
        """CSeq number of the peer's last request in this call."""
        self.invite: SipMessage | None = None
        """The INVITE that created the call (sent or received)."""
        self.final: SipMessage | None = None
        """The final response to that INVITE (sent or received)."""
        self.provisional: list[SipMessage] = []
        """1xx responses the peer received to its INVITE."""
        self.state = "early"
        """"early", "confirmed" (answered and ACKed / ACK sent), "failed" or "terminated"."""
        self.acked = threading.Event()
        """Set when the ACK of the 2xx was received (peer as UAS) or sent (peer as UAC)."""
        self.ended = threading.Event()
        """Set when a BYE ended the call (either way)."""
        self._pending_invite: tuple[SipMessage, Source] | None = None

    # -- what the far side said ----------------------------------------------------------------

    @property
    def status(self) -> int | None:
        """Status of the final response to the INVITE, or None while none came."""
        return self.final.status if self.final is not None else None

    @property
    def remote_sdp(self) -> str:
        """The far side's SDP: the 2xx body (peer as UAC) or the INVITE body (as UAS)."""
        msg = self.final if self.role == "uac" else self.invite
        return msg.body if msg is not None else ""

    def wait_for(self, what: Match, timeout: float = 5.0, *, cseq_method: str | None = None) -> SipMessage:
        """Like :meth:`SipPeer.wait_for`, for messages of this call only."""
        return self.peer.wait_for(
            lambda m: m.call_id == self.call_id and matches(m, what, cseq_method), timeout,
            description=f"{what!r} in call {self.call_id}")

    def wait_confirmed(self, timeout: float = 5.0) -> PeerDialog:
        """Block until the call is answered and ACKed (peer as UAS: the ACK arrived)."""
        if not self.acked.wait(timeout):
            raise PeerTimeout(f"call {self.call_id} not confirmed within {timeout}s "
                              f"(state {self.state})\n{self.peer.transcript()}")
        return self

    # -- sending -----------------------------------------------------------------------------------

    def request(self, method: str, *, body: str | None = None, content_type: str = "application/sdp",
                headers: Mapping[str, str] | None = None, timeout: float = 5.0) -> SipMessage:
        """Send ``method`` in this call and return its final response (a 2xx to a re-INVITE is
        ACKed). Raises :class:`PeerTimeout` when none comes within ``timeout``."""
        if self.remote_target is None or self.remote_tag is None:
            raise RuntimeError(f"call {self.call_id} is not established (state {self.state})")
        self.local_cseq += 1
        cseq = self.local_cseq
        msg = self.peer._request_text(
            method, self.remote_target, call_id=self.call_id, cseq=cseq,
            from_=f"<{self.local_uri}>;tag={self.local_tag}",
            to=f"<{self.remote_uri}>;tag={self.remote_tag}", routes=self.route_set,
            headers=headers, body=body, content_type=content_type)
        dest = _addr_of(self.route_set[0] if self.route_set else self.remote_target)
        final = self.peer._transact(msg, dest, timeout)
        if method.upper() == "INVITE" and final.status is not None and 200 <= final.status < 300:
            self.peer._send_ack(self, final, cseq)
        if method.upper() == "BYE":
            self.state = "terminated"
            self.ended.set()
        return final

    def bye(self, **kwargs: Any) -> SipMessage:
        """Hang up; the final response to the BYE."""
        return self.request("BYE", **kwargs)

    def info(self, body: str = "", content_type: str = "application/dtmf-relay", **kwargs: Any) -> SipMessage:
        """Send INFO (by default a DTMF relay body); its final response."""
        return self.request("INFO", body=body, content_type=content_type, **kwargs)

    def reinvite(self, sdp: str | None = None, **kwargs: Any) -> SipMessage:
        """Send a re-INVITE with ``sdp`` (default: the peer's SDP); its final response."""
        return self.request("INVITE", body=self.peer.sdp if sdp is None else sdp, **kwargs)

    def update(self, sdp: str | None = None, **kwargs: Any) -> SipMessage:
        """Send UPDATE with ``sdp`` (default: the peer's SDP); its final response."""
        return self.request("UPDATE", body=self.peer.sdp if sdp is None else sdp, **kwargs)

    def cancel(self, timeout: float = 5.0) -> SipMessage:
        """CANCEL the peer's unanswered INVITE; returns the final response to the INVITE."""
        if self.invite is None or self.role != "uac":
            raise RuntimeError("only a call the peer placed can be cancelled")
        self.peer._send_cancel(self.invite)
        return self.wait_answer(timeout)

    def wait_answer(self, timeout: float = 5.0) -> SipMessage:
        """The final response to the peer's INVITE, waiting up to ``timeout`` s for it."""
        with self.peer._cond:
            if not self.peer._cond.wait_for(lambda: self.final is not None, timeout):
                raise PeerTimeout(f"no final response to INVITE {self.call_id} within {timeout}s\n"
                                  f"{self.peer.transcript()}")
        assert self.final is not None
        return self.final

    def answer(self, status: int = 200, *, body: str | None = None,
               headers: Mapping[str, str] | None = None) -> None:
        """Answer an incoming INVITE the peer holds (``set_reply("INVITE", None)``)."""
        with self.peer._cond:
            pending, self._pending_invite = self._pending_invite, None
        if pending is None:
            raise RuntimeError(f"call {self.call_id} has no INVITE waiting for an answer")
        self.peer._final_to_invite(self, pending[0], pending[1], status, headers or {},
                                   self.peer.sdp if body is None and status < 300 else body)

    def __repr__(self) -> str:
        return f"<PeerDialog {self.role} {self.call_id} {self.state}>"


class SipPeer:
    """A SIP user agent on a UDP port of 127.0.0.1 (see the module docstring).

    ``ring`` sends 180 before answering an INVITE; ``sdp`` is what the peer offers and answers;
    ``user`` the user part of its URI and Contact.
    """

    def __init__(self, *, host: str = LOOPBACK, port: int = 0, user: str = "peer",
                 sdp: str = DEFAULT_SDP, ring: bool = True, transport: str = "udp") -> None:
        if transport not in ("udp", "tcp"):
            raise ValueError(f"transport must be 'udp' or 'tcp', not {transport!r}")
        self.transport = transport
        """"udp" or "tcp": how the peer sends and listens."""
        self.host = host
        """Loopback address the peer binds and puts in its URI and Contact."""
        self.user = user
        """User part of the peer's URI and Contact."""
        self.sdp = sdp
        """SDP the peer offers in INVITEs and answers with."""
        self.ring = ring
        """Send 180 Ringing before the final response to an INVITE."""
        kind = socket.SOCK_DGRAM if transport == "udp" else socket.SOCK_STREAM
        self.sock = socket.socket(socket.AF_INET, kind)
        """The peer's bound socket (UDP, or the TCP listening socket)."""
        if transport == "tcp":
            self.sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        self.sock.bind((host, port))
        if transport == "tcp":
            self.sock.listen(16)
        self.port: int = self.sock.getsockname()[1]
        """The port the peer listens on."""
        self._streams: dict[tuple[str, int], _Stream] = {}
        self._all_streams: list[_Stream] = []
        self.received: list[SipMessage] = []
        """Every distinct message received, in order (retransmissions are in ``retransmitted``)."""
        self.retransmitted: list[SipMessage] = []
        """Retransmissions of messages already in ``received``."""
        self.sent: list[SipMessage] = []
        """Every message the peer sent, in order."""
        self.dialogs: list[PeerDialog] = []
        """Calls of the peer, placed or answered, in the order they started."""
        self.replies: dict[str, Reply] = {}
        """Reply per method (upper case; "re-INVITE" for INVITEs in a call) set by ``set_reply``."""
        self.errors: list[str] = []
        """Datagrams the peer could not parse (with the parse error)."""
        self._cond = threading.Condition()
        self._log: list[tuple[str, SipMessage]] = []
        self._taken: set[int] = set()
        self._seen_requests: dict[tuple[str, str, str], SipMessage | None] = {}
        self._seen_responses: set[tuple[str, str, int, str | None]] = set()
        self._clients: dict[tuple[str, str], SipMessage | None] = {}
        self._by_call: dict[tuple[str, str], PeerDialog] = {}
        self._cseq = itertools.count(1)
        self._closed = False
        self._thread = threading.Thread(target=self._run, name=f"sip-peer-{self.port}", daemon=True)
        self._thread.start()

    # -- identity ------------------------------------------------------------------------------

    @property
    def uri(self) -> str:
        """``sip:<user>@127.0.0.1:<port>`` (with ``;transport=tcp`` over TCP): how others reach
        the peer."""
        suffix = ";transport=tcp" if self.transport == "tcp" else ""
        return f"sip:{self.user}@{self.host}:{self.port}{suffix}"

    @property
    def contact(self) -> str:
        """The peer's Contact header value."""
        return f"<{self.uri}>"

    # -- configuration ---------------------------------------------------------------------------

    def set_reply(self, method: str, status: int | None, *, headers: Mapping[str, str] | None = None,
                  body: str | None = None, content_type: str = "application/sdp") -> None:
        """Answer requests of ``method`` with ``status`` from now on ("INVITE" for new calls,
        "re-INVITE" for INVITEs in a call; status None on "INVITE" rings and holds the call
        until :meth:`PeerDialog.answer`)."""
        key = method if method == "re-INVITE" else method.upper()
        self.replies[key] = Reply(status, dict(headers or {}), body, content_type)

    # -- waiting ---------------------------------------------------------------------------------

    def wait_for(self, what: Match, timeout: float = 5.0, *, cseq_method: str | None = None,
                 description: str | None = None) -> SipMessage:
        """The first received message matching ``what`` that no earlier ``wait_for`` returned,
        waiting up to ``timeout`` s for it; raises :class:`PeerTimeout` listing what came."""
        def find() -> SipMessage | None:
            for i, msg in enumerate(self.received):
                if i not in self._taken and matches(msg, what, cseq_method):
                    self._taken.add(i)
                    return msg
            return None

        deadline = time.monotonic() + timeout
        with self._cond:
            while True:
                msg = find()
                if msg is not None:
                    return msg
                left = deadline - time.monotonic()
                if left <= 0:
                    break
                self._cond.wait(left)
        raise PeerTimeout(f"peer {self.uri} did not receive {description or repr(what)} within "
                          f"{timeout}s\n{self.transcript()}")

    def wait_call(self, timeout: float = 5.0) -> PeerDialog:
        """The next call placed to the peer, once answered and ACKed."""
        invite = self.wait_for(lambda m: m.method == "INVITE" and not m.to_tag, timeout,
                               description="an INVITE")
        call = self._by_call.get((invite.call_id or "", "uas"))
        assert call is not None
        return call.wait_confirmed(timeout)

    def received_requests(self, method: str | None = None) -> list[SipMessage]:
        """Requests received so far (of ``method`` if given), retransmissions left out."""
        with self._cond:
            return [m for m in self.received if m.method and (method is None or m.method == method.upper())]

    def transcript(self, full: bool = False) -> str:
        """One line per message received (``full``: every message sent and received, whole
        text, in order), for failure reports."""
        with self._cond:
            if full:
                return "\n".join(f"--- {way} ---\n{m.to_string()}" for way, m in self._log) or "(no messages)"
            lines = [f"  recv {_describe(m)}" for m in self.received]
        return "messages received:\n" + ("\n".join(lines) if lines else "  (none)")

    # -- placing calls ----------------------------------------------------------------------------

    def invite(self, target: str | int, *, sdp: str | None = None, headers: Mapping[str, str] | None = None,
               wait: bool = True, timeout: float = 5.0, to: str | None = None,
               auth: tuple[str, str] | None = None) -> PeerDialog:
        """Place a call to ``target`` (a SIP URI, or a port on 127.0.0.1) offering ``sdp``
        (default: the peer's; "" for no offer). With ``wait`` returns once the final response
        came (a 2xx is ACKed); otherwise at once (see :meth:`PeerDialog.wait_answer`). With
        ``auth=(username, password)`` a 401/407 is answered once with Digest credentials
        (``wait`` only)."""
        uri = f"sip:service@{LOOPBACK}:{target}" if isinstance(target, int) else target
        body = self.sdp if sdp is None else sdp
        call = PeerDialog(self, "uac", f"{_token()}@{self.host}", _token(), self.uri, _uri_of(to or uri))
        with self._cond:
            self.dialogs.append(call)
            self._by_call[(call.call_id, "uac")] = call

        def send(extra: Mapping[str, str]) -> None:
            call.local_cseq = next(self._cseq)
            invite = self._request_text("INVITE", uri, call_id=call.call_id, cseq=call.local_cseq,
                                        from_=f"<{call.local_uri}>;tag={call.local_tag}",
                                        to=f"<{call.remote_uri}>", headers={**(headers or {}), **extra},
                                        body=body or None)
            with self._cond:
                call.invite, call.final, call.state = invite, None, "early"
            self._send(invite, _addr_of(uri))

        send({})
        if wait:
            final = call.wait_answer(timeout)
            if auth is not None and final.status in (401, 407):
                send(_credentials(final, auth, "INVITE", uri, body or ""))
                call.wait_answer(timeout)
        return call

    def request(self, method: str, target: str | int, *, body: str | None = None,
                content_type: str = "application/sdp", headers: Mapping[str, str] | None = None,
                timeout: float = 5.0, auth: tuple[str, str] | None = None) -> SipMessage:
        """Send an out-of-dialog request (OPTIONS, REGISTER, MESSAGE, ...) and return its final
        response; with ``auth=(username, password)`` a 401/407 is answered once with Digest
        credentials (same Call-ID and From tag, next CSeq)."""
        uri = f"sip:service@{LOOPBACK}:{target}" if isinstance(target, int) else target
        call_id, from_ = f"{_token()}@{self.host}", f"<{self.uri}>;tag={_token()}"

        def send(extra: Mapping[str, str]) -> SipMessage:
            msg = self._request_text(method, uri, call_id=call_id, cseq=next(self._cseq), from_=from_,
                                     to=f"<{_uri_of(uri)}>", headers={**(headers or {}), **extra},
                                     body=body, content_type=content_type)
            return self._transact(msg, _addr_of(uri), timeout)

        final = send({})
        if auth is not None and final.status in (401, 407):
            final = send(_credentials(final, auth, method, uri, body or ""))
        return final

    def options(self, target: str | int, **kwargs: Any) -> SipMessage:
        """Send OPTIONS; its final response."""
        return self.request("OPTIONS", target, **kwargs)

    def register(self, target: str | int, *, expires: int = 3600, aor: str | None = None,
                 headers: Mapping[str, str] | None = None, **kwargs: Any) -> SipMessage:
        """REGISTER the peer's Contact for ``aor`` (default: the peer's URI); its final response."""
        uri = f"sip:{LOOPBACK}:{target}" if isinstance(target, int) else target
        extra = {"Expires": str(expires), **(headers or {})}
        if aor is not None:
            extra["To"] = f"<{aor}>"
            extra["From"] = f"<{aor}>;tag={_token()}"
        return self.request("REGISTER", uri, headers=extra, **kwargs)

    # -- lifecycle -----------------------------------------------------------------------------------

    def close(self) -> None:
        """Stop receiving and release the port."""
        self._closed = True
        with contextlib.suppress(OSError):
            self.sock.shutdown(socket.SHUT_RDWR)
        if self.transport == "udp":
            # a UDP socket's recvfrom is not woken by shutdown everywhere: send it a datagram
            with contextlib.suppress(OSError), socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
                s.sendto(b"", (self.host, self.port))
        self._thread.join(5)
        self.sock.close()
        with self._cond:
            streams = list(self._all_streams)
        for stream in streams:
            stream.close()

    def __enter__(self) -> SipPeer:  # noqa: PYI034 - Python 3.10 has no typing.Self
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    # -- building and sending ---------------------------------------------------------------------

    @staticmethod
    def _branch(msg: SipMessage) -> str:
        vias = msg.get_parsed_header("via") or []
        return str(vias[0]["params"].get("branch") or "") if vias else ""

    def _request_text(self, method: str, ruri: str, *, call_id: str, cseq: int, from_: str, to: str,
                      routes: list[str] | None = None, headers: Mapping[str, str] | None = None,
                      body: str | None = None, content_type: str = "application/sdp",
                      branch: str | None = None) -> SipMessage:
        extra = {_canonical(k): v for k, v in (headers or {}).items()}
        lines = [f"{method} {ruri} SIP/2.0",
                 f"Via: SIP/2.0/{self.transport.upper()} {self.host}:{self.port};branch={branch or 'z9hG4bK' + _token()};rport",
                 "Max-Forwards: 70"]
        lines += [f"Route: {r}" for r in routes or []]
        lines += [f"From: {extra.pop('From', from_)}", f"To: {extra.pop('To', to)}",
                  f"Call-ID: {call_id}", f"CSeq: {cseq} {method}"]
        if method not in ("ACK", "CANCEL", "BYE"):
            lines.append(f"Contact: {extra.pop('Contact', self.contact)}")
        lines += [f"{k}: {v}" for k, v in extra.items()]
        if body:
            lines.append(f"Content-Type: {content_type}")
        lines.append(f"Content-Length: {len((body or '').encode())}")
        return SipMessage("\r\n".join(lines) + "\r\n\r\n" + (body or ""))

    def _response_text(self, req: SipMessage, status: int, *, to_tag: str | None,
                       headers: Mapping[str, str] | None = None, body: str | None = None,
                       content_type: str = "application/sdp", contact: bool = False) -> SipMessage:
        to = req.get("to") or ""
        if to_tag and ";tag=" not in to and status > 100:
            to += f";tag={to_tag}"
        lines = [f"SIP/2.0 {status} {_reason(status)}"]
        lines += [f"Via: {v}" for v in req.get_all("via")]
        if contact and status > 100:
            lines += [f"Record-Route: {v}" for v in req.get_all("record-route")]
        lines += [f"From: {req.get('from')}", f"To: {to}", f"Call-ID: {req.call_id}",
                  f"CSeq: {req.get('cseq')}"]
        if contact and status > 100:
            lines.append(f"Contact: {self.contact}")
        lines += [f"{k}: {v}" for k, v in (headers or {}).items()]
        if body:
            lines.append(f"Content-Type: {content_type}")
        lines.append(f"Content-Length: {len((body or '').encode())}")
        return SipMessage("\r\n".join(lines) + "\r\n\r\n" + (body or ""))

    def _send(self, msg: SipMessage, dest: Source) -> None:
        data = msg.to_string().encode()
        where = dest.label if isinstance(dest, _Stream) else f"{dest[0]}:{dest[1]}"
        with self._cond:
            self.sent.append(msg)
            self._log.append((f"sent to {where}", msg))
        logger.debug("peer %s send to %s\n%s", self.port, where, data.decode(errors="replace"))
        if isinstance(dest, _Stream):
            dest.send(data)
        elif self.transport == "udp":
            self.sock.sendto(data, dest)
        else:
            self._stream_to(dest).send(data)

    def _stream_to(self, addr: tuple[str, int]) -> _Stream:
        """The TCP connection to ``addr`` the peer opened, opening it on first use."""
        with self._cond:
            stream = self._streams.get(addr)
            if stream is not None and not stream.closed:
                return stream
        sock = socket.create_connection(addr, timeout=5)
        sock.settimeout(None)
        stream = _Stream(self, sock, f"tcp {addr[0]}:{addr[1]}")
        with self._cond:
            self._streams[addr] = stream
            self._all_streams.append(stream)
        stream.start()
        return stream

    def _transact(self, msg: SipMessage, dest: tuple[str, int], timeout: float) -> SipMessage:
        key = (self._branch(msg), msg.method or "")
        self._clients[key] = None
        self._send(msg, dest)
        with self._cond:
            ok = self._cond.wait_for(lambda: self._clients.get(key) is not None, timeout)
            final = self._clients.pop(key, None)
        if not ok or final is None:
            raise PeerTimeout(f"no final response to {msg.method} within {timeout}s\n{self.transcript()}")
        return final

    def _send_ack(self, call: PeerDialog, final: SipMessage, cseq: int) -> None:
        """ACK of a 2xx: a new transaction to the remote target, through the route set."""
        target = call.remote_target or (call.invite.uri if call.invite else "")
        ack = self._request_text("ACK", target or "", call_id=call.call_id, cseq=cseq,
                                 from_=f"<{call.local_uri}>;tag={call.local_tag}",
                                 to=final.get("to") or "", routes=call.route_set)
        self._send(ack, _addr_of(call.route_set[0] if call.route_set else target or ""))

    def _send_cancel(self, invite: SipMessage) -> None:
        cancel = self._request_text("CANCEL", invite.uri or "", call_id=invite.call_id or "",
                                    cseq=invite.cseq.seq if invite.cseq else 1,
                                    from_=invite.get("from") or "", to=invite.get("to") or "",
                                    branch=self._branch(invite))
        self._clients[(self._branch(cancel), "CANCEL")] = None
        self._send(cancel, _addr_of(invite.uri or ""))

    # -- receiving -----------------------------------------------------------------------------------

    def _run(self) -> None:
        while not self._closed:
            if self.transport == "tcp":
                try:
                    conn, addr = self.sock.accept()
                except OSError:
                    return
                if self._closed:
                    conn.close()
                    return
                stream = _Stream(self, conn, f"tcp {addr[0]}:{addr[1]}")
                with self._cond:
                    self._all_streams.append(stream)
                stream.start()
                continue
            try:
                data, source = self.sock.recvfrom(65535)
            except OSError:
                return
            if self._closed:
                return
            if data.strip():        # else a keep-alive (or the wake-up of close())
                self._dispatch(data, source, f"{source[0]}:{source[1]}")

    def _dispatch(self, data: bytes, source: Source, where: str) -> None:
        """Parse one message and hand it to the UAC or UAS side; never raises."""
        try:
            msg = SipMessage(data)
        except SipParseError as exc:
            logger.warning("peer %s: unparsable message from %s: %s", self.port, where, exc)
            with self._cond:
                self.errors.append(f"{exc}: {data[:200]!r}")
            return
        logger.debug("peer %s recv from %s\n%s", self.port, where, data.decode(errors="replace"))
        try:
            if msg.method:
                self._on_request(msg, source)
            else:
                self._on_response(msg)
        except Exception:   # a test peer must keep receiving whatever one message did
            logger.exception("peer %s failed handling %s", self.port, _describe(msg))

    def _record(self, msg: SipMessage, retransmission: bool) -> None:
        with self._cond:
            (self.retransmitted if retransmission else self.received).append(msg)
            self._log.append(("received (retransmission)" if retransmission else "received", msg))
            self._cond.notify_all()

    def _on_response(self, msg: SipMessage) -> None:
        cseq = msg.cseq
        method = cseq.method if cseq else ""
        key = (self._branch(msg), method)
        seen = (key[0], method, msg.status or 0, msg.to_tag)
        retrans = seen in self._seen_responses
        self._seen_responses.add(seen)
        call = self._by_call.get((msg.call_id or "", "uac"))
        status = msg.status or 0
        if method == "INVITE" and call is not None and call.invite is not None \
                and self._branch(call.invite) == key[0]:
            if status >= 200 and retrans:
                if status < 300:
                    self._send_ack(call, msg, cseq.seq if cseq else 1)   # the 2xx came again
                self._record(msg, True)
                return
            if status >= 200 and status < 300:
                call.remote_tag = msg.to_tag
                contact = msg.get("contact")
                call.remote_target = _uri_of(contact) if contact else call.invite.uri
                call.route_set = list(reversed(msg.get_all("record-route")))
                self._send_ack(call, msg, cseq.seq if cseq else 1)
                with self._cond:    # final is set once the ACK is out: the test's BYE comes after it
                    call.final = msg
                    call.state = "confirmed"
                call.acked.set()
            elif status >= 300:
                # ACK of a non-2xx: same branch, hop by hop, to where the INVITE went
                ack = self._request_text("ACK", call.invite.uri or "", call_id=call.call_id,
                                         cseq=cseq.seq if cseq else 1, from_=call.invite.get("from") or "",
                                         to=msg.get("to") or "", branch=key[0])
                self._send(ack, _addr_of(call.invite.uri or ""))
                with self._cond:
                    call.final = msg
                    call.state = "failed"
            elif not retrans:
                call.provisional.append(msg)
            self._record(msg, retrans)
            return
        with self._cond:
            if status >= 200 and key in self._clients and self._clients[key] is None:
                self._clients[key] = msg
        self._record(msg, retrans)

    def _reply_for(self, method: str, in_dialog: bool) -> Reply:
        key = "re-INVITE" if method == "INVITE" and in_dialog else method
        return self.replies.get(key) or Reply(200)

    def _on_request(self, msg: SipMessage, source: Source) -> None:
        method = msg.method or ""
        seen_key = (self._branch(msg), method, msg.call_id or "")
        if method != "ACK" and seen_key in self._seen_requests:
            last = self._seen_requests[seen_key]
            self._record(msg, True)             # recorded before the answer goes out
            if last is not None:
                self._send(last, source)        # a retransmitted request: answer it again
            return
        self._seen_requests[seen_key] = None
        call = self._by_call.get((msg.call_id or "", "uas")) or self._by_call.get((msg.call_id or "", "uac"))
        # the peer's state is updated before the message is recorded (a test woken by wait_for
        # sees it), and the answer goes out after
        if method == "ACK":
            if call is not None and call.final is not None and (call.final.status or 0) < 300:
                call.state = "confirmed"
                call.acked.set()
            self._record(msg, False)
            return
        if method == "CANCEL":
            self._record(msg, False)
            self._on_cancel(msg, source, call)
            return
        if method == "INVITE" and not msg.to_tag:
            self._on_new_invite(msg, source)
            return
        reply = self._reply_for(method, bool(msg.to_tag))
        status = reply.status or 200
        body = reply.body
        if body is None and method in ("INVITE", "UPDATE") and msg.body and status < 300:
            body = self.sdp
        if call is not None and method == "BYE" and status < 300:
            call.state = "terminated"
            call.ended.set()
        self._record(msg, False)
        self._respond(msg, source, status, to_tag=call.local_tag if call else _token(),
                      headers=reply.headers, body=body, content_type=reply.content_type,
                      contact=method in ("INVITE", "UPDATE", "SUBSCRIBE", "NOTIFY"))

    def _respond(self, req: SipMessage, source: Source, status: int, *, to_tag: str | None,
                 headers: Mapping[str, str] | None = None, body: str | None = None,
                 content_type: str = "application/sdp", contact: bool = False) -> SipMessage:
        res = self._response_text(req, status, to_tag=to_tag, headers=headers, body=body,
                                   content_type=content_type, contact=contact)
        self._seen_requests[(self._branch(req), req.method or "", req.call_id or "")] = res
        self._send(res, source)
        return res

    def _on_new_invite(self, msg: SipMessage, source: Source) -> None:
        call = PeerDialog(self, "uas", msg.call_id or "", _token(), _uri_of(msg.get("to") or ""),
                          _uri_of(msg.get("from") or ""))
        call.invite = msg
        call.remote_tag = msg.from_tag
        contact = msg.get("contact")
        call.remote_target = _uri_of(contact) if contact else None
        call.route_set = msg.get_all("record-route")
        call._pending_invite = (msg, source)      # until a final response is sent
        with self._cond:
            self.dialogs.append(call)
            self._by_call[(call.call_id, "uas")] = call
        self._record(msg, False)
        self._respond(msg, source, 100, to_tag=None)
        reply = self._reply_for("INVITE", False)
        if self.ring or reply.status is None:
            self._respond(msg, source, 180, to_tag=call.local_tag, contact=True)
        if reply.status is None:
            return
        body = reply.body
        if body is None and reply.status < 300:
            body = self.sdp
        self._final_to_invite(call, msg, source, reply.status, reply.headers, body)

    def _final_to_invite(self, call: PeerDialog, invite: SipMessage, source: Source, status: int,
                         headers: Mapping[str, str], body: str | None) -> None:
        call._pending_invite = None
        call.final = self._respond(invite, source, status, to_tag=call.local_tag, headers=headers,
                                   body=body, contact=True)
        call.state = "early" if status < 300 else "failed"

    def _on_cancel(self, msg: SipMessage, source: Source, call: PeerDialog | None) -> None:
        pending = None
        if call is not None and call.role == "uas":
            with self._cond:
                pending, call._pending_invite = call._pending_invite, None
        if call is None or pending is None:
            self._respond(msg, source, 481, to_tag=_token())
            return
        invite, invite_source = pending
        self._respond(msg, source, 200, to_tag=call.local_tag)
        self._final_to_invite(call, invite, invite_source, 487, {}, None)


def _credentials(challenge: SipMessage, auth: tuple[str, str], method: str, uri: str,
                 body: str) -> dict[str, str]:
    """The Authorization (401) or Proxy-Authorization (407) header answering ``challenge``."""
    proxy = challenge.status == 407
    values = challenge.get_all("proxy-authenticate" if proxy else "www-authenticate")
    chosen = digest.choose_challenge(digest.parse_challenges(values))
    value = digest.build_authorization(chosen, username=auth[0], password=auth[1], method=method,
                                       uri=uri, body=body)
    return {"Proxy-Authorization" if proxy else "Authorization": value}


def _canonical(name: str) -> str:
    """Header names the peer fills in itself, spelled one way so a caller's value replaces them."""
    lower = name.lower()
    return {"from": "From", "to": "To", "contact": "Contact"}.get(lower, name)


def _reason(status: int) -> str:
    return reason_phrase(status) or "Unknown"
