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
pub mod serving;
mod tables;

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

/// Serves `app` like [`run`], with `TCP_NODELAY` on every connection
/// (small responses must not wait for Nagle's algorithm).
pub async fn serve_app(
    listener: TcpListener,
    app: Router,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> std::io::Result<()> {
    use axum::serve::ListenerExt;
    let listener = listener.tap_io(|tcp| {
        if let Err(err) = tcp.set_nodelay(true) {
            tracing::debug!(error = %err, "cannot set TCP_NODELAY");
        }
    });
    axum::serve(
        listener,
        app.into_make_service_with_connect_info::<std::net::SocketAddr>(),
    )
    .with_graceful_shutdown(shutdown)
    .await
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
    let served = serve_app(listener, app, shutdown).await;
    if let Some(serving) = state.serving() {
        serving.shutdown().await;
    }
    state.store().close().await;
    served
}
