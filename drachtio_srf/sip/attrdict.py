"""AttrDict: the dict with attribute access that every parsed SIP value is made of.

It lives in a module of its own because the optional compiled build (mypyc, see
docs/compiled.md) cannot compile a dict subclass with ``__getattr__``: this module always stays
interpreted, and the compiled modules create its instances like any other Python class.
"""

from __future__ import annotations

from typing import Any

__all__ = ["AttrDict"]


class AttrDict(dict[str, Any]):
    """A dict whose keys are also attributes (``h.uri == h["uri"]``), for JS-style access."""

    __slots__ = ()

    def __getattr__(self, key: str) -> Any:
        try:
            return self[key]
        except KeyError:
            raise AttributeError(key) from None

    def __setattr__(self, key: str, value: Any) -> None:
        self[key] = value

    def __delattr__(self, key: str) -> None:
        try:
            del self[key]
        except KeyError:
            raise AttributeError(key) from None
