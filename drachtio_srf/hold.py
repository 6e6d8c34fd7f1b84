"""Rule 5 of DESIGN.md: the hold that lets the consumer of a fresh dialog attach its listeners
before the dialog's next event runs, and :class:`Outcome`, how every public async method reports
back (callback or Future) through it.

How the hold works:

1. The reader thread registers the new Dialog and queues its completion on the dialog's key
   *before* it reads the next frame, so every in-dialog request lands behind it in that key's
   queue.  With a callback, the callback is that queued task: listeners it attaches are in place
   before the next task of the key runs.
2. With a Future, the reader puts a *hold* on the key (:meth:`Dispatcher.hold`, behind
   whatever the key already has), then resolves the Future at once (never through a queue: the
   waiting thread may itself be a worker on that very key), so a consumer woken at once already
   finds the key held.  A held key's later tasks
   queue without occupying any worker until the hold is released (:class:`_Hold`).  The rule:
   **events for a dialog you just received wait while your thread only runs Python code and
   library calls; the first call to a built-in outside the library lets them run.**  When
   ``result()`` hands the value over, a profile function is installed on the consumer's thread
   only (``sys.setprofile``; see "the watch" below) and the hold is released at the first of: a
   call to a built-in or extension function from code outside the library (``time.sleep``, a
   lock or ``Event.wait``, I/O, ``print``, ``len``; the standard library's Python code ends in
   those too), the return of the frame that called ``result()``, a wait on a library Future, or
   the end of the dispatched task it runs in.  Library calls (``dialog.on(...)``,
   ``dialog.local``, ...) and calls to the consumer's own Python functions keep it.  No timer
   is involved on that path.

   A consumer that awaits the Future in an asyncio event loop gets the hold until its task has
   run up to its next ``await`` (two loop iterations; see :meth:`_Hold.taken`).

   Fallbacks, all rare: a consumer that cannot be watched (another profiler such as cProfile is
   installed on its thread) gets the old windows: ``_OUTSIDE_WINDOW`` outside the workers, the
   task's end or ``_HOLD_MAX`` on a worker; a consumer that spins in pure bytecode without any
   call is released after ``_HOLD_MAX``; a result nobody waits for holds the key only
   ``_UNCLAIMED_WINDOW`` (or not at all when it has done-callbacks, which are queued on the key
   ahead of the hold).  Hence ``result()`` returning, and the library calls after it, happen
   before any queued in-dialog event (the release and the dispatch of the next task go through
   the dispatcher's lock).

A result made on the dialog's own key (the B2BUA answers A from a task on A's key, when A's ACK
may already be queued behind it) uses :meth:`Outcome.succeed_here`: the callback runs inline, or
the key is held from the end of the current task (``hold(key, first=True)``) with the same
release rules; done-callbacks then run on a key of their own and release the hold when done.

This module knows nothing of connections or SIP: it needs a dispatcher and timers (``Runtime``).
"""
from __future__ import annotations

import logging
import os
import sys
import threading
import time
from collections.abc import Callable, Hashable
from typing import TYPE_CHECKING, Any, Protocol

from .dispatch import Completion, Dispatcher, DrachtioFuture, Timers
from .usercode import adapt

if TYPE_CHECKING:
    from .dispatch import HoldHandle, TimerHandle

logger = logging.getLogger(__name__)

__all__ = ["GatedFuture", "Outcome", "Runtime", "run_task"]


class Runtime(Protocol):
    """What the hold needs from its owner (the Agent): where tasks and timers run."""

    dispatcher: Dispatcher
    """Worker pool where user code and events run."""
    timers: Timers
    """Timer thread for the hold's deadlines."""


_HOLD_MAX = 1.0            # rule 5: last resort against a consumer that never calls anything
_OUTSIDE_WINDOW = 0.5      # rule 5: window for a consumer outside the workers that cannot be watched
_UNCLAIMED_WINDOW = 0.3    # rule 5: wait for a consumer when nobody was waiting on the result

# Code in this directory is "the library" for the watch (``dialog.on(...)`` runs the package's own
# emitter).
_LIBRARY_DIRS = (os.path.dirname(os.path.abspath(__file__)) + os.sep,)


class _TaskLocal(threading.local):
    """Per-thread state of the hold; class defaults, so reading it needs no ``getattr``."""

    in_task = False                     # a dispatched task (run_task) is running on this thread
    held: list[_Hold] | None = None     # holds this thread's consumer took
    watch: Any = None                   # the consumer frame being watched


_local = _TaskLocal()
_claim_lock = threading.Lock()     # Outcome: first succeed/fail wins (short sections)
_monotonic = time.monotonic


def _held() -> list[_Hold]:
    held = _local.held
    if held is None:
        held = _local.held = []
    return held


def _release_held() -> None:
    """This thread is about to block in the library (or its task ended): release its holds."""
    held = _local.held
    if held:
        for hold in held:
            hold.release()
        held.clear()
    if _local.watch is not None:
        _unwatch()


# --------------------------------------------------------------------------- the watch
#
# A consumer that took a fresh dialog from result() keeps its events held only while its thread
# runs Python code that calls nothing outside the library.  A profile function (sys.setprofile,
# this thread only) is installed when result() hands the value over, and releases the hold at the
# first of: a call to a built-in or extension function made outside the library (time.sleep, a
# lock or Event wait, socket I/O, print, len, ...: whatever the consumer's own code or the
# standard library's Python code calls), the return of the frame that called result(), or a wait
# on a library Future (see GatedFuture.result).  Python calls are followed, so passing the dialog
# to a function of one's own that attaches the listeners keeps the hold; the library's own calls
# are ignored.  The profile function removes itself then.

def _running_loop() -> Any:
    """The asyncio event loop running on this thread, if any (without importing asyncio)."""
    asyncio = sys.modules.get("asyncio")
    return asyncio.events._get_running_loop() if asyncio is not None else None


def _is_library(code: Any) -> bool:
    return code.co_filename.startswith(_LIBRARY_DIRS)


def _consumer_frame() -> Any:
    """The innermost frame on this thread that is not library code (who called result())."""
    frame: Any = sys._getframe(1)
    while frame is not None and _is_library(frame.f_code):
        frame = frame.f_back
    return frame


def _watch_event(frame: Any, event: str, _arg: Any) -> None:
    """The profile function: release this thread's holds when its consumer leaves the library."""
    if event == "c_call":
        if _is_library(frame.f_code):
            return                  # the library's own work (locks, dict methods, ...)
    elif event == "return":
        if frame is not _local.watch:
            return
    else:
        return                      # Python calls are followed; c_return / c_exception
    _release_held()


def _watch() -> bool:
    """Start watching this thread's consumer (see above); False if it cannot be watched: another
    profiler is installed, or no code outside the library took the value."""
    current = sys.getprofile()
    if current is not None and current is not _watch_event:
        return False
    frame = _consumer_frame()
    if frame is None:
        return False
    _local.watch = frame
    if current is None:
        sys.setprofile(_watch_event)
    return True


def _unwatch() -> None:
    _local.watch = None
    if sys.getprofile() is _watch_event:
        sys.setprofile(None)


def run_task(fn: Callable[..., Any], *args: Any) -> None:
    """Run user code as one dispatched task; when it returns, release the holds it took."""
    local = _local
    outer = local.in_task
    local.in_task = True
    try:
        fn(*args)
    except Exception:
        logger.exception("user code %r raised", fn)
    finally:
        local.in_task = outer
        if not outer:
            _release_held()


class _Hold:
    """Keeps a key held (:meth:`Dispatcher.hold`) until the consumer of a Future's result has
    attached its listeners, or a window (see the module docstring) has passed.

    Everything here is short and non-blocking; :meth:`release` may run on any thread.
    """

    __slots__ = ("_lock", "agent", "fut", "handle", "in_task", "released", "retrieved_at", "timer")

    def __init__(self, agent: Runtime, fut: GatedFuture) -> None:
        self.agent = agent
        self.fut: GatedFuture | None = fut
        self.handle: HoldHandle | None = None
        self.timer: TimerHandle | None = None
        self.retrieved_at: float | None = None
        self.in_task = False
        self.released = False
        self._lock = threading.Lock()

    def taken(self) -> None:
        """Called on the consumer's thread right after ``result()`` returned the value."""
        self.in_task = _local.in_task
        now = self.retrieved_at = _monotonic()
        held = _held()
        if len(held) >= 8:      # a consumer that never waits again: drop the spent ones
            held[:] = [h for h in held if not h.released]
        held.append(self)
        loop = _running_loop()
        if loop is not None:
            # an event loop took it (``await``: asyncio copies the result in a loop callback, then
            # wakes the awaiting task in the next iteration): release in the iteration after
            # that, when the task has run up to its next ``await``
            loop.call_soon(loop.call_soon, self.release)
            return
        if _watch():
            return                  # released when the consumer leaves the library
        if not self.in_task:
            # a consumer outside the workers gets a shorter window than the limit running now
            with self._lock:
                timer = self.timer
                if timer is not None and not self.released and timer.when > now + _OUTSIDE_WINDOW:
                    timer.cancel()
                    self.timer = self.agent.timers.call_later(_OUTSIDE_WINDOW, self._on_timer)

    def _window(self) -> float:
        return _HOLD_MAX if self.in_task else _OUTSIDE_WINDOW

    def start(self, handle: HoldHandle, *, callbacks_first: bool = True) -> None:
        """Attach the dispatcher hold (after the result was set) and start its time limit.

        ``callbacks_first``: done-callbacks run on the held key ahead of the hold, so having
        some means no wait; otherwise they release the hold themselves within ``_HOLD_MAX``."""
        fut = self.fut
        with self._lock:
            if not self.released:
                self.handle = handle
                if self.retrieved_at is not None:
                    delay = self.retrieved_at + self._window() - _monotonic()
                elif fut is not None and fut.waiters > 0:
                    delay = _HOLD_MAX
                elif fut is not None and fut.has_done_callbacks:
                    # the done-callbacks are the consumer
                    delay = 0.0 if callbacks_first else _HOLD_MAX
                else:
                    delay = _UNCLAIMED_WINDOW
                if delay > 0:
                    self.timer = self.agent.timers.call_later(delay, self._on_timer)
                    if not self.timer.cancelled:
                        return
        self.release()
        handle.release()

    def _on_timer(self) -> None:
        """Timer thread: release, unless the consumer took the value late and is in its window."""
        with self._lock:
            if self.released:
                return
            self.timer = None
            if self.retrieved_at is not None:
                remaining = self.retrieved_at + self._window() - _monotonic()
                if remaining > 0.001:
                    self.timer = self.agent.timers.call_later(remaining, self._on_timer)
                    if not self.timer.cancelled:
                        return
        logger.debug("hold on %r released by its time limit", self.handle)
        self.release()

    def release(self) -> None:
        """Let the held key run (idempotent, any thread)."""
        with self._lock:
            if self.released:
                return
            self.released = True
            handle, timer = self.handle, self.timer
            self.handle = self.timer = self.fut = None
        if timer is not None:
            timer.cancel()
        if handle is not None:
            handle.release()


class GatedFuture(DrachtioFuture):
    """A DrachtioFuture that knows who took its result (for the rule-5 hold)."""

    def __init__(self, dispatcher: Dispatcher | None = None, key: Hashable | None = None) -> None:
        super().__init__(dispatcher, key)
        self.gate: _Hold | None = None
        """The hold released when the first consumer takes the result (None: none or already taken)."""
        self.waiters = 0
        """How many threads are blocked in :meth:`result` right now."""
        self.has_done_callbacks = False
        """Whether a user done-callback was added (not asyncio's own forwarding)."""

    def add_done_callback(self, fn: Callable[[Any], object]) -> None:
        # asyncio.wrap_future's plumbing only forwards the result to an event loop: the consumer
        # is the task awaiting there, which takes it with result() (see _Hold.taken)
        """Add a done callback, noting whether it is a user callback rather than asyncio plumbing."""
        if getattr(fn, "__module__", None) != "asyncio.futures":
            self.has_done_callbacks = True
        super().add_done_callback(fn)

    def result(self, timeout: float | None = None) -> Any:
        """Wait for and return the result; the first consumer to take it releases the hold."""
        _release_held()
        with self._condition:       # (the Future's own lock counts the waiters)
            self.waiters += 1
        try:
            value = super().result(timeout)
        finally:
            with self._condition:
                self.waiters -= 1
        gate = self.gate
        if gate is not None:
            self.gate = None        # only the first consumer holds the key
            gate.taken()
        return value

    def exception(self, timeout: float | None = None) -> BaseException | None:
        """Wait for and return the exception (None when it succeeded), releasing any held key first."""
        _release_held()
        return super().exception(timeout)

    def _awaited(self) -> None:
        _release_held()     # an awaiting coroutine reached its next await: its listeners are on


class Outcome:
    """How a public async method reports back: through :class:`Completion` either way.

    The dispatch key of a callback is often only known at the end (a dialog id the server
    assigns), so the callback's Completion is made then; the Future exists from the start.
    """

    def __init__(self, agent: Runtime, callback: Callable[..., Any] | None) -> None:
        if callback is not None and not callable(callback):
            raise TypeError(f"callback must be callable, got {type(callback).__name__}")
        self._agent = agent
        self._callback = adapt(callback, agent)
        self._done = False
        self._completion: Completion | None = None
        if callback is None:
            self._completion = Completion(agent.dispatcher, None)
            self._completion.future = GatedFuture(agent.dispatcher)

    @property
    def future(self) -> GatedFuture | None:
        """The Future the caller gets when no callback was given, else None."""
        return self._completion.future if self._completion is not None else None  # type: ignore[return-value]

    @property
    def done(self) -> bool:
        """True once the outcome has been delivered (success or failure)."""
        return self._done

    @property
    def abandoned(self) -> bool:
        """The user cancelled the Future: nobody wants the result any more."""
        fut = self.future
        return fut is not None and fut.cancelled()

    def returned(self, value_with_callback: Any = None) -> Any:
        """What the public method returns: the Future, or ``value_with_callback`` given a callback."""
        return self.future if self._completion is not None else value_with_callback

    def _claim(self) -> bool:
        with _claim_lock:
            if self._done:
                return False
            self._done = True
            return True

    def succeed(self, *results: Any, key: Hashable | None = None, gate: bool = False) -> None:
        """Report success; a callback runs on ``key``.  With ``gate`` (rule 5) a Future's consumer
        gets ``key`` held until it has attached its listeners (see the module docstring)."""
        if not self._claim():
            return
        if self._callback is not None:
            self._agent.dispatcher.submit(key, run_task, self._callback, None, *results)
            return
        assert self._completion is not None
        fut = self.future
        assert fut is not None
        if gate and key is not None:
            hold = _Hold(self._agent, fut)
            fut.gate = hold
            fut._key = key          # done-callbacks run on the key, right behind the hold
            # the key is held before the value is visible: a consumer woken at once already
            # finds it held (with no waiter, done-callbacks make start() release it at once)
            handle = self._agent.dispatcher.hold(key)
            self._completion.succeed(*results)
            if fut.cancelled():
                hold.release()
                handle.release()
                return
            hold.start(handle)
        else:
            self._completion.succeed(*results)

    def succeed_here(self, *results: Any, key: Hashable) -> None:
        """Report success from inside the task now running on ``key`` (rule 5 for results made
        on a dialog's own key, e.g. the B2BUA's): a callback runs inline, in this task; a Future
        resolves and ``key`` is held from the end of this task until the consumer has attached
        its listeners, so events already queued on ``key`` wait for it too.  Never blocks."""
        if not self._claim():
            return
        if self._callback is not None:
            try:
                self._callback(None, *results)
            except Exception:
                logger.exception("user code %r raised", self._callback)
            return
        assert self._completion is not None
        fut = self.future
        assert fut is not None
        hold = _Hold(self._agent, fut)
        fut.gate = hold
        handle = self._agent.dispatcher.hold(key, first=True)
        callbacks = fut.has_done_callbacks
        if callbacks:
            fut._key = ("done", id(fut))    # serial, and off the held key
        self._completion.succeed(*results)
        if fut.cancelled():
            hold.release()
            handle.release()
            return
        if callbacks:
            fut.add_done_callback(lambda _f: hold.release())    # after the user's callbacks
        hold.start(handle, callbacks_first=False)

    def fail(self, err: BaseException, key: Hashable | None = None) -> None:
        """Report ``err`` to the callback or Future (once only), serial on ``key``."""
        if not self._claim():
            return
        if self._callback is not None:
            self._agent.dispatcher.submit(key, run_task, self._callback, err)
            return
        assert self._completion is not None
        self._completion.fail(err)
