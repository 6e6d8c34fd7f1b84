"""Proxying incoming INVITEs: srf.proxy_request / req.proxy against sipp callers and targets."""
from __future__ import annotations

import queue
import socket

import pytest
from helpers import LOOPBACK
from itest_support import WAIT, complete, get

from drachtio_srf import DrachtioError


def uri(port: int) -> str:
    return f"sip:service@{LOOPBACK}:{port}"


def proxy_on_invite(srf, style, results: queue.Queue, destination, opts, via: str = "srf") -> None:
    """Route INVITEs to a handler that proxies them and queues (err, result)."""
    def on_invite(req, res):
        then = lambda err, result: results.put((err, result))
        if via == "srf":
            complete(style, then, srf.proxy_request, req, destination, opts=opts)
        else:
            complete(style, then, req.proxy, opts=dict(opts, destination=destination))
    srf.invite(on_invite)


def outcome(results: queue.Queue):
    err, result = get(results, "the proxy result")
    assert err is None, f"proxy failed: {err!r}"
    return result


def test_simultaneous_forking_busy_and_answer(srf, server, far_end, style):
    """Two targets at once: one 486s at once, the other answers; the caller gets the 200.

    (Record-routed because sipp sends the caller's ACK and BYE to the server it called.)
    """
    busy = far_end("proxy-uas-486.xml")
    answer = far_end("proxy-uas-200.xml")
    results: queue.Queue = queue.Queue()
    proxy_on_invite(srf, style, results, [uri(busy.port), uri(answer.port)], {"forking": "simultaneous", "record_route": True})
    caller = far_end("server-uac-rr.xml", server.sip_port)
    result = outcome(results)
    caller.expect_success()
    busy.expect_success()
    answer.expect_success()
    assert result["final_status"] == result["finalStatus"] == result.final_status == 200
    assert result["connected"] is True
    assert result["final_response"]["status"] == 200
    assert result["finalResponse"]["msg"].status == 200
    by_port = {r["port"]: r for r in result["responses"]}
    assert set(by_port) == {busy.port, answer.port}
    assert [m["status"] for m in by_port[busy.port]["msgs"]] == [486]
    assert [m["status"] for m in by_port[answer.port]["msgs"]] == [200]
    assert by_port[answer.port]["address"] == LOOPBACK
    assert result["responses"][-1]["port"] == answer.port     # the 486 came first


def test_serial_provisional_timeout_moves_on(srf, server, far_end, style):
    """A target that never answers is given up after provisional_timeout; the next one answers."""
    silent = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    silent.bind((LOOPBACK, 0))
    try:
        answer = far_end("proxy-uas-200.xml")
        results: queue.Queue = queue.Queue()
        dests = [uri(silent.getsockname()[1]), uri(answer.port)]
        proxy_on_invite(srf, style, results, dests, {"forking": "sequential", "provisional_timeout": "1s",
                                                           "record_route": True})
        caller = far_end("server-uac-rr.xml", server.sip_port)
        result = outcome(results)
        caller.expect_success()
        answer.expect_success()
        # the silent target got the INVITE first
        silent.settimeout(WAIT)
        data, _ = silent.recvfrom(65536)
        assert data.startswith(b"INVITE ")
    finally:
        silent.close()
    assert result["final_status"] == 200 and result["connected"] is True
    assert [r["port"] for r in result["responses"]] == [answer.port]


def test_record_route_keeps_server_in_path(srf, server, far_end, style):
    """record_route: both ends see our Record-Route; the caller's ACK and BYE go through us."""
    answer = far_end("proxy-uas-rr.xml")
    results: queue.Queue = queue.Queue()
    proxy_on_invite(srf, style, results, uri(answer.port), {"record_route": True}, via="req")
    caller = far_end("proxy-uac-rr.xml", server.sip_port)
    result = outcome(results)
    caller.expect_success()
    answer.expect_success()
    assert result["final_status"] == 200
    assert len(result["responses"]) == 1 and result["responses"][0]["port"] == answer.port


def test_all_targets_fail(srf, server, far_end, style):
    """The best failure goes upstream; connected is False and final_status tells why."""
    busy = far_end("proxy-uas-486.xml")
    results: queue.Queue = queue.Queue()
    proxy_on_invite(srf, style, results, f"{LOOPBACK}:{busy.port}", {})    # no scheme: sip: added
    caller = far_end("uac-expect-486.xml", server.sip_port)
    result = outcome(results)
    caller.expect_success()
    busy.expect_success()
    assert result["connected"] is False
    assert result["final_status"] == 486
    assert result["final_response"]["msg"].reason == "Busy Here"


def test_second_proxy_of_same_request_fails_with_exception(srf, server, far_end, style):
    """A NOK from the server arrives as a DrachtioError (not a string)."""
    answer = far_end("proxy-uas-200.xml")
    results: queue.Queue = queue.Queue()
    second: queue.Queue = queue.Queue()

    def on_invite(req, res):
        opts = {"destination": uri(answer.port), "remain_in_dialog": True}
        complete(style, lambda err, r: results.put((err, r)), req.proxy, opts=opts)
        complete(style, lambda err, r: second.put((err, r)), req.proxy, opts=opts)

    srf.invite(on_invite)
    caller = far_end("server-uac-rr.xml", server.sip_port)
    err, _ = get(second, "the second proxy attempt")
    assert isinstance(err, DrachtioError), f"expected a DrachtioError, got {err!r}"
    assert "Unknown transaction id" in str(err)
    assert outcome(results)["final_status"] == 200
    caller.expect_success()
    answer.expect_success()


def test_proxy_of_request_the_app_sent_is_refused(srf, server):
    """req.proxy only works on requests from the network."""
    from drachtio_srf import Request
    req = Request()
    req.source = "application"
    with pytest.raises(RuntimeError):
        req.proxy({"destination": "sip:x@127.0.0.1"})
