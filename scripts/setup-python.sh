#!/usr/bin/env bash
# A Python environment inside the repository (.venv, git-ignored) with the tools the tests
# drive silk with: the official `openai` SDK, pinned. Nothing is installed outside the repo.
set -euo pipefail
cd "$(dirname "$0")/.."
want=tests/python/requirements.txt
if [ -x .venv/bin/python ] && cmp -s "$want" .venv/.requirements 2>/dev/null; then
  exit 0
fi
if ! python3 -c 'import venv, ensurepip' 2>/dev/null; then
  as_root() { if [ "$(id -u)" = 0 ]; then "$@"; else sudo "$@"; fi; }
  as_root apt-get update -qq
  as_root env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq python3-venv >/dev/null
fi
printf '[setup] creating .venv with %s\n' "$(tr '\n' ' ' < "$want")" >&2
rm -rf .venv
python3 -m venv .venv
.venv/bin/python -m pip install --quiet --disable-pip-version-check -r "$want"
cp "$want" .venv/.requirements
