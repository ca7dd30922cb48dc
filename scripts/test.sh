#!/usr/bin/env bash
# Runs every test of the workspace: unit, integration and end-to-end, then the TON
# contracts' tests (the README's test command). Extra arguments go to nextest, e.g.
# `scripts/test.sh -E 'test(snp)'`.
set -euo pipefail
cd "$(dirname "$0")/.."
./scripts/setup.sh
export PATH="$HOME/.cargo/bin:$PATH"
profile=default
[ "${CI:-}" = true ] && profile=ci
# The TON sandbox's packages first: the payments end-to-end test (tests/payments_cli.rs)
# executes the messages the built binaries wrote on it.
(cd ledger/ton && npm ci --no-audit --no-fund --loglevel=error)
# playwright-core for the /verify page's test (tests/tests/verify_page.rs), which drives
# Debian's chromium: no browser is downloaded.
(cd tests/browser && npm ci --no-audit --no-fund --loglevel=error)
# The process-level tests (tests/tests/*_cli.rs) start the workspace's binaries from
# target/debug. Cargo builds a package's binaries for tests only when that package has
# integration tests of its own (silk-host has none), so build them all explicitly.
cargo build --workspace --bins
cargo nextest run --workspace --profile "$profile" "$@"
# The TON contracts on the TVM sandbox, including what silk-ledger builds and signs
# (ledger/ton/fixtures/*-rust*). Only for a whole run: arguments filter nextest.
if [ $# -eq 0 ]; then
  (cd ledger/ton && npm test)
  # The Python verifier's wheel, pip-installed in a fresh venv, against target/debug/silk.
  ./scripts/test-python.sh
  # The WebAssembly verifier (the committed verifier/wasm/pkg/) in Node against
  # target/debug/silk: the same verdict JSON on every vector; its sealed requests against
  # the enclave's side, natively (the seal_peer example). No npm packages.
  cargo build -p silk-verifier-wasm --example seal_peer
  node --test verifier/wasm/test/verifier.test.mjs
fi
