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
use sextant_artifacts::ArtifactPath;
use sextant_core::{NewAuditEntry, Permission, PrincipalKind, ResourceKind, TokenScope};
use sextant_governance::{AuthError, Principal};

use crate::error::ApiError;
use crate::extract::{parse_request, too_large, MAX_JSON_BODY};
use crate::resource;
use crate::routes::required;
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
    /// Prometheus' scrape: any signed-in user, or anyone when the server
    /// was started with `--public-metrics` (scrapers often carry no
    /// credentials; the metrics name deployments, models and features).
    Scrape,
    /// A web UI page: any signed-in user (the page shows only what the
    /// caller may see); without credentials the browser is sent to sign in.
    Page,
    /// Needs `Permission` on the resource that `Target` names.
    On(Permission, Target),
}

impl Access {
    pub fn mutates(&self) -> bool {
        match self {
            Access::Public | Access::Scrape | Access::Page => false,
            Access::SignedIn { mutates } | Access::Admin { mutates } => *mutates,
            // Calling a model changes nothing: not audited, no write scope.
            Access::On(permission, _) => {
                !matches!(permission, Permission::Read | Permission::Invoke)
            }
        }
    }
}

/// Where a request names the resource its permission is checked on. The
/// fields are MLflow's; each is read by the `resource` function its
/// handler uses.
#[derive(Debug, Clone, Copy)]
pub enum Target {
    /// An experiment id in `experiment_id`.
    Experiment,
    /// The experiment a new run goes to: `experiment_id`, or the default
    /// experiment `0` when it names none.
    NewRun,
    /// An experiment name in `experiment_name`.
    ExperimentName,
    /// A run in `run_id` or `run_uuid` (checked on the run's experiment).
    Run,
    /// Runs in `run_ids`.
    Runs,
    /// The `{model_id}` path segment of a logged-model route.
    LoggedModel,
    /// A registered model name in `name`.
    Model,
    /// A registered model named by the `{name}` path segment.
    ModelPath,
    /// The `mlflow-artifacts` path (`<experiment id>/…`), from the URL
    /// path or, for listings, the `path` query parameter.
    Artifact,
    /// A deployment: the `{name}` path segment, else (MLflow's
    /// `/invocations`) the `deployment` query parameter or the only
    /// deployment served.
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

/// The fields that can name a resource, typed as the handlers' request
/// types type them and read by the same `extract::parse_request`;
/// everything else in a body is skipped without being built.
#[derive(Deserialize, Default)]
struct Fields {
    run_id: Option<String>,
    run_uuid: Option<String>,
    #[serde(default, deserialize_with = "sextant_api::wire::string_list")]
    run_ids: Vec<String>,
    experiment_id: Option<String>,
    experiment_name: Option<String>,
    name: Option<String>,
}

/// What a request names, resolved once: the permission checks to make, the
/// resource its audit entry names, and what registry readers may reach.
struct Named {
    checks: Vec<(ResourceKind, String)>,
    audit: Resource,
    registry_fallback: Option<ThroughRegistry>,
}

impl Named {
    fn on(kind: ResourceKind, id: String) -> Named {
        Named {
            audit: Some((kind.as_str().to_string(), id.clone())),
            checks: vec![(kind, id)],
            registry_fallback: None,
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
    let open_scrape = matches!(spec.access, Access::Scrape)
        && (state.options().public_metrics || !state.governance().auth_enabled());
    let idle = matches!(spec.access, Access::Public)
        || open_scrape
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

    // A web session's token comes in its cookie, and is then taken as a
    // Bearer token; requests that change state with it must carry the
    // session's CSRF token, which a page on another site cannot know.
    let session = match request.headers().get(header::AUTHORIZATION) {
        Some(_) => None,
        None => crate::routes::ui::session_cookie(request.headers()),
    };
    let authorization = match &session {
        Some(secret) => Some(format!("Bearer {secret}").into_bytes()),
        None => request
            .headers()
            .get(header::AUTHORIZATION)
            .map(|value| value.as_bytes().to_vec()),
    };
    let principal = governance.authenticate(authorization.as_deref()).await;
    if let (Some(secret), Ok(_)) = (&session, &principal) {
        let changes_state = !matches!(method, Method::GET | Method::HEAD | Method::OPTIONS);
        let sent = header_text(
            request.headers(),
            header::HeaderName::from_static("x-csrf-token"),
        );
        if changes_state && sent != sextant_governance::csrf_token(secret) {
            return ApiError::User(
                ErrorCode::PermissionDenied,
                "This request came with the web session but without its CSRF token".into(),
            )
            .into_response();
        }
    }
    let mut request = request;
    if let Some(secret) = session {
        request
            .extensions_mut()
            .insert(crate::routes::ui::Session(secret));
    }
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
        Denial::Unauthenticated(_) if matches!(spec.access, Access::Page) => {
            // A page asked for without credentials: sign in, then come back.
            let next = url::form_urlencoded::byte_serialize(action.as_bytes()).collect::<String>();
            (
                axum::response::Redirect::to(&format!("/login?next={next}")).into_response(),
                String::new(),
            )
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
        Access::Public | Access::SignedIn { .. } | Access::Scrape | Access::Page => {
            return Ok((None, request))
        }
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
    let (request, named) = resolve(state, target, request)
        .await
        .map_err(|err| (None, Denial::Client(err)))?;
    let Named {
        checks,
        audit: resource,
        registry_fallback,
    } = named;
    if checks.is_empty() && !principal.is_admin() {
        // Nothing this rule can check on (the artifact root, or a location
        // outside every experiment): only admins get through.
        return Err((
            resource,
            Denial::Forbidden("Only administrators may do this".into()),
        ));
    }
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

/// Finds what a request names, with the functions its handler uses
/// (`resource::*`, `extract::parse_request`, axum's `Path`). Fails closed:
/// a request that names nothing, or something that does not exist, is
/// refused here and never reaches its handler.
async fn resolve(
    state: &AppState,
    target: Target,
    request: Request,
) -> Result<(Request, Named), ApiError> {
    let (mut parts, body) = request.into_parts();
    let path_params = resource::path_params(&mut parts).await;
    let path_param = |name: &str| {
        path_params
            .get(name)
            .cloned()
            .ok_or_else(|| ApiError::missing(name))
    };
    let query = parts.uri.query().unwrap_or("").to_string();
    // Bodies are read only where a field names the resource: artifact
    // uploads stream, and inference bodies are never parsed here.
    let reads_body = !matches!(
        target,
        Target::LoggedModel | Target::Deployment | Target::Artifact | Target::ModelPath
    );
    let (fields, body) = if reads_body {
        let bytes = axum::body::to_bytes(body, MAX_JSON_BODY)
            .await
            .map_err(|_| too_large())?;
        let fields: Fields = parse_request(&parts.method, &query, &bytes)?;
        (fields, Body::from(bytes))
    } else {
        (Fields::default(), body)
    };
    let governance = state.governance();
    let named = match target {
        Target::Experiment => Named::on(
            ResourceKind::Experiment,
            resource::experiment_id(fields.experiment_id)?,
        ),
        Target::NewRun => Named::on(
            ResourceKind::Experiment,
            resource::experiment_id_or_default(fields.experiment_id)?,
        ),
        Target::ExperimentName => {
            let name = required(fields.experiment_name, "experiment_name")?;
            let id = state
                .store()
                .experiment_id_by_name(&name)
                .await?
                .ok_or_else(|| {
                    ApiError::not_found(format!("Could not find experiment with name '{name}'"))
                })?;
            Named::on(ResourceKind::Experiment, id.to_string())
        }
        Target::Run => {
            let run_id = resource::run_id(fields.run_id, fields.run_uuid)?;
            let experiment = experiment_of_run(governance, &run_id).await?;
            Named {
                checks: vec![(ResourceKind::Experiment, experiment)],
                audit: Some(("run".into(), run_id)),
                registry_fallback: None,
            }
        }
        Target::Runs => {
            if fields.run_ids.is_empty() {
                return Err(ApiError::missing("run_ids"));
            }
            let mut checks = Vec::with_capacity(fields.run_ids.len());
            for run_id in &fields.run_ids {
                checks.push((
                    ResourceKind::Experiment,
                    experiment_of_run(governance, run_id).await?,
                ));
            }
            Named {
                checks,
                audit: Some(("run".into(), fields.run_ids.join(","))),
                registry_fallback: None,
            }
        }
        Target::LoggedModel => {
            let model_id = path_param("model_id")?;
            let experiment = governance
                .experiment_of_logged_model(&model_id)
                .await?
                .ok_or_else(|| {
                    ApiError::not_found(format!("Logged model with ID '{model_id}' not found"))
                })?;
            Named {
                checks: vec![(ResourceKind::Experiment, experiment.to_string())],
                audit: Some(("logged_model".into(), model_id.clone())),
                // Registry readers may read the logged model a version serves.
                registry_fallback: Some(ThroughRegistry::LoggedModel(model_id)),
            }
        }
        Target::Model => Named::on(
            ResourceKind::RegisteredModel,
            required(fields.name, "name")?,
        ),
        Target::ModelPath => Named::on(ResourceKind::RegisteredModel, path_param("name")?),
        Target::Deployment => {
            let name = match path_params.get("name") {
                Some(name) => name.clone(),
                None => resource::called_deployment(&mut parts, state.serving())
                    .await
                    .map_err(ApiError::invalid)?
                    .ok_or_else(|| ApiError::missing("deployment"))?,
            };
            Named::on(ResourceKind::Deployment, name)
        }
        Target::Artifact => {
            let raw = match path_params.get("path") {
                Some(path) => path.clone(),
                None => parse_request::<resource::ArtifactQuery>(&parts.method, &query, &[])?
                    .path
                    .unwrap_or_default(),
            };
            let artifact = resource::artifact_target(&raw)?;
            let audit = Some(("artifact".into(), artifact.path.as_str().to_string()));
            match artifact.experiment {
                Some(experiment) => Named {
                    checks: vec![(ResourceKind::Experiment, experiment)],
                    audit,
                    registry_fallback: Some(ThroughRegistry::Files(artifact.path)),
                },
                None => Named {
                    checks: Vec::new(),
                    audit,
                    registry_fallback: None,
                },
            }
        }
    };
    Ok((Request::from_parts(parts, body), named))
}

/// The experiment of an existing run; a run that does not exist is a 404,
/// never a request let through unchecked.
async fn experiment_of_run(
    governance: &sextant_governance::Governance,
    run_id: &str,
) -> Result<String, ApiError> {
    governance
        .experiment_of_run(run_id)
        .await?
        .map(|id| id.to_string())
        .ok_or_else(|| ApiError::not_found(format!("Run with id={run_id} not found")))
}

/// What a registry reader may reach without read on the experiment.
enum ThroughRegistry {
    /// The logged model a version was registered from.
    LoggedModel(String),
    /// Files under a version's storage location or source.
    Files(ArtifactPath),
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
            let mut segments = path.as_str().split('/').skip(1);
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
        let reaches =
            match wanted {
                ThroughRegistry::LoggedModel(id) => model_id.as_deref() == Some(id.as_str()),
                ThroughRegistry::Files(path) => locations.iter().any(|location| {
                    match sextant_artifacts::proxied_path(location) {
                        Some(Ok(root)) => !root.is_root() && path.is_within(&root),
                        _ => false,
                    }
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

fn percent_decode(text: &str) -> String {
    url::form_urlencoded::parse(format!("p={}", text.replace('+', "%2B")).as_bytes())
        .next()
        .map(|(_, v)| v.into_owned())
        .unwrap_or_default()
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
    matches!(spec.access, Access::On(Permission::Edit, Target::Run))
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
