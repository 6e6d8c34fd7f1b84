"""Sans-I/O SIP: parse and build messages, URIs and header values (no sockets, no threads)."""

from .errors import SipParseError
from .headers import (
    COMPACT_FORMS,
    STATUS_REASONS,
    AttrDict,
    header_key,
    header_name,
    pretty_name,
    reason_phrase,
)
from .parser import SipMessage
from .uri import parse_uri, parseUri, stringify_uri, stringifyUri

__all__ = [
    "COMPACT_FORMS",
    "STATUS_REASONS",
    "AttrDict",
    "SipMessage",
    "SipParseError",
    "header_key",
    "header_name",
    "parseUri",
    "parse_uri",
    "pretty_name",
    "reason_phrase",
    "stringifyUri",
    "stringify_uri",
]
