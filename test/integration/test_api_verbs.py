"""Srf verb handlers reached by requests from the network: out-of-dialog INFO, NOTIFY, PUBLISH
and MESSAGE, and (API-DETAILS B18) PRACK, ACK, UPDATE, REFER and BYE inside a dialog the library
does not know because the app answered the INVITE with plain res.send.

drachtio-server never hands an app a REFER, UPDATE, PRACK or ACK outside a dialog (PROTOCOL.md
5.1: UPDATE gets 481, the others are dropped), and a CANCEL never reaches middleware (B4), so
srf.refer/update/prack/ack are reached here the only way the server allows: inside a dialog.
"""
from __future__ import annotations

import queue
import re
from typing import Any

from itest_support import SDP, WAIT, get


def _answer(style: str, res: Any, status: int, name: str, sent: queue.Queue, **extra: Any) -> None:
    """Answer with an X-Handled header (sipp checks it), in the test's API style."""
    opts = {"headers": {"X-Handled": name}, **extra}
    if style == "callback":
        res.send(status, opts, lambda err, msg: sent.put((name, err or msg)))
    else:
        sent.put((name, res.send(status, opts).result(WAIT)))


def test_out_of_dialog_requests_reach_their_verb_handlers(srf, server, far_end, style):
    """INFO, NOTIFY, PUBLISH, MESSAGE from sipp outside any dialog each run the handler given
    to srf.info/notify/publish/message (called or used as a decorator); the 200 the handler
    sends, with its X-Handled header, reaches sipp."""
    got: queue.Queue = queue.Queue()
    sent: queue.Queue = queue.Queue()

    def handler_for(name: str):
        def handler(req, res):
            got.put((name, req))
            _answer(style, res, 200, name, sent)
        return handler

    assert srf.info(handler_for("info")) is not None
    srf.notify(handler_for("notify"))

    @srf.publish
    def on_publish(req, res):
        handler_for("publish")(req, res)

    @srf.message()
    def on_message(req, res):
        handler_for("message")(req, res)

    sipp = far_end("api-verbs-out-of-dialog.xml", server.sip_port)
    seen = [get(got, f"request {n + 1} to reach its handler") for n in range(4)]
    answers = dict(get(sent, f"answer {n + 1} sent") for n in range(4))
    sipp.expect_success()

    assert [name for name, _ in seen] == ["info", "notify", "publish", "message"]
    reqs = dict(seen)
    for name, req in reqs.items():
        assert req.method == name.upper()
        assert req.source == "network" and req.call_id.startswith(sipp.call_id_prefix)
        assert not req.stack_dialog_id, f"{name} arrived as an in-dialog request"
        assert answers[name].status == 200 and answers[name].get("X-Handled") == name
    assert "Signal=5" in reqs["info"].body
    assert reqs["notify"].get("Event") == "message-summary"
    assert reqs["publish"].get("Event") == "presence" and "<presence/>" in reqs["publish"].body
    assert reqs["message"].body.strip() == "hello from sipp"


def test_requests_in_a_dialog_the_library_does_not_know_reach_verb_handlers(srf, server, far_end, style):
    """An INVITE answered with plain res.send (reliable 183, then 200) makes no Dialog, so the
    far end's PRACK, ACK, UPDATE, REFER and BYE in that call fall through to srf.prack/ack/
    update/refer/bye; each answer carries the handler's X-Handled header (sipp checks it)."""
    got: queue.Queue = queue.Queue()
    sent: queue.Queue = queue.Queue()
    invites: dict[str, Any] = {}

    @srf.invite
    def on_invite(req, res):
        invites[req.call_id] = res
        res.send(183, {"headers": {"Require": "100rel"}, "body": SDP})

    @srf.prack
    def on_prack(req, res):
        got.put(("prack", req))
        _answer(style, res, 200, "prack", sent)
        invites[req.call_id].send(200, {"body": SDP, "headers": {"Content-Type": "application/sdp"}})

    @srf.ack
    def on_ack(req, res):
        got.put(("ack", req))

    @srf.update
    def on_update(req, res):
        got.put(("update", req))
        _answer(style, res, 200, "update", sent)

    @srf.refer
    def on_refer(req, res):
        got.put(("refer", req))
        _answer(style, res, 202, "refer", sent)

    @srf.bye
    def on_bye(req, res):
        got.put(("bye", req))
        _answer(style, res, 200, "bye", sent)

    sipp = far_end("api-verbs-unknown-dialog.xml", server.sip_port)
    seen = [get(got, f"request {n + 1} to reach its handler") for n in range(5)]
    answers = dict(get(sent, f"answer {n + 1} sent") for n in range(4))
    sipp.expect_success()

    assert [name for name, _ in seen] == ["prack", "ack", "update", "refer", "bye"]
    reqs = dict(seen)
    (call_id,) = invites
    dialog_ids = {req.stack_dialog_id for req in reqs.values()}
    assert len(dialog_ids) == 1 and all(dialog_ids), "all arrive inside the server's one dialog"
    for name, req in reqs.items():
        assert req.method == name.upper() and req.call_id == call_id
    assert srf.find_dialog_by_id(dialog_ids.pop()) is None
    assert reqs["ack"].get("X-Ack") == "b18"
    assert re.fullmatch(r"[1-9]\d* 1 INVITE", reqs["prack"].get("RAck"))   # the 183's (random) RSeq
    assert reqs["refer"].get_parsed_header("Refer-To")["uri"].startswith("sip:carol@")
    assert {name: msg.status for name, msg in answers.items()} == {
        "prack": 200, "update": 200, "refer": 202, "bye": 200}
