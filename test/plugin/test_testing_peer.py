"""SipPeer, the plugin's pure-Python far end, against an Srf app through the embedded server."""
from __future__ import annotations

import queue

import pytest

from drachtio_srf import SipError
from drachtio_srf.testing import DEFAULT_SDP, SipPeer

WAIT = 8.0
APP_SDP = ("v=0\r\no=app 1 1 IN IP4 127.0.0.1\r\ns=app\r\nc=IN IP4 127.0.0.1\r\nt=0 0\r\n"
           "m=audio 30000 RTP/AVP 0\r\na=sendrecv\r\n")


def test_peer_answers_a_call_and_takes_requests_in_it(srf, sip_peer: SipPeer):
    """As UAS: rings, answers with its SDP, gets the ACK; INFO, re-INVITE and BYE from the app
    are answered 200 and recorded in order."""
    dialog = srf.create_uac(sip_peer.uri, local_sdp=APP_SDP).result(WAIT)
    assert "m=audio 49170" in dialog.remote.sdp

    call = sip_peer.wait_call()
    assert call.role == "uas" and call.state == "confirmed"
    assert "m=audio 30000" in call.remote_sdp
    assert [m.status for m in sip_peer.sent if m.status] == [100, 180, 200]

    info = dialog.request(method="INFO", body="Signal=5\r\n",
                          headers={"Content-Type": "application/dtmf-relay"}).result(WAIT)
    assert info.status == 200
    assert sip_peer.wait_for("INFO").body == "Signal=5\r\n"

    dialog.modify(APP_SDP.replace("sendrecv", "sendonly")).result(WAIT)
    reinvite = call.wait_for("INVITE")
    assert "a=sendonly" in reinvite.body
    call.wait_for(lambda m: m.method == "ACK" and m.cseq.seq == reinvite.cseq.seq)

    dialog.destroy().result(WAIT)
    assert sip_peer.wait_for("BYE").call_id == call.call_id
    assert call.ended.is_set()
    assert [m.method for m in sip_peer.received] == ["INVITE", "ACK", "INFO", "INVITE", "ACK", "BYE"]


def test_peer_rejects_with_the_status_it_is_given(srf, sip_peer: SipPeer):
    sip_peer.set_reply("INVITE", 486, headers={"Reason": "SIP;cause=17"})
    with pytest.raises(SipError) as info:
        srf.create_uac(sip_peer.uri, local_sdp=APP_SDP).result(WAIT)
    assert info.value.status == 486
    sip_peer.wait_for("ACK")            # the ACK of the 486 reaches the peer (hop by hop)


def test_peer_places_a_call_and_sends_requests_in_it(srf, drachtio_server, sip_peer: SipPeer):
    """As UAC: INVITE with SDP, 200 with the app's SDP is ACKed; INFO, UPDATE, re-INVITE and BYE
    reach the app's Dialog."""
    dialogs: queue.Queue = queue.Queue()
    seen: queue.Queue = queue.Queue()

    def on_invite(req, res):
        d = srf.create_uas(req, res, local_sdp=APP_SDP).result(WAIT)
        for event in ("info", "update", "modify"):
            d.on(event, lambda req, res, e=event: (seen.put((e, req.body)), res.send(200)))
        d.on("destroy", lambda *a: seen.put(("destroy", None)))
        dialogs.put(d)

    srf.invite(on_invite)
    call = sip_peer.invite(drachtio_server.sip_uri)
    assert call.status == 200 and "m=audio 30000" in call.remote_sdp
    assert [r.status for r in call.provisional if r.status != 100] in ([], [180])
    assert dialogs.get(timeout=WAIT).sip.remote_tag == call.local_tag

    assert call.info("Signal=1\r\n").status == 200
    assert seen.get(timeout=WAIT) == ("info", "Signal=1\r\n")
    assert call.update().status == 200
    assert seen.get(timeout=WAIT) == ("update", DEFAULT_SDP)
    assert call.reinvite(DEFAULT_SDP.replace("sendrecv", "sendonly")).status == 200
    event, body = seen.get(timeout=WAIT)
    assert event == "modify" and "a=sendonly" in body
    assert call.bye().status == 200
    assert seen.get(timeout=WAIT) == ("destroy", None)


def test_peer_cancels_a_call_the_app_does_not_answer(srf, drachtio_server, sip_peer: SipPeer):
    cancelled: queue.Queue = queue.Queue()

    def on_invite(req, res):
        req.on("cancel", lambda *a: cancelled.put(True))
        res.send(180)

    srf.invite(on_invite)
    call = sip_peer.invite(drachtio_server.sip_uri, wait=False)
    call.wait_for(180)
    final = call.cancel()
    assert final.status == 487
    assert cancelled.get(timeout=WAIT)
    assert sip_peer.wait_for(200, cseq_method="CANCEL")


def test_peer_held_call_is_answered_later(srf, sip_peer: SipPeer):
    """set_reply("INVITE", None) rings and holds: the test answers when it chooses."""
    sip_peer.set_reply("INVITE", None)
    fut = srf.create_uac(sip_peer.uri, local_sdp=APP_SDP)
    invite = sip_peer.wait_for("INVITE")
    assert not fut.done()
    call = next(d for d in sip_peer.dialogs if d.call_id == invite.call_id)
    call.answer(200)
    assert fut.result(WAIT).remote.sdp == DEFAULT_SDP
    call.wait_confirmed()


def test_wait_for_times_out_listing_what_came(sip_peer: SipPeer):
    with pytest.raises(AssertionError, match=r"did not receive 'BYE' within 0.2s\nmessages received:\n  \(none\)"):
        sip_peer.wait_for("BYE", timeout=0.2)


def test_out_of_dialog_options(srf, drachtio_server, sip_peer: SipPeer):
    srf.options(lambda req, res: res.send(200, headers={"Allow": "INVITE, OPTIONS"}))
    res = sip_peer.options(drachtio_server.sip_uri)
    assert res.status == 200 and res.get("allow") == "INVITE, OPTIONS"


def test_retransmitted_request_is_answered_again_and_kept_apart(sip_peer: SipPeer):
    """A request that arrives twice (a UDP retransmission) gets the same response again; it is
    recorded once in `received` and once in `retransmitted`."""
    import socket

    raw = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    raw.bind(("127.0.0.1", 0))
    raw.settimeout(WAIT)
    port = raw.getsockname()[1]
    options = (f"OPTIONS {sip_peer.uri} SIP/2.0\r\n"
               f"Via: SIP/2.0/UDP 127.0.0.1:{port};branch=z9hG4bK-retrans-1\r\n"
               f"From: <sip:tester@127.0.0.1:{port}>;tag=t1\r\nTo: <{sip_peer.uri}>\r\n"
               f"Call-ID: retrans-1\r\nCSeq: 7 OPTIONS\r\nMax-Forwards: 70\r\nContent-Length: 0\r\n\r\n")
    with raw:
        raw.sendto(options.encode(), ("127.0.0.1", sip_peer.port))
        first = raw.recv(65535)
        raw.sendto(options.encode(), ("127.0.0.1", sip_peer.port))
        second = raw.recv(65535)
    assert first == second and first.startswith(b"SIP/2.0 200 OK\r\n")
    assert b"CSeq: 7 OPTIONS" in first and b"branch=z9hG4bK-retrans-1" in first
    assert [m.method for m in sip_peer.received] == ["OPTIONS"]
    assert [m.method for m in sip_peer.retransmitted] == ["OPTIONS"]


def _digest_ok(header: str, method: str, password: str) -> bool:
    """Check a Digest Authorization value the way a registrar would (RFC 7616, qop=auth)."""
    from drachtio_srf.digest import compute_response
    from drachtio_srf.sip.headers import parse_auth_headers

    p = {k.lower(): v for k, v in parse_auth_headers([header])[0].items()}
    expected = compute_response(algorithm=p.get("algorithm", "MD5"), username=p["username"],
                                password=password, realm=p["realm"], nonce=p["nonce"], method=method,
                                uri=p["uri"], qop=p.get("qop"), nc=p.get("nc"), cnonce=p.get("cnonce"))
    return p["response"] == expected


def test_peer_answers_digest_challenges(srf, drachtio_server, sip_peer: SipPeer):
    """auth=(user, password): a 401 to REGISTER and a 407 to INVITE are answered once with
    credentials the app can verify; Call-ID and From tag are kept, CSeq goes up."""
    auths: queue.Queue = queue.Queue()

    def on_register(req, res):
        header = req.get("Authorization")
        if not header:
            res.send(401, headers={"WWW-Authenticate": 'Digest realm="test", nonce="n-1", qop="auth"'})
            return
        auths.put((req, _digest_ok(header, "REGISTER", "secret")))
        res.send(200)

    def on_invite(req, res):
        header = req.get("Proxy-Authorization")
        if not header:
            res.send(407, headers={"Proxy-Authenticate": 'Digest realm="test", nonce="n-2"'})
            return
        auths.put((req, _digest_ok(header, "INVITE", "secret")))
        srf.create_uas(req, res, local_sdp=APP_SDP)

    srf.register(on_register)
    srf.invite(on_invite)

    assert sip_peer.register(drachtio_server.sip_port, auth=("alice", "secret")).status == 200
    req, valid = auths.get(timeout=WAIT)
    assert valid
    registers = [m for m in sip_peer.sent if m.method == "REGISTER"]
    assert registers[0].call_id == registers[1].call_id and registers[0].from_tag == registers[1].from_tag
    assert registers[1].cseq.seq > registers[0].cseq.seq

    call = sip_peer.invite(drachtio_server.sip_uri, auth=("alice", "secret"))
    assert call.status == 200
    req, valid = auths.get(timeout=WAIT)
    assert valid and req.get("Call-ID") == call.call_id
    invites = [m for m in sip_peer.sent if m.method == "INVITE"]
    assert len(invites) == 2 and invites[0].call_id == invites[1].call_id
    assert call.bye().status == 200


def test_peer_over_tcp_both_ways(srf, drachtio_server, sip_peer_factory):
    """transport="tcp": the peer's call to the app and the app's call to the peer both run over
    TCP (Via SIP/2.0/TCP), with re-INVITE and BYE in each."""
    peer = sip_peer_factory(transport="tcp")
    assert peer.uri.endswith(";transport=tcp")

    def on_invite(req, res):
        d = srf.create_uas(req, res, local_sdp=APP_SDP).result(WAIT)
        d.on("modify", lambda req, res: res.send(200, body=APP_SDP))

    srf.invite(on_invite)
    call = peer.invite(drachtio_server.sip_uri)
    assert call.status == 200 and "m=audio 30000" in call.remote_sdp
    assert call.final.get("via").startswith("SIP/2.0/TCP")
    assert call.reinvite().status == 200
    assert call.bye().status == 200

    dialog = srf.create_uac(peer.uri, local_sdp=APP_SDP).result(WAIT)
    inbound = peer.wait_call()
    assert inbound.invite.get("via").startswith("SIP/2.0/TCP")
    dialog.destroy().result(WAIT)
    inbound.wait_for("BYE")
    assert inbound.ended.is_set()
