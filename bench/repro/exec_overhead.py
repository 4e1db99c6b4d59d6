#!/usr/bin/env python3
"""What `sextant exec` adds to a command's wall time (the issue's target: < 300 ms).

One release `sextant server` on SQLite in a temporary directory; inside a git repository
with a lockfile, the same command runs bare and under `sextant exec --input data.csv`,
alternately, --rounds times each: by default a Python process that imports nothing and
sleeps one second (`--command` changes it). exec creates the run, captures the
environment beside the command (git, the interpreter's packages, system, GPUs, input
hashes), then uploads the manifest, the lockfile and the diff, records the manifest's
hash in the audit log, tags and ends the run. The overhead is the difference of the
medians. No peer: MLflow records none of this (its client sets a few git tags).

    cargo build --release -p sextant-cli
    python3 bench/repro/exec_overhead.py --rounds 10

Writes bench/results/exec-overhead-<time>.json.
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
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(REPO / "bench"))
from release_build import TARGET  # noqa: E402  ($CARGO_TARGET_DIR, else target/ or ~/.cache/sextant/target)


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def timed(args: list[str], cwd: Path, env: dict) -> float:
    started = time.perf_counter()
    done = subprocess.run(args, cwd=cwd, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
    elapsed = time.perf_counter() - started
    if done.returncode != 0:
        sys.exit(f"{' '.join(args)} failed: {done.stderr}")
    return elapsed


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--rounds", type=int, default=10)
    parser.add_argument("--command", default=f"{sys.executable} -c 'import time; time.sleep(1.0)'")
    args = parser.parse_args()
    binary = TARGET / "release" / "sextant"
    if not binary.exists():
        sys.exit(f"{binary} is missing: cargo build --release -p sextant-cli")
    work = Path(tempfile.mkdtemp(prefix="sextant-bench-exec-"))
    port = free_port()
    server = subprocess.Popen([str(binary), "server", "--port", str(port), "--data-dir", str(work / "data")],
                              stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)  # fmt: skip
    uri = f"http://127.0.0.1:{port}"
    for _ in range(300):
        try:
            urllib.request.urlopen(f"{uri}/health", timeout=1)
            break
        except OSError:
            time.sleep(0.1)
    project = work / "project"
    project.mkdir()
    for git in (["init", "-q"], ["config", "user.email", "b@example.com"], ["config", "user.name", "bench"]):
        subprocess.run(["git", *git], cwd=project, check=True)
    (project / "data.csv").write_bytes(os.urandom(8 << 20).hex().encode()[: 8 << 20])  # 8 MiB
    (project / "requirements.txt").write_text("numpy\nscikit-learn\n")
    (project / "train.py").write_text("print('train')\n")
    subprocess.run(["git", "add", "-A"], cwd=project, check=True)
    subprocess.run(["git", "commit", "-qm", "bench"], cwd=project, check=True)
    env = dict(os.environ, SEXTANT_SERVER=uri)
    command = ["sh", "-c", args.command]
    under_exec = [str(binary), "exec", "--experiment", "bench", "--input", "data.csv", "--", *command]
    bare, wrapped = [], []
    try:
        timed(under_exec, project, env)  # warm-up: the experiment, caches
        for _ in range(args.rounds):
            bare.append(timed(command, project, env))
            wrapped.append(timed(under_exec, project, env))
    finally:
        server.terminate()
        server.wait(timeout=30)
    overhead_ms = (statistics.median(wrapped) - statistics.median(bare)) * 1000
    summary = {"rounds": args.rounds, "command": args.command, "bare_s": bare, "exec_s": wrapped,
               "median_bare_s": statistics.median(bare), "median_exec_s": statistics.median(wrapped),
               "overhead_ms": overhead_ms}  # fmt: skip
    print(f"bare {summary['median_bare_s']:.3f} s, under exec {summary['median_exec_s']:.3f} s: "
          f"exec adds {overhead_ms:.0f} ms (median of {args.rounds})")  # fmt: skip
    out = REPO / "bench" / "results" / f"exec-overhead-{dt.datetime.now(dt.timezone.utc):%Y%m%d-%H%M%S}.json"
    out.parent.mkdir(exist_ok=True)
    out.write_text(json.dumps(summary, indent=1))


if __name__ == "__main__":
    main()
