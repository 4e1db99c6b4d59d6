#!/usr/bin/env python3
"""In-process engine benchmark: Sextant's native tree engine against the Python libraries.

No HTTP, no JSON: what one prediction costs inside the process. Two models:

  rf   RandomForestClassifier(n_estimators=100, max_depth=8, random_state=0) on
       make_classification(n_samples=20000, n_features=20, random_state=0),
       the model of run.py; saved as a scikit-learn pickle (model.pkl, as
       MLflow's cloudpickle format writes it) and as ONNX (skl2onnx, no zipmap)
  xgb  XGBClassifier(n_estimators=100, max_depth=8, random_state=0) on the same
       data, saved as XGBoost JSON

Sextant: `crates/sextant-serve/examples/engine_bench.rs`, built with
`cargo build --release -p sextant-serve --example engine_bench` and run on
each model file with the same rows (the first 10,000 rows of the data, as
little-endian f64): single-row `ModelRuntime::predict` latency over
--rust-calls calls after a warm-up, and batched throughput (1M rows in
1000-row calls) on 1 and 2 threads.

Python, in this process, on the same rows: scikit-learn `predict_proba`,
onnxruntime `InferenceSession.run` (intra_op_num_threads=1; 2 for the extra
2-thread batch line) and XGBoost `inplace_predict` (nthread 1; 2 likewise),
for single rows and 1000-row batches. Each engine's probabilities for the
first rows are checked against the library that trained the model.

    python3 bench/serving/engine.py            # writes bench/results/engine-<time>.json
    python3 bench/serving/engine.py --quick    # a short smoke run

Targets (issue 4, 100 trees of depth 8): ≤ 3 µs per single row; ≥ 1M rows/s
batched on 2 cores.
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import os
import pickle
import signal
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
import common  # noqa: E402
from common import REPO, TARGET, log  # noqa: E402

EXAMPLE = TARGET / "release" / "examples" / "engine_bench"
BATCH = 1000
N_ROWS = 10_000


def stats_ns(samples: list[int]) -> dict:
    ordered = sorted(samples)

    def pct(p: float) -> float:
        return ordered[round((len(ordered) - 1) * p / 100)]

    return {
        "calls": len(ordered),
        "median_ns": pct(50),
        "p90_ns": pct(90),
        "p99_ns": pct(99),
        "mean_ns": round(statistics.fmean(ordered)),
        "min_ns": ordered[0],
    }


def time_calls(fn, inputs: list, calls: int, warmup: int) -> dict:
    """Each call timed alone, inputs cycled; plus CPU time per call (process
    CPU, so a library's spinning worker threads show)."""
    for i in range(warmup):
        fn(inputs[i % len(inputs)])
    samples = []
    clock = time.perf_counter_ns
    cpu0, wall0 = time.process_time_ns(), clock()
    for i in range(calls):
        x = inputs[i % len(inputs)]
        t = clock()
        fn(x)
        samples.append(clock() - t)
    wall, cpu = clock() - wall0, time.process_time_ns() - cpu0
    result = stats_ns(samples)
    result["cpu_ns_per_call"] = round(cpu / calls)
    result["wall_s"] = round(wall / 1e9, 3)
    return result


def python_peers(args, X, clf, xgb_model, onnx_path: Path) -> dict:
    import numpy as np
    import onnxruntime as ort

    rows = X[:N_ROWS]
    singles = [rows[i:i + 1] for i in range(min(4096, len(rows)))]
    batches = [rows[i:i + BATCH] for i in range(0, len(rows) - BATCH + 1, BATCH)]
    singles32 = [r.astype(np.float32) for r in singles]
    batches32 = [b.astype(np.float32) for b in batches]
    out: dict = {}

    def run(key: str, fn, inputs, calls: int, warmup: int, rows_per_call: int) -> None:
        log(f"python: {key} ({calls} calls)")
        r = time_calls(fn, inputs, calls, warmup)
        r["rows_per_call"] = rows_per_call
        r["ns_per_row"] = r["median_ns"] / rows_per_call
        r["rows_per_s"] = round(rows_per_call * calls / r["wall_s"]) if r["wall_s"] else None
        out[key] = r

    if "rf" in args.models:
        run("sklearn_1row", clf.predict_proba, singles, args.sklearn_calls, 5, 1)
        run(f"sklearn_{BATCH}rows", clf.predict_proba, batches, max(args.sklearn_calls // 10, 5), 2, BATCH)
        for threads in (1, 2):
            options = ort.SessionOptions()
            options.intra_op_num_threads = threads
            options.inter_op_num_threads = 1
            session = ort.InferenceSession(str(onnx_path), options, providers=["CPUExecutionProvider"])
            name = session.get_inputs()[0].name
            outputs = ["probabilities"]
            fn = lambda x, s=session, n=name: s.run(outputs, {n: x})  # noqa: E731
            if threads == 1:
                run("onnxruntime_1row", fn, singles32, args.python_calls, 2000, 1)
            run(f"onnxruntime_{BATCH}rows_{threads}thread", fn, batches32, args.batch_calls, 5, BATCH)
    if "xgb" in args.models:
        booster = xgb_model.get_booster()
        for threads in (1, 2):
            booster.set_param({"nthread": threads})
            fn = lambda x, b=booster: b.inplace_predict(x)  # noqa: E731
            if threads == 1:
                run("xgboost_1row", fn, singles, args.xgb_calls, 500, 1)
            run(f"xgboost_{BATCH}rows_{threads}thread", fn, batches, args.batch_calls, 5, BATCH)
        booster.set_param({"nthread": 1})
    return out


def build_example() -> None:
    log("building the engine_bench example (release)")
    env = dict(os.environ, CARGO_TARGET_DIR=str(TARGET))
    subprocess.run(["cargo", "build", "--release", "-p", "sextant-serve", "--example", "engine_bench"],
                   cwd=REPO, check=True, env=env)


def run_example(args, model_path: Path, rows_path: Path) -> dict:
    cmd = [str(EXAMPLE), str(model_path), "--rows", str(rows_path), "--single-calls", str(args.rust_calls),
           "--warmup", str(args.rust_calls // 10), "--batch-rows", str(args.batch_rows), "--chunk", str(BATCH),
           "--repeat", str(args.repeat)]
    log(f"sextant: {' '.join(cmd)}")
    p = subprocess.run(cmd, capture_output=True, text=True, timeout=3600)
    if p.returncode != 0:
        return {"error": (p.stderr.strip() or p.stdout.strip())[-2000:], "command": " ".join(cmd)}
    result = json.loads(p.stdout)
    result["command"] = " ".join(cmd)
    return result


def max_diff(got, expected) -> float | None:
    import numpy as np

    if got is None:
        return None
    got = np.asarray(got, dtype=float)
    return float(np.max(np.abs(got - expected[: len(got)])))


def fmt_us(ns) -> str:
    return "n/a" if ns is None else f"{ns / 1000:,.2f}"


def fmt_rate(r) -> str:
    return "n/a" if r is None else f"{r:,.0f}"


def table(report: dict) -> str:
    rust, py = report["sextant"], report["python"]
    lines = [
        "| engine | model | 1 row: median µs | 1 row: p99 µs | CPU µs/call | batched rows/s, 1 thread | batched rows/s, 2 threads |",
        "|---|---|---:|---:|---:|---:|---:|",
    ]
    for key, label in (("rf", "RandomForest (sklearn pickle)"), ("xgb", "XGBoost (JSON)")):
        r = rust.get(key)
        if not r:
            continue
        if "error" in r:
            lines.append(f"| Sextant native | {label} | error: {r['error'][:120]} | | | | |")
            continue
        s, b = r["single_row"], r["batched"]["threads"]
        lines.append(
            f"| Sextant {r['engine']} | {label} | {fmt_us(s['median_ns'])} | {fmt_us(s['p99_ns'])} | | "
            f"{fmt_rate(b['1']['rows_per_s'])} | {fmt_rate(b['2']['rows_per_s'])} |")

    def row(label, model, single, batch1, batch2):
        s, b1, b2 = py.get(single), py.get(batch1), py.get(batch2)
        if not s:
            return
        lines.append(
            f"| {label} | {model} | {fmt_us(s['median_ns'])} | {fmt_us(s['p99_ns'])} | {fmt_us(s['cpu_ns_per_call'])} | "
            f"{fmt_rate(b1['rows_per_s']) if b1 else 'n/a'} | {fmt_rate(b2['rows_per_s']) if b2 else 'n/a'} |")

    row("scikit-learn predict_proba", "RandomForest", "sklearn_1row", f"sklearn_{BATCH}rows", None)
    row("onnxruntime run", "RandomForest (ONNX)", "onnxruntime_1row", f"onnxruntime_{BATCH}rows_1thread",
        f"onnxruntime_{BATCH}rows_2thread")
    row("xgboost inplace_predict", "XGBoost", "xgboost_1row", f"xgboost_{BATCH}rows_1thread",
        f"xgboost_{BATCH}rows_2thread")

    lines += ["", "| figure | value | target | met |", "|---|---:|---|---|"]
    for t in report["targets"]:
        met = "" if t["met"] is None else ("✔" if t["met"] else "✘")
        lines.append(f"| {t['figure']} | {t['value']} | {t['target']} | {met} |")
    return "\n".join(lines)


def targets(report: dict) -> list[dict]:
    rust, py = report["sextant"], report["python"]
    rows = []
    for key, label, peers in (
        ("rf", "RandomForest", (("sklearn_1row", "scikit-learn"), ("onnxruntime_1row", "onnxruntime"))),
        ("xgb", "XGBoost", (("xgboost_1row", "xgboost"),)),
    ):
        r = rust.get(key)
        if not r or "error" in r:
            continue
        single = r["single_row"]["median_ns"]
        two = r["batched"]["threads"]["2"]["rows_per_s"]
        rows.append({"figure": f"Sextant {label}: single row, median", "value": f"{single / 1000:.2f} µs",
                     "target": "≤ 3 µs", "met": single <= 3000})
        rows.append({"figure": f"Sextant {label}: batched, 2 threads", "value": f"{two:,.0f} rows/s",
                     "target": "≥ 1,000,000 rows/s", "met": two >= 1_000_000})
        for peer, name in peers:
            if peer in py:
                rows.append({"figure": f"{label} single row: {name} median ÷ Sextant median",
                             "value": f"{py[peer]['median_ns'] / single:,.0f}×", "target": "", "met": None})
        batch_peer = {"rf": f"onnxruntime_{BATCH}rows_1thread", "xgb": f"xgboost_{BATCH}rows_1thread"}[key]
        if batch_peer in py and py[batch_peer].get("rows_per_s"):
            one = r["batched"]["threads"]["1"]["rows_per_s"]
            rows.append({"figure": f"{label} batched 1 thread: Sextant rows/s ÷ {batch_peer.split('_')[0]} rows/s",
                         "value": f"{one / py[batch_peer]['rows_per_s']:.1f}×", "target": "", "met": None})
    return rows


def main() -> int:
    common.enter_venv(__file__)
    stamp = dt.datetime.now().strftime("%Y%m%d-%H%M%S")
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--quick", action="store_true", help="a smoke run: fewer calls, 1 batched repeat")
    parser.add_argument("--only", default="rf,xgb", help="models: rf, xgb (default both)")
    parser.add_argument("--rust-calls", type=int, default=200_000, help="timed single-row calls (default 200,000)")
    parser.add_argument("--batch-rows", type=int, default=1_000_000, help="rows per batched measurement")
    parser.add_argument("--repeat", type=int, default=5, help="batched measurements per thread count (median)")
    parser.add_argument("--python-calls", type=int, default=100_000, help="onnxruntime single-row calls")
    parser.add_argument("--xgb-calls", type=int, default=20_000, help="xgboost single-row calls")
    parser.add_argument("--sklearn-calls", type=int, default=500, help="scikit-learn single-row calls")
    parser.add_argument("--batch-calls", type=int, default=200, help="1000-row calls for onnxruntime and xgboost")
    parser.add_argument("--no-build", action="store_true", help="use the example binary as it is")
    parser.add_argument("--out", default=str(REPO / "bench" / "results" / f"engine-{stamp}.json"))
    args = parser.parse_args()
    if args.quick:
        args.rust_calls, args.batch_rows, args.repeat = 100_000, 200_000, 1
        args.python_calls, args.xgb_calls, args.sklearn_calls, args.batch_calls = 10_000, 2_000, 50, 20
    args.models = [m.strip() for m in args.only.split(",") if m.strip()]
    if not set(args.models) <= {"rf", "xgb"} or not args.models:
        parser.error("--only takes rf, xgb")

    def _terminate(signum, _frame):
        raise SystemExit(128 + signum)

    signal.signal(signal.SIGTERM, _terminate)
    signal.signal(signal.SIGINT, _terminate)

    if not args.no_build:
        build_example()
    if not EXAMPLE.exists():
        sys.exit(f"no example binary at {EXAMPLE}")
    locks = common.take_locks("engine benchmark")  # noqa: F841 - held until exit

    import cloudpickle
    import numpy as np
    import xgboost

    report: dict = {"meta": common.machine_meta()}
    report["meta"].update({
        "example_binary": common.binary_id(EXAMPLE),
        "packages": common.package_versions(["scikit-learn", "onnxruntime", "skl2onnx", "xgboost", "numpy"]),
        "settings": {k: getattr(args, k) for k in ("rust_calls", "batch_rows", "repeat", "python_calls",
                                                   "xgb_calls", "sklearn_calls", "batch_calls", "quick", "models")},
        "env": {k: os.environ.get(k) for k in ("OPENBLAS_CORETYPE", "OPENBLAS_L2_SIZE", "OMP_NUM_THREADS")},
    })
    out = Path(args.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(prefix="sextant-bench-engine-") as tmp:
        work = Path(tmp)
        log("training the models")
        X, y = common.make_data()
        rows_path = work / "rows.f64"
        X[:N_ROWS].astype("<f8").tofile(rows_path)
        clf = xgb_model = None
        onnx_path = work / "rf.onnx"
        expected = {}
        files = {}
        if "rf" in args.models:
            clf = common.train_forest(X, y)
            files["rf"] = work / "model.pkl"
            with open(files["rf"], "wb") as f:  # what mlflow.sklearn writes for serialization_format="cloudpickle"
                cloudpickle.dump(clf, f, protocol=pickle.DEFAULT_PROTOCOL)
            common.export_onnx(clf, onnx_path)
            expected["rf"] = clf.predict_proba(X[:N_ROWS])
        if "xgb" in args.models:
            xgb_model = xgboost.XGBClassifier(n_estimators=common.N_TREES, max_depth=common.MAX_DEPTH,
                                              random_state=common.SEED, n_jobs=2)
            xgb_model.fit(X, y)
            files["xgb"] = work / "xgb.json"
            xgb_model.save_model(str(files["xgb"]))
            xgb_model.set_params(n_jobs=1)
            expected["xgb"] = xgb_model.predict_proba(X[:N_ROWS])

        report["sextant"] = {}
        for key, path in files.items():
            r = run_example(args, path, rows_path)
            if "error" not in r:
                r["check"]["max_abs_diff"] = max_diff(r["check"]["predict_proba"], expected[key])
                s = r["single_row"]
                log(f"sextant {key}: {r['engine']}, single row median {s['median_ns']} ns, p99 {s['p99_ns']} ns; "
                    f"batched {r['batched']['threads']['1']['rows_per_s']:,.0f} rows/s (1 thread), "
                    f"{r['batched']['threads']['2']['rows_per_s']:,.0f} (2); "
                    f"max |diff| vs the library {r['check']['max_abs_diff']:.2e}")
            else:
                log(f"sextant {key}: ERROR {r['error'][:300]}")
            report["sextant"][key] = r
        report["python"] = python_peers(args, X, clf, xgb_model, onnx_path)
        if "rf" in args.models:
            import onnxruntime as ort

            session = ort.InferenceSession(str(onnx_path), providers=["CPUExecutionProvider"])
            proba = session.run(["probabilities"], {session.get_inputs()[0].name: X[:1000].astype(np.float32)})[0]
            report["python"]["onnx_max_abs_diff_1000_rows"] = max_diff(proba, expected["rf"])
    report["targets"] = targets(report)
    report["table"] = table(report)
    report["meta"]["uptime_end"] = common.version_of(["uptime"])
    out.write_text(json.dumps(report, indent=2, default=str))

    print()
    print(report["table"])
    print()
    for key, r in report["sextant"].items():
        if "error" in r:
            print(f"- Sextant {key}: ERROR {r['error'][:500]}")
        else:
            bad = r["check"]["max_abs_diff"] is None or r["check"]["max_abs_diff"] > 1e-6
            print(f"- Sextant {key}: engine {r['engine']}, load {r['load_ms']} ms, max |predict_proba − library| "
                  f"over {r['check']['rows']} rows {r['check']['max_abs_diff']:.2e}{'  <-- WRONG' if bad else ''}; "
                  f"timer overhead {r['single_row']['timer_ns']} ns per call (included)")
    print(f"- load: start [{report['meta']['uptime_start']}], end [{report['meta']['uptime_end']}]")
    print(f"\nJSON: {out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
