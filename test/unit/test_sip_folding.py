"""Folded (continuation) header lines: joined correctly and in linear time (issue 9.8)."""
from __future__ import annotations

import time

from drachtio_srf.sip import SipMessage, SipParseError


def _folded(n: int) -> str:
    return ("OPTIONS sip:a@b SIP/2.0\r\nVia: SIP/2.0/UDP h;branch=z9hG4bK1\r\nX-Fold: a\r\n"
            + " b\r\n" * n + "Call-ID: c\r\nContent-Length: 0\r\n\r\n")


def _best_time(text: str, repeats: int = 3) -> float:
    best = float("inf")
    for _ in range(repeats):
        start = time.perf_counter()
        SipMessage(text)
        best = min(best, time.perf_counter() - start)
    return best


def test_folded_lines_join_with_one_space() -> None:
    msg = SipMessage("OPTIONS sip:a@b SIP/2.0\r\nTo :\r\n sip:x@y ;\r\n\t tag = 1\r\n"
                     "Subject: a  \r\n   b\r\n \r\nCall-ID: c\r\n\r\n")
    assert msg.get("to") == "sip:x@y ; tag = 1"
    assert msg.get("subject") == "a b"
    assert msg.get_parsed_header("to").params == {"tag": "1"}
    assert msg.to_string().startswith("OPTIONS sip:a@b SIP/2.0\r\nTo: sip:x@y ; tag = 1\r\n")


def test_continuation_before_any_header_is_an_error() -> None:
    try:
        SipMessage("OPTIONS sip:a@b SIP/2.0\r\n folded\r\nCall-ID: c\r\n\r\n")
    except SipParseError as e:
        assert "continuation line before any header (line 2)" in str(e)
    else:
        raise AssertionError("no SipParseError")


def test_folding_is_linear() -> None:
    # 10x the lines must cost about 10x the time, not 100x. The bound (40x) leaves room for
    # noise on a loaded machine while still failing clearly for quadratic joining (~100x).
    small, big = _folded(10_000), _folded(100_000)
    assert SipMessage(big).get("x-fold") == "a" + " b" * 100_000
    ratio = _best_time(big) / _best_time(small)
    assert ratio < 40, f"100k folded lines took {ratio:.0f}x the time of 10k"
