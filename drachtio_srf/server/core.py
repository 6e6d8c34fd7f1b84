"""The drachtio side of the embedded server: apps, routes, transactions ids, dialogs, proxy.

It sits between the admin connections (``control.py``) and the SIP stack (``sipstack.py``): it turns
new requests from the network into ``sip`` frames for the app that routed the method, completes
the responses and requests the apps send (PROTOCOL.md 4.3, 4.4, 4.8, 5.x), echoes them, routes
in-dialog traffic to the owning connection, answers 481/503 itself and proxies on request.
Everything runs on one asyncio loop: no locks.
"""
from __future__ import annotations

import asyncio
import logging
import random
import re
import uuid
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from typing import Any

from drachtio_srf import wire
from drachtio_srf.server import frames
from drachtio_srf.server.control import ControlConnection, Router
from drachtio_srf.server.dialogs import Dialog, DialogTable, dialog_id
from drachtio_srf.server.outbound import OutboundConnector
from drachtio_srf.server.proxy import ProxyBranch, ProxyJob, ProxyMixin  # noqa: F401 - re-exported
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
from drachtio_srf.server.timers import Timer, TimerWheel
from drachtio_srf.sip import SipMessage, parse_uri, reason_phrase

logger = logging.getLogger(__name__)

DEFAULT_VERSION = "v0.9.10"
"""drachtio-server version the server reports to apps by default."""
#: methods that can reach an app as a new request (PROTOCOL.md 5.1)
NEW_REQUEST_METHODS = frozenset(
    ("INVITE", "REGISTER", "MESSAGE", "OPTIONS", "INFO", "NOTIFY", "SUBSCRIBE", "PUBLISH"))
"""Methods that can reach an app as a new request (PROTOCOL.md 5.1)."""
#: headers of the app's CANCEL that are ignored
CANCEL_IGNORED = DISCARDED | {"from", "to", "contact", "p-asserted-identity", "call-id", "cseq",
                              "max-forwards"}
"""Headers of an app's CANCEL that are ignored (the server builds them from the INVITE)."""
PENDING_REQUEST_TIMEOUT = 64.0   # seconds an app has to answer a new request
"""Seconds an app has to answer a new request finally before the server gives up on it."""
#: bytes of frames not yet taken by an app above which it gets no new request (503 instead)
MAX_APP_BACKLOG = 4 * 1024 * 1024
"""Bytes of frames an app has not taken yet above which it gets no new request (503 instead)."""
ACK_NON_SUCCESS = ("Server error: ACK for non-success final response is automatically generated "
                   "by server")
"""Error text sent to an app that tries to ACK a non-2xx final response (the server ACKs those)."""
FAILED_INVITE_MEMORY = 32.0
"""Seconds a dialog id of a failed INVITE is remembered, to answer a late ACK from the app."""

_STATUS_LINE = re.compile(r"^SIP/2\.0\s+(\d{3})(?:\s+(.*))?$", re.IGNORECASE)
_CSEQ_UPDATE = re.compile(r"^\s*\d+\s*UPDATE\b", re.IGNORECASE)
#: headers of an app's response the server sets itself (the rest are copied)
_RESPONSE_SKIPPED = DISCARDED | {"from", "to", "call-id", "cseq", "contact", "content-type"}
_RPORT_SET = re.compile(r";\s*rport\s*=\s*(\d+)", re.IGNORECASE)
_VIA_HOST = re.compile(r"\s*SIP\s*/\s*2\.0\s*/\s*\S+\s+(\[[^\]]+\]|[^;:\s]+)", re.IGNORECASE)


def _via_host(value: str) -> str | None:
    """The sent-by host of a Via value (brackets of an IPv6 reference removed)."""
    m = _VIA_HOST.match(value)
    return m.group(1).strip("[]") if m else None


def _sdp_type(body: str | None) -> str | None:
    """``application/sdp`` for a body that is an SDP (the type the app may leave out), else None."""
    return "application/sdp" if body and body.lstrip().startswith("v=0") else None


# --------------------------------------------------------------------------- configuration, records

@dataclass
class ServerConfig:
    """Options of the embedded server (the CLI and EmbeddedServer fill it in)."""

    admin_host: str = "127.0.0.1"
    """Address of the admin port apps connect to."""
    admin_port: int = 9022
    """Admin port (0: any free port; the bound one after start)."""
    secret: str = "cymru"
    """Shared secret apps authenticate with."""
    sip_host: str = "127.0.0.1"
    """Address the SIP transports bind."""
    sip_port: int = 5060
    """SIP port (0: any free port; the bound one after start)."""
    transports: tuple[str, ...] = ("udp", "tcp")
    """SIP transports to open (``'udp'``, ``'tcp'``)."""
    external_host: str | None = None
    """Public address put in Via/Contact instead of ``sip_host`` (None: ``sip_host``)."""
    version: str = DEFAULT_VERSION
    """Version string reported to apps when they authenticate."""
    outbound_proxy: str | None = None
    """Proxy URI for requests from apps that name none themselves (None: sent directly)."""
    cdrs: bool = False
    """True to send CDR frames to the apps."""
    t1: float | None = None            # SIP timer T1 in seconds (None: the stack's default 0.5)
    """SIP timer T1 in seconds (None: the stack's default 0.5)."""
    #: method (or '*') -> 'tcp://host:port': new requests the server delivers by dialling the app
    outbound: dict[str, Any] = field(default_factory=dict)
    """Method (or ``'*'``) to ``tcp://host:port``: new requests the server delivers by dialling the app."""
    tls_port: int | None = None        # admin port for apps connecting with TLS (0: any free port)
    """Admin port for apps connecting with TLS (None: no TLS; 0: any free port)."""
    tls_cert: str | None = None        # PEM certificate (chain) for the TLS admin port
    """PEM certificate (chain) for the TLS admin port."""
    tls_key: str | None = None         # PEM private key for it (None: inside tls_cert)
    """PEM private key for the TLS admin port (None: inside ``tls_cert``)."""
    #: seconds kept between an echo and the first frame that answers it (0, the default: forwarded
    #: at once, as drachtio-server does; a positive value is for experiments)
    echo_gap: float = 0.0
    """Seconds between an echo and the first frame answering it (0: forwarded at once)."""
    #: overload: new requests get 503 + Retry-After while this many requests wait for an app's
    #: final answer (sofia-sip's "proceeding queue full"), or the server holds ``max_transactions``
    #: server transactions, or the app's connection has ``MAX_APP_BACKLOG`` bytes unsent
    max_pending: int = 2000
    """Requests waiting for an app's final answer above which new requests get 503."""
    max_transactions: int = 200_000
    """Server transactions held above which new requests get 503."""
    retry_after: int = 5
    """Retry-After seconds of an overload 503."""
    #: seconds an app connection has to authenticate before it is closed (0: no limit)
    auth_timeout: float = 5.0
    """Seconds an app connection has to authenticate before it is closed (0: no limit)."""


@dataclass(eq=False)
class Incoming:
    """A request from the network delivered to an app and not yet finally answered."""

    txn_id: str
    """Transaction id given to the app."""
    stx: Any
    """The SIP server transaction of the request."""
    request: SipMessage
    """The request as received."""
    source: Any
    """Where the request came from (a ``Source``)."""
    conn: ControlConnection
    """The app connection the request was delivered to."""
    method: str
    """Method of the request."""
    dialog: Dialog | None = None    # set for requests inside a dialog
    """The dialog, for a request inside one (None otherwise)."""
    dialog_id: str = ""              # the (future) dialog id for INVITE/SUBSCRIBE
    """The dialog id the request will create (INVITE/SUBSCRIBE), else empty."""
    to_tag: str | None = None
    """Our To tag for the responses (None until chosen)."""
    responded: bool = False          # a response > 100 was sent
    """True once a response above 100 was sent."""
    final: bool = False
    """True once a final response was sent."""
    rseq: int = 0
    """Last RSeq used for a reliable provisional response."""
    expiry: asyncio.TimerHandle | Timer | None = None
    """Timer that gives up on the request when the app does not answer in time."""
    delivered: bool = True           # False while an outbound connection to the app is being made
    """False while an outbound connection to the app is being made."""


@dataclass(eq=False)
class Outgoing:
    """A request an app sent, waiting for its responses."""

    txn_id: str
    """Transaction id given to the app for this request."""
    conn: ControlConnection
    """The app connection that sent the request."""
    method: str
    """Method of the request."""
    request: SipMessage
    """The request as sent to the network."""
    target: Any
    """Where the request is sent (a ``Target``)."""
    dialog: Dialog | None = None
    """The dialog the request is sent in (None outside a dialog)."""
    dialog_id: str = ""
    """The dialog id the request may create (INVITE/SUBSCRIBE), else empty."""
    ctx: Any = None
    """The SIP client transaction that sends the request (None until sent)."""
    final: bool = False
    """True once a final response was received."""
    cseq: int = 0
    """CSeq number of the request."""
    echo_at: float = 0.0             # loop time the echo was sent
    """Loop time the echo of the request was sent to the app."""
    held: list[str] = field(default_factory=list)   # response frames waiting for echo_gap
    """Response frames held back until ``echo_gap`` has passed."""


# --------------------------------------------------------------------------- the core

class Core(ProxyMixin):
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
        from drachtio_srf.server.sipstack import Target
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

    # ------------------------------------------------------------------ output batching
    def batch_begin(self) -> None:
        """Input is being handled: hold frames to apps until batch_end()."""
        self._batching += 1

    def batch_end(self) -> None:
        """End of handling a batch of input: flush the held frames once the outermost batch ends."""
        self._batching -= 1
        if not self._batching and self._dirty:
            self.flush_output()

    def queue_output(self, conn: ControlConnection) -> None:
        """``conn`` has frames to write: at the end of the batch, else at the end of this loop pass."""
        self._dirty.append(conn)
        if not self._batching and not self._flush_scheduled:
            self._flush_scheduled = True
            asyncio.get_running_loop().call_soon(self.flush_output)

    def flush_output(self) -> None:
        """Write what every connection has queued."""
        self._flush_scheduled = False
        dirty, self._dirty = self._dirty, []
        for conn in dirty:
            conn._flush()

    # ------------------------------------------------------------------ connections
    def connection_lost(self, conn: ControlConnection) -> None:
        """Forget the connection's routes; its dialogs stay (their requests get 481)."""
        self.connections.discard(conn)
        self.router.remove_connection(conn)
        self.outbound.connection_lost(conn)
        for job in list(self._proxy_by_stx.values()):
            if job.conn is conn:
                job.full_response = False

    # ------------------------------------------------------------------ frames to apps
    def _send_sip_event(self, conn: ControlConnection, msg: SipMessage, *, source: str, protocol: str,
                        address: str, port: int, txn_id: str, dialog_id: str = "",
                        received_on: tuple[str, int] | None = None, text: str | None = None,
                        behind: Dialog | None = None) -> None:
        text = text if text is not None else text_of(msg)
        payload = frames.sip_event(frames.new_id(), source=source, nbytes=nbytes(text), protocol=protocol,
                                   address=address, port=port, time=frames.stack_time(), txn_id=txn_id,
                                   dialog_id=dialog_id, received_on=received_on, sip_text=text)
        if behind is not None:
            extra = behind.extra
            held_out = extra.get("held_out")
            if held_out is not None and held_out.held and held_out.conn is conn:
                # the response that created this dialog is still held (echo_gap): keep the order, e.g.
                # a NOTIFY sent right after the 202 to a SUBSCRIBE must reach the app after the 202
                held_out.held.append(payload)
                return
            if "echo_at" in extra and self.config.echo_gap > 0 and self._hold_after_echo(conn, behind, payload):
                return
        conn.send(payload)

    def _hold_after_echo(self, conn: ControlConnection, dlg: Dialog, payload: str) -> bool:
        """Keep ``echo_gap`` between the echo of the app's 2xx that made a UAS dialog and the first
        request in it (ACK, BYE ...): a client resolves its dialog when that echo arrives, and a BYE
        in the same TCP read would reach the dialog before the app listens to it (with sipp's
        immediate BYE the Node app lost dialogs this way). Returns True if the frame was held."""
        extra = dlg.extra
        held: list[str] | None = extra.get("held_in")
        if held:
            held.append(payload)
            return True
        assert self.loop is not None
        wait = extra["echo_at"] + self.config.echo_gap - self.loop.time()
        if wait <= 0:
            del extra["echo_at"]
            return False
        extra["held_in"] = [payload]

        def release() -> None:
            frames_out = extra.pop("held_in", None) or []
            extra.pop("echo_at", None)
            for p in frames_out:
                conn.send(p)

        self.loop.call_later(wait, release)
        return True

    def _echo_request(self, conn: ControlConnection, msg_id: str, txn_id: str, msg: SipMessage,
                      transport: str) -> None:
        text = str(msg)
        conn.send(wire.echo_request(wire.new_id(), msg_id, nbytes=nbytes(text), protocol=transport,
                                    address=self.host, port=self.port, time=wire.stack_time(),
                                    txn_id=txn_id, sip_text=text))

    def _cdr(self, kind: str, source: str, msg: SipMessage | str, extra: str | None = None) -> None:
        """Send a CDR event to one connection (round-robin) that routed ``cdr:<kind>``, if enabled."""
        if not self.config.cdrs:
            return
        conn = self.router.pick(f"cdr:{kind}")
        if conn is not None:
            conn.send(wire.cdr(wire.new_id(), kind, source, wire.stack_time(), extra,
                               msg if isinstance(msg, str) else str(msg)))

    # ------------------------------------------------------------------ StackHandler
    def on_request(self, stx: Any, msg: SipMessage, source: Any) -> None:
        """StackHandler: a request from the network (``stx`` None for an ACK outside a transaction)."""
        try:
            self._fix_via(msg, source)
            if stx is None:
                if msg.method == "ACK":
                    self._on_ack(msg, source)
                return
            self._on_request(stx, msg, source)
        except Exception:
            logger.exception("error handling %s from %s:%s", msg.method, source.address, source.port)
            if stx is not None and msg.method != "ACK" and not getattr(stx, "final_sent", False):
                try:
                    stx.respond(self._simple_response(msg, 500))
                except Exception:
                    logger.exception("could not send 500")

    def on_cancel(self, invite_stx: Any, cancel: SipMessage, source: Any) -> int:
        """StackHandler: a CANCEL matching ``invite_stx``; returns the status to answer it with."""
        try:
            return self._on_cancel(invite_stx, cancel, source)
        except Exception:
            logger.exception("error handling CANCEL")
            return 481

    def on_ack_timeout(self, stx: Any, response: SipMessage) -> None:
        """StackHandler: no ACK came for a 2xx, so the server ends the dialog with a BYE."""
        try:
            dlg = self.dialogs.find(response.call_id, response.to_tag, response.from_tag)
            if dlg is None:
                logger.debug("ACK timeout for %s: no dialog (proxied or gone)", response.call_id)
                return
            logger.warning("no ACK for the 2xx of dialog %s: sending BYE", dlg.id)
            self._server_bye(dlg, 'SIP ;cause=200 ;text="ACK timeout"')
        except Exception:
            logger.exception("error handling ACK timeout")

    def on_2xx_retransmission(self, response: SipMessage, source: Any) -> None:
        """StackHandler: a retransmitted 2xx of an INVITE; resend the dialog's last ACK."""
        try:
            dlg = self.dialogs.find(response.call_id, response.from_tag, response.to_tag)
            cseq = response.cseq
            if dlg is not None and dlg.last_ack is not None and cseq is not None \
                    and dlg.last_ack.cseq.seq == cseq.seq:
                logger.debug("2xx retransmission in %s: resending ACK", dlg.id)
                self.stack.send_stateless(SipMessage(dlg.extra["last_ack_text"]), dlg.last_ack_target)
        except Exception:
            logger.exception("error handling a 2xx retransmission")

    # ------------------------------------------------------------------ network -> app
    def _fix_via(self, msg: SipMessage, source: Any) -> None:
        """Force rport on the top Via (``;rport=<port>``, ``;received=`` if needed), as the server does."""
        lines = msg.get_all("via")
        if not lines:
            return
        first = lines[0]
        if "," not in first and "received=" not in first:
            # the usual case, one Via value per line and the SIP stack already stamped it
            m = _RPORT_SET.search(first)
            if m is not None and (m.group(1) == str(source.port) and _via_host(first) == source.address):
                return
        values = split_values(first)
        top = values[0]
        changed = False
        if not re.search(r";\s*rport\s*=\s*\d+", top, re.IGNORECASE):
            if re.search(r";\s*rport\b", top, re.IGNORECASE):
                top = re.sub(r";\s*rport\b", f";rport={source.port}", top, count=1, flags=re.IGNORECASE)
            else:
                top += f";rport={source.port}"
            changed = True
        m = re.match(r"\s*SIP\s*/\s*2\.0\s*/\s*\S+\s+(\[[^\]]+\]|[^;:\s]+)", top, re.IGNORECASE)
        if m and m.group(1).strip("[]") != source.address and ";received=" not in top.lower():
            top += f";received={source.address}"
            changed = True
        if changed:
            values[0] = top
            lines[0] = ", ".join(values)
            msg.replace("Via", ", ".join(lines))

    def _simple_response(self, req: SipMessage, status: int, reason: str | None = None,
                         to_tag: str | None = None, extra: Iterable[tuple[str, str]] = ()) -> SipMessage:
        """A response made by the server itself (481, 487, 503 ...)."""
        hdrs = [("Via", v) for v in req.get_all("via")]
        to = req.get("to") or ""
        if status > 100 and not req.to_tag:
            to = with_tag(to, to_tag or new_tag())
        hdrs += [("From", req.get("from") or ""), ("To", to), ("Call-ID", req.call_id or ""),
                 ("CSeq", req.get("cseq") or "")]
        hdrs += list(extra)
        return build_message(f"SIP/2.0 {status} {reason or reason_phrase(status)}", hdrs)

    def _reject(self, stx: Any, msg: SipMessage, status: int) -> None:
        logger.info("answering %s %s from the server: %d", msg.method, msg.call_id, status)
        stx.respond(self._simple_response(msg, status))

    def _on_request(self, stx: Any, msg: SipMessage, source: Any) -> None:
        method = msg.method or ""
        call_id, from_tag, to_tag = msg.call_id, msg.from_tag, msg.to_tag
        if to_tag:
            if self._is_record_routed_to_us(msg):
                self._proxy_in_dialog(stx, msg, source)
                return
            dlg = self.dialogs.find(call_id, to_tag, from_tag)
            if dlg is not None and dlg.id in self._early_notifies:
                self._early_notifies[dlg.id].append((stx, msg, source))   # still before the 2xx
                return
            if dlg is not None:
                self._deliver_in_dialog(stx, msg, source, dlg)
                return
            if method == "UPDATE" and self._early_update(stx, msg, source):
                return
            if method == "NOTIFY" and self._early_notify(stx, msg, source):
                return
            # drachtio-server: a stale INVITE, BYE or UPDATE gets 481; other methods that may start
            # something (NOTIFY, INFO, SUBSCRIBE, ...) go to the app as new requests (below); the
            # rest (ACK, PRACK, REFER, ...) are dropped
            if method == "INVITE" or method not in NEW_REQUEST_METHODS:
                if method in ("BYE", "UPDATE", "INVITE"):
                    self._reject(stx, msg, 481)
                else:
                    logger.info("discarding %s for no known dialog", method)
                return
        elif method not in NEW_REQUEST_METHODS:
            if method in ("BYE", "UPDATE"):
                self._reject(stx, msg, 481)
            else:
                logger.info("discarding %s outside a dialog", method)
            return
        if method == "INVITE":
            self._cdr("attempt", "network", msg)
        if self._overloaded():
            self._reject_overloaded(stx, msg)
            return
        outbound = self.outbound.target_for(method)
        conn = self.outbound.new_connection() if outbound else self.router.pick(method.lower())
        if conn is None:
            logger.info("no app routed %s: 503", method)
            resp = self._simple_response(msg, 503)
            stx.respond(resp)
            if method == "INVITE":
                self._cdr("stop", "application", resp, "call-rejected")
            return
        if conn.backlog > MAX_APP_BACKLOG:
            logger.warning("%s: %d bytes not taken by the app: %s answered 503", conn.name,
                           conn.backlog, method)
            self._reject_overloaded(stx, msg)
            return
        txn_id = wire.new_id()
        inc = Incoming(txn_id, stx, msg, source, conn, method)
        if method in ("INVITE", "SUBSCRIBE") and call_id and from_tag:
            inc.dialog_id = dialog_id(call_id, from_tag)
        self._add_incoming(inc)
        if outbound:
            self.outbound.start(conn, inc, outbound)
            return
        self.deliver_new_request(inc)

    def _overloaded(self) -> bool:
        """Too much held for new work: requests waiting for apps, or server transactions."""
        cfg = self.config
        if len(self.incoming) >= cfg.max_pending:
            return True
        count = getattr(self.stack, "server_transaction_count", 0)
        return bool(count >= cfg.max_transactions)

    def _reject_overloaded(self, stx: Any, msg: SipMessage) -> None:
        """503 with Retry-After for a new request the server cannot take now."""
        self._overload_rejects += 1
        if self._overload_rejects == 1 or self._overload_rejects % 1000 == 0:
            logger.warning("overloaded (%d pending for apps, %d transactions): %d new request(s) "
                           "answered 503 so far", len(self.incoming),
                           getattr(self.stack, "server_transaction_count", 0), self._overload_rejects)
        resp = self._simple_response(msg, 503, extra=[("Retry-After", str(self.config.retry_after))])
        self._respond_safely(stx, resp)
        if msg.method == "INVITE":
            self._cdr("stop", "application", resp, "call-rejected")

    def deliver_new_request(self, inc: Incoming) -> None:
        """Send a new request from the network to its app (3.3 case a)."""
        src = inc.source
        self._send_sip_event(inc.conn, inc.request, source="network", protocol=src.transport,
                             address=src.address, port=src.port, txn_id=inc.txn_id,
                             received_on=(src.local[0], src.local[1]))

    def fail_incoming(self, inc: Incoming, status: int) -> None:
        """Answer a pending new request from the server itself (e.g. 480: app unreachable)."""
        if inc.final or getattr(inc.stx, "final_sent", False):
            return
        inc.final = True
        self._drop_incoming(inc)
        resp = self._simple_response(inc.request, status)
        logger.info("answering %s %s from the server: %d", inc.method, inc.request.call_id, status)
        self._respond_safely(inc.stx, resp)
        if inc.method == "INVITE":
            self._cdr("stop", "application", resp, "call-rejected")

    def _add_incoming(self, inc: Incoming) -> None:
        self.incoming[inc.txn_id] = inc
        self._incoming_by_stx[id(inc.stx)] = inc
        if self.timers is not None:
            inc.expiry = self.timers.call_later(PENDING_REQUEST_TIMEOUT, self._expire_incoming, inc)

    def _drop_incoming(self, inc: Incoming) -> None:
        self.incoming.pop(inc.txn_id, None)
        if self._incoming_by_stx.get(id(inc.stx)) is inc:
            del self._incoming_by_stx[id(inc.stx)]
        if inc.expiry is not None:
            inc.expiry.cancel()
            inc.expiry = None

    def _expire_incoming(self, inc: Incoming) -> None:
        if not inc.responded and not inc.final:
            logger.info("app did not answer %s %s in time: forgetting it", inc.method, inc.txn_id)
            self._drop_incoming(inc)

    def _deliver_in_dialog(self, stx: Any, msg: SipMessage, source: Any, dlg: Dialog) -> None:
        method = msg.method or ""
        if dlg.owner is None or dlg.owner.closed:
            logger.info("%s for dialog %s whose app is gone: 481", method, dlg.id)
            if method == "BYE":
                self.dialogs.remove(dlg)
            self._reject(stx, msg, 481)
            return
        if method == "PRACK" and not self._prack_matches(dlg, msg):
            logger.info("PRACK in %s matches no reliable provisional response: 481", dlg.id)
            self._reject(stx, msg, 481)
            return
        cseq = msg.cseq
        if cseq is not None:
            dlg.remote_cseq = cseq.seq
        if method == "BYE":
            self.dialogs.remove(dlg)
            if dlg.kind == "invite":
                self._cdr("stop", "network", msg, "normal-release")
        txn_id = wire.new_id()
        inc = Incoming(txn_id, stx, msg, source, dlg.owner, method, dialog=dlg, dialog_id=dlg.id,
                       to_tag=dlg.local_tag)
        self._add_incoming(inc)
        self._send_sip_event(dlg.owner, msg, source="network", protocol=source.transport,
                             address=source.address, port=source.port, txn_id=txn_id,
                             dialog_id=dlg.id, behind=dlg)

    def _on_ack(self, msg: SipMessage, source: Any) -> None:
        if self._is_record_routed_to_us(msg) or (
                self.dialogs.find(msg.call_id, msg.to_tag, msg.from_tag) is None
                and msg.call_id in self._proxied_calls):
            self._proxy_ack(msg)
            return
        dlg = self.dialogs.find(msg.call_id, msg.to_tag, msg.from_tag)
        if dlg is None:
            logger.debug("ACK for no known dialog (%s): dropped", msg.call_id)
            return
        if dlg.owner is None or dlg.owner.closed:
            return
        cseq = msg.cseq
        if dlg.role == "uas" and not dlg.initial_acked and cseq is not None \
                and cseq.seq == dlg.invite_cseq and dlg.invite_txn_id:
            txn_id = dlg.invite_txn_id
            dlg.initial_acked = True
        else:
            txn_id = wire.new_id()
        self._send_sip_event(dlg.owner, msg, source="network", protocol="", address=source.address,
                             port=source.port, txn_id=txn_id, dialog_id=dlg.id, behind=dlg)

    def _on_cancel(self, invite_stx: Any, cancel: SipMessage, source: Any) -> int:
        if invite_stx is None:
            return 481
        job = self._proxy_by_stx.get(id(invite_stx))
        if job is not None:
            self._proxy_cancel(job)
            return 200
        inc = self._incoming_by_stx.get(id(invite_stx))
        if inc is None or inc.final or getattr(invite_stx, "final_sent", False):
            return 481
        if inc.to_tag is None:
            inc.to_tag = new_tag()
        resp = self._simple_response(inc.request, 487, to_tag=inc.to_tag)
        inc.final = True
        self._drop_incoming(inc)
        if inc.dialog is not None and not inc.dialog.confirmed:
            self.dialogs.remove(inc.dialog)
        elif inc.dialog_id:
            early = self.dialogs.get(inc.dialog_id)
            if early is not None and not early.confirmed:
                self.dialogs.remove(early)
        # the stack answers the CANCEL when we return: the 487 goes out right after it
        assert self.loop is not None
        self.loop.call_soon(self._respond_safely, invite_stx, resp)
        self._cdr("stop", "network", cancel, "call-canceled")
        if not inc.delivered:
            return 200
        self._send_sip_event(inc.conn, cancel, source="network", protocol=source.transport,
                             address=source.address, port=source.port, txn_id=inc.txn_id,
                             dialog_id=inc.dialog_id if inc.responded else "")
        return 200

    @staticmethod
    def _respond_safely(stx: Any, resp: SipMessage) -> None:
        try:
            stx.respond(resp)
        except Exception:
            logger.exception("could not send %s", resp.status)

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

    # ---- responses from the app
    def _app_response(self, conn: ControlConnection, frame: wire.Frame, txn_id: str, start: str,
                      app: AppHeaders, body: str) -> None:
        upd = self._early_updates.get(txn_id)
        if upd is not None and _CSEQ_UPDATE.match(app.first("cseq") or ""):
            self._answer_early_update(conn, frame, upd, start, app, body)
            return
        inc = self.incoming.get(txn_id)
        if inc is None or inc.final:
            cseq = app.first("cseq") or ""
            if re.match(r"^\s*\d+\s+CANCEL\b", cseq, re.IGNORECASE):
                text = "200 OK to incoming CANCEL is automatically generated by the stack"
            else:
                text = "Response not sent due to unknown transaction"
            conn.reply(frame.msg_id, "NOK", [text])
            return
        m = _STATUS_LINE.match(start)
        if not m:
            conn.reply(frame.msg_id, "NOK", ["Unknown server error sending response"])
            return
        status = int(m.group(1))
        reason = (m.group(2) or "").strip() or reason_phrase(status)
        req = inc.request
        method = inc.method
        if getattr(inc.stx, "final_sent", False):
            conn.reply(frame.msg_id, "NOK", ["Response not sent due to unknown transaction"])
            return
        reliable = False
        if method == "INVITE" and 100 < status < 200:
            require = ",".join(app.all("require")).lower()
            if "100rel" in require:
                offered = ",".join([req.get("supported") or "", req.get("require") or ""]).lower()
                if "100rel" not in offered:
                    conn.reply(frame.msg_id, "NOK", ["Remote endpoint does not support 100rel"])
                    return
                reliable = True
        resp = self._complete_response(inc, status, reason, app, body, reliable)
        try:
            inc.stx.respond(resp)
        except Exception as err:  # noqa: BLE001 - reported to the app
            logger.warning("could not send %d for %s: %s", status, txn_id, err)
            conn.reply(frame.msg_id, "NOK", ["Unknown server error sending response"])
            return
        if status > 100:
            inc.responded = True
        dlg = inc.dialog
        if dlg is None and inc.dialog_id:
            ok = (200 <= status < 300) if method == "INVITE" else status in (200, 202)
            if ok or reliable:
                dlg = self._uas_dialog(inc, resp, confirmed=ok)
            elif status >= 300:
                early = self.dialogs.get(inc.dialog_id)
                if early is not None and not early.confirmed:
                    self.dialogs.remove(early)
        elif dlg is not None and dlg.id == inc.dialog_id and not dlg.confirmed and 200 <= status < 300:
            dlg.confirmed = True
        elif (dlg is not None and method == "NOTIFY" and dlg.kind == "subscribe" and 200 <= status < 300
              and (req.get("subscription-state") or "").strip().lower().startswith("terminated")):
            self.dialogs.remove(dlg)     # the notifier ended the subscription (RFC 6665 4.1.3)
        if reliable and dlg is not None:
            self._send_reliably(inc, dlg, resp)
        if status >= 200:
            inc.final = True
            self._drop_incoming(inc)
            if dlg is not None and inc.dialog is None and dlg.id == inc.dialog_id and self.loop is not None:
                dlg.extra["echo_at"] = self.loop.time()    # see _hold_after_echo
            if method == "INVITE" and inc.dialog is None:
                if status < 300:
                    self._cdr("start", "application", resp, "uas")
                else:
                    self._cdr("stop", "application", resp, "call-rejected")
        text = str(resp)
        if method == "BYE":
            echo_dialog = ""
        elif inc.dialog is not None:
            echo_dialog = inc.dialog.id
        else:
            echo_dialog = inc.dialog_id
        protocol = "" if (inc.dialog is not None and method != "INVITE") else inc.source.transport
        conn.send(frames.echo_response(frames.new_id(), frame.msg_id, nbytes=nbytes(text),
                                       protocol=protocol, address=inc.source.address,
                                       port=inc.source.port, time=frames.stack_time(), txn_id=txn_id,
                                       dialog_id=echo_dialog, sip_text=text))

    def _complete_response(self, inc: Incoming, status: int, reason: str, app: AppHeaders, body: str,
                           reliable: bool) -> SipMessage:
        """The app's response completed as drachtio-server does (PROTOCOL.md 4.3, 5.2)."""
        req = inc.request
        hdrs: list[tuple[str, str]] = [("Via", v) for v in req.get_all("via")]
        from_v = app.first("from") or req.get("from") or ""
        to_v = app.first("to") or req.get("to") or ""
        if status > 100:
            if inc.to_tag is None:
                inc.to_tag = req.to_tag or tag_of(app.first("to")) or new_tag()
            to_v = with_tag(to_v, inc.to_tag)
        hdrs += [("From", self._subst_localhost(from_v)), ("To", self._subst_localhost(to_v)),
                 ("Call-ID", app.first("call-id") or req.call_id or ""),
                 ("CSeq", app.first("cseq") or req.get("cseq") or "")]
        if 100 < status < 300 and inc.dialog is None:
            hdrs += [("Record-Route", v) for v in req.get_all("record-route")]
        contacts = app.all("contact")
        method = inc.method
        if contacts:
            hdrs += [("Contact", self._subst_localhost(c)) for c in contacts]
        elif status > 100 and method in ("INVITE", "SUBSCRIBE") and (
                200 <= status < 300 or reliable or inc.dialog is not None):
            hdrs.append(("Contact", self.our_contact(inc.source.transport)))
        if reliable:
            inc.rseq += 1
            hdrs.append(("RSeq", str(inc.rseq)))
        ctype = app.first("content-type") or _sdp_type(body)
        if ctype:
            hdrs.append(("Content-Type", ctype))
        for name, value in app.others(_RESPONSE_SKIPPED):
            if name == "P-Asserted-Identity":
                value = self._subst_localhost(value)
            hdrs.append((name, value))
        return build_message(f"SIP/2.0 {status} {reason}", hdrs, body)

    def _uas_dialog(self, inc: Incoming, resp: SipMessage, *, confirmed: bool) -> Dialog:
        req = inc.request
        existing = self.dialogs.get(inc.dialog_id)
        if existing is not None and existing.call_id == req.call_id:
            existing.confirmed = existing.confirmed or confirmed
            return existing
        remote_target = self._contact_uri(req) or f"sip:{inc.source.address}:{inc.source.port}"
        route_set: list[str] = []
        for line in req.get_all("record-route"):
            route_set += split_values(line)
        cseq = req.cseq
        dlg = Dialog(
            id=inc.dialog_id, call_id=req.call_id or "", role="uas",
            kind="invite" if inc.method == "INVITE" else "subscribe",
            local_tag=inc.to_tag or "", remote_tag=req.from_tag or "",
            local_party=resp.get("to") or "", remote_party=req.get("from") or "",
            remote_target=remote_target, route_set=route_set,
            local_contact=resp.get("contact") or self.our_contact(inc.source.transport),
            transport=inc.source.transport, owner=inc.conn,
            local_cseq=random.randint(1, 10_000_000), remote_cseq=cseq.seq if cseq else None,
            invite_txn_id=inc.txn_id, invite_cseq=cseq.seq if cseq else None,
            confirmed=confirmed, source=inc.source)
        self.dialogs.add(dlg)
        return dlg

    # ---- reliable provisional responses (RFC 3262) and UPDATE in an early dialog
    def _send_reliably(self, inc: Incoming, dlg: Dialog, resp: SipMessage) -> None:
        """Retransmit a reliable 1xx (T1, doubling) until its PRACK, a final response or 64*T1."""
        try:
            rseq = int((resp.get("rseq") or "").strip())
        except ValueError:
            return
        cseq = inc.request.cseq
        t1 = float(getattr(self.stack, "t1", 0.5))
        assert self.loop is not None
        loop = self.loop
        state: dict[str, Any] = {"cseq": cseq.seq if cseq else None, "interval": t1,
                                 "deadline": loop.time() + 64 * t1, "handle": None}
        unacked: dict[int, dict[str, Any]] = dlg.extra.setdefault("unacked_1xx", {})
        unacked[rseq] = state

        def again() -> None:
            state["handle"] = None
            if unacked.get(rseq) is not state or inc.final or getattr(inc.stx, "final_sent", False):
                return
            if loop.time() >= state["deadline"]:
                logger.warning("no PRACK for reliable %s (RSeq %d) in %s", resp.status, rseq, dlg.id)
                return
            self._respond_safely(inc.stx, resp)
            state["interval"] *= 2
            state["handle"] = loop.call_later(state["interval"], again)

        state["handle"] = loop.call_later(t1, again)

    @staticmethod
    def _prack_matches(dlg: Dialog, msg: SipMessage) -> bool:
        """Does the PRACK's RAck acknowledge an unacknowledged reliable 1xx of ``dlg``? (forgets it)"""
        unacked = dlg.extra.get("unacked_1xx")
        rack = (msg.get("rack") or "").split()
        if not unacked or len(rack) < 3:
            return False
        try:
            rseq, seq = int(rack[0]), int(rack[1])
        except ValueError:
            return False
        state = unacked.get(rseq)
        if state is None or state["cseq"] != seq or rack[2].upper() != "INVITE":
            return False
        del unacked[rseq]
        if state["handle"] is not None:
            state["handle"].cancel()
        return True

    def _early_update(self, stx: Any, msg: SipMessage, source: Any) -> bool:
        """An UPDATE in the early dialog of an unanswered INVITE (3.3 case c): to the INVITE's app."""
        call_id, from_tag, to_tag = msg.call_id, msg.from_tag, msg.to_tag
        found: tuple[ControlConnection, str, str] | None = None
        for inc in self.incoming.values():
            if (inc.method == "INVITE" and inc.dialog is None and not inc.final
                    and inc.request.call_id == call_id and inc.to_tag == to_tag
                    and inc.request.from_tag == from_tag):
                found = (inc.conn, inc.txn_id, inc.dialog_id)
                break
        if found is None:
            for out in self.outgoing.values():
                if (out.method == "INVITE" and out.dialog is None and not out.final
                        and out.request.call_id == call_id and out.request.from_tag == to_tag):
                    found = (out.conn, out.txn_id, out.dialog_id)
                    break
        if found is None or found[0].closed:
            return False
        conn, invite_txn, dlg_id = found
        upd = Incoming(invite_txn, stx, msg, source, conn, "UPDATE", dialog_id=dlg_id, to_tag=to_tag)
        old = self._early_updates.get(invite_txn)
        if old is not None and old.expiry is not None:
            old.expiry.cancel()
        self._early_updates[invite_txn] = upd
        if self.loop is not None:
            upd.expiry = self.loop.call_later(PENDING_REQUEST_TIMEOUT, self._forget_early_update, upd)
        self._send_sip_event(conn, msg, source="network", protocol=source.transport,
                             address=source.address, port=source.port, txn_id=invite_txn,
                             dialog_id=dlg_id)
        return True

    def _early_notify(self, stx: Any, msg: SipMessage, source: Any) -> bool:
        """A NOTIFY that overtook the final response to the app's SUBSCRIBE (RFC 6665 4.1.2.4).

        It belongs to the dialog the SUBSCRIBE is creating: the dialog is made from the NOTIFY now,
        and the NOTIFY is delivered in it right after the SUBSCRIBE's 2xx reaches the app (so the
        app knows the dialog), or answered 481 if the SUBSCRIBE fails.
        """
        call_id, to_tag = msg.call_id, msg.to_tag
        out = next((o for o in self.outgoing.values()
                    if o.method == "SUBSCRIBE" and o.dialog is None and not o.final and o.dialog_id
                    and o.request.call_id == call_id and o.request.from_tag == to_tag), None)
        if out is None or out.conn.closed:
            return False
        if self.dialogs.get(out.dialog_id) is None:
            route_set: list[str] = []
            for line in msg.get_all("record-route"):
                route_set += split_values(line)
            req = out.request
            self.dialogs.add(Dialog(
                id=out.dialog_id, call_id=call_id or "", role="uac", kind="subscribe",
                local_tag=req.from_tag or "", remote_tag=msg.from_tag or "",
                local_party=req.get("from") or "", remote_party=msg.get("from") or "",
                remote_target=self._contact_uri(msg) or (req.uri or ""), route_set=route_set,
                local_contact=req.get("contact") or self.our_contact(out.target.transport),
                transport=out.target.transport, owner=out.conn, local_cseq=out.cseq,
                invite_txn_id=out.txn_id, invite_cseq=out.cseq, confirmed=False, source=source))
        logger.info("NOTIFY before the final response to SUBSCRIBE %s: held for dialog %s",
                    out.txn_id, out.dialog_id)
        self._early_notifies.setdefault(out.dialog_id, []).append((stx, msg, source))
        return True

    def _release_early_notifies(self, out: Outgoing, ok: bool) -> None:
        """After the SUBSCRIBE's final response went to the app: deliver (or 481) what was held."""
        queued = self._early_notifies.pop(out.dialog_id, None)
        if not queued:
            return
        dlg = self.dialogs.get(out.dialog_id)
        for stx, msg, source in queued:
            if ok and dlg is not None and not out.conn.closed:
                self._deliver_in_dialog(stx, msg, source, dlg)
            else:
                self._reject(stx, msg, 481)

    def _forget_early_update(self, upd: Incoming) -> None:
        if self._early_updates.get(upd.txn_id) is upd:
            del self._early_updates[upd.txn_id]
        if upd.expiry is not None:
            upd.expiry.cancel()
            upd.expiry = None

    def _answer_early_update(self, conn: ControlConnection, frame: wire.Frame, upd: Incoming, start: str,
                             app: AppHeaders, body: str) -> None:
        """The app's response to an UPDATE delivered as case c (it quoted the INVITE's txnId)."""
        m = _STATUS_LINE.match(start)
        if not m:
            conn.reply(frame.msg_id, "NOK", ["Unknown server error sending response"])
            return
        status = int(m.group(1))
        reason = (m.group(2) or "").strip() or reason_phrase(status)
        resp = self._complete_response(upd, status, reason, app, body, False)
        try:
            upd.stx.respond(resp)
        except Exception as err:  # noqa: BLE001 - reported to the app
            logger.warning("could not answer UPDATE %s: %s", upd.txn_id, err)
            conn.reply(frame.msg_id, "NOK", ["Unknown server error sending response"])
            return
        if status >= 200:
            self._forget_early_update(upd)
        text = str(resp)
        conn.send(wire.echo_response(wire.new_id(), frame.msg_id, nbytes=nbytes(text),
                                     protocol=upd.source.transport, address=upd.source.address,
                                     port=upd.source.port, time=wire.stack_time(), txn_id=upd.txn_id,
                                     dialog_id=upd.dialog_id, sip_text=text))

    @staticmethod
    def _contact_uri(msg: SipMessage) -> str | None:
        try:
            contacts = msg.get_parsed_header("contact")
        except LookupError:
            return None
        except Exception:  # noqa: BLE001 - a bad Contact should not break the call
            logger.debug("unparsable Contact %r", msg.get("contact"))
            return None
        if isinstance(contacts, list) and contacts:
            return contacts[0].uri
        return None

    # ---- requests from the app
    def _parse_request_line(self, start: str) -> tuple[str, str] | None:
        parts = start.split()
        if len(parts) != 3 or not parts[2].upper().startswith("SIP/"):
            return None
        return parts[0], parts[1]

    def _app_request(self, conn: ControlConnection, frame: wire.Frame, start: str, app: AppHeaders,
                     body: str) -> None:
        """A new request outside any dialog (PROTOCOL.md 4.4)."""
        line = self._parse_request_line(start)
        if line is None or not line[0].isupper():
            conn.reply(frame.msg_id, "NOK", [f"invalid request-uri: {start}"])
            return
        method, uri = line
        ruri = parse_uri(uri)
        if ruri is None:
            conn.reply(frame.msg_id, "NOK", [f"invalid request-uri: {start}"])
            return
        proxy = frame.field(4) or self.config.outbound_proxy
        if proxy:
            target = self._target(proxy)
        else:
            target = self._target(uri)
        if target is None or target.transport not in self.config.transports:
            conn.reply(frame.msg_id, "NOK", ["requested protocol/transport not available"])
            return
        if self._is_us(target.host, target.port):
            conn.reply(frame.msg_id, "NOK", ["can not send request to myself"])
            return
        ctype = app.first("content-type") or _sdp_type(body)
        if body and not ctype:
            conn.reply(frame.msg_id, "NOK", ["missing content-type"])
            return
        from_v = app.first("from")
        if from_v:
            from_v = self._subst_localhost(from_v)
            if re.search(r"[@:]localhost\b", from_v, re.IGNORECASE):
                from_v = re.sub(r"localhost(:\d+)?", f"{self.host}:{self.port}", from_v, flags=re.IGNORECASE)
        else:
            from_v = f"<sip:{self.host}:{self.port}>"
        local_tag = tag_of(from_v) or new_tag()
        from_v = with_tag(from_v, local_tag)
        to_v = app.first("to") or f"<{uri}>"
        call_id = app.first("call-id") or str(uuid.uuid4())
        cseq_m = re.match(r"\s*(\d+)", app.first("cseq") or "")
        cseq = int(cseq_m.group(1)) if cseq_m else random.randint(1, 999_999_999)
        hdrs: list[tuple[str, str]] = [
            ("Max-Forwards", app.first("max-forwards") or "70"),
            ("From", from_v), ("To", self._subst_localhost(to_v)), ("Call-ID", call_id),
            ("CSeq", f"{cseq} {method}")]
        contacts = app.all("contact")
        if contacts:
            hdrs += [("Contact", self._subst_localhost(c)) for c in contacts]
        elif method in ("INVITE", "SUBSCRIBE"):
            hdrs.append(("Contact", self.our_contact(target.transport)))
        hdrs += self._app_extra_headers(app)
        if ctype:
            hdrs.append(("Content-Type", ctype))
        msg = build_message(f"{method} {uri} SIP/2.0", hdrs, body)
        out = Outgoing(wire.new_id(), conn, method, msg, target, cseq=cseq)
        if method in ("INVITE", "SUBSCRIBE"):
            out.dialog_id = dialog_id(call_id, local_tag)
        self._send_outgoing(conn, frame, out)

    def _app_extra_headers(self, app: AppHeaders) -> list[tuple[str, str]]:
        out = []
        for name, value in app.others(DISCARDED | {"from", "to", "call-id", "cseq", "contact",
                                                   "content-type", "max-forwards"}):
            if name == "P-Asserted-Identity":
                value = self._subst_localhost(value)
            out.append((name, value))
        return out

    def _send_outgoing(self, conn: ControlConnection, frame: wire.Frame, out: Outgoing) -> None:
        self.outgoing[out.txn_id] = out
        try:
            out.ctx = self.stack.send_request(out.request, out.target,
                                              lambda resp, ctx, o=out: self._on_app_response(o, resp))
        except Exception as err:  # noqa: BLE001 - reported to the app
            logger.warning("could not send %s: %s", out.method, err)
            self.outgoing.pop(out.txn_id, None)
            conn.reply(frame.msg_id, "NOK", ["Error creating sip transaction for uac request"])
            return
        sent = getattr(out.ctx, "request", None) or out.request
        out.request = sent
        if out.method == "INVITE" and out.dialog is None:
            self._cdr("attempt", "application", sent)
        elif out.method == "BYE" and out.dialog is not None and out.dialog.kind == "invite":
            self._cdr("stop", "application", sent, "normal-release")
        self._echo_request(conn, frame.msg_id, out.txn_id, sent, out.target.transport)
        if self.loop is not None:
            out.echo_at = self.loop.time()

    def _dialog_target(self, dlg: Dialog) -> Any:
        if dlg.route_set:
            m = re.search(r"<([^>]*)>", dlg.route_set[0])
            t = self._target(m.group(1) if m else dlg.route_set[0], dlg.transport)
            if t is not None:
                return t
        t = self._target(dlg.remote_target, dlg.transport)
        if t is None and dlg.source is not None:
            from drachtio_srf.server.sipstack import Target
            t = Target(dlg.transport, dlg.source.address, dlg.source.port)
        return t

    def _build_in_dialog(self, dlg: Dialog, method: str, cseq: int, app: AppHeaders, body: str,
                         ctype: str | None) -> SipMessage:
        hdrs: list[tuple[str, str]] = [
            ("Max-Forwards", app.first("max-forwards") or "70"),
            ("From", dlg.local_party), ("To", dlg.remote_party), ("Call-ID", dlg.call_id),
            ("CSeq", f"{cseq} {method}")]
        hdrs += [("Route", r) for r in dlg.route_set]
        contacts = app.all("contact")
        if contacts:
            hdrs += [("Contact", self._subst_localhost(c)) for c in contacts]
        elif method in ("INVITE", "SUBSCRIBE", "REFER"):
            hdrs.append(("Contact", dlg.local_contact))
        hdrs += self._app_extra_headers(app)
        if ctype:
            hdrs.append(("Content-Type", ctype))
        return build_message(f"{method} {dlg.remote_target} SIP/2.0", hdrs, body)

    def _app_request_in_dialog(self, conn: ControlConnection, frame: wire.Frame, dlg: Dialog,
                               start: str, app: AppHeaders, body: str) -> None:
        line = self._parse_request_line(start)
        if line is None or not line[0].isupper() or not line[0].isalpha():
            conn.reply(frame.msg_id, "NOK",
                       [f"Server error: invalid or missing method supplied on start line: {start}"])
            return
        method = line[0]
        ctype = app.first("content-type") or _sdp_type(body)
        if body and not ctype:
            conn.reply(frame.msg_id, "NOK", ["Server error: missing content-type"])
            return
        target = self._dialog_target(dlg)
        if target is None:
            conn.reply(frame.msg_id, "NOK", ["Server error: unable to find route for request"])
            return
        if method == "ACK":
            self._app_ack(conn, frame, dlg, app, body, ctype, target)
            return
        cseq = dlg.next_cseq()
        msg = self._build_in_dialog(dlg, method, cseq, app, body, ctype)
        out = Outgoing(wire.new_id(), conn, method, msg, target, dialog=dlg, dialog_id=dlg.id, cseq=cseq)
        self._send_outgoing(conn, frame, out)

    def _app_ack(self, conn: ControlConnection, frame: wire.Frame, dlg: Dialog, app: AppHeaders,
                 body: str, ctype: str | None, target: Any) -> None:
        cseq = dlg.pending_ack_cseq
        if cseq is None:
            if dlg.last_invite_failed:
                conn.reply(frame.msg_id, "NOK",
                           ["ACK for non-success responses is automatically generated by the stack"])
                return
            cseq = dlg.extra.get("last_invite_cseq") or dlg.invite_cseq
            if cseq is None or dlg.role != "uac":
                conn.reply(frame.msg_id, "NOK", [ACK_NON_SUCCESS])
                return
        msg = self._build_in_dialog(dlg, "ACK", cseq, app, body, ctype)
        try:
            self.stack.send_stateless(msg, target)
        except Exception as err:  # noqa: BLE001 - reported to the app
            logger.warning("could not send ACK: %s", err)
            conn.reply(frame.msg_id, "NOK", ["Server error: Error creating sip transaction for request"])
            return
        dlg.pending_ack_cseq = None
        dlg.last_ack = msg
        dlg.last_ack_target = target
        dlg.extra["last_ack_text"] = str(msg)
        self._echo_request(conn, frame.msg_id, wire.new_id(), msg, target.transport)

    def _app_cancel(self, conn: ControlConnection, frame: wire.Frame, txn_id: str, app: AppHeaders) -> None:
        out = self.outgoing.get(txn_id)
        if out is None or out.method != "INVITE" or out.final or out.ctx is None:
            conn.reply(frame.msg_id, "NOK", [f"unable to cancel unknown transaction id: {txn_id}"])
            return
        extra = [(canonical_name(n), v) for low, n, v in app.items if low not in CANCEL_IGNORED]
        try:
            accepted = self.stack.cancel(out.ctx, extra)
        except Exception as err:  # noqa: BLE001 - reported to the app
            logger.warning("could not cancel %s: %s", txn_id, err)
            conn.reply(frame.msg_id, "NOK", [f"internal server error canceling transaction id: {txn_id}"])
            return
        if accepted is False:
            conn.reply(frame.msg_id, "NOK", [f"unable to cancel unknown transaction id: {txn_id}"])
            return
        sent = getattr(out.ctx, "cancel_request", None)
        if sent is None:
            sent = self._cancel_text(out.request, extra)
        self._echo_request(conn, frame.msg_id, wire.new_id(), sent, out.target.transport)

    @staticmethod
    def _cancel_text(invite: SipMessage, extra: list[tuple[str, str]]) -> SipMessage:
        """The CANCEL the stack builds from an INVITE (for the echo when the stack does not say)."""
        vias = invite.get_all("via")
        hdrs = [("Via", split_values(vias[0])[0])] if vias else []
        cseq = invite.cseq
        hdrs += [("Max-Forwards", "70"), ("From", invite.get("from") or ""),
                 ("To", invite.get("to") or ""), ("Call-ID", invite.call_id or ""),
                 ("CSeq", f"{cseq.seq if cseq else 1} CANCEL")]
        hdrs += [(n, v) for n, v in extra if n.lower() != "max-forwards"]
        return build_message(f"CANCEL {invite.uri} SIP/2.0", hdrs)

    def _on_app_response(self, out: Outgoing, resp: SipMessage) -> None:
        """A response to a request an app sent: dialog bookkeeping, then a case-e frame."""
        try:
            self._handle_app_response(out, resp)
        except Exception:
            logger.exception("error handling a response to %s %s", out.method, out.txn_id)

    def _handle_app_response(self, out: Outgoing, resp: SipMessage) -> None:
        status = resp.status or 0
        if status <= 100 or out.final:
            return
        if status >= 200:
            out.final = True
            self.outgoing.pop(out.txn_id, None)
            if out.method == "INVITE" and out.dialog is None:
                if status < 300:
                    self._cdr("start", "network", resp, "uac")
                else:
                    self._cdr("stop", "network", resp, "call-canceled" if status == 487 else "call-rejected")
        dlg = out.dialog
        method = out.method
        frame_dialog = ""
        if dlg is None and method in ("INVITE", "SUBSCRIBE") and out.dialog_id:
            frame_dialog = out.dialog_id
            ok = (200 <= status < 300) if method == "INVITE" else status in (200, 202)
            reliable = method == "INVITE" and status < 200 and resp.has("rseq") and bool(resp.to_tag)
            if ok or reliable:
                d = self.dialogs.get(out.dialog_id)
                if d is None:
                    d = self._uac_dialog(out, resp, confirmed=ok)
                elif ok:
                    d.confirmed = True
                    self._refresh_target(d, resp)
                if method == "INVITE" and ok:
                    d.pending_ack_cseq = out.cseq
                    d.extra["last_invite_cseq"] = out.cseq
            elif status >= 300:
                if method == "INVITE":
                    assert self.loop is not None
                    self._failed_invites[out.dialog_id] = self.loop.time()
                d = self.dialogs.get(out.dialog_id)
                if d is not None and not d.confirmed:
                    self.dialogs.remove(d)
        elif dlg is not None:
            frame_dialog = dlg.id
            if method == "INVITE" and status >= 200:
                if status < 300:
                    dlg.pending_ack_cseq = out.cseq
                    dlg.extra["last_invite_cseq"] = out.cseq
                    dlg.last_invite_failed = False
                    self._refresh_target(dlg, resp)
                else:
                    dlg.pending_ack_cseq = None
                    dlg.last_invite_failed = True
            elif method == "BYE" and status >= 200 and status not in (401, 407):
                self.dialogs.remove(dlg)
            elif method == "NOTIFY" and 200 <= status < 300 and dlg.kind == "subscribe":
                state = (out.request.get("subscription-state") or "").strip().lower()
                if state.startswith("terminated"):
                    self.dialogs.remove(dlg)
        if out.conn.closed:
            logger.debug("response %d for %s: app connection gone, discarded", status, out.txn_id)
            if method == "SUBSCRIBE" and dlg is None and status >= 200:
                self._release_early_notifies(out, False)
            return
        src = getattr(out.ctx, "response_source", None)
        text = text_of(resp)
        payload = frames.sip_event(
            frames.new_id(), source="network", nbytes=nbytes(text), protocol=out.target.transport,
            address=src.address if src else out.target.host,
            port=src.port if src else out.target.port, time=frames.stack_time(), txn_id=out.txn_id,
            dialog_id=frame_dialog, sip_text=text)
        assert self.loop is not None
        wait = out.echo_at + self.config.echo_gap - self.loop.time()
        if out.held or (wait > 0 and self.config.echo_gap > 0):
            out.held.append(payload)
            if len(out.held) == 1:
                self.loop.call_later(max(wait, 0.0), self._flush_held, out)
            held_dlg = self.dialogs.get(frame_dialog) if frame_dialog else None
            if held_dlg is not None:
                held_dlg.extra["held_out"] = out    # in-dialog requests queue behind (_send_sip_event)
        else:
            out.conn.send(payload)
        if method == "SUBSCRIBE" and dlg is None and status >= 200:
            self._release_early_notifies(out, status in (200, 202))

    @staticmethod
    def _flush_held(out: Outgoing) -> None:
        held, out.held = out.held, []
        for payload in held:
            out.conn.send(payload)

    def _refresh_target(self, dlg: Dialog, msg: SipMessage) -> None:
        uri = self._contact_uri(msg)
        if uri:
            dlg.remote_target = uri

    def _uac_dialog(self, out: Outgoing, resp: SipMessage, *, confirmed: bool) -> Dialog:
        req = out.request
        route_set: list[str] = []
        for line in resp.get_all("record-route"):
            route_set += split_values(line)
        route_set.reverse()
        dlg = Dialog(
            id=out.dialog_id, call_id=req.call_id or "", role="uac",
            kind="invite" if out.method == "INVITE" else "subscribe",
            local_tag=req.from_tag or "", remote_tag=resp.to_tag or "",
            local_party=req.get("from") or "", remote_party=resp.get("to") or "",
            remote_target=self._contact_uri(resp) or (req.uri or ""), route_set=route_set,
            local_contact=req.get("contact") or self.our_contact(out.target.transport),
            transport=out.target.transport, owner=out.conn, local_cseq=out.cseq,
            invite_txn_id=out.txn_id, invite_cseq=out.cseq, confirmed=confirmed)
        self.dialogs.add(dlg)
        return dlg

    # ------------------------------------------------------------------ server-generated BYE
    def _server_bye(self, dlg: Dialog, reason: str) -> None:
        """BYE a dialog on the server's initiative and tell the owner (unsolicited BYE, 3.3 f).

        Whatever the dialog holds (an unusable Contact, a send error), the dialog is forgotten and
        its owner is told, so the app's Dialog never outlives the server's.
        """
        self.dialogs.remove(dlg)
        msg = self._build_in_dialog(dlg, "BYE", dlg.next_cseq(), AppHeaders([("Reason", reason)]), "", None)
        sent: SipMessage = msg
        target = self._dialog_target(dlg)
        if target is None:
            logger.warning("dialog %s: no usable target for the BYE, only the app is told", dlg.id)
        else:
            try:
                ctx = self.stack.send_request(msg, target, lambda resp, ctx: None)
                sent = getattr(ctx, "request", None) or msg
            except Exception as err:  # noqa: BLE001 - the app is told all the same
                logger.warning("dialog %s: could not send the BYE to %s: %s", dlg.id, target, err)
        self._cdr("stop", "application", sent, "session-expired")
        owner = dlg.owner
        if owner is not None and not owner.closed:
            self._send_sip_event(owner, sent, source="application",
                                 protocol=target.transport if target is not None else dlg.transport,
                                 address=self.host, port=self.port, txn_id="unsolicited",
                                 dialog_id=dlg.id, text=str(sent))
