#!/usr/bin/env bash
# Builds llama.cpp's own benchmark tools, `llama-bench` and `llama-batched-bench`, which
# `silk bench engine` compares silk against, from the llama.cpp source bundled in the
# llama-cpp-python sdist that scripts/reference/requirements.txt pins (the same llama.cpp
# the logits references use), in a cache outside the repository; then prints their paths.
#
#   scripts/llama-tools.sh              build (once) and print the export lines
#   eval "$(scripts/llama-tools.sh env)"   the same, into this shell (messages on stderr)
#
# The sdist is downloaded with pip from PyPI and checked against the SHA-256 pinned in
# scripts/llama-tools.sha256. The build is llama.cpp's release build with GGML_NATIVE=ON
# (every instruction this CPU has, as llama.cpp's own builds default to), CPU only. A
# binary built here is for this CPU: do not copy it to an older one.
#
# The cache is $SILK_LLAMA_CACHE, by default ${XDG_CACHE_HOME:-$HOME/.cache}/silk/llama-VERSION
# (~75 MB downloaded, a few minutes of compiling on two cores). A stamp file there records
# what was built: a second run finds it and does nothing.
set -euo pipefail
here="$(cd "$(dirname "$0")" && pwd)"
pins="$here/llama-tools.sha256"
version=$(sed -n 's/^llama-cpp-python==//p' "$here/reference/requirements.txt")
# Bump when the build below changes, so that old caches are built again.
layout=1
cache="${SILK_LLAMA_CACHE:-${XDG_CACHE_HOME:-$HOME/.cache}/silk/llama-$version}"
cmd="${1:-install}"

say() { printf '[llama-tools] %s\n' "$*" >&2; }
die() { say "error: $*"; exit 1; }
as_root() { if [ "$(id -u)" = 0 ]; then "$@"; else sudo "$@"; fi; }
case "$cmd" in
  install | env) ;;
  *) printf 'usage: %s [install|env]\n' "$0" >&2; exit 2 ;;
esac
[ -n "$version" ] || die "no llama-cpp-python==VERSION in $here/reference/requirements.txt"
sdist="llama_cpp_python-$version.tar.gz"
want_sha=$(awk -v f="$sdist" '$2 == f { print $1 }' "$pins")
[ -n "$want_sha" ] || die "$pins pins no SHA-256 for $sdist"

want_stamp="llama-tools $version layout $layout sdist $want_sha native $(uname -m)"

env_lines() {
  printf "export SILK_LLAMA_BENCH='%s'\n" "$cache/bin/llama-bench"
  printf "export SILK_LLAMA_BATCHED_BENCH='%s'\n" "$cache/bin/llama-batched-bench"
}

build() {
  # cmake and a C++ compiler, from Debian, as scripts/setup.sh installs its packages.
  local need=()
  for p in cmake build-essential; do
    dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "ok installed" || need+=("$p")
  done
  if [ ${#need[@]} -gt 0 ]; then
    say "installing Debian packages: ${need[*]}"
    as_root apt-get update -qq
    as_root env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "${need[@]}" >/dev/null
  fi
  python3 -m pip --version >/dev/null 2>&1 || die "python3 -m pip is missing (Debian: python3-pip)"
  local parent tmp
  parent="$(dirname "$cache")"
  mkdir -p "$parent"
  tmp="$(mktemp -d "$parent/.llama-$version.XXXXXX")"
  # shellcheck disable=SC2064  # expand now: tmp is local
  trap "rm -rf '$tmp'" EXIT
  say "downloading llama-cpp-python $version's sdist from PyPI (~75 MB, SHA-256 pinned)"
  # --no-binary for this package only: its build tools (cmake, ninja) may come as wheels;
  # `:all:` would compile cmake from source just to read the sdist's metadata.
  python3 -m pip download --quiet --disable-pip-version-check --no-deps \
    --no-binary llama-cpp-python "llama-cpp-python==$version" -d "$tmp/dl" >&2
  [ -f "$tmp/dl/$sdist" ] || die "pip did not download $sdist"
  local got
  got=$(sha256sum "$tmp/dl/$sdist" | cut -d' ' -f1)
  [ "$got" = "$want_sha" ] || die "$sdist has SHA-256 $got, not the pinned $want_sha"
  tar xzf "$tmp/dl/$sdist" -C "$tmp" "llama_cpp_python-$version/vendor/llama.cpp"
  local src="$tmp/llama_cpp_python-$version/vendor/llama.cpp"
  say "building llama-bench and llama-batched-bench (GGML_NATIVE=ON, 2 jobs, niced)"
  # Static libraries: the two binaries then run from the cache without LD_LIBRARY_PATH.
  nice -n 10 cmake -S "$src" -B "$tmp/build" -DCMAKE_BUILD_TYPE=Release -DGGML_NATIVE=ON \
    -DBUILD_SHARED_LIBS=OFF -DLLAMA_CURL=OFF -DLLAMA_BUILD_TESTS=OFF \
    -DLLAMA_BUILD_EXAMPLES=OFF -DLLAMA_BUILD_SERVER=OFF >"$tmp/cmake.log" 2>&1 ||
    { tail -n 30 "$tmp/cmake.log" >&2; die "cmake configure failed"; }
  nice -n 10 cmake --build "$tmp/build" -j2 --target llama-bench llama-batched-bench \
    >"$tmp/build.log" 2>&1 || { tail -n 30 "$tmp/build.log" >&2; die "build failed"; }
  mkdir -p "$tmp/bin"
  for t in llama-bench llama-batched-bench; do
    cp "$tmp/build/bin/$t" "$tmp/bin/$t"
    "$tmp/bin/$t" --help >/dev/null 2>&1 || die "$t --help fails after the build"
  done
  # What it was built from and on, for the tables that quote it.
  {
    printf 'llama-cpp-python %s (sdist sha256 %s)\n' "$version" "$want_sha"
    grep -m1 -o '"[0-9a-f]\{7,\}"' "$tmp/build/common/build-info.cpp" 2>/dev/null || true
    grep -m1 'model name' /proc/cpuinfo || true
  } >"$tmp/BUILD-INFO"
  rm -rf "$tmp/dl" "$tmp/llama_cpp_python-$version" "$tmp/build" "$tmp"/*.log
  printf '%s\n' "$want_stamp" >"$tmp/stamp"
  # Swap the finished tree in last: an interrupted run never leaves a half-made cache.
  rm -rf "$cache"
  mv "$tmp" "$cache"
  trap - EXIT
  say "built in $cache/bin"
}

# One builder at a time per cache (setup.sh and a person may race).
mkdir -p "$(dirname "$cache")"
exec 9>"$cache.lock"
command -v flock >/dev/null && flock 9
if [ "$(cat "$cache/stamp" 2>/dev/null)" = "$want_stamp" ]; then
  say "llama.cpp tools of llama-cpp-python $version already built in $cache (stamp matches)"
else
  build
fi

if [ "$cmd" = install ]; then
  say "silk bench engine finds them in $cache/bin; or export:"
fi
env_lines
