"""SIP over UDP and TCP on asyncio: the listeners, TCP framing by Content-Length, connection reuse.

This layer moves bytes only. It hands every complete message (a datagram, or one Content-Length
framed message of a TCP stream) to an `on_message(data, source)` callback and sends bytes where it
is told, reusing TCP connections by remote (host, port). It knows nothing about transactions.
"""
from __future__ import annotations

import asyncio
import ipaddress
import logging
import os
import re
import socket
import time
from asyncio.trsock import TransportSocket
from collections.abc import Callable

import attrs

logger = logging.getLogger(__name__)
#: every SIP message sent or received on the network, full text, at DEBUG (the wire trace)
trace = logging.getLogger("drachtio_srf.server.trace.sip")
"""Logger of the SIP wire trace: every message sent or received, full text, at DEBUG."""


def trace_message(direction: str, transport: str, host: str, port: int, data: bytes) -> None:
    """One wire-trace record (callers check ``trace.isEnabledFor(logging.DEBUG)`` first)."""
    trace.debug("%s %s %s:%s %d bytes\n%s", direction, transport, host, port, len(data),
                data.decode("utf-8", "replace"))

ErrorCallback = Callable[[str], None]
"""Called with a description of a failed send."""
MessageCallback = Callable[[bytes, "Source"], None]
"""Called with each message read (raw bytes) and where it came from."""

MAX_HEADER_BYTES = 65536
"""Most bytes a message's header part may have on a TCP stream."""
MAX_BODY_BYTES = 1 << 20
"""Most bytes a message's body may have on a TCP stream."""
CONNECT_TIMEOUT = 10.0
"""Seconds to wait for an outgoing TCP connection to open."""
DNS_TTL = 300.0
"""Seconds a resolved host name is cached."""
#: receive buffer asked for on the UDP socket: a burst of requests must not overflow it while
#: the loop is busy (the Linux default, ~208 KB, holds only ~150 datagrams)
UDP_RCVBUF = 4 * 1024 * 1024
"""Receive buffer asked for on the UDP socket, so that a burst does not overflow it."""
#: seconds between two looks at the kernel's count of datagrams dropped on our UDP socket
DROP_CHECK_INTERVAL = 2.0
"""Seconds between two looks at the kernel's count of datagrams dropped on our UDP socket."""
SO_RCVBUFFORCE = getattr(socket, "SO_RCVBUFFORCE", 33)   # Linux; needs CAP_NET_ADMIN
"""The socket option that sets a receive buffer above the system limit (Linux, CAP_NET_ADMIN)."""


@attrs.define(slots=True)
class Source:
    """Where a message came from, and so where replies to it go back (same TCP connection)."""

    transport: str
    """``'udp'`` or ``'tcp'``."""
    address: str
    """The sender's IP address."""
    port: int
    """The sender's port."""
    local: tuple[str, int]
    """Our (host, port) the message arrived on."""
    _conn: TcpConnection | None = attrs.field(default=None, eq=False, repr=False)

    @property
    def connection(self) -> TcpConnection | None:
        """The TCP connection the message arrived on (None for UDP)."""
        return self._conn


def _lower(value: str) -> str:
    return value.lower()


@attrs.define(frozen=True, slots=True)
class Target:
    """Where to send a request: transport ('udp' | 'tcp'), host (IP or name) and port."""

    transport: str = attrs.field(converter=_lower)
    """``'udp'`` or ``'tcp'`` (lower-cased)."""
    host: str
    """IP address or host name."""
    port: int
    """Port."""


class FramingError(ValueError):
    """A TCP stream cannot be split into SIP messages (bad Content-Length, oversized header)."""


_CONTENT_LENGTH = re.compile(rb"^(?:content-length|l)[ \t]*:[ \t]*([^\r\n]*?)[ \t]*\r?$", re.IGNORECASE | re.MULTILINE)


class StreamFramer:
    """Splits a SIP byte stream into messages using Content-Length (RFC 3261 18.3).

    Handles partial reads and several messages per read; CR/LF between messages are keep-alives
    (a CRLFCRLF "ping" is counted in `pings` so the connection can answer with a CRLF "pong").
    """

    __slots__ = ("_buf", "pings")

    def __init__(self) -> None:
        self._buf = bytearray()
        self.pings = 0
        """Double-CRLF keep-alive pings seen since the connection last answered them."""

    def feed(self, data: bytes) -> tuple[list[bytes], str | None]:
        """Add bytes; return (complete messages, error text or None). After an error, stop using it."""
        buf = self._buf
        buf += data
        out: list[bytes] = []
        while buf:
            first = buf[0]
            if first == 13 or first == 10:
                i, n = 0, len(buf)
                while i < n and buf[i] in (13, 10):
                    i += 1
                self.pings += bytes(buf[:i]).count(b"\r\n\r\n")
                del buf[:i]
                continue
            end = buf.find(b"\r\n\r\n")
            if end < 0:
                if len(buf) > MAX_HEADER_BYTES:
                    return out, f"no end of headers within {MAX_HEADER_BYTES} bytes"
                break
            values = _CONTENT_LENGTH.findall(buf, 0, end)
            if not values:
                length = 0
            else:
                if len(set(values)) > 1:
                    return out, f"conflicting Content-Length values {[v.decode('latin-1') for v in values]}"
                raw = values[0]
                if not raw.isdigit():
                    return out, f"bad Content-Length {raw.decode('latin-1')!r}"
                length = int(raw)
                if length > MAX_BODY_BYTES:
                    return out, f"Content-Length {length} exceeds {MAX_BODY_BYTES}"
            total = end + 4 + length
            if len(buf) < total:
                break
            out.append(bytes(buf[:total]))
            del buf[:total]
        return out, None


class TcpConnection(asyncio.Protocol):
    """One SIP TCP connection (accepted or opened by us); writes queue until it is connected."""

    def __init__(self, owner: Transports, *, inbound: bool) -> None:
        self._owner = owner
        self.inbound = inbound
        """True for a connection the peer opened, False for one we opened."""
        self.transport: asyncio.Transport | None = None
        """The asyncio transport (None until connected)."""
        self.peer: tuple[str, int] | None = None
        """The peer's (address, port) (None until connected)."""
        self.source: Source | None = None
        """The ``Source`` given to messages read on this connection (None until connected)."""
        self.closed = False
        """True once the connection is closed."""
        self.keys: list[tuple[str, int]] = []
        """The (host, port) keys this connection is filed under for reuse."""
        self._framer = StreamFramer()
        self._pending: list[tuple[bytes, ErrorCallback | None]] = []

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        """asyncio callback: register the connection and write what was queued."""
        assert isinstance(transport, asyncio.Transport)
        self.transport = transport
        peer = transport.get_extra_info("peername")
        self.peer = (peer[0], peer[1])
        self.source = Source("tcp", peer[0], peer[1], self._owner.local, conn=self)
        self._owner._register(self)
        pending, self._pending = self._pending, []
        for data, _ in pending:
            transport.write(data)
        logger.debug("TCP connection %s %s:%d", "from" if self.inbound else "to", *self.peer)

    def data_received(self, data: bytes) -> None:
        """asyncio callback: frame the stream into messages, answer pings, close on a malformed stream."""
        messages, error = self._framer.feed(data)
        on_message = self._owner.on_message
        source = self.source
        assert source is not None
        tracing = trace.isEnabledFor(logging.DEBUG)
        for raw in messages:
            if tracing:
                trace_message("recv", "tcp", source.address, source.port, raw)
            on_message(raw, source)
        if self._framer.pings:
            self._framer.pings = 0
            if self.transport is not None and not self.closed:
                self.transport.write(b"\r\n")
        if error is not None:
            logger.warning("closing TCP connection from %s:%d: malformed stream: %s", source.address,
                           source.port, error)
            self.close()

    def connection_lost(self, exc: Exception | None) -> None:
        """asyncio callback: unregister the connection and fail the writes still queued."""
        self.closed = True
        self._owner._unregister(self)
        if self.peer is not None:
            logger.debug("TCP connection with %s:%d closed%s", self.peer[0], self.peer[1],
                         f": {exc}" if exc else "")
        self._fail_pending(f"connection lost: {exc}" if exc else "connection closed")

    def write(self, data: bytes, on_error: ErrorCallback | None = None) -> None:
        """Send bytes, or queue them while the connection is being opened."""
        if self.closed:
            if on_error is not None:
                on_error("TCP connection closed")
            return
        if trace.isEnabledFor(logging.DEBUG):
            host, port = self.peer or ("(connecting)", 0)
            trace_message("send", "tcp", host, port, data)
        if self.transport is None:
            self._pending.append((data, on_error))
            return
        self.transport.write(data)

    def close(self) -> None:
        """Close the connection and fail the writes still queued."""
        if self.transport is not None:
            self.transport.close()
        self._fail_pending("connection closed")
        self.closed = True
        self._owner._unregister(self)

    def _connect_failed(self, reason: str) -> None:
        self.closed = True
        self._owner._unregister(self)
        self._fail_pending(reason)

    def _fail_pending(self, reason: str) -> None:
        pending, self._pending = self._pending, []
        for _, on_error in pending:
            if on_error is not None:
                try:
                    on_error(reason)
                except Exception:
                    logger.exception("error callback failed")


#: datagrams read per wake-up of the UDP socket (asyncio's transport reads one per loop pass)
UDP_READ_BATCH = 64
"""Datagrams read per wake-up of the UDP socket."""


class UdpEndpoint:
    """The SIP UDP socket on the event loop: drained in batches when readable, sends queued only
    when the kernel's send buffer is full. ICMP errors are logged (debug) and otherwise ignored."""

    def __init__(self, owner: Transports, loop: asyncio.AbstractEventLoop, sock: socket.socket) -> None:
        self._owner = owner
        self._loop = loop
        self.sock = sock
        """The UDP socket."""
        self._fd = sock.fileno()
        self._pending: list[tuple[bytes, tuple]] = []
        self.closed = False
        """True once closed."""
        # datagrams are read into one reused buffer and copied out at their size: recvfrom(65536)
        # would allocate 64 KB per datagram and shrink it, which fragments the heap under a flood
        # (the process kept ~100 MB more RSS after one)
        self._buf = bytearray(65536)
        self._view = memoryview(self._buf)
        sock.setblocking(False)
        loop.add_reader(self._fd, self._read_ready)

    def _read_ready(self) -> None:
        hooks = self._owner.batch_hooks
        if hooks is None:
            self._read_batch()
            return
        hooks[0]()
        try:
            self._read_batch()
        finally:
            hooks[1]()

    def _read_batch(self) -> None:
        owner = self._owner
        on_message = owner.on_message
        local = owner.local
        recvfrom_into = self.sock.recvfrom_into
        view = self._view
        tracing = trace.isEnabledFor(logging.DEBUG)
        for _ in range(UDP_READ_BATCH):
            try:
                n, addr = recvfrom_into(view)
                data = view[:n].tobytes()
            except (BlockingIOError, InterruptedError):
                return
            except OSError as e:   # e.g. ICMP port unreachable for something we sent
                logger.debug("UDP socket error: %s", e)
                continue
            if tracing:
                trace_message("recv", "udp", addr[0], addr[1], data)
            try:
                on_message(data, Source("udp", addr[0], addr[1], local))
            except Exception:   # the stack catches its own errors; this keeps the reader alive
                logger.exception("error handling a UDP datagram from %s:%s", addr[0], addr[1])
            if self.closed:
                return

    def sendto(self, data: bytes, addr: tuple) -> None:
        """Send one datagram (queued while the send buffer is full; raises only for bad input)."""
        if self.closed:
            raise OSError("UDP socket is closed")
        if trace.isEnabledFor(logging.DEBUG):
            trace_message("send", "udp", addr[0], addr[1], data)
        if self._pending:
            self._pending.append((data, addr))
            return
        try:
            self.sock.sendto(data, addr)
        except (BlockingIOError, InterruptedError):
            self._pending.append((data, addr))
            self._loop.add_writer(self._fd, self._write_ready)
        except (TypeError, ValueError):
            raise
        except OSError as e:
            logger.debug("UDP send to %s failed: %s", addr, e)

    def _write_ready(self) -> None:
        pending = self._pending
        while pending:
            data, addr = pending[0]
            try:
                self.sock.sendto(data, addr)
            except (BlockingIOError, InterruptedError):
                return
            except OSError as e:
                logger.debug("UDP send to %s failed: %s", addr, e)
            pending.pop(0)
        self._loop.remove_writer(self._fd)

    def get_extra_info(self, name: str) -> object:
        """The socket for ``'socket'`` (like an asyncio transport), else None."""
        return self.sock if name == "socket" else None

    def close(self) -> None:
        """Stop reading and writing and close the socket (once)."""
        if self.closed:
            return
        self.closed = True
        self._loop.remove_reader(self._fd)
        if self._pending:
            self._loop.remove_writer(self._fd)
            self._pending.clear()
        self.sock.close()


def tune_udp_socket(sock: socket.socket | TransportSocket, size: int = UDP_RCVBUF) -> int:
    """Ask for a `size` byte receive buffer (best effort); return what the kernel granted.

    Plain SO_RCVBUF is capped by net.core.rmem_max; SO_RCVBUFFORCE (privileged) is tried when
    the cap got in the way.
    """
    def granted() -> int:
        return int(sock.getsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF))

    before = granted()
    try:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, size)
    except OSError as e:
        logger.debug("SO_RCVBUF %d refused: %s", size, e)
    if granted() < size and hasattr(os, "geteuid") and os.geteuid() == 0:
        try:
            sock.setsockopt(socket.SOL_SOCKET, SO_RCVBUFFORCE, size)
        except OSError as e:
            logger.debug("SO_RCVBUFFORCE %d refused: %s", size, e)
    after = granted()
    if after < size:   # Linux reports twice the size asked for (bookkeeping overhead)
        logger.info("UDP receive buffer %d bytes (asked for %d; raise net.core.rmem_max)", after, size)
    else:
        logger.debug("UDP receive buffer %d bytes (was %d)", after, before)
    return after


class UdpDropCounter:
    """The kernel's count of datagrams dropped on one UDP socket (receive buffer full).

    Linux publishes it per socket in /proc/net/udp{,6} (last column, matched by inode); elsewhere
    `read()` returns None.
    """

    def __init__(self, sock: socket.socket | TransportSocket) -> None:
        self.inode = os.fstat(sock.fileno()).st_ino
        """Inode of the socket, to find its line in /proc."""
        self.path = "/proc/net/udp6" if sock.family == socket.AF_INET6 else "/proc/net/udp"
        """The /proc file listing the socket (udp or udp6)."""
        self.available = os.path.exists(self.path)
        """True when that file exists (Linux)."""
        self.last = self.read() or 0
        """Drop count at the last read."""

    def read(self) -> int | None:
        """Datagrams dropped on the socket so far, or None if the kernel does not say."""
        if not self.available:
            return None
        inode = str(self.inode)
        try:
            with open(self.path, encoding="ascii", errors="replace") as f:
                next(f, None)
                for line in f:
                    cols = line.split()
                    if len(cols) >= 13 and cols[9] == inode:
                        return int(cols[-1])
        except (OSError, ValueError) as e:
            logger.debug("cannot read UDP drops from %s: %s", self.path, e)
            self.available = False
        return None

    def check(self) -> int:
        """Log (warning) and return how many datagrams were dropped since the last check."""
        now = self.read()
        if now is None:
            return 0
        new, self.last = now - self.last, now
        if new > 0:
            logger.warning("%d incoming UDP datagram(s) dropped by the kernel (receive buffer full; "
                           "%d in all): peers will retransmit", new, now)
        return max(new, 0)


def _is_ip(host: str) -> bool:
    try:
        ipaddress.ip_address(host)
    except ValueError:
        return False
    return True


class Transports:
    """The UDP socket, the TCP listener and the table of open TCP connections on one host:port."""

    def __init__(self, host: str, port: int, on_message: MessageCallback) -> None:
        self.host = host
        """Local address."""
        self.port = port
        """Local port (the bound one after start)."""
        self.on_message = on_message
        """Called with each message read."""
        self.local: tuple[str, int] = (host, port)
        """Our (host, port), given to each ``Source``."""
        self._udp: UdpEndpoint | None = None
        self._server: asyncio.base_events.Server | None = None
        self._conns: dict[tuple[str, int], TcpConnection] = {}
        self._all: set[TcpConnection] = set()
        self._tasks: set[asyncio.Task] = set()
        self._dns: dict[str, tuple[str, float]] = {}
        self._loop: asyncio.AbstractEventLoop | None = None
        self._family = socket.AF_INET6 if ":" in host else socket.AF_INET
        self.udp_rcvbuf = 0
        """Receive buffer size of the UDP socket (0 until opened)."""
        #: (begin, end) called around each batch of datagrams read (lets the user batch its output)
        self.batch_hooks: tuple[Callable[[], None], Callable[[], None]] | None = None
        """(begin, end) called around each batch of datagrams read (lets the user batch its output)."""
        self._drops: UdpDropCounter | None = None
        self._drop_timer: asyncio.TimerHandle | None = None

    async def start(self) -> None:
        """Bind UDP and TCP on the same port (port 0: find one that is free for both)."""
        loop = self._loop = asyncio.get_running_loop()
        attempts = 50 if self.port == 0 else 1
        last: OSError | None = None
        for _ in range(attempts):
            server = await loop.create_server(lambda: TcpConnection(self, inbound=True), self.host,
                                              self.port, family=self._family, reuse_address=True)
            port = server.sockets[0].getsockname()[1]
            sock = socket.socket(self._family, socket.SOCK_DGRAM)
            try:
                sock.bind((self.host, port))
            except OSError as e:
                sock.close()
                last = e
                server.close()
                continue
            udp = UdpEndpoint(self, loop, sock)
            self._server, self._udp = server, udp
            self.port = port
            self.local = (self.host, port)
            self._watch_udp(udp.sock)
            logger.info("SIP listening on udp/tcp %s:%d", self.host, port)
            return
        raise OSError(f"cannot bind UDP and TCP on {self.host}:{self.port}: {last}")

    def _watch_udp(self, sock: socket.socket | TransportSocket | None) -> None:
        """Big receive buffer on the UDP socket, and a periodic look at its drop count."""
        if sock is None:
            return
        try:
            self.udp_rcvbuf = tune_udp_socket(sock)
        except OSError as e:
            logger.warning("cannot size the UDP receive buffer: %s", e)
        try:
            self._drops = UdpDropCounter(sock)
        except OSError as e:
            logger.debug("UDP drop counter unavailable: %s", e)
            return
        if self._drops.available and self._loop is not None:
            self._drop_timer = self._loop.call_later(DROP_CHECK_INTERVAL, self._check_drops)

    def _check_drops(self) -> None:
        self._drop_timer = None
        if self._drops is None or self._udp is None or self._loop is None:
            return
        self._drops.check()
        if self._drops.available:
            self._drop_timer = self._loop.call_later(DROP_CHECK_INTERVAL, self._check_drops)

    def close(self) -> None:
        """Close the UDP socket, the TCP listener and all TCP connections."""
        if self._drop_timer is not None:
            self._drop_timer.cancel()
            self._drop_timer = None
        if self._drops is not None and self._udp is not None:
            self._drops.check()
        if self._udp is not None:
            self._udp.close()
            self._udp = None
        if self._server is not None:
            self._server.close()
            self._server = None
        for conn in list(self._all):
            conn.close()
        for task in list(self._tasks):
            task.cancel()

    # -- sending ---------------------------------------------------------------------------------

    def send(self, data: bytes, transport: str, host: str, port: int, *,
             on_error: ErrorCallback | None = None) -> None:
        """Send to host:port; TCP reuses a connection to that (host, port) or opens one."""
        if transport == "udp":
            udp = self._udp
            if udp is None:
                _report(on_error, "UDP transport is closed")
                return
            if not _is_ip(host):
                self._spawn(self._send_udp_resolved(data, host, port, on_error))
                return
            try:
                udp.sendto(data, (host, port))
            except (OSError, ValueError) as e:
                _report(on_error, f"UDP send to {host}:{port} failed: {e}")
            return
        if transport != "tcp":
            _report(on_error, f"unsupported transport {transport!r}")
            return
        conn = self._conns.get((host, port))
        if conn is None or conn.closed:
            conn = self._connect(host, port)
        conn.write(data, on_error)

    def reply(self, data: bytes, source: Source, fallback_port: int | None = None) -> None:
        """Send a response back where the request came from (same TCP connection if still open)."""
        if source.transport == "udp":
            udp = self._udp
            if udp is not None:
                try:
                    udp.sendto(data, (source.address, source.port))
                except (OSError, ValueError) as e:
                    logger.warning("UDP send to %s:%d failed: %s", source.address, source.port, e)
            return
        conn = source.connection
        if conn is not None and not conn.closed:
            conn.write(data)
            return
        # RFC 3261 18.2.2: connection gone, open one to the received address and the sent-by port
        port = fallback_port or 5060
        self.send(data, "tcp", source.address, port,
                  on_error=lambda why: logger.warning("response to %s:%d not sent: %s",
                                                      source.address, port, why))

    def _connect(self, host: str, port: int) -> TcpConnection:
        conn = TcpConnection(self, inbound=False)
        key = (host, port)
        self._conns[key] = conn
        conn.keys.append(key)
        self._all.add(conn)
        self._spawn(self._open(conn, host, port))
        return conn

    async def _open(self, conn: TcpConnection, host: str, port: int) -> None:
        assert self._loop is not None
        local = None if self.host in ("0.0.0.0", "::") else (self.host, 0)
        try:
            await asyncio.wait_for(self._loop.create_connection(lambda: conn, host, port,
                                                                local_addr=local),
                                   CONNECT_TIMEOUT)
        except (asyncio.TimeoutError, OSError) as e:
            why = str(e) or type(e).__name__
            logger.warning("TCP connect to %s:%d failed: %s", host, port, why)
            conn._connect_failed(f"TCP connect to {host}:{port} failed: {why}")

    async def _send_udp_resolved(self, data: bytes, host: str, port: int,
                                 on_error: ErrorCallback | None) -> None:
        try:
            ip = await self._resolve(host)
        except OSError as e:
            _report(on_error, f"cannot resolve {host}: {e}")
            return
        udp = self._udp
        if udp is None:
            _report(on_error, "UDP transport is closed")
            return
        try:
            udp.sendto(data, (ip, port))
        except (OSError, ValueError) as e:
            _report(on_error, f"UDP send to {host}:{port} failed: {e}")

    async def _resolve(self, host: str) -> str:
        now = time.monotonic()
        hit = self._dns.get(host)
        if hit is not None and hit[1] > now:
            return hit[0]
        assert self._loop is not None
        infos = await self._loop.getaddrinfo(host, None, family=self._family, type=socket.SOCK_DGRAM)
        if not infos:
            raise OSError(f"no address for {host}")
        ip = str(infos[0][4][0])
        self._dns[host] = (ip, now + DNS_TTL)
        return ip

    def _spawn(self, coro) -> None:
        assert self._loop is not None
        task = self._loop.create_task(coro)
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    # -- connection table ------------------------------------------------------------------------

    def _register(self, conn: TcpConnection) -> None:
        self._all.add(conn)
        if conn.peer is not None:
            key = conn.peer
            if self._conns.get(key) is not conn:
                old = self._conns.get(key)
                if old is None or old.closed:
                    self._conns[key] = conn
                    conn.keys.append(key)

    def _unregister(self, conn: TcpConnection) -> None:
        self._all.discard(conn)
        for key in conn.keys:
            if self._conns.get(key) is conn:
                del self._conns[key]
        conn.keys = []


def _report(on_error: ErrorCallback | None, reason: str) -> None:
    if on_error is None:
        logger.warning("send failed: %s", reason)
    else:
        on_error(reason)
