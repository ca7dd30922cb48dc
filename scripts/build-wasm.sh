#!/usr/bin/env bash
# Builds the WebAssembly verifier (verifier/wasm, the npm package @silk/verifier) into
# verifier/wasm/pkg/: the .wasm, its JS glue and TypeScript types (wasm-bindgen --target
# web), package.json, README.md and SHA256SUMS. Prints the .wasm's SHA-256 and size.
#
#   scripts/build-wasm.sh            build into verifier/wasm/pkg/
#   scripts/build-wasm.sh --check    build into a temporary folder and fail, naming the
#                                    files, unless it equals verifier/wasm/pkg/ byte for byte
#   scripts/build-wasm.sh --out DIR  build into DIR
#
# The build is reproducible: the same source, Cargo.lock, Rust toolchain (the one rustup
# resolves here; pkg/package.json's silkBuild records which) and wasm-bindgen-cli
# (Cargo.lock's wasm-bindgen version) give the same bytes, wherever the checkout and
# CARGO_HOME are and whenever it runs (checked from two clones). So
# anyone can check that the .wasm the /verify page serves (embedded from pkg/) is the one
# this source builds: `--check`, or compare the printed SHA-256 with the page's.
# Needs: rustup's wasm32-unknown-unknown target, clang (ring's C) and wasm-bindgen-cli;
# `SILK_WASM=1 scripts/setup.sh` installs them.
set -euo pipefail
cd "$(dirname "$0")/.."
export PATH="$HOME/.cargo/bin:$PATH"

mode=build
out=verifier/wasm/pkg
while [ $# -gt 0 ]; do
  case "$1" in
    --check) mode=check ;;
    --out) out=${2:?--out needs a folder}; shift ;;
    *) printf 'usage: %s [--check | --out DIR]\n' "$0" >&2; exit 2 ;;
  esac
  shift
done

die() { printf 'build-wasm: %s\n' "$*" >&2; exit 2; }
name=silk_verifier_wasm
committed=verifier/wasm/pkg

# The tools, at the versions the build is reproducible with.
want_bindgen=$(awk '/^name = "wasm-bindgen"$/ { getline; gsub(/"/, "", $3); print $3; exit }' Cargo.lock)
[ -n "$want_bindgen" ] || die "Cargo.lock names no wasm-bindgen version"
have_bindgen=$(wasm-bindgen --version 2>/dev/null | awk '{ print $2 }' || true)
[ "$have_bindgen" = "$want_bindgen" ] ||
  die "wasm-bindgen-cli $want_bindgen is needed (found ${have_bindgen:-none}): SILK_WASM=1 scripts/setup.sh"
command -v clang >/dev/null || die "clang (ring's C for wasm32) is needed: SILK_WASM=1 scripts/setup.sh"
rustup target list --installed 2>/dev/null | grep -qx wasm32-unknown-unknown ||
  die "the wasm32-unknown-unknown target is needed: rustup target add wasm32-unknown-unknown"

# Paths that would otherwise end up in the binary (panic locations, C file names): the
# checkout, the target folder and CARGO_HOME's registry sources become fixed names. The
# standard library's are already /rustc/<commit>. CARGO_ENCODED_RUSTFLAGS takes
# precedence over any RUSTFLAGS the caller has, and with --target it applies to the
# wasm32 code only (build scripts and proc-macros are shared with the native builds).
root=$(pwd -P)
cargo_home=$(cd "${CARGO_HOME:-$HOME/.cargo}" && pwd -P)
target_dir=$(cargo metadata --format-version 1 --no-deps --offline 2>/dev/null |
  sed -n 's/.*"target_directory":"\([^"]*\)".*/\1/p')
[ -n "$target_dir" ] || target_dir=$root/target
sep=$'\x1f'
# rustc applies the last matching --remap-path-prefix: the target folder (often inside
# the checkout) goes after the checkout.
flags="--remap-path-prefix=$root=/silk$sep--remap-path-prefix=$cargo_home=/cargo"
flags+="$sep--remap-path-prefix=$target_dir=/target"
unset RUSTFLAGS
export CARGO_ENCODED_RUSTFLAGS="$flags"
export CFLAGS_wasm32_unknown_unknown="-ffile-prefix-map=$root=/silk -ffile-prefix-map=$cargo_home=/cargo -ffile-prefix-map=$target_dir=/target"
export SOURCE_DATE_EPOCH=0

started=$(date +%s)
cargo build --locked -p silk-verifier-wasm --target wasm32-unknown-unknown --profile wasm
raw=$target_dir/wasm32-unknown-unknown/wasm/$name.wasm

work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
if [ "$mode" = check ]; then
  dest=$work/pkg
else
  dest=$out
fi
mkdir -p "$dest"
# No wasm-opt: Debian's binaryen 108 exports the function table as wasm-bindgen's
# externref table (`__wbindgen_externrefs` -> table 0, funcref) at every -O level, so the
# module fails to instantiate; and its -Oz output gzips larger (655 KB against 598 KB).
# rustc's opt-level "z" with fat LTO does the size work; wasm-bindgen drops the names.
wasm-bindgen --target web --remove-name-section --remove-producers-section \
  --out-dir "$work/bindgen" --out-name "$name" "$raw"
cp "$work/bindgen/${name}_bg.wasm" "$dest/${name}_bg.wasm"
for f in "$name.js" "$name.d.ts" "${name}_bg.wasm.d.ts"; do
  cp "$work/bindgen/$f" "$dest/$f"
done
cp verifier/wasm/README.md "$dest/README.md"
version=$(sed -n 's/^version = "\(.*\)"$/\1/p' Cargo.toml | head -n1)
# What the bytes depend on beside the source: recorded, so that a rebuild that differs
# says whether the toolchain did.
rustc_version=$(rustc -V)
cat >"$dest/package.json" <<EOF
{
  "name": "@silk/verifier",
  "version": "$version",
  "description": "silk's attestation verifier (AMD SEV-SNP, Intel TDX, NVIDIA GPU, silk evidence bundles) in WebAssembly: the verdicts of silk verify --json, in the browser and Node.",
  "license": "Apache-2.0",
  "type": "module",
  "main": "$name.js",
  "module": "$name.js",
  "types": "$name.d.ts",
  "exports": {
    ".": {
      "types": "./$name.d.ts",
      "default": "./$name.js"
    },
    "./${name}_bg.wasm": "./${name}_bg.wasm"
  },
  "silkBuild": {
    "rustc": "$rustc_version",
    "wasmBindgen": "$want_bindgen",
    "cargoProfile": "wasm",
    "target": "wasm32-unknown-unknown"
  },
  "files": [
    "${name}_bg.wasm",
    "${name}_bg.wasm.d.ts",
    "$name.js",
    "$name.d.ts",
    "README.md"
  ]
}
EOF
(cd "$dest" && rm -f SHA256SUMS && sha256sum -- * | LC_ALL=C sort -k2 >SHA256SUMS.tmp && mv SHA256SUMS.tmp SHA256SUMS)

wasm=$dest/${name}_bg.wasm
digest=$(sha256sum "$wasm" | cut -d' ' -f1)
bytes=$(wc -c <"$wasm")
gz=$(gzip -9 -n -c "$wasm" | wc -c)
printf 'build-wasm: %s_bg.wasm sha256 %s\n' "$name" "$digest"
printf 'build-wasm: %s bytes, %s gzipped (gzip -9); built in %ss with %s, wasm-bindgen %s\n' \
  "$bytes" "$gz" "$(($(date +%s) - started))" "$rustc_version" "$want_bindgen"

if [ "$mode" = check ]; then
  differ=()
  for f in "$dest"/* "$committed"/*; do
    b=$(basename "$f")
    cmp -s "$dest/$b" "$committed/$b" || differ+=("$committed/$b")
  done
  if [ ${#differ[@]} -gt 0 ]; then
    printf 'build-wasm: the committed package differs from this source'"'"'s build:\n' >&2
    printf '  %s\n' $(printf '%s\n' "${differ[@]}" | LC_ALL=C sort -u) >&2
    was=$(sed -n 's/.*"rustc": "\(.*\)",$/\1/p' "$committed/package.json" 2>/dev/null || true)
    if [ -n "$was" ] && [ "$was" != "$rustc_version" ]; then
      printf 'build-wasm: the package was built with %s, this is %s\n' "$was" "$rustc_version" >&2
    fi
    printf 'build-wasm: rebuild with scripts/build-wasm.sh and commit %s/\n' "$committed" >&2
    exit 1
  fi
  printf 'build-wasm: %s/ is this source'"'"'s build (byte for byte)\n' "$committed"
else
  printf 'build-wasm: wrote %s/\n' "$dest"
fi
