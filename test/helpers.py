"""Shared test helpers: free loopback ports, the embedded server as a subprocess, sipp runs, and a
self-signed TLS certificate."""
from __future__ import annotations

import os
import socket
import ssl
import subprocess
import sys
import tempfile
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


def self_signed_cert(directory: Path) -> tuple[Path, Path]:
    """A self-signed EC certificate for localhost / 127.0.0.1 made with the openssl CLI, written
    into `directory`: (cert.pem, key.pem)."""
    cert, key = directory / "cert.pem", directory / "key.pem"
    subprocess.run(
        ["openssl", "req", "-x509", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1",
         "-nodes", "-days", "2", "-subj", "/CN=localhost",
         "-addext", "subjectAltName=DNS:localhost,IP:127.0.0.1",
         "-keyout", str(key), "-out", str(cert)],
        check=True, capture_output=True, timeout=60)
    return cert, key


def tls_contexts(cert: Path, key: Path) -> tuple[ssl.SSLContext, ssl.SSLContext]:
    """(server, client) SSL contexts for that certificate; the client one verifies it."""
    server_ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    server_ctx.load_cert_chain(cert, key)
    return server_ctx, ssl.create_default_context(cafile=str(cert))


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


def _listens(pid: int, port: int) -> bool:
    """Does process ``pid`` have a TCP socket listening on ``port`` (Linux /proc)?"""
    inodes = set()
    with open("/proc/net/tcp") as f:
        for line in f.readlines()[1:]:
            fields = line.split()
            if fields[3] == "0A" and int(fields[1].rsplit(":", 1)[1], 16) == port:   # 0A: LISTEN
                inodes.add(fields[9])
    if not inodes:
        return False
    try:
        fds = os.listdir(f"/proc/{pid}/fd")
    except OSError:
        return False
    for fd in fds:
        try:
            link = os.readlink(f"/proc/{pid}/fd/{fd}")
        except OSError:
            continue
        if link.startswith("socket:[") and link[8:-1] in inodes:
            return True
    return False


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
        # a file of its own: a server that failed to start must not overwrite another's log
        fd, name = tempfile.mkstemp(prefix=f"drachtio-server-{self.admin_port}-", suffix=".log",
                                    dir=os.environ.get("TMPDIR", "/tmp"))
        self.log_path = Path(name)
        self._log = os.fdopen(fd, "wb")
        self.proc = subprocess.Popen(args, stdout=self._log, stderr=subprocess.STDOUT, env=env)
        try:
            self._wait_started()
        except (TimeoutError, RuntimeError):
            self.stop()
            raise

    def _wait_started(self, timeout: float = 10.0) -> None:
        """Until this process listens on the admin port; fails at once (with the log) if it exited.

        Asking the kernel which process listens (not just whether something accepts) means a
        server that lost its port to another process is never taken for a running one."""
        deadline = time.monotonic() + timeout
        while self.proc.poll() is None:
            if _listens(self.proc.pid, self.admin_port):
                return
            if time.monotonic() > deadline:
                raise TimeoutError(f"server not listening on {LOOPBACK}:{self.admin_port} after "
                                   f"{timeout}s:\n{self.log()[-2000:]}")
            time.sleep(0.02)  # polling for a port the server binds; there is no event to wait on
        raise RuntimeError(f"server exited with {self.proc.returncode}:\n{self.log()[-2000:]}")

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

    def wait_listening(self, timeout: float = 5.0) -> None:
        """Block until sipp has bound its port (a UAS must be listening before it is called)."""
        kind = socket.SOCK_DGRAM if self.args[self.args.index("-t") + 1].startswith("u") else socket.SOCK_STREAM
        deadline = time.monotonic() + timeout
        while True:
            with socket.socket(socket.AF_INET, kind) as s:
                try:
                    s.bind((LOOPBACK, self.port))
                except OSError:
                    return  # taken: sipp has it
            if self.proc.poll() is not None or time.monotonic() > deadline:
                self.stop()     # output() reads to EOF: sipp must be gone first
                raise RuntimeError(f"sipp did not start listening on {self.port}: {self.output()}")
            time.sleep(0.01)  # polling for a port sipp binds; there is no event to wait on

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
