"""``async def`` handlers, listeners and callbacks, and awaitable Futures, with real calls."""
from __future__ import annotations

import asyncio
import queue
import threading
import time
from typing import Any

from helpers import LOOPBACK, SECRET
from itest_support import SDP, WAIT, get, no_leaked_threads

from drachtio_srf import Srf


def test_async_handler_on_the_library_loop_with_ordered_async_listeners(server, far_end):
    """No loop given: coroutines run on the library's 'drachtio-asyncio' thread, which
    disconnect() stops; an async 'info' listener that awaits still sees a dialog's INFOs one at
    a time, in CSeq order (the worker waits for each coroutine)."""
    order: list[int] = []
    overlap: list[int] = []
    active = {"n": 0}
    threads: set[str] = set()
    ended: queue.Queue = queue.Queue()
    failures: queue.Queue = queue.Queue()

    async def on_info(req: Any, res: Any) -> None:
        cseq = int(req.get("CSeq").split()[0])
        active["n"] += 1
        if active["n"] > 1:
            overlap.append(cseq)
        order.append(cseq)
        threads.add(threading.current_thread().name)
        await asyncio.sleep(0.02 if cseq == 2 else 0)    # the first one takes longest
        active["n"] -= 1
        res.send(200)

    with no_leaked_threads():
        srf = Srf()
        srf.connect(host=LOOPBACK, port=server.admin_port, secret=SECRET).result(WAIT)
        try:
            @srf.invite
            async def on_invite(req: Any, res: Any) -> None:
                try:
                    dialog = await srf.create_uas(req, res, local_sdp=SDP)
                except Exception as exc:  # noqa: BLE001 - reported by the test
                    failures.put(exc)
                    return
                dialog.on("info", on_info)
                dialog.on("destroy", lambda: ended.put(dialog))

            sipp = far_end("uac-info-burst.xml", server.sip_port)
            get(ended, "the INFO burst call to end")
            sipp.expect_success()
            assert failures.empty(), failures.get()
            assert order == [2, 3, 4, 5] and not overlap
            assert threads == {"drachtio-asyncio"}
        finally:
            srf.disconnect()
    assert not any(t.name == "drachtio-asyncio" for t in threading.enumerate())


def test_listener_attached_after_await_gets_the_info_sent_right_after_ack(server, far_end):
    """Rule 5 with await: the INFO sipp sends right after its ACK reaches the listener the
    coroutine attaches after ``await srf.create_uas(...)`` and before its next ``await`` (not
    the default 200), even when it does blocking work in between."""
    loop = asyncio.new_event_loop()
    t = threading.Thread(target=loop.run_forever, name="app-loop", daemon=True)
    t.start()
    got: queue.Queue = queue.Queue()
    ended: queue.Queue = queue.Queue()
    try:
        with no_leaked_threads():
            srf = Srf(loop=loop)
            assert srf.loop is loop
            srf.connect(host=LOOPBACK, port=server.admin_port, secret=SECRET).result(WAIT)
            try:
                async def on_info(req: Any, res: Any) -> None:
                    got.put(threading.current_thread().name)
                    res.send(200, headers={"X-Listener": "yes"})

                async def on_invite(req: Any, res: Any) -> None:
                    dialog = await srf.create_uas(req, res, local_sdp=SDP)
                    time.sleep(0.05)  # noqa: ASYNC251 - blocking work first: widens the window
                    dialog.on("info", on_info)
                    dialog.on("destroy", lambda *_: ended.put(True))

                srf.invite(on_invite)
                sipp = far_end("uac-info-after-ack.xml", server.sip_port)
                assert get(got, "the INFO at the app's listener") == "app-loop"
                get(ended, "the call to end")
                sipp.expect_success()
            finally:
                srf.disconnect()
    finally:
        loop.call_soon_threadsafe(loop.stop)
        t.join(WAIT)
        loop.close()


def test_async_callback_and_awaiting_a_failed_future(server, far_end):
    """An ``async def`` callback runs (callback style), and awaiting a Future that fails raises
    the library's error in the coroutine."""
    with no_leaked_threads():
        srf = Srf()
        srf.connect(host=LOOPBACK, port=server.admin_port, secret=SECRET).result(WAIT)
        results: queue.Queue = queue.Queue()
        try:
            sipp = far_end("uas-busy.xml")
            uri = f"sip:busy@{LOOPBACK}:{sipp.port}"

            async def cb(err: Any, dialog: Any = None) -> None:
                await asyncio.sleep(0)
                results.put(("callback", getattr(err, "status", err)))

            srf.create_uac(uri, {"localSdp": SDP}, cb)
            assert get(results, "the async callback") == ("callback", 486)
            sipp.expect_success()

            sipp = far_end("uas-busy.xml")
            uri = f"sip:busy@{LOOPBACK}:{sipp.port}"

            async def place() -> Any:
                try:
                    await srf.create_uac(uri, local_sdp=SDP)
                except Exception as exc:  # noqa: BLE001
                    return exc
                return None

            err = asyncio.run(place())
            assert getattr(err, "status", None) == 486, err
            sipp.expect_success()
        finally:
            srf.disconnect()


def test_wrap_future_still_works(server):
    with no_leaked_threads():
        srf = Srf()
        try:
            async def connect() -> Any:
                return await asyncio.wrap_future(
                    srf.connect(host=LOOPBACK, port=server.admin_port, secret=SECRET))
            assert asyncio.run(connect())
        finally:
            srf.disconnect()
