//! Who may call a replica's deployments.
//!
//! A replica has no user database: it asks the server it follows. The
//! server's `GET /v2/models/{name}/ready` requires `invoke` on the
//! deployment (and nothing at all on a server without `--auth`), so the
//! replica sends the caller's own `Authorization` header there and obeys
//! the answer. Answers are cached per deployment and credential (the
//! SHA-256 of the header; the header itself is not kept) for 30 s when
//! allowed and 5 s when refused, so a replica asks at most a few times a
//! minute per caller, and a revoked token stops working within 30 s.

use std::collections::HashMap;
use std::sync::Mutex;
use std::time::{Duration, Instant};

use axum::extract::{Request, State};
use axum::http::{header, StatusCode};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use sha2::{Digest, Sha256};

use super::source::RemoteServer;
use super::Serving;

const ALLOWED_FOR: Duration = Duration::from_secs(30);
const REFUSED_FOR: Duration = Duration::from_secs(5);

/// The replica's view of the server's permissions.
pub struct ReplicaAuth {
    server: RemoteServer,
    serving: Serving,
    answers: Mutex<HashMap<(String, [u8; 32]), (Instant, StatusCode)>>,
}

impl ReplicaAuth {
    pub fn new(server: RemoteServer, serving: Serving) -> ReplicaAuth {
        ReplicaAuth {
            server,
            serving,
            answers: Mutex::new(HashMap::new()),
        }
    }

    /// 200 when the caller may invoke `deployment`, else the server's
    /// refusal (401 or 403), or 503 when the server cannot be asked.
    async fn decide(&self, deployment: &str, authorization: Option<&[u8]>) -> StatusCode {
        let mut hasher = Sha256::new();
        hasher.update(authorization.unwrap_or_default());
        let key = (deployment.to_string(), <[u8; 32]>::from(hasher.finalize()));
        if let Some((until, status)) = self.answers.lock().expect("answers lock").get(&key) {
            if Instant::now() < *until {
                return *status;
            }
        }
        let mut request = self.server.client.get(format!(
            "{}/v2/models/{deployment}/ready",
            self.server.base_url
        ));
        if let Some(value) = authorization {
            request = request.header(header::AUTHORIZATION, value);
        }
        let status = match request.send().await {
            Ok(response) if response.status().is_success() => StatusCode::OK,
            // Refused, or unknown to the server: never let through unchecked.
            Ok(response) if matches!(response.status().as_u16(), 401 | 403 | 404) => {
                response.status()
            }
            Ok(response) => {
                tracing::warn!(deployment, status = %response.status(), "the server could not check a caller");
                return StatusCode::SERVICE_UNAVAILABLE;
            }
            Err(err) => {
                tracing::warn!(deployment, error = %err, "cannot reach the server to check a caller");
                return StatusCode::SERVICE_UNAVAILABLE;
            }
        };
        let lifetime = if status == StatusCode::OK {
            ALLOWED_FOR
        } else {
            REFUSED_FOR
        };
        let mut answers = self.answers.lock().expect("answers lock");
        if answers.len() > 100_000 {
            answers.retain(|_, (until, _)| Instant::now() < *until);
        }
        answers.insert(key, (Instant::now() + lifetime, status));
        status
    }
}

/// Middleware: health, metadata of the server and metrics pass; calls to a
/// deployment pass only with the server's consent.
pub async fn guard(
    State(auth): State<std::sync::Arc<ReplicaAuth>>,
    request: Request,
    next: Next,
) -> Response {
    let (mut parts, body) = request.into_parts();
    let called = crate::resource::called_deployment(&mut parts, Some(&auth.serving)).await;
    let request = Request::from_parts(parts, body);
    let deployment = match called {
        Ok(Some(deployment)) => deployment,
        Ok(None) => return next.run(request).await,
        // Naming no deployment: the handler answers with the same reason.
        Err(_) => return next.run(request).await,
    };
    let authorization = request
        .headers()
        .get(header::AUTHORIZATION)
        .map(|v| v.as_bytes().to_vec());
    let status = auth.decide(&deployment, authorization.as_deref()).await;
    if status == StatusCode::OK {
        return next.run(request).await;
    }
    let (code, message) = match status.as_u16() {
        401 => (
            "UNAUTHENTICATED",
            "Authentication required: send the credentials the Sextant server accepts".to_string(),
        ),
        403 => (
            "PERMISSION_DENIED",
            format!("Permission denied: calling deployment '{deployment}' needs invoke on it"),
        ),
        404 => (
            "RESOURCE_DOES_NOT_EXIST",
            format!("the server knows no deployment '{deployment}'"),
        ),
        _ => (
            "TEMPORARILY_UNAVAILABLE",
            "cannot check the caller's permission with the server right now".to_string(),
        ),
    };
    let body = serde_json::json!({"error": message, "error_code": code, "message": message});
    let mut response = (status, axum::Json(body)).into_response();
    if status == StatusCode::UNAUTHORIZED {
        response.headers_mut().insert(
            header::WWW_AUTHENTICATE,
            axum::http::HeaderValue::from_static("Basic realm=\"sextant\", Bearer"),
        );
    }
    response
}
