"""``python -m drachtio_srf.server``: run the embedded drachtio-compatible server in the foreground.

A drop-in for drachtio-server during development: it accepts drachtio-server's command-line
options under the same names, its ``-f/--file`` configuration XML and its ``DRACHTIO_*``
environment variables, maps what the embedded server supports onto :class:`ServerConfig`, and
names on stderr every given option it ignores. Precedence, lowest first: built-in defaults, the
configuration file, the environment, the command line. Runs until SIGTERM or SIGINT, then
exits 0.
"""
from __future__ import annotations

import argparse
import asyncio
import atexit
import gc
import logging
import os
import signal
import socket
import sys
import tempfile
import xml.etree.ElementTree as ET
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from drachtio_srf import __version__, trace
from drachtio_srf.server import parse_contact
from drachtio_srf.server.core import DEFAULT_VERSION, Core, ServerConfig
from drachtio_srf.server.outbound import parse_outbound_map

logger = logging.getLogger("drachtio_srf.server")

PROG = "python -m drachtio_srf.server"
"""The program name in usage and messages."""
LOGLEVELS = ("debug", "info", "notice", "warning", "error", "critical")
"""Accepted ``--loglevel`` values (drachtio-server's, and ``critical``; ``notice`` is ``info``)."""

DEFAULTS: dict[str, Any] = {
    "address": "127.0.0.1",
    "port": 9022,
    "secret": "cymru",
    "contact": "sip:127.0.0.1:5060;transport=udp,tcp",
    "loglevel": "info",
}
"""Built-in defaults (drachtio-server's, except the secret and the loopback addresses)."""

# drachtio-server options the embedded server accepts and ignores: name -> takes a value
_IGNORED_OPTIONS: dict[str, bool] = {
    "--daemon": False, "--user": True, "--local-net": True, "--dns-name": True,
    "--http-handler": True, "--http-method": True, "--sofia-loglevel": True, "--homer": True,
    "--homer-id": True, "--mtu": True, "--dh-param": True, "--aggressive-nat-detection": False,
    "--prometheus-scrape-port": True, "--memory-debug": False, "--tcp-keepalive-interval": True,
    "--min-tls-version": True, "--disable-nat-detection": False,
    "--blacklist-redis-address": True, "--blacklist-redis-port": True,
    "--blacklist-redis-key": True, "--blacklist-refresh-secs": True, "--always-send-180": False,
    "--globally-readable-logs": False, "--blacklist-redis-sentinels": True,
    "--blacklist-redis-master": True, "--blacklist-redis-password": True,
    "--tls-cipherlist": True, "--reject-register-with-no-realm": False,
}
_SHORT = {"--user": "-u", "--local-net": "-n", "--dns-name": "-d", "--http-handler": "-a",
          "--http-method": "-m", "--homer": "-y", "--homer-id": "-z"}

# drachtio-server environment variables: supported ones -> setting, the rest are ignored
_ENV = {"DRACHTIO_ADMIN_ADDRESS": "address", "DRACHTIO_ADMIN_TCP_PORT": "port",
        "DRACHTIO_ADMIN_TLS_PORT": "tls_port", "DRACHTIO_TLS_CERT_FILE": "cert_file",
        "DRACHTIO_TLS_KEY_FILE": "key_file", "DRACHTIO_TLS_CHAIN_FILE": "chain_file",
        "DRACHTIO_LOGLEVEL": "loglevel"}
_ENV_IGNORED = ("DRACHTIO_AGRESSIVE_NAT_DETECTION", "DRACHTIO_MEMORY_DEBUG",
                "DRACHTIO_TLS_DH_PARAM_FILE", "DRACHTIO_TLS_VERIFY_CLIENT_CERT",
                "DRACHTIO_HOMER_ADDRESS", "DRACHTIO_HOMER_PORT", "DRACHTIO_HOMER_ID",
                "DRACHTIO_HTTP_HANDLER_URI", "DRACHTIO_SOFIA_LOGLEVEL", "DRACHTIO_UDP_MTU",
                "DRACHTIO_TCP_KEEPALIVE_INTERVAL", "DRACHTIO_TPORT_QUEUESIZE")


class ConfigError(ValueError):
    """An option or configuration file the server cannot start with (exit status 2)."""


@dataclass
class Settings:
    """The server's settings gathered from defaults, file, environment and command line."""

    address: str | None = None
    """Admin listen address."""
    port: int | None = None
    """Admin (control protocol) TCP port."""
    secret: str | None = None
    """Shared secret apps authenticate with."""
    contacts: list[tuple[str, str | None]] = field(default_factory=list)
    """(contact, external address) pairs, in order; the first usable one is served."""
    external_ip: str | None = None
    """Public address advertised in SIP messages."""
    sip_port: int | None = None
    """SIP port overriding the contact's."""
    tls_port: int | None = None
    """TLS admin port (None: no TLS)."""
    cert_file: str | None = None
    """PEM certificate (chain) for the TLS admin port."""
    key_file: str | None = None
    """PEM private key (None: inside the certificate file)."""
    chain_file: str | None = None
    """PEM intermediate certificates appended to the certificate."""
    loglevel: str | None = None
    """One of :data:`LOGLEVELS`."""
    outbound_proxy: str | None = None
    """SIP URI every request the server sends goes through."""
    cdrs: bool | None = None
    """Send CDR events to apps."""
    t1: float | None = None
    """SIP timer T1 in seconds."""
    outbound: list[str] = field(default_factory=list)
    """``METHOD=tcp://host:port`` entries: outbound-connection mode."""
    version_string: str | None = None
    """Version reported to apps."""
    auth_timeout: float | None = None
    """Seconds an app connection has to authenticate (0: no limit)."""
    max_pending: int | None = None
    """New requests waiting for an app's final answer before new ones get 503."""
    max_transactions: int | None = None
    """Server transactions held before new requests get 503."""
    retry_after: int | None = None
    """Retry-After seconds of an overload 503."""
    ignored: list[str] = field(default_factory=list)
    """Given settings this server does not support, as the user wrote them."""

    def update(self, other: Settings) -> None:
        """Take every setting ``other`` gives (not None / not empty); merge ignored lists."""
        for name in self.__dataclass_fields__:
            value = getattr(other, name)
            if name == "ignored":
                self.ignored.extend(value)
            elif value not in (None, []):
                setattr(self, name, value)


# -- command line ------------------------------------------------------------------------------

def build_parser() -> argparse.ArgumentParser:
    """drachtio-server's options (same names), plus this server's own; defaults in --help."""
    p = argparse.ArgumentParser(
        prog=PROG, description="drachtio-compatible SIP server for drachtio apps (development "
        "drop-in for drachtio-server: same options, configuration file and environment "
        "variables; the options it does not support are accepted and named on stderr).",
        epilog="Precedence: built-in defaults < --file < DRACHTIO_* environment < command line. "
        "DRACHTIO_DEBUG=1 or DEBUG=drachtio:* turns on the wire trace.")
    p.add_argument("-v", "--version", action="store_true", help="print the version and exit")
    p.add_argument("-f", "--file", metavar="PATH",
                   help="drachtio.conf.xml to read (default: none; DRACHTIO_CONFIG_FILE_PATH)")
    p.add_argument("--noconfig", action="store_true",
                   help="read no configuration file (the default here; accepted for drachtio-server)")
    p.add_argument("-p", "--port", type=int, help=f"admin (control protocol) port (default: {DEFAULTS['port']})")
    p.add_argument("--address", help=f"admin listen address (default: {DEFAULTS['address']})")
    p.add_argument("--secret", help=f"shared secret apps authenticate with (default: {DEFAULTS['secret']})")
    p.add_argument("-c", "--contact", action="append", metavar="URI",
                   help="SIP address to listen on: sip:host[:port][;transport=udp,tcp]; the first "
                        f"with udp/tcp is served, others are ignored (default: {DEFAULTS['contact']})")
    p.add_argument("-x", "--external-ip", metavar="ADDRESS",
                   help="public address to advertise in SIP messages (default: the contact's)")
    p.add_argument("-l", "--loglevel", choices=LOGLEVELS,
                   help=f"log level (default: {DEFAULTS['loglevel']})")
    p.add_argument("--stdout", action="store_true",
                   help="log to the console (always so here: logs go to stderr)")
    p.add_argument("--tls-port", type=int, metavar="PORT",
                   help="also accept apps over TLS on this admin port (needs --cert-file; "
                        "default: no TLS)")
    p.add_argument("--cert-file", "--tls-cert", "--tls-cert-file", dest="cert_file", metavar="PEM",
                   help="certificate (chain) for the TLS admin port")
    p.add_argument("--key-file", "--tls-key", "--tls-key-file", dest="key_file", metavar="PEM",
                   help="private key for the TLS admin port (default: inside --cert-file)")
    p.add_argument("--chain-file", metavar="PEM",
                   help="intermediate certificates sent after --cert-file's")
    own = p.add_argument_group("options of this server (not drachtio-server's)")
    own.add_argument("--sip-port", type=int, help="SIP port (overrides the contact's)")
    own.add_argument("--outbound-proxy", metavar="URI", help="SIP URI of an outbound proxy")
    own.add_argument("--cdrs", action="store_true", default=None,
                     help="send CDR events to apps that route cdr:*")
    own.add_argument("--outbound", action="append", metavar="METHOD=tcp://HOST:PORT",
                     help="deliver new requests of METHOD ('*': any) by connecting to an app "
                          "that listens there (outbound-connection mode); repeatable")
    own.add_argument("--auth-timeout", type=float, metavar="SECONDS",
                     help="close an app connection that has not authenticated by then; 0: no limit (default: 5)")
    own.add_argument("--max-pending", type=int, metavar="N",
                     help="new requests waiting for an app's answer before new ones get 503 (default: 2000)")
    own.add_argument("--max-transactions", type=int, metavar="N",
                     help="server transactions held before new requests get 503 (default: 200000)")
    own.add_argument("--retry-after", type=int, metavar="SECONDS",
                     help="Retry-After of an overload 503 (default: 5)")
    own.add_argument("--version-string", help=argparse.SUPPRESS)  # version reported to apps
    own.add_argument("--t1", type=float, help=argparse.SUPPRESS)  # SIP T1 in seconds (tests)
    ignored = p.add_argument_group("drachtio-server options accepted and ignored (named on "
                                   "stderr when given)",
                                   ", ".join([*_IGNORED_OPTIONS, "--user-agent-options-auto-respond"]))
    for name, takes_value in _IGNORED_OPTIONS.items():
        names = [_SHORT[name], name] if name in _SHORT else [name]
        dest = "ignored_" + name[2:].replace("-", "_")
        if takes_value:
            ignored.add_argument(*names, dest=dest, action="append", metavar="X",
                                 help=argparse.SUPPRESS)
        else:
            ignored.add_argument(*names, dest=dest, action="store_true", help=argparse.SUPPRESS)
    # drachtio-server reads its option without a value, though its code treats it as having one
    ignored.add_argument("--user-agent-options-auto-respond", nargs="?", const="",
                         dest="ignored_user_agent_options_auto_respond", action="append",
                         help=argparse.SUPPRESS)
    return p


def settings_from_args(args: argparse.Namespace) -> Settings:
    """The command line's settings (only what was given)."""
    s = Settings(address=args.address, port=args.port, secret=args.secret,
                 external_ip=args.external_ip, sip_port=args.sip_port, tls_port=args.tls_port,
                 cert_file=args.cert_file, key_file=args.key_file, chain_file=args.chain_file,
                 loglevel=args.loglevel, outbound_proxy=args.outbound_proxy, cdrs=args.cdrs,
                 t1=args.t1, outbound=list(args.outbound or []),
                 version_string=args.version_string, auth_timeout=args.auth_timeout,
                 max_pending=args.max_pending, max_transactions=args.max_transactions,
                 retry_after=args.retry_after)
    s.contacts = [(c, None) for c in args.contact or []]
    for name, value in sorted(vars(args).items()):
        if name.startswith("ignored_") and value not in (None, False, []):
            s.ignored.append("--" + name[len("ignored_"):].replace("_", "-"))
    return s


# -- environment -------------------------------------------------------------------------------

def settings_from_env(environ: Mapping[str, str]) -> Settings:
    """drachtio-server's ``DRACHTIO_*`` variables this server supports (others: ignored)."""
    s = Settings()
    for var, name in _ENV.items():
        value = environ.get(var)
        if not value:
            continue
        if name in ("port", "tls_port"):
            try:
                setattr(s, name, int(value))
            except ValueError:
                raise ConfigError(f"{var}={value!r} is not a port number") from None
        elif name == "loglevel":
            if value not in LOGLEVELS:
                raise ConfigError(f"{var}={value!r}: expected one of {', '.join(LOGLEVELS)}")
            s.loglevel = value
        else:
            setattr(s, name, value)
    s.ignored.extend(var for var in _ENV_IGNORED if environ.get(var))
    return s


# -- configuration file ------------------------------------------------------------------------

def _text(el: ET.Element | None) -> str:
    return (el.text or "").strip() if el is not None else ""


def _int(text: str, where: str) -> int:
    try:
        return int(text)
    except ValueError:
        raise ConfigError(f"{where}: {text!r} is not a number") from None


def read_config_file(path: str) -> Settings:
    """Read drachtio-server's configuration XML: admin, sip contacts/timers/tls/outbound-proxy,
    cdrs and logging are mapped; every other element is listed in ``ignored``."""
    try:
        root = ET.parse(path).getroot()
    except OSError as err:
        raise ConfigError(f"cannot read configuration file {path}: {err.strerror or err}") from None
    except ET.ParseError as err:
        raise ConfigError(f"configuration file {path} is not valid XML: {err}") from None
    if root.tag != "drachtio":
        raise ConfigError(f"configuration file {path}: root element is <{root.tag}>, not <drachtio>")
    s = Settings()
    for el in root:
        if el.tag == "admin":
            _read_admin(el, s, path)
        elif el.tag == "sip":
            _read_sip(el, s, path)
        elif el.tag == "cdrs":
            s.cdrs = _text(el).lower() in ("true", "yes", "1")
        elif el.tag == "logging":
            _read_logging(el, s, path)
        elif isinstance(el.tag, str):
            s.ignored.append(f"<{el.tag}>")
    return s


def _read_admin(el: ET.Element, s: Settings, path: str) -> None:
    if _text(el):
        s.address = _text(el)
    if "port" in el.attrib:
        s.port = _int(el.attrib["port"], f"{path}: <admin port>")
    if "tls-port" in el.attrib:
        s.tls_port = _int(el.attrib["tls-port"], f"{path}: <admin tls-port>") or None
    if "secret" in el.attrib:
        s.secret = el.attrib["secret"]
    s.ignored.extend(f"<admin {a}>" for a in el.attrib if a not in ("port", "tls-port", "secret"))


def _read_sip(el: ET.Element, s: Settings, path: str) -> None:
    for child in el:
        tag = child.tag
        if tag == "contact":
            s.contacts.append((_text(child), child.attrib.get("external-ip") or None))
        elif tag == "contacts":
            for c in child.findall("contact"):
                s.contacts.append((_text(c), c.attrib.get("external-ip") or None))
                s.ignored.extend(f"<contact {a}>" for a in c.attrib if a != "external-ip")
        elif tag == "outbound-proxy":
            s.outbound_proxy = _text(child) or None
        elif tag == "timers":
            for t in child:
                if t.tag == "t1":
                    s.t1 = _int(_text(t), f"{path}: <timers><t1>") / 1000.0
                elif isinstance(t.tag, str):
                    s.ignored.append(f"<timers><{t.tag}>")
        elif tag == "tls":
            for t in child:
                name = {"key-file": "key_file", "cert-file": "cert_file",
                        "chain-file": "chain_file"}.get(str(t.tag))
                if name:
                    setattr(s, name, _text(t) or None)
                elif isinstance(t.tag, str):
                    s.ignored.append(f"<tls><{t.tag}>")
        elif isinstance(tag, str):
            s.ignored.append(f"<sip><{tag}>")


def _read_logging(el: ET.Element, s: Settings, path: str) -> None:
    for child in el:
        if child.tag == "loglevel":
            level = _text(child)
            if level not in LOGLEVELS:
                raise ConfigError(f"{path}: <loglevel> {level!r}: expected one of {', '.join(LOGLEVELS)}")
            s.loglevel = level
        elif child.tag == "console":
            pass  # we always log to the console (stderr)
        elif isinstance(child.tag, str):
            s.ignored.append(f"<logging><{child.tag}>")


# -- settings -> ServerConfig ------------------------------------------------------------------

def _primary_address() -> str:
    """The address of the interface with the default route (no packet is sent), else loopback."""
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
        try:
            s.connect(("192.0.2.1", 9))
            return str(s.getsockname()[0])
        except OSError:
            return "127.0.0.1"


def _combined_chain(cert: str, chain: str) -> str:
    """A temporary PEM file with ``cert`` then ``chain`` (removed at exit)."""
    try:
        with open(cert, "rb") as f1, open(chain, "rb") as f2:
            data = f1.read().rstrip(b"\n") + b"\n" + f2.read()
    except OSError as err:
        raise ConfigError(f"cannot read certificate: {err}") from None
    fd, name = tempfile.mkstemp(prefix="drachtio-chain-", suffix=".pem")
    with os.fdopen(fd, "wb") as out:
        out.write(data)
    atexit.register(os.unlink, name)
    return name


def to_server_config(s: Settings) -> ServerConfig:
    """Map the settings onto the embedded server's ServerConfig; ConfigError when unusable.

    The first contact with udp and/or tcp is served (``sip:*`` listens on every interface and
    advertises the primary one); later contacts and TLS/WS ones go to ``s.ignored``.
    """
    contacts = s.contacts or [(DEFAULTS["contact"], None)]
    chosen: tuple[str, int, tuple[str, ...], str | None] | None = None
    for contact, external in contacts:
        if chosen is not None:
            s.ignored.append(f"contact {contact} (only one SIP address is served)")
            continue
        wildcard = contact.replace("sip:*", "sip:0.0.0.0", 1) if contact.startswith("sip:*") else contact
        try:
            host, port, transports = parse_contact(wildcard)
        except ValueError as err:
            s.ignored.append(f"contact {contact} ({err})")
            continue
        if wildcard is not contact and not (external or s.external_ip):
            external = _primary_address()
        chosen = (host, port, transports, external)
    if chosen is None:
        raise ConfigError("no usable SIP contact: expected sip:host[:port][;transport=udp,tcp]")
    host, port, transports, external = chosen
    if s.sip_port is not None:
        port = s.sip_port
    try:
        outbound = parse_outbound_map(s.outbound)
    except ValueError as err:
        raise ConfigError(str(err)) from None
    cert = s.cert_file
    if s.tls_port is not None and not cert:
        raise ConfigError("--tls-port needs a certificate: --cert-file (alias --tls-cert)")
    if s.chain_file and cert:
        cert = _combined_chain(cert, s.chain_file)
    elif s.chain_file:
        s.ignored.append("--chain-file (no --cert-file)")
    limits = {name: value for name in ("auth_timeout", "max_pending", "max_transactions", "retry_after")
              if (value := getattr(s, name)) is not None}
    return ServerConfig(
        **limits,
        admin_host=s.address or DEFAULTS["address"], admin_port=DEFAULTS["port"] if s.port is None else s.port,
        secret=DEFAULTS["secret"] if s.secret is None else s.secret,
        sip_host=host, sip_port=port, transports=transports,
        external_host=s.external_ip or external, version=s.version_string or DEFAULT_VERSION,
        outbound_proxy=s.outbound_proxy, cdrs=bool(s.cdrs), t1=s.t1,
        tls_port=s.tls_port, tls_cert=cert, tls_key=s.key_file if cert else None,
        outbound=dict(outbound))


def gather(argv: Sequence[str] | None, environ: Mapping[str, str]) -> tuple[Settings, argparse.Namespace]:
    """Parse the command line and layer defaults < file < environment < command line."""
    args = build_parser().parse_args(argv)
    cli = settings_from_args(args)
    env = settings_from_env(environ)
    merged = Settings()
    path = args.file or (None if args.noconfig else environ.get("DRACHTIO_CONFIG_FILE_PATH"))
    if path:
        merged.update(read_config_file(path))
    merged.update(env)
    if cli.contacts:  # contacts given on the command line replace the file's
        merged.contacts = []
    merged.update(cli)
    return merged, args


# -- running -----------------------------------------------------------------------------------

async def _serve(config: ServerConfig) -> None:
    core = Core(config)
    await core.start()
    tune_gc()
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop.set)
    await stop.wait()
    logger.info("signal received, shutting down")
    await core.stop()


GC_THRESHOLD0 = 20_000
"""Generation-0 threshold of the cyclic garbage collector in the server process (CPython: 700)."""


def tune_gc() -> None:
    """Fewer, cheaper cyclic GC passes for a long-running server (standalone process only).

    Every SIP message allocates many containers, so with the default threshold the collector ran
    every few messages and its older generations walked all live transactions and dialogs (~7 %
    of the server's CPU under load). Objects alive at start-up are frozen out of collection and
    generation 0 collects every GC_THRESHOLD0 allocations; reference counting still frees almost
    everything at once, the collector only finds cycles.
    """
    gc.collect()
    gc.freeze()
    _, g1, g2 = gc.get_threshold()
    gc.set_threshold(GC_THRESHOLD0, g1, g2)


def version_text() -> str:
    """What ``--version`` prints."""
    return f"drachtio_srf.server {__version__} (drachtio-compatible, reports {DEFAULT_VERSION} to apps)"


def main(argv: Sequence[str] | None = None, environ: Mapping[str, str] | None = None) -> int:
    """Run the server from command-line arguments; returns the exit status."""
    env = os.environ if environ is None else environ
    try:
        settings, args = gather(argv, env)
        if args.version:
            print(version_text())
            return 0
        config = to_server_config(settings)
    except ConfigError as err:
        print(f"{PROG}: error: {err}", file=sys.stderr)
        return 2
    level = settings.loglevel or DEFAULTS["loglevel"]
    level = "info" if level == "notice" else level
    logging.basicConfig(level=getattr(logging, level.upper()),
                        format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    trace.configure_from_env(env)
    if settings.ignored:
        print(f"{PROG}: ignoring what the embedded server does not support: "
              + "; ".join(dict.fromkeys(settings.ignored)), file=sys.stderr, flush=True)
    try:
        asyncio.run(_serve(config))
    except (OSError, ValueError) as err:  # incl. ssl.SSLError for an unusable certificate
        logger.error("cannot start: %s", err)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
