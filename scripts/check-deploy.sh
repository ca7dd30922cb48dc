#!/usr/bin/env bash
# Checks the operator files in deploy/ against the built binaries and the formats' own
# tools, so that a unit, image recipe or manifest that would not load fails here:
#
#   systemd   `systemd-analyze verify` on each unit (with the GPU drop-in applied), any
#             warning counting as a failure; `systemd-analyze security --offline` under a
#             ceiling per unit; the sysusers file applied to an empty root; every flag of
#             each ExecStart= accepted by the binary's own parser.
#   OCI       hadolint on deploy/oci/Containerfile; its Rust version is the workspace's;
#             the binaries it builds exist; /.dockerignore keeps every workspace member.
#   k8s       every manifest against the Kubernetes JSON schemas (strict: unknown fields
#             are errors) for the oldest and newest versions the files target; the
#             kustomization lists exactly the manifests; cross-references, security
#             settings and flags (scripts/check-deploy.py); silk-router started with the
#             ConfigMap's admission policy answering its probe path.
#
# The validators are pinned in scripts/check-deploy.requirements.txt and installed into
# target/deploy-tools/venv (a cache: deleting it is safe). Needs the binaries, so it builds
# them the way scripts/test.sh does (`cargo build --workspace --bins`, shared by both).
set -euo pipefail
cd "$(dirname "$0")/.."
root=$PWD
./scripts/setup.sh
export PATH="$HOME/.cargo/bin:$PATH"

say() { printf '[check-deploy] %s\n' "$*" >&2; }
fail() {
  printf '[check-deploy] FAILED: %s\n' "$*" >&2
  exit 1
}
scratch="$(mktemp -d)"
trap 'rm -rf "$scratch"' EXIT

# --- tools -------------------------------------------------------------------------
command -v systemd-analyze >/dev/null || fail "systemd-analyze is missing: scripts/setup.sh installs Debian's systemd package"
command -v systemd-sysusers >/dev/null || fail "systemd-sysusers is missing: scripts/setup.sh installs Debian's systemd package"
venv=target/deploy-tools/venv
want=scripts/check-deploy.requirements.txt
if ! { [ -x "$venv/bin/python" ] && cmp -s "$want" "$venv/.requirements"; }; then
  say "installing $(tr '\n' ' ' < "$want")into $venv"
  rm -rf "$venv"
  mkdir -p "$(dirname "$venv")"
  python3 -m venv "$venv"
  "$venv/bin/python" -m pip install --quiet --disable-pip-version-check -r "$want"
  cp "$want" "$venv/.requirements"
fi

say "building the binaries the units and manifests name"
cargo build --workspace --bins --quiet
bin=${CARGO_TARGET_DIR:-$root/target}/debug

# --- systemd -------------------------------------------------------------------------
say "systemd units: systemd-analyze verify and security"
units="$scratch/units"
mkdir -p "$units/silk-host.service.d"
# verify insists that ExecStart= binaries exist; the units name their installed place
# (/usr/local/bin), so verify copies that name the built ones instead.
for f in deploy/systemd/*.service; do
  sed "s#/usr/local/bin/#$bin/#g" "$f" >"$units/$(basename "$f")"
done
cp deploy/systemd/silk-host-gpu.conf "$units/silk-host.service.d/gpu.conf"
for f in "$units"/*.service; do
  u=$(basename "$f")
  # Drop-ins are found through the unit path; a trailing colon keeps the system's (for
  # the targets the units order themselves after). verify reports unknown keys and bad
  # values as warnings with exit status 0, so any output fails.
  out=$(SYSTEMD_UNIT_PATH="$units:" systemd-analyze verify --man=no "$f" 2>&1) ||
    fail "systemd-analyze verify $u: $out"
  [ -z "$out" ] || fail "systemd-analyze verify $u reports:
$out"
done
# Exposure ceilings (tenths, as --threshold counts): the scores now are 1.8 (host, with
# the GPU drop-in) and 1.2 (proxy); losing a few hardening settings crosses them.
for pair in silk-host.service:25 silk-proxy.service:20; do
  u=${pair%:*}
  ceiling=${pair#*:}
  if ! out=$(SYSTEMD_UNIT_PATH="$units:" systemd-analyze security --offline=yes \
    --threshold="$ceiling" --no-pager "$units/$u" 2>&1); then
    fail "systemd-analyze security $u: exposure above $ceiling/10:
$(grep -E '^(✗|→)' <<<"$out")"
  fi
done
# The sysusers file, applied to an empty root, must create the user the unit runs as.
sysroot="$scratch/sysroot"
mkdir -p "$sysroot/etc"
touch "$sysroot/etc/passwd" "$sysroot/etc/group" "$sysroot/etc/shadow" "$sysroot/etc/gshadow"
systemd-sysusers --root="$sysroot" "$root/deploy/systemd/silk-host.sysusers" >/dev/null 2>"$scratch/err" ||
  fail "systemd-sysusers deploy/systemd/silk-host.sysusers: $(cat "$scratch/err")"
unit_user=$(sed -n 's/^User=//p' deploy/systemd/silk-host.service)
grep -q "^$unit_user:" "$sysroot/etc/passwd" ||
  fail "silk-host.sysusers does not create User=$unit_user of silk-host.service"
grep -q "GROUP=\"$unit_user\"" deploy/systemd/60-silk-host.rules ||
  fail "60-silk-host.rules does not give the devices to group $unit_user"
# Every ExecStart= with the unit's default Environment= values (and an upstream for the
# proxy, whose EnvironmentFile= gives it) must pass the binary's own parser.
check() { "$venv/bin/python" scripts/check-deploy.py "$@"; }
check systemd deploy/systemd/silk-host.service "$bin"
check systemd deploy/systemd/silk-proxy.service "$bin" \
  SILK_PROXY_UPSTREAM="--router http://127.0.0.1:9"

# --- OCI image recipe ----------------------------------------------------------------
say "OCI recipe: hadolint, Rust version, binaries, build context"
"$venv/bin/hadolint" --failure-threshold style deploy/oci/Containerfile ||
  fail "hadolint deploy/oci/Containerfile (above)"
check oci deploy/oci/Containerfile "$bin"

# --- Kubernetes ----------------------------------------------------------------------
say "Kubernetes: schemas, kustomization, cross-references, security, flags"
mapfile -t manifests < <(find deploy/kubernetes -name '*.yaml' ! -name kustomization.yaml | sort)
# The files target Kubernetes 1.30 (preStop `sleep` is on by default from there) and
# newer: validate against both ends of the range the validator knows.
for k in 1.30.0 1.37.0; do
  out=$("$venv/bin/kubernetes-validate" --strict -k "$k" "${manifests[@]}" 2>&1) ||
    fail "kubernetes-validate (Kubernetes $k):
$(grep -Ev '^INFO' <<<"$out")"
  # An unknown kind or apiVersion is only a warning there: a failure here.
  if grep -Eq '^(WARN|ERROR)' <<<"$out"; then
    fail "kubernetes-validate (Kubernetes $k):
$(grep -E '^(WARN|ERROR)' <<<"$out")"
  fi
done
# Cross-references, security settings, flags through the built binaries, and silk-router
# started with the ConfigMap's admission policy answering its probe paths.
check k8s deploy/kubernetes "$bin"

say "deploy/ files pass"
