"""Golden values for sextant-stats' DLE module (`src/dle.rs`): NannyML's
direct loss estimation (MAE, MSE, MAPE) for a regressor, per chunk, with
its sampling errors, and the realised values.

Regenerate (from the repository root) with NannyML 0.13.1 and LightGBM in
the venv `cbpe.py` describes (plus `pip install lightgbm`):

    /tmp/venv-nannyml/bin/python crates/sextant-stats/tests/golden/dle.py

Writes dle.json beside this file. Values are rounded to 6 decimals before
NannyML sees them, so the file holds exactly what it was fitted on.

The monitored model errs more for large |x0| and for category-like x2 = 1;
the analysis drifts towards those regions chunk by chunk, so the estimate
has to rise with the realised error. Sextant's nanny is its own boosted
trees with LightGBM's default capacity, not LightGBM, so the test bounds
the difference from NannyML's estimate instead of asking for equality.
RMSE is not taken from NannyML: 0.13.1's realised RMSE calls
scikit-learn's removed `squared=False` argument.
"""

import json
import os
import warnings

os.environ["NML_DISABLE_USAGE_LOGGING"] = "1"

import nannyml  # noqa: E402
import numpy as np  # noqa: E402
import pandas as pd  # noqa: E402

warnings.simplefilter("ignore")
rng = np.random.default_rng(20261202)
CHUNK = 500


def draw(n, shift):
    x0 = rng.normal(shift, 1.0, n)
    x1 = rng.uniform(-1, 1, n)
    x2 = (rng.random(n) < 0.2 + 0.3 * shift).astype(float)
    y_pred = 20.0 + 1.5 * x0 - x1
    noise = rng.normal(0, 1, n) * (0.3 + 0.5 * np.abs(x0) + 0.8 * x2)
    y_true = y_pred + noise
    frame = pd.DataFrame({"x0": x0, "x1": x1, "x2": x2, "y_pred": y_pred, "y_true": y_true}).round(6)
    # Positive targets: NannyML's MAPE sampling error divides by the signed target.
    assert (frame["y_true"] > 0).all()
    return frame


reference = draw(3000, 0.0)
analysis = pd.concat([draw(CHUNK, s) for s in (0.0, 0.0, 0.5, 1.0)], ignore_index=True)

estimator = nannyml.DLE(
    feature_column_names=["x0", "x1", "x2"],
    y_pred="y_pred",
    y_true="y_true",
    metrics=["mae", "mse", "mape"],
    chunk_size=CHUNK,
)
estimator.fit(reference)
results = estimator.estimate(analysis).to_df()
# The result also holds the reference's chunks; keep the analysis ones.
results = results[results[("chunk", "period")] == "analysis"].reset_index(drop=True)
assert len(results) == len(analysis) // CHUNK, results

chunks = []
for k in range(len(analysis) // CHUNK):
    chunk = analysis.iloc[k * CHUNK:(k + 1) * CHUNK]
    entry = {"start": k * CHUNK, "end": (k + 1) * CHUNK}
    err = chunk["y_true"] - chunk["y_pred"]
    entry["realised"] = {
        "mae": float(np.mean(np.abs(err))),
        "mse": float(np.mean(err ** 2)),
        "mape": float(np.mean(np.abs(err) / np.abs(chunk["y_true"]))),
    }
    entry["nannyml"] = {}
    for metric in ("mae", "mse", "mape"):
        entry["nannyml"][metric] = {
            "value": float(results[(metric, "value")].iloc[k]),
            "sampling_error": float(results[(metric, "sampling_error")].iloc[k]),
        }
    chunks.append(entry)


def columns(frame):
    return {name: [float(v) for v in frame[name]] for name in frame.columns}


out = {
    "versions": {"nannyml": nannyml.__version__},
    "reference": columns(reference),
    "analysis": columns(analysis),
    "chunks": chunks,
}
path = os.path.join(os.path.dirname(os.path.abspath(__file__)), "dle.json")
with open(path, "w") as f:
    json.dump(out, f)
print("wrote", path)
for c in chunks:
    print(c["realised"]["mae"], c["nannyml"]["mae"])
