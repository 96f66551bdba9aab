#!/usr/bin/env bash
# Ingest throughput: cip's validated batch ingest against DuckDB's
# `COPY (SELECT * FROM read_csv(...)) TO 'x.parquet'` over the same
# commission CSV files, in one script, on this machine.
#
#   benches/ingest_vs_duckdb.sh [POLICIES]     (default 1200000 → ≈ 2 M+ commission rows)
#
# Prints rows/s, wall time and peak RSS of each, and the ratio cip / DuckDB.
# DuckDB comes from PyPI into a throwaway venv under the bench work dir.
set -euo pipefail
cd "$(dirname "$0")/.."
POLICIES="${1:-1200000}"
WORK="${BENCH_DIR:-${TMPDIR:-/tmp}/cip-bench-ingest}"
export CARGO_TARGET_DIR="${CARGO_TARGET_DIR:-$HOME/.cache/cip-target}"

cargo build --release --quiet
CIP="$CARGO_TARGET_DIR/release/cip"

mkdir -p "$WORK"
if [ ! -f "$WORK/generated-$POLICIES" ]; then
  rm -rf "$WORK/landing" "$WORK/truth"
  "$CIP" generate --out "$WORK/landing" --truth "$WORK/truth" --policies "$POLICIES" --seed 42 --bad-row-rate 0
  touch "$WORK/generated-$POLICIES"
fi
# The same files for both: a landing that holds only the commission CSVs.
rm -rf "$WORK/only-commissions" && mkdir -p "$WORK/only-commissions"
ln -s "$WORK/landing/commissions" "$WORK/only-commissions/commissions"
ROWS=$(cat "$WORK"/landing/commissions/*.csv | wc -l)
FILES=$(ls "$WORK"/landing/commissions/*.csv | wc -l)
ROWS=$((ROWS - FILES))   # minus one header per file
echo "commission rows: $ROWS in $FILES files"

if [ ! -x "$WORK/venv/bin/python" ]; then
  python3 -m venv "$WORK/venv"
  "$WORK/venv/bin/pip" install --quiet duckdb
fi

peak() { grep "Maximum resident" "$1" | awk '{print $6}'; }
timed() { # timed LOG cmd... → wall seconds on stdout
  local log=$1; shift
  local t0 t1
  t0=$(date +%s.%N)
  /usr/bin/time -v "$@" > /dev/null 2> "$log"
  t1=$(date +%s.%N)
  echo "$t1 - $t0" | bc -l
}
command -v /usr/bin/time >/dev/null || { apt-get install -y -qq time >/dev/null; }
command -v bc >/dev/null || { apt-get install -y -qq bc >/dev/null; }

rm -rf "$WORK/lake"
CIP_S=$(timed "$WORK/cip.time" "$CIP" ingest --landing "$WORK/only-commissions" --lake "$WORK/lake" --json)
LANDED=$("$WORK/venv/bin/python" -c "import json,glob; print(sum(json.load(open(f))['entities']['commissions']['landed'] for f in glob.glob('$WORK/lake/_runs/*.json')))")

rm -f "$WORK/duck.parquet"
cat > "$WORK/duck.py" <<PY
import duckdb
duckdb.sql("COPY (SELECT * FROM read_csv('$WORK/landing/commissions/*.csv')) TO '$WORK/duck.parquet' (FORMAT parquet)")
PY
DUCK_S=$(timed "$WORK/duck.time" "$WORK/venv/bin/python" "$WORK/duck.py")
DUCK_ROWS=$("$WORK/venv/bin/python" -c "import duckdb; print(duckdb.sql(\"select count(*) from '$WORK/duck.parquet'\").fetchall()[0][0])")

CIP_RPS=$(echo "$ROWS / $CIP_S" | bc -l)
DUCK_RPS=$(echo "$ROWS / $DUCK_S" | bc -l)
printf '%-8s %12s %10s %14s %12s\n' tool rows seconds rows/s peak_MiB
printf '%-8s %12d %10.2f %14.0f %12.0f\n' cip "$LANDED" "$CIP_S" "$CIP_RPS" "$(( $(peak "$WORK/cip.time") / 1024 ))"
printf '%-8s %12d %10.2f %14.0f %12.0f\n' duckdb "$DUCK_ROWS" "$DUCK_S" "$DUCK_RPS" "$(( $(peak "$WORK/duck.time") / 1024 ))"
printf 'ratio cip/duckdb rows/s: %.2fx\n' "$(echo "$CIP_RPS / $DUCK_RPS" | bc -l)"
