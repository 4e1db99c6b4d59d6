"""Plain HTTP behaviour: health/version routes, error bodies, malformed input, path safety."""

from __future__ import annotations

import http.client
import json
import re
import urllib.parse
import uuid
from pathlib import Path

import mlflow
import pytest
import requests
from mlflow.entities import ViewType
from mlflow.exceptions import MlflowException

from _helpers import assert_mlflow_error, unique


def test_health(server):
    resp = requests.get(f"{server.uri}/health", timeout=10)
    assert resp.status_code == 200
    assert resp.text.strip() == "OK"


def test_version(server):
    resp = requests.get(f"{server.uri}/version", timeout=10)
    assert resp.status_code == 200
    assert re.fullmatch(r"\d+\.\d+\.\d+\S*", resp.text.strip()), resp.text


def test_server_info(server):
    resp = requests.get(f"{server.uri}/api/3.0/mlflow/server-info", timeout=10)
    assert resp.status_code == 200
    info = resp.json()
    assert isinstance(info, dict)
    # The artifact client reads these two flags to decide whether to use multipart transfers.
    assert info.get("multipart_uploads_enabled") in (True, False)
    assert info.get("multipart_downloads_enabled") in (True, False)


def test_default_experiment_exists(client):
    exp = client.get_experiment("0")
    assert exp.name == "Default"
    assert exp.lifecycle_stage == "active"
    assert client.get_experiment_by_name("Default").experiment_id == "0"
    all_ids = {e.experiment_id for e in client.search_experiments(view_type=ViewType.ALL)}
    assert "0" in all_ids


def test_get_run_missing_id_is_404(client):
    with pytest.raises(MlflowException) as excinfo:
        client.get_run("0123456789abcdef0123456789abcdef")
    assert_mlflow_error(excinfo, "RESOURCE_DOES_NOT_EXIST", 404)


def test_missing_experiment_and_model_are_404(client):
    assert client.get_experiment_by_name(unique("never-created")) is None
    with pytest.raises(MlflowException) as excinfo:
        client.get_registered_model(unique("never-registered"))
    assert_mlflow_error(excinfo, "RESOURCE_DOES_NOT_EXIST", 404)


def test_malformed_filter_is_invalid_parameter(client, experiment_id):
    with pytest.raises(MlflowException) as excinfo:
        client.search_runs([experiment_id], filter_string="metrics.acc >>> 'x' and")
    assert_mlflow_error(excinfo, "INVALID_PARAMETER_VALUE", 400)


def test_create_existing_registered_model_is_already_exists(client):
    name = unique("dup-model")
    client.create_registered_model(name)
    with pytest.raises(MlflowException) as excinfo:
        client.create_registered_model(name)
    assert_mlflow_error(excinfo, "RESOURCE_ALREADY_EXISTS", 400)


def test_raw_error_body_shape(server):
    resp = requests.get(
        f"{server.uri}/api/2.0/mlflow/runs/get",
        params={"run_id": "f" * 32, "run_uuid": "f" * 32},
        timeout=10,
    )
    assert resp.status_code == 404
    assert resp.headers["Content-Type"].startswith("application/json")
    body = resp.json()
    assert body["error_code"] == "RESOURCE_DOES_NOT_EXIST"
    assert isinstance(body["message"], str) and body["message"]


@pytest.mark.parametrize("body", [b"{not json", b'{"experiment_id": "0", ', b"\xff\xfe\x00garbage"])
def test_malformed_json_body_is_400(server, body):
    resp = requests.post(
        f"{server.uri}/api/2.0/mlflow/runs/create",
        data=body,
        headers={"Content-Type": "application/json"},
        timeout=10,
    )
    assert resp.status_code == 400, resp.text
    assert resp.headers["Content-Type"].startswith("application/json")
    payload = resp.json()
    assert payload["error_code"] in ("INVALID_PARAMETER_VALUE", "BAD_REQUEST", "MALFORMED_REQUEST")
    assert payload["message"]


def test_wrong_field_type_is_invalid_parameter(server):
    resp = requests.post(
        f"{server.uri}/api/2.0/mlflow/runs/create",
        json={"experiment_id": 5},
        timeout=10,
    )
    assert resp.status_code == 400, resp.text
    assert resp.json()["error_code"] == "INVALID_PARAMETER_VALUE"


def test_log_metric_missing_key_is_invalid_parameter(client, experiment_id, server):
    run = client.create_run(experiment_id)
    resp = requests.post(
        f"{server.uri}/api/2.0/mlflow/runs/log-metric",
        json={"run_id": run.info.run_id, "value": 1.0, "timestamp": 1},
        timeout=10,
    )
    assert resp.status_code == 400, resp.text
    body = resp.json()
    assert body["error_code"] == "INVALID_PARAMETER_VALUE"
    assert "key" in body["message"]


def test_unknown_route_is_404(server):
    resp = requests.get(f"{server.uri}/api/2.0/mlflow/no-such-endpoint", timeout=10)
    assert resp.status_code == 404


# Raw request targets are sent with http.client so that nothing normalises `..` away
# (requests/urllib3 would remove dot segments before sending).
TRAVERSAL_TEMPLATES = [
    "../../{name}",
    "../../../../../../../../tmp/{name}",
    "0/../../../{name}",
    "%2e%2e/%2e%2e/{name}",
    "%2E%2E/%2E%2E/%2E%2E/tmp/{name}",
    "..%2f..%2f{name}",
    "%2e%2e%2f%2e%2e%2f{name}",
    "/tmp/{name}",
    "%2Ftmp%2F{name}",
]


def _raw_request(server, method: str, target: str, body: bytes | None = None):
    parsed = urllib.parse.urlsplit(server.uri)
    conn = http.client.HTTPConnection(parsed.hostname, parsed.port, timeout=15)
    try:
        headers = {"Content-Type": "application/octet-stream"} if body is not None else {}
        conn.request(method, target, body=body, headers=headers)
        resp = conn.getresponse()
        return resp.status, resp.getheader("Content-Type") or "", resp.read()
    finally:
        conn.close()


@pytest.mark.parametrize("template", TRAVERSAL_TEMPLATES)
def test_artifact_upload_path_traversal_rejected(server, template):
    name = f"sextant-traversal-{uuid.uuid4().hex}"
    target = "/api/2.0/mlflow-artifacts/artifacts/" + template.format(name=name)
    status, content_type, body = _raw_request(server, "PUT", target, body=b"must not be written")
    assert status == 400, (status, body[:300])
    assert content_type.startswith("application/json")
    assert json.loads(body)["error_code"] == "INVALID_PARAMETER_VALUE"
    # Nothing with that name may exist anywhere we can see: the server's own temp tree,
    # its parent (the system temp dir), or /etc.
    for base in (server.root, server.root.parent):
        found = list(Path(base).rglob(name)) if base == server.root else list(Path(base).glob(name))
        assert not found, f"traversal wrote {found}"
    assert not Path("/etc", name).exists()
    assert not Path("/", name).exists()
    if server.backend == "s3":
        from _helpers import s3_keys

        assert not s3_keys(server, contains=name)


@pytest.mark.parametrize(
    "target",
    [
        "/api/2.0/mlflow-artifacts/artifacts/../../../../../../../../etc/passwd",
        "/api/2.0/mlflow-artifacts/artifacts/%2e%2e/%2e%2e/%2e%2e/%2e%2e/%2e%2e/%2e%2e/etc/passwd",
        "/api/2.0/mlflow-artifacts/artifacts/%2Fetc%2Fpasswd",
        "/api/2.0/mlflow-artifacts/artifacts?path=..%2F..%2F..%2F..%2Fetc",
    ],
)
def test_artifact_download_and_list_traversal_rejected(server, target):
    status, _, body = _raw_request(server, "GET", target)
    assert status == 400, (status, body[:300])
    assert b"root:" not in body


def test_tracking_uri_env_is_used_by_fluent_api(tracking_uri):
    assert mlflow.get_tracking_uri() == tracking_uri
