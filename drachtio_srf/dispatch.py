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

import asyncio
import concurrent.futures
import heapq
import itertools
import logging
import threading
import time
from collections import deque
from collections.abc import Callable, Generator, Hashable
from typing import Any, Generic, TypeVar

from . import threadpolicy
from .usercode import adapt

logger = logging.getLogger(__name__)

__all__ = ["Completion", "Dispatcher", "DrachtioFuture", "HoldHandle", "TimerHandle", "Timers"]

# A ready item: (key, fn, args, kwargs).
_Item = tuple[Any, Callable[..., Any], tuple[Any, ...], dict[str, Any]]

_T = TypeVar("_T")


class Dispatcher:
    """Worker pool with per-key serial queues that behaves like an event loop under load.

    Handlers may block, so user code runs on a pool of workers; but a hand-off between threads
    costs context switches, so the pool wakes as few workers as it can:

    * ready items go to one shared queue (``_ready``).  A worker that finishes a task takes the
      next ready item itself and only idles when there is none: while work keeps coming, one
      running worker drains it all, as an event loop would.
    * another worker is woken only when no worker is *draining* (``_busy`` is empty: every
      worker is idle, or blocked).  A worker stops draining when its task blocks on one of the
      library's own futures (:meth:`DrachtioFuture.result` tells the pool, which wakes a
      successor at once when work is waiting).  The *watchdog*, a thread that only runs while
      work waits, wakes one more worker when no ready item was taken for ``watchdog_interval``
      seconds while the draining workers used next to no CPU (a task blocked elsewhere: sleep,
      I/O, a lock), or for ``long_task`` seconds whatever they did (a task that computes).
    * the idle workers form a stack (each waits on its own wake-up lock): the most recently idle
      one is woken first, so the same few workers stay warm and the others time out and exit.
    * ``_keys`` maps a key that has a task queued or running to a deque of its *later* tasks;
      when a keyed task finishes its successor joins the back of the ready queue (per-key order,
      fairness across keys).  A :class:`HoldHandle` sits in a key's deque like a task; at the
      head while unreleased the key is *parked* (no worker waits for it).
    * at ``max_workers`` ready items wait for a worker; the first time that happens a WARNING is
      logged (a pool too small for the number of handlers that block at once).
    """

    def __init__(self, max_workers: int = 64, name: str = "drachtio-worker",
                 idle_timeout: float = 5.0, watchdog_interval: float = 0.01,
                 long_task: float = 0.1) -> None:
        if not isinstance(max_workers, int) or max_workers < 1:
            raise ValueError(f"max_workers must be an int of at least 1, got {max_workers!r}")
        self.max_workers = max_workers
        """Most worker threads running at once."""
        self.name = name
        """Name prefix of the worker threads."""
        self.idle_timeout = idle_timeout
        """Seconds an idle worker waits for work before it exits."""
        self.watchdog_interval = watchdog_interval
        """Seconds between watchdog checks for tasks that block too long."""
        self.long_task = long_task
        """Seconds after which a running task counts as long (blocking)."""
        self._lock = threading.Lock()
        self._drained = threading.Condition(self._lock)
        self._watch = threading.Condition(self._lock)   # the watchdog waits for work on this
        self._keys: dict[Hashable, deque[Any]] = {}     # (tasks and HoldHandles)
        self._holds: set[HoldHandle] = set()            # not yet released
        self._workers: set[threading.Thread] = set()
        self._idle: list[_Worker] = []      # waiting workers, the most recently idle last
        self._ready: deque[_Item] = deque()     # items whose key is free, in order
        self._busy: set[_Worker] = set()    # draining: will take the next ready item unasked
        self._taken = 0           # ready items taken so far (the watchdog's progress counter)
        self._outstanding = 0     # tasks submitted and not yet finished
        self._counter = itertools.count(1)
        self._closing = False     # shutdown called: accept work until drained
        self._closed = False      # drained and workers told to stop: new work is dropped
        self._watchdog: threading.Thread | None = None
        self._watchdog_waiting = False
        self._warned_exhausted = False
        self._local = threading.local()     # .key: the running task's key; .worker
        self._batching = _Batching()        # .active: this thread is routing a batch
        self._batch = _Batch(self)          # (one for all threads: its state is _batching's)
        self._wake_due = False    # a batch made work ready while no worker was draining

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

    def blocking(self) -> _Blocking:
        """Context manager for a task about to block (used by the library's futures): while
        inside, this worker no longer counts as draining the ready queue, and another worker
        is woken at once if work is waiting.  A no-op off this pool's workers."""
        return _Blocking(self)

    def batch(self) -> _Batch:
        """Context manager for a reader routing the frames of one read: the worker wake-up that
        ready work calls for is made once, when the batch ends, instead of in the middle of the
        routing.  A worker woken while the reader still holds the GIL would only wait for it
        (and, woken on the reader's CPU, preempt the reader first); woken as the reader is about
        to block in ``recv``, it runs at once.  Nothing user-visible changes: no task starts
        later than the end of the routing of the frames that came with it."""
        return self._batch

    def _end_batch(self) -> None:
        """The batch is routed: wake one worker if its work is waiting for one."""
        if self._wake_due:
            with self._lock:
                self._wake_due = False
                if self._ready and not self._busy:
                    self._wake_locked()

    def shutdown(self, wait: bool = True, timeout: float = 5.0) -> bool:
        """Run what was already submitted, then stop every worker.

        With ``wait``, block until the workers have exited or ``timeout`` seconds have passed;
        returns True when every worker has exited.  A worker still running a task then (a
        handler that blocks) runs what is queued behind it and exits when its task returns.
        Called from one of this pool's own workers it cannot wait for itself, so it returns
        at once (False) and the pool winds down when the calling task returns.
        """
        deadline = time.monotonic() + timeout
        current = threading.current_thread()
        with self._lock:
            self._closing = True
            for handle in list(self._holds):
                self._release_locked(handle)
            if self._outstanding == 0:
                self._close_locked()
            else:
                self._stop_idle_locked()    # the busy ones drain what is left, then exit
            if current in self._workers:
                return False
            if not wait:
                return not self._workers
            while not self._closed:
                remaining = deadline - time.monotonic()
                if remaining <= 0:
                    break
                self._drained.wait(remaining)
            workers = list(self._workers)
            watchdog = self._watchdog
        if watchdog is not None and self._closed:
            watchdog.join(max(0.0, deadline - time.monotonic()))
        for t in workers:
            t.join(max(0.0, deadline - time.monotonic()))
        alive = [t.name for t in workers if t.is_alive()]
        if alive:
            logger.warning("dispatcher %s: workers still busy after %.1fs (each exits when its "
                           "task returns): %s", self.name, timeout, alive)
        return not alive

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
            self._ready_locked(item)
        return True

    def _ready_locked(self, item: _Item) -> None:
        """Make ``item`` ready: a draining worker takes it, else wake one (lock held)."""
        self._ready.append(item)
        if not self._busy:
            if self._batching.active:
                self._wake_due = True   # the batch's end wakes one (see batch())
                return
            self._wake_locked()
        elif self._watchdog_waiting:
            self._watch.notify()
        elif self._watchdog is None:
            self._start_watchdog_locked()

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
            self._ready_locked(nxt)

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

    def _wake_locked(self) -> bool:
        """Put one more worker on the ready queue: the most recently idle, else a new one
        (lock held).  False at ``max_workers`` (warned once)."""
        if self._idle:
            worker = self._idle.pop()
            self._busy.add(worker)
            worker.wake.release()
            return True
        if len(self._workers) < self.max_workers:
            worker = _Worker()
            t = threading.Thread(target=self._work, args=(worker,),
                                 name=f"{self.name}-{next(self._counter)}", daemon=True)
            self._workers.add(t)
            self._busy.add(worker)
            t.start()
            return True
        if not self._warned_exhausted:
            self._warned_exhausted = True
            logger.warning("dispatcher %s: all %d workers are busy and work is waiting for one "
                           "(handlers that block hold a worker each; raise max_workers if this "
                           "is expected)", self.name, self.max_workers)
        return False

    def _start_watchdog_locked(self) -> None:
        if self._closed:
            return
        t = threading.Thread(target=self._watchdog_run, name=f"{self.name}-watchdog", daemon=True)
        self._watchdog = t
        t.start()

    def _watchdog_run(self) -> None:
        """While items are ready, check every ``watchdog_interval`` that one was taken.  After
        an interval without, watch the draining workers for one more: if they neither ran nor
        waited for a CPU meanwhile, their tasks are blocked (sleep, I/O, a lock): wake one more
        worker.  A task that computes (holds the GIL) is left alone until it has run for
        ``long_task`` seconds: another worker could only share the GIL with it.  Sleeps (no
        wake-ups at all) while nothing is ready."""
        threadpolicy.apply()
        interval = self.watchdog_interval
        patience = max(2, round(self.long_task / interval))
        ready = self._ready
        busy = self._busy
        linger = 0          # idle checks to poll on: only when notifications come often
        monotonic = time.monotonic
        with self._lock:
            stalled = 0
            base: dict[_Worker, float] | None = None
            quiet = 0       # checks in a row that found nothing ready
            while not self._closed:
                if not ready:
                    stalled = 0
                    base = None
                    quiet += 1
                    if quiet <= linger:
                        # work comes often: poll on, cheaper than a notify per burst
                        self._watch.wait(interval)
                        continue
                    self._watchdog_waiting = True
                    slept = monotonic()
                    self._watch.wait()
                    self._watchdog_waiting = False
                    linger = _WATCHDOG_LINGER if monotonic() - slept < _WATCHDOG_LINGER * interval else 0
                    continue
                quiet = 0
                taken = self._taken
                self._watch.wait(interval)
                if self._closed or not ready or self._taken != taken:
                    stalled = 0
                    base = None
                    continue
                stalled += 1
                now = {w: _cpu_demand(w) for w in busy}
                if base is None:        # first stalled interval: measure over the next one
                    base = now
                    continue
                used = max((t - base[w] for w, t in now.items() if w in base), default=0.0)
                base = now
                if used < interval / 5 or stalled >= patience:
                    stalled = 0
                    base = None
                    self._wake_locked()

    def _block_begin(self) -> bool:
        """The calling worker's task is about to block: stop counting it as draining and wake
        a successor if work waits.  False off this pool (then :meth:`_block_end` is not due)."""
        worker = getattr(self._local, "worker", None)
        if worker is None:
            return False
        with self._lock:
            if worker not in self._busy:
                return False
            self._busy.discard(worker)
            if self._ready and not self._busy:
                self._wake_locked()
        return True

    def _block_end(self) -> None:
        worker = self._local.worker
        with self._lock:
            self._busy.add(worker)

    def _close_locked(self) -> None:
        """Drained while closing: stop every idle worker; busy ones stop when they finish."""
        self._closed = True
        self._stop_idle_locked()
        self._drained.notify_all()
        self._watch.notify_all()

    def _stop_idle_locked(self) -> None:
        for worker in self._idle:
            worker.stop = True
            worker.wake.release()
        self._idle.clear()

    def _work(self, worker: _Worker) -> None:
        """Worker loop: take ready items until there is none, then idle.

        The worker is in ``_busy`` from the moment it is woken until it finds the ready
        queue empty (or while its task blocks on a library future).  Finishing a task and taking
        the next one is one lock acquisition.  An idle worker that gets nothing for
        ``idle_timeout`` seconds exits.
        """
        lock = self._lock
        ready = self._ready
        keys = self._keys
        local = self._local
        local.worker = worker
        worker.tid = threading.get_native_id()
        threadpolicy.apply()
        busy = self._busy
        me = threading.current_thread()
        key: Hashable | None = None
        finished = False
        while True:
            with lock:
                if finished:
                    finished = False
                    self._outstanding -= 1
                    if key is not None:
                        nxt = self._next_locked(key, keys[key])
                        if nxt is not None:
                            ready.append(nxt)
                if ready:
                    key, fn, args, kwargs = ready.popleft()
                    self._taken += 1
                else:
                    if self._closing and not self._closed and self._outstanding == 0:
                        self._close_locked()
                    busy.discard(worker)
                    if self._closing:       # (a later ready item wakes a new worker)
                        self._workers.discard(me)
                        return
                    self._idle.append(worker)
                    fn = None
            if fn is None:
                # idle: wait on our own wake-up lock; the waker puts us in _busy
                if not worker.wake.acquire(timeout=self.idle_timeout):
                    with lock:
                        if worker in self._idle:    # nobody picked us meanwhile: leave
                            self._idle.remove(worker)
                            self._workers.discard(me)
                            return
                    worker.wake.acquire()           # picked just now: the wake-up is on its way
                if worker.stop:
                    with lock:
                        self._workers.discard(me)
                    return
                continue
            local.key = key
            try:
                fn(*args, **kwargs)
            except BaseException:  # a task must never take its worker down
                logger.exception("task %r (key %r) raised", fn, key)
            local.key = None
            fn = None
            args = kwargs = None  # type: ignore[assignment]  # drop references while idle
            finished = True


#: idle checks the watchdog keeps polling after it last saw work, before it sleeps until notified
_WATCHDOG_LINGER = 10


def _cpu_demand(worker: _Worker) -> float:
    """Seconds the worker's thread has run on a CPU or waited in the run queue for one: it
    grows while the thread computes, even on a CPU shared with others, and stays put while
    the thread sleeps (blocked, or waiting for the GIL).  0.0 where Linux' schedstat is
    missing: the watchdog then takes every stall for a blocked task."""
    try:
        with open(f"/proc/self/task/{worker.tid}/schedstat", "rb") as f:
            run, wait, _ = f.read().split()
        return (int(run) + int(wait)) / 1e9
    except (OSError, ValueError):
        return 0.0


class _Batching(threading.local):
    """Per thread: whether it is routing a batch (:meth:`Dispatcher.batch`), and how deep."""

    active = False
    depth = 0


class _Batch:
    """What :meth:`Dispatcher.batch` returns: re-entrant, only the outermost batch wakes; one
    object serves every thread (the state is per thread, in ``Dispatcher._batching``)."""

    __slots__ = ("_dispatcher",)

    def __init__(self, dispatcher: Dispatcher) -> None:
        self._dispatcher = dispatcher

    def __enter__(self) -> None:
        state = self._dispatcher._batching
        state.depth += 1
        state.active = True

    def __exit__(self, *exc: object) -> None:
        d = self._dispatcher
        state = d._batching
        state.depth -= 1
        if not state.depth:
            state.active = False
            d._end_batch()


class _Blocking:
    """What :meth:`Dispatcher.blocking` returns: hands the draining role on while inside."""

    __slots__ = ("_active", "_dispatcher")

    def __init__(self, dispatcher: Dispatcher) -> None:
        self._dispatcher = dispatcher
        self._active = False

    def __enter__(self) -> None:
        self._active = self._dispatcher._block_begin()

    def __exit__(self, *exc: object) -> None:
        if self._active:
            self._active = False
            self._dispatcher._block_end()


class _Worker:
    """A worker's wake-up lock (released to wake it) and its stop flag."""

    __slots__ = ("stop", "tid", "wake")

    def __init__(self) -> None:
        self.tid = 0        # native thread id (for the watchdog)
        self.stop = False
        self.wake = threading.Lock()
        self.wake.acquire()      # held until the worker is woken


class HoldHandle:
    """A hold on one dispatcher key (see :meth:`Dispatcher.hold`); :meth:`release` lets it run."""

    __slots__ = ("_dispatcher", "_parked", "_released", "key")

    def __init__(self, dispatcher: Dispatcher, key: Hashable) -> None:
        self._dispatcher = dispatcher
        self.key = key
        """The dispatcher key this hold blocks."""
        self._released = False
        self._parked = False      # at the head of its key's queue: the key waits for us

    @property
    def released(self) -> bool:
        """True once :meth:`release` has been called."""
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
        """Monotonic time the call is due at."""
        self.fn = fn
        """The function to call (a no-op once cancelled)."""
        self.args = args
        """Positional arguments for the call."""
        self.cancelled = False
        """True once :meth:`cancel` has been called."""

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
        """Name of the timer thread."""
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
        threadpolicy.apply()
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

    # A worker that waits here hands its draining role to another worker (Dispatcher.blocking).
    def result(self, timeout: float | None = None) -> _T:
        """The result, waiting up to ``timeout`` seconds; see ``concurrent.futures.Future``."""
        dispatcher = self._dispatcher
        if dispatcher is None or self.done():
            return super().result(timeout)
        with dispatcher.blocking():
            return super().result(timeout)

    def exception(self, timeout: float | None = None) -> BaseException | None:
        """The exception (None on success), waiting up to ``timeout`` seconds."""
        dispatcher = self._dispatcher
        if dispatcher is None or self.done():
            return super().exception(timeout)
        with dispatcher.blocking():
            return super().exception(timeout)

    def __await__(self) -> Generator[Any, None, _T]:
        """``await fut`` inside a coroutine: the result (or exception) on the running loop.

        The loop is told straight from the thread that resolves the future (no dispatcher hop,
        so awaiting never waits for a busy worker); cancelling the awaiting task cancels this
        future.  ``asyncio.wrap_future(fut)`` works too.
        """
        loop = asyncio.get_running_loop()
        waiter = loop.create_future()

        def copy() -> None:        # on the loop
            if waiter.cancelled():
                return
            if self.cancelled():
                waiter.cancel()
                return
            try:
                value = self.result(0)
            except BaseException as exc:  # noqa: BLE001 - handed to the awaiting coroutine
                waiter.set_exception(exc)
                return
            waiter.set_result(value)
            loop.call_soon(self._awaited)   # runs when the awaiting coroutine next yields

        def resolved(_fut: concurrent.futures.Future[Any]) -> None:    # any thread: library code
            try:
                loop.call_soon_threadsafe(copy)
            except RuntimeError:      # the loop is closed: nobody is waiting any more
                pass

        concurrent.futures.Future.add_done_callback(self, resolved)
        try:
            return (yield from waiter)
        except asyncio.CancelledError:
            self.cancel()
            raise

    def _awaited(self) -> None:
        """Hook: the coroutine that awaited this future has run up to its next suspension."""


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
        self._callback = adapt(callback, dispatcher)
        self._key = key
        self.future: DrachtioFuture[Any] | None = (
            None if callback is not None else DrachtioFuture(dispatcher, key))
        """Future that receives the result when no callback was given, else None."""
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
