"""Shared pieces for the embedded server's tests: run `async def` tests, raw SIP peers, a recorder.

`async def test_...` functions are run with `asyncio.run` (no plugin needed). `UdpPeer`/`TcpPeer`
are scriptable far ends on loopback; `Recorder` is a StackHandler that queues what the stack
hands up so tests can wait on it.

Fixtures for the control-protocol tests: `server` (one EmbeddedServer per module, secret "cymru";
a module overrides `server_config` for other settings such as a short T1), `client` (a
ControlClient connected to it) and `app` (that client, authenticated).  A module whose app must
also route a method overrides `app` on top of this one.
"""
from __future__ import annotations

import asyncio
import inspect
from collections.abc import Callable

import pytest
from drachtio_ctl import ControlClient

from drachtio_srf.server import EmbeddedServer
from drachtio_srf.sip import SipMessage

LOOPBACK = "127.0.0.1"


@pytest.hookimpl(tryfirst=True)
def pytest_pyfunc_call(pyfuncitem: pytest.Function) -> bool | None:
    """Run coroutine test functions on a fresh event loop."""
    func = pyfuncitem.obj
    if not inspect.iscoroutinefunction(func):
        return None
    names = pyfuncitem._fixtureinfo.argnames
    kwargs = {name: pyfuncitem.funcargs[name] for name in names}
    asyncio.run(func(**kwargs))
    return True


def sip(text: str) -> bytes:
    """Test SIP text (lines joined with LF in the source) as CRLF bytes, Content-Length filled in."""
    head, _, body = text.strip("\n").partition("\n\n")
    lines = head.split("\n")
    body = body.replace("\n", "\r\n")
    if not any(line.lower().startswith("content-length") for line in lines):
        lines.append(f"Content-Length: {len(body.encode())}")
    return ("\r\n".join(lines) + "\r\n\r\n" + body).encode()


def request(method: str, port: int, *, branch: str = "z9hG4bK-test-1", call_id: str = "call-1@test",
            cseq: int = 1, to_tag: str | None = None, from_port: int = 5999, body: str = "",
            transport: str = "UDP", extra: str = "") -> bytes:
    """A request from a test peer at 127.0.0.1:<from_port> to the stack at <port>."""
    to = f"<sip:service@{LOOPBACK}:{port}>" + (f";tag={to_tag}" if to_tag else "")
    text = (f"{method} sip:service@{LOOPBACK}:{port} SIP/2.0\n"
            f"Via: SIP/2.0/{transport} {LOOPBACK}:{from_port};branch={branch}\n"
            f"From: <sip:peer@{LOOPBACK}:{from_port}>;tag=peer-tag\n"
            f"To: {to}\n"
            f"Call-ID: {call_id}\n"
            f"CSeq: {cseq} {method}\n"
            f"Contact: <sip:peer@{LOOPBACK}:{from_port}>\n"
            f"Max-Forwards: 70\n" + extra)
    if body:
        text += f"Content-Type: application/sdp\n\n{body}"
    return sip(text)


def response_for(req: SipMessage, status: int, reason: str = "Whatever", *, to_tag: str | None = "uas-tag",
                 extra: str = "") -> SipMessage:
    """A complete response to `req`, as the core would hand it to stx.respond()."""
    to = req.get("to") or ""
    if to_tag and ";tag=" not in to:
        to += f";tag={to_tag}"
    lines = [f"SIP/2.0 {status} {reason}"]
    lines += [f"Via: {v}" for v in req.get_all("via")]
    lines += [f"From: {req.get('from')}", f"To: {to}", f"Call-ID: {req.call_id}", f"CSeq: {req.get('cseq')}"]
    if extra:
        lines.append(extra)
    lines.append("Content-Length: 0")
    return SipMessage("\r\n".join(lines) + "\r\n\r\n")


class _Datagrams(asyncio.DatagramProtocol):
    def __init__(self, queue: asyncio.Queue) -> None:
        self.queue = queue

    def datagram_received(self, data: bytes, addr: tuple) -> None:  # type: ignore[override]
        self.queue.put_nowait((data, addr))


class UdpPeer:
    """A raw UDP far end: send bytes to the stack, wait for what comes back."""

    def __init__(self) -> None:
        self.queue: asyncio.Queue = asyncio.Queue()
        self.transport: asyncio.DatagramTransport | None = None
        self.port = 0

    async def start(self) -> UdpPeer:
        loop = asyncio.get_running_loop()
        self.transport, _ = await loop.create_datagram_endpoint(lambda: _Datagrams(self.queue),
                                                                local_addr=(LOOPBACK, 0))
        self.port = self.transport.get_extra_info("sockname")[1]
        return self

    def send(self, data: bytes, port: int) -> None:
        assert self.transport is not None
        self.transport.sendto(data, (LOOPBACK, port))

    async def recv(self, timeout: float = 3.0) -> SipMessage:
        data, _ = await asyncio.wait_for(self.queue.get(), timeout)
        return SipMessage(data)

    async def recv_until(self, pred: Callable[[SipMessage], bool], timeout: float = 3.0) -> SipMessage:
        """Skip messages until one satisfies pred."""
        loop = asyncio.get_running_loop()
        deadline = loop.time() + timeout
        while True:
            msg = await self.recv(max(0.01, deadline - loop.time()))
            if pred(msg):
                return msg

    async def nothing_for(self, seconds: float) -> list[SipMessage]:
        """Everything that arrives within `seconds` (used to assert silence)."""
        got = []
        loop = asyncio.get_running_loop()
        deadline = loop.time() + seconds
        while True:
            left = deadline - loop.time()
            if left <= 0:
                return got
            try:
                got.append(await self.recv(left))
            except asyncio.TimeoutError:
                return got

    def close(self) -> None:
        if self.transport is not None:
            self.transport.close()


class TcpPeer:
    """A raw TCP far end with its own Content-Length framing of what it reads."""

    def __init__(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.reader = reader
        self.writer = writer
        self.port = writer.get_extra_info("sockname")[1]

    @classmethod
    async def connect(cls, port: int) -> TcpPeer:
        reader, writer = await asyncio.open_connection(LOOPBACK, port)
        return cls(reader, writer)

    async def send(self, data: bytes) -> None:
        self.writer.write(data)
        await self.writer.drain()

    async def recv(self, timeout: float = 3.0) -> SipMessage:
        async def read() -> SipMessage:
            head = await self.reader.readuntil(b"\r\n\r\n")
            msg = SipMessage(head)
            length = int(msg.get("content-length") or 0)
            body = await self.reader.readexactly(length) if length else b""
            return SipMessage(head + body)
        return await asyncio.wait_for(read(), timeout)

    async def closed_by_peer(self, timeout: float = 3.0) -> bool:
        data = await asyncio.wait_for(self.reader.read(), timeout)
        return data == b""

    def close(self) -> None:
        self.writer.close()


class Recorder:
    """A StackHandler that records everything; `answer` decides the reply to each new request."""

    def __init__(self, answer: Callable | None = None, cancel_status: int = 200) -> None:
        self.requests: asyncio.Queue = asyncio.Queue()
        self.acks: asyncio.Queue = asyncio.Queue()
        self.cancels: asyncio.Queue = asyncio.Queue()
        self.ack_timeouts: asyncio.Queue = asyncio.Queue()
        self.retransmitted_2xx: asyncio.Queue = asyncio.Queue()
        self.answer = answer
        self.cancel_status = cancel_status

    def on_request(self, stx, msg: SipMessage, source) -> None:
        if stx is None:
            self.acks.put_nowait((msg, source))
            return
        self.requests.put_nowait((stx, msg, source))
        if self.answer is not None:
            self.answer(stx, msg, source)

    def on_cancel(self, invite_stx, cancel: SipMessage, source) -> int:
        self.cancels.put_nowait((invite_stx, cancel, source))
        if invite_stx is None:
            return 481
        if not invite_stx.final_sent:
            invite_stx.respond(response_for(invite_stx.request, 487, "Request Terminated"))
        return self.cancel_status

    def on_ack_timeout(self, stx, response: SipMessage) -> None:
        self.ack_timeouts.put_nowait((stx, response))

    def on_2xx_retransmission(self, response: SipMessage, source) -> None:
        self.retransmitted_2xx.put_nowait((response, source))


async def get(queue: asyncio.Queue, timeout: float = 3.0):
    """Next item of a queue, failing the test after `timeout` seconds."""
    return await asyncio.wait_for(queue.get(), timeout)


async def empty_after(queue: asyncio.Queue, seconds: float) -> bool:
    """True if nothing was put on the queue within `seconds`."""
    try:
        await asyncio.wait_for(queue.get(), seconds)
    except asyncio.TimeoutError:
        return True
    return False


@pytest.fixture
def kit():
    """The helpers above, as one namespace (avoids importing conftest by module name)."""
    import types

    return types.SimpleNamespace(UdpPeer=UdpPeer, TcpPeer=TcpPeer, Recorder=Recorder, request=request,
                                 response_for=response_for, sip=sip, get=get, empty_after=empty_after,
                                 LOOPBACK=LOOPBACK)


@pytest.fixture(scope="module")
def server_config() -> dict:
    """Extra EmbeddedServer settings for the module's `server` (override in a module)."""
    return {}


@pytest.fixture(scope="module")
def server(server_config):
    s = EmbeddedServer(admin_port=0, sip_port=0, secret="cymru", **server_config).start()
    yield s
    s.stop()


@pytest.fixture
def client(server):
    c = ControlClient(server.admin_port)
    yield c
    c.close()


@pytest.fixture
def app(client):
    assert client.authenticate().field(3) == "OK"
    return client
