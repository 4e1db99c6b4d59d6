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
    dle_estimates_a_regressors_error_without_labels,
    recent_predictions_survive_a_restart,
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

/// Registers `name`/1: an XGBoost regression stump predicting 1 below
/// b = 0.5 and 3 above (base score 0).
async fn register_regressor(app: &TestApp, name: &str) {
    let mut model: Value =
        serde_json::from_str(&crate::serving::xgboost_stump(1, 0.5, 1.0, 3.0)).unwrap();
    model["learner"]["objective"] = json!({"name": "reg:squarederror", "reg_loss_param": {}});
    model["learner"]["learner_model_param"]["base_score"] = json!("0E0");
    let mlmodel = crate::serving::MLMODEL
        .replace(
            "xgboost.sklearn.XGBClassifier",
            "xgboost.sklearn.XGBRegressor",
        )
        .replace("\"dtype\": \"int64\"", "\"dtype\": \"float64\"");
    let run = app.create_run("0", name).await;
    let root = format!("0/{run}/artifacts/model");
    for (file, body) in [
        ("MLmodel", mlmodel.into_bytes()),
        ("model.json", model.to_string().into_bytes()),
    ] {
        app.raw(
            Method::PUT,
            &format!("/api/2.0/mlflow-artifacts/artifacts/{root}/{file}"),
            body,
        )
        .await
        .ok();
    }
    app.post("registered-models/create", json!({"name": name}))
        .await
        .ok();
    let created = app
        .post(
            "model-versions/create",
            json!({"name": name, "source": format!("mlflow-artifacts:/{root}"), "run_id": run}),
        )
        .await
        .ok();
    assert_eq!(created["model_version"]["version"], "1");
}

/// Sends rows `[a, b, 1]` one request each; returns (id, prediction, a).
async fn predict_rows(app: &TestApp, rows: &[(f64, f64)]) -> Vec<(String, f64, f64)> {
    let mut answers = Vec::new();
    for &(a, b) in rows {
        let body = json!({"inputs": [{"name": "input-0", "shape": [1, 3], "datatype": "FP64", "data": [[a, b, 1.0]]}]});
        let answer: Value = app
            .client
            .post(app.url("/v2/models/pricing/infer"))
            .json(&body)
            .send()
            .await
            .expect("send")
            .json()
            .await
            .expect("json");
        let id = answer["parameters"]["prediction_id"]
            .as_str()
            .unwrap()
            .to_string();
        let value = answer["outputs"][0]["data"][0]
            .as_f64()
            .unwrap_or_else(|| panic!("no prediction in {answer}"));
        answers.push((id, value, a));
    }
    answers
}

/// A regressor errs more for large |a|. With labels for the first stream
/// only, DLE estimates each window's error from the logged inputs: close
/// to the realised error where labels exist, higher once traffic moves
/// to large |a|, before any label for it arrives.
async fn dle_estimates_a_regressors_error_without_labels(app: TestApp) {
    register_regressor(&app, "pricing").await;
    create_deployment(&app, "pricing", "pricing/1").await;
    // Deterministic noise: a fixed sequence of standard normals (Box-Muller
    // on an LCG).
    let mut state = 12_345u64;
    let mut uniform = move || {
        state = state
            .wrapping_mul(6_364_136_223_846_793_005)
            .wrapping_add(1_442_695_040_888_963_407);
        ((state >> 11) as f64 + 0.5) / (1u64 << 53) as f64
    };
    let mut rows = |n: usize, low: f64, high: f64| -> Vec<(f64, f64, f64)> {
        (0..n)
            .map(|_| {
                let a = low + (high - low) * uniform();
                let b = uniform();
                let noise =
                    (-2.0 * uniform().ln()).sqrt() * (std::f64::consts::TAU * uniform()).cos();
                (a, b, noise)
            })
            .collect()
    };
    let labelled = rows(300, -1.0, 1.0);
    let answers = predict_rows(
        &app,
        &labelled.iter().map(|&(a, b, _)| (a, b)).collect::<Vec<_>>(),
    )
    .await;
    let labels: Vec<Value> = answers
        .iter()
        .zip(&labelled)
        .map(|((id, predicted, a), (_, _, noise))| {
            json!({"prediction_id": id, "label": predicted + noise * (0.2 + a.abs())})
        })
        .collect();
    let reply = v1(
        &app,
        Method::POST,
        "/deployments/pricing/feedback",
        Some(json!({"labels": labels})),
    )
    .await;
    assert_eq!(reply.status, 200, "{}", reply.body);

    let report = performance(&app, "pricing", "span=1h&window=1h").await;
    let version = &report["versions"][0];
    assert_eq!(version["task"], "regression", "{version}");
    let estimated = &version["estimated_regression"];
    assert_eq!(estimated["method"], "dle", "{estimated}");
    assert_eq!(estimated["reference_rows"], 300, "{estimated}");
    assert_eq!(estimated["features"], json!(["a", "b", "c"]), "{estimated}");
    let realised = version["overall"]["metrics"]["mae"].as_f64().unwrap();
    let before = estimated["overall"]["mae"]["value"].as_f64().unwrap();
    let error = estimated["overall"]["mae"]["sampling_error"]
        .as_f64()
        .unwrap();
    assert!(
        (before - realised).abs() < 3.0 * error,
        "{before} vs {realised} (σ {error})"
    );

    // Traffic moves to large |a|; no labels for it yet.
    let shifted = rows(300, 1.0, 3.0);
    predict_rows(
        &app,
        &shifted.iter().map(|&(a, b, _)| (a, b)).collect::<Vec<_>>(),
    )
    .await;
    let report = performance(&app, "pricing", "span=1h&window=1h").await;
    let estimated = &report["versions"][0]["estimated_regression"];
    let after = estimated["overall"]["mae"]["value"].as_f64().unwrap();
    assert!(after > before * 1.2, "{before} → {after}: {estimated}");
    assert_eq!(estimated["overall"]["rows"], 600, "{estimated}");
    // And alert rules can watch it.
    let metrics = v1(
        &app,
        Method::GET,
        "/deployments/pricing/alerts/metrics",
        None,
    )
    .await
    .body;
    assert!(
        metrics["metrics"]["estimated_mae"].as_f64().is_some(),
        "{metrics}"
    );
}

/// What a restart loses from memory comes back from the prediction log:
/// the windows behind coverage (and CBPE's score samples), and the
/// predictions labels join.
async fn recent_predictions_survive_a_restart(app: TestApp) {
    register(&app, "scoring", 1, None).await;
    create_deployment(&app, "scoring", "scoring/1").await;
    let predictions = predict_each(&app, "scoring", &spread(120)).await;
    let app = app.restart().await;
    // The index is refilled while the server boots.
    let mut served = Value::Null;
    for _ in 0..100 {
        let report = performance(&app, "scoring", "span=1h").await;
        served = report["versions"][0]["overall"]["predictions"].clone();
        if served == 120 {
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
    }
    assert_eq!(served, 120);
    let labels: Vec<Value> = predictions
        .iter()
        .map(|(id, b)| json!({"prediction_id": id, "label": truth(*b, false)}))
        .collect();
    let reply = v1(
        &app,
        Method::POST,
        "/deployments/scoring/feedback",
        Some(json!({"labels": labels})),
    )
    .await;
    assert_eq!(reply.status, 200, "{}", reply.body);
    assert_eq!(reply.body["inserted"], 120, "{}", reply.body);
    let report = performance(&app, "scoring", "span=1h").await;
    let overall = &report["versions"][0]["overall"];
    assert_eq!(overall["labelled"], 120, "{overall}");
    assert!(
        (overall["coverage"].as_f64().unwrap() - 1.0).abs() < 1e-12,
        "{overall}"
    );
    assert_eq!(overall["metrics"]["accuracy"], 1.0, "{overall}");
}
