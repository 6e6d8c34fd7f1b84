"""A port of drachtio-srf's examples/simple-uac.js: answer an incoming call by first calling out.

For each INVITE the app places a call to a far end (``destination``) offering the caller's SDP;
once that call is answered it answers the caller with the far end's SDP (a B2BUA built by hand
from ``createUAC`` and ``createUAS``). Unlike the original, which only logged, a hang-up on either
call hangs up the other, so no call is left open.

Run: ``python examples/simple_uac.py DESTINATION [host [port [secret]]]`` (e.g.
``sip:drachtio@127.0.0.1:5061``); the server address defaults to the environment
(DRACHTIO_HOST, DRACHTIO_PORT, DRACHTIO_SECRET) or 127.0.0.1 9022 cymru.
"""
from __future__ import annotations

import json
import logging
import os
import sys
import threading
from typing import Any

from drachtio_srf import Srf

logger = logging.getLogger("simple-uac")


def install(srf: Srf, destination: str) -> None:
    """Handle every INVITE: call ``destination`` first, then answer with its SDP."""

    def on_invite(req: Any, res: Any) -> None:
        def on_uac(err: BaseException | None, uac: Any = None) -> None:
            if err:
                logger.error("failed creating dialog: %s", json.dumps(getattr(err, "status", str(err))))
                res.send(getattr(err, "status", 500) or 500)
                return
            logger.debug("created uac dialog: %s", uac.id)

            def on_uas(err: BaseException | None, uas: Any = None) -> None:
                if err:
                    logger.error("failed creating dialog: %s", err)
                    uac.destroy()
                    return
                uas.on("destroy", lambda *a: (logger.debug("dialog ended"), uac.destroy()))
                uac.on("destroy", lambda *a: (logger.debug("dialog ended"), uas.destroy()))

            srf.createUAS(req, res, {"localSdp": uac.remote.sdp}, on_uas)

        srf.createUAC(destination, {"calledNumber": "drachtio", "localSdp": req.body}, on_uac)

    srf.invite(on_invite)


def server_address(argv: list[str]) -> tuple[str, int, str]:
    """(host, port, secret) of the drachtio server: argv, else the environment, else defaults."""
    defaults = [os.environ.get("DRACHTIO_HOST", "127.0.0.1"), os.environ.get("DRACHTIO_PORT", "9022"),
                os.environ.get("DRACHTIO_SECRET", "cymru")]
    host, port, secret = (argv + defaults[len(argv):])[:3]
    return host, int(port), secret


def main(argv: list[str]) -> None:
    if not argv:
        sys.exit("usage: simple_uac.py DESTINATION [host [port [secret]]]")
    logging.basicConfig(level=logging.DEBUG, format="%(asctime)s %(name)s %(message)s")
    host, port, secret = server_address(argv[1:])
    srf = Srf()
    install(srf, argv[0])
    srf.connect({"host": host, "port": port, "secret": secret})
    try:
        threading.Event().wait()
    except KeyboardInterrupt:
        srf.disconnect()


if __name__ == "__main__":
    main(sys.argv[1:])
