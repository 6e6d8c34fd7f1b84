"""RFC 3261 section 17 transactions (with the RFC 6026 2xx handling) for the embedded server.

Client transactions retransmit over UDP (timers A/E), time out (B/F -> synthesised 408), ACK
non-2xx finals themselves and linger to absorb retransmissions (D/K). Server transactions answer
retransmitted requests with the last response, retransmit finals over UDP (G, and the 2xx until
its ACK) and linger (H/I/J, 64*T1 for a 2xx). Timers live on the stack's coarse
`TimerWheel` (timers.py): cheap to set and to cancel.
"""
from __future__ import annotations

import logging
from collections.abc import Callable
from typing import TYPE_CHECKING

from drachtio_srf.sip import SipMessage

from . import sip_build

if TYPE_CHECKING:
    from .sip_transport import Source, Target
    from .sipstack import SipStack
    from .timers import Timer

logger = logging.getLogger(__name__)

# states (ints: cheap to compare)
TRYING, CALLING, PROCEEDING, COMPLETED, ACCEPTED, CONFIRMED, TERMINATED = range(7)
_STATE_NAMES = ("trying", "calling", "proceeding", "completed", "accepted", "confirmed", "terminated")


def encode(msg: SipMessage) -> bytes:
    """The wire bytes of a message (UTF-8; undecodable bytes restored as received)."""
    return str(msg).encode("utf-8", "surrogateescape")


def _cancel(handle: Timer | None) -> None:
    if handle is not None:
        handle.cancel()


class ServerTransaction:
    """A request received from the network; `respond()` sends (and retransmits) its responses."""

    __slots__ = (
        "__weakref__",
        "_ack_key",
        "_interval",
        "_last",
        "_life",
        "_retx",
        "_stack",
        "_state",
        "_via_port",
        "acked",
        "final_sent",
        "key",
        "method",
        "request",
        "response",
        "source",
        "status",
    )

    def __init__(self, stack: SipStack, request: SipMessage, source: Source, method: str,
                 key: tuple, via_port: int | None) -> None:
        self._stack = stack
        self.request = request
        """The request that created the transaction."""
        self.source = source
        """Where the request came from; responses go back there."""
        self.method = method
        """Method of the request."""
        self.key = key
        """The matching key (branch, sent-by, method) the stack files the transaction under."""
        self.final_sent = False
        """True once a final response was sent."""
        self.status: int | None = None          # last status sent
        """Status of the last response sent (None before the first)."""
        self.response: SipMessage | None = None  # final response as sent (when given as a message)
        """The final response as sent, when it was given as a message."""
        self.acked = False
        """INVITE: True once the final response needs no more resending (ACKed, or nothing to wait for)."""
        self._state = PROCEEDING if method == "INVITE" else TRYING
        self._last: bytes | None = None
        self._retx: Timer | None = None
        self._life: Timer | None = None
        self._interval = 0.0
        self._ack_key: tuple | None = None
        self._via_port = via_port

    @property
    def state(self) -> str:
        """Name of the RFC 3261 state the transaction is in (``'proceeding'``, ``'completed'``...)."""
        return _STATE_NAMES[self._state]

    @property
    def terminated(self) -> bool:
        """True once the transaction is over."""
        return self._state == TERMINATED

    def respond(self, msg: SipMessage, *, relayed: bool = False) -> None:
        """Send a complete response (Via etc. already copied from the request).

        `relayed=True` is for a 2xx a proxy passes upstream: it is sent once and not waited on
        (the UAS that made it retransmits it; its ACK arrives as a new request, stx None).
        """
        status = msg.status
        if status is None:
            raise ValueError("ServerTransaction.respond() needs a response, got a request")
        self._respond(status, encode(msg), msg, relayed)

    # -- internals -------------------------------------------------------------------------------

    def _send(self, data: bytes) -> None:
        self._stack._transports.reply(data, self.source, self._via_port)

    def _respond(self, status: int, data: bytes, msg: SipMessage | None, relayed: bool = False) -> None:
        if self.final_sent:
            if (self.method == "INVITE" and 200 <= status < 300 and self.status is not None
                    and 200 <= self.status < 300):
                self._send(data)  # another 2xx (e.g. a forked answer being relayed): pass it on
                return
            logger.warning("%s transaction %s: final %s already sent, %d not sent", self.method,
                           self.key[0], self.status, status)
            return
        self.status = status
        self._last = data
        self._send(data)
        if status < 200:
            if self._state == TRYING:
                self._state = PROCEEDING
            return
        self.final_sent = True
        self.response = msg
        stack = self._stack
        timers = stack._timers
        t1 = stack.t1
        unreliable = self.source.transport == "udp"
        _cancel(self._life)
        if self.method == "INVITE":
            if status < 300 and relayed:
                self._state = ACCEPTED
                self.acked = True  # nothing to wait for: linger only to answer INVITE retransmissions
                self._life = timers.call_later(64 * t1, self._terminate)
            elif status < 300:
                self._state = ACCEPTED
                to_tag = msg.to_tag if msg is not None else None
                # one 2xx awaits its ACK per dialog (Call-ID, our tag): a BYE in the dialog finds it
                self._ack_key = key = (self.request.call_id, to_tag)
                older = stack._awaiting_ack.get(key)
                if older is not None and older is not self:
                    older._on_2xx_ack()   # a new INVITE in the dialog: the peer had the older 2xx
                stack._awaiting_ack[key] = self
                if unreliable:
                    self._interval = t1
                    self._retx = timers.call_later(t1, self._retransmit_final)
                self._life = timers.call_later(64 * t1, self._ack_wait_over)
            else:
                self._state = COMPLETED
                if unreliable:
                    self._interval = t1
                    self._retx = timers.call_later(t1, self._retransmit_final)
                self._life = timers.call_later(64 * t1, self._timer_h)
        else:
            self._state = COMPLETED
            if unreliable:
                self._shed()   # lingers 64*T1 only to resend its final response (bytes in _last)
                self._life = timers.call_later(64 * t1, self._terminate)
            else:
                self._terminate()

    def _shed(self) -> None:
        """Drop the parsed request and response a lingering transaction no longer reads.

        Under load thousands of answered transactions linger for 64*T1 (32 s); holding their
        parsed messages made a 3 s flood cost the server ~100 MB it never gave back.
        """
        self.request = None  # type: ignore[assignment]
        self.response = None

    def _retransmit_final(self) -> None:
        """Timer G (non-2xx) and the UAS core's 2xx retransmission: T1 doubling, capped at T2."""
        if self._state not in (COMPLETED, ACCEPTED) or self.acked or self._last is None:
            return
        self._send(self._last)
        self._interval = min(self._interval * 2, self._stack.t2)
        self._retx = self._stack._timers.call_later(self._interval, self._retransmit_final)

    def _on_retransmission(self) -> None:
        """The same request again: resend the last response (nothing yet: absorb)."""
        if self._last is not None and self._state != CONFIRMED:
            self._send(self._last)

    def _on_ack(self) -> None:
        """ACK of our non-2xx final: stop retransmitting, linger for timer I, absorb the ACK."""
        if self._state != COMPLETED:
            return
        self._state = CONFIRMED
        _cancel(self._retx)
        _cancel(self._life)
        if self.source.transport == "udp":
            self._life = self._stack._timers.call_later(self._stack.t4, self._terminate)
        else:
            self._terminate()

    def _on_2xx_ack(self) -> None:
        """The 2xx reached the peer (its ACK, or a later request in the dialog): stop resending it."""
        self.acked = True
        _cancel(self._retx)
        self._retx = None
        key = self._ack_key
        if key is not None and self._stack._awaiting_ack.get(key) is self:
            del self._stack._awaiting_ack[key]
        self._shed()    # lingers only to absorb retransmitted INVITEs (RFC 6026 timer L)

    def _timer_h(self) -> None:
        if self._state == COMPLETED:
            logger.info("INVITE transaction %s: no ACK for %s (timer H)", self.key[0], self.status)
        self._terminate()

    def _ack_wait_over(self) -> None:
        """64*T1 after a 2xx: report a missing ACK, then forget the transaction (timer L)."""
        acked = self.acked
        self._terminate()
        if not acked:
            response = self.response
            if response is None:  # pragma: no cover - 2xx always comes from respond()
                return
            try:
                self._stack.handler.on_ack_timeout(self, response)
            except Exception:
                logger.exception("on_ack_timeout handler failed")

    def _terminate(self) -> None:
        if self._state == TERMINATED and self._life is None:
            return
        self._state = TERMINATED
        _cancel(self._retx)
        _cancel(self._life)
        self._retx = self._life = None
        stack = self._stack
        if stack._server_txns.get(self.key) is self:
            del stack._server_txns[self.key]
        if self._ack_key is not None and stack._awaiting_ack.get(self._ack_key) is self:
            del stack._awaiting_ack[self._ack_key]

    def _expire_unanswered(self) -> None:
        """Safety net: a request the app never answered is forgotten after a long while."""
        if not self.final_sent:
            logger.info("%s transaction %s: never answered, forgotten", self.method, self.key[0])
            self._terminate()

    def __repr__(self) -> str:
        return f"<ServerTransaction {self.method} {self.key[0]} {self.state}>"


ResponseCallback = Callable[[SipMessage, "ClientTransaction"], None]
"""Called with each response of a client transaction, and the transaction."""


class ClientTransaction:
    """A request we sent; responses go to `on_response(msg, ctx)` (100 Trying swallowed)."""

    __slots__ = (
        "__weakref__",
        "_ack",
        "_callback",
        "_data",
        "_interval",
        "_linger",
        "_on_cancel_response",
        "_retx",
        "_stack",
        "_state",
        "_timeout",
        "branch",
        "cancel_ctx",
        "cancel_request",
        "final_response",
        "method",
        "provisional_received",
        "request",
        "response_source",
        "target",
    )

    def __init__(self, stack: SipStack, request: SipMessage, target: Target,
                 on_response: ResponseCallback, branch: str, data: bytes) -> None:
        self._stack = stack
        self.request = request
        """The request being sent."""
        self.target = target
        """Where it is sent."""
        self.method = request.method or ""
        """Method of the request."""
        self.branch = branch
        """Via branch of the request."""
        self.final_response: SipMessage | None = None
        """The final response (None until it came)."""
        self.response_source: Source | None = None  # where the last response came from (None: ours)
        """Where the last response came from (None: made by us, e.g. a timeout 408)."""
        self.cancel_request: SipMessage | None = None
        """The CANCEL sent for this INVITE (None when not canceled)."""
        self.cancel_ctx: ClientTransaction | None = None
        """The client transaction of that CANCEL."""
        self.provisional_received = False
        """True once a provisional response came."""
        self._callback = on_response
        self._on_cancel_response: ResponseCallback | None = None
        self._data = data
        self._state = CALLING if self.method == "INVITE" else TRYING
        self._retx: Timer | None = None
        self._timeout: Timer | None = None
        self._linger: Timer | None = None
        self._interval = 0.0
        self._ack: bytes | None = None

    @property
    def state(self) -> str:
        """Name of the RFC 3261 state the transaction is in (``'calling'``, ``'proceeding'``...)."""
        return _STATE_NAMES[self._state]

    @property
    def terminated(self) -> bool:
        """True once the transaction is over."""
        return self._state == TERMINATED

    def _start(self) -> None:
        stack = self._stack
        stack._client_txns[(self.branch, self.method)] = self
        self._send(self._data)
        if self._state == TERMINATED:  # failed synchronously
            return
        timers = stack._timers
        if self.target.transport == "udp":
            self._interval = stack.t1
            self._retx = timers.call_later(stack.t1, self._retransmit)
        self._timeout = timers.call_later(64 * stack.t1, self._on_timeout)

    def _send(self, data: bytes) -> None:
        t = self.target
        self._stack._transports.send(data, t.transport, t.host, t.port, on_error=self._on_transport_error)

    def _retransmit(self) -> None:
        """Timer A (INVITE: doubles) / timer E (non-INVITE: doubles up to T2, T2 once proceeding)."""
        state = self._state
        if state not in (CALLING, TRYING, PROCEEDING):
            return
        if self.method == "INVITE":
            if state != CALLING:
                return
            self._interval *= 2
        elif state == PROCEEDING:
            self._interval = self._stack.t2
        else:
            self._interval = min(self._interval * 2, self._stack.t2)
        self._send(self._data)
        self._retx = self._stack._timers.call_later(self._interval, self._retransmit)

    def _deliver(self, msg: SipMessage) -> None:
        try:
            self._callback(msg, self)
        except Exception:
            logger.exception("on_response callback failed for %s %s", self.method, self.branch)

    def _handle(self, msg: SipMessage, source: Source) -> None:
        status = msg.status or 0
        state = self._state
        if status < 200:
            if state not in (CALLING, TRYING, PROCEEDING):
                return
            self._state = PROCEEDING
            self.provisional_received = True
            if self.method == "INVITE":
                _cancel(self._retx)
                _cancel(self._timeout)
                self._retx = self._timeout = None
                if self.cancel_request is not None and self.cancel_ctx is None:
                    self._stack._send_cancel(self)
            if status == 100:
                return
            self.response_source = source
            self._deliver(msg)
            return
        if state in (CALLING, TRYING, PROCEEDING):
            self.final_response = msg
            self.response_source = source
            _cancel(self._retx)
            _cancel(self._timeout)
            self._retx = self._timeout = None
            stack = self._stack
            reliable = self.target.transport != "udp"
            if self.method == "INVITE":
                if status < 300:
                    self._terminate()
                else:
                    self._ack = sip_build.ack_for(self.request, msg).encode("utf-8", "surrogateescape")
                    self._send(self._ack)
                    self._state = COMPLETED
                    if reliable:
                        self._terminate()
                    else:
                        self._linger = stack._timers.call_later(64 * stack.t1, self._terminate)
            else:
                self._state = COMPLETED
                if reliable:
                    self._terminate()
                else:
                    self._linger = stack._timers.call_later(stack.t4, self._terminate)
            self._deliver(msg)
            return
        # completed: a retransmitted final
        if self.method == "INVITE":
            if status >= 300 and self._ack is not None:
                self._send(self._ack)
            elif status < 300:
                self._stack._on_2xx_retransmission(msg, source)

    def _on_timeout(self) -> None:
        """Timer B / F: no final response in 64*T1."""
        if self._state in (COMPLETED, TERMINATED):
            return
        logger.info("%s to %s:%d timed out (branch %s)", self.method, self.target.host,
                    self.target.port, self.branch)
        self._fail(sip_build.synthesised(self.request, 408))

    def _on_transport_error(self, reason: str) -> None:
        if self._state in (COMPLETED, TERMINATED):
            logger.warning("%s %s: transport error after final response: %s", self.method,
                           self.branch, reason)
            return
        logger.warning("%s to %s:%d failed: %s", self.method, self.target.host, self.target.port, reason)
        text = reason.replace('"', "'")
        self._fail(sip_build.synthesised(self.request, 503, None,
                                         [("Reason", f'SIP ;cause=503 ;text="{text}"')]))

    def _fail(self, msg: SipMessage) -> None:
        self.final_response = msg
        self.response_source = None
        self._terminate()
        self._deliver(msg)

    def _terminate(self) -> None:
        self._state = TERMINATED
        _cancel(self._retx)
        _cancel(self._timeout)
        _cancel(self._linger)
        self._retx = self._timeout = self._linger = None
        txns = self._stack._client_txns
        key = (self.branch, self.method)
        if txns.get(key) is self:
            del txns[key]

    def __repr__(self) -> str:
        return f"<ClientTransaction {self.method} {self.branch} {self.state}>"

