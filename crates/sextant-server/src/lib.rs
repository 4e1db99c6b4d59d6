//! The Sextant HTTP server: MLflow's REST API (tracking, logged models,
//! registry), the `mlflow-artifacts` proxy and health endpoints, on axum.
//!
//! [`router`] builds the routes over an [`AppState`]; [`run`] serves them on
//! a listener until a shutdown future resolves, then drains in-flight
//! requests and flushes the store before returning. Handlers are thin: they
//! turn wire DTOs (`sextant-api`) into store calls (`sextant-store`,
//! `sextant-artifacts`) and map errors in one place (`error`).

pub mod alerting;
mod error;
mod extract;
pub mod guard;
mod openapi;
pub mod origin;
pub mod outbound;
mod resource;
mod routes;
mod series_cache;
pub mod serving;
mod tables;
mod validation;

use std::future::Future;
use std::sync::Arc;

use axum::Router;
use sextant_artifacts::ArtifactStore;
use sextant_governance::Governance;
use sextant_store::Store;
use tokio::net::TcpListener;

pub use crate::error::ApiError;
pub use crate::openapi::openapi_json;
pub use crate::routes::{route_table, RouteInfo};

/// Everything a handler needs; cheap to clone.
#[derive(Clone)]
pub struct AppState {
    inner: Arc<StateInner>,
}

struct StateInner {
    store: Store,
    artifacts: ArtifactStore,
    governance: Governance,
    options: Options,
    /// Deployments served by this process; `None` serves none (and mounts
    /// no inference routes).
    serving: Option<serving::Serving>,
    alerting: alerting::Alerting,
    /// DLE nannies fitted for regressors' performance reports.
    nannies: routes::feedback::NannyCache,
    /// Metric histories for the UI's charts.
    series: series_cache::SeriesCache,
}

/// Whether requests must authenticate.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Auth {
    /// Single-user local use: every request is the anonymous local user.
    Disabled,
    /// Every route but health, version and the API docs needs credentials.
    Enabled,
}

/// How the server runs.
#[derive(Debug, Clone)]
pub struct Options {
    pub auth: Auth,
    /// Whether run data writes (metrics, params, tags: thousands a second)
    /// get an audit entry each. Every other change, and every refusal, is
    /// always audited.
    pub audit_run_data: bool,
    /// Held by every signed-in user on every resource; `None` (the
    /// default) means users see only what is granted to them.
    pub default_permission: Option<sextant_core::Permission>,
    /// Which hosts and pages browsers may reach the server from.
    pub origin: origin::OriginPolicy,
    /// Directories whose files logged datasets may name: local dataset
    /// files are read (for drift reports and monitoring references) only
    /// from inside these. None by default.
    pub data_roots: Vec<std::path::PathBuf>,
    /// Whether `/metrics` answers without credentials on a server with
    /// authentication (Prometheus scrapers often have none).
    pub public_metrics: bool,
    /// Internal hosts that users' webhooks may reach anyway
    /// (`--webhook-allowed-hosts`).
    pub webhooks: outbound::OutboundPolicy,
    /// Connection limits and timeouts.
    pub connections: ConnectionLimits,
}

impl Options {
    /// Run data writes are audited when there are identities to account
    /// for: without authentication each entry would only say "anonymous
    /// from 127.0.0.1", at a measured cost of about 35 µs of CPU per write.
    pub fn with_auth(auth: Auth) -> Options {
        Options {
            auth,
            audit_run_data: auth == Auth::Enabled,
            default_permission: None,
            origin: origin::OriginPolicy::default(),
            data_roots: Vec::new(),
            public_metrics: false,
            webhooks: outbound::OutboundPolicy::default(),
            connections: ConnectionLimits::default(),
        }
    }
}

impl AppState {
    pub fn new(store: Store, artifacts: ArtifactStore, auth: Auth) -> AppState {
        AppState::with_options(store, artifacts, Options::with_auth(auth))
    }

    pub fn with_options(store: Store, artifacts: ArtifactStore, options: Options) -> AppState {
        let governance = Governance::new(
            store.clone(),
            options.auth == Auth::Enabled,
            options.default_permission,
        );
        let alerting =
            alerting::Alerting::new(alerting::AlertingConfig::default(), &options.webhooks);
        AppState {
            inner: Arc::new(StateInner {
                store,
                artifacts,
                governance,
                options,
                serving: None,
                alerting,
                nannies: routes::feedback::NannyCache::default(),
                series: series_cache::SeriesCache::default(),
            }),
        }
    }

    /// The same state, serving deployments with `serving`.
    pub fn with_serving(self, serving: serving::Serving) -> AppState {
        let inner = Arc::try_unwrap(self.inner)
            .unwrap_or_else(|_| panic!("with_serving is called before the state is shared"));
        AppState {
            inner: Arc::new(StateInner {
                serving: Some(serving),
                ..inner
            }),
        }
    }

    /// The same state, alerting with `config`.
    pub fn with_alerting(self, config: alerting::AlertingConfig) -> AppState {
        let inner = Arc::try_unwrap(self.inner)
            .unwrap_or_else(|_| panic!("with_alerting is called before the state is shared"));
        AppState {
            inner: Arc::new(StateInner {
                alerting: alerting::Alerting::new(config, &inner.options.webhooks),
                ..inner
            }),
        }
    }

    pub fn alerting(&self) -> &alerting::Alerting {
        &self.inner.alerting
    }

    pub(crate) fn nannies(&self) -> &routes::feedback::NannyCache {
        &self.inner.nannies
    }

    pub(crate) fn series_cache(&self) -> &series_cache::SeriesCache {
        &self.inner.series
    }

    pub fn serving(&self) -> Option<&serving::Serving> {
        self.inner.serving.as_ref()
    }

    pub fn options(&self) -> &Options {
        &self.inner.options
    }

    pub fn audit_run_data(&self) -> bool {
        self.inner.options.audit_run_data
    }

    pub fn governance(&self) -> &Governance {
        &self.inner.governance
    }

    pub fn store(&self) -> &Store {
        &self.inner.store
    }

    pub fn artifacts(&self) -> &ArtifactStore {
        &self.inner.artifacts
    }
}

/// All routes of the server.
pub fn router(state: AppState) -> Router {
    routes::router(state)
}

/// The routes of a serving replica: inference, health and metrics only;
/// `check_callers` asks the followed server who may call (see
/// `serving::replica_auth`).
pub fn serving_router(
    serving: serving::Serving,
    check_callers: bool,
    origin: origin::OriginPolicy,
) -> Router {
    routes::serving_router(serving, check_callers, origin)
}

/// How many connections the server holds and how long it waits for them.
#[derive(Debug, Clone, Copy)]
pub struct ConnectionLimits {
    /// Connections open at once; more are closed as soon as they are
    /// accepted, so descriptors never run out under idle or slow sockets.
    pub max_connections: usize,
    /// How long a connection may take to send a request's headers, and
    /// how long it may sit idle between requests (keep-alive).
    pub header_timeout: std::time::Duration,
    /// How long a request body may go without sending anything.
    pub body_timeout: std::time::Duration,
}

impl Default for ConnectionLimits {
    fn default() -> Self {
        ConnectionLimits {
            max_connections: 4096,
            header_timeout: std::time::Duration::from_secs(15),
            body_timeout: std::time::Duration::from_secs(60),
        }
    }
}

/// Serves `app` like [`run`]: `TCP_NODELAY` on every connection (small
/// responses must not wait for Nagle's algorithm), at most
/// `limits.max_connections` at once, and no connection kept that sends
/// nothing: idle, slow headers and stalled bodies are timed out (the probe
/// made `/health` time out with 300 idle sockets; `axum::serve` sets no
/// timer at all).
pub async fn serve_app(
    listener: TcpListener,
    app: Router,
    shutdown: impl Future<Output = ()> + Send + 'static,
    limits: ConnectionLimits,
) -> std::io::Result<()> {
    use axum::extract::ConnectInfo;
    use hyper_util::rt::{TokioIo, TokioTimer};
    use tower::ServiceExt;

    let app = app.layer(tower_http::timeout::RequestBodyTimeoutLayer::new(
        limits.body_timeout,
    ));
    let permits = Arc::new(tokio::sync::Semaphore::new(limits.max_connections.max(1)));
    let graceful = hyper_util::server::graceful::GracefulShutdown::new();
    let mut connections = tokio::task::JoinSet::new();
    let mut refused_logged = std::time::Instant::now() - std::time::Duration::from_secs(60);
    let mut shutdown = std::pin::pin!(shutdown);
    loop {
        // Finished connections leave the set as we go.
        while connections.try_join_next().is_some() {}
        let (stream, peer) = tokio::select! {
            accepted = listener.accept() => match accepted {
                Ok(accepted) => accepted,
                Err(err) => {
                    // Out of descriptors or a connection reset before accept:
                    // wait a little, never stop serving.
                    tracing::warn!(error = %err, "accept failed");
                    tokio::time::sleep(std::time::Duration::from_millis(50)).await;
                    continue;
                }
            },
            () = &mut shutdown => break,
        };
        let Ok(permit) = permits.clone().try_acquire_owned() else {
            if refused_logged.elapsed() > std::time::Duration::from_secs(10) {
                tracing::warn!(
                    limit = limits.max_connections,
                    "connection limit reached: closing new connections"
                );
                refused_logged = std::time::Instant::now();
            }
            drop(stream);
            continue;
        };
        if let Err(err) = stream.set_nodelay(true) {
            tracing::debug!(error = %err, "cannot set TCP_NODELAY");
        }
        let app = app.clone();
        let service = hyper::service::service_fn(
            move |mut request: hyper::Request<hyper::body::Incoming>| {
                request.extensions_mut().insert(ConnectInfo(peer));
                app.clone().oneshot(request.map(axum::body::Body::new))
            },
        );
        let connection = hyper::server::conn::http1::Builder::new()
            .timer(TokioTimer::new())
            .header_read_timeout(limits.header_timeout)
            .keep_alive(true)
            .serve_connection(TokioIo::new(stream), service);
        let connection = graceful.watch(connection);
        connections.spawn(async move {
            if let Err(err) = connection.await {
                tracing::debug!(error = %err, "connection ended with an error");
            }
            drop(permit);
        });
    }
    drop(listener);
    // Requests in flight finish; idle connections close at once.
    graceful.shutdown().await;
    while connections.join_next().await.is_some() {}
    Ok(())
}

/// Serves `router(state)` on `listener` until `shutdown` resolves. New
/// connections stop at once; requests in flight finish; then the store's
/// writer commits what it has queued and the pool closes, so no
/// acknowledged write is lost.
pub async fn run(
    listener: TcpListener,
    state: AppState,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> std::io::Result<()> {
    let app = router(state.clone());
    let served = serve_app(listener, app, shutdown, state.options().connections).await;
    if let Some(serving) = state.serving() {
        serving.shutdown().await;
    }
    state.store().close().await;
    served
}
