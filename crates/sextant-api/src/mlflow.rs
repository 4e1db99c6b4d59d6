//! MLflow REST shapes (`service.proto`, `model_registry.proto`,
//! `mlflow_artifacts.proto`), requests and responses, with conversions from
//! the domain types. Optional request fields are `Option` or default to
//! empty; the server checks required ones so that the message names the
//! missing field as MLflow does.

#![allow(missing_docs)]

use serde::{Deserialize, Serialize};
use sextant_core as core;

use crate::wire;

// ---------------------------------------------------------------- entities

#[derive(Debug, Clone, Serialize, Deserialize, Default)]
pub struct KeyValue {
    #[serde(default)]
    pub key: String,
    #[serde(default)]
    pub value: String,
}

impl From<&core::KeyValue> for KeyValue {
    fn from(kv: &core::KeyValue) -> KeyValue {
        KeyValue {
            key: kv.key.clone(),
            value: kv.value.clone(),
        }
    }
}

impl From<KeyValue> for core::KeyValue {
    fn from(kv: KeyValue) -> core::KeyValue {
        core::KeyValue {
            key: kv.key,
            value: kv.value,
        }
    }
}

fn key_values(items: &[core::KeyValue]) -> Vec<KeyValue> {
    items.iter().map(KeyValue::from).collect()
}

#[derive(Debug, Clone, Serialize)]
pub struct Experiment {
    pub experiment_id: String,
    pub name: String,
    pub artifact_location: String,
    pub lifecycle_stage: &'static str,
    pub last_update_time: i64,
    pub creation_time: i64,
    pub tags: Vec<KeyValue>,
}

impl From<&core::Experiment> for Experiment {
    fn from(e: &core::Experiment) -> Experiment {
        Experiment {
            experiment_id: e.experiment_id.clone(),
            name: e.name.clone(),
            artifact_location: e.artifact_location.clone(),
            lifecycle_stage: e.lifecycle_stage.as_str(),
            last_update_time: e.last_update_time,
            creation_time: e.creation_time,
            tags: key_values(&e.tags),
        }
    }
}

#[derive(Debug, Clone, Serialize)]
pub struct Metric {
    pub key: String,
    #[serde(serialize_with = "wire::f64_proto")]
    pub value: f64,
    pub timestamp: i64,
    pub step: i64,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub model_id: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub dataset_name: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub dataset_digest: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub run_id: Option<String>,
}

impl From<&core::Metric> for Metric {
    fn from(m: &core::Metric) -> Metric {
        Metric {
            key: m.key.clone(),
            value: m.value,
            timestamp: m.timestamp,
            step: m.step,
            model_id: m.model_id.clone(),
            dataset_name: m.dataset_name.clone(),
            dataset_digest: m.dataset_digest.clone(),
            run_id: None,
        }
    }
}

impl From<&core::RunMetric> for Metric {
    fn from(m: &core::RunMetric) -> Metric {
        Metric {
            run_id: Some(m.run_id.clone()),
            ..Metric::from(&m.metric)
        }
    }
}

#[derive(Debug, Clone, Serialize)]
pub struct RunInfo {
    pub run_id: String,
    pub run_uuid: String,
    pub run_name: String,
    pub experiment_id: String,
    pub user_id: String,
    pub status: &'static str,
    pub start_time: i64,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub end_time: Option<i64>,
    pub artifact_uri: String,
    pub lifecycle_stage: &'static str,
}

impl From<&core::RunInfo> for RunInfo {
    fn from(i: &core::RunInfo) -> RunInfo {
        RunInfo {
            run_id: i.run_id.clone(),
            run_uuid: i.run_id.clone(),
            run_name: i.run_name.clone(),
            experiment_id: i.experiment_id.clone(),
            user_id: i.user_id.clone(),
            status: i.status.as_str(),
            start_time: i.start_time,
            end_time: i.end_time,
            artifact_uri: i.artifact_uri.clone(),
            lifecycle_stage: i.lifecycle_stage.as_str(),
        }
    }
}

#[derive(Debug, Clone, Serialize)]
pub struct RunData {
    pub metrics: Vec<Metric>,
    pub params: Vec<KeyValue>,
    pub tags: Vec<KeyValue>,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Dataset {
    #[serde(default)]
    pub name: String,
    #[serde(default)]
    pub digest: String,
    #[serde(default)]
    pub source_type: String,
    #[serde(default)]
    pub source: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub schema: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub profile: Option<String>,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct DatasetInput {
    #[serde(default)]
    pub tags: Vec<KeyValue>,
    pub dataset: Dataset,
}

impl From<&core::DatasetInput> for DatasetInput {
    fn from(d: &core::DatasetInput) -> DatasetInput {
        DatasetInput {
            tags: key_values(&d.tags),
            dataset: Dataset {
                name: d.dataset.name.clone(),
                digest: d.dataset.digest.clone(),
                source_type: d.dataset.source_type.clone(),
                source: d.dataset.source.clone(),
                schema: d.dataset.schema.clone(),
                profile: d.dataset.profile.clone(),
            },
        }
    }
}

impl From<DatasetInput> for core::DatasetInput {
    fn from(d: DatasetInput) -> core::DatasetInput {
        core::DatasetInput {
            tags: d.tags.into_iter().map(Into::into).collect(),
            dataset: core::Dataset {
                name: d.dataset.name,
                digest: d.dataset.digest,
                source_type: d.dataset.source_type,
                source: d.dataset.source,
                schema: d.dataset.schema,
                profile: d.dataset.profile,
            },
        }
    }
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct ModelInput {
    #[serde(default)]
    pub model_id: String,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct ModelOutput {
    #[serde(default)]
    pub model_id: String,
    #[serde(default, deserialize_with = "wire::opt_i64")]
    pub step: Option<i64>,
}

#[derive(Debug, Clone, Serialize)]
pub struct RunInputs {
    pub dataset_inputs: Vec<DatasetInput>,
    pub model_inputs: Vec<ModelInput>,
}

#[derive(Debug, Clone, Serialize)]
pub struct RunOutputs {
    pub model_outputs: Vec<ModelOutput>,
}

#[derive(Debug, Clone, Serialize)]
pub struct Run {
    pub info: RunInfo,
    pub data: RunData,
    pub inputs: RunInputs,
    pub outputs: RunOutputs,
}

impl From<&core::Run> for Run {
    fn from(r: &core::Run) -> Run {
        Run {
            info: RunInfo::from(&r.info),
            data: RunData {
                metrics: r.data.metrics.iter().map(Metric::from).collect(),
                params: key_values(&r.data.params),
                tags: key_values(&r.data.tags),
            },
            inputs: RunInputs {
                dataset_inputs: r
                    .inputs
                    .dataset_inputs
                    .iter()
                    .map(DatasetInput::from)
                    .collect(),
                model_inputs: r
                    .inputs
                    .model_inputs
                    .iter()
                    .map(|id| ModelInput {
                        model_id: id.clone(),
                    })
                    .collect(),
            },
            outputs: RunOutputs {
                model_outputs: r
                    .outputs
                    .iter()
                    .map(|o| ModelOutput {
                        model_id: o.model_id.clone(),
                        step: Some(o.step),
                    })
                    .collect(),
            },
        }
    }
}

#[derive(Debug, Clone, Serialize)]
pub struct LoggedModelInfo {
    pub model_id: String,
    pub experiment_id: String,
    pub name: String,
    pub creation_timestamp_ms: i64,
    pub last_updated_timestamp_ms: i64,
    pub artifact_uri: String,
    pub status: &'static str,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub status_message: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub model_type: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub source_run_id: Option<String>,
    pub tags: Vec<KeyValue>,
}

#[derive(Debug, Clone, Serialize)]
pub struct LoggedModelData {
    pub params: Vec<KeyValue>,
    pub metrics: Vec<Metric>,
}

#[derive(Debug, Clone, Serialize)]
pub struct LoggedModel {
    pub info: LoggedModelInfo,
    pub data: LoggedModelData,
}

impl From<&core::LoggedModel> for LoggedModel {
    fn from(m: &core::LoggedModel) -> LoggedModel {
        LoggedModel {
            info: LoggedModelInfo {
                model_id: m.model_id.clone(),
                experiment_id: m.experiment_id.clone(),
                name: m.name.clone(),
                creation_timestamp_ms: m.creation_timestamp_ms,
                last_updated_timestamp_ms: m.last_updated_timestamp_ms,
                artifact_uri: m.artifact_uri.clone(),
                status: m.status.as_str(),
                status_message: m.status_message.clone(),
                model_type: m.model_type.clone(),
                source_run_id: m.source_run_id.clone(),
                tags: key_values(&m.tags),
            },
            data: LoggedModelData {
                params: key_values(&m.params),
                metrics: m.metrics.iter().map(Metric::from).collect(),
            },
        }
    }
}

#[derive(Debug, Clone, Serialize)]
pub struct ModelVersion {
    pub name: String,
    pub version: String,
    pub creation_timestamp: i64,
    pub last_updated_timestamp: i64,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub user_id: Option<String>,
    pub current_stage: &'static str,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub description: Option<String>,
    pub source: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub run_id: Option<String>,
    pub status: &'static str,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub run_link: Option<String>,
    pub tags: Vec<KeyValue>,
    pub aliases: Vec<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub model_id: Option<String>,
}

impl From<&core::ModelVersion> for ModelVersion {
    fn from(v: &core::ModelVersion) -> ModelVersion {
        ModelVersion {
            name: v.name.clone(),
            version: v.version.to_string(),
            creation_timestamp: v.creation_timestamp,
            last_updated_timestamp: v.last_updated_timestamp,
            user_id: v.user_id.clone(),
            current_stage: v.current_stage.as_str(),
            // MLflow's server stores what its client sends, an empty string
            // when there is none, and answers with it.
            description: Some(v.description.clone().unwrap_or_default()),
            source: v.source.clone(),
            run_id: v.run_id.clone(),
            // Registration is synchronous, so a version is ready at once;
            // a PENDING status would make the client poll.
            status: "READY",
            run_link: Some(v.run_link.clone().unwrap_or_default()),
            tags: key_values(&v.tags),
            aliases: v.aliases.clone(),
            model_id: v.model_id.clone(),
        }
    }
}

#[derive(Debug, Clone, Serialize)]
pub struct RegisteredModelAlias {
    pub alias: String,
    pub version: String,
}

#[derive(Debug, Clone, Serialize)]
pub struct RegisteredModel {
    pub name: String,
    pub creation_timestamp: i64,
    pub last_updated_timestamp: i64,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub description: Option<String>,
    pub latest_versions: Vec<ModelVersion>,
    pub tags: Vec<KeyValue>,
    pub aliases: Vec<RegisteredModelAlias>,
}

impl From<&core::RegisteredModel> for RegisteredModel {
    fn from(m: &core::RegisteredModel) -> RegisteredModel {
        RegisteredModel {
            name: m.name.clone(),
            creation_timestamp: m.creation_timestamp,
            last_updated_timestamp: m.last_updated_timestamp,
            description: m.description.clone(),
            latest_versions: m.latest_versions.iter().map(ModelVersion::from).collect(),
            tags: key_values(&m.tags),
            aliases: m
                .aliases
                .iter()
                .map(|a| RegisteredModelAlias {
                    alias: a.alias.clone(),
                    version: a.version.to_string(),
                })
                .collect(),
        }
    }
}

#[derive(Debug, Clone, Serialize)]
pub struct FileInfo {
    pub path: String,
    pub is_dir: bool,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub file_size: Option<u64>,
}

// ---------------------------------------------------------------- requests

/// Incoming metric: every field optional so that a missing one gets
/// MLflow's "Missing value for required parameter" message.
#[derive(Debug, Clone, Deserialize, Default)]
pub struct MetricIn {
    pub key: Option<String>,
    #[serde(default, deserialize_with = "wire::opt_f64")]
    pub value: Option<f64>,
    #[serde(default, deserialize_with = "wire::opt_i64")]
    pub timestamp: Option<i64>,
    #[serde(default, deserialize_with = "wire::opt_i64")]
    pub step: Option<i64>,
    pub model_id: Option<String>,
    pub dataset_name: Option<String>,
    pub dataset_digest: Option<String>,
}

#[derive(Debug, Clone, Deserialize, Default)]
pub struct KeyValueIn {
    pub key: Option<String>,
    pub value: Option<String>,
}

#[derive(Debug, Deserialize)]
pub struct CreateExperiment {
    pub name: Option<String>,
    pub artifact_location: Option<String>,
    #[serde(default)]
    pub tags: Vec<KeyValueIn>,
}

#[derive(Debug, Deserialize)]
pub struct ExperimentIdRequest {
    pub experiment_id: Option<String>,
}

#[derive(Debug, Deserialize)]
pub struct GetExperimentByName {
    pub experiment_name: Option<String>,
}

#[derive(Debug, Deserialize)]
pub struct UpdateExperiment {
    pub experiment_id: Option<String>,
    pub new_name: Option<String>,
}

#[derive(Debug, Deserialize)]
pub struct ExperimentTagRequest {
    pub experiment_id: Option<String>,
    pub key: Option<String>,
    pub value: Option<String>,
}

#[derive(Debug, Deserialize)]
pub struct SearchExperiments {
    #[serde(default, deserialize_with = "wire::opt_i64")]
    pub max_results: Option<i64>,
    pub page_token: Option<String>,
    pub filter: Option<String>,
    #[serde(default, deserialize_with = "wire::string_list")]
    pub order_by: Vec<String>,
    pub view_type: Option<String>,
}

#[derive(Debug, Deserialize)]
pub struct CreateRun {
    pub experiment_id: Option<String>,
    pub user_id: Option<String>,
    pub run_name: Option<String>,
    #[serde(default, deserialize_with = "wire::opt_i64")]
    pub start_time: Option<i64>,
    #[serde(default)]
    pub tags: Vec<KeyValueIn>,
}

/// Requests that address one run; clients send `run_id`, `run_uuid` or both.
#[derive(Debug, Deserialize)]
pub struct RunIdRequest {
    pub run_id: Option<String>,
    pub run_uuid: Option<String>,
}

#[derive(Debug, Deserialize)]
pub struct UpdateRun {
    pub run_id: Option<String>,
    pub run_uuid: Option<String>,
    pub status: Option<String>,
    #[serde(default, deserialize_with = "wire::opt_i64")]
    pub end_time: Option<i64>,
    pub run_name: Option<String>,
}

#[derive(Debug, Deserialize)]
pub struct LogMetric {
    pub run_id: Option<String>,
    pub run_uuid: Option<String>,
    #[serde(flatten)]
    pub metric: MetricIn,
}

#[derive(Debug, Deserialize)]
pub struct RunKeyValue {
    pub run_id: Option<String>,
    pub run_uuid: Option<String>,
    pub key: Option<String>,
    pub value: Option<String>,
}

#[derive(Debug, Deserialize)]
pub struct LogBatch {
    pub run_id: Option<String>,
    pub run_uuid: Option<String>,
    #[serde(default)]
    pub metrics: Vec<MetricIn>,
    #[serde(default)]
    pub params: Vec<KeyValueIn>,
    #[serde(default)]
    pub tags: Vec<KeyValueIn>,
}

#[derive(Debug, Deserialize)]
pub struct LogInputs {
    pub run_id: Option<String>,
    pub run_uuid: Option<String>,
    #[serde(default)]
    pub datasets: Vec<DatasetInput>,
    #[serde(default)]
    pub models: Vec<ModelInput>,
}

#[derive(Debug, Deserialize)]
pub struct LogOutputs {
    pub run_id: Option<String>,
    pub run_uuid: Option<String>,
    #[serde(default)]
    pub models: Vec<ModelOutput>,
}

/// MLflow 2's `runs/log-model`.
#[derive(Debug, Deserialize)]
pub struct LogModel {
    pub run_id: Option<String>,
    pub run_uuid: Option<String>,
    pub model_json: Option<String>,
}

#[derive(Debug, Deserialize)]
pub struct GetMetricHistory {
    pub run_id: Option<String>,
    pub run_uuid: Option<String>,
    pub metric_key: Option<String>,
    pub page_token: Option<String>,
    #[serde(default, deserialize_with = "wire::opt_i64")]
    pub max_results: Option<i64>,
}

#[derive(Debug, Deserialize)]
pub struct GetMetricHistoryBulkInterval {
    #[serde(default, deserialize_with = "wire::string_list")]
    pub run_ids: Vec<String>,
    pub metric_key: Option<String>,
    #[serde(default, deserialize_with = "wire::opt_i64")]
    pub start_step: Option<i64>,
    #[serde(default, deserialize_with = "wire::opt_i64")]
    pub end_step: Option<i64>,
    #[serde(default, deserialize_with = "wire::opt_i64")]
    pub max_results: Option<i64>,
}

#[derive(Debug, Deserialize)]
pub struct SearchRuns {
    #[serde(default, deserialize_with = "wire::string_list")]
    pub experiment_ids: Vec<String>,
    pub filter: Option<String>,
    pub run_view_type: Option<String>,
    #[serde(default, deserialize_with = "wire::opt_i64")]
    pub max_results: Option<i64>,
    #[serde(default, deserialize_with = "wire::string_list")]
    pub order_by: Vec<String>,
    pub page_token: Option<String>,
}

#[derive(Debug, Deserialize)]
pub struct ListArtifacts {
    pub run_id: Option<String>,
    pub run_uuid: Option<String>,
    pub path: Option<String>,
    pub page_token: Option<String>,
}

#[derive(Debug, Deserialize)]
pub struct CreateLoggedModel {
    pub experiment_id: Option<String>,
    pub name: Option<String>,
    pub model_type: Option<String>,
    pub source_run_id: Option<String>,
    #[serde(default)]
    pub params: Vec<KeyValueIn>,
    #[serde(default)]
    pub tags: Vec<KeyValueIn>,
}

#[derive(Debug, Deserialize)]
pub struct FinalizeLoggedModel {
    pub status: Option<String>,
}

#[derive(Debug, Deserialize)]
pub struct LoggedModelKeyValues {
    #[serde(default)]
    pub tags: Vec<KeyValueIn>,
    #[serde(default)]
    pub params: Vec<KeyValueIn>,
}

#[derive(Debug, Deserialize)]
pub struct LoggedModelOrderBy {
    pub field_name: Option<String>,
    #[serde(default, deserialize_with = "wire::opt_bool")]
    pub ascending: Option<bool>,
}

#[derive(Debug, Deserialize)]
pub struct SearchLoggedModels {
    #[serde(default, deserialize_with = "wire::string_list")]
    pub experiment_ids: Vec<String>,
    pub filter: Option<String>,
    #[serde(default, deserialize_with = "wire::opt_i64")]
    pub max_results: Option<i64>,
    #[serde(default)]
    pub order_by: Vec<LoggedModelOrderBy>,
    pub page_token: Option<String>,
    /// Metric filters and ordering consider only metrics logged on these
    /// datasets; without metric filters, a model must have such a metric.
    #[serde(default)]
    pub datasets: Vec<LoggedModelDatasetFilter>,
}

#[derive(Debug, Deserialize)]
pub struct LoggedModelDatasetFilter {
    pub dataset_name: Option<String>,
    pub dataset_digest: Option<String>,
}

#[derive(Debug, Deserialize)]
pub struct ListLoggedModelArtifacts {
    pub artifact_directory_path: Option<String>,
}

/// Registry requests share their field names, so one shape serves the
/// endpoints that address a model, a version, a tag or an alias.
#[derive(Debug, Deserialize, Default)]
pub struct RegistryRequest {
    pub name: Option<String>,
    pub new_name: Option<String>,
    pub version: Option<serde_json::Value>,
    pub description: Option<String>,
    pub key: Option<String>,
    pub value: Option<String>,
    pub alias: Option<String>,
    pub stage: Option<String>,
    #[serde(default, deserialize_with = "wire::opt_bool")]
    pub archive_existing_versions: Option<bool>,
    #[serde(default, deserialize_with = "wire::string_list")]
    pub stages: Vec<String>,
    #[serde(default)]
    pub tags: Vec<KeyValueIn>,
    pub source: Option<String>,
    pub run_id: Option<String>,
    pub run_link: Option<String>,
    pub model_id: Option<String>,
    pub filter: Option<String>,
    #[serde(default, deserialize_with = "wire::opt_i64")]
    pub max_results: Option<i64>,
    #[serde(default, deserialize_with = "wire::string_list")]
    pub order_by: Vec<String>,
    pub page_token: Option<String>,
}

// --------------------------------------------------------------- responses

#[derive(Debug, Serialize)]
pub struct ExperimentResponse {
    pub experiment: Experiment,
}

#[derive(Debug, Serialize)]
pub struct CreateExperimentResponse {
    pub experiment_id: String,
}

#[derive(Debug, Serialize)]
pub struct SearchExperimentsResponse {
    pub experiments: Vec<Experiment>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub next_page_token: Option<String>,
}

#[derive(Debug, Serialize)]
pub struct RunResponse {
    pub run: Run,
}

#[derive(Debug, Serialize)]
pub struct UpdateRunResponse {
    pub run_info: RunInfo,
}

#[derive(Debug, Serialize)]
pub struct SearchRunsResponse {
    pub runs: Vec<Run>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub next_page_token: Option<String>,
}

#[derive(Debug, Serialize)]
pub struct MetricsResponse {
    pub metrics: Vec<Metric>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub next_page_token: Option<String>,
}

#[derive(Debug, Serialize)]
pub struct ListArtifactsResponse {
    #[serde(skip_serializing_if = "Option::is_none")]
    pub root_uri: Option<String>,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub files: Vec<FileInfo>,
}

#[derive(Debug, Serialize)]
pub struct LoggedModelResponse {
    pub model: LoggedModel,
}

#[derive(Debug, Serialize)]
pub struct SearchLoggedModelsResponse {
    pub models: Vec<LoggedModel>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub next_page_token: Option<String>,
}

#[derive(Debug, Serialize)]
pub struct RegisteredModelResponse {
    pub registered_model: RegisteredModel,
}

#[derive(Debug, Serialize)]
pub struct SearchRegisteredModelsResponse {
    pub registered_models: Vec<RegisteredModel>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub next_page_token: Option<String>,
}

#[derive(Debug, Serialize)]
pub struct ModelVersionResponse {
    pub model_version: ModelVersion,
}

#[derive(Debug, Serialize)]
pub struct ModelVersionsResponse {
    pub model_versions: Vec<ModelVersion>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub next_page_token: Option<String>,
}

#[derive(Debug, Serialize)]
pub struct DownloadUriResponse {
    pub artifact_uri: String,
}

/// `GET /api/3.0/mlflow/server-info`.
#[derive(Debug, Serialize)]
pub struct ServerInfo {
    pub store_type: &'static str,
    pub workspaces_enabled: bool,
    pub trace_archival_enabled: bool,
    pub multipart_uploads_enabled: bool,
    pub multipart_downloads_enabled: bool,
    pub presigned_upload_run_id_supported: bool,
    pub presigned_upload_model_id_supported: bool,
    /// Which implementation answers: lets tools tell Sextant from MLflow.
    pub server: &'static str,
}
