"""The client's own threads run under SCHED_BATCH on Linux (drachtio_srf.threadpolicy), and the
switch to turn that off works."""
from __future__ import annotations

import asyncio
import concurrent.futures
import logging
import os
import socket
import threading
from collections.abc import Iterator

import pytest
from helpers import LOOPBACK

from drachtio_srf import set_thread_policy, threadpolicy, wire
from drachtio_srf.dispatch import Dispatcher, Timers
from drachtio_srf.transport import Connection, open_connection
from drachtio_srf.usercode import LoopRunner

WAIT = 5.0

pytestmark = pytest.mark.skipif(
    not (hasattr(os, "sched_getscheduler") and hasattr(os, "SCHED_BATCH")),
    reason="scheduling policies are a Linux feature (os.SCHED_BATCH is missing here)")


def _policy_here() -> int:
    return os.sched_getscheduler(0)


@pytest.fixture(autouse=True)
def restore_policy() -> Iterator[None]:
    before = threadpolicy.policy()
    yield
    set_thread_policy(before)


def _on_worker(d: Dispatcher, fn) -> concurrent.futures.Future:
    fut: concurrent.futures.Future = concurrent.futures.Future()
    d.submit(None, lambda: fut.set_result(fn()))
    return fut


@pytest.mark.parametrize(("chosen", "expected"), [("batch", "SCHED_BATCH"), ("normal", "SCHED_OTHER")])
def test_workers_run_user_code_under_the_chosen_policy(chosen, expected) -> None:
    set_thread_policy(chosen)
    d = Dispatcher(name="policy-worker")
    try:
        assert _on_worker(d, _policy_here).result(WAIT) == getattr(os, expected)
    finally:
        d.shutdown(wait=True, timeout=WAIT)
    assert _policy_here() == os.SCHED_OTHER     # the test's own thread keeps its policy


def test_timer_thread_runs_under_sched_batch() -> None:
    set_thread_policy("batch")
    timers = Timers(name="policy-timers")
    seen: concurrent.futures.Future = concurrent.futures.Future()
    try:
        timers.call_later(0.0, lambda: seen.set_result(_policy_here()))
        assert seen.result(WAIT) == os.SCHED_BATCH
    finally:
        timers.shutdown()


def test_reader_thread_runs_under_sched_batch() -> None:
    set_thread_policy("batch")
    srv = socket.socket()
    srv.bind((LOOPBACK, 0))
    srv.listen(1)
    seen: concurrent.futures.Future = concurrent.futures.Future()
    sock = open_connection(LOOPBACK, srv.getsockname()[1], timeout=WAIT)
    peer, _ = srv.accept()
    conn = Connection(sock, on_frame=lambda c, p: seen.set_result((p, _policy_here())),
                      on_close=lambda c, e: None, name="policy-conn")
    try:
        conn.start()
        peer.sendall(wire.encode("hello"))
        assert seen.result(WAIT) == ("hello", os.SCHED_BATCH)
    finally:
        conn.close()
        peer.close()
        srv.close()


def test_a_thread_started_by_a_handler_inherits_the_policy() -> None:
    """Documented in threadpolicy: Linux threads inherit their creator's policy."""
    set_thread_policy("batch")
    d = Dispatcher(name="policy-worker")

    def start_thread() -> int:
        out: list[int] = []
        t = threading.Thread(target=lambda: out.append(_policy_here()))
        t.start()
        t.join(WAIT)
        return out[0]

    try:
        assert _on_worker(d, start_thread).result(WAIT) == os.SCHED_BATCH
    finally:
        d.shutdown(wait=True, timeout=WAIT)


def test_normal_after_batch_resets_a_worker_that_inherited_batch() -> None:
    """set_thread_policy("normal") while connected: a worker the (batch) reader starts later
    inherits SCHED_BATCH from it and must drop it."""
    set_thread_policy("normal")
    out: concurrent.futures.Future = concurrent.futures.Future()

    def batch_thread_starting_a_pool() -> None:
        os.sched_setscheduler(0, os.SCHED_BATCH, os.sched_param(0))    # as a reader would be
        d = Dispatcher(name="policy-worker")
        try:
            out.set_result(_on_worker(d, _policy_here).result(WAIT))
        finally:
            d.shutdown(wait=True, timeout=WAIT)

    t = threading.Thread(target=batch_thread_starting_a_pool)
    t.start()
    t.join(WAIT)
    assert out.result(WAIT) == os.SCHED_OTHER


def test_async_handlers_run_on_a_loop_thread_under_sched_batch() -> None:
    """An ``async def`` handler runs on the library's own asyncio loop thread."""
    set_thread_policy("batch")
    runner = LoopRunner()

    async def handler() -> int:
        return _policy_here()

    try:
        loop = runner.loop()
        assert asyncio.run_coroutine_threadsafe(handler(), loop).result(WAIT) == os.SCHED_BATCH
    finally:
        runner.close()


def test_bad_policy_name_is_a_value_error() -> None:
    with pytest.raises(ValueError, match="'batch' or 'normal'"):
        set_thread_policy("fifo")  # type: ignore[arg-type]
    assert threadpolicy.policy() in ("batch", "normal")


@pytest.mark.parametrize(("value", "expected"), [
    (None, "batch"), ("batch", "batch"), ("normal", "normal"), (" Normal ", "normal"),
    ("other", "normal"), ("", "batch")])
def test_environment_variable(monkeypatch, value, expected) -> None:
    if value is None:
        monkeypatch.delenv(threadpolicy.ENV_VAR, raising=False)
    else:
        monkeypatch.setenv(threadpolicy.ENV_VAR, value)
    assert threadpolicy._from_env() == expected


def test_unknown_environment_value_warns_and_keeps_batch(monkeypatch, caplog) -> None:
    monkeypatch.setenv(threadpolicy.ENV_VAR, "realtime")
    with caplog.at_level(logging.WARNING, logger="drachtio_srf.threadpolicy"):
        assert threadpolicy._from_env() == "batch"
    assert "neither 'batch' nor 'normal'" in caplog.text


def test_a_refused_switch_falls_back_to_normal(monkeypatch) -> None:
    """A container or seccomp filter that forbids the call: the thread runs on, normal policy."""
    set_thread_policy("batch")

    def refuse(*_a: object) -> None:
        raise PermissionError(1, "Operation not permitted")

    monkeypatch.setattr(os, "sched_setscheduler", refuse)
    assert threadpolicy.apply() is False
    assert threadpolicy.policy() == "normal"
