#!/usr/bin/env bash
# Runs every test of the workspace: unit, integration and end-to-end, then the TON
# contracts' tests (the README's test command). Extra arguments go to nextest, e.g.
# `scripts/test.sh -E 'test(snp)'`.
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
cargo nextest run --workspace --profile "$profile" "$@"
# The TON contracts on the TVM sandbox, including the promises silk-ledger signs
# (ledger/ton/fixtures/promises-rust.json). Only for a whole run: arguments filter nextest.
if [ $# -eq 0 ]; then
  (cd ledger/ton && npm ci --no-audit --no-fund --loglevel=error && npm test)
fi
