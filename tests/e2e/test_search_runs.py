"""search_runs: filters, ordering, pandas/list output, pagination and view types."""

from __future__ import annotations

import mlflow
import pandas as pd
import pytest
from mlflow.entities import Metric, Param, RunTag, ViewType

# (run name, acc, lr, team). Each run gets one more metric "loss" only when acc > 0.5.
RUNS = [
    ("r0", 0.95, "0.01", "a"),
    ("r1", 0.60, "0.01", "b"),
    ("r2", 0.40, "0.01", "a"),
    ("r3", 0.92, "0.1", "a"),
    ("r4", 0.97, "0.1", "b"),
    ("r5", 0.70, "0.01", "a"),
    ("r6", 0.10, "0.1", "a"),
]


@pytest.fixture
def populated(client, experiment_id):
    """An experiment with the runs in RUNS; returns {run name: run id}."""
    ids = {}
    for idx, (name, acc, lr, team) in enumerate(RUNS):
        run = client.create_run(experiment_id, run_name=name, start_time=1_700_000_000_000 + idx * 1000)
        client.log_batch(
            run.info.run_id,
            metrics=[Metric("acc", acc, 1_700_000_000_000, 0)]
            + ([Metric("loss", 1 - acc, 1_700_000_000_000, 0)] if acc > 0.5 else []),
            params=[Param("lr", lr)],
            tags=[RunTag("team", team)],
        )
        client.set_terminated(run.info.run_id)
        ids[name] = run.info.run_id
    return ids


def _names(runs, ids):
    by_id = {v: k for k, v in ids.items()}
    return [by_id[r.info.run_id] for r in runs]


def test_search_runs_filter_and_order_list(experiment_id, populated):
    runs = mlflow.search_runs(
        experiment_ids=[experiment_id],
        filter_string="metrics.acc > 0.5 and params.lr = '0.01'",
        order_by=["metrics.acc DESC"],
        output_format="list",
    )
    assert _names(runs, populated) == ["r0", "r5", "r1"]
    top = runs[0]
    assert top.data.metrics["acc"] == pytest.approx(0.95)
    assert top.data.params["lr"] == "0.01"
    assert top.data.tags["team"] == "a"
    assert top.info.status == "FINISHED"


def test_search_runs_pandas(experiment_id, populated):
    df = mlflow.search_runs(
        experiment_ids=[experiment_id],
        filter_string="metrics.acc > 0.5 and params.lr = '0.01'",
        order_by=["metrics.acc DESC"],
    )
    assert isinstance(df, pd.DataFrame)
    assert list(df["run_id"]) == [populated[n] for n in ["r0", "r5", "r1"]]
    assert list(df["metrics.acc"]) == pytest.approx([0.95, 0.70, 0.60])
    assert list(df["params.lr"]) == ["0.01"] * 3
    assert list(df["tags.team"]) == ["a", "a", "b"]
    assert list(df["tags.mlflow.runName"]) == ["r0", "r5", "r1"]
    assert set(df["status"]) == {"FINISHED"}


@pytest.mark.parametrize(
    ("filter_string", "order_by", "expected"),
    [
        ("", ["metrics.acc ASC"], ["r6", "r2", "r1", "r5", "r3", "r0", "r4"]),
        ("metrics.acc >= 0.92", ["metrics.acc DESC"], ["r4", "r0", "r3"]),
        ("metrics.acc <= 0.4", ["metrics.acc"], ["r6", "r2"]),
        ("metrics.acc != 0.6 and params.lr = '0.01'", ["metrics.acc DESC"], ["r0", "r5", "r2"]),
        ("params.lr != '0.01'", ["attributes.start_time ASC"], ["r3", "r4", "r6"]),
        ("tags.team = 'b'", ["attributes.start_time DESC"], ["r4", "r1"]),
        ("params.lr LIKE '0.1%'", ["run_name ASC"], ["r3", "r4", "r6"]),
        ("tags.team ILIKE 'B'", ["run_name DESC"], ["r4", "r1"]),
        ("attributes.run_name = 'r3'", [], ["r3"]),
        ("run_name != 'r3' and metrics.acc > 0.9", ["run_name"], ["r0", "r4"]),
        ("tags.`mlflow.runName` = 'r5'", [], ["r5"]),
        ("metrics.loss < 0.1", ["metrics.loss"], ["r4", "r0", "r3"]),
        ("tags.missing IS NULL and metrics.acc > 0.9", ["run_name"], ["r0", "r3", "r4"]),
        ("params.lr IS NOT NULL and metrics.acc < 0.5", ["run_name"], ["r2", "r6"]),
        ("attributes.status = 'FINISHED' and metrics.acc > 0.96", [], ["r4"]),
        # Runs without the metric sort last whatever the direction.
        ("", ["metrics.loss ASC", "run_name ASC"], ["r4", "r0", "r3", "r5", "r1", "r2", "r6"]),
        ("", ["metrics.loss DESC", "run_name ASC"], ["r1", "r5", "r3", "r0", "r4", "r2", "r6"]),
        # Default order: start_time DESC.
        ("metrics.acc > 0.9", [], ["r4", "r3", "r0"]),
    ],
)
def test_search_runs_filters(client, experiment_id, populated, filter_string, order_by, expected):
    runs = client.search_runs([experiment_id], filter_string=filter_string, order_by=order_by)
    assert _names(runs, populated) == expected


def test_search_runs_by_run_id(client, experiment_id, populated):
    wanted = [populated["r1"], populated["r6"]]
    runs = client.search_runs([experiment_id], filter_string=f"attributes.run_id IN ('{wanted[0]}', '{wanted[1]}')")
    assert {r.info.run_id for r in runs} == set(wanted)


@pytest.mark.parametrize("order_by", [[], ["metrics.acc DESC"], ["params.lr ASC", "run_name DESC"]])
def test_search_runs_pagination(client, experiment_id, populated, order_by):
    expected = [r.info.run_id for r in client.search_runs([experiment_id], order_by=order_by)]
    assert len(expected) == len(RUNS)

    seen, token, n_pages = [], None, 0
    while True:
        page = client.search_runs([experiment_id], order_by=order_by, max_results=3, page_token=token)
        n_pages += 1
        assert len(page) <= 3
        seen += [r.info.run_id for r in page]
        token = page.token
        if not token:
            break
        assert n_pages < 10, "pagination does not terminate"
    assert n_pages == 3
    assert len(seen) == len(set(seen)), "duplicate runs across pages"
    assert seen == expected


def test_search_runs_pagination_with_filter(client, experiment_id, populated):
    seen, token = [], None
    while True:
        page = client.search_runs(
            [experiment_id],
            filter_string="params.lr = '0.01'",
            order_by=["metrics.acc DESC"],
            max_results=2,
            page_token=token,
        )
        seen += _names(page, populated)
        token = page.token
        if not token:
            break
    assert seen == ["r0", "r5", "r1", "r2"]


def test_search_runs_view_types(client, experiment_id, populated):
    client.delete_run(populated["r0"])
    client.delete_run(populated["r6"])

    def names(view):
        return sorted(_names(client.search_runs([experiment_id], run_view_type=view), populated))

    assert names(ViewType.ACTIVE_ONLY) == ["r1", "r2", "r3", "r4", "r5"]
    assert names(ViewType.DELETED_ONLY) == ["r0", "r6"]
    assert names(ViewType.ALL) == sorted(populated)
    df = mlflow.search_runs([experiment_id], run_view_type=ViewType.DELETED_ONLY)
    assert set(df["run_id"]) == {populated["r0"], populated["r6"]}


def test_search_runs_across_experiments(client, populated, experiment_id):
    other = client.create_experiment(f"other-{experiment_id}-{populated['r0'][:8]}")
    extra = client.create_run(other, run_name="elsewhere")
    client.log_metric(extra.info.run_id, "acc", 0.99)
    runs = client.search_runs([experiment_id, other], filter_string="metrics.acc > 0.94", order_by=["metrics.acc DESC"])
    assert [r.info.run_id for r in runs] == [extra.info.run_id, populated["r4"], populated["r0"]]
    df = mlflow.search_runs(search_all_experiments=False, experiment_names=[client.get_experiment(other).name])
    assert list(df["run_id"]) == [extra.info.run_id]


@pytest.mark.sextant_only
@pytest.mark.parametrize(
    ("filter_string", "expected"),
    [
        ("params.lr = '0.01' OR (metrics.acc > 0.9 AND tags.team = 'a')", ["r0", "r1", "r2", "r3", "r5"]),
        ("(params.lr = '0.1' AND tags.team = 'b') OR metrics.acc < 0.2", ["r4", "r6"]),
        ("tags.team = 'b' or run_name = 'r2'", ["r1", "r2", "r4"]),
        ("(metrics.acc > 0.9 OR metrics.acc < 0.2) AND params.lr = '0.1'", ["r3", "r4", "r6"]),
    ],
)
def test_search_runs_or_and_parentheses(client, experiment_id, populated, filter_string, expected):
    runs = client.search_runs([experiment_id], filter_string=filter_string)
    assert sorted(_names(runs, populated)) == expected
