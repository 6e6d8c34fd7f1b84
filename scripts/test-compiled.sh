#!/usr/bin/env bash
# Tests the optional compiled build (docs/compiled.md): builds the wheel with DRACHTIO_SRF_COMPILE=1
# (mypyc compiles drachtio_srf/sip/*.py and wire.py into C extensions), installs it in a venv of
# its own (.venv-compiled), checks that the sans-I/O modules are the extensions, and runs against
# the installed package (not the checkout): the SIP and wire unit tests, the fuzz tests, the
# RFC 4475 corpus tests (parser and embedded server) and a subset of the integration tests; with
# --all, the whole suite. Needs a C compiler and the Python headers. Prints the build time.
# Usage: bash scripts/test-compiled.sh [--all] [extra pytest arguments]
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh   # sipp (for the integration subset) and .venv
# mypyc's output is C: without a compiler or the Python headers there is nothing to test (said
# loudly, as test-pythons.sh does for a missing interpreter)
cc=${CC:-cc}
include=$(python3 -c 'import sysconfig; print(sysconfig.get_paths()["include"])')
if ! command -v "$cc" >/dev/null 2>&1 || [ ! -f "$include/Python.h" ]; then
  echo "=== compiled build: NOT TESTED (no C compiler '$cc' or no $include/Python.h;" \
       "Debian: apt-get install build-essential python3-dev) ==="
  exit 0
fi
venv=.venv-compiled
root=$PWD
[ -x "$venv/bin/python" ] || python3 -m venv "$venv"
wheeldir=$(mktemp -d)
trap 'rm -rf "$wheeldir"' EXIT

start=$(date +%s)
DRACHTIO_SRF_COMPILE=1 "$venv/bin/python" -m pip wheel -q --disable-pip-version-check --no-deps \
  -w "$wheeldir" . >/dev/null
echo "=== compiled wheel built in $(( $(date +%s) - start )) s: $(cd "$wheeldir" && ls drachtio_srf-*.whl) ==="
wheel=$(ls "$wheeldir"/drachtio_srf-*.whl)
"$venv/bin/python" -m pip install -q --disable-pip-version-check "$wheel[test]"
"$venv/bin/python" -m pip install -q --disable-pip-version-check --force-reinstall --no-deps "$wheel"

# outside the tree: the installed modules are the extensions, attrdict stays interpreted
(cd "$wheeldir" && "$root/$venv/bin/python" - <<'PY'
import importlib, sys
from importlib.machinery import EXTENSION_SUFFIXES
for name in ("sip.errors", "sip.numbers", "sip.uri", "sip.headers", "sip.parser", "wire"):
    path = importlib.import_module(f"drachtio_srf.{name}").__file__
    if not path.endswith(tuple(EXTENSION_SUFFIXES)):
        sys.exit(f"drachtio_srf.{name} is not compiled: {path}")
    print(f"compiled: drachtio_srf.{name} <- {path}")
import drachtio_srf.sip.attrdict as a
assert a.__file__.endswith(".py"), a.__file__
PY
)

# the examples package for the tests that import it, without the checkout's drachtio_srf
mkdir "$wheeldir/path"
ln -s "$root/examples" "$wheeldir/path/examples"
# PYTHONSAFEPATH keeps the working directory off sys.path (python -m would put the checkout's
# drachtio_srf first) and -o pythonpath=test drops pytest.ini's "." for the same reason;
# DRACHTIO_SRF_EXPECT_COMPILED makes test_compiled_build.py fail unless the extensions were used.
export PYTHONSAFEPATH=1 DRACHTIO_SRF_EXPECT_COMPILED=1
pytest=("$venv/bin/python" -m pytest -q -p no:cacheprovider -o "pythonpath=test $wheeldir/path")
if [ "${1:-}" = "--all" ]; then
  shift
  "${pytest[@]}" "$@"
  exit
fi
"${pytest[@]}" \
  test/unit/test_compiled_build.py \
  test/unit/test_sip_parser.py test/unit/test_sip_headers.py test/unit/test_sip_uri.py \
  test/unit/test_sip_numbers.py test/unit/test_sip_folding.py test/unit/test_sip_rfc4475.py \
  test/unit/test_wire.py test/unit/test_client_retention.py test/unit/test_api_surface.py \
  test/fuzz \
  test/server/test_rfc4475_server.py test/server/test_frames.py test/server/test_core_uas.py \
  test/integration/test_uas.py test/integration/test_uac.py test/integration/test_b2bua.py \
  test/integration/test_auth.py test/integration/test_js_objects.py \
  "$@"
