//! Request extraction in MLflow's style: GET requests carry their fields in
//! the query string (repeated keys for lists), everything else in a JSON
//! body. Both are turned into one JSON object and deserialized into the
//! request type, so every endpoint is written once whatever the verb.

use axum::body::Bytes;
use axum::extract::{FromRequest, Request};
use axum::http::Method;
use serde::de::DeserializeOwned;
use serde_json::{Map, Value};

use crate::error::ApiError;

/// Largest JSON request body (a full `log-batch` is about 100 KB).
pub const MAX_JSON_BODY: usize = 16 * 1024 * 1024;

pub struct MlflowRequest<T>(pub T);

impl<S, T> FromRequest<S> for MlflowRequest<T>
where
    S: Send + Sync,
    T: DeserializeOwned,
{
    type Rejection = ApiError;

    async fn from_request(request: Request, state: &S) -> Result<Self, Self::Rejection> {
        let query = request.uri().query().unwrap_or("").to_string();
        let method = request.method().clone();
        let body = Bytes::from_request(request, state)
            .await
            .map_err(|rejection| {
                if rejection.status() == axum::http::StatusCode::PAYLOAD_TOO_LARGE {
                    ApiError::User(
                        sextant_api::ErrorCode::RequestTooLarge,
                        format!("Request body exceeds {MAX_JSON_BODY} bytes"),
                    )
                } else {
                    ApiError::bad_request(format!("Could not read the request body: {rejection}"))
                }
            })?;
        if method == Method::GET || body.iter().all(u8::is_ascii_whitespace) {
            return serde_json::from_value(query_to_json(&query))
                .map(MlflowRequest)
                .map_err(|err| ApiError::invalid(format!("Invalid request: {err}")));
        }
        if body.iter().find(|b| !b.is_ascii_whitespace()) != Some(&b'{') {
            return Err(ApiError::bad_request(
                "The request body must be a JSON object",
            ));
        }
        // Straight from the bytes into the request type: no intermediate
        // JSON tree on the hot path (a full log-batch is 1000 metrics).
        serde_json::from_slice(&body)
            .map(MlflowRequest)
            .map_err(|err| match err.classify() {
                serde_json::error::Category::Data => {
                    ApiError::invalid(format!("Invalid request: {err}"))
                }
                _ => ApiError::bad_request(format!("Malformed JSON in request body: {err}")),
            })
    }
}

/// `a=1&b=x&b=y` becomes `{"a": "1", "b": ["x", "y"]}`.
pub fn query_to_json(query: &str) -> Value {
    let mut object = Map::new();
    for (key, value) in url::form_urlencoded::parse(query.as_bytes()) {
        let value = Value::String(value.into_owned());
        match object.get_mut(key.as_ref()) {
            None => {
                object.insert(key.into_owned(), value);
            }
            Some(Value::Array(items)) => items.push(value),
            Some(existing) => {
                let first = existing.take();
                *existing = Value::Array(vec![first, value]);
            }
        }
    }
    Value::Object(object)
}
