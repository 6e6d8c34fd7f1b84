"""docs/testing.md: its example test of examples/simple_uas.py runs, as written, in a user's
directory with only the installed package; its pytest-free snippet runs too."""
from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
DOC = ROOT / "docs" / "testing.md"


def _blocks() -> list[str]:
    return re.findall(r"```python(?: fragment)?\n(.*?)```", DOC.read_text(), flags=re.DOTALL)


def _clean_env() -> dict[str, str]:
    return {k: v for k, v in os.environ.items()
            if k not in ("PYTHONPATH", "PYTEST_ADDOPTS", "PYTEST_DISABLE_PLUGIN_AUTOLOAD")}


def test_the_documented_example_test_passes(tmp_path):
    example = next(b for b in _blocks() if "import simple_uas" in b)
    shutil.copy(ROOT / "examples" / "simple_uas.py", tmp_path / "simple_uas.py")
    (tmp_path / "test_simple_uas.py").write_text(example)
    out = subprocess.run([sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider",
                          "--rootdir", str(tmp_path)], cwd=tmp_path, env=_clean_env(),
                         capture_output=True, text=True, timeout=110, check=False)
    assert out.returncode == 0 and "2 passed" in out.stdout, out.stdout + out.stderr


def test_the_snippet_without_pytest_runs(tmp_path):
    snippet = next(b for b in _blocks() if "Without pytest" not in b and "with ServerProcess()" in b)
    out = subprocess.run([sys.executable, "-c", snippet], cwd=tmp_path, env=_clean_env(),
                         capture_output=True, text=True, timeout=60, check=False)
    assert out.returncode == 0, out.stderr
