"""Shared test helpers: free loopback ports, the embedded server as a subprocess, and sipp runs."""
from __future__ import annotations

import os
import socket
import subprocess
import sys
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
SCENARIOS = HERE / "scenarios"
SECRET = "cymru"
LOOPBACK = "127.0.0.1"


def free_port() -> int:
    """A port number that is free on 127.0.0.1 for both UDP and TCP right now."""
    for _ in range(200):
        with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as t:
            t.bind((LOOPBACK, 0))
            port = t.getsockname()[1]
            with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as u:
                try:
                    u.bind((LOOPBACK, port))
                except OSError:
                    continue
            return port
    raise RuntimeError("no free port found")


def wait_for_tcp(port: int, timeout: float = 10.0) -> None:
    """Block until something accepts TCP connections on 127.0.0.1:port."""
    deadline = time.monotonic() + timeout
    while True:
        try:
            with socket.create_connection((LOOPBACK, port), timeout=0.5):
                return
        except OSError:
            if time.monotonic() > deadline:
                raise TimeoutError(f"nothing listening on {LOOPBACK}:{port} after {timeout}s")
            time.sleep(0.02)  # polling a port that is not open yet; no event to wait on


class ServerProcess:
    """`python -m drachtio_srf.server` on free ports, as a user would start it."""

    def __init__(self, *, secret: str = SECRET, loglevel: str = "info", extra: list[str] | None = None,
                 admin_port: int | None = None, sip_port: int | None = None):
        # Given ports restart a server where a stopped one was (the apps reconnect to it).
        self.admin_port = admin_port or free_port()
        self.sip_port = sip_port or free_port()
        self.secret = secret
        args = [sys.executable, "-m", "drachtio_srf.server", "--address", LOOPBACK,
                "--port", str(self.admin_port), "--secret", secret,
                "--contact", f"sip:{LOOPBACK}:{self.sip_port};transport=udp,tcp",
                "--loglevel", loglevel] + (extra or [])
        env = dict(os.environ)
        env["PYTHONPATH"] = str(HERE.parent) + os.pathsep + env.get("PYTHONPATH", "")
        self.log_path = Path(os.environ.get("TMPDIR", "/tmp")) / f"drachtio-server-{self.admin_port}.log"
        self._log = open(self.log_path, "wb")  # noqa: SIM115 - closed in stop()
        self.proc = subprocess.Popen(args, stdout=self._log, stderr=subprocess.STDOUT, env=env)
        try:
            wait_for_tcp(self.admin_port)
        except TimeoutError:
            self.stop()
            raise

    def log(self) -> str:
        return self.log_path.read_text(errors="replace")

    def stop(self) -> None:
        if self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(5)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(5)
        self._log.close()


class Sipp:
    """One sipp far end on loopback, run in the background; `wait()` gives its exit code."""

    def __init__(self, target_port: int | None, *, scenario: str = "uac", calls: int = 1,
                 transport: str = "u1", extra: list[str] | None = None, service: str = "service"):
        self.port = free_port()
        args = ["sipp", "-i", LOOPBACK, "-p", str(self.port), "-m", str(calls), "-t", transport,
                "-timeout", "30s", "-timeout_error", "-nostdin"]
        if scenario in ("uac", "uas"):
            args += ["-sn", scenario]
        else:
            path = Path(scenario)
            if not path.is_absolute():
                path = SCENARIOS / scenario
            args += ["-sf", str(path)]
        args += ["-s", service] + (extra or [])
        if target_port is not None:
            args.append(f"{LOOPBACK}:{target_port}")
        self.args = args
        self.proc = subprocess.Popen(args, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                                     stdin=subprocess.DEVNULL, cwd=os.environ.get("TMPDIR", "/tmp"))

    def wait(self, timeout: float = 40.0) -> int:
        try:
            self.proc.wait(timeout)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait(5)
        return self.proc.returncode

    def output(self) -> str:
        assert self.proc.stdout is not None
        return self.proc.stdout.read().decode(errors="replace")

    def stop(self) -> None:
        if self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait(5)
