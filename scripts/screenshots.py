"""Screenshots of the web UI for the README and docs/UI.md.

Starts `sextant server` on a fresh data directory, logs a small hyperparameter
sweep with the unmodified `mlflow` client (a parent run with nested children,
loss and accuracy curves, a registered model), and saves PNGs of the runs table,
the comparison and the model page from headless Chromium.

Usage (from the repository root, after `cargo build -p sextant-cli`):

    ~/.cache/sextant/venv-e2e/bin/python scripts/screenshots.py [--out docs/images]
"""

from __future__ import annotations

import argparse
import os
import socket
import subprocess
import tempfile
import time
from pathlib import Path

import numpy as np
import requests


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def log_sweep(uri: str) -> tuple[str, list[str]]:
    import mlflow
    from sklearn.linear_model import LogisticRegression

    mlflow.set_tracking_uri(uri)
    mlflow.set_registry_uri(uri)
    experiment = mlflow.set_experiment("churn-model").experiment_id
    rng = np.random.default_rng(11)
    X = rng.normal(size=(400, 4))
    y = (X[:, 0] - 0.7 * X[:, 2] > 0).astype(int)
    children = []
    with mlflow.start_run(run_name="sweep-2026-12") as parent:
        mlflow.set_tag("purpose", "learning-rate sweep")
        for idx, (lr, depth, model) in enumerate(
            [(0.3, 6, "gbt"), (0.1, 6, "gbt"), (0.03, 6, "gbt"), (0.1, 3, "gbt"), (0.1, 8, "rf"), (0.05, 4, "rf")]
        ):
            with mlflow.start_run(run_name=f"{model}-lr{lr}-d{depth}", nested=True) as run:
                mlflow.log_params({"learning_rate": lr, "max_depth": depth, "model": model, "n_estimators": 300})
                floor = 0.18 + 0.02 * abs(depth - 6) + (0.03 if model == "rf" else 0.0)
                speed = 40 / (lr * 10)
                for step in range(0, 300, 2):
                    noise = rng.normal(scale=0.01)
                    loss = floor + (0.69 - floor) * np.exp(-step / speed) + noise
                    mlflow.log_metrics({"loss": float(loss), "accuracy": float(1 - loss / 1.6)}, step=step)
                children.append(run.info.run_id)
        best = children[1]
    with mlflow.start_run(run_id=best):
        info = mlflow.sklearn.log_model(LogisticRegression().fit(X, y), name="model", input_example=X[:2])
    client = mlflow.MlflowClient()
    for _ in range(2):
        version = mlflow.register_model(info.model_uri, "churn-classifier")
    client.set_registered_model_alias("churn-classifier", "champion", version.version)
    client.transition_model_version_stage("churn-classifier", "1", "Archived")
    return experiment, children


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--out", default="docs/images")
    parser.add_argument("--binary", default=os.environ.get("SEXTANT_BIN", "target/debug/sextant"))
    args = parser.parse_args()
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    root = Path(tempfile.mkdtemp(prefix="sextant-shots-"))
    port = free_port()
    uri = f"http://127.0.0.1:{port}"
    server = subprocess.Popen(
        [args.binary, "server", "--port", str(port), "--data-dir", str(root / "data")],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        deadline = time.time() + 30
        while time.time() < deadline:
            try:
                if requests.get(uri + "/health", timeout=1).ok:
                    break
            except requests.RequestException:
                time.sleep(0.1)
        experiment, runs = log_sweep(uri)

        from selenium import webdriver
        from selenium.webdriver.chrome.service import Service
        from selenium.webdriver.support.ui import WebDriverWait

        options = webdriver.ChromeOptions()
        options.binary_location = "/usr/bin/chromium"
        for flag in ("--headless=new", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage",
                     "--window-size=1280,800", f"--user-data-dir={root / 'chromium'}"):  # fmt: skip
            options.add_argument(flag)
        driver = webdriver.Chrome(service=Service("/usr/bin/chromedriver"), options=options)
        try:
            pages = {
                "ui-runs": f"/experiments/{experiment}?order=metrics.loss",
                "ui-compare": f"/compare?runs={','.join(runs)}&cm=loss,accuracy&csmooth=ema%3A0.6",
                "ui-model": "/models/churn-classifier",
            }
            for name, path in pages.items():
                driver.get(uri + path)
                WebDriverWait(driver, 30).until(lambda d: d.execute_script("return document.readyState") == "complete")
                if name == "ui-compare":
                    WebDriverWait(driver, 30).until(lambda d: d.find_elements("css selector", ".chart[data-series]"))
                time.sleep(0.3)
                driver.save_screenshot(str(out / f"{name}.png"))
                print(f"saved {out / f'{name}.png'}")
        finally:
            driver.quit()
    finally:
        server.terminate()
        server.wait(timeout=10)


if __name__ == "__main__":
    main()
