#!/usr/bin/env bash
# Documentation checks for CI: the docstring coverage report (fails on any undocumented public
# class, function, method, attribute or event of the package) and the MkDocs site with its API
# reference, built with warnings as errors into site/.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh
.venv/bin/python -m pip install -q --disable-pip-version-check -e '.[docs]'
echo "=== docstring coverage (scripts/docstring_coverage.py) ==="
.venv/bin/python scripts/docstring_coverage.py --all-strict
echo "=== documentation site (mkdocs build --strict) ==="
.venv/bin/python -m mkdocs build --strict --site-dir site
