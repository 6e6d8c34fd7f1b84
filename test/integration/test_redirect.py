"""create_uac and 3xx redirects: follow_redirects, keep_uri_on_redirect, and not following."""
from __future__ import annotations

import pytest
from helpers import LOOPBACK
from itest_support import SDP, WAIT, invoke

from drachtio_srf import SipError


@pytest.mark.parametrize("keep_uri", [False, True])
def test_302_is_followed_to_the_contact(srf, far_end, style, keep_uri):
    """With follow_redirects the INVITE is re-sent to the 302's Contact and the second far end
    answers; with keep_uri_on_redirect the request-URI stays and the Contact is the next hop."""
    second = far_end("uas-answer.xml")
    first = far_end("uas-redirect-302.xml", extra=["-key", "redirect_port", str(second.port)])
    uri = f"sip:redirectme@{LOOPBACK}:{first.port}"
    opts = {"local_sdp": SDP, "follow_redirects": True}
    if keep_uri:
        opts["keep_uri_on_redirect"] = True
    dialog = invoke(style, srf.create_uac, uri, opts=opts).result(WAIT)
    first.expect_success()
    assert dialog.connected and "s=farend-answer" in dialog.remote.sdp
    expected = uri if keep_uri else f"sip:second@{LOOPBACK}:{second.port}"
    assert dialog.req.uri == expected
    invoke(style, dialog.destroy).result(WAIT)
    second.expect_success()


def test_302_not_followed_fails_with_sip_error(srf, far_end, style):
    """Without follow_redirects a 302 fails create_uac with SipError(302) carrying the Contact."""
    first = far_end("uas-redirect-302.xml", extra=["-key", "redirect_port", "5999"])
    outcome = invoke(style, srf.create_uac, f"sip:redirectme@{LOOPBACK}:{first.port}",
                     opts={"local_sdp": SDP})
    err = outcome.exception(WAIT)
    first.expect_success()
    assert isinstance(err, SipError), f"expected SipError, got {err!r}"
    assert err.status == 302
    assert err.res.get_parsed_header("Contact")[0].uri == f"sip:second@{LOOPBACK}:5999"
