"""Options of the embedded server (``ServerConfig``), filled in by the CLI and ``EmbeddedServer``."""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

DEFAULT_VERSION = "v0.9.10"
"""drachtio-server version the server reports to apps by default."""


@dataclass
class ServerConfig:
    """Options of the embedded server (the CLI and EmbeddedServer fill it in)."""

    admin_host: str = "127.0.0.1"
    """Address of the admin port apps connect to."""
    admin_port: int = 9022
    """Admin port (0: any free port; the bound one after start)."""
    secret: str = "cymru"
    """Shared secret apps authenticate with."""
    sip_host: str = "127.0.0.1"
    """Address the SIP transports bind."""
    sip_port: int = 5060
    """SIP port (0: any free port; the bound one after start)."""
    transports: tuple[str, ...] = ("udp", "tcp")
    """SIP transports to open (``'udp'``, ``'tcp'``)."""
    external_host: str | None = None
    """Public address put in Via/Contact instead of ``sip_host`` (None: ``sip_host``)."""
    version: str = DEFAULT_VERSION
    """Version string reported to apps when they authenticate."""
    outbound_proxy: str | None = None
    """Proxy URI for requests from apps that name none themselves (None: sent directly)."""
    cdrs: bool = False
    """True to send CDR frames to the apps."""
    t1: float | None = None            # SIP timer T1 in seconds (None: the stack's default 0.5)
    """SIP timer T1 in seconds (None: the stack's default 0.5)."""
    #: method (or '*') -> 'tcp://host:port': new requests the server delivers by dialling the app
    outbound: dict[str, Any] = field(default_factory=dict)
    """Method (or ``'*'``) to ``tcp://host:port``: new requests the server delivers by dialling the app."""
    tls_port: int | None = None        # admin port for apps connecting with TLS (0: any free port)
    """Admin port for apps connecting with TLS (None: no TLS; 0: any free port)."""
    tls_cert: str | None = None        # PEM certificate (chain) for the TLS admin port
    """PEM certificate (chain) for the TLS admin port."""
    tls_key: str | None = None         # PEM private key for it (None: inside tls_cert)
    """PEM private key for the TLS admin port (None: inside ``tls_cert``)."""
    #: seconds kept between an echo and the first frame that answers it (0, the default: forwarded
    #: at once, as drachtio-server does; a positive value is for experiments)
    echo_gap: float = 0.0
    """Seconds between an echo and the first frame answering it (0: forwarded at once)."""
    #: overload: new requests get 503 + Retry-After while this many requests wait for an app's
    #: final answer (sofia-sip's "proceeding queue full"), or the server holds ``max_transactions``
    #: server transactions, or the app's connection has ``MAX_APP_BACKLOG`` bytes unsent
    max_pending: int = 2000
    """Requests waiting for an app's final answer above which new requests get 503."""
    max_transactions: int = 200_000
    """Server transactions held above which new requests get 503."""
    retry_after: int = 5
    """Retry-After seconds of an overload 503."""
    #: seconds an app connection has to authenticate before it is closed (0: no limit)
    auth_timeout: float = 5.0
    """Seconds an app connection has to authenticate before it is closed (0: no limit)."""

