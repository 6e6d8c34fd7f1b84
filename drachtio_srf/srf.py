"""Srf: the application's handle on drachtio.

Connects to a drachtio server (or listens for it, outbound-connection mode), runs middleware and
verb handlers for new requests, sends requests, and creates dialogs as UAS or UAC.  Every async
method takes an optional last-argument callback ``(err, *results)`` or returns a Future.
Events (always emitted from the dispatcher): ``connect(err, hostport, server_version,
local_hostports)``, ``error(err)``, ``close``/``disconnect``, ``reconnecting({delay, attempt})``,
``listening``, ``cdr:attempt|start|stop``.  A ``connect`` (client mode) or ``listening`` listener
added after that event was emitted, while still connected (listening), is called once, at once,
with the same arguments: ``srf.connect(cfg); srf.on('connect', fn)`` always works.
"""
from __future__ import annotations

import asyncio
import concurrent.futures
import logging
import re
import ssl
import threading
from collections.abc import Callable, Mapping, Sequence
from typing import TYPE_CHECKING, Any, Protocol, TypeVar, cast, overload

from . import sdp as sdp_edit
from .agent import Agent, ServerConn, dialog_key
from .b2bua import check_legs, create_b2bua
from .dialog import Dialog
from .dispatch import DrachtioFuture
from .emitter import Emitter
from .errors import ArgumentError, DrachtioError, NotConnectedError, SipError
from .models import B2BUAResult, Callback, ProxyResult
from .names import install_aliases, normalize_opts, uac_args
from .request import Request
from .response import Response
from .sip import AttrDict, SipMessage, parse_uri, stringify_uri
from .usercode import LoopRunner, adapt, arity, bind_runner, call, describe

if TYPE_CHECKING:
    from .transport import Listener

logger = logging.getLogger(__name__)

#: the Dialog class, for annotations inside Srf (whose ``Srf.Dialog`` attribute shadows the name)
_Dialog = Dialog

__all__ = ["Srf"]

VERBS = ("invite", "register", "options", "subscribe", "notify", "message", "info", "publish",
         "refer", "update", "bye", "cancel", "prack", "ack")
CDR_EVENTS = ("cdr:attempt", "cdr:start", "cdr:stop")
_H = TypeVar("_H", bound=Callable[..., object])
#: an option dict (JS keys or PEP 8 keys)
Opts = Mapping[str, Any]


class _Registrar(Protocol):
    """``srf.invite(fn)`` returns ``fn``; ``srf.invite()`` is a decorator; with several functions
    the Srf is returned (so calls chain)."""

    @overload
    def __call__(self) -> Callable[[_H], _H]: ...
    @overload
    def __call__(self, fn: _H, /) -> _H: ...
    @overload
    def __call__(self, fn: Callable[..., object], fn2: Callable[..., object], /,
                 *fns: Callable[..., object]) -> Srf: ...


class _VerbMethod(Protocol):
    """What type checkers see for ``Srf.invite`` & co: a method giving a :class:`_Registrar`."""

    @overload
    def __get__(self, obj: None, owner: Any, /) -> _VerbMethod: ...
    @overload
    def __get__(self, obj: Srf, owner: Any, /) -> _Registrar: ...


def _verb(verb: str) -> _VerbMethod:
    """The handler-registration method for one SIP method (``srf.invite(fn)``)."""
    def handler(self: Srf, *fns: Any) -> Any:
        return self.use(verb, *fns)
    handler.__name__ = handler.__qualname__ = verb
    handler.__doc__ = f"Handle new {verb.upper()} requests: ``fn(req, res)`` (also a decorator)."
    return cast(_VerbMethod, handler)


_TAG = re.compile(r"^[a-zA-Z0-9\-_+@:]+$")
_SRF_KEY = ("srf",)


#: events replayed to a listener added after they were emitted, while still true (Srf._store)
_REPLAYED = ("connect", "listening")


def _tls_context(tls: Any) -> ssl.SSLContext | None:
    """``tls`` as given: an SSLContext, True (default context), or a Node-style options dict."""
    if tls is None or tls is False:
        return None
    if isinstance(tls, ssl.SSLContext):
        return tls
    ctx = ssl.create_default_context(ssl.Purpose.SERVER_AUTH)
    if isinstance(tls, Mapping):
        if tls.get("ca"):
            ctx.load_verify_locations(cafile=tls["ca"])
        if tls.get("cert"):
            ctx.load_cert_chain(tls["cert"], tls.get("key"))
        if tls.get("rejectUnauthorized") is False or tls.get("reject_unauthorized") is False:
            ctx.check_hostname = False
            ctx.verify_mode = ssl.CERT_NONE
    return ctx


@install_aliases
class Srf(Emitter):
    """A drachtio signaling resource framework application."""

    Dialog = Dialog
    """The :class:`Dialog` class, reachable from the app as in drachtio-srf."""
    SipError = SipError
    """The :class:`SipError` class, reachable from the app as in drachtio-srf."""
    SipMessage = SipMessage
    """The SipMessage class, reachable from the app as in drachtio-srf."""
    SipRequest = Request
    """The :class:`Request` class under its drachtio-srf name."""
    SipResponse = Response
    """The :class:`Response` class under its drachtio-srf name."""
    parse_uri = staticmethod(parse_uri)
    """Parse a SIP URI string into its parts (static)."""
    stringify_uri = staticmethod(stringify_uri)
    """Build a SIP URI string from its parts (static)."""

    def __init__(self, tags: str | list[str] | None = None, *, max_workers: int = 64,
                 loop: asyncio.AbstractEventLoop | None = None) -> None:
        """``tags`` route requests by tag, as drachtio-srf.  ``max_workers`` caps the threads that
        run user code (handlers, callbacks, listeners): one is busy per handler that blocks at the
        same time, and work beyond the cap waits for one to free (a WARNING is logged the first
        time).  ``loop`` is the asyncio loop that ``async def`` handlers and listeners run on
        (default: one the library starts when first needed)."""
        super().__init__()
        if isinstance(max_workers, bool) or not isinstance(max_workers, int):
            raise TypeError(f"max_workers must be an int, got {type(max_workers).__name__}")
        if max_workers < 1:
            raise ValueError(f"max_workers must be at least 1, got {max_workers}")
        self.max_workers = max_workers
        """Cap on threads running user code at once (handlers, callbacks, listeners)."""
        tag_list = [tags] if isinstance(tags, str) else list(tags or [])
        if len(tag_list) > 20:
            raise ArgumentError("at most 20 tags")
        for t in tag_list:
            if not isinstance(t, str) or len(t) > 32 or not _TAG.match(t):
                raise ArgumentError(f"invalid tag {t!r}: up to 32 of [a-zA-Z0-9-_+@:]")
        self.tags = tag_list
        """The tags this app registers, so the server routes tagged requests to it."""
        self.locals: dict[str, Any] = {}
        """A free dict for the app's own data, as Express ``app.locals``."""
        self._settings: dict[str, Any] = {}
        self._dialogs: dict[str, Dialog] = {}
        self._dialogs_lock = threading.Lock()
        self._stack: list[tuple[str | None, Callable[..., Any]]] = []
        self._loop_runner = LoopRunner()
        self.loop = loop
        self._replay: dict[str, tuple[Any, ...]] = {}     # event -> args, while still true
        self._replay_lock = threading.Lock()
        self._agent = Agent(self, on_request=self._handle_request, find_dialog=self.find_dialog_by_id)
        self._agent.dispatcher.max_workers = max_workers
        bind_runner(self._agent.dispatcher, self._loop_runner)
        self._agent.on_authenticated = self._on_authenticated
        self._agent.on_conn_closed = self._on_conn_closed
        self._reconnector: Any = None
        self._reconnect = True
        self._connect_thread: threading.Thread | None = None
        self._connect_out: Any = None
        self._auth_failed = False
        self._listener: Any = None
        self._mode: str | None = None

    # -- events ---------------------------------------------------------------------------------
    def _add_event_handler(self, event: str, k: Callable[..., Any], v: Callable[..., Any] | None,
                           **kw: Any) -> None:
        """Every way of adding a listener ends here: a ``cdr:*`` listener asks the server for
        those records (``route|cdr:<kind>``, before or after connect; a second listener for the
        same event just adds to it, where drachtio-srf threw: defect 12)."""
        super()._add_event_handler(event, k, v, **kw)
        if event in CDR_EVENTS:
            agent = getattr(self, "_agent", None)
            if agent is not None:
                agent.add_route(event)

    def _store(self, event: str, entry: Any, first: bool) -> None:
        """A 'connect'/'listening' listener added after that event gets it now (see
        :meth:`_emit_replayable`): one lock with the emit, so exactly once."""
        if event not in _REPLAYED:
            super()._store(event, entry, first)
            return
        with self._replay_lock:
            super()._store(event, entry, first)
            replay = self._replay.get(event)
        if replay is not None:
            self._agent.submit(_SRF_KEY, self._replay_to, event, entry[0], entry[2], replay)

    def _emit(self, event: str, *args: Any) -> None:
        """Emit an Srf event on the dispatcher; an 'error' nobody listens to is logged."""
        if event == "error" and not self.listeners("error"):
            logger.error("drachtio error: %s", args[0] if args else "")
            return
        replayable = event == "listening" or (
            event == "connect" and self._mode == "client" and (not args or args[0] is None))
        if replayable:
            self._agent.submit(_SRF_KEY, self._emit_replayable, event, args)
            return
        self._agent.emit_on(_SRF_KEY, self, event, *args)

    def _emit_replayable(self, event: str, args: tuple[Any, ...]) -> None:
        """Emit ``event`` and keep its arguments for listeners added later (one lock with
        :meth:`_add_event_handler`, so each listener gets the event exactly once)."""
        with self._replay_lock:
            self._replay[event] = args
            entries = self._events.get(event)
        if entries:
            self._call_entries(event, entries, args, {})

    def _replay_to(self, event: str, f: Callable[..., Any], once: bool, args: tuple[Any, ...]) -> None:
        """A listener added after ``event`` was emitted (and while it still holds) gets it now."""
        if once and not self._remove(event, f):
            return
        call(f, *args, owner=self)

    def _forget(self, event: str) -> None:
        with self._replay_lock:
            self._replay.pop(event, None)

    @property
    def loop(self) -> asyncio.AbstractEventLoop | None:
        """The asyncio loop ``async def`` handlers, listeners and callbacks run on.

        None (the default) means a loop the library owns, on a thread named
        ``drachtio-asyncio`` started on first use and stopped by :meth:`disconnect`.  Set it
        (or pass ``Srf(loop=...)``) to run them on the application's own loop.
        """
        return self._loop_runner.app_loop

    @loop.setter
    def loop(self, loop: asyncio.AbstractEventLoop | None) -> None:
        self._loop_runner.app_loop = loop

    def set_event_loop(self, loop: asyncio.AbstractEventLoop | None) -> Srf:
        """Same as setting :attr:`loop`; returns the Srf."""
        self.loop = loop
        return self

    @property
    def socket(self) -> ServerConn | None:
        """The default server connection (or None)."""
        try:
            return self._agent.default_conn()
        except NotConnectedError:
            return None

    @property
    def connected(self) -> bool:
        """True while connected to a drachtio server."""
        return self._agent.connected

    # -- connect (inbound mode) ------------------------------------------------------------------
    @overload
    def connect(self, opts: Opts | None = None, callback: None = None, *, host: str | None = None,
                port: int | None = None, secret: str | None = None, tags: list[str] | None = None,
                tls: Any = None, reconnect: Any = None, enable_ping: bool | None = None,
                ping_interval: float | None = None, timeout: float | None = None) -> DrachtioFuture[str]: ...
    @overload
    def connect(self, opts: Opts | None, callback: Callable[..., object], *, host: str | None = None,
                port: int | None = None, secret: str | None = None, tags: list[str] | None = None,
                tls: Any = None, reconnect: Any = None, enable_ping: bool | None = None,
                ping_interval: float | None = None, timeout: float | None = None) -> Srf: ...
    @overload
    def connect(self, opts: Callable[..., object], *, host: str | None = None,
                port: int | None = None, secret: str | None = None, tags: list[str] | None = None,
                tls: Any = None, reconnect: Any = None, enable_ping: bool | None = None,
                ping_interval: float | None = None, timeout: float | None = None) -> Srf: ...
    @overload
    def connect(self, *, callback: Callable[..., object], host: str | None = None,
                port: int | None = None, secret: str | None = None, tags: list[str] | None = None,
                tls: Any = None, reconnect: Any = None, enable_ping: bool | None = None,
                ping_interval: float | None = None, timeout: float | None = None) -> Srf: ...

    def connect(self, opts: Mapping[str, Any] | Callable[..., Any] | None = None,
                callback: Callable[..., Any] | None = None, *, host: str | None = None,
                port: int | None = None, secret: str | None = None, tags: list[str] | None = None,
                tls: Any = None, reconnect: Any = None, enable_ping: bool | None = None,
                ping_interval: float | None = None, timeout: float | None = None) -> Any:
        """Connect to drachtio-server and authenticate.

        With ``callback`` it becomes a persistent ``connect`` listener (called on every
        (re)connection) and ``self`` is returned; otherwise a Future of the hostport string of
        the first connection.  ``ping_interval`` is in seconds (``pingInterval`` in a JS dict:
        milliseconds); ``reconnect`` False disables reconnecting, or a dict of
        ``retry_max_delay``/``max_attempts``/``connect_timeout`` (seconds; JS keys in ms).
        """
        if callable(opts):
            callback, opts = opts, None
        if opts is not None and not isinstance(opts, Mapping):
            raise TypeError(f"connect(opts, callback): opts must be a dict such as {{'host': ..., "
                            f"'port': 9022, 'secret': ...}}, got {type(opts).__name__} {opts!r:.60}")
        raw = dict(opts or {})
        js_ping = raw.pop("pingInterval", None)
        o = normalize_opts(raw, host=host, port=port, secret=secret, tags=tags, tls=tls,
                           reconnect=reconnect, enable_ping=enable_ping, ping_interval=ping_interval,
                           timeout=timeout)
        if js_ping is not None and ping_interval is None:
            o["ping_interval"] = float(js_ping) / 1000.0
        interval = float(o.get("ping_interval", 15.0))
        if not 5.0 <= interval <= 300.0:
            raise ValueError("ping interval must be between 5 and 300 seconds")
        agent = self._agent
        if self._mode is not None and agent.conns:
            raise DrachtioError("already connected; call disconnect() first")
        agent.ensure_runtime()
        agent.dispatcher.max_workers = self.max_workers
        bind_runner(agent.dispatcher, self._loop_runner)
        agent.closing = False
        self._mode = "client"
        self._auth_failed = False
        agent.secret = o.get("secret") or ""
        agent.tags = list(o.get("tags") or self.tags)
        agent.enable_ping = bool(o.get("enable_ping"))
        agent.ping_interval = interval
        host_ = o.get("host") or "127.0.0.1"
        if not isinstance(host_, str):
            raise TypeError(f"connect: host must be a string, got {type(host_).__name__} {host_!r:.60}")
        try:
            port_ = int(o.get("port") or 9022)
        except (TypeError, ValueError):
            raise TypeError(f"connect: port must be a number, got {o.get('port')!r:.60}") from None
        ctx = _tls_context(o.get("tls"))
        recon = o.get("reconnect", True)
        self._reconnect = recon is not False
        if callback is not None:
            self.on("connect", callback)
        out = agent.outcome(None)
        self._connect_out = out
        from .transport import Reconnector
        rc = recon if isinstance(recon, Mapping) else {}
        raw_rc = (opts or {}).get("reconnect") if isinstance(opts, Mapping) else None
        scale = 1000.0 if isinstance(raw_rc, Mapping) and any(k in raw_rc for k in
                                                             ("retryMaxDelay", "connectTimeout")) else 1.0
        self._reconnector = Reconnector(
            host_, port_, on_connect=self._on_reconnected, on_give_up=self._on_give_up, tls=ctx,
            timeout=float(o.get("timeout") or 10.0),
            retry_max_delay=float(rc.get("retry_max_delay", 10.0 * scale)) / scale,
            max_attempts=rc.get("max_attempts"),
            connect_timeout=(float(rc["connect_timeout"]) / scale) if rc.get("connect_timeout") else None)
        t = threading.Thread(target=self._first_connect, args=(host_, port_, ctx, float(o.get("timeout") or 10.0)),
                             name="drachtio-connect", daemon=True)
        self._connect_thread = t
        t.start()
        return self if callback is not None else out.returned()

    def _first_connect(self, host: str, port: int, ctx: ssl.SSLContext | None, timeout: float) -> None:
        from .transport import open_connection
        try:
            sock = open_connection(host, port, tls=ctx, timeout=timeout)
        except (OSError, ValueError) as err:
            logger.info("connect to %s:%s failed: %s", host, port, err)
            if self._agent.closing:
                return
            self._emit("error", err)
            if self._reconnect:
                self._start_reconnect()
            else:
                self._fail_connect(NotConnectedError(f"cannot connect to drachtio server {host}:{port}: {err}"))
            return
        if self._agent.closing:
            sock.close()
            return
        self._agent.attach(sock, outbound=False, name=f"drachtio-{host}:{port}")

    def _on_reconnected(self, sock: Any) -> None:
        if self._agent.closing:
            sock.close()
            return
        self._agent.attach(sock, outbound=False, name="drachtio-reconnected")

    def _on_give_up(self, err: BaseException | None) -> None:
        failure = NotConnectedError(f"gave up reconnecting to drachtio server: {err}")
        self._emit("error", failure)
        self._fail_connect(failure)

    def _fail_connect(self, err: BaseException) -> None:
        out = self._connect_out
        if out is not None:
            out.fail(err)

    def _start_reconnect(self) -> None:
        rc = self._reconnector
        if rc is None or self._agent.closing or rc.active:
            return
        delay = rc.next_delay()
        if delay is not None:
            self._emit("reconnecting", AttrDict(delay=int(delay * 1000), attempt=rc.attempts + 1))
        rc.start()

    def _on_authenticated(self, sc: ServerConn, err: BaseException | None) -> None:
        if err is not None:
            self._auth_failed = not sc.outbound
            self._emit("connect", err)
            if sc.outbound:
                sc.conn.close()
            else:
                self._fail_connect(err)
            return
        if self._reconnector is not None and not sc.outbound:
            self._reconnector.reset()
        self._emit("connect", None, sc.hostport, sc.server_version, sc.local_hostports)
        if not sc.outbound and self._connect_out is not None:
            self._connect_out.succeed(sc.hostport)

    def _on_conn_closed(self, sc: ServerConn, err: BaseException | None) -> None:
        if not sc.outbound:
            self._agent.submit(_SRF_KEY, self._forget, "connect")   # (in order with its emit)
        self._emit("close", sc)
        self._emit("disconnect", sc)
        if not self._agent.closing:
            # the server routes a dialog's requests only to the connection that set it up
            with self._dialogs_lock:
                lost = [d for d in self._dialogs.values() if d.req is not None and d.req._conn is sc]
            for dialog in lost:
                dialog._connection_lost()
        if sc.outbound or self._agent.closing:
            return
        if err is not None:
            self._emit("error", err)
        if self._reconnect and not self._auth_failed:
            self._start_reconnect()
        elif self._connect_out is not None and not self._connect_out.done:
            self._fail_connect(err or NotConnectedError("connection closed"))

    # -- listen (outbound mode) ------------------------------------------------------------------
    def listen(self, opts: Mapping[str, Any] | Callable[..., Any] | None = None,
               callback: Callable[..., Any] | None = None, *, port: int | None = None,
               host: str | None = None, secret: str | None = None, tls: Any = None,
               tags: list[str] | None = None, enable_ping: bool | None = None,
               ping_interval: float | None = None) -> Listener:
        """Accept connections from drachtio-server (outbound-connection mode); returns the
        Listener (its ``port`` is the one bound).  ``callback`` is a ``listening`` listener."""
        from .transport import Listener
        if callable(opts):
            callback, opts = opts, None
        o = normalize_opts(opts, port=port, host=host, secret=secret, tls=tls, tags=tags,
                           enable_ping=enable_ping, ping_interval=ping_interval)
        agent = self._agent
        agent.ensure_runtime()
        agent.dispatcher.max_workers = self.max_workers
        bind_runner(agent.dispatcher, self._loop_runner)
        agent.closing = False
        self._mode = "listen"
        agent.secret = o.get("secret") or ""
        agent.tags = list(o.get("tags") or self.tags)
        agent.enable_ping = bool(o.get("enable_ping"))
        if o.get("ping_interval"):
            agent.ping_interval = float(o["ping_interval"])
        if callback is not None:
            self.on("listening", callback)

        def on_accept(sock: Any, address: tuple[str, int]) -> None:
            if agent.closing:
                sock.close()
                return
            agent.attach(sock, outbound=True, name=f"drachtio-in-{address[0]}:{address[1]}")

        self._listener = Listener(o.get("host") or "127.0.0.1", int(o.get("port") or 0),
                                  on_accept=on_accept, tls=_tls_context(o.get("tls")))
        self._emit("listening")
        return self._listener

    # -- teardown -------------------------------------------------------------------------------
    def disconnect(self, socket: ServerConn | None = None, *, timeout: float = 5.0) -> bool:
        """Close the connection(s) and stop the threads the library started.

        The connections, the reader threads and the timer thread stop at once; pending
        futures fail.  User code already queued still runs; disconnect then waits up to
        ``timeout`` seconds for the workers running it and returns True when every worker has
        exited.  False means a handler was still running (blocked in code of its own): its
        worker runs what is queued behind it and exits when the handler returns (it is a
        daemon thread, so it never keeps the process alive).  Called from a handler, it
        returns at once (False) and the pool winds down when that handler returns.

        With ``socket`` (listen mode), only that server connection is closed; the app keeps
        listening (returns True).  The connection of client mode is the only one: closing it
        is a full disconnect, with no reconnect (as drachtio-srf).
        """
        agent = self._agent
        if socket is not None and socket.outbound:
            socket.conn.close()
            return True
        agent.closing = True
        if self._reconnector is not None:
            self._reconnector.cancel()
        if self._listener is not None:
            self._listener.close()
            self._listener = None
        with agent.lock:
            conns = list(agent.conns)
        for sc in conns:
            sc.conn.close()
        t = self._connect_thread
        if t is not None and t is not threading.current_thread():
            t.join(15.0)
        self._fail_connect(NotConnectedError("disconnected"))
        self._mode = None
        with self._replay_lock:
            self._replay.clear()
        agent.timers.shutdown()
        stopped = agent.dispatcher.shutdown(wait=True, timeout=timeout)
        self._loop_runner.close()
        return stopped

    close = disconnect
    """Same method as :meth:`disconnect`."""

    def end_session(self, msg: Request | Response) -> None:
        """Outbound mode: close the server connection ``msg`` came on."""
        sc = getattr(msg, "_conn", None)
        if sc is not None and sc.outbound:
            sc.conn.close()

    # -- settings, registry -------------------------------------------------------------------------
    def set(self, key: str, value: Any) -> Srf:
        """Store an app setting ``key`` (read back with :meth:`get`); returns self."""
        self._settings[key] = value
        return self

    def get(self, key: str) -> Any:
        """The app setting ``key``, or None if it was never set."""
        return self._settings.get(key)

    def find_dialog_by_id(self, stack_dialog_id: str) -> _Dialog | None:
        """The open dialog with this server dialog id, or None."""
        with self._dialogs_lock:
            return self._dialogs.get(stack_dialog_id)

    def find_dialog_by_call_id_and_from_tag(self, call_id: str, tag: str) -> _Dialog | None:
        """The open dialog with this Call-ID and From tag, or None."""
        return self.find_dialog_by_id(f"{call_id};from-tag={tag}")

    def add_dialog(self, dialog: _Dialog) -> None:
        """Register ``dialog`` under its id so in-dialog requests find it."""
        with self._dialogs_lock:
            self._dialogs[dialog.id] = dialog

    def remove_dialog(self, dialog: _Dialog) -> None:
        """Forget ``dialog`` (only if it is the one registered under its id)."""
        with self._dialogs_lock:
            if self._dialogs.get(dialog.id) is dialog:
                del self._dialogs[dialog.id]

    def unregister_for_messages(self, verb: str) -> None:
        """Ask the server to stop sending new ``verb`` requests to this app."""
        self._agent.remove_route(verb.lower())

    def reregister_for_messages(self, verb: str) -> None:
        """Ask the server to send new ``verb`` requests to this app again."""
        self._agent.add_route(verb.lower())

    # -- middleware ---------------------------------------------------------------------------------
    def use(self, *args: Any) -> Any:
        """``use(fn)``, ``use(method, fn, ...)``; ``fn(req, res, next)`` or error handler
        ``fn(err, req, res, next)``.  Registering a method asks the server to route it to us.
        Returns the (single) function, so it works as a decorator."""
        method: str | None = None
        fns: list[Any] = []
        for a in args:
            if isinstance(a, str) and method is None and not fns:
                method = a.lower()
            elif isinstance(a, (list, tuple)):
                fns.extend(a)
            else:
                fns.append(a)
        if method == "*":
            method = None
        if not fns and method is not None:
            return lambda fn: self.use(method, fn)
        for fn in fns:
            if not callable(fn):
                raise TypeError(f"middleware must be callable, got {type(fn).__name__}")
            self._stack.append((method, fn))
        if method is not None:
            self._agent.add_route(method)
        return fns[0] if len(fns) == 1 else self

    def _handle_request(self, req: Request, res: Response) -> None:
        """A request from the server (on its dispatch key): its dialog, else the middleware."""
        if req.stack_dialog_id:
            dialog = self.find_dialog_by_id(req.stack_dialog_id)
            if dialog is not None:
                dialog.handle(req, res)
                return
        req.srf = res.srf = self
        self._run_chain(req, res)

    def _run_chain(self, req: Request, res: Response) -> None:
        layers = list(self._stack)
        method = (req.method or "").lower()
        state = {"i": 0}

        def next_(err: BaseException | None = None) -> None:
            while True:
                if res.finished:
                    return
                i = state["i"]
                if i >= len(layers):
                    self._final_handler(req, res, err)
                    return
                state["i"] = i + 1
                m, fn = layers[i]
                if m is not None and m != method:
                    continue
                is_error_handler = arity(fn) == 4
                try:
                    if err is not None:
                        if is_error_handler:
                            call(fn, err, req, res, next_, owner=self)
                            return
                        continue
                    if is_error_handler:
                        continue
                    call(fn, req, res, next_, owner=self)
                    return
                except Exception as exc:  # a failing layer passes its error on
                    logger.exception("%s handler %s raised", req.method, describe(fn))
                    try:
                        exc._drachtio_logged = True  # type: ignore[attr-defined]
                    except AttributeError:
                        pass
                    err = exc

        next_()

    def _final_handler(self, req: Request, res: Response, err: BaseException | None) -> None:
        if err is not None:
            if not getattr(err, "_drachtio_logged", False):
                logger.error("unhandled error for %s: %r", req.method, err)
            if not res.finished:
                status = getattr(err, "status", None)
                res.send(status if isinstance(status, int) and status >= 300 else 500)
            return
        if req.method == "PRACK":
            res.send(200)
        elif req.method in ("ACK", "UPDATE"):
            return
        else:
            res.send(404)
            self.end_session(res)

    # -- outgoing requests ------------------------------------------------------------------------
    @overload
    def request(self, uri: str | Opts | None = None, opts: Opts | None = None, callback: None = None,
                **kwargs: Any) -> DrachtioFuture[Request]: ...
    @overload
    def request(self, uri: str | Opts | None, opts: Opts | None, callback: Callback[Request],
                **kwargs: Any) -> Srf: ...
    @overload
    def request(self, uri: str | Opts | None, opts: Callback[Request], **kwargs: Any) -> Srf: ...
    @overload
    def request(self, uri: str | Opts | None = None, *, callback: Callback[Request], **kwargs: Any) -> Srf: ...

    def request(self, uri: Any = None, opts: Any = None, callback: Callable[..., Any] | None = None,
                **kwargs: Any) -> Any:
        """Send a request: ``request(uri, {method, headers, body, auth, proxy}, cb)`` or
        ``request({uri, method, ...}, cb)``.  cb(err, req)|Future of the sent Request, which
        emits ``response(res, ack)``."""
        if isinstance(uri, Mapping):
            uri, opts, callback = None, uri, opts if callback is None else callback
        if callable(opts) and callback is None:
            callback, opts = opts, None
        o = normalize_opts(opts, **kwargs)
        uri = uri or o.get("uri")
        if not isinstance(uri, str) or not uri:
            raise TypeError(f"request: the uri must be a string such as 'sip:user@host', got "
                            f"{type(uri).__name__} {uri!r:.60}")
        method = o.get("method")
        if not isinstance(method, str):
            raise TypeError("request: opts.method must be a string")
        agent = self._agent
        out = agent.outcome(callback)

        def on_sent(err: BaseException | None, req: Request | None) -> None:
            if err is not None or req is None:
                out.fail(err or DrachtioError("request failed"))
                return
            out.succeed(req, key=req._key, gate=True)

        try:
            agent.send_request(method=method, uri=uri, headers=o.get("headers"), body=o.get("body"),
                               dialog_id=o.get("stack_dialog_id"), proxy=o.get("proxy"), auth=o.get("auth"),
                               on_sent=on_sent)
        except (DrachtioError, ValueError) as err:
            out.fail(err)
        return out.returned(self)

    # -- UAS ------------------------------------------------------------------------------------------
    @overload
    def create_uas(self, req: Request, res: Response, opts: Opts | None = None, callback: None = None, *,
                   local_sdp: str | Callable[[], Any] | None = None, body: str | None = None,
                   headers: Mapping[str, Any] | None = None) -> DrachtioFuture[_Dialog]: ...
    @overload
    def create_uas(self, req: Request, res: Response, opts: Opts | None, callback: Callback[_Dialog], *,
                   local_sdp: str | Callable[[], Any] | None = None, body: str | None = None,
                   headers: Mapping[str, Any] | None = None) -> Srf: ...
    @overload
    def create_uas(self, req: Request, res: Response, opts: Callback[_Dialog], *,
                   local_sdp: str | Callable[[], Any] | None = None, body: str | None = None,
                   headers: Mapping[str, Any] | None = None) -> Srf: ...
    @overload
    def create_uas(self, req: Request, res: Response, *, callback: Callback[_Dialog],
                   local_sdp: str | Callable[[], Any] | None = None, body: str | None = None,
                   headers: Mapping[str, Any] | None = None) -> Srf: ...

    def create_uas(self, req: Request, res: Response, opts: Any = None, callback: Any = None, *,
                   local_sdp: Any = None, body: Any = None, headers: Mapping[str, Any] | None = None) -> Any:
        """Answer ``req`` (200 to INVITE, 202 otherwise) and make a Dialog.

        ``local_sdp`` (or ``body``) is a string or a function returning one (or a Future of one).
        cb(err, dialog)|Future of the Dialog, delivered when the server confirms the answer was
        sent (before the ACK).  A CANCEL from the far end fails it with SipError(487).
        """
        check_legs("create_uas(req, res, opts, callback)", req, res)
        if callable(opts) and callback is None:
            callback, opts = opts, None
        o = normalize_opts(opts, local_sdp=local_sdp, body=body, headers=headers)
        content = o.get("local_sdp") if o.get("local_sdp") is not None else o.get("body")
        hdrs = dict(o.get("headers") or {})
        out = self._agent.outcome(callback)
        if not req.has("Contact"):
            out.fail(DrachtioError("createUAS: Request is missing Contact header"))
            return out.returned(self)

        def send(sdp: str | None) -> None:
            if req.canceled:
                out.fail(SipError(487, "Request Terminated"))
                return
            def on_cancel(_msg: Any) -> None:
                out.fail(SipError(487, "Request Terminated"))
            req._cancel_hooks.append(on_cancel)

            def on_echo(err: BaseException | None, sent: SipMessage | None) -> None:
                try:    # answered: a CANCEL can no longer fail it (and the dialog keeps req)
                    req._cancel_hooks.remove(on_cancel)
                except ValueError:
                    pass
                if err is not None or sent is None:
                    out.fail(err or DrachtioError("createUAS: response not sent"))
                    return
                if not res.stack_dialog_id:
                    res.stack_dialog_id = f"{req.call_id};from-tag={req.msg.from_tag}"
                try:
                    dialog = Dialog(self, "uas", {"req": req, "res": res, "sent": sent,
                                                  "local_sdp": sdp})
                except Exception as exc:  # noqa: BLE001 - unparseable headers fail the call
                    out.fail(exc)
                    return
                self.add_dialog(dialog)
                out.succeed(dialog, key=dialog_key(dialog.id), gate=True)

            try:
                res.send(200 if req.method == "INVITE" else 202, headers=hdrs, body=sdp,
                         _on_echo=on_echo)
            except Exception as exc:  # noqa: BLE001
                out.fail(exc)

        def produced(value: Any) -> None:
            if isinstance(value, concurrent.futures.Future):
                def done(f: concurrent.futures.Future) -> None:
                    try:
                        send(f.result())
                    except Exception as exc:  # noqa: BLE001
                        out.fail(exc)
                value.add_done_callback(done)
            else:
                send(value)

        try:
            produced(call(content, owner=self) if callable(content) else content)
        except Exception as exc:  # noqa: BLE001 - the SDP function failed
            out.fail(exc)
        return out.returned(self)

    # -- UAC ------------------------------------------------------------------------------------------
    @overload
    def create_uac(self, uri: str | Opts | None = None, opts: Opts | None = None, progress: Opts | None = None,
                   callback: None = None, **kwargs: Any) -> DrachtioFuture[_Dialog]: ...
    @overload
    def create_uac(self, uri: str | Opts | None, opts: Opts | None, progress: Opts | None,
                   callback: Callback[_Dialog], **kwargs: Any) -> Srf: ...
    @overload
    def create_uac(self, uri: str | Opts | None, opts: Opts | None, progress: Callback[_Dialog],
                   **kwargs: Any) -> Srf: ...
    @overload
    def create_uac(self, uri: str | Opts | None, opts: Callback[_Dialog], **kwargs: Any) -> Srf: ...
    @overload
    def create_uac(self, uri: str | Opts | None = None, *, callback: Callback[_Dialog],
                   **kwargs: Any) -> Srf: ...

    def create_uac(self, uri: Any = None, opts: Any = None, progress: Any = None, callback: Any = None,
                   **kwargs: Any) -> Any:
        """Send an INVITE (or SUBSCRIBE) and make a Dialog when it is answered.

        ``create_uac(uri, opts, {cb_request, cb_provisional}, cb)`` or
        ``create_uac({uri, ...}, progress, cb)``.  Options: headers, local_sdp, proxy, auth,
        no_ack, calling_number, calling_name, called_number, follow_redirects,
        keep_uri_on_redirect, method.  cb(err, dialog)|Future of the Dialog; a non-2xx final
        fails it with SipError carrying the response.  Cancel through the request given to
        ``cb_request(err, req)``.  Without local_sdp (3pcc) the 200's offer is answered in the
        ACK; with ``no_ack`` the result is ``{sdp, res, ack(local_sdp) -> Future[Dialog]}``
        (typed as a Dialog: ``typing.cast`` it).
        """
        uri, o, p, callback = uac_args(uri, opts, progress, callback, **kwargs)
        cb_request = adapt(p.get("cb_request"), self)
        cb_provisional = adapt(p.get("cb_provisional"), self)
        uri = uri or o.get("uri")
        method = (o.get("method") or "INVITE").upper()
        if method not in ("INVITE", "SUBSCRIBE"):
            raise ValueError("create_uac: method must be INVITE or SUBSCRIBE")
        if uri is not None and not isinstance(uri, str):
            raise TypeError(f"create_uac: uri must be a string such as 'sip:user@host', got "
                            f"{type(uri).__name__} {uri!r:.60}")
        if not uri:
            raise ValueError("create_uac: uri must be specified")
        if parse_uri(uri) is None:
            if "@" not in uri and not uri.startswith("sip:"):
                called = o.get("called_number")
                uri = "sip:" + (f"{called}@" if called else "") + uri
            elif not uri.startswith("sip:"):
                uri = "sip:" + uri
        headers = dict(o.get("headers") or {})
        if o.get("calling_number"):
            scheme = "sips" if uri.startswith("sips") else "sip"
            frm = f"{scheme}:{o['calling_number']}@localhost"
            if o.get("calling_name"):
                frm = f'"{o["calling_name"]}" <{frm}>'
            lower = {k.lower() for k in headers}
            if "from" not in lower:
                headers["From"] = frm
            if "contact" not in lower:
                headers["Contact"] = frm
        local_sdp = o.get("local_sdp")
        is_3pcc = not local_sdp and method == "INVITE"
        agent = self._agent
        out = agent.outcome(callback)
        redirects = {"n": 0}

        def launch(target: str, proxy: str | None) -> None:
            def on_sent(err: BaseException | None, req: Request | None) -> None:
                if err is not None or req is None:
                    if cb_request is not None:
                        agent.submit(None, cb_request, err, None)
                    out.fail(err or DrachtioError("createUAC: request failed"))
                    return
                if cb_request is not None:
                    agent.submit(req._key, cb_request, None, req)
                req.on("update", lambda _ureq, ures: ures.send(200, {"body": local_sdp} if local_sdp else None))

                def on_response(res: Response, ack: Callable[..., Any], lost: BaseException | None) -> None:
                    if lost is not None:
                        out.fail(lost)
                        return
                    status = res.status or 0
                    if status < 200:
                        if cb_provisional is not None:
                            agent.submit(req._key, cb_provisional, res)
                        if res.has("RSeq"):
                            ack()
                        return
                    if (o.get("follow_redirects") and 300 <= status < 400 and res.has("Contact")
                            and redirects["n"] < 4):
                        contact = res.get_parsed_header("Contact")
                        if isinstance(contact, list) and contact:
                            redirects["n"] += 1
                            if o.get("keep_uri_on_redirect"):
                                launch(req.uri or target, contact[0]["uri"])
                            else:
                                launch(contact[0]["uri"], proxy)
                            return
                    success = 200 <= status < 300
                    if success and is_3pcc and res.body:
                        if o.get("no_ack"):
                            out.succeed(self._third_party_answer(req, res, ack, o), key=req._key)
                            return
                        ack({"body": sdp_edit.black_hole(res.body)})
                    elif success and method == "INVITE":
                        ack()
                    if not success:
                        out.fail(SipError(status, res.reason, res), key=req._key)
                        return
                    if not res.has("Contact"):
                        out.fail(SipError(500, "No Contact header in response", res), key=req._key)
                        return
                    try:
                        dialog = Dialog(self, "uac", {"req": req, "res": res, "auth": o.get("auth")})
                    except Exception as exc:  # noqa: BLE001
                        out.fail(exc)
                        return
                    self.add_dialog(dialog)
                    out.succeed(dialog, key=dialog_key(dialog.id), gate=True)

                req._hooks.append(on_response)

            try:
                agent.send_request(method=method, uri=target, headers=headers, body=local_sdp,
                                   proxy=proxy, auth=o.get("auth"), conn=o.get("_conn"), on_sent=on_sent)
            except (DrachtioError, ValueError) as err:
                if cb_request is not None:
                    agent.submit(None, cb_request, err, None)
                out.fail(err)

        launch(uri, o.get("proxy"))
        return out.returned(self)

    def _third_party_answer(self, req: Request, res: Response, ack: Callable[..., Any],
                            o: Mapping[str, Any]) -> AttrDict:
        """The 3pcc/no_ack result: the offer, the response, and ``ack(local_sdp)``."""
        def ack_with(local_sdp: str, callback: Any = None) -> Any:
            done = self._agent.outcome(callback)
            ack({"body": local_sdp})
            if not res.has("Contact"):
                done.fail(SipError(500, "No Contact header in response", res))
                return done.returned(self)
            try:
                dialog = Dialog(self, "uac", {"req": req, "res": res, "auth": o.get("auth")})
            except Exception as exc:  # noqa: BLE001
                done.fail(exc)
                return done.returned(self)
            dialog.local.sdp = local_sdp
            self.add_dialog(dialog)
            done.succeed(dialog, key=dialog_key(dialog.id), gate=True)
            return done.returned(self)
        return AttrDict(sdp=res.body, res=res, ack=ack_with)

    # -- B2BUA ----------------------------------------------------------------------------------------
    @overload
    def create_b2bua(self, req: Request, res: Response, uri: str | Sequence[str] | Opts | None = None,
                     opts: Opts | None = None, progress: Opts | None = None, callback: None = None,
                     **kwargs: Any) -> DrachtioFuture[B2BUAResult]: ...
    @overload
    def create_b2bua(self, req: Request, res: Response, uri: str | Sequence[str] | Opts | None,
                     opts: Opts | None, progress: Opts | None, callback: Callback[B2BUAResult],
                     **kwargs: Any) -> Srf: ...
    @overload
    def create_b2bua(self, req: Request, res: Response, uri: str | Sequence[str] | Opts | None,
                     opts: Opts | None, progress: Callback[B2BUAResult], **kwargs: Any) -> Srf: ...
    @overload
    def create_b2bua(self, req: Request, res: Response, uri: str | Sequence[str] | Opts | None,
                     opts: Callback[B2BUAResult], **kwargs: Any) -> Srf: ...
    @overload
    def create_b2bua(self, req: Request, res: Response, uri: str | Sequence[str] | Opts | None = None, *,
                     callback: Callback[B2BUAResult], **kwargs: Any) -> Srf: ...

    def create_b2bua(self, req: Request, res: Response, uri: Any = None, opts: Any = None,
                     progress: Any = None, callback: Any = None, **kwargs: Any) -> Any:
        """Bridge the incoming ``req`` (A leg) to a new INVITE (or SUBSCRIBE) to ``uri`` (B leg).

        ``create_b2bua(req, res, uri, opts, {cb_request, cb_provisional, cb_finalized_uac}, cb)``
        or ``create_b2bua(req, res, {uri, ...}, progress, cb)``; ``uri`` may be a list, tried in
        order while B fails.  Options: headers, response_headers (dict or fn(b_res, headers)),
        local_sdp_a (str or fn(sdp_b, b_res) -> str|Future), local_sdp_b (str, or fn(sdp) used on
        A's ACK in late offer), proxy_request_headers, proxy_response_headers (names, or
        ``['all', '-Name', ...]``), pass_failure=True, pass_provisional_responses=True, proxy, auth,
        follow_redirects, keep_uri_on_redirect, calling_number/calling_name/called_number.
        cb(err, result)|Future of the :class:`~drachtio_srf.models.B2BUAResult` ``{uas, uac}``
        (``result.uas``, ``result["uas"]``, or ``uas, uac = result``; ``uas.other is uac``); a B
        failure fails it with the SipError (and is passed to A unless pass_failure is False).
        """
        return create_b2bua(self, req, res, uri, opts, progress, callback, **kwargs)

    # -- proxy --------------------------------------------------------------------------------------
    @overload
    def proxy_request(self, req: Request, destination: str | Sequence[str] | Opts | None = None,
                      opts: Opts | None = None, callback: None = None,
                      **kwargs: Any) -> DrachtioFuture[ProxyResult]: ...
    @overload
    def proxy_request(self, req: Request, destination: str | Sequence[str] | Opts | None,
                      opts: Opts | None, callback: Callback[ProxyResult], **kwargs: Any) -> Request: ...
    @overload
    def proxy_request(self, req: Request, destination: str | Sequence[str] | Opts | None,
                      opts: Callback[ProxyResult], **kwargs: Any) -> Request: ...
    @overload
    def proxy_request(self, req: Request, destination: Callback[ProxyResult], **kwargs: Any) -> Request: ...
    @overload
    def proxy_request(self, req: Request, destination: str | Sequence[str] | Opts | None = None, *,
                      callback: Callback[ProxyResult], **kwargs: Any) -> Request: ...

    def proxy_request(self, req: Request, destination: Any = None, opts: Any = None, callback: Any = None,
                      **kwargs: Any) -> Any:
        """Proxy ``req`` to ``destination`` (str or list; default its request-URI).

        cb(err, results)|Future of the results (:class:`~drachtio_srf.models.ProxyResult`);
        with a callback the request is returned."""
        if not isinstance(req, Request):
            raise TypeError(f"proxy_request(req, destination, opts, callback): req must be the incoming "
                            f"Request, got {type(req).__name__} {req!r:.60}")
        if callable(destination) and opts is None:
            destination, callback = None, destination
        elif isinstance(destination, Mapping):
            destination, opts, callback = None, destination, opts if callback is None else callback
        if callable(opts) and callback is None:
            callback, opts = opts, None
        o = normalize_opts(opts, **kwargs)
        if destination is not None:
            o["destination"] = destination
        return req.proxy(o, callback)

    # -- a handler per SIP method: srf.invite(fn) is srf.use("invite", fn) -------------------------
    invite = _verb("invite")
    """Handle new INVITE requests: ``srf.invite(fn)`` is ``srf.use("invite", fn)``."""
    register = _verb("register")
    """Handle new REGISTER requests (as ``srf.use("register", fn)``)."""
    options = _verb("options")
    """Handle new OPTIONS requests (as ``srf.use("options", fn)``)."""
    subscribe = _verb("subscribe")
    """Handle new SUBSCRIBE requests (as ``srf.use("subscribe", fn)``)."""
    notify = _verb("notify")
    """Handle NOTIFY requests outside a dialog (as ``srf.use("notify", fn)``)."""
    message = _verb("message")
    """Handle MESSAGE requests outside a dialog (as ``srf.use("message", fn)``)."""
    info = _verb("info")
    """Handle INFO requests outside a dialog (as ``srf.use("info", fn)``)."""
    publish = _verb("publish")
    """Handle PUBLISH requests outside a dialog (as ``srf.use("publish", fn)``)."""
    refer = _verb("refer")
    """Handle REFER requests outside a dialog (as ``srf.use("refer", fn)``)."""
    update = _verb("update")
    """Handle UPDATE requests outside a dialog (as ``srf.use("update", fn)``)."""
    bye = _verb("bye")
    """Handle BYE requests outside a dialog (as ``srf.use("bye", fn)``)."""
    cancel = _verb("cancel")
    """Handle CANCEL requests outside a dialog (as ``srf.use("cancel", fn)``)."""
    prack = _verb("prack")
    """Handle PRACK requests outside a dialog (as ``srf.use("prack", fn)``)."""
    ack = _verb("ack")
    """Handle ACK requests outside a dialog (as ``srf.use("ack", fn)``)."""

    # -- JS names: the same objects (the table is names.ALIASES; a unit test checks they agree) ---
    createUAS = create_uas
    """JS name of :meth:`create_uas`: returns the UAS dialog."""
    createUAC = create_uac
    """JS name of :meth:`create_uac`: returns the UAC dialog."""
    createB2BUA = create_b2bua
    """JS name of :meth:`create_b2bua`: returns the two dialogs."""
    proxyRequest = proxy_request
    """JS name of :meth:`proxy_request`: returns the proxy result."""
    findDialogById = find_dialog_by_id
    """JS name of :meth:`find_dialog_by_id`: returns the dialog or None."""
    findDialogByCallIDAndFromTag = find_dialog_by_call_id_and_from_tag
    """JS name of :meth:`find_dialog_by_call_id_and_from_tag`: returns the dialog or None."""
    addDialog = add_dialog
    """JS name of :meth:`add_dialog`."""
    removeDialog = remove_dialog
    """JS name of :meth:`remove_dialog`."""
    endSession = end_session
    """JS name of :meth:`end_session`."""
    unregisterForMessages = unregister_for_messages
    """JS name of :meth:`unregister_for_messages`."""
    reregisterForMessages = reregister_for_messages
    """JS name of :meth:`reregister_for_messages`."""
    parseUri = parse_uri
    """JS name of :attr:`parse_uri`: returns the URI's parts."""
    stringifyUri = stringify_uri
    """JS name of :attr:`stringify_uri`: returns the URI string."""
