"""Edge cases of dialog matching: a NOTIFY that overtakes the 202 to the app's SUBSCRIBE, and
in-dialog requests for dialogs the server does not know (stale To tags).

A raw UDP socket plays the far end so the test controls the order of what reaches the server.
"""
from __future__ import annotations

import pytest
from drachtio_ctl import ControlClient, header
from udp_peer import UdpSipPeer as Peer

from drachtio_srf.sip import SipMessage

CRLF = "\r\n"


@pytest.fixture(scope="module")
def server_config() -> dict:
    return {"t1": 0.1}


@pytest.fixture
def peer(server):
    p = Peer(server.sip_port)
    yield p
    p.close()


def answer(sub: SipMessage, status: int, reason: str, to_tag: str) -> str:
    """A response to ``sub`` from the peer (Via/From/To/Call-ID/CSeq copied, our To tag)."""
    vias = "\n".join(f"Via: {v}" for v in sub.get_all("via"))
    return (f"SIP/2.0 {status} {reason}\n{vias}\nFrom: {sub.get('from')}\n"
            f"To: {sub.get('to')};tag={to_tag}\nCall-ID: {sub.call_id}\nCSeq: {sub.get('cseq')}\n"
            f"Contact: <sip:notifier@127.0.0.1:{{port}}>\nExpires: 600\n\n")


def notify(sub: SipMessage, peer: Peer, cseq: int, to_tag: str, state: str, *,
           branch: str) -> str:
    """A NOTIFY from the peer in the dialog ``sub`` is creating (From/To swapped, our tag)."""
    return (f"NOTIFY sip:service@127.0.0.1 SIP/2.0\n"
            f"Via: SIP/2.0/UDP 127.0.0.1:{peer.port};branch={branch}\n"
            f"From: <sip:notifier@127.0.0.1:{peer.port}>;tag={to_tag}\n"
            f"To: {sub.get('from')}\nCall-ID: {sub.call_id}\nCSeq: {cseq} NOTIFY\n"
            f"Contact: <sip:notifier@127.0.0.1:{peer.port}>\nEvent: presence\n"
            f"Subscription-State: {state}\nMax-Forwards: 70\n\n")


def subscribe(app: ControlClient, peer: Peer) -> tuple[str, str, SipMessage]:
    """The app SUBSCRIBEs to the peer; returns (txnId, dialog id, the SUBSCRIBE the peer got)."""
    echo = app.request(f"SUBSCRIBE sip:presentity@127.0.0.1:{peer.port} SIP/2.0\r\n"
                       f"Event: presence\r\nExpires: 600\r\nContent-Length: 0\r\n\r\n")
    assert echo.field(3) == "OK"
    sent = echo.sip
    tag = header(sent, "from").split("tag=")[1]
    sub = peer.recv(lambda m: m.method == "SUBSCRIBE")
    return echo.fields[10], f"{header(sent, 'call-id')};from-tag={tag}", sub


def is_notify(f) -> bool:
    return (f.sip or "").startswith("NOTIFY ")


def test_notify_before_202_is_delivered_in_the_new_dialog_after_the_202(server, app, peer):
    """RFC 6665: a NOTIFY may overtake the 202. The server ties it to the dialog the SUBSCRIBE is
    creating and hands it to the app after the 202, as an in-dialog request (case d)."""
    txn, dialog_id, sub = subscribe(app, peer)
    peer.send(notify(sub, peer, 1, "ntf-1", "active;expires=600", branch="z9hG4bK-early-1"))
    # nothing for the app until the SUBSCRIBE is answered (it does not know the dialog yet)
    with pytest.raises(TimeoutError):
        app.sip(is_notify, timeout=0.5)
    peer.send(answer(sub, 202, "Accepted", "ntf-1").replace("{port}", str(peer.port)))
    # first the 202 (the app learns the dialog), then the NOTIFY in it
    accepted, ntf = app.sip(), app.sip()
    assert accepted.sip.startswith("SIP/2.0 202 ") and accepted.fields[8:10] == [txn, dialog_id]
    assert is_notify(ntf) and ntf.fields[2] == "network"
    assert ntf.fields[9] == dialog_id and ntf.fields[8] not in ("", txn)
    assert len(ntf.fields) == 11        # case d: no t10/t11 (it is not a new request)
    # the app answers it in the dialog; the answer reaches the notifier
    body = (f"SIP/2.0 200 OK\r\nCall-ID: {header(ntf.sip, 'call-id')}\r\n"
            f"CSeq: {header(ntf.sip, 'cseq')}\r\nContent-Length: 0\r\n\r\n")
    assert app.respond(ntf.fields[8], body).field(3) == "OK"
    ok = peer.recv(lambda m: m.status == 200 and m.get("CSeq") == "1 NOTIFY")
    assert ok.to_tag == sub.from_tag
    # the dialog is established on the server: the app can send in it, to the NOTIFY's Contact
    refresh = app.request("SUBSCRIBE sip:ignored SIP/2.0\r\nEvent: presence\r\nExpires: 0\r\n"
                          "Content-Length: 0\r\n\r\n", dialog_id)
    assert refresh.field(3) == "OK"
    again = peer.recv(lambda m: m.method == "SUBSCRIBE" and m.get("Expires") == "0")
    assert again.uri == f"sip:notifier@127.0.0.1:{peer.port}"
    assert again.to_tag == "ntf-1" and again.from_tag == sub.from_tag


def test_notify_before_a_failed_subscribe_gets_481(server, app, peer):
    """If the SUBSCRIBE is refused after all, the held NOTIFY is answered 481 and the app never
    sees it; no dialog is left behind."""
    txn, dialog_id, sub = subscribe(app, peer)
    peer.send(notify(sub, peer, 1, "ntf-2", "active", branch="z9hG4bK-early-2"))
    with pytest.raises(TimeoutError):
        app.sip(is_notify, timeout=0.3)
    peer.send(answer(sub, 489, "Bad Event", "ntf-2").replace("{port}", str(peer.port)))
    assert app.sip_status(489).fields[8] == txn
    refused = peer.recv(lambda m: m.status is not None and m.get("CSeq") == "1 NOTIFY")
    assert refused.status == 481
    with pytest.raises(TimeoutError):
        app.sip(is_notify, timeout=0.3)
    nok = app.request("INFO sip:x SIP/2.0\r\nContent-Length: 0\r\n\r\n", dialog_id)
    assert nok.field(3) == "NOK"


def stale(method: str, peer: Peer, server, cseq: int, extra: str = "") -> str:
    return (f"{method} sip:service@127.0.0.1:{server.sip_port} SIP/2.0\n"
            f"Via: SIP/2.0/UDP 127.0.0.1:{peer.port};branch=z9hG4bK-stale-{method}-{cseq}\n"
            f"From: <sip:peer@127.0.0.1:{peer.port}>;tag=peer-tag\n"
            f"To: <sip:service@127.0.0.1:{server.sip_port}>;tag=gone-dialog\n"
            f"Call-ID: stale-{method}-{cseq}@test\nCSeq: {cseq} {method}\n"
            f"Contact: <sip:peer@127.0.0.1:{peer.port}>\nMax-Forwards: 70\n{extra}\n")


@pytest.mark.parametrize("method", ["INVITE", "BYE", "UPDATE"])
def test_stale_invite_bye_update_get_481(server, app, peer, method):
    """drachtio-server answers 481 itself to these when the To tag matches no dialog."""
    assert app.route("invite").field(3) == "OK"
    peer.send(stale(method, peer, server, 7))
    resp = peer.recv(lambda m: m.status is not None and m.status >= 200)
    assert resp.status == 481 and resp.get("CSeq") == f"7 {method}"
    with pytest.raises(TimeoutError):
        app.sip(timeout=0.3)


@pytest.mark.parametrize("method", ["NOTIFY", "INFO", "SUBSCRIBE"])
def test_stale_notify_info_subscribe_reach_the_app_as_new_requests(server, app, peer, method):
    """drachtio-server hands these to the app that routed the method as new requests (case a,
    no dialog id) - the app decides; with no app for the method the server answers 503."""
    extra = "Event: presence\n" if method in ("NOTIFY", "SUBSCRIBE") else ""
    peer.send(stale(method, peer, server, 8, extra))
    unrouted = peer.recv(lambda m: m.status is not None and m.status >= 200)
    assert unrouted.status == 503
    assert app.route(method.lower()).field(3) == "OK"
    peer.send(stale(method, peer, server, 9, extra))
    got = app.sip_method(method)
    assert got.fields[9] == "" and len(got.fields) == 13 and header(got.sip, "cseq") == f"9 {method}"
    resp = (f"SIP/2.0 481 Call/Transaction Does Not Exist\r\nCall-ID: {header(got.sip, 'call-id')}\r\n"
            f"CSeq: {header(got.sip, 'cseq')}\r\nContent-Length: 0\r\n\r\n")
    assert app.respond(got.fields[8], resp).field(3) == "OK"
    assert peer.recv(lambda m: m.get("CSeq") == f"9 {method}").status == 481


@pytest.mark.parametrize("method", ["PRACK", "REFER"])
def test_stale_prack_and_refer_are_dropped(server, app, peer, method):
    """Like drachtio-server: no answer and nothing for the app."""
    assert app.route("invite").field(3) == "OK"
    peer.send(stale(method, peer, server, 10, "RAck: 1 1 INVITE\n" if method == "PRACK" else
                    f"Refer-To: <sip:x@127.0.0.1:{peer.port}>\n"))
    assert peer.silent_for(lambda m: m.status is not None, 0.5)
    with pytest.raises(TimeoutError):
        app.sip(timeout=0.2)
