"""Golden values for sextant-stats' CBPE module (`src/cbpe.rs`): isotonic
calibration against scikit-learn, and confidence-based performance
estimation against NannyML's CBPE for binary classifiers.

Regenerate (from the repository root) with NannyML 0.13.1,
scikit-learn 1.9.1, scipy 1.17.1 (sklearn's isotonic fit runs scipy's
PAVA), numpy 2.4.6 and pandas 3.1.1 in a throwaway venv (NannyML also
needs statsmodels to import):

    python3.11 -m venv /tmp/venv-nannyml
    /tmp/venv-nannyml/bin/pip install nannyml==0.13.1 scikit-learn==1.9.1 \
        scipy==1.17.1 numpy==2.4.6 pandas==3.1.1 statsmodels
    /tmp/venv-nannyml/bin/python crates/sextant-stats/tests/golden/cbpe.py

Writes cbpe.json beside this file. Floats are written with repr
(round-trip exact); NaN as the string "nan"; NannyML's `None` thresholds
as null.

Scores are rounded to 10 decimals and checked to have no ties: NannyML
orders rows with numpy's unstable `argsort`, so tied scores would make
its ROC AUC estimate and AUROC sampling error depend on numpy's sort
internals.
"""

import json
import math
import os
import warnings

# NannyML reports usage to a web service unless told not to.
os.environ["NML_DISABLE_USAGE_LOGGING"] = "1"

import nannyml  # noqa: E402
import numpy as np  # noqa: E402
import pandas as pd  # noqa: E402
import scipy  # noqa: E402
import sklearn  # noqa: E402
from nannyml.calibration import (  # noqa: E402
    _calculate_expected_calibration_error,
    _get_bin_index_edges,
)
from sklearn.isotonic import IsotonicRegression  # noqa: E402

warnings.simplefilter("ignore")
# Seed of the CBPE data sets: with it NannyML calibrates the overconfident
# scores and leaves the calibrated ones alone, so both paths are covered.
SEED = 6


def enc(x):
    if x is None:
        return None
    x = float(x)
    if math.isnan(x):
        return "nan"
    if math.isinf(x):
        return "inf" if x > 0 else "-inf"
    return x


def floats(values):
    return [enc(v) for v in values]


# ---------------------------------------------------------------- isotonic
rng = np.random.default_rng(20260514)
isotonic = []


def isotonic_case(name, x, y):
    x, y = np.asarray(x, dtype=float), np.asarray(y, dtype=float)
    model = IsotonicRegression(out_of_bounds="clip", increasing=True).fit(x, y)
    lo, hi = x.min(), x.max()
    queries = np.concatenate([np.linspace(lo - 0.5, hi + 0.5, 41), x[:20],
                              model.X_thresholds_, [lo, hi]])
    isotonic.append({"name": name, "x": floats(x), "y": floats(y),
                     "x_thresholds": floats(model.X_thresholds_),
                     "y_thresholds": floats(model.y_thresholds_),
                     "queries": floats(queries), "predictions": floats(model.predict(queries))})


x = np.round(rng.random(200), 2)
isotonic_case("binary_ties", x, (rng.random(200) < x).astype(float))
x = rng.normal(0, 1, 150)
isotonic_case("continuous", x, x + rng.normal(0, 1, 150))
# x values closer than numpy's float64 resolution (1e-15) are one point.
base = np.array([0.1, 0.1 + 4e-16, 0.1 + 8e-16, 0.1 + 2e-15, 0.3, 0.3, 0.5, 0.5 + 1e-15, 0.7])
isotonic_case("near_duplicates", base, [1.0, 0.0, 1.0, 0.0, 0.0, 1.0, 0.0, 1.0, 1.0])
isotonic_case("decreasing", np.arange(12.0), 12.0 - np.arange(12.0) + rng.normal(0, 0.1, 12))
isotonic_case("constant_y", rng.random(20), np.ones(20))
isotonic_case("single_x", np.full(7, 0.25), [0.0, 1.0, 1.0, 0.0, 1.0, 1.0, 1.0])

# --------------------------------------------------------------------- ECE
rng = np.random.default_rng(20260515)
ece = []
for n in [250, 25, 15, 8]:
    proba = rng.random(n)
    y_true = (rng.random(n) < proba ** 1.5).astype(int)
    edges = _get_bin_index_edges(n, 10)
    ece.append({"y_true": [int(v) for v in y_true], "probabilities": floats(proba),
                "bins": len(edges),
                "ece": enc(_calculate_expected_calibration_error(y_true, proba, edges))})

# ------------------------------------------------------------------- CBPE
METRICS = ["roc_auc", "f1", "precision", "recall", "specificity", "accuracy", "confusion_matrix"]
# Each chunk stores, per metric column, these NannyML fields in this order.
CHUNK_FIELDS = ["value", "sampling_error", "realized", "lower_confidence_boundary",
                "upper_confidence_boundary", "alert"]
COLUMNS = ["roc_auc", "f1", "precision", "recall", "specificity", "accuracy",
           "true_positive", "true_negative", "false_positive", "false_negative"]


def sigmoid(z):
    return 1.0 / (1.0 + np.exp(-z))


def make(n, shift, kind):
    x = rng.normal(0, 1, n) + shift
    logit = 1.5 * x - 0.5
    y = (rng.random(n) < sigmoid(logit)).astype(int)
    if kind == "overconfident":
        score = sigmoid(2.5 * logit + rng.normal(0, 0.3, n))
    else:
        score = sigmoid(logit)
    score = np.round(score, 10)
    return pd.DataFrame({"score": score, "pred": (score >= 0.5).astype(int), "label": y})


def cbpe_case(name, reference, analysis, chunk_size):
    for frame in (reference, analysis):
        assert frame["score"].nunique() == len(frame), "tied scores"
    estimator = nannyml.CBPE(y_pred_proba="score", y_pred="pred", y_true="label",
                             problem_type="classification_binary", metrics=METRICS,
                             chunk_size=chunk_size)
    estimator.fit(reference)
    data = estimator.estimate(analysis).data
    first = data.iloc[0]
    thresholds = {c: [enc(first[(c, "lower_threshold")]), enc(first[(c, "upper_threshold")])]
                  for c in COLUMNS}
    chunks = []
    for _, row in data.iterrows():
        chunk = {"period": row[("chunk", "period")],
                 "start": int(row[("chunk", "start_index")]),
                 "end": int(row[("chunk", "end_index")])}
        for c in COLUMNS:
            chunk[c] = [enc(row[(c, k)]) for k in CHUNK_FIELDS[:-1]] + [bool(row[(c, "alert")])]
        chunks.append(chunk)
    return {"name": name, "chunk_size": chunk_size,
            "needs_calibration": bool(estimator.needs_calibration),
            "thresholds": thresholds, "chunks": chunks}


def frame_json(frame):
    # The predicted label is always `score >= 0.5`; the test recomputes it.
    return {"score": floats(frame["score"]), "label": [int(v) for v in frame["label"]]}


datasets = {}
cbpe = []
for i, kind in enumerate(["overconfident", "calibrated"]):
    rng = np.random.default_rng(SEED + i)
    reference = make(2000, 0.0, kind)
    analysis = pd.concat([make(1000, 0.0, kind), make(1000, 0.8, kind)], ignore_index=True)
    datasets[kind] = {"reference": frame_json(reference), "analysis": frame_json(analysis)}
    cbpe.append(dict(dataset=kind, reference_rows=2000,
                     **cbpe_case(kind, reference, analysis, 200)))
# NannyML's default chunker (10 chunks of n // 10 rows, remainder kept as an
# 11th chunk) on a reference that is not a multiple of 10.
reference = pd.DataFrame(datasets["overconfident"]["reference"])[:1995]
analysis = pd.DataFrame(datasets["overconfident"]["analysis"])
reference["pred"] = (reference["score"] >= 0.5).astype(int)
analysis["pred"] = (analysis["score"] >= 0.5).astype(int)
cbpe.append(dict(dataset="overconfident", reference_rows=1995,
                 **cbpe_case("default_chunker", reference, analysis, None)))

out = {
    "nannyml": nannyml.__version__,
    "sklearn": sklearn.__version__,
    "scipy": scipy.__version__,
    "numpy": np.__version__,
    "pandas": pd.__version__,
    "chunk_fields": CHUNK_FIELDS,
    "isotonic": isotonic,
    "ece": ece,
    "datasets": datasets,
    "cbpe": cbpe,
}
path = os.path.join(os.path.dirname(os.path.abspath(__file__)), "cbpe.json")
with open(path, "w") as f:
    json.dump(out, f, separators=(",", ":"))
    f.write("\n")
for case in cbpe:
    print(case["name"], "needs_calibration:", case["needs_calibration"], "chunks:", len(case["chunks"]))
print(path, os.path.getsize(path), "bytes")
