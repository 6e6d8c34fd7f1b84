"""Call detail records: ``cdr:attempt``, ``cdr:start`` and ``cdr:stop`` events for apps that route them.

The server core calls ``_cdr`` where a call is attempted, answered or ended (PROTOCOL.md 5.5);
nothing is sent unless the server runs with ``cdrs`` enabled and an app routed that event.
"""
from __future__ import annotations

from drachtio_srf import wire
from drachtio_srf.server.parts import CoreParts
from drachtio_srf.sip import SipMessage


class CdrMixin(CoreParts):
    """The CDR part of ``Core``."""

    def _cdr(self, kind: str, source: str, msg: SipMessage | str, extra: str | None = None) -> None:
        """Send a CDR event to one connection (round-robin) that routed ``cdr:<kind>``, if enabled."""
        if not self.config.cdrs:
            return
        conn = self.router.pick(f"cdr:{kind}")
        if conn is not None:
            conn.send(wire.cdr(wire.new_id(), kind, source, wire.stack_time(), extra,
                               msg if isinstance(msg, str) else str(msg)))
