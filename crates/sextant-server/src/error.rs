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
