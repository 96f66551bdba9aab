#!/usr/bin/env bash
# The guard under load: 8 clients over HTTP and 8 over WebSocket (graphql-ws)
# for 30 s on loopback against `cip serve` with its production settings
# (50 requests/s per credential, burst 100), while a ninth client polls
# /health every 50 ms and the script samples the server's RSS.
#
#   benches/guard_load.sh [SECONDS] [POLICIES]      (defaults 30, 20000)
#
# Prints requests by status / error code per door, whether every 429 had a
# Retry-After, /health latency (p50, p99, max) and the server's peak RSS; exits
# non-zero on any 5xx, a 429 without Retry-After, or /health ever ≥ 100 ms.
# Uses the binary of the README's commands (scripts/env.sh's build); the
# driver is benches/guard_load.py (aiohttp from PyPI in a venv under the work dir).
set -euo pipefail
cd "$(dirname "$0")/.."
SECONDS_RUN="${1:-30}"
POLICIES="${2:-20000}"
WORK="${BENCH_DIR:-/tmp/cip-bench-guard}"
source scripts/env.sh
cargo build --locked --quiet
CIP="$CARGO_TARGET_DIR/debug/cip"

source benches/load-server.sh
# The marker names the lake format: a lake of an older format is rebuilt.
if [ ! -f "$WORK/ingested-delta-$POLICIES" ]; then
  rm -rf "$WORK/landing" "$WORK/truth" "$WORK/lake" "$WORK"/ingested-*
  "$CIP" generate --out "$WORK/landing" --truth "$WORK/truth" --policies "$POLICIES" --seed 11 --bad-row-rate 0 >/dev/null
  "$CIP" ingest --landing "$WORK/landing" --lake "$WORK/lake" --json >/dev/null
  touch "$WORK/ingested-delta-$POLICIES"
fi
TENANT=$(ls "$WORK/lake/policies" | grep "^tenant_id=" | head -n 1 | sed 's/^tenant_id=//')
KEY_HTTP=$("$CIP" keys create --lake "$WORK/lake" --tenant "$TENANT" --scopes analytics:read 2>/dev/null)
KEY_WS=$("$CIP" keys create --lake "$WORK/lake" --tenant "$TENANT" --scopes analytics:read 2>/dev/null)

start_server "$WORK/lake"
"$WORK/venv/bin/python" benches/guard_load.py --url "http://127.0.0.1:$PORT" --pid "$SERVER" \
  --seconds "$SECONDS_RUN" --key-http "$KEY_HTTP" --key-ws "$KEY_WS" --out "$WORK/last.json"
