#!/usr/bin/env bash
# Model speed: `cip train` (features with polars + linfa fit + evaluation, and
# the forecaster's fit + backtest) and `cip score` on a generated book of
# about 1 M policy terms, with a reference run in the same script:
# scikit-learn's LogisticRegression (lbfgs) and HistGradientBoostingClassifier
# fitted on exactly the features cip exported, and their predict_proba rate.
#
#   benches/models_speed.sh [POLICIES]      (default 1000000)
#
# Targets (issue 4): renewal training on 1 M terms ≤ 60 s on 2 cores;
# scoring ≥ 100 000 policies/s. scikit-learn comes from PyPI into a throwaway
# venv under the bench work dir.
set -euo pipefail
cd "$(dirname "$0")/.."
POLICIES="${1:-1000000}"
WORK="${BENCH_DIR:-${TMPDIR:-/tmp}/cip-bench-models}"
export CARGO_TARGET_DIR="${CARGO_TARGET_DIR:-$HOME/.cache/cip-target}"

cargo build --release --quiet
CIP="$CARGO_TARGET_DIR/release/cip"
mkdir -p "$WORK"
if [ ! -f "$WORK/ingested-delta-$POLICIES" ]; then
  rm -rf "$WORK/landing" "$WORK/truth" "$WORK/lake"
  "$CIP" generate --out "$WORK/landing" --truth "$WORK/truth" --policies "$POLICIES" --seed 42 --bad-row-rate 0
  "$CIP" ingest --landing "$WORK/landing" --lake "$WORK/lake" --json > "$WORK/ingest.json"
  touch "$WORK/ingested-delta-$POLICIES"
fi
if [ ! -x "$WORK/venv/bin/python" ]; then
  python3 -m venv "$WORK/venv"
  "$WORK/venv/bin/pip" install --quiet scikit-learn pandas
fi

rm -rf "$WORK/features"
"$CIP" train --lake "$WORK/lake" --export-features "$WORK/features" --json > "$WORK/train.json"
"$CIP" score --lake "$WORK/lake" --json > "$WORK/score.json"

"$WORK/venv/bin/python" - "$WORK" <<'PY'
import json, sys, time
import pandas as pd
from sklearn.ensemble import HistGradientBoostingClassifier
from sklearn.linear_model import LogisticRegression
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import StandardScaler

work = sys.argv[1]
train = json.load(open(f"{work}/train.json"))
score = json.load(open(f"{work}/score.json"))
t = train["timings_ms"]
renewal_s = (t["renewal_features"] + t["renewal_fit_and_evaluate"]) / 1000
print(f"cip train: {train['renewal_examples']:,} renewal examples (terms with a known outcome)")
print(f"  renewal features (polars)        {t['renewal_features'] / 1000:7.2f} s")
print(f"  renewal fit + calibrate + eval    {t['renewal_fit_and_evaluate'] / 1000:7.2f} s")
print(f"  renewal total                     {renewal_s:7.2f} s   (target ≤ 60 s)")
print(f"  forecast fit + backtest           {t['forecast_fit_and_backtest'] / 1000:7.2f} s")
print(f"  whole command (incl. lake reads)  {t['total'] / 1000:7.2f} s")
print(f"cip score: {score['policies_scored']:,} policies in force; model {score['scoring_rate']:,.0f}/s, "
      f"with features {score['scoring_rate_with_features']:,.0f}/s (target ≥ 100 000/s)")

tr = pd.read_csv(f"{work}/features/train.csv")
te = pd.read_csv(f"{work}/features/test.csv")
y = tr.pop("label").astype(bool)
te.pop("label")
X, Xt = tr.select_dtypes("number"), te.select_dtypes("number")
for name, model in [
    ("LogisticRegression (lbfgs, scaled)", make_pipeline(StandardScaler(), LogisticRegression(max_iter=200))),
    ("HistGradientBoostingClassifier", HistGradientBoostingClassifier(random_state=0)),
]:
    t0 = time.perf_counter(); model.fit(X, y); fit = time.perf_counter() - t0
    t0 = time.perf_counter(); model.predict_proba(Xt); pred = time.perf_counter() - t0
    print(f"scikit-learn {name}: fit {fit:.2f} s on {len(X):,} rows; predict_proba {len(Xt) / pred:,.0f}/s")
    print(f"  ratio cip renewal fit+eval / this fit: {t['renewal_fit_and_evaluate'] / 1000 / fit:.2f}")
PY
