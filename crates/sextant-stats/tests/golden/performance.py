"""Golden values for sextant-stats' realised-performance module
(`src/performance.rs`) from scikit-learn.

Regenerate (from the repository root) with scikit-learn 1.9.1 and numpy
2.4.6 in a throwaway venv:

    python3.11 -m venv /tmp/venv-sklearn
    /tmp/venv-sklearn/bin/pip install scikit-learn==1.9.1 numpy==2.4.6
    /tmp/venv-sklearn/bin/python crates/sextant-stats/tests/golden/performance.py

Writes performance.json beside this file. Floats are written with repr
(round-trip exact). Labels are 0-based class indices; probability
matrices are row-major lists of rows.
"""

import json
import os
import warnings

import numpy as np
import sklearn
from sklearn import metrics

warnings.simplefilter("ignore")
rng = np.random.default_rng(20260514)


def floats(a):
    return [float(v) for v in np.asarray(a, dtype=float).ravel()]


# ----------------------------------------------------------------- binary
binary = []
for name, n, flip in [("noisy", 300, 0.3), ("good", 500, 0.05), ("small", 7, 0.4)]:
    y_true = rng.random(n) < 0.4
    y_pred = np.where(rng.random(n) < flip, ~y_true, y_true)
    binary.append({"name": name, "y_true": [bool(v) for v in y_true],
                   "y_pred": [bool(v) for v in y_pred]})
# Zero divisions: nothing predicted positive, and no positives at all.
binary.append({"name": "no_predicted_positive", "y_true": [True, False, True, False],
               "y_pred": [False, False, False, False]})
binary.append({"name": "no_positive", "y_true": [False, False, False],
               "y_pred": [False, True, False]})
for case in binary:
    t, p = np.array(case["y_true"], dtype=int), np.array(case["y_pred"], dtype=int)
    tn, fp, fn, tp = metrics.confusion_matrix(t, p, labels=[0, 1]).ravel()
    case["counts"] = {"tp": int(tp), "fp": int(fp), "tn": int(tn), "fn": int(fn)}
    case["accuracy"] = float(metrics.accuracy_score(t, p))
    case["precision"] = float(metrics.precision_score(t, p, zero_division=0))
    case["recall"] = float(metrics.recall_score(t, p, zero_division=0))
    case["f1"] = float(metrics.f1_score(t, p, zero_division=0))
    # Specificity is the recall of the negative class.
    case["specificity"] = float(metrics.recall_score(t, p, pos_label=0, zero_division=0))

# ------------------------------------------------------------- multiclass
multiclass = []
for name, n, k, noise, absent in [("four", 400, 4, 0.35, None), ("seven", 1000, 7, 0.5, None),
                                  ("absent_class", 200, 5, 0.3, 3)]:
    y_true = rng.integers(0, k, n)
    y_pred = np.where(rng.random(n) < noise, rng.integers(0, k, n), y_true)
    if absent is not None:
        # Class `absent` occurs in neither: sklearn's labels=None skips it.
        y_true[y_true == absent] = 0
        y_pred[y_pred == absent] = 1
    case = {"name": name, "n_classes": k, "y_true": [int(v) for v in y_true],
            "y_pred": [int(v) for v in y_pred]}
    case["confusion_matrix"] = [int(v) for v in
                                metrics.confusion_matrix(y_true, y_pred, labels=list(range(k))).ravel()]
    case["accuracy"] = float(metrics.accuracy_score(y_true, y_pred))
    case["precision"] = float(metrics.precision_score(y_true, y_pred, average="macro", zero_division=0))
    case["recall"] = float(metrics.recall_score(y_true, y_pred, average="macro", zero_division=0))
    case["f1"] = float(metrics.f1_score(y_true, y_pred, average="macro", zero_division=0))
    multiclass.append(case)

# ----------------------------------------------------------------- ROC AUC
roc_auc = []
for name, n, decimals, shift in [("continuous", 600, None, 1.0), ("ties", 500, 1, 0.7),
                                  ("heavy_ties", 300, 0, 0.5), ("tiny", 5, None, 0.5),
                                  ("inverted", 200, 2, -1.0)]:
    y_true = rng.random(n) < 0.3
    y_true[0], y_true[1] = True, False
    scores = rng.normal(0, 1, n) + shift * y_true
    if decimals is not None:
        scores = np.round(scores, decimals)
    roc_auc.append({"name": name, "y_true": [bool(v) for v in y_true], "scores": floats(scores),
                    "auc": float(metrics.roc_auc_score(y_true, scores))})

ovr = []
for name, n, k in [("three", 300, 3), ("five", 300, 5)]:
    y_true = rng.integers(0, k, n)
    logits = rng.normal(0, 1, (n, k))
    logits[np.arange(n), y_true] += 1.2
    proba = np.exp(logits) / np.exp(logits).sum(axis=1, keepdims=True)
    ovr.append({"name": name, "n_classes": k, "y_true": [int(v) for v in y_true],
                "probabilities": floats(proba),
                "auc": float(metrics.roc_auc_score(y_true, proba, multi_class="ovr", average="macro"))})
# Two classes go through sklearn's binary path (column 1 only).
y_true = rng.integers(0, 2, 300)
p1 = np.clip(rng.random(300) * 0.6 + 0.4 * y_true, 0, 1)
proba = np.column_stack([1 - p1, p1])
ovr.append({"name": "two", "n_classes": 2, "y_true": [int(v) for v in y_true],
            "probabilities": floats(proba),
            "auc": float(metrics.roc_auc_score(y_true, proba[:, 1]))})

# ---------------------------------------------------------------- log loss
log_loss = []
for name, n, k in [("three", 200, 3), ("six", 250, 6)]:
    y_true = rng.integers(0, k, n)
    logits = rng.normal(0, 2, (n, k))
    proba = np.exp(logits) / np.exp(logits).sum(axis=1, keepdims=True)
    # Exact 0 and 1 entries exercise the clipping to [eps, 1 - eps].
    proba[0] = 0.0
    proba[0, y_true[0]] = 1.0
    proba[1] = 0.0
    proba[1, (y_true[1] + 1) % k] = 1.0
    log_loss.append({"name": name, "n_classes": k, "y_true": [int(v) for v in y_true],
                     "probabilities": floats(proba),
                     "loss": float(metrics.log_loss(y_true, proba, labels=list(range(k))))})
y_true = rng.random(500) < 0.35
p1 = rng.random(500)
p1[:4] = [0.0, 1.0, 0.0, 1.0]
y_true[:4] = [True, True, False, False]
log_loss_binary = {"y_true": [bool(v) for v in y_true], "p_positive": floats(p1),
                   "loss": float(metrics.log_loss(y_true, p1, labels=[False, True]))}

# -------------------------------------------------------------- regression
regression = []
for name, n in [("large", 1000), ("small", 6)]:
    y_true = rng.normal(10, 5, n)
    y_pred = y_true + rng.normal(0, 2, n)
    if n > 10:
        y_true[:3] = [0.0, 0.0, 1e-300]   # MAPE's max(|y|, eps) floor
    regression.append({"name": name, "y_true": floats(y_true), "y_pred": floats(y_pred),
                       "mae": float(metrics.mean_absolute_error(y_true, y_pred)),
                       "rmse": float(metrics.root_mean_squared_error(y_true, y_pred)),
                       "mape": float(metrics.mean_absolute_percentage_error(y_true, y_pred))})

out = {
    "sklearn": sklearn.__version__,
    "numpy": np.__version__,
    "binary": binary,
    "multiclass": multiclass,
    "roc_auc": roc_auc,
    "roc_auc_ovr": ovr,
    "log_loss": log_loss,
    "log_loss_binary": log_loss_binary,
    "regression": regression,
}
path = os.path.join(os.path.dirname(os.path.abspath(__file__)), "performance.json")
with open(path, "w") as f:
    json.dump(out, f, separators=(",", ":"))
    f.write("\n")
print(path, os.path.getsize(path), "bytes")
