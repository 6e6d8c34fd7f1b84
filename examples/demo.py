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
import sys
from pathlib import Path
from typing import Any

from drachtio_srf import Srf
from drachtio_srf.testing import ServerProcess, Sipp, free_port

HERE = Path(__file__).resolve().parent
SCENARIO = HERE / "demo-call.xml"
HOST = "127.0.0.1"
SECRET = "cymru"
STEP_TIMEOUT = 10.0

SDP = ("v=0\r\no=demo 1 1 IN IP4 127.0.0.1\r\ns=drachtio_srf demo\r\nc=IN IP4 127.0.0.1\r\n"
       "t=0 0\r\nm=audio 40000 RTP/AVP 0\r\na=rtpmap:0 PCMU/8000\r\na=sendrecv\r\n")


def say(who: str, text: str) -> None:
    print(f"[{who}] {text}", flush=True)


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


def run() -> int:
    if shutil.which("sipp") is None:
        say("demo", "sipp not found: install it (apt-get install sip-tester)")
        return 2
    # the embedded server on free ports, as the pytest plugin's drachtio_server fixture starts it
    server = ServerProcess(secret=SECRET)
    say("demo", f"starting the drachtio server: control {HOST}:{server.admin_port}, SIP {HOST}:{server.sip_port}")
    srf = Srf()
    sipp = None
    try:
        steps: queue.Queue = queue.Queue()
        install_app(srf, steps)
        result = srf.connect(host=HOST, port=server.admin_port, secret=SECRET).result(STEP_TIMEOUT)
        hostports = result[0] if isinstance(result, tuple) else result
        say("demo", f"app connected to the server (SIP on {hostports})")

        sipp_port = free_port()
        say("demo", f"placing a call with sipp from {HOST}:{sipp_port} to {HOST}:{server.sip_port}")
        sipp = Sipp(server.sip_port, scenario=str(SCENARIO), service="demo", timeout="20s", port=sipp_port)

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
            say("demo", "FAILED: sipp reported a failed call:\n" + sipp.report(3000))
            return 1
        say("demo", "success: answered, held and hung up")
        return 0
    except Exception as err:  # noqa: BLE001 - the demo reports any failure and exits non-zero
        say("demo", f"FAILED: {err!r}")
        say("demo", "server log:\n" + server.log()[-3000:])
        return 1
    finally:
        if sipp is not None:
            sipp.close()
        srf.disconnect()
        server.close()


def main() -> int:
    return run()


if __name__ == "__main__":
    os.environ.setdefault("PYTHONUNBUFFERED", "1")
    sys.exit(main())
