use serde_json::json;

use crate::backend_tests;
use crate::helpers::TestApp;

backend_tests!(
    registry_versions_aliases_and_stages,
    registry_search_and_rename,
    model_version_sources_must_lie_inside_their_run,
);

async fn registry_versions_aliases_and_stages(app: TestApp) {
    let experiment_id = app.create_experiment("registry").await;
    let run_id = app.create_run(&experiment_id, "train").await;
    let model = app
        .post(
            "logged-models",
            json!({"experiment_id": experiment_id, "name": "model", "source_run_id": run_id}),
        )
        .await
        .ok();
    let model_id = model["model"]["info"]["model_id"]
        .as_str()
        .unwrap()
        .to_string();
    let artifact_uri = model["model"]["info"]["artifact_uri"]
        .as_str()
        .unwrap()
        .to_string();
    assert_eq!(
        artifact_uri,
        format!("mlflow-artifacts:/{experiment_id}/models/{model_id}/artifacts")
    );

    app.post(
        "registered-models/create",
        json!({"name": "churn", "description": "d"}),
    )
    .await
    .ok();
    app.post("registered-models/create", json!({"name": "churn"}))
        .await
        .error(400, "RESOURCE_ALREADY_EXISTS");
    let v1 = app
        .post(
            "model-versions/create",
            json!({"name": "churn", "source": format!("models:/{model_id}"), "model_id": model_id}),
        )
        .await
        .ok();
    assert_eq!(v1["model_version"]["version"], "1");
    assert_eq!(v1["model_version"]["status"], "READY");
    assert_eq!(v1["model_version"]["current_stage"], "None");
    assert_eq!(
        v1["model_version"]["run_id"],
        run_id.as_str(),
        "run filled from the logged model"
    );
    let uri = app
        .get(
            "model-versions/get-download-uri",
            &[("name", "churn"), ("version", "1")],
        )
        .await
        .ok();
    assert_eq!(uri["artifact_uri"], artifact_uri.as_str());
    app.post(
        "model-versions/create",
        json!({"name": "churn", "source": "s3://bucket/other"}),
    )
    .await
    .ok();
    let v3 = app
        .post(
            "model-versions/create",
            json!({"name": "churn", "source": "s3://bucket/abc/model"}),
        )
        .await
        .ok();
    assert_eq!(v3["model_version"]["version"], "3");
    let uri = app
        .get(
            "model-versions/get-download-uri",
            &[("name", "churn"), ("version", "2")],
        )
        .await
        .ok();
    assert_eq!(uri["artifact_uri"], "s3://bucket/other");

    app.post(
        "registered-models/alias",
        json!({"name": "churn", "alias": "champion", "version": "1"}),
    )
    .await
    .ok();
    app.post(
        "registered-models/alias",
        json!({"name": "churn", "alias": "latest", "version": "1"}),
    )
    .await
    .error(400, "INVALID_PARAMETER_VALUE");
    let by_alias = app
        .get(
            "registered-models/alias",
            &[("name", "churn"), ("alias", "champion")],
        )
        .await
        .ok();
    assert_eq!(by_alias["model_version"]["version"], "1");
    assert_eq!(by_alias["model_version"]["aliases"], json!(["champion"]));
    // Moving the alias.
    app.post(
        "registered-models/alias",
        json!({"name": "churn", "alias": "champion", "version": "2"}),
    )
    .await
    .ok();
    let model = app
        .get("registered-models/get", &[("name", "churn")])
        .await
        .ok();
    assert_eq!(
        model["registered_model"]["aliases"],
        json!([{"alias": "champion", "version": "2"}])
    );
    app.delete(
        "registered-models/alias",
        json!({"name": "churn", "alias": "champion"}),
    )
    .await
    .ok();
    app.get(
        "registered-models/alias",
        &[("name", "churn"), ("alias", "champion")],
    )
    .await
    .error(404, "RESOURCE_DOES_NOT_EXIST");

    let staged = app
        .post("model-versions/transition-stage", json!({"name": "churn", "version": "1", "stage": "production", "archive_existing_versions": false}))
        .await
        .ok();
    assert_eq!(staged["model_version"]["current_stage"], "Production");
    app.post("model-versions/transition-stage", json!({"name": "churn", "version": "2", "stage": "Production", "archive_existing_versions": true}))
        .await
        .ok();
    let v1 = app
        .get("model-versions/get", &[("name", "churn"), ("version", "1")])
        .await
        .ok();
    assert_eq!(v1["model_version"]["current_stage"], "Archived");
    let latest = app
        .post(
            "registered-models/get-latest-versions",
            json!({"name": "churn", "stages": ["Production"]}),
        )
        .await
        .ok();
    assert_eq!(latest["model_versions"][0]["version"], "2");
    let latest_all = app
        .get(
            "registered-models/get-latest-versions",
            &[("name", "churn")],
        )
        .await
        .ok();
    assert_eq!(
        latest_all["model_versions"].as_array().map(Vec::len),
        Some(3),
        "one per stage: Archived, Production, None"
    );
    app.post("model-versions/transition-stage", json!({"name": "churn", "version": "1", "stage": "Prod", "archive_existing_versions": false}))
        .await
        .error(400, "INVALID_PARAMETER_VALUE");

    app.patch(
        "model-versions/update",
        json!({"name": "churn", "version": "3", "description": "third"}),
    )
    .await
    .ok();
    app.post(
        "model-versions/set-tag",
        json!({"name": "churn", "version": "3", "key": "validated", "value": "yes"}),
    )
    .await
    .ok();
    let v3 = app
        .get("model-versions/get", &[("name", "churn"), ("version", "3")])
        .await
        .ok();
    assert_eq!(v3["model_version"]["description"], "third");
    assert_eq!(
        v3["model_version"]["tags"],
        json!([{"key": "validated", "value": "yes"}])
    );
    app.delete(
        "model-versions/delete",
        json!({"name": "churn", "version": "3"}),
    )
    .await
    .ok();
    app.get("model-versions/get", &[("name", "churn"), ("version", "3")])
        .await
        .error(404, "RESOURCE_DOES_NOT_EXIST");
    let v4 = app
        .post(
            "model-versions/create",
            json!({"name": "churn", "source": "s3://bucket/abc/model"}),
        )
        .await
        .ok();
    assert_eq!(
        v4["model_version"]["version"], "4",
        "deleted version numbers are not reused"
    );
    app.get("model-versions/get", &[("name", "nope"), ("version", "1")])
        .await
        .error(404, "RESOURCE_DOES_NOT_EXIST");
}

async fn registry_search_and_rename(app: TestApp) {
    for name in ["fraud-a", "fraud-b", "churn-x"] {
        app.post("registered-models/create", json!({"name": name, "tags": [{"key": "team", "value": name.split('-').next().unwrap()}]})).await.ok();
        app.post(
            "model-versions/create",
            json!({"name": name, "source": "s3://bucket/r/model"}),
        )
        .await
        .ok();
    }
    app.post(
        "registered-models/set-tag",
        json!({"name": "fraud-b", "key": "mlflow.prompt.is_prompt", "value": "true"}),
    )
    .await
    .ok();
    // The clause the MLflow client appends to every registered-model search.
    let found = app
        .get(
            "registered-models/search",
            &[(
                "filter",
                "name LIKE 'fraud%' AND tag.`mlflow.prompt.is_prompt` != 'true'",
            )],
        )
        .await
        .ok();
    let names: Vec<&str> = found["registered_models"]
        .as_array()
        .unwrap()
        .iter()
        .map(|m| m["name"].as_str().unwrap())
        .collect();
    assert_eq!(names, vec!["fraud-a"]);
    let by_tag = app
        .get(
            "registered-models/search",
            &[("filter", "tags.team = 'churn'")],
        )
        .await
        .ok();
    assert_eq!(by_tag["registered_models"][0]["name"], "churn-x");

    let versions = app
        .get(
            "model-versions/search",
            &[
                ("filter", "name IN ('fraud-a', 'churn-x')"),
                ("order_by", "name DESC"),
                ("max_results", "10"),
            ],
        )
        .await
        .ok();
    let names: Vec<&str> = versions["model_versions"]
        .as_array()
        .unwrap()
        .iter()
        .map(|v| v["name"].as_str().unwrap())
        .collect();
    assert_eq!(names, vec!["fraud-a", "churn-x"]);

    let renamed = app
        .post(
            "registered-models/rename",
            json!({"name": "churn-x", "new_name": "churn-y"}),
        )
        .await
        .ok();
    assert_eq!(
        renamed["registered_model"]["latest_versions"][0]["name"],
        "churn-y"
    );
    app.get("registered-models/get", &[("name", "churn-x")])
        .await
        .error(404, "RESOURCE_DOES_NOT_EXIST");
    app.post(
        "registered-models/rename",
        json!({"name": "churn-y", "new_name": "fraud-a"}),
    )
    .await
    .error(400, "RESOURCE_ALREADY_EXISTS");
    app.delete("registered-models/delete", json!({"name": "churn-y"}))
        .await
        .ok();
    let gone = app
        .get("model-versions/search", &[("filter", "name = 'churn-y'")])
        .await
        .ok();
    assert_eq!(gone["model_versions"].as_array().map(Vec::len), Some(0));
}

/// Sources are checked as MLflow's server checks them (its tests
/// `test_create_model_version_with_path_source`, `_with_non_local_source`
/// and `_with_file_uri`), with the artifact proxy's URIs read by the parser
/// serving uses: a source must lie inside the run or logged model named
/// beside it.
async fn model_version_sources_must_lie_inside_their_run(app: TestApp) {
    app.post("registered-models/create", json!({"name": "sources"}))
        .await
        .ok();
    let experiment = app.create_experiment("sources").await;
    let run_id = app.create_run(&experiment, "r").await;
    let other_experiment = app.create_experiment("elsewhere").await;
    let other_run = app.create_run(&other_experiment, "o").await;
    let artifact_uri = app.get_run(&run_id).await["info"]["artifact_uri"]
        .as_str()
        .unwrap()
        .to_string();
    assert!(
        artifact_uri.starts_with("mlflow-artifacts:/"),
        "{artifact_uri}"
    );
    let create = |source: String, run: Option<&str>| {
        let mut body = json!({"name": "sources", "source": source});
        if let Some(run) = run {
            body["run_id"] = json!(run);
        }
        app.post("model-versions/create", body)
    };
    for accepted in [
        artifact_uri.clone(),
        format!("{artifact_uri}/model"),
        format!("{artifact_uri}/model/"),
        artifact_uri.replacen("mlflow-artifacts:/", "mlflow-artifacts://host:9000/", 1),
        format!("runs:/{run_id}/model"),
        "s3://bucket/models/model".to_string(),
    ] {
        create(accepted.clone(), Some(&run_id)).await.ok();
    }
    let other_root = format!("mlflow-artifacts:/{other_experiment}/{other_run}/artifacts/model");
    for (refused, run, says) in [
        // Local paths: never inside a run whose files are behind the proxy.
        (
            "/tmp".to_string(),
            Some(run_id.as_str()),
            "To use a local path",
        ),
        ("/tmp".to_string(), None, "To use a local path"),
        (
            "file:///tmp/model".to_string(),
            Some(run_id.as_str()),
            "To use a local path",
        ),
        (
            format!("file://{artifact_uri}"),
            None,
            "To use a local path",
        ),
        // Outside the named run, or no run named.
        (
            other_root.clone(),
            Some(run_id.as_str()),
            "must identify the resource",
        ),
        (
            format!("{artifact_uri}/model"),
            None,
            "must identify the resource",
        ),
        // The host of an mlflow-artifacts URI is never a path segment.
        (
            format!("mlflow-artifacts://{experiment}/{other_experiment}/{other_run}/artifacts"),
            Some(run_id.as_str()),
            "must identify the resource",
        ),
        (
            format!("runs:/{other_run}/model"),
            Some(run_id.as_str()),
            "must identify the resource",
        ),
        (
            format!("runs://host/{run_id}/model"),
            Some(run_id.as_str()),
            "must identify the resource",
        ),
        // Relative segments, however encoded.
        (
            format!("{artifact_uri}/model/../../../"),
            Some(run_id.as_str()),
            "absolute path",
        ),
        (
            format!("{artifact_uri}/..%2f..%2fx"),
            Some(run_id.as_str()),
            "absolute path",
        ),
        (
            format!("{artifact_uri}/artifact%00"),
            Some(run_id.as_str()),
            "absolute path",
        ),
        (
            "http://host:9000/models/../../../".to_string(),
            Some(run_id.as_str()),
            "absolute path",
        ),
        (
            "s3a://bucket/a/../../b".to_string(),
            Some(run_id.as_str()),
            "absolute path",
        ),
    ] {
        let message = create(refused.clone(), run)
            .await
            .error(400, "INVALID_PARAMETER_VALUE");
        assert!(message.contains(says), "{refused} {run:?}: {message}");
    }
    // The other run's own files register from their own run.
    create(other_root, Some(&other_run)).await.ok();
}
