"""The Srf object's own API: middleware, locals and settings, srf.request + cancel, the dialog
registry, connection events across a server restart, a malformed frame, package exports."""
from __future__ import annotations

import contextlib
import queue
import socket
import threading
from collections.abc import Iterator
from typing import Any

import pytest
from helpers import LOOPBACK, SECRET, ServerProcess
from itest_support import SDP, WAIT, complete, get, invoke, no_leaked_threads

import drachtio_srf
from drachtio_srf import SipError, Srf, wire

READER_MARK = "-reader-"


# -- middleware, locals, settings ---------------------------------------------------------------

def test_middleware_chain_next_err_reaches_error_handler_and_sets_status(srf, server, far_end):
    """use(fn) runs for every method, use('invite', fn) for INVITEs only, use('options', fn) not
    at all; next(SipError(486)) skips the verb handler, reaches the 4-argument error handler,
    whose next(err) makes the final handler answer 486 (sipp expects it)."""
    seen: queue.Queue = queue.Queue()
    srf.locals["greeting"] = "croeso"
    assert srf.set("app-name", "itest") is srf
    assert srf.get("app-name") == "itest" and srf.get("unset") is None

    @srf.use
    def everything(req, res, next_):
        seen.put(("all", req.method, req.srf.locals["greeting"], req.srf.get("app-name")))
        next_()

    srf.use("options", lambda req, res, next_: seen.put(("options-only", req.method)))

    def busy(req, res, next_):
        seen.put(("invite-only", req.method))
        next_(SipError(486, "Busy Here"))
    srf.use("invite", busy)

    def on_error(err, req, res, next_):
        seen.put(("error-handler", err.status))
        next_(err)
    srf.use(on_error)
    srf.invite(lambda req, res: seen.put(("verb handler", req.method)))

    sipp = far_end("uac-expect-486.xml", server.sip_port)
    sipp.expect_success()
    order = [get(seen, f"middleware step {n + 1}") for n in range(3)]
    assert order == [("all", "INVITE", "croeso", "itest"), ("invite-only", "INVITE"),
                     ("error-handler", 486)]
    assert seen.empty(), f"ran after the error: {seen.get()}"


def test_middleware_exception_without_error_handler_gives_500(srf, server, far_end):
    """A middleware that raises, with no error handler in the chain, makes the far end get 500."""
    reached: queue.Queue = queue.Queue()

    def broken(req, res, next_):
        reached.put(req.method)
        raise RuntimeError("database down")
    srf.use("invite", broken)
    srf.invite(lambda req, res: reached.put("verb handler"))

    sipp = far_end("uac-expect-500.xml", server.sip_port)
    sipp.expect_success()
    assert get(reached, "the middleware") == "INVITE"
    assert reached.empty()


# -- srf.request ----------------------------------------------------------------------------------

def test_request_invite_then_cancel(srf, far_end, style):
    """srf.request(uri, {method: 'INVITE'}) gives the sent request; its response events show the
    180; req.cancel() CANCELs it (sipp answers 200 + 487) and the 487 arrives as a response event."""
    sipp = far_end("uas-ring-cancel.xml")
    uri = f"sip:farend@{LOOPBACK}:{sipp.port}"
    opts = {"method": "INVITE", "body": SDP, "headers": {"Content-Type": "application/sdp"}}
    statuses: queue.Queue = queue.Queue()

    def on_response(res, ack=None):
        statuses.put(res.status)

    sent: queue.Queue = queue.Queue()

    def then(err, req):
        if req is not None:
            req.on("response", on_response)
        sent.put(err or req)
    complete(style, then, srf.request, uri, opts=opts)
    req = get(sent, "the INVITE to be sent")
    assert not isinstance(req, BaseException), f"srf.request failed: {req!r}"
    assert req.method == "INVITE" and req.source == "application"
    assert req.get("Content-Type") == "application/sdp" and req.body == SDP

    assert get(statuses, "the 180") == 180
    cancel = invoke(style, req.cancel).result(WAIT)
    assert getattr(cancel, "method", None) == "CANCEL"
    assert get(statuses, "the 487") == 487
    sipp.expect_success()


# -- dialog registry ------------------------------------------------------------------------------

def test_find_dialog_by_call_id_and_from_tag(srf, server, far_end, style):
    """A UAS dialog is found by (Call-ID, far end's From tag), a UAC dialog by (Call-ID, our tag);
    the JS alias findDialogByCallIDAndFromTag is the same method; ended dialogs are gone."""
    answered: queue.Queue = queue.Queue()

    def on_invite(req, res):
        complete(style, lambda err, dialog: answered.put(err or dialog), srf.create_uas, req, res,
                 opts={"local_sdp": SDP})
    srf.invite(on_invite)
    caller = far_end("uac-answer-recv-bye.xml", server.sip_port)
    uas = get(answered, "create_uas to complete")
    assert not isinstance(uas, BaseException), f"create_uas failed: {uas!r}"
    callee = far_end("uas-answer.xml")
    uac = invoke(style, srf.create_uac, f"sip:farend@{LOOPBACK}:{callee.port}",
                 opts={"local_sdp": SDP}).result(WAIT)

    call_id = f"{caller.call_id_prefix}-1"
    assert srf.find_dialog_by_call_id_and_from_tag(call_id, "itest-1") is uas
    assert srf.findDialogByCallIDAndFromTag(call_id, "itest-1") is uas
    assert srf.find_dialog_by_call_id_and_from_tag(uac.sip.call_id, uac.sip.local_tag) is uac
    assert srf.find_dialog_by_call_id_and_from_tag(call_id, "no-such-tag") is None
    assert srf.find_dialog_by_call_id_and_from_tag(uac.sip.call_id, uac.sip.remote_tag) is None

    for dialog in (uas, uac):
        invoke(style, dialog.destroy).result(WAIT)
    caller.expect_success()
    callee.expect_success()
    assert srf.find_dialog_by_call_id_and_from_tag(call_id, "itest-1") is None
    assert srf.find_dialog_by_call_id_and_from_tag(uac.sip.call_id, uac.sip.local_tag) is None


# -- connection events ------------------------------------------------------------------------------

def test_connect_close_reconnecting_events_across_a_server_restart(far_end, style):
    """connect(err, hostport, version, local_hostports) on connecting; when the server stops:
    close and reconnecting({delay, attempt}); a new server on the same ports: connect again,
    the INVITE route is re-registered and a new call is answered."""
    events: queue.Queue = queue.Queue()
    answered: queue.Queue = queue.Queue()
    first = ServerProcess()
    second: ServerProcess | None = None

    listener_threads: set[str] = set()

    def record(event: tuple) -> None:
        listener_threads.add(threading.current_thread().name)
        events.put(event)

    def on_connect(err, *info):
        record(("connect", err, info))

    with no_leaked_threads():
        srf = Srf()
        srf.on("close", lambda *args: record(("close",)))
        srf.on("reconnecting", lambda info: record(("reconnecting", info)))
        srf.on("error", lambda err: record(("error", err)))

        def on_invite(req, res):
            complete(style, lambda err, dialog: answered.put(err or dialog), srf.create_uas, req, res,
                     opts={"local_sdp": SDP})
        srf.invite(on_invite)
        try:
            opts = {"host": LOOPBACK, "port": first.admin_port, "secret": SECRET}
            if style == "callback":
                srf.connect(opts, on_connect)
            else:
                srf.on("connect", on_connect)
                srf.connect(**opts).result(WAIT)
            kind, err, info = get(events, "the connect event")
            assert (kind, err) == ("connect", None)
            hostport, version, local_hostports = info
            assert f"{LOOPBACK}:{first.sip_port}" in hostport
            assert version.startswith("v") and f"{LOOPBACK}:{first.sip_port}" in local_hostports

            first.stop()
            seen = [get(events, "close and reconnecting events") for _ in range(2)]
            seen_kinds = {e[0] for e in seen}
            while not {"close", "reconnecting"} <= seen_kinds:
                seen.append(get(events, "close and reconnecting events"))
                seen_kinds.add(seen[-1][0])
            info = next(e[1] for e in seen if e[0] == "reconnecting")
            assert info["attempt"] >= 1 and info["delay"] > 0
            assert not srf.connected

            second = ServerProcess(admin_port=first.admin_port, sip_port=first.sip_port)
            while True:
                event = get(events, "the connect event after the restart", timeout=15)
                if event[0] == "connect":
                    break
            assert event[1] is None and f"{LOOPBACK}:{second.sip_port}" in event[2][0]
            assert srf.connected

            sipp = far_end("uac-answer-bye.xml", second.sip_port)
            dialog = get(answered, "the call after the reconnect")
            assert not isinstance(dialog, BaseException), f"create_uas failed: {dialog!r}"
            sipp.expect_success()
        finally:
            srf.disconnect()
            first.stop()
            if second is not None:
                second.stop()
    # emitted while a reader or reconnect thread noticed the change, heard on the workers
    assert listener_threads and all(n.startswith("drachtio-worker-") for n in listener_threads), \
        listener_threads


class GarbageServer:
    """A raw control server: authenticates each app connection; on the first one it then sends
    bytes that are not a drachtio frame."""

    def __init__(self) -> None:
        self._lsock = socket.create_server((LOOPBACK, 0))
        self.port = self._lsock.getsockname()[1]
        self.accepted = 0
        self._conns: list[socket.socket] = []
        self._thread = threading.Thread(target=self._run, name="test-garbage-server", daemon=True)
        self._thread.start()

    def _run(self) -> None:
        while True:
            try:
                conn, _ = self._lsock.accept()
            except OSError:
                return
            self._conns.append(conn)
            self.accepted += 1
            decoder = wire.FrameDecoder()
            frames: list[str] = []
            while not frames:
                data = conn.recv(65536)
                if not data:
                    break
                frames = decoder.feed(data)
            if not frames:
                continue
            auth = wire.parse(frames[0])
            hostport = "udp/127.0.0.1:5060"
            conn.sendall(wire.encode(wire.reply(wire.new_id(), auth.msg_id, "OK",
                                                [hostport, "v0.9.10", hostport])))
            if self.accepted == 1:
                conn.sendall(b"12x#not a frame at all")

    def close(self) -> None:
        # shutdown() wakes the accept() blocked in _run (close() alone does not, on Linux)
        with contextlib.suppress(OSError):
            self._lsock.shutdown(socket.SHUT_RDWR)
        self._lsock.close()
        for c in self._conns:
            with contextlib.suppress(OSError):
                c.shutdown(socket.SHUT_RDWR)
            c.close()
        self._thread.join(5)
        assert not self._thread.is_alive(), "the garbage server's accept loop did not stop"


@pytest.fixture
def garbage_server() -> Iterator[GarbageServer]:
    gs = GarbageServer()
    yield gs
    gs.close()


def test_malformed_frame_drops_and_reestablishes_the_connection(garbage_server):
    """Garbage from the server after a good login: an 'error' event (WireProtocolError), the
    connection is dropped and re-established, and only the new connection's reader is alive."""
    events: queue.Queue = queue.Queue()
    with no_leaked_threads():
        srf = Srf()
        srf.on("connect", lambda err, *info: events.put(("connect", err)))
        srf.on("error", lambda err: events.put(("error", err)))
        try:
            srf.connect(host=LOOPBACK, port=garbage_server.port, secret=SECRET).result(WAIT)
            kinds = []
            while kinds.count("connect") < 2:
                kind, err = get(events, "the error and the second connect")
                kinds.append(kind)
                if kind == "error":
                    assert isinstance(err, wire.WireProtocolError), repr(err)
                else:
                    assert err is None
            assert kinds.index("error") < len(kinds) - 1, kinds
            assert garbage_server.accepted == 2
            assert srf.connected
            readers = [t for t in threading.enumerate() if READER_MARK in t.name]
            assert len(readers) == 1 and readers[0].is_alive(), readers
            assert srf.socket.conn._reader is readers[0]
        finally:
            srf.disconnect()


# -- package exports ---------------------------------------------------------------------------------

def test_parse_uri_and_sip_error_exported_with_js_aliases():
    """parse_uri/parseUri and SipError come from the package (and hang off Srf, as in JS)."""
    assert drachtio_srf.parseUri is drachtio_srf.parse_uri
    assert Srf.parseUri("sip:alice@example.com;transport=tcp") == drachtio_srf.parse_uri(
        "sip:alice@example.com;transport=tcp")
    uri: Any = drachtio_srf.parseUri("sips:bob@10.0.0.1:5061")
    assert (uri["scheme"], uri["user"], uri["host"], uri["port"]) == ("sips", "bob", "10.0.0.1", 5061)
    assert drachtio_srf.parse_uri("not a uri") is None
    assert Srf.SipError is drachtio_srf.SipError is SipError
    err = SipError(486, "Busy Here")
    assert (err.status, err.reason, err.name) == (486, "Busy Here", "SipError")
    assert "SipError" in drachtio_srf.__all__ and "parseUri" in drachtio_srf.__all__

