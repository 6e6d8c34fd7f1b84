"""Answering calls with create_uas: answer, reject, hang up, far-end CANCEL, listener timing."""
from __future__ import annotations

import queue
import threading
from typing import Any

import pytest
from helpers import LOOPBACK
from itest_support import SDP, WAIT, complete, get, invoke

from drachtio_srf import SipError


@pytest.mark.parametrize("sdp_form", ["string", "function"])
def test_answer_then_far_end_hangs_up(srf, server, far_end, style, sdp_form):
    """200 + SDP reaches sipp; the far end's BYE fires `destroy`; the dialog describes the call."""
    answered: queue.Queue = queue.Queue()
    destroyed: queue.Queue = queue.Queue()
    local_sdp: Any = SDP if sdp_form == "string" else (lambda: SDP)

    def on_invite(req, res):
        def then(err, dialog):
            if err is not None:
                answered.put(err)
                return
            dialog.on("destroy", lambda *args: destroyed.put(args))
            answered.put((req, dialog))
        complete(style, then, srf.create_uas, req, res, opts={"local_sdp": local_sdp})

    srf.invite(on_invite)
    sipp = far_end("uac-answer-bye.xml", server.sip_port)
    got = get(answered, "create_uas to complete")
    assert not isinstance(got, BaseException), f"create_uas failed: {got!r}"
    req, dialog = got
    assert srf.find_dialog_by_id(dialog.id) is dialog

    args = get(destroyed, "the dialog's destroy event after the far end's BYE")
    sipp.expect_success()
    assert args and args[0].method == "BYE"
    assert dialog.connected is False
    assert srf.find_dialog_by_id(dialog.id) is None

    assert dialog.type == "uas"
    assert dialog.dialog_type == "INVITE"
    assert dialog.sip.call_id == f"{sipp.call_id_prefix}-1" == req.get("Call-ID")
    assert dialog.sip.remote_tag == "itest-1"
    assert dialog.sip.local_tag and dialog.sip.local_tag != dialog.sip.remote_tag
    assert dialog.sip.callId == dialog.sip.call_id and dialog.sip.localTag == dialog.sip.local_tag
    assert dialog.remote.uri == f"sip:sipp@{LOOPBACK}:{sipp.port}"
    assert dialog.remote.sdp == req.body and "o=farend 1001 1" in dialog.remote.sdp
    assert dialog.local.sdp == SDP
    assert f"{LOOPBACK}:{server.sip_port}" in dialog.local.uri
    assert dialog.local.contact and f"{LOOPBACK}:{server.sip_port}" in dialog.local.contact


def test_reject_486(srf, server, far_end, style):
    """res.send(486) reaches sipp as 486; the send completes with the sent response, no error."""
    sent: queue.Queue = queue.Queue()
    problems: list[BaseException] = []

    def on_invite(req, res):
        try:
            sent.put(invoke(style, res.send, 486))
        except BaseException as exc:  # noqa: BLE001 - reported by the test thread
            problems.append(exc)
            sent.put(None)

    srf.invite(on_invite)
    sipp = far_end("uac-expect-486.xml", server.sip_port)
    outcome = get(sent, "the INVITE handler")
    assert not problems, f"res.send(486) raised {problems[0]!r}"
    msg = outcome.result(WAIT)
    sipp.expect_success()
    assert msg.status == 486


def test_app_hangs_up(srf, server, far_end, style):
    """dialog.destroy() after the ACK sends BYE (sipp answers 200); destroy gives the BYE sent, as in JS."""
    answered: queue.Queue = queue.Queue()
    acked = threading.Event()

    def on_invite(req, res):
        def then(err, dialog):
            if dialog is not None:
                dialog.on("ack", lambda *args: acked.set())
            answered.put(err or dialog)
        complete(style, then, srf.create_uas, req, res, opts={"local_sdp": SDP})

    srf.invite(on_invite)
    sipp = far_end("uac-answer-recv-bye.xml", server.sip_port)
    dialog = get(answered, "create_uas to complete")
    assert not isinstance(dialog, BaseException), f"create_uas failed: {dialog!r}"
    assert acked.wait(WAIT), "the dialog's ack event did not fire"

    msg = invoke(style, dialog.destroy).result(WAIT)
    sipp.expect_success()
    assert getattr(msg, "method", None) == "BYE", f"destroy gave {msg!r}, expected the BYE it sent"
    assert dialog.connected is False
    assert srf.find_dialog_by_id(dialog.id) is None


def test_far_end_cancel_before_answer(srf, server, far_end, style):
    """A CANCEL before the app answers fires the request's cancel event; answering then fails."""
    invites: queue.Queue = queue.Queue()
    cancels: queue.Queue = queue.Queue()

    def on_invite(req, res):
        req.on("cancel", lambda *args: cancels.put(args))
        invites.put((req, res))

    srf.invite(on_invite)
    sipp = far_end("uac-cancel-before-answer.xml", server.sip_port)
    req, res = get(invites, "the INVITE")
    args = get(cancels, "the request's cancel event")
    assert req.canceled is True
    assert args and args[0].method == "CANCEL"
    sipp.expect_success()  # 200 to the CANCEL, 487 to the INVITE, and never a 200

    outcome = invoke(style, srf.create_uas, req, res, opts={"local_sdp": SDP})
    err = outcome.exception(WAIT)
    assert err is not None, "create_uas on a canceled INVITE gave a dialog"
    if isinstance(err, SipError):
        assert err.status == 487


def test_listener_attached_after_answer_gets_info_sent_right_after_ack(srf, server, far_end, style):
    """DESIGN rule 5, 20 calls: sipp sends INFO right after its ACK; a listener attached right
    after create_uas(...).result() (or inside the callback) answers it every time."""
    calls = 20
    infos: list[str] = []
    ended: queue.Queue = queue.Queue()
    failures: list[BaseException] = []
    lock = threading.Lock()

    def on_info(req, res):
        with lock:
            infos.append(req.get("Call-ID"))
        res.send(200, headers={"X-Listener": "yes"})

    def on_invite(req, res):
        def then(err, dialog):
            if err is not None:
                failures.append(err)
                return
            # The app does some work of its own (pure Python: a call to a built-in such as
            # time.sleep would let the dialog's events run, see docs/architecture.md) before it
            # attaches its listener.  This is not synchronisation: it widens the window in which
            # sipp's INFO, sent right after its ACK, is already waiting, so the test fails if the
            # library lets it through.
            n = 0
            while n < 300_000:
                n += 1
            dialog.on("info", on_info)
            dialog.on("destroy", lambda *args: ended.put(dialog.sip.call_id))
        complete(style, then, srf.create_uas, req, res, opts={"local_sdp": SDP})

    srf.invite(on_invite)
    sipp = far_end("uac-info-after-ack.xml", server.sip_port, calls=calls, extra=["-r", "20"])
    for n in range(calls):
        get(ended, f"call {n + 1} of {calls} to end")
    sipp.expect_success()
    assert not failures, f"create_uas failed: {failures!r}"
    assert len(infos) == calls and len(set(infos)) == calls
