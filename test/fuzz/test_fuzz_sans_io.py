"""Property-based fuzzing of the sans-I/O layer (issue 9, done-when).

Whatever the input, the SIP parser and header readers fail only with SipParseError, parse_uri
returns None for what it cannot read (never raises), and the control-protocol decoder fails only
with WireProtocolError. Bounded for CI: a fixed seed and a fixed number of examples (a few
seconds each); ``HYPOTHESIS_PROFILE=fuzz-long`` runs many more, with random seeds.
"""
from __future__ import annotations

import os

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from drachtio_srf import wire
from drachtio_srf.sip import SipMessage, SipParseError, parse_uri, stringify_uri

settings.register_profile(
    "ci", max_examples=400, deadline=None, derandomize=True, database=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large])
settings.register_profile(
    "fuzz-long", max_examples=20_000, deadline=None, database=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large])
settings.load_profile(os.environ.get("HYPOTHESIS_PROFILE", "ci"))

# characters that make SIP parsers trip: separators, quotes, brackets, whitespace, line ends,
# Unicode digits int() refuses ('²') or reads ('٣'), non-ASCII letters, NUL, surrogate escapes
_SPECIAL = list(' \t\r\n;,:=<>"\\@?&%[]/.+-*!~`\'#|') + ["\r\n ", "\r\n\t", "²", "٣", "é", "\x00",
                                                       "\udcff", "9" * 5000, "SIP/2.0", "sip:"]
_piece = st.one_of(st.sampled_from(_SPECIAL), st.text(max_size=8),
                   st.text(alphabet="0123456789", min_size=1, max_size=12),
                   st.text(alphabet="abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ",
                           min_size=1, max_size=8))
_value = st.lists(_piece, max_size=12).map("".join)

_HEADER_NAMES = ["Via", "v", "From", "f", "To", "t", "CSeq", "Call-ID", "i", "Contact", "m",
                 "Content-Length", "l", "Content-Type", "c", "Route", "Record-Route",
                 "WWW-Authenticate", "Authorization", "Proxy-Authenticate", "Max-Forwards",
                 "P-Asserted-Identity", "Authentication-Info", "Refer-To", "X-Custom"]

_good_values = {
    "Via": st.sampled_from(["SIP/2.0/UDP 10.0.0.1:5060;branch=z9hG4bK1;rport",
                            "SIP / 2.0 / TCP [::1]:5061 ; branch = z9hG4bKx , SIP/2.0/UDP h"]),
    "From": st.sampled_from(['"A \\"B\\"" <sip:a@b;x=1>;tag=1', "sipp <sip:sipp@h:5060>;tag=2",
                             "sip:a@b;tag=3", "<tel:+123>"]),
    "CSeq": st.sampled_from(["1 INVITE", "4294967295 BYE", "  7   ACK "]),
    "Content-Length": st.sampled_from(["0", "5", "13"]),
}


@st.composite
def sip_texts(draw: st.DrawFn) -> str:
    """A SIP message shaped text with random damage in any part."""
    start = draw(st.one_of(
        st.sampled_from(["INVITE sip:a@b SIP/2.0", "SIP/2.0 200 OK", "OPTIONS  sip:x  SIP/2.0 ",
                         "SIP/2.0 1²3 OK", "BYE <sip:a@b> SIP/2.0", "SIP/7.0 4294967301 X"]),
        st.builds(lambda m, u, v: f"{m} {u} {v}", _value, _value,
                  st.sampled_from(["SIP/2.0", "SIP/x", ""]))))
    lines = [start]
    for _ in range(draw(st.integers(0, 12))):
        name = draw(st.one_of(st.sampled_from(_HEADER_NAMES), _value))
        good = _good_values.get(name)
        value = draw(good) if good is not None and draw(st.booleans()) else draw(_value)
        sep = draw(st.sampled_from([": ", ":", " : ", ":\r\n ", ""]))
        lines.append(f"{name}{sep}{value}")
    body = draw(st.one_of(st.just(""), _value))
    ending = draw(st.sampled_from(["\r\n\r\n", "\r\n", "\n\n", ""]))
    return "\r\n".join(lines) + ending + body


_READ = ("via", "from", "to", "cseq", "contact", "content-length", "call-id", "route",
         "record-route", "www-authenticate", "authorization", "proxy-authenticate",
         "p-asserted-identity", "authentication-info", "refer-to")


def _exercise(data: str | bytes) -> None:
    try:
        msg = SipMessage(data)
    except SipParseError:
        return
    for name in _READ:
        if msg.has(name):
            try:
                msg.get_parsed_header(name)
            except SipParseError:
                pass
    for prop in ("call_id", "body", "payload", "from_tag", "to_tag", "calling_number",
                 "called_number", "calling_name", "can_form_dialog", "headers", "type"):
        try:
            getattr(msg, prop)
        except SipParseError:
            pass
    try:
        msg.cseq  # noqa: B018
    except SipParseError:
        pass
    text = msg.to_string()
    assert isinstance(text, str)
    copy = msg.copy()
    assert copy.to_string() == text


@given(sip_texts())
def test_sip_message_structured(text: str) -> None:
    _exercise(text)


@given(st.one_of(st.binary(max_size=400), st.text(max_size=400)))
def test_sip_message_raw(data: str | bytes) -> None:
    _exercise(data)


@st.composite
def uri_texts(draw: st.DrawFn) -> str:
    scheme = draw(st.sampled_from(["sip:", "sips:", "tel:", "<tel:", "SIP:", "", "http:"]))
    return scheme + draw(_value)


@given(st.one_of(uri_texts(), st.text(max_size=200),
                 st.builds(lambda u, h, p: f"sip:{u}@{h}:{p}", _value, _value, _value)))
def test_parse_uri_never_raises(text: str) -> None:
    uri = parse_uri(text)
    if uri is None:
        return
    out = stringify_uri(uri)
    assert isinstance(out, str)
    again = parse_uri(out)
    assert again is not None
    assert again.get("host") == uri.get("host") and again.get("port") == uri.get("port")


@given(st.lists(st.one_of(st.binary(max_size=60),
                          st.builds(lambda p: wire.encode(p), st.text(min_size=1, max_size=60)),
                          st.sampled_from([b"9" * 20 + b"#", "²#".encode(), b"0#", b"#",
                                           b"5#ab", b"\xff#"])),
                max_size=8))
def test_frame_decoder_only_protocol_errors(chunks: list[bytes]) -> None:
    dec = wire.FrameDecoder()
    for chunk in chunks:
        try:
            payloads = dec.feed(chunk)
        except wire.WireProtocolError:
            return
        for payload in payloads:
            _frame(payload)


_LEADER_PIECE = st.one_of(_value, st.sampled_from(["sip", "response", "OK", "network",
                                                    "application", "udp", "5060", "²",
                                                    "9" * 5000, wire.MSG_SENT, "continue"]))


_sip_frames = st.builds(
    lambda rest, tail: "|".join(["id", "sip", *rest]) + tail,
    st.lists(_LEADER_PIECE, min_size=8, max_size=12),
    st.sampled_from(["", "\r\nINVITE sip:a@b SIP/2.0\r\n\r\n"]))
_echo_frames = st.builds(
    lambda rest, tail: "|".join(["id", "response", "re", "OK", *rest]) + tail,
    st.lists(_LEADER_PIECE, min_size=7, max_size=11),
    st.sampled_from(["", "\r\nSIP/2.0 200 OK\r\n\r\n"]))


@given(st.one_of(st.text(max_size=300), _sip_frames, _echo_frames,
                 st.builds(lambda fields, sip: "|".join(fields) + sip,
                           st.lists(_LEADER_PIECE, max_size=15),
                           st.sampled_from(["", "\r\nINVITE sip:a@b SIP/2.0\r\n\r\n",
                                            "\r\nSIP/2.0 200 OK\r\n\r\n"]))))
def test_wire_parse_only_protocol_errors(payload: str) -> None:
    _frame(payload)


def _frame(payload: str) -> None:
    try:
        frame = wire.parse(payload)
    except wire.WireProtocolError:
        return
    for reader in (wire.SipMeta.from_sip_frame, wire.SipMeta.from_echo):
        try:
            reader(frame)
        except wire.WireProtocolError:
            pass
    frame.field(3)
    frame.in_reply_to  # noqa: B018
    frame.data  # noqa: B018
