"""Threaded I/O for the drachtio control connection.

* :class:`Connection` - one socket, one reader thread that only reads, decodes
  (:class:`drachtio_srf.wire.FrameDecoder`) and hands payloads to ``on_frame``, and a write lock.
* :func:`open_connection` - a connected TCP (optionally TLS) socket with TCP_NODELAY and keepalive.
* :class:`Reconnector` - capped exponential backoff between connect attempts, TLS kept.
* :class:`Listener` - accepts connections from drachtio-server in outbound-connection mode.

No user code runs on any thread started here; callers hand user work to the Dispatcher.
"""
from __future__ import annotations

import logging
import selectors
import socket
import ssl
import threading
from collections.abc import Callable
from contextlib import AbstractContextManager, nullcontext
from typing import Any

from . import threadpolicy, trace, wire
from .errors import ConnectionLostError, NotConnectedError

logger = logging.getLogger(__name__)
_trace_control = logging.getLogger(trace.CONTROL)
_trace_sip = logging.getLogger(trace.SIP)
_DEBUG = logging.DEBUG

__all__ = ["Connection", "Listener", "Reconnector", "backoff_delay", "open_connection"]

_RECV_SIZE = 65536
_HANDSHAKE_TIMEOUT = 10.0

FrameHandler = Callable[["Connection", str], None]
CloseHandler = Callable[["Connection", "BaseException | None"], None]
BatchScope = Callable[[], AbstractContextManager[Any]]


def _tune(sock: socket.socket) -> None:
    """TCP_NODELAY (small frames, request/reply traffic) and TCP keepalive, as the server does."""
    try:
        sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_KEEPALIVE, 1)
    except OSError as err:  # e.g. a non-TCP socket handed in by a test
        logger.debug("could not set socket options: %s", err)


def _fmt_peer(peer: tuple[str, int]) -> str:
    host, port = peer
    return f"[{host}]:{port}" if ":" in host else f"{host}:{port}"


class Connection:
    """One control connection: a socket, its reader thread, a write lock.

    ``on_frame(conn, payload)`` runs on the reader thread for every payload, in order; it must
    only route (no user code). ``on_close(conn, err)`` runs exactly once: ``err`` is None when
    we closed the connection, :class:`~drachtio_srf.wire.WireProtocolError` for a malformed
    frame, :class:`~drachtio_srf.errors.ConnectionLostError` (with the socket error as
    ``__cause__``) when the peer closed it or the socket failed.  ``batch()``, when given, is
    entered around the payloads of each read (:meth:`drachtio_srf.dispatch.Dispatcher.batch`).
    """

    def __init__(self, sock: socket.socket, *, on_frame: FrameHandler, on_close: CloseHandler,
                 name: str = "drachtio", batch: BatchScope | None = None) -> None:
        self._sock = sock
        self._on_frame = on_frame
        self._batch: BatchScope = batch or nullcontext
        self._on_close = on_close
        self.name = name
        """Name used for the reader thread and in log messages."""
        try:
            peer = sock.getpeername()
            self.peer: tuple[str, int] = (str(peer[0]), int(peer[1]))
            """(host, port) of the remote end; ``("", 0)`` when the socket could not tell."""
        except (OSError, IndexError, TypeError):
            self.peer = ("", 0)
        self.closed = False
        """Set once the connection has closed."""
        self._write_lock = threading.Lock()
        self._state_lock = threading.Lock()
        # OpenSSL forbids concurrent SSL_read/SSL_write on one connection (writes get lost, the
        # process may crash), so a TLS socket is non-blocking and every SSL call takes this lock;
        # the waiting for readiness happens outside it.
        self._tls = isinstance(sock, ssl.SSLSocket)
        self._ssl_lock = threading.Lock()
        self._finished = False
        self._close_err: BaseException | None = None   # why a non-reader thread closed it
        self._reader: threading.Thread | None = None

    def __repr__(self) -> str:
        state = "closed" if self.closed else "open"
        return f"<Connection {self.name} {_fmt_peer(self.peer)} {state}>"

    @property
    def socket(self) -> socket.socket:
        """The underlying socket (for inspection; do not read from it)."""
        return self._sock

    def start(self) -> None:
        """Start the reader thread."""
        with self._state_lock:
            if self._reader is not None:
                raise RuntimeError("connection already started")
            if self.closed:
                raise NotConnectedError(f"connection to {_fmt_peer(self.peer)} is closed")
            try:
                # the reader blocks (in recv, or in select for TLS); close() wakes it by shutting down
                if self._tls:
                    self._sock.setblocking(False)
                else:
                    self._sock.settimeout(None)
            except OSError:
                pass
            self._reader = threading.Thread(
                target=self._read_loop, name=f"{self.name}-reader-{_fmt_peer(self.peer)}", daemon=True)
            self._reader.start()

    def send(self, payload: str) -> None:
        """Frame and send one payload; thread-safe. NotConnectedError once closed."""
        data = wire.encode(payload)
        with self._write_lock:
            if self.closed:
                raise NotConnectedError(f"connection to {_fmt_peer(self.peer)} is closed")
            if _trace_control.isEnabledFor(_DEBUG):  # under the lock: traced in wire order
                self._trace("send", payload)
            try:
                if self._tls:
                    self._send_tls(data)
                else:
                    self._sock.sendall(data)
            except OSError as err:
                failure = err
            else:
                return
        logger.warning("send to %s failed: %s; closing the connection", _fmt_peer(self.peer), failure)
        lost = ConnectionLostError(f"connection to {_fmt_peer(self.peer)} lost while sending: {failure}")
        lost.__cause__ = failure
        with self._state_lock:
            if self._close_err is None and not self._finished:
                self._close_err = lost
            reader = self._reader
        self._shutdown_socket()
        if reader is None:
            self._finish(lost)
        raise lost

    def close(self) -> None:
        """Close the connection (idempotent). ``on_close(conn, None)`` runs once.

        Returns after the reader thread has ended, unless called from the reader thread itself
        (e.g. from ``on_frame``), in which case the reader stops after the current frame.
        """
        with self._state_lock:
            self.closed = True
            reader = self._reader
        self._shutdown_socket()
        if reader is None:
            self._finish(None)
        elif reader is not threading.current_thread():
            reader.join(10.0)
            if reader.is_alive():
                logger.warning("reader thread %s did not stop", reader.name)

    def join(self, timeout: float | None = None) -> None:
        """Wait for the reader thread to end (after a close or a loss)."""
        reader = self._reader
        if reader is not None and reader is not threading.current_thread():
            reader.join(timeout)

    # -- internals ------------------------------------------------------------------------------

    def _shutdown_socket(self) -> None:
        """Mark closed and wake the reader; the reader (or _finish) closes the descriptor."""
        self.closed = True
        try:
            # Base-class shutdown: for an SSLSocket this leaves the TLS object alone (the reader
            # may be inside it) and only shuts the descriptor, which ends the reader's recv.
            socket.socket.shutdown(self._sock, socket.SHUT_RDWR)
        except (OSError, ValueError):
            pass

    def _finish(self, err: BaseException | None) -> None:
        """Close the descriptor and call on_close, exactly once."""
        with self._state_lock:
            if self._finished:
                return
            self._finished = True
            self.closed = True
        with self._write_lock, self._ssl_lock:  # no send in progress on a descriptor we close
            try:
                self._sock.close()
            except OSError:
                pass
        try:
            self._on_close(self, err)
        except Exception:
            logger.exception("on_close handler of %r raised", self)

    def _wait_ready(self, events: int, timeout: float | None) -> None:
        """Wait (outside the SSL lock) until the socket is readable/writable, or ``timeout``."""
        with selectors.DefaultSelector() as sel:
            sel.register(self._sock, events)
            sel.select(timeout)

    def _recv_tls(self, size: int) -> bytes:
        """One read from a non-blocking TLS socket: waits for data, holds the SSL lock only to read.

        Data OpenSSL already buffered is read before waiting, so nothing is left unseen.
        """
        sock = self._sock
        while True:
            with self._ssl_lock:
                try:
                    return sock.recv(size)
                except ssl.SSLWantReadError:
                    events = selectors.EVENT_READ
                except ssl.SSLWantWriteError:
                    events = selectors.EVENT_WRITE
            if self.closed:
                return b""
            self._wait_ready(events, None)

    def _send_tls(self, data: bytes) -> None:
        """sendall for a non-blocking TLS socket (write lock held); raises OSError once closed."""
        sock = self._sock
        view = memoryview(data)
        sent = 0
        while sent < len(view):
            if self.closed:
                raise BrokenPipeError("connection closed while sending")
            with self._ssl_lock:
                try:
                    sent += sock.send(view[sent:])
                    continue
                except ssl.SSLWantWriteError:
                    events, timeout = selectors.EVENT_WRITE, 1.0
                except ssl.SSLWantReadError:  # (re)negotiation: the reader consumes the input
                    events, timeout = selectors.EVENT_READ, 0.05
            self._wait_ready(events, timeout)

    def _trace(self, direction: str, payload: str) -> None:
        trace.client_frame(direction, "tls" if self._tls else "tcp", _fmt_peer(self.peer), payload)

    def _deliver(self, payloads: list[str]) -> None:
        on_frame = self._on_frame
        tracing = _trace_control.isEnabledFor(_DEBUG) or _trace_sip.isEnabledFor(_DEBUG)
        with self._batch():     # (the dispatcher wakes a worker once, when the read is routed)
            for payload in payloads:
                if self.closed:
                    return
                if tracing:
                    self._trace("recv", payload)
                try:
                    on_frame(self, payload)
                except Exception:
                    logger.exception("on_frame handler of %r raised on %r", self, payload[:200])

    def _read_loop(self) -> None:
        """Read until EOF, error or close; then close the socket and report why, once."""
        threadpolicy.apply()
        sock = self._sock
        decoder = wire.FrameDecoder()
        where = _fmt_peer(self.peer)
        err: BaseException | None = None
        recv = self._recv_tls if self._tls else sock.recv
        try:
            while not self.closed:
                try:
                    data = recv(_RECV_SIZE)
                except OSError as exc:
                    if not self.closed:
                        logger.warning("connection %s to %s failed: %s", self.name, where, exc)
                        err = ConnectionLostError(f"connection to {where} lost: {exc}")
                        err.__cause__ = exc
                    break
                if not data:
                    if not self.closed:
                        logger.info("connection %s closed by peer %s", self.name, where)
                        err = ConnectionLostError(f"connection closed by peer {where}")
                    break
                try:
                    payloads = decoder.feed(data)
                except wire.WireProtocolError as exc:
                    self._deliver(exc.frames)
                    if not self.closed:
                        logger.warning("closing connection %s to %s: %s", self.name, where, exc)
                        err = exc
                    break
                self._deliver(payloads)
        except BaseException as exc:  # never die silently, never half-dead
            logger.exception("reader of connection %s to %s crashed", self.name, where)
            err = exc
        finally:
            self._shutdown_socket()
            self._finish(err if err is not None else self._close_err)


def open_connection(host: str, port: int, *, tls: ssl.SSLContext | None = None,
                    server_hostname: str | None = None, timeout: float = 10.0) -> socket.socket:
    """Connect to ``host:port`` (TLS when ``tls`` is given) and return a blocking socket.

    TCP_NODELAY and SO_KEEPALIVE are set; ``timeout`` bounds the connect and the TLS handshake.
    ``server_hostname`` (default ``host``) is used for SNI and certificate checks. Raises OSError
    (``ssl.SSLError`` for TLS failures) on failure.
    """
    sock = socket.create_connection((host, port), timeout=timeout)
    try:
        _tune(sock)
        if tls is not None:
            sock = tls.wrap_socket(sock, server_hostname=server_hostname or host)
        sock.settimeout(None)
    except BaseException:
        sock.close()
        raise
    return sock


def backoff_delay(attempt: int, *, initial: float = 0.150, factor: float = 1.7,
                  max_delay: float = 10.0) -> float:
    """Delay in seconds before reconnect attempt ``attempt`` (1-based).

    As drachtio-srf: start at 150 ms and multiply (floored to whole ms) before each attempt,
    giving 0.255, 0.433, 0.736, 1.251, 2.126 ... s, capped at ``max_delay``.
    """
    if attempt < 1:
        raise ValueError("attempt numbers start at 1")
    cap_ms = max_delay * 1000.0
    ms = round(initial * 1000)
    num = round(factor * 1000)
    for _ in range(attempt):
        ms = ms * num // 1000
        if ms >= cap_ms:
            return max_delay
    return ms / 1000.0


class Reconnector:
    """Capped exponential backoff: 150 ms * 1.7^n, max `retry_max_delay` (default 10 s), optional
    `max_attempts` / `connect_timeout` as drachtio-srf's reconnect options; TLS kept on reconnect.

    :meth:`start` begins a cycle on a short-lived thread (``<name>``): wait the next delay, try
    :func:`open_connection` with the same ``tls`` context, and repeat until one succeeds, which is
    handed to ``on_connect(sock)`` on that thread (library code: wrap it in a Connection and
    authenticate). ``on_attempt_failed(attempt, err)`` (optional) runs after each failed attempt
    and ``on_give_up(err)`` runs when ``max_attempts`` attempts failed or the summed
    delays reached ``connect_timeout`` (seconds); ``err`` is the last connect error.
    Counters grow across cycles until :meth:`reset` (call it once a connection is authenticated).
    :meth:`cancel` stops a cycle and joins the thread.
    """

    def __init__(self, host: str, port: int, *, on_connect: Callable[[socket.socket], None],
                 on_give_up: Callable[[BaseException | None], None] | None = None,
                 on_attempt_failed: Callable[[int, BaseException], None] | None = None,
                 tls: ssl.SSLContext | None = None, server_hostname: str | None = None,
                 timeout: float = 10.0, retry_max_delay: float = 10.0,
                 max_attempts: int | None = None, connect_timeout: float | None = None,
                 initial_delay: float = 0.150, factor: float = 1.7,
                 name: str = "drachtio-reconnect") -> None:
        self.host = host
        """Server host to connect to."""
        self.port = port
        """Server port to connect to."""
        self.tls = tls
        """TLS context to wrap the socket with, or None for plain TCP."""
        self.server_hostname = server_hostname
        """Name for SNI and the certificate check (None: ``host``)."""
        self.timeout = timeout
        """Timeout, in seconds, of one connect attempt."""
        self.retry_max_delay = retry_max_delay
        """Longest delay, in seconds, between two attempts."""
        self.max_attempts = max_attempts
        """Attempts before giving up (None: no limit)."""
        self.connect_timeout = connect_timeout
        """Give up once the summed delays reach this many seconds (None: no limit)."""
        self.initial_delay = initial_delay
        """Delay, in seconds, before the first retry."""
        self.factor = factor
        """Factor the delay grows by after each failed attempt."""
        self.name = name
        """Name of the connecting thread."""
        self._on_connect = on_connect
        self._on_give_up = on_give_up
        self._on_attempt_failed = on_attempt_failed
        self._lock = threading.Lock()
        self._stop = threading.Event()
        self._threads: list[threading.Thread] = []
        self._cycling = False
        self.attempts = 0          # attempts since the last reset
        """Connect attempts since the last :meth:`reset`."""
        self.waited = 0.0          # summed delays since the last reset
        """Summed delays, in seconds, since the last :meth:`reset`."""

    def delay(self, attempt: int) -> float:
        """The delay before attempt number ``attempt`` with this reconnector's settings."""
        return backoff_delay(attempt, initial=self.initial_delay, factor=self.factor,
                             max_delay=self.retry_max_delay)

    def next_delay(self) -> float | None:
        """Delay before the next attempt, or None when the limits say to give up."""
        attempt = self.attempts + 1
        if self.max_attempts is not None and attempt > self.max_attempts:
            return None
        if self.connect_timeout is not None and self.waited >= self.connect_timeout:
            return None
        return self.delay(attempt)

    @property
    def active(self) -> bool:
        """True while a reconnect cycle is waiting or trying to connect."""
        return self._cycling

    def reset(self) -> None:
        """Forget past attempts (after a successful, authenticated connection)."""
        with self._lock:
            self.attempts = 0
            self.waited = 0.0

    def start(self) -> None:
        """Begin a reconnect cycle unless one is already waiting or connecting.

        Safe to call from ``on_connect`` or from a connection's ``on_close`` while the previous
        cycle's thread is still returning from ``on_connect``.
        """
        with self._lock:
            if self._cycling:
                return
            self._cycling = True
            self._stop = threading.Event()
            t = threading.Thread(target=self._run, args=(self._stop,), name=self.name, daemon=True)
            self._threads = [x for x in self._threads if x.is_alive()] + [t]
            t.start()

    def cancel(self, timeout: float | None = None) -> None:
        """Stop the current cycle (a socket connected meanwhile is closed) and join its thread(s)."""
        with self._lock:
            self._stop.set()
            threads = list(self._threads)
        me = threading.current_thread()
        for t in threads:
            if t is not me:
                t.join(self.timeout + 1.0 if timeout is None else timeout)

    def _end_cycle(self, stop: threading.Event) -> bool:
        """Leave the cycling state before handing over; False if cancelled meanwhile."""
        with self._lock:
            if stop is self._stop:
                self._cycling = False
            return not stop.is_set()

    def _run(self, stop: threading.Event) -> None:
        last_err: BaseException | None = None
        while True:
            with self._lock:
                delay = self.next_delay()
                if delay is not None:
                    self.attempts += 1
                    self.waited += delay
                attempt = self.attempts
            if delay is None:
                if not self._end_cycle(stop):
                    return
                logger.error("giving up reconnecting to %s:%s after %d attempts: %s",
                             self.host, self.port, attempt, last_err)
                if self._on_give_up is not None:
                    try:
                        self._on_give_up(last_err)
                    except Exception:
                        logger.exception("on_give_up handler raised")
                return
            if stop.wait(delay):
                self._end_cycle(stop)
                return
            try:
                sock = open_connection(self.host, self.port, tls=self.tls,
                                       server_hostname=self.server_hostname, timeout=self.timeout)
            except (OSError, ValueError) as err:  # incl. ssl.SSLError; ValueError: bad TLS setup
                last_err = err
                logger.info("reconnect attempt %d to %s:%s failed: %s", attempt, self.host, self.port, err)
                if self._on_attempt_failed is not None:
                    try:
                        self._on_attempt_failed(attempt, err)
                    except Exception:
                        logger.exception("on_attempt_failed handler raised")
                continue
            if not self._end_cycle(stop):
                sock.close()
                return
            logger.info("reconnected to %s:%s (attempt %d)", self.host, self.port, attempt)
            try:
                self._on_connect(sock)
            except Exception:
                logger.exception("on_connect handler raised; closing the new socket")
                sock.close()
            return


class Listener:
    """Outbound-connection mode: accepts connections on host:port (TLS optional), hands each socket
    to on_accept(sock, address) on the accept thread; close() stops it.

    The socket is bound and the accept thread started by the constructor; ``port`` is the port
    actually bound (pass 0 for any free one). With ``tls`` the handshake is done (bounded by
    ``handshake_timeout``) before ``on_accept``; a failed handshake is logged and dropped.
    """

    def __init__(self, host: str, port: int, *,
                 on_accept: Callable[[socket.socket, tuple[str, int]], None],
                 tls: ssl.SSLContext | None = None, backlog: int = 128,
                 handshake_timeout: float = _HANDSHAKE_TIMEOUT, name: str = "drachtio-listener") -> None:
        self._on_accept = on_accept
        self.tls = tls
        """TLS context for accepted connections, or None for plain TCP."""
        self.handshake_timeout = handshake_timeout
        """Longest time, in seconds, a TLS handshake may take before the connection is dropped."""
        self.name = name
        """Name of the accept thread (the bound port is appended)."""
        family = socket.AF_INET6 if ":" in host else socket.AF_INET
        self._sock = socket.socket(family, socket.SOCK_STREAM)
        try:
            self._sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
            self._sock.bind((host, port))
            self._sock.listen(backlog)
            self._sock.setblocking(False)
        except BaseException:
            self._sock.close()
            raise
        self.host: str = self._sock.getsockname()[0]
        """Address the socket is actually bound to."""
        self.port: int = self._sock.getsockname()[1]
        """Port actually bound (useful when 0 was asked for)."""
        self._wake_r, self._wake_w = socket.socketpair()
        self._closed = False
        self._thread = threading.Thread(target=self._run, name=f"{name}-{self.port}", daemon=True)
        self._thread.start()

    @property
    def closed(self) -> bool:
        """True once :meth:`close` has been called."""
        return self._closed

    def close(self, timeout: float = 5.0) -> None:
        """Stop accepting and join the accept thread (idempotent)."""
        if not self._closed:
            self._closed = True
            try:
                self._wake_w.send(b"x")
            except OSError:
                pass
        if self._thread is not threading.current_thread():
            self._thread.join(timeout)

    def _run(self) -> None:
        sel = selectors.DefaultSelector()
        try:
            sel.register(self._sock, selectors.EVENT_READ)
            sel.register(self._wake_r, selectors.EVENT_READ)
            while not self._closed:
                for key, _ in sel.select():
                    if key.fileobj is self._wake_r or self._closed:
                        continue
                    self._accept_one()
        except Exception:
            logger.exception("listener on %s:%s failed", self.host, self.port)
        finally:
            sel.close()
            self._closed = True
            for s in (self._sock, self._wake_r, self._wake_w):
                try:
                    s.close()
                except OSError:
                    pass

    def _accept_one(self) -> None:
        try:
            sock, addr = self._sock.accept()
        except (BlockingIOError, InterruptedError):
            return
        except OSError as err:  # e.g. EMFILE: log and keep listening
            logger.warning("accept on %s:%s failed: %s", self.host, self.port, err)
            return
        sock.setblocking(True)
        _tune(sock)
        address = (str(addr[0]), int(addr[1]))
        if self.tls is not None:
            sock.settimeout(self.handshake_timeout)
            try:
                sock = self.tls.wrap_socket(sock, server_side=True)
            except (OSError, ValueError) as err:
                logger.warning("TLS handshake with %s failed: %s", _fmt_peer(address), err)
                sock.close()
                return
            sock.settimeout(None)
        try:
            self._on_accept(sock, address)
        except Exception:
            logger.exception("on_accept handler raised; closing the socket from %s", _fmt_peer(address))
            sock.close()
