"""Serving end to end: models logged and registered with the unmodified ``mlflow``
client, deployed with the ``sextant`` CLI, and called with real clients: KServe/Triton's
``tritonclient.http`` (Open Inference Protocol v2) and MLflow's own scoring client
(``/invocations``).

It covers the native engines (scikit-learn, XGBoost, LightGBM, ONNX) against the
libraries' own predictions, Python-only models in supervised workers (including a
worker crash), a canary that rolls itself back when the new version fails, a replica
(``sextant serve``) following the server, the container image and its entrypoint,
batch scoring (``sextant predict``), and the prediction log read with pandas and DuckDB.
"""

from __future__ import annotations

import io
import json
import os
import shutil
import subprocess
import sys
import tarfile
import tempfile
import time
import uuid
from pathlib import Path

import mlflow
import numpy as np
import pandas as pd
import pytest
import requests
from sklearn.datasets import make_classification

from _helpers import unique
from conftest import AGAINST_MLFLOW, _free_port, _sextant_bin, _stop

pytestmark = [
    pytest.mark.sextant_only,
    pytest.mark.skipif(AGAINST_MLFLOW, reason="Sextant's serving"),
]


def sextant(server_uri: str, *args: str, check: bool = True) -> subprocess.CompletedProcess:
    """Runs the CLI against `server_uri`; parses JSON output when there is some."""
    env = dict(os.environ, SEXTANT_SERVER=server_uri, NO_COLOR="1")
    result = subprocess.run(
        [str(_sextant_bin()), *args], env=env, capture_output=True, text=True, timeout=600
    )
    if check and result.returncode != 0:
        raise AssertionError(f"sextant {' '.join(args)} failed ({result.returncode}):\n{result.stderr}")
    return result


def cli_json(server_uri: str, *args: str) -> dict:
    return json.loads(sextant(server_uri, *args).stdout)


@pytest.fixture(scope="module")
def data():
    X, y = make_classification(n_samples=2000, n_features=20, n_informative=8, random_state=0)
    columns = [f"f{i}" for i in range(20)]
    return pd.DataFrame(X, columns=columns), y


def register_sklearn(name: str, model, X: pd.DataFrame, serialization: str = "skops") -> str:
    """Logs and registers like a user of MLflow 3: skops by default (trusting the
    estimator's own types, as MLflow asks for tree models), or a pickle format."""
    options = {}
    if serialization == "skops":
        import skops.io

        options["skops_trusted_types"] = skops.io.get_untrusted_types(data=skops.io.dumps(model))
    else:
        options["serialization_format"] = serialization
    with mlflow.start_run():
        info = mlflow.sklearn.log_model(model, name="model", input_example=X.head(3), **options)
    return mlflow.register_model(info.model_uri, name).version


def triton(server_uri: str):
    import tritonclient.http as httpclient

    return httpclient.InferenceServerClient(url=server_uri.removeprefix("http://"))


def triton_infer(server_uri: str, deployment: str, X: np.ndarray, outputs=("predict", "predict_proba")):
    import tritonclient.http as httpclient

    client = triton(server_uri)
    infer_input = httpclient.InferInput("input-0", list(X.shape), "FP64")
    infer_input.set_data_from_numpy(X.astype(np.float64), binary_data=False)
    requested = [httpclient.InferRequestedOutput(name, binary_data=False) for name in outputs]
    result = client.infer(deployment, inputs=[infer_input], outputs=requested)
    return result


def test_random_forest_answers_like_scikit_learn(tracking_uri, experiment_id, data):
    """The benchmark's model (100 trees, depth 8, 20 features) through tritonclient and
    the scoring protocol, on every backend (artifacts on disk, in PostgreSQL's server, on S3)."""
    from sklearn.ensemble import RandomForestClassifier

    X, y = data
    forest = RandomForestClassifier(n_estimators=100, max_depth=8, random_state=0).fit(X, y)
    name = unique("forest")
    version = register_sklearn(name, forest, X)
    mlflow.MlflowClient().set_registered_model_alias(name, "champion", version)
    deployment = unique("rf")
    created = cli_json(tracking_uri, "deployments", "create", deployment, "--model", f"{name}@champion")
    assert created["spec"]["arms"][0]["model"] == {"name": name, "version": version, "alias": "champion"}

    client = triton(tracking_uri)
    assert client.is_server_live() and client.is_model_ready(deployment)
    metadata = client.get_model_metadata(deployment)
    assert metadata["platform"] == "native-trees"
    assert [i["name"] for i in metadata["inputs"]] == list(X.columns)

    rows = X.iloc[:300]
    result = triton_infer(tracking_uri, deployment, rows.to_numpy())
    np.testing.assert_allclose(result.as_numpy("predict_proba"), forest.predict_proba(rows), atol=1e-6, rtol=0)
    np.testing.assert_array_equal(result.as_numpy("predict"), forest.predict(rows))
    response = result.get_response()
    assert response["model_version"] == version
    assert len(response["parameters"]["prediction_id"]) == 36
    # tritonclient's defaults: tensors in binary after the JSON (Triton's
    # binary data extension), and every output when none is named.
    import tritonclient.http as httpclient

    binary_input = httpclient.InferInput("input-0", list(rows.shape), "FP64")
    binary_input.set_data_from_numpy(rows.to_numpy())
    for outputs in (None, [httpclient.InferRequestedOutput("predict_proba")]):
        result = client.infer(deployment, inputs=[binary_input], outputs=outputs)
        np.testing.assert_allclose(result.as_numpy("predict_proba"), forest.predict_proba(rows), atol=1e-6, rtol=0)
        if outputs is None:
            np.testing.assert_array_equal(result.as_numpy("predict"), forest.predict(rows))

    # MLflow's scoring protocol with a pandas split frame, as `mlflow models predict` sends it.
    body = {"dataframe_split": rows.head(50).to_dict(orient="split")}
    reply = requests.post(f"{tracking_uri}/deployments/{deployment}/invocations", json=body, timeout=30)
    assert reply.status_code == 200, reply.text
    assert reply.json()["predictions"] == forest.predict(rows.head(50)).tolist()
    assert reply.headers["x-sextant-model-version"] == version


def test_bad_requests_are_named_through_tritonclient(tracking_uri, experiment_id, data):
    import tritonclient.http as httpclient
    from sklearn.linear_model import LogisticRegression
    from tritonclient.utils import InferenceServerException

    X, y = data
    name = unique("logreg")
    version = register_sklearn(name, LogisticRegression(max_iter=500).fit(X, y), X)
    deployment = unique("lr")
    sextant(tracking_uri, "deployments", "create", deployment, "--model", f"{name}/{version}")
    client = triton(tracking_uri)
    narrow = httpclient.InferInput("input-0", [1, 19], "FP64")
    narrow.set_data_from_numpy(np.zeros((1, 19)), binary_data=False)
    with pytest.raises(InferenceServerException) as raised:
        client.infer(deployment, inputs=[narrow])
    assert "19 columns" in str(raised.value) and "20 features" in str(raised.value)
    named = httpclient.InferInput("f0", [2], "FP64")
    named.set_data_from_numpy(np.zeros(2), binary_data=False)
    with pytest.raises(InferenceServerException) as raised:
        client.infer(deployment, inputs=[named])
    assert "missing input features 'f1'" in str(raised.value)
    with pytest.raises(InferenceServerException) as raised:
        client.infer(unique("nope"), inputs=[named])
    assert "does not exist" in str(raised.value)


def test_boosters_and_onnx_run_natively(tracking_uri, experiment_id, data):
    import lightgbm
    import onnxruntime
    import xgboost
    from skl2onnx import to_onnx
    from sklearn.ensemble import GradientBoostingClassifier

    X, y = data
    rows = X.iloc[:200]
    cases = []
    with mlflow.start_run():
        booster = xgboost.XGBClassifier(n_estimators=50, max_depth=4).fit(X, y)
        info = mlflow.xgboost.log_model(booster, name="xgb", input_example=X.head(2))
        cases.append(("xgb", info.model_uri, booster.predict_proba(rows)))
        lgbm = lightgbm.train({"objective": "binary", "verbose": -1}, lightgbm.Dataset(X, y), num_boost_round=50)
        info = mlflow.lightgbm.log_model(lgbm, name="lgbm", input_example=X.head(2))
        positive = lgbm.predict(rows)
        cases.append(("lgbm", info.model_uri, np.column_stack([1 - positive, positive])))
        gbc = GradientBoostingClassifier(n_estimators=30).fit(X.to_numpy(np.float32), y)
        onx = to_onnx(gbc, X.to_numpy(np.float32)[:1], options={"zipmap": False})
        info = mlflow.onnx.log_model(onx, name="onnx")
        session = onnxruntime.InferenceSession(onx.SerializeToString())
        reference = session.run(None, {session.get_inputs()[0].name: rows.to_numpy(np.float32)})[1]
        cases.append(("onnx", info.model_uri, reference))
    for kind, uri, expected in cases:
        name = unique(kind)
        version = mlflow.register_model(uri, name).version
        deployment = unique(kind)
        sextant(tracking_uri, "deployments", "create", deployment, "--model", f"{name}/{version}")
        metadata = requests.get(f"{tracking_uri}/v2/models/{deployment}", timeout=30).json()
        assert metadata["platform"] in ("native-trees", "onnx"), metadata
        if kind == "onnx":
            body = {"inputs": [{"name": metadata["inputs"][0]["name"], "shape": list(rows.shape), "datatype": "FP32",
                                "data": rows.to_numpy(np.float32).ravel().tolist()}]}
        else:
            body = {"inputs": [{"name": "input-0", "shape": list(rows.shape), "datatype": "FP64",
                                "data": rows.to_numpy().ravel().tolist()}]}
        reply = requests.post(f"{tracking_uri}/v2/models/{deployment}/infer", json=body, timeout=30)
        assert reply.status_code == 200, reply.text
        outputs = {o["name"]: o for o in reply.json()["outputs"]}
        proba_name = "predict_proba" if "predict_proba" in outputs else "probabilities"
        proba = np.array(outputs[proba_name]["data"]).reshape(outputs[proba_name]["shape"])
        np.testing.assert_allclose(proba, expected, atol=1e-6, rtol=0, err_msg=kind)


def scam_calls(n: int, seed: int) -> tuple[pd.DataFrame, np.ndarray]:
    """The seeds' scam-call data: a country column, amounts, yes/no features."""
    rng = np.random.default_rng(seed)
    frame = pd.DataFrame({
        "location_of_call": rng.choice(["US", "GB", "NG", "IN", "JM"], n, p=[0.5, 0.2, 0.15, 0.1, 0.05]),
        "amount": np.round(rng.lognormal(4.0, 1.3, n), 2),
        "asked_for_gift_cards": rng.integers(0, 2, n),
        "caller_in_contacts": rng.integers(0, 2, n),
    })
    score = (frame["location_of_call"].isin(["NG", "JM"]) * 1.5 + frame["asked_for_gift_cards"] * 2.0
             - frame["caller_in_contacts"] * 1.5 + rng.normal(0, 1, n))
    return frame, (score > 1.0).to_numpy().astype(int)


def test_the_scam_call_pipeline_is_served_natively_with_probabilities(tracking_uri, experiment_id):
    """The pipeline new users train (a ColumnTransformer one-hot encoding a country
    column before a GradientBoostingClassifier), logged with MLflow's defaults: served by
    the native engine at once, answering scikit-learn's labels and probabilities, for
    countries it never saw too."""
    from sklearn.compose import ColumnTransformer
    from sklearn.ensemble import GradientBoostingClassifier
    from sklearn.pipeline import Pipeline
    from sklearn.preprocessing import OneHotEncoder

    X, y = scam_calls(1000, seed=0)
    pipeline = Pipeline([
        ("prep", ColumnTransformer([("cat", OneHotEncoder(handle_unknown="ignore"), ["location_of_call"])],
                                   remainder="passthrough")),
        ("model", GradientBoostingClassifier()),
    ]).fit(X, y)
    name = unique("scam")
    version = register_sklearn(name, pipeline, X)
    deployment = unique("scam")
    started = time.monotonic()
    created = sextant(tracking_uri, "deployments", "create", deployment, "--model", f"{name}/{version}")
    # No virtualenv to build: the native engine loads it in well under the 83 s a Python
    # worker took, and the CLI said what it was doing.
    assert time.monotonic() - started < 30
    assert "loading the model with the native engines" in created.stderr, created.stderr
    assert "ready on the native-trees engine" in created.stderr, created.stderr
    status = cli_json(tracking_uri, "deployments", "status", deployment)
    assert status["arms"][0]["engine"] == "native-trees" and status["arms"][0]["load_seconds"] >= 0
    assert "native_declined" not in status["arms"][0]

    metadata = requests.get(f"{tracking_uri}/v2/models/{deployment}", timeout=30).json()
    assert metadata["platform"] == "native-trees", metadata
    datatypes = {i["name"]: i["datatype"] for i in metadata["inputs"]}
    assert datatypes["location_of_call"] == "BYTES"

    rows, _ = scam_calls(200, seed=1)
    rows.loc[::9, "location_of_call"] = "ZZ"  # a country the encoder never saw
    expected_proba = pipeline.predict_proba(rows)

    # MLflow's scoring protocol, as `mlflow models predict` and pandas send it.
    body = {"dataframe_split": json.loads(rows.to_json(orient="split", index=False))}
    reply = requests.post(f"{tracking_uri}/deployments/{deployment}/invocations", json=body, timeout=30)
    assert reply.status_code == 200, reply.text
    assert reply.json()["predictions"] == pipeline.predict(rows).tolist()

    # Open Inference Protocol, one input per column, every output.
    inputs = [{"name": "location_of_call", "shape": [len(rows)], "datatype": "BYTES",
               "data": rows["location_of_call"].tolist()}]
    for column in ("amount", "asked_for_gift_cards", "caller_in_contacts"):
        inputs.append({"name": column, "shape": [len(rows)], "datatype": "FP64",
                       "data": rows[column].astype(float).tolist()})
    reply = requests.post(f"{tracking_uri}/v2/models/{deployment}/infer", json={"inputs": inputs}, timeout=30)
    assert reply.status_code == 200, reply.text
    outputs = {o["name"]: o for o in reply.json()["outputs"]}
    proba = np.array(outputs["predict_proba"]["data"]).reshape(outputs["predict_proba"]["shape"])
    np.testing.assert_allclose(proba, expected_proba, atol=1e-9, rtol=0)
    assert outputs["predict"]["data"] == pipeline.predict(rows).tolist()

    # A number where the model learnt text is named, not a 500.
    inputs[0] = {"name": "location_of_call", "shape": [len(rows)], "datatype": "FP64", "data": [1.0] * len(rows)}
    reply = requests.post(f"{tracking_uri}/v2/models/{deployment}/infer", json={"inputs": inputs}, timeout=30)
    assert reply.status_code == 400 and "location_of_call" in reply.json()["message"], reply.text


def test_boosters_on_pandas_categories_take_the_category_values(tracking_uri, experiment_id):
    """XGBoost (enable_categorical) and LightGBM on a pandas category column, logged with
    their own flavors: requests carry the country names, mapped to the categories the
    library recorded, with its categorical splits."""
    import lightgbm
    import xgboost

    X, y = scam_calls(1000, seed=2)
    X["location_of_call"] = X["location_of_call"].astype("category")
    rows, _ = scam_calls(100, seed=3)
    asked = rows.assign(location_of_call=pd.Categorical(
        rows["location_of_call"], categories=X["location_of_call"].cat.categories))
    with mlflow.start_run():
        booster = xgboost.XGBClassifier(n_estimators=40, max_depth=4, enable_categorical=True,
                                        tree_method="hist").fit(X, y)
        xgb_info = mlflow.xgboost.log_model(booster, name="xgb", input_example=X.head(3))
        lgbm = lightgbm.LGBMClassifier(n_estimators=40, verbose=-1).fit(X, y)
        lgbm_info = mlflow.lightgbm.log_model(lgbm, name="lgbm", input_example=X.head(3))
    for kind, info, model in (("xgb", xgb_info, booster), ("lgbm", lgbm_info, lgbm)):
        name = unique(f"{kind}-cat")
        version = mlflow.register_model(info.model_uri, name).version
        deployment = unique(f"{kind}-cat")
        sextant(tracking_uri, "deployments", "create", deployment, "--model", f"{name}/{version}")
        metadata = requests.get(f"{tracking_uri}/v2/models/{deployment}", timeout=30).json()
        assert metadata["platform"] == "native-trees", metadata
        body = {"dataframe_split": json.loads(rows.to_json(orient="split", index=False))}
        reply = requests.post(f"{tracking_uri}/deployments/{deployment}/invocations", json=body, timeout=30)
        assert reply.status_code == 200, (kind, reply.text)
        assert reply.json()["predictions"] == model.predict(asked).tolist(), kind
        inputs = [{"name": "location_of_call", "shape": [len(rows)], "datatype": "BYTES",
                   "data": rows["location_of_call"].tolist()}]
        for column in ("amount", "asked_for_gift_cards", "caller_in_contacts"):
            inputs.append({"name": column, "shape": [len(rows)], "datatype": "FP64",
                           "data": rows[column].astype(float).tolist()})
        reply = requests.post(f"{tracking_uri}/v2/models/{deployment}/infer", json={"inputs": inputs}, timeout=30)
        assert reply.status_code == 200, (kind, reply.text)
        outputs = {o["name"]: o for o in reply.json()["outputs"]}
        proba = np.array(outputs["predict_proba"]["data"]).reshape(outputs["predict_proba"]["shape"])
        np.testing.assert_allclose(proba, model.predict_proba(asked), atol=1e-7, rtol=0, err_msg=kind)


# --------------------------------------------------------------------------------------
# One server of our own: Python workers, a canary, a replica, images, batch scoring.
# --------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def own_server():
    root = Path(tempfile.mkdtemp(prefix="sextant-serving-"))
    port = _free_port()
    uri = f"http://127.0.0.1:{port}"
    log_path = root / "server.log"
    env = dict(os.environ, NO_COLOR="1", RUST_LOG="info")
    cmd = [str(_sextant_bin()), "server", "--port", str(port), "--data-dir", str(root / "data"),
           "--python", sys.executable, "--canary-check-seconds", "0.2"]  # fmt: skip
    with open(log_path, "wb") as log:
        proc = subprocess.Popen(cmd, stdout=log, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL, env=env,
                                start_new_session=True)
    from conftest import _wait_until_healthy

    try:
        _wait_until_healthy(proc, uri, log_path, 30.0, "sextant server")
        mlflow.set_tracking_uri(uri)
        mlflow.set_registry_uri(uri)
        mlflow.set_experiment("serving")
        yield {"uri": uri, "root": root, "proc": proc, "log": log_path}
    finally:
        _stop(proc)


class Doubler(mlflow.pyfunc.PythonModel):
    """A custom model: doubles `x`; crashes its process on x == -999; fails on x == -1 when told to."""

    def __init__(self, broken: bool = False):
        self.broken = broken

    def predict(self, context, model_input, params=None):
        import os as _os

        x = model_input["x"].to_numpy()
        if (x == -999).any():
            _os.kill(_os.getpid(), 9)
        if self.broken:
            raise RuntimeError("this version is broken")
        return pd.DataFrame({"y": x * 2.0})


def register_pyfunc(name: str, broken: bool = False) -> str:
    import cloudpickle
    from mlflow.models import infer_signature

    # The class lives in this test module, which the worker cannot import: pickle it by value.
    cloudpickle.register_pickle_by_value(sys.modules[__name__])

    example = pd.DataFrame({"x": [1.0, 2.0]})
    signature = infer_signature(example, pd.DataFrame({"y": [2.0, 4.0]}))
    with mlflow.start_run():
        info = mlflow.pyfunc.log_model(name="model", python_model=Doubler(broken), signature=signature)
    return mlflow.register_model(info.model_uri, name).version


def score(uri: str, deployment: str, x: list[float]) -> requests.Response:
    return requests.post(f"{uri}/deployments/{deployment}/invocations",
                         json={"dataframe_split": {"columns": ["x"], "data": [[v] for v in x]}}, timeout=60)


def test_python_models_run_in_supervised_workers(own_server):
    uri = own_server["uri"]
    name = unique("doubler")
    version = register_pyfunc(name)
    deployment = unique("py")
    sextant(uri, "deployments", "create", deployment, "--model", f"{name}/{version}")
    reply = score(uri, deployment, [1.5, 2.0])
    assert reply.status_code == 200, reply.text
    assert reply.json()["predictions"] == [{"y": 3.0}, {"y": 4.0}]
    assert requests.get(f"{uri}/v2/models/{deployment}", timeout=10).json()["platform"] == "python"
    # A crash fails that request alone, with a clear 5xx; the worker comes back.
    crashed = score(uri, deployment, [-999.0])
    assert crashed.status_code == 500, crashed.text
    assert "worker" in crashed.json()["message"]
    for _ in range(50):
        again = score(uri, deployment, [4.0])
        if again.status_code == 200:
            break
        time.sleep(0.2)
    assert again.status_code == 200, again.text
    assert again.json()["predictions"] == [{"y": 8.0}]
    # The signature is enforced before Python sees the request.
    wrong = requests.post(f"{uri}/deployments/{deployment}/invocations",
                          json={"dataframe_records": [{"z": 1.0}]}, timeout=30)
    assert wrong.status_code == 400 and "'x'" in wrong.json()["message"]


def signed_log1p(x):
    return np.sign(x) * np.log1p(np.abs(x))


def test_python_served_classifiers_say_why_and_answer_like_native_ones(own_server):
    """A pipeline with a function of the user's own only Python can run: creating the
    deployment says so and why, its status names the engine and the native engines'
    reasons, and it answers labels and probabilities like a native classifier."""
    import cloudpickle
    from sklearn.linear_model import LogisticRegression
    from sklearn.pipeline import Pipeline
    from sklearn.preprocessing import FunctionTransformer

    uri = own_server["uri"]
    cloudpickle.register_pickle_by_value(sys.modules[__name__])
    X, y = scam_calls(500, seed=4)
    X = X.drop(columns=["location_of_call"])
    pipeline = Pipeline([("log", FunctionTransformer(signed_log1p)),
                         ("model", LogisticRegression(max_iter=1000))]).fit(X, y)
    with mlflow.start_run():
        info = mlflow.sklearn.log_model(pipeline, name="model", input_example=X.head(3),
                                        serialization_format="cloudpickle")
    name = unique("custom")
    version = mlflow.register_model(info.model_uri, name).version
    deployment = unique("custom")
    created = sextant(uri, "deployments", "create", deployment, "--model", f"{name}/{version}")
    assert "serving it with Python" in created.stderr and "FunctionTransformer" in created.stderr, created.stderr
    assert "ready on the python engine" in created.stderr, created.stderr
    arm = cli_json(uri, "deployments", "status", deployment)["arms"][0]
    assert arm["engine"] == "python"
    assert any("FunctionTransformer" in reason for reason in arm["native_declined"]), arm

    rows = X.head(20)
    body = {"dataframe_split": json.loads(rows.to_json(orient="split", index=False))}
    reply = requests.post(f"{uri}/deployments/{deployment}/invocations", json=body, timeout=60)
    assert reply.status_code == 200, reply.text
    assert reply.json()["predictions"] == pipeline.predict(rows).tolist()
    inputs = [{"name": c, "shape": [len(rows)], "datatype": "FP64", "data": rows[c].astype(float).tolist()}
              for c in rows.columns]
    reply = requests.post(f"{uri}/v2/models/{deployment}/infer", json={"inputs": inputs}, timeout=60)
    assert reply.status_code == 200, reply.text
    outputs = {o["name"]: o for o in reply.json()["outputs"]}
    assert set(outputs) == {"predict", "predict_proba"}, outputs
    proba = np.array(outputs["predict_proba"]["data"]).reshape(outputs["predict_proba"]["shape"])
    np.testing.assert_allclose(proba, pipeline.predict_proba(rows), atol=1e-12, rtol=0)


def test_a_deployment_and_its_alias_move_together(own_server):
    """A deployment made from NAME@champion follows the alias when it moves, and the
    alias follows the deployment through a blue-green switch, a shadow's promotion and
    a rollback: the registry always says what is served."""
    from sklearn.linear_model import LogisticRegression

    uri = own_server["uri"]
    client = mlflow.MlflowClient()
    X, y = scam_calls(400, seed=5)
    X = X.drop(columns=["location_of_call"])
    name = unique("champion")
    versions = []
    for c in (0.1, 1.0, 10.0, 100.0):
        with mlflow.start_run():
            info = mlflow.sklearn.log_model(LogisticRegression(C=c, max_iter=500).fit(X, y), name="model",
                                            input_example=X.head(2), serialization_format="cloudpickle")
        versions.append(mlflow.register_model(info.model_uri, name).version)
    v1, v2, v3, v4 = versions
    client.set_registered_model_alias(name, "champion", v1)
    deployment = unique("follows")
    sextant(uri, "deployments", "create", deployment, "--model", f"{name}@champion")

    def served() -> str:
        status = cli_json(uri, "deployments", "status", deployment)
        (primary,) = [a for a in status["arms"] if a["role"] == "live"]
        return str(primary["model"]["version"])

    def champion() -> str:
        return client.get_model_version_by_alias(name, "champion").version

    def eventually(check, expected):
        deadline = time.monotonic() + 20
        while check() != expected:
            assert time.monotonic() < deadline, f"{check.__name__}: {check()} != {expected}"
            time.sleep(0.2)

    # The alias moves (as an approval or MLflow's API moves it): the deployment follows.
    client.set_registered_model_alias(name, "champion", v2)
    eventually(served, v2)
    body = {"dataframe_split": json.loads(X.head(2).to_json(orient="split", index=False))}
    reply = requests.post(f"{uri}/deployments/{deployment}/invocations", json=body, timeout=30)
    assert reply.headers["x-sextant-model-version"] == v2
    history = cli_json(uri, "deployments", "history", deployment)["revisions"]
    assert history[0]["action"] == "follow_alias" and "champion" in history[0]["reason"], history[0]

    # The deployment moves (blue-green, a promoted shadow, a rollback): the alias follows.
    sextant(uri, "deployments", "blue-green", deployment, "--model", f"{name}/{v3}")
    assert (served(), champion()) == (v3, v3)
    sextant(uri, "deployments", "shadow", deployment, "--model", f"{name}/{v4}")
    assert champion() == v3, "a shadow serves nobody: the alias stays"
    sextant(uri, "deployments", "promote", deployment)
    assert (served(), champion()) == (v4, v4)
    sextant(uri, "deployments", "rollback", deployment)
    assert (served(), champion()) == (v3, v3)
    # Nothing moves on its own afterwards: both agree.
    time.sleep(1)
    assert (served(), champion()) == (v3, v3)


def test_a_failing_canary_rolls_itself_back(own_server):
    uri = own_server["uri"]
    name = unique("canary")
    good = register_pyfunc(name)
    broken = register_pyfunc(name, broken=True)
    deployment = unique("cn")
    sextant(uri, "deployments", "create", deployment, "--model", f"{name}/{good}")
    started = cli_json(uri, "deployments", "canary", deployment, "--model", f"{name}/{broken}", "--weight", "50",
                       "--min-requests", "10", "--interval", "3600")
    assert started["spec"]["policy"]["kind"] == "canary"
    failures = 0
    for _ in range(60):
        reply = score(uri, deployment, [1.0])
        failures += reply.status_code >= 500
        if reply.status_code == 200:
            assert reply.json()["predictions"] == [{"y": 2.0}]
    assert failures > 0, "the broken canary never got traffic"
    history = None
    for _ in range(100):
        history = cli_json(uri, "deployments", "history", deployment)
        if history["revisions"][0]["action"] == "auto_rollback":
            break
        time.sleep(0.1)
    latest = history["revisions"][0]
    assert latest["action"] == "auto_rollback", history
    assert "error rate" in latest["reason"]
    # Only the good version answers now.
    for _ in range(20):
        reply = score(uri, deployment, [1.0])
        assert reply.status_code == 200 and reply.headers["x-sextant-model-version"] == good
    status = cli_json(uri, "deployments", "status", deployment)
    assert [a["name"] for a in status["arms"]] == ["primary"]


def test_a_replica_follows_the_server(own_server, data, tmp_path):
    from mlflow.pyfunc.scoring_server.client import ScoringServerClient
    from sklearn.tree import DecisionTreeClassifier

    uri = own_server["uri"]
    X, y = data
    name = unique("tree")
    first = DecisionTreeClassifier(max_depth=3, random_state=0).fit(X, y)
    second = DecisionTreeClassifier(max_depth=6, random_state=0).fit(X, y)
    v1 = register_sklearn(name, first, X)
    v2 = register_sklearn(name, second, X)
    deployment = unique("rep")
    sextant(uri, "deployments", "create", deployment, "--model", f"{name}/{v1}")
    # The server's reference: the replica monitors against it too.
    reference = requests.put(f"{uri}/api/v1/deployments/{deployment}/monitoring/reference",
                             data=X.to_csv(index=False).encode(), timeout=60)
    assert reference.status_code == 200, reference.text
    port = _free_port()
    env = dict(os.environ, SEXTANT_SERVER=uri, NO_COLOR="1")
    log_path = tmp_path / "replica.log"
    with open(log_path, "wb") as log:
        replica = subprocess.Popen(
            [str(_sextant_bin()), "serve", "--deployment", deployment, "--port", str(port),
             "--cache-dir", str(tmp_path / "cache"), "--poll-seconds", "0.3", "--no-python"],
            stdout=log, stderr=subprocess.STDOUT, env=env, start_new_session=True)  # fmt: skip
    try:
        scoring = ScoringServerClient("127.0.0.1", port)
        scoring.wait_server_ready(timeout=60)
        rows = X.iloc[:40]
        # Outlier verdicts from the first answers: the replica took the server's profile
        # (its own reference window would need 1,000 rows first).
        for _ in range(100):
            answer = requests.post(f"http://127.0.0.1:{port}/invocations",
                                   json={"dataframe_split": rows.to_dict(orient="split")}, timeout=10).json()
            if "outlier" in answer:
                break
            time.sleep(0.1)
        assert isinstance(answer.get("outlier"), bool) and len(answer["outliers"]) == 40, answer
        predictions = scoring.invoke(rows).get_predictions()
        np.testing.assert_array_equal(np.asarray(predictions).ravel(), first.predict(rows))
        # A change on the server reaches the replica within a few polls.
        sextant(uri, "deployments", "update", deployment, "--model", f"{name}/{v2}")
        for _ in range(100):
            reply = requests.post(f"http://127.0.0.1:{port}/invocations",
                                  json={"dataframe_split": rows.to_dict(orient="split")}, timeout=10)
            if reply.headers.get("x-sextant-model-version") == v2:
                break
            time.sleep(0.1)
        assert reply.headers["x-sextant-model-version"] == v2
        assert reply.json()["predictions"] == second.predict(rows).tolist()
        # The replica reports its counters; the server shows it in the status.
        for _ in range(50):
            status = cli_json(uri, "deployments", "status", deployment)
            if status["replicas"] and status["arms"][0]["counters"]["requests"] >= 1:
                break
            time.sleep(0.2)
        assert status["replicas"], status
        assert status["arms"][0]["counters"]["requests"] >= 1
    finally:
        _stop(replica)
    assert "reference profile taken from the server" in log_path.read_text()
    # At shutdown the replica wrote its prediction log through the server.
    segments = list((own_server["root"] / "data" / "artifacts" / "predictions" / deployment).rglob("*.parquet"))
    assert segments, f"no prediction log segments; replica log:\n{log_path.read_text()[-3000:]}"
    frame = pd.concat(pd.read_parquet(s) for s in segments)
    assert set(frame["model_version"]) >= {int(v1), int(v2)}
    assert {"input_f0", "input_f19", "output_predict"} <= set(frame.columns)


def test_batch_scoring_matches_the_library(own_server, data, tmp_path):
    from sklearn.ensemble import ExtraTreesClassifier

    uri = own_server["uri"]
    X, y = data
    model = ExtraTreesClassifier(n_estimators=30, max_depth=6, random_state=0).fit(X, y)
    name = unique("batch")
    version = register_sklearn(name, model, X, serialization="cloudpickle")
    mlflow.MlflowClient().set_registered_model_alias(name, "champion", version)
    X.to_parquet(tmp_path / "rows.parquet")
    X.to_csv(tmp_path / "rows.csv", index=False)
    X.to_csv(tmp_path / "rows.tsv.gz", sep="\t", index=False)
    # An index without a name in the header: pandas' implicit index, read back as the index.
    X.to_csv(tmp_path / "indexed.csv", index_label=False)
    assert list(pd.read_csv(tmp_path / "indexed.csv").columns) == list(X.columns)
    for source, target in [("rows.parquet", "out.parquet"), ("rows.csv", "out.csv"), ("rows.tsv.gz", "tsv.csv"), ("indexed.csv", "indexed_out.csv")]:
        sextant(uri, "predict", "--model", f"{name}@champion", "--input", str(tmp_path / source),
                "--output", str(tmp_path / target), "--cache-dir", str(tmp_path / "cache"))  # fmt: skip
        out = pd.read_parquet(tmp_path / target) if target.endswith("parquet") else pd.read_csv(tmp_path / target)
        np.testing.assert_array_equal(out["predict"].to_numpy(), model.predict(X))
        proba = out[[f"predict_proba_{k}" for k in range(2)]].to_numpy()
        np.testing.assert_allclose(proba, model.predict_proba(X), atol=1e-6, rtol=0)
    missing = sextant(uri, "predict", "--model", f"{name}@champion", "--input", str(tmp_path / "nope.parquet"),
                      "--output", str(tmp_path / "x.parquet"), check=False)  # fmt: skip
    assert missing.returncode == 2 and "nope.parquet" in missing.stderr


def test_partitioned_batch_scoring_equals_one_process(data, tmp_path):
    """`sextant predict --partition I/N`, as an indexed Job's pods run it: four processes
    at once over a directory of five Parquet files (split by files), the same directory
    on object storage (S3), and three over one file (split by rows), write outputs that,
    in partition order, are row for row the single process's."""
    from sklearn.ensemble import RandomForestClassifier

    X, y = data
    model = RandomForestClassifier(n_estimators=20, max_depth=6, random_state=0).fit(X, y)
    model_dir = tmp_path / "model"
    mlflow.sklearn.save_model(model, str(model_dir), serialization_format="cloudpickle", input_example=X.head(2))
    dataset = tmp_path / "dataset"
    dataset.mkdir()
    for part, rows in enumerate(np.array_split(np.arange(len(X)), 5)):
        X.iloc[rows].to_parquet(dataset / f"part-{part:03d}.parquet")
    X.to_parquet(tmp_path / "rows.parquet")

    sources = [(dataset, 4), (tmp_path / "rows.parquet", 3)]
    env = dict(os.environ)
    if os.environ.get("SEXTANT_TEST_S3_ENDPOINT"):
        import boto3

        endpoint, bucket = os.environ["SEXTANT_TEST_S3_ENDPOINT"], os.environ.get("SEXTANT_TEST_S3_BUCKET", "sextant-test")
        prefix = f"batch-{uuid.uuid4().hex}"
        s3 = boto3.client("s3", endpoint_url=endpoint, aws_access_key_id="testing", aws_secret_access_key="testing",
                          region_name="us-east-1")  # fmt: skip
        for file in sorted(dataset.iterdir()):
            s3.upload_file(str(file), bucket, f"{prefix}/{file.name}")
        env.update(AWS_ACCESS_KEY_ID="testing", AWS_SECRET_ACCESS_KEY="testing", AWS_REGION="us-east-1",
                   AWS_ENDPOINT=endpoint, AWS_ALLOW_HTTP="true")  # fmt: skip
        sources.append((f"s3://{bucket}/{prefix}/", 4))
    elif os.environ.get("CI"):
        pytest.fail("CI must set SEXTANT_TEST_S3_ENDPOINT")

    def predict(source, output, *extra):
        return subprocess.Popen([str(_sextant_bin()), "predict", "--model", str(model_dir), "--input", str(source),
                                 "--output", str(output), "--threads", "1", *extra],
                                stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env)  # fmt: skip

    def finished(process):
        _, stderr = process.communicate(timeout=300)
        assert process.returncode == 0, stderr

    for number, (source, count) in enumerate(sources):
        whole = tmp_path / f"whole-{number}.parquet"
        finished(predict(source, whole))
        parts = [tmp_path / f"part-{number}-{i}.parquet" for i in range(count)]
        for process in [predict(source, part, "--partition", f"{i}/{count}") for i, part in enumerate(parts)]:
            finished(process)
        expected = pd.read_parquet(whole)
        assert len(expected) == len(X)
        joined = pd.concat([pd.read_parquet(part) for part in parts], ignore_index=True)
        pd.testing.assert_frame_equal(joined, expected)
    bad = predict(dataset, tmp_path / "x.parquet", "--partition", "4/4")
    _, stderr = bad.communicate(timeout=60)
    assert bad.returncode == 2 and "0 ≤ I < N" in stderr, stderr


def test_the_prediction_log_is_read_by_pandas_and_duckdb(own_server, data):
    import duckdb
    from sklearn.linear_model import LogisticRegression

    uri = own_server["uri"]
    X, y = data
    name = unique("logged")
    version = register_sklearn(name, LogisticRegression(max_iter=500).fit(X, y), X)
    deployment = unique("log")
    sextant(uri, "deployments", "create", deployment, "--model", f"{name}/{version}")
    for start in range(0, 50, 10):
        body = {"dataframe_split": X.iloc[start:start + 10].to_dict(orient="split")}
        assert requests.post(f"{uri}/deployments/{deployment}/invocations", json=body, timeout=30).status_code == 200
    root = own_server["root"] / "data" / "artifacts" / "predictions" / deployment
    # Segments are written every 10 s: the 50 rows may span two of them.
    deadline = time.monotonic() + 30
    frame = pd.DataFrame()
    while time.monotonic() < deadline and len(frame) < 50:
        time.sleep(0.5)
        if list(root.rglob("*.parquet")):
            frame = pd.read_parquet(root)
    assert len(frame) == 50 and frame["prediction_id"].nunique() == 5
    # Every logged feature value is one the callers sent, once.
    np.testing.assert_array_equal(np.sort(frame["input_f3"].to_numpy()), np.sort(X["f3"].to_numpy()[:50]))
    [(count, mean_latency)] = duckdb.sql(
        f"SELECT count(*), avg(latency_ms) FROM read_parquet('{root}/**/*.parquet', union_by_name=true)"
    ).fetchall()
    assert count == 50 and mean_latency >= 0
    assert frame["output_predict"].isin([0, 1]).all()


def test_the_prediction_log_keeps_one_schema_across_model_versions(own_server):
    """Version 1 takes a country as text and answers labels; version 2 (a booster on the
    encoded country) takes it as a number and answers probabilities too. Read as one
    directory, without union_by_name, every column is there, with one type throughout,
    and the model version tells the rows apart."""
    import duckdb
    from sklearn.compose import ColumnTransformer
    from sklearn.ensemble import GradientBoostingClassifier
    from sklearn.pipeline import Pipeline
    from sklearn.preprocessing import OneHotEncoder

    uri = own_server["uri"]
    X, y = scam_calls(500, seed=7)
    name = unique("schema")
    first = Pipeline([("prep", ColumnTransformer([("c", OneHotEncoder(handle_unknown="ignore"), ["location_of_call"])],
                                                 remainder="passthrough")),
                      ("model", GradientBoostingClassifier(n_estimators=10))]).fit(X, y)
    v1 = register_sklearn(name, first, X)
    encoded = X.assign(location_of_call=X["location_of_call"].astype("category").cat.codes.astype(float))
    v2 = register_sklearn(name, GradientBoostingClassifier(n_estimators=10).fit(encoded, y), encoded)
    deployment = unique("schema")
    sextant(uri, "deployments", "create", deployment, "--model", f"{name}/{v1}")

    def send(frame):
        body = {"dataframe_split": json.loads(frame.head(20).to_json(orient="split", index=False))}
        reply = requests.post(f"{uri}/deployments/{deployment}/invocations", json=body, timeout=30)
        assert reply.status_code == 200, reply.text

    send(X)
    root = own_server["root"] / "data" / "artifacts" / "predictions" / deployment
    # Version 1's rows in a segment of their own (segments are written every 10 s).
    deadline = time.monotonic() + 30
    while not [p for p in root.rglob("*.parquet") if p.parent != root]:
        assert time.monotonic() < deadline
        time.sleep(0.5)
    sextant(uri, "deployments", "update", deployment, "--model", f"{name}/{v2}")
    send(encoded)
    deadline = time.monotonic() + 30
    frame = pd.DataFrame()
    while time.monotonic() < deadline and len(frame) < 40:
        time.sleep(0.5)
        if list(root.rglob("*.parquet")):
            frame = pd.read_parquet(root)
    assert len(frame) == 40, frame
    assert sorted(frame["model_version"].astype(str).unique()) == sorted([v1, v2])
    assert "output_predict_proba_1" in frame.columns, frame.columns
    assert frame["input_location_of_call"].map(type).eq(str).all(), frame["input_location_of_call"]
    columns = duckdb.sql(f"SELECT * FROM read_parquet('{root}/**/*.parquet')").columns
    assert "output_predict_proba_1" in columns and "input_location_of_call" in columns


def test_the_image_runs_its_entrypoint(own_server, data, tmp_path):
    """`deployments image` writes an OCI archive; its unpacked root filesystem serves the
    deployment with the config's own entrypoint (in a chroot when run as root)."""
    from sklearn.ensemble import RandomForestClassifier

    uri = own_server["uri"]
    X, y = data
    model = RandomForestClassifier(n_estimators=10, max_depth=4, random_state=0).fit(X, y)
    name = unique("imaged")
    version = register_sklearn(name, model, X)
    deployment = unique("img")
    sextant(uri, "deployments", "create", deployment, "--model", f"{name}/{version}")
    archive = tmp_path / "image.tar"
    sextant(uri, "deployments", "image", deployment, "--output", str(archive))
    layout = tmp_path / "layout"
    with tarfile.open(archive) as tar:
        tar.extractall(layout, filter="data")
    assert json.loads((layout / "oci-layout").read_text()) == {"imageLayoutVersion": "1.0.0"}
    index = json.loads((layout / "index.json").read_text())
    manifest_digest = index["manifests"][0]["digest"].removeprefix("sha256:")
    manifest = json.loads((layout / "blobs" / "sha256" / manifest_digest).read_text())
    config = json.loads((layout / "blobs" / "sha256" / manifest["config"]["digest"].removeprefix("sha256:")).read_text())
    docker = json.loads((layout / "manifest.json").read_text())
    assert docker[0]["RepoTags"] == [f"sextant/{deployment}:r1"]
    import hashlib

    for blob in [manifest["config"], *manifest["layers"]]:
        data_bytes = (layout / "blobs" / "sha256" / blob["digest"].removeprefix("sha256:")).read_bytes()
        assert hashlib.sha256(data_bytes).hexdigest() == blob["digest"].removeprefix("sha256:")
        assert len(data_bytes) == blob["size"]
    rootfs = tmp_path / "rootfs"
    layer = layout / "blobs" / "sha256" / manifest["layers"][0]["digest"].removeprefix("sha256:")
    with tarfile.open(layer, "r:gz") as tar:
        names = tar.getnames()
        tar.extractall(rootfs, filter="fully_trusted")
    assert "usr/local/bin/sextant" in names
    assert f"opt/sextant/bundle/models/{name}/{version}/MLmodel" in names
    entrypoint = config["config"]["Entrypoint"]
    env = dict(e.split("=", 1) for e in config["config"]["Env"])
    port = _free_port()
    env["SEXTANT_PORT"] = str(port)
    env["SEXTANT_HOST"] = "127.0.0.1"
    chroot = shutil.which("chroot") or shutil.which("chroot", path="/usr/sbin:/sbin")
    if os.geteuid() == 0 and chroot:
        command = [chroot, str(rootfs), *entrypoint]
    else:
        # Without root, the image's own loader and libraries run the image's binary.
        loader = next(p for p in rootfs.rglob("ld-linux*.so*"))
        library_path = ":".join(sorted({str(p.parent) for p in rootfs.rglob("*.so*")}))
        command = [str(loader), "--library-path", library_path, str(rootfs / entrypoint[0].lstrip("/")),
                   *[str(rootfs / a.lstrip("/")) if a.startswith("/opt/") else a for a in entrypoint[1:]]]  # fmt: skip
    log_path = tmp_path / "image.log"
    with open(log_path, "wb") as log:
        proc = subprocess.Popen(command, env=env, stdout=log, stderr=subprocess.STDOUT, start_new_session=True)
    try:
        deadline = time.monotonic() + 60
        ready = False
        while time.monotonic() < deadline and proc.poll() is None:
            try:
                ready = requests.get(f"http://127.0.0.1:{port}/v2/health/ready", timeout=2).status_code == 200
            except requests.RequestException:
                pass
            if ready:
                break
            time.sleep(0.2)
        assert ready, f"the image did not become ready:\n{log_path.read_text()[-3000:]}"
        rows = X.iloc[:20]
        result = triton_infer(f"http://127.0.0.1:{port}", deployment, rows.to_numpy())
        np.testing.assert_allclose(result.as_numpy("predict_proba"), model.predict_proba(rows), atol=1e-6, rtol=0)
    finally:
        _stop(proc)


def test_the_openapi_document_describes_serving(own_server):
    document = requests.get(f"{own_server['uri']}/api/v1/openapi.json", timeout=10).json()
    for path in ["/v2/models/{name}/infer", "/deployments/{name}/invocations", "/api/v1/deployments",
                 "/api/v1/deployments/{name}/canary", "/api/v1/deployments/{name}/rollback"]:  # fmt: skip
        assert path in document["paths"], path


# --------------------------------------------------------------------------------------
# Explanations: SHAP values per prediction, against shap itself.
# --------------------------------------------------------------------------------------


def oip_columns(rows: pd.DataFrame) -> list[dict]:
    return [{"name": c, "shape": [len(rows)], "datatype": "FP64", "data": rows[c].astype(float).tolist()}
            for c in rows.columns]


def explanation_array(reply: dict) -> np.ndarray:
    """values as rows x features x outputs."""
    return np.array(reply["values"], dtype=float)


def test_tree_deployments_explain_each_prediction_like_shap(tracking_uri, experiment_id, data):
    """A random forest logged with MLflow's defaults: /v2/models/{name}/explain and
    /deployments/{name}/explain answer shap's TreeExplainer values (path-dependent, class
    probabilities), adding up to the prediction; infer returns the top contributions on
    request; once the deployment has answered, the interventional method explains
    against the rows it served."""
    import shap
    from sklearn.ensemble import RandomForestClassifier

    X, y = data
    model = RandomForestClassifier(n_estimators=30, max_depth=6, random_state=0).fit(X, y)
    name = unique("explain-rf")
    version = register_sklearn(name, model, X)
    deployment = unique("explain-rf")
    sextant(tracking_uri, "deployments", "create", deployment, "--model", f"{name}/{version}")
    rows = X.iloc[100:105]
    expected = np.asarray(shap.TreeExplainer(model).shap_values(rows))

    reply = requests.post(f"{tracking_uri}/v2/models/{deployment}/explain",
                          json={"inputs": oip_columns(rows)}, timeout=60)
    assert reply.status_code == 200, reply.text
    answer = reply.json()
    assert (answer["method"], answer["value_function"], answer["output_space"]) == (
        "tree_path_dependent", "path_dependent", "probability")
    assert answer["features"] == list(X.columns) and answer["outputs"] == ["0", "1"]
    assert answer["background_hash"] is None
    np.testing.assert_allclose(explanation_array(answer), expected, atol=1e-9, rtol=0)
    predictions = np.array(answer["predictions"])
    np.testing.assert_allclose(predictions, model.predict_proba(rows), atol=1e-9, rtol=0)
    assert answer["additivity_error"] < 1e-9

    body = {"dataframe_split": json.loads(rows.to_json(orient="split", index=False))}
    reply = requests.post(f"{tracking_uri}/deployments/{deployment}/explain", json=body, timeout=60)
    assert reply.status_code == 200, reply.text
    np.testing.assert_allclose(explanation_array(reply.json()), expected, atol=1e-9, rtol=0)

    reply = requests.post(f"{tracking_uri}/v2/models/{deployment}/infer",
                          json={"inputs": oip_columns(rows), "parameters": {"explain_top_k": 3}}, timeout=60)
    assert reply.status_code == 200, reply.text
    explanations = reply.json()["parameters"]["explanations"]
    assert len(explanations) == len(rows)
    for row, per_output in enumerate(explanations):
        positive = next(o for o in per_output if o["output"] == "1")
        top = [c["feature"] for c in positive["top"]]
        assert top == [X.columns[i] for i in np.argsort(-np.abs(expected[row, :, 1]))[:3]], (row, positive)

    # Bad parameters are the caller's error, with a JSON body.
    reply = requests.post(f"{tracking_uri}/deployments/{deployment}/explain?method=lime", json=body, timeout=60)
    assert reply.status_code == 400 and reply.json()["error_code"] == "INVALID_PARAMETER_VALUE", reply.text

    # The deployment has answered 5 rows: the interventional method explains against them.
    reply = requests.post(f"{tracking_uri}/deployments/{deployment}/explain?method=tree_interventional",
                          json=body, timeout=60)
    assert reply.status_code == 200, reply.text
    answer = reply.json()
    assert answer["method"] == "tree_interventional" and answer["background_rows"] == 5, answer["background_rows"]
    assert answer["background_hash"].startswith("sha256:")
    interventional = shap.TreeExplainer(model, data=rows, feature_perturbation="interventional")
    np.testing.assert_allclose(explanation_array(answer), np.asarray(interventional.shap_values(rows)),
                               atol=1e-6, rtol=0)
    served_hash = answer["background_hash"]

    # Once the deployment has reference data (here an uploaded table of 300 rows), 100
    # of its rows, evenly spaced, are the background instead.
    reference = X.iloc[1000:1300].reset_index(drop=True)
    buffer = io.BytesIO()
    reference.to_parquet(buffer)
    reply = requests.put(f"{tracking_uri}/api/v1/deployments/{deployment}/monitoring/reference",
                         data=buffer.getvalue(), timeout=60)
    assert reply.status_code == 200, reply.text
    reply = requests.post(f"{tracking_uri}/deployments/{deployment}/explain?method=tree_interventional",
                          json=body, timeout=60)
    assert reply.status_code == 200, reply.text
    answer = reply.json()
    assert answer["background_rows"] == 100 and answer["background_hash"] != served_hash, answer["background_rows"]
    interventional = shap.TreeExplainer(model, data=reference.iloc[::3], feature_perturbation="interventional")
    np.testing.assert_allclose(explanation_array(answer), np.asarray(interventional.shap_values(rows)),
                               atol=1e-6, rtol=0)


def test_the_scam_call_pipeline_is_explained_per_column_by_every_route(tracking_uri, experiment_id, tmp_path):
    """The pipeline people ship (a country column one-hot encoded before a
    GradientBoostingClassifier): /deployments/{name}/explain, /v2/models/{name}/explain
    and `sextant explain` give one value per request column, the country's being the sum
    of its one-hot columns' TreeSHAP values, and they agree with shap and each other."""
    import shap
    from sklearn.compose import ColumnTransformer
    from sklearn.ensemble import GradientBoostingClassifier
    from sklearn.pipeline import Pipeline
    from sklearn.preprocessing import OneHotEncoder

    X, y = scam_calls(1000, seed=0)
    pipeline = Pipeline([
        ("prep", ColumnTransformer([("cat", OneHotEncoder(handle_unknown="ignore"), ["location_of_call"])],
                                   remainder="passthrough")),
        ("model", GradientBoostingClassifier(random_state=0)),
    ]).fit(X, y)
    name = unique("scam-explained")
    version = register_sklearn(name, pipeline, X)
    deployment = unique("scam-explained")
    sextant(tracking_uri, "deployments", "create", deployment, "--model", f"{name}/{version}")
    rows, _ = scam_calls(12, seed=3)
    rows.loc[::5, "location_of_call"] = "ZZ"  # unseen: every one-hot column is 0

    # shap on the transformed columns, each summed into the column it came from.
    prep = pipeline.named_steps["prep"]
    transformed = prep.transform(rows)
    transformed = transformed.toarray() if hasattr(transformed, "toarray") else transformed
    explainer = shap.TreeExplainer(pipeline.named_steps["model"])
    per_column = np.asarray(explainer.shap_values(transformed))
    owners = [n.split("__", 1)[1] for n in prep.get_feature_names_out()]
    owners = ["location_of_call" if o.startswith("location_of_call_") else o for o in owners]
    expected = np.zeros((len(rows), len(X.columns)))
    for column, owner in enumerate(owners):
        expected[:, list(X.columns).index(owner)] += per_column[:, column]

    body = {"dataframe_split": json.loads(rows.to_json(orient="split", index=False))}
    reply = requests.post(f"{tracking_uri}/deployments/{deployment}/explain", json=body, timeout=60)
    assert reply.status_code == 200, reply.text
    scoring = reply.json()
    assert scoring["features"] == list(X.columns), scoring["features"]
    assert (scoring["method"], scoring["output_space"]) == ("tree_path_dependent", "margin")
    assert scoring["additivity_error"] < 1e-9
    np.testing.assert_allclose(explanation_array(scoring)[:, :, 0], expected, atol=1e-9)
    np.testing.assert_allclose(scoring["base_values"], np.atleast_1d(explainer.expected_value), atol=1e-9)

    inputs = [{"name": "location_of_call", "shape": [len(rows)], "datatype": "BYTES",
               "data": rows["location_of_call"].tolist()}]
    inputs += [{"name": c, "shape": [len(rows)], "datatype": "FP64", "data": rows[c].astype(float).tolist()}
               for c in ("amount", "asked_for_gift_cards", "caller_in_contacts")]
    reply = requests.post(f"{tracking_uri}/v2/models/{deployment}/explain", json={"inputs": inputs}, timeout=60)
    assert reply.status_code == 200, reply.text
    oip = reply.json()
    assert oip["features"] == scoring["features"]
    np.testing.assert_allclose(explanation_array(oip), explanation_array(scoring), atol=1e-12)

    rows_file = tmp_path / "rows.parquet"
    rows.to_parquet(rows_file)
    out = tmp_path / "shap.parquet"
    sextant(tracking_uri, "explain", "--model", f"{name}/{version}", "--input", str(rows_file),
            "--output", str(out), "--cache-dir", str(tmp_path / "cache"))
    batch = pd.read_parquet(out)
    got = np.stack([batch[f"shap_{c}"].to_numpy() for c in X.columns], axis=1)
    np.testing.assert_allclose(got, explanation_array(scoring)[:, :, 0], atol=1e-12)


def test_python_served_models_are_explained_by_kernel_shap(own_server):
    """A model only Python can run is explained by KernelSHAP around its workers, against
    the rows the deployment answered first; with every coalition enumerated the values
    are shap's KernelExplainer's."""
    import cloudpickle
    import shap
    from sklearn.linear_model import LogisticRegression
    from sklearn.pipeline import Pipeline
    from sklearn.preprocessing import FunctionTransformer

    uri = own_server["uri"]
    cloudpickle.register_pickle_by_value(sys.modules[__name__])
    X, y = scam_calls(500, seed=5)
    X = X.drop(columns=["location_of_call"])
    pipeline = Pipeline([("log", FunctionTransformer(signed_log1p)),
                         ("model", LogisticRegression(max_iter=1000))]).fit(X, y)
    with mlflow.start_run():
        info = mlflow.sklearn.log_model(pipeline, name="model", input_example=X.head(3),
                                        serialization_format="cloudpickle")
    name = unique("explain-py")
    version = mlflow.register_model(info.model_uri, name).version
    deployment = unique("explain-py")
    sextant(uri, "deployments", "create", deployment, "--model", f"{name}/{version}")
    served = X.head(20)
    body = {"dataframe_split": json.loads(served.to_json(orient="split", index=False))}
    reply = requests.post(f"{uri}/deployments/{deployment}/invocations", json=body, timeout=60)
    assert reply.status_code == 200, reply.text

    rows = X.iloc[30:32]
    body = {"dataframe_split": json.loads(rows.to_json(orient="split", index=False)), "params": {"seed": 1}}
    reply = requests.post(f"{uri}/deployments/{deployment}/explain", json=body, timeout=120)
    assert reply.status_code == 200, reply.text
    answer = reply.json()
    assert answer["method"] == "kernel" and answer["background_rows"] == 20, answer
    assert answer["features"] == list(X.columns)
    assert answer["additivity_error"] < 1e-9
    def predict_proba(array):
        return pipeline.predict_proba(pd.DataFrame(array, columns=X.columns))

    explainer = shap.KernelExplainer(predict_proba, served.to_numpy(dtype=float))
    expected = np.asarray(explainer.shap_values(rows.to_numpy(dtype=float), nsamples=1000, l1_reg=0, silent=True))
    np.testing.assert_allclose(explanation_array(answer), expected, atol=1e-6, rtol=0)
