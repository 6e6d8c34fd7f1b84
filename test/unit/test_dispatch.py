"""Dispatcher, Timers, DrachtioFuture and Completion: the client's threading contract."""
from __future__ import annotations

import concurrent.futures
import logging
import queue
import threading
import time

import pytest

from drachtio_srf.dispatch import Completion, Dispatcher, DrachtioFuture, Timers

WAIT = 5.0


def _module_threads(prefix: str) -> list[threading.Thread]:
    return [t for t in threading.enumerate() if t.name.startswith(prefix) and t.is_alive()]


@pytest.fixture
def dispatcher():
    d = Dispatcher(max_workers=8, name="test-worker")
    yield d
    d.shutdown(wait=True, timeout=WAIT)


# ---------------------------------------------------------------------------- Dispatcher

def test_serial_order_per_key_under_concurrency(dispatcher: Dispatcher) -> None:
    keys = [f"dialog-{k}" for k in range(10)]
    seen: dict[str, list[int]] = {k: [] for k in keys}
    running: dict[str, int] = {k: 0 for k in keys}
    overlaps: list[str] = []
    guard = threading.Lock()
    total = 1000
    remaining = [total]
    all_done = threading.Event()
    workers_used: set[str] = set()

    def task(key: str, n: int) -> None:
        with guard:
            running[key] += 1
            if running[key] > 1:
                overlaps.append(key)
            workers_used.add(threading.current_thread().name)
        sum(range(200 + (n % 7) * 100))   # a little real work so tasks overlap across keys
        with guard:
            seen[key].append(n)
            running[key] -= 1
            remaining[0] -= 1
            if remaining[0] == 0:
                all_done.set()

    # Submit from several threads at once, each owning some keys (so per-key order is defined).
    def submitter(my_keys: list[str]) -> None:
        for n in range(total // len(keys)):
            for key in my_keys:
                dispatcher.submit(key, task, key, n)

    threads = [threading.Thread(target=submitter, args=(keys[i::3],)) for i in range(3)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(WAIT)
    assert all_done.wait(WAIT), f"only {total - remaining[0]} of {total} tasks ran"
    assert overlaps == []
    for key in keys:
        assert seen[key] == list(range(total // len(keys))), key
    assert all(name.startswith("test-worker-") for name in workers_used)


def test_different_keys_run_in_parallel(dispatcher: Dispatcher) -> None:
    barrier = threading.Barrier(2, timeout=WAIT)
    results: queue.Queue[str] = queue.Queue()

    def meet(name: str) -> None:
        barrier.wait()        # only returns if the other key's task runs at the same time
        results.put(name)

    dispatcher.submit("dialog-a", meet, "a")
    dispatcher.submit("dialog-b", meet, "b")
    got = {results.get(timeout=WAIT), results.get(timeout=WAIT)}
    assert got == {"a", "b"}


def test_unkeyed_tasks_run_in_parallel(dispatcher: Dispatcher) -> None:
    barrier = threading.Barrier(3, timeout=WAIT)
    done: queue.Queue[int] = queue.Queue()
    for i in range(3):
        dispatcher.submit(None, lambda i=i: (barrier.wait(), done.put(i)))
    assert sorted(done.get(timeout=WAIT) for _ in range(3)) == [0, 1, 2]


def test_blocked_worker_waiting_on_future_does_not_deadlock(dispatcher: Dispatcher) -> None:
    fut = DrachtioFuture(dispatcher)
    waiting = threading.Event()
    out: queue.Queue[object] = queue.Queue()

    def handler() -> None:
        waiting.set()
        out.put(("handler", fut.result(timeout=WAIT)))   # e.g. dialog.modify(...).result()

    dispatcher.submit("dialog-1", handler)
    dispatcher.submit("dialog-1", lambda: out.put(("next", None)))
    # The "reader thread" resolves the future while the worker is blocked.
    reader = threading.Thread(target=lambda: (waiting.wait(WAIT), fut.set_result("200 OK")))
    reader.start()
    assert out.get(timeout=WAIT) == ("handler", "200 OK")
    assert out.get(timeout=WAIT) == ("next", None)
    reader.join(WAIT)


def test_pool_grows_when_handlers_block_on_each_other() -> None:
    # Task A (one key) blocks until task B (another key) runs: needs a second worker. Repeat with
    # a tiny idle timeout so workers keep exiting and being re-created between rounds.
    d = Dispatcher(max_workers=4, name="grow-worker", idle_timeout=0.001)
    try:
        for round_ in range(200):
            released = threading.Event()
            finished: queue.Queue[str] = queue.Queue()
            d.submit(f"a{round_}", lambda r=released, f=finished: f.put("a" if r.wait(WAIT) else "a-timeout"))
            d.submit(f"b{round_}", lambda r=released, f=finished: (r.set(), f.put("b")))
            assert sorted([finished.get(timeout=WAIT), finished.get(timeout=WAIT)]) == ["a", "b"]
    finally:
        d.shutdown(wait=True, timeout=WAIT)
    assert _module_threads("grow-worker") == []


def test_steady_trickle_of_work_lets_the_surplus_workers_exit() -> None:
    # A burst grows the pool to 4 workers. Then one task at a time, non-stop, for 4 idle
    # timeouts: the work goes to the most recently idle worker, so the surplus idles and exits
    # while the trickle goes on (a shared queue would hand the tasks to all four in turn and keep
    # every one of them alive).
    idle_timeout = 0.25
    d = Dispatcher(max_workers=8, name="trickle-worker", idle_timeout=idle_timeout)
    try:
        gate = threading.Barrier(5)
        for i in range(4):
            d.submit(f"burst{i}", gate.wait, WAIT)
        gate.wait(WAIT)                     # all four ran at once: four workers
        assert len(_module_threads("trickle-worker")) >= 4
        end = time.monotonic() + 4 * idle_timeout
        n = 0
        while time.monotonic() < end:
            done = threading.Event()
            d.submit(None if n % 2 else "k", done.set)
            assert done.wait(WAIT)
            n += 1
        alive = len(_module_threads("trickle-worker"))
        assert alive <= 2, f"{alive} workers still alive after {n} one-at-a-time tasks"
    finally:
        d.shutdown(wait=True, timeout=WAIT)
    assert _module_threads("trickle-worker") == []


def test_a_running_worker_drains_work_queued_meanwhile_without_waking_others() -> None:
    # While one worker runs a task, tasks submitted for other keys wait for it instead of each
    # waking (or starting) a worker of its own: under load the pool behaves like one event loop.
    # (The watchdog is slowed down so that it cannot hand the work over in this test.)
    d = Dispatcher(max_workers=8, name="drain-worker", watchdog_interval=60.0)
    ran_on: list[str] = []
    done = threading.Event()
    started = threading.Event()
    try:
        def first() -> None:
            started.set()
            while len(d._ready) < 50:        # busy (not blocked) until the burst is queued
                time.sleep(0)

        d.submit("k0", first)
        assert started.wait(WAIT)
        for i in range(50):
            d.submit(f"k{i + 1}", lambda: (ran_on.append(threading.current_thread().name),
                                           len(ran_on) == 50 and done.set()))
        assert done.wait(WAIT)
        assert len(set(ran_on)) == 1, f"{len(set(ran_on))} workers ran the burst"
        assert [t.name for t in _module_threads("drain-worker-") if "watchdog" not in t.name] \
            == [ran_on[0]]
    finally:
        d.shutdown(wait=True, timeout=WAIT)


def test_blocking_on_a_library_future_hands_the_queue_to_another_worker_at_once() -> None:
    # A task waits in DrachtioFuture.result() for something only a later task (another key) does.
    # The future tells the pool, which wakes a second worker right away: no watchdog needed.
    d = Dispatcher(max_workers=8, name="handover-worker", watchdog_interval=60.0)
    fut: DrachtioFuture = DrachtioFuture(d)
    out: queue.Queue[object] = queue.Queue()
    try:
        d.submit("a", lambda: out.put(("a", fut.result(timeout=WAIT))))
        d.submit("b", lambda: fut.set_result("from b"))
        assert out.get(timeout=WAIT) == ("a", "from b")
    finally:
        d.shutdown(wait=True, timeout=WAIT)


def test_watchdog_hands_the_queue_over_when_a_task_blocks_elsewhere() -> None:
    # The task blocks on a plain Event (not a library future): the watchdog notices that no
    # ready item was taken for its interval and wakes another worker for the other key.
    d = Dispatcher(max_workers=8, name="watchdog-worker", watchdog_interval=0.01)
    gate = threading.Event()
    out: queue.Queue[str] = queue.Queue()
    try:
        d.submit("a", lambda: out.put("a" if gate.wait(WAIT) else "a-timeout"))
        d.submit("b", lambda: (out.put("b"), gate.set()))
        assert [out.get(timeout=WAIT), out.get(timeout=WAIT)] == ["b", "a"]
    finally:
        d.shutdown(wait=True, timeout=WAIT)


def test_a_task_that_computes_for_long_does_not_stall_other_keys() -> None:
    # The task holds the GIL doing work of its own (no blocking call): after ``long_task`` the
    # watchdog lets another worker run the other key's task alongside it.
    d = Dispatcher(max_workers=8, name="long-worker", watchdog_interval=0.01, long_task=0.05)
    other_ran = threading.Event()
    out: queue.Queue[str] = queue.Queue()

    def compute() -> None:
        deadline = time.monotonic() + WAIT
        while not other_ran.is_set() and time.monotonic() < deadline:
            sum(range(1000))
        out.put("compute saw the other task" if other_ran.is_set() else "compute timed out")

    try:
        d.submit("a", compute)
        d.submit("b", other_ran.set)
        assert out.get(timeout=2 * WAIT) == "compute saw the other task"
    finally:
        d.shutdown(wait=True, timeout=WAIT)


class _Records(logging.Handler):
    """Collects records; ``arrived`` is set by the first one."""

    def __init__(self) -> None:
        super().__init__(logging.WARNING)
        self.records: list[logging.LogRecord] = []
        self.arrived = threading.Event()

    def emit(self, record: logging.LogRecord) -> None:
        self.records.append(record)
        self.arrived.set()


def test_exhausted_pool_warns_once_and_runs_the_work_when_a_worker_frees() -> None:
    d = Dispatcher(max_workers=2, name="full-worker", watchdog_interval=0.005)
    handler = _Records()
    log = logging.getLogger("drachtio_srf.dispatch")
    log.addHandler(handler)
    gate = threading.Event()
    both = threading.Barrier(3, timeout=WAIT)
    done: queue.Queue[int] = queue.Queue()
    try:
        for i in range(2):
            d.submit(f"blocked{i}", lambda: (both.wait(), gate.wait(WAIT)))
        both.wait()                         # both workers are now inside blocked tasks
        for i in range(3):
            d.submit(f"waiting{i}", done.put, i)
        assert handler.arrived.wait(WAIT), "no warning while work waited for a worker"
        assert done.empty()
        gate.set()
        assert sorted(done.get(timeout=WAIT) for _ in range(3)) == [0, 1, 2]
        warnings = [r.getMessage() for r in handler.records if "workers are busy" in r.getMessage()]
        assert len(warnings) == 1, warnings
        assert "max_workers" in warnings[0]
    finally:
        log.removeHandler(handler)
        gate.set()
        d.shutdown(wait=True, timeout=WAIT)


def test_shutdown_reports_a_blocked_worker_which_exits_when_its_task_returns() -> None:
    d = Dispatcher(max_workers=4, name="late-exit-worker")
    gate = threading.Event()
    entered = threading.Event()
    d.submit("k", lambda: (entered.set(), gate.wait(WAIT)))
    assert entered.wait(WAIT)
    start = time.monotonic()
    assert d.shutdown(wait=True, timeout=0.2) is False      # still running the blocked task
    assert time.monotonic() - start < 2.0
    assert [t.name for t in _module_threads("late-exit-worker-")] == ["late-exit-worker-1"]
    gate.set()
    for t in _module_threads("late-exit-worker"):
        t.join(WAIT)
    assert _module_threads("late-exit-worker") == []
    assert d.shutdown(wait=True, timeout=WAIT) is True


def test_current_key_is_the_running_tasks_key(dispatcher: Dispatcher) -> None:
    seen: queue.Queue = queue.Queue()
    assert dispatcher.current_key() is None            # not on a worker
    dispatcher.submit("dlg-1", lambda: seen.put(dispatcher.current_key()))
    dispatcher.submit(None, lambda: seen.put(dispatcher.current_key()))
    assert {seen.get(timeout=WAIT), seen.get(timeout=WAIT)} == {"dlg-1", None}


def test_max_workers_limits_parallelism_but_loses_nothing() -> None:
    d = Dispatcher(max_workers=2, name="cap-worker")
    active = [0]
    peak = [0]
    lock = threading.Lock()
    done: queue.Queue[int] = queue.Queue()

    def task(i: int) -> None:
        with lock:
            active[0] += 1
            peak[0] = max(peak[0], active[0])
        sum(range(2000))
        with lock:
            active[0] -= 1
        done.put(i)

    try:
        for i in range(300):
            d.submit(None if i % 2 else f"k{i % 5}", task, i)
        assert sorted(done.get(timeout=WAIT) for _ in range(300)) == list(range(300))
        assert peak[0] <= 2
        assert len(_module_threads("cap-worker")) <= 2
    finally:
        d.shutdown(wait=True, timeout=WAIT)


def test_exception_in_task_is_logged_and_next_task_runs(dispatcher: Dispatcher,
                                                        caplog: pytest.LogCaptureFixture) -> None:
    ran = threading.Event()

    def boom() -> None:
        raise ValueError("handler bug")

    with caplog.at_level(logging.ERROR, logger="drachtio_srf.dispatch"):
        dispatcher.submit("k", boom)
        dispatcher.submit("k", ran.set)
        assert ran.wait(WAIT)
    errors = [r for r in caplog.records if r.levelno == logging.ERROR]
    assert errors and errors[0].exc_info is not None
    assert isinstance(errors[0].exc_info[1], ValueError)
    assert "handler bug" in caplog.text


def test_kwargs_are_passed(dispatcher: Dispatcher) -> None:
    out: queue.Queue[tuple] = queue.Queue()
    dispatcher.submit("k", lambda a, b=None: out.put((a, b)), 1, b=2)
    assert out.get(timeout=WAIT) == (1, 2)


def test_shutdown_runs_pending_work_then_stops_all_workers() -> None:
    before = set(threading.enumerate())
    d = Dispatcher(max_workers=4, name="stop-worker")
    gate = threading.Event()
    order: list[int] = []
    d.submit("k", gate.wait, WAIT)
    for i in range(50):
        d.submit("k", order.append, i)
    d.submit(None, gate.set)
    d.shutdown(wait=True, timeout=WAIT)
    assert order == list(range(50))
    assert _module_threads("stop-worker") == []
    assert {t for t in threading.enumerate() if t.name.startswith("stop-worker")} <= before


def test_submit_after_shutdown_is_dropped_with_warning(caplog: pytest.LogCaptureFixture) -> None:
    d = Dispatcher(name="late-worker")
    d.shutdown()
    ran = threading.Event()
    with caplog.at_level(logging.WARNING, logger="drachtio_srf.dispatch"):
        d.submit("k", ran.set)
    assert d.closed
    assert not ran.is_set()
    assert "shut down" in caplog.text
    assert _module_threads("late-worker") == []


def test_shutdown_from_inside_a_task_does_not_hang() -> None:
    d = Dispatcher(name="self-stop")
    returned = threading.Event()

    def stop_inside() -> None:
        d.shutdown(wait=True, timeout=WAIT)
        returned.set()

    d.submit("k", stop_inside)
    assert returned.wait(WAIT)
    d.shutdown(wait=True, timeout=WAIT)   # from outside: waits for the pool to wind down
    assert _module_threads("self-stop") == []


def test_per_task_overhead_is_small() -> None:
    d = Dispatcher(name="perf-worker")
    n = 20000
    done = threading.Event()
    count = [0]

    def task() -> None:
        count[0] += 1
        if count[0] == n:
            done.set()

    try:
        start = time.perf_counter()
        for _ in range(n):
            d.submit("one-dialog", task)   # keyed: strictly serial, so count needs no lock
        assert done.wait(30)
        elapsed = time.perf_counter() - start
    finally:
        d.shutdown()
    # Generous bound (shared 2-core machine): ~50 us per keyed task including the hand-off.
    assert elapsed / n < 50e-6, f"{elapsed / n * 1e6:.1f} us per task"


# ---------------------------------------------------------------------------- Timers

def test_timers_run_in_order_and_cancel() -> None:
    timers = Timers(name="test-timers")
    fired: queue.Queue[str] = queue.Queue()
    try:
        timers.call_later(0.06, fired.put, "late")
        cancelled = timers.call_later(0.03, fired.put, "cancelled")
        timers.call_later(0.0, fired.put, "now")
        timers.call_later(0.02, lambda: threading.current_thread().name).cancel()
        cancelled.cancel()
        assert fired.get(timeout=WAIT) == "now"
        assert fired.get(timeout=WAIT) == "late"
        assert fired.empty()
    finally:
        timers.shutdown()
    assert _module_threads("test-timers") == []


def test_timer_callback_runs_on_timer_thread_and_survives_errors(caplog: pytest.LogCaptureFixture) -> None:
    timers = Timers(name="err-timers")
    where: queue.Queue[str] = queue.Queue()
    try:
        with caplog.at_level(logging.ERROR, logger="drachtio_srf.dispatch"):
            timers.call_later(0, lambda: 1 / 0)
            timers.call_later(0.01, lambda: where.put(threading.current_thread().name))
            assert where.get(timeout=WAIT) == "err-timers"
        assert "ZeroDivisionError" in caplog.text
    finally:
        timers.shutdown()


def test_timers_shutdown_drops_pending_calls_and_joins() -> None:
    timers = Timers(name="stop-timers")
    fired = threading.Event()
    timers.call_later(30, fired.set)
    assert len(_module_threads("stop-timers")) == 1
    assert not timers.closed
    timers.shutdown()
    assert timers.closed
    assert _module_threads("stop-timers") == []
    handle = timers.call_later(0, fired.set)   # after shutdown: dropped
    assert handle.cancelled
    assert not fired.is_set()


# ---------------------------------------------------------------------------- Completion / Future

def test_completion_with_callback_runs_it_on_a_worker(dispatcher: Dispatcher) -> None:
    got: queue.Queue[tuple] = queue.Queue()

    def cb(*args: object) -> None:
        got.put((threading.current_thread().name, args))

    c = Completion(dispatcher, cb, key="dialog-1")
    assert c.future is None
    assert c.returned("the-value") == "the-value"
    c.succeed("result")
    name, args = got.get(timeout=WAIT)
    assert args == (None, "result")
    assert name.startswith("test-worker-") and name != threading.current_thread().name

    c2 = Completion(dispatcher, cb)
    c2.succeed("a", "b")
    assert got.get(timeout=WAIT)[1] == (None, "a", "b")

    err = RuntimeError("nope")
    c3 = Completion(dispatcher, cb)
    c3.fail(err)
    name, args = got.get(timeout=WAIT)
    assert args == (err,)
    assert name.startswith("test-worker-")


def test_completion_is_idempotent(dispatcher: Dispatcher) -> None:
    got: queue.Queue[tuple] = queue.Queue()
    c = Completion(dispatcher, lambda *a: got.put(a))
    c.succeed(1)
    c.fail(RuntimeError("late timeout"))
    c.succeed(2)
    assert c.done
    assert got.get(timeout=WAIT) == (None, 1)
    # The ignored calls submitted nothing: a marker task on the same pool arrives next.
    dispatcher.submit(None, got.put, ("marker",))
    assert got.get(timeout=WAIT) == ("marker",)

    f = Completion(dispatcher, None)
    f.fail(ValueError("first"))
    f.succeed("second")
    assert f.future is not None
    with pytest.raises(ValueError, match="first"):
        f.future.result(timeout=WAIT)


def test_completion_without_callback_returns_future(dispatcher: Dispatcher) -> None:
    c = Completion(dispatcher, None)
    fut = c.returned("ignored")
    assert isinstance(fut, DrachtioFuture) and isinstance(fut, concurrent.futures.Future)
    assert fut is c.future and not c.done
    c.succeed("dialog")
    assert fut.result(timeout=0) == "dialog"    # resolved on the calling thread, synchronously

    many = Completion(dispatcher, None)
    many.succeed("res", "body")
    assert many.future.result(timeout=0) == ("res", "body")

    none = Completion(dispatcher, None)
    none.succeed()
    assert none.future.result(timeout=0) is None

    bad = Completion(dispatcher, None)
    bad.fail(ConnectionError("gone"))
    with pytest.raises(ConnectionError):
        bad.future.result(timeout=0)


def test_completion_rejects_non_callable_callback(dispatcher: Dispatcher) -> None:
    with pytest.raises(TypeError):
        Completion(dispatcher, "not callable")  # type: ignore[arg-type]


def test_cancelled_future_ignores_late_result(dispatcher: Dispatcher) -> None:
    c = Completion(dispatcher, None)
    assert c.future.cancel()
    c.succeed("late")           # no InvalidStateError escapes to the reader thread
    assert c.done and c.future.cancelled()


def test_add_done_callback_runs_on_a_worker(dispatcher: Dispatcher) -> None:
    where: queue.Queue[tuple[str, object]] = queue.Queue()
    c = Completion(dispatcher, None, key="dialog-9")
    c.future.add_done_callback(lambda f: where.put((threading.current_thread().name, f.result())))
    resolver = threading.Thread(target=c.succeed, args=("ok",), name="fake-reader")
    resolver.start()
    resolver.join(WAIT)
    name, value = where.get(timeout=WAIT)
    assert value == "ok"
    assert name.startswith("test-worker-")

    # Already done: still not run inline on the caller.
    c.future.add_done_callback(lambda f: where.put((threading.current_thread().name, "again")))
    name, value = where.get(timeout=WAIT)
    assert value == "again" and name.startswith("test-worker-")


def test_add_done_callback_after_dispatcher_shutdown_still_runs() -> None:
    d = Dispatcher(name="gone-worker")
    fut = DrachtioFuture(d)
    d.shutdown()
    got: queue.Queue[object] = queue.Queue()
    fut.add_done_callback(lambda f: got.put(f.exception()))
    fut.set_exception(ConnectionResetError("lost"))
    assert isinstance(got.get(timeout=WAIT), ConnectionResetError)


def test_future_works_with_asyncio_wrap_future(dispatcher: Dispatcher) -> None:
    import asyncio

    c = Completion(dispatcher, None)

    async def main() -> object:
        threading.Timer(0.01, c.succeed, args=("answered",)).start()
        return await asyncio.wait_for(asyncio.wrap_future(c.future), WAIT)

    assert asyncio.run(main()) == "answered"


def test_dispatcher_rejects_bad_size() -> None:
    with pytest.raises(ValueError):
        Dispatcher(max_workers=0)


# ---------------------------------------------------------------------------- Dispatcher.hold

def _recorder(n_expected: int) -> tuple[list[object], threading.Event, object]:
    """A task that appends its argument; the event is set once ``n_expected`` were recorded."""
    seen: list[object] = []
    done = threading.Event()
    lock = threading.Lock()

    def record(x: object) -> None:
        with lock:
            seen.append(x)
            if len(seen) >= n_expected:
                done.set()
    return seen, done, record


def test_held_key_queues_tasks_and_runs_them_in_order_after_release(dispatcher: Dispatcher) -> None:
    seen, done, record = _recorder(5)
    handle = dispatcher.hold("k")
    for n in range(5):
        dispatcher.submit("k", record, n)
    dispatcher.submit("other", record, "other")       # other keys are not held
    assert not done.wait(0.2)
    assert seen == ["other"]
    assert dispatcher.held("k") and not dispatcher.idle("k")
    handle.release()
    assert done.wait(WAIT)
    assert [x for x in seen if x != "other"] == [0, 1, 2, 3, 4]
    assert not dispatcher.held("k")


def test_release_from_a_timer_callback(dispatcher: Dispatcher) -> None:
    timers = Timers(name="test-timers")
    seen, done, record = _recorder(3)
    released_on: list[str] = []
    try:
        handle = dispatcher.hold("k")
        for n in range(3):
            dispatcher.submit("k", record, n)

        def release() -> None:
            released_on.append(threading.current_thread().name)
            handle.release()
        timers.call_later(0.05, release)
        assert done.wait(WAIT)
        assert seen == [0, 1, 2]
        assert released_on == ["test-timers"]
    finally:
        timers.shutdown()


def test_double_and_concurrent_release_is_harmless(dispatcher: Dispatcher) -> None:
    seen, done, record = _recorder(4)
    handle = dispatcher.hold("k")
    dispatcher.submit("k", record, 0)
    dispatcher.submit("k", record, 1)
    releasers = [threading.Thread(target=handle.release) for _ in range(8)]
    for t in releasers:
        t.start()
    for t in releasers:
        t.join(WAIT)
    handle.release()
    assert handle.released
    dispatcher.submit("k", record, 2)
    second = dispatcher.hold("k")               # the key can be held again afterwards
    dispatcher.submit("k", record, 3)
    second.release()
    second.release()
    assert done.wait(WAIT)
    last = threading.Event()
    dispatcher.submit("k", last.set)            # serial: once it ran, nothing else is pending
    assert last.wait(WAIT)
    assert seen == [0, 1, 2, 3]                 # each task ran exactly once, in order


def test_hold_on_a_key_with_a_running_task(dispatcher: Dispatcher) -> None:
    """The running task finishes; tasks submitted before the hold run, those after it wait."""
    seen, done, record = _recorder(4)
    started = threading.Event()
    go_on = threading.Event()

    def running() -> None:
        started.set()
        go_on.wait(WAIT)
        record("running")
    dispatcher.submit("k", running)
    assert started.wait(WAIT)
    dispatcher.submit("k", record, "before")
    handle = dispatcher.hold("k")
    dispatcher.submit("k", record, "after")
    go_on.set()
    assert not done.wait(0.2)
    assert seen == ["running", "before"]
    assert dispatcher.held("k")
    handle.release()
    dispatcher.submit("k", record, "later")
    assert done.wait(WAIT)
    assert seen == ["running", "before", "after", "later"]


def test_first_hold_stops_the_queue_right_after_the_running_task(dispatcher: Dispatcher) -> None:
    """``first=True`` (a task holding its own key): what was already queued waits too."""
    seen, done, record = _recorder(3)
    holds: list = []

    def holder() -> None:
        holds.append(dispatcher.hold("k", first=True))
        record("holder")
    dispatcher.submit("k", holder)
    dispatcher.submit("k", record, "queued")
    dispatcher.submit("k", record, "queued-2")
    assert not done.wait(0.2)
    assert seen == ["holder"]
    holds[0].release()
    assert done.wait(WAIT)
    assert seen == ["holder", "queued", "queued-2"]


def test_hold_released_before_it_reaches_the_head_is_skipped(dispatcher: Dispatcher) -> None:
    seen, done, record = _recorder(2)
    go_on = threading.Event()
    dispatcher.submit("k", go_on.wait, WAIT)
    handle = dispatcher.hold("k")
    dispatcher.submit("k", record, 0)
    handle.release()                            # still behind the running task
    dispatcher.submit("k", record, 1)
    go_on.set()
    assert done.wait(WAIT)
    assert seen == [0, 1]


def test_shutdown_releases_holds_and_runs_their_tasks() -> None:
    d = Dispatcher(max_workers=4, name="test-hold-shutdown")
    seen, done, record = _recorder(2)
    d.hold("k")
    d.hold("j", first=True)
    d.submit("k", record, "k")
    d.submit("j", record, "j")
    d.shutdown(wait=True, timeout=WAIT)
    assert done.is_set() and sorted(seen) == ["j", "k"]
    assert not _module_threads("test-hold-shutdown")


def test_hold_needs_a_key(dispatcher: Dispatcher) -> None:
    with pytest.raises(ValueError):
        dispatcher.hold(None)


def test_200_concurrent_holds_occupy_no_workers() -> None:
    """Held keys cost no thread: 200 held dialogs with queued events start no worker at all,
    and after release everything runs on a pool far smaller than the number of holds."""
    d = Dispatcher(max_workers=64, name="test-hold-many")
    timers = Timers(name="test-hold-timers")
    keys = [f"dlg-{n}" for n in range(200)]
    seen, done, record = _recorder(3 * len(keys))
    try:
        before = threading.active_count()
        handles = [d.hold(k) for k in keys]
        for k in keys:
            for n in range(3):
                d.submit(k, record, (k, n))
        assert threading.active_count() == before         # nothing runnable: no worker started
        assert not _module_threads("test-hold-many")
        for h in handles:
            timers.call_later(0.0, h.release)
        assert done.wait(WAIT)
        assert len(_module_threads("test-hold-many")) <= 64
        for k in keys:
            assert [n for kk, n in seen if kk == k] == [0, 1, 2]   # type: ignore[misc]
    finally:
        timers.shutdown()
        d.shutdown(wait=True, timeout=WAIT)


# ---------------------------------------------------------------------------- batches

def test_work_made_ready_in_a_batch_wakes_a_worker_once_the_batch_ends() -> None:
    # A reader routes the frames of one read inside batch(): no worker is woken (or started)
    # in the middle of the routing, one is when the batch ends, and every task then runs.
    d = Dispatcher(max_workers=8, name="batch-worker")
    ran: list[int] = []
    done = threading.Event()
    try:
        with d.batch():
            for i in range(3):
                d.submit(("dlg", i), lambda i=i: (ran.append(i), len(ran) == 3 and done.set()))
            assert not _module_threads("batch-worker-"), "a worker started inside the batch"
            assert len(d._ready) == 3
        assert done.wait(WAIT)
        assert sorted(ran) == [0, 1, 2]
    finally:
        d.shutdown(wait=True, timeout=WAIT)


def test_nested_batches_wake_only_when_the_outermost_ends() -> None:
    d = Dispatcher(max_workers=8, name="nest-worker")
    done = threading.Event()
    try:
        with d.batch():
            with d.batch():
                d.submit(None, done.set)
            assert not _module_threads("nest-worker-"), "the inner batch woke a worker"
        assert done.wait(WAIT)
    finally:
        d.shutdown(wait=True, timeout=WAIT)


def test_a_batch_on_one_thread_does_not_delay_work_submitted_from_another() -> None:
    # The batch is per thread: a timer or another connection's reader submitting meanwhile
    # wakes a worker at once.
    d = Dispatcher(max_workers=8, name="other-worker")
    done = threading.Event()
    try:
        with d.batch():
            t = threading.Thread(target=d.submit, args=(None, done.set))
            t.start()
            t.join(WAIT)
            assert done.wait(WAIT), "work from another thread waited for this thread's batch"
    finally:
        d.shutdown(wait=True, timeout=WAIT)
