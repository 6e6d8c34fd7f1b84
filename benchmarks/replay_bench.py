"""App CPU per call without the noise of a SIP network: a scripted drachtio server replays the
control-protocol frames of sipp's ``uac -d 0`` call (INVITE, the 200's echo, ACK, BYE, the
200's echo) to ``apps/uas_app.py`` and reads the app's CPU from /proc.

Only the Python app does real work here: the fake server sends frames prepared in advance and
answers the app's commands with canned echoes, so its CPU stays small and steady and nothing
else (sipp, the embedded server, retransmissions) competes with the app.  That makes it the
tool for small before/after decisions on the client's hot paths; the product figure against
Node stays ``app_cpu_bench.py``.

usage: .venv/bin/python benchmarks/replay_bench.py [--rate 800] [--calls 8000] [--rounds 3]
       [--wrap "valgrind --tool=callgrind --callgrind-out-file=/tmp/cg.%p"]

``--wrap`` starts the app under another program (callgrind, ``perf stat -e instructions:u``):
give ``--rate 0`` with it (calls are sent as fast as the app answers, window ``--window``).
"""
from __future__ import annotations

import argparse
import os
import queue
import selectors
import shlex
import socket
import subprocess
import sys
import threading
import time
from collections import deque
from pathlib import Path

import benchlib

from drachtio_srf import wire

SDP = ("v=0\r\no=user1 53655765 2353687637 IN IP4 127.0.0.1\r\ns=-\r\nc=IN IP4 127.0.0.1\r\n"
       "t=0 0\r\nm=audio 6000 RTP/AVP 0\r\na=rtpmap:0 PCMU/8000\r\n")


def invite_text(i: int) -> str:
    """A sipp-uac-like INVITE for call ``i``."""
    return (f"INVITE sip:service@127.0.0.1:5060 SIP/2.0\r\n"
            f"Via: SIP/2.0/UDP 127.0.0.1:5061;branch=z9hG4bK-{i}-1-0\r\n"
            f"From: sipp <sip:sipp@127.0.0.1:5061>;tag={i}SIPpTag001\r\n"
            f"To: service <sip:service@127.0.0.1:5060>\r\n"
            f"Call-ID: {i}-bench@127.0.0.1\r\n"
            f"CSeq: 1 INVITE\r\n"
            f"Contact: sip:sipp@127.0.0.1:5061\r\n"
            f"Max-Forwards: 70\r\n"
            f"Subject: Performance Test\r\n"
            f"Content-Type: application/sdp\r\n"
            f"Content-Length: {len(SDP)}\r\n\r\n{SDP}")


def in_dialog_text(i: int, method: str, cseq: int) -> str:
    """ACK or BYE of call ``i`` as sipp sends them."""
    return (f"{method} sip:127.0.0.1:5060 SIP/2.0\r\n"
            f"Via: SIP/2.0/UDP 127.0.0.1:5061;branch=z9hG4bK-{i}-{cseq}-{method}\r\n"
            f"From: sipp <sip:sipp@127.0.0.1:5061>;tag={i}SIPpTag001\r\n"
            f"To: service <sip:service@127.0.0.1:5060>;tag=srv{i}\r\n"
            f"Call-ID: {i}-bench@127.0.0.1\r\n"
            f"CSeq: {cseq} {method}\r\n"
            f"Contact: sip:sipp@127.0.0.1:5061\r\n"
            f"Max-Forwards: 70\r\n"
            f"Subject: Performance Test\r\n"
            f"Content-Length: 0\r\n\r\n")


def echo_text(app_text: str, i: int, invite: bool) -> str:
    """What the server would have sent for the app's response: its headers plus Via, a To tag
    and (for the INVITE's 200) a Contact."""
    head, _, body = app_text.partition("\r\n\r\n")
    lines = head.split("\r\n")
    out = [lines[0], f"Via: SIP/2.0/UDP 127.0.0.1:5061;branch=z9hG4bK-{i}-1-0"]
    for line in lines[1:]:
        if line.lower().startswith("to:") and "tag=" not in line:
            line += f";tag=srv{i}"
        out.append(line)
    if invite:
        out.append("Contact: <sip:127.0.0.1:5060>")
    return "\r\n".join(out) + "\r\n\r\n" + body


class FakeServer:
    """One app connection; calls started at ``rate`` (0: keep ``window`` calls in flight)."""

    def __init__(self, calls: int, rate: float, window: int, rtt: float) -> None:
        self.calls = calls
        self.rtt = rtt
        self.later: deque[tuple[float, list[bytes]]] = deque()
        self.rate = rate
        self.window = window
        self.listener = socket.create_server(("127.0.0.1", 0))
        self.port = self.listener.getsockname()[1]
        self.sock: socket.socket | None = None
        self.decoder = wire.FrameDecoder()
        self.started = 0
        self.done = 0
        self.out: list[bytes] = []
        self.call_of: dict[str, int] = {}       # txn id -> call
        self.ids = (f"s{n}" for n in range(10 ** 9))
        self.invites = [wire.encode(self._sip(invite_text(i), f"t{i}", "")) for i in range(calls)]

    def _sip(self, text: str, txn: str, dialog: str) -> str:
        return wire.sip_event(next(self.ids), source="network", nbytes=len(text), protocol="udp",
                              address="127.0.0.1", port=5061, time="01:02:03.000000", txn_id=txn,
                              dialog_id=dialog, received_on=("127.0.0.1", 5060), sip_text=text)

    def accept(self) -> None:
        self.listener.settimeout(120)
        self.sock, _ = self.listener.accept()
        self.sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)

    def _frame(self, payload: str) -> None:
        f = wire.parse(payload)
        mid = f.msg_id
        if f.type == "authenticate":
            self.out.append(wire.encode(wire.reply(next(self.ids), mid, "OK",
                                                   ("127.0.0.1:5060", "0.9.0", ""))))
        elif f.type == "sip" and f.sip and f.sip.startswith("SIP/2.0 "):
            txn = f.fields[2]
            i = self.call_of[txn]
            invite = txn.startswith("t")
            text = echo_text(f.sip, i, invite)
            dialog = f"{i}-bench@127.0.0.1;from-tag={i}SIPpTag001"
            self.out.append(wire.encode(wire.echo_response(
                next(self.ids), mid, nbytes=len(text), protocol="udp", address="127.0.0.1",
                port=5061, time="01:02:03.000000", txn_id=txn, dialog_id=dialog, sip_text=text)))
            if invite:     # the far end's ACK and BYE come one round trip later
                self.call_of[f"b{i}"] = i
                self.later.append((time.monotonic() + self.rtt, [
                    wire.encode(self._sip(in_dialog_text(i, "ACK", 1), "unsolicited", dialog)),
                    wire.encode(self._sip(in_dialog_text(i, "BYE", 2), f"b{i}", dialog))]))
            else:
                self.done += 1
        else:
            self.out.append(wire.encode(wire.reply(next(self.ids), mid, "OK")))

    def _start_call(self) -> None:
        i = self.started
        self.call_of[f"t{i}"] = i
        self.out.append(self.invites[i])
        self.started += 1

    def run(self, upto: int) -> None:
        """Run calls until ``upto`` have finished."""
        assert self.sock is not None
        sock = self.sock
        sel = selectors.DefaultSelector()
        sel.register(sock, selectors.EVENT_READ)
        t0 = time.monotonic()
        first = self.started
        while self.done < upto:
            if self.rate:
                due = first + int((time.monotonic() - t0) * self.rate) + 1
                while self.started < min(due, upto):
                    self._start_call()
            else:
                while self.started < upto and self.started - self.done < self.window:
                    self._start_call()
            now = time.monotonic()
            while self.later and self.later[0][0] <= now:
                self.out.extend(self.later.popleft()[1])
            if self.out:
                sock.sendall(b"".join(self.out))
                self.out.clear()
            timeout = 0.0005 if self.rate or self.later else 1.0
            for _key, _ev in sel.select(timeout):
                data = sock.recv(65536)
                if not data:
                    raise RuntimeError("app closed the connection")
                for payload in self.decoder.feed(data):
                    self._frame(payload)
        if self.out:
            sock.sendall(b"".join(self.out))
            self.out.clear()
        sel.close()


def one_run(args: argparse.Namespace) -> float:
    warm = min(500, args.calls // 10)
    srv = FakeServer(args.calls + warm, args.rate, args.window, args.rtt / 1e3)
    wrap = shlex.split(args.wrap)
    if args.callgrind:
        wrap = ["valgrind", "--tool=callgrind", f"--callgrind-out-file={args.callgrind}.%p", *wrap]
    cmd = [*wrap, sys.executable, str(benchlib.BENCH / "apps" / "uas_app.py"),
           str(srv.port), benchlib.SECRET, *shlex.split(args.app_args)]
    env = benchlib.py_env()
    env["PYTHONPATH"] = f"{benchlib.BENCH / 'apps'}{os.pathsep}{env.get('PYTHONPATH', '')}"
    app = subprocess.Popen(cmd, stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True, env=env)
    try:
        srv.accept()
        assert srv.sock is not None and app.stdout is not None
        lines: queue.Queue[str] = queue.Queue()
        threading.Thread(target=lambda: [lines.put(x) for x in app.stdout], daemon=True).start()
        srv.sock.settimeout(0.05)
        deadline = time.monotonic() + 60
        while lines.empty() and time.monotonic() < deadline:
            try:
                data = srv.sock.recv(65536)
            except TimeoutError:
                continue
            for payload in srv.decoder.feed(data):
                srv._frame(payload)
            if srv.out:
                srv.sock.sendall(b"".join(srv.out))
                srv.out.clear()
        if "READY" not in lines.get(timeout=1):
            raise RuntimeError("app did not start")
        srv.sock.settimeout(None)
        srv.run(warm)
        if args.callgrind:
            subprocess.run(["callgrind_control", "-z", str(app.pid)], check=True,
                           capture_output=True)
        before = benchlib.cpu_detail(app.pid)
        t0 = time.monotonic()
        srv.run(warm + args.calls)
        wall = time.monotonic() - t0
        after = benchlib.cpu_detail(app.pid)
        if args.callgrind:
            subprocess.run(["callgrind_control", "-d", str(app.pid)], check=True,
                           capture_output=True)
            instr = _callgrind_total(args.callgrind, app.pid)
            benchlib.out(f"  {args.calls} calls: {instr / args.calls / 1e3:.1f} k instructions/call")
            return instr / args.calls / 1e3
        d = after - before
        n = args.calls
        benchlib.out(f"  {n} calls in {wall:.2f} s ({n / wall:.0f} calls/s): app "
                     f"{d.total / n * 1e3:.3f} ms/call (user {d.user / n * 1e3:.3f}, sys "
                     f"{d.system / n * 1e3:.3f}), switches/call {d.voluntary / n:.1f}+"
                     f"{d.involuntary / n:.1f}")
        return d.total / n * 1e3
    finally:
        assert app.stdin is not None
        try:
            app.stdin.write("quit\n")
            app.stdin.flush()
        except OSError:
            pass
        try:
            app.wait(60)
        except subprocess.TimeoutExpired:
            app.kill()
            app.wait()


def _callgrind_total(prefix: str, pid: int) -> int:
    """Instructions in the newest callgrind dump of ``pid`` (the measured calls only: the
    counters were zeroed before them)."""
    dumps = sorted(Path(prefix).parent.glob(f"{Path(prefix).name}.{pid}*"),
                   key=lambda p: p.stat().st_mtime)
    for line in dumps[-1].read_text().splitlines():
        if line.startswith(("summary:", "totals:")):
            return int(line.split()[1])
    raise RuntimeError(f"no totals in {dumps[-1]}")


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--rate", type=float, default=800.0, help="calls/s (0: as fast as answered)")
    p.add_argument("--window", type=int, default=50, help="calls in flight with --rate 0")
    p.add_argument("--rtt", type=float, default=2.0,
                   help="ms between the 200's echo and the far end's ACK and BYE")
    p.add_argument("--calls", type=int, default=8000)
    p.add_argument("--rounds", type=int, default=3)
    p.add_argument("--callgrind", metavar="PREFIX",
                   help="run the app under callgrind (dumps PREFIX.<pid>*) and report instructions "
                        "per call of the measured calls; use with --rate 0")
    p.add_argument("--app-args", default="", help="more arguments for uas_app.py (--profile F)")
    p.add_argument("--wrap", default="", help="command to start the app under (callgrind, perf)")
    args = p.parse_args()
    benchlib.out(f"# replay_bench: {benchlib.machine()}; rate {args.rate:g}, {args.calls} calls")
    figures = [one_run(args) for _ in range(args.rounds)]
    benchlib.out(f"app ms/call: median {benchlib.median(figures):.3f} min {min(figures):.3f}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
