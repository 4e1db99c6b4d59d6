"""Logged models (sklearn, xgboost, autolog), the model registry and loading models back."""

from __future__ import annotations

import time
import warnings

import mlflow
import mlflow.pyfunc
import mlflow.sklearn
import mlflow.xgboost
import numpy as np
import pandas as pd
import pytest
from mlflow.entities import LoggedModelStatus
from mlflow.exceptions import MlflowException
from sklearn.datasets import make_classification
from sklearn.ensemble import RandomForestClassifier
from sklearn.linear_model import LogisticRegression

from _helpers import assert_mlflow_error, unique


@pytest.fixture(scope="module")
def data():
    features, labels = make_classification(
        n_samples=120, n_features=5, n_informative=3, n_redundant=0, random_state=7
    )
    columns = [f"f{i}" for i in range(features.shape[1])]
    return pd.DataFrame(features, columns=columns), labels


@pytest.fixture(scope="module")
def logistic(data):
    features, labels = data
    return LogisticRegression(max_iter=200).fit(features, labels)


def _assert_same_predictions(loaded, original, features):
    got = np.asarray(loaded.predict(features))
    want = np.asarray(original.predict(features))
    assert got.shape == want.shape
    np.testing.assert_allclose(got.astype(float), want.astype(float))


@pytest.fixture
def logged_sklearn(client, experiment_id, data, logistic):
    """A finished run with a logged LogisticRegression; returns (run_id, ModelInfo)."""
    features, labels = data
    with mlflow.start_run(run_name="train-logreg") as run:
        mlflow.log_params({"C": logistic.C, "max_iter": 200})
        mlflow.log_metric("acc", float(logistic.score(features, labels)))
        info = mlflow.sklearn.log_model(logistic, name="model", input_example=features.head(3))
    return run.info.run_id, info


# --------------------------------------------------------------------------------------
# Logged models
# --------------------------------------------------------------------------------------


def test_sklearn_log_model_and_load(client, experiment_id, data, logistic, logged_sklearn):
    features, _ = data
    run_id, info = logged_sklearn
    assert info.model_id.startswith("m-")
    assert info.model_uri == f"models:/{info.model_id}"
    assert info.run_id == run_id

    model = mlflow.get_logged_model(info.model_id)
    assert model.name == "model"
    assert model.experiment_id == experiment_id
    assert model.source_run_id == run_id
    assert model.status == LoggedModelStatus.READY
    assert model.artifact_location.startswith("mlflow-artifacts:/")
    assert model.params.get("C") == str(logistic.C)

    run = client.get_run(run_id)
    assert [o.model_id for o in run.outputs.model_outputs] == [info.model_id]

    artifact_names = {f.path for f in client.list_logged_model_artifacts(info.model_id)} if hasattr(
        client, "list_logged_model_artifacts"
    ) else {f.path.rsplit("/", 1)[-1] for f in mlflow.artifacts.list_artifacts(model.artifact_location)}
    assert {"MLmodel", "requirements.txt", "input_example.json"} <= artifact_names

    found = mlflow.search_logged_models(experiment_ids=[experiment_id], filter_string="name = 'model'", output_format="list")
    assert [m.model_id for m in found] == [info.model_id]

    _assert_same_predictions(mlflow.pyfunc.load_model(info.model_uri), logistic, features)
    native = mlflow.sklearn.load_model(info.model_uri)
    np.testing.assert_allclose(native.predict_proba(features), logistic.predict_proba(features))


def test_load_model_from_runs_uri(logged_sklearn, data, logistic):
    features, _ = data
    run_id, _ = logged_sklearn
    _assert_same_predictions(mlflow.pyfunc.load_model(f"runs:/{run_id}/model"), logistic, features)


def test_xgboost_log_model_and_load(experiment_id, data):
    xgboost = pytest.importorskip("xgboost")
    features, labels = data
    clf = xgboost.XGBClassifier(n_estimators=8, max_depth=3, learning_rate=0.3, n_jobs=1)
    clf.fit(features, labels)
    with mlflow.start_run():
        info = mlflow.xgboost.log_model(clf, name="xgb-model", input_example=features.head(2))
    native = mlflow.xgboost.load_model(info.model_uri)
    np.testing.assert_allclose(native.predict_proba(features), clf.predict_proba(features), rtol=1e-6)
    _assert_same_predictions(mlflow.pyfunc.load_model(info.model_uri), clf, features)


def test_sklearn_autolog(client, experiment_id, data):
    features, labels = data
    mlflow.sklearn.autolog(log_input_examples=False, silent=True)
    try:
        with mlflow.start_run() as run:
            forest = RandomForestClassifier(n_estimators=5, max_depth=3, random_state=0, n_jobs=1)
            forest.fit(features, labels)
    finally:
        mlflow.sklearn.autolog(disable=True)

    finished = client.get_run(run.info.run_id)
    assert finished.info.status == "FINISHED"
    assert finished.data.params["n_estimators"] == "5"
    assert finished.data.params["max_depth"] == "3"
    assert finished.data.metrics["training_accuracy_score"] == pytest.approx(forest.score(features, labels))
    assert "training_f1_score" in finished.data.metrics
    assert finished.data.tags["estimator_name"] == "RandomForestClassifier"

    (output,) = finished.outputs.model_outputs
    model = mlflow.get_logged_model(output.model_id)
    assert model.source_run_id == run.info.run_id
    loaded = mlflow.pyfunc.load_model(f"models:/{output.model_id}")
    _assert_same_predictions(loaded, forest, features)


# --------------------------------------------------------------------------------------
# Model registry
# --------------------------------------------------------------------------------------


def test_registry_full_flow(client, experiment_id, data, logistic, logged_sklearn):
    features, labels = data
    run_id, info = logged_sklearn
    name = unique("registry-model")

    # Version 1 from the logged model's URI, version 2 from the run-relative URI.
    v1 = mlflow.register_model(info.model_uri, name)
    assert (v1.name, v1.version) == (name, "1")
    assert v1.status == "READY"
    assert v1.current_stage == "None"
    assert v1.run_id == run_id

    v2 = mlflow.register_model(f"runs:/{run_id}/model", name)
    assert v2.version == "2"
    assert v2.run_id == run_id

    # A third version from a different model, to check that aliases pick the right one.
    forest = RandomForestClassifier(n_estimators=4, random_state=1, n_jobs=1).fit(features, labels)
    with mlflow.start_run():
        forest_info = mlflow.sklearn.log_model(
            forest,
            name="forest",
            registered_model_name=name,
            # skops (the default format) refuses tree internals unless they are trusted.
            skops_trusted_types=["sklearn.tree._tree.Tree"],
        )
    assert str(forest_info.registered_model_version) == "3"

    registered = client.get_registered_model(name)
    assert registered.name == name
    assert registered.creation_timestamp > 0

    # Aliases.
    client.set_registered_model_alias(name, "champion", "1")
    client.set_registered_model_alias(name, "challenger", "3")
    champion = client.get_model_version_by_alias(name, "champion")
    assert champion.version == "1"
    assert "champion" in champion.aliases
    assert client.get_registered_model(name).aliases == {"champion": "1", "challenger": "3"}
    assert client.get_model_version(name, "3").aliases == ["challenger"]
    client.set_registered_model_alias(name, "champion", "2")  # move it
    assert client.get_model_version_by_alias(name, "champion").version == "2"
    assert client.get_model_version(name, "1").aliases == []
    client.delete_registered_model_alias(name, "challenger")
    with pytest.raises(MlflowException) as excinfo:
        client.get_model_version_by_alias(name, "challenger")
    assert excinfo.value.error_code in ("RESOURCE_DOES_NOT_EXIST", "INVALID_PARAMETER_VALUE")
    assert client.get_registered_model(name).aliases == {"champion": "2"}

    # Stages (deprecated in the client but still supported).
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        staged = client.transition_model_version_stage(name, "1", "Staging")
        assert staged.current_stage == "Staging"
        client.transition_model_version_stage(name, "2", "Production")
        latest_staging = client.get_latest_versions(name, stages=["Staging"])
        assert [mv.version for mv in latest_staging] == ["1"]
        latest = {mv.current_stage: mv.version for mv in client.get_latest_versions(name)}
        assert latest == {"Staging": "1", "Production": "2", "None": "3"}
        client.transition_model_version_stage(name, "3", "Production", archive_existing_versions=True)
        assert client.get_model_version(name, "2").current_stage == "Archived"
        assert client.get_model_version(name, "3").current_stage == "Production"

    # Descriptions.
    updated = client.update_model_version(name, "1", description="first cut")
    assert updated.description == "first cut"
    assert client.get_model_version(name, "1").description == "first cut"
    client.update_registered_model(name, description="a registry test model")
    assert client.get_registered_model(name).description == "a registry test model"

    # Tags on the registered model and on versions.
    client.set_registered_model_tag(name, "owner", "team-a")
    client.set_registered_model_tag(name, "temp", "x")
    client.delete_registered_model_tag(name, "temp")
    assert client.get_registered_model(name).tags == {"owner": "team-a"}
    client.set_model_version_tag(name, "2", "validated", "true")
    client.set_model_version_tag(name, "2", "temp", "x")
    client.delete_model_version_tag(name, "2", "temp")
    assert client.get_model_version(name, "2").tags == {"validated": "true"}

    # Download URIs resolve to the logged model's artifact location.
    logged_location = mlflow.get_logged_model(info.model_id).artifact_location
    assert client.get_model_version_download_uri(name, "1") == logged_location
    assert client.get_model_version_download_uri(name, "2") == logged_location

    # Searches.
    versions = client.search_model_versions(f"name = '{name}'", order_by=["version_number DESC"])
    assert [mv.version for mv in versions] == ["3", "2", "1"]
    versions = client.search_model_versions(f"name = '{name}' and tag.validated = 'true'")
    assert [mv.version for mv in versions] == ["2"]
    versions = client.search_model_versions(f"run_id = '{run_id}'", order_by=["version_number ASC"])
    assert [(mv.name, mv.version) for mv in versions] == [(name, "1"), (name, "2")]
    versions = client.search_model_versions(f"name = '{name}' and version_number >= 2", order_by=["version_number"])
    assert [mv.version for mv in versions] == ["2", "3"]
    prefix = name.rsplit("-", 1)[0]
    models = client.search_registered_models(filter_string=f"name LIKE '{prefix}-%' and tags.owner = 'team-a'")
    assert [m.name for m in models] == [name]
    assert client.search_registered_models(filter_string=f"name = '{name}x'") == []

    # Loading by alias, by version number and by logged-model id gives the same predictions.
    _assert_same_predictions(mlflow.pyfunc.load_model(f"models:/{name}/1"), logistic, features)
    _assert_same_predictions(mlflow.pyfunc.load_model(f"models:/{name}@champion"), logistic, features)
    _assert_same_predictions(mlflow.pyfunc.load_model(f"models:/{name}/3"), forest, features)
    _assert_same_predictions(mlflow.pyfunc.load_model(f"models:/{info.model_id}"), logistic, features)
    _assert_same_predictions(mlflow.sklearn.load_model(f"models:/{name}/Production"), forest, features)

    # Rename: the versions follow the model, the old name is gone.
    new_name = unique("renamed-model")
    client.rename_registered_model(name, new_name)  # returns None despite its annotation
    assert client.get_registered_model(new_name).name == new_name
    assert client.get_model_version(new_name, "2").tags == {"validated": "true"}
    assert client.get_model_version_by_alias(new_name, "champion").version == "2"
    with pytest.raises(MlflowException) as excinfo:
        client.get_registered_model(name)
    assert_mlflow_error(excinfo, "RESOURCE_DOES_NOT_EXIST", 404)
    _assert_same_predictions(mlflow.pyfunc.load_model(f"models:/{new_name}@champion"), logistic, features)

    # Deleting a version, then the model.
    client.delete_model_version(new_name, "1")
    remaining = client.search_model_versions(f"name = '{new_name}'", order_by=["version_number ASC"])
    assert [mv.version for mv in remaining] == ["2", "3"]
    client.delete_registered_model(new_name)
    assert client.search_registered_models(filter_string=f"name = '{new_name}'") == []


def test_create_registered_model_and_version_directly(client, logged_sklearn):
    run_id, info = logged_sklearn
    name = unique("direct-model")
    created = client.create_registered_model(name, tags={"k": "v"}, description="made by hand")
    assert created.name == name
    assert created.tags == {"k": "v"}
    assert created.description == "made by hand"
    mv = client.create_model_version(name, info.model_uri, run_id=run_id, model_id=info.model_id, description="v1")
    assert mv.version == "1"
    assert mv.description == "v1"
    deadline = time.time() + 30
    while client.get_model_version(name, "1").status != "READY" and time.time() < deadline:
        time.sleep(0.5)
    assert client.get_model_version(name, "1").status == "READY"
    assert [m.name for m in client.search_registered_models(filter_string=f"name = '{name}'")] == [name]


def test_registry_search_pagination(client, logged_sklearn):
    run_id, info = logged_sklearn
    marker = unique("paged-model")
    names = [f"{marker}-{i}" for i in range(5)]
    for name in names:
        client.create_registered_model(name)
    for _ in range(5):
        client.create_model_version(names[0], info.model_uri, run_id=run_id, model_id=info.model_id)

    seen, token = [], None
    while True:
        page = client.search_registered_models(
            filter_string=f"name LIKE '{marker}-%'", order_by=["name ASC"], max_results=2, page_token=token
        )
        seen += [m.name for m in page]
        token = page.token
        if not token:
            break
    assert seen == names

    seen, token = [], None
    while True:
        page = client.search_model_versions(
            f"name = '{names[0]}'", order_by=["version_number DESC"], max_results=2, page_token=token
        )
        seen += [mv.version for mv in page]
        token = page.token
        if not token:
            break
    assert seen == ["5", "4", "3", "2", "1"]
