"""A line-by-line port of drachtio-srf's examples/simple-uas.js, keeping its JS names.

It answers every INVITE with the caller's own SDP (connection address blanked to 0.0.0.0) and a
User-Agent header, puts the call on hold 2 s later, takes it off hold 2 s after that, and logs
when the call ends.

The original was written against the pre-5.x API; the only renames are the ones drachtio-srf
itself made: ``createUasDialog`` -> ``createUAS``, ``modifySession`` -> ``modify``, and the
separate ``drachtio()`` app (``app.invite``, ``app.connect``, ``app.use(srf.dialog())``) folded
into ``Srf``. JS ``setTimeout`` becomes a timer thread; ``debug(...)`` becomes a logger.

Run: ``python examples/simple_uas.py [host [port [secret]]]``; the defaults come from the
environment (DRACHTIO_HOST, DRACHTIO_PORT, DRACHTIO_SECRET) or are 127.0.0.1 9022 cymru, the
drachtio server's own defaults (the original dialled 8022, the port of old drachtio servers).
"""
from __future__ import annotations

import json
import logging
import os
import re
import sys
import threading
from collections.abc import Callable
from typing import Any

from drachtio_srf import Srf

debug = logging.getLogger("drachtio-srf").debug  # var debug = require('debug')('drachtio-srf')

HOLD_AFTER = 2.0    # setTimeout(..., 2000) before the hold
UNHOLD_AFTER = 2.0  # setTimeout(..., 2000) before the unhold


def setTimeout(fn: Callable[[], Any], seconds: float) -> threading.Timer:
    timer = threading.Timer(seconds, fn)
    timer.name = "simple-uas-timer"
    timer.daemon = True
    timer.start()
    return timer


def install(srf: Srf, hold_after: float = HOLD_AFTER, unhold_after: float = UNHOLD_AFTER) -> None:
    """Register the INVITE handler on `srf` (the body of simple-uas.js before app.connect)."""

    def on_invite(req: Any, res: Any) -> None:                    # app.invite( function( req, res) {

        opts = {                                                  # var opts = {
            # JS /^c=IN IP4 .*$/m stops before "\r"; in Python "." and "$" do not, hence [^\r\n]*
            "localSdp": re.sub(r"^c=IN IP4 [^\r\n]*", "c=IN IP4 0.0.0.0", req.body, flags=re.MULTILINE),
            "headers": {
                "User-Agent": "simple-uas",
            },
        }

        timers: list[threading.Timer] = []

        def on_dialog(err: BaseException | None, dialog: Any = None) -> None:  # function(err, dialog) {
            if err:
                raise err

            debug("dialog: %s", json.dumps(dialog.toJSON(), default=str))

            def hold() -> None:
                def on_held(err: BaseException | None, *_: Any) -> None:
                    if err:
                        raise err
                    debug("successfully put dialog on hold")

                    def unhold() -> None:
                        def on_unheld(err: BaseException | None, *_: Any) -> None:
                            if err:
                                raise err
                            debug("successfully took dialog off hold")
                        dialog.modify("unhold", on_unheld)
                    timers.append(setTimeout(unhold, unhold_after))
                dialog.modify("hold", on_held)
            timers.append(setTimeout(hold, hold_after))

            def on_destroy(*args: Any) -> None:                   # destroy.bind( dialog )
                for timer in timers:   # unlike the original, no hold is tried on an ended call
                    timer.cancel()
                destroy(dialog)
            dialog.on("destroy", on_destroy)

        srf.createUAS(req, res, opts, on_dialog)                  # srf.createUasDialog(...)

    srf.invite(on_invite)


def destroy(dialog: Any) -> None:
    debug("dialog ended")


def server_address(argv: list[str]) -> tuple[str, int, str]:
    """(host, port, secret) of the drachtio server: argv, else the environment, else defaults."""
    defaults = [os.environ.get("DRACHTIO_HOST", "127.0.0.1"), os.environ.get("DRACHTIO_PORT", "9022"),
                os.environ.get("DRACHTIO_SECRET", "cymru")]
    host, port, secret = (argv + defaults[len(argv):])[:3]
    return host, int(port), secret


def main(argv: list[str]) -> None:
    logging.basicConfig(level=logging.DEBUG, format="%(asctime)s %(name)s %(message)s")
    host, port, secret = server_address(argv)
    srf = Srf()
    install(srf)
    srf.on("connect", lambda err, hostport=None, *rest: logging.getLogger("simple-uas").info(
        "connected to drachtio server at %s:%s (it listens for SIP on %s)", host, port, hostport))
    srf.connect({
        "host": host,
        "port": port,
        "secret": secret,
    })
    try:
        threading.Event().wait()  # a Node process keeps running while it has a connection
    except KeyboardInterrupt:
        srf.disconnect()


if __name__ == "__main__":
    main(sys.argv[1:])
