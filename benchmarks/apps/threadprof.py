"""cProfile on every thread of a process, measuring each thread's own CPU time.

``python -m cProfile`` profiles the main thread only and counts wall time, so a thread blocked
in a lock or a socket read looks busy. Here each thread gets its own Profile timed with
``time.thread_time`` (CPU of that thread), started on the thread's first profiled event; the
profiles are merged into one pstats file at the end.
"""
from __future__ import annotations

import cProfile
import pstats
import threading
import time
from typing import Any


class ThreadProfiles:
    """Start profiling this thread now and every thread started from here on."""

    def __init__(self) -> None:
        self.profiles: list[cProfile.Profile] = []
        self.lock = threading.Lock()
        threading.setprofile(self._start)
        self._start()

    def _start(self, *_: Any) -> None:
        prof = cProfile.Profile(time.thread_time)
        with self.lock:
            self.profiles.append(prof)
        prof.enable()

    def dump(self, path: str) -> None:
        """Stop and write the merged stats (threads still running stop being counted)."""
        threading.setprofile(None)  # type: ignore[arg-type]
        stats = None
        with self.lock:
            for prof in self.profiles:
                prof.disable()
                stats = pstats.Stats(prof) if stats is None else stats.add(prof)
        if stats is not None:
            stats.dump_stats(path)
