"""Response API: every res.send argument form (callback and Future), fn_ack, the status and
progress fields, end(), and the `end`/`finish` events."""
from __future__ import annotations

import queue

import pytest
from itest_support import SDP, WAIT, Callback, get

from drachtio_srf import Response

HDR = {"headers": {"X-Why": "busy"}}

# (positional args after the status, reason expected on the wire, X-Why expected)
FORMS = {
    "status": ((), "Busy Here", None),
    "status-reason": (("Go Away",), "Go Away", None),
    "status-opts": ((HDR,), "Busy Here", "busy"),
    "status-reason-opts": (("Go Away", HDR), "Go Away", "busy"),
}


@pytest.mark.parametrize("form", list(FORMS))
def test_send_forms_and_response_fields(srf, server, far_end, style, form):
    """res.send(486[, reason][, opts]) with a callback(err, msg) or a Future: the far end gets
    the 486 (sipp checks), the sent message carries the reason and headers; before the send
    finished/final_response_sent/headers_sent are False, after it True; status/status_code and
    reason are set; `end({status, reason})` and `finish` fire."""
    args, reason, why = FORMS[form]
    results: queue.Queue = queue.Queue()
    events: queue.Queue = queue.Queue()

    def on_invite(req, res):
        before = (res.finished, res.final_response_sent, res.headers_sent, res.finalResponseSent)
        res.on("end", lambda info: events.put(("end", info)))
        res.on("finish", lambda: events.put(("finish", None)))
        if style == "callback":
            cb = Callback()
            assert res.send(486, *args, cb) is None
            sent = cb.result(WAIT)
        else:
            sent = res.send(486, *args).result(WAIT)
        after = (res.finished, res.final_response_sent, res.headers_sent, res.headersSent)
        results.put((res, sent, before, after))

    srf.invite(on_invite)
    sipp = far_end("uac-expect-486.xml", server.sip_port)
    res, sent, before, after = get(results, "res.send to complete")
    sipp.expect_success()
    assert before == (False, False, False, False)
    assert after == (True, True, True, True)
    assert isinstance(res, Response)
    assert res.status == res.status_code == res.statusCode == 486
    assert res.reason == reason
    assert sent.status == 486 and sent.reason == reason
    assert sent.get("X-Why") == why
    got = dict(get(events, "end/finish") for _ in range(2))
    assert got["end"] == {"status": 486, "reason": reason}
    assert "finish" in got


def test_send_with_callback_and_fn_ack(srf, server, far_end, style):
    """res.send(200, opts, callback, fn_ack) (or send(200, opts, fn_ack=...) returning a Future):
    fn_ack gets the far end's ACK; a 180 sent first leaves the response unfinished; the far end's
    BYE reaches the srf.bye handler (no Dialog was made)."""
    events: queue.Queue = queue.Queue()
    opts = {"body": SDP, "headers": {"Content-Type": "application/sdp"}}

    def on_invite(req, res):
        res.send(180)
        events.put(("after-180", (res.finished, res.status)))
        fn_ack = lambda ack: events.put(("ack", ack))
        if style == "callback":
            res.send(200, opts, lambda err, msg: events.put(("sent", err or msg)), fn_ack)
        else:
            events.put(("sent", res.send(200, opts, fn_ack=fn_ack).result(WAIT)))

    def on_bye(req, res):
        events.put(("bye", req))
        res.send(200)

    srf.invite(on_invite)
    srf.bye(on_bye)
    sipp = far_end("uac-answer-bye.xml", server.sip_port)
    seen = dict(get(events, "180, 200 sent, ACK and BYE") for _ in range(4))
    sipp.expect_success()
    assert seen["after-180"] == (False, 180)
    assert seen["sent"].status == 200 and "s=drachtio-itest" in seen["sent"].body
    assert seen["ack"].method == "ACK"
    assert seen["bye"].method == "BYE"


def test_end_sends_the_status_set_beforehand(srf, server, far_end):
    """Express style: res.status = 404 then res.end() sends the 404 (sipp checks); a second
    end() is refused."""
    done: queue.Queue = queue.Queue()

    def on_options(req, res):
        res.status = 404
        fut = res.end()
        try:
            res.end()
        except RuntimeError as exc:
            done.put((fut.result(WAIT), exc))

    srf.options(on_options)
    sipp = far_end("uac-options-expect-404.xml", server.sip_port)
    sent, exc = get(done, "res.end")
    sipp.expect_success()
    assert sent.status == 404 and "finished" in str(exc)


def test_finish_listener_attached_right_after_send_fires(srf, server, far_end):
    """As in Node, `res.send(486)` then `res.on('finish', ...)` in the same handler hears it."""
    events: queue.Queue = queue.Queue()

    def on_invite(req, res):
        res.send(486)
        res.on("finish", lambda: events.put("finish"))

    srf.invite(on_invite)
    sipp = far_end("uac-expect-486.xml", server.sip_port)
    assert get(events, "the finish event") == "finish"
    sipp.expect_success()
