#!/usr/bin/env python3
"""Send the RFC 4475 torture messages to a drachtio server and print what it does with each.

For every message of test/data/rfc4475 a fresh server is started (several messages share a Via
branch, and a second one would rightly be a retransmission), an app connects and routes every
method, the message is sent (over TCP when its top Via says TCP, else over UDP), and the script prints the status of each response the
sender gets (or ``-`` for none), whether the app got the request, and the request line and
From/To as the app got them. Run it against the real drachtio-server and the embedded one to
compare (index.json holds the decisions):

    scripts/rfc4475_probe.py --server "python -m drachtio_srf.server"
    scripts/rfc4475_probe.py --server "/path/to/drachtio -f drachtio.conf.xml"

The server command gets ``--port ADMIN --contact sip:127.0.0.1:SIP;transport=udp,tcp`` (and
``--secret cymru``) appended; both programs take those options.
"""
from __future__ import annotations

import argparse
import json
import re
import shlex
import socket
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from drachtio_srf import wire

DATA = ROOT / "test" / "data" / "rfc4475"
METHODS = ("invite", "options", "register", "message", "info", "notify", "subscribe", "publish")


def _free_port() -> int:
    """A loopback port free for both TCP and UDP (the SIP port takes both)."""
    while True:
        with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as u:
            u.bind(("127.0.0.1", 0))
            port = int(u.getsockname()[1])
            with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as t:
                try:
                    t.bind(("127.0.0.1", port))
                except OSError:
                    continue
                return port


class App:
    """A minimal control-protocol client: authenticate, route, collect frames."""

    def __init__(self, port: int) -> None:
        deadline = time.monotonic() + 10
        while True:
            try:
                self.sock = socket.create_connection(("127.0.0.1", port), timeout=1)
                break
            except OSError:
                if time.monotonic() > deadline:
                    raise
                time.sleep(0.05)
        self.decoder = wire.FrameDecoder()
        self.frames: list[wire.Frame] = []

    def send(self, payload: str) -> None:
        self.sock.sendall(wire.encode(payload))

    def pump(self, seconds: float) -> None:
        end = time.monotonic() + seconds
        while (left := end - time.monotonic()) > 0:
            self.sock.settimeout(left)
            try:
                data = self.sock.recv(65536)
            except TimeoutError:
                return
            if not data:
                return
            self.frames += [wire.parse(p) for p in self.decoder.feed(data)]

    def setup(self) -> None:
        self.send(f"{wire.new_id()}|authenticate|cymru|")
        for m in METHODS:
            self.send(f"{wire.new_id()}|route|{m}")
        self.pump(0.5)


def via_transport(raw: bytes) -> str:
    """The transport named by the message's first Via (``UDP`` when there is none)."""
    raw = re.sub(rb"\r\n[ \t]+", b" ", raw.split(b"\r\n\r\n", 1)[0])     # unfold header lines
    m = re.search(rb"^(?:via|v)[ \t]*:[ \t]*SIP[ \t]*/[ \t]*2\.0[ \t]*/[ \t]*(\w+)", raw, re.IGNORECASE | re.MULTILINE)
    return m.group(1).decode().upper() if m else "UDP"


def probe(cmd: str, name: str, wait: float, log_dir: Path | None = None,
          reasons: bool = False) -> dict[str, object]:
    """Start a server, send message ``name``, return what came back (its output to ``log_dir``)."""
    admin, sip = _free_port(), _free_port()
    argv = shlex.split(cmd) + ["--port", str(admin), "--secret", "cymru",
                               "--contact", f"sip:127.0.0.1:{sip};transport=udp,tcp"]
    log = open(log_dir / f"{name}.log", "wb") if log_dir else subprocess.DEVNULL  # noqa: SIM115
    proc = subprocess.Popen(argv, stdout=log, stderr=subprocess.STDOUT)
    try:
        app = App(admin)
        app.setup()
        raw = (DATA / f"{name}.dat").read_bytes()
        tcp = via_transport(raw) == "TCP"
        peer = socket.socket(socket.AF_INET, socket.SOCK_STREAM if tcp else socket.SOCK_DGRAM)
        if tcp:
            peer.connect(("127.0.0.1", sip))
            peer.sendall(raw)
        else:
            peer.bind(("127.0.0.1", 0))
            peer.sendto(raw, ("127.0.0.1", sip))
        statuses: list[str] = []
        end = time.monotonic() + wait
        while (left := end - time.monotonic()) > 0:
            peer.settimeout(left)
            try:
                data = peer.recv(65535)
            except TimeoutError:
                break
            if not data:
                break
            for m in re.finditer(rb"(?:^|\r\n)SIP/2\.0 (\d+)([^\r\n]*)", data):
                if reasons:
                    statuses.append((m.group(1) + m.group(2)).decode("utf-8", "replace"))
                else:
                    statuses.append(m.group(1).decode())
        app.pump(0.3)
        events = [f for f in app.frames if f.type == "sip" and f.sip]
        got = events[0].sip if events else None
        seen: dict[str, object] = {"name": name, "transport": "tcp" if tcp else "udp", "responses": [s for s in statuses if not s.startswith("100")] or ["-"],
                                   "app": bool(events)}
        if got:
            head = got.split("\r\n\r\n", 1)[0].split("\r\n")
            seen["line"] = head[0]
            for h in head[1:]:
                low = h.split(":", 1)[0].strip().lower()
                if low in ("from", "f", "to", "t", "date"):
                    seen.setdefault(low, h.split(":", 1)[1].strip())
        peer.close()
        app.sock.close()
        return seen
    finally:
        proc.terminate()
        try:
            proc.wait(5)
        except subprocess.TimeoutExpired:
            proc.kill()
        if log_dir:
            log.close()  # type: ignore[union-attr]


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--server", required=True, help="command that starts the server")
    ap.add_argument("--wait", type=float, default=1.0, help="seconds to collect responses")
    ap.add_argument("names", nargs="*", help="messages to send (default: all)")
    ap.add_argument("--json", action="store_true", help="one JSON object per line")
    ap.add_argument("--reasons", action="store_true", help="show reason phrases of the responses")
    ap.add_argument("--log-dir", type=Path, help="keep each server's output there (NAME.log)")
    args = ap.parse_args()
    index = json.loads((DATA / "index.json").read_text())["messages"]
    names = args.names or [e["name"] for e in index]
    for name in names:
        if args.log_dir:
            args.log_dir.mkdir(parents=True, exist_ok=True)
        seen = probe(args.server, name, args.wait, args.log_dir, args.reasons)
        if args.json:
            print(json.dumps(seen), flush=True)
        else:
            extra = " ".join(f"{k}={v!r}" for k, v in seen.items() if k not in ("name", "responses", "app", "transport"))
            print(f"{name:11} {seen['transport']} responses={','.join(seen['responses'])} app={seen['app']} {extra}",  # type: ignore[arg-type]
                  flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
