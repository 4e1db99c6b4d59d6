"""What run.py and engine.py share: the benchmark venv, wrk, the hello
server's build, the lock against overlapping runs, and the model.

Only the standard library is imported at module level, so that a script can
call `enter_venv()` from any Python 3.10+ before it imports numpy or
scikit-learn: the venv is created (or updated when requirements.txt changed)
and the script re-executes itself with the venv's interpreter.
"""

from __future__ import annotations

import datetime as dt
import fcntl
import hashlib
import importlib.util
import os
import platform
import shutil
import subprocess
import sys
from pathlib import Path

HERE = Path(__file__).resolve().parent
REPO = HERE.parent.parent
REQUIREMENTS = HERE / "requirements.txt"
VENV = Path(os.environ.get("SEXTANT_BENCH_VENV") or Path.home() / ".cache/sextant/venv-bench-serving")
TARGET = Path(os.environ.get("CARGO_TARGET_DIR") or Path.home() / ".cache/sextant/target")
HELLO_MANIFEST = HERE / "hello" / "Cargo.toml"
HELLO_BIN = TARGET / "release" / "sextant-bench-hello"
SEXTANT_BIN = TARGET / "release" / "sextant"
# One lock for run.py and engine.py; the tracking benchmark's lock is taken too,
# so that no two benchmarks of this repository measure each other.
LOCKS = ["/tmp/sextant-bench-serving.lock", "/tmp/sextant-bench-tracking.lock"]

# The model of shared/reference/serving.md's baseline, at the size the issue asks for.
N_SAMPLES = 20_000
N_FEATURES = 20
N_TREES = 100
MAX_DEPTH = 8
SEED = 0


def log(message: str) -> None:
    print(f"[{dt.datetime.now().strftime('%H:%M:%S')}] {message}", flush=True)


# --------------------------------------------------------------------------- #
# Environment


def _in_venv() -> bool:
    try:
        return Path(sys.prefix).resolve() == VENV.resolve()
    except OSError:
        return False


def _base_python() -> str:
    if sys.prefix == sys.base_prefix:
        return sys.executable
    return shutil.which("python3.11") or shutil.which("python3") or sys.executable


def ensure_venv() -> Path:
    """Create the venv and install requirements.txt unless a stamp says this
    exact file is already installed there. Returns the venv's python."""
    python = VENV / "bin" / "python"
    if not python.exists():
        log(f"creating venv {VENV}")
        VENV.parent.mkdir(parents=True, exist_ok=True)
        subprocess.run([_base_python(), "-m", "venv", str(VENV)], check=True)
    version = subprocess.run([str(python), "--version"], capture_output=True, text=True).stdout.strip()
    want = f"{hashlib.sha256(REQUIREMENTS.read_bytes()).hexdigest()} {version}"
    stamp = VENV / ".sextant-requirements"
    if stamp.exists() and stamp.read_text().strip() == want:
        return python
    log(f"installing {REQUIREMENTS.relative_to(REPO)} into {VENV} (the first time takes a few minutes)")
    pip = [str(python), "-m", "pip", "install", "--quiet", "--disable-pip-version-check"]
    subprocess.run(pip + ["--upgrade", "pip"], check=True)
    subprocess.run(pip + ["-r", str(REQUIREMENTS)], check=True)
    stamp.write_text(want + "\n")
    return python


def enter_venv(script: str) -> None:
    """Make sure the venv is ready, then re-run `script` with its interpreter
    (unless this already is it). SEXTANT_BENCH_NO_SETUP=1 skips the install
    check and uses the current interpreter as it is."""
    if os.environ.get("SEXTANT_BENCH_NO_SETUP") == "1":
        return
    python = ensure_venv()
    if _in_venv():
        return
    env = dict(os.environ)
    env["PATH"] = f"{VENV / 'bin'}{os.pathsep}{env.get('PATH', '')}"
    os.execve(str(python), [str(python), script, *sys.argv[1:]], env)


def ensure_wrk(path: str | None) -> str:
    """Debian's wrk, installed with apt-get when missing (we are root)."""
    found = path or shutil.which("wrk")
    if found and Path(found).exists():
        return found
    if os.geteuid() != 0:
        sys.exit("wrk is not installed (Debian: apt-get install wrk)")
    log("installing wrk with apt-get")
    env = dict(os.environ, DEBIAN_FRONTEND="noninteractive")
    quiet = {"stdout": subprocess.DEVNULL, "env": env}
    if subprocess.run(["apt-get", "install", "-y", "wrk"], **quiet).returncode != 0:
        subprocess.run(["apt-get", "update"], check=True, **quiet)
        subprocess.run(["apt-get", "install", "-y", "wrk"], check=True, **quiet)
    return shutil.which("wrk") or "/usr/bin/wrk"


def ensure_hello() -> Path:
    """Build the loopback-ceiling server when it is missing or older than its
    sources (a standalone Cargo project; same target dir as the workspace)."""
    sources = [HELLO_MANIFEST, HELLO_MANIFEST.with_name("Cargo.lock"), *HELLO_MANIFEST.parent.glob("src/*.rs")]
    newest = max(p.stat().st_mtime for p in sources if p.exists())
    if HELLO_BIN.exists() and HELLO_BIN.stat().st_mtime >= newest:
        return HELLO_BIN
    log("building bench/serving/hello (release)")
    env = dict(os.environ, CARGO_TARGET_DIR=str(TARGET))
    subprocess.run(
        ["cargo", "build", "--release", "--manifest-path", str(HELLO_MANIFEST)], check=True, env=env
    )
    return HELLO_BIN


def take_locks(label: str) -> list:
    """Two benchmark runs at once would measure each other: wait for the other."""
    held = []
    for path in LOCKS:
        handle = open(path, "w")
        try:
            fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            log(f"{label}: another benchmark holds {path}; waiting for it to finish")
            fcntl.flock(handle, fcntl.LOCK_EX)
        held.append(handle)
    return held


def load_tracking_helpers():
    """bench/tracking/run.py as a module (process trees, wrk output, CPU split)."""
    spec = importlib.util.spec_from_file_location("sextant_bench_tracking", REPO / "bench/tracking/run.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


# --------------------------------------------------------------------------- #
# Facts about a run


def version_of(cmd: list[str]) -> str:
    try:
        p = subprocess.run(cmd, capture_output=True, text=True, timeout=120)
        return (p.stdout.strip() or p.stderr.strip()).splitlines()[0]
    except Exception as exc:  # noqa: BLE001 - informational only
        return f"unknown ({exc})"


def binary_id(path: Path | str) -> dict:
    """Which build was measured: the binary's mtime and sha256 prefix."""
    p = Path(path)
    digest = hashlib.sha256(p.read_bytes()).hexdigest()[:16]
    mtime = dt.datetime.fromtimestamp(p.stat().st_mtime).astimezone().isoformat(timespec="seconds")
    return {"path": str(p), "mtime": mtime, "sha256_16": digest}


def cpu_model() -> str:
    try:
        with open("/proc/cpuinfo") as f:
            for line in f:
                if line.startswith("model name"):
                    return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or "unknown"


def machine_meta() -> dict:
    return {
        "date": dt.datetime.now().astimezone().isoformat(timespec="seconds"),
        "argv": sys.argv,
        "host": platform.node(),
        "cpus": os.cpu_count(),
        "cpu_model": cpu_model(),
        "kernel": platform.release(),
        "python": sys.version.split()[0],
        "git": version_of(["git", "-C", str(REPO), "describe", "--always", "--dirty"]),
        "uptime_start": version_of(["uptime"]),
    }


def package_versions(names: list[str]) -> dict:
    from importlib import metadata

    found = {}
    for name in names:
        try:
            found[name] = metadata.version(name)
        except metadata.PackageNotFoundError:
            found[name] = None
    return found


# --------------------------------------------------------------------------- #
# The model


def make_data():
    from sklearn.datasets import make_classification

    return make_classification(n_samples=N_SAMPLES, n_features=N_FEATURES, random_state=SEED)


def train_forest(X, y):
    from sklearn.ensemble import RandomForestClassifier

    clf = RandomForestClassifier(n_estimators=N_TREES, max_depth=MAX_DEPTH, random_state=SEED, n_jobs=-1)
    clf.fit(X, y)
    clf.set_params(n_jobs=None)  # predictions run single-threaded, as a server's would
    return clf


def export_onnx(clf, path: Path) -> None:
    """The forest as ONNX for onnxruntime: float input [N, 20], outputs
    `label` and `probabilities` (a plain tensor: zipmap disabled)."""
    import numpy as np
    from skl2onnx import to_onnx

    onx = to_onnx(
        clf,
        np.zeros((1, N_FEATURES), dtype=np.float32),
        options={id(clf): {"zipmap": False}},
        target_opset={"": 17, "ai.onnx.ml": 3},
    )
    path.write_bytes(onx.SerializeToString())
