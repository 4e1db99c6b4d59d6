//! Serving over HTTP: deployments of registered versions, both inference
//! protocols, every rollout policy, bad input, the prediction log and the
//! metrics. The models are XGBoost stumps written here in XGBoost's JSON
//! format, each version with its own leaf values, so an answer tells which
//! version gave it.

use std::collections::{HashMap, HashSet};
use std::time::Duration;

use reqwest::Method;
use serde_json::{json, Value};

use crate::backend_tests;
use crate::helpers::{Reply, TestApp};

backend_tests!(
    deploy_and_infer_with_both_protocols,
    bad_requests_get_clear_4xx,
    changes_never_drop_requests_and_roll_back,
    a_version_that_fails_to_load_leaves_the_deployment_serving,
    canary_splits_traffic_and_promotes,
    canary_rolls_back_on_its_own_when_a_bound_breaks,
    ab_tests_are_sticky_per_caller,
    shadows_are_logged_never_returned,
    predictions_are_logged_as_parquet_and_counted,
);

const PROXY: &str = "/api/2.0/mlflow-artifacts/artifacts";

/// A binary XGBoost classifier of one stump: `x[feature] < threshold` →
/// margin `left`, else `right` (base score 0.5, so margin 0 at the root).
pub(crate) fn xgboost_stump(feature: usize, threshold: f64, left: f64, right: f64) -> String {
    json!({
        "version": [3, 2, 0],
        "learner": {
            "attributes": {},
            "feature_names": ["a", "b", "c"],
            "feature_types": ["float", "float", "float"],
            "gradient_booster": {"name": "gbtree", "model": {
                "gbtree_model_param": {"num_parallel_tree": "1", "num_trees": "1"},
                "iteration_indptr": [0, 1],
                "tree_info": [0],
                "trees": [{
                    "id": 0,
                    "base_weights": [0.0, left, right],
                    "categories": [], "categories_nodes": [], "categories_segments": [], "categories_sizes": [],
                    "default_left": [0, 0, 0],
                    "left_children": [1, -1, -1],
                    "right_children": [2, -1, -1],
                    "loss_changes": [1.0, 0.0, 0.0],
                    "parents": [2147483647, 0, 0],
                    "split_conditions": [threshold, left, right],
                    "split_indices": [feature, 0, 0],
                    "split_type": [0, 0, 0],
                    "sum_hessian": [10.0, 5.0, 5.0],
                    "tree_param": {"num_deleted": "0", "num_feature": "3", "num_nodes": "3", "size_leaf_vector": "1"}
                }]
            }},
            "learner_model_param": {"base_score": "5E-1", "boost_from_average": "1", "num_class": "0", "num_feature": "3", "num_target": "1"},
            "objective": {"name": "binary:logistic", "reg_loss_param": {"scale_pos_weight": "1"}}
        }
    })
    .to_string()
}

pub(crate) const MLMODEL: &str = r#"flavors:
  python_function:
    data: model.json
    loader_module: mlflow.xgboost
    python_version: 3.11.7
  xgboost:
    code: null
    data: model.json
    model_class: xgboost.sklearn.XGBClassifier
    model_format: json
    xgb_version: 3.2.0
mlflow_version: 3.17.2
signature:
  inputs: '[{"type": "double", "name": "a", "required": true}, {"type": "double", "name":
    "b", "required": true}, {"type": "double", "name": "c", "required": true}]'
  outputs: '[{"type": "tensor", "tensor-spec": {"dtype": "int64", "shape": [-1]}}]'
  params: null
"#;

/// The positive-class probability XGBoost gives a margin (f32 sigmoid).
fn probability(margin: f64) -> f64 {
    (1.0f32 / (1.0f32 + (-(margin as f32)).exp())) as f64
}

/// Leaf margins of version `v`: left 0.1·v, right -0.1·v (split on `b` at 0.5).
fn margins(version: i64) -> (f64, f64) {
    (0.1 * version as f64, -0.1 * version as f64)
}

/// Registers version `version` of `name` (a stump whose leaves encode the
/// version; `files` overrides the model file, e.g. with garbage).
pub(crate) async fn register(app: &TestApp, name: &str, version: i64, model_file: Option<&[u8]>) {
    let run = app.create_run("0", &format!("{name}-{version}")).await;
    let root = format!("0/{run}/artifacts/model");
    let (left, right) = margins(version);
    let stump = xgboost_stump(1, 0.5, left, right).into_bytes();
    for (file, body) in [
        ("MLmodel", MLMODEL.as_bytes().to_vec()),
        ("model.json", model_file.map_or(stump, <[u8]>::to_vec)),
    ] {
        app.raw(Method::PUT, &format!("{PROXY}/{root}/{file}"), body)
            .await
            .ok();
    }
    if version == 1 {
        app.post("registered-models/create", json!({"name": name}))
            .await
            .ok();
    }
    let created = app
        .post(
            "model-versions/create",
            json!({"name": name, "source": format!("mlflow-artifacts:/{root}"), "run_id": run}),
        )
        .await
        .ok();
    assert_eq!(created["model_version"]["version"], version.to_string());
}

pub(crate) async fn v1(app: &TestApp, method: Method, path: &str, body: Option<Value>) -> Reply {
    let mut request = app
        .client
        .request(method, app.url(&format!("/api/v1{path}")));
    if let Some(body) = body {
        request = request.json(&body);
    }
    let response = request.send().await.expect("send");
    let status = response.status().as_u16();
    let body = response.json().await.unwrap_or(Value::Null);
    Reply { status, body }
}

/// An OIP request of rows `[a, b, c]` as one FP64 matrix.
fn oip_rows(rows: &[[f64; 3]]) -> Value {
    json!({"inputs": [{"name": "input-0", "shape": [rows.len(), 3], "datatype": "FP64", "data": rows}]})
}

struct Answer {
    status: u16,
    body: Value,
    headers: reqwest::header::HeaderMap,
}

async fn infer(app: &TestApp, deployment: &str, body: &Value, headers: &[(&str, &str)]) -> Answer {
    let mut request = app
        .client
        .post(app.url(&format!("/v2/models/{deployment}/infer")))
        .json(body);
    for (name, value) in headers {
        request = request.header(*name, *value);
    }
    let response = request.send().await.expect("send");
    let status = response.status().as_u16();
    let headers = response.headers().clone();
    let body = response.json().await.unwrap_or(Value::Null);
    Answer {
        status,
        body,
        headers,
    }
}

/// The version that answered an OIP request, from the header and the
/// probability (both must agree).
fn answered_version(answer: &Answer) -> i64 {
    assert_eq!(answer.status, 200, "{}", answer.body);
    let version: i64 = answer.headers["x-sextant-model-version"]
        .to_str()
        .unwrap()
        .parse()
        .unwrap();
    assert_eq!(answer.body["model_version"], version.to_string());
    let proba = &answer.body["outputs"][1]["data"];
    // Row b = 0 goes left: margin 0.1·version.
    let expected = probability(margins(version).0);
    assert!(
        (proba[1].as_f64().unwrap() - expected).abs() < 1e-7,
        "version {version}: {proba}"
    );
    version
}

pub(crate) async fn create_deployment(app: &TestApp, name: &str, model: &str) -> Value {
    v1(
        app,
        Method::POST,
        "/deployments",
        Some(json!({"name": name, "model": model})),
    )
    .await
    .ok()
}

async fn deploy_and_infer_with_both_protocols(app: TestApp) {
    register(&app, "fraud", 1, None).await;
    app.post(
        "registered-models/alias",
        json!({"name": "fraud", "alias": "champion", "version": "1"}),
    )
    .await
    .ok();
    let created = create_deployment(&app, "fraud-api", "fraud@champion").await;
    assert_eq!(created["revision"], 1);
    assert_eq!(
        created["spec"]["arms"][0]["model"],
        json!({"name": "fraud", "version": "1", "alias": "champion"})
    );
    assert_eq!(created["endpoints"]["infer"], "/v2/models/fraud-api/infer");

    // OIP: one matrix; both rows of each side of the split.
    let answer = infer(
        &app,
        "fraud-api",
        &oip_rows(&[[0.0, 0.0, 0.0], [0.0, 1.0, 0.0]]),
        &[],
    )
    .await;
    assert_eq!(answer.status, 200, "{}", answer.body);
    let (left, right) = margins(1);
    assert_eq!(answer.body["model_name"], "fraud-api");
    assert_eq!(
        answer.body["outputs"][0],
        json!({"name": "predict", "shape": [2], "datatype": "INT64", "data": [1, 0]})
    );
    let proba = answer.body["outputs"][1]["data"].as_array().unwrap();
    assert_eq!(answer.body["outputs"][1]["shape"], json!([2, 2]));
    assert!((proba[1].as_f64().unwrap() - probability(left)).abs() < 1e-7);
    assert!((proba[3].as_f64().unwrap() - probability(right)).abs() < 1e-7);
    let id = answer.body["parameters"]["prediction_id"].as_str().unwrap();
    assert_eq!(
        answer.headers["x-sextant-prediction-id"].to_str().unwrap(),
        id
    );
    assert_eq!(answer.body["id"], id);
    assert_eq!(answer.body["parameters"]["arm"], "primary");

    // OIP: named columns (any order, extras ignored) and a chosen output.
    let columns = json!({
        "id": "req-7",
        "inputs": [
            {"name": "c", "shape": [1], "datatype": "FP32", "data": [0.0]},
            {"name": "extra", "shape": [1], "datatype": "BYTES", "data": ["ignored"]},
            {"name": "b", "shape": [1, 1], "datatype": "INT64", "data": [[1]]},
            {"name": "a", "shape": [1], "datatype": "FP64", "data": [3.5]}
        ],
        "outputs": [{"name": "predict_proba"}]
    });
    let answer = infer(&app, "fraud-api", &columns, &[]).await;
    assert_eq!(answer.status, 200, "{}", answer.body);
    assert_eq!(answer.body["id"], "req-7");
    assert_eq!(answer.body["outputs"].as_array().unwrap().len(), 1);
    assert!(
        (answer.body["outputs"][0]["data"][1].as_f64().unwrap() - probability(right)).abs() < 1e-7
    );

    // The version path, metadata and readiness.
    let pinned = app
        .client
        .post(app.url("/v2/models/fraud-api/versions/1/infer"))
        .json(&oip_rows(&[[0.0; 3]]))
        .send()
        .await
        .unwrap();
    assert_eq!(pinned.status(), 200);
    let metadata: Value = app
        .client
        .get(app.url("/v2/models/fraud-api"))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(metadata["platform"], "native-trees");
    assert_eq!(
        metadata["inputs"],
        json!([
            {"name": "a", "datatype": "FP64", "shape": [-1]},
            {"name": "b", "datatype": "FP64", "shape": [-1]},
            {"name": "c", "datatype": "FP64", "shape": [-1]}
        ])
    );
    for path in [
        "/v2/health/live",
        "/v2/health/ready",
        "/v2/models/fraud-api/ready",
        "/ping",
    ] {
        assert_eq!(
            app.client.get(app.url(path)).send().await.unwrap().status(),
            200,
            "{path}"
        );
    }
    let server: Value = app
        .client
        .get(app.url("/v2"))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(server["name"], "sextant");

    // MLflow's scoring protocol: every payload format gives the labels.
    for body in [
        json!({"dataframe_split": {"columns": ["a", "b", "c"], "data": [[0, 0, 0], [0, 1, 0]]}}),
        json!({"dataframe_records": [{"a": 0, "b": 0, "c": 0}, {"c": 0, "b": 1, "a": 0}]}),
        json!({"inputs": {"a": [0, 0], "b": [0, 1], "c": [0.0, 0.0]}}),
        json!({"instances": [[0, 0, 0], [0, 1, 0]]}),
    ] {
        for path in ["/invocations", "/deployments/fraud-api/invocations"] {
            let reply: Value = app
                .client
                .post(app.url(path))
                .json(&body)
                .send()
                .await
                .unwrap()
                .json()
                .await
                .unwrap();
            assert_eq!(
                reply["predictions"],
                json!([1, 0]),
                "{path} {body}: {reply}"
            );
            assert_eq!(reply["model_version"], "1");
        }
    }
    let csv = app
        .client
        .post(app.url("/invocations"))
        .header("content-type", "text/csv")
        .body("a,b,c\n0,0,0\n0,1,0\n")
        .send()
        .await
        .unwrap();
    let csv: Value = csv.json().await.unwrap();
    assert_eq!(csv["predictions"], json!([1, 0]));
    // `curl -d '{…}'` labels its JSON as a form (and some clients as plain
    // text): the body is read as JSON all the same; other types are refused.
    for (content_type, status) in [
        ("application/x-www-form-urlencoded", 200),
        ("text/plain; charset=utf-8", 200),
        ("application/xml", 400),
    ] {
        let reply = app
            .client
            .post(app.url("/invocations"))
            .header("content-type", content_type)
            .body(r#"{"instances": [[0, 0, 0], [0, 1, 0]]}"#)
            .send()
            .await
            .unwrap();
        assert_eq!(reply.status().as_u16(), status, "{content_type}");
        let reply: Value = reply.json().await.unwrap();
        if status == 200 {
            assert_eq!(reply["predictions"], json!([1, 0]), "{content_type}");
        } else {
            assert!(
                reply["message"].as_str().unwrap().contains("content type"),
                "{reply}"
            );
        }
    }
}

async fn bad_requests_get_clear_4xx(app: TestApp) {
    register(&app, "m", 1, None).await;
    create_deployment(&app, "d", "m/1").await;
    let bad = |status: u16, body: Value, needle: &'static str| (status, body, needle);
    for (status, body, needle) in [
        bad(
            400,
            json!({"inputs": [{"name": "x", "shape": [1, 2], "datatype": "FP64", "data": [1, 2]}]}),
            "2 columns; the model takes 3",
        ),
        bad(
            400,
            json!({"inputs": [{"name": "a", "shape": [1], "datatype": "FP64", "data": [1]}, {"name": "z", "shape": [1], "datatype": "FP64", "data": [1]}]}),
            "missing input features 'b', 'c'",
        ),
        bad(
            400,
            json!({"inputs": [{"name": "x", "shape": [1, 3], "datatype": "FP64", "data": [1, 2]}]}),
            "needs 3 elements",
        ),
        bad(
            400,
            json!({"inputs": [{"name": "x", "shape": [1, 3], "datatype": "BYTES", "data": ["a", "b", "c"]}]}),
            "numeric",
        ),
        bad(
            400,
            json!({"inputs": [{"name": "x", "shape": [1, 3], "datatype": "FP64", "data": [1, 2, 3]}], "outputs": [{"name": "nope"}]}),
            "unknown output 'nope'",
        ),
        bad(400, json!({"inputs": []}), "no inputs"),
        bad(400, json!({"inputs": "x"}), "invalid inference request"),
    ] {
        let answer = infer(&app, "d", &body, &[]).await;
        assert_eq!(answer.status, status, "{body}: {}", answer.body);
        assert_eq!(
            answer.body["error_code"], "INVALID_PARAMETER_VALUE",
            "{}",
            answer.body
        );
        let message = answer.body["error"].as_str().unwrap();
        assert!(message.contains(needle), "{body}: {message}");
        assert_eq!(answer.body["message"], answer.body["error"]);
    }
    // Unknown deployments and versions.
    let answer = infer(&app, "nope", &oip_rows(&[[0.0; 3]]), &[]).await;
    assert_eq!(
        (answer.status, answer.body["error_code"].as_str()),
        (404, Some("RESOURCE_DOES_NOT_EXIST"))
    );
    let pinned = app
        .client
        .post(app.url("/v2/models/d/versions/9/infer"))
        .json(&oip_rows(&[[0.0; 3]]))
        .send()
        .await
        .unwrap();
    assert_eq!(pinned.status(), 404);
    // Malformed bodies, wrong content types, a body larger than the limit.
    let reply = app
        .raw(Method::POST, "/v2/models/d/infer", b"{not json".to_vec())
        .await;
    assert_eq!(reply.status, 400);
    let reply = app
        .raw(
            Method::POST,
            "/invocations",
            br#"{"dataframe_split": {"columns": ["a"], "data": [[1, 2]]}}"#.to_vec(),
        )
        .await;
    assert_eq!(reply.status, 400, "{}", reply.body);
    assert!(reply.body["message"]
        .as_str()
        .unwrap()
        .contains("row 0 has 2 values"));
    // A body over the limit is refused from its Content-Length, before it
    // is read. Sent by hand: a client that writes the whole 17 MiB first
    // may hit the closed connection (a broken pipe) before it reads the
    // answer, which made this check flaky.
    let (status, body) = oversized_request(&app, "/v2/models/d/infer", 17 * 1024 * 1024).await;
    assert_eq!(status, 413, "{body}");
    assert_eq!(body["error_code"], "REQUEST_LIMIT_EXCEEDED", "{body}");
    let reply = app
        .client
        .post(app.url("/invocations"))
        .header("content-type", "application/xml")
        .body("<x/>")
        .send()
        .await
        .unwrap();
    let status = reply.status();
    assert_eq!(status, 400, "{}", reply.text().await.unwrap());
    // Management mistakes.
    for (body, needle) in [
        (
            json!({"name": "Bad Name", "model": "m/1"}),
            "Invalid deployment name",
        ),
        (json!({"name": "d2", "model": "m"}), "NAME@ALIAS"),
        (json!({"name": "d2", "model": "m/7"}), "not found"),
        (json!({"name": "d2", "model": "nope@champion"}), "not found"),
        (json!({"name": "d", "model": "m/1"}), "already exists"),
        (json!({"name": "d2"}), "model"),
    ] {
        let reply = v1(&app, Method::POST, "/deployments", Some(body.clone())).await;
        assert!(
            reply.status == 400 || reply.status == 404,
            "{body}: {} {}",
            reply.status,
            reply.body
        );
        let message = reply.body["message"]
            .as_str()
            .unwrap_or_default()
            .to_lowercase();
        assert!(
            message.contains(&needle.to_lowercase()),
            "{body}: {message}"
        );
    }
    let reply = v1(
        &app,
        Method::POST,
        "/deployments/d/promote",
        Some(json!({})),
    )
    .await;
    assert_eq!(
        (reply.status, reply.body["error_code"].as_str()),
        (409, Some("ABORTED"))
    );
    let reply = v1(
        &app,
        Method::POST,
        "/deployments/d/rollback",
        Some(json!({})),
    )
    .await;
    assert_eq!(reply.status, 409, "{}", reply.body);
}

async fn changes_never_drop_requests_and_roll_back(app: TestApp) {
    for version in 1..=3 {
        register(&app, "m", version, None).await;
    }
    create_deployment(&app, "d", "m/1").await;
    // Callers hammer the deployment while it changes under them.
    let stop = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
    let mut callers = Vec::new();
    for _ in 0..4 {
        let (client, url, stop) = (
            app.client.clone(),
            app.url("/v2/models/d/infer"),
            stop.clone(),
        );
        callers.push(tokio::spawn(async move {
            let mut seen = Vec::new();
            while !stop.load(std::sync::atomic::Ordering::Relaxed) {
                let response = client
                    .post(&url)
                    .json(&oip_rows(&[[0.0; 3]]))
                    .send()
                    .await
                    .expect("send");
                assert_eq!(response.status(), 200, "a request failed during a change");
                let version = response.headers()["x-sextant-model-version"]
                    .to_str()
                    .unwrap()
                    .to_string();
                seen.push(version);
            }
            seen
        }));
    }
    tokio::time::sleep(Duration::from_millis(100)).await;
    let updated = v1(
        &app,
        Method::PATCH,
        "/deployments/d",
        Some(json!({"model": "m/2"})),
    )
    .await
    .ok();
    assert_eq!(updated["revision"], 2);
    tokio::time::sleep(Duration::from_millis(100)).await;
    // Blue-green: the replaced version stays loaded as the standby.
    let blue_green = v1(
        &app,
        Method::PATCH,
        "/deployments/d",
        Some(json!({"model": "m/3", "strategy": "blue_green"})),
    )
    .await
    .ok();
    let arms: Vec<(&str, &str, &str)> = blue_green["spec"]["arms"]
        .as_array()
        .unwrap()
        .iter()
        .map(|a| {
            (
                a["name"].as_str().unwrap(),
                a["model"]["version"].as_str().unwrap(),
                a["role"].as_str().unwrap(),
            )
        })
        .collect();
    assert_eq!(
        arms,
        vec![("primary", "3", "live"), ("standby", "2", "standby")]
    );
    tokio::time::sleep(Duration::from_millis(100)).await;
    // The standby answers directly by version; a rollback swaps it back in.
    let pinned = app
        .client
        .post(app.url("/v2/models/d/versions/2/infer"))
        .json(&oip_rows(&[[0.0; 3]]))
        .send()
        .await
        .unwrap();
    assert_eq!(pinned.headers()["x-sextant-model-version"], "2");
    let rolled = v1(
        &app,
        Method::POST,
        "/deployments/d/rollback",
        Some(json!({"reason": "test"})),
    )
    .await
    .ok();
    assert_eq!(rolled["spec"]["arms"][0]["model"]["version"], "2");
    tokio::time::sleep(Duration::from_millis(100)).await;
    // Without a standby, rollback returns to the previously served
    // version, found in the history (version 2, primary before this update).
    v1(
        &app,
        Method::PATCH,
        "/deployments/d",
        Some(json!({"model": "m/1"})),
    )
    .await
    .ok();
    let rolled = v1(
        &app,
        Method::POST,
        "/deployments/d/rollback",
        Some(json!({})),
    )
    .await
    .ok();
    assert_eq!(rolled["spec"]["arms"][0]["model"]["version"], "2");
    tokio::time::sleep(Duration::from_millis(100)).await;
    stop.store(true, std::sync::atomic::Ordering::Relaxed);
    let mut seen = HashSet::new();
    for caller in callers {
        seen.extend(caller.await.unwrap());
    }
    assert!(
        seen.contains("1") && seen.contains("2") && seen.contains("3"),
        "{seen:?}"
    );
    let answer = infer(&app, "d", &oip_rows(&[[0.0; 3]]), &[]).await;
    assert_eq!(answered_version(&answer), 2);
    // The history tells the story, newest first.
    let history = v1(&app, Method::GET, "/deployments/d/history", None)
        .await
        .ok();
    let actions: Vec<&str> = history["revisions"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| r["action"].as_str().unwrap())
        .collect();
    assert_eq!(
        actions,
        vec!["rollback", "update", "rollback", "update", "update", "create"]
    );
}

async fn a_version_that_fails_to_load_leaves_the_deployment_serving(app: TestApp) {
    register(&app, "m", 1, None).await;
    register(
        &app,
        "m",
        2,
        Some(b"{\"learner\": {\"gradient_booster\": 7}}"),
    )
    .await;
    register(&app, "m", 3, Some(b"\x00\x01garbage")).await;
    create_deployment(&app, "d", "m/1").await;
    for version in [2, 3] {
        let reply = v1(
            &app,
            Method::PATCH,
            "/deployments/d",
            Some(json!({"model": format!("m/{version}")})),
        )
        .await;
        assert_eq!(reply.status, 400, "{}", reply.body);
        let message = reply.body["message"].as_str().unwrap();
        assert!(
            message.contains("was not changed") && message.contains(&format!("m/{version}")),
            "{message}"
        );
        let reply = v1(
            &app,
            Method::POST,
            "/deployments/d/canary",
            Some(json!({"model": format!("m/{version}")})),
        )
        .await;
        assert_eq!(reply.status, 400, "{}", reply.body);
    }
    let deployment = v1(&app, Method::GET, "/deployments/d", None).await.ok();
    assert_eq!(deployment["revision"], 1);
    assert_eq!(
        answered_version(&infer(&app, "d", &oip_rows(&[[0.0; 3]]), &[]).await),
        1
    );
    // A deployment whose only version cannot load is not created.
    let reply = v1(
        &app,
        Method::POST,
        "/deployments",
        Some(json!({"name": "e", "model": "m/3"})),
    )
    .await;
    assert_eq!(reply.status, 400, "{}", reply.body);
    assert_eq!(
        v1(&app, Method::GET, "/deployments/e", None).await.status,
        404
    );
}

/// Share of `n` requests that version 2 answers.
async fn share_of_v2(app: &TestApp, n: usize) -> f64 {
    let mut v2 = 0;
    for _ in 0..n {
        if answered_version(&infer(app, "d", &oip_rows(&[[0.0; 3]]), &[]).await) == 2 {
            v2 += 1;
        }
    }
    v2 as f64 / n as f64
}

async fn canary_splits_traffic_and_promotes(app: TestApp) {
    register(&app, "m", 1, None).await;
    register(&app, "m", 2, None).await;
    create_deployment(&app, "d", "m/1").await;
    let canary = v1(
        &app,
        Method::POST,
        "/deployments/d/canary",
        Some(json!({"model": "m/2", "steps": [30, 100], "interval_seconds": 3600})),
    )
    .await
    .ok();
    assert_eq!(canary["spec"]["policy"]["kind"], "canary");
    // 30% within 4 standard deviations of a binomial(1000, 0.3): ±58.
    let share = share_of_v2(&app, 1000).await;
    assert!((0.242..=0.358).contains(&share), "canary share {share}");
    let status = v1(&app, Method::GET, "/deployments/d/status", None)
        .await
        .ok();
    let canary_arm = status["arms"]
        .as_array()
        .unwrap()
        .iter()
        .find(|a| a["name"] == "canary")
        .unwrap();
    assert_eq!(canary_arm["state"], "ready");
    assert_eq!(canary_arm["engine"], "native-trees");
    let served = canary_arm["counters"]["requests"].as_u64().unwrap();
    assert_eq!(served as f64, (share * 1000.0).round());
    // Promotion: all traffic on version 2, version 1 kept as standby.
    let promoted = v1(
        &app,
        Method::POST,
        "/deployments/d/promote",
        Some(json!({})),
    )
    .await
    .ok();
    assert_eq!(promoted["spec"]["policy"]["kind"], "single");
    assert_eq!(share_of_v2(&app, 50).await, 1.0);
    let status = v1(&app, Method::GET, "/deployments/d/status", None)
        .await
        .ok();
    assert_eq!(status["ready"], true);
    assert_eq!(status["arms"][1]["role"], "standby");
}

async fn canary_rolls_back_on_its_own_when_a_bound_breaks(app: TestApp) {
    register(&app, "m", 1, None).await;
    register(&app, "m", 2, None).await;
    create_deployment(&app, "d", "m/1").await;
    // No request is faster than 0.05 ms, the smallest latency bucket: a
    // p99 bound of 0.001 ms is breached as soon as the canary has been judged.
    v1(
        &app,
        Method::POST,
        "/deployments/d/canary",
        Some(json!({"model": "m/2", "weight": 50, "max_p99_ms": 0.001, "min_requests": 5, "interval_seconds": 3600})),
    )
    .await
    .ok();
    for _ in 0..40 {
        infer(&app, "d", &oip_rows(&[[0.0; 3]]), &[]).await;
    }
    let mut rolled_back = false;
    for _ in 0..100 {
        let deployment = v1(&app, Method::GET, "/deployments/d", None).await.ok();
        if deployment["spec"]["policy"]["kind"] == "single" {
            assert_eq!(
                deployment["spec"]["arms"],
                json!([{"name": "primary", "model": {"name": "m", "version": "1"}, "weight": 100, "role": "live"}])
            );
            rolled_back = true;
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert!(rolled_back, "the controller did not roll the canary back");
    let history = v1(&app, Method::GET, "/deployments/d/history", None)
        .await
        .ok();
    let latest = &history["revisions"][0];
    assert_eq!(latest["action"], "auto_rollback");
    assert_eq!(latest["actor"], "sextant-controller");
    assert!(
        latest["reason"].as_str().unwrap().contains("p99 latency"),
        "{latest}"
    );
    // Traffic is back on version 1 alone.
    for _ in 0..20 {
        assert_eq!(
            answered_version(&infer(&app, "d", &oip_rows(&[[0.0; 3]]), &[]).await),
            1
        );
    }
}

async fn ab_tests_are_sticky_per_caller(app: TestApp) {
    register(&app, "m", 1, None).await;
    register(&app, "m", 2, None).await;
    create_deployment(&app, "d", "m/1").await;
    v1(
        &app,
        Method::POST,
        "/deployments/d/ab",
        Some(json!({"model": "m/2", "weight": 50, "sticky_header": "X-User"})),
    )
    .await
    .ok();
    let mut arms_by_user: HashMap<String, HashSet<String>> = HashMap::new();
    for round in 0..4 {
        for user in 0..60 {
            let user = format!("user-{user}");
            let answer = infer(&app, "d", &oip_rows(&[[0.0; 3]]), &[("x-user", &user)]).await;
            answered_version(&answer);
            let arm = answer.headers["x-sextant-arm"]
                .to_str()
                .unwrap()
                .to_string();
            if round == 0 {
                assert!(arm == "a" || arm == "b", "{arm}");
            }
            arms_by_user.entry(user).or_default().insert(arm);
        }
    }
    assert!(
        arms_by_user.values().all(|arms| arms.len() == 1),
        "a caller switched arms: {arms_by_user:?}"
    );
    let on_b = arms_by_user
        .values()
        .filter(|arms| arms.contains("b"))
        .count();
    assert!((15..=45).contains(&on_b), "{on_b} of 60 callers on b");
    // Per-arm counters, so the experiment can be read.
    let status = v1(&app, Method::GET, "/deployments/d/status", None)
        .await
        .ok();
    let total: u64 = status["arms"]
        .as_array()
        .unwrap()
        .iter()
        .map(|a| a["counters"]["requests"].as_u64().unwrap())
        .sum();
    assert_eq!(total, 240);
}

async fn shadows_are_logged_never_returned(app: TestApp) {
    register(&app, "m", 1, None).await;
    register(&app, "m", 2, None).await;
    create_deployment(&app, "d", "m/1").await;
    v1(
        &app,
        Method::POST,
        "/deployments/d/shadow",
        Some(json!({"model": "m/2"})),
    )
    .await
    .ok();
    for _ in 0..30 {
        let answer = infer(&app, "d", &oip_rows(&[[0.0; 3]]), &[]).await;
        assert_eq!(answered_version(&answer), 1);
        assert_eq!(answer.headers["x-sextant-arm"], "primary");
    }
    // The shadow saw every request (it runs after the answer).
    let mut shadow_requests = 0;
    for _ in 0..100 {
        let status = v1(&app, Method::GET, "/deployments/d/status", None)
            .await
            .ok();
        shadow_requests = status["arms"][1]["counters"]["requests"].as_u64().unwrap();
        if shadow_requests == 30 {
            break;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    assert_eq!(shadow_requests, 30);
    app.serving.prediction_log().flush().await;
    let rows = read_prediction_log(&app, "d");
    let shadow_rows: Vec<&Row> = rows.iter().filter(|r| r.shadow).collect();
    assert_eq!(shadow_rows.len(), 30);
    assert!(shadow_rows
        .iter()
        .all(|r| r.model_version == 2 && r.arm == "shadow"));
    // The shadow's answer is in its row: version 2's probability.
    let expected = probability(margins(2).0);
    assert!(shadow_rows
        .iter()
        .all(|r| (r.output_proba_1.unwrap() - expected).abs() < 1e-7));
    // Each shadow row shares its prediction id with the live answer.
    let live_ids: HashSet<&str> = rows
        .iter()
        .filter(|r| !r.shadow)
        .map(|r| r.prediction_id.as_str())
        .collect();
    assert!(shadow_rows
        .iter()
        .all(|r| live_ids.contains(r.prediction_id.as_str())));
    // Promoting the shadow makes it primary.
    let promoted = v1(
        &app,
        Method::POST,
        "/deployments/d/promote",
        Some(json!({})),
    )
    .await
    .ok();
    assert_eq!(promoted["spec"]["arms"][0]["model"]["version"], "2");
}

async fn predictions_are_logged_as_parquet_and_counted(app: TestApp) {
    register(&app, "m", 1, None).await;
    create_deployment(&app, "d", "m/1").await;
    let answer = infer(
        &app,
        "d",
        &oip_rows(&[[1.0, 0.0, 2.0], [3.0, 1.0, 4.0]]),
        &[],
    )
    .await;
    let id = answer.body["parameters"]["prediction_id"]
        .as_str()
        .unwrap()
        .to_string();
    let failed = infer(
        &app,
        "d",
        &json!({"inputs": [{"name": "x", "shape": [1, 2], "datatype": "FP64", "data": [1, 2]}]}),
        &[],
    )
    .await;
    assert_eq!(failed.status, 400);
    app.serving.prediction_log().flush().await;
    let rows = read_prediction_log(&app, "d");
    let ok: Vec<&Row> = rows.iter().filter(|r| r.prediction_id == id).collect();
    assert_eq!(ok.len(), 2);
    assert_eq!((ok[0].row, ok[1].row), (0, 1));
    // Features carry the model's names, outputs the model's answers.
    assert_eq!(
        (ok[0].input_a, ok[0].input_b, ok[0].input_c),
        (Some(1.0), Some(0.0), Some(2.0))
    );
    assert_eq!(ok[1].output_predict, Some(0));
    assert!(ok
        .iter()
        .all(|r| r.error.is_none() && r.model_version == 1 && r.latency_ms >= 0.0));
    let refused: Vec<&Row> = rows.iter().filter(|r| r.error.is_some()).collect();
    assert_eq!(refused.len(), 1);
    assert!(refused[0].error.as_deref().unwrap().contains("2 columns"));
    // Prometheus counts both, by outcome.
    let metrics = app
        .client
        .get(app.url("/metrics"))
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    let labels = r#"deployment="d",arm="primary",model="m",version="1""#;
    for line in [
        format!("sextant_inference_requests_total{{{labels},outcome=\"ok\"}} 1"),
        format!("sextant_inference_requests_total{{{labels},outcome=\"rejected\"}} 1"),
        format!("sextant_inference_rows_total{{{labels}}} 2"),
        format!("sextant_inference_latency_seconds_count{{{labels}}} 2"),
        "sextant_prediction_log_rows_total 3".to_string(),
    ] {
        assert!(
            metrics.lines().any(|l| l == line),
            "missing `{line}` in:\n{metrics}"
        );
    }
    assert!(metrics
        .contains("sextant_model_load_seconds{model=\"m\",version=\"1\",engine=\"native-trees\"}"));
}

/// The columns of a prediction log row the tests look at.
struct Row {
    prediction_id: String,
    row: i32,
    arm: String,
    model_version: i64,
    shadow: bool,
    latency_ms: f64,
    error: Option<String>,
    input_a: Option<f64>,
    input_b: Option<f64>,
    input_c: Option<f64>,
    output_predict: Option<i64>,
    output_proba_1: Option<f64>,
}

/// Every row of every segment under `predictions/<deployment>/`.
fn read_prediction_log(app: &TestApp, deployment: &str) -> Vec<Row> {
    use arrow_array::cast::AsArray;
    use arrow_array::types::{Float64Type, Int32Type, Int64Type};
    let root = app
        .dir
        .path()
        .join("artifacts/predictions")
        .join(deployment);
    let mut files = Vec::new();
    for entry in std::fs::read_dir(&root).unwrap_or_else(|e| panic!("{}: {e}", root.display())) {
        let path = entry.unwrap().path();
        // Beside the day directories, the zero-row schema file.
        if path.is_file() {
            assert_eq!(path.file_name().unwrap(), "0-schema.parquet");
            continue;
        }
        for file in std::fs::read_dir(path).unwrap() {
            files.push(file.unwrap().path());
        }
    }
    let mut rows = Vec::new();
    for file in files {
        assert_eq!(file.extension().unwrap(), "parquet");
        let reader = parquet::arrow::arrow_reader::ParquetRecordBatchReaderBuilder::try_new(
            std::fs::File::open(&file).unwrap(),
        )
        .unwrap()
        .build()
        .unwrap();
        for batch in reader {
            let batch = batch.unwrap();
            let column = |name: &str| batch.column_by_name(name).cloned();
            let f64s = |name: &str, i: usize| {
                column(name)
                    .and_then(|c| (!c.is_null(i)).then(|| c.as_primitive::<Float64Type>().value(i)))
            };
            for i in 0..batch.num_rows() {
                rows.push(Row {
                    prediction_id: column("prediction_id")
                        .unwrap()
                        .as_string::<i32>()
                        .value(i)
                        .to_string(),
                    row: column("row").unwrap().as_primitive::<Int32Type>().value(i),
                    arm: column("arm")
                        .unwrap()
                        .as_string::<i32>()
                        .value(i)
                        .to_string(),
                    model_version: column("model_version")
                        .unwrap()
                        .as_primitive::<Int64Type>()
                        .value(i),
                    shadow: column("shadow").unwrap().as_boolean().value(i),
                    latency_ms: column("latency_ms")
                        .unwrap()
                        .as_primitive::<Float64Type>()
                        .value(i),
                    error: column("error").and_then(|c| {
                        (!c.is_null(i)).then(|| c.as_string::<i32>().value(i).to_string())
                    }),
                    input_a: f64s("input_a", i),
                    input_b: f64s("input_b", i),
                    input_c: f64s("input_c", i),
                    output_predict: column("output_predict").and_then(|c| {
                        (!c.is_null(i)).then(|| c.as_primitive::<Int64Type>().value(i))
                    }),
                    output_proba_1: f64s("output_predict_proba_1", i),
                });
            }
        }
    }
    rows
}

/// Sends only the headers of a POST announcing `length` bytes, and reads
/// the answer: the status and the JSON body.
async fn oversized_request(app: &TestApp, path: &str, length: usize) -> (u16, Value) {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let address = app.base.trim_start_matches("http://").to_string();
    let mut stream = tokio::net::TcpStream::connect(&address)
        .await
        .expect("connect");
    let head = format!(
        "POST {path} HTTP/1.1\r\nHost: {address}\r\nContent-Type: application/json\r\nContent-Length: {length}\r\nConnection: close\r\n\r\n"
    );
    stream.write_all(head.as_bytes()).await.expect("write");
    // Read until the answer is whole (its headers and Content-Length bytes).
    let mut answer = Vec::new();
    let complete = |answer: &[u8]| {
        let text = String::from_utf8_lossy(answer);
        let Some((head, body)) = text.split_once("\r\n\r\n") else {
            return false;
        };
        let length = head
            .lines()
            .find_map(|line| {
                let (name, value) = line.split_once(':')?;
                name.eq_ignore_ascii_case("content-length")
                    .then(|| value.trim().parse::<usize>().ok())?
            })
            .unwrap_or(0);
        body.len() >= length
    };
    tokio::time::timeout(std::time::Duration::from_secs(30), async {
        let mut buffer = [0u8; 4096];
        while !complete(&answer) {
            let read = stream.read(&mut buffer).await.expect("read");
            if read == 0 {
                break;
            }
            answer.extend_from_slice(&buffer[..read]);
        }
    })
    .await
    .expect("the server answers without the body");
    let text = String::from_utf8_lossy(&answer);
    let status = text
        .split_whitespace()
        .nth(1)
        .and_then(|code| code.parse().ok())
        .unwrap_or(0);
    let body = text
        .split_once("\r\n\r\n")
        .and_then(|(_, body)| serde_json::from_str(body.trim()).ok())
        .unwrap_or(Value::Null);
    (status, body)
}
