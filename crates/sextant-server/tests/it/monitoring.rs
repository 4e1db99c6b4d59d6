//! Live monitoring over HTTP: the reference window, uploaded references,
//! drift per feature, outlier verdicts in responses, and `/metrics`.

use reqwest::Method;
use serde_json::{json, Value};

use crate::backend_tests;
use crate::helpers::TestApp;
use crate::serving::{create_deployment, register, v1};

backend_tests!(
    the_first_rows_become_the_reference_and_drift_is_found,
    an_uploaded_reference_is_used_and_bad_uploads_are_refused,
);

/// Deterministic rows `[a, b, c]`: a ~ N(shift, 1), b ~ U(0, 1), c ~ N(5, 2).
struct Rows {
    state: u64,
}

impl Rows {
    fn new(seed: u64) -> Rows {
        Rows {
            state: seed.wrapping_mul(0x9e37_79b9_7f4a_7c15) | 1,
        }
    }

    fn uniform(&mut self) -> f64 {
        self.state ^= self.state << 13;
        self.state ^= self.state >> 7;
        self.state ^= self.state << 17;
        ((self.state >> 11) as f64 + 0.5) / (1u64 << 53) as f64
    }

    fn normal(&mut self) -> f64 {
        // Box-Muller.
        let (u, v) = (self.uniform(), self.uniform());
        (-2.0 * u.ln()).sqrt() * (2.0 * std::f64::consts::PI * v).cos()
    }

    fn take(&mut self, n: usize, shift: f64) -> Vec<[f64; 3]> {
        (0..n)
            .map(|_| {
                [
                    self.normal() + shift,
                    self.uniform(),
                    5.0 + 2.0 * self.normal(),
                ]
            })
            .collect()
    }
}

async fn infer_rows(
    app: &TestApp,
    deployment: &str,
    rows: &[[f64; 3]],
) -> (Value, reqwest::header::HeaderMap) {
    let body = json!({"inputs": [{"name": "input-0", "shape": [rows.len(), 3], "datatype": "FP64", "data": rows}]});
    let response = app
        .client
        .post(app.url(&format!("/v2/models/{deployment}/infer")))
        .json(&body)
        .send()
        .await
        .expect("send");
    assert_eq!(response.status().as_u16(), 200);
    let headers = response.headers().clone();
    (response.json().await.expect("json"), headers)
}

async fn send(app: &TestApp, deployment: &str, rows: &[[f64; 3]]) {
    for chunk in rows.chunks(100) {
        infer_rows(app, deployment, chunk).await;
    }
}

fn feature<'a>(report: &'a Value, name: &str) -> &'a Value {
    report["features"]
        .as_array()
        .expect("features")
        .iter()
        .find(|f| f["name"] == name)
        .unwrap_or_else(|| panic!("no feature {name} in {report}"))
}

async fn monitoring(app: &TestApp, deployment: &str) -> Value {
    v1(
        app,
        Method::GET,
        &format!("/deployments/{deployment}/monitoring?span=1h"),
        None,
    )
    .await
    .ok()
}

async fn the_first_rows_become_the_reference_and_drift_is_found(app: TestApp) {
    register(&app, "scoring", 1, None).await;
    create_deployment(&app, "scoring", "scoring/1").await;
    let mut rows = Rows::new(7);

    // Until the reference window is full there is no verdict.
    let (answer, headers) = infer_rows(&app, "scoring", &rows.take(10, 0.0)).await;
    assert!(answer["parameters"].get("outlier").is_none(), "{answer}");
    assert!(headers.get("x-sextant-outlier").is_none());
    let status = monitoring(&app, "scoring").await;
    assert_eq!(status["reference"], Value::Null, "{status}");
    assert_eq!(status["collecting"]["rows"], 10);

    send(&app, "scoring", &rows.take(990, 0.0)).await;
    let status = monitoring(&app, "scoring").await;
    assert_eq!(status["reference"]["source"]["kind"], "window", "{status}");
    assert_eq!(status["reference"]["reference_rows"], 1000);
    let names: Vec<&str> = status["reference"]["features"]
        .as_array()
        .unwrap()
        .iter()
        .map(|f| f["name"].as_str().unwrap())
        .collect();
    assert_eq!(names, ["a", "b", "c"]);

    // Undrifted traffic: nothing drifts.
    send(&app, "scoring", &rows.take(2000, 0.0)).await;
    let status = monitoring(&app, "scoring").await;
    let report = &status["versions"][0]["report"];
    assert_eq!(status["versions"][0]["model"]["version"], "1");
    assert_eq!(report["rows"], 2000, "{report}");
    assert_eq!(report["drifted_features"], 0, "{report}");

    // Outlier verdicts ride on the answer.
    let (answer, headers) = infer_rows(&app, "scoring", &[[0.1, 0.5, 5.0]]).await;
    assert_eq!(answer["parameters"]["outlier"], false, "{answer}");
    assert_eq!(headers["x-sextant-outlier"], "false");
    let (answer, headers) = infer_rows(&app, "scoring", &[[40.0, 0.5, 5.0]]).await;
    assert_eq!(answer["parameters"]["outlier"], true, "{answer}");
    assert!(answer["parameters"]["outlier_score"].as_f64().unwrap() >= 1.0);
    assert_eq!(headers["x-sextant-outlier"], "true");
    let (answer, _) = infer_rows(&app, "scoring", &[[0.1, 0.5, 5.0], [40.0, 0.5, 5.0]]).await;
    assert_eq!(
        answer["parameters"]["outliers"],
        json!([false, true]),
        "{answer}"
    );

    // Shift `a` by two standard deviations: `a` drifts, `b` and `c` do not.
    send(&app, "scoring", &rows.take(3000, 2.0)).await;
    let status = monitoring(&app, "scoring").await;
    let report = &status["versions"][0]["report"];
    assert_eq!(feature(report, "a")["drifted"], true, "{report}");
    assert_eq!(feature(report, "b")["drifted"], false, "{report}");
    assert_eq!(feature(report, "c")["drifted"], false, "{report}");

    // The same figures on /metrics.
    let metrics = app
        .client
        .get(app.url("/metrics"))
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    assert!(
        metrics.contains(r#"sextant_monitor_feature_psi{deployment="scoring",model="scoring",version="1",feature="a"}"#),
        "{metrics}"
    );
    assert!(metrics.contains("sextant_monitor_outlier_rate{"));

    // Windows for charts.
    let windows = v1(
        &app,
        Method::GET,
        "/deployments/scoring/monitoring/windows?span=1h",
        None,
    )
    .await
    .ok();
    assert!(
        !windows["versions"][0]["windows"]
            .as_array()
            .unwrap()
            .is_empty(),
        "{windows}"
    );

    // Bad spans are refused clearly.
    let reply = v1(
        &app,
        Method::GET,
        "/deployments/scoring/monitoring?span=forever",
        None,
    )
    .await;
    assert_eq!(reply.status, 400, "{}", reply.body);
    assert!(reply.body["message"].as_str().unwrap().contains("forever"));
    let reply = v1(&app, Method::GET, "/deployments/nowhere/monitoring", None).await;
    assert_eq!(reply.status, 404);
}

async fn explain_interventional(app: &TestApp) -> crate::helpers::Reply {
    let body = json!({"dataframe_records": [{"a": 0.0, "b": 0.2, "c": 5.0}]});
    app.raw(
        Method::POST,
        "/deployments/uploads/explain?method=tree_interventional",
        body.to_string().into_bytes(),
    )
    .await
}

async fn upload(app: &TestApp, path: &str, body: Vec<u8>) -> crate::helpers::Reply {
    app.raw(Method::PUT, &format!("/api/v1{path}"), body).await
}

async fn an_uploaded_reference_is_used_and_bad_uploads_are_refused(app: TestApp) {
    register(&app, "uploads", 1, None).await;
    create_deployment(&app, "uploads", "uploads/1").await;
    let mut rows = Rows::new(11);
    let mut csv = String::from("a,b,c,label\n");
    for [a, b, c] in rows.take(5000, 0.0) {
        csv.push_str(&format!("{a},{b},{c},{}\n", u8::from(b < 0.5)));
    }

    // Bad uploads: a clear 4xx, the deployment unchanged.
    let reply = upload(
        &app,
        "/deployments/uploads/monitoring/reference",
        Vec::new(),
    )
    .await;
    assert_eq!(reply.status, 400, "{}", reply.body);
    let reply = upload(
        &app,
        "/deployments/uploads/monitoring/reference?features=a,zz",
        csv.clone().into_bytes(),
    )
    .await;
    assert_eq!(reply.status, 400, "{}", reply.body);
    assert!(
        reply.body["message"].as_str().unwrap().contains("zz"),
        "{}",
        reply.body
    );
    let reply = upload(
        &app,
        "/deployments/uploads/monitoring/reference",
        b"PAR1 not really parquet".to_vec(),
    )
    .await;
    assert_eq!(reply.status, 400, "{}", reply.body);
    let reply = upload(
        &app,
        "/deployments/missing/monitoring/reference",
        csv.clone().into_bytes(),
    )
    .await;
    assert_eq!(reply.status, 404, "{}", reply.body);
    let reply = upload(
        &app,
        "/deployments/uploads/monitoring/reference",
        b"BZh9 not really bzip2".to_vec(),
    )
    .await;
    assert_eq!(reply.status, 400, "{}", reply.body);

    // A compressed upload is told by its first bytes (it has no name).
    let compressed = {
        use std::io::Write;
        let mut encoder = bzip2::write::BzEncoder::new(Vec::new(), bzip2::Compression::fast());
        encoder.write_all(csv.as_bytes()).unwrap();
        encoder.finish().unwrap()
    };
    let reply = upload(
        &app,
        "/deployments/uploads/monitoring/reference?features=a,b,c",
        compressed,
    )
    .await;
    assert_eq!(reply.status, 200, "{}", reply.body);
    assert_eq!(reply.body["reference_rows"], 5000);

    let reply = upload(
        &app,
        "/deployments/uploads/monitoring/reference?features=a,b,c",
        csv.into_bytes(),
    )
    .await;
    assert_eq!(reply.status, 200, "{}", reply.body);
    assert_eq!(reply.body["reference_rows"], 5000);
    assert_eq!(reply.body["source"]["kind"], "upload");

    // Verdicts start with the first request: no window to fill.
    let (answer, _) = infer_rows(&app, "uploads", &[[0.0, 0.5, 5.0]]).await;
    assert_eq!(answer["parameters"]["outlier"], false, "{answer}");
    send(&app, "uploads", &rows.take(1000, 0.0)).await;
    let status = monitoring(&app, "uploads").await;
    assert_eq!(status["reference"]["source"]["kind"], "upload", "{status}");
    let report = &status["versions"][0]["report"];
    assert_eq!(report["rows"], 1001, "{report}");
    assert_eq!(report["drifted_features"], 0, "{report}");

    // The reference's rows (100, evenly spaced) are the explanation
    // background, and stay so across a restart.
    let reply = explain_interventional(&app).await;
    assert_eq!(reply.status, 200, "{}", reply.body);
    assert_eq!(reply.body["background_rows"], 100, "{}", reply.body);
    let hash = reply.body["background_hash"].clone();
    let app = app.restart().await;
    let mut reply = explain_interventional(&app).await;
    for _ in 0..200 {
        if reply.status == 200 {
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
        reply = explain_interventional(&app).await;
    }
    assert_eq!(reply.status, 200, "{}", reply.body);
    assert_eq!(reply.body["background_rows"], 100, "{}", reply.body);
    assert_eq!(
        reply.body["background_hash"], hash,
        "the same rows after a restart"
    );
}
