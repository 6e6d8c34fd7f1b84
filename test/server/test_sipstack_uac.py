"""SipStack as the sending side (client transactions): raw UDP/TCP peers for the edge cases."""
from __future__ import annotations

import asyncio

from helpers import free_port

from drachtio_srf.server.sipstack import SipStack, Target
from drachtio_srf.sip import SipMessage

T1 = 0.02  # 64*T1 = 1.28 s


async def start_stack(handler, t1: float = T1) -> SipStack:
    stack = SipStack("127.0.0.1", 0, handler=handler, t1=t1, t2=8 * t1, t4=8 * t1)
    await stack.start()
    return stack


def outgoing(method: str, port: int, *, call_id: str = "out-1@test", cseq: int = 1) -> SipMessage:
    return SipMessage(
        f"{method} sip:far@127.0.0.1:{port} SIP/2.0\r\n"
        f"From: <sip:us@127.0.0.1>;tag=us-tag\r\n"
        f"To: <sip:far@127.0.0.1:{port}>\r\n"
        f"Call-ID: {call_id}\r\n"
        f"CSeq: {cseq} {method}\r\n"
        f"Max-Forwards: 70\r\n"
        f"Route: <sip:proxy.invalid;lr>\r\n"
        f"Content-Length: 0\r\n\r\n")


def reply(req: SipMessage, status: int, reason: str = "X", to_tag: str | None = "far-tag") -> bytes:
    to = req.get("to") or ""
    if to_tag and ";tag=" not in to:
        to += f";tag={to_tag}"
    lines = [f"SIP/2.0 {status} {reason}"] + [f"Via: {v}" for v in req.get_all("via")]
    lines += [f"From: {req.get('from')}", f"To: {to}", f"Call-ID: {req.call_id}",
              f"CSeq: {req.get('cseq')}", "Content-Length: 0"]
    return ("\r\n".join(lines) + "\r\n\r\n").encode()


class Responses:
    """An on_response callback that queues (status, msg, ctx)."""

    def __init__(self) -> None:
        self.queue: asyncio.Queue = asyncio.Queue()

    def __call__(self, msg: SipMessage, ctx) -> None:
        self.queue.put_nowait((msg.status, msg, ctx))

    async def next(self, timeout: float = 3.0):
        return await asyncio.wait_for(self.queue.get(), timeout)


async def test_invite_timeout_gives_408_after_retransmissions(kit):
    stack = await start_stack(kit.Recorder())
    peer = await kit.UdpPeer().start()  # receives, never answers
    try:
        got = Responses()
        ctx = stack.send_request(outgoing("INVITE", peer.port), Target("udp", "127.0.0.1", peer.port), got)
        status, msg, rctx = await got.next(timeout=5)
        assert status == 408 and rctx is ctx
        assert msg.call_id == "out-1@test" and msg.cseq.method == "INVITE"
        copies = peer.queue.qsize()
        assert copies >= 5  # timer A: T1, 2T1, 4T1, ... within 64*T1
        first = await peer.recv()
        assert first.method == "INVITE"
        via = first.get_all("via")[0]
        assert via.startswith(f"SIP/2.0/UDP 127.0.0.1:{stack.port};branch=z9hG4bK") and via.endswith(";rport")
        assert ctx.terminated
        assert got.queue.empty()
    finally:
        peer.close()
        stack.close()


async def test_non_invite_timeout_and_retransmission_over_udp_only(kit):
    stack = await start_stack(kit.Recorder())
    peer = await kit.UdpPeer().start()
    try:
        got = Responses()
        stack.send_request(outgoing("OPTIONS", peer.port), Target("udp", "127.0.0.1", peer.port), got)
        status, _, _ = await got.next(timeout=5)
        assert status == 408
        assert peer.queue.qsize() >= 4  # timer E
    finally:
        peer.close()
        stack.close()


async def test_tcp_connect_failure_gives_503_with_reason(kit):
    stack = await start_stack(kit.Recorder())
    try:
        got = Responses()
        port = free_port()  # nothing listens there
        stack.send_request(outgoing("INVITE", port), Target("tcp", "127.0.0.1", port), got)
        status, msg, ctx = await got.next()
        assert status == 503
        assert "cause=503" in (msg.get("reason") or "")
        assert ctx.terminated and ctx.response_source is None
    finally:
        stack.close()


async def test_non_2xx_final_is_acked_by_the_stack(kit):
    stack = await start_stack(kit.Recorder())
    peer = await kit.UdpPeer().start()
    try:
        got = Responses()
        stack.send_request(outgoing("INVITE", peer.port), Target("udp", "127.0.0.1", peer.port), got)
        invite = await peer.recv()
        peer.send(reply(invite, 100, "Trying", to_tag=None), stack.port)
        peer.send(reply(invite, 486, "Busy Here"), stack.port)
        status, _msg, ctx = await got.next()
        assert status == 486  # the 100 was swallowed
        assert ctx.response_source is not None and ctx.response_source.port == peer.port
        ack = await peer.recv_until(lambda m: m.method == "ACK")
        assert ack.get_all("via")[0] == invite.get_all("via")[0]
        assert ack.uri == invite.uri and ack.cseq.seq == 1 and ack.cseq.method == "ACK"
        assert ack.to_tag == "far-tag" and ack.get_all("route") == invite.get_all("route")
        peer.send(reply(invite, 486, "Busy Here"), stack.port)  # retransmitted final: ACK again
        again = await peer.recv_until(lambda m: m.method == "ACK")
        assert str(again) == str(ack)
        assert got.queue.empty()
    finally:
        peer.close()
        stack.close()


async def test_2xx_retransmissions_go_to_the_handler(kit):
    rec = kit.Recorder()
    stack = await start_stack(rec)
    peer = await kit.UdpPeer().start()
    try:
        got = Responses()
        stack.send_request(outgoing("INVITE", peer.port), Target("udp", "127.0.0.1", peer.port), got)
        invite = await peer.recv()
        peer.send(reply(invite, 200, "OK"), stack.port)
        status, _, ctx = await got.next()
        assert status == 200 and ctx.terminated
        peer.send(reply(invite, 200, "OK"), stack.port)
        msg, src = await kit.get(rec.retransmitted_2xx)
        assert msg.status == 200 and src.port == peer.port
        assert got.queue.empty()
    finally:
        peer.close()
        stack.close()


async def test_cancel_held_until_provisional_then_sent_with_invite_branch(kit):
    stack = await start_stack(kit.Recorder(), t1=0.05)
    peer = await kit.UdpPeer().start()
    try:
        got = Responses()
        cancel_got = Responses()
        ctx = stack.send_request(outgoing("INVITE", peer.port), Target("udp", "127.0.0.1", peer.port), got)
        invite = await peer.recv()
        assert stack.cancel(ctx, [("Reason", "SIP;cause=200;text=\"Call completed elsewhere\"")],
                            on_response=cancel_got) is True
        assert ctx.cancel_request is not None and ctx.cancel_ctx is None
        # no provisional yet: only INVITE retransmissions arrive, no CANCEL
        held = await peer.nothing_for(0.2)
        assert held and all(m.method == "INVITE" for m in held)
        peer.send(reply(invite, 180, "Ringing"), stack.port)
        status, _, _ = await got.next()
        assert status == 180
        cancel = await peer.recv_until(lambda m: m.method == "CANCEL")
        assert cancel.get_all("via")[0] == invite.get_all("via")[0]
        assert cancel.cseq.seq == 1 and cancel.cseq.method == "CANCEL"
        assert cancel.uri == invite.uri and cancel.to_tag is None
        assert "Call completed elsewhere" in (cancel.get("reason") or "")
        peer.send(reply(cancel, 200, "OK"), stack.port)
        status, _, cctx = await cancel_got.next()
        assert status == 200 and cctx is ctx.cancel_ctx
        peer.send(reply(invite, 487, "Request Terminated"), stack.port)
        status, _, _ = await got.next()
        assert status == 487
        ack = await peer.recv_until(lambda m: m.method == "ACK")
        assert ack.cseq.method == "ACK"
        assert stack.cancel(ctx) is False  # already final: nothing to do
    finally:
        peer.close()
        stack.close()


async def test_cancel_after_final_returns_false(kit):
    stack = await start_stack(kit.Recorder())
    peer = await kit.UdpPeer().start()
    try:
        got = Responses()
        ctx = stack.send_request(outgoing("INVITE", peer.port), Target("udp", "127.0.0.1", peer.port), got)
        invite = await peer.recv()
        peer.send(reply(invite, 200, "OK"), stack.port)
        await got.next()
        assert stack.cancel(ctx) is False
        assert ctx.cancel_request is None
    finally:
        peer.close()
        stack.close()


async def test_send_stateless_adds_via_only_when_missing(kit):
    stack = await start_stack(kit.Recorder())
    peer = await kit.UdpPeer().start()
    try:
        target = Target("udp", "127.0.0.1", peer.port)
        ack = outgoing("ACK", peer.port)
        stack.send_stateless(ack, target)
        first = await peer.recv()
        assert first.method == "ACK" and len(first.get_all("via")) == 1
        stack.send_stateless(ack, target)  # resent as is (same branch)
        second = await peer.recv()
        assert second.get_all("via") == first.get_all("via")
    finally:
        peer.close()
        stack.close()
