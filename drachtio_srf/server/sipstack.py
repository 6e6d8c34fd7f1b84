"""The embedded server's SIP stack: UDP/TCP transports and RFC 3261 transactions on asyncio.

`SipStack` receives messages, matches them to transactions (RFC 3261 17.1.3 / 17.2.3), answers
retransmissions, 100 Trying, ACKs and CANCELs at the transaction level, and hands everything else
to a `StackHandler` (the server core). It knows nothing about the control protocol or apps.
"""
from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable, Iterable
from typing import Protocol

from drachtio_srf.sip import SipMessage

from . import sip_build, sip_checks
from .sip_transaction import TERMINATED, ClientTransaction, ServerTransaction, encode
from .sip_transport import Source, Target, Transports
from .timers import Timer, TimerWheel

logger = logging.getLogger(__name__)

__all__ = ["ClientTransaction", "ServerTransaction", "SipStack", "Source", "StackHandler", "Target"]

ResponseCallback = Callable[[SipMessage, ClientTransaction], None]

#: a request the app never answers is dropped by the stack after this many seconds
UNANSWERED_INVITE_LIFETIME = 600.0

_PARSE_ERRORS = (ValueError, LookupError, TypeError, AttributeError)


class StackHandler(Protocol):
    """What the stack calls up into (the server core)."""

    def on_request(self, stx: ServerTransaction | None, msg: SipMessage, source: Source) -> None:
        """A new request (stx None: an ACK to a 2xx, or an ACK nobody was waiting for)."""

    def on_cancel(self, invite_stx: ServerTransaction | None, cancel: SipMessage, source: Source) -> int:
        """A CANCEL; return the status for the CANCEL's response (200 or 481)."""

    def on_ack_timeout(self, stx: ServerTransaction, response: SipMessage) -> None:
        """A 2xx we sent to an INVITE got no ACK within 64*T1."""

    def on_2xx_retransmission(self, response: SipMessage, source: Source) -> None:
        """A 2xx to an INVITE we sent arrived again (or matched no transaction)."""


class SipStack:
    """SIP transports and transactions on one host:port (UDP and TCP)."""

    def __init__(self, host: str, port: int, *, handler: StackHandler, t1: float = 0.5,
                 t2: float = 4.0, t4: float = 5.0, public_host: str | None = None) -> None:
        self.host = host
        """Local address the transports bind."""
        self.port = port
        """Local SIP port (the bound one after start)."""
        self.handler = handler
        """The StackHandler that gets requests, CANCELs and timeouts (the core)."""
        self.t1 = t1
        """SIP timer T1 in seconds (round-trip estimate)."""
        self.t2 = t2
        """SIP timer T2 in seconds (longest retransmission interval)."""
        self.t4 = t4
        """SIP timer T4 in seconds (how long a message may stay in the network)."""
        self.public_host = public_host
        """Address put in Via/Contact instead of ``host`` when set (public address)."""
        self._transports = Transports(host, port, self._on_message)
        self._loop: asyncio.AbstractEventLoop = None  # type: ignore[assignment]  # set by start()
        self._timers: TimerWheel = None  # type: ignore[assignment]  # set by start()
        self._server_txns: dict[tuple, ServerTransaction] = {}
        self._client_txns: dict[tuple[str, str], ClientTransaction] = {}
        #: (Call-ID, our To tag) -> the INVITE transaction whose 2xx waits for its ACK
        self._awaiting_ack: dict[tuple, ServerTransaction] = {}
        self._seen_acks: dict[tuple, Timer] = {}
        self._closed = False

    @property
    def server_transaction_count(self) -> int:
        """Server transactions the stack holds (answered ones linger for their timers)."""
        return len(self._server_txns)

    @property
    def via_host(self) -> str:
        """The host we put in our Via headers."""
        return self.public_host or self.host

    async def start(self) -> None:
        """Bind UDP and TCP on host:port (port 0: one free port for both)."""
        self._loop = asyncio.get_running_loop()
        self._timers = TimerWheel(self._loop)
        await self._transports.start()
        self.port = self._transports.port

    def close(self) -> None:
        """Stop listening, close connections, drop every transaction and timer."""
        if self._closed:
            return
        self._closed = True
        self._transports.close()
        for stx in list(self._server_txns.values()):
            stx._terminate()
        for ctx in list(self._client_txns.values()):
            ctx._terminate()
        if self._timers is not None:
            self._timers.close()
        self._seen_acks.clear()
        self._awaiting_ack.clear()

    # ------------------------------------------------------------------------------ client side

    def _our_via(self, transport: str, branch: str) -> str:
        return f"SIP/2.0/{transport.upper()} {self.via_host}:{self.port};branch={branch};rport"

    def send_request(self, msg: SipMessage, target: Target,
                     on_response: ResponseCallback) -> ClientTransaction:
        """Send a request in a new client transaction (our Via prepended); returns the transaction."""
        if msg.type != "request":
            raise ValueError("send_request() needs a request")
        branch = sip_build.new_branch()
        msg.prepend("via", self._our_via(target.transport, branch))
        data = encode(msg)
        ctx = ClientTransaction(self, msg, target, on_response, branch, data)
        if msg.method == "ACK":  # no transaction for an ACK: send once, never report
            ctx._state = TERMINATED
            ctx._send(data)
            return ctx
        ctx._start()
        return ctx

    def cancel(self, ctx: ClientTransaction, extra_headers: Iterable[tuple[str, str]] = (),
               on_response: ResponseCallback | None = None) -> bool:
        """CANCEL an INVITE we sent (RFC 3261 9.1); held until a provisional response arrived.

        Returns False (and does nothing) when the INVITE already has a final response. The CANCEL
        is available at once as `ctx.cancel_request`; its own transaction, once started, as
        `ctx.cancel_ctx`; its responses go to `on_response` if given.
        """
        if ctx.method != "INVITE":
            raise ValueError(f"only an INVITE can be canceled, not {ctx.method}")
        if ctx.final_response is not None or ctx.terminated or ctx.state == "completed":
            return False
        if ctx.cancel_request is not None:
            return True
        ctx.cancel_request = SipMessage(sip_build.cancel_for(ctx.request, extra_headers))
        ctx._on_cancel_response = on_response
        if ctx.provisional_received:
            self._send_cancel(ctx)
        return True

    def _send_cancel(self, ctx: ClientTransaction) -> None:
        cancel = ctx.cancel_request
        assert cancel is not None
        callback = ctx._on_cancel_response or _ignore_response
        cctx = ClientTransaction(self, cancel, ctx.target, callback, ctx.branch, encode(cancel))
        ctx.cancel_ctx = cctx
        cctx._start()

    def send_stateless(self, msg: SipMessage, target: Target, *, add_via: bool | None = None) -> None:
        """Send once, no transaction (ACK of a 2xx, relayed responses).

        A request gets our Via (fresh branch) when `add_via` is True, or when it is None and the
        request has no Via yet.
        """
        if msg.type == "request" and (add_via or (add_via is None and not msg.has("via"))):
            msg.prepend("via", self._our_via(target.transport, sip_build.new_branch()))
        self._transports.send(encode(msg), target.transport, target.host, target.port,
                              on_error=lambda why: logger.warning("stateless send to %s:%d failed: %s",
                                                                  target.host, target.port, why))

    def _on_2xx_retransmission(self, msg: SipMessage, source: Source) -> None:
        try:
            self.handler.on_2xx_retransmission(msg, source)
        except Exception:
            logger.exception("on_2xx_retransmission handler failed")

    # ------------------------------------------------------------------------------ receiving

    def _on_message(self, data: bytes, source: Source) -> None:
        """Entry point for every datagram / framed TCP message."""
        if data[:1] in (b"\r", b"\n"):
            data = data.lstrip(b"\r\n")
            if not data:
                return  # keep-alive
        try:
            msg = SipMessage(data)
        except Exception as e:  # noqa: BLE001 - SipParseError, or any parser failure: never stop a transport
            logger.warning("malformed SIP message from %s/%s:%d: %s", source.transport, source.address,
                           source.port, e)
            # as sofia-sip's reason phrase: the header that failed, when it is Content-Length
            reason = "Bad Content-Length Header" if "Content-Length" in str(e) else "Bad Request"
            reply = sip_build.salvage_400(data, str(e), reason)
            if reply is not None:
                self._transports.reply(reply, source)
            return
        try:
            if msg.method:
                self._on_request(msg, source, data)
            elif msg.status:
                self._on_response(msg, source)
            else:
                logger.warning("SIP message of unknown type from %s:%d dropped", source.address,
                               source.port)
        except Exception:
            logger.exception("error handling SIP message from %s/%s:%d", source.transport,
                             source.address, source.port)

    def _reject(self, msg: SipMessage, source: Source, problem: sip_checks.Problem) -> None:
        """Answer a request that failed the checks 400, with what of it can be echoed (not an ACK)."""
        logger.warning("bad %s request from %s/%s:%d: %s", msg.method, source.transport,
                       source.address, source.port, problem.why)
        if msg.method == "ACK":
            return
        try:
            text = sip_build.error_response(
                msg, 400, problem.phrase, omit=problem.omit,
                extra=[("Warning", '399 - "{}"'.format(problem.why.replace('"', "'")[:200]))])
        except _PARSE_ERRORS:
            return
        self._transports.reply(text.encode("utf-8", "surrogateescape"), source)

    def _on_request(self, msg: SipMessage, source: Source, data: bytes) -> None:
        method = msg.method
        assert method is not None
        if not sip_checks.method_ok(method):
            # sofia-sip cannot read this request line: nothing to answer, dropped
            logger.warning("request of method %r from %s/%s:%d dropped", method[:50], source.transport,
                           source.address, source.port)
            return
        try:
            top = msg.get_parsed_header("via")[0]
            refusal = sip_checks.via_problem(top, source.transport)
        except _PARSE_ERRORS as e:
            refusal = f"bad Via: {e}"
        if refusal is not None:
            # as sofia-sip: without a usable Via there is nowhere to answer: dropped
            logger.warning("%s request from %s/%s:%d dropped: %s", method, source.transport,
                           source.address, source.port, refusal)
            return
        via_host = top.host
        via_port = top.port
        try:
            sip_build.stamp_top_via(msg, via_host, source.address, source.port)
        except _PARSE_ERRORS as e:
            logger.warning("%s request from %s:%d dropped: cannot update Via: %s", method,
                           source.address, source.port, e)
            return
        try:
            problem = sip_checks.request_problem(msg, data, source.transport)
        except _PARSE_ERRORS as e:
            problem = sip_checks.Problem("Bad Request", str(e) or type(e).__name__)
        if problem is not None:
            self._reject(msg, source, problem)
            return
        if getattr(msg, "version", "2.0") != "2.0" and method != "ACK":
            # as sofia-sip's nta: a request of another SIP version gets 505
            logger.warning("SIP/%s request from %s:%d: 505", msg.version, source.address, source.port)
            text = sip_build.response_to(msg, 505, None)
            self._transports.reply(text.encode("utf-8", "surrogateescape"), source)
            return
        cseq = msg.cseq
        call_id = msg.call_id
        assert cseq is not None and call_id
        seq = cseq.seq
        branch = top.params.get("branch") or ""

        sent_by = (via_host.lower() if via_host else via_host, via_port)
        match_method = "INVITE" if method == "ACK" else method
        if branch.startswith("z9hG4bK"):
            key: tuple = (branch, sent_by, match_method)
        else:  # RFC 2543 peer: match on dialog and sequence identifiers instead
            key = (call_id, seq, msg.from_tag, sent_by, match_method)

        if method == "ACK":
            self._on_ack(msg, source, key, call_id, seq)
            return

        stx = self._server_txns.get(key)
        if stx is not None:
            stx._on_retransmission()
            return

        stx = ServerTransaction(self, msg, source, method, key, via_port)
        self._server_txns[key] = stx
        if method == "CANCEL":
            self._on_cancel(stx, msg, source, key)
            return
        timers = self._timers
        if method == "INVITE":
            stx._respond(100, sip_build.response_to(msg, 100).encode("utf-8", "surrogateescape"), None)
            stx._life = timers.call_later(UNANSWERED_INVITE_LIFETIME, stx._expire_unanswered)
        else:
            stx._life = timers.call_later(128 * self.t1, stx._expire_unanswered)
            if method == "BYE" and self._awaiting_ack:
                self._bye_before_ack(msg, call_id)
        try:
            self.handler.on_request(stx, msg, source)
        except Exception:
            logger.exception("on_request handler failed for %s %s", method, call_id)
            if not stx.final_sent:
                stx._respond(500, sip_build.response_to(msg, 500).encode("utf-8", "surrogateescape"), None)

    def _on_ack(self, msg: SipMessage, source: Source, key: tuple, call_id: str, seq: int) -> None:
        stx = self._server_txns.get(key)
        if stx is not None and stx.final_sent and stx.status is not None and stx.status >= 300:
            stx._on_ack()  # ACK of our non-2xx: the transaction's business only
            return
        to_tag = msg.to_tag
        stx = self._awaiting_ack.get((call_id, to_tag))
        cseq = stx.request.cseq if stx is not None else None
        ack_key = (call_id, seq, to_tag)
        if cseq is not None and cseq.seq == seq:
            stx._on_2xx_ack()  # type: ignore[union-attr]
        elif ack_key in self._seen_acks:
            return  # a retransmitted ACK
        self._seen_acks[ack_key] = self._timers.call_later(64 * self.t1, self._seen_acks.pop, ack_key, None)
        try:
            self.handler.on_request(None, msg, source)
        except Exception:
            logger.exception("on_request handler failed for ACK %s", call_id)

    def _bye_before_ack(self, bye: SipMessage, call_id: str) -> None:
        """A BYE in a dialog whose 2xx still waits for its ACK: the peer has the 2xx (its ACK was
        lost or is late), so stop resending it. Without this the 2xx goes on for 64*T1 after the
        call ended, and a peer may take it for the answer to its BYE."""
        stx = self._awaiting_ack.get((call_id, bye.to_tag))
        if stx is not None:
            if logger.isEnabledFor(logging.DEBUG):
                logger.debug("BYE before the ACK of the 2xx in %s: 2xx retransmission stopped", call_id)
            stx._on_2xx_ack()

    def _on_cancel(self, cstx: ServerTransaction, msg: SipMessage, source: Source, key: tuple) -> None:
        invite = self._server_txns.get(key[:-1] + ("INVITE",))
        try:
            status = self.handler.on_cancel(invite, msg, source)
        except Exception:
            logger.exception("on_cancel handler failed")
            status = 500
        if not status:
            status = 481
        to = None
        if invite is not None and invite.status is not None and invite.status > 100 and invite._last:
            to = _to_of(invite)
        text = sip_build.response_to(msg, int(status), None, to=to)
        cstx._respond(int(status), text.encode("utf-8", "surrogateescape"), None)

    def _on_response(self, msg: SipMessage, source: Source) -> None:
        try:
            top = msg.get_parsed_header("via")[0]
            cseq = msg.cseq
            if cseq is None:
                raise LookupError("no CSeq")
            method = cseq.method
            branch = top.params.get("branch")
        except _PARSE_ERRORS as e:
            logger.warning("bad %s response from %s/%s:%d dropped: %s", msg.status, source.transport,
                           source.address, source.port, e)
            return
        ctx = self._client_txns.get((branch, method))
        if ctx is not None:
            ctx._handle(msg, source)
            return
        status = msg.status or 0
        if method == "INVITE" and 200 <= status < 300:
            self._on_2xx_retransmission(msg, source)
        elif logger.isEnabledFor(logging.DEBUG):
            logger.debug("stray %d %s response from %s:%d dropped", status, method, source.address,
                         source.port)


def _to_of(stx: ServerTransaction) -> str | None:
    """The To header value of the last response the transaction sent (for the CANCEL's 200)."""
    if stx.response is not None:
        return stx.response.get("to")
    last = stx._last
    if not last:
        return None
    try:
        return SipMessage(last).get("to")
    except ValueError:
        return None


def _ignore_response(msg: SipMessage, ctx: ClientTransaction) -> None:
    logger.debug("%d to %s %s", msg.status, ctx.method, ctx.branch)
