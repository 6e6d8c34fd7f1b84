"""A typed user app passes ``mypy --strict`` with the types a user expects (issue 8.6).

``typed_app.py`` uses PEP 8 names, JS aliases, option dicts, callbacks and futures; each of its
``reveal_type(...)`` lines says in a ``# revealed:`` comment what mypy must report.  mypy sees the
package as a user's mypy sees an installed typed package (``mypy.ini`` here: its modules are
followed for their types, their own errors are not the app's).
"""
from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent.parent
APP = HERE / "typed_app.py"

pytest.importorskip("mypy", reason="mypy is in the test extra: pip install -e '.[test]'")

_NOTE = re.compile(r"^(?P<file>[^:]+):(?P<line>\d+): note: Revealed type is \"(?P<type>.*)\"$")
_EXPECT = re.compile(r"# revealed: (?P<type>.*)$")


def normalise(type_text: str) -> str:
    """A revealed type without module paths, with ``X | Y`` for ``Union[X, Y]`` / ``Optional[X]``
    (mypy versions differ in both)."""
    text = re.sub(r"\b(?:[A-Za-z_]\w*\.)+(?=[A-Za-z_])", "", type_text.strip())
    while True:
        new = re.sub(r"Optional\[([^\[\]]*)\]", r"\1 | None", text)
        new = re.sub(r"Union\[([^\[\]]*)\]", lambda m: " | ".join(p.strip() for p in m.group(1).split(",")), new)
        if new == text:
            return text
        text = new


def run_mypy(tmp_path: Path, *files: Path) -> subprocess.CompletedProcess[str]:
    env = dict(os.environ, MYPYPATH=str(ROOT))
    return subprocess.run(
        [sys.executable, "-m", "mypy", "--config-file", str(HERE / "mypy.ini"),
         "--cache-dir", str(tmp_path / "mypy-cache"), "--no-error-summary", "--show-absolute-path",
         *map(str, files)],
        cwd=tmp_path, env=env, capture_output=True, text=True, timeout=110, check=False)


def test_typed_app_passes_mypy_strict_with_the_expected_types(tmp_path: Path) -> None:
    proc = run_mypy(tmp_path, APP)
    lines = proc.stdout.splitlines()
    errors = [line for line in lines if ": error:" in line]
    assert not errors and proc.returncode == 0, "\n".join(lines) + proc.stderr

    revealed = {}
    for line in lines:
        m = _NOTE.match(line)
        if m and Path(m["file"]).resolve() == APP:
            revealed[int(m["line"])] = normalise(m["type"])
    expected = {}
    for number, text in enumerate(APP.read_text().splitlines(), start=1):
        m = _EXPECT.search(text)
        if m and "reveal_type(" in text:
            expected[number] = normalise(m["type"])
    assert len(expected) >= 25
    mismatches = {n: (expected[n], revealed.get(n)) for n in expected if revealed.get(n) != expected[n]}
    assert not mismatches, "line: (expected, revealed)\n" + "\n".join(f"{n}: {v}" for n, v in mismatches.items())


def test_strict_mode_still_catches_misuse(tmp_path: Path) -> None:
    """The types are precise enough to reject a wrong program (they are not Any)."""
    bad = tmp_path / "bad_app.py"
    bad.write_text(
        "from drachtio_srf import Request, Response, Srf\n"
        "srf = Srf()\n"
        "def on_invite(req: Request, res: Response) -> None:\n"
        "    dialog = srf.create_uas(req, res, local_sdp='v=0').result()\n"
        "    dialog.no_such_method()\n"
        "    srf.createUAS(req, res, {}, lambda err, d: None).result()\n"
        "    n: int = dialog.modify('hold').result()\n"
        "srf.invite(on_invite)\n")
    proc = run_mypy(tmp_path, bad)
    errors = [line for line in proc.stdout.splitlines() if ": error:" in line]
    assert any(':5: error: "Dialog" has no attribute "no_such_method"' in e for e in errors), proc.stdout
    assert any(':6: error: "Srf" has no attribute "result"' in e for e in errors), proc.stdout
    assert any(":7: error: Incompatible types in assignment" in e for e in errors), proc.stdout
    assert len(errors) == 3, proc.stdout
