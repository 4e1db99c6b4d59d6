"""The runs both servers get, generated from fixed seeds.

Imported by run.py (which seeds Sextant over HTTP) and by seed_mlflow_sql.py
(which writes the same rows into MLflow's SQLite file), so both servers hold
the same run names, start/end times, statuses, params, metrics and tags.
Run IDs differ: each server makes its own.

Table experiment ("bench-ui-runs"): `runs` runs, 20 params and 10 metrics each
(one value per metric, step 0), tag `team`. Run i starts at BASE_MS + i s, so
the newest run is the last one generated.

Chart experiment ("bench-ui-chart"): `chart_runs` runs with one metric, `loss`,
logged at steps 0..steps-1 (a noisy decaying curve).
"""

from __future__ import annotations

import math
import random

BASE_MS = 1_700_000_000_000
RUNS_EXPERIMENT = "bench-ui-runs"
CHART_EXPERIMENT = "bench-ui-chart"
USER = "bench"
PARAM_KEYS = [f"p{j:02d}" for j in range(20)]
METRIC_KEYS = [
    "loss", "accuracy", "val_loss", "val_accuracy", "f1",
    "precision", "recall", "auc", "lr_final", "epoch_seconds",
]
CHART_METRIC = "loss"

# Param value choices: a few params with many values, most with few (like a sweep).
_CHOICES = {
    "p00": ["0.1", "0.03", "0.01", "0.003", "0.001", "0.0003"],
    "p01": ["16", "32", "64", "128", "256"],
    "p02": ["adam", "adamw", "sgd", "rmsprop"],
    "p03": ["resnet18", "resnet34", "resnet50", "vit-s", "vit-b"],
    "p04": ["0.0", "0.1", "0.2", "0.3", "0.5"],
}


def run_name(i: int) -> str:
    return f"run-{i:06d}"


def runs(n: int):
    """Yield n table runs: dicts with name, start_time, end_time, params, metrics, tags."""
    rng = random.Random(20261206)
    for i in range(n):
        start = BASE_MS + i * 1000
        params = {}
        for j, key in enumerate(PARAM_KEYS):
            if key in _CHOICES:
                params[key] = rng.choice(_CHOICES[key])
            elif j < 12:
                params[key] = str(rng.randint(1, 10 ** (j % 4 + 1)))
            else:
                params[key] = f"value-{rng.randint(0, 3)}"  # low-cardinality strings
        metrics = {key: rng.random() for key in METRIC_KEYS}
        yield {
            "name": run_name(i),
            "start_time": start,
            "end_time": start + 60_000 + rng.randint(0, 600_000),
            "params": params,
            "metrics": metrics,
            "tags": {"team": f"team-{i % 5}"},
        }


def chart_run_name(i: int) -> str:
    return f"curve-{i:03d}"


def chart_runs(n: int, steps: int):
    """Yield n chart runs: name, start_time, end_time and the loss curve as
    a list of (step, timestamp_ms, value)."""
    for i in range(n):
        rng = random.Random(7_000 + i)
        start = BASE_MS + 10_000_000 + i * 1000
        rate = 3.0 + 4.0 * rng.random()
        floor = 0.05 + 0.1 * rng.random()
        points = []
        for step in range(steps):
            t = step / max(steps - 1, 1)
            value = floor + math.exp(-rate * t) + 0.05 * (rng.random() - 0.5)
            points.append((step, start + step * 100, value))
        yield {
            "name": chart_run_name(i),
            "start_time": start,
            "end_time": start + steps * 100,
            "points": points,
        }
