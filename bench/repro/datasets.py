#!/usr/bin/env python3
"""Datasets by content: `sextant datasets push` of a 1 GB file to a release server on
local disk (hashing, chunking and storing), the same file again after a 1% change in one
region, and after an insertion at its start; then `pull`, which checks every chunk. Side
by side, in the same run, DVC (`dvc add` into its cache, `dvc push` to a local remote)
on the same files: DVC hashes and stores whole files, so any change stores the file
again.

    cargo build --release -p sextant-cli
    python3 bench/repro/datasets.py --size-mb 1024 --rounds 3

The issue's targets: push ≥ 200 MB/s on local disk; a 1% change stores < 5% new bytes.
DVC comes from ~/.cache/sextant/venv-bench-dvc (pip install dvc) when present. Writes
bench/results/datasets-<time>.json.
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import os
import shutil
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
DVC = Path(os.environ.get("SEXTANT_DVC", Path.home() / ".cache/sextant/venv-bench-dvc/bin/dvc"))


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def du(path: Path) -> int:
    return sum(p.stat().st_size for p in path.rglob("*") if p.is_file())


def timed(args: list[str], cwd: Path, env: dict | None = None) -> tuple[float, str]:
    started = time.perf_counter()
    done = subprocess.run(args, cwd=cwd, env=env, capture_output=True, text=True)
    elapsed = time.perf_counter() - started
    if done.returncode != 0:
        sys.exit(f"{' '.join(args)} failed:\n{done.stdout}\n{done.stderr}")
    return elapsed, done.stdout


def drop_caches_hint() -> None:
    # Not dropped (needs root and would slow everything else); every tool reads the
    # file right after it was written, from the page cache, alike.
    pass


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--size-mb", type=int, default=1024)
    parser.add_argument("--rounds", type=int, default=3)
    args = parser.parse_args()
    binary = TARGET / "release" / "sextant"
    if not binary.exists():
        sys.exit(f"{binary} is missing: cargo build --release -p sextant-cli")
    size = args.size_mb * 1024 * 1024
    work = Path(tempfile.mkdtemp(prefix="sextant-bench-datasets-", dir=os.environ.get("TMPDIR", "/tmp")))
    data = work / "table.bin"
    # Incompressible bytes written in 64 MiB blocks: what a Parquet file looks like to a chunker.
    with open(data, "wb") as out:
        left = size
        while left:
            block = os.urandom(min(left, 64 << 20))
            out.write(block)
            left -= len(block)
    results: dict[str, list] = {"sextant_push_s": [], "sextant_pull_s": [], "dvc_add_push_s": []}
    new_bytes: dict[str, dict] = {}
    try:
        for round_index in range(args.rounds):
            # Sextant: a fresh server each round.
            port = free_port()
            server_dir = work / f"server-{round_index}"
            server = subprocess.Popen([str(binary), "server", "--port", str(port), "--data-dir", str(server_dir)],
                                      stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)  # fmt: skip
            uri = f"http://127.0.0.1:{port}"
            for _ in range(300):
                try:
                    urllib.request.urlopen(f"{uri}/health", timeout=1)
                    break
                except OSError:
                    time.sleep(0.1)
            env = dict(os.environ, SEXTANT_SERVER=uri)
            push = [str(binary), "datasets", "push", str(data), "--name", "table", "--format", "json"]
            try:
                elapsed, _ = timed(push, work, env)
                results["sextant_push_s"].append(elapsed)
                out = work / "pulled.bin"
                elapsed, _ = timed([str(binary), "datasets", "pull", "table@latest", "-o", str(out), "--format", "json"], work, env)
                results["sextant_pull_s"].append(elapsed)
                if out.read_bytes() != data.read_bytes():
                    sys.exit("pull did not give the pushed bytes back")
                out.unlink()
                if round_index == 0:
                    stored_before = du(server_dir)
                    original = data.read_bytes()
                    edited = bytearray(original)
                    middle = size // 2
                    edited[middle : middle + size // 100] = os.urandom(size // 100)  # 1% in one region
                    data.write_bytes(edited)
                    _, answer = timed(push, work, env)
                    edit_new = json.loads(answer)["new_bytes"]
                    data.write_bytes(b"a header line added at the top\n" + bytes(edited))
                    _, answer = timed(push, work, env)
                    shift_new = json.loads(answer)["new_bytes"]
                    new_bytes["sextant"] = {"edit_1pct": edit_new, "insert_at_start": shift_new,
                                            "stored_growth": du(server_dir) - stored_before}  # fmt: skip
                    data.write_bytes(original)
                    del original, edited
            finally:
                server.terminate()
                server.wait(timeout=30)
                shutil.rmtree(server_dir, ignore_errors=True)
            # DVC: a fresh repository with a local remote each round.
            if DVC.exists():
                project = work / f"dvc-{round_index}"
                remote = work / f"dvc-remote-{round_index}"
                project.mkdir()
                remote.mkdir()
                subprocess.run(["git", "init", "-q"], cwd=project, check=True)
                timed([str(DVC), "init", "-q"], project)
                timed([str(DVC), "remote", "add", "-d", "local", str(remote)], project)
                shutil.copyfile(data, project / "table.bin")
                started = time.perf_counter()
                timed([str(DVC), "add", "-q", "table.bin"], project)
                timed([str(DVC), "push", "-q"], project)
                results["dvc_add_push_s"].append(time.perf_counter() - started)
                if round_index == 0:
                    before = du(remote)
                    edited = bytearray((project / "table.bin").read_bytes())
                    middle = size // 2
                    edited[middle : middle + size // 100] = os.urandom(size // 100)
                    (project / "table.bin").unlink()
                    (project / "table.bin").write_bytes(edited)
                    timed([str(DVC), "add", "-q", "table.bin"], project)
                    timed([str(DVC), "push", "-q"], project)
                    new_bytes["dvc"] = {"edit_1pct": du(remote) - before}
                    del edited
                shutil.rmtree(project, ignore_errors=True)
                shutil.rmtree(remote, ignore_errors=True)
    finally:
        shutil.rmtree(work, ignore_errors=True)
    mb = size / 1e6

    def rate(key: str) -> float | None:
        return mb / statistics.median(results[key]) if results[key] else None

    summary = {"size_bytes": size, "rounds": args.rounds, "seconds": results, "new_bytes": new_bytes,
               "sextant_push_mb_s": rate("sextant_push_s"), "sextant_pull_mb_s": rate("sextant_pull_s"),
               "dvc_add_push_mb_s": rate("dvc_add_push_s")}  # fmt: skip
    print(f"| {args.size_mb} MiB, median of {args.rounds} | MB/s | 1% changed: new bytes |")
    print("|---|---:|---:|")
    print(f"| sextant datasets push | {summary['sextant_push_mb_s']:.0f} | {new_bytes['sextant']['edit_1pct'] / size:.2%} |")
    print(f"| sextant datasets pull (every chunk checked) | {summary['sextant_pull_mb_s']:.0f} | |")
    if summary["dvc_add_push_mb_s"]:
        print(f"| dvc add + dvc push (local remote) | {summary['dvc_add_push_mb_s']:.0f} | {new_bytes['dvc']['edit_1pct'] / size:.2%} |")
    print(f"insertion at the start: {new_bytes['sextant']['insert_at_start'] / size:.2%} new bytes")
    out = REPO / "bench" / "results" / f"datasets-{dt.datetime.now(dt.timezone.utc):%Y%m%d-%H%M%S}.json"
    out.parent.mkdir(exist_ok=True)
    out.write_text(json.dumps(summary, indent=1))


if __name__ == "__main__":
    main()
