#!/usr/bin/env bash
# CI's CUDA step: assembles the CUDA toolkit (scripts/cuda-toolkit.sh, cached outside the
# repository, hash-pinned), then builds the enclave with the CUDA engine in release and
# lints it and the engine's tests with clippy, so that the code behind the `cuda` feature
# compiles and stays clean. Needs no GPU: the driver is a link-time stub.
#
# The CUDA build has its own target directory, target/cuda (SILK_CUDA_TARGET_DIR), so it
# never invalidates the CPU build's artifacts in target/. The release build and the release
# clippy share candle-kernels' build-script run (nvcc's output), which is most of the cold
# time; CUDAFORGE_THREADS (default: every CPU) compiles those kernels in parallel.
set -euo pipefail
cd "$(dirname "$0")/.."
start=$(date +%s)
step() { printf '[ci-cuda] %s (%ss)\n' "$*" "$(($(date +%s) - start))" >&2; }

step "toolkit"
eval "$(scripts/cuda-toolkit.sh env)"
export CARGO_TARGET_DIR="${SILK_CUDA_TARGET_DIR:-$PWD/target/cuda}"
export CUDAFORGE_THREADS="${CUDAFORGE_THREADS:-$(nproc)}"
export CARGO_TERM_COLOR="${CARGO_TERM_COLOR:-never}"
step "CUDA_HOME=$CUDA_HOME CUDA_COMPUTE_CAP=$CUDA_COMPUTE_CAP CUDAFORGE_THREADS=$CUDAFORGE_THREADS target=$CARGO_TARGET_DIR"

step "cargo build --release -p silk-enclave --features cuda"
cargo build --locked --release -p silk-enclave --features cuda

# --all-targets: the engine's GPU tests and the enclave's, which only a CUDA build
# compiles in full, are linted as well as the libraries and the binary.
step "cargo clippy --release (silk-enclave, silk-engine, cuda)"
cargo clippy --locked --release -p silk-enclave -p silk-engine \
  --features silk-enclave/cuda,silk-engine/cuda --all-targets -- -D warnings

step "done"
