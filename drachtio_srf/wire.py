"""Sans-I/O codec for the drachtio control protocol (PROTOCOL.md sections 1-3).

A frame on the TCP stream is ``<byte length>#<payload>``; the payload is a ``|``-separated
leader line, optionally followed by CR LF and a SIP message.  This module turns bytes into
payload strings (:class:`FrameDecoder`), payload strings into :class:`Frame` objects
(:func:`parse`), builds every payload either side sends, and reads the SIP meta fields
(:class:`SipMeta`).  It does no I/O and holds no locks: callers own sockets and threads.
"""
from __future__ import annotations

import itertools
import logging
import os
import uuid
from collections.abc import Iterable, Sequence
from datetime import datetime, timezone
from typing import Any

import attrs

from .sip.numbers import ascii_int, port_number

logger = logging.getLogger(__name__)

__all__ = [
    "DEFAULT_SIP_PORT",
    "MAX_LENGTH_DIGITS",
    "MSG_SENT",
    "Frame",
    "FrameDecoder",
    "SipMeta",
    "WireProtocolError",
    "authenticate",
    "cdr",
    "echo_request",
    "echo_response",
    "encode",
    "make_payload",
    "new_id",
    "parse",
    "ping",
    "proxy",
    "proxy_continue",
    "proxy_done",
    "remove_route",
    "reply",
    "route",
    "sip_cancel",
    "sip_event",
    "sip_request",
    "sip_response",
    "stack_time",
]

CRLF = "\r\n"
MSG_SENT = "Msg sent:"          # marker the server puts in the leader of an echo (3.4)
"""Marker the server puts in the leader of an echo of a message it sent (3.4)."""
DEFAULT_SIP_PORT = 5060
"""SIP port assumed when a frame leaves the port field empty."""
MAX_LENGTH_DIGITS = 9           # longest length field accepted by FrameDecoder
"""Most digits a frame length field may have; FrameDecoder rejects longer ones."""
_COMPACT_THRESHOLD = 64 * 1024  # consumed bytes kept at the buffer head before compacting


class WireProtocolError(Exception):
    """A malformed frame or leader; the connection it came from should be dropped.

    ``frames`` holds the payloads a :meth:`FrameDecoder.feed` call had already decoded
    before it hit the bad input (so a caller may still deliver them).
    """

    def __init__(self, message: str, frames: Sequence[str] = ()) -> None:
        super().__init__(message)
        self.frames: list[str] = list(frames)
        """Payloads decoded before the bad input, so a caller may still deliver them."""


# --------------------------------------------------------------------------- framing

def encode(payload: str) -> bytes:
    """Frame a payload: ``b"<byte length>#<payload utf-8>"`` (lengths count bytes)."""
    data = payload.encode("utf-8", "surrogateescape")
    if not data:
        raise WireProtocolError("refusing to encode an empty payload (peers treat 0# as an error)")
    return b"%d#%s" % (len(data), data)


class FrameDecoder:
    """Incremental decoder: feed it bytes as they arrive, get complete payloads back.

    Accepts ``1*DIGIT "#" payload`` repeated.  Anything else (a non-digit before ``#``, an
    empty or zero length, more than :data:`MAX_LENGTH_DIGITS` digits) raises
    :class:`WireProtocolError`; after that the decoder stays broken and raises again.
    Payloads are decoded as UTF-8 with ``surrogateescape``, so invalid UTF-8 never raises
    and :func:`encode` restores the original bytes.
    """

    __slots__ = ("_buf", "_error", "_need", "_pos", "max_digits")

    def __init__(self, max_digits: int = MAX_LENGTH_DIGITS) -> None:
        self._buf = bytearray()
        self._pos = 0             # start of the unconsumed part of _buf
        self._need: int | None = None   # payload length of the frame whose header was read
        self._error: str | None = None
        self.max_digits = max_digits
        """Most digits accepted in a frame's length field."""

    @property
    def pending(self) -> int:
        """Bytes buffered but not yet returned (after a read length field: payload bytes only)."""
        return len(self._buf) - self._pos

    def feed(self, data: bytes | bytearray | memoryview) -> list[str]:
        """Add received bytes; return the payloads completed by them, in order."""
        if self._error is not None:
            raise WireProtocolError(f"decoder unusable after earlier error: {self._error}")
        buf = self._buf
        buf += data
        out: list[str] = []
        pos = self._pos
        need = self._need
        size = len(buf)
        try:
            while True:
                if need is None:
                    if pos >= size:
                        break
                    limit = min(size, pos + self.max_digits + 1)
                    hash_at = buf.find(b"#", pos, limit)
                    if hash_at < 0:
                        head = buf[pos:limit]
                        if not head.isdigit():
                            raise self._fail(f"expected length digits, got {bytes(head[:20])!r}")
                        if len(head) > self.max_digits:
                            raise self._fail(f"length field longer than {self.max_digits} digits")
                        break  # length digits split across reads: wait for more
                    digits = buf[pos:hash_at]
                    if not digits:
                        raise self._fail("empty length field before '#'")
                    if not digits.isdigit():
                        raise self._fail(f"non-digit in length field: {bytes(digits)!r}")
                    need = int(digits)
                    if need == 0:
                        raise self._fail("zero-length frame")
                    pos = hash_at + 1
                end = pos + need
                if end > size:
                    break  # wait for the rest of the payload
                out.append(buf[pos:end].decode("utf-8", "surrogateescape"))
                pos = end
                need = None
        except WireProtocolError as err:
            err.frames = out
            self._buf = bytearray()
            self._pos = 0
            self._need = None
            raise
        # compact: drop consumed bytes without re-copying the buffer on every feed
        if pos >= size:
            buf.clear()
            pos = 0
        elif pos > _COMPACT_THRESHOLD and pos * 2 > size:
            del buf[:pos]
            pos = 0
        self._pos = pos
        self._need = need
        return out

    def _fail(self, reason: str) -> WireProtocolError:
        self._error = reason
        logger.debug("wire framing error: %s", reason)
        return WireProtocolError(f"malformed drachtio frame: {reason}")


# --------------------------------------------------------------------------- identifiers

_ID_PREFIX = str(uuid.uuid4())[:24]     # random per process: 'xxxxxxxx-xxxx-4xxx-yxxx-'
_id_counter = itertools.count(int.from_bytes(os.urandom(5), "big"))


def new_id() -> str:
    """A fresh msgId, shaped like a UUID v4 in lower-case hex: a random per-process prefix and a
    48-bit counter (unique without the cost of ``uuid4()`` for every command)."""
    return f"{_ID_PREFIX}{next(_id_counter) & 0xFFFFFFFFFFFF:012x}"


def stack_time(t: float | None = None) -> str:
    """UTC time of day as the server writes it: ``HH:MM:SS.uuuuuu``."""
    utc = timezone.utc  # datetime.UTC needs Python 3.11; we support 3.10
    dt = datetime.now(utc) if t is None else datetime.fromtimestamp(t, utc)
    return dt.strftime("%H:%M:%S.%f")


# --------------------------------------------------------------------------- parsing

@attrs.define(slots=True)
class Frame:
    """One parsed payload: the leader split on every ``|`` and the SIP text after the first CRLF."""

    msg_id: str
    """Message id of the frame (the first leader field)."""
    type: str
    """Frame type: the second leader field (e.g. ``sip``, ``response``)."""
    fields: list[str]          # ALL leader fields t0..tn (empty fields kept)
    """All leader fields t0..tn, empty fields kept."""
    sip: str | None = None     # text after the first CRLF, None when the payload has no CRLF
    """SIP text after the first CRLF; None when the payload has no CRLF."""

    def field(self, index: int, default: str = "") -> str:
        """Leader field ``t<index>``, or ``default`` when the leader is shorter."""
        fields = self.fields
        return fields[index] if index < len(fields) else default

    @property
    def in_reply_to(self) -> str | None:
        """For a ``response`` frame: the msgId it answers (t2)."""
        return self.field(2) if self.type == "response" else None

    @property
    def status(self) -> str | None:
        """For a ``response`` frame: ``OK``, ``NO``, ``NOK`` ... (t3)."""
        return self.field(3) if self.type == "response" else None

    @property
    def ok(self) -> bool:
        """True for a ``response`` frame whose status is ``OK``."""
        fields = self.fields
        return self.type == "response" and len(fields) > 3 and fields[3] == "OK"

    @property
    def data(self) -> list[str]:
        """For a ``response`` frame: the fields after the status (t4...)."""
        return self.fields[4:] if self.type == "response" else []

    @property
    def payload(self) -> str:
        """The payload text this frame stands for."""
        return make_payload(self.fields, self.sip)


def parse(payload: str) -> Frame:
    """Split a payload into a :class:`Frame`; a leader without ``|`` raises WireProtocolError."""
    idx = payload.find(CRLF)
    if idx < 0:
        leader, sip = payload, None
    else:
        leader, sip = payload[:idx], payload[idx + 2:]
    fields = leader.split("|")
    if len(fields) < 2:
        raise WireProtocolError(f"invalid message format: leader has no type field: {leader[:80]!r}")
    return Frame(fields[0], fields[1], fields, sip)


def make_payload(fields: Iterable[Any], sip: Any = None) -> str:
    """Join leader fields with ``|`` and append ``CRLF + sip`` when ``sip`` is not None.

    Fields are converted with ``str``; one containing ``|``, CR or LF raises ValueError since it
    would corrupt the leader.  ``sip`` may be a str or anything whose ``str()`` is SIP text.
    """
    parts = [value if isinstance(value, str) else str(value) for value in fields]
    leader = "|".join(parts)
    if leader.count("|") != len(parts) - 1 or "\r" in leader or "\n" in leader:
        for text in parts:
            if "|" in text or "\r" in text or "\n" in text:
                raise ValueError(f"leader field may not contain '|', CR or LF: {text[:80]!r}")
    if sip is None:
        return leader
    return leader + CRLF + (sip if isinstance(sip, str) else str(sip))


# --------------------------------------------------------------------------- app -> server

def authenticate(msg_id: str, secret: str, tags: Iterable[str] | str = ()) -> str:
    """``<id>|authenticate|<secret>|<t1,t2>`` (the tags field is always present)."""
    tag_text = tags if isinstance(tags, str) else ",".join(tags)
    return make_payload((msg_id, "authenticate", secret, tag_text))


def route(msg_id: str, verb: str) -> str:
    """``<id>|route|<verb>``: ask for new requests of a method (lower case) or ``cdr:<kind>``."""
    return make_payload((msg_id, "route", verb))


def remove_route(msg_id: str, verb: str) -> str:
    """``<id>|remove_route|<verb>`` (the server drops all routes of the connection)."""
    return make_payload((msg_id, "remove_route", verb))


def ping(msg_id: str) -> str:
    """``<id>|ping``; the server answers ``OK|pong``."""
    return make_payload((msg_id, "ping"))


def sip_request(msg_id: str, sip_text: Any, dialog_id: str = "", route_uri: str | None = None) -> str:
    """``<id>|sip||<dialogId>[|<route>]`` CRLF request: a new or in-dialog request."""
    fields = [msg_id, "sip", "", dialog_id or ""]
    if route_uri:
        fields.append(route_uri)
    return make_payload(fields, sip_text)


def sip_response(msg_id: str, txn_id: str, sip_text: Any) -> str:
    """``<id>|sip|<txnId>|`` CRLF response: answer a request the server delivered."""
    if not txn_id:
        raise ValueError("a response needs the txnId of the request it answers")
    if type(sip_text) is str and type(msg_id) is str and type(txn_id) is str and not (
            "|" in txn_id or "\r" in txn_id or "\n" in txn_id
            or "|" in msg_id or "\r" in msg_id or "\n" in msg_id):
        return f"{msg_id}|sip|{txn_id}|{CRLF}{sip_text}"    # (one per answer: written directly)
    return make_payload((msg_id, "sip", txn_id, ""), sip_text)


def sip_cancel(msg_id: str, invite_txn_id: str, sip_text: Any) -> str:
    """``<id>|sip|<txnId>|`` CRLF CANCEL: cancel an INVITE the app sent (txnId from its echo)."""
    if not invite_txn_id:
        raise ValueError("a CANCEL needs the txnId of the INVITE it cancels")
    return make_payload((msg_id, "sip", invite_txn_id, ""), sip_text)


def proxy(msg_id: str, txn_id: str, destinations: Iterable[str] | str, sip_text: Any, *,
          remain_in_dialog: bool = False, full_response: bool = True, follow_redirects: bool = False,
          simultaneous: bool = False, provisional_timeout: str = "", final_timeout: str = "") -> str:
    """``<id>|proxy|<txnId>|<rr>|<full>|<follow>|<mode>|<prov>|<final>|<dest1>[|...]`` CRLF headers."""
    dests = [destinations] if isinstance(destinations, str) else list(destinations)
    if not dests or not all(dests):
        raise ValueError("proxy needs at least one non-empty destination")
    fields = [
        msg_id, "proxy", txn_id,
        "remainInDialog" if remain_in_dialog else "",
        "fullResponse" if full_response else "",
        "followRedirects" if follow_redirects else "",
        "simultaneous" if simultaneous else "serial",
        provisional_timeout or "", final_timeout or "",
        *dests,
    ]
    return make_payload(fields, sip_text)


# --------------------------------------------------------------------------- server -> app

def reply(msg_id: str, in_reply_to: str, status: str, data: Iterable[Any] = (), sip: Any = None) -> str:
    """``<id>|response|<re>|<status>[|d...]`` [CRLF sip]: the reply to an app frame."""
    return make_payload((msg_id, "response", in_reply_to, status, *data), sip)


def sip_event(msg_id: str, *, source: str, nbytes: int | str, protocol: str, address: str,
              port: int | str, time: str, txn_id: str, dialog_id: str = "",
              received_on: tuple[str, int | str] | None = None, sip_text: Any) -> str:
    """A ``sip`` frame: 11 fields, or 13 with ``received_on=(host, port)``; always ends with ``|``."""
    fields: list[Any] = [msg_id, "sip", source, nbytes, protocol, address, port, time, txn_id,
                         dialog_id or ""]
    if received_on is not None:
        fields.extend(received_on)
    fields.append("")
    return make_payload(fields, sip_text)


def echo_response(msg_id: str, in_reply_to: str, *, nbytes: int | str, protocol: str, address: str,
                  port: int | str, time: str, txn_id: str, dialog_id: str, sip_text: Any) -> str:
    """Reply to the app's response (3.4 i): ``OK|application|...|<txnId>|<dialogId>||Msg sent:|``."""
    return make_payload((msg_id, "response", in_reply_to, "OK", "application", nbytes, protocol,
                         address, port, time, txn_id, dialog_id or "", "", MSG_SENT, ""), sip_text)


def echo_request(msg_id: str, in_reply_to: str, *, nbytes: int | str, protocol: str, address: str,
                 port: int | str, time: str, txn_id: str, sip_text: Any) -> str:
    """Reply to the app's request or CANCEL (3.4 ii/iii): ``OK|application|...|<txnId>|Msg sent:|``."""
    return make_payload((msg_id, "response", in_reply_to, "OK", "application", nbytes, protocol,
                         address, port, time, txn_id, MSG_SENT, ""), sip_text)


def proxy_continue(msg_id: str, in_reply_to: str, *, nbytes: int | str, protocol: str,
                   address: str, port: int | str, time: str, sip_text: Any,
                   source: str = "network") -> str:
    """A final response from a proxy target (3.4 iv): ``OK|network|...|||continue`` CRLF response."""
    return make_payload((msg_id, "response", in_reply_to, "OK", source, nbytes, protocol, address,
                         port, time, "", "", "continue"), sip_text)


def proxy_done(msg_id: str, in_reply_to: str) -> str:
    """The last reply to a ``proxy`` command: ``OK|done``."""
    return make_payload((msg_id, "response", in_reply_to, "OK", "done"))


CDR_KINDS = ("attempt", "start", "stop")


def cdr(msg_id: str, kind: str, source: str, time: str, extra: str | None = None,
        sip_text: Any = None) -> str:
    """``<id>|cdr:<kind>|<source>|<time>[|<role or reason>]`` CRLF SIP message."""
    if kind not in CDR_KINDS:
        raise ValueError(f"cdr kind must be one of {CDR_KINDS}, got {kind!r}")
    if sip_text is None:
        raise TypeError("cdr() needs sip_text")
    fields = [msg_id, f"cdr:{kind}", source, time]
    if extra is not None:
        fields.append(extra)
    return make_payload(fields, sip_text)


# --------------------------------------------------------------------------- meta readers

def _port(text: str, where: str) -> int:
    if len(text) < 6 and text.isdigit() and text.isascii():    # the usual case, no calls
        value = int(text)
        if value <= 65535:
            return value
    if not text:
        return DEFAULT_SIP_PORT
    port = port_number(text)
    if port is None:
        raise WireProtocolError(f"bad port {text[:20]!r} in {where}")
    return port


def _nbytes(text: str) -> int | None:
    if len(text) < 10 and text.isdigit() and text.isascii():   # the usual case
        return int(text)
    return ascii_int(text, 10)


@attrs.define(slots=True)
class SipMeta:
    """Transport meta of a SIP message, from a ``sip`` frame or from an echo reply.

    ``echo_of`` tells where it came from: ``None`` for a ``sip`` frame (4.1); for an echo
    (3.4) ``'response'`` (the app's response as sent: ``dialog_id`` is t11), ``'request'``
    (the app's request or CANCEL as sent: there is no dialog id, ``dialog_id`` is ``''``) or
    ``'proxy'`` (a final response a proxy target returned, ``continue`` frame).
    """

    source: str                 # 'network' | 'application'
    """Where the message came from: ``'network'`` or ``'application'``."""
    protocol: str               # 'udp' | 'tcp' | 'tls' | '' (ACKs, in-dialog echoes)
    """Transport: ``'udp'``, ``'tcp'``, ``'tls'`` or ``''`` (ACKs, in-dialog echoes)."""
    address: str
    """Remote IP address the message was received from or sent to."""
    port: int                   # 5060 when the field is empty
    """Remote port (5060 when the field is empty)."""
    time: str                   # 'HH:MM:SS.uuuuuu'
    """Server timestamp, ``'HH:MM:SS.uuuuuu'``."""
    txn_id: str
    """Server transaction id."""
    dialog_id: str = ""         # '' when there is none
    """Server dialog id; ``''`` when there is none."""
    received_on: str | None = None   # 'host:port' of the server transport (new requests only)
    """``'host:port'`` of the server transport it arrived on (new requests only)."""
    session_token: str | None = None
    """Session token the server attached, if any."""
    nbytes: int | None = None   # the server's size of the SIP message (informational)
    """The server's size of the SIP message in bytes (informational)."""
    echo_of: str | None = None
    """None for a ``sip`` frame; for an echo ``'response'``, ``'request'`` or ``'proxy'``."""

    @classmethod
    def from_sip_frame(cls, f: Frame) -> SipMeta:
        """Read t2..t12 of a ``sip`` frame (PROTOCOL.md 3.2 / 4.1)."""
        fields = f.fields
        if f.type != "sip" or len(fields) < 10:
            raise WireProtocolError(
                f"not a sip frame with at least 10 fields: type {f.type!r}, {len(fields)} fields")
        n = len(fields)
        received_on = f"{fields[10]}:{fields[11]}" if n >= 12 else None
        token = fields[12] if n >= 13 and fields[12] else None
        # (positional, in field order: one of these per frame)
        return cls(fields[2], fields[4], fields[5], _port(fields[6], "sip frame"), fields[7],
                   fields[8], fields[9], received_on, token, _nbytes(fields[3]))

    @classmethod
    def from_echo(cls, f: Frame) -> SipMeta:
        """Read t4..t12 of an ``OK`` reply that echoes a SIP message (PROTOCOL.md 3.4 i, ii, iv)."""
        fields = f.fields
        if f.type != "response" or len(fields) < 11 or fields[3] != "OK":
            raise WireProtocolError(
                f"not an echo reply: type {f.type!r}, status {f.field(3)!r}, {len(fields)} fields")
        n = len(fields)
        if n >= 12 and fields[11] == MSG_SENT:
            kind = "request"
        elif n >= 14 and fields[13] == MSG_SENT:
            kind = "response"
        elif n >= 13 and fields[12] == "continue":
            kind = "proxy"
        elif f.sip is not None and f.sip.startswith("SIP/"):
            kind = "response"
        else:
            kind = "request"
        dialog_id = fields[11] if kind == "response" and n > 11 else ""
        return cls(fields[4], fields[6], fields[7], _port(fields[8], "echo reply"), fields[9],
                   fields[10], dialog_id, None, None, _nbytes(fields[5]), kind)
