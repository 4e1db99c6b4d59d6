//! What a browser may make the server do on a page's behalf.
//!
//! A server on `127.0.0.1` without `--auth` trusts whoever can reach it,
//! and a web page the user visits can reach it: with a form or a `fetch`
//! it can send state-changing requests (cross-site request forgery), and
//! by pointing its own DNS name at `127.0.0.1` (DNS rebinding) it can read
//! the answers as if they were its own origin's. Three checks, on every
//! request before routing:
//!
//! - **Host**: a rebinding page's requests carry its own DNS name as
//!   `Host`. Answered are IP literals (no name to rebind), `localhost`,
//!   and the names an operator allows (`--allowed-hosts`).
//! - **Origin**: a state-changing request a browser sends from another
//!   origin says so in `Sec-Fetch-Site` or `Origin`; those are refused
//!   unless the origin is allowed (`--cors-allowed-origins`). Clients that
//!   are not browsers send neither.
//!
//! Besides, the JSON APIs read bodies only typed as JSON (or untyped), never
//! the form and text types a page can send to another origin without a
//! CORS preflight (`extract::MlflowRequest`; MLflow's server refuses other
//! content types too).

use std::sync::Arc;

use axum::extract::{Request, State};
use axum::http::{header, HeaderMap, Method};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use sextant_api::ErrorCode;

use crate::error::ApiError;

/// Who may address the server and from which pages (`--allowed-hosts`,
/// `--cors-allowed-origins`).
#[derive(Debug, Clone, Default)]
pub struct OriginPolicy {
    /// Host names answered besides IP literals and `localhost`: exact
    /// names, `*.example.com` suffixes, or `*` for any.
    pub allowed_hosts: Vec<String>,
    /// Origins (`https://app.example.com`) whose pages may send
    /// state-changing requests; `*` for any.
    pub allowed_origins: Vec<String>,
}

impl OriginPolicy {
    fn host_allowed(&self, host: &str) -> bool {
        let name = host_name(host);
        if name.is_empty() || name.parse::<std::net::IpAddr>().is_ok() || name == "localhost" {
            return true;
        }
        self.allowed_hosts
            .iter()
            .any(|pattern| matches_pattern(pattern, &name))
    }

    fn origin_allowed(&self, origin: &str, host: Option<&str>) -> bool {
        let origin = origin.trim_end_matches('/').to_ascii_lowercase();
        if origin == "null" {
            return false;
        }
        let same = host.is_some_and(|host| {
            origin
                .split_once("://")
                .is_some_and(|(_, authority)| authority == host.to_ascii_lowercase())
        });
        same || self.allowed_origins.iter().any(|allowed| {
            allowed == "*" || allowed.trim_end_matches('/').eq_ignore_ascii_case(&origin)
        })
    }
}

/// The host of a `Host` header without its port (IPv6 literals unbracketed).
fn host_name(host: &str) -> String {
    let host = host.trim().to_ascii_lowercase();
    if let Some(rest) = host.strip_prefix('[') {
        return rest.split(']').next().unwrap_or_default().to_string();
    }
    match host.rsplit_once(':') {
        Some((name, port)) if port.chars().all(|c| c.is_ascii_digit()) => name.to_string(),
        _ => host,
    }
}

fn matches_pattern(pattern: &str, name: &str) -> bool {
    let pattern = pattern.trim().to_ascii_lowercase();
    let pattern = host_name(&pattern);
    match pattern.strip_prefix("*.") {
        _ if pattern == "*" => true,
        Some(suffix) => name.ends_with(&format!(".{suffix}")),
        None => pattern == name,
    }
}

/// Paths a load balancer or orchestrator probes by address or by whatever
/// name it likes; they change nothing and say only whether we are up.
fn is_probe(path: &str) -> bool {
    matches!(
        path,
        "/health" | "/ping" | "/version" | "/v2/health/live" | "/v2/health/ready"
    )
}

fn refused(code: ErrorCode, message: String) -> Response {
    ApiError::User(code, message).into_response()
}

fn text<'a>(headers: &'a HeaderMap, name: header::HeaderName) -> Option<&'a str> {
    headers.get(name).and_then(|v| v.to_str().ok())
}

/// The checks of this module, as a middleware before routing.
pub async fn guard(
    State(policy): State<Arc<OriginPolicy>>,
    request: Request,
    next: Next,
) -> Response {
    if let Some(refusal) = check(&policy, &request) {
        return refusal;
    }
    next.run(request).await
}

fn check(policy: &OriginPolicy, request: &Request) -> Option<Response> {
    let headers = request.headers();
    let path = request.uri().path();
    let host =
        text(headers, header::HOST).or_else(|| request.uri().authority().map(|a| a.as_str()));
    if !is_probe(path) {
        if let Some(host) = host {
            if !policy.host_allowed(host) {
                return Some(refused(
                    ErrorCode::PermissionDenied,
                    format!(
                        "Host '{host}' is not one this server answers (a DNS-rebinding page would send such a name); start the server with --allowed-hosts {} to answer it",
                        host_name(host)
                    ),
                ));
            }
        }
    }
    let method = request.method();
    let changes_state = !matches!(*method, Method::GET | Method::HEAD | Method::OPTIONS);
    if !changes_state {
        return None;
    }
    let cross_site = text(headers, header::HeaderName::from_static("sec-fetch-site"))
        .is_some_and(|site| !matches!(site.trim(), "same-origin" | "none"));
    let origin = text(headers, header::ORIGIN);
    let foreign_origin = origin.is_some_and(|origin| !policy.origin_allowed(origin, host));
    let origin_allowed = origin.is_some_and(|origin| policy.origin_allowed(origin, host));
    if foreign_origin || (cross_site && !origin_allowed) {
        return Some(refused(
            ErrorCode::PermissionDenied,
            format!(
                "Cross-origin request refused: a page from {} may not change this server (allow it with --cors-allowed-origins)",
                origin.unwrap_or("another site")
            ),
        ));
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hosts_answered_by_default_cannot_be_rebound() {
        let policy = OriginPolicy::default();
        for host in [
            "127.0.0.1:5000",
            "localhost:5000",
            "[::1]:5000",
            "10.1.2.3",
            "localhost",
        ] {
            assert!(policy.host_allowed(host), "{host}");
        }
        for host in [
            "evil.example.com",
            "evil.example.com:5000",
            "localhost.evil.com",
        ] {
            assert!(!policy.host_allowed(host), "{host}");
        }
        let policy = OriginPolicy {
            allowed_hosts: vec!["sextant.internal".into(), "*.svc.cluster.local".into()],
            ..OriginPolicy::default()
        };
        assert!(policy.host_allowed("sextant.internal:5000"));
        assert!(policy.host_allowed("sextant.ml.svc.cluster.local"));
        assert!(!policy.host_allowed("svc.cluster.local.evil.com"));
    }

    #[test]
    fn origins_are_the_server_itself_or_allowed() {
        let policy = OriginPolicy::default();
        assert!(policy.origin_allowed("http://127.0.0.1:5000", Some("127.0.0.1:5000")));
        assert!(!policy.origin_allowed("http://evil.com", Some("127.0.0.1:5000")));
        assert!(!policy.origin_allowed("null", Some("127.0.0.1:5000")));
        let policy = OriginPolicy {
            allowed_origins: vec!["https://app.example.com".into()],
            ..OriginPolicy::default()
        };
        assert!(policy.origin_allowed("https://app.example.com", Some("127.0.0.1:5000")));
    }
}
