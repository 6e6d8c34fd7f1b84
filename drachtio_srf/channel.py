"""The control channel: connections to drachtio servers and the commands sent on them.

:class:`Channel` keeps one :class:`ServerConn` per control connection, authenticates it, sends
commands and matches their replies by msgId (one sweep timer per connection fails overdue
ones), registers routes, pings, and fails everything that waited on a connection when it is
lost.  It also owns the runtime every layer above uses: the :class:`Dispatcher` that runs user
code and the :class:`Timers`.  Frames that are not replies go to :meth:`Channel._on_message`,
which the routing layer (:mod:`drachtio_srf.routing`) implements.
"""
from __future__ import annotations

import logging
import re
import threading
import time
from collections.abc import Callable, Hashable
from typing import TYPE_CHECKING, Any

from . import wire
from .dispatch import Dispatcher, Timers
from .errors import ConnectionLostError, DrachtioError, NotConnectedError
from .hold import Outcome, run_task

if TYPE_CHECKING:
    from .request import Request
    from .srf import Srf
    from .transport import Connection

logger = logging.getLogger(__name__)

__all__ = ["COMMAND_TIMEOUT", "Channel", "ServerConn"]

COMMAND_TIMEOUT = 60.0     # longest wait for the server's reply to one command
"""Longest wait, in seconds, for the server's reply to one command."""
_monotonic = time.monotonic
_NO_KWARGS: dict[str, Any] = {}     # (never changed: tasks are called with no keywords)


class _Pending:
    """A command waiting for its reply: the handler and when the reply is due."""

    __slots__ = ("deadline", "handler")

    def __init__(self, handler: Callable[[wire.Frame | None, BaseException | None], None],
                 deadline: float | None) -> None:
        self.handler = handler
        self.deadline = deadline      # monotonic time the reply is due by (None: no limit)


class ServerConn:
    """What the agent knows about one control connection to a drachtio server."""

    def __init__(self, agent: Channel, conn: Connection, *, outbound: bool) -> None:
        self.agent = agent
        """The Channel this connection belongs to."""
        self.conn = conn
        """The transport connection carrying the control protocol."""
        self.outbound = outbound          # the server connected to us (listen mode)
        """True when the server connected to us (listen mode), False when we dialled it."""
        self.lock = threading.Lock()
        """Guards the per-connection tables below."""
        self.pending: dict[str, _Pending] = {}
        """Commands awaiting their reply from the server, by message id."""
        self.sent: dict[str, Request] = {}            # txnId -> request we sent, until final
        """Requests we sent, by transaction id, kept until their final response."""
        self.invites: dict[str, Request] = {}         # Call-ID -> incoming INVITE not answered
        """Incoming INVITEs not yet answered, by Call-ID."""
        self.ack_waiters: dict[str, Callable[..., Any]] = {}
        """Callbacks waiting for the ACK of an answered INVITE, by key."""
        self.authenticated = False
        """Whether the server accepted our authenticate command."""
        self.hostport: str | None = None
        """The server's SIP host:port as reported on authentication (None until then)."""
        self.server_version: str | None = None
        """Version string the server reported, e.g. ``v0.8.x`` (None until known)."""
        self.local_hostports: str | None = None
        """The server's local SIP addresses as it reported them (None until known)."""
        self.ping_timer: Any = None
        """Timer handle of the periodic ping, when pinging is enabled."""
        self.sweep_timer: Any = None      # one timer per connection for all command timeouts
        """The one timer that sweeps this connection's command timeouts."""
        self.sweep_at: float | None = None
        """Monotonic time the sweep timer is due at (None: none scheduled)."""
        self.closed = False
        """Set once the connection has closed; it is not used after that."""

    @property
    def peer(self) -> tuple[str, int]:
        """Address (host, port) of the server end of the connection."""
        return self.conn.peer

    def __repr__(self) -> str:
        return f"<ServerConn {self.conn!r}>"


def _version_at_least(version: str | None, wanted: tuple[int, int, int]) -> bool:
    m = re.match(r"^v(\d+)\.(\d+)\.(\d+)", version or "")
    return m is not None and tuple(int(x) for x in m.groups()) >= wanted



class Channel:
    """Connections, commands and the runtime under one Srf (the lowest layer of the Agent)."""

    def __init__(self, srf: Srf) -> None:
        self.srf = srf      # handed to Requests/Responses as ``.srf`` and emits ``cdr:*`` events
        """The owning Srf, handed to requests and responses and used to emit ``cdr:*`` events."""
        self.dispatcher = Dispatcher(name="drachtio-worker")
        """Worker pool that runs user code and events (serial per key)."""
        self.timers = Timers(name="drachtio-timers")
        """Timer thread for timeouts, pings and reconnects."""
        self.lock = threading.RLock()
        """Re-entrant lock guarding the connection list and routes."""
        self.conns: list[ServerConn] = []
        """Server connections, in the order they were added."""
        self.verbs: list[str] = []
        """SIP methods routed to us (sent as route commands to each outbound connection)."""
        self.closing = False
        """True while the channel is being shut down."""
        self.tags: list[str] = []
        """Tags sent with authentication so the server can select this application."""
        self.secret: str | None = None
        """Shared secret used to authenticate to the server (None: not set yet)."""
        self.enable_ping = False
        """Whether to ping each connection periodically."""
        self.ping_interval = 15.0
        """Seconds between pings when ``enable_ping`` is set."""
        self.on_authenticated: Callable[[ServerConn, BaseException | None], None] | None = None
        """Called with the connection and an error (or None) when authentication completes."""
        self.on_conn_closed: Callable[[ServerConn, BaseException | None], None] | None = None
        """Called with the connection and the error (or None) when a connection closes."""

    # -- runtime ------------------------------------------------------------------------------
    def ensure_runtime(self) -> None:
        """Fresh dispatcher and timers after a disconnect (they are not restartable)."""
        if self.dispatcher.closed:
            self.dispatcher = Dispatcher(name="drachtio-worker")
        if getattr(self.timers, "_closed", False):
            self.timers = Timers(name="drachtio-timers")

    def submit(self, key: Hashable | None, fn: Callable[..., Any], *args: Any) -> None:
        """Run user code on the dispatcher (serial on key)."""
        d = self.dispatcher
        if not d._submit(key, run_task, (fn, *args), _NO_KWARGS):    # (Dispatcher.submit, inlined)
            d.submit(key, run_task, fn, *args)     # closed: it logs the drop

    def emit_on(self, key: Hashable | None, emitter: Any, event: str, *args: Any) -> None:
        """Emit an event on the dispatcher (serial on key)."""
        d = self.dispatcher
        if not d._submit(key, run_task, (emitter.emit, event, *args), _NO_KWARGS):
            d.submit(key, run_task, emitter.emit, event, *args)

    def outcome(self, callback: Callable[..., Any] | None) -> Outcome:
        """Make an :class:`Outcome` reporting to ``callback``, or to a Future when it is None."""
        return Outcome(self, callback)

    def shutdown(self) -> None:
        """Stop the timer thread and the dispatcher (waiting up to 5 s for running tasks)."""
        self.timers.shutdown()
        self.dispatcher.shutdown(wait=True, timeout=5.0)

    # -- connections --------------------------------------------------------------------------
    def default_conn(self) -> ServerConn:
        """The first open connection; raises NotConnectedError when there is none."""
        with self.lock:
            for sc in self.conns:
                if not sc.closed:
                    return sc
        raise NotConnectedError("not connected to a drachtio server")

    @property
    def connected(self) -> bool:
        """True when at least one connection is open and authenticated."""
        with self.lock:
            return any(sc.authenticated and not sc.closed for sc in self.conns)

    def attach(self, sock: Any, *, outbound: bool, name: str = "drachtio") -> ServerConn:
        """Wrap a connected socket, start its reader and authenticate."""
        from .transport import Connection
        holder: dict[str, ServerConn] = {}

        handle_frame = self._on_frame

        def on_frame(conn: Connection, payload: str) -> None:
            handle_frame(sc, payload)     # (sc is set below, before the reader starts)

        def on_close(conn: Connection, err: BaseException | None) -> None:
            sc = holder.get("sc")
            if sc is not None:
                self._on_close(sc, err)

        conn = Connection(sock, on_frame=on_frame, on_close=on_close, name=name,
                          batch=self._batch_scope)
        sc = ServerConn(self, conn, outbound=outbound)
        holder["sc"] = sc
        with self.lock:
            self.conns.append(sc)
        conn.start()
        self._authenticate(sc)
        return sc

    def _batch_scope(self) -> Any:
        """What a reader enters around the frames of one read (:meth:`Dispatcher.batch`)."""
        return self.dispatcher.batch()

    def _authenticate(self, sc: ServerConn) -> None:
        def on_reply(f: wire.Frame | None, err: BaseException | None) -> None:
            from .errors import AuthenticationError
            if f is not None and f.ok:
                data = f.data
                sc.authenticated = True
                sc.hostport = data[0] if len(data) > 0 else None
                sc.server_version = data[1] if len(data) > 1 else None
                sc.local_hostports = data[2] if len(data) > 2 else None
                if not sc.outbound:
                    for verb in list(self.verbs):
                        self._send_route(sc, verb)
                if self.enable_ping and _version_at_least(sc.server_version, (0, 8, 2)):
                    self._schedule_ping(sc)
                if self.on_authenticated:
                    self.on_authenticated(sc, None)
            else:
                text = f.field(4) if f is not None else str(err)
                if self.on_authenticated:
                    self.on_authenticated(sc, err if err is not None and f is None
                                          else AuthenticationError(f"failed to authenticate to server: {text}"))
        self.command(sc, lambda mid: wire.authenticate(mid, self.secret or "", self.tags), on_reply)

    def _on_close(self, sc: ServerConn, err: BaseException | None) -> None:
        """Connection gone (reader thread or closer): fail everything that waited on it."""
        sc.closed = True
        if sc.ping_timer is not None:
            sc.ping_timer.cancel()
        if sc.sweep_timer is not None:
            sc.sweep_timer.cancel()
        with self.lock:
            if sc in self.conns:
                self.conns.remove(sc)
        with sc.lock:
            pending = list(sc.pending.values())
            sc.pending.clear()
            sent = list(sc.sent.values())
            sc.sent.clear()
            sc.invites.clear()
            sc.ack_waiters.clear()
        lost = ConnectionLostError(f"connection to drachtio server {sc.peer} closed"
                                   + (f": {err}" if err else ""))
        if err is not None:
            lost.__cause__ = err
        for p in pending:
            self._safe(p.handler, None, lost)
        for req in sent:
            for hook in list(req._hooks):
                self._safe(hook, None, None, lost)
        if self.on_conn_closed:
            self._safe(self.on_conn_closed, sc, err)

    @staticmethod
    def _safe(fn: Callable[..., Any], *args: Any) -> None:
        try:
            fn(*args)
        except Exception:
            logger.exception("internal handler %r raised", fn)

    # -- commands -----------------------------------------------------------------------------
    def command(self, sc: ServerConn, build: Callable[[str], str],
                handler: Callable[[wire.Frame | None, BaseException | None], None],
                timeout: float | None = COMMAND_TIMEOUT) -> str:
        """Send one command; ``handler(frame, None)`` on each reply, ``handler(None, err)`` on
        timeout or loss.  A send failure raises (nothing is left registered)."""
        msg_id = wire.new_id()
        deadline = _monotonic() + timeout if timeout else None
        p = _Pending(handler, deadline)
        with sc.lock:
            if sc.closed:
                raise NotConnectedError("connection to drachtio server is closed")
            sc.pending[msg_id] = p
            if deadline is not None and (sc.sweep_at is None or deadline < sc.sweep_at):
                self._schedule_sweep(sc, deadline)
        try:
            sc.conn.send(build(msg_id))
        except BaseException:
            with sc.lock:
                sc.pending.pop(msg_id, None)
            raise
        return msg_id

    def _schedule_sweep(self, sc: ServerConn, when: float) -> None:
        """(sc.lock held) Look for overdue commands at ``when``: one timer covers them all, so a
        command costs no timer of its own (most replies come within milliseconds)."""
        if sc.sweep_timer is not None:
            sc.sweep_timer.cancel()
        sc.sweep_at = when
        sc.sweep_timer = self.timers.call_later(max(0.0, when - _monotonic()), self._sweep, sc)

    def _sweep(self, sc: ServerConn) -> None:
        """Timer thread: fail the commands whose reply is overdue; plan the next look."""
        now = _monotonic()
        overdue: list[_Pending] = []
        with sc.lock:
            sc.sweep_timer = None
            sc.sweep_at = None
            if sc.closed:
                return
            nxt: float | None = None
            for msg_id, p in list(sc.pending.items()):
                due = p.deadline
                if due is None:
                    continue
                if due <= now:
                    del sc.pending[msg_id]
                    overdue.append(p)
                elif nxt is None or due < nxt:
                    nxt = due
            if nxt is not None:
                self._schedule_sweep(sc, nxt)
        for p in overdue:
            self._safe(p.handler, None, DrachtioError(f"no reply from drachtio server within {COMMAND_TIMEOUT}s"))

    def _send_route(self, sc: ServerConn, verb: str) -> None:
        def on_reply(f: wire.Frame | None, err: BaseException | None) -> None:
            if f is None or not f.ok:
                logger.warning("route %s refused: %s", verb, err or (f.field(4) if f else ""))
        try:
            self.command(sc, lambda mid: wire.route(mid, verb), on_reply)
        except DrachtioError as err:
            logger.warning("could not send route %s: %s", verb, err)

    def add_route(self, verb: str) -> None:
        """Route requests of ``verb`` to us, telling every authenticated outbound connection."""
        with self.lock:
            if verb in self.verbs:
                return
            self.verbs.append(verb)
            conns = [sc for sc in self.conns if sc.authenticated and not sc.outbound and not sc.closed]
        for sc in conns:
            self._send_route(sc, verb)

    def remove_route(self, verb: str) -> None:
        """Stop routing ``verb`` to us; raises ValueError when it was not routed."""
        with self.lock:
            if verb not in self.verbs:
                raise ValueError(f"no route to remove for {verb}")
            self.verbs.remove(verb)
            conns = [sc for sc in self.conns if sc.authenticated and not sc.closed]
        for sc in conns:
            try:
                self.command(sc, lambda mid: wire.remove_route(mid, verb), lambda f, e: None)
            except DrachtioError as err:
                logger.warning("could not send remove_route %s: %s", verb, err)

    def _schedule_ping(self, sc: ServerConn) -> None:
        def ping() -> None:
            if sc.closed or self.closing:
                return
            try:
                self.command(sc, wire.ping, lambda f, e: None, timeout=None)
            except DrachtioError:
                return
            sc.ping_timer = self.timers.call_later(self.ping_interval, ping)
        sc.ping_timer = self.timers.call_later(self.ping_interval, ping)

    # -- frames in (reader thread) -------------------------------------------------------------
    def _on_frame(self, sc: ServerConn, payload: str) -> None:
        try:
            f = wire.parse(payload)
        except wire.WireProtocolError as err:
            logger.error("bad frame from drachtio server: %s", err)
            return
        try:
            if f.type == "response":
                self._on_reply(sc, f)
            else:
                self._on_message(sc, f)
        except Exception:
            logger.exception("failed to handle frame %r", payload[:200])

    def _on_message(self, sc: ServerConn, f: wire.Frame) -> None:
        """A frame that is not a reply to a command (``sip``, ``cdr:*``); the routing layer
        (:class:`~drachtio_srf.routing.Router`) handles them."""
        logger.error("unknown frame type %r from drachtio server", f.type)

    def _on_reply(self, sc: ServerConn, f: wire.Frame) -> None:
        fields = f.fields
        msg_id = fields[2] if len(fields) > 2 else ""
        keep = len(fields) > 12 and fields[12] == "continue"
        with sc.lock:
            p = sc.pending.get(msg_id) if keep else sc.pending.pop(msg_id, None)
        if p is None:
            logger.debug("reply to unknown msgId %s", msg_id)
            return
        p.handler(f, None)
