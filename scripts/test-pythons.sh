#!/usr/bin/env bash
# Runs the test suite under the oldest and newest supported Python (default 3.10 and 3.13), each in
# a venv of its own (.venv-3.10, .venv-3.13), after installing the wheel built from this tree there
# and checking that it imports from site-packages. An interpreter that is not installed is reported
# and skipped (the script still fails if a run that could be done fails).
# Usage: bash scripts/test-pythons.sh [VERSION...]    extra pytest arguments: PYTEST_ARGS="-x ..."
set -euo pipefail
cd "$(dirname "$0")/.."
versions=("$@")
[ ${#versions[@]} -gt 0 ] || versions=(3.10 3.13)
bash scripts/setup.sh   # sipp and .venv (builds the wheel below)
wheeldir=$(mktemp -d)
trap 'rm -rf "$wheeldir"' EXIT
.venv/bin/python -m pip wheel -q --disable-pip-version-check --no-deps -w "$wheeldir" . >/dev/null
wheel=$(ls "$wheeldir"/drachtio_srf-*.whl)
failed=()
root=$PWD

# python$1 on PATH if it runs, else the newest pyenv-installed $1.x (pyenv's shims only run the
# selected versions); prints nothing when there is none
find_python() {
  if command -v "python$1" >/dev/null 2>&1 && "python$1" -c 'import sys' >/dev/null 2>&1; then
    command -v "python$1"
    return
  fi
  if command -v pyenv >/dev/null 2>&1; then
    local d best=""
    for d in "$(pyenv root)/versions/$1".*; do
      [ -x "$d/bin/python$1" ] && best="$d/bin/python$1"
    done
    [ -n "$best" ] && echo "$best"
  fi
  return 0
}
for v in "${versions[@]}"; do
  py=$(find_python "$v")
  if [ -z "$py" ]; then
    echo "=== Python $v: NOT FOUND (no python$v on PATH or in pyenv): the suite was NOT run under $v ==="
    continue
  fi
  venv=".venv-$v"
  echo "=== Python $v ($("$py" -c 'import sys; print(sys.version.split()[0])')): $venv ==="
  [ -x "$venv/bin/python" ] || "$py" -m venv "$venv"
  "$venv/bin/python" -m pip install -q --disable-pip-version-check "$wheel[test]"
  "$venv/bin/python" -m pip install -q --disable-pip-version-check --force-reinstall --no-deps "$wheel"
  # the installed wheel imports (outside the tree, so not from the source) and its CLI runs
  if ! (cd "$wheeldir" && "$root/$venv/bin/python" -W error -c \
        'import drachtio_srf, drachtio_srf.server.__main__ as m, sys; assert "site-packages" in drachtio_srf.__file__, drachtio_srf.__file__; sys.exit(m.main(["--version"]))'); then
    echo "=== Python $v: the installed wheel does not import ==="
    failed+=("$v (wheel import)")
    continue
  fi
  # shellcheck disable=SC2086  # PYTEST_ARGS is split on purpose
  if ! "$venv/bin/python" -m pytest -q -p no:cacheprovider ${PYTEST_ARGS:-}; then
    failed+=("$v (tests)")
  fi
done
if [ ${#failed[@]} -gt 0 ]; then
  echo "=== FAILED under: ${failed[*]} ==="
  exit 1
fi
