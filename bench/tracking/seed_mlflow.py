"""Seed an MLflow SQLite tracking database in-process, for the search_runs scenario.

Seeding MLflow over HTTP runs at ~10 runs/s on a 2-core machine (one fully
synced SQLite commit per request), so 10,000 runs would take a quarter of an
hour. This script writes the same runs through MLflow's own store class,
`SqlAlchemyStore` (create_experiment, create_run, log_batch): the rows are the
ones the server would have written (this process turns off fsync on its own
SQLite connections, which changes speed, not content). It runs with the Python interpreter that
owns the `mlflow` executable, so run.py itself does not import mlflow.

    python seed_mlflow.py DB_URI ARTIFACT_ROOT DATASET_JSON

DATASET_JSON is written by run.py: {"experiment_name": ..., "runs": [{"name",
"start_time", "params": {..}, "metrics": {..}, "tags": {..}}, ...]}.
Prints one JSON line: {"experiment_id": ..., "runs": N, "seconds": S}.
"""

import json
import sys
import time


def main() -> None:
    db_uri, artifact_root, dataset_path = sys.argv[1:4]
    from mlflow.entities import Metric, Param, RunTag
    from mlflow.store.tracking.sqlalchemy_store import SqlAlchemyStore

    with open(dataset_path) as f:
        dataset = json.load(f)
    started = time.perf_counter()
    store = SqlAlchemyStore(db_uri, artifact_root)
    if db_uri.startswith("sqlite"):
        # Seeding only: this process's own connections skip fsync. The rows
        # are the same; the server's connections keep MLflow's settings.
        import sqlalchemy

        @sqlalchemy.event.listens_for(store.engine, "connect")
        def _no_sync(dbapi_connection, _record):
            dbapi_connection.execute("PRAGMA synchronous=OFF")

        store.engine.dispose()
    experiment_id = store.create_experiment(dataset["experiment_name"])
    for run in dataset["runs"]:
        created = store.create_run(
            experiment_id=experiment_id,
            user_id="bench",
            start_time=run["start_time"],
            tags=[RunTag(k, v) for k, v in run["tags"].items()],
            run_name=run["name"],
        )
        store.log_batch(
            created.info.run_id,
            metrics=[Metric(k, v, run["start_time"], 0) for k, v in run["metrics"].items()],
            params=[Param(k, v) for k, v in run["params"].items()],
            tags=[],
        )
    print(json.dumps({
        "experiment_id": experiment_id,
        "runs": len(dataset["runs"]),
        "seconds": round(time.perf_counter() - started, 2),
    }))


if __name__ == "__main__":
    main()
