"""Shared test helpers: free loopback ports, the embedded server as a subprocess, sipp runs, and a
self-signed TLS certificate.

The machinery lives in drachtio_srf.testing (what users get with the pytest plugin); the names
here are kept for the project's tests and bind sipp scenario names to test/scenarios/."""
from __future__ import annotations

import socket
import ssl
import subprocess
import time
from pathlib import Path

from drachtio_srf.testing.ports import LOOPBACK, free_port
from drachtio_srf.testing.procnet import socket_bound
from drachtio_srf.testing.server_process import DEFAULT_SECRET as SECRET
from drachtio_srf.testing.server_process import ServerProcess
from drachtio_srf.testing.sipp import Sipp as _Sipp

HERE = Path(__file__).resolve().parent
SCENARIOS = HERE / "scenarios"


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
    """Does process ``pid`` have a TCP socket listening on ``port``?"""
    return socket_bound(pid, port, "tcp")


class Sipp(_Sipp):
    """drachtio_srf.testing.Sipp with relative scenario names looked up in test/scenarios/."""

    def __init__(self, target_port: int | str | None, *, scenario: str = "uac", **kwargs: object) -> None:
        kwargs.setdefault("scenario_dir", SCENARIOS)
        super().__init__(target_port, scenario=scenario, **kwargs)  # type: ignore[arg-type]


__all__ = ["HERE", "LOOPBACK", "SCENARIOS", "SECRET", "ServerProcess", "Sipp", "free_port",
           "self_signed_cert", "tls_contexts", "wait_for_tcp"]
