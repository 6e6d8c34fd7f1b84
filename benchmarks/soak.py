"""Soak: the embedded server, the benchmark UAS app and sipp at a fixed call rate for N minutes.

Every minute (``--every`` seconds) one line: calls attempted and failed in that interval (from
sipp's stats), dialogs open in the app (its own count and the library's registry), and RSS and
thread count of the app and of the server.  A last line sums it up; the exit status is 0 when no
call failed and the app released every dialog at the end.

    .venv/bin/python benchmarks/soak.py --rate 100 --minutes 2
    .venv/bin/python benchmarks/soak.py --rate 50 --minutes 10 --hold-ms 2000

Bounded: at most ``--max-minutes`` (60) and 1,000 calls/s; loopback only, free ports.  Calls are
sipp's built-in ``uac`` held ``--hold-ms`` before sipp's BYE (default 1000 ms, so about ``rate``
dialogs are open at any time).
"""
from __future__ import annotations

import argparse
import logging
import sys
import time
from pathlib import Path

import benchlib as bl

logger = logging.getLogger("benchmarks.soak")

MAX_RATE = 1000.0


def threads(pid: int) -> int:
    """Thread count of a process (/proc)."""
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("Threads:"):
            return int(line.split()[1])
    return -1


def sipp_counts(stat: Path) -> tuple[int, int, int]:
    """(created, successful, failed) cumulated, from sipp's last -trace_stat line."""
    try:
        lines = [ln for ln in stat.read_text(errors="replace").splitlines() if ln.strip()]
    except OSError:
        return 0, 0, 0
    if len(lines) < 2:
        return 0, 0, 0
    head, last = lines[0].split(";"), lines[-1].split(";")

    def col(name: str) -> int:
        try:
            return int(last[head.index(name)])
        except (ValueError, IndexError):
            return 0
    return col("TotalCallCreated"), col("SuccessfulCall(C)"), col("FailedCall(C)")


def mib(n: int) -> str:
    return f"{n / 1048576:.1f}"


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--rate", type=float, default=100.0, help="calls per second (default 100)")
    p.add_argument("--minutes", type=float, default=2.0, help="how long to offer calls (default 2)")
    p.add_argument("--hold-ms", type=int, default=1000, help="call length before sipp's BYE (default 1000)")
    p.add_argument("--every", type=float, default=60.0, help="seconds between report lines (default 60)")
    p.add_argument("--max-minutes", type=float, default=60.0, help="refuse longer runs (default 60)")
    bl.add_run_options(p)
    args = p.parse_args(argv)
    bl.setup_logging(args.verbose)
    if not 0 < args.rate <= MAX_RATE:
        p.error(f"--rate must be in (0, {MAX_RATE:g}]")
    if not 0 < args.minutes <= args.max_minutes:
        p.error(f"--minutes must be in (0, {args.max_minutes:g}]")
    calls = int(args.rate * args.minutes * 60)
    bl.out(f"# soak: {args.rate:g} calls/s for {args.minutes:g} min ({calls} calls, {args.hold_ms} ms each); "
           f"{bl.machine()}")
    with bl.workdir(args.keep) as work:
        server = bl.Server(work, loglevel=args.server_loglevel)
        app = None
        sipp = None
        try:
            app = bl.App("py", server, None, work)
            sipp = bl.SippRun(server.sip_port, work, "soak", rate=args.rate, calls=calls,
                              timeout=args.minutes * 60 + 120,
                              extra=["-d", str(args.hold_ms), "-fd", str(max(1, int(args.every // 4)))])
            bl.out(f"{'min':>5} {'attempted':>9} {'failed':>6} {'open(app)':>9} {'open(lib)':>9} "
                   f"{'app MiB':>8} {'app thr':>7} {'srv MiB':>8} {'srv thr':>7}")
            started = time.monotonic()
            prev_created = prev_failed = 0
            total_failed = 0
            tick = 0
            while True:
                tick += 1
                deadline = started + tick * args.every
                while time.monotonic() < deadline and sipp.proc.poll() is None:
                    time.sleep(min(1.0, max(0.0, deadline - time.monotonic())))
                created, _ok, failed = sipp_counts(sipp.stat)
                stats = app.stats()
                bl.out(f"{(time.monotonic() - started) / 60:5.1f} {created - prev_created:9d} "
                       f"{failed - prev_failed:6d} {stats['open']:9d} {stats['library_dialogs']:9d} "
                       f"{mib(bl.rss_bytes(app.pid)):>8} {threads(app.pid):7d} "
                       f"{mib(bl.rss_bytes(server.pid)):>8} {threads(server.pid):7d}")
                prev_created, prev_failed = created, failed
                total_failed = failed
                if sipp.proc.poll() is not None:
                    break
            result = sipp.wait(30)
            final = app.wait_released(calls, timeout=30)
            ok = result.rc == 0 and result.failed == 0 and final["open"] == 0 and final["library_dialogs"] == 0
            bl.out(f"# total: {result.successful} ok, {max(result.failed, total_failed)} failed of {calls}; "
                   f"sipp rc {result.rc}; {result.retransmissions} retransmissions; after the run the app "
                   f"has {final['open']} open dialogs ({final['library_dialogs']} in the library), "
                   f"RSS {mib(bl.rss_bytes(app.pid))} MiB, {threads(app.pid)} threads; server RSS "
                   f"{mib(bl.rss_bytes(server.pid))} MiB, {threads(server.pid)} threads -> "
                   f"{'PASS' if ok else 'FAIL'}")
            return 0 if ok else 1
        finally:
            if sipp is not None:
                sipp.stop()
            if app is not None:
                app.stop()
            server.stop()


if __name__ == "__main__":
    sys.exit(main())
