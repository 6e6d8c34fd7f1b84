"""A proxy: the original README's proxy snippet.

Every INVITE is proxied to ``destinations`` (tried in turn), staying in the signalling path
(``recordRoute``), following 3xx redirects and moving to the next destination when one has not
sent a provisional response within two seconds. The outcome is logged as JSON.

Run: ``python examples/proxy.py URI [URI ...]`` (e.g. ``sip.example1.com sip.example2.com``);
the server address comes from DRACHTIO_HOST, DRACHTIO_PORT, DRACHTIO_SECRET (defaults
127.0.0.1 9022 cymru).
"""
from __future__ import annotations

import json
import logging
import os
import sys
import threading
from typing import Any

from drachtio_srf import Srf

logger = logging.getLogger("proxy")


def install(srf: Srf, destinations: list[str], provisional_timeout: str = "2s") -> None:
    """Proxy each incoming INVITE to ``destinations``."""

    def on_invite(req: Any, res: Any) -> None:
        def done(err: BaseException | None, results: Any = None) -> None:
            if err:
                logger.error("proxy failed: %s", err)
                return
            # {finalStatus: 200, finalResponse: {...}, responses: [...]}
            logger.info("proxy result: %s", json.dumps({"finalStatus": results.finalStatus}))

        srf.proxyRequest(req, destinations, {
            "recordRoute": True,
            "followRedirects": True,
            "provisionalTimeout": provisional_timeout,
        }, done)

    srf.invite(on_invite)


def main(argv: list[str]) -> None:
    if not argv:
        sys.exit("usage: proxy.py URI [URI ...]")
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
