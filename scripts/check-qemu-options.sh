#!/usr/bin/env bash
# Which Debian QEMU can launch silk's SEV-SNP and TDX guests, and do silk-host's command
# lines fit its options?
#
#   scripts/check-qemu-options.sh [--record DIR] [QEMU...]
#
# Without QEMU arguments it fetches qemu-system-x86 from Debian bookworm-backports, trixie
# and trixie-backports with a private apt configuration under target/qemu-check/ (nothing
# on the system changes: no sources list, no package installed), prints what
# `apt-cache madison` offers, unpacks each build, and runs it in place (the trixie builds
# with trixie's loader and libraries beside them, since bookworm's glibc is older). Then
# scripts/check-qemu-options.py checks the command lines `silk-host run --dry-run --json`
# prints for --tee snp, tdx and none against each QEMU's own option tables over QMP, and
# the system's qemu-system-x86_64 too when there is one. --record DIR keeps each QEMU's
# answers (host/tests/data/qemu/ holds the committed ones). Exit 1 when any check fails.
set -euo pipefail
cd "$(dirname "$0")/.."
record=()
if [[ ${1:-} == --record ]]; then
    record=(--record "$2")
    shift 2
fi
W=$PWD/target/qemu-check
mkdir -p "$W"

export CARGO_TARGET_DIR=${CARGO_TARGET_DIR:-$PWD/target}
cargo build -q -p silk-host
silk_host=$CARGO_TARGET_DIR/debug/silk-host

qemus=("$@")
if [[ ${#qemus[@]} -eq 0 ]]; then
    mkdir -p "$W/apt/lists/partial" "$W/apt/archives/partial"
    key=/usr/share/keyrings/debian-archive-keyring.gpg
    {
        for suite in bookworm-backports trixie trixie-backports; do
            echo "deb [signed-by=$key] http://deb.debian.org/debian $suite main"
        done
    } > "$W/apt/sources.list"
    apt_opts=(-o "Dir::Etc::sourcelist=$W/apt/sources.list" -o Dir::Etc::sourceparts=-
        -o "Dir::State::lists=$W/apt/lists" -o "Dir::Cache=$W/apt"
        -o "Dir::Cache::archives=$W/apt/archives" -o Debug::NoLocking=1
        -o APT::Get::List-Cleanup=0 -o APT::Sandbox::User=root)
    apt-get "${apt_opts[@]}" -qq update
    madison=$(apt-cache "${apt_opts[@]}" madison qemu-system-x86)
    echo "# apt-cache madison qemu-system-x86 (bookworm-backports, trixie, trixie-backports)"
    printf '%s\n' "$madison"
    loader_libs=""
    while read -r suite version; do
        dir=$W/$suite
        mkdir -p "$dir/debs"
        (cd "$dir/debs" && apt-get "${apt_opts[@]}" -qq download \
            "qemu-system-x86=$version" "qemu-system-common=$version" "qemu-system-data=$version")
        for f in "$dir"/debs/*.deb; do dpkg-deb -x "$f" "$dir/root"; done
        wrapper=$dir/qemu-system-x86_64
        if [[ $suite == bookworm-backports ]]; then
            printf '#!/bin/sh\nexec %q -L %q "$@"\n' "$dir/root/usr/bin/qemu-system-x86_64" \
                "$dir/root/usr/share/qemu" > "$wrapper"
        else
            if [[ -z $loader_libs ]]; then
                # trixie's glibc and the libraries QEMU links (and theirs), beside it.
                loader_libs=$W/trixie-libs
                mkdir -p "$loader_libs/debs"
                pkgs=$(apt-cache "${apt_opts[@]}" depends "qemu-system-x86=$version" |
                    awk '/Depends: lib/ {print $2}' | sort -u)
                deps=$(for p in $pkgs; do apt-cache "${apt_opts[@]}" depends "$p/trixie" |
                    awk '/Depends: lib/ {print $2}'; done | sort -u)
                (cd "$loader_libs/debs" && for p in $pkgs $deps; do
                    apt-get "${apt_opts[@]}" -qq download "$p/trixie" 2>/dev/null || true
                done)
                for f in "$loader_libs"/debs/*.deb; do dpkg-deb -x "$f" "$loader_libs/root"; done
            fi
            L=$loader_libs/root/usr/lib/x86_64-linux-gnu
            printf '#!/bin/sh\nexec %q --library-path %q %q -L %q "$@"\n' \
                "$L/ld-linux-x86-64.so.2" "$L:/lib/x86_64-linux-gnu:/usr/lib/x86_64-linux-gnu" \
                "$dir/root/usr/bin/qemu-system-x86_64" "$dir/root/usr/share/qemu" > "$wrapper"
        fi
        chmod +x "$wrapper"
        qemus+=("$wrapper")
    done < <(printf '%s\n' "$madison" |
        awk -F' [|] ' '{split($3, s, " "); sub("/main.*", "", s[2]); print s[2], $2}' |
        awk '!seen[$1]++' | sort)
    if command -v qemu-system-x86_64 > /dev/null; then
        qemus+=("$(command -v qemu-system-x86_64)")
    fi
fi
exec python3 scripts/check-qemu-options.py --silk-host "$silk_host" "${record[@]}" "${qemus[@]}"
