"""The server's coarse timer wheel: fires in order and never early, cancels cleanly."""
from __future__ import annotations

import asyncio

from drachtio_srf.server import timers
from drachtio_srf.server.timers import TimerWheel


async def test_timers_fire_in_order_never_early():
    loop = asyncio.get_running_loop()
    wheel = TimerWheel(loop)
    fired: list[tuple[str, float]] = []
    done = asyncio.Event()
    start = loop.time()
    for name, delay in (("c", 0.06), ("a", 0.02), ("b", 0.04)):
        wheel.call_later(delay, lambda n=name, d=delay: fired.append((n, loop.time() - start - d)))
    wheel.call_later(0.08, done.set)
    await asyncio.wait_for(done.wait(), 2)
    assert [n for n, _ in fired] == ["a", "b", "c"]
    assert all(late >= 0 for _, late in fired)
    assert len(wheel) == 0


async def test_cancelled_timers_do_not_fire_nor_keep_the_loop_armed():
    loop = asyncio.get_running_loop()
    wheel = TimerWheel(loop)
    fired: list[int] = []
    t = wheel.call_later(0.02, fired.append, 1)
    t.cancel()
    t.cancel()                           # idempotent
    assert wheel._handle is None         # nothing live: no wake-up scheduled
    done = asyncio.Event()
    wheel.call_later(0.05, done.set)
    await asyncio.wait_for(done.wait(), 2)
    assert fired == [] and t.cancelled() and len(wheel) == 0


async def test_a_failing_callback_does_not_stop_the_others(caplog):
    loop = asyncio.get_running_loop()
    wheel = TimerWheel(loop)
    done = asyncio.Event()
    wheel.call_later(0.01, lambda: 1 / 0)
    wheel.call_later(0.01, done.set)
    await asyncio.wait_for(done.wait(), 2)
    assert "timer callback" in caplog.text


async def test_compaction_keeps_live_timers(monkeypatch):
    monkeypatch.setattr(timers, "COMPACT_AT", 10)
    loop = asyncio.get_running_loop()
    wheel = TimerWheel(loop)
    got: list[int] = []
    live = [wheel.call_later(0.03 + i * 0.001, got.append, i) for i in range(5)]
    dead = [wheel.call_later(10 + i, got.append, -1) for i in range(40)]
    for t in dead:
        t.cancel()
    assert wheel._pending < 45          # compacted
    done = asyncio.Event()
    wheel.call_later(0.1, done.set)
    await asyncio.wait_for(done.wait(), 2)
    assert got == [0, 1, 2, 3, 4] and len(live) == 5
    wheel.close()
