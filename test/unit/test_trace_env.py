"""drachtio_srf.trace: which loggers the environment switches on, and where their records go."""
from __future__ import annotations

import io
import logging
from collections.abc import Iterator

import pytest

from drachtio_srf import trace
from drachtio_srf.trace import CONTROL, SERVER_CONTROL, SERVER_SIP, SIP

ALL = [CONTROL, SIP, SERVER_CONTROL, SERVER_SIP]


@pytest.fixture(autouse=True)
def _restore_loggers() -> Iterator[None]:
    names = ALL + ["drachtio_srf.dialog", "drachtio_srf.srf"]
    saved = {n: (logging.getLogger(n).level, list(logging.getLogger(n).handlers)) for n in names}
    yield
    for n, (level, handlers) in saved.items():
        lg = logging.getLogger(n)
        lg.setLevel(level)
        lg.handlers[:] = handlers


@pytest.mark.parametrize(("env", "expected"), [
    ({}, []),
    ({"DRACHTIO_DEBUG": "0"}, []),
    ({"DRACHTIO_DEBUG": ""}, []),
    ({"DEBUG": "express:*"}, []),
    ({"DRACHTIO_DEBUG": "1"}, ALL),
    ({"DRACHTIO_DEBUG": "true"}, ALL),
    ({"DRACHTIO_DEBUG": "sip"}, [SIP]),
    ({"DRACHTIO_DEBUG": "control, server.sip"}, [CONTROL, SERVER_SIP]),
    ({"DRACHTIO_DEBUG": "server"}, [SERVER_CONTROL, SERVER_SIP]),
    ({"DRACHTIO_DEBUG": "dialog"}, ["drachtio_srf.dialog"]),
    ({"DEBUG": "drachtio:*"}, ALL),
    ({"DEBUG": "*"}, ALL),
    ({"DEBUG": "drachtio:agent"}, [CONTROL, SIP]),
    ({"DEBUG": "express:*,drachtio:server"}, [SERVER_CONTROL, SERVER_SIP]),
    ({"DEBUG": "drachtio:* -drachtio:server*"}, [CONTROL, SIP]),
    ({"DEBUG": "drachtio:srf"}, ["drachtio_srf.srf"]),
])
def test_env_selects_loggers(env, expected):
    """Each spelling turns on exactly the loggers it names, at DEBUG; nothing when unset."""
    names = trace.configure_from_env(env, stream=io.StringIO())
    assert sorted(names) == sorted(expected)
    for name in expected:
        assert logging.getLogger(name).isEnabledFor(logging.DEBUG)


def test_fallback_handler_writes_until_the_app_configures_logging(monkeypatch):
    """With no handler configured the trace goes to the stream; once the app adds a root handler
    (e.g. logging.basicConfig) records go there only, never twice."""
    root = logging.getLogger()
    monkeypatch.setattr(root, "handlers", [])
    stream = io.StringIO()
    trace.enable("sip", stream=stream)
    trace.enable("sip", stream=stream)   # idempotent: still one handler
    log = logging.getLogger(SIP)
    log.debug("%s", trace.format_record("recv", "udp", "127.0.0.1:5080", 5, "INVITE"))
    assert stream.getvalue().count("recv udp 127.0.0.1:5080 5 bytes\nINVITE") == 1

    app_stream = io.StringIO()
    monkeypatch.setattr(root, "handlers", [logging.StreamHandler(app_stream)])
    log.debug("second")
    assert "second" in app_stream.getvalue()
    assert "second" not in stream.getvalue()


def test_client_frame_extracts_sip_of_network_frames(caplog):
    """A ``sip`` frame from the server is traced in full on CONTROL, and its SIP message on SIP as
    received from the network peer the server names."""
    trace.enable(["control", "sip"], stream=io.StringIO())
    sip_text = "OPTIONS sip:a@b SIP/2.0\r\nCall-ID: x\r\n\r\n"
    payload = (f"id1|sip|network|{len(sip_text)}|udp|10.0.0.7|5062|01:02:03.000004|txn1||"
               f"127.0.0.1|5060|\r\n{sip_text}")
    with caplog.at_level(logging.DEBUG, logger="drachtio_srf.trace"):
        trace.client_frame("recv", "tcp", "127.0.0.1:9022", payload)
    got = [(r.name, r.getMessage()) for r in caplog.records]
    assert got == [(CONTROL, f"recv tcp 127.0.0.1:9022 {len(payload)} bytes\n{payload}"),
                   (SIP, f"recv udp 10.0.0.7:5062 {len(sip_text)} bytes\n{sip_text}")]
