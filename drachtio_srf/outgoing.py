"""Sending SIP through the server: requests (and CANCEL, ACK/PRACK), responses and proxying.

Each public method builds the message text, sends it as one command (:mod:`drachtio_srf.channel`)
and turns the server's echo into the app's Request / sent message, reported through an
:class:`~drachtio_srf.hold.Outcome`.  UAC auth plugs in from above through two hooks:
``auth_state`` (the retry state a request sent with ``auth`` carries) and ``defer_cancel`` (a
CANCEL held while the INVITE is re-sent with credentials).
"""
from __future__ import annotations

import logging
from collections.abc import Callable, Mapping
from typing import TYPE_CHECKING, Any

from . import wire
from .errors import DrachtioError, NotConnectedError
from .request import Request
from .routing import Router, dialog_key
from .sip import AttrDict, SipMessage, SipParseError, reason_phrase

if TYPE_CHECKING:
    from .channel import ServerConn
    from .response import Response
    from .srf import Srf

logger = logging.getLogger(__name__)

__all__ = ["Sender", "build_message", "ignore_echo", "response_text"]


def _never_deferred(_req: Request, _send: Callable[[], None]) -> bool:
    return False


def build_message(start: Mapping[str, Any], base: list[tuple[str, str]] | None,
                  headers: Mapping[str, Any] | None, body: str | None) -> SipMessage:
    """A SipMessage from a start line, inherited header lines and the app's headers.

    The app's headers replace inherited ones of the same name (case-insensitively); a list
    value gives one header line per item; None values are skipped.
    """
    msg = SipMessage(dict(start))
    for name, value in base or ():
        msg.add(name, value)
    for name, value in (headers or {}).items():
        if value is None:
            continue
        if isinstance(value, (list, tuple)):
            msg.remove(name)
            for v in value:
                msg.add(name, str(v))
        else:
            msg.replace(name, str(value))
    if body:
        msg.body = body
    return msg



class Sender(Router):
    """Requests, responses, ACK/PRACK, CANCEL and proxy out through the server."""

    def __init__(self, srf: Srf, **hooks: Any) -> None:
        super().__init__(srf, **hooks)
        #: ``auth_state(auth, method=, uri=, headers=, body=, dialog_id=, proxy=)``: the retry
        #: state of a request sent with credentials (set by the UAC auth layer)
        self.auth_state: Callable[..., Any] | None = None
        """``auth_state(auth, method=, ...)``: retry state of a credentialed request (set by UAC auth)."""
        #: ``defer_cancel(req, send)``: True if the CANCEL ``send`` is held for a retry
        self.defer_cancel: Callable[[Request, Callable[[], None]], bool] = _never_deferred
        """``defer_cancel(req, send)``: True if the CANCEL ``send`` is held back for an auth retry."""

    # -- requests out -----------------------------------------------------------------------------
    def send_request(self, *, method: str, uri: str | None, headers: Mapping[str, Any] | None = None,
                     body: str | None = None, dialog_id: str | None = None, proxy: str | None = None,
                     conn: ServerConn | None = None, auth: Any = None,
                     on_sent: Callable[[BaseException | None, Request | None], None]) -> None:
        """Send a request; ``on_sent(err, req)`` runs on the reader thread when the server echoes it.

        The Request is registered for its responses before ``on_sent`` runs, so hooks attached
        in ``on_sent`` see every response.  With ``auth`` (credentials or a function giving
        them) a 401/407 is answered by re-sending the request (see :mod:`drachtio_srf.uac_auth`, which sets ``auth_state``).
        """
        sc = conn if conn is not None and not conn.closed else self.default_conn()
        method = method.upper()
        if not uri:
            if not dialog_id:
                raise ValueError("a request outside a dialog needs a uri")
            uri = "sip:placeholder"
        msg = build_message({"method": method, "uri": uri}, None, headers, body)
        text = str(msg)

        def on_reply(f: wire.Frame | None, err: BaseException | None) -> None:
            if f is None:
                on_sent(err, None)
                return
            if not f.ok:
                on_sent(DrachtioError(f.field(4) or "request failed"), None)
                return
            try:
                sent = SipMessage(f.sip or "")
                meta = wire.SipMeta.from_echo(f)
            except (SipParseError, wire.WireProtocolError) as exc:
                on_sent(exc, None)
                return
            req = Request(sent, meta, agent=self, conn=sc)  # type: ignore[arg-type]  # self is the whole Agent
            req.source = "application"
            if dialog_id:
                req.stack_dialog_id = dialog_id
                req._key = dialog_key(dialog_id)
            elif method in ("INVITE", "SUBSCRIBE") and sent.call_id and sent.from_tag:
                req._key = dialog_key(f"{sent.call_id};from-tag={sent.from_tag}")
            else:
                req._key = ("txn", meta.txn_id)
            if auth is not None and method not in ("CANCEL", "ACK") and self.auth_state is not None:
                req._auth_state = self.auth_state(
                    auth, method=method, uri=uri, headers=headers, body=body, dialog_id=dialog_id,
                    proxy=proxy)
                req.auth = req._auth_state.auth
            if method not in ("CANCEL", "ACK"):
                with sc.lock:
                    sc.sent[meta.txn_id] = req
            on_sent(None, req)

        self.command(sc, lambda mid: wire.sip_request(mid, text, dialog_id or "", proxy), on_reply)

    def cancel_request(self, req: Request, headers: Mapping[str, Any], callback: Any) -> Any:
        """CANCEL an INVITE we sent (PROTOCOL 4.6)."""
        out = self.outcome(callback)
        sc = req._conn if req._conn is not None and not req._conn.closed else self.default_conn()
        msg = build_message({"method": "CANCEL", "uri": req.uri}, None, headers, None)
        text = str(msg)

        def on_reply(f: wire.Frame | None, err: BaseException | None) -> None:
            if f is None:
                out.fail(err or DrachtioError("cancel failed"))
            elif not f.ok:
                out.fail(DrachtioError(f.field(4) or "cancel failed"))
            else:
                try:
                    out.succeed(SipMessage(f.sip or ""))
                except SipParseError as exc:
                    out.fail(exc)

        def send() -> None:
            try:
                self.command(sc, lambda mid: wire.sip_cancel(mid, req.stack_txn_id or "", text), on_reply)
            except DrachtioError as err:
                out.fail(err)
        if not self.defer_cancel(req, send):   # held while the INVITE is re-sent with credentials
            send()
        return out.returned(req)

    def send_ack(self, sc: ServerConn, method: str, dialog_id: str, req: Request, res: Response,
                 opts: Mapping[str, Any] | str | None = None, callback: Any = None) -> Any:
        """ACK a 2xx (or PRACK a reliable 1xx) inside the dialog; the ``ack`` function apps get.

        ``opts`` is ``{headers, body}`` as in drachtio-srf, or just the body (the SDP answer of a
        3pcc call, as the ``ack(sdp)`` that modify and create_uac give with no_ack)."""
        if isinstance(opts, str):
            opts = {"body": opts}
        elif opts is not None and not isinstance(opts, Mapping):
            raise TypeError(f"{method} options must be a dict of headers/body or a body string, "
                            f"got {type(opts).__name__}")
        opts = dict(opts or {})
        headers = dict(opts.get("headers") or {})
        if method == "PRACK":
            rseq = (res.get("RSeq") or "").strip()
            headers["RAck"] = f"{rseq} {req.get('CSeq')}"
        msg = build_message({"method": method, "uri": req.uri or "sip:placeholder"}, None, headers,
                            opts.get("body"))
        text = str(msg)
        out = self.outcome(callback) if callback is not None else None

        def on_reply(f: wire.Frame | None, err: BaseException | None) -> None:
            if f is not None and f.ok:
                if out is not None:
                    out.succeed(SipMessage(f.sip or ""))
                return
            problem = err or DrachtioError(f.field(4) if f is not None else "ack failed")
            logger.warning("%s in dialog %s failed: %s", method, dialog_id, problem)
            if out is not None:
                out.fail(problem)
        try:
            self.command(sc, lambda mid: wire.sip_request(mid, text, dialog_id), on_reply)
        except DrachtioError as err:
            logger.warning("could not send %s: %s", method, err)
            if out is not None:
                out.fail(err)
        return None

    # -- responses out ------------------------------------------------------------------------------
    def send_response(self, res: Response, headers: Mapping[str, Any], body: str | None,
                      callback: Any, fn_ack: Any, on_echo: Callable[..., None] | None = None) -> Any:
        """Send ``res`` (status already set); callback(err, sent_msg) / Future on the echo."""
        req = res.req
        assert req is not None
        sc = res._conn or req._conn
        # Library-internal sends report through on_echo and return nothing: no Future is made.
        out = self.outcome(callback) if callback is not None or on_echo is None else None
        if sc is None or sc.closed:
            err = NotConnectedError("drachtio-agent: connection closed, response not sent")
            if out is None:
                on_echo(err, None)      # type: ignore[misc]
                return None
            out.fail(err)
            return out.returned()
        status = res.status or 0
        if res._msg is not None:
            text = str(build_message({"status": res.msg.status, "reason": res.msg.reason},
                                     res.msg.header_lines(), headers, body))
        elif headers:
            # the app never touched this response's headers: build it from the request
            base = [(name, value) for name in _FROM_REQUEST if (value := req.get(name)) is not None]
            text = str(build_message({"status": status, "reason": res.reason}, base, headers, body))
        else:
            text = response_text(status, res.reason, req, body)
        if status >= 200 and req.method == "INVITE":
            call_id = req.call_id or ""
            with sc.lock:
                if sc.invites.get(call_id) is req:
                    del sc.invites[call_id]
        txn_id = req.stack_txn_id or ""

        # nobody will look at the message as sent: do not parse the echo
        wants_sent = out is not None or on_echo is not ignore_echo or fn_ack is not None

        def on_reply(f: wire.Frame | None, err: BaseException | None) -> None:
            if f is None or not f.ok:
                problem = err or DrachtioError(f.field(4) if f is not None else "response not sent")
                if on_echo is not None:
                    on_echo(problem, None)
                if out is not None:
                    out.fail(problem)
                return
            try:
                sent = SipMessage(f.sip or "") if wants_sent else None
                meta = wire.SipMeta.from_echo(f)
            except (SipParseError, wire.WireProtocolError) as exc:
                if on_echo is not None:
                    on_echo(exc, None)
                if out is not None:
                    out.fail(exc)
                return
            res._apply_meta(meta)   # (what setting res.meta does)
            if fn_ack is not None and (status == 200 or sent.has("RSeq")) and meta.dialog_id:  # type: ignore[union-attr]
                with sc.lock:
                    sc.ack_waiters[meta.dialog_id] = fn_ack
            if on_echo is not None:
                on_echo(None, sent)
            if out is not None:
                out.succeed(sent, key=dialog_key(meta.dialog_id) if meta.dialog_id else req._key)

        try:
            self.command(sc, lambda mid: wire.sip_response(mid, txn_id, text), on_reply)
        except DrachtioError as err:
            if on_echo is not None:
                on_echo(err, None)
            if out is not None:
                out.fail(err)
        if status >= 200 and (out is not None or res._events.get("finish")):
            # Queued behind the task that called send() (on its key), so a listener the app
            # attaches right after send() still hears it, as in Node; library-internal sends
            # (out is None) skip the task unless someone already listens.
            self.emit_on(self.dispatcher.current_key() or req._key, res, "finish")
        return out.returned() if out is not None else None

    # -- proxy ------------------------------------------------------------------------------------
    def proxy(self, req: Request, opts: Mapping[str, Any], callback: Any) -> Any:
        """Proxy an incoming request (PROTOCOL 4.9); result {connected, final_status, ...}."""
        out = self.outcome(callback)
        sc = req._conn if req._conn is not None else self.default_conn()
        dest: Any = opts.get("destination") or req.uri
        dests = [dest] if isinstance(dest, str) else list(dest)
        dests = [d if d.split(":", 1)[0] in ("sip", "sips", "tel") else "sip:" + d for d in dests]
        msg = build_message({"method": req.method, "uri": dests[0]}, None, opts.get("headers"), None)
        text = str(msg)
        result = AttrDict(connected=False, final_status=None, final_response=None, responses=[])

        def on_reply(f: wire.Frame | None, err: BaseException | None) -> None:
            if f is None:
                out.fail(err or DrachtioError("proxy failed"))
                return
            if not f.ok:
                out.fail(DrachtioError(f.field(4) or "proxy failed"))
                return
            if f.field(4) == "done":
                with sc.lock:
                    sc.pending.pop(f.field(2), None)
                result["connected"] = result["final_status"] == 200
                result["finalStatus"] = result["final_status"]
                result["finalResponse"] = result["final_response"]
                out.succeed(result)
                return
            try:
                meta = wire.SipMeta.from_echo(f)
                m = SipMessage(f.sip or "")
            except (SipParseError, wire.WireProtocolError) as exc:
                logger.error("bad proxy reply: %s", exc)
                return
            entry = AttrDict(time=meta.time, status=m.status, msg=m)
            responses = result["responses"]
            if not responses or responses[-1]["address"] != meta.address or responses[-1]["port"] != meta.port:
                responses.append(AttrDict(address=meta.address, port=meta.port, msgs=[]))
            responses[-1]["msgs"].append(entry)
            result["final_status"] = m.status
            result["final_response"] = entry

        with sc.lock:
            if sc.invites.get(req.call_id or "") is req:
                del sc.invites[req.call_id or ""]
        try:
            self.command(sc, lambda mid: wire.proxy(
                mid, req.stack_txn_id or "", dests, text,
                remain_in_dialog=bool(opts.get("remain_in_dialog") or opts.get("record_route") or opts.get("path")),
                full_response=True, follow_redirects=bool(opts.get("follow_redirects")),
                simultaneous=opts.get("forking") == "simultaneous",
                provisional_timeout=_duration(opts.get("provisional_timeout")),
                final_timeout=_duration(opts.get("final_timeout"))), on_reply, timeout=None)
        except DrachtioError as err:
            out.fail(err)
        return out.returned(req)



def ignore_echo(err: BaseException | None, _sent: Any) -> None:
    """``on_echo`` for library sends whose outcome nobody needs (no Future is made for them)."""
    if err is not None:
        logger.debug("response not sent: %s", err)


_FROM_REQUEST = ("Call-ID", "CSeq", "From", "To")   # what a response copies from its request
_head_names: list[str] = []                          # how the parser writes those names


def response_text(status: int, reason: str | None, req: Request, body: str | None) -> str:
    """The text ``build_message`` makes for a response with only the request's Call-ID, CSeq,
    From and To headers (and a body), written directly: the usual answer needs no SipMessage.
    """
    names = _head_names
    if not names:
        sample = str(build_message({"status": 200, "reason": "OK"}, [(n, "v") for n in _FROM_REQUEST],
                                   None, None)).split("\r\n")
        names.extend(line[:-3] for line in sample[1:1 + len(_FROM_REQUEST)])
    parts = [f"SIP/2.0 {status} {reason if reason is not None else reason_phrase(status)}"]
    get = req.msg.get
    for name, written in zip(_FROM_REQUEST, names):
        value = get(name)
        if value is not None:
            parts.append(f"{written}: {value}")
    body = body or ""
    size = len(body) if body.isascii() else len(body.encode("utf-8", "surrogateescape"))
    parts.append(f"Content-Length: {size}\r\n")
    parts.append(body)
    return "\r\n".join(parts)


def _duration(value: Any) -> str:
    """A proxy timeout as the wire wants it: ``'2s'``/``'1500ms'`` as given; a number is seconds."""
    if value is None or value == "":
        return ""
    if isinstance(value, bool):
        raise TypeError("proxy timeout must be a string like '2s' or a number of seconds")
    if isinstance(value, (int, float)):
        return f"{int(value * 1000)}ms"
    return str(value)
