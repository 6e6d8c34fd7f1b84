"""Wire trace switched on from the environment: a real call (sipp through the embedded server)
answered by an app in a subprocess, whose stderr must show every SIP message and frame in full."""
from __future__ import annotations

import os
import queue
import re
import subprocess
import sys
import textwrap
import threading
from pathlib import Path

import pytest
from helpers import LOOPBACK, SECRET, Sipp
from itest_support import WAIT

ROOT = Path(__file__).resolve().parents[2]

# the app: answers one INVITE, prints "ready" once connected and "ended" when the far end hangs up
APP = textwrap.dedent("""
    import sys, threading
    from drachtio_srf import Srf

    SDP = "v=0\\r\\no=- 1 1 IN IP4 127.0.0.1\\r\\ns=-\\r\\nc=IN IP4 127.0.0.1\\r\\nt=0 0\\r\\n" \\
          "m=audio 40000 RTP/AVP 0\\r\\na=rtpmap:0 PCMU/8000\\r\\n"
    ended = threading.Event()
    srf = Srf()

    def on_invite(req, res):
        def on_dialog(err, dialog=None):
            if err:
                print("error", err, flush=True)
                ended.set()
                return
            dialog.on("destroy", lambda *a: ended.set())
        srf.createUAS(req, res, {"localSdp": SDP, "headers": {"X-Trace-Test": "yes"}}, on_dialog)

    srf.invite(on_invite)
    srf.connect(host=sys.argv[1], port=int(sys.argv[2]), secret=sys.argv[3]).result(20)
    print("ready", flush=True)
    ended.wait(60)
    print("ended", flush=True)
    srf.disconnect()
""")


def _run_call(server, env_extra: dict[str, str]) -> str:
    """Run the app with ``env_extra`` in its environment through one sipp call; its stderr."""
    env = {k: v for k, v in os.environ.items() if k not in ("DRACHTIO_DEBUG", "DEBUG")}
    env.update(env_extra)
    env["PYTHONPATH"] = str(ROOT) + os.pathsep + env.get("PYTHONPATH", "")
    app = subprocess.Popen([sys.executable, "-c", APP, LOOPBACK, str(server.admin_port), SECRET],
                           stdout=subprocess.PIPE, stderr=subprocess.PIPE, env=env)
    lines: queue.Queue = queue.Queue()
    err_chunks: list[str] = []

    def pump_out() -> None:
        assert app.stdout is not None
        for line in app.stdout:
            lines.put(line.decode().strip())
        lines.put(None)

    def pump_err() -> None:
        assert app.stderr is not None
        err_chunks.append(app.stderr.read().decode())  # bytes: keep the CRLFs of SIP

    threads = [threading.Thread(target=pump_out, daemon=True),
               threading.Thread(target=pump_err, daemon=True)]
    for t in threads:
        t.start()
    sipp = None
    try:
        assert lines.get(timeout=WAIT) == "ready"
        sipp = Sipp(server.sip_port, scenario="uac")
        assert sipp.wait(30) == 0, sipp.output()
        assert lines.get(timeout=WAIT) == "ended"
        app.wait(WAIT)
    finally:
        if sipp is not None:
            sipp.stop()
        if app.poll() is None:
            app.kill()
            app.wait(5)
        for t in threads:
            t.join(5)
    assert app.returncode == 0, "".join(err_chunks)[-4000:]
    return "".join(err_chunks)


def _records(stderr: str, logger: str) -> list[tuple[str, str]]:
    """(header, text) of each trace record of ``logger`` in the default stderr format."""
    out = []
    pattern = re.compile(rf"^\S+ \S+ {re.escape(logger)} (recv|send) (\S+) (\S+) (\d+) bytes$",
                         re.MULTILINE)
    matches = list(pattern.finditer(stderr))
    for i, m in enumerate(matches):
        end = matches[i + 1].start() if i + 1 < len(matches) else len(stderr)
        nxt = re.search(r"^\d{4}-\d\d-\d\d \d\d:", stderr[m.end() + 1:end], re.MULTILINE)
        text = stderr[m.end() + 1: m.end() + 1 + nxt.start()] if nxt else stderr[m.end() + 1:end]
        out.append((m.group(0), text))
    return out


@pytest.mark.parametrize("env", [{"DRACHTIO_DEBUG": "1"}, {"DEBUG": "drachtio:*"}],
                         ids=["DRACHTIO_DEBUG", "DEBUG"])
def test_trace_shows_every_sip_message_in_full(server, env):
    """INVITE, 200, ACK and BYE appear on drachtio_srf.trace.sip with headers and body (the
    server answers the BYE itself: that 200 is in the server's trace); the control frames
    carrying them appear on drachtio_srf.trace.control, both directions."""
    stderr = _run_call(server, env)
    sip = _records(stderr, "drachtio_srf.trace.sip")
    firsts = [(hdr.split()[3], text.splitlines()[0] if text else "") for hdr, text in sip]
    assert ("recv", f"INVITE sip:service@127.0.0.1:{server.sip_port} SIP/2.0") in firsts, firsts
    assert ("send", "SIP/2.0 200 OK") in firsts, firsts
    assert any(d == "recv" and line.startswith("ACK ") for d, line in firsts), firsts
    assert any(d == "recv" and line.startswith("BYE ") for d, line in firsts), firsts
    invite = next(text for hdr, text in sip if text.startswith("INVITE "))
    # sipp's whole INVITE, SDP to its last line (the record adds one newline)
    assert "\r\nCall-ID: " in invite and re.search(r"\r\nm=audio \d+ RTP/AVP 0\r\n", invite)
    assert invite.endswith("\r\na=rtpmap:0 PCMU/8000\r\n\n")
    ok = next(text for hdr, text in sip if text.startswith("SIP/2.0 200 OK") and "INVITE" in text)
    assert "X-Trace-Test: yes" in ok and "m=audio 40000 RTP/AVP 0" in ok
    hdr = next(h for h, text in sip if text.startswith("INVITE "))
    assert f" udp {LOOPBACK}:" in hdr

    control = _records(stderr, "drachtio_srf.trace.control")
    directions = {hdr.split()[3] for hdr, _ in control}
    assert directions == {"send", "recv"}
    assert any("|authenticate|" in text and hdr.split()[3] == "send" for hdr, text in control)
    assert any("|sip|network|" in text and "INVITE sip:" in text for _, text in control)
    for hdr, text in control:  # the byte count is the payload's (+ the record's newline): not cut
        assert int(hdr.split()[-2]) == len(text.encode()) - 1, (hdr, text)


def test_no_trace_when_unset(server):
    """Without DRACHTIO_DEBUG / DEBUG the same call writes nothing of the trace to stderr."""
    stderr = _run_call(server, {})
    assert "drachtio_srf.trace" not in stderr
    assert "INVITE sip:" not in stderr
