"""The server's fast frame builders give exactly what the wire module builds."""
from __future__ import annotations

import re
import uuid

import pytest

from drachtio_srf import wire
from drachtio_srf.server import frames

SIP = "BYE sip:a@b SIP/2.0\r\nCall-ID: x\r\n\r\n"


@pytest.mark.parametrize("received_on", [None, ("127.0.0.1", 5060)])
@pytest.mark.parametrize("dialog_id", ["", "abc@host;from-tag=123"])
def test_sip_event_matches_wire(received_on, dialog_id):
    kw = {"source": "network", "nbytes": 42, "protocol": "udp", "address": "10.0.0.1", "port": 5062,
              "time": "01:02:03.000004", "txn_id": "t-1", "dialog_id": dialog_id, "received_on": received_on,
              "sip_text": SIP}
    assert frames.sip_event("m-1", **kw) == wire.sip_event("m-1", **kw)


def test_echo_response_matches_wire():
    kw = {"nbytes": 7, "protocol": "", "address": "10.0.0.1", "port": 5062, "time": "01:02:03.000004",
              "txn_id": "t-1", "dialog_id": "d;from-tag=1", "sip_text": SIP}
    assert frames.echo_response("m-1", "re-1", **kw) == wire.echo_response("m-1", "re-1", **kw)


def test_a_field_with_a_bar_is_refused_as_wire_does():
    with pytest.raises(ValueError):
        frames.sip_event("m-1", source="network", nbytes=1, protocol="udp", address="a|b", port=1,
                         time="t", txn_id="x", sip_text=SIP)


def test_ids_are_uuid4_and_time_is_time_of_day():
    ids = {frames.new_id() for _ in range(1000)}
    assert len(ids) == 1000
    for i in list(ids)[:50]:
        assert uuid.UUID(i).version == 4 and str(uuid.UUID(i)) == i
    assert re.fullmatch(r"\d\d:\d\d:\d\d\.\d{6}", frames.stack_time())
