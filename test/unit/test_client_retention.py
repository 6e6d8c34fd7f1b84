"""What a long-lived dialog keeps: its INVITE sheds parsed state but every field stays readable.

A dialog holds its INVITE (Request + SipMessage) and its 200 for its whole life; the library
drops the header lines, index and parse caches of those messages once the dialog exists
(``SipMessage._shrink``) and rebuilds them from the text on the next header access.  These tests
check that a user sees the same message before and after, and that Request/Response objects
that nobody listens to carry no handler table of their own.
"""
from __future__ import annotations

import queue

from client_fake import SDP_A, SDP_B, WAIT, FakeServer, invite

from drachtio_srf import Srf
from drachtio_srf.emitter import Emitter
from drachtio_srf.sip import SipMessage

DLG = "call-1;from-tag=farTag"

COMPACT = ("INVITE sip:app@127.0.0.1 SIP/2.0\r\n"
           "v: SIP/2.0/UDP 10.0.0.1:5060;branch=z9hG4bK1\r\n"
           "f: <sip:far@10.0.0.1>;tag=farTag\r\n"
           "t: <sip:app@127.0.0.1>\r\n"
           "i: call-2\r\n"
           "CSeq: 1 INVITE\r\n"
           "m: <sip:far@10.0.0.1:5060>\r\n"
           "l: 0\r\n\r\n")


def _view(m: SipMessage) -> tuple:
    return (m.method, m.uri, m.status, m.body, m.headers, m.header_lines(), str(m),
            m.get_parsed_header("From").params, m.get_parsed_header("Via")[0].host,
            m.from_tag, m.to_tag, m.get("Call-ID"), m.has("Contact"))


def test_shrunk_message_reads_the_same_and_rebuilds_on_use():
    m = SipMessage(invite())
    before = _view(m)
    assert m._shrink()
    assert m._lines is None and m._index is None and m._parsed is None
    assert m.raw == invite()
    assert _view(m) == before            # every read path rebuilds what it needs
    assert m._lines is not None
    assert str(m) == invite()            # still the received text, unchanged


def test_shrunk_message_can_still_be_changed():
    for change in (lambda m: m.set("X-New", "1"), lambda m: m.replace("To", "<sip:x@y>;tag=1"),
                   lambda m: m.add("Via", "SIP/2.0/UDP 1.2.3.4"), lambda m: m.remove("Contact"),
                   lambda m: m.prepend("Route", "<sip:p;lr>")):
        expected = SipMessage(invite())
        change(expected)
        m = SipMessage(invite())
        m._shrink()
        change(m)
        assert m.header_lines() == expected.header_lines()
        assert str(m) == str(expected)
        assert m.copy().header_lines() == expected.header_lines()


def test_non_canonical_text_is_shrunk_only_while_unchanged():
    m = SipMessage(COMPACT)
    assert m.get("Call-ID") == "call-2"
    assert m._shrink()
    assert m.get("Contact") == "<sip:far@10.0.0.1:5060>" and m.get("To") == "<sip:app@127.0.0.1>"
    assert str(m) == str(SipMessage(COMPACT))     # written in full names, as before

    changed = SipMessage(COMPACT)
    changed.set("X-Mine", "1")
    assert not changed._shrink()                  # the text no longer gives these lines
    assert changed.get("X-Mine") == "1"


def test_emitters_get_a_handler_table_only_when_listened_to():
    a, b = Emitter(), Emitter()
    assert "_events" not in vars(a) and not a.listeners("x") and not a.emit("x")
    got = []
    a.on("x", got.append)
    a.once("y", got.append)
    assert a.emit("x", 1) and a.emit("y", 2) and not a.emit("y", 3)
    assert got == [1, 2] and "_events" not in vars(b)
    a.remove_all_listeners("x")
    assert not a.emit("x", 4) and a.event_names() == {"x"}
    a.remove_all_listeners()
    assert a.event_names() == set() and got == [1, 2]


def test_uas_dialog_keeps_its_invite_readable(srf: Srf, server: FakeServer):
    dialogs: queue.Queue = queue.Queue()

    @srf.invite
    def on_invite(req, res):
        srf.create_uas(req, res, {"localSdp": SDP_B}, lambda err, dlg: dialogs.put((err, dlg)))

    srf.connect(host="127.0.0.1", port=server.port, secret="cymru").result(WAIT)
    server.deliver(invite(), txn_id="t1")
    f = server.sip_frame("SIP/2.0 200")
    server.echo_response(f, dialog_id=DLG)
    err, dlg = dialogs.get(timeout=WAIT)
    assert err is None
    req = dlg.req
    assert req.msg._lines is None                  # shed once the dialog was made
    assert req.get("From") == "<sip:far@10.0.0.1>;tag=farTag"
    assert req.get_parsed_header("Contact")[0].uri == "sip:far@10.0.0.1:5060"
    assert req.body == SDP_A and dlg.remote.sdp == SDP_A and dlg.local.sdp == SDP_B
    assert req.server["hostport"] == "udp/127.0.0.1:5060,tcp/127.0.0.1:5060"
    assert str(req) == invite() and req.raw == invite()
    assert dlg.res.status == 200 and dlg.res.stack_txn_id == req.stack_txn_id == "t1"
    assert dlg.subscriptions == [] and dlg.queued_requests == []
    # in-dialog requests still work: BYE from the far end ends it
    ended: queue.Queue = queue.Queue()
    dlg.on("destroy", lambda *a: ended.put(a))
    server.deliver(invite(method="BYE", to_tag="srvtag", cseq=2, body=""), txn_id="t2", dialog_id=DLG)
    assert server.sip_frame("SIP/2.0 200").field(2) == "t2"
    assert ended.get(timeout=WAIT)[1] == "normal release"
