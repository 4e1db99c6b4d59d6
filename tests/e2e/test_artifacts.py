"""Artifacts through the `mlflow-artifacts` proxy: upload, list, download, text/dict helpers."""

from __future__ import annotations

import json
import os
from pathlib import Path

import mlflow
import pytest
import requests
import yaml
from mlflow.artifacts import download_artifacts as download_artifact_uri

from _helpers import s3_keys


@pytest.fixture
def local_tree(tmp_path):
    """A directory with a nested file, plus a stand-alone file with binary content."""
    src = tmp_path / "src"
    (src / "sub" / "deeper").mkdir(parents=True)
    (src / "a.txt").write_text("alpha\n")
    (src / "sub" / "b.json").write_text(json.dumps({"b": [1, 2, 3]}))
    (src / "sub" / "deeper" / "c.bin").write_bytes(bytes(range(256)) * 64)
    notes = tmp_path / "notes.txt"
    notes.write_text("hello artifacts\n")
    blob = tmp_path / "blob.bin"
    blob.write_bytes(os.urandom(3 * 1024 * 1024 + 17))  # a few MiB, not a multiple of any chunk
    return {"dir": src, "notes": notes, "blob": blob}


def test_log_list_download_artifacts(client, experiment_id, server, local_tree, tmp_path):
    with mlflow.start_run() as run:
        mlflow.log_artifact(str(local_tree["notes"]))
        mlflow.log_artifact(str(local_tree["blob"]), artifact_path="binary")
        mlflow.log_artifacts(str(local_tree["dir"]), artifact_path="extra")
    run_id = run.info.run_id

    root = {f.path: f for f in client.list_artifacts(run_id)}
    assert set(root) == {"notes.txt", "binary", "extra"}
    assert root["notes.txt"].is_dir is False
    assert root["notes.txt"].file_size == len("hello artifacts\n")
    assert root["binary"].is_dir is True and root["extra"].is_dir is True

    extra = {f.path: f for f in client.list_artifacts(run_id, "extra")}
    assert set(extra) == {"extra/a.txt", "extra/sub"}
    assert extra["extra/sub"].is_dir
    sub = {f.path: f for f in client.list_artifacts(run_id, "extra/sub")}
    assert set(sub) == {"extra/sub/b.json", "extra/sub/deeper"}
    assert sub["extra/sub/b.json"].file_size == (local_tree["dir"] / "sub" / "b.json").stat().st_size
    assert client.list_artifacts(run_id, "no/such/dir") == []

    dest = tmp_path / "dl1"
    dest.mkdir()
    got = Path(client.download_artifacts(run_id, "notes.txt", str(dest)))
    assert got.read_bytes() == local_tree["notes"].read_bytes()

    got = Path(mlflow.artifacts.download_artifacts(run_id=run_id, artifact_path="binary/blob.bin", dst_path=str(dest)))
    assert got.read_bytes() == local_tree["blob"].read_bytes()

    # Whole directory, recursively.
    dest = tmp_path / "dl2"
    dest.mkdir()
    got_dir = Path(client.download_artifacts(run_id, "extra", str(dest)))
    for rel in ["a.txt", "sub/b.json", "sub/deeper/c.bin"]:
        assert (got_dir / rel).read_bytes() == (local_tree["dir"] / rel).read_bytes(), rel

    # The whole run, through the artifact URI the server handed out.
    dest = tmp_path / "dl3"
    dest.mkdir()
    everything = Path(download_artifact_uri(artifact_uri=run.info.artifact_uri, dst_path=str(dest)))
    assert (everything / "extra" / "sub" / "deeper" / "c.bin").read_bytes() == (
        local_tree["dir"] / "sub" / "deeper" / "c.bin"
    ).read_bytes()
    assert (everything / "notes.txt").read_text() == "hello artifacts\n"

    if server.backend == "s3":
        keys = s3_keys(server, contains=run_id)
        assert any(k.endswith("/notes.txt") for k in keys), keys
        assert any(k.endswith("/extra/sub/deeper/c.bin") for k in keys), keys


def test_log_text_dict_and_load(client, experiment_id, tmp_path):
    payload = {"name": "sextant", "values": [1, 2.5, None], "nested": {"ok": True}}
    with mlflow.start_run() as run:
        mlflow.log_text("line one\nline two ✓\n", "texts/readme.md")
        mlflow.log_dict(payload, "config/params.json")
        mlflow.log_dict(payload, "config/params.yaml")
    run_id = run.info.run_id
    base = run.info.artifact_uri

    assert mlflow.artifacts.load_text(f"{base}/texts/readme.md") == "line one\nline two ✓\n"
    assert mlflow.artifacts.load_dict(f"{base}/config/params.json") == payload
    # load_dict only parses JSON; log_dict wrote YAML for the .yaml name.
    assert yaml.safe_load(mlflow.artifacts.load_text(f"{base}/config/params.yaml")) == payload
    assert mlflow.artifacts.load_text(f"runs:/{run_id}/texts/readme.md") == "line one\nline two ✓\n"
    listed = sorted(f.path for f in client.list_artifacts(run_id, "config"))
    assert listed == ["config/params.json", "config/params.yaml"]


def test_artifact_names_with_spaces_and_unicode(client, experiment_id, tmp_path):
    src = tmp_path / "odd names"
    src.mkdir()
    (src / "with space.txt").write_text("space")
    (src / "ünïcødé.txt").write_text("unicode")
    # Note: a literal "%20" in a file name does not survive: the client puts the path into
    # the URL without quoting it, so every server decodes it to a space (MLflow included).
    with mlflow.start_run() as run:
        mlflow.log_artifacts(str(src), artifact_path="odd dir")
    names = sorted(f.path for f in client.list_artifacts(run.info.run_id, "odd dir"))
    assert names == ["odd dir/with space.txt", "odd dir/ünïcødé.txt"]
    dest = tmp_path / "dl"
    dest.mkdir()
    got = Path(client.download_artifacts(run.info.run_id, "odd dir", str(dest)))
    assert (got / "with space.txt").read_text() == "space"
    assert (got / "ünïcødé.txt").read_text() == "unicode"


def test_raw_artifact_proxy_roundtrip(server, client, experiment_id):
    """The proxy endpoints as plain HTTP: PUT bytes, GET them back, list, and 404 for missing."""
    run = client.create_run(experiment_id)
    rel = run.info.artifact_uri.removeprefix("mlflow-artifacts:").lstrip("/")
    url = f"{server.uri}/api/2.0/mlflow-artifacts/artifacts/{rel}/raw/data.csv"
    body = b"a,b\n1,2\n"
    put = requests.put(url, data=body, timeout=30)
    assert put.status_code == 200, put.text

    got = requests.get(url, timeout=30)
    assert got.status_code == 200
    assert got.content == body
    assert "data.csv" in got.headers.get("Content-Disposition", "")

    listing = requests.get(
        f"{server.uri}/api/2.0/mlflow-artifacts/artifacts", params={"path": f"{rel}/raw"}, timeout=30
    )
    assert listing.status_code == 200
    assert listing.json()["files"] == [{"path": "data.csv", "is_dir": False, "file_size": len(body)}]

    missing = requests.get(f"{server.uri}/api/2.0/mlflow-artifacts/artifacts/{rel}/raw/nope.csv", timeout=30)
    if server.is_mlflow and server.backend == "s3":
        # MLflow lets the S3 "NoSuchKey" error escape as a 500; a local destination gives 404.
        assert missing.status_code in (404, 500)
    else:
        assert missing.status_code == 404
