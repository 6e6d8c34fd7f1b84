"""SipMessage: a lazily parsed SIP request or response, and its serialisation.

Parsing does the minimum up front: the start line, one pass over the header lines building
the ordered list of lines and an index from lookup key to values, and the body cut to
Content-Length. Header values are parsed only when ``get_parsed_header`` asks for them, and the
result is cached until that header changes. A received message that serialising would
reproduce byte for byte (canonical names and spacing, exact Content-Length) keeps its text, and
``to_string`` returns it until the message is changed.
"""

from __future__ import annotations

import logging
import re
from collections.abc import Callable, Iterable, Mapping
from itertools import islice
from typing import Any, ClassVar

from .errors import SipParseError, snippet
from .headers import (
    _NAME_CACHE,
    MULTI_PARSERS,
    SINGLE_PARSERS,
    AttrDict,
    _resolve,
    pretty_name,
    reason_phrase,
)
from .numbers import MAX_CONTENT_LENGTH_DIGITS, ascii_int
from .uri import stringify_uri

logger = logging.getLogger(__name__)

__all__ = ["SipMessage", "SipParseError"]

_METHOD_RE = re.compile(r"[A-Za-z0-9\-.!%*_+`'~]+")
_VERSION_RE = re.compile(r"\d+\.\d+")
_BOUNDARY_RE = re.compile(r';\s*boundary\s*=\s*(?:"([^"]*)"|([^\s;]+))', re.IGNORECASE)
_PART_CT_RE = re.compile(r"^(?:content-type|c)[ \t]*:[ \t]*(.*?)[ \t\r]*$",
                         re.IGNORECASE | re.MULTILINE)
_USER_RE = re.compile(r"sips?:([^@>]*?)@", re.IGNORECASE)
# drachtio-srf's callingName: a quoted display name before <sip(s):...@ (greedy, as there)
_CALLING_NAME_RE = re.compile(r'"(.+)"\s*<sips?:.+@')

# methods and version whose start-line check needs no regex
_KNOWN_METHODS = frozenset({"INVITE", "ACK", "BYE", "CANCEL", "OPTIONS", "REGISTER", "PRACK",
                            "SUBSCRIBE", "NOTIFY", "PUBLISH", "INFO", "REFER", "MESSAGE",
                            "UPDATE"})
# each known method -> one shared string object (a parsed message keeps no copy of its own)
_METHOD_NAMES = {m: m for m in _KNOWN_METHODS}

# parse-cache keys of the From/To tags (a space keeps them apart from header names)
_TAG_KEYS = {"from": " from-tag", "to": " to-tag"}
_MISSING: Any = object()

# single-valued headers whose parsed form is read from their first line only
_FIRST_ONLY = frozenset({"cseq", "content-length", "from", "to", "call-id", "max-forwards"})

# user-supplied header name -> (lookup key, parser, parser takes the list of lines)
_SPECS: dict[str, tuple[str, Any, bool]] = {}

# (lookup key, stored name, value) of one header line
_Line = tuple[str, str, str]


def _spec(name: str) -> tuple[str, Any, bool]:
    """get_parsed_header's (key, parser, multi) for a header name, cached per spelling."""
    spec = _SPECS.get(name)
    if spec is None:
        key = _key(name)
        multi = MULTI_PARSERS.get(key)
        spec = (key, multi, True) if multi is not None else (key, SINGLE_PARSERS.get(key), False)
        if len(_SPECS) >= 1024:
            _SPECS.clear()
        _SPECS[name] = spec
    return spec


def _key(name: str) -> str:
    """Lookup key for a user-supplied header name; ValueError for a non-token name."""
    names = _NAME_CACHE.get(name)
    if names is not None:
        return names[0]
    try:
        return _resolve(name)[0]
    except SipParseError:
        raise ValueError(f"bad header name: {snippet(name)}") from None


def _check_value(value: Any) -> str:
    v = value if isinstance(value, str) else str(value)
    if "\r" in v or "\n" in v:
        raise ValueError(f"header value must not contain CR or LF: {snippet(v)}")
    return v.strip()


def _byte_len(s: str) -> int:
    return len(s) if s.isascii() else len(s.encode("utf-8", "surrogateescape"))


def _tag_of(value: str | None) -> str | None:
    """The tag param of a From/To value, found without a full name-addr parse."""
    if not value:
        return None
    gt = value.rfind(">")
    tail = value[gt + 1:] if gt >= 0 else value[value.find(";") + 1:] if ";" in value else ""
    low = tail.lower()
    pos = low.find("tag")
    while pos >= 0:
        before = low[:pos].rstrip()
        if before.endswith(";") or (gt < 0 and not before):
            after = tail[pos + 3:].lstrip()
            if after.startswith("="):
                return after[1:].split(";", 1)[0].strip() or None
        pos = low.find("tag", pos + 3)
    return None


class SipMessage:
    """A SIP request or response (drachtio-srf's SipMessage).

    ``SipMessage(text)`` parses str/bytes (raising SipParseError), ``SipMessage({...})`` builds
    one from a JS-style dict, ``SipMessage()`` is empty. Parsed header objects returned by
    ``get_parsed_header`` are cached and shared: copy them before modifying.
    """

    # Defaults live on the class so a new message stores only what it sets (faster to create);
    # every assignment goes to the instance, so instances never share state through these.
    method: str | None = None
    """Request method, None for a response."""
    uri: Any = None
    """Request-URI (a str; a parsed-URI mapping assigned to it is serialised), None for a response."""
    version: str = "2.0"
    """SIP version number from the start line (``'2.0'``)."""
    status: int | None = None
    """Status code of a response, None for a request."""
    reason: str | None = None
    """Reason phrase of a response, None for a request."""
    body: str = ""
    """The message body ('' when there is none)."""
    raw: str | None = None
    """The text the message was parsed from, None when built."""
    _parsed: dict[str, Any] | None = None
    _payload: list[AttrDict] | None = None
    _payload_cache: tuple[str, str | None, list[AttrDict]] | None = None
    # (text, method, uri, version, status, reason, body): the serialised form of a message
    # parsed from canonical text, valid while no header changed (the mutators clear it) and
    # the other fields are these same objects (see to_string)
    _wire: tuple[str, Any, Any, str, int | None, str | None, str] | None = None
    # text the header lines were dropped for (see _shrink); rebuilt from it on next use
    _text: str | None = None

    def __init__(self, text: str | bytes | Mapping[str, Any] | None = None) -> None:
        if type(text) is str:
            self._parse(text)             # (sets _lines and _index)
            return
        self._lines: list[_Line] | None = []    # (None once shrunk: see _shrink)
        # lookup key -> the values of that header's lines, in order (None: rebuild from _lines)
        self._index: dict[str, list[str]] | None = {}
        if text is None:
            return
        if isinstance(text, (bytes, bytearray, memoryview)):
            self._parse(bytes(text).decode("utf-8", "surrogateescape"))
        elif isinstance(text, str):
            self._parse(text)
        elif isinstance(text, Mapping):
            self._build(text)
        else:
            raise TypeError(f"SipMessage expects str, bytes or dict, not {type(text).__name__}")

    # ----------------------------------------------------------------------------- parsing

    def _parse(self, text: str) -> None:
        self.raw = text
        if text[:1] in ("\r", "\n"):
            text = text.lstrip("\r\n")
        if not text:
            raise SipParseError("empty message")
        end = text.find("\r\n\r\n")
        if end >= 0:
            head = text[:end]
            body = text[end + 4:]
        else:
            if "\r\n" not in text:
                raise SipParseError(f"no CRLF in message: {snippet(text)}")
            head = text.removesuffix("\r\n")
            body = ""
        lines = head.split("\r\n")
        nlines = len(lines) - 1
        if head.count("\n") != nlines or head.count("\r") != nlines:
            _bare_line_end(lines)
        # canonical: to_string would write the header block back unchanged
        canonical = self._parse_start(lines[0])

        cache_get = _NAME_CACHE.get
        while True:
            hdrs: list[_Line] = []
            self._lines = hdrs
            index: dict[str, list[str]] = {}
            self._index = index
            for line in islice(lines, 1, None):
                # the usual line is "Name: value" with a name seen before
                name, sep, value = line.partition(": ")
                names = cache_get(name) if sep else None
                if names is None:
                    canonical = False
                    if line[:1] in (" ", "\t"):
                        # a continuation line (never a cached name): unfold, then start over
                        # (found here rather than by searching the whole block up front)
                        break
                    if not line:
                        raise SipParseError(f"empty header line (line {lines.index(line) + 1})")
                    name, sep, value = line.partition(":")
                    if not sep:
                        raise SipParseError(f"header line without colon (line "
                                            f"{lines.index(line) + 1}): {snippet(line)}")
                    try:
                        names = cache_get(name) or _resolve(name)
                    except SipParseError as e:
                        raise SipParseError(f"{e} (line {lines.index(line) + 1})") from None
                key, stored, same = names
                if not same:
                    canonical = False          # name written in another spelling (compact...)
                v = value.strip()
                if v is not value:             # (strip returns the same object when nothing to do)
                    canonical = False
                    value = v
                if key in index:
                    index[key].append(value)
                else:
                    index[key] = [value]
                hdrs.append((key, stored, value))
            else:
                break
            lines = _unfold(lines)

        cl = index.get("content-length")
        if cl is not None:
            cl_text = cl[0]
            # (ascii_int inlined: this runs for every message)
            if not (cl_text.isdigit() and cl_text.isascii()
                    and len(cl_text) <= MAX_CONTENT_LENGTH_DIGITS):
                raise SipParseError(f"bad Content-Length: {snippet(cl_text)}")
            length = int(cl_text)
            if body.isascii():
                if length < len(body):
                    body = body[:length]
                size = len(body)
            else:
                data = body.encode("utf-8", "surrogateescape")
                if length < len(data):
                    data = data[:length]
                    body = data.decode("utf-8", "surrogateescape")
                size = len(data)
            if canonical and len(cl) == 1 and cl_text == str(size):
                # the input is already what to_string would write: keep it
                wire = text if end >= 0 and len(text) == end + 4 + len(body) else (
                    f"{head}\r\n\r\n{body}")
                self._wire = (wire, self.method, self.uri, self.version, self.status,
                              self.reason, body)
        self.body = body

    def _parse_start(self, line: str) -> bool:
        """Parse the start line; whether to_string would write it back unchanged."""
        if line.startswith("SIP/2.0 ") and line[11:12] == " ":
            # usual response line "SIP/2.0 200 OK"
            code = line[8:11]
            if code.isascii() and code.isdigit() and code[0] in "123456":
                self.status = int(code)
                reason = line[12:]
                self.reason = r = reason.strip()
                return r is reason
        if line.startswith("SIP/"):
            proto, _, rest = line.partition(" ")
            version = proto[4:]
            if version != "2.0" and not _VERSION_RE.fullmatch(version):
                raise SipParseError(f"bad start line: {snippet(line)}")
            code, _, reason = rest.lstrip().partition(" ")
            if ascii_int(code, 3) is None or len(code) != 3 or code[0] not in "123456":
                raise SipParseError(f"bad status code {snippet(code)} in start line "
                                    f"{snippet(line)}")
            self.version = version
            self.status = int(code)
            self.reason = reason = reason.strip()
            return line == f"SIP/{version} {code} {reason}"
        parts = line.split(" ")
        if len(parts) == 3 and parts[2] == "SIP/2.0" and parts[1] and parts[1][0] != "<":
            method = _METHOD_NAMES.get(parts[0])
            if method is not None:
                self.method = method
                self.uri = parts[1]
                return True
        # runs of whitespace between the parts and after the version are tolerated, as
        # sofia-sip does (RFC 4475 lwsstart, trws); a request-URI in <> is not (ltgtruri)
        parts = line.split()
        if len(parts) != 3 or parts[1][0] in "<\"" or not (
                (parts[2] == "SIP/2.0" or parts[2].startswith("SIP/")
                 and _VERSION_RE.fullmatch(parts[2][4:]))
                and (parts[0] in _KNOWN_METHODS or _METHOD_RE.fullmatch(parts[0]))):
            raise SipParseError(f"bad start line: {snippet(line)}")
        self.method = parts[0]
        self.uri = parts[1]
        self.version = parts[2][4:]
        return line == " ".join(parts)

    def _build(self, d: Mapping[str, Any]) -> None:
        for attr in ("method", "uri", "status", "reason", "version", "body"):
            v = d.get(attr)
            if v is None:
                continue
            if attr == "uri":
                v = stringify_uri(v)
            elif attr == "status":
                v = int(v)
            elif attr == "body" and isinstance(v, (bytes, bytearray)):
                v = bytes(v).decode("utf-8", "surrogateescape")
            setattr(self, attr, v)
        headers = d.get("headers") or {}
        for name, value in headers.items():
            if isinstance(value, (list, tuple)):
                for v in value:
                    self.add(name, v)
            elif value is not None:
                self.add(name, value)
        if d.get("payload") is not None:
            self._payload = [AttrDict(p) for p in d["payload"]]

    # ----------------------------------------------------------------------------- retention

    def _shrink(self) -> bool:
        """Drop the header lines, index and parse caches of a message kept for long (a dialog's
        INVITE): most of its memory, and all of it rebuilt from the text on the next header
        access (:meth:`_restore`).  Done only while the header lines are still those of the
        received text; False (nothing dropped) otherwise."""
        if self._lines is None:
            return True                   # already shrunk
        wire = self._wire
        if wire is not None and (wire[1] is self.method and wire[2] is self.uri
                                 and wire[3] is self.version and wire[4] is self.status
                                 and wire[5] is self.reason and wire[6] is self.body):
            text = wire[0]
        else:
            raw = self.raw
            # (not canonical text, or changed since: keep the lines unless the text gives them)
            if raw is None or _reparse(raw)._lines != self._lines:
                return False
            text = raw
        self._text = text
        self._index = None
        self._lines = None
        self._wire = None
        self._parsed = None
        self._payload_cache = None
        return True

    def _hlines(self) -> list[_Line]:
        """The header lines, rebuilt first if the message was shrunk."""
        lines = self._lines
        return lines if lines is not None else self._restore()

    def _restore(self) -> list[_Line]:
        """The header lines of a shrunk message, parsed again from its text (index too)."""
        text = self._text
        if text is None:              # (another thread restored it meanwhile)
            lines = self._lines
            assert lines is not None
            return lines
        again = _reparse(text)
        lines = again._hlines()
        self._lines = lines           # (lines before index: a non-None index implies lines)
        self._index = again._index
        self._text = None
        if (again._wire is not None
                and again.method == self.method and again.uri == self.uri
                and again.version == self.version and again.status == self.status
                and again.reason == self.reason and again.body == self.body):
            self._wire = (text, self.method, self.uri, self.version, self.status, self.reason,
                          self.body)
        return lines

    # ----------------------------------------------------------------------------- index

    def _idx(self) -> dict[str, list[str]]:
        index = self._index
        if index is None:
            lines = self._lines
            if lines is None:
                self._restore()
                index = self._index
                assert index is not None
                return index
            index = {}
            for k, _s, v in lines:
                values = index.get(k)
                if values is None:
                    index[k] = [v]
                else:
                    values.append(v)
            self._index = index
        return index

    def _first(self, key: str) -> int:
        """Position in _lines of the first line of a header known to be present."""
        lines = self._lines if self._lines is not None else self._restore()
        for i, line in enumerate(lines):
            if line[0] == key:
                return i
        raise AssertionError(f"index out of step with header lines for {key!r}")

    def _changed(self, key: str) -> None:
        """A header changed (the index is already updated): drop what was derived from it."""
        self._wire = None
        parsed = self._parsed
        if parsed is not None:
            parsed.pop(key, None)
            tag_key = _TAG_KEYS.get(key)
            if tag_key is not None:
                parsed.pop(tag_key, None)

    # ----------------------------------------------------------------------------- basic access

    @property
    def type(self) -> str:
        """'request', 'response' or 'unknown'."""
        if self.method:
            return "request"
        if self.status:
            return "response"
        return "unknown"

    @property
    def headers(self) -> dict[str, str]:
        """Stored name -> value (repeated lines joined with ','); a fresh dict on each access."""
        out: dict[str, str] = {}
        names: dict[str, str] = {}
        for k, s, v in (self._lines if self._lines is not None else self._restore()):
            stored = names.get(k)
            if stored is None:
                names[k] = s
                out[s] = v
            else:
                out[stored] = f"{out[stored]},{v}"
        return out

    @headers.setter
    def headers(self, value: Mapping[str, Any]) -> None:
        if self._text is not None:
            self._text = None
        self._lines = []
        self._index = {}
        self._parsed = None
        self._payload = None
        self._wire = None
        for name, v in value.items():
            self.add(name, v)

    def get(self, name: str) -> str | None:
        """The value of a header (case-insensitive, compact forms too), lines joined by ','."""
        names = _NAME_CACHE.get(name)
        index = self._index
        values = (index if index is not None else self._idx()).get(
            names[0] if names is not None else _key(name))
        if values is None:
            return None
        return values[0] if len(values) == 1 else ",".join(values)

    def get_all(self, name: str) -> list[str]:
        """One value per header line, in order ([] when absent)."""
        values = self._idx().get(_key(name))
        return [] if values is None else list(values)

    def has(self, name: str) -> bool:
        """Whether the header is present."""
        names = _NAME_CACHE.get(name)
        index = self._index
        return ((names[0] if names is not None else _key(name))
                in (index if index is not None else self._idx()))

    def get_header_name(self, name: str) -> str | None:
        """The stored spelling of a header present in the message, else None."""
        key = _key(name)
        return self._hlines()[self._first(key)][1] if key in self._idx() else None

    def header_lines(self) -> list[tuple[str, str]]:
        """(stored name, value) of every header line, in order."""
        return [(s, v) for _k, s, v in (self._lines if self._lines is not None else self._restore())]

    # ----------------------------------------------------------------------------- mutation

    def set(self, name: str | Mapping[str, Any], value: Any = None) -> SipMessage:
        """drachtio-srf's set: add a header, or append ``,value`` if it is already present.

        ``set({name: value, ...})`` sets several. Use replace() to overwrite a header.
        """
        if type(name) is str:           # the usual call; skips the (slow) Mapping check
            self._set_one(name, value)
            return self
        items = name.items() if isinstance(name, Mapping) else ((name, value),)
        for n, v in items:
            self._set_one(n, v)
        return self

    def _set_one(self, name: str, value: Any) -> None:
        key, stored = self._name(name)
        v = _check_value(value)
        values = self._idx().get(key)
        if values is None:
            self._append(key, stored, v)
            return
        lines = self._hlines()
        last = len(lines) - 1
        while lines[last][0] != key:
            last -= 1
        k, s, old = lines[last]
        new = f"{old},{v}" if old else v
        lines[last] = (k, s, new)
        values[-1] = new
        self._changed(key)

    def replace(self, name: str, value: Any) -> SipMessage:
        """Replace every line of a header by one (at the first one's place), or append it."""
        key, stored = self._name(name)
        v = _check_value(value)
        index = self._idx()
        values = index.get(key)
        if values is None:
            self._append(key, stored, v)
            return self
        first = self._first(key)
        lines = self._hlines()
        lines[first] = (key, lines[first][1], v)
        if len(values) > 1:
            self._lines = lines[:first + 1] + [line for line in lines[first + 1:]
                                               if line[0] != key]
        index[key] = [v]
        self._changed(key)
        return self

    def add(self, name: str, value: Any) -> SipMessage:
        """Append one header line (after every other line)."""
        key, stored = self._name(name)
        self._append(key, stored, _check_value(value))
        return self

    def prepend(self, name: str, value: Any) -> SipMessage:
        """Insert a header line before the first line of that header, or at the top."""
        key, stored = self._name(name)
        v = _check_value(value)
        index = self._idx()
        values = index.get(key)
        if values is None:
            self._hlines().insert(0, (key, stored, v))
            index[key] = [v]
        else:
            at = self._first(key)
            lines = self._hlines()
            lines.insert(at, (key, lines[at][1], v))
            values.insert(0, v)
        self._changed(key)
        return self

    def remove(self, name: str) -> SipMessage:
        """Remove every line of a header (no error if absent)."""
        key = _key(name)
        index = self._idx()
        if key in index:
            self._lines = [line for line in self._hlines() if line[0] != key]
            del index[key]
            self._changed(key)
        return self

    @staticmethod
    def _name(name: str) -> tuple[str, str]:
        try:
            names = _NAME_CACHE.get(name) or _resolve(name)
            return names[0], names[1]
        except SipParseError:
            raise ValueError(f"bad header name: {snippet(name)}") from None

    def _append(self, key: str, stored: str, value: str) -> None:
        index = self._index
        if index is None:
            index = self._idx()
        values = index.get(key)
        if values is None:
            index[key] = [value]
        else:
            stored = self._hlines()[self._first(key)][1]     # keep the first line's spelling
            values.append(value)
        self._hlines().append((key, stored, value))
        self._changed(key)

    # ----------------------------------------------------------------------------- parsed access

    def get_parsed_header(self, name: str) -> Any:
        """A header parsed per its kind (see docs/architecture.md); LookupError when absent.

        The result is cached and shared with later calls: copy it before modifying it.
        """
        key, fn, multi = _SPECS.get(name) or _spec(name)
        parsed = self._parsed
        if parsed is None:
            parsed = self._parsed = {}
        elif key in parsed:
            return parsed[key]
        index = self._index
        values = (index if index is not None else self._idx()).get(key)
        if values is None:
            raise LookupError(f"header '{name}' not available in SIP message")
        if multi:
            result = fn(values)
        else:
            # a header that may appear once: a repeated line is ignored (RFC 4475 multi01,
            # mcl01), as sofia-sip keeps the first; others are read as one comma-joined value
            value = (values[0] if len(values) == 1 or key in _FIRST_ONLY
                     else ",".join(values))
            result = fn(value) if fn is not None else value
        parsed[key] = result
        return result

    @property
    def call_id(self) -> str | None:
        """The Call-ID value, or None."""
        return self.get("call-id")

    @property
    def cseq(self) -> AttrDict | None:
        """AttrDict{seq, method} of the CSeq header, or None when absent."""
        if "cseq" not in self._idx():
            return None
        cseq: AttrDict = self.get_parsed_header("cseq")
        return cseq

    @property
    def from_tag(self) -> str | None:
        """The From tag, or None."""
        return self._tag("from", " from-tag")

    @property
    def to_tag(self) -> str | None:
        """The To tag, or None."""
        return self._tag("to", " to-tag")

    def _tag(self, key: str, tag_key: str) -> str | None:
        # kept in the parse cache, so _changed() drops it when the header changes
        parsed = self._parsed
        if parsed is None:
            parsed = self._parsed = {}
        else:
            cached = parsed.get(tag_key, _MISSING)
            if cached is not _MISSING:
                found: str | None = cached
                return found
        tag = _tag_of(self.get(key))
        parsed[tag_key] = tag
        return tag

    def _caller_header(self) -> str | None:
        pai = self.get("p-asserted-identity")
        return pai if pai else self.get("from")

    @property
    def calling_number(self) -> str:
        """User part of P-Asserted-Identity, else of From (tel: number too); '' if none."""
        return _user_of(self._caller_header())

    @property
    def called_number(self) -> str:
        """User part of the request-URI with its params stripped; '' if none."""
        uri = self.uri
        return _user_of(uri if uri is None or isinstance(uri, str) else stringify_uri(uri))

    @property
    def calling_name(self) -> str:
        """Quoted display name of P-Asserted-Identity, else of From; '' if none.

        As drachtio-srf: only a display name in double quotes before a ``<sip(s):user@...>``
        counts (``sipp <sip:...>`` gives ''), and it is returned as written between the quotes
        (escapes kept), so ``f'"{name}"'`` puts it back on the wire unchanged.
        """
        value = self._caller_header()
        if not value:
            return ""
        m = _CALLING_NAME_RE.match(value)
        return m.group(1) if m else ""

    @property
    def can_form_dialog(self) -> bool:
        """True for an INVITE or SUBSCRIBE without a To tag."""
        return self.method in ("INVITE", "SUBSCRIBE") and self.to_tag is None

    # ----------------------------------------------------------------------------- body

    @property
    def payload(self) -> list[AttrDict]:
        """The body as [AttrDict{type, content}]: one item, or one per part of a multipart."""
        if self._payload is not None:
            return self._payload
        body = self.body or ""
        ctype = self.get("content-type")
        cache = self._payload_cache
        if cache is not None and cache[0] is body and cache[1] == ctype:
            return cache[2]
        result = _split_payload(ctype, body)
        self._payload_cache = (body, ctype, result)
        return result

    @payload.setter
    def payload(self, value: Iterable[Mapping[str, Any]] | None) -> None:
        self._payload = None if value is None else [AttrDict(x) for x in value]

    # ----------------------------------------------------------------------------- output

    def to_string(self) -> str:
        """Serialise: start line, headers in order, Content-Length = body UTF-8 bytes, body."""
        wire = self._wire
        if wire is not None:
            # parsed from text this would reproduce; still valid if every start-line field and
            # the body are the same objects (identity implies equal output)
            if (wire[1] is self.method and wire[2] is self.uri and wire[3] is self.version
                    and wire[4] is self.status and wire[5] is self.reason
                    and wire[6] is self.body):
                return wire[0]
            self._wire = None
        if self.method:
            out = [f"{self.method} {stringify_uri(self.uri or '')} SIP/{self.version or '2.0'}"]
        elif self.status:
            reason = self.reason if self.reason is not None else reason_phrase(self.status)
            out = [f"SIP/{self.version or '2.0'} {self.status} {reason}"]
        else:
            raise ValueError("cannot serialise a SIP message with neither method nor status")
        body = self.body or ""
        cl = f"Content-Length: {_byte_len(body)}"
        seen_cl = False
        for k, s, v in (self._lines if self._lines is not None else self._restore()):
            if k == "content-length":
                if not seen_cl:
                    out.append(cl)
                    seen_cl = True
                continue
            out.append(f"{pretty_name(s)}: {v}")
        if not seen_cl:
            out.append(cl)
        out.append("")
        out.append(body)
        return "\r\n".join(out)

    def __str__(self) -> str:
        return self.to_string()

    def __repr__(self) -> str:
        if self.method:
            first = f"{self.method} {self.uri}"
        elif self.status:
            first = f"{self.status} {self.reason}"
        else:
            first = "empty"
        return f"<SipMessage {first} call-id={self.get('call-id')!r}>"

    def copy(self) -> SipMessage:
        """An independent copy (header lines, body, start line; parse cache not shared)."""
        m = SipMessage()
        m.method, m.uri, m.version = self.method, self.uri, self.version
        m.status, m.reason, m.body, m.raw = self.status, self.reason, self.body, self.raw
        m._lines = list(self._lines if self._lines is not None else self._restore())
        m._index = None
        m._wire = self._wire
        if self._payload is not None:
            m._payload = [AttrDict(p) for p in self._payload]
        return m

    # JS aliases: declared here, set below the class to the PEP 8 members themselves (the
    # compiled build cannot bind a method to a second name in a class body)
    getParsedHeader: ClassVar[Callable[[SipMessage, str], Any]]
    """JS alias of :meth:`get_parsed_header`: returns the parsed value of a header."""
    getHeaderName: ClassVar[Callable[[SipMessage, str], str | None]]
    """JS alias of :meth:`get_header_name`: returns the header's name as spelled in the message."""
    callingNumber: ClassVar[str]
    """JS alias of :attr:`calling_number`: returns the calling party's number."""
    calledNumber: ClassVar[str]
    """JS alias of :attr:`called_number`: returns the called party's number."""
    callingName: ClassVar[str]
    """JS alias of :attr:`calling_name`: returns the calling party's display name."""
    canFormDialog: ClassVar[bool]
    """JS alias of :attr:`can_form_dialog`: returns whether the request can create a dialog."""
    toString: ClassVar[Callable[[SipMessage], str]]
    """JS alias of :meth:`to_string`: returns the message as SIP text."""


# JS aliases (the same objects as the PEP 8 names, compiled or not)
_JS_ALIASES = (
    ("getParsedHeader", "get_parsed_header"),
    ("getHeaderName", "get_header_name"),
    ("callingNumber", "calling_number"),
    ("calledNumber", "called_number"),
    ("callingName", "calling_name"),
    ("canFormDialog", "can_form_dialog"),
    ("toString", "to_string"),
)
for _js, _pep8 in _JS_ALIASES:
    setattr(SipMessage, _js, getattr(SipMessage, _pep8))


def _reparse(text: str) -> SipMessage:
    """A fresh parse of text this module accepted before (for shrunk messages)."""
    return SipMessage(text)


def _unfold(lines: list[str]) -> list[str]:
    """Join continuation lines (starting with SP or HT) to the header line before them.

    Linear in the number of lines: the pieces of one header are collected and joined once (the
    folded whitespace becomes one space).
    """
    out: list[str] = [lines[0]]
    pieces: list[str] = []
    for lineno, line in enumerate(islice(lines, 1, None), 2):
        if line[:1] in (" ", "\t"):
            if len(out) == 1 and not pieces:
                raise SipParseError(f"continuation line before any header (line {lineno})")
            piece = line.strip()
            if piece:
                pieces.append(piece)
            continue
        if pieces:
            out[-1] = " ".join([out[-1].rstrip(), *pieces])
            pieces = []
        out.append(line)
    if pieces:
        out[-1] = " ".join([out[-1].rstrip(), *pieces])
    return out


def _bare_line_end(lines: list[str]) -> None:
    for lineno, line in enumerate(lines):
        if "\r" in line or "\n" in line:
            raise SipParseError(f"bare CR or LF in line {lineno + 1}: {snippet(line)}")


def _user_of(value: str | None) -> str:
    """The user part of the first sip(s) URI in a value (params stripped), or a tel number."""
    if not value:
        return ""
    m = _USER_RE.search(value)
    if m is not None:
        return m.group(1).split(";", 1)[0]
    low = value.lower()
    t = low.find("tel:")
    if t >= 0:
        number = value[t + 4:]
        for stop in (";", ">", " ", ","):
            number = number.split(stop, 1)[0]
        return number
    return ""


def _split_payload(content_type: str | None, body: str) -> list[AttrDict]:
    """[AttrDict{type, content}] for a body; multipart bodies give one item per part."""
    if content_type and "multipart/" in content_type.lower():
        m = _BOUNDARY_RE.search(content_type)
        if m is not None:
            boundary = m.group(1) if m.group(1) is not None else m.group(2)
            parts = _multipart(body, boundary)
            if parts is not None:
                return parts
    return [AttrDict(type=content_type, content=body)]


def _multipart(body: str, boundary: str) -> list[AttrDict] | None:
    delimiter = "--" + boundary
    chunks = body.split(delimiter)
    if len(chunks) < 2:
        return None
    out = []
    for chunk in chunks[1:]:
        if chunk.startswith("--"):
            break                       # close delimiter
        # the delimiter line ends with CRLF (maybe after transport padding)
        nl = chunk.find("\n")
        if nl < 0:
            continue
        part = chunk[nl + 1:]
        if part.endswith("\r\n"):
            part = part[:-2]
        elif part.endswith("\n"):
            part = part[:-1]
        sep = part.find("\r\n\r\n")
        skip = 4
        if sep < 0:
            sep = part.find("\n\n")
            skip = 2
        if part.startswith(("\r\n", "\n")):
            headers, content = "", part[2 if part.startswith("\r\n") else 1:]
        elif sep < 0:
            headers, content = part, ""
        else:
            headers, content = part[:sep], part[sep + skip:]
        ct = _PART_CT_RE.search(headers)
        out.append(AttrDict(type=ct.group(1) if ct else None, content=content))
    return out
