"""Governance end to end: a server started with ``--auth``, the unmodified ``mlflow``
client authenticating with a password (Basic) and with a token (Bearer), and the
``sextant`` CLI for the promotion workflow and the audit log.

A data scientist (alice) trains and registers a model; a consumer (carol) cannot see
it until granted; a protected alias cannot be set directly; alice requests the
promotion, an approver (bob) approves it, and the alias moves; every step is audited
and ``sextant audit verify`` catches an edited entry.
"""

from __future__ import annotations

import json
import os
import sqlite3
import subprocess
import tempfile
import time
from pathlib import Path

import numpy as np
import pytest
import requests
from mlflow.exceptions import MlflowException

from conftest import AGAINST_MLFLOW, _free_port, _sextant_bin, _stop, _wait_until_healthy

pytestmark = [
    pytest.mark.sextant_only,
    pytest.mark.skipif(AGAINST_MLFLOW, reason="Sextant's governance"),
]

ADMIN_PASSWORD = "admin-password-e2e"


@pytest.fixture(scope="module")
def secured():
    root = Path(tempfile.mkdtemp(prefix="sextant-gov-"))
    port = _free_port()
    uri = f"http://127.0.0.1:{port}"
    log_path = root / "server.log"
    env = dict(os.environ, SEXTANT_ADMIN_PASSWORD=ADMIN_PASSWORD, NO_COLOR="1")
    with open(log_path, "wb") as log:
        proc = subprocess.Popen(
            [str(_sextant_bin()), "server", "--auth", "--port", str(port), "--data-dir", str(root / "data")],
            stdout=log,
            stderr=subprocess.STDOUT,
            stdin=subprocess.DEVNULL,
            env=env,
            start_new_session=True,
        )
    try:
        _wait_until_healthy(proc, uri, log_path, 30.0, "sextant --auth")
        yield {"uri": uri, "db": root / "data" / "sextant.db"}
    finally:
        _stop(proc)


def api(secured, method, path, auth=("admin", ADMIN_PASSWORD), **kwargs):
    response = requests.request(method, secured["uri"] + path, auth=auth, timeout=30, **kwargs)
    assert response.status_code == 200, f"{method} {path}: {response.status_code} {response.text}"
    return response.json()


def sextant(secured, *args, user=None, password=None, token=None, check=True):
    env = {k: v for k, v in os.environ.items() if not k.startswith(("MLFLOW_TRACKING_", "SEXTANT_"))}
    env["SEXTANT_SERVER"] = secured["uri"]
    if token:
        env["SEXTANT_TOKEN"] = token
    elif user:
        env["SEXTANT_USERNAME"], env["SEXTANT_PASSWORD"] = user, password
    done = subprocess.run([str(_sextant_bin()), *args], env=env, capture_output=True, text=True, timeout=60)
    if check:
        assert done.returncode == 0, f"sextant {' '.join(args)}: {done.stderr}"
    return done


@pytest.fixture
def as_user(secured, monkeypatch):
    import mlflow

    mlflow.set_tracking_uri(secured["uri"])
    mlflow.set_registry_uri(secured["uri"])

    def switch(user=None, password=None, token=None):
        for name in ("MLFLOW_TRACKING_USERNAME", "MLFLOW_TRACKING_PASSWORD", "MLFLOW_TRACKING_TOKEN"):
            monkeypatch.delenv(name, raising=False)
        if token:
            monkeypatch.setenv("MLFLOW_TRACKING_TOKEN", token)
        else:
            monkeypatch.setenv("MLFLOW_TRACKING_USERNAME", user)
            monkeypatch.setenv("MLFLOW_TRACKING_PASSWORD", password)
        return mlflow.MlflowClient(tracking_uri=secured["uri"], registry_uri=secured["uri"])

    yield switch
    while mlflow.active_run() is not None:
        mlflow.end_run()


def test_unauthenticated_client_is_refused(secured, monkeypatch):
    import mlflow

    for name in ("MLFLOW_TRACKING_USERNAME", "MLFLOW_TRACKING_PASSWORD", "MLFLOW_TRACKING_TOKEN"):
        monkeypatch.delenv(name, raising=False)
    client = mlflow.MlflowClient(tracking_uri=secured["uri"])
    with pytest.raises(MlflowException) as excinfo:
        client.search_experiments()
    assert "401" in str(excinfo.value) or "UNAUTHENTICATED" in str(excinfo.value)
    assert requests.get(secured["uri"] + "/health", timeout=10).status_code == 200


def test_data_scientist_approver_and_consumer(secured, as_user):
    import mlflow
    from sklearn.linear_model import LogisticRegression

    for user in ("alice", "bob", "carol"):
        api(secured, "POST", "/api/v1/users", json={"username": user, "password": f"{user}-password"})
    carol_token = api(
        secured, "POST", "/api/v1/tokens", auth=("carol", "carol-password"), json={"name": "notebook"}
    )["token"]

    # alice trains and registers with a password.
    alice = as_user("alice", "alice-password")
    experiment = mlflow.set_experiment("fraud-detection")
    X = np.random.default_rng(0).normal(size=(60, 4))
    y = (X[:, 0] > 0).astype(int)
    with mlflow.start_run() as run:
        model = LogisticRegression().fit(X, y)
        mlflow.log_param("C", 1.0)
        mlflow.log_metric("accuracy", model.score(X, y))
        info = mlflow.sklearn.log_model(model, name="model", input_example=X[:2])
    version = mlflow.register_model(info.model_uri, "fraud-model")
    assert version.version == "1"

    # carol, with a token, sees nothing of it.
    carol = as_user(token=carol_token)
    assert mlflow.search_runs(experiment_ids=[experiment.experiment_id]).empty
    assert carol.search_registered_models() == []
    with pytest.raises(MlflowException) as excinfo:
        carol.get_run(run.info.run_id)
    assert excinfo.value.error_code == "PERMISSION_DENIED"

    # alice may not move the protected alias herself.
    alice = as_user("alice", "alice-password")
    with pytest.raises(MlflowException) as excinfo:
        alice.set_registered_model_alias("fraud-model", "champion", "1")
    assert excinfo.value.error_code == "PERMISSION_DENIED"
    assert "transition request" in excinfo.value.message
    # An unprotected alias is hers to set.
    alice.set_registered_model_alias("fraud-model", "candidate", "1")

    # The workflow, through the CLI: alice requests, bob approves.
    api(
        secured,
        "PUT",
        "/api/v1/permissions",
        json={"resource_type": "registered_model", "resource_id": "fraud-model", "principal": "user:bob", "permission": "approve"},
    )
    grants = json.loads(
        sextant(secured, "permissions", "list", "--model", "fraud-model", user="admin", password=ADMIN_PASSWORD).stdout
    )["grants"]
    assert {"resource_type": "registered_model", "resource_id": "fraud-model", "principal": "user:bob", "permission": "approve"} in grants
    assert any(g["principal"] == "user:alice" and g["permission"] == "manage" for g in grants)
    everything = json.loads(sextant(secured, "permissions", "list", user="admin", password=ADMIN_PASSWORD).stdout)["grants"]
    assert any(g["resource_type"] == "experiment" and g["principal"] == "user:alice" for g in everything)
    requested = sextant(
        secured, "transitions", "request", "--model", "fraud-model", "--version", "1", "--alias", "champion",
        "--comment", "beats the baseline", user="alice", password="alice-password",
    )
    request_id = json.loads(requested.stdout)["request_id"]
    own = sextant(secured, "transitions", "approve", str(request_id), user="alice", password="alice-password", check=False)
    assert own.returncode != 0 and "403" in own.stderr
    approved = sextant(
        secured, "transitions", "approve", str(request_id), "--comment", "ok", user="bob", password="bob-password"
    )
    assert '"approved"' in approved.stdout
    assert alice.get_model_version_by_alias("fraud-model", "champion").version == "1"

    # carol gets read on the model and loads the champion with her token.
    api(
        secured,
        "PUT",
        "/api/v1/permissions",
        json={"resource_type": "registered_model", "resource_id": "fraud-model", "principal": "user:carol", "permission": "read"},
    )
    as_user(token=carol_token)
    loaded = mlflow.pyfunc.load_model("models:/fraud-model@champion")
    assert list(loaded.predict(X[:5])) == list(model.predict(X[:5]))
    # ...but still not the training runs.
    assert mlflow.search_runs(experiment_ids=[experiment.experiment_id]).empty

    # Everything was audited, and the chain verifies.
    entries = api(secured, "GET", "/api/v1/audit", params={"resource_type": "registered_model", "resource_id": "fraud-model"})[
        "entries"
    ]
    actions = [(e["actor"], e["action"].rsplit("/", 1)[-1], e["outcome"]) for e in entries]
    assert ("alice", "alias", "denied") in actions
    assert ("bob", "approve", "ok") in actions
    alice_entries = api(secured, "GET", "/api/v1/audit", params={"actor": "alice"})["entries"]
    assert any(e["action"].endswith("/approve") and e["outcome"] == "denied" for e in alice_entries)
    verified = sextant(secured, "audit", "verify", user="admin", password=ADMIN_PASSWORD)
    assert '"ok": true' in verified.stdout
    exported = sextant(secured, "audit", "export", "--actor", "bob", user="admin", password=ADMIN_PASSWORD)
    lines = [json.loads(line) for line in exported.stdout.splitlines()]
    assert lines and all(line["actor"] == "bob" for line in lines)

    # A deployment made from @champion follows it, and moves it only through the workflow:
    # serving version 2 directly would move the protected alias, so it is refused with the
    # way to ask; once the request is approved, the deployment follows on its own.
    sextant(secured, "deployments", "create", "fraud-api", "--model", "fraud-model@champion",
            user="admin", password=ADMIN_PASSWORD)
    alice = as_user("alice", "alice-password")
    with mlflow.start_run():
        info = mlflow.sklearn.log_model(LogisticRegression(C=0.1).fit(X, y), name="model", input_example=X[:2])
    assert mlflow.register_model(info.model_uri, "fraud-model").version == "2"
    refused = sextant(secured, "deployments", "update", "fraud-api", "--model", "fraud-model/2",
                      user="admin", password=ADMIN_PASSWORD, check=False)
    assert refused.returncode != 0 and "transitions request" in refused.stderr, refused.stderr
    request_id = json.loads(sextant(
        secured, "transitions", "request", "--model", "fraud-model", "--version", "2", "--alias", "champion",
        user="alice", password="alice-password",
    ).stdout)["request_id"]
    sextant(secured, "transitions", "approve", str(request_id), user="bob", password="bob-password")
    deadline = time.monotonic() + 30
    while True:
        status = json.loads(sextant(secured, "deployments", "status", "fraud-api", user="admin", password=ADMIN_PASSWORD).stdout)
        if status["arms"][0]["model"]["version"] == "2" and status["ready"]:
            break
        assert time.monotonic() < deadline, status
        time.sleep(0.5)


def test_audit_verify_catches_an_edited_row(secured):
    api(secured, "POST", "/api/v1/groups", json={"name": "auditors"})
    with sqlite3.connect(secured["db"]) as conn:
        with pytest.raises(sqlite3.DatabaseError, match="append-only"):
            conn.execute("UPDATE audit_log SET actor = 'mallory' WHERE seq = 2")
        conn.execute("DROP TRIGGER audit_log_no_update")
        conn.execute("UPDATE audit_log SET actor = 'mallory' WHERE seq = 2")
    done = sextant(secured, "audit", "verify", "--backend-store-uri", f"sqlite:///{secured['db']}", check=False)
    assert done.returncode != 0
    assert "entry 2" in done.stderr, done.stderr
    through_server = sextant(secured, "audit", "verify", user="admin", password=ADMIN_PASSWORD, check=False)
    assert through_server.returncode != 0 and "entry 2" in through_server.stderr


def test_deployments_need_invoke_on_the_server_and_on_replicas(secured, as_user, tmp_path):
    """Calling a deployment needs invoke on it, on the server and on a replica (which
    asks the server); deploying needs deploy on the registered model, which only an
    admin grants."""
    import mlflow
    from sklearn.linear_model import LogisticRegression

    for user in ("dave", "erin"):
        api(secured, "POST", "/api/v1/users", json={"username": user, "password": f"{user}-password"})
    dave_token = api(secured, "POST", "/api/v1/tokens", auth=("dave", "dave-password"), json={"name": "ops"})["token"]
    erin_token = api(
        secured, "POST", "/api/v1/tokens", auth=("erin", "erin-password"), json={"name": "app", "scopes": ["invoke"]}
    )["token"]
    as_user("dave", "dave-password")
    mlflow.set_experiment("scoring")
    X = np.random.default_rng(1).normal(size=(80, 3))
    y = (X[:, 1] > 0).astype(int)
    with mlflow.start_run():
        info = mlflow.sklearn.log_model(LogisticRegression().fit(X, y), name="model", input_example=X[:2])
    mlflow.register_model(info.model_uri, "scoring-model")
    # Nobody deploys without an admin's grant, not even the model's manager (dave).
    for token in (erin_token, dave_token):
        refused = sextant(secured, "deployments", "create", "scoring", "--model", "scoring-model/1", token=token, check=False)
        assert refused.returncode != 0 and "403" in refused.stderr
    sextant(
        secured, "permissions", "grant", "--model", "scoring-model", "--user", "dave", "--permission", "deploy",
        user="admin", password=ADMIN_PASSWORD,
    )  # fmt: skip
    sextant(secured, "deployments", "create", "scoring", "--model", "scoring-model/1", token=dave_token)

    body = {"instances": X[:3].tolist()}

    def call(base, token=None):
        headers = {"Authorization": f"Bearer {token}"} if token else {}
        return requests.post(f"{base}/deployments/scoring/invocations", json=body, headers=headers, timeout=30).status_code

    assert call(secured["uri"]) == 401
    assert call(secured["uri"], erin_token) == 403
    assert call(secured["uri"], dave_token) == 200
    # A replica that follows the server with dave's token.
    port = _free_port()
    env = {k: v for k, v in os.environ.items() if not k.startswith(("MLFLOW_TRACKING_", "SEXTANT_"))}
    env.update(SEXTANT_SERVER=secured["uri"], SEXTANT_TOKEN=dave_token, NO_COLOR="1")
    replica = subprocess.Popen(
        [str(_sextant_bin()), "serve", "--deployment", "scoring", "--port", str(port), "--cache-dir", str(tmp_path)],
        env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, start_new_session=True,
    )  # fmt: skip
    replica_uri = f"http://127.0.0.1:{port}"
    try:
        for _ in range(100):
            try:
                if requests.get(f"{replica_uri}/v2/health/ready", timeout=2).status_code == 200:
                    break
            except requests.RequestException:
                pass
            time.sleep(0.2)
        assert call(replica_uri) == 401
        assert call(replica_uri, erin_token) == 403
        assert call(replica_uri, dave_token) == 200
        # Granting invoke opens both doors (the replica's refusal is cached for 5 s).
        api(
            secured,
            "PUT",
            "/api/v1/permissions",
            json={"resource_type": "deployment", "resource_id": "scoring", "principal": "user:erin", "permission": "invoke"},
        )
        assert call(secured["uri"], erin_token) == 200
        time.sleep(5.5)
        assert call(replica_uri, erin_token) == 200
        # An invoke-only token still cannot change the deployment or read the model.
        assert requests.post(
            f"{secured['uri']}/api/v1/deployments/scoring/rollback", json={},
            headers={"Authorization": f"Bearer {erin_token}"}, timeout=10,
        ).status_code == 403  # fmt: skip
    finally:
        _stop(replica)


def test_a_logged_validation_spec_cannot_read_another_users_run(secured, as_user, tmp_path):
    """Mallory logs, with her own model, a validation spec naming a run of Victor's that
    she may not read: the server refuses to run it (a report would show his data), so
    the version is in error and blocked, and no report is written."""
    import mlflow
    from sklearn.linear_model import LogisticRegression

    suffix = os.urandom(4).hex()
    victor, mallory = f"victor-{suffix}", f"mallory-{suffix}"
    for user in (victor, mallory):
        api(secured, "POST", "/api/v1/users", json={"username": user, "password": f"{user}-password"})
    X = np.random.default_rng(2).normal(size=(80, 2))
    y = (X[:, 0] > 0).astype(int)
    (tmp_path / "labels.csv").write_text("a,b,label\n" + "".join(f"{a},{b},{c}\n" for (a, b), c in zip(X, y)))
    as_user(victor, f"{victor}-password")
    mlflow.set_experiment(f"private-{suffix}")
    with mlflow.start_run() as private:
        mlflow.log_artifact(str(tmp_path / "labels.csv"), artifact_path="data")

    client = as_user(mallory, f"{mallory}-password")
    mlflow.set_experiment(f"mine-{suffix}")
    with mlflow.start_run():
        info = mlflow.sklearn.log_model(LogisticRegression().fit(X, y), name="model", input_example=X[:2])
    spec = tmp_path / "sextant-validation.yaml"
    spec.write_text(
        "task: {type: binary_classification, label: label}\n"
        f"datasets: {{stolen: {{uri: 'runs:/{private.info.run_id}/data/labels.csv'}}}}\n"
        "tests:\n  - {id: peek, kind: metric, dataset: stolen, metric: accuracy, min: 0}\n"
    )
    client.log_model_artifact(info.model_id, str(spec))
    model = f"peek-{suffix}"
    version = mlflow.register_model(info.model_uri, model).version
    deadline = time.monotonic() + 60
    while True:
        result = api(secured, "GET", f"/api/v1/registered-models/{model}/versions/{version}/validation")
        if result["status"] != "pending" or time.monotonic() > deadline:
            break
        time.sleep(0.25)
    assert result["status"] == "error" and result["report"] is None, result
    assert "Permission denied" in result["message"] and mallory in result["message"]
    with pytest.raises(MlflowException) as refused:
        client.set_registered_model_alias(model, "candidate", version)
    assert "could not be validated" in str(refused.value)


def _settled(secured, model, version):
    deadline = time.monotonic() + 60
    while True:
        result = api(secured, "GET", f"/api/v1/registered-models/{model}/versions/{version}/validation")
        if result["status"] != "pending" or time.monotonic() > deadline:
            return result
        time.sleep(0.25)


def test_a_spec_cannot_borrow_permissions(secured, as_user, tmp_path):
    """Mallory's spec may not query Victor's model as its baseline (its figures on her
    rows would leak his model, and whether its versions exist), neither attached nor
    logged; and when an admin runs her refused logged spec again, it is still checked
    against her, the version's registrant, not against the admin."""
    import mlflow
    from sklearn.linear_model import LogisticRegression

    suffix = os.urandom(4).hex()
    victor, mallory = f"victor-{suffix}", f"mallory-{suffix}"
    for user in (victor, mallory):
        api(secured, "POST", "/api/v1/users", json={"username": user, "password": f"{user}-password"})
    X = np.random.default_rng(3).normal(size=(80, 2))
    y = (X[:, 0] > 0).astype(int)
    (tmp_path / "labels.csv").write_text("a,b,label\n" + "".join(f"{a},{b},{c}\n" for (a, b), c in zip(X, y)))
    as_user(victor, f"{victor}-password")
    mlflow.set_experiment(f"victor-{suffix}")
    with mlflow.start_run() as private:
        mlflow.log_artifact(str(tmp_path / "labels.csv"), artifact_path="data")
        info = mlflow.sklearn.log_model(LogisticRegression().fit(X, y), name="model", input_example=X[:2])
    secret_model = f"secret-{suffix}"
    mlflow.register_model(info.model_uri, secret_model)

    client = as_user(mallory, f"{mallory}-password")
    mlflow.set_experiment(f"mallory-{suffix}")
    with mlflow.start_run():
        mine = mlflow.sklearn.log_model(LogisticRegression().fit(X, y), name="model", input_example=X[:2])
        mlflow.log_artifact(str(tmp_path / "labels.csv"), artifact_path="data")
        own_run = mlflow.active_run().info.run_id
    model = f"probe-{suffix}"
    version = mlflow.register_model(mine.model_uri, model).version
    probing = (
        "task: {type: binary_classification, label: label}\n"
        f"baseline: {{model: 'models:/{secret_model}/1'}}\n"
        f"datasets: {{probe: {{uri: 'runs:/{own_run}/data/labels.csv'}}}}\n"
        "tests:\n  - {id: p, kind: metric, dataset: probe, metric: selection_rate, min: 0, vs_baseline: {max_drop: 1}}\n"
    )
    for baseline in (f"models:/{secret_model}/1", f"models:/{secret_model}/9", "models:/no-such-model@champion"):
        refused = requests.put(
            f"{secured['uri']}/api/v1/registered-models/{model}/validation-spec",
            auth=(mallory, f"{mallory}-password"),
            json={"spec": probing.replace(f"models:/{secret_model}/1", baseline)},
            timeout=30,
        )
        # The same refusal whether or not the model or version exists.
        assert refused.status_code == 403, refused.text
        assert refused.json()["error_code"] == "PERMISSION_DENIED" and "baseline" in refused.json()["message"]

    # Logged with a version instead: refused at registration, and again when an admin
    # asks for it to run (the spec also reads Victor's run).
    stealing = probing.replace(f"runs:/{own_run}/", f"runs:/{private.info.run_id}/")
    (tmp_path / "sextant-validation.yaml").write_text(stealing)
    with mlflow.start_run():
        logged = mlflow.sklearn.log_model(LogisticRegression().fit(X, y), name="model", input_example=X[:2])
    client.log_model_artifact(logged.model_id, str(tmp_path / "sextant-validation.yaml"))
    peek = f"peek-{suffix}"
    peek_version = mlflow.register_model(logged.model_uri, peek).version
    first = _settled(secured, peek, peek_version)
    assert first["status"] == "error" and mallory in first["message"], first
    api(secured, "POST", f"/api/v1/registered-models/{peek}/versions/{peek_version}/validation")
    again = _settled(secured, peek, peek_version)
    assert again["status"] == "error" and again["report"] is None, again
    assert mallory in again["message"] and "Permission denied" in again["message"], again


def test_a_dataset_name_is_its_first_pushers(secured, tmp_path):
    """Victor's quality gate reads `dataset:NAME` (its latest version): Mallory cannot
    push a version of her own under his name, while he can; a version record must state
    its chunks' true sizes (they bound what the server stages), and sizes that overflow
    are a 400, not a crash."""
    import hashlib

    suffix = os.urandom(4).hex()
    victor, mallory = f"victor-{suffix}", f"mallory-{suffix}"
    for user in (victor, mallory):
        api(secured, "POST", "/api/v1/users", json={"username": user, "password": f"{user}-password"})
    data = tmp_path / "holdout.csv"
    data.write_text("a,label\n1,0\n2,1\n")
    name = f"holdout-{suffix}"
    sextant(secured, "datasets", "push", str(data), "--name", name, user=victor, password=f"{victor}-password")
    data.write_text("a,label\n1,1\n2,0\n")
    squatted = sextant(secured, "datasets", "push", str(data), "--name", name, user=mallory, password=f"{mallory}-password", check=False)
    assert squatted.returncode != 0 and f"dataset '{name}' is {victor}'s" in squatted.stderr, squatted.stderr
    latest = api(secured, "GET", f"/api/v1/datasets/{name}/versions/latest")
    assert latest["created_by"] == victor
    sextant(secured, "datasets", "push", str(data), "--name", name, user=victor, password=f"{victor}-password")
    # Her own names are hers.
    sextant(secured, "datasets", "push", str(data), "--name", f"mine-{suffix}", user=mallory, password=f"{mallory}-password")

    chunk = b"x" * 1000
    sha = hashlib.sha256(chunk).hexdigest()
    auth = (mallory, f"{mallory}-password")
    stored = requests.put(f"{secured['uri']}/api/v1/datasets/chunks/{sha}", data=chunk, auth=auth, timeout=30)
    assert stored.status_code == 200, stored.text
    whole = hashlib.sha256(chunk * 300).hexdigest()
    for chunks, says in (
        ([[sha, 1]] * 300, "holds 1000 bytes, not 1"),
        ([[sha, 2**64 - 1], [sha, 1]], "overflow"),
    ):
        claimed = sum(size for _, size in chunks) % 2**64
        response = requests.post(
            f"{secured['uri']}/api/v1/datasets/amplified-{suffix}/versions",
            auth=auth,
            json={"kind": "file", "source": "amp.csv", "files": [{"path": "", "bytes": claimed, "sha256": whole, "chunks": chunks}]},
            timeout=30,
        )
        assert response.status_code == 400, response.text
        assert says in response.json()["message"], response.text
