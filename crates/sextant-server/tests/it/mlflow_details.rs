//! Small answers that MLflow 3.17.2's server gives and its own test suite
//! checks, each read from a real MLflow server: empty strings where MLflow
//! stores them, the storage location of a copied version, the order of
//! version searches, the points bulk-interval history keeps, the
//! `datasets` clause of logged-model searches, the `mlflow.modelVersions`
//! tag, and relative artifact locations.

use serde_json::{json, Value};

use crate::helpers::TestApp;

crate::backend_tests!(
    registry_answers_match_mlflows,
    logged_models_match_mlflows,
    bulk_interval_history_keeps_mlflows_points,
    relative_artifact_locations_become_absolute,
    listing_outside_a_file_root_is_refused
);

async fn register(app: &TestApp, name: &str, source: &str, run: &str) -> Value {
    app.post("registered-models/create", json!({ "name": name }))
        .await;
    app.post(
        "model-versions/create",
        json!({ "name": name, "source": source, "run_id": run }),
    )
    .await
    .ok()["model_version"]
        .clone()
}

async fn registry_answers_match_mlflows(app: TestApp) {
    let experiment = app.create_experiment("details").await;
    let run = app.create_run(&experiment, "r").await;
    let version = register(&app, "base", &format!("runs:/{run}/model"), &run).await;
    // MLflow stores the client's empty strings and answers with them.
    assert_eq!(version["description"], "", "{version}");
    assert_eq!(version["run_link"], "", "{version}");
    // A copy lives where the version it copies lives.
    let original = app
        .get(
            "model-versions/get-download-uri",
            &[("name", "base"), ("version", "1")],
        )
        .await
        .ok()["artifact_uri"]
        .clone();
    app.post(
        "registered-models/alias",
        json!({"name": "base", "alias": "champion", "version": "1"}),
    )
    .await
    .ok();
    for (copy, source) in [
        ("copy", "models:/base/1"),
        ("by-alias", "models:/base@champion"),
    ] {
        register(&app, copy, source, &run).await;
        let uri = app
            .get(
                "model-versions/get-download-uri",
                &[("name", copy), ("version", "1")],
            )
            .await
            .ok()["artifact_uri"]
            .clone();
        assert_eq!(uri, original, "{source}");
    }
    // Ties of an explicit order fall back to name ascending, then version
    // descending (not to the latest change first).
    for name in ["tie-b", "tie-a", "tie-c"] {
        register(&app, name, &format!("runs:/{run}/model"), &run).await;
    }
    let found = app
        .get(
            "model-versions/search",
            &[
                ("filter", "name LIKE 'tie-%'"),
                ("order_by", "version_number DESC"),
            ],
        )
        .await
        .ok();
    let names: Vec<&str> = found["model_versions"]
        .as_array()
        .unwrap()
        .iter()
        .map(|v| v["name"].as_str().unwrap())
        .collect();
    assert_eq!(names, ["tie-a", "tie-b", "tie-c"]);
}

async fn logged_models_match_mlflows(app: TestApp) {
    let experiment = app.create_experiment("logged").await;
    let run = app.create_run(&experiment, "r").await;
    // A source run this server has never seen is recorded as given.
    let elsewhere = app
        .post(
            "logged-models",
            json!({"experiment_id": experiment, "source_run_id": "0".repeat(32)}),
        )
        .await
        .ok();
    assert_eq!(elsewhere["model"]["info"]["source_run_id"], "0".repeat(32));
    let model = app
        .post(
            "logged-models",
            json!({"experiment_id": experiment, "source_run_id": run, "name": "lm"}),
        )
        .await
        .ok();
    let model_id = model["model"]["info"]["model_id"]
        .as_str()
        .unwrap()
        .to_string();
    app.post(
        "runs/log-batch",
        json!({"run_id": run, "metrics": [
            {"key": "acc", "value": 0.9, "timestamp": 1, "step": 0, "model_id": model_id, "dataset_name": "eval", "dataset_digest": "d1"},
        ]}),
    )
    .await
    .ok();
    // A logged model's metrics say which run logged them.
    let got = app
        .get(&format!("logged-models/{model_id}"), &[])
        .await
        .ok();
    assert_eq!(got["model"]["data"]["metrics"][0]["run_id"], run, "{got}");
    // The `datasets` clause: only metrics on those datasets count.
    let search = |body: Value| {
        let app = &app;
        async move { app.post("logged-models/search", body).await }
    };
    let ids = |reply: Value| -> Vec<String> {
        reply["models"]
            .as_array()
            .map(|models| {
                models
                    .iter()
                    .map(|m| m["info"]["model_id"].as_str().unwrap().to_string())
                    .collect()
            })
            .unwrap_or_default()
    };
    let on_eval = search(json!({"experiment_ids": [experiment], "datasets": [{"dataset_name": "eval", "dataset_digest": "d1"}]})).await.ok();
    assert_eq!(ids(on_eval), [model_id.clone()]);
    let on_other =
        search(json!({"experiment_ids": [experiment], "datasets": [{"dataset_name": "other"}]}))
            .await
            .ok();
    assert!(ids(on_other).is_empty());
    let filtered_other = search(json!({"experiment_ids": [experiment], "filter": "metrics.acc > 0.5", "datasets": [{"dataset_name": "other"}]})).await.ok();
    assert!(ids(filtered_other).is_empty());
    let filtered_eval = search(json!({"experiment_ids": [experiment], "filter": "metrics.acc > 0.5", "datasets": [{"dataset_name": "eval"}]})).await.ok();
    assert_eq!(ids(filtered_eval), [model_id.clone()]);
    let ordered = search(json!({"experiment_ids": [experiment], "order_by": [{"field_name": "metrics.acc", "ascending": false}], "datasets": [{"dataset_name": "eval"}]})).await.ok();
    assert_eq!(ids(ordered), [model_id.clone()]);
    search(json!({"experiment_ids": [experiment], "datasets": [{"dataset_digest": "d1"}]}))
        .await
        .error(400, "INVALID_PARAMETER_VALUE");
    // Registering a version from the model records it on the model, in
    // the text MLflow writes.
    app.post("registered-models/create", json!({"name": "from-lm"}))
        .await
        .ok();
    for _ in 0..2 {
        app.post(
            "model-versions/create",
            json!({"name": "from-lm", "source": format!("models:/{model_id}"), "model_id": model_id}),
        )
        .await
        .ok();
    }
    let got = app
        .get(&format!("logged-models/{model_id}"), &[])
        .await
        .ok();
    let tag = got["model"]["info"]["tags"]
        .as_array()
        .unwrap()
        .iter()
        .find(|t| t["key"] == "mlflow.modelVersions")
        .cloned()
        .unwrap_or_else(|| panic!("no mlflow.modelVersions tag: {got}"));
    assert_eq!(
        tag["value"],
        r#"[{"name": "from-lm", "version": 1}, {"name": "from-lm", "version": 2}]"#
    );
}

async fn bulk_interval_history_keeps_mlflows_points(app: TestApp) {
    let experiment = app.create_experiment("bulk").await;
    let run = app.create_run(&experiment, "r").await;
    let points: Vec<Value> = (0..1000)
        .map(|step| json!({"key": "loss", "value": step as f64, "timestamp": 1000 + step, "step": step}))
        .collect();
    app.post("runs/log-batch", json!({"run_id": run, "metrics": points}))
        .await
        .ok();
    let steps = |reply: Value| -> Vec<i64> {
        reply["metrics"]
            .as_array()
            .unwrap()
            .iter()
            .map(|m| m["step"].as_i64().unwrap())
            .collect()
    };
    let ten = app
        .get(
            "metrics/get-history-bulk-interval",
            &[
                ("run_ids", &run),
                ("metric_key", "loss"),
                ("max_results", "10"),
            ],
        )
        .await
        .ok();
    assert_eq!(steps(ten), [0, 100, 200, 300, 400, 500, 600, 700, 800, 999]);
    let range = app
        .get(
            "metrics/get-history-bulk-interval",
            &[
                ("run_ids", &run),
                ("metric_key", "loss"),
                ("max_results", "10"),
                ("start_step", "100"),
                ("end_step", "200"),
            ],
        )
        .await
        .ok();
    assert_eq!(
        steps(range),
        [100, 111, 121, 131, 141, 151, 161, 171, 181, 200]
    );
    // Without max_results, up to 2,500 points: here all of them.
    let all = app
        .get(
            "metrics/get-history-bulk-interval",
            &[("run_ids", &run), ("metric_key", "loss")],
        )
        .await
        .ok();
    assert_eq!(steps(all).len(), 1000);
    for query in [
        vec![("start_step", "5")],
        vec![("start_step", "9"), ("end_step", "3")],
        vec![("max_results", "2501")],
    ] {
        let mut full = vec![("run_ids", run.as_str()), ("metric_key", "loss")];
        full.extend(query.iter().copied());
        app.get("metrics/get-history-bulk-interval", &full)
            .await
            .error(400, "INVALID_PARAMETER_VALUE");
    }
}

async fn relative_artifact_locations_become_absolute(app: TestApp) {
    let created = app
        .post(
            "experiments/create",
            json!({"name": "relative", "artifact_location": "relative/place"}),
        )
        .await
        .ok();
    let experiment = app
        .get(
            "experiments/get",
            &[("experiment_id", created["experiment_id"].as_str().unwrap())],
        )
        .await
        .ok();
    let location = experiment["experiment"]["artifact_location"]
        .as_str()
        .unwrap()
        .to_string();
    let expected = std::env::current_dir().unwrap().join("relative/place");
    assert_eq!(location, expected.to_string_lossy());
}

async fn listing_outside_a_file_root_is_refused(app: TestApp) {
    let root = tempfile::tempdir().unwrap();
    let created = app
        .post(
            "experiments/create",
            json!({"name": "file-root", "artifact_location": format!("file://{}", root.path().display())}),
        )
        .await
        .ok();
    let run = app
        .create_run(created["experiment_id"].as_str().unwrap(), "r")
        .await;
    for path in ["../x", "a/../../x", "/etc"] {
        app.get("artifacts/list", &[("run_id", &run), ("path", path)])
            .await
            .error(400, "INVALID_PARAMETER_VALUE");
    }
    app.get("artifacts/list", &[("run_id", &run), ("path", "x")])
        .await
        .ok();
}
