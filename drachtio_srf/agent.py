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

Rule 5 (a listener attached right after ``create_uas(...).result()`` sees the far end's first
in-dialog request) is built from two pieces:

1. The reader thread registers the new Dialog and queues its completion on the dialog's key
   *before* it reads the next frame, so every in-dialog request lands behind it in that key's
   queue.  With a callback, the callback is that queued task: listeners it attaches are in place
   before the next task of the key runs.
2. With a Future, the reader resolves the Future at once (never through a queue: the waiting
   thread may itself be a worker on that very key) and queues a *gate* task on the key.  The gate
   holds the key's queue until the consumer is done attaching listeners: the thread that got the
   value from ``result()`` releases it when the dispatched task it runs in returns, or when it
   blocks again in any library Future, whichever comes first.  A consumer outside the library's
   workers (e.g. the main thread) gets the same release on its next library wait and otherwise a
   short window (``_OUTSIDE_WINDOW``); a consumer that keeps its task running for long without
   waiting on the library releases it after ``_HOLD_MAX``.  A result nobody waits for holds the
   key only ``_UNCLAIMED_WINDOW`` (or not at all when it has done-callbacks, which are queued on
   the key ahead of the gate).  Hence ``result()`` returning, and the code after it up to the end
   of the handler or the next library wait, happen-before any queued in-dialog event.
"""
from __future__ import annotations

import functools
import logging
import threading
from collections.abc import Callable, Hashable, Mapping
from typing import TYPE_CHECKING, Any

from . import uac_auth, wire
from .dispatch import Completion, Dispatcher, DrachtioFuture, Timers
from .errors import ConnectionLostError, DrachtioError, NotConnectedError
from .request import Request
from .response import Response
from .sip import SipMessage, SipParseError

if TYPE_CHECKING:
    from .srf import Srf
    from .transport import Connection

logger = logging.getLogger(__name__)

__all__ = ["Agent", "GatedFuture", "Outcome", "ServerConn", "dialog_key"]

COMMAND_TIMEOUT = 60.0     # longest wait for the server's reply to one command
_HOLD_MAX = 1.0            # gate: longest a worker consumer holds a dialog's events
_OUTSIDE_WINDOW = 0.5      # gate: window for a consumer that is not a library worker
_UNCLAIMED_WINDOW = 0.3    # gate: wait for a consumer when nobody was waiting on the result

_local = threading.local()


def dialog_key(dialog_id: str) -> tuple[str, str]:
    return ("dlg", dialog_id)


# --------------------------------------------------------------------------- rule 5 machinery

def _held() -> list[_Gate]:
    held = getattr(_local, "held", None)
    if held is None:
        held = _local.held = []
    return held


def _release_held() -> None:
    """This thread is about to block in the library (or its task ended): open its gates."""
    held = getattr(_local, "held", None)
    if held:
        for gate in held:
            gate.released.set()
        held.clear()


def run_task(fn: Callable[..., Any], *args: Any) -> None:
    """Run user code as one dispatched task; when it returns, release the gates it holds."""
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


class _Gate:
    """Holds a key's queue until the consumer of a Future's result has attached its listeners."""

    __slots__ = ("fut", "in_task", "released", "retrieved")

    def __init__(self, fut: GatedFuture) -> None:
        self.fut = fut
        self.retrieved = threading.Event()
        self.released = threading.Event()
        self.in_task = False

    def taken(self) -> None:
        """Called on the consumer's thread right after ``result()`` returned the value."""
        self.in_task = bool(getattr(_local, "in_task", False))
        _held().append(self)
        self.retrieved.set()

    def hold(self) -> None:
        """The gate task itself (runs on the key's worker)."""
        fut = self.fut
        if not self.retrieved.is_set():
            if fut.waiters > 0:
                self.retrieved.wait(_HOLD_MAX)
            elif fut.has_done_callbacks:
                return
            else:
                self.retrieved.wait(_UNCLAIMED_WINDOW)
            if not self.retrieved.is_set():
                return
        if not self.released.wait(_HOLD_MAX if self.in_task else _OUTSIDE_WINDOW):
            logger.debug("gate on %r opened by its time limit", fut)


class GatedFuture(DrachtioFuture):
    """A DrachtioFuture that knows who took its result (for the rule-5 gate)."""

    def __init__(self, dispatcher: Dispatcher | None = None, key: Hashable | None = None) -> None:
        super().__init__(dispatcher, key)
        self.gate: _Gate | None = None
        self.waiters = 0
        self.has_done_callbacks = False
        self._count_lock = threading.Lock()

    def add_done_callback(self, fn: Callable[[Any], object]) -> None:
        self.has_done_callbacks = True
        super().add_done_callback(fn)

    def result(self, timeout: float | None = None) -> Any:
        _release_held()
        with self._count_lock:
            self.waiters += 1
        try:
            value = super().result(timeout)
        finally:
            with self._count_lock:
                self.waiters -= 1
        gate = self.gate
        if gate is not None and not gate.retrieved.is_set():
            gate.taken()
        return value

    def exception(self, timeout: float | None = None) -> BaseException | None:
        _release_held()
        return super().exception(timeout)


class Outcome:
    """How a public async method reports back: through :class:`Completion` either way.

    The dispatch key of a callback is often only known at the end (a dialog id the server
    assigns), so the callback's Completion is made then; the Future exists from the start.
    """

    def __init__(self, agent: Agent, callback: Callable[..., Any] | None) -> None:
        if callback is not None and not callable(callback):
            raise TypeError(f"callback must be callable, got {type(callback).__name__}")
        self._agent = agent
        self._callback = callback
        self._lock = threading.Lock()
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

    def returned(self, value_with_callback: Any = None) -> Any:
        return self.future if self._completion is not None else value_with_callback

    def _claim(self) -> bool:
        with self._lock:
            if self._done:
                return False
            self._done = True
            return True

    def succeed(self, *results: Any, key: Hashable | None = None, gate: bool = False) -> None:
        if not self._claim():
            return
        if self._callback is not None:
            Completion(self._agent.dispatcher, functools.partial(run_task, self._callback), key).succeed(*results)
            return
        assert self._completion is not None
        fut = self.future
        assert fut is not None
        if gate and key is not None:
            g = _Gate(fut)
            fut.gate = g
            fut._key = key          # done-callbacks run on the key, ahead of the gate
            self._completion.succeed(*results)
            self._agent.dispatcher.submit(key, g.hold)
        else:
            self._completion.succeed(*results)

    def fail(self, err: BaseException, key: Hashable | None = None) -> None:
        if not self._claim():
            return
        if self._callback is not None:
            Completion(self._agent.dispatcher, functools.partial(run_task, self._callback), key).fail(err)
            return
        assert self._completion is not None
        self._completion.fail(err)


# --------------------------------------------------------------------------- connection state

class _Pending:
    __slots__ = ("handler", "keep", "timer")

    def __init__(self, handler: Callable[[wire.Frame | None, BaseException | None], None]) -> None:
        self.handler = handler
        self.timer: Any = None


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
        self.closed = False

    @property
    def peer(self) -> tuple[str, int]:
        return self.conn.peer

    def __repr__(self) -> str:
        return f"<ServerConn {self.conn!r}>"


def _version_at_least(version: str | None, wanted: tuple[int, int, int]) -> bool:
    import re
    m = re.match(r"^v(\d+)\.(\d+)\.(\d+)", version or "")
    return bool(m) and tuple(int(x) for x in m.groups()) >= wanted


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
            if p.timer is not None:
                p.timer.cancel()
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
        p = _Pending(handler)
        with sc.lock:
            if sc.closed:
                raise NotConnectedError("connection to drachtio server is closed")
            sc.pending[msg_id] = p
        if timeout:
            p.timer = self.timers.call_later(timeout, self._command_timeout, sc, msg_id)
        try:
            sc.conn.send(build(msg_id))
        except BaseException:
            with sc.lock:
                sc.pending.pop(msg_id, None)
            if p.timer is not None:
                p.timer.cancel()
            raise
        return msg_id

    def _command_timeout(self, sc: ServerConn, msg_id: str) -> None:
        with sc.lock:
            p = sc.pending.pop(msg_id, None)
        if p is not None:
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
        if p.timer is not None and not keep:
            p.timer.cancel()
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
        req.server = {"address": sc.peer[0], "hostport": sc.hostport}
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
                 opts: Mapping[str, Any] | None = None, callback: Any = None) -> Any:
        """ACK a 2xx (or PRACK a reliable 1xx) inside the dialog; the ``ack`` function apps get."""
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
        out = self.outcome(callback)
        if sc is None or sc.closed:
            out.fail(NotConnectedError("drachtio-agent: connection closed, response not sent"))
            return out.returned()
        msg = build_message({"status": res.msg.status, "reason": res.msg.reason},
                            res.msg.header_lines(), headers, body)
        text = str(msg)
        status = res.msg.status or 0
        if status >= 200 and req.method == "INVITE":
            with sc.lock:
                if sc.invites.get(req.call_id or "") is req:
                    del sc.invites[req.call_id or ""]

        def on_reply(f: wire.Frame | None, err: BaseException | None) -> None:
            if f is None or not f.ok:
                problem = err or DrachtioError(f.field(4) if f is not None else "response not sent")
                if on_echo is not None:
                    on_echo(problem, None)
                out.fail(problem)
                return
            try:
                sent = SipMessage(f.sip or "")
                meta = wire.SipMeta.from_echo(f)
            except (SipParseError, wire.WireProtocolError) as exc:
                if on_echo is not None:
                    on_echo(exc, None)
                out.fail(exc)
                return
            res.meta = meta
            if fn_ack is not None and (sent.has("RSeq") or status == 200) and meta.dialog_id:
                with sc.lock:
                    sc.ack_waiters[meta.dialog_id] = fn_ack
            if on_echo is not None:
                on_echo(None, sent)
            out.succeed(sent, key=dialog_key(meta.dialog_id) if meta.dialog_id else req._key)

        try:
            self.command(sc, lambda mid: wire.sip_response(mid, req.stack_txn_id or "", text), on_reply)
        except DrachtioError as err:
            if on_echo is not None:
                on_echo(err, None)
            out.fail(err)
        if status >= 200:
            self.emit_on(req._key, res, "finish")
        return out.returned()

    # -- proxy ------------------------------------------------------------------------------------
    def proxy(self, req: Request, opts: Mapping[str, Any], callback: Any) -> Any:
        """Proxy an incoming request (PROTOCOL 4.9); result {connected, final_status, ...}."""
        out = self.outcome(callback)
        sc = req._conn if req._conn is not None else self.default_conn()
        dest = opts.get("destination") or req.uri
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


def _duration(value: Any) -> str:
    """A proxy timeout as the wire wants it: ``'2s'``/``'1500ms'`` as given; a number is seconds."""
    if value is None or value == "":
        return ""
    if isinstance(value, bool):
        raise TypeError("proxy timeout must be a string like '2s' or a number of seconds")
    if isinstance(value, (int, float)):
        return f"{int(value * 1000)}ms"
    return str(value)
