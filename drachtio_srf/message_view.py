"""MessageView: the members Request and Response share, written once.

Both wrap a :class:`~drachtio_srf.sip.SipMessage` in ``msg`` and carry the transport meta the
server sent with the message.  This mixin delegates header access and the message's fields to
``msg`` and keeps that meta; each class adds what is its own (a Request's settable method, uri
and body; a Response's status and reason).
"""
from __future__ import annotations

from sys import intern as _intern
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from typing_extensions import Self

__all__ = ["MessageView"]


class MessageView:
    """Header access, message fields and server meta of a wrapped SipMessage (``self.msg``)."""

    msg: Any   # the SipMessage: a plain field on Request, built on first use by Response
    """The wrapped SipMessage that headers and fields are read from."""

    # Meta defaults (class attributes until first assigned: most messages never set some).
    source: str | None = None
    """Who sent it, from the server meta: ``'network'`` or ``'application'``."""
    source_address: str | None = None
    """IP address the message came from (server meta)."""
    source_port: int | None = None
    """Port the message came from (server meta; 5060 when not given)."""
    protocol: str | None = None
    """Transport protocol, e.g. ``'udp'``, ``'tcp'`` (server meta)."""
    stack_time: str | None = None
    """Server timestamp of the message, ``'HH:MM:SS.uuuuuu'``."""
    stack_txn_id: str | None = None
    """The server's transaction id for the message."""
    stack_dialog_id: str | None = None
    """The server's dialog id (``''`` when the message belongs to no dialog)."""

    # -- meta ---------------------------------------------------------------------------------
    @property
    def meta(self) -> dict[str, Any]:
        """The server meta as a dict (source, address, port, protocol, time, ids); settable."""
        return {"source": self.source, "source_address": self.source_address,
                "source_port": self.source_port, "protocol": self.protocol,
                "time": self.stack_time, "transactionId": self.stack_txn_id,
                "dialogId": self.stack_dialog_id}

    @meta.setter
    def meta(self, meta: Any) -> None:
        self._apply_meta(meta)

    def _apply_meta(self, meta: Any) -> None:
        """Copy the server's meta (source, address, port, protocol, time, txn and dialog ids).

        The few distinct source, address and protocol values are interned: a dialog keeps two
        messages for its whole life, and these would otherwise be fresh strings in each."""
        source, address, protocol, port = meta.source, meta.address, meta.protocol, meta.port
        self.source = _intern(source) if type(source) is str else source
        self.source_address = _intern(address) if type(address) is str else address
        self.source_port = (port if type(port) is int else int(port)) if port else 5060
        self.protocol = _intern(protocol) if type(protocol) is str else protocol
        self.stack_time = meta.time
        self.stack_txn_id = meta.txn_id
        self.stack_dialog_id = meta.dialog_id or ""

    # -- delegated to the SipMessage ------------------------------------------------------------
    def get(self, name: str) -> str | None:
        """The value of header ``name``, or None when absent."""
        return self.msg.get(name)

    def has(self, name: str) -> bool:
        """True if the message has header ``name``."""
        return self.msg.has(name)

    def set(self, name: Any, value: Any = None) -> Self:
        """Add header ``name`` (appending ``,value`` if present), or several from a dict; returns self."""
        if value is None:
            self.msg.set(name)
        else:
            self.msg.set(name, value)
        return self

    def get_parsed_header(self, name: str) -> Any:
        """Header ``name`` parsed (e.g. To/From/Contact into uri and params)."""
        return self.msg.get_parsed_header(name)

    @property
    def method(self) -> str | None:
        """None for a response."""
        return self.msg.method

    @property
    def uri(self) -> str | None:
        """The request-URI (None for a response)."""
        return self.msg.uri

    @property
    def headers(self) -> dict[str, str]:
        """All headers as a dict of name to value."""
        return self.msg.headers

    @property
    def body(self) -> str:
        """The message body (``''`` when there is none)."""
        return self.msg.body

    @property
    def payload(self) -> Any:
        """The body as a list of ``{type, content}``: one item, or one per multipart part."""
        return self.msg.payload

    @property
    def type(self) -> str:
        """``'request'``, ``'response'`` or ``'unknown'``."""
        return self.msg.type

    @property
    def raw(self) -> str | None:
        """The SIP text the message was parsed from, if any."""
        return self.msg.raw

    @property
    def calling_number(self) -> Any:
        """User part of P-Asserted-Identity, else of From; ``''`` if none."""
        return self.msg.calling_number

    @property
    def calling_name(self) -> Any:
        """Quoted display name of P-Asserted-Identity, else of From; ``''`` if none."""
        return self.msg.calling_name

    @property
    def called_number(self) -> Any:
        """User part of the request-URI; ``''`` if none."""
        return self.msg.called_number

    @property
    def can_form_dialog(self) -> bool:
        """True for an INVITE or SUBSCRIBE without a To tag (it would start a dialog)."""
        return self.msg.can_form_dialog

    def to_string(self) -> str:
        """The message serialised as SIP text (same as ``str(msg)``)."""
        return str(self.msg)

    def to_json(self) -> dict[str, Any]:
        """A JSON-ready dict: the SIP text and the server meta."""
        return {"msg": str(self.msg), "source": self.source, "source_address": self.source_address,
                "source_port": self.source_port, "protocol": self.protocol,
                "stackTime": self.stack_time, "stackDialogId": self.stack_dialog_id,
                "stackTxnId": self.stack_txn_id}

    def __str__(self) -> str:
        return str(self.msg)

    # -- JS names of the members above (the table is names.ALIASES, per class; install_aliases
    # makes the JS name of a plain field a property forwarding to it)
    stackTime = stack_time
    """JS name of :attr:`stack_time` (forwards to it)."""
    stackTxnId = stack_txn_id
    """JS name of :attr:`stack_txn_id` (forwards to it)."""
    stackDialogId = stack_dialog_id
    """JS name of :attr:`stack_dialog_id` (forwards to it)."""
    getParsedHeader = get_parsed_header
    """JS name of :meth:`get_parsed_header`: returns the parsed header."""
    callingNumber = calling_number
    """JS name of :attr:`calling_number` (the same property)."""
    callingName = calling_name
    """JS name of :attr:`calling_name` (the same property)."""
    calledNumber = called_number
    """JS name of :attr:`called_number` (the same property)."""
    canFormDialog = can_form_dialog
    """JS name of :attr:`can_form_dialog` (the same property)."""
    toJSON = to_json
    """JS name of :meth:`to_json`: returns the JSON-ready dict."""
    toString = to_string
    """JS name of :meth:`to_string`: returns the SIP text."""
