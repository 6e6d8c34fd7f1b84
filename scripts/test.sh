#!/usr/bin/env bash
# Runs the whole test suite (unit, embedded server, integration with sipp), installing what it needs.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh
exec .venv/bin/python -m pytest -q "$@"
