"""Where the Python side spends its CPU under load: per-thread cProfile of the UAS app and server.

Starts the embedded server and the Python UAS app, each with every thread profiled by its own
CPU time (benchmarks/apps/threadprof.py), drives them with sipp's ``uac`` at a fixed rate, then
prints the top functions by cumulative and by own ("tottime") CPU, with each one's share of the
process's profiled CPU. The .prof files are kept for snakeviz/pstats.

    .venv/bin/python benchmarks/profile_bench.py --rate 100 --duration 15 --out /tmp/prof

(Profiling slows the code 2-3x; use the shares, not the absolute times.) For a sampling profile
with no such overhead, run py-spy against a running app: ``py-spy record --pid PID``.
"""
from __future__ import annotations

import argparse
import logging
import pstats
import sys
from pathlib import Path

import benchlib as bl

logger = logging.getLogger("benchmarks.profile")


def short(func: tuple[str, int, str]) -> str:
    """``drachtio_srf/sip/parser.py:119(_parse)`` from a pstats key."""
    path, line, name = func
    for marker in ("/drachtio_srf/", "/benchmarks/", "/lib/python3"):
        i = path.find(marker)
        if i >= 0:
            path = path[i + 1:]
            break
    return f"{path}:{line}({name})" if path != "~" else name


def top(prof: Path, title: str, n: int) -> None:
    st = pstats.Stats(str(prof))
    total = sum(v[2] for v in st.stats.values()) or 1e-12  # type: ignore[attr-defined]
    rows = [(k, v) for k, v in st.stats.items()]  # type: ignore[attr-defined]
    bl.out(f"== {title}: {total:.2f} s profiled CPU")
    for label, idx in (("cumulative", 3), ("tottime", 2)):
        bl.out(f"-- top {n} by {label} (share = time / profiled CPU)")
        bl.out(f"{'share':>6} {'cum s':>7} {'own s':>7} {'calls':>8}  function")
        for key, (cc, nc, tt, ct, _callers) in sorted(rows, key=lambda r: r[1][idx], reverse=True)[:n]:
            t = ct if idx == 3 else tt
            bl.out(f"{100 * t / total:5.1f}% {ct:7.2f} {tt:7.2f} {nc:8d}  {short(key)}")
    by_file: dict[str, float] = {}
    for key, (_cc, _nc, tt, _ct, _callers) in rows:
        name = short(key).split(":", 1)[0] if key[0] != "~" else "(builtins)"
        by_file[name] = by_file.get(name, 0.0) + tt
    bl.out(f"-- own CPU by file (top {n})")
    for name, tt in sorted(by_file.items(), key=lambda kv: kv[1], reverse=True)[:n]:
        bl.out(f"{100 * tt / total:5.1f}% {tt:7.2f}  {name}")


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--rate", type=float, default=100, help="calls per second (default 100)")
    p.add_argument("--duration", type=float, default=15, help="seconds of load (default 15)")
    p.add_argument("--top", type=int, default=15)
    p.add_argument("--out", default=None, help="folder for app.prof / server.prof (default: temp)")
    p.add_argument("-v", "--verbose", action="store_true")
    args = p.parse_args(argv)
    bl.setup_logging(args.verbose)
    with bl.workdir(keep=bool(args.out)) as work:
        out = Path(args.out) if args.out else work
        out.mkdir(parents=True, exist_ok=True)
        app_prof, srv_prof = out / "app.prof", out / "server.prof"
        bl.out(f"# profile_bench: {bl.machine()}; {args.rate:g} cps x {args.duration:g} s, profiled")
        server = bl.Server(work, profile_to=srv_prof)
        app = None
        try:
            app = bl.App("py", server, None, work, app_args=["--profile", str(app_prof)])
            calls = int(args.rate * args.duration)
            res = bl.run_sipp(server.sip_port, work, "profile", timeout=args.duration * 3 + 30,
                              rate=args.rate, calls=calls)
            end = app.wait_released(calls, timeout=30)
            bl.out(f"# sipp rc={res.rc} ok={res.successful} failed={res.failed} "
                   f"retrans={res.retransmissions}; app created={end['created']} open={end['open']}")
        finally:
            if app is not None:
                app.stop(timeout=60)
            server.stop(timeout=60)
        for prof, title in ((app_prof, "Python UAS app"), (srv_prof, "embedded server")):
            if prof.exists():
                top(prof, title, args.top)
            else:
                bl.out(f"== {title}: no profile written ({prof})")
        if args.out:
            bl.out(f"# profiles in {out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
