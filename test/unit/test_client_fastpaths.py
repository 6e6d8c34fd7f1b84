"""The client's shortcuts for the common call give what the general code gives.

(issue #4: a response built without a SipMessage, the lazily parsed local Contact URI, the
lazily built SipMessage of an outgoing Response, the dispatcher running a key's next task on the
same worker.)
"""
from __future__ import annotations

import queue
import threading

import pytest

from drachtio_srf.agent import _FROM_REQUEST, build_message, response_text
from drachtio_srf.dispatch import Dispatcher
from drachtio_srf.models import SipEndpointInfo
from drachtio_srf.request import Request
from drachtio_srf.response import Response
from drachtio_srf.sip import SipMessage

INVITE = ("INVITE sip:a@b SIP/2.0\r\nVia: SIP/2.0/UDP x;branch=z9hG4bK1\r\nf: <sip:a@b>;tag=1\r\n"
          "TO:  <sip:c@d>\r\ni: abc@def\r\ncseq: 1 INVITE\r\nContent-Length: 0\r\n\r\n")


@pytest.mark.parametrize("text", [INVITE, INVITE.replace("cseq: 1 INVITE\r\n", "")])
@pytest.mark.parametrize("body", [None, "", "v=0\r\n", "é€ body\r\n"])
@pytest.mark.parametrize("status,reason", [(200, "OK"), (486, "Busy Here"), (183, ""), (299, None)])
def test_response_text_matches_build_message(text, body, status, reason):
    req = Request(SipMessage(text))
    base = [(n, v) for n in _FROM_REQUEST if (v := req.get(n)) is not None]
    expected = str(build_message({"status": status, "reason": reason}, base, None, body))
    assert response_text(status, reason, req, body) == expected


def test_outgoing_response_message_is_built_on_demand_with_request_headers():
    req = Request(SipMessage(INVITE))
    res = Response()
    res.req = req
    assert res.status is None and res.reason is None
    assert res.get("Call-ID") == "abc@def" and res.get("CSeq") == "1 INVITE"
    assert res.has("From") and res.has("To") and not res.has("Via")


def test_endpoint_info_lazy_uri_reads_like_a_plain_one():
    lazy = SipEndpointInfo._lazy(lambda: "sip:x@y", "v=0", "<sip:x@y>")
    plain = SipEndpointInfo("sip:x@y", "v=0", "<sip:x@y>")
    assert lazy == plain and repr(lazy) == repr(plain)
    assert lazy.to_dict() == {"uri": "sip:x@y", "sdp": "v=0", "contact": "<sip:x@y>"}
    lazy.uri = "sip:z@w"
    assert lazy.uri == "sip:z@w" and lazy != plain


def test_dispatcher_runs_a_keys_backlog_in_order_and_other_keys_meanwhile():
    d = Dispatcher(max_workers=4)
    gate = threading.Event()
    seen: queue.Queue = queue.Queue()
    try:
        d.submit("k", gate.wait, 5)
        for i in range(5):
            d.submit("k", seen.put, ("k", i))
        d.submit("other", seen.put, ("other", 0))
        assert seen.get(timeout=5) == ("other", 0)     # not stuck behind the busy key
        assert not d.idle("k")
        gate.set()
        assert [seen.get(timeout=5) for _ in range(5)] == [("k", i) for i in range(5)]
    finally:
        d.shutdown(wait=True, timeout=5)
    assert d.idle("k")
