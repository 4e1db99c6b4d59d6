"""Data sets and Evidently's verdicts on them, for `sextant drift --methods evidently`.

Usage: python evidently_golden.py OUT_DIR

Each case is a directory with `reference.<ext>`, `current.<ext>` and `evidently.json`:
Evidently 0.7's `Report([DataDriftPreset()])` run on the files *as pandas reads them*
(so column types are inferred from what a user would load), with the drift score,
method, threshold and verdict of every column and the dataset's verdict.

The data covers every default test: K-S (small reference, exact and asymptotic
p-values), normed Wasserstein, Jensen-Shannon on numbers and categories,
goodness-of-fit chi-square (including a category absent from the reference), the
two-proportion Z-test, integer columns typed as categorical, booleans, missing
values and infinities.
"""

import json
import sys
import warnings
from pathlib import Path

import numpy as np
import pandas as pd

warnings.filterwarnings("ignore")

from evidently import Report  # noqa: E402
from evidently.presets import DataDriftPreset  # noqa: E402


def make_table(rng: np.random.Generator, n: int, drifted: bool) -> pd.DataFrame:
    """A tabular data set with 30 columns; `drifted` shifts some of them."""
    s = 1.0 if drifted else 0.0
    columns = {}
    for i in range(12):
        # Undrifted normals with different scales and locations.
        columns[f"num_{i:02d}"] = rng.normal(loc=i, scale=1 + i / 4, size=n)
    columns["shift_small"] = rng.normal(0.05 * s, 1, n)
    columns["shift_large"] = rng.normal(0.3 * s, 1, n)
    columns["lognormal"] = rng.lognormal(0, 0.5 + 0.15 * s, n)
    columns["uniform"] = rng.uniform(0 + 0.1 * s, 1 + 0.1 * s, n)
    columns["exponential"] = rng.exponential(1 + 0.1 * s, n)
    mixture = rng.random(n) < (0.3 + 0.15 * s)
    columns["mixture"] = np.where(mixture, rng.normal(3, 0.5, n), rng.normal(0, 1, n))
    with_gaps = rng.normal(0.02 * s, 1, n)
    with_gaps[rng.random(n) < (0.01 + 0.04 * s)] = np.nan
    if drifted:
        with_gaps[:3] = np.inf
        with_gaps[3] = -np.inf
    columns["with_gaps"] = with_gaps
    # Few distinct numbers: chi-square (3-5 values) and Z (2 values) on small references,
    # Jensen-Shannon per value on large ones.
    columns["four_levels"] = rng.choice([0.0, 1.5, 3.0, 4.5], n, p=[0.4, 0.3, 0.2, 0.1] if not drifted else [0.3, 0.3, 0.25, 0.15])
    columns["binary_float"] = (rng.random(n) < (0.3 + 0.08 * s)).astype(float)
    # Integers: <= 10 distinct values are categorical, more are numerical.
    columns["int_levels"] = rng.integers(0, 7 + int(s), n)
    columns["int_counts"] = rng.poisson(20 + 2 * s, n)
    columns["flag"] = rng.random(n) < (0.5 + 0.1 * s)
    columns["cat_three"] = rng.choice(["a", "b", "c"], n, p=[0.5, 0.3, 0.2] if not drifted else [0.4, 0.3, 0.3])
    columns["cat_stable"] = rng.choice(["red", "green", "blue", "grey", "black"], n)
    new_level = ["p", "q", "r", "s"] if drifted else ["p", "q", "r"]
    weights = [0.4, 0.3, 0.27, 0.03] if drifted else [0.4, 0.31, 0.29]
    columns["cat_new_level"] = rng.choice(new_level, n, p=weights)
    columns["cat_two"] = rng.choice(["yes", "no"], n, p=[0.6, 0.4] if not drifted else [0.5, 0.5])
    levels = [f"level_{k:02d}" for k in range(12)]
    columns["cat_many"] = rng.choice(levels, n)
    return pd.DataFrame(columns)


def evidently_verdicts(reference: pd.DataFrame, current: pd.DataFrame) -> dict:
    report = Report([DataDriftPreset()], include_tests=True)
    snapshot = report.run(current_data=current, reference_data=reference).dict()
    columns = {}
    dataset = None
    metric_ids = {}
    for metric in snapshot["metrics"]:
        config = metric["config"]
        if config["type"].endswith("DriftedColumnsCount"):
            dataset = {"count": metric["value"]["count"], "share": metric["value"]["share"]}
        elif config["type"].endswith("ValueDrift"):
            columns[config["column"]] = {
                "method": config["method"],
                "threshold": config["threshold"],
                "score": metric["value"],
            }
            metric_ids[metric["id"]] = config["column"]
    for test in snapshot["tests"]:
        metric_id = test["metric_config"]["metric_id"]
        if metric_id in metric_ids:
            columns[metric_ids[metric_id]]["drifted"] = test["status"] == "FAIL"
        elif test["name"].startswith("Share of Drifted Columns"):
            dataset["drift"] = test["status"] == "FAIL"
    return {"columns": columns, "dataset": dataset}


def write_case(out: Path, name: str, reference: pd.DataFrame, current: pd.DataFrame, ext: str) -> None:
    case = out / name
    case.mkdir(parents=True, exist_ok=True)
    for side, frame in (("reference", reference), ("current", current)):
        path = case / f"{side}.{ext}"
        if ext == "parquet":
            frame.to_parquet(path, index=False)
        else:
            # Exact round-trip floats; NaN as an empty field, infinities as inf/-inf.
            frame.to_csv(path, index=False, float_format="%.17g")
    # Evidently sees the files as a user loads them.
    read = pd.read_parquet if ext == "parquet" else pd.read_csv
    loaded_reference = read(case / f"reference.{ext}")
    loaded_current = read(case / f"current.{ext}")
    golden = evidently_verdicts(loaded_reference, loaded_current)
    golden["rows"] = {"reference": len(loaded_reference), "current": len(loaded_current)}
    (case / "evidently.json").write_text(json.dumps(golden, indent=1, allow_nan=True))
    print(f"{name}: {golden['dataset']}", file=sys.stderr)


def main() -> None:
    out = Path(sys.argv[1])
    out.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(20261202)
    # Small reference: K-S (exact), chi-square, Z.
    write_case(out, "small", make_table(rng, 800, False), make_table(rng, 900, True), "parquet")
    # Large reference: normed Wasserstein and Jensen-Shannon.
    write_case(out, "large", make_table(rng, 5000, False), make_table(rng, 6000, True), "parquet")
    # Small reference, large current: K-S's asymptotic p-value (max(n) > 10000).
    write_case(out, "asymptotic", make_table(rng, 1000, False), make_table(rng, 12000, True), "parquet")
    # Undrifted, through CSV (pandas' CSV typing; empty fields are NaN).
    write_case(out, "stable_csv", make_table(rng, 3000, False), make_table(rng, 3000, False), "csv")
    # Tiny tables: exact K-S on a handful of rows, single-valued columns.
    tiny_reference = make_table(rng, 30, False)
    tiny_current = make_table(rng, 25, True)
    write_case(out, "tiny", tiny_reference, tiny_current, "parquet")


if __name__ == "__main__":
    main()
