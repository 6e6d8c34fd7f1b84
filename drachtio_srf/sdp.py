"""The few SDP edits and comparisons the framework makes (hold/unhold, refresh detection).

Plain text operations on CRLF-separated SDP, as drachtio-srf does them; no full SDP model.
"""
from __future__ import annotations

import re

__all__ = [
    "black_hole",
    "hold_answer",
    "hold_offer",
    "is_hold",
    "is_refresh",
    "is_unhold",
    "origin",
    "redact_origin",
    "unhold_answer",
    "unhold_offer",
]

_ORIGIN = re.compile(r"^o=.*$", re.MULTILINE)
_DIRECTIONS = ("a=sendrecv", "a=sendonly", "a=recvonly", "a=inactive")


def redact_origin(sdp: str | None) -> str:
    """The SDP with its ``o=`` line replaced by ``o=REDACTED`` (so versions don't matter)."""
    return _ORIGIN.sub("o=REDACTED", sdp or "", count=1)


def origin(sdp: str | None) -> tuple[str, str] | None:
    """``(session id, session version)`` of the ``o=`` line, or None when there is none."""
    m = _ORIGIN.search(sdp or "")
    if not m:
        return None
    parts = m.group(0)[2:].split()
    if len(parts) < 3:
        return None
    return parts[1], parts[2]


def is_refresh(old: str | None, new: str | None) -> bool:
    """A session refresh: same ``o=`` session id *and* version (compared exactly, as text)."""
    a, b = origin(old), origin(new)
    return a is not None and a == b


def is_hold(old_remote: str | None, new: str | None) -> bool:
    """``new`` is ``old_remote`` with ``a=sendrecv`` turned into ``a=sendonly`` (o= ignored)."""
    if not old_remote or not new:
        return False
    return redact_origin(old_remote).replace("a=sendrecv\r\n", "a=sendonly\r\n") == redact_origin(new) \
        and redact_origin(old_remote) != redact_origin(new)


def is_unhold(old_remote: str | None, new: str | None) -> bool:
    """The reverse of :func:`is_hold`."""
    if not old_remote or not new:
        return False
    return redact_origin(old_remote).replace("a=sendonly\r\n", "a=sendrecv\r\n") == redact_origin(new) \
        and redact_origin(old_remote) != redact_origin(new)


def hold_offer(local: str | None) -> str:
    """Our re-INVITE offer to put the far end on hold: the first ``a=sendrecv`` -> ``a=inactive``."""
    return (local or "").replace("a=sendrecv", "a=inactive", 1)


def unhold_offer(local: str | None) -> str:
    """Undo :func:`hold_offer`: the first ``a=inactive`` -> ``a=sendrecv``."""
    return (local or "").replace("a=inactive", "a=sendrecv", 1)


def hold_answer(local: str | None) -> str:
    """Our answer when the far end holds us: every ``a=sendrecv`` -> ``a=recvonly``."""
    return (local or "").replace("a=sendrecv\r\n", "a=recvonly\r\n")


def unhold_answer(local: str | None) -> str:
    """Our answer when the far end resumes: every ``a=recvonly`` -> ``a=sendrecv``."""
    return (local or "").replace("a=recvonly\r\n", "a=sendrecv\r\n")


def black_hole(remote: str) -> str:
    """An ACK answer for a third-party-call-control 200: the offer with session-level
    ``a=recvonly`` (any session-level direction attribute replaced)."""
    lines = remote.replace("\r\n", "\n").split("\n")
    while lines and lines[-1] == "":
        lines.pop()
    first_media = next((i for i, line in enumerate(lines) if line.startswith("m=")), len(lines))
    session = [line for line in lines[:first_media] if line not in _DIRECTIONS]
    insert_at = len(session)
    for i, line in enumerate(session):
        if line.startswith("t="):
            insert_at = i + 1
    session.insert(insert_at, "a=recvonly")
    return "\r\n".join(session + lines[first_media:]) + "\r\n"
