"""The plugin as a user gets it: pytest run in a fresh directory (no conftest, no test/ helpers
on the path) finds the fixtures through the pytest11 entry point of the installed package."""
from __future__ import annotations

import os
import subprocess
import sys
import textwrap

APP = '''
"""A user's app: answers every call with a fixed SDP and a custom header."""
SDP = "v=0\\r\\no=me 1 1 IN IP4 127.0.0.1\\r\\ns=-\\r\\nc=IN IP4 127.0.0.1\\r\\nt=0 0\\r\\nm=audio 7000 RTP/AVP 0\\r\\n"

def install(srf):
    def on_invite(req, res):
        srf.create_uas(req, res, local_sdp=SDP, headers={"X-App": "mine"})
    srf.invite(on_invite)
'''

TESTS = '''
import my_app

def test_peer_call(srf, drachtio_server, sip_peer):
    my_app.install(srf)
    call = sip_peer.invite(drachtio_server.sip_uri)
    assert call.status == 200
    assert call.final.get("X-App") == "mine"
    assert "m=audio 7000" in call.remote_sdp
    assert call.bye().status == 200

def test_sipp_call(srf, drachtio_server, sipp):
    my_app.install(srf)
    sipp("uac", drachtio_server).expect_success()

def test_failure_shows_sip_messages(srf, drachtio_server, sip_peer):
    my_app.install(srf)
    call = sip_peer.invite(drachtio_server.sip_uri)
    assert call.status == 486

def test_session_server_shared(srf_factory, drachtio_server_session, sip_peer_factory):
    app = srf_factory(drachtio_server_session)
    my_app.install(app)
    for peer in (sip_peer_factory(), sip_peer_factory()):
        assert peer.invite(drachtio_server_session.sip_uri).bye().status == 200

def test_session_server_is_the_same(drachtio_server_session):
    assert drachtio_server_session.running()
'''

LEAK = '''
import threading

def test_leaves_a_library_thread_running(srf):
    stop = threading.Event()
    threading.Thread(target=stop.wait, args=(30,), name="drachtio-leaked", daemon=True).start()
'''


def _run_pytest(tmp_path, *args: str) -> subprocess.CompletedProcess[str]:
    (tmp_path / "my_app.py").write_text(textwrap.dedent(APP))
    (tmp_path / "test_my_app.py").write_text(textwrap.dedent(TESTS))
    env = {k: v for k, v in os.environ.items()
           if k not in ("PYTHONPATH", "PYTEST_ADDOPTS", "PYTEST_DISABLE_PLUGIN_AUTOLOAD")}
    return subprocess.run([sys.executable, "-m", "pytest", "-p", "no:cacheprovider", "-q",
                           "--rootdir", str(tmp_path), *args],
                          cwd=tmp_path, env=env, capture_output=True, text=True, timeout=110, check=False)


def test_user_test_file_runs_with_only_the_plugin(tmp_path):
    out = _run_pytest(tmp_path)
    text = out.stdout + out.stderr
    assert "1 failed, 4 passed" in text, text
    # the deliberate failure shows the call: every SIP message of the peer, the server's log
    assert "sip peer sip:peer@127.0.0.1:" in text, text
    assert "--- sent to 127.0.0.1:" in text and "INVITE sip:127.0.0.1:" in text, text
    assert "--- received ---\nSIP/2.0 200 OK" in text and "X-App: mine" in text, text
    assert "drachtio server log" in text, text
    assert "conftest" not in text


def test_srf_fixture_fails_a_test_that_leaves_a_library_thread(tmp_path):
    (tmp_path / "test_leak.py").write_text(textwrap.dedent(LEAK))
    env = {k: v for k, v in os.environ.items() if k not in ("PYTHONPATH", "PYTEST_ADDOPTS")}
    out = subprocess.run([sys.executable, "-m", "pytest", "-p", "no:cacheprovider", "-q",
                          "--rootdir", str(tmp_path), "test_leak.py"], cwd=tmp_path, env=env,
                         capture_output=True, text=True, timeout=110, check=False)
    text = out.stdout + out.stderr
    assert "1 passed, 1 error" in text, text
    assert "drachtio threads still running after disconnect: ['drachtio-leaked']" in text, text
