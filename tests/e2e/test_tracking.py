"""Experiments, runs, params, metrics, tags, datasets: the tracking half of the user flow."""

from __future__ import annotations

import math
import sys
import time

import mlflow
import numpy as np
import pandas as pd
import pytest
import requests
from mlflow.entities import Metric, Param, RunStatus, RunTag, ViewType

from _helpers import unique

# --------------------------------------------------------------------------------------
# Experiments
# --------------------------------------------------------------------------------------


def test_set_experiment_creates_then_gets(client, tracking_uri):
    name = unique("exp")
    created = mlflow.set_experiment(name)
    assert created.name == name
    assert created.experiment_id != "0"
    assert created.lifecycle_stage == "active"
    assert created.artifact_location.startswith("mlflow-artifacts:/")

    again = mlflow.set_experiment(name)
    assert again.experiment_id == created.experiment_id

    by_name = client.get_experiment_by_name(name)
    assert by_name.experiment_id == created.experiment_id
    assert by_name.creation_time > 0


def test_experiment_tags_and_search(client, tracking_uri):
    team = unique("team")
    name_a, name_b = unique("search-exp-a"), unique("search-exp-b")
    id_a = client.create_experiment(name_a, tags={"team": team, "kind": "a"})
    id_b = mlflow.create_experiment(name_b)
    client.set_experiment_tag(id_b, "team", team)
    client.set_experiment_tag(id_b, "kind", "b")

    assert client.get_experiment(id_a).tags == {"team": team, "kind": "a"}
    assert client.get_experiment(id_b).tags["kind"] == "b"

    found = client.search_experiments(filter_string=f"tags.team = '{team}'")
    assert {e.experiment_id for e in found} == {id_a, id_b}

    found = client.search_experiments(filter_string=f"name = '{name_a}'")
    assert [e.experiment_id for e in found] == [id_a]

    found = client.search_experiments(filter_string=f"tags.team = '{team}' AND tags.kind = 'b'")
    assert [e.experiment_id for e in found] == [id_b]

    prefix = name_a.rsplit("-", 1)[0]
    found = client.search_experiments(filter_string=f"name LIKE '{prefix}-%'", order_by=["name ASC"])
    assert [e.name for e in found] == [name_a]


def test_delete_and_restore_experiment(client):
    name = unique("deleted-exp")
    exp_id = client.create_experiment(name)
    client.delete_experiment(exp_id)
    assert client.get_experiment(exp_id).lifecycle_stage == "deleted"

    active_ids = {e.experiment_id for e in client.search_experiments(filter_string=f"name = '{name}'")}
    assert exp_id not in active_ids
    deleted = client.search_experiments(view_type=ViewType.DELETED_ONLY, filter_string=f"name = '{name}'")
    assert [e.experiment_id for e in deleted] == [exp_id]

    client.restore_experiment(exp_id)
    assert client.get_experiment(exp_id).lifecycle_stage == "active"
    active = client.search_experiments(filter_string=f"name = '{name}'")
    assert [e.experiment_id for e in active] == [exp_id]


def test_rename_experiment(client):
    exp_id = client.create_experiment(unique("before"))
    new_name = unique("after")
    client.rename_experiment(exp_id, new_name)
    assert client.get_experiment(exp_id).name == new_name
    assert client.get_experiment_by_name(new_name).experiment_id == exp_id


# --------------------------------------------------------------------------------------
# Runs: params, metrics, tags
# --------------------------------------------------------------------------------------


def test_run_lifecycle_params_metrics_tags(client, experiment_id):
    with mlflow.start_run(run_name="flow-run") as active:
        run_id = active.info.run_id
        assert len(run_id) == 32 and all(c in "0123456789abcdef" for c in run_id)
        assert active.info.run_name == "flow-run"
        assert active.info.experiment_id == experiment_id
        assert active.info.status == "RUNNING"
        assert active.info.artifact_uri.startswith("mlflow-artifacts:/")

        mlflow.log_param("lr", 0.01)
        mlflow.log_params({"depth": 3, "optimizer": "adam", "note": "x" * 500})
        mlflow.log_metric("acc", 0.91, step=3, timestamp=1_700_000_000_000)
        mlflow.log_metric("loss", 0.5)  # no step / timestamp: client fills step=0, ts=now
        mlflow.log_metrics({"f1": 0.8, "precision": 0.75}, step=1)
        mlflow.set_tag("team", "rust-mlops")
        mlflow.set_tags({"stage": "dev", "to-delete": "yes"})

        running = client.get_run(run_id)
        assert running.info.status == "RUNNING"
        assert running.info.end_time is None or running.info.end_time == 0

    client.delete_tag(run_id, "to-delete")
    run = client.get_run(run_id)
    assert run.info.status == "FINISHED"
    assert run.info.end_time >= run.info.start_time > 0
    assert run.info.run_name == "flow-run"
    assert run.data.params == {"lr": "0.01", "depth": "3", "optimizer": "adam", "note": "x" * 500}
    assert run.data.metrics == {"acc": 0.91, "loss": 0.5, "f1": 0.8, "precision": 0.75}
    assert run.data.tags["team"] == "rust-mlops"
    assert run.data.tags["stage"] == "dev"
    assert "to-delete" not in run.data.tags
    assert run.data.tags["mlflow.runName"] == "flow-run"
    assert "mlflow.user" in run.data.tags

    (acc,) = client.get_metric_history(run_id, "acc")
    assert (acc.value, acc.step, acc.timestamp) == (0.91, 3, 1_700_000_000_000)
    (loss,) = client.get_metric_history(run_id, "loss")
    assert loss.step == 0
    assert abs(loss.timestamp - time.time() * 1000) < 10 * 60 * 1000


def test_metric_history_and_latest_value(client, experiment_id):
    run_id = client.create_run(experiment_id).info.run_id
    # Logged out of order; history must come back in step order, all points present.
    for step in [5, 1, 3, 0, 4, 2]:
        client.log_metric(run_id, "loss", 1.0 / (step + 1), timestamp=1_000 + step, step=step)
    # Two values at the same step: the later timestamp wins for "latest".
    client.log_metric(run_id, "acc", 0.1, timestamp=2_000, step=7)
    client.log_metric(run_id, "acc", 0.2, timestamp=3_000, step=7)
    # A larger step logged earlier in time still wins over a smaller step.
    client.log_metric(run_id, "acc", 0.9, timestamp=1_000, step=1)

    history = client.get_metric_history(run_id, "loss")
    assert [m.step for m in history] == [0, 1, 2, 3, 4, 5]
    assert [m.value for m in history] == pytest.approx([1.0 / (s + 1) for s in range(6)])
    assert all(m.key == "loss" for m in history)

    run = client.get_run(run_id)
    assert run.data.metrics["loss"] == pytest.approx(1.0 / 6)
    assert run.data.metrics["acc"] == pytest.approx(0.2)
    assert len(client.get_metric_history(run_id, "acc")) == 3
    assert client.get_metric_history(run_id, "never-logged") == []


def _check_inf(value: float, sign: int, server) -> None:
    expected = math.copysign(float("inf"), sign)
    if server.is_mlflow:
        # MLflow's SQL store clamps infinities to +/-sys.float_info.max before storing them
        # (not every database can hold inf), so the reference server returns +/-1.797e308.
        # Sextant keeps real infinities.
        assert value in (expected, math.copysign(sys.float_info.max, sign)), value
    else:
        assert math.isinf(value) and value == expected, value


def test_nan_and_infinity_round_trip(client, experiment_id, server):
    run_id = client.create_run(experiment_id).info.run_id
    client.log_metric(run_id, "nan_metric", float("nan"))
    client.log_metric(run_id, "pos_inf", float("inf"))
    client.log_metric(run_id, "neg_inf", float("-inf"))
    client.log_batch(
        run_id,
        metrics=[Metric("batch_nan", float("nan"), 1, 0), Metric("batch_inf", float("inf"), 1, 0)],
    )

    metrics = client.get_run(run_id).data.metrics
    assert math.isnan(metrics["nan_metric"])
    _check_inf(metrics["pos_inf"], +1, server)
    _check_inf(metrics["neg_inf"], -1, server)
    assert math.isnan(metrics["batch_nan"])
    _check_inf(metrics["batch_inf"], +1, server)

    (point,) = client.get_metric_history(run_id, "nan_metric")
    assert math.isnan(point.value)
    (point,) = client.get_metric_history(run_id, "neg_inf")
    _check_inf(point.value, -1, server)
    (point,) = client.get_metric_history(run_id, "pos_inf")
    _check_inf(point.value, +1, server)


def test_log_batch_large(client, experiment_id):
    """More than 1000 metrics: the client splits this into several log-batch requests."""
    run_id = client.create_run(experiment_id).info.run_id
    n_points = 2500
    metrics = [Metric("curve", float(i) / n_points, 1_000_000 + i, i) for i in range(n_points)]
    metrics += [Metric(f"scalar_{i}", float(i), 5, 0) for i in range(150)]
    params = [Param(f"p{i}", str(i)) for i in range(120)]  # > 100: also chunked
    tags = [RunTag("batch", "yes"), RunTag("mlflow.note.content", "logged in bulk")]
    client.log_batch(run_id, metrics=metrics, params=params, tags=tags)

    run = client.get_run(run_id)
    assert len(run.data.params) == 120
    assert run.data.params["p119"] == "119"
    assert run.data.tags["batch"] == "yes"
    assert run.data.tags["mlflow.note.content"] == "logged in bulk"
    assert run.data.metrics["curve"] == pytest.approx((n_points - 1) / n_points)
    assert sum(1 for k in run.data.metrics if k.startswith("scalar_")) == 150
    assert run.data.metrics["scalar_149"] == 149.0

    history = client.get_metric_history(run_id, "curve")
    assert len(history) == n_points
    assert [m.step for m in history] == list(range(n_points))
    assert history[1234].value == pytest.approx(1234 / n_points)
    assert history[1234].timestamp == 1_000_000 + 1234


def test_metric_history_bulk_interval(client, experiment_id, server):
    run_a = client.create_run(experiment_id).info.run_id
    run_b = client.create_run(experiment_id).info.run_id
    client.log_batch(run_a, metrics=[Metric("loss", 10.0 - i, 100 + i, i) for i in range(10)])
    client.log_batch(run_b, metrics=[Metric("loss", 20.0 - i, 200 + i, i) for i in range(5)])

    if hasattr(client, "get_metric_history_bulk_interval"):
        points = client.get_metric_history_bulk_interval([run_a, run_b], "loss", start_step=2, end_step=4)
        points = [
            {"run_id": p.run_id, "step": p.step, "value": p.value, "timestamp": p.timestamp} for p in points
        ]
    else:
        # MLflow 3.17.2's MlflowClient does not expose it; it is a REST endpoint used by the UI.
        resp = requests.get(
            f"{server.uri}/api/2.0/mlflow/metrics/get-history-bulk-interval",
            params={"run_ids": [run_a, run_b], "metric_key": "loss", "start_step": 2, "end_step": 4},
            timeout=30,
        )
        assert resp.status_code == 200, resp.text
        points = resp.json()["metrics"]
    by_run = {}
    for p in points:
        by_run.setdefault(p["run_id"], []).append((int(p["step"]), float(p["value"]), int(p["timestamp"])))
    assert sorted(by_run[run_a]) == [(s, 10.0 - s, 100 + s) for s in (2, 3, 4)]
    assert sorted(by_run[run_b]) == [(s, 20.0 - s, 200 + s) for s in (2, 3, 4)]

    # Without a step window, every point of both runs comes back.
    resp = requests.get(
        f"{server.uri}/api/2.0/mlflow/metrics/get-history-bulk-interval",
        params={"run_ids": [run_a, run_b], "metric_key": "loss"},
        timeout=30,
    )
    assert resp.status_code == 200, resp.text
    counts = {}
    for p in resp.json()["metrics"]:
        assert p["key"] == "loss"
        counts[p["run_id"]] = counts.get(p["run_id"], 0) + 1
    assert counts == {run_a: 10, run_b: 5}


def test_update_run_name_and_status(client, experiment_id):
    run = client.create_run(experiment_id, run_name="old-name")
    run_id = run.info.run_id
    client.update_run(run_id, name="new-name")
    updated = client.get_run(run_id)
    assert updated.info.run_name == "new-name"
    assert updated.data.tags["mlflow.runName"] == "new-name"
    assert updated.info.status == "RUNNING"

    client.set_terminated(run_id, status="FAILED")
    failed = client.get_run(run_id)
    assert failed.info.status == "FAILED"
    assert failed.info.end_time is not None and failed.info.end_time >= failed.info.start_time
    assert RunStatus.from_string(failed.info.status) == RunStatus.FAILED


def test_delete_and_restore_run(client, experiment_id):
    keep = client.create_run(experiment_id).info.run_id
    gone = client.create_run(experiment_id).info.run_id
    client.delete_run(gone)
    assert client.get_run(gone).info.lifecycle_stage == "deleted"

    def ids(view):
        return {r.info.run_id for r in client.search_runs([experiment_id], run_view_type=view)}

    assert ids(ViewType.ACTIVE_ONLY) == {keep}
    assert ids(ViewType.DELETED_ONLY) == {gone}
    assert ids(ViewType.ALL) == {keep, gone}

    client.restore_run(gone)
    assert client.get_run(gone).info.lifecycle_stage == "active"
    assert ids(ViewType.ACTIVE_ONLY) == {keep, gone}
    assert ids(ViewType.DELETED_ONLY) == set()


def test_nested_runs_parent_tag(client, experiment_id):
    with mlflow.start_run(run_name="parent") as parent:
        with mlflow.start_run(run_name="child", nested=True) as child:
            mlflow.log_metric("x", 1.0)
    child_run = client.get_run(child.info.run_id)
    assert child_run.data.tags["mlflow.parentRunId"] == parent.info.run_id
    found = mlflow.search_runs(
        [experiment_id],
        filter_string=f"tags.mlflow.parentRunId = '{parent.info.run_id}'",
        output_format="list",
    )
    assert [r.info.run_id for r in found] == [child.info.run_id]


# --------------------------------------------------------------------------------------
# Dataset inputs
# --------------------------------------------------------------------------------------


def test_log_input_dataset_and_search_by_dataset(client, experiment_id):
    df = pd.DataFrame({"x1": np.arange(20, dtype=float), "x2": np.arange(20, dtype=float) ** 2})
    df["y"] = (df["x1"] > 9).astype(float)
    ds_name = unique("ds")
    dataset = mlflow.data.from_pandas(df, name=ds_name, targets="y")

    with mlflow.start_run() as run_with:
        mlflow.log_input(dataset, context="training", tags={"split": "train"})
    with mlflow.start_run() as run_without:
        mlflow.log_param("no_dataset", "true")

    run = client.get_run(run_with.info.run_id)
    (dataset_input,) = run.inputs.dataset_inputs
    assert dataset_input.dataset.name == ds_name
    assert dataset_input.dataset.digest == dataset.digest
    assert dataset_input.dataset.source_type == dataset.source.__class__._get_source_type()
    assert "y" in dataset_input.dataset.schema or dataset_input.dataset.profile
    input_tags = {t.key: t.value for t in dataset_input.tags}
    assert input_tags["mlflow.data.context"] == "training"
    assert input_tags["split"] == "train"
    assert client.get_run(run_without.info.run_id).inputs.dataset_inputs == []

    found = mlflow.search_runs(
        [experiment_id], filter_string=f"datasets.name = '{ds_name}'", output_format="list"
    )
    assert [r.info.run_id for r in found] == [run_with.info.run_id]
    found = mlflow.search_runs(
        [experiment_id], filter_string=f"dataset.digest = '{dataset.digest}'", output_format="list"
    )
    assert [r.info.run_id for r in found] == [run_with.info.run_id]
    found = mlflow.search_runs(
        [experiment_id], filter_string="datasets.context = 'training'", output_format="list"
    )
    assert [r.info.run_id for r in found] == [run_with.info.run_id]


def test_resume_finished_run(client, experiment_id):
    with mlflow.start_run(run_name="resumable") as first:
        mlflow.log_metric("epoch", 1.0, step=1)
    assert client.get_run(first.info.run_id).info.status == "FINISHED"
    with mlflow.start_run(run_id=first.info.run_id) as resumed:
        assert resumed.info.run_id == first.info.run_id
        assert client.get_run(first.info.run_id).info.status == "RUNNING"
        mlflow.log_metric("epoch", 2.0, step=2)
    run = client.get_run(first.info.run_id)
    assert run.info.status == "FINISHED"
    assert run.info.run_name == "resumable"
    assert [m.value for m in client.get_metric_history(run.info.run_id, "epoch")] == [1.0, 2.0]


def test_async_logging(client, experiment_id):
    with mlflow.start_run() as run:
        for step in range(50):
            mlflow.log_metric("async_loss", 1.0 / (step + 1), step=step, synchronous=False)
        mlflow.log_param("async_param", "yes", synchronous=False)
        mlflow.set_tag("async_tag", "yes", synchronous=False)
        mlflow.flush_async_logging()
    run = client.get_run(run.info.run_id)
    assert run.data.params["async_param"] == "yes"
    assert run.data.tags["async_tag"] == "yes"
    assert [m.step for m in client.get_metric_history(run.info.run_id, "async_loss")] == list(range(50))


def test_search_experiments_pagination(client):
    marker = unique("paged")
    ids = [client.create_experiment(f"{marker}-{i:02d}") for i in range(7)]
    seen, token, n_pages = [], None, 0
    while True:
        page = client.search_experiments(
            filter_string=f"name LIKE '{marker}-%'", order_by=["name DESC"], max_results=3, page_token=token
        )
        n_pages += 1
        seen += [e.experiment_id for e in page]
        token = page.token
        if not token:
            break
        assert n_pages < 10
    assert n_pages == 3
    assert seen == list(reversed(ids))
