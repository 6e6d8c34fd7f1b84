"""Parser throughput: drachtio_srf's SipMessage versus the original drachtio-srf's, same corpus.

Per message, both sides parse the text, read From, To, Via, CSeq, Call-ID and (when present)
Contact as parsed headers, and serialise the message back. The corpus is benchmarks/corpus/*.sip
(line ends normalised to CRLF, Content-Length set to the body's size). Each round runs a fresh
Python process and a fresh Node process (alternating which goes first), each warming up before
timing.

    .venv/bin/python benchmarks/parser_bench.py                  # 5 rounds of 3 s each
    .venv/bin/python benchmarks/parser_bench.py --rounds 3 --seconds 2
    .venv/bin/python benchmarks/parser_bench.py --breakdown   # also the parts, both sides

Prints messages per second for both (median over rounds), and last the ratio Python / Node
(target >= 1.0).
"""
from __future__ import annotations

import argparse
import json
import logging
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


def worker(corpus_path: str, seconds: float, warmup: float, mode: str = "full") -> None:
    """The Python side, run in its own process: prints ``RESULT <msgs/s> <bytes per pass>``.

    ``mode``: ``full`` (the benchmark), ``parse`` (constructor only), ``headers`` (parse and the
    parsed headers, no serialising) - the parts, for ``--breakdown``."""
    from drachtio_srf.sip import SipMessage

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

    def run(limit: float) -> tuple[float, int]:
        n = size = 0
        start = now = time.perf_counter()
        while now - start < limit:
            size = one_pass()
            n += len(corpus)
            now = time.perf_counter()
        return n / (now - start), size

    run(warmup)
    rate, size = run(seconds)
    bl.out(f"RESULT {rate:.1f} {size}")


def measure(cmd: list[str], cwd: Path | None = None) -> tuple[float, int]:
    r = subprocess.run(cmd, cwd=cwd, capture_output=True, text=True, env=bl.py_env(), timeout=600,
                       check=False)
    for line in r.stdout.splitlines():
        if line.startswith("RESULT "):
            _, rate, size = line.split()
            return float(rate), int(size)
    raise RuntimeError(f"{cmd[0]} failed ({r.returncode}): {r.stderr[-2000:]}")


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--rounds", type=int, default=5, help="alternating rounds (default 5)")
    p.add_argument("--seconds", type=float, default=3.0, help="timed seconds per run (default 3)")
    p.add_argument("--warmup", type=float, default=1.0, help="untimed seconds first (default 1)")
    p.add_argument("--node-dir", help="keep/reuse the npm install of drachtio-srf@5 here")
    p.add_argument("--breakdown", action="store_true",
                   help="also time the parts (parse only; parse + parsed headers) on both sides")
    p.add_argument("--mode", default="full", help=argparse.SUPPRESS)
    p.add_argument("--worker", help=argparse.SUPPRESS)
    p.add_argument("-v", "--verbose", action="store_true")
    args = p.parse_args(argv)
    if args.worker:
        worker(args.worker, args.seconds, args.warmup, args.mode)
        return 0
    bl.setup_logging(args.verbose)
    corpus = load_corpus()
    with bl.node_install(args.node_dir) as node_work, bl.workdir(False) as work:
        corpus_path = work / "corpus.json"
        corpus_path.write_text(json.dumps(corpus))
        bl.out(f"# parser_bench: {bl.machine()} drachtio-srf(node)={bl.node_srf_version(node_work)}")
        bl.out(f"# corpus: {len(corpus)} messages, {sum(len(m) for m in corpus)} bytes; "
               f"{args.rounds} round(s) of {args.seconds:g} s (+{args.warmup:g} s warm-up)")
        modes = ("full", "parse", "headers") if args.breakdown else ("full",)
        parts: dict[tuple[str, str], list[float]] = {}
        for rnd, impl in bl.alternate(args.rounds):
            for mode in modes:
                if impl == "py":
                    cmd = [sys.executable, str(Path(__file__).resolve()), "--worker",
                           str(corpus_path), "--seconds", str(args.seconds), "--warmup",
                           str(args.warmup), "--mode", mode]
                    rate, size = measure(cmd)
                else:
                    cmd = ["node", "parser_bench.js", str(corpus_path), str(args.seconds),
                           str(args.warmup), mode]
                    rate, size = measure(cmd, cwd=node_work)
                parts.setdefault((impl, mode), []).append(rate)
                if mode == "full":
                    bl.out(f"round {rnd + 1} {impl:4s}: {rate:10.0f} msgs/s  "
                           f"(serialised {size} bytes per pass)")
    py, node = bl.median(parts[("py", "full")]), bl.median(parts[("node", "full")])
    bl.out(f"python: {py:.0f} msgs/s (median)")
    bl.out(f"node:   {node:.0f} msgs/s (median)")
    if args.breakdown:
        # microseconds per message of each step, from the medians of the cumulative modes
        def us(impl: str) -> tuple[float, float, float]:
            t = {m: 1e6 / bl.median(parts[(impl, m)]) for m in modes}
            return t["parse"], t["headers"] - t["parse"], t["full"] - t["headers"]
        for impl in ("py", "node"):
            parse_us, headers_us, out_us = us(impl)
            bl.out(f"{impl:6s} us/msg: parse {parse_us:5.2f}  parsed headers {headers_us:5.2f}  "
                   f"serialise {out_us:5.2f}")
    bl.out(bl.ratio_line("parser msgs/s python/node", py / node if node else float("nan"), ">= 1.0"))
    return 0


if __name__ == "__main__":
    sys.exit(main())
