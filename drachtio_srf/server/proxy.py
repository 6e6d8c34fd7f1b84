"""The proxy of the embedded server (drachtio-server's ``SipProxyController``, PROTOCOL.md 4.9, 5.4).

``ProxyMixin`` holds the ``proxy`` command and everything that follows from it: forwarding to the
destinations (serially or in parallel, following redirects), relaying responses upstream, CANCEL,
the records drachtio-server writes as CDRs, and record-routed in-dialog requests. ``Core`` inherits
it; the methods use the core's state (stack, loop, incoming requests, addresses).
"""
from __future__ import annotations

import asyncio
import logging
import re
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from drachtio_srf import wire
from drachtio_srf.server.control import ControlConnection
from drachtio_srf.server.parts import CoreParts
from drachtio_srf.server.sip_text import (
    _COMPACT,
    DISCARDED,
    AppHeaders,
    build_message,
    canonical_name,
    nbytes,
    parse_duration,
    split_app_message,
    split_values,
    text_of,
)
from drachtio_srf.sip import SipMessage, parse_uri

if TYPE_CHECKING:
    from drachtio_srf.server.records import Incoming

logger = logging.getLogger(__name__)


def _one_hop_less(max_forwards: str) -> str:
    """The Max-Forwards value for the next hop (70 when the one received is not a number)."""
    try:
        return str(max(0, int(max_forwards) - 1))
    except ValueError:
        return "70"


@dataclass(eq=False)
class ProxyBranch:
    """One destination a proxied request was forwarded to, and how that attempt is going."""

    dest: str
    """The destination URI as the app gave it."""
    target: Any
    """Where the request is sent (a ``Target``)."""
    ctx: Any = None
    """The SIP client transaction of this branch (None until sent)."""
    provisional: bool = False
    """True once a provisional response came on this branch."""
    final: SipMessage | None = None
    """The final response of this branch (None until it came)."""
    abandoned: bool = False
    """True once the proxy gave up on the branch (provisional timeout or another branch won)."""
    timer: asyncio.TimerHandle | None = None
    """Provisional-timeout timer of the branch (None when not set)."""


@dataclass(eq=False)
class ProxyJob:
    """One ``proxy`` command: forwarding a delivered request to one or more destinations."""

    conn: ControlConnection
    """The app connection that sent the ``proxy`` command."""
    msg_id: str
    """Id of the ``proxy`` frame, for the reply."""
    inc: Incoming
    """The delivered request being proxied."""
    dests: list[str]
    """Destination URIs, in the order given."""
    record_route: bool
    """True to add a Record-Route header (stay in the path of the dialog)."""
    full_response: bool
    """True to pass every response on to the app, not only the final one."""
    follow_redirects: bool
    """True to try the Contacts of a 3xx response."""
    simultaneous: bool
    """True to fork to all destinations at once (else one after another)."""
    provisional_timeout: float | None
    """Seconds a branch may wait for a provisional response before it is canceled (None: no limit)."""
    extra_headers: list[tuple[str, str]]
    """Headers the app asked to add to the forwarded request."""
    branches: list[ProxyBranch] = field(default_factory=list)
    """The branches started so far."""
    next_index: int = 0
    """Index in ``dests`` of the next destination to try."""
    finals: list[SipMessage] = field(default_factory=list)
    """Final responses collected from the branches."""
    done: bool = False
    """True once the job has a final outcome."""
    canceled: bool = False
    """True once the request was canceled."""


class ProxyMixin(CoreParts):
    """The proxy part of ``Core`` (see the module docstring)."""

    _proxy_by_stx: dict[int, ProxyJob]

    def handle_proxy_command(self, conn: ControlConnection, frame: wire.Frame) -> None:
        """``proxy|txnId|rr|full|follow|mode|prov|final|dest...`` (PROTOCOL.md 3.1, 5.4)."""
        txn_id = frame.field(2)
        inc = self.incoming.get(txn_id)
        if inc is None or inc.final or inc.responded or inc.dialog is not None:
            conn.reply(frame.msg_id, "NOK", [f"Unknown transaction id: {txn_id}"])
            return
        dests = [d for d in frame.fields[9:] if d]
        if not dests:
            dests = [inc.request.uri or ""]
        _, headers, _ = split_app_message(frame.sip or "")
        app = AppHeaders(headers)
        job = ProxyJob(
            conn=conn, msg_id=frame.msg_id, inc=inc, dests=dests,
            record_route=frame.field(3) == "remainInDialog",
            full_response=frame.field(4) == "fullResponse",
            follow_redirects=frame.field(5) == "followRedirects",
            simultaneous=frame.field(6) == "simultaneous",
            provisional_timeout=parse_duration(frame.field(7)),
            extra_headers=app.others(DISCARDED | {"from", "to", "call-id", "cseq", "max-forwards"}))
        mf = inc.request.get("max-forwards")
        if mf is not None and mf.strip() == "0":
            inc.final = True
            self._drop_incoming(inc)
            resp = self._simple_response(inc.request, 483)
            self._respond_safely(inc.stx, resp)
            if inc.method == "INVITE":
                self._cdr("stop", "application", resp, "call-rejected")
            conn.reply(frame.msg_id, "NOK", ["Rejected with 483 Too Many Hops due to Max-Forwards value of 0"])
            return
        # the app hands the transaction over: it gets no more frames for it
        self._drop_incoming(inc)
        inc.final = True
        self._proxy_by_stx[id(inc.stx)] = job
        if not job.full_response:
            conn.send(wire.proxy_done(wire.new_id(), job.msg_id))
        if job.simultaneous:
            for _ in range(len(job.dests)):
                self._proxy_next(job)
        else:
            self._proxy_next(job)

    def _forward_request(self, job: ProxyJob, dest: str) -> SipMessage:
        req = job.inc.request
        start, headers, body = split_app_message(str(req))
        parts = start.split()
        ruri = req.uri or parts[1]
        u = parse_uri(ruri)
        if u is not None and self._is_us(u.get("host"), u.get("port")):
            ruri = dest
        out: list[tuple[str, str]] = []
        routes_stripped = False
        rr_added = False
        for name, value in headers:
            low = _COMPACT.get(name.lower(), name.lower())
            if low == "content-length":
                continue
            if low == "max-forwards":
                value = _one_hop_less(value)
            if low == "route" and not routes_stripped:
                routes_stripped = True
                vals = split_values(value)
                if vals and self._route_is_us(vals[0]):
                    vals = vals[1:]
                if not vals:
                    continue
                value = ", ".join(vals)
            if low == "record-route" and job.record_route and not rr_added:
                out.append(self._record_route_header(job))
                rr_added = True
            out.append((canonical_name(name), value))
        if job.record_route and not rr_added:
            out.append(self._record_route_header(job))
        if not any(_COMPACT.get(n.lower(), n.lower()) == "max-forwards" for n, _ in headers):
            out.append(("Max-Forwards", "70"))
        out += job.extra_headers
        return build_message(f"{parts[0]} {ruri} SIP/2.0", out, body)

    def _record_route_header(self, job: ProxyJob) -> tuple[str, str]:
        transport = job.inc.source.transport
        suffix = f";transport={transport}" if transport in ("tcp", "tls") else ""
        if job.inc.method == "REGISTER":
            return ("Path", f"<sip:{self.host}:{self.port}{suffix};lr>")
        return ("Record-Route", f"<sip:{self.host}:{self.port}{suffix};lr>")

    def _route_is_us(self, route: str) -> bool:
        m = re.search(r"<([^>]*)>", route)
        u = parse_uri(m.group(1) if m else route)
        return u is not None and self._is_us(u.get("host"), u.get("port"))

    def _proxy_next(self, job: ProxyJob) -> bool:
        """Start the next destination; False when none is left."""
        while job.next_index < len(job.dests):
            dest = job.dests[job.next_index]
            job.next_index += 1
            if not dest.startswith(("sip:", "sips:", "tel:")):
                dest = "sip:" + dest
            target = self._target(dest, job.inc.source.transport)
            if target is None:
                logger.warning("proxy: bad destination %r", dest)
                continue
            msg = self._forward_request(job, dest)
            branch = ProxyBranch(dest, target)
            job.branches.append(branch)
            try:
                branch.ctx = self.stack.send_request(
                    msg, target, lambda resp, ctx, j=job, b=branch: self._on_proxy_response(j, b, resp))
            except Exception as err:  # noqa: BLE001
                logger.warning("proxy: could not send to %s: %s", dest, err)
                job.branches.remove(branch)
                continue
            if job.inc.method == "INVITE":
                self._cdr("attempt", "application", getattr(branch.ctx, "request", None) or msg)
            if job.provisional_timeout and self.loop is not None:
                branch.timer = self.loop.call_later(job.provisional_timeout,
                                                    self._proxy_provisional_timeout, job, branch)
            return True
        return False

    def _proxy_provisional_timeout(self, job: ProxyJob, branch: ProxyBranch) -> None:
        if branch.provisional or branch.final is not None or job.done:
            return
        logger.info("proxy: no provisional from %s in time, trying next", branch.dest)
        branch.abandoned = True
        try:
            self.stack.cancel(branch.ctx)
        except Exception:
            logger.exception("proxy: cancel failed")
        if job.simultaneous or not self._proxy_next(job):
            self._proxy_maybe_finish(job)

    def _on_proxy_response(self, job: ProxyJob, branch: ProxyBranch, resp: SipMessage) -> None:
        try:
            self._handle_proxy_response(job, branch, resp)
        except Exception:
            logger.exception("proxy: error handling a response")

    def _upstream(self, resp: SipMessage) -> SipMessage:
        """The response with our Via removed, to send upstream."""
        start, headers, body = split_app_message(str(resp))
        out: list[tuple[str, str]] = []
        removed = False
        for name, value in headers:
            low = _COMPACT.get(name.lower(), name.lower())
            if low == "content-length":
                continue
            if low == "via" and not removed:
                removed = True
                vals = split_values(value)[1:]
                if not vals:
                    continue
                value = ", ".join(vals)
            out.append((canonical_name(name), value))
        return build_message(start, out, body)

    def _handle_proxy_response(self, job: ProxyJob, branch: ProxyBranch, resp: SipMessage) -> None:
        status = resp.status or 0
        if status <= 100:
            return
        if status < 200:
            branch.provisional = True
            if not job.done and not branch.abandoned:
                self._respond_safely(job.inc.stx, self._upstream(resp))
            return
        if branch.final is not None:
            return
        branch.final = resp
        if branch.timer is not None:
            branch.timer.cancel()
        if job.inc.method == "INVITE":
            self._proxy_uac_cdr(resp)
        if job.done:
            return
        if job.full_response and not job.conn.closed and not (branch.abandoned and status == 487):
            text = text_of(resp)
            job.conn.send(wire.proxy_continue(
                wire.new_id(), job.msg_id, nbytes=nbytes(text), protocol=branch.target.transport,
                address=branch.target.host, port=branch.target.port, time=wire.stack_time(),
                sip_text=text))
        if job.done:
            return
        if 200 <= status < 300:
            job.done = True
            if resp.call_id:
                contact = self._contact_uri(resp)
                self._proxied_calls[resp.call_id] = (self._target(contact, branch.target.transport)
                                                     if contact else branch.target)
            self._proxy_send_final(job, self._upstream(resp))
            for other in job.branches:
                if other is not branch and other.final is None:
                    other.abandoned = True
                    try:
                        self.stack.cancel(other.ctx)
                    except Exception:
                        logger.exception("proxy: cancel failed")
            self._proxy_finish(job)
            return
        if not branch.abandoned or status != 487 or job.canceled:
            job.finals.append(resp)
        if 300 <= status < 400 and job.follow_redirects and not job.canceled:
            # the Contacts are tried next, right after the redirecting target (drachtio-server order)
            added = [m.group(1) if m else c.split(";")[0]
                     for line in resp.get_all("contact") for c in split_values(line)
                     for m in [re.search(r"<([^>]*)>", c)]]
            job.dests[job.next_index:job.next_index] = added
            if job.simultaneous:
                for _ in added:
                    self._proxy_next(job)
        if not job.simultaneous and not job.canceled and status < 600 and self._proxy_next(job):
            return
        self._proxy_maybe_finish(job)

    def _proxy_maybe_finish(self, job: ProxyJob) -> None:
        if job.done:
            return
        if any(b.final is None and not b.abandoned for b in job.branches):
            return
        if any(b.final is None for b in job.branches) and not job.finals:
            return  # wait for the abandoned branches' 487s
        job.done = True
        best = self._best_final(job.finals)
        if best is not None:
            self._proxy_send_final(job, self._upstream(best))
        else:
            self._proxy_send_final(job, self._simple_response(job.inc.request, 408), generated=True)
        self._proxy_finish(job)

    def _proxy_send_final(self, job: ProxyJob, resp: SipMessage, *, generated: bool = False) -> None:
        """Send the proxy's final response upstream, with the CDR drachtio-server writes for it."""
        self._respond_safely(job.inc.stx, resp)
        if job.inc.method != "INVITE":
            return
        status = resp.status or 0
        if generated:
            self._cdr("stop", "application", resp, "call-rejected")
        elif status == 200:
            self._cdr("start", "application", resp, "proxy-uas")
        elif status > 200:
            self._cdr("stop", "application", resp, "call-canceled" if status == 487 else "call-rejected")

    def _proxy_uac_cdr(self, resp: SipMessage) -> None:
        """CDR for a final response a proxy branch received (drachtio-server: 200 only is a start)."""
        status = resp.status or 0
        if status == 200:
            self._cdr("start", "network", resp, "proxy-uac")
        else:
            self._cdr("stop", "network", resp, "call-canceled" if status == 487 else "call-rejected")

    @staticmethod
    def _best_final(finals: list[SipMessage]) -> SipMessage | None:
        """The failure to send upstream (RFC 3261 16.7.6 as drachtio-server ranks them): 6xx, then
        401/407/415/420/484, other 4xx, 5xx, and 3xx last; the earliest of equal rank."""
        def rank(f: SipMessage) -> int:
            st = f.status or 0
            if st >= 600:
                return 0
            if st in (401, 407, 415, 420, 484):
                return 1
            if 400 <= st < 500:
                return 2
            if 500 <= st < 600:
                return 3
            return 4
        return min(finals, key=rank) if finals else None

    def _proxy_finish(self, job: ProxyJob) -> None:
        self._proxy_by_stx.pop(id(job.inc.stx), None)
        if job.full_response and not job.conn.closed:
            job.conn.send(wire.proxy_done(wire.new_id(), job.msg_id))

    def _proxy_cancel(self, job: ProxyJob) -> None:
        job.canceled = True
        job.next_index = len(job.dests)
        for b in job.branches:
            if b.final is None:
                try:
                    self.stack.cancel(b.ctx)
                except Exception:
                    logger.exception("proxy: cancel failed")

    def _is_record_routed_to_us(self, msg: SipMessage) -> bool:
        if not msg.to_tag:
            return False
        routes = msg.get_all("route")
        if not routes:
            return False
        vals = split_values(routes[0])
        return bool(vals) and self._route_is_us(vals[0])

    def _in_dialog_forward(self, msg: SipMessage) -> tuple[SipMessage, Any] | None:
        """A record-routed in-dialog request with our Route removed, and where it goes next."""
        start, headers, body = split_app_message(str(msg))
        parts = start.split()
        out: list[tuple[str, str]] = []
        next_hop: str | None = None
        stripped = False
        for name, value in headers:
            low = _COMPACT.get(name.lower(), name.lower())
            if low == "content-length":
                continue
            if low == "max-forwards":
                value = _one_hop_less(value)
            if low == "route":
                vals = split_values(value)
                if not stripped:
                    stripped = True
                    if vals and self._route_is_us(vals[0]):
                        vals = vals[1:]
                if vals and next_hop is None:
                    next_hop = vals[0]
                if not vals:
                    continue
                value = ", ".join(vals)
            out.append((canonical_name(name), value))
        uri = parts[1] if len(parts) > 1 else ""
        if next_hop:
            m = re.search(r"<([^>]*)>", next_hop)
            target = self._target(m.group(1) if m else next_hop)
        else:
            u = parse_uri(uri)
            if u is not None and self._is_us(u.get("host"), u.get("port")):
                target = self._proxied_calls.get(msg.call_id or "")
            else:
                target = self._target(uri)
        if target is None:
            return None
        return build_message(start, out, body), target

    def _proxy_in_dialog(self, stx: Any, msg: SipMessage, source: Any) -> None:
        fwd = self._in_dialog_forward(msg)
        if fwd is None:
            self._reject(stx, msg, 404)
            return
        out, target = fwd
        if msg.method == "BYE":
            self._proxied_calls.pop(msg.call_id or "", None)
            self._cdr("stop", "network", msg, "normal-release")
        ctx = self.stack.send_request(out, target, lambda resp, ctx: self._relay_upstream(stx, resp))
        if msg.method == "BYE":
            self._cdr("stop", "application", getattr(ctx, "request", None) or out, "normal-release")

    def _relay_upstream(self, stx: Any, resp: SipMessage) -> None:
        if (resp.status or 0) <= 100:
            return
        self._respond_safely(stx, self._upstream(resp))

    def _proxy_ack(self, msg: SipMessage) -> None:
        fwd = self._in_dialog_forward(msg)
        if fwd is None:
            logger.debug("proxy: ACK with nowhere to go, dropped")
            return
        out, target = fwd
        self.stack.send_stateless(out, target)
