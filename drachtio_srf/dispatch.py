"""The client's threading contract in one place.

* :class:`Dispatcher` - a worker pool that runs all user code (handlers, callbacks, listeners),
  serially per key (a dialog id, a transaction id) and in parallel across keys. It grows on demand
  because user code may block, and idle workers exit after a few seconds. A key can be *held*
  (:meth:`Dispatcher.hold`): its later tasks wait, without occupying a worker, until released.
* :class:`Timers` - one thread running short, library-only delayed calls (timeouts, pings).
* :class:`DrachtioFuture` - a ``concurrent.futures.Future`` whose done-callbacks run on the
  dispatcher, never on the reader or timer thread that resolved it.
* :class:`Completion` - the single bridge every async method uses to report its outcome either
  as ``callback(err, *results)`` on the pool or through a :class:`DrachtioFuture`.

Futures are resolved directly on the resolving thread (reader or timer), so a worker blocked in
``future.result()`` never waits on itself.
"""
from __future__ import annotations

import concurrent.futures
import heapq
import itertools
import logging
import threading
import time
from collections import deque
from collections.abc import Callable, Hashable
from typing import Any, Generic, TypeVar

logger = logging.getLogger(__name__)

__all__ = ["Completion", "Dispatcher", "DrachtioFuture", "HoldHandle", "TimerHandle", "Timers"]

# A ready item: (key, fn, args, kwargs). _STOP tells a worker to exit.
_Item = tuple[Any, Callable[..., Any], tuple[Any, ...], dict[str, Any]]
_STOP: Any = None

_T = TypeVar("_T")


class Dispatcher:
    """Worker pool with per-key serial queues. Grows on demand (handlers may block), idle workers exit.

    Bookkeeping (all under one lock, one acquisition per submit and per finished task):

    * ``_keys`` maps a key that has a task queued or running to a deque of its *later* tasks;
      a key is absent when nothing for it is in flight. When a keyed task finishes, the next one
      for that key (if any) is made ready (see below), which keeps per-key order and fairness.
    * a :class:`HoldHandle` sits in a key's deque like a task.  When it reaches the head while
      unreleased the key is *parked*: it stays in ``_keys``, nothing for it is ready or running,
      and no worker waits for it; :meth:`HoldHandle.release` dispatches what follows.
      A released hold is skipped when it reaches the head.
    * a ready item goes to the most recently idle worker (``_idle``, a stack: its own wake-up
      lock), else to a new worker, else - at ``max_workers`` - to ``_backlog``, which every
      finishing worker drains before it idles. So work never waits while the pool could run
      it, and the same few workers stay busy and warm while the others time out and exit
      (a shared queue would wake the idle workers in turn and keep all of them alive).
    """

    def __init__(self, max_workers: int = 64, name: str = "drachtio-worker",
                 idle_timeout: float = 5.0) -> None:
        if max_workers < 1:
            raise ValueError("max_workers must be at least 1")
        self.max_workers = max_workers
        self.name = name
        self.idle_timeout = idle_timeout
        self._lock = threading.Lock()
        self._drained = threading.Condition(self._lock)
        self._keys: dict[Hashable, deque[Any]] = {}     # (tasks and HoldHandles)
        self._holds: set[HoldHandle] = set()            # not yet released
        self._workers: set[threading.Thread] = set()
        self._idle: list[_Worker] = []      # waiting workers, the most recently idle last
        self._backlog: deque[_Item] = deque()   # ready items waiting for a worker (at max_workers)
        self._outstanding = 0     # tasks submitted and not yet finished
        self._counter = itertools.count(1)
        self._closing = False     # shutdown called: accept work until drained
        self._closed = False      # drained and workers told to stop: new work is dropped
        self._local = threading.local()     # .key: the key of the task this worker runs

    # -- public API ---------------------------------------------------------------------------

    def submit(self, key: Hashable | None, fn: Callable[..., Any], *args: Any, **kwargs: Any) -> None:
        """Run ``fn(*args, **kwargs)`` on a worker; serially per ``key`` in submission order.

        ``key`` None means no ordering. Exceptions raised by ``fn`` are logged, never lost.
        After :meth:`shutdown` has finished draining, new work is dropped with a warning.
        """
        if not self._submit(key, fn, args, kwargs):
            logger.warning("dispatcher %s is shut down; dropping %r (key %r)", self.name, fn, key)

    def hold(self, key: Hashable, *, first: bool = False) -> HoldHandle:
        """Hold ``key``: its tasks queue but do not start until the handle is released.

        By default the hold takes its place in the key's queue like a task: tasks submitted before
        this call (queued or running) still run, the ones submitted after it wait.  With ``first``
        nothing queued for the key starts any more (a task already running finishes): what the
        task running on ``key`` uses to keep its successors waiting after it returns.
        A held key occupies no worker.  :meth:`HoldHandle.release` is idempotent and may be called
        from any thread; :meth:`shutdown` releases every hold.
        """
        if key is None:
            raise ValueError("hold needs a key")
        handle = HoldHandle(self, key)
        with self._lock:
            if self._closing:
                handle._released = True     # winding down: run what was submitted
                return handle
            backlog = self._keys.get(key)
            if backlog is None:
                self._keys[key] = deque((handle,))
                handle._parked = True
            elif first:
                head = backlog[0] if backlog else None
                if isinstance(head, HoldHandle) and head._parked:
                    backlog.insert(1, handle)
                else:
                    backlog.appendleft(handle)
            else:
                backlog.append(handle)
            self._holds.add(handle)
        return handle

    def current_key(self) -> Hashable | None:
        """The key of the task running on the calling thread (None off the pool, or unkeyed):
        what to queue work on so that it runs after the current task, in order."""
        return getattr(self._local, "key", None)

    def held(self, key: Hashable) -> bool:
        """True while ``key`` is parked on an unreleased hold (a snapshot)."""
        backlog = self._keys.get(key)
        if not backlog:
            return False
        head = backlog[0]
        return isinstance(head, HoldHandle) and head._parked

    @property
    def closed(self) -> bool:
        """True once shutdown has drained the pool; submissions are then dropped."""
        return self._closed

    def idle(self, key: Hashable) -> bool:
        """True when no task for ``key`` is queued or running (a snapshot: the caller must be
        the only one who could submit for ``key`` for it to stay true)."""
        return key not in self._keys

    def shutdown(self, wait: bool = True, timeout: float = 5.0) -> None:
        """Run what was already submitted, then stop every worker.

        With ``wait``, block until the workers have exited or ``timeout`` seconds have passed.
        Called from one of this pool's own workers it cannot wait for itself, so it returns
        at once and the pool winds down when the calling task returns.
        """
        deadline = time.monotonic() + timeout
        current = threading.current_thread()
        with self._lock:
            self._closing = True
            for handle in list(self._holds):
                self._release_locked(handle)
            if self._outstanding == 0:
                self._close_locked()
            if not wait or current in self._workers:
                return
            while not self._closed:
                remaining = deadline - time.monotonic()
                if remaining <= 0:
                    break
                self._drained.wait(remaining)
            workers = list(self._workers)
        for t in workers:
            t.join(max(0.0, deadline - time.monotonic()))
        alive = [t.name for t in workers if t.is_alive()]
        if alive:
            logger.warning("dispatcher %s: workers still busy after %.1fs: %s", self.name, timeout, alive)

    # -- internals ------------------------------------------------------------------------------

    def _submit(self, key: Hashable | None, fn: Callable[..., Any], args: tuple[Any, ...],
                kwargs: dict[str, Any]) -> bool:
        """Queue one task; False (nothing queued) when the pool is closed."""
        item: _Item = (key, fn, args, kwargs)
        with self._lock:
            if self._closed:
                return False
            self._outstanding += 1
            if key is not None:
                backlog = self._keys.get(key)
                if backlog is not None:
                    backlog.append(item)
                    return True
                self._keys[key] = deque()
            self._dispatch_locked(item)
        return True

    def _release_locked(self, handle: HoldHandle) -> None:
        """Release ``handle``; if its key was parked on it, dispatch what follows (lock held)."""
        if handle._released:
            return
        handle._released = True
        self._holds.discard(handle)
        if not handle._parked:
            return      # still behind other work: skipped when it reaches the head
        handle._parked = False
        key = handle.key
        backlog = self._keys[key]
        backlog.popleft()       # (a parked hold is its key's head)
        nxt = self._next_locked(key, backlog)
        if nxt is not None:
            self._dispatch_locked(nxt)

    def _next_locked(self, key: Hashable, backlog: deque[Any]) -> _Item | None:
        """Pop ``key``'s next task (lock held). None when the key is done (then it is dropped
        from ``_keys``) or parked on an unreleased hold."""
        while backlog:
            head = backlog[0]
            if type(head) is HoldHandle:
                if head._released:
                    backlog.popleft()
                    continue
                head._parked = True
                return None
            return backlog.popleft()
        del self._keys[key]
        return None

    def _dispatch_locked(self, item: _Item) -> None:
        """Hand a ready item to a worker, or to the backlog at ``max_workers`` (lock held)."""
        if self._idle:
            worker = self._idle.pop()
            worker.item = item
            worker.wake.release()
        elif len(self._workers) < self.max_workers:
            worker = _Worker(item)
            t = threading.Thread(target=self._work, args=(worker,),
                                 name=f"{self.name}-{next(self._counter)}", daemon=True)
            self._workers.add(t)
            t.start()
        else:
            self._backlog.append(item)

    def _close_locked(self) -> None:
        """Drained while closing: stop every idle worker; busy ones stop when they finish."""
        self._closed = True
        for worker in self._idle:
            worker.item = _STOP
            worker.wake.release()
        self._idle.clear()
        self._drained.notify_all()

    def _work(self, worker: _Worker) -> None:
        """Worker loop: run the item handed over, then the next one, idle when there is none.

        When a keyed task finishes and the key has more, this worker runs the next one itself
        (no hand-off, no other thread woken) unless items wait in the backlog: then it goes
        behind them, for fairness.  An idle worker that gets nothing for ``idle_timeout``
        seconds exits.
        """
        lock = self._lock
        local = self._local
        me = threading.current_thread()
        item: _Item | None = worker.item
        worker.item = None
        while True:
            if item is None:
                # idle: wait for an item on our own wake-up lock
                if not worker.wake.acquire(timeout=self.idle_timeout):
                    with lock:
                        if worker in self._idle:    # nobody picked us meanwhile: leave
                            self._idle.remove(worker)
                            self._workers.discard(me)
                            return
                    worker.wake.acquire()           # picked just now: the item is on its way
                item = worker.item
                worker.item = None
                if item is None:  # _STOP
                    with lock:
                        self._workers.discard(me)
                    return
            key, fn, args, kwargs = item
            local.key = key
            try:
                fn(*args, **kwargs)
            except BaseException:  # a task must never take its worker down
                logger.exception("task %r (key %r) raised", fn, key)
            local.key = None
            del fn, args, kwargs
            item = None
            with lock:
                self._outstanding -= 1
                if key is not None:
                    nxt = self._next_locked(key, self._keys[key])
                    if nxt is not None:
                        self._backlog.append(nxt)
                backlog = self._backlog
                if backlog:
                    item = backlog.popleft()
                    continue
                if self._closing and not self._closed and self._outstanding == 0:
                    self._close_locked()
                if self._closed:
                    self._workers.discard(me)
                    return
                self._idle.append(worker)


class _Worker:
    """A worker's hand-over slot: the dispatcher sets ``item`` and releases ``wake``."""

    __slots__ = ("item", "wake")

    def __init__(self, item: _Item | None) -> None:
        self.item: _Item | None = item
        self.wake = threading.Lock()
        self.wake.acquire()      # held until an item is handed over


class HoldHandle:
    """A hold on one dispatcher key (see :meth:`Dispatcher.hold`); :meth:`release` lets it run."""

    __slots__ = ("_dispatcher", "_parked", "_released", "key")

    def __init__(self, dispatcher: Dispatcher, key: Hashable) -> None:
        self._dispatcher = dispatcher
        self.key = key
        self._released = False
        self._parked = False      # at the head of its key's queue: the key waits for us

    @property
    def released(self) -> bool:
        return self._released

    def release(self) -> None:
        """Let the key's queued tasks run again. Idempotent; any thread (a timer callback too)."""
        if self._released:
            return
        d = self._dispatcher
        with d._lock:
            d._release_locked(self)

    def __repr__(self) -> str:
        state = "released" if self._released else "parked" if self._parked else "queued"
        return f"<HoldHandle {self.key!r} {state}>"


class TimerHandle:
    """A scheduled call; :meth:`cancel` prevents it from running if it has not started."""

    __slots__ = ("args", "cancelled", "fn", "when")

    def __init__(self, when: float, fn: Callable[..., Any], args: tuple[Any, ...]) -> None:
        self.when = when
        self.fn = fn
        self.args = args
        self.cancelled = False

    def cancel(self) -> None:
        """Cancel the call (no effect once it ran)."""
        self.cancelled = True
        self.fn = _noop
        self.args = ()


def _noop(*_args: Any) -> None:
    return None


class Timers:
    """One thread running delayed calls (timeouts, ping, reconnect). Never runs user code itself.

    Callbacks run on the timer thread and must be short: complete a Completion, queue a send,
    submit to the dispatcher. The thread starts with the first :meth:`call_later`.
    """

    def __init__(self, name: str = "drachtio-timers") -> None:
        self.name = name
        self._heap: list[tuple[float, int, TimerHandle]] = []
        self._seq = itertools.count()
        self._cond = threading.Condition(threading.Lock())
        self._thread: threading.Thread | None = None
        self._closed = False

    def call_later(self, delay: float, fn: Callable[..., Any], *args: Any) -> TimerHandle:
        """Run ``fn(*args)`` on the timer thread after ``delay`` seconds; returns a cancellable handle.

        After :meth:`shutdown` the call is dropped (the returned handle is already cancelled).
        """
        handle = TimerHandle(time.monotonic() + max(0.0, delay), fn, args)
        with self._cond:
            if self._closed:
                logger.warning("timers %s are shut down; dropping %r", self.name, fn)
                handle.cancel()
                return handle
            heapq.heappush(self._heap, (handle.when, next(self._seq), handle))
            if self._thread is None:
                self._thread = threading.Thread(target=self._run, name=self.name, daemon=True)
                self._thread.start()
            elif self._heap[0][2] is handle:
                self._cond.notify()
        return handle

    @property
    def closed(self) -> bool:
        """True after :meth:`shutdown`; a Timers object is not restartable (make a new one)."""
        return self._closed

    def shutdown(self, timeout: float = 5.0) -> None:
        """Drop pending calls and stop the thread (joined unless called from a timer callback)."""
        with self._cond:
            self._closed = True
            self._heap.clear()
            self._cond.notify()
            t = self._thread
        if t is not None and t is not threading.current_thread():
            t.join(timeout)
            if t.is_alive():
                logger.warning("timer thread %s did not stop within %.1fs", self.name, timeout)

    def _run(self) -> None:
        cond = self._cond
        heap = self._heap
        while True:
            with cond:
                while True:
                    if self._closed:
                        return
                    if not heap:
                        cond.wait()
                        continue
                    when, _, handle = heap[0]
                    if handle.cancelled:
                        heapq.heappop(heap)
                        continue
                    wait = when - time.monotonic()
                    if wait <= 0:
                        heapq.heappop(heap)
                        break
                    cond.wait(wait)
            fn, args = handle.fn, handle.args
            handle.cancel()  # mark spent; drops references
            try:
                fn(*args)
            except Exception:
                logger.exception("timer callback %r raised", fn)


class DrachtioFuture(concurrent.futures.Future[_T], Generic[_T]):
    """A ``concurrent.futures.Future`` of a ``_T`` whose ``add_done_callback`` callbacks run on
    the dispatcher.

    The library resolves futures on its reader/timer threads so that a worker blocked in
    ``result()`` is never needed to resolve it; user callbacks still never run on those threads.
    Generic for type checkers: ``srf.create_uas(...)`` is a ``DrachtioFuture[Dialog]``.
    ``asyncio`` users can ``await asyncio.wrap_future(fut)``.
    """

    def __init__(self, dispatcher: Dispatcher | None = None, key: Hashable | None = None) -> None:
        super().__init__()
        self._dispatcher = dispatcher
        self._key = key

    def add_done_callback(self, fn: Callable[[concurrent.futures.Future[_T]], object]) -> None:
        """Call ``fn(future)`` on a dispatcher worker once the future is done (even if it already is)."""
        dispatcher = self._dispatcher
        if dispatcher is None:
            super().add_done_callback(fn)
            return
        key = self._key

        def hop(fut: concurrent.futures.Future[_T]) -> None:
            if not dispatcher._submit(key, fn, (fut,), {}):
                # The pool is gone (after disconnect): running here beats never running at all.
                try:
                    fn(fut)
                except Exception:
                    logger.exception("done callback %r raised", fn)

        super().add_done_callback(hop)


_completion_lock = threading.Lock()


class Completion:
    """The single callback-or-Future bridge used by every async method.

    Given a ``callback``, outcomes are delivered as ``callback(None, *results)`` or
    ``callback(err)`` on the dispatcher (serial on ``key``). Without one, :attr:`future` is a
    :class:`DrachtioFuture`, resolved directly on the calling thread. Only the first
    ``succeed``/``fail`` counts; later calls are ignored (logged at debug).
    """

    __slots__ = ("_callback", "_dispatcher", "_done", "_key", "future")

    def __init__(self, dispatcher: Dispatcher, callback: Callable[..., Any] | None,
                 key: Hashable | None = None) -> None:
        if callback is not None and not callable(callback):
            raise TypeError(f"callback must be callable, got {type(callback).__name__}")
        self._dispatcher = dispatcher
        self._callback = callback
        self._key = key
        self.future: DrachtioFuture[Any] | None = (
            None if callback is not None else DrachtioFuture(dispatcher, key))
        self._done = False

    @property
    def done(self) -> bool:
        """True once succeed/fail ran (or the user cancelled the future)."""
        return self._done or (self.future is not None and self.future.done())

    def _claim(self, what: str) -> bool:
        with _completion_lock:
            if self._done:
                logger.debug("completion already done; ignoring %s", what)
                return False
            self._done = True
            return True

    def succeed(self, *results: Any) -> None:
        """Report success: ``callback(None, *results)``, or the future's result.

        The future gets ``results[0]`` for one result, None for none, the tuple for several.
        """
        if not self._claim("succeed"):
            return
        if self._callback is not None:
            self._dispatcher.submit(self._key, self._callback, None, *results)
            return
        assert self.future is not None
        value = results[0] if len(results) == 1 else (results or None)
        try:
            self.future.set_result(value)
        except concurrent.futures.InvalidStateError:
            logger.debug("future was cancelled before its result arrived")

    def fail(self, err: BaseException) -> None:
        """Report failure: ``callback(err)``, or the future's exception."""
        if not self._claim("fail"):
            return
        if self._callback is not None:
            self._dispatcher.submit(self._key, self._callback, err)
            return
        assert self.future is not None
        try:
            self.future.set_exception(err)
        except concurrent.futures.InvalidStateError:
            logger.debug("future was cancelled before its error arrived: %r", err)

    def returned(self, value_with_callback: Any = None) -> Any:
        """What the API method returns: the future, or ``value_with_callback`` when a callback was given."""
        return self.future if self.future is not None else value_with_callback
