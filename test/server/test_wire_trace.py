"""The server's wire trace: every control frame and every SIP message, full text, at DEBUG."""
from __future__ import annotations

import logging

import pytest
from drachtio_ctl import CRLF, ControlClient
from udp_peer import UdpSipPeer

from drachtio_srf import wire
from drachtio_srf.server import EmbeddedServer


class Collect(logging.Handler):
    """Keeps every record it sees (attached straight to a logger, so no other config matters)."""

    def __init__(self) -> None:
        super().__init__(logging.DEBUG)
        self.records: list[logging.LogRecord] = []

    def emit(self, record: logging.LogRecord) -> None:
        self.records.append(record)

    def texts(self) -> list[str]:
        return [r.getMessage() for r in self.records]


@pytest.fixture
def traces():
    handlers = {}
    saved = {}
    for name in ("drachtio_srf.server.trace.control", "drachtio_srf.server.trace.sip"):
        lg = logging.getLogger(name)
        saved[name] = lg.level
        lg.setLevel(logging.DEBUG)
        handlers[name] = Collect()
        lg.addHandler(handlers[name])
    yield handlers
    for name, h in handlers.items():
        lg = logging.getLogger(name)
        lg.removeHandler(h)
        lg.setLevel(saved[name])


def test_control_and_sip_traces_carry_whole_messages(traces):
    long_value = "x" * 1000          # longer than the old 300-character cut
    with EmbeddedServer(admin_port=0, sip_port=0) as server:
        app = ControlClient(server.admin_port)
        peer = UdpSipPeer(server.sip_port)
        try:
            app.authenticate()
            echo = app.request(f"OPTIONS sip:far@127.0.0.1:{peer.port} SIP/2.0{CRLF}"
                               f"X-Long: {long_value}{CRLF}Content-Length: 0{CRLF}{CRLF}")
            assert echo.field(3) == "OK"
            opt = peer.recv(lambda m: m.method == "OPTIONS")
            peer.send("SIP/2.0 200 OK\n" + "".join(f"Via: {v}\n" for v in opt.get_all("via"))
                      + f"From: {opt.get('from')}\nTo: {opt.get('to')};tag=far\n"
                      f"Call-ID: {opt.call_id}\nCSeq: {opt.get('cseq')}\n")
            app.sip_status(200)
        finally:
            app.close()
            peer.close()
    control = traces["drachtio_srf.server.trace.control"].texts()
    sent_frames = [t for t in control if t.startswith("send tcp ")]
    recv_frames = [t for t in control if t.startswith("recv tcp ")]
    assert any("|authenticate|cymru" in t for t in recv_frames)
    assert any(long_value in t and "|sip|" in t for t in recv_frames)
    echo_record = next(t for t in sent_frames if long_value in t)
    head, _, body = echo_record.partition("\n")
    assert f" {len(body.encode())} bytes " in head
    assert wire.parse(body).type == "response"
    sip = traces["drachtio_srf.server.trace.sip"].texts()
    out = next(t for t in sip if t.startswith("send udp 127.0.0.1:") and "OPTIONS sip:far@" in t)
    assert long_value in out and out.split("\n", 1)[0].endswith("bytes")
    assert any(t.startswith(f"recv udp 127.0.0.1:{peer.port} ") and "SIP/2.0 200 OK" in t for t in sip)


def test_traces_cost_nothing_when_off(monkeypatch):
    """With the trace loggers above DEBUG, no record is even formatted."""
    from drachtio_srf.server import control, sip_transport
    calls = []
    monkeypatch.setattr(sip_transport, "trace_message", lambda *a: calls.append(a))
    monkeypatch.setattr(control.ControlConnection, "_trace", lambda *a: calls.append(a))
    loggers = [logging.getLogger(n) for n in ("drachtio_srf.server.trace.control",
                                              "drachtio_srf.server.trace.sip")]
    saved = [lg.level for lg in loggers]
    for lg in loggers:
        lg.setLevel(logging.INFO)
    try:
        with EmbeddedServer(admin_port=0, sip_port=0) as server:
            app = ControlClient(server.admin_port)
            try:
                app.authenticate()
            finally:
                app.close()
    finally:
        for lg, level in zip(loggers, saved):
            lg.setLevel(level)
    assert calls == []
