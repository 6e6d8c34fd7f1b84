"""The demo program runs a real call end to end and says so."""
from __future__ import annotations

import os
import subprocess
import sys

from helpers import HERE

ROOT = HERE.parent


def test_demo_runs_a_call_and_exits_0():
    env = dict(os.environ)
    env["PYTHONPATH"] = str(ROOT) + os.pathsep + env.get("PYTHONPATH", "")
    proc = subprocess.run([sys.executable, str(ROOT / "examples" / "demo.py")], cwd=ROOT, env=env,
                          check=False, capture_output=True, text=True, timeout=90)
    out = proc.stdout + proc.stderr
    assert proc.returncode == 0, out
    steps = ["[demo] starting the drachtio server", "[demo] app connected to the server",
             "[demo] placing a call with sipp", "[app] incoming call from 127.0.0.1",
             "[app] answered the call: dialog", "[app] the caller put the call on hold",
             "[app] the caller hung up", "[demo] sipp finished the call with exit code 0",
             "[demo] success"]
    positions = [proc.stdout.find(step) for step in steps]
    assert -1 not in positions, f"missing steps {[s for s, p in zip(steps, positions) if p < 0]}:\n{out}"
    assert positions == sorted(positions), f"steps out of order:\n{out}"
