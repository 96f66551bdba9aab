#!/usr/bin/env bash
# Interoperability: a generated book ingested and scored by cip, then read by
# another Delta reader — the `deltalake` package from PyPI (delta-rs' Python
# binding; DuckDB's delta extension is downloaded at run time, which this
# machine cannot) — comparing every table's rows and exact money sums.
#   benches/lake_interop.sh [POLICIES] [LAKE_URL]     (defaults 5000, a local folder)
# With an s3:// lake, the AWS_* variables of scripts/s3-server.sh apply.
set -euo pipefail
cd "$(dirname "$0")/.."
POLICIES="${1:-5000}"
WORK="${BENCH_DIR:-/tmp/cip-interop}"
source scripts/env.sh
cargo build --locked --quiet
CIP="$CARGO_TARGET_DIR/debug/cip"
source scripts/delta-venv.sh
rm -rf "$WORK"; mkdir -p "$WORK"
LAKE="${2:-$WORK/lake}"
"$CIP" generate --out "$WORK/landing" --truth "$WORK/truth" --policies "$POLICIES" --seed 5 >/dev/null
"$CIP" ingest --landing "$WORK/landing" --lake "$LAKE" --json >/dev/null
"$CIP" train --lake "$LAKE" --json >/dev/null
"$CIP" score --lake "$LAKE" --json >/dev/null
"$CIP" lake stats --lake "$LAKE" --json > "$WORK/stats.json"
"$CIP_VENV/bin/python" benches/lake_interop.py "$LAKE" "$WORK/stats.json"
