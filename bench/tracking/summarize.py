#!/usr/bin/env python3
"""Median table over several run.py result files.

    python bench/tracking/summarize.py bench/results/tracking-*.json

Each cell is the median over the files, with every run's value after it in
parentheses (in the order given). The ratio is computed from the two medians,
and is Sextant's advantage: MLflow/Sextant for times and memory, and
Sextant/MLflow for rates.
"""

from __future__ import annotations

import json
import statistics
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from run import ROWS, _fmt, _get, consistency, ratio  # noqa: E402


def cell(values: list, digits: int) -> tuple[str, float | None]:
    numbers = [v for v in values if isinstance(v, (int, float))]
    if not numbers:
        return "n/a", None
    median = statistics.median(numbers)
    shown = " / ".join(_fmt(v, digits) if isinstance(v, (int, float)) else "err" for v in values)
    return (f"{_fmt(median, digits)} ({shown})" if len(values) > 1 else _fmt(median, digits)), median


def main() -> None:
    reports = [json.loads(Path(p).read_text()) for p in sys.argv[1:]]
    if not reports:
        sys.exit(__doc__)
    builds = {json.dumps(r["meta"].get("sextant_binary"), sort_keys=True) for r in reports}
    if len(builds) > 1:
        print(f"WARNING: these runs measured different Sextant builds: {sorted(builds)}\n")
    print("| scenario | Sextant | MLflow | ratio (Sextant's advantage) |")
    print("|---|---:|---:|---:|")
    for label, path, higher, digits in ROWS:
        s_text, s_med = cell([_get(r["servers"].get("sextant"), *path) for r in reports], digits)
        m_text, m_med = cell([_get(r["servers"].get("mlflow"), *path) for r in reports], digits)
        print(f"| {label} | {s_text} | {m_text} | {ratio(s_med, m_med, higher)} |")
    print()
    for path in sys.argv[1:]:
        r = json.loads(Path(path).read_text())
        print(
            f"- {Path(path).name}: {r['meta']['date']}; Sextant build {r['meta'].get('sextant_binary')}; "
            f"load at start: {r['meta']['uptime_start'].split('load average:')[-1].strip()}"
        )
        for name, server in r["servers"].items():
            loads = {k: v.get("load_before") for k, v in server.get("scenarios", {}).items()}
            print(f"  - {name}: load average before each scenario (1/5/15 min) {loads}")
            cpu = {k: v.get("cpu_cores") for k, v in server.get("scenarios", {}).items() if v.get("cpu_cores")}
            if cpu:
                print(f"  - {name}: CPU cores used during each scenario {cpu}")
            retried = _get(server, "scenarios", "search_runs", "seeding", "retried")
            if retried:
                print(f"  - {name}: seeding answers retried {retried}")
            for key, sc in server.get("scenarios", {}).items():
                bad = (sc.get("non_2xx") or 0) + sum(sc.get("socket_errors", {}).values())
                if bad or "error" in sc:
                    print(f"  - {name} {key}: non-2xx {sc.get('non_2xx')}, socket {sc.get('socket_errors')}, "
                          f"error {sc.get('error')}")
            if server.get("log_problems"):
                print(f"  - {name} log: {server['log_problems']}")
        for note in consistency(r):
            print(f"  - {note}")


if __name__ == "__main__":
    main()
