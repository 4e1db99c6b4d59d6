//! Request extraction in MLflow's style: GET requests carry their fields in
//! the query string (repeated keys for lists), everything else in a JSON
//! body. Both are turned into one JSON object and deserialized into the
//! request type, so every endpoint is written once whatever the verb.
//!
//! [`parse_request`] is the one reading of a request's fields: the
//! extractor uses it for handlers and the guard for the fields that name a
//! resource, so both see the same values.

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
        let content_type = request
            .headers()
            .get(axum::http::header::CONTENT_TYPE)
            .and_then(|v| v.to_str().ok())
            .filter(|_| request.method() != Method::GET);
        if let Some(content_type) = content_type {
            // Bodies typed as forms or text are what a page on another
            // origin can send without asking (no CORS preflight): JSON
            // fields are read only from JSON, as MLflow's server does.
            if !is_json(content_type) {
                return Err(ApiError::bad_request(format!(
                    "Bad Request. Content-Type must be one of ['application/json'], not '{content_type}'"
                )));
            }
        }
        let query = request.uri().query().unwrap_or("").to_string();
        let method = request.method().clone();
        let body = Bytes::from_request(request, state)
            .await
            .map_err(|rejection| {
                if rejection.status() == axum::http::StatusCode::PAYLOAD_TOO_LARGE {
                    too_large()
                } else {
                    ApiError::bad_request(format!("Could not read the request body: {rejection}"))
                }
            })?;
        parse_request(&method, &query, &body).map(MlflowRequest)
    }
}

fn is_json(content_type: &str) -> bool {
    let essence = content_type
        .split(';')
        .next()
        .unwrap_or_default()
        .trim()
        .to_ascii_lowercase();
    essence == "application/json" || essence.ends_with("+json")
}

pub(crate) fn too_large() -> ApiError {
    ApiError::User(
        sextant_api::ErrorCode::RequestTooLarge,
        format!("Request body exceeds {MAX_JSON_BODY} bytes"),
    )
}

/// The request's fields as `T`: from the query string for GET requests and
/// bodiless ones, else from the JSON body.
pub(crate) fn parse_request<T: DeserializeOwned>(
    method: &Method,
    query: &str,
    body: &[u8],
) -> Result<T, ApiError> {
    if method == Method::GET || body.iter().all(u8::is_ascii_whitespace) {
        let json = query_to_json(query);
        return T::deserialize(&json)
            .map_err(|_| describe(serde_path_to_error::deserialize::<_, T>(&json).err()));
    }
    if body.iter().find(|b| !b.is_ascii_whitespace()) != Some(&b'{') {
        return Err(ApiError::bad_request(
            "The request body must be a JSON object",
        ));
    }
    // Straight from the bytes into the request type: no intermediate
    // JSON tree on the hot path (a full log-batch is 1000 metrics).
    serde_json::from_slice(body).or_else(|err| match err.classify() {
        serde_json::error::Category::Data => {
            // JSON has one number type: `38.0` is the integer 38 to JSON
            // Schema and to protobuf's JSON parser, but not to serde's.
            // Retried with integral numbers made integers, only after the
            // fast path failed.
            let mut value: Value = serde_json::from_slice(body).map_err(|err| {
                ApiError::bad_request(format!("Malformed JSON in request body: {err}"))
            })?;
            if integral_floats_to_integers(&mut value) {
                if let Ok(parsed) = T::deserialize(&value) {
                    return Ok(parsed);
                }
            }
            let mut deserializer = serde_json::Deserializer::from_slice(body);
            Err(describe(
                serde_path_to_error::deserialize::<_, T>(&mut deserializer).err(),
            ))
        }
        _ => Err(ApiError::bad_request(format!(
            "Malformed JSON in request body: {err}"
        ))),
    })
}

/// MLflow's message for a field of the wrong type or value ("Invalid value
/// 31 for parameter 'run_id' supplied"). Only built on failure: the request
/// is parsed again with its path tracked, which the hot path never pays.
fn describe(err: Option<serde_path_to_error::Error<serde_json::Error>>) -> ApiError {
    let Some(err) = err else {
        return ApiError::invalid("Invalid request");
    };
    let field = err.path().to_string();
    let inner = err.into_inner().to_string();
    // serde says "invalid type: integer `31`, expected a string at line 1 column 13".
    let detail = inner.split(" at line ").next().unwrap_or(&inner);
    let value = detail
        .split_once('`')
        .and_then(|(_, rest)| rest.split_once('`'))
        .map(|(value, _)| value.to_string());
    let message = match (field.as_str(), value) {
        ("." | "", _) => format!("Invalid request: {detail}"),
        (field, Some(value)) => {
            format!("Invalid value {value} for parameter '{field}' supplied: {detail}")
        }
        (field, None) => format!("Invalid value for parameter '{field}' supplied: {detail}"),
    };
    ApiError::invalid(message)
}

/// Rewrites every float with no fractional part that fits an `i64` as an
/// integer; says whether anything changed.
fn integral_floats_to_integers(value: &mut Value) -> bool {
    match value {
        Value::Number(number) if number.is_f64() => {
            let float = number.as_f64().unwrap_or(f64::NAN);
            if float.fract() == 0.0 && float.abs() < 9.2e18 {
                *value = Value::from(float as i64);
                true
            } else {
                false
            }
        }
        Value::Array(items) => items.iter_mut().fold(false, |changed, item| {
            integral_floats_to_integers(item) | changed
        }),
        Value::Object(fields) => fields.values_mut().fold(false, |changed, item| {
            integral_floats_to_integers(item) | changed
        }),
        _ => false,
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

#[cfg(test)]
mod tests {
    use super::*;

    #[derive(serde::Deserialize, Debug)]
    #[allow(dead_code)]
    struct Probe {
        run_id: Option<String>,
        max_results: Option<i64>,
    }

    fn message(err: ApiError) -> String {
        match err {
            ApiError::User(_, message) => message,
            ApiError::Internal(message) => panic!("internal: {message}"),
        }
    }

    #[test]
    fn wrong_types_name_the_field_and_value_as_mlflow_does() {
        let err = parse_request::<Probe>(&Method::POST, "", br#"{"run_id": 31}"#).unwrap_err();
        let text = message(err);
        assert!(
            text.starts_with("Invalid value 31 for parameter 'run_id' supplied"),
            "{text}"
        );
        let err = parse_request::<Probe>(&Method::GET, "run_id=a&run_id=b", b"").unwrap_err();
        assert!(message(err).contains("'run_id'"));
        let err = parse_request::<Probe>(&Method::POST, "", b"{").unwrap_err();
        assert!(message(err).starts_with("Malformed JSON"));
        // JSON's integers may be written as integral floats.
        let probe = parse_request::<Probe>(&Method::POST, "", br#"{"max_results": 38.0}"#).unwrap();
        assert_eq!(probe.max_results, Some(38));
        assert!(parse_request::<Probe>(&Method::POST, "", br#"{"max_results": 38.5}"#).is_err());
    }
}
