"""Fixtures for the end-to-end tests: the embedded server, a connected Srf, sipp far ends.

Every test drives the public API the way a user would, in one of two styles (the `style`
fixture): "callback" (JS-style option dicts with camelCase keys and a last-argument callback)
and "future" (keyword options and the returned concurrent.futures.Future).

Tests import the non-fixture helpers from ``itest_support`` (a name unique across test/).
"""
from __future__ import annotations

import uuid
from collections.abc import Callable, Iterator
from typing import Any

import pytest
from helpers import LOOPBACK, SECRET, ServerProcess
from itest_support import (  # noqa: F401 - re-exported for tests that still import from conftest
    SDP,
    STYLES,
    WAIT,
    Callback,
    FarEnd,
    camel,
    complete,
    get,
    invoke,
    no_leaked_threads,
)

from drachtio_srf import Srf
from drachtio_srf.testing.plugin import SippFactory

# -- fixtures ----------------------------------------------------------------------------------

@pytest.fixture(scope="module")
def server() -> Iterator[ServerProcess]:
    """One embedded drachtio server (subprocess, free ports) per test module."""
    proc = ServerProcess()
    yield proc
    proc.stop()


@pytest.fixture(params=STYLES)
def style(request: pytest.FixtureRequest) -> str:
    return request.param


@pytest.fixture
def srf(server: ServerProcess) -> Iterator[Srf]:
    """An Srf connected to the module's server; disconnected at teardown with no thread left."""
    with no_leaked_threads():
        app = Srf()
        errors: list[Any] = []
        app.on("error", lambda *args: errors.append(args))
        app.connect(host=LOOPBACK, port=server.admin_port, secret=SECRET).result(WAIT)
        try:
            yield app
        finally:
            app.disconnect()
        assert not errors, f"Srf emitted 'error' during the test: {errors}"


@pytest.fixture
def far_end(request: pytest.FixtureRequest, sipp: SippFactory) -> Callable[..., FarEnd]:
    """Factory: far_end(scenario, target_port=None, calls=1, extra=[], transport='u1') starts sipp
    through the plugin's `sipp` fixture (whose failure report shows sipp's SIP messages).

    With a target it is a UAC calling the server's SIP port; without, a UAS, and the factory
    returns once sipp holds its port so the app can call it at once.
    """
    server = request.getfixturevalue("server")

    def start(scenario: str, target_port: int | None = None, *, calls: int = 1,
              extra: list[str] | None = None, transport: str = "u1") -> FarEnd:
        prefix = f"itest-{uuid.uuid4().hex[:12]}"
        run = sipp(scenario, target_port, calls=calls, transport=transport,
                   extra=["-cid_str", f"{prefix}-%u"] + (extra or []))
        return FarEnd(server, run, prefix)

    return start

# On failure the plugin adds the server log (any ServerProcess fixture, `server` included) and
# every sipp run's messages to the report.
