#!/usr/bin/env python3
"""What authentication, permission checks and auditing cost per request.

Starts the release `sextant` binary on fresh data directories in three ways and
drives `runs/log-metric` with wrk (`bench/tracking/log_metric.lua`, 8 connections,
2 threads) for the same duration in the same run:

* `open`: no `--auth` (the embedded default; run data writes are not audited);
* `open+audit`: no `--auth`, `--audit-run-data true` (an audit entry per write);
* `auth`: `--auth` (audit entries on), requests with a Bearer token of a user who
  owns the experiment, so each one is authenticated, checked against the run's
  experiment and audited.

`auth` minus `open+audit` in server CPU per request is the cost of authenticating
and checking permission; `open+audit` minus `open` is the cost of the audit entry.
Rounds alternate the servers; medians are quoted.

    cargo build --release -p sextant-cli
    python bench/governance/auth_overhead.py --duration 10 --rounds 3 [--baseline OLD_BINARY]
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import requests

sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "tracking"))
import run as tracking  # noqa: E402  (the tracking benchmark's server and wrk helpers)

REPO = Path(__file__).resolve().parent.parent.parent
ADMIN_PASSWORD = "bench-admin-password"


def ticks(pid: int) -> int:
    with open(f"/proc/{pid}/stat") as f:
        fields = f.read().rsplit(")", 1)[1].split()
    return int(fields[11]) + int(fields[12])


MODES = {
    "open": [],
    "open+audit": ["--audit-run-data", "true"],
    "auth": ["--auth"],
}


def start(binary: str, mode: str, root: Path) -> tuple[subprocess.Popen, str]:
    port = tracking.free_port()
    cmd = [binary, "server", "--port", str(port), "--data-dir", str(root), *MODES[mode]]
    env = dict(os.environ, RUST_LOG="warn", SEXTANT_ADMIN_PASSWORD=ADMIN_PASSWORD)
    proc = subprocess.Popen(cmd, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    base = f"http://127.0.0.1:{port}"
    for _ in range(200):
        try:
            if requests.get(base + "/health", timeout=1).status_code == 200:
                return proc, base
        except requests.RequestException:
            pass
        time.sleep(0.05)
    raise RuntimeError("server did not start")


def prepare(base: str, auth: bool) -> tuple[str, str | None]:
    session = requests.Session()
    header = None
    if auth:
        session.auth = ("admin", ADMIN_PASSWORD)
        session.post(base + "/api/v1/users", json={"username": "bench", "password": "bench-password"}).raise_for_status()
        token = session.post(base + "/api/v1/tokens", json={"name": "bench", "username": "bench"}).json()["token"]
        header = f"Bearer {token}"
        session.auth = None
        session.headers["Authorization"] = header
    exp = session.post(base + "/api/2.0/mlflow/experiments/create", json={"name": "bench"}).json()["experiment_id"]
    run = session.post(base + "/api/2.0/mlflow/runs/create", json={"experiment_id": exp}).json()["run"]["info"]["run_id"]
    return run, header


def one(binary: str, wrk: str, mode: str, duration: int) -> dict:
    auth = mode == "auth"
    with tempfile.TemporaryDirectory(prefix="sextant-auth-bench-") as root:
        proc, base = start(binary, mode, Path(root))
        try:
            run_id, header = prepare(base, auth)
            args = [run_id] + ([header] if header else [])
            before = ticks(proc.pid)
            out = subprocess.run(
                [wrk, "-t2", "-c8", f"-d{duration}s", "--latency", "-s", str(REPO / "bench/tracking/log_metric.lua"), base, "--", *args],
                capture_output=True, text=True, check=True,
            ).stdout
            cpu_s = (ticks(proc.pid) - before) / os.sysconf("SC_CLK_TCK")
            result = tracking.parse_wrk(out)
            result["server_cpu_us_per_request"] = cpu_s / result["requests"] * 1e6
            if result["non_2xx"]:
                raise RuntimeError(f"non-2xx answers in mode {mode}:\n{out}")
            return result
        finally:
            proc.terminate()
            proc.wait(timeout=30)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--binary", default=os.path.expanduser("~/.cache/sextant/target/release/sextant"))
    parser.add_argument("--wrk", default="wrk")
    parser.add_argument("--duration", type=int, default=10)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument(
        "--baseline",
        help="another sextant binary (e.g. a build before governance) to run in `open` mode alongside",
    )
    args = parser.parse_args()
    rounds = {mode: [] for mode in MODES}
    if args.baseline:
        rounds["baseline-open"] = []
    for _ in range(args.rounds):
        for mode in MODES:
            rounds[mode].append(one(args.binary, args.wrk, mode, args.duration))
        if args.baseline:
            rounds["baseline-open"].append(one(args.baseline, args.wrk, "open", args.duration))
    summary = {}
    for mode, results in rounds.items():
        summary[mode] = {
            key: statistics.median(r[key] for r in results if r.get(key) is not None)
            for key in ("wrk_rps", "p50_ms", "p99_ms", "server_cpu_us_per_request")
            if any(r.get(key) is not None for r in results)
        }
    cpu = {mode: summary[mode]["server_cpu_us_per_request"] for mode in rounds}
    summary["auth_and_permission_cpu_us_per_request"] = cpu["auth"] - cpu["open+audit"]
    summary["audit_entry_cpu_us_per_request"] = cpu["open+audit"] - cpu["open"]
    summary["rps_ratio_auth_over_open"] = summary["auth"]["wrk_rps"] / summary["open"]["wrk_rps"]
    summary["rps_ratio_auth_over_open_audit"] = summary["auth"]["wrk_rps"] / summary["open+audit"]["wrk_rps"]
    if args.baseline:
        summary["open_rps_ratio_over_baseline"] = summary["open"]["wrk_rps"] / summary["baseline-open"]["wrk_rps"]
        summary["open_cpu_us_over_baseline"] = cpu["open"] - cpu["baseline-open"]
    for results in rounds.values():
        for r in results:
            r.pop("output", None)
    print(json.dumps({"binary": args.binary, "baseline": args.baseline, "duration_s": args.duration, "rounds": rounds, "median": summary}, indent=2))


if __name__ == "__main__":
    main()
