#!/usr/bin/env bash
# Crash test of streaming ingest: numbered events sent by 4 clients while
# `cip serve` is killed with SIGKILL at random moments and restarted; at the
# end every acknowledged event is in the lake exactly once (count, ids and
# money sum, read back with delta-rs). Driver: tests/stream_crash.py.
#
#   tests/stream_crash.sh [EVENTS] [KILLS]     (defaults 3000, 5; scripts/test.sh runs 2000, 4)
set -euo pipefail
cd "$(dirname "$0")/.."
EVENTS="${1:-3000}"
KILLS="${2:-5}"
source scripts/env.sh
cargo build --locked --quiet
CIP="$CARGO_TARGET_DIR/debug/cip"
source scripts/delta-venv.sh
WORK=$(mktemp -d)
trap 'rm -rf "$WORK"' EXIT
"$CIP" generate --out "$WORK/landing" --truth "$WORK/truth" --policies 2000 --seed 5 --bad-row-rate 0 >/dev/null
"$CIP" ingest --landing "$WORK/landing" --lake "$WORK/lake" --json >/dev/null
TENANT=$(ls "$WORK/lake/policies" | grep "^tenant_id=" | head -n 1 | sed 's/^tenant_id=//')
KEY=$("$CIP" keys create --lake "$WORK/lake" --tenant "$TENANT" --scopes ingest:write 2>/dev/null)
PORT=$("$CIP_VENV/bin/python" -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])')
"$CIP_VENV/bin/python" tests/stream_crash.py --cip "$CIP" --lake "$WORK/lake" --key "$KEY" --port "$PORT" \
  --events "$EVENTS" --kills "$KILLS" --log "$WORK/serve.log" || { tail -20 "$WORK/serve.log"; exit 1; }
