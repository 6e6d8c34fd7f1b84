"""Wire trace: every control frame and SIP message, readable, switched on without code.

Four loggers carry the trace, all at DEBUG, one record per frame or message (direction
``recv``/``send``, transport and peer, byte count, then a newline and the full text):

* :data:`CONTROL` (``drachtio_srf.trace.control``): control-protocol frames of the client
  (:class:`drachtio_srf.transport.Connection`), as read and written.
* :data:`SIP` (``drachtio_srf.trace.sip``): the SIP messages those frames carry, as they
  crossed the network at the server (requests and responses received, and the messages the
  server reports having sent).
* :data:`SERVER_CONTROL` / :data:`SERVER_SIP` (``drachtio_srf.server.trace.*``): the same
  seen from the embedded server (frames on its admin port, SIP on its SIP transports).

They are ordinary :mod:`logging` loggers: configure them like any other, or call
:func:`enable`, or set an environment variable read by :func:`configure_from_env` when the
package is imported:

* ``DRACHTIO_DEBUG=1`` (also ``true``, ``all``, ``*``): every trace logger;
  ``DRACHTIO_DEBUG=control,sip`` a comma list of parts (see :data:`PARTS`; any other name
  ``x`` turns on the library logger ``drachtio_srf.x`` at DEBUG).
* ``DEBUG=drachtio:*`` as for the Node library (the ``debug`` package's syntax: comma or
  space separated patterns, ``-pattern`` excludes); ``drachtio:agent`` is the client's frames
  and SIP, ``drachtio:server`` the embedded server's.

When nothing is set nothing changes and the trace costs one ``isEnabledFor`` check per frame.
"""
from __future__ import annotations

import fnmatch
import logging
import os
import sys
from collections.abc import Iterable, Mapping
from typing import TextIO

from . import wire

__all__ = [
    "CONTROL",
    "PARTS",
    "SERVER_CONTROL",
    "SERVER_SIP",
    "SIP",
    "client_frame",
    "configure_from_env",
    "enable",
    "format_record",
    "parts_from_env",
]

CONTROL = "drachtio_srf.trace.control"
"""Logger of the client's control frames."""
SIP = "drachtio_srf.trace.sip"
"""Logger of the SIP messages carried by the client's frames."""
SERVER_CONTROL = "drachtio_srf.server.trace.control"
"""Logger of the control frames on the embedded server's admin port."""
SERVER_SIP = "drachtio_srf.server.trace.sip"
"""Logger of the SIP messages on the embedded server's SIP transports."""

PARTS: Mapping[str, tuple[str, ...]] = {
    "all": (CONTROL, SIP, SERVER_CONTROL, SERVER_SIP),
    "control": (CONTROL,),
    "sip": (SIP,),
    "client": (CONTROL, SIP),
    "agent": (CONTROL, SIP),
    "server": (SERVER_CONTROL, SERVER_SIP),
    "server.control": (SERVER_CONTROL,),
    "server.sip": (SERVER_SIP,),
}
"""Part name (for ``DRACHTIO_DEBUG`` and :func:`enable`) -> the logger names it turns on."""

_TRUE = {"1", "true", "yes", "on", "all", "*"}
_FALSE = {"", "0", "false", "no", "off", "none"}
_FORMAT = "%(asctime)s %(name)s %(message)s"


class _FallbackHandler(logging.StreamHandler):
    """Writes to stderr only when no other handler would see the record.

    Installed by :func:`enable` on each trace logger, so that a trace turned on from the
    environment at import time shows up even in an app that never configures logging, and is
    not printed twice once the app (later) adds its own handlers, e.g. ``logging.basicConfig``.
    """

    def __init__(self, stream: TextIO | None = None) -> None:
        super().__init__(stream)
        self._fixed_stream = stream is not None
        self.setFormatter(logging.Formatter(_FORMAT))

    def emit(self, record: logging.LogRecord) -> None:
        """Write the record unless another handler on the logger's chain also gets it."""
        logger: logging.Logger | None = logging.getLogger(record.name)
        while logger is not None:
            if any(h is not self and not isinstance(h, _FallbackHandler) for h in logger.handlers):
                return
            if not logger.propagate:
                break
            logger = logger.parent
        if not self._fixed_stream:
            self.stream = sys.stderr  # follow redirections (pytest's capture, for one)
        super().emit(record)


def _logger_names(parts: Iterable[str]) -> list[str]:
    names: list[str] = []
    for part in parts:
        part = part.strip().lower()
        if not part:
            continue
        if part in PARTS:
            chosen: Iterable[str] = PARTS[part]
        elif part.startswith("drachtio_srf"):
            chosen = (part,)
        else:
            chosen = (f"drachtio_srf.{part}",)
        names.extend(n for n in chosen if n not in names)
    return names


def enable(parts: Iterable[str] | str = "all", *, stream: TextIO | None = None,
           level: int = logging.DEBUG) -> list[str]:
    """Turn on the trace loggers of ``parts`` (names of :data:`PARTS`, default all).

    Sets each logger to ``level`` and gives it a stderr handler (or ``stream``) that writes only
    while the app has configured no handler of its own on the way to the root logger; with one
    (e.g. after ``logging.basicConfig``) the records go there instead. A part not in
    :data:`PARTS` names a library logger (``dialog`` -> ``drachtio_srf.dialog``). Returns the
    logger names turned on. Calling it again does not add handlers twice.
    """
    if isinstance(parts, str):
        parts = parts.split(",")
    names = _logger_names(parts)
    for name in names:
        logger = logging.getLogger(name)
        logger.setLevel(level)
        if not any(isinstance(h, _FallbackHandler) for h in logger.handlers):
            logger.addHandler(_FallbackHandler(stream))
    return names


def _debug_patterns(value: str) -> list[str]:
    """The ``DEBUG`` namespaces (``debug`` package syntax) mapped onto our part names."""
    include: list[str] = []
    exclude: list[str] = []
    for token in value.replace(",", " ").split():
        target = exclude if token.startswith("-") else include
        target.append(token.lstrip("-"))
    namespaces = ["drachtio:agent", "drachtio:server", "drachtio:server:control",
                  "drachtio:server:sip", "drachtio:sip", "drachtio:control"]
    on: set[str] = set()
    for pattern in include:
        if not pattern.startswith("drachtio") and pattern != "*":
            continue
        matched = [ns for ns in namespaces if fnmatch.fnmatchcase(ns, pattern)]
        if not matched and "*" not in pattern and pattern.startswith("drachtio:"):
            on.add(pattern.split(":", 1)[1].replace(":", "."))   # drachtio:dialog -> dialog
        on.update(ns for ns in matched)
    for pattern in exclude:
        on = {ns for ns in on if not fnmatch.fnmatchcase(ns, pattern)}
    parts: list[str] = []
    for ns in sorted(on):
        name = ns.split(":", 1)[1].replace(":", ".") if ns.startswith("drachtio:") else ns
        parts.append(name)
    # drachtio:server matched by drachtio:* already covers server.control and server.sip
    return parts


def parts_from_env(environ: Mapping[str, str] | None = None) -> list[str]:
    """The trace parts ``DRACHTIO_DEBUG`` and ``DEBUG`` ask for (empty when neither does)."""
    env = os.environ if environ is None else environ
    parts: list[str] = []
    value = env.get("DRACHTIO_DEBUG", "").strip()
    if value.lower() in _TRUE:
        parts.append("all")
    elif value.lower() not in _FALSE:
        parts.extend(p.strip() for p in value.split(",") if p.strip())
    debug = env.get("DEBUG", "")
    if "drachtio" in debug or debug.strip() == "*":
        parts.extend(p for p in _debug_patterns(debug) if p not in parts)
    return parts


def configure_from_env(environ: Mapping[str, str] | None = None, *,
                       stream: TextIO | None = None) -> list[str]:
    """Turn on what ``DRACHTIO_DEBUG`` / ``DEBUG`` ask for; returns the logger names turned on.

    Called when :mod:`drachtio_srf` is imported and by ``python -m drachtio_srf.server``;
    does nothing (and costs a dictionary lookup or two) when neither variable is set.
    """
    parts = parts_from_env(environ)
    if not parts:
        return []
    return enable(parts, stream=stream)


def format_record(direction: str, transport: str, peer: str, nbytes: int, text: str) -> str:
    """The trace message layout: ``recv udp 127.0.0.1:5060 312 bytes`` + newline + text."""
    return f"{direction} {transport} {peer} {nbytes} bytes\n{text}"


_control_log = logging.getLogger(CONTROL)
_sip_log = logging.getLogger(SIP)


def client_frame(direction: str, transport: str, peer: str, payload: str) -> None:
    """Trace one control payload of the client: the frame on :data:`CONTROL`, and on
    :data:`SIP` the SIP message it reports as received from or sent to the network.

    ``direction`` is ``recv`` or ``send``, ``transport``/``peer`` name the control connection
    (``tcp``, ``127.0.0.1:9022``). Callers guard the call with ``isEnabledFor(DEBUG)`` on either
    logger; a payload that does not parse is still traced on :data:`CONTROL`.
    """
    if _control_log.isEnabledFor(logging.DEBUG):
        _control_log.debug("%s", format_record(direction, transport, peer,
                                                len(payload.encode("utf-8")), payload))
    if direction != "recv" or not _sip_log.isEnabledFor(logging.DEBUG):
        return
    try:
        frame = wire.parse(payload)
        if not frame.sip:
            return
        if frame.type == "sip":
            meta = wire.SipMeta.from_sip_frame(frame)
            way = "recv"
        elif frame.type == "response" and frame.ok and len(frame.fields) >= 11:
            meta = wire.SipMeta.from_echo(frame)
            way = "recv" if meta.echo_of == "proxy" else "send"
        else:
            return
    except (wire.WireProtocolError, ValueError):
        return
    text = frame.sip
    host = f"[{meta.address}]" if ":" in meta.address else meta.address
    _sip_log.debug("%s", format_record(way, meta.protocol or "sip", f"{host}:{meta.port}",
                                       len(text.encode("utf-8")), text))
