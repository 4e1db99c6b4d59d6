//! Health, version and capability endpoints.

use axum::extract::State;
use axum::http::StatusCode;
use axum::Json;
use sextant_api::mlflow::ServerInfo;

use crate::AppState;

/// The MLflow version whose wire protocol Sextant speaks; clients compare it.
pub(crate) const MLFLOW_COMPATIBLE_VERSION: &str = "3.17.2";

pub(crate) async fn health(State(state): State<AppState>) -> (StatusCode, &'static str) {
    match state.store().ping().await {
        Ok(()) => (StatusCode::OK, "OK"),
        Err(err) => {
            tracing::error!(cause = %err, "health check failed");
            (StatusCode::SERVICE_UNAVAILABLE, "database unavailable")
        }
    }
}

pub(crate) async fn version() -> &'static str {
    MLFLOW_COMPATIBLE_VERSION
}

pub(crate) async fn server_info() -> Json<ServerInfo> {
    Json(ServerInfo {
        store_type: "SqlStore",
        workspaces_enabled: false,
        trace_archival_enabled: false,
        multipart_uploads_enabled: false,
        multipart_downloads_enabled: false,
        presigned_upload_run_id_supported: false,
        presigned_upload_model_id_supported: false,
        server: "sextant",
    })
}
