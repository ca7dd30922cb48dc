#!/usr/bin/env bash
# The Python verifier's tests (verifier/python/tests): builds the wheel
# (scripts/build-python.sh), pip-installs it into a fresh venv (target/python/test-venv,
# made anew each run, with the pinned pytest from the wheelhouse and no package index),
# and runs pytest there, outside the source tree, comparing each verdict with what the
# workspace's `target/debug/silk verify --json` prints (scripts/test.sh builds it first).
# Arguments go to pytest, e.g. `scripts/test-python.sh -k gpu`.
set -euo pipefail
cd "$(dirname "$0")/.."
root=$PWD
if [ ! -x target/debug/silk ]; then
  echo "error: target/debug/silk is missing: cargo build --workspace --bins" >&2
  exit 2
fi
./scripts/build-python.sh
venv=target/python/test-venv
rm -rf "$venv"
python3 -m venv "$venv"
"$venv/bin/python" -m pip install --quiet --disable-pip-version-check --no-index \
  --find-links target/python/wheelhouse -r verifier/python/tests/requirements.txt \
  target/wheels/silk_verifier-*.whl
cd verifier/python/tests
SILK_ROOT="$root" SILK_BIN="$root/target/debug/silk" \
  "$root/$venv/bin/python" -m pytest -q -p no:cacheprovider "$@"
