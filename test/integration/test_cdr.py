"""CDR events: srf.on('cdr:attempt' | 'cdr:start' | 'cdr:stop') with a server run with --cdrs."""
from __future__ import annotations

import queue
import re
from collections.abc import Iterator

import pytest
from helpers import LOOPBACK, SECRET, ServerProcess
from itest_support import SDP, WAIT, complete, get, invoke, no_leaked_threads

from drachtio_srf import Srf

_TIME = re.compile(r"^\d\d:\d\d:\d\d\.\d{6}$")


@pytest.fixture(scope="module")
def server() -> Iterator[ServerProcess]:
    proc = ServerProcess(extra=["--cdrs"])
    yield proc
    proc.stop()


def record_cdrs(app: Srf) -> queue.Queue:
    """A queue of (event, args) for every CDR event, in the order the app got them."""
    q: queue.Queue = queue.Queue()
    app.on("cdr:attempt", lambda *args: q.put(("attempt", args)))
    app.on("cdr:start", lambda *args: q.put(("start", args)))
    app.on("cdr:stop", lambda *args: q.put(("stop", args)))
    return q


def next_cdrs(q: queue.Queue, n: int) -> list[tuple[str, tuple]]:
    out = [get(q, f"CDR event #{i + 1}") for i in range(n)]
    for _, args in out:
        assert args[0] in ("network", "application") and _TIME.match(args[1]), args[:2]
    return out


@pytest.mark.parametrize("when", ["before connect", "after connect"])
def test_completed_call_gives_attempt_start_stop(server, far_end, style, when):
    """An answered call the far end hangs up: attempt (the INVITE), start (our 200, role uas),
    stop (the BYE, normal-release), in that order; a second cdr:stop listener gets it too."""
    with no_leaked_threads():
        app = Srf()
        try:
            if when == "before connect":
                cdrs = record_cdrs(app)
            app.connect(host=LOOPBACK, port=server.admin_port, secret=SECRET).result(WAIT)
            if when == "after connect":
                cdrs = record_cdrs(app)
            also: queue.Queue = queue.Queue()
            app.on("cdr:stop", lambda *args: also.put(args))   # drachtio-srf threw here (defect 12)

            def on_invite(req, res):
                complete(style, lambda err, dialog: None, app.create_uas, req, res, opts={"local_sdp": SDP})

            app.invite(on_invite)
            sipp = far_end("uac-answer-bye.xml", server.sip_port)
            (k1, attempt), (k2, start), (k3, stop) = next_cdrs(cdrs, 3)
            sipp.expect_success()
            second = get(also, "the second cdr:stop listener")
        finally:
            app.disconnect()

    call_id = f"{sipp.call_id_prefix}-1"
    assert (k1, k2, k3) == ("attempt", "start", "stop")
    source, _time, msg = attempt
    assert source == "network" and msg.method == "INVITE" and msg.get("Call-ID") == call_id
    source, _time, role, msg = start
    assert (source, role) == ("application", "uas")
    assert msg.status == 200 and msg.get("Call-ID") == call_id and "s=drachtio-itest" in msg.body
    source, _time, reason, msg = stop
    assert (source, reason) == ("network", "normal-release")
    assert msg.method == "BYE" and msg.get("Call-ID") == call_id
    assert second[2] == "normal-release" and second[3].method == "BYE"


def test_rejected_call_gives_attempt_and_call_rejected(srf, server, far_end, style):
    """A call the app rejects with 486: attempt, then stop with reason call-rejected and the 486."""
    cdrs = record_cdrs(srf)
    srf.invite(lambda req, res: invoke(style, res.send, 486))
    sipp = far_end("uac-expect-486.xml", server.sip_port)
    (k1, attempt), (k2, stop) = next_cdrs(cdrs, 2)
    sipp.expect_success()
    assert (k1, k2) == ("attempt", "stop")
    assert attempt[0] == "network" and attempt[2].method == "INVITE"
    source, _time, reason, msg = stop
    assert (source, reason) == ("application", "call-rejected") and msg.status == 486


def test_canceled_call_gives_call_canceled(srf, server, far_end):
    """The far end CANCELs before any answer: attempt, then stop (network, call-canceled, CANCEL)."""
    cdrs = record_cdrs(srf)
    canceled: queue.Queue = queue.Queue()
    srf.invite(lambda req, res: req.on("cancel", lambda msg: canceled.put(msg)))
    sipp = far_end("uac-cancel-before-answer.xml", server.sip_port)
    (k1, _attempt), (k2, stop) = next_cdrs(cdrs, 2)
    get(canceled, "the INVITE's cancel event")
    sipp.expect_success()
    assert (k1, k2) == ("attempt", "stop")
    source, _time, reason, msg = stop
    assert (source, reason) == ("network", "call-canceled") and msg.method == "CANCEL"


def test_uac_call_gives_application_attempt_network_start(srf, server, far_end, style):
    """A call the app places and hangs up: attempt (application, our INVITE), start (network, uac,
    the far end's 200), stop (application, normal-release, our BYE)."""
    cdrs = record_cdrs(srf)
    sipp = far_end("uas-answer.xml")
    dialog = invoke(style, srf.create_uac, f"sip:farend@{LOOPBACK}:{sipp.port}",
                    opts={"local_sdp": SDP}).result(WAIT)
    invoke(style, dialog.destroy).result(WAIT)
    events = next_cdrs(cdrs, 3)
    sipp.expect_success()
    assert [k for k, _ in events] == ["attempt", "start", "stop"]
    (_, attempt), (_, start), (_, stop) = events
    assert attempt[0] == "application" and attempt[2].method == "INVITE"
    assert start[:1] + start[2:3] == ("network", "uac") and start[3].status == 200
    assert stop[:1] + stop[2:3] == ("application", "normal-release") and stop[3].method == "BYE"


def test_uac_call_rejected_by_far_end(srf, server, far_end, style):
    """The far end answers the app's INVITE 486: stop (network, call-rejected, the 486)."""
    cdrs = record_cdrs(srf)
    sipp = far_end("uas-busy.xml")
    err = invoke(style, srf.create_uac, f"sip:farend@{LOOPBACK}:{sipp.port}",
                 opts={"local_sdp": SDP}).exception(WAIT)
    assert err is not None and getattr(err, "status", None) == 486
    (k1, attempt), (k2, stop) = next_cdrs(cdrs, 2)
    sipp.expect_success()
    assert (k1, k2) == ("attempt", "stop") and attempt[0] == "application"
    assert stop[:1] + stop[2:3] == ("network", "call-rejected") and stop[3].status == 486
