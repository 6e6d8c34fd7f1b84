"""Requests the far end sends inside a dialog: hold re-INVITE, INFO, NOTIFY, REFER, UPDATE."""
from __future__ import annotations

import queue

import pytest
from itest_support import SDP, complete, get

METHODS = ["INFO", "NOTIFY", "REFER", "UPDATE"]


def _answer(srf, style, answered: queue.Queue, setup=None):
    """srf.invite handler answering with create_uas; `setup(dialog)` runs before it is reported."""
    def on_invite(req, res):
        def then(err, dialog):
            if err is None and setup is not None:
                setup(dialog)
            answered.put(err or dialog)
        complete(style, then, srf.create_uas, req, res, opts={"local_sdp": SDP})
    srf.invite(on_invite)


@pytest.mark.parametrize("listener", [True, False], ids=["hold-listener", "no-listener"])
def test_far_end_hold(srf, server, far_end, style, listener):
    """A sendonly re-INVITE fires `hold` when listened for; either way the 200 carries our SDP."""
    answered: queue.Queue = queue.Queue()
    holds: queue.Queue = queue.Queue()
    ended: queue.Queue = queue.Queue()

    def setup(dialog):
        if listener:
            dialog.on("hold", lambda *args: holds.put(args))
        dialog.on("destroy", lambda *args: ended.put(args))

    _answer(srf, style, answered, setup)
    sipp = far_end("uac-farend-hold.xml", server.sip_port)
    dialog = get(answered, "create_uas to complete")
    assert not isinstance(dialog, BaseException), f"create_uas failed: {dialog!r}"
    if listener:
        (req, *_) = get(holds, "the hold event")
        assert req.method == "INVITE" and "a=sendonly" in req.body
        assert dialog.on_hold is True
    get(ended, "the destroy event after the far end's BYE")
    sipp.expect_success()  # the 200 to the re-INVITE had s=drachtio-itest
    assert "a=sendonly" in dialog.remote.sdp
    assert holds.empty()


def test_far_end_requests_reach_listeners(srf, server, far_end, style):
    """INFO, NOTIFY, REFER, UPDATE fire their events with (req, res); the app's answers reach
    sipp (it checks X-Handled, and 202 for REFER)."""
    answered: queue.Queue = queue.Queue()
    events: queue.Queue = queue.Queue()
    ended: queue.Queue = queue.Queue()

    def make_listener(name):
        def listener(req, res):
            events.put((name, req.method, req.body))
            status = 202 if req.method == "REFER" else 200
            opts = {"headers": {"X-Handled": req.method}}
            if req.method == "UPDATE":
                opts = {"headers": {"X-Handled": "UPDATE", "Content-Type": "application/sdp"},
                        "body": SDP}
            if style == "callback":
                res.send(status, opts, lambda err, msg=None: None)
            else:
                res.send(status, **opts)
        return listener

    def setup(dialog):
        for method in METHODS:
            dialog.on(method.lower(), make_listener(method.lower()))
        dialog.on("destroy", lambda *args: ended.put(args))

    _answer(srf, style, answered, setup)
    sipp = far_end("uac-indialog-app.xml", server.sip_port)
    dialog = get(answered, "create_uas to complete")
    assert not isinstance(dialog, BaseException), f"create_uas failed: {dialog!r}"
    seen = [get(events, f"in-dialog event {n + 1}") for n in range(len(METHODS))]
    get(ended, "the destroy event after the far end's BYE")
    sipp.expect_success()
    assert [(name, method) for name, method, _ in seen] == [(m.lower(), m) for m in METHODS]
    assert "Signal=5" in seen[0][2]
    assert "a=sendrecv" in seen[3][2]


def test_far_end_requests_default_answers(srf, server, far_end, style):
    """With no listeners INFO, NOTIFY, REFER and UPDATE get 200 (UPDATE's with our SDP)."""
    answered: queue.Queue = queue.Queue()
    ended: queue.Queue = queue.Queue()
    _answer(srf, style, answered, lambda d: d.on("destroy", lambda *args: ended.put(args)))
    sipp = far_end("uac-indialog-default.xml", server.sip_port)
    dialog = get(answered, "create_uas to complete")
    assert not isinstance(dialog, BaseException), f"create_uas failed: {dialog!r}"
    get(ended, "the destroy event after the far end's BYE")
    sipp.expect_success()
