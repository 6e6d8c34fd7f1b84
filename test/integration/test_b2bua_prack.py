"""create_b2bua relaying a reliable 183 (100rel/PRACK on both legs).

A offers 100rel; the app copies Supported to B and Require back to A, so B's reliable 183 is
PRACKed on the B leg by the library and relayed to A as a reliable 183 that A PRACKs; A is
answered only after that, with B's SDP.
"""
from __future__ import annotations

import queue

from itest_support import get
from test_b2bua import connected_call


def test_reliable_183_relayed_and_pracked_on_both_legs(srf, server, far_end, style):
    b = far_end("b2b-prack-b.xml")        # checks our PRACK's RAck before answering
    provisional: queue.Queue = queue.Queue()
    results, ended = connected_call(
        srf, style, b,
        opts={"proxy_request_headers": ["Supported"], "proxy_response_headers": ["Require"]},
        progress={"cb_provisional": lambda res: provisional.put(res)})
    a = far_end("b2b-prack-a.xml", server.sip_port)   # checks the relayed 183 is reliable

    early = get(provisional, "cb_provisional with B's 183")
    assert early.status == 183 and 1 <= int(early.get("RSeq")) < 2**31 and "100rel" in early.get("Require")
    assert "s=callee-early" in early.body
    result = get(results, "the bridged call")
    assert not isinstance(result, BaseException), f"create_b2bua failed: {result!r}"
    assert "s=callee-b" in result.uas.local.sdp and "s=caller-a" in result.uas.remote.sdp
    assert "s=caller-a" in result.uac.local.sdp and "s=callee-b" in result.uac.remote.sdp
    assert get(ended, "the A leg's destroy") == "uas"
    a.expect_success()      # A got a reliable 183 with B's early SDP, its PRACK was answered 200
    b.expect_success()      # B got a PRACK for RSeq 1, then the ACK and the app's BYE
