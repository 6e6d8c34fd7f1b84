"""parse_uri / stringify_uri: sip, sips and tel URIs, and what is not a URI."""
from __future__ import annotations

import pytest

from drachtio_srf import sip
from drachtio_srf.sip import AttrDict, parse_uri, stringify_uri


def test_full_sip_uri():
    u = parse_uri("sip:alice:secret@example.com:5070;transport=tcp;lr?subject=hi&priority=urgent")
    assert isinstance(u, AttrDict)
    assert u == {"family": "ipv4", "scheme": "sip", "user": "alice", "password": "secret",
                 "host": "example.com", "port": 5070, "params": {"transport": "tcp", "lr": None},
                 "headers": {"subject": "hi", "priority": "urgent"}}
    assert u.host == "example.com" and u.params.lr is None


def test_minimal_uri_port_none_and_empty_dicts():
    u = parse_uri("sip:10.0.0.1")
    assert (u.user, u.password, u.host, u.port, u.params, u.headers) == (
        None, None, "10.0.0.1", None, {}, {})
    assert u.family == "ipv4"


@pytest.mark.parametrize("text,host,port", [
    ("sip:u@192.168.1.10:5060", "192.168.1.10", 5060),
    ("sip:u@my-host_name.example.org", "my-host_name.example.org", None),
    ("sip:u@localhost", "localhost", None),
    ("sips:u@secure.example.com:5061", "secure.example.com", 5061),
])
def test_hosts(text, host, port):
    u = parse_uri(text)
    assert (u.host, u.port, u.family) == (host, port, "ipv4")


def test_ipv6_host_without_brackets_and_family():
    u = parse_uri("sip:bob@[2001:db8::10]:5062;transport=udp")
    assert (u.family, u.host, u.port, u.params) == ("ipv6", "2001:db8::10", 5062,
                                                    {"transport": "udp"})
    assert parse_uri("sip:[::1]").port is None
    assert stringify_uri(u) == "sip:bob@[2001:db8::10]:5062;transport=udp"


def test_sips_scheme_and_case():
    assert parse_uri("sips:a@b").scheme == "sips"
    assert parse_uri("SIP:a@b").scheme == "sip"


def test_user_params_stay_in_user():
    u = parse_uri("sip:+15551234567;npdi;rn=+15550000000@gw.example.com;user=phone")
    assert u.user == "+15551234567;npdi;rn=+15550000000"
    assert u.params == {"user": "phone"}


def test_uri_headers_may_contain_semicolons_and_equals():
    u = parse_uri("sip:u@h?User-to-User=5a3b;encoding=hex&baba=lala")
    assert u.headers == {"User-to-User": "5a3b;encoding=hex", "baba": "lala"}
    assert u.params == {}


@pytest.mark.parametrize("text", [
    '"Bob" <sip:bob@example.com>',
    "<sip:bob@example.com>",
    "sip:bob@exa mple.com",
    "http://example.com",
    "sip:",
    "sip:u@",
    "sip::pw@h",
    "sip:u@h:abc",
    "sip:u@[::1",
    "sip:u@[zz]",
    "sip:u@h!x",
    "",
    "   ",
])
def test_not_uris_give_none(text):
    assert parse_uri(text) is None


def test_non_string_input():
    assert parse_uri(None) is None
    assert parse_uri(42) is None
    already = {"scheme": "sip", "host": "h"}
    assert parse_uri(already) is already


@pytest.mark.parametrize("text,number,context,params", [
    ("tel:+15551234567", "+15551234567", None, {}),
    ("<tel:+1-555-123-4567>", "+1-555-123-4567", None, {}),
    ("tel:1234;phone-context=example.com", "1234", "example.com",
     {"phone-context": "example.com"}),
    ("<tel:5551234;ext=22;phone-context=+1555>", "5551234", "+1555",
     {"ext": "22", "phone-context": "+1555"}),
])
def test_tel_uris(text, number, context, params):
    u = parse_uri(text)
    assert u == {"scheme": "tel", "number": number, "context": context, "params": params}


def test_bad_tel_uris():
    assert parse_uri("tel:") is None
    assert parse_uri("tel:abc xyz") is None
    assert parse_uri("<tel:123") is None


@pytest.mark.parametrize("text", [
    "sip:alice:secret@example.com:5070;transport=tcp;lr?subject=hi&priority=urgent",
    "sip:10.0.0.1",
    "sips:u@[fe80::1]:5061;maddr=x",
    "sip:+1555;npdi@gw;user=phone",
    "sip:u@h?User-to-User=5a3b;encoding=hex&baba=lala",
    "tel:+15551234567",
    "tel:1234;phone-context=example.com",
])
def test_round_trip(text):
    assert stringify_uri(parse_uri(text)) == text


def test_stringify_strings_unchanged_and_dicts():
    assert stringify_uri("anything at all") == "anything at all"
    assert stringify_uri({"user": "u", "host": "h", "port": 5080}) == "sip:u@h:5080"
    assert stringify_uri({"scheme": "sip", "host": "::1"}) == "sip:[::1]"
    assert stringify_uri({"scheme": "tel", "number": "123", "context": "ex.com"}) == (
        "tel:123;phone-context=ex.com")
    with pytest.raises(TypeError):
        stringify_uri(42)


def test_js_aliases_exported():
    assert sip.parseUri is parse_uri
    assert sip.stringifyUri is stringify_uri
