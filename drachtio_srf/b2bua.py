"""create_b2bua: bridge an incoming INVITE (the A leg) to a new outgoing one (the B leg).

The B leg is placed with ``Srf.create_uac``; its provisional responses are relayed to A, its
failure is passed back to A (``pass_failure``), and when B answers, A is answered with
``Srf.create_uas``.  The result is a :class:`~drachtio_srf.models.B2BUAResult` (``r.uas``,
``r["uas"]`` or ``uas, uac = r``) with
``uas.other is uac`` and ``uac.other is uas``.  A BYE on one leg does not end the other: the
application wires that itself (``uas.on('destroy', lambda *_: uac.destroy())``), as in drachtio-srf.

Threading: everything about the B leg runs on the B dialog's dispatch key (cb_request, each
provisional, the final outcome, in that order), so a 183 is always relayed before the 200.  A is
answered from there; the result is delivered on the A dialog's key *before* A's ACK or any later
request from A is handled, so listeners attached on the result see every in-dialog event.  Requests
from B are held (``uac.queue_requests``) until A's ACK has been handled (API-DETAILS B11).
"""
from __future__ import annotations

import concurrent.futures
import functools
import logging
import threading
from collections.abc import Callable, Mapping
from typing import TYPE_CHECKING, Any

from . import sdp as sdp_edit
from .agent import dialog_key
from .errors import DrachtioError, SipError
from .models import B2BUAResult
from .names import uac_args
from .request import Request
from .response import Response
from .usercode import call, describe

if TYPE_CHECKING:
    from .dialog import Dialog
    from .srf import Srf

logger = logging.getLogger(__name__)

__all__ = ["NON_COPYABLE_HEADERS", "copy_headers", "create_b2bua"]

#: headers never copied by ``proxy_request_headers`` / ``proxy_response_headers`` = ``['all', ...]``
NON_COPYABLE_HEADERS = frozenset({"via", "from", "to", "call-id", "cseq", "contact", "content-length",
                                  "content-type"})
"""Lower-case header names never copied from one leg to the other, even with ``['all', ...]``."""
SDP_TIMEOUT = 32.0      # longest wait for a local_sdp_a / local_sdp_b Future
PRACK_WAIT = 0.5        # longest wait for A's PRACKs before answering A (drachtio-srf: 100+200+200 ms)


# --------------------------------------------------------------------------- header copying

def _stored_name(msg: Any, name: str) -> str | None:
    """The spelling under which ``msg`` stores header ``name`` (None if absent)."""
    if not msg.has(name):
        return None
    low = name.lower()
    for key in msg.headers:
        if key.lower() == low:
            return key
    return name


def copy_headers(msg: Any, spec: Any) -> dict[str, str]:
    """Headers of ``msg`` named by ``spec``: a list of names, or ``['all', '-Name', ...]``.

    ``'all'`` copies every header but :data:`NON_COPYABLE_HEADERS` and the ``-`` listed ones;
    ``msg`` itself is never changed (drachtio-srf deleted them from it: defect 9).
    """
    out: dict[str, str] = {}
    if msg is None or not spec:
        return out
    names = [spec] if isinstance(spec, str) else list(spec)
    if names and names[0] == "all":
        skip = set(NON_COPYABLE_HEADERS)
        skip.update(n[1:].lower() for n in names[1:] if isinstance(n, str) and n.startswith("-"))
        for key, value in msg.headers.items():
            if key.lower() not in skip:
                out[key] = value
        return out
    for name in names:
        stored = _stored_name(msg, name)
        if stored is not None:
            value = msg.get(name)
            if value is not None:
                out[stored] = value
    return out


def _merge(base: dict[str, Any], extra: Mapping[str, Any] | None) -> dict[str, Any]:
    """``base`` updated with ``extra``; a name in ``extra`` replaces any spelling of it in base."""
    for key, value in (extra or {}).items():
        for old in [k for k in base if k.lower() == key.lower() and k != key]:
            del base[old]
        base[key] = value
    return base


def _log_send_error(err: BaseException | None, *_: Any) -> None:
    if err is not None:
        logger.debug("b2bua: send failed: %s", err)


def _call_user(fn: Callable[..., Any] | None, *args: Any, owner: Any = None) -> None:
    if fn is None:
        return
    try:
        call(fn, *args, owner=owner)
    except Exception:
        logger.exception("b2bua: user callback %s raised", describe(fn))


def _resolve(value: Any) -> Any:
    """A value, or the result of a Future returned by a user function."""
    if isinstance(value, concurrent.futures.Future):
        return value.result(SDP_TIMEOUT)
    return value


# --------------------------------------------------------------------------- result delivery

class _Delivery:
    """The B2BUA's outcome, by callback or Future (an :class:`~drachtio_srf.agent.Outcome`).

    Success is delivered *on the current task* (the A dialog's key) with
    :meth:`Outcome.succeed_here`: the callback runs inline, or the Future resolves and A's key
    stays held after this task until the consumer has attached its listeners, so that A's ACK
    and later requests wait for them (without tying up a worker).
    """

    def __init__(self, srf: Srf, callback: Callable[..., Any] | None) -> None:
        self.out = srf._agent.outcome(callback)
        self.future = self.out.future

    @property
    def abandoned(self) -> bool:
        """The user cancelled the Future: nobody wants the dialogs any more."""
        return self.out.abandoned

    def fail(self, err: BaseException) -> None:
        self.out.fail(err)

    def succeed_here(self, value: Any, key: Any) -> None:
        self.out.succeed_here(value, key=key)


# --------------------------------------------------------------------------- the B2BUA

class _B2BUA:
    """One bridging attempt (possibly over several B-leg targets)."""

    def __init__(self, srf: Srf, req: Request, res: Response, targets: list[str], o: dict[str, Any],
                 progress: dict[str, Any], delivery: _Delivery) -> None:
        self.srf = srf
        self.req = req
        self.res = res
        self.targets = targets
        self.out = delivery
        self.cb_request = progress.get("cb_request")
        self.cb_provisional = progress.get("cb_provisional")
        self.cb_finalized_uac = progress.get("cb_finalized_uac")
        self.pass_failure = o.get("pass_failure", True) is not False
        self.pass_provisional = o.get("pass_provisional_responses", True) is not False
        self.proxy_response_headers = o.get("proxy_response_headers") or []
        self.response_headers = o.get("response_headers") or {}
        self.local_sdp_a = o.get("local_sdp_a")
        self.local_sdp_b = o.get("local_sdp_b")
        self.method = (req.method or "INVITE").upper()

        headers = copy_headers(req, o.get("proxy_request_headers") or [])
        _merge(headers, o.get("headers"))
        lower = {k.lower() for k in headers}
        offer = self.local_sdp_b if self.local_sdp_b and not callable(self.local_sdp_b) else req.body
        # late offer (A sent no SDP): B's offer comes in its 200 and A's answer in A's ACK.  An
        # explicit no_ack with an offer is ignored (drachtio-srf crashed on A's ACK: defect 10).
        self.is_3pcc = self.method == "INVITE" and not offer
        uac_opts: dict[str, Any] = {"headers": headers, "method": self.method, "local_sdp": offer or None,
                                    "_conn": req._conn}
        if self.is_3pcc:
            uac_opts["no_ack"] = True
        for key in ("proxy", "auth", "follow_redirects", "keep_uri_on_redirect", "dialog_state_emitter"):
            if o.get(key) is not None:
                uac_opts[key] = o[key]
        if "from" not in lower and "f" not in lower:
            uac_opts["calling_number"] = o.get("calling_number") or req.calling_number
            uac_opts["calling_name"] = o.get("calling_name") or req.calling_name
        if "to" not in lower and "t" not in lower:
            uac_opts["called_number"] = o.get("called_number") or req.called_number
        self.uac_opts = uac_opts

        self._lock = threading.Lock()
        self._prack_cond = threading.Condition()
        self._pracks = 0
        self.current: Request | None = None      # the B INVITE in progress
        self.a_canceled = False
        self.failure: BaseException | None = None
        self.answer_a: str | None = None           # the SDP A got (for UPDATE during setup)
        self._sdp_cache: tuple[str, Any] | None = None
        self._listening = False

    # -- B leg ------------------------------------------------------------------------------------
    def attempt(self, index: int) -> None:
        target = self.targets[index]
        logger.debug("b2bua: B leg attempt %d to %s", index + 1, target)
        try:
            self.srf.create_uac(target, dict(self.uac_opts),
                                {"cb_request": self._on_sent, "cb_provisional": self._on_provisional},
                                functools.partial(self._on_uac, index))
        except (DrachtioError, ValueError) as err:
            if index == 0:
                raise
            self._on_uac(index, err, None)

    def _on_sent(self, err: BaseException | None, uac_req: Request | None) -> None:
        if err is None and uac_req is not None:
            self.current = uac_req
            if not self._listening:
                self._listening = True
                self.req.on("cancel", self._on_a_cancel)
                self.req.on("update", self._on_a_update)
            if self.req.canceled:
                self._on_a_cancel(None)
        _call_user(self.cb_request, err, uac_req, owner=self.srf)

    def _on_a_cancel(self, cancel_msg: Any) -> None:
        """A canceled: A gets 487 (the server already sent it) and B gets CANCEL."""
        with self._lock:
            if self.a_canceled:
                return
            self.a_canceled = True
        if not self.res.finished:
            try:
                self.res.send(487, _log_send_error)
            except Exception as exc:  # noqa: BLE001 - A is gone either way
                logger.debug("b2bua: 487 to A not sent: %s", exc)
        uac_req = self.current
        if uac_req is None:
            return
        headers = {}
        if cancel_msg is not None:
            headers = {h: cancel_msg.get(h) for h in ("Reason", "X-Reason") if cancel_msg.has(h)}
        logger.debug("b2bua: A canceled, canceling B")
        try:
            uac_req.cancel({"headers": headers}, _log_send_error)
        except Exception as exc:  # noqa: BLE001
            logger.debug("b2bua: CANCEL to B not sent: %s", exc)

    def _on_a_update(self, _ureq: Any, ures: Response) -> None:
        if self.answer_a:
            ures.send(200, {"body": self.answer_a, "headers": {"Content-Type": "application/sdp"}},
                      _log_send_error)
        else:
            ures.send(500, _log_send_error)

    def _on_provisional(self, pres: Response) -> None:
        try:
            if (pres.status or 0) > 101 and self.pass_provisional and not self.res.finished:
                self._relay(pres)
        finally:
            _call_user(self.cb_provisional, pres, owner=self.srf)   # also for a relayed 18x with SDP (defect 24)

    def _relay(self, pres: Response) -> None:
        headers = self._headers_for_a(pres)
        fn_ack = None
        if any(k.lower() == "require" and "100rel" in str(v).lower() for k, v in headers.items()):
            with self._prack_cond:
                self._pracks += 1
            fn_ack = self._on_prack
        body = None
        if pres.body:
            try:
                body = self._sdp_for_a(pres)
            except Exception as exc:
                logger.exception("b2bua: local_sdp_a failed on %s; failing the call", pres.status)
                self.failure = exc
                if fn_ack is not None:
                    self._on_prack(None)
                self.res.send(500, _log_send_error)
                if self.current is not None:
                    self.current.cancel(None, _log_send_error)
                return
        opts: dict[str, Any] = {"headers": headers}
        if body:
            opts["body"] = body
        self.res.send(pres.status or 183, pres.reason, opts, _log_send_error, fn_ack)

    def _on_prack(self, _prack: Any) -> None:
        with self._prack_cond:
            self._pracks -= 1
            self._prack_cond.notify_all()

    def _wait_for_pracks(self) -> None:
        with self._prack_cond:
            if self._pracks > 0:
                logger.debug("b2bua: waiting for %d PRACK(s) from A", self._pracks)
                self._prack_cond.wait_for(lambda: self._pracks <= 0, PRACK_WAIT)

    def _headers_for_a(self, b_res: Any) -> dict[str, Any]:
        headers = copy_headers(b_res, self.proxy_response_headers)
        extra = self.response_headers
        if callable(extra):
            extra = call(extra, b_res, dict(headers), owner=self.srf) if b_res is not None else None
        if isinstance(extra, Mapping):
            _merge(headers, extra)
        return headers

    def _sdp_for_a(self, b_res: Any) -> Any:
        """The SDP for A from B's: ``local_sdp_a`` applied, cached per identical B SDP."""
        sdp_b = b_res.body
        cseq = b_res.get("CSeq") or ""
        if not sdp_b or cseq.split()[-1:] == ["SUBSCRIBE"]:
            return sdp_b or None
        cached = self._sdp_cache
        if cached is not None and cached[0] == sdp_b:
            return cached[1]
        fn = self.local_sdp_a
        if not fn:
            value = sdp_b
        elif callable(fn):
            value = _resolve(call(fn, sdp_b, b_res, owner=self.srf))
        else:
            value = fn
        self._sdp_cache = (sdp_b, value)
        self.answer_a = value
        return value

    def _on_uac(self, index: int, err: BaseException | None, result: Any = None) -> None:
        """B's final outcome (on B's key)."""
        self.current = None
        if err is not None:
            self._b_failed(index, err)
            return
        if self.is_3pcc:
            uac: Dialog | None = None
            final = result.res
        else:
            uac = result
            final = uac.res
            uac.queue_requests = True
            _call_user(self.cb_finalized_uac, uac, owner=self.srf)
        self._wait_for_pracks()
        try:
            sdp = self._sdp_for_a(final)
        except Exception as exc:
            logger.exception("b2bua: local_sdp_a failed on B's answer")
            self._drop_b(uac, result)
            if not self.res.finished:
                self.res.send(500, _log_send_error)
            self.out.fail(exc)
            return
        if self.out.abandoned:
            self._drop_b(uac, result)
            return
        self.srf.create_uas(self.req, self.res, {"headers": self._headers_for_a(final), "local_sdp": sdp},
                            functools.partial(self._on_uas, uac, result))

    def _b_failed(self, index: int, err: BaseException) -> None:
        status = err.status if isinstance(err, SipError) else None
        if self.failure is not None:
            err = self.failure
        elif (index + 1 < len(self.targets) and not self.a_canceled and not self.req.canceled
              and not self.res.finished and status != 487 and not (status and status >= 600)):
            logger.info("b2bua: B leg to %s failed (%s); trying %s", self.targets[index], err,
                        self.targets[index + 1])
            self.attempt(index + 1)
            return
        if self.pass_failure and not self.res.finished:
            code = status if isinstance(status, int) and 300 <= status <= 699 else 500
            reason = err.reason if isinstance(err, SipError) and code == status else None
            opts = {"headers": self._headers_for_a(getattr(err, "res", None))}
            try:
                if reason:
                    self.res.send(code, reason, opts, _log_send_error)
                else:
                    self.res.send(code, opts, _log_send_error)
            except Exception as exc:  # noqa: BLE001
                logger.debug("b2bua: failure not passed to A: %s", exc)
        self.out.fail(err)

    def _drop_b(self, uac: Dialog | None, result: Any) -> None:
        """B answered but A will not be connected: end B."""
        if uac is None and result is not None:
            try:
                uac = _resolve(result.ack(sdp_edit.black_hole(result.sdp)))
            except Exception as exc:  # noqa: BLE001
                logger.warning("b2bua: could not ACK B before hanging up: %s", exc)
                return
        if uac is not None and uac.connected:
            uac.queue_requests = False
            uac.destroy(None, _log_send_error)

    # -- A leg -------------------------------------------------------------------------------------
    def _on_uas(self, uac: Dialog | None, result: Any, err: BaseException | None,
                uas: Dialog | None = None) -> None:
        """A answered (on A's dialog key) or failed."""
        if err is not None or uas is None:
            logger.debug("b2bua: A leg failed after B answered: %s", err)
            self._drop_b(uac, result)
            self.out.fail(err or DrachtioError("b2bua: A leg not answered"))
            return
        if uac is None:
            uas.once("ack", functools.partial(self._on_a_ack_3pcc, uas, result))
            return
        uas.other = uac
        uac.other = uas

        def release(*_args: Any) -> None:
            # after the current A event has been handled (user listeners included)
            self.srf._agent.submit(dialog_key(uas.id), setattr, uac, "queue_requests", False)
        uas.once("ack", release)
        uas.once("destroy", release)
        self.out.succeed_here(B2BUAResult(uas, uac), dialog_key(uas.id))

    def _on_a_ack_3pcc(self, uas: Dialog, result: Any, ack: Request) -> None:
        """Late offer: A's ACK carries A's answer; ACK B with it (through local_sdp_b)."""
        sdp = ack.body or None
        try:
            if callable(self.local_sdp_b):
                sdp = _resolve(call(self.local_sdp_b, sdp, owner=self.srf))
            uac = _resolve(result.ack(sdp))
        except Exception as exc:
            logger.exception("b2bua: could not complete the late-offer B leg")
            uas.destroy(None, _log_send_error)
            self.out.fail(exc)
            return
        uas.other = uac
        uac.other = uas
        self.out.succeed_here(B2BUAResult(uas, uac), dialog_key(uas.id))


# --------------------------------------------------------------------------- entry point

def check_legs(form: str, req: Any, res: Any) -> None:
    """TypeError naming the expected form unless ``req``/``res`` are the incoming Request and
    its Response (a common slip is the URI first, as in an old README of the original)."""
    if not isinstance(req, Request):
        hint = " (the URI comes after req and res)" if isinstance(req, str) else ""
        raise TypeError(f"{form}: req must be the incoming Request, got {type(req).__name__} {req!r:.60}{hint}")
    if not isinstance(res, Response):
        raise TypeError(f"{form}: res must be the Response of req, got {type(res).__name__} {res!r:.60}")


def create_b2bua(srf: Srf, req: Request, res: Response, uri: Any = None, opts: Any = None,
                 progress: Any = None, callback: Any = None, **kwargs: Any) -> Any:
    """Bridge ``req`` (A) to ``uri`` (B); see :meth:`drachtio_srf.Srf.create_b2bua`."""
    check_legs("create_b2bua(req, res, uri, opts, ...)", req, res)
    uri, o, p, callback = uac_args(uri, opts, progress, callback, **kwargs)
    for key in ("cb_request", "cb_provisional", "cb_finalized_uac"):
        if p.get(key) is None and o.get(key) is not None:
            p[key] = o[key]
        if p.get(key) is not None and not callable(p[key]):
            raise TypeError(f"create_b2bua: {key} must be callable")
    uri = uri if uri is not None else o.get("uri")
    targets = [uri] if isinstance(uri, str) else list(uri or [])
    if not targets or not all(isinstance(t, str) and t for t in targets):
        raise ValueError("create_b2bua: uri must be a string or a non-empty list of strings")
    if (req.method or "").upper() not in ("INVITE", "SUBSCRIBE"):
        raise ValueError(f"create_b2bua: cannot bridge a {req.method} request")
    delivery = _Delivery(srf, callback)
    b2b = _B2BUA(srf, req, res, targets, o, p, delivery)
    b2b.attempt(0)
    return srf if callback is not None else delivery.future
