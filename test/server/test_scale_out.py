"""New requests for a verb are spread round-robin over every app connection that routed it, as
drachtio-server does (so N app processes on one server share the load)."""
from __future__ import annotations

import queue

from drachtio_ctl import ControlClient, response_for
from udp_peer import UdpSipPeer

from drachtio_srf import wire


def options(peer: UdpSipPeer, n: int) -> str:
    return (f"OPTIONS sip:service@127.0.0.1:{peer.server_port} SIP/2.0\n"
            f"Via: SIP/2.0/UDP 127.0.0.1:{peer.port};branch=z9hG4bK-rr-{n}\n"
            f"From: <sip:peer@127.0.0.1:{peer.port}>;tag=rr-{n}\n"
            f"To: <sip:service@127.0.0.1>\nCall-ID: rr-{n}@test\nCSeq: 1 OPTIONS\nMax-Forwards: 70\n")


def test_two_apps_share_new_requests_in_turn(server):
    apps = [ControlClient(server.admin_port), ControlClient(server.admin_port)]
    peer = UdpSipPeer(server.sip_port)
    try:
        for a in apps:
            a.authenticate()
            assert a.route("options").field(3) == "OK"
        got: queue.Queue = queue.Queue()
        for n in range(6):
            peer.send(options(peer, n))
            # whichever app got it answers, so every request is accounted for in order
            for i, a in enumerate(apps):
                try:
                    f = a.sip_method("OPTIONS", timeout=0.5 if i == 0 else 5)
                except TimeoutError:
                    continue
                a.respond(f.field(8), response_for(f.sip, 200, "OK"))
                got.put(i)
                break
            assert peer.recv(lambda m: m.status == 200).call_id == f"rr-{n}@test"
        order = [got.get_nowait() for _ in range(6)]
        assert order.count(0) == 3 and order.count(1) == 3
        assert all(order[i] != order[i + 1] for i in range(5)), order

        # one app stops taking OPTIONS: the other gets everything
        assert apps[0].reply_to(apps[0].command(wire.remove_route, "options")).field(3) == "OK"
        for n in range(6, 9):
            peer.send(options(peer, n))
            f = apps[1].sip_method("OPTIONS")
            apps[1].respond(f.field(8), response_for(f.sip, 200, "OK"))
            assert peer.recv(lambda m: m.status == 200).call_id == f"rr-{n}@test"
    finally:
        for a in apps:
            a.close()
        peer.close()
