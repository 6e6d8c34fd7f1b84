"""Which process owns a socket: readiness checks that never touch the port being checked.

Binding a port to see whether a process has it races that process: if the probe wins, the
process fails to bind and exits. Reading the kernel's socket tables instead (Linux ``/proc``,
or ``lsof`` elsewhere) only looks, so it can be repeated until the process is ready.
"""
from __future__ import annotations

import logging
import os
import shutil
import subprocess

logger = logging.getLogger(__name__)

_TCP_LISTEN = "0A"
_UDP_BOUND = "07"   # an unconnected UDP socket is in state TCP_CLOSE


def _inodes(proto: str, port: int) -> set[str] | None:
    """Inodes of sockets bound to ``port`` (TCP: listening), or None without /proc/net."""
    state = _TCP_LISTEN if proto == "tcp" else _UDP_BOUND
    found: set[str] = set()
    seen_table = False
    for table in (f"/proc/net/{proto}", f"/proc/net/{proto}6"):
        try:
            with open(table) as f:
                lines = f.readlines()[1:]
        except OSError:
            continue
        seen_table = True
        for line in lines:
            fields = line.split()
            if len(fields) < 10 or fields[3] != state:
                continue
            if int(fields[1].rsplit(":", 1)[1], 16) == port:
                found.add(fields[9])
    return found if seen_table else None


def _lsof(pid: int, port: int, proto: str) -> bool:
    spec = f"-i{proto.upper()}:{port}"
    extra = ["-sTCP:LISTEN"] if proto == "tcp" else []
    try:
        out = subprocess.run(["lsof", "-nP", "-a", "-p", str(pid), spec, *extra],
                             capture_output=True, timeout=10, check=False)
    except (OSError, subprocess.TimeoutExpired):
        return False
    return out.returncode == 0 and bool(out.stdout.strip())


def socket_bound(pid: int, port: int, proto: str = "udp") -> bool:
    """Does process ``pid`` hold a socket bound to ``port`` (``proto`` "udp"), or listening on
    it ("tcp")?

    Looks at /proc/net/{udp,tcp}[6] and /proc/<pid>/fd on Linux, asks ``lsof`` elsewhere; never
    binds or connects to the port. Raises RuntimeError when neither source is available.
    """
    if proto not in ("udp", "tcp"):
        raise ValueError(f"proto must be 'udp' or 'tcp', not {proto!r}")
    inodes = _inodes(proto, port)
    if inodes is None:
        if shutil.which("lsof") is None:
            raise RuntimeError("cannot tell which process owns a port: no /proc/net and no lsof")
        return _lsof(pid, port, proto)
    if not inodes:
        return False
    try:
        fds = os.listdir(f"/proc/{pid}/fd")
    except OSError:
        return False
    for fd in fds:
        try:
            link = os.readlink(f"/proc/{pid}/fd/{fd}")
        except OSError:
            continue
        if link.startswith("socket:[") and link[8:-1] in inodes:
            return True
    return False
