"""examples/simple_uas.py (the port of drachtio-srf's simple-uas.js) against a real call."""
from __future__ import annotations

import logging
import queue

from helpers import LOOPBACK, SECRET
from itest_support import WAIT, get, no_leaked_threads

from drachtio_srf import Srf
from examples import simple_uas


class _Lines(logging.Handler):
    """Collects the example's debug lines, as a user running it would read them."""

    def __init__(self) -> None:
        super().__init__(logging.DEBUG)
        self.lines: queue.Queue = queue.Queue()

    def emit(self, record: logging.LogRecord) -> None:
        self.lines.put(record.getMessage())


def test_simple_uas_answers_holds_unholds(server, sipp):
    """The example answers with the caller's SDP blanked to 0.0.0.0 and User-Agent: simple-uas,
    holds (a=inactive) and unholds (a=sendrecv), and logs 'dialog ended' on the far end's BYE."""
    log = logging.getLogger("drachtio-srf")
    lines = _Lines()
    log.addHandler(lines)
    old_level = log.level
    log.setLevel(logging.DEBUG)
    try:
        with no_leaked_threads():
            srf = Srf()
            connected: queue.Queue = queue.Queue()
            srf.on("connect", lambda err, *rest: connected.put(err))
            simple_uas.install(srf, hold_after=0.1, unhold_after=0.1)
            srf.connect({"host": LOOPBACK, "port": server.admin_port, "secret": SECRET})
            assert get(connected, "the connect event") is None

            caller = sipp("uac-simple-uas.xml", server)
            seen = []
            for expected in ("dialog: ", "successfully put dialog on hold",
                             "successfully took dialog off hold", "dialog ended"):
                while True:
                    line = get(lines.lines, f"the example to log {expected!r} (saw {seen})", WAIT)
                    seen.append(line)
                    if line.startswith(expected):
                        break
            caller.expect_success()
            srf.disconnect()
    finally:
        log.removeHandler(lines)
        log.setLevel(old_level)
    assert '"on_hold"' in seen[0] or '"onHold"' in seen[0]
