//! The one place where errors become HTTP responses.
//!
//! Every domain error maps to an MLflow error code and status with an
//! exhaustive `match`, so a new variant cannot ship unmapped. A caller's
//! mistake is always a 4xx (MLflow clients retry 5xx for minutes); for our
//! own failures the body hides the cause and the log keeps it.

use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::Json;
use sextant_api::{ErrorBody, ErrorCode};
use sextant_artifacts::ArtifactError;
use sextant_store::StoreError;

#[derive(Debug)]
pub enum ApiError {
    /// A user-facing error with its code and message.
    User(ErrorCode, String),
    /// A failure on our side; the detail is logged, not returned.
    Internal(String),
}

impl ApiError {
    pub fn invalid(message: impl Into<String>) -> ApiError {
        ApiError::User(ErrorCode::InvalidParameterValue, message.into())
    }

    pub fn bad_request(message: impl Into<String>) -> ApiError {
        ApiError::User(ErrorCode::BadRequest, message.into())
    }

    pub fn not_found(message: impl Into<String>) -> ApiError {
        ApiError::User(ErrorCode::ResourceDoesNotExist, message.into())
    }

    /// The message a client sees.
    pub fn message(&self) -> &str {
        match self {
            ApiError::User(_, message) => message,
            ApiError::Internal(_) => "Internal server error",
        }
    }

    /// The message with an internal failure's detail too, for a record the
    /// server keeps (a validation's result), not for a response body.
    pub fn detail(&self) -> &str {
        match self {
            ApiError::User(_, message) | ApiError::Internal(message) => message,
        }
    }

    /// MLflow's message for an absent required field.
    pub fn missing(field: &str) -> ApiError {
        ApiError::invalid(format!("Missing value for required parameter '{field}'. See the API docs for more information about request parameters."))
    }
}

impl From<StoreError> for ApiError {
    fn from(err: StoreError) -> ApiError {
        match err {
            StoreError::NotFound(message) => {
                ApiError::User(ErrorCode::ResourceDoesNotExist, message)
            }
            StoreError::AlreadyExists(message) => {
                ApiError::User(ErrorCode::ResourceAlreadyExists, message)
            }
            StoreError::InvalidInput(message) => {
                ApiError::User(ErrorCode::InvalidParameterValue, message)
            }
            StoreError::Conflict(message) => ApiError::User(ErrorCode::Aborted, message),
            StoreError::ShuttingDown => ApiError::User(
                ErrorCode::TemporarilyUnavailable,
                "the server is shutting down".into(),
            ),
            StoreError::Database(err) => ApiError::Internal(format!("database: {err}")),
            StoreError::Open(message) => ApiError::Internal(message),
        }
    }
}

impl From<ArtifactError> for ApiError {
    fn from(err: ArtifactError) -> ApiError {
        match err {
            ArtifactError::InvalidPath(message) => {
                ApiError::User(ErrorCode::InvalidParameterValue, message)
            }
            ArtifactError::NotFound(path) => ApiError::User(
                ErrorCode::ResourceDoesNotExist,
                format!("Artifact '{path}' does not exist"),
            ),
            ArtifactError::TooLarge { limit } => ApiError::User(
                ErrorCode::RequestTooLarge,
                format!("The artifact is larger than this server's limit of {limit} bytes"),
            ),
            ArtifactError::Body(message) => ApiError::User(
                ErrorCode::BadRequest,
                format!("Upload interrupted: {message}"),
            ),
            ArtifactError::Config(message) => ApiError::Internal(message),
            ArtifactError::Backend(err) => ApiError::Internal(format!("artifact storage: {err}")),
        }
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let (code, message) = match self {
            ApiError::User(code, message) => (code, message),
            ApiError::Internal(detail) => {
                tracing::error!(cause = %detail, "request failed");
                (
                    ErrorCode::InternalError,
                    "Internal server error; the server log has the details".to_string(),
                )
            }
        };
        let status =
            StatusCode::from_u16(code.http_status()).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
        let mut response = (
            status,
            Json(ErrorBody {
                error_code: code.as_str(),
                message,
            }),
        )
            .into_response();
        if code == ErrorCode::TemporarilyUnavailable || code == ErrorCode::RequestLimitExceeded {
            response.headers_mut().insert(
                axum::http::header::RETRY_AFTER,
                axum::http::HeaderValue::from_static("1"),
            );
        }
        response
    }
}

pub type ApiResult<T> = Result<T, ApiError>;

/// Longest request URI answered. The UI's comparison of its most runs
/// (1,000 ids of 32 characters, with chart settings) is about 34 KB; a URL
/// past 60 KB is never a real request, and `http::Uri` stops at 64 KB.
pub(crate) const MAX_URI_BYTES: usize = 60 * 1024;

/// Middleware: every error response has the JSON body `{error_code,
/// message}`, including the ones axum and tower-http write themselves
/// (rejected paths, queries and bodies, timeouts, 414/415), which are
/// plain text. One place, so no route can answer an error another way;
/// bodies that are already JSON, and HTML pages, pass as they are.
pub(crate) async fn json_errors(
    axum::extract::State(hidden): axum::extract::State<std::sync::Arc<HiddenPaths>>,
    request: axum::extract::Request,
    next: axum::middleware::Next,
) -> Response {
    if request.uri().to_string().len() > MAX_URI_BYTES {
        return ApiError::User(
            ErrorCode::BadRequest,
            format!("The request URI is longer than {MAX_URI_BYTES} bytes"),
        )
        .into_response()
        .with_status(StatusCode::URI_TOO_LONG);
    }
    let response = next.run(request).await;
    let status = response.status();
    if !(status.is_client_error() || status.is_server_error()) {
        return response;
    }
    let content_type = response
        .headers()
        .get(axum::http::header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .unwrap_or("")
        .to_ascii_lowercase();
    if content_type.starts_with("text/html") {
        return response;
    }
    let (parts, body) = response.into_parts();
    let text = axum::body::to_bytes(body, 64 * 1024)
        .await
        .map(|bytes| hidden.redact(String::from_utf8_lossy(&bytes).trim()))
        .unwrap_or_default();
    if content_type.contains("json") {
        let mut response = Response::from_parts(parts, axum::body::Body::from(text));
        response
            .headers_mut()
            .remove(axum::http::header::CONTENT_LENGTH);
        return response;
    }
    let code = match status.as_u16() {
        401 => ErrorCode::Unauthenticated,
        403 => ErrorCode::PermissionDenied,
        404 => ErrorCode::EndpointNotFound,
        409 => ErrorCode::Aborted,
        413 => ErrorCode::RequestTooLarge,
        422 => ErrorCode::InvalidParameterValue,
        429 => ErrorCode::RequestLimitExceeded,
        501 => ErrorCode::NotImplemented,
        503 => ErrorCode::TemporarilyUnavailable,
        500..=599 => ErrorCode::InternalError,
        _ => ErrorCode::BadRequest,
    };
    let message = if text.is_empty() || status.is_server_error() {
        status
            .canonical_reason()
            .unwrap_or("Request failed")
            .to_string()
    } else {
        text
    };
    let mut rewritten = (
        status,
        Json(ErrorBody {
            error_code: code.as_str(),
            message,
        }),
    )
        .into_response();
    for (name, value) in &parts.headers {
        if name != axum::http::header::CONTENT_TYPE && name != axum::http::header::CONTENT_LENGTH {
            rewritten.headers_mut().insert(name.clone(), value.clone());
        }
    }
    rewritten
}

trait WithStatus {
    fn with_status(self, status: StatusCode) -> Self;
}

impl WithStatus for Response {
    fn with_status(mut self, status: StatusCode) -> Self {
        *self.status_mut() = status;
        self
    }
}

/// The server's own directories (artifact root, model cache), which no
/// error message shows a client: a message about a file names it relative
/// to them instead.
#[derive(Debug, Default)]
pub(crate) struct HiddenPaths(Vec<(String, &'static str)>);

impl HiddenPaths {
    pub(crate) fn new(paths: impl IntoIterator<Item = (String, &'static str)>) -> HiddenPaths {
        let mut paths: Vec<(String, &'static str)> = paths
            .into_iter()
            .map(|(path, name)| (path.trim_end_matches('/').to_string(), name))
            .filter(|(path, _)| path.len() > 1)
            .collect();
        // Longest first, so a cache inside the data directory is named as such.
        paths.sort_by_key(|(path, _)| std::cmp::Reverse(path.len()));
        HiddenPaths(paths)
    }

    fn redact(&self, text: &str) -> String {
        self.0.iter().fold(text.to_string(), |text, (path, name)| {
            text.replace(path.as_str(), name)
        })
    }
}

#[cfg(test)]
mod tests {
    use super::HiddenPaths;

    #[test]
    fn server_directories_never_reach_a_client() {
        let hidden = HiddenPaths::new([
            ("/srv/sextant/".to_string(), "<data-dir>"),
            ("/srv/sextant/serving".to_string(), "<model cache>"),
        ]);
        assert_eq!(
            hidden.redact(
                "cannot create /srv/sextant/serving/models/m/1: denied; see /srv/sextant/x"
            ),
            "cannot create <model cache>/models/m/1: denied; see <data-dir>/x"
        );
    }
}
