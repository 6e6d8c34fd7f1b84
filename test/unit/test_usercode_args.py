"""Bad calls at the public entry points fail at once with a TypeError saying what was expected."""
from __future__ import annotations

import pytest

from drachtio_srf import Srf
from drachtio_srf.request import Request
from drachtio_srf.response import Response


@pytest.fixture
def srf():
    app = Srf()
    yield app
    app.disconnect()


def test_create_b2bua_with_the_uri_first(srf):
    req, res = Request(), Response()
    with pytest.raises(TypeError, match=r"req must be the incoming Request, got str .*URI comes after"):
        srf.createB2BUA("sip:1234@10.10.100.1", req, res, {})
    with pytest.raises(TypeError, match="res must be the Response of req, got dict"):
        srf.create_b2bua(req, {}, "sip:a@b")


def test_create_uas_checks_its_arguments(srf):
    with pytest.raises(TypeError, match="create_uas.*req must be the incoming Request, got Response"):
        srf.create_uas(Response(), Request())
    with pytest.raises(TypeError, match="options must be a dict"):
        srf.create_uas(Request(), Response(), "v=0 ...")


def test_create_uac_request_proxy_connect(srf):
    with pytest.raises(TypeError, match="create_uac: uri must be a string"):
        srf.create_uac(1234, {"localSdp": "v=0"})
    with pytest.raises(TypeError, match="request: the uri must be a string"):
        srf.request(["sip:a@b"], {"method": "OPTIONS"})
    with pytest.raises(TypeError, match="proxy_request.*req must be the incoming Request, got str"):
        srf.proxy_request("sip:a@b", "sip:c@d")
    with pytest.raises(TypeError, match="connect.*opts must be a dict"):
        srf.connect("127.0.0.1:9022")
    with pytest.raises(TypeError, match="connect: port must be a number"):
        srf.connect({"host": "127.0.0.1", "port": "nine"})


def test_callbacks_and_handlers_must_be_callable(srf):
    with pytest.raises(TypeError, match="middleware must be callable"):
        srf.invite("not a handler")
    with pytest.raises(TypeError, match="must be callable"):
        srf.on("connect", {"not": "callable"})
    with pytest.raises(TypeError, match="callback must be callable"):
        srf.request("sip:a@b", {"method": "OPTIONS"}, "callback")
