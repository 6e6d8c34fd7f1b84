"""Embedded drachtio-compatible server (asyncio), usable in-process or as ``python -m drachtio_srf.server``.

``EmbeddedServer`` runs the server's event loop in a background thread::

    s = EmbeddedServer(admin_port=0, sip_port=0, secret="cymru")   # tls_port=0, tls_cert=... for TLS
    s.start()            # returns once both ports are bound
    s.admin_port, s.sip_port
    s.stop()
"""
from __future__ import annotations

import asyncio
import logging
import re
import threading
from collections.abc import Callable, Iterable, Mapping
from typing import Any

from drachtio_srf.server.core import DEFAULT_VERSION, Core, ServerConfig
from drachtio_srf.server.outbound import parse_outbound_map

logger = logging.getLogger(__name__)

__all__ = ["EmbeddedServer", "ServerConfig", "parse_contact"]


def parse_contact(contact: str) -> tuple[str, int, tuple[str, ...]]:
    """``sip:127.0.0.1:5060;transport=udp,tcp`` -> (host, port, ('udp', 'tcp'))."""
    m = re.fullmatch(r"\s*<?sips?:(?:[^@]*@)?(\[[^\]]+\]|[^:;>]+)(?::(\d+))?([^>]*)>?\s*", contact)
    if not m:
        raise ValueError(f"invalid contact {contact!r}: expected sip:host[:port][;transport=udp,tcp]")
    host = m.group(1).strip("[]")
    port = int(m.group(2)) if m.group(2) else 5060
    transports: tuple[str, ...] = ("udp", "tcp")
    t = re.search(r";\s*transport=([A-Za-z,]+)", m.group(3) or "", re.IGNORECASE)
    if t:
        transports = tuple(x.lower() for x in t.group(1).split(",") if x)
        unsupported = [x for x in transports if x not in ("udp", "tcp")]
        if unsupported:
            raise ValueError(f"unsupported transport(s) {unsupported} in contact {contact!r}")
    return host, port, transports


class EmbeddedServer:
    """The server on its own event-loop thread (for tests and in-process use)."""

    def __init__(self, admin_port: int = 0, sip_port: int | None = 0, secret: str = "cymru", *,
                 address: str = "127.0.0.1", sip_host: str | None = None,
                 contact: str | None = None, transports: Iterable[str] = ("udp", "tcp"),
                 version: str = DEFAULT_VERSION, external_host: str | None = None,
                 outbound_proxy: str | None = None, cdrs: bool = False, t1: float | None = None,
                 tls_port: int | None = None, tls_cert: str | None = None,
                 tls_key: str | None = None,
                 outbound: Mapping[str, str] | Iterable[str] | None = None,
                 auth_timeout: float = 5.0, echo_gap: float = 0.0, max_pending: int = 2000,
                 max_transactions: int = 200_000, retry_after: int = 5) -> None:
        """Configure (nothing is bound before :meth:`start`).

        ``auth_timeout``: seconds an app connection has to send a good ``authenticate`` before
        the server closes it (0 disables the limit; drachtio-server has none).
        ``echo_gap``: seconds the server keeps between the echo of an app's request (or of its 2xx
        that made a dialog) and the first frame answering it. 0 forwards at once as
        drachtio-server does (the default; the original Node library passes its conformance
        runs so); a positive value is for experiments.
        Overload (memory stays bounded under a flood): a new request is answered 503 with
        ``Retry-After: retry_after`` while ``max_pending`` requests wait for an app's final
        answer, while the stack holds ``max_transactions`` server transactions, or while the
        chosen app has 4 MB of frames it has not read.
        """
        host = sip_host or address
        trans = tuple(transports)
        port = sip_port
        if contact:
            c_host, c_port, trans = parse_contact(contact)
            host = sip_host or c_host
            if sip_port is None:
                port = c_port
        self.config = ServerConfig(
            admin_host=address, admin_port=admin_port, secret=secret, sip_host=host,
            sip_port=port or 0, transports=trans, external_host=external_host, version=version,
            outbound_proxy=outbound_proxy, cdrs=cdrs, t1=t1, tls_port=tls_port,
            tls_cert=tls_cert, tls_key=tls_key, auth_timeout=auth_timeout,
            echo_gap=echo_gap, max_pending=max_pending, max_transactions=max_transactions,
            retry_after=retry_after)
        """Options the embedded server runs with; ports are updated to the bound ones after start()."""
        # method (or '*') -> 'tcp://host:port': the server dials the app for such new requests
        self.config.outbound = dict(parse_outbound_map(outbound))
        self.core: Core | None = None
        """The server core, made by start() (None before)."""
        self._loop: asyncio.AbstractEventLoop | None = None
        self._thread: threading.Thread | None = None
        self._started = threading.Event()
        self._error: BaseException | None = None

    @property
    def admin_port(self) -> int:
        """The admin (control) port apps connect to; the bound one after start()."""
        return self.config.admin_port

    @property
    def sip_port(self) -> int:
        """The SIP port; the bound one after start()."""
        return self.config.sip_port

    @property
    def tls_port(self) -> int | None:
        """The TLS admin port (None when not enabled); the bound one after start()."""
        return self.config.tls_port

    @property
    def loop(self) -> asyncio.AbstractEventLoop | None:
        """The event loop of the server's thread (None while not running)."""
        return self._loop

    def start(self, timeout: float = 10.0) -> EmbeddedServer:
        """Start the loop thread and bind the ports; raises what binding raised."""
        if self._thread is not None:
            raise RuntimeError("server already started")
        self._thread = threading.Thread(target=self._run, name="drachtio-server", daemon=True)
        self._thread.start()
        if not self._started.wait(timeout):
            raise TimeoutError("embedded server did not start in time")
        if self._error is not None:
            self._thread.join(timeout)
            raise self._error
        return self

    def _run(self) -> None:
        loop = asyncio.new_event_loop()
        self._loop = loop
        asyncio.set_event_loop(loop)
        try:
            self.core = Core(self.config)
            loop.run_until_complete(self.core.start())
        except BaseException as err:  # noqa: BLE001 - handed to start()
            self._error = err
            self._started.set()
            loop.close()
            return
        self._started.set()
        try:
            loop.run_forever()
        finally:
            try:
                loop.run_until_complete(self.core.stop())
                loop.run_until_complete(asyncio.sleep(0))
            except Exception:
                logger.exception("error stopping the server")
            loop.close()

    def stop(self, timeout: float = 5.0) -> None:
        """Stop the server and join its thread (idempotent)."""
        loop, thread = self._loop, self._thread
        if loop is None or thread is None:
            return
        if not loop.is_closed():
            loop.call_soon_threadsafe(loop.stop)
        thread.join(timeout)
        self._thread = None

    def call(self, fn: Callable[..., Any], *args: Any) -> Any:
        """Run ``fn(*args)`` on the server loop and return its result (for tests and tools)."""
        assert self._loop is not None
        fut = asyncio.run_coroutine_threadsafe(_call(fn, *args), self._loop)
        return fut.result(10)

    def __enter__(self) -> EmbeddedServer:  # noqa: PYI034 - Self needs 3.11
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()


async def _call(fn: Callable[..., Any], *args: Any) -> Any:
    return fn(*args)
