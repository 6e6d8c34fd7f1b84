"""Dialog API entries the other files leave out: every request shortcut, modify with no_ack
(3pcc), destroy's return value, to_json, the refresh/hold/unhold/modify/options/message/publish/
subscribe events and the default answers when nobody listens."""
from __future__ import annotations

import queue

import pytest
from helpers import LOOPBACK
from itest_support import SDP, WAIT, Callback, complete, get, invoke

from drachtio_srf import Dialog, SipEndpointInfo, SipInfo
from drachtio_srf.errors import DrachtioError

SDP_3PCC = SDP.replace("s=drachtio-itest", "s=drachtio-3pcc")
SHORTCUTS = ["options", "message", "refer", "update", "notify", "publish", "subscribe", "info"]


def _call_far_end(srf, far_end, style, scenario):
    sipp = far_end(scenario)
    dialog = invoke(style, srf.create_uac, f"sip:farend@{LOOPBACK}:{sipp.port}",
                    opts={"local_sdp": SDP}).result(WAIT)
    return sipp, dialog


def test_every_request_shortcut_reaches_the_far_end(srf, far_end, style):
    """dialog.options/message/refer/update/notify/publish/subscribe/info/invite/bye each send
    that method inside the dialog (sipp checks the method and X-Shortcut) and give the final
    response; prack() with no INVITE of ours in progress is refused by the server as by
    drachtio-server; bye() ends the dialog."""
    sipp, dialog = _call_far_end(srf, far_end, style, "api-uas-shortcuts.xml")
    for name in SHORTCUTS:
        method = name.upper()
        headers = {"X-Shortcut": method}
        if method == "SUBSCRIBE":
            headers.update({"Event": "dialog", "Expires": "60"})
        elif method in ("NOTIFY", "PUBLISH"):
            headers["Event"] = "dialog"
        elif method == "REFER":
            headers["Refer-To"] = f"<sip:carol@{LOOPBACK}>"
        res = invoke(style, getattr(dialog, name), opts={"headers": headers}).result(WAIT)
        assert res.status == (202 if method == "REFER" else 200), f"{name}(): {res.status}"
        assert res.get("CSeq").endswith(method)

    with pytest.raises(DrachtioError, match="unable to find IIP when sending PRACK"):
        invoke(style, dialog.prack, opts={"headers": {"RAck": "1 1 INVITE"}}).result(WAIT)

    res = invoke(style, dialog.invite, opts={"body": SDP,
                                             "headers": {"Content-Type": "application/sdp"}}).result(WAIT)
    assert res.status == 200 and "o=farend 2002 2" in res.body
    assert dialog.connected
    res = invoke(style, dialog.bye).result(WAIT)
    assert res.status == 200
    sipp.expect_success()
    assert srf.find_dialog_by_id(dialog.id) is None


def test_modify_no_ack_gives_remote_offer_and_ack_function(srf, far_end, style):
    """modify(no_ack=True) re-INVITEs without SDP; the far end's offer comes back with an
    ack(sdp) function that answers it in the ACK (sipp checks the SDP), setting local.sdp."""
    sipp, dialog = _call_far_end(srf, far_end, style, "api-uas-3pcc-reinvite.xml")
    if style == "callback":
        cb = Callback()
        assert dialog.modify({"noAck": True}, cb) is dialog
        remote_sdp, ack = cb.result(WAIT)
    else:
        got = dialog.modify(no_ack=True).result(WAIT)
        remote_sdp, ack = got["sdp"], got["ack"]
    assert "s=farend-3pcc-offer" in remote_sdp
    assert dialog.remote.sdp == remote_sdp
    ack(SDP_3PCC)
    assert dialog.local.sdp == SDP_3PCC
    invoke(style, dialog.destroy).result(WAIT)
    sipp.expect_success()


def test_destroy_with_callback_returns_the_dialog_and_to_json(srf, far_end):
    """to_json()/toJSON() describe the dialog; destroy(cb) returns the Dialog itself (as JS)
    and cb(err, bye) follows; after it the dialog is disconnected."""
    sipp, dialog = _call_far_end(srf, far_end, "future", "uas-answer.xml")
    assert isinstance(dialog, Dialog)
    assert isinstance(dialog.sip, SipInfo)
    assert isinstance(dialog.local, SipEndpointInfo) and isinstance(dialog.remote, SipEndpointInfo)
    data = dialog.toJSON()
    assert data == dialog.to_json()
    assert set(data) == {"id", "type", "sip", "local", "remote", "onHold"}
    assert data["id"] == dialog.id and data["type"] == "uac" and data["onHold"] is False
    assert data["sip"] == {"callId": dialog.sip.call_id, "localTag": dialog.sip.local_tag,
                           "remoteTag": dialog.sip.remote_tag}
    assert data["local"]["sdp"] == SDP and data["local"]["contact"] == dialog.local.contact
    assert data["remote"] == {"uri": dialog.remote.uri, "sdp": dialog.remote.sdp}
    assert dialog.dialogType == "INVITE" and dialog.onHold is False and dialog.subscribeEvent is None
    assert dialog.subscriptions == [] and dialog.other is None and dialog.req.method == "INVITE"
    assert dialog.res.status == 200

    cb = Callback()
    assert dialog.destroy({"headers": {"X-Reason": "test"}}, cb) is dialog
    bye = cb.result(WAIT)
    sipp.expect_success()
    assert bye.method == "BYE" and bye.get("X-Reason") == "test"
    assert dialog.connected is False


def _answer_calls(srf, style, setup):
    answered: queue.Queue = queue.Queue()

    def on_invite(req, res):
        def then(err, dialog):
            if err is None:
                setup(dialog)
            answered.put(err or dialog)
        complete(style, then, srf.create_uas, req, res, opts={"local_sdp": SDP})
    srf.invite(on_invite)
    return answered


def test_far_end_in_dialog_events_with_listeners(srf, server, far_end, style):
    """Far-end re-INVITEs fire refresh (same SDP), hold, unhold and modify (new SDP, answered by
    the app); OPTIONS, MESSAGE, PUBLISH, SUBSCRIBE fire their events with (req, res)."""
    events: queue.Queue = queue.Queue()
    ended: queue.Queue = queue.Queue()

    def handled(name):
        def listener(req, res):
            events.put((name, req))
            res.send(200, {"headers": {"X-Handled": name}})
        return listener

    def on_modify(req, res):
        events.put(("modify", req))
        res.send(200, {"body": SDP, "headers": {"X-Handled": "modify", "Content-Type": "application/sdp"}})

    def setup(dialog):
        for name in ("refresh", "hold", "unhold"):
            dialog.on(name, lambda req, _n=name: events.put((_n, req)))
        dialog.on("modify", on_modify)
        for name in ("options", "message", "publish", "subscribe"):
            dialog.on(name, handled(name))
        dialog.on("destroy", lambda *args: ended.put(args))

    answered = _answer_calls(srf, style, setup)
    sipp = far_end("api-uac-indialog-listeners.xml", server.sip_port)
    dialog = get(answered, "create_uas")
    assert not isinstance(dialog, BaseException), f"create_uas failed: {dialog!r}"
    seen = [get(events, f"event {n + 1}") for n in range(8)]
    get(ended, "destroy after the far end's BYE")
    sipp.expect_success()
    assert [name for name, _ in seen] == ["refresh", "hold", "unhold", "modify",
                                          "options", "message", "publish", "subscribe"]
    reqs = dict(seen)
    assert all(reqs[n].method == "INVITE" and not reqs[n].is_new_invite
               for n in ("refresh", "hold", "unhold", "modify"))
    assert "a=sendonly" in reqs["hold"].body and "m=audio 40404" in reqs["modify"].body
    assert reqs["subscribe"].get("Event") == "dialog"
    assert dialog.on_hold is False and "m=audio 40404" in dialog.remote.sdp


def test_far_end_in_dialog_default_answers(srf, server, far_end, style):
    """With no listeners: re-INVITEs (refresh or new SDP) get 200 with our SDP; OPTIONS, MESSAGE,
    PUBLISH get 200; an in-dialog SUBSCRIBE gets 489 (sipp checks every answer)."""
    ended: queue.Queue = queue.Queue()
    answered = _answer_calls(srf, style, lambda d: d.on("destroy", lambda *a: ended.put(a)))
    sipp = far_end("api-uac-indialog-defaults.xml", server.sip_port)
    dialog = get(answered, "create_uas")
    assert not isinstance(dialog, BaseException), f"create_uas failed: {dialog!r}"
    req, reason = get(ended, "destroy after the far end's BYE")
    sipp.expect_success()
    assert req.method == "BYE" and reason == "normal release"
    assert dialog.local.sdp == SDP


def test_dialog_constructor_checks_type(srf):
    """Dialog(srf, type, opts) accepts only 'uas' and 'uac'."""
    with pytest.raises(ValueError, match="uas' or 'uac"):
        Dialog(srf, "proxy", {"req": None, "res": None})


@pytest.mark.parametrize("no_ack", [True, False], ids=["no_ack", "auto-ack"])
def test_create_uac_without_sdp_3pcc(srf, far_end, style, no_ack):
    """create_uac without local_sdp sends an offerless INVITE.  With no_ack the result is
    {sdp, res, ack(sdp)} and ack gives the Dialog with our answer; without it the library ACKs
    with the offer black-holed (session-level a=recvonly) and gives the Dialog."""
    sipp = far_end("api-uas-3pcc-invite.xml")
    uri = f"sip:farend@{LOOPBACK}:{sipp.port}"
    if not no_ack:
        dialog = invoke(style, srf.create_uac, uri, opts={"headers": {"X-3pcc": "1"}}).result(WAIT)
        assert "s=farend-3pcc-offer" in dialog.remote.sdp
    else:
        result = invoke(style, srf.create_uac, uri, opts={"no_ack": True}).result(WAIT)
        assert "s=farend-3pcc-offer" in result.sdp and result.res.status == 200
        dialog = invoke(style, result.ack, SDP_3PCC).result(WAIT)
        assert dialog.local.sdp == SDP_3PCC
    assert isinstance(dialog, Dialog) and srf.find_dialog_by_id(dialog.id) is dialog
    invoke(style, dialog.destroy).result(WAIT)
    sipp.expect_success()
