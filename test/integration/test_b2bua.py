"""create_b2bua between two sipp far ends: A calls the server, the app bridges to B (a sipp UAS).

Each test runs in both styles: "callback" (JS option keys, progress dict and a last-argument
callback, through the JS alias createB2BUA) and "future" (keyword options, the returned Future).
"""
from __future__ import annotations

import concurrent.futures
import queue
from collections.abc import Callable
from typing import Any

import pytest
from helpers import LOOPBACK
from itest_support import WAIT, camel, get

from drachtio_srf import SipError


def bridge(style: str, srf: Any, req: Any, res: Any, uri: Any, then: Callable[[Any, Any], None],
           opts: dict[str, Any] | None = None, progress: dict[str, Any] | None = None) -> None:
    """Call create_b2bua as a user of `style` would and hand `then(err, result)` the outcome."""
    opts = opts or {}
    if style == "callback":
        def cb(err: Any, result: Any = None) -> None:
            then(err, result)
        srf.createB2BUA(req, res, uri, camel(opts), camel(progress or {}), cb)
        return
    fut = srf.create_b2bua(req, res, uri, progress=progress, **opts)
    assert isinstance(fut, concurrent.futures.Future)
    try:
        result = fut.result(WAIT)
    except Exception as exc:  # noqa: BLE001 - handed over like a callback's err
        then(exc, None)
        return
    then(None, result)


def b_uri(sipp: Any) -> str:
    return f"sip:callee@{LOOPBACK}:{sipp.port}"


def wire_teardown(result: Any, ended: queue.Queue) -> None:
    """What an app does: a BYE on either leg ends the other."""
    result.uas.on("destroy", lambda *_: (ended.put("uas"), result.uac.destroy()))
    result.uac.on("destroy", lambda *_: (ended.put("uac"), result.uas.destroy()))


def connected_call(srf: Any, style: str, b_sipp: Any, opts: dict[str, Any] | None = None,
                   progress: dict[str, Any] | None = None, uri: Any = None) -> tuple[queue.Queue, queue.Queue]:
    """Register an INVITE handler bridging to B; returns (results, ended) queues."""
    results: queue.Queue = queue.Queue()
    ended: queue.Queue = queue.Queue()

    def on_invite(req: Any, res: Any) -> None:
        def then(err: Any, result: Any) -> None:
            if err is not None:
                results.put(err)
                return
            wire_teardown(result, ended)
            results.put(result)
        bridge(style, srf, req, res, uri or b_uri(b_sipp), then, opts, progress)

    srf.invite(on_invite)
    return results, ended


def test_call_carried_end_to_end_and_a_hangs_up(srf, server, far_end, style):
    """A's offer reaches B, B's answer reaches A; A's BYE fires uas 'destroy' and the app's BYE reaches B."""
    b = far_end("b2b-b-answer.xml")
    results, ended = connected_call(srf, style, b)
    a = far_end("b2b-a-bye.xml", server.sip_port)

    result = get(results, "the bridged call")
    assert not isinstance(result, BaseException), f"create_b2bua failed: {result!r}"
    assert result.uas is result["uas"] and result.uac is result["uac"]
    assert result.uas.other is result.uac and result.uac.other is result.uas
    assert result.uas.type == "uas" and result.uac.type == "uac"
    assert "s=callee-b" in result.uas.local.sdp and "s=caller-a" in result.uas.remote.sdp
    assert "s=caller-a" in result.uac.local.sdp and "s=callee-b" in result.uac.remote.sdp
    assert result.uac.remote.uri.startswith(b_uri(b))

    assert get(ended, "the A leg's destroy") == "uas"
    a.expect_success()
    b.expect_success()
    assert not result.uas.connected and not result.uac.connected


def test_b_hangs_up_and_bye_reaches_a(srf, server, far_end, style):
    """B's BYE fires uac 'destroy'; the app's BYE on the A leg reaches A."""
    b = far_end("b2b-b-answer-bye.xml")
    results, ended = connected_call(srf, style, b)
    a = far_end("b2b-a-recv-bye.xml", server.sip_port)

    result = get(results, "the bridged call")
    assert not isinstance(result, BaseException), f"create_b2bua failed: {result!r}"
    assert get(ended, "the B leg's destroy") == "uac"
    b.expect_success()
    a.expect_success()
    assert not result.uas.connected and not result.uac.connected


def test_a_cancels_while_b_rings(srf, server, far_end, style):
    """A's CANCEL (with a Reason) is passed to B; A gets 487 and the B2BUA fails with SipError 487."""
    b = far_end("b2b-b-ring-cancel.xml")
    sent: queue.Queue = queue.Queue()
    results, _ended = connected_call(srf, style, b, progress={"cb_request": lambda err, r: sent.put((err, r))})
    a = far_end("b2b-a-cancel.xml", server.sip_port)

    err, uac_req = get(sent, "cb_request with the B INVITE")
    assert err is None and uac_req.method == "INVITE" and uac_req.uri.startswith(b_uri(b))
    outcome = get(results, "the B2BUA's failure")
    b.expect_success()
    a.expect_success()
    assert isinstance(outcome, SipError), f"expected SipError, got {outcome!r}"
    assert outcome.status == 487


def test_b_busy_is_passed_to_a(srf, server, far_end, style):
    """With pass_failure (the default) B's 486 reaches A, and the B2BUA fails with SipError 486."""
    b = far_end("b2b-b-busy.xml")
    results, _ended = connected_call(srf, style, b)
    a = far_end("b2b-a-expect-486.xml", server.sip_port)

    outcome = get(results, "the B2BUA's failure")
    assert isinstance(outcome, SipError) and outcome.status == 486
    assert outcome.res is not None and outcome.res.get("X-Reply") == "from-b"
    a.expect_success()
    b.expect_success()


def test_b_busy_not_passed_with_pass_failure_false(srf, server, far_end, style):
    """pass_failure=False: A does not get B's 486; the app answers 480 itself after the failure."""
    b = far_end("b2b-b-busy.xml")
    failures: queue.Queue = queue.Queue()

    def on_invite(req: Any, res: Any) -> None:
        def then(err: Any, result: Any) -> None:
            failures.put(err)
            if err is not None:
                assert not res.finished, "the B2BUA answered A although pass_failure is False"
                res.send(480)
        bridge(style, srf, req, res, b_uri(b), then, {"pass_failure": False})

    srf.invite(on_invite)
    a = far_end("b2b-a-expect-480.xml", server.sip_port)
    err = get(failures, "the B2BUA's failure")
    assert isinstance(err, SipError) and err.status == 486
    a.expect_success()
    b.expect_success()


def test_early_media_passed_to_a(srf, server, far_end, style):
    """B's 183 with SDP reaches A with that SDP; cb_provisional sees it; cb_finalized_uac runs before the result."""
    b = far_end("b2b-b-early-media.xml")
    provisional: queue.Queue = queue.Queue()
    finalized: queue.Queue = queue.Queue()
    results, ended = connected_call(srf, style, b, progress={
        "cb_provisional": lambda res: provisional.put(res),
        "cb_finalized_uac": lambda uac: finalized.put(uac)})
    a = far_end("b2b-a-early-media.xml", server.sip_port)

    early = get(provisional, "cb_provisional with the 183")
    assert early.status == 183 and "s=callee-early" in early.body
    uac = get(finalized, "cb_finalized_uac")
    result = get(results, "the bridged call")
    assert not isinstance(result, BaseException), f"create_b2bua failed: {result!r}"
    assert result.uac is uac
    assert get(ended, "the A leg's destroy") == "uas"
    a.expect_success()
    b.expect_success()


@pytest.mark.parametrize("how", ["named", "all"])
def test_proxied_headers_and_translated_sdp(srf, server, far_end, style, how):
    """proxy_request_headers / proxy_response_headers copy the named (or all but excluded) headers,
    response_headers is applied to each A response, local_sdp_a rewrites B's SDP for A."""
    b = far_end("b2b-b-headers.xml")

    def local_sdp_a(sdp_b: str, res: Any) -> Any:
        assert res.status == 200
        translated = sdp_b.replace("s=callee-b", "s=translated")
        if style == "callback":
            return translated
        fut: concurrent.futures.Future = concurrent.futures.Future()
        fut.set_result(translated)
        return fut

    opts: dict[str, Any] = {
        "headers": {"X-App": "app-b"},
        "response_headers": lambda res, headers: {"X-Extra": f"app-{res.status}"},
        "local_sdp_a": local_sdp_a,
    }
    if how == "named":
        opts.update(proxy_request_headers=["x-custom"], proxy_response_headers=["X-Reply"])
    else:
        opts.update(proxy_request_headers=["all", "-X-Drop"], proxy_response_headers=["all", "-X-Secret"])
    requests: queue.Queue = queue.Queue()

    def on_invite(req: Any, res: Any) -> None:
        requests.put(req)

        def then(err: Any, result: Any) -> None:
            if err is None:
                result.uas.on("destroy", lambda *_: result.uac.destroy())
            requests.put(err or result)
        bridge(style, srf, req, res, b_uri(b), then, opts)

    srf.invite(on_invite)
    a = far_end("b2b-a-headers.xml", server.sip_port)
    req = get(requests, "the INVITE")
    result = get(requests, "the bridged call")
    assert not isinstance(result, BaseException), f"create_b2bua failed: {result!r}"
    assert "s=translated" in result.uas.local.sdp
    a.expect_success()
    b.expect_success()
    assert req.get("X-Drop") == "not-for-b", "A's request was changed by the header copy"


def test_uri_list_tried_in_order(srf, server, far_end, style):
    """With a list of B targets, a failure (486) moves on to the next one, which answers."""
    busy = far_end("b2b-b-busy.xml")
    b = far_end("b2b-b-answer.xml")
    sent: queue.Queue = queue.Queue()
    results, ended = connected_call(srf, style, b, uri=[b_uri(busy), b_uri(b)],
                                    progress={"cb_request": lambda err, r: sent.put(r.uri)})
    a = far_end("b2b-a-bye.xml", server.sip_port)

    result = get(results, "the bridged call")
    assert not isinstance(result, BaseException), f"create_b2bua failed: {result!r}"
    assert get(sent, "the first B INVITE").startswith(b_uri(busy))
    assert get(sent, "the second B INVITE").startswith(b_uri(b))
    assert result.uac.remote.uri.startswith(b_uri(b))
    assert get(ended, "the A leg's destroy") == "uas"
    busy.expect_success()
    a.expect_success()
    b.expect_success()


def test_requests_from_b_wait_for_a_ack(srf, server, far_end, style):
    """B sends INFO right after its ACK while A is slow to ACK: the INFO reaches the app's uac
    listener only after A's ACK has been handled (requests from B are queued meanwhile)."""
    b = far_end("b2b-b-info.xml")
    order: queue.Queue = queue.Queue()

    def on_invite(req: Any, res: Any) -> None:
        def then(err: Any, result: Any) -> None:
            if err is not None:
                order.put(err)
                return
            result.uas.on("ack", lambda _ack: order.put("A's ACK"))
            result.uac.on("info", lambda _req, info_res: (order.put("B's INFO"), info_res.send(200)))
            result.uas.on("destroy", lambda *_: result.uac.destroy())
        bridge(style, srf, req, res, b_uri(b), then)

    srf.invite(on_invite)
    a = far_end("b2b-a-slow-ack.xml", server.sip_port)
    assert get(order, "the first event") == "A's ACK"
    assert get(order, "the second event") == "B's INFO"
    a.expect_success()
    b.expect_success()


def test_late_offer_answer_in_a_ack(srf, server, far_end, style):
    """A sends no SDP: B's offer (its 200) goes to A, and A's answer (its ACK), through local_sdp_b,
    is sent in the ACK to B; the result is delivered after that ACK."""
    b = far_end("b2b-b-late-offer.xml")
    results, ended = connected_call(srf, style, b, opts={
        "local_sdp_b": lambda sdp: sdp.replace("s=caller-a", "s=caller-a-via-app")})
    a = far_end("b2b-a-late-offer.xml", server.sip_port)

    result = get(results, "the bridged call")
    assert not isinstance(result, BaseException), f"create_b2bua failed: {result!r}"
    assert result.uas.other is result.uac and result.uac.other is result.uas
    assert "s=caller-a-via-app" in result.uac.local.sdp
    assert get(ended, "the A leg's destroy") == "uas"
    a.expect_success()
    b.expect_success()
