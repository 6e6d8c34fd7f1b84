"""SIP header knowledge: names (canonical, stored, compact), value parsers, status phrases.

Everything here works on plain strings and is cheap on the common case (str methods first,
precompiled regexes only where a value has quotes or unusual spacing).
"""

from __future__ import annotations

import logging
import os
import re
from collections.abc import Callable
from typing import Any

from .attrdict import AttrDict
from .errors import SipParseError, snippet
from .numbers import MAX_CONTENT_LENGTH_DIGITS, MAX_SEQ, ascii_int, port_number

logger = logging.getLogger(__name__)

__all__ = [
    "COMPACT_FORMS",
    "MULTI_PARSERS",
    "SINGLE_PARSERS",
    "STATUS_REASONS",
    "AttrDict",
    "header_key",
    "header_name",
    "parse_auth_headers",
    "parse_auth_info",
    "parse_cseq",
    "parse_name_addr",
    "parse_name_addr_list",
    "parse_params",
    "parse_via",
    "pretty_name",
    "reason_phrase",
    "split_commas",
    "unquote",
]


# ---------------------------------------------------------------------------------------------
# header names

#: compact form -> full (lower-case) header name (RFC 3261 7.3.3 and extensions)
COMPACT_FORMS: dict[str, str] = {
    "a": "accept-contact",
    "b": "referred-by",
    "c": "content-type",
    "d": "request-disposition",
    "e": "content-encoding",
    "f": "from",
    "i": "call-id",
    "j": "reject-contact",
    "k": "supported",
    "l": "content-length",
    "m": "contact",
    "n": "identity-info",
    "o": "event",
    "r": "refer-to",
    "s": "subject",
    "t": "to",
    "u": "allow-events",
    "v": "via",
    "x": "session-expires",
    "y": "identity",
}
"""Compact header form to its full lower-case name (RFC 3261 7.3.3 and extensions)."""

# spelling used when serialising headers stored in lower case
_PRETTY: dict[str, str] = {
    "call-id": "Call-ID",
    "cseq": "CSeq",
    "www-authenticate": "WWW-Authenticate",
    "rack": "RAck",
    "rseq": "RSeq",
    "mime-version": "MIME-Version",
    "sip-etag": "SIP-ETag",
    "sip-if-match": "SIP-If-Match",
    "p-asserted-identity": "P-Asserted-Identity",
    "remote-party-id": "Remote-Party-ID",
    "identity-info": "Identity-Info",
}

_TOKEN_RE = re.compile(r"[A-Za-z0-9\-.!%*_+`'~]+")
# an unquoted display name: tokens separated by whitespace (RFC 3261 25.1)
_DISPLAY_TOKENS_RE = re.compile(r"[A-Za-z0-9\-.!%*_+`'~]+(?:[ \t]+[A-Za-z0-9\-.!%*_+`'~]+)*")

_PRESERVE: frozenset[str] = frozenset(
    n.strip().lower()
    for n in os.environ.get("DRACHTIO_PRESERVE_HEADER_NAMES", "").split(",")
    if n.strip()
) | {"diversion"}

# raw header name (as seen on the wire or passed by a user) -> (lookup key, stored name,
# whether serialising writes the name back exactly as ``raw``: SipMessage uses that to reuse the
# received text when nothing in it would change)
_NAME_CACHE: dict[str, tuple[str, str, bool]] = {}
_NAME_CACHE_MAX = 4096


def _resolve(raw: str) -> tuple[str, str, bool]:
    """(lookup key, stored name, same on the wire) for a header name.

    Raises SipParseError if the name is not a token.
    """
    try:
        return _NAME_CACHE[raw]
    except KeyError:
        pass
    name = raw.strip()
    if not _TOKEN_RE.fullmatch(name):
        raise SipParseError(f"bad header name: {snippet(raw)}")
    lower = name.lower()
    if (name.startswith("X-") or (name.startswith("P-") and not name.startswith("P-Asserted"))
            or lower in _PRESERVE):
        stored = name
        key = lower
    else:
        key = COMPACT_FORMS.get(lower, lower) if len(lower) == 1 else lower
        stored = key
    result = (key, stored, pretty_name(stored) == raw)
    # SipMessage's parser looks names up before checking for continuation lines: never cache
    # a name that starts like one
    if raw[0] not in " \t":
        if len(_NAME_CACHE) >= _NAME_CACHE_MAX:
            _NAME_CACHE.clear()
        _NAME_CACHE[raw] = result
    return result


def header_name(name: str) -> str:
    """The stored spelling of a header name (drachtio-srf's getHeaderName rules).

    Lower-case, compact forms expanded, except names starting ``X-``, ``P-`` (not
    ``P-Asserted...``), ``Diversion`` and those listed in ``DRACHTIO_PRESERVE_HEADER_NAMES``.
    """
    try:
        return _resolve(name)[1]
    except SipParseError:
        raise ValueError(f"bad header name: {snippet(name)}") from None


def header_key(name: str) -> str:
    """The case-insensitive lookup key of a header name (lower-case, compact forms expanded)."""
    try:
        return _resolve(name)[0]
    except SipParseError:
        raise ValueError(f"bad header name: {snippet(name)}") from None


_PRETTY_CACHE: dict[str, str] = {}


def pretty_name(stored: str) -> str:
    """The spelling used on the wire for a stored name (``cseq`` -> ``CSeq``).

    Names stored with their own case (``X-``, ``P-``...) are emitted as they are.
    """
    try:
        return _PRETTY_CACHE[stored]
    except KeyError:
        pass
    if stored != stored.lower():
        pretty = stored
    else:
        pretty = _PRETTY.get(stored) or "-".join(p[:1].upper() + p[1:] for p in stored.split("-"))
    if len(_PRETTY_CACHE) >= _NAME_CACHE_MAX:
        _PRETTY_CACHE.clear()
    _PRETTY_CACHE[stored] = pretty
    return pretty


# ---------------------------------------------------------------------------------------------
# value helpers

_QUOTED_RE = re.compile(r'"(?:[^"\\]|\\.)*"', re.DOTALL)
_UNESCAPE_RE = re.compile(r"\\(.)", re.DOTALL)


def split_outside(value: str, sep: str, angle: bool) -> list[str]:
    """Split ``value`` on ``sep`` where it stands outside double-quoted strings (backslash
    escapes; an unterminated one runs to the end) and, with ``angle``, outside ``<...>`` (an
    unterminated one runs to the end). Items are not stripped; empty ones are kept.

    It jumps from one special character to the next with ``str.find`` (the regex it replaces,
    with nested repeats, cost several times as much on a Contact with a quoted ``+sip.instance``).
    """
    items: list[str] = []
    start = pos = 0
    n = len(value)
    while True:
        nxt = value.find(sep, pos)
        limit = nxt if nxt >= 0 else n
        quote = value.find('"', pos, limit)
        lt = value.find("<", pos, quote if quote >= 0 else limit) if angle else -1
        if lt >= 0:                          # a <...> group first: skip it
            close = value.find(">", lt + 1)
            if close < 0:
                break
            pos = close + 1
        elif quote >= 0:                     # a quoted string first: skip it
            pos = quote + 1
            while True:
                close = value.find('"', pos)
                if close < 0:
                    pos = n
                    break
                backslash = value.find("\\", pos, close)
                if backslash < 0:
                    pos = close + 1
                    break
                pos = backslash + 2          # past the escaped character
            if pos >= n:
                break
        elif nxt >= 0:
            items.append(value[start:nxt])
            start = pos = nxt + 1
        else:
            break
    items.append(value[start:])
    return items


def unquote(value: str) -> str:
    """Strip surrounding double quotes and resolve backslash escapes; other text unchanged."""
    if len(value) >= 2 and value[0] == '"' and value[-1] == '"':
        inner = value[1:-1]
        return _UNESCAPE_RE.sub(r"\1", inner) if "\\" in inner else inner
    return value


def split_commas(value: str) -> list[str]:
    """Split a header value on commas that are outside quotes and ``<...>``; items stripped."""
    if "," not in value:
        v = value.strip()
        return [v] if v else []
    if '"' not in value and "<" not in value:
        items = value.split(",")
    else:
        items = split_outside(value, ",", True)
    return [s for s in (i.strip() for i in items) if s]


def parse_params(text: str) -> AttrDict:
    """``;a=1;lr;b="x;y"`` -> {a: '1', lr: None, b: '"x;y"'} (names lower-cased, values as given)."""
    params = AttrDict()
    if not text:
        return params
    if '"' not in text and " " not in text and text.isprintable():
        # common case, no quotes and no whitespace at all (every whitespace character but the
        # space is non-printable): nothing to strip
        if text[0] == ";":
            text = text[1:]
        if ";" not in text:             # one param (";tag=..."): no split
            name, sep, val = text.partition("=")
            if name:
                params[name.lower()] = val if sep else None
            return params
        for item in text.split(";"):
            name, sep, val = item.partition("=")
            if name:
                params[name.lower()] = val if sep else None
        return params
    items = text.split(";") if '"' not in text else split_outside(text, ";", False)
    for item in items:
        name, sep, val = item.partition("=")
        name = name.strip()
        if not name:
            continue
        params[name.lower()] = val.strip() if sep else None
    return params


def parse_name_addr(value: str) -> AttrDict:
    """A name-addr or addr-spec (From, To, Contact item...) -> AttrDict{name, uri, params}.

    ``name`` is the display name unquoted (None when absent); without ``<>`` the URI ends at the
    first ``;`` and the params belong to the header.
    """
    v = value.strip()
    if not v:
        raise SipParseError("empty name-addr")
    first = v[0]
    name: str | None = None
    if first == "<":
        lt = 0
    elif first == '"':
        close = v.find('"', 1)
        if close > 0 and "\\" not in v[1:close]:
            name = v[1:close]           # no escapes: the quoted string ends at the next quote
            close += 1
        else:
            m = _QUOTED_RE.match(v)
            if m is None:
                raise SipParseError(f"unterminated quoted display name in {snippet(v)}")
            name = unquote(m.group())
            close = m.end()
        lt = v.find("<", close)
        if lt < 0:
            raise SipParseError(f"missing '<' after display name in {snippet(v)}")
    else:
        lt = v.find("<")
        if lt < 0:
            uri, sep, rest = v.partition(";")
            uri = uri.strip()
            if not uri or " " in uri:
                raise SipParseError(f"bad name-addr: {snippet(v)}")
            return _name_addr(None, uri, parse_params(rest) if sep else AttrDict())
        name = v[:lt].strip() or None
        if name is not None and not _DISPLAY_TOKENS_RE.fullmatch(name):
            # an unquoted display name is tokens and whitespace (RFC 4475 baddn)
            raise SipParseError(f"bad display name {snippet(name)} (quote it)")
    gt = v.find(">", lt)
    if gt < 0:
        raise SipParseError(f"missing '>' in {snippet(v)}")
    tail = v[gt + 1:]
    # item assignment is quicker than AttrDict(name=..., ...) (no keyword dict to build)
    d = AttrDict()
    d["name"] = name
    d["uri"] = v[lt + 1:gt].strip()
    d["params"] = parse_params(tail) if tail else AttrDict()
    return d


def _name_addr(name: str | None, uri: str, params: AttrDict) -> AttrDict:
    d = AttrDict()
    d["name"] = name
    d["uri"] = uri
    d["params"] = params
    return d


def parse_name_addr_list(lines: list[str]) -> list[AttrDict]:
    """Every name-addr over all lines of a list header (Contact, Route, Record-Route, Path)."""
    out = []
    for line in lines:
        for item in split_commas(line):
            out.append(parse_name_addr(item))
    return out


def _parse_contact(lines: list[str]) -> list[AttrDict] | str:
    if len(lines) == 1:
        v = lines[0].strip()
        if v == "*":
            return "*"
        if v and "," not in v:          # one contact: skip the list splitting
            return [parse_name_addr(v)]
    return parse_name_addr_list(lines)


# the usual shape ``SIP/2.0/UDP host:port;params`` (a plain host name or IPv4 address); other
# values (IPv6, odd spacing, lower-case transport) go through _VIA_RE
_VIA_FAST_RE = re.compile(r"SIP/2\.0/([A-Z]+) ([A-Za-z0-9.\-]+)(?::([0-9]{1,5}))?(;.*)?", re.DOTALL)
_VIA_RE = re.compile(
    r"\s*([A-Za-z]+)\s*/\s*([^\s/]+)\s*/\s*([^\s;]+)\s+(\[[^\]]*\]|[^\s;:\[]+)(?:\s*:\s*([0-9]+))?\s*")


def parse_via(lines: list[str]) -> list[AttrDict]:
    """Via lines -> [AttrDict{version, protocol, host, port, params}] top first.

    ``host`` is an IPv6 address without brackets; ``port`` is None when absent.
    """
    out = []
    for line in lines:
        for item in (line,) if line and "," not in line else split_commas(line):
            m = _VIA_FAST_RE.fullmatch(item)
            if m is not None:
                protocol, host, port, rest = m.groups()
                via = AttrDict()
                via["version"] = "2.0"
                via["protocol"] = protocol
                via["host"] = host
                via["port"] = _via_port(port, item) if port else None
                via["params"] = parse_params(rest) if rest else AttrDict()
                out.append(via)
                continue
            m = _VIA_RE.match(item)
            if m is None:
                raise SipParseError(f"bad Via: {snippet(item)}")
            host = m.group(4)
            if host[0] == "[":
                host = host[1:-1]
            port = m.group(5)
            rest = item[m.end():]
            if rest and rest[0] != ";":
                raise SipParseError(f"bad Via: {snippet(item)}")
            out.append(AttrDict(version=m.group(2), protocol=m.group(3).upper(), host=host,
                                port=_via_port(port, item) if port else None,
                                params=parse_params(rest) if rest else AttrDict()))
    return out


def _via_port(text: str, item: str) -> int:
    port = port_number(text)
    if port is None:
        raise SipParseError(f"bad port in Via: {snippet(item)}")
    return port


def parse_cseq(value: str) -> AttrDict:
    """``'1 INVITE'`` -> AttrDict{seq: 1, method: 'INVITE'}."""
    seq, sep, method = value.partition(" ")
    if not (sep and method.isalpha() and method.isascii()):
        # anything but "<seq> <letters>" (the method check also rules out more whitespace)
        parts = value.split()
        if len(parts) != 2:
            raise SipParseError(f"bad CSeq: {snippet(value)}")
        seq, method = parts
    # (ascii_int inlined: CSeq is read for nearly every message)
    number = int(seq) if seq.isdigit() and seq.isascii() and len(seq) <= 10 else None
    if number is None or number > MAX_SEQ:
        raise SipParseError(f"bad CSeq: {snippet(value)}")
    d = AttrDict()
    d["seq"] = number
    d["method"] = method
    return d


def _parse_content_length(value: str) -> int:
    n = ascii_int(value.strip(), MAX_CONTENT_LENGTH_DIGITS)
    if n is None:
        raise SipParseError(f"bad Content-Length: {snippet(value)}")
    return n


def _auth_pairs(text: str, into: AttrDict, where: str) -> None:
    name, sep, val = text.partition("=")
    name = name.strip()
    if not sep or not name:
        raise SipParseError(f"bad {where} parameter: {snippet(text)}")
    into[name] = unquote(val.strip())


def parse_auth_headers(lines: list[str]) -> list[AttrDict]:
    """WWW-Authenticate / Authorization style lines -> [AttrDict{scheme, k: v unquoted}].

    A line may hold several challenges (``Digest a=1, Digest b=2``); each starts a new item.
    """
    out: list[AttrDict] = []
    for line in lines:
        current: AttrDict | None = None
        for item in split_commas(line):
            eq = item.find("=")
            sp = item.find(" ")
            if sp > 0 and (eq < 0 or sp < eq) and '"' not in item[:sp]:
                # "<scheme> k=v" starts a new challenge/credentials
                current = AttrDict(scheme=item[:sp])
                out.append(current)
                rest = item[sp + 1:].strip()
                if rest:
                    if rest.rstrip("=").find("=") < 0:
                        current["token"] = rest     # token68 credentials (e.g. Basic)
                    else:
                        _auth_pairs(rest, current, "auth")
            elif eq < 0 and current is None:
                current = AttrDict(scheme=item)
                out.append(current)
            else:
                if current is None:
                    raise SipParseError(f"auth header without scheme: {snippet(line)}")
                _auth_pairs(item, current, "auth")
    return out


def parse_auth_info(value: str) -> AttrDict:
    """Authentication-Info -> AttrDict{k: v unquoted}."""
    out = AttrDict()
    for item in split_commas(value):
        _auth_pairs(item, out, "Authentication-Info")
    return out


#: parsers fed the joined value of a header (lookup key -> fn(str))
SINGLE_PARSERS: dict[str, Callable[[str], Any]] = {
    "from": parse_name_addr,
    "to": parse_name_addr,
    "refer-to": parse_name_addr,
    "referred-by": parse_name_addr,
    "p-asserted-identity": parse_name_addr,
    "remote-party-id": parse_name_addr,
    "cseq": parse_cseq,
    "content-length": _parse_content_length,
    "authentication-info": parse_auth_info,
}
"""Parsers fed the joined value of a header, by lookup key."""

#: parsers fed the list of lines of a header (lookup key -> fn(list[str]))
MULTI_PARSERS: dict[str, Callable[[list[str]], Any]] = {
    "contact": _parse_contact,
    "route": parse_name_addr_list,
    "record-route": parse_name_addr_list,
    "path": parse_name_addr_list,
    "via": parse_via,
    "www-authenticate": parse_auth_headers,
    "proxy-authenticate": parse_auth_headers,
    "authorization": parse_auth_headers,
    "proxy-authorization": parse_auth_headers,
}
"""Parsers fed the list of a header's lines, by lookup key."""


# ---------------------------------------------------------------------------------------------
# status codes

#: standard reason phrases (RFC 3261 and later RFCs)
STATUS_REASONS: dict[int, str] = {
    100: "Trying",
    180: "Ringing",
    181: "Call Is Being Forwarded",
    182: "Queued",
    183: "Session in Progress",
    199: "Early Dialog Terminated",
    200: "OK",
    202: "Accepted",
    204: "No Notification",
    300: "Multiple Choices",
    301: "Moved Permanently",
    302: "Moved Temporarily",
    305: "Use Proxy",
    380: "Alternative Service",
    400: "Bad Request",
    401: "Unauthorized",
    402: "Payment Required",
    403: "Forbidden",
    404: "Not Found",
    405: "Method Not Allowed",
    406: "Not Acceptable",
    407: "Proxy Authentication Required",
    408: "Request Timeout",
    409: "Conflict",
    410: "Gone",
    411: "Length Required",
    412: "Conditional Request Failed",
    413: "Request Entity Too Large",
    414: "Request-URI Too Long",
    415: "Unsupported Media Type",
    416: "Unsupported URI Scheme",
    417: "Unknown Resource-Priority",
    420: "Bad Extension",
    421: "Extension Required",
    422: "Session Interval Too Small",
    423: "Interval Too Brief",
    424: "Bad Location Information",
    425: "Bad Alert Message",
    428: "Use Identity Header",
    429: "Provide Referrer Identity",
    430: "Flow Failed",
    433: "Anonymity Disallowed",
    436: "Bad Identity-Info",
    437: "Unsupported Certificate",
    438: "Invalid Identity Header",
    439: "First Hop Lacks Outbound Support",
    440: "Max-Breadth Exceeded",
    469: "Bad Info Package",
    470: "Consent Needed",
    480: "Temporarily Unavailable",
    481: "Call/Transaction Does Not Exist",
    482: "Loop Detected",
    483: "Too Many Hops",
    484: "Address Incomplete",
    485: "Ambiguous",
    486: "Busy Here",
    487: "Request Terminated",
    488: "Not Acceptable Here",
    489: "Bad Event",
    491: "Request Pending",
    493: "Undecipherable",
    494: "Security Agreement Required",
    500: "Server Internal Error",
    501: "Not Implemented",
    502: "Bad Gateway",
    503: "Service Unavailable",
    504: "Server Time-out",
    505: "Version Not Supported",
    513: "Message Too Large",
    555: "Push Notification Service Not Supported",
    580: "Precondition Failure",
    600: "Busy Everywhere",
    603: "Decline",
    604: "Does Not Exist Anywhere",
    606: "Not Acceptable",
    607: "Unwanted",
    608: "Rejected",
}
"""Standard reason phrase of each status code (RFC 3261 and later RFCs)."""

_CLASS_REASONS = {1: "Provisional", 2: "Success", 3: "Redirection", 4: "Client Error",
                  5: "Server Error", 6: "Global Failure"}


def reason_phrase(code: int) -> str:
    """The standard phrase for a status code; the class name for unknown codes; '' if not 1xx-6xx."""
    try:
        return STATUS_REASONS[code]
    except KeyError:
        return _CLASS_REASONS.get(int(code) // 100, "") if 100 <= int(code) <= 699 else ""
