"""The JS calling convention for user code, through real calls (sipp and the embedded server):
listeners, callbacks and option functions may declare fewer parameters than they are given;
a bad call fails with a message that says what is wrong, logged with its traceback."""
from __future__ import annotations

import logging
import queue
from typing import Any

from helpers import LOOPBACK
from itest_support import WAIT, get


def test_b2bua_option_functions_and_listeners_with_fewer_parameters(srf, server, far_end):
    """``responseHeaders: lambda uacResponse: ...``, ``localSdpA: lambda sdp: ...`` and
    ``dlg.on('destroy', lambda: ...)`` all run (the JS rule: extra arguments are dropped)."""
    b = far_end("b2b-b-answer.xml")
    seen: queue.Queue = queue.Queue()

    def on_invite(req: Any, res: Any) -> None:
        def done(err: Any, result: Any = None) -> None:
            if err is not None:
                seen.put(("error", err))
                return
            result.uas.on("destroy", lambda: (seen.put("uas destroy"), result.uac.destroy()))
            seen.put("bridged")

        srf.createB2BUA(req, res, f"sip:callee@{LOOPBACK}:{b.port}", {
            "responseHeaders": lambda uac_response: (seen.put(("headers", uac_response.status)), {})[1],
            "localSdpA": lambda sdp: (seen.put("sdp a"), sdp)[1],
        }, done)

    srf.invite(on_invite)
    a = far_end("b2b-a-bye.xml", server.sip_port)
    got: list[Any] = []
    while "uas destroy" not in got:
        got.append(get(seen, f"the B2BUA's steps and the A leg.s destroy (so far {got})"))
    assert ("headers", 200) in got and "sdp a" in got and "bridged" in got, got
    assert "uas destroy" in got
    a.expect_success()
    b.expect_success()


def test_cancel_listener_without_parameters(srf, server, far_end):
    """``req.on('cancel', lambda: ...)`` runs when the caller CANCELs."""
    canceled: queue.Queue = queue.Queue()
    srf.invite(lambda req, res: req.on("cancel", lambda: canceled.put("cancel")))
    sipp = far_end("uac-cancel-before-answer.xml", server.sip_port)
    assert get(canceled, "the cancel event") == "cancel"
    sipp.expect_success()


def test_connect_callback_without_parameters(server):
    """``srf.connect(opts, lambda: ...)`` runs its callback."""
    from helpers import SECRET

    from drachtio_srf import Srf
    app = Srf()
    connected: queue.Queue = queue.Queue()
    try:
        app.connect({"host": LOOPBACK, "port": server.admin_port, "secret": SECRET},
                    lambda: connected.put("up"))
        assert get(connected, "the connect callback") == "up"
    finally:
        app.disconnect()


def test_create_b2bua_in_readme_order_says_what_is_wrong(srf, server, far_end, caplog):
    """``createB2BUA('sip:...', req, res, {...})`` raises a TypeError naming the expected order;
    it is logged at ERROR with its traceback and the caller gets a 500."""
    srf.invite(lambda req, res: srf.createB2BUA("sip:1234@10.10.100.1", req, res, {}))
    with caplog.at_level(logging.ERROR, logger="drachtio_srf"):
        sipp = far_end("uac-expect-500.xml", server.sip_port)
        sipp.expect_success()
    records = [r for r in caplog.records if r.levelno == logging.ERROR and r.exc_info]
    assert records, [r.getMessage() for r in caplog.records]
    err = records[0].exc_info[1]
    assert isinstance(err, TypeError)
    assert "req must be the incoming Request, got str" in str(err)
    assert "the URI comes after req and res" in str(err)
    assert records[0].exc_info[2] is not None           # the traceback is in the log


def test_handler_exception_logged_at_error_with_traceback(srf, server, far_end, caplog):
    def broken(req: Any, res: Any) -> None:
        raise RuntimeError("handler bug")

    srf.invite(broken)
    with caplog.at_level(logging.ERROR, logger="drachtio_srf"):
        sipp = far_end("uac-expect-500.xml", server.sip_port)
        sipp.expect_success(WAIT)
    records = [r for r in caplog.records if r.exc_info and isinstance(r.exc_info[1], RuntimeError)]
    assert records and records[0].levelno == logging.ERROR
    assert "broken" in records[0].getMessage()


def test_failure_callback_declaring_err_and_dialog_gets_none_for_the_dialog(srf, far_end):
    """JS ``srf.createUAC(uri, {localSdp}, (err, dialog) => ...)`` ported line by line: on a 486
    the callback is called with the error alone, and ``dialog`` is None (JS: undefined)."""
    from drachtio_srf import SipError
    sipp = far_end("uas-busy.xml")
    got: queue.Queue = queue.Queue()
    sdp = "v=0\r\no=- 1 1 IN IP4 127.0.0.1\r\ns=-\r\nc=IN IP4 127.0.0.1\r\nt=0 0\r\nm=audio 4000 RTP/AVP 0\r\n"
    srf.createUAC(f"sip:busy@{LOOPBACK}:{sipp.port}", {"localSdp": sdp},
                  lambda err, dialog: got.put((err, dialog)))
    err, dialog = get(got, "the createUAC callback")
    assert isinstance(err, SipError) and err.status == 486
    assert dialog is None
    sipp.expect_success()
