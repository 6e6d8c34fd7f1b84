"""A back-to-back user agent: the original's simple-b2bua.js and its README B2BUA snippet.

Every INVITE is bridged to the first of ``destinations`` that answers (``createB2BUA`` tries
them in order); when either side hangs up, the other is hung up too. A failure of every
destination is passed back to the caller (e.g. 486 Busy Here).

Run: ``python examples/b2bua.py URI [URI ...]`` (e.g. ``sip:1234@10.10.100.1``); the server
address comes from the environment (DRACHTIO_HOST, DRACHTIO_PORT, DRACHTIO_SECRET), defaults
127.0.0.1 9022 cymru.
"""
from __future__ import annotations

import logging
import os
import sys
import threading
from typing import Any

from drachtio_srf import Srf

logger = logging.getLogger("b2bua")


def install(srf: Srf, destinations: list[str]) -> None:
    """Bridge each incoming INVITE to ``destinations``."""
    if not destinations:
        raise ValueError("no far end gateway/proxy given; usage: b2bua.py uri1 uri2 ...")

    def on_invite(req: Any, res: Any) -> None:
        def connected(err: BaseException | None, result: Any = None) -> None:
            if err:
                logger.info("call failed to connect: %s", err)
                return
            uas, uac = result.uas, result.uac
            logger.info("call connected")
            # when one side terminates, hang up the other
            uas.on("destroy", lambda *a: uac.destroy())
            uac.on("destroy", lambda *a: uas.destroy())

        srf.createB2BUA(req, res, destinations, {"localSdpB": req.body}, connected)

    srf.invite(on_invite)


def main(argv: list[str]) -> None:
    if not argv:
        sys.exit("usage: b2bua.py URI [URI ...] (no far end gateway/proxy given)")
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s %(message)s")
    srf = Srf()
    install(srf, argv)
    srf.connect({"host": os.environ.get("DRACHTIO_HOST", "127.0.0.1"),
                 "port": int(os.environ.get("DRACHTIO_PORT", "9022")),
                 "secret": os.environ.get("DRACHTIO_SECRET", "cymru")})
    try:
        threading.Event().wait()
    except KeyboardInterrupt:
        srf.disconnect()


if __name__ == "__main__":
    main(sys.argv[1:])
