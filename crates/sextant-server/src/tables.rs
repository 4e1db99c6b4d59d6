//! Tables the server reads for drift reports and monitoring references:
//! a file among a run's artifacts, a dataset logged to a run
//! (`mlflow.log_input`), or a window of a deployment's prediction log.
//!
//! A logged dataset names where its data lives, not the data. Sextant
//! reads it when that place is a file inside one of the directories the
//! operator named with `--data-roots`: a path on the server's disk is not
//! something a user's permission covers, and a web page must not be able
//! to make a local server read any file it names. Elsewhere, the data has
//! to be a run artifact instead.

use std::path::{Path, PathBuf};
use std::sync::Arc;

use arrow_array::{Array, BooleanArray, RecordBatch};
use futures::TryStreamExt;
use serde::Deserialize;
use sextant_artifacts::ArtifactPath;
use sextant_core::{Permission, ResourceKind};
use sextant_governance::Principal;
use sextant_monitor::dataset::Table;

use crate::error::{ApiError, ApiResult};
use crate::AppState;

/// The largest table read from the artifact store in one go.
pub(crate) const MAX_TABLE_BYTES: u64 = 1 << 30;
/// The longest prediction-log window read at once.
const MAX_WINDOW_DAYS: i64 = 31;
const DAY_US: i64 = 86_400_000_000;

/// Where a table comes from; exactly one of the three forms.
#[derive(Debug, Clone, Default, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct TableSource {
    /// With `path`: that file among the run's artifacts. With `dataset`:
    /// the dataset logged to the run under that name (or digest).
    pub run_id: Option<String>,
    pub path: Option<String>,
    pub dataset: Option<String>,
    /// A window of this deployment's prediction log: features are the
    /// `input_*` columns (without the prefix), the model's answers the
    /// `output_*` columns.
    pub deployment: Option<String>,
    /// Window start and end, milliseconds since the epoch (default: the
    /// last `span` up to now).
    pub start: Option<i64>,
    pub end: Option<i64>,
    /// `30m`, `1h`, `1d`, … (default `1h`) when `start` is absent.
    pub span: Option<String>,
    /// Only rows one model version answered.
    pub model_version: Option<i64>,
}

/// A table read from a source; keeps its staging file while in use.
pub struct LoadedTable {
    pub table: Table,
    /// What was read, for reports.
    pub description: String,
    /// Names of the prediction log's feature columns, when it came from there.
    pub features: Option<Vec<String>>,
    /// The staging file a Parquet table is read from: keep it while the table is used.
    pub staging: Option<tempfile::TempPath>,
}

/// Reads `source` for `principal`, who must be able to read the run's
/// experiment or the deployment.
pub async fn load(
    state: &AppState,
    principal: &Principal,
    source: &TableSource,
) -> ApiResult<LoadedTable> {
    match source {
        TableSource {
            run_id: Some(run_id),
            path,
            dataset,
            deployment: None,
            start: None,
            end: None,
            span: None,
            model_version: None,
        } => {
            let experiment = state
                .governance()
                .experiment_of_run(run_id)
                .await?
                .ok_or_else(|| ApiError::not_found(format!("Run '{run_id}' not found")))?;
            if !principal.may(
                ResourceKind::Experiment,
                &experiment.to_string(),
                Permission::Read,
            ) {
                return Err(denied(principal, &format!("experiment {experiment}")));
            }
            match (path, dataset) {
                (Some(path), None) => run_artifact(state, run_id, path).await,
                (None, Some(dataset)) => {
                    logged_dataset(state, run_id, dataset).await
                }
                _ => Err(ApiError::invalid(
                    "a run source names either an artifact 'path' or a logged 'dataset'",
                )),
            }
        }
        TableSource {
            deployment: Some(deployment),
            run_id: None,
            path: None,
            dataset: None,
            ..
        } => {
            // Refused before looked up, so a refusal does not say whether it exists.
            if !principal.may(ResourceKind::Deployment, deployment, Permission::Read) {
                return Err(denied(principal, &format!("deployment '{deployment}'")));
            }
            state.store().get_deployment(deployment).await?;
            let micros = |ms: i64, field: &str| {
                ms.checked_mul(1000).ok_or_else(|| {
                    ApiError::invalid(format!("{field} is not a time in milliseconds since the epoch"))
                })
            };
            let end_us = match source.end {
                Some(ms) => micros(ms, "end")?,
                None => crate::serving::now_micros(),
            };
            let start_us = match source.start {
                Some(ms) => micros(ms, "start")?,
                None => {
                    let span = crate::routes::feedback::duration_us(
                        source.span.as_deref().unwrap_or("1h"),
                        "span",
                    )?;
                    end_us.saturating_sub(span)
                }
            };
            if start_us >= end_us {
                return Err(ApiError::invalid("the window's start must come before its end"));
            }
            if end_us.saturating_sub(start_us) > MAX_WINDOW_DAYS * DAY_US {
                return Err(ApiError::invalid(format!(
                    "a prediction-log window spans at most {MAX_WINDOW_DAYS} days"
                )));
            }
            prediction_window(state, deployment, start_us, end_us, source.model_version).await
        }
        _ => Err(ApiError::invalid(
            "a table source is {\"run_id\", \"path\"} (a run artifact), {\"run_id\", \"dataset\"} (a logged dataset) or {\"deployment\", \"start\"/\"end\" or \"span\"} (a prediction-log window)",
        )),
    }
}

fn denied(principal: &Principal, what: &str) -> ApiError {
    ApiError::User(
        sextant_api::ErrorCode::PermissionDenied,
        format!(
            "Permission denied: user '{}' lacks READ permission on {what}",
            principal.name()
        ),
    )
}

/// A file among the run's artifacts, staged to a temporary file.
async fn run_artifact(state: &AppState, run_id: &str, path: &str) -> ApiResult<LoadedTable> {
    let location = run_artifact_location(state, run_id, path).await?;
    let relative = path.trim_matches('/');
    let staged = stage(state, &location, relative).await?;
    open_staged(staged, format!("runs:/{run_id}/{relative}"))
}

/// Where the artifact `path` of `run_id` is in this server's artifact store;
/// refused when the run keeps its artifacts elsewhere or `path` leaves it.
pub(crate) async fn run_artifact_location(
    state: &AppState,
    run_id: &str,
    path: &str,
) -> ApiResult<ArtifactPath> {
    let run = state.store().get_run(run_id).await?;
    let root = crate::serving::source::artifact_root(&run.info.artifact_uri).map_err(|_| {
        ApiError::invalid(format!(
            "run '{run_id}' keeps its artifacts at '{}', outside this server's artifact store",
            run.info.artifact_uri
        ))
    })?;
    let relative = path.trim_matches('/');
    if relative.is_empty() || relative.split('/').any(|part| part == ".." || part == ".") {
        return Err(ApiError::invalid(format!(
            "'{path}' is not a file path within the run"
        )));
    }
    Ok(ArtifactPath::parse(&format!(
        "{}/{relative}",
        root.as_str()
    ))?)
}

/// Downloads `location` into a temporary file named like `name`.
pub(crate) async fn stage(
    state: &AppState,
    location: &ArtifactPath,
    name: &str,
) -> ApiResult<tempfile::TempPath> {
    let download = state
        .artifacts()
        .get(location)
        .await
        .map_err(|err| match err {
            sextant_artifacts::ArtifactError::NotFound(_) => {
                ApiError::not_found(format!("no artifact at '{name}'"))
            }
            other => ApiError::from(other),
        })?;
    let file = tempfile::Builder::new()
        .suffix(&sextant_monitor::dataset::format_suffix(name))
        .tempfile()
        .map_err(|e| ApiError::Internal(format!("cannot stage a table: {e}")))?;
    let (file, path) = file.into_parts();
    let mut file = tokio::fs::File::from_std(file);
    let mut written: u64 = 0;
    let mut body = download.body;
    while let Some(chunk) = body
        .try_next()
        .await
        .map_err(|e| ApiError::Internal(format!("reading '{name}': {e}")))?
    {
        written += chunk.len() as u64;
        if written > MAX_TABLE_BYTES {
            return Err(ApiError::invalid(format!(
                "'{name}' is larger than {} MiB; sample it",
                MAX_TABLE_BYTES >> 20
            )));
        }
        tokio::io::AsyncWriteExt::write_all(&mut file, &chunk)
            .await
            .map_err(|e| ApiError::Internal(format!("cannot stage a table: {e}")))?;
    }
    tokio::io::AsyncWriteExt::flush(&mut file)
        .await
        .map_err(|e| ApiError::Internal(format!("cannot stage a table: {e}")))?;
    Ok(path)
}

fn open_staged(staged: tempfile::TempPath, description: String) -> ApiResult<LoadedTable> {
    let table = Table::open_bounded(&staged, MAX_TABLE_BYTES).map_err(|e| {
        ApiError::invalid(
            e.to_string()
                .replace(&staged.display().to_string(), &description),
        )
    })?;
    Ok(LoadedTable {
        table,
        description,
        features: None,
        staging: Some(staged),
    })
}

/// The dataset logged to the run under `name` (or with that digest).
async fn logged_dataset(state: &AppState, run_id: &str, name: &str) -> ApiResult<LoadedTable> {
    let run = state.store().get_run(run_id).await?;
    let input = run
        .inputs
        .dataset_inputs
        .iter()
        .find(|input| input.dataset.name == name || input.dataset.digest == name)
        .ok_or_else(|| {
            ApiError::not_found(format!("run '{run_id}' has no logged dataset '{name}'"))
        })?;
    read_dataset(&input.dataset, &state.options().data_roots).map_err(ApiError::invalid)
}

/// The training dataset of `run_id` (the input logged with context
/// `training`, else its only input), when Sextant can read it. `Ok(None)`
/// when the run logged none; `Err` says why one could not be read.
pub async fn training_dataset(
    state: &AppState,
    run_id: &str,
) -> Result<Option<LoadedTable>, String> {
    let run = state
        .store()
        .get_run(run_id)
        .await
        .map_err(|e| e.to_string())?;
    let inputs = &run.inputs.dataset_inputs;
    let context = |input: &sextant_core::DatasetInput| {
        input
            .tags
            .iter()
            .find(|t| t.key == "mlflow.data.context")
            .map(|t| t.value.clone())
    };
    let chosen = inputs
        .iter()
        .find(|i| context(i).as_deref() == Some("training"))
        .or_else(|| (inputs.len() == 1).then(|| &inputs[0]));
    let Some(input) = chosen else {
        return Ok(None);
    };
    let roots = state.options().data_roots.clone();
    let dataset = input.dataset.clone();
    tokio::task::spawn_blocking(move || read_dataset(&dataset, &roots))
        .await
        .map_err(|_| "reading the dataset was interrupted".to_string())?
        .map(Some)
}

/// Reads a logged dataset from where its source says it lives.
fn read_dataset(dataset: &sextant_core::Dataset, roots: &[PathBuf]) -> Result<LoadedTable, String> {
    let name = &dataset.name;
    let uri = serde_json::from_str::<serde_json::Value>(&dataset.source)
        .ok()
        .and_then(|source| source["uri"].as_str().map(str::to_string));
    let Some(uri) = uri else {
        return Err(format!(
            "dataset '{name}' has a '{}' source, which holds no data; log the table as a run artifact and give its path",
            dataset.source_type
        ));
    };
    let path = match uri.strip_prefix("file://") {
        Some(rest) => PathBuf::from(rest),
        None if uri.starts_with('/') => PathBuf::from(&uri),
        None => {
            return Err(format!(
                "dataset '{name}' lives at '{uri}', which this server does not read; log the table as a run artifact and give its path"
            ))
        }
    };
    // Resolved first, so neither `..` nor a symlink leads out of a root.
    let inside = std::fs::canonicalize(&path)
        .ok()
        .filter(|resolved| roots.iter().any(|root| resolved.starts_with(root)));
    let Some(path) = inside else {
        return Err(format!(
            "dataset '{name}' is a file on the server's disk ('{uri}') outside the directories this server reads datasets from (--data-roots); log the table as a run artifact and give its path"
        ));
    };
    let table = Table::open_bounded(&path, MAX_TABLE_BYTES)
        .map_err(|e| format!("dataset '{name}': {e}"))?;
    Ok(LoadedTable {
        table,
        description: format!("dataset '{name}' ({uri})"),
        features: None,
        staging: None,
    })
}

/// Which logged rows to keep.
#[derive(Debug, Clone, Copy, Default)]
pub(crate) struct LogFilter<'a> {
    /// Only this model's rows (name), and only this version.
    pub model: Option<&'a str>,
    pub model_version: Option<i64>,
    /// Keep `prediction_id`, `row` and `timestamp` (µs, as a number) too,
    /// named with [`KEY_PREFIX`] so no feature can take their names.
    pub keys: bool,
}

/// Prefix of the key columns [`read_log`] keeps.
pub(crate) const KEY_PREFIX: &str = "__";

/// Answered rows of `deployment`'s prediction log in `[start_us, end_us)`
/// (not the shadow's, not failures): `input_*` columns under the feature's
/// name, `output_*` columns as they are, and the keys when asked.
pub(crate) async fn read_log(
    state: &AppState,
    deployment: &str,
    start_us: i64,
    end_us: i64,
    filter: LogFilter<'_>,
) -> ApiResult<Vec<RecordBatch>> {
    if let Some(serving) = state.serving() {
        serving.flush_log().await;
    }
    use crate::serving::predlog::{civil_date, segment_bytes, segments};
    let (first_day, last_day) = (civil_date(start_us), civil_date(end_us));
    let mut batches: Vec<RecordBatch> = Vec::new();
    for path in segments(
        state.artifacts(),
        deployment,
        Some(&first_day),
        Some(&last_day),
    )
    .await
    {
        let Some(bytes) = segment_bytes(state.artifacts(), &path).await else {
            continue;
        };
        let model = filter.model.map(str::to_string);
        let (model_version, keys) = (filter.model_version, filter.keys);
        let segment = tokio::task::spawn_blocking(move || {
            window_rows(
                bytes,
                start_us,
                end_us,
                model.as_deref(),
                model_version,
                keys,
            )
        })
        .await
        .map_err(|_| ApiError::Internal("reading the prediction log was interrupted".into()))?;
        match segment {
            Ok(found) => batches.extend(found),
            Err(err) => {
                tracing::warn!(segment = path.as_str(), cause = %err, "unreadable prediction-log segment skipped")
            }
        }
    }
    Ok(batches)
}

/// Rows of `deployment`'s prediction log answered in `[start_us, end_us)`
/// (not the shadow's, not failures), optionally by one model version.
async fn prediction_window(
    state: &AppState,
    deployment: &str,
    start_us: i64,
    end_us: i64,
    model_version: Option<i64>,
) -> ApiResult<LoadedTable> {
    let filter = LogFilter {
        model_version,
        ..LogFilter::default()
    };
    let batches = read_log(state, deployment, start_us, end_us, filter).await?;
    let rows: usize = batches.iter().map(RecordBatch::num_rows).sum();
    if rows == 0 {
        return Err(ApiError::invalid(format!(
            "deployment '{deployment}' logged no answered predictions in that window"
        )));
    }
    let description = format!(
        "deployment '{deployment}' prediction log, {} to {} UTC",
        sextant_ui::format::time(start_us / 1000),
        sextant_ui::format::time(end_us / 1000)
    );
    let table = Table::from_batches(Path::new(&description), &batches);
    let features = table
        .column_names()
        .iter()
        .filter(|name| !name.starts_with("output_"))
        .cloned()
        .collect();
    Ok(LoadedTable {
        table,
        description,
        features: Some(features),
        staging: None,
    })
}

/// One segment's rows in the window, keeping the `input_*` columns
/// (renamed to the feature), the `output_*` columns and, with `keys`,
/// `__prediction_id`, `__row` and `__timestamp` (µs).
fn window_rows(
    bytes: bytes::Bytes,
    start_us: i64,
    end_us: i64,
    model: Option<&str>,
    model_version: Option<i64>,
    keys: bool,
) -> Result<Vec<RecordBatch>, String> {
    use arrow_array::{Int64Array, StringArray, TimestampMicrosecondArray};
    use arrow_schema::{DataType, Field, Schema};
    use parquet::arrow::arrow_reader::ParquetRecordBatchReaderBuilder;

    let reader = ParquetRecordBatchReaderBuilder::try_new(bytes)
        .and_then(|b| b.build())
        .map_err(|e| e.to_string())?;
    let mut kept = Vec::new();
    for batch in reader {
        let batch = batch.map_err(|e| e.to_string())?;
        let column = |name: &str| batch.column_by_name(name);
        let times = column("timestamp")
            .and_then(|c| c.as_any().downcast_ref::<TimestampMicrosecondArray>())
            .ok_or("no timestamp column")?;
        let shadows = column("shadow").and_then(|c| c.as_any().downcast_ref::<BooleanArray>());
        let errors = column("error").and_then(|c| c.as_any().downcast_ref::<StringArray>());
        let versions =
            column("model_version").and_then(|c| c.as_any().downcast_ref::<Int64Array>());
        let models = column("model").and_then(|c| c.as_any().downcast_ref::<StringArray>());
        let mask: BooleanArray = (0..batch.num_rows())
            .map(|i| {
                let time = times.value(i);
                Some(
                    time >= start_us
                        && time < end_us
                        && !shadows.is_some_and(|s| s.value(i))
                        && !errors.is_some_and(|e| e.is_valid(i))
                        && model_version.is_none_or(|v| versions.is_some_and(|c| c.value(i) == v))
                        && model.is_none_or(|m| models.is_some_and(|c| c.value(i) == m)),
                )
            })
            .collect();
        if mask.true_count() == 0 {
            continue;
        }
        let filtered =
            arrow_select::filter::filter_record_batch(&batch, &mask).map_err(|e| e.to_string())?;
        let schema = filtered.schema();
        let mut fields = Vec::new();
        let mut arrays: Vec<arrow_array::ArrayRef> = Vec::new();
        for (field, array) in schema.fields().iter().zip(filtered.columns()) {
            let name = field.name();
            if keys && (name == "prediction_id" || name == "row") {
                fields.push(Field::new(
                    format!("{KEY_PREFIX}{name}"),
                    field.data_type().clone(),
                    true,
                ));
                arrays.push(array.clone());
                continue;
            }
            if keys && name == "timestamp" {
                let times = array
                    .as_any()
                    .downcast_ref::<TimestampMicrosecondArray>()
                    .ok_or("timestamp is not in microseconds")?;
                fields.push(Field::new(
                    format!("{KEY_PREFIX}timestamp"),
                    DataType::Int64,
                    true,
                ));
                arrays.push(Arc::new(Int64Array::from(times.values().to_vec())));
                continue;
            }
            let renamed = if let Some(feature) = name.strip_prefix("input_") {
                feature.to_string()
            } else if name.starts_with("output_") {
                name.clone()
            } else {
                continue;
            };
            fields.push(Field::new(renamed, field.data_type().clone(), true));
            arrays.push(array.clone());
        }
        let projected = RecordBatch::try_new(Arc::new(Schema::new(fields)), arrays)
            .map_err(|e| e.to_string())?;
        kept.push(projected);
    }
    Ok(kept)
}
