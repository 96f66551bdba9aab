"""Compare cip's renewal model with scikit-learn's HistGradientBoostingClassifier
on the exact features and out-of-time split `cip train --export-features DIR`
wrote (DIR/train.csv, DIR/test.csv; `label` is 1 when the term was renewed).

Usage: python renewal_vs_sklearn.py DIR [METRICS_JSON]
METRICS_JSON: the renewal model's metrics.json (ours: model.roc_auc).
"""

import json
import sys
import time

import numpy as np
import pandas as pd
from sklearn.ensemble import HistGradientBoostingClassifier
from sklearn.metrics import brier_score_loss, log_loss, roc_auc_score


def main() -> None:
    d = sys.argv[1]
    train = pd.read_csv(f"{d}/train.csv")
    test = pd.read_csv(f"{d}/test.csv")
    features = [c for c in train.columns if c != "label"]
    t0 = time.time()
    model = HistGradientBoostingClassifier(max_iter=300, learning_rate=0.08, early_stopping=True,
                                           validation_fraction=0.1, random_state=0)
    model.fit(train[features], train["label"])
    p = model.predict_proba(test[features])[:, 1]
    y = test["label"].to_numpy()
    result = {
        "train_rows": len(train),
        "test_rows": len(test),
        "features": len(features),
        "sklearn_fit_seconds": round(time.time() - t0, 2),
        "sklearn_hgb_roc_auc": roc_auc_score(y, p),
        "sklearn_hgb_log_loss": log_loss(y, np.clip(p, 1e-15, 1 - 1e-15)),
        "sklearn_hgb_brier": brier_score_loss(y, p),
    }
    if len(sys.argv) > 2:
        with open(sys.argv[2]) as f:
            ours = json.load(f)["model"]
        result["cip_roc_auc"] = ours["roc_auc"]
        result["cip_log_loss"] = ours["log_loss"]
        result["cip_brier"] = ours["brier"]
        result["auc_difference_cip_minus_sklearn"] = ours["roc_auc"] - result["sklearn_hgb_roc_auc"]
        result["within_0.01"] = abs(result["auc_difference_cip_minus_sklearn"]) <= 0.01 or \
            result["auc_difference_cip_minus_sklearn"] > 0
    print(json.dumps(result, indent=2))


if __name__ == "__main__":
    main()
