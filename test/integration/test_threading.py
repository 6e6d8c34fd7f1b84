"""The threading contract of DESIGN.md, one test per rule, with real calls through the server.

Rule 5 (a listener attached right after create_uas sees the far end's first in-dialog request)
is covered by test_uas.py.
"""
from __future__ import annotations

import logging
import queue
import threading
import time
from collections.abc import Callable
from typing import Any

import pytest
from helpers import LOOPBACK, SECRET, ServerProcess
from itest_support import SDP, WAIT, Callback, complete, get, invoke, no_leaked_threads

from drachtio_srf import ConnectionLostError, Srf

WORKER_PREFIX = "drachtio-worker-"   # dispatch.Dispatcher names its pool threads this way
READER_MARK = "-reader-"             # transport.Connection: "<name>-reader-<peer>"
TIMERS_NAME = "drachtio-timers"      # dispatch.Timers
TEXT = {"Content-Type": "text/plain"}


class ThreadLog:
    """Records which thread each kind of user code ran on."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self.seen: dict[str, list[threading.Thread]] = {}

    def mark(self, kind: str) -> None:
        with self._lock:
            self.seen.setdefault(kind, []).append(threading.current_thread())

    def wrap(self, kind: str, fn: Callable[..., Any] | None = None) -> Callable[..., Any]:
        def wrapper(*args: Any) -> Any:
            self.mark(kind)
            return fn(*args) if fn is not None else None
        return wrapper


def test_rule1_user_code_never_runs_on_reader_or_timer_threads(server, far_end, style):
    """Middleware, verb handlers, callbacks / Future done-callbacks and event listeners of Srf,
    Request, Response and Dialog all run on the dispatcher's workers."""
    log = ThreadLog()
    ended: queue.Queue = queue.Queue()
    options: queue.Queue = queue.Queue()
    library_threads: set[threading.Thread] = set()
    with no_leaked_threads():
        srf = Srf()
        srf.on("connect", log.wrap("srf connect listener"))
        srf.use(log.wrap("middleware", lambda req, res, next_: next_()))
        srf.use("invite", log.wrap("invite middleware", lambda req, res, next_: next_()))

        def on_info(req, res):
            log.mark("dialog info listener")
            res.send(200, headers={"X-Listener": "yes"})

        def with_dialog(err, dialog):
            log.mark("create_uas completion")
            dialog.on("info", on_info)
            dialog.on("destroy", log.wrap("dialog destroy listener", lambda *a: ended.put(dialog)))

        def on_invite(req, res):
            log.mark("invite handler")
            res.on("finish", log.wrap("response finish listener"))
            if style == "callback":
                srf.create_uas(req, res, {"localSdp": SDP}, with_dialog)
            else:
                fut = srf.create_uas(req, res, local_sdp=SDP)
                fut.add_done_callback(log.wrap("future done-callback"))
                with_dialog(None, fut.result(WAIT))

        srf.invite(on_invite)
        try:
            invoke(style, srf.connect,
                   opts={"host": LOOPBACK, "port": server.admin_port, "secret": SECRET}).result(WAIT)
            library_threads.update(t for t in threading.enumerate() if READER_MARK in t.name)
            sipp = far_end("uac-info-after-ack.xml", server.sip_port)
            get(ended, "the call to end")
            sipp.expect_success()

            uas = far_end("uas-options.xml")

            def on_sent(err, req=None):
                if err is not None:
                    options.put(err)
                    return
                req.on("response", log.wrap("request response listener", lambda res, *_: options.put(res)))
            uri = f"sip:farend@{LOOPBACK}:{uas.port}"
            if style == "callback":
                srf.request(uri, {"method": "OPTIONS"}, log.wrap("srf.request callback", on_sent))
            else:
                on_sent(None, srf.request(uri, method="OPTIONS").result(WAIT))
            assert get(options, "the OPTIONS response").status == 200
            uas.expect_success()
            library_threads.update(t for t in threading.enumerate()
                                   if READER_MARK in t.name or t.name == TIMERS_NAME)
        finally:
            srf.disconnect()

    expected = {"srf connect listener", "middleware", "invite middleware", "invite handler",
                "create_uas completion", "dialog info listener", "dialog destroy listener",
                "response finish listener", "request response listener"}
    expected.add("future done-callback" if style == "future" else "srf.request callback")
    assert expected <= set(log.seen), f"never ran: {expected - set(log.seen)}"
    assert any(READER_MARK in t.name for t in library_threads)
    assert any(t.name == TIMERS_NAME for t in library_threads)
    for kind, threads in log.seen.items():
        for t in threads:
            assert t not in library_threads, f"{kind} ran on library thread {t.name}"
            assert t.name.startswith(WORKER_PREFIX), f"{kind} ran on {t.name}, not a worker"
            assert t is not threading.main_thread()


def _answer(srf: Srf, style: str, setup: Callable[[Any], None], failures: list) -> None:
    """srf.invite handler answering with create_uas; ``setup(dialog)`` attaches the listeners."""
    def on_invite(req, res):
        def then(err, dialog):
            if err is not None:
                failures.append(err)
                return
            setup(dialog)
        complete(style, then, srf.create_uas, req, res, opts={"local_sdp": SDP})
    srf.invite(on_invite)


def test_rule2_one_dialog_in_order_different_dialogs_in_parallel(srf, server, far_end, style):
    """Four INFOs sent back to back reach the listener one at a time in CSeq order although the
    listener takes 300, 0, 150 and 50 ms; two calls' listeners run at the same time (they meet
    on a barrier that one-at-a-time delivery would break)."""
    work = {2: 0.3, 3: 0.0, 4: 0.15, 5: 0.05}     # simulated work per CSeq, not synchronisation
    order: list[int] = []
    overlap: list[int] = []
    active = {"n": 0}
    lock = threading.Lock()
    ended: queue.Queue = queue.Queue()
    failures: list[BaseException] = []
    barrier = threading.Barrier(2, timeout=WAIT)
    met: list[str] = []
    mode = {"value": "burst"}

    def on_info(req, res):
        if mode["value"] == "burst":
            cseq = int(req.get("CSeq").split()[0])
            with lock:
                active["n"] += 1
                if active["n"] > 1:
                    overlap.append(cseq)
                order.append(cseq)
            time.sleep(work[cseq])
            with lock:
                active["n"] -= 1
            res.send(200)
            return
        try:
            barrier.wait()
            met.append(threading.current_thread().name)
        except threading.BrokenBarrierError as err:
            failures.append(err)
        res.send(200, headers={"X-Listener": "yes"})

    def setup(dialog):
        dialog.on("info", on_info)
        dialog.on("destroy", lambda *args: ended.put(dialog))

    _answer(srf, style, setup, failures)
    sipp = far_end("uac-info-burst.xml", server.sip_port)
    get(ended, "the INFO burst call to end")
    sipp.expect_success()       # sipp checked the 200s came back in CSeq order
    assert order == [2, 3, 4, 5]
    assert not overlap, f"INFOs {overlap} were delivered while another was still being handled"

    mode["value"] = "parallel"
    sipp = far_end("uac-info-after-ack.xml", server.sip_port, calls=2, extra=["-r", "10", "-l", "2"])
    get(ended, "the first parallel call to end")
    get(ended, "the second parallel call to end")
    sipp.expect_success()
    assert not failures, f"listeners of two dialogs did not run in parallel: {failures!r}"
    assert len(met) == 2 and met[0] != met[1]


def test_rule3_blocking_on_modify_inside_the_invite_handler(srf, server, far_end, style):
    """dialog.modify('hold').result() (then 'unhold' and destroy) blocking inside user code works:
    in the INVITE handler (future style) or in create_uas's callback (callback style)."""
    results: queue.Queue = queue.Queue()

    def converse(dialog):
        try:
            held = dialog.modify("hold").result(WAIT)
            resumed = dialog.modify("unhold").result(WAIT)
            bye = dialog.destroy().result(WAIT)
            results.put((held, resumed, bye))
        except BaseException as err:  # noqa: BLE001 - reported by the test thread
            results.put(err)

    def on_invite(req, res):
        if style == "callback":
            srf.create_uas(req, res, {"localSdp": SDP},
                           lambda err, dialog=None: results.put(err) if err else converse(dialog))
        else:
            converse(srf.create_uas(req, res, local_sdp=SDP).result(WAIT))

    srf.invite(on_invite)
    sipp = far_end("uac-expect-hold-unhold.xml", server.sip_port)
    got = get(results, "the handler's blocking re-INVITEs and BYE", timeout=3 * WAIT)
    assert not isinstance(got, BaseException), f"blocking in the handler failed: {got!r}"
    held, resumed, bye = got
    assert "a=inactive" in held and "a=sendrecv" in resumed
    assert bye.method == "BYE"
    sipp.expect_success()


def test_rule4_no_lock_held_while_user_code_runs(srf, server, far_end):
    """A listener blocks on a request it sends in its own dialog; while it is still running, other
    user code sends srf.request and gets the response. Nothing deadlocks."""
    uas = far_end("uas-options.xml")
    ended: queue.Queue = queue.Queue()
    failures: list[BaseException] = []
    in_listener = threading.Event()
    options_done = threading.Event()
    own_reply: queue.Queue = queue.Queue()

    def on_info(req, res):
        in_listener.set()
        try:
            reply = req.srf.find_dialog_by_id(req.stack_dialog_id).request(
                method="INFO", headers=TEXT, body="from-listener").result(WAIT)
            own_reply.put(reply)
            if not options_done.wait(WAIT):
                failures.append(TimeoutError("srf.request did not complete while the listener ran"))
        except BaseException as err:  # noqa: BLE001 - reported by the test thread
            failures.append(err)
        finally:
            res.send(200)

    def setup(dialog):
        dialog.on("info", on_info)
        dialog.on("destroy", lambda *args: ended.put(dialog))

    _answer(srf, "future", setup, failures)
    sipp = far_end("uac-info-crossed.xml", server.sip_port)
    assert in_listener.wait(WAIT), "the INFO listener did not run"

    def on_sent(err, req=None):
        if err is not None:
            failures.append(err)
            return
        req.on("response", lambda res, *_: options_done.set() if res.status == 200 else None)
    srf.request(f"sip:farend@{LOOPBACK}:{uas.port}", {"method": "OPTIONS"}, on_sent)

    assert get(own_reply, "the listener's own in-dialog request to complete").status == 200
    get(ended, "the call to end")
    sipp.expect_success()
    uas.expect_success()
    assert options_done.is_set()
    assert not failures, failures


def test_rule6_disconnect_stops_every_thread_after_a_call(server, far_end):
    """After a call (workers, timers with ping, reader all running), disconnect() leaves no
    thread the library started."""
    ended: queue.Queue = queue.Queue()
    before = set(threading.enumerate())
    with no_leaked_threads(timeout=1.0):
        srf = Srf()
        srf.connect(host=LOOPBACK, port=server.admin_port, secret=SECRET, enable_ping=True,
                    ping_interval=5).result(WAIT)
        _answer(srf, "future", lambda d: d.on("destroy", lambda *a: ended.put(d)), [])
        sipp = far_end("uac-answer-bye.xml", server.sip_port)
        get(ended, "the call to end")
        sipp.expect_success()
        started = {t.name for t in threading.enumerate() if t not in before}
        assert any(n.startswith(WORKER_PREFIX) for n in started), started
        assert TIMERS_NAME in started, started
        assert any(READER_MARK in n for n in started), started
        assert srf.disconnect() is True


def test_rule6_disconnect_while_a_handler_blocks_returns_in_time_and_the_worker_exits_later(
        server, far_end):
    """A verb handler blocked in code of its own: disconnect(timeout=...) returns after that
    timeout saying False (a worker still runs), and that worker exits once the handler returns."""
    entered = threading.Event()
    gate = threading.Event()
    with no_leaked_threads(timeout=WAIT):
        srf = Srf()
        srf.connect(host=LOOPBACK, port=server.admin_port, secret=SECRET).result(WAIT)
        srf.invite(lambda req, res: (entered.set(), gate.wait(WAIT)))
        far_end("uac-answer-bye.xml", server.sip_port)     # never answered: not checked
        try:
            assert entered.wait(WAIT), "the INVITE never reached the handler"
            start = time.monotonic()
            assert srf.disconnect(timeout=0.3) is False
            assert time.monotonic() - start < 3.0
            busy = [t.name for t in threading.enumerate()
                    if t.name.startswith(WORKER_PREFIX) and "watchdog" not in t.name]
            assert len(busy) == 1, busy
        finally:
            gate.set()          # the handler returns: its worker exits (no_leaked_threads checks)


class _Warnings(logging.Handler):
    """Collects WARNING records of the dispatcher; ``pool_full`` is set by the pool one."""

    def __init__(self) -> None:
        super().__init__(logging.WARNING)
        self.messages: list[str] = []
        self.pool_full = threading.Event()

    def emit(self, record: logging.LogRecord) -> None:
        self.messages.append(record.getMessage())
        if "workers are busy" in record.getMessage():
            self.pool_full.set()


def test_max_workers_caps_the_pool_and_warns_once_when_work_waits(server, far_end):
    """Srf(max_workers=1): while the first call's handler blocks, the second INVITE waits for the
    only worker and a WARNING says so (once); both calls are answered once the handler goes on."""
    warnings = _Warnings()
    log = logging.getLogger("drachtio_srf.dispatch")
    log.addHandler(warnings)
    ended: queue.Queue = queue.Queue()
    handled: list[str] = []
    try:
        with no_leaked_threads():
            srf = Srf(max_workers=1)
            assert srf.max_workers == 1
            srf.connect(host=LOOPBACK, port=server.admin_port, secret=SECRET).result(WAIT)
            try:
                def on_invite(req, res):
                    if not handled:
                        warnings.pool_full.wait(WAIT)   # blocks the only worker until the warning
                    handled.append(req.get("Call-ID"))

                    def then(err, dialog):
                        if err is None:
                            dialog.on("destroy", lambda *a: ended.put(dialog))
                    srf.create_uas(req, res, {"localSdp": SDP}, then)
                srf.invite(on_invite)
                sipp = far_end("uac-answer-bye.xml", server.sip_port, calls=2,
                               extra=["-r", "10", "-l", "2"])
                get(ended, "the first call to end")
                get(ended, "the second call to end")
                sipp.expect_success()
            finally:
                srf.disconnect()
    finally:
        log.removeHandler(warnings)
    assert warnings.pool_full.is_set()
    full = [m for m in warnings.messages if "workers are busy" in m]
    assert len(full) == 1 and "max_workers" in full[0], warnings.messages
    assert len(handled) == 2


def test_max_workers_is_checked() -> None:
    with pytest.raises(TypeError, match="max_workers"):
        Srf(max_workers="8")            # type: ignore[arg-type]
    with pytest.raises(ValueError, match="max_workers"):
        Srf(max_workers=0)


@pytest.fixture
def doomed():
    """A server of the test's own, to be killed mid-call."""
    proc = ServerProcess()
    yield proc
    proc.stop()


def test_rule7_pending_futures_fail_when_the_connection_is_lost(doomed, far_end, style):
    """Server killed while a create_uac INVITE rings unanswered and an in-dialog INFO waits for
    its answer: both fail with ConnectionLostError within seconds (a callback gets just (err,))."""
    answered: queue.Queue = queue.Queue()
    ringing: queue.Queue = queue.Queue()
    with no_leaked_threads():
        srf = Srf()
        srf.on("error", lambda *args: None)    # the lost connection and failed reconnects
        try:
            srf.connect(host=LOOPBACK, port=doomed.admin_port, secret=SECRET).result(WAIT)
            _answer(srf, "future", answered.put, [])
            far_end("uac-answer-ignore-info.xml", doomed.sip_port)
            dialog = get(answered, "create_uas to complete")

            callee = far_end("uas-ring-cancel.xml")
            progress = {"cbProvisional": lambda res: ringing.put(res.status)}
            uri = f"sip:farend@{LOOPBACK}:{callee.port}"
            if style == "callback":
                uac: Any = Callback()
                srf.create_uac(uri, {"localSdp": SDP}, progress, uac)
                info: Any = Callback()
                dialog.info({"headers": TEXT, "body": "unanswered"}, info)
            else:
                uac = srf.create_uac(uri, {"local_sdp": SDP}, progress)
                info = dialog.info(headers=TEXT, body="unanswered")
            assert get(ringing, "the 180") == 180

            doomed.stop()                       # returns once the server process has exited
            gone = time.monotonic()
            errors = [uac.exception(5.0), info.exception(5.0)]
            elapsed = time.monotonic() - gone
            for err in errors:
                assert isinstance(err, ConnectionLostError), f"expected ConnectionLostError, got {err!r}"
            assert elapsed < 5.0
            if style == "callback":
                assert uac.results == () and info.results == ()
                assert uac.calls == 1 and info.calls == 1
        finally:
            srf.disconnect()
