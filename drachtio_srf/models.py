"""The small objects the public API hands out, and the types of its callbacks.

* attrs records: a dialog's SIP identity (:class:`SipInfo`) and its two ends (:class:`SipEndpointInfo`);
* JS-style objects: dicts whose keys are also attributes, as a JS object literal reads
  (``req.server.address`` and ``req.server["address"]``), typed for checkers
  (:class:`ServerInfo`, :class:`Registration`, :class:`ProxyResult`), and :class:`B2BUAResult`,
  which also unpacks as ``uas, uac = result``;
* :func:`json_default`: makes what the library hands out ``json.dumps``-able as the JS objects are;
* the callback types (``Callback[T]``: ``cb(err, result)``) used in the public signatures.
"""
from __future__ import annotations

from collections.abc import Callable, Iterator
from typing import TYPE_CHECKING, Any, Protocol, TypeVar

import attrs

from .names import install_aliases
from .sip import AttrDict

if TYPE_CHECKING:
    from .dialog import Dialog

__all__ = [
    "B2BUAResult",
    "Callback",
    "ProxyResult",
    "Registration",
    "ServerInfo",
    "SipEndpointInfo",
    "SipInfo",
    "json_default",
]

_T = TypeVar("_T")

#: An async method's callback: ``cb(err, result)`` on success (err None), ``cb(err)`` on failure.
#: Functions taking only ``err`` are accepted too (JS drops the arguments a function does not take).
Callback = Callable[[BaseException | None, _T], object] | Callable[[BaseException | None], object]
"""An async method's callback: ``cb(err, result)``, ``err`` None on success; ``cb(err)`` works too."""


@install_aliases
@attrs.define
class SipInfo:
    """What identifies a dialog on the wire: Call-ID and the two tags."""

    call_id: str
    """The dialog's Call-ID."""
    local_tag: str | None
    """Our tag (From tag for a UAC, To tag for a UAS)."""
    remote_tag: str | None
    """The far end's tag."""

    if TYPE_CHECKING:   # the JS names, for type checkers (install_aliases makes them the fields)
        callId: str
        """JS name of :attr:`call_id`."""
        localTag: str | None
        """JS name of :attr:`local_tag`."""
        remoteTag: str | None
        """JS name of :attr:`remote_tag`."""

    def to_dict(self) -> dict[str, Any]:
        """``{"callId", "localTag", "remoteTag"}``, as drachtio-srf shows it."""
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
        """The end's current SDP (None when none was exchanged)."""
        self.contact = contact
        """The Contact header value (our end only), else None."""

    @classmethod
    def _lazy(cls, uri_from: Callable[[], str | None], sdp: str | None,
              contact: str | None = None) -> SipEndpointInfo:
        info = cls(None, sdp, contact)
        info._uri_from = uri_from
        return info

    @property
    def uri(self) -> str | None:
        """The end's Contact URI (parsed on first read when given lazily); settable."""
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
        """``{"uri", "sdp"}`` plus ``"contact"`` when set."""
        d: dict[str, Any] = {"uri": self.uri, "sdp": self.sdp}
        if self.contact is not None:
            d["contact"] = self.contact
        return d


# --------------------------------------------------------------------------- JS-style objects

class ServerInfo(AttrDict):
    """``req.server``: the drachtio server an incoming request came from (``{address, hostport}``)."""

    __slots__ = ()
    address: str | None
    """IP address of the drachtio server (the connection's peer)."""
    hostport: str | None
    """The server connection's ``host:port``."""


class Registration(AttrDict):
    """``req.registration`` of a REGISTER: ``{type: 'register'|'unregister', expires, contact, aor}``."""

    __slots__ = ()
    type: str
    """``'unregister'`` when the expiry is 0, else ``'register'``."""
    expires: int | None
    """Expiry in seconds (Contact ``expires`` param, else Expires header), or None."""
    contact: Any
    """The parsed Contact header: a list of entries (or ``'*'``)."""
    aor: str | None
    """The address of record: the URI of the To header."""


class ProxyResult(Protocol):
    """What ``proxy_request`` / ``req.proxy`` deliver: a dict with attribute access.

    ``connected`` (a 200 came back), ``final_status``/``finalStatus``,
    ``final_response``/``finalResponse`` (``{time, status, msg}``) and ``responses``
    (``[{address, port, msgs: [{time, status, msg}]}]``); item access works too.
    """

    connected: bool
    """True if a 200 OK came back."""
    final_status: int | None
    """Status of the final response, None if there was none."""
    finalStatus: int | None
    """JS name of :attr:`final_status`."""
    final_response: Any
    """The final response as ``{time, status, msg}``."""
    finalResponse: Any
    """JS name of :attr:`final_response`."""
    responses: list[Any]
    """Per target tried: ``{address, port, msgs: [{time, status, msg}]}``."""

    def __getitem__(self, key: str) -> Any: ...


class B2BUAResult:
    """``create_b2bua``'s result: the two dialogs.

    Read it as in JS (``result.uas``, ``result["uac"]``) or unpack it (``uas, uac = result``).
    ``json_default`` turns it into ``{"uas": ..., "uac": ...}`` as JSON.stringify does.
    """

    __slots__ = ("uac", "uas")

    def __init__(self, uas: Dialog, uac: Dialog) -> None:
        self.uas = uas
        """The UAS leg: the dialog with the caller."""
        self.uac = uac
        """The UAC leg: the dialog with the called party."""

    def __iter__(self) -> Iterator[Dialog]:
        """``uas, uac = result``."""
        yield self.uas
        yield self.uac

    def __len__(self) -> int:
        return 2

    def __getitem__(self, key: str | int) -> Dialog:
        """``result["uas"]``, ``result["uac"]`` (and ``result[0]``, ``result[1]``)."""
        if key in ("uas", 0):
            return self.uas
        if key in ("uac", 1):
            return self.uac
        raise KeyError(key)

    def keys(self) -> tuple[str, str]:
        """``("uas", "uac")``: ``dict(result)`` gives ``{"uas": ..., "uac": ...}``."""
        return ("uas", "uac")

    def to_json(self) -> dict[str, Any]:
        """``{"uas": uas.to_json(), "uac": uac.to_json()}``."""
        return {"uas": self.uas.to_json(), "uac": self.uac.to_json()}

    toJSON = to_json
    """JS name of :meth:`to_json`: returns ``{"uas": ..., "uac": ...}``."""

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, B2BUAResult):
            return NotImplemented
        return self.uas is other.uas and self.uac is other.uac

    __hash__ = None  # type: ignore[assignment]

    def __repr__(self) -> str:
        return f"B2BUAResult(uas={self.uas!r}, uac={self.uac!r})"


def json_default(obj: Any) -> Any:
    """``json.dumps(x, default=json_default)``: JSON for the objects the library hands out.

    Objects with ``to_json()`` (Dialog, Request, Response, SipError, B2BUAResult) or ``to_dict()``
    (SipInfo, SipEndpointInfo) give that; a SipMessage gives its SIP text; sets and other
    iterables give lists.  Anything else raises ``TypeError``, as ``json.dumps`` does.
    """
    for name in ("to_json", "to_dict"):
        method = getattr(obj, name, None)
        if callable(method):
            return method()
    from .sip import SipMessage
    if isinstance(obj, SipMessage):
        return str(obj)
    if isinstance(obj, (set, frozenset)):
        return list(obj)
    raise TypeError(f"Object of type {type(obj).__name__} is not JSON serializable")
