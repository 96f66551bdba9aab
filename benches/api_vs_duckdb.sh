#!/usr/bin/env bash
# Analytics API: four questions through cip's GraphQL over HTTP (loopback)
# and through DuckDB (in process) over the same Parquet files of one tenant,
# on a generated lake of 1 M policies, in one script, on this machine:
#
#   1. agency KPIs at an as-of date (the tenant's largest agency)
#   2. agent leaderboard (gross commission) for a year
#   3. monthly gross commission per carrier over all history
#   4. renewal rate by line of business for a year
#
#   benches/api_vs_duckdb.sh [POLICIES]     (default 1000000)
#
# Prints, per question, the first (uncached) API request right after the
# server loaded the snapshot against DuckDB twice: fresh (a new connection
# each time, best of 3) and warm (one connection with its views already
# created, median of 5 after a warm-up: what an analyst with DuckDB open
# gets), their ratios, and checks that the answers agree (money to the cent,
# rates to 1e-9); then the cached p50/p99 over 200 repeats, wrk requests/s on
# the cached KPI query (2 threads, 32 connections, 10 s), and the server's
# peak RSS. Exits non-zero only when answers disagree; targets (first ≤ 1.0×
# warm DuckDB, cached p99 ≤ 5 ms, ≥ 2,000 req/s, RSS ≤ 1 GiB) are reported. DuckDB comes from PyPI into a throwaway venv under the work dir;
# the driver is benches/api_vs_duckdb.py.
set -euo pipefail
cd "$(dirname "$0")/.."
POLICIES="${1:-1000000}"
WORK="${BENCH_DIR:-/tmp/cip-bench-api}"
export CARGO_TARGET_DIR="${CARGO_TARGET_DIR:-$HOME/.cache/cip-target}"

cargo build --release --locked --quiet
CIP="$CARGO_TARGET_DIR/release/cip"

mkdir -p "$WORK"
if [ ! -f "$WORK/generated-$POLICIES" ]; then
  rm -rf "$WORK/landing" "$WORK/truth" "$WORK"/generated-* "$WORK"/ingested-*
  "$CIP" generate --out "$WORK/landing" --truth "$WORK/truth" --policies "$POLICIES" --seed 42 --bad-row-rate 0
  touch "$WORK/generated-$POLICIES"
fi
# The marker names the lake format: a lake of an older format is rebuilt.
if [ ! -f "$WORK/ingested-delta-$POLICIES" ]; then
  rm -rf "$WORK/lake" "$WORK/api-key"
  "$CIP" ingest --landing "$WORK/landing" --lake "$WORK/lake" --json > "$WORK/ingest.json"
  touch "$WORK/ingested-delta-$POLICIES"
fi

if [ ! -x "$WORK/venv/bin/python" ]; then
  python3 -m venv "$WORK/venv"
  "$WORK/venv/bin/pip" install --quiet duckdb
fi
PY="$WORK/venv/bin/python"

# The tenant with the most commission rows in the newest snapshot.
export CIP
TENANT=$("$CIP" lake files --lake "$WORK/lake" | "$PY" -c '
import collections, json, sys
manifest = json.load(sys.stdin)
rows = collections.Counter()
for f in manifest["tables"]["commissions"]:
    rows[f["tenant_id"]] += f["rows"]
print(max(sorted(rows), key=lambda t: rows[t]))
')
# One key per lake, kept next to it (keys live in the lake as salted hashes).
if [ ! -s "$WORK/api-key" ] || [ "$(cat "$WORK/api-key.tenant" 2>/dev/null)" != "$TENANT" ]; then
  "$CIP" keys create --tenant "$TENANT" --env bench --lake "$WORK/lake" > "$WORK/api-key"
  echo "$TENANT" > "$WORK/api-key.tenant"
fi
KEY=$(cat "$WORK/api-key")

WRK=$(command -v wrk || true)
if [ -z "$WRK" ]; then
  apt-get install -y -qq wrk > /dev/null 2>&1 || { apt-get update -qq > /dev/null && apt-get install -y -qq wrk > /dev/null; } || true
  WRK=$(command -v wrk || true)
fi

# The server, on a free loopback port, rate limits out of the load test's way.
CIP_RATE_PER_SEC=1000000 CIP_RATE_BURST=1000000 \
  "$CIP" serve --lake "$WORK/lake" --addr 127.0.0.1:0 > "$WORK/serve.log" 2>&1 &
SERVER=$!
trap 'kill "$SERVER" 2>/dev/null || true; wait "$SERVER" 2>/dev/null || true' EXIT

timeout 900 "$PY" benches/api_vs_duckdb.py --lake "$WORK/lake" --tenant "$TENANT" --key "$KEY" \
  --work "$WORK" --server-log "$WORK/serve.log" --server-pid "$SERVER" --wrk "$WRK"
