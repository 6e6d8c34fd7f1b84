"""Text builders for the messages the SIP stack makes on its own.

100 Trying, 400/481/200-to-CANCEL, synthesised 408/503, the ACK of a non-2xx final and CANCEL:
built straight as text from header values (fast, and exact about which headers are copied).
Also: the top-Via rport/received rewrite and a last-resort header salvage for unparseable requests.
"""
from __future__ import annotations

import re
import secrets
from collections.abc import Iterable, Sequence

from drachtio_srf.sip import SipMessage, reason_phrase

CRLF = "\r\n"
"""Line end of SIP messages."""


def new_branch() -> str:
    """A new Via branch parameter (RFC 3261 magic cookie plus random hex)."""
    return "z9hG4bK" + secrets.token_hex(10)


def new_tag() -> str:
    """A new random From/To tag."""
    return secrets.token_hex(6)


def response_text(status: int, reason: str | None, vias: Sequence[str], from_: str, to: str,
                  call_id: str, cseq: str, *, to_tag: str | None = None,
                  extra: Iterable[tuple[str, str]] = ()) -> str:
    """A body-less response from the request's header values; `to_tag` is added to To if given."""
    parts = [f"SIP/2.0 {status} {reason or reason_phrase(status)}"]
    parts.extend("Via: " + v for v in vias)
    parts.append("From: " + from_)
    parts.append("To: " + (f"{to};tag={to_tag}" if to_tag else to))
    parts.append("Call-ID: " + call_id)
    parts.append("CSeq: " + cseq)
    parts.extend(f"{k}: {v}" for k, v in extra)
    parts.append("Content-Length: 0")
    return CRLF.join(parts) + CRLF + CRLF


def response_to(req: SipMessage, status: int, reason: str | None = None, *,
                to: str | None = None, extra: Iterable[tuple[str, str]] = ()) -> str:
    """A response to a parsed request; a To tag is added above 100 when the To has none."""
    to_value = to if to is not None else (req.get("to") or "")
    tag = None
    if status > 100 and to is None and not req.to_tag:
        tag = new_tag()
    return response_text(status, reason, req.get_all("via"), req.get("from") or "", to_value,
                         req.call_id or "", req.get("cseq") or "", to_tag=tag, extra=extra)


def error_response(req: SipMessage, status: int, reason: str, *, omit: Iterable[str] = (),
                   extra: Iterable[tuple[str, str]] = ()) -> str:
    """A response to a request that failed the server's checks, with what of it can be echoed.

    As sofia-sip does, From, To, Call-ID and CSeq are copied only when present and not named in
    ``omit`` (the headers that did not parse); a copied To without a tag gets one.
    """
    skip = set(omit)
    parts = [f"SIP/2.0 {status} {reason}"]
    parts.extend("Via: " + v for v in req.get_all("via"))
    for name, label in (("from", "From"), ("to", "To"), ("call-id", "Call-ID"), ("cseq", "CSeq")):
        value = None if name in skip else req.get(name)
        if value is None:
            continue
        if name == "to" and not re.search(r";\s*tag\s*=", value, re.IGNORECASE):
            value = f"{value};tag={new_tag()}"
        parts.append(f"{label}: {value}")
    parts.extend(f"{k}: {v}" for k, v in extra)
    parts.append("Content-Length: 0")
    return CRLF.join(parts) + CRLF + CRLF


def synthesised(req: SipMessage, status: int, reason: str | None = None,
                extra: Iterable[tuple[str, str]] = ()) -> SipMessage:
    """The response a client transaction reports itself (timeout, transport error)."""
    vias = req.get_all("via")[:1]
    text = response_text(status, reason, vias, req.get("from") or "", req.get("to") or "",
                         req.call_id or "", req.get("cseq") or "", extra=extra)
    return SipMessage(text)


def ack_for(invite: SipMessage, response: SipMessage) -> str:
    """The ACK of a non-2xx final response (RFC 3261 17.1.1.3): same branch, To from the response."""
    cseq = invite.cseq
    assert cseq is not None, "an INVITE we sent always has a CSeq"
    parts = [f"ACK {invite.uri} SIP/2.0", "Via: " + invite.get_all("via")[0]]
    parts.extend("Route: " + r for r in invite.get_all("route"))
    parts.append("Max-Forwards: 70")
    parts.append("From: " + (invite.get("from") or ""))
    parts.append("To: " + (response.get("to") or ""))
    parts.append("Call-ID: " + (invite.call_id or ""))
    parts.append(f"CSeq: {cseq.seq} ACK")
    parts.append("Content-Length: 0")
    return CRLF.join(parts) + CRLF + CRLF


def cancel_for(invite: SipMessage, extra: Iterable[tuple[str, str]] = ()) -> str:
    """CANCEL of an INVITE we sent (RFC 3261 9.1): same URI, top Via, Route, From, To, Call-ID."""
    cseq = invite.cseq
    if cseq is None:
        raise ValueError("cannot CANCEL a request without CSeq")
    parts = [f"CANCEL {invite.uri} SIP/2.0", "Via: " + invite.get_all("via")[0]]
    parts.extend("Route: " + r for r in invite.get_all("route"))
    parts.append("Max-Forwards: 70")
    parts.append("From: " + (invite.get("from") or ""))
    parts.append("To: " + (invite.get("to") or ""))
    parts.append("Call-ID: " + (invite.call_id or ""))
    parts.append(f"CSeq: {cseq.seq} CANCEL")
    parts.extend(f"{k}: {v}" for k, v in extra)
    parts.append("Content-Length: 0")
    return CRLF.join(parts) + CRLF + CRLF


# -- top Via rewrite (rport / received, RFC 3581 and RFC 3261 18.2.1) ------------------------------

_RPORT = re.compile(r";[ \t]*rport(?:[ \t]*=[ \t]*[^;, \t]*)?", re.IGNORECASE)
_RECEIVED = re.compile(r";[ \t]*received[ \t]*=[ \t]*[^;, \t]*", re.IGNORECASE)


def _first_value_end(line: str) -> int:
    """Index of the comma that ends the first Via value on a header line, or -1."""
    if "," not in line:
        return -1
    quoted = False
    for i, ch in enumerate(line):
        if ch == '"':
            quoted = not quoted
        elif ch == "," and not quoted:
            return i
    return -1


def stamp_top_via(msg: SipMessage, via_host: str | None, address: str, port: int) -> None:
    """Add `;rport=<port>` (and `;received=<address>` if it differs from the Via host) to the top Via."""
    lines = msg.get_all("via")
    first = lines[0]
    cut = _first_value_end(first)
    head, tail = (first, "") if cut < 0 else (first[:cut], first[cut:])
    head = head.rstrip()
    if _RPORT.search(head):
        head = _RPORT.sub(f";rport={port}", head, count=1)
    else:
        head += f";rport={port}"
    if via_host != address:
        if _RECEIVED.search(head):
            head = _RECEIVED.sub(f";received={address}", head, count=1)
        else:
            head += f";received={address}"
    new_first = head + tail
    if len(lines) == 1:
        msg.replace("via", new_first)
        return
    msg.replace("via", lines[-1])
    for line in reversed(lines[1:-1]):
        msg.prepend("via", line)
    msg.prepend("via", new_first)


# -- salvage for requests the parser refused -------------------------------------------------------

_REQUEST_LINE = re.compile(r"^([A-Za-z]+) +\S+ +SIP/2\.0\s*$")
_COMPACT = {"v": "via", "f": "from", "t": "to", "i": "call-id"}
_NEEDED = ("from", "to", "call-id", "cseq")


def salvage_400(data: bytes, why: str, reason: str = "Bad Request") -> bytes | None:
    """A 400 for an unparseable request whose Via/From/To/Call-ID/CSeq can still be read, else None."""
    text = data.decode("utf-8", "replace")
    head = text.split("\r\n\r\n", 1)[0].replace("\r\n", "\n")
    lines = head.split("\n")
    m = _REQUEST_LINE.match(lines[0])
    if m is None or m.group(1).upper() == "ACK":
        return None
    vias: list[str] = []
    found: dict[str, str] = {}
    for line in lines[1:]:
        name, sep, value = line.partition(":")
        if not sep:
            continue
        key = name.strip().lower()
        key = _COMPACT.get(key, key)
        value = value.strip()
        if key == "via" and value:
            vias.append(value)
        elif key in _NEEDED and key not in found and value:
            found[key] = value
    if not vias or len(found) < len(_NEEDED):
        return None
    warning = why.replace('"', "'")[:200]
    return response_text(400, reason, vias, found["from"], found["to"], found["call-id"], found["cseq"],
                         to_tag=None if ";tag=" in found["to"].lower() else new_tag(),
                         extra=[("Warning", f'399 - "{warning}"')]).encode("utf-8")
