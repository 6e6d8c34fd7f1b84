"""The SDP edits behind hold/unhold, refresh detection and 3pcc."""
from __future__ import annotations

from drachtio_srf import sdp

OFFER = ("v=0\r\no=- 100 1 IN IP4 10.0.0.1\r\ns=-\r\nc=IN IP4 10.0.0.1\r\nt=0 0\r\n"
         "m=audio 5000 RTP/AVP 0\r\na=sendrecv\r\n")


def test_refresh_is_same_origin_version():
    assert sdp.is_refresh(OFFER, OFFER)
    assert not sdp.is_refresh(OFFER, OFFER.replace("o=- 100 1", "o=- 100 2"))


def test_hold_and_unhold_detection_ignore_origin():
    held = OFFER.replace("a=sendrecv", "a=sendonly").replace("o=- 100 1", "o=- 100 2")
    assert sdp.is_hold(OFFER, held)
    assert not sdp.is_hold(OFFER, OFFER)
    assert sdp.is_unhold(held, OFFER)


def test_hold_offer_and_answers():
    assert "a=inactive" in sdp.hold_offer(OFFER)
    assert sdp.unhold_offer(sdp.hold_offer(OFFER)) == OFFER
    assert "a=recvonly" in sdp.hold_answer(OFFER)
    assert sdp.unhold_answer(sdp.hold_answer(OFFER)) == OFFER


def test_black_hole_adds_session_level_recvonly():
    out = sdp.black_hole(OFFER)
    session, media = out.split("m=audio", 1)
    assert "a=recvonly\r\n" in session and session.index("a=recvonly") > session.index("t=0 0")
    assert "a=sendrecv" in media
