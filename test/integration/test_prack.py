"""Early media with reliable provisional responses (100rel/PRACK), both as UAS and as UAC."""
from __future__ import annotations

import queue

from helpers import LOOPBACK
from itest_support import SDP, WAIT, complete, get


def test_uas_reliable_183_then_answer_after_prack(srf, server, far_end, style):
    """res.send(183, {Require: 100rel, body}, cb, fn_prack): the PRACK reaches fn_prack; then 200.

    One queue per event: with a Future, the handler blocked in .result() may wake after fn_prack
    has already run on another thread, so "sent" and "prack" have no fixed order."""
    sent_q: queue.Queue = queue.Queue()
    prack_q: queue.Queue = queue.Queue()
    uas_q: queue.Queue = queue.Queue()

    def on_invite(req, res):
        def on_prack(prack):
            prack_q.put(prack)
            complete(style, lambda err, dialog: uas_q.put((err, dialog)),
                     srf.create_uas, req, res, opts={"local_sdp": SDP})

        opts = {"headers": {"Require": "100rel"}, "body": SDP}
        if style == "callback":
            res.send(183, opts, lambda err, msg: sent_q.put((err, msg)), on_prack)
        else:
            fut = res.send(183, None, opts, None, on_prack)
            try:
                sent_q.put((None, fut.result(WAIT)))
            except Exception as exc:  # noqa: BLE001 - reported to the test thread
                sent_q.put((exc, None))

    srf.invite(on_invite)
    caller = far_end("prack-uac.xml", server.sip_port)
    err, sent = get(sent_q, "the 183's send to complete")
    assert err is None, err
    rseq = int(sent.get("RSeq"))
    assert 1 <= rseq < 2**31, "the first RSeq is random, as drachtio-server's"
    assert sent.status == 183 and "s=drachtio-itest" in sent.body
    prack = get(prack_q, "fn_prack")
    assert prack.method == "PRACK"
    assert prack.get("RAck") == f"{rseq} 1 INVITE"
    err, dialog = get(uas_q, "create_uas after the PRACK")
    assert err is None, err
    caller.expect_success()
    assert dialog.sip.local_tag == sent.to_tag


def test_uac_sends_prack_for_reliable_provisional(srf, server, far_end, style):
    """create_uac against a far end requiring 100rel: the library PRACKs (RAck from the 183)."""
    callee = far_end("prack-uas.xml")
    provisional: queue.Queue = queue.Queue()
    outcome: queue.Queue = queue.Queue()
    progress = {"cb_provisional": lambda res: provisional.put(res)}
    if style == "callback":
        progress = {"cbProvisional": progress["cb_provisional"]}
    complete_args = (f"sip:service@{LOOPBACK}:{callee.port}",)

    def then(err, dialog):
        outcome.put((err, dialog))

    if style == "callback":
        srf.create_uac(complete_args[0], {"localSdp": SDP, "headers": {"Supported": "100rel"}}, progress,
                       then)
    else:
        fut = srf.create_uac(complete_args[0], {"local_sdp": SDP, "headers": {"Supported": "100rel"}},
                             progress)
        try:
            then(None, fut.result(WAIT))
        except Exception as exc:  # noqa: BLE001
            then(exc, None)
    res183 = get(provisional, "the reliable 183")
    assert res183.status == 183 and res183.get("RSeq") == "7"
    err, dialog = get(outcome, "create_uac")
    assert err is None, err
    assert "farend-answer" in dialog.remote.sdp
    dialog.destroy()
    callee.expect_success()
