"""Dialog: an established SIP dialog (INVITE or SUBSCRIBE), as UAS or UAC.

Created only by the library (create_uas / create_uac / create_b2bua).  Incoming in-dialog
requests are handled on the dialog's dispatch key, one at a time in arrival order; with no
listener the dialog answers them itself (API-DETAILS B2).  Outgoing re-INVITEs are serialised:
``modify`` calls wait their turn, and a failed re-INVITE releases the queue (fixes B9).
"""
from __future__ import annotations

import functools
import logging
import re
import threading
from collections.abc import Callable, Mapping
from typing import TYPE_CHECKING, Any, Generic, Protocol, TypeVar, cast, overload

from . import sdp as sdp_edit
from .agent import dialog_key, ignore_echo
from .emitter import Emitter
from .errors import DrachtioError, SipError
from .models import Callback, SipEndpointInfo, SipInfo
from .names import install_aliases, normalize_opts
from .sip import AttrDict, SipMessage, parse_uri

if TYPE_CHECKING:
    from .dispatch import DrachtioFuture
    from .request import Request
    from .response import Response
    from .srf import Srf

logger = logging.getLogger(__name__)

CONNECTION_LOST = "connection lost"   # the reason of 'destroy' when the server connection is lost

__all__ = ["SIP_METHODS", "Dialog"]

SIP_METHODS = ("INVITE", "ACK", "BYE", "CANCEL", "REGISTER", "OPTIONS", "INFO", "UPDATE", "PRACK",
               "SUBSCRIBE", "NOTIFY", "REFER", "MESSAGE", "PUBLISH")
"""The SIP request methods the library knows, in upper case."""

_REASON_TEXT = re.compile(r'text="([^"]*)"')
_modify_lock = threading.Lock()    # guards every dialog's re-INVITE queue (short sections)


def _first_contact_uri(msg: Any) -> str | None:
    try:
        contacts = msg.get_parsed_header("Contact")
    except LookupError:
        return None
    if isinstance(contacts, list) and contacts:
        return contacts[0].get("uri")
    return None


def _contact_uri(contact: str | None) -> str | None:
    """The URI of the first entry of a Contact header value (as ``_first_contact_uri``)."""
    if contact is None:
        return None
    msg = SipMessage()
    msg.add("Contact", contact)
    return _first_contact_uri(msg)


_R = TypeVar("_R")
#: an option dict (JS keys or PEP 8 keys)
Opts = Mapping[str, Any]


class _InDialogSender(Protocol, Generic[_R]):
    """``dialog.info(...)`` & co: ``request(method=...)`` with the method filled in."""

    @overload
    def __call__(self, opts: Opts | None = None, callback: None = None,
                 **kwargs: Any) -> DrachtioFuture[_R]: ...
    @overload
    def __call__(self, opts: Opts | None, callback: Callback[_R], **kwargs: Any) -> Dialog: ...
    @overload
    def __call__(self, opts: Callback[_R], **kwargs: Any) -> Dialog: ...
    @overload
    def __call__(self, *, callback: Callback[_R], **kwargs: Any) -> Dialog: ...


class _ShortcutMethod(Protocol, Generic[_R]):
    """What type checkers see for ``Dialog.info`` & co: a method giving an :class:`_InDialogSender`."""

    @overload
    def __get__(self, obj: None, owner: Any, /) -> _ShortcutMethod[_R]: ...
    @overload
    def __get__(self, obj: Dialog, owner: Any, /) -> _InDialogSender[_R]: ...


def _split_args(opts: Any, callback: Any) -> tuple[dict[str, Any], Any]:
    if callable(opts) and callback is None:
        return {}, opts
    return dict(opts or {}), callback


def _shortcut(method: str) -> _ShortcutMethod[Any]:
    """The method sending ``method`` inside the dialog (``dialog.info(...)``)."""
    def send(self: Dialog, opts: Any = None, callback: Any = None, **kwargs: Any) -> Any:
        opts, callback = _split_args(opts, callback)
        opts = normalize_opts(opts, **kwargs)
        opts["method"] = method
        return self.request(opts, callback)
    send.__name__ = send.__qualname__ = method.lower()
    send.__doc__ = f"Send {method} inside the dialog: ``request(method='{method}', ...)``."
    return cast("_ShortcutMethod[Any]", send)


@install_aliases
class Dialog(Emitter):
    """A SIP dialog, as UAS or UAC; in-dialog requests arrive as events.

    Events:

    - ``destroy`` ``(req[, reason])``: the dialog ended (BYE received, or a NOTIFY terminated
      the last subscription); ``(None, "connection lost")`` when the server connection drops.
    - ``modify`` ``(req, res)``: a re-INVITE the app answers itself.
    - ``refresh`` / ``hold`` / ``unhold`` ``(req)``: a re-INVITE that only refreshes the
      session, puts the call on hold or takes it off hold (answered by the dialog).
    - ``info``, ``notify``, ``options``, ``message``, ``publish``, ``refer``, ``update``
      ``(req, res)``: that in-dialog request; with no listener the dialog answers it itself.
    - ``subscribe`` ``(req, res)``: a SUBSCRIBE refresh; ``unsubscribe`` ``(req, reason)``:
      a SUBSCRIBE with Expires 0 (already answered 202).
    - ``ack`` ``(req)``: an ACK received in the dialog (it may carry a late SDP answer).
    """

    # Defaults until first assigned (class attributes): thousands of dialogs may be open at
    # once, and most never use these.  The lists are made on first use (see the properties).
    _on_hold = False
    other: Dialog | None = None
    """The dialog's other leg when it belongs to a B2BUA (``uas.other is uac``), else None."""
    _queue_requests = False
    _modify_busy = False
    _modify_waiting: list[Callable[[BaseException | None], None]] | tuple[()] = ()

    def __init__(self, srf: Srf, type: str, opts: Mapping[str, Any]) -> None:
        super().__init__()
        if type not in ("uas", "uac"):
            raise ValueError("Dialog type must be 'uas' or 'uac'")
        self.srf = srf
        """The :class:`Srf` application that owns this dialog."""
        self.type = type
        """``'uas'`` if we answered the dialog-forming request, ``'uac'`` if we sent it."""
        self.req: Request = opts["req"]
        """The request that formed the dialog (INVITE or SUBSCRIBE), kept for the dialog's life."""
        self.res: Response = opts["res"]
        """The response that formed the dialog (the one sent for a UAS, received for a UAC)."""
        self.auth = opts.get("auth")
        """The ``auth`` option the dialog was made with (credentials reused for in-dialog requests)."""
        self.agent = self.res.agent or self.req.agent
        """The server connection's agent that in-dialog requests are sent through."""
        self.connected = True
        """True until the dialog ends (BYE sent or received, connection lost)."""
        sent = opts.get("sent")
        # (a UAS response's Call-ID is the request's: reading it from what was sent spares
        # building the Response's own SipMessage)
        call_id = ((sent.call_id if type == "uas" and sent is not None else self.res.get("Call-ID"))
                   or self.req.get("Call-ID") or "")
        if type == "uas":
            if sent is None:
                raise ValueError("a UAS dialog needs the response that was sent")
            self.sip = SipInfo(call_id=call_id, local_tag=sent.to_tag, remote_tag=self.req.msg.from_tag)
            """Call-ID and local/remote tags that identify the dialog on the wire."""
            # our Contact (the server wrote it) is parsed only if someone reads local.uri
            contact = sent.get("Contact")
            local_sdp = sent.body or None
            given = opts.get("local_sdp")
            if given is not None and given == local_sdp:
                local_sdp = given       # the app's own string: one copy of it, not two
            self.local = SipEndpointInfo._lazy(functools.partial(_contact_uri, contact),
                                               local_sdp, contact)
            """Our end of the dialog: Contact URI, current local SDP and Contact header."""
            self.remote = SipEndpointInfo._lazy(functools.partial(_first_contact_uri, self.req.msg),
                                                self.req.body or None)
            """The far end of the dialog: its Contact URI and its current SDP."""
        else:
            # local.uri is our own Contact URI (drachtio-srf reports the remote request-URI: #175)
            self.sip = SipInfo(call_id=call_id, local_tag=self.req.msg.from_tag, remote_tag=self.res.msg.to_tag)
            self.local = SipEndpointInfo(uri=_first_contact_uri(self.req.msg) or self.req.uri,
                                         sdp=self.req.body or None, contact=self.req.get("Contact"))
            self.remote = SipEndpointInfo(uri=_first_contact_uri(self.res.msg), sdp=self.res.body or None)
        if self.req.method == "SUBSCRIBE":
            self.add_subscription(self.req)
        # kept for the dialog's life: let them drop what they can rebuild on demand
        self.req._retain()
        self.res._retain()

    # -- properties ---------------------------------------------------------------------------
    @property
    def id(self) -> str:
        """The server's dialog id (``<Call-ID>;from-tag=<tag>``)."""
        return self.res.stack_dialog_id or ""

    @property
    def dialog_type(self) -> str:
        """The method that formed the dialog: ``'INVITE'`` or ``'SUBSCRIBE'``."""
        return self.req.method or "INVITE"

    @property
    def subscribe_event(self) -> str | None:
        """The ``Event`` header of a SUBSCRIBE dialog's request; None for an INVITE dialog."""
        return self.req.get("Event") if self.dialog_type == "SUBSCRIBE" else None

    @property
    def on_hold(self) -> bool:
        """True while the far end has put the call on hold (set by re-INVITE hold/unhold handling)."""
        return self._on_hold

    @on_hold.setter
    def on_hold(self, value: bool) -> None:
        self._on_hold = bool(value)

    @property
    def subscriptions(self) -> list[str]:
        """The subscriptions of a SUBSCRIBE dialog (``user@host:event``)."""
        return self.__dict__.setdefault("_subscriptions", [])

    @subscriptions.setter
    def subscriptions(self, value: list[str]) -> None:
        self.__dict__["_subscriptions"] = value

    @property
    def queued_requests(self) -> list[tuple[Any, Any]]:
        """Incoming in-dialog (req, res) held while ``queue_requests`` is on."""
        return self.__dict__.setdefault("_queued", [])

    @queued_requests.setter
    def queued_requests(self, value: list[tuple[Any, Any]]) -> None:
        self.__dict__["_queued"] = value

    @property
    def queue_requests(self) -> bool:
        """True while incoming in-dialog requests are held back; setting False replays them in order."""
        return self._queue_requests

    @queue_requests.setter
    def queue_requests(self, enqueue: bool) -> None:
        """Hold incoming in-dialog requests (B2BUA forming); turning it off replays them in order."""
        self._queue_requests = bool(enqueue)
        if not enqueue and self.__dict__.get("_queued"):
            queued = self.__dict__.pop("_queued")
            for req, res in queued:
                self.agent.submit(dialog_key(self.id), self.handle, req, res)

    def to_json(self) -> dict[str, Any]:
        """A JSON-ready dict: ``id``, ``type``, ``sip``, ``local``, ``remote`` and ``onHold``."""
        return {"id": self.id, "type": self.type, "sip": self.sip.to_dict(),
                "local": self.local.to_dict(), "remote": self.remote.to_dict(), "onHold": self.on_hold}

    def __repr__(self) -> str:
        return f"<Dialog {self.type} {self.dialog_type} id={self.id!r} connected={self.connected}>"

    # -- subscriptions --------------------------------------------------------------------------
    def get_count_of_subscriptions(self) -> int:
        """How many subscriptions this SUBSCRIBE dialog still holds."""
        return len(self.__dict__.get("_subscriptions") or ())

    def add_subscription(self, req: Any) -> int:
        """Record the subscription of SUBSCRIBE ``req`` (To user@host and Event); returns the count."""
        to = req.get_parsed_header("To")
        u: Mapping[str, Any] = parse_uri(to.uri) or {}
        self.subscriptions.append(f"{u.get('user')}@{u.get('host')}:{req.get('Event')}")
        return len(self.subscriptions)

    def remove_subscription(self, uri: str, event: str | None) -> int:
        """Drop the subscription for ``uri`` and ``event`` (warn if unknown); returns the count left."""
        u: Mapping[str, Any] = parse_uri(uri) or {}
        entity = f"{u.get('user')}@{u.get('host')}:{event}"
        if entity in self.subscriptions:
            self.subscriptions.remove(entity)
        else:
            logger.warning("no subscription %s in %s", entity, self.subscriptions)
        return len(self.subscriptions)

    # -- ending ---------------------------------------------------------------------------------
    def _ended(self) -> None:
        """Bookkeeping when the dialog is over (either side)."""
        self.connected = False
        self.__dict__.pop("_queued", None)
        self.srf.remove_dialog(self)
        with _modify_lock:
            waiting = list(self._modify_waiting)
            self.__dict__.pop("_modify_waiting", None)
        for admit in waiting:
            admit(DrachtioError("dialog was destroyed before we could modify it"))

    def _connection_lost(self) -> None:
        """The control connection the dialog was set up on is gone: the server will not route
        its requests to us any more, so the dialog ends here (no BYE can be sent) and emits
        ``destroy(None, 'connection lost')`` on its key.  Called on the reader thread."""
        if not self.connected:
            return
        self._ended()

        def lost() -> None:
            self.emit("destroy", None, CONNECTION_LOST)
            self.remove_all_listeners()
        self.agent.submit(dialog_key(self.id), lost)

    @overload
    def destroy(self, opts: Opts | None = None, callback: None = None, *,
                headers: Mapping[str, Any] | None = None, auth: Any = None) -> DrachtioFuture[Request]: ...
    @overload
    def destroy(self, opts: Opts | None, callback: Callback[Request], *,
                headers: Mapping[str, Any] | None = None, auth: Any = None) -> Dialog: ...
    @overload
    def destroy(self, opts: Callback[Request], *,
                headers: Mapping[str, Any] | None = None, auth: Any = None) -> Dialog: ...
    @overload
    def destroy(self, *, callback: Callback[Request],
                headers: Mapping[str, Any] | None = None, auth: Any = None) -> Dialog: ...

    def destroy(self, opts: Any = None, callback: Any = None, *, headers: Mapping[str, Any] | None = None,
                auth: Any = None) -> Any:
        """End the dialog: BYE (INVITE dialog) or NOTIFY ``Subscription-State: terminated``.

        cb(err, msg)|Future of the BYE/NOTIFY sent; returns the Dialog with a callback.
        """
        opts, callback = _split_args(opts, callback)
        o = normalize_opts(opts, headers=headers, auth=auth)
        out = self.agent.outcome(callback)
        if not self.connected:
            out.fail(DrachtioError(f"dialog {self.id} is already terminated"))
            return out.returned(self)
        hdrs = dict(o.get("headers") or {})
        if self.dialog_type == "SUBSCRIBE":
            method = "NOTIFY"
            hdrs.setdefault("Subscription-State", "terminated")
            if self.subscribe_event:
                hdrs.setdefault("Event", self.subscribe_event)
        else:
            method = "BYE"
        self._ended()

        def on_sent(err: BaseException | None, req: Request | None) -> None:
            if err is not None or req is None:
                out.fail(err or DrachtioError("destroy failed"))
                self.remove_all_listeners()
                return
            if method == "NOTIFY":
                out.succeed(req, key=req._key)
                self.remove_all_listeners()
                return

            def on_response(res: Any, ack: Any, lost: BaseException | None) -> None:
                if lost is not None:
                    out.fail(lost)
                elif res.status < 200:
                    return
                else:
                    out.succeed(req, key=req._key)
                self.remove_all_listeners()
            req._hooks.append(on_response)

        try:
            self.agent.send_request(method=method, uri=None, headers=hdrs, dialog_id=self.id,
                                    conn=self.req._conn, auth=o.get("auth") or self.auth, on_sent=on_sent)
        except DrachtioError as err:
            out.fail(err)
        return out.returned(self)

    # -- modify (re-INVITE) --------------------------------------------------------------------------
    @overload
    def modify(self, sdp: str | Opts | None = None, opts: Opts | None = None, callback: None = None, *,
               headers: Mapping[str, Any] | None = None, auth: Any = None,
               no_ack: bool | None = None) -> DrachtioFuture[str]: ...
    @overload
    def modify(self, sdp: str | Opts | None, opts: Opts | None, callback: Callable[..., object], *,
               headers: Mapping[str, Any] | None = None, auth: Any = None,
               no_ack: bool | None = None) -> Dialog: ...
    @overload
    def modify(self, sdp: str | Opts | None, opts: Callable[..., object], *,
               headers: Mapping[str, Any] | None = None, auth: Any = None,
               no_ack: bool | None = None) -> Dialog: ...
    @overload
    def modify(self, sdp: Callable[..., object], *,
               headers: Mapping[str, Any] | None = None, auth: Any = None,
               no_ack: bool | None = None) -> Dialog: ...
    @overload
    def modify(self, sdp: str | Opts | None = None, *, callback: Callable[..., object],
               headers: Mapping[str, Any] | None = None, auth: Any = None,
               no_ack: bool | None = None) -> Dialog: ...

    def modify(self, sdp: Any = None, opts: Any = None, callback: Any = None, *,
               headers: Mapping[str, Any] | None = None, auth: Any = None, no_ack: bool | None = None) -> Any:
        """Send a re-INVITE: ``sdp`` is new local SDP, ``'hold'`` or ``'unhold'`` (or None with
        ``no_ack`` for 3pcc).  cb(err, remote_sdp[, ack])|Future of the remote SDP, or of
        ``{sdp, ack}`` for 3pcc (typed as the SDP: ``typing.cast`` it).  One re-INVITE at a
        time; later calls wait their turn."""
        if isinstance(sdp, Mapping):
            sdp, opts, callback = None, sdp, opts
        elif callable(sdp) and opts is None:
            sdp, opts, callback = None, None, sdp
        opts, callback = _split_args(opts, callback)
        if sdp is not None and not isinstance(sdp, str):
            raise TypeError(f"modify(sdp, opts, callback): sdp must be a string ('hold', 'unhold' "
                            f"or an SDP body) or None, got {type(sdp).__name__} {sdp!r:.60}")
        o = normalize_opts(opts, headers=headers, auth=auth, no_ack=no_ack)
        out = self.agent.outcome(callback)
        if not self.connected:
            out.fail(DrachtioError("invalid request to modify a completed dialog"))
            return out.returned(self)

        def release() -> None:
            with _modify_lock:
                nxt = self._modify_waiting.pop(0) if self._modify_waiting else None
                if nxt is None:
                    self._modify_busy = False
            if nxt is not None:
                nxt(None)

        def start(err: BaseException | None) -> None:
            if err is not None:
                out.fail(err)
                return
            if not self.connected:
                out.fail(DrachtioError("dialog was destroyed before we could modify it"))
                release()
                return
            saved = (self.local.sdp, self.on_hold)
            if sdp == "hold":
                self.local.sdp = sdp_edit.hold_offer(self.local.sdp)
                self.on_hold = True
            elif sdp == "unhold":
                if not self.on_hold:
                    out.fail(DrachtioError("attempt to unhold session that is not on hold"))
                    release()
                    return
                self.local.sdp = sdp_edit.unhold_offer(self.local.sdp)
                self.on_hold = False
            elif sdp is not None:
                self.local.sdp = sdp
            hdrs = dict(o.get("headers") or {})
            if not any(k.lower() in ("contact", "m") for k in hdrs) and self.local.contact:
                hdrs["Contact"] = self.local.contact
            body = self.local.sdp if sdp is not None else None

            def restore() -> None:
                self.local.sdp, self.on_hold = saved

            def on_sent(err: BaseException | None, req: Request | None) -> None:
                if err is not None or req is None:
                    restore()
                    out.fail(err or DrachtioError("re-INVITE failed"))
                    release()
                    return

                def on_response(res: Any, ack: Any, lost: BaseException | None) -> None:
                    if lost is not None:
                        restore()
                        out.fail(lost)
                        release()
                        return
                    if res.status < 200:
                        return
                    if 200 <= res.status < 300:
                        self.remote.sdp = res.body or self.remote.sdp
                        if body is None and o.get("no_ack"):
                            def ack_3pcc(local_sdp: str | None = None) -> None:
                                if local_sdp:
                                    self.local.sdp = local_sdp
                                ack({"body": local_sdp} if local_sdp else None)
                                release()
                            if callback is not None:
                                out.succeed(res.body, ack_3pcc, key=dialog_key(self.id))
                            else:
                                out.succeed(AttrDict(sdp=res.body, ack=ack_3pcc))
                            return
                        ack()
                        out.succeed(res.body, key=dialog_key(self.id))
                        release()
                        return
                    restore()
                    out.fail(SipError(res.status, res.reason, res))
                    release()
                req._hooks.append(on_response)

            try:
                self.agent.send_request(method="INVITE", uri=None, headers=hdrs, body=body,
                                        dialog_id=self.id, conn=self.req._conn,
                                        auth=o.get("auth") or self.auth, on_sent=on_sent)
            except DrachtioError as exc:
                restore()
                out.fail(exc)
                release()

        with _modify_lock:
            busy = self._modify_busy
            if busy:
                self.__dict__.setdefault("_modify_waiting", []).append(start)
            else:
                self._modify_busy = True
        if not busy:
            start(None)
        return out.returned(self)

    # -- generic in-dialog request -----------------------------------------------------------------
    @overload
    def request(self, opts: Opts | None = None, callback: None = None, *, method: str | None = None,
                headers: Mapping[str, Any] | None = None, body: str | None = None, auth: Any = None,
                no_ack: bool | None = None) -> DrachtioFuture[Response]: ...
    @overload
    def request(self, opts: Opts | None, callback: Callable[..., object], *, method: str | None = None,
                headers: Mapping[str, Any] | None = None, body: str | None = None, auth: Any = None,
                no_ack: bool | None = None) -> Dialog: ...
    @overload
    def request(self, opts: Opts | None = None, *, callback: Callable[..., object],
                method: str | None = None, headers: Mapping[str, Any] | None = None,
                body: str | None = None, auth: Any = None, no_ack: bool | None = None) -> Dialog: ...

    def request(self, opts: Any = None, callback: Any = None, *, method: str | None = None,
                headers: Mapping[str, Any] | None = None, body: str | None = None, auth: Any = None,
                no_ack: bool | None = None) -> Any:
        """Send a request inside the dialog.  cb(err, res[, ack])|Future of the final response
        (of the sent request for ACK and CANCEL, whose responses never reach the app; of
        ``{res, ack}`` for an INVITE with ``no_ack`` and no body)."""
        opts, callback = _split_args(opts, callback)
        o = normalize_opts(opts, method=method, headers=headers, body=body, auth=auth, no_ack=no_ack)
        m = o.get("method")
        if not isinstance(m, str) or m.upper() not in SIP_METHODS:
            raise ValueError(f"opts.method is required and must be a SIP method, got {m!r}")
        m = m.upper()
        out = self.agent.outcome(callback)
        hdrs = dict(o.get("headers") or {})
        req_body = o.get("body")

        def on_sent(err: BaseException | None, req: Request | None) -> None:
            if err is not None or req is None:
                out.fail(err or DrachtioError("request failed"))
                return
            if m in ("ACK", "CANCEL"):
                # no response reaches the app for these (B5): done once the server has sent it
                out.succeed(req, key=dialog_key(self.id))
                return

            def on_response(res: Any, ack: Any, lost: BaseException | None) -> None:
                if lost is not None:
                    out.fail(lost)
                    return
                if res.status < 200:
                    return
                if m == "BYE":
                    self._ended()
                if m == "INVITE" and 200 <= res.status < 300:
                    if not req_body and o.get("no_ack"):
                        if callback is not None:
                            out.succeed(res, ack, key=dialog_key(self.id))
                        else:
                            out.succeed(AttrDict(res=res, ack=ack))
                        return
                    ack()
                if (self.dialog_type == "SUBSCRIBE" and m == "NOTIFY"
                        and "terminated" in (req.get("Subscription-State") or "")):
                    frm = req.get_parsed_header("From")
                    if self.remove_subscription(frm.uri, req.get("Event")) == 0:
                        self._ended()
                        self.agent.emit_on(dialog_key(self.id), self, "destroy", req)
                out.succeed(res, key=dialog_key(self.id))
            req._hooks.append(on_response)

        try:
            self.agent.send_request(method=m, uri=None, headers=hdrs, body=req_body, dialog_id=self.id,
                                    conn=self.req._conn, auth=o.get("auth") or self.auth, on_sent=on_sent)
        except DrachtioError as err:
            out.fail(err)
        return out.returned(self)

    # -- incoming in-dialog requests (on the dialog's key) -------------------------------------------
    def handle(self, req: Request, res: Response) -> None:
        """Handle one in-dialog request (API-DETAILS B2/B3/B7)."""
        if self._queue_requests:
            self.queued_requests.append((req, res))
            return
        method = req.method
        event = (method or "").lower()
        if method == "BYE":
            reason = "normal release"
            if req.source == "application" and req.has("Reason"):
                text = req.get("Reason") or ""
                m = _REASON_TEXT.search(text)
                reason = m.group(1) if m else text
            self._ended()
            res.send(200, _on_echo=ignore_echo)
            self.emit("destroy", req, reason)
            self.remove_all_listeners()
        elif method == "INVITE":
            self._handle_reinvite(req, res)
        elif method == "NOTIFY":
            ending = (self.dialog_type == "SUBSCRIBE"
                      and "terminated" in (req.get("Subscription-State") or ""))
            if self.listeners("notify"):
                self.emit("notify", req, res)
            else:
                res.send(200)
            if ending:
                # the subscription was recorded from the SUBSCRIBE's To: for a UAS dialog that is
                # the NOTIFY's To, for a UAC dialog the NOTIFY's From (drachtio-srf used To: B7)
                party = req.get_parsed_header("From" if self.type == "uac" else "To")
                if self.remove_subscription(party.uri, req.get("Event")) == 0:
                    self._ended()
                    self.emit("destroy", req)
        elif method in ("INFO", "REFER", "OPTIONS", "MESSAGE", "PUBLISH"):
            if self.listeners(event):
                self.emit(event, req, res)
            else:
                res.send(200)
        elif method == "UPDATE":
            if self.listeners("update"):
                self.emit("update", req, res)
            elif req.body and self.local.sdp:
                res.send(200, {"body": self.local.sdp, "headers": {"Content-Type": "application/sdp"}})
            else:
                res.send(200)
        elif method == "SUBSCRIBE":
            expires = (req.get("Expires") or "").strip()
            if expires.isdigit() and int(expires) == 0:
                res.send(202)
                self.emit("unsubscribe", req, "unsubscribe")
            elif self.listeners("subscribe"):
                self.emit("subscribe", req, res)
            else:
                res.send(489, "Bad Event - no dialog handler")
        elif method == "ACK":
            if req.body and not self.remote.sdp:
                self.remote.sdp = req.body        # late offer answered in the ACK (drachtio-srf #241)
            self.emit("ack", req)
        elif method == "PRACK":
            res.send(200)
        else:
            logger.warning("dialog %s: %s not allowed inside a dialog", self.id, method)
            res.send(501)

    def _take_ack(self, req: Request | None) -> bool:
        """The ACK branch of :meth:`handle` when it runs no user code (nobody listens for
        ``ack``, no requests being queued): done on the caller's thread.  False: not taken.
        ``req`` None: an ACK without a body, taken unparsed."""
        if self._queue_requests or self._events.get("ack"):
            return False
        if req is not None and req.body and not self.remote.sdp:
            self.remote.sdp = req.body        # late offer answered in the ACK (drachtio-srf #241)
        return True

    def _handle_reinvite(self, req: Request, res: Response) -> None:
        new = req.body or ""
        old = self.remote.sdp or ""
        refresh = bool(self.listeners("refresh")) and sdp_edit.is_refresh(old, new)
        hold = not refresh and bool(self.listeners("hold")) and sdp_edit.is_hold(old, new)
        unhold = (not refresh and not hold and self.on_hold and bool(self.listeners("unhold"))
                  and sdp_edit.is_unhold(old, new))
        if new:
            self.remote.sdp = new
        if refresh:
            self.emit("refresh", req)
        elif hold:
            self.local.sdp = sdp_edit.hold_answer(self.local.sdp)
            self.on_hold = True
            self.emit("hold", req)
        elif unhold:
            self.local.sdp = sdp_edit.unhold_answer(self.local.sdp)
            self.on_hold = False
            self.emit("unhold", req)
        if refresh or hold or unhold or not self.listeners("modify"):
            headers: dict[str, str] = {}
            if self.local.contact:
                headers["Contact"] = self.local.contact
            if self.local.sdp:
                headers["Content-Type"] = "application/sdp"
            res.send(200, {"body": self.local.sdp or None, "headers": headers})
        else:
            self.emit("modify", req, res)

    # -- a shortcut per method: dialog.info(opts) is dialog.request(opts, method="INFO") ------------
    info: _ShortcutMethod[Response] = _shortcut("INFO")
    """Send an INFO in the dialog; same arguments and result as :meth:`request`."""
    notify: _ShortcutMethod[Response] = _shortcut("NOTIFY")
    """Send a NOTIFY in the dialog; same arguments and result as :meth:`request`."""
    refer: _ShortcutMethod[Response] = _shortcut("REFER")
    """Send a REFER in the dialog; same arguments and result as :meth:`request`."""
    update: _ShortcutMethod[Response] = _shortcut("UPDATE")
    """Send an UPDATE in the dialog; same arguments and result as :meth:`request`."""
    message: _ShortcutMethod[Response] = _shortcut("MESSAGE")
    """Send a MESSAGE in the dialog; same arguments and result as :meth:`request`."""
    options: _ShortcutMethod[Response] = _shortcut("OPTIONS")
    """Send an OPTIONS in the dialog; same arguments and result as :meth:`request`."""
    invite: _ShortcutMethod[Response] = _shortcut("INVITE")
    """Send an INVITE in the dialog (prefer :meth:`modify` for a re-INVITE with SDP)."""
    bye: _ShortcutMethod[Response] = _shortcut("BYE")
    """Send a BYE in the dialog; same arguments and result as :meth:`request`."""
    prack: _ShortcutMethod[Response] = _shortcut("PRACK")
    """Send a PRACK in the dialog; same arguments and result as :meth:`request`."""
    publish: _ShortcutMethod[Response] = _shortcut("PUBLISH")
    """Send a PUBLISH in the dialog; same arguments and result as :meth:`request`."""
    subscribe: _ShortcutMethod[Response] = _shortcut("SUBSCRIBE")
    """Send a SUBSCRIBE in the dialog (refresh or unsubscribe); as :meth:`request`."""
    register: _ShortcutMethod[Response] = _shortcut("REGISTER")
    """Send a REGISTER in the dialog; same arguments and result as :meth:`request`."""
    cancel: _ShortcutMethod[Request] = _shortcut("CANCEL")      # done when sent (no response)
    """Send a CANCEL in the dialog; done once sent (no response): yields the Request."""
    ack: _ShortcutMethod[Request] = _shortcut("ACK")            # done when sent (no response)
    """Send an ACK in the dialog; done once sent (no response): yields the Request."""

    # -- JS names: the same objects (the table is names.ALIASES; a unit test checks they agree) ---
    dialogType = dialog_type
    """JS name of :attr:`dialog_type` (the same property)."""
    onHold = on_hold
    """JS name of :attr:`on_hold` (the same property)."""
    subscribeEvent = subscribe_event
    """JS name of :attr:`subscribe_event` (the same property)."""
    toJSON = to_json
    """JS name of :meth:`to_json`: returns the JSON-ready dict."""
    getCountOfSubscriptions = get_count_of_subscriptions
    """JS name of :meth:`get_count_of_subscriptions`: returns the count."""
    addSubscription = add_subscription
    """JS name of :meth:`add_subscription`: returns the new count."""
    removeSubscription = remove_subscription
    """JS name of :meth:`remove_subscription`: returns the count left."""
    queueRequests = queue_requests
    """JS name of :attr:`queue_requests` (the same property)."""



