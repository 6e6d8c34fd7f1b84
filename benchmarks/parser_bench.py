"""Parser throughput: drachtio_srf's SipMessage versus the original drachtio-srf's, same corpus.

Per message, both sides parse the text, read From, To, Via, CSeq, Call-ID and (when present)
Contact as parsed headers, and serialise the message back. The corpus is benchmarks/corpus/*.sip
(line ends normalised to CRLF, Content-Length set to the body's size). Each round runs a fresh
Python process and a fresh Node process (alternating which goes first), each warming up before
timing.

    .venv/bin/python benchmarks/parser_bench.py                  # 5 rounds of 3 s each
    .venv/bin/python benchmarks/parser_bench.py --rounds 3 --seconds 2
    .venv/bin/python benchmarks/parser_bench.py --breakdown   # also the parts, both sides
    .venv/bin/python benchmarks/parser_bench.py --compiled    # + the compiled build (.venv-compiled)

Prints, for each side, messages per second (wall clock) and CPU time per message (the process's
user + system CPU over the timed passes; steadier than the wall clock on a shared machine), the
medians over rounds, and last the speed ratio Python / Node from the CPU time per message (Node's
us / Python's us; target >= 1.0). ``--compiled [PYTHON]`` adds a third column: the package
installed in PYTHON's environment (default .venv-compiled/bin/python, built by
scripts/test-compiled.sh or ``DRACHTIO_SRF_COMPILE=1 pip install .``), checked to be the mypyc
build, with its own ratio line.
"""
from __future__ import annotations

import argparse
import json
import logging
import os
import subprocess
import sys
import time
from pathlib import Path

import benchlib as bl

logger = logging.getLogger("benchmarks.parser")

HEADERS = ("From", "To", "Via", "CSeq", "Call-ID")


def load_corpus(folder: Path = bl.CORPUS) -> list[str]:
    """The corpus messages with CRLF line ends and a correct Content-Length."""
    msgs = []
    for path in sorted(folder.glob("*.sip")):
        text = path.read_text(encoding="utf-8").replace("\r\n", "\n")
        head, _, body = text.partition("\n\n")
        body = body.replace("\n", "\r\n")
        lines = []
        for line in head.split("\n"):
            name = line.split(":", 1)[0].strip().lower()
            if name in ("content-length", "l"):
                line = f"{line.split(':', 1)[0]}: {len(body.encode('utf-8'))}"
            lines.append(line)
        msgs.append("\r\n".join(lines) + "\r\n\r\n" + body)
    if not msgs:
        raise SystemExit(f"no *.sip files in {folder}")
    return msgs


IMPLS = {"py": "python (pure)", "pyc": "python (compiled)", "node": "node"}
DEFAULT_COMPILED = bl.REPO / ".venv-compiled" / "bin" / "python"


def worker(corpus_path: str, seconds: float, warmup: float, mode: str = "full") -> None:
    """The Python side, run in its own process: prints
    ``RESULT <msgs/s> <bytes per pass> <CPU us per message> <file the parser was imported from>``.

    ``mode``: ``full`` (the benchmark), ``parse`` (constructor only), ``headers`` (parse and the
    parsed headers, no serialising) - the parts, for ``--breakdown``."""
    from drachtio_srf.sip import SipMessage, parser

    corpus = json.loads(Path(corpus_path).read_text())
    headers = HEADERS

    def one_pass() -> int:
        size = 0
        for text in corpus:
            msg = SipMessage(text)
            if mode == "parse":
                continue
            for h in headers:
                msg.get_parsed_header(h)
            if msg.has("Contact"):
                msg.get_parsed_header("Contact")
            if mode == "headers":
                continue
            size += len(msg.to_string())
        return size

    def run(limit: float) -> tuple[float, int, float]:
        n = size = 0
        cpu = time.process_time()
        start = now = time.perf_counter()
        while now - start < limit:
            size = one_pass()
            n += len(corpus)
            now = time.perf_counter()
        return n / (now - start), size, (time.process_time() - cpu) * 1e6 / n

    run(warmup)
    rate, size, cpu_us = run(seconds)
    bl.out(f"RESULT {rate:.1f} {size} {cpu_us:.3f} {parser.__file__}")


def measure(cmd: list[str], cwd: Path | None = None,
            env: dict[str, str] | None = None) -> tuple[float, int, float, str]:
    """(msgs/s, bytes per pass, CPU us per message, parser module file or '') of one run."""
    r = subprocess.run(cmd, cwd=cwd, capture_output=True, text=True,
                       env=env if env is not None else bl.py_env(), timeout=600, check=False)
    for line in r.stdout.splitlines():
        if line.startswith("RESULT "):
            _, rate, size, cpu_us, *where = line.split(maxsplit=4)
            return float(rate), int(size), float(cpu_us), " ".join(where)
    raise RuntimeError(f"{cmd[0]} failed ({r.returncode}): {r.stderr[-2000:]}")


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--rounds", type=int, default=5, help="alternating rounds (default 5)")
    p.add_argument("--seconds", type=float, default=3.0, help="timed seconds per run (default 3)")
    p.add_argument("--warmup", type=float, default=1.0, help="untimed seconds first (default 1)")
    p.add_argument("--node-dir", help="keep/reuse the npm install of drachtio-srf@5 here")
    p.add_argument("--breakdown", action="store_true",
                   help="also time the parts (parse only; parse + parsed headers) on both sides")
    p.add_argument("--compiled", nargs="?", const=str(DEFAULT_COMPILED), metavar="PYTHON",
                   help="also measure the compiled build installed for PYTHON (default "
                        ".venv-compiled/bin/python; see docs/compiled.md)")
    p.add_argument("--mode", default="full", help=argparse.SUPPRESS)
    p.add_argument("--worker", help=argparse.SUPPRESS)
    p.add_argument("-v", "--verbose", action="store_true")
    args = p.parse_args(argv)
    if args.worker:
        worker(args.worker, args.seconds, args.warmup, args.mode)
        return 0
    bl.setup_logging(args.verbose)
    impls = ("py", "pyc", "node") if args.compiled else ("py", "node")
    if args.compiled:
        args.compiled = os.path.abspath(args.compiled)    # (not resolved: a venv's symlink)
    if args.compiled and not Path(args.compiled).exists():
        raise SystemExit(f"--compiled: no {args.compiled}; build it with "
                         "`bash scripts/test-compiled.sh` (see docs/compiled.md)")
    corpus = load_corpus()
    with bl.node_install(args.node_dir) as node_work, bl.workdir(False) as work:
        corpus_path = work / "corpus.json"
        corpus_path.write_text(json.dumps(corpus))
        bl.out(f"# parser_bench: {bl.machine()} drachtio-srf(node)={bl.node_srf_version(node_work)}")
        bl.out(f"# corpus: {len(corpus)} messages, {sum(len(m) for m in corpus)} bytes; "
               f"{args.rounds} round(s) of {args.seconds:g} s (+{args.warmup:g} s warm-up)")
        modes = ("full", "parse", "headers") if args.breakdown else ("full",)
        rates: dict[tuple[str, str], list[float]] = {}
        cpus: dict[tuple[str, str], list[float]] = {}
        for rnd, impl in bl.alternate(args.rounds, impls):
            for mode in modes:
                if impl in ("py", "pyc"):
                    python = sys.executable if impl == "py" else args.compiled
                    cmd = [python, str(Path(__file__).resolve()), "--worker",
                           str(corpus_path), "--seconds", str(args.seconds), "--warmup",
                           str(args.warmup), "--mode", mode]
                    rate, size, cpu_us, where = measure(
                        cmd, env=bl.installed_env() if impl == "pyc" else None)
                    if impl == "py" and not where.endswith(".py"):
                        raise SystemExit(f"the pure-Python run imported a compiled parser "
                                         f"({where}): remove that extension from the checkout")
                    if impl == "pyc" and where.endswith(".py"):
                        raise SystemExit(f"--compiled: {args.compiled} imports the pure-Python "
                                         f"parser ({where}), not the compiled build")
                    if impl == "pyc" and rnd == 0 and mode == "full":
                        bl.out(f"# compiled build: {where}")
                else:
                    cmd = ["node", "parser_bench.js", str(corpus_path), str(args.seconds),
                           str(args.warmup), mode]
                    rate, size, cpu_us, _ = measure(cmd, cwd=node_work)
                rates.setdefault((impl, mode), []).append(rate)
                cpus.setdefault((impl, mode), []).append(cpu_us)
                if mode == "full":
                    bl.out(f"round {rnd + 1} {IMPLS[impl]:17s}: {rate:8.0f} msgs/s  "
                           f"{cpu_us:6.2f} us CPU/msg  (serialised {size} bytes per pass)")
    cpu = {impl: bl.median(cpus[(impl, "full")]) for impl in impls}
    for impl in impls:
        bl.out(f"{IMPLS[impl]:17s}: {bl.median(rates[(impl, 'full')]):8.0f} msgs/s  "
               f"{cpu[impl]:6.2f} us CPU/msg (medians)")
    if args.breakdown:
        # CPU microseconds per message of each step, from the medians of the cumulative modes
        for impl in impls:
            t = {m: bl.median(cpus[(impl, m)]) for m in modes}
            bl.out(f"{IMPLS[impl]:17s} CPU us/msg: parse {t['parse']:5.2f}  parsed headers "
                   f"{t['headers'] - t['parse']:5.2f}  serialise {t['full'] - t['headers']:5.2f}")
    wall = {impl: bl.median(rates[(impl, "full")]) for impl in impls}
    for impl in impls[:-1]:
        bl.out(f"(wall clock msgs/s {IMPLS[impl]}/node: {wall[impl] / wall['node']:.3f})")
    for impl in impls[:-1]:
        label = "parser speed python/node" if impl == "py" else "parser speed python(compiled)/node"
        bl.out(bl.ratio_line(f"{label} (CPU time per message)",
                             cpu["node"] / cpu[impl] if cpu[impl] else float("nan"), ">= 1.0"))
    return 0


if __name__ == "__main__":
    sys.exit(main())
