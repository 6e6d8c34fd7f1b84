"""drachtio_srf.testing.Sipp: readiness without racing sipp for its port, failure reports that
show the SIP messages."""
from __future__ import annotations

import socket

import pytest

from drachtio_srf.testing import LOOPBACK
from drachtio_srf.testing.sipp import Sipp, SippError


def test_wait_listening_never_binds_sipps_port(monkeypatch):
    """The readiness check only looks at the socket table: binding sipp's port as a probe made
    sipp exit with "Unable to bind main socket" whenever the probe held it at sipp's start."""
    bound: list[object] = []
    real_bind = socket.socket.bind

    def spy(self: socket.socket, address: object) -> None:
        bound.append(address)
        real_bind(self, address)

    for transport in ("u1", "t1"):
        uas = Sipp(None, scenario="uas", transport=transport)
        try:
            with monkeypatch.context() as patch:
                patch.setattr(socket.socket, "bind", spy)
                uas.wait_listening()
            assert uas.proc.poll() is None, uas.report()
        finally:
            uas.close()
        assert (LOOPBACK, uas.port) not in bound, f"probed sipp's {transport} port by binding it"


def test_ready_uas_takes_a_call_from_a_uac():
    """Once wait_listening returns, a call to it succeeds at once (no retry, no sleep)."""
    with Sipp(None, scenario="uas") as uas:
        uas.wait_listening()
        with Sipp(uas.port, scenario="uac") as uac:
            uac.expect_success()
        uas.expect_success()
        assert "INVITE sip:service@" in uas.messages()


def test_failure_report_shows_the_sip_messages():
    """A failed run raises SippError whose text holds sipp's messages, exit code and command."""
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as silent:
        silent.bind((LOOPBACK, 0))
        port = silent.getsockname()[1]
        with Sipp(port, scenario="uac", extra=["-recv_timeout", "500"]) as uac, \
                pytest.raises(SippError) as info:
            uac.expect_success(20)
    text = str(info.value)
    assert "sipp exited 1" in text
    assert "UDP message sent" in text and f"INVITE sip:service@{LOOPBACK}:{port} SIP/2.0" in text
    assert "-sn uac" in text


def test_wait_listening_fails_fast_when_sipp_exits(tmp_path):
    """A scenario sipp refuses ends the wait at once with sipp's own complaint, not a timeout."""
    bad = tmp_path / "bad.xml"
    bad.write_text("<?xml version='1.0'?><scenario name='bad'><nonsense/></scenario>")
    with Sipp(None, scenario=str(bad)) as uas, pytest.raises(SippError) as info:
        uas.wait_listening(timeout=30)
    assert "exited" in str(info.value)
    assert "nonsense" in str(info.value).lower() or "unknown" in str(info.value).lower()


def test_missing_scenario_file_is_a_clear_error(tmp_path):
    with pytest.raises(FileNotFoundError, match="sipp scenario not found"):
        Sipp(None, scenario="nope.xml", scenario_dir=tmp_path)
