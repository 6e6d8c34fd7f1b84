#!/usr/bin/env bash
# Runs the demo: embedded server + example UAS app + a real SIP call from sipp (answer, hold, hang up).
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh
exec .venv/bin/python examples/demo.py "$@"
