"""Outbound connections (PROTOCOL.md 2.2 steps 4-8, 6.15): the server dials the app per request.

The "app" here is a raw listening socket speaking the control protocol, so the frames can be
checked as they are; the caller is a raw UDP socket.
"""
from __future__ import annotations

import queue
import re
import socket
import threading

import pytest
from drachtio_ctl import ControlClient

from drachtio_srf.server import EmbeddedServer
from drachtio_srf.server.outbound import (
    OutboundTarget,
    parse_outbound,
    parse_outbound_map,
)
from drachtio_srf.sip import SipMessage

LOOPBACK = "127.0.0.1"


def test_parse_outbound_specs():
    assert parse_outbound("invite=tcp://127.0.0.1:3000") == ("INVITE", OutboundTarget("tcp", LOOPBACK, 3000))
    assert parse_outbound("*=tls://[::1]:3001") == ("*", OutboundTarget("tls", "::1", 3001))
    assert parse_outbound_map({"options": "tcp://h:1"}) == {"OPTIONS": OutboundTarget("tcp", "h", 1)}
    for bad in ("INVITE", "INVITE=http://h:1/route", "INVITE=tcp://h", "=tcp://h:1", "IN VITE=tcp://h:1",
                "INVITE=tcp://h:70000"):
        with pytest.raises(ValueError):
            parse_outbound(bad)


class AppListener:
    """A listening socket standing in for an app in outbound mode; accepted connections queue up."""

    def __init__(self) -> None:
        self.sock = socket.socket()
        self.sock.bind((LOOPBACK, 0))
        self.sock.listen(4)
        self.port = self.sock.getsockname()[1]
        self.accepted: queue.Queue[ControlClient] = queue.Queue()
        threading.Thread(target=self._accept, daemon=True).start()

    def _accept(self) -> None:
        while True:
            try:
                conn, _ = self.sock.accept()
            except OSError:
                return
            client = ControlClient.__new__(ControlClient)     # the raw client, on an accepted socket
            client.sock = conn
            client.frames = queue.Queue()
            client.backlog = []
            client.closed = threading.Event()
            client._reader = threading.Thread(target=client._read, daemon=True)
            client._reader.start()
            self.accepted.put(client)

    def next_connection(self, timeout: float = 5.0) -> ControlClient:
        return self.accepted.get(timeout=timeout)

    def close(self) -> None:
        self.sock.close()


@pytest.fixture
def listener():
    lst = AppListener()
    yield lst
    lst.close()


@pytest.fixture
def caller():
    s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    s.bind((LOOPBACK, 0))
    s.settimeout(5)
    yield s
    s.close()


def recv_final(caller: socket.socket) -> SipMessage:
    while True:
        msg = SipMessage(caller.recv(65536))
        if (msg.status or 0) >= 200:
            return msg


def invite(kit, server: EmbeddedServer, caller: socket.socket, call_id: str) -> bytes:
    data = kit.request("INVITE", server.sip_port, call_id=call_id, from_port=caller.getsockname()[1],
                       branch=f"z9hG4bK-{call_id}")
    caller.sendto(data, (LOOPBACK, server.sip_port))
    return data


def test_request_is_the_first_sip_frame_after_authenticate(kit, listener, caller):
    server = EmbeddedServer(admin_port=0, sip_port=0, outbound={"INVITE": f"tcp://{LOOPBACK}:{listener.port}"})
    with server:
        invite(kit, server, caller, "out-1")
        app = listener.next_connection()
        try:
            reply = app.authenticate()
            assert reply.field(3) == "OK"
            assert reply.field(4) == f"udp/{LOOPBACK}:{server.sip_port},tcp/{LOOPBACK}:{server.sip_port}"
            frame = app.next()
            assert frame.type == "sip" and len(frame.fields) == 13
            assert frame.fields[2] == "network" and frame.fields[9] == ""
            assert frame.fields[10:12] == [LOOPBACK, str(server.sip_port)]
            assert SipMessage(frame.sip).call_id == "out-1"
            txn = frame.fields[8]
            app.respond(txn, "SIP/2.0 486 Busy Here\r\nCall-ID: out-1\r\n\r\n")
            assert recv_final(caller).status == 486
        finally:
            app.close()


def test_wrong_secret_gives_480(kit, listener, caller):
    server = EmbeddedServer(admin_port=0, sip_port=0, outbound={"*": f"tcp://{LOOPBACK}:{listener.port}"})
    with server:
        invite(kit, server, caller, "out-2")
        app = listener.next_connection()
        try:
            assert app.authenticate("wrong").field(3) == "NO"
            assert recv_final(caller).status == 480
            assert app.wait_closed()
        finally:
            app.close()


def test_nobody_listening_gives_480(kit, caller):
    lsock = socket.socket()
    lsock.bind((LOOPBACK, 0))
    port = lsock.getsockname()[1]
    lsock.close()                         # a port with nothing listening: connection refused
    with EmbeddedServer(admin_port=0, sip_port=0, outbound={"INVITE": f"tcp://{LOOPBACK}:{port}"}) as server:
        invite(kit, server, caller, "out-3")
        final = recv_final(caller)
        assert final.status == 480 and final.call_id == "out-3"


def test_cancel_before_authenticate_is_not_delivered(kit, listener, caller):
    server = EmbeddedServer(admin_port=0, sip_port=0, outbound={"INVITE": f"tcp://{LOOPBACK}:{listener.port}"})
    with server:
        data = invite(kit, server, caller, "out-4")
        app = listener.next_connection()
        try:
            cancel = re.sub(rb"INVITE", b"CANCEL", data)
            caller.sendto(cancel, (LOOPBACK, server.sip_port))
            statuses = sorted([recv_final(caller).status, recv_final(caller).status])
            assert statuses == [200, 487]
            assert app.authenticate().field(3) == "OK"
            assert app.wait_closed(), "the server should close a connection whose request is gone"
            got = list(app.backlog)
            while not app.frames.empty():
                got.append(app.frames.get())
            assert [f.type for f in got if f is not None and f.type == "sip"] == []
        finally:
            app.close()
