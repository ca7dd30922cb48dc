#!/usr/bin/env bash
# Verifies the real vendor
# evidence in vectors/ with `silk verify`: an AMD SEV-SNP report from a Milan
# machine against its VCEK and AMD's pinned roots, then an Intel TDX quote with its
# collateral, each under an example policy. Exit status 0 when both verify.
set -euo pipefail
cd "$(dirname "$0")/.."
./scripts/setup.sh
export PATH="$HOME/.cargo/bin:$PATH"
vectors=vectors
if [ ! -d "$vectors" ]; then
  echo "error: $vectors (real vendor evidence) is missing from this checkout" >&2
  exit 2
fi
cargo build --quiet -p silk-tools --bin silk
silk=target/debug/silk

echo "\$ silk verify $vectors/snp/milan/report_milan.hex --certs $vectors/snp/milan --policy docs/examples/snp-milan-sample.toml"
"$silk" verify "$vectors/snp/milan/report_milan.hex" --certs "$vectors/snp/milan" \
  --policy docs/examples/snp-milan-sample.toml
echo
# The sample collateral was valid from 2025-06-19 to 2025-07-19: verify as of then.
echo "\$ silk verify $vectors/tdx/tdx_quote --policy docs/examples/tdx-sample.toml --now 2025-06-20T00:00:00Z"
"$silk" verify "$vectors/tdx/tdx_quote" --policy docs/examples/tdx-sample.toml \
  --now 2025-06-20T00:00:00Z
