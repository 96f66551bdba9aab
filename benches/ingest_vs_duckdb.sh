#!/usr/bin/env bash
# Ingest throughput on a whole landing: cip's validated batch ingest of every
# entity (validation, upsert by key, Parquet, the rollups, the Delta commits)
# against DuckDB's plain `COPY (SELECT * FROM read_csv(...)) TO '….parquet'`
# of the same CSV files, entity by entity, in one script, on this machine.
#
#   benches/ingest_vs_duckdb.sh [POLICIES] [RUNS]   (defaults 1000000, 3)
#
# Each tool runs RUNS times (cip into a fresh lake each time, DuckDB in one
# process per run writing fresh files); the medians are compared: rows/s,
# wall time and peak RSS of each, and the ratio cip / DuckDB (≥ 1.0× is the
# target). Both must land every row. DuckDB comes from PyPI into a throwaway
# venv under the bench work dir.
set -euo pipefail
cd "$(dirname "$0")/.."
POLICIES="${1:-1000000}"
RUNS="${2:-3}"
WORK="${BENCH_DIR:-${TMPDIR:-/tmp}/cip-bench-ingest}"
export CARGO_TARGET_DIR="${CARGO_TARGET_DIR:-$HOME/.cache/cip-target}"
ENTITIES="agencies agents carriers commission_schedules policies commissions statement_lines"

cargo build --release --locked --quiet
CIP="$CARGO_TARGET_DIR/release/cip"

mkdir -p "$WORK"
if [ ! -f "$WORK/generated-$POLICIES" ]; then
  rm -rf "$WORK/landing" "$WORK/truth" "$WORK"/generated-*
  "$CIP" generate --out "$WORK/landing" --truth "$WORK/truth" --policies "$POLICIES" --seed 42 --bad-row-rate 0
  touch "$WORK/generated-$POLICIES"
fi
ROWS=0
for e in $ENTITIES; do
  n=0
  for f in "$WORK/landing/$e"/*.csv; do n=$((n + $(wc -l < "$f") - 1)); done   # minus the header
  printf '%-22s %10d rows in %d files\n' "$e" "$n" "$(ls "$WORK/landing/$e"/*.csv | wc -l)"
  ROWS=$((ROWS + n))
done
echo "whole landing: $ROWS rows"

if [ ! -x "$WORK/venv/bin/python" ]; then
  python3 -m venv "$WORK/venv"
  "$WORK/venv/bin/pip" install --quiet duckdb
fi
PY="$WORK/venv/bin/python"
command -v /usr/bin/time >/dev/null || { apt-get install -y -qq time >/dev/null; }

cat > "$WORK/duck.py" <<PY
import os, duckdb
con = duckdb.connect()
for e in "$ENTITIES".split():
    con.execute(f"COPY (SELECT * FROM read_csv('$WORK/landing/{e}/*.csv')) TO '$WORK/duck/{e}.parquet' (FORMAT parquet)")
PY

# run LOG cmd... → wall seconds on stdout; peak RSS (KiB) in LOG.peak
run() {
  local log=$1; shift
  local t0 t1
  t0=$(date +%s%N)
  /usr/bin/time -v "$@" > "$log.out" 2> "$log"
  t1=$(date +%s%N)
  grep "Maximum resident" "$log" | awk '{print $6}' > "$log.peak"
  "$PY" -c "print(($t1 - $t0) / 1e9)"
}
median() { "$PY" -c 'import statistics, sys; print(statistics.median(float(x) for x in sys.argv[1:]))' "$@"; }

CIP_TIMES=() DUCK_TIMES=() CIP_PEAK=0 DUCK_PEAK=0
for i in $(seq "$RUNS"); do
  rm -rf "$WORK/lake"
  CIP_TIMES+=("$(run "$WORK/cip.time" "$CIP" ingest --landing "$WORK/landing" --lake "$WORK/lake" --json)")
  CIP_PEAK=$(( $(cat "$WORK/cip.time.peak") > CIP_PEAK ? $(cat "$WORK/cip.time.peak") : CIP_PEAK ))
  rm -rf "$WORK/duck" && mkdir -p "$WORK/duck"
  DUCK_TIMES+=("$(run "$WORK/duck.time" "$PY" "$WORK/duck.py")")
  DUCK_PEAK=$(( $(cat "$WORK/duck.time.peak") > DUCK_PEAK ? $(cat "$WORK/duck.time.peak") : DUCK_PEAK ))
  echo "run $i: cip ${CIP_TIMES[-1]} s, duckdb ${DUCK_TIMES[-1]} s"
done

# Every row read by both, none rejected (cip's run summary of the last run;
# DuckDB's Parquet files). cip lands a row repeated within a file once.
READ=$("$PY" -c "
import json
s = json.load(open('$WORK/cip.time.out'))
print(sum(e['read'] for e in s['entities'].values()))")
LANDED=$("$PY" -c "
import json
s = json.load(open('$WORK/cip.time.out'))
print(sum(e['landed'] for e in s['entities'].values()))")
REJECTED=$("$PY" -c "
import json
s = json.load(open('$WORK/cip.time.out'))
print(sum(e['rejected'] for e in s['entities'].values()))")
DUCK_ROWS=$("$PY" -c "import duckdb; print(duckdb.sql(\"select count(*) from read_parquet('$WORK/duck/*.parquet', union_by_name = true)\").fetchall()[0][0])")

CIP_S=$(median "${CIP_TIMES[@]}")
DUCK_S=$(median "${DUCK_TIMES[@]}")
"$PY" - <<PY
rows, cip_s, duck_s = $ROWS, $CIP_S, $DUCK_S
print(f"{'tool':<8} {'rows':>12} {'median s':>9} {'rows/s':>12} {'peak MiB':>9}   (median of $RUNS runs)")
print(f"{'cip':<8} {$LANDED:>12,} {cip_s:9.2f} {rows / cip_s:12,.0f} {$CIP_PEAK / 1024:9.0f}   ({$REJECTED} rejected)")
print(f"{'duckdb':<8} {$DUCK_ROWS:>12,} {duck_s:9.2f} {rows / duck_s:12,.0f} {$DUCK_PEAK / 1024:9.0f}")
print(f"ratio cip/duckdb rows/s: {duck_s / cip_s:.2f}x (target >= 1.0x)")
PY
if [ "$READ" != "$ROWS" ] || [ "$REJECTED" != 0 ] || [ "$DUCK_ROWS" != "$ROWS" ]; then
  echo "FAIL: rows differ from the landing's $ROWS (cip read $READ, rejected $REJECTED; duckdb $DUCK_ROWS)" >&2
  exit 1
fi
