"""Header copying for create_b2bua (proxy_request_headers / proxy_response_headers)."""
from __future__ import annotations

from drachtio_srf.b2bua import copy_headers
from drachtio_srf.sip import SipMessage

INVITE = ("INVITE sip:b@example.com SIP/2.0\r\n"
          "Via: SIP/2.0/UDP 10.0.0.1:5060;branch=z9hG4bK1\r\n"
          "From: <sip:a@example.com>;tag=1\r\nTo: <sip:b@example.com>\r\n"
          "Call-ID: abc\r\nCSeq: 1 INVITE\r\nContact: <sip:a@10.0.0.1>\r\n"
          "Subject: hello\r\nX-Custom: one\r\nX-Drop: two\r\nDiversion: <sip:c@example.com>\r\n"
          "Content-Type: application/sdp\r\nContent-Length: 0\r\n\r\n")


def test_named_headers_are_found_case_insensitively_under_the_source_spelling():
    msg = SipMessage(INVITE)
    out = copy_headers(msg, ["x-custom", "SUBJECT", "X-Missing"])
    assert out == {"X-Custom": "one", "subject": "hello"}


def test_all_copies_everything_but_dialog_headers_and_the_excluded_ones():
    msg = SipMessage(INVITE)
    out = copy_headers(msg, ["all", "-X-Drop", "-diversion"])
    assert out == {"subject": "hello", "X-Custom": "one"}


def test_all_does_not_change_the_source_message():
    msg = SipMessage(INVITE)
    copy_headers(msg, ["all", "-X-Drop", "-Subject"])
    assert msg.get("X-Drop") == "two" and msg.get("Subject") == "hello"


def test_nothing_to_copy():
    msg = SipMessage(INVITE)
    assert copy_headers(msg, []) == {}
    assert copy_headers(None, ["all"]) == {}
