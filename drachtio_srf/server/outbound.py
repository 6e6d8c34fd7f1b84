"""Outbound connections: the server dials the app for a new request (PROTOCOL.md 2.2, steps 4-8).

drachtio-server learns from its request handlers (an HTTP service, or a ``tcp://`` URL) that a new
request goes to an app that *listens*. This test/dev server keeps only the ``tcp://``/``tls://``
form, configured per method (``*`` for any): ``--outbound "INVITE=tcp://127.0.0.1:3000"`` or
``EmbeddedServer(outbound={"INVITE": "tcp://127.0.0.1:3000"})``.

For such a request the server opens a connection to the app (480 to the caller if it cannot),
waits for the app's ``authenticate``, replies, then sends the pending request as the first ``sip``
frame on that connection. Everything about the request and the dialog it creates then uses that
connection, exactly like an inbound one; the app closes it when it wants to (drachtio-srf does
after its default 404).
"""
from __future__ import annotations

import asyncio
import logging
import re
import ssl
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Protocol

from drachtio_srf.server.control import ControlConnection, CoreLink

if TYPE_CHECKING:  # pragma: no cover
    from drachtio_srf.server.records import Incoming

logger = logging.getLogger(__name__)

__all__ = ["OutboundConnector", "OutboundTarget", "parse_outbound", "parse_outbound_map"]

CONNECT_TIMEOUT = 2.0    # seconds to open the connection (drachtio-server: 2 s)
AUTH_TIMEOUT = 5.0       # seconds the app has to authenticate once connected
UNAVAILABLE = 480        # answer when the app cannot be reached

_URL = re.compile(r"^\s*(tcp|tls)://(\[[^\]]+\]|[^:/\s]+):(\d+)/?\s*$", re.IGNORECASE)


@dataclass(frozen=True)
class OutboundTarget:
    """Where the server dials an app: ``tcp://host:port`` or ``tls://host:port``."""

    transport: str
    """``'tcp'`` or ``'tls'``."""
    host: str
    """Host of the app."""
    port: int
    """Port of the app."""

    def __str__(self) -> str:
        return f"{self.transport}://{self.host}:{self.port}"


def parse_target(url: str) -> OutboundTarget:
    """``tcp://127.0.0.1:3000`` -> OutboundTarget; ValueError naming the problem otherwise."""
    m = _URL.match(url or "")
    if not m:
        raise ValueError(f"invalid outbound target {url!r}: expected tcp://host:port or tls://host:port")
    port = int(m.group(3))
    if not 0 < port < 65536:
        raise ValueError(f"invalid port in outbound target {url!r}")
    return OutboundTarget(m.group(1).lower(), m.group(2).strip("[]"), port)


def parse_outbound(spec: str) -> tuple[str, OutboundTarget]:
    """``"INVITE=tcp://127.0.0.1:3000"`` -> ("INVITE", target); the method may be ``*``."""
    method, sep, url = (spec or "").partition("=")
    method = method.strip().upper()
    if not sep or not method or not (method == "*" or method.isalpha()):
        raise ValueError(f"invalid outbound spec {spec!r}: expected METHOD=tcp://host:port")
    return method, parse_target(url)


def parse_outbound_map(specs: Mapping[str, Any] | Iterable[str] | None) -> dict[str, OutboundTarget]:
    """A method -> target map from ``{method: url}`` or ``["METHOD=url", ...]``."""
    out: dict[str, OutboundTarget] = {}
    if not specs:
        return out
    if isinstance(specs, Mapping):
        for method, url in specs.items():
            m = str(method).strip().upper()
            if not m or not (m == "*" or m.isalpha()):
                raise ValueError(f"invalid method {method!r} in outbound map")
            out[m] = url if isinstance(url, OutboundTarget) else parse_target(str(url))
        return out
    for spec in specs:
        method, target = parse_outbound(spec)
        out[method] = target
    return out


class OutboundCore(CoreLink, Protocol):
    """What the outbound connector needs from the server core (``Core`` provides it)."""

    def deliver_new_request(self, inc: Incoming) -> None:
        """Send a pending new request to its app."""

    def fail_incoming(self, inc: Incoming, status: int) -> None:
        """Answer a pending new request from the server itself."""


class OutboundConnector:
    """Opens one connection per new request whose method has an outbound target."""

    def __init__(self, core: OutboundCore, targets: Mapping[str, Any] | Iterable[str] | None) -> None:
        self.core = core
        """The server core that gets the new connections."""
        self.targets = parse_outbound_map(targets)
        """Method (or ``'*'``) to the OutboundTarget dialled for new requests of that method."""
        self._pending: dict[ControlConnection, Incoming] = {}
        self._tasks: set[asyncio.Task[None]] = set()

    def target_for(self, method: str) -> OutboundTarget | None:
        """The target for a new request of ``method`` (exact method first, then ``*``)."""
        return self.targets.get(method.upper()) or self.targets.get("*")

    def new_connection(self) -> ControlConnection:
        """The (not yet connected) app connection a new request will be delivered on."""
        return ControlConnection(self.core)

    def start(self, conn: ControlConnection, inc: Incoming, target: OutboundTarget) -> None:
        """Dial ``target`` for ``inc`` (already registered with the core under ``conn``)."""
        inc.delivered = False
        self._pending[conn] = inc
        conn.on_authenticated = self._authenticated
        conn.name = f"{conn.name}-out"
        task = asyncio.get_running_loop().create_task(self._connect(conn, inc, target))
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    async def _connect(self, conn: ControlConnection, inc: Incoming, target: OutboundTarget) -> None:
        loop = asyncio.get_running_loop()
        ctx: ssl.SSLContext | None = None
        if target.transport == "tls":
            ctx = ssl.create_default_context(ssl.Purpose.SERVER_AUTH)
            ctx.check_hostname = False      # as drachtio-server: the app's certificate is not verified
            ctx.verify_mode = ssl.CERT_NONE
        logger.info("%s %s: connecting to app at %s", inc.method, inc.txn_id, target)
        try:
            await asyncio.wait_for(
                loop.create_connection(lambda: conn, target.host, target.port, ssl=ctx), CONNECT_TIMEOUT)
        except asyncio.CancelledError:
            raise
        except (asyncio.TimeoutError, OSError, ssl.SSLError) as err:
            logger.warning("%s %s: cannot connect to app at %s: %s; answering %d", inc.method,
                           inc.txn_id, target, err or type(err).__name__, UNAVAILABLE)
            self._pending.pop(conn, None)
            conn.closed = True
            self.core.fail_incoming(inc, UNAVAILABLE)
            return
        loop.call_later(AUTH_TIMEOUT, self._auth_timeout, conn)

    def _auth_timeout(self, conn: ControlConnection) -> None:
        if conn in self._pending and not conn.closed:
            logger.warning("%s: app did not authenticate within %.0fs, closing", conn.name, AUTH_TIMEOUT)
            conn.close()
            self.connection_lost(conn)

    def _authenticated(self, conn: ControlConnection) -> None:
        """The app authenticated: the pending request is the first ``sip`` frame it gets."""
        inc = self._pending.pop(conn, None)
        if inc is None:
            return
        if inc.final:
            logger.info("%s: %s %s ended before the app authenticated, closing", conn.name,
                        inc.method, inc.txn_id)
            conn.close()
            return
        inc.delivered = True
        self.core.deliver_new_request(inc)

    def connection_lost(self, conn: ControlConnection) -> None:
        """A connection closed: a request not yet delivered on it gets 480."""
        inc = self._pending.pop(conn, None)
        if inc is not None:
            logger.info("%s: closed before authenticating; answering %d", conn.name, UNAVAILABLE)
            self.core.fail_incoming(inc, UNAVAILABLE)

    def close(self) -> None:
        """Stop connecting (server shutdown)."""
        for task in list(self._tasks):
            task.cancel()
        self._pending.clear()
