#!/usr/bin/env python3
"""What several servers on one database cost: `log_metric` requests per CPU-second of
the `sextant server` processes, for one server against three on the same PostgreSQL
database (the issue's target: three within 20% of one).

The client is three `wrk -t1` processes, each logging into a run of its own through
/api/2.0/mlflow/runs/log-metric (bench/tracking/log_metric.lua), for --duration
seconds. Three shapes: nine connections (3 per client) on one server; the same nine on
three servers, one client each; and one server with three connections (1 per client),
which is the load each of the three servers had. The first pair compares the same total
load; the second, the same load per server, which isolates what running beside other
servers costs (leader election, following stored deployments, the audit chain's lock). The CPU is the servers' user + system time
(/proc/PID/stat) over the load; PostgreSQL's processes are measured beside it. On one
machine the servers share its two cores with PostgreSQL and wrk, so the figure is cost
per request, not throughput. Rounds alternate the order of the shapes; medians are reported.

    cargo build --release -p sextant-cli
    python3 bench/ha/coordination.py --rounds 3 --duration 10

Needs PostgreSQL at SEXTANT_TEST_POSTGRES_URL (default what scripts/test starts), wrk,
and the e2e venv (psycopg); re-runs itself inside it. Writes
bench/results/ha-coordination-<time>.json.
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import os
import re
import shutil
import socket
import statistics
import subprocess
import sys
import tempfile
import time
import urllib.request
import uuid
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
VENV = Path(os.environ.get("SEXTANT_VENV", Path.home() / ".cache/sextant/venv-e2e"))
sys.path.insert(0, str(REPO / "bench"))
from release_build import TARGET  # noqa: E402  ($CARGO_TARGET_DIR, else target/ or ~/.cache/sextant/target)
if Path(sys.prefix).resolve() != VENV.resolve():
    python = VENV / "bin" / "python"
    if not python.exists():
        sys.exit(f"{python} is missing: run scripts/test once")
    os.execv(str(python), [str(python), __file__, *sys.argv[1:]])

import psycopg  # noqa: E402

ADMIN_URL = os.environ.get("SEXTANT_TEST_POSTGRES_URL", "postgres://sextant:sextant@127.0.0.1:5432/postgres")
CLOCK_TICKS = os.sysconf("SC_CLK_TCK")
CLIENTS = 3


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def cpu_seconds(pid: int) -> float:
    """User + system time of one process (fields 14 and 15 of /proc/PID/stat)."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / CLOCK_TICKS


def postgres_cpu_seconds() -> float:
    total = 0.0
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                if (entry / "comm").read_text().strip() == "postgres":
                    total += cpu_seconds(int(entry.name))
            except OSError:
                pass  # ended meanwhile
    return total


def call(uri: str, path: str, body: dict) -> dict:
    request = urllib.request.Request(f"{uri}{path}", data=json.dumps(body).encode(),
                                     headers={"Content-Type": "application/json"})  # fmt: skip
    with urllib.request.urlopen(request, timeout=30) as reply:
        return json.loads(reply.read())


def one_shape(binary: Path, wrk: str, servers: int, duration: int, connections: int, work: Path) -> dict:
    """Fresh database, `servers` processes on it, the load, the CPU it cost."""
    name = f"sextant_bench_coord_{uuid.uuid4().hex}"
    with psycopg.connect(ADMIN_URL, autocommit=True) as conn:
        conn.execute(f'CREATE DATABASE "{name}"')
    database = ADMIN_URL.rsplit("/", 1)[0] + f"/{name}"
    procs: list[tuple[subprocess.Popen, str]] = []
    try:
        for index in range(servers):
            port = free_port()
            log = open(work / f"{name}-{index}.log", "ab")
            proc = subprocess.Popen([str(binary), "server", "--port", str(port), "--data-dir", str(work / f"{name}-{index}"),
                                     "--backend-store-uri", database, "--artifacts-destination", str(work / f"{name}-artifacts")],
                                    stdout=log, stderr=subprocess.STDOUT)  # fmt: skip
            uri = f"http://127.0.0.1:{port}"
            for _ in range(300):
                try:
                    urllib.request.urlopen(f"{uri}/health", timeout=1)
                    break
                except OSError:
                    time.sleep(0.1)
            procs.append((proc, uri))
        experiment = call(procs[0][1], "/api/2.0/mlflow/experiments/create", {"name": "coordination"})["experiment_id"]
        runs = [call(procs[0][1], "/api/2.0/mlflow/runs/create", {"experiment_id": experiment})["run"]["info"]["run_id"]
                for _ in range(CLIENTS)]  # fmt: skip
        script = REPO / "bench" / "tracking" / "log_metric.lua"

        def load(seconds: int) -> list[subprocess.Popen]:
            return [subprocess.Popen([wrk, "-t1", f"-c{connections}", f"-d{seconds}s", "-s", str(script), procs[i % servers][1], "--", run],
                                     stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)  # fmt: skip
                    for i, run in enumerate(runs)]  # fmt: skip

        for client in load(2):  # warm-up: connections, caches, statements
            client.wait()
        before = sum(cpu_seconds(p.pid) for p, _ in procs), postgres_cpu_seconds(), time.monotonic()
        clients = load(duration)
        outputs = [client.communicate()[0] for client in clients]
        after = sum(cpu_seconds(p.pid) for p, _ in procs), postgres_cpu_seconds(), time.monotonic()
        requests = 0
        for output in outputs:
            match = re.search(r"(\d+) requests in", output)
            if not match or "Non-2xx" in output:
                raise RuntimeError(f"wrk failed or saw errors:\n{output}")
            requests += int(match.group(1))
        server_cpu, postgres_cpu, wall = (a - b for a, b in zip(after, before))
        return {"servers": servers, "requests": requests, "wall_s": wall, "server_cpu_s": server_cpu,
                "postgres_cpu_s": postgres_cpu, "requests_per_s": requests / wall,
                "requests_per_server_cpu_s": requests / server_cpu,
                "requests_per_total_cpu_s": requests / (server_cpu + postgres_cpu)}  # fmt: skip
    finally:
        for proc, _ in procs:
            proc.terminate()
        for proc, _ in procs:
            proc.wait(timeout=30)
        with psycopg.connect(ADMIN_URL, autocommit=True) as conn:
            conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


# (servers, connections of each of the three wrk clients): the same nine connections on
# one server and on three; and one server with three, the load each of the three has.
SHAPES = [(1, 3), (3, 3), (1, 1)]
LABELS = {(1, 3): "one server, 9 connections", (3, 3): "three servers, 9 connections (3 each)",
          (1, 1): "one server, 3 connections"}  # fmt: skip


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--duration", type=int, default=10, help="wrk seconds per shape and round")
    parser.add_argument("--wrk", default=shutil.which("wrk") or "/usr/bin/wrk")
    args = parser.parse_args()
    binary = TARGET / "release" / "sextant"
    if not binary.exists():
        sys.exit(f"{binary} is missing: cargo build --release -p sextant-cli")
    work = Path(tempfile.mkdtemp(prefix="sextant-bench-coordination-"))
    results: dict[tuple[int, int], list[dict]] = {shape: [] for shape in SHAPES}
    for round_index in range(args.rounds):
        order = SHAPES if round_index % 2 == 0 else SHAPES[::-1]
        for servers, connections in order:
            result = one_shape(binary, args.wrk, servers, args.duration, connections, work)
            results[(servers, connections)].append(result)
            print(f"round {round_index + 1}, {LABELS[(servers, connections)]}: {result['requests_per_s']:.0f} req/s, "
                  f"{result['requests_per_server_cpu_s']:.0f} req per server CPU-s, "
                  f"{result['requests_per_total_cpu_s']:.0f} per server+PostgreSQL CPU-s", file=sys.stderr)  # fmt: skip

    def median(shape: tuple[int, int], key: str) -> float:
        return statistics.median(r[key] for r in results[shape])

    keys = ("requests_per_server_cpu_s", "requests_per_total_cpu_s", "requests_per_s")
    summary = {"rounds": args.rounds, "duration_s": args.duration,
               "results": {LABELS[shape]: runs for shape, runs in results.items()},
               "medians": {LABELS[shape]: {key: median(shape, key) for key in keys} for shape in SHAPES}}  # fmt: skip
    print("| shape | log_metric per server CPU-s | per server + PostgreSQL CPU-s | per second |\n|---|---:|---:|---:|")
    for shape in SHAPES:
        figures = summary["medians"][LABELS[shape]]
        print(f"| {LABELS[shape]} | {figures[keys[0]]:,.0f} | {figures[keys[1]]:,.0f} | {figures[keys[2]]:,.0f} |")
    same_total = median((3, 3), keys[0]) / median((1, 3), keys[0])
    same_each = median((3, 3), keys[0]) / median((1, 1), keys[0])
    summary["ratio_same_total_load"], summary["ratio_same_load_per_server"] = same_total, same_each
    print(f"\nthree / one, per server CPU-second: {same_total:.2f} at the same total load, "
          f"{same_each:.2f} at the same load per server")
    out = REPO / "bench" / "results" / f"ha-coordination-{dt.datetime.now(dt.timezone.utc):%Y%m%d-%H%M%S}.json"
    out.parent.mkdir(exist_ok=True)
    out.write_text(json.dumps(summary, indent=1))


if __name__ == "__main__":
    main()
