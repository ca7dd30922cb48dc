#!/usr/bin/env bash
# Builds a model disk: a read-only ext4 filesystem holding the given files at its root.
#
#   images/recipe/model-disk.sh --out DISK.img FILE...
#
# The guest mounts it read-only at /model (the first *.gguf is the default model). The
# filesystem is made reproducible (fixed UUID, hash seed, timestamps, owner; no journal)
# so that its dm-verity root, once verity lands, depends on the files alone.
set -euo pipefail
export LC_ALL=C TZ=UTC
: "${SOURCE_DATE_EPOCH:=1700000000}"
die() { printf 'model-disk.sh: %s\n' "$*" >&2; exit 1; }

out=""
files=()
while [ $# -gt 0 ]; do
  case "$1" in
    --out) out="$2"; shift 2 ;;
    -h|--help) sed -n '2,8p' "$0"; exit 0 ;;
    *) files+=("$1"); shift ;;
  esac
done
[ -n "$out" ] || die "--out DISK.img is required"
[ ${#files[@]} -gt 0 ] || die "give at least one file to put on the disk"
for t in mkfs.ext4 debugfs; do command -v "$t" >/dev/null || die "$t not found: apt-get install e2fsprogs"; done

stage="$(mktemp -d)"
trap 'rm -rf "$stage"' EXIT
chmod 0755 "$stage"
bytes=0
for f in "${files[@]}"; do
  [ -f "$f" ] || die "$f is not a file"
  cp -L "$f" "$stage/"
  bytes=$((bytes + $(stat -Lc %s "$f")))
done
chmod 0644 "$stage"/*
touch -h -d "@$SOURCE_DATE_EPOCH" "$stage" "$stage"/*

# Room for metadata: 10% + 8 MiB, in whole MiB.
mib=$(( (bytes + bytes / 10) / 1048576 + 8 ))
# UUID and hash seed from the contents, so two different models never share them.
sum="$(cat "${files[@]}" | sha256sum | cut -c1-32)"
uuid="${sum:0:8}-${sum:8:4}-${sum:12:4}-${sum:16:4}-${sum:20:12}"
rm -f "$out"
E2FSPROGS_FAKE_TIME="$SOURCE_DATE_EPOCH" mkfs.ext4 -q -F -t ext4 -b 4096 -m 0 -L silk-model \
  -U "$uuid" -O ^has_journal -E "hash_seed=$uuid,root_owner=0:0,lazy_itable_init=0,nodiscard" \
  -d "$stage" "$out" "${mib}M" >/dev/null
# mke2fs -d copies each file's ctime, which no tool can set on the source: pin it here.
cmds="$stage.debugfs"
for f in "$stage"/*; do
  printf 'sif "/%s" ctime @%s\nsif "/%s" ctime_extra 0\n' "${f##*/}" "$SOURCE_DATE_EPOCH" "${f##*/}"
done > "$cmds"
E2FSPROGS_FAKE_TIME="$SOURCE_DATE_EPOCH" debugfs -w -f "$cmds" "$out" >/dev/null 2>&1 ||
  die "debugfs could not pin the timestamps in $out"
rm -f "$cmds"
printf '%s\n' "$out"
