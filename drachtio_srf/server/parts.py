"""What the parts of the server core share: the state ``Core`` holds, declared once.

``Core`` (core.py) is assembled from mixins, one module per job (inbound.py, uas.py, early.py,
uac.py, app_output.py, cdr.py, proxy.py). Each mixin derives from :class:`CoreParts`, which names
the state ``Core.__init__`` sets up and, for the type checker only, the methods one part calls on
another. Nothing here runs: at run time the methods come from the mixins themselves.
"""
from __future__ import annotations

import asyncio
from collections.abc import Iterable
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:  # pragma: no cover
    from drachtio_srf import wire
    from drachtio_srf.server.config import ServerConfig
    from drachtio_srf.server.control import ControlConnection, Router
    from drachtio_srf.server.dialogs import Dialog, DialogTable
    from drachtio_srf.server.outbound import OutboundConnector
    from drachtio_srf.server.records import Incoming, Outgoing
    from drachtio_srf.server.sip_text import AppHeaders
    from drachtio_srf.server.timers import TimerWheel
    from drachtio_srf.sip import SipMessage


class CoreParts:
    """State of the server core shared by its parts (set by ``Core.__init__``)."""

    config: ServerConfig
    """The options the server runs with."""
    router: Router
    """Which app connections get new requests of each method."""
    connections: set[ControlConnection]
    """The open app connections."""
    dialogs: DialogTable
    """The dialogs the server holds for apps."""
    incoming: dict[str, Incoming]
    """Requests from the network delivered to apps and not finally answered, by txnId."""
    outgoing: dict[str, Outgoing]
    """Requests sent by apps waiting for their responses, by txnId."""
    outbound: OutboundConnector
    """Dials apps for new requests whose method has an outbound target."""
    stack: Any
    """The SIP stack (set by ``Core.start``)."""
    loop: asyncio.AbstractEventLoop | None
    """The event loop the server runs on (set by ``Core.start``)."""
    timers: TimerWheel | None
    """Timer wheel for cheap per-request expiries (set by ``Core.start``)."""
    _incoming_by_stx: dict[int, Incoming]
    _failed_invites: dict[str, float]
    _proxy_by_stx: dict[int, Any]
    _proxied_calls: dict[str, Any]
    _early_updates: dict[str, Incoming]
    _early_notifies: dict[str, list[tuple[Any, SipMessage, Any]]]
    _batching: int
    _dirty: list[ControlConnection]
    _flush_scheduled: bool
    _overload_rejects: int

    if TYPE_CHECKING:
        # core.py: addresses
        @property
        def host(self) -> str: """The SIP host put in Via/Contact."""
        @property
        def port(self) -> int: """The SIP port."""
        def our_contact(self, transport: str = "udp") -> str: """Our Contact header value for ``transport``."""
        def _subst_localhost(self, value: str) -> str: ...
        def _is_us(self, host: str | None, port: int | None) -> bool: ...
        def _target(self, uri: str, default_transport: str = "udp") -> Any: ...

        # cdr.py, app_output.py
        def _cdr(self, kind: str, source: str, msg: SipMessage | str, extra: str | None = None) -> None: ...
        def _send_sip_event(self, conn: ControlConnection, msg: SipMessage, *, source: str, protocol: str,
                            address: str, port: int, txn_id: str, dialog_id: str = "",
                            received_on: tuple[str, int] | None = None, text: str | None = None,
                            behind: Dialog | None = None) -> None: ...
        def _echo_request(self, conn: ControlConnection, msg_id: str, txn_id: str, msg: SipMessage,
                          transport: str) -> None: ...

        # inbound.py
        def _simple_response(self, req: SipMessage, status: int, reason: str | None = None,
                             to_tag: str | None = None,
                             extra: Iterable[tuple[str, str]] = ()) -> SipMessage: ...
        def _reject(self, stx: Any, msg: SipMessage, status: int) -> None: ...
        def _add_incoming(self, inc: Incoming) -> None: ...
        def _drop_incoming(self, inc: Incoming) -> None: ...
        def _deliver_in_dialog(self, stx: Any, msg: SipMessage, source: Any, dlg: Dialog) -> None: ...
        @staticmethod
        def _respond_safely(stx: Any, resp: SipMessage) -> None: ...

        # uas.py, early.py
        def _app_response(self, conn: ControlConnection, frame: wire.Frame, txn_id: str, start: str,
                          app: AppHeaders, body: str) -> None: ...
        def _complete_response(self, inc: Incoming, status: int, reason: str, app: AppHeaders, body: str,
                               reliable: bool) -> SipMessage: ...
        @staticmethod
        def _contact_uri(msg: SipMessage) -> str | None: ...
        def _send_reliably(self, inc: Incoming, dlg: Dialog, resp: SipMessage) -> None: ...
        @staticmethod
        def _prack_matches(dlg: Dialog, msg: SipMessage) -> bool: ...
        def _early_update(self, stx: Any, msg: SipMessage, source: Any) -> bool: ...
        def _early_notify(self, stx: Any, msg: SipMessage, source: Any) -> bool: ...
        def _release_early_notifies(self, out: Outgoing, ok: bool) -> None: ...
        def _answer_early_update(self, conn: ControlConnection, frame: wire.Frame, upd: Incoming,
                                 start: str, app: AppHeaders, body: str) -> None: ...

        # uac.py
        def _app_request(self, conn: ControlConnection, frame: wire.Frame, start: str, app: AppHeaders,
                         body: str) -> None: ...
        def _app_request_in_dialog(self, conn: ControlConnection, frame: wire.Frame, dlg: Dialog,
                                   start: str, app: AppHeaders, body: str) -> None: ...
        def _app_cancel(self, conn: ControlConnection, frame: wire.Frame, txn_id: str,
                        app: AppHeaders) -> None: ...
        def _server_bye(self, dlg: Dialog, reason: str) -> None: ...

        # proxy.py
        def _is_record_routed_to_us(self, msg: SipMessage) -> bool: ...
        def _proxy_in_dialog(self, stx: Any, msg: SipMessage, source: Any) -> None: ...
        def _proxy_ack(self, msg: SipMessage) -> None: ...
        def _proxy_cancel(self, job: Any) -> None: ...
