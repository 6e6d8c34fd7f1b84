"""Small attrs records the public API hands out: a dialog's SIP identity and its two ends."""
from __future__ import annotations

from typing import Any

import attrs

from .names import install_aliases

__all__ = ["SipEndpointInfo", "SipInfo"]


@install_aliases
@attrs.define
class SipInfo:
    """What identifies a dialog on the wire: Call-ID and the two tags."""

    call_id: str
    local_tag: str | None
    remote_tag: str | None

    def to_dict(self) -> dict[str, Any]:
        return {"callId": self.call_id, "localTag": self.local_tag, "remoteTag": self.remote_tag}


@attrs.define
class SipEndpointInfo:
    """One end of a dialog: its URI, its current SDP and (for the local end) its Contact."""

    uri: str | None
    sdp: str | None
    contact: str | None = None

    def to_dict(self) -> dict[str, Any]:
        d: dict[str, Any] = {"uri": self.uri, "sdp": self.sdp}
        if self.contact is not None:
            d["contact"] = self.contact
        return d
