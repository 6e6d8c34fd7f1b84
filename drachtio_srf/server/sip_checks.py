"""What a received request must pass before the server takes it, decided as drachtio-server does.

drachtio-server's SIP stack (sofia-sip's nta) and drachtio-server itself refuse some requests
before any app sees them. The rules here give the same outcome for the same input (checked
against the real server with the RFC 4475 messages, see test/data/rfc4475/index.json):

- the method must be one sofia-sip reads (:func:`method_ok`), and the top Via must parse, name
  ``SIP/2.0`` and the transport the request came on (:func:`via_problem`); otherwise nothing
  can be answered and the request is dropped;
- a request with a header sofia-sip cannot parse, a repeated single-valued header, a missing
  mandatory header, a CSeq method other than the request's, a body cut short, or a NUL byte
  anywhere is answered 400; the reason phrase names the first bad header as sofia-sip does
  (``Bad To Header``) or is ``Bad Request`` (:func:`request_problem`);
- a Date header that does not parse is answered 400 by drachtio-server itself, for a request
  that belongs to no dialog (:func:`date_ok`).

Pure functions on ``SipMessage`` and bytes: no state, no I/O.
"""
from __future__ import annotations

import re
from dataclasses import dataclass

from drachtio_srf.sip import SipMessage, SipParseError

#: headers a request may carry once only (sofia-sip files a repeat as an error)
SINGLE_VALUED = ("call-id", "cseq", "from", "to", "max-forwards", "content-length")
"""Headers a request may carry once only (sofia-sip files a repeat as an error)."""

#: the header names sofia-sip puts in its reason phrase (``Bad <name> Header``)
_SOFIA_NAME = {"call-id": "Call-ID", "cseq": "CSeq", "from": "From", "to": "To",
               "max-forwards": "Max-Forwards", "content-length": "Content-Length",
               "contact": "Contact"}
_COMPACT = {"i": "call-id", "f": "from", "t": "to", "l": "content-length", "m": "contact",
            "v": "via"}
_HEADER_NAME = re.compile(rb"^([^:\r\n]+?)[ \t]*:", re.MULTILINE)
_PARSE_ERRORS = (SipParseError, ValueError, LookupError, TypeError, AttributeError)


@dataclass(frozen=True)
class Problem:
    """Why a request gets a 400: the reason phrase, a text for the log, the headers to leave out."""

    phrase: str
    """Reason phrase of the 400 (``Bad Request``, ``Bad To Header`` ...)."""
    why: str
    """What is wrong, for the log and the Warning header."""
    omit: frozenset[str] = frozenset()
    """Lower-case names of headers that did not parse (left out of the 400)."""


_METHOD = re.compile(r"[A-Za-z0-9!%'()*\-._~]+")


def method_ok(method: str) -> bool:
    """Is ``method`` a method sofia-sip reads? An extension method there is made of URI
    unreserved characters only (``+`` or a backquote, valid in a SIP token, are not)."""
    return _METHOD.fullmatch(method) is not None


def via_problem(via: object, transport: str) -> str | None:
    """Why the parsed top Via ``via`` cannot be answered to (None: it can).

    sofia-sip drops a request whose top Via is not ``SIP/2.0`` (such a Via does not parse) or
    names a transport other than the one the request came on.
    """
    version = str(getattr(via, "version", None) or (via.get("version") if isinstance(via, dict) else ""))
    protocol = str(getattr(via, "protocol", None) or (via.get("protocol") if isinstance(via, dict) else ""))
    if version != "2.0":
        return f"Via of SIP/{version}"
    if protocol.upper() != transport.upper():
        return f"Via transport {protocol} on {transport}"
    return None


def _header_order(data: bytes) -> list[str]:
    """Lower-case full names of the header lines of ``data``, in order (continuations skipped)."""
    head = data.split(b"\r\n\r\n", 1)[0]
    names = []
    for m in _HEADER_NAME.finditer(head, head.find(b"\n") + 1):
        name = m.group(1).decode("latin-1").strip().lower()
        names.append(_COMPACT.get(name, name))
    return names


def _addr_ok(value: str, *, many: bool) -> bool:
    """Does ``value`` parse as sofia-sip's name-addr / addr-spec (with parameters)?

    The library's parser already refuses unterminated quotes and unquoted display names that are
    not tokens; this adds sofia-sip's rule of RFC 3261 20.10: an addr-spec outside ``<>`` ends at
    ``,``, ``;``, ``?`` or whitespace, and what follows must be parameters (or, in a list, the
    next value): a ``?`` there (URI headers outside ``<>``) is an error.
    """
    if "?" not in value:     # the library's parser has judged the rest
        return True
    for part in _split_top(value) if many else [value]:
        s = part.strip()
        if not s or s == "*" or "<" in s:
            continue
        m = re.match(r"[^ \t,;?]+[ \t]*", s)
        rest = s[m.end():] if m else s
        if rest.startswith("?"):
            return False
    return True


def _split_top(value: str) -> list[str]:
    """Split a list header value at commas outside quotes and ``<>``."""
    parts, depth, quoted, start, i = [], 0, False, 0, 0
    while i < len(value):
        c = value[i]
        if quoted:
            if c == "\\":
                i += 1
            elif c == '"':
                quoted = False
        elif c == '"':
            quoted = True
        elif c == "<":
            depth += 1
        elif c == ">":
            depth = max(0, depth - 1)
        elif c == "," and depth == 0:
            parts.append(value[start:i])
            start = i + 1
        i += 1
    parts.append(value[start:])
    return parts


def _bad_headers(msg: SipMessage) -> set[str]:
    """Lower-case names of From/To/Contact values that sofia-sip would not parse."""
    bad = set()
    for name in ("from", "to", "contact"):
        values = msg.get_all(name)
        if not values:
            continue
        try:
            msg.get_parsed_header(name)
            ok = all(_addr_ok(v, many=name == "contact") for v in values)
        except _PARSE_ERRORS:
            ok = False
        if not ok:
            bad.add(name)
    return bad


def request_problem(msg: SipMessage, data: bytes, transport: str) -> Problem | None:
    """Why sofia-sip would answer this request 400 (None: it passes), as in nta's checks."""
    bad = _bad_headers(msg)
    repeated = {single for single in SINGLE_VALUED if len(msg.get_all(single)) > 1}
    cl = msg.get("content-length")
    if cl is not None and "content-length" not in repeated and not (cl.strip().isascii() and cl.strip().isdigit() and len(cl.strip()) <= 10):
        bad.add("content-length")
    cseq = None
    if "cseq" not in bad and "cseq" not in repeated:
        try:
            cseq = msg.cseq
        except _PARSE_ERRORS:
            bad.add("cseq")
    if bad or repeated:
        # sofia-sip names the first header line that failed: a value that does not parse, or the
        # second line of a single-valued header
        first, seen = None, set()
        for name in _header_order(data):
            if name in bad or (name in repeated and name in seen):
                first = name
                break
            seen.add(name)
        bad |= repeated
        first = first or min(bad)
        return Problem(f"Bad {_SOFIA_NAME.get(first, first.title())} Header",
                       f"bad {_SOFIA_NAME.get(first, first)} header", frozenset(bad))
    if b"\x00" in data:
        # sofia-sip's message log stops at a NUL byte and marks the message truncated
        return Problem("Bad Request", "NUL byte in the message")
    missing = [n for n in ("call-id", "from", "to", "cseq") if not msg.get(n)]
    if missing:
        return Problem("Bad Request", "no " + ", ".join(_SOFIA_NAME[n] for n in missing))
    if cseq is None:
        return Problem("Bad Request", "no CSeq")
    if cseq.method != msg.method:
        return Problem("Bad Request", f"CSeq method {cseq.method} does not match {msg.method}")
    if transport == "udp" and cl is not None:
        end = data.find(b"\r\n\r\n")
        have = 0 if end < 0 else len(data) - end - 4
        if int(cl) > have:
            return Problem("Bad Request", f"Content-Length {cl.strip()} but {have} body bytes")
    return None


_MONTHS = ("jan", "feb", "mar", "apr", "may", "jun", "jul", "aug", "sep", "oct", "nov", "dec")
_DAYS_IN = (31, 29, 31, 30, 31, 30, 31, 31, 30, 31, 30, 31)
_TIME = r"(\d{1,2}):(\d{1,2}):(\d{1,2})"
_RFC1123 = re.compile(r"[!-~]*?,?[ \t]*(\d{1,2}) ([A-Za-z]{3})[ \t]+(\d{4})[ \t]+" + _TIME
                      + r"(?:[ \t]*(\S*).*)?$")
_RFC850 = re.compile(r"[!-~]*?,?[ \t]*(\d{1,2})-([A-Za-z]{3})-(\d{2}(?:\d{2})?)[ \t]+" + _TIME
                     + r"(?:[ \t]*(\S*).*)?$")
_ASCTIME = re.compile(r"[!-~]+[ \t]+([A-Za-z]{3})[ \t]+(\d{1,2})[ \t]+" + _TIME
                      + r"[ \t]+(?:GMT |UTC |UT )?(\d{4})")


def date_ok(value: str) -> bool:
    """Does a Date value parse as sofia-sip's date parser takes it (RFC 1123, RFC 850, asctime)?

    A time zone, when given, must be GMT (or UCT); ``EST`` and the like are refused.
    """
    s = value.strip()
    m = _RFC1123.match(s) or _RFC850.match(s)
    if m:
        day, mon, year, hour, minute, sec, tz = m.groups()
        if tz and tz[:3].upper() not in ("GMT", "UCT"):
            return False
    else:
        a = _ASCTIME.match(s)
        if not a:
            return False
        mon, day, hour, minute, sec, year = a.groups()
    if mon.lower() not in _MONTHS:
        return False
    d, h, mi, se = int(day), int(hour), int(minute), int(sec)
    if h > 24 or mi >= 60 or se >= 60 or (h == 24 and mi > 0 and se > 0):
        return False
    month = _MONTHS.index(mon.lower())
    if month == 1 and d == 29:
        y = int(year) + (0 if len(year) == 4 else 1900 if int(year) >= 70 else 2000)
        return y % 4 == 0 and (y % 100 != 0 or y % 400 == 0)
    return 0 < d <= _DAYS_IN[month]
