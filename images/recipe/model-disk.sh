#!/usr/bin/env bash
# Builds a model disk: the model file, then its dm-verity hash tree (`silk-image model-disk`).
#
#   images/recipe/model-disk.sh --out DISK.img [--name NAME] MODEL_FILE
#
# Prints the kernel command line fragment that binds an image to this disk (its root hash
# and geometry); give it to build.sh as --model-verity. The disk is byte for byte what
# `veritysetup format` writes over the padded model with --hash-offset, and the same model
# always gives the same disk and root hash (the salt and UUID derive from its SHA-256).
# `silk image model-disk MODEL -o DISK` does the same and explains its output.
set -euo pipefail
die() { printf 'model-disk.sh: %s\n' "$*" >&2; exit 1; }

here="$(cd "$(dirname "$0")" && pwd)"
repo="$(cd "$here/../.." && pwd)"
target="${CARGO_TARGET_DIR:-$repo/target}"
out="" name=()
files=()
while [ $# -gt 0 ]; do
  case "$1" in
    --out) out="$2"; shift 2 ;;
    --name) name=(--name "$2"); shift 2 ;;
    -h|--help) sed -n '2,10p' "$0"; exit 0 ;;
    *) files+=("$1"); shift ;;
  esac
done
[ -n "$out" ] || die "--out DISK.img is required"
[ ${#files[@]} -eq 1 ] || die "give exactly one model file (the disk holds one model, read through dm-verity)"
[ -f "${files[0]}" ] || die "${files[0]} is not a file"

silk_image="${SILK_IMAGE:-}"
if [ -z "$silk_image" ]; then
  (cd "$repo" && cargo build -q -p silk-images --bin silk-image)
  silk_image="$target/debug/silk-image"
fi
"$silk_image" model-disk "${files[0]}" --out "$out" "${name[@]}"
