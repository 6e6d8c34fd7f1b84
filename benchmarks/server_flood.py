"""INVITE flood against the embedded server: does its memory stay bounded? (issue #9.12)

Starts the embedded server and the benchmark UAS app (apps/uas_app.py, which answers every INVITE
with create_uas) on loopback, then floods the server's UDP port with up to ``--count`` INVITEs for
at most ``--seconds`` seconds from one socket. A reader plays the callers: it ACKs every final
response, and hangs up every answered call with a BYE. The server's RSS (VmRSS in /proc) is
printed before, at its peak during the flood, right after it and after ``--settle`` seconds.

    python benchmarks/server_flood.py --count 77000 --seconds 3 --settle 40

Server overload options are passed through (``--max-pending``, ``--max-transactions``;
``--max-pending 1000000000 --max-transactions 1000000000`` shows the server without the bound).
"""
from __future__ import annotations

import argparse
import os
import socket
import subprocess
import sys
import threading
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent

SERVER = """
import sys, time
from drachtio_srf.server import EmbeddedServer
s = EmbeddedServer(admin_port=0, sip_port=0, max_pending=int(sys.argv[1]),
                   max_transactions=int(sys.argv[2])).start()
print("READY", s.admin_port, s.sip_port, flush=True)
for line in sys.stdin:
    if line.startswith("trim"):
        import ctypes
        ctypes.CDLL("libc.so.6").malloc_trim(0)
        print("TRIMMED", flush=True)
        continue
    c = s.core
    n = s.call(lambda: (len(c.dialogs), len(c.incoming), c.stack.server_transaction_count,
                        len(c.stack._client_txns), len(c.stack._awaiting_ack)))
    print("STATS dialogs %d pending %d server-txns %d client-txns %d awaiting-ack %d" % n, flush=True)
s.stop()
"""

SDP = ("v=0\r\no=- 1 1 IN IP4 127.0.0.1\r\ns=flood\r\nc=IN IP4 127.0.0.1\r\nt=0 0\r\n"
       "m=audio 40000 RTP/AVP 0\r\na=rtpmap:0 PCMU/8000\r\n")


def rss_mb(pid: int) -> float:
    """Resident set size of a process in MB (Linux /proc)."""
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    return 0.0


def invite(n: int, port: int, sip_port: int) -> bytes:
    body = SDP.encode()
    return (f"INVITE sip:service@127.0.0.1:{sip_port} SIP/2.0\r\n"
            f"Via: SIP/2.0/UDP 127.0.0.1:{port};branch=z9hG4bK-fl-{n}\r\n"
            f"From: <sip:flood@127.0.0.1:{port}>;tag=fl-{n}\r\n"
            f"To: <sip:service@127.0.0.1:{sip_port}>\r\nCall-ID: fl-{n}@flood\r\nCSeq: 1 INVITE\r\n"
            f"Contact: <sip:flood@127.0.0.1:{port}>\r\nMax-Forwards: 70\r\n"
            f"Content-Type: application/sdp\r\nContent-Length: {len(body)}\r\n\r\n").encode() + body


def header(text: str, name: str) -> str:
    for line in text.split("\r\n"):
        k, _, v = line.partition(":")
        if k.strip().lower() == name:
            return v.strip()
    return ""


class Callers:
    """The far end: one UDP socket; ACKs final responses and BYEs answered calls."""

    def __init__(self, sip_port: int) -> None:
        self.sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        self.sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 8 << 20)
        self.sock.bind(("127.0.0.1", 0))
        self.port = self.sock.getsockname()[1]
        self.server = ("127.0.0.1", sip_port)
        self.counts: dict[str, int] = {}
        self.stop = threading.Event()
        self.reader = threading.Thread(target=self.read, daemon=True)
        self.reader.start()

    def count(self, key: str) -> None:
        self.counts[key] = self.counts.get(key, 0) + 1

    def read(self) -> None:
        self.sock.settimeout(0.2)
        while not self.stop.is_set():
            try:
                data, _ = self.sock.recvfrom(65536)
            except TimeoutError:
                continue
            except OSError:
                return
            text = data.decode("utf-8", "replace")
            first = text.split("\r\n", 1)[0]
            if first.startswith("SIP/2.0 "):
                status = int(first.split()[1])
                cseq = header(text, "cseq")
                if cseq.endswith("INVITE") and status >= 200:
                    self.count(str(status))
                    self.answer(text, status)
                elif cseq.endswith("BYE"):
                    self.count(f"BYE {status}")
            elif first.startswith("BYE "):
                self.count("BYE from server")

    def answer(self, resp: str, status: int) -> None:
        """ACK the final response (same branch for non-2xx), BYE a 2xx."""
        call_id, to, frm = header(resp, "call-id"), header(resp, "to"), header(resp, "from")
        n = call_id.split("@")[0][3:]
        uri = f"sip:service@127.0.0.1:{self.server[1]}"
        branch = f"z9hG4bK-fl-{n}" if status >= 300 else f"z9hG4bK-ack-{n}"
        common = (f"From: {frm}\r\nTo: {to}\r\nCall-ID: {call_id}\r\nMax-Forwards: 70\r\n")
        ack = (f"ACK {uri} SIP/2.0\r\nVia: SIP/2.0/UDP 127.0.0.1:{self.port};branch={branch}\r\n"
               f"{common}CSeq: 1 ACK\r\nContent-Length: 0\r\n\r\n")
        self.sock.sendto(ack.encode(), self.server)
        if status < 300:
            bye = (f"BYE {uri} SIP/2.0\r\nVia: SIP/2.0/UDP 127.0.0.1:{self.port};branch=z9hG4bK-bye-{n}\r\n"
                   f"{common}CSeq: 2 BYE\r\nContent-Length: 0\r\n\r\n")
            self.sock.sendto(bye.encode(), self.server)


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--count", type=int, default=77000, help="INVITEs to send at most")
    ap.add_argument("--seconds", type=float, default=3.0, help="flood for at most this long")
    ap.add_argument("--settle", type=float, default=40.0, help="seconds to wait after the flood")
    ap.add_argument("--max-pending", type=int, default=2000)
    ap.add_argument("--max-transactions", type=int, default=200_000)
    args = ap.parse_args()
    env = dict(os.environ, PYTHONPATH=str(ROOT) + os.pathsep + os.environ.get("PYTHONPATH", ""))
    server = subprocess.Popen([sys.executable, "-c", SERVER, str(args.max_pending),
                               str(args.max_transactions)], stdin=subprocess.PIPE,
                              stdout=subprocess.PIPE, text=True, env=env)
    app = None
    try:
        assert server.stdout is not None
        ready = server.stdout.readline().split()
        admin, sip_port = int(ready[1]), int(ready[2])
        app = subprocess.Popen([sys.executable, str(HERE / "apps" / "uas_app.py"), str(admin)],
                               stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True, env=env,
                               cwd=str(HERE / "apps"))
        assert app.stdout is not None
        if app.stdout.readline().strip() != "READY":
            print("app did not connect", file=sys.stderr)
            return 1
        base = rss_mb(server.pid)
        callers = Callers(sip_port)
        peak = base
        sent = 0
        start = time.monotonic()
        next_sample = start
        while sent < args.count and time.monotonic() - start < args.seconds:
            callers.sock.sendto(invite(sent, callers.port, sip_port), callers.server)
            sent += 1
            if sent % 200 == 0:
                now = time.monotonic()
                if now >= next_sample:
                    peak = max(peak, rss_mb(server.pid))
                    next_sample = now + 0.1
        flood = time.monotonic() - start
        after = rss_mb(server.pid)
        peak = max(peak, after)
        end = time.monotonic() + args.settle
        while time.monotonic() < end:
            peak = max(peak, rss_mb(server.pid))
            time.sleep(0.5)
        settled = rss_mb(server.pid)
        callers.stop.set()
        assert server.stdin is not None
        server.stdin.write("stats\n")
        server.stdin.flush()
        stats = server.stdout.readline().strip()
        server.stdin.write("trim\n")
        server.stdin.flush()
        server.stdout.readline()
        trimmed = rss_mb(server.pid)
        print(f"sent {sent} INVITEs in {flood:.2f} s ({sent / flood:.0f}/s)")
        print("responses: " + ", ".join(f"{k}: {v}" for k, v in sorted(callers.counts.items())))
        print(f"server state at the end: {stats[6:]}")
        print(f"server RSS MB: before {base:.1f}, peak {peak:.1f}, right after {after:.1f}, "
              f"after {args.settle:.0f} s {settled:.1f}, after malloc_trim {trimmed:.1f}")
        return 0
    finally:
        for p in (app, server):
            if p is not None and p.poll() is None:
                try:
                    assert p.stdin is not None
                    p.stdin.close()
                    p.wait(10)
                except Exception:  # noqa: BLE001 - shutting down anyway
                    p.kill()


if __name__ == "__main__":
    sys.exit(main())
