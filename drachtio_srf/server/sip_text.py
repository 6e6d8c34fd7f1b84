"""SIP text helpers of the embedded server: header names and values as drachtio-server handles them.

Pure functions on strings and SipMessage (no server state), shared by the parts of the server
core (``inbound.py``, ``uas.py``, ``uac.py``, ``proxy.py`` ...).
"""
from __future__ import annotations

import random
import re
import string
from collections.abc import Iterable

from drachtio_srf.sip import SipMessage, reason_phrase

#: headers from the app the server never uses (it makes its own)
DISCARDED = frozenset(("via", "route", "record-route", "rseq", "content-length"))
"""Headers from the app the server never uses (it makes its own)."""

_COMPACT = {"i": "call-id", "m": "contact", "e": "content-encoding", "l": "content-length",
            "c": "content-type", "f": "from", "s": "subject", "k": "supported", "t": "to",
            "v": "via", "o": "event", "r": "refer-to", "b": "referred-by", "u": "allow-events",
            "x": "session-expires", "y": "identity", "d": "request-disposition"}
_CANON = {n.lower(): n for n in (
    "Via", "From", "To", "Call-ID", "CSeq", "Contact", "Content-Type", "Content-Length",
    "Content-Encoding", "Content-Disposition", "Max-Forwards", "Route", "Record-Route", "RSeq",
    "RAck", "WWW-Authenticate", "Proxy-Authenticate", "Authorization", "Proxy-Authorization",
    "User-Agent", "Server", "P-Asserted-Identity", "P-Preferred-Identity", "Subscription-State",
    "Event", "Allow-Events", "Refer-To", "Referred-By", "Session-Expires", "Min-SE", "MIME-Version",
    "SIP-ETag", "SIP-If-Match", "Expires", "Min-Expires", "Require", "Supported", "Unsupported",
    "Allow", "Accept", "Accept-Encoding", "Accept-Language", "Subject", "Reason", "Retry-After",
    "Timestamp", "Warning", "Date", "Path", "Privacy", "Call-Info", "Alert-Info", "Error-Info",
    "In-Reply-To", "Organization", "Priority", "Reply-To", "Proxy-Require", "Identity",
    "Remote-Party-ID", "Diversion", "Replaces", "Refer-Sub", "Request-Disposition")}
_TOKEN = re.compile(r"^[A-Za-z0-9\-.!%*_+'~`]+$")
_TAG_PARAM = re.compile(r";\s*tag\s*=\s*[^;>,\s]*", re.IGNORECASE)
_LOCALHOST = re.compile(r"@localhost(:\d+)?", re.IGNORECASE)
_TAG_CHARS = string.ascii_letters + string.digits
_LINE_BREAKS = re.compile(r"[\r\n]+")


# --------------------------------------------------------------------------- small SIP text helpers

def canonical_name(name: str) -> str:
    """Header name as the server writes it (well-known spelling, else capitalised per dash)."""
    low = name.strip().lower()
    low = _COMPACT.get(low, low)
    if low in _CANON:
        return _CANON[low]
    if low.startswith("x-"):
        return name.strip()
    return "-".join(p[:1].upper() + p[1:] for p in low.split("-"))


def split_app_message(text: str) -> tuple[str, list[tuple[str, str]], str]:
    """Split SIP text as drachtio-server splits what an app sends (PROTOCOL.md 1.4).

    Returns (start line, [(name, value)] in order, body).  The body is everything after the first
    blank line; lines without ``:`` or with a name that is not a token are dropped.
    """
    head, sep, body = text.partition("\r\n\r\n")
    if not sep:
        head, sep, body = text.partition("\n\n")
        if not sep:
            body = ""
    crlf = head.count("\r\n")
    if head.count("\n") != crlf or head.count("\r") != crlf:
        lines = _LINE_BREAKS.split(head)    # bare CR or LF line ends
    else:
        lines = head.split("\r\n")
    start = lines[0].strip() if lines else ""
    headers: list[tuple[str, str]] = []
    for line in lines[1:]:
        if not line.strip():
            continue
        name, colon, value = line.partition(":")
        if not colon:
            continue
        name = name.strip()
        if not _TOKEN.match(name):
            continue
        headers.append((name, value.strip()))
    return start, headers, body


def split_values(value: str) -> list[str]:
    """Split a header value on commas that are not inside ``<>`` or quotes."""
    if "," not in value:
        value = value.strip()
        return [value] if value else []
    if '"' not in value and "<" not in value:
        return [v for v in (p.strip() for p in value.split(",")) if v]
    out: list[str] = []
    cur: list[str] = []
    depth, quoted = 0, False
    for ch in value:
        if ch == '"':
            quoted = not quoted
        elif not quoted and ch == "<":
            depth += 1
        elif not quoted and ch == ">":
            depth = max(0, depth - 1)
        if ch == "," and not quoted and depth == 0:
            out.append("".join(cur).strip())
            cur = []
            continue
        cur.append(ch)
    tail = "".join(cur).strip()
    if tail:
        out.append(tail)
    return [v for v in out if v]


class AppHeaders:
    """The header lines of a message an app sent, looked up case-insensitively (compact forms too)."""

    def __init__(self, headers: Iterable[tuple[str, str]]) -> None:
        self.items = [(_COMPACT.get(n.lower(), n.lower()), n, v) for n, v in headers]
        """``(lower-case full name, name as sent, value)`` for each header line, in order."""
        first: dict[str, str] = {}
        for low, _, v in self.items:
            if low not in first:
                first[low] = v
        self._first = first

    def first(self, name: str) -> str | None:
        """Value of the first header ``name`` (lower-case full name), or None."""
        return self._first.get(name)

    def all(self, name: str) -> list[str]:
        """Values of every header ``name`` (lower-case full name), in order."""
        return [v for low, _, v in self.items if low == name]

    def others(self, exclude: Iterable[str]) -> list[tuple[str, str]]:
        """``(canonical name, value)`` of the headers whose name is not in ``exclude``."""
        ex = exclude if isinstance(exclude, (set, frozenset)) else set(exclude)
        return [(canonical_name(n), v) for low, n, v in self.items if low not in ex]


def build_message(start_line: str, headers: Iterable[tuple[str, str]], body: str = "") -> SipMessage:
    """A SipMessage from a start line, header lines and a body (Content-Length computed)."""
    lines = [start_line]
    lines += [f"{n}: {v}" for n, v in headers if n.lower() not in ("content-length", "l")]
    lines.append(f"Content-Length: {len(body.encode('utf-8', 'surrogateescape'))}")
    return SipMessage("\r\n".join(lines) + "\r\n\r\n" + body)


def new_tag() -> str:
    """A To/From tag like the server's stack makes (13 alphanumerics)."""
    while True:
        tag = "".join(random.choices(_TAG_CHARS, k=13))
        # sipp finds a response's CSeq by searching for "CSeq": a tag containing it made sipp read
        # a bogus method and drop the call (seen once in 10,000 calls of the rate benchmark)
        if "cseq" not in tag.lower():
            return tag


def tag_of(value: str | None) -> str | None:
    """The ``tag`` parameter of a From/To header value (what follows ``tag=``), if any."""
    if not value:
        return None
    m = re.search(r";\s*tag\s*=\s*([^;>,\s]+)", value, re.IGNORECASE)
    return m.group(1) if m else None


def with_tag(value: str, tag: str) -> str:
    """The header value with its tag replaced by (or set to) ``tag``."""
    return _TAG_PARAM.sub("", value).rstrip() + f";tag={tag}"


def text_of(msg: SipMessage) -> str:
    """The SIP text of a message as the server holds it (with the stack's Via amendments)."""
    return str(msg)


def nbytes(text: str) -> int:
    """UTF-8 length of SIP text (no encoding needed for ASCII, the usual case)."""
    return len(text) if text.isascii() else len(text.encode("utf-8", "surrogateescape"))


def parse_duration(text: str) -> float | None:
    """``'2s'`` / ``'1500ms'`` / ``'3'`` -> seconds; empty or invalid -> None."""
    m = re.fullmatch(r"\s*(\d+(?:\.\d+)?)\s*(ms|s)?\s*", text or "")
    if not m:
        return None
    n = float(m.group(1))
    return n / 1000.0 if m.group(2) == "ms" else n


def sdp_type(body: str | None) -> str | None:
    """``application/sdp`` for a body that is an SDP (the type an app may leave out), else None."""
    return "application/sdp" if body and body.lstrip().startswith("v=0") else None


STATUS_LINE = re.compile(r"^SIP/2\.0\s+(\d{3})(?:\s+(.*))?$", re.IGNORECASE)
"""The status line of an app's response: group 1 the status code, group 2 the reason phrase."""


def parse_status_line(start: str) -> tuple[int, str] | None:
    """Status and reason of an app's response start line (the standard phrase when it gives
    none), or None when it is not a ``SIP/2.0 NNN`` line."""
    m = STATUS_LINE.match(start)
    if not m:
        return None
    status = int(m.group(1))
    return status, (m.group(2) or "").strip() or reason_phrase(status)
