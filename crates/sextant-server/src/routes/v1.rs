//! The native API under `/api/v1`: users, groups, tokens, permissions,
//! model policies, transition requests (the promotion workflow) and the
//! audit log. Each handler is described for OpenAPI by `utoipa::path`; the
//! document is assembled in `openapi.rs`.
//!
//! Route rules live in [`ROUTES`]; rules that depend on the resource in the
//! path (a user's own account, a request's model) are checked here.

use axum::body::Body;
use axum::extract::{Path, State};
use axum::http::{header, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::{Extension, Json};
use serde_json::json;
use sextant_api::v1 as dto;
use sextant_api::ErrorCode;
use sextant_core::{
    Permission, PrincipalKind, RequestStatus, ResourceKind, Stage, TokenScope, TransitionTarget,
};
use sextant_governance::{hash_password_blocking, secrets, Principal};
use sextant_store::{AuditQuery, NewTransitionRequest, TransitionFilter};

use crate::error::{ApiError, ApiResult};
use crate::extract::MlflowRequest;
use crate::guard::{Access, AuditNote, Refused, RouteSpec, Target};
use crate::AppState;

pub(crate) const PREFIX: &str = "/api/v1";

const SIGNED_IN: Access = Access::SignedIn { mutates: false };
const SIGNED_IN_WRITE: Access = Access::SignedIn { mutates: true };
const ADMIN: Access = Access::Admin { mutates: false };
const ADMIN_WRITE: Access = Access::Admin { mutates: true };

pub(crate) static ROUTES: &[RouteSpec] = &[
    route!(POST "/bootstrap", Access::Public, bootstrap),
    route!(GET "/openapi.json", Access::Public, crate::openapi::serve_json),
    route!(GET "/docs", Access::Public, crate::openapi::serve_docs),
    route!(GET "/me", SIGNED_IN, me),
    route!(GET "/users", ADMIN, list_users),
    route!(POST "/users", ADMIN_WRITE, create_user),
    route!(GET "/users/{username}", SIGNED_IN, get_user),
    route!(PATCH "/users/{username}", SIGNED_IN_WRITE, update_user),
    route!(DELETE "/users/{username}", ADMIN_WRITE, delete_user),
    route!(GET "/groups", ADMIN, list_groups),
    route!(POST "/groups", ADMIN_WRITE, create_group),
    route!(GET "/groups/{name}", ADMIN, get_group),
    route!(DELETE "/groups/{name}", ADMIN_WRITE, delete_group),
    route!(PUT "/groups/{name}/members/{username}", ADMIN_WRITE, add_member),
    route!(DELETE "/groups/{name}/members/{username}", ADMIN_WRITE, remove_member),
    route!(GET "/tokens", SIGNED_IN, list_tokens),
    route!(POST "/tokens", SIGNED_IN_WRITE, create_token),
    route!(DELETE "/tokens/{token_id}", SIGNED_IN_WRITE, revoke_token),
    route!(GET "/permissions", SIGNED_IN, list_grants),
    route!(PUT "/permissions", SIGNED_IN_WRITE, grant),
    route!(DELETE "/permissions", SIGNED_IN_WRITE, revoke),
    route!(GET "/registered-models/{name}/policy", SIGNED_IN, get_policy),
    route!(PUT "/registered-models/{name}/policy", ADMIN_WRITE, set_policy),
    route!(POST "/transition-requests", Access::On(Permission::Edit, Target::Model), create_request),
    route!(GET "/transition-requests", SIGNED_IN, list_requests),
    route!(GET "/transition-requests/{request_id}", SIGNED_IN, get_request),
    route!(POST "/transition-requests/{request_id}/approve", SIGNED_IN_WRITE, approve),
    route!(POST "/transition-requests/{request_id}/reject", SIGNED_IN_WRITE, reject),
    route!(POST "/transition-requests/{request_id}/cancel", SIGNED_IN_WRITE, cancel),
    route!(GET "/deployments", SIGNED_IN, super::deployments::list),
    route!(POST "/deployments", SIGNED_IN_WRITE, super::deployments::create),
    route!(GET "/deployments/{name}", on_deployment(Permission::Read), super::deployments::get),
    route!(PATCH "/deployments/{name}", on_deployment(Permission::Edit), super::deployments::update),
    route!(DELETE "/deployments/{name}", on_deployment(Permission::Manage), super::deployments::delete),
    route!(POST "/deployments/{name}/canary", on_deployment(Permission::Edit), super::deployments::canary),
    route!(POST "/deployments/{name}/ab", on_deployment(Permission::Edit), super::deployments::ab_test),
    route!(POST "/deployments/{name}/shadow", on_deployment(Permission::Edit), super::deployments::shadow),
    route!(POST "/deployments/{name}/promote", on_deployment(Permission::Edit), super::deployments::promote),
    route!(POST "/deployments/{name}/rollback", on_deployment(Permission::Edit), super::deployments::rollback),
    route!(GET "/deployments/{name}/history", on_deployment(Permission::Read), super::deployments::history),
    route!(GET "/deployments/{name}/status", on_deployment(Permission::Read), super::deployments::status),
    route!(GET "/progress/{id}", SIGNED_IN, super::deployments::progress),
    route!(POST "/deployments/{name}/report", on_deployment(Permission::Edit), super::deployments::report),
    route!(PUT "/deployments/{name}/monitoring/reference", on_deployment(Permission::Edit), super::monitoring::put_reference),
    route!(GET "/deployments/{name}/monitoring", on_deployment(Permission::Read), super::monitoring::report),
    route!(GET "/deployments/{name}/monitoring/windows", on_deployment(Permission::Read), super::monitoring::windows),
    route!(GET "/deployments/{name}/monitoring/abuse", on_deployment(Permission::Read), super::monitoring::abuse),
    route!(GET "/deployments/{name}/monitoring/profile", on_deployment(Permission::Read), super::monitoring::profile),
    route!(POST "/deployments/{name}/feedback", on_deployment(Permission::Invoke), super::feedback::post_feedback),
    route!(GET "/deployments/{name}/performance", on_deployment(Permission::Read), super::feedback::performance),
    route!(GET "/deployments/{name}/alerts", on_deployment(Permission::Read), super::alerts::list),
    route!(GET "/deployments/{name}/alerts/metrics", on_deployment(Permission::Read), super::alerts::metrics),
    route!(POST "/deployments/{name}/alerts/evaluate", on_deployment(Permission::Edit), super::alerts::evaluate),
    route!(PUT "/deployments/{name}/alerts/{rule}", on_deployment(Permission::Edit), super::alerts::put),
    route!(DELETE "/deployments/{name}/alerts/{rule}", on_deployment(Permission::Edit), super::alerts::delete),
    route!(GET "/deployments/{name}/retrain-trigger", on_deployment(Permission::Read), super::alerts::get_trigger),
    route!(PUT "/deployments/{name}/retrain-trigger", on_deployment(Permission::Manage), super::alerts::put_trigger),
    route!(DELETE "/deployments/{name}/retrain-trigger", on_deployment(Permission::Manage), super::alerts::delete_trigger),
    route!(POST "/deployments/{name}/retrain", on_deployment(Permission::Edit), super::alerts::retrain),
    route!(GET "/alerts", ADMIN, super::alerts::all),
    route!(POST "/drift", SIGNED_IN, super::monitoring::drift),
    RouteSpec {
        method: axum::http::Method::PUT,
        path: "/deployments/{name}/prediction-log/{*file}",
        access: on_deployment(Permission::Edit),
        handler: |filter| {
            axum::routing::on(filter, super::deployments::upload_log)
                .layer(axum::extract::DefaultBodyLimit::max(1 << 30))
        },
    },
    route!(GET "/model-versions/archive", Access::On(Permission::Read, Target::Model), super::deployments::model_archive),
    route!(POST "/datasets/chunks/missing", SIGNED_IN, super::datasets::missing_chunks),
    route!(PUT "/datasets/chunks/{sha256}", SIGNED_IN_WRITE, super::datasets::put_chunk),
    route!(GET "/datasets/chunks/{sha256}", SIGNED_IN, super::datasets::get_chunk),
    route!(GET "/datasets", SIGNED_IN, super::datasets::list),
    route!(POST "/datasets/{name}/versions", SIGNED_IN_WRITE, super::datasets::create_version),
    route!(GET "/datasets/{name}/versions/{version}", SIGNED_IN, super::datasets::get_version),
    route!(GET "/datasets/{name}/versions/{version}/profile", SIGNED_IN, super::profiles::get_profile),
    route!(GET "/datasets/{name}/versions/{version}/profile.html", SIGNED_IN, super::profiles::get_profile_html),
    route!(GET "/lineage", SIGNED_IN, super::lineage::lineage),
    route!(POST "/run-manifests", Access::On(Permission::Edit, Target::Run), super::manifests::record),
    route!(GET "/run-manifests", Access::On(Permission::Read, Target::Run), super::manifests::check),
    route!(GET "/registered-models/{name}/validation-spec", on_model(Permission::Read), super::validation::get_spec),
    route!(PUT "/registered-models/{name}/validation-spec", on_model(Permission::Edit), super::validation::put_spec),
    route!(DELETE "/registered-models/{name}/validation-spec", on_model(Permission::Edit), super::validation::delete_spec),
    route!(GET "/registered-models/{name}/versions/{version}/validation", on_model(Permission::Read), super::validation::get_validation),
    route!(POST "/registered-models/{name}/versions/{version}/validation", on_model(Permission::Edit), super::validation::run_validation),
    route!(GET "/registered-models/{name}/versions/{version}/validation/report.html", on_model(Permission::Read), super::validation::report_html),
    route!(POST "/registered-models/{name}/versions/{version}/validation/override", ADMIN_WRITE, super::validation::override_validation),
    route!(GET "/audit", ADMIN, audit_list),
    route!(GET "/audit/export", ADMIN, audit_export),
    route!(GET "/audit/verify", ADMIN, audit_verify),
];

const fn on_model(permission: Permission) -> Access {
    Access::On(permission, Target::ModelPath)
}

const fn on_deployment(permission: Permission) -> Access {
    Access::On(permission, Target::Deployment)
}

fn forbidden(message: impl Into<String>) -> ApiError {
    ApiError::User(ErrorCode::PermissionDenied, message.into())
}

fn note(resource_type: &str, resource_id: &str) -> AuditNote {
    AuditNote {
        resource: Some((resource_type.to_string(), resource_id.to_string())),
        ..AuditNote::default()
    }
}

/// The user id behind the principal; with authentication off there is none.
fn user_id(principal: &Principal) -> ApiResult<i64> {
    principal.caller().map(|c| c.user_id).ok_or_else(|| {
        ApiError::invalid("Authentication is off: there is no signed-in user (pass a username)")
    })
}

/// Spend the bootstrap token printed at first start: sets the `admin` password.
#[utoipa::path(post, path = "/api/v1/bootstrap", tag = "users", request_body = dto::Bootstrap,
    responses((status = 200, description = "The admin password is set"), (status = 401, body = dto::Error)))]
pub(crate) async fn bootstrap(
    State(state): State<AppState>,
    MlflowRequest(request): MlflowRequest<dto::Bootstrap>,
) -> ApiResult<(Extension<AuditNote>, Json<serde_json::Value>)> {
    state
        .governance()
        .complete_bootstrap(&request.token, &request.password)
        .await
        .map_err(|err| match err {
            sextant_governance::AuthError::Store(err) => ApiError::from(err),
            other => ApiError::User(ErrorCode::Unauthenticated, other.to_string()),
        })?;
    let mut note = note("user", sextant_governance::ADMIN_USERNAME);
    note.detail = Some("first admin password set with the bootstrap token".into());
    let entry = sextant_core::NewAuditEntry {
        ts: sextant_governance::now_ms(),
        actor: sextant_governance::ADMIN_USERNAME.into(),
        method: "POST".into(),
        action: "/api/v1/bootstrap".into(),
        resource_type: "user".into(),
        resource_id: sextant_governance::ADMIN_USERNAME.into(),
        status: 200,
        outcome: "ok".into(),
        detail: "first admin password set with the bootstrap token".into(),
        ..Default::default()
    };
    // A public route: the guard does not audit it, so do it here.
    state.store().append_audit(entry).await?;
    Ok((Extension(note), Json(json!({}))))
}

/// Who the caller is.
#[utoipa::path(get, path = "/api/v1/me", tag = "users", responses((status = 200, body = dto::WhoAmI)))]
pub(crate) async fn me(
    State(state): State<AppState>,
    Extension(principal): Extension<Principal>,
) -> Json<dto::WhoAmI> {
    let caller = principal.caller();
    Json(dto::WhoAmI {
        username: principal.name().to_string(),
        is_admin: principal.is_admin(),
        auth_enabled: state.governance().auth_enabled(),
        token_id: caller.and_then(|c| c.token_id.clone()),
        scopes: caller
            .and_then(|c| c.scopes.as_ref())
            .map(|s| s.iter().map(|s| s.as_str().to_string()).collect()),
    })
}

/// Every user (admins only).
#[utoipa::path(get, path = "/api/v1/users", tag = "users", responses((status = 200, body = dto::Users), (status = 403, body = dto::Error)))]
pub(crate) async fn list_users(State(state): State<AppState>) -> ApiResult<Json<dto::Users>> {
    let users = state.store().list_users().await?;
    Ok(Json(dto::Users {
        users: users.into_iter().map(Into::into).collect(),
    }))
}

/// Create a user (admins only).
#[utoipa::path(post, path = "/api/v1/users", tag = "users", request_body = dto::CreateUser,
    responses((status = 200, body = dto::User), (status = 400, body = dto::Error), (status = 403, body = dto::Error)))]
pub(crate) async fn create_user(
    State(state): State<AppState>,
    MlflowRequest(request): MlflowRequest<dto::CreateUser>,
) -> ApiResult<(Extension<AuditNote>, Json<dto::User>)> {
    let phc = hash_password_blocking(&request.password).await?;
    let user = state
        .store()
        .create_user(&request.username, Some(&phc), request.is_admin)
        .await?;
    let mut note = note("user", &user.username);
    note.after = Some(json!({ "username": user.username, "is_admin": user.is_admin }));
    Ok((Extension(note), Json(user.into())))
}

/// One user: yourself, or anyone for admins.
#[utoipa::path(get, path = "/api/v1/users/{username}", tag = "users", params(("username" = String, Path)),
    responses((status = 200, body = dto::User), (status = 403, body = dto::Error), (status = 404, body = dto::Error)))]
pub(crate) async fn get_user(
    State(state): State<AppState>,
    Extension(principal): Extension<Principal>,
    Path(username): Path<String>,
) -> ApiResult<Json<dto::User>> {
    if !principal.is_admin() && principal.name() != username {
        return Err(forbidden("Only administrators may look up other users"));
    }
    Ok(Json(state.store().get_user(&username).await?.into()))
}

/// Change a password (your own, or anyone's for admins), admin rights or
/// the disabled flag (admins only).
#[utoipa::path(patch, path = "/api/v1/users/{username}", tag = "users", params(("username" = String, Path)),
    request_body = dto::UpdateUser,
    responses((status = 200, body = dto::User), (status = 403, body = dto::Error), (status = 404, body = dto::Error)))]
pub(crate) async fn update_user(
    State(state): State<AppState>,
    Extension(principal): Extension<Principal>,
    Path(username): Path<String>,
    MlflowRequest(request): MlflowRequest<dto::UpdateUser>,
) -> ApiResult<(Extension<AuditNote>, Json<dto::User>)> {
    let is_self = principal.name() == username;
    if !principal.is_admin()
        && (!is_self || request.is_admin.is_some() || request.disabled.is_some())
    {
        return Err(forbidden(
            "Only administrators may change other users, admin rights or the disabled flag",
        ));
    }
    let store = state.store();
    let before = store.get_user(&username).await?;
    if let Some(password) = &request.password {
        let phc = hash_password_blocking(password).await?;
        store.set_user_password(&username, &phc).await?;
    }
    if let Some(is_admin) = request.is_admin {
        store.set_user_admin(&username, is_admin).await?;
    }
    if let Some(disabled) = request.disabled {
        store.set_user_disabled(&username, disabled).await?;
    }
    state.governance().credentials_changed();
    let after = store.get_user(&username).await?;
    let mut note = note("user", &username);
    note.before = Some(json!({ "is_admin": before.is_admin, "disabled": before.disabled }));
    note.after = Some(json!({
        "is_admin": after.is_admin,
        "disabled": after.disabled,
        "password_changed": request.password.is_some(),
    }));
    Ok((Extension(note), Json(after.into())))
}

/// Delete a user with their tokens and grants (admins only).
#[utoipa::path(delete, path = "/api/v1/users/{username}", tag = "users", params(("username" = String, Path)),
    responses((status = 200), (status = 403, body = dto::Error), (status = 404, body = dto::Error)))]
pub(crate) async fn delete_user(
    State(state): State<AppState>,
    Path(username): Path<String>,
) -> ApiResult<(Extension<AuditNote>, Json<serde_json::Value>)> {
    state.store().delete_user(&username).await?;
    state.governance().credentials_changed();
    Ok((Extension(note("user", &username)), Json(json!({}))))
}

/// Every group (admins only).
#[utoipa::path(get, path = "/api/v1/groups", tag = "groups", responses((status = 200, body = dto::Groups)))]
pub(crate) async fn list_groups(State(state): State<AppState>) -> ApiResult<Json<dto::Groups>> {
    let groups = state.store().list_groups().await?;
    Ok(Json(dto::Groups {
        groups: groups.into_iter().map(Into::into).collect(),
    }))
}

#[utoipa::path(post, path = "/api/v1/groups", tag = "groups", request_body = dto::CreateGroup,
    responses((status = 200, body = dto::Group), (status = 400, body = dto::Error)))]
pub(crate) async fn create_group(
    State(state): State<AppState>,
    MlflowRequest(request): MlflowRequest<dto::CreateGroup>,
) -> ApiResult<(Extension<AuditNote>, Json<dto::Group>)> {
    let group = state.store().create_group(&request.name).await?;
    Ok((Extension(note("group", &group.name)), Json(group.into())))
}

#[utoipa::path(get, path = "/api/v1/groups/{name}", tag = "groups", params(("name" = String, Path)),
    responses((status = 200, body = dto::Group), (status = 404, body = dto::Error)))]
pub(crate) async fn get_group(
    State(state): State<AppState>,
    Path(name): Path<String>,
) -> ApiResult<Json<dto::Group>> {
    Ok(Json(state.store().get_group(&name).await?.into()))
}

#[utoipa::path(delete, path = "/api/v1/groups/{name}", tag = "groups", params(("name" = String, Path)),
    responses((status = 200), (status = 404, body = dto::Error)))]
pub(crate) async fn delete_group(
    State(state): State<AppState>,
    Path(name): Path<String>,
) -> ApiResult<(Extension<AuditNote>, Json<serde_json::Value>)> {
    state.store().delete_group(&name).await?;
    state.governance().grants_changed();
    Ok((Extension(note("group", &name)), Json(json!({}))))
}

#[utoipa::path(put, path = "/api/v1/groups/{name}/members/{username}", tag = "groups",
    params(("name" = String, Path), ("username" = String, Path)),
    responses((status = 200), (status = 404, body = dto::Error)))]
pub(crate) async fn add_member(
    State(state): State<AppState>,
    Path((name, username)): Path<(String, String)>,
) -> ApiResult<(Extension<AuditNote>, Json<serde_json::Value>)> {
    state.store().add_group_member(&name, &username).await?;
    state.governance().grants_changed();
    let mut note = note("group", &name);
    note.after = Some(json!({ "member_added": username }));
    Ok((Extension(note), Json(json!({}))))
}

#[utoipa::path(delete, path = "/api/v1/groups/{name}/members/{username}", tag = "groups",
    params(("name" = String, Path), ("username" = String, Path)),
    responses((status = 200), (status = 404, body = dto::Error)))]
pub(crate) async fn remove_member(
    State(state): State<AppState>,
    Path((name, username)): Path<(String, String)>,
) -> ApiResult<(Extension<AuditNote>, Json<serde_json::Value>)> {
    state.store().remove_group_member(&name, &username).await?;
    state.governance().grants_changed();
    let mut note = note("group", &name);
    note.after = Some(json!({ "member_removed": username }));
    Ok((Extension(note), Json(json!({}))))
}

/// Your tokens; admins may list another user's (`username`) or all (`*`).
#[utoipa::path(get, path = "/api/v1/tokens", tag = "tokens", params(dto::TokensQuery),
    responses((status = 200, body = dto::Tokens)))]
pub(crate) async fn list_tokens(
    State(state): State<AppState>,
    Extension(principal): Extension<Principal>,
    MlflowRequest(query): MlflowRequest<dto::TokensQuery>,
) -> ApiResult<Json<dto::Tokens>> {
    let user_id = match query.username.as_deref() {
        Some("*") if principal.is_admin() => None,
        Some(name) if principal.is_admin() => Some(state.store().get_user(name).await?.user_id),
        Some(name) if name != principal.name() => {
            return Err(forbidden(
                "Only administrators may list other users' tokens",
            ))
        }
        // Without authentication nobody has tokens.
        _ if principal.caller().is_none() => return Ok(Json(dto::Tokens { tokens: Vec::new() })),
        _ => Some(user_id(&principal)?),
    };
    let tokens = state.store().list_tokens(user_id).await?;
    Ok(Json(dto::Tokens {
        tokens: tokens.into_iter().map(Into::into).collect(),
    }))
}

/// Create an API token; its secret is in this response only.
#[utoipa::path(post, path = "/api/v1/tokens", tag = "tokens", request_body = dto::CreateToken,
    responses((status = 200, body = dto::CreatedToken), (status = 400, body = dto::Error)))]
pub(crate) async fn create_token(
    State(state): State<AppState>,
    Extension(principal): Extension<Principal>,
    MlflowRequest(request): MlflowRequest<dto::CreateToken>,
) -> ApiResult<(Extension<AuditNote>, Json<dto::CreatedToken>)> {
    let name = request.name.trim();
    if name.is_empty()
        || name.chars().count() > 256
        || name == sextant_governance::BOOTSTRAP_TOKEN_NAME
    {
        return Err(ApiError::invalid(
            "A token needs a name of 1 to 256 characters (not 'bootstrap')",
        ));
    }
    let user_id = match request.username.as_deref() {
        Some(other) if other != principal.name() => {
            if !principal.is_admin() {
                return Err(forbidden(
                    "Only administrators may create tokens for other users",
                ));
            }
            state.store().get_user(other).await?.user_id
        }
        _ => user_id(&principal)?,
    };
    let scopes = match &request.scopes {
        None => vec![TokenScope::Read, TokenScope::Write],
        Some(names) if names.is_empty() => {
            return Err(ApiError::invalid("A token needs at least one scope"))
        }
        Some(names) => names
            .iter()
            .map(|n| {
                TokenScope::parse(n).ok_or_else(|| {
                    ApiError::invalid(format!("Unknown scope '{n}': use read, write or invoke"))
                })
            })
            .collect::<ApiResult<Vec<_>>>()?,
    };
    let expires_at = match request.expires_in_seconds {
        Some(seconds) if seconds <= 0 => {
            return Err(ApiError::invalid("expires_in_seconds must be positive"))
        }
        Some(seconds) => {
            Some(sextant_governance::now_ms().saturating_add(seconds.saturating_mul(1000)))
        }
        None => None,
    };
    let fresh = secrets::new_token().map_err(ApiError::Internal)?;
    let token = state
        .store()
        .create_token(
            &fresh.token_id,
            &fresh.secret_sha256,
            user_id,
            name,
            &scopes,
            expires_at,
        )
        .await?;
    let mut note = note("token", &token.token_id);
    note.after = Some(json!({
        "user": token.username,
        "name": token.name,
        "scopes": token.scopes.iter().map(|s| s.as_str()).collect::<Vec<_>>(),
        "expires_at": token.expires_at,
    }));
    Ok((
        Extension(note),
        Json(dto::CreatedToken {
            token: fresh.secret,
            info: token.into(),
        }),
    ))
}

/// Revoke a token: your own, or anyone's for admins. Takes effect at once
/// on this server and within seconds on other replicas.
#[utoipa::path(delete, path = "/api/v1/tokens/{token_id}", tag = "tokens", params(("token_id" = String, Path)),
    responses((status = 200), (status = 403, body = dto::Error), (status = 404, body = dto::Error)))]
pub(crate) async fn revoke_token(
    State(state): State<AppState>,
    Extension(principal): Extension<Principal>,
    Path(token_id): Path<String>,
) -> ApiResult<(Extension<AuditNote>, Json<serde_json::Value>)> {
    let token = state.store().get_token(&token_id).await?;
    if !principal.is_admin() && principal.name() != token.username {
        // Someone else's token: as good as absent.
        return Err(ApiError::not_found(format!(
            "Token '{token_id}' does not exist"
        )));
    }
    state.store().revoke_token(&token_id).await?;
    state.governance().credentials_changed();
    Ok((Extension(note("token", &token_id)), Json(json!({}))))
}

fn resource_kind(text: &str) -> ApiResult<ResourceKind> {
    ResourceKind::parse(text).ok_or_else(|| {
        ApiError::invalid(format!(
            "Unknown resource_type '{text}': use experiment, registered_model or deployment"
        ))
    })
}

/// Grants on one resource (needs manage on it), or on every resource of a
/// type, with an id, or at all that the caller manages (admins: every grant).
#[utoipa::path(get, path = "/api/v1/permissions", tag = "permissions", params(dto::GrantsQuery),
    responses((status = 200, body = dto::Grants), (status = 403, body = dto::Error)))]
pub(crate) async fn list_grants(
    State(state): State<AppState>,
    Extension(principal): Extension<Principal>,
    MlflowRequest(query): MlflowRequest<dto::GrantsQuery>,
) -> ApiResult<Json<dto::Grants>> {
    let kind = query
        .resource_type
        .as_deref()
        .map(resource_kind)
        .transpose()?;
    let id = query.resource_id.as_deref().filter(|id| !id.is_empty());
    let grants = match (kind, id) {
        (Some(kind), Some(id)) => {
            if !principal.may(kind, id, Permission::Manage) {
                return Err(forbidden(format!(
                    "Listing the grants on {kind} '{id}' needs manage permission on it"
                )));
            }
            state.store().list_grants(Some((kind, id))).await?
        }
        // Narrowed by kind or id or neither: the grants on every such
        // resource the caller manages (everything, for admins).
        _ => state
            .store()
            .list_grants(None)
            .await?
            .into_iter()
            .filter(|grant| {
                kind.is_none_or(|kind| grant.resource_kind == kind)
                    && id.is_none_or(|id| grant.resource_id == id)
                    && principal.may(grant.resource_kind, &grant.resource_id, Permission::Manage)
            })
            .collect(),
    };
    Ok(Json(dto::Grants {
        grants: grants.into_iter().map(Into::into).collect(),
    }))
}

struct ParsedGrant {
    kind: ResourceKind,
    id: String,
    principal_kind: PrincipalKind,
    principal_name: String,
    permission: Permission,
}

/// Checks a grant change: managers of a resource may grant and revoke read,
/// edit, manage and invoke on it; `approve` (separation of duties) only
/// admins may hand out.
fn parse_grant(principal: &Principal, grant: dto::Grant) -> ApiResult<ParsedGrant> {
    let kind = resource_kind(&grant.resource_type)?;
    if grant.resource_id.is_empty() {
        return Err(ApiError::missing("resource_id"));
    }
    let (principal_kind, principal_name) = grant
        .principal
        .split_once(':')
        .and_then(|(k, n)| Some((PrincipalKind::parse(k)?, n.to_string())))
        .ok_or_else(|| {
            ApiError::invalid(format!(
                "Invalid principal '{}': use user:NAME or group:NAME",
                grant.principal
            ))
        })?;
    let permission = Permission::parse(&grant.permission).ok_or_else(|| {
        ApiError::invalid(format!(
            "Unknown permission '{}': use read, edit, manage, approve, invoke or deploy",
            grant.permission
        ))
    })?;
    let valid = match permission {
        Permission::Approve | Permission::Deploy => kind == ResourceKind::RegisteredModel,
        Permission::Invoke => kind == ResourceKind::Deployment,
        _ => true,
    };
    if !valid {
        return Err(ApiError::invalid(format!(
            "{permission} cannot be granted on a {kind}: approve and deploy apply to registered models, invoke to deployments"
        )));
    }
    if matches!(permission, Permission::Approve | Permission::Deploy) && !principal.is_admin() {
        return Err(forbidden(format!(
            "Only administrators may grant or revoke {permission}"
        )));
    }
    // Experiments have one spelling of their id, the one checks use.
    let resource_id = match kind {
        ResourceKind::Experiment => crate::resource::canonical_experiment_id(&grant.resource_id)?,
        _ => grant.resource_id,
    };
    let grant = dto::Grant {
        resource_id,
        ..grant
    };
    if !principal.may(kind, &grant.resource_id, Permission::Manage) {
        return Err(forbidden(format!(
            "Changing grants on {kind} '{}' needs manage permission on it",
            grant.resource_id
        )));
    }
    Ok(ParsedGrant {
        kind,
        id: grant.resource_id,
        principal_kind,
        principal_name,
        permission,
    })
}

fn grant_note(grant: &ParsedGrant, granted: bool) -> AuditNote {
    let state = json!({
        "principal": format!("{}:{}", grant.principal_kind, grant.principal_name),
        "permission": grant.permission.as_str(),
    });
    let mut note = note(grant.kind.as_str(), &grant.id);
    if granted {
        note.after = Some(state);
    } else {
        note.before = Some(state);
    }
    note
}

/// Grant a permission (idempotent).
#[utoipa::path(put, path = "/api/v1/permissions", tag = "permissions", request_body = dto::Grant,
    responses((status = 200), (status = 400, body = dto::Error), (status = 403, body = dto::Error)))]
pub(crate) async fn grant(
    State(state): State<AppState>,
    Extension(principal): Extension<Principal>,
    MlflowRequest(request): MlflowRequest<dto::Grant>,
) -> ApiResult<(Extension<AuditNote>, Json<serde_json::Value>)> {
    let grant = parse_grant(&principal, request)?;
    state
        .store()
        .grant_permission(
            grant.kind,
            &grant.id,
            grant.principal_kind,
            &grant.principal_name,
            grant.permission,
        )
        .await?;
    state.governance().grants_changed();
    Ok((Extension(grant_note(&grant, true)), Json(json!({}))))
}

/// Revoke a permission.
#[utoipa::path(delete, path = "/api/v1/permissions", tag = "permissions", request_body = dto::Grant,
    responses((status = 200), (status = 403, body = dto::Error), (status = 404, body = dto::Error)))]
pub(crate) async fn revoke(
    State(state): State<AppState>,
    Extension(principal): Extension<Principal>,
    MlflowRequest(request): MlflowRequest<dto::Grant>,
) -> ApiResult<(Extension<AuditNote>, Json<serde_json::Value>)> {
    let grant = parse_grant(&principal, request)?;
    let removed = state
        .store()
        .revoke_permission(
            grant.kind,
            &grant.id,
            grant.principal_kind,
            &grant.principal_name,
            grant.permission,
        )
        .await?;
    if !removed {
        return Err(ApiError::not_found("No such grant"));
    }
    state.governance().grants_changed();
    Ok((Extension(grant_note(&grant, false)), Json(json!({}))))
}

fn require_model_read(principal: &Principal, name: &str) -> ApiResult<()> {
    if principal.may(ResourceKind::RegisteredModel, name, Permission::Read) {
        Ok(())
    } else {
        Err(forbidden(format!(
            "Permission denied: user '{}' lacks read permission on registered model '{name}'",
            principal.name()
        )))
    }
}

/// Which stages and aliases of a model are protected.
#[utoipa::path(get, path = "/api/v1/registered-models/{name}/policy", tag = "workflow", params(("name" = String, Path)),
    responses((status = 200, body = dto::ModelPolicy), (status = 403, body = dto::Error)))]
pub(crate) async fn get_policy(
    State(state): State<AppState>,
    Extension(principal): Extension<Principal>,
    Path(name): Path<String>,
) -> ApiResult<Json<dto::ModelPolicy>> {
    require_model_read(&principal, &name)?;
    Ok(Json(state.store().model_policy(&name).await?.into()))
}

/// Set a model's policy (admins only).
#[utoipa::path(put, path = "/api/v1/registered-models/{name}/policy", tag = "workflow", params(("name" = String, Path)),
    request_body = dto::ModelPolicy,
    responses((status = 200, body = dto::ModelPolicy), (status = 400, body = dto::Error), (status = 403, body = dto::Error)))]
pub(crate) async fn set_policy(
    State(state): State<AppState>,
    Path(name): Path<String>,
    MlflowRequest(request): MlflowRequest<dto::ModelPolicy>,
) -> ApiResult<(Extension<AuditNote>, Json<dto::ModelPolicy>)> {
    let protected_stages = request
        .protected_stages
        .iter()
        .map(|s| match Stage::parse_loose(s) {
            Some(Stage::None) | None => Err(ApiError::invalid(format!(
                "Invalid protected stage '{s}': use Staging, Production or Archived"
            ))),
            Some(stage) => Ok(stage),
        })
        .collect::<ApiResult<Vec<_>>>()?;
    let before = state.store().model_policy(&name).await?;
    let policy = sextant_core::ModelPolicy {
        name: name.clone(),
        protected_stages,
        protected_aliases: request.protected_aliases,
        allow_self_approval: request.allow_self_approval,
    };
    state.store().set_model_policy(&policy).await?;
    let mut note = note("registered_model", &name);
    note.before = serde_json::to_value(dto::ModelPolicy::from(before)).ok();
    let after = dto::ModelPolicy::from(policy);
    note.after = serde_json::to_value(&after).ok();
    Ok((Extension(note), Json(after)))
}

/// Ask for a version to move to a stage or alias (needs edit on the model).
#[utoipa::path(post, path = "/api/v1/transition-requests", tag = "workflow", request_body = dto::CreateTransitionRequest,
    responses((status = 200, body = dto::TransitionRequest), (status = 400, body = dto::Error), (status = 403, body = dto::Error)))]
pub(crate) async fn create_request(
    State(state): State<AppState>,
    Extension(principal): Extension<Principal>,
    MlflowRequest(request): MlflowRequest<dto::CreateTransitionRequest>,
) -> ApiResult<(Extension<AuditNote>, Json<dto::TransitionRequest>)> {
    let version = match &request.version {
        serde_json::Value::Number(n) => n.as_i64(),
        serde_json::Value::String(s) => s.trim().parse().ok(),
        _ => None,
    }
    .ok_or_else(|| ApiError::invalid("'version' must be a version number"))?;
    let target = match (request.stage, request.alias) {
        (Some(stage), None) => {
            TransitionTarget::Stage(Stage::parse_loose(&stage).ok_or_else(|| {
                ApiError::invalid(format!(
                    "Invalid stage '{stage}': use None, Staging, Production or Archived"
                ))
            })?)
        }
        (None, Some(alias)) => TransitionTarget::Alias(alias),
        _ => return Err(ApiError::invalid("Give exactly one of 'stage' and 'alias'")),
    };
    let created = state
        .store()
        .create_transition_request(&NewTransitionRequest {
            name: request.name,
            version,
            target,
            archive_existing: request.archive_existing_versions,
            requested_by: principal.name().to_string(),
            comment: request.comment,
        })
        .await?;
    let mut note = note("registered_model", &created.name);
    note.after = Some(json!({
        "request_id": created.request_id,
        "version": created.version,
        "target": created.target.to_string(),
        "status": created.status.as_str(),
    }));
    Ok((Extension(note), Json(created.into())))
}

/// Requests on the models you may read, filtered by model, version, status.
#[utoipa::path(get, path = "/api/v1/transition-requests", tag = "workflow", params(dto::TransitionRequestsQuery),
    responses((status = 200, body = dto::TransitionRequests)))]
pub(crate) async fn list_requests(
    State(state): State<AppState>,
    Extension(principal): Extension<Principal>,
    MlflowRequest(query): MlflowRequest<dto::TransitionRequestsQuery>,
) -> ApiResult<Json<dto::TransitionRequests>> {
    let status = query
        .status
        .as_deref()
        .map(|s| {
            RequestStatus::parse(s).ok_or_else(|| {
                ApiError::invalid(format!(
                    "Invalid status '{s}': use pending, approved, rejected or cancelled"
                ))
            })
        })
        .transpose()?;
    let requests = state
        .store()
        .list_transition_requests(&TransitionFilter {
            name: query.name,
            version: query.version,
            status,
        })
        .await?;
    Ok(Json(dto::TransitionRequests {
        requests: requests
            .into_iter()
            .filter(|r| principal.may(ResourceKind::RegisteredModel, &r.name, Permission::Read))
            .map(Into::into)
            .collect(),
    }))
}

#[utoipa::path(get, path = "/api/v1/transition-requests/{request_id}", tag = "workflow", params(("request_id" = i64, Path)),
    responses((status = 200, body = dto::TransitionRequest), (status = 403, body = dto::Error), (status = 404, body = dto::Error)))]
pub(crate) async fn get_request(
    State(state): State<AppState>,
    Extension(principal): Extension<Principal>,
    Path(request_id): Path<String>,
) -> ApiResult<Json<dto::TransitionRequest>> {
    let request = state
        .store()
        .get_transition_request(parse_request_id(&request_id)?)
        .await?;
    require_model_read(&principal, &request.name)?;
    Ok(Json(request.into()))
}

fn parse_request_id(text: &str) -> ApiResult<i64> {
    text.parse()
        .map_err(|_| ApiError::invalid(format!("Invalid transition request id '{text}'")))
}

/// Approve a pending request: needs approve on the model, and not being
/// the requester unless the model's policy allows self-approval. Every
/// promotion gate must pass; then the stage or alias moves in the same
/// transaction as the decision.
#[utoipa::path(post, path = "/api/v1/transition-requests/{request_id}/approve", tag = "workflow",
    params(("request_id" = i64, Path)), request_body = dto::Decision,
    responses((status = 200, body = dto::TransitionRequest), (status = 403, body = dto::Error), (status = 409, body = dto::Error)))]
pub(crate) async fn approve(
    state: State<AppState>,
    principal: Extension<Principal>,
    request_id: Path<String>,
    body: MlflowRequest<dto::Decision>,
) -> Result<(Extension<AuditNote>, Json<dto::TransitionRequest>), Refused> {
    decide(state, principal, request_id, body, RequestStatus::Approved).await
}

/// Reject a pending request (same rights as approving).
#[utoipa::path(post, path = "/api/v1/transition-requests/{request_id}/reject", tag = "workflow",
    params(("request_id" = i64, Path)), request_body = dto::Decision,
    responses((status = 200, body = dto::TransitionRequest), (status = 403, body = dto::Error), (status = 409, body = dto::Error)))]
pub(crate) async fn reject(
    state: State<AppState>,
    principal: Extension<Principal>,
    request_id: Path<String>,
    body: MlflowRequest<dto::Decision>,
) -> Result<(Extension<AuditNote>, Json<dto::TransitionRequest>), Refused> {
    decide(state, principal, request_id, body, RequestStatus::Rejected).await
}

/// Withdraw your own pending request (or any, for admins).
#[utoipa::path(post, path = "/api/v1/transition-requests/{request_id}/cancel", tag = "workflow",
    params(("request_id" = i64, Path)), request_body = dto::Decision,
    responses((status = 200, body = dto::TransitionRequest), (status = 403, body = dto::Error), (status = 409, body = dto::Error)))]
pub(crate) async fn cancel(
    state: State<AppState>,
    principal: Extension<Principal>,
    request_id: Path<String>,
    body: MlflowRequest<dto::Decision>,
) -> Result<(Extension<AuditNote>, Json<dto::TransitionRequest>), Refused> {
    decide(state, principal, request_id, body, RequestStatus::Cancelled).await
}

async fn decide(
    State(state): State<AppState>,
    Extension(principal): Extension<Principal>,
    Path(request_id): Path<String>,
    MlflowRequest(body): MlflowRequest<dto::Decision>,
    decision: RequestStatus,
) -> Result<(Extension<AuditNote>, Json<dto::TransitionRequest>), Refused> {
    let store = state.store();
    let request = store
        .get_transition_request(parse_request_id(&request_id)?)
        .await?;
    let mut about = note("registered_model", &request.name);
    about.detail = Some(format!(
        "{decision} request {} (version {} to {})",
        request.request_id, request.version, request.target
    ));
    let refuse = |err: ApiError| Refused(err, about.clone());
    check_decision(&state, &principal, &request, decision)
        .await
        .map_err(refuse)?;
    let before = target_state(&state, &request).await;
    let decided = store
        .decide_transition_request(
            request.request_id,
            decision,
            principal.name(),
            &body.comment,
        )
        .await
        .map_err(|err| match err {
            sextant_store::StoreError::InvalidInput(message) => {
                refuse(ApiError::User(ErrorCode::Aborted, message))
            }
            other => refuse(other.into()),
        })?;
    let after = target_state(&state, &decided).await;
    let mut note = about.clone();
    note.detail = Some(format!(
        "request {} {}: version {} to {}",
        decided.request_id, decided.status, decided.version, decided.target
    ));
    note.before = Some(before);
    note.after = Some(after);
    Ok((Extension(note), Json(decided.into())))
}

/// Who may decide a request, and whether it can still be decided.
async fn check_decision(
    state: &AppState,
    principal: &Principal,
    request: &sextant_core::TransitionRequest,
    decision: RequestStatus,
) -> ApiResult<()> {
    let is_requester = principal.name() == request.requested_by;
    if decision == RequestStatus::Cancelled {
        if !is_requester && !principal.is_admin() {
            return Err(forbidden(
                "Only the requester or an administrator may cancel a request",
            ));
        }
    } else {
        if !principal.may(
            ResourceKind::RegisteredModel,
            &request.name,
            Permission::Approve,
        ) {
            return Err(forbidden(format!(
                "Permission denied: user '{}' lacks approve permission on registered model '{}'",
                principal.name(),
                request.name
            )));
        }
        if is_requester
            && !state
                .store()
                .model_policy(&request.name)
                .await?
                .allow_self_approval
        {
            return Err(forbidden(format!(
                "'{}' requested this transition and may not decide it: another approver must \
                 (an administrator can allow self-approval in the model's policy)",
                request.requested_by
            )));
        }
    }
    if request.status != RequestStatus::Pending {
        return Err(ApiError::User(
            ErrorCode::Aborted,
            format!(
                "Transition request {} is already {}",
                request.request_id, request.status
            ),
        ));
    }
    if decision == RequestStatus::Approved {
        let target = match &request.target {
            TransitionTarget::Alias(alias) => Some(format!("@{alias}")),
            TransitionTarget::Stage(Stage::None | Stage::Archived) => None,
            TransitionTarget::Stage(stage) => Some(stage.as_str().to_string()),
        };
        if let Some(target) = target {
            crate::validation::gate(state, &request.name, request.version, &target).await?;
        }
        if let Err(veto) = state.governance().check_gates(request).await {
            return Err(ApiError::User(
                ErrorCode::Aborted,
                format!(
                    "Promotion gate '{}' vetoed the transition: {}",
                    veto.gate, veto.reason
                ),
            ));
        }
    }
    Ok(())
}

/// What the request's target looks like now: the alias's version, or the
/// version's stage.
async fn target_state(
    state: &AppState,
    request: &sextant_core::TransitionRequest,
) -> serde_json::Value {
    let store = state.store();
    match &request.target {
        TransitionTarget::Alias(alias) => {
            let version = store
                .get_model_version_by_alias(&request.name, alias)
                .await
                .ok()
                .map(|v| v.version);
            json!({ "request": request.status.as_str(), "alias": alias, "version": version })
        }
        TransitionTarget::Stage(_) => {
            let stage = store
                .get_model_version(&request.name, &request.version.to_string())
                .await
                .ok()
                .map(|v| v.current_stage.as_str());
            json!({ "request": request.status.as_str(), "version": request.version, "stage": stage })
        }
    }
}

fn audit_query(query: &dto::AuditQuery, limit: i64) -> ApiResult<AuditQuery> {
    if query
        .max_results
        .is_some_and(|n| !(1..=10_000).contains(&n))
    {
        return Err(ApiError::invalid("max_results must be between 1 and 10000"));
    }
    let after_seq = query
        .page_token
        .as_deref()
        .filter(|t| !t.is_empty())
        .map(|t| {
            t.parse::<i64>()
                .map_err(|_| ApiError::invalid(format!("Invalid page token '{t}'")))
        })
        .transpose()?;
    Ok(AuditQuery {
        resource_type: query.resource_type.clone(),
        resource_id: query.resource_id.clone(),
        actor: query.actor.clone(),
        action: None,
        since: query.since,
        until: query.until,
        after_seq,
        limit,
    })
}

/// Audit entries, oldest first, filtered by resource, actor and time.
#[utoipa::path(get, path = "/api/v1/audit", tag = "audit", params(dto::AuditQuery),
    responses((status = 200, body = dto::AuditPage), (status = 403, body = dto::Error)))]
pub(crate) async fn audit_list(
    State(state): State<AppState>,
    MlflowRequest(query): MlflowRequest<dto::AuditQuery>,
) -> ApiResult<Json<dto::AuditPage>> {
    let limit = query.max_results.unwrap_or(1000);
    if !(1..=10_000).contains(&limit) {
        return Err(ApiError::invalid("max_results must be between 1 and 10000"));
    }
    let entries = state
        .store()
        .query_audit(&audit_query(&query, limit + 1)?)
        .await?;
    let more = entries.len() as i64 > limit;
    let entries: Vec<_> = entries.into_iter().take(limit as usize).collect();
    let next_page_token = more
        .then(|| entries.last().map(|e| e.seq.to_string()))
        .flatten();
    Ok(Json(dto::AuditPage {
        entries: entries.into_iter().map(Into::into).collect(),
        next_page_token,
    }))
}

/// Every matching entry as JSON lines (`application/x-ndjson`), streamed.
#[utoipa::path(get, path = "/api/v1/audit/export", tag = "audit", params(dto::AuditExportQuery),
    responses((status = 200, description = "One audit entry per line", content_type = "application/x-ndjson")))]
pub(crate) async fn audit_export(
    State(state): State<AppState>,
    MlflowRequest(query): MlflowRequest<dto::AuditExportQuery>,
) -> ApiResult<Response> {
    let first = audit_query(&query.into(), 5000)?;
    let store = state.store().clone();
    let pages = futures::stream::try_unfold(Some(first), move |next| {
        let store = store.clone();
        async move {
            let Some(query) = next else {
                return Ok::<_, std::io::Error>(None);
            };
            let entries = store
                .query_audit(&query)
                .await
                .map_err(std::io::Error::other)?;
            let following = (entries.len() as i64 == query.limit).then(|| AuditQuery {
                after_seq: entries.last().map(|e| e.seq),
                ..query.clone()
            });
            let mut chunk = Vec::new();
            for entry in entries {
                serde_json::to_writer(&mut chunk, &dto::AuditEntry::from(entry))
                    .map_err(std::io::Error::other)?;
                chunk.push(b'\n');
            }
            Ok(Some((bytes::Bytes::from(chunk), following)))
        }
    });
    Ok((
        StatusCode::OK,
        [(header::CONTENT_TYPE, "application/x-ndjson")],
        Body::from_stream(pages),
    )
        .into_response())
}

/// Recompute the whole hash chain and name the first bad entry.
#[utoipa::path(get, path = "/api/v1/audit/verify", tag = "audit", params(dto::VerifyQuery),
    responses((status = 200, body = dto::AuditVerification), (status = 403, body = dto::Error)))]
pub(crate) async fn audit_verify(
    State(state): State<AppState>,
    MlflowRequest(query): MlflowRequest<dto::VerifyQuery>,
) -> ApiResult<Json<dto::AuditVerification>> {
    let verdict = state
        .store()
        .verify_audit(query.expected_head.as_deref().filter(|h| !h.is_empty()))
        .await?;
    Ok(Json(verdict.into()))
}
