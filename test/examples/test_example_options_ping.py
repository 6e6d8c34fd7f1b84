"""examples/options_ping.py (the README's OPTIONS ping) against a Python SIP peer."""
from __future__ import annotations

import queue

from examples import options_ping


def test_pings_with_subject_and_sees_each_status(srf, sip_peer):
    sip_peer.set_reply("OPTIONS", 200, headers={"Allow": "INVITE"})
    statuses: queue.Queue = queue.Queue()
    pinger = options_ping.Pinger(srf, sip_peer.uri, interval=0.05, on_status=statuses.put).start()
    try:
        first = sip_peer.wait_for("OPTIONS")
        second = sip_peer.wait_for("OPTIONS")            # sent again after the interval
    finally:
        pinger.stop()
    assert first.get("subject") == "OPTIONS Ping" and second.get("subject") == "OPTIONS Ping"
    assert first.call_id != second.call_id
    assert statuses.get(timeout=5) == 200 and statuses.get(timeout=5) == 200
