use serde_json::json;

use crate::backend_tests;
use crate::helpers::{value_of, TestApp};

backend_tests!(
    latest_metric_is_greatest_step_timestamp_value,
    non_finite_metric_values_round_trip,
    metric_values_round_trip_bit_for_bit,
    params_cannot_change_and_batches_are_atomic,
    run_lifecycle_and_tags,
    metric_history_pages,
    datasets_and_model_outputs,
    concurrent_logging_loses_nothing,
    refused_requests_do_not_disturb_their_group,
);

fn metric(key: &str, value: serde_json::Value, timestamp: i64, step: i64) -> serde_json::Value {
    json!({"key": key, "value": value, "timestamp": timestamp, "step": step})
}

async fn latest_metric_is_greatest_step_timestamp_value(app: TestApp) {
    let run_id = app.create_run("0", "latest").await;
    let metrics = vec![
        metric("loss", json!(0.5), 10, 2),
        metric("loss", json!(0.9), 20, 1),
        metric("loss", json!(0.3), 5, 2),
        metric("loss", json!(0.1), 10, 2),
    ];
    app.post(
        "runs/log-batch",
        json!({"run_id": run_id, "metrics": metrics}),
    )
    .await
    .ok();
    // A later request with a lower step does not replace the latest value.
    app.post(
        "runs/log-metric",
        json!({"run_id": run_id, "key": "loss", "value": 7.0, "timestamp": 99, "step": 0}),
    )
    .await
    .ok();
    let run = app.get_run(&run_id).await;
    let loss = &run["data"]["metrics"][0];
    assert_eq!(loss["key"], "loss");
    assert_eq!(
        loss["value"], 0.5,
        "(step 2, ts 10, 0.5) beats (2, 10, 0.1) and (2, 5, 0.3)"
    );
    assert_eq!(loss["step"], 2);
}

async fn non_finite_metric_values_round_trip(app: TestApp) {
    let run_id = app.create_run("0", "nan").await;
    for (step, value) in [
        (0, json!("NaN")),
        (1, json!("Infinity")),
        (2, json!("-Infinity")),
        (3, json!(1.5)),
    ] {
        app.post(
            "runs/log-metric",
            json!({"run_id": run_id, "key": "x", "value": value, "timestamp": 1, "step": step}),
        )
        .await
        .ok();
    }
    let history = app
        .get(
            "metrics/get-history",
            &[("run_id", &run_id), ("metric_key", "x")],
        )
        .await
        .ok();
    let values: Vec<&serde_json::Value> = history["metrics"]
        .as_array()
        .unwrap()
        .iter()
        .map(|m| &m["value"])
        .collect();
    assert_eq!(
        values,
        vec![
            &json!("NaN"),
            &json!("Infinity"),
            &json!("-Infinity"),
            &json!(1.5)
        ]
    );
}

async fn params_cannot_change_and_batches_are_atomic(app: TestApp) {
    let run_id = app.create_run("0", "params").await;
    app.post(
        "runs/log-parameter",
        json!({"run_id": run_id, "key": "lr", "value": "0.01"}),
    )
    .await
    .ok();
    // Logging the same value again is fine (client retries).
    app.post(
        "runs/log-parameter",
        json!({"run_id": run_id, "key": "lr", "value": "0.01"}),
    )
    .await
    .ok();
    let message = app
        .post(
            "runs/log-parameter",
            json!({"run_id": run_id, "key": "lr", "value": "0.02"}),
        )
        .await
        .error(400, "INVALID_PARAMETER_VALUE");
    assert!(
        message.contains("Changing param values is not allowed"),
        "{message}"
    );

    // A batch whose param conflicts writes nothing at all, not even its metrics.
    let batch = json!({
        "run_id": run_id,
        "metrics": [metric("m", json!(1.0), 1, 0)],
        "params": [{"key": "lr", "value": "0.5"}],
    });
    app.post("runs/log-batch", batch)
        .await
        .error(400, "INVALID_PARAMETER_VALUE");
    let run = app.get_run(&run_id).await;
    assert!(
        run["data"]["metrics"].as_array().unwrap().is_empty(),
        "half-written batch: {run}"
    );

    let too_many: Vec<_> = (0..1001)
        .map(|step| metric("m", json!(1.0), 1, step))
        .collect();
    app.post(
        "runs/log-batch",
        json!({"run_id": run_id, "metrics": too_many}),
    )
    .await
    .error(400, "INVALID_PARAMETER_VALUE");
    // Over-long values are cut to MLflow's limits, as MLflow's server does.
    let run_id = app.create_run("0", "long-values").await;
    let batch = json!({
        "run_id": run_id,
        "params": [{"key": "long", "value": "p".repeat(7000)}],
        "tags": [{"key": "long", "value": "t".repeat(9000)}],
    });
    app.post("runs/log-batch", batch).await.ok();
    let run = app.get_run(&run_id).await;
    assert_eq!(
        value_of(&run["data"]["params"], "long")
            .and_then(|v| v.as_str())
            .map(str::len),
        Some(6000)
    );
    assert_eq!(
        value_of(&run["data"]["tags"], "long")
            .and_then(|v| v.as_str())
            .map(str::len),
        Some(8000)
    );
}

async fn run_lifecycle_and_tags(app: TestApp) {
    let experiment_id = app.create_experiment("run-lifecycle").await;
    let run_id = app.create_run(&experiment_id, "first-name").await;
    let run = app.get_run(&run_id).await;
    assert_eq!(run["info"]["run_uuid"], run_id.as_str());
    assert_eq!(run["info"]["status"], "RUNNING");
    assert_eq!(
        run["info"]["artifact_uri"],
        format!("mlflow-artifacts:/{experiment_id}/{run_id}/artifacts")
    );
    assert_eq!(
        value_of(&run["data"]["tags"], "mlflow.runName"),
        Some(&json!("first-name"))
    );

    let updated = app
        .post("runs/update", json!({"run_id": run_id, "status": "FINISHED", "end_time": 1_700_000_001_000_i64, "run_name": "second"}))
        .await
        .ok();
    assert_eq!(updated["run_info"]["status"], "FINISHED");
    assert_eq!(updated["run_info"]["run_name"], "second");
    let run = app.get_run(&run_id).await;
    assert_eq!(
        value_of(&run["data"]["tags"], "mlflow.runName"),
        Some(&json!("second"))
    );

    app.post(
        "runs/set-tag",
        json!({"run_id": run_id, "key": "mlflow.runName", "value": "third"}),
    )
    .await
    .ok();
    assert_eq!(app.get_run(&run_id).await["info"]["run_name"], "third");
    app.post(
        "runs/set-tag",
        json!({"run_id": run_id, "key": "team", "value": "x"}),
    )
    .await
    .ok();
    app.post("runs/delete-tag", json!({"run_id": run_id, "key": "team"}))
        .await
        .ok();
    app.post("runs/delete-tag", json!({"run_id": run_id, "key": "team"}))
        .await
        .error(404, "RESOURCE_DOES_NOT_EXIST");

    app.post("runs/delete", json!({"run_id": run_id}))
        .await
        .ok();
    app.post(
        "runs/log-metric",
        json!({"run_id": run_id, "key": "a", "value": 1, "timestamp": 1}),
    )
    .await
    .error(400, "INVALID_PARAMETER_VALUE");
    app.post("runs/restore", json!({"run_id": run_id}))
        .await
        .ok();
    app.post(
        "runs/log-metric",
        json!({"run_id": run_id, "key": "a", "value": 1, "timestamp": 1}),
    )
    .await
    .ok();
    app.get(
        "runs/get",
        &[("run_id", "0123456789abcdef0123456789abcdef")],
    )
    .await
    .error(404, "RESOURCE_DOES_NOT_EXIST");
}

async fn metric_history_pages(app: TestApp) {
    let run_id = app.create_run("0", "history").await;
    let metrics: Vec<_> = (0..250)
        .rev()
        .map(|step| metric("acc", json!(step as f64 / 250.0), 1000 + step, step))
        .collect();
    app.post(
        "runs/log-batch",
        json!({"run_id": run_id, "metrics": metrics}),
    )
    .await
    .ok();
    let mut steps = Vec::new();
    let mut token = String::new();
    loop {
        let page = app
            .get(
                "metrics/get-history",
                &[
                    ("run_id", &run_id),
                    ("metric_key", "acc"),
                    ("max_results", "100"),
                    ("page_token", &token),
                ],
            )
            .await
            .ok();
        steps.extend(
            page["metrics"]
                .as_array()
                .unwrap()
                .iter()
                .map(|m| m["step"].as_i64().unwrap()),
        );
        match page["next_page_token"].as_str() {
            Some(next) => token = next.to_string(),
            None => break,
        }
    }
    assert_eq!(steps, (0..250).collect::<Vec<_>>());

    let bulk = app
        .get(
            "metrics/get-history-bulk-interval",
            &[
                ("run_ids", &run_id),
                ("metric_key", "acc"),
                ("max_results", "5"),
            ],
        )
        .await
        .ok();
    let sampled: Vec<i64> = bulk["metrics"]
        .as_array()
        .unwrap()
        .iter()
        .map(|m| m["step"].as_i64().unwrap())
        .collect();
    assert_eq!(sampled.first(), Some(&0));
    assert_eq!(sampled.last(), Some(&249));
    assert_eq!(sampled.len(), 5);
    assert!(bulk["metrics"][0]["run_id"] == run_id.as_str());
}

async fn datasets_and_model_outputs(app: TestApp) {
    let experiment_id = app.create_experiment("datasets").await;
    let run_id = app.create_run(&experiment_id, "with-data").await;
    let dataset = json!({
        "tags": [{"key": "mlflow.data.context", "value": "training"}],
        "dataset": {"name": "iris", "digest": "abc123", "source_type": "local", "source": "{\"uri\": \"/tmp/iris.csv\"}"}
    });
    app.post(
        "runs/log-inputs",
        json!({"run_id": run_id, "datasets": [dataset]}),
    )
    .await
    .ok();
    let run = app.get_run(&run_id).await;
    assert_eq!(
        run["inputs"]["dataset_inputs"][0]["dataset"]["digest"],
        "abc123"
    );
    for (filter, expected) in [
        ("datasets.name = 'iris'", 1),
        ("datasets.context = 'training'", 1),
        ("datasets.digest IN ('zzz', 'abc123')", 1),
        ("datasets.name = 'other'", 0),
    ] {
        let found = app
            .post(
                "runs/search",
                json!({"experiment_ids": [experiment_id], "filter": filter}),
            )
            .await
            .ok();
        assert_eq!(
            found["runs"].as_array().map_or(0, Vec::len),
            expected,
            "{filter}"
        );
    }

    let model = app
        .post("logged-models", json!({"experiment_id": experiment_id, "name": "model", "source_run_id": run_id, "params": [{"key": "depth", "value": "3"}]}))
        .await
        .ok();
    let model_id = model["model"]["info"]["model_id"]
        .as_str()
        .unwrap()
        .to_string();
    assert!(
        model_id.starts_with("m-") && model_id.len() == 34,
        "{model_id}"
    );
    assert_eq!(model["model"]["info"]["status"], "LOGGED_MODEL_PENDING");
    app.post(
        "runs/outputs",
        json!({"run_id": run_id, "models": [{"model_id": model_id, "step": 0}]}),
    )
    .await
    .ok();
    let finalized = app
        .patch(
            &format!("logged-models/{model_id}"),
            json!({"model_id": model_id, "status": "LOGGED_MODEL_READY"}),
        )
        .await
        .ok();
    assert_eq!(finalized["model"]["info"]["status"], "LOGGED_MODEL_READY");
    app.post(
        "runs/log-metric",
        json!({"run_id": run_id, "key": "acc", "value": 0.8, "timestamp": 1, "model_id": model_id}),
    )
    .await
    .ok();
    let found = app
        .post("logged-models/search", json!({"experiment_ids": [experiment_id], "filter": "name = 'model' AND metrics.acc > 0.5"}))
        .await
        .ok();
    assert_eq!(found["models"][0]["info"]["model_id"], model_id.as_str());
    assert_eq!(found["models"][0]["data"]["metrics"][0]["key"], "acc");
    let run = app.get_run(&run_id).await;
    assert_eq!(
        run["outputs"]["model_outputs"][0]["model_id"],
        model_id.as_str()
    );
}

/// Eight clients logging at once: every acknowledged point is stored once.
async fn concurrent_logging_loses_nothing(app: TestApp) {
    let run_id = app.create_run("0", "concurrent").await;
    let app = std::sync::Arc::new(app);
    let mut clients = tokio::task::JoinSet::new();
    for client in 0..8_i64 {
        let app = app.clone();
        let run_id = run_id.clone();
        clients.spawn(async move {
            for step in 0..50_i64 {
                let body = json!({"run_id": run_id, "key": format!("c{client}"), "value": step as f64, "timestamp": 1, "step": step});
                app.post("runs/log-metric", body).await.ok();
            }
        });
    }
    while let Some(joined) = clients.join_next().await {
        joined.expect("client task");
    }
    for client in 0..8 {
        let history = app
            .get(
                "metrics/get-history",
                &[("run_id", &run_id), ("metric_key", &format!("c{client}"))],
            )
            .await
            .ok();
        assert_eq!(history["metrics"].as_array().map(Vec::len), Some(50));
    }
    let run = app.get_run(&run_id).await;
    assert_eq!(run["data"]["metrics"].as_array().map(Vec::len), Some(8));
    assert!(run["data"]["metrics"]
        .as_array()
        .unwrap()
        .iter()
        .all(|m| m["step"] == 49));
}

/// Values come back exactly as logged, to the last bit.
async fn metric_values_round_trip_bit_for_bit(app: TestApp) {
    let run_id = app.create_run("0", "exact").await;
    let values: [f64; 7] = [
        0.1,
        1.0 / 3.0,
        0.9992503785922918,
        1e-300,
        123456789.12345679,
        -2.5e-8,
        0.30000000000000004,
    ];
    let metrics: Vec<_> = values
        .iter()
        .enumerate()
        .map(|(step, value)| json!({"key": "x", "value": value, "timestamp": 1, "step": step}))
        .collect();
    app.post(
        "runs/log-batch",
        json!({"run_id": run_id, "metrics": metrics}),
    )
    .await
    .ok();
    let history = app
        .get(
            "metrics/get-history",
            &[("run_id", &run_id), ("metric_key", "x")],
        )
        .await
        .ok();
    let stored: Vec<u64> = history["metrics"]
        .as_array()
        .unwrap()
        .iter()
        .map(|m| m["value"].as_f64().unwrap().to_bits())
        .collect();
    assert_eq!(
        stored,
        values.iter().map(|v| v.to_bits()).collect::<Vec<_>>()
    );
}

/// Requests committed together: the refused ones (unknown run, changed
/// param) get their own error and leave no trace; the others all land.
async fn refused_requests_do_not_disturb_their_group(app: TestApp) {
    let run_id = app.create_run("0", "mixed-group").await;
    app.post(
        "runs/log-parameter",
        json!({"run_id": run_id, "key": "lr", "value": "0.1"}),
    )
    .await
    .ok();
    let app = std::sync::Arc::new(app);
    let mut clients = tokio::task::JoinSet::new();
    for client in 0..6_i64 {
        let app = app.clone();
        let run_id = run_id.clone();
        clients.spawn(async move {
            for step in 0..30_i64 {
                let metric = json!({"key": format!("c{client}"), "value": 1.0, "timestamp": 1, "step": step});
                match client {
                    0 => {
                        let body = json!({"run_id": "0000000000000000000000000000beef", "metrics": [metric]});
                        app.post("runs/log-batch", body).await.error(404, "RESOURCE_DOES_NOT_EXIST");
                    }
                    1 => {
                        let body = json!({"run_id": run_id, "metrics": [metric], "params": [{"key": "lr", "value": "0.2"}]});
                        app.post("runs/log-batch", body).await.error(400, "INVALID_PARAMETER_VALUE");
                    }
                    2 => {
                        let body = json!({"run_id": run_id, "metrics": [metric], "tags": [{"key": "t", "value": step.to_string()}]});
                        app.post("runs/log-batch", body).await.ok();
                    }
                    _ => {
                        let body = json!({"run_id": run_id, "metrics": [metric]});
                        app.post("runs/log-batch", body).await.ok();
                    }
                }
            }
        });
    }
    while let Some(joined) = clients.join_next().await {
        joined.expect("client task");
    }
    for (client, expected) in [(1, 0), (2, 30), (3, 30), (4, 30), (5, 30)] {
        let history = app
            .get(
                "metrics/get-history",
                &[("run_id", &run_id), ("metric_key", &format!("c{client}"))],
            )
            .await
            .ok();
        assert_eq!(
            history["metrics"].as_array().map(Vec::len),
            Some(expected),
            "client {client}"
        );
    }
    let run = app.get_run(&run_id).await;
    assert_eq!(value_of(&run["data"]["params"], "lr"), Some(&json!("0.1")));
}
