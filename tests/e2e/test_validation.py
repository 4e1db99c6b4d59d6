"""Input validation and limits that the client relies on (MLflow's `utils/validation.py`)."""

from __future__ import annotations

import mlflow
import pytest
import requests
from mlflow.entities import Metric, Param, RunTag
from mlflow.exceptions import MlflowException

from _helpers import assert_mlflow_error, unique


def test_duplicate_experiment_name(client):
    name = unique("dup-exp")
    client.create_experiment(name)
    with pytest.raises(MlflowException) as excinfo:
        client.create_experiment(name)
    assert_mlflow_error(excinfo, "RESOURCE_ALREADY_EXISTS", 400)


def test_long_param_and_tag_values_are_truncated(client, experiment_id):
    # The client sends over-long values as they are; MLflow's server truncates them to the
    # limits (6000 for params, 8000 for tags; MLFLOW_TRUNCATE_LONG_VALUES, on by default)
    # and answers 200, so user code that logs a long value works and must keep working.
    run_id = client.create_run(experiment_id).info.run_id
    client.log_param(run_id, "long_param", "p" * 7000)
    client.set_tag(run_id, "long_tag", "t" * 9000)
    client.log_batch(run_id, params=[Param("batch_param", "q" * 6500)], tags=[RunTag("batch_tag", "u" * 8500)])
    data = client.get_run(run_id).data
    assert data.params["long_param"] == "p" * 6000
    assert data.tags["long_tag"] == "t" * 8000
    assert data.params["batch_param"] == "q" * 6000
    assert data.tags["batch_tag"] == "u" * 8000


def test_param_cannot_change_value(client, experiment_id):
    run_id = client.create_run(experiment_id).info.run_id
    client.log_param(run_id, "lr", "0.1")
    client.log_param(run_id, "lr", "0.1")  # same value again is fine
    with pytest.raises(MlflowException) as excinfo:
        client.log_param(run_id, "lr", "0.2")
    assert_mlflow_error(excinfo, "INVALID_PARAMETER_VALUE", 400)
    assert client.get_run(run_id).data.params["lr"] == "0.1"


def test_cannot_log_to_deleted_run(client, experiment_id):
    run_id = client.create_run(experiment_id).info.run_id
    client.delete_run(run_id)
    with pytest.raises(MlflowException) as excinfo:
        client.log_metric(run_id, "acc", 1.0)
    assert_mlflow_error(excinfo, "INVALID_PARAMETER_VALUE", 400)


def test_search_runs_max_results_limit(client, experiment_id):
    with pytest.raises(MlflowException) as excinfo:
        client.search_runs([experiment_id], max_results=50_001)
    assert_mlflow_error(excinfo, "INVALID_PARAMETER_VALUE", 400)


def test_raw_log_batch_over_limit_is_rejected(client, experiment_id, server):
    """The client chunks log_batch; a raw request over the limit must be refused whole."""
    run_id = client.create_run(experiment_id).info.run_id
    metrics = [{"key": "m", "value": float(i), "timestamp": 1, "step": i} for i in range(1001)]
    resp = requests.post(
        f"{server.uri}/api/2.0/mlflow/runs/log-batch",
        json={"run_id": run_id, "metrics": metrics},
        timeout=30,
    )
    assert resp.status_code == 400, resp.text
    assert resp.json()["error_code"] == "INVALID_PARAMETER_VALUE"
    assert client.get_metric_history(run_id, "m") == []


def test_raw_numbers_as_strings_and_special_floats(client, experiment_id, server):
    """int64 may arrive as a JSON string (proto3 JSON mapping); NaN/Infinity as strings."""
    run_id = client.create_run(experiment_id).info.run_id
    resp = requests.post(
        f"{server.uri}/api/2.0/mlflow/runs/log-metric",
        json={"run_id": run_id, "key": "k", "value": "NaN", "timestamp": "1700000000000", "step": "4"},
        timeout=30,
    )
    assert resp.status_code == 200, resp.text
    assert resp.json() == {}
    (point,) = client.get_metric_history(run_id, "k")
    assert point.step == 4
    assert point.timestamp == 1_700_000_000_000
    assert point.value != point.value  # NaN


def test_metric_history_longer_than_one_page(client, experiment_id):
    """The client asks for 25,000 points per page and follows next_page_token."""
    run_id = client.create_run(experiment_id).info.run_id
    n_points = 26_000
    client.log_batch(run_id, metrics=[Metric("long", float(i), 1_000 + i, i) for i in range(n_points)])
    history = client.get_metric_history(run_id, "long")
    assert len(history) == n_points
    assert [m.step for m in history] == list(range(n_points))
    assert client.get_run(run_id).data.metrics["long"] == float(n_points - 1)


def test_set_experiment_on_deleted_experiment_fails(client, tracking_uri):
    name = unique("deleted-then-set")
    exp_id = client.create_experiment(name)
    client.delete_experiment(exp_id)
    with pytest.raises(MlflowException):
        mlflow.set_experiment(name)
