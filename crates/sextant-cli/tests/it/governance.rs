//! Secure-by-default start-up of the binary: the refusal to serve a network
//! address without authentication, the config file, and the one-time
//! bootstrap token that sets the first admin's password.

use std::io::BufRead;
use std::process::{Command, Stdio};
use std::sync::mpsc;
use std::time::{Duration, Instant};

use base64::Engine;

fn free_port() -> u16 {
    let listener = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
    listener.local_addr().expect("addr").port()
}

#[test]
fn a_network_address_without_auth_is_refused() {
    let dir = tempfile::tempdir().expect("temp dir");
    let output = Command::new(env!("CARGO_BIN_EXE_sextant"))
        .args([
            "server",
            "--host",
            "0.0.0.0",
            "--port",
            &free_port().to_string(),
            "--data-dir",
        ])
        .arg(dir.path())
        .output()
        .expect("run sextant");
    assert_eq!(output.status.code(), Some(2));
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(stderr.contains("refusing to serve 0.0.0.0"), "{stderr}");
    assert!(stderr.contains("--auth"), "{stderr}");
    assert!(
        stderr.contains("--allow-unauthenticated-network-access"),
        "{stderr}"
    );
}

#[test]
fn an_unknown_config_setting_is_an_error() {
    let dir = tempfile::tempdir().expect("temp dir");
    let config = dir.path().join("sextant.toml");
    std::fs::write(&config, "auth = true\nprot = 5000\n").unwrap();
    let output = Command::new(env!("CARGO_BIN_EXE_sextant"))
        .args(["server", "--config"])
        .arg(&config)
        .output()
        .expect("run sextant");
    assert_eq!(output.status.code(), Some(2));
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(stderr.contains("unknown setting 'prot'"), "{stderr}");
}

fn basic(user: &str, password: &str) -> String {
    format!(
        "Basic {}",
        base64::engine::general_purpose::STANDARD.encode(format!("{user}:{password}"))
    )
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_bootstrap_token_sets_the_first_admin_password_once() {
    let dir = tempfile::tempdir().expect("temp dir");
    let port = free_port();
    let config = dir.path().join("sextant.toml");
    std::fs::write(
        &config,
        format!(
            "auth = true\nport = {port}\ndata-dir = \"{}\"\n",
            dir.path().join("data").display()
        ),
    )
    .unwrap();
    let mut child = Command::new(env!("CARGO_BIN_EXE_sextant"))
        .args(["server", "--config"])
        .arg(&config)
        .env("RUST_LOG", "warn")
        .env_remove("SEXTANT_ADMIN_PASSWORD")
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .expect("spawn sextant");
    let (lines, received) = mpsc::channel();
    let stderr = child.stderr.take().unwrap();
    std::thread::spawn(move || {
        for line in std::io::BufReader::new(stderr)
            .lines()
            .map_while(Result::ok)
        {
            if lines.send(line).is_err() {
                break;
            }
        }
    });
    let deadline = Instant::now() + Duration::from_secs(20);
    let token = loop {
        let line = received
            .recv_timeout(deadline.saturating_duration_since(Instant::now()))
            .expect("the server prints a bootstrap token");
        if let Some(token) = line.split_whitespace().find(|w| w.starts_with("sxt_")) {
            break token.to_string();
        }
    };
    let base = format!("http://127.0.0.1:{port}");
    let client = reqwest::Client::new();
    let me = |authorization: Option<String>| {
        let mut request = client.get(format!("{base}/api/v1/me"));
        if let Some(authorization) = authorization {
            request = request.header("Authorization", authorization);
        }
        request.send()
    };
    let deadline = Instant::now() + Duration::from_secs(20);
    while me(None).await.is_err() {
        assert!(Instant::now() < deadline, "server did not start");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    // Authentication is on (from the config file), and the bootstrap token
    // opens nothing but its own endpoint.
    assert_eq!(me(None).await.unwrap().status(), 401);
    assert_eq!(
        me(Some(format!("Bearer {token}"))).await.unwrap().status(),
        401
    );
    let bootstrap = |token: &str| {
        Command::new(env!("CARGO_BIN_EXE_sextant"))
            .args(["bootstrap", "--server", &base, "--token", token])
            .env("SEXTANT_NEW_PASSWORD", "first-admin-password")
            .stdin(Stdio::null())
            .output()
            .expect("run sextant bootstrap")
    };
    let done = bootstrap(&token);
    assert!(
        done.status.success(),
        "{}",
        String::from_utf8_lossy(&done.stderr)
    );
    let answer = me(Some(basic("admin", "first-admin-password")))
        .await
        .unwrap();
    assert_eq!(answer.status(), 200);
    let body: serde_json::Value = answer.json().await.unwrap();
    assert_eq!(body["is_admin"], true);
    // Spent: a second use fails.
    let again = bootstrap(&token);
    assert!(!again.status.success());
    assert!(String::from_utf8_lossy(&again.stderr).contains("401"));
    let _ = child.kill();
    let _ = child.wait();
}
