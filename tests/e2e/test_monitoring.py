"""Monitoring end to end, on the seeds' scam-call example: a classifier of phone calls
trained and registered with the unmodified ``mlflow`` client, deployed, and watched.

Scammers move from ``opened_bank_website`` to ``upi_payments``: the batch drift report
(``sextant drift``) and the live monitor of the deployment must both see the inputs
shift, and neither may raise anything on undrifted traffic.
"""

from __future__ import annotations

import io
import json
import subprocess
import time

import mlflow
import numpy as np
import pandas as pd
import pytest
import requests
from sklearn.ensemble import RandomForestClassifier

from _helpers import Receiver, unique
from conftest import AGAINST_MLFLOW, _sextant_bin
from test_serving import cli_json, sextant

pytestmark = [
    pytest.mark.sextant_only,
    pytest.mark.skipif(AGAINST_MLFLOW, reason="Sextant's monitoring"),
]

FEATURES = [
    "call_duration_s",
    "calls_today",
    "caller_account_age_days",
    "opened_bank_website",
    "upi_payments",
    "otp_requested",
]


def calls(n: int, seed: int, scam_share: float = 0.2, upi_shift: bool = False) -> pd.DataFrame:
    """Calls with a scam label. Scams are short, from young accounts, ask for an OTP and
    push the victim to their bank's website, or, once scammers switch, to UPI payments."""
    rng = np.random.default_rng(seed)
    scam = rng.random(n) < scam_share
    frame = pd.DataFrame(
        {
            "call_duration_s": np.where(scam, rng.gamma(2.0, 60.0, n), rng.gamma(3.0, 120.0, n)),
            "calls_today": rng.poisson(np.where(scam, 6.0, 2.0)).astype(np.int64),
            "caller_account_age_days": np.where(scam, rng.exponential(30.0, n), rng.exponential(900.0, n)),
            "opened_bank_website": (rng.random(n) < np.where(scam, 0.05 if upi_shift else 0.7, 0.05)).astype(np.int64),
            "upi_payments": (rng.random(n) < np.where(scam, 0.8 if upi_shift else 0.05, 0.05)).astype(np.int64),
            "otp_requested": (rng.random(n) < np.where(scam, 0.6, 0.02)).astype(np.int64),
        }
    )
    frame["is_scam"] = scam.astype(np.int64)
    return frame


def test_drift_report_on_files(tmp_path):
    reference = calls(20_000, seed=1)
    stable = calls(20_000, seed=2)
    shifted = calls(20_000, seed=3, scam_share=0.35, upi_shift=True)
    reference.to_parquet(tmp_path / "reference.parquet", index=False)
    stable.to_csv(tmp_path / "stable.csv", index=False)
    shifted.to_parquet(tmp_path / "shifted.parquet", index=False)
    binary = str(_sextant_bin())

    def drift(*args: str, check: bool = True) -> subprocess.CompletedProcess:
        result = subprocess.run([binary, "drift", *args], capture_output=True, text=True, timeout=300)
        if check:
            assert result.returncode == 0, result.stderr
        return result

    # Nothing drifts on undrifted calls, CSV against Parquet.
    report = json.loads(drift(str(tmp_path / "reference.parquet"), str(tmp_path / "stable.csv"), "--target", "is_scam").stdout)
    assert [c["column"] for c in report["columns"] if c["drifted"]] == [], report
    assert report["dataset"]["drift"] is False

    # The switch to UPI with more scams: the payment features, the label and every
    # feature scams shape drift.
    report = json.loads(drift(str(tmp_path / "reference.parquet"), str(tmp_path / "shifted.parquet"), "--target", "is_scam").stdout)
    drifted = {c["column"] for c in report["columns"] if c["drifted"]}
    assert drifted == set(FEATURES) - {"otp_requested"} | {"is_scam"}, report
    target = next(c for c in report["columns"] if c["column"] == "is_scam")
    assert target["role"] == "target"
    # OTP requests move from about 14% to 22% of calls: significant at 20,000 rows,
    # but below the Jensen-Shannon threshold, so not called drift.
    otp = next(c for c in report["columns"] if c["column"] == "otp_requested")
    assert otp["p_value"] < 0.05 and otp["statistic"] < otp["threshold"], otp

    # Evidently's methods give Evidently's verdicts (its test table picks Jensen-Shannon here).
    evidently = json.loads(drift(str(tmp_path / "reference.parquet"), str(tmp_path / "shifted.parquet"), "--methods", "evidently").stdout)
    assert {c["method"] for c in evidently["columns"]} <= {"wasserstein", "jensenshannon"}, evidently

    # A page a person reads, with a chart per column and no script.
    drift(str(tmp_path / "reference.parquet"), str(tmp_path / "shifted.parquet"), "--format", "html", "-o", str(tmp_path / "report.html"))
    page = (tmp_path / "report.html").read_text()
    assert page.count("<svg") == len(FEATURES) + 1
    assert "<script" not in page and "upi_payments" in page

    # Pipelines: exit status 1 on dataset drift; errors are exit 2 with a message.
    result = drift(str(tmp_path / "reference.parquet"), str(tmp_path / "shifted.parquet"), "--fail-on-drift", "--drift-share", "0.3", check=False)
    assert result.returncode == 1, result.stderr
    result = drift(str(tmp_path / "reference.parquet"), str(tmp_path / "stable.csv"), "--columns", "no_such_column", check=False)
    assert result.returncode == 2 and "no_such_column" in result.stderr, result.stderr
    result = drift(str(tmp_path / "reference.parquet"), str(tmp_path / "absent.csv"), check=False)
    assert result.returncode == 2 and "absent.csv" in result.stderr, result.stderr


def test_partitioned_drift_partials_merge_into_the_one_process_report(tmp_path):
    """`sextant drift --partition I/N --partial`, as an indexed Job's pods run it: four
    processes at once over a directory of six files (split by files) and three over one
    file (split by rows) count their share in the reference's buckets; `--merge` sums the
    partials into the report one process makes over all the rows: the same counts and
    verdicts, means equal to rounding."""
    reference = calls(20_000, seed=1)
    shifted = calls(24_000, seed=3, scam_share=0.35, upi_shift=True)
    reference.to_parquet(tmp_path / "reference.parquet", index=False)
    parts = tmp_path / "shifted"
    parts.mkdir()
    for index, rows in enumerate(np.array_split(np.arange(len(shifted)), 6)):
        frame = shifted.iloc[rows]
        if index % 2:
            frame.to_csv(parts / f"part-{index}.csv", index=False)
        else:
            frame.to_parquet(parts / f"part-{index}.parquet", index=False)
    shifted.to_parquet(tmp_path / "shifted.parquet", index=False)
    binary = str(_sextant_bin())

    def partial(current, out, *extra) -> subprocess.Popen:
        return subprocess.Popen([binary, "drift", str(tmp_path / "reference.parquet"), str(current), "--partial", str(out), *extra],
                                stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)  # fmt: skip

    def merge(*partials) -> subprocess.CompletedProcess:
        return subprocess.run([binary, "drift", "--merge", *map(str, partials)], capture_output=True, text=True, timeout=120)

    def finished(process):
        _, stderr = process.communicate(timeout=300)
        assert process.returncode == 0, stderr

    finished(partial(tmp_path / "shifted.parquet", tmp_path / "whole.json"))
    whole = merge(tmp_path / "whole.json")
    assert whole.returncode == 0, whole.stderr
    expected = json.loads(whole.stdout)
    assert expected["rows"] == len(shifted)
    drifted = {f["name"] for f in expected["features"] if f["drifted"]}
    assert {"upi_payments", "opened_bank_website", "is_scam"} <= drifted, expected["features"]

    for label, current, count in [("files", parts, 4), ("rows", tmp_path / "shifted.parquet", 3)]:
        out = tmp_path / label
        out.mkdir()
        for process in [partial(current, out / f"part-{i}.json", "--partition", f"{i}/{count}") for i in range(count)]:
            finished(process)
        merged = merge(out)
        assert merged.returncode == 0, merged.stderr
        report = json.loads(merged.stdout)
        assert report["rows"] == expected["rows"] and report["drifted_features"] == expected["drifted_features"]
        for got, want in zip(report["features"], json.loads(whole.stdout)["features"]):
            if want["mean"] is None:  # categorical
                assert got["mean"] is None
            else:
                assert got["mean"] == pytest.approx(want["mean"], rel=1e-12), (got, want)
            got.pop("mean"), want.pop("mean")
            assert got == want

    # Partials of another reference do not merge; a missing partial is named.
    calls(5_000, seed=9).to_parquet(tmp_path / "other.parquet", index=False)
    other = subprocess.run([binary, "drift", str(tmp_path / "other.parquet"), str(tmp_path / "shifted.parquet"),
                            "--partial", str(tmp_path / "other.json")], capture_output=True, text=True, timeout=120)  # fmt: skip
    assert other.returncode == 0, other.stderr
    refused = merge(tmp_path / "whole.json", tmp_path / "other.json")
    assert refused.returncode == 2 and "another reference profile" in refused.stderr, refused.stderr
    missing = merge(tmp_path / "absent.json")
    assert missing.returncode == 2 and "absent.json" in missing.stderr, missing.stderr


def chunks(frame: pd.DataFrame, size: int = 100):
    return [frame.iloc[start : start + size] for start in range(0, len(frame), size)]


def invocations(server_uri: str, deployment: str, frame: pd.DataFrame) -> dict:
    payload = {"dataframe_split": json.loads(frame[FEATURES].to_json(orient="split", index=False))}
    response = requests.post(f"{server_uri}/deployments/{deployment}/invocations", json=payload, timeout=60)
    assert response.status_code == 200, response.text
    return response.json()


def test_live_monitoring_of_a_deployment(tracking_uri, experiment_id, receiver):
    train = calls(5_000, seed=10)
    model = RandomForestClassifier(n_estimators=30, max_depth=6, random_state=0).fit(train[FEATURES], train["is_scam"])
    name = unique("scam-calls")
    with mlflow.start_run():
        info = mlflow.sklearn.log_model(model, name="model", input_example=train[FEATURES].head(3), serialization_format="cloudpickle")
    version = mlflow.register_model(info.model_uri, name).version
    cli_json(tracking_uri, "deployments", "create", name, "--model", f"{name}/{version}")

    # The training data is the reference.
    buffer = io.StringIO()
    train[FEATURES].to_csv(buffer, index=False)
    response = requests.put(f"{tracking_uri}/api/v1/deployments/{name}/monitoring/reference", data=buffer.getvalue().encode(), timeout=60)
    assert response.status_code == 200, response.text
    assert [f["name"] for f in response.json()["features"]] == FEATURES

    # Normal traffic: no drift, few outliers, a verdict on every answer.
    answer = None
    for chunk in chunks(calls(3_000, seed=11)):
        answer = invocations(tracking_uri, name, chunk)
    assert isinstance(answer["outlier"], bool) and len(answer["outliers"]) == 100

    def report() -> dict:
        response = requests.get(f"{tracking_uri}/api/v1/deployments/{name}/monitoring", params={"span": "1h"}, timeout=60)
        assert response.status_code == 200, response.text
        return response.json()["versions"][0]["report"]

    first = report()
    assert first["rows"] == 3_000
    assert first["drifted_features"] == 0, first
    assert first["outlier_rate"] < 0.02, first

    # An alert on the payment feature's drift stays quiet on normal traffic.
    rule = {"metric": "drift.upi_payments.psi", "condition": {"threshold": {"op": ">", "value": 0.2}}, "severity": "warning"}
    response = requests.put(f"{tracking_uri}/api/v1/deployments/{name}/alerts/upi-drift", json=rule, timeout=60)
    assert response.status_code == 200, response.text
    quiet = post(tracking_uri, f"{name}/alerts/evaluate", None)["evaluations"][0]
    assert quiet["transition"] is None and quiet["value"] < 0.2, quiet

    # A call no reference call looks like is flagged.
    odd = calls(1, seed=12)
    odd.loc[:, "call_duration_s"] = 1e6
    odd.loc[:, "calls_today"] = 500
    assert invocations(tracking_uri, name, odd)["outlier"] is True

    # Scammers switch to UPI: the live monitor sees the payment features move.
    for chunk in chunks(calls(6_000, seed=13, scam_share=0.5, upi_shift=True)):
        invocations(tracking_uri, name, chunk)
    drifted = {f["name"] for f in report()["features"] if f["drifted"]}
    assert "upi_payments" in drifted, report()
    assert "caller_account_age_days" in drifted, report()
    fired = post(tracking_uri, f"{name}/alerts/evaluate", None)["evaluations"][0]
    assert fired["transition"]["status"] == "firing", fired

    # A drift-share alert names the features that drifted and the version it describes.
    share = {"metric": "feature_drift_share", "condition": {"threshold": {"op": ">", "value": 0.1}},
             "severity": "warning", "webhooks": [receiver.url("/alertmanager")]}
    response = requests.put(f"{tracking_uri}/api/v1/deployments/{name}/alerts/drift-share", json=share, timeout=60)
    assert response.status_code == 200, response.text
    post(tracking_uri, f"{name}/alerts/evaluate", None)
    about = requests.get(f"{tracking_uri}/api/v1/deployments/{name}/alerts/metrics", timeout=60).json()["about"]
    assert about["drift_version"] == f"{name}/{version}", about
    assert "upi_payments" in about["drifted_features"], about
    (notice,) = receiver.posted("/alertmanager")
    annotations = notice["alerts"][0]["annotations"]
    assert "drifted: " in annotations["summary"] and "upi_payments" in annotations["summary"], annotations
    assert annotations["model_version"] == f"{name}/{version}", annotations

    metrics = requests.get(f"{tracking_uri}/metrics", timeout=60).text
    assert f'sextant_monitor_feature_psi{{deployment="{name}"' in metrics


def post(server_uri: str, path: str, body) -> dict:
    response = requests.post(f"{server_uri}/api/v1/deployments/{path}", json=body, timeout=60)
    assert response.status_code == 200, response.text
    return response.json()


@pytest.fixture
def receiver():
    endpoint = Receiver()
    yield endpoint
    endpoint.close()


def test_feedback_performance_and_alerts_on_scam_calls(tracking_uri, experiment_id, receiver):
    """Train, deploy, stream labelled calls; then scammers change tactics so calls that look
    legitimate are scams (the concept moves): realised accuracy falls, the change detectors and
    the alert fire, and on the unchanged stream nothing does."""
    train = calls(5_000, seed=20)
    model = RandomForestClassifier(n_estimators=30, max_depth=6, random_state=0).fit(train[FEATURES], train["is_scam"])
    name = unique("scam-feedback")
    with mlflow.start_run():
        info = mlflow.sklearn.log_model(model, name="model", input_example=train[FEATURES].head(3), serialization_format="cloudpickle")
    version = mlflow.register_model(info.model_uri, name).version
    cli_json(tracking_uri, "deployments", "create", name, "--model", f"{name}/{version}")
    rule = {
        "metric": "accuracy",
        "condition": {"threshold": {"op": "<", "value": 0.85}},
        "severity": "critical",
        "webhooks": [receiver.url("/alertmanager")],
    }
    # The rule and the trigger go through the CLI, as docs/MONITORING.md shows.
    cli_json(tracking_uri, "alerts", "set", name, "accuracy", "--json", json.dumps(rule))
    trigger = {"webhook": receiver.url("/retrain"), "on_alerts": ["accuracy"]}
    cli_json(tracking_uri, "retrain", "set", name, "--json", json.dumps(trigger))
    assert cli_json(tracking_uri, "retrain", "show", name)["trigger"]["on_alerts"] == ["accuracy"]

    def stream(frame: pd.DataFrame) -> None:
        for chunk in chunks(frame):
            answer = invocations(tracking_uri, name, chunk)
            labels = [int(v) for v in chunk["is_scam"]]
            written = post(tracking_uri, f"{name}/feedback", {"prediction_id": answer["prediction_id"], "labels": labels})
            assert written["inserted"] == len(labels), written

    def performance() -> dict:
        response = requests.get(f"{tracking_uri}/api/v1/deployments/{name}/performance", params={"span": "1h"}, timeout=60)
        assert response.status_code == 200, response.text
        # The CLI reads the same figures (the span ends at each request's own "now").
        from_cli = cli_json(tracking_uri, "monitoring", "performance", name, "--span", "1h")["versions"][0]["overall"]
        overall = response.json()["versions"][0]["overall"]
        assert (from_cli["labelled"], from_cli["metrics"]) == (overall["labelled"], overall["metrics"])
        return response.json()["versions"][0]

    def evaluate() -> dict:
        return cli_json(tracking_uri, "alerts", "evaluate", name)["evaluations"][0]

    # The world as trained: high accuracy, no change point, nothing fires.
    stream(calls(2_000, seed=21))
    steady = performance()
    assert steady["task"] == "classification" and steady["positive_class"] == "1", steady
    assert steady["overall"]["labelled"] == 2_000
    assert steady["overall"]["metrics"]["accuracy"] > 0.9, steady["overall"]
    assert steady["overall"]["metrics"]["roc_auc"] > 0.9, steady["overall"]
    assert steady["concept_drift"] is False, steady["change_points"]
    assert not any(p["confirmed"] for p in steady["change_points"]), steady["change_points"]
    # Without labels, CBPE's estimate agrees with what the labels say.
    estimated = steady["overall"]["estimated"]["accuracy"]
    assert abs(estimated - steady["overall"]["metrics"]["accuracy"]) < 0.05, steady["overall"]
    assert evaluate()["transition"] is None
    assert receiver.posted("/alertmanager", timeout=0.5) == []

    # New scams: calls that look like ordinary ones, paid by UPI, labelled scam.
    shifted = calls(1_500, seed=22, scam_share=0.0)
    shifted["upi_payments"] = 1
    shifted["is_scam"] = (np.random.default_rng(23).random(len(shifted)) < 0.5).astype(np.int64)
    stream(shifted)
    moved = performance()
    assert moved["overall"]["metrics"]["accuracy"] < 0.85, moved["overall"]
    assert moved["concept_drift"] is True, moved
    confirmed = [p for p in moved["change_points"] if p["confirmed"]]
    assert confirmed and all(p["index"] >= 2_000 for p in confirmed), moved["change_points"]
    # The model is as confident as before, so the estimate stays high: the gap is the concept.
    assert moved["overall"]["estimated"]["accuracy"] > 0.85, moved["overall"]
    fired = evaluate()
    assert fired["transition"]["status"] == "firing", fired
    alerts = cli_json(tracking_uri, "alerts", "list", "--deployment", name)
    assert [e["status"] for e in alerts["events"]] == ["firing"], alerts
    # On a terminal the same answer is a table; `--format table` forces it.
    table = sextant(tracking_uri, "alerts", "list", "--deployment", name, "--format", "table").stdout
    assert "accuracy" in table and "firing" in table and not table.lstrip().startswith("{"), table

    # Alertmanager's receivers get version 4 JSON; the retraining webhook gets the reason.
    (notice,) = receiver.posted("/alertmanager")
    assert notice["version"] == "4" and notice["status"] == "firing", notice
    assert notice["alerts"][0]["labels"]["alertname"] == "accuracy", notice
    assert notice["alerts"][0]["labels"]["severity"] == "critical", notice
    (retrain,) = receiver.posted("/retrain")
    assert retrain["deployment"] == name and retrain["reason"] == "alert", retrain
    assert retrain["detail"]["alert"] == "accuracy", retrain
    deadline = time.monotonic() + 30
    while True:
        runs = requests.get(f"{tracking_uri}/api/v1/deployments/{name}/retrain-trigger", timeout=60).json()["runs"]
        if runs and runs[0]["status"] != "running" or time.monotonic() > deadline:
            break
        time.sleep(0.2)
    assert [(r["id"], r["reason"], r["status"]) for r in runs] == [(retrain["run_id"], "alert", "succeeded")], runs


def version_reference(monitoring, index: int) -> dict:
    """The reference of the `index`th version, once built (in the background)."""
    deadline = time.monotonic() + 30
    while True:
        versions = monitoring()["versions"]
        if len(versions) > index and versions[index]["reference"] is not None:
            return versions[index]["reference"]
        assert time.monotonic() < deadline, versions
        time.sleep(0.2)


def test_each_version_is_monitored_against_its_own_training_data(tracking_uri, experiment_id, tmp_path):
    """A deployment moved to a version trained on other data compares that version's
    traffic with its own training data: nothing drifts on traffic like it, where the old
    version's data would call every new category unseen. Prediction drift runs on the
    model's own predictions on its training data."""
    def train_version(frame: pd.DataFrame, label: str) -> str:
        model = RandomForestClassifier(n_estimators=10, max_depth=5, random_state=0).fit(frame[FEATURES], frame["is_scam"])
        path = tmp_path / f"{label}.csv"
        frame.to_csv(path, index=False)
        with mlflow.start_run():
            dataset = mlflow.data.from_pandas(frame, source=str(path), targets="is_scam", name=label)
            mlflow.log_input(dataset, context="training")
            info = mlflow.sklearn.log_model(model, name="model", input_example=frame[FEATURES].head(3),
                                            serialization_format="cloudpickle")
        return mlflow.register_model(info.model_uri, name).version

    name = unique("per-version")
    old = calls(3_000, seed=40)
    new = calls(3_000, seed=41, scam_share=0.5, upi_shift=True)
    first = train_version(old, "calls-2025")
    cli_json(tracking_uri, "deployments", "create", name, "--model", f"{name}/{first}")

    def monitoring() -> dict:
        response = requests.get(f"{tracking_uri}/api/v1/deployments/{name}/monitoring", params={"span": "1h"}, timeout=60)
        assert response.status_code == 200, response.text
        return response.json()

    assert "calls-2025" in version_reference(monitoring, 0)["source"]["description"]
    second = train_version(new, "calls-2026")
    cli_json(tracking_uri, "deployments", "update", name, "--model", f"{name}/{second}")
    by_version = {}
    deadline = time.monotonic() + 30
    while len(by_version) < 2 or any(r is None for r in by_version.values()):
        assert time.monotonic() < deadline, monitoring()
        by_version = {v["model"]["version"]: v["reference"] for v in monitoring()["versions"]}
        time.sleep(0.2)
    assert "calls-2026" in by_version[second]["source"]["description"], by_version
    assert "calls-2025" in by_version[first]["source"]["description"], by_version

    for chunk in chunks(calls(2_000, seed=42, scam_share=0.5, upi_shift=True)):
        invocations(tracking_uri, name, chunk)
    (report,) = [v["report"] for v in monitoring()["versions"] if v["model"]["version"] == second]
    assert report["rows"] == 2_000, report
    assert report["drifted_features"] == 0, [f for f in report["features"] if f["drifted"]]
    # The prediction has a reference too: the model's answers on its own training data.
    assert report["prediction"] is not None and not report["prediction"]["drifted"], report["prediction"]


def test_reference_from_training_data_and_drift_through_the_api(tracking_uri, experiment_id, tmp_path):
    """The training dataset logged with the model becomes the deployment's reference, and
    drift reports compare run artifacts, logged datasets and prediction-log windows."""
    train = calls(5_000, seed=30)
    train.to_csv(tmp_path / "calls-train.csv", index=False)
    train.to_parquet(tmp_path / "calls-train.parquet", index=False)
    model = RandomForestClassifier(n_estimators=20, max_depth=6, random_state=0).fit(train[FEATURES], train["is_scam"])
    name = unique("scam-reference")
    with mlflow.start_run() as run:
        dataset = mlflow.data.from_pandas(train, source=str(tmp_path / "calls-train.csv"), targets="is_scam", name="calls-train")
        mlflow.log_input(dataset, context="training")
        mlflow.log_artifact(str(tmp_path / "calls-train.parquet"), "data")
        info = mlflow.sklearn.log_model(model, name="model", input_example=train[FEATURES].head(3), serialization_format="cloudpickle")
    run_id = run.info.run_id
    version = mlflow.register_model(info.model_uri, name).version
    cli_json(tracking_uri, "deployments", "create", name, "--model", f"{name}/{version}")

    def monitoring() -> dict:
        response = requests.get(f"{tracking_uri}/api/v1/deployments/{name}/monitoring", params={"span": "1h"}, timeout=60)
        assert response.status_code == 200, response.text
        return response.json()

    reference = version_reference(monitoring, 0)
    assert reference["source"]["kind"] == "training_dataset", reference
    assert "calls-train" in reference["source"]["description"], reference
    # The model's inputs, not the label; and the model's own predictions on its
    # training data, so prediction drift works without a prediction column in the data.
    assert [f["name"] for f in reference["features"]] == FEATURES, reference
    assert reference["reference_rows"] == 5_000, reference
    assert "with the model's predictions" in reference["source"]["description"], reference

    before_shift = int(time.time() * 1000)
    for chunk in chunks(calls(2_000, seed=31)):
        invocations(tracking_uri, name, chunk)
    report = monitoring()["versions"][0]["report"]
    assert report["rows"] == 2_000 and report["drifted_features"] == 0, report
    shift = int(time.time() * 1000) + 1
    time.sleep(0.01)
    for chunk in chunks(calls(2_000, seed=32, scam_share=0.5, upi_shift=True)):
        invocations(tracking_uri, name, chunk)

    def drift(body: dict, status: int = 200):
        response = requests.post(f"{tracking_uri}/api/v1/drift", json=body, timeout=120)
        assert response.status_code == status, response.text
        return response.json() if status == 200 else response.json()

    artifact = {"run_id": run_id, "path": "data/calls-train.parquet"}
    logged = {"run_id": run_id, "dataset": "calls-train"}
    steady = {"deployment": name, "start": before_shift, "end": shift}
    shifted = {"deployment": name, "start": shift}

    # Training artifact against the traffic before the shift: nothing drifts; the label
    # and the model's outputs are only on one side and are skipped.
    quiet = drift({"reference": artifact, "current": steady})
    assert quiet["current"]["rows"] == 2_000, quiet["current"]
    assert {c["column"] for c in quiet["columns"]} == set(FEATURES), quiet["columns"]
    assert [c["column"] for c in quiet["columns"] if c["drifted"]] == [], quiet
    # The logged dataset (read from where it was logged) against the shifted traffic.
    moved = drift({"reference": logged, "current": shifted})
    drifted = {c["column"] for c in moved["columns"] if c["drifted"]}
    assert {"upi_payments", "opened_bank_website", "caller_account_age_days"} <= drifted, moved
    assert moved["dataset"]["drift"] is True
    # Two windows of the log, with prediction drift on the model's answer, in Evidently's methods.
    both = drift({"reference": steady, "current": shifted})
    outputs = sorted(c["column"] for c in both["columns"] if c["column"].startswith("output_"))
    assert outputs == ["output_predict", "output_predict_proba_0", "output_predict_proba_1"], both["columns"]
    windows = drift({"reference": steady, "current": shifted, "methods": "evidently", "prediction": "output_predict"})
    prediction = [c for c in windows["columns"] if c["column"] == "output_predict"]
    assert prediction and prediction[0]["role"] == "prediction" and prediction[0]["drifted"], windows["columns"]
    page = requests.post(f"{tracking_uri}/api/v1/drift", json={"reference": artifact, "current": shifted, "format": "html"}, timeout=120)
    assert page.status_code == 200 and page.headers["content-type"].startswith("text/html")
    assert "<svg" in page.text and "<script" not in page.text

    # A run artifact (Parquet, read as it is profiled) can be the reference, restricted to the inputs.
    response = requests.put(f"{tracking_uri}/api/v1/deployments/{name}/monitoring/reference",
                            params={"features": ",".join(FEATURES)}, json=artifact, timeout=60)
    assert response.status_code == 200, response.text
    assert response.json()["reference_rows"] == 5_000 and response.json()["source"]["kind"] == "source", response.text
    # A designated reference window replaces it.
    response = requests.put(f"{tracking_uri}/api/v1/deployments/{name}/monitoring/reference", json=steady, timeout=60)
    assert response.status_code == 200, response.text
    assert response.json()["reference_rows"] == 2_000, response.text

    # Bad sources are 4xx with a reason.
    error = drift({"reference": {"run_id": run_id, "path": "data/absent.csv"}, "current": shifted}, 404)
    assert "absent.csv" in error["message"], error
    error = drift({"reference": {"run_id": run_id}, "current": shifted}, 400)
    assert error["error_code"] == "INVALID_PARAMETER_VALUE", error
    error = drift({"reference": artifact, "current": {"deployment": name, "start": 1, "end": 2}}, 400)
    assert "no answered predictions" in error["message"], error
    error = drift({"reference": artifact, "current": {"deployment": "no-such-deployment"}}, 404)
    error = drift({"reference": artifact, "current": shifted, "methods": "magic"}, 400)


@pytest.fixture(scope="module")
def explaining_server():
    """A server explaining every monitored answer in the background
    (`--explain-sample-rate 1`, with no cap on the explainer's core share), so that a
    test sees explanation drift after a few hundred rows rather than the default 1% of
    many thousands."""
    import os
    import tempfile
    from pathlib import Path

    from conftest import _free_port, _stop, _wait_until_healthy

    root = Path(tempfile.mkdtemp(prefix="sextant-explaining-"))
    port = _free_port()
    uri = f"http://127.0.0.1:{port}"
    log_path = root / "server.log"
    cmd = [str(_sextant_bin()), "server", "--port", str(port), "--data-dir", str(root / "data"),
           "--explain-sample-rate", "1", "--explain-cpu-share", "1",
           "--webhook-allowed-hosts", "127.0.0.1"]  # fmt: skip
    with open(log_path, "wb") as log:
        proc = subprocess.Popen(cmd, stdout=log, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
                                env=dict(os.environ, NO_COLOR="1"), start_new_session=True)
    try:
        _wait_until_healthy(proc, uri, log_path, 30.0, "sextant server")
        yield uri
    finally:
        _stop(proc)


def test_sampled_explanations_give_global_importance_and_explanation_drift(explaining_server, receiver):
    """Sampled answers are explained in the background: the monitoring report gains each
    feature's mean |SHAP| and, when scammers switch to UPI payments and the features the
    model leans on change role, explanation drift, a changed top driver, and an alert on
    `explanation_drift` that fires and says which driver took over."""
    uri = explaining_server
    mlflow.set_tracking_uri(uri)
    mlflow.set_registry_uri(uri)
    mlflow.set_experiment("explanations")
    train = calls(5_000, seed=20)
    model = RandomForestClassifier(n_estimators=30, max_depth=6, random_state=0).fit(train[FEATURES], train["is_scam"])
    name = unique("scam-explained")
    with mlflow.start_run():
        info = mlflow.sklearn.log_model(model, name="model", input_example=train[FEATURES].head(3),
                                        serialization_format="cloudpickle")
    version = mlflow.register_model(info.model_uri, name).version
    cli_json(uri, "deployments", "create", name, "--model", f"{name}/{version}")

    def explanations() -> dict:
        response = requests.get(f"{uri}/api/v1/deployments/{name}/monitoring", params={"span": "1h"}, timeout=60)
        assert response.status_code == 200, response.text
        return response.json()["versions"][0]["explanations"]

    def settle(rows: int) -> dict:
        # The explainer works off the request path: wait for it to catch up.
        deadline = time.time() + 60
        while True:
            report = explanations()
            if report and report["explained_total"] >= rows or time.time() > deadline:
                return report
            time.sleep(0.2)

    # Eight rows per request: each sampled request is explained whole.
    for chunk in chunks(calls(300, seed=21), size=8):
        invocations(uri, name, chunk)
    normal = settle(300)
    assert normal["explained_total"] == 300 and normal["reference_rows"] == 100, normal
    assert normal["output"] == "1"
    importance = {f["name"]: f["mean_abs_shap"] for f in normal["features"]}
    assert set(importance) == set(FEATURES) and all(v >= 0 for v in importance.values())
    assert normal["features"][0]["mean_abs_shap"] == max(importance.values())
    assert not normal["top_driver_changed"], normal
    quiet = normal["drift"]

    rule = {"metric": "explanation_drift", "condition": {"threshold": {"op": ">", "value": 0.1}},
            "severity": "warning", "webhooks": [receiver.url("/explanations")]}
    response = requests.put(f"{uri}/api/v1/deployments/{name}/alerts/explanation-drift", json=rule, timeout=60)
    assert response.status_code == 200, response.text
    assert quiet < 0.1, normal
    assert post(uri, f"{name}/alerts/evaluate", None)["evaluations"][0]["transition"] is None

    # Scammers switch to UPI: half the calls are scams, from young accounts, without
    # the bank website; the model's reasons change with them.
    for chunk in chunks(calls(600, seed=22, scam_share=0.5, upi_shift=True), size=8):
        invocations(uri, name, chunk)
    shifted = settle(900)
    assert shifted["drift"] > 0.1 and shifted["drift"] > 2 * quiet, shifted
    drifted = [f["name"] for f in shifted["features"] if f["drifted"]]
    assert drifted, shifted
    fired = post(uri, f"{name}/alerts/evaluate", None)["evaluations"][0]
    assert fired["transition"]["status"] == "firing", fired
    about = requests.get(f"{uri}/api/v1/deployments/{name}/alerts/metrics", timeout=60).json()
    assert about["metrics"]["explanation_drift"] == pytest.approx(fired["value"]), about
    (notice,) = receiver.posted("/explanations")
    annotations = notice["alerts"][0]["annotations"]
    assert annotations["top_driver"] == shifted["top_driver"], annotations
    metrics = requests.get(f"{uri}/metrics", timeout=60).text
    assert "sextant_explanations_total 900" in metrics, metrics
    # The same figures as Prometheus gauges (what replicas export of their own).
    labels = f'deployment="{name}",model="{name}",version="{version}"'
    assert f"sextant_monitor_explanation_drift{{{labels}}} " in metrics, metrics
    top = f'sextant_monitor_feature_mean_abs_shap{{{labels},feature="{shifted["top_driver"]}"}} '
    assert top in metrics, metrics
    assert f'sextant_monitor_feature_shap_drift{{{labels},feature="{drifted[0]}"}} ' in metrics, metrics
