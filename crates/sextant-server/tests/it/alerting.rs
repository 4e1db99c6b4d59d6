//! Alert rules over monitored metrics (fire, notify as Alertmanager,
//! resolve, audit), retraining triggers (manual command, on an alert by
//! webhook) and per-caller abuse signals.

use std::sync::{Arc, Mutex};

use reqwest::Method;
use serde_json::{json, Value};

use crate::backend_tests;
use crate::helpers::TestApp;
use crate::serving::{create_deployment, register, v1};

backend_tests!(alerts_fire_notify_resolve_and_trigger_retraining,);

/// A webhook receiver on loopback that keeps every JSON body by path.
async fn receiver() -> (String, Arc<Mutex<Vec<(String, Value)>>>) {
    let received: Arc<Mutex<Vec<(String, Value)>>> = Arc::default();
    let kept = received.clone();
    let app = axum::Router::new().fallback(
        move |uri: axum::http::Uri, axum::Json(body): axum::Json<Value>| {
            let kept = kept.clone();
            async move {
                kept.lock().unwrap().push((uri.path().to_string(), body));
                "ok"
            }
        },
    );
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("http://{}", listener.local_addr().unwrap());
    tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });
    (url, received)
}

async fn predict(app: &TestApp, deployment: &str, rows: &[[f64; 3]]) -> Vec<String> {
    let mut ids = Vec::new();
    for row in rows {
        let body = json!({"inputs": [{"name": "input-0", "shape": [1, 3], "datatype": "FP64", "data": [row]}]});
        let answer: Value = app
            .client
            .post(app.url(&format!("/v2/models/{deployment}/infer")))
            .json(&body)
            .send()
            .await
            .unwrap()
            .json()
            .await
            .unwrap();
        ids.push(
            answer["parameters"]["prediction_id"]
                .as_str()
                .unwrap()
                .to_string(),
        );
    }
    ids
}

async fn evaluate(app: &TestApp) -> Value {
    let reply = v1(
        app,
        Method::POST,
        "/deployments/scoring/alerts/evaluate",
        None,
    )
    .await;
    assert_eq!(reply.status, 200, "{}", reply.body);
    reply.body["evaluations"][0].clone()
}

async fn wait_for<T>(mut probe: impl FnMut() -> Option<T>) -> T {
    for _ in 0..100 {
        if let Some(found) = probe() {
            return found;
        }
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
    }
    panic!("timed out waiting");
}

async fn alerts_fire_notify_resolve_and_trigger_retraining(mut app: TestApp) {
    // The receiver listens on loopback, which users' webhooks reach only
    // where an admin allows it (`security::webhooks_reach_no_internal_address`).
    app.options.webhooks.allowed_hosts = vec!["127.0.0.1".into()];
    let app = app.restart().await;
    register(&app, "scoring", 1, None).await;
    create_deployment(&app, "scoring", "scoring/1").await;
    let (hooks, received) = receiver().await;

    // Bad rules and triggers are 400s with a JSON body.
    for (path, body) in [
        (
            "/alerts/bad",
            json!({"metric": "accuracy", "condition": {"threshold": {"op": "≫", "value": 1}}}),
        ),
        (
            "/alerts/bad",
            json!({"metric": "accuracy", "condition": {"threshold": {"op": "<", "value": 0.9}}, "for_windows": 0}),
        ),
        (
            "/alerts/bad",
            json!({"metric": "accuracy", "condition": {"threshold": {"op": "<", "value": 0.9}}, "webhooks": ["ftp://x"]}),
        ),
        ("/retrain-trigger", json!({"on_alerts": ["x"]})),
        ("/retrain-trigger", json!({"webhook": "not a url"})),
    ] {
        let reply = v1(
            &app,
            Method::PUT,
            &format!("/deployments/scoring{path}"),
            Some(body.clone()),
        )
        .await;
        assert_eq!(reply.status, 400, "{body}: {}", reply.body);
        assert!(reply.body["message"].is_string());
    }

    // A manual run of a command trigger is recorded with its output.
    let reply = v1(&app, Method::PUT, "/deployments/scoring/retrain-trigger",
        Some(json!({"command": ["sh", "-c", "echo retraining $SEXTANT_DEPLOYMENT for $SEXTANT_REASON"]}))).await;
    assert_eq!(reply.status, 200, "{}", reply.body);
    let reply = v1(
        &app,
        Method::POST,
        "/deployments/scoring/retrain",
        Some(json!({"reason": "new data"})),
    )
    .await;
    assert_eq!(reply.status, 200, "{}", reply.body);
    let run_id = reply.body["id"].as_str().unwrap().to_string();
    let mut run = Value::Null;
    for _ in 0..100 {
        let listed = v1(
            &app,
            Method::GET,
            "/deployments/scoring/retrain-trigger",
            None,
        )
        .await
        .body;
        run = listed["runs"]
            .as_array()
            .unwrap()
            .iter()
            .find(|r| r["id"] == run_id)
            .cloned()
            .unwrap();
        if run["status"] != "running" {
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
    }
    assert_eq!(run["status"], "succeeded", "{run}");
    assert_eq!(run["output"], "retraining scoring for manual\n");

    // Now: accuracy below 0.9 fires, notifies and starts a run by webhook.
    let reply = v1(
        &app,
        Method::PUT,
        "/deployments/scoring/retrain-trigger",
        Some(json!({"webhook": format!("{hooks}/retrain"), "on_alerts": ["low-accuracy"]})),
    )
    .await;
    assert_eq!(reply.status, 200, "{}", reply.body);
    let rule = json!({"metric": "accuracy", "condition": {"threshold": {"op": "<", "value": 0.9}},
        "severity": "critical", "labels": {"team": "fraud"}, "webhooks": [format!("{hooks}/alerts")]});
    let reply = v1(
        &app,
        Method::PUT,
        "/deployments/scoring/alerts/low-accuracy",
        Some(rule),
    )
    .await;
    assert_eq!(reply.status, 200, "{}", reply.body);

    // No labels yet: no value, nothing fires.
    let first = evaluate(&app).await;
    assert_eq!(first["value"], Value::Null, "{first}");
    assert_eq!(first["state"]["alert"]["state"], "inactive");

    let rows: Vec<[f64; 3]> = (0..100)
        .map(|i| [0.0, (i % 10) as f64 / 10.0 + 0.05, 1.0])
        .collect();
    let ids = predict(&app, "scoring", &rows).await;
    // Every label wrong: the stump says 1 below b = 0.5.
    let wrong: Vec<Value> = ids
        .iter()
        .zip(&rows)
        .map(|(id, r)| json!({"prediction_id": id, "label": i64::from(r[1] >= 0.5)}))
        .collect();
    v1(
        &app,
        Method::POST,
        "/deployments/scoring/feedback",
        Some(Value::Array(wrong)),
    )
    .await;
    let fired = evaluate(&app).await;
    assert_eq!(fired["value"], 0.0, "{fired}");
    assert_eq!(fired["transition"]["status"], "firing", "{fired}");

    let notification = wait_for(|| {
        received
            .lock()
            .unwrap()
            .iter()
            .find(|(p, _)| p == "/alerts")
            .map(|(_, b)| b.clone())
    })
    .await;
    assert_eq!(notification["version"], "4");
    assert_eq!(notification["status"], "firing");
    assert_eq!(
        notification["alerts"][0]["labels"]["alertname"],
        "low-accuracy"
    );
    assert_eq!(notification["alerts"][0]["labels"]["deployment"], "scoring");
    assert_eq!(notification["alerts"][0]["labels"]["team"], "fraud");
    assert_eq!(notification["alerts"][0]["endsAt"], "0001-01-01T00:00:00Z");
    let retrain = wait_for(|| {
        received
            .lock()
            .unwrap()
            .iter()
            .find(|(p, _)| p == "/retrain")
            .map(|(_, b)| b.clone())
    })
    .await;
    assert_eq!(retrain["reason"], "alert");
    assert_eq!(retrain["detail"]["alert"], "low-accuracy");
    assert_eq!(retrain["deployment"], "scoring");

    // Firing again changes nothing; correct labels resolve it.
    assert_eq!(evaluate(&app).await["transition"], Value::Null);
    let right: Vec<Value> = ids
        .iter()
        .zip(&rows)
        .map(|(id, r)| json!({"prediction_id": id, "label": i64::from(r[1] < 0.5)}))
        .collect();
    let reply = v1(
        &app,
        Method::POST,
        "/deployments/scoring/feedback",
        Some(Value::Array(right)),
    )
    .await;
    assert_eq!(reply.body["updated"], 100, "{}", reply.body);
    let resolved = evaluate(&app).await;
    assert_eq!(resolved["transition"]["status"], "resolved", "{resolved}");
    wait_for(|| {
        received
            .lock()
            .unwrap()
            .iter()
            .any(|(p, b)| p == "/alerts" && b["status"] == "resolved")
            .then_some(())
    })
    .await;

    // History, the audit log and the cross-deployment view agree.
    let listed = v1(&app, Method::GET, "/deployments/scoring/alerts", None)
        .await
        .body;
    let statuses: Vec<&str> = listed["events"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["status"].as_str().unwrap())
        .collect();
    assert_eq!(statuses, ["resolved", "firing"], "{listed}");
    let audit = v1(&app, Method::GET, "/audit?resource_type=deployment", None)
        .await
        .body;
    let actions: Vec<String> = audit
        .to_string()
        .match_indices("alert.")
        .map(|(i, _)| audit.to_string()[i..i + 12].to_string())
        .collect();
    assert!(
        actions.iter().any(|a| a.starts_with("alert.firing")),
        "{audit}"
    );
    assert!(
        actions.iter().any(|a| a.starts_with("alert.resolv")),
        "{audit}"
    );
    let all = v1(&app, Method::GET, "/alerts", None).await.body;
    assert_eq!(all["firing"], json!([]), "{all}");
    let triggered = v1(
        &app,
        Method::GET,
        "/deployments/scoring/retrain-trigger",
        None,
    )
    .await
    .body;
    assert!(
        triggered["runs"]
            .as_array()
            .unwrap()
            .iter()
            .any(|r| r["reason"] == "alert"),
        "{triggered}"
    );

    // Every metric rules can watch, including serving's own.
    let metrics = v1(
        &app,
        Method::GET,
        "/deployments/scoring/alerts/metrics",
        None,
    )
    .await
    .body;
    assert_eq!(metrics["metrics"]["accuracy"], 1.0, "{metrics}");
    assert!(
        metrics["metrics"]["label_coverage"].as_f64().is_some(),
        "{metrics}"
    );

    // A caller replaying one query is flagged once the scaling has warmed up.
    let spread: Vec<[f64; 3]> = (0..200)
        .map(|i| [(i % 7) as f64, (i % 10) as f64 / 10.0, (i % 13) as f64])
        .collect();
    predict(&app, "scoring", &spread).await;
    predict(&app, "scoring", &vec![[1.0, 0.25, 3.0]; 80]).await;
    let abuse = v1(
        &app,
        Method::GET,
        "/deployments/scoring/monitoring/abuse",
        None,
    )
    .await
    .body;
    assert!(
        abuse["report"]["totals"]["near_duplicates"]
            .as_u64()
            .unwrap()
            >= 1,
        "{abuse}"
    );
    assert_eq!(abuse["throttling"], false, "{abuse}");

    // A deployment that throttles turns the flagged caller away with 429
    // and Retry-After; turning it off lets the caller through again.
    let infer = |app: &TestApp| {
        let body = json!({"inputs": [{"name": "input-0", "shape": [1, 3], "datatype": "FP64", "data": [[1.0, 0.25, 3.0]]}]});
        app.client
            .post(app.url("/v2/models/scoring/infer"))
            .json(&body)
            .send()
    };
    let set_throttling = |on: bool| {
        let body = json!({"settings": {"throttle_abusive_callers": on}});
        v1(&app, Method::PATCH, "/deployments/scoring", Some(body))
    };
    assert_eq!(set_throttling(true).await.status, 200);
    let refused = infer(&app).await.unwrap();
    assert_eq!(refused.status(), 429);
    let wait: u64 = refused.headers()["retry-after"]
        .to_str()
        .unwrap()
        .parse()
        .unwrap();
    assert!((1..=60).contains(&wait), "{wait}");
    let body: Value = refused.json().await.unwrap();
    assert_eq!(body["error_code"], "REQUEST_LIMIT_EXCEEDED", "{body}");
    let abuse = v1(
        &app,
        Method::GET,
        "/deployments/scoring/monitoring/abuse",
        None,
    )
    .await
    .body;
    assert_eq!(abuse["throttling"], true, "{abuse}");
    assert_eq!(abuse["report"]["totals"]["throttled"], 1, "{abuse}");
    assert_eq!(set_throttling(false).await.status, 200);
    assert_eq!(infer(&app).await.unwrap().status(), 200);
    let reply = v1(
        &app,
        Method::DELETE,
        "/deployments/scoring/alerts/low-accuracy",
        None,
    )
    .await;
    assert_eq!(reply.status, 200);
    let reply = v1(
        &app,
        Method::DELETE,
        "/deployments/scoring/alerts/low-accuracy",
        None,
    )
    .await;
    assert_eq!(reply.status, 404);
}
