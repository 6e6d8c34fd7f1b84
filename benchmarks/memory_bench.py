"""Memory per dialog: resident memory growth of each UAS app per established, open dialog.

Each run starts a fresh embedded server and one app, completes ``--warmup`` ordinary calls (so
code paths and caches are loaded), collects garbage and reads the app's VmRSS; then sipp
(benchmarks/scenarios/uac-hold.xml: INVITE, 200, ACK, then wait for the app's BYE) opens N
dialogs at ``--rate`` cps and keeps them open. Once the app reports N dialogs, garbage is
collected again and VmRSS read again: (after - before) / N is the growth per dialog. The app is
then told to hang up every dialog (at the same rate) and the run checks they were all released. Runs alternate
between the Python and the Node app.

    .venv/bin/python benchmarks/memory_bench.py                    # N = 10,000
    .venv/bin/python benchmarks/memory_bench.py -n 2000 --rate 200

Prints bytes per dialog for both (median over rounds), the server's growth, and last the ratio
Python / Node (target <= 1.0).
"""
from __future__ import annotations

import argparse
import logging
import sys
import time
from dataclasses import dataclass
from pathlib import Path

import benchlib as bl

logger = logging.getLogger("benchmarks.memory")


@dataclass
class Run:
    impl: str
    dialogs: int
    app_before: int
    app_after: int
    server_growth: int
    released: bool
    note: str

    @property
    def per_dialog(self) -> float:
        return (self.app_after - self.app_before) / max(self.dialogs, 1)


def wait_created(app: bl.App, target: int, timeout: float) -> dict[str, int]:
    """Poll the app until it has created ``target`` dialogs in all (or the time is up)."""
    deadline = time.monotonic() + timeout
    while True:
        s = app.stats()
        if s["created"] + s["failed"] >= target or time.monotonic() > deadline:
            return s
        time.sleep(0.5)


def release(app: bl.App, n: int, rate: float) -> None:
    """Have the app hang up its dialogs at ``rate`` per second (in batches every 0.1 s)."""
    batch = max(int(rate / 10), 1)
    start = time.monotonic()
    asked = 0
    while asked < n:
        got = int(app.command(f"release {batch}", "RELEASING", timeout=30).split()[1])
        if got == 0:
            break
        asked += got
        delay = start + asked / rate - time.monotonic()
        if delay > 0:
            time.sleep(delay)  # pacing the hang-ups, as sipp paces the call set-up


def one_run(impl: str, args: argparse.Namespace, node_work: Path, work: Path, tag: str) -> Run:
    server = bl.Server(work, loglevel=args.server_loglevel)
    app = None
    sipp = None
    try:
        app = bl.App(impl, server, node_work, work)
        if args.warmup:
            bl.run_sipp(server.sip_port, work, f"{tag}-warm", timeout=60, rate=min(args.rate, 100),
                        calls=args.warmup)
            app.wait_released(args.warmup, timeout=20)
        base = app.stats()
        app.gc()
        before, srv_before = bl.rss_bytes(app.pid), bl.rss_bytes(server.pid)
        n = args.dialogs
        setup_time = n / args.rate
        sipp = bl.SippRun(server.sip_port, work, tag, scenario="uac-hold.xml", rate=args.rate,
                          calls=n, limit=n + 10, timeout=setup_time * 3 + 120)
        s = wait_created(app, base["created"] + base["failed"] + n, timeout=setup_time * 2 + 60)
        opened = s["created"] - base["created"]
        app.gc()
        after, srv_after = bl.rss_bytes(app.pid), bl.rss_bytes(server.pid)
        note = ""
        if opened != n or s["failed"] != base["failed"]:
            note = f"only {opened}/{n} dialogs opened, {s['failed'] - base['failed']} failed"
        logger.info("%s: %d dialogs open, RSS %.1f -> %.1f MB; releasing", impl, s["open"],
                    before / 1e6, after / 1e6)
        release(app, n, args.rate)
        res = sipp.wait(timeout=60)
        end = app.wait_released(timeout=40)
        released = end["open"] == 0 and res.ok
        if end.get("release_errors"):
            note += f" {end['release_errors']} BYEs failed"
        if not released:
            note += f" release: sipp rc={res.rc} failed={res.failed}, app open={end['open']}"
        return Run(impl, s["open"], before, after, srv_after - srv_before, released, note.strip())
    finally:
        if sipp is not None:
            sipp.stop()
        if app is not None:
            app.stop()
        server.stop()


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("-n", "--dialogs", type=int, default=10_000, help="open dialogs (default 10000)")
    p.add_argument("--rate", type=float, default=200, help="call setup rate in cps (default 200)")
    p.add_argument("--rounds", type=int, default=1, help="runs per app, alternating (default 1)")
    p.add_argument("--warmup", type=int, default=200, help="complete calls first (default 200)")
    bl.add_run_options(p)
    args = p.parse_args(argv)
    bl.setup_logging(args.verbose)

    runs: list[Run] = []
    with bl.node_install(args.node_dir) as node_work, bl.workdir(args.keep) as work:
        bl.out(f"# memory_bench: {bl.machine()} drachtio-srf(node)={bl.node_srf_version(node_work)}")
        bl.out(f"# {args.dialogs} open dialogs set up at {args.rate:g} cps, {args.rounds} round(s)")
        for rnd, impl in bl.alternate(args.rounds):
            logger.info("round %d: %s app, %d dialogs", rnd + 1, impl, args.dialogs)
            run = one_run(impl, args, node_work, work, f"r{rnd}-{impl}")
            runs.append(run)
            bl.out(f"round {rnd + 1} {impl:4s}: {run.per_dialog:8.0f} B/dialog  (app RSS "
                   f"{run.app_before / 1e6:.1f} -> {run.app_after / 1e6:.1f} MB with {run.dialogs} open; "
                   f"server +{run.server_growth / max(run.dialogs, 1):.0f} B/dialog; "
                   f"released {'yes' if run.released else 'NO'}) {run.note}")
    res = {impl: [r.per_dialog for r in runs if r.impl == impl] for impl in ("py", "node")}
    py, node = bl.median(res["py"]), bl.median(res["node"])
    srv = bl.median([r.server_growth / max(r.dialogs, 1) for r in runs])
    bl.out(f"python app: {py:.0f} bytes per open dialog (median)")
    bl.out(f"node   app: {node:.0f} bytes per open dialog (median)")
    bl.out(f"server: {srv:.0f} bytes per open dialog (median over all runs)")
    clean = all(r.released and not r.note for r in runs)
    if not clean:
        bl.out("WARNING: some runs did not open or release every dialog (see above)")
    bl.out(bl.ratio_line("memory per dialog python/node", py / node if node else float("nan"), "<= 1.0"))
    return 0 if clean else 1


if __name__ == "__main__":
    sys.exit(main())
