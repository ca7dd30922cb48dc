#!/usr/bin/env bash
# Builds OVMF's AmdSevX64 firmware (the SEV-SNP build with a kernel-hashes page, so that
# QEMU's kernel-hashes=on measures -kernel/-initrd/-append) from a pinned Debian edk2
# source package, with Debian's toolchain, in a fixed build path.
#
#   images/recipe/build-ovmf-amdsev.sh [OUT_DIR]      (default: images/recipe/out)
#
# Debian ships no AmdSev build: its OVMF.fd has SEV metadata but no kernel-hashes section.
# The output, OUT_DIR/OVMF-AmdSev.fd, is what `silk measure --tee snp` takes as firmware;
# its SHA-256 goes in the image manifest. Reproducibility rests on: the exact source
# package version (its .dsc is checked by apt against Debian's signed Release files), the
# same Debian release's gcc/nasm/iasl/grub, the fixed build directory (edk2 writes the
# path of each module's debug file into the PE images it links), and a RELEASE build.
# Built twice here (Debian bookworm toolchain, edk2 2025.02-8+deb13u1) it gave the same
# OVMF-AmdSev.fd, SHA-256 04bc4193d0b7d8e1473b937345c8687550121be124124d834439e73c65c2c5b7,
# which silk, the `sev` crate and sev-snp-measure measure alike; another Debian release
# may not give the same bytes (another gcc). Needs root for apt-get, about 1 GB of disk, and about
# 10 minutes on 2 cores.
set -euo pipefail

# The source comes from Debian trixie: bookworm's edk2 2022.11 builds an AmdSev firmware
# whose kernel-hashes page is not an SNP metadata section (it sits inside a zeroed
# secure-memory range), so under SEV-SNP it would not measure the kernel at all. The
# SNP_KERNEL_HASHES section arrived in edk2 in 2023.
EDK2_VERSION="${EDK2_VERSION:-2025.02-8+deb13u1}" # Debian trixie
SUITE="${SUITE:-trixie}"
BUILD_ROOT=/var/tmp/silk-ovmf-amdsev # fixed: the path ends up in the firmware
OUT="$(realpath -m "${1:-$(dirname "$0")/out}")"

say() { printf '[ovmf-amdsev] %s\n' "$*" >&2; }
as_root() { if [ "$(id -u)" = 0 ]; then "$@"; else sudo "$@"; fi; }

say "toolchain from Debian packages"
as_root apt-get update -qq
as_root env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends \
  build-essential dpkg-dev nasm acpica-tools uuid-dev python3 python-is-python3 \
  grub-efi-amd64-bin grub-common mtools dosfstools >/dev/null

# Source through a private apt configuration, so the machine's sources.list is untouched.
apt_dir="$BUILD_ROOT/apt"
mkdir -p "$apt_dir/lists/partial" "$apt_dir/cache/archives/partial"
cat >"$apt_dir/sources.list" <<SRC
deb-src http://deb.debian.org/debian $SUITE main
deb-src http://deb.debian.org/debian-security $SUITE-security main
deb-src http://deb.debian.org/debian $SUITE-updates main
SRC
apt_opts=(-o "Dir::Etc::SourceList=$apt_dir/sources.list" -o "Dir::Etc::SourceParts=-"
  -o "Dir::State::Lists=$apt_dir/lists" -o "Dir::Cache=$apt_dir/cache")
say "fetching edk2 $EDK2_VERSION source"
apt-get "${apt_opts[@]}" update -qq
src="$BUILD_ROOT/src"
rm -rf "$src" && mkdir -p "$src"
if ! (cd "$src" && apt-get "${apt_opts[@]}" source -qq "edk2=$EDK2_VERSION"); then
  # Some mirrors and proxies serve the tarballs but not the .dsc. Fetch them directly,
  # with the same chain of trust apt uses: InRelease (signed by Debian's archive keys,
  # checked with gpgv) → Sources.xz (its SHA-256 in InRelease) → each tarball (its
  # SHA-256 in Sources).
  say "apt-get source failed; fetching the tarballs through InRelease and Sources"
  as_root env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends \
    debian-archive-keyring gpgv curl xz-utils >/dev/null
  base=http://deb.debian.org/debian
  curl -fsSL "$base/dists/$SUITE/InRelease" -o "$src/InRelease"
  gpgv --keyring /usr/share/keyrings/debian-archive-keyring.gpg "$src/InRelease" 2>/dev/null ||
    { say "InRelease of $SUITE does not verify with Debian's archive keys"; exit 1; }
  curl -fsSL "$base/dists/$SUITE/main/source/Sources.xz" -o "$src/Sources.xz"
  python3 - "$src" "$EDK2_VERSION" "$base" <<'PY'
import hashlib, lzma, pathlib, re, subprocess, sys
src, version, base = pathlib.Path(sys.argv[1]), sys.argv[2], sys.argv[3]
release = (src / "InRelease").read_text()
sha = re.search(r"^SHA256:\n((?: .*\n)+)", release, re.M).group(1)
want = next(l.split()[0] for l in sha.splitlines() if l.split()[-1] == "main/source/Sources.xz")
data = (src / "Sources.xz").read_bytes()
assert hashlib.sha256(data).hexdigest() == want, "Sources.xz does not match InRelease"
for stanza in lzma.decompress(data).decode().split("\n\n"):
    if re.search(r"^Package: edk2$", stanza, re.M) and re.search(rf"^Version: {re.escape(version)}$", stanza, re.M):
        break
else:
    sys.exit(f"edk2 {version} is not in Sources")
directory = re.search(r"^Directory: (.*)$", stanza, re.M).group(1)
sums = re.search(r"^Checksums-Sha256:\n((?: .*\n?)+)", stanza, re.M).group(1)
for line in sums.splitlines():
    digest, _, name = line.split()
    if name.endswith(".dsc"):
        continue
    out = src / name
    subprocess.run(["curl", "-fsSL", f"{base}/{directory}/{name.replace('+', '%2B')}", "-o", str(out)], check=True)
    assert hashlib.sha256(out.read_bytes()).hexdigest() == digest, f"{name} does not match Sources"
    print(name)
PY
  upstream="${EDK2_VERSION%%-*}"
  tree_dir="$src/edk2-$upstream"
  mkdir -p "$tree_dir"
  tar -xf "$src"/edk2_"$upstream".orig.tar.* -C "$tree_dir" --strip-components=1
  tar -xf "$src"/edk2_"$EDK2_VERSION".debian.tar.* -C "$tree_dir"
  # Source format 3.0 (quilt): apply debian/patches/series in order.
  if [ -f "$tree_dir/debian/patches/series" ]; then
    grep -v '^\s*#' "$tree_dir/debian/patches/series" | while read -r patch _; do
      [ -n "$patch" ] && patch -d "$tree_dir" -p1 -s <"$tree_dir/debian/patches/$patch"
    done
  fi
fi
tree="$(find "$src" -mindepth 1 -maxdepth 1 -type d -name 'edk2-*' | head -n1)"
[ -n "$tree" ] || { say "no edk2 source tree unpacked"; exit 1; }

say "building BaseTools and AmdSevX64 in $tree"
export SOURCE_DATE_EPOCH=0 LC_ALL=C TZ=UTC
make -C "$tree/BaseTools" -j"$(nproc)" >"$BUILD_ROOT/basetools.log" 2>&1
(
  cd "$tree"
  set +u
  # shellcheck disable=SC1091
  . ./edksetup.sh BaseTools >/dev/null
  set -u
  # AmdSevX64 embeds a grub that OvmfPkg/AmdSev/Grub/grub.sh builds with grub-mkimage
  # from grub-efi-amd64-bin. Debian's grub has no sevsecret module (it reads a
  # launch-injected disk key); silk boots its kernel directly (-kernel, measured through
  # the hashes table) and never runs that grub, so the module is dropped.
  sed -i '/^ *sevsecret$/d' OvmfPkg/AmdSev/Grub/grub.sh
  # That grub carries its config in a FAT memdisk, and mkfs.msdos stamps a volume id and
  # times from the clock, mcopy the copy time: two builds differed in 93554 bytes (the
  # FAT image, then everything LZMA compresses after it). Fixed values make them equal.
  sed -i -e 's/^mkfs.msdos -C -- /mkfs.msdos --invariant -i 51c0000d -C -- /' \
    -e 's/^mcopy -i /touch -d @0 -- "${basedir}\/grub.cfg"; mcopy -m -i /' \
    OvmfPkg/AmdSev/Grub/grub.sh
  grep -q -- '--invariant' OvmfPkg/AmdSev/Grub/grub.sh ||
    { echo "grub.sh changed upstream: the FAT memdisk is no longer pinned" >&2; exit 1; }
  build -a X64 -t GCC5 -b RELEASE -n "$(nproc)" -p OvmfPkg/AmdSev/AmdSevX64.dsc \
    >"$BUILD_ROOT/build.log" 2>&1
)
fd="$tree/Build/AmdSev/RELEASE_GCC5/FV/OVMF.fd"
[ -f "$fd" ] || { say "build produced no OVMF.fd; see $BUILD_ROOT/build.log"; exit 1; }
# Refuse a firmware that could not measure a kernel under SNP (see EDK2_VERSION above).
python3 - "$fd" <<'PY'
import struct, sys, uuid
d = open(sys.argv[1], "rb").read()
end = len(d) - 32
size, _ = struct.unpack("<H16s", d[end - 18:end])
table, off, meta = d[end - size:end - 18], size - 18, None
while off >= 18:
    n, g = struct.unpack("<H16s", table[off - 18:off])
    if uuid.UUID(bytes_le=g) == uuid.UUID("dc886566-984a-4798-a75e-5585a7bf67cc"):
        meta = struct.unpack("<I", table[off - n:off - n + 4])[0]
    off -= n
assert meta, "no SEV metadata in the firmware"
start = len(d) - meta
count = struct.unpack("<I", d[start + 12:start + 16])[0]
kinds = [struct.unpack("<I", d[start + 16 + 12 * i + 8:start + 28 + 12 * i])[0] for i in range(count)]
sys.exit(0 if 0x10 in kinds else "firmware has no SNP_KERNEL_HASHES section: too old an edk2")
PY
mkdir -p "$OUT"
cp "$fd" "$OUT/OVMF-AmdSev.fd"
(cd "$OUT" && sha256sum OVMF-AmdSev.fd | tee OVMF-AmdSev.fd.sha256)
say "done: $OUT/OVMF-AmdSev.fd (edk2 $EDK2_VERSION)"
