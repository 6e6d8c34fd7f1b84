"""The drachtio side of the embedded server: ``Core`` and what it is made of.

``Core`` sits between the app connections (``control.py``) and the SIP stack (``sipstack.py``).
It holds the server's state and is assembled from parts, one module per job:

- ``inbound.py``: requests from the network (the stack's handler), who gets each one;
- ``uas.py``: apps' responses to those requests, UAS dialogs;
- ``early.py``: reliable 1xx and PRACK, UPDATE and NOTIFY in early dialogs;
- ``uac.py``: apps' requests to the network and their responses, the server's own BYE;
- ``proxy.py``: proxying on an app's request;
- ``app_output.py`` and ``cdr.py``: frames and CDR events to apps;
- ``records.py`` (pending transactions), ``dialogs.py`` (dialogs), ``config.py`` (options).

This module keeps the lifecycle (start/stop), the server's own addresses, connection loss, and
the classification of an app's ``sip`` frame (PROTOCOL.md 3.1). Everything runs on one asyncio
loop: no locks.
"""
from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable
from typing import Any

from drachtio_srf import wire
from drachtio_srf.server.app_output import AppOutputMixin
from drachtio_srf.server.cdr import CdrMixin
from drachtio_srf.server.config import DEFAULT_VERSION, ServerConfig
from drachtio_srf.server.control import ControlConnection, Router
from drachtio_srf.server.dialogs import Dialog, DialogTable, dialog_id  # noqa: F401 - re-exported
from drachtio_srf.server.early import EarlyDialogMixin
from drachtio_srf.server.inbound import (  # noqa: F401 - re-exported
    MAX_APP_BACKLOG,
    NEW_REQUEST_METHODS,
    PENDING_REQUEST_TIMEOUT,
    InboundMixin,
)
from drachtio_srf.server.outbound import OutboundConnector
from drachtio_srf.server.proxy import ProxyBranch, ProxyJob, ProxyMixin  # noqa: F401 - re-exported
from drachtio_srf.server.records import Incoming, Outgoing
from drachtio_srf.server.sip_text import (  # noqa: F401 - also re-exported for older imports
    _CANON,
    _COMPACT,
    _LOCALHOST,
    _TAG_CHARS,
    _TAG_PARAM,
    _TOKEN,
    DISCARDED,
    AppHeaders,
    build_message,
    canonical_name,
    nbytes,
    new_tag,
    parse_duration,
    split_app_message,
    split_values,
    tag_of,
    text_of,
    with_tag,
)
from drachtio_srf.server.sip_transport import Target
from drachtio_srf.server.timers import TimerWheel
from drachtio_srf.server.uac import ACK_NON_SUCCESS, CANCEL_IGNORED, UacMixin  # noqa: F401 - re-exported
from drachtio_srf.server.uas import UasMixin
from drachtio_srf.sip import SipMessage, parse_uri

logger = logging.getLogger(__name__)

__all__ = ["DEFAULT_VERSION", "Core", "Incoming", "Outgoing", "ServerConfig"]

FAILED_INVITE_MEMORY = 32.0
"""Seconds a dialog id of a failed INVITE is remembered, to answer a late ACK from the app."""


class Core(InboundMixin, UasMixin, EarlyDialogMixin, UacMixin, ProxyMixin, AppOutputMixin, CdrMixin):
    """State and logic of the server; also the SIP stack's handler (``StackHandler``)."""

    def __init__(self, config: ServerConfig, *, stack_factory: Callable[..., Any] | None = None) -> None:
        self.config = config
        """The options the server runs with."""
        self.router = Router()
        """Which app connections get new requests of each method."""
        self.connections: set[ControlConnection] = set()
        """The open app connections."""
        self.dialogs = DialogTable()
        """The dialogs the server holds for apps."""
        self.incoming: dict[str, Incoming] = {}
        """Requests from the network delivered to apps and not finally answered, by txnId."""
        self._incoming_by_stx: dict[int, Incoming] = {}
        self.outgoing: dict[str, Outgoing] = {}
        """Requests sent by apps waiting for their responses, by txnId."""
        self._failed_invites: dict[str, float] = {}
        self._proxy_by_stx: dict[int, ProxyJob] = {}
        self._proxied_calls: dict[str, Any] = {}   # Call-ID -> Target of the answering branch
        self._early_updates: dict[str, Incoming] = {}   # INVITE txnId -> UPDATE in its early dialog
        #: dialog id -> (stx, request, source) that overtook the final response to the app's SUBSCRIBE
        self._early_notifies: dict[str, list[tuple[Any, SipMessage, Any]]] = {}
        self._stack_factory = stack_factory
        self.outbound = OutboundConnector(self, config.outbound)
        """Dials apps for new requests whose method has an outbound target."""
        self.stack: Any = None
        """The SIP stack (set by start())."""
        self._admin_server: asyncio.AbstractServer | None = None
        self._tls_admin_server: asyncio.AbstractServer | None = None
        self.loop: asyncio.AbstractEventLoop | None = None
        """The event loop the server runs on (set by start())."""
        self.timers: TimerWheel | None = None      # cheap timers for per-request expiries
        """Timer wheel for cheap per-request expiries (set by start())."""
        # frames to apps are written once per batch of input (one wake-up of the app, one syscall)
        self._batching = 0
        self._dirty: list[ControlConnection] = []
        self._flush_scheduled = False
        self._overload_rejects = 0      # new requests answered 503 for overload (logged now and then)

    # ------------------------------------------------------------------ lifecycle
    async def start(self) -> None:
        """Bind the SIP transports, then the admin port."""
        self.loop = asyncio.get_running_loop()
        self.timers = TimerWheel(self.loop)
        factory = self._stack_factory
        if factory is None:
            from drachtio_srf.server.sipstack import SipStack
            factory = SipStack
        kwargs: dict[str, Any] = {"handler": self}
        if self.config.t1 is not None:
            kwargs["t1"] = self.config.t1
        self.stack = factory(self.config.sip_host, self.config.sip_port, **kwargs)
        await self.stack.start()
        self.config.sip_port = self.stack.port
        transports = getattr(self.stack, "_transports", None)
        if transports is not None:   # datagrams read in one go: their frames leave in one write
            transports.batch_hooks = (self.batch_begin, self.batch_end)
        if self.config.tls_port is not None:
            await self._start_tls_admin()   # before the plain port: its accepting means "ready"
        self._admin_server = await self.loop.create_server(
            lambda: ControlConnection(self), self.config.admin_host, self.config.admin_port)
        sock = self._admin_server.sockets[0]
        self.config.admin_port = sock.getsockname()[1]
        logger.info("drachtio server listening for apps on %s:%d, SIP on %s", self.config.admin_host,
                    self.config.admin_port, self.hostports())

    async def _start_tls_admin(self) -> None:
        """The admin port for apps that connect with TLS (drachtio-server's admin ``tls-port``)."""
        import ssl
        if not self.config.tls_cert:
            raise ValueError("a TLS admin port needs a certificate (tls_cert)")
        ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        ctx.load_cert_chain(self.config.tls_cert, self.config.tls_key or None)
        assert self.loop is not None
        self._tls_admin_server = await self.loop.create_server(
            lambda: ControlConnection(self), self.config.admin_host, self.config.tls_port, ssl=ctx)
        self.config.tls_port = self._tls_admin_server.sockets[0].getsockname()[1]
        logger.info("drachtio server listening for apps over TLS on %s:%d", self.config.admin_host,
                    self.config.tls_port)

    async def stop(self) -> None:
        """Close the admin port, every app connection and the SIP stack."""
        for server in (self._admin_server, self._tls_admin_server):
            if server is not None:
                server.close()
        self.outbound.close()
        for conn in list(self.connections):
            conn.close()
        for inc in list(self.incoming.values()):
            if inc.expiry:
                inc.expiry.cancel()
        for server in (self._admin_server, self._tls_admin_server):
            if server is None:
                continue
            try:
                await asyncio.wait_for(server.wait_closed(), 2.0)
            except Exception as err:  # noqa: BLE001 - shutting down anyway
                logger.debug("admin listener close: %r", err)
        if self.stack is not None:
            self.stack.close()
        if self.timers is not None:
            self.timers.close()
        logger.info("drachtio server stopped")

    # ------------------------------------------------------------------ addresses
    @property
    def host(self) -> str:
        """The SIP host put in Via/Contact: ``external_host`` or else ``sip_host``."""
        return self.config.external_host or self.config.sip_host

    @property
    def port(self) -> int:
        """The SIP port."""
        return self.config.sip_port

    def hostports(self) -> str:
        """``transport/host:port`` for each transport, comma separated (told to apps)."""
        return ",".join(f"{t}/{self.host}:{self.port}" for t in self.config.transports)

    def our_contact(self, transport: str = "udp") -> str:
        """Our Contact header value for ``transport``."""
        suffix = f";transport={transport}" if transport in ("tcp", "tls") else ""
        return f"<sip:{self.host}:{self.port}{suffix}>"

    def _subst_localhost(self, value: str) -> str:
        if "localhost" not in value.lower():
            return value
        return _LOCALHOST.sub(f"@{self.host}:{self.port}", value)

    def _is_us(self, host: str | None, port: int | None) -> bool:
        if not host:
            return False
        hosts = {self.config.sip_host, self.host}
        if self.config.sip_host in ("127.0.0.1", "0.0.0.0"):
            hosts |= {"127.0.0.1", "localhost"}
        return host in hosts and (port or 5060) == self.port

    def _target(self, uri: str, default_transport: str = "udp") -> Any:
        """Target for a SIP URI (host, port with defaults, transport param)."""
        try:
            u = parse_uri(uri.strip().strip("<>")) if uri else None
            if u is None or u.get("scheme") not in ("sip", "sips") or not u.get("host"):
                return None
            params = u.get("params") or {}
            transport = (params.get("transport") or default_transport or "udp").lower()
            port = u.get("port") or (5061 if u.get("scheme") == "sips" else 5060)
            port = int(port) if isinstance(port, int) or (str(port).isascii() and str(port).isdigit()
                                                          and len(str(port)) <= 5) else 0
        except (ValueError, TypeError, LookupError) as err:
            # an unusable URI from the network (a port of Unicode digits, 5000 digits ...)
            logger.debug("unusable SIP URI %r: %s", uri[:200], err)
            return None
        if not 0 < port < 65536:
            return None
        return Target(transport, u["host"], port)

    # ------------------------------------------------------------------ connections
    def connection_lost(self, conn: ControlConnection) -> None:
        """Forget the connection's routes; its dialogs stay (their requests get 481)."""
        self.connections.discard(conn)
        self.router.remove_connection(conn)
        self.outbound.connection_lost(conn)
        for job in list(self._proxy_by_stx.values()):
            if job.conn is conn:
                job.full_response = False

    # ------------------------------------------------------------------ app frames
    def handle_sip_command(self, conn: ControlConnection, frame: wire.Frame) -> None:
        """A ``sip`` frame from an app (PROTOCOL.md 3.1 classification)."""
        text = frame.sip or ""
        txn_id, dlg_field = frame.field(2), frame.field(3)
        start, headers, body = split_app_message(text)
        if start.startswith("SIP/"):
            if not txn_id:
                conn.reply(frame.msg_id, "NO", ["transaction id missing"])
                conn.close()
                return
            self._app_response(conn, frame, txn_id, start, AppHeaders(headers), body)
            return
        app = AppHeaders(headers)
        if dlg_field:
            dlg = self.dialogs.get(dlg_field)
            if dlg is None:
                if start.upper().startswith("ACK ") and self._failed_invite(dlg_field):
                    conn.reply(frame.msg_id, "NOK", [ACK_NON_SUCCESS])
                else:
                    conn.reply(frame.msg_id, "NOK",
                               ["Server error: unable to find dialog for dialog id provided"])
                return
            self._app_request_in_dialog(conn, frame, dlg, start, app, body)
            return
        if txn_id:
            if start.upper().startswith("CANCEL"):
                self._app_cancel(conn, frame, txn_id, app)
            else:
                logger.warning("%s: request other than CANCEL with a txnId: %s", conn.name, start)
                conn.reply(frame.msg_id, "NOK", [f"unable to cancel unknown transaction id: {txn_id}"])
            return
        dlg = self.dialogs.by_call_id(app.first("call-id"))
        if dlg is not None:
            self._app_request_in_dialog(conn, frame, dlg, start, app, body)
            return
        self._app_request(conn, frame, start, app, body)

    def _failed_invite(self, dlg_id: str) -> bool:
        assert self.loop is not None
        now = self.loop.time()
        for k, t in list(self._failed_invites.items()):
            if now - t > FAILED_INVITE_MEMORY:
                del self._failed_invites[k]
        return dlg_id in self._failed_invites
