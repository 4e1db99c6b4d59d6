"""`sextant exec -- COMMAND` with a real git repository and the unmodified `mlflow`
client: the command logs into the run exec created; the run's manifest records the
commit, the uncommitted diff, the packages and frameworks, the system, the (absent)
GPUs, the seed, the command's outcome and the content hash of its data; the hash of the
manifest is in the audit log, so an edited manifest is caught; a seeded training run
again with the recorded seed gives the same metrics; a changed data file changes its
digest; a failing or missing command, or a directory outside git, still records what
was captured."""

from __future__ import annotations

import hashlib
import json
import os
import platform
import subprocess
import sys
import time
from pathlib import Path

import pytest
import requests

from conftest import AGAINST_MLFLOW, _sextant_bin

pytestmark = [
    pytest.mark.sextant_only,
    pytest.mark.skipif(AGAINST_MLFLOW, reason="Sextant's reproducibility capture"),
]

TRAIN = """\
import os, sys
import mlflow
import numpy as np
import pandas as pd
from sklearn.ensemble import RandomForestClassifier

seed = int(os.environ["SEXTANT_SEED"])
frame = pd.read_csv("data.csv")
X, y = frame[["a", "b", "c"]].to_numpy(), frame["y"].to_numpy()
with mlflow.start_run():
    mlflow.log_input(mlflow.data.from_pandas(frame, source="data.csv", name="calls"), context="training")
    model = RandomForestClassifier(n_estimators=15, max_features=1, bootstrap=True, random_state=seed).fit(X[:150], y[:150])
    mlflow.log_param("seed", seed)
    mlflow.log_metric("accuracy", model.score(X[150:], y[150:]))
print("trained with seed", seed)
"""


def git(repo: Path, *args: str) -> str:
    return subprocess.run(["git", *args], cwd=repo, check=True, capture_output=True, text=True).stdout.strip()


@pytest.fixture
def repo(tmp_path):
    import numpy as np
    import pandas as pd

    repo = tmp_path / "project"
    repo.mkdir()
    git(repo, "init", "-q")
    git(repo, "config", "user.email", "ml@example.com")
    git(repo, "config", "user.name", "ML")
    (repo / "train.py").write_text(TRAIN)
    rng = np.random.default_rng(0)
    X = rng.normal(size=(300, 3))
    pd.DataFrame({"a": X[:, 0], "b": X[:, 1], "c": X[:, 2], "y": (X[:, 0] + 0.5 * rng.normal(size=300) > 0).astype(int)}).to_csv(
        repo / "data.csv", index=False
    )
    (repo / "requirements.txt").write_text("scikit-learn\npandas\nmlflow\n")
    git(repo, "add", "-A")
    git(repo, "commit", "-qm", "first model")
    return repo


def exec_(uri: str, cwd: Path, *args: str) -> subprocess.CompletedProcess:
    env = dict(os.environ, SEXTANT_SERVER=uri)
    env.pop("MLFLOW_RUN_ID", None)
    return subprocess.run([str(_sextant_bin()), "exec", *args], cwd=cwd, env=env, capture_output=True, text=True,
                          timeout=300)  # fmt: skip


def run_of(done: subprocess.CompletedProcess) -> str:
    line = next(line for line in done.stderr.splitlines() if line.startswith("sextant: run "))
    return line.split()[2].rstrip(":")


def manifest_check(uri: str, run_id: str, *extra: str) -> subprocess.CompletedProcess:
    return subprocess.run([str(_sextant_bin()), "manifest", run_id, "--format", "json", *extra],
                          env=dict(os.environ, SEXTANT_SERVER=uri), capture_output=True, text=True, timeout=60)  # fmt: skip


def test_exec_records_what_a_training_run_depended_on(tracking_uri, repo, tmp_path):
    import sklearn
    from mlflow import MlflowClient

    client = MlflowClient(tracking_uri)
    python = sys.executable
    done = exec_(tracking_uri, repo, "--experiment", "reproducible", "--input", "data.csv", "--seed", "7", "--", python, "train.py")
    assert done.returncode == 0, done.stderr
    assert "trained with seed 7" in done.stdout
    run_id = run_of(done)

    # The unmodified client logged into exec's run, which exec then finished.
    run = client.get_run(run_id)
    assert run.info.status == "FINISHED"
    assert run.data.params["seed"] == "7" and "accuracy" in run.data.metrics
    tags = run.data.tags
    head = git(repo, "rev-parse", "HEAD")
    assert tags["mlflow.source.git.commit"] == head
    assert tags["sextant.git.dirty"] == "false"
    assert tags["sextant.seed"] == "7" and tags["sextant.exit_code"] == "0"
    assert tags["sextant.gpu"] == "none"
    assert f"scikit-learn=={sklearn.__version__}" in tags["sextant.frameworks"]

    check = manifest_check(tracking_uri, run_id, "--full")
    assert check.returncode == 0, check.stderr
    checked = json.loads(check.stdout)
    assert checked["intact"] is True and checked["recorded_sha256"] == tags["sextant.manifest.sha256"]
    manifest = checked["manifest"]
    assert manifest["run_id"] == run_id and manifest["format"] == "sextant.environment/1"
    assert manifest["git"]["commit"] == head and manifest["git"]["branch"] == git(repo, "rev-parse", "--abbrev-ref", "HEAD")
    assert manifest["python"]["version"] == platform.python_version()
    assert Path(manifest["python"]["executable"]).resolve() == Path(python).resolve()
    assert f"scikit-learn=={sklearn.__version__}" in manifest["python"]["packages"]
    assert manifest["frameworks"]["scikit-learn"] == sklearn.__version__
    assert manifest["system"]["kernel"] == platform.release() and manifest["system"]["arch"] == platform.machine()
    assert manifest["system"]["memory_bytes"] > 0 and manifest["system"]["cpu_flags"]
    assert manifest["gpus"]["nvidia"] == {"present": False, "reason": "nvidia-smi not found or it found no NVIDIA driver"}
    assert manifest["seed"] == {"sextant_seed": 7, "pythonhashseed": os.environ.get("PYTHONHASHSEED", "7"), "given": True}
    assert manifest["command"]["argv"] == [python, "train.py"] and manifest["command"]["exit_code"] == 0
    assert "trained with seed 7" in manifest["command"]["stdout_tail"]
    data_sha = hashlib.sha256((repo / "data.csv").read_bytes()).hexdigest()
    assert manifest["inputs"] == [{"path": "data.csv", "sha256": data_sha, "bytes": (repo / "data.csv").stat().st_size}]
    (logged,) = manifest["logged_datasets"]
    assert logged["name"] == "calls" and logged["context"] == "training" and logged["content"]["sha256"] == data_sha
    lockfile = next(f for f in manifest["lockfiles"] if f["path"].endswith("requirements.txt"))
    assert lockfile["sha256"] == hashlib.sha256((repo / "requirements.txt").read_bytes()).hexdigest()
    assert "sextant/lockfiles/requirements.txt" in {a.path for a in client.list_artifacts(run_id, "sextant/lockfiles")}
    for secret in ("MLFLOW_TRACKING_TOKEN", "AWS_SECRET_ACCESS_KEY", "SEXTANT_PASSWORD"):
        assert secret not in manifest["environment"]

    # The same seed again: the same model, so the same metric.
    again = exec_(tracking_uri, repo, "--experiment", "reproducible", "--seed", "7", "--", python, "train.py")
    assert again.returncode == 0, again.stderr
    assert client.get_run(run_of(again)).data.metrics["accuracy"] == run.data.metrics["accuracy"]

    # Uncommitted changes: recorded as dirty, the diff stored and hashed.
    (repo / "train.py").write_text(TRAIN.replace("n_estimators=15", "n_estimators=16"))
    (repo / "notes.txt").write_text("untracked\n")
    dirty = exec_(tracking_uri, repo, "--experiment", "reproducible", "--", python, "train.py")
    assert dirty.returncode == 0, dirty.stderr
    dirty_id = run_of(dirty)
    manifest = json.loads(manifest_check(tracking_uri, dirty_id, "--full").stdout)["manifest"]
    assert manifest["git"]["dirty"] is True and manifest["git"]["untracked"] == ["notes.txt"]
    diff = Path(client.download_artifacts(dirty_id, "sextant/git.diff", str(tmp_path)))
    assert "+    model = RandomForestClassifier(n_estimators=16" in diff.read_text()
    assert manifest["git"]["diff_sha256"] == hashlib.sha256(diff.read_bytes()).hexdigest()
    assert manifest["seed"]["given"] is False and isinstance(manifest["seed"]["sextant_seed"], int)

    # A data file changed on disk has another digest.
    (repo / "data.csv").write_text((repo / "data.csv").read_text().replace("0.", "1.", 1))
    changed = exec_(tracking_uri, repo, "--experiment", "reproducible", "--input", "data.csv", "--", python, "train.py")
    assert changed.returncode == 0, changed.stderr
    manifest = json.loads(manifest_check(tracking_uri, run_of(changed), "--full").stdout)["manifest"]
    assert manifest["inputs"][0]["sha256"] != data_sha

    # An edited manifest no longer matches the hash in the audit log.
    edited = json.loads(Path(client.download_artifacts(run_id, "sextant/environment.json", str(tmp_path / "m"))).read_text())
    edited["git"]["commit"] = "0" * 40
    artifact_uri = client.get_run(run_id).info.artifact_uri
    path = artifact_uri.split("mlflow-artifacts:", 1)[1].lstrip("/")
    reply = requests.put(f"{tracking_uri}/api/2.0/mlflow-artifacts/artifacts/{path}/sextant/environment.json",
                         data=json.dumps(edited).encode(), timeout=30)  # fmt: skip
    assert reply.status_code == 200, reply.text
    caught = manifest_check(tracking_uri, run_id)
    assert caught.returncode == 1, caught.stdout + caught.stderr
    verdict = json.loads(caught.stdout)
    assert verdict["intact"] is False and verdict["stored_sha256"] != verdict["recorded_sha256"]
    assert "not the one recorded in the audit log" in caught.stderr


def test_failures_still_record_what_was_captured(tracking_uri, repo, tmp_path):
    from mlflow import MlflowClient

    client = MlflowClient(tracking_uri)
    failing = exec_(tracking_uri, repo, "--experiment", "failures", "--", sys.executable, "-c",
                    "import sys; print('half way'); sys.stderr.write('boom\\n'); sys.exit(3)")  # fmt: skip
    assert failing.returncode == 3, failing.stderr
    run_id = run_of(failing)
    assert client.get_run(run_id).info.status == "FAILED"
    manifest = json.loads(manifest_check(tracking_uri, run_id, "--full").stdout)["manifest"]
    assert manifest["command"]["exit_code"] == 3
    assert "half way" in manifest["command"]["stdout_tail"] and "boom" in manifest["command"]["stderr_tail"]

    missing = exec_(tracking_uri, repo, "--experiment", "failures", "--", "no-such-trainer", "--epochs", "3")
    assert missing.returncode == 127 and "cannot run 'no-such-trainer'" in missing.stderr, missing.stderr
    run_id = run_of(missing)
    assert client.get_run(run_id).info.status == "FAILED"
    manifest = json.loads(manifest_check(tracking_uri, run_id, "--full").stdout)["manifest"]
    assert manifest["command"]["exit_code"] is None and "no-such-trainer" in manifest["command"]["error"]
    assert manifest["git"]["commit"] == git(repo, "rev-parse", "HEAD")

    outside = tmp_path / "scratch"
    outside.mkdir()
    (outside / "data.csv").write_text("a\n1\n")
    plain = exec_(tracking_uri, outside, "--experiment", "failures", "--input", "data.csv", "--input", "absent.csv", "--",
                  sys.executable, "-c", "print('no repository here')")  # fmt: skip
    assert plain.returncode == 0, plain.stderr
    manifest = json.loads(manifest_check(tracking_uri, run_of(plain), "--full").stdout)["manifest"]
    assert manifest["git"]["present"] is False and "not in a git repository" in manifest["git"]["reason"]
    assert manifest["inputs"][1] == {"path": "absent.csv", "error": "no such file or directory"}

    no_manifest = client.create_run(client.create_experiment("plain-runs")).info.run_id
    refused = manifest_check(tracking_uri, no_manifest)
    assert refused.returncode == 2 and "no recorded environment manifest" in refused.stderr, refused.stderr


def datasets(uri: str, cwd: Path, *args: str, check: bool = True) -> subprocess.CompletedProcess:
    done = subprocess.run([str(_sextant_bin()), "datasets", *args, "--format", "json"], cwd=cwd,
                          env=dict(os.environ, SEXTANT_SERVER=uri), capture_output=True, text=True, timeout=300)  # fmt: skip
    if check:
        assert done.returncode == 0, done.stderr
    return done


def test_datasets_are_stored_by_content_and_pulled_checked(tracking_uri, tmp_path):
    """A 24 MB file pushed, then changed in 1% of its bytes (one region) and pushed
    again, stores only the chunks around the change (chunks average 1 MiB, so a
    tenth of this file at most; bench/repro measures a gigabyte); an insertion at its
    start shifts every byte but moves only the cuts near it; pulls give the exact bytes back; a directory's
    digest is what `exec --input` records for it; bad input is refused by name."""
    data = tmp_path / "calls.bin"
    rng = __import__("numpy").random.default_rng(1)
    original = rng.integers(0, 256, size=24_000_000, dtype="uint8").tobytes()
    data.write_bytes(original)
    name = f"calls-{os.getpid()}-{abs(hash(tracking_uri)) % 10_000}"
    first = json.loads(datasets(tracking_uri, tmp_path, "push", str(data), "--name", name).stdout)
    assert first["digest"] == "sha256:" + hashlib.sha256(original).hexdigest()
    assert first["new_bytes"] == len(original)

    edited = bytearray(original)
    edited[12_000_000:12_240_000] = bytes(240_000)  # 1% of the file, in one place
    data.write_bytes(edited)
    second = json.loads(datasets(tracking_uri, tmp_path, "push", str(data), "--name", name).stdout)
    assert second["digest"] != first["digest"]
    assert second["new_bytes"] < 0.1 * len(original), second

    shifted = b"header,added\n" + bytes(edited)
    data.write_bytes(shifted)
    third = json.loads(datasets(tracking_uri, tmp_path, "push", str(data), "--name", name).stdout)
    assert third["new_bytes"] < 0.1 * len(shifted), third

    # Pulls check every chunk and give the bytes back, by digest prefix or latest.
    pulled = json.loads(datasets(tracking_uri, tmp_path, "pull", f"{name}@{first['digest'][7:19]}", "-o", "v1.bin").stdout)
    assert pulled["digest"] == first["digest"] and (tmp_path / "v1.bin").read_bytes() == original
    datasets(tracking_uri, tmp_path, "pull", f"{name}@latest", "-o", "latest.bin")
    assert (tmp_path / "latest.bin").read_bytes() == shifted

    # A directory: its digest is the one exec records for the same directory.
    folder = tmp_path / "folder"
    (folder / "part").mkdir(parents=True)
    (folder / "part" / "a.csv").write_text("x,y\n1,2\n")
    (folder / "b.csv").write_text("x,y\n3,4\n")
    pushed = json.loads(datasets(tracking_uri, tmp_path, "push", str(folder), "--name", f"{name}-dir").stdout)
    recorded = exec_(tracking_uri, tmp_path, "--experiment", "datasets", "--input", "folder", "--", "true")
    assert recorded.returncode == 0, recorded.stderr
    manifest = json.loads(manifest_check(tracking_uri, run_of(recorded), "--full").stdout)["manifest"]
    assert pushed["digest"] == "sha256:" + manifest["inputs"][0]["sha256"]
    datasets(tracking_uri, tmp_path, "pull", f"{name}-dir@latest", "-o", "copy")
    assert (tmp_path / "copy" / "part" / "a.csv").read_text() == "x,y\n1,2\n"
    listed = json.loads(datasets(tracking_uri, tmp_path, "list").stdout)
    versions = next(d for d in listed["datasets"] if d["name"] == name)["versions"]
    assert [v["digest"] for v in versions][::-1][:2] == [first["digest"], second["digest"]]

    for args, message in [
        (["pull", f"{name}@deadbeef00"], "has no version"),
        (["pull", "no-such-dataset@latest"], "no dataset named"),
        (["push", str(tmp_path / "absent.csv"), "--name", name], "absent.csv"),
        (["push", str(folder), "--name", "bad/name"], "not a dataset name"),
    ]:
        refused = datasets(tracking_uri, tmp_path, *args, check=False)
        assert refused.returncode == 2 and message in refused.stderr, (args, refused.stderr)
    bad = requests.put(f"{tracking_uri}/api/v1/datasets/chunks/{'0' * 64}", data=b"not these bytes", timeout=30)
    assert bad.status_code == 400 and "hash to" in bad.json()["message"]


def test_a_corrupted_chunk_is_refused_on_pull(tmp_path):
    from conftest import _free_port, _stop, _wait_until_healthy

    root = tmp_path / "server"
    port = _free_port()
    uri = f"http://127.0.0.1:{port}"
    log = root / "server.log"
    root.mkdir()
    with open(log, "wb") as out:
        proc = subprocess.Popen([str(_sextant_bin()), "server", "--port", str(port), "--data-dir", str(root / "data")],
                                stdout=out, stderr=subprocess.STDOUT, start_new_session=True)  # fmt: skip
    try:
        _wait_until_healthy(proc, uri, log, 30.0, "sextant server")
        (tmp_path / "small.csv").write_text("a,b\n" + "".join(f"{i},{i * i}\n" for i in range(50_000)))
        datasets(uri, tmp_path, "push", "small.csv", "--name", "small")
        (chunk,) = [p for p in root.rglob("*") if p.is_file() and "_datasets/chunks/" in p.as_posix()]
        chunk.write_bytes(chunk.read_bytes()[:-1] + b"!")
        refused = datasets(uri, tmp_path, "pull", "small@latest", "-o", "copy.csv", check=False)
        assert refused.returncode == 2 and "refusing it" in refused.stderr, refused.stderr
        assert not (tmp_path / "copy.csv").exists()
    finally:
        _stop(proc)


def test_lineage_from_a_deployment_back_to_code_and_data_and_back(tracking_uri, repo, tmp_path):
    """A model trained under exec, registered, deployed; its data pushed as a dataset.
    `sextant lineage` walks from the deployment (or the alias, or the run) to the run's
    commit, environment manifest and data digests and the stored dataset version with
    that content; and from the data's digest or the commit forward to the run, the
    version and the deployment."""
    from mlflow import MlflowClient

    model = f"lineage-{abs(hash(tracking_uri)) % 100_000}-{os.getpid()}"
    (repo / "train.py").write_text(TRAIN.replace(
        'print("trained with seed", seed)',
        f'    mlflow.sklearn.log_model(model, name="model", registered_model_name="{model}", input_example=X[:2], serialization_format="cloudpickle")\n'
        'print("trained with seed", seed)',
    ).replace("import mlflow\n", "import mlflow\nimport mlflow.sklearn\n"))
    git(repo, "commit", "-qam", "log the model")
    head = git(repo, "rev-parse", "HEAD")
    done = exec_(tracking_uri, repo, "--experiment", "lineage", "--input", "data.csv", "--", sys.executable, "train.py")
    assert done.returncode == 0, done.stderr
    run_id = run_of(done)
    data_digest = "sha256:" + hashlib.sha256((repo / "data.csv").read_bytes()).hexdigest()
    datasets(tracking_uri, repo, "push", "data.csv", "--name", f"{model}-data")
    client = MlflowClient(tracking_uri)
    client.set_registered_model_alias(model, "champion", "1")
    env = dict(os.environ, SEXTANT_SERVER=tracking_uri)
    deployed = subprocess.run([str(_sextant_bin()), "deployments", "create", model, "--model", f"{model}@champion"],
                              env=env, capture_output=True, text=True, timeout=300)  # fmt: skip
    assert deployed.returncode == 0, deployed.stderr

    def lineage(of: str) -> dict:
        done = subprocess.run([str(_sextant_bin()), "lineage", of, "--format", "json"], env=env, capture_output=True,
                              text=True, timeout=120)  # fmt: skip
        assert done.returncode == 0, done.stderr
        return json.loads(done.stdout)

    for start in (f"deployment:{model}", f"models:/{model}@champion", f"runs:/{run_id}"):
        graph = lineage(start)
        assert [d["name"] for d in graph["deployments"]] == [model], (start, graph)
        assert graph["deployments"][0]["arms"][0]["version"] == "1"
        assert [(v["name"], v["version"], v["run_id"]) for v in graph["model_versions"]] == [(model, "1", run_id)]
        (run,) = graph["runs"]
        assert run["run_id"] == run_id and run["code"]["commit"] == head and run["code"]["dirty"] is False
        assert run["environment"]["manifest_sha256"] == client.get_run(run_id).data.tags["sextant.manifest.sha256"]
        assert run["environment"]["manifest_artifact"] == "sextant/environment.json"
        assert data_digest in run["inputs"] and run["logged_datasets"][0]["name"] == "calls"
        (dataset,) = graph["datasets"]
        assert dataset["digest"] == data_digest and dataset["runs"] == [run_id]
        assert dataset["stored_versions"] == [{"name": f"{model}-data", "digest": data_digest}]

    # The run's and the version's pages show what exec recorded.
    experiment = client.get_run(run_id).info.experiment_id
    for page in (f"/experiments/{experiment}/runs/{run_id}", f"/models/{model}/versions/1"):
        html = requests.get(f"{tracking_uri}{page}", timeout=30).text
        assert "Recorded environment" in html and head in html, page
        assert data_digest[:22] in html and f"/api/v1/run-manifests?run_id={run_id}" in html, page

    # Forward: which runs, versions and deployments this data and this commit fed.
    for start in (f"dataset:{data_digest}", f"commit:{head[:12]}"):
        graph = lineage(start)
        assert run_id in [r["run_id"] for r in graph["runs"]], (start, graph)
        assert (model, "1") in [(v["name"], v["version"]) for v in graph["model_versions"]]
        assert model in [d["name"] for d in graph["deployments"]]

    for bad, message in [("nonsense", "is not deployment:NAME"), ("dataset:sha256:abc", "64 hex digits"),
                         ("deployment:no-such-deployment", "no-such-deployment"), ("runs:/0123456789abcdef", "0123456789abcdef")]:  # fmt: skip
        done = subprocess.run([str(_sextant_bin()), "lineage", bad], env=env, capture_output=True, text=True, timeout=60)
        assert done.returncode == 2 and message in done.stderr, (bad, done.stderr)
    subprocess.run([str(_sextant_bin()), "deployments", "delete", model], env=env, capture_output=True, timeout=120)


def test_reproduce_reruns_a_run_from_its_manifest(tracking_uri, repo, tmp_path):
    """`sextant reproduce`: the commit checked out in a worktree, the data (not in git)
    pulled by its digest from a stored dataset, the command run again under exec with the
    recorded seed: the same metrics, the new run linked to the original, and a package
    whose version differs in the interpreter used is reported. Without a stored copy of
    the data it says which digest is missing."""
    import site

    from mlflow import MlflowClient

    # Data of its own (other tests store the fixture's), outside git.
    with open(repo / "data.csv", "a") as data:
        data.write(f"0.{os.getpid()},0.{abs(hash(tracking_uri))},0.{time.time_ns()},1\n")
    (repo / ".gitignore").write_text("data.csv\n")
    git(repo, "rm", "-q", "--cached", "data.csv")
    git(repo, "add", ".gitignore")
    git(repo, "commit", "-qm", "data lives outside git")
    done = exec_(tracking_uri, repo, "--experiment", "reproduce", "--input", "data.csv", "--seed", "11", "--", sys.executable, "train.py")
    assert done.returncode == 0, done.stderr
    original = run_of(done)
    env = dict(os.environ, SEXTANT_SERVER=tracking_uri)

    def reproduce(*extra: str) -> subprocess.CompletedProcess:
        return subprocess.run([str(_sextant_bin()), "reproduce", original, "--format", "json", *extra], cwd=repo, env=env,
                              capture_output=True, text=True, timeout=600)  # fmt: skip

    # The data is in no commit and in no stored dataset: refused, naming it.
    missing = reproduce("--python", sys.executable)
    digest = hashlib.sha256((repo / "data.csv").read_bytes()).hexdigest()
    assert missing.returncode == 2 and f"sha256:{digest}" in missing.stderr and "datasets push" in missing.stderr, missing.stderr

    datasets(tracking_uri, repo, "push", "data.csv", "--name", f"reproduce-{os.getpid()}-{abs(hash(tracking_uri)) % 1000}")
    (repo / "data.csv").write_text((repo / "data.csv").read_text().replace("1", "2"))  # changed on disk since

    # An interpreter with the same packages but one at another version (a shadowing
    # distribution ahead of the original ones on its path).
    other = tmp_path / "other-env"
    subprocess.run([sys.executable, "-m", "venv", str(other)], check=True)
    (other_site,) = list((other / "lib").glob("python*/site-packages"))
    (other_site / "original.pth").write_text(site.getsitepackages()[0] + "\n")
    import certifi  # noqa: F401  (in the suite's environment: requests needs it)
    from importlib.metadata import version as installed

    (other_site / "certifi-2000.1.1.dist-info").mkdir()
    (other_site / "certifi-2000.1.1.dist-info" / "METADATA").write_text("Metadata-Version: 2.1\nName: certifi\nVersion: 2000.1.1\n")

    done = reproduce("--python", str(other / "bin" / "python"), "--tolerance", "0")
    assert done.returncode == 0, done.stdout + done.stderr
    report = json.loads(done.stdout)
    assert report["reproduced"] is True and report["run_id"] == original
    (accuracy,) = [m for m in report["metrics"] if m["metric"] == "accuracy"]
    assert accuracy["change"] == 0 and accuracy["within_tolerance"] is True
    assert {"package": "certifi", "original": installed("certifi"), "reproduction": "2000.1.1"} in report["environment_differences"]["packages"]
    client = MlflowClient(tracking_uri)
    again = client.get_run(report["reproduction"])
    assert again.data.tags["sextant.reproduction_of"] == original and again.data.params["seed"] == "11"
    assert again.data.tags["mlflow.source.git.commit"] == git(repo, "rev-parse", "HEAD")
    assert git(repo, "worktree", "list").count("\n") == 0  # the temporary worktree is gone


def test_reproduce_builds_a_virtualenv_from_the_recorded_packages(tracking_uri, tmp_path):
    """Without --python, reproduce builds a virtualenv from the packages the run's
    interpreter had (here a bare virtualenv's: nothing to install beyond pip) and runs
    the command with the new interpreter in place of the recorded one."""
    project = tmp_path / "bare"
    project.mkdir()
    for args in (["init", "-q"], ["config", "user.email", "a@example.com"], ["config", "user.name", "a"]):
        git(project, *args)
    (project / "score.py").write_text(
        "import json, os, sys, urllib.request\n"
        "body = json.dumps({'run_id': os.environ['MLFLOW_RUN_ID'], 'key': 'seeded', 'value': int(os.environ['SEXTANT_SEED']) % 97,\n"
        "                   'timestamp': 0, 'step': 0}).encode()\n"
        "request = urllib.request.Request(os.environ['MLFLOW_TRACKING_URI'] + '/api/2.0/mlflow/runs/log-metric', data=body,\n"
        "                                 headers={'Content-Type': 'application/json'})\n"
        "urllib.request.urlopen(request).read()\n"
        "print('ran with', sys.executable)\n"
    )
    git(project, "add", "-A")
    git(project, "commit", "-qm", "score")
    bare = tmp_path / "bare-env"
    subprocess.run([sys.executable, "-m", "venv", "--without-pip", str(bare)], check=True)
    done = exec_(tracking_uri, project, "--experiment", "bare", "--", str(bare / "bin" / "python"), "score.py")
    assert done.returncode == 0, done.stderr
    original = run_of(done)
    again = subprocess.run([str(_sextant_bin()), "reproduce", original, "--format", "json", "--workdir", str(tmp_path / "work")],
                           cwd=project, env=dict(os.environ, SEXTANT_SERVER=tracking_uri), capture_output=True, text=True,
                           timeout=600)  # fmt: skip
    assert again.returncode == 0, again.stdout + again.stderr
    report = json.loads(again.stdout)
    assert report["reproduced"] is True and report["metrics"][0]["change"] == 0
    rebuilt = json.loads(manifest_check(tracking_uri, report["reproduction"], "--full").stdout)["manifest"]
    assert rebuilt["command"]["argv"][0] == str(tmp_path / "work" / "venv" / "bin" / "python")
    assert rebuilt["python"]["executable"] == str(tmp_path / "work" / "venv" / "bin" / "python")
    assert "ran with" in rebuilt["command"]["stdout_tail"]
