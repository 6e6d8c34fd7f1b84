"""DESIGN rule 5 at the Outcome level: a Future's consumer gets the dialog's key held (without a
worker) until it has attached its listeners; the event queued behind it then sees them.

These drive the race deterministically: the consumer, after ``result()``, waits for the queued
event for a while before attaching; with the hold the event cannot run in that time.
"""
from __future__ import annotations

import threading
from types import SimpleNamespace

import pytest

from drachtio_srf import hold as hold_mod
from drachtio_srf.dispatch import Dispatcher, Timers
from drachtio_srf.hold import GatedFuture, Outcome, run_task

WAIT = 5.0
RACE = 0.3      # how long a consumer dawdles between result() and attaching its listener
KEY = ("dlg", "d1")


@pytest.fixture
def agent():
    a = SimpleNamespace(dispatcher=Dispatcher(max_workers=16, name="test-r5"),
                        timers=Timers(name="test-r5-timers"))
    yield a
    a.timers.shutdown()
    a.dispatcher.shutdown(wait=True, timeout=WAIT)


class Listener:
    """A stand-in for ``dialog.on('info', ...)``: the event task records whether it was attached."""

    def __init__(self) -> None:
        self.attached = False
        self.event_ran = threading.Event()
        self.seen_attached: list[bool] = []

    def attach(self) -> None:
        self.attached = True

    def event(self) -> None:
        self.seen_attached.append(self.attached)
        self.event_ran.set()


def consumer(fut: GatedFuture, lst: Listener, got: threading.Event) -> None:
    fut.result(WAIT)
    got.set()
    lst.event_ran.wait(RACE)     # without the hold the event would run now, before attach()
    lst.attach()


def test_event_queued_after_a_future_result_waits_for_the_consumer_task(agent) -> None:
    out = Outcome(agent, None)
    fut = out.future
    lst = Listener()
    got = threading.Event()
    agent.dispatcher.submit(("call", "c1"), run_task, consumer, fut, lst, got)
    out.succeed("dialog", key=KEY, gate=True)        # the reader resolves ...
    agent.dispatcher.submit(KEY, run_task, lst.event)  # ... and queues the far end's INFO
    assert lst.event_ran.wait(WAIT)
    assert got.is_set()
    assert lst.seen_attached == [True]


def test_hold_is_released_when_the_consumer_waits_on_another_library_future(agent) -> None:
    out = Outcome(agent, None)
    lst = Listener()
    other = GatedFuture(agent.dispatcher)
    other.set_result("x")

    def consume() -> None:
        out.future.result(WAIT)
        lst.attach()
        other.result(WAIT)                    # a library wait: the dialog's events may run now
        assert lst.event_ran.wait(WAIT)       # ... while this task is still running
    done = threading.Event()
    agent.dispatcher.submit(("call", "c1"), run_task, lambda: (consume(), done.set()))
    out.succeed("dialog", key=KEY, gate=True)
    agent.dispatcher.submit(KEY, run_task, lst.event)
    assert done.wait(WAIT)
    assert lst.seen_attached == [True]


def test_consumer_outside_the_workers_is_released_by_its_window(agent) -> None:
    out = Outcome(agent, None)
    lst = Listener()
    waiting = threading.Event()
    threading.Thread(target=lambda: (waiting.set(), out.future.result(WAIT))).start()
    assert waiting.wait(WAIT)
    out.succeed("dialog", key=KEY, gate=True)
    out.future.result(WAIT)     # (this main thread takes it too: it is not a worker)
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
    out.future.add_done_callback(lambda f: lst.attach())
    out.succeed("dialog", key=KEY, gate=True)
    agent.dispatcher.submit(KEY, run_task, lst.event)
    assert lst.event_ran.wait(WAIT)
    assert lst.seen_attached == [True]


def test_succeed_here_holds_the_current_key_after_its_task(agent) -> None:
    """The B2BUA case: the result is made in a task on the dialog's own key while the far end's
    ACK is already queued behind it."""
    out = Outcome(agent, None)
    lst = Listener()
    got = threading.Event()
    agent.dispatcher.submit(("call", "c1"), run_task, consumer, out.future, lst, got)

    def answer() -> None:
        agent.dispatcher.submit(KEY, run_task, lst.event)   # the ACK arrives meanwhile
        out.succeed_here("result", key=KEY)
    agent.dispatcher.submit(KEY, run_task, answer)
    assert lst.event_ran.wait(WAIT)
    assert lst.seen_attached == [True]


def test_succeed_here_with_done_callbacks_runs_them_before_the_queued_event(agent) -> None:
    out = Outcome(agent, None)
    lst = Listener()
    out.future.add_done_callback(lambda f: lst.attach())

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
