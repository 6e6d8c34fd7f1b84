"""examples/asyncio_uas.py against a real call (sipp through the embedded server): an async
INVITE handler awaiting create_uas on the app's loop, and an async destroy listener."""
from __future__ import annotations

import asyncio
import logging
import queue
import threading
from typing import Any

from helpers import LOOPBACK, SECRET
from itest_support import SDP, WAIT, get, no_leaked_threads

from examples import asyncio_uas


class _Lines(logging.Handler):
    def __init__(self) -> None:
        super().__init__(logging.INFO)
        self.lines: queue.Queue = queue.Queue()

    def emit(self, record: logging.LogRecord) -> None:
        self.lines.put((record.getMessage(), record.threadName))


def _expect(lines: _Lines, prefix: str, seen: list[Any]) -> tuple[str, str]:
    while True:
        line = get(lines.lines, f"the example to log {prefix!r} (saw {seen})", WAIT)
        seen.append(line)
        if line[0].startswith(prefix):
            return line


def test_asyncio_example_answers_and_hears_the_bye(server, far_end):
    log = logging.getLogger("asyncio-uas")
    lines = _Lines()
    log.addHandler(lines)
    old_level = log.level
    log.setLevel(logging.INFO)
    holder: dict[str, Any] = {}
    started = threading.Event()
    failure: list[BaseException] = []

    def run() -> None:
        async def go() -> None:
            holder["loop"] = asyncio.get_running_loop()
            holder["stop"] = asyncio.Event()
            started.set()
            await asyncio_uas.serve(LOOPBACK, server.admin_port, SECRET, stop=holder["stop"], sdp=SDP)
        try:
            asyncio.run(go())
        except BaseException as exc:  # noqa: BLE001 - reported by the test
            failure.append(exc)

    try:
        with no_leaked_threads():
            t = threading.Thread(target=run, name="app-loop")
            t.start()
            assert started.wait(WAIT)
            seen: list[Any] = []
            _expect(lines, "connected to ", seen)
            sipp = far_end("uac-answer-bye.xml", server.sip_port)
            answered = _expect(lines, "answered call ", seen)
            ended = _expect(lines, "call ", seen)
            while not ended[0].endswith(" ended"):
                ended = _expect(lines, "call ", seen)
            sipp.expect_success()
            assert answered[1] == ended[1] == "app-loop"     # both coroutines ran on the app's loop
            holder["loop"].call_soon_threadsafe(holder["stop"].set)
            t.join(WAIT)
            assert not t.is_alive() and not failure, failure
    finally:
        log.removeHandler(lines)
        log.setLevel(old_level)
