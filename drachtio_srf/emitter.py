"""Emitter: pyee's EventEmitter with cheap ``emit``/``listeners`` when nobody listens.

pyee builds an empty OrderedDict on every ``emit`` and ``listeners`` call for an event without
handlers, and takes the lock even then.  The library asks "does anyone listen?" and emits events
nobody listens to many times per call, so the classes it hands out (Srf, Request, Response,
Dialog) use this subclass.  Behaviour is pyee's: same registration, ``new_listener`` and
``error`` semantics, handlers called in registration order.
"""
from __future__ import annotations

from collections.abc import Callable
from typing import Any

from pyee import EventEmitter

__all__ = ["Emitter"]


class Emitter(EventEmitter):
    """EventEmitter whose no-listener paths allocate nothing and take no lock."""

    def _call_handlers(self, event: str, args: tuple[Any, ...], kwargs: dict[str, Any]) -> bool:
        handlers = self._events.get(event)
        if not handlers:
            return False
        with self._lock:
            funcs = list(handlers.values())
        for f in funcs:
            self._emit_run(f, args, kwargs)
        return bool(funcs)

    def listeners(self, event: str) -> list[Callable[..., Any]]:
        handlers = self._events.get(event)
        if not handlers:
            return []
        with self._lock:
            return list(handlers)

    def has_listeners(self, event: str) -> bool:
        """Whether ``event`` has at least one listener (no list is built)."""
        return bool(self._events.get(event))
