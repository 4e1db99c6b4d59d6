"""Write the UI benchmark's runs straight into an MLflow SQLite database.

Seeding 100,000 runs over MLflow's REST API (or even through its
SqlAlchemyStore, one run at a time) takes hours on a 2-core machine, so this
script lets MLflow create its schema and the two experiments through its own
`SqlAlchemyStore`, then bulk-inserts the rows that `create_run` +
`log_batch` + `update_run_info` would have written (runs, tags, params,
metrics, latest_metrics) with sqlite3 `executemany` in one transaction.
It runs before the MLflow server starts, with the Python that owns `mlflow`.

    python seed_mlflow_sql.py DB_PATH ARTIFACT_ROOT RUNS CHART_RUNS STEPS

Prints one JSON line: {"runs_experiment_id", "chart_experiment_id",
"chart_run_ids", "runs", "rows": {...}, "seconds"}.
"""

from __future__ import annotations

import json
import sqlite3
import sys
import time
import uuid
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
import dataset  # noqa: E402

CHUNK = 5000  # runs per executemany batch


def main() -> None:
    db_path, artifact_root = sys.argv[1], sys.argv[2]
    n_runs, n_chart, steps = (int(x) for x in sys.argv[3:6])
    started = time.perf_counter()
    from mlflow.store.tracking.sqlalchemy_store import SqlAlchemyStore

    store = SqlAlchemyStore(f"sqlite:///{db_path}", artifact_root)
    runs_exp = store.create_experiment(dataset.RUNS_EXPERIMENT)
    chart_exp = store.create_experiment(dataset.CHART_EXPERIMENT)
    locations = {e: store.get_experiment(e).artifact_location for e in (runs_exp, chart_exp)}
    store.engine.dispose()

    db = sqlite3.connect(db_path)
    db.execute("PRAGMA synchronous=OFF")  # this connection only; seeding speed, same rows
    counts = {"runs": 0, "tags": 0, "params": 0, "metrics": 0, "latest_metrics": 0}

    def insert_run(cur, experiment_id: str, run: dict) -> str:
        run_uuid = uuid.uuid4().hex
        cur.execute(
            "INSERT INTO runs (run_uuid, name, source_type, source_name, entry_point_name, user_id,"
            " status, start_time, end_time, source_version, lifecycle_stage, artifact_uri,"
            " experiment_id, deleted_time) VALUES (?, ?, 'UNKNOWN', '', '', ?, 'FINISHED', ?, ?, '',"
            " 'active', ?, ?, NULL)",
            (run_uuid, run["name"], dataset.USER, run["start_time"], run["end_time"],
             f"{locations[experiment_id]}/{run_uuid}/artifacts", int(experiment_id)),
        )
        tags = [("mlflow.runName", run["name"], run_uuid)]
        tags += [(k, v, run_uuid) for k, v in run.get("tags", {}).items()]
        cur.executemany("INSERT INTO tags (key, value, run_uuid) VALUES (?, ?, ?)", tags)
        counts["runs"] += 1
        counts["tags"] += len(tags)
        return run_uuid

    cur = db.cursor()
    cur.execute("BEGIN")
    params, metrics, latest = [], [], []

    def flush() -> None:
        cur.executemany("INSERT INTO params (key, value, run_uuid) VALUES (?, ?, ?)", params)
        cur.executemany(
            "INSERT INTO metrics (key, value, timestamp, run_uuid, step, is_nan) VALUES (?, ?, ?, ?, ?, 0)",
            metrics,
        )
        cur.executemany(
            "INSERT INTO latest_metrics (key, value, timestamp, step, is_nan, run_uuid) VALUES (?, ?, ?, ?, 0, ?)",
            latest,
        )
        counts["params"] += len(params)
        counts["metrics"] += len(metrics)
        counts["latest_metrics"] += len(latest)
        params.clear()
        metrics.clear()
        latest.clear()

    for i, run in enumerate(dataset.runs(n_runs)):
        run_uuid = insert_run(cur, runs_exp, run)
        params.extend((k, v, run_uuid) for k, v in run["params"].items())
        metrics.extend((k, v, run["start_time"], run_uuid, 0) for k, v in run["metrics"].items())
        latest.extend((k, v, run["start_time"], 0, run_uuid) for k, v in run["metrics"].items())
        if (i + 1) % CHUNK == 0:
            flush()
    flush()

    chart_ids = []
    for run in dataset.chart_runs(n_chart, steps):
        run_uuid = insert_run(cur, chart_exp, run)
        chart_ids.append(run_uuid)
        key = dataset.CHART_METRIC
        metrics.extend((key, v, ts, run_uuid, step) for step, ts, v in run["points"])
        step, ts, v = run["points"][-1]
        latest.append((key, v, ts, step, run_uuid))
        flush()
    db.commit()  # no ANALYZE: MLflow never runs it, so its query plans stay as in real use
    db.close()
    print(json.dumps({
        "runs_experiment_id": runs_exp,
        "chart_experiment_id": chart_exp,
        "chart_run_ids": chart_ids,
        "runs": n_runs,
        "rows": counts,
        "seconds": round(time.perf_counter() - started, 2),
    }))


if __name__ == "__main__":
    main()
