#!/usr/bin/env bash
# Builds, seeds or runs the cargo-fuzz targets in fuzz/.
#   scripts/fuzz.sh build                 build every target (CI does this)
#   scripts/fuzz.sh seed                  rewrite fuzz/corpus/ from vectors/ (committed)
#   scripts/fuzz.sh run TARGET [SECONDS]  fuzz one target from its committed corpus
# Targets: snp_report, dcap_quote, policy, gpu_report, sealed_input, tdx_event_log.
set -euo pipefail
cd "$(dirname "$0")/.."

# The seed corpus is real vendor evidence from vectors/ (and the example policies), so
# the fuzzer starts from inputs that pass every parser instead of finding them by chance.
seed() {
  rm -rf fuzz/corpus
  mkdir -p fuzz/corpus/{snp_report,dcap_quote,policy,gpu_report,sealed_input,tdx_event_log}
  python3 - <<'PY'
import pathlib
v = pathlib.Path('vectors')
c = pathlib.Path('fuzz/corpus')
def put(target, name, data):
    (c / target / name).write_bytes(data)
put('snp_report', 'milan', bytes.fromhex((v / 'snp/milan/report_milan.hex').read_text().strip()))
put('dcap_quote', 'tdx_quote', (v / 'tdx/tdx_quote').read_bytes())
put('dcap_quote', 'tdx_quote_outdated', (v / 'tdx/tdx_quote_outdated').read_bytes())
put('dcap_quote', 'sgx_quote', (v / 'sgx/sgx_quote').read_bytes())
for f in ('tdx-quote.hex', 'quote-from-tappd.hex'):
    put('dcap_quote', f.removesuffix('.hex'), bytes.fromhex((v / 'tdx' / f).read_text().strip().removeprefix('0x')))
for f in sorted(pathlib.Path('docs/examples').glob('*.toml')):
    put('policy', f.stem, f.read_bytes())
for i, f in enumerate(sorted((v / 'gpu').rglob('*AttestationReport*.txt'))):
    put('gpu_report', f'report{i}', bytes.fromhex(f.read_text().strip()))
put('gpu_report', 'driver_rim', (v / 'gpu/nvidia-attestation-sdk/testdata/NV_GPU_DRIVER_GH100_550.144.03.xml').read_bytes())
# sealed_input: the first byte picks the decoder (0 claims, 1 bundle, 2 sealed request).
put('sealed_input', 'claims', b'\x00SILKCLM1')
put('sealed_input', 'bundle', b'\x01{"version":1}')
# tdx_event_log: a header listing SHA-384 and two events (RTMR1, RTMR2), as LogWriter
# writes them, then 0xFF padding as in the CCEL log area.
import struct
spec = b'Spec ID Event03\0' + bytes([0, 0, 0, 0, 0, 2, 0, 2]) + struct.pack('<IHH', 1, 0x0c, 48) + b'\0'
log = struct.pack('<II', 0, 3) + bytes(20) + struct.pack('<I', len(spec)) + spec
for index, data in ((2, b'kernel'), (3, b'initrd')):
    log += struct.pack('<IIIH', index, 6, 1, 0x0c) + bytes(48) + struct.pack('<I', len(data)) + data
put('tdx_event_log', 'two_events', log + b'\xff' * 64)
PY
}

case "${1:-build}" in
  seed) seed; echo "fuzz/corpus rewritten from vectors/"; exit 0 ;;
  build|run) ;;
  *) echo "usage: fuzz.sh build | seed | run TARGET [SECONDS]" >&2; exit 2 ;;
esac

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

case "$1" in
  build)
    "${fuzz[@]}" build --fuzz-dir fuzz --dev
    ;;
  run)
    target=${2:?usage: fuzz.sh run TARGET [SECONDS]}
    secs=${3:-60}
    # New finds go to a scratch folder, so a run never rewrites the committed corpus.
    scratch=fuzz/target/corpus/$target
    mkdir -p "$scratch"
    "${fuzz[@]}" run --fuzz-dir fuzz "$target" "$scratch" "fuzz/corpus/$target" -- -max_total_time="$secs"
    ;;
esac
