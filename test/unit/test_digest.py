"""Digest client: RFC 2617 3.5 and RFC 7616 3.9.1 vectors, challenge parsing, header building."""
from __future__ import annotations

import re

import pytest

from drachtio_srf.digest import (
    Challenge,
    DigestError,
    NonceCounter,
    build_authorization,
    choose_challenge,
    compute_response,
    parse_challenges,
)
from drachtio_srf.sip import SipMessage
from drachtio_srf.sip.headers import parse_auth_headers
from drachtio_srf.uac_auth import credentials_from, next_hop_is_ip

RFC7616_CHALLENGE = ('Digest realm="http-auth@example.org", qop="auth, auth-int", algorithm=SHA-256, '
                     'nonce="7ypf/xlj9XXwfDPEoM4URrv/xwf94BcCAzFZH4GiTo0v", '
                     'opaque="FQhe/qaU925kfnzjCev0ciny7QMkPqMAFRtzCUYo5tdS", '
                     'Digest realm="http-auth@example.org", qop="auth, auth-int", algorithm=MD5, '
                     'nonce="7ypf/xlj9XXwfDPEoM4URrv/xwf94BcCAzFZH4GiTo0v", '
                     'opaque="FQhe/qaU925kfnzjCev0ciny7QMkPqMAFRtzCUYo5tdS"')
RFC7616_CNONCE = "f2/wE4q74E6zIJEtWaHKaf5wv/H5QzzpXusqGemxURZJ"


def params_of(header_value: str) -> dict[str, str]:
    (item,) = parse_auth_headers([header_value])
    return dict(item)


def test_rfc2617_section_3_5_vector():
    challenge = parse_challenges('Digest realm="testrealm@host.com", qop="auth,auth-int", '
                                 'nonce="dcd98b7102dd2f0e8b11d0f600bfb0c093", '
                                 'opaque="5ccc069c403ebaf9f0171e9517f40e41"')[0]
    assert challenge.qop == ("auth", "auth-int")
    value = build_authorization(challenge, username="Mufasa", password="Circle Of Life", method="GET",
                                uri="/dir/index.html", nc=1, cnonce="0a4f113b")
    p = params_of(value)
    assert p["scheme"] == "Digest"
    assert p["response"] == "6629fae49393a05397450978507c4ef1"
    assert p["qop"] == "auth" and p["nc"] == "00000001" and p["cnonce"] == "0a4f113b"
    assert p["opaque"] == "5ccc069c403ebaf9f0171e9517f40e41"
    assert p["realm"] == "testrealm@host.com" and p["uri"] == "/dir/index.html"
    assert p["username"] == "Mufasa" and p["algorithm"] == "MD5"
    # qop and nc are tokens, never quoted
    assert re.search(r"qop=auth(,|$)", value) and re.search(r"nc=00000001(,|$)", value)


@pytest.mark.parametrize(("algorithm", "expected"), [
    ("MD5", "8ca523f5e9506fed4657c9700eebdbec"),
    ("SHA-256", "753927fa0e85d155564e2e272a28d1802ca10daf4496794697cf8db5856cb6c1"),
])
def test_rfc7616_section_3_9_1_vectors(algorithm, expected):
    challenges = parse_challenges(RFC7616_CHALLENGE)
    assert [c.algorithm for c in challenges] == ["SHA-256", "MD5"]
    challenge = next(c for c in challenges if c.algorithm == algorithm)
    value = build_authorization(challenge, username="Mufasa", password="Circle of Life", method="GET",
                                uri="/dir/index.html", nc=1, cnonce=RFC7616_CNONCE)
    p = params_of(value)
    assert p["response"] == expected
    assert p["algorithm"] == algorithm and p["qop"] == "auth"
    assert p["opaque"] == "FQhe/qaU925kfnzjCev0ciny7QMkPqMAFRtzCUYo5tdS"


def test_strongest_challenge_is_chosen():
    assert choose_challenge(parse_challenges(RFC7616_CHALLENGE)).algorithm == "SHA-256"
    md5_first = parse_challenges('Digest realm="r", nonce="n1", algorithm=MD5, '
                                 'Digest realm="r", nonce="n2", algorithm=SHA-256-sess')
    assert choose_challenge(md5_first).nonce == "n2"


def test_challenge_parsed_from_a_sip_response_with_commas_in_quotes():
    msg = SipMessage('SIP/2.0 407 Proxy Authentication Required\r\n'
                     'Proxy-Authenticate: Digest realm="a, b", nonce="x,y", qop="auth-int,auth", '
                     'stale=TRUE, opaque="o"\r\nContent-Length: 0\r\n\r\n')
    (c,) = parse_challenges(msg.get_all("Proxy-Authenticate"))
    assert (c.realm, c.nonce, c.qop, c.stale, c.opaque) == ("a, b", "x,y", ("auth-int", "auth"), True, "o")
    assert c.algorithm == "MD5" and not c.algorithm_given
    assert params_of(build_authorization(c, username="u", password="p", method="INVITE",
                                         uri="sip:b@h"))["qop"] == "auth"


def test_no_qop_uses_rfc2069_response():
    c = parse_challenges('Digest realm="r", nonce="abc"')[0]
    p = params_of(build_authorization(c, username="u", password="p", method="INVITE", uri="sip:x@y"))
    assert "qop" not in p and "nc" not in p and "cnonce" not in p
    assert p["response"] == compute_response(algorithm="MD5", username="u", password="p", realm="r",
                                             nonce="abc", method="INVITE", uri="sip:x@y")


def test_md5_sess_and_auth_int_match_the_formulas():
    import hashlib

    def md5(s: str) -> str:
        return hashlib.md5(s.encode()).hexdigest()
    c = parse_challenges('Digest realm="r", nonce="N", algorithm=MD5-sess, qop="auth-int"')[0]
    p = params_of(build_authorization(c, username="u", password="p", method="MESSAGE", uri="sip:x@y",
                                      body="hello", nc=3, cnonce="C"))
    ha1 = md5(f"{md5('u:r:p')}:N:C")
    ha2 = md5(f"MESSAGE:sip:x@y:{md5('hello')}")
    assert p["response"] == md5(f"{ha1}:N:00000003:C:auth-int:{ha2}")
    assert p["algorithm"] == "MD5-sess" and p["nc"] == "00000003" and p["qop"] == "auth-int"


def test_userhash_hides_the_username():
    import hashlib
    c = parse_challenges('Digest realm="r", nonce="N", algorithm=SHA-256, userhash=true, qop="auth"')[0]
    p = params_of(build_authorization(c, username="u", password="p", method="INVITE", uri="sip:x@y"))
    assert p["username"] == hashlib.sha256(b"u:r").hexdigest() and p["userhash"] == "true"


def test_quotes_in_values_are_escaped():
    c = Challenge(realm='a"b', nonce="n")
    value = build_authorization(c, username="x", password="p", method="INVITE", uri="sip:y@z")
    assert 'realm="a\\"b"' in value


@pytest.mark.parametrize("value", ['Basic realm="r"', 'Digest realm="r"',
                                   'Digest realm="r", nonce="n", algorithm=SHA-1',
                                   'Digest realm="r", nonce="n", qop="auth-conf"'])
def test_unanswerable_challenges_raise_digest_error(value):
    with pytest.raises(DigestError):
        choose_challenge(parse_challenges(value))


def test_nonce_counter_counts_per_nonce():
    counter = NonceCounter(max_entries=2)
    assert [counter.next("r", "a"), counter.next("r", "a"), counter.next("r", "b")] == [1, 2, 1]
    assert counter.next("r", "a") == 3
    counter.next("r", "c")         # evicts the least recently used ("b")
    assert counter.next("r", "b") == 1


def test_credentials_forms():
    assert credentials_from({"username": "u", "password": "p"}).username == "u"
    assert credentials_from(("u", "p")).password == "p"
    with pytest.raises(TypeError):
        credentials_from("u:p")
    with pytest.raises(TypeError):
        credentials_from({"username": "u"})


@pytest.mark.parametrize(("proxy", "uri", "is_ip"), [
    (None, "sip:bob@10.0.0.1:5060", True),
    (None, "sip:10.0.0.1", True),
    (None, "sip:bob@example.com", False),
    ("sip:proxy.example.com;transport=tcp", "sip:bob@10.0.0.1", False),
    ("10.1.1.1:5070", "sip:bob@example.com", True),
    (None, "sip:bob@[::1]:5060", True),
])
def test_next_hop_ip_literal_detection(proxy, uri, is_ip):
    assert next_hop_is_ip(proxy, uri) is is_ip
