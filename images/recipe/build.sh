#!/usr/bin/env bash
# Builds the sealed guest image: OVMF + Debian kernel + an initramfs holding busybox, the
# kernel modules the guest needs, silk-enclave (with its shared libraries) and /init.
#
#   images/recipe/build.sh --out DIR [--enclave BIN] [--evidence simulated|configfs|sev-guest|tdx-guest]
#                          [--payload enclave|httpd] [--cmdline-extra "pci=realloc"] [--cache DIR]
#                          [--sim-chain PEM] [--model-verity "silk.verity=ROOT ..."] [--firmware FD]
#
# --model-verity takes what `silk-image model-disk` (or images/recipe/model-disk.sh, or
# `silk image model-disk`) prints: the model disk's dm-verity root hash and geometry. It goes
# on the kernel command line, which is measured, and the guest opens the model only through
# dm-verity with exactly that root: the image is bound to that model. Without it the guest
# has no model to open and reports itself down.
# --firmware replaces Debian's OVMF.fd (e.g. the AmdSev build of build-ovmf-amdsev.sh,
# which SEV-SNP needs to measure the kernel, initrd and command line).
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
sim_chain="" out="" enclave="" model_verity="" firmware="" evidence="simulated" payload="enclave" extra="" cache="$target/silk-image-cache"

die() { printf 'build.sh: %s\n' "$*" >&2; exit 1; }
say() { printf '[image] %s\n' "$*" >&2; }

while [ $# -gt 0 ]; do
  case "$1" in
    --out) out="$2"; shift 2 ;;
    --enclave) enclave="$2"; shift 2 ;;
    --sim-chain) sim_chain="$2"; shift 2 ;;
    --evidence) evidence="$2"; shift 2 ;;
    --payload) payload="$2"; shift 2 ;;
    --cmdline-extra) extra="$2"; shift 2 ;;
    --cache) cache="$2"; shift 2 ;;
    --model-verity) model_verity="$2"; shift 2 ;;
    --firmware) firmware="$2"; shift 2 ;;
    -h|--help) sed -n '2,24p' "$0"; exit 0 ;;
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
[ -z "$firmware" ] || [ -f "$firmware" ] || die "--firmware $firmware is not a file"
# Only the model-disk keys, as plain tokens: the value lands on the measured command line.
for w in $model_verity; do
  case "$w" in
    silk.verity=*|silk.verity_salt=*|silk.verity_blocks=*|silk.verity_hash_offset=*|silk.model_size=*|silk.model_name=*) ;;
    *) die "--model-verity: unexpected word '$w' (pass what silk-image model-disk printed)" ;;
  esac
  case "${w#*=}" in *[!A-Za-z0-9._-]*|'') die "--model-verity: bad value in '$w'" ;; esac
done
for tool in apt-get apt-cache dpkg-deb; do command -v "$tool" >/dev/null || die "$tool not found (a Debian host is needed)"; done

# The image tool, built from this repository unless given.
silk_image="${SILK_IMAGE:-}"
if [ -z "$silk_image" ]; then
  (cd "$repo" && cargo build -q -p silk-images --bin silk-image)
  silk_image="$target/debug/silk-image"
fi

# 1. Debian packages: the candidate version of each, downloaded once into the cache.
# The kernel must have the SEV-SNP and TDX guest drivers and configfs-tsm, and be 6.9 or
# later, whose EFI stub measures the command line and initrd into TDX's RTMR2: Debian's
# 6.12. It comes from one named suite, never from whatever apt prefers: bookworm-backports
# on bookworm (whose own 6.1 has neither TDX driver nor configfs-tsm), the release's own
# suite elsewhere (trixie: 6.12). SILK_KERNEL_SUITE names another suite; SILK_KERNEL_PKG
# a package outright (at its candidate version).
kernel_ver=""
if [ -n "${SILK_KERNEL_PKG:-}" ]; then
  kernel_pkg="$SILK_KERNEL_PKG"
else
  codename="$(. /etc/os-release 2>/dev/null && printf '%s' "${VERSION_CODENAME:-}")"
  kernel_suite="${SILK_KERNEL_SUITE:-}"
  if [ -z "$kernel_suite" ]; then
    case "$codename" in
      bookworm) kernel_suite=bookworm-backports ;;
      '') die "cannot tell the Debian release (no VERSION_CODENAME in /etc/os-release): set SILK_KERNEL_SUITE" ;;
      *) kernel_suite="$codename" ;;
    esac
  fi
  # The meta package's version in that suite, then the versioned image package it names.
  meta_ver="$(apt-cache madison linux-image-amd64 2>/dev/null |
    awk -F' *[|] *' -v s="$kernel_suite/main" '{split($3, a, " ")} a[2] == s {print $2; exit}')"
  hint=""
  [ "$kernel_suite" != bookworm-backports ] || hint=" (scripts/setup.sh does)"
  [ -n "$meta_ver" ] || die "no linux-image-amd64 in the Debian suite $kernel_suite: add $kernel_suite to apt's sources$hint and run apt-get update"
  kernel_pkg="$(apt-cache show "linux-image-amd64=$meta_ver" 2>/dev/null |
    awk '/^Depends:/ {for (i = 2; i <= NF; i++) if ($i ~ /^linux-image-[0-9]/) {print $i; exit}}')"
  [ -n "$kernel_pkg" ] || die "linux-image-amd64 $meta_ver ($kernel_suite) names no linux-image-<version> package"
  kernel_ver="$(apt-cache madison "$kernel_pkg" 2>/dev/null |
    awk -F' *[|] *' -v s="$kernel_suite/main" '{split($3, a, " ")} a[2] == s {print $2; exit}')"
  [ -n "$kernel_ver" ] || die "no $kernel_pkg in the Debian suite $kernel_suite: run apt-get update"
fi
mkdir -p "$cache/debs"
# fetch PACKAGE [VERSION]: the .deb of that version (default: apt's candidate).
fetch() {
  local pkg="$1" ver="${2:-}" file
  [ -n "$ver" ] || ver="$(apt-cache policy "$pkg" | awk '/Candidate:/ {print $2}')"
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
kernel_deb="$(fetch "$kernel_pkg" "$kernel_ver")"
ovmf_deb="$(fetch ovmf)"
busybox_deb="$(fetch busybox-static)"
# dmsetup opens the model disk through dm-verity (busybox has no device-mapper applet).
dmsetup_deb="$(fetch dmsetup)"
devmapper_deb="$(fetch libdevmapper1.02.1)"

work="$(mktemp -d)"
trap 'rm -rf "$work"' EXIT
for p in kernel:"$kernel_deb" ovmf:"$ovmf_deb" busybox:"$busybox_deb" dm:"$dmsetup_deb" dm:"$devmapper_deb"; do
  mkdir -p "$work/pkg/${p%%:*}"
  dpkg-deb -x "${p#*:}" "$work/pkg/${p%%:*}"
done
kver="$(ls "$work/pkg/kernel/lib/modules")"
vmlinuz="$work/pkg/kernel/boot/vmlinuz-$kver"
ovmf="${firmware:-$work/pkg/ovmf/usr/share/ovmf/OVMF.fd}"
[ -f "$vmlinuz" ] || die "no kernel in $kernel_deb"
case "$kver" in
  [0-5].*|6.[0-8].*) say "WARNING: kernel $kver predates 6.9: no TDX guest driver or configfs-tsm, and under TDX nothing measures its command line or initrd" ;;
esac
[ -f "$ovmf" ] || die "no firmware at $ovmf"

# 2. The initramfs tree.
root="$work/root"
mkdir -p "$root"/{bin,dev,etc/silk,proc,run,sys,tmp}
install -m 0755 "$here/init" "$root/init"
[ "$payload" != httpd ] || install -m 0755 "$here/model-cgi" "$root/bin/model-cgi"
install -m 0755 "$work/pkg/busybox/bin/busybox" "$root/bin/busybox"
# virtio for the disk and the network (virtio_pci is built into 6.12: skipped); dm-verity
# (with dm-mod, dm-bufio) for the model disk, which is read only through it; sev-guest and
# tdx-guest for SNP reports and TDX quotes, with tsm (configfs-tsm) that both register
# with; vsock for a host channel that needs no network.
"$silk_image" modules --moddir "$work/pkg/kernel/lib/modules/$kver" --root "$root" \
  --want virtio_pci,virtio_blk,virtio_net,dm_verity,tsm,sev_guest,tdx_guest,vmw_vsock_virtio_transport >/dev/null

inputs=("$kernel_deb" "$busybox_deb" "$dmsetup_deb" "$devmapper_deb")
if [ -n "$firmware" ]; then inputs+=("$firmware"); else inputs+=("$ovmf_deb"); fi

# Shared libraries of a binary, copied to the paths the dynamic loader looks for them.
# Libraries from the extracted packages keep their in-package path (the .deb is an input);
# the rest come from this host and are recorded as inputs with their digests.
dm_root="$work/pkg/dm"
dm_libdir="$(dirname "$(find "$dm_root" -name 'libdevmapper.so.1.02.1' | head -n1)")"
add_libs() {
  local lib dest
  for lib in $(LD_LIBRARY_PATH="$dm_libdir" ldd "$1" 2>/dev/null | awk '/=> \// {print $3} /^\t\/[^ ]+ \(/ {print $1}' | sort -u); do
    case "$lib" in
      "$dm_root"/*) dest="${lib#"$dm_root"}" ;;
      *) dest="$lib"; inputs+=("$lib") ;;
    esac
    mkdir -p "$root$(dirname "$dest")"
    cp -L "$lib" "$root$dest"
  done
}
dmsetup_bin="$(find "$dm_root" -path "*/sbin/dmsetup" -type f | head -n1)"
[ -n "$dmsetup_bin" ] || die "no dmsetup in $dmsetup_deb"
install -m 0755 "$dmsetup_bin" "$root/bin/dmsetup"
add_libs "$dmsetup_bin"
if [ -n "$enclave" ]; then
  install -m 0755 "$enclave" "$root/bin/silk-enclave"
  inputs+=("$enclave")
  add_libs "$enclave"
fi

# --sim-chain: the development chain a simulated enclave signs with (its key is a
# development key, not a secret; `silk-host`/the test that made it pins its root). It is
# part of the image, so the root stays the same across reboots and is measured.
if [ -n "$sim_chain" ]; then
  [ "$evidence" = simulated ] || die "--sim-chain only makes sense with --evidence simulated"
  install -D -m 0644 "$sim_chain" "$root/etc/silk/dev-chain.pem"
  inputs+=("$sim_chain")
fi

# Modes are part of the archive: make them independent of the umask.
find "$root" -type d -exec chmod 0755 {} +
find "$root" -type f -perm /111 -exec chmod 0755 {} +
find "$root" -type f ! -perm /111 -exec chmod 0644 {} +

# 3. Pack, copy, describe.
cmdline="console=ttyS0 panic=-1 quiet silk.evidence=$evidence silk.payload=$payload"
[ -z "$model_verity" ] || cmdline="$cmdline $(echo $model_verity)"
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
[ -n "$model_verity" ] && say "model: dm-verity root $(printf "%s" "${model_verity%% *}" | cut -d= -f2)" || say "model: none bound (the guest will have no model to open)"
say "image $out digest $digest"
printf '%s\n' "$digest"
