"""The embedded server's request checks that mirror sofia-sip / drachtio-server (sip_checks.py)."""
from __future__ import annotations

import pytest

from drachtio_srf.server.sip_checks import date_ok, method_ok, request_problem
from drachtio_srf.sip import SipMessage


@pytest.mark.parametrize("value, ok", [
    ("Sat, 13 Nov 2010 23:29:00 GMT", True),
    ("Sun, 06 Nov 1994 08:49:37", True),                 # no zone: taken
    ("Sunday, 06-Nov-94 08:49:37 GMT", True),            # RFC 850
    ("Sun Nov  6 08:49:37 1994", True),                  # asctime
    ("Fri, 01 Jan 2010 16:00:00 EST", False),            # RFC 4475 baddate
    ("Tue, 29 Feb 2011 10:00:00 GMT", False),            # no 29 February in 2011
    ("Wed, 29 Feb 2012 10:00:00 GMT", True),
    ("Sat, 13 Nov 2010 23:60:00 GMT", False),
    ("tomorrow", False),
])
def test_date_is_read_as_sofia_sip_reads_it(value: str, ok: bool) -> None:
    assert date_ok(value) is ok


@pytest.mark.parametrize("method, ok", [
    ("INVITE", True), ("RE%47IST%45R", True), ("X-foo.bar!~*'()", True),
    ("a+b", False), ("a`b", False),
])
def test_extension_methods_are_uri_unreserved_characters(method: str, ok: bool) -> None:
    assert method_ok(method) is ok


def _request(*headers: str) -> tuple[SipMessage, bytes]:
    data = ("OPTIONS sip:a@example.com SIP/2.0\r\nVia: SIP/2.0/UDP h;branch=z9hG4bK1\r\n"
            + "".join(h + "\r\n" for h in headers) + "Content-Length: 0\r\n\r\n").encode()
    return SipMessage(data), data


def test_contact_with_uri_headers_outside_brackets_is_a_bad_contact() -> None:
    msg, data = _request("From: <sip:b@example.com>;tag=1", "To: <sip:a@example.com>", "Call-ID: x",
                         "CSeq: 1 OPTIONS", "Contact: sip:b@example.com?Route=%3Csip:c%3E")
    problem = request_problem(msg, data, "udp")
    assert problem is not None and problem.phrase == "Bad Contact Header"
    msg, data = _request("From: <sip:b@example.com>;tag=1", "To: <sip:a@example.com>", "Call-ID: x",
                         "CSeq: 1 OPTIONS", "Contact: <sip:b@example.com?Route=%3Csip:c%3E>;expires=3")
    assert request_problem(msg, data, "udp") is None


def test_the_reason_names_the_first_bad_line() -> None:
    msg, data = _request("Max-Forwards: 70", "CSeq: 1 OPTIONS", "CSeq: 2 OPTIONS", "Call-ID: x",
                         "From: <sip:b@example.com>;tag=1", "To: <sip:a@example.com>", "Max-Forwards: 5")
    problem = request_problem(msg, data, "udp")
    assert problem is not None and problem.phrase == "Bad CSeq Header"
