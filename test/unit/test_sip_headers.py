"""Header knowledge: AttrDict, names, value splitting and parsers, status phrases."""
from __future__ import annotations

import copy
import os
import pickle
import re
import subprocess
import sys

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from drachtio_srf.sip import STATUS_REASONS, AttrDict, SipParseError, reason_phrase
from drachtio_srf.sip.headers import (
    COMPACT_FORMS,
    header_key,
    header_name,
    parse_auth_headers,
    parse_auth_info,
    parse_cseq,
    parse_name_addr,
    parse_params,
    parse_via,
    pretty_name,
    split_commas,
    split_outside,
    unquote,
)


def test_attrdict_keys_are_attributes():
    d = AttrDict(uri="sip:a@b", params=AttrDict(tag="1"))
    assert d.uri == d["uri"] == "sip:a@b"
    assert d.params.tag == "1"
    d.name = "x"
    assert d["name"] == "x"
    del d.name
    assert "name" not in d
    with pytest.raises(AttributeError):
        _ = d.missing
    with pytest.raises(AttributeError):
        del d.missing
    assert isinstance(d, dict)


def test_attrdict_copies_and_pickles():
    d = AttrDict(a=1, b=AttrDict(c=[1, 2]))
    assert copy.deepcopy(d) == d
    assert pickle.loads(pickle.dumps(d)) == d
    assert type(copy.copy(d)) is AttrDict


# --------------------------------------------------------------------------- names

def test_header_name_rules():
    assert header_name("From") == "from"
    assert header_name("f") == "from"
    assert header_name("CALL-ID") == "call-id"
    assert header_name("X-Foo-Bar") == "X-Foo-Bar"
    assert header_name("P-Charging-Vector") == "P-Charging-Vector"
    assert header_name("P-Asserted-Identity") == "p-asserted-identity"
    assert header_name("Diversion") == "Diversion"
    assert header_key("X-Foo-Bar") == "x-foo-bar"
    assert header_key("M") == "contact"
    with pytest.raises(ValueError):
        header_name("bad name")


def test_compact_forms_table():
    assert COMPACT_FORMS["i"] == "call-id"
    assert COMPACT_FORMS["e"] == "content-encoding"
    assert COMPACT_FORMS["x"] == "session-expires"
    assert all(len(k) == 1 for k in COMPACT_FORMS)


def test_pretty_names():
    assert pretty_name("call-id") == "Call-ID"
    assert pretty_name("cseq") == "CSeq"
    assert pretty_name("www-authenticate") == "WWW-Authenticate"
    assert pretty_name("max-forwards") == "Max-Forwards"
    assert pretty_name("X-lower-Mixed") == "X-lower-Mixed"
    assert pretty_name("content-length") == "Content-Length"


def test_preserve_env_variable_keeps_case():
    code = ("from drachtio_srf.sip import SipMessage, header_name;"
            "m = SipMessage('OPTIONS sip:a SIP/2.0\\r\\nMy-Header: 1\\r\\n\\r\\n');"
            "print(header_name('My-Header'), list(m.headers), m.get('my-header'))")
    env = dict(os.environ, DRACHTIO_PRESERVE_HEADER_NAMES="My-Header, Other")
    out = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True,
                         check=True, cwd=os.getcwd()).stdout.split()
    assert out == ["My-Header", "['My-Header']", "1"]


# --------------------------------------------------------------------------- splitting

@pytest.mark.parametrize("value,items", [
    ("a", ["a"]),
    ("", []),
    (" a , b ,c", ["a", "b", "c"]),
    ('"x, y" <sip:a>, <sip:b;p=1,2>', ['"x, y" <sip:a>', "<sip:b;p=1,2>"]),
    ('"esc \\" ,q" <sip:a>,<sip:b>', ['"esc \\" ,q" <sip:a>', "<sip:b>"]),
    ('"unterminated, x', ['"unterminated, x']),
    (",,a,,", ["a"]),
])
def test_split_commas(value, items):
    assert split_commas(value) == items


def test_parse_params():
    assert parse_params(";tag=1;LR;Expires = 60") == {"tag": "1", "lr": None, "expires": "60"}
    assert parse_params(';a="x;y";b') == {"a": '"x;y"', "b": None}
    assert parse_params("") == {}
    assert parse_params(";;") == {}


def test_unquote():
    assert unquote('"a \\"b\\" c"') == 'a "b" c'
    assert unquote("plain") == "plain"
    assert unquote('"') == '"'


# --------------------------------------------------------------------------- name-addr

@pytest.mark.parametrize("value,name,uri,params", [
    ('"Alice Smith" <sip:alice@a.com>;tag=9', "Alice Smith", "sip:alice@a.com", {"tag": "9"}),
    ("Alice Smith <sip:alice@a.com>", "Alice Smith", "sip:alice@a.com", {}),
    ("<sip:alice@a.com;transport=tcp?X-H=1>;expires=5", None,
     "sip:alice@a.com;transport=tcp?X-H=1", {"expires": "5"}),
    ("sip:alice@a.com;tag=1", None, "sip:alice@a.com", {"tag": "1"}),
    ("  sip:alice@a.com  ", None, "sip:alice@a.com", {}),
    ('"<not>, an;addr" <sip:x@[::1]:5060>', "<not>, an;addr", "sip:x@[::1]:5060", {}),
    ('"" <sip:x@y>', "", "sip:x@y", {}),
    ("<tel:+1555>", None, "tel:+1555", {}),
    ('<sip:a@b>;+sip.instance="<urn:uuid:1>";reg-id=1', None, "sip:a@b",
     {"+sip.instance": '"<urn:uuid:1>"', "reg-id": "1"}),
])
def test_parse_name_addr(value, name, uri, params):
    assert parse_name_addr(value) == {"name": name, "uri": uri, "params": params}


@pytest.mark.parametrize("value,match", [
    ("", "empty name-addr"),
    ('"unterminated <sip:a@b>', "unterminated quoted display name"),
    ('"name" sip:a@b', "missing '<'"),
    ("<sip:a@b", "missing '>'"),
    ("two words", "bad name-addr"),
])
def test_parse_name_addr_errors(value, match):
    with pytest.raises(SipParseError, match=match):
        parse_name_addr(value)


# --------------------------------------------------------------------------- via, cseq, auth

def test_parse_via_variants():
    vias = parse_via(["SIP / 2.0 / udp  host.example.com : 5070 ; branch=z9hG4bKx ; received=1.1.1.1",
                      "SIP/2.0/TLS [::1];rport;branch=b2, SIP/2.0/WS h3:80"])
    assert vias[0] == {"version": "2.0", "protocol": "UDP", "host": "host.example.com",
                       "port": 5070, "params": {"branch": "z9hG4bKx", "received": "1.1.1.1"}}
    assert (vias[1].protocol, vias[1].host, vias[1].port, vias[1].params) == (
        "TLS", "::1", None, {"rport": None, "branch": "b2"})
    assert (vias[2].protocol, vias[2].host, vias[2].port) == ("WS", "h3", 80)


@pytest.mark.parametrize("value", ["junk", "SIP/2.0/UDP", "SIP/2.0/UDP host:port", "SIP/2.0 h"])
def test_parse_via_errors(value):
    with pytest.raises(SipParseError, match="bad Via"):
        parse_via([value])


def test_parse_cseq():
    assert parse_cseq("  42   REGISTER ") == {"seq": 42, "method": "REGISTER"}
    for bad in ("", "INVITE", "x INVITE", "1 INVITE extra"):
        with pytest.raises(SipParseError, match="bad CSeq"):
            parse_cseq(bad)


def test_parse_auth_headers():
    got = parse_auth_headers([
        ('Digest username="bob", realm="biloxi.com", nonce="dcd98b", uri="sip:bob@biloxi.com", '
        'response="6629fae4", algorithm=MD5, qop=auth, nc=00000001, cnonce="0a4f113b"'),
        'Digest realm="x,y",nonce="n", Basic realm="b"',
        "Basic dXNlcjpwYXNzd29yZA==",
    ])
    assert got[0] == {"scheme": "Digest", "username": "bob", "realm": "biloxi.com",
                      "nonce": "dcd98b", "uri": "sip:bob@biloxi.com", "response": "6629fae4",
                      "algorithm": "MD5", "qop": "auth", "nc": "00000001", "cnonce": "0a4f113b"}
    assert got[1] == {"scheme": "Digest", "realm": "x,y", "nonce": "n"}
    assert got[2] == {"scheme": "Basic", "realm": "b"}
    assert got[3] == {"scheme": "Basic", "token": "dXNlcjpwYXNzd29yZA=="}
    with pytest.raises(SipParseError):
        parse_auth_headers(['realm="x"'])


def test_parse_auth_info():
    assert parse_auth_info('nextnonce="47364c23432d2e131a5fb210812c", qop=auth') == {
        "nextnonce": "47364c23432d2e131a5fb210812c", "qop": "auth"}


# --------------------------------------------------------------------------- status phrases

def test_status_reasons():
    assert STATUS_REASONS[200] == "OK"
    assert STATUS_REASONS[183] == "Session in Progress"
    assert STATUS_REASONS[481] == "Call/Transaction Does Not Exist"
    assert STATUS_REASONS[487] == "Request Terminated"
    assert all(100 <= c <= 699 for c in STATUS_REASONS)


def test_reason_phrase():
    assert reason_phrase(486) == "Busy Here"
    assert reason_phrase(499) == "Client Error"
    assert reason_phrase(199) == "Early Dialog Terminated"
    assert reason_phrase(299) == "Success"
    assert reason_phrase(700) == ""
    assert reason_phrase(42) == ""


# --------------------------------------------------------------------------- shortcuts
# parse_params, parse_via, parse_name_addr and parse_cseq take shortcuts for the usual shapes;
# each case below pairs a usual value with a spelling that takes the general path.

@pytest.mark.parametrize("usual,general", [
    (";tag=8a2b", " ; tag = 8a2b "),
    (";TAG=AbC", "; TAG=AbC"),
    (";branch=z9hG4bK-1;rport", ";branch=z9hG4bK-1 ;rport"),
    (";received=1.2.3.4;branch=b;rport=5080;lr", "; received=1.2.3.4;branch=b;rport=5080;lr"),
    ("tag=x", " tag=x"),
    (";a=b=c;=x;;d=", "; a=b=c;=x;;d= "),
    (";lr;lr=1;LR", ";lr ;lr=1;LR"),
])
def test_parse_params_shortcut_matches_general_rules(usual, general):
    assert parse_params(usual) == parse_params(general)


def test_parse_params_other_whitespace_is_stripped():
    assert parse_params(";tag=a\x0b") == {"tag": "a"}
    assert parse_params(";\xa0lr") == {"lr": None}


@pytest.mark.parametrize("usual,general", [
    ("SIP/2.0/UDP 10.0.0.1:5060;branch=z9;rport", "SIP/2.0/UDP  10.0.0.1 : 5060 ;branch=z9;rport"),
    ("SIP/2.0/TCP host.example.com;branch=z9", "SIP/2.0/tcp host.example.com;branch=z9"),
    ("SIP/2.0/WSS a-b.c:443", "SIP / 2.0 / WSS a-b.c:443"),
])
def test_parse_via_shortcut_matches_general_rules(usual, general):
    assert parse_via([usual]) == parse_via([general])


def test_parse_via_unusual_hosts_and_errors_still_handled():
    assert parse_via(["SIP/2.0/UDP h_1:5060;branch=x"])[0].host == "h_1"
    assert parse_via(["SIP/2.0/UDP [2001:db8::1]:5060"])[0].host == "2001:db8::1"
    for bad in ("SIP/2.0/UDP host:5060x", "SIP/2.0/UDP host junk"):
        with pytest.raises(SipParseError, match="bad Via"):
            parse_via([bad])


def test_parse_name_addr_quoted_names_with_and_without_escapes():
    assert parse_name_addr('"Al" <sip:a@b>;tag=1').name == "Al"
    assert parse_name_addr('"A \\"q\\" B" <sip:a@b>').name == 'A "q" B'
    assert parse_name_addr('"A\\\\" <sip:a@b>').name == "A\\"
    assert parse_name_addr('"a<b>" <sip:c@d>').uri == "sip:c@d"


def test_parse_cseq_shortcut_matches_general_rules():
    assert parse_cseq("7 INVITE") == parse_cseq(" 7   INVITE ") == {"seq": 7, "method": "INVITE"}
    assert parse_cseq("7 X-CUSTOM") == {"seq": 7, "method": "X-CUSTOM"}


# the regexes split_outside replaced: one item is a run of plain text, quoted strings (backslash
# escapes, closing quote optional) and, for lists, <...> groups (closing '>' optional)
_LIST_ITEM = re.compile(r'(?:[^,"<]+|"(?:[^"\\]|\\.)*"?|<[^>]*>?)+', re.DOTALL)
_PARAM_ITEM = re.compile(r'(?:[^;"]+|"(?:[^"\\]|\\.)*"?)+', re.DOTALL)


@settings(max_examples=3000, deadline=None)
@given(st.text(alphabet=',;"<>\\ a=\t', max_size=24))
def test_split_outside_splits_as_the_item_grammar_says(value):
    assert [i for i in split_outside(value, ",", True) if i] == _LIST_ITEM.findall(value)
    assert [i for i in split_outside(value, ";", False) if i] == _PARAM_ITEM.findall(value)


def test_split_outside_keeps_separators_inside_quotes_and_angle_brackets():
    contact = '<sip:a@h;ob>;+sip.instance="<urn:x>";specs="lime,group\\"chat";expires=60, <sip:b@h>'
    assert split_outside(contact, ",", True) == [
        '<sip:a@h;ob>;+sip.instance="<urn:x>";specs="lime,group\\"chat";expires=60', " <sip:b@h>"]
    assert split_outside(';a="x;y";b', ";", False) == ["", 'a="x;y"', "b"]
    assert split_outside('"open;never closed', ";", False) == ['"open;never closed']
