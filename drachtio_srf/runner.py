"""``python -m drachtio_srf.runner -n N app.py [ARGS...]``: run N copies of an app, one per core.

Python runs one core per process; drachtio-server spreads new requests round-robin over the
connections that registered the same route, so N copies of an app connected to one server share
its calls (in-dialog requests stay with the copy that owns the dialog).  Each copy is started as
``python app.py ARGS...`` with ``DRACHTIO_WORKER`` (0..N-1) and ``DRACHTIO_WORKERS`` (N) in its
environment.  SIGINT/SIGTERM are passed on to every copy; the runner exits when all have ended,
with the first non-zero exit status (a copy that fails is restarted with ``--restart``).

Kept small on purpose: for production use a process manager (systemd template units
``app@.service`` with ``Environment=DRACHTIO_WORKER=%i``, supervisord ``numprocs``) works the same.
"""
from __future__ import annotations

import argparse
import logging
import os
import signal
import subprocess
import sys
import time
from collections.abc import Sequence
from types import FrameType

logger = logging.getLogger(__name__)

__all__ = ["Runner", "main"]

RESTART_DELAY = 1.0      # seconds before a failed copy is started again (--restart)


class Runner:
    """Starts and watches N copies of one command."""

    def __init__(self, command: Sequence[str], count: int, *, restart: bool = False) -> None:
        if count < 1:
            raise ValueError(f"need at least one copy, got {count}")
        if not command:
            raise ValueError("no command to run")
        self.command = list(command)
        """The command line each copy runs."""
        self.count = count
        """How many copies to keep running."""
        self.restart = restart
        """Whether to start a copy again when it exits with an error."""
        self.procs: list[subprocess.Popen[bytes] | None] = [None] * count
        """The process of each copy by index (None before it starts)."""
        self.stopping = False
        """Set when stopping, so exiting copies are not restarted."""

    def _start(self, index: int) -> None:
        env = dict(os.environ, DRACHTIO_WORKER=str(index), DRACHTIO_WORKERS=str(self.count))
        self.procs[index] = subprocess.Popen(self.command, env=env)
        logger.info("started copy %d of %d: pid %d", index, self.count, self.procs[index].pid)  # type: ignore[union-attr]

    def stop(self, sig: int = signal.SIGTERM) -> None:
        """Pass ``sig`` to every running copy; they are not restarted any more."""
        self.stopping = True
        for proc in self.procs:
            if proc is not None and proc.poll() is None:
                proc.send_signal(sig)

    def run(self) -> int:
        """Start the copies and wait for all of them; the first non-zero exit status, else 0."""
        for i in range(self.count):
            self._start(i)
        status = 0
        while True:
            running = False
            for i, proc in enumerate(self.procs):
                if proc is None:
                    continue
                rc = proc.poll()
                if rc is None:
                    running = True
                    continue
                logger.info("copy %d (pid %d) exited with %d", i, proc.pid, rc)
                if rc != 0 and status == 0:
                    status = rc
                if rc != 0 and self.restart and not self.stopping:
                    time.sleep(RESTART_DELAY)
                    self._start(i)
                    running = True
                else:
                    self.procs[i] = None
            if not running:
                return status
            time.sleep(0.2)


def main(argv: Sequence[str] | None = None) -> int:
    """Command-line entry point: run the given command in N copies; returns the exit status."""
    p = argparse.ArgumentParser(prog="python -m drachtio_srf.runner", description=__doc__.split("\n\n")[0])
    p.add_argument("-n", "--processes", type=int, default=os.cpu_count() or 1,
                   help="how many copies to run (default: the number of CPUs)")
    p.add_argument("--restart", action="store_true", help="start a copy again when it exits with an error")
    p.add_argument("app", help="the app's script (run with this Python)")
    p.add_argument("args", nargs=argparse.REMAINDER, help="arguments for the app")
    opts = p.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s runner: %(message)s")
    runner = Runner([sys.executable, opts.app, *opts.args], opts.processes, restart=opts.restart)

    def on_signal(sig: int, _frame: FrameType | None) -> None:
        runner.stop(sig)
    signal.signal(signal.SIGINT, on_signal)
    signal.signal(signal.SIGTERM, on_signal)
    return runner.run()


if __name__ == "__main__":
    sys.exit(main())
