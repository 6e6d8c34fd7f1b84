"""Small attrs records the public API hands out: a dialog's SIP identity and its two ends."""
from __future__ import annotations

from collections.abc import Callable
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


class SipEndpointInfo:
    """One end of a dialog: its URI, its current SDP and (for the local end) its Contact.

    A record like the attrs ones (init, eq, repr), except that the library may hand it a
    function for ``uri``: the Contact header is then parsed only if someone reads the URI.
    """

    __slots__ = ("_uri", "_uri_from", "contact", "sdp")
    __hash__ = None  # type: ignore[assignment]   # mutable, compared by value (as attrs)

    def __init__(self, uri: str | None, sdp: str | None, contact: str | None = None) -> None:
        self._uri = uri
        self._uri_from: Callable[[], str | None] | None = None
        self.sdp = sdp
        self.contact = contact

    @classmethod
    def _lazy(cls, uri_from: Callable[[], str | None], sdp: str | None,
              contact: str | None = None) -> SipEndpointInfo:
        info = cls(None, sdp, contact)
        info._uri_from = uri_from
        return info

    @property
    def uri(self) -> str | None:
        make = self._uri_from
        if make is not None:
            self._uri = make()
            self._uri_from = None
        return self._uri

    @uri.setter
    def uri(self, value: str | None) -> None:
        self._uri_from = None
        self._uri = value

    def __eq__(self, other: object) -> bool:
        if other.__class__ is not self.__class__:
            return NotImplemented
        assert isinstance(other, SipEndpointInfo)
        return (self.uri, self.sdp, self.contact) == (other.uri, other.sdp, other.contact)

    def __repr__(self) -> str:
        return f"SipEndpointInfo(uri={self.uri!r}, sdp={self.sdp!r}, contact={self.contact!r})"

    def to_dict(self) -> dict[str, Any]:
        d: dict[str, Any] = {"uri": self.uri, "sdp": self.sdp}
        if self.contact is not None:
            d["contact"] = self.contact
        return d
