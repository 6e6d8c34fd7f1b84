"""EXPERIMENT ONLY, never for real apps: run the dispatcher's tasks on the thread that submits
them when that is a connection reader, i.e. run user code on the reader as Node's single event
loop does.

This breaks the library's threading contract (DESIGN.md rules 1 and 3: a handler that blocks on
a Future would deadlock the reader; rule 5's holds are bypassed). It exists so that
``app_cpu_bench.py --inline-experiment`` can show how much of the app's CPU per call is the
cost of handing work from the reader to a worker thread, with everything else unchanged.
"""
from __future__ import annotations

import logging
import threading
from collections.abc import Callable
from typing import Any

from drachtio_srf import dispatch

logger = logging.getLogger("benchmarks.inline_experiment")


def install() -> None:
    """Patch Dispatcher._submit: tasks submitted from a reader thread (recognised by the
    ``<name>-reader-<peer>`` thread name transport.Connection gives it) run at once, inline."""
    original = dispatch.Dispatcher._submit

    def submit(self: dispatch.Dispatcher, key: Any, fn: Callable[..., Any], args: tuple[Any, ...],
               kwargs: dict[str, Any]) -> bool:
        if "-reader-" not in threading.current_thread().name:
            return original(self, key, fn, args, kwargs)
        try:
            fn(*args, **kwargs)
        except BaseException:
            logger.exception("inline task %r raised", fn)
        return True

    dispatch.Dispatcher._submit = submit  # type: ignore[method-assign]
