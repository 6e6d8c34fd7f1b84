"""Connecting to the server: the right secret works, a wrong one is refused, nothing is left running."""
from __future__ import annotations

from helpers import LOOPBACK
from itest_support import WAIT, invoke, no_leaked_threads

from drachtio_srf import Srf
from drachtio_srf.errors import AuthenticationError, DrachtioError


def test_connect_reports_server_then_disconnect_stops_threads(drachtio_server, style):
    """connect gives the server's SIP host:ports; disconnect stops every library thread."""
    with no_leaked_threads():
        srf = Srf()
        result = invoke(style, srf.connect,
                        opts={"host": LOOPBACK, "port": drachtio_server.admin_port, "secret": drachtio_server.secret}).result(WAIT)
        hostport = result[0] if isinstance(result, tuple) else result
        assert f"{LOOPBACK}:{drachtio_server.sip_port}" in str(hostport)
        srf.disconnect()


def test_wrong_secret_is_refused(drachtio_server, style):
    """A wrong secret fails connect with AuthenticationError; disconnect then leaves no thread."""
    with no_leaked_threads():
        srf = Srf()
        srf.on("error", lambda *args: None)  # a refused login may also be reported as 'error'
        outcome = invoke(style, srf.connect,
                         opts={"host": LOOPBACK, "port": drachtio_server.admin_port, "secret": "wrong"})
        err = outcome.exception(WAIT)
        srf.disconnect()
    assert isinstance(err, AuthenticationError), f"expected AuthenticationError, got {err!r}"
    assert isinstance(err, DrachtioError)
