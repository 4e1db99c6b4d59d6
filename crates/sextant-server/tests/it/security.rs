//! What a web page, a foreign host name or a local file path can make the
//! server do: cross-site requests, DNS rebinding, local data files and
//! anonymous metrics (issue 13's probe).

use reqwest::header;
use serde_json::json;
use sextant_server::{Auth, Options};

use crate::helpers::{spawn_app, spawn_app_with_options, Backend, TestApp, ADMIN_PASSWORD};
use crate::serving::{create_deployment, register, v1};

async fn experiment_count(app: &crate::helpers::TestApp) -> usize {
    app.post("experiments/search", json!({"max_results": 1000}))
        .await
        .ok()["experiments"]
        .as_array()
        .map_or(0, Vec::len)
}

/// A default server (no `--auth`) refuses what a page on another origin
/// sends: a form POST, JSON as text/plain, a fetch marked cross-site; and
/// it answers no Host name a rebinding page would use. Programs (no
/// Origin) and the server's own pages work as before.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn pages_on_other_origins_cannot_change_or_read_a_default_server() {
    let app = spawn_app(Backend::Sqlite).await;
    let create = app.url("/api/2.0/mlflow/experiments/create");
    let before = experiment_count(&app).await;
    let host = app.base.trim_start_matches("http://").to_string();
    let attempts = [
        // A cross-site HTML form.
        app.client
            .post(&create)
            .header(header::ORIGIN, "http://evil.example")
            .header(header::CONTENT_TYPE, "application/x-www-form-urlencoded")
            .header("sec-fetch-site", "cross-site")
            .body(r#"{"name":"forged-form"}"#),
        // JSON sent as text/plain (no preflight needed), without an Origin.
        app.client
            .post(&create)
            .header(header::CONTENT_TYPE, "text/plain;charset=UTF-8")
            .body(r#"{"name":"forged-text"}"#),
        // A no-cors fetch of an untyped body: the browser names the origin.
        app.client
            .post(&create)
            .header(header::ORIGIN, "http://evil.example")
            .body(r#"{"name":"forged-blob"}"#),
        // Marked cross-site by the browser, proper JSON.
        app.client
            .post(&create)
            .header("sec-fetch-site", "cross-site")
            .json(&json!({"name": "forged-fetch"})),
        // A sandboxed frame's opaque origin.
        app.client
            .post(&create)
            .header(header::ORIGIN, "null")
            .json(&json!({"name": "forged-null"})),
    ];
    for attempt in attempts {
        let response = attempt.send().await.unwrap();
        let status = response.status().as_u16();
        let body: serde_json::Value = response.json().await.unwrap_or_default();
        assert!(matches!(status, 400 | 403), "{status} {body}");
        assert!(
            body["error_code"].is_string() && body["message"].is_string(),
            "{body}"
        );
    }
    assert_eq!(experiment_count(&app).await, before, "nothing was created");
    // The server's own origin, and programs without one, still work.
    let own = app
        .client
        .post(&create)
        .header(header::ORIGIN, format!("http://{host}"))
        .header("sec-fetch-site", "same-origin")
        .json(&json!({"name": "from-our-own-page"}))
        .send()
        .await
        .unwrap();
    assert_eq!(own.status(), 200);
    app.create_experiment("from-a-program").await;
    // DNS rebinding: the page's own name in Host is refused, even for reads;
    // addresses and localhost are answered; probes answer any name.
    let search = app.url("/api/2.0/mlflow/experiments/search?max_results=10");
    for (name, expected) in [
        ("evil.example:5000", 403),
        ("rebind.attacker.test", 403),
        ("localhost:5000", 200),
        ("127.0.0.1", 200),
        ("[::1]:5000", 200),
    ] {
        let response = app
            .client
            .get(&search)
            .header(header::HOST, name)
            .send()
            .await
            .unwrap();
        assert_eq!(response.status().as_u16(), expected, "Host: {name}");
    }
    let health = app
        .client
        .get(app.url("/health"))
        .header(header::HOST, "evil.example")
        .send()
        .await
        .unwrap();
    assert_eq!(health.status(), 200);
}

/// `--allowed-hosts` and `--cors-allowed-origins` open what an operator
/// names, and nothing else.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn operators_allow_their_own_names_and_origins() {
    let mut options = Options::with_auth(Auth::Disabled);
    options.origin.allowed_hosts = vec!["*.svc.cluster.local".into(), "mlops.example".into()];
    options.origin.allowed_origins = vec!["https://portal.example".into()];
    let app = spawn_app_with_options(Backend::Sqlite, options).await;
    let search = app.url("/api/2.0/mlflow/experiments/search?max_results=10");
    for (name, expected) in [
        ("sextant.ml.svc.cluster.local:5000", 200),
        ("mlops.example", 200),
        ("mlops.example.evil", 403),
    ] {
        let response = app
            .client
            .get(&search)
            .header(header::HOST, name)
            .send()
            .await
            .unwrap();
        assert_eq!(response.status().as_u16(), expected, "Host: {name}");
    }
    let create = app.url("/api/2.0/mlflow/experiments/create");
    for (origin, expected) in [
        ("https://portal.example", 200),
        ("https://other.example", 403),
    ] {
        let response = app
            .client
            .post(&create)
            .header(header::ORIGIN, origin)
            .header("sec-fetch-site", "cross-site")
            .json(&json!({"name": format!("from {origin}")}))
            .send()
            .await
            .unwrap();
        assert_eq!(response.status().as_u16(), expected, "Origin: {origin}");
    }
}

/// A logged dataset that names a local file is read only inside the
/// operator's `--data-roots`, whether or not authentication is on: the
/// probe read any CSV on the machine through `POST /api/v1/drift`.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn local_dataset_files_are_read_only_inside_the_data_roots() {
    let outside = tempfile::tempdir().unwrap();
    let inside = tempfile::tempdir().unwrap();
    let csv = "a,b\n1,2\n3,4\n5,6\n7,8\n";
    std::fs::write(outside.path().join("secret.csv"), csv).unwrap();
    std::fs::write(inside.path().join("train.csv"), csv).unwrap();
    // A symlink inside a root to a file outside it leads nowhere.
    std::os::unix::fs::symlink(
        outside.path().join("secret.csv"),
        inside.path().join("link.csv"),
    )
    .unwrap();
    let mut options = Options::with_auth(Auth::Disabled);
    options.data_roots = vec![std::fs::canonicalize(inside.path()).unwrap()];
    let app = spawn_app_with_options(Backend::Sqlite, options).await;
    let experiment = app.create_experiment("data").await;
    let run = app.create_run(&experiment, "r").await;
    let log = |name: &str, path: std::path::PathBuf| {
        let source = json!({"uri": path.display().to_string()}).to_string();
        app.post(
            "runs/log-inputs",
            json!({"run_id": run, "datasets": [{"dataset": {"name": name, "digest": name, "source_type": "local", "source": source}}]}),
        )
    };
    log("secret", outside.path().join("secret.csv")).await.ok();
    log("train", inside.path().join("train.csv")).await.ok();
    log(
        "escape",
        inside
            .path()
            .join("../")
            .join(outside.path().file_name().unwrap())
            .join("secret.csv"),
    )
    .await
    .ok();
    log("link", inside.path().join("link.csv")).await.ok();
    let drift = |dataset: &str| {
        app.client
            .post(app.url("/api/v1/drift"))
            .json(&json!({
                "reference": {"run_id": run, "dataset": "train"},
                "current": {"run_id": run, "dataset": dataset},
            }))
            .send()
    };
    let read = drift("train").await.unwrap();
    assert_eq!(read.status(), 200, "{}", read.text().await.unwrap());
    for refused in ["secret", "escape", "link"] {
        let response = drift(refused).await.unwrap();
        let status = response.status().as_u16();
        let body: serde_json::Value = response.json().await.unwrap();
        assert_eq!(status, 400, "{refused}: {body}");
        assert!(
            body["message"].as_str().unwrap().contains("--data-roots"),
            "{body}"
        );
    }
}

/// With `--auth`, `/metrics` (deployment, model and feature names) needs a
/// signed-in caller unless the operator made it public.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn metrics_need_credentials_on_a_secured_server() {
    let app = spawn_app_with_options(Backend::Sqlite, Options::with_auth(Auth::Enabled)).await;
    let anonymous = app.client.get(app.url("/metrics")).send().await.unwrap();
    assert_eq!(anonymous.status(), 401);
    let signed_in = app
        .client
        .get(app.url("/metrics"))
        .basic_auth("admin", Some(ADMIN_PASSWORD))
        .send()
        .await
        .unwrap();
    assert_eq!(signed_in.status(), 200);
    let mut options = Options::with_auth(Auth::Enabled);
    options.public_metrics = true;
    let public = spawn_app_with_options(Backend::Sqlite, options).await;
    let scraped = public
        .client
        .get(public.url("/metrics"))
        .send()
        .await
        .unwrap();
    assert_eq!(scraped.status(), 200);
}

/// A user's webhook (alert rule or retraining trigger) reaches no internal
/// address: loopback, private, link-local and metadata targets are refused
/// when set, names resolving there are refused when called, redirects are
/// not followed, and a failed delivery says nothing about the target.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn webhooks_reach_no_internal_address() {
    let app = spawn_app(Backend::Sqlite).await;
    register(&app, "hooked", 1, None).await;
    create_deployment(&app, "hooked", "hooked/1").await;
    let rule = |url: &str| json!({"metric": "accuracy", "condition": {"threshold": {"op": "<", "value": 0.9}}, "webhooks": [url]});
    for url in [
        "http://127.0.0.1:9/x",
        "http://localhost:9/x",
        "http://169.254.169.254/latest/meta-data/",
        "http://10.0.0.1/x",
        "http://[::1]:9/x",
        "http://2130706433/x",
        "http://[::ffff:127.0.0.1]/x",
    ] {
        for (path, body) in [
            ("/deployments/hooked/alerts/r", rule(url)),
            (
                "/deployments/hooked/retrain-trigger",
                json!({"webhook": url}),
            ),
        ] {
            let reply = v1(&app, reqwest::Method::PUT, path, Some(body)).await;
            assert_eq!(reply.status, 400, "{url} {path}: {}", reply.body);
            assert!(
                reply.body["message"]
                    .as_str()
                    .unwrap()
                    .contains("internal address"),
                "{}",
                reply.body
            );
        }
    }

    // Where an admin allows loopback, a redirect elsewhere is not followed
    // and the run's record says only that delivery failed.
    let (hooks, received) = redirecting_receiver().await;
    let mut app: TestApp = app;
    app.options.webhooks.allowed_hosts = vec!["127.0.0.1".into()];
    let app = app.restart().await;
    let reply = v1(
        &app,
        reqwest::Method::PUT,
        "/deployments/hooked/retrain-trigger",
        Some(json!({"webhook": format!("{hooks}/redirect")})),
    )
    .await;
    assert_eq!(reply.status, 200, "{}", reply.body);
    let started = v1(
        &app,
        reqwest::Method::POST,
        "/deployments/hooked/retrain",
        Some(json!({})),
    )
    .await;
    assert_eq!(started.status, 200, "{}", started.body);
    let run_id = started.body["id"].as_str().unwrap().to_string();
    let mut run = serde_json::Value::Null;
    for _ in 0..100 {
        let listed = v1(
            &app,
            reqwest::Method::GET,
            "/deployments/hooked/retrain-trigger",
            None,
        )
        .await;
        run = listed.body["runs"]
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
    assert_eq!(run["status"], "failed", "{run}");
    let output = run["output"].as_str().unwrap();
    assert!(
        !output.contains("127.0.0.1") && !output.contains("307"),
        "{output}"
    );
    let paths: Vec<String> = received.lock().unwrap().clone();
    assert_eq!(
        paths,
        vec!["/redirect".to_string()],
        "the redirect was not followed"
    );
}

/// A receiver that answers `/redirect` with a redirect to `/target` and
/// keeps the paths it was asked for.
async fn redirecting_receiver() -> (String, std::sync::Arc<std::sync::Mutex<Vec<String>>>) {
    let received: std::sync::Arc<std::sync::Mutex<Vec<String>>> = Default::default();
    let kept = received.clone();
    let app = axum::Router::new().fallback(move |uri: axum::http::Uri| {
        let kept = kept.clone();
        async move {
            kept.lock().unwrap().push(uri.path().to_string());
            (
                axum::http::StatusCode::TEMPORARY_REDIRECT,
                [(axum::http::header::LOCATION, "/target")],
            )
        }
    });
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("http://{}", listener.local_addr().unwrap());
    tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });
    (url, received)
}

/// Idle, slow and surplus connections cannot starve the server: idle
/// sockets and slow headers are closed after the header timeout, stalled
/// bodies after the body timeout, and connections beyond the limit are
/// closed at once, so `/health` answers again as soon as the idle ones are
/// gone (the probe held 300 idle sockets and `/health` timed out).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn idle_and_slow_connections_are_timed_out_and_limited() {
    use std::time::{Duration, Instant};
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    use tokio::net::TcpStream;

    let mut options = Options::with_auth(Auth::Disabled);
    options.connections = sextant_server::ConnectionLimits {
        max_connections: 8,
        header_timeout: Duration::from_millis(800),
        body_timeout: Duration::from_millis(800),
    };
    let app = spawn_app_with_options(Backend::Sqlite, options).await;
    let address = app.base.trim_start_matches("http://").to_string();
    // Closed by the server: reading gives EOF or an error, never hangs.
    async fn closed_within(stream: &mut TcpStream, limit: Duration) -> bool {
        let mut buffer = [0u8; 1024];
        loop {
            match tokio::time::timeout(limit, stream.read(&mut buffer)).await {
                Err(_) => return false,
                Ok(Ok(0)) | Ok(Err(_)) => return true,
                Ok(Ok(_)) => continue,
            }
        }
    }
    let health = || async {
        let client = reqwest::Client::builder()
            .pool_max_idle_per_host(0)
            .timeout(Duration::from_secs(2))
            .build()
            .unwrap();
        client
            .get(format!("http://{address}/health"))
            .send()
            .await
            .map(|r| r.status().as_u16())
            .ok()
    };
    assert_eq!(health().await, Some(200));
    // Let the server see that connection end before counting.
    tokio::time::sleep(Duration::from_millis(300)).await;

    // Surplus connections are closed at once while the limit is held.
    let mut idle = Vec::new();
    for _ in 0..8 {
        idle.push(TcpStream::connect(&address).await.unwrap());
    }
    tokio::time::sleep(Duration::from_millis(100)).await;
    let mut surplus = TcpStream::connect(&address).await.unwrap();
    assert!(closed_within(&mut surplus, Duration::from_millis(700)).await);
    // The idle ones go after the header timeout; then /health answers.
    let started = Instant::now();
    for stream in &mut idle {
        assert!(closed_within(stream, Duration::from_secs(3)).await);
    }
    assert!(started.elapsed() < Duration::from_secs(3));
    assert_eq!(health().await, Some(200));

    // Headers sent a byte at a time, too slowly: closed.
    let mut slow = TcpStream::connect(&address).await.unwrap();
    slow.write_all(b"GET /health HTTP/1.1\r\nHost: 127.0.0.1\r\n")
        .await
        .unwrap();
    assert!(closed_within(&mut slow, Duration::from_secs(3)).await);

    // A body that stops arriving: answered (4xx) or closed, not held.
    let mut stalled = TcpStream::connect(&address).await.unwrap();
    stalled
        .write_all(b"POST /api/2.0/mlflow/experiments/create HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: application/json\r\nContent-Length: 100\r\n\r\n{\"name\":")
        .await
        .unwrap();
    let mut answer = Vec::new();
    let read = tokio::time::timeout(Duration::from_secs(3), stalled.read_to_end(&mut answer)).await;
    assert!(read.is_ok(), "a stalled body held its connection");
    let text = String::from_utf8_lossy(&answer);
    assert!(text.is_empty() || text.starts_with("HTTP/1.1 4"), "{text}");
    assert_eq!(health().await, Some(200));
}
