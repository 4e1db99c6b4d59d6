//! Experiments, runs, metrics and MLflow 3 logged models.

use axum::extract::{Path, State};
use axum::{Extension, Json};
use sextant_api::mlflow as dto;
use sextant_core::{
    KeyValue, LoggedModelStatus, Metric, ModelOutput, ResourceKind, RunStatus, ViewType,
};
use sextant_governance::Principal;
use sextant_store::{LogBatch, NewLoggedModel, RunUpdate};

use crate::error::{ApiError, ApiResult};
use crate::extract::MlflowRequest;
use crate::guard::{AuditDraft, AuditNote};
use crate::resource;
use crate::routes::artifacts::{list_under_uri, ProxiedListing};
use crate::routes::{empty, required};
use crate::AppState;

type JsonValue = Json<serde_json::Value>;

fn key_values(items: Vec<dto::KeyValueIn>, what: &str) -> ApiResult<Vec<KeyValue>> {
    items
        .into_iter()
        .map(|kv| {
            let key = required(kv.key, &format!("{what}.key"))?;
            Ok(KeyValue {
                key,
                value: kv.value.unwrap_or_default(),
            })
        })
        .collect()
}

fn metric(input: dto::MetricIn) -> ApiResult<Metric> {
    Ok(Metric {
        key: required(input.key, "key")?,
        value: input.value.ok_or_else(|| ApiError::missing("value"))?,
        timestamp: input
            .timestamp
            .ok_or_else(|| ApiError::missing("timestamp"))?,
        step: input.step.unwrap_or(0),
        model_id: input.model_id.filter(|s| !s.is_empty()),
        dataset_name: input.dataset_name.filter(|s| !s.is_empty()),
        dataset_digest: input.dataset_digest.filter(|s| !s.is_empty()),
    })
}

fn view_type(text: Option<&str>) -> ApiResult<ViewType> {
    match text.filter(|t| !t.is_empty()) {
        None => Ok(ViewType::ActiveOnly),
        Some(text) => ViewType::parse(text).ok_or_else(|| {
            ApiError::invalid(format!(
                "Invalid view type '{text}'. Valid values are ACTIVE_ONLY, DELETED_ONLY, ALL"
            ))
        }),
    }
}

// ------------------------------------------------------------ experiments

pub(crate) async fn create_experiment(
    State(state): State<AppState>,
    Extension(principal): Extension<Principal>,
    MlflowRequest(request): MlflowRequest<dto::CreateExperiment>,
) -> ApiResult<(Extension<AuditNote>, Json<dto::CreateExperimentResponse>)> {
    let name = required(request.name, "name")?;
    // Where an experiment's files go decides which files its runs reach:
    // only admins choose it; everyone else gets the server's default root.
    if request
        .artifact_location
        .as_deref()
        .is_some_and(|location| !location.is_empty())
        && !principal.is_admin()
    {
        return Err(ApiError::User(
            sextant_api::ErrorCode::PermissionDenied,
            "Only administrators may choose an experiment's artifact_location".into(),
        ));
    }
    let tags = key_values(request.tags, "tags")?;
    let artifact_location = request
        .artifact_location
        .filter(|l| !l.is_empty())
        .map(absolute_location);
    let experiment_id = state
        .store()
        .create_experiment(&name, artifact_location.as_deref(), &tags)
        .await?;
    let note = AuditNote {
        created: Some((ResourceKind::Experiment, experiment_id.clone())),
        ..AuditNote::default()
    };
    Ok((
        Extension(note),
        Json(dto::CreateExperimentResponse { experiment_id }),
    ))
}

/// A relative local path is taken from the server's working directory and
/// stored absolute, as MLflow's server does; URIs are kept as given.
fn absolute_location(location: String) -> String {
    let path = std::path::Path::new(&location);
    if location.contains(':') || path.is_absolute() {
        return location;
    }
    match std::env::current_dir() {
        Ok(cwd) => cwd.join(path).to_string_lossy().into_owned(),
        Err(_) => location,
    }
}

pub(crate) async fn get_experiment(
    State(state): State<AppState>,
    MlflowRequest(request): MlflowRequest<dto::ExperimentIdRequest>,
) -> ApiResult<Json<dto::ExperimentResponse>> {
    let experiment_id = resource::experiment_id(request.experiment_id)?;
    let experiment = state.store().get_experiment(&experiment_id).await?;
    Ok(Json(dto::ExperimentResponse {
        experiment: (&experiment).into(),
    }))
}

pub(crate) async fn get_experiment_by_name(
    State(state): State<AppState>,
    MlflowRequest(request): MlflowRequest<dto::GetExperimentByName>,
) -> ApiResult<Json<dto::ExperimentResponse>> {
    let name = required(request.experiment_name, "experiment_name")?;
    let experiment = state.store().get_experiment_by_name(&name).await?;
    Ok(Json(dto::ExperimentResponse {
        experiment: (&experiment).into(),
    }))
}

pub(crate) async fn search_experiments(
    State(state): State<AppState>,
    Extension(principal): Extension<Principal>,
    MlflowRequest(request): MlflowRequest<dto::SearchExperiments>,
) -> ApiResult<Json<dto::SearchExperimentsResponse>> {
    let visible = principal.visible(ResourceKind::Experiment);
    let page = state
        .store()
        .search_experiments(
            view_type(request.view_type.as_deref())?,
            request.filter.as_deref().filter(|f| !f.trim().is_empty()),
            &request.order_by,
            request.max_results.unwrap_or(1000),
            request.page_token.as_deref(),
            &visible,
        )
        .await?;
    Ok(Json(dto::SearchExperimentsResponse {
        experiments: page.items.iter().map(Into::into).collect(),
        next_page_token: page.next_page_token,
    }))
}

pub(crate) async fn update_experiment(
    State(state): State<AppState>,
    MlflowRequest(request): MlflowRequest<dto::UpdateExperiment>,
) -> ApiResult<JsonValue> {
    let experiment_id = resource::experiment_id(request.experiment_id)?;
    if let Some(new_name) = request.new_name.filter(|n| !n.is_empty()) {
        state
            .store()
            .rename_experiment(&experiment_id, &new_name)
            .await?;
    }
    Ok(empty())
}

pub(crate) async fn delete_experiment(
    State(state): State<AppState>,
    MlflowRequest(request): MlflowRequest<dto::ExperimentIdRequest>,
) -> ApiResult<JsonValue> {
    state
        .store()
        .delete_experiment(&resource::experiment_id(request.experiment_id)?)
        .await?;
    Ok(empty())
}

pub(crate) async fn restore_experiment(
    State(state): State<AppState>,
    MlflowRequest(request): MlflowRequest<dto::ExperimentIdRequest>,
) -> ApiResult<JsonValue> {
    state
        .store()
        .restore_experiment(&resource::experiment_id(request.experiment_id)?)
        .await?;
    Ok(empty())
}

pub(crate) async fn set_experiment_tag(
    State(state): State<AppState>,
    MlflowRequest(request): MlflowRequest<dto::ExperimentTagRequest>,
) -> ApiResult<JsonValue> {
    let experiment_id = resource::experiment_id(request.experiment_id)?;
    let key = required(request.key, "key")?;
    let value = request.value.ok_or_else(|| ApiError::missing("value"))?;
    state
        .store()
        .set_experiment_tag(&experiment_id, &key, &value)
        .await?;
    Ok(empty())
}

pub(crate) async fn delete_experiment_tag(
    State(state): State<AppState>,
    MlflowRequest(request): MlflowRequest<dto::ExperimentTagRequest>,
) -> ApiResult<JsonValue> {
    let experiment_id = resource::experiment_id(request.experiment_id)?;
    let key = required(request.key, "key")?;
    state
        .store()
        .delete_experiment_tag(&experiment_id, &key)
        .await?;
    Ok(empty())
}

// ------------------------------------------------------------------- runs

pub(crate) async fn create_run(
    State(state): State<AppState>,
    Extension(principal): Extension<Principal>,
    MlflowRequest(request): MlflowRequest<dto::CreateRun>,
) -> ApiResult<Json<dto::RunResponse>> {
    let experiment_id = resource::experiment_id_or_default(request.experiment_id)?;
    let tags = key_values(request.tags, "tags")?;
    // Signed in, the run is the caller's, whatever the client claims.
    let user_id = match principal.caller() {
        Some(caller) => caller.username.clone(),
        None => request
            .user_id
            .filter(|u| !u.is_empty())
            .unwrap_or_else(|| "unknown".to_string()),
    };
    let run = state
        .store()
        .create_run(
            &experiment_id,
            &user_id,
            request.run_name.as_deref(),
            request.start_time,
            &tags,
        )
        .await?;
    Ok(Json(dto::RunResponse { run: (&run).into() }))
}

pub(crate) async fn get_run(
    State(state): State<AppState>,
    MlflowRequest(request): MlflowRequest<dto::RunIdRequest>,
) -> ApiResult<Json<dto::RunResponse>> {
    let run = state
        .store()
        .get_run(&resource::run_id(request.run_id, request.run_uuid)?)
        .await?;
    Ok(Json(dto::RunResponse { run: (&run).into() }))
}

pub(crate) async fn update_run(
    State(state): State<AppState>,
    MlflowRequest(request): MlflowRequest<dto::UpdateRun>,
) -> ApiResult<Json<dto::UpdateRunResponse>> {
    let run_id = resource::run_id(request.run_id, request.run_uuid)?;
    let status = match request.status.as_deref().filter(|s| !s.is_empty()) {
        None => None,
        Some(text) => Some(RunStatus::parse(text).ok_or_else(|| {
            ApiError::invalid(format!(
                "Invalid value '{text}' for parameter 'status'. Valid values are RUNNING, SCHEDULED, FINISHED, FAILED, KILLED"
            ))
        })?),
    };
    let update = RunUpdate {
        status,
        end_time: request.end_time,
        run_name: request.run_name,
    };
    let info = state.store().update_run(&run_id, &update).await?;
    Ok(Json(dto::UpdateRunResponse {
        run_info: (&info).into(),
    }))
}

pub(crate) async fn delete_run(
    State(state): State<AppState>,
    MlflowRequest(request): MlflowRequest<dto::RunIdRequest>,
) -> ApiResult<JsonValue> {
    state
        .store()
        .delete_run(&resource::run_id(request.run_id, request.run_uuid)?)
        .await?;
    Ok(empty())
}

pub(crate) async fn restore_run(
    State(state): State<AppState>,
    MlflowRequest(request): MlflowRequest<dto::RunIdRequest>,
) -> ApiResult<JsonValue> {
    state
        .store()
        .restore_run(&resource::run_id(request.run_id, request.run_uuid)?)
        .await?;
    Ok(empty())
}

pub(crate) async fn search_runs(
    State(state): State<AppState>,
    Extension(principal): Extension<Principal>,
    MlflowRequest(request): MlflowRequest<dto::SearchRuns>,
) -> ApiResult<Json<dto::SearchRunsResponse>> {
    // Runs in experiments the caller may not read are invisible, as if
    // those experiments were empty.
    let experiment_ids = principal
        .visible(ResourceKind::Experiment)
        .intersect(request.experiment_ids);
    let page = state
        .store()
        .search_runs(
            &experiment_ids,
            request.filter.as_deref().filter(|f| !f.trim().is_empty()),
            view_type(request.run_view_type.as_deref())?,
            request.max_results.unwrap_or(1000),
            &request.order_by,
            request.page_token.as_deref(),
        )
        .await?;
    Ok(Json(dto::SearchRunsResponse {
        runs: page.items.iter().map(Into::into).collect(),
        next_page_token: page.next_page_token,
    }))
}

/// Writes a batch through the metric writer with the request's audit entry
/// in the same transaction, and tells the guard it is recorded.
async fn write_batch(
    state: &AppState,
    draft: Option<Extension<AuditDraft>>,
    mut batch: LogBatch,
) -> ApiResult<(Option<Extension<AuditNote>>, JsonValue)> {
    batch.audit = draft.map(|Extension(AuditDraft(entry))| entry);
    let recorded = batch.audit.is_some().then(|| {
        Extension(AuditNote {
            recorded: true,
            ..AuditNote::default()
        })
    });
    state.store().log_batch(batch).await?;
    Ok((recorded, empty()))
}

pub(crate) async fn log_metric(
    State(state): State<AppState>,
    draft: Option<Extension<AuditDraft>>,
    MlflowRequest(request): MlflowRequest<dto::LogMetric>,
) -> ApiResult<(Option<Extension<AuditNote>>, JsonValue)> {
    let run_id = resource::run_id(request.run_id, request.run_uuid)?;
    let metric = metric(request.metric)?;
    write_batch(
        &state,
        draft,
        LogBatch {
            run_id,
            metrics: vec![metric],
            ..LogBatch::default()
        },
    )
    .await
}

pub(crate) async fn log_param(
    State(state): State<AppState>,
    draft: Option<Extension<AuditDraft>>,
    MlflowRequest(request): MlflowRequest<dto::RunKeyValue>,
) -> ApiResult<(Option<Extension<AuditNote>>, JsonValue)> {
    let run_id = resource::run_id(request.run_id, request.run_uuid)?;
    let key = required(request.key, "key")?;
    let value = request.value.ok_or_else(|| ApiError::missing("value"))?;
    write_batch(
        &state,
        draft,
        LogBatch {
            run_id,
            params: vec![KeyValue { key, value }],
            ..LogBatch::default()
        },
    )
    .await
}

pub(crate) async fn set_tag(
    State(state): State<AppState>,
    draft: Option<Extension<AuditDraft>>,
    MlflowRequest(request): MlflowRequest<dto::RunKeyValue>,
) -> ApiResult<(Option<Extension<AuditNote>>, JsonValue)> {
    let run_id = resource::run_id(request.run_id, request.run_uuid)?;
    let key = required(request.key, "key")?;
    let value = request.value.ok_or_else(|| ApiError::missing("value"))?;
    write_batch(
        &state,
        draft,
        LogBatch {
            run_id,
            tags: vec![KeyValue { key, value }],
            ..LogBatch::default()
        },
    )
    .await
}

pub(crate) async fn delete_tag(
    State(state): State<AppState>,
    MlflowRequest(request): MlflowRequest<dto::RunKeyValue>,
) -> ApiResult<JsonValue> {
    let run_id = resource::run_id(request.run_id, request.run_uuid)?;
    state
        .store()
        .delete_run_tag(&run_id, &required(request.key, "key")?)
        .await?;
    Ok(empty())
}

pub(crate) async fn log_batch(
    State(state): State<AppState>,
    draft: Option<Extension<AuditDraft>>,
    MlflowRequest(request): MlflowRequest<dto::LogBatch>,
) -> ApiResult<(Option<Extension<AuditNote>>, JsonValue)> {
    let run_id = resource::run_id(request.run_id, request.run_uuid)?;
    let metrics = request
        .metrics
        .into_iter()
        .map(metric)
        .collect::<ApiResult<Vec<_>>>()?;
    let params = key_values(request.params, "params")?;
    let tags = key_values(request.tags, "tags")?;
    write_batch(
        &state,
        draft,
        LogBatch {
            run_id,
            metrics,
            params,
            tags,
            audit: None,
        },
    )
    .await
}

pub(crate) async fn log_inputs(
    State(state): State<AppState>,
    MlflowRequest(request): MlflowRequest<dto::LogInputs>,
) -> ApiResult<JsonValue> {
    let run_id = resource::run_id(request.run_id, request.run_uuid)?;
    let datasets: Vec<_> = request.datasets.into_iter().map(Into::into).collect();
    let models: Vec<String> = request
        .models
        .into_iter()
        .map(|m| m.model_id)
        .filter(|id| !id.is_empty())
        .collect();
    state
        .store()
        .log_inputs(&run_id, &datasets, &models)
        .await?;
    Ok(empty())
}

pub(crate) async fn log_outputs(
    State(state): State<AppState>,
    MlflowRequest(request): MlflowRequest<dto::LogOutputs>,
) -> ApiResult<JsonValue> {
    let run_id = resource::run_id(request.run_id, request.run_uuid)?;
    let outputs: Vec<ModelOutput> = request
        .models
        .into_iter()
        .map(|m| ModelOutput {
            model_id: m.model_id,
            step: m.step.unwrap_or(0),
        })
        .collect();
    state.store().log_outputs(&run_id, &outputs).await?;
    Ok(empty())
}

/// MLflow 2's `runs/log-model` appends the model's JSON to the run's
/// `mlflow.log-model.history` tag; kept for older clients.
pub(crate) async fn log_model(
    State(state): State<AppState>,
    MlflowRequest(request): MlflowRequest<dto::LogModel>,
) -> ApiResult<JsonValue> {
    let run_id = resource::run_id(request.run_id, request.run_uuid)?;
    let run_id = run_id.as_str();
    let model_json = request
        .model_json
        .ok_or_else(|| ApiError::missing("model_json"))?;
    let model: serde_json::Value = serde_json::from_str(&model_json)
        .map_err(|err| ApiError::invalid(format!("model_json is not valid JSON: {err}")))?;
    let run = state.store().get_run(run_id).await?;
    let mut history: Vec<serde_json::Value> = run
        .data
        .tags
        .iter()
        .find(|t| t.key == "mlflow.log-model.history")
        .and_then(|t| serde_json::from_str(&t.value).ok())
        .unwrap_or_default();
    history.push(model);
    let value =
        serde_json::to_string(&history).map_err(|err| ApiError::Internal(err.to_string()))?;
    state
        .store()
        .log_batch(LogBatch {
            run_id: run_id.to_string(),
            tags: vec![KeyValue {
                key: "mlflow.log-model.history".into(),
                value,
            }],
            ..LogBatch::default()
        })
        .await?;
    Ok(empty())
}

pub(crate) async fn get_metric_history(
    State(state): State<AppState>,
    MlflowRequest(request): MlflowRequest<dto::GetMetricHistory>,
) -> ApiResult<Json<dto::MetricsResponse>> {
    let run_id = resource::run_id(request.run_id, request.run_uuid)?;
    let key = required(request.metric_key, "metric_key")?;
    let page = state
        .store()
        .get_metric_history(
            &run_id,
            &key,
            request.max_results,
            request.page_token.as_deref(),
        )
        .await?;
    Ok(Json(dto::MetricsResponse {
        metrics: page.items.iter().map(Into::into).collect(),
        next_page_token: page.next_page_token,
    }))
}

pub(crate) async fn get_metric_history_bulk_interval(
    State(state): State<AppState>,
    MlflowRequest(request): MlflowRequest<dto::GetMetricHistoryBulkInterval>,
) -> ApiResult<Json<dto::MetricsResponse>> {
    let key = required(request.metric_key, "metric_key")?;
    let metrics = state
        .store()
        .get_metric_history_bulk_interval(
            &request.run_ids,
            &key,
            request.start_step,
            request.end_step,
            request
                .max_results
                .unwrap_or(sextant_store::MAX_BULK_INTERVAL_RESULTS),
        )
        .await?;
    Ok(Json(dto::MetricsResponse {
        metrics: metrics.iter().map(Into::into).collect(),
        next_page_token: None,
    }))
}

pub(crate) async fn list_run_artifacts(
    State(state): State<AppState>,
    MlflowRequest(request): MlflowRequest<dto::ListArtifacts>,
) -> ApiResult<Json<dto::ListArtifactsResponse>> {
    let run = state
        .store()
        .get_run(&resource::run_id(request.run_id, request.run_uuid)?)
        .await?;
    let ProxiedListing { root_uri, files } = list_under_uri(
        &state,
        &run.info.artifact_uri,
        request.path.as_deref().unwrap_or(""),
    )
    .await?;
    Ok(Json(dto::ListArtifactsResponse {
        root_uri: Some(root_uri),
        files,
    }))
}

// ---------------------------------------------------------- logged models

pub(crate) async fn create_logged_model(
    State(state): State<AppState>,
    MlflowRequest(request): MlflowRequest<dto::CreateLoggedModel>,
) -> ApiResult<Json<dto::LoggedModelResponse>> {
    let new = NewLoggedModel {
        experiment_id: resource::experiment_id(request.experiment_id)?,
        name: request.name,
        model_type: request.model_type,
        source_run_id: request.source_run_id,
        params: key_values(request.params, "params")?,
        tags: key_values(request.tags, "tags")?,
    };
    let model = state.store().create_logged_model(&new).await?;
    Ok(Json(dto::LoggedModelResponse {
        model: (&model).into(),
    }))
}

pub(crate) async fn get_logged_model(
    State(state): State<AppState>,
    Path(model_id): Path<String>,
) -> ApiResult<Json<dto::LoggedModelResponse>> {
    let model = state.store().get_logged_model(&model_id).await?;
    Ok(Json(dto::LoggedModelResponse {
        model: (&model).into(),
    }))
}

pub(crate) async fn finalize_logged_model(
    State(state): State<AppState>,
    Path(model_id): Path<String>,
    MlflowRequest(request): MlflowRequest<dto::FinalizeLoggedModel>,
) -> ApiResult<Json<dto::LoggedModelResponse>> {
    let status_text = required(request.status, "status")?;
    let status = LoggedModelStatus::parse(&status_text)
        .filter(|s| *s != LoggedModelStatus::Unspecified)
        .ok_or_else(|| ApiError::invalid(format!("Invalid logged model status '{status_text}'")))?;
    let model = state
        .store()
        .finalize_logged_model(&model_id, status)
        .await?;
    Ok(Json(dto::LoggedModelResponse {
        model: (&model).into(),
    }))
}

pub(crate) async fn delete_logged_model(
    State(state): State<AppState>,
    Path(model_id): Path<String>,
) -> ApiResult<JsonValue> {
    state.store().delete_logged_model(&model_id).await?;
    Ok(empty())
}

pub(crate) async fn set_logged_model_tags(
    State(state): State<AppState>,
    Path(model_id): Path<String>,
    MlflowRequest(request): MlflowRequest<dto::LoggedModelKeyValues>,
) -> ApiResult<JsonValue> {
    state
        .store()
        .set_logged_model_tags(&model_id, &key_values(request.tags, "tags")?)
        .await?;
    Ok(empty())
}

pub(crate) async fn delete_logged_model_tag(
    State(state): State<AppState>,
    Path((model_id, tag_key)): Path<(String, String)>,
) -> ApiResult<JsonValue> {
    state
        .store()
        .delete_logged_model_tag(&model_id, &tag_key)
        .await?;
    Ok(empty())
}

pub(crate) async fn log_logged_model_params(
    State(state): State<AppState>,
    Path(model_id): Path<String>,
    MlflowRequest(request): MlflowRequest<dto::LoggedModelKeyValues>,
) -> ApiResult<JsonValue> {
    state
        .store()
        .log_logged_model_params(&model_id, &key_values(request.params, "params")?)
        .await?;
    Ok(empty())
}

pub(crate) async fn search_logged_models(
    State(state): State<AppState>,
    Extension(principal): Extension<Principal>,
    MlflowRequest(request): MlflowRequest<dto::SearchLoggedModels>,
) -> ApiResult<Json<dto::SearchLoggedModelsResponse>> {
    let order_by = request
        .order_by
        .into_iter()
        .map(|clause| {
            Ok((
                required(clause.field_name, "order_by.field_name")?,
                clause.ascending.unwrap_or(true),
            ))
        })
        .collect::<ApiResult<Vec<_>>>()?;
    let datasets = request
        .datasets
        .into_iter()
        .map(
            |dataset| match dataset.dataset_name.filter(|n| !n.is_empty()) {
                Some(name) => Ok((name, dataset.dataset_digest)),
                None => Err(ApiError::invalid(
                    "`dataset_name` in the `datasets` clause must be specified.",
                )),
            },
        )
        .collect::<ApiResult<Vec<_>>>()?;
    let page = state
        .store()
        .search_logged_models(
            &principal
                .visible(ResourceKind::Experiment)
                .narrowed_to(request.experiment_ids),
            request.filter.as_deref().filter(|f| !f.trim().is_empty()),
            &datasets,
            &order_by,
            request.max_results.unwrap_or(100),
            request.page_token.as_deref(),
        )
        .await?;
    Ok(Json(dto::SearchLoggedModelsResponse {
        models: page.items.iter().map(Into::into).collect(),
        next_page_token: page.next_page_token,
    }))
}

pub(crate) async fn list_logged_model_artifacts(
    State(state): State<AppState>,
    Path(model_id): Path<String>,
    MlflowRequest(request): MlflowRequest<dto::ListLoggedModelArtifacts>,
) -> ApiResult<Json<dto::ListArtifactsResponse>> {
    let model = state.store().get_logged_model(&model_id).await?;
    let ProxiedListing { root_uri, files } = list_under_uri(
        &state,
        &model.artifact_uri,
        request.artifact_directory_path.as_deref().unwrap_or(""),
    )
    .await?;
    Ok(Json(dto::ListArtifactsResponse {
        root_uri: Some(root_uri),
        files,
    }))
}
