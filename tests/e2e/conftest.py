"""Fixtures that start a real server and point the unmodified `mlflow` client at it.

The suite is parametrized over storage configurations ("backends"):

* ``sqlite``   - always: SQLite metadata in a temp data dir, local artifacts.
* ``postgres`` - when ``SEXTANT_TEST_POSTGRES_URL`` is set: a fresh database
  ``sextant_e2e_<uuid>`` is created on that server for the session and dropped after.
* ``s3``       - when ``SEXTANT_TEST_S3_ENDPOINT`` is set (moto or any S3 API):
  SQLite metadata and artifacts under ``s3://$SEXTANT_TEST_S3_BUCKET/e2e-<uuid>``.

By default the server is the Sextant binary (``$SEXTANT_BIN``, else
``$CARGO_TARGET_DIR/debug/sextant``). With ``SEXTANT_E2E_AGAINST_MLFLOW=1`` the same
suite runs against a real ``mlflow server`` instead, which is how the tests
themselves are validated against the reference implementation.
"""

from __future__ import annotations

import dataclasses
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
import urllib.parse
import uuid
from pathlib import Path

import pytest
import requests

# Fail fast instead of retrying a 5xx for minutes, and keep the client quiet/offline.
# These must be set before the client builds its cached HTTP session.
os.environ["MLFLOW_HTTP_REQUEST_MAX_RETRIES"] = "0"
os.environ.setdefault("MLFLOW_HTTP_REQUEST_TIMEOUT", "60")
os.environ.setdefault("MLFLOW_DISABLE_TELEMETRY", "true")
os.environ.setdefault("DO_NOT_TRACK", "true")
os.environ.setdefault("GIT_PYTHON_REFRESH", "quiet")

AGAINST_MLFLOW = os.environ.get("SEXTANT_E2E_AGAINST_MLFLOW", "") not in ("", "0", "false")
SEXTANT_STARTUP_TIMEOUT_S = 30.0
MLFLOW_STARTUP_TIMEOUT_S = 240.0


def _enabled_backends() -> list[str]:
    backends = ["sqlite"]
    if os.environ.get("SEXTANT_TEST_POSTGRES_URL"):
        backends.append("postgres")
    if os.environ.get("SEXTANT_TEST_S3_ENDPOINT"):
        backends.append("s3")
    return backends


BACKENDS = _enabled_backends()


def pytest_report_header(config):
    target = "real `mlflow server`" if AGAINST_MLFLOW else f"sextant binary {_sextant_bin()}"
    disabled = sorted({"sqlite", "postgres", "s3"} - set(BACKENDS))
    line = f"e2e target: {target}; backends: {', '.join(BACKENDS)}"
    if disabled:
        line += (
            f" (disabled: {', '.join(disabled)}; set SEXTANT_TEST_POSTGRES_URL /"
            " SEXTANT_TEST_S3_ENDPOINT to enable)"
        )
    return line


def pytest_collection_modifyitems(config, items):
    if not AGAINST_MLFLOW:
        return
    skip = pytest.mark.skip(reason="Sextant-only behaviour (SEXTANT_E2E_AGAINST_MLFLOW=1)")
    for item in items:
        if "sextant_only" in item.keywords:
            item.add_marker(skip)


# --------------------------------------------------------------------------------------
# Helpers
# --------------------------------------------------------------------------------------


def _sextant_bin() -> Path:
    explicit = os.environ.get("SEXTANT_BIN")
    if explicit:
        return Path(explicit)
    target_dir = os.environ.get("CARGO_TARGET_DIR") or os.path.expanduser("~/.cache/sextant/target")
    return Path(target_dir) / "debug" / "sextant"


def _free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def _tail(path: Path, n_chars: int = 6000) -> str:
    try:
        text = path.read_text(errors="replace")
    except OSError as err:
        return f"<could not read {path}: {err}>"
    return text[-n_chars:]


@dataclasses.dataclass
class Server:
    """A running tracking server, as seen by the tests."""

    backend: str  # "sqlite" | "postgres" | "s3"
    kind: str  # "sextant" | "mlflow"
    uri: str  # tracking URI, e.g. http://127.0.0.1:PORT
    root: Path  # temp dir owned by this server (data dir, logs, local artifacts)
    log_path: Path
    s3_bucket: str | None = None
    s3_prefix: str | None = None  # key prefix inside the bucket, without a trailing slash

    @property
    def is_mlflow(self) -> bool:
        return self.kind == "mlflow"

    def log_tail(self) -> str:
        return _tail(self.log_path)


def _wait_until_healthy(proc: subprocess.Popen, uri: str, log_path: Path, timeout_s: float, what: str):
    deadline = time.monotonic() + timeout_s
    last_err = None
    while time.monotonic() < deadline:
        code = proc.poll()
        if code is not None:
            raise RuntimeError(
                f"{what} exited with code {code} before becoming healthy.\n"
                f"command: {' '.join(map(str, proc.args))}\n--- server output ---\n{_tail(log_path)}"
            )
        try:
            resp = requests.get(f"{uri}/health", timeout=2)
            if resp.status_code == 200:
                return
            last_err = f"HTTP {resp.status_code}: {resp.text[:200]}"
        except requests.RequestException as err:
            last_err = repr(err)
        time.sleep(0.2)
    raise RuntimeError(
        f"{what} did not answer 200 on {uri}/health within {timeout_s:.0f}s (last: {last_err}).\n"
        f"command: {' '.join(map(str, proc.args))}\n--- server output ---\n{_tail(log_path)}"
    )


def _stop(proc: subprocess.Popen):
    if proc.poll() is not None:
        return
    # The server runs in its own process group (mlflow forks workers); signal the
    # group, or the process alone when it was started without a group of its own.
    def signal_it(sig):
        try:
            os.killpg(proc.pid, sig)
        except ProcessLookupError:
            try:
                proc.send_signal(sig)
            except ProcessLookupError:
                pass

    signal_it(signal.SIGTERM)
    try:
        proc.wait(timeout=15)
    except subprocess.TimeoutExpired:
        signal_it(signal.SIGKILL)
        proc.wait(timeout=10)


class _Postgres:
    """Creates and drops a throw-away database on the server at SEXTANT_TEST_POSTGRES_URL."""

    def __init__(self, admin_url: str):
        self.admin_url = admin_url
        self.db_name = f"sextant_e2e_{uuid.uuid4().hex}"

    def _connect(self):
        import psycopg

        return psycopg.connect(self.admin_url, autocommit=True, connect_timeout=10)

    def create(self) -> str:
        with self._connect() as conn:
            conn.execute(f'CREATE DATABASE "{self.db_name}"')
        parts = urllib.parse.urlsplit(self.admin_url)
        return urllib.parse.urlunsplit(("postgresql", parts.netloc, f"/{self.db_name}", parts.query, ""))

    def drop(self):
        try:
            with self._connect() as conn:
                conn.execute(f'DROP DATABASE IF EXISTS "{self.db_name}" WITH (FORCE)')
        except Exception as err:  # noqa: BLE001 - cleanup must not mask test results
            print(f"warning: could not drop database {self.db_name}: {err}", file=sys.stderr)


def _s3_settings() -> tuple[str, str, str]:
    endpoint = os.environ["SEXTANT_TEST_S3_ENDPOINT"]
    bucket = os.environ.get("SEXTANT_TEST_S3_BUCKET", "sextant-test")
    prefix = f"e2e-{uuid.uuid4().hex}"
    return endpoint, bucket, prefix


# --------------------------------------------------------------------------------------
# Fixtures
# --------------------------------------------------------------------------------------


@pytest.fixture(scope="session", params=BACKENDS)
def server(request):
    """Start one server per backend for the whole session and yield a `Server`."""
    backend = request.param
    root = Path(tempfile.mkdtemp(prefix=f"sextant-e2e-{backend}-"))
    log_path = root / "server.log"
    port = _free_port()
    uri = f"http://127.0.0.1:{port}"
    env = dict(os.environ)
    postgres = None
    s3_bucket = s3_prefix = None

    backend_store_uri = None
    if backend == "postgres":
        postgres = _Postgres(os.environ["SEXTANT_TEST_POSTGRES_URL"])
        backend_store_uri = postgres.create()

    if AGAINST_MLFLOW:
        kind = "mlflow"
        if backend_store_uri is None:
            backend_store_uri = f"sqlite:///{root / 'mlflow.db'}"
        else:
            # MLflow goes through SQLAlchemy. Prefer psycopg2 (MLflow's SQL store has type
            # errors under the psycopg v3 dialect); fall back to psycopg v3.
            # Name the driver explicitly: SQLAlchemy 2.1 defaults to psycopg v3.
            try:
                import psycopg2  # noqa: F401

                driver = "psycopg2"
            except ImportError:
                driver = "psycopg"
            backend_store_uri = backend_store_uri.replace("postgresql://", f"postgresql+{driver}://", 1)
        artifacts_destination = str(root / "artifacts")
        if backend == "s3":
            endpoint, s3_bucket, s3_prefix = _s3_settings()
            artifacts_destination = f"s3://{s3_bucket}/{s3_prefix}"
            env["MLFLOW_S3_ENDPOINT_URL"] = endpoint
        mlflow_exe = Path(sys.executable).with_name("mlflow")
        cmd = [
            str(mlflow_exe) if mlflow_exe.exists() else "mlflow",
            "server",
            "--backend-store-uri", backend_store_uri,
            "--artifacts-destination", artifacts_destination,
            "--host", "127.0.0.1",
            "--port", str(port),
            "--workers", "1",
        ]  # fmt: skip
        timeout_s = MLFLOW_STARTUP_TIMEOUT_S
    else:
        kind = "sextant"
        binary = _sextant_bin()
        if not binary.exists():
            pytest.fail(
                f"sextant binary not found at {binary}: build it with `cargo build --workspace --bins`"
                " or set SEXTANT_BIN (or run against MLflow with SEXTANT_E2E_AGAINST_MLFLOW=1)",
                pytrace=False,
            )
        data_dir = root / "data"
        data_dir.mkdir()
        cmd = [
            str(binary),
            "server",
            "--host", "127.0.0.1",
            "--port", str(port),
            "--data-dir", str(data_dir),
            # Python-only models run in workers on this interpreter (it has mlflow).
            "--python", sys.executable,
            # Datasets the tests log as local files live under pytest's temp dirs.
            "--data-roots", tempfile.gettempdir(),
            # The tests' webhook receivers listen on loopback.
            "--webhook-allowed-hosts", "127.0.0.1",
        ]  # fmt: skip
        if backend_store_uri is not None:
            cmd += ["--backend-store-uri", backend_store_uri]
        if backend == "s3":
            endpoint, s3_bucket, s3_prefix = _s3_settings()
            cmd += ["--artifacts-destination", f"s3://{s3_bucket}/{s3_prefix}"]
            env.setdefault("AWS_ACCESS_KEY_ID", "testing")
            env.setdefault("AWS_SECRET_ACCESS_KEY", "testing")
            env.setdefault("AWS_REGION", "us-east-1")
            env["AWS_ENDPOINT"] = endpoint
            env["AWS_ALLOW_HTTP"] = "true"
        env.setdefault("RUST_LOG", "info")
        env.setdefault("NO_COLOR", "1")
        timeout_s = SEXTANT_STARTUP_TIMEOUT_S

    with open(log_path, "wb") as log_file:
        proc = subprocess.Popen(
            cmd,
            stdout=log_file,
            stderr=subprocess.STDOUT,
            stdin=subprocess.DEVNULL,
            env=env,
            cwd=root,
            start_new_session=True,
        )
    srv = Server(
        backend=backend,
        kind=kind,
        uri=uri,
        root=root,
        log_path=log_path,
        s3_bucket=s3_bucket,
        s3_prefix=s3_prefix,
    )
    try:
        startup_error = None
        try:
            _wait_until_healthy(proc, uri, log_path, timeout_s, f"{kind} server ({backend})")
        except RuntimeError as err:
            startup_error = str(err)
        if startup_error is not None:
            # pytest re-raises a failed session fixture for every test that uses it: print
            # the full story once (it lands in the first test's captured output) and keep
            # the repeated message short.
            print(startup_error, file=sys.stderr)
            last_lines = "\n".join(srv.log_tail().strip().splitlines()[-8:])
            pytest.fail(
                f"{startup_error.splitlines()[0]}\n--- last server output ---\n{last_lines}",
                pytrace=False,
            )
        yield srv
    finally:
        _stop(proc)
        if postgres is not None:
            postgres.drop()
        if os.environ.get("SEXTANT_E2E_KEEP_TMP"):
            print(f"kept {root}", file=sys.stderr)
        else:
            shutil.rmtree(root, ignore_errors=True)


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_makereport(item, call):
    """Attach what the server logged during a failing test to that test's report, and
    keep each phase's report on the item (`item.rep_call`) so fixtures can tell a failed
    test from a passed one (the browser tests save screenshots)."""
    outcome = yield
    report = outcome.get_result()
    setattr(item, "rep_" + report.when, report)
    srv = item.funcargs.get("server") if hasattr(item, "funcargs") else None
    if not isinstance(srv, Server):
        return
    if report.when == "setup":
        try:
            item.stash[_LOG_OFFSET] = srv.log_path.stat().st_size
        except OSError:
            item.stash[_LOG_OFFSET] = 0
    elif report.failed:
        offset = item.stash.get(_LOG_OFFSET, 0)
        try:
            with open(srv.log_path, "rb") as log_file:
                log_file.seek(offset)
                text = log_file.read().decode(errors="replace")
        except OSError as err:
            text = f"<could not read {srv.log_path}: {err}>"
        if text.strip():
            report.sections.append((f"server log during test ({srv.kind}, {srv.backend})", text[-8000:]))


_LOG_OFFSET = pytest.StashKey[int]()


@pytest.fixture
def tracking_uri(server, monkeypatch):
    """Point the mlflow client (fluent API and MlflowClient) at the server for one test."""
    import mlflow

    monkeypatch.setenv("MLFLOW_TRACKING_URI", server.uri)
    monkeypatch.setenv("MLFLOW_REGISTRY_URI", server.uri)
    mlflow.set_tracking_uri(server.uri)
    mlflow.set_registry_uri(server.uri)
    yield server.uri
    while mlflow.active_run() is not None:
        mlflow.end_run()


@pytest.fixture
def client(tracking_uri):
    from mlflow import MlflowClient

    return MlflowClient(tracking_uri=tracking_uri, registry_uri=tracking_uri)


@pytest.fixture
def experiment_id(tracking_uri):
    """A fresh, uniquely named experiment, made active for the fluent API."""
    import mlflow

    exp = mlflow.set_experiment(f"e2e-{uuid.uuid4().hex[:12]}")
    return exp.experiment_id


# ---------------------------------------------------------------------------------------
# No server outlives the suite
# ---------------------------------------------------------------------------------------


def _running_servers() -> set[int]:
    """Processes running the binary under test (a rebuilt binary shows as deleted)."""
    target = os.path.realpath(_sextant_bin())
    found = set()
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            exe = os.readlink(f"/proc/{entry}/exe")
        except OSError:
            continue
        if exe.removesuffix(" (deleted)") == target:
            found.add(int(entry))
    return found


_SERVERS_BEFORE = pytest.StashKey[set]()


def pytest_sessionstart(session):
    if sys.platform.startswith("linux"):
        session.stash[_SERVERS_BEFORE] = _running_servers()


def pytest_sessionfinish(session, exitstatus):
    """Every server a test started is stopped by the end of the run: one left behind
    would run for ever on a CI machine and skew benchmarks on a shared one."""
    if not sys.platform.startswith("linux") or _SERVERS_BEFORE not in session.stash:
        return
    deadline = time.monotonic() + 10
    left = _running_servers() - session.stash[_SERVERS_BEFORE]
    while left and time.monotonic() < deadline:
        time.sleep(0.2)
        left = _running_servers() - session.stash[_SERVERS_BEFORE]
    if not left:
        return
    commands = []
    for pid in sorted(left):
        try:
            commands.append(open(f"/proc/{pid}/cmdline", "rb").read().replace(b"\0", b" ").decode(errors="replace"))
            os.kill(pid, signal.SIGKILL)
        except OSError:
            pass
    print(f"\nerror: {len(left)} server(s) started by the tests were still running (now killed):", file=sys.stderr)
    for command in commands:
        print(f"  {command}", file=sys.stderr)
    session.exitstatus = pytest.ExitCode.TESTS_FAILED
