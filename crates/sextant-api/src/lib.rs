//! The HTTP wire contract of Sextant.
//!
//! MLflow's REST API is protobuf mapped to JSON: snake_case field names,
//! int64 as numbers (or strings, which clients may send), enums by name and
//! non-finite doubles as the strings `"NaN"`, `"Infinity"`, `"-Infinity"`.
//! This crate holds the request and response shapes ([`mlflow`]), the serde
//! helpers that accept every spelling clients use ([`wire`]) and the table
//! of error codes with their HTTP statuses ([`ErrorCode`]).
//!
//! Domain types from `sextant-core` become DTOs here through `From`; they
//! are never serialized directly.

#![warn(missing_docs)]

pub mod deployments;
pub mod inference;
pub mod mlflow;
pub mod v1;
pub mod wire;

use serde::Serialize;

/// MLflow's error codes (`databricks.ErrorCode`) that Sextant sends.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ErrorCode {
    /// A request field has a wrong value (400).
    InvalidParameterValue,
    /// The request itself is malformed (400).
    BadRequest,
    /// Creating something that already exists (400, as MLflow does).
    ResourceAlreadyExists,
    /// The addressed resource does not exist (404).
    ResourceDoesNotExist,
    /// No such route (404).
    EndpointNotFound,
    /// Missing or bad credentials (401).
    Unauthenticated,
    /// Authenticated but not allowed (403).
    PermissionDenied,
    /// The body is larger than allowed (413).
    RequestTooLarge,
    /// Too many requests (429).
    RequestLimitExceeded,
    /// A bug or a failed dependency on our side (500).
    InternalError,
    /// Known route, not implemented by Sextant (501).
    NotImplemented,
    /// The server is shutting down or overloaded (503).
    TemporarilyUnavailable,
    /// The request conflicts with the resource's state, e.g. deciding a
    /// transition request twice or a promotion vetoed by a gate (409).
    Aborted,
}

impl ErrorCode {
    /// The name MLflow clients branch on.
    pub fn as_str(self) -> &'static str {
        match self {
            ErrorCode::InvalidParameterValue => "INVALID_PARAMETER_VALUE",
            ErrorCode::BadRequest => "BAD_REQUEST",
            ErrorCode::ResourceAlreadyExists => "RESOURCE_ALREADY_EXISTS",
            ErrorCode::ResourceDoesNotExist => "RESOURCE_DOES_NOT_EXIST",
            ErrorCode::EndpointNotFound => "ENDPOINT_NOT_FOUND",
            ErrorCode::Unauthenticated => "UNAUTHENTICATED",
            ErrorCode::PermissionDenied => "PERMISSION_DENIED",
            ErrorCode::RequestTooLarge => "REQUEST_LIMIT_EXCEEDED",
            ErrorCode::RequestLimitExceeded => "REQUEST_LIMIT_EXCEEDED",
            ErrorCode::InternalError => "INTERNAL_ERROR",
            ErrorCode::NotImplemented => "NOT_IMPLEMENTED",
            ErrorCode::TemporarilyUnavailable => "TEMPORARILY_UNAVAILABLE",
            ErrorCode::Aborted => "ABORTED",
        }
    }

    /// The HTTP status MLflow maps this code to (`mlflow/exceptions.py`).
    pub fn http_status(self) -> u16 {
        match self {
            ErrorCode::InvalidParameterValue
            | ErrorCode::BadRequest
            | ErrorCode::ResourceAlreadyExists => 400,
            ErrorCode::ResourceDoesNotExist | ErrorCode::EndpointNotFound => 404,
            ErrorCode::Unauthenticated => 401,
            ErrorCode::PermissionDenied => 403,
            ErrorCode::RequestTooLarge => 413,
            ErrorCode::RequestLimitExceeded => 429,
            ErrorCode::InternalError => 500,
            ErrorCode::NotImplemented => 501,
            ErrorCode::TemporarilyUnavailable => 503,
            ErrorCode::Aborted => 409,
        }
    }
}

/// The JSON body of every error response.
#[derive(Debug, Clone, Serialize)]
pub struct ErrorBody {
    /// One of MLflow's error code names.
    pub error_code: &'static str,
    /// What went wrong, for a person.
    pub message: String,
}
