"""CDR events for proxied calls (server run with --cdrs), in the order drachtio-server writes them.

For a proxied INVITE the server writes an attempt for the INVITE it received and one for each
INVITE it forwards, a record per final response on each side (roles proxy-uac for what the target
answered, proxy-uas for what went back upstream) and, for a record-routed BYE, a stop when it
arrives and another when it is forwarded.
"""
from __future__ import annotations

import queue
import re
from collections.abc import Iterator

import pytest
from helpers import LOOPBACK, ServerProcess
from itest_support import get
from test_cdr import record_cdrs
from test_proxy import outcome, proxy_on_invite, uri

_TIME = re.compile(r"^\d\d:\d\d:\d\d\.\d{6}$")


@pytest.fixture(scope="module")
def server() -> Iterator[ServerProcess]:
    proc = ServerProcess(extra=["--cdrs"])
    yield proc
    proc.stop()


def next_cdrs(q: queue.Queue, n: int) -> list[tuple]:
    """The next ``n`` CDR events as (kind, source, role-or-reason or None, SIP message)."""
    out = []
    for i in range(n):
        kind, args = get(q, f"CDR event #{i + 1}")
        assert _TIME.match(args[1]), args[1]
        if kind == "attempt":
            out.append((kind, args[0], None, args[2]))
        else:
            out.append((kind, args[0], args[2], args[3]))
    return out


def test_answered_record_routed_call(srf, server, far_end, style):
    """attempt (network, the INVITE received), attempt (application, the INVITE forwarded),
    start (network, proxy-uac, the target's 200), start (application, proxy-uas, the 200 sent
    upstream), then for the caller's BYE: stop (network) and stop (application), normal-release."""
    cdrs = record_cdrs(srf)
    target = far_end("proxy-uas-rr.xml")
    results: queue.Queue = queue.Queue()
    proxy_on_invite(srf, style, results, uri(target.port), {"record_route": True})
    caller = far_end("proxy-uac-rr.xml", server.sip_port)
    assert outcome(results)["final_status"] == 200
    events = next_cdrs(cdrs, 6)
    caller.expect_success()
    target.expect_success()
    call_id = f"{caller.call_id_prefix}-1"
    assert [(k, s, r) for k, s, r, _ in events] == [
        ("attempt", "network", None),
        ("attempt", "application", None),
        ("start", "network", "proxy-uac"),
        ("start", "application", "proxy-uas"),
        ("stop", "network", "normal-release"),
        ("stop", "application", "normal-release"),
    ]
    msgs = [m for *_, m in events]
    assert all(m.get("Call-ID") == call_id for m in msgs)
    received, forwarded = msgs[0], msgs[1]
    assert received.method == forwarded.method == "INVITE"
    assert forwarded.uri == uri(target.port)                      # sent to the target
    vias = ",".join(forwarded.get_all("Via")).split(",")
    assert len(vias) == 2 and f"127.0.0.1:{server.sip_port}" in vias[0]       # our Via on top
    assert f"127.0.0.1:{server.sip_port}" in forwarded.get("Record-Route")
    assert msgs[2].status == msgs[3].status == 200
    assert msgs[4].method == msgs[5].method == "BYE"


def test_rejected_call(srf, server, far_end, style):
    """The only target answers 486: attempt x2, then stop (network, call-rejected, the 486
    received) and stop (application, call-rejected, the 486 sent upstream)."""
    cdrs = record_cdrs(srf)
    busy = far_end("proxy-uas-486.xml")
    results: queue.Queue = queue.Queue()
    proxy_on_invite(srf, style, results, f"{LOOPBACK}:{busy.port}", {})
    caller = far_end("uac-expect-486.xml", server.sip_port)
    assert outcome(results)["final_status"] == 486
    events = next_cdrs(cdrs, 4)
    caller.expect_success()
    busy.expect_success()
    assert [(k, s, r) for k, s, r, _ in events] == [
        ("attempt", "network", None),
        ("attempt", "application", None),
        ("stop", "network", "call-rejected"),
        ("stop", "application", "call-rejected"),
    ]
    assert events[2][3].status == events[3][3].status == 486
