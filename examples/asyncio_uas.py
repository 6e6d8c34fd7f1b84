"""A small asyncio UAS: ``async def`` handlers and listeners on the application's own loop.

Every INVITE is answered (``await srf.create_uas(...)``: the library's Futures are awaitable) and
the call's end is handled by an ``async def`` 'destroy' listener.  ``Srf(loop=...)`` makes the
library run coroutine handlers, listeners and callbacks on this loop; the INVITE handler's
worker waits for the coroutine, so events of one call still arrive in order.

Run: ``python examples/asyncio_uas.py [host [port [secret]]]`` (defaults 127.0.0.1 9022 cymru).
"""
from __future__ import annotations

import asyncio
import logging
import sys
from typing import Any

from drachtio_srf import Srf

logger = logging.getLogger("asyncio-uas")

SDP = ("v=0\r\no=- 1 1 IN IP4 127.0.0.1\r\ns=asyncio-uas\r\nc=IN IP4 127.0.0.1\r\nt=0 0\r\n"
       "m=audio 10000 RTP/AVP 0\r\na=rtpmap:0 PCMU/8000\r\na=sendrecv\r\n")


def install(srf: Srf, sdp: str = SDP) -> None:
    """Register the app's coroutine handlers on ``srf``."""

    @srf.invite
    async def on_invite(req: Any, res: Any) -> None:
        dialog = await srf.create_uas(req, res, local_sdp=sdp, headers={"User-Agent": "asyncio-uas"})
        logger.info("answered call %s", dialog.sip.call_id)

        async def on_destroy() -> None:       # (the BYE request is not needed here: arity rule)
            await asyncio.sleep(0)            # e.g. write a CDR with an async database client
            logger.info("call %s ended", dialog.sip.call_id)

        dialog.on("destroy", on_destroy)


async def serve(host: str, port: int, secret: str, *, stop: asyncio.Event | None = None,
                sdp: str = SDP) -> None:
    """Connect, answer calls until ``stop`` is set (forever without one), then disconnect."""
    srf = Srf(loop=asyncio.get_running_loop())
    install(srf, sdp)
    hostport = await srf.connect(host=host, port=port, secret=secret)
    logger.info("connected to %s", hostport)
    try:
        await (stop or asyncio.Event()).wait()
    finally:
        # disconnect() joins the library's threads: run it off the loop they may be waiting on
        await asyncio.to_thread(srf.disconnect)


def main(argv: list[str]) -> None:
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s %(message)s")
    host, port, secret = (argv + ["127.0.0.1", "9022", "cymru"][len(argv):])[:3]
    try:
        asyncio.run(serve(host, int(port), secret))
    except KeyboardInterrupt:
        pass


if __name__ == "__main__":
    main(sys.argv[1:])
