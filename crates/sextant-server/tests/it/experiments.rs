use serde_json::json;

use crate::backend_tests;
use crate::helpers::{value_of, TestApp};

backend_tests!(
    default_experiment_exists,
    experiment_lifecycle,
    experiment_search_filters_and_pages
);

async fn default_experiment_exists(app: TestApp) {
    let body = app
        .get("experiments/get", &[("experiment_id", "0")])
        .await
        .ok();
    assert_eq!(body["experiment"]["name"], "Default");
    assert_eq!(
        body["experiment"]["artifact_location"],
        "mlflow-artifacts:/0"
    );
    let message = app
        .post("experiments/delete", json!({"experiment_id": "0"}))
        .await
        .error(400, "INVALID_PARAMETER_VALUE");
    assert!(message.contains("default experiment"), "{message}");
}

async fn experiment_lifecycle(app: TestApp) {
    let missing = app
        .get(
            "experiments/get-by-name",
            &[("experiment_name", "lifecycle")],
        )
        .await;
    missing.error(404, "RESOURCE_DOES_NOT_EXIST");
    let id = app.create_experiment("lifecycle").await;
    app.post("experiments/create", json!({"name": "lifecycle"}))
        .await
        .error(400, "RESOURCE_ALREADY_EXISTS");

    let by_name = app
        .get(
            "experiments/get-by-name",
            &[("experiment_name", "lifecycle")],
        )
        .await
        .ok();
    assert_eq!(by_name["experiment"]["experiment_id"], id.as_str());
    assert_eq!(
        by_name["experiment"]["artifact_location"],
        format!("mlflow-artifacts:/{id}")
    );

    app.post(
        "experiments/set-experiment-tag",
        json!({"experiment_id": id, "key": "team", "value": "a"}),
    )
    .await
    .ok();
    app.post(
        "experiments/set-experiment-tag",
        json!({"experiment_id": id, "key": "team", "value": "b"}),
    )
    .await
    .ok();
    let experiment = app
        .get("experiments/get", &[("experiment_id", &id)])
        .await
        .ok()["experiment"]
        .clone();
    assert_eq!(value_of(&experiment["tags"], "team"), Some(&json!("b")));
    app.post(
        "experiments/delete-experiment-tag",
        json!({"experiment_id": id, "key": "team"}),
    )
    .await
    .ok();

    app.post(
        "experiments/update",
        json!({"experiment_id": id, "new_name": "renamed"}),
    )
    .await
    .ok();
    let renamed = app
        .get("experiments/get", &[("experiment_id", &id)])
        .await
        .ok();
    assert_eq!(renamed["experiment"]["name"], "renamed");

    let run_id = app.create_run(&id, "r").await;
    app.post("experiments/delete", json!({"experiment_id": id}))
        .await
        .ok();
    let deleted = app
        .get("experiments/get", &[("experiment_id", &id)])
        .await
        .ok();
    assert_eq!(deleted["experiment"]["lifecycle_stage"], "deleted");
    assert_eq!(
        app.get_run(&run_id).await["info"]["lifecycle_stage"],
        "deleted"
    );
    // Writes under a deleted experiment are refused.
    app.post("runs/create", json!({"experiment_id": id}))
        .await
        .error(400, "INVALID_PARAMETER_VALUE");
    app.post("experiments/restore", json!({"experiment_id": id}))
        .await
        .ok();
    assert_eq!(
        app.get_run(&run_id).await["info"]["lifecycle_stage"],
        "active"
    );
}

async fn experiment_search_filters_and_pages(app: TestApp) {
    for idx in 0..7 {
        let id = app.create_experiment(&format!("search-exp-{idx}")).await;
        if idx % 2 == 0 {
            app.post(
                "experiments/set-experiment-tag",
                json!({"experiment_id": id, "key": "even", "value": "yes"}),
            )
            .await
            .ok();
        }
    }
    let even = app
        .post(
            "experiments/search",
            json!({"filter": "tags.even = 'yes'", "max_results": 100}),
        )
        .await
        .ok();
    assert_eq!(even["experiments"].as_array().map(Vec::len), Some(4));

    let like = app
        .get(
            "experiments/search",
            &[
                ("filter", "name LIKE 'search-exp-%'"),
                ("order_by", "name DESC"),
            ],
        )
        .await
        .ok();
    let names: Vec<&str> = like["experiments"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["name"].as_str().unwrap())
        .collect();
    assert_eq!(names.first(), Some(&"search-exp-6"));
    assert_eq!(names.len(), 7);

    let mut seen = Vec::new();
    let mut token: Option<String> = None;
    loop {
        let mut body = json!({"filter": "name LIKE 'search-exp-%'", "max_results": 3});
        if let Some(token) = &token {
            body["page_token"] = json!(token);
        }
        let page = app.post("experiments/search", body).await.ok();
        for experiment in page["experiments"].as_array().unwrap() {
            seen.push(experiment["name"].as_str().unwrap().to_string());
        }
        match page["next_page_token"].as_str() {
            Some(next) => token = Some(next.to_string()),
            None => break,
        }
    }
    seen.sort();
    seen.dedup();
    assert_eq!(seen.len(), 7);
}
