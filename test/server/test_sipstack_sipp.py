"""SipStack against sipp, a real far end, over UDP and TCP."""
from __future__ import annotations

import asyncio

import pytest
from helpers import Sipp

from drachtio_srf.server.sipstack import SipStack, Target
from drachtio_srf.sip import SipMessage


async def start_stack(handler) -> SipStack:
    stack = SipStack("127.0.0.1", 0, handler=handler)
    await stack.start()
    return stack


async def finished(sipp: Sipp) -> int:
    return await asyncio.to_thread(sipp.wait, 40)


@pytest.mark.parametrize("transport", ["u1", "t1"])
async def test_sipp_calls_in_and_hangs_up(kit, transport):
    """sipp's built-in UAC: INVITE -> 100 (stack) + 200 (handler), ACK passed up, BYE -> 200."""
    def answer(stx, msg, src):
        contact = f"Contact: <sip:127.0.0.1:{stack.port};transport={src.transport}>"
        stx.respond(kit.response_for(msg, 200, "OK", extra=contact if msg.method == "INVITE" else ""))

    rec = kit.Recorder(answer=answer)
    stack = await start_stack(rec)
    sipp = Sipp(stack.port, scenario="uac", transport=transport)
    try:
        assert await finished(sipp) == 0, sipp.output()
        methods = []
        while not rec.requests.empty():
            methods.append(rec.requests.get_nowait()[1].method)
        assert methods == ["INVITE", "BYE"]
        ack, src = rec.acks.get_nowait()
        assert ack.method == "ACK" and src.transport == ("udp" if transport == "u1" else "tcp")
        assert rec.ack_timeouts.empty()
    finally:
        sipp.stop()
        stack.close()


async def test_sipp_cancels_a_ringing_call(kit):
    def ring(stx, msg, src):
        stx.respond(kit.response_for(msg, 180, "Ringing"))

    rec = kit.Recorder(answer=ring)
    stack = await start_stack(rec)
    sipp = Sipp(stack.port, scenario="stack-cancel.xml")
    try:
        assert await finished(sipp) == 0, sipp.output()
        invite_stx, cancel, _ = rec.cancels.get_nowait()
        assert invite_stx is not None and invite_stx.status == 487
        assert cancel.method == "CANCEL"
        assert rec.acks.empty()  # the ACK of the 487 stays in the stack
    finally:
        sipp.stop()
        stack.close()


@pytest.mark.parametrize("transport", ["u1", "t1"])
async def test_outgoing_invite_to_sipp_uas(kit, transport):
    """INVITE to a sipp UAS: 180 and 200 come back; ACK (stateless) and BYE complete it."""
    stack = await start_stack(kit.Recorder())
    sipp = Sipp(None, scenario="uas-ring-answer-bye.xml", transport=transport)
    proto = "udp" if transport == "u1" else "tcp"
    target = Target(proto, "127.0.0.1", sipp.port)
    responses: asyncio.Queue = asyncio.Queue()
    try:
        await asyncio.to_thread(_wait_listening, sipp, proto)
        invite = SipMessage(
            f"INVITE sip:service@127.0.0.1:{sipp.port} SIP/2.0\r\n"
            f"From: <sip:us@127.0.0.1:{stack.port}>;tag=out-1\r\n"
            f"To: <sip:service@127.0.0.1:{sipp.port}>\r\n"
            f"Call-ID: sipstack-out-{transport}\r\nCSeq: 1 INVITE\r\nMax-Forwards: 70\r\n"
            f"Contact: <sip:us@127.0.0.1:{stack.port};transport={proto}>\r\n"
            f"Content-Type: application/sdp\r\n\r\n"
            f"v=0\r\no=- 1 1 IN IP4 127.0.0.1\r\ns=-\r\nc=IN IP4 127.0.0.1\r\nt=0 0\r\n"
            f"m=audio 4000 RTP/AVP 0\r\n")
        stack.send_request(invite, target, lambda msg, ctx: responses.put_nowait(msg))
        ringing = await asyncio.wait_for(responses.get(), 5)
        ok = await asyncio.wait_for(responses.get(), 5)
        assert (ringing.status, ok.status) == (180, 200)
        tag = ok.to_tag
        assert tag
        dialog = (f"From: <sip:us@127.0.0.1:{stack.port}>;tag=out-1\r\n"
                  f"To: <sip:service@127.0.0.1:{sipp.port}>;tag={tag}\r\n"
                  f"Call-ID: sipstack-out-{transport}\r\nMax-Forwards: 70\r\n")
        ack = SipMessage(f"ACK sip:service@127.0.0.1:{sipp.port} SIP/2.0\r\n{dialog}CSeq: 1 ACK\r\n"
                         f"Content-Length: 0\r\n\r\n")
        stack.send_stateless(ack, target)
        bye = SipMessage(f"BYE sip:service@127.0.0.1:{sipp.port} SIP/2.0\r\n{dialog}CSeq: 2 BYE\r\n"
                         f"Content-Length: 0\r\n\r\n")
        stack.send_request(bye, target, lambda msg, ctx: responses.put_nowait(msg))
        done = await asyncio.wait_for(responses.get(), 5)
        assert done.status == 200 and done.cseq.method == "BYE"
        assert await finished(sipp) == 0, sipp.output()
    finally:
        sipp.stop()
        stack.close()


def _wait_listening(sipp: Sipp, proto: str) -> None:
    """Until sipp holds its port, read from the kernel's socket table (binding or connecting to
    the port to find out would race sipp's own bind)."""
    sipp.wait_listening(10)
