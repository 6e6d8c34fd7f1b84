"""The embedded drachtio server (``python -m drachtio_srf.server``) as a child process on free
loopback ports, started the way a user would start it."""
from __future__ import annotations

import logging
import os
import shlex
import subprocess
import sys
import tempfile
import time
from collections.abc import Sequence
from pathlib import Path

from .ports import LOOPBACK, free_port
from .procnet import socket_bound

logger = logging.getLogger(__name__)

DEFAULT_SECRET = "cymru"
"""The shared secret test servers use unless told otherwise (drachtio's customary one)."""

# the directory holding the drachtio_srf package, so the child imports this same copy
_PACKAGE_PARENT = str(Path(__file__).resolve().parents[2])


SERVER_ENV = "DRACHTIO_TEST_SERVER"
"""Environment variable naming another server command for the fixtures (e.g. a real
drachtio-server: ``drachtio -f drachtio.conf.xml``); the options below are appended to it."""


def server_command() -> list[str]:
    """The command starting a test server: ``$DRACHTIO_TEST_SERVER`` (shell-split) if set,
    else the embedded server of this package."""
    value = os.environ.get(SERVER_ENV, "").strip()
    return shlex.split(value) if value else [sys.executable, "-m", "drachtio_srf.server"]


class ServerProcess:
    """A drachtio server in a subprocess, on free ports of 127.0.0.1 (the embedded one unless
    ``command`` or ``$DRACHTIO_TEST_SERVER`` names another, such as a real drachtio-server,
    which takes the same options).

    ``admin_port`` takes the apps' control connections (secret ``secret``), ``sip_port``
    SIP over UDP and TCP. Its output goes to a log file (:meth:`log`). Given ports restart a
    server where a stopped one was, so connected apps can reconnect to it. ``extra`` are
    further command-line options.
    """

    def __init__(self, *, secret: str = DEFAULT_SECRET, loglevel: str = "info",
                 extra: Sequence[str] | None = None, admin_port: int | None = None,
                 sip_port: int | None = None, start_timeout: float = 10.0,
                 command: Sequence[str] | None = None) -> None:
        self.admin_port = admin_port or free_port()
        """TCP port of the control protocol (what ``srf.connect`` needs)."""
        self.sip_port = sip_port or free_port()
        """SIP port (UDP and TCP) far ends send to."""
        self.secret = secret
        """The shared secret apps authenticate with."""
        self.host = LOOPBACK
        """The address both ports are bound to."""
        args = [*(command or server_command()), "--address", LOOPBACK,
                "--port", str(self.admin_port), "--secret", secret,
                "--contact", f"sip:{LOOPBACK}:{self.sip_port};transport=udp,tcp",
                "--loglevel", loglevel, *(extra or [])]
        env = dict(os.environ)
        env["PYTHONPATH"] = _PACKAGE_PARENT + os.pathsep + env.get("PYTHONPATH", "")
        # a log file of its own: a server that failed to start must not overwrite another's
        fd, name = tempfile.mkstemp(prefix=f"drachtio-server-{self.admin_port}-", suffix=".log")
        self.log_path = Path(name)
        """File receiving the server's stdout and stderr."""
        self._log = os.fdopen(fd, "wb")
        logger.debug("starting %s", " ".join(args))
        self.args = args
        """The full command line."""
        self.proc = subprocess.Popen(args, stdout=self._log, stderr=subprocess.STDOUT, env=env,
                                     stdin=subprocess.DEVNULL)
        """The running drachtio server process."""
        try:
            self._wait_started(start_timeout)
        except (TimeoutError, RuntimeError):
            self.stop()
            raise

    @property
    def sip_uri(self) -> str:
        """``sip:127.0.0.1:<sip_port>``: where a far end sends its requests."""
        return f"sip:{LOOPBACK}:{self.sip_port}"

    @property
    def connect_options(self) -> dict[str, object]:
        """``{"host", "port", "secret"}`` for ``Srf.connect``."""
        return {"host": LOOPBACK, "port": self.admin_port, "secret": self.secret}

    def _wait_started(self, timeout: float) -> None:
        """Until this very process listens on the admin port and has its SIP port bound (UDP
        and TCP); fails at once (with the log) if it exited. A real drachtio-server accepts apps
        before its SIP stack is up, and then tells them an empty SIP address: an app must not
        connect that early. Asking the kernel which process listens means a server that lost
        its port to another process is never taken for a running one."""
        deadline = time.monotonic() + timeout
        pid = self.proc.pid
        while self.proc.poll() is None:
            if (socket_bound(pid, self.admin_port, "tcp") and socket_bound(pid, self.sip_port, "udp")
                    and socket_bound(pid, self.sip_port, "tcp")):
                return
            if time.monotonic() > deadline:
                raise TimeoutError(f"server not listening on {LOOPBACK}:{self.admin_port} (admin) "
                                   f"and {self.sip_port} (SIP) after {timeout}s:\n"
                                   f"{self.log()[-2000:]}")
            time.sleep(0.02)  # polling the socket table: the kernel offers no event for a listen
        raise RuntimeError(f"server exited with {self.proc.returncode}:\n{self.log()[-2000:]}")

    def log(self) -> str:
        """Everything the server has logged so far."""
        try:
            return self.log_path.read_text(errors="replace")
        except OSError:
            return ""

    def running(self) -> bool:
        """Is the server process still alive?"""
        return self.proc.poll() is None

    def stop(self) -> None:
        """Terminate the server (kill it after 5 s); the log file stays until :meth:`close`."""
        if self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(5)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(5)
        self._log.close()

    def close(self) -> None:
        """Stop the server and delete its log file."""
        self.stop()
        try:
            self.log_path.unlink()
        except OSError:
            pass

    def __enter__(self) -> ServerProcess:  # noqa: PYI034 - Python 3.10 has no typing.Self
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()
