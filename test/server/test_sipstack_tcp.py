"""SipStack over TCP: Content-Length framing, partial and coalesced reads, connection reuse."""
from __future__ import annotations

import asyncio

from drachtio_srf.server.sip_transport import StreamFramer
from drachtio_srf.server.sipstack import SipStack, Target
from drachtio_srf.sip import SipMessage

MSG_A = (b"OPTIONS sip:a@x SIP/2.0\r\nVia: SIP/2.0/TCP h;branch=z9hG4bK1\r\nContent-Length: 4\r\n\r\nbody")
MSG_B = b"OPTIONS sip:b@x SIP/2.0\r\nl: 0\r\n\r\n"


def test_framer_reassembles_split_and_coalesced_messages():
    framer = StreamFramer()
    stream = MSG_A + b"\r\n" + MSG_B + MSG_A
    out = []
    for i in range(0, len(stream), 7):  # 7-byte reads
        msgs, err = framer.feed(stream[i:i + 7])
        assert err is None
        out += msgs
    assert out == [MSG_A, MSG_B, MSG_A]
    msgs, err = StreamFramer().feed(stream)  # all in one read
    assert msgs == [MSG_A, MSG_B, MSG_A] and err is None


def test_framer_counts_keepalive_pings_and_rejects_bad_content_length():
    framer = StreamFramer()
    msgs, err = framer.feed(b"\r\n\r\n")
    assert msgs == [] and err is None and framer.pings == 1
    msgs, err = StreamFramer().feed(MSG_B + b"OPTIONS sip:c SIP/2.0\r\nContent-Length: -3\r\n\r\n")
    assert msgs == [MSG_B]
    assert err is not None and "Content-Length" in err


async def start_stack(handler) -> SipStack:
    stack = SipStack("127.0.0.1", 0, handler=handler, t1=0.05, t2=0.2, t4=0.2)
    await stack.start()
    return stack


async def test_tcp_partial_and_coalesced_requests_answered_on_the_same_connection(kit):
    rec = kit.Recorder(answer=lambda stx, msg, src: stx.respond(kit.response_for(msg, 200, "OK")))
    stack = await start_stack(rec)
    peer = await kit.TcpPeer.connect(stack.port)
    try:
        invite = kit.request("INVITE", stack.port, transport="TCP", from_port=peer.port,
                             body="v=0\no=- 1 1 IN IP4 127.0.0.1\ns=-\n")
        for i in range(0, len(invite), 50):  # dribbled in small writes
            await peer.send(invite[i:i + 50])
        assert (await peer.recv()).status == 100
        ok = await peer.recv()
        assert ok.status == 200 and ok.cseq.method == "INVITE"
        _stx, msg, src = await kit.get(rec.requests)
        assert src.transport == "tcp" and src.port == peer.port
        assert msg.body.startswith("v=0")
        # two requests in one write
        two = (kit.request("OPTIONS", stack.port, branch="z9hG4bK-o1", transport="TCP", from_port=peer.port)
               + b"\r\n\r\n"
               + kit.request("INFO", stack.port, branch="z9hG4bK-o2", transport="TCP", from_port=peer.port))
        await peer.send(two)
        answers = {(await peer.recv()).cseq.method, (await peer.recv()).cseq.method}
        assert answers == {"OPTIONS", "INFO"}
        # the 200 to the INVITE is not retransmitted over TCP; the ACK is passed up
        await peer.send(kit.request("ACK", stack.port, branch="z9hG4bK-ack", to_tag="uas-tag",
                                    transport="TCP", from_port=peer.port))
        ack, _ = await kit.get(rec.acks)
        assert ack.method == "ACK"
    finally:
        peer.close()
        stack.close()


async def test_bad_content_length_closes_only_that_connection(kit, caplog):
    rec = kit.Recorder(answer=lambda stx, msg, src: stx.respond(kit.response_for(msg, 200, "OK")))
    stack = await start_stack(rec)
    bad = await kit.TcpPeer.connect(stack.port)
    good = await kit.TcpPeer.connect(stack.port)
    try:
        await bad.send(b"OPTIONS sip:x SIP/2.0\r\nContent-Length: lots\r\n\r\n")
        assert await bad.closed_by_peer()
        assert "malformed stream" in caplog.text
        await good.send(kit.request("OPTIONS", stack.port, transport="TCP", from_port=good.port))
        assert (await good.recv()).status == 200
    finally:
        bad.close()
        good.close()
        stack.close()


async def test_request_to_a_peer_reuses_its_inbound_connection(kit):
    rec = kit.Recorder(answer=lambda stx, msg, src: stx.respond(kit.response_for(msg, 200, "OK")))
    stack = await start_stack(rec)
    peer = await kit.TcpPeer.connect(stack.port)
    try:
        await peer.send(kit.request("OPTIONS", stack.port, transport="TCP", from_port=peer.port))
        assert (await peer.recv()).status == 200
        responses: asyncio.Queue = asyncio.Queue()
        req = SipMessage(f"BYE sip:peer@127.0.0.1:{peer.port} SIP/2.0\r\nFrom: <sip:a@b>;tag=1\r\n"
                         f"To: <sip:c@d>;tag=2\r\nCall-ID: bye-1\r\nCSeq: 5 BYE\r\nContent-Length: 0\r\n\r\n")
        stack.send_request(req, Target("tcp", "127.0.0.1", peer.port),
                           lambda msg, ctx: responses.put_nowait(msg))
        bye = await peer.recv()  # arrives on the connection the peer opened
        assert bye.method == "BYE"
        assert bye.get_all("via")[0].startswith(f"SIP/2.0/TCP 127.0.0.1:{stack.port};branch=z9hG4bK")
        lines = [f"Via: {v}" for v in bye.get_all("via")]
        await peer.send(("SIP/2.0 200 OK\r\n" + "\r\n".join(lines) + "\r\nFrom: <sip:a@b>;tag=1\r\n"
                         "To: <sip:c@d>;tag=2\r\nCall-ID: bye-1\r\nCSeq: 5 BYE\r\nContent-Length: 0\r\n\r\n")
                        .encode())
        resp = await asyncio.wait_for(responses.get(), 3)
        assert resp.status == 200
    finally:
        peer.close()
        stack.close()


async def test_outbound_tcp_connection_shared_and_no_retransmission(kit):
    """Two requests to one TCP target share one connection; over TCP nothing is retransmitted."""
    accepted: asyncio.Queue = asyncio.Queue()
    received: asyncio.Queue = asyncio.Queue()

    async def serve(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        accepted.put_nowait(writer)
        try:
            while True:
                head = await reader.readuntil(b"\r\n\r\n")
                received.put_nowait(SipMessage(head))
        except (asyncio.IncompleteReadError, ConnectionError):
            pass

    server = await asyncio.start_server(serve, "127.0.0.1", 0)
    port = server.sockets[0].getsockname()[1]
    stack = SipStack("127.0.0.1", 0, handler=kit.Recorder(), t1=0.02, t2=0.16, t4=0.16)
    await stack.start()
    try:
        results: asyncio.Queue = asyncio.Queue()
        target = Target("TCP", "127.0.0.1", port)
        for n in (1, 2):
            req = SipMessage(f"OPTIONS sip:x@127.0.0.1:{port} SIP/2.0\r\nFrom: <sip:a@b>;tag=1\r\n"
                             f"To: <sip:x@y>\r\nCall-ID: opt-{n}\r\nCSeq: 1 OPTIONS\r\n"
                             f"Content-Length: 0\r\n\r\n")
            stack.send_request(req, target, lambda msg, ctx: results.put_nowait(msg))
        statuses = [(await asyncio.wait_for(results.get(), 5)).status for _ in range(2)]
        assert statuses == [408, 408]  # timer F, nobody answered
        assert accepted.qsize() == 1
        assert received.qsize() == 2  # each request sent once: no timer E over TCP
        assert {received.get_nowait().call_id for _ in range(2)} == {"opt-1", "opt-2"}
    finally:
        stack.close()
        server.close()
