#!/usr/bin/env python3
"""SHAP explanations: `sextant explain` against shap 0.51, same models, same rows, one run.

Models (make_classification(20000, 20 features, random_state=0), as the serving
benchmark and shared/reference/explain-validate.md):
  rf        RandomForestClassifier(n_estimators=100, max_depth=8, random_state=0)
  xgb       XGBClassifier(n_estimators=100, max_depth=6, random_state=0)
  logistic  LogisticRegression (for KernelSHAP)

Measurements, each round, medians over rounds:
  path-dependent TreeSHAP, --rows rows, one thread:
    shap     TreeExplainer(model).shap_values(X) in a warm process, process CPU time
             (for XGBoost shap calls XGBoost's own pred_contribs; nthread=1)
    sextant  `sextant explain --threads 1`: the explain phase it reports (model
             load and file reading excluded, as shap's is)
  interventional TreeSHAP, 100 background rows, --rows/10 rows, one thread
  path-dependent interaction values of the forest (shap_interaction_values), --kernel-rows
    rows, one thread
  KernelSHAP on the logistic regression, 100 background rows, 2·20+2048 = 2088
    coalitions per row, l1_reg=0, --kernel-rows rows, one thread; and the same on
    two threads (the machine; shap's KernelExplainer runs on one)

  endpoint  `POST /v2/models/rf/explain` with one row of the forest against a release
            `sextant server` (the forest logged and registered with the mlflow client and
            deployed), wrk with 8 connections for --endpoint-seconds: p50/p99 latency and
            requests/s (no peer serves explanations; the target is p99 < 10 ms)

Every sextant answer is compared with shap's (largest absolute difference), so a
fast wrong answer shows. Ratios are shap ÷ sextant (higher is better for Sextant).

    python3 bench/explain/run.py                      # 3 rounds
    python3 bench/explain/run.py --rounds 1 --rows 200 --kernel-rows 5   # smoke run

Needs the release binary (`cargo build --release -p sextant-cli`) and the e2e venv
(`~/.cache/sextant/venv-e2e`, tests/e2e/requirements.txt, which has shap); re-runs
itself inside it. Writes bench/results/explain-<time>.json.
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import os
import re
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
VENV = Path(os.environ.get("SEXTANT_VENV", Path.home() / ".cache/sextant/venv-e2e"))
sys.path.insert(0, str(REPO / "bench"))
from release_build import TARGET  # noqa: E402  ($CARGO_TARGET_DIR, else target/ or ~/.cache/sextant/target)

if Path(sys.prefix).resolve() != VENV.resolve():
    python = VENV / "bin" / "python"
    if not python.exists():
        sys.exit(f"{python} is missing: run scripts/test once, or create it from tests/e2e/requirements.txt")
    os.execv(str(python), [str(python), __file__, *sys.argv[1:]])

os.environ.setdefault("OMP_NUM_THREADS", "1")

import numpy as np  # noqa: E402
import pandas as pd  # noqa: E402
import shap  # noqa: E402
import mlflow  # noqa: E402
import xgboost as xgb  # noqa: E402
from sklearn.datasets import make_classification  # noqa: E402
from sklearn.ensemble import RandomForestClassifier  # noqa: E402
from sklearn.linear_model import LogisticRegression  # noqa: E402

REPORTED = re.compile(r"in ([0-9.]+) s \(([0-9.]+) ms per row")


def sextant_explain(binary, model_dir, rows_file, out, extra, threads=1, chunk_rows=100000):
    command = [str(binary), "explain", "--model", str(model_dir), "--input", str(rows_file),
               "--output", str(out), "--threads", str(threads), "--chunk-rows", str(chunk_rows), *extra]
    done = subprocess.run(command, capture_output=True, text=True)
    if done.returncode != 0:
        sys.exit(f"{' '.join(command)} failed:\n{done.stderr}")
    match = REPORTED.search(done.stderr)
    if not match:
        sys.exit(f"no timing in sextant's output:\n{done.stderr}")
    return float(match.group(1)), pd.read_parquet(out)


def values_of(frame, features, output=None):
    suffix = "" if output is None else f"[{output}]"
    return np.stack([frame[f"shap_{f}{suffix}"].to_numpy() for f in features], axis=1)


def cpu(fn):
    start = time.process_time()
    result = fn()
    return time.process_time() - start, result


def measure_endpoint(binary, model, frame, rows, seconds, work):
    """Latency of the explain endpoint under 8 concurrent connections (wrk)."""
    import shutil
    import socket

    wrk = shutil.which("wrk")
    if not wrk:
        sys.exit("wrk is not installed (Debian: apt-get install wrk)")
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    uri = f"http://127.0.0.1:{port}"
    log = open(work / "server.log", "wb")
    server = subprocess.Popen([str(binary), "server", "--port", str(port), "--data-dir", str(work / "data"),
                               "--explain-sample-rate", "0"], stdout=log, stderr=subprocess.STDOUT)
    try:
        for _ in range(200):
            try:
                if __import__("urllib.request").request.urlopen(f"{uri}/health", timeout=1).status == 200:
                    break
            except OSError:
                time.sleep(0.1)
        mlflow.set_tracking_uri(uri)
        mlflow.set_experiment("bench-explain")
        with mlflow.start_run():
            info = mlflow.sklearn.log_model(model, name="model", input_example=frame.head(3),
                                            serialization_format="cloudpickle")
        version = mlflow.register_model(info.model_uri, "rf").version
        subprocess.run([str(binary), "deployments", "create", "rf", "--model", f"rf/{version}"], check=True,
                       capture_output=True, env=dict(os.environ, SEXTANT_SERVER=uri))
        row = rows.iloc[:1]
        body = {"inputs": [{"name": c, "shape": [1], "datatype": "FP64", "data": [float(row[c].iloc[0])]}
                           for c in row.columns]}
        body_file = work / "explain.json"
        body_file.write_text(json.dumps(body))
        lua = REPO / "bench" / "serving" / "post.lua"
        # Warm up, then measure.
        env = dict(os.environ, BODY_FILE=str(body_file))
        subprocess.run([wrk, "-t2", "-c8", "-d2s", "-s", str(lua), f"{uri}/v2/models/rf/explain"],
                       env=env, capture_output=True, check=True)
        done = subprocess.run([wrk, "-t2", "-c8", f"-d{seconds}s", "--latency", "-s", str(lua),
                               f"{uri}/v2/models/rf/explain"], env=env, capture_output=True, text=True, check=True)
        text = done.stdout

        def latency(label):
            match = re.search(rf"^\s+{label}%\s+([0-9.]+)(us|ms|s)\b", text, re.M)
            value, unit = float(match.group(1)), match.group(2)
            return value / 1000 if unit == "us" else value * 1000 if unit == "s" else value

        non_2xx = re.search(r"Non-2xx or 3xx responses: (\d+)", text)
        if non_2xx:
            sys.exit(f"the explain endpoint answered errors:\n{text}")
        return {
            "p50_ms": latency("50"),
            "p99_ms": latency("99"),
            "requests_per_s": float(re.search(r"Requests/sec:\s+([0-9.]+)", text).group(1)),
            "wrk": text,
        }
    finally:
        server.terminate()
        server.wait(timeout=30)
        log.close()


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--rows", type=int, default=2000)
    parser.add_argument("--kernel-rows", type=int, default=20)
    parser.add_argument("--endpoint-seconds", type=int, default=15, help="0 skips the endpoint")
    args = parser.parse_args()
    binary = TARGET / "release" / "sextant"
    if not binary.exists():
        sys.exit(f"{binary} is missing: cargo build --release -p sextant-cli")

    x, y = make_classification(n_samples=20000, n_features=20, random_state=0)
    features = [f"f{i}" for i in range(20)]
    frame = pd.DataFrame(x, columns=features)
    rf = RandomForestClassifier(n_estimators=100, max_depth=8, random_state=0, n_jobs=1).fit(frame, y)
    booster = xgb.XGBClassifier(n_estimators=100, max_depth=6, random_state=0, n_jobs=1).fit(frame, y)
    logistic = LogisticRegression(max_iter=1000).fit(frame, y)

    work = Path(tempfile.mkdtemp(prefix="sextant-bench-explain-"))
    dirs = {}
    for name, model, flavor in [("rf", rf, mlflow.sklearn), ("xgb", booster, mlflow.xgboost), ("logistic", logistic, mlflow.sklearn)]:
        dirs[name] = work / name
        if flavor is mlflow.sklearn:
            flavor.save_model(model, str(dirs[name]), serialization_format="cloudpickle")
        else:
            flavor.save_model(model, str(dirs[name]))
    rows = frame.iloc[10000:10000 + args.rows].reset_index(drop=True)
    inter_rows = rows.iloc[: max(1, args.rows // 10)]
    kernel_rows = rows.iloc[: args.kernel_rows]
    background = frame.iloc[:100]
    files = {}
    for name, data in [("rows", rows), ("inter", inter_rows), ("kernel", kernel_rows), ("background", background)]:
        files[name] = work / f"{name}.parquet"
        data.to_parquet(files[name])

    cases = {
        "rf_path_dependent": dict(rows=len(rows)),
        "xgb_path_dependent": dict(rows=len(rows)),
        "rf_interventional": dict(rows=len(inter_rows)),
        "xgb_interventional": dict(rows=len(inter_rows)),
        "rf_interactions": dict(rows=len(kernel_rows)),
        "logistic_kernel": dict(rows=len(kernel_rows)),
        "logistic_kernel_2_threads": dict(rows=len(kernel_rows)),
    }
    for case in cases.values():
        case.update(shap_s=[], sextant_s=[], max_abs_diff=0.0)

    def record(case, shap_seconds, sextant_seconds, diff):
        c = cases[case]
        c["shap_s"].append(shap_seconds)
        c["sextant_s"].append(sextant_seconds)
        c["max_abs_diff"] = max(c["max_abs_diff"], float(diff))

    for round_index in range(args.rounds):
        print(f"round {round_index + 1}/{args.rounds}", file=sys.stderr)
        # Path-dependent TreeSHAP.
        seconds, expected = cpu(lambda: shap.TreeExplainer(rf).shap_values(rows, check_additivity=False))
        took, out = sextant_explain(binary, dirs["rf"], files["rows"], work / "out.parquet", ["--method", "tree_path_dependent"])
        record("rf_path_dependent", seconds, took, np.abs(values_of(out, features, 1) - expected[:, :, 1]).max())

        booster.get_booster().set_param({"nthread": 1})
        seconds, expected = cpu(lambda: shap.TreeExplainer(booster).shap_values(rows, check_additivity=False))
        took, out = sextant_explain(binary, dirs["xgb"], files["rows"], work / "out.parquet", ["--method", "tree_path_dependent"])
        record("xgb_path_dependent", seconds, took, np.abs(values_of(out, features) - expected).max())

        # Interventional TreeSHAP against 100 background rows.
        for name, model, output in [("rf", rf, 1), ("xgb", booster, None)]:
            explainer = shap.TreeExplainer(model, data=background, feature_perturbation="interventional")
            seconds, expected = cpu(lambda: explainer.shap_values(inter_rows, check_additivity=False))
            took, out = sextant_explain(binary, dirs[name], files["inter"], work / "out.parquet",
                                        ["--method", "tree_interventional", "--background", str(files["background"])])
            expected = expected[:, :, output] if output is not None else expected
            record(f"{name}_interventional", seconds, took, np.abs(values_of(out, features, output) - expected).max())

        # Path-dependent interaction values of the forest (as many rows as KernelSHAP).
        seconds, expected = cpu(lambda: shap.TreeExplainer(rf).shap_interaction_values(kernel_rows))
        took, out = sextant_explain(binary, dirs["rf"], files["kernel"], work / "out.parquet", ["--interactions"])
        got = np.stack([np.stack([out[f"shap_{a}*{b}[1]" if i <= j else f"shap_{b}*{a}[1]"].to_numpy()
                                  for j, b in enumerate(features)], axis=1)
                        for i, a in enumerate(features)], axis=1)
        record("rf_interactions", seconds, took, np.abs(got - expected[:, :, :, 1]).max())

        # KernelSHAP, shap's default number of coalitions, no l1 regularisation.
        kernel = shap.KernelExplainer(logistic.predict_proba, background)
        seconds, expected = cpu(lambda: kernel.shap_values(kernel_rows, nsamples=2 * 20 + 2048, l1_reg=0, silent=True))
        took, out = sextant_explain(binary, dirs["logistic"], files["kernel"], work / "out.parquet",
                                    ["--method", "kernel", "--background", str(files["background"]), "--samples", "2088"])
        expected = np.asarray(expected)
        expected = expected[:, :, 1] if expected.ndim == 3 else expected[1]
        # Sampled coalitions differ between the two samplers: the values agree to
        # the sampling noise, not to the last digit.
        record("logistic_kernel", seconds, took, np.abs(values_of(out, features, "1") - expected).max())
        # The same rows on both cores (shap's KernelExplainer has no threads).
        took, out = sextant_explain(binary, dirs["logistic"], files["kernel"], work / "out.parquet",
                                    ["--method", "kernel", "--background", str(files["background"]), "--samples", "2088"],
                                    threads=2)
        record("logistic_kernel_2_threads", seconds, took, np.abs(values_of(out, features, "1") - expected).max())

    endpoint = None
    if args.endpoint_seconds > 0:
        endpoint = measure_endpoint(binary, rf, frame, rows, args.endpoint_seconds, work)
        print(f"endpoint (1 row, 8 connections)  p50 {endpoint['p50_ms']:.2f} ms  p99 {endpoint['p99_ms']:.2f} ms  "
              f"{endpoint['requests_per_s']:.0f} req/s", file=sys.stderr)

    summary = {}
    for name, case in cases.items():
        shap_median = statistics.median(case["shap_s"])
        sextant_median = statistics.median(case["sextant_s"])
        summary[name] = {
            **case,
            "shap_ms_per_row": 1e3 * shap_median / case["rows"],
            "sextant_ms_per_row": 1e3 * sextant_median / case["rows"],
            "ratio": shap_median / sextant_median,
        }
        print(f"{name:22s} shap {summary[name]['shap_ms_per_row']:8.3f} ms/row  "
              f"sextant {summary[name]['sextant_ms_per_row']:8.3f} ms/row  "
              f"{summary[name]['ratio']:6.1f}x  max|diff| {case['max_abs_diff']:.2e}")
    out_file = REPO / "bench" / "results" / f"explain-{dt.datetime.now(dt.timezone.utc):%Y%m%d-%H%M%S}.json"
    out_file.write_text(json.dumps({"args": vars(args), "shap": shap.__version__, "cases": summary,
                                    "endpoint": endpoint}, indent=1))
    print(f"wrote {out_file}", file=sys.stderr)


if __name__ == "__main__":
    main()
