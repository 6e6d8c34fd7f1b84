"""The library's exceptions: SIP failures and control-connection failures."""
from __future__ import annotations

from typing import Any

__all__ = [
    "AuthenticationError",
    "ConnectionLostError",
    "DrachtioError",
    "NotConnectedError",
    "SipError",
]


class SipError(Exception):
    """A request ended with a non-success final response.

    ``status`` and ``reason`` come from the response; ``res`` is the Response itself when the
    library has it (create_uac, create_b2bua, modify ...), else None.
    """

    def __init__(self, status: int, reason: str | None = None, res: Any = None) -> None:
        if not isinstance(status, int):
            raise TypeError(f"SipError status must be an int, not {type(status).__name__}")
        super().__init__(f"Sip non-success response: {status}")
        self.status = status
        self.reason = reason
        self.res = res

    @property
    def name(self) -> str:
        return "SipError"

    def __repr__(self) -> str:
        return f"SipError({self.status!r}, {self.reason!r})"


class DrachtioError(Exception):
    """A failure reported by drachtio-server or of the control connection."""


class NotConnectedError(DrachtioError):
    """An operation needs a control connection and there is none."""


class ConnectionLostError(DrachtioError):
    """The control connection closed while an operation was waiting for the server."""


class AuthenticationError(DrachtioError):
    """drachtio-server refused the shared secret."""
