"""Tests of drachtio_srf.wire against the byte-exact recordings of drachtio-srf <-> drachtio-server."""
from __future__ import annotations

import random
import re
import time
from pathlib import Path

import pytest

from drachtio_srf import wire

TRANSCRIPTS = Path(__file__).resolve().parent.parent / "data" / "wire-transcripts"
TRANSCRIPT_FILES = sorted(TRANSCRIPTS.glob("*.txt"))
_HEAD = re.compile(rb"(APP->SERVER|SERVER->APP) (\d+)#\n")


def read_transcript(path: Path) -> list[tuple[str, int, bytes]]:
    """Frames of a recording: (direction, recorded N, the N payload bytes).

    A frame is a line ``APP->SERVER N#`` / ``SERVER->APP N#`` ended by LF, then exactly N raw
    payload bytes (SIP line ends inside them are the real CR LF), then an empty line (LF LF).
    """
    data = path.read_bytes()
    frames = []
    pos = 0
    while pos < len(data):
        m = _HEAD.match(data, pos)
        assert m, f"{path.name}: no frame header at byte {pos}: {data[pos:pos + 40]!r}"
        n = int(m.group(2))
        payload = data[m.end():m.end() + n]
        assert len(payload) == n, f"{path.name}: truncated frame at byte {pos}"
        pos = m.end() + n
        assert data[pos:pos + 2] == b"\n\n", f"{path.name}: no separator after frame at {pos}"
        pos += 2
        frames.append((m.group(1).decode(), n, payload))
    return frames


def rebuild(direction: str, f: wire.Frame, used: set[str]) -> str:
    """Rebuild a parsed frame with the matching builder, using only the parsed values."""
    t = f.type
    if direction == "APP->SERVER":
        if t == "authenticate":
            used.add("authenticate")
            tags = f.fields[3].split(",") if f.field(3) else ()
            return wire.authenticate(f.msg_id, f.fields[2], tags)
        if t in ("route", "remove_route"):
            used.add(t)
            return getattr(wire, t)(f.msg_id, f.fields[2])
        if t == "ping":
            used.add("ping")
            return wire.ping(f.msg_id)
        if t == "sip":
            assert f.sip is not None
            if f.sip.startswith("SIP/"):
                used.add("sip_response")
                return wire.sip_response(f.msg_id, f.fields[2], f.sip)
            if f.fields[2]:
                used.add("sip_cancel")
                return wire.sip_cancel(f.msg_id, f.fields[2], f.sip)
            used.add("sip_request")
            return wire.sip_request(f.msg_id, f.sip, dialog_id=f.fields[3], route_uri=f.field(4) or None)
        if t == "proxy":
            used.add("proxy")
            return wire.proxy(f.msg_id, f.fields[2], f.fields[9:], f.sip,
                              remain_in_dialog=f.fields[3] == "remainInDialog",
                              full_response=f.fields[4] == "fullResponse",
                              follow_redirects=f.fields[5] == "followRedirects",
                              simultaneous=f.fields[6] == "simultaneous",
                              provisional_timeout=f.fields[7], final_timeout=f.fields[8])
    else:
        if t == "sip":
            used.add("sip_event")
            m = wire.SipMeta.from_sip_frame(f)
            rcv = tuple(m.received_on.rsplit(":", 1)) if m.received_on else None
            return wire.sip_event(f.msg_id, source=m.source, nbytes=m.nbytes, protocol=m.protocol,
                                  address=m.address, port=m.port, time=m.time, txn_id=m.txn_id,
                                  dialog_id=m.dialog_id, received_on=rcv, sip_text=f.sip)
        if t == "response":
            if f.sip is not None:
                m = wire.SipMeta.from_echo(f)
                common = {"nbytes": m.nbytes, "protocol": m.protocol, "address": m.address,
                          "port": m.port, "time": m.time, "sip_text": f.sip}
                used.add(f"echo:{m.echo_of}")
                if m.echo_of == "response":
                    return wire.echo_response(f.msg_id, f.in_reply_to, txn_id=m.txn_id,
                                              dialog_id=m.dialog_id, **common)
                if m.echo_of == "request":
                    return wire.echo_request(f.msg_id, f.in_reply_to, txn_id=m.txn_id, **common)
                return wire.proxy_continue(f.msg_id, f.in_reply_to, source=m.source, **common)
            if f.data == ["done"]:
                used.add("proxy_done")
                return wire.proxy_done(f.msg_id, f.in_reply_to)
            used.add("reply")
            return wire.reply(f.msg_id, f.in_reply_to, f.status, f.data)
        if t.startswith("cdr:"):
            used.add("cdr")
            return wire.cdr(f.msg_id, t[4:], f.fields[2], f.fields[3], f.field(4) or None, f.sip)
    raise AssertionError(f"unexpected {direction} frame type {t!r}")


# ----------------------------------------------------------------------------- transcripts

def test_transcripts_present():
    assert len(TRANSCRIPT_FILES) == 9


@pytest.mark.parametrize("path", TRANSCRIPT_FILES, ids=lambda p: p.stem)
def test_transcript_frames_round_trip(path):
    frames = read_transcript(path)
    assert frames
    used: set[str] = set()
    for direction, n, raw in frames:
        payload = raw.decode("utf-8")
        f = wire.parse(payload)
        assert f.fields[0] == f.msg_id and f.fields[1] == f.type
        assert re.fullmatch(r"[0-9a-f]{8}-[0-9a-f]{4}-4[0-9a-f]{3}-[0-9a-f]{4}-[0-9a-f]{12}", f.msg_id)
        assert f.payload == payload
        rebuilt = rebuild(direction, f, used)
        assert rebuilt == payload, f"{direction} {f.type} frame not rebuilt byte-exact"
        assert wire.encode(rebuilt) == b"%d#" % n + raw
        if f.type == "response":  # the generic reply builder covers every reply too
            assert wire.reply(f.msg_id, f.in_reply_to, f.status, f.data, f.sip) == payload


@pytest.mark.parametrize("path", TRANSCRIPT_FILES, ids=lambda p: p.stem)
def test_transcript_streams_decode(path):
    frames = read_transcript(path)
    for direction in ("APP->SERVER", "SERVER->APP"):
        expected = [raw.decode("utf-8") for d, _, raw in frames if d == direction]
        stream = b"".join(b"%d#" % n + raw for d, n, raw in frames if d == direction)
        assert wire.FrameDecoder().feed(stream) == expected
        dec = wire.FrameDecoder()
        got = []
        for i in range(len(stream)):
            got += dec.feed(stream[i:i + 1])
        assert got == expected
        assert dec.pending == 0


def test_transcripts_cover_the_builders():
    used: set[str] = set()
    for path in TRANSCRIPT_FILES:
        for direction, _, raw in read_transcript(path):
            rebuild(direction, wire.parse(raw.decode()), used)
    assert used >= {"authenticate", "route", "sip_request", "sip_response", "proxy", "reply",
                    "sip_event", "echo:response", "echo:request", "echo:proxy", "proxy_done"}


def _frames(name: str) -> list[tuple[str, wire.Frame]]:
    return [(d, wire.parse(raw.decode())) for d, _, raw in read_transcript(TRANSCRIPTS / name)]


def test_uas_basic_fields():
    frames = _frames("uas-basic.txt")
    auth = frames[1][1]
    assert auth.type == "response" and auth.ok and auth.status == "OK"
    assert auth.in_reply_to == frames[0][1].msg_id
    assert auth.data == ["tcp/127.0.0.1:5060,udp/127.0.0.1:5060", "1.0.0",
                         "tcp/127.0.0.1:5060,udp/127.0.0.1:5060"]
    assert frames[2][1].fields == [frames[2][1].msg_id, "route", "invite"]
    assert frames[3][1].sip is None and frames[3][1].data == []

    invite = frames[4][1]
    assert invite.type == "sip" and len(invite.fields) == 13
    assert invite.sip.startswith("INVITE sip:service@127.0.0.1:5060 SIP/2.0\r\nVia: ")
    assert invite.sip.endswith("a=rtpmap:0 PCMU/8000\r\n")
    meta = wire.SipMeta.from_sip_frame(invite)
    assert meta == wire.SipMeta(source="network", protocol="udp", address="127.0.0.1", port=5080,
                                time="02:12:13.195387", txn_id="0a55d345-ab63-4dac-acb0-6601f6b04a2e",
                                dialog_id="", received_on="127.0.0.1:5060", session_token=None,
                                nbytes=509, echo_of=None)

    answer = frames[5][1]
    assert answer.fields[1:] == ["sip", "0a55d345-ab63-4dac-acb0-6601f6b04a2e", ""]
    assert answer.sip.startswith("SIP/2.0 200 OK\r\n")

    echo = wire.SipMeta.from_echo(frames[6][1])
    assert echo.echo_of == "response"
    assert echo.source == "application" and echo.nbytes == 471 and echo.protocol == "udp"
    assert (echo.address, echo.port, echo.time) == ("127.0.0.1", 5080, "02:12:13.199192")
    assert echo.txn_id == "0a55d345-ab63-4dac-acb0-6601f6b04a2e"
    assert echo.dialog_id == "1-31887@127.0.0.1;from-tag=31887SIPpTag001"

    ack = wire.SipMeta.from_sip_frame(frames[7][1])
    assert ack.protocol == "" and ack.received_on is None
    assert ack.txn_id == "0a55d345-ab63-4dac-acb0-6601f6b04a2e"  # the INVITE's txnId
    assert ack.dialog_id == "1-31887@127.0.0.1;from-tag=31887SIPpTag001"
    assert frames[7][1].sip.startswith("ACK ")

    bye_echo = wire.SipMeta.from_echo(frames[-1][1])
    assert bye_echo.echo_of == "response" and bye_echo.dialog_id == "" and bye_echo.protocol == ""
    assert bye_echo.txn_id == "be4158ef-acf1-4cdc-80f7-10a75844a3e6"


def test_request_echo_has_no_dialog_id():
    frames = _frames("request-options.txt")
    req = frames[2][1]
    assert req.fields[1:] == ["sip", "", ""] and req.sip.startswith("OPTIONS ")
    echo = wire.SipMeta.from_echo(frames[3][1])
    assert echo.echo_of == "request"
    assert echo.dialog_id == ""
    assert echo.txn_id == "8ac46625-2fc4-4143-8e25-84557214bd36"
    assert frames[3][1].fields[11] == wire.MSG_SENT
    resp = wire.SipMeta.from_sip_frame(frames[4][1])
    assert resp.txn_id == echo.txn_id and resp.port == 5091 and resp.dialog_id == ""


def test_uac_response_carries_dialog_id_and_in_dialog_requests():
    frames = _frames("uac-info-hold-bye.txt")
    ringing = wire.SipMeta.from_sip_frame(frames[4][1])
    assert ringing.dialog_id == "573fd129-624f-1240-7fac-7659af211bc5;from-tag=pHD42p9a4H2Dj"
    ack = frames[6][1]
    assert ack.fields[2:] == ["", ringing.dialog_id] and ack.sip.startswith("ACK ")


def test_proxy_frames():
    frames = _frames("proxy-record-route.txt")
    cmd = frames[5][1]
    assert cmd.type == "proxy"
    assert cmd.fields[2:] == ["d5b14e25-9cd3-43dc-bfc3-fcad6841585e", "remainInDialog", "fullResponse",
                              "", "serial", "", "", "sip:service@127.0.0.1:5092"]
    cont = wire.SipMeta.from_echo(frames[6][1])
    assert cont.echo_of == "proxy" and cont.source == "network" and cont.txn_id == ""
    assert cont.port == 5092 and cont.dialog_id == ""
    done = frames[7][1]
    assert done.ok and done.data == ["done"]


def test_auth_failure_reply():
    frames = _frames("auth-wrong-secret.txt")
    assert frames[0][1].fields[2:] == ["wrong", ""]
    no = frames[1][1]
    assert no.status == "NO" and not no.ok and no.data == ["incorrect secret"]


def test_far_end_cancel_is_a_sip_request():
    frames = _frames("uas-far-end-cancel.txt")
    invite, cancel = (wire.SipMeta.from_sip_frame(f) for _, f in frames[4:6])
    assert cancel.txn_id == invite.txn_id and cancel.received_on is None
    assert frames[5][1].sip.startswith("CANCEL ")


# ----------------------------------------------------------------------------- constructed (PROTOCOL.md 6)

def test_ping_and_cdr_route_constructed():
    assert wire.encode(wire.ping("7c9e6679-7425-40de-944b-e07fc1f90ae7")) == \
        b"41#7c9e6679-7425-40de-944b-e07fc1f90ae7|ping"
    assert wire.encode(wire.reply("2f0cd6b4-3c1a-4f7e-8a62-93c4e0b5d1aa",
                                  "7c9e6679-7425-40de-944b-e07fc1f90ae7", "OK", ["pong"]))[:3] == b"90#"
    assert wire.encode(wire.route("a0b1c2d3-e4f5-4a6b-8c7d-9e0f1a2b3c4d", "cdr:attempt"))[:3] == b"54#"


def test_cdr_builder_and_parse():
    sip = "BYE sip:a@b SIP/2.0\r\nContent-Length: 0\r\n\r\n"
    p = wire.cdr("id1", "stop", "network", "02:12:13.202495", "normal-release", sip)
    assert p == "id1|cdr:stop|network|02:12:13.202495|normal-release\r\n" + sip
    f = wire.parse(p)
    assert f.type == "cdr:stop" and f.sip == sip
    assert wire.cdr("id2", "attempt", "network", "t", sip_text=sip).startswith("id2|cdr:attempt|network|t\r\n")
    with pytest.raises(ValueError):
        wire.cdr("id", "bogus", "network", "t", None, sip)
    with pytest.raises(TypeError):
        wire.cdr("id", "start", "network", "t", "uas")


def test_unsolicited_bye_event():
    p = wire.sip_event("m", source="application", nbytes=337, protocol="udp", address="127.0.0.1",
                       port=5060, time="02:13:53.611020", txn_id="unsolicited",
                       dialog_id="1-32060@127.0.0.1;from-tag=32060SIPpTag001", sip_text="BYE x SIP/2.0\r\n")
    f = wire.parse(p)
    assert len(f.fields) == 11 and f.fields[-1] == ""
    meta = wire.SipMeta.from_sip_frame(f)
    assert meta.source == "application" and meta.txn_id == "unsolicited" and meta.received_on is None


# ----------------------------------------------------------------------------- builders

def test_app_builders_exact_forms():
    assert wire.authenticate("i", "cymru") == "i|authenticate|cymru|"
    assert wire.authenticate("i", "s", ["a", "b"]) == "i|authenticate|s|a,b"
    assert wire.remove_route("i", "invite") == "i|remove_route|invite"
    assert wire.sip_request("i", "OPTIONS x SIP/2.0\r\n\r\n") == "i|sip||\r\nOPTIONS x SIP/2.0\r\n\r\n"
    assert wire.sip_request("i", "R", route_uri="sip:p") == "i|sip|||sip:p\r\nR"
    assert wire.sip_request("i", "R", dialog_id="d") == "i|sip||d\r\nR"
    assert wire.sip_cancel("i", "t", "CANCEL") == "i|sip|t|\r\nCANCEL"
    assert wire.proxy("i", "t", ["sip:a", "sip:b"], "INVITE sip:a SIP/2.0\r\n\r\n", simultaneous=True,
                      full_response=False, follow_redirects=True, provisional_timeout="2s",
                      final_timeout="30s") == \
        "i|proxy|t|||followRedirects|simultaneous|2s|30s|sip:a|sip:b\r\nINVITE sip:a SIP/2.0\r\n\r\n"
    assert wire.proxy("i", "t", "sip:a", "X").startswith("i|proxy|t||fullResponse||serial|||sip:a\r\n")


def test_server_builders_exact_forms():
    assert wire.reply("i", "r", "NOK", ["Response not sent due to unknown transaction"]) == \
        "i|response|r|NOK|Response not sent due to unknown transaction"
    assert wire.reply("i", "r", "OK") == "i|response|r|OK"
    assert wire.proxy_done("i", "r") == "i|response|r|OK|done"
    assert wire.echo_request("i", "r", nbytes=1, protocol="udp", address="h", port=5, time="t",
                             txn_id="x", sip_text="S") == "i|response|r|OK|application|1|udp|h|5|t|x|Msg sent:|\r\nS"
    assert wire.echo_response("i", "r", nbytes=1, protocol="", address="h", port=5, time="t",
                              txn_id="x", dialog_id="d", sip_text="S") == \
        "i|response|r|OK|application|1||h|5|t|x|d||Msg sent:|\r\nS"
    assert wire.sip_event("i", source="network", nbytes=9, protocol="tcp", address="h", port=1, time="t",
                          txn_id="x", received_on=("127.0.0.1", 5060), sip_text="S") == \
        "i|sip|network|9|tcp|h|1|t|x||127.0.0.1|5060|\r\nS"


def test_builders_reject_bad_fields():
    with pytest.raises(ValueError, match="may not contain"):
        wire.route("i", "in|vite")
    with pytest.raises(ValueError):
        wire.authenticate("i", "sec\r\nret")
    with pytest.raises(ValueError):
        wire.sip_response("i", "", "SIP/2.0 200 OK\r\n\r\n")
    with pytest.raises(ValueError):
        wire.sip_cancel("i", "", "CANCEL")
    with pytest.raises(ValueError):
        wire.proxy("i", "t", [], "X")


def test_new_id_and_stack_time():
    ids = {wire.new_id() for _ in range(100)}
    assert len(ids) == 100
    assert all(re.fullmatch(r"[0-9a-f]{8}-[0-9a-f]{4}-4[0-9a-f]{3}-[89ab][0-9a-f]{3}-[0-9a-f]{12}", i)
               for i in ids)
    assert wire.stack_time(0.25) == "00:00:00.250000"
    assert wire.stack_time(86400 + 3661.000001).startswith("01:01:01.0000")
    assert re.fullmatch(r"\d\d:\d\d:\d\d\.\d{6}", wire.stack_time())


# ----------------------------------------------------------------------------- parse / meta

def test_parse_shapes():
    f = wire.parse("a||b|")
    assert f.fields == ["a", "", "b", ""] and f.sip is None and f.type == ""
    f = wire.parse("a|sip|x\r\n")
    assert f.sip == "" and f.fields == ["a", "sip", "x"]
    f = wire.parse("a|sip|x\r\nL1\r\nL2|y")
    assert f.fields == ["a", "sip", "x"] and f.sip == "L1\r\nL2|y"
    assert f.field(7) == "" and f.field(7, "z") == "z" and f.in_reply_to is None
    with pytest.raises(wire.WireProtocolError, match="invalid message format"):
        wire.parse("justonefield\r\nSIP")


def test_sip_meta_edge_cases():
    f = wire.parse("i|sip|network|10|udp|1.2.3.4||t|x|d|h|7|tok|\r\nS")
    m = wire.SipMeta.from_sip_frame(f)
    assert m.port == 5060 and m.received_on == "h:7" and m.session_token == "tok"
    with pytest.raises(wire.WireProtocolError):
        wire.SipMeta.from_sip_frame(wire.parse("i|sip|network|10|udp|h|5060|t|x"))
    with pytest.raises(wire.WireProtocolError, match="port"):
        wire.SipMeta.from_sip_frame(wire.parse("i|sip|network|10|udp|h|abc|t|x||"))
    with pytest.raises(wire.WireProtocolError):
        wire.SipMeta.from_echo(wire.parse("i|response|r|NOK|failed"))
    with pytest.raises(wire.WireProtocolError):
        wire.SipMeta.from_sip_frame(wire.parse("i|response|r|OK|a|b|c|d|e|f|g"))


# ----------------------------------------------------------------------------- FrameDecoder

def _stream(payloads):
    return b"".join(wire.encode(p) for p in payloads)


def test_encode_counts_bytes():
    text = "héllo ☎ 𝄞"
    assert wire.encode(text) == b"%d#" % len(text.encode()) + text.encode()
    assert wire.encode(text)[:3] == b"15#"
    with pytest.raises(wire.WireProtocolError):
        wire.encode("")


def test_decoder_partial_and_split_length():
    d = wire.FrameDecoder()
    assert d.feed(b"1") == []
    assert d.feed(b"2") == []
    assert d.feed(b"#hello") == []
    assert d.pending == 5
    assert d.feed(b" world!3#ab") == ["hello world!"]
    assert d.feed(b"c") == ["abc"]
    assert d.pending == 0


def test_decoder_several_frames_in_one_feed_and_hash_in_payload():
    payloads = ["a#b#c", "#", "12#34", "x|y|z\r\nSIP/2.0 200 OK\r\n\r\n", "9"]
    assert wire.FrameDecoder().feed(_stream(payloads)) == payloads


def test_decoder_multibyte_utf8_split_anywhere():
    payloads = ["☎" * 50, "é|𝄞\r\nbody ü", "plain"]
    stream = _stream(payloads)
    for cut in range(1, len(stream)):
        d = wire.FrameDecoder()
        assert d.feed(stream[:cut]) + d.feed(stream[cut:]) == payloads


def test_decoder_large_frames_in_small_chunks():
    rng = random.Random(7)
    payloads = ["x" * 10_000, "é" * 12_345, "y" * 100_000, "small"]
    stream = _stream(payloads)
    d = wire.FrameDecoder()
    got = []
    pos = 0
    while pos < len(stream):
        step = rng.randint(1, 97)
        got += d.feed(stream[pos:pos + step])
        pos += step
    assert got == payloads and d.pending == 0


def test_decoder_is_linear_on_big_input():
    # 5 MB in 1 KB reads plus 20 000 small frames in one read: quadratic copying would take minutes
    big = "z" * 5_000_000
    stream = wire.encode(big)
    d = wire.FrameDecoder()
    start = time.perf_counter()
    got = []
    for i in range(0, len(stream), 1024):
        got += d.feed(stream[i:i + 1024])
    many = [f"{i}|response|x|OK" for i in range(20_000)]
    got2 = d.feed(_stream(many))
    elapsed = time.perf_counter() - start
    assert got == [big] and got2 == many
    assert elapsed < 10, f"decoder too slow: {elapsed:.1f}s"


def test_decoder_bad_utf8_never_raises_and_round_trips():
    raw = b"\xff\xfe|\xc3("
    d = wire.FrameDecoder()
    [payload] = d.feed(b"%d#" % len(raw) + raw)
    assert wire.encode(payload) == b"%d#" % len(raw) + raw
    assert wire.parse(payload).fields[1] == "\udcc3("


@pytest.mark.parametrize("data, message", [
    (b"x5#hello", "non-digit"),
    (b"abc", "expected length digits"),
    (b"#abc", "empty length"),
    (b"0#", "zero-length"),
    (b"1234567890#x", "longer than 9 digits"),
    (b"1234567890", "longer than 9 digits"),
    (b" 5#hello", "non-digit"),
    (b"-5#hello", "non-digit"),
])
def test_decoder_malformed(data, message):
    d = wire.FrameDecoder()
    with pytest.raises(wire.WireProtocolError, match=message):
        d.feed(data)
    with pytest.raises(wire.WireProtocolError, match="unusable"):
        d.feed(b"5#hello")


def test_decoder_error_keeps_frames_decoded_before_it():
    d = wire.FrameDecoder()
    with pytest.raises(wire.WireProtocolError) as info:
        d.feed(wire.encode("first") + wire.encode("second") + b"x#")
    assert info.value.frames == ["first", "second"]


def test_decoder_accepts_nine_digits_and_leading_zero():
    d = wire.FrameDecoder()
    assert d.feed(b"000000003#abc") == ["abc"]
    assert d.feed(b"999999999#") == []
    assert d.pending == 0


@pytest.mark.parametrize("port", ["²", "٣", "9" * 5000, "65536", "-1"])
def test_sip_meta_bad_port_is_a_protocol_error(port):
    # str.isdigit() accepts '²' and int() refuses it: must be WireProtocolError, not ValueError
    with pytest.raises(wire.WireProtocolError, match="bad port"):
        wire.SipMeta.from_sip_frame(wire.parse(f"i|sip|network|10|udp|h|{port}|t|x||"))
    echo = f"i|response|r|OK|application|10|udp|h|{port}|t|txn|Msg sent:|"
    with pytest.raises(wire.WireProtocolError, match="bad port"):
        wire.SipMeta.from_echo(wire.parse(echo))


@pytest.mark.parametrize("nbytes", ["²", "٣", "9" * 5000])
def test_sip_meta_bad_byte_count_is_unknown(nbytes):
    m = wire.SipMeta.from_sip_frame(wire.parse(f"i|sip|network|{nbytes}|udp|h|5060|t|x||"))
    assert m.nbytes is None


@pytest.mark.parametrize("data", ["²#x".encode(), "٣#x".encode(), b"9" * 5000 + b"#x"])
def test_decoder_non_ascii_or_long_length_is_a_protocol_error(data):
    with pytest.raises(wire.WireProtocolError):
        wire.FrameDecoder().feed(data)


def test_sip_response_is_written_as_make_payload_writes_it_and_refuses_bad_fields() -> None:
    text = "SIP/2.0 200 OK\r\nContent-Length: 0\r\n\r\n"
    assert wire.sip_response("m1", "t9", text) == wire.make_payload(("m1", "sip", "t9", ""), text)
    for bad in ("t|9", "t\r9", "t\n9"):
        with pytest.raises(ValueError):
            wire.sip_response("m1", bad, text)
    with pytest.raises(ValueError):
        wire.sip_response("m|1", "t9", text)
