#!/usr/bin/env python3
"""Drift reports: `sextant drift` against Evidently's `Report([DataDriftPreset()]).run`.

Same data, same run, one machine. For each size N (reference = current = N rows,
20 float columns + 5 string columns, drift injected in 7 numeric and 2 categorical
columns, seed 42, as in shared/reference/monitoring.md §7.1):

  evidently  a fresh Python process loads both Parquet files with pandas, then times
             `Report([DataDriftPreset()]).run(current, reference)`: wall and CPU
             (process_time) of the run alone, and the process's peak RSS
  sextant    `sextant drift ref.parquet cur.parquet --methods evidently --format json`
             (reading the files included), then `--methods sextant`: wall, CPU
             (user + system) and peak RSS of the process, from GNU time

Every column's statistic from `--methods evidently` is compared with Evidently's
(max absolute difference, verdicts that differ). Ratios are Evidently ÷ Sextant.

    python3 bench/monitoring/drift.py                       # 100k and 1M rows
    python3 bench/monitoring/drift.py --rows 10000 --quick  # smoke run

Needs the release binary (`cargo build --release -p sextant-cli`). Creates its venv
(`~/.cache/sextant/venv-evidently`, tests/monitoring/requirements.txt) when missing and
re-runs itself inside it. Data files are cached in ~/.cache/sextant/bench-drift.
Writes bench/results/drift-<time>.json.
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import os
import statistics
import subprocess
import sys
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
VENV = Path(os.environ.get("SEXTANT_EVIDENTLY_VENV", Path.home() / ".cache/sextant/venv-evidently"))
sys.path.insert(0, str(REPO / "bench"))
from release_build import TARGET  # noqa: E402  ($CARGO_TARGET_DIR, else target/ or ~/.cache/sextant/target)
SEXTANT = Path(os.environ.get("SEXTANT_BIN", TARGET / "release" / "sextant"))
DATA = Path.home() / ".cache/sextant/bench-drift"
REQUIREMENTS = REPO / "tests/monitoring/requirements.txt"


def log(message: str) -> None:
    print(f"[drift-bench] {message}", file=sys.stderr, flush=True)


def ensure_venv() -> None:
    """Re-runs this script inside the Evidently venv."""
    if Path(sys.prefix).resolve() == VENV.resolve():
        return
    python = VENV / "bin" / "python"
    if not python.exists():
        log(f"creating {VENV}")
        subprocess.run([sys.executable, "-m", "venv", str(VENV)], check=True)
        subprocess.run([str(python), "-m", "pip", "install", "-q", "-r", str(REQUIREMENTS)], check=True)
    os.execv(str(python), [str(python), __file__, *sys.argv[1:]])


def generate(n: int) -> tuple[Path, Path]:
    """20 numeric + 5 categorical columns; drift in num_00/04/08/12/18/19 and cat_1/cat_3."""
    import numpy as np
    import pandas as pd

    reference_path, current_path = DATA / f"ref_{n}.parquet", DATA / f"cur_{n}.parquet"
    if reference_path.exists() and current_path.exists():
        return reference_path, current_path
    DATA.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(42)

    def table(drifted: bool) -> pd.DataFrame:
        s = 1.0 if drifted else 0.0
        columns = {}
        for i in range(20):
            columns[f"num_{i:02d}"] = rng.normal(0, 1, n)
        columns["num_00"] = rng.normal(0.25 * s, 1, n)
        columns["num_01"] = rng.normal(0.05 * s, 1, n)
        columns["num_04"] = rng.lognormal(0, 0.5 + 0.15 * s, n)
        columns["num_08"] = rng.uniform(0.1 * s, 1 + 0.1 * s, n)
        columns["num_12"] = rng.exponential(1 + 0.1 * s, n)
        mixture = rng.random(n) < 0.3 + 0.15 * s
        columns["num_18"] = np.where(mixture, rng.normal(3, 0.5, n), rng.normal(0, 1, n))
        with_gaps = rng.normal(0.02 * s, 1, n)
        with_gaps[rng.random(n) < 0.01 + 0.04 * s] = np.nan
        columns["num_19"] = with_gaps
        columns["cat_0"] = rng.choice(["a", "b", "c", "d"], n)
        columns["cat_1"] = rng.choice(["x", "y", "z"], n, p=[0.4, 0.3, 0.3] if drifted else [0.5, 0.3, 0.2])
        columns["cat_2"] = rng.choice([f"l{k}" for k in range(12)], n)
        levels = ["p", "q", "r", "s"] if drifted else ["p", "q", "r"]
        columns["cat_3"] = rng.choice(levels, n, p=[0.4, 0.3, 0.27, 0.03] if drifted else [0.4, 0.31, 0.29])
        columns["cat_4"] = rng.choice(["u", "v"], n)
        return pd.DataFrame(columns)

    log(f"generating {n} rows")
    table(False).to_parquet(reference_path, index=False)
    table(True).to_parquet(current_path, index=False)
    return reference_path, current_path


EVIDENTLY_RUN = r"""
import json, resource, sys, time, warnings
warnings.filterwarnings("ignore")
import pandas as pd
from evidently import Report
from evidently.presets import DataDriftPreset
reference = pd.read_parquet(sys.argv[1]); current = pd.read_parquet(sys.argv[2])
wall, cpu = time.perf_counter(), time.process_time()
snapshot = Report([DataDriftPreset()]).run(current_data=current, reference_data=reference)
wall, cpu = time.perf_counter() - wall, time.process_time() - cpu
scores = {}
dataset = None
for metric in snapshot.dict()["metrics"]:
    config = metric["config"]
    if config["type"].endswith("ValueDrift"):
        scores[config["column"]] = {"method": config["method"], "score": metric["value"]}
    elif config["type"].endswith("DriftedColumnsCount"):
        dataset = metric["value"]
print(json.dumps({"wall_s": wall, "cpu_s": cpu,
                  "peak_rss_mib": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024,
                  "scores": scores, "dataset": dataset}))
"""


def run_evidently(reference: Path, current: Path) -> dict:
    started = time.perf_counter()
    out = subprocess.run(
        [sys.executable, "-c", EVIDENTLY_RUN, str(reference), str(current)],
        check=True, capture_output=True, text=True,
    ).stdout
    result = json.loads(out.strip().splitlines()[-1])
    result["process_wall_s"] = time.perf_counter() - started
    return result


def timed_sextant(reference: Path, current: Path, methods: str) -> dict:
    """Runs `sextant drift` under GNU time: wall, user + system CPU and peak RSS of
    that one process."""
    command = [str(SEXTANT), "drift", str(reference), str(current), "--methods", methods, "--format", "json"]
    timed = ["/usr/bin/time", "-f", "SEXTANT-TIME %e %U %S %M", *command]
    result = subprocess.run(timed, capture_output=True, text=True)
    if result.returncode != 0:
        raise SystemExit(f"sextant drift failed: {result.stderr}")
    line = next(l for l in result.stderr.splitlines() if l.startswith("SEXTANT-TIME"))
    wall, user, system, max_rss_kib = line.split()[1:]
    return {
        "wall_s": float(wall),
        "cpu_s": float(user) + float(system),
        "peak_rss_mib": int(max_rss_kib) / 1024,
        "report": json.loads(result.stdout),
        "command": " ".join(command),
    }


def main() -> None:
    ensure_venv()
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--rows", type=int, nargs="+", default=[100_000, 1_000_000])
    parser.add_argument("--sextant-runs", type=int, default=3)
    parser.add_argument("--quick", action="store_true", help="one Sextant run per size")
    args = parser.parse_args()
    if not SEXTANT.exists():
        raise SystemExit(f"{SEXTANT} missing: cargo build --release -p sextant-cli")
    runs = 1 if args.quick else args.sextant_runs

    results = {"meta": {
        "date": dt.datetime.now(dt.timezone.utc).isoformat(timespec="seconds"),
        "argv": sys.argv, "cpus": os.cpu_count(),
        "load_start": os.getloadavg(),
        "git": subprocess.run(["git", "-C", str(REPO), "rev-parse", "--short", "HEAD"], capture_output=True, text=True).stdout.strip(),
        "sextant": str(SEXTANT),
    }, "sizes": {}}
    for n in args.rows:
        reference, current = generate(n)
        entry = {}
        for methods in ("evidently", "sextant"):
            samples = [timed_sextant(reference, current, methods) for _ in range(runs)]
            entry[f"sextant_{methods}"] = {
                "wall_s": statistics.median(s["wall_s"] for s in samples),
                "cpu_s": statistics.median(s["cpu_s"] for s in samples),
                "peak_rss_mib": statistics.median(s["peak_rss_mib"] for s in samples),
                "walls": [s["wall_s"] for s in samples],
                "command": samples[0]["command"],
                "dataset": samples[0]["report"]["dataset"],
            }
            if methods == "evidently":
                ours = {c["column"]: c for c in samples[0]["report"]["columns"]}
        log(f"{n} rows: Sextant {entry['sextant_evidently']['wall_s']:.2f} s; running Evidently")
        evidently = run_evidently(reference, current)
        entry["evidently"] = {k: v for k, v in evidently.items() if k != "scores"}
        differences, verdict_mismatch, methods_mismatch = {}, [], []
        for column, theirs in evidently["scores"].items():
            mine = ours.get(column)
            if mine is None:
                methods_mismatch.append(f"{column}: not compared")
                continue
            if mine["method_name"] != theirs["method"]:
                methods_mismatch.append(f"{column}: {mine['method_name']} vs {theirs['method']}")
            differences[column] = abs(mine["statistic"] - theirs["score"])
        entry["parity"] = {
            "columns": len(evidently["scores"]),
            "max_abs_difference": max(differences.values()) if differences else None,
            "method_mismatches": methods_mismatch,
            "dataset_evidently": evidently["dataset"],
            "dataset_sextant": {k: entry["sextant_evidently"]["dataset"][k] for k in ("drifted_columns", "share", "drift")},
        }
        ev, sx = entry["evidently"], entry["sextant_evidently"]
        entry["ratios"] = {
            "cpu_evidently_run_over_sextant": ev["cpu_s"] / sx["cpu_s"],
            "wall_evidently_run_over_sextant": ev["wall_s"] / sx["wall_s"],
            "peak_rss_evidently_over_sextant": ev["peak_rss_mib"] / sx["peak_rss_mib"],
        }
        results["sizes"][str(n)] = entry
        log(json.dumps(entry["ratios"]))
    results["meta"]["load_end"] = os.getloadavg()
    out = REPO / "bench" / "results" / f"drift-{dt.datetime.now():%Y%m%d-%H%M%S}.json"
    out.parent.mkdir(exist_ok=True)
    out.write_text(json.dumps(results, indent=1))

    print(f"\nresults: {out}\n")
    print("| rows (ref = cur) | Evidently Report.run wall s | CPU s | peak RSS MiB | Sextant (evidently methods) wall s | CPU s | peak RSS MiB | Sextant (sextant methods) wall s | speed-up (wall) | speed-up (CPU) | memory | max stat diff |")
    print("|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|")
    for n, e in results["sizes"].items():
        ev, sx, ss, r = e["evidently"], e["sextant_evidently"], e["sextant_sextant"], e["ratios"]
        print(f"| {int(n):,} | {ev['wall_s']:.1f} | {ev['cpu_s']:.1f} | {ev['peak_rss_mib']:.0f} | {sx['wall_s']:.3f} | {sx['cpu_s']:.3f} | {sx['peak_rss_mib']:.0f} | {ss['wall_s']:.3f} | {r['wall_evidently_run_over_sextant']:.0f}× | {r['cpu_evidently_run_over_sextant']:.0f}× | {r['peak_rss_evidently_over_sextant']:.1f}× | {e['parity']['max_abs_difference']:.1e} |")


if __name__ == "__main__":
    main()
