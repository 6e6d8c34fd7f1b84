"""Numbers read from SIP text: only ASCII digits, bounded length, SipParseError otherwise (9.1)."""
from __future__ import annotations

import pytest

from drachtio_srf.sip import SipMessage, SipParseError, parse_uri, stringify_uri
from drachtio_srf.sip.numbers import ascii_int, port_number

HUGE = "9" * 5000


def _msg(start: str = "OPTIONS sip:a@b SIP/2.0", **headers: str) -> str:
    lines = [start, "Via: SIP/2.0/UDP h;branch=z9hG4bK1", "Call-ID: c"]
    lines += [f"{k.replace('_', '-')}: {v}" for k, v in headers.items()]
    return "\r\n".join(lines) + "\r\n\r\n"


@pytest.mark.parametrize("value", ["²", "٣", "1²", HUGE, "-1", "+1", " ", "1 2"])
def test_bad_content_length_is_a_parse_error(value: str) -> None:
    with pytest.raises(SipParseError, match="Content-Length"):
        SipMessage(_msg(Content_Length=value))


@pytest.mark.parametrize("code", ["1²3", "٢٠٠", "20²"])
def test_bad_status_code_is_a_parse_error(code: str) -> None:
    with pytest.raises(SipParseError, match="status code"):
        SipMessage(f"SIP/2.0 {code} OK\r\nCall-ID: c\r\n\r\n")
    with pytest.raises(SipParseError):
        SipMessage(f"SIP/2.0  {code}  OK\r\nCall-ID: c\r\n\r\n")


@pytest.mark.parametrize("cseq", ["² OPTIONS", "٣ OPTIONS", f"{HUGE} OPTIONS", "4294967296 OPTIONS",
                                  "-1 OPTIONS", "1²  OPTIONS"])
def test_bad_cseq_is_a_parse_error(cseq: str) -> None:
    msg = SipMessage(_msg(CSeq=cseq))
    with pytest.raises(SipParseError, match="CSeq"):
        msg.get_parsed_header("cseq")
    with pytest.raises(SipParseError):
        msg.cseq  # noqa: B018


def test_largest_cseq_reads() -> None:
    assert SipMessage(_msg(CSeq="4294967295 BYE")).cseq == {"seq": 4294967295, "method": "BYE"}


@pytest.mark.parametrize("port", ["²", "٣", HUGE, "65536", "-1", "5060a"])
def test_bad_via_port_is_a_parse_error(port: str) -> None:
    msg = SipMessage(f"OPTIONS sip:a@b SIP/2.0\r\nVia: SIP/2.0/UDP h:{port};branch=z9hG4bK1\r\n\r\n")
    with pytest.raises(SipParseError, match="Via"):
        msg.get_parsed_header("via")


@pytest.mark.parametrize("uri", ["sip:a@b:²", "sip:a@b:٣", f"sip:a@b:{HUGE}", "sip:a@b:65536",
                                 "sip:[::1]:²", f"sip:[::1]:{HUGE}", "sip:a@b:"])
def test_parse_uri_returns_none_for_bad_ports(uri: str) -> None:
    assert parse_uri(uri) is None


def test_parse_uri_reads_good_ports() -> None:
    assert parse_uri("sip:a@b:65535").port == 65535
    assert parse_uri("sip:a@[::1]:0").port == 0


def test_contact_with_bad_port_still_reads_as_text() -> None:
    # the Contact is a name-addr; its URI is parsed on demand, and gives None
    msg = SipMessage(_msg(Contact=f"<sip:a@b:{HUGE}>"))
    contact = msg.get_parsed_header("contact")[0]
    assert parse_uri(contact.uri) is None


def test_helpers() -> None:
    assert ascii_int("0042", 4) == 42
    assert ascii_int("00042", 4) is None
    assert ascii_int("", 4) is None
    assert ascii_int("²", 4) is None
    assert port_number("65535") == 65535
    assert port_number("65536") is None


def test_port_zero_survives_stringify() -> None:
    # found by the fuzz test: port 0 was dropped on the way back
    uri = parse_uri("sip:0:0")
    assert uri is not None and uri.port == 0
    again = parse_uri(stringify_uri(uri))
    assert again is not None and again.port == 0
