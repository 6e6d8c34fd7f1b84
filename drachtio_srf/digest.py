"""Sans-I/O HTTP/SIP Digest client (RFC 2617, RFC 7616, RFC 3261 section 22).

Parses a ``WWW-Authenticate`` / ``Proxy-Authenticate`` challenge, picks the strongest
supported one, and builds the ``Authorization`` / ``Proxy-Authorization`` value.  Supported:
algorithms MD5, MD5-sess, SHA-256, SHA-256-sess, SHA-512-256, SHA-512-256-sess; qop ``auth``
and ``auth-int`` (``auth`` preferred when both are offered), no qop (RFC 2069 compatibility);
``opaque`` echoed; ``userhash``; per-nonce nonce counts.  Nothing here does I/O or threading
beyond a lock around the nonce counter.

This fixes drachtio-srf's client (API-DETAILS defect 21): MD5 only, qop lists used verbatim,
commas inside quoted values breaking the parse, nc always 00000001.
"""
from __future__ import annotations

import hashlib
import logging
import os
import threading
from collections import OrderedDict
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any

from .sip.headers import parse_auth_headers

logger = logging.getLogger(__name__)

__all__ = [
    "ALGORITHMS",
    "Challenge",
    "Credentials",
    "DigestError",
    "NonceCounter",
    "build_authorization",
    "choose_challenge",
    "compute_response",
    "make_cnonce",
    "parse_challenges",
]

_HASHES = {"MD5": "md5", "SHA-256": "sha256", "SHA-512-256": "sha512_256"}
#: supported algorithm names (upper case), weakest first
ALGORITHMS = ("MD5", "MD5-SESS", "SHA-256", "SHA-256-SESS", "SHA-512-256", "SHA-512-256-SESS")
"""Supported algorithm names (upper case), weakest first."""
_STRENGTH = {"MD5": 0, "SHA-256": 1, "SHA-512-256": 2}


class DigestError(ValueError):
    """A challenge we cannot answer (not Digest, missing nonce, unsupported algorithm or qop)."""


@dataclass(frozen=True)
class Credentials:
    """A username and password to answer a Digest challenge with."""
    username: str
    """The user name to authenticate as."""
    password: str
    """The password (used only to compute hashes, never sent)."""


@dataclass(frozen=True)
class Challenge:
    """One Digest challenge.  ``algorithm`` is as the server spelled it (echoed back)."""

    realm: str
    """The protection realm the credentials are for."""
    nonce: str
    """The server's nonce, echoed back and hashed into the response."""
    algorithm: str = "MD5"
    """Algorithm as the server spelled it (echoed back as is)."""
    qop: tuple[str, ...] = ()          # the qop options offered, lower case; () = no qop
    """The qop options offered, lower case; () means no qop."""
    opaque: str | None = None
    """Opaque value to echo back unchanged (None when absent)."""
    stale: bool = False
    """True when the server said the previous nonce was stale."""
    userhash: bool = False
    """Whether the server asks for the username to be hashed (RFC 7616 userhash)."""
    domain: str | None = None
    """The domain parameter, if given."""
    algorithm_given: bool = False      # whether the challenge named an algorithm at all
    """Whether the challenge named an algorithm at all."""
    params: Mapping[str, str] = field(default_factory=dict)
    """All challenge parameters as parsed."""

    @property
    def base_algorithm(self) -> str:
        """``'MD5'`` / ``'SHA-256'`` / ``'SHA-512-256'`` without ``-sess``."""
        up = self.algorithm.upper()
        return up.removesuffix("-SESS")

    @property
    def session(self) -> bool:
        """True for a ``-sess`` algorithm variant."""
        return self.algorithm.upper().endswith("-SESS")

    @property
    def supported(self) -> bool:
        """Whether we can answer it: a known algorithm and, if qop is offered, auth or auth-int."""
        return self.algorithm.upper() in ALGORITHMS and (not self.qop or bool(
            {"auth", "auth-int"} & set(self.qop)))

    @classmethod
    def from_params(cls, params: Mapping[str, Any]) -> Challenge:
        """From one parsed item of ``get_parsed_header('www-authenticate')``."""
        scheme = str(params.get("scheme") or "")
        if scheme.lower() != "digest":
            raise DigestError(f"not a Digest challenge: scheme {scheme!r}")
        lower = {str(k).lower(): str(v) for k, v in params.items() if k != "scheme" and v is not None}
        nonce = lower.get("nonce")
        if not nonce:
            raise DigestError("Digest challenge has no nonce")
        qop = tuple(q.strip().lower() for q in lower.get("qop", "").split(",") if q.strip())
        return cls(realm=lower.get("realm", ""), nonce=nonce,
                   algorithm=lower.get("algorithm") or "MD5", qop=qop, opaque=lower.get("opaque"),
                   stale=lower.get("stale", "").lower() == "true",
                   userhash=lower.get("userhash", "").lower() == "true",
                   domain=lower.get("domain"), algorithm_given="algorithm" in lower,
                   params=lower)


def parse_challenges(values: str | Iterable[str]) -> list[Challenge]:
    """Every Digest challenge in the header value(s); other schemes (Basic, ...) are skipped.

    Commas inside quoted values (``qop="auth,auth-int"``, ``realm="a, b"``) are handled.
    Raises :class:`DigestError` if there is no usable Digest challenge at all.
    """
    lines = [values] if isinstance(values, str) else list(values)
    try:
        items = parse_auth_headers(lines)
    except ValueError as err:
        raise DigestError(f"unparseable challenge: {err}") from err
    out: list[Challenge] = []
    problems: list[str] = []
    for item in items:
        try:
            out.append(Challenge.from_params(item))
        except DigestError as err:
            problems.append(str(err))
    if not out:
        raise DigestError("; ".join(problems) or "no challenge found")
    return out


def choose_challenge(challenges: Iterable[Challenge], realm: str | None = None) -> Challenge:
    """The strongest supported challenge (RFC 7616 3.7: prefer the first of the best algorithm)."""
    usable = [c for c in challenges if c.supported and (realm is None or c.realm == realm)]
    if not usable:
        raise DigestError("no challenge with a supported algorithm and qop")
    best = max(_STRENGTH[c.base_algorithm] for c in usable)
    return next(c for c in usable if _STRENGTH[c.base_algorithm] == best)


def _h(algorithm: str, text: str) -> str:
    name = _HASHES.get(algorithm.upper().removesuffix("-SESS"))
    if name is None:
        raise DigestError(f"unsupported digest algorithm {algorithm!r}")
    return hashlib.new(name, text.encode("utf-8")).hexdigest()


def make_cnonce() -> str:
    """A fresh client nonce (16 random bytes, hex)."""
    return os.urandom(16).hex()


def compute_response(*, algorithm: str, username: str, password: str, realm: str, nonce: str,
                     method: str, uri: str, qop: str | None = None, nc: str | None = None,
                     cnonce: str | None = None, body: str = "") -> str:
    """The ``response`` value of RFC 7616 3.4.1 (RFC 2617 3.2.2.1 when ``qop`` is None)."""
    ha1 = _h(algorithm, f"{username}:{realm}:{password}")
    if algorithm.upper().endswith("-SESS"):
        if cnonce is None:
            raise DigestError(f"{algorithm} needs a cnonce")
        ha1 = _h(algorithm, f"{ha1}:{nonce}:{cnonce}")
    if qop == "auth-int":
        ha2 = _h(algorithm, f"{method}:{uri}:{_h(algorithm, body)}")
    else:
        ha2 = _h(algorithm, f"{method}:{uri}")
    if qop:
        if nc is None or cnonce is None:
            raise DigestError("qop needs nc and cnonce")
        return _h(algorithm, f"{ha1}:{nonce}:{nc}:{cnonce}:{qop}:{ha2}")
    return _h(algorithm, f"{ha1}:{nonce}:{ha2}")


def _quote(value: str) -> str:
    return '"' + value.replace("\\", "\\\\").replace('"', '\\"') + '"'


def build_authorization(challenge: Challenge, *, username: str, password: str, method: str,
                        uri: str, body: str = "", nc: int = 1, cnonce: str | None = None) -> str:
    """The ``Authorization`` / ``Proxy-Authorization`` header value answering ``challenge``.

    ``qop=auth`` is chosen when offered (then ``auth-int``); ``nc`` is this nonce's count
    (see :class:`NonceCounter`); ``cnonce`` defaults to a fresh random one.
    """
    if not challenge.supported:
        raise DigestError(f"cannot answer challenge: algorithm {challenge.algorithm!r}, "
                          f"qop {','.join(challenge.qop)!r}")
    qop = None
    if challenge.qop:
        qop = "auth" if "auth" in challenge.qop else "auth-int"
    need_cnonce = qop is not None or challenge.session
    if need_cnonce and cnonce is None:
        cnonce = make_cnonce()
    nc_text = f"{nc:08x}" if qop else None
    response = compute_response(algorithm=challenge.algorithm, username=username, password=password,
                                realm=challenge.realm, nonce=challenge.nonce, method=method.upper(),
                                uri=uri, qop=qop, nc=nc_text, cnonce=cnonce if need_cnonce else None,
                                body=body)
    user = _h(challenge.algorithm, f"{username}:{challenge.realm}") if challenge.userhash else username
    parts = [f"username={_quote(user)}", f"realm={_quote(challenge.realm)}",
             f"nonce={_quote(challenge.nonce)}", f"uri={_quote(uri)}", f"response={_quote(response)}",
             f"algorithm={challenge.algorithm}"]
    if need_cnonce and cnonce is not None:
        parts.append(f"cnonce={_quote(cnonce)}")
    if challenge.opaque is not None:
        parts.append(f"opaque={_quote(challenge.opaque)}")
    if qop:
        parts += [f"qop={qop}", f"nc={nc_text}"]
    if challenge.userhash:
        parts.append("userhash=true")
    return "Digest " + ", ".join(parts)


class NonceCounter:
    """Thread-safe nonce counts (RFC 7616 3.4: nc increments for each request with a nonce).

    Keeps the most recent ``max_entries`` (realm, nonce) pairs.
    """

    def __init__(self, max_entries: int = 1024) -> None:
        self._counts: OrderedDict[tuple[str, str], int] = OrderedDict()
        self._lock = threading.Lock()
        self._max = max_entries

    def next(self, realm: str, nonce: str) -> int:
        """Count for the next request using this nonce (1 the first time)."""
        key = (realm, nonce)
        with self._lock:
            n = self._counts.pop(key, 0) + 1
            if n > 0xFFFFFFFF:
                n = 1
            self._counts[key] = n
            while len(self._counts) > self._max:
                self._counts.popitem(last=False)
            return n
