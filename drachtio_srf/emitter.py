"""Emitter: pyee's EventEmitter with cheap ``emit``/``listeners`` when nobody listens.

pyee builds an empty OrderedDict on every ``emit`` and ``listeners`` call for an event without
handlers, and takes the lock even then.  The library asks "does anyone listen?" and emits events
nobody listens to many times per call, so the classes it hands out (Srf, Request, Response,
Dialog) use this subclass.  Behaviour is pyee's: same registration, ``new_listener`` and
``error`` semantics, handlers called in registration order.

Most of those objects never get a listener, and a dialog keeps its INVITE's Request and
Response for its whole life: so an Emitter gets its own ``_events`` dict only when a listener
is first added (until then it reads a shared empty mapping), and all of them share one lock
(held only to copy or change a handler table, never while a handler runs).
"""
from __future__ import annotations

import threading
from collections.abc import Callable, Mapping
from types import MappingProxyType
from typing import Any

from pyee import EventEmitter

__all__ = ["Emitter"]

_NO_EVENTS: Any = MappingProxyType({})    # the handler table of an Emitter never listened to
_LOCK = threading.Lock()                  # guards every Emitter's handler table (short sections)


class Emitter(EventEmitter):
    """EventEmitter whose no-listener paths allocate nothing and take no lock."""

    _events: Any = _NO_EVENTS
    _lock: Any = _LOCK

    def __init__(self) -> None:
        """Nothing per instance until a listener is added (pyee's init would make a dict and a
        lock for every Request and Response)."""

    def __getstate__(self) -> Mapping[str, Any]:
        state = self.__dict__.copy()
        state.pop("_lock", None)
        return state

    def __setstate__(self, state: Mapping[str, Any]) -> None:
        self.__dict__.update(state)

    def _add_event_handler(self, event: str, k: Callable[..., Any], v: Callable[..., Any]) -> None:
        self.emit("new_listener", event, k)      # (before the listener is added, as pyee)
        with self._lock:
            events = self._events
            if events is _NO_EVENTS:
                events = self._events = {}
            handlers = events.get(event)
            if handlers is None:
                handlers = events[event] = {}     # (a dict keeps order too, in less memory)
            handlers[k] = v

    def remove_all_listeners(self, event: str | None = None) -> None:
        with self._lock:
            if event is None:
                self._events = _NO_EVENTS
            else:
                if self._events is _NO_EVENTS:
                    self._events = {}
                self._events[event] = {}

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
