"""Agent: one per Srf, the protocol engine the public objects (Srf, Dialog, Request, Response)
call into.  It is assembled from layers, each one module with one job, lowest first:

* :mod:`drachtio_srf.hold` - rule 5 of DESIGN.md (the hold on a fresh dialog's events until its
  consumer has attached listeners) and :class:`Outcome`, how async methods report back;
* :mod:`drachtio_srf.channel` - connections and commands: :class:`ServerConn`, authentication,
  command/reply matching by msgId, routes, ping, the timeout sweep, the dispatcher and timers;
* :mod:`drachtio_srf.routing` - incoming frames to Requests, Responses and events on the
  dispatcher keys that give DESIGN.md's ordering;
* :mod:`drachtio_srf.outgoing` - requests, responses, ACK/PRACK, CANCEL and proxy out;
* :mod:`drachtio_srf.uac_auth` - answering 401/407 challenges, on top, plugged in here.

No layer imports one above it at run time: what a lower layer needs from above (the Srf's
request handler and dialog registry, the auth hooks) is passed down as callables.
"""
from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from . import uac_auth
from .channel import COMMAND_TIMEOUT, ServerConn
from .hold import GatedFuture, Outcome, run_task
from .outgoing import _FROM_REQUEST, Sender, build_message, ignore_echo, response_text
from .routing import dialog_key

if TYPE_CHECKING:
    from .request import Request
    from .response import Response
    from .srf import Srf

__all__ = [
    "COMMAND_TIMEOUT",
    "_FROM_REQUEST",
    "Agent",
    "GatedFuture",
    "Outcome",
    "ServerConn",
    "build_message",
    "dialog_key",
    "ignore_echo",
    "response_text",
    "run_task",
]


class Agent(Sender):
    """The protocol engine under one Srf: every layer, with UAC auth plugged in."""

    def __init__(self, srf: Srf, *, on_request: Callable[[Request, Response], Any] | None = None,
                 find_dialog: Callable[[str], Any] | None = None) -> None:
        super().__init__(srf, on_request=on_request, find_dialog=find_dialog)
        self.on_challenge = uac_auth.on_challenge
        """Challenge hook: answers a 401/407 to a request we sent by retrying it with credentials."""
        self.auth_state = uac_auth.auth_state
        """Looks up the UAC auth state kept for a sent request (see :mod:`drachtio_srf.uac_auth`)."""
        self.defer_cancel = uac_auth.defer_cancel
        """Hook that postpones a CANCEL while an authenticated retry of its INVITE is in flight."""
