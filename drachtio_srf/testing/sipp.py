"""Run sipp as a far end on loopback, know when it is ready, and report what it saw.

``Sipp`` starts one sipp process in the background with its SIP messages traced to a file
(``-trace_msg``) and its errors to another (``-trace_err``), so a failing test can show the
exact messages sipp sent and received. Readiness (for a UAS that will be called) is read from
the kernel's socket table, never by binding sipp's port.
"""
from __future__ import annotations

import atexit
import logging
import os
import shutil
import subprocess
import tempfile
import threading
import time
from collections.abc import Sequence
from pathlib import Path

from .ports import LOOPBACK, free_port
from .procnet import socket_bound

logger = logging.getLogger(__name__)

BUILTIN_SCENARIOS = ("uac", "uas", "regexp", "3pcc-C-A", "3pcc-C-B", "3pcc-A", "3pcc-B",
                     "branchc", "branchs", "uac_pcap")
"""Scenarios compiled into sipp, selected with ``-sn``."""

_EXIT_MEANING = {
    0: "all calls succeeded",
    1: "at least one call failed",
    97: "exit on an internal command",
    99: "normal exit without any call processed",
    255: "fatal error (see sipp's output)",
}

_trace_root: Path | None = None
_trace_lock = threading.Lock()


def _trace_dir() -> Path:
    """A fresh directory for one sipp run's trace files, under one per-process root removed
    at exit (runs that are never closed leave nothing behind)."""
    global _trace_root
    with _trace_lock:
        if _trace_root is None:
            _trace_root = Path(tempfile.mkdtemp(prefix="drachtio-sipp-"))
            atexit.register(shutil.rmtree, _trace_root, True)
        return Path(tempfile.mkdtemp(dir=_trace_root))


class SippError(AssertionError):
    """sipp did not do what the test expected; the message holds its output and SIP trace."""


class Sipp:
    """One sipp far end on loopback, running in the background.

    ``target`` is ``"host:port"``, a port on loopback, or None (a UAS waiting to be called).
    ``scenario`` is a built-in name (``"uac"``, ``"uas"``) or an XML file; relative file names
    are looked up in ``scenario_dir`` (default: the current directory).  ``wait()`` gives the
    exit code, ``expect_success()`` raises :class:`SippError` with sipp's messages unless it
    exited 0.
    """

    def __init__(self, target: int | str | None = None, *, scenario: str = "uac", calls: int = 1,
                 transport: str = "u1", extra: Sequence[str] | None = None, service: str = "service",
                 scenario_dir: str | os.PathLike[str] | None = None, port: int | None = None,
                 timeout: str = "30s", sipp: str = "sipp") -> None:
        exe = shutil.which(sipp)
        if exe is None:
            raise FileNotFoundError(f"{sipp!r} not found on PATH (Debian/Ubuntu: apt install sip-tester)")
        self.port = port or free_port()
        """The local SIP port sipp binds (``-p``)."""
        self.transport = transport
        """sipp's ``-t`` transport mode (``u1`` = UDP, one socket; ``t1`` = TCP)."""
        self.dir = _trace_dir()
        """Directory holding sipp's stdout, message trace and error trace for this run."""
        self.messages_path = self.dir / "messages.log"
        """sipp's message trace file (``-message_file``)."""
        self.errors_path = self.dir / "errors.log"
        """sipp's error trace file (``-error_file``)."""
        self.stdout_path = self.dir / "stdout.log"
        """File receiving sipp's standard output and error."""
        args = [exe, "-i", LOOPBACK, "-p", str(self.port), "-m", str(calls), "-t", transport,
                "-timeout", timeout, "-timeout_error", "-nostdin",
                "-trace_msg", "-message_file", str(self.messages_path),
                "-trace_err", "-error_file", str(self.errors_path)]
        if scenario in BUILTIN_SCENARIOS:
            args += ["-sn", scenario]
        else:
            path = Path(scenario)
            if not path.is_absolute():
                path = Path(scenario_dir or ".") / path
            if not path.is_file():
                raise FileNotFoundError(f"sipp scenario not found: {path}")
            args += ["-sf", str(path.resolve())]
        args += ["-s", service, *(extra or [])]
        if target is not None:
            args.append(f"{LOOPBACK}:{target}" if isinstance(target, int) else str(target))
        self.args = args
        """The full sipp command line."""
        self._stdout = open(self.stdout_path, "wb")  # noqa: SIM115 - closed in stop()
        logger.debug("starting %s", " ".join(args))
        self.proc = subprocess.Popen(args, stdout=self._stdout, stderr=subprocess.STDOUT,
                                     stdin=subprocess.DEVNULL, cwd=self.dir)
        """The running sipp process."""

    # -- lifecycle -------------------------------------------------------------------------------

    def wait_listening(self, timeout: float = 10.0) -> None:
        """Block until sipp holds its SIP port (a UAS must be bound before it is called).

        Reads the kernel's socket table for a socket of this sipp process on its port; a
        probe that binds the port itself would make sipp fail to start if it won the race.
        """
        proto = "udp" if self.transport.startswith("u") else "tcp"
        deadline = time.monotonic() + timeout
        while not socket_bound(self.proc.pid, self.port, proto):
            if self.proc.poll() is not None or time.monotonic() > deadline:
                self.stop()
                state = (f"exited {self.proc.returncode}" if self.proc.returncode is not None
                         else f"not bound after {timeout}s")
                raise SippError(f"sipp did not start listening on {proto} {self.port} ({state})\n"
                                + self.report())
            time.sleep(0.01)  # polling the socket table: the kernel offers no event for a bind

    wait_ready = wait_listening
    """Alias of :meth:`wait_listening`: block until sipp holds its SIP port."""

    def wait(self, timeout: float = 40.0) -> int:
        """Wait for sipp to exit (killing it after ``timeout`` s); its exit code."""
        try:
            self.proc.wait(timeout)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait(5)
        self._stdout.close()
        return self.proc.returncode

    def expect_success(self, timeout: float = 20.0, *, context: str = "") -> None:
        """Wait for sipp to exit and raise :class:`SippError` with its output and SIP messages
        unless every call succeeded (exit code 0). ``context`` is appended (e.g. a server log)."""
        rc = self.wait(timeout)
        if rc != 0:
            meaning = _EXIT_MEANING.get(rc, "killed or crashed" if rc < 0 else "unknown")
            raise SippError(f"sipp exited {rc} ({meaning}): {' '.join(self.args)}\n"
                            + self.report() + (f"\n{context}" if context else ""))

    def stop(self) -> None:
        """Kill sipp if it still runs (the trace files stay readable)."""
        if self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait(5)
        self._stdout.close()

    def close(self) -> None:
        """Stop sipp and delete its trace files."""
        self.stop()
        shutil.rmtree(self.dir, ignore_errors=True)

    def __enter__(self) -> Sipp:  # noqa: PYI034 - Python 3.10 has no typing.Self
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    # -- what sipp saw --------------------------------------------------------------------------

    @staticmethod
    def _read(path: Path) -> str:
        try:
            return path.read_text(errors="replace")
        except OSError:
            return ""

    def output(self) -> str:
        """What sipp printed (its final statistics screen and fatal errors)."""
        return self._read(self.stdout_path)

    def messages(self) -> str:
        """Every SIP message sipp sent and received so far, in order (its ``-trace_msg`` file)."""
        return self._read(self.messages_path)

    def errors(self) -> str:
        """sipp's error trace (unexpected messages, timeouts: its ``-trace_err`` file)."""
        return self._read(self.errors_path)

    def report(self, limit: int = 12000) -> str:
        """Output, errors and the tail of the SIP message trace, for a failure message."""
        parts = []
        for title, text in (("sipp errors", self.errors()), ("sipp SIP messages", self.messages()),
                            ("sipp output", self.output())):
            if text.strip():
                if len(text) > limit:
                    text = f"[... {len(text) - limit} characters before ...]\n" + text[-limit:]
                parts.append(f"--- {title} ---\n{text.rstrip()}")
        return "\n".join(parts) if parts else "(sipp wrote nothing)"
