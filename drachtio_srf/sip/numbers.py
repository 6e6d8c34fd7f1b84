"""Reading numbers out of SIP and control-protocol text: ASCII digits only, bounded length.

``str.isdigit()`` accepts characters ``int()`` refuses (``'²'``) or reads (Arabic-Indic digits),
and ``int()`` refuses strings longer than 4300 digits; every number the sans-I/O layer reads from
the network goes through :func:`ascii_int` instead, so bad input gives a clean parse error.
"""

from __future__ import annotations

__all__ = ["MAX_CONTENT_LENGTH_DIGITS", "MAX_PORT", "MAX_SEQ", "ascii_int", "port_number"]

#: CSeq / RSeq numbers are 32-bit unsigned (RFC 3261 8.1.1.5 says less than 2**31 when chosen)
MAX_SEQ = 2**32 - 1
"""Largest CSeq / RSeq number: they are 32-bit unsigned."""
#: a Content-Length of more digits than this is refused (far above any datagram or stream buffer)
MAX_CONTENT_LENGTH_DIGITS = 10
"""A Content-Length with more digits than this is refused."""
MAX_PORT = 65535
"""Largest valid port number."""


def ascii_int(text: str, max_digits: int) -> int | None:
    """The value of ``text`` if it is 1 to ``max_digits`` ASCII digits, else None."""
    if 0 < len(text) <= max_digits and text.isascii() and text.isdigit():
        return int(text)
    return None


def port_number(text: str) -> int | None:
    """A port number (0-65535, ASCII digits) or None."""
    n = ascii_int(text, 5)
    return n if n is not None and n <= MAX_PORT else None
