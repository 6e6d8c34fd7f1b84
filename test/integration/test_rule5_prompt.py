"""Rule 5 without a timer (issue #8 point 7): a thread that takes ``create_uac(...).result()``
and then does non-library work (waits on an Event, on sipp) must not delay the far end's first
in-dialog request.  The far end (uas-answer-update-after-ack.xml) sends UPDATE right after its
ACK and fails the call unless the 200 comes within 250 ms (the old hold gave ~500 ms)."""
from __future__ import annotations

import threading

from helpers import LOOPBACK
from itest_support import SDP, WAIT


def test_listener_attached_after_result_answers_update_right_after_ack(srf, far_end):
    sipp = far_end("uas-answer-update-after-ack.xml")
    answered = threading.Event()

    def on_update(req, res):
        res.send(200, headers={"X-Listener": "yes"})
        answered.set()

    dialog = srf.create_uac(f"sip:farend@{LOOPBACK}:{sipp.port}", local_sdp=SDP).result(WAIT)
    dialog.on("update", on_update)      # right after taking the dialog: still in time (rule 5)
    assert answered.wait(WAIT)          # non-library work on this thread
    sipp.expect_success()


def test_default_answer_to_update_right_after_ack_is_not_delayed(srf, far_end):
    sipp = far_end("uas-answer-update-after-ack.xml")
    destroyed = threading.Event()
    dialog = srf.create_uac(f"sip:farend@{LOOPBACK}:{sipp.port}", local_sdp=SDP).result(WAIT)
    dialog.on("destroy", lambda *_a: destroyed.set())
    sipp.expect_success()               # non-library work; no 'update' listener: default 200
    assert destroyed.wait(WAIT)
