"""Request: a SIP request received from the network or sent by the application.

It wraps a :class:`~drachtio_srf.sip.SipMessage` (header access is delegated to it) and adds the
transport meta the server sent with it.  Events (emitted on the dispatcher, never on a reader
thread): ``cancel(msg)`` for an incoming INVITE the far end canceled, ``response(res, ack)`` for a
request we sent, ``update(req, res)`` for an UPDATE during an INVITE, ``authenticate(req)``.
"""
from __future__ import annotations

import logging
import threading
from collections.abc import Callable, Mapping
from sys import intern as _intern
from typing import TYPE_CHECKING, Any, overload

from .emitter import Emitter
from .message_view import MessageView
from .models import Callback, ProxyResult, Registration, ServerInfo
from .names import install_aliases, normalize_opts
from .sip import SipMessage

if TYPE_CHECKING:
    from .agent import Agent, ServerConn
    from .dispatch import DrachtioFuture
    from .response import Response

logger = logging.getLogger(__name__)

__all__ = ["Request"]

_SERVER_OF_CONN: Any = object()     # Request._server: built from the connection when read
_hooks_lock = threading.Lock()      # makes (and drops) a request's hook lists


@install_aliases
class Request(MessageView, Emitter):
    """An incoming or sent SIP request, with its drachtio meta."""

    # Defaults for fields most requests never set (a class attribute until first assigned):
    # one Request is made per SIP request, so fewer per-instance fields is less time and memory.
    _res: Response | None = None
    canceled = False
    """True once the far end has canceled this INVITE."""
    auth: Any = None
    """For a request sent with credentials, the ``auth`` option it used, else None."""
    _server: Any = None         # dict, or _SERVER_OF_CONN: made from the connection on first read
    received_on: str | None = None
    """``'host:port'`` of the server transport it arrived on (new requests only)."""
    session_token: str | None = None
    """Session token the server attached, if any."""
    # library internals: dispatch key for this request's events, and hooks the library runs
    # itself (on the reader thread) when responses arrive or the connection is lost.
    _key: Any = None
    _auth_state: Any = None     # uac_auth.AuthState of a request sent with credentials
    _retry_of: Request | None = None    # the request this one re-sent with credentials

    def __init__(self, msg: Any = None, meta: Any = None, *, agent: Agent | None = None,
                 conn: ServerConn | None = None) -> None:
        # (no super().__init__(): MessageView and Emitter keep their state in class defaults)
        self.msg = msg if msg is not None else SipMessage()
        """The SipMessage of this request."""
        self.agent = agent
        """The server connection's agent (None for a request not tied to a connection)."""
        self._conn = conn
        self.srf: Any = agent.srf if agent is not None else None
        """The :class:`Srf` application, or None without an agent."""
        if meta is not None:
            self._apply_meta(meta)      # (what setting ``meta`` does)

    # the hook lists are made on first use: most requests never get a hook
    _hook_list: list[Callable[..., None]] | None = None
    _cancel_hook_list: list[Callable[[Any], None]] | None = None

    @property
    def _hooks(self) -> list[Callable[..., None]]:
        """Library hooks run (on the reader thread) for each response to a request we sent."""
        hooks = self._hook_list
        if hooks is None:
            with _hooks_lock:      # one list even if two threads get here at once
                hooks = self._hook_list
                if hooks is None:
                    hooks = self._hook_list = []
        return hooks

    @property
    def _cancel_hooks(self) -> list[Callable[[Any], None]]:
        """Library hooks run when the far end cancels this incoming INVITE."""
        hooks = self._cancel_hook_list
        if hooks is None:
            with _hooks_lock:
                hooks = self._cancel_hook_list
                if hooks is None:
                    hooks = self._cancel_hook_list = []
        return hooks

    def _retain(self) -> None:
        """This request is kept for long (a dialog's INVITE): drop what can be rebuilt later
        (the message's header lines and parse caches, empty hook lists)."""
        with _hooks_lock:
            if self._hook_list is not None and not self._hook_list:
                self._hook_list = None
            if self._cancel_hook_list is not None and not self._cancel_hook_list:
                self._cancel_hook_list = None
        shrink = getattr(self.msg, "_shrink", None)
        if shrink is not None:
            shrink()

    @property
    def server(self) -> ServerInfo | None:
        """``{address, hostport}`` of the drachtio server an incoming request came from
        (``req.server.address`` or ``req.server["address"]``)."""
        server = self._server
        if server is _SERVER_OF_CONN:
            conn = self._conn
            server = self._server = ServerInfo(address=conn.peer[0] if conn is not None else None,
                                               hostport=conn.hostport if conn is not None else None)
        elif server is not None and not isinstance(server, ServerInfo):
            server = self._server = ServerInfo(server)
        return server

    @server.setter
    def server(self, value: Mapping[str, Any] | None) -> None:
        self._server = value

    # -- meta (the rest is MessageView's) -----------------------------------------------------
    def _apply_meta(self, meta: Any) -> None:
        super()._apply_meta(meta)
        if getattr(meta, "received_on", None):
            self.received_on = _intern(meta.received_on)    # (few distinct values)
        if getattr(meta, "session_token", None):
            self.session_token = meta.session_token

    @property
    def socket(self) -> ServerConn | None:
        """The drachtio server connection this request came (or went) on."""
        return self._conn

    @property
    def res(self) -> Response | None:
        """The :class:`Response` paired with this request, once there is one."""
        return self._res

    @res.setter
    def res(self, value: Response | None) -> None:
        self._res = value

    # -- delegated to the SipMessage (the shared members are MessageView's) -----------------------
    # a request's method, uri and body are also settable
    @property
    def method(self) -> str | None:
        """The SIP method (settable)."""
        return self.msg.method

    @method.setter
    def method(self, value: str) -> None:
        self.msg.method = value

    @property
    def uri(self) -> str | None:
        """The request-URI (settable)."""
        return self.msg.uri

    @uri.setter
    def uri(self, value: str) -> None:
        self.msg.uri = value

    url = uri
    """Same property as :attr:`uri` (Express-style name)."""

    @property
    def body(self) -> str:
        """The message body (settable)."""
        return self.msg.body

    @body.setter
    def body(self, value: str) -> None:
        self.msg.body = value

    @property
    def sdp(self) -> str:
        """The body (drachtio apps use it for the SDP)."""
        return self.msg.body

    @property
    def status(self) -> int | None:
        """None for a request (SipMessage field, for symmetry with Response)."""
        return self.msg.status

    @property
    def reason(self) -> str | None:
        """None for a request (SipMessage field, for symmetry with Response)."""
        return self.msg.reason

    @property
    def call_id(self) -> str | None:
        """The Call-ID header, or None."""
        return self.msg.get("Call-ID")

    @property
    def from_(self) -> str | None:
        """The From header, or None (``from`` is a Python keyword)."""
        return self.msg.get("From")

    @property
    def to(self) -> str | None:
        """The To header, or None."""
        return self.msg.get("To")

    @property
    def is_new_invite(self) -> bool:
        """An INVITE whose To has no tag (not a re-INVITE)."""
        if self.method != "INVITE":
            return False
        to = self.msg.get("To") or ""
        return ";tag=" not in to.replace(" ", "").lower()

    @property
    def registration(self) -> Registration | None:
        """For a REGISTER: ``{type: 'register'|'unregister', expires, contact, aor}``, else None."""
        if self.method != "REGISTER":
            return None
        contacts: Any = []
        expires: int | None = None
        try:
            contacts = self.msg.get_parsed_header("Contact") if self.has("Contact") else []
        except Exception:
            logger.debug("unparseable Contact in REGISTER", exc_info=True)
        if isinstance(contacts, list) and contacts:
            value = (contacts[0].get("params") or {}).get("expires")
            if value is not None:
                try:
                    expires = int(value)
                except ValueError:
                    expires = None
        if expires is None and self.has("Expires"):
            try:
                expires = int((self.get("Expires") or "").strip())
            except ValueError:
                expires = None
        if contacts == "*" or (self.get("Contact") or "").strip() == "*":
            expires = 0 if expires is None else expires
        aor = None
        try:
            aor = self.msg.get_parsed_header("To").uri
        except Exception:
            logger.debug("unparseable To in REGISTER", exc_info=True)
        return Registration(type="unregister" if expires == 0 else "register", expires=expires,
                            contact=contacts, aor=aor)

    # -- actions ----------------------------------------------------------------------------
    @overload
    def cancel(self, opts: Mapping[str, Any] | None = None, callback: None = None, *,
               headers: dict[str, Any] | None = None) -> DrachtioFuture[SipMessage]: ...
    @overload
    def cancel(self, opts: Mapping[str, Any] | None, callback: Callback[SipMessage], *,
               headers: dict[str, Any] | None = None) -> Request: ...
    @overload
    def cancel(self, opts: Callback[SipMessage], *, headers: dict[str, Any] | None = None) -> Request: ...
    @overload
    def cancel(self, *, callback: Callback[SipMessage], headers: dict[str, Any] | None = None) -> Request: ...

    def cancel(self, opts: Mapping[str, Any] | Callable[..., Any] | None = None,
               callback: Callable[..., Any] | None = None, *, headers: dict[str, Any] | None = None) -> Any:
        """CANCEL this INVITE we sent (``opts.headers`` are added).  cb|Future of the CANCEL sent."""
        if callable(opts):
            callback, opts = opts, None
        o = normalize_opts(opts, headers=headers)
        if self.agent is None or self.source != "application":
            raise RuntimeError("Request.cancel can only be used for a request the application sent")
        return self.agent.cancel_request(self, o.get("headers") or {}, callback)

    @overload
    def proxy(self, opts: Mapping[str, Any] | None = None, callback: None = None,
              **kwargs: Any) -> DrachtioFuture[ProxyResult]: ...
    @overload
    def proxy(self, opts: Mapping[str, Any] | None, callback: Callback[ProxyResult],
              **kwargs: Any) -> Request: ...
    @overload
    def proxy(self, opts: Callback[ProxyResult], **kwargs: Any) -> Request: ...
    @overload
    def proxy(self, *, callback: Callback[ProxyResult], **kwargs: Any) -> Request: ...

    def proxy(self, opts: Mapping[str, Any] | Callable[..., Any] | None = None,
              callback: Callable[..., Any] | None = None, **kwargs: Any) -> Any:
        """Proxy this incoming request (see ``Srf.proxy_request``).  cb|Future of the results."""
        if callable(opts):
            callback, opts = opts, None
        if self.source != "network":
            raise RuntimeError("Request.proxy can only be used for incoming requests")
        if self.agent is None:
            raise RuntimeError("request is not attached to a connection")
        return self.agent.proxy(self, normalize_opts(opts, **kwargs), callback)

    def __repr__(self) -> str:
        return f"<Request {self.method} {self.uri} txn={self.stack_txn_id}>"

    # -- JS names (the table is names.ALIASES; the ones shared with Response are MessageView's) --
    isNewInvite = is_new_invite
    """JS name of :meth:`is_new_invite`: returns True for an initial INVITE."""
    receivedOn = received_on
    """JS name of :attr:`received_on` (forwards to it)."""
    sessionToken = session_token
    """JS name of :attr:`session_token` (forwards to it)."""
    callId = call_id
    """JS name of :attr:`call_id` (the same property)."""

    # -- internal ------------------------------------------------------------------------
    def _far_end_canceled(self, cancel_msg: Any) -> None:
        """The far end sent CANCEL for this INVITE (reader thread): run hooks, emit ``cancel``."""
        self.canceled = True
        for hook in list(self._cancel_hooks):
            try:
                hook(cancel_msg)
            except Exception:
                logger.exception("cancel hook failed")
        if self.agent is not None:
            self.agent.emit_on(self._key, self, "cancel", cancel_msg)
