"""The Node idiom ``srf.connect(cfg); srf.on('connect', fn)``: the rule is that a 'connect'
(or 'listening') listener added while connected (listening), after that event was emitted, is
called once, at once, with the same arguments; one added earlier gets the event as usual."""
from __future__ import annotations

import functools
import queue
import time
from typing import Any

import pytest
from helpers import LOOPBACK, SECRET
from itest_support import WAIT, get, no_leaked_threads

from drachtio_srf import Srf


def _cfg(server: Any) -> dict[str, Any]:
    return {"host": LOOPBACK, "port": server.admin_port, "secret": SECRET}


def _put_hostport(q: queue.Queue, err: Any, hostport: str) -> None:
    q.put(hostport)


def _settled(srf: Srf) -> None:
    """Wait until every 'connect' delivery queued so far has run: a listener added now is
    queued behind them on the same key."""
    marker: queue.Queue = queue.Queue()
    srf.on("connect", lambda *_: marker.put(True))
    get(marker, "the marker listener")


@pytest.mark.parametrize("delay", [0.0, 0.005, 0.05])
def test_listener_added_after_connect_sees_the_event_once(server, delay):
    with no_leaked_threads():
        srf = Srf()
        calls: queue.Queue = queue.Queue()
        try:
            srf.connect(_cfg(server))
            if delay:
                time.sleep(delay)         # the app doing other things between the two lines
            srf.on("connect", lambda err, hostport, *rest: calls.put((err, hostport)))
            err, hostport = get(calls, "the connect event")
            assert err is None and hostport
            _settled(srf)
            assert calls.empty(), "connect listener called twice"
        finally:
            srf.disconnect()


def test_connect_callback_and_later_listener_each_called_once(server):
    with no_leaked_threads():
        srf = Srf()
        by_cb: queue.Queue = queue.Queue()
        by_on: queue.Queue = queue.Queue()
        try:
            srf.connect(_cfg(server), lambda err, hostport: by_cb.put(hostport))
            srf.on("connect", lambda err, hostport: by_on.put(hostport))
            assert get(by_cb, "the connect callback") == get(by_on, "the later listener")
            _settled(srf)
            assert by_cb.empty() and by_on.empty()
        finally:
            srf.disconnect()


def test_once_listener_after_connect_and_listener_before(server):
    with no_leaked_threads():
        srf = Srf()
        before: queue.Queue = queue.Queue()
        after: queue.Queue = queue.Queue()
        try:
            srf.on("connect", lambda *_: before.put(1))
            srf.connect(_cfg(server)).result(WAIT)
            get(before, "the listener added before connect")
            srf.once("connect", lambda *_: after.put(1))
            get(after, "the once listener added after connect")
            _settled(srf)
            assert before.empty() and after.empty()
            assert srf.listeners("connect")[:1] != []
        finally:
            srf.disconnect()


def test_no_replay_after_disconnect(server):
    with no_leaked_threads():
        srf = Srf()
        srf.connect(_cfg(server)).result(WAIT)
        srf.disconnect()
        calls: list[Any] = []
        srf.on("connect", calls.append)
        assert calls == [] and srf._replay == {}


def test_listening_listener_added_after_listen():
    with no_leaked_threads():
        srf = Srf()
        calls: queue.Queue = queue.Queue()
        try:
            srf.listen({"port": 0, "secret": SECRET})
            srf.on("listening", lambda: calls.put("listening"))
            assert get(calls, "the listening event") == "listening"
            marker: queue.Queue = queue.Queue()
            srf.on("listening", lambda: marker.put(True))
            get(marker, "the marker")
            assert calls.empty()
        finally:
            srf.disconnect()


def test_ten_times_in_a_row_with_5ms_between_the_lines(server):
    """The figure from the report: 10 of 10 (was 0 of 10)."""
    with no_leaked_threads():
        srf = Srf()
        seen = 0
        for _ in range(10):
            calls: queue.Queue = queue.Queue()
            srf.connect(_cfg(server))
            time.sleep(0.005)
            srf.on("connect", functools.partial(_put_hostport, calls))
            assert get(calls, "the connect event")
            seen += 1
            srf.disconnect()
            srf.remove_all_listeners("connect")
        assert seen == 10
