"""The proxy command as the client builds it, and how it reads the server's replies (fake server)."""
from __future__ import annotations

import queue

from client_fake import WAIT, FakeServer, invite, response

from drachtio_srf import DrachtioError, Srf, wire


def start(srf: Srf, server: FakeServer, proxy) -> queue.Queue:
    """Deliver an INVITE whose handler runs ``proxy(req, callback)``; returns the outcomes queue."""
    got: queue.Queue = queue.Queue()
    srf.invite(lambda req, res: proxy(req, lambda err, result=None: got.put((err, result))))
    srf.connect(host="127.0.0.1", port=server.port, secret="cymru").result(WAIT)
    server.deliver(invite(), txn_id="t1")
    return got


def proxy_frame(server: FakeServer) -> wire.Frame:
    return server.next_frame(lambda f: f.type == "proxy")


def test_destinations_schemes_and_options_on_the_wire(srf, server):
    got = start(srf, server, lambda req, cb: srf.proxy_request(
        req, ["sips:bob@example.com", "alice@10.0.0.9", "tel:+15551234"],
        {"forking": "simultaneous", "recordRoute": True, "followRedirects": True,
         "provisionalTimeout": "2s", "finalTimeout": 30}, cb))
    f = proxy_frame(server)
    assert f.fields[2:9] == ["t1", "remainInDialog", "fullResponse", "followRedirects", "simultaneous",
                             "2s", "30000ms"]
    assert f.fields[9:] == ["sips:bob@example.com", "sip:alice@10.0.0.9", "tel:+15551234"]
    assert (f.sip or "").startswith("INVITE sips:bob@example.com SIP/2.0\r\n")
    server.send(wire.reply(wire.new_id(), f.msg_id, "OK", ["done"]))
    err, result = got.get(timeout=WAIT)
    assert err is None and result["final_status"] is None and result["connected"] is False


def test_callback_only_form_uses_the_request_uri(srf, server):
    """proxy_request(req, cb) works (it throws in drachtio-srf) and proxies to the request-URI."""
    got = start(srf, server, lambda req, cb: srf.proxy_request(req, cb))
    f = proxy_frame(server)
    assert f.fields[3:9] == ["", "fullResponse", "", "serial", "", ""]
    assert f.fields[9:] == ["sip:app@127.0.0.1"]
    # two final responses from two targets, then done
    for port, status, reason in ((5070, 486, "Busy Here"), (5080, 200, "OK")):
        text = response(status, reason)
        server.send(wire.proxy_continue(wire.new_id(), f.msg_id, nbytes=len(text), protocol="udp",
                                        address="10.0.0.3", port=port, time=wire.stack_time(),
                                        sip_text=text))
    server.send(wire.proxy_done(wire.new_id(), f.msg_id))
    err, result = got.get(timeout=WAIT)
    assert err is None
    assert result.connected is True and result.finalStatus == result.final_status == 200
    assert result.final_response["status"] == 200 and result.final_response["msg"].status == 200
    assert [(r["port"], [m["status"] for m in r["msgs"]]) for r in result["responses"]] == \
        [(5070, [486]), (5080, [200])]


def test_nok_is_an_exception(srf, server):
    got = start(srf, server, lambda req, cb: req.proxy({"destination": "sip:x@10.0.0.4"}, cb))
    server.nok(proxy_frame(server), "Unknown transaction id: t1")
    err, _ = got.get(timeout=WAIT)
    assert isinstance(err, DrachtioError) and "Unknown transaction id" in str(err)
