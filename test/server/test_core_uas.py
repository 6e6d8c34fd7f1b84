"""Requests from the network delivered to an app over the control protocol (sipp as the caller).

Frames are compared field by field with what the real drachtio-server sent in the recordings
(test/data/wire-transcripts/uas-basic.txt etc.), apart from ids, times and ports.
"""
from __future__ import annotations

import re
import time

import pytest
from drachtio_ctl import SDP, ControlClient, header, response_for
from helpers import Sipp

from drachtio_srf import wire
from drachtio_srf.server import EmbeddedServer

UUID = re.compile(r"^[0-9a-f]{8}-[0-9a-f]{4}-4[0-9a-f]{3}-[89ab][0-9a-f]{3}-[0-9a-f]{12}$")
TIME = re.compile(r"^\d\d:\d\d:\d\d\.\d{6}$")


@pytest.fixture
def app(app):
    """The conftest's authenticated app, routed for INVITE."""
    assert app.route("invite").field(3) == "OK"
    return app


def run_sipp(server, scenario="uac", **kw) -> Sipp:
    return Sipp(server.sip_port, scenario=scenario, **kw)


def test_invite_answered_ack_and_bye_from_caller(server, app):
    sipp = run_sipp(server, "uac")
    try:
        inv = app.sip_method("INVITE")
        # case a: 13 fields, network, udp, caller address, txnId, no dialog, received-on, trailing ''
        f = inv.fields
        assert len(f) == 13
        assert f[1:3] == ["sip", "network"]
        assert int(f[3]) > 0
        assert f[4:6] == ["udp", "127.0.0.1"]
        assert int(f[6]) == sipp.port
        assert TIME.match(f[7])
        assert UUID.match(f[8])
        assert f[9] == ""
        assert f[10:13] == ["127.0.0.1", str(server.sip_port), ""]
        assert header(inv.sip, "via").endswith(f";rport={sipp.port}")
        txn = f[8]
        call_id, from_ = header(inv.sip, "call-id"), header(inv.sip, "from")
        dialog_id = f"{call_id};from-tag={re.search(r'tag=([^;]+)', from_).group(1)}"

        echo = app.respond(txn, response_for(inv.sip, 200, "OK", body=SDP, extra=["X-App: node-ref"]))
        e = echo.fields
        assert len(e) == 15
        assert e[3:5] == ["OK", "application"] and int(e[5]) > 0
        assert e[6:9] == ["udp", "127.0.0.1", str(sipp.port)]
        assert TIME.match(e[9])
        assert e[10:15] == [txn, dialog_id, "", "Msg sent:", ""]
        sent = echo.sip
        assert sent.startswith("SIP/2.0 200 OK\r\n")
        assert header(sent, "via") == header(inv.sip, "via")
        assert re.search(r";tag=\w+", header(sent, "to"))
        assert header(sent, "contact") == f"<sip:127.0.0.1:{server.sip_port}>"
        assert header(sent, "content-type") == "application/sdp"
        assert header(sent, "x-app") == "node-ref"
        assert header(sent, "cseq") == "1 INVITE"
        assert sent.endswith(SDP)

        ack = app.sip_method("ACK")
        a = ack.fields
        assert len(a) == 11
        assert a[2] == "network" and a[4] == ""          # empty protocol, as recorded
        assert a[8] == txn and a[9] == dialog_id and a[10] == ""

        bye = app.sip_method("BYE")
        b = bye.fields
        assert len(b) == 11 and b[4] == "udp"
        assert UUID.match(b[8]) and b[8] != txn and b[9] == dialog_id
        echo = app.respond(b[8], response_for(bye.sip, 200, "OK"))
        assert echo.fields[3] == "OK"
        assert echo.fields[6] == ""                       # protocol empty in dialog, as recorded
        assert echo.fields[10:15] == [b[8], "", "", "Msg sent:", ""]   # dialog already gone
        assert sipp.wait() == 0
    finally:
        sipp.stop()


def test_invite_rejected_486(server, app):
    sipp = run_sipp(server, "server-uac-486.xml")
    try:
        inv = app.sip_method("INVITE")
        txn = inv.fields[8]
        echo = app.respond(txn, response_for(inv.sip, 486, "Busy Here"))
        call_id = header(inv.sip, "call-id")
        assert echo.fields[10].startswith(txn)
        assert echo.fields[11].startswith(f"{call_id};from-tag=")   # dialog id even on failure
        assert echo.sip.startswith("SIP/2.0 486 Busy Here\r\n")
        assert header(echo.sip, "contact") is None
        assert sipp.wait() == 0
        # the txnId is dead after the final response
        again = app.respond(txn, response_for(inv.sip, 200, "OK"))
        assert again.fields[3:] == ["NOK", "Response not sent due to unknown transaction"]
    finally:
        sipp.stop()


def test_cancel_from_caller_before_answer(server, app):
    sipp = run_sipp(server, "server-uac-cancel.xml")
    try:
        inv = app.sip_method("INVITE")
        txn = inv.fields[8]
        cancel = app.sip_method("CANCEL")
        c = cancel.fields
        assert len(c) == 11
        assert c[2] == "network" and c[8] == txn and c[9] == ""   # case b
        assert sipp.wait() == 0                                    # got 200 to CANCEL, then 487
        late = app.respond(txn, response_for(inv.sip, 200, "OK", body=SDP))
        assert late.fields[3:] == ["NOK", "Response not sent due to unknown transaction"]
    finally:
        sipp.stop()


def test_cancel_after_provisional_carries_dialog_id(server, app):
    sipp = run_sipp(server, "server-uac-cancel-180.xml")
    try:
        inv = app.sip_method("INVITE")
        txn = inv.fields[8]
        echo = app.respond(txn, response_for(inv.sip, 180, "Ringing"))
        dialog_id = echo.fields[11]
        assert dialog_id
        cancel = app.sip_method("CANCEL")
        assert cancel.fields[8] == txn and cancel.fields[9] == dialog_id   # case c
        assert sipp.wait() == 0
    finally:
        sipp.stop()


def test_no_route_gives_503(server, app):
    sipp = run_sipp(server, "server-uac-options-503.xml")
    try:
        assert sipp.wait() == 0
    finally:
        sipp.stop()


def test_round_robin_between_connections(server, app):
    other = ControlClient(server.admin_port)
    try:
        other.authenticate()
        other.route("invite")
        seen = []
        for _ in range(2):
            sipp = run_sipp(server, "server-uac-486.xml")
            try:
                got = None      # the INVITE goes to one of the two: watch both until it shows up
                deadline = time.monotonic() + 10
                while got is None and time.monotonic() < deadline:
                    for c in (app, other):
                        try:
                            got = (c, c.sip_method("INVITE", timeout=0.05))
                            break
                        except TimeoutError:
                            continue
                assert got is not None, "the INVITE reached neither connection"
                c, inv = got
                seen.append(c)
                c.respond(inv.fields[8], response_for(inv.sip, 486, "Busy Here"))
                assert sipp.wait() == 0
            finally:
                sipp.stop()
        assert seen[0] is not seen[1]
    finally:
        other.close()


def test_far_end_reinvite_info_bye_in_dialog(server, app):
    sipp = run_sipp(server, "uac-reinvite-info-bye.xml")
    try:
        inv = app.sip_method("INVITE")
        echo = app.respond(inv.fields[8], response_for(inv.sip, 200, "OK", body=SDP))
        dialog_id = echo.fields[11]
        to_tagged = header(echo.sip, "to")
        app.sip_method("ACK")
        reinv = app.sip_method("INVITE")
        assert reinv.fields[9] == dialog_id and len(reinv.fields) == 11
        echo = app.respond(reinv.fields[8], response_for(reinv.sip, 200, "OK", body=SDP))
        assert echo.fields[11] == dialog_id and echo.fields[6] == "udp"
        assert header(echo.sip, "contact") == f"<sip:127.0.0.1:{server.sip_port}>"
        assert header(echo.sip, "to") == to_tagged
        ack2 = app.sip_method("ACK")
        assert ack2.fields[8] not in (inv.fields[8], reinv.fields[8])
        info = app.sip_method("INFO")
        echo = app.respond(info.fields[8], response_for(info.sip, 200, "OK"))
        assert echo.fields[10:12] == [info.fields[8], dialog_id] and echo.fields[6] == ""
        bye = app.sip_method("BYE")
        app.respond(bye.fields[8], response_for(bye.sip, 200, "OK"))
        assert sipp.wait() == 0
    finally:
        sipp.stop()


def test_dialog_of_closed_connection_gets_481(server):
    c = ControlClient(server.admin_port)
    c.authenticate()
    c.route("invite")
    sipp = run_sipp(server, "uac", extra=["-d", "1000"])
    try:
        inv = c.sip_method("INVITE")
        c.respond(inv.fields[8], response_for(inv.sip, 200, "OK", body=SDP))
        c.sip_method("ACK")
        c.close()
        # sipp's BYE now gets 481: its built-in scenario fails on that
        assert sipp.wait() != 0
    finally:
        sipp.stop()


def test_ack_timeout_sends_bye_and_unsolicited_frame():
    server = EmbeddedServer(admin_port=0, sip_port=0, secret="cymru", t1=0.02).start()
    app = ControlClient(server.admin_port)
    sipp = None
    try:
        app.authenticate()
        app.route("invite")     # before the caller starts: an INVITE nobody routes is rejected
        sipp = Sipp(server.sip_port, scenario="server-uac-no-ack.xml")
        inv = app.sip_method("INVITE")
        echo = app.respond(inv.fields[8], response_for(inv.sip, 200, "OK", body=SDP))
        dialog_id = echo.fields[11]
        bye = app.sip(lambda f: f.field(2) == "application", timeout=15)
        b = bye.fields
        assert len(b) == 11
        assert b[2] == "application" and b[8] == "unsolicited" and b[9] == dialog_id
        assert b[5:7] == ["127.0.0.1", str(server.sip_port)]
        assert bye.sip.startswith("BYE sip:sipp@127.0.0.1")
        assert header(bye.sip, "reason") == 'SIP ;cause=200 ;text="ACK timeout"'
        assert sipp.wait() == 0
        # the dialog is gone
        r = app.request("INFO sip:placeholder SIP/2.0\r\nContent-Length: 0\r\n\r\n", dialog_id=dialog_id)
        assert r.fields[3:] == ["NOK", "Server error: unable to find dialog for dialog id provided"]
    finally:
        if sipp is not None:
            sipp.stop()
        app.close()
        server.stop()


def test_remove_route_stops_delivery(server):
    c = ControlClient(server.admin_port)
    try:
        c.authenticate()
        c.route("options")
        c.route("invite")
        assert c.reply_to(c.command(wire.remove_route, "options")).fields[3:] == ["OK"]
        sipp = run_sipp(server, "server-uac-options-503.xml")
        try:
            assert sipp.wait() == 0          # nobody routes OPTIONS any more: 503
        finally:
            sipp.stop()
        sipp = run_sipp(server, "server-uac-486.xml")
        try:                                 # the other route is kept
            inv = c.sip_method("INVITE")
            c.respond(inv.fields[8], response_for(inv.sip, 486, "Busy Here"))
            assert sipp.wait() == 0
        finally:
            sipp.stop()
    finally:
        c.close()


def test_cdr_events_for_an_answered_call():
    server = EmbeddedServer(admin_port=0, sip_port=0, secret="cymru", cdrs=True).start()
    app = ControlClient(server.admin_port)
    sipp = None
    try:
        app.authenticate()
        for verb in ("invite", "cdr:attempt", "cdr:start", "cdr:stop"):
            app.route(verb)
        sipp = Sipp(server.sip_port, scenario="uac")
        inv = app.sip_method("INVITE")
        attempt = app.next(lambda f: f.type == "cdr:attempt")
        assert attempt.fields[2] == "network" and TIME.match(attempt.fields[3])
        assert attempt.sip.startswith("INVITE ")
        app.respond(inv.fields[8], response_for(inv.sip, 200, "OK", body=SDP))
        start = app.next(lambda f: f.type == "cdr:start")
        assert start.fields[2] == "application" and start.fields[4] == "uas"
        assert start.sip.startswith("SIP/2.0 200 OK")
        bye = app.sip_method("BYE")
        stop = app.next(lambda f: f.type == "cdr:stop")
        assert stop.fields[2] == "network" and stop.fields[4] == "normal-release"
        assert stop.sip.startswith("BYE ")
        app.respond(bye.fields[8], response_for(bye.sip, 200, "OK"))
        assert sipp.wait() == 0
    finally:
        if sipp is not None:
            sipp.stop()
        app.close()
        server.stop()
