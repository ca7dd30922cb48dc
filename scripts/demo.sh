#!/usr/bin/env bash
# The README's first command: silk's main job on one machine. It installs what is missing
# (scripts/setup.sh: Debian packages, Rust, the default model), builds `silk` and
# `silk-enclave`, then `silk demo` starts a local enclave in SIMULATED mode with the
# default model (SmolLM2-135M-Instruct), verifies its attestation with a fresh nonce over
# RA-TLS, and asks it a question through the HPKE-sealed path. Extra arguments go to
# `silk demo` (e.g. a prompt of your own).
set -euo pipefail
cd "$(dirname "$0")/.."
./scripts/setup.sh
export PATH="$HOME/.cargo/bin:$PATH"
cargo build --quiet -p silk-tools -p silk-enclave --bin silk --bin silk-enclave
exec target/debug/silk demo "$@"
