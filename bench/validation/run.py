#!/usr/bin/env python3
"""A validation of a 100k-row test set with 10 slices and 1,000 bootstrap resamples
(the issue's target: < 10 s), side by side with fairlearn's MetricFrame (n_boot=1000),
the peer that computes per-group metrics with bootstrap intervals.

The data: 100,000 rows, eight numeric features, a `segment` column with ten values and
a binary label; a scikit-learn pipeline (scaler + one-hot + logistic regression) saved
with mlflow. Both sides compute ROC AUC overall and per segment, each with a 95%
percentile bootstrap interval over 1,000 resamples, and recall per segment.

- sextant: `sextant validate --model DIR --spec spec.yaml --format json` (release
  build), wall time of the whole command: reading the CSV, loading the model,
  predicting once, the metrics, slices and resamples.
- fairlearn 0.15: predict_proba once (timed apart), then
  `MetricFrame(metrics={"roc_auc": roc_auc_score}, y_pred=scores, sensitive_features=segment,
  n_boot=1000, ci_quantiles=[0.025, 0.975])` and the same for recall on labels.

    cargo build --release -p sextant-cli
    ~/.cache/sextant/venv-e2e/bin/python bench/validation/run.py --rounds 3 --peer-rounds 1

Writes bench/results/validation-<time>.json.
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import mlflow
import numpy as np
import pandas as pd
from sklearn.compose import ColumnTransformer
from sklearn.linear_model import LogisticRegression
from sklearn.metrics import recall_score, roc_auc_score
from sklearn.pipeline import Pipeline
from sklearn.preprocessing import OneHotEncoder, StandardScaler

REPO = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(REPO / "bench"))
from release_build import TARGET  # noqa: E402  ($CARGO_TARGET_DIR, else target/ or ~/.cache/sextant/target)
NUMERIC = [f"x{i}" for i in range(8)]

SPEC = """
task: {type: binary_classification, label: y}
datasets: {test: {uri: test.csv}}
defaults: {bootstrap: {resamples: 1000, seed: 1}}
tests:
  - {id: auc, kind: metric, dataset: test, metric: roc_auc, min: {value: 0.7, significance: bootstrap}}
  - id: auc_by_segment
    kind: slice_metric
    dataset: test
    metric: roc_auc
    slices: [{by: segment}]
    min: {value: 0.7, significance: bootstrap}
  - {id: recall_by_segment, kind: slice_metric, dataset: test, metric: recall, slices: [{by: segment}], max_gap_to_overall: 0.2}
"""


def make_data(rows: int, seed: int) -> pd.DataFrame:
    rng = np.random.default_rng(seed)
    frame = pd.DataFrame(rng.normal(size=(rows, len(NUMERIC))), columns=NUMERIC)
    frame["segment"] = rng.choice([f"s{i}" for i in range(10)], size=rows)
    logit = frame[NUMERIC].to_numpy() @ np.linspace(1.0, -0.6, len(NUMERIC)) + frame["segment"].str[1:].astype(int) * 0.05
    frame["y"] = (rng.random(rows) < 1 / (1 + np.exp(-logit))).astype(int)
    return frame


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--rows", type=int, default=100_000)
    parser.add_argument("--rounds", type=int, default=3, help="sextant runs (median quoted)")
    parser.add_argument("--peer-rounds", type=int, default=1, help="fairlearn runs (about 6 minutes each here)")
    args = parser.parse_args()
    binary = TARGET / "release" / "sextant"
    if not binary.exists():
        sys.exit(f"{binary} is missing: cargo build --release -p sextant-cli")
    work = Path(tempfile.mkdtemp(prefix="bench-validation-"))
    train, test = make_data(20_000, 1), make_data(args.rows, 2)
    test.to_csv(work / "test.csv", index=False)
    (work / "spec.yaml").write_text(SPEC)
    features = NUMERIC + ["segment"]
    model = Pipeline([
        ("encode", ColumnTransformer([("n", StandardScaler(), NUMERIC), ("c", OneHotEncoder(), ["segment"])])),
        ("model", LogisticRegression(max_iter=300)),
    ]).fit(train[features], train["y"])
    mlflow.sklearn.save_model(model, str(work / "model"), input_example=train[features].head(3), serialization_format="cloudpickle")

    env = dict(os.environ, SEXTANT_SERVER="http://127.0.0.1:9")
    sextant_times, fairlearn_times, predict_times = [], [], []
    report = None
    for round_ in range(max(args.rounds, args.peer_rounds)):
        if round_ >= args.rounds:
            break
        started = time.perf_counter()
        done = subprocess.run([str(binary), "validate", "--model", str(work / "model"), "--spec", str(work / "spec.yaml"), "--format", "json"],
                              capture_output=True, text=True, env=env)
        sextant_times.append(time.perf_counter() - started)
        if done.returncode not in (0, 1):
            sys.exit(done.stderr)
        report = json.loads(done.stdout)
        if round_ >= args.peer_rounds:
            continue

        from fairlearn.metrics import MetricFrame

        started = time.perf_counter()
        scores = model.predict_proba(test[features])[:, 1]
        labels = (scores >= 0.5).astype(int)
        predicted = time.perf_counter()
        auc = MetricFrame(metrics={"roc_auc": roc_auc_score}, y_true=test["y"], y_pred=scores, sensitive_features=test["segment"],
                          n_boot=1000, ci_quantiles=[0.025, 0.975], random_state=1)
        recall = MetricFrame(metrics={"recall": recall_score}, y_true=test["y"], y_pred=labels, sensitive_features=test["segment"])
        _ = (auc.by_group_ci, auc.overall_ci, recall.difference())
        fairlearn_times.append(time.perf_counter() - predicted)
        predict_times.append(predicted - started)

    # The two agree on the point values.
    slices = {a["id"]: a["value"] for t in report["tests"] for a in t["assertions"] if a["id"].startswith("auc_by_segment[")}
    worst = max(abs(slices[f"auc_by_segment[segment=s{i}]/min"] - auc.by_group.loc[f"s{i}", "roc_auc"]) for i in range(10))
    result = {
        "rows": args.rows,
        "rounds": args.rounds,
        "sextant_validate_s": sextant_times,
        "fairlearn_metricframe_s": fairlearn_times,
        "sklearn_predict_s": predict_times,
        "median_sextant_s": statistics.median(sextant_times),
        "median_fairlearn_s": statistics.median(fairlearn_times),
        "ratio": statistics.median(fairlearn_times) / statistics.median(sextant_times),
        "max_abs_difference_of_slice_auc": worst,
    }
    out = REPO / "bench" / "results" / f"validation-{dt.datetime.now():%Y%m%d-%H%M%S}.json"
    out.parent.mkdir(exist_ok=True)
    out.write_text(json.dumps(result, indent=1))
    print(json.dumps(result, indent=1))


if __name__ == "__main__":
    main()
