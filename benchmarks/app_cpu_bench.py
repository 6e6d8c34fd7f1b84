"""App CPU per call: the same UAS app on drachtio_srf (Python) and on drachtio-srf (Node).

Each run starts a fresh embedded server and one app, warms it up, then sipp's built-in ``uac``
(INVITE, 200, ACK, immediate BYE: ``-d 0``) drives it at a fixed call rate. The app's and the
server's CPU time (utime + stime of every thread, /proc/<pid>/stat) is read before the measured
calls and after every dialog is released. Runs alternate between the two apps.

    python benchmarks/app_cpu_bench.py                # 50 cps for 20 s, 3 rounds
    python benchmarks/app_cpu_bench.py --rate 50 --duration 10 --rounds 1
    python benchmarks/app_cpu_bench.py --rates 50,200,800,1000 --duration 12 --rounds 2

``--ab-env NAME=VALUE`` measures the Python app against itself instead of against Node: rounds
alternate (A B B A ...) between the app as it is (A) and the app with NAME=VALUE in its
environment (B), e.g. ``--ab-env DRACHTIO_SRF_THREAD_POLICY=normal``.

``--python PYTHON`` runs the Python app with that interpreter and the drachtio_srf installed for
it, e.g. ``--python .venv-compiled/bin/python`` for the compiled build (docs/compiled.md).

Prints CPU ms per call for both apps (median over rounds), the server's, and last the ratio
Python / Node (target <= 1.0); with ``--rates`` a table per rate and last the highest ratio.
"""
from __future__ import annotations

import argparse
import logging
import os
import sys
from dataclasses import dataclass
from pathlib import Path

import benchlib as bl

logger = logging.getLogger("benchmarks.app_cpu")


@dataclass
class Run:
    impl: str
    calls: int
    failed: int
    retrans: int
    server_cpu: float
    elapsed: float
    leftover: int
    detail: bl.CpuDetail       # the app's CPU over the measured calls

    def per_call(self) -> str:
        """User/system ms and context switches (voluntary/preempted) per call, of the app."""
        n = max(self.calls, 1)
        d = self.detail
        return (f"user {1000 * d.user / n:.3f} sys {1000 * d.system / n:.3f} ms, "
                f"switches {d.voluntary / n:.1f}+{d.involuntary / n:.1f}")

    @property
    def app_ms(self) -> float:
        return 1000 * self.detail.total / max(self.calls, 1)

    @property
    def server_ms(self) -> float:
        return 1000 * self.server_cpu / max(self.calls, 1)


def one_run(impl: str, args: argparse.Namespace, node_work: Path, work: Path, tag: str) -> Run:
    server = bl.Server(work, loglevel=args.server_loglevel)
    app = None
    try:
        app_args = ["--inline-experiment"] if impl == "py" and args.inline_experiment else []
        app = bl.App(impl, server, node_work, work, app_args, python=args.python)
        if args.pin_app is not None:
            bl.pin_process(app.pid, {args.pin_app})
        if args.warmup:
            bl.run_sipp(server.sip_port, work, f"{tag}-warm", timeout=60, rate=args.rate,
                        calls=args.warmup)
            app.wait_released(args.warmup, timeout=20)
        base = app.stats()
        app0, srv0 = bl.cpu_detail(app.pid), bl.cpu_seconds(server.pid)
        calls = int(args.rate * args.duration)
        res = bl.run_sipp(server.sip_port, work, tag, timeout=args.duration * 3 + 30,
                          rate=args.rate, calls=calls)
        end = app.wait_released(base["created"] + base["failed"] + calls, timeout=30)
        app1, srv1 = bl.cpu_detail(app.pid), bl.cpu_seconds(server.pid)
        done = end["created"] - base["created"]
        run = Run(impl, done, max(res.failed, 0) + end["failed"] - base["failed"], res.retransmissions,
                  srv1 - srv0, res.elapsed, end["open"], app1 - app0)
        if not res.ok or run.failed or done != calls or end["open"]:
            logger.warning("%s run not clean: sipp rc=%s failed=%s, app created %d/%d, open %d",
                           impl, res.rc, res.failed, done, calls, end["open"])
        return run
    finally:
        if app is not None:
            app.stop()
        server.stop()


RATES_OF_THE_TABLE = "50,200,800,1000"


def measure(args: argparse.Namespace, rate: float, node_work: Path, work: Path) -> tuple[float, float, bool]:
    """Alternating rounds of both apps at ``rate``; prints each run; (python ms, node ms, clean)."""
    args.rate = rate
    bl.out(f"# {rate:g} cps x {args.duration:g} s, {args.rounds} round(s), warm-up {args.warmup} calls")
    runs: list[Run] = []
    for rnd, impl in bl.alternate(args.rounds):
        logger.info("%g cps round %d: %s app", rate, rnd + 1, impl)
        run = one_run(impl, args, node_work, work, f"{rate:g}-r{rnd}-{impl}")
        runs.append(run)
        bl.out(f"round {rnd + 1} {impl:4s}: app {run.app_ms:7.3f} ms/call  server {run.server_ms:7.3f} "
               f"ms/call  calls {run.calls} failed {run.failed} retrans {run.retrans} "
               f"open-after {run.leftover} ({run.elapsed:.1f} s)")
        bl.out(f"          app {run.per_call()}")
    res = {impl: [r for r in runs if r.impl == impl] for impl in ("py", "node")}
    py_ms = bl.median([r.app_ms for r in res["py"]])
    node_ms = bl.median([r.app_ms for r in res["node"]])
    srv_py = bl.median([r.server_ms for r in res["py"]])
    srv_node = bl.median([r.server_ms for r in res["node"]])
    bl.out(f"python app CPU per call: {py_ms:.3f} ms (median)")
    bl.out(f"node   app CPU per call: {node_ms:.3f} ms (median)")
    bl.out(f"server CPU per call: {srv_py:.3f} ms with the python app, {srv_node:.3f} ms with the node app"
           f" (=> ~{1000 / max(srv_py, srv_node, 1e-9):.0f} cps per core for the server alone)")
    clean = all(r.failed == 0 and r.leftover == 0 for r in runs)
    if not clean:
        bl.out("WARNING: some runs had failed calls or unreleased dialogs (see above)")
    return py_ms, node_ms, clean


def _put_env(name: str, value: str | None) -> None:
    """Set ``name`` in this process's environment (inherited by the apps it starts); None unsets it."""
    if value is None:
        os.environ.pop(name, None)
    else:
        os.environ[name] = value


def measure_ab(args: argparse.Namespace, rate: float, node_work: Path, work: Path) -> tuple[float, float, bool]:
    """Alternating rounds of the Python app without (A) and with (B) ``args.ab_env`` in its
    environment; prints each run; (A ms, B ms, clean)."""
    name, _, value = args.ab_env.partition("=")
    args.rate = rate
    bl.out(f"# {rate:g} cps x {args.duration:g} s, {args.rounds} round(s); A: as is, B: {name}={value}")
    runs: dict[str, list[Run]] = {"A": [], "B": []}
    saved = os.environ.get(name)
    try:
        for rnd, tag in bl.alternate(args.rounds, ("A", "B")):
            _put_env(name, value if tag == "B" else saved)
            run = one_run("py", args, node_work, work, f"{rate:g}-r{rnd}-{tag}")
            runs[tag].append(run)
            bl.out(f"round {rnd + 1} {tag}: app {run.app_ms:7.3f} ms/call  calls {run.calls} failed "
                   f"{run.failed} retrans {run.retrans} open-after {run.leftover}  {run.per_call()}")
    finally:
        _put_env(name, saved)
    a_ms = bl.median([r.app_ms for r in runs["A"]])
    b_ms = bl.median([r.app_ms for r in runs["B"]])
    bl.out(f"A (as is) app CPU per call: {a_ms:.3f} ms (median)")
    bl.out(f"B ({name}={value}) app CPU per call: {b_ms:.3f} ms (median)")
    clean = all(r.failed == 0 and r.leftover == 0 for rs in runs.values() for r in rs)
    return a_ms, b_ms, clean


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--rate", type=float, default=50,
                   help="calls per second (default 50); see --rates for several")
    p.add_argument("--rates", metavar="LIST",
                   help="comma-separated call rates measured one after the other in one run, e.g. "
                        f"{RATES_OF_THE_TABLE} (the rates of the README table); prints a table of "
                        "python ms, node ms and ratio per rate, and last the highest ratio")
    p.add_argument("--duration", type=float, default=20, help="seconds of load per run (default 20)")
    p.add_argument("--rounds", type=int, default=3, help="runs per app and rate, alternating (default 3)")
    p.add_argument("--warmup", type=int, default=100, help="calls before measuring (default 100)")
    p.add_argument("--inline-experiment", action="store_true",
                   help="EXPERIMENT: the Python app runs user code on the reader thread, as Node "
                        "does (breaks the threading contract; shows the cost of the hand-offs)")
    p.add_argument("--python", metavar="PYTHON",
                   help="run the Python app with this interpreter and its installed drachtio_srf "
                        "(e.g. .venv-compiled/bin/python: the compiled build) instead of the checkout")
    p.add_argument("--pin-app", type=int, metavar="CPU",
                   help="run either app on this one CPU only (both alike; server and sipp unpinned)")
    p.add_argument("--ab-env", metavar="NAME=VALUE",
                   help="compare the Python app with itself: as is (A) against NAME=VALUE in its "
                        "environment (B), alternating; Node is not run")
    bl.add_run_options(p)
    args = p.parse_args(argv)
    if args.ab_env is not None and "=" not in args.ab_env:
        p.error(f"--ab-env: expected NAME=VALUE, got {args.ab_env!r}")
    bl.setup_logging(args.verbose)
    try:
        rates = [float(r) for r in args.rates.split(",")] if args.rates else [args.rate]
    except ValueError:
        p.error(f"--rates: not a comma-separated list of numbers: {args.rates!r}")

    table: list[tuple[float, float, float]] = []
    clean = True
    with bl.node_install(args.node_dir) as node_work, bl.workdir(args.keep) as work:
        bl.out(f"# app_cpu_bench: {bl.machine()} drachtio-srf(node)={bl.node_srf_version(node_work)}")
        if args.python:
            # (absolute, not resolved: a venv's python is a symlink that must stay in its venv)
            args.python = os.path.abspath(args.python)
            bl.out(f"# python app: {args.python}, parser from {bl.parser_module_of(args.python)}")
        if args.pin_app is not None:
            bl.out(f"# both apps pinned to CPU {args.pin_app}")
        if args.inline_experiment:
            bl.out("# EXPERIMENT: Python app with user code inline on the reader thread "
                   "(not the library's threading contract; not a product figure)")
        for rate in rates:
            py_ms, node_ms, ok = (measure_ab if args.ab_env else measure)(args, rate, node_work, work)
            table.append((rate, py_ms, node_ms))
            clean = clean and ok

    label = "app CPU per call python/node"
    if args.ab_env:
        label = f"app CPU per call, python as is / python with {args.ab_env}"
    if args.inline_experiment:
        label = "EXPERIMENT (user code on the reader) app CPU per call python/node"
    ratios = [py / node if node else float("nan") for _, py, node in table]
    if len(table) > 1:
        cols = ("A (as is)", f"B ({args.ab_env})") if args.ab_env else ("python", "node")
        bl.out(f"| calls/s | {cols[0]} ms/call | {cols[1]} ms/call | ratio |")
        bl.out("|---|---|---|---|")
        for (rate, py_ms, node_ms), ratio in zip(table, ratios):
            bl.out(f"| {rate:g} | {py_ms:.3f} | {node_ms:.3f} | {ratio:.2f} |")
        label += f", highest over {','.join(f'{r:g}' for r, _, _ in table)} cps"
    bl.out(bl.ratio_line(label, max(ratios), "<= 1.0"))
    return 0 if clean else 1


if __name__ == "__main__":
    sys.exit(main())
