"""drachtio_srf: SIP applications on drachtio-server, in Python (a port of drachtio-srf).

Async methods take an optional callback ``(err, *results)`` or return a
:class:`DrachtioFuture` (a ``concurrent.futures.Future``); asyncio users can
``await asyncio.wrap_future(fut)``.
"""
from . import errors, models, threadpolicy
from .dialog import Dialog
from .dispatch import DrachtioFuture
from .errors import (
    ArgumentError,
    AuthenticationError,
    ConnectionLostError,
    DrachtioError,
    NotConnectedError,
    SipError,
)
from .models import (
    B2BUAResult,
    Callback,
    ProxyResult,
    Registration,
    ServerInfo,
    SipEndpointInfo,
    SipInfo,
    json_default,
)
from .request import Request
from .response import Response
from .sip import AttrDict, SipMessage, SipParseError, parse_uri, parseUri, stringify_uri, stringifyUri
from .srf import Srf
from .threadpolicy import set_thread_policy
from .trace import configure_from_env as _configure_trace

SipRequest = Request
"""Alias of :class:`Request` under its drachtio-srf name (``Srf.SipRequest``)."""
SipResponse = Response
"""Alias of :class:`Response` under its drachtio-srf name (``Srf.SipResponse``)."""

__version__ = "0.1.0"

__all__ = [
    "ArgumentError",
    "AttrDict",
    "AuthenticationError",
    "B2BUAResult",
    "Callback",
    "ConnectionLostError",
    "Dialog",
    "DrachtioError",
    "DrachtioFuture",
    "NotConnectedError",
    "ProxyResult",
    "Registration",
    "Request",
    "Response",
    "ServerInfo",
    "SipEndpointInfo",
    "SipError",
    "SipInfo",
    "SipMessage",
    "SipParseError",
    "SipRequest",
    "SipResponse",
    "Srf",
    "__version__",
    "errors",
    "json_default",
    "models",
    "parseUri",
    "parse_uri",
    "set_thread_policy",
    "stringifyUri",
    "stringify_uri",
    "threadpolicy",
]

# DRACHTIO_DEBUG=1 or DEBUG=drachtio:* turn the wire trace on (see drachtio_srf.trace)
_configure_trace()
