"""Proxying with follow_redirects: a target's 3xx is followed by the server (PROTOCOL 5.4), or,
without the option, is the final response the caller gets."""
from __future__ import annotations

import queue
import socket

from helpers import LOOPBACK
from test_proxy import outcome, proxy_on_invite, uri


def test_302_is_followed_to_the_contact(srf, server, far_end, style):
    """The first target redirects to a second one, which answers: the caller is connected, and
    the result lists the 302 from the first target and the 200 from the second."""
    second = far_end("proxy-uas-200.xml")
    first = far_end("uas-redirect-302.xml", extra=["-key", "redirect_port", str(second.port)])
    results: queue.Queue = queue.Queue()
    proxy_on_invite(srf, style, results, uri(first.port), {"follow_redirects": True, "record_route": True})
    caller = far_end("server-uac-rr.xml", server.sip_port)
    result = outcome(results)
    caller.expect_success()
    first.expect_success()
    second.expect_success()
    assert result["connected"] is True and result["final_status"] == 200
    by_port = {r["port"]: [m["status"] for m in r["msgs"]] for r in result["responses"]}
    assert by_port == {first.port: [302], second.port: [200]}
    assert [r["port"] for r in result["responses"]] == [first.port, second.port]


def test_redirect_target_failing_gives_its_failure_not_the_302(srf, server, far_end, style):
    """The redirected-to target answers 486: a 4xx ranks above a 3xx, so the caller gets 486."""
    second = far_end("proxy-uas-486.xml")
    first = far_end("uas-redirect-302.xml", extra=["-key", "redirect_port", str(second.port)])
    results: queue.Queue = queue.Queue()
    proxy_on_invite(srf, style, results, uri(first.port), {"follow_redirects": True})
    caller = far_end("uac-expect-486.xml", server.sip_port)
    result = outcome(results)
    caller.expect_success()
    first.expect_success()
    second.expect_success()
    assert result["connected"] is False and result["final_status"] == 486


def test_302_without_follow_redirects_is_the_final_response(srf, server, far_end, style):
    """Without follow_redirects the server does not chase the Contact: the caller gets the 302."""
    elsewhere = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    elsewhere.bind((LOOPBACK, 0))
    try:
        first = far_end("uas-redirect-302.xml",
                        extra=["-key", "redirect_port", str(elsewhere.getsockname()[1])])
        results: queue.Queue = queue.Queue()
        proxy_on_invite(srf, style, results, uri(first.port), {})
        caller = far_end("uac-expect-302.xml", server.sip_port)
        result = outcome(results)
        caller.expect_success()
        first.expect_success()
        assert result["connected"] is False and result["final_status"] == 302
        assert result["final_response"]["msg"].get("Contact").startswith("<sip:second@")
        elsewhere.settimeout(0.3)     # nothing was sent to the Contact
        try:
            data, _ = elsewhere.recvfrom(65536)
        except TimeoutError:
            data = b""
        assert data == b"", f"the server followed the redirect: {data[:60]!r}"
    finally:
        elsewhere.close()
