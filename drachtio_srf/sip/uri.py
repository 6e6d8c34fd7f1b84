"""SIP and tel URIs: parse_uri / stringify_uri (drachtio-srf's parseUri / stringifyUri)."""

from __future__ import annotations

import logging
import re
from collections.abc import Mapping
from typing import Any

from .headers import AttrDict
from .numbers import port_number

logger = logging.getLogger(__name__)

__all__ = ["parseUri", "parse_uri", "stringifyUri", "stringify_uri"]

_HOST_RE = re.compile(r"[0-9A-Za-z\-_]+(?:\.[0-9A-Za-z\-_]+)*\.?")
_IPV6_RE = re.compile(r"[0-9A-Fa-f:.]+")
_TEL_NUMBER_RE = re.compile(r"\+?[0-9A-Fa-f*#\-.()]+")
_NO_SPACE_RE = re.compile(r"[\s<>\"]")


def _uri_params(text: str) -> AttrDict:
    """``a=1;lr`` -> {a: '1', lr: None}; names kept as given (like the original)."""
    params = AttrDict()
    for item in text.split(";"):
        if not item:
            continue
        name, sep, value = item.partition("=")
        params[name] = value if sep and value else None
    return params


def _parse_tel(s: str) -> AttrDict | None:
    if s[0] == "<":
        gt = s.find(">")
        if gt < 0:
            return None
        s = s[1:gt].strip()
    if s[:4].lower() != "tel:":
        return None
    number, sep, rest = s[4:].partition(";")
    if not _TEL_NUMBER_RE.fullmatch(number) or _NO_SPACE_RE.search(rest):
        return None
    params = _uri_params(rest) if sep else AttrDict()
    return AttrDict(scheme="tel", number=number, context=params.get("phone-context"),
                    params=params)


def parse_uri(s: Any) -> AttrDict | None:
    """Parse a ``sip:``/``sips:``/``tel:`` URI; None for name-addrs and anything else.

    sip(s): AttrDict{family ('ipv4' | 'ipv6': bracketed host), scheme, user, password, host
    (IPv6 without brackets), port (int | None), params (flag -> None), headers}.
    tel (optionally in ``<>``): AttrDict{scheme: 'tel', number, context, params}.
    A mapping is returned unchanged (as the original does with objects).
    """
    if isinstance(s, Mapping):
        return s  # type: ignore[return-value]
    if not isinstance(s, str):
        return None
    s = s.strip()
    if not s:
        return None
    colon = s.find(":")
    scheme = s[:colon].lower()
    if scheme not in ("sip", "sips"):
        return _parse_tel(s)
    rest = s[colon + 1:]
    if _NO_SPACE_RE.search(rest):
        return None
    rest, qsep, hdr_text = rest.partition("?")
    at = rest.find("@")
    user: str | None = None
    password: str | None = None
    if at >= 0:
        userinfo = rest[:at]
        rest = rest[at + 1:]
        user, psep, pw = userinfo.partition(":")
        if not user:
            return None
        if psep:
            if not pw:
                return None
            password = pw
    hostport, psep, param_text = rest.partition(";")
    if hostport.startswith("["):
        close = hostport.find("]")
        if close < 0:
            return None
        host = hostport[1:close]
        if not _IPV6_RE.fullmatch(host):
            return None
        port_text = hostport[close + 1:]
        if port_text:
            if port_text[0] != ":":
                return None
            port_text = port_text[1:]
        else:
            port_text = None
        family = "ipv6"
    else:
        host, csep, port_text = hostport.partition(":")
        if not csep:
            port_text = None
        if not _HOST_RE.fullmatch(host):
            return None
        family = "ipv4"
    port: int | None = None
    if port_text is not None:
        port = port_number(port_text)
        if port is None:
            return None
    headers = AttrDict()
    if qsep:
        for item in hdr_text.split("&"):
            if not item:
                continue
            name, esep, value = item.partition("=")
            headers[name] = value if esep else None
    return AttrDict(family=family, scheme=scheme, user=user, password=password, host=host,
                    port=port, params=_uri_params(param_text) if psep else AttrDict(),
                    headers=headers)


def _params_text(params: Mapping[str, Any] | None) -> str:
    if not params:
        return ""
    return "".join(f";{k}" if v is None or v == "" else f";{k}={v}" for k, v in params.items())


def stringify_uri(uri: Any) -> str:
    """The inverse of parse_uri: strings are returned unchanged, IPv6 hosts re-bracketed."""
    if isinstance(uri, str):
        return uri
    if not isinstance(uri, Mapping):
        raise TypeError(f"cannot stringify a URI from {type(uri).__name__}")
    scheme = uri.get("scheme") or "sip"
    if scheme == "tel":
        params = dict(uri.get("params") or {})
        context = uri.get("context")
        if context and "phone-context" not in params:
            params["phone-context"] = context
        return f"tel:{uri.get('number') or ''}{_params_text(params)}"
    parts = [scheme, ":"]
    user = uri.get("user")
    if user:
        parts.append(user)
        if uri.get("password"):
            parts += [":", uri["password"]]
        parts.append("@")
    host = str(uri.get("host") or "")
    if ":" in host and not host.startswith("["):
        host = f"[{host}]"
    parts.append(host)
    port = uri.get("port")
    if port or port == 0 and port is not False:     # (port 0 is a port: keep it)
        parts += [":", str(port)]
    parts.append(_params_text(uri.get("params")))
    headers = uri.get("headers")
    if headers:
        parts.append("?" + "&".join(k if v is None else f"{k}={v}" for k, v in headers.items()))
    return "".join(parts)


parseUri = parse_uri
"""JS alias of :func:`parse_uri`: returns the parsed URI, or None when not a URI."""
stringifyUri = stringify_uri
"""JS alias of :func:`stringify_uri`: returns a parsed URI as text."""
