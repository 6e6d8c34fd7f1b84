"""The library's exceptions: SIP failures and control-connection failures."""
from __future__ import annotations

from typing import Any

__all__ = [
    "ArgumentError",
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
        """The SIP status code of the non-success final response."""
        self.reason = reason
        """The reason phrase of that response, if known."""
        self.res = res
        """The :class:`Response` itself when the library has it, else None."""

    @property
    def name(self) -> str:
        """Always ``'SipError'`` (the JS ``err.name``)."""
        return "SipError"

    @property
    def message(self) -> str:
        """The JS ``message``: ``Sip non-success response: <status>``."""
        return str(self)

    def to_json(self) -> dict[str, Any]:
        """What ``JSON.stringify(err)`` gives in JS: ``{name, status, reason}`` (and ``res`` when
        the response is known, as its ``to_json()``).  ``json.dumps(err.to_json())``, or
        ``json.dumps(err, default=drachtio_srf.json_default)``."""
        out: dict[str, Any] = {"name": self.name, "status": self.status}
        if self.reason is not None:
            out["reason"] = self.reason
        res_json = getattr(self.res, "to_json", None)
        if callable(res_json):
            out["res"] = res_json()
        return out

    toJSON = to_json
    """JS name of :meth:`to_json`: returns the ``JSON.stringify`` form."""

    def __repr__(self) -> str:
        return f"SipError({self.status!r}, {self.reason!r})"


class ArgumentError(ValueError, AssertionError):
    """A public entry point got an argument it cannot use.

    drachtio-srf checks these with ``assert`` (an ``AssertionError``); Python code expects a
    ``ValueError``.  This is both, so ``except ValueError`` and a port's ``except AssertionError``
    each catch it.
    """


class DrachtioError(Exception):
    """A failure reported by drachtio-server or of the control connection."""


class NotConnectedError(DrachtioError):
    """An operation needs a control connection and there is none."""


class ConnectionLostError(DrachtioError):
    """The control connection closed while an operation was waiting for the server."""


class AuthenticationError(DrachtioError):
    """drachtio-server refused the shared secret."""
