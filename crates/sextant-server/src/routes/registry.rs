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

/// The quality gate (`crate::validation::gate`) for a version given as
/// the MLflow API spells it.
async fn validation_gate(
    state: &AppState,
    name: &str,
    version: &str,
    target: &str,
) -> ApiResult<()> {
    let Ok(number) = version.parse::<i64>() else {
        return Ok(()); // the store refuses the version itself
    };
    crate::validation::gate(state, name, number, target).await
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
    validation_gate(&state, &name, &version, &format!("@{alias}")).await?;
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

/// What a new version's source exposes to the model's readers: the
/// experiments whose files it reaches and the registered models it copies.
#[derive(Default)]
struct Behind {
    experiments: Vec<String>,
    models: Vec<String>,
}

fn invalid_source(source: &str, why: &str) -> ApiError {
    ApiError::invalid(format!("Invalid model version source: '{source}'. {why}"))
}

/// Checks a new version's source as MLflow's server does and finds what it
/// exposes. Every source form is read once, here: a local path or `file:`
/// URI must lie inside the artifact directory of the named run or logged
/// model; an `mlflow-artifacts` source (or an http URL of the artifact
/// proxy) likewise, read by the same parser serving uses; `runs:/` and
/// `models:/m-…` must name the run or logged model given beside them; no
/// source may hold `.` or `..` segments or a NUL.
async fn check_source(state: &AppState, new: &NewModelVersion) -> ApiResult<Behind> {
    let source = new.source.as_str();
    let run_id = new.run_id.as_deref().filter(|id| !id.is_empty());
    let model_id = new.model_id.as_deref().filter(|id| !id.is_empty());
    let mut behind = Behind::default();
    // The artifact root of the named run or logged model, and its experiment.
    let root = match (model_id, run_id) {
        (Some(model_id), _) => {
            let model = state.store().get_logged_model(model_id).await.map_err(|_| {
                invalid_source(source, "The model_id request parameter must identify the resource that contains the source.")
            })?;
            behind.experiments.push(model.experiment_id.clone());
            if let Some(run) = model.source_run_id.filter(|r| Some(r.as_str()) != run_id) {
                behind.experiments.extend(experiment_of(state, &run).await?);
            }
            Some(model.artifact_uri)
        }
        (None, Some(run_id)) => {
            let run = state.store().get_run(run_id).await.map_err(|_| {
                invalid_source(source, "The run_id request parameter must identify the resource that contains the source.")
            })?;
            behind.experiments.push(run.info.experiment_id.clone());
            Some(run.info.artifact_uri)
        }
        (None, None) => None,
    };
    if let (Some(run_id), Some(_)) = (run_id, model_id) {
        behind
            .experiments
            .extend(experiment_of(state, run_id).await?);
    }
    let id_name = if model_id.is_some() {
        "model_id"
    } else {
        "run_id"
    };
    let not_inside = || {
        invalid_source(
            source,
            &format!("The {id_name} request parameter must identify the resource that contains the source."),
        )
    };
    match SourceUri::parse(source) {
        SourceUri::Local(path) => {
            let local_root = root
                .as_deref()
                .and_then(|root| match SourceUri::parse(root) {
                    SourceUri::Local(root) => Some(root),
                    _ => None,
                });
            let inside = local_root.is_some_and(|root| lexical_within(&path, &root));
            if !inside {
                return Err(invalid_source(
                    source,
                    &format!("To use a local path as a model version source, the {id_name} request parameter has to be specified and the local path has to be contained within the artifact directory of the {} specified by the {id_name}.", if model_id.is_some() { "logged model" } else { "run" }),
                ));
            }
        }
        other => {
            refuse_relative_segments(source)?;
            match other {
                SourceUri::Local(_) => unreachable!("handled above"),
                SourceUri::Proxied(path) => {
                    let path = path.map_err(ApiError::from)?;
                    let root = root
                        .as_deref()
                        .and_then(sextant_artifacts::proxied_path)
                        .and_then(Result::ok)
                        .ok_or_else(not_inside)?;
                    if root.is_root() || !path.is_within(&root) {
                        return Err(not_inside());
                    }
                }
                SourceUri::Runs { authority, run } => {
                    if !authority.is_empty() || run_id != Some(run.as_str()) {
                        return Err(invalid_source(source, "The run_id request parameter must identify the resource that contains the source."));
                    }
                }
                SourceUri::LoggedModel { authority, model } => {
                    if !authority.is_empty() || model_id != Some(model.as_str()) {
                        return Err(invalid_source(source, "The model_id request parameter must identify the resource that contains the source."));
                    }
                }
                SourceUri::Registered { authority, name } => {
                    if !authority.is_empty() {
                        return Err(invalid_source(
                            source,
                            "Registered model sources must use the active model registry.",
                        ));
                    }
                    state.store().get_registered_model(&name).await?;
                    behind.models.push(name);
                }
                // Storage this server does not read (s3://, gs://, …): kept
                // as a reference, never served from here.
                SourceUri::Elsewhere => {}
            }
        }
    }
    Ok(behind)
}

async fn experiment_of(state: &AppState, run_id: &str) -> ApiResult<Option<String>> {
    Ok(state
        .governance()
        .experiment_of_run(run_id)
        .await?
        .map(|id| id.to_string()))
}

/// The forms a model version's source takes.
enum SourceUri {
    /// A path on the server's disk: no scheme, or `file:`.
    Local(String),
    /// The artifact proxy: `mlflow-artifacts:` or an http(s) URL of its route.
    Proxied(sextant_artifacts::Result<sextant_artifacts::ArtifactPath>),
    Runs {
        authority: String,
        run: String,
    },
    LoggedModel {
        authority: String,
        model: String,
    },
    Registered {
        authority: String,
        name: String,
    },
    Elsewhere,
}

impl SourceUri {
    fn parse(source: &str) -> SourceUri {
        let scheme = source
            .split_once(':')
            .map(|(scheme, _)| scheme)
            .filter(|scheme| {
                // One letter is a Windows drive, not a scheme.
                scheme.len() > 1
                    && scheme.starts_with(|c: char| c.is_ascii_alphabetic())
                    && scheme
                        .chars()
                        .all(|c| c.is_ascii_alphanumeric() || "+.-".contains(c))
            })
            .map(str::to_ascii_lowercase);
        let after_scheme = |scheme: &str| &source[scheme.len() + 1..];
        // `//authority/path` or `/path`.
        let split = |rest: &str| -> (String, String) {
            match rest.strip_prefix("//") {
                Some(after) => match after.split_once('/') {
                    Some((authority, path)) => (authority.to_string(), path.to_string()),
                    None => (after.to_string(), String::new()),
                },
                None => (String::new(), rest.trim_start_matches('/').to_string()),
            }
        };
        match scheme.as_deref() {
            None => SourceUri::Local(source.to_string()),
            Some("file") => {
                let (authority, path) = split(after_scheme("file"));
                if authority.is_empty() || authority == "localhost" {
                    SourceUri::Local(format!("/{path}"))
                } else {
                    // A file on another host: no local path it could be inside.
                    SourceUri::Local(String::new())
                }
            }
            Some("mlflow-artifacts") => SourceUri::Proxied(
                sextant_artifacts::proxied_path(source).expect("the scheme was checked"),
            ),
            Some("http" | "https") => {
                let (_, path) = split(after_scheme(scheme.as_deref().unwrap_or_default()));
                match path.split_once("mlflow-artifacts/artifacts/") {
                    Some((_, artifact)) => {
                        SourceUri::Proxied(sextant_artifacts::ArtifactPath::parse(artifact))
                    }
                    None => SourceUri::Elsewhere,
                }
            }
            Some("runs") => {
                let (authority, path) = split(after_scheme("runs"));
                let run = path.split('/').next().unwrap_or_default().to_string();
                SourceUri::Runs { authority, run }
            }
            Some("models") => {
                let (authority, path) = split(after_scheme("models"));
                let first = path.split('/').next().unwrap_or_default();
                if first.starts_with("m-") {
                    SourceUri::LoggedModel {
                        authority,
                        model: first.trim_end_matches('/').to_string(),
                    }
                } else {
                    // `models:/name/version` or `models:/name@alias`.
                    let name = first.split('@').next().unwrap_or_default().to_string();
                    SourceUri::Registered { authority, name }
                }
            }
            Some(_) => SourceUri::Elsewhere,
        }
    }
}

/// MLflow refuses sources whose path, decoded until it stops changing,
/// holds a NUL or a `.` or `..` segment: a way out of the place it names.
fn refuse_relative_segments(source: &str) -> ApiResult<()> {
    let mut decoded = source.to_string();
    for _ in 0..8 {
        let next =
            url::form_urlencoded::parse(format!("x={}", decoded.replace('&', "%26")).as_bytes())
                .next()
                .map(|(_, v)| v.into_owned())
                .unwrap_or_default();
        if next == decoded {
            break;
        }
        decoded = next;
    }
    let path = decoded
        .split_once("://")
        .map_or(decoded.as_str(), |(_, rest)| rest);
    if decoded.contains('\0')
        || path
            .split('/')
            .any(|segment| segment == ".." || segment == ".")
    {
        return Err(invalid_source(
            source,
            "If supplying a source as an http, https, local file path, ftp, objectstore, or mlflow-artifacts uri, an absolute path must be provided without relative path references present. Please provide an absolute path.",
        ));
    }
    Ok(())
}

/// Whether the local `path` lies inside `root`, compared after resolving
/// `.` and `..` segments lexically (the server never follows the path).
fn lexical_within(path: &str, root: &str) -> bool {
    fn normalise(path: &str) -> Option<Vec<&str>> {
        let mut parts: Vec<&str> = Vec::new();
        for segment in path.split('/') {
            match segment {
                "" | "." => {}
                ".." => {
                    parts.pop()?;
                }
                other => parts.push(other),
            }
        }
        Some(parts)
    }
    if !path.starts_with('/') || !root.starts_with('/') {
        return false;
    }
    match (normalise(path), normalise(root)) {
        (Some(path), Some(root)) => !root.is_empty() && path.starts_with(&root),
        _ => false,
    }
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
        // As for runs: with sign-in, the version is the signed-in user's
        // (MLflow's open server records nobody).
        user_id: state
            .governance()
            .auth_enabled()
            .then(|| principal.name().to_string()),
        tags,
    };
    // Readers of the model will read the version's files: registering
    // files one cannot read would hand them out.
    let behind = check_source(&state, &new).await?;
    for experiment in &behind.experiments {
        if !principal.may(ResourceKind::Experiment, experiment, Permission::Read) {
            return Err(ApiError::User(
                ErrorCode::PermissionDenied,
                format!(
                    "Permission denied: user '{}' lacks read permission on experiment {experiment}, where this version's files are",
                    principal.name()
                ),
            ));
        }
    }
    for model in &behind.models {
        if !principal.may(ResourceKind::RegisteredModel, model, Permission::Read) {
            return Err(ApiError::User(
                ErrorCode::PermissionDenied,
                format!(
                    "Permission denied: user '{}' lacks read permission on registered model '{model}', this version's source",
                    principal.name()
                ),
            ));
        }
    }
    let version = state.store().create_model_version(&new).await?;
    // A model with a validation spec validates every new version.
    if let Err(err) = crate::validation::start(&state, &version.name, version.version).await {
        tracing::warn!(model = %version.name, version = version.version, cause = ?err, "cannot start the validation");
    }
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
        if !matches!(parsed, Stage::None | Stage::Archived) {
            validation_gate(&state, &name, &version, parsed.as_str()).await?;
        }
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
