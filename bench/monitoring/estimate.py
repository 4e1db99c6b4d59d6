#!/usr/bin/env python3
"""Performance estimation without labels: `sextant estimate` against NannyML 0.13.1.

Same data, same run, one machine. For each size N (reference = analysis = N rows,
10 numeric features, chunks of N/10 rows, seed 7):

  dle   a regressor whose error grows with |x0| and x9; the analysis moves outwards
        half-way through. NannyML: `DLE(metrics=["mae", "mse", "mape"]).fit(reference)`
        then `.estimate(analysis)` (LightGBM nannies). Sextant: `sextant estimate
        ref.parquet an.parquet --target y --prediction y_hat` (its own boosted trees).
  cbpe  a binary classifier's calibrated scores; the analysis grows unsure half-way.
        NannyML: `CBPE(metrics=[roc_auc, f1, precision, recall, specificity, accuracy])`.
        Sextant: `sextant estimate … --target y --score p`.

NannyML is timed in a fresh Python process around fit + estimate alone (files read
beforehand): wall and CPU (process_time). Sextant is timed as a whole process, reading
the files included: wall and CPU (user + system) from GNU time. Each pair runs
`--rounds` times, alternating; medians are reported, with the ratio NannyML ÷ Sextant.
Estimates are compared chunk by chunk: the largest |Sextant − NannyML| in units of
NannyML's sampling error.

    python3 bench/monitoring/estimate.py                      # 10k and 100k rows
    python3 bench/monitoring/estimate.py --rows 5000 --rounds 1

Needs the release binary (`cargo build --release -p sextant-cli`) and a venv with
nannyml==0.13.1, lightgbm, scikit-learn, pandas and pyarrow (SEXTANT_NANNYML_VENV,
default ~/.cache/sextant/venv-nannyml; created when missing). Writes
bench/results/estimate-<time>.json.
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
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
VENV = Path(os.environ.get("SEXTANT_NANNYML_VENV", Path.home() / ".cache/sextant/venv-nannyml"))
sys.path.insert(0, str(REPO / "bench"))
from release_build import TARGET  # noqa: E402  ($CARGO_TARGET_DIR, else target/ or ~/.cache/sextant/target)
SEXTANT = Path(os.environ.get("SEXTANT_BIN", TARGET / "release" / "sextant"))
PACKAGES = ["nannyml==0.13.1", "lightgbm==4.5.0", "scikit-learn==1.9.1", "scipy==1.17.1",
            "numpy==2.4.6", "pandas==3.1.1", "pyarrow", "statsmodels"]


def log(message: str) -> None:
    print(f"[estimate-bench] {message}", file=sys.stderr, flush=True)


def ensure_venv() -> None:
    if Path(sys.prefix).resolve() == VENV.resolve():
        return
    python = VENV / "bin" / "python"
    if not python.exists():
        log(f"creating {VENV}")
        subprocess.run([sys.executable, "-m", "venv", str(VENV)], check=True)
        subprocess.run([str(python), "-m", "pip", "install", "-q", *PACKAGES], check=True)
    os.execv(str(python), [str(python), __file__, *sys.argv[1:]])


def make_data(rows: int, directory: Path) -> None:
    import numpy as np
    import pandas as pd

    rng = np.random.default_rng(7)

    def regression(n: int, shift: float) -> pd.DataFrame:
        x = rng.normal(0.0, 1.0, (n, 10))
        x[:, 0] += shift
        y_hat = 5.0 + x @ np.linspace(1.0, 0.1, 10)
        spread = 0.3 + 0.6 * np.abs(x[:, 0]) + 0.4 * (x[:, 9] > 1.0)
        frame = pd.DataFrame(x, columns=[f"x{k}" for k in range(10)])
        frame["y_hat"] = y_hat
        frame["y"] = y_hat + rng.normal(0.0, 1.0, n) * spread
        return frame

    def classification(n: int, unsure: bool) -> pd.DataFrame:
        u = rng.random(n)
        p = 0.3 + 0.4 * u if unsure else u ** 3
        return pd.DataFrame({"p": p, "y": (rng.random(n) < p).astype(int), "x0": rng.normal(size=n)})

    half = rows // 2
    regression(rows, 0.0).to_parquet(directory / "dle-reference.parquet", index=False)
    pd.concat([regression(half, 0.0), regression(rows - half, 1.0)]).drop(columns=["y"]).to_parquet(
        directory / "dle-analysis.parquet", index=False)
    classification(rows, False).to_parquet(directory / "cbpe-reference.parquet", index=False)
    pd.concat([classification(half, False), classification(rows - half, True)]).drop(columns=["y"]).to_parquet(
        directory / "cbpe-analysis.parquet", index=False)


NANNYML = r"""
import json, os, sys, time, warnings
os.environ["NML_DISABLE_USAGE_LOGGING"] = "1"
warnings.simplefilter("ignore")
import nannyml, pandas as pd
method, directory, chunk = sys.argv[1], sys.argv[2], int(sys.argv[3])
reference = pd.read_parquet(f"{directory}/{method}-reference.parquet")
analysis = pd.read_parquet(f"{directory}/{method}-analysis.parquet")
if method == "dle":
    metrics = ["mae", "mse", "mape"]
    estimator = nannyml.DLE(feature_column_names=[f"x{k}" for k in range(10)], y_pred="y_hat", y_true="y",
                            metrics=metrics, chunk_size=chunk)
else:
    metrics = ["roc_auc", "f1", "precision", "recall", "specificity", "accuracy"]
    reference["y_pred"] = (reference["p"] >= 0.5).astype(int)
    analysis["y_pred"] = (analysis["p"] >= 0.5).astype(int)
    estimator = nannyml.CBPE(y_pred_proba="p", y_pred="y_pred", y_true="y", metrics=metrics,
                             problem_type="classification_binary", chunk_size=chunk)
wall, cpu = time.perf_counter(), time.process_time()
estimator.fit(reference)
result = estimator.estimate(analysis).to_df()
wall, cpu = time.perf_counter() - wall, time.process_time() - cpu
result = result[result[("chunk", "period")] == "analysis"]
values = {m: [[float(v), float(e)] for v, e in zip(result[(m, "value")], result[(m, "sampling_error")])] for m in metrics}
print(json.dumps({"wall": wall, "cpu": cpu, "values": values}))
"""


def run_nannyml(method: str, directory: Path, chunk: int) -> dict:
    out = subprocess.run([sys.executable, "-c", NANNYML, method, str(directory), str(chunk)],
                         check=True, capture_output=True, text=True)
    return json.loads(out.stdout.strip().splitlines()[-1])


def run_sextant(method: str, directory: Path, chunk: int) -> dict:
    args = [str(SEXTANT), "estimate", str(directory / f"{method}-reference.parquet"),
            str(directory / f"{method}-analysis.parquet"), "--target", "y", "--chunk-size", str(chunk)]
    args += ["--prediction", "y_hat"] if method == "dle" else ["--score", "p"]
    timing = directory / "time.txt"
    out = subprocess.run(["/usr/bin/time", "-f", "%e %U %S %M", "-o", str(timing), *args],
                         check=True, capture_output=True, text=True)
    wall, user, system, _ = timing.read_text().split()
    report = json.loads(out.stdout)
    values = {}
    for chunk_report in report["chunks"]:
        for name, metric in chunk_report["metrics"].items():
            values.setdefault(name, []).append(metric["value"])
    return {"wall": float(wall), "cpu": float(user) + float(system), "values": values}


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--rows", type=int, action="append")
    parser.add_argument("--rounds", type=int, default=3)
    args = parser.parse_args()
    ensure_venv()
    if not SEXTANT.exists():
        sys.exit(f"no release binary at {SEXTANT}: cargo build --release -p sextant-cli")
    results = []
    for rows in args.rows or [10_000, 100_000]:
        chunk = rows // 10
        with tempfile.TemporaryDirectory() as tmp:
            directory = Path(tmp)
            make_data(rows, directory)
            for method in ("dle", "cbpe"):
                timings = {"nannyml": [], "sextant": []}
                nannyml_values = sextant_values = None
                for _ in range(args.rounds):
                    theirs = run_nannyml(method, directory, chunk)
                    ours = run_sextant(method, directory, chunk)
                    timings["nannyml"].append(theirs)
                    timings["sextant"].append(ours)
                    nannyml_values, sextant_values = theirs["values"], ours["values"]
                worst = 0.0
                for metric, pairs in nannyml_values.items():
                    for (value, error), mine in zip(pairs, sextant_values[metric]):
                        if error and error > 0 and mine is not None:
                            worst = max(worst, abs(mine - value) / error)
                entry = {"rows": rows, "method": method, "chunk": chunk,
                         "max_difference_in_sampling_errors": worst}
                for tool, runs in timings.items():
                    entry[f"{tool}_wall_s"] = statistics.median(r["wall"] for r in runs)
                    entry[f"{tool}_cpu_s"] = statistics.median(r["cpu"] for r in runs)
                entry["wall_ratio"] = entry["nannyml_wall_s"] / entry["sextant_wall_s"]
                entry["cpu_ratio"] = entry["nannyml_cpu_s"] / entry["sextant_cpu_s"]
                log(json.dumps(entry))
                results.append(entry)
    out = REPO / "bench/results" / f"estimate-{dt.datetime.now().strftime('%Y%m%dT%H%M%S')}.json"
    out.write_text(json.dumps({"command": " ".join(sys.argv), "results": results}, indent=2))
    print(json.dumps(results, indent=2))


if __name__ == "__main__":
    main()
