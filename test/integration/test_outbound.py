"""Outbound-connection mode: the server dials an app that listens (srf.listen), per request.

The embedded server is started with ``--outbound INVITE=tcp://...`` (an exact method) and
``--outbound "*=tcp://..."`` (any other method), each pointing at its own app port.
"""
from __future__ import annotations

import queue
from collections.abc import Iterator
from typing import Any

import pytest
from helpers import LOOPBACK, SECRET, ServerProcess, free_port
from itest_support import SDP, WAIT, complete, get, no_leaked_threads

from drachtio_srf import Srf


@pytest.fixture(scope="module")
def server() -> Iterator[ServerProcess]:
    invite_port, other_port = free_port(), free_port()
    proc = ServerProcess(extra=["--outbound", f"INVITE=tcp://{LOOPBACK}:{invite_port}",
                                "--outbound", f"*=tcp://{LOOPBACK}:{other_port}"])
    proc.invite_app_port = invite_port  # type: ignore[attr-defined]
    proc.other_app_port = other_port    # type: ignore[attr-defined]
    yield proc
    proc.stop()


@pytest.fixture
def app() -> Iterator[Srf]:
    """An Srf not connected anywhere; it will listen. Nothing may keep running after disconnect."""
    with no_leaked_threads():
        srf = Srf()
        errors: list[Any] = []
        srf.on("error", lambda *args: errors.append(args))
        try:
            yield srf
        finally:
            srf.disconnect()
        assert not errors, f"Srf emitted 'error' during the test: {errors}"


def listen(app: Srf, style: str, port: int) -> None:
    """srf.listen in the test's style; returns once the app is listening."""
    listening: queue.Queue = queue.Queue()
    if style == "callback":
        app.listen({"port": port, "host": LOOPBACK, "secret": SECRET}, lambda: listening.put(True))
    else:
        app.on("listening", lambda: listening.put(True))
        listener = app.listen(port=port, host=LOOPBACK, secret=SECRET)
        assert listener.port == port
    get(listening, "the listening event")


def test_app_in_outbound_mode_answers_a_call(server, app, far_end, style):
    """The server connects to the app for the INVITE; the app authenticates, gets the INVITE as
    the first request on that connection, answers it with create_uas, and the far end's BYE
    comes in on the same connection."""
    connects: queue.Queue = queue.Queue()
    answered: queue.Queue = queue.Queue()
    destroyed: queue.Queue = queue.Queue()
    app.on("connect", lambda err, hostport=None, *rest: connects.put((err, hostport)))

    def on_invite(req, res):
        def then(err, dialog):
            if err is not None:
                answered.put(err)
                return
            dialog.on("destroy", lambda bye, *rest: destroyed.put(bye))
            answered.put((req, dialog))
        complete(style, then, app.create_uas, req, res, opts={"local_sdp": SDP})

    app.invite(on_invite)
    listen(app, style, server.invite_app_port)
    sipp = far_end("uac-answer-bye.xml", server.sip_port)

    err, hostport = get(connects, "the server's connection to the listening app")
    assert err is None
    assert f"{LOOPBACK}:{server.sip_port}" in hostport
    got = get(answered, "create_uas on the outbound connection")
    assert not isinstance(got, BaseException), f"create_uas failed: {got!r}"
    req, dialog = got
    assert req.method == "INVITE" and req.get("Call-ID") == f"{sipp.call_id_prefix}-1"
    assert req.socket is not None and req.socket.outbound
    bye = get(destroyed, "the far end's BYE on the same connection")
    sipp.expect_success()
    assert bye.method == "BYE" and bye.socket is req.socket
    assert dialog.connected is False


def test_unhandled_request_gets_404_and_the_connection_is_closed(server, app, far_end, style):
    """A request no handler takes is answered 404 and the app closes that server connection."""
    connected: queue.Queue = queue.Queue()
    closed: queue.Queue = queue.Queue()
    app.on("connect", lambda err, *rest: connected.put(err))
    app.on("close", lambda conn: closed.put(conn))
    app.invite(lambda req, res: res.send(500))     # routes INVITE only; OPTIONS falls through
    listen(app, style, server.other_app_port)
    sipp = far_end("uac-options-expect-404.xml", server.sip_port)

    assert get(connected, "the server's connection for the OPTIONS") is None
    conn = get(closed, "the app closing the connection after its 404")
    sipp.expect_success()
    assert conn.outbound and conn.closed


def test_app_not_listening_gives_480(server, far_end):
    """Nobody listens at the INVITE's outbound target: the caller gets 480 from the server."""
    sipp = far_end("uac-expect-480.xml", server.sip_port)
    sipp.expect_success()
    assert "480" in server.log()


def test_each_request_gets_its_own_connection(server, app, far_end, style):
    """Two calls in a row reach the app on two connections, each authenticated separately."""
    connects: queue.Queue = queue.Queue()
    sockets: queue.Queue = queue.Queue()
    app.on("connect", lambda err, *rest: connects.put(err))

    def on_invite(req, res):
        sockets.put(req.socket)
        complete(style, lambda err, dialog: None, app.create_uas, req, res, opts={"local_sdp": SDP})

    app.invite(on_invite)
    listen(app, style, server.invite_app_port)
    sipp = far_end("uac-answer-bye.xml", server.sip_port, calls=2)
    first, second = get(sockets, "the first INVITE"), get(sockets, "the second INVITE", WAIT)
    sipp.expect_success()
    assert get(connects, "first authenticate") is None and get(connects, "second authenticate") is None
    assert first is not second
