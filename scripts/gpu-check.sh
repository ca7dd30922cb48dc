#!/usr/bin/env bash
# One command on a machine with an NVIDIA GPU: builds the CUDA engine, runs the GPU tests,
# the GPU benchmark, the sealed path with the model on the GPU, and the GPU's
# confidential-computing collection (nvidia-smi conf-compute, the attestation report over
# a fresh nonce through NVML, verified by `silk verify gpu`), then prints one table and
# leaves everything it measured in one file.
#
#   scripts/gpu-check.sh            (SILK_GPU_CHECK_OUT=FILE to choose the results file)
#
# Without an NVIDIA GPU it stops at once, before building anything, and says so (exit 2).
# Designed for 10 minutes on an H100 with 16 cores: most of it is the cold build of
# candle's kernels (CUDAFORGE_THREADS = all cores); every later step has its own timeout.
# The build needs the network the first time (crates.io, PyPI's CUDA wheels, the model);
# the GPU tests run with SILK_REQUIRE_GPU=1, so they fail rather than skip.
set -uo pipefail
cd "$(dirname "$0")/.." || exit 1
root="$PWD"
out="${SILK_GPU_CHECK_OUT:-$root/target/gpu-check/results.txt}"
work="$root/target/gpu-check"
start=$(date +%s)
say() { printf '[gpu-check] %s\n' "$*" >&2; }

if ! command -v nvidia-smi >/dev/null 2>&1; then
  say "no NVIDIA GPU: nvidia-smi is not installed (no NVIDIA driver); nothing to check here"
  exit 2
fi
if ! gpus="$(nvidia-smi -L 2>&1)" || ! grep -q '^GPU ' <<<"$gpus"; then
  say "no NVIDIA GPU: nvidia-smi -L says: ${gpus:-nothing}"
  exit 2
fi

mkdir -p "$work" "$(dirname "$out")"
rm -rf "$work/evidence"
: >"$out"
rows=()
failed=0
# row STEP STATUS DETAIL: one line of the final table (seconds since the last row).
last=$start
row() {
  local now
  now=$(date +%s)
  rows+=("$(printf '%-14s %-5s %5ss  %s' "$1" "$2" "$((now - last))" "$3")")
  last=$now
  [ "$2" = FAIL ] && failed=1
  return 0
}
# section TITLE FILE: appends a file's text to the results file under a heading.
section() { { printf '\n===== %s\n' "$1"; cat "$2" 2>/dev/null; } >>"$out"; }

# --- the GPU
query="name,driver_version,memory.total,compute_cap,pci.bus_id"
nvidia-smi --query-gpu="$query" --format=csv >"$work/gpu.csv" 2>&1
section "nvidia-smi -L" <(printf '%s\n' "$gpus")
section "nvidia-smi --query-gpu=$query" "$work/gpu.csv"
gpu_line="$(nvidia-smi --query-gpu=name,memory.total,driver_version,compute_cap --format=csv,noheader -i 0)"
cap_dotted="$(nvidia-smi --query-gpu=compute_cap --format=csv,noheader -i 0 | tr -d ' ')"
# 9.0 -> 90; CUDA_COMPUTE_CAP from the caller wins.
export CUDA_COMPUTE_CAP="${CUDA_COMPUTE_CAP:-${cap_dotted/./}}"
row gpu ok "$gpu_line (CUDA_COMPUTE_CAP=$CUDA_COMPUTE_CAP)"

# --- toolkit and build
if eval "$(scripts/cuda-toolkit.sh env 2>"$work/toolkit.log")"; then
  row toolkit ok "$CUDA_HOME"
else
  section "toolkit" "$work/toolkit.log"
  row toolkit FAIL "see $out"
fi
export CARGO_TARGET_DIR="$root/target/cuda" CARGO_TERM_COLOR=never
export CUDAFORGE_THREADS="${CUDAFORGE_THREADS:-$(nproc)}"
bin="$CARGO_TARGET_DIR/release"
# Every cargo call below selects the same packages and features: another selection unifies
# other features into candle-kernels' (build) dependencies and compiles all of its CUDA
# kernels again (seen here: `-p silk-engine` alone after `-p silk-engine -p silk-enclave`).
sel=(-p silk-enclave -p silk-engine -p silk-tools
  --features "silk-enclave/cuda,silk-engine/cuda,silk-tools/cuda")
scripts/fetch-model.sh >"$work/model.log" 2>&1 || row model FAIL "scripts/fetch-model.sh failed"
if cargo build --release "${sel[@]}" --bin silk --bin silk-enclave >"$work/build.log" 2>&1 &&
  cargo test --release --no-run "${sel[@]}" --test gpu --test gpu_evidence >>"$work/build.log" 2>&1; then
  row build ok "silk, silk-enclave and the GPU tests (release, sm_$CUDA_COMPUTE_CAP)"
else
  section "build" "$work/build.log"
  row build FAIL "$(grep -m1 -E '^error' "$work/build.log")"
fi

# --- the GPU tests: logits against llama.cpp and the CPU, batches, cancellation, OOM
SILK_REQUIRE_GPU=1 timeout 300 cargo test --release "${sel[@]}" --test gpu -- \
  --test-threads=1 --nocapture >"$work/tests.log" 2>&1
rc=$?
section "GPU tests (enclave/engine/tests/gpu.rs)" "$work/tests.log"
summary="$(grep -m1 '^test result' "$work/tests.log")"
if [ $rc = 0 ]; then row tests ok "${summary:-passed}"; else row tests FAIL "${summary:-exit $rc}"; fi
while IFS= read -r l; do row "  measured" "" "$l"; done < <(grep -E 'max \|' "$work/tests.log")

# --- speed: prefill and decode tok/s at 1, 8, 32 sequences, and the roofline
timeout 180 "$bin/silk" bench engine --device cuda --no-llama-cpp --concurrency 8,32 \
  --prompt 128 --decode 64 --reps 3 >"$work/bench.txt" 2>"$work/bench.err"
rc=$?
section "silk bench engine --device cuda" "$work/bench.txt"
section "bench stderr" "$work/bench.err"
if [ $rc = 0 ]; then
  row bench ok "$(grep -m1 'roofline' "$work/bench.txt" | sed 's/  */ /g')"
else
  row bench FAIL "$(tail -1 "$work/bench.err")"
fi

# --- the sealed path with the model on the GPU
timeout 180 "$bin/silk" demo --device cuda --enclave "$bin/silk-enclave" --max-tokens 24 \
  "Name one planet of the solar system." >"$work/sealed.txt" 2>&1
rc=$?
section "silk demo --device cuda (sealed path)" "$work/sealed.txt"
if [ $rc = 0 ]; then
  row sealed ok "$(grep -m1 'sealed answer' "$work/sealed.txt")"
else
  row sealed FAIL "$(tail -1 "$work/sealed.txt")"
fi

# --- confidential computing: nvidia-smi's view, then silk's collection and verifier
for o in -f -e -grs; do
  printf '$ nvidia-smi conf-compute %s\n' "$o"
  timeout 20 nvidia-smi conf-compute "$o" 2>&1
done >"$work/conf-compute.txt"
section "nvidia-smi conf-compute" "$work/conf-compute.txt"
row conf-compute info "$(grep -m1 -i 'CC status\|CC feature' "$work/conf-compute.txt" || echo 'no CC status line')"
SILK_REQUIRE_GPU=1 SILK_GPU_EVIDENCE_DIR="$work/evidence" timeout 120 cargo test --release \
  "${sel[@]}" --test gpu_evidence -- --nocapture >"$work/evidence.log" 2>&1
rc=$?
section "GPU evidence over a fresh nonce (enclave/tests/gpu_evidence.rs)" "$work/evidence.log"
if [ $rc != 0 ]; then
  row attestation FAIL "collection: $(grep -m1 'panicked\|error' "$work/evidence.log")"
elif [ -f "$work/evidence/evidence.json" ]; then
  cat >"$work/evidence/policy.toml" <<'EOF'
# gpu-check: any Hopper or Blackwell, no RIMs or OCSP at hand (both warned).
[gpu]
architectures = ["hopper", "blackwell"]
min_driver_version = "0"
min_vbios_version = "0"
allow_missing_revocation = true
allow_missing_rims = true
EOF
  "$bin/silk" verify gpu "$work/evidence/evidence.json" --nonce "$(cat "$work/evidence/nonce.hex")" \
    --policy "$work/evidence/policy.toml" >"$work/verify.txt" 2>&1
  rc=$?
  section "silk verify gpu (fresh nonce)" "$work/verify.txt"
  verdict="$(grep -m1 '^VERDICT' "$work/verify.txt")"
  if [ $rc = 0 ]; then row attestation ok "$verdict"; else row attestation FAIL "${verdict:-exit $rc}"; fi
else
  row attestation info "no report: $(cat "$work/evidence/error.txt" 2>/dev/null || echo 'see the log')"
fi

total=$(($(date +%s) - start))
{
  printf '\nsilk gpu-check, %s, commit %s, %ss in all\n' "$(date -u +%FT%TZ)" \
    "$(git rev-parse --short HEAD 2>/dev/null)" "$total"
  printf '%-14s %-5s %6s  %s\n' STEP STATUS TIME DETAIL
  printf '%s\n' "${rows[@]}"
  grep -E 'tok/s|gguf|scaling|roofline' "$work/bench.txt" 2>/dev/null | sed 's/^/  bench | /'
} >"$work/table.txt"
cat "$work/table.txt"
{ printf '===== summary\n'; cat "$work/table.txt"; cat "$out"; } >"$out.new" && mv "$out.new" "$out"
say "everything measured is in $out"
exit $failed
