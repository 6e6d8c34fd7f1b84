"""Send a request: the original README's OPTIONS ping.

Once connected, the app sends OPTIONS (with a ``Subject: OPTIONS Ping`` header) to ``target``
every ``interval`` seconds and logs the status of each response.

Run: ``python examples/options_ping.py [TARGET [INTERVAL]]`` (default
``sip:tighthead.drachtio.org`` every 10 s); the server address comes from DRACHTIO_HOST,
DRACHTIO_PORT, DRACHTIO_SECRET (defaults 127.0.0.1 9022 cymru).
"""
from __future__ import annotations

import logging
import os
import sys
import threading
from typing import Any

from drachtio_srf import Srf

logger = logging.getLogger("options-ping")


class Pinger:
    """Sends OPTIONS to ``target`` every ``interval`` s from a timer thread until ``stop()``;
    ``on_status(status)`` (default: log it) sees each response status."""

    def __init__(self, srf: Srf, target: str, interval: float = 10.0,
                 on_status: Any = None) -> None:
        self.srf = srf
        self.target = target
        self.interval = interval
        self.on_status = on_status or (lambda status: logger.info("Response to OPTIONS ping: %s", status))
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="options-ping", daemon=True)

    def start(self) -> Pinger:
        self._thread.start()
        return self

    def stop(self) -> None:
        self._stop.set()
        self._thread.join(5)

    def _run(self) -> None:
        while True:                          # setInterval(optionsPing, 10000)
            self.ping()
            if self._stop.wait(self.interval):
                return

    def ping(self) -> None:
        """Send one OPTIONS (the original's optionsPing)."""
        def sent(err: BaseException | None, req: Any = None) -> None:
            if err:
                logger.error("Error sending OPTIONS: %s", err)
                return
            req.on("response", lambda res, *rest: self.on_status(res.status))

        self.srf.request(self.target, {"method": "OPTIONS", "headers": {"Subject": "OPTIONS Ping"}}, sent)


def main(argv: list[str]) -> None:
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s %(message)s")
    target = argv[0] if argv else "sip:tighthead.drachtio.org"
    interval = float(argv[1]) if len(argv) > 1 else 10.0
    srf = Srf()
    pinger = Pinger(srf, target, interval)

    def on_connect(err: BaseException | None, hostport: Any = None) -> None:
        if err:
            logger.error("Error connecting: %s", err)
            return
        logger.info("connected to server listening on %s", hostport)
        pinger.start()

    srf.on("connect", on_connect)
    srf.connect({"host": os.environ.get("DRACHTIO_HOST", "127.0.0.1"),
                 "port": int(os.environ.get("DRACHTIO_PORT", "9022")),
                 "secret": os.environ.get("DRACHTIO_SECRET", "cymru")})
    try:
        threading.Event().wait()
    except KeyboardInterrupt:
        pinger.stop()
        srf.disconnect()


if __name__ == "__main__":
    main(sys.argv[1:])
