"""Digest retry on the wire, against the scripted control server (PROTOCOL 4.11, API-DETAILS B5)."""
from __future__ import annotations

import queue
import threading
import uuid

import pytest
from client_fake import SDP_A, SDP_B, WAIT, invite, response

from drachtio_srf import ConnectionLostError, SipError, Srf
from drachtio_srf.sip import SipMessage

UDLG = "uac-call-1;from-tag=ourtag"
CHALLENGE = 'WWW-Authenticate: Digest realm="r, 1", nonce="abc", qop="auth,auth-int"\r\n'
PROXY_CHALLENGE = 'Proxy-Authenticate: Digest realm="proxy", nonce="p1", algorithm=SHA-256\r\n'


@pytest.fixture
def srf(server):
    app = Srf()
    app.connect(host="127.0.0.1", port=server.port, secret="cymru").result(WAIT)
    yield app
    app.disconnect()


def start_uac(srf, server, uri="sip:far@10.0.0.2", **opts):
    sent: queue.Queue = queue.Queue()
    fut = srf.create_uac(uri, {"localSdp": SDP_A, **opts}, {"cbRequest": lambda err, req: sent.put(req)})
    f = server.sip_frame("INVITE ")
    server.echo_request(f, txn_id="u1")
    return fut, f, sent.get(timeout=WAIT)


def sip_of(frame) -> SipMessage:
    return SipMessage(frame.sip)


def test_retry_reuses_call_id_and_from_tag_bumps_cseq_and_pins_host_name_next_hop(srf, server):
    fut, _f, req = start_uac(srf, server, uri="sip:far@example.com;transport=tcp",
                             auth={"username": "u", "password": "p"})
    authenticated: queue.Queue = queue.Queue()
    req.on("authenticate", authenticated.put)
    # a nonce no other test has answered: nonce counts are kept per process, so nc is 1 only
    # for a nonce's first use whatever order the tests run in
    fresh = CHALLENGE.replace('nonce="abc"', f'nonce="{uuid.uuid4().hex}"')
    server.deliver(response(401, "Unauthorized", extra=fresh), txn_id="u1")
    retry = server.sip_frame("INVITE ")
    msg = sip_of(retry)
    assert msg.uri == "sip:far@example.com;transport=tcp"
    assert retry.field(2) == "" and retry.field(3) == ""
    assert retry.field(4) == "sip:10.0.0.1:5060;transport=tcp"   # the challenger (PROTOCOL 4.11)
    assert msg.get("Call-ID") == "uac-call-1"
    assert msg.from_tag == "ourtag"
    assert msg.get("CSeq") == "2 INVITE"
    (auth,) = msg.get_parsed_header("Authorization")
    assert auth.realm == "r, 1" and auth.qop == "auth" and auth.nc == "00000001"
    assert auth.uri == "sip:far@example.com;transport=tcp"
    assert msg.body == SDP_A
    server.echo_request(retry, txn_id="u2")
    new_req = authenticated.get(timeout=WAIT)
    assert new_req is not req and new_req.get("CSeq") == "2 INVITE"
    server.deliver(response(200, "OK", body=SDP_B), txn_id="u2", dialog_id=UDLG)
    dialog = fut.result(WAIT)
    assert dialog.id == UDLG and dialog.req is req
    assert server.sip_frame("ACK ").field(3) == UDLG


def test_authenticate_gives_a_new_request_and_the_original_keeps_its_message(srf, server):
    """As in drachtio-srf: the retry is a distinct Request; the one the app holds is unchanged
    but for its txnId (so cancel() reaches the retry)."""
    _fut, _f, req = start_uac(srf, server, auth={"username": "u", "password": "p"})
    authenticated: queue.Queue = queue.Queue()
    req.on("authenticate", authenticated.put)
    server.deliver(response(401, "Unauthorized", extra=CHALLENGE), txn_id="u1")
    server.echo_request(server.sip_frame("INVITE "), txn_id="u2")
    new_req = authenticated.get(timeout=WAIT)
    assert new_req is not req
    assert new_req.get("CSeq") == "2 INVITE" and new_req.get("Authorization").startswith("Digest ")
    assert new_req.stack_txn_id == "u2" and new_req.call_id == req.call_id
    assert new_req.msg.from_tag == req.msg.from_tag
    assert req.get("CSeq") == "1 INVITE" and not req.has("Authorization")
    assert req.stack_txn_id == "u2"


def test_responses_to_the_retry_reach_listeners_on_both_requests(srf, server):
    """Listeners on the original hear the retry's responses (res.req is the new Request), and
    so do listeners the app adds to the new Request in its authenticate handler."""
    heard: queue.Queue = queue.Queue()
    fut = srf.request("sip:far@10.0.0.2", {"method": "OPTIONS", "auth": {"username": "u", "password": "p"}})
    server.echo_request(server.sip_frame("OPTIONS "), txn_id="o1")
    req = fut.result(WAIT)
    req.on("response", lambda res: heard.put(("original", res.status, res.req.get("CSeq"), res.req is req)))
    req.on("authenticate", lambda new_req: new_req.on(
        "response", lambda res: heard.put(("new", res.status, res.req is new_req))))
    server.deliver(response(401, "Unauthorized", method="OPTIONS", extra=CHALLENGE), txn_id="o1")
    server.echo_request(server.sip_frame("OPTIONS "), txn_id="o2")
    server.deliver(response(200, "OK", method="OPTIONS"), txn_id="o2")
    # (the 401 the library answered reaches neither)
    assert heard.get(timeout=WAIT) == ("original", 200, "2 OPTIONS", False)
    assert heard.get(timeout=WAIT) == ("new", 200, True)


def test_ip_literal_next_hop_is_not_pinned(srf, server):
    start_uac(srf, server, auth={"username": "u", "password": "p"})
    server.deliver(response(401, "Unauthorized", extra=CHALLENGE), txn_id="u1")
    assert server.sip_frame("INVITE ").field(4) == ""


def test_second_challenge_for_same_realm_fails_with_sip_error(srf, server):
    fut, _f, _req = start_uac(srf, server, auth={"username": "u", "password": "bad"})
    server.deliver(response(407, "Proxy Authentication Required", extra=PROXY_CHALLENGE), txn_id="u1")
    retry = server.sip_frame("INVITE ")
    (pa,) = sip_of(retry).get_parsed_header("Proxy-Authorization")
    assert pa.algorithm == "SHA-256" and len(pa.response) == 64
    server.echo_request(retry, txn_id="u2")
    server.deliver(response(407, "Proxy Authentication Required", extra=PROXY_CHALLENGE), txn_id="u2")
    with pytest.raises(SipError) as info:
        fut.result(WAIT)
    assert info.value.status == 407
    assert server.no_sip_frame("INVITE ", within=0.3)


def test_proxy_then_far_end_challenges_accumulate_credentials(srf, server):
    _fut, _f, _req = start_uac(srf, server, auth={"username": "u", "password": "p"})
    server.deliver(response(407, "Proxy Authentication Required", extra=PROXY_CHALLENGE), txn_id="u1")
    r1 = server.sip_frame("INVITE ")
    server.echo_request(r1, txn_id="u2")
    server.deliver(response(401, "Unauthorized", extra=CHALLENGE), txn_id="u2")
    r2 = sip_of(server.sip_frame("INVITE "))
    assert r2.get("CSeq") == "3 INVITE"
    assert r2.has("Proxy-Authorization") and r2.has("Authorization")


def test_cancel_on_the_original_after_two_retries_cancels_the_newest(srf, server):
    """Each challenge's authenticate comes from the request it challenged; req.cancel() on the
    one the app was given reaches the transaction under way."""
    fut, _f, req = start_uac(srf, server, auth={"username": "u", "password": "p"})
    first: queue.Queue = queue.Queue()
    second: queue.Queue = queue.Queue()
    req.on("authenticate", lambda r2: (first.put(r2), r2.on("authenticate", second.put)))
    server.deliver(response(407, "Proxy Authentication Required", extra=PROXY_CHALLENGE), txn_id="u1")
    server.echo_request(server.sip_frame("INVITE "), txn_id="u2")
    r2 = first.get(timeout=WAIT)
    server.deliver(response(401, "Unauthorized", extra=CHALLENGE), txn_id="u2")
    server.echo_request(server.sip_frame("INVITE "), txn_id="u3")
    r3 = second.get(timeout=WAIT)
    assert [r.get("CSeq") for r in (req, r2, r3)] == ["1 INVITE", "2 INVITE", "3 INVITE"]
    assert first.empty(), "the original emits authenticate for its own challenge only"
    req.cancel()
    assert server.sip_frame("CANCEL ").field(2) == "u3"
    server.deliver(response(487, "Request Terminated"), txn_id="u3")
    with pytest.raises(SipError) as info:
        fut.result(WAIT)
    assert info.value.status == 487


def test_prack_after_the_retry_acknowledges_the_retry(srf, server):
    """RAck names the CSeq of the INVITE the reliable 1xx answered: the retry's."""
    _fut, _f, _req = start_uac(srf, server, auth={"username": "u", "password": "p"})
    server.deliver(response(401, "Unauthorized", extra=CHALLENGE), txn_id="u1")
    server.echo_request(server.sip_frame("INVITE "), txn_id="u2")
    server.deliver(response(183, "Session Progress", extra="RSeq: 7\r\nRequire: 100rel\r\n"),
                   txn_id="u2", dialog_id=UDLG)
    prack = server.sip_frame("PRACK ")
    assert "RAck: 7 2 INVITE" in prack.sip and prack.field(3) == UDLG


def test_update_while_the_retry_is_pending_is_answered_by_create_uac(srf, server):
    """create_uac's answer to an early UPDATE still applies after the INVITE was re-sent."""
    _fut, _f, _req = start_uac(srf, server, auth={"username": "u", "password": "p"})
    server.deliver(response(401, "Unauthorized", extra=CHALLENGE), txn_id="u1")
    server.echo_request(server.sip_frame("INVITE "), txn_id="u2")
    # (frames are read in order: the retry is registered before the UPDATE arrives)
    server.deliver(invite(method="UPDATE", call_id="uac-call-1", from_tag="remTag", to_tag="ourtag",
                          body=SDP_B), txn_id="up1")
    answer = server.sip_frame("SIP/2.0 200")
    assert "CSeq: 1 UPDATE" in answer.sip and answer.sip.endswith(SDP_A)


def test_challenge_without_header_is_passed_to_the_app(srf, server):
    fut, _f, _req = start_uac(srf, server, auth={"username": "u", "password": "p"})
    server.deliver(response(401, "Unauthorized"), txn_id="u1")
    with pytest.raises(SipError) as info:
        fut.result(WAIT)
    assert info.value.status == 401


def test_challenge_without_auth_is_passed_to_the_app(srf, server):
    fut, _f, _req = start_uac(srf, server)
    server.deliver(response(401, "Unauthorized", extra=CHALLENGE), txn_id="u1")
    with pytest.raises(SipError) as info:
        fut.result(WAIT)
    assert info.value.status == 401


def test_bad_auth_value_fails_with_the_challenge_not_a_crash(srf, server):
    fut, _f, _req = start_uac(srf, server, auth="u:p")
    server.deliver(response(401, "Unauthorized", extra=CHALLENGE), txn_id="u1")
    with pytest.raises(SipError) as info:
        fut.result(WAIT)
    assert info.value.status == 401


def test_cancel_racing_the_challenge_is_sent_for_the_new_invite(srf, server):
    release = threading.Event()
    asked = threading.Event()

    def slow_credentials(req, res, callback):      # the drachtio-srf callback form
        asked.set()
        release.wait(WAIT)
        callback(None, "u", "p")
    fut, _f, req = start_uac(srf, server, auth=slow_credentials)
    server.deliver(response(401, "Unauthorized", extra=CHALLENGE), txn_id="u1")
    assert asked.wait(WAIT)
    req.cancel()
    assert server.no_sip_frame("CANCEL ", within=0.2)
    release.set()
    retry = server.sip_frame("INVITE ")
    server.echo_request(retry, txn_id="u2")
    cancel = server.sip_frame("CANCEL ")
    assert cancel.field(2) == "u2"
    server.deliver(response(487, "Request Terminated"), txn_id="u2")
    with pytest.raises(SipError) as info:
        fut.result(WAIT)
    assert info.value.status == 487


def test_credentials_function_error_passes_the_challenge_up(srf, server):
    def broken(req, res):
        raise RuntimeError("no credentials today")
    fut, _f, _req = start_uac(srf, server, auth=broken)
    server.deliver(response(401, "Unauthorized", extra=CHALLENGE), txn_id="u1")
    with pytest.raises(SipError) as info:
        fut.result(WAIT)
    assert info.value.status == 401


def test_in_dialog_request_retry_stays_in_the_dialog(srf, server):
    dialogs: queue.Queue = queue.Queue()
    srf.invite(lambda req, res: srf.create_uas(req, res, {"localSdp": SDP_B}, lambda err, d: dialogs.put(d)))
    server.deliver(invite(), txn_id="t1")
    f = server.sip_frame("SIP/2.0 200")
    server.echo_response(f, dialog_id="call-1;from-tag=farTag")
    dialog = dialogs.get(timeout=WAIT)
    fut = dialog.request({"method": "INFO", "body": "hi", "headers": {"Content-Type": "text/plain"},
                          "auth": {"username": "u", "password": "p"}})
    info = server.sip_frame("INFO ")
    assert info.field(3) == "call-1;from-tag=farTag"
    server.echo_request(info, txn_id="i1", call_id="call-1")
    server.deliver(response(401, "Unauthorized", call_id="call-1", method="INFO", extra=CHALLENGE),
                   txn_id="i1", dialog_id="call-1;from-tag=farTag")
    retry = server.sip_frame("INFO ")
    assert retry.field(3) == "call-1;from-tag=farTag" and retry.field(4) == ""
    msg = sip_of(retry)
    assert msg.has("Authorization") and not msg.has("CSeq") and msg.body == "hi"
    server.echo_request(retry, txn_id="i2", call_id="call-1")
    server.deliver(response(200, "OK", call_id="call-1", method="INFO"), txn_id="i2",
                   dialog_id="call-1;from-tag=farTag")
    assert fut.result(WAIT).status == 200


def test_redirects_are_followed_at_most_four_times(srf, server):
    """follow_redirects: each 3xx re-sends the INVITE to its Contact; the fifth fails create_uac."""
    fut = srf.create_uac("sip:far@10.0.0.2", {"localSdp": SDP_A, "followRedirects": True})
    for n in range(5):
        f = server.sip_frame("INVITE ")
        if n:
            assert sip_of(f).uri == f"sip:hop{n}@10.0.0.3"
        server.echo_request(f, txn_id=f"r{n}", call_id=f"call-r{n}")
        server.deliver(response(302, "Moved Temporarily", call_id=f"call-r{n}",
                                extra=f"Contact: <sip:hop{n + 1}@10.0.0.3>\r\n", contact=False),
                       txn_id=f"r{n}")
    with pytest.raises(SipError) as info:
        fut.result(WAIT)
    assert info.value.status == 302
    assert server.no_sip_frame("INVITE ", within=0.3)


def test_stale_nonce_is_answered_again_without_failing(srf, server):
    """A second challenge with stale=true (old nonce, good credentials) gets one more retry."""
    _fut, _f, _req = start_uac(srf, server, auth={"username": "u", "password": "p"})
    server.deliver(response(401, "Unauthorized", extra=CHALLENGE), txn_id="u1")
    r1 = server.sip_frame("INVITE ")
    server.echo_request(r1, txn_id="u2")
    stale = 'WWW-Authenticate: Digest realm="r, 1", nonce="fresh", qop="auth", stale=true\r\n'
    server.deliver(response(401, "Unauthorized", extra=stale), txn_id="u2")
    r2 = sip_of(server.sip_frame("INVITE "))
    (auth,) = r2.get_parsed_header("Authorization")
    assert auth.nonce == "fresh" and r2.get("CSeq") == "3 INVITE"


def test_connection_loss_while_getting_credentials_fails_create_uac(srf, server):
    release = threading.Event()

    def slow(req, res, callback):
        release.wait(WAIT)
    fut, _f, _req = start_uac(srf, server, auth=slow)
    server.deliver(response(401, "Unauthorized", extra=CHALLENGE), txn_id="u1")
    server.drop()
    err = fut.exception(WAIT)
    release.set()
    assert isinstance(err, ConnectionLostError), repr(err)
