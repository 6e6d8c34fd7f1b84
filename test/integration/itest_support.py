"""Helpers for the end-to-end tests: waiting on callbacks or Futures in either API style, SDP,
thread-leak checks, and the FarEnd wrapper of a sipp run.

They live here, not in conftest.py, so test modules can import them by a name no other test
directory uses: ``from conftest import ...`` picks whichever conftest pytest loaded last, which
breaks as soon as one run spans test/integration and test/server.
"""
from __future__ import annotations

import concurrent.futures
import contextlib
import queue
import re
import threading
import time
from collections.abc import Callable, Iterator
from typing import Any

from helpers import ServerProcess, Sipp

WAIT = 8.0  # seconds any single step may take before the test fails

# The app's SDP; sipp scenarios recognise it by its session name.
SDP = ("v=0\r\no=- 1 1 IN IP4 127.0.0.1\r\ns=drachtio-itest\r\nc=IN IP4 127.0.0.1\r\nt=0 0\r\n"
       "m=audio 40000 RTP/AVP 0\r\na=rtpmap:0 PCMU/8000\r\na=sendrecv\r\n")

STYLES = ["callback", "future"]


# -- callback or Future ------------------------------------------------------------------------

class Callback:
    """A `callback(err, *results)` that the test thread can wait on like a Future."""

    def __init__(self) -> None:
        self._done = threading.Event()
        self.err: BaseException | None = None
        self.results: tuple[Any, ...] = ()
        self.calls = 0

    def __call__(self, err: BaseException | None, *results: Any) -> None:
        self.calls += 1
        if self._done.is_set():
            return
        self.err, self.results = err, results
        self._done.set()

    def wait(self, timeout: float = WAIT) -> None:
        if not self._done.wait(timeout):
            raise TimeoutError(f"callback not called within {timeout}s")

    def result(self, timeout: float = WAIT) -> Any:
        self.wait(timeout)
        if self.err is not None:
            raise self.err
        return self.results[0] if len(self.results) == 1 else self.results

    def exception(self, timeout: float = WAIT) -> BaseException | None:
        self.wait(timeout)
        return self.err


def camel(opts: dict[str, Any]) -> dict[str, Any]:
    """PEP 8 option keys -> the JS keys a porting user would write (local_sdp -> localSdp)."""
    return {re.sub(r"_([a-z])", lambda m: m.group(1).upper(), k): v for k, v in opts.items()}


def invoke(style: str, fn: Callable[..., Any], *args: Any, opts: dict[str, Any] | None = None) -> Any:
    """Call an async API method in `style`; returns something with .result()/.exception().

    callback: fn(*args, {camelCase opts}, cb) (opts left out when None); future: fn(*args, **opts)
    and the returned value must be a concurrent.futures.Future.
    """
    if style == "callback":
        cb = Callback()
        if opts is None:
            fn(*args, cb)
        else:
            fn(*args, camel(opts), cb)
        return cb
    fut = fn(*args, **(opts or {}))
    assert isinstance(fut, concurrent.futures.Future), f"{fn.__name__} returned {fut!r}, not a Future"
    return fut


def complete(style: str, then: Callable[..., Any], fn: Callable[..., Any], *args: Any,
             opts: dict[str, Any] | None = None) -> None:
    """Call an async method and run `then(err, result)` where a user of that style would.

    callback: `then` is (part of) the callback itself; future: the caller blocks on .result()
    (allowed in handlers, DESIGN.md rule 3) and then runs `then` on the same thread.
    """
    if style == "callback":
        def cb(err: BaseException | None, *results: Any) -> None:
            then(err, results[0] if len(results) == 1 else (results or None))
        if opts is None:
            fn(*args, cb)
        else:
            fn(*args, camel(opts), cb)
        return
    try:
        result = fn(*args, **(opts or {})).result(WAIT)
    except Exception as exc:  # noqa: BLE001 - handed to `then` like a callback's err
        then(exc, None)
        return
    then(None, result)


def get(q: queue.Queue, what: str, timeout: float = WAIT) -> Any:
    """Next item of `q`, failing the test with `what` if nothing arrives in time."""
    try:
        return q.get(timeout=timeout)
    except queue.Empty:
        raise AssertionError(f"timed out after {timeout}s waiting for {what}") from None


# -- threads -----------------------------------------------------------------------------------

@contextlib.contextmanager
def no_leaked_threads(timeout: float = 5.0) -> Iterator[None]:
    """Fail if a thread started inside the block is still alive `timeout` s after it ends."""
    before = set(threading.enumerate())
    yield
    new = [t for t in threading.enumerate() if t not in before]
    deadline = time.monotonic() + timeout
    for t in new:
        t.join(max(0.0, deadline - time.monotonic()))
    alive = [f"{t.name} (daemon={t.daemon})" for t in new if t.is_alive()]
    assert not alive, f"threads left running after disconnect: {alive}"


class FarEnd:
    """A running sipp with the test's own Call-ID prefix; `expect_success()` checks its exit."""

    def __init__(self, server: ServerProcess | None, sipp: Sipp, call_id_prefix: str) -> None:
        self.server = server
        self.sipp = sipp
        self.port = sipp.port
        self.call_id_prefix = call_id_prefix

    def expect_success(self, timeout: float = 20.0) -> None:
        rc = self.sipp.wait(timeout)
        if rc != 0:
            log = self.server.log()[-6000:] if self.server else ""
            raise AssertionError(f"sipp {' '.join(self.sipp.args)} exited {rc}\n{self.sipp.report()}"
                                 f"\n--- server log (tail) ---\n{log}")
