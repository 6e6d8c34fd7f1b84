"""Answering 401/407 challenges to requests the app sent with ``auth`` (PROTOCOL 4.11).

The agent calls :func:`on_challenge` on its reader thread for a 401/407 to such a request.
If the challenge can be answered, this module gets the credentials (a dict, or the app's
function, run on the dispatcher), sends a NEW request (same Call-ID and From tag, CSeq + 1,
``Authorization`` / ``Proxy-Authorization``; pinned to the challenger when the next hop was a
host name) as a new Request, which the challenged one emits as ``authenticate(new_req)``, as
drachtio-srf does.  The challenged Request keeps the message it was sent with; only its txnId
follows the retry, so ``req.cancel()`` on it cancels the new transaction.  The library's own
response hooks move to the new Request, and the agent delivers each response to the
``response`` listeners of the new Request and of every request it re-sends (``_retry_of``).  A
CANCEL the app sends while the retry is being prepared is held and sent for the new transaction
(API-DETAILS B5).

Each (header, realm) challenge is answered once; a second challenge for the same realm is
passed to the app as the final response (e.g. create_uac fails with SipError(401/407)), unless
it says ``stale=true`` (the nonce expired, the credentials were fine).  Credentials for several
realms (a proxy's 407 then the far end's 401) accumulate.
"""
from __future__ import annotations

import concurrent.futures
import inspect
import logging
import re
import threading
from collections.abc import Callable, Mapping
from typing import TYPE_CHECKING, Any

from .digest import (
    Challenge,
    Credentials,
    DigestError,
    NonceCounter,
    build_authorization,
    choose_challenge,
    parse_challenges,
)
from .usercode import call

if TYPE_CHECKING:
    from .channel import ServerConn
    from .outgoing import Sender as Agent
    from .request import Request
    from .response import Response

logger = logging.getLogger(__name__)

__all__ = [
    "CREDENTIALS_TIMEOUT",
    "MAX_RETRIES",
    "AuthState",
    "auth_state",
    "credentials_from",
    "defer_cancel",
    "next_hop_is_ip",
    "on_challenge",
]

MAX_RETRIES = 4               # authenticated retries of one request, all realms and stale nonces
"""Most authenticated retries of one request, over all realms and stale nonces."""
CREDENTIALS_TIMEOUT = 32.0    # longest wait for an auth function's callback (Timer B)
"""Longest wait, in seconds, for an auth function's callback (Timer B)."""

_NONCES = NonceCounter()
_IP_HOST = re.compile(r"^sips?:(?:[^@;?>]*@)?(\d{1,3}(?:\.\d{1,3}){3}|\[[0-9A-Fa-f:.]+\])(?::\d+)?(?:[;?>]|$)",
                      re.IGNORECASE)
_TRANSPORT = re.compile(r";transport=([^;\s>?]+)", re.IGNORECASE)
_REPLACED = {"from", "f", "call-id", "i", "cseq"}


class AuthState:
    """What a sent request needs for its retries: the app's send parameters and progress."""

    def __init__(self, auth: Any, *, method: str, uri: str | None, headers: Mapping[str, Any] | None,
                 body: str | None, dialog_id: str | None, proxy: str | None) -> None:
        self.auth = auth
        """The app's auth option: credentials or a function returning them."""
        self.method = method
        """SIP method of the request."""
        self.uri = uri
        """Request-URI the app sent to."""
        self.headers = dict(headers or {})
        """The app's headers, copied, reused for each retry."""
        self.body = body
        """The request body, resent on each retry."""
        self.dialog_id = dialog_id
        """Dialog id for an in-dialog request, else None."""
        self.proxy = proxy
        """Outbound proxy the request was sent through, if any."""
        self.tries = 0
        """Authenticated retries made so far (at most MAX_RETRIES)."""
        self.answered: dict[tuple[str, str], str] = {}   # (header name, realm) -> header value
        """Authorization header values already computed, by (header name, realm)."""
        self.lock = threading.Lock()
        """Guards ``held`` and the retry progress."""
        self.held: list[Callable[[], None]] | None = None   # CANCELs held while a retry is prepared
        """CANCEL senders held while a retry is being prepared (None: not holding)."""


def next_hop_is_ip(proxy: str | None, uri: str | None) -> bool:
    """Whether the effective next hop (the proxy if any, else the request-URI) is an IP literal."""
    hop = proxy or uri or ""
    if not hop.lower().startswith(("sip:", "sips:")):
        hop = "sip:" + hop
    return bool(_IP_HOST.match(hop))


def credentials_from(value: Any) -> Credentials:
    """A dict ``{username, password}``, a ``(username, password)`` pair or Credentials."""
    if isinstance(value, Credentials):
        return value
    if isinstance(value, Mapping):
        user, pw = value.get("username"), value.get("password")
    elif isinstance(value, (tuple, list)) and len(value) == 2:
        user, pw = value
    else:
        raise TypeError(f"auth credentials must be {{'username', 'password'}}, got {type(value).__name__}")
    if not isinstance(user, str) or not isinstance(pw, str):
        raise TypeError("auth credentials need string 'username' and 'password'")
    return Credentials(user, pw)


def defer_cancel(req: Request, send: Callable[[], None]) -> bool:
    """Hold a CANCEL while ``req`` is being re-sent with credentials; True if held."""
    state: AuthState | None = getattr(req, "_auth_state", None)
    if state is None:
        return False
    with state.lock:
        if state.held is None:
            return False
        logger.debug("holding CANCEL of %r until its authenticated retry is sent", req)
        state.held.append(send)
        return True


def _release_cancels(state: AuthState) -> None:
    with state.lock:
        held, state.held = state.held or [], None
    for send in held:
        try:
            send()
        except Exception:
            logger.exception("held CANCEL could not be sent")


def auth_state(auth: Any, **params: Any) -> AuthState:
    """The retry state for a request sent with ``auth`` (credentials, a function giving them, or
    the AuthState of the request being re-sent); ``params`` are AuthState's send parameters."""
    return auth if isinstance(auth, AuthState) else AuthState(auth, **params)


def on_challenge(agent: Agent, sc: ServerConn, req: Request, res: Response, ack: Callable[..., Any]) -> bool:
    """Called by the agent for a 401/407 (reader thread).  True if a retry is under way and the
    response must not reach the app; False to deliver it as usual."""
    state: AuthState | None = getattr(req, "_auth_state", None)
    status = res.status or 0
    if state is None or status not in (401, 407) or req.method in ("ACK", "CANCEL"):
        return False
    header = "Proxy-Authenticate" if status == 407 else "WWW-Authenticate"
    answer = "Proxy-Authorization" if status == 407 else "Authorization"
    try:
        lines = res.msg.get_all(header)
        if not any(v.strip() for v in lines):
            raise DigestError(f"missing {header} in {status} response")
        challenge = choose_challenge(parse_challenges(lines))
    except DigestError as err:
        logger.warning("%s %s: cannot answer challenge: %s", req.method, req.uri, err)
        return False
    key = (answer, challenge.realm)
    if state.tries >= MAX_RETRIES or (key in state.answered and not challenge.stale):
        logger.info("%s %s: challenge for realm %r after authenticating; giving up", req.method,
                    req.uri, challenge.realm)
        return False
    state.tries += 1
    with state.lock:
        state.held = []
    old_txn = req.stack_txn_id or ""
    with sc.lock:       # stays registered meanwhile, so a lost connection still fails it
        sc.sent[old_txn] = req

    def give_up(err: BaseException) -> None:
        logger.warning("%s %s: not retrying with credentials: %s", req.method, req.uri, err)
        with sc.lock:
            if sc.sent.get(old_txn) is req:
                del sc.sent[old_txn]
        agent.deliver_response(req, res, ack)
        _release_cancels(state)

    def with_credentials(err: BaseException | None, creds: Any) -> None:
        if err is not None:
            give_up(err)
            return
        try:
            _send_retry(agent, sc, req, res, state, challenge, key, credentials_from(creds), give_up)
        except Exception as exc:  # noqa: BLE001 - the app hears the challenge instead
            give_up(exc)

    _get_credentials(agent, state.auth, req, res, with_credentials)
    return True


def _get_credentials(agent: Agent, auth: Any, req: Request, res: Response,
                     done: Callable[[BaseException | None, Any], None]) -> None:
    """Credentials from ``auth``: a value at once, or the app's function on the dispatcher.

    The function is ``fn(req, res)`` returning the credentials (or a Future of them), or the
    drachtio-srf form ``fn(req, res, callback)`` calling ``callback(err, username, password)``.
    """
    if not callable(auth):
        try:
            creds = credentials_from(auth)
        except TypeError as err:
            done(err, None)
            return
        done(None, creds)
        return
    lock = threading.Lock()
    finished = [False]
    timer: list[Any] = []

    def finish(err: BaseException | None, creds: Any) -> None:
        with lock:
            if finished[0]:
                return
            finished[0] = True
        for t in timer:
            t.cancel()
        done(err, creds)

    def callback(err: BaseException | None = None, username: Any = None, password: Any = None) -> None:
        if err is not None:
            finish(err if isinstance(err, BaseException) else RuntimeError(str(err)), None)
        elif isinstance(username, (Mapping, Credentials, tuple, list)):
            finish(None, username)
        else:
            finish(None, (username, password))

    def run() -> None:
        wants_cb = _takes_callback(auth)
        try:
            value = call(auth, req, res, callback, owner=agent) if wants_cb else call(auth, req, res, owner=agent)
        except Exception as exc:  # noqa: BLE001 - reported as the challenge reaching the app
            finish(exc, None)
            return
        if isinstance(value, concurrent.futures.Future):
            def resolved(f: concurrent.futures.Future) -> None:
                try:
                    finish(None, f.result())
                except Exception as exc:  # noqa: BLE001
                    finish(exc, None)
            value.add_done_callback(resolved)
        elif value is not None:
            finish(None, value)
        elif not wants_cb:
            finish(TypeError("auth function returned no credentials"), None)
        else:
            timer.append(agent.timers.call_later(
                CREDENTIALS_TIMEOUT, finish, TimeoutError("auth function never called back"), None))

    agent.submit(req._key, run)


def _takes_callback(fn: Callable[..., Any]) -> bool:
    """Whether ``fn`` accepts a third positional argument (the drachtio-srf callback form)."""
    try:
        params = list(inspect.signature(fn).parameters.values())
    except (TypeError, ValueError):
        return False
    if any(p.kind is p.VAR_POSITIONAL for p in params):
        return True
    positional = [p for p in params if p.kind in (p.POSITIONAL_ONLY, p.POSITIONAL_OR_KEYWORD)]
    return len(positional) >= 3


def _send_retry(agent: Agent, sc: ServerConn, req: Request, res: Response, state: AuthState,
                challenge: Challenge, key: tuple[str, str], creds: Credentials,
                give_up: Callable[[BaseException], None]) -> None:
    method = req.method or state.method
    digest_uri = req.uri or state.uri or ""
    value = build_authorization(challenge, username=creds.username, password=creds.password,
                                method=method, uri=digest_uri, body=state.body or "",
                                nc=_NONCES.next(challenge.realm, challenge.nonce))
    state.answered[key] = value
    headers = {k: v for k, v in state.headers.items()
               if k.lower() not in ("authorization", "proxy-authorization")}
    for name in ("Proxy-Authorization", "Authorization"):
        values = [v for (h, _realm), v in state.answered.items() if h == name]
        if values:
            headers[name] = values if len(values) > 1 else values[0]
    proxy = state.proxy
    if not state.dialog_id:
        headers = {k: v for k, v in headers.items() if k.lower() not in _REPLACED}
        cseq = req.msg.get_parsed_header("CSeq").seq
        headers["Call-ID"] = req.call_id
        headers["From"] = req.get("From")
        headers["CSeq"] = f"{cseq + 1} {method}"
        if not next_hop_is_ip(state.proxy, state.uri):
            m = _TRANSPORT.search(state.proxy or "") or _TRANSPORT.search(state.uri or "")
            host = res.source_address or ""
            host = f"[{host}]" if ":" in host and not host.startswith("[") else host
            proxy = f"sip:{host}:{res.source_port}" + (f";transport={m.group(1).lower()}" if m else "")

    def on_sent(err: BaseException | None, new_req: Request | None) -> None:
        if err is not None or new_req is None:
            give_up(err or RuntimeError("authenticated retry not sent"))
            return
        old_txn = req.stack_txn_id
        new_txn = new_req.stack_txn_id
        # send_request registered new_req for its responses; the library's hooks move over to
        # it, and its events stay on the original's dispatch key (in order with the app's code)
        new_req._key = req._key
        new_req._retry_of = req
        with sc.lock:
            if sc.sent.get(old_txn or "") is req:
                del sc.sent[old_txn or ""]
            new_req._hook_list, req._hook_list = req._hook_list, None
        # the requests re-sent so far keep their own messages; only their txnId follows the
        # retry, so req.cancel() on any of them cancels the transaction now under way
        earlier: Request | None = req
        while earlier is not None:
            earlier.stack_txn_id = new_txn
            earlier = earlier._retry_of
        logger.debug("%s re-sent with credentials: txn %s replaces %s", method, new_txn, old_txn)
        agent.emit_on(req._key, req, "authenticate", new_req)
        _release_cancels(state)

    agent.send_request(method=method, uri=state.uri, headers=headers, body=state.body,
                       dialog_id=state.dialog_id, proxy=proxy, conn=sc, auth=state, on_sent=on_sent)
