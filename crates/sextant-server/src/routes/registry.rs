//! The model registry: registered models, versions, stages, aliases.

use axum::extract::State;
use axum::{Extension, Json};
use serde_json::json;
use sextant_api::mlflow as dto;
use sextant_api::ErrorCode;
use sextant_core::{KeyValue, Permission, ResourceKind, Stage, TransitionTarget};
use sextant_governance::Principal;
use sextant_store::NewModelVersion;

use crate::error::{ApiError, ApiResult};
use crate::extract::MlflowRequest;
use crate::guard::AuditNote;
use crate::routes::{empty, required};
use crate::AppState;

type Request = MlflowRequest<dto::RegistryRequest>;
type JsonValue = Json<serde_json::Value>;

/// `version` arrives as a string (proto) or, from some clients, a number.
fn version(request: &dto::RegistryRequest) -> ApiResult<String> {
    match &request.version {
        Some(serde_json::Value::String(text)) if !text.is_empty() => Ok(text.clone()),
        Some(serde_json::Value::Number(number)) => Ok(number.to_string()),
        _ => Err(ApiError::missing("version")),
    }
}

fn tags(request: &mut dto::RegistryRequest) -> ApiResult<Vec<KeyValue>> {
    std::mem::take(&mut request.tags)
        .into_iter()
        .map(|kv| {
            Ok(KeyValue {
                key: required(kv.key, "tags.key")?,
                value: kv.value.unwrap_or_default(),
            })
        })
        .collect()
}

fn registered_model(model: &sextant_core::RegisteredModel) -> Json<dto::RegisteredModelResponse> {
    Json(dto::RegisteredModelResponse {
        registered_model: model.into(),
    })
}

fn model_version(version: &sextant_core::ModelVersion) -> Json<dto::ModelVersionResponse> {
    Json(dto::ModelVersionResponse {
        model_version: version.into(),
    })
}

pub(crate) async fn create_registered_model(
    State(state): State<AppState>,
    MlflowRequest(mut request): Request,
) -> ApiResult<(Extension<AuditNote>, Json<dto::RegisteredModelResponse>)> {
    let name = required(request.name.take(), "name")?;
    let tags = tags(&mut request)?;
    let model = state
        .store()
        .create_registered_model(&name, &tags, request.description.as_deref())
        .await?;
    let note = AuditNote {
        created: Some((ResourceKind::RegisteredModel, model.name.clone())),
        ..AuditNote::default()
    };
    Ok((Extension(note), registered_model(&model)))
}

pub(crate) async fn get_registered_model(
    State(state): State<AppState>,
    MlflowRequest(request): Request,
) -> ApiResult<Json<dto::RegisteredModelResponse>> {
    let model = state
        .store()
        .get_registered_model(&required(request.name, "name")?)
        .await?;
    Ok(registered_model(&model))
}

pub(crate) async fn rename_registered_model(
    State(state): State<AppState>,
    MlflowRequest(request): Request,
) -> ApiResult<(Extension<AuditNote>, Json<dto::RegisteredModelResponse>)> {
    let name = required(request.name, "name")?;
    let new_name = required(request.new_name, "new_name")?;
    let model = state
        .store()
        .rename_registered_model(&name, &new_name)
        .await?;
    // Its grants moved with it.
    state.governance().grants_changed();
    let note = AuditNote {
        resource: Some(("registered_model".into(), name.clone())),
        before: Some(json!({ "name": name })),
        after: Some(json!({ "name": new_name })),
        ..AuditNote::default()
    };
    Ok((Extension(note), registered_model(&model)))
}

pub(crate) async fn update_registered_model(
    State(state): State<AppState>,
    MlflowRequest(request): Request,
) -> ApiResult<Json<dto::RegisteredModelResponse>> {
    let name = required(request.name, "name")?;
    let model = state
        .store()
        .update_registered_model(&name, request.description.as_deref())
        .await?;
    Ok(registered_model(&model))
}

pub(crate) async fn delete_registered_model(
    State(state): State<AppState>,
    MlflowRequest(request): Request,
) -> ApiResult<JsonValue> {
    state
        .store()
        .delete_registered_model(&required(request.name, "name")?)
        .await?;
    state.governance().grants_changed();
    Ok(empty())
}

pub(crate) async fn search_registered_models(
    State(state): State<AppState>,
    Extension(principal): Extension<Principal>,
    MlflowRequest(request): Request,
) -> ApiResult<Json<dto::SearchRegisteredModelsResponse>> {
    let visible = principal.visible(ResourceKind::RegisteredModel);
    let page = state
        .store()
        .search_registered_models(
            request.filter.as_deref().filter(|f| !f.trim().is_empty()),
            request.max_results.unwrap_or(100),
            &request.order_by,
            request.page_token.as_deref(),
            &visible,
        )
        .await?;
    Ok(Json(dto::SearchRegisteredModelsResponse {
        registered_models: page.items.iter().map(Into::into).collect(),
        next_page_token: page.next_page_token,
    }))
}

pub(crate) async fn get_latest_versions(
    State(state): State<AppState>,
    MlflowRequest(request): Request,
) -> ApiResult<Json<dto::ModelVersionsResponse>> {
    let name = required(request.name, "name")?;
    let versions = state
        .store()
        .get_latest_versions(&name, &request.stages)
        .await?;
    Ok(Json(dto::ModelVersionsResponse {
        model_versions: versions.iter().map(Into::into).collect(),
        next_page_token: None,
    }))
}

pub(crate) async fn set_registered_model_tag(
    State(state): State<AppState>,
    MlflowRequest(request): Request,
) -> ApiResult<JsonValue> {
    let name = required(request.name, "name")?;
    let key = required(request.key, "key")?;
    let value = request.value.ok_or_else(|| ApiError::missing("value"))?;
    state
        .store()
        .set_registered_model_tag(&name, &KeyValue { key, value })
        .await?;
    Ok(empty())
}

pub(crate) async fn delete_registered_model_tag(
    State(state): State<AppState>,
    MlflowRequest(request): Request,
) -> ApiResult<JsonValue> {
    let name = required(request.name, "name")?;
    state
        .store()
        .delete_registered_model_tag(&name, &required(request.key, "key")?)
        .await?;
    Ok(empty())
}

/// With authentication on, moving a model version to a protected stage or
/// alias (see the model's policy) takes an approved transition request;
/// the direct MLflow call is refused with a message naming the workflow.
async fn refuse_if_protected(
    state: &AppState,
    name: &str,
    version: &str,
    target: &TransitionTarget,
) -> ApiResult<()> {
    if !state.governance().auth_enabled() {
        return Ok(());
    }
    let policy = state.store().model_policy(name).await?;
    if !policy.protects(target) {
        return Ok(());
    }
    let flag = match target {
        TransitionTarget::Stage(stage) => format!("--stage {stage}"),
        TransitionTarget::Alias(alias) => format!("--alias {alias}"),
    };
    Err(ApiError::User(
        ErrorCode::PermissionDenied,
        format!(
            "{target} of registered model '{name}' is protected: moving a version there needs an approved \
             transition request. Ask for one with POST /api/v1/transition-requests or \
             `sextant transitions request --model {name} --version {version} {flag}`, and have an approver \
             approve it."
        ),
    ))
}

pub(crate) async fn set_alias(
    State(state): State<AppState>,
    MlflowRequest(request): Request,
) -> ApiResult<(Extension<AuditNote>, JsonValue)> {
    let version = version(&request)?;
    let name = required(request.name, "name")?;
    let alias = required(request.alias, "alias")?;
    refuse_if_protected(
        &state,
        &name,
        &version,
        &TransitionTarget::Alias(alias.clone()),
    )
    .await?;
    let before = alias_version(&state, &name, &alias).await;
    state
        .store()
        .set_registered_model_alias(&name, &alias, &version)
        .await?;
    let note = AuditNote {
        resource: Some(("registered_model".into(), name)),
        before: Some(json!({ "alias": alias, "version": before })),
        after: Some(json!({ "alias": alias, "version": version })),
        ..AuditNote::default()
    };
    Ok((Extension(note), empty()))
}

async fn alias_version(state: &AppState, name: &str, alias: &str) -> Option<String> {
    state
        .store()
        .get_model_version_by_alias(name, alias)
        .await
        .ok()
        .map(|v| v.version.to_string())
}

pub(crate) async fn delete_alias(
    State(state): State<AppState>,
    MlflowRequest(request): Request,
) -> ApiResult<(Extension<AuditNote>, JsonValue)> {
    let name = required(request.name, "name")?;
    let alias = required(request.alias, "alias")?;
    let before = alias_version(&state, &name, &alias).await;
    // Removing a protected alias is a demotion: it needs a request too.
    refuse_if_protected(
        &state,
        &name,
        before.as_deref().unwrap_or("?"),
        &TransitionTarget::Alias(alias.clone()),
    )
    .await?;
    state
        .store()
        .delete_registered_model_alias(&name, &alias)
        .await?;
    let note = AuditNote {
        resource: Some(("registered_model".into(), name)),
        before: Some(json!({ "alias": alias, "version": before })),
        after: Some(json!({ "alias": alias, "version": null })),
        ..AuditNote::default()
    };
    Ok((Extension(note), empty()))
}

pub(crate) async fn get_version_by_alias(
    State(state): State<AppState>,
    MlflowRequest(request): Request,
) -> ApiResult<Json<dto::ModelVersionResponse>> {
    let name = required(request.name, "name")?;
    let version = state
        .store()
        .get_model_version_by_alias(&name, &required(request.alias, "alias")?)
        .await?;
    Ok(model_version(&version))
}

/// The experiments whose files a new version would expose to the model's
/// readers: its run, its logged model, and what its source points at.
async fn experiments_behind(state: &AppState, new: &NewModelVersion) -> ApiResult<Vec<String>> {
    let governance = state.governance();
    let mut runs: Vec<String> = new.run_id.iter().cloned().collect();
    let mut logged_models: Vec<String> = new.model_id.iter().cloned().collect();
    let mut experiments = Vec::new();
    if let Some(path) = new.source.strip_prefix("mlflow-artifacts:") {
        if let Some(id) = path.trim_start_matches('/').split('/').next() {
            experiments.push(id.to_string());
        }
    } else if let Some(path) = new.source.strip_prefix("runs:/") {
        runs.extend(path.split('/').next().map(str::to_string));
    } else if let Some(path) = new.source.strip_prefix("models:/") {
        if let Some(id) = path.split('/').next().filter(|id| id.starts_with("m-")) {
            logged_models.push(id.to_string());
        }
    }
    for run in runs.iter().filter(|r| !r.is_empty()) {
        if let Some(id) = governance.experiment_of_run(run).await? {
            experiments.push(id.to_string());
        }
    }
    for model in &logged_models {
        if let Some(id) = governance.experiment_of_logged_model(model).await? {
            experiments.push(id.to_string());
        }
    }
    Ok(experiments)
}

pub(crate) async fn create_model_version(
    State(state): State<AppState>,
    Extension(principal): Extension<Principal>,
    MlflowRequest(mut request): Request,
) -> ApiResult<Json<dto::ModelVersionResponse>> {
    let tags = tags(&mut request)?;
    let new = NewModelVersion {
        name: required(request.name, "name")?,
        source: required(request.source, "source")?,
        run_id: request.run_id,
        run_link: request.run_link,
        description: request.description,
        model_id: request.model_id,
        user_id: None,
        tags,
    };
    // Readers of the model will read the version's files: registering
    // files one cannot read would hand them out.
    for experiment in experiments_behind(&state, &new).await? {
        if !principal.may(ResourceKind::Experiment, &experiment, Permission::Read) {
            return Err(ApiError::User(
                ErrorCode::PermissionDenied,
                format!(
                    "Permission denied: user '{}' lacks read permission on experiment {experiment}, where this version's files are",
                    principal.name()
                ),
            ));
        }
    }
    let version = state.store().create_model_version(&new).await?;
    Ok(model_version(&version))
}

pub(crate) async fn get_model_version(
    State(state): State<AppState>,
    MlflowRequest(request): Request,
) -> ApiResult<Json<dto::ModelVersionResponse>> {
    let version = version(&request)?;
    let found = state
        .store()
        .get_model_version(&required(request.name, "name")?, &version)
        .await?;
    Ok(model_version(&found))
}

pub(crate) async fn update_model_version(
    State(state): State<AppState>,
    MlflowRequest(request): Request,
) -> ApiResult<Json<dto::ModelVersionResponse>> {
    let version = version(&request)?;
    let name = required(request.name, "name")?;
    let updated = state
        .store()
        .update_model_version(&name, &version, request.description.as_deref())
        .await?;
    Ok(model_version(&updated))
}

pub(crate) async fn delete_model_version(
    State(state): State<AppState>,
    MlflowRequest(request): Request,
) -> ApiResult<JsonValue> {
    let version = version(&request)?;
    state
        .store()
        .delete_model_version(&required(request.name, "name")?, &version)
        .await?;
    Ok(empty())
}

pub(crate) async fn transition_stage(
    State(state): State<AppState>,
    MlflowRequest(request): Request,
) -> ApiResult<(Extension<AuditNote>, Json<dto::ModelVersionResponse>)> {
    let version = version(&request)?;
    let name = required(request.name, "name")?;
    let stage = required(request.stage, "stage")?;
    let archive = request.archive_existing_versions.unwrap_or(false);
    if let Some(parsed) = Stage::parse_loose(&stage) {
        refuse_if_protected(&state, &name, &version, &TransitionTarget::Stage(parsed)).await?;
    }
    let before = state.store().get_model_version(&name, &version).await?;
    let updated = state
        .store()
        .transition_model_version_stage(&name, &version, &stage, archive)
        .await?;
    let note = AuditNote {
        resource: Some(("registered_model".into(), name)),
        before: Some(json!({ "version": version, "stage": before.current_stage.as_str() })),
        after: Some(
            json!({ "version": version, "stage": updated.current_stage.as_str(), "archive_existing_versions": archive }),
        ),
        ..AuditNote::default()
    };
    Ok((Extension(note), model_version(&updated)))
}

pub(crate) async fn search_model_versions(
    State(state): State<AppState>,
    Extension(principal): Extension<Principal>,
    MlflowRequest(request): Request,
) -> ApiResult<Json<dto::ModelVersionsResponse>> {
    let visible = principal.visible(ResourceKind::RegisteredModel);
    let page = state
        .store()
        .search_model_versions(
            request.filter.as_deref().filter(|f| !f.trim().is_empty()),
            request.max_results.unwrap_or(10_000),
            &request.order_by,
            request.page_token.as_deref(),
            &visible,
        )
        .await?;
    Ok(Json(dto::ModelVersionsResponse {
        model_versions: page.items.iter().map(Into::into).collect(),
        next_page_token: page.next_page_token,
    }))
}

pub(crate) async fn get_download_uri(
    State(state): State<AppState>,
    MlflowRequest(request): Request,
) -> ApiResult<Json<dto::DownloadUriResponse>> {
    let version = version(&request)?;
    let artifact_uri = state
        .store()
        .get_model_version_download_uri(&required(request.name, "name")?, &version)
        .await?;
    Ok(Json(dto::DownloadUriResponse { artifact_uri }))
}

pub(crate) async fn set_model_version_tag(
    State(state): State<AppState>,
    MlflowRequest(request): Request,
) -> ApiResult<JsonValue> {
    let version = version(&request)?;
    let name = required(request.name, "name")?;
    let key = required(request.key, "key")?;
    let value = request.value.ok_or_else(|| ApiError::missing("value"))?;
    state
        .store()
        .set_model_version_tag(&name, &version, &KeyValue { key, value })
        .await?;
    Ok(empty())
}

pub(crate) async fn delete_model_version_tag(
    State(state): State<AppState>,
    MlflowRequest(request): Request,
) -> ApiResult<JsonValue> {
    let version = version(&request)?;
    let name = required(request.name, "name")?;
    state
        .store()
        .delete_model_version_tag(&name, &version, &required(request.key, "key")?)
        .await?;
    Ok(empty())
}
