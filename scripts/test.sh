#!/usr/bin/env bash
# Runs every test of the workspace: unit, integration and end-to-end (the README's test
# command). Extra arguments go to nextest, e.g. `scripts/test.sh -E 'test(snp)'`.
set -euo pipefail
cd "$(dirname "$0")/.."
./scripts/setup.sh
export PATH="$HOME/.cargo/bin:$PATH"
if [ ! -d ../shared/vectors ]; then
  echo "error: ../shared/vectors (real vendor evidence) must sit beside this repository" >&2
  exit 2
fi
profile=default
[ "${CI:-}" = true ] && profile=ci
exec cargo nextest run --workspace --profile "$profile" "$@"
