#!/usr/bin/env bash
# Builds the Python verifier's wheel (verifier/python: PyO3 over silk-verifier) with
# maturin into target/wheels, and prints its path and SHA-256.
#
#   scripts/build-python.sh            the dev profile (dependencies optimised, as for the
#                                      tests); what scripts/test-python.sh installs
#   scripts/build-python.sh --release  an optimised wheel to ship
#   scripts/build-python.sh --setup    only install the pinned tools (scripts/setup.sh)
#
# maturin (verifier/python/requirements-build.txt) lives in a venv under target/python,
# and pytest's wheels for the test venv in target/python/wheelhouse; nothing is installed
# outside the repository.
set -euo pipefail
cd "$(dirname "$0")/.."
export PATH="$HOME/.cargo/bin:$PATH"
tools=target/python/maturin
wheelhouse=target/python/wheelhouse
build_req=verifier/python/requirements-build.txt
test_req=verifier/python/tests/requirements.txt

if ! python3 -c 'import venv, ensurepip' 2>/dev/null; then
  as_root() { if [ "$(id -u)" = 0 ]; then "$@"; else sudo "$@"; fi; }
  as_root apt-get update -qq
  as_root env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq python3-venv >/dev/null
fi
if ! [ -x "$tools/bin/maturin" ] || ! cmp -s "$build_req" "$tools/.requirements"; then
  printf '[setup] creating %s with %s\n' "$tools" "$(tr '\n' ' ' < "$build_req")" >&2
  rm -rf "$tools"
  python3 -m venv "$tools"
  "$tools/bin/python" -m pip install --quiet --disable-pip-version-check -r "$build_req"
  cp "$build_req" "$tools/.requirements"
fi
if ! cmp -s "$test_req" "$wheelhouse/.requirements"; then
  printf '[setup] downloading %s into %s\n' "$(tr '\n' ' ' < "$test_req")" "$wheelhouse" >&2
  rm -rf "$wheelhouse"
  "$tools/bin/python" -m pip download --quiet --disable-pip-version-check \
    --only-binary=:all: -r "$test_req" -d "$wheelhouse"
  cp "$test_req" "$wheelhouse/.requirements"
fi

profile=()
case "${1:-}" in
  --setup) exit 0 ;;
  --release) profile=(--release --strip) ;;
  "") ;;
  *) printf 'usage: %s [--release|--setup]\n' "$0" >&2; exit 2 ;;
esac
rm -f target/wheels/silk_verifier-*.whl
"$tools/bin/maturin" build --quiet --manifest-path verifier/python/Cargo.toml \
  --interpreter python3 --out target/wheels "${profile[@]}"
wheel=$(ls target/wheels/silk_verifier-*.whl)
printf 'wheel: %s\nsha256: %s\n' "$wheel" "$(sha256sum "$wheel" | cut -d' ' -f1)"
