"""The small JS objects the library hands out, read as a porting team reads them (issue 8.3).

JS code reads ``req.server.address``, ``result.uas``, ``results.finalStatus`` and
``JSON.stringify(...)``s them; these tests do the same with the JS names and option dicts against
sipp far ends through the embedded server: attribute and item access, ``uas, uac = result``, and
``json.dumps(..., default=json_default)`` giving what ``JSON.stringify`` gives.
"""
from __future__ import annotations

import json
import queue

from helpers import LOOPBACK
from itest_support import SDP, WAIT, get

from drachtio_srf import SipError, json_default


def test_req_server_reads_as_a_js_object(srf, server, far_end):
    """``req.server.address`` (JS) and ``req.server["address"]`` both work, and it serialises."""
    got: queue.Queue = queue.Queue()

    def on_invite(req, res):
        got.put((req.server.address, req.server["address"], req.server.hostport, json.dumps(req.server)))
        res.send(486)

    srf.invite(on_invite)
    sipp = far_end("uac-expect-486.xml", server.sip_port)
    address, item, hostport, text = get(got, "the INVITE")
    sipp.expect_success()
    assert address == item == LOOPBACK
    assert f"{LOOPBACK}:{server.sip_port}" in hostport
    assert json.loads(text) == {"address": LOOPBACK, "hostport": hostport}


def test_register_registration_reads_as_a_js_object(srf, server, far_end):
    """``req.registration.type`` / ``.expires`` / ``.aor`` as in drachtio-mw-registration-parser."""
    got: queue.Queue = queue.Queue()

    def on_register(req, res):
        reg = req.registration
        got.put((reg.type, reg.expires, reg.aor, reg["type"], json.dumps(reg)))
        res.send(200, {"headers": {"Contact": req.get("Contact")}})

    srf.register(on_register)
    sipp = far_end("register-refresh-unregister.xml", server.sip_port)
    first = get(got, "the first REGISTER")
    for i in range(3):
        get(got, f"REGISTER #{i + 2}")
    sipp.expect_success()
    kind, expires, aor, item, text = first
    assert (kind, expires, aor, item) == ("register", 3600, f"sip:alice@{LOOPBACK}", "register")
    assert json.loads(text)["expires"] == 3600


def test_b2bua_result_unpacks_and_reads_as_a_js_object(srf, server, far_end):
    """``const {uas, uac} = await srf.createB2BUA(...)`` ports as ``uas, uac = result``; ``result.uas``
    and ``result['uas']`` still work, and JSON.stringify's ``{uas, uac}`` is json_default's."""
    b = far_end("b2b-b-answer.xml")
    got: queue.Queue = queue.Queue()

    def on_invite(req, res):
        result = srf.createB2BUA(req, res, f"sip:callee@{LOOPBACK}:{b.port}", {"localSdpB": req.body}).result(WAIT)
        uas, uac = result
        got.put((result, uas, uac))
        uas.on("destroy", lambda *_: uac.destroy())
        uac.on("destroy", lambda *_: uas.destroy())

    srf.invite(on_invite)
    a = far_end("b2b-a-bye.xml", server.sip_port)
    result, uas, uac = get(got, "the bridged call")
    assert uas is result.uas is result["uas"] and uac is result.uac is result["uac"]
    assert (uas.type, uac.type) == ("uas", "uac") and uas.other is uac
    assert dict(result) == {"uas": uas, "uac": uac}
    text = json.loads(json.dumps(result, default=json_default))
    assert set(text) == {"uas", "uac"}
    assert text["uas"]["type"] == "uas" and text["uac"]["type"] == "uac"
    assert text["uas"]["sip"]["callId"] == uas.sip.callId
    a.expect_success()
    b.expect_success()


def test_sip_error_of_a_failed_uac_serialises_as_in_js(srf, far_end):
    """``JSON.stringify(err)`` of a SipError gives ``{name, status, reason}``; here json_default
    (or ``err.to_json()``) gives that, with the final response's JSON under ``res``."""
    busy = far_end("uas-busy.xml")
    fut = srf.createUAC(f"sip:callee@{LOOPBACK}:{busy.port}", {"localSdp": SDP})
    err = fut.exception(WAIT)
    busy.expect_success()
    assert isinstance(err, SipError) and err.status == 486
    data = json.loads(json.dumps(err, default=json_default))
    assert (data["name"], data["status"], data["reason"]) == ("SipError", 486, "Busy Here")
    assert data["res"]["msg"].startswith("SIP/2.0 486")
    assert json.loads(json.dumps(err.toJSON())) == data
    assert err.message == "Sip non-success response: 486"


def test_proxy_results_read_and_serialise_as_in_js(srf, server, far_end):
    """``results.finalStatus``, ``results.finalResponse.msg`` and ``JSON.stringify(results)``."""
    answer = far_end("proxy-uas-200.xml")
    got: queue.Queue = queue.Queue()

    def on_invite(req, res):
        srf.proxyRequest(req, f"sip:service@{LOOPBACK}:{answer.port}", {"recordRoute": True},
                         lambda err, results: got.put((err, results)))

    srf.invite(on_invite)
    caller = far_end("server-uac-rr.xml", server.sip_port)
    err, results = get(got, "the proxy result")
    caller.expect_success()
    answer.expect_success()
    assert err is None
    assert results.finalStatus == results["finalStatus"] == 200 and results.connected is True
    assert results.finalResponse.msg.status == 200
    data = json.loads(json.dumps(results, default=json_default))
    assert data["finalStatus"] == 200 and data["connected"] is True
    assert data["responses"][0]["msgs"][-1]["msg"].startswith("SIP/2.0 200")
