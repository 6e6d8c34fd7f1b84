"""The client against a scripted control server: connection, dispatch rules, UAS and UAC flows."""
from __future__ import annotations

import queue
import threading

import pytest
from client_fake import SDP_A, SDP_B, WAIT, FakeServer, invite, response

from drachtio_srf import (
    AuthenticationError,
    ConnectionLostError,
    Dialog,
    NotConnectedError,
    SipError,
    Srf,
)

DLG = "call-1;from-tag=farTag"


def connect(srf: Srf, server: FakeServer) -> str:
    return srf.connect(host="127.0.0.1", port=server.port, secret="cymru").result(WAIT)


def answer_uas(server: FakeServer, dialog_id: str = DLG) -> str:
    """Play the server side of the app's 200 OK: echo it with the dialog id."""
    f = server.sip_frame("SIP/2.0 200")
    return server.echo_response(f, dialog_id=dialog_id)


# -- connection ------------------------------------------------------------------------------

def test_connect_future_authenticates_and_routes_verbs(srf, server):
    events = queue.Queue()
    srf.on("connect", lambda err, hp, ver, local: events.put((err, hp, ver)))
    srf.invite(lambda req, res: None)
    srf.options(lambda req, res: None)
    assert connect(srf, server) == "udp/127.0.0.1:5060,tcp/127.0.0.1:5060"
    assert events.get(timeout=WAIT) == (None, "udp/127.0.0.1:5060,tcp/127.0.0.1:5060", "v0.9.10")
    server.next_frame(lambda f: f.type == "route" and f.field(2) == "options")
    assert sorted(server.routes) == ["invite", "options"]


def test_connect_callback_style_with_js_options(srf, server):
    got = queue.Queue()
    ret = srf.connect({"host": "127.0.0.1", "port": server.port, "secret": "cymru", "enablePing": False},
                      lambda err, hostport, *rest: got.put((err, hostport)))
    assert ret is srf
    assert got.get(timeout=WAIT) == (None, "udp/127.0.0.1:5060,tcp/127.0.0.1:5060")


def test_route_registered_after_connect_is_sent(srf, server):
    connect(srf, server)
    srf.register(lambda req, res: None)
    server.next_frame(lambda f: f.type == "route" and f.field(2) == "register")


def test_wrong_secret_fails_with_authentication_error(srf, server):
    fut = srf.connect(host="127.0.0.1", port=server.port, secret="wrong", reconnect=False)
    with pytest.raises(AuthenticationError):
        fut.result(WAIT)


def test_refused_connection_without_reconnect_fails(srf):
    from helpers import free_port
    fut = srf.connect(host="127.0.0.1", port=free_port(), secret="cymru", reconnect=False)
    with pytest.raises(NotConnectedError):
        fut.result(WAIT)


def test_reconnects_and_reroutes_after_server_drop(srf, server):
    events = queue.Queue()
    srf.on("reconnecting", lambda info: events.put(("reconnecting", info)))
    srf.on("connect", lambda err, *a: events.put(("connect", err)))
    srf.invite(lambda req, res: None)
    connect(srf, server)
    assert events.get(timeout=WAIT) == ("connect", None)
    server.next_frame(lambda f: f.type == "route")
    server.drop()
    kind, info = events.get(timeout=WAIT)
    assert kind == "reconnecting" and info["attempt"] == 1 and info["delay"] == 255
    assert events.get(timeout=WAIT) == ("connect", None)
    server.next_frame(lambda f: f.type == "route" and f.field(2) == "invite")
    assert server.connections == 2


def test_request_before_connect_fails_not_connected(srf):
    with pytest.raises(NotConnectedError):
        srf.request("sip:x@10.0.0.1", method="OPTIONS").result(WAIT)


# -- default answers (PROTOCOL 4.2) ----------------------------------------------------------

def test_unhandled_request_gets_404(srf, server):
    connect(srf, server)
    server.deliver(invite(method="MESSAGE", body=""), txn_id="t1")
    f = server.sip_frame("SIP/2.0 404")
    assert f.field(2) == "t1"
    assert "CSeq: 1 MESSAGE" in f.sip


def test_unhandled_prack_gets_200_and_ack_nothing(srf, server):
    connect(srf, server)
    server.deliver(invite(method="ACK", to_tag="x", body=""), txn_id="t1", dialog_id="unknown;from-tag=a")
    server.deliver(invite(method="PRACK", to_tag="x", body=""), txn_id="t2", dialog_id="unknown;from-tag=a")
    f = server.sip_frame("SIP/2.0 200")
    assert f.field(2) == "t2"
    assert server.no_sip_frame("SIP/2.0", within=0.3)


def test_middleware_order_next_and_error_handler(srf, server):
    seen = []

    def first(req, res, next):
        seen.append("first")
        next()

    def failing(req, res, next):
        seen.append("failing")
        raise SipError(486, "Busy Here")

    def skipped(req, res, next):
        seen.append("skipped")

    def on_error(err, req, res, next):
        seen.append(("error", err.status))
        res.send(err.status)

    srf.use(first)
    srf.use("message", failing)
    srf.use(skipped)
    srf.use(on_error)
    connect(srf, server)
    server.deliver(invite(method="MESSAGE", body=""), txn_id="t1")
    server.sip_frame("SIP/2.0 486")
    assert seen == ["first", "failing", ("error", 486)]


def test_handler_exception_without_error_handler_gives_500(srf, server):
    @srf.options
    def on_options(req, res):
        raise RuntimeError("boom")

    connect(srf, server)
    server.deliver(invite(method="OPTIONS", body=""), txn_id="t1")
    server.sip_frame("SIP/2.0 500")


def test_request_fields_from_the_wire(srf, server):
    got = queue.Queue()
    srf.message(lambda req, res: (got.put(req), res.send(202)))
    connect(srf, server)
    server.deliver(invite(method="MESSAGE", body=""), txn_id="t9")
    req = got.get(timeout=WAIT)
    assert (req.method, req.source, req.source_address, req.source_port) == ("MESSAGE", "network", "10.0.0.1", 5060)
    assert req.stack_txn_id == req.stackTxnId == "t9"
    assert req.received_on == "127.0.0.1:5060"
    assert req.call_id == "call-1"
    assert req.server["hostport"] == "udp/127.0.0.1:5060,tcp/127.0.0.1:5060"
    assert req.srf is srf
    server.sip_frame("SIP/2.0 202")


# -- res.send forms ----------------------------------------------------------------------------

@pytest.mark.parametrize("args, status, reason, header", [
    ((486,), 486, "Busy Here", None),
    ((486, "Go Away"), 486, "Go Away", None),
    ((486, {"headers": {"X-Why": "busy"}}), 486, "Busy Here", "X-Why: busy"),
    ((486, "Nope", {"headers": {"X-Why": "nope"}}), 486, "Nope", "X-Why: nope"),
])
def test_res_send_forms(srf, server, args, status, reason, header):
    srf.message(lambda req, res: res.send(*args))
    connect(srf, server)
    server.deliver(invite(method="MESSAGE", body=""), txn_id="t1")
    f = server.sip_frame(f"SIP/2.0 {status} {reason}")
    if header:
        assert header in f.sip
    assert "Call-ID: call-1" in f.sip


def test_res_send_callback_gets_echo_and_to_tag_choice(srf, server):
    got = queue.Queue()
    srf.message(lambda req, res: res.send(200, {"headers": {"To": "<sip:x>;tag=mine"}},
                                          lambda err, msg: got.put((err, msg))))
    connect(srf, server)
    server.deliver(invite(method="MESSAGE", body=""), txn_id="t1")
    f = server.sip_frame("SIP/2.0 200")
    assert ";tag=mine" in f.sip
    server.echo_response(f)
    err, msg = got.get(timeout=WAIT)
    assert err is None and msg.status == 200


# -- create_uas --------------------------------------------------------------------------------

def test_create_uas_future_and_rule5_listener_after_result(srf, server, monkeypatch):
    """A listener attached right after create_uas().result() gets the INFO sent right after ACK,
    even when the handler is slow to attach it (slow in pure Python: a call to a built-in such
    as a sleep or an Event wait would let the dialog's events run, docs/architecture.md)."""
    from drachtio_srf import hold
    monkeypatch.setattr(hold, "_HOLD_MAX", 60.0)      # the last-resort limit stays out of the way
    infos = queue.Queue()
    dialogs = queue.Queue()
    go = [False]

    @srf.invite
    def on_invite(req, res):
        dlg = srf.create_uas(req, res, local_sdp=SDP_B).result(WAIT)
        while not go[0]:             # the test holds us here while ACK and INFO arrive
            pass
        dlg.on("info", lambda r, s: (infos.put(r.body), s.send(200)))
        dialogs.put(dlg)

    connect(srf, server)
    server.deliver(invite(), txn_id="t1")
    sent = answer_uas(server)
    server.deliver(invite(method="ACK", to_tag="srvtag", body=""), txn_id="t1", dialog_id=DLG)
    server.deliver(invite(method="INFO", to_tag="srvtag", cseq=2, body="hello",
                          extra="Content-Type: text/plain\r\n"), txn_id="t2", dialog_id=DLG)
    # the INFO is not auto-answered while the handler has not attached its listener yet
    assert server.no_sip_frame("SIP/2.0 200", within=0.3)
    go[0] = True
    dlg = dialogs.get(timeout=WAIT)
    assert infos.get(timeout=WAIT) == "hello"
    assert isinstance(dlg, Dialog) and dlg.id == DLG and dlg.type == "uas"
    assert dlg.sip.call_id == dlg.sip.callId == "call-1"
    assert dlg.sip.remote_tag == "farTag" and dlg.sip.local_tag == "srvtag"
    assert dlg.local.sdp == SDP_B and dlg.remote.sdp == SDP_A
    assert dlg.remote.uri == "sip:far@10.0.0.1:5060"
    assert srf.find_dialog_by_call_id_and_from_tag("call-1", "farTag") is dlg
    assert SDP_B in sent
    f = server.sip_frame("SIP/2.0 200")
    assert f.field(2) == "t2"


def test_create_uas_callback_style_and_in_dialog_defaults(srf, server):
    got = queue.Queue()
    srf.invite(lambda req, res: srf.createUAS(req, res, {"localSdp": SDP_B},
                                              lambda err, dlg: got.put((err, dlg))))
    connect(srf, server)
    server.deliver(invite(), txn_id="t1")
    answer_uas(server)
    err, dlg = got.get(timeout=WAIT)
    assert err is None and dlg.dialogType == "INVITE"
    # no listeners: INFO 200, in-dialog SUBSCRIBE 489, re-INVITE 200 with our SDP
    server.deliver(invite(method="INFO", to_tag="srvtag", cseq=2, body=""), txn_id="t2", dialog_id=DLG)
    assert server.sip_frame("SIP/2.0 200").field(2) == "t2"
    server.deliver(invite(method="SUBSCRIBE", to_tag="srvtag", cseq=3, body="", extra="Event: foo\r\n"),
                   txn_id="t3", dialog_id=DLG)
    assert server.sip_frame("SIP/2.0 489").field(2) == "t3"
    server.deliver(invite(to_tag="srvtag", cseq=4, body=SDP_A.replace("o=- 100 1", "o=- 100 2")),
                   txn_id="t4", dialog_id=DLG)
    f = server.sip_frame("SIP/2.0 200")
    assert f.field(2) == "t4" and SDP_B in f.sip


def test_remote_bye_destroys_dialog_with_reason(srf, server):
    got = queue.Queue()

    @srf.invite
    def on_invite(req, res):
        dlg = srf.create_uas(req, res, local_sdp=SDP_B).result(WAIT)
        dlg.on("destroy", lambda req, reason: got.put((dlg.connected, reason)))

    connect(srf, server)
    server.deliver(invite(), txn_id="t1")
    answer_uas(server)
    bye = invite(method="BYE", to_tag="srvtag", cseq=2, body="",
                 extra='Reason: SIP ;cause=200 ;text="ACK timeout"\r\n')
    server.deliver(bye, txn_id="unsolicited", dialog_id=DLG, source="application")
    assert got.get(timeout=WAIT) == (False, "ACK timeout")
    assert srf.find_dialog_by_id(DLG) is None
    assert server.no_sip_frame("SIP/2.0 200", within=0.3)   # nothing to answer to the server's BYE


def test_cancel_reaches_a_blocked_handler_and_fails_create_uas(srf, server):
    got = queue.Queue()
    canceled = threading.Event()

    @srf.invite
    def on_invite(req, res):
        req.on("cancel", lambda msg: (got.put(("event", msg.method)), canceled.set()))
        res.send(180)
        canceled.wait(WAIT)          # the handler blocks; the CANCEL event still gets through
        try:
            srf.create_uas(req, res, local_sdp=lambda: SDP_B).result(WAIT)
        except SipError as err:
            got.put(("error", err.status, req.canceled))

    connect(srf, server)
    server.deliver(invite(), txn_id="t1")
    f = server.sip_frame("SIP/2.0 180")
    server.echo_response(f, dialog_id=DLG)
    server.deliver(invite(method="CANCEL", body=""), txn_id="t1")
    assert got.get(timeout=WAIT) == ("event", "CANCEL")
    assert got.get(timeout=WAIT) == ("error", 487, True)
    assert server.no_sip_frame("SIP/2.0 200", within=0.3)


def test_update_during_pending_invite_without_listener_gets_500(srf, server):
    srf.invite(lambda req, res: None)   # keeps the INVITE pending
    connect(srf, server)
    server.deliver(invite(), txn_id="t1")
    server.deliver(invite(method="UPDATE", to_tag="early", cseq=2), txn_id="t1", dialog_id=DLG)
    f = server.sip_frame("SIP/2.0 500")
    assert "Retry-After: 5" in f.sip and "CSeq: 2 UPDATE" in f.sip


def test_fn_ack_called_with_the_ack(srf, server):
    got = queue.Queue()
    srf.invite(lambda req, res: res.send(200, {"body": SDP_B}, None, lambda ack: got.put(ack.method)))
    connect(srf, server)
    server.deliver(invite(), txn_id="t1")
    answer_uas(server)
    server.deliver(invite(method="ACK", to_tag="srvtag", body=""), txn_id="t1", dialog_id=DLG)
    assert got.get(timeout=WAIT) == "ACK"


# -- create_uac --------------------------------------------------------------------------------

UDLG = "uac-call-1;from-tag=ourtag"


def start_uac(srf, server, **kwargs):
    provisional = queue.Queue()
    sent = queue.Queue()
    fut = srf.create_uac("sip:far@10.0.0.2", {"localSdp": SDP_A, **kwargs},
                         {"cbRequest": lambda err, req: sent.put(req),
                          "cbProvisional": lambda res: provisional.put(res.status)})
    f = server.sip_frame("INVITE sip:far@10.0.0.2")
    server.echo_request(f, txn_id="u1")
    return fut, f, sent.get(timeout=WAIT), provisional


def test_create_uac_success_acks_and_builds_dialog(srf, server):
    connect(srf, server)
    fut, f, req, provisional = start_uac(srf, server)
    assert req.method == "INVITE" and req.source == "application"
    assert SDP_A in f.sip
    server.deliver(response(180, "Ringing"), txn_id="u1", dialog_id=UDLG)
    server.deliver(response(200, "OK", body=SDP_B), txn_id="u1", dialog_id=UDLG)
    dlg = fut.result(WAIT)
    assert provisional.get(timeout=WAIT) == 180
    ack = server.sip_frame("ACK ")
    assert ack.field(3) == UDLG
    assert dlg.type == "uac" and dlg.id == UDLG
    assert dlg.sip.local_tag == "ourtag" and dlg.sip.remote_tag == "remTag"
    assert dlg.remote.sdp == SDP_B and dlg.local.sdp == SDP_A
    assert dlg.remote.uri == "sip:far@10.0.0.2:5060"
    assert dlg.local.uri == "sip:127.0.0.1:5060"   # our Contact (fixes drachtio-srf #175)


def test_create_uac_failure_is_sip_error_with_response(srf, server):
    connect(srf, server)
    fut, _f, _req, _p = start_uac(srf, server)
    server.deliver(response(486, "Busy Here"), txn_id="u1", dialog_id=UDLG)
    with pytest.raises(SipError) as info:
        fut.result(WAIT)
    assert info.value.status == 486 and info.value.reason == "Busy Here"
    assert info.value.res.status == 486
    assert str(info.value) == "Sip non-success response: 486"
    assert server.no_sip_frame("ACK ", within=0.3)   # the server ACKs non-2xx itself


def test_create_uac_cancel_through_cb_request(srf, server):
    connect(srf, server)
    fut, _f, req, _p = start_uac(srf, server)
    server.deliver(response(180, "Ringing"), txn_id="u1", dialog_id=UDLG)
    req.cancel()
    c = server.sip_frame("CANCEL ")
    assert c.field(2) == "u1"
    server.deliver(response(487, "Request Terminated"), txn_id="u1", dialog_id=UDLG)
    with pytest.raises(SipError) as info:
        fut.result(WAIT)
    assert info.value.status == 487


def test_create_uac_reliable_provisional_sends_prack(srf, server):
    connect(srf, server)
    _fut, _f, _req, provisional = start_uac(srf, server)
    server.deliver(response(183, "Session Progress", extra="RSeq: 7\r\nRequire: 100rel\r\n"),
                   txn_id="u1", dialog_id=UDLG)
    prack = server.sip_frame("PRACK ")
    assert "RAck: 7 1 INVITE" in prack.sip and prack.field(3) == UDLG
    assert provisional.get(timeout=WAIT) == 183


def test_create_uac_callback_and_calling_number(srf, server):
    connect(srf, server)
    got = queue.Queue()
    srf.createUAC("10.0.0.2", {"calledNumber": "1234", "callingNumber": "5551", "callingName": "Al",
                               "localSdp": SDP_A}, lambda err, dlg: got.put((err, dlg)))
    f = server.sip_frame("INVITE sip:1234@10.0.0.2")
    assert 'From: "Al" <sip:5551@localhost>' in f.sip
    server.echo_request(f, txn_id="u1")
    server.deliver(response(200, "OK", body=SDP_B), txn_id="u1", dialog_id=UDLG)
    err, dlg = got.get(timeout=WAIT)
    assert err is None and dlg.id == UDLG


def test_connection_loss_fails_pending_create_uac(srf, server):
    connect(srf, server)
    fut, _f, _req, _p = start_uac(srf, server)
    server.drop()
    with pytest.raises(ConnectionLostError):
        fut.result(WAIT)


# -- dialog requests -----------------------------------------------------------------------------

def established_uac(srf, server) -> Dialog:
    connect(srf, server)
    fut, _f, _req, _p = start_uac(srf, server)
    server.deliver(response(200, "OK", body=SDP_B), txn_id="u1", dialog_id=UDLG)
    dlg = fut.result(WAIT)
    server.sip_frame("ACK ")
    return dlg


def test_dialog_shortcut_info_sends_in_dialog(srf, server):
    dlg = established_uac(srf, server)
    fut = dlg.info(headers={"X-Foo": "bar"}, body="hi")
    f = server.sip_frame("INFO ")
    assert f.field(3) == UDLG and "X-Foo: bar" in f.sip
    server.echo_request(f, txn_id="i1")
    server.deliver(response(200, "OK", method="INFO"), txn_id="i1", dialog_id=UDLG)
    assert fut.result(WAIT).status == 200


def test_modify_failure_releases_queue_and_hold_unhold(srf, server):
    dlg = established_uac(srf, server)
    first = dlg.modify("hold")
    second = dlg.modify("unhold")
    f1 = server.sip_frame("INVITE ")
    assert "a=inactive" in f1.sip
    server.echo_request(f1, txn_id="r1")
    assert server.no_sip_frame("INVITE ", within=0.2)     # the second waits its turn
    server.deliver(response(488, "Not Acceptable Here"), txn_id="r1", dialog_id=UDLG)
    with pytest.raises(SipError):
        first.result(WAIT)
    assert dlg.on_hold is False                          # failed hold is rolled back
    with pytest.raises(Exception, match="not on hold"):
        second.result(WAIT)
    third = dlg.modify("hold")
    f3 = server.sip_frame("INVITE ")
    server.echo_request(f3, txn_id="r3")
    server.deliver(response(200, "OK", body=SDP_B), txn_id="r3", dialog_id=UDLG)
    assert third.result(WAIT) == SDP_B
    assert dlg.onHold is True
    server.sip_frame("ACK ")
    fourth = dlg.modify("unhold")
    f4 = server.sip_frame("INVITE ")
    assert "a=sendrecv" in f4.sip
    server.echo_request(f4, txn_id="r4")
    server.deliver(response(200, "OK", body=SDP_B), txn_id="r4", dialog_id=UDLG)
    fourth.result(WAIT)
    assert dlg.on_hold is False                          # reset on unhold (drachtio-srf never did)


def test_destroy_sends_bye_and_resolves_on_response(srf, server):
    dlg = established_uac(srf, server)
    fut = dlg.destroy()
    f = server.sip_frame("BYE ")
    assert f.field(3) == UDLG
    server.echo_request(f, txn_id="b1")
    server.deliver(response(200, "OK", method="BYE"), txn_id="b1", dialog_id=UDLG)
    assert fut.result(WAIT).method == "BYE"
    assert dlg.connected is False and srf.find_dialog_by_id(UDLG) is None


def test_srf_request_response_event_after_result(srf, server):
    connect(srf, server)
    fut = srf.request("sip:far@10.0.0.2", {"method": "OPTIONS", "headers": {"X-A": "1"}})
    f = server.sip_frame("OPTIONS sip:far@10.0.0.2")
    server.echo_request(f, txn_id="o1")
    server.deliver(response(200, "OK", method="OPTIONS", to_tag="t"), txn_id="o1")
    req = fut.result(WAIT)       # the response already arrived: the gate keeps it for us
    got = queue.Queue()
    req.on("response", lambda res, ack: got.put(res.status))
    assert got.get(timeout=WAIT) == 200


def test_disconnect_fails_nothing_pending_and_stops_threads(srf, server):
    connect(srf, server)
    srf.disconnect()
    assert not srf.connected


def test_sip_frame_with_non_numeric_port_logs_one_warning_and_keeps_the_connection(srf, server, caplog):
    """#9 point 9: the frame is dropped with one clear WARNING line (no traceback); the
    connection goes on serving the next request."""
    import logging

    from drachtio_srf import wire
    connect(srf, server)
    text = invite(method="MESSAGE", body="")
    good = wire.sip_event(wire.new_id(), source="network", nbytes=len(text), protocol="udp",
                          address="10.0.0.1", port=5060, time=wire.stack_time(), txn_id="t0",
                          dialog_id="", received_on=("127.0.0.1", 5060), sip_text=text)
    first_line, rest = good.split("\r\n", 1)
    fields = first_line.split("|")
    assert fields[6] == "5060"
    fields[6] = "50x0"
    with caplog.at_level(logging.DEBUG, logger="drachtio_srf"):
        server.send("|".join(fields) + "\r\n" + rest)
        server.deliver(text, txn_id="t1")
        f = server.sip_frame("SIP/2.0 404")
    assert f.field(2) == "t1"                                   # the bad one got no answer
    bad = [r for r in caplog.records if r.levelno >= logging.WARNING and r.name.startswith("drachtio_srf")]
    assert len(bad) == 1, [r.getMessage() for r in bad]
    assert bad[0].levelno == logging.WARNING and "50x0" in bad[0].getMessage()
    assert bad[0].exc_info is None and "\n" not in bad[0].getMessage()


def test_srf_request_callback_attaching_its_listener_late_still_gets_the_response(srf, server):
    """The response arrives while the request's callback has not yet attached its 'response'
    listener: the event waits behind the callback instead of being dropped."""
    connect(srf, server)
    got = queue.Queue()
    in_callback = threading.Event()
    attach = threading.Event()

    def on_sent(err, req):
        in_callback.set()
        attach.wait(WAIT)            # the test delivers the response meanwhile
        req.on("response", lambda res, ack: got.put(res.status))
    srf.request("sip:far@10.0.0.2", {"method": "OPTIONS"}, on_sent)
    f = server.sip_frame("OPTIONS sip:far@10.0.0.2")
    server.echo_request(f, txn_id="o2")
    assert in_callback.wait(WAIT)
    server.deliver(response(200, "OK", method="OPTIONS", to_tag="t"), txn_id="o2")
    server.deliver(invite(method="MESSAGE", body=""), txn_id="m1")     # (processed after it)
    server.sip_frame("SIP/2.0 404")
    attach.set()
    assert got.get(timeout=WAIT) == 200


def test_acks_reach_the_dialog_whether_or_not_anyone_listens(srf, server):
    """The common ACK (no body, nobody listening) is done without a task or a parse; an ``ack``
    listener attached later still gets the next ACK, and a late SDP answer in an ACK body is
    still taken as the far end's SDP."""
    dialogs = queue.Queue()
    srf.invite(lambda req, res: srf.create_uas(req, res, {"localSdp": SDP_B},
                                               lambda err, d: dialogs.put(d)))
    connect(srf, server)
    server.deliver(invite(), txn_id="t1")
    answer_uas(server)
    dialog = dialogs.get(timeout=WAIT)
    server.deliver(invite(method="ACK", to_tag="srvtag", body=""), txn_id="t1", dialog_id=DLG)
    acks = queue.Queue()
    dialog.on("ack", lambda req: acks.put((req.method, req.get("CSeq"), req.body)))
    server.deliver(invite(method="ACK", to_tag="srvtag", body=""), txn_id="t1", dialog_id=DLG)
    assert acks.get(timeout=WAIT) == ("ACK", "1 ACK", "")

    # late offer: the INVITE had no SDP, the ACK carries the answer
    server.deliver(invite(call_id="call-2", body=""), txn_id="t2")
    answer_uas(server, dialog_id="call-2;from-tag=farTag")
    late = dialogs.get(timeout=WAIT)
    assert late.remote.sdp is None
    ended = queue.Queue()
    late.on("destroy", lambda *_: ended.put(late.remote.sdp))
    server.deliver(invite(call_id="call-2", method="ACK", to_tag="srvtag"), txn_id="t2",
                   dialog_id="call-2;from-tag=farTag")
    server.deliver(invite(call_id="call-2", method="BYE", to_tag="srvtag", cseq=2, body=""),
                   txn_id="t3", dialog_id="call-2;from-tag=farTag")
    assert ended.get(timeout=WAIT) == SDP_A
