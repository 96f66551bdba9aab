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

mkdir -p "$WORK"
if [ ! -x "$WORK/venv/bin/python" ]; then
  python3 -m venv "$WORK/venv"
  "$WORK/venv/bin/pip" install --quiet aiohttp
fi
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

PORT=$("$WORK/venv/bin/python" -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])')
env -u CIP_JWT_SECRET -u CIP_RATE_PER_SEC -u CIP_RATE_BURST "$CIP" serve --lake "$WORK/lake" --addr "127.0.0.1:$PORT" \
  > "$WORK/serve.log" 2>&1 &
SERVER=$!
trap 'kill $SERVER 2>/dev/null || true' EXIT
for i in $(seq 1 100); do
  curl -sf "http://127.0.0.1:$PORT/ready" >/dev/null 2>&1 && break
  [ "$i" = 100 ] && { echo "the server never became ready: see $WORK/serve.log" >&2; exit 1; }
  sleep 0.2
done
"$WORK/venv/bin/python" benches/guard_load.py --url "http://127.0.0.1:$PORT" --pid "$SERVER" \
  --seconds "$SECONDS_RUN" --key-http "$KEY_HTTP" --key-ws "$KEY_WS" --out "$WORK/last.json"
