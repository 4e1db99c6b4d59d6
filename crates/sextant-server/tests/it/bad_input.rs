//! Client mistakes get a 4xx with MLflow's error body, never a 5xx.

use serde_json::json;

use crate::backend_tests;
use crate::helpers::TestApp;

backend_tests!(malformed_requests_are_client_errors);

async fn malformed_requests_are_client_errors(app: TestApp) {
    let run_id = app.create_run("0", "bad-input").await;
    let cases: Vec<(&str, Vec<u8>, u16, &str)> = vec![
        ("runs/create", b"{not json".to_vec(), 400, "BAD_REQUEST"),
        ("runs/create", b"[1, 2]".to_vec(), 400, "BAD_REQUEST"),
        ("experiments/create", b"{}".to_vec(), 400, "INVALID_PARAMETER_VALUE"),
        ("experiments/create", br#"{"name": 7}"#.to_vec(), 400, "INVALID_PARAMETER_VALUE"),
        ("runs/log-metric", format!(r#"{{"run_id": "{run_id}", "key": "a", "value": "abc", "timestamp": 1}}"#).into_bytes(), 400, "INVALID_PARAMETER_VALUE"),
        ("runs/log-metric", format!(r#"{{"run_id": "{run_id}", "key": "a", "timestamp": 1}}"#).into_bytes(), 400, "INVALID_PARAMETER_VALUE"),
        ("runs/log-metric", format!(r#"{{"run_id": "{run_id}", "key": "a", "value": 1, "timestamp": "soon"}}"#).into_bytes(), 400, "INVALID_PARAMETER_VALUE"),
        ("runs/log-metric", format!(r#"{{"run_id": "{run_id}", "key": "bad;key", "value": 1, "timestamp": 1}}"#).into_bytes(), 400, "INVALID_PARAMETER_VALUE"),
        ("runs/log-batch", br#"{"metrics": []}"#.to_vec(), 400, "INVALID_PARAMETER_VALUE"),
        ("runs/log-batch", br#"{"run_id": "0000000000000000000000000000abcd", "params": [{"key": "a", "value": "b"}]}"#.to_vec(), 404, "RESOURCE_DOES_NOT_EXIST"),
        ("runs/update", format!(r#"{{"run_id": "{run_id}", "status": "DONE"}}"#).into_bytes(), 400, "INVALID_PARAMETER_VALUE"),
        ("runs/search", br#"{"experiment_ids": ["0"], "filter": "metrics.a >>> 1"}"#.to_vec(), 400, "INVALID_PARAMETER_VALUE"),
        ("runs/search", br#"{"experiment_ids": ["0"], "run_view_type": "SOME"}"#.to_vec(), 400, "INVALID_PARAMETER_VALUE"),
        ("runs/search", br#"{"experiment_ids": ["0"], "order_by": ["metrics.a SIDEWAYS"]}"#.to_vec(), 400, "INVALID_PARAMETER_VALUE"),
        ("model-versions/transition-stage", br#"{"name": "x", "version": "abc", "stage": "Staging"}"#.to_vec(), 400, "INVALID_PARAMETER_VALUE"),
        ("no/such/route", b"{}".to_vec(), 404, "ENDPOINT_NOT_FOUND"),
    ];
    for (path, body, status, code) in cases {
        let response = app
            .client
            .post(app.url(&format!("/api/2.0/mlflow/{path}")))
            .header("content-type", "application/json")
            .body(body.clone())
            .send()
            .await
            .unwrap();
        let got_status = response.status().as_u16();
        let json: serde_json::Value = response.json().await.unwrap_or(json!(null));
        assert_eq!(
            (got_status, json["error_code"].as_str()),
            (status, Some(code)),
            "{path} {}: {json}",
            String::from_utf8_lossy(&body)
        );
        assert!(
            json["message"].as_str().is_some_and(|m| !m.is_empty()),
            "{path}: message missing"
        );
    }
    // A body over the JSON limit is refused without reading it all; the
    // server then closes that connection, so it gets a client of its own.
    let huge = vec![b' '; 17 * 1024 * 1024];
    let response = reqwest::Client::new()
        .post(app.url("/api/2.0/mlflow/runs/log-batch"))
        .body(huge)
        .send()
        .await
        .unwrap();
    assert_eq!(response.status().as_u16(), 413);
    // The root answers with a page, not an error (clients link to it).
    let root = app.client.get(app.url("/")).send().await.unwrap();
    assert_eq!(root.status().as_u16(), 200);
    assert!(root.text().await.unwrap().contains("Sextant is running"));
    // Nothing of the failed requests reached the run.
    let run = app.get_run(&run_id).await;
    assert!(run["data"]["metrics"].as_array().unwrap().is_empty());
}
