//! The `mlflow-artifacts` proxy: clients upload, list, download and delete
//! files through the server, so they never need the storage credentials or a
//! shared filesystem.

use axum::body::Body;
use axum::extract::{Path, State};
use axum::http::{header, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::Json;
use futures::TryStreamExt;
use sextant_api::mlflow as dto;
use sextant_artifacts::ArtifactPath;

use crate::error::ApiResult;
use crate::extract::MlflowRequest;
use crate::resource::{self, ArtifactQuery};
use crate::AppState;

pub(crate) async fn list(
    State(state): State<AppState>,
    MlflowRequest(query): MlflowRequest<ArtifactQuery>,
) -> ApiResult<Json<dto::ListArtifactsResponse>> {
    let path = resource::artifact_target(query.path.as_deref().unwrap_or(""))?.path;
    let files = state.artifacts().list(&path).await?;
    Ok(Json(dto::ListArtifactsResponse {
        root_uri: None,
        files: files.into_iter().map(file_info).collect(),
    }))
}

pub(crate) async fn upload(
    State(state): State<AppState>,
    Path(path): Path<String>,
    body: Body,
) -> ApiResult<StatusCode> {
    let path = resource::artifact_target(&path)?.path;
    state
        .artifacts()
        .put(&path, body.into_data_stream())
        .await?;
    Ok(StatusCode::OK)
}

pub(crate) async fn download(
    State(state): State<AppState>,
    Path(path): Path<String>,
) -> ApiResult<Response> {
    let path = resource::artifact_target(&path)?.path;
    let download = state.artifacts().get(&path).await?;
    let content_type = guess_content_type(path.file_name());
    let disposition = format!(
        "attachment; filename=\"{}\"",
        path.file_name().replace('"', "")
    );
    let mut response =
        Body::from_stream(download.body.map_err(std::io::Error::other)).into_response();
    let headers = response.headers_mut();
    headers.insert(header::CONTENT_TYPE, HeaderValue::from_static(content_type));
    headers.insert(header::CONTENT_LENGTH, HeaderValue::from(download.size));
    if let Ok(value) = HeaderValue::from_str(&disposition) {
        headers.insert(header::CONTENT_DISPOSITION, value);
    }
    Ok(response)
}

pub(crate) async fn remove(
    State(state): State<AppState>,
    Path(path): Path<String>,
) -> ApiResult<Json<serde_json::Value>> {
    let path = resource::artifact_target(&path)?.path;
    state.artifacts().delete(&path).await?;
    Ok(Json(serde_json::json!({})))
}

fn file_info(info: sextant_artifacts::FileInfo) -> dto::FileInfo {
    dto::FileInfo {
        path: info.path,
        is_dir: info.is_dir,
        file_size: info.file_size,
    }
}

fn guess_content_type(file_name: &str) -> &'static str {
    let extension = file_name
        .rsplit_once('.')
        .map(|(_, ext)| ext.to_ascii_lowercase())
        .unwrap_or_default();
    match extension.as_str() {
        "txt" | "log" | "md" | "yaml" | "yml" | "py" | "cfg" | "ini" | "toml" => "text/plain",
        "json" => "application/json",
        "csv" => "text/csv",
        "html" | "htm" => "text/html",
        "png" => "image/png",
        "jpg" | "jpeg" => "image/jpeg",
        "svg" => "image/svg+xml",
        "gif" => "image/gif",
        "pdf" => "application/pdf",
        _ if file_name == "MLmodel" => "text/plain",
        _ => "application/octet-stream",
    }
}

/// A run or logged model's listing through the run-scoped endpoints.
pub(crate) struct ProxiedListing {
    pub(crate) root_uri: String,
    pub(crate) files: Vec<dto::FileInfo>,
}

/// Lists `relative` under an `mlflow-artifacts:/…` root. Paths in the
/// answer are relative to the root, as MLflow's `ListArtifacts` returns
/// them. Roots elsewhere (a user-chosen location) list as empty.
pub(crate) async fn list_under_uri(
    state: &AppState,
    root_uri: &str,
    relative: &str,
) -> ApiResult<ProxiedListing> {
    // A path that leaves the root is refused whatever the root is.
    let relative_path = ArtifactPath::parse(relative)?;
    let Some(root) = sextant_artifacts::proxied_path(root_uri) else {
        return Ok(ProxiedListing {
            root_uri: root_uri.to_string(),
            files: Vec::new(),
        });
    };
    let root = root?;
    let full = match (root.is_root(), relative_path.is_root()) {
        (_, true) => root.as_str().to_string(),
        (true, false) => relative_path.as_str().to_string(),
        (false, false) => format!("{}/{}", root.as_str(), relative_path.as_str()),
    };
    let entries = state.artifacts().list(&ArtifactPath::parse(&full)?).await?;
    let files = entries
        .into_iter()
        .map(|entry| {
            let path = if relative_path.is_root() {
                entry.path
            } else {
                format!("{}/{}", relative_path.as_str(), entry.path)
            };
            dto::FileInfo {
                path,
                is_dir: entry.is_dir,
                file_size: entry.file_size,
            }
        })
        .collect();
    Ok(ProxiedListing {
        root_uri: root_uri.to_string(),
        files,
    })
}
