"""DESIGN rule 5 at the Outcome level: a Future's consumer gets the dialog's key held (without a
worker) until it has attached its listeners; the event queued behind it then sees them.

These drive the race deterministically: the event is queued before the consumer attaches, and
the consumer checks (with a library call) that the key is still held when it attaches.  The hold
lasts while the consumer's thread only calls the library; its first other call releases it.
"""
from __future__ import annotations

import queue
import sys
import threading
from types import SimpleNamespace

import pytest

from drachtio_srf import hold as hold_mod
from drachtio_srf.dispatch import Dispatcher, Timers
from drachtio_srf.emitter import Emitter
from drachtio_srf.hold import GatedFuture, Outcome, run_task

WAIT = 5.0
KEY = ("dlg", "d1")


@pytest.fixture
def agent():
    a = SimpleNamespace(dispatcher=Dispatcher(max_workers=16, name="test-r5"),
                        timers=Timers(name="test-r5-timers"))
    yield a
    a.timers.shutdown()
    a.dispatcher.shutdown(wait=True, timeout=WAIT)


class Listener:
    """A stand-in for ``dialog.on('info', ...)``: a library Emitter; the queued event task emits
    on it and records whether the listener was attached by then."""

    def __init__(self) -> None:
        self.emitter = Emitter()
        self.event_ran = threading.Event()
        self.seen_attached: list[bool] = []

    @property
    def attached(self) -> bool:
        return bool(self.emitter.listeners("info"))

    def event(self) -> None:
        self.seen_attached.append(self.attached)
        self.event_ran.set()


def _noop() -> None:
    return None


def consumer(agent, fut: GatedFuture, lst: Listener, report: queue.Queue) -> None:
    """Takes the dialog, then only calls the library (as ``dialog.on(...)``) before calling
    anything else: the event queued behind the result must wait for that."""
    fut.result(WAIT)
    still_held = agent.dispatcher.held(KEY)       # library calls: the hold stays
    lst.emitter.on("info", _noop)
    report.put(still_held)                        # the first call outside the library


def test_event_queued_after_a_future_result_waits_while_the_consumer_calls_the_library(agent) -> None:
    out = Outcome(agent, None)
    lst = Listener()
    report: queue.Queue = queue.Queue()
    agent.dispatcher.submit(("call", "c1"), run_task, consumer, agent, out.future, lst, report)
    out.succeed("dialog", key=KEY, gate=True)        # the reader resolves ...
    agent.dispatcher.submit(KEY, run_task, lst.event)  # ... and queues the far end's INFO
    assert lst.event_ran.wait(WAIT)
    assert report.get(timeout=WAIT) is True
    assert lst.seen_attached == [True]


def test_consumer_on_the_main_thread_keeps_the_hold_while_it_calls_the_library(agent) -> None:
    out = Outcome(agent, None)
    lst = Listener()
    report: queue.Queue = queue.Queue()
    waiting = threading.Event()

    def resolve() -> None:
        assert waiting.wait(WAIT)
        out.succeed("dialog", key=KEY, gate=True)
        agent.dispatcher.submit(KEY, run_task, lst.event)
    threading.Thread(target=resolve).start()
    waiting.set()
    consumer(agent, out.future, lst, report)
    assert lst.event_ran.wait(WAIT)
    assert report.get(timeout=WAIT) is True and lst.seen_attached == [True]


@pytest.mark.parametrize("where", ["main thread", "worker"])
def test_consumer_leaving_the_library_releases_the_hold_at_once(agent, monkeypatch, where) -> None:
    """No timer: the first call to a built-in outside the library (here inside Event.wait) lets
    the dialog's events run, even with the fallback windows made far longer than the test."""
    monkeypatch.setattr(hold_mod, "_OUTSIDE_WINDOW", 60.0)
    monkeypatch.setattr(hold_mod, "_HOLD_MAX", 60.0)
    out = Outcome(agent, None)
    lst = Listener()
    result: list = []

    def take() -> None:
        out.future.result(WAIT)
        result.append(lst.event_ran.wait(WAIT))     # sleeping/waiting outside the library
    waiting = threading.Event()

    def resolve() -> None:
        assert waiting.wait(WAIT)
        out.succeed("dialog", key=KEY, gate=True)
        agent.dispatcher.submit(KEY, run_task, lst.event)
    threading.Thread(target=resolve).start()
    if where == "worker":
        done = threading.Event()
        agent.dispatcher.submit(("call", "c1"), run_task, lambda: (waiting.set(), take(), done.set()))
        assert done.wait(WAIT * 2)
    else:
        waiting.set()
        take()
    assert result == [True]


def test_return_of_the_frame_that_took_the_result_releases_the_hold(agent, monkeypatch) -> None:
    monkeypatch.setattr(hold_mod, "_OUTSIDE_WINDOW", 60.0)
    monkeypatch.setattr(hold_mod, "_HOLD_MAX", 60.0)
    out = Outcome(agent, None)
    out.succeed("dialog", key=KEY, gate=True)
    seen = [None]

    def take() -> str:
        value = out.future.result(WAIT)
        seen[0] = agent.dispatcher.held(KEY)        # (no call outside the library here)
        return value
    assert take() == "dialog"
    assert agent.dispatcher.held(KEY) is False      # a library call: nothing else released it
    assert seen == [True]


def test_consumer_passing_the_dialog_to_its_own_function_keeps_the_hold(agent) -> None:
    """Python calls are followed: a helper of the app's that attaches the listener is in time."""
    out = Outcome(agent, None)
    lst = Listener()
    report: queue.Queue = queue.Queue()

    def setup(dialog: object, box: list) -> None:
        box[0] = agent.dispatcher.held(KEY)
        lst.emitter.on("info", _noop)

    def consume() -> None:
        box = [None]
        setup(out.future.result(WAIT), box)
        report.put(box[0])
    agent.dispatcher.submit(("call", "c1"), run_task, consume)
    out.succeed("dialog", key=KEY, gate=True)
    agent.dispatcher.submit(KEY, run_task, lst.event)
    assert lst.event_ran.wait(WAIT)
    assert report.get(timeout=WAIT) is True and lst.seen_attached == [True]


def test_hold_is_released_when_the_consumer_waits_on_another_library_future(agent) -> None:
    out = Outcome(agent, None)
    lst = Listener()
    other = GatedFuture(agent.dispatcher)
    other.set_result("x")

    def consume() -> None:
        out.future.result(WAIT)
        lst.emitter.on("info", _noop)
        other.result(WAIT)                    # a library wait: the dialog's events may run now
        assert lst.event_ran.wait(WAIT)       # ... while this task is still running
    done = threading.Event()
    agent.dispatcher.submit(("call", "c1"), run_task, lambda: (consume(), done.set()))
    out.succeed("dialog", key=KEY, gate=True)
    agent.dispatcher.submit(KEY, run_task, lst.event)
    assert done.wait(WAIT)
    assert lst.seen_attached == [True]


def test_consumer_that_cannot_be_watched_is_released_by_its_window(agent) -> None:
    """Another profiler installed on the consumer's thread: the hold falls back to a window."""
    out = Outcome(agent, None)
    lst = Listener()
    waiting = threading.Event()
    threading.Thread(target=lambda: (waiting.set(), out.future.result(WAIT))).start()
    assert waiting.wait(WAIT)
    out.succeed("dialog", key=KEY, gate=True)
    previous = sys.getprofile()
    sys.setprofile(lambda *_a: None)
    try:
        out.future.result(WAIT)     # (this main thread takes it too: it is not a worker)
    finally:
        sys.setprofile(previous)
    agent.dispatcher.submit(KEY, run_task, lst.event)
    assert lst.event_ran.wait(WAIT)   # nobody releases it: the window timer does
    assert not agent.dispatcher.held(KEY)


def test_unclaimed_result_holds_the_key_only_briefly(agent) -> None:
    out = Outcome(agent, None)
    lst = Listener()
    out.succeed("dialog", key=KEY, gate=True)
    agent.dispatcher.submit(KEY, run_task, lst.event)
    assert lst.event_ran.wait(hold_mod._UNCLAIMED_WINDOW + WAIT)


def test_done_callbacks_run_before_the_queued_event_and_need_no_hold(agent) -> None:
    out = Outcome(agent, None)
    lst = Listener()
    out.future.add_done_callback(lambda f: lst.emitter.on("info", _noop))
    out.succeed("dialog", key=KEY, gate=True)
    agent.dispatcher.submit(KEY, run_task, lst.event)
    assert lst.event_ran.wait(WAIT)
    assert lst.seen_attached == [True]


def test_succeed_here_holds_the_current_key_after_its_task(agent) -> None:
    """The B2BUA case: the result is made in a task on the dialog's own key while the far end's
    ACK is already queued behind it."""
    out = Outcome(agent, None)
    lst = Listener()
    report: queue.Queue = queue.Queue()
    agent.dispatcher.submit(("call", "c1"), run_task, consumer, agent, out.future, lst, report)

    def answer() -> None:
        agent.dispatcher.submit(KEY, run_task, lst.event)   # the ACK arrives meanwhile
        out.succeed_here("result", key=KEY)
    agent.dispatcher.submit(KEY, run_task, answer)
    assert lst.event_ran.wait(WAIT)
    assert lst.seen_attached == [True]


def test_succeed_here_with_done_callbacks_runs_them_before_the_queued_event(agent) -> None:
    out = Outcome(agent, None)
    lst = Listener()
    out.future.add_done_callback(lambda f: lst.emitter.on("info", _noop))

    def answer() -> None:
        agent.dispatcher.submit(KEY, run_task, lst.event)
        out.succeed_here("result", key=KEY)
    agent.dispatcher.submit(KEY, run_task, answer)
    assert lst.event_ran.wait(WAIT)
    assert lst.seen_attached == [True]


def test_succeed_here_with_a_callback_runs_it_inline(agent) -> None:
    got: list[tuple] = []
    ran_on: list[str] = []
    finished = threading.Event()
    out = Outcome(agent, lambda err, value: (got.append((err, value)),
                                             ran_on.append(threading.current_thread().name)))

    def answer() -> None:
        out.succeed_here("result", key=KEY)
        ran_on.append(threading.current_thread().name)
        finished.set()
    agent.dispatcher.submit(KEY, run_task, answer)
    assert finished.wait(WAIT)
    assert got == [(None, "result")] and ran_on[0] == ran_on[1]


def test_many_unconsumed_results_do_not_tie_up_workers(agent) -> None:
    """A Future-style app that never calls result(): 200 new dialogs at once, each with an event
    queued behind its hold, start no worker until the holds' windows pass."""
    before = threading.active_count()
    events = [Listener() for _ in range(200)]
    for n, lst in enumerate(events):
        out = Outcome(agent, None)
        key = ("dlg", f"d{n}")
        out.succeed("dialog", key=key, gate=True)
        agent.dispatcher.submit(key, run_task, lst.event)
    assert threading.active_count() <= before + 1      # (+ the timer thread)
    for lst in events:
        assert lst.event_ran.wait(WAIT)


def test_consumer_awaiting_in_an_event_loop_keeps_the_hold_until_its_next_await(agent) -> None:
    """``dialog = await asyncio.wrap_future(fut)`` then ``dialog.on(...)``: the event queued
    behind the result waits until the coroutine reaches its next ``await``."""
    import asyncio

    out = Outcome(agent, None)
    lst = Listener()
    report: list = []

    async def consume() -> None:
        waiting = asyncio.wrap_future(out.future)
        submitted = threading.Event()
        threading.Thread(target=lambda: (out.succeed("dialog", key=KEY, gate=True),
                                         agent.dispatcher.submit(KEY, run_task, lst.event),
                                         submitted.set())).start()
        assert submitted.wait(WAIT)    # (blocks the loop: the event is queued behind the result)
        await waiting
        report.append(agent.dispatcher.held(KEY))     # (a built-in call: no matter in a loop)
        lst.emitter.on("info", _noop)
        await asyncio.get_running_loop().run_in_executor(None, lst.event_ran.wait, WAIT)
    asyncio.run(consume())
    assert report == [True] and lst.seen_attached == [True]


def test_the_key_is_held_before_the_future_resolves(agent) -> None:
    """A consumer blocked in result() may run the moment the value is set (under Python 3.10 it
    often does, before the resolving thread goes on): the key must be held by then."""
    out = Outcome(agent, None)
    fut = out.future
    seen: list[bool] = []
    set_result = fut.set_result

    def spy(value: object) -> None:
        seen.append(agent.dispatcher.held(KEY))
        set_result(value)

    fut.set_result = spy        # type: ignore[method-assign]
    out.succeed("dialog", key=KEY, gate=True)
    assert seen == [True]
    assert fut.result(WAIT) == "dialog"
