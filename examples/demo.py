"""Demo: a real SIP call answered by a drachtio_srf app, end to end on this machine.

1. starts the embedded drachtio server (``python -m drachtio_srf.server``) on free loopback ports;
2. connects a small UAS app (below) to it with ``Srf``;
3. places a call to it with sipp (``examples/demo-call.xml``): the app answers with SDP, the caller
   puts the call on hold with a re-INVITE (``a=sendonly``), then hangs up;
4. prints each step as it happens and exits 0 if every step happened, non-zero otherwise.

Needs ``pip install -e .`` and sipp (Debian/Ubuntu: ``apt-get install sip-tester``).
Run: ``python examples/demo.py``.
"""
from __future__ import annotations

import os
import queue
import shutil
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

from drachtio_srf import Srf

HERE = Path(__file__).resolve().parent
SCENARIO = HERE / "demo-call.xml"
HOST = "127.0.0.1"
SECRET = "cymru"
STEP_TIMEOUT = 10.0

SDP = ("v=0\r\no=demo 1 1 IN IP4 127.0.0.1\r\ns=drachtio_srf demo\r\nc=IN IP4 127.0.0.1\r\n"
       "t=0 0\r\nm=audio 40000 RTP/AVP 0\r\na=rtpmap:0 PCMU/8000\r\na=sendrecv\r\n")


def say(who: str, text: str) -> None:
    print(f"[{who}] {text}", flush=True)


def free_port() -> int:
    """A port free on loopback for both UDP and TCP."""
    for _ in range(100):
        with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as t:
            t.bind((HOST, 0))
            port = t.getsockname()[1]
            with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as u:
                try:
                    u.bind((HOST, port))
                except OSError:
                    continue
            return port
    raise RuntimeError("no free port")


def wait_for_tcp(port: int, proc: subprocess.Popen, timeout: float = 10.0) -> None:
    deadline = time.monotonic() + timeout
    while True:
        try:
            with socket.create_connection((HOST, port), timeout=0.5):
                return
        except OSError:
            if proc.poll() is not None:
                raise RuntimeError(f"the server exited with code {proc.returncode}") from None
            if time.monotonic() > deadline:
                raise RuntimeError(f"the server is not listening on {HOST}:{port}") from None
            time.sleep(0.05)  # waiting for a child process to open its port: nothing to wait on


def install_app(srf: Srf, steps: queue.Queue) -> None:
    """The example app: answer every call, report hold and hang-up."""

    def on_invite(req: Any, res: Any) -> None:
        say("app", f"incoming call from {req.source_address}:{req.source_port} "
                   f"(Call-ID {req.get('Call-ID')})")
        try:
            dialog = srf.create_uas(req, res, local_sdp=SDP, headers={"User-Agent": "drachtio_srf demo"}).result(STEP_TIMEOUT)
        except Exception as err:  # noqa: BLE001 - reported as a failed step
            say("app", f"could not answer: {err!r}")
            steps.put(("failed", err))
            return
        say("app", f"answered the call: dialog {dialog.id}")
        steps.put(("answered", dialog))

        def on_hold(hold_req: Any) -> None:
            say("app", "the caller put the call on hold (re-INVITE with a=sendonly)")
            steps.put(("hold", hold_req))

        def on_destroy(bye: Any, *rest: Any) -> None:
            say("app", "the caller hung up (BYE)")
            steps.put(("hangup", bye))

        dialog.on("hold", on_hold)
        dialog.on("destroy", on_destroy)

    srf.invite(on_invite)


def run(workdir: str) -> int:
    if shutil.which("sipp") is None:
        say("demo", "sipp not found: install it (apt-get install sip-tester)")
        return 2
    admin_port, sip_port, sipp_port = free_port(), free_port(), free_port()
    server_log = Path(workdir) / "server.log"
    say("demo", f"starting the drachtio server: control {HOST}:{admin_port}, SIP {HOST}:{sip_port}")
    with open(server_log, "wb") as log:
        server = subprocess.Popen(
            [sys.executable, "-m", "drachtio_srf.server", "--address", HOST, "--port", str(admin_port),
             "--secret", SECRET, "--contact", f"sip:{HOST}:{sip_port};transport=udp,tcp"],
            stdout=log, stderr=subprocess.STDOUT)
    srf = Srf()
    sipp = None
    try:
        wait_for_tcp(admin_port, server)
        steps: queue.Queue = queue.Queue()
        install_app(srf, steps)
        result = srf.connect(host=HOST, port=admin_port, secret=SECRET).result(STEP_TIMEOUT)
        hostports = result[0] if isinstance(result, tuple) else result
        say("demo", f"app connected to the server (SIP on {hostports})")

        say("demo", f"placing a call with sipp from {HOST}:{sipp_port} to {HOST}:{sip_port}")
        with open(Path(workdir) / "sipp.out", "wb") as sipp_out:
            sipp = subprocess.Popen(
                ["sipp", "-sf", str(SCENARIO), "-i", HOST, "-p", str(sipp_port), "-m", "1", "-nostdin",
                 "-timeout", "20s", "-timeout_error", "-s", "demo", f"{HOST}:{sip_port}"],
                stdout=sipp_out, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL, cwd=workdir)

        for expected in ("answered", "hold", "hangup"):
            try:
                kind, value = steps.get(timeout=STEP_TIMEOUT)
            except queue.Empty:
                say("demo", f"FAILED: no '{expected}' step within {STEP_TIMEOUT:.0f}s")
                return 1
            if kind != expected:
                say("demo", f"FAILED: expected '{expected}', got '{kind}' {value!r}")
                return 1
        rc = sipp.wait(STEP_TIMEOUT)
        say("demo", f"sipp finished the call with exit code {rc}")
        if rc != 0:
            say("demo", "FAILED: sipp reported a failed call:\n"
                + (Path(workdir) / "sipp.out").read_text(errors="replace")[-3000:])
            return 1
        say("demo", "success: answered, held and hung up")
        return 0
    except Exception as err:  # noqa: BLE001 - the demo reports any failure and exits non-zero
        say("demo", f"FAILED: {err!r}")
        say("demo", "server log:\n" + server_log.read_text(errors="replace")[-3000:])
        return 1
    finally:
        if sipp is not None and sipp.poll() is None:
            sipp.kill()
            sipp.wait()
        srf.disconnect()
        server.terminate()
        try:
            server.wait(5)
        except subprocess.TimeoutExpired:
            server.kill()
            server.wait()


def main() -> int:
    with tempfile.TemporaryDirectory(prefix="drachtio-demo-") as workdir:
        return run(workdir)


if __name__ == "__main__":
    os.environ.setdefault("PYTHONUNBUFFERED", "1")
    sys.exit(main())
