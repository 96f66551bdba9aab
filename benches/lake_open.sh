#!/usr/bin/env bash
# Opening the lake after many commits: `cip serve` started on a lake of a
# generated book plus 1 small commit, and on the same lake plus 5,000 small
# commits (each a real ingest: a Delta commit of commissions and its two
# rollups, checkpoints every 10 versions); each time from a fresh process,
# until /ready and the first GraphQL answer. Median of 5 runs each, and their
# ratio (target ≤ 2×).
#   benches/lake_open.sh [COMMITS] [POLICIES]       (defaults 5000, 20000)
set -euo pipefail
cd "$(dirname "$0")/.."
COMMITS="${1:-5000}"
POLICIES="${2:-20000}"
WORK="${BENCH_DIR:-/tmp/cip-bench-open}"
source scripts/env.sh
cargo build --locked --quiet --bin cip --example lake_commits
CIP="$CARGO_TARGET_DIR/debug/cip"
GROW="$CARGO_TARGET_DIR/debug/examples/lake_commits"
mkdir -p "$WORK"
if [ ! -f "$WORK/built-$COMMITS-$POLICIES" ]; then
  rm -rf "$WORK"/*
  "$CIP" generate --out "$WORK/landing" --truth "$WORK/truth" --policies "$POLICIES" --seed 3 --bad-row-rate 0 >/dev/null
  "$CIP" ingest --landing "$WORK/landing" --lake "$WORK/one" --json >/dev/null
  cp -r "$WORK/one" "$WORK/many"
  "$GROW" "$WORK/one" 1
  /usr/bin/time -f "grew the lake by $COMMITS commits in %e s" "$GROW" "$WORK/many" "$COMMITS"
  touch "$WORK/built-$COMMITS-$POLICIES"
fi
TENANT=$(ls "$WORK/one/policies" | grep -v _delta_log | head -n 1 | sed 's/^tenant_id=//')
QUERY='{"query":"{ agencies { id kpis(asOf: \"2025-12-31\") { ytdCommission activePolicies } } }"}'
open_once() { # lake → seconds from start to the first answer
  local lake=$1 key port pid t0 t1
  key=$("$CIP" keys create --lake "$lake" --tenant "$TENANT" --scopes analytics:read 2>/dev/null)
  port=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])')
  t0=$(date +%s.%N)
  "$CIP" serve --lake "$lake" --addr "127.0.0.1:$port" >/dev/null 2>&1 &
  pid=$!
  until curl -sf "http://127.0.0.1:$port/ready" >/dev/null 2>&1; do sleep 0.02; done
  curl -sf "http://127.0.0.1:$port/graphql" -H "X-API-Key: $key" -H 'content-type: application/json' -d "$QUERY" >/dev/null
  t1=$(date +%s.%N)
  kill $pid; wait $pid 2>/dev/null || true
  python3 -c "print($t1 - $t0)"
}
median() { sort -g | awk '{a[NR]=$1} END {print (NR%2 ? a[(NR+1)/2] : (a[NR/2]+a[NR/2+1])/2)}'; }
for lake in one many; do
  for _ in 1 2 3 4 5; do open_once "$WORK/$lake"; done | median > "$WORK/$lake.median"
done
ONE=$(cat "$WORK/one.median"); MANY=$(cat "$WORK/many.median")
V_ONE=$(ls "$WORK/one/_lake" | grep -c '^[0-9]'); V_MANY=$(ls "$WORK/many/_lake" | grep -c '^[0-9]')
python3 - "$ONE" "$MANY" "$V_ONE" "$V_MANY" "$COMMITS" <<'PY'
import sys
one, many, v_one, v_many, commits = float(sys.argv[1]), float(sys.argv[2]), int(sys.argv[3]), int(sys.argv[4]), int(sys.argv[5])
print(f"open + first answer, median of 5: after 1 small commit ({v_one} lake versions) {one:.3f} s; "
      f"after {commits} small commits ({v_many} lake versions, compactions included) {many:.3f} s: "
      f"{many / one:.2f}x (target <= 2x)")
PY
