"""SipStack as the receiving side (server transactions) over UDP, driven by a raw UDP peer."""
from __future__ import annotations

import logging

from drachtio_srf.server.sipstack import ServerTransaction, SipStack

T1 = 0.05  # shrunk timers: 64*T1 = 3.2 s


async def start_stack(handler, t1: float = T1) -> SipStack:
    stack = SipStack("127.0.0.1", 0, handler=handler, t1=t1, t2=4 * t1, t4=4 * t1)
    await stack.start()
    return stack


async def test_invite_gets_100_then_200_retransmitted_until_ack(kit):
    rec = kit.Recorder(answer=lambda stx, msg, src: stx.respond(kit.response_for(msg, 200, "OK")))
    stack = await start_stack(rec)
    peer = await kit.UdpPeer().start()
    try:
        peer.send(kit.request("INVITE", stack.port, from_port=peer.port), stack.port)
        trying = await peer.recv()
        assert trying.status == 100
        assert trying.to_tag is None
        stx, inv, src = await kit.get(rec.requests)
        assert isinstance(stx, ServerTransaction) and stx.method == "INVITE"
        assert (src.transport, src.address, src.port) == ("udp", "127.0.0.1", peer.port)
        # the top Via got rport (and received, since the Via host is 127.0.0.1 it is not added)
        assert inv.get_all("via")[0].endswith(f";rport={peer.port}")
        assert "received=" not in inv.get_all("via")[0]
        oks = [await peer.recv() for _ in range(3)]  # the 200 and at least two retransmissions
        assert [m.status for m in oks] == [200, 200, 200]
        assert oks[0].to_tag == "uas-tag"
        ack = kit.request("ACK", stack.port, branch="z9hG4bK-ack-1", to_tag="uas-tag", from_port=peer.port)
        peer.send(ack, stack.port)
        got, ack_src = await kit.get(rec.acks)
        assert got.method == "ACK" and ack_src.port == peer.port
        late = await peer.nothing_for(0.5)  # an in-flight copy may still arrive, then silence
        assert len(late) <= 1
        assert await peer.nothing_for(0.5) == []
        peer.send(ack, stack.port)  # a retransmitted ACK is absorbed
        assert await kit.empty_after(rec.acks, 0.3)
        assert rec.ack_timeouts.empty()
    finally:
        peer.close()
        stack.close()


async def test_no_ack_reports_ack_timeout(kit):
    rec = kit.Recorder(answer=lambda stx, msg, src: stx.respond(kit.response_for(msg, 200, "OK")))
    stack = await start_stack(rec, t1=0.02)
    peer = await kit.UdpPeer().start()
    try:
        peer.send(kit.request("INVITE", stack.port, from_port=peer.port), stack.port)
        stx, _, _ = await kit.get(rec.requests)
        tstx, response = await kit.get(rec.ack_timeouts, timeout=5)
        assert tstx is stx and response.status == 200
        assert stx.terminated
        assert rec.acks.empty()
    finally:
        peer.close()
        stack.close()


async def test_non_2xx_final_retransmitted_and_its_ack_absorbed(kit):
    rec = kit.Recorder(answer=lambda stx, msg, src: stx.respond(kit.response_for(msg, 486, "Busy Here")))
    stack = await start_stack(rec)
    peer = await kit.UdpPeer().start()
    try:
        peer.send(kit.request("INVITE", stack.port, from_port=peer.port), stack.port)
        assert (await peer.recv()).status == 100
        assert [(await peer.recv()).status for _ in range(2)] == [486, 486]
        # ACK of a non-2xx reuses the INVITE's branch
        peer.send(kit.request("ACK", stack.port, to_tag="uas-tag", from_port=peer.port), stack.port)
        late = await peer.nothing_for(0.4)
        assert len(late) <= 1
        assert await peer.nothing_for(0.4) == []
        assert rec.acks.empty()
        stx, _, _ = rec.requests.get_nowait()
        assert stx.final_sent and stx.status == 486
    finally:
        peer.close()
        stack.close()


async def test_retransmitted_invite_absorbed_and_answered_with_last_response(kit):
    rec = kit.Recorder()
    stack = await start_stack(rec)
    peer = await kit.UdpPeer().start()
    try:
        invite = kit.request("INVITE", stack.port, from_port=peer.port)
        peer.send(invite, stack.port)
        assert (await peer.recv()).status == 100
        stx, msg, _ = await kit.get(rec.requests)
        peer.send(invite, stack.port)
        assert (await peer.recv()).status == 100  # last provisional again
        stx.respond(kit.response_for(msg, 180, "Ringing"))
        assert (await peer.recv()).status == 180
        peer.send(invite, stack.port)
        assert (await peer.recv()).status == 180
        assert await kit.empty_after(rec.requests, 0.2)  # the app saw the INVITE once
    finally:
        peer.close()
        stack.close()


async def test_cancel_of_pending_invite(kit):
    rec = kit.Recorder()
    stack = await start_stack(rec)
    peer = await kit.UdpPeer().start()
    try:
        peer.send(kit.request("INVITE", stack.port, from_port=peer.port), stack.port)
        assert (await peer.recv()).status == 100
        stx, _, _ = await kit.get(rec.requests)
        peer.send(kit.request("CANCEL", stack.port, from_port=peer.port), stack.port)
        invite_stx, cancel, src = await kit.get(rec.cancels)
        assert invite_stx is stx
        assert cancel.method == "CANCEL" and src.port == peer.port
        got = {}
        for _ in range(2):
            m = await peer.recv()
            got[m.cseq.method] = m
        assert got["CANCEL"].status == 200
        assert got["INVITE"].status == 487
        assert got["CANCEL"].to_tag == got["INVITE"].to_tag == "uas-tag"
        peer.send(kit.request("ACK", stack.port, to_tag="uas-tag", from_port=peer.port), stack.port)
        assert await kit.empty_after(rec.acks, 0.3)
        assert rec.requests.empty()  # the CANCEL is not a new request
    finally:
        peer.close()
        stack.close()


async def test_cancel_without_invite_gets_481(kit):
    rec = kit.Recorder()
    stack = await start_stack(rec)
    peer = await kit.UdpPeer().start()
    try:
        peer.send(kit.request("CANCEL", stack.port, branch="z9hG4bK-nothing", from_port=peer.port), stack.port)
        invite_stx, _, _ = await kit.get(rec.cancels)
        assert invite_stx is None
        resp = await peer.recv()
        assert resp.status == 481 and resp.cseq.method == "CANCEL"
    finally:
        peer.close()
        stack.close()


async def test_non_invite_retransmission_gets_last_response(kit):
    rec = kit.Recorder(answer=lambda stx, msg, src: stx.respond(kit.response_for(msg, 200, "OK")))
    stack = await start_stack(rec)
    peer = await kit.UdpPeer().start()
    try:
        options = kit.request("OPTIONS", stack.port, branch="z9hG4bK-opt", from_port=peer.port)
        peer.send(options, stack.port)
        first = await peer.recv()
        assert first.status == 200 and first.cseq.method == "OPTIONS"
        await kit.get(rec.requests)
        peer.send(options, stack.port)
        again = await peer.recv()
        assert again.status == 200 and str(again) == str(first)
        assert await kit.empty_after(rec.requests, 0.2)
    finally:
        peer.close()
        stack.close()


async def test_stray_ack_passed_up_once(kit):
    rec = kit.Recorder()
    stack = await start_stack(rec)
    peer = await kit.UdpPeer().start()
    try:
        ack = kit.request("ACK", stack.port, branch="z9hG4bK-stray", to_tag="x1", from_port=peer.port)
        peer.send(ack, stack.port)
        msg, _ = await kit.get(rec.acks)
        assert msg.method == "ACK"
        peer.send(ack, stack.port)
        assert await kit.empty_after(rec.acks, 0.3)
    finally:
        peer.close()
        stack.close()


async def test_garbage_does_not_break_the_next_call(kit, caplog):
    rec = kit.Recorder(answer=lambda stx, msg, src: stx.respond(kit.response_for(msg, 200, "OK")))
    stack = await start_stack(rec)
    peer = await kit.UdpPeer().start()
    try:
        with caplog.at_level(logging.WARNING, logger="drachtio_srf.server.sipstack"):
            peer.send(b"\x00\x01 this is not SIP at all\r\n\r\n", stack.port)
            peer.send(b"\r\n\r\n", stack.port)  # keep-alive: ignored silently
            # a request whose start line is broken but whose headers can be read: answered 400
            bad = kit.request("OPTIONS", stack.port, branch="z9hG4bK-bad", from_port=peer.port)
            bad = bad.replace(b"OPTIONS sip:", b"OPTIONS <sip:", 1)  # (runs of spaces are accepted, as sofia-sip)
            peer.send(bad, stack.port)
            resp = await peer.recv()
            assert resp.status == 400 and resp.call_id == "call-1@test"
            # CSeq method not matching the request method: 400 too
            mismatch = kit.request("INFO", stack.port, branch="z9hG4bK-mm", from_port=peer.port)
            mismatch = mismatch.replace(b"CSeq: 1 INFO", b"CSeq: 1 BYE")
            peer.send(mismatch, stack.port)
            resp = await peer.recv()
            assert resp.status == 400 and "CSeq" in (resp.get("warning") or "")
            # and the next call goes through as usual
            peer.send(kit.request("OPTIONS", stack.port, branch="z9hG4bK-good", from_port=peer.port),
                      stack.port)
            ok = await peer.recv()
            assert ok.status == 200
        assert rec.requests.qsize() == 1
        warnings = [r.getMessage() for r in caplog.records if r.levelno == logging.WARNING]
        assert any("malformed SIP message" in w for w in warnings)
        assert any("CSeq method" in w for w in warnings)
    finally:
        peer.close()
        stack.close()


async def test_received_added_when_via_host_differs(kit):
    rec = kit.Recorder()
    stack = await start_stack(rec)
    peer = await kit.UdpPeer().start()
    try:
        data = kit.request("OPTIONS", stack.port, from_port=peer.port)
        data = data.replace(b"Via: SIP/2.0/UDP 127.0.0.1:", b"Via: SIP/2.0/UDP 10.9.9.9:", 1)
        data = data.replace(b";branch=z9hG4bK-test-1", b";rport;branch=z9hG4bK-test-1", 1)
        peer.send(data, stack.port)
        _, msg, _ = await kit.get(rec.requests)
        top = msg.get_parsed_header("via")[0]
        assert top.host == "10.9.9.9"
        assert top.params["rport"] == str(peer.port)
        assert top.params["received"] == "127.0.0.1"
        assert top.params["branch"] == "z9hG4bK-test-1"
    finally:
        peer.close()
        stack.close()


async def test_relayed_2xx_sent_once_and_not_waited_on(kit):
    rec = kit.Recorder(answer=lambda stx, msg, src: stx.respond(kit.response_for(msg, 200, "OK"),
                                                                relayed=True))
    stack = await start_stack(rec, t1=0.02)
    peer = await kit.UdpPeer().start()
    try:
        peer.send(kit.request("INVITE", stack.port, from_port=peer.port), stack.port)
        got = await peer.nothing_for(0.5)  # 25*T1: a retransmitting stack would have sent several
        assert [m.status for m in got] == [100, 200]
        peer.send(kit.request("ACK", stack.port, branch="z9hG4bK-ack", to_tag="uas-tag", from_port=peer.port),
                  stack.port)
        ack, _ = await kit.get(rec.acks)
        assert ack.method == "ACK"
        assert await kit.empty_after(rec.ack_timeouts, 64 * 0.02 + 0.3)
    finally:
        peer.close()
        stack.close()


async def test_handler_failure_answers_500_and_stack_keeps_going(kit, caplog):
    calls = []

    def answer(stx, msg, src):
        calls.append(msg.call_id)
        if msg.call_id == "boom":
            raise RuntimeError("app bug")
        stx.respond(kit.response_for(msg, 200, "OK"))

    stack = await start_stack(kit.Recorder(answer=answer))
    peer = await kit.UdpPeer().start()
    try:
        peer.send(kit.request("OPTIONS", stack.port, call_id="boom", from_port=peer.port), stack.port)
        resp = await peer.recv()
        assert resp.status == 500 and resp.call_id == "boom"
        assert "app bug" in caplog.text
        peer.send(kit.request("OPTIONS", stack.port, branch="z9hG4bK-2", call_id="fine", from_port=peer.port),
                  stack.port)
        resp = await peer.recv()
        assert resp.status == 200 and resp.call_id == "fine"
        assert calls == ["boom", "fine"]
    finally:
        peer.close()
        stack.close()
