"""ServerProcess: the command it runs, its readiness, and a real drachtio-server when present."""
from __future__ import annotations

import shutil
import socket
import sys
from pathlib import Path

import pytest

from drachtio_srf.testing import ServerProcess
from drachtio_srf.testing.server_process import SERVER_ENV


def test_server_command_comes_from_the_environment(monkeypatch):
    """$DRACHTIO_TEST_SERVER replaces the embedded server's command; the options follow it."""
    monkeypatch.setenv(SERVER_ENV, f"{sys.executable} -m drachtio_srf.server --cdrs")
    with ServerProcess() as server:
        argv = Path(f"/proc/{server.proc.pid}/cmdline").read_bytes().split(b"\0")
        assert b"--cdrs" in argv
        assert argv[argv.index(b"--port") + 1] == str(server.admin_port).encode()
        assert server.running()


def test_a_server_that_cannot_start_fails_at_once_with_its_log():
    """Its admin port taken by another process: the server exits, and the error says why (never
    mistaking the other process's socket for the server being ready)."""
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        with pytest.raises(RuntimeError, match=r"(?s)server exited with \d+:\n.*in use"):
            ServerProcess(admin_port=taken.getsockname()[1])


REAL = shutil.which("drachtio")


@pytest.mark.skipif(REAL is None, reason="no real drachtio-server (`drachtio`) on PATH to compare with")
def test_same_call_through_a_real_drachtio_server(monkeypatch, tmp_path, srf_factory, sip_peer):
    """The fixtures work unchanged with drachtio-server: DRACHTIO_TEST_SERVER='drachtio -f FILE'.

    drachtio-server 1.0 reads a configuration file even with ``--noconfig`` and needs an
    ``<admin>`` element there; the command-line options then override its ports."""
    conf = tmp_path / "drachtio.conf.xml"
    conf.write_text('<drachtio>\n  <admin port="9022" secret="cymru">127.0.0.1</admin>\n'
                    "  <logging>\n    <console/>\n    <loglevel>info</loglevel>\n  </logging>\n"
                    "</drachtio>\n")
    monkeypatch.setenv(SERVER_ENV, f"{REAL} -f {conf}")
    with ServerProcess() as server:
        srf = srf_factory(server)
        srf.invite(lambda req, res: srf.create_uas(req, res, local_sdp=sip_peer.sdp))
        call = sip_peer.invite(server.sip_uri)
        assert call.status == 200
        assert call.bye().status == 200
