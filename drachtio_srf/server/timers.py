"""Cheap coarse timers for the embedded server: many timers on one asyncio handle.

Every SIP transaction needs several timers (retransmission, lifetime, ACK wait) and most are
cancelled long before they fire. ``loop.call_later`` pays a ``TimerHandle`` and a heap push with
Python-level comparisons for each; under load that was a tenth of the server's CPU. Here timers
are grouped in buckets of ``resolution`` seconds (a dict append per timer), only the bucket ticks
go into a heap (ints: C comparisons), and one asyncio handle is armed for the earliest bucket.
A timer never fires early; it may fire up to ``resolution`` late. A bucket whose timers were all
cancelled (the usual fate of a retransmission timer) never wakes the loop, and cancelled timers
are dropped in bulk once they make up most of what is pending.
"""
from __future__ import annotations

import asyncio
import heapq
import logging
from collections.abc import Callable
from typing import Any

logger = logging.getLogger(__name__)

#: bucket width in seconds
RESOLUTION = 0.005
"""Bucket width in seconds."""
#: compact when this many cancelled timers are pending and they are over half of all pending
COMPACT_AT = 2048
"""Compact when this many cancelled timers are pending and they are over half of all."""


class _Bucket:
    __slots__ = ("live", "tick", "timers")

    def __init__(self, tick: int) -> None:
        self.tick = tick
        self.timers: list[Timer] = []
        self.live = 0


class Timer:
    """One scheduled callback; ``cancel()`` is idempotent (like ``asyncio.TimerHandle``)."""

    __slots__ = ("args", "bucket", "callback", "wheel")

    def __init__(self, wheel: TimerWheel, bucket: _Bucket, callback: Callable[..., Any], args: tuple) -> None:
        self.wheel = wheel
        """The TimerWheel the timer belongs to."""
        self.bucket = bucket
        """The bucket (tick) it is filed under."""
        self.callback: Callable[..., Any] | None = callback
        """The function to call; None once cancelled or fired."""
        self.args = args
        """Positional arguments for ``callback``."""

    def cancel(self) -> None:
        """Cancel the timer (nothing happens when already cancelled); may compact the wheel."""
        if self.callback is None:
            return
        self.callback = None
        self.args = ()
        wheel = self.wheel
        bucket = self.bucket
        bucket.live -= 1
        wheel._cancelled += 1
        if wheel._firing:
            return
        if bucket.live == 0 and wheel._armed == bucket.tick:
            wheel._rearm()
        elif wheel._cancelled >= COMPACT_AT and wheel._cancelled * 2 > wheel._pending:
            wheel._compact()

    def cancelled(self) -> bool:
        """True when the timer was cancelled (or has fired)."""
        return self.callback is None


class TimerWheel:
    """Timers bucketed by ``resolution`` on one event loop (see the module docstring)."""

    def __init__(self, loop: asyncio.AbstractEventLoop, resolution: float = RESOLUTION) -> None:
        self._loop = loop
        self._res = resolution
        self._buckets: dict[int, _Bucket] = {}
        self._ticks: list[int] = []          # heap of the keys of _buckets
        self._handle: asyncio.TimerHandle | None = None
        self._armed: int | None = None       # tick the asyncio handle is set for
        self._pending = 0                    # timers in buckets (cancelled ones included)
        self._cancelled = 0                  # cancelled timers still in buckets
        self._closed = False
        self._firing = False

    def __len__(self) -> int:
        """Timers still due to fire."""
        return self._pending - self._cancelled

    def call_later(self, delay: float, callback: Callable[..., Any], *args: Any) -> Timer:
        """Run ``callback(*args)`` after ``delay`` seconds (at most one resolution late)."""
        tick = int((self._loop.time() + delay) / self._res) + 1
        bucket = self._buckets.get(tick)
        if bucket is None:
            bucket = self._buckets[tick] = _Bucket(tick)
            heapq.heappush(self._ticks, tick)
        timer = Timer(self, bucket, callback, args)
        bucket.timers.append(timer)
        bucket.live += 1
        self._pending += 1
        armed = self._armed
        if (armed is None or tick < armed) and not self._firing and not self._closed:
            self._arm(tick)
        return timer

    def close(self) -> None:
        """Drop every timer (none fires afterwards)."""
        self._closed = True
        if self._handle is not None:
            self._handle.cancel()
        self._handle = self._armed = None
        for bucket in self._buckets.values():
            for timer in bucket.timers:
                timer.callback = None
        self._buckets.clear()
        self._ticks.clear()
        self._pending = self._cancelled = 0

    def _arm(self, tick: int) -> None:
        if self._handle is not None:
            self._handle.cancel()
        self._armed = tick
        self._handle = self._loop.call_at(tick * self._res, self._fire)

    def _rearm(self) -> None:
        """Arm for the earliest bucket with a live timer (dropping dead ones on the way)."""
        ticks = self._ticks
        buckets = self._buckets
        while ticks:
            bucket = buckets[ticks[0]]
            if bucket.live > 0:
                break
            heapq.heappop(ticks)
            del buckets[bucket.tick]
            self._pending -= len(bucket.timers)
            self._cancelled -= len(bucket.timers)
        if not ticks or self._closed:
            if self._handle is not None:
                self._handle.cancel()
            self._handle = self._armed = None
        elif self._armed != ticks[0]:
            self._arm(ticks[0])

    def _fire(self) -> None:
        armed = self._armed or 0
        self._handle = self._armed = None
        limit = max(armed, int(self._loop.time() / self._res))
        self._firing = True
        try:
            self._run_due(limit)
        finally:
            self._firing = False
        self._rearm()

    def _run_due(self, limit: int) -> None:
        ticks = self._ticks
        buckets = self._buckets
        while ticks and ticks[0] <= limit:
            bucket = buckets.pop(heapq.heappop(ticks))
            self._pending -= len(bucket.timers)
            for timer in bucket.timers:
                callback = timer.callback
                if callback is None:
                    self._cancelled -= 1
                    continue
                timer.callback = None
                try:
                    callback(*timer.args)
                except Exception:
                    logger.exception("timer callback %r failed", callback)
                if self._closed:
                    return

    def _compact(self) -> None:
        """Forget cancelled timers (and buckets left empty)."""
        buckets = self._buckets
        for tick in list(buckets):
            bucket = buckets[tick]
            if bucket.live:
                bucket.timers = [t for t in bucket.timers if t.callback is not None]
            else:
                del buckets[tick]
        self._ticks = list(buckets)
        heapq.heapify(self._ticks)
        self._pending = sum(len(b.timers) for b in buckets.values())
        self._cancelled = 0
        self._rearm()
