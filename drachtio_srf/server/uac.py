"""Requests from apps to the network: built, sent, echoed; their responses back to the app.

A request outside a dialog is built from the app's headers (PROTOCOL.md 4.4), one inside a
dialog from the dialog's state (route set, tags, CSeq); ACK and CANCEL have their own rules.
Responses update the UAC dialog and go to the app as ``sip`` events. The server's own BYE (no
ACK for a 2xx) is sent from here too.
"""
from __future__ import annotations

import logging
import random
import re
import uuid
from typing import TYPE_CHECKING, Any

from drachtio_srf import wire
from drachtio_srf.server import frames
from drachtio_srf.server.dialogs import Dialog, dialog_id
from drachtio_srf.server.parts import CoreParts
from drachtio_srf.server.records import Outgoing
from drachtio_srf.server.sip_text import (
    DISCARDED,
    AppHeaders,
    build_message,
    canonical_name,
    nbytes,
    new_tag,
    sdp_type,
    split_values,
    tag_of,
    text_of,
    with_tag,
)
from drachtio_srf.server.sip_transport import Target
from drachtio_srf.sip import SipMessage, parse_uri

if TYPE_CHECKING:  # pragma: no cover
    from drachtio_srf.server.control import ControlConnection

logger = logging.getLogger(__name__)

#: headers of the app's CANCEL that are ignored
CANCEL_IGNORED = DISCARDED | {"from", "to", "contact", "p-asserted-identity", "call-id", "cseq",
                              "max-forwards"}
"""Headers of an app's CANCEL that are ignored (the server builds them from the INVITE)."""
ACK_NON_SUCCESS = ("Server error: ACK for non-success final response is automatically generated "
                   "by server")
"""Error text sent to an app that tries to ACK a non-2xx final response (the server ACKs those)."""


class UacMixin(CoreParts):
    """The part of ``Core`` that sends apps' requests and relays their responses."""

    def _parse_request_line(self, start: str) -> tuple[str, str] | None:
        parts = start.split()
        if len(parts) != 3 or not parts[2].upper().startswith("SIP/"):
            return None
        return parts[0], parts[1]

    def _app_request(self, conn: ControlConnection, frame: wire.Frame, start: str, app: AppHeaders,
                     body: str) -> None:
        """A new request outside any dialog (PROTOCOL.md 4.4)."""
        line = self._parse_request_line(start)
        if line is None or not line[0].isupper():
            conn.reply(frame.msg_id, "NOK", [f"invalid request-uri: {start}"])
            return
        method, uri = line
        ruri = parse_uri(uri)
        if ruri is None:
            conn.reply(frame.msg_id, "NOK", [f"invalid request-uri: {start}"])
            return
        proxy = frame.field(4) or self.config.outbound_proxy
        if proxy:
            target = self._target(proxy)
        else:
            target = self._target(uri)
        if target is None or target.transport not in self.config.transports:
            conn.reply(frame.msg_id, "NOK", ["requested protocol/transport not available"])
            return
        if self._is_us(target.host, target.port):
            conn.reply(frame.msg_id, "NOK", ["can not send request to myself"])
            return
        ctype = app.first("content-type") or sdp_type(body)
        if body and not ctype:
            conn.reply(frame.msg_id, "NOK", ["missing content-type"])
            return
        from_v = app.first("from")
        if from_v:
            from_v = self._subst_localhost(from_v)
            if re.search(r"[@:]localhost\b", from_v, re.IGNORECASE):
                from_v = re.sub(r"localhost(:\d+)?", f"{self.host}:{self.port}", from_v, flags=re.IGNORECASE)
        else:
            from_v = f"<sip:{self.host}:{self.port}>"
        local_tag = tag_of(from_v) or new_tag()
        from_v = with_tag(from_v, local_tag)
        to_v = app.first("to") or f"<{uri}>"
        call_id = app.first("call-id") or str(uuid.uuid4())
        cseq_m = re.match(r"\s*(\d+)", app.first("cseq") or "")
        cseq = int(cseq_m.group(1)) if cseq_m else random.randint(1, 999_999_999)
        hdrs: list[tuple[str, str]] = [
            ("Max-Forwards", app.first("max-forwards") or "70"),
            ("From", from_v), ("To", self._subst_localhost(to_v)), ("Call-ID", call_id),
            ("CSeq", f"{cseq} {method}")]
        contacts = app.all("contact")
        if contacts:
            hdrs += [("Contact", self._subst_localhost(c)) for c in contacts]
        elif method in ("INVITE", "SUBSCRIBE"):
            hdrs.append(("Contact", self.our_contact(target.transport)))
        hdrs += self._app_extra_headers(app)
        if ctype:
            hdrs.append(("Content-Type", ctype))
        msg = build_message(f"{method} {uri} SIP/2.0", hdrs, body)
        out = Outgoing(wire.new_id(), conn, method, msg, target, cseq=cseq)
        if method in ("INVITE", "SUBSCRIBE"):
            out.dialog_id = dialog_id(call_id, local_tag)
        self._send_outgoing(conn, frame, out)

    def _app_extra_headers(self, app: AppHeaders) -> list[tuple[str, str]]:
        out = []
        for name, value in app.others(DISCARDED | {"from", "to", "call-id", "cseq", "contact",
                                                   "content-type", "max-forwards"}):
            if name == "P-Asserted-Identity":
                value = self._subst_localhost(value)
            out.append((name, value))
        return out

    def _send_outgoing(self, conn: ControlConnection, frame: wire.Frame, out: Outgoing) -> None:
        self.outgoing[out.txn_id] = out
        try:
            out.ctx = self.stack.send_request(out.request, out.target,
                                              lambda resp, ctx, o=out: self._on_app_response(o, resp))
        except Exception as err:  # noqa: BLE001 - reported to the app
            logger.warning("could not send %s: %s", out.method, err)
            self.outgoing.pop(out.txn_id, None)
            conn.reply(frame.msg_id, "NOK", ["Error creating sip transaction for uac request"])
            return
        sent = getattr(out.ctx, "request", None) or out.request
        out.request = sent
        if out.method == "INVITE" and out.dialog is None:
            self._cdr("attempt", "application", sent)
        elif out.method == "BYE" and out.dialog is not None and out.dialog.kind == "invite":
            self._cdr("stop", "application", sent, "normal-release")
        self._echo_request(conn, frame.msg_id, out.txn_id, sent, out.target.transport)
        if self.loop is not None:
            out.echo_at = self.loop.time()

    def _dialog_target(self, dlg: Dialog) -> Any:
        if dlg.route_set:
            m = re.search(r"<([^>]*)>", dlg.route_set[0])
            t = self._target(m.group(1) if m else dlg.route_set[0], dlg.transport)
            if t is not None:
                return t
        t = self._target(dlg.remote_target, dlg.transport)
        if t is None and dlg.source is not None:
            t = Target(dlg.transport, dlg.source.address, dlg.source.port)
        return t

    def _build_in_dialog(self, dlg: Dialog, method: str, cseq: int, app: AppHeaders, body: str,
                         ctype: str | None) -> SipMessage:
        hdrs: list[tuple[str, str]] = [
            ("Max-Forwards", app.first("max-forwards") or "70"),
            ("From", dlg.local_party), ("To", dlg.remote_party), ("Call-ID", dlg.call_id),
            ("CSeq", f"{cseq} {method}")]
        hdrs += [("Route", r) for r in dlg.route_set]
        contacts = app.all("contact")
        if contacts:
            hdrs += [("Contact", self._subst_localhost(c)) for c in contacts]
        elif method in ("INVITE", "SUBSCRIBE", "REFER"):
            hdrs.append(("Contact", dlg.local_contact))
        hdrs += self._app_extra_headers(app)
        if ctype:
            hdrs.append(("Content-Type", ctype))
        return build_message(f"{method} {dlg.remote_target} SIP/2.0", hdrs, body)

    def _app_request_in_dialog(self, conn: ControlConnection, frame: wire.Frame, dlg: Dialog,
                               start: str, app: AppHeaders, body: str) -> None:
        line = self._parse_request_line(start)
        if line is None or not line[0].isupper() or not line[0].isalpha():
            conn.reply(frame.msg_id, "NOK",
                       [f"Server error: invalid or missing method supplied on start line: {start}"])
            return
        method = line[0]
        ctype = app.first("content-type") or sdp_type(body)
        if body and not ctype:
            conn.reply(frame.msg_id, "NOK", ["Server error: missing content-type"])
            return
        target = self._dialog_target(dlg)
        if target is None:
            conn.reply(frame.msg_id, "NOK", ["Server error: unable to find route for request"])
            return
        if method == "ACK":
            self._app_ack(conn, frame, dlg, app, body, ctype, target)
            return
        if method == "PRACK" and not self._invite_in_progress(dlg):
            # as drachtio-server: a PRACK only acknowledges a reliable provisional response to an
            # INVITE of ours still in progress on this dialog
            conn.reply(frame.msg_id, "NOK", ["Server error: unable to find IIP when sending PRACK"])
            return
        cseq = dlg.next_cseq()
        msg = self._build_in_dialog(dlg, method, cseq, app, body, ctype)
        out = Outgoing(wire.new_id(), conn, method, msg, target, dialog=dlg, dialog_id=dlg.id, cseq=cseq)
        self._send_outgoing(conn, frame, out)

    def _invite_in_progress(self, dlg: Dialog) -> bool:
        """Whether an INVITE the app sent (the initial one or a re-INVITE) on ``dlg`` has no
        final response yet."""
        return any(out.method == "INVITE" and not out.final
                   and (out.dialog is dlg or out.dialog_id == dlg.id)
                   for out in self.outgoing.values())

    def _app_ack(self, conn: ControlConnection, frame: wire.Frame, dlg: Dialog, app: AppHeaders,
                 body: str, ctype: str | None, target: Any) -> None:
        cseq = dlg.pending_ack_cseq
        if cseq is None:
            if dlg.last_invite_failed:
                conn.reply(frame.msg_id, "NOK",
                           ["ACK for non-success responses is automatically generated by the stack"])
                return
            cseq = dlg.extra.get("last_invite_cseq") or dlg.invite_cseq
            if cseq is None or dlg.role != "uac":
                conn.reply(frame.msg_id, "NOK", [ACK_NON_SUCCESS])
                return
        msg = self._build_in_dialog(dlg, "ACK", cseq, app, body, ctype)
        try:
            self.stack.send_stateless(msg, target)
        except Exception as err:  # noqa: BLE001 - reported to the app
            logger.warning("could not send ACK: %s", err)
            conn.reply(frame.msg_id, "NOK", ["Server error: Error creating sip transaction for request"])
            return
        dlg.pending_ack_cseq = None
        dlg.last_ack = msg
        dlg.last_ack_target = target
        dlg.extra["last_ack_text"] = str(msg)
        self._echo_request(conn, frame.msg_id, wire.new_id(), msg, target.transport)

    def _app_cancel(self, conn: ControlConnection, frame: wire.Frame, txn_id: str, app: AppHeaders) -> None:
        out = self.outgoing.get(txn_id)
        if out is None or out.method != "INVITE" or out.final or out.ctx is None:
            conn.reply(frame.msg_id, "NOK", [f"unable to cancel unknown transaction id: {txn_id}"])
            return
        extra = [(canonical_name(n), v) for low, n, v in app.items if low not in CANCEL_IGNORED]
        try:
            accepted = self.stack.cancel(out.ctx, extra)
        except Exception as err:  # noqa: BLE001 - reported to the app
            logger.warning("could not cancel %s: %s", txn_id, err)
            conn.reply(frame.msg_id, "NOK", [f"internal server error canceling transaction id: {txn_id}"])
            return
        if accepted is False:
            conn.reply(frame.msg_id, "NOK", [f"unable to cancel unknown transaction id: {txn_id}"])
            return
        sent = getattr(out.ctx, "cancel_request", None)
        if sent is None:
            sent = self._cancel_text(out.request, extra)
        self._echo_request(conn, frame.msg_id, wire.new_id(), sent, out.target.transport)

    @staticmethod
    def _cancel_text(invite: SipMessage, extra: list[tuple[str, str]]) -> SipMessage:
        """The CANCEL the stack builds from an INVITE (for the echo when the stack does not say)."""
        vias = invite.get_all("via")
        hdrs = [("Via", split_values(vias[0])[0])] if vias else []
        cseq = invite.cseq
        hdrs += [("Max-Forwards", "70"), ("From", invite.get("from") or ""),
                 ("To", invite.get("to") or ""), ("Call-ID", invite.call_id or ""),
                 ("CSeq", f"{cseq.seq if cseq else 1} CANCEL")]
        hdrs += [(n, v) for n, v in extra if n.lower() != "max-forwards"]
        return build_message(f"CANCEL {invite.uri} SIP/2.0", hdrs)

    def _on_app_response(self, out: Outgoing, resp: SipMessage) -> None:
        """A response to a request an app sent: dialog bookkeeping, then a case-e frame."""
        try:
            self._handle_app_response(out, resp)
        except Exception:
            logger.exception("error handling a response to %s %s", out.method, out.txn_id)

    def _handle_app_response(self, out: Outgoing, resp: SipMessage) -> None:
        status = resp.status or 0
        if status <= 100 or out.final:
            return
        if status >= 200:
            out.final = True
            self.outgoing.pop(out.txn_id, None)
            if out.method == "INVITE" and out.dialog is None:
                if status < 300:
                    self._cdr("start", "network", resp, "uac")
                else:
                    self._cdr("stop", "network", resp, "call-canceled" if status == 487 else "call-rejected")
        dlg = out.dialog
        method = out.method
        frame_dialog = ""
        if dlg is None and method in ("INVITE", "SUBSCRIBE") and out.dialog_id:
            frame_dialog = out.dialog_id
            ok = (200 <= status < 300) if method == "INVITE" else status in (200, 202)
            reliable = method == "INVITE" and status < 200 and resp.has("rseq") and bool(resp.to_tag)
            if ok or reliable:
                d = self.dialogs.get(out.dialog_id)
                if d is None:
                    d = self._uac_dialog(out, resp, confirmed=ok)
                elif ok:
                    d.confirmed = True
                    self._refresh_target(d, resp)
                if method == "INVITE" and ok:
                    d.pending_ack_cseq = out.cseq
                    d.extra["last_invite_cseq"] = out.cseq
            elif status >= 300:
                if method == "INVITE":
                    assert self.loop is not None
                    self._failed_invites[out.dialog_id] = self.loop.time()
                d = self.dialogs.get(out.dialog_id)
                if d is not None and not d.confirmed:
                    self.dialogs.remove(d)
        elif dlg is not None:
            frame_dialog = dlg.id
            if method == "INVITE" and status >= 200:
                if status < 300:
                    dlg.pending_ack_cseq = out.cseq
                    dlg.extra["last_invite_cseq"] = out.cseq
                    dlg.last_invite_failed = False
                    self._refresh_target(dlg, resp)
                else:
                    dlg.pending_ack_cseq = None
                    dlg.last_invite_failed = True
            elif method == "BYE" and status >= 200 and status not in (401, 407):
                self.dialogs.remove(dlg)
            elif method == "NOTIFY" and 200 <= status < 300 and dlg.kind == "subscribe":
                state = (out.request.get("subscription-state") or "").strip().lower()
                if state.startswith("terminated"):
                    self.dialogs.remove(dlg)
        if out.conn.closed:
            logger.debug("response %d for %s: app connection gone, discarded", status, out.txn_id)
            if method == "SUBSCRIBE" and dlg is None and status >= 200:
                self._release_early_notifies(out, False)
            return
        src = getattr(out.ctx, "response_source", None)
        text = text_of(resp)
        payload = frames.sip_event(
            frames.new_id(), source="network", nbytes=nbytes(text), protocol=out.target.transport,
            address=src.address if src else out.target.host,
            port=src.port if src else out.target.port, time=frames.stack_time(), txn_id=out.txn_id,
            dialog_id=frame_dialog, sip_text=text)
        assert self.loop is not None
        wait = out.echo_at + self.config.echo_gap - self.loop.time()
        if out.held or (wait > 0 and self.config.echo_gap > 0):
            out.held.append(payload)
            if len(out.held) == 1:
                self.loop.call_later(max(wait, 0.0), self._flush_held, out)
            held_dlg = self.dialogs.get(frame_dialog) if frame_dialog else None
            if held_dlg is not None:
                held_dlg.extra["held_out"] = out    # in-dialog requests queue behind (_send_sip_event)
        else:
            out.conn.send(payload)
        if method == "SUBSCRIBE" and dlg is None and status >= 200:
            self._release_early_notifies(out, status in (200, 202))

    @staticmethod
    def _flush_held(out: Outgoing) -> None:
        held, out.held = out.held, []
        for payload in held:
            out.conn.send(payload)

    def _refresh_target(self, dlg: Dialog, msg: SipMessage) -> None:
        uri = self._contact_uri(msg)
        if uri:
            dlg.remote_target = uri

    def _uac_dialog(self, out: Outgoing, resp: SipMessage, *, confirmed: bool) -> Dialog:
        req = out.request
        route_set: list[str] = []
        for line in resp.get_all("record-route"):
            route_set += split_values(line)
        route_set.reverse()
        dlg = Dialog(
            id=out.dialog_id, call_id=req.call_id or "", role="uac",
            kind="invite" if out.method == "INVITE" else "subscribe",
            local_tag=req.from_tag or "", remote_tag=resp.to_tag or "",
            local_party=req.get("from") or "", remote_party=resp.get("to") or "",
            remote_target=self._contact_uri(resp) or (req.uri or ""), route_set=route_set,
            local_contact=req.get("contact") or self.our_contact(out.target.transport),
            transport=out.target.transport, owner=out.conn, local_cseq=out.cseq,
            invite_txn_id=out.txn_id, invite_cseq=out.cseq, confirmed=confirmed)
        self.dialogs.add(dlg)
        return dlg

    def _server_bye(self, dlg: Dialog, reason: str) -> None:
        """BYE a dialog on the server's initiative and tell the owner (unsolicited BYE, 3.3 f).

        Whatever the dialog holds (an unusable Contact, a send error), the dialog is forgotten and
        its owner is told, so the app's Dialog never outlives the server's.
        """
        self.dialogs.remove(dlg)
        msg = self._build_in_dialog(dlg, "BYE", dlg.next_cseq(), AppHeaders([("Reason", reason)]), "", None)
        sent: SipMessage = msg
        target = self._dialog_target(dlg)
        if target is None:
            logger.warning("dialog %s: no usable target for the BYE, only the app is told", dlg.id)
        else:
            try:
                ctx = self.stack.send_request(msg, target, lambda resp, ctx: None)
                sent = getattr(ctx, "request", None) or msg
            except Exception as err:  # noqa: BLE001 - the app is told all the same
                logger.warning("dialog %s: could not send the BYE to %s: %s", dlg.id, target, err)
        self._cdr("stop", "application", sent, "session-expired")
        owner = dlg.owner
        if owner is not None and not owner.closed:
            self._send_sip_event(owner, sent, source="application",
                                 protocol=target.transport if target is not None else dlg.transport,
                                 address=self.host, port=self.port, txn_id="unsolicited",
                                 dialog_id=dlg.id, text=str(sent))
