#!/usr/bin/env python3
"""Side-by-side benchmark: Sextant vs MLflow's own tracking server.

Both servers run on this machine, one after the other, each on a fresh
temporary data directory and a free 127.0.0.1 port:

  * Sextant: `sextant server --port P --data-dir D`
  * MLflow:  `mlflow server --backend-store-uri sqlite:///D/mlflow.db
             --artifacts-destination D/artifacts --host 127.0.0.1 --port P`
             (its defaults otherwise: uvicorn with 4 workers)

For each server, in this order:

  1. start-up: wall time from spawn until `GET /health` answers 200;
  2. idle memory 2 s later: VmRSS (and PSS) summed over the process tree;
  3. search_runs: seed --runs runs into a fresh experiment (Sextant over HTTP
     with 8 client threads; MLflow in-process through its SqlAlchemyStore,
     see seed_mlflow.py), then 30 sequential searches timed on the client;
  4. log_metric, log_batch, create_run: `wrk -t2 -c8 -d<duration>s --latency`
     with the Lua scripts beside this file;
  5. memory again, after the load; then SIGTERM (SIGKILL after 15 s).

Prints a markdown table (Sextant | MLflow | ratio) and writes every raw figure
to a JSON file. Needs Python 3.11 with `requests`, the `wrk` load generator and
an `mlflow` installation. It does not build Sextant; build it first:

    cargo build --release -p sextant-cli
    python bench/tracking/run.py --duration 10

See README.md beside this file for what each figure means.
"""

from __future__ import annotations

import argparse
import fcntl
import hashlib
import concurrent.futures
import datetime as dt
import json
import os
import platform
import random
import re
import shutil
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import threading
import time
import traceback
from pathlib import Path

import requests

HERE = Path(__file__).resolve().parent
REPO = HERE.parent.parent

WRK_THREADS = 2
WRK_CONNECTIONS = 8
WRK_TIMEOUT = "60s"  # wrk's default of 2 s would count slow MLflow answers as errors
STARTUP_TIMEOUT_S = 300.0
SEARCH_TIMEOUT_S = 600.0
SEARCH_REPEATS = 30
SEARCH_PAGE = 100
SEARCH_BIG_PAGE = 1000
SEARCH_BIG_REPEATS = 3
SEARCH_FILTER = "metrics.acc > 0.5 and params.lr = '0.01'"
SEARCH_ORDER = ["metrics.acc DESC"]
SEED_THREADS = 8
SETTLE_S = 3.0  # pause between scenarios so queued work drains
API = "/api/2.0/mlflow"
LOCK_PATH = "/tmp/sextant-bench-tracking.lock"


# --------------------------------------------------------------------------- #
# Processes and memory


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def process_tree(root: int) -> list[int]:
    """`root` and all its descendants, from the ppid field of /proc/*/stat."""
    children: dict[int, list[int]] = {}
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            with open(f"/proc/{entry}/stat") as f:
                stat = f.read()
        except OSError:
            continue
        ppid = int(stat.rsplit(")", 1)[1].split()[1])
        children.setdefault(ppid, []).append(int(entry))
    pids, stack = [], [root]
    while stack:
        pid = stack.pop()
        pids.append(pid)
        stack.extend(children.get(pid, []))
    return pids


def tree_memory(root: int) -> dict:
    """Summed VmRSS and PSS (MiB) of the process tree under `root`.

    RSS summed over forked workers counts copy-on-write pages shared between
    them once per process; PSS divides shared pages among their users, so it
    is the fairer total for a multi-process server. Both are recorded.
    """
    rss_kb = pss_kb = 0
    pids = process_tree(root)
    for pid in pids:
        try:
            with open(f"/proc/{pid}/status") as f:
                for line in f:
                    if line.startswith("VmRSS:"):
                        rss_kb += int(line.split()[1])
        except OSError:
            pass
        try:
            with open(f"/proc/{pid}/smaps_rollup") as f:
                for line in f:
                    if line.startswith("Pss:"):
                        pss_kb += int(line.split()[1])
        except OSError:
            pass
    return {
        "rss_mib": round(rss_kb / 1024, 1),
        "pss_mib": round(pss_kb / 1024, 1),
        "processes": len(pids),
    }


def load_average() -> list[float]:
    return [round(x, 2) for x in os.getloadavg()]


class Server:
    def __init__(self, name: str, cmd: list[str], data_dir: Path, port: int, log_path: Path):
        self.name = name
        self.cmd = cmd
        self.data_dir = data_dir
        self.port = port
        self.url = f"http://127.0.0.1:{port}"
        self.log_path = log_path
        self.proc: subprocess.Popen | None = None
        self._log = None

    def start(self) -> float:
        """Spawn the server and return seconds until GET /health is 200."""
        env = dict(os.environ)
        # No telemetry or update checks from either server during the run.
        env["MLFLOW_DISABLE_TELEMETRY"] = "true"
        env["DO_NOT_TRACK"] = "true"
        self._log = open(self.log_path, "wb")
        started = time.perf_counter()
        self.proc = subprocess.Popen(
            self.cmd,
            stdout=self._log,
            stderr=subprocess.STDOUT,
            stdin=subprocess.DEVNULL,
            env=env,
            start_new_session=True,  # its own process group, stopped as a whole
        )
        session = requests.Session()
        while True:
            if self.proc.poll() is not None:
                raise RuntimeError(
                    f"{self.name} exited with {self.proc.returncode} before answering /health "
                    f"(log: {self.log_path})"
                )
            try:
                if session.get(self.url + "/health", timeout=2).status_code == 200:
                    return time.perf_counter() - started
            except requests.RequestException:
                pass
            if time.perf_counter() - started > STARTUP_TIMEOUT_S:
                raise RuntimeError(f"{self.name} did not answer /health in {STARTUP_TIMEOUT_S} s")
            time.sleep(0.01)

    def alive(self) -> bool:
        return self.proc is not None and self.proc.poll() is None

    def stop(self) -> None:
        if self.proc is None:
            return
        pids = process_tree(self.proc.pid)
        try:
            os.killpg(self.proc.pid, signal.SIGTERM)
        except ProcessLookupError:
            pass
        try:
            self.proc.wait(timeout=15)
        except subprocess.TimeoutExpired:
            try:
                os.killpg(self.proc.pid, signal.SIGKILL)
            except ProcessLookupError:
                pass
            self.proc.wait(timeout=15)
        # Workers that left the group (none expected) are ours too: kill by pid.
        deadline = time.monotonic() + 5
        for pid in pids[1:]:
            while _pid_alive(pid) and time.monotonic() < deadline:
                time.sleep(0.1)
            if _pid_alive(pid):
                try:
                    os.kill(pid, signal.SIGKILL)
                except ProcessLookupError:
                    pass
        if self._log:
            self._log.close()


def _pid_alive(pid: int) -> bool:
    try:
        with open(f"/proc/{pid}/stat") as f:
            return f.read().rsplit(")", 1)[1].split()[0] != "Z"
    except OSError:
        return False


# --------------------------------------------------------------------------- #
# wrk


_UNITS = {"us": 1e-3, "ms": 1.0, "s": 1e3, "m": 60e3, "h": 3600e3}


def _to_ms(value: str, unit: str) -> float:
    return float(value) * _UNITS[unit]


def parse_wrk(output: str) -> dict:
    result: dict = {}
    m = re.search(r"Requests/sec:\s+([\d.]+)", output)
    result["wrk_rps"] = float(m.group(1)) if m else None
    m = re.search(r"(\d+) requests in ([\d.]+)(us|ms|s|m|h)", output)
    if m:
        result["requests"] = int(m.group(1))
        result["elapsed_s"] = _to_ms(m.group(2), m.group(3)) / 1e3
    for pct, value, unit in re.findall(r"^\s+(50|75|90|99)%\s+([\d.]+)(us|ms|s|m|h)\s*$", output, re.M):
        result[f"p{pct}_ms"] = round(_to_ms(value, unit), 3)
    m = re.search(r"Socket errors: connect (\d+), read (\d+), write (\d+), timeout (\d+)", output)
    result["socket_errors"] = (
        dict(zip(("connect", "read", "write", "timeout"), map(int, m.groups()))) if m else {}
    )
    m = re.search(r"Non-2xx or 3xx responses: (\d+)", output)
    result["non_2xx"] = int(m.group(1)) if m else 0
    if result.get("requests") and result.get("elapsed_s"):
        ok = result["requests"] - result["non_2xx"]
        result["ok_rps"] = round(ok / result["elapsed_s"], 2)
    return result


def _busy_ticks() -> int:
    """Non-idle CPU ticks of the whole machine since boot (/proc/stat)."""
    with open("/proc/stat") as f:
        fields = [int(x) for x in f.readline().split()[1:]]
    # user nice system idle iowait irq softirq steal ...
    return fields[0] + fields[1] + fields[2] + fields[5] + fields[6] + fields[7]


def _tree_ticks(root: int) -> int:
    total = 0
    for pid in process_tree(root):
        try:
            with open(f"/proc/{pid}/stat") as f:
                fields = f.read().rsplit(")", 1)[1].split()
            total += int(fields[11]) + int(fields[12])  # utime + stime
        except OSError:
            pass
    return total


class CpuMeter:
    """Splits the machine's CPU use over an interval between the server's
    process tree, the client (this process and its children, i.e. wrk), and
    everything else (other users of the box), in cores averaged over the
    interval. `idle` is what was left of the machine's cores."""

    def __init__(self, server_pid: int):
        self.server_pid = server_pid

    @staticmethod
    def _client() -> float:
        t = os.times()
        return t.user + t.system + t.children_user + t.children_system

    def __enter__(self):
        self.busy0, self.server0, self.client0 = _busy_ticks(), _tree_ticks(self.server_pid), self._client()
        self.t0 = time.monotonic()
        return self

    def __exit__(self, *exc):
        wall = time.monotonic() - self.t0
        hz = os.sysconf("SC_CLK_TCK")
        busy = (_busy_ticks() - self.busy0) / hz
        server = (_tree_ticks(self.server_pid) - self.server0) / hz
        client = self._client() - self.client0
        self.cores = {
            "server": round(server / wall, 2),
            "client": round(client / wall, 2),
            "other": round(max(busy - server - client, 0.0) / wall, 2),
            "idle": round(max((os.cpu_count() or 1) - busy / wall, 0.0), 2),
        }
        return False


def run_wrk(wrk: str, url: str, script: str, script_args: list[str], duration: int, server_pid: int) -> dict:
    """One wrk run, with the CPU split (CpuMeter) during it."""
    cmd = [
        wrk, f"-t{WRK_THREADS}", f"-c{WRK_CONNECTIONS}", f"-d{duration}s", "--latency",
        "--timeout", WRK_TIMEOUT, "-s", str(HERE / script), url, "--", *script_args,
    ]
    with CpuMeter(server_pid) as cpu:
        proc = subprocess.run(cmd, capture_output=True, text=True, timeout=duration + 180)
    result = parse_wrk(proc.stdout)
    result["cpu_cores"] = cpu.cores
    result["command"] = " ".join(cmd[:-len(script_args) - 2] + [url])
    result["output"] = proc.stdout
    if proc.returncode != 0 or proc.stderr.strip():
        result["stderr"] = proc.stderr
    if result.get("wrk_rps") is None:
        raise RuntimeError(f"could not parse wrk output:\n{proc.stdout}\n{proc.stderr}")
    return result


# --------------------------------------------------------------------------- #
# HTTP helpers


# The mlflow client retries these statuses (MLFLOW_HTTP_REQUEST_MAX_RETRIES=7).
RETRY_STATUSES = {408, 429, 500, 502, 503, 504}


def post(
    session: requests.Session, base: str, path: str, body: dict, timeout: float = 120,
    retries: list | None = None,
) -> dict:
    """POST and return the JSON answer. With `retries` (a list that collects one
    entry per retried answer), retry like the mlflow client: up to 7 times on
    408/429/5xx, with a short back-off."""
    attempt = 0
    while True:
        r = session.post(base + API + path, json=body, timeout=timeout)
        if r.status_code == 200:
            return r.json()
        if retries is None or r.status_code not in RETRY_STATUSES or attempt >= 7:
            raise RuntimeError(f"POST {path} -> {r.status_code}: {r.text[:500]}")
        retries.append(f"{path} {r.status_code}")
        attempt += 1
        time.sleep(min(0.05 * 2 ** attempt, 2.0) * random.uniform(0.5, 1.5))


def get(session: requests.Session, base: str, path: str, params: dict, timeout: float = 120) -> dict:
    r = session.get(base + API + path, params=params, timeout=timeout)
    if r.status_code != 200:
        raise RuntimeError(f"GET {path} -> {r.status_code}: {r.text[:500]}")
    return r.json()


def create_experiment(session, base: str, name: str) -> str:
    return post(session, base, "/experiments/create", {"name": name})["experiment_id"]


def create_run(session, base: str, experiment_id: str) -> str:
    body = {"experiment_id": experiment_id, "start_time": int(time.time() * 1000)}
    return post(session, base, "/runs/create", body)["run"]["info"]["run_id"]


def count_history(session, base: str, run_id: str, key: str) -> int:
    total, token = 0, None
    while True:
        params = {"run_id": run_id, "metric_key": key, "max_results": 25000}
        if token:
            params["page_token"] = token
        page = get(session, base, "/metrics/get-history", params, timeout=300)
        total += len(page.get("metrics", []))
        token = page.get("next_page_token")
        if not token:
            return total


def count_runs(session, base: str, experiment_id: str, filter_string: str = "") -> int:
    total, token = 0, None
    while True:
        body = {"experiment_ids": [experiment_id], "filter": filter_string, "max_results": 50000}
        if token:
            body["page_token"] = token
        page = post(session, base, "/runs/search", body, timeout=SEARCH_TIMEOUT_S)
        total += len(page.get("runs", []))
        token = page.get("next_page_token")
        if not token:
            return total


# --------------------------------------------------------------------------- #
# search_runs data


def make_dataset(n: int) -> dict:
    """The same --runs runs for both servers (fixed seed), so answers must match."""
    rng = random.Random(20260101)
    base = 1_700_000_000_000
    runs = []
    for i in range(n):
        runs.append({
            "name": f"seed-{i:05d}",
            "start_time": base + i * 1000,
            "params": {"lr": rng.choice(["0.01", "0.1"]), "batch_size": rng.choice(["32", "64", "128"])},
            "metrics": {"acc": rng.random(), "loss": rng.random()},
            "tags": {"team": "bench", "variant": f"v{i % 4}", "owner": f"user{i % 7}"},
        })
    return {"experiment_name": "bench-search", "runs": runs}


def seed_over_http(base: str, dataset: dict) -> dict:
    started = time.perf_counter()
    with requests.Session() as s:
        experiment_id = create_experiment(s, base, dataset["experiment_name"])
    local = threading.local()
    retries: list[str] = []  # list.append is atomic under the GIL

    def one(run: dict) -> None:
        if not hasattr(local, "session"):
            local.session = requests.Session()
        s = local.session
        created = post(s, base, "/runs/create", {
            "experiment_id": experiment_id,
            "user_id": "bench",
            "run_name": run["name"],
            "start_time": run["start_time"],
            "tags": [{"key": k, "value": v} for k, v in run["tags"].items()],
        }, retries=retries)
        post(s, base, "/runs/log-batch", {
            "run_id": created["run"]["info"]["run_id"],
            "metrics": [
                {"key": k, "value": v, "timestamp": run["start_time"], "step": 0}
                for k, v in run["metrics"].items()
            ],
            "params": [{"key": k, "value": v} for k, v in run["params"].items()],
        }, retries=retries)

    with concurrent.futures.ThreadPoolExecutor(SEED_THREADS) as pool:
        for future in concurrent.futures.as_completed([pool.submit(one, r) for r in dataset["runs"]]):
            future.result()
    return {
        "experiment_id": experiment_id,
        "runs": len(dataset["runs"]),
        "seconds": round(time.perf_counter() - started, 2),
        "method": f"HTTP runs/create + runs/log-batch, {SEED_THREADS} client threads",
        # Answers that failed and were retried (as the mlflow client would), by path and status.
        "retried": {k: retries.count(k) for k in sorted(set(retries))},
    }


def seed_mlflow_in_process(python: str, db_uri: str, artifact_root: str, dataset: dict, tmp: Path) -> dict:
    path = tmp / "dataset.json"
    path.write_text(json.dumps(dataset))
    proc = subprocess.run(
        [python, str(HERE / "seed_mlflow.py"), db_uri, artifact_root, str(path)],
        capture_output=True, text=True, timeout=3600,
        env={**os.environ, "MLFLOW_DISABLE_TELEMETRY": "true", "DO_NOT_TRACK": "true"},
    )
    if proc.returncode != 0:
        raise RuntimeError(f"seed_mlflow.py failed:\n{proc.stdout}\n{proc.stderr[-3000:]}")
    result = json.loads(proc.stdout.strip().splitlines()[-1])
    result["method"] = "in-process SqlAlchemyStore create_run + log_batch (seed_mlflow.py)"
    return result


def percentile(values: list[float], pct: float) -> float:
    ordered = sorted(values)
    k = (len(ordered) - 1) * pct / 100
    lo, hi = int(k), min(int(k) + 1, len(ordered) - 1)
    return ordered[lo] + (ordered[hi] - ordered[lo]) * (k - lo)


def search_scenario(base: str, experiment_id: str, server_pid: int) -> dict:
    s = requests.Session()

    def timed(max_results: int) -> tuple[float, dict]:
        body = {
            "experiment_ids": [experiment_id],
            "filter": SEARCH_FILTER,
            "order_by": SEARCH_ORDER,
            "max_results": max_results,
        }
        t = time.perf_counter()
        page = post(s, base, "/runs/search", body, timeout=SEARCH_TIMEOUT_S)
        return (time.perf_counter() - t) * 1e3, page

    _, first = timed(SEARCH_PAGE)  # warm-up, not timed
    with CpuMeter(server_pid) as cpu:
        times = [timed(SEARCH_PAGE)[0] for _ in range(SEARCH_REPEATS)]
    big = [timed(SEARCH_BIG_PAGE)[0] for _ in range(SEARCH_BIG_REPEATS)]
    runs = first.get("runs", [])

    def acc(run: dict) -> float | None:
        for m in run.get("data", {}).get("metrics", []):
            if m["key"] == "acc":
                return m["value"]
        return None

    return {
        "request": {"filter": SEARCH_FILTER, "order_by": SEARCH_ORDER, "max_results": SEARCH_PAGE},
        "repeats": SEARCH_REPEATS,
        "cpu_cores": cpu.cores,
        "p50_ms": round(statistics.median(times), 2),
        "p90_ms": round(percentile(times, 90), 2),
        "min_ms": round(min(times), 2),
        "max_ms": round(max(times), 2),
        "times_ms": [round(t, 2) for t in times],
        "page1000_median_ms": round(statistics.median(big), 2),
        "page1000_times_ms": [round(t, 2) for t in big],
        "first_page_count": len(runs),
        "first_page_acc": [acc(r) for r in runs],
        "has_next_page": bool(first.get("next_page_token")),
        "total_matches": count_runs(s, base, experiment_id, SEARCH_FILTER),
    }


# --------------------------------------------------------------------------- #
# One server, all scenarios


def bench_server(name: str, args, dataset: dict, out_stem: Path) -> dict:
    result: dict = {"errors": []}
    tmp = Path(tempfile.mkdtemp(prefix=f"bench-{name}-"))
    port = free_port()
    log_path = out_stem.with_name(out_stem.name + f".{name}.log")
    if name == "sextant":
        cmd = [args.sextant_bin, "server", "--port", str(port), "--data-dir", str(tmp / "data")]
    else:
        cmd = [
            args.mlflow, "server",
            "--backend-store-uri", f"sqlite:///{tmp}/mlflow.db",
            "--artifacts-destination", str(tmp / "artifacts"),
            "--host", "127.0.0.1", "--port", str(port),
        ]
    result["command"] = " ".join(cmd)
    result["log"] = str(log_path)
    server = Server(name, cmd, tmp, port, log_path)
    try:
        result["load_before_start"] = load_average()
        result["startup_s"] = round(server.start(), 3)
        print(f"[{name}] up in {result['startup_s']} s on {server.url}", flush=True)
        time.sleep(2.0)
        result["idle_memory"] = tree_memory(server.proc.pid)
        print(f"[{name}] idle memory {result['idle_memory']}", flush=True)
        session = requests.Session()

        def scenario(key: str, fn) -> None:
            if not server.alive():
                result["scenarios"][key] = {"error": f"{name} is no longer running"}
                return
            print(f"[{name}] {key} ...", flush=True)
            load = load_average()
            try:
                value = fn()
                value["load_before"] = load
                result["scenarios"][key] = value
                summary = {
                    k: v for k, v in value.items()
                    if k.endswith(("rps", "_ms", "_s", "count", "matches", "stored", "non_2xx", "errors", "cores"))
                }
                print(f"[{name}] {key}: {summary}", flush=True)
            except Exception as exc:  # record, keep going with the next scenario
                result["scenarios"][key] = {"error": f"{type(exc).__name__}: {exc}", "load_before": load}
                result["errors"].append(f"{key}: {traceback.format_exc()}")
                print(f"[{name}] {key} FAILED: {exc}", flush=True)
            time.sleep(SETTLE_S)

        result["scenarios"] = {}

        def seed_and_search() -> dict:
            if name == "sextant":
                seeding = seed_over_http(server.url, dataset)
            else:
                seeding = seed_mlflow_in_process(
                    args.mlflow_python, f"sqlite:///{tmp}/mlflow.db", str(tmp / "artifacts"), dataset, tmp
                )
            print(f"[{name}] seeded {seeding}", flush=True)
            time.sleep(SETTLE_S)
            found = search_scenario(server.url, seeding["experiment_id"], server.proc.pid)
            found["seeding"] = seeding
            return found

        scenario("search_runs", seed_and_search)

        experiment_id = create_experiment(session, server.url, "bench-load")

        def log_metric() -> dict:
            run_id = create_run(session, server.url, experiment_id)
            r = run_wrk(args.wrk, server.url, "log_metric.lua", [run_id], args.duration, server.proc.pid)
            time.sleep(SETTLE_S)
            # Sanity: points the server kept (>= 2xx answers: wrk drops in-flight requests at the end).
            r["stored"] = sum(count_history(session, server.url, run_id, f"m{t}") for t in range(WRK_THREADS))
            return r

        def log_batch() -> dict:
            run_id = create_run(session, server.url, experiment_id)
            r = run_wrk(args.wrk, server.url, "log_batch.lua", [run_id], args.duration, server.proc.pid)
            r["metrics_per_s"] = round(r["ok_rps"] * 1000, 1)
            return r

        def create_runs() -> dict:
            target = create_experiment(session, server.url, "bench-create-run")
            r = run_wrk(args.wrk, server.url, "create_run.lua", [target], args.duration, server.proc.pid)
            time.sleep(SETTLE_S)
            r["stored"] = count_runs(session, server.url, target)
            return r

        scenario("log_metric", log_metric)
        scenario("log_batch", log_batch)
        scenario("create_run", create_runs)
        if server.alive():
            result["memory_after_load"] = tree_memory(server.proc.pid)
    except Exception as exc:
        result["errors"].append(traceback.format_exc())
        result["fatal"] = f"{type(exc).__name__}: {exc}"
        print(f"[{name}] FAILED: {exc}", flush=True)
    finally:
        server.stop()
        shutil.rmtree(tmp, ignore_errors=True)
    result["log_problems"] = scan_log(log_path)
    return result


def scan_log(path: Path) -> dict:
    """Counts of alarming lines in a server log (the log file itself is kept)."""
    counts: dict[str, int] = {}
    patterns = {
        "error_lines": re.compile(r"\bERROR\b"),
        "tracebacks": re.compile(r"Traceback \(most recent call last\)"),
        "database_locked": re.compile(r"database is locked", re.I),
        "http_5xx": re.compile(r'" 5\d\d\b|status=5\d\d'),
    }
    ansi = re.compile(r"\x1b\[[0-9;]*m")
    try:
        with open(path, errors="replace") as f:
            for line in f:
                line = ansi.sub("", line)
                for key, pattern in patterns.items():
                    if pattern.search(line):
                        counts[key] = counts.get(key, 0) + 1
    except OSError:
        pass
    return counts


# --------------------------------------------------------------------------- #
# Report


def _get(result: dict | None, *path):
    value = result
    for key in path:
        if not isinstance(value, dict) or key not in value:
            return None
        value = value[key]
    return value


def _fmt(value, digits: int = 1) -> str:
    if value is None:
        return "n/a"
    if isinstance(value, str):
        return value
    if abs(value) >= 1000:
        return f"{value:,.0f}"
    return f"{value:.{digits}f}"


# (label, path into a server's result, higher_is_better, digits)
ROWS = [
    ("start-up, spawn to /health 200 (s)", ("startup_s",), False, 3),
    ("idle memory, RSS summed over processes (MiB)", ("idle_memory", "rss_mib"), False, 1),
    ("idle memory, PSS (MiB)", ("idle_memory", "pss_mib"), False, 1),
    ("log_metric (req/s)", ("scenarios", "log_metric", "ok_rps"), True, 1),
    ("log_metric p50 (ms)", ("scenarios", "log_metric", "p50_ms"), False, 2),
    ("log_metric p99 (ms)", ("scenarios", "log_metric", "p99_ms"), False, 2),
    ("log_batch, 1000 metrics/request (metrics/s)", ("scenarios", "log_batch", "metrics_per_s"), True, 0),
    ("log_batch p50 (ms)", ("scenarios", "log_batch", "p50_ms"), False, 2),
    ("log_batch p99 (ms)", ("scenarios", "log_batch", "p99_ms"), False, 2),
    ("create_run (runs/s)", ("scenarios", "create_run", "ok_rps"), True, 1),
    ("create_run p99 (ms)", ("scenarios", "create_run", "p99_ms"), False, 2),
    ("search_runs p50, 100/page (ms)", ("scenarios", "search_runs", "p50_ms"), False, 2),
    ("search_runs p90, 100/page (ms)", ("scenarios", "search_runs", "p90_ms"), False, 2),
    ("search_runs median, 1000/page (ms)", ("scenarios", "search_runs", "page1000_median_ms"), False, 2),
    ("memory after load, RSS (MiB)", ("memory_after_load", "rss_mib"), False, 1),
]


def ratio(s, m, higher_is_better: bool) -> str:
    if not isinstance(s, (int, float)) or not isinstance(m, (int, float)) or s <= 0 or m <= 0:
        return "n/a"
    r = s / m if higher_is_better else m / s
    return f"{r:,.0f}×" if r >= 100 else f"{r:.1f}×" if r >= 10 else f"{r:.2f}×"


def markdown_table(report: dict) -> str:
    s = report["servers"].get("sextant")
    m = report["servers"].get("mlflow")
    lines = [
        "| scenario | Sextant | MLflow | ratio (Sextant's advantage) |",
        "|---|---:|---:|---:|",
    ]
    for label, path, higher, digits in ROWS:
        sv, mv = _get(s, *path), _get(m, *path)
        if sv is None and mv is None:
            continue
        if path[0] == "scenarios":
            sv = sv if sv is not None else _get(s, *path[:2], "error")
            mv = mv if mv is not None else _get(m, *path[:2], "error")
        lines.append(f"| {label} | {_fmt(sv, digits)} | {_fmt(mv, digits)} | {ratio(sv, mv, higher)} |")
    for key in ("first_page_count", "total_matches"):
        sv = _get(s, "scenarios", "search_runs", key)
        mv = _get(m, "scenarios", "search_runs", key)
        if sv is not None or mv is not None:
            lines.append(f"| search_runs {key.replace('_', ' ')} | {_fmt(sv, 0)} | {_fmt(mv, 0)} | |")
    return "\n".join(lines)


def consistency(report: dict) -> list[str]:
    """Both servers got the same runs, so their search answers must agree."""
    s = _get(report["servers"].get("sextant"), "scenarios", "search_runs")
    m = _get(report["servers"].get("mlflow"), "scenarios", "search_runs")
    if not s or not m or "error" in s or "error" in m:
        return []
    notes = []
    for key in ("first_page_count", "total_matches"):
        same = s[key] == m[key]
        notes.append(f"search_runs {key}: Sextant {s[key]}, MLflow {m[key]} ({'same' if same else 'DIFFERENT'})")
    sa, ma = s["first_page_acc"], m["first_page_acc"]
    close = len(sa) == len(ma) and all(
        a is not None and b is not None and abs(a - b) <= 1e-12 * max(abs(a), abs(b)) for a, b in zip(sa, ma)
    )
    exact = sum(a == b for a, b in zip(sa, ma))
    notes.append(
        f"search_runs first page acc values in order: {'same runs, same order' if close else 'DIFFERENT'} "
        f"(within 1e-12 relative; {exact}/{len(sa)} bit-identical)"
    )
    return notes


# --------------------------------------------------------------------------- #


def _version(cmd: list[str]) -> str:
    try:
        p = subprocess.run(cmd, capture_output=True, text=True, timeout=120)
        return (p.stdout.strip() or p.stderr.strip()).splitlines()[0]
    except Exception as exc:  # noqa: BLE001 - informational only
        return f"unknown ({exc})"


def _binary_id(path: str) -> dict:
    """Which build was measured: the binary's mtime and sha256 prefix."""
    p = Path(path)
    digest = hashlib.sha256(p.read_bytes()).hexdigest()[:16]
    mtime = dt.datetime.fromtimestamp(p.stat().st_mtime).astimezone().isoformat(timespec="seconds")
    return {"path": str(p), "mtime": mtime, "sha256_16": digest}


def run_alone(lock_path: str, what: str):
    """Stops the servers (the finally blocks) on SIGTERM/SIGINT too, and waits
    for any other run holding `lock_path`: two benchmark runs at once would
    measure each other. Returns the open lock file; keep it until the end."""
    # A background job of a non-interactive shell inherits SIGINT ignored; undo that.
    def _terminate(signum, _frame):
        raise SystemExit(128 + signum)

    signal.signal(signal.SIGTERM, _terminate)
    signal.signal(signal.SIGINT, _terminate)
    lock = open(lock_path, "w")
    try:
        fcntl.flock(lock, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        print(f"another {what} holds {lock_path}; waiting for it to finish", flush=True)
        fcntl.flock(lock, fcntl.LOCK_EX)
    return lock


def _cpu_model() -> str:
    try:
        with open("/proc/cpuinfo") as f:
            for line in f:
                if line.startswith("model name"):
                    return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or "unknown"


def main() -> int:
    target = os.environ.get("CARGO_TARGET_DIR") or os.path.expanduser("~/.cache/sextant/target")
    stamp = dt.datetime.now().strftime("%Y%m%d-%H%M%S")
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--sextant-bin", default=os.path.join(target, "release", "sextant"),
                        help="the release binary (default: $CARGO_TARGET_DIR/release/sextant, "
                             "CARGO_TARGET_DIR defaulting to ~/.cache/sextant/target)")
    parser.add_argument("--mlflow", default=str(Path(sys.executable).parent / "mlflow"),
                        help="the mlflow executable (default: the one next to this Python)")
    parser.add_argument("--wrk", default=shutil.which("wrk") or "/usr/bin/wrk")
    parser.add_argument("--duration", type=int, default=10, help="wrk seconds per scenario")
    parser.add_argument("--runs", type=int, default=10000, help="runs seeded for search_runs")
    parser.add_argument("--only", choices=["sextant", "mlflow", "both"], default="both")
    parser.add_argument("--out", default=str(REPO / "bench" / "results" / f"tracking-{stamp}.json"))
    args = parser.parse_args()

    servers = ["sextant", "mlflow"] if args.only == "both" else [args.only]
    if not Path(args.wrk).exists():
        sys.exit(f"wrk not found at {args.wrk} (Debian: apt-get install wrk)")
    if "sextant" in servers and not os.access(args.sextant_bin, os.X_OK):
        sys.exit(f"no Sextant binary at {args.sextant_bin}; build it first: cargo build --release -p sextant-cli")
    if "mlflow" in servers and not os.access(args.mlflow, os.X_OK):
        sys.exit(f"no mlflow executable at {args.mlflow}; pass --mlflow")
    mlflow_python = Path(args.mlflow).parent / "python"
    args.mlflow_python = str(mlflow_python) if mlflow_python.exists() else sys.executable

    lock = run_alone(LOCK_PATH, "tracking benchmark")

    out = Path(args.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    out_stem = out.with_suffix("")

    report = {
        "meta": {
            "date": dt.datetime.now().astimezone().isoformat(timespec="seconds"),
            "argv": sys.argv,
            "host": platform.node(),
            "cpus": os.cpu_count(),
            "cpu_model": _cpu_model(),
            "kernel": platform.release(),
            "python": sys.version.split()[0],
            "uptime_start": _version(["uptime"]),
            "sextant": _version([args.sextant_bin, "--version"]) if "sextant" in servers else None,
            "sextant_binary": _binary_id(args.sextant_bin) if "sextant" in servers else None,
            "mlflow": _version([args.mlflow, "--version"]) if "mlflow" in servers else None,
            "wrk": _version([args.wrk, "--version"]),
            "git": _version(["git", "-C", str(REPO), "describe", "--always", "--dirty"]),
            "settings": {
                "wrk": f"-t{WRK_THREADS} -c{WRK_CONNECTIONS} -d{args.duration}s --latency --timeout {WRK_TIMEOUT}",
                "runs": args.runs,
                "search": {"filter": SEARCH_FILTER, "order_by": SEARCH_ORDER, "page": SEARCH_PAGE,
                           "repeats": SEARCH_REPEATS, "big_page": SEARCH_BIG_PAGE,
                           "big_repeats": SEARCH_BIG_REPEATS},
            },
        },
        "servers": {},
    }
    print(f"load: {report['meta']['uptime_start']}", flush=True)
    dataset = make_dataset(args.runs)
    for name in servers:
        report["servers"][name] = bench_server(name, args, dataset, out_stem)
        out.write_text(json.dumps(report, indent=2))  # keep partial results
    report["meta"]["uptime_end"] = _version(["uptime"])
    report["consistency"] = consistency(report)
    report["table"] = markdown_table(report)
    out.write_text(json.dumps(report, indent=2))

    print()
    print(report["table"])
    print()
    for note in report["consistency"]:
        print(f"- {note}")
    for name, r in report["servers"].items():
        for key, sc in r.get("scenarios", {}).items():
            bad = sc.get("non_2xx") or sum(sc.get("socket_errors", {}).values()) if isinstance(sc, dict) else 0
            if bad:
                print(f"- {name} {key}: {sc.get('non_2xx')} non-2xx, socket errors {sc.get('socket_errors')}")
            if "error" in sc:
                print(f"- {name} {key}: ERROR {sc['error']}")
        if r.get("log_problems"):
            print(f"- {name} log: {r['log_problems']} ({r['log']})")
    print(f"- load: start [{report['meta']['uptime_start']}], end [{report['meta']['uptime_end']}]")
    print(f"\nJSON: {out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
