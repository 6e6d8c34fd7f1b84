"""Connection, open_connection, Reconnector and Listener against real loopback sockets."""
from __future__ import annotations

import queue
import socket
import ssl
import threading
from pathlib import Path

import pytest
from helpers import LOOPBACK, self_signed_cert
from helpers import tls_contexts as make_tls_contexts

from drachtio_srf import wire
from drachtio_srf.errors import ConnectionLostError, DrachtioError, NotConnectedError
from drachtio_srf.transport import (
    Connection,
    Listener,
    Reconnector,
    backoff_delay,
    open_connection,
)

WAIT = 5.0
MODULE_THREAD_PREFIXES = ("drachtio", "test-conn", "test-reconnect", "test-listener")


def _module_threads() -> set[threading.Thread]:
    return {t for t in threading.enumerate() if t.name.startswith(MODULE_THREAD_PREFIXES)}


class Recorder:
    """on_frame / on_close handlers that record what the reader thread delivered."""

    def __init__(self) -> None:
        self.frames: queue.Queue[str] = queue.Queue()
        self.closes: queue.Queue[BaseException | None] = queue.Queue()
        self.close_calls = 0
        self.frame_threads: set[str] = set()

    def on_frame(self, conn: Connection, payload: str) -> None:
        self.frame_threads.add(threading.current_thread().name)
        self.frames.put(payload)

    def on_close(self, conn: Connection, err: BaseException | None) -> None:
        self.close_calls += 1
        self.closes.put(err)


@pytest.fixture
def server_socket():
    srv = socket.socket()
    srv.bind((LOOPBACK, 0))
    srv.listen(4)
    yield srv
    srv.close()


@pytest.fixture
def pair(server_socket: socket.socket):
    """(client Connection, server-side raw socket, Recorder), started; cleaned up after."""
    before = _module_threads()
    sock = open_connection(LOOPBACK, server_socket.getsockname()[1], timeout=WAIT)
    peer, _ = server_socket.accept()
    peer.settimeout(WAIT)
    rec = Recorder()
    conn = Connection(sock, on_frame=rec.on_frame, on_close=rec.on_close, name="test-conn")
    conn.start()
    yield conn, peer, rec
    conn.close()
    peer.close()
    assert _module_threads() <= before


def _recv_exactly(sock: socket.socket, n: int) -> bytes:
    data = b""
    while len(data) < n:
        chunk = sock.recv(n - len(data))
        if not chunk:
            break
        data += chunk
    return data


# ---------------------------------------------------------------------------- Connection

def test_frames_split_and_coalesced_are_delivered_in_order(pair) -> None:
    conn, peer, rec = pair
    payloads = [f"{wire.new_id()}|response|abc|OK|{i}|é€" for i in range(5)]
    payloads.append("x" * 10000 + "#|\r\nINVITE sip:a@b SIP/2.0")
    stream = b"".join(wire.encode(p) for p in payloads)
    # Cut inside the length digits, inside a multi-byte character and between frames.
    cuts = [1, 3, 40, 41, 200, 201, len(stream) - 5000, len(stream)]
    start = 0
    for cut in cuts:
        peer.sendall(stream[start:cut])
        start = cut
    got = [rec.frames.get(timeout=WAIT) for _ in payloads]
    assert got == payloads
    assert rec.frame_threads == {f"test-conn-reader-{conn.peer[0]}:{conn.peer[1]}"}
    assert not conn.closed and rec.close_calls == 0


def test_send_frames_the_payload(pair) -> None:
    conn, peer, _ = pair
    payload = f"{wire.new_id()}|authenticate|cymru|"
    conn.send(payload)
    expected = wire.encode(payload)
    assert _recv_exactly(peer, len(expected)) == expected


def test_concurrent_sends_do_not_interleave(pair) -> None:
    conn, peer, _ = pair
    per_thread = 50
    bodies = {t: [f"{t}-{i}|" + "y" * 3000 for i in range(per_thread)] for t in "abcd"}

    def sender(t: str) -> None:
        for body in bodies[t]:
            conn.send(body)

    threads = [threading.Thread(target=sender, args=(t,)) for t in bodies]
    for t in threads:
        t.start()
    decoder = wire.FrameDecoder()
    got: list[str] = []
    while len(got) < per_thread * len(bodies):
        chunk = peer.recv(65536)
        assert chunk, "peer closed early"
        got.extend(decoder.feed(chunk))
    for t in threads:
        t.join(WAIT)
    for t, sent in bodies.items():
        assert [g for g in got if g.startswith(f"{t}-")] == sent


def test_malformed_frame_closes_connection_with_protocol_error(pair) -> None:
    conn, peer, rec = pair
    peer.sendall(wire.encode("good|ping") + b"12x#garbage")
    assert rec.frames.get(timeout=WAIT) == "good|ping"   # frames before the bad bytes still arrive
    err = rec.closes.get(timeout=WAIT)
    assert isinstance(err, wire.WireProtocolError)
    assert conn.closed
    assert peer.recv(100) == b""          # our side really closed the socket
    conn.close()
    assert rec.close_calls == 1
    with pytest.raises(NotConnectedError):
        conn.send("x|ping")


def test_peer_close_reports_once(pair) -> None:
    conn, peer, rec = pair
    peer.close()
    err = rec.closes.get(timeout=WAIT)
    assert isinstance(err, ConnectionLostError) and isinstance(err, DrachtioError)
    conn.join(WAIT)
    conn.close()
    conn.close()
    assert rec.close_calls == 1 and rec.closes.empty()
    with pytest.raises(NotConnectedError):
        conn.send("id|ping")


def test_close_by_us_reports_none_once_and_stops_reader(pair) -> None:
    conn, peer, rec = pair
    reader = [t for t in threading.enumerate() if t.name.startswith("test-conn-reader")]
    assert len(reader) == 1
    conn.close()
    assert rec.closes.get(timeout=WAIT) is None
    assert not reader[0].is_alive()       # close() returns after the reader ended
    conn.close()
    assert rec.close_calls == 1
    assert peer.recv(10) == b""
    with pytest.raises(NotConnectedError):
        conn.send("id|ping")


def test_close_from_on_frame_stops_delivery(server_socket: socket.socket) -> None:
    sock = open_connection(LOOPBACK, server_socket.getsockname()[1])
    peer, _ = server_socket.accept()
    rec = Recorder()

    def on_frame(conn: Connection, payload: str) -> None:
        rec.on_frame(conn, payload)
        conn.close()                       # e.g. authentication refused

    conn = Connection(sock, on_frame=on_frame, on_close=rec.on_close, name="test-conn")
    conn.start()
    peer.sendall(wire.encode("a|response|x|NO|incorrect secret") + wire.encode("b|never"))
    assert rec.frames.get(timeout=WAIT).startswith("a|")
    assert rec.closes.get(timeout=WAIT) is None
    conn.join(WAIT)
    assert rec.frames.empty() and rec.close_calls == 1
    peer.close()


def test_on_frame_exception_is_logged_and_reading_continues(pair, caplog) -> None:
    conn, peer, rec = pair

    def routing(c: Connection, payload: str) -> None:
        if payload == "bad":
            raise RuntimeError("router bug")
        rec.on_frame(c, payload)

    conn._on_frame = routing
    peer.sendall(wire.encode("bad") + wire.encode("fine"))
    assert rec.frames.get(timeout=WAIT) == "fine"
    assert "router bug" in caplog.text
    assert not conn.closed


def test_send_on_unstarted_closed_connection(server_socket: socket.socket) -> None:
    sock = open_connection(LOOPBACK, server_socket.getsockname()[1])
    rec = Recorder()
    conn = Connection(sock, on_frame=rec.on_frame, on_close=rec.on_close)
    conn.close()
    assert rec.closes.get(timeout=WAIT) is None
    with pytest.raises(NotConnectedError):
        conn.send("id|ping")
    with pytest.raises(NotConnectedError):
        conn.start()


def test_open_connection_sets_socket_options(server_socket: socket.socket) -> None:
    sock = open_connection(LOOPBACK, server_socket.getsockname()[1])
    try:
        assert sock.getsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY) != 0
        assert sock.getsockopt(socket.SOL_SOCKET, socket.SO_KEEPALIVE) != 0
        assert sock.gettimeout() is None
    finally:
        sock.close()


def test_open_connection_refused_raises_oserror() -> None:
    port = _closed_port()
    with pytest.raises(ConnectionRefusedError):
        open_connection(LOOPBACK, port, timeout=WAIT)


# ---------------------------------------------------------------------------- Reconnector

def test_backoff_sequence_matches_drachtio_srf() -> None:
    assert [backoff_delay(n) for n in range(1, 6)] == [0.255, 0.433, 0.736, 1.251, 2.126]
    assert [backoff_delay(n) for n in range(6, 9)] == [3.614, 6.143, 10.0]   # capped at 10 s
    assert backoff_delay(500) == 10.0          # no overflow for long outages
    assert backoff_delay(3, max_delay=0.5) == 0.5
    with pytest.raises(ValueError):
        backoff_delay(0)


def test_reconnector_limits() -> None:
    r = Reconnector(LOOPBACK, 1, on_connect=lambda s: None, retry_max_delay=2.0, max_attempts=3)
    assert [r.delay(n) for n in (1, 5, 6, 30)] == [0.255, 2.0, 2.0, 2.0]
    for expected in (0.255, 0.433, 0.736):
        assert r.next_delay() == expected
        r.attempts += 1
    assert r.next_delay() is None              # max_attempts reached
    r.reset()
    assert r.next_delay() == 0.255

    t = Reconnector(LOOPBACK, 1, on_connect=lambda s: None, connect_timeout=1.0)
    t.attempts, t.waited = 3, 0.255 + 0.433 + 0.736
    assert t.next_delay() is None              # summed delays reached connect_timeout


def _closed_port() -> int:
    s = socket.socket()
    s.bind((LOOPBACK, 0))
    port = s.getsockname()[1]
    s.close()
    return port


def test_reconnector_gives_up_after_max_attempts() -> None:
    gave_up: queue.Queue[BaseException | None] = queue.Queue()
    failures: list[int] = []
    r = Reconnector(LOOPBACK, _closed_port(), on_connect=lambda s: s.close(), on_give_up=gave_up.put,
                    initial_delay=0.001, max_attempts=3, name="test-reconnect",
                    on_attempt_failed=lambda n, e: failures.append(n))
    r.start()
    err = gave_up.get(timeout=WAIT)
    assert isinstance(err, ConnectionRefusedError)
    r.cancel()
    assert failures == [1, 2, 3] and r.attempts == 3
    assert not r.active


def test_reconnector_reconnects_when_server_comes_back() -> None:
    before = _module_threads()
    port = _closed_port()
    failed: queue.Queue[int] = queue.Queue()
    connected: queue.Queue[socket.socket] = queue.Queue()
    r = Reconnector(LOOPBACK, port, on_connect=connected.put, initial_delay=0.005, retry_max_delay=0.05,
                    name="test-reconnect", on_attempt_failed=lambda n, e: failed.put(n))
    r.start()
    assert failed.get(timeout=WAIT) == 1      # the server is down: the first attempt fails
    srv = socket.socket()
    srv.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    srv.bind((LOOPBACK, port))
    srv.listen(1)
    try:
        sock = connected.get(timeout=WAIT)
        peer, _ = srv.accept()
        assert sock.getpeername()[1] == port
        assert sock.getsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY) != 0
        r.cancel()
        assert r.attempts >= 2
        r.reset()
        assert r.attempts == 0
        sock.close()
        peer.close()
    finally:
        srv.close()
    assert _module_threads() <= before


def test_reconnector_restarts_from_inside_on_connect(server_socket: socket.socket) -> None:
    # e.g. authentication refused right away: the connection closes while on_connect still runs.
    before = _module_threads()
    connected: queue.Queue[int] = queue.Queue()
    r: Reconnector

    def on_connect(sock: socket.socket) -> None:
        sock.close()
        connected.put(r.attempts)
        if r.attempts == 1:
            r.start()

    r = Reconnector(LOOPBACK, server_socket.getsockname()[1], on_connect=on_connect,
                    initial_delay=0.001, name="test-reconnect")
    r.start()
    assert connected.get(timeout=WAIT) == 1
    assert connected.get(timeout=WAIT) == 2       # backoff counters keep growing until reset()
    r.cancel()
    assert not r.active
    assert _module_threads() <= before


def test_reconnector_cancel_while_waiting() -> None:
    r = Reconnector(LOOPBACK, _closed_port(), on_connect=lambda s: s.close(),
                    initial_delay=30.0, name="test-reconnect")
    r.start()
    r.start()                                   # already running: no second thread
    assert len([t for t in threading.enumerate() if t.name == "test-reconnect"]) == 1
    r.cancel(timeout=WAIT)
    assert not r.active


# ---------------------------------------------------------------------------- TLS and Listener

@pytest.fixture(scope="module")
def cert_files(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    """A self-signed certificate for localhost / 127.0.0.1, made with the openssl CLI."""
    return self_signed_cert(tmp_path_factory.mktemp("tls"))


@pytest.fixture
def tls_contexts(cert_files) -> tuple[ssl.SSLContext, ssl.SSLContext]:
    return make_tls_contexts(*cert_files)   # the client context verifies the certificate


def test_listener_accepts_plain_connection() -> None:
    before = _module_threads()
    accepted: queue.Queue[tuple[socket.socket, tuple[str, int]]] = queue.Queue()
    lst = Listener(LOOPBACK, 0, on_accept=lambda s, a: accepted.put((s, a)), name="test-listener")
    assert lst.port > 0
    client = socket.create_connection((LOOPBACK, lst.port), timeout=WAIT)
    sock, addr = accepted.get(timeout=WAIT)
    assert addr == client.getsockname()
    assert sock.getsockopt(socket.SOL_SOCKET, socket.SO_KEEPALIVE) != 0
    # The accepted socket works as an outbound-mode control connection.
    rec = Recorder()
    conn = Connection(sock, on_frame=rec.on_frame, on_close=rec.on_close, name="test-conn")
    conn.start()
    client.sendall(wire.encode("id|sip|txn|\r\nINVITE sip:x SIP/2.0"))
    assert rec.frames.get(timeout=WAIT).startswith("id|sip|txn|")
    conn.close()
    client.close()
    lst.close()
    lst.close()
    assert lst.closed
    with pytest.raises(OSError):
        socket.create_connection((LOOPBACK, lst.port), timeout=WAIT).close()
    assert _module_threads() <= before


def test_tls_connection_both_ways(tls_contexts) -> None:
    before = _module_threads()
    server_ctx, client_ctx = tls_contexts
    accepted: queue.Queue[socket.socket] = queue.Queue()
    lst = Listener(LOOPBACK, 0, tls=server_ctx, on_accept=lambda s, a: accepted.put(s),
                   name="test-listener")
    client_rec, server_rec = Recorder(), Recorder()
    try:
        sock = open_connection(LOOPBACK, lst.port, tls=client_ctx, server_hostname="localhost",
                               timeout=WAIT)
        assert isinstance(sock, ssl.SSLSocket)
        client = Connection(sock, on_frame=client_rec.on_frame, on_close=client_rec.on_close,
                            name="test-conn")
        client.start()
        server_sock = accepted.get(timeout=WAIT)
        assert isinstance(server_sock, ssl.SSLSocket)
        server = Connection(server_sock, on_frame=server_rec.on_frame, on_close=server_rec.on_close,
                            name="test-conn")
        server.start()
        client.send("m1|authenticate|cymru|")
        assert server_rec.frames.get(timeout=WAIT) == "m1|authenticate|cymru|"
        big = "r1|response|m1|OK|" + "z" * 50000
        server.send(big)
        assert client_rec.frames.get(timeout=WAIT) == big
        client.close()
        assert client_rec.closes.get(timeout=WAIT) is None
        assert isinstance(server_rec.closes.get(timeout=WAIT), ConnectionLostError)
        server.close()
        assert client_rec.close_calls == 1 and server_rec.close_calls == 1
    finally:
        lst.close()
    assert _module_threads() <= before


def test_tls_certificate_is_verified(tls_contexts) -> None:
    server_ctx, _ = tls_contexts
    lst = Listener(LOOPBACK, 0, tls=server_ctx, on_accept=lambda s, a: s.close(), name="test-listener")
    try:
        with pytest.raises(ssl.SSLError):
            open_connection(LOOPBACK, lst.port, tls=ssl.create_default_context(), timeout=WAIT)
    finally:
        lst.close()


def test_reconnector_keeps_tls(tls_contexts) -> None:
    server_ctx, client_ctx = tls_contexts
    accepted: queue.Queue[socket.socket] = queue.Queue()
    lst = Listener(LOOPBACK, 0, tls=server_ctx, on_accept=lambda s, a: accepted.put(s),
                   name="test-listener")
    connected: queue.Queue[socket.socket] = queue.Queue()
    r = Reconnector(LOOPBACK, lst.port, tls=client_ctx, server_hostname="localhost",
                    on_connect=connected.put, initial_delay=0.001, name="test-reconnect")
    try:
        r.start()
        sock = connected.get(timeout=WAIT)
        assert isinstance(sock, ssl.SSLSocket)
        peer = accepted.get(timeout=WAIT)
        sock.sendall(wire.encode("x|ping"))
        assert _recv_exactly(peer, len(wire.encode("x|ping"))) == wire.encode("x|ping")
        sock.close()
        peer.close()
    finally:
        r.cancel()
        lst.close()


def test_listener_survives_failed_tls_handshake(tls_contexts, caplog) -> None:
    server_ctx, client_ctx = tls_contexts
    accepted: queue.Queue[socket.socket] = queue.Queue()
    lst = Listener(LOOPBACK, 0, tls=server_ctx, on_accept=lambda s, a: accepted.put(s),
                   name="test-listener")
    try:
        plain = socket.create_connection((LOOPBACK, lst.port), timeout=WAIT)
        plain.sendall(b"this is not a TLS client hello\r\n\r\n")
        try:
            while plain.recv(4096):   # the server may send a TLS alert, then it must hang up
                pass
        except ConnectionResetError:  # hanging up with our bytes unread resets the connection
            pass
        plain.close()
        good = open_connection(LOOPBACK, lst.port, tls=client_ctx, server_hostname="localhost")
        assert isinstance(accepted.get(timeout=WAIT), ssl.SSLSocket)
        good.close()
        assert "TLS handshake" in caplog.text
    finally:
        lst.close()


def test_the_frames_of_one_read_are_delivered_inside_one_batch(server_socket: socket.socket) -> None:
    # Connection enters its batch scope around the payloads of each read (the dispatcher defers
    # worker wake-ups to the end of it): three frames sent in one write come in one scope.
    events: queue.Queue[str] = queue.Queue()

    class Scope:
        def __enter__(self) -> None:
            events.put("enter")

        def __exit__(self, *exc: object) -> None:
            events.put("exit")

    sock = open_connection(LOOPBACK, server_socket.getsockname()[1], timeout=WAIT)
    peer, _ = server_socket.accept()
    conn = Connection(sock, on_frame=lambda c, p: events.put(p), on_close=lambda c, e: None,
                      name="test-conn", batch=Scope)
    conn.start()
    try:
        peer.sendall(b"".join(wire.encode(f"{i}|ping") for i in range(3)))
        got: list[str] = []
        while got.count("enter") != got.count("exit") or len(got) - 2 * got.count("enter") < 3:
            got.append(events.get(timeout=WAIT))
        # one write of three small frames is one read on loopback; whatever the reads were,
        # every payload is delivered inside a scope
        payloads = [e for e in got if e not in ("enter", "exit")]
        assert payloads == ["0|ping", "1|ping", "2|ping"]
        depth = 0
        for e in got:
            depth += {"enter": 1, "exit": -1}.get(e, 0)
            assert depth in (0, 1) and (depth == 1 or e in ("enter", "exit"))
        assert got[0] == "enter" and got[-1] == "exit"
    finally:
        conn.close()
        peer.close()
