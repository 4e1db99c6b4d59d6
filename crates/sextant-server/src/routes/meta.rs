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

/// `GET /`: MLflow clients print links to the server's root for every run;
/// until the web UI lands, say what is here instead of a bare 404.
pub(crate) async fn index() -> axum::response::Html<&'static str> {
    axum::response::Html(concat!(
        "<!doctype html><html><head><meta charset=\"utf-8\"><title>Sextant</title></head>",
        "<body style=\"font-family: sans-serif; max-width: 40em; margin: 3em auto\">",
        "<h1>Sextant is running</h1>",
        "<p>This server speaks MLflow's REST API: point the <code>mlflow</code> client at it with ",
        "<code>MLFLOW_TRACKING_URI</code>. The web UI is not built yet.</p>",
        "<p><a href=\"/health\">/health</a> &middot; <a href=\"/api/3.0/mlflow/server-info\">server-info</a></p>",
        "</body></html>"
    ))
}
