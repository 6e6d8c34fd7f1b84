"""Scheduling policy of the threads the client starts (reader, workers, timers, watchdog).

On Linux these threads switch themselves to ``SCHED_BATCH`` when they start.  The policy keeps
the thread's nice level and share of the CPU; what it changes is that a thread woken up does not
preempt the thread running on that CPU.  Under the GIL that preemption is pure cost: a worker
woken by the reader would take the reader's CPU only to find the GIL still held, and the reader
woken by the server would do the same to a running worker.  Measured with
``benchmarks/app_cpu_bench.py`` (see benchmarks/README.md): fewer context switches and less CPU
per call at every rate.

``DRACHTIO_SRF_THREAD_POLICY=normal`` in the environment (read at import) or
``set_thread_policy("normal")`` keeps the client threads started from then on ``SCHED_OTHER``.  Threads
started from a handler inherit the policy of the worker that started them (Linux semantics).
Elsewhere, and where the kernel refuses, nothing changes.
"""
from __future__ import annotations

import logging
import os
from typing import Literal

logger = logging.getLogger(__name__)

__all__ = ["ENV_VAR", "apply", "policy", "set_thread_policy"]

ENV_VAR = "DRACHTIO_SRF_THREAD_POLICY"
"""Environment variable read at import: ``batch`` (the default) or ``normal``."""

Policy = Literal["batch", "normal"]

_SUPPORTED = hasattr(os, "sched_setscheduler") and hasattr(os, "SCHED_BATCH")


def _from_env() -> Policy:
    value = os.environ.get(ENV_VAR, "batch").strip().lower()
    if value in ("", "batch"):
        return "batch"
    if value in ("normal", "other"):
        return "normal"
    logger.warning("%s=%r is neither 'batch' nor 'normal'; using 'batch'", ENV_VAR, value)
    return "batch"


_policy: Policy = _from_env()


def policy() -> Policy:
    """The policy the client's threads take when they start."""
    return _policy


def set_thread_policy(value: Policy) -> None:
    """Choose the policy of the client threads started from now on (``"batch"`` or ``"normal"``);
    threads already running keep theirs."""
    global _policy
    if value not in ("batch", "normal"):
        raise ValueError(f"thread policy must be 'batch' or 'normal', got {value!r}")
    _policy = value


def apply() -> bool:
    """Give the calling (client) thread the chosen policy; True when it now runs under
    ``SCHED_BATCH``.  Under ``normal`` a thread that inherited ``SCHED_BATCH`` from the client
    thread that started it (a worker started by the reader before the switch) goes back to
    ``SCHED_OTHER``."""
    global _policy
    if not _SUPPORTED:
        return False
    try:
        if _policy == "batch":
            os.sched_setscheduler(0, os.SCHED_BATCH, os.sched_param(0))
            return True
        if os.sched_getscheduler(0) == os.SCHED_BATCH:
            os.sched_setscheduler(0, os.SCHED_OTHER, os.sched_param(0))
    except OSError as err:      # (a seccomp filter, a container that forbids it)
        logger.info("scheduling policy not changed (%s); client threads keep the one they have",
                    err)
        _policy = "normal"
    return False
