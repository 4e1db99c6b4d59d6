"""Three `sextant server` processes on one PostgreSQL database and one S3 bucket (moto),
as behind a round-robin load balancer: every process serves what was deployed through
any other; one leads the background work; when the leader is killed (SIGKILL) under
write and inference load, another takes over in under 10 s, the alert that was firing
is not announced again, a canary keeps stepping to its promotion, no acknowledged write
is lost, the survivors return the same data (canary counters included: every server
judges on all servers' traffic) and the audit chain stays valid."""

from __future__ import annotations

import itertools
import os
import subprocess
import tempfile
import threading
import time
import uuid
from pathlib import Path

import mlflow
import numpy as np
import pytest
import requests

from _helpers import Receiver
from conftest import AGAINST_MLFLOW, _Postgres, _free_port, _sextant_bin, _stop, _wait_until_healthy

pytestmark = [
    pytest.mark.sextant_only,
    pytest.mark.skipif(AGAINST_MLFLOW, reason="Sextant's high availability"),
]

FAILOVER_LIMIT_S = 10.0


@pytest.fixture
def cluster():
    if not (os.environ.get("SEXTANT_TEST_POSTGRES_URL") and os.environ.get("SEXTANT_TEST_S3_ENDPOINT")):
        if os.environ.get("CI"):
            pytest.fail("CI must set SEXTANT_TEST_POSTGRES_URL and SEXTANT_TEST_S3_ENDPOINT")
        pytest.skip("needs PostgreSQL and S3 (scripts/test starts both)")
    postgres = _Postgres(os.environ["SEXTANT_TEST_POSTGRES_URL"])
    database = postgres.create()
    root = Path(tempfile.mkdtemp(prefix="sextant-ha-"))
    bucket = os.environ.get("SEXTANT_TEST_S3_BUCKET", "sextant-test")
    env = dict(os.environ, NO_COLOR="1", RUST_LOG="info", AWS_ACCESS_KEY_ID="testing",
               AWS_SECRET_ACCESS_KEY="testing", AWS_REGION="us-east-1",
               AWS_ENDPOINT=os.environ["SEXTANT_TEST_S3_ENDPOINT"], AWS_ALLOW_HTTP="true")  # fmt: skip
    artifacts = f"s3://{bucket}/ha-{uuid.uuid4().hex}"
    servers: list[dict] = []

    def start(index: int, port: int | None = None) -> dict:
        port = port or _free_port()
        log = root / f"server-{index}-{time.monotonic_ns()}.log"
        cmd = [str(_sextant_bin()), "server", "--host", "127.0.0.1", "--port", str(port),
               "--data-dir", str(root / f"data-{index}"), "--backend-store-uri", database,
               "--artifacts-destination", artifacts, "--alert-check-seconds", "0.5",
               "--webhook-allowed-hosts", "127.0.0.1"]  # fmt: skip
        with open(log, "wb") as out:
            proc = subprocess.Popen(cmd, stdout=out, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL, env=env,
                                    start_new_session=True)  # fmt: skip
        uri = f"http://127.0.0.1:{port}"
        _wait_until_healthy(proc, uri, log, 60.0, f"server {index}")
        return {"index": index, "uri": uri, "proc": proc, "port": port, "log": log}

    try:
        servers.extend(start(i) for i in range(3))
        yield {"servers": servers, "start": start, "database": database}
    finally:
        for server in servers:
            if server["proc"].poll() is None:
                _stop(server["proc"])
        postgres.drop()


def firing(hooks: Receiver) -> list[dict]:
    """The firing alerts the webhook was told of."""
    return [a for _, body in hooks.bodies for a in body.get("alerts", []) if a.get("status") == "firing"]


def leader_of(servers: list[dict]) -> list[dict]:
    leading = []
    for server in servers:
        if server["proc"].poll() is not None:
            continue
        try:
            text = requests.get(f"{server['uri']}/metrics", timeout=5).text
        except requests.RequestException:
            continue
        if "\nsextant_leader 1\n" in text:
            leading.append(server)
    return leading


def wait_for_one_leader(servers: list[dict], within: float) -> dict:
    deadline = time.monotonic() + within
    while time.monotonic() < deadline:
        leading = leader_of(servers)
        if len(leading) == 1:
            return leading[0]
        time.sleep(0.1)
    raise AssertionError(f"no single leader within {within} s: {[s['index'] for s in leader_of(servers)]}")


def test_three_servers_fail_over_under_load_without_losing_or_repeating_anything(cluster):
    from sklearn.linear_model import LogisticRegression

    servers = cluster["servers"]
    first = wait_for_one_leader(servers, 15)
    alive = lambda: [s for s in servers if s["proc"].poll() is None]  # noqa: E731
    round_robin = itertools.cycle(range(3))

    def next_uri() -> str:
        for _ in range(3):
            server = servers[next(round_robin)]
            if server["proc"].poll() is None:
                return server["uri"]
        raise AssertionError("no server alive")

    # Log and register through one server; deploy through another; all three serve it.
    rng = np.random.default_rng(0)
    X = rng.normal(size=(300, 3))
    y = (X[:, 0] > 0).astype(int)
    mlflow.set_tracking_uri(servers[0]["uri"])
    mlflow.set_registry_uri(servers[0]["uri"])
    mlflow.set_experiment("ha")
    with mlflow.start_run() as run:
        info = mlflow.sklearn.log_model(LogisticRegression().fit(X, y), name="model", input_example=X[:2])
    run_id = run.info.run_id
    version = mlflow.register_model(info.model_uri, "ha-model").version
    created = subprocess.run([str(_sextant_bin()), "deployments", "create", "ha-api", "--model", f"ha-model/{version}"],
                             env=dict(os.environ, SEXTANT_SERVER=servers[1]["uri"]), capture_output=True, text=True,
                             timeout=120)  # fmt: skip
    assert created.returncode == 0, created.stderr
    for server in servers:
        deadline = time.monotonic() + 20
        while requests.get(f"{server['uri']}/v2/models/ha-api/ready", timeout=5).status_code != 200:
            assert time.monotonic() < deadline, f"server {server['index']} never served ha-api"
            time.sleep(0.2)

    # A second version, to run a canary across the failover.
    with mlflow.start_run():
        candidate = mlflow.sklearn.log_model(LogisticRegression(C=0.5).fit(X, y), name="model", input_example=X[:2])
    candidate_version = mlflow.register_model(candidate.model_uri, "ha-model").version

    # An alert that fires while there is traffic, announced to a webhook.
    hooks = Receiver()
    rule = {"metric": "requests_interval", "condition": {"threshold": {"op": ">", "value": 0}},
            "severity": "info", "webhooks": [hooks.url("/alerts")]}  # fmt: skip
    reply = requests.put(f"{servers[2]['uri']}/api/v1/deployments/ha-api/alerts/traffic", json=rule, timeout=30)
    assert reply.status_code == 200, reply.text

    # Load: predictions and metric writes, round robin over the live servers.
    stop = threading.Event()
    acknowledged: list[tuple[int, float]] = []
    failures: list[str] = []

    def load() -> None:
        step = 0
        while not stop.is_set():
            uri = next_uri()
            try:
                reply = requests.post(f"{uri}/deployments/ha-api/invocations",
                                      json={"instances": rng.normal(size=(4, 3)).tolist()}, timeout=10)  # fmt: skip
                if reply.status_code != 200:
                    failures.append(f"invocations: {reply.status_code} {reply.text[:200]}")
                value = float(step)
                reply = requests.post(f"{next_uri()}/api/2.0/mlflow/runs/log-metric", timeout=10,
                                      json={"run_id": run_id, "key": "progress", "value": value,
                                            "timestamp": 1_000 + step, "step": step})  # fmt: skip
                if reply.status_code == 200:
                    acknowledged.append((step, value))
            except requests.RequestException:
                pass  # the server just killed; the next one answers
            step += 1
            time.sleep(0.01)

    worker = threading.Thread(target=load, daemon=True)
    worker.start()

    def history() -> list[dict]:
        reply = requests.get(f"{next_uri()}/api/v1/deployments/ha-api/history", timeout=30)
        assert reply.status_code == 200, reply.text
        return reply.json()["revisions"]

    try:
        canary = subprocess.run([str(_sextant_bin()), "deployments", "canary", "ha-api", "--model", f"ha-model/{candidate_version}",
                                 "--steps", "10,40,70,100", "--interval", "2", "--min-requests", "3"],
                                env=dict(os.environ, SEXTANT_SERVER=servers[0]["uri"]), capture_output=True, text=True,
                                timeout=120)  # fmt: skip
        assert canary.returncode == 0, canary.stderr
        deadline = time.monotonic() + 30
        while not firing(hooks) or not any(r["action"] == "canary_step" for r in history()):
            assert time.monotonic() < deadline, "the traffic alert never fired or the canary never stepped"
            time.sleep(0.1)
        time.sleep(0.5)
        leader = wait_for_one_leader(servers, 5)
        killed_at = time.monotonic()
        killed_at_ms = time.time() * 1000
        leader["proc"].kill()
        leader["proc"].wait(timeout=10)
        survivors = [s for s in servers if s is not leader]
        successor = wait_for_one_leader(survivors, FAILOVER_LIMIT_S + 5)
        failover = time.monotonic() - killed_at
        print(f"leader {leader['index']} killed; server {successor['index']} led after {failover:.2f} s")
        assert failover < FAILOVER_LIMIT_S, failover
        # Keep the load on long enough for the successor to evaluate many times, and
        # until the canary, stepped by the successor, is promoted.
        time.sleep(4.0)
        deadline = time.monotonic() + 40
        while not any(r["action"] == "promote" for r in history()):
            assert time.monotonic() < deadline, [(r["action"], r["reason"]) for r in history()]
            time.sleep(0.2)
    finally:
        stop.set()
        worker.join(timeout=30)
    assert first is not None
    assert not failures, failures[:5]
    assert len(firing(hooks)) == 1, hooks.bodies
    hooks.close()

    # No acknowledged write lost, and the survivors agree.
    histories = []
    for server in alive():
        reply = requests.get(f"{server['uri']}/api/2.0/mlflow/metrics/get-history",
                             params={"run_id": run_id, "metric_key": "progress", "max_results": 25000}, timeout=30)  # fmt: skip
        assert reply.status_code == 200, reply.text
        histories.append(sorted((m["step"], m["value"]) for m in reply.json().get("metrics", [])))
    assert acknowledged, "no write was acknowledged"
    assert set(acknowledged) <= set(histories[0]), sorted(set(acknowledged) - set(histories[0]))[:5]
    assert all(h == histories[0] for h in histories)
    deployments = [requests.get(f"{s['uri']}/api/v1/deployments/ha-api", timeout=30).json()["revision"] for s in alive()]
    assert len(set(deployments)) == 1, deployments

    # The canary stepped on both sides of the failover, by the controller, and ended
    # promoted: the candidate is what every server serves.
    revisions = history()
    moves = [r for r in revisions if r["action"] in ("canary_step", "promote")]
    assert all(r["actor"] == "sextant-controller" for r in moves), moves
    assert any(r["time"] < killed_at_ms for r in moves) and any(r["time"] > killed_at_ms for r in moves), moves
    assert not any(r["action"] == "auto_rollback" for r in revisions), revisions
    for server in alive():
        status = requests.get(f"{server['uri']}/api/v1/deployments/ha-api/status", timeout=30).json()
        assert [str(a["model"]["version"]) for a in status["arms"] if a["weight"] > 0] == [str(candidate_version)], status

    # Every server reports the same counters: its own plus what the others stored
    # (they share theirs every 2 s); the load has stopped, so the figures are still.
    time.sleep(5.0)
    statuses = [requests.get(f"{s['uri']}/api/v1/deployments/ha-api/status", timeout=30).json() for s in alive()]
    counters = [{a["name"]: a["counters"]["requests"] for a in status["arms"]} for status in statuses]
    assert all(c == counters[0] for c in counters), counters

    # The audit chain, appended to by every server, is whole.
    verified = subprocess.run([str(_sextant_bin()), "audit", "verify", "--backend-store-uri", cluster["database"]],
                              capture_output=True, text=True, timeout=120)  # fmt: skip
    assert verified.returncode == 0, verified.stdout + verified.stderr
