//! `spawn_app`: a real server on `127.0.0.1:0` over a fresh database, with
//! typed request helpers.

use std::net::SocketAddr;

use serde_json::{json, Value};
use sextant_artifacts::ArtifactStore;
use sextant_server::{AppState, Auth, Options};
use sextant_store::{Store, StoreConfig};
use sqlx::Connection;
use tempfile::TempDir;
use tokio::sync::oneshot;
use tokio::task::JoinHandle;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Backend {
    Sqlite,
    Postgres,
}

pub struct TestApp {
    pub base: String,
    pub client: reqwest::Client,
    /// A client that does not follow redirects (to see a page's 303).
    pub no_redirect: reqwest::Client,
    pub dir: TempDir,
    pub database_url: String,
    pub options: Options,
    /// The server's serving state (to flush the prediction log in tests).
    pub serving: sextant_server::serving::Serving,
    shutdown: Option<oneshot::Sender<()>>,
    server: Option<JoinHandle<std::io::Result<()>>>,
}

/// A response: status and parsed JSON body (`Value::Null` when not JSON).
#[derive(Debug)]
pub struct Reply {
    pub status: u16,
    pub body: Value,
}

impl Reply {
    /// Asserts success and returns the body.
    #[track_caller]
    pub fn ok(self) -> Value {
        assert_eq!(
            self.status, 200,
            "expected 200, got {}: {}",
            self.status, self.body
        );
        self.body
    }

    /// Asserts an MLflow error with this status and code.
    #[track_caller]
    pub fn error(self, status: u16, code: &str) -> String {
        assert_eq!(
            self.status, status,
            "unexpected status; body: {}",
            self.body
        );
        assert_eq!(
            self.body["error_code"], code,
            "unexpected error code; body: {}",
            self.body
        );
        self.body["message"]
            .as_str()
            .unwrap_or_default()
            .to_string()
    }
}

/// The password `spawn_app_with(_, Auth::Enabled)` gives the `admin` user.
pub const ADMIN_PASSWORD: &str = "admin-password";

pub async fn spawn_app(backend: Backend) -> TestApp {
    spawn_app_with(backend, Auth::Disabled).await
}

/// A PostgreSQL variant of `spawn_app_with`, `None` without a server (as
/// `spawn_postgres_app`).
pub async fn spawn_postgres_app_with(auth: Auth) -> Option<TestApp> {
    if std::env::var("SEXTANT_TEST_POSTGRES_URL").is_err() {
        assert!(
            std::env::var("CI").is_err(),
            "CI must set SEXTANT_TEST_POSTGRES_URL"
        );
        return None;
    }
    Some(spawn_app_with(Backend::Postgres, auth).await)
}

pub async fn spawn_app_with(backend: Backend, auth: Auth) -> TestApp {
    spawn_app_with_options(backend, Options::with_auth(auth)).await
}

pub async fn spawn_app_with_options(backend: Backend, options: Options) -> TestApp {
    let dir = tempfile::tempdir().expect("temp dir");
    let database_url = match backend {
        Backend::Sqlite => format!("sqlite://{}", dir.path().join("sextant.db").display()),
        Backend::Postgres => fresh_postgres_database()
            .await
            .expect("postgres URL checked by caller"),
    };
    start(dir, database_url, options).await
}

/// A PostgreSQL-backed app, or `None` when no server is configured outside
/// CI. Under CI a missing server is a failure, not a skip.
pub async fn spawn_postgres_app() -> Option<TestApp> {
    if std::env::var("SEXTANT_TEST_POSTGRES_URL").is_err() {
        assert!(
            std::env::var("CI").is_err(),
            "CI must set SEXTANT_TEST_POSTGRES_URL"
        );
        eprintln!("SEXTANT_TEST_POSTGRES_URL is not set: PostgreSQL variant not run");
        return None;
    }
    Some(spawn_app(Backend::Postgres).await)
}

/// Creates `sextant_test_<uuid>` on the configured server and returns its URL.
pub async fn fresh_postgres_database() -> Option<String> {
    let admin_url = std::env::var("SEXTANT_TEST_POSTGRES_URL").ok()?;
    let name = format!("sextant_test_{}", uuid::Uuid::new_v4().simple());
    let mut conn = sqlx::PgConnection::connect(&admin_url)
        .await
        .expect("connect to SEXTANT_TEST_POSTGRES_URL");
    sqlx::query(&format!("CREATE DATABASE {name}"))
        .execute(&mut conn)
        .await
        .expect("create test database");
    let base = admin_url
        .rsplit_once('/')
        .map(|(base, _)| base.to_string())
        .unwrap_or(admin_url);
    Some(format!("{base}/{name}"))
}

async fn start(dir: TempDir, database_url: String, options: Options) -> TestApp {
    let artifacts = dir.path().join("artifacts");
    start_with_artifacts(dir, database_url, options, artifacts).await
}

/// Another server on `other`'s database and artifact directory, as a
/// second process behind a load balancer.
pub async fn spawn_beside(other: &TestApp) -> TestApp {
    let dir = tempfile::tempdir().expect("temp dir");
    start_with_artifacts(
        dir,
        other.database_url.clone(),
        other.options.clone(),
        other.dir.path().join("artifacts"),
    )
    .await
}

async fn start_with_artifacts(
    dir: TempDir,
    database_url: String,
    options: Options,
    artifacts: std::path::PathBuf,
) -> TestApp {
    let store = Store::open(&StoreConfig {
        database_url: database_url.clone(),
        default_artifact_root: "mlflow-artifacts:/".into(),
        max_connections: 8,
    })
    .await
    .expect("open store");
    let artifacts = ArtifactStore::open(&artifacts.display().to_string(), &[], 64 * 1024 * 1024)
        .expect("artifacts");
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind");
    let address: SocketAddr = listener.local_addr().expect("address");
    let (shutdown, signal) = oneshot::channel::<()>();
    let serving = sextant_server::serving::Serving::embedded(
        store.clone(),
        artifacts.clone(),
        sextant_server::serving::ServingConfig {
            cache_dir: dir.path().join("serving"),
            python: None,
            max_blocking: 16,
            replica_name: "test".into(),
            feedback_index_rows: sextant_server::serving::feedback::DEFAULT_INDEX_ROWS,
            explain_sample_rate: sextant_server::serving::explain::DEFAULT_SAMPLE_RATE,
            explain_core_share: sextant_server::serving::explain::DEFAULT_CORE_SHARE,
        },
        std::time::Duration::from_millis(100),
    );
    let state = AppState::with_options(store, artifacts, options.clone())
        .with_serving(serving.clone())
        .with_alerting(sextant_server::alerting::AlertingConfig {
            allow_commands: true,
            ..Default::default()
        });
    if options.auth == Auth::Enabled {
        state
            .governance()
            .bootstrap(Some(ADMIN_PASSWORD))
            .await
            .expect("bootstrap admin");
    }
    let server = tokio::spawn(sextant_server::run(listener, state, async {
        let _ = signal.await;
    }));
    TestApp {
        base: format!("http://{address}"),
        client: reqwest::Client::new(),
        no_redirect: reqwest::Client::builder()
            .redirect(reqwest::redirect::Policy::none())
            .build()
            .expect("client"),
        dir,
        database_url,
        options,
        serving,
        shutdown: Some(shutdown),
        server: Some(server),
    }
}

impl TestApp {
    /// Stops the server gracefully and starts a new one on the same
    /// database and artifact directory.
    pub async fn restart(mut self) -> TestApp {
        self.stop().await;
        let dir = std::mem::replace(&mut self.dir, tempfile::tempdir().expect("temp dir"));
        start(dir, self.database_url.clone(), self.options).await
    }

    pub async fn stop(&mut self) {
        if let Some(shutdown) = self.shutdown.take() {
            let _ = shutdown.send(());
        }
        if let Some(server) = self.server.take() {
            server.await.expect("server task").expect("server result");
        }
    }

    pub fn url(&self, path: &str) -> String {
        format!("{}{}", self.base, path)
    }

    async fn reply(response: reqwest::Response) -> Reply {
        let status = response.status().as_u16();
        let text = response.text().await.expect("body");
        let body = serde_json::from_str(&text).unwrap_or(Value::Null);
        Reply { status, body }
    }

    /// `POST /api/2.0/mlflow/<path>` with a JSON body.
    pub async fn post(&self, path: &str, body: Value) -> Reply {
        let response = self
            .client
            .post(self.url(&format!("/api/2.0/mlflow/{path}")))
            .json(&body)
            .send()
            .await
            .expect("send");
        Self::reply(response).await
    }

    pub async fn patch(&self, path: &str, body: Value) -> Reply {
        let response = self
            .client
            .patch(self.url(&format!("/api/2.0/mlflow/{path}")))
            .json(&body)
            .send()
            .await
            .expect("send");
        Self::reply(response).await
    }

    pub async fn delete(&self, path: &str, body: Value) -> Reply {
        let response = self
            .client
            .delete(self.url(&format!("/api/2.0/mlflow/{path}")))
            .json(&body)
            .send()
            .await
            .expect("send");
        Self::reply(response).await
    }

    /// `GET /api/2.0/mlflow/<path>?<query>`.
    pub async fn get(&self, path: &str, query: &[(&str, &str)]) -> Reply {
        let response = self
            .client
            .get(self.url(&format!("/api/2.0/mlflow/{path}")))
            .query(query)
            .send()
            .await
            .expect("send");
        Self::reply(response).await
    }

    pub async fn raw(&self, method: reqwest::Method, path: &str, body: Vec<u8>) -> Reply {
        let response = self
            .client
            .request(method, self.url(path))
            .body(body)
            .send()
            .await
            .expect("send");
        Self::reply(response).await
    }

    pub async fn create_experiment(&self, name: &str) -> String {
        let body = self
            .post("experiments/create", json!({ "name": name }))
            .await
            .ok();
        body["experiment_id"]
            .as_str()
            .expect("experiment_id")
            .to_string()
    }

    pub async fn create_run(&self, experiment_id: &str, name: &str) -> String {
        let body = self
            .post("runs/create", json!({ "experiment_id": experiment_id, "run_name": name, "start_time": 1_700_000_000_000_i64 }))
            .await
            .ok();
        body["run"]["info"]["run_id"]
            .as_str()
            .expect("run_id")
            .to_string()
    }

    pub async fn get_run(&self, run_id: &str) -> Value {
        self.get("runs/get", &[("run_id", run_id)]).await.ok()["run"].clone()
    }
}

/// Finds `key` in a `[{key, value}]` list.
pub fn value_of<'a>(items: &'a Value, key: &str) -> Option<&'a Value> {
    items
        .as_array()?
        .iter()
        .find(|item| item["key"] == key)
        .map(|item| &item["value"])
}
