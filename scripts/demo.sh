#!/usr/bin/env bash
# The README's first command: silk's main job on one machine. It installs what the demo
# needs and nothing more (`scripts/setup.sh demo`: Debian build packages, Rust, the default
# model), builds `silk` and `silk-enclave`, then `silk demo` starts a local enclave in
# SIMULATED mode with the default model (SmolLM2-135M-Instruct), verifies its attestation
# with a fresh nonce over RA-TLS, and asks it a question through the HPKE-sealed path.
# Extra arguments go to `silk demo` (e.g. a prompt of your own).
#
# The build is the debug profile with the workspace's feature set, exactly what
# scripts/test.sh builds first, so the tests reuse all of it (tools/tests/first_run.rs).
set -euo pipefail
cd "$(dirname "$0")/.."
./scripts/setup.sh demo
export PATH="$HOME/.cargo/bin:$PATH"
say() { printf '[demo] %s\n' "$*" >&2; }
if [ -x target/debug/silk ] && [ -x target/debug/silk-enclave ]; then
  say "building silk and silk-enclave (only what changed since the last build)"
else
  say "building silk and silk-enclave: the first time compiles about 380 crates" \
    "(the inference engine, TLS, HPKE, attestation; ~8 minutes on 2 cores), the longest" \
    "part of a first run;" \
    "later runs and scripts/test.sh reuse this build"
fi
cargo build -p silk-tools -p silk-enclave --bin silk --bin silk-enclave
say "starting a local enclave (simulated TEE) and asking it through the sealed path"
exec target/debug/silk demo "$@"
