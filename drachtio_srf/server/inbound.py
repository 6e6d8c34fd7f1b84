"""Requests from the network: the SIP stack's handler, and who gets each request.

A new request goes to an app that routed its method (round-robin) or to an app the server dials
(outbound), or is answered by the server itself (481, 503 and 503 with Retry-After under
overload); a request inside a dialog goes to the connection that owns the dialog; ACK and CANCEL
are matched to what they acknowledge or cancel. Pending requests are kept as ``Incoming`` records
until the app answers them finally (or ``PENDING_REQUEST_TIMEOUT`` passes).
"""
from __future__ import annotations

import logging
import re
from collections.abc import Iterable
from typing import Any

from drachtio_srf import wire
from drachtio_srf.server.dialogs import Dialog, dialog_id
from drachtio_srf.server.parts import CoreParts
from drachtio_srf.server.records import Incoming
from drachtio_srf.server.sip_checks import date_ok
from drachtio_srf.server.sip_text import build_message, new_tag, split_values, with_tag
from drachtio_srf.sip import SipMessage, reason_phrase

logger = logging.getLogger(__name__)

#: methods that can reach an app as a new request (PROTOCOL.md 5.1)
NEW_REQUEST_METHODS = frozenset(
    ("INVITE", "REGISTER", "MESSAGE", "OPTIONS", "INFO", "NOTIFY", "SUBSCRIBE", "PUBLISH"))
"""Methods that can reach an app as a new request (PROTOCOL.md 5.1)."""
PENDING_REQUEST_TIMEOUT = 64.0   # seconds an app has to answer a new request
"""Seconds an app has to answer a new request finally before the server gives up on it."""
#: bytes of frames not yet taken by an app above which it gets no new request (503 instead)
MAX_APP_BACKLOG = 4 * 1024 * 1024
"""Bytes of frames an app has not taken yet above which it gets no new request (503 instead)."""

_RPORT_SET = re.compile(r";\s*rport\s*=\s*(\d+)", re.IGNORECASE)
_VIA_HOST = re.compile(r"\s*SIP\s*/\s*2\.0\s*/\s*\S+\s+(\[[^\]]+\]|[^;:\s]+)", re.IGNORECASE)


def _via_host(value: str) -> str | None:
    """The sent-by host of a Via value (brackets of an IPv6 reference removed)."""
    m = _VIA_HOST.match(value)
    return m.group(1).strip("[]") if m else None


class InboundMixin(CoreParts):
    """The part of ``Core`` that handles what the SIP stack receives (its ``StackHandler``)."""

    def on_request(self, stx: Any, msg: SipMessage, source: Any) -> None:
        """StackHandler: a request from the network (``stx`` None for an ACK outside a transaction)."""
        try:
            self._fix_via(msg, source)
            if stx is None:
                if msg.method == "ACK":
                    self._on_ack(msg, source)
                return
            self._on_request(stx, msg, source)
        except Exception:
            logger.exception("error handling %s from %s:%s", msg.method, source.address, source.port)
            if stx is not None and msg.method != "ACK" and not getattr(stx, "final_sent", False):
                try:
                    stx.respond(self._simple_response(msg, 500))
                except Exception:
                    logger.exception("could not send 500")

    def on_cancel(self, invite_stx: Any, cancel: SipMessage, source: Any) -> int:
        """StackHandler: a CANCEL matching ``invite_stx``; returns the status to answer it with."""
        try:
            return self._on_cancel(invite_stx, cancel, source)
        except Exception:
            logger.exception("error handling CANCEL")
            return 481

    def on_ack_timeout(self, stx: Any, response: SipMessage) -> None:
        """StackHandler: no ACK came for a 2xx, so the server ends the dialog with a BYE."""
        try:
            dlg = self.dialogs.find(response.call_id, response.to_tag, response.from_tag)
            if dlg is None:
                logger.debug("ACK timeout for %s: no dialog (proxied or gone)", response.call_id)
                return
            logger.warning("no ACK for the 2xx of dialog %s: sending BYE", dlg.id)
            self._server_bye(dlg, 'SIP ;cause=200 ;text="ACK timeout"')
        except Exception:
            logger.exception("error handling ACK timeout")

    def on_2xx_retransmission(self, response: SipMessage, source: Any) -> None:
        """StackHandler: a retransmitted 2xx of an INVITE; resend the dialog's last ACK."""
        try:
            dlg = self.dialogs.find(response.call_id, response.from_tag, response.to_tag)
            cseq = response.cseq
            if dlg is not None and dlg.last_ack is not None and cseq is not None \
                    and dlg.last_ack.cseq.seq == cseq.seq:
                logger.debug("2xx retransmission in %s: resending ACK", dlg.id)
                self.stack.send_stateless(SipMessage(dlg.extra["last_ack_text"]), dlg.last_ack_target)
        except Exception:
            logger.exception("error handling a 2xx retransmission")

    def _fix_via(self, msg: SipMessage, source: Any) -> None:
        """Force rport on the top Via (``;rport=<port>``, ``;received=`` if needed), as the server does."""
        lines = msg.get_all("via")
        if not lines:
            return
        first = lines[0]
        if "," not in first and "received=" not in first:
            # the usual case, one Via value per line and the SIP stack already stamped it
            m = _RPORT_SET.search(first)
            if m is not None and (m.group(1) == str(source.port) and _via_host(first) == source.address):
                return
        values = split_values(first)
        top = values[0]
        changed = False
        if not re.search(r";\s*rport\s*=\s*\d+", top, re.IGNORECASE):
            if re.search(r";\s*rport\b", top, re.IGNORECASE):
                top = re.sub(r";\s*rport\b", f";rport={source.port}", top, count=1, flags=re.IGNORECASE)
            else:
                top += f";rport={source.port}"
            changed = True
        m = re.match(r"\s*SIP\s*/\s*2\.0\s*/\s*\S+\s+(\[[^\]]+\]|[^;:\s]+)", top, re.IGNORECASE)
        if m and m.group(1).strip("[]") != source.address and ";received=" not in top.lower():
            top += f";received={source.address}"
            changed = True
        if changed:
            values[0] = top
            lines[0] = ", ".join(values)
            msg.replace("Via", ", ".join(lines))

    def _simple_response(self, req: SipMessage, status: int, reason: str | None = None,
                         to_tag: str | None = None, extra: Iterable[tuple[str, str]] = ()) -> SipMessage:
        """A response made by the server itself (481, 487, 503 ...)."""
        hdrs = [("Via", v) for v in req.get_all("via")]
        to = req.get("to") or ""
        if status > 100 and not req.to_tag:
            to = with_tag(to, to_tag or new_tag())
        hdrs += [("From", req.get("from") or ""), ("To", to), ("Call-ID", req.call_id or ""),
                 ("CSeq", req.get("cseq") or "")]
        hdrs += list(extra)
        return build_message(f"SIP/2.0 {status} {reason or reason_phrase(status)}", hdrs)

    def _reject(self, stx: Any, msg: SipMessage, status: int) -> None:
        logger.info("answering %s %s from the server: %d", msg.method, msg.call_id, status)
        stx.respond(self._simple_response(msg, status))

    def _on_request(self, stx: Any, msg: SipMessage, source: Any) -> None:
        method = msg.method or ""
        call_id, from_tag, to_tag = msg.call_id, msg.from_tag, msg.to_tag
        if to_tag:
            if self._is_record_routed_to_us(msg):
                self._proxy_in_dialog(stx, msg, source)
                return
            dlg = self.dialogs.find(call_id, to_tag, from_tag)
            if dlg is not None and dlg.id in self._early_notifies:
                self._early_notifies[dlg.id].append((stx, msg, source))   # still before the 2xx
                return
            if dlg is not None:
                self._deliver_in_dialog(stx, msg, source, dlg)
                return
            if method == "UPDATE" and self._early_update(stx, msg, source):
                return
            if method == "NOTIFY" and self._early_notify(stx, msg, source):
                return
            if self._refused_outside_dialog(stx, msg):
                return
            # drachtio-server: a stale INVITE, BYE or UPDATE gets 481; other methods that may start
            # something (NOTIFY, INFO, SUBSCRIBE, ...) go to the app as new requests (below); the
            # rest (ACK, PRACK, REFER, ...) are dropped
            if method == "INVITE" or method not in NEW_REQUEST_METHODS:
                if method in ("BYE", "UPDATE", "INVITE"):
                    self._reject(stx, msg, 481)
                else:
                    logger.info("discarding %s for no known dialog", method)
                return
        elif self._refused_outside_dialog(stx, msg):
            return
        elif method not in NEW_REQUEST_METHODS:
            if method in ("BYE", "UPDATE"):
                self._reject(stx, msg, 481)
            else:
                logger.info("discarding %s outside a dialog", method)
            return
        if method == "INVITE":
            self._cdr("attempt", "network", msg)
        if self._overloaded():
            self._reject_overloaded(stx, msg)
            return
        outbound = self.outbound.target_for(method)
        conn = self.outbound.new_connection() if outbound else self.router.pick(method.lower())
        if conn is None:
            logger.info("no app routed %s: 503", method)
            resp = self._simple_response(msg, 503)
            stx.respond(resp)
            if method == "INVITE":
                self._cdr("stop", "application", resp, "call-rejected")
            return
        if conn.backlog > MAX_APP_BACKLOG:
            logger.warning("%s: %d bytes not taken by the app: %s answered 503", conn.name,
                           conn.backlog, method)
            self._reject_overloaded(stx, msg)
            return
        txn_id = wire.new_id()
        inc = Incoming(txn_id, stx, msg, source, conn, method)
        if method in ("INVITE", "SUBSCRIBE") and call_id and from_tag:
            inc.dialog_id = dialog_id(call_id, from_tag)
        self._add_incoming(inc)
        if outbound:
            self.outbound.start(conn, inc, outbound)
            return
        self.deliver_new_request(inc)

    def _refused_outside_dialog(self, stx: Any, msg: SipMessage) -> bool:
        """drachtio-server answers 400 a request of no dialog with a header its stack could not
        parse; of those the SIP stack lets through, the server checks Date (RFC 4475 baddate)."""
        date = msg.get("date")
        if date is None or date_ok(date):
            return False
        logger.warning("%s %s: unparsable Date %r: 400", msg.method, msg.call_id, date[:100])
        self._respond_safely(stx, self._simple_response(msg, 400))
        return True

    def _overloaded(self) -> bool:
        """Too much held for new work: requests waiting for apps, or server transactions."""
        cfg = self.config
        if len(self.incoming) >= cfg.max_pending:
            return True
        count = getattr(self.stack, "server_transaction_count", 0)
        return bool(count >= cfg.max_transactions)

    def _reject_overloaded(self, stx: Any, msg: SipMessage) -> None:
        """503 with Retry-After for a new request the server cannot take now."""
        self._overload_rejects += 1
        if self._overload_rejects == 1 or self._overload_rejects % 1000 == 0:
            logger.warning("overloaded (%d pending for apps, %d transactions): %d new request(s) "
                           "answered 503 so far", len(self.incoming),
                           getattr(self.stack, "server_transaction_count", 0), self._overload_rejects)
        resp = self._simple_response(msg, 503, extra=[("Retry-After", str(self.config.retry_after))])
        self._respond_safely(stx, resp)
        if msg.method == "INVITE":
            self._cdr("stop", "application", resp, "call-rejected")

    def deliver_new_request(self, inc: Incoming) -> None:
        """Send a new request from the network to its app (3.3 case a)."""
        src = inc.source
        self._send_sip_event(inc.conn, inc.request, source="network", protocol=src.transport,
                             address=src.address, port=src.port, txn_id=inc.txn_id,
                             received_on=(src.local[0], src.local[1]))

    def fail_incoming(self, inc: Incoming, status: int) -> None:
        """Answer a pending new request from the server itself (e.g. 480: app unreachable)."""
        if inc.final or getattr(inc.stx, "final_sent", False):
            return
        inc.final = True
        self._drop_incoming(inc)
        resp = self._simple_response(inc.request, status)
        logger.info("answering %s %s from the server: %d", inc.method, inc.request.call_id, status)
        self._respond_safely(inc.stx, resp)
        if inc.method == "INVITE":
            self._cdr("stop", "application", resp, "call-rejected")

    def _add_incoming(self, inc: Incoming) -> None:
        self.incoming[inc.txn_id] = inc
        self._incoming_by_stx[id(inc.stx)] = inc
        if self.timers is not None:
            inc.expiry = self.timers.call_later(PENDING_REQUEST_TIMEOUT, self._expire_incoming, inc)

    def _drop_incoming(self, inc: Incoming) -> None:
        self.incoming.pop(inc.txn_id, None)
        if self._incoming_by_stx.get(id(inc.stx)) is inc:
            del self._incoming_by_stx[id(inc.stx)]
        if inc.expiry is not None:
            inc.expiry.cancel()
            inc.expiry = None

    def _expire_incoming(self, inc: Incoming) -> None:
        if not inc.responded and not inc.final:
            logger.info("app did not answer %s %s in time: forgetting it", inc.method, inc.txn_id)
            self._drop_incoming(inc)

    def _deliver_in_dialog(self, stx: Any, msg: SipMessage, source: Any, dlg: Dialog) -> None:
        method = msg.method or ""
        if dlg.owner is None or dlg.owner.closed:
            logger.info("%s for dialog %s whose app is gone: 481", method, dlg.id)
            if method == "BYE":
                self.dialogs.remove(dlg)
            self._reject(stx, msg, 481)
            return
        if method == "PRACK" and not self._prack_matches(dlg, msg):
            logger.info("PRACK in %s matches no reliable provisional response: 481", dlg.id)
            self._reject(stx, msg, 481)
            return
        cseq = msg.cseq
        if cseq is not None:
            dlg.remote_cseq = cseq.seq
        if method == "BYE":
            self.dialogs.remove(dlg)
            if dlg.kind == "invite":
                self._cdr("stop", "network", msg, "normal-release")
        txn_id = wire.new_id()
        inc = Incoming(txn_id, stx, msg, source, dlg.owner, method, dialog=dlg, dialog_id=dlg.id,
                       to_tag=dlg.local_tag)
        self._add_incoming(inc)
        self._send_sip_event(dlg.owner, msg, source="network", protocol=source.transport,
                             address=source.address, port=source.port, txn_id=txn_id,
                             dialog_id=dlg.id, behind=dlg)

    def _on_ack(self, msg: SipMessage, source: Any) -> None:
        if self._is_record_routed_to_us(msg) or (
                self.dialogs.find(msg.call_id, msg.to_tag, msg.from_tag) is None
                and msg.call_id in self._proxied_calls):
            self._proxy_ack(msg)
            return
        dlg = self.dialogs.find(msg.call_id, msg.to_tag, msg.from_tag)
        if dlg is None:
            logger.debug("ACK for no known dialog (%s): dropped", msg.call_id)
            return
        if dlg.owner is None or dlg.owner.closed:
            return
        cseq = msg.cseq
        if dlg.role == "uas" and not dlg.initial_acked and cseq is not None \
                and cseq.seq == dlg.invite_cseq and dlg.invite_txn_id:
            txn_id = dlg.invite_txn_id
            dlg.initial_acked = True
        else:
            txn_id = wire.new_id()
        self._send_sip_event(dlg.owner, msg, source="network", protocol="", address=source.address,
                             port=source.port, txn_id=txn_id, dialog_id=dlg.id, behind=dlg)

    def _on_cancel(self, invite_stx: Any, cancel: SipMessage, source: Any) -> int:
        if invite_stx is None:
            return 481
        job = self._proxy_by_stx.get(id(invite_stx))
        if job is not None:
            self._proxy_cancel(job)
            return 200
        inc = self._incoming_by_stx.get(id(invite_stx))
        if inc is None or inc.final or getattr(invite_stx, "final_sent", False):
            return 481
        if inc.to_tag is None:
            inc.to_tag = new_tag()
        resp = self._simple_response(inc.request, 487, to_tag=inc.to_tag)
        inc.final = True
        self._drop_incoming(inc)
        if inc.dialog is not None and not inc.dialog.confirmed:
            self.dialogs.remove(inc.dialog)
        elif inc.dialog_id:
            early = self.dialogs.get(inc.dialog_id)
            if early is not None and not early.confirmed:
                self.dialogs.remove(early)
        # the stack answers the CANCEL when we return: the 487 goes out right after it
        assert self.loop is not None
        self.loop.call_soon(self._respond_safely, invite_stx, resp)
        self._cdr("stop", "network", cancel, "call-canceled")
        if not inc.delivered:
            return 200
        self._send_sip_event(inc.conn, cancel, source="network", protocol=source.transport,
                             address=source.address, port=source.port, txn_id=inc.txn_id,
                             dialog_id=inc.dialog_id if inc.responded else "")
        return 200

    @staticmethod
    def _respond_safely(stx: Any, resp: SipMessage) -> None:
        try:
            stx.respond(resp)
        except Exception:
            logger.exception("could not send %s", resp.status)
