//! Deployments in the native API: create, change (update, blue-green,
//! canary, A/B test, shadow, promote, rollback), inspect and delete; plus
//! what serving replicas call (model archives, counter reports, prediction
//! log segments).
//!
//! Every change follows one path ([`change`]): compute the next spec from
//! the stored one, load and warm up every model it needs, store it as a new
//! revision (refused if another change got there first), then serve it. A
//! version that cannot load is reported to the caller and nothing changes.

use axum::body::Body;
use axum::extract::{Path, Query, State};
use axum::http::{header, HeaderValue};
use axum::response::{IntoResponse, Response};
use axum::{Extension, Json};
use futures::StreamExt;
use sextant_api::deployments as dto;
use sextant_api::ErrorCode;
use sextant_artifacts::ArtifactPath;
use sextant_core::{
    validate_deployment_name, AbPolicy, Arm, ArmRole, CanaryPolicy, DeploymentRevision,
    DeploymentSettings, DeploymentSpec, ModelRef, Permission, ResourceKind,
};
use sextant_governance::Principal;
use sextant_store::DeploymentRecord;

use crate::error::{ApiError, ApiResult};
use crate::extract::MlflowRequest;
use crate::guard::AuditNote;
use crate::serving::controller::{decode_spec, encode_spec};
use crate::serving::follow;
use crate::AppState;

fn conflict(message: impl Into<String>) -> ApiError {
    ApiError::User(ErrorCode::Aborted, message.into())
}

fn serving(state: &AppState) -> ApiResult<&crate::serving::Serving> {
    serving_state(state)
}

/// The serving state, or 501 when this server does not serve models.
pub(crate) fn serving_state(state: &AppState) -> ApiResult<&crate::serving::Serving> {
    state.serving().ok_or_else(|| {
        ApiError::User(
            ErrorCode::NotImplemented,
            "this server does not serve models".into(),
        )
    })
}

/// `NAME@ALIAS`, `NAME/VERSION`, `NAME/latest`, optionally prefixed with
/// `models:/`, resolved against the registry. The caller must hold deploy
/// on the registered model.
async fn resolve_model(state: &AppState, principal: &Principal, text: &str) -> ApiResult<ModelRef> {
    let text = text.trim();
    let text = text.strip_prefix("models:/").unwrap_or(text);
    let usage = || {
        ApiError::invalid(format!(
            "Invalid model '{text}': use NAME@ALIAS, NAME/VERSION or NAME/latest (optionally prefixed with models:/)"
        ))
    };
    let (name, alias, version) = if let Some((name, alias)) = text.rsplit_once('@') {
        (name, Some(alias), None)
    } else if let Some((name, version)) = text.rsplit_once('/') {
        (name, None, Some(version))
    } else {
        return Err(usage());
    };
    if name.is_empty() || alias.is_some_and(str::is_empty) || version.is_some_and(str::is_empty) {
        return Err(usage());
    }
    // Serving a model runs what it holds on this server: only users an
    // admin granted deploy on the model may put it in a deployment.
    if !principal.may(ResourceKind::RegisteredModel, name, Permission::Deploy) {
        return Err(ApiError::User(
            ErrorCode::PermissionDenied,
            format!(
                "Permission denied: user '{}' lacks deploy permission on registered model '{name}' (an administrator grants it)",
                principal.name()
            ),
        ));
    }
    let store = state.store();
    let found = match (alias, version) {
        (Some(alias), _) => store.get_model_version_by_alias(name, alias).await?,
        (_, Some("latest")) => {
            let versions = store.get_latest_versions(name, &[]).await?;
            versions
                .into_iter()
                .max_by_key(|v| v.version)
                .ok_or_else(|| {
                    ApiError::not_found(format!("Registered model '{name}' has no versions"))
                })?
        }
        (_, Some(version)) => {
            if version.parse::<i64>().is_err() {
                return Err(usage());
            }
            store.get_model_version(name, version).await?
        }
        _ => return Err(usage()),
    };
    Ok(ModelRef {
        name: found.name,
        version: found.version,
        alias: alias.map(str::to_string),
    })
}

fn to_dto(record: &DeploymentRecord, spec: &DeploymentSpec) -> dto::Deployment {
    dto::Deployment {
        name: record.name.clone(),
        revision: record.revision,
        description: record.description.clone(),
        created_by: record.created_by.clone(),
        creation_time: record.creation_time,
        last_updated_time: record.last_updated_time,
        spec: dto::DeploymentSpec::from(spec),
        endpoints: dto::Endpoints::for_deployment(&record.name),
    }
}

pub(crate) fn stored_spec(record: &DeploymentRecord) -> ApiResult<DeploymentSpec> {
    decode_spec(&record.spec)
        .map_err(|e| ApiError::Internal(format!("stored spec of '{}': {e}", record.name)))
}

fn apply_settings(
    settings: &mut DeploymentSettings,
    patch: Option<dto::SettingsPatch>,
) -> ApiResult<()> {
    let Some(patch) = patch else { return Ok(()) };
    if let Some(log) = patch.log_predictions {
        settings.log_predictions = log;
    }
    if let Some(monitor) = patch.monitor {
        settings.monitor = monitor;
    }
    if let Some(workers) = patch.python_workers {
        if !(1..=64).contains(&workers) {
            return Err(ApiError::invalid("python_workers must be between 1 and 64"));
        }
        settings.python_workers = workers;
    }
    if let Some(keep) = patch.keep_standby {
        settings.keep_standby = keep;
    }
    if let Some(throttle) = patch.throttle_abusive_callers {
        settings.throttle_abusive_callers = throttle;
    }
    if let Some(rollout) = patch.on_alias_move {
        settings.on_alias_move = sextant_core::AliasRollout::parse(&rollout).ok_or_else(|| {
            ApiError::invalid(format!(
                "on_alias_move '{rollout}': use replace, blue-green or canary"
            ))
        })?;
    }
    Ok(())
}

fn spec_note(name: &str, before: Option<&str>, after: &str) -> AuditNote {
    AuditNote {
        resource: Some(("deployment".into(), name.to_string())),
        before: before.and_then(|b| serde_json::from_str(b).ok()),
        after: serde_json::from_str(after).ok(),
        ..AuditNote::default()
    }
}

/// Whether `principal` may move the alias a deployment follows as its
/// primary changes: as for a direct move, edit on the model and, when the
/// model's policy protects the alias, an approved transition request first.
async fn allow_alias_move(
    state: &AppState,
    principal: &Principal,
    deployment: &str,
    moving: &follow::AliasMove,
) -> ApiResult<()> {
    let what = format!(
        "Deployment '{deployment}' follows @{} of registered model '{}', so serving version {} moves the alias",
        moving.alias, moving.model, moving.version
    );
    if !principal.may(
        ResourceKind::RegisteredModel,
        &moving.model,
        Permission::Edit,
    ) {
        return Err(ApiError::User(
            ErrorCode::PermissionDenied,
            format!(
                "{what}: user '{}' lacks edit permission on the model",
                principal.name()
            ),
        ));
    }
    if state.governance().auth_enabled() && follow::protected(state.store(), moving).await {
        return Err(ApiError::User(
            ErrorCode::PermissionDenied,
            format!(
                "{what}, which is protected: ask for it with `sextant transitions request --model {} --version {} --alias {}`; \
                 once it is approved the deployment follows on its own (its on_alias_move rollout)",
                moving.model, moving.version, moving.alias
            ),
        ));
    }
    Ok(())
}

/// Loads what `spec` needs; a model that cannot load is the caller's
/// problem to see (422-like 400 naming the model), never a half change.
async fn prepare(
    state: &AppState,
    name: &str,
    revision: i64,
    spec: &DeploymentSpec,
) -> ApiResult<std::sync::Arc<crate::serving::LiveDeployment>> {
    serving(state)?
        .prepare(name, revision, spec)
        .await
        .map_err(|message| {
            ApiError::invalid(format!("Deployment '{name}' was not changed: {message}"))
        })
}

#[utoipa::path(post, path = "/api/v1/deployments", tag = "deployments", request_body = dto::CreateDeployment,
    responses((status = 200, body = dto::Deployment), (status = 400, body = sextant_api::v1::Error)))]
pub(crate) async fn create(
    State(state): State<AppState>,
    Extension(principal): Extension<Principal>,
    MlflowRequest(request): MlflowRequest<dto::CreateDeployment>,
) -> ApiResult<(Extension<AuditNote>, Json<dto::Deployment>)> {
    validate_deployment_name(&request.name).map_err(ApiError::invalid)?;
    let model = resolve_model(&state, &principal, &request.model).await?;
    crate::validation::gate(&state, &model.name, model.version, "deployment").await?;
    let mut settings = DeploymentSettings::new();
    apply_settings(&mut settings, request.settings)?;
    let spec = DeploymentSpec::single(model, settings);
    if state.store().get_deployment(&request.name).await.is_ok() {
        return Err(ApiError::User(
            ErrorCode::ResourceAlreadyExists,
            format!("Deployment '{}' already exists", request.name),
        ));
    }
    let live = prepare(&state, &request.name, 1, &spec).await?;
    let json = encode_spec(&spec);
    let record = state
        .store()
        .create_deployment(
            &request.name,
            &json,
            request.description.as_deref().unwrap_or(""),
            principal.name(),
        )
        .await?;
    super::monitoring::references_for_arms(&state, &live);
    serving(&state)?.activate(live);
    let mut note = spec_note(&record.name, None, &json);
    note.created = Some((ResourceKind::Deployment, record.name.clone()));
    Ok((Extension(note), Json(to_dto(&record, &spec))))
}

#[utoipa::path(get, path = "/api/v1/deployments", tag = "deployments",
    responses((status = 200, body = dto::Deployments)))]
pub(crate) async fn list(
    State(state): State<AppState>,
    Extension(principal): Extension<Principal>,
) -> ApiResult<Json<dto::Deployments>> {
    let visible = principal.visible(ResourceKind::Deployment);
    let records = state.store().list_deployments(&visible).await?;
    let deployments = records
        .iter()
        .map(|record| stored_spec(record).map(|spec| to_dto(record, &spec)))
        .collect::<ApiResult<_>>()?;
    Ok(Json(dto::Deployments { deployments }))
}

#[utoipa::path(get, path = "/api/v1/deployments/{name}", tag = "deployments", params(("name" = String, Path)),
    responses((status = 200, body = dto::Deployment), (status = 404, body = sextant_api::v1::Error)))]
pub(crate) async fn get(
    State(state): State<AppState>,
    Path(name): Path<String>,
) -> ApiResult<Json<dto::Deployment>> {
    let record = state.store().get_deployment(&name).await?;
    let spec = stored_spec(&record)?;
    Ok(Json(to_dto(&record, &spec)))
}

/// One change: `next` computes the new spec from the stored one (and the
/// history, newest first); the rest is shared.
async fn change(
    state: &AppState,
    name: &str,
    expected_revision: Option<i64>,
    action: &str,
    reason: &str,
    principal: &Principal,
    description: Option<&str>,
    next: impl FnOnce(&DeploymentSpec, &[DeploymentRevision]) -> ApiResult<DeploymentSpec>,
) -> ApiResult<(Extension<AuditNote>, Json<dto::Deployment>)> {
    let actor = principal.name();
    let record = state.store().get_deployment(name).await?;
    if let Some(expected) = expected_revision {
        if expected != record.revision {
            return Err(conflict(format!(
                "Deployment '{name}' is at revision {}, not {expected}",
                record.revision
            )));
        }
    }
    let current = stored_spec(&record)?;
    let history = if action == "rollback" {
        state
            .store()
            .deployment_history(name, 100)
            .await?
            .into_iter()
            .filter_map(|r| {
                decode_spec(&r.spec).ok().map(|spec| DeploymentRevision {
                    revision: r.revision,
                    spec,
                    action: r.action,
                    reason: r.reason,
                    actor: r.actor,
                    time: r.time,
                })
            })
            .collect()
    } else {
        Vec::new()
    };
    let spec = next(&current, &history)?;
    spec.validate().map_err(|e| conflict(e.0))?;
    // Every version the change puts on live traffic passes the quality
    // gate, however it got there: promote and rollback make a shadow or
    // standby arm live without naming a model.
    for model in newly_live(&current, &spec) {
        crate::validation::gate(state, &model.name, model.version, "deployment").await?;
    }
    // The alias the deployment follows moves with its primary, by the rules
    // of a direct move, or nothing changes.
    let alias_move = follow::needed(state.store(), &spec).await;
    if let Some(moving) = &alias_move {
        allow_alias_move(state, principal, name, moving).await?;
    }
    let live = prepare(state, name, record.revision + 1, &spec).await?;
    let json = encode_spec(&spec);
    let updated = state
        .store()
        .update_deployment(
            name,
            record.revision,
            &json,
            description,
            action,
            reason,
            actor,
        )
        .await?;
    super::monitoring::references_for_arms(state, &live);
    serving(state)?.activate(live);
    if let Some(moving) = &alias_move {
        follow::apply(state.store(), moving, actor, name).await?;
    }
    Ok((
        Extension(spec_note(name, Some(&record.spec), &json)),
        Json(to_dto(&updated, &spec)),
    ))
}

/// The versions `next` serves live traffic with that `current` does not.
fn newly_live<'a>(current: &DeploymentSpec, next: &'a DeploymentSpec) -> Vec<&'a ModelRef> {
    let live = |arm: &Arm| arm.role == ArmRole::Live && arm.weight > 0;
    let mut models: Vec<&ModelRef> = Vec::new();
    for arm in next.arms.iter().filter(|arm| live(arm)) {
        let served = current.arms.iter().any(|old| {
            live(old) && old.model.name == arm.model.name && old.model.version == arm.model.version
        });
        if !served
            && !models
                .iter()
                .any(|m| m.name == arm.model.name && m.version == arm.model.version)
        {
            models.push(&arm.model);
        }
    }
    models
}

#[utoipa::path(patch, path = "/api/v1/deployments/{name}", tag = "deployments", params(("name" = String, Path)),
    request_body = dto::UpdateDeployment,
    responses((status = 200, body = dto::Deployment), (status = 400, body = sextant_api::v1::Error), (status = 409, body = sextant_api::v1::Error)))]
pub(crate) async fn update(
    State(state): State<AppState>,
    Path(name): Path<String>,
    Extension(principal): Extension<Principal>,
    MlflowRequest(request): MlflowRequest<dto::UpdateDeployment>,
) -> ApiResult<(Extension<AuditNote>, Json<dto::Deployment>)> {
    let model = match &request.model {
        Some(text) => {
            let model = resolve_model(&state, &principal, text).await?;
            crate::validation::gate(&state, &model.name, model.version, "deployment").await?;
            Some(model)
        }
        None => None,
    };
    let blue_green = match request.strategy.as_deref() {
        None | Some("replace") => false,
        Some("blue_green" | "blue-green") => true,
        Some(other) => {
            return Err(ApiError::invalid(format!(
                "Unknown strategy '{other}': use replace or blue_green"
            )))
        }
    };
    let action = if model.is_some() {
        "update"
    } else {
        "settings"
    };
    let reason = model
        .as_ref()
        .map(|m| format!("now serving {m}"))
        .unwrap_or_default();
    let settings = request.settings;
    change(
        &state,
        &name,
        request.expected_revision,
        action,
        &reason,
        &principal,
        request.description.as_deref(),
        |current, _| {
            let mut spec = current.clone();
            apply_settings(&mut spec.settings, settings)?;
            if let Some(model) = model {
                let keep = spec.settings.keep_standby;
                spec.settings.keep_standby = keep || blue_green;
                let mut replaced = spec.replace(model);
                replaced.settings.keep_standby = keep;
                spec = replaced;
            }
            Ok(spec)
        },
    )
    .await
}

#[utoipa::path(post, path = "/api/v1/deployments/{name}/canary", tag = "deployments", params(("name" = String, Path)),
    request_body = dto::StartCanary,
    responses((status = 200, body = dto::Deployment), (status = 409, body = sextant_api::v1::Error)))]
pub(crate) async fn canary(
    State(state): State<AppState>,
    Path(name): Path<String>,
    Extension(principal): Extension<Principal>,
    MlflowRequest(request): MlflowRequest<dto::StartCanary>,
) -> ApiResult<(Extension<AuditNote>, Json<dto::Deployment>)> {
    let model = resolve_model(&state, &principal, &request.model).await?;
    crate::validation::gate(&state, &model.name, model.version, "deployment").await?;
    let steps = match request.steps {
        Some(steps) => steps,
        None => {
            let first = request.weight.unwrap_or(10);
            std::iter::once(first)
                .chain([25, 50, 100].into_iter().filter(|w| *w > first))
                .collect()
        }
    };
    let interval = request.interval_seconds.unwrap_or(300.0);
    let max_error_rate = request.max_error_rate.unwrap_or(0.05);
    if !(interval >= 0.0 && interval.is_finite()) || !(0.0..=1.0).contains(&max_error_rate) {
        return Err(ApiError::invalid(
            "interval_seconds must be >= 0 and max_error_rate between 0 and 1",
        ));
    }
    let policy = CanaryPolicy {
        steps,
        step: 0,
        step_started_ms: sextant_governance::now_ms(),
        interval_ms: (interval * 1000.0) as i64,
        max_error_rate,
        max_p99_ms: request.max_p99_ms,
        min_requests: request.min_requests.unwrap_or(100),
    };
    let reason = format!("canary of {model}");
    change(
        &state,
        &name,
        None,
        "canary",
        &reason,
        &principal,
        None,
        |current, _| {
            current
                .start_canary(model, policy)
                .map_err(|e| conflict(e.0))
        },
    )
    .await
}

#[utoipa::path(post, path = "/api/v1/deployments/{name}/ab", tag = "deployments", params(("name" = String, Path)),
    request_body = dto::StartAbTest,
    responses((status = 200, body = dto::Deployment), (status = 409, body = sextant_api::v1::Error)))]
pub(crate) async fn ab_test(
    State(state): State<AppState>,
    Path(name): Path<String>,
    Extension(principal): Extension<Principal>,
    MlflowRequest(request): MlflowRequest<dto::StartAbTest>,
) -> ApiResult<(Extension<AuditNote>, Json<dto::Deployment>)> {
    let model = resolve_model(&state, &principal, &request.model).await?;
    crate::validation::gate(&state, &model.name, model.version, "deployment").await?;
    let weight = request.weight.unwrap_or(50);
    let policy = AbPolicy {
        sticky_header: request.sticky_header.map(|h| h.to_ascii_lowercase()),
    };
    let reason = format!("A/B test of {model} at {weight}%");
    change(
        &state,
        &name,
        None,
        "ab",
        &reason,
        &principal,
        None,
        |current, _| {
            current
                .start_ab(model, weight, policy)
                .map_err(|e| conflict(e.0))
        },
    )
    .await
}

#[utoipa::path(post, path = "/api/v1/deployments/{name}/shadow", tag = "deployments", params(("name" = String, Path)),
    request_body = dto::StartShadow,
    responses((status = 200, body = dto::Deployment), (status = 409, body = sextant_api::v1::Error)))]
pub(crate) async fn shadow(
    State(state): State<AppState>,
    Path(name): Path<String>,
    Extension(principal): Extension<Principal>,
    MlflowRequest(request): MlflowRequest<dto::StartShadow>,
) -> ApiResult<(Extension<AuditNote>, Json<dto::Deployment>)> {
    // A shadow answers no caller: a candidate may run there before it
    // passes its validation.
    let model = resolve_model(&state, &principal, &request.model).await?;
    let percent = request.percent.unwrap_or(100);
    let reason = format!("shadow of {model} on {percent}% of requests");
    change(
        &state,
        &name,
        None,
        "shadow",
        &reason,
        &principal,
        None,
        |current, _| {
            current
                .start_shadow(model, percent)
                .map_err(|e| conflict(e.0))
        },
    )
    .await
}

#[utoipa::path(post, path = "/api/v1/deployments/{name}/promote", tag = "deployments", params(("name" = String, Path)),
    request_body = dto::Promote,
    responses((status = 200, body = dto::Deployment), (status = 409, body = sextant_api::v1::Error)))]
pub(crate) async fn promote(
    State(state): State<AppState>,
    Path(name): Path<String>,
    Extension(principal): Extension<Principal>,
    MlflowRequest(request): MlflowRequest<dto::Promote>,
) -> ApiResult<(Extension<AuditNote>, Json<dto::Deployment>)> {
    let arm = request.arm;
    let reason = arm.as_ref().map_or_else(
        || "candidate promoted".to_string(),
        |a| format!("arm '{a}' promoted"),
    );
    change(
        &state,
        &name,
        None,
        "promote",
        &reason,
        &principal,
        None,
        |current, _| current.promote(arm.as_deref()).map_err(|e| conflict(e.0)),
    )
    .await
}

#[utoipa::path(post, path = "/api/v1/deployments/{name}/rollback", tag = "deployments", params(("name" = String, Path)),
    request_body = dto::Rollback,
    responses((status = 200, body = dto::Deployment), (status = 409, body = sextant_api::v1::Error)))]
pub(crate) async fn rollback(
    State(state): State<AppState>,
    Path(name): Path<String>,
    Extension(principal): Extension<Principal>,
    MlflowRequest(request): MlflowRequest<dto::Rollback>,
) -> ApiResult<(Extension<AuditNote>, Json<dto::Deployment>)> {
    let reason = request.reason.unwrap_or_else(|| "rolled back".into());
    change(
        &state,
        &name,
        None,
        "rollback",
        &reason,
        &principal,
        None,
        |current, history| {
            // The newest entry is the current revision itself.
            current
                .rollback(history.get(1..).unwrap_or(&[]))
                .map_err(|e| conflict(e.0))
        },
    )
    .await
}

#[utoipa::path(delete, path = "/api/v1/deployments/{name}", tag = "deployments", params(("name" = String, Path)),
    responses((status = 200), (status = 404, body = sextant_api::v1::Error)))]
pub(crate) async fn delete(
    State(state): State<AppState>,
    Path(name): Path<String>,
) -> ApiResult<(Extension<AuditNote>, Json<serde_json::Value>)> {
    let record = state.store().get_deployment(&name).await?;
    state.store().delete_deployment(&name).await?;
    state.governance().grants_changed();
    if let Some(serving) = state.serving() {
        serving.remove(&name);
    }
    let note = AuditNote {
        resource: Some(("deployment".into(), name)),
        before: serde_json::from_str(&record.spec).ok(),
        ..AuditNote::default()
    };
    Ok((Extension(note), Json(serde_json::json!({}))))
}

#[utoipa::path(get, path = "/api/v1/deployments/{name}/history", tag = "deployments", params(("name" = String, Path)),
    responses((status = 200, body = dto::DeploymentHistory), (status = 404, body = sextant_api::v1::Error)))]
pub(crate) async fn history(
    State(state): State<AppState>,
    Path(name): Path<String>,
) -> ApiResult<Json<dto::DeploymentHistory>> {
    let revisions = state.store().deployment_history(&name, 1000).await?;
    let revisions = revisions
        .into_iter()
        .map(|r| {
            let spec = decode_spec(&r.spec).map_err(ApiError::Internal)?;
            Ok(dto::DeploymentRevision {
                revision: r.revision,
                action: r.action,
                reason: r.reason,
                actor: r.actor,
                time: r.time,
                spec: dto::DeploymentSpec::from(&spec),
            })
        })
        .collect::<ApiResult<_>>()?;
    Ok(Json(dto::DeploymentHistory { revisions }))
}

/// Follows a request that names a progress id (`X-Sextant-Progress`): the
/// loads it starts report their stages to the board under that id, which
/// [`progress`] reads while the caller waits.
pub(crate) async fn follow_progress(
    State(state): State<AppState>,
    request: axum::extract::Request,
    next: axum::middleware::Next,
) -> Response {
    use crate::serving::progress;
    // Only changes of deployments load models; other requests cannot
    // fill the board.
    let changes_deployments = request.method() != axum::http::Method::GET
        && request.uri().path().starts_with("/api/v1/deployments");
    let id = changes_deployments
        .then(|| request.headers().get(progress::PROGRESS_HEADER))
        .flatten()
        .and_then(|v| v.to_str().ok())
        .filter(|id| progress::valid_id(id))
        .map(str::to_owned);
    let (Some(id), Some(serving)) = (id, state.serving()) else {
        return next.run(request).await;
    };
    let board = serving.progress().clone();
    let sink = board.start(&id);
    let response = progress::scope(sink, next.run(request)).await;
    board.finish(&id);
    response
}

#[utoipa::path(get, path = "/api/v1/progress/{id}", tag = "deployments", params(("id" = String, Path,
        description = "The id the request sent in its X-Sextant-Progress header")),
    responses((status = 200, body = dto::ProgressReport), (status = 404, body = sextant_api::v1::Error)))]
pub(crate) async fn progress(
    State(state): State<AppState>,
    Path(id): Path<String>,
) -> ApiResult<Json<dto::ProgressReport>> {
    serving(&state)?
        .progress()
        .read(&id)
        .map(Json)
        .ok_or_else(|| {
            ApiError::User(
                ErrorCode::ResourceDoesNotExist,
                "No request with this progress id (yet)".into(),
            )
        })
}

#[utoipa::path(get, path = "/api/v1/deployments/{name}/status", tag = "deployments", params(("name" = String, Path)),
    responses((status = 200, body = dto::DeploymentStatus), (status = 404, body = sextant_api::v1::Error)))]
pub(crate) async fn status(
    State(state): State<AppState>,
    Path(name): Path<String>,
) -> ApiResult<Json<dto::DeploymentStatus>> {
    let record = state.store().get_deployment(&name).await?;
    let spec = stored_spec(&record)?;
    let serving = serving(&state)?;
    let slot = serving.deployment(&name);
    let live = slot.as_ref().map(|s| s.live());
    let (counters, replicas) = crate::serving::controller::cluster_counters(
        state.store(),
        serving,
        &name,
        record.revision,
    )
    .await;
    let message = slot.as_ref().and_then(|s| s.latest().1);
    let arms = spec
        .arms
        .iter()
        .map(|arm| {
            let loaded = live.as_ref().and_then(|l| {
                l.arms
                    .iter()
                    .find(|a| a.name == arm.name && a.model_ref().version == arm.model.version)
            });
            let counters = counters.get(&arm.name).cloned().unwrap_or_default();
            let state = match (loaded, &message) {
                (Some(_), _) => "ready",
                (None, Some(_)) => "failed",
                (None, None) => "loading",
            };
            dto::ArmStatus {
                name: arm.name.clone(),
                model: dto::DeploymentSpec::from(&DeploymentSpec {
                    arms: vec![arm.clone()],
                    ..spec.clone()
                })
                .arms
                .remove(0)
                .model,
                role: arm.role.as_str().to_string(),
                weight: arm.weight,
                state: state.into(),
                engine: loaded.map(|a| a.model.model.info().engine.to_string()),
                native_declined: loaded.map(|a| a.model.declined.clone()).unwrap_or_default(),
                load_seconds: loaded.map(|a| (a.model.load_seconds * 10.0).round() / 10.0),
                error: if state == "failed" {
                    message.clone()
                } else {
                    None
                },
                p50_ms: crate::serving::quantile_ms(&counters, 0.5),
                p99_ms: crate::serving::quantile_ms(&counters, 0.99),
                counters,
            }
        })
        .collect();
    Ok(Json(dto::DeploymentStatus {
        name: name.clone(),
        revision: record.revision,
        serving_revision: live.as_ref().map(|l| l.revision),
        ready: live.as_ref().is_some_and(|l| l.revision == record.revision),
        policy: dto::DeploymentSpec::from(&spec).policy,
        arms,
        message,
        replicas,
    }))
}

/// A replica's counters of the revision it serves.
#[utoipa::path(post, path = "/api/v1/deployments/{name}/report", tag = "deployments", params(("name" = String, Path)),
    request_body = dto::ReplicaReport, responses((status = 200)))]
pub(crate) async fn report(
    State(state): State<AppState>,
    Path(name): Path<String>,
    MlflowRequest(report): MlflowRequest<dto::ReplicaReport>,
) -> ApiResult<Json<serde_json::Value>> {
    state.store().get_deployment(&name).await?;
    if report.replica.is_empty() || report.replica.len() > 200 {
        return Err(ApiError::invalid(
            "a report names its replica (1 to 200 characters)",
        ));
    }
    // Stored too, so that whichever server leads judges canaries on it.
    let arms = serde_json::to_string(&report.arms)
        .map_err(|err| ApiError::invalid(format!("cannot encode the report: {err}")))?;
    state
        .store()
        .put_arm_report(&name, &report.replica, report.revision, &arms)
        .await?;
    serving(&state)?.record_report(&name, report);
    Ok(Json(serde_json::json!({})))
}

/// A prediction log segment a replica wrote, stored under
/// `predictions/<deployment>/` in the artifact store.
pub(crate) async fn upload_log(
    State(state): State<AppState>,
    Path((name, file)): Path<(String, String)>,
    body: Body,
) -> ApiResult<Json<serde_json::Value>> {
    state.store().get_deployment(&name).await?;
    if !file.ends_with(".parquet") {
        return Err(ApiError::invalid(
            "prediction log segments are .parquet files",
        ));
    }
    let path = ArtifactPath::parse(&format!("predictions/{name}/{file}"))?;
    state
        .artifacts()
        .put(&path, body.into_data_stream())
        .await?;
    Ok(Json(serde_json::json!({})))
}

#[derive(serde::Deserialize, utoipa::IntoParams)]
#[into_params(parameter_in = Query)]
pub(crate) struct ArchiveQuery {
    #[param(min_length = 1)]
    name: String,
    #[param(pattern = r"^[0-9]{1,18}$")]
    version: String,
}

/// Every file of a model version as one tar stream, for replicas and
/// image builds.
#[utoipa::path(get, path = "/api/v1/model-versions/archive", tag = "deployments", params(ArchiveQuery),
    responses((status = 200, content_type = "application/x-tar"), (status = 404, body = sextant_api::v1::Error)))]
pub(crate) async fn model_archive(
    State(state): State<AppState>,
    Query(query): Query<ArchiveQuery>,
) -> ApiResult<Response> {
    let version = state
        .store()
        .get_model_version(&query.name, &query.version)
        .await?;
    let root =
        crate::serving::artifact_root(&version.storage_location).map_err(ApiError::invalid)?;
    let files = crate::serving::list_tree(state.artifacts(), &root)
        .await
        .map_err(ApiError::Internal)?;
    if files.is_empty() {
        return Err(ApiError::not_found(format!(
            "Model version {}/{} has no files",
            query.name, query.version
        )));
    }
    let artifacts = state.artifacts().clone();
    let stream = futures::stream::iter(files)
        .then(move |relative| {
            let artifacts = artifacts.clone();
            let root = root.clone();
            async move { tar_entry(&artifacts, &root, relative).await }
        })
        .flat_map(futures::stream::iter)
        .chain(futures::stream::once(async {
            Ok(bytes::Bytes::from(vec![0u8; 1024]))
        }));
    let mut response = Body::from_stream(stream).into_response();
    response.headers_mut().insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("application/x-tar"),
    );
    Ok(response)
}

/// One file as tar blocks: its header, its content, padding to 512 bytes.
async fn tar_entry(
    artifacts: &sextant_artifacts::ArtifactStore,
    root: &ArtifactPath,
    relative: String,
) -> Vec<Result<bytes::Bytes, std::io::Error>> {
    let io = |e: String| std::io::Error::other(e);
    let joined = format!("{}/{relative}", root.as_str().trim_end_matches('/'));
    let content = match ArtifactPath::parse(joined.trim_start_matches('/')) {
        Ok(path) => artifacts.get_bytes(&path, u64::MAX).await,
        Err(e) => Err(e),
    };
    let mut content = match content {
        Ok(content) => content,
        Err(e) => return vec![Err(io(e.to_string()))],
    };
    let mut header = tar::Header::new_gnu();
    if let Err(e) = header.set_path(&relative) {
        return vec![Err(e)];
    }
    header.set_size(content.len() as u64);
    header.set_mode(0o644);
    header.set_mtime(0);
    header.set_cksum();
    let padding = (512 - content.len() % 512) % 512;
    content.extend(std::iter::repeat_n(0u8, padding));
    vec![
        Ok(bytes::Bytes::copy_from_slice(header.as_bytes())),
        Ok(bytes::Bytes::from(content)),
    ]
}
