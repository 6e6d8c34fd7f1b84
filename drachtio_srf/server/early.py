"""Early-dialog traffic: reliable provisional responses (RFC 3262), early UPDATE and NOTIFY.

A reliable 1xx is retransmitted until its PRACK; an UPDATE in the early dialog of an INVITE not
yet answered finally goes to the INVITE's app (PROTOCOL.md 3.3 case c); a NOTIFY that overtakes
the final response to an app's SUBSCRIBE is held until that response reached the app.
"""
from __future__ import annotations

import logging
from typing import TYPE_CHECKING, Any

from drachtio_srf import wire
from drachtio_srf.server.dialogs import Dialog
from drachtio_srf.server.inbound import PENDING_REQUEST_TIMEOUT
from drachtio_srf.server.parts import CoreParts
from drachtio_srf.server.records import Incoming, Outgoing
from drachtio_srf.server.sip_text import AppHeaders, nbytes, parse_status_line, split_values
from drachtio_srf.sip import SipMessage

if TYPE_CHECKING:  # pragma: no cover
    from drachtio_srf.server.control import ControlConnection

logger = logging.getLogger(__name__)


class EarlyDialogMixin(CoreParts):
    """The part of ``Core`` for reliable 1xx, PRACK, and requests in early dialogs."""

    def _send_reliably(self, inc: Incoming, dlg: Dialog, resp: SipMessage) -> None:
        """Retransmit a reliable 1xx (T1, doubling) until its PRACK, a final response or 64*T1."""
        try:
            rseq = int((resp.get("rseq") or "").strip())
        except ValueError:
            return
        cseq = inc.request.cseq
        t1 = float(getattr(self.stack, "t1", 0.5))
        assert self.loop is not None
        loop = self.loop
        state: dict[str, Any] = {"cseq": cseq.seq if cseq else None, "interval": t1,
                                 "deadline": loop.time() + 64 * t1, "handle": None}
        unacked: dict[int, dict[str, Any]] = dlg.extra.setdefault("unacked_1xx", {})
        unacked[rseq] = state

        def again() -> None:
            state["handle"] = None
            if unacked.get(rseq) is not state or inc.final or getattr(inc.stx, "final_sent", False):
                return
            if loop.time() >= state["deadline"]:
                logger.warning("no PRACK for reliable %s (RSeq %d) in %s", resp.status, rseq, dlg.id)
                return
            self._respond_safely(inc.stx, resp)
            state["interval"] *= 2
            state["handle"] = loop.call_later(state["interval"], again)

        state["handle"] = loop.call_later(t1, again)

    @staticmethod
    def _prack_matches(dlg: Dialog, msg: SipMessage) -> bool:
        """Does the PRACK's RAck acknowledge an unacknowledged reliable 1xx of ``dlg``? (forgets it)"""
        unacked = dlg.extra.get("unacked_1xx")
        rack = (msg.get("rack") or "").split()
        if not unacked or len(rack) < 3:
            return False
        try:
            rseq, seq = int(rack[0]), int(rack[1])
        except ValueError:
            return False
        state = unacked.get(rseq)
        if state is None or state["cseq"] != seq or rack[2].upper() != "INVITE":
            return False
        del unacked[rseq]
        if state["handle"] is not None:
            state["handle"].cancel()
        return True

    def _early_update(self, stx: Any, msg: SipMessage, source: Any) -> bool:
        """An UPDATE in the early dialog of an unanswered INVITE (3.3 case c): to the INVITE's app."""
        call_id, from_tag, to_tag = msg.call_id, msg.from_tag, msg.to_tag
        found: tuple[ControlConnection, str, str] | None = None
        for inc in self.incoming.values():
            if (inc.method == "INVITE" and inc.dialog is None and not inc.final
                    and inc.request.call_id == call_id and inc.to_tag == to_tag
                    and inc.request.from_tag == from_tag):
                found = (inc.conn, inc.txn_id, inc.dialog_id)
                break
        if found is None:
            for out in self.outgoing.values():
                if (out.method == "INVITE" and out.dialog is None and not out.final
                        and out.request.call_id == call_id and out.request.from_tag == to_tag):
                    found = (out.conn, out.txn_id, out.dialog_id)
                    break
        if found is None or found[0].closed:
            return False
        conn, invite_txn, dlg_id = found
        upd = Incoming(invite_txn, stx, msg, source, conn, "UPDATE", dialog_id=dlg_id, to_tag=to_tag)
        old = self._early_updates.get(invite_txn)
        if old is not None and old.expiry is not None:
            old.expiry.cancel()
        self._early_updates[invite_txn] = upd
        if self.loop is not None:
            upd.expiry = self.loop.call_later(PENDING_REQUEST_TIMEOUT, self._forget_early_update, upd)
        self._send_sip_event(conn, msg, source="network", protocol=source.transport,
                             address=source.address, port=source.port, txn_id=invite_txn,
                             dialog_id=dlg_id)
        return True

    def _early_notify(self, stx: Any, msg: SipMessage, source: Any) -> bool:
        """A NOTIFY that overtook the final response to the app's SUBSCRIBE (RFC 6665 4.1.2.4).

        It belongs to the dialog the SUBSCRIBE is creating: the dialog is made from the NOTIFY now,
        and the NOTIFY is delivered in it right after the SUBSCRIBE's 2xx reaches the app (so the
        app knows the dialog), or answered 481 if the SUBSCRIBE fails.
        """
        call_id, to_tag = msg.call_id, msg.to_tag
        out = next((o for o in self.outgoing.values()
                    if o.method == "SUBSCRIBE" and o.dialog is None and not o.final and o.dialog_id
                    and o.request.call_id == call_id and o.request.from_tag == to_tag), None)
        if out is None or out.conn.closed:
            return False
        if self.dialogs.get(out.dialog_id) is None:
            route_set: list[str] = []
            for line in msg.get_all("record-route"):
                route_set += split_values(line)
            req = out.request
            self.dialogs.add(Dialog(
                id=out.dialog_id, call_id=call_id or "", role="uac", kind="subscribe",
                local_tag=req.from_tag or "", remote_tag=msg.from_tag or "",
                local_party=req.get("from") or "", remote_party=msg.get("from") or "",
                remote_target=self._contact_uri(msg) or (req.uri or ""), route_set=route_set,
                local_contact=req.get("contact") or self.our_contact(out.target.transport),
                transport=out.target.transport, owner=out.conn, local_cseq=out.cseq,
                invite_txn_id=out.txn_id, invite_cseq=out.cseq, confirmed=False, source=source))
        logger.info("NOTIFY before the final response to SUBSCRIBE %s: held for dialog %s",
                    out.txn_id, out.dialog_id)
        self._early_notifies.setdefault(out.dialog_id, []).append((stx, msg, source))
        return True

    def _release_early_notifies(self, out: Outgoing, ok: bool) -> None:
        """After the SUBSCRIBE's final response went to the app: deliver (or 481) what was held."""
        queued = self._early_notifies.pop(out.dialog_id, None)
        if not queued:
            return
        dlg = self.dialogs.get(out.dialog_id)
        for stx, msg, source in queued:
            if ok and dlg is not None and not out.conn.closed:
                self._deliver_in_dialog(stx, msg, source, dlg)
            else:
                self._reject(stx, msg, 481)

    def _forget_early_update(self, upd: Incoming) -> None:
        if self._early_updates.get(upd.txn_id) is upd:
            del self._early_updates[upd.txn_id]
        if upd.expiry is not None:
            upd.expiry.cancel()
            upd.expiry = None

    def _answer_early_update(self, conn: ControlConnection, frame: wire.Frame, upd: Incoming, start: str,
                             app: AppHeaders, body: str) -> None:
        """The app's response to an UPDATE delivered as case c (it quoted the INVITE's txnId)."""
        parsed = parse_status_line(start)
        if parsed is None:
            conn.reply(frame.msg_id, "NOK", ["Unknown server error sending response"])
            return
        status, reason = parsed
        resp = self._complete_response(upd, status, reason, app, body, False)
        try:
            upd.stx.respond(resp)
        except Exception as err:  # noqa: BLE001 - reported to the app
            logger.warning("could not answer UPDATE %s: %s", upd.txn_id, err)
            conn.reply(frame.msg_id, "NOK", ["Unknown server error sending response"])
            return
        if status >= 200:
            self._forget_early_update(upd)
        text = str(resp)
        conn.send(wire.echo_response(wire.new_id(), frame.msg_id, nbytes=nbytes(text),
                                     protocol=upd.source.transport, address=upd.source.address,
                                     port=upd.source.port, time=wire.stack_time(), txn_id=upd.txn_id,
                                     dialog_id=upd.dialog_id, sip_text=text))
