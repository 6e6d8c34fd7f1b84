"""``python -m drachtio_srf.server``: run the embedded drachtio-compatible server in the foreground.

Runs until SIGTERM or SIGINT, then exits 0.
"""
from __future__ import annotations

import argparse
import asyncio
import gc
import logging
import signal
import sys

from drachtio_srf.server import parse_contact
from drachtio_srf.server.core import DEFAULT_VERSION, Core, ServerConfig
from drachtio_srf.server.outbound import parse_outbound_map

logger = logging.getLogger("drachtio_srf.server")


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="python -m drachtio_srf.server",
                                description="drachtio-compatible SIP server for drachtio apps")
    p.add_argument("--port", type=int, default=9022, help="admin (control protocol) port")
    p.add_argument("--address", default="127.0.0.1", help="admin listen address")
    p.add_argument("--secret", default="cymru", help="shared secret apps authenticate with")
    p.add_argument("--contact", default="sip:127.0.0.1:5060;transport=udp,tcp",
                   help="SIP address: sip:host[:port][;transport=udp,tcp]")
    p.add_argument("--sip-port", type=int, default=None, help="SIP port (overrides the contact's)")
    p.add_argument("--external-ip", default=None, help="public address to advertise")
    p.add_argument("--outbound-proxy", default=None, help="SIP URI of an outbound proxy")
    p.add_argument("--cdrs", action="store_true", help="send CDR events to apps that route cdr:*")
    p.add_argument("--outbound", action="append", default=[], metavar="METHOD=tcp://HOST:PORT",
                   help="deliver new requests of METHOD ('*': any) by connecting to an app that "
                        "listens there (outbound-connection mode); repeatable")
    p.add_argument("--tls-port", type=int, default=None,
                   help="also accept apps over TLS on this admin port (needs --tls-cert)")
    p.add_argument("--tls-cert", "--tls-cert-file", dest="tls_cert", default=None,
                   help="PEM certificate (chain) for the TLS admin port")
    p.add_argument("--tls-key", "--tls-key-file", dest="tls_key", default=None,
                   help="PEM private key for the TLS admin port (default: in --tls-cert)")
    p.add_argument("--version-string", default=DEFAULT_VERSION, help=argparse.SUPPRESS)
    p.add_argument("--t1", type=float, default=None, help=argparse.SUPPRESS)  # SIP T1 (tests)
    p.add_argument("--loglevel", default="info",
                   choices=["debug", "info", "notice", "warning", "error", "critical"])
    return p


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


#: generation-0 threshold of the cyclic garbage collector in the server process (CPython: 700)
GC_THRESHOLD0 = 20_000


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


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    level = "info" if args.loglevel == "notice" else args.loglevel
    logging.basicConfig(level=getattr(logging, level.upper()),
                        format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    try:
        host, port, transports = parse_contact(args.contact)
    except ValueError as err:
        print(f"error: {err}", file=sys.stderr)
        return 2
    if args.sip_port is not None:
        port = args.sip_port
    try:
        outbound = parse_outbound_map(args.outbound)
    except ValueError as err:
        print(f"error: {err}", file=sys.stderr)
        return 2
    if args.tls_port is not None and not args.tls_cert:
        print("error: --tls-port needs --tls-cert", file=sys.stderr)
        return 2
    config = ServerConfig(admin_host=args.address, admin_port=args.port, secret=args.secret,
                          sip_host=host, sip_port=port, transports=transports,
                          external_host=args.external_ip, version=args.version_string,
                          outbound_proxy=args.outbound_proxy, cdrs=args.cdrs, t1=args.t1,
                          tls_port=args.tls_port, tls_cert=args.tls_cert, tls_key=args.tls_key,
                          outbound=dict(outbound))
    try:
        asyncio.run(_serve(config))
    except (OSError, ValueError) as err:  # incl. ssl.SSLError for an unusable certificate
        logger.error("cannot start: %s", err)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
