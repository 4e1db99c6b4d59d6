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

import mlflow
import numpy as np
import pandas as pd
import pytest
import requests
from sklearn.ensemble import RandomForestClassifier

from _helpers import unique
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


def chunks(frame: pd.DataFrame, size: int = 100):
    return [frame.iloc[start : start + size] for start in range(0, len(frame), size)]


def invocations(server_uri: str, deployment: str, frame: pd.DataFrame) -> dict:
    payload = {"dataframe_split": json.loads(frame[FEATURES].to_json(orient="split", index=False))}
    response = requests.post(f"{server_uri}/deployments/{deployment}/invocations", json=payload, timeout=60)
    assert response.status_code == 200, response.text
    return response.json()


def test_live_monitoring_of_a_deployment(tracking_uri, experiment_id):
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

    metrics = requests.get(f"{tracking_uri}/metrics", timeout=60).text
    assert f'sextant_monitor_feature_psi{{deployment="{name}"' in metrics

