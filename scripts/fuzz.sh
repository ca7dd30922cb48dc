#!/usr/bin/env bash
# Builds or runs the cargo-fuzz targets of the attestation crate.
#   scripts/fuzz.sh build                 build every target (CI does this)
#   scripts/fuzz.sh run TARGET [SECONDS]  fuzz one target, seeded from ../shared/vectors
# Targets: snp_report, dcap_quote, policy, gpu_report, sealed_input.
set -euo pipefail
cd "$(dirname "$0")/.."
./scripts/setup.sh
export PATH="$HOME/.cargo/bin:$PATH"
command -v cargo-fuzz >/dev/null || cargo install --locked cargo-fuzz

# cargo-fuzz needs unstable compiler flags (sanitizers). Use nightly where rustup has it;
# otherwise let the stable compiler accept them, which is what nightly would do here.
if rustup toolchain list 2>/dev/null | grep -q '^nightly'; then
  fuzz=(cargo +nightly fuzz)
else
  export RUSTC_BOOTSTRAP=1
  fuzz=(cargo fuzz)
fi
cd attestation

case "${1:-build}" in
  build)
    "${fuzz[@]}" build --dev
    ;;
  run)
    target=${2:?usage: fuzz.sh run TARGET [SECONDS]}
    secs=${3:-60}
    corpus=fuzz/corpus/$target
    mkdir -p "$corpus"
    case $target in
      snp_report) python3 - "$corpus" <<'PY'
import sys, pathlib
src = pathlib.Path('../../shared/vectors/snp/milan/report_milan.hex').read_text().strip()
pathlib.Path(sys.argv[1], 'milan').write_bytes(bytes.fromhex(src))
PY
      ;;
      dcap_quote) cp ../../shared/vectors/tdx/tdx_quote ../../shared/vectors/sgx/sgx_quote "$corpus/" ;;
      policy) cp ../docs/examples/*.toml "$corpus/" ;;
      gpu_report) python3 - "$corpus" <<'PY'
import sys, pathlib
v = pathlib.Path('../../shared/vectors/gpu')
for i, f in enumerate(sorted(v.rglob('*AttestationReport*.txt'))):
    pathlib.Path(sys.argv[1], f'report{i}').write_bytes(bytes.fromhex(f.read_text().strip()))
PY
        cp ../../shared/vectors/gpu/nvidia-attestation-sdk/testdata/NV_GPU_DRIVER_GH100_550.144.03.xml "$corpus/" ;;
      sealed_input) printf '\000SILKCLM1' > "$corpus/claims"; printf '\001{"version":1}' > "$corpus/bundle" ;;
    esac
    "${fuzz[@]}" run "$target" "$corpus" -- -max_total_time="$secs"
    ;;
  *) echo "usage: fuzz.sh build | run TARGET [SECONDS]" >&2; exit 2 ;;
esac
