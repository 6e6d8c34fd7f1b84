"""Agent: one per Srf.  Speaks the control protocol over one or more Connections.

It matches replies to commands by msgId, responses to sent requests by txnId and in-dialog
requests to Dialogs by dialogId; it keeps the pending incoming INVITEs (for CANCEL and UPDATE)
and the ACK/PRACK waiters.  All of that runs on the connection's reader thread and is library
code only: every piece of user code (handlers, callbacks, listeners) is handed to the
Dispatcher under a key that gives the ordering of DESIGN.md:

* ``("dlg", dialog_id)`` - everything about one dialog: in-dialog requests, ACK/PRACK, the
  completion of create_uas/create_uac that created it, responses to requests sent in it;
* ``("call", call_id)`` - a new request from the network and its middleware chain;
* ``("evt", txn_id)`` - events on a pending incoming INVITE (``cancel``, ``update``), kept off the
  handler's key so a handler blocked in ``.result()`` still hears about a CANCEL;
* ``("txn", txn_id)`` - responses to a request sent outside any dialog.

One exception, for the common call: an in-dialog ACK that would run no user code (its dialog's key
is idle and nobody listens for ``ack``) is handled on the reader without a task
(:meth:`Agent._ack_without_task`); when the key is busy it queues as usual.

Rule 5 (a listener attached right after ``create_uas(...).result()`` sees the far end's first
in-dialog request) is built from two pieces:

1. The reader thread registers the new Dialog and queues its completion on the dialog's key
   *before* it reads the next frame, so every in-dialog request lands behind it in that key's
   queue.  With a callback, the callback is that queued task: listeners it attaches are in place
   before the next task of the key runs.
2. With a Future, the reader resolves the Future at once (never through a queue: the waiting
   thread may itself be a worker on that very key) and puts a *hold* on the key
   (:meth:`Dispatcher.hold`, behind whatever the key already has).  A held key's later tasks
   queue without occupying any worker until the hold is released (:class:`_Hold`): by the
   thread that got the value from ``result()``, when the dispatched task it runs in returns or
   when it blocks again in any library Future, whichever comes first.  A consumer outside the
   library's workers (e.g. the main thread) gets the same release on its next library wait and
   otherwise after a short window (``_OUTSIDE_WINDOW``); a consumer that keeps its task running
   for long without waiting on the library releases it after ``_HOLD_MAX``.  A result nobody
   waits for holds the key only ``_UNCLAIMED_WINDOW`` (or not at all when it has done-callbacks,
   which are queued on the key ahead of the hold).  The windows are timers on :class:`Timers`.
   Hence ``result()`` returning, and the code after it up to the end of the handler or the next
   library wait, happen-before any queued in-dialog event (the release and the dispatch of the
   next task go through the dispatcher's lock).

A result made on the dialog's own key (the B2BUA answers A from a task on A's key, when A's ACK
may already be queued behind it) uses :meth:`Outcome.succeed_here`: the callback runs inline, or
the key is held from the end of the current task (``hold(key, first=True)``) with the same
release rules; done-callbacks then run on a key of their own and release the hold when done.
"""
from __future__ import annotations

import functools
import logging
import threading
import time
from collections.abc import Callable, Hashable, Mapping
from typing import TYPE_CHECKING, Any

from . import uac_auth, wire
from .dispatch import Completion, Dispatcher, DrachtioFuture, Timers
from .errors import ConnectionLostError, DrachtioError, NotConnectedError
from .request import _SERVER_OF_CONN, Request
from .response import Response
from .sip import SipMessage, SipParseError, reason_phrase
from .usercode import adapt

if TYPE_CHECKING:
    from .dispatch import HoldHandle, TimerHandle
    from .srf import Srf
    from .transport import Connection

logger = logging.getLogger(__name__)

__all__ = ["Agent", "GatedFuture", "Outcome", "ServerConn", "dialog_key"]

COMMAND_TIMEOUT = 60.0     # longest wait for the server's reply to one command
_HOLD_MAX = 1.0            # rule 5: longest a worker consumer holds a dialog's events
_OUTSIDE_WINDOW = 0.5      # rule 5: window for a consumer that is not a library worker
_UNCLAIMED_WINDOW = 0.3    # rule 5: wait for a consumer when nobody was waiting on the result

_local = threading.local()
_claim_lock = threading.Lock()     # Outcome: first succeed/fail wins (short sections)
_monotonic = time.monotonic


def dialog_key(dialog_id: str) -> tuple[str, str]:
    return ("dlg", dialog_id)


# --------------------------------------------------------------------------- rule 5 machinery

def _held() -> list[_Hold]:
    held = getattr(_local, "held", None)
    if held is None:
        held = _local.held = []
    return held


def _release_held() -> None:
    """This thread is about to block in the library (or its task ended): release its holds."""
    held = getattr(_local, "held", None)
    if held:
        for hold in held:
            hold.release()
        held.clear()


def run_task(fn: Callable[..., Any], *args: Any) -> None:
    """Run user code as one dispatched task; when it returns, release the holds it took."""
    outer = getattr(_local, "in_task", False)
    _local.in_task = True
    try:
        fn(*args)
    except Exception:
        logger.exception("user code %r raised", fn)
    finally:
        _local.in_task = outer
        if not outer:
            _release_held()


class _Hold:
    """Keeps a key held (:meth:`Dispatcher.hold`) until the consumer of a Future's result has
    attached its listeners, or a window (see the module docstring) has passed.

    Everything here is short and non-blocking; :meth:`release` may run on any thread.
    """

    __slots__ = ("_lock", "agent", "fut", "handle", "in_task", "released", "retrieved_at", "timer")

    def __init__(self, agent: Agent, fut: GatedFuture) -> None:
        self.agent = agent
        self.fut: GatedFuture | None = fut
        self.handle: HoldHandle | None = None
        self.timer: TimerHandle | None = None
        self.retrieved_at: float | None = None
        self.in_task = False
        self.released = False
        self._lock = threading.Lock()

    def taken(self) -> None:
        """Called on the consumer's thread right after ``result()`` returned the value."""
        self.in_task = bool(getattr(_local, "in_task", False))
        now = self.retrieved_at = _monotonic()
        held = _held()
        if len(held) >= 8:      # a consumer that never waits again: drop the spent ones
            held[:] = [h for h in held if not h.released]
        held.append(self)
        if not self.in_task:
            # a consumer outside the workers gets a shorter window than the limit running now
            with self._lock:
                timer = self.timer
                if timer is not None and not self.released and timer.when > now + _OUTSIDE_WINDOW:
                    timer.cancel()
                    self.timer = self.agent.timers.call_later(_OUTSIDE_WINDOW, self._on_timer)

    def _window(self) -> float:
        return _HOLD_MAX if self.in_task else _OUTSIDE_WINDOW

    def start(self, handle: HoldHandle, *, callbacks_first: bool = True) -> None:
        """Attach the dispatcher hold (after the result was set) and start its time limit.

        ``callbacks_first``: done-callbacks run on the held key ahead of the hold, so having
        some means no wait; otherwise they release the hold themselves within ``_HOLD_MAX``."""
        fut = self.fut
        with self._lock:
            if not self.released:
                self.handle = handle
                if self.retrieved_at is not None:
                    delay = self.retrieved_at + self._window() - _monotonic()
                elif fut is not None and fut.waiters > 0:
                    delay = _HOLD_MAX
                elif fut is not None and fut.has_done_callbacks:
                    # the done-callbacks are the consumer
                    delay = 0.0 if callbacks_first else _HOLD_MAX
                else:
                    delay = _UNCLAIMED_WINDOW
                if delay > 0:
                    self.timer = self.agent.timers.call_later(delay, self._on_timer)
                    if not self.timer.cancelled:
                        return
        self.release()
        handle.release()

    def _on_timer(self) -> None:
        """Timer thread: release, unless the consumer took the value late and is in its window."""
        with self._lock:
            if self.released:
                return
            self.timer = None
            if self.retrieved_at is not None:
                remaining = self.retrieved_at + self._window() - _monotonic()
                if remaining > 0.001:
                    self.timer = self.agent.timers.call_later(remaining, self._on_timer)
                    if not self.timer.cancelled:
                        return
        logger.debug("hold on %r released by its time limit", self.handle)
        self.release()

    def release(self) -> None:
        """Let the held key run (idempotent, any thread)."""
        with self._lock:
            if self.released:
                return
            self.released = True
            handle, timer = self.handle, self.timer
            self.handle = self.timer = self.fut = None
        if timer is not None:
            timer.cancel()
        if handle is not None:
            handle.release()


class GatedFuture(DrachtioFuture):
    """A DrachtioFuture that knows who took its result (for the rule-5 hold)."""

    def __init__(self, dispatcher: Dispatcher | None = None, key: Hashable | None = None) -> None:
        super().__init__(dispatcher, key)
        self.gate: _Hold | None = None
        self.waiters = 0
        self.has_done_callbacks = False

    def add_done_callback(self, fn: Callable[[Any], object]) -> None:
        self.has_done_callbacks = True
        super().add_done_callback(fn)

    def result(self, timeout: float | None = None) -> Any:
        _release_held()
        with self._condition:       # (the Future's own lock counts the waiters)
            self.waiters += 1
        try:
            value = super().result(timeout)
        finally:
            with self._condition:
                self.waiters -= 1
        gate = self.gate
        if gate is not None:
            self.gate = None        # only the first consumer holds the key
            gate.taken()
        return value

    def exception(self, timeout: float | None = None) -> BaseException | None:
        _release_held()
        return super().exception(timeout)

    def _awaited(self) -> None:
        _release_held()     # an awaiting coroutine reached its next await: its listeners are on


class Outcome:
    """How a public async method reports back: through :class:`Completion` either way.

    The dispatch key of a callback is often only known at the end (a dialog id the server
    assigns), so the callback's Completion is made then; the Future exists from the start.
    """

    def __init__(self, agent: Agent, callback: Callable[..., Any] | None) -> None:
        if callback is not None and not callable(callback):
            raise TypeError(f"callback must be callable, got {type(callback).__name__}")
        self._agent = agent
        self._callback = adapt(callback, agent)
        self._done = False
        self._completion: Completion | None = None
        if callback is None:
            self._completion = Completion(agent.dispatcher, None)
            self._completion.future = GatedFuture(agent.dispatcher)

    @property
    def future(self) -> GatedFuture | None:
        return self._completion.future if self._completion is not None else None  # type: ignore[return-value]

    @property
    def done(self) -> bool:
        return self._done

    @property
    def abandoned(self) -> bool:
        """The user cancelled the Future: nobody wants the result any more."""
        fut = self.future
        return fut is not None and fut.cancelled()

    def returned(self, value_with_callback: Any = None) -> Any:
        return self.future if self._completion is not None else value_with_callback

    def _claim(self) -> bool:
        with _claim_lock:
            if self._done:
                return False
            self._done = True
            return True

    def succeed(self, *results: Any, key: Hashable | None = None, gate: bool = False) -> None:
        """Report success; a callback runs on ``key``.  With ``gate`` (rule 5) a Future's consumer
        gets ``key`` held until it has attached its listeners (see the module docstring)."""
        if not self._claim():
            return
        if self._callback is not None:
            self._agent.dispatcher.submit(key, run_task, self._callback, None, *results)
            return
        assert self._completion is not None
        fut = self.future
        assert fut is not None
        if gate and key is not None:
            hold = _Hold(self._agent, fut)
            fut.gate = hold
            fut._key = key          # done-callbacks run on the key, ahead of the hold
            self._completion.succeed(*results)
            if fut.cancelled():
                hold.release()
                return
            hold.start(self._agent.dispatcher.hold(key))
        else:
            self._completion.succeed(*results)

    def succeed_here(self, *results: Any, key: Hashable) -> None:
        """Report success from inside the task now running on ``key`` (rule 5 for results made
        on a dialog's own key, e.g. the B2BUA's): a callback runs inline, in this task; a Future
        resolves and ``key`` is held from the end of this task until the consumer has attached
        its listeners, so events already queued on ``key`` wait for it too.  Never blocks."""
        if not self._claim():
            return
        if self._callback is not None:
            try:
                self._callback(None, *results)
            except Exception:
                logger.exception("user code %r raised", self._callback)
            return
        assert self._completion is not None
        fut = self.future
        assert fut is not None
        hold = _Hold(self._agent, fut)
        fut.gate = hold
        handle = self._agent.dispatcher.hold(key, first=True)
        callbacks = fut.has_done_callbacks
        if callbacks:
            fut._key = ("done", id(fut))    # serial, and off the held key
        self._completion.succeed(*results)
        if fut.cancelled():
            hold.release()
            handle.release()
            return
        if callbacks:
            fut.add_done_callback(lambda _f: hold.release())    # after the user's callbacks
        hold.start(handle, callbacks_first=False)

    def fail(self, err: BaseException, key: Hashable | None = None) -> None:
        if not self._claim():
            return
        if self._callback is not None:
            self._agent.dispatcher.submit(key, run_task, self._callback, err)
            return
        assert self._completion is not None
        self._completion.fail(err)


# --------------------------------------------------------------------------- connection state

class _Pending:
    __slots__ = ("deadline", "handler")

    def __init__(self, handler: Callable[[wire.Frame | None, BaseException | None], None],
                 deadline: float | None) -> None:
        self.handler = handler
        self.deadline = deadline      # monotonic time the reply is due by (None: no limit)


class ServerConn:
    """What the agent knows about one control connection to a drachtio server."""

    def __init__(self, agent: Agent, conn: Connection, *, outbound: bool) -> None:
        self.agent = agent
        self.conn = conn
        self.outbound = outbound          # the server connected to us (listen mode)
        self.lock = threading.Lock()
        self.pending: dict[str, _Pending] = {}
        self.sent: dict[str, Request] = {}            # txnId -> request we sent, until final
        self.invites: dict[str, Request] = {}         # Call-ID -> incoming INVITE not answered
        self.ack_waiters: dict[str, Callable[..., Any]] = {}
        self.authenticated = False
        self.hostport: str | None = None
        self.server_version: str | None = None
        self.local_hostports: str | None = None
        self.ping_timer: Any = None
        self.sweep_timer: Any = None      # one timer per connection for all command timeouts
        self.sweep_at: float | None = None
        self.closed = False

    @property
    def peer(self) -> tuple[str, int]:
        return self.conn.peer

    def __repr__(self) -> str:
        return f"<ServerConn {self.conn!r}>"


def _version_at_least(version: str | None, wanted: tuple[int, int, int]) -> bool:
    import re
    m = re.match(r"^v(\d+)\.(\d+)\.(\d+)", version or "")
    return m is not None and tuple(int(x) for x in m.groups()) >= wanted


def build_message(start: Mapping[str, Any], base: list[tuple[str, str]] | None,
                  headers: Mapping[str, Any] | None, body: str | None) -> SipMessage:
    """A SipMessage from a start line, inherited header lines and the app's headers.

    The app's headers replace inherited ones of the same name (case-insensitively); a list
    value gives one header line per item; None values are skipped.
    """
    msg = SipMessage(dict(start))
    for name, value in base or ():
        msg.add(name, value)
    for name, value in (headers or {}).items():
        if value is None:
            continue
        if isinstance(value, (list, tuple)):
            msg.remove(name)
            for v in value:
                msg.add(name, str(v))
        else:
            msg.replace(name, str(value))
    if body:
        msg.body = body
    return msg


# --------------------------------------------------------------------------- the agent

class Agent:
    """The protocol engine under one Srf."""

    def __init__(self, srf: Srf) -> None:
        self.srf = srf
        self.dispatcher = Dispatcher(name="drachtio-worker")
        self.timers = Timers(name="drachtio-timers")
        self.lock = threading.RLock()
        self.conns: list[ServerConn] = []
        self.verbs: list[str] = []
        self.closing = False
        self.tags: list[str] = []
        self.secret: str | None = None
        self.enable_ping = False
        self.ping_interval = 15.0
        self.on_authenticated: Callable[[ServerConn, BaseException | None], None] | None = None
        self.on_conn_closed: Callable[[ServerConn, BaseException | None], None] | None = None

    # -- runtime ------------------------------------------------------------------------------
    def ensure_runtime(self) -> None:
        """Fresh dispatcher and timers after a disconnect (they are not restartable)."""
        if self.dispatcher.closed:
            self.dispatcher = Dispatcher(name="drachtio-worker")
        if getattr(self.timers, "_closed", False):
            self.timers = Timers(name="drachtio-timers")

    def submit(self, key: Hashable | None, fn: Callable[..., Any], *args: Any) -> None:
        """Run user code on the dispatcher (serial on key)."""
        self.dispatcher.submit(key, run_task, fn, *args)

    def emit_on(self, key: Hashable | None, emitter: Any, event: str, *args: Any) -> None:
        """Emit an event on the dispatcher (serial on key)."""
        self.dispatcher.submit(key, run_task, emitter.emit, event, *args)

    def outcome(self, callback: Callable[..., Any] | None) -> Outcome:
        return Outcome(self, callback)

    def shutdown(self) -> None:
        self.timers.shutdown()
        self.dispatcher.shutdown(wait=True, timeout=5.0)

    # -- connections --------------------------------------------------------------------------
    def default_conn(self) -> ServerConn:
        with self.lock:
            for sc in self.conns:
                if not sc.closed:
                    return sc
        raise NotConnectedError("not connected to a drachtio server")

    @property
    def connected(self) -> bool:
        with self.lock:
            return any(sc.authenticated and not sc.closed for sc in self.conns)

    def attach(self, sock: Any, *, outbound: bool, name: str = "drachtio") -> ServerConn:
        """Wrap a connected socket, start its reader and authenticate."""
        from .transport import Connection
        holder: dict[str, ServerConn] = {}

        def on_frame(conn: Connection, payload: str) -> None:
            self._on_frame(holder["sc"], payload)

        def on_close(conn: Connection, err: BaseException | None) -> None:
            sc = holder.get("sc")
            if sc is not None:
                self._on_close(sc, err)

        conn = Connection(sock, on_frame=on_frame, on_close=on_close, name=name)
        sc = ServerConn(self, conn, outbound=outbound)
        holder["sc"] = sc
        with self.lock:
            self.conns.append(sc)
        conn.start()
        self._authenticate(sc)
        return sc

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
        with self.lock:
            if verb in self.verbs:
                return
            self.verbs.append(verb)
            conns = [sc for sc in self.conns if sc.authenticated and not sc.outbound and not sc.closed]
        for sc in conns:
            self._send_route(sc, verb)

    def remove_route(self, verb: str) -> None:
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
            elif f.type == "sip":
                self._on_sip(sc, f)
            elif f.type.startswith("cdr:"):
                self._on_cdr(f)
            else:
                logger.error("unknown frame type %r from drachtio server", f.type)
        except Exception:
            logger.exception("failed to handle frame %r", payload[:200])

    def _on_reply(self, sc: ServerConn, f: wire.Frame) -> None:
        msg_id = f.field(2)
        keep = f.field(12) == "continue"
        with sc.lock:
            p = sc.pending.get(msg_id) if keep else sc.pending.pop(msg_id, None)
        if p is None:
            logger.debug("reply to unknown msgId %s", msg_id)
            return
        p.handler(f, None)

    def _on_cdr(self, f: wire.Frame) -> None:
        kind = f.type
        try:
            msg = SipMessage(f.sip or "")
        except SipParseError as err:
            logger.error("unparseable SIP in %s: %s", kind, err)
            return
        args: list[Any] = [f.field(2), f.field(3)]
        if kind != "cdr:attempt":
            args.append(f.field(4))
        args.append(msg)
        self.emit_on(("cdr",), self.srf, kind, *args)    # one key: records reach listeners in order

    def _on_sip(self, sc: ServerConn, f: wire.Frame) -> None:
        if len(f.fields) < 10:
            logger.debug("ignoring sip frame with %d fields", len(f.fields))
            return
        meta = wire.SipMeta.from_sip_frame(f)
        try:
            msg = SipMessage(f.sip or "")
        except SipParseError as err:
            logger.error("unparseable SIP message from drachtio server: %s", err)
            return
        if meta.source == "network" and msg.type == "request":
            self._on_network_request(sc, msg, meta)
        elif meta.source == "network" and msg.type == "response":
            self._on_response(sc, msg, meta)
        elif meta.source == "application" and msg.type == "request" and meta.txn_id == "unsolicited":
            req, res = self._make_incoming(sc, msg, meta)
            res._send_disabled = True
            self.submit(self._request_key(req), self.srf._handle_request, req, res)
        else:
            logger.debug("ignoring sip frame source=%s type=%s", meta.source, msg.type)

    def _make_incoming(self, sc: ServerConn, msg: SipMessage, meta: wire.SipMeta) -> tuple[Request, Response]:
        req = Request(msg, meta, agent=self, conn=sc)
        req._server = _SERVER_OF_CONN      # {address, hostport} made if someone reads it
        res = Response(self, sc)
        res.req = req
        req.res = res
        req._key = ("evt", meta.txn_id)
        return req, res

    @staticmethod
    def _request_key(req: Request) -> Hashable:
        if req.stack_dialog_id:
            return dialog_key(req.stack_dialog_id)
        return ("call", req.call_id or req.stack_txn_id)

    def _on_network_request(self, sc: ServerConn, msg: SipMessage, meta: wire.SipMeta) -> None:
        call_id = msg.call_id or ""
        method = msg.method
        if method == "CANCEL":
            with sc.lock:
                invite = sc.invites.pop(call_id, None)
            if invite is not None:
                invite._far_end_canceled(msg)
            else:
                logger.debug("CANCEL for unknown call-id %s dropped", call_id)
            return
        req, res = self._make_incoming(sc, msg, meta)
        key = self._request_key(req)
        if method == "INVITE":
            with sc.lock:
                sc.invites[call_id] = req
        elif method in ("ACK", "PRACK") and meta.dialog_id:
            with sc.lock:
                fn_ack = sc.ack_waiters.pop(meta.dialog_id, None)
            if fn_ack is not None:
                self.submit(key, fn_ack, req)
            elif method == "ACK" and self._ack_without_task(req, key):
                return
        elif method == "UPDATE":
            with sc.lock:
                invite = sc.invites.get(call_id)
                pending_uac = None
                if invite is None:
                    pending_uac = next((r for r in sc.sent.values()
                                        if r.method == "INVITE" and r.call_id == call_id), None)
            if invite is not None:
                if invite.listeners("update"):
                    self.emit_on(invite._key, invite, "update", req, res)
                else:
                    res.send(500, {"headers": {"Retry-After": "5"}})
                return
            if pending_uac is not None:
                self.emit_on(pending_uac._key, pending_uac, "update", req, res)
                return
        self.submit(key, self.srf._handle_request, req, res)

    def _ack_without_task(self, req: Request, key: Hashable) -> bool:
        """Handle an in-dialog ACK here on the reader when that runs no user code: the dialog's
        key has nothing queued or running (so nothing that could still attach an ``ack``
        listener is pending, e.g. a create_uas completion or a rule-5 hold) and nobody listens
        for ``ack``.  Saves a worker hand-off per call; False means: dispatch as usual."""
        if not self.dispatcher.idle(key):
            return False
        dialog = self.srf.find_dialog_by_id(req.stack_dialog_id or "")
        return dialog is not None and dialog._take_ack(req)

    def _on_response(self, sc: ServerConn, msg: SipMessage, meta: wire.SipMeta) -> None:
        with sc.lock:
            req = sc.sent.get(meta.txn_id)
            if req is not None and (msg.status or 0) >= 200:
                del sc.sent[meta.txn_id]
        if req is None:
            logger.debug("response for unknown transaction %s dropped", meta.txn_id)
            return
        res = Response(self, sc, msg)
        res.meta = meta
        res.req = req
        status = msg.status or 0
        ack: Callable[..., Any] = _noop
        if status >= 200 and req.method == "INVITE":
            if 200 <= status < 300:
                ack = functools.partial(self.send_ack, sc, "ACK", meta.dialog_id, req, res)
        elif 100 < status < 200 and msg.has("RSeq"):
            ack = functools.partial(self.send_ack, sc, "PRACK", meta.dialog_id, req, res)
        if status in (401, 407) and uac_auth.on_challenge(self, sc, req, res, ack):
            return      # re-sent with credentials (PROTOCOL 4.11)
        self.deliver_response(req, res, ack)

    def deliver_response(self, req: Request, res: Response, ack: Callable[..., Any]) -> None:
        """Hand a response to the library hooks of ``req`` and its ``response`` listeners."""
        for hook in list(req._hooks):
            self._safe(hook, res, ack, None)
        if req.listeners("response"):
            self.emit_on(req._key, req, "response", res, ack)

    # -- requests out -----------------------------------------------------------------------------
    def send_request(self, *, method: str, uri: str | None, headers: Mapping[str, Any] | None = None,
                     body: str | None = None, dialog_id: str | None = None, proxy: str | None = None,
                     conn: ServerConn | None = None, auth: Any = None,
                     on_sent: Callable[[BaseException | None, Request | None], None]) -> None:
        """Send a request; ``on_sent(err, req)`` runs on the reader thread when the server echoes it.

        The Request is registered for its responses before ``on_sent`` runs, so hooks attached
        in ``on_sent`` see every response.  With ``auth`` (credentials or a function giving
        them) a 401/407 is answered by re-sending the request (see uac_auth).
        """
        sc = conn if conn is not None and not conn.closed else self.default_conn()
        method = method.upper()
        if not uri:
            if not dialog_id:
                raise ValueError("a request outside a dialog needs a uri")
            uri = "sip:placeholder"
        msg = build_message({"method": method, "uri": uri}, None, headers, body)
        text = str(msg)

        def on_reply(f: wire.Frame | None, err: BaseException | None) -> None:
            if f is None:
                on_sent(err, None)
                return
            if not f.ok:
                on_sent(DrachtioError(f.field(4) or "request failed"), None)
                return
            try:
                sent = SipMessage(f.sip or "")
                meta = wire.SipMeta.from_echo(f)
            except (SipParseError, wire.WireProtocolError) as exc:
                on_sent(exc, None)
                return
            req = Request(sent, meta, agent=self, conn=sc)
            req.source = "application"
            if dialog_id:
                req.stack_dialog_id = dialog_id
                req._key = dialog_key(dialog_id)
            elif method in ("INVITE", "SUBSCRIBE") and sent.call_id and sent.from_tag:
                req._key = dialog_key(f"{sent.call_id};from-tag={sent.from_tag}")
            else:
                req._key = ("txn", meta.txn_id)
            if auth is not None and method not in ("CANCEL", "ACK"):
                req._auth_state = auth if isinstance(auth, uac_auth.AuthState) else uac_auth.AuthState(
                    auth, method=method, uri=uri, headers=headers, body=body, dialog_id=dialog_id,
                    proxy=proxy)
                req.auth = req._auth_state.auth
            if method not in ("CANCEL", "ACK"):
                with sc.lock:
                    sc.sent[meta.txn_id] = req
            on_sent(None, req)

        self.command(sc, lambda mid: wire.sip_request(mid, text, dialog_id or "", proxy), on_reply)

    def cancel_request(self, req: Request, headers: Mapping[str, Any], callback: Any) -> Any:
        """CANCEL an INVITE we sent (PROTOCOL 4.6)."""
        out = self.outcome(callback)
        sc = req._conn if req._conn is not None and not req._conn.closed else self.default_conn()
        msg = build_message({"method": "CANCEL", "uri": req.uri}, None, headers, None)
        text = str(msg)

        def on_reply(f: wire.Frame | None, err: BaseException | None) -> None:
            if f is None:
                out.fail(err or DrachtioError("cancel failed"))
            elif not f.ok:
                out.fail(DrachtioError(f.field(4) or "cancel failed"))
            else:
                try:
                    out.succeed(SipMessage(f.sip or ""))
                except SipParseError as exc:
                    out.fail(exc)

        def send() -> None:
            try:
                self.command(sc, lambda mid: wire.sip_cancel(mid, req.stack_txn_id or "", text), on_reply)
            except DrachtioError as err:
                out.fail(err)
        if not uac_auth.defer_cancel(req, send):   # held while the INVITE is re-sent with credentials
            send()
        return out.returned(req)

    def send_ack(self, sc: ServerConn, method: str, dialog_id: str, req: Request, res: Response,
                 opts: Mapping[str, Any] | str | None = None, callback: Any = None) -> Any:
        """ACK a 2xx (or PRACK a reliable 1xx) inside the dialog; the ``ack`` function apps get.

        ``opts`` is ``{headers, body}`` as in drachtio-srf, or just the body (the SDP answer of a
        3pcc call, as the ``ack(sdp)`` that modify and create_uac give with no_ack)."""
        if isinstance(opts, str):
            opts = {"body": opts}
        elif opts is not None and not isinstance(opts, Mapping):
            raise TypeError(f"{method} options must be a dict of headers/body or a body string, "
                            f"got {type(opts).__name__}")
        opts = dict(opts or {})
        headers = dict(opts.get("headers") or {})
        if method == "PRACK":
            rseq = (res.get("RSeq") or "").strip()
            headers["RAck"] = f"{rseq} {req.get('CSeq')}"
        msg = build_message({"method": method, "uri": req.uri or "sip:placeholder"}, None, headers,
                            opts.get("body"))
        text = str(msg)
        out = self.outcome(callback) if callback is not None else None

        def on_reply(f: wire.Frame | None, err: BaseException | None) -> None:
            if f is not None and f.ok:
                if out is not None:
                    out.succeed(SipMessage(f.sip or ""))
                return
            problem = err or DrachtioError(f.field(4) if f is not None else "ack failed")
            logger.warning("%s in dialog %s failed: %s", method, dialog_id, problem)
            if out is not None:
                out.fail(problem)
        try:
            self.command(sc, lambda mid: wire.sip_request(mid, text, dialog_id), on_reply)
        except DrachtioError as err:
            logger.warning("could not send %s: %s", method, err)
            if out is not None:
                out.fail(err)
        return None

    # -- responses out ------------------------------------------------------------------------------
    def send_response(self, res: Response, headers: Mapping[str, Any], body: str | None,
                      callback: Any, fn_ack: Any, on_echo: Callable[..., None] | None = None) -> Any:
        """Send ``res`` (status already set); callback(err, sent_msg) / Future on the echo."""
        req = res.req
        assert req is not None
        sc = res._conn or req._conn
        # Library-internal sends report through on_echo and return nothing: no Future is made.
        out = self.outcome(callback) if callback is not None or on_echo is None else None
        if sc is None or sc.closed:
            err = NotConnectedError("drachtio-agent: connection closed, response not sent")
            if out is None:
                on_echo(err, None)      # type: ignore[misc]
                return None
            out.fail(err)
            return out.returned()
        status = res.status or 0
        if res._msg is not None:
            text = str(build_message({"status": res.msg.status, "reason": res.msg.reason},
                                     res.msg.header_lines(), headers, body))
        elif headers:
            # the app never touched this response's headers: build it from the request
            base = [(name, value) for name in _FROM_REQUEST if (value := req.get(name)) is not None]
            text = str(build_message({"status": status, "reason": res.reason}, base, headers, body))
        else:
            text = response_text(status, res.reason, req, body)
        if status >= 200 and req.method == "INVITE":
            call_id = req.call_id or ""
            with sc.lock:
                if sc.invites.get(call_id) is req:
                    del sc.invites[call_id]
        txn_id = req.stack_txn_id or ""

        # nobody will look at the message as sent: do not parse the echo
        wants_sent = out is not None or on_echo is not ignore_echo or fn_ack is not None

        def on_reply(f: wire.Frame | None, err: BaseException | None) -> None:
            if f is None or not f.ok:
                problem = err or DrachtioError(f.field(4) if f is not None else "response not sent")
                if on_echo is not None:
                    on_echo(problem, None)
                if out is not None:
                    out.fail(problem)
                return
            try:
                sent = SipMessage(f.sip or "") if wants_sent else None
                meta = wire.SipMeta.from_echo(f)
            except (SipParseError, wire.WireProtocolError) as exc:
                if on_echo is not None:
                    on_echo(exc, None)
                if out is not None:
                    out.fail(exc)
                return
            res.meta = meta
            if fn_ack is not None and (status == 200 or sent.has("RSeq")) and meta.dialog_id:  # type: ignore[union-attr]
                with sc.lock:
                    sc.ack_waiters[meta.dialog_id] = fn_ack
            if on_echo is not None:
                on_echo(None, sent)
            if out is not None:
                out.succeed(sent, key=dialog_key(meta.dialog_id) if meta.dialog_id else req._key)

        try:
            self.command(sc, lambda mid: wire.sip_response(mid, txn_id, text), on_reply)
        except DrachtioError as err:
            if on_echo is not None:
                on_echo(err, None)
            if out is not None:
                out.fail(err)
        if status >= 200 and (out is not None or res._events.get("finish")):
            # Queued behind the task that called send() (on its key), so a listener the app
            # attaches right after send() still hears it, as in Node; library-internal sends
            # (out is None) skip the task unless someone already listens.
            self.emit_on(self.dispatcher.current_key() or req._key, res, "finish")
        return out.returned() if out is not None else None

    # -- proxy ------------------------------------------------------------------------------------
    def proxy(self, req: Request, opts: Mapping[str, Any], callback: Any) -> Any:
        """Proxy an incoming request (PROTOCOL 4.9); result {connected, final_status, ...}."""
        out = self.outcome(callback)
        sc = req._conn if req._conn is not None else self.default_conn()
        dest: Any = opts.get("destination") or req.uri
        dests = [dest] if isinstance(dest, str) else list(dest)
        dests = [d if d.split(":", 1)[0] in ("sip", "sips", "tel") else "sip:" + d for d in dests]
        msg = build_message({"method": req.method, "uri": dests[0]}, None, opts.get("headers"), None)
        text = str(msg)
        from .sip import AttrDict
        result = AttrDict(connected=False, final_status=None, final_response=None, responses=[])

        def on_reply(f: wire.Frame | None, err: BaseException | None) -> None:
            if f is None:
                out.fail(err or DrachtioError("proxy failed"))
                return
            if not f.ok:
                out.fail(DrachtioError(f.field(4) or "proxy failed"))
                return
            if f.field(4) == "done":
                with sc.lock:
                    sc.pending.pop(f.field(2), None)
                result["connected"] = result["final_status"] == 200
                result["finalStatus"] = result["final_status"]
                result["finalResponse"] = result["final_response"]
                out.succeed(result)
                return
            try:
                meta = wire.SipMeta.from_echo(f)
                m = SipMessage(f.sip or "")
            except (SipParseError, wire.WireProtocolError) as exc:
                logger.error("bad proxy reply: %s", exc)
                return
            entry = AttrDict(time=meta.time, status=m.status, msg=m)
            responses = result["responses"]
            if not responses or responses[-1]["address"] != meta.address or responses[-1]["port"] != meta.port:
                responses.append(AttrDict(address=meta.address, port=meta.port, msgs=[]))
            responses[-1]["msgs"].append(entry)
            result["final_status"] = m.status
            result["final_response"] = entry

        with sc.lock:
            if sc.invites.get(req.call_id or "") is req:
                del sc.invites[req.call_id or ""]
        try:
            self.command(sc, lambda mid: wire.proxy(
                mid, req.stack_txn_id or "", dests, text,
                remain_in_dialog=bool(opts.get("remain_in_dialog") or opts.get("record_route") or opts.get("path")),
                full_response=True, follow_redirects=bool(opts.get("follow_redirects")),
                simultaneous=opts.get("forking") == "simultaneous",
                provisional_timeout=_duration(opts.get("provisional_timeout")),
                final_timeout=_duration(opts.get("final_timeout"))), on_reply, timeout=None)
        except DrachtioError as err:
            out.fail(err)
        return out.returned(req)


def _noop(*_args: Any, **_kwargs: Any) -> None:
    return None


def ignore_echo(err: BaseException | None, _sent: Any) -> None:
    """``on_echo`` for library sends whose outcome nobody needs (no Future is made for them)."""
    if err is not None:
        logger.debug("response not sent: %s", err)


_FROM_REQUEST = ("Call-ID", "CSeq", "From", "To")   # what a response copies from its request
_head_names: list[str] = []                          # how the parser writes those names


def response_text(status: int, reason: str | None, req: Request, body: str | None) -> str:
    """The text ``build_message`` makes for a response with only the request's Call-ID, CSeq,
    From and To headers (and a body), written directly: the usual answer needs no SipMessage.
    """
    names = _head_names
    if not names:
        sample = str(build_message({"status": 200, "reason": "OK"}, [(n, "v") for n in _FROM_REQUEST],
                                   None, None)).split("\r\n")
        names.extend(line[:-3] for line in sample[1:1 + len(_FROM_REQUEST)])
    parts = [f"SIP/2.0 {status} {reason if reason is not None else reason_phrase(status)}"]
    get = req.msg.get
    for name, written in zip(_FROM_REQUEST, names):
        value = get(name)
        if value is not None:
            parts.append(f"{written}: {value}")
    body = body or ""
    size = len(body) if body.isascii() else len(body.encode("utf-8", "surrogateescape"))
    parts.append(f"Content-Length: {size}\r\n")
    parts.append(body)
    return "\r\n".join(parts)


def _duration(value: Any) -> str:
    """A proxy timeout as the wire wants it: ``'2s'``/``'1500ms'`` as given; a number is seconds."""
    if value is None or value == "":
        return ""
    if isinstance(value, bool):
        raise TypeError("proxy timeout must be a string like '2s' or a number of seconds")
    if isinstance(value, (int, float)):
        return f"{int(value * 1000)}ms"
    return str(value)
