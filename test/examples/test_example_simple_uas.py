"""examples/simple_uas.py, tested with the drachtio_srf pytest plugin's fixtures only: the Python
SIP peer calls it, and sipp too."""
from __future__ import annotations

from examples import simple_uas


def test_answers_with_callers_sdp_then_holds_and_unholds(srf, drachtio_server, sip_peer):
    simple_uas.install(srf, hold_after=0.05, unhold_after=0.05)

    call = sip_peer.invite(drachtio_server.sip_uri)

    assert call.status == 200
    assert call.final.get("user-agent") == "simple-uas"
    assert "c=IN IP4 0.0.0.0" in call.remote_sdp          # the caller's SDP, address blanked
    assert "m=audio 49170 RTP/AVP 0" in call.remote_sdp
    hold = call.wait_for("INVITE")                         # the re-INVITE putting us on hold
    assert "a=inactive" in hold.body or "a=sendonly" in hold.body
    unhold = call.wait_for("INVITE")
    assert "a=sendrecv" in unhold.body
    assert call.bye().status == 200


def test_sipp_call_completes(srf, drachtio_server, sipp):
    simple_uas.install(srf, hold_after=5, unhold_after=5)
    sipp("uac", drachtio_server).expect_success()


def test_port_defaults_to_the_servers_9022(monkeypatch):
    for name in ("DRACHTIO_HOST", "DRACHTIO_PORT", "DRACHTIO_SECRET"):
        monkeypatch.delenv(name, raising=False)
    assert simple_uas.server_address([]) == ("127.0.0.1", 9022, "cymru")
    monkeypatch.setenv("DRACHTIO_PORT", "9999")
    assert simple_uas.server_address([]) == ("127.0.0.1", 9999, "cymru")
    assert simple_uas.server_address(["10.0.0.1", "7000", "s"]) == ("10.0.0.1", 7000, "s")


def test_runs_as_a_script_configured_by_environment(drachtio_server, sip_peer):
    """``python examples/simple_uas.py`` with DRACHTIO_PORT set connects and answers calls."""
    import os
    import queue
    import subprocess
    import sys
    import threading
    from pathlib import Path

    script = Path(simple_uas.__file__)
    env = dict(os.environ, DRACHTIO_PORT=str(drachtio_server.admin_port), PYTHONUNBUFFERED="1")
    proc = subprocess.Popen([sys.executable, str(script)], env=env, stderr=subprocess.PIPE,
                            stdout=subprocess.DEVNULL, text=True)
    lines: queue.Queue = queue.Queue()
    reader = threading.Thread(target=lambda: [lines.put(line) for line in proc.stderr], daemon=True)
    reader.start()
    try:
        seen = []
        while not any("connected to drachtio server" in line for line in seen):
            seen.append(lines.get(timeout=10))
        call = sip_peer.invite(drachtio_server.sip_uri)
        assert call.status == 200 and call.final.get("user-agent") == "simple-uas"
        assert call.bye().status == 200
    finally:
        proc.terminate()
        proc.wait(10)
