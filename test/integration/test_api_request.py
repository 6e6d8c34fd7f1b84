"""Request API: the fields of an incoming request and of one the app sent, with their JS names."""
from __future__ import annotations

import queue

from helpers import LOOPBACK
from itest_support import SDP, WAIT, complete, get


def test_incoming_invite_fields(srf, server, far_end):
    """An incoming INVITE carries its SIP fields, the transport meta (source address, int port,
    protocol, stack time/transaction/dialog ids), the server that delivered it, where it was
    received, is_new_invite, and links to srf and its res; JS names read the same values."""
    got: queue.Queue = queue.Queue()

    def on_invite(req, res):
        got.put((req, res))
        res.send(486)

    srf.invite(on_invite)
    sipp = far_end("uac-expect-486.xml", server.sip_port)
    req, res = get(got, "the INVITE")
    sipp.expect_success()

    assert (req.type, req.method, req.source) == ("request", "INVITE", "network")
    assert req.uri == req.url and req.uri.startswith("sip:service@")
    assert req.call_id == req.callId == f"{sipp.call_id_prefix}-1" == req.get("Call-ID")
    assert "tag=itest-1" in req.from_ and req.to == req.get("To") and req.headers["call-id"] == req.call_id
    assert req.body == req.sdp and "o=farend 1001 1" in req.sdp and req.payload[0]["content"] == req.body
    assert req.source_address == LOOPBACK
    assert isinstance(req.source_port, int) and req.source_port == sipp.port
    assert req.protocol == "udp"
    assert isinstance(req.stack_time, str) and req.stack_time == req.stackTime
    assert req.stack_txn_id and req.stack_txn_id == req.stackTxnId
    assert req.stack_dialog_id == req.stackDialogId == ""  # a new INVITE is not in a dialog yet
    assert req.server["address"] == LOOPBACK and f"{LOOPBACK}:{server.sip_port}" in req.server["hostport"]
    assert req.received_on == req.receivedOn and f"{server.sip_port}" in req.received_on
    assert req.session_token is None and req.sessionToken is None
    assert req.is_new_invite is True and req.isNewInvite is True
    assert req.canceled is False and req.registration is None
    assert req.srf is srf and req.res is res and res.req is req
    assert req.socket is srf.socket
    assert req.to_json()["stackTxnId"] == req.stack_txn_id


def test_sent_request_fields(srf, far_end, style):
    """srf.request gives the sent Request: source 'application', its transaction id, and the
    response event (res, ack) with the received response's own meta."""
    sipp = far_end("uas-options.xml")
    responses: queue.Queue = queue.Queue()
    sent: queue.Queue = queue.Queue()

    def then(err, req):     # where a user of each style attaches the listener (callback / after result())
        assert err is None
        req.on("response", lambda res, *rest: responses.put(res))
        sent.put(req)
    complete(style, then, srf.request, f"sip:farend@{LOOPBACK}:{sipp.port}", opts={"method": "OPTIONS"})
    req = get(sent, "the sent request")
    res = get(responses, "the OPTIONS response")
    sipp.expect_success()
    assert req.source == "application" and req.method == "OPTIONS" and req.is_new_invite is False
    assert req.stack_txn_id and req.protocol == "udp"
    assert res.status == 200 and res.source == "network" and res.stack_txn_id == req.stack_txn_id
    assert res.source_address == LOOPBACK and res.source_port == sipp.port
    assert res.req is req


def test_sent_invite_request_is_new_invite(srf, far_end):
    """The INVITE create_uac sends is a new INVITE; the dialog's request is that Request."""
    sipp = far_end("uas-answer.xml")
    sent: queue.Queue = queue.Queue()
    dialog = srf.create_uac(f"sip:farend@{LOOPBACK}:{sipp.port}", {"local_sdp": SDP},
                            {"cb_request": lambda err, req: sent.put(req)}).result(WAIT)
    req = get(sent, "cb_request")
    assert req.is_new_invite and req.source == "application" and dialog.req is req
    assert req.sdp == SDP
    dialog.destroy().result(WAIT)
    sipp.expect_success()
