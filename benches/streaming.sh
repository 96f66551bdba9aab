#!/usr/bin/env bash
# Streaming ingest under load: CLIENTS clients post commission events to
# `cip serve` on loopback for SECONDS in NDJSON batches of BATCH, then
# SECONDS one event per request, while a prober sends a marker event and
# times acknowledgement → visible in a GraphQL query, and the script samples
# the server's RSS. It stops by itself.
#
#   benches/streaming.sh [SECONDS] [CLIENTS] [BATCH] [POLICIES] [SINGLE_CLIENTS] [SOAK_SECONDS] [SOAK_RATE]
#   (defaults 30, 4, 1000, 20000, 32, 600, 1000: CLIENTS post batches, SINGLE_CLIENTS
#   single events; then a soak of SOAK_SECONDS at SOAK_RATE events/s, 0 to skip)
#
# Prints accepted events/s per phase, p50/p99 visibility, refusals (429/503)
# and the server's RSS (first, max, last sample). Targets (issue 11):
# >= 50,000 events/s in batches, >= 5,000 one per request, p99 visibility
# <= 1 s, flat memory; then a dashboard phase (one event a second, KPI and
# leaderboard queries back to back: p99 <= 50 ms), a soak (a steady load
# with the prober and two dashboard pollers: RSS per minute, which must level
# off) and the time a fresh server takes to open the lake after all of it
# against before it. Uses the binary
# of the README's commands; the driver is
# benches/streaming.py (aiohttp from PyPI in a venv under the work dir).
set -euo pipefail
cd "$(dirname "$0")/.."
SECONDS_RUN="${1:-30}"
CLIENTS="${2:-4}"
BATCH="${3:-1000}"
POLICIES="${4:-20000}"
SINGLE_CLIENTS="${5:-32}"
SOAK_SECONDS="${6:-600}"
SOAK_RATE="${7:-1000}"
WORK="${BENCH_DIR:-/tmp/cip-bench-stream}"
source scripts/env.sh
cargo build --locked --quiet
CIP="$CARGO_TARGET_DIR/debug/cip"

source benches/load-server.sh
# One event per request is driven by wrk (a Python client spends more CPU per
# request than the server): from the distribution's packages, as the API bench.
WRK=$(command -v wrk || true)
if [ -z "$WRK" ] && command -v apt-get >/dev/null; then
  apt-get install -y -qq wrk > /dev/null 2>&1 || { apt-get update -qq > /dev/null && apt-get install -y -qq wrk > /dev/null; } || true
  WRK=$(command -v wrk || true)
fi
[ -n "$WRK" ] || echo "wrk not found: the one-event phase uses the Python clients (slower than the server)"
# A fresh lake per run: the events of one run would otherwise stay.
rm -rf "$WORK/landing" "$WORK/truth" "$WORK/lake"
"$CIP" generate --out "$WORK/landing" --truth "$WORK/truth" --policies "$POLICIES" --seed 11 --bad-row-rate 0 >/dev/null
"$CIP" ingest --landing "$WORK/landing" --lake "$WORK/lake" --json >/dev/null
TENANT=$(ls "$WORK/lake/policies" | grep "^tenant_id=" | head -n 1 | sed 's/^tenant_id=//')
KEY=$("$CIP" keys create --lake "$WORK/lake" --tenant "$TENANT" --scopes ingest:write,analytics:read 2>/dev/null)
DASH_KEY=$("$CIP" keys create --lake "$WORK/lake" --tenant "$TENANT" --scopes ingest:write,analytics:read 2>/dev/null)

start_server "$WORK/lake"
BEFORE_MS=$READY_MS
echo "tenant $TENANT, $POLICIES policies in the book; server ready after ${BEFORE_MS} ms"
"$WORK/venv/bin/python" benches/streaming.py --url "http://127.0.0.1:$PORT" --pid "$SERVER" --key "$KEY" \
  --seconds "$SECONDS_RUN" --clients "$CLIENTS" --single-clients "$SINGLE_CLIENTS" --batch "$BATCH" --out "$WORK/last.json" \
  --landing "$WORK/landing" --tenant "$TENANT" ${WRK:+--wrk "$WRK"} \
  --soak-seconds "$SOAK_SECONDS" --soak-rate "$SOAK_RATE" --dash-key "$DASH_KEY"
# Opening the lake after the load (its many small commits, the log, the
# stamps) against opening it before: a fresh server on the same lake.
cp "$WORK/serve.log" "$WORK/serve-load.log"   # the loaded server's log, kept
kill "$SERVER"
wait "$SERVER" 2>/dev/null || true
start_server "$WORK/lake"
echo "lake open: server ready after ${BEFORE_MS} ms before the load, ${READY_MS} ms after it"
