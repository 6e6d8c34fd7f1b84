"""The public surface of API.md without a server: every JS name is the very PEP 8 object, the
Srf statics, SipMessage's parsed-header shapes and serialisation, SipError, verb handlers."""
from __future__ import annotations

import pytest

import drachtio_srf
from drachtio_srf import Dialog, Request, Response, SipError, SipMessage, Srf
from drachtio_srf.models import SipInfo
from drachtio_srf.sip import SipParseError

# (class, JS name, PEP 8 name): class-level objects that must be identical
SAME_OBJECT = [
    (Srf, "createUAS", "create_uas"), (Srf, "createUAC", "create_uac"),
    (Srf, "createB2BUA", "create_b2bua"), (Srf, "proxyRequest", "proxy_request"),
    (Srf, "findDialogById", "find_dialog_by_id"),
    (Srf, "findDialogByCallIDAndFromTag", "find_dialog_by_call_id_and_from_tag"),
    (Srf, "addDialog", "add_dialog"), (Srf, "removeDialog", "remove_dialog"),
    (Srf, "endSession", "end_session"), (Srf, "parseUri", "parse_uri"),
    (Srf, "stringifyUri", "stringify_uri"), (Srf, "close", "disconnect"),
    (SipMessage, "getParsedHeader", "get_parsed_header"), (SipMessage, "toString", "to_string"),
    (SipMessage, "callingNumber", "calling_number"), (SipMessage, "calledNumber", "called_number"),
    (SipMessage, "callingName", "calling_name"), (SipMessage, "canFormDialog", "can_form_dialog"),
    (Request, "isNewInvite", "is_new_invite"), (Request, "getParsedHeader", "get_parsed_header"),
    (Request, "callId", "call_id"), (Request, "toString", "to_string"),
    (Request, "callingNumber", "calling_number"), (Request, "canFormDialog", "can_form_dialog"),
    (Response, "statusCode", "status_code"), (Response, "finalResponseSent", "final_response_sent"),
    (Response, "headersSent", "headers_sent"), (Response, "getParsedHeader", "get_parsed_header"),
    (Response, "toString", "to_string"), (Response, "callingNumber", "calling_number"),
    (Dialog, "dialogType", "dialog_type"), (Dialog, "onHold", "on_hold"),
    (Dialog, "subscribeEvent", "subscribe_event"), (Dialog, "toJSON", "to_json"),
]

# (class, JS name, PEP 8 name): plain instance attributes; the JS name forwards reads and writes
FORWARDED = [
    (Request, "stackTime", "stack_time"), (Request, "stackTxnId", "stack_txn_id"),
    (Request, "stackDialogId", "stack_dialog_id"), (Request, "receivedOn", "received_on"),
    (Request, "sessionToken", "session_token"),
    (Response, "stackTime", "stack_time"), (Response, "stackTxnId", "stack_txn_id"),
    (Response, "stackDialogId", "stack_dialog_id"),
]

INVITE = ("INVITE sip:1234@10.0.0.2 SIP/2.0\r\n"
          "Via: SIP/2.0/UDP 10.0.0.1:5060;branch=z9hG4bK1;rport\r\n"
          'From: "Alice" <sip:5551000@10.0.0.1>;tag=a1\r\n'
          "To: <sip:1234@10.0.0.2>\r\n"
          "Call-ID: c-1\r\nCSeq: 7 INVITE\r\n"
          "Contact: <sip:alice@10.0.0.1:5060>;expires=60\r\n"
          "Refer-To: <sip:carol@10.0.0.3>\r\n"
          "X-Custom: hello\r\n"
          "Content-Type: application/sdp\r\nContent-Length: 4\r\n\r\nv=0\n")


@pytest.mark.parametrize("cls, js, py", SAME_OBJECT, ids=[f"{c.__name__}.{j}" for c, j, _ in SAME_OBJECT])
def test_js_name_is_the_same_object(cls, js, py):
    assert cls.__dict__.get(js, getattr(cls, js)) is cls.__dict__.get(py, getattr(cls, py))


@pytest.mark.parametrize("cls, js, py", FORWARDED, ids=[f"{c.__name__}.{j}" for c, j, _ in FORWARDED])
def test_js_name_of_an_instance_field_reads_and_writes_it(cls, js, py):
    obj = cls()
    setattr(obj, py, "one")
    assert getattr(obj, js) == "one"
    setattr(obj, js, "two")
    assert getattr(obj, py) == "two"


def test_sip_info_js_names():
    info = SipInfo(call_id="c", local_tag="l", remote_tag="r")
    assert (info.callId, info.localTag, info.remoteTag) == ("c", "l", "r")
    info.remoteTag = "x"
    assert info.remote_tag == "x"


def test_srf_statics_and_package_exports():
    assert Srf.Dialog is Dialog and Srf.SipError is SipError and Srf.SipMessage is SipMessage
    assert Srf.SipRequest is Request is drachtio_srf.SipRequest
    assert Srf.SipResponse is Response is drachtio_srf.SipResponse
    assert Srf.parse_uri is drachtio_srf.parse_uri and Srf.stringifyUri is drachtio_srf.stringify_uri
    uri = Srf.parse_uri("sip:bob@10.0.0.2:5070;transport=tcp")
    assert Srf.stringify_uri(uri) == "sip:bob@10.0.0.2:5070;transport=tcp"


def test_locals_settings_and_every_verb_handler():
    srf = Srf()
    assert srf.locals == {}
    srf.locals["k"] = 1
    assert srf.set("a", 2) is srf and srf.get("a") == 2 and srf.get("missing") is None
    assert srf.socket is None and not srf.connected
    for verb in ("invite", "register", "options", "subscribe", "notify", "message", "info", "publish",
                 "refer", "update", "bye", "cancel", "prack", "ack"):
        def handler(req, res):
            return None
        assert getattr(srf, verb)(handler) is handler, verb
        assert getattr(srf, verb)()(handler) is handler, f"{verb} as a decorator"


def test_sip_message_fields_and_parsed_headers():
    msg = SipMessage(INVITE)
    assert (msg.type, msg.method, msg.uri, msg.status, msg.reason) == ("request", "INVITE",
                                                                         "sip:1234@10.0.0.2", None, None)
    assert msg.body == "v=0\n" and msg.payload[0]["type"] == "application/sdp"
    assert msg.raw == INVITE
    assert msg.get("x-custom") == "hello" and msg.has("X-CUSTOM") and not msg.has("X-Other")
    msg.set("X-Added", "yes")
    assert msg.get("X-Added") == "yes"
    via = msg.get_parsed_header("via")
    assert via[0]["protocol"] == "UDP" and via[0]["host"] == "10.0.0.1" and via[0]["port"] == 5060
    assert "rport" in via[0]["params"]
    contact = msg.getParsedHeader("Contact")
    assert contact[0]["uri"] == "sip:alice@10.0.0.1:5060" and contact[0]["params"]["expires"] == "60"
    frm = msg.get_parsed_header("From")
    assert frm == {"name": "Alice", "uri": "sip:5551000@10.0.0.1", "params": {"tag": "a1"}}
    assert msg.get_parsed_header("Refer-To")["uri"] == "sip:carol@10.0.0.3"
    cseq = msg.get_parsed_header("CSeq")
    assert (cseq["seq"], cseq["method"]) == (7, "INVITE")
    assert msg.get_parsed_header("X-Custom") == "hello"
    assert (msg.calling_number, msg.called_number, msg.calling_name) == ("5551000", "1234", "Alice")
    assert msg.can_form_dialog is True
    text = str(msg)
    assert text == msg.to_string() == msg.toString() and text.startswith("INVITE sip:1234@10.0.0.2 SIP/2.0\r\n")
    assert SipMessage(text).get("X-Added") == "yes"


def test_sip_message_response_and_bad_input():
    res = SipMessage("SIP/2.0 486 Busy Here\r\nCall-ID: c\r\nContent-Length: 0\r\n\r\n")
    assert (res.type, res.status, res.reason, res.method) == ("response", 486, "Busy Here", None)
    with pytest.raises(SipParseError):
        SipMessage("this is not SIP\r\n\r\n")


def test_request_and_response_delegate_sip_message_members():
    req = Request(SipMessage(INVITE))
    assert str(req) == req.to_string() == str(req.msg)
    assert (req.status, req.reason, req.type) == (None, None, "request")
    assert req.calling_number == req.callingNumber == "5551000"
    res = Response(msg=SipMessage("SIP/2.0 200 OK\r\nCall-ID: c\r\nContent-Length: 0\r\n\r\n"))
    assert (res.method, res.uri, res.type, res.status) == (None, None, "response", 200)
    assert str(res) == res.toString() == str(res.msg)
    assert res.set("X-Trace", "1") is res and res.has("x-trace") and res.get("X-TRACE") == "1"
    assert req.set("X-Trace", "2") is req and req.has("X-Trace") and req.get("x-trace") == "2"


def test_sip_error_fields_and_message():
    err = SipError(480, "Temporarily Unavailable")
    assert (err.status, err.reason, err.res, err.name) == (480, "Temporarily Unavailable", None, "SipError")
    assert str(err) == "Sip non-success response: 480"
    assert SipError(503).reason is None
    with pytest.raises(TypeError):
        SipError("486")


@pytest.mark.parametrize("tags", ["bad,tag", ["ok", "x" * 33], [f"t{i}" for i in range(21)], [7]])
def test_bad_tags_raise_an_error_that_is_both_value_error_and_assertion_error(tags):
    """drachtio-srf asserts on its tags (AssertionError); Python code expects ValueError: both catch it."""
    with pytest.raises(ValueError) as caught:
        Srf(tags)
    assert isinstance(caught.value, AssertionError)
    assert isinstance(caught.value, drachtio_srf.ArgumentError)
    try:
        Srf(tags)
    except AssertionError as err:       # a line ported from a JS test's assert.throws
        assert "tag" in str(err)


def test_b2bua_result_is_read_unpacked_and_serialised_like_the_js_object():
    class FakeDialog:
        def __init__(self, kind):
            self.type = kind

        def to_json(self):
            return {"type": self.type}

    uas, uac = FakeDialog("uas"), FakeDialog("uac")
    result = drachtio_srf.B2BUAResult(uas, uac)
    first, second = result
    assert (first, second) == (uas, uac)
    assert result.uas is result["uas"] is uas and result.uac is result["uac"] is uac
    assert dict(result) == {"uas": uas, "uac": uac} and len(result) == 2
    with pytest.raises(KeyError):
        result["other"]
    import json
    assert json.loads(json.dumps(result, default=drachtio_srf.json_default)) == {
        "uas": {"type": "uas"}, "uac": {"type": "uac"}}


def test_sip_error_and_messages_serialise_with_json_default():
    import json
    err = SipError(486, "Busy Here")
    assert json.loads(json.dumps(err, default=drachtio_srf.json_default)) == {
        "name": "SipError", "status": 486, "reason": "Busy Here"}
    assert err.toJSON() == err.to_json() and err.message == str(err)
    msg = SipMessage(INVITE)
    assert json.loads(json.dumps({"msg": msg}, default=drachtio_srf.json_default)) == {"msg": str(msg)}
    with pytest.raises(TypeError, match="not JSON serializable"):
        json.dumps(object(), default=drachtio_srf.json_default)


def test_server_info_and_registration_allow_attribute_and_item_access():
    import json
    req = Request(SipMessage(INVITE))
    req.server = {"address": "10.0.0.9", "hostport": "10.0.0.9:5060"}
    assert req.server.address == req.server["address"] == "10.0.0.9"
    assert json.loads(json.dumps(req.server)) == {"address": "10.0.0.9", "hostport": "10.0.0.9:5060"}
    reg = Request(SipMessage(INVITE.replace("INVITE", "REGISTER")))
    registration = reg.registration
    assert registration.type == registration["type"] == "register" and registration.expires == 60
