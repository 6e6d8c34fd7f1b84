"""The same calls with SIP over TCP between the far end and the server."""
from __future__ import annotations

import queue

from helpers import LOOPBACK
from itest_support import SDP, WAIT, complete, get, invoke


def test_answer_over_tcp(srf, server, far_end, style):
    """A far end calling over TCP is answered with our SDP and its BYE fires destroy."""
    answered: queue.Queue = queue.Queue()
    ended: queue.Queue = queue.Queue()

    def on_invite(req, res):
        def then(err, dialog):
            if dialog is not None:
                dialog.on("destroy", lambda *args: ended.put(args))
            answered.put((req, err or dialog))
        complete(style, then, srf.create_uas, req, res, opts={"local_sdp": SDP})

    srf.invite(on_invite)
    sipp = far_end("uac-answer-bye.xml", server.sip_port, transport="t1")
    req, dialog = get(answered, "create_uas to complete")
    assert not isinstance(dialog, BaseException), f"create_uas failed: {dialog!r}"
    assert req.protocol.lower() == "tcp"
    get(ended, "the destroy event after the far end's BYE")
    sipp.expect_success()


def test_create_uac_over_tcp(srf, far_end, style):
    """create_uac to a ;transport=tcp URI reaches a TCP far end; destroy ends the call."""
    sipp = far_end("uas-answer.xml", transport="t1")
    uri = f"sip:farend@{LOOPBACK}:{sipp.port};transport=tcp"
    dialog = invoke(style, srf.create_uac, uri, opts={"local_sdp": SDP}).result(WAIT)
    assert "s=farend-answer" in dialog.remote.sdp
    invoke(style, dialog.destroy).result(WAIT)
    sipp.expect_success()
