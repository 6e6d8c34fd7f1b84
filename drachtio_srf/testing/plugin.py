"""pytest plugin: fixtures to test a drachtio app against a real SIP far end.

Registered through the ``pytest11`` entry point, so installing drachtio_srf is enough:

* ``drachtio_server`` / ``drachtio_server_session``: the embedded server in a subprocess on
  free loopback ports (one per test / one per session), a :class:`ServerProcess`.
* ``srf``: an :class:`~drachtio_srf.Srf` connected to ``drachtio_server``, disconnected after
  the test, which fails if a library thread is still running then. ``srf_factory(server)``
  connects more (or to the session server).
* ``sipp``: a factory starting sipp far ends (:class:`Sipp`); relative scenario files are looked
  up in ``sipp_scenario_dir`` (default: next to the test file).
* ``sip_peer``: a pure-Python SIP user agent (:class:`SipPeer`); ``sip_peer_factory`` makes more.

When a test fails, the report gains the server's log, each sipp run's SIP messages and each
peer's transcript.
"""
from __future__ import annotations

import contextlib
import os
import threading
import time
from collections.abc import Generator, Iterator
from pathlib import Path
from typing import Any

import pytest

from drachtio_srf import Srf

from .peer import SipPeer
from .server_process import ServerProcess
from .sipp import Sipp

CONNECT_TIMEOUT = 10.0
"""Seconds ``srf`` may take to connect to the server."""


def _library_threads() -> set[threading.Thread]:
    return {t for t in threading.enumerate() if t.name.startswith("drachtio")}


class SrfFactory:
    """Connects ``Srf`` instances to servers and disconnects them all at teardown."""

    def __init__(self, default: ServerProcess | None) -> None:
        self._default = default
        self.apps: list[Srf] = []
        """Every Srf this factory made, disconnected at teardown."""
        self._threads_before = _library_threads()

    def __call__(self, server: ServerProcess | None = None, **srf_kwargs: Any) -> Srf:
        """A new Srf (``Srf(**srf_kwargs)``) connected to ``server`` (default: the test's)."""
        server = server or self._default
        if server is None:
            raise ValueError("srf_factory needs a server")
        app = Srf(**srf_kwargs)
        self.apps.append(app)
        app.connect(host=server.host, port=server.admin_port, secret=server.secret).result(CONNECT_TIMEOUT)
        return app

    def close(self, join_timeout: float = 5.0) -> list[str]:
        """Disconnect every app; names of library threads still alive ``join_timeout`` s later."""
        for app in self.apps:
            app.disconnect()
        deadline = time.monotonic() + join_timeout
        left = [t for t in _library_threads() - self._threads_before]
        for t in left:
            t.join(max(0.0, deadline - time.monotonic()))
        return [t.name for t in left if t.is_alive()]


class SippFactory:
    """Starts sipp far ends for one test (``sipp(scenario, target)``) and stops them after it."""

    def __init__(self, base: Path) -> None:
        self._base = base
        self.runs: list[Sipp] = []
        """Every sipp run started for the test, stopped at teardown."""

    def __call__(self, scenario: str = "uac", target: ServerProcess | int | str | None = None, *,
                 wait_ready: bool = True, **kwargs: Any) -> Sipp:
        """Start sipp with ``scenario`` (built-in name or XML file, relative to the test file)
        against ``target`` (a server, a port on loopback or "host:port"). Without a target it is a
        UAS; the call returns once it listens (``wait_ready``). ``kwargs`` go to :class:`Sipp`."""
        if isinstance(target, ServerProcess):
            target = target.sip_port
        kwargs.setdefault("scenario_dir", self._base)
        run = Sipp(target, scenario=scenario, **kwargs)
        self.runs.append(run)
        if target is None and wait_ready:
            run.wait_listening()
        return run

    def close(self) -> None:
        """Stop every sipp run this factory started."""
        for run in self.runs:
            run.close()


class PeerFactory:
    """Makes :class:`SipPeer` instances for one test and closes them after it."""

    def __init__(self) -> None:
        self.peers: list[SipPeer] = []
        """Every peer this factory made, closed at teardown."""

    def __call__(self, **kwargs: Any) -> SipPeer:
        """A new peer on a free loopback port (``kwargs`` go to :class:`SipPeer`)."""
        peer = SipPeer(**kwargs)
        self.peers.append(peer)
        return peer

    def close(self) -> None:
        """Close every peer this factory made."""
        for peer in self.peers:
            peer.close()


def _server() -> Iterator[ServerProcess]:
    loglevel = os.environ.get("DRACHTIO_TEST_SERVER_LOGLEVEL", "info")
    server = ServerProcess(loglevel=loglevel)
    try:
        yield server
    finally:
        server.close()


@pytest.fixture
def drachtio_server() -> Iterator[ServerProcess]:
    """The embedded drachtio server on free loopback ports, for this test only."""
    yield from _server()


@pytest.fixture(scope="session")
def drachtio_server_session() -> Iterator[ServerProcess]:
    """The embedded drachtio server on free loopback ports, shared by the whole session."""
    yield from _server()


@pytest.fixture
def srf_factory(request: pytest.FixtureRequest) -> Iterator[SrfFactory]:
    """``srf_factory(server=None, **srf_kwargs)`` -> a connected Srf; all are disconnected at
    teardown, and the test fails if a library thread outlives that."""
    default = None
    if "drachtio_server" in request.fixturenames:
        default = request.getfixturevalue("drachtio_server")
    factory = SrfFactory(default)
    yield factory
    alive = factory.close()
    assert not alive, f"drachtio threads still running after disconnect: {alive}"


@pytest.fixture
def srf(drachtio_server: ServerProcess, srf_factory: SrfFactory) -> Srf:
    """An Srf connected to ``drachtio_server`` (disconnected after the test)."""
    return srf_factory(drachtio_server)


@pytest.fixture
def sipp_scenario_dir(request: pytest.FixtureRequest) -> Path:
    """Where ``sipp`` looks up relative scenario file names: the test file's directory
    (override this fixture in a conftest.py to keep scenarios elsewhere)."""
    return Path(str(request.path)).parent


@pytest.fixture
def sipp(sipp_scenario_dir: Path) -> Iterator[SippFactory]:
    """``sipp(scenario, target=None, **kwargs)`` -> a running :class:`Sipp` (stopped after the test)."""
    factory = SippFactory(sipp_scenario_dir)
    yield factory
    factory.close()


@pytest.fixture
def sip_peer_factory() -> Iterator[PeerFactory]:
    """``sip_peer_factory(**kwargs)`` -> a new :class:`SipPeer` (closed after the test)."""
    factory = PeerFactory()
    yield factory
    factory.close()


@pytest.fixture
def sip_peer(sip_peer_factory: PeerFactory) -> SipPeer:
    """A :class:`SipPeer` on a free UDP port of 127.0.0.1 (closed after the test)."""
    return sip_peer_factory()


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_makereport(item: pytest.Item, call: pytest.CallInfo[None]) -> Generator[None, Any, None]:
    """On failure, add the server log, sipp's SIP messages and the peers' transcripts."""
    outcome = yield
    rep = outcome.get_result()
    if not rep.failed or call.when not in ("call", "teardown"):
        return
    funcargs: dict[str, Any] = getattr(item, "funcargs", {})
    with contextlib.suppress(Exception):
        seen: set[int] = set()
        for name, value in funcargs.items():
            if isinstance(value, ServerProcess) and id(value) not in seen:
                seen.add(id(value))
                rep.sections.append((f"drachtio server log ({name}, tail)", value.log()[-8000:]))
            elif isinstance(value, SippFactory):
                for i, run in enumerate(value.runs):
                    rep.sections.append((f"sipp run {i + 1}: {' '.join(run.args[-3:])}", run.report()))
            elif isinstance(value, (SipPeer, PeerFactory)):
                peers = value.peers if isinstance(value, PeerFactory) else [value]
                for peer in peers:
                    if id(peer) not in seen:
                        seen.add(id(peer))
                        rep.sections.append((f"sip peer {peer.uri}", peer.transcript(full=True)))
