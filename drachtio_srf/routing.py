"""Routing of incoming messages: frames from the server become Requests, Responses and events,
each handed to the dispatcher under the key that gives DESIGN.md's ordering.

Keys:

* ``("dlg", dialog_id)`` - everything about one dialog: in-dialog requests, ACK/PRACK, the
  completion of create_uas/create_uac that created it, responses to requests sent in it;
* ``("call", call_id)`` - a new request from the network and its middleware chain;
* ``("evt", txn_id)`` - events on a pending incoming INVITE (``cancel``, ``update``), kept off the
  handler's key so a handler blocked in ``.result()`` still hears about a CANCEL;
* ``("txn", txn_id)`` - responses to a request sent outside any dialog.

Responses are matched to the requests we sent by txnId, in-dialog requests to dialogs by
dialogId; the pending incoming INVITEs (for CANCEL and UPDATE) and the ACK/PRACK waiters live on
the :class:`~drachtio_srf.channel.ServerConn`.  All of it runs on the reader thread and is
library code only.  One exception, for the common call: an in-dialog ACK that would run no user
code (its dialog's key is idle and nobody listens for ``ack``) is handled on the reader without a
task (:meth:`Router._ack_without_task`), and without even being parsed when it has no body and
no ``fn_ack`` waits for it (:meth:`Router._ack_unread`); when the key is busy it queues as usual.

What happens next is passed down by the layers above as callables, never imported:
``on_request(req, res)`` (the Srf's middleware and verb handlers), ``find_dialog(dialog_id)``
(the Srf's dialog registry) and ``on_challenge`` (UAC auth, :mod:`drachtio_srf.uac_auth`).
"""
from __future__ import annotations

import functools
import logging
from collections.abc import Callable, Hashable
from typing import TYPE_CHECKING, Any

from . import wire
from .channel import Channel, ServerConn
from .request import _SERVER_OF_CONN, Request
from .response import Response
from .sip import SipMessage, SipParseError

if TYPE_CHECKING:
    from collections.abc import Mapping

    from .srf import Srf

logger = logging.getLogger(__name__)

__all__ = ["Router", "dialog_key"]

#: ``on_challenge(agent, sc, req, res, ack)``: True when a 401/407 is being answered by a retry.
ChallengeHook = Callable[[Any, ServerConn, Request, Response, Callable[..., Any]], bool]


def dialog_key(dialog_id: str) -> tuple[str, str]:
    """The dispatcher key of everything about one dialog."""
    return ("dlg", dialog_id)


def _noop(*_args: Any, **_kwargs: Any) -> None:
    return None


def _retry_chain(req: Request) -> list[Request]:
    """``req`` and the requests it re-sends with credentials (``_retry_of``), the first first."""
    chain = [req]
    while (earlier := chain[-1]._retry_of) is not None:
        chain.append(earlier)
    chain.reverse()
    return chain


def _unhandled(req: Request, _res: Response) -> None:
    logger.warning("no request handler: %s %s dropped", req.method, req.uri)


class Router(Channel):
    """Incoming frames to Requests/Responses/events, on the right dispatcher key."""

    def __init__(self, srf: Srf, *, on_request: Callable[[Request, Response], Any] | None = None,
                 find_dialog: Callable[[str], Any] | None = None) -> None:
        super().__init__(srf)
        #: runs (as user code, on the dispatcher) for every new or in-dialog request
        self.on_request: Callable[[Request, Response], Any] = on_request or _unhandled
        """Runs as user code on the dispatcher for every new or in-dialog request."""
        #: the Dialog with a dialog id, or None
        self.find_dialog: Callable[[str], Any] = find_dialog or (lambda _dialog_id: None)
        """Returns the Dialog with a given dialog id, or None."""
        #: set by the UAC auth layer; called on the reader for a 401/407 to a request we sent
        self.on_challenge: ChallengeHook | None = None
        """Set by the UAC auth layer; called on the reader for a 401/407 to a request we sent."""

    if TYPE_CHECKING:
        def send_ack(self, sc: ServerConn, method: str, dialog_id: str, req: Request, res: Response,
                     opts: Mapping[str, Any] | str | None = None, callback: Any = None) -> Any:
            """(outgoing.Sender) ACK/PRACK in a dialog."""

    def _on_message(self, sc: ServerConn, f: wire.Frame) -> None:
        if f.type == "sip":
            self._on_sip(sc, f)
        elif f.type.startswith("cdr:"):
            self._on_cdr(f)
        else:
            logger.error("unknown frame type %r from drachtio server", f.type)

    def _on_cdr(self, f: wire.Frame) -> None:
        kind = f.type
        try:
            msg = SipMessage(f.sip or "")
        except SipParseError as err:
            logger.error("unparseable SIP in %s: %s", kind, err)
            return
        args: list[Any] = [f.field(2), f.field(3)]
        if kind != "cdr:attempt":
            args.append(f.field(4))
        args.append(msg)
        self.emit_on(("cdr",), self.srf, kind, *args)    # one key: records reach listeners in order

    def _on_sip(self, sc: ServerConn, f: wire.Frame) -> None:
        fields = f.fields
        if len(fields) < 10:
            logger.debug("ignoring sip frame with %d fields", len(fields))
            return
        sip = f.sip
        if (sip is not None and sip.startswith("ACK ") and fields[9] and fields[2] == "network"
                and sip.find("\r\n\r\n") == len(sip) - 4 and self._ack_unread(sc, fields[9])):
            return
        try:
            meta = wire.SipMeta.from_sip_frame(f)
        except (wire.WireProtocolError, ValueError) as err:
            logger.warning("dropped a sip frame from drachtio server %s:%s: %s", *sc.peer, err)
            return
        try:
            msg = SipMessage(f.sip or "")
        except SipParseError as err:
            logger.error("unparseable SIP message from drachtio server: %s", err)
            return
        if meta.source == "network" and msg.type == "request":
            self._on_network_request(sc, msg, meta)
        elif meta.source == "network" and msg.type == "response":
            self._on_response(sc, msg, meta)
        elif meta.source == "application" and msg.type == "request" and meta.txn_id == "unsolicited":
            req, res = self._make_incoming(sc, msg, meta)
            res._send_disabled = True
            self.submit(self._request_key(req), self.on_request, req, res)
        else:
            logger.debug("ignoring sip frame source=%s type=%s", meta.source, msg.type)

    def _make_incoming(self, sc: ServerConn, msg: SipMessage, meta: wire.SipMeta) -> tuple[Request, Response]:
        req = Request(msg, meta, agent=self, conn=sc)  # type: ignore[arg-type]  # self is the whole Agent
        req._server = _SERVER_OF_CONN      # {address, hostport} made if someone reads it
        res = Response(self, sc)  # type: ignore[arg-type]  # self is the whole Agent
        res.req = req
        req.res = res
        req._key = ("evt", meta.txn_id)
        return req, res

    @staticmethod
    def _request_key(req: Request) -> Hashable:
        if req.stack_dialog_id:
            return dialog_key(req.stack_dialog_id)
        return ("call", req.call_id or req.stack_txn_id)

    def _on_network_request(self, sc: ServerConn, msg: SipMessage, meta: wire.SipMeta) -> None:
        call_id = msg.call_id or ""
        method = msg.method
        if method == "CANCEL":
            with sc.lock:
                invite = sc.invites.pop(call_id, None)
            if invite is not None:
                invite._far_end_canceled(msg)
            else:
                logger.debug("CANCEL for unknown call-id %s dropped", call_id)
            return
        req, res = self._make_incoming(sc, msg, meta)
        key = dialog_key(meta.dialog_id) if meta.dialog_id else ("call", call_id or meta.txn_id)
        if method == "INVITE":
            with sc.lock:
                sc.invites[call_id] = req
        elif method in ("ACK", "PRACK") and meta.dialog_id:
            with sc.lock:
                fn_ack = sc.ack_waiters.pop(meta.dialog_id, None)
            if fn_ack is not None:
                self.submit(key, fn_ack, req)
            elif method == "ACK" and self._ack_without_task(req, key):
                return
        elif method == "UPDATE":
            with sc.lock:
                invite = sc.invites.get(call_id)
                pending_uac = None
                if invite is None:
                    pending_uac = next((r for r in sc.sent.values()
                                        if r.method == "INVITE" and r.call_id == call_id), None)
            if invite is not None:
                if invite.listeners("update"):
                    self.emit_on(invite._key, invite, "update", req, res)
                else:
                    res.send(500, {"headers": {"Retry-After": "5"}})
                return
            if pending_uac is not None:
                if pending_uac._retry_of is not None:
                    # re-sent with credentials: whichever request the app (or create_uac)
                    # listens on, the newest first
                    pending_uac = next((r for r in reversed(_retry_chain(pending_uac))
                                        if r.listeners("update")), pending_uac)
                self.emit_on(pending_uac._key, pending_uac, "update", req, res)
                return
        self.submit(key, self.on_request, req, res)

    def _ack_unread(self, sc: ServerConn, dialog_id: str) -> bool:
        """An in-dialog ACK without a body that nothing will read: no ``fn_ack`` waits for it,
        its dialog's key is idle (see :meth:`_ack_without_task`) and the dialog has no ``ack``
        listener.  Then it is done here, before any parsing: no SipMessage, Request or
        Response is made for it (one ACK per call).  False means: handle it as usual."""
        if dialog_id in sc.ack_waiters or not self.dispatcher.idle(dialog_key(dialog_id)):
            return False
        dialog = self.find_dialog(dialog_id)
        return dialog is not None and dialog._take_ack(None)

    def _ack_without_task(self, req: Request, key: Hashable) -> bool:
        """Handle an in-dialog ACK here on the reader when that runs no user code: the dialog's
        key has nothing queued or running (so nothing that could still attach an ``ack``
        listener is pending, e.g. a create_uas completion or a rule-5 hold) and nobody listens
        for ``ack``.  Saves a worker hand-off per call; False means: dispatch as usual."""
        if not self.dispatcher.idle(key):
            return False
        dialog = self.find_dialog(req.stack_dialog_id or "")
        return dialog is not None and dialog._take_ack(req)

    def _on_response(self, sc: ServerConn, msg: SipMessage, meta: wire.SipMeta) -> None:
        with sc.lock:
            req = sc.sent.get(meta.txn_id)
            if req is not None and (msg.status or 0) >= 200:
                del sc.sent[meta.txn_id]
        if req is None:
            logger.debug("response for unknown transaction %s dropped", meta.txn_id)
            return
        res = Response(self, sc, msg)  # type: ignore[arg-type]  # self is the whole Agent
        res._apply_meta(meta)   # (what setting res.meta does)
        res.req = req
        status = msg.status or 0
        ack: Callable[..., Any] = _noop
        if status >= 200 and req.method == "INVITE":
            if 200 <= status < 300:
                ack = functools.partial(self.send_ack, sc, "ACK", meta.dialog_id, req, res)
        elif 100 < status < 200 and msg.has("RSeq"):
            ack = functools.partial(self.send_ack, sc, "PRACK", meta.dialog_id, req, res)
        if status in (401, 407) and self.on_challenge is not None and self.on_challenge(self, sc, req, res, ack):
            return      # re-sent with credentials (PROTOCOL 4.11)
        self.deliver_response(req, res, ack)

    def deliver_response(self, req: Request, res: Response, ack: Callable[..., Any]) -> None:
        """Hand a response to the library hooks of ``req`` and its ``response`` listeners."""
        for hook in list(req._hooks):
            self._safe(hook, res, ack, None)
        # a busy key may still run the code that attaches a listener (the send's callback, or a
        # Future's consumer under its rule-5 hold): queue the event behind it
        if req._retry_of is None:
            if req.listeners("response") or not self.dispatcher.idle(req._key):
                self.emit_on(req._key, req, "response", res, ack)
            return
        # an authenticated retry: the requests it re-sent hear its responses first (drachtio-srf
        # moves their listeners over), checked when the event runs, so late listeners count too
        for sent in _retry_chain(req):
            if sent.listeners("response") or not self.dispatcher.idle(sent._key):
                self.emit_on(sent._key, sent, "response", res, ack)
