//! Ground-truth feedback over HTTP: labels joined to served predictions by
//! id (single, bulk, per row, late, repeated, corrected, unknown, invalid)
//! and the realised performance, label drift and concept-drift signals
//! they give.

use reqwest::Method;
use serde_json::{json, Value};

use crate::backend_tests;
use crate::helpers::TestApp;
use crate::serving::{create_deployment, register, v1};

backend_tests!(
    labels_join_predictions_and_give_realised_performance,
    a_concept_change_is_flagged_by_the_error_stream,
);

/// Predicts rows `[a, b, c]` one request each; returns (prediction id, b).
async fn predict_each(app: &TestApp, deployment: &str, bs: &[f64]) -> Vec<(String, f64)> {
    let mut ids = Vec::new();
    for &b in bs {
        let body = json!({"inputs": [{"name": "input-0", "shape": [1, 3], "datatype": "FP64", "data": [[0.0, b, 1.0]]}]});
        let response = app
            .client
            .post(app.url(&format!("/v2/models/{deployment}/infer")))
            .json(&body)
            .send()
            .await
            .expect("send");
        assert_eq!(response.status().as_u16(), 200);
        let answer: Value = response.json().await.expect("json");
        let id = answer["parameters"]["prediction_id"]
            .as_str()
            .unwrap_or_else(|| panic!("no prediction id in {answer}"))
            .to_string();
        ids.push((id, b));
    }
    ids
}

/// `b` spread over [0, 1): the stump says class 1 below 0.5.
fn spread(n: usize) -> Vec<f64> {
    (0..n)
        .map(|i| ((i * 37) % 100) as f64 / 100.0 + 0.005)
        .collect()
}

/// The label the stump gets right (or wrong, when `flip`).
fn truth(b: f64, flip: bool) -> i64 {
    i64::from((b < 0.5) != flip)
}

async fn performance(app: &TestApp, deployment: &str, query: &str) -> Value {
    let reply = v1(
        app,
        Method::GET,
        &format!("/deployments/{deployment}/performance?{query}"),
        None,
    )
    .await;
    assert_eq!(reply.status, 200, "{}", reply.body);
    reply.body
}

async fn labels_join_predictions_and_give_realised_performance(app: TestApp) {
    register(&app, "scoring", 1, None).await;
    create_deployment(&app, "scoring", "scoring/1").await;
    let predictions = predict_each(&app, "scoring", &spread(200)).await;

    // One label, as its own request.
    let (first, b) = &predictions[0];
    let reply = v1(
        &app,
        Method::POST,
        "/deployments/scoring/feedback",
        Some(json!({"prediction_id": first, "label": truth(*b, false)})),
    )
    .await;
    assert_eq!(reply.status, 200, "{}", reply.body);
    assert_eq!(reply.body["inserted"], 1);

    // The rest in bulk: 150 right, 49 wrong, plus an unknown id and a bad item.
    let mut labels: Vec<Value> = predictions[1..]
        .iter()
        .enumerate()
        .map(|(i, (id, b))| json!({"prediction_id": id, "label": truth(*b, i >= 150)}))
        .collect();
    labels.push(json!({"prediction_id": "00000000-0000-4000-8000-000000000000", "label": 1}));
    labels.push(json!({"prediction_id": predictions[5].0, "label": {"nested": true}}));
    let reply = v1(
        &app,
        Method::POST,
        "/deployments/scoring/feedback",
        Some(json!({"labels": labels})),
    )
    .await;
    assert_eq!(reply.status, 200, "{}", reply.body);
    assert_eq!(reply.body["inserted"], 199, "{}", reply.body);
    assert_eq!(reply.body["unknown_count"], 1);
    assert_eq!(
        reply.body["unknown"][0],
        "00000000-0000-4000-8000-000000000000"
    );
    assert_eq!(
        reply.body["invalid"].as_array().unwrap().len(),
        1,
        "{}",
        reply.body
    );
    assert_eq!(reply.body["invalid"][0]["index"], 200);

    // Sending labels again changes nothing; a different label corrects.
    let again: Vec<Value> = predictions[1..11]
        .iter()
        .map(|(id, b)| json!({"prediction_id": id, "label": truth(*b, false)}))
        .collect();
    let reply = v1(
        &app,
        Method::POST,
        "/deployments/scoring/feedback",
        Some(Value::Array(again)),
    )
    .await;
    assert_eq!(
        (
            reply.body["unchanged"].clone(),
            reply.body["inserted"].clone()
        ),
        (json!(10), json!(0)),
        "{}",
        reply.body
    );
    let (last, b) = &predictions[199];
    let reply = v1(
        &app,
        Method::POST,
        "/deployments/scoring/feedback",
        Some(json!({"prediction_id": last, "label": truth(*b, false)})),
    )
    .await;
    assert_eq!(reply.body["updated"], 1, "{}", reply.body);

    // Single-label mistakes are errors with a JSON body.
    for (body, status) in [
        (
            json!({"prediction_id": "00000000-0000-4000-8000-000000000001", "label": 1}),
            404,
        ),
        (json!({"prediction_id": first}), 400),
        (json!({"prediction_id": first, "label": null}), 400),
        (json!({"prediction_id": first, "label": 1, "row": 3}), 400),
        (json!({"prediction_id": 7, "label": 1}), 400),
        (json!("labels"), 400),
    ] {
        let reply = v1(
            &app,
            Method::POST,
            "/deployments/scoring/feedback",
            Some(body.clone()),
        )
        .await;
        assert_eq!(reply.status, status, "{body}: {}", reply.body);
        assert!(reply.body["error_code"].is_string(), "{}", reply.body);
    }
    let reply = v1(
        &app,
        Method::POST,
        "/deployments/nowhere/feedback",
        Some(json!({"prediction_id": first, "label": 1})),
    )
    .await;
    assert_eq!(reply.status, 404);

    // A prediction of three rows: labels per row, or one row at a time.
    let body = json!({"inputs": [{"name": "input-0", "shape": [3, 3], "datatype": "FP64", "data": [[0.0, 0.1, 1.0], [0.0, 0.9, 1.0], [0.0, 0.2, 1.0]]}]});
    let answer: Value = app
        .client
        .post(app.url("/v2/models/scoring/infer"))
        .json(&body)
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let multi = answer["parameters"]["prediction_id"]
        .as_str()
        .unwrap()
        .to_string();
    let reply = v1(
        &app,
        Method::POST,
        "/deployments/scoring/feedback",
        Some(json!({"prediction_id": multi, "label": 1})),
    )
    .await;
    assert_eq!(
        reply.status, 400,
        "one label for three rows: {}",
        reply.body
    );
    let reply = v1(
        &app,
        Method::POST,
        "/deployments/scoring/feedback",
        Some(json!({"prediction_id": multi, "labels": [1, 0, 1]})),
    )
    .await;
    assert_eq!(reply.body["inserted"], 3, "{}", reply.body);

    // 200 + 3 rows labelled; 150 + 1 (corrected) + 1 single + 3 right of the first 200 … counted exactly:
    // rows 0..=150 right (first single + 150 bulk), 151..=198 wrong (48), 199 corrected right, 3 multi right.
    let report = performance(&app, "scoring", "span=1h&window=5m").await;
    let version = &report["versions"][0];
    assert_eq!(version["model"]["name"], "scoring", "{report}");
    assert_eq!(version["task"], "classification");
    assert_eq!(version["positive_class"], "1");
    let overall = &version["overall"];
    assert_eq!(overall["labelled"], 203, "{overall}");
    let accuracy = overall["metrics"]["accuracy"].as_f64().unwrap();
    assert!((accuracy - 155.0 / 203.0).abs() < 1e-12, "{accuracy}");
    assert!(
        overall["metrics"]["roc_auc"].as_f64().is_some(),
        "{overall}"
    );
    assert!(overall["metrics"]["log_loss"].as_f64().unwrap() > 0.0);
    assert_eq!(overall["predictions"], 203, "{overall}");
    assert!((overall["coverage"].as_f64().unwrap() - 1.0).abs() < 1e-12);
    assert!(overall["label_delay"]["max_seconds"].as_f64().unwrap() >= 0.0);
    let shares = &overall["label_distribution"];
    let total: f64 = ["0", "1"]
        .iter()
        .map(|c| shares[c].as_f64().unwrap_or(0.0))
        .sum();
    assert!((total - 1.0).abs() < 1e-12, "{shares}");

    // Bad queries are 400s.
    for query in [
        "span=forever",
        "span=1h&window=1s",
        "task=ranking",
        "span=100d",
    ] {
        let reply = v1(
            &app,
            Method::GET,
            &format!("/deployments/scoring/performance?{query}"),
            None,
        )
        .await;
        assert_eq!(reply.status, 400, "{query}: {}", reply.body);
    }
}

async fn a_concept_change_is_flagged_by_the_error_stream(app: TestApp) {
    register(&app, "scoring", 1, None).await;
    create_deployment(&app, "scoring", "scoring/1").await;
    let predictions = predict_each(&app, "scoring", &spread(600)).await;
    // Right for 400 rows, then the concept flips: every answer is wrong.
    let labels: Vec<Value> = predictions
        .iter()
        .enumerate()
        .map(|(i, (id, b))| json!({"prediction_id": id, "label": truth(*b, i >= 400)}))
        .collect();
    let reply = v1(
        &app,
        Method::POST,
        "/deployments/scoring/feedback",
        Some(json!({"labels": labels})),
    )
    .await;
    assert_eq!(reply.body["inserted"], 600, "{}", reply.body);
    let report = performance(&app, "scoring", "span=1h").await;
    let version = &report["versions"][0];
    assert_eq!(version["concept_drift"], true, "{version}");
    let points = version["change_points"].as_array().unwrap();
    let ddm = points
        .iter()
        .find(|p| p["detector"] == "ddm")
        .unwrap_or_else(|| panic!("{points:?}"));
    let index = ddm["index"].as_u64().unwrap();
    assert!((400..460).contains(&index), "DDM fired at {index}");
    assert!(ddm["error_after"].as_f64().unwrap() > ddm["error_before"].as_f64().unwrap());

    // The same stream without the flip raises nothing.
    register(&app, "steady", 1, None).await;
    create_deployment(&app, "steady", "steady/1").await;
    let predictions = predict_each(&app, "steady", &spread(400)).await;
    let labels: Vec<Value> = predictions
        .iter()
        .map(|(id, b)| json!({"prediction_id": id, "label": truth(*b, false)}))
        .collect();
    v1(
        &app,
        Method::POST,
        "/deployments/steady/feedback",
        Some(json!({"labels": labels})),
    )
    .await;
    let report = performance(&app, "steady", "span=1h").await;
    let version = &report["versions"][0];
    assert_eq!(version["concept_drift"], false, "{version}");
    assert_eq!(version["change_points"], json!([]));
}
