#!/usr/bin/env bash
# Builds the sealed guest image: OVMF + Debian kernel + an initramfs holding busybox, the
# kernel modules the guest needs, silk-enclave (with its shared libraries) and /init.
#
#   images/recipe/build.sh --out DIR [--enclave BIN] [--evidence simulated|configfs|sev-guest|tdx-guest]
#                          [--payload enclave|httpd] [--cmdline-extra "pci=realloc"] [--cache DIR]
#
# Inputs are Debian packages fetched with `apt-get download` (cached, and recorded in the
# manifest with their SHA-256) and the enclave binary. Everything written into the image
# goes through `silk-image` (images/src/bin), whose output depends only on file contents
# and modes: the same inputs give a bit-identical image, whatever host, time or locale.
#
# --payload httpd runs busybox httpd over the model disk instead of silk-enclave: a
# stand-in that proves networking, hostfwd, the relay and the model disk without the
# enclave (development and the VM tests only; its measurement differs, as it should).
set -euo pipefail
export LC_ALL=C TZ=UTC
: "${SOURCE_DATE_EPOCH:=1700000000}"

here="$(cd "$(dirname "$0")" && pwd)"
repo="$(cd "$here/../.." && pwd)"
target="${CARGO_TARGET_DIR:-$repo/target}"
out="" enclave="" evidence="simulated" payload="enclave" extra="" cache="$target/silk-image-cache"

die() { printf 'build.sh: %s\n' "$*" >&2; exit 1; }
say() { printf '[image] %s\n' "$*" >&2; }

while [ $# -gt 0 ]; do
  case "$1" in
    --out) out="$2"; shift 2 ;;
    --enclave) enclave="$2"; shift 2 ;;
    --evidence) evidence="$2"; shift 2 ;;
    --payload) payload="$2"; shift 2 ;;
    --cmdline-extra) extra="$2"; shift 2 ;;
    --cache) cache="$2"; shift 2 ;;
    -h|--help) sed -n '2,16p' "$0"; exit 0 ;;
    *) die "unknown argument $1 (see --help)" ;;
  esac
done
[ -n "$out" ] || die "--out DIR is required"
case "$evidence" in simulated|configfs|sev-guest|tdx-guest) ;; *) die "--evidence $evidence: expected simulated, configfs, sev-guest or tdx-guest" ;; esac
case "$payload" in
  enclave) [ -n "$enclave" ] || die "--payload enclave needs --enclave PATH (the silk-enclave binary)" ;;
  httpd) ;;
  *) die "--payload $payload: expected enclave or httpd" ;;
esac
[ -z "$enclave" ] || [ -x "$enclave" ] || die "--enclave $enclave is not an executable file"
for tool in apt-get apt-cache dpkg-deb; do command -v "$tool" >/dev/null || die "$tool not found (a Debian host is needed)"; done

# The image tool, built from this repository unless given.
silk_image="${SILK_IMAGE:-}"
if [ -z "$silk_image" ]; then
  (cd "$repo" && cargo build -q -p silk-images --bin silk-image)
  silk_image="$target/debug/silk-image"
fi

# 1. Debian packages: the candidate version of each, downloaded once into the cache.
kernel_pkg="${SILK_KERNEL_PKG:-$(apt-cache depends linux-image-amd64 2>/dev/null | awk '/Depends: linux-image-[0-9]/ {print $2; exit}')}"
[ -n "$kernel_pkg" ] || die "cannot resolve linux-image-amd64: run apt-get update"
mkdir -p "$cache/debs"
fetch() {
  local pkg="$1" ver file
  ver="$(apt-cache policy "$pkg" | awk '/Candidate:/ {print $2}')"
  [ -n "$ver" ] && [ "$ver" != "(none)" ] || die "no Debian package $pkg: run apt-get update"
  file="$(ls "$cache/debs/${pkg}_${ver/:/%3a}_"*.deb 2>/dev/null | head -n1 || true)"
  if [ -z "$file" ]; then
    say "downloading $pkg $ver"
    (cd "$cache/debs" && apt-get download -q -o APT::Sandbox::User=root "$pkg=$ver" >/dev/null) ||
      die "apt-get download $pkg=$ver failed"
    file="$(ls "$cache/debs/${pkg}_${ver/:/%3a}_"*.deb | head -n1)"
  fi
  printf '%s\n' "$file"
}
kernel_deb="$(fetch "$kernel_pkg")"
ovmf_deb="$(fetch ovmf)"
busybox_deb="$(fetch busybox-static)"

work="$(mktemp -d)"
trap 'rm -rf "$work"' EXIT
for p in kernel:"$kernel_deb" ovmf:"$ovmf_deb" busybox:"$busybox_deb"; do
  mkdir -p "$work/pkg/${p%%:*}"
  dpkg-deb -x "${p#*:}" "$work/pkg/${p%%:*}"
done
kver="$(ls "$work/pkg/kernel/lib/modules")"
vmlinuz="$work/pkg/kernel/boot/vmlinuz-$kver"
ovmf="$work/pkg/ovmf/usr/share/ovmf/OVMF.fd"
[ -f "$vmlinuz" ] || die "no kernel in $kernel_deb"
[ -f "$ovmf" ] || die "no OVMF.fd in $ovmf_deb"

# 2. The initramfs tree.
root="$work/root"
mkdir -p "$root"/{bin,dev,etc/silk,model,proc,run,sys,tmp}
install -m 0755 "$here/init" "$root/init"
install -m 0755 "$work/pkg/busybox/bin/busybox" "$root/bin/busybox"
# virtio for the disk and the network; ext4 (+ crc32c for its checksums) for the model
# disk; dm-verity for the verified model disk to come; sev-guest for SNP reports; vsock
# for a host channel that needs no network.
"$silk_image" modules --moddir "$work/pkg/kernel/lib/modules/$kver" --root "$root" \
  --want virtio_pci,virtio_blk,virtio_net,crc32c_generic,ext4,dm_verity,sev_guest,vmw_vsock_virtio_transport >/dev/null

inputs=("$kernel_deb" "$ovmf_deb" "$busybox_deb")
if [ -n "$enclave" ]; then
  install -m 0755 "$enclave" "$root/bin/silk-enclave"
  inputs+=("$enclave")
  # Shared libraries at the paths the dynamic loader looks for them.
  for lib in $(ldd "$enclave" 2>/dev/null | awk '/=> \// {print $3} /^\t\/[^ ]+ \(/ {print $1}' | sort -u); do
    mkdir -p "$root$(dirname "$lib")"
    cp -L "$lib" "$root$lib"
    inputs+=("$lib")
  done
fi

# Modes are part of the archive: make them independent of the umask.
find "$root" -type d -exec chmod 0755 {} +
find "$root" -type f -perm /111 -exec chmod 0755 {} +
find "$root" -type f ! -perm /111 -exec chmod 0644 {} +

# 3. Pack, copy, describe.
cmdline="console=ttyS0 panic=-1 quiet silk.evidence=$evidence silk.payload=$payload"
[ -z "$extra" ] || cmdline="$cmdline $extra"
input_args=()
for i in "${inputs[@]}"; do input_args+=(--input "$i"); done
# Replace an earlier image, never anything else.
if [ -e "$out" ] && [ -n "$(ls -A "$out")" ] && [ ! -f "$out/manifest.json" ]; then
  die "--out $out exists and is not an image directory; refusing to overwrite it"
fi
rm -rf "$out"
digest="$("$silk_image" build --root "$root" --kernel "$vmlinuz" --firmware "$ovmf" \
  --cmdline "$cmdline" --source-date-epoch "$SOURCE_DATE_EPOCH" --out "$out" "${input_args[@]}")"
say "kernel $kver, $(du -h "$out/initrd.cpio" | cut -f1) initramfs, payload $payload, evidence $evidence"
say "image $out digest $digest"
printf '%s\n' "$digest"
