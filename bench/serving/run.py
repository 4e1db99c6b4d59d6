#!/usr/bin/env python3
"""Serving benchmark: Sextant against Python model servers and the loopback ceiling.

One model for every server: RandomForestClassifier(n_estimators=100,
max_depth=8, random_state=0) on make_classification(n_samples=20000,
n_features=20, random_state=0), each server returning the class
probabilities of the same single row. The servers, one running at a time,
each on a free 127.0.0.1 port:

  hello                the loopback ceiling: bench/serving/hello (axum, 2 worker
                       threads) reads the OIP body and answers a fixed JSON
  sextant-oip          `sextant server`, the model registered with the mlflow
                       client and deployed; POST /v2/models/bench-rf/infer
  sextant-invocations  the same deployment, MLflow scoring protocol:
                       POST /deployments/bench-rf/invocations (dataframe_split)
  sextant-nolog        a second deployment of the same version with the
                       prediction log off (PATCH settings.log_predictions=false)
  sextant-nomonitor    a third one with live monitoring off (PATCH
                       settings.monitor=false); the others monitor every request
  mlserver-onnx        MLServer 1.7.1, the forest as ONNX in onnxruntime
                       (mlserver_onnx_runtime.py, 1 intra-op thread),
                       parallel_workers=0 (inference in the HTTP process)
  mlserver-sklearn     MLServer 1.7.1, mlserver_sklearn with
                       predict_fn=predict_proba, parallel_workers=0
  mlflow               `mlflow models serve --env-manager local` on the MLflow
                       model directory (dataframe_split); slow, so it gets
                       --mlflow-duration seconds

For each server: start it, check its answer for the benchmark row against
scikit-learn's predict_proba (a server that answers wrong is not loaded),
warm up, then `wrk -t1 -c32 -d<duration>s --latency -s post.lua` with that
protocol's single-row body. Recorded: requests/s, p50/p90/p99, non-2xx,
the server's CPU time per request (utime+stime of its whole process tree
during the run, from /proc, divided by the requests) and how the machine's
cores were split between server, wrk and everything else. --rounds repeats
the whole sequence, reversing the order (of the servers, and of Sextant's
variants) every other round; the table
quotes medians, and ratios are medians of the per-round ratios.

Everything it needs is set up on the first run: a venv with requirements.txt
(~/.cache/sextant/venv-bench-serving, or $SEXTANT_BENCH_VENV), Debian's wrk,
the hello server. It does not build Sextant; build it first:

    cargo build --release -p sextant-cli          # with CARGO_TARGET_DIR=~/.cache/sextant/target
    python3 bench/serving/run.py --rounds 3       # writes bench/results/serving-<time>.json
    python3 bench/serving/run.py --quick          # a short smoke run

See README.md beside this file.
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import os
import shutil
import signal
import statistics
import subprocess
import sys
import tempfile
import time
import traceback
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
import common  # noqa: E402
from common import HERE, REPO, log  # noqa: E402

GROUPS = {
    "hello": ["hello"],
    "sextant": ["sextant-oip", "sextant-nolog", "sextant-nomonitor", "sextant-invocations"],
    "mlserver-onnx": ["mlserver-onnx"],
    "mlserver-sklearn": ["mlserver-sklearn"],
    "mlflow": ["mlflow"],
}
VARIANTS = [v for group in GROUPS.values() for v in group]
LABELS = {
    "hello": "hello (loopback ceiling, axum)",
    "sextant-oip": "Sextant, OIP v2",
    "sextant-nolog": "Sextant, OIP v2, prediction log off",
    "sextant-nomonitor": "Sextant, OIP v2, monitoring off",
    "sextant-invocations": "Sextant, /invocations",
    "mlserver-onnx": "MLServer 1.7.1 + onnxruntime",
    "mlserver-sklearn": "MLServer 1.7.1 + sklearn",
    "mlflow": "mlflow models serve",
}
MODEL = "bench-rf"  # registered model and Sextant deployment (prediction log on)
MODEL_NOLOG = "bench-rf-nolog"  # the same version, prediction log off
MODEL_NOMONITOR = "bench-rf-nomonitor"  # the same version, live monitoring off
WRK_THREADS = 1
WRK_TIMEOUT = "10s"
START_TIMEOUT_S = 300.0
TOLERANCE = 1e-6  # ONNX answers float32 probabilities
SKLEARN_FORMAT = ["cloudpickle"]  # set from --sklearn-format
SETTLE_S = 2.0  # pause between runs, so that work queued by one does not land in the next

tracking = None  # bench/tracking/run.py, loaded in main() (it imports requests)


# --------------------------------------------------------------------------- #
# Processes


class Proc:
    """One server process in its own process group, stopped as a whole."""

    def __init__(self, name: str, cmd: list[str], log_path: Path, env: dict | None = None, cwd: Path | None = None):
        self.name = name
        self.cmd = cmd
        self.log_path = log_path
        self.env = env
        self.cwd = cwd
        self.proc: subprocess.Popen | None = None
        self._log = None

    def start(self, ready_url: str, timeout: float = START_TIMEOUT_S) -> float:
        """Spawn and wait until GET `ready_url` answers 200; seconds taken."""
        import requests

        env = dict(os.environ)
        env.update({"MLFLOW_DISABLE_TELEMETRY": "true", "DO_NOT_TRACK": "true"})
        env.update(self.env or {})
        self._log = open(self.log_path, "ab")
        self._log.write(f"\n=== {dt.datetime.now().isoformat()} {' '.join(self.cmd)}\n".encode())
        self._log.flush()
        started = time.perf_counter()
        self.proc = subprocess.Popen(
            self.cmd, stdout=self._log, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
            env=env, cwd=self.cwd, start_new_session=True,
        )
        session = requests.Session()
        while True:
            if self.proc.poll() is not None:
                raise RuntimeError(f"{self.name} exited with {self.proc.returncode} (log: {self.log_path})")
            try:
                if session.get(ready_url, timeout=2).status_code == 200:
                    return time.perf_counter() - started
            except requests.RequestException:
                pass
            if time.perf_counter() - started > timeout:
                raise RuntimeError(f"{self.name} not ready at {ready_url} after {timeout} s (log: {self.log_path})")
            time.sleep(0.05)

    @property
    def pid(self) -> int:
        return self.proc.pid

    def alive(self) -> bool:
        return self.proc is not None and self.proc.poll() is None

    def stop(self) -> None:
        if self.proc is None:
            return
        pids = tracking.process_tree(self.proc.pid)
        for sig, wait in ((signal.SIGTERM, 20), (signal.SIGKILL, 10)):
            try:
                os.killpg(self.proc.pid, sig)
            except ProcessLookupError:
                pass
            try:
                self.proc.wait(timeout=wait)
                break
            except subprocess.TimeoutExpired:
                continue
        # Children that left the group (none expected) are ours too: by pid.
        deadline = time.monotonic() + 5
        for pid in pids[1:]:
            while tracking._pid_alive(pid) and time.monotonic() < deadline:
                time.sleep(0.05)
            if tracking._pid_alive(pid):
                try:
                    os.kill(pid, signal.SIGKILL)
                except ProcessLookupError:
                    pass
        self.proc = None
        if self._log:
            self._log.close()
            self._log = None


# --------------------------------------------------------------------------- #
# The model and what each server needs


def prepare_model(work: Path) -> dict:
    """Train the forest, pick the benchmark row, write the bodies and every
    peer's model files. Returns what the servers need."""
    import joblib
    import numpy as np

    log("training the forest")
    X, y = common.make_data()
    clf = common.train_forest(X, y)
    row = X[:1]
    expected = clf.predict_proba(row)[0].tolist()
    columns = [f"f{i}" for i in range(common.N_FEATURES)]
    values = [float(v) for v in row[0]]  # json.dumps writes the shortest repr: the same float64 everywhere

    bodies = {
        "oip": {
            "inputs": [{"name": "input-0", "shape": [1, common.N_FEATURES], "datatype": "FP64", "data": values}],
            "outputs": [{"name": "predict_proba"}],
        },
        "mlflow": {"dataframe_split": {"columns": columns, "data": [values]}},
    }
    paths = {}
    for key, body in bodies.items():
        paths[key] = work / f"body-{key}.json"
        paths[key].write_text(json.dumps(body, separators=(",", ":")))

    # MLServer + sklearn: a joblib file.
    sk_dir = work / "mlserver-sklearn"
    sk_dir.mkdir()
    joblib.dump(clf, sk_dir / "model.joblib")
    (sk_dir / "model-settings.json").write_text(json.dumps({
        "name": "rf",
        "implementation": "mlserver_sklearn.SKLearnModel",
        "parameters": {"uri": "./model.joblib", "version": "v1", "extra": {"predict_fn": "predict_proba"}},
    }, indent=2))

    # MLServer + onnxruntime: ONNX without zipmap, the custom runtime beside this file.
    onnx_dir = work / "mlserver-onnx"
    onnx_dir.mkdir()
    common.export_onnx(clf, onnx_dir / "rf.onnx")
    (onnx_dir / "model-settings.json").write_text(json.dumps({
        "name": "rf",
        "implementation": "mlserver_onnx_runtime.OnnxRuntime",
        "parameters": {"uri": "./rf.onnx", "version": "v1"},
    }, indent=2))

    # MLflow: the sklearn flavor, pyfunc predict_proba, and the signature MLflow
    # infers from the numpy training data (a float64 tensor [-1, 20]); the same
    # arguments log_model gets when the model goes to Sextant. (A column signature
    # on a forest fitted without feature names would make scikit-learn warn on
    # every request MLflow hands it a DataFrame: a cost of the benchmark, not of
    # the server.) dataframe_split bodies are accepted with either signature.
    import mlflow.sklearn
    from mlflow.models import infer_signature

    signature = infer_signature(X[:100], clf.predict_proba(X[:100]))
    mlflow.sklearn.save_model(clf, str(work / "mlflow-model"), **sklearn_flavor_args(signature))

    onnx_check = onnx_max_diff(onnx_dir / "rf.onnx", X[:1000], clf.predict_proba(X[:1000]))
    log(f"model ready: row 0 predict_proba {expected}; ONNX max |diff| over 1000 rows {onnx_check:.2e}")
    return {
        "clf": clf, "signature": signature, "expected": expected, "row": values,
        "bodies": paths, "body_bytes": {k: p.stat().st_size for k, p in paths.items()},
        "dirs": {"mlserver-sklearn": sk_dir, "mlserver-onnx": onnx_dir, "mlflow": work / "mlflow-model"},
        "onnx_max_abs_diff_1000_rows": onnx_check,
        "train_accuracy": float(clf.score(X, y)),
        "reference_csv": reference_csv(X[:5000]),
    }


def reference_csv(X) -> bytes:
    """Training rows as CSV, the reference the Sextant deployments monitor against."""
    header = ",".join(f"f{i}" for i in range(X.shape[1]))
    lines = [header] + [",".join(repr(float(v)) for v in row) for row in X]
    return ("\n".join(lines) + "\n").encode()


def sklearn_flavor_args(signature) -> dict:
    """What save_model and log_model get. MLflow 3.17 writes skops by default,
    which Sextant's native engine does not read (it reads pickles, as
    MLflow's `cloudpickle` and `pickle` formats write them): --sklearn-format
    picks, cloudpickle by default."""
    args = {"signature": signature, "pyfunc_predict_fn": "predict_proba",
            "serialization_format": SKLEARN_FORMAT[0]}
    if SKLEARN_FORMAT[0] == "skops":
        args["skops_trusted_types"] = ["sklearn.tree._tree.Tree"]  # the forest's node arrays
    return args


def onnx_max_diff(path: Path, X, expected) -> float:
    import numpy as np
    import onnxruntime as ort

    session = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    outputs = [o.name for o in session.get_outputs()]
    proba = session.run(["probabilities" if "probabilities" in outputs else outputs[-1]],
                        {session.get_inputs()[0].name: X.astype(np.float32)})[0]
    return float(np.max(np.abs(proba - expected)))


def register_and_deploy(url: str, model: dict) -> dict:
    """Log the forest to Sextant with the unmodified mlflow client, register
    it, deploy it twice (prediction log on; off) and wait for both."""
    import mlflow
    import mlflow.sklearn
    import requests

    log("registering the model in Sextant with the mlflow client")
    mlflow.set_tracking_uri(url)
    mlflow.set_experiment("bench-serving")
    with mlflow.start_run():
        info = mlflow.sklearn.log_model(model["clf"], name="model", **sklearn_flavor_args(model["signature"]))
    version = mlflow.register_model(info.model_uri, MODEL).version
    session = requests.Session()
    created = {}
    for name in (MODEL, MODEL_NOLOG, MODEL_NOMONITOR):
        log(f"deploying {MODEL}/{version} as {name}")
        t = time.perf_counter()
        r = session.post(f"{url}/api/v1/deployments", json={"name": name, "model": f"{MODEL}/{version}"}, timeout=900)
        if r.status_code != 200:
            raise RuntimeError(f"POST /api/v1/deployments {name} -> {r.status_code}: {r.text[:1000]}")
        created[name] = {"seconds": round(time.perf_counter() - t, 2)}
    r = session.patch(f"{url}/api/v1/deployments/{MODEL_NOLOG}", json={"settings": {"log_predictions": False}}, timeout=900)
    if r.status_code != 200:
        raise RuntimeError(f"PATCH /api/v1/deployments/{MODEL_NOLOG} -> {r.status_code}: {r.text[:1000]}")
    nolog_spec = r.json().get("spec")
    # The training data is the monitoring reference (matched by position: the
    # model's input is one unnamed 20-wide matrix).
    for name in (MODEL, MODEL_NOLOG, MODEL_NOMONITOR):
        r = session.put(f"{url}/api/v1/deployments/{name}/monitoring/reference", data=model["reference_csv"], timeout=900)
        if r.status_code != 200:
            raise RuntimeError(f"PUT monitoring reference of {name} -> {r.status_code}: {r.text[:1000]}")
    r = session.patch(f"{url}/api/v1/deployments/{MODEL_NOMONITOR}", json={"settings": {"monitor": False}}, timeout=900)
    if r.status_code != 200:
        raise RuntimeError(f"PATCH /api/v1/deployments/{MODEL_NOMONITOR} -> {r.status_code}: {r.text[:1000]}")
    return {"model": f"{MODEL}/{version}", "deploy": created, "nolog_spec": nolog_spec,
            "nomonitor_spec": r.json().get("spec")}


# --------------------------------------------------------------------------- #
# Servers: how to start each, where to send the load, how to read its answer


class Group:
    """One server process and the variants measured against it."""

    def __init__(self, name: str, args, model: dict, out_stem: Path, state: dict):
        self.name = name
        self.args = args
        self.model = model
        self.state = state  # survives across rounds (Sextant's data dir, its registration)
        self.port = tracking.free_port()
        self.base = f"http://127.0.0.1:{self.port}"
        self.log_path = out_stem.with_name(out_stem.name + f".{name}.log")
        self.proc: Proc | None = None

    def start(self) -> float:
        venv_bin = str(Path(sys.executable).parent)
        path_env = {"PATH": f"{venv_bin}{os.pathsep}{os.environ.get('PATH', '')}"}
        if self.name == "hello":
            cmd, ready = [str(self.args.hello_bin), "--port", str(self.port)], "/health"
            env = {}
        elif self.name == "sextant":
            data = self.state.setdefault("sextant_data", self.args.work / "sextant-data")
            cmd = [str(self.args.sextant_bin), "server", "--port", str(self.port), "--data-dir", str(data),
                   "--python", sys.executable]
            ready, env = "/health", {}
        elif self.name.startswith("mlserver"):
            directory = self.model["dirs"][self.name]
            (directory / "settings.json").write_text(json.dumps({
                "debug": False, "host": "127.0.0.1", "http_port": self.port,
                "grpc_port": tracking.free_port(), "metrics_port": tracking.free_port(),
                "parallel_workers": 0,
            }, indent=2))
            cmd = [os.path.join(venv_bin, "mlserver"), "start", str(directory)]
            ready = "/v2/models/rf/ready"
            env = dict(path_env, PYTHONPATH=str(HERE))
        elif self.name == "mlflow":
            cmd = [os.path.join(venv_bin, "mlflow"), "models", "serve", "-m", str(self.model["dirs"]["mlflow"]),
                   "--env-manager", "local", "-h", "127.0.0.1", "-p", str(self.port), "-w", "1"]
            ready, env = "/health", path_env  # it execs uvicorn from PATH
        else:
            raise ValueError(self.name)
        self.proc = Proc(self.name, cmd, self.log_path, env=env)
        seconds = self.proc.start(self.base + ready)
        if self.name == "sextant":
            seconds = self._sextant_ready(seconds)
        return seconds

    def _sextant_ready(self, seconds: float) -> float:
        """First start: register and deploy. Later starts: the deployments
        come back from the data dir; wait until both are ready."""
        import requests

        if "sextant_setup" not in self.state:
            self.state["sextant_setup"] = register_and_deploy(self.base, self.model)
        t = time.perf_counter()
        for name in (MODEL, MODEL_NOLOG, MODEL_NOMONITOR):
            while requests.get(f"{self.base}/v2/models/{name}/ready", timeout=5).status_code != 200:
                if time.perf_counter() - t > START_TIMEOUT_S:
                    raise RuntimeError(f"deployment {name} not ready after {START_TIMEOUT_S} s")
                time.sleep(0.05)
        return seconds + time.perf_counter() - t

    def stop(self) -> None:
        if self.proc:
            self.proc.stop()
            self.proc = None

    def target(self, variant: str) -> tuple[str, str]:
        """(URL, body key) of a variant."""
        return {
            "hello": (f"{self.base}/v2/models/hello/infer", "oip"),
            "sextant-oip": (f"{self.base}/v2/models/{MODEL}/infer", "oip"),
            "sextant-nolog": (f"{self.base}/v2/models/{MODEL_NOLOG}/infer", "oip"),
            "sextant-nomonitor": (f"{self.base}/v2/models/{MODEL_NOMONITOR}/infer", "oip"),
            "sextant-invocations": (f"{self.base}/deployments/{MODEL}/invocations", "mlflow"),
            "mlserver-onnx": (f"{self.base}/v2/models/rf/infer", "oip"),
            "mlserver-sklearn": (f"{self.base}/v2/models/rf/infer", "oip"),
            "mlflow": (f"{self.base}/invocations", "mlflow"),
        }[variant]

    def metadata(self, variant: str) -> dict:
        """What the server says about the model (OIP model metadata)."""
        import requests

        path = {
            "sextant-oip": f"/v2/models/{MODEL}", "sextant-invocations": f"/v2/models/{MODEL}",
            "sextant-nolog": f"/v2/models/{MODEL_NOLOG}",
            "sextant-nomonitor": f"/v2/models/{MODEL_NOMONITOR}",
            "mlserver-onnx": "/v2/models/rf", "mlserver-sklearn": "/v2/models/rf",
        }.get(variant)
        if not path:
            return {}
        try:
            r = requests.get(self.base + path, timeout=10)
            return r.json() if r.status_code == 200 else {"status": r.status_code, "body": r.text[:500]}
        except Exception as exc:  # noqa: BLE001 - informational
            return {"error": str(exc)}


def probabilities(answer) -> list[float] | None:
    """The class probabilities of the one row in an OIP or MLflow answer."""
    if isinstance(answer, dict) and "outputs" in answer:
        for out in answer["outputs"]:
            if out.get("name") == "predict_proba":
                data = out["data"]
                while data and isinstance(data[0], list):
                    data = [x for sub in data for x in sub]
                return [float(x) for x in data]
        return None
    if isinstance(answer, dict) and "predictions" in answer:
        pred = answer["predictions"]
        first = pred[0] if isinstance(pred, list) and pred else pred
        if isinstance(first, dict):
            return [float(v) for v in first.values()]
        if isinstance(first, list):
            return [float(x) for x in first]
    return None


def check_answer(group: Group, variant: str, model: dict) -> dict:
    """POST the benchmark body once and compare with sklearn's predict_proba."""
    import requests

    url, body_key = group.target(variant)
    body = model["bodies"][body_key].read_bytes()
    r = requests.post(url, data=body, headers={"Content-Type": "application/json"}, timeout=60)
    result = {"status": r.status_code, "answer": r.text[:400]}
    if r.status_code != 200:
        result["ok"] = False
        return result
    if variant == "hello":
        result.update(ok=True, note="fixed answer, not checked")
        return result
    got = probabilities(r.json())
    expected = model["expected"]
    if got is None or len(got) != len(expected):
        result.update(ok=False, note="no predict_proba of the expected length in the answer")
        return result
    diff = max(abs(a - b) for a, b in zip(got, expected))
    result.update(ok=diff <= TOLERANCE, max_abs_diff=diff, got=got, expected=expected)
    return result


# --------------------------------------------------------------------------- #
# Load


def run_wrk(args, url: str, body: Path, duration: int, server_pid: int | None, connections: int) -> dict:
    """One wrk run; with `server_pid`, the server's CPU time and the machine's split during it."""
    cmd = [args.wrk, f"-t{WRK_THREADS}", f"-c{connections}", f"-d{duration}s", "--latency",
           "--timeout", WRK_TIMEOUT, "-s", str(HERE / "post.lua"), url]
    env = dict(os.environ, BODY_FILE=str(body))
    if server_pid is None:  # warm-up: nothing measured
        proc = subprocess.run(cmd, capture_output=True, text=True, timeout=duration + 120, env=env)
        return tracking.parse_wrk(proc.stdout)
    ticks0 = tracking._tree_ticks(server_pid)
    with tracking.CpuMeter(server_pid) as cpu:
        proc = subprocess.run(cmd, capture_output=True, text=True, timeout=duration + 120, env=env)
    ticks = tracking._tree_ticks(server_pid) - ticks0
    result = tracking.parse_wrk(proc.stdout)
    if result.get("wrk_rps") is None:
        raise RuntimeError(f"could not parse wrk output:\n{proc.stdout}\n{proc.stderr}")
    result["command"] = f"BODY_FILE={body.name} " + " ".join(cmd)
    result["cpu_cores"] = cpu.cores
    if proc.returncode != 0 or proc.stderr.strip():
        result["stderr"] = proc.stderr
    if result.get("requests"):
        server_s = ticks / os.sysconf("SC_CLK_TCK")
        result["server_cpu_s"] = round(server_s, 3)
        result["cpu_us_per_request"] = round(server_s / result["requests"] * 1e6, 2)
    result["output"] = proc.stdout
    return result


def measure_variant(group: Group, variant: str, args, model: dict) -> dict:
    url, body_key = group.target(variant)
    body = model["bodies"][body_key]
    out: dict = {"url": url, "body": body.name, "load_before": tracking.load_average()}
    out["check"] = check_answer(group, variant, model)
    if not out["check"]["ok"]:
        out["error"] = f"wrong or failed answer, not loaded: {out['check']}"
        log(f"[{variant}] {out['error']}")
        return out
    duration = args.mlflow_duration if variant == "mlflow" else args.duration
    if args.warmup > 0:
        run_wrk(args, url, body, args.warmup, None, args.connections)
    time.sleep(0.5)
    r = run_wrk(args, url, body, duration, group.proc.pid, args.connections)
    if not args.keep_wrk_output:
        r.pop("output", None)
    out.update(r)
    out["memory_after"] = tracking.tree_memory(group.proc.pid)
    log(f"[{variant}] {out.get('ok_rps')} req/s, p50 {out.get('p50_ms')} ms, p99 {out.get('p99_ms')} ms, "
        f"{out.get('cpu_us_per_request')} µs CPU/req, non-2xx {out.get('non_2xx')}, cores {out.get('cpu_cores')}")
    return out


def run_group(name: str, variants: list[str], args, model: dict, out_stem: Path, state: dict) -> dict:
    group = Group(name, args, model, out_stem, state)
    results: dict = {}
    try:
        load = tracking.load_average()
        started = group.start()
        log(f"[{name}] ready in {started:.2f} s on {group.base}")
        for variant in variants:
            meta = group.metadata(variant)
            try:
                results[variant] = measure_variant(group, variant, args, model)
            except Exception as exc:  # record, go on with the next
                results[variant] = {"error": f"{type(exc).__name__}: {exc}", "traceback": traceback.format_exc()}
                log(f"[{variant}] FAILED: {exc}")
            results[variant]["start_s"] = round(started, 3)
            results[variant]["load_before_start"] = load
            if meta:
                results[variant]["metadata"] = meta
                results[variant]["platform"] = meta.get("platform")
            if not group.proc.alive():
                raise RuntimeError(f"{name} died (log: {group.log_path})")
            time.sleep(SETTLE_S)
    except Exception as exc:
        log(f"[{name}] FAILED: {exc}")
        for variant in variants:
            results.setdefault(variant, {"error": f"{type(exc).__name__}: {exc}", "traceback": traceback.format_exc()})
    finally:
        group.stop()
    return results


# --------------------------------------------------------------------------- #
# Report


def median_of(values: list) -> float | None:
    values = [v for v in values if isinstance(v, (int, float))]
    return statistics.median(values) if values else None


def summarize(rounds: list[dict], variants: list[str]) -> dict:
    summary = {}
    for v in variants:
        runs = [r[v] for r in rounds if v in r]
        ok = [r for r in runs if "error" not in r]
        summary[v] = {
            key: median_of([r.get(key) for r in ok])
            for key in ("ok_rps", "wrk_rps", "p50_ms", "p90_ms", "p99_ms", "cpu_us_per_request", "non_2xx")
        }
        summary[v]["rounds_ok"] = len(ok)
        summary[v]["rounds"] = len(runs)
        summary[v]["ok_rps_per_round"] = [r.get("ok_rps") for r in ok]
        summary[v]["non_2xx_total"] = sum(r.get("non_2xx", 0) for r in ok)
        summary[v]["socket_errors_total"] = sum(sum(r.get("socket_errors", {}).values()) for r in ok)
        summary[v]["cores_server_median"] = median_of([r.get("cpu_cores", {}).get("server") for r in ok])
        summary[v]["cores_client_median"] = median_of([r.get("cpu_cores", {}).get("client") for r in ok])
        summary[v]["cores_other_median"] = median_of([r.get("cpu_cores", {}).get("other") for r in ok])
        platforms = {r.get("platform") for r in runs if r.get("platform") is not None}
        summary[v]["platform"] = ", ".join(sorted(platforms)) if platforms else None
        diffs = [r["check"].get("max_abs_diff") for r in runs if r.get("check", {}).get("max_abs_diff") is not None]
        summary[v]["answer_max_abs_diff"] = max(diffs) if diffs else None
    return summary


def paired(rounds: list[dict], a: str, b: str, key: str, fn) -> dict:
    """fn(a's figure, b's figure) per round where both ran; their median."""
    values = []
    for r in rounds:
        x, y = r.get(a, {}).get(key), r.get(b, {}).get(key)
        if isinstance(x, (int, float)) and isinstance(y, (int, float)) and y:
            values.append(fn(x, y))
    return {"median": median_of(values), "per_round": values}


def targets(rounds: list[dict], summary: dict) -> list[dict]:
    rows = []

    def add(figure, value, target, ok, per_round=None):
        rows.append({"figure": figure, "value": value, "target": target, "met": ok, "per_round": per_round})

    ratio = lambda x, y: x / y  # noqa: E731
    r = paired(rounds, "sextant-oip", "mlserver-onnx", "ok_rps", ratio)
    if r["median"] is not None:
        add("Sextant OIP req/s ÷ MLServer+onnxruntime req/s", r["median"], "≥ 30×", r["median"] >= 30, r["per_round"])
    r = paired(rounds, "sextant-oip", "hello", "ok_rps", ratio)
    if r["median"] is not None:
        add("Sextant OIP req/s ÷ hello req/s", r["median"], "≥ 50%", r["median"] >= 0.5, r["per_round"])
    p99 = summary.get("sextant-oip", {}).get("p99_ms")
    if p99 is not None:
        add("Sextant OIP p99 (ms)", p99, "< 5 ms", p99 < 5)
    r = paired(rounds, "sextant-oip", "sextant-nolog", "ok_rps", lambda on, off: 1 - on / off)
    if r["median"] is not None:
        add("prediction log cost: 1 − req/s(log on) ÷ req/s(log off)", r["median"], "< 10%", r["median"] < 0.10,
            r["per_round"])
    r = paired(rounds, "sextant-oip", "sextant-nolog", "cpu_us_per_request", lambda on, off: on - off)
    if r["median"] is not None:
        add("prediction log cost: CPU µs/request (log on − log off)", r["median"], "", None, r["per_round"])
    r = paired(rounds, "sextant-oip", "sextant-nomonitor", "ok_rps", lambda on, off: 1 - on / off)
    if r["median"] is not None:
        add("monitoring cost: 1 − req/s(monitoring on) ÷ req/s(monitoring off)", r["median"], "< 5%",
            r["median"] < 0.05, r["per_round"])
    r = paired(rounds, "sextant-oip", "sextant-nomonitor", "cpu_us_per_request", lambda on, off: on - off)
    if r["median"] is not None:
        add("monitoring cost: CPU µs/request (on − off)", r["median"], "", None, r["per_round"])
    for peer, label in (("mlserver-sklearn", "MLServer+sklearn"), ("mlflow", "mlflow models serve")):
        r = paired(rounds, "sextant-oip", peer, "ok_rps", ratio)
        if r["median"] is not None:
            add(f"Sextant OIP req/s ÷ {label} req/s", r["median"], "", None, r["per_round"])
    r = paired(rounds, "sextant-invocations", "mlflow", "ok_rps", ratio)
    if r["median"] is not None:
        add("Sextant /invocations req/s ÷ mlflow models serve req/s", r["median"], "", None, r["per_round"])
    return rows


def _fmt(value, digits: int = 1) -> str:
    if value is None:
        return "n/a"
    if isinstance(value, str):
        return value
    if abs(value) >= 1000:
        return f"{value:,.0f}"
    return f"{value:.{digits}f}"


def _fmt_target(row: dict) -> str:
    v, fig = row["value"], row["figure"]
    if "1 − req/s" in fig:
        return f"{v * 100:.1f}%"
    if "hello" in fig:
        return f"{v * 100:.0f}%"
    if "÷" in fig:
        return f"{v:,.0f}×" if v >= 100 else f"{v:.1f}×"
    return _fmt(v, 2)


def markdown(summary: dict, rows: list[dict], variants: list[str]) -> str:
    lines = [
        "| server | engine/platform | req/s | p50 ms | p90 ms | p99 ms | server CPU µs/req | non-2xx | cores: server / wrk / other | rounds |",
        "|---|---|---:|---:|---:|---:|---:|---:|---|---:|",
    ]
    for v in variants:
        s = summary[v]
        cores = "/".join(_fmt(s.get(k), 2) for k in ("cores_server_median", "cores_client_median", "cores_other_median"))
        platform = s.get("platform")
        if not platform:
            platform = {"hello": "—", "mlflow": "sklearn (pyfunc)", "mlserver-sklearn": "sklearn", "mlserver-onnx": "onnxruntime"}.get(v, "")
        if not platform and v == "mlserver-onnx":
            platform = "onnxruntime"
        lines.append(
            f"| {LABELS[v]} | {platform} | {_fmt(s['ok_rps'])} | {_fmt(s['p50_ms'], 2)} | {_fmt(s['p90_ms'], 2)} | "
            f"{_fmt(s['p99_ms'], 2)} | {_fmt(s['cpu_us_per_request'], 1)} | {s['non_2xx_total']} | {cores} | "
            f"{s['rounds_ok']}/{s['rounds']} |"
        )
    if rows:
        lines += ["", "| figure | value | target | met |", "|---|---:|---|---|"]
        for row in rows:
            met = "" if row["met"] is None else ("✔" if row["met"] else "✘")
            lines.append(f"| {row['figure']} | {_fmt_target(row)} | {row['target']} | {met} |")
    return "\n".join(lines)


# --------------------------------------------------------------------------- #


def parse_args() -> argparse.Namespace:
    stamp = dt.datetime.now().strftime("%Y%m%d-%H%M%S")
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--sextant-bin", default=str(common.SEXTANT_BIN),
                        help="the release binary (default: $CARGO_TARGET_DIR/release/sextant, "
                             "CARGO_TARGET_DIR defaulting to ~/.cache/sextant/target)")
    parser.add_argument("--hello-bin", default=str(common.HELLO_BIN), help="built if missing (default: %(default)s)")
    parser.add_argument("--wrk", default=None, help="wrk executable (default: from PATH; apt-get install if missing)")
    parser.add_argument("--rounds", type=int, default=3, help="repeat every server this many times (default 3)")
    parser.add_argument("--duration", type=int, default=10, help="wrk seconds per server (default 10)")
    parser.add_argument("--mlflow-duration", type=int, default=None,
                        help="wrk seconds for mlflow models serve (default: half of --duration, at least 3)")
    parser.add_argument("--warmup", type=int, default=3, help="wrk seconds before each measured run (default 3)")
    parser.add_argument("--connections", type=int, default=32, help="wrk connections (default 32)")
    parser.add_argument("--quick", action="store_true",
                        help="a smoke run: 1 round, 3 s per server, 2 s for mlflow, 1 s warm-up")
    parser.add_argument("--only", default="",
                        help="comma-separated servers: " + ", ".join(VARIANTS) + "; or a group: sextant, mlserver")
    parser.add_argument("--sklearn-format", choices=["cloudpickle", "pickle", "skops"], default="cloudpickle",
                        help="MLflow's serialization_format for the sklearn flavor (default cloudpickle: the "
                             "pickle Sextant's native engine reads; skops is MLflow 3.17's own default)")
    parser.add_argument("--keep-wrk-output", action="store_true", help="keep wrk's text output in the JSON")
    parser.add_argument("--out", default=str(REPO / "bench" / "results" / f"serving-{stamp}.json"))
    args = parser.parse_args()
    if args.quick:
        args.rounds, args.duration, args.warmup = 1, 3, 1
        args.mlflow_duration = args.mlflow_duration or 2
    if args.mlflow_duration is None:
        args.mlflow_duration = max(3, args.duration // 2)
    chosen: list[str] = []
    for item in filter(None, (s.strip() for s in args.only.split(","))):
        if item in GROUPS:
            chosen += GROUPS[item]
        elif item == "mlserver":
            chosen += GROUPS["mlserver-onnx"] + GROUPS["mlserver-sklearn"]
        elif item in VARIANTS:
            chosen.append(item)
        else:
            parser.error(f"--only: unknown server {item!r} (known: {', '.join(VARIANTS)})")
    args.variants = [v for v in VARIANTS if v in chosen] if chosen else list(VARIANTS)
    return args


def main() -> int:
    common.enter_venv(__file__)  # may re-execute this script in the benchmark venv
    args = parse_args()
    SKLEARN_FORMAT[0] = args.sklearn_format
    global tracking
    tracking = common.load_tracking_helpers()

    # Stop the servers (the finally blocks) on SIGTERM/SIGINT too. A background
    # job of a non-interactive shell inherits SIGINT ignored; undo that.
    def _terminate(signum, _frame):
        raise SystemExit(128 + signum)

    signal.signal(signal.SIGTERM, _terminate)
    signal.signal(signal.SIGINT, _terminate)

    args.wrk = common.ensure_wrk(args.wrk)
    groups = [g for g, vs in GROUPS.items() if any(v in args.variants for v in vs)]
    if "hello" in groups:
        if Path(args.hello_bin) == common.HELLO_BIN:
            common.ensure_hello()
        elif not os.access(args.hello_bin, os.X_OK):
            sys.exit(f"no hello binary at {args.hello_bin}")
    if "sextant" in groups and not os.access(args.sextant_bin, os.X_OK):
        sys.exit(f"no Sextant binary at {args.sextant_bin}; build it first: "
                 "CARGO_TARGET_DIR=~/.cache/sextant/target cargo build --release -p sextant-cli")

    locks = common.take_locks("serving benchmark")  # noqa: F841 - held until exit

    out = Path(args.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    out_stem = out.with_suffix("")
    args.work = Path(tempfile.mkdtemp(prefix="sextant-bench-serving-"))
    report: dict = {"meta": common.machine_meta()}
    try:
        report["meta"].update({
            "sextant": common.version_of([args.sextant_bin, "--version"]) if "sextant" in groups else None,
            "sextant_binary": common.binary_id(args.sextant_bin) if "sextant" in groups else None,
            "hello_binary": common.binary_id(args.hello_bin) if "hello" in groups else None,
            "wrk": common.version_of([args.wrk, "--version"]),
            "packages": common.package_versions(
                ["mlflow", "mlserver", "mlserver-sklearn", "scikit-learn", "onnxruntime", "skl2onnx", "numpy",
                 "pandas", "uvloop", "fastapi", "uvicorn"]),
            "settings": {
                "wrk": f"-t{WRK_THREADS} -c{args.connections} -d{args.duration}s --latency --timeout {WRK_TIMEOUT}",
                "mlflow_duration_s": args.mlflow_duration, "warmup_s": args.warmup, "rounds": args.rounds,
                "quick": args.quick, "variants": args.variants, "sklearn_format": args.sklearn_format,
            },
        })
        model = prepare_model(args.work)
        report["model"] = {
            "spec": f"RandomForestClassifier(n_estimators={common.N_TREES}, max_depth={common.MAX_DEPTH}, "
                    f"random_state={common.SEED}) on make_classification(n_samples={common.N_SAMPLES}, "
                    f"n_features={common.N_FEATURES}, random_state={common.SEED})",
            "train_accuracy": model["train_accuracy"], "row": model["row"], "expected_predict_proba": model["expected"],
            "onnx_max_abs_diff_1000_rows": model["onnx_max_abs_diff_1000_rows"],
            "bodies": {k: p.read_text() for k, p in model["bodies"].items()}, "body_bytes": model["body_bytes"],
        }
        state: dict = {}
        rounds: list[dict] = []
        report["rounds"] = rounds
        for i in range(args.rounds):
            order = groups if i % 2 == 0 else list(reversed(groups))
            log(f"round {i + 1}/{args.rounds}: {', '.join(order)}")
            results: dict = {}
            rounds.append(results)
            for g in order:
                variants = [v for v in GROUPS[g] if v in args.variants]
                if i % 2:  # Sextant's variants too: log on before off, then off before on
                    variants.reverse()
                results.update(run_group(g, variants, args, model, out_stem, state))
                out.write_text(json.dumps(report, indent=2, default=str))  # keep partial results
        if "sextant_setup" in state:
            report["sextant_setup"] = state["sextant_setup"]
        report["summary"] = summarize(rounds, args.variants)
        report["targets"] = targets(rounds, report["summary"])
        report["table"] = markdown(report["summary"], report["targets"], args.variants)
    finally:
        report["meta"]["uptime_end"] = common.version_of(["uptime"])
        out.write_text(json.dumps(report, indent=2, default=str))
        shutil.rmtree(args.work, ignore_errors=True)

    print()
    print(report["table"])
    print()
    for v in args.variants:
        s = report["summary"][v]
        if s.get("platform") and v.startswith("sextant") and s["platform"] != "native-trees":
            print(f"- {v}: Sextant served the model with platform {s['platform']!r}, not the native engine")
        if s["non_2xx_total"] or s["socket_errors_total"]:
            print(f"- {v}: {s['non_2xx_total']} non-2xx answers, {s['socket_errors_total']} socket errors")
        for r in report["rounds"]:
            if "error" in r.get(v, {}):
                print(f"- {v}: ERROR {r[v]['error'][:300]}")
    sextant = {v: report["summary"][v]["platform"] for v in args.variants if v.startswith("sextant")}
    if sextant:
        print(f"- Sextant deployment platform: {sextant}")
    print(f"- load: start [{report['meta']['uptime_start']}], end [{report['meta']['uptime_end']}]")
    print(f"\nJSON: {out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
