"""The one table of JavaScript-style names, and option-dict normalisation.

PEP 8 names are canonical.  Each class listed in :data:`ALIASES` gets, through
:func:`install_aliases`, its JS names as class attributes bound to the *same* object as the PEP 8
name (``Srf.createUAS is Srf.create_uas``).  Instance attributes that are not properties get a
forwarding property, so ``dialog.onHold`` reads and writes ``dialog.on_hold``.
"""
from __future__ import annotations

import re
from collections.abc import Callable, Mapping
from typing import Any, TypeVar

__all__ = ["ALIASES", "OPTION_NAMES", "install_aliases", "normalize_opts", "to_snake"]

T = TypeVar("T", bound=type)

# JS name -> PEP 8 name, per class name.
ALIASES: dict[str, dict[str, str]] = {
    "Srf": {
        "createUAS": "create_uas",
        "createUAC": "create_uac",
        "createB2BUA": "create_b2bua",
        "proxyRequest": "proxy_request",
        "findDialogById": "find_dialog_by_id",
        "findDialogByCallIDAndFromTag": "find_dialog_by_call_id_and_from_tag",
        "addDialog": "add_dialog",
        "removeDialog": "remove_dialog",
        "endSession": "end_session",
        "unregisterForMessages": "unregister_for_messages",
        "reregisterForMessages": "reregister_for_messages",
        "parseUri": "parse_uri",
        "stringifyUri": "stringify_uri",
    },
    "Dialog": {
        "dialogType": "dialog_type",
        "onHold": "on_hold",
        "subscribeEvent": "subscribe_event",
        "toJSON": "to_json",
        "getCountOfSubscriptions": "get_count_of_subscriptions",
        "addSubscription": "add_subscription",
        "removeSubscription": "remove_subscription",
        "queueRequests": "queue_requests",
    },
    "SipInfo": {"callId": "call_id", "localTag": "local_tag", "remoteTag": "remote_tag"},
    "Request": {
        "stackTime": "stack_time",
        "stackTxnId": "stack_txn_id",
        "stackDialogId": "stack_dialog_id",
        "isNewInvite": "is_new_invite",
        "receivedOn": "received_on",
        "sessionToken": "session_token",
        "callingNumber": "calling_number",
        "callingName": "calling_name",
        "calledNumber": "called_number",
        "canFormDialog": "can_form_dialog",
        "getParsedHeader": "get_parsed_header",
        "callId": "call_id",
        "toJSON": "to_json",
        "toString": "to_string",
    },
    "Response": {
        "statusCode": "status_code",
        "finalResponseSent": "final_response_sent",
        "headersSent": "headers_sent",
        "stackTime": "stack_time",
        "stackTxnId": "stack_txn_id",
        "stackDialogId": "stack_dialog_id",
        "getParsedHeader": "get_parsed_header",
        "getHeader": "get_header",
        "setHeader": "set_header",
        "removeHeader": "remove_header",
        "toJSON": "to_json",
        "toString": "to_string",
        "callingNumber": "calling_number",
        "callingName": "calling_name",
        "calledNumber": "called_number",
        "canFormDialog": "can_form_dialog",
    },
}
"""JS name -> PEP 8 name, per class name; :func:`install_aliases` reads it."""

# JS option key -> PEP 8 option key, for keys the generic camelCase rule would get wrong or that
# are worth stating.  Any other camelCase key is converted by :func:`to_snake`.
OPTION_NAMES: dict[str, str] = {
    "localSdp": "local_sdp",
    "localSdpA": "local_sdp_a",
    "localSdpB": "local_sdp_b",
    "noAck": "no_ack",
    "callingNumber": "calling_number",
    "callingName": "calling_name",
    "calledNumber": "called_number",
    "followRedirects": "follow_redirects",
    "keepUriOnRedirect": "keep_uri_on_redirect",
    "enablePing": "enable_ping",
    "pingInterval": "ping_interval",
    "retryMaxDelay": "retry_max_delay",
    "maxAttempts": "max_attempts",
    "connectTimeout": "connect_timeout",
    "cbRequest": "cb_request",
    "cbProvisional": "cb_provisional",
    "cbFinalizedUac": "cb_finalized_uac",
    "responseHeaders": "response_headers",
    "proxyRequestHeaders": "proxy_request_headers",
    "proxyResponseHeaders": "proxy_response_headers",
    "passFailure": "pass_failure",
    "passProvisionalResponses": "pass_provisional_responses",
    "remainInDialog": "remain_in_dialog",
    "recordRoute": "record_route",
    "provisionalTimeout": "provisional_timeout",
    "finalTimeout": "final_timeout",
    "fullResponse": "full_response",
    "stackDialogId": "stack_dialog_id",
    "stackTxnId": "stack_txn_id",
    "dialogStateEmitter": "dialog_state_emitter",
}
"""JS option key -> PEP 8 option key, where the generic camelCase rule would be wrong."""

# option values that are themselves option dicts (normalised too); 'headers' never is.
_NESTED = {"reconnect", "progress"}

_CAMEL = re.compile(r"(?<=[a-z0-9])([A-Z])")


_SNAKE: dict[str, str] = {}      # names converted so far (option keys are a small set)


def to_snake(name: str) -> str:
    """``localSdp`` -> ``local_sdp``; names without capitals are returned unchanged."""
    snake = _SNAKE.get(name)
    if snake is None:
        if name in OPTION_NAMES:
            snake = OPTION_NAMES[name]
        elif name != name.lower():
            snake = _CAMEL.sub(lambda m: "_" + m.group(1), name).lower()
        else:
            snake = name
        if len(_SNAKE) < 4096 and isinstance(name, str):
            _SNAKE[name] = snake
    return snake


def normalize_opts(opts: Mapping[str, Any] | None = None, **kwargs: Any) -> dict[str, Any]:
    """Merge a JS-style option dict and keyword options into one dict with PEP 8 keys.

    Keyword arguments win over dict entries.  ``headers`` (and any other value) is kept as given;
    nested option dicts such as ``reconnect`` are normalised too.
    """
    out: dict[str, Any] = {}
    if opts is not None and not isinstance(opts, Mapping):
        raise TypeError(f"options must be a dict (the JS options object) or keywords, got "
                        f"{type(opts).__name__} {opts!r:.60}")
    if opts:
        for key, value in opts.items():
            skey = to_snake(key)
            if skey in _NESTED and isinstance(value, Mapping):
                value = normalize_opts(value)
            out[skey] = value
    for key, value in kwargs.items():
        if value is None:
            continue
        skey = to_snake(key)
        if skey in _NESTED and isinstance(value, Mapping):
            value = normalize_opts(value)
        out[skey] = value
    return out


def uac_args(uri: Any, opts: Any, progress: Any, callback: Any,
             **kwargs: Any) -> tuple[Any, dict[str, Any], dict[str, Any], Any]:
    """Sort the argument forms of ``create_uac``/``create_b2bua`` into (uri, opts, progress, cb).

    ``(uri, opts, progress, cb)``, ``({uri, ...}, progress, cb)``, with progress or opts left out
    (a callable then moves up into the callback's place); opts and progress come back normalised.
    """
    if isinstance(uri, Mapping):
        uri, opts, progress, callback = None, uri, opts, progress
    if callable(progress) and callback is None:
        callback, progress = progress, None
    if callable(opts) and progress is None and callback is None:
        callback, opts = opts, None
    o = normalize_opts(opts, **kwargs)
    p = normalize_opts(progress) if isinstance(progress, Mapping) else {}
    return uri, o, p, callback


def _forwarding_property(name: str) -> property:
    def fget(self: Any) -> Any:
        return getattr(self, name)

    def fset(self: Any, value: Any) -> None:
        setattr(self, name, value)

    return property(fget, fset, doc=f"JS alias of ``{name}``")


def install_aliases(cls: T, table: Mapping[str, str] | None = None) -> T:
    """Class decorator: add the JS names of ``ALIASES[cls.__name__]`` (or ``table``) to ``cls``.

    A name that resolves to a class attribute (method, property, staticmethod) is aliased to that
    very object; a plain instance attribute gets a forwarding property.
    """
    entries = table if table is not None else ALIASES.get(cls.__name__, {})
    for js_name, py_name in entries.items():
        target = None
        for klass in cls.__mro__:
            if py_name in klass.__dict__:
                target = klass.__dict__[py_name]
                break
        if target is None or not (callable(target) or hasattr(target, "__get__")):
            target = _forwarding_property(py_name)   # instance field (maybe with a class default)
        setattr(cls, js_name, target)
    return cls


def alias(cls_name: str) -> Callable[[T], T]:
    """Decorator form with an explicit table name (for subclasses named differently)."""
    def deco(cls: T) -> T:
        return install_aliases(cls, ALIASES.get(cls_name, {}))
    return deco
