//! Route table. MLflow mounts every route under `/api/2.0`, `/api/3.0` and
//! the UI's `/ajax-api/…` prefixes; so does Sextant.

mod artifacts;
mod meta;
mod registry;
mod tracking;

use axum::extract::DefaultBodyLimit;
use axum::http::StatusCode;
use axum::response::IntoResponse;
use axum::routing::{delete, get, patch, post};
use axum::{Json, Router};
use sextant_api::ErrorCode;
use tower_http::catch_panic::CatchPanicLayer;
use tower_http::trace::TraceLayer;

use crate::error::ApiError;
use crate::extract::MAX_JSON_BODY;
use crate::AppState;

pub(crate) fn router(state: AppState) -> Router {
    let mlflow = mlflow_routes();
    let artifacts = artifacts::routes();
    Router::new()
        .nest("/api/2.0/mlflow", mlflow.clone())
        .nest("/api/3.0/mlflow", mlflow.clone())
        .nest("/ajax-api/2.0/mlflow", mlflow.clone())
        .nest("/ajax-api/3.0/mlflow", mlflow)
        .nest("/api/2.0/mlflow-artifacts", artifacts.clone())
        .nest("/ajax-api/2.0/mlflow-artifacts", artifacts)
        .route("/", get(meta::index))
        .route("/health", get(meta::health))
        .route("/version", get(meta::version))
        .route("/api/3.0/mlflow/server-info", get(meta::server_info))
        .fallback(endpoint_not_found)
        .method_not_allowed_fallback(method_not_allowed)
        .layer(DefaultBodyLimit::max(MAX_JSON_BODY))
        .layer(CatchPanicLayer::custom(panic_response))
        .layer(TraceLayer::new_for_http())
        .with_state(state)
}

fn mlflow_routes() -> Router<AppState> {
    Router::new()
        // experiments
        .route("/experiments/create", post(tracking::create_experiment))
        .route("/experiments/get", get(tracking::get_experiment))
        .route(
            "/experiments/get-by-name",
            get(tracking::get_experiment_by_name),
        )
        .route(
            "/experiments/search",
            post(tracking::search_experiments).get(tracking::search_experiments),
        )
        .route("/experiments/update", post(tracking::update_experiment))
        .route("/experiments/delete", post(tracking::delete_experiment))
        .route("/experiments/restore", post(tracking::restore_experiment))
        .route(
            "/experiments/set-experiment-tag",
            post(tracking::set_experiment_tag),
        )
        .route(
            "/experiments/delete-experiment-tag",
            post(tracking::delete_experiment_tag),
        )
        // runs
        .route("/runs/create", post(tracking::create_run))
        .route("/runs/get", get(tracking::get_run))
        .route("/runs/update", post(tracking::update_run))
        .route("/runs/delete", post(tracking::delete_run))
        .route("/runs/restore", post(tracking::restore_run))
        .route("/runs/search", post(tracking::search_runs))
        .route("/runs/log-metric", post(tracking::log_metric))
        .route("/runs/log-parameter", post(tracking::log_param))
        .route("/runs/log-batch", post(tracking::log_batch))
        .route("/runs/set-tag", post(tracking::set_tag))
        .route("/runs/delete-tag", post(tracking::delete_tag))
        .route("/runs/log-inputs", post(tracking::log_inputs))
        .route("/runs/outputs", post(tracking::log_outputs))
        .route("/runs/log-model", post(tracking::log_model))
        .route("/metrics/get-history", get(tracking::get_metric_history))
        .route(
            "/metrics/get-history-bulk-interval",
            get(tracking::get_metric_history_bulk_interval),
        )
        .route("/artifacts/list", get(tracking::list_run_artifacts))
        // MLflow 3 logged models
        .route("/logged-models", post(tracking::create_logged_model))
        .route(
            "/logged-models/search",
            post(tracking::search_logged_models),
        )
        .route(
            "/logged-models/{model_id}",
            get(tracking::get_logged_model)
                .patch(tracking::finalize_logged_model)
                .delete(tracking::delete_logged_model),
        )
        .route(
            "/logged-models/{model_id}/tags",
            patch(tracking::set_logged_model_tags),
        )
        .route(
            "/logged-models/{model_id}/tags/{tag_key}",
            delete(tracking::delete_logged_model_tag),
        )
        .route(
            "/logged-models/{model_id}/params",
            post(tracking::log_logged_model_params),
        )
        .route(
            "/logged-models/{model_id}/artifacts/directories",
            get(tracking::list_logged_model_artifacts),
        )
        // registry
        .route(
            "/registered-models/create",
            post(registry::create_registered_model),
        )
        .route(
            "/registered-models/get",
            get(registry::get_registered_model),
        )
        .route(
            "/registered-models/rename",
            post(registry::rename_registered_model),
        )
        .route(
            "/registered-models/update",
            patch(registry::update_registered_model),
        )
        .route(
            "/registered-models/delete",
            delete(registry::delete_registered_model),
        )
        .route(
            "/registered-models/search",
            get(registry::search_registered_models),
        )
        .route(
            "/registered-models/get-latest-versions",
            post(registry::get_latest_versions).get(registry::get_latest_versions),
        )
        .route(
            "/registered-models/set-tag",
            post(registry::set_registered_model_tag),
        )
        .route(
            "/registered-models/delete-tag",
            delete(registry::delete_registered_model_tag),
        )
        .route(
            "/registered-models/alias",
            post(registry::set_alias)
                .delete(registry::delete_alias)
                .get(registry::get_version_by_alias),
        )
        .route(
            "/model-versions/create",
            post(registry::create_model_version),
        )
        .route("/model-versions/get", get(registry::get_model_version))
        .route(
            "/model-versions/update",
            patch(registry::update_model_version),
        )
        .route(
            "/model-versions/delete",
            delete(registry::delete_model_version),
        )
        .route(
            "/model-versions/transition-stage",
            post(registry::transition_stage),
        )
        .route(
            "/model-versions/search",
            get(registry::search_model_versions),
        )
        .route(
            "/model-versions/get-download-uri",
            get(registry::get_download_uri),
        )
        .route(
            "/model-versions/set-tag",
            post(registry::set_model_version_tag),
        )
        .route(
            "/model-versions/delete-tag",
            delete(registry::delete_model_version_tag),
        )
}

async fn endpoint_not_found(uri: axum::http::Uri) -> ApiError {
    ApiError::User(
        ErrorCode::EndpointNotFound,
        format!("No endpoint at {}", uri.path()),
    )
}

async fn method_not_allowed(method: axum::http::Method, uri: axum::http::Uri) -> impl IntoResponse {
    (
        StatusCode::METHOD_NOT_ALLOWED,
        Json(sextant_api::ErrorBody {
            error_code: ErrorCode::EndpointNotFound.as_str(),
            message: format!("{method} is not supported on {}", uri.path()),
        }),
    )
}

fn panic_response(_panic: Box<dyn std::any::Any + Send + 'static>) -> axum::response::Response {
    ApiError::Internal("a request handler panicked".into()).into_response()
}

/// `{}`: the body MLflow returns for RPCs with an empty response.
pub(crate) fn empty() -> Json<serde_json::Value> {
    Json(serde_json::json!({}))
}

/// A required string field, or MLflow's "missing parameter" error.
pub(crate) fn required(value: Option<String>, field: &str) -> Result<String, ApiError> {
    value
        .filter(|v| !v.is_empty())
        .ok_or_else(|| ApiError::missing(field))
}
