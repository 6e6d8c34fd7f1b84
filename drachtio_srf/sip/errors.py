"""The one exception of the sans-I/O SIP layer."""

from __future__ import annotations

__all__ = ["SipParseError"]


class SipParseError(ValueError):
    """Malformed SIP text: the message says what is wrong and where."""


def snippet(text: str, limit: int = 60) -> str:
    """A short repr of some offending text, for error messages."""
    if len(text) > limit:
        return repr(text[:limit]) + "..."
    return repr(text)
