"""Transaction bookkeeping of the server core: a request pending at an app, or sent by one.

``Incoming``: a request from the network handed to an app and not yet answered finally.
``Outgoing``: a request an app sent, waiting for its responses. The core keeps them by txnId.
"""
from __future__ import annotations

import asyncio
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:  # pragma: no cover
    from drachtio_srf.server.control import ControlConnection
    from drachtio_srf.server.dialogs import Dialog
    from drachtio_srf.server.timers import Timer
    from drachtio_srf.sip import SipMessage


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

