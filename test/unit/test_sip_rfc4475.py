"""RFC 4475 torture messages through the client's SIP parser (issue 9.11, client side).

Each message either parses and every header the library reads works, or the failure is a
SipParseError at the point test/data/rfc4475/index.json says (decided as sofia-sip would).
"""
from __future__ import annotations

import hashlib
import json
from pathlib import Path

import pytest

from drachtio_srf.sip import SipMessage, SipParseError

CORPUS = Path(__file__).resolve().parent.parent / "data" / "rfc4475"
INDEX = json.loads((CORPUS / "index.json").read_text())["messages"]
HEADERS = ("from", "to", "via", "cseq", "contact", "content-length", "call-id")


def _read_all(msg: SipMessage) -> dict[str, object]:
    """Read what the library reads; header -> parsed value, or the SipParseError it raised."""
    out: dict[str, object] = {}
    for h in HEADERS:
        if msg.has(h):
            try:
                out[h] = msg.get_parsed_header(h)
            except SipParseError as e:
                out[h] = e
    for prop in ("call_id", "body", "payload", "from_tag", "to_tag", "calling_number",
                 "called_number", "calling_name"):
        try:
            getattr(msg, prop)
        except SipParseError as e:
            out[prop] = e
    return out


def test_corpus_is_complete() -> None:
    assert len(INDEX) == 49
    assert sum(m["syntax"] == "invalid" for m in INDEX) == 19
    for m in INDEX:
        data = (CORPUS / f"{m['name']}.dat").read_bytes()
        if m["name"] == "baddn":    # the RFC's archive ends this one right after its last header
            assert data.endswith(b"l: 0\r\n") and b"\r\n\r\n" not in data
        else:
            assert b"\r\n\r\n" in data, m["name"]


def test_corpus_bytes_are_the_checked_ones() -> None:
    """Each file is the one checked against the RFC's archive (README): its SHA-256 is recorded."""
    for m in INDEX:
        data = (CORPUS / f"{m['name']}.dat").read_bytes()
        assert hashlib.sha256(data).hexdigest() == m["sha256"], m["name"]


@pytest.mark.parametrize("entry", INDEX, ids=[m["name"] for m in INDEX])
def test_torture_message(entry: dict[str, str]) -> None:
    data = (CORPUS / f"{entry['name']}.dat").read_bytes()
    client = entry["client"]
    if client == "parse error":
        with pytest.raises(SipParseError):
            SipMessage(data)
        return
    msg = SipMessage(data)
    results = _read_all(msg)
    errors = {k for k, v in results.items() if isinstance(v, SipParseError)}
    if client.startswith("error reading "):
        expected = {h.lower() for h in client[len("error reading "):].split("/")}
        assert expected <= errors, (entry["name"], results)
    else:
        assert not errors, (entry["name"], results)
    # the text survives a round trip through to_string / parse
    if not errors:
        again = SipMessage(msg.to_string())
        assert again.get("call-id") == msg.get("call-id")


def test_repeated_single_headers_read_first_line() -> None:
    multi = SipMessage((CORPUS / "multi01.dat").read_bytes())
    assert multi.cseq == {"seq": 5, "method": "INVITE"}
    assert multi.get_parsed_header("from").params["tag"] == "3413415"
    assert multi.get_parsed_header("to").uri == "sip:user@example.com"
    mcl = SipMessage((CORPUS / "mcl01.dat").read_bytes())
    assert mcl.get_parsed_header("content-length") == 13
    assert mcl.body == "There's no way"[:13]


def test_whitespace_runs_in_request_line_are_tolerated() -> None:
    lws = SipMessage((CORPUS / "lwsstart.dat").read_bytes())
    assert (lws.method, lws.uri, lws.version) == ("INVITE", "sip:user@example.com", "2.0")
    assert lws.to_string().startswith("INVITE sip:user@example.com SIP/2.0\r\n")
    trws = SipMessage((CORPUS / "trws.dat").read_bytes())
    assert trws.to_string().startswith("OPTIONS sip:remote-target@example.com SIP/2.0\r\n")
