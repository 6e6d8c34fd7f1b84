"""Shared plumbing for the benchmark scripts: the original library from npm, the embedded server,
the two UAS apps, sipp runs, and per-process CPU/RSS readings from /proc.

Everything runs on 127.0.0.1 with free ports, so benchmarks can run beside the test suite (they
will then compete for the CPUs, though: run them on a quiet machine for figures you publish).
"""
from __future__ import annotations

import argparse
import json
import logging
import os
import queue
import shutil
import socket
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

logger = logging.getLogger("benchmarks")

BENCH = Path(__file__).resolve().parent
REPO = BENCH.parent
NODE_DIR = BENCH / "node"
SCENARIOS = BENCH / "scenarios"
CORPUS = BENCH / "corpus"
LOOPBACK = "127.0.0.1"
SECRET = "cymru"
CLK_TCK = os.sysconf("SC_CLK_TCK")
PAGE = os.sysconf("SC_PAGE_SIZE")


def setup_logging(verbose: bool = False) -> None:
    logging.basicConfig(level=logging.DEBUG if verbose else logging.INFO,
                        format="%(asctime)s %(message)s", datefmt="%H:%M:%S")


def add_run_options(p: argparse.ArgumentParser) -> None:
    """The options every app-against-app benchmark takes (npm cache, server log level, keeping
    the work files, verbose progress), so the scripts agree on their names and defaults."""
    p.add_argument("--node-dir", help="keep/reuse the npm install of drachtio-srf@5 here")
    p.add_argument("--server-loglevel", default="warning")
    p.add_argument("--keep", action="store_true", help="keep logs and sipp stats files")
    p.add_argument("-v", "--verbose", action="store_true")


def out(line: str = "") -> None:
    """A result line on stdout (progress goes to the log on stderr)."""
    sys.stdout.write(line + "\n")
    sys.stdout.flush()


def py_env() -> dict[str, str]:
    """Environment for Python subprocesses: our package importable from the repo checkout."""
    env = dict(os.environ)
    env["PYTHONPATH"] = str(REPO) + os.pathsep + env.get("PYTHONPATH", "")
    return env


def installed_env() -> dict[str, str]:
    """Environment for a Python that imports the drachtio_srf installed in its own environment
    (e.g. the compiled build in .venv-compiled), not the checkout: only benchmarks/ is added to
    PYTHONPATH (a script's own folder is on sys.path anyway, the working directory is not)."""
    env = dict(os.environ)
    env["PYTHONPATH"] = str(BENCH)
    return env


def parser_module_of(python: str) -> str:
    """The file ``python`` imports drachtio_srf's SIP parser from (a .so for the compiled build)."""
    r = subprocess.run([python, "-c", "import drachtio_srf.sip.parser as p; print(p.__file__)"],
                       capture_output=True, text=True, env=installed_env(), cwd=str(BENCH),
                       timeout=60, check=False)
    if r.returncode != 0:
        raise SystemExit(f"{python} cannot import drachtio_srf: {r.stderr[-1000:]}")
    return r.stdout.strip()


def machine() -> str:
    """One line describing the machine, for the figures."""
    model = ""
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                model = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    node = shutil.which("node")
    node_v = subprocess.run([node, "--version"], capture_output=True, text=True, check=False).stdout.strip() if node else "none"
    return (f"cores={os.cpu_count()} cpu={model or '?'} python={sys.version.split()[0]} node={node_v}")


def median(xs: Sequence[float]) -> float:
    return statistics.median(xs) if xs else float("nan")


def ratio_line(label: str, value: float, target: str) -> str:
    return f"RATIO {label}: {value:.3f} (target {target})"


# -- ports ----------------------------------------------------------------------------------------

def free_port() -> int:
    """A port free on 127.0.0.1 for both UDP and TCP right now."""
    for _ in range(200):
        with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as t:
            t.bind((LOOPBACK, 0))
            port = t.getsockname()[1]
            with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as u:
                try:
                    u.bind((LOOPBACK, port))
                except OSError:
                    continue
            return port
    raise RuntimeError("no free port")


def wait_for_tcp(port: int, timeout: float = 10.0) -> None:
    deadline = time.monotonic() + timeout
    while True:
        try:
            with socket.create_connection((LOOPBACK, port), timeout=0.5):
                return
        except OSError:
            if time.monotonic() > deadline:
                raise TimeoutError(f"nothing listening on {LOOPBACK}:{port}") from None
            time.sleep(0.02)


# -- /proc ------------------------------------------------------------------------------------------

def _cpu_times(pid: int) -> tuple[float, float]:
    """(user, system) CPU seconds of a whole process (all its threads), from /proc/<pid>/stat."""
    raw = Path(f"/proc/{pid}/stat").read_text()
    fields = raw[raw.rindex(")") + 2:].split()
    return int(fields[11]) / CLK_TCK, int(fields[12]) / CLK_TCK  # utime, stime (fields 14, 15)


def cpu_seconds(pid: int) -> float:
    """User + system CPU time of a whole process (all its threads)."""
    return sum(_cpu_times(pid))


@dataclass(frozen=True)
class CpuDetail:
    """A process's CPU split: user and system seconds, and context switches of all its threads
    (voluntary: a thread blocked, e.g. on a queue or socket; involuntary: it was preempted)."""

    user: float
    system: float
    voluntary: int
    involuntary: int

    @property
    def total(self) -> float:
        return self.user + self.system

    def __sub__(self, other: CpuDetail) -> CpuDetail:
        return CpuDetail(self.user - other.user, self.system - other.system,
                         self.voluntary - other.voluntary, self.involuntary - other.involuntary)


def cpu_detail(pid: int) -> CpuDetail:
    """CpuDetail of a whole process from /proc/<pid>/stat and each /proc/<pid>/task/*/status
    (threads that exited before the reading are missing from the switch counts)."""
    vol = invol = 0
    for status in Path(f"/proc/{pid}/task").glob("*/status"):
        try:
            text = status.read_text()
        except OSError:
            continue                    # (the thread exited meanwhile)
        for line in text.splitlines():
            if line.startswith("voluntary_ctxt_switches:"):
                vol += int(line.split()[1])
            elif line.startswith("nonvoluntary_ctxt_switches:"):
                invol += int(line.split()[1])
    user, system = _cpu_times(pid)
    return CpuDetail(user, system, vol, invol)


def pin_process(pid: int, cpus: set[int]) -> None:
    """Restrict every thread of a process to ``cpus`` (Linux affinity is per thread; threads it
    starts later inherit their creator's)."""
    for task in Path(f"/proc/{pid}/task").iterdir():
        try:
            os.sched_setaffinity(int(task.name), cpus)
        except (ProcessLookupError, FileNotFoundError):
            continue                    # (the thread exited meanwhile)


def rss_bytes(pid: int) -> int:
    """Resident set size of a process (VmRSS), in bytes."""
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) * 1024
    raise RuntimeError(f"no VmRSS for pid {pid}")


# -- the original library ---------------------------------------------------------------------------

@contextmanager
def node_install(node_dir: str | None) -> Iterator[Path]:
    """A folder holding node_modules/drachtio-srf (v5, from npm) and our node scripts.

    With ``node_dir`` the folder is kept and reused on the next run (installed when missing);
    without, a temporary folder is made and removed afterwards.
    """
    if not shutil.which("node") or not shutil.which("npm"):
        raise SystemExit("node and npm are needed for the comparison")
    tmp = None
    if node_dir:
        work = Path(node_dir).resolve()
        work.mkdir(parents=True, exist_ok=True)
    else:
        tmp = tempfile.mkdtemp(prefix="drachtio-bench-node-")
        work = Path(tmp)
    try:
        if not (work / "node_modules" / "drachtio-srf" / "package.json").exists():
            logger.info("npm install drachtio-srf@5 into %s", work)
            if not (work / "package.json").exists():
                (work / "package.json").write_text('{"name": "drachtio-bench", "private": true}\n')
            r = subprocess.run(["npm", "install", "--no-audit", "--no-fund", "drachtio-srf@5"],
                               cwd=work, capture_output=True, text=True, check=False)
            if r.returncode != 0:
                raise SystemExit(f"npm install drachtio-srf@5 failed:\n{r.stderr[-2000:]}")
        for js in NODE_DIR.glob("*.js"):
            shutil.copy(js, work / js.name)
        yield work
    finally:
        if tmp:
            shutil.rmtree(tmp, ignore_errors=True)


def node_srf_version(work: Path) -> str:
    try:
        return json.loads((work / "node_modules" / "drachtio-srf" / "package.json").read_text())["version"]
    except (OSError, ValueError, KeyError):
        return "?"


# -- processes --------------------------------------------------------------------------------------

class Server:
    """``python -m drachtio_srf.server`` on free ports."""

    def __init__(self, workdir: Path, loglevel: str = "warning", profile_to: Path | None = None,
                 program: list[str] | None = None, admin_port: int | None = None,
                 sip_port: int | None = None) -> None:
        """``program`` replaces ``python -m drachtio_srf.server`` (e.g. the real drachtio-server
        binary and its ``-f`` file); the drachtio-server options that follow are the same."""
        self.admin_port = admin_port or free_port()
        self.sip_port = sip_port or free_port()
        self.log_path = workdir / f"server-{self.admin_port}.log"
        self._log = open(self.log_path, "wb")  # noqa: SIM115 - open while the process runs
        prog = [sys.executable, "-m", "drachtio_srf.server"]
        if profile_to is not None:
            prog = [sys.executable, str(BENCH / "apps" / "profiled_server.py"), str(profile_to)]
        if program is not None:
            prog = program
        args = [*prog, "--address", LOOPBACK,
                "--port", str(self.admin_port), "--secret", SECRET,
                "--contact", f"sip:{LOOPBACK}:{self.sip_port};transport=udp,tcp",
                "--loglevel", loglevel]
        self.proc = subprocess.Popen(args, stdout=self._log, stderr=subprocess.STDOUT, env=py_env())
        try:
            wait_for_tcp(self.admin_port)
        except TimeoutError:
            self.stop()
            raise

    @property
    def pid(self) -> int:
        return self.proc.pid

    def stop(self, timeout: float = 5.0) -> None:
        stop_process(self.proc, timeout)
        self._log.close()


def stop_process(proc: subprocess.Popen[bytes] | subprocess.Popen[str], timeout: float = 5.0) -> None:
    if proc.poll() is None:
        proc.terminate()
        try:
            proc.wait(timeout)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(5)


class App:
    """One UAS app (``py`` or ``node``) as a subprocess, driven by its stdin control protocol."""

    def __init__(self, impl: str, server: Server, node_work: Path | None, workdir: Path,
                 app_args: Sequence[str] = (), python: str | None = None) -> None:
        """``python``: run the Python app with this interpreter and the drachtio_srf installed
        for it (e.g. .venv-compiled/bin/python) instead of this one and the checkout."""
        self.impl = impl
        if impl == "py":
            args = [python or sys.executable, str(BENCH / "apps" / "uas_app.py"),
                    str(server.admin_port), SECRET, *app_args]
            cwd, env = str(workdir), installed_env() if python else py_env()
        elif impl == "node":
            assert node_work is not None
            args = ["node", "--expose-gc", "uas_app.js", str(server.admin_port), SECRET, *app_args]
            cwd, env = str(node_work), dict(os.environ)
        else:
            raise ValueError(f"unknown app {impl!r}")
        self.err_path = workdir / f"app-{impl}-{server.admin_port}.err"
        self._err = open(self.err_path, "wb")  # noqa: SIM115 - open while the process runs
        self.proc = subprocess.Popen(args, cwd=cwd, env=env, stdin=subprocess.PIPE,
                                     stdout=subprocess.PIPE, stderr=self._err, text=True, bufsize=1)
        self._lines: queue.Queue[str | None] = queue.Queue()
        threading.Thread(target=self._read, name=f"app-{impl}-stdout", daemon=True).start()
        self.expect("READY", timeout=20)

    def _read(self) -> None:
        assert self.proc.stdout is not None
        for line in self.proc.stdout:
            self._lines.put(line.rstrip("\n"))
        self._lines.put(None)

    @property
    def pid(self) -> int:
        return self.proc.pid

    def expect(self, prefix: str, timeout: float = 10.0) -> str:
        """The next stdout line starting with ``prefix`` (others are logged and skipped)."""
        deadline = time.monotonic() + timeout
        while True:
            left = deadline - time.monotonic()
            if left <= 0:
                raise TimeoutError(f"{self.impl} app: no {prefix!r} line within {timeout}s")
            try:
                line = self._lines.get(timeout=left)
            except queue.Empty:
                continue
            if line is None:
                raise RuntimeError(f"{self.impl} app exited ({self.proc.poll()}); see {self.err_path}")
            if line.startswith(prefix):
                return line
            logger.debug("%s app: %s", self.impl, line)

    def command(self, cmd: str, reply: str, timeout: float = 10.0) -> str:
        assert self.proc.stdin is not None
        self.proc.stdin.write(cmd + "\n")
        self.proc.stdin.flush()
        return self.expect(reply, timeout)

    def stats(self) -> dict[str, int]:
        return json.loads(self.command("stats", "STATS ").split(" ", 1)[1])

    def wait_released(self, expected: int | None = None, timeout: float = 30.0) -> dict[str, int]:
        """Poll the app until it has no open dialog (and, given ``expected``, created that many)."""
        deadline = time.monotonic() + timeout
        while True:
            s = self.stats()
            if s["open"] == 0 and (expected is None or s["created"] + s["failed"] >= expected):
                return s
            if time.monotonic() > deadline:
                return s
            time.sleep(0.2)

    def gc(self) -> None:
        self.command("gc", "GC", timeout=60)

    def stop(self, timeout: float = 5.0) -> None:
        if self.proc.poll() is None:
            try:
                assert self.proc.stdin is not None
                self.proc.stdin.write("quit\n")
                self.proc.stdin.flush()
                self.proc.wait(timeout)
            except (OSError, subprocess.TimeoutExpired):
                pass
        stop_process(self.proc, timeout)
        self._err.close()


# -- sipp ---------------------------------------------------------------------------------------------

@dataclass
class SippResult:
    rc: int
    elapsed: float
    successful: int
    failed: int
    retransmissions: int
    stat_file: Path

    @property
    def ok(self) -> bool:
        return self.rc == 0 and self.failed == 0


def sipp_args(target_port: int, *, rate: float, calls: int, workdir: Path, tag: str,
              scenario: str = "uac", limit: int | None = None, timeout: float = 120.0,
              extra: Sequence[str] = ()) -> tuple[list[str], Path]:
    """Arguments for a sipp UAC run against the server, with a stats file in ``workdir``."""
    stat = workdir / f"sipp-{tag}-stats.csv"
    args = ["sipp", "-i", LOOPBACK, "-p", str(free_port()), "-t", "u1", "-nostdin",
            "-r", f"{rate:g}", "-rp", "1000", "-m", str(calls), "-s", "service",
            "-timeout", f"{int(timeout)}s", "-timeout_error", "-trace_stat", "-stf", str(stat),
            "-fd", "3600", "-buff_size", str(4 * 1024 * 1024)]
    if limit is not None:
        args += ["-l", str(limit)]
    if scenario in ("uac",):
        args += ["-sn", scenario, "-d", "0"]
    else:
        args += ["-sf", str(SCENARIOS / scenario)]
    args += [*extra, f"{LOOPBACK}:{target_port}"]
    return args, stat


def parse_stats(stat: Path) -> tuple[int, int, int]:
    """(successful, failed, retransmissions) cumulated, from sipp's last -trace_stat line."""
    try:
        lines = [ln for ln in stat.read_text(errors="replace").splitlines() if ln.strip()]
    except OSError:
        return 0, -1, 0
    if len(lines) < 2:
        return 0, -1, 0
    head = lines[0].split(";")
    last = lines[-1].split(";")

    def col(name: str) -> int:
        try:
            return int(last[head.index(name)])
        except (ValueError, IndexError):
            return -1
    return col("SuccessfulCall(C)"), col("FailedCall(C)"), col("Retransmissions(C)")


class SippRun:
    """A sipp process in the background."""

    def __init__(self, target_port: int, workdir: Path, tag: str, **kw: object) -> None:
        self.args, self.stat = sipp_args(target_port, workdir=workdir, tag=tag, **kw)  # type: ignore[arg-type]
        self.log_path = workdir / f"sipp-{tag}.out"
        self._log = open(self.log_path, "wb")  # noqa: SIM115 - open while the process runs
        self.started = time.monotonic()
        self.proc = subprocess.Popen(self.args, cwd=workdir, stdin=subprocess.DEVNULL,
                                     stdout=self._log, stderr=subprocess.STDOUT)

    def wait(self, timeout: float) -> SippResult:
        try:
            self.proc.wait(timeout)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait(5)
        elapsed = time.monotonic() - self.started
        self._log.close()
        ok, failed, retrans = parse_stats(self.stat)
        return SippResult(self.proc.returncode, elapsed, ok, failed, retrans, self.stat)

    def stop(self) -> None:
        if self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait(5)
        if not self._log.closed:
            self._log.close()


def run_sipp(target_port: int, workdir: Path, tag: str, timeout: float, **kw: object) -> SippResult:
    return SippRun(target_port, workdir, tag, timeout=timeout, **kw).wait(timeout + 15)


@contextmanager
def workdir(keep: bool) -> Iterator[Path]:
    d = Path(tempfile.mkdtemp(prefix="drachtio-bench-"))
    try:
        yield d
    finally:
        if keep:
            logger.info("logs kept in %s", d)
        else:
            shutil.rmtree(d, ignore_errors=True)


def alternate(rounds: int, impls: Sequence[str] = ("py", "node")) -> Iterator[tuple[int, str]]:
    """(round, impl) pairs, swapping which implementation goes first every round."""
    for r in range(rounds):
        order = list(impls) if r % 2 == 0 else list(reversed(impls))
        for impl in order:
            yield r, impl
