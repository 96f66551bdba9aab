#!/usr/bin/env bash
# The commission engine's two numbers of issue 12, in one script, on this machine:
#
#   1. reconcile ~1 M statement lines against their expected commissions
#      (`cip reconcile --tenant T --json`: every carrier, every period of
#      one tenant) against DuckDB's equivalent normalise-and-join over the
#      same Parquet files (the files the lake's newest version names):
#      time and ratio (targets ≤ 5 s on 2 cores, ≤ 1.0× DuckDB);
#   2. `calculateCommissions` of 1,000 policy terms over HTTP (loopback):
#      p50 / p95 of 50 requests (target p95 ≤ 100 ms).
#
#   benches/commissions.sh [POLICIES] [RUNS]     (defaults 920000, 3)
#
# One tenant, so that its statement lines number about 1 M (1,200,000
# policies give 1.31 M lines; see docs/demo-data.md). Runs the dev build
# (`$CARGO_TARGET_DIR/debug/cip`), the binary the README's commands build;
# BUILD=release uses the release build instead. DuckDB comes from PyPI into
# a throwaway venv under the work dir; the driver is benches/commissions.py.
set -euo pipefail
cd "$(dirname "$0")/.."
POLICIES="${1:-920000}"
RUNS="${2:-3}"
WORK="${BENCH_DIR:-${TMPDIR:-/tmp}/cip-bench-commissions}"
export CARGO_TARGET_DIR="${CARGO_TARGET_DIR:-$HOME/.cache/cip-target}"
BUILD="${BUILD:-debug}"

if [ "$BUILD" = release ]; then cargo build --release --locked --quiet; else cargo build --locked --quiet; fi
export CIP="$CARGO_TARGET_DIR/$BUILD/cip"

mkdir -p "$WORK"
if [ ! -f "$WORK/generated-$POLICIES" ]; then
  rm -rf "$WORK/landing" "$WORK/truth" "$WORK"/generated-* "$WORK"/ingested-*
  "$CIP" generate --out "$WORK/landing" --truth "$WORK/truth" --policies "$POLICIES" --tenants 1 --seed 42 --bad-row-rate 0
  touch "$WORK/generated-$POLICIES"
fi
if [ ! -f "$WORK/ingested-$POLICIES" ]; then
  rm -rf "$WORK/lake"
  "$CIP" ingest --landing "$WORK/landing" --lake "$WORK/lake" --json > "$WORK/ingest.json"
  touch "$WORK/ingested-$POLICIES"
fi
if [ ! -x "$WORK/venv/bin/python" ]; then
  python3 -m venv "$WORK/venv"
  "$WORK/venv/bin/pip" install --quiet duckdb
fi
exec "$WORK/venv/bin/python" benches/commissions.py --lake "$WORK/lake" --work "$WORK" --runs "$RUNS"
