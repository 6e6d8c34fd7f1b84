"""TLS control connections under real concurrency: sends from other threads while the reader
waits for data. OpenSSL does not allow SSL_read and SSL_write at once on one connection (writes
were lost, at times the process crashed), so Connection serialises them; these tests would see
lost frames or hangs without that."""
from __future__ import annotations

import queue
import socket
import ssl
import threading
from collections.abc import Iterator

import pytest
from helpers import LOOPBACK, self_signed_cert, tls_contexts

from drachtio_srf.transport import Connection, Listener, open_connection

WAIT = 5.0


@pytest.fixture(scope="module")
def contexts(tmp_path_factory: pytest.TempPathFactory) -> tuple[ssl.SSLContext, ssl.SSLContext]:
    return tls_contexts(*self_signed_cert(tmp_path_factory.mktemp("tls-io")))


class Echo:
    """A TLS listener whose connections echo every frame back."""

    def __init__(self, server_ctx: ssl.SSLContext) -> None:
        self.conns: list[Connection] = []
        self.listener = Listener(LOOPBACK, 0, tls=server_ctx, on_accept=self._accept,
                                 name="test-tls-echo")

    def _accept(self, sock: socket.socket, _addr: tuple[str, int]) -> None:
        conn = Connection(sock, on_frame=lambda c, p: c.send(p), on_close=lambda c, e: None,
                          name="test-tls-echo-conn")
        self.conns.append(conn)
        conn.start()

    def close(self) -> None:
        self.listener.close()
        for c in self.conns:
            c.close()


@pytest.fixture
def echo(contexts) -> Iterator[Echo]:
    e = Echo(contexts[0])
    yield e
    e.close()


def _client(echo: Echo, client_ctx: ssl.SSLContext, got: queue.Queue) -> Connection:
    sock = open_connection(LOOPBACK, echo.listener.port, tls=client_ctx, timeout=WAIT)
    conn = Connection(sock, on_frame=lambda c, p: got.put(p), on_close=lambda c, e: got.put(e),
                      name="test-tls-client")
    conn.start()
    return conn


def test_first_frame_after_handshake_is_never_lost(echo, contexts):
    """Twenty fresh connections: the reader starts at once, then the first frame is sent (the
    moment an app authenticates); every one is echoed."""
    for n in range(20):
        got: queue.Queue = queue.Queue()
        conn = _client(echo, contexts[1], got)
        try:
            conn.send(f"m{n}|authenticate|cymru|")
            assert got.get(timeout=WAIT) == f"m{n}|authenticate|cymru|"
        finally:
            conn.close()


def test_sends_from_many_threads_while_reading(echo, contexts):
    """Four threads send 100 frames each (some large) while replies stream in: all 400 echoes
    arrive, each thread's in its own order, and the connection stays open."""
    got: queue.Queue = queue.Queue()
    conn = _client(echo, contexts[1], got)
    frames = {t: [f"{t}-{i}|" + "x" * (20000 if i % 10 == 0 else 10) for i in range(100)]
              for t in "abcd"}
    try:
        threads = [threading.Thread(target=lambda t=t: [conn.send(p) for p in frames[t]],
                                    name=f"test-tls-sender-{t}") for t in frames]
        for t in threads:
            t.start()
        for t in threads:
            t.join(WAIT * 2)
        received = [got.get(timeout=WAIT) for _ in range(400)]
        assert all(isinstance(p, str) for p in received), [p for p in received if not isinstance(p, str)]
        for t, sent in frames.items():
            assert [p for p in received if p.startswith(f"{t}-")] == sent
        assert not conn.closed
    finally:
        conn.close()
