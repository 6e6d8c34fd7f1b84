"""Admin (control protocol) connections of the embedded server.

One :class:`ControlConnection` per app connection: it frames with ``wire.FrameDecoder`` and answers
``authenticate``, ``route``, ``remove_route`` and ``ping`` itself; ``sip`` and ``proxy`` go to the
core.  A malformed frame closes that connection only (PROTOCOL.md 3.5).
"""
from __future__ import annotations

import asyncio
import itertools
import logging
import socket
from collections.abc import Callable, Iterable
from typing import TYPE_CHECKING, Any, Protocol

from drachtio_srf import wire
from drachtio_srf.server import frames

if TYPE_CHECKING:  # pragma: no cover
    from drachtio_srf.server.config import ServerConfig

logger = logging.getLogger(__name__)
#: every control frame in and out, full text, at DEBUG (the wire trace; off unless enabled)
trace = logging.getLogger("drachtio_srf.server.trace.control")
"""Logger of the control wire trace: every frame in and out, full text, at DEBUG."""

#: drachtio-server reads at most 5 digits of frame length (a 6th digit is a protocol error)
MAX_LENGTH_DIGITS = 5
"""Most digits a frame length may have, as in drachtio-server (one more is a protocol error)."""
#: bytes a connection may have buffered before it authenticated (an authenticate frame is small)
MAX_PREAUTH_BYTES = 4096
"""Bytes a connection may buffer before it has authenticated."""
#: seconds a new connection has to authenticate before it is closed
DEFAULT_AUTH_TIMEOUT = 5.0
"""Seconds a new connection has to authenticate before it is closed."""


_ids = itertools.count(1)


class CoreLink(Protocol):
    """What an app connection needs from the server core (``Core`` provides it)."""

    config: ServerConfig
    """The server's options (secret, version, auth timeout)."""
    router: Router
    """The routes apps register."""
    connections: set[ControlConnection]
    """The open app connections."""

    def batch_begin(self) -> None:
        """Input is being handled: hold frames to apps."""

    def batch_end(self) -> None:
        """End of a batch of input: write the held frames."""

    def queue_output(self, conn: ControlConnection) -> None:
        """``conn`` has frames to write."""

    def connection_lost(self, conn: ControlConnection) -> None:
        """``conn`` closed."""

    def hostports(self) -> str:
        """``transport/host:port`` of each SIP transport, told to apps."""

    def handle_sip_command(self, conn: ControlConnection, frame: wire.Frame) -> None:
        """A ``sip`` frame from an app."""

    def handle_proxy_command(self, conn: ControlConnection, frame: wire.Frame) -> None:
        """A ``proxy`` frame from an app."""


class Router:
    """Verb -> connections that routed it, served round-robin (PROTOCOL.md 2.1)."""

    def __init__(self) -> None:
        self._routes: dict[str, list[ControlConnection]] = {}
        self._next: dict[str, int] = {}

    def add(self, verb: str, conn: ControlConnection) -> None:
        """Route ``verb`` to ``conn`` (stored as given: the method is lower-cased, the verb is not).

        A repeated registration is not added twice (drachtio-server would weight that connection
        double in the rotation, which nothing relies on).
        """
        lst = self._routes.setdefault(verb, [])
        if conn not in lst:
            lst.append(conn)

    def remove(self, verb: str, conn: ControlConnection) -> None:
        """Stop routing ``verb`` to ``conn``.

        drachtio-server drops *all* routes of the connection here (PROTOCOL.md 2.1); that quirk would
        silently cut off an app that unregisters one verb, so only the named verb goes.
        """
        lst = self._routes.get(verb)
        if lst and conn in lst:
            lst.remove(conn)
            if not lst:
                del self._routes[verb]

    def remove_connection(self, conn: ControlConnection) -> None:
        """Drop every route of ``conn`` (what ``remove_route`` does, whatever the verb)."""
        for verb in list(self._routes):
            lst = [c for c in self._routes[verb] if c is not conn]
            if lst:
                self._routes[verb] = lst
            else:
                del self._routes[verb]

    def pick(self, verb: str) -> ControlConnection | None:
        """Next live connection for ``verb`` in rotation, or None."""
        lst = [c for c in self._routes.get(verb, ()) if not c.closed]
        if not lst:
            return None
        i = self._next.get(verb, 0) % len(lst)
        self._next[verb] = i + 1
        return lst[i]

    def has(self, verb: str) -> bool:
        """True when at least one open connection routes ``verb``."""
        return any(not c.closed for c in self._routes.get(verb, ()))

    def verbs(self, conn: ControlConnection) -> list[str]:
        """The verbs (methods) that ``conn`` has routed."""
        return [v for v, lst in self._routes.items() if conn in lst]


class ControlConnection(asyncio.Protocol):
    """One app connection on the admin port."""

    def __init__(self, core: CoreLink) -> None:
        self.core = core
        """The server core this connection feeds."""
        self.name = f"conn-{next(_ids)}"
        """A readable name for logs (``conn-N``)."""
        self.transport: asyncio.Transport | None = None
        """The asyncio transport (None until connected)."""
        self.peer: tuple[str, int] = ("", 0)
        """The app's address and port."""
        self.closed = False
        """True once the connection is closed or closing."""
        self.authenticated = False
        """True after a good ``authenticate`` frame."""
        self.tags: list[str] = []
        """Tags the app gave with its ``authenticate`` frame."""
        self._decoder = wire.FrameDecoder(max_digits=MAX_LENGTH_DIGITS)
        self._auth_timer: asyncio.TimerHandle | None = None
        self._out: list[bytes] | None = None      # encoded frames waiting for the end of the loop pass
        #: set for an outbound connection (the server dialled the app): runs after a good authenticate
        self.on_authenticated: Callable[[ControlConnection], None] | None = None
        """Callback run after a good authenticate, for a connection the server dialled (outbound)."""

    # ------------------------------------------------------------------ asyncio.Protocol
    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        """asyncio callback: remember the transport and peer and start the authentication timer."""
        self.transport = transport  # type: ignore[assignment]
        peer = transport.get_extra_info("peername")
        if peer:
            self.peer = (peer[0], peer[1])
        sock = transport.get_extra_info("socket")
        if sock is not None:
            try:
                sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
                sock.setsockopt(socket.SOL_SOCKET, socket.SO_KEEPALIVE, 1)
            except OSError:  # pragma: no cover - platform specific
                pass
        logger.info("%s: app connected from %s:%s", self.name, *self.peer)
        self.core.connections.add(self)
        timeout = self.core.config.auth_timeout
        if timeout and timeout > 0:
            self._auth_timer = asyncio.get_running_loop().call_later(timeout, self._auth_expired)

    def _auth_expired(self) -> None:
        """No good ``authenticate`` in time: close (an idle peer must not hold a descriptor)."""
        self._auth_timer = None
        if not self.authenticated and not self.closed:
            logger.warning("%s: not authenticated within %ss, closing", self.name,
                           self.core.config.auth_timeout)
            self.close()

    def data_received(self, data: bytes) -> None:
        """asyncio callback: decode the frames received and handle each one."""
        if self.closed:
            return
        try:
            payloads = self._decoder.feed(data)
        except wire.WireProtocolError as err:
            logger.warning("%s: closing connection after a malformed frame: %s", self.name, err)
            for p in getattr(err, "frames", ()) or ():
                self._handle(p)
            self.close()
            return
        core = self.core
        core.batch_begin()
        try:
            for payload in payloads:
                if self.closed:
                    return
                self._handle(payload)
        finally:
            core.batch_end()
        if not self.authenticated and not self.closed and self._decoder.pending > MAX_PREAUTH_BYTES:
            logger.warning("%s: %d bytes buffered before authenticating, closing", self.name,
                           self._decoder.pending)
            self.close()

    def connection_lost(self, exc: Exception | None) -> None:
        """asyncio callback: mark the connection closed and let the core drop its routes and state."""
        if not self.closed:
            self.closed = True
        if self._auth_timer is not None:
            self._auth_timer.cancel()
            self._auth_timer = None
        logger.info("%s: app connection closed%s", self.name, f" ({exc})" if exc else "")
        self.core.connection_lost(self)

    # ------------------------------------------------------------------ sending
    def send(self, payload: str) -> None:
        """Send one frame (dropped with a debug line once the connection is closed)."""
        if self.closed or self.transport is None or self.transport.is_closing():
            logger.debug("%s: connection closed, frame dropped:\n%s", self.name, payload)
            return
        if trace.isEnabledFor(logging.DEBUG):
            self._trace("send", payload)
        # frames made in one pass of the event loop go out in one write (one wake-up of the app)
        out = self._out
        if out is None:
            self._out = [wire.encode(payload)]
            self.core.queue_output(self)
        else:
            out.append(wire.encode(payload))

    @property
    def backlog(self) -> int:
        """Bytes written to this connection that the app has not taken yet (asyncio's buffer)."""
        t = self.transport
        return t.get_write_buffer_size() if t is not None and not t.is_closing() else 0

    def _flush(self) -> None:
        out, self._out = self._out, None
        if out and self.transport is not None and not self.transport.is_closing():
            self.transport.write(out[0] if len(out) == 1 else b"".join(out))

    def reply(self, in_reply_to: str, status: str, data: Iterable[Any] = (), sip: Any = None) -> None:
        """Send a ``response`` frame answering the frame ``in_reply_to`` with ``status`` and data."""
        self.send(wire.reply(frames.new_id(), in_reply_to, status, data, sip))

    def close(self) -> None:
        """Close after pending output is written; routes are dropped at once."""
        if self.closed:
            return
        self.closed = True
        self.core.router.remove_connection(self)
        if self.transport is not None:
            self._flush()   # frames already made go out before the close
            self.transport.close()

    # ------------------------------------------------------------------ frames
    def _trace(self, direction: str, payload: str) -> None:
        """One wire-trace record: direction, peer, byte count, then the whole frame."""
        trace.debug("%s tcp %s:%s %d bytes (%s)\n%s", direction, self.peer[0], self.peer[1],
                    len(payload.encode("utf-8", "surrogateescape")), self.name, payload)

    def _handle(self, payload: str) -> None:
        if trace.isEnabledFor(logging.DEBUG):
            self._trace("recv", payload)
        try:
            frame = wire.parse(payload)
        except wire.WireProtocolError as err:
            logger.warning("%s: invalid message format (%s), closing", self.name, err)
            self.send(wire.reply(wire.new_id(), payload.split("|", 1)[0][:64].strip() or "-", "NO",
                                 ["Invalid message format"]))
            self.close()
            return
        kind = frame.type
        try:
            if kind == "authenticate":
                self._authenticate(frame)
            elif not self.authenticated:
                # drachtio-server serves these unauthenticated; here that would be an open relay
                logger.warning("%s: %r before authenticate, closing", self.name, kind)
                self.reply(frame.msg_id, "NO", ["not authenticated"])
                self.close()
            elif kind == "route":
                self.core.router.add(frame.field(2), self)
                self.reply(frame.msg_id, "OK")
            elif kind == "remove_route":
                self.core.router.remove(frame.field(2), self)
                self.reply(frame.msg_id, "OK")
            elif kind == "ping":
                self.reply(frame.msg_id, "OK", ["pong"])
            elif kind == "sip":
                if len(frame.fields) < 4:
                    logger.warning("%s: sip frame with %d fields, closing", self.name, len(frame.fields))
                    self.reply(frame.msg_id, "NO", ["Invalid message format"])
                    self.close()
                    return
                self.core.handle_sip_command(self, frame)
            elif kind == "proxy":
                if len(frame.fields) < 4:
                    self.reply(frame.msg_id, "NO",
                               ["Invalid proxy request: not enough information provided"])
                    self.close()
                    return
                self.core.handle_proxy_command(self, frame)
            else:
                logger.warning("%s: unknown message type %r, closing", self.name, kind)
                self.reply(frame.msg_id, "NO", ["Unknown message type"])
                self.close()
        except Exception:  # a bug in handling one frame must not kill the connection silently
            logger.exception("%s: error handling %s frame %s", self.name, kind, frame.msg_id)
            if kind in ("sip", "proxy"):
                self.reply(frame.msg_id, "NOK", ["Unknown server error"])

    def _authenticate(self, frame: wire.Frame) -> None:
        secret = frame.field(2)
        if secret != self.core.config.secret:
            logger.warning("%s: authentication failed (incorrect secret)", self.name)
            self.reply(frame.msg_id, "NO", ["incorrect secret"])
            self.close()
            return
        self.authenticated = True
        if self._auth_timer is not None:
            self._auth_timer.cancel()
            self._auth_timer = None
        tags = frame.field(3)
        self.tags = [t for t in tags.split(",") if t] if tags else []
        hostports = self.core.hostports()
        self.reply(frame.msg_id, "OK", [hostports, self.core.config.version, hostports])
        logger.info("%s: authenticated", self.name)
        if self.on_authenticated is not None:
            self.on_authenticated(self)
