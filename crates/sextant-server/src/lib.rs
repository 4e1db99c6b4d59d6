//! The Sextant HTTP server: MLflow's REST API (tracking, logged models,
//! registry), the `mlflow-artifacts` proxy and health endpoints, on axum.
//!
//! [`router`] builds the routes over an [`AppState`]; [`run`] serves them on
//! a listener until a shutdown future resolves, then drains in-flight
//! requests and flushes the store before returning. Handlers are thin: they
//! turn wire DTOs (`sextant-api`) into store calls (`sextant-store`,
//! `sextant-artifacts`) and map errors in one place (`error`).

mod error;
mod extract;
mod routes;

use std::future::Future;
use std::sync::Arc;

use axum::Router;
use sextant_artifacts::ArtifactStore;
use sextant_store::Store;
use tokio::net::TcpListener;

pub use crate::error::ApiError;

/// Everything a handler needs; cheap to clone.
#[derive(Clone)]
pub struct AppState {
    inner: Arc<StateInner>,
}

struct StateInner {
    store: Store,
    artifacts: ArtifactStore,
}

impl AppState {
    pub fn new(store: Store, artifacts: ArtifactStore) -> AppState {
        AppState {
            inner: Arc::new(StateInner { store, artifacts }),
        }
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
    let served = axum::serve(listener, app)
        .with_graceful_shutdown(shutdown)
        .await;
    state.store().close().await;
    served
}
