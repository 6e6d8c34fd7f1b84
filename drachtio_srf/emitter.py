"""Emitter: the event emitter of Srf, Dialog, Request and Response (pyee's API, owned here).

Same behaviour as pyee's documented ``EventEmitter``: ``on``/``add_listener`` (also as a
decorator), ``once``, ``remove_listener``, ``remove_all_listeners``, ``listeners``,
``event_names``, ``emit`` returning whether anyone listened, ``new_listener`` emitted before a
listener is added, an ``error`` nobody listens to raised, listeners called in registration order
and an exception from a listener propagating out of ``emit``.  Plus the JS names
(``addListener``, ``removeListener``/``off``, ``removeAllListeners``, ``listenerCount``,
``eventNames``, ``prependListener``, ``prependOnceListener``) and the library's calling rules
for user code (:mod:`.usercode`): a listener gets only as many arguments as it declares, and an
``async def`` listener runs on the owner's event loop, its ``emit`` returning when it has
finished.

Built for the hot path: the library emits events nobody listens to many times per call, and a
dialog keeps its INVITE's Request and Response for its whole life.  So an Emitter has no
per-instance state until a listener is added (it reads a shared empty mapping); each event's
listeners are an immutable tuple replaced on change (under one lock shared by all emitters), so
``emit`` takes no lock and copies nothing, and with no listener allocates nothing.
"""
from __future__ import annotations

import threading
import types
from collections.abc import Callable, Mapping
from types import MappingProxyType
from typing import Any, TypeVar, overload

from .usercode import arity, pad, runner_for

__all__ = ["Emitter", "UnhandledErrorEvent"]

F = TypeVar("F", bound=Callable[..., Any])

# One listener: (the function as given, how many positional arguments it takes, once?)
_Entry = tuple[Callable[..., Any], int, bool]

_NO_EVENTS: Mapping[str, tuple[_Entry, ...]] = MappingProxyType({})   # table of an unlistened Emitter
_LOCK = threading.Lock()          # guards every Emitter's table changes (short sections)
_COROUTINE = types.CoroutineType


class UnhandledErrorEvent(Exception):
    """``emit('error', value)`` with no ``error`` listener, where ``value`` is not an exception
    (an exception value is raised itself)."""


class Emitter:
    """A thread-safe event emitter with pyee's semantics and JS aliases (see the module doc)."""

    _events: Mapping[str, tuple[_Entry, ...]] = _NO_EVENTS

    def __getstate__(self) -> Mapping[str, Any]:
        return self.__dict__.copy()

    def __setstate__(self, state: Mapping[str, Any]) -> None:
        self.__dict__.update(state)

    # -- adding -----------------------------------------------------------------------------------
    @overload
    def on(self, event: str) -> Callable[[F], F]: ...
    @overload
    def on(self, event: str, f: F) -> F: ...

    def on(self, event: str, f: Callable[..., Any] | None = None) -> Any:
        """Call ``f`` on every ``event``; returns ``f`` (without ``f``: a decorator)."""
        if f is None:
            return lambda fn: self.on(event, fn)
        self._add_event_handler(event, f, f)
        return f

    def add_listener(self, event: str, f: F) -> F:
        """Same as :meth:`on` with a function."""
        self._add_event_handler(event, f, f)
        return f

    @overload
    def once(self, event: str) -> Callable[[F], F]: ...
    @overload
    def once(self, event: str, f: F) -> F: ...

    def once(self, event: str, f: Callable[..., Any] | None = None) -> Any:
        """Call ``f`` on the next ``event`` only (removed before it runs); returns ``f``."""
        if f is None:
            return lambda fn: self.once(event, fn)
        self._add_event_handler(event, f, None)
        return f

    def prepend_listener(self, event: str, f: F) -> F:
        """Like :meth:`on`, but ``f`` runs before the listeners already there (JS)."""
        self._add_event_handler(event, f, f, first=True)
        return f

    def prepend_once_listener(self, event: str, f: F) -> F:
        """Like :meth:`once`, but ``f`` runs before the listeners already there (JS)."""
        self._add_event_handler(event, f, None, first=True)
        return f

    def _add_event_handler(self, event: str, k: Callable[..., Any], v: Callable[..., Any] | None,
                           *, first: bool = False) -> None:
        """Every way of adding a listener ends here (``v`` None: a once listener); subclasses
        extend it to react to new listeners.  ``new_listener`` is emitted before the add."""
        if not callable(k):
            raise TypeError(f"listener for {event!r} must be callable, got {type(k).__name__}")
        self.emit("new_listener", event, k)
        self._store(event, (k, arity(k), v is None), first)

    def _store(self, event: str, entry: _Entry, first: bool) -> None:
        """Put ``entry`` in ``event``'s table (no user code runs here: subclasses may hold a
        lock around it)."""
        k = entry[0]
        with _LOCK:
            events = self._events
            if events is _NO_EVENTS:
                events = self._events = {}
            old = events.get(event, ())
            for i, e in enumerate(old):
                if e[0] == k:        # the same function again: replaced in place (pyee keys by it)
                    events[event] = (*old[:i], entry, *old[i + 1:])  # type: ignore[index]
                    return
            events[event] = (entry, *old) if first else (*old, entry)  # type: ignore[index]

    # -- removing ---------------------------------------------------------------------------------
    def remove_listener(self, event: str, f: Callable[..., Any]) -> None:
        """Remove ``f`` from ``event``; KeyError when it is not a listener (as pyee)."""
        if not self._remove(event, f):
            raise KeyError(f)

    def off(self, event: str, f: Callable[..., Any]) -> Emitter:
        """Remove ``f`` from ``event`` if it is there (JS ``off``/``removeListener``); returns self."""
        self._remove(event, f)
        return self

    def _remove(self, event: str, f: Callable[..., Any]) -> bool:
        with _LOCK:
            old = self._events.get(event)
            if not old:
                return False
            for i, e in enumerate(old):
                if e[0] == f:
                    rest = old[:i] + old[i + 1:]
                    if rest:
                        self._events[event] = rest  # type: ignore[index]
                    else:
                        del self._events[event]  # type: ignore[attr-defined]
                    return True
            return False

    def remove_all_listeners(self, event: str | None = None) -> None:
        """Remove every listener of ``event``, or of every event."""
        with _LOCK:
            if event is None:
                self._events = _NO_EVENTS
            else:
                if self._events is _NO_EVENTS:
                    self._events = {}
                self._events[event] = ()  # type: ignore[index]

    # -- reading ----------------------------------------------------------------------------------
    def listeners(self, event: str) -> list[Callable[..., Any]]:
        """The listeners of ``event``, in calling order (a new list)."""
        entries = self._events.get(event)
        return [e[0] for e in entries] if entries else []

    def has_listeners(self, event: str) -> bool:
        """Whether ``event`` has at least one listener (no list is built)."""
        return bool(self._events.get(event))

    def listener_count(self, event: str) -> int:
        """How many listeners ``event`` has (JS ``listenerCount``)."""
        return len(self._events.get(event, ()))

    def event_names(self) -> set[str]:
        """The events that have (or had, until ``remove_all_listeners()``) listeners."""
        return set(self._events)

    # -- emitting ---------------------------------------------------------------------------------
    def emit(self, event: str, *args: Any, **kwargs: Any) -> bool:
        """Call the listeners of ``event`` in order; True when there was one.

        An ``error`` event with no listener raises its argument (or UnhandledErrorEvent).  An
        exception from a listener propagates to the caller; later listeners do not run.
        """
        entries = self._events.get(event)
        if not entries:
            if event == "error":
                err = args[0] if args else None
                if isinstance(err, Exception):
                    raise err
                raise UnhandledErrorEvent(f"Uncaught, unspecified 'error' event: {err}")
            return False
        self._call_entries(event, entries, args, kwargs)
        return True

    def _call_entries(self, event: str, entries: tuple[_Entry, ...], args: tuple[Any, ...],
                      kwargs: Mapping[str, Any]) -> None:
        """Call the listeners ``entries`` (a snapshot of ``event``'s) with ``args``."""
        nargs = len(args)
        for f, n, once in entries:
            if once and not self._remove(event, f):
                continue        # another emit took it first
            if n < nargs:
                result = f(*args[:n], **kwargs)
            elif n == nargs:
                result = f(*args, **kwargs)
            else:
                result = f(*pad(f, args), **kwargs)
            if result is not None and type(result) is _COROUTINE:
                runner_for(self).run(result)

    # -- JS names ---------------------------------------------------------------------------------
    addListener = add_listener
    """JS name of :meth:`add_listener`: returns the function added."""
    prependListener = prepend_listener
    """JS name of :meth:`prepend_listener`: returns the function added."""
    prependOnceListener = prepend_once_listener
    """JS name of :meth:`prepend_once_listener`: returns the function added."""
    removeListener = off
    """JS name of :meth:`off`: removes one listener, returns self."""
    removeAllListeners = remove_all_listeners
    """JS name of :meth:`remove_all_listeners` (for one event or all)."""
    listenerCount = listener_count
    """JS name of :meth:`listener_count`: returns the number of listeners of an event."""
    eventNames = event_names
    """JS name of :meth:`event_names`: returns the set of event names with listeners."""
