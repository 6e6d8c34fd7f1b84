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

    # Meta defaults (class attributes until first assigned: most messages never set some).
    source: str | None = None
    source_address: str | None = None
    source_port: int | None = None
    protocol: str | None = None
    stack_time: str | None = None
    stack_txn_id: str | None = None
    stack_dialog_id: str | None = None

    # -- meta ---------------------------------------------------------------------------------
    @property
    def meta(self) -> dict[str, Any]:
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
        self.source = _intern(meta.source) if type(meta.source) is str else meta.source
        self.source_address = _intern(meta.address) if type(meta.address) is str else meta.address
        self.source_port = int(meta.port) if meta.port else 5060
        self.protocol = _intern(meta.protocol) if type(meta.protocol) is str else meta.protocol
        self.stack_time = meta.time
        self.stack_txn_id = meta.txn_id
        self.stack_dialog_id = meta.dialog_id or ""

    # -- delegated to the SipMessage ------------------------------------------------------------
    def get(self, name: str) -> str | None:
        return self.msg.get(name)

    def has(self, name: str) -> bool:
        return self.msg.has(name)

    def set(self, name: Any, value: Any = None) -> Self:
        if value is None:
            self.msg.set(name)
        else:
            self.msg.set(name, value)
        return self

    def get_parsed_header(self, name: str) -> Any:
        return self.msg.get_parsed_header(name)

    @property
    def method(self) -> str | None:
        """None for a response."""
        return self.msg.method

    @property
    def uri(self) -> str | None:
        return self.msg.uri

    @property
    def headers(self) -> dict[str, str]:
        return self.msg.headers

    @property
    def body(self) -> str:
        return self.msg.body

    @property
    def payload(self) -> Any:
        return self.msg.payload

    @property
    def type(self) -> str:
        return self.msg.type

    @property
    def raw(self) -> str | None:
        return self.msg.raw

    @property
    def calling_number(self) -> Any:
        return self.msg.calling_number

    @property
    def calling_name(self) -> Any:
        return self.msg.calling_name

    @property
    def called_number(self) -> Any:
        return self.msg.called_number

    @property
    def can_form_dialog(self) -> bool:
        return self.msg.can_form_dialog

    def to_string(self) -> str:
        """The message serialised as SIP text (same as ``str(msg)``)."""
        return str(self.msg)

    def to_json(self) -> dict[str, Any]:
        return {"msg": str(self.msg), "source": self.source, "source_address": self.source_address,
                "source_port": self.source_port, "protocol": self.protocol,
                "stackTime": self.stack_time, "stackDialogId": self.stack_dialog_id,
                "stackTxnId": self.stack_txn_id}

    def __str__(self) -> str:
        return str(self.msg)

    # -- JS names of the members above (the table is names.ALIASES, per class; install_aliases
    # makes the JS name of a plain field a property forwarding to it)
    stackTime = stack_time
    stackTxnId = stack_txn_id
    stackDialogId = stack_dialog_id
    getParsedHeader = get_parsed_header
    callingNumber = calling_number
    callingName = calling_name
    calledNumber = called_number
    canFormDialog = can_form_dialog
    toJSON = to_json
    toString = to_string
