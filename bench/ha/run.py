#!/usr/bin/env python3
"""Leader failover: three `sextant server` processes on one PostgreSQL database; the
leader is killed with SIGKILL, and the time until another server reports
`sextant_leader 1` on /metrics (polled every 50 ms) is the failover time. The killed
server is started again before the next round. No peer: MLflow's server has no
background work to lead (the target is the issue's: < 10 s).

    python3 bench/ha/run.py --rounds 5

Needs the release binary (`cargo build --release -p sextant-cli`), PostgreSQL at
SEXTANT_TEST_POSTGRES_URL (default postgres://sextant:sextant@127.0.0.1:5432/postgres,
what scripts/test starts) and the e2e venv (psycopg); re-runs itself inside it. Writes
bench/results/ha-<time>.json.
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import os
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


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def leads(uri: str) -> bool:
    try:
        with urllib.request.urlopen(f"{uri}/metrics", timeout=2) as reply:
            return b"\nsextant_leader 1\n" in reply.read()
    except OSError:
        return False


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--rounds", type=int, default=5)
    args = parser.parse_args()
    binary = TARGET / "release" / "sextant"
    if not binary.exists():
        sys.exit(f"{binary} is missing: cargo build --release -p sextant-cli")
    name = f"sextant_bench_ha_{uuid.uuid4().hex}"
    with psycopg.connect(ADMIN_URL, autocommit=True) as conn:
        conn.execute(f'CREATE DATABASE "{name}"')
    database = ADMIN_URL.rsplit("/", 1)[0] + f"/{name}"
    work = Path(tempfile.mkdtemp(prefix="sextant-bench-ha-"))
    servers: dict[int, tuple[subprocess.Popen, str]] = {}

    def start(index: int) -> None:
        port = free_port()
        log = open(work / f"server-{index}.log", "ab")
        proc = subprocess.Popen([str(binary), "server", "--port", str(port), "--data-dir", str(work / f"data-{index}"),
                                 "--backend-store-uri", database, "--artifacts-destination", str(work / "artifacts")],
                                stdout=log, stderr=subprocess.STDOUT)  # fmt: skip
        uri = f"http://127.0.0.1:{port}"
        for _ in range(300):
            try:
                urllib.request.urlopen(f"{uri}/health", timeout=1)
                break
            except OSError:
                time.sleep(0.1)
        servers[index] = (proc, uri)

    failovers = []
    try:
        for index in range(3):
            start(index)
        for round_index in range(args.rounds):
            deadline = time.monotonic() + 30
            leader = None
            while leader is None and time.monotonic() < deadline:
                leading = [i for i, (_, uri) in servers.items() if leads(uri)]
                leader = leading[0] if len(leading) == 1 else None
                time.sleep(0.05)
            if leader is None:
                sys.exit("no single leader")
            proc, _ = servers.pop(leader)
            killed = time.monotonic()
            proc.kill()
            proc.wait()
            successor = None
            while successor is None:
                successor = next((i for i, (_, uri) in servers.items() if leads(uri)), None)
                if time.monotonic() - killed > 60:
                    sys.exit("no successor within 60 s")
                if successor is None:
                    time.sleep(0.05)
            seconds = time.monotonic() - killed
            failovers.append(seconds)
            print(f"round {round_index + 1}: server {leader} killed, server {successor} leads after {seconds:.2f} s",
                  file=sys.stderr)
            start(leader)
    finally:
        for proc, _ in servers.values():
            proc.terminate()
            proc.wait(timeout=30)
        with psycopg.connect(ADMIN_URL, autocommit=True) as conn:
            conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
    summary = {"rounds": args.rounds, "failover_s": failovers, "median_s": statistics.median(failovers),
               "max_s": max(failovers)}  # fmt: skip
    print(f"failover: median {summary['median_s']:.2f} s, max {summary['max_s']:.2f} s over {args.rounds} kills")
    out = REPO / "bench" / "results" / f"ha-{dt.datetime.now(dt.timezone.utc):%Y%m%d-%H%M%S}.json"
    out.parent.mkdir(exist_ok=True)
    out.write_text(json.dumps(summary, indent=1))


if __name__ == "__main__":
    main()
