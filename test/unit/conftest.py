"""Fixtures for the client unit tests that run against the scripted control server (client_fake).

`server` is a FakeServer on loopback; `srf` an unconnected Srf that, when the test ends, is
disconnected and checked to have left no drachtio thread running.
"""
from __future__ import annotations

import threading

import pytest
from client_fake import FakeServer

from drachtio_srf import Srf


@pytest.fixture
def server():
    s = FakeServer()
    yield s
    s.close()


@pytest.fixture
def srf(server):
    before = set(threading.enumerate())
    app = Srf()
    yield app
    app.disconnect()
    leftover = [t.name for t in set(threading.enumerate()) - before
                if t.name.startswith("drachtio") and t.is_alive()]
    assert leftover == []
