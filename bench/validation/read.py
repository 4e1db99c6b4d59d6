#!/usr/bin/env python3
"""Reading the drift benchmark's files: Sextant's table reader against
`pandas.read_csv` for CSV (the issue's target: at least 3× faster, using both cores)
and against `pyarrow.parquet.read_table` for Parquet (the target: at least as fast).

The files are bench/monitoring/drift.py's: N rows of 20 float columns (full precision)
and 5 string columns, reference and current, seed 42. Sextant's side is
`sextant expectations check FILE one.yaml` with one expectation that reads no column
(`table_row_count_between`), so the command is the reader plus a process start; its
time is the command's wall time (the same command on a one-row file is timed too, as
the fixed cost of a process start). pandas' side is `pandas.read_csv(FILE)` in this
process (no start-up). For Parquet, the same command on the benchmark's Parquet files
against pyarrow's `read_table` (on all cores) in this process. Each reads each file
--rounds times, alternately; medians.

When the `read_table` example is built, the reader is also timed as the peers are:
inside one process that has already started and has read the files before
(`crates/sextant-monitor/examples/read_table.rs`, fed the files' names one per line).

    cargo build --release -p sextant-cli
    cargo build --release -p sextant-monitor --example read_table   # optional: the warm reader
    ~/.cache/sextant/venv-e2e/bin/python bench/validation/read.py --rows 100000 --rounds 5

Writes bench/results/read-<time>.json.
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

import numpy as np
import pandas as pd

REPO = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(REPO / "bench"))
from release_build import TARGET  # noqa: E402  ($CARGO_TARGET_DIR, else target/ or ~/.cache/sextant/target)
sys.path.insert(0, str(REPO / "bench" / "monitoring"))


def tables(n: int):
    from drift import generate  # the drift benchmark's own data (cached Parquet files)

    reference, current = generate(n)
    return pd.read_parquet(reference), pd.read_parquet(current)


def sextant_read(binary: Path, path: Path, spec: Path, rows: int) -> float:
    started = time.perf_counter()
    done = subprocess.run([str(binary), "expectations", "check", str(path), str(spec), "--format", "json"], capture_output=True, text=True)
    elapsed = time.perf_counter() - started
    if done.returncode != 0:
        sys.exit(done.stderr)
    assert json.loads(done.stdout)["rows"] == rows
    return elapsed


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--rows", type=int, default=100_000)
    parser.add_argument("--rounds", type=int, default=5)
    args = parser.parse_args()
    binary = TARGET / "release" / "sextant"
    if not binary.exists():
        sys.exit(f"{binary} is missing: cargo build --release -p sextant-cli")
    work = Path(tempfile.mkdtemp(prefix="bench-read-"))
    reference, current = tables(args.rows)
    files = []
    for name, frame in [("reference", reference), ("current", current)]:
        path = work / f"{name}.csv"
        frame.to_csv(path, index=False)
        files.append(path)
    spec = work / "one.yaml"
    spec.write_text("expectations:\n  - {expect: table_row_count_between, min: 1}\n")
    # The fixed cost on Sextant's side: the same command on a one-row file.
    tiny = work / "tiny.csv"
    tiny.write_text("a\n1\n")
    start_up = []
    import pyarrow.parquet as pq

    parquet_files = []
    for name, frame in [("reference", reference), ("current", current)]:
        path = work / f"{name}.parquet"
        frame.to_parquet(path, index=False)
        parquet_files.append(path)
    # The warm reader: one process for the whole run, reading a file per line asked.
    warm_binary = TARGET / "release" / "examples" / "read_table"
    warm = (
        subprocess.Popen([str(warm_binary)], stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True, bufsize=1)
        if warm_binary.exists()
        else None
    )

    def warm_read(path: Path, rows: int) -> float:
        warm.stdin.write(f"{path}\n")
        warm.stdin.flush()
        seconds, read_rows = warm.stdout.readline().split()
        assert int(read_rows) == rows, (seconds, read_rows)
        return float(seconds)

    sextant_warm = {f.name: [] for f in files + parquet_files}
    sextant, pandas = {f.name: [] for f in files}, {f.name: [] for f in files}
    sextant_parquet, pyarrow = {f.name: [] for f in parquet_files}, {f.name: [] for f in parquet_files}
    for _ in range(args.rounds):
        start_up.append(sextant_read(binary, tiny, spec, 1))
        for path in files:
            sextant[path.name].append(sextant_read(binary, path, spec, args.rows))
            if warm:
                sextant_warm[path.name].append(warm_read(path, args.rows))
            started = time.perf_counter()
            frame = pd.read_csv(path)
            pandas[path.name].append(time.perf_counter() - started)
            assert len(frame) == args.rows
        for path in parquet_files:
            sextant_parquet[path.name].append(sextant_read(binary, path, spec, args.rows))
            if warm:
                sextant_warm[path.name].append(warm_read(path, args.rows))
            started = time.perf_counter()
            table = pq.read_table(path)
            pyarrow[path.name].append(time.perf_counter() - started)
            assert table.num_rows == args.rows
    result = {
        "rows": args.rows,
        "megabytes": {f.name: f.stat().st_size / 1e6 for f in files},
        "sextant_s": sextant,
        "pandas_s": pandas,
        "median_sextant_both_s": sum(statistics.median(v) for v in sextant.values()),
        "median_pandas_both_s": sum(statistics.median(v) for v in pandas.values()),
    }
    result["ratio"] = result["median_pandas_both_s"] / result["median_sextant_both_s"]
    result["sextant_one_row_s"] = start_up
    result["median_sextant_one_row_s"] = statistics.median(start_up)
    result["parquet_megabytes"] = {f.name: f.stat().st_size / 1e6 for f in parquet_files}
    result["sextant_parquet_s"] = sextant_parquet
    result["pyarrow_s"] = pyarrow
    result["median_sextant_parquet_both_s"] = sum(statistics.median(v) for v in sextant_parquet.values())
    result["median_pyarrow_both_s"] = sum(statistics.median(v) for v in pyarrow.values())
    result["parquet_ratio"] = result["median_pyarrow_both_s"] / result["median_sextant_parquet_both_s"]
    # The peers are timed inside an interpreter that has already started; Sextant's
    # command starts a process. Net of that fixed cost (the one-row file's time, once
    # per file read) the ratios compare the readers alone.
    start_up_both = 2 * result["median_sextant_one_row_s"]
    result["ratio_net_of_start"] = result["median_pandas_both_s"] / (result["median_sextant_both_s"] - start_up_both)
    result["parquet_ratio_net_of_start"] = result["median_pyarrow_both_s"] / (
        result["median_sextant_parquet_both_s"] - start_up_both
    )
    if warm:
        warm.stdin.close()
        warm.wait()
        result["sextant_warm_s"] = sextant_warm
        result["median_sextant_warm_csv_both_s"] = sum(statistics.median(sextant_warm[f.name]) for f in files)
        result["median_sextant_warm_parquet_both_s"] = sum(statistics.median(sextant_warm[f.name]) for f in parquet_files)
        result["warm_ratio"] = result["median_pandas_both_s"] / result["median_sextant_warm_csv_both_s"]
        result["warm_parquet_ratio"] = result["median_pyarrow_both_s"] / result["median_sextant_warm_parquet_both_s"]
    out = REPO / "bench" / "results" / f"read-{dt.datetime.now():%Y%m%d-%H%M%S}.json"
    out.parent.mkdir(exist_ok=True)
    out.write_text(json.dumps(result, indent=1))
    print(json.dumps(result, indent=1))


if __name__ == "__main__":
    main()
