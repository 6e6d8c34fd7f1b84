#!/usr/bin/env bash
# Release check: builds the sdist and the wheel (python -m build), checks their metadata and
# long description (twine check), and that the sdist carries the tests, docs, examples,
# benchmarks and changelog while the wheel carries only the package.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh
.venv/bin/python -m pip install -q --disable-pip-version-check build twine
out=$(mktemp -d)
trap 'rm -rf "$out"' EXIT
.venv/bin/python -m build -q --outdir "$out" . >/dev/null
.venv/bin/python -m twine check --strict "$out"/*
.venv/bin/python - "$out" <<'PY'
import sys, tarfile, zipfile
from pathlib import Path
out = Path(sys.argv[1])
sdist, = out.glob("*.tar.gz")
wheel, = out.glob("*.whl")
with tarfile.open(sdist) as tf:
    names = {n.split("/", 1)[1] for n in tf.getnames() if "/" in n}
need = ["CHANGELOG.md", "LICENSE", "README.md", "pyproject.toml", "mkdocs.yml", "test/helpers.py",
        "docs/index.md", "examples/simple_uas.py", "benchmarks/README.md", "benchmarks/benchlib.py",
        "scripts/test.sh", "drachtio_srf/py.typed"]
missing = [n for n in need if n not in names]
tops = {n.split("/")[0] for n in zipfile.ZipFile(wheel).namelist()}
extra = sorted(t for t in tops if not t.startswith("drachtio_srf"))
# the default build is pure Python (the compiled one needs DRACHTIO_SRF_COMPILE=1)
compiled = [n for n in zipfile.ZipFile(wheel).namelist() if n.endswith((".so", ".pyd"))]
if not wheel.name.endswith("-py3-none-any.whl"):
    compiled.append(wheel.name)
if missing or extra or compiled:
    sys.exit(f"sdist lacks {missing}; wheel has more than the package: {extra}; "
             f"wheel not pure Python: {compiled}")
print(f"ok: {sdist.name} ({len(names)} files), {wheel.name} ({sorted(tops)})")
PY
