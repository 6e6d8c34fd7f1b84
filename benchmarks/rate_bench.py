"""Sustained call rate: the highest rate each UAS app holds with every call clean.

For each rate step (default 50, 100, 200, 300, ... 1200 cps) and each app (Python, Node, alternating which
goes first), a fresh embedded server and app are started and sipp's built-in ``uac`` (immediate
BYE, ``-d 0``) offers ``rate x duration`` calls. A step passes when
  * sipp exits 0 and its stats file shows 0 failed calls,
  * sipp finished within ``duration x (1 + --slack)`` + 2 s (the rate was actually held), and
  * the app reports every dialog released (open == 0, created == offered) within 10 s.
An app stops climbing at its first failing step; ``--refine K`` then bisects K more times
between its last passing and first failing rate. The server's and each app's CPU use during the
step (percent of one core) are printed so you can see who saturates first.

    .venv/bin/python benchmarks/rate_bench.py                        # 60 s steps
    .venv/bin/python benchmarks/rate_bench.py --duration 10 --rates 50,100,150,200

Prints the highest passing rate for each app and last the ratio Python / Node (target >= 1.0).
"""
from __future__ import annotations

import argparse
import logging
import sys
from dataclasses import dataclass
from pathlib import Path

import benchlib as bl

logger = logging.getLogger("benchmarks.rate")


@dataclass
class Step:
    impl: str
    rate: float
    passed: bool
    why: str
    app_cpu_pct: float
    server_cpu_pct: float
    elapsed: float


def one_step(impl: str, rate: float, args: argparse.Namespace, node_work: Path, work: Path) -> Step:
    server = bl.Server(work, loglevel=args.server_loglevel)
    app = None
    tag = f"{impl}-{rate:g}"
    try:
        app = bl.App(impl, server, node_work, work)
        if args.warmup:
            bl.run_sipp(server.sip_port, work, f"{tag}-warm", timeout=60, rate=min(rate, 50),
                        calls=args.warmup)
            app.wait_released(args.warmup, timeout=20)
        base = app.stats()
        a0, s0 = bl.cpu_seconds(app.pid), bl.cpu_seconds(server.pid)
        calls = int(rate * args.duration)
        res = bl.run_sipp(server.sip_port, work, tag, timeout=args.duration * 2 + 30, rate=rate,
                          calls=calls, limit=max(int(rate * 10), 100))
        a1, s1 = bl.cpu_seconds(app.pid), bl.cpu_seconds(server.pid)
        expected = base["created"] + base["failed"] + calls
        end = app.wait_released(expected, timeout=10)
        created = end["created"] - base["created"]
        why = []
        if res.rc != 0:
            why.append(f"sipp exit {res.rc}")
        if res.failed != 0:
            why.append(f"{res.failed} failed calls")
        if res.elapsed > args.duration * (1 + args.slack) + 2:
            why.append(f"took {res.elapsed:.1f} s")
        if created != calls:
            why.append(f"app created {created}/{calls}")
        if end["open"] != 0:
            why.append(f"{end['open']} dialogs still open")
        if end["failed"] != base["failed"]:
            why.append(f"{end['failed'] - base['failed']} create_uas failures")
        if res.retransmissions:
            logger.info("%s at %g cps: %d retransmissions", impl, rate, res.retransmissions)
        el = max(res.elapsed, 1e-9)
        return Step(impl, rate, not why, ", ".join(why) or f"ok ({res.retransmissions} retrans)",
                    100 * (a1 - a0) / el, 100 * (s1 - s0) / el, res.elapsed)
    finally:
        if app is not None:
            app.stop()
        server.stop()


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--duration", type=float, default=60, help="seconds per step (default 60)")
    p.add_argument("--rates", default="50,100,200,300,400,500,600,700,800,1000,1200",
                   help="comma-separated cps steps, climbed in order")
    p.add_argument("--refine", type=int, default=0,
                   help="bisection steps between last pass and first fail (default 0)")
    p.add_argument("--slack", type=float, default=0.1, help="allowed overrun of the duration (0.1)")
    p.add_argument("--warmup", type=int, default=50, help="calls before each step (default 50)")
    bl.add_run_options(p)
    args = p.parse_args(argv)
    bl.setup_logging(args.verbose)
    rates = [float(x) for x in args.rates.split(",") if x.strip()]

    best: dict[str, float] = {"py": 0.0, "node": 0.0}
    fail: dict[str, float] = {}
    alive = {"py": True, "node": True}

    def report(st: Step) -> None:
        bl.out(f"{st.impl:4s} {st.rate:6g} cps: {'PASS' if st.passed else 'FAIL'}  app CPU "
               f"{st.app_cpu_pct:5.1f}%  server CPU {st.server_cpu_pct:5.1f}%  "
               f"({st.elapsed:.1f} s) {st.why}")

    with bl.node_install(args.node_dir) as node_work, bl.workdir(args.keep) as work:
        bl.out(f"# rate_bench: {bl.machine()} drachtio-srf(node)={bl.node_srf_version(node_work)}")
        bl.out(f"# steps {', '.join(f'{x:g}' for x in rates)} cps, {args.duration:g} s each")
        for i, rate in enumerate(rates):
            order = ["py", "node"] if i % 2 == 0 else ["node", "py"]
            for impl in order:
                if not alive[impl]:
                    continue
                logger.info("%s app at %g cps for %g s", impl, rate, args.duration)
                st = one_step(impl, rate, args, node_work, work)
                report(st)
                if st.passed:
                    best[impl] = rate
                else:
                    alive[impl] = False
                    fail[impl] = rate
            if not any(alive.values()):
                break
        for k in range(args.refine):
            for impl in (["py", "node"] if k % 2 else ["node", "py"]):
                if impl not in fail:
                    continue
                mid = round((best[impl] + fail[impl]) / 2 / 5) * 5
                if mid <= best[impl] or mid >= fail[impl]:
                    continue
                logger.info("%s app at %g cps for %g s (refine)", impl, mid, args.duration)
                st = one_step(impl, mid, args, node_work, work)
                report(st)
                if st.passed:
                    best[impl] = mid
                else:
                    fail[impl] = mid
    for impl in ("py", "node"):
        note = " (never failed: add higher --rates)" if alive[impl] else f" (failed at {fail[impl]:g})"
        bl.out(f"{'python' if impl == 'py' else 'node  '} highest sustained rate: {best[impl]:g} cps{note}")
    ratio = best["py"] / best["node"] if best["node"] else float("nan")
    bl.out(bl.ratio_line("sustained rate python/node", ratio, ">= 1.0"))
    return 0


if __name__ == "__main__":
    sys.exit(main())
