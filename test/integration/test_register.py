"""Incoming REGISTER: req.registration as drachtio-mw-registration-parser computes it."""
from __future__ import annotations

import queue

from helpers import LOOPBACK
from itest_support import WAIT, get, invoke


def test_registration_of_register_refresh_and_unregister(srf, server, sipp, style):
    """Four REGISTERs from sipp: Expires header, Contact expires param (wins over the header),
    Expires: 0 and Contact: * - each seen with its registration summary and answered 200."""
    seen: queue.Queue = queue.Queue()
    sent: list = []

    def on_register(req, res):
        seen.put((req.get("CSeq"), req.registration))
        contact = req.get("Contact")
        sent.append(invoke(style, res.send, 200, opts={"headers": {"Contact": contact}}))

    srf.register(on_register)
    far = sipp("register-refresh-unregister.xml", server)
    got = [get(seen, f"REGISTER #{i + 1}") for i in range(4)]
    far.expect_success()
    for outcome in sent:
        assert outcome.result(WAIT).status == 200

    aor = f"sip:alice@{LOOPBACK}"
    (cseq1, first), (cseq2, refresh), (cseq3, unreg), (cseq4, unreg_all) = got
    assert (cseq1, cseq2, cseq3, cseq4) == ("1 REGISTER", "2 REGISTER", "3 REGISTER", "4 REGISTER")

    assert first["type"] == "register" and first["expires"] == 3600
    assert first["aor"] == aor
    assert [c["uri"] for c in first["contact"]] == [f"sip:alice@{LOOPBACK}:{far.port}"]

    assert refresh["type"] == "register" and refresh["expires"] == 1800
    assert refresh["contact"][0]["params"]["expires"] == "1800"
    assert refresh["aor"] == aor

    assert unreg["type"] == "unregister" and unreg["expires"] == 0
    assert unreg["contact"][0]["uri"] == f"sip:alice@{LOOPBACK}:{far.port}"

    assert unreg_all["type"] == "unregister" and unreg_all["expires"] == 0
    assert unreg_all["contact"] == "*"


def test_registration_is_none_for_other_methods(srf, server, sipp):
    """Only REGISTER requests carry a registration summary."""
    seen: queue.Queue = queue.Queue()

    def on_options(req, res):
        seen.put(req.registration)
        res.send(404)

    srf.options(on_options)
    far = sipp("uac-options-expect-404.xml", server)
    assert get(seen, "the OPTIONS") is None
    far.expect_success()
