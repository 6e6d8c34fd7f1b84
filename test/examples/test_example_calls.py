"""The ported examples (simple_uac, b2bua, proxy, registrar), each driven through the embedded
server by the plugin's far ends: Python SIP peers and sipp."""
from __future__ import annotations

from examples import b2bua, proxy, registrar, simple_uac


def test_simple_uac_calls_out_then_answers_with_the_far_ends_sdp(srf, drachtio_server, sip_peer_factory):
    caller = sip_peer_factory(user="alice")
    callee = sip_peer_factory(user="drachtio", sdp=caller.sdp.replace("49170", "51000"))
    simple_uac.install(srf, callee.uri)

    call = caller.invite(drachtio_server.sip_uri)

    assert call.status == 200
    assert "m=audio 51000" in call.remote_sdp            # the far end's SDP reached the caller
    out = callee.wait_call()
    assert "m=audio 49170" in out.remote_sdp             # the caller's SDP reached the far end
    assert call.bye().status == 200
    callee.wait_for("BYE")                               # hang-up passed on


def test_b2bua_bridges_to_the_first_destination_that_answers(srf, drachtio_server, sip_peer_factory):
    caller = sip_peer_factory(user="alice")
    busy = sip_peer_factory(user="busy")
    busy.set_reply("INVITE", 486)
    callee = sip_peer_factory(user="bob")
    b2bua.install(srf, [busy.uri, callee.uri])

    call = caller.invite(drachtio_server.sip_uri)

    assert call.status == 200
    busy.wait_for("ACK")
    leg = callee.wait_call()
    assert leg.invite.body == call.invite.body           # localSdpB: the caller's offer
    assert leg.bye().status == 200                       # B hangs up ...
    caller.wait_for("BYE")                               # ... so A is hung up


def test_b2bua_passes_the_failure_back(srf, drachtio_server, sip_peer_factory):
    caller = sip_peer_factory()
    callee = sip_peer_factory()
    callee.set_reply("INVITE", 486)
    b2bua.install(srf, [callee.uri])
    assert caller.invite(drachtio_server.sip_uri).status == 486


def test_b2bua_to_a_sipp_uas(srf, drachtio_server, sip_peer, sipp):
    far = sipp("uas")                                    # returns once sipp listens
    b2bua.install(srf, [f"sip:service@127.0.0.1:{far.port}"])
    call = sip_peer.invite(drachtio_server.sip_uri)
    assert call.status == 200
    assert call.bye().status == 200                      # the caller hangs up ...
    far.expect_success()                                 # ... and sipp's uas got the BYE


def test_proxy_stays_in_the_path(srf, drachtio_server, sip_peer_factory):
    caller = sip_peer_factory(user="alice")
    callee = sip_peer_factory(user="bob")
    proxy.install(srf, [callee.uri])

    call = caller.invite(f"sip:bob@127.0.0.1:{drachtio_server.sip_port}")

    assert call.status == 200
    assert call.final.get("contact") == callee.contact    # a proxy: the callee answered directly
    assert call.route_set and str(drachtio_server.sip_port) in call.route_set[0]  # recordRoute
    leg = callee.wait_call()
    assert leg.invite.get("record-route")
    assert call.bye().status == 200                       # the BYE goes through the proxy
    callee.wait_for("BYE")


def test_registrar_routes_calls_to_registered_contacts(srf, drachtio_server, sip_peer_factory):
    bob = sip_peer_factory(user="bob")
    alice = sip_peer_factory(user="alice")
    reg = registrar.install(srf)
    aor = f"sip:bob@127.0.0.1:{drachtio_server.sip_port}"

    assert alice.invite(aor).status == 404                # not registered yet
    ok = bob.register(drachtio_server.sip_port, aor=aor, expires=60)
    assert ok.status == 200 and "expires=60" in (ok.get("contact") or "")
    assert reg.lookup("bob") == bob.uri

    call = alice.invite(aor)
    assert call.status == 200
    assert bob.wait_call().invite.call_id == call.call_id
    assert call.bye().status == 200

    assert bob.register(drachtio_server.sip_port, aor=aor, expires=0).status == 200
    assert alice.invite(aor).status == 404                # unregistered
