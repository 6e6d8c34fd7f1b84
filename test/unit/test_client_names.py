"""JS aliases and option normalisation; the public package surface."""
from __future__ import annotations

import drachtio_srf
from drachtio_srf import Dialog, Request, Response, SipError, Srf
from drachtio_srf.models import SipEndpointInfo, SipInfo
from drachtio_srf.names import normalize_opts


def test_js_aliases_are_the_same_objects():
    assert Srf.createUAS is Srf.create_uas
    assert Srf.createUAC is Srf.create_uac
    assert Srf.findDialogByCallIDAndFromTag is Srf.find_dialog_by_call_id_and_from_tag
    assert Srf.parseUri is Srf.parse_uri
    assert Dialog.onHold is Dialog.on_hold and Dialog.dialogType is Dialog.dialog_type
    assert Dialog.toJSON is Dialog.to_json
    assert Response.statusCode is Response.status_code
    assert Response.finalResponseSent is Response.final_response_sent


def test_sip_info_aliases_read_and_write():
    info = SipInfo(call_id="c", local_tag="l", remote_tag="r")
    assert (info.callId, info.localTag, info.remoteTag) == ("c", "l", "r")
    info.localTag = "x"
    assert info.local_tag == "x"
    assert SipEndpointInfo(uri="sip:a", sdp=None).contact is None


def test_normalize_opts_maps_js_keys_and_keeps_headers():
    o = normalize_opts({"localSdp": "v=0", "noAck": True, "callingNumber": "123",
                        "followRedirects": True, "keepUriOnRedirect": True, "enablePing": True,
                        "headers": {"X-My-Header": "1"}, "reconnect": {"retryMaxDelay": 5}},
                       proxy="sip:p", no_ack=None)
    assert o == {"local_sdp": "v=0", "no_ack": True, "calling_number": "123", "follow_redirects": True,
                 "keep_uri_on_redirect": True, "enable_ping": True, "headers": {"X-My-Header": "1"},
                 "reconnect": {"retry_max_delay": 5}, "proxy": "sip:p"}


def test_sip_error_shape():
    err = SipError(486, "Busy Here")
    assert (err.status, err.reason, err.res) == (486, "Busy Here", None)
    assert str(err) == "Sip non-success response: 486"


def test_package_exports():
    assert drachtio_srf.__version__ == "0.1.0"
    assert drachtio_srf.SipRequest is Request and drachtio_srf.SipResponse is Response
    assert drachtio_srf.parseUri is drachtio_srf.parse_uri
    assert drachtio_srf.parse_uri("sip:alice@10.0.0.1:5080").port == 5080
    assert Srf.SipError is SipError and Srf.Dialog is Dialog
