"""Response: the answer the application sends to a Request, or one it received.

``send`` accepts every drachtio-srf argument form::

    send(status)                      send(status, reason)
    send(status, opts)                send(status, reason, opts)
    send(status, callback)            send(status, opts, callback, fn_ack)
    send(status, reason, opts, callback, fn_ack)

(plus ``headers=``/``body=`` keywords).  ``callback(err, sent_msg)`` runs when the server echoes
what it sent; ``fn_ack(req)`` runs when the ACK (to a 200) or PRACK (to a reliable 1xx) arrives.
Events: ``end({status, reason})`` (attribute or item access) as soon as a final response is sent, ``finish`` after it.
"""
from __future__ import annotations

import logging
from collections.abc import Callable, Mapping
from typing import TYPE_CHECKING, Any

from .emitter import Emitter
from .message_view import MessageView
from .names import install_aliases
from .sip import STATUS_REASONS, AttrDict, SipMessage
from .usercode import adapt

if TYPE_CHECKING:
    from .agent import Agent, ServerConn
    from .dispatch import DrachtioFuture
    from .request import Request

logger = logging.getLogger(__name__)

__all__ = ["Response"]

# headers an outgoing response takes from its request (drachtio-server fills in the rest)
_FROM_REQUEST = ("Call-ID", "CSeq", "From", "To")


@install_aliases
class Response(MessageView, Emitter):
    """A SIP response: to be sent by the application, or received for a request it sent.

    The SipMessage of a response the application will send is built on first use of ``msg``
    (most are sent without the app touching their headers: :meth:`Agent.send_response` then
    builds the wire text from the request directly).
    """

    # Defaults for fields most responses never set (class attributes until first assigned).
    _req: Request | None = None
    finished = False
    """True once the final response has been sent."""
    _reason: str | None = None    # reason sent, kept here while no SipMessage was built
    _send_disabled = False   # unsolicited BYE from the server: nothing to answer

    def __init__(self, agent: Agent | None = None, conn: ServerConn | None = None, msg: Any = None) -> None:
        # (no super().__init__(): MessageView and Emitter keep their state in class defaults)
        self._msg = msg
        self.agent = agent
        """The server connection's agent the response goes through, or None."""
        self._conn = conn
        self.srf: Any = agent.srf if agent is not None else None
        """The :class:`Srf` application, or None without an agent."""
        # (not getattr(msg, "status", None): with msg None, the usual case, that raises and
        # catches an AttributeError inside)
        self._status: int | None = getattr(msg, "status", None) if msg is not None else None

    @property
    def msg(self) -> Any:
        """The SipMessage (for a response to send: headers copied from the request, as set)."""
        m = self._msg
        if m is None:
            m = self._msg = SipMessage()
            req = self._req
            if req is not None:
                self._copy_from(req, m)
            if self._reason is not None:      # already sent without one being built
                m.status = self._status
                m.reason = self._reason
        return m

    @msg.setter
    def msg(self, value: Any) -> None:
        self._msg = value

    @staticmethod
    def _copy_from(req: Request, m: Any) -> None:
        for name in _FROM_REQUEST:
            value = req.get(name)
            if value is not None and not m.has(name):
                m.set(name, value)

    def _retain(self) -> None:
        """This response is kept for long (a dialog's): drop what its message can rebuild."""
        m = self._msg
        if m is None:
            return          # (never built: nothing to drop)
        shrink = getattr(m, "_shrink", None)
        if shrink is not None:
            shrink()

    def _apply_meta(self, meta: Any) -> None:
        super()._apply_meta(meta)
        req = self._req
        if req is not None and self.stack_txn_id == req.stack_txn_id:
            self.stack_txn_id = req.stack_txn_id      # one string for the pair (kept by dialogs)

    # -- request link (meta is MessageView's) ----------------------------------------------
    @property
    def req(self) -> Request | None:
        """The request this response answers; setting it copies its dialog-forming headers."""
        return self._req

    @req.setter
    def req(self, req: Request) -> None:
        """Link to the request; for a response we will send, copy its dialog-forming headers
        (now if the message exists, else when it is first built)."""
        self._req = req
        m = self._msg
        if m is not None and (m.type != "response" or m.status is None):
            self._copy_from(req, m)

    # -- status ---------------------------------------------------------------------------
    @property
    def status(self) -> int | None:
        """The status code (sent or received; settable before sending)."""
        if self._status is not None:
            return self._status
        m = self._msg
        return m.status if m is not None else None

    @status.setter
    def status(self, value: int) -> None:
        self._status = value

    status_code = status
    """Same property as :attr:`status` (Express-style name)."""

    @property
    def reason(self) -> str | None:
        """The reason phrase (sent or received)."""
        m = self._msg
        return m.reason if m is not None else self._reason

    @property
    def final_response_sent(self) -> bool:
        """True once the final response has been sent (as :attr:`finished`)."""
        return self.finished

    @property
    def headers_sent(self) -> bool:
        """True once the final response has been sent (as :attr:`finished`)."""
        return self.finished

    # -- header access (get, has, set, get_parsed_header and the message fields: MessageView) -
    get_header = MessageView.get
    """Same method as :meth:`get`: the value of a header, or None."""

    def set_header(self, name: str, value: Any) -> Response:
        """Set header ``name`` on the response to send; returns self."""
        return self.set(name, value)

    def remove_header(self, name: str) -> None:
        """Express compatibility; headers are not removed (as drachtio-srf)."""

    # -- sending ----------------------------------------------------------------------------
    def send(self, status: int, *args: Any, reason: str | None = None, opts: Mapping[str, Any] | None = None,
             callback: Any = None, fn_ack: Any = None, headers: Mapping[str, Any] | None = None,
             body: str | None = None,
             _on_echo: Callable[..., None] | None = None) -> DrachtioFuture[SipMessage] | None:
        """Send this response; returns a Future of the sent message when no callback is given
        (None with a callback, or when nothing is sent: a final response was already sent).

        Positional arguments after ``status`` follow drachtio-srf (see the module docstring);
        ``reason=``, ``opts=``, ``callback=``, ``fn_ack=`` may also be given as keywords.
        """
        if not isinstance(status, int) or isinstance(status, bool) or not 100 <= status <= 699:
            raise ValueError(f"Response.send: status must be a SIP status code, got {status!r}")
        if args:
            given = _positional_send_args(args)
            reason = given["reason"] if given["reason"] is not None else reason
            opts = given["opts"] if given["opts"] is not None else opts
            callback = given["callback"] if given["callback"] is not None else callback
            fn_ack = given["fn_ack"] if given["fn_ack"] is not None else fn_ack
        if opts:
            opt_headers = opts.get("headers")
            hdrs = dict(opt_headers) if opt_headers else {}
            if body is None:
                body = opts.get("body")
        else:
            hdrs = {}
        if headers:
            hdrs.update(headers)
        if callback is not None or fn_ack is not None:
            callback = adapt(callback, self)
            fn_ack = adapt(fn_ack, self)
        if self._send_disabled:
            logger.debug("response to an unsolicited request: nothing sent")
            return None
        if self.finished:
            err = RuntimeError("Response.send: final response already sent")
            if _on_echo is not None:
                _on_echo(err, None)
                return None
            if callback is not None:
                if self.agent is not None:
                    self.agent.dispatcher.submit(None, callback, err)
                return None
            logger.debug("Response.send: final response already sent; ignored")
            return None
        if self.agent is None or self._req is None:
            raise RuntimeError("Response.send: response is not attached to a request")
        self._status = status
        reason = self._reason = reason or STATUS_REASONS.get(status, "")
        m = self._msg
        if m is not None:
            m.status = status
            m.reason = reason
        # the application may choose the To tag: move it onto our copy of the request's To
        if hdrs:
            for key in [k for k in hdrs if k.lower() == "to"]:
                to_value = str(hdrs.pop(key))
                idx = to_value.find("tag=")
                current = self.msg.get("To")
                if idx >= 0 and current is not None and "tag=" not in current:
                    self.msg.replace("To", f"{current};tag={to_value[idx + 4:]}")
        result: DrachtioFuture[SipMessage] | None = self.agent.send_response(
            self, hdrs, body, callback, fn_ack, on_echo=_on_echo)
        if status >= 200:
            self.finished = True
            if self._events.get("end"):
                self.emit("end", AttrDict(status=status, reason=reason))
        return result

    def end(self, data: Any = None,
            callback: Callable[..., Any] | None = None) -> DrachtioFuture[SipMessage] | None:
        """Express compatibility: send the current status (200 when unset)."""
        if self.finished:
            raise RuntimeError("Response.end after the response is finished")
        status = self._status or 200
        return self.send(status, {"body": data} if isinstance(data, str) else None, callback)

    def __repr__(self) -> str:
        return f"<Response {self.status} {self.reason}>"

    # -- JS names (the table is names.ALIASES; the ones shared with Request are MessageView's) --
    statusCode = status_code
    """JS name of :attr:`status_code` (the same property)."""
    finalResponseSent = final_response_sent
    """JS name of :attr:`final_response_sent` (the same property)."""
    headersSent = headers_sent
    """JS name of :attr:`headers_sent` (the same property)."""
    getHeader = get_header
    """JS name of :attr:`get_header`: returns a header's value."""
    setHeader = set_header
    """JS name of :meth:`set_header`: returns self."""
    removeHeader = remove_header
    """JS name of :meth:`remove_header` (which does nothing)."""


_SEND_SLOTS = ("reason", "opts", "callback", "fn_ack")


def _positional_send_args(args: tuple[Any, ...]) -> dict[str, Any]:
    """Place ``send``'s positional arguments in the slots reason, opts, callback, fn_ack.

    Each argument goes to the first free slot (from the current one on) that takes its type: a
    string is the reason, a mapping the opts, a callable the callback then fn_ack; None just
    fills the current slot (``send(183, None, opts, None, fn_ack)``).
    """
    out: dict[str, Any] = dict.fromkeys(_SEND_SLOTS)
    i = 0
    for arg in args:
        if arg is None:
            i += 1
            continue
        kinds = ("reason",) if isinstance(arg, str) else ("opts",) if isinstance(arg, Mapping) else (
            ("callback", "fn_ack") if callable(arg) else ())
        while i < len(_SEND_SLOTS) and _SEND_SLOTS[i] not in kinds:
            i += 1
        if i >= len(_SEND_SLOTS):
            raise TypeError(f"Response.send: unexpected argument {arg!r}")
        out[_SEND_SLOTS[i]] = arg
        i += 1
    return out
