"""A registrar and location service: REGISTER stores contacts, INVITE reaches them.

REGISTER binds the address of record (the To URI) to the Contact for ``expires`` seconds (answer
200 with the binding and its expiry); ``Expires: 0`` removes it. An INVITE for a registered AoR
(matched by user part) is proxied to its contact; an unknown one gets 404. Bindings live in
memory, guarded by a lock (handlers run on worker threads).

Run: ``python examples/registrar.py``; the server address comes from DRACHTIO_HOST,
DRACHTIO_PORT, DRACHTIO_SECRET (defaults 127.0.0.1 9022 cymru).
"""
from __future__ import annotations

import logging
import os
import threading
import time
from typing import Any

from drachtio_srf import Srf
from drachtio_srf.sip import parse_uri

logger = logging.getLogger("registrar")

MAX_EXPIRES = 3600


class Registrar:
    """Bindings of users to contact URIs, with expiry."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._bindings: dict[str, tuple[str, float]] = {}

    def add(self, user: str, contact: str, expires: int) -> None:
        with self._lock:
            self._bindings[user] = (contact, time.monotonic() + expires)

    def remove(self, user: str) -> None:
        with self._lock:
            self._bindings.pop(user, None)

    def lookup(self, user: str) -> str | None:
        """The contact registered for ``user``, or None (also once it expired)."""
        with self._lock:
            found = self._bindings.get(user)
            if found is None or found[1] < time.monotonic():
                self._bindings.pop(user, None)
                return None
            return found[0]


def _user(uri: str | None) -> str:
    parsed = parse_uri(uri or "") or {}
    return str(parsed.get("user") or "")


def install(srf: Srf, registrar: Registrar | None = None) -> Registrar:
    """Handle REGISTER and INVITE on ``srf``; returns the registrar (for inspection)."""
    reg = registrar or Registrar()

    def on_register(req: Any, res: Any) -> None:
        info = req.registration
        user = _user(info["aor"])
        if not user:
            res.send(400)
            return
        if info["type"] == "unregister":
            reg.remove(user)
            logger.info("unregistered %s", user)
            res.send(200)
            return
        contacts = info["contact"]
        if not contacts or contacts == "*":
            res.send(400)
            return
        contact = contacts[0]["uri"]
        expires = min(info["expires"] if info["expires"] is not None else MAX_EXPIRES, MAX_EXPIRES)
        reg.add(user, contact, expires)
        logger.info("registered %s at %s for %ss", user, contact, expires)
        res.send(200, headers={"Contact": f"<{contact}>;expires={expires}"})

    def on_invite(req: Any, res: Any) -> None:
        contact = reg.lookup(_user(req.uri))
        if contact is None:
            res.send(404)
            return
        srf.proxyRequest(req, contact, {"recordRoute": True}, lambda err, *rest: err and logger.error(
            "proxying to %s failed: %s", contact, err))

    srf.register(on_register)
    srf.invite(on_invite)
    return reg


def main() -> None:
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s %(message)s")
    srf = Srf()
    install(srf)
    srf.connect({"host": os.environ.get("DRACHTIO_HOST", "127.0.0.1"),
                 "port": int(os.environ.get("DRACHTIO_PORT", "9022")),
                 "secret": os.environ.get("DRACHTIO_SECRET", "cymru")})
    try:
        threading.Event().wait()
    except KeyboardInterrupt:
        srf.disconnect()


if __name__ == "__main__":
    main()
