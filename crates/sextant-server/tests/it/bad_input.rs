//! Client mistakes get a 4xx with MLflow's error body, never a 5xx.

use serde_json::json;

use crate::backend_tests;
use crate::helpers::TestApp;

backend_tests!(
    malformed_requests_are_client_errors,
    searches_past_the_databases_limits_are_refused_first,
    every_error_has_the_json_shape,
);

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
    // The root answers with the web UI, not an error (clients link to it).
    let root = app.client.get(app.url("/")).send().await.unwrap();
    assert_eq!(root.status().as_u16(), 200);
    assert!(root
        .text()
        .await
        .unwrap()
        .contains("<title>Experiments · Sextant</title>"));
    // Nothing of the failed requests reached the run.
    let run = app.get_run(&run_id).await;
    assert!(run["data"]["metrics"].as_array().unwrap().is_empty());
}

/// Searches the databases would refuse (SQLite's expression depth, its
/// bound-variable and ORDER BY limits) get a 400 that says which limit,
/// never a 500.
async fn searches_past_the_databases_limits_are_refused_first(app: TestApp) {
    let experiment = app.create_experiment("limits").await;
    let many = |n: usize, f: &dyn Fn(usize) -> String, join: &str| {
        (0..n).map(f).collect::<Vec<_>>().join(join)
    };
    let cases = [
        (
            "runs/search",
            json!({"experiment_ids": [experiment], "filter": many(1000, &|i| format!("metrics.m{i} > 1"), " AND ")}),
            "comparisons",
        ),
        (
            "runs/search",
            json!({"experiment_ids": [experiment], "order_by": (0..1000).map(|i| format!("metrics.m{i}")).collect::<Vec<_>>()}),
            "order_by",
        ),
        (
            "runs/search",
            json!({"experiment_ids": (0..100_000).map(|i| i.to_string()).collect::<Vec<_>>()}),
            "experiment_ids",
        ),
        (
            "runs/search",
            json!({"experiment_ids": [experiment], "filter": format!("attributes.run_id IN ({})", many(20_000, &|i| format!("'{i}'"), ","))}),
            "IN lists",
        ),
        (
            "experiments/search",
            json!({"filter": many(1000, &|i| format!("tags.t{i} = 'a'"), " AND ")}),
            "comparisons",
        ),
        (
            "experiments/search",
            json!({"order_by": vec!["name"; 1000]}),
            "order_by",
        ),
        (
            "logged-models/search",
            json!({"experiment_ids": (0..100_000).map(|i| i.to_string()).collect::<Vec<_>>()}),
            "experiment_ids",
        ),
        (
            "logged-models/search",
            json!({"experiment_ids": [experiment], "filter": many(1000, &|i| format!("metrics.m{i} > 1"), " AND ")}),
            "comparisons",
        ),
    ];
    for (path, body, says) in cases {
        let message = app
            .post(path, body)
            .await
            .error(400, "INVALID_PARAMETER_VALUE");
        assert!(message.contains(says), "{path}: {message}");
    }
    // Just inside the limits, the same searches run.
    app.post(
        "runs/search",
        json!({"experiment_ids": [experiment], "filter": many(200, &|i| format!("metrics.m{i} > 1"), " AND "), "order_by": (0..20).map(|i| format!("metrics.m{i}")).collect::<Vec<_>>()}),
    )
    .await
    .ok();
}

/// Errors written by the framework rather than a handler (an undecodable
/// path, a bad query string, an over-long URI, a wrong content type) have
/// the same `{error_code, message}` body as every other error.
async fn every_error_has_the_json_shape(app: TestApp) {
    let long = format!("/api/2.0/mlflow/runs/get?run_id={}", "x".repeat(62_000));
    let requests = [
        (
            reqwest::Method::GET,
            "/api/v1/deployments/%FF/status".to_string(),
            None,
            400,
        ),
        (
            reqwest::Method::GET,
            "/api/v1/deployments/x/performance?span=%FF%FE".to_string(),
            None,
            400,
        ),
        (reqwest::Method::GET, long, None, 414),
        // The native API's integers are integers: empty is not "not given".
        (
            reqwest::Method::GET,
            "/api/v1/audit/export?since=".to_string(),
            None,
            400,
        ),
        (
            reqwest::Method::POST,
            "/api/2.0/mlflow/runs/search".to_string(),
            Some(("text/plain", "{}")),
            400,
        ),
        (
            reqwest::Method::PUT,
            "/api/v1/deployments/x/alerts/r".to_string(),
            Some(("application/json", "{not json")),
            400,
        ),
        (
            reqwest::Method::PUT,
            "/api/v1/deployments/x/alerts/r".to_string(),
            Some(("application/xml", "<a/>")),
            415,
        ),
        (
            reqwest::Method::DELETE,
            "/api/2.0/mlflow/runs/get".to_string(),
            None,
            405,
        ),
    ];
    for (method, path, body, status) in requests {
        let mut request = app.client.request(method.clone(), app.url(&path));
        if let Some((content_type, text)) = body {
            request = request
                .header(reqwest::header::CONTENT_TYPE, content_type)
                .body(text.to_string());
        }
        let response = request.send().await.unwrap();
        let got = response.status().as_u16();
        let text = response.text().await.unwrap();
        let reply: serde_json::Value = serde_json::from_str(&text).unwrap_or_else(|_| {
            panic!("{method} {}: not JSON: {text}", &path[..path.len().min(80)])
        });
        assert!(
            got == status || (status == 400 && got == 404),
            "{method} {}: {got} {reply}",
            &path[..path.len().min(80)]
        );
        assert!(
            reply["error_code"].is_string() && reply["message"].is_string(),
            "{reply}"
        );
    }
}
