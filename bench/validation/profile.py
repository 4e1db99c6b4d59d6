#!/usr/bin/env python3
"""Dataset profiles: `sextant profile` against ydata-profiling's minimal mode (the
issue's targets: 1M rows × 50 columns in < 5 s; ≥ 50× ydata-profiling on 100k × 50).

The data: 40 float columns (normal, log-normal, uniform, 5% missing in some) and 10
string columns (3 to 30 levels), seed 7, written as Parquet. Sextant's time is the whole
`sextant profile FILE` command (reading the file, every column's sketches, duplicate
rows, the correlation matrices on up to 200,000 rows). ydata-profiling's is
`ProfileReport(frame, minimal=True).to_json()` on the frame already in memory (reading
the Parquet file is not counted on its side).

    cargo build --release -p sextant-cli
    python3 -m venv ~/.cache/sextant/venv-bench-profile
    ~/.cache/sextant/venv-bench-profile/bin/pip install ydata-profiling pandas pyarrow
    ~/.cache/sextant/venv-bench-profile/bin/python bench/validation/profile.py --rounds 3

Writes bench/results/profile-<time>.json.
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


def make(rows: int) -> pd.DataFrame:
    rng = np.random.default_rng(7)
    columns = {}
    for i in range(40):
        kind = i % 3
        values = rng.normal(size=rows) if kind == 0 else rng.lognormal(size=rows) if kind == 1 else rng.uniform(size=rows)
        if i % 5 == 0:
            values[rng.random(rows) < 0.05] = np.nan
        columns[f"num_{i:02d}"] = values
    for i in range(10):
        levels = [f"level_{k}" for k in range(3 + 3 * i)]
        columns[f"cat_{i}"] = rng.choice(levels, rows)
    return pd.DataFrame(columns)


def sextant_profile(binary: Path, path: Path) -> float:
    started = time.perf_counter()
    done = subprocess.run([str(binary), "profile", str(path)], capture_output=True, text=True)
    elapsed = time.perf_counter() - started
    if done.returncode != 0:
        sys.exit(done.stderr)
    return elapsed


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--peer-rounds", type=int, default=1)
    args = parser.parse_args()
    binary = TARGET / "release" / "sextant"
    if not binary.exists():
        sys.exit(f"{binary} is missing: cargo build --release -p sextant-cli")
    work = Path(tempfile.mkdtemp(prefix="bench-profile-"))
    result: dict = {}
    for rows in (100_000, 1_000_000):
        frame = make(rows)
        path = work / f"data-{rows}.parquet"
        frame.to_parquet(path, index=False)
        times = [sextant_profile(binary, path) for _ in range(args.rounds)]
        result[f"sextant_{rows}_s"] = times
        result[f"median_sextant_{rows}_s"] = statistics.median(times)
        if rows == 100_000:
            from ydata_profiling import ProfileReport

            peer = []
            for _ in range(args.peer_rounds):
                started = time.perf_counter()
                ProfileReport(frame, minimal=True, progress_bar=False).to_json()
                peer.append(time.perf_counter() - started)
            result["ydata_minimal_100000_s"] = peer
            result["median_ydata_minimal_100000_s"] = statistics.median(peer)
            result["ratio_100000"] = statistics.median(peer) / statistics.median(times)
    out = REPO / "bench" / "results" / f"profile-{dt.datetime.now():%Y%m%d-%H%M%S}.json"
    out.parent.mkdir(exist_ok=True)
    out.write_text(json.dumps(result, indent=1))
    print(json.dumps(result, indent=1))


if __name__ == "__main__":
    main()
