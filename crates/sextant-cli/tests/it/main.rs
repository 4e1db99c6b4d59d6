//! Tests of the built `sextant` binary: start-up, graceful stop, and no
//! acknowledged write lost when the process is killed with SIGKILL.

mod governance;

use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use serde_json::{json, Value};

struct Server {
    child: Child,
    base: String,
}

fn free_port() -> u16 {
    let listener = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
    listener.local_addr().expect("addr").port()
}

async fn start(data_dir: &std::path::Path) -> Server {
    let port = free_port();
    let child = Command::new(env!("CARGO_BIN_EXE_sextant"))
        .args(["server", "--port", &port.to_string(), "--data-dir"])
        .arg(data_dir)
        .env("RUST_LOG", "warn")
        .stdout(Stdio::null())
        .stderr(Stdio::inherit())
        .spawn()
        .expect("spawn sextant");
    let base = format!("http://127.0.0.1:{port}");
    let client = reqwest::Client::new();
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        if let Ok(response) = client.get(format!("{base}/health")).send().await {
            if response.status() == 200 {
                break;
            }
        }
        assert!(Instant::now() < deadline, "server did not become healthy");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    Server { child, base }
}

async fn post(
    client: &reqwest::Client,
    base: &str,
    path: &str,
    body: Value,
) -> reqwest::Result<(u16, Value)> {
    let response = client
        .post(format!("{base}/api/2.0/mlflow/{path}"))
        .json(&body)
        .send()
        .await?;
    let status = response.status().as_u16();
    let body = response.json().await.unwrap_or(Value::Null);
    Ok((status, body))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn acknowledged_writes_survive_sigkill() {
    let dir = tempfile::tempdir().expect("temp dir");
    let mut server = start(dir.path()).await;
    let client = reqwest::Client::new();
    let (status, run) = post(
        &client,
        &server.base,
        "runs/create",
        json!({"experiment_id": "0", "run_name": "kill"}),
    )
    .await
    .expect("create run");
    assert_eq!(status, 200);
    let run_id = run["run"]["info"]["run_id"]
        .as_str()
        .expect("run id")
        .to_string();

    let acknowledged: Arc<Mutex<Vec<(String, i64)>>> = Arc::default();
    let stop = Arc::new(AtomicBool::new(false));
    let mut writers = tokio::task::JoinSet::new();
    for writer in 0..8 {
        let (client, base, run_id) = (client.clone(), server.base.clone(), run_id.clone());
        let (acknowledged, stop) = (acknowledged.clone(), stop.clone());
        writers.spawn(async move {
            let key = format!("w{writer}");
            let mut step = 0_i64;
            while !stop.load(Ordering::Relaxed) {
                let body = json!({"run_id": run_id, "key": key, "value": step as f64, "timestamp": 1, "step": step});
                match post(&client, &base, "runs/log-metric", body).await {
                    Ok((200, _)) => acknowledged.lock().expect("lock").push((key.clone(), step)),
                    Ok((status, body)) => panic!("unexpected answer {status}: {body}"),
                    Err(_) => break, // the server is gone
                }
                step += 1;
            }
        });
    }
    tokio::time::sleep(Duration::from_millis(1500)).await;
    server.child.kill().expect("SIGKILL");
    server.child.wait().expect("reap");
    stop.store(true, Ordering::Relaxed);
    while writers.join_next().await.is_some() {}

    let acknowledged = acknowledged.lock().expect("lock").clone();
    assert!(
        acknowledged.len() > 100,
        "too few writes before the kill: {}",
        acknowledged.len()
    );
    let mut server = start(dir.path()).await;
    for writer in 0..8 {
        let key = format!("w{writer}");
        let response = client
            .get(format!(
                "{}/api/2.0/mlflow/metrics/get-history",
                server.base
            ))
            .query(&[("run_id", run_id.as_str()), ("metric_key", key.as_str())])
            .send()
            .await
            .expect("history");
        let history: Value = response.json().await.expect("json");
        let stored: std::collections::HashSet<i64> = history["metrics"]
            .as_array()
            .map_or_else(Default::default, |m| {
                m.iter().filter_map(|p| p["step"].as_i64()).collect()
            });
        for (_, step) in acknowledged.iter().filter(|(k, _)| *k == key) {
            assert!(
                stored.contains(step),
                "acknowledged point {key}@{step} lost after SIGKILL"
            );
        }
    }
    stop_gracefully(&mut server);
}

fn stop_gracefully(server: &mut Server) {
    let status = Command::new("kill")
        .args(["-TERM", &server.child.id().to_string()])
        .status()
        .expect("kill -TERM");
    assert!(status.success());
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        if let Some(exit) = server.child.try_wait().expect("wait") {
            assert!(exit.success(), "sextant exited with {exit} after SIGTERM");
            return;
        }
        assert!(
            Instant::now() < deadline,
            "sextant did not stop within 10 s of SIGTERM"
        );
        std::thread::sleep(Duration::from_millis(20));
    }
}

#[tokio::test]
async fn bad_backend_uri_fails_with_a_clear_message() {
    let dir = tempfile::tempdir().expect("temp dir");
    let output = Command::new(env!("CARGO_BIN_EXE_sextant"))
        .args([
            "server",
            "--port",
            &free_port().to_string(),
            "--backend-store-uri",
            "mysql://x@y/z",
            "--data-dir",
        ])
        .arg(dir.path())
        .output()
        .expect("run sextant");
    assert_eq!(output.status.code(), Some(2));
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(stderr.contains("unsupported backend store URI"), "{stderr}");
}

/// A log written to a file is plain text (no terminal colour codes), and a
/// command piped into a reader that stops early (`| head`) ends quietly.
#[tokio::test]
async fn output_for_files_and_pipes_is_plain_and_quiet() {
    use std::io::Read;

    let dir = tempfile::tempdir().expect("temp dir");
    // The server's log, sent to a file.
    let log_path = dir.path().join("server.log");
    let log = std::fs::File::create(&log_path).expect("log file");
    let port = free_port();
    let child = Command::new(env!("CARGO_BIN_EXE_sextant"))
        .args(["server", "--port", &port.to_string(), "--data-dir"])
        .arg(dir.path().join("data"))
        .env_remove("NO_COLOR")
        .stdout(Stdio::null())
        .stderr(log)
        .spawn()
        .expect("spawn sextant");
    let mut server = Server {
        child,
        base: String::new(),
    };
    let client = reqwest::Client::new();
    let deadline = Instant::now() + Duration::from_secs(20);
    while !client
        .get(format!("http://127.0.0.1:{port}/health"))
        .send()
        .await
        .is_ok_and(|r| r.status() == 200)
    {
        assert!(Instant::now() < deadline, "the server never answered");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    stop_gracefully(&mut server);
    let text = std::fs::read_to_string(&log_path).unwrap();
    assert!(
        !text.contains('\u{1b}'),
        "colour codes in a log file:\n{text}"
    );

    // A long report piped into a reader that takes one byte and leaves.
    let mut reference = String::from("x,y\n");
    let mut current = String::from("x,y\n");
    for i in 0..2000 {
        reference.push_str(&format!("{},{}\n", i % 97, i % 13));
        current.push_str(&format!("{},{}\n", i % 89 + 20, i % 7));
    }
    std::fs::write(dir.path().join("ref.csv"), reference).unwrap();
    std::fs::write(dir.path().join("cur.csv"), current).unwrap();
    let mut drift = Command::new(env!("CARGO_BIN_EXE_sextant"))
        .args(["drift", "--format", "html"])
        .arg(dir.path().join("ref.csv"))
        .arg(dir.path().join("cur.csv"))
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("spawn sextant drift");
    let mut stdout = drift.stdout.take().unwrap();
    let mut first = [0u8; 1];
    stdout.read_exact(&mut first).unwrap();
    drop(stdout);
    let mut stderr = String::new();
    drift
        .stderr
        .take()
        .unwrap()
        .read_to_string(&mut stderr)
        .unwrap();
    let status = drift.wait().unwrap();
    assert!(
        status.success() && !stderr.contains("panicked"),
        "{status}: {stderr}"
    );
}
