#!/usr/bin/env bash
# The renewal model against scikit-learn's HistGradientBoostingClassifier on
# the same exported features, in one go:
#   benches/renewal_vs_sklearn.sh [WORK_DIR] [POLICIES]
# WORK_DIR (default /tmp/cip-renewal-bench) keeps the demo landing, lake,
# exported features and a throwaway venv; POLICIES defaults to 100000.
set -euo pipefail
cd "$(dirname "$0")/.."
source scripts/env.sh
WORK="${1:-/tmp/cip-renewal-bench}"
POLICIES="${2:-100000}"
mkdir -p "$WORK"

if [ ! -x "$WORK/venv/bin/python" ]; then
  python3 -m venv "$WORK/venv"
  "$WORK/venv/bin/pip" install --quiet scikit-learn pandas
fi

cargo build --release --bin cip
CIP="$CARGO_TARGET_DIR/release/cip"

if [ ! -d "$WORK/lake" ]; then
  "$CIP" generate --out "$WORK/landing" --policies "$POLICIES"
  "$CIP" ingest --landing "$WORK/landing" --lake "$WORK/lake"
fi

rm -rf "$WORK/features"
/usr/bin/time -v "$CIP" train --lake "$WORK/lake" --export-features "$WORK/features" 2> "$WORK/train.time" \
  || { cat "$WORK/train.time"; exit 1; }
grep -E "Elapsed|Maximum resident" "$WORK/train.time" || true

# The newest renewal model's metrics.json (versions sort by name).
METRICS="$(find "$WORK/lake/models/renewal" -name metrics.json | sort | tail -n 1)"
echo "metrics: $METRICS"
"$WORK/venv/bin/python" benches/renewal_vs_sklearn.py "$WORK/features" "$METRICS"
