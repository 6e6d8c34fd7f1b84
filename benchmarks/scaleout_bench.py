"""Scale-out: N copies of the UAS app on one server share its calls.

For each N (default 1 and 2) a fresh server and N Python UAS apps (benchmarks/apps/uas_app.py,
each its own process, as ``python -m drachtio_srf.runner -n N`` would start them) take sipp's
built-in ``uac`` (immediate BYE) offered at ``--rate`` for ``--duration`` seconds.  Printed per N:
aggregate calls/s completed (successful calls / sipp's elapsed time), app CPU per call (all
copies together) and server CPU per call, and how the calls were split between the copies.

The same is run against the real drachtio-server when the environment variable DRACHTIO_BIN names
its binary (started on loopback with a generated config); otherwise that part is skipped with a
message.  The server spreads new requests round-robin over the connections that routed INVITE.

    .venv/bin/python benchmarks/scaleout_bench.py
    DRACHTIO_BIN=/path/to/drachtio .venv/bin/python benchmarks/scaleout_bench.py --rate 600

To see the aggregate grow, offer more calls than one copy can take; on a 2-core machine one copy
keeps up with 1,000 calls/s (the server and sipp then take the other core), so there the figures
show the even split and the CPU per call, not a higher rate.
"""
from __future__ import annotations

import argparse
import logging
import os
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import benchlib as bl

logger = logging.getLogger("benchmarks.scaleout")

CONFIG = """<drachtio>
  <admin port="{admin}" secret="{secret}">{host}</admin>
  <sip><contacts><contact>sip:{host}:{sip};transport=udp,tcp</contact></contacts></sip>
  <logging><console/><loglevel>notice</loglevel><sofia-loglevel>1</sofia-loglevel></logging>
</drachtio>
"""


def real_server(binary: str, workdir: Path, loglevel: str = "notice") -> bl.Server:
    """The real drachtio-server binary on free loopback ports, started as bl.Server starts ours."""
    admin, sip = bl.free_port(), bl.free_port()
    conf = workdir / f"drachtio-{admin}.conf.xml"
    conf.write_text(CONFIG.format(admin=admin, secret=bl.SECRET, host=bl.LOOPBACK, sip=sip))
    return bl.Server(workdir, loglevel=loglevel, program=[binary, "-f", str(conf)],
                     admin_port=admin, sip_port=sip)


@dataclass
class Row:
    server: str
    n: int
    offered: int
    ok: int
    failed: int
    elapsed: float
    app_cpu: float
    server_cpu: float
    split: list[int]

    @property
    def cps(self) -> float:
        return self.ok / self.elapsed if self.elapsed > 0 else 0.0

    def line(self) -> str:
        per = max(self.ok, 1)
        return (f"{self.server:9} N={self.n}  {self.cps:7.1f} calls/s  ({self.ok} ok, {self.failed} failed of "
                f"{self.offered} in {self.elapsed:.1f} s)  app CPU {1000 * self.app_cpu / per:.3f} ms/call  "
                f"server CPU {1000 * self.server_cpu / per:.3f} ms/call  split {self.split}")


def run_one(kind: str, make_server: Any, n: int, args: argparse.Namespace, work: Path) -> Row:
    server = make_server(work)
    apps: list[bl.App] = []
    try:
        for _ in range(n):
            apps.append(bl.App("py", server, None, work))
        offered = int(args.rate * args.duration)
        app_cpu0 = sum(bl.cpu_seconds(a.pid) for a in apps)
        srv_cpu0 = bl.cpu_seconds(server.pid)
        res = bl.run_sipp(server.sip_port, work, f"{kind}-{n}", timeout=args.duration * 4 + 30,
                          rate=args.rate, calls=offered)
        app_cpu = sum(bl.cpu_seconds(a.pid) for a in apps) - app_cpu0
        srv_cpu = bl.cpu_seconds(server.pid) - srv_cpu0
        split = [a.wait_released(timeout=10)["created"] for a in apps]
        return Row(kind, n, offered, res.successful, res.failed, res.elapsed, app_cpu, srv_cpu, split)
    finally:
        for a in apps:
            a.stop()
        server.stop()


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--rate", type=float, default=500.0, help="calls/s offered (default 500)")
    p.add_argument("--duration", type=float, default=10.0, help="seconds of offered load (default 10)")
    p.add_argument("--counts", default="1,2", help="app copies to try (default 1,2)")
    bl.add_run_options(p)
    args = p.parse_args(argv)
    bl.setup_logging(args.verbose)
    counts = [int(c) for c in args.counts.split(",") if c.strip()]
    if any(c < 1 or c > 16 for c in counts) or not 0 < args.rate <= 2000 or not 0 < args.duration <= 600:
        p.error("counts 1..16, rate (0, 2000], duration (0, 600]")
    bl.out(f"# scale-out: {args.rate:g} calls/s offered for {args.duration:g} s; {bl.machine()}")
    binary = os.environ.get("DRACHTIO_BIN")
    servers: list[tuple[str, Any]] = [("embedded", lambda w: bl.Server(w, loglevel=args.server_loglevel))]
    if binary and os.access(binary, os.X_OK):
        servers.append(("drachtio", lambda w: real_server(binary, w)))
    else:
        bl.out("# real drachtio-server: skipped (set DRACHTIO_BIN to its binary to include it)"
               if not binary else f"# real drachtio-server: skipped ({binary} is not an executable)")
    rows: list[Row] = []
    with bl.workdir(args.keep) as work:
        for kind, make in servers:
            for n in counts:
                row = run_one(kind, make, n, args, work)
                rows.append(row)
                bl.out(row.line())
    for kind, _make in servers:
        base = next((r for r in rows if r.server == kind and r.n == 1), None)
        for r in rows:
            if base is not None and r.server == kind and r.n > 1 and base.cps > 0:
                bl.out(f"# {kind}: N={r.n} completes {r.cps / base.cps:.2f}x the calls/s of N=1")
    return 0


if __name__ == "__main__":
    sys.exit(main())
