"""Srf API entries the other files leave out: connect with every option spelling, close() and
the close/disconnect events, socket, disconnect(socket) in both modes, add_dialog/remove_dialog."""
from __future__ import annotations

import queue
import re
from collections.abc import Iterator

import pytest
from helpers import LOOPBACK, SECRET, ServerProcess, free_port
from itest_support import SDP, WAIT, Callback, get, invoke, no_leaked_threads

from drachtio_srf import Srf


def test_connect_with_every_option_spelling_then_close(server, style):
    """connect(host, port, secret, tags, reconnect, enable_ping/enablePing, ping_interval/
    pingInterval) gives (hostport, version, local_hostports) to the callback, the hostport to the
    Future; close() (same method as disconnect) emits close and disconnect with the connection,
    leaves socket None and stops every thread."""
    events: queue.Queue = queue.Queue()
    with no_leaked_threads():
        srf = Srf(["api-test", "tag:2"])
        assert srf.tags == ["api-test", "tag:2"]
        srf.on("close", lambda conn: events.put(("close", conn)))
        srf.on("disconnect", lambda conn: events.put(("disconnect", conn)))
        if style == "callback":
            cb = Callback()
            ret = srf.connect({"host": LOOPBACK, "port": server.admin_port, "secret": SECRET,
                               "enablePing": True, "pingInterval": 5000,
                               "reconnect": {"maxAttempts": 2, "retryMaxDelay": 1000}}, cb)
            assert ret is srf
            hostport, version, local_hostports = cb.result(WAIT)
            # a git build of drachtio-server reports e.g. v0.9.10, a release tarball 1.0.0
            assert re.match(r"v?\d+\.\d+\.\d+", version), version
            assert f"{LOOPBACK}:{server.sip_port}" in local_hostports
        else:
            hostport = srf.connect(host=LOOPBACK, port=server.admin_port, secret=SECRET, tags=["other"],
                                   enable_ping=True, ping_interval=5.0, reconnect=False).result(WAIT)
        assert f"{LOOPBACK}:{server.sip_port}" in hostport
        assert srf.connected
        conn = srf.socket
        assert conn is not None and not conn.outbound
        assert Srf.close is Srf.disconnect
        srf.close()
        got = dict(get(events, "close and disconnect events") for _ in range(2))
        assert got == {"close": conn, "disconnect": conn}
        assert srf.socket is None and not srf.connected


def test_bad_tags_and_ping_interval_are_refused():
    """Srf(tags) checks each tag; connect checks the ping interval (5..300 s)."""
    with pytest.raises(ValueError):
        Srf(["has space"])
    with pytest.raises(ValueError):
        Srf(["t"] * 21)
    srf = Srf()
    with pytest.raises(ValueError):
        srf.connect({"host": LOOPBACK, "port": free_port(), "pingInterval": 1000})


def test_disconnect_with_the_client_socket_does_not_reconnect(server):
    """In client mode disconnect(srf.socket) is a full disconnect: close event, no reconnecting,
    no thread left (as drachtio-srf)."""
    events: queue.Queue = queue.Queue()
    with no_leaked_threads():
        srf = Srf()
        srf.on("close", lambda conn: events.put("close"))
        srf.on("reconnecting", lambda info: events.put("reconnecting"))
        srf.connect(host=LOOPBACK, port=server.admin_port, secret=SECRET).result(WAIT)
        srf.disconnect(srf.socket)
        assert get(events, "the close event") == "close"
        assert not srf.connected and srf.socket is None
    assert events.empty(), events.get()


def test_add_and_remove_dialog(srf, far_end, style):
    """remove_dialog takes a dialog out of the registry, add_dialog puts it back (JS names are
    the same methods); the re-added dialog still works."""
    sipp = far_end("uas-answer.xml")
    dialog = invoke(style, srf.create_uac, f"sip:farend@{LOOPBACK}:{sipp.port}",
                    opts={"local_sdp": SDP}).result(WAIT)
    assert Srf.addDialog is Srf.add_dialog and Srf.removeDialog is Srf.remove_dialog
    assert srf.findDialogById(dialog.id) is dialog
    srf.removeDialog(dialog)
    assert srf.find_dialog_by_id(dialog.id) is None
    srf.add_dialog(dialog)
    assert srf.find_dialog_by_id(dialog.id) is dialog
    srf.remove_dialog(dialog)
    srf.addDialog(dialog)
    invoke(style, dialog.destroy).result(WAIT)
    sipp.expect_success()
    assert srf.find_dialog_by_id(dialog.id) is None


# -- outbound-connection mode -------------------------------------------------------------------

@pytest.fixture(scope="module")
def outbound_server() -> Iterator[ServerProcess]:
    app_port = free_port()
    proc = ServerProcess(extra=["--outbound", f"INVITE=tcp://{LOOPBACK}:{app_port}"])
    proc.app_port = app_port  # type: ignore[attr-defined]
    yield proc
    proc.stop()


def test_disconnect_one_socket_in_listen_mode(outbound_server, far_end, style):
    """listen(): `listening` fires (callback or event); disconnect(req.socket) closes only that
    server connection (close event with it); the app keeps listening and takes the next call."""
    events: queue.Queue = queue.Queue()
    with no_leaked_threads():
        srf = Srf()
        srf.on("close", lambda conn: events.put(("close", conn)))

        def on_invite(req, res):
            res.send(486)
            events.put(("invite", req.socket))
        srf.invite(on_invite)
        try:
            opts = {"port": outbound_server.app_port, "host": LOOPBACK, "secret": SECRET}
            if style == "callback":
                srf.listen(opts, lambda: events.put(("listening", None)))
            else:
                srf.on("listening", lambda: events.put(("listening", None)))
                assert srf.listen(**opts).port == outbound_server.app_port
            assert get(events, "listening") == ("listening", None)

            first = far_end("uac-expect-486.xml", outbound_server.sip_port)
            kind, conn = get(events, "the first INVITE")
            assert kind == "invite" and conn.outbound
            first.expect_success()
            srf.disconnect(conn)
            assert get(events, "the close event") == ("close", conn) and conn.closed

            second = far_end("uac-expect-486.xml", outbound_server.sip_port)
            kind, conn2 = get(events, "the second INVITE")
            second.expect_success()
            assert kind == "invite" and conn2 is not conn and not conn2.closed
        finally:
            srf.disconnect()
