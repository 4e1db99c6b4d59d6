//! The guard in front of every route: authenticates the caller, checks the
//! route's access rule, and writes the audit entry.
//!
//! Every route is declared with an [`Access`] rule in one table
//! (`routes::route_table`), and the router is built from that table, so a
//! route cannot exist without a rule. The guard runs per route: it turns the
//! `Authorization` header into a [`Principal`], finds the resource the
//! request names (from the query string or JSON body, MLflow style, or the
//! path), checks the permission the rule demands, and hands the principal to
//! the handler, which filters searches by it. Requests that change state
//! and every refused request are appended to the hash-chained audit log
//! before the caller gets the answer.

use std::net::SocketAddr;

use axum::body::Body;
use axum::extract::{ConnectInfo, Request, State};
use axum::http::{header, HeaderMap, HeaderValue, Method, StatusCode};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use serde::Deserialize;
use sextant_api::ErrorCode;
use sextant_core::{NewAuditEntry, Permission, PrincipalKind, ResourceKind, TokenScope};
use sextant_governance::{AuthError, Principal};

use crate::error::ApiError;
use crate::extract::{query_to_json, MAX_JSON_BODY};
use crate::AppState;

/// Who may call a route.
#[derive(Debug, Clone, Copy)]
pub enum Access {
    /// Anyone, even unauthenticated (health, version, API docs).
    Public,
    /// Any signed-in user; the handler decides per resource (searches
    /// filter their results, creations make the caller the manager).
    SignedIn { mutates: bool },
    /// Admins only.
    Admin { mutates: bool },
    /// Needs `Permission` on the resource that `Target` names.
    On(Permission, Target),
}

impl Access {
    pub fn mutates(&self) -> bool {
        match self {
            Access::Public => false,
            Access::SignedIn { mutates } | Access::Admin { mutates } => *mutates,
            // Calling a model changes nothing: not audited, no write scope.
            Access::On(permission, _) => {
                !matches!(permission, Permission::Read | Permission::Invoke)
            }
        }
    }
}

/// Where a request names the resource its permission is checked on.
#[derive(Debug, Clone, Copy)]
pub enum Target {
    /// An experiment id in this field.
    Experiment(&'static str),
    /// An experiment name in this field.
    ExperimentName(&'static str),
    /// A run id in this field (checked on the run's experiment).
    Run(&'static str),
    /// A list of run ids in this field.
    Runs(&'static str),
    /// The `{model_id}` path segment of a logged-model route.
    LoggedModel,
    /// A registered model name in this field.
    Model(&'static str),
    /// The `mlflow-artifacts` path (`<experiment id>/…`), from the URL
    /// path or, for listings, the `path` query parameter.
    Artifact,
    /// A deployment: the `{name}` after `/deployments/` or `/v2/models/`
    /// in the path, else the `deployment` query parameter, else the only
    /// deployment served (MLflow's `/invocations`).
    Deployment,
}

/// One route: where, how, who may call it, and its handler.
pub struct RouteSpec {
    pub method: Method,
    pub path: &'static str,
    pub access: Access,
    pub handler: fn(axum::routing::MethodFilter) -> axum::routing::MethodRouter<AppState>,
}

/// What a handler tells the guard about the change it made, through the
/// response's extensions: the audit entry's resource and before/after
/// states, and resources it created (whose creator becomes their manager).
#[derive(Debug, Clone, Default)]
pub struct AuditNote {
    pub resource: Option<(String, String)>,
    pub before: Option<serde_json::Value>,
    pub after: Option<serde_json::Value>,
    pub created: Option<(ResourceKind, String)>,
    pub detail: Option<String>,
    /// The handler had the store commit the `AuditDraft` with its change.
    pub recorded: bool,
}

/// An error that still names the resource it was about, for the audit
/// entry of a refusal decided by the handler (the guard only knows the
/// resources its rules name).
pub struct Refused(pub ApiError, pub AuditNote);

impl IntoResponse for Refused {
    fn into_response(self) -> Response {
        let mut response = self.0.into_response();
        response.extensions_mut().insert(self.1);
        response
    }
}

impl From<ApiError> for Refused {
    fn from(err: ApiError) -> Refused {
        Refused(err, AuditNote::default())
    }
}

impl From<sextant_store::StoreError> for Refused {
    fn from(err: sextant_store::StoreError) -> Refused {
        Refused(err.into(), AuditNote::default())
    }
}

/// The audit entry of an accepted request, prepared by the guard for
/// handlers whose store call can commit it in the same transaction as the
/// change (the metric writer's `LogBatch::audit`). Handed over only for run
/// data writes; when the request fails, the guard records the failure.
#[derive(Debug, Clone)]
pub struct AuditDraft(pub NewAuditEntry);

/// The fields that can name a resource; everything else in a body is
/// skipped without being built.
#[derive(Deserialize, Default)]
struct Fields {
    run_id: Option<serde_json::Value>,
    run_uuid: Option<serde_json::Value>,
    run_ids: Option<serde_json::Value>,
    experiment_id: Option<serde_json::Value>,
    experiment_name: Option<serde_json::Value>,
    name: Option<serde_json::Value>,
    path: Option<serde_json::Value>,
}

impl Fields {
    fn get(&self, field: &str) -> Vec<String> {
        let value = match field {
            "run_id" => self.run_id.as_ref().or(self.run_uuid.as_ref()),
            "run_ids" => self.run_ids.as_ref(),
            "experiment_id" => self.experiment_id.as_ref(),
            "experiment_name" => self.experiment_name.as_ref(),
            "name" => self.name.as_ref(),
            "path" => self.path.as_ref(),
            _ => None,
        };
        match value {
            Some(serde_json::Value::String(s)) => vec![s.clone()],
            Some(serde_json::Value::Number(n)) => vec![n.to_string()],
            Some(serde_json::Value::Array(items)) => items
                .iter()
                .filter_map(|v| match v {
                    serde_json::Value::String(s) => Some(s.clone()),
                    serde_json::Value::Number(n) => Some(n.to_string()),
                    _ => None,
                })
                .collect(),
            _ => Vec::new(),
        }
    }
}

/// The state a route's guard runs with.
#[derive(Clone)]
pub struct GuardContext {
    pub state: AppState,
    pub spec: &'static RouteSpec,
}

enum Denial {
    Unauthenticated(AuthError),
    Forbidden(String),
    Client(ApiError),
}

/// Whether a route needs its guard on this server. Without authentication,
/// writes to runs have nothing to check and (unless `audit_run_data`)
/// nothing to record, so the hot path of local use skips the guard
/// altogether; their handlers need no `Principal`.
pub fn is_guarded(spec: &RouteSpec, state: &AppState) -> bool {
    let idle = matches!(spec.access, Access::Public)
        || (!state.governance().auth_enabled()
            && matches!(spec.access, Access::On(Permission::Invoke, _)))
        || (!state.governance().auth_enabled()
            && records_with_change(spec)
            && !state.audit_run_data());
    !idle
}

pub async fn guard(State(ctx): State<GuardContext>, request: Request, next: Next) -> Response {
    let spec = ctx.spec;
    let state = &ctx.state;
    let governance = state.governance();
    let source = source_of(&request);
    let user_agent = header_text(request.headers(), header::USER_AGENT);
    let method = request.method().clone();
    // Nested routers see their own part of the path; the audit wants all of it.
    let action = request
        .extensions()
        .get::<axum::extract::OriginalUri>()
        .map(|uri| uri.0.path().to_string())
        .unwrap_or_else(|| request.uri().path().to_string());

    let principal = governance
        .authenticate(
            request
                .headers()
                .get(header::AUTHORIZATION)
                .map(HeaderValue::as_bytes),
        )
        .await;
    let (refused, denial) = match principal {
        Ok(principal) => match authorize(state, spec, &principal, request).await {
            Ok((resource, request)) => {
                let mut request = request;
                request.extensions_mut().insert(principal.clone());
                if records_with_change(spec) && state.audit_run_data() {
                    let (resource_type, resource_id) = resource.clone().unwrap_or_default();
                    request.extensions_mut().insert(AuditDraft(NewAuditEntry {
                        ts: sextant_governance::now_ms(),
                        actor: principal.name().to_string(),
                        source: source.clone(),
                        user_agent: user_agent.clone(),
                        method: method.to_string(),
                        action: action.clone(),
                        resource_type,
                        resource_id,
                        status: 200,
                        outcome: "ok".into(),
                        ..NewAuditEntry::default()
                    }));
                }
                let response = next.run(request).await;
                return finish(
                    state, spec, &principal, resource, response, &method, &action, source,
                    user_agent,
                )
                .await;
            }
            Err((resource, denial)) => (Some((principal, resource)), denial),
        },
        Err(err) => (None, Denial::Unauthenticated(err)),
    };
    // Refused: by whom (if known), about what, and the answer.
    let (actor, resource) = match refused {
        Some((principal, resource)) => (principal.name().to_string(), resource),
        None => ("-".to_string(), None),
    };
    let (response, detail) = match denial {
        Denial::Unauthenticated(AuthError::Store(err)) => {
            (ApiError::from(err).into_response(), String::new())
        }
        Denial::Unauthenticated(err) => {
            let message = err.to_string();
            let mut response =
                ApiError::User(ErrorCode::Unauthenticated, message.clone()).into_response();
            response.headers_mut().insert(
                header::WWW_AUTHENTICATE,
                HeaderValue::from_static("Basic realm=\"sextant\", Bearer"),
            );
            (response, message)
        }
        Denial::Forbidden(message) => (
            ApiError::User(ErrorCode::PermissionDenied, message.clone()).into_response(),
            message,
        ),
        Denial::Client(err) => (err.into_response(), String::new()),
    };
    let status = response.status();
    if status == StatusCode::UNAUTHORIZED || status == StatusCode::FORBIDDEN {
        let (resource_type, resource_id) = resource
            .or_else(|| resource_in_path(spec.path, &action))
            .unwrap_or_default();
        append(
            state,
            NewAuditEntry {
                ts: sextant_governance::now_ms(),
                actor,
                source,
                user_agent,
                method: method.to_string(),
                action,
                resource_type,
                resource_id,
                status: i64::from(status.as_u16()),
                outcome: "denied".into(),
                detail,
                before: None,
                after: None,
            },
        )
        .await;
    }
    response
}

type Resource = Option<(String, String)>;

/// Checks the route's rule; returns the resource the request names and the
/// request (its body read and put back when the rule needed it).
async fn authorize(
    state: &AppState,
    spec: &RouteSpec,
    principal: &Principal,
    request: Request,
) -> Result<(Resource, Request), (Resource, Denial)> {
    let scope = if spec.access.mutates() {
        TokenScope::Write
    } else if matches!(spec.access, Access::On(Permission::Invoke, _)) {
        TokenScope::Invoke
    } else {
        TokenScope::Read
    };
    // A token that may write may also call models.
    let scoped = principal.has_scope(scope)
        || (scope == TokenScope::Invoke && principal.has_scope(TokenScope::Write));
    if !scoped {
        return Err((
            None,
            Denial::Forbidden(format!(
                "This token's scopes do not include '{scope}', which this request needs"
            )),
        ));
    }
    let (permission, target) = match spec.access {
        Access::Public | Access::SignedIn { .. } => return Ok((None, request)),
        Access::Admin { .. } => {
            return if principal.is_admin() {
                Ok((None, request))
            } else {
                Err((
                    None,
                    Denial::Forbidden("Only administrators may do this".into()),
                ))
            }
        }
        Access::On(permission, target) => (permission, target),
    };
    let (fields, request) = read_fields(target, request)
        .await
        .map_err(|err| (None, Denial::Client(err)))?;
    let governance = state.governance();
    let store_error = |err: sextant_store::StoreError| (None, Denial::Client(err.into()));
    // (kind, id) pairs to check, the first named in the audit entry.
    let mut checks: Vec<(ResourceKind, String)> = Vec::new();
    let mut registry_fallback = None;
    match target {
        Target::Experiment(field) => {
            // MLflow puts runs without an experiment into experiment 0.
            let ids = fields.get(field);
            let id = ids.into_iter().next().unwrap_or_else(|| "0".to_string());
            checks.push((ResourceKind::Experiment, id));
        }
        Target::ExperimentName(field) => {
            for name in fields.get(field) {
                if let Some(id) = state
                    .store()
                    .experiment_id_by_name(&name)
                    .await
                    .map_err(store_error)?
                {
                    checks.push((ResourceKind::Experiment, id.to_string()));
                }
            }
        }
        Target::Run(field) | Target::Runs(field) => {
            for run_id in fields.get(field) {
                if let Some(id) = governance
                    .experiment_of_run(&run_id)
                    .await
                    .map_err(store_error)?
                {
                    checks.push((ResourceKind::Experiment, id.to_string()));
                }
            }
        }
        Target::LoggedModel => {
            let model_id = logged_model_id(request.uri().path());
            // Registry readers may read the logged model a version serves.
            registry_fallback = Some(ThroughRegistry::LoggedModel(model_id.clone()));
            if let Some(id) = governance
                .experiment_of_logged_model(&model_id)
                .await
                .map_err(store_error)?
            {
                checks.push((ResourceKind::Experiment, id.to_string()));
            }
        }
        Target::Model(field) => {
            for name in fields.get(field) {
                checks.push((ResourceKind::RegisteredModel, name));
            }
        }
        Target::Deployment => {
            let name = deployment_in_path(request.uri().path())
                .or_else(|| deployment_in_query(request.uri().query()))
                .or_else(|| state.serving().and_then(|s| s.sole_deployment()));
            // Without a name there is nothing to call; the handler says so.
            checks.extend(name.map(|name| (ResourceKind::Deployment, name)));
        }
        Target::Artifact => {
            let path = artifact_path(&request, &fields);
            match path.split('/').next().filter(|s| s.parse::<i64>().is_ok()) {
                Some(experiment) => {
                    checks.push((ResourceKind::Experiment, experiment.to_string()));
                    registry_fallback = Some(ThroughRegistry::Files(path.clone()));
                }
                // The artifact root lists every experiment: admins only.
                None if principal.is_admin() => {}
                None => {
                    return Err((
                        Some(("artifact".into(), path)),
                        Denial::Forbidden("Only administrators may list the artifact root".into()),
                    ))
                }
            }
        }
    }
    let resource = checks
        .first()
        .map(|(kind, id)| (kind.as_str().to_string(), id.clone()));
    for (kind, id) in &checks {
        if principal.may(*kind, id, permission) {
            continue;
        }
        // Who may read a registered model may download its files (and read
        // its logged model), which live under the experiment of the run or
        // logged model it came from.
        if permission == Permission::Read {
            if let Some(fallback) = &registry_fallback {
                if readable_through_registry(state, principal, fallback).await {
                    continue;
                }
            }
        }
        let what = match kind {
            ResourceKind::Experiment => format!("experiment {id}"),
            ResourceKind::RegisteredModel => format!("registered model '{id}'"),
            ResourceKind::Deployment => format!("deployment '{id}'"),
        };
        return Err((
            resource,
            Denial::Forbidden(format!(
                "Permission denied: user '{}' lacks {permission} permission on {what}",
                principal.name()
            )),
        ));
    }
    Ok((resource, request))
}

/// The deployment a path names: the segment after `deployments/` or
/// `v2/models/`.
fn deployment_in_path(path: &str) -> Option<String> {
    let mut segments = path.split('/').filter(|s| !s.is_empty());
    while let Some(segment) = segments.next() {
        if segment == "deployments" || (segment == "models" && path.starts_with("/v2/")) {
            return segments.next().map(|s| {
                url::form_urlencoded::parse(format!("n={s}").as_bytes())
                    .next()
                    .map_or_else(|| s.to_string(), |(_, v)| v.into_owned())
            });
        }
    }
    None
}

fn deployment_in_query(query: Option<&str>) -> Option<String> {
    url::form_urlencoded::parse(query?.as_bytes())
        .find(|(key, _)| key == "deployment")
        .map(|(_, value)| value.into_owned())
}

/// What a registry reader may reach without read on the experiment.
enum ThroughRegistry {
    /// The logged model a version was registered from.
    LoggedModel(String),
    /// Files under a version's storage location or source.
    Files(String),
}

async fn readable_through_registry(
    state: &AppState,
    principal: &Principal,
    wanted: &ThroughRegistry,
) -> bool {
    // `<experiment>/models/<model id>/…` or `<experiment>/<run id>/…`.
    let key = match wanted {
        ThroughRegistry::LoggedModel(model_id) => Some(model_id.as_str()),
        ThroughRegistry::Files(path) => {
            let mut segments = path.split('/').skip(1);
            match segments.next() {
                Some("models") => segments.next(),
                other => other,
            }
        }
    };
    let Some(key) = key.filter(|k| k.len() >= 8) else {
        return false;
    };
    let versions = match state.store().model_versions_using(key).await {
        Ok(versions) => versions,
        Err(err) => {
            tracing::warn!(cause = %err, "cannot look up registry artifacts");
            return false;
        }
    };
    versions.iter().any(|(name, locations, model_id)| {
        let reaches = match wanted {
            ThroughRegistry::LoggedModel(id) => model_id.as_deref() == Some(id.as_str()),
            ThroughRegistry::Files(path) => locations.iter().any(|location| {
                let root = location
                    .strip_prefix("mlflow-artifacts:")
                    .unwrap_or_default()
                    .trim_start_matches('/')
                    .trim_end_matches('/');
                !root.is_empty()
                    && (path == root
                        || path
                            .strip_prefix(root)
                            .is_some_and(|rest| rest.starts_with('/')))
            }),
        };
        reaches && principal.may(ResourceKind::RegisteredModel, name, Permission::Read)
    })
}

/// The resource a route names in its path, for audit entries whose rule
/// did not name one: `/users/{username}` gives `("user", "bob")`. Only the
/// first parameter counts (`/groups/{name}/members/{username}` is about
/// the group).
fn resource_in_path(pattern: &str, path: &str) -> Option<(String, String)> {
    let pattern: Vec<&str> = pattern.trim_start_matches('/').split('/').collect();
    let actual: Vec<&str> = path.trim_start_matches('/').split('/').collect();
    let actual = actual.get(actual.len().checked_sub(pattern.len())?..)?;
    pattern.iter().enumerate().find_map(|(idx, segment)| {
        let named = segment.starts_with('{') && !segment.starts_with("{*") && idx > 0;
        named.then(|| {
            let kind = pattern[idx - 1].trim_end_matches('s').replace('-', "_");
            (kind, percent_decode(actual[idx]))
        })
    })
}

fn logged_model_id(path: &str) -> String {
    path.split("/logged-models/")
        .nth(1)
        .and_then(|rest| rest.split('/').next())
        .unwrap_or_default()
        .to_string()
}

fn artifact_path(request: &Request, fields: &Fields) -> String {
    let raw = request
        .uri()
        .path()
        .split_once("/artifacts/")
        .map(|(_, rest)| rest.to_string());
    let path = match raw {
        Some(rest) => percent_decode(&rest),
        None => fields.get("path").into_iter().next().unwrap_or_default(),
    };
    path.trim_start_matches('/').to_string()
}

fn percent_decode(text: &str) -> String {
    url::form_urlencoded::parse(format!("p={}", text.replace('+', "%2B")).as_bytes())
        .next()
        .map(|(_, v)| v.into_owned())
        .unwrap_or_default()
}

/// Reads the fields that can name a resource: from the query string for GET
/// (and bodiless) requests, else from the JSON body, which is put back.
async fn read_fields(target: Target, request: Request) -> Result<(Fields, Request), ApiError> {
    // Deployments are named in the path or query; inference bodies are
    // never parsed here.
    let needs_fields = !matches!(target, Target::LoggedModel | Target::Deployment);
    if !needs_fields {
        return Ok((Fields::default(), request));
    }
    let query = request.uri().query().unwrap_or("").to_string();
    let from_query = || serde_json::from_value::<Fields>(query_to_json(&query)).unwrap_or_default();
    // Artifact uploads stream: their resource is in the path, never the body.
    if request.method() == Method::GET
        || request.method() == Method::PUT
        || matches!(target, Target::Artifact)
    {
        return Ok((from_query(), request));
    }
    let (parts, body) = request.into_parts();
    let bytes = axum::body::to_bytes(body, MAX_JSON_BODY)
        .await
        .map_err(|_| {
            ApiError::User(
                ErrorCode::RequestTooLarge,
                format!("Request body exceeds {MAX_JSON_BODY} bytes"),
            )
        })?;
    let fields = if bytes.iter().all(u8::is_ascii_whitespace) {
        from_query()
    } else {
        // Refused here rather than checked against a guessed resource.
        serde_json::from_slice::<Fields>(&bytes).map_err(|err| {
            ApiError::bad_request(format!("Malformed JSON in request body: {err}"))
        })?
    };
    Ok((fields, Request::from_parts(parts, Body::from(bytes))))
}

#[allow(clippy::too_many_arguments)]
async fn finish(
    state: &AppState,
    spec: &RouteSpec,
    principal: &Principal,
    resource: Resource,
    mut response: Response,
    method: &Method,
    action: &str,
    source: String,
    user_agent: String,
) -> Response {
    let note = response.extensions_mut().remove::<AuditNote>();
    let status = response.status();
    if let (Some(note), Principal::User(caller)) = (&note, principal) {
        if let (Some((kind, id)), true) = (&note.created, status.is_success()) {
            // Whoever creates a resource manages it.
            let granted = state
                .store()
                .grant_permission_to_id(
                    *kind,
                    id,
                    PrincipalKind::User,
                    caller.user_id,
                    Permission::Manage,
                )
                .await;
            match granted {
                Ok(()) => state.governance().grants_changed(),
                Err(err) => {
                    tracing::error!(cause = %err, "cannot make the creator manager of a new resource")
                }
            }
        }
    }
    let denied = status == StatusCode::UNAUTHORIZED || status == StatusCode::FORBIDDEN;
    let unaudited_run_data = records_with_change(spec) && !state.audit_run_data();
    if (!spec.access.mutates() || unaudited_run_data) && !denied {
        return response;
    }
    let note = note.unwrap_or_default();
    if note.recorded && status.is_success() {
        // Committed with the change itself.
        return response;
    }
    let (resource_type, resource_id) = note
        .resource
        .or(note.created.map(|(k, id)| (k.as_str().to_string(), id)))
        .or(resource)
        .or_else(|| resource_in_path(spec.path, action))
        .unwrap_or_default();
    let outcome = if status.is_success() {
        "ok"
    } else if denied {
        "denied"
    } else {
        "failed"
    };
    let entry = NewAuditEntry {
        ts: sextant_governance::now_ms(),
        actor: principal.name().to_string(),
        source,
        user_agent,
        method: method.to_string(),
        action: action.to_string(),
        resource_type,
        resource_id,
        status: i64::from(status.as_u16()),
        outcome: outcome.into(),
        detail: note.detail.unwrap_or_default(),
        before: note.before.map(|v| v.to_string()),
        after: note.after.map(|v| v.to_string()),
    };
    append(state, entry).await;
    response
}

/// Run data writes (metrics, params, tags: thousands a second) commit their
/// audit entry with the data, in the metric writer's transaction, instead
/// of costing a commit of their own (and are audited only when
/// `Options::audit_run_data` says so).
fn records_with_change(spec: &RouteSpec) -> bool {
    matches!(spec.access, Access::On(Permission::Edit, Target::Run(_)))
}

async fn append(state: &AppState, entry: NewAuditEntry) {
    if let Err(err) = state.store().append_audit(entry).await {
        tracing::error!(cause = %err, "audit entry lost");
    }
}

fn header_text(headers: &HeaderMap, name: header::HeaderName) -> String {
    headers
        .get(name)
        .and_then(|v| v.to_str().ok())
        .map(|v| v.chars().take(256).collect())
        .unwrap_or_default()
}

/// The peer address, with any `X-Forwarded-For` chain before it.
fn source_of(request: &Request) -> String {
    let peer = request
        .extensions()
        .get::<ConnectInfo<SocketAddr>>()
        .map(|info| info.0.ip().to_string())
        .unwrap_or_default();
    let forwarded: String = header_text(
        request.headers(),
        header::HeaderName::from_static("x-forwarded-for"),
    );
    if forwarded.is_empty() {
        peer
    } else {
        format!("{forwarded} via {peer}")
    }
}

#[cfg(test)]
mod tests {
    use super::resource_in_path;

    #[test]
    fn resources_named_in_paths() {
        let found = |pattern, path| resource_in_path(pattern, path);
        assert_eq!(
            found("/users/{username}", "/api/v1/users/bob"),
            Some(("user".into(), "bob".into()))
        );
        assert_eq!(
            found(
                "/groups/{name}/members/{username}",
                "/api/v1/groups/ds/members/bob"
            ),
            Some(("group".into(), "ds".into()))
        );
        assert_eq!(
            found(
                "/registered-models/{name}/policy",
                "/api/v1/registered-models/fraud%20model/policy"
            ),
            Some(("registered_model".into(), "fraud model".into()))
        );
        assert_eq!(
            found(
                "/transition-requests/{request_id}/approve",
                "/api/v1/transition-requests/7/approve"
            ),
            Some(("transition_request".into(), "7".into()))
        );
        assert_eq!(found("/users", "/api/v1/users"), None);
        assert_eq!(
            found(
                "/artifacts/{*path}",
                "/api/2.0/mlflow-artifacts/artifacts/1/x"
            ),
            None
        );
    }
}
