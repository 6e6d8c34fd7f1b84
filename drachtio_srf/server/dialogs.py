"""Dialog state kept by the embedded server: tags, route set, remote target, CSeqs, owner connection.

The server creates a dialog for an INVITE (on the 2xx, or on a reliable 1xx) and for a SUBSCRIBE
(on 200/202), on either side (UAS: the app answered; UAC: the app's request was answered). Its id
is ``<Call-ID>;from-tag=<From tag of the creating request>`` (PROTOCOL.md 3.6).
"""
from __future__ import annotations

import logging
from dataclasses import dataclass, field
from typing import Any

logger = logging.getLogger(__name__)


def dialog_id(call_id: str, from_tag: str) -> str:
    """The id drachtio-server gives a dialog: ``<Call-ID>;from-tag=<tag>``."""
    return f"{call_id};from-tag={from_tag}"


@dataclass(eq=False)
class Dialog:
    """One SIP dialog the server holds for an app connection."""

    id: str
    """The dialog id given to the app."""
    call_id: str
    """Call-ID of the dialog."""
    role: str                      # 'uas' (the app answered) | 'uac' (the app's request was answered)
    """``'uas'`` when the app answered, ``'uac'`` when the app's request was answered."""
    kind: str                      # 'invite' | 'subscribe'
    """``'invite'`` or ``'subscribe'``: the kind of request that created the dialog."""
    local_tag: str
    """Our tag."""
    remote_tag: str
    """The peer's tag."""
    local_party: str               # our From/To header value, tag included
    """Our From/To header value, tag included."""
    remote_party: str              # the peer's header value, tag included
    """The peer's From/To header value, tag included."""
    remote_target: str             # request-URI for in-dialog requests (peer's Contact URI)
    """Request-URI for in-dialog requests (the peer's Contact URI)."""
    route_set: list[str]           # Route header values, in the order they are sent
    """Route header values for in-dialog requests, in the order they are sent."""
    local_contact: str             # our Contact header value
    """Our Contact header value."""
    transport: str                 # 'udp' | 'tcp'
    """Transport of the dialog: ``'udp'`` or ``'tcp'``."""
    owner: Any                     # the ControlConnection that owns the dialog
    """The ControlConnection (app) that owns the dialog."""
    local_cseq: int
    """Last CSeq number we used in this dialog."""
    remote_cseq: int | None = None
    """Last CSeq number seen from the peer (None before its first request)."""
    invite_txn_id: str | None = None    # txnId of the creating request (ACK of the initial 2xx)
    """txnId of the request that created the dialog (for the ACK of the initial 2xx)."""
    invite_cseq: int | None = None      # CSeq number of the creating request
    """CSeq number of the request that created the dialog."""
    initial_acked: bool = False
    """True once the initial 2xx has been acknowledged."""
    confirmed: bool = True              # False while only an early (reliable 1xx) dialog
    """False while the dialog is only early (after a reliable 1xx)."""
    pending_ack_cseq: int | None = None  # UAC: CSeq of an INVITE whose 2xx the app has to ACK
    """UAC: CSeq of an INVITE whose 2xx the app still has to ACK."""
    last_ack: Any = None                # UAC: the ACK last sent (for 2xx retransmissions)
    """UAC: the ACK last sent, resent when the 2xx is retransmitted."""
    last_ack_target: Any = None
    """UAC: where the last ACK was sent."""
    last_invite_failed: bool = False    # UAC: the last INVITE in this dialog got a non-2xx
    """UAC: True when the last INVITE in this dialog got a non-2xx final response."""
    source: Any = None                  # where the peer's requests came from (UAS side)
    """UAS: where the peer's requests came from."""
    extra: dict[str, Any] = field(default_factory=dict)
    """Free-form per-dialog data kept by the core."""

    def next_cseq(self) -> int:
        """Increment and return the local CSeq for a new in-dialog request."""
        self.local_cseq += 1
        return self.local_cseq


class DialogTable:
    """All dialogs, by id and by Call-ID."""

    def __init__(self) -> None:
        self._by_id: dict[str, Dialog] = {}
        self._by_call_id: dict[str, list[Dialog]] = {}

    def __len__(self) -> int:
        return len(self._by_id)

    def __iter__(self):
        return iter(list(self._by_id.values()))

    def add(self, dialog: Dialog) -> None:
        """Register a dialog; replaces an older one with the same id."""
        old = self._by_id.get(dialog.id)
        if old is not None:
            self.remove(old)
        self._by_id[dialog.id] = dialog
        self._by_call_id.setdefault(dialog.call_id, []).append(dialog)
        logger.debug("dialog added %s (%s, %s)", dialog.id, dialog.role, dialog.kind)

    def remove(self, dialog: Dialog) -> None:
        """Forget a dialog (no error when already gone)."""
        if self._by_id.get(dialog.id) is dialog:
            del self._by_id[dialog.id]
            logger.debug("dialog removed %s", dialog.id)
        lst = self._by_call_id.get(dialog.call_id)
        if lst and dialog in lst:
            lst.remove(dialog)
            if not lst:
                del self._by_call_id[dialog.call_id]

    def get(self, dlg_id: str) -> Dialog | None:
        """The dialog with this id, or None."""
        return self._by_id.get(dlg_id)

    def find(self, call_id: str | None, local_tag: str | None, remote_tag: str | None) -> Dialog | None:
        """The dialog a message with these Call-ID and tags belongs to (from our point of view)."""
        if not call_id:
            return None
        for d in self._by_call_id.get(call_id, ()):
            if d.local_tag == local_tag and d.remote_tag == remote_tag:
                return d
        return None

    def by_call_id(self, call_id: str | None) -> Dialog | None:
        """The first dialog with this Call-ID (rule 5 of PROTOCOL.md 3.1)."""
        if not call_id:
            return None
        lst = self._by_call_id.get(call_id)
        return lst[0] if lst else None

    def owned_by(self, owner: Any) -> list[Dialog]:
        """All dialogs owned by ``owner`` (a ControlConnection)."""
        return [d for d in self._by_id.values() if d.owner is owner]
