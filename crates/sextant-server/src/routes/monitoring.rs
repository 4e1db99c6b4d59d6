//! `/api/v1/deployments/{name}/monitoring…`: a deployment's reference
//! profile, and its drift and outlier figures per model version and window.

use std::sync::Arc;
use std::time::Duration;

use axum::body::Body;
use axum::extract::{Path, Query, State};
use axum::Json;
use futures::StreamExt;
use serde::Deserialize;
use sextant_artifacts::ArtifactPath;

use crate::error::{ApiError, ApiResult};
use crate::serving::monitoring::{
    profile_path, ReferenceSource, StoredProfile, REFERENCE_WINDOW_ROWS,
};
use crate::serving::now_micros;
use crate::tables::{self, TableSource};
use crate::AppState;

/// The largest reference table accepted in one upload.
const MAX_REFERENCE_BYTES: usize = 1 << 30;
/// The longest span a report merges (the windows kept: a day of 5 minutes).
const MAX_SPAN: Duration = Duration::from_secs(24 * 3600);

#[derive(Deserialize, utoipa::IntoParams)]
#[into_params(parameter_in = Query)]
pub(crate) struct ReferenceQuery {
    /// Feature columns (comma-separated); default: every column but the prediction.
    features: Option<String>,
    /// The model's output column in the table, for prediction drift.
    prediction: Option<String>,
}

/// Sets a deployment's reference, the table the live traffic of every
/// model version is compared with: a CSV or Parquet table in the body, or
/// a JSON source naming one the server reads (a run artifact, a logged
/// dataset, a window of a prediction log; see `POST /api/v1/drift`).
#[utoipa::path(put, path = "/api/v1/deployments/{name}/monitoring/reference", tag = "monitoring",
    params(("name" = String, Path), ReferenceQuery),
    request_body(content = Vec<u8>, content_type = "application/octet-stream"),
    responses((status = 200, body = Object), (status = 400, body = sextant_api::v1::Error), (status = 404, body = sextant_api::v1::Error)))]
pub(crate) async fn put_reference(
    State(state): State<AppState>,
    Path(name): Path<String>,
    Query(query): Query<ReferenceQuery>,
    axum::Extension(principal): axum::Extension<sextant_governance::Principal>,
    body: Body,
) -> ApiResult<Json<serde_json::Value>> {
    state.store().get_deployment(&name).await?;
    super::deployments::serving_state(&state)?;
    let bytes = read_body(body).await?;
    if bytes.is_empty() {
        return Err(ApiError::invalid(
            "send the reference table (CSV with a header row, or Parquet) as the request body, or a JSON source such as {\"run_id\": …, \"path\": \"data/train.parquet\"}",
        ));
    }
    let mut features: Option<Vec<String>> = query.features.as_deref().map(|list| {
        list.split(',')
            .map(str::trim)
            .filter(|s| !s.is_empty())
            .map(str::to_string)
            .collect()
    });
    let prediction = query.prediction.clone();
    if bytes.first() == Some(&b'{') {
        let source: TableSource = serde_json::from_slice(&bytes)
            .map_err(|e| ApiError::invalid(format!("invalid reference source: {e}")))?;
        let loaded = tables::load(&state, &principal, &source).await?;
        if features.is_none() {
            features = loaded.features.clone();
        }
        let description = loaded.description.clone();
        let (profile, backgrounds) = build_profile(
            &state,
            &name,
            move || Ok((loaded.table, loaded.staging)),
            features,
            prediction,
        )
        .await?;
        install_backgrounds(&state, backgrounds).await;
        let stored = install_reference(&state, &name, "source", description, profile).await;
        let path = ArtifactPath::parse(&profile_path(&name))?;
        return Ok(Json(reference_json(&stored, &path)));
    }
    // The upload has no name: its first bytes say what it is.
    let extension = if bytes.starts_with(b"PAR1") {
        "parquet"
    } else if bytes.starts_with(&[0x1f, 0x8b]) {
        "csv.gz"
    } else if bytes.starts_with(&[0x28, 0xb5, 0x2f, 0xfd]) {
        "csv.zst"
    } else if bytes.starts_with(b"BZh") {
        "csv.bz2"
    } else if bytes.starts_with(b"\xFD7zXZ\x00") {
        "csv.xz"
    } else if bytes.starts_with(b"PK\x03\x04") {
        "csv.zip"
    } else {
        "csv"
    };
    let table_bytes = bytes.clone();
    let open_upload = move || {
        let file = tempfile::Builder::new()
            .suffix(&format!(".{extension}"))
            .tempfile()
            .map_err(|e| format!("cannot stage the table: {e}"))?;
        std::fs::write(file.path(), &table_bytes)
            .map_err(|e| format!("cannot stage the table: {e}"))?;
        let table = sextant_monitor::dataset::Table::open_bounded(
            file.path(),
            crate::tables::MAX_TABLE_BYTES,
        )
        .map_err(|e| {
            // The staging file's name means nothing to the caller.
            e.to_string()
                .replace(&file.path().display().to_string(), "the uploaded table")
        })?;
        // Parquet is read as it is profiled: the file stays until then.
        Ok((table, Some(file.into_temp_path())))
    };
    let (profile, backgrounds) =
        build_profile(&state, &name, open_upload, features, prediction).await?;
    install_backgrounds(&state, backgrounds).await;
    let reference_path = ArtifactPath::parse(&format!("monitoring/{name}/reference.{extension}"))?;
    let size = bytes.len();
    state
        .artifacts()
        .put(
            &reference_path,
            futures::stream::once(async move { Ok::<_, std::convert::Infallible>(bytes) }),
        )
        .await?;
    let description = format!("reference.{extension} ({size} bytes)");
    let stored = install_reference(&state, &name, "upload", description, profile).await;
    Ok(Json(reference_json(&stored, &reference_path)))
}

/// A table to profile, with the staging file it is read from (if any).
type OpenedTable = (sextant_monitor::dataset::Table, Option<tempfile::TempPath>);

/// The reference's rows for each model version `deployment` serves whose
/// features the table has: their explanation backgrounds.
type ArmBackgrounds = Vec<(
    Arc<crate::serving::LoadedVersion>,
    Vec<sextant_serve::NamedTensor>,
)>;

/// Opens a table and profiles it, off the async threads; takes from it the
/// explanation background of every model version `deployment` serves.
async fn build_profile(
    state: &AppState,
    deployment: &str,
    open: impl FnOnce() -> Result<OpenedTable, String> + Send + 'static,
    features: Option<Vec<String>>,
    prediction: Option<String>,
) -> ApiResult<(sextant_monitor::live::ReferenceProfile, ArmBackgrounds)> {
    let arms: Vec<Arc<crate::serving::LoadedVersion>> = state
        .serving()
        .and_then(|serving| serving.deployment(deployment))
        .map(|slot| {
            slot.live()
                .arms
                .iter()
                .map(|arm| arm.model.clone())
                .collect()
        })
        .unwrap_or_default();
    tokio::task::spawn_blocking(move || {
        let (table, _staging) = open()?;
        let profile = sextant_monitor::live::ReferenceProfile::from_table(
            &table,
            features.as_deref(),
            prediction.as_deref(),
        )
        .map_err(|e| e.to_string())?;
        let backgrounds = arms
            .into_iter()
            .filter_map(|loaded| {
                let names = loaded.feature_names.clone()?;
                let columns = background_columns(&table, &names)?;
                Some((loaded, columns))
            })
            .collect();
        Ok::<_, String>((profile, backgrounds))
    })
    .await
    .map_err(|_| ApiError::Internal("building the profile was interrupted".into()))?
    .map_err(ApiError::invalid)
}

/// Makes the reference's rows the explanation background of the versions
/// they fit.
async fn install_backgrounds(state: &AppState, backgrounds: ArmBackgrounds) {
    let Some(serving) = state.serving() else {
        return;
    };
    for (loaded, columns) in backgrounds {
        serving.set_reference_background(&loaded, columns).await;
    }
}

/// Stores `profile` as `deployment`'s reference and starts comparing with it.
async fn install_reference(
    state: &AppState,
    deployment: &str,
    kind: &str,
    description: String,
    profile: sextant_monitor::live::ReferenceProfile,
) -> Arc<StoredProfile> {
    let stored = Arc::new(StoredProfile {
        source: ReferenceSource {
            kind: kind.into(),
            description,
            created_us: now_micros(),
        },
        profile,
    });
    if let Some(serving) = state.serving() {
        serving.store_profile(deployment, &stored).await;
        serving
            .monitor_or_create(deployment)
            .set_profile(Some(stored.clone()));
    }
    stored
}

/// Gives each arm of `live` whose model version has no reference of its
/// own one built from the training dataset logged with that version (in the
/// background: the change is answered first).
pub(crate) fn references_for_arms(state: &AppState, live: &crate::serving::LiveDeployment) {
    for arm in &live.arms {
        if arm.monitor().own_profile().is_some() {
            continue;
        }
        tokio::spawn(version_reference_from_training_data(
            state.clone(),
            live.name.clone(),
            arm.model.clone(),
            arm.monitor().clone(),
        ));
    }
}

/// Makes the training dataset logged to `loaded`'s run that version's
/// reference in `deployment`, with the model's own predictions on it as the
/// reference predictions (so prediction drift needs no prediction column in
/// the data). When the dataset cannot be read (MLflow records where data came
/// from, not always the data), the deployment's reference (an upload, or the
/// first rows served) stays in use.
async fn version_reference_from_training_data(
    state: AppState,
    deployment: String,
    loaded: Arc<crate::serving::LoadedVersion>,
    version: Arc<crate::serving::monitoring::VersionMonitor>,
) {
    let Some(serving) = state.serving() else {
        return;
    };
    let model = loaded.model_ref.clone();
    let run_id = match state
        .store()
        .get_model_version(&model.name, &model.version.to_string())
        .await
    {
        Ok(version) => version.run_id,
        Err(_) => None,
    };
    let Some(run_id) = run_id.filter(|r| !r.is_empty()) else {
        return;
    };
    let loaded_table = match tables::training_dataset(&state, &run_id).await {
        Ok(Some(loaded)) => loaded,
        Ok(None) => return,
        Err(why) => {
            tracing::info!(%deployment, %model, run_id, cause = %why, "the training dataset cannot be the version's reference");
            return;
        }
    };
    // The model's inputs: a training table also holds the label.
    let Some(names) = loaded.feature_names.clone() else {
        tracing::info!(%deployment, %model, "the model names no features, so the training dataset's columns cannot be matched to its inputs");
        return;
    };
    if !names.iter().all(|n| loaded_table.table.has_column(n)) {
        tracing::info!(%deployment, %model, "the training dataset lacks some of the model's inputs");
        return;
    }
    let description = format!("training {} of {model}", loaded_table.description);
    let explained = loaded.clone();
    let built = tokio::task::spawn_blocking(move || {
        let mut table = loaded_table.table;
        let background = background_columns(&table, &names);
        let prediction = with_predictions(&mut table, &names, &loaded.model);
        let profile = sextant_monitor::live::ReferenceProfile::from_table(
            &table,
            Some(&names),
            prediction.as_deref(),
        )
        .map_err(|e| e.to_string())?;
        Ok::<_, String>((profile, prediction.is_some(), background))
    })
    .await;
    match built {
        Ok(Ok((profile, with_predictions, background))) => {
            if let Some(columns) = background {
                serving.set_reference_background(&explained, columns).await;
            }
            let stored = Arc::new(StoredProfile {
                source: ReferenceSource {
                    kind: "training_dataset".into(),
                    description: if with_predictions {
                        format!("{description}, with the model's predictions on it")
                    } else {
                        description
                    },
                    created_us: now_micros(),
                },
                profile,
            });
            serving
                .store_version_profile(&deployment, &model, &stored)
                .await;
            serving
                .monitor_or_create(&deployment)
                .set_version_profile(&version.model, stored);
            tracing::info!(%deployment, %model, "version reference built from its training dataset");
        }
        Ok(Err(why)) => {
            tracing::info!(%deployment, %model, cause = %why, "no reference from the training dataset")
        }
        Err(_) => {}
    }
}

/// Name of the reference predictions' column.
const PREDICTION_COLUMN: &str = "__sextant_prediction";

/// Rows `rows` of a table's `columns` as request columns named
/// `features`; `None` when a column cannot be one (a missing category, a
/// type the monitor does not read).
fn request_columns(
    features: &[String],
    columns: &[Arc<sextant_monitor::dataset::ColumnValues>],
    rows: &[usize],
) -> Option<Vec<sextant_serve::NamedTensor>> {
    use sextant_monitor::dataset::{ColumnValues, MISSING_CODE};
    use sextant_serve::{NamedTensor, Tensor, TensorData};
    features
        .iter()
        .zip(columns)
        .map(|(name, column)| {
            let data = match column.as_ref() {
                ColumnValues::Numeric { values, .. } => {
                    TensorData::F64(rows.iter().map(|&r| values[r]).collect())
                }
                ColumnValues::Strings { codes, dictionary } => TensorData::Str(
                    rows.iter()
                        .map(|&r| {
                            let c = codes[r];
                            (c != MISSING_CODE).then(|| dictionary[c as usize].clone())
                        })
                        .collect::<Option<Vec<_>>>()?,
                ),
                ColumnValues::Boolean { codes } => {
                    TensorData::Bool(rows.iter().map(|&r| codes[r] == 1).collect())
                }
                ColumnValues::Unsupported { .. } => return None,
            };
            Some(NamedTensor::new(name.clone(), Tensor::column(data)))
        })
        .collect()
}

/// `BACKGROUND_ROWS` rows of `table`, evenly spaced (all of them when
/// fewer), as request columns of `features`: a model version's explanation
/// background from its reference data. Rows with a missing category are
/// skipped.
fn background_columns(
    table: &sextant_monitor::dataset::Table,
    features: &[String],
) -> Option<Vec<sextant_serve::NamedTensor>> {
    use crate::serving::explain::BACKGROUND_ROWS;
    let columns: Vec<_> = features
        .iter()
        .map(|f| table.column(f).ok())
        .collect::<Option<_>>()?;
    let step = table.rows().div_ceil(BACKGROUND_ROWS).max(1);
    let picked: Vec<usize> = (0..table.rows())
        .step_by(step)
        .filter(|&r| request_columns(features, &columns, &[r]).is_some())
        .collect();
    (!picked.is_empty()).then(|| request_columns(features, &columns, &picked))?
}

/// Runs `model` on `table`'s `features` and adds its answers (the output
/// `/invocations` returns) as a column; its name, or `None` when the model
/// cannot run on the table (text with missing values, a failure).
fn with_predictions(
    table: &mut sextant_monitor::dataset::Table,
    features: &[String],
    model: &sextant_serve::Model,
) -> Option<String> {
    use sextant_monitor::dataset::ColumnValues;
    use sextant_serve::TensorData;
    const CHUNK: usize = 20_000;
    let columns: Vec<Arc<ColumnValues>> = features
        .iter()
        .map(|f| table.column(f).ok())
        .collect::<Option<_>>()?;
    let rows = table.rows();
    let mut numbers: Vec<f64> = Vec::new();
    let mut labels: Vec<String> = Vec::new();
    for start in (0..rows).step_by(CHUNK) {
        let end = (start + CHUNK).min(rows);
        let rows: Vec<usize> = (start..end).collect();
        let inputs = request_columns(features, &columns, &rows)?;
        let outputs = match model.predict(inputs, sextant_serve::model::Layout::Columns) {
            Ok(outputs) => outputs,
            Err(err) => {
                tracing::info!(cause = %err, "the model cannot predict on its training data; no reference predictions");
                return None;
            }
        };
        let answer = outputs.get(model.default_output()).or(outputs.first())?;
        if answer.tensor.len() != end - start {
            return None;
        }
        match &answer.tensor.data {
            TensorData::Str(values) => labels.extend(values.iter().cloned()),
            TensorData::Bool(values) => labels.extend(values.iter().map(|b| b.to_string())),
            data => numbers.extend((0..data.len()).map(|i| data.get_f64(i).unwrap_or(f64::NAN))),
        }
    }
    let values = if !labels.is_empty() {
        let mut dictionary: Vec<String> = Vec::new();
        let mut index = std::collections::HashMap::new();
        let codes = labels
            .into_iter()
            .map(|label| {
                *index.entry(label.clone()).or_insert_with(|| {
                    dictionary.push(label);
                    (dictionary.len() - 1) as u32
                })
            })
            .collect();
        ColumnValues::Strings { codes, dictionary }
    } else {
        let integer = numbers.iter().all(|v| v.fract() == 0.0);
        ColumnValues::Numeric {
            values: numbers,
            integer,
        }
    };
    table.add_column(PREDICTION_COLUMN, values).ok()?;
    Some(PREDICTION_COLUMN.to_owned())
}

fn reference_json(stored: &StoredProfile, path: &ArtifactPath) -> serde_json::Value {
    serde_json::json!({
        "source": stored.source,
        "artifact": path.as_str(),
        "reference_rows": stored.profile.reference_rows(),
        "features": stored.profile.features().iter().map(|f| serde_json::json!({"name": f.name, "kind": f.kind})).collect::<Vec<_>>(),
    })
}

async fn read_body(body: Body) -> ApiResult<bytes::Bytes> {
    let mut stream = body.into_data_stream();
    let mut buffer = bytes::BytesMut::new();
    while let Some(chunk) = stream.next().await {
        let chunk = chunk.map_err(|e| ApiError::invalid(format!("cannot read the body: {e}")))?;
        if buffer.len() + chunk.len() > MAX_REFERENCE_BYTES {
            return Err(ApiError::invalid(format!(
                "the reference table is larger than {} MiB; sample it",
                MAX_REFERENCE_BYTES >> 20
            )));
        }
        buffer.extend_from_slice(&chunk);
    }
    Ok(buffer.freeze())
}

#[derive(Deserialize, utoipa::IntoParams)]
#[into_params(parameter_in = Query)]
pub(crate) struct ReportQuery {
    /// How far back to merge windows: `30s`, `5m`, `1h`, `1d` or seconds (default `1h`, at most `1d`).
    span: Option<String>,
}

/// Drift of every feature and of the prediction, missing values and the
/// outlier rate, per model version, over the last `span`.
#[utoipa::path(get, path = "/api/v1/deployments/{name}/monitoring", tag = "monitoring",
    params(("name" = String, Path), ReportQuery),
    responses((status = 200, body = Object), (status = 400, body = sextant_api::v1::Error), (status = 404, body = sextant_api::v1::Error)))]
pub(crate) async fn report(
    State(state): State<AppState>,
    Path(name): Path<String>,
    Query(query): Query<ReportQuery>,
) -> ApiResult<Json<serde_json::Value>> {
    state.store().get_deployment(&name).await?;
    let span = parse_span(query.span.as_deref())?;
    let serving = super::deployments::serving_state(&state)?;
    let now = now_micros();
    let Some(monitor) = serving.monitor(&name) else {
        return Ok(Json(serde_json::json!({
            "deployment": name,
            "reference": null,
            "collecting": {"rows": 0, "of": REFERENCE_WINDOW_ROWS},
            "span_seconds": span.as_secs(),
            "versions": [],
        })));
    };
    let profile = monitor.profile();
    let reference = profile.as_ref().map(|stored| {
        let path = ArtifactPath::parse(&profile_path(&name)).expect("a valid path");
        reference_json(stored, &path)
    });
    let mut collecting = false;
    let versions: Vec<serde_json::Value> = monitor
        .versions()
        .iter()
        .map(|version| {
            let mut entry = version_json(version, "report", version.report(now, span));
            // Each version is compared with its own reference when it has
            // one (its training data), else with the deployment's.
            let used = monitor.profile_of(version);
            let own = version
                .own_profile()
                .is_some_and(|own| used.as_ref().is_some_and(|p| Arc::ptr_eq(p, &own)));
            let path = if own {
                crate::serving::monitoring::version_profile_path(&name, &version.model)
            } else {
                profile_path(&name)
            };
            collecting |= used.is_none();
            // Global importance and explanation drift of the sampled answers.
            entry["explanations"] = version
                .explanations
                .report(now, span)
                .and_then(|r| serde_json::to_value(r).ok())
                .unwrap_or(serde_json::Value::Null);
            entry["reference"] = used
                .map(|stored| {
                    reference_json(&stored, &ArtifactPath::parse(&path).expect("a valid path"))
                })
                .unwrap_or(serde_json::Value::Null);
            entry
        })
        .collect();
    Ok(Json(serde_json::json!({
        "deployment": name,
        "reference": reference,
        // The first rows served are gathered while some version has no reference.
        "collecting": collecting
            .then(|| serde_json::json!({"rows": monitor.collected_rows(), "of": REFERENCE_WINDOW_ROWS})),
        "span_seconds": span.as_secs(),
        "versions": versions,
    })))
}

/// The same figures per window, for charts.
#[utoipa::path(get, path = "/api/v1/deployments/{name}/monitoring/windows", tag = "monitoring",
    params(("name" = String, Path), ReportQuery),
    responses((status = 200, body = Object), (status = 400, body = sextant_api::v1::Error), (status = 404, body = sextant_api::v1::Error)))]
pub(crate) async fn windows(
    State(state): State<AppState>,
    Path(name): Path<String>,
    Query(query): Query<ReportQuery>,
) -> ApiResult<Json<serde_json::Value>> {
    state.store().get_deployment(&name).await?;
    let span = parse_span(query.span.as_deref())?;
    let serving = super::deployments::serving_state(&state)?;
    let now = now_micros();
    let versions: Vec<serde_json::Value> = serving
        .monitor(&name)
        .map(|monitor| monitor.versions())
        .unwrap_or_default()
        .iter()
        .map(|version| version_json(version, "windows", version.windows(now, span)))
        .collect();
    Ok(Json(serde_json::json!({
        "deployment": name,
        "span_seconds": span.as_secs(),
        "versions": versions,
    })))
}

/// `{"model": {"name", "version"}, key: value}` for one monitored version.
fn version_json(
    version: &crate::serving::monitoring::VersionMonitor,
    key: &str,
    value: impl serde::Serialize,
) -> serde_json::Value {
    let mut entry = serde_json::json!({
        "model": {"name": version.model.name, "version": version.model.version.to_string()},
    });
    entry[key] = serde_json::to_value(value).unwrap_or(serde_json::Value::Null);
    entry
}

/// `30s`, `5m`, `2h`, `1d`, or a number of seconds (default one hour),
/// at most the windows kept.
fn parse_span(text: Option<&str>) -> ApiResult<Duration> {
    let Some(text) = text.map(str::trim).filter(|t| !t.is_empty()) else {
        return Ok(Duration::from_secs(3600));
    };
    let span = Duration::from_micros(super::feedback::duration_us(text, "span")? as u64);
    if span > MAX_SPAN {
        return Err(ApiError::invalid(format!(
            "span '{text}' is longer than the {} hours of windows kept",
            MAX_SPAN.as_secs() / 3600
        )));
    }
    Ok(span)
}

/// Abuse and model-extraction signals per caller: request-rate spikes,
/// near-duplicate queries, PRADA's distance test, decision-boundary probing.
#[utoipa::path(get, path = "/api/v1/deployments/{name}/monitoring/abuse", tag = "monitoring",
    params(("name" = String, Path)),
    responses((status = 200, body = Object), (status = 404, body = sextant_api::v1::Error)))]
pub(crate) async fn abuse(
    State(state): State<AppState>,
    Path(name): Path<String>,
) -> ApiResult<Json<serde_json::Value>> {
    state.store().get_deployment(&name).await?;
    let serving = super::deployments::serving_state(&state)?;
    serving.flush_log().await;
    let monitor = serving.abuse();
    let now = now_micros();
    let throttling = serving
        .deployment(&name)
        .is_some_and(|slot| slot.live().spec.settings.throttle_abusive_callers);
    let mut report = monitor.report(&name, now);
    if let Some(report) = &mut report {
        // Turned away now: flagged within the last window, where the
        // deployment throttles.
        for client in &mut report.clients {
            client.throttled = throttling
                && monitor
                    .flagged_until(&name, Some(&client.client), now)
                    .is_some();
        }
        report.totals.throttled = report.clients.iter().filter(|c| c.throttled).count();
    }
    Ok(Json(serde_json::json!({
        "deployment": name,
        "throttling": throttling,
        "warming_up": monitor.warming_rows(&name).map(|rows| serde_json::json!({
            "rows": rows,
            "of": crate::serving::abuse::SCALING_ROWS,
        })),
        "report": report,
    })))
}

/// A drift report between two tables the server reads: run artifacts,
/// logged datasets, or windows of a deployment's prediction log.
#[derive(Deserialize, Default, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub(crate) struct DriftRequest {
    pub(crate) reference: TableSource,
    pub(crate) current: TableSource,
    /// `sextant` (default) or `evidently`.
    #[serde(default)]
    pub(crate) methods: Option<String>,
    /// The label column (its drift is label drift).
    #[serde(default)]
    pub(crate) target: Option<String>,
    /// The model's output column (its drift is prediction drift); in a
    /// prediction-log window, e.g. `output_label`.
    #[serde(default)]
    pub(crate) prediction: Option<String>,
    /// Only these columns (default: every column both tables have).
    #[serde(default)]
    pub(crate) columns: Option<Vec<String>>,
    #[serde(default)]
    pub(crate) numerical: Vec<String>,
    #[serde(default)]
    pub(crate) categorical: Vec<String>,
    /// The dataset drifts when at least this share of columns drifted (default 0.5).
    #[serde(default)]
    pub(crate) drift_share: Option<f64>,
    /// `json` (default) or `html`.
    #[serde(default)]
    pub(crate) format: Option<String>,
}

/// The report `sextant drift` prints, on tables the server reads.
#[utoipa::path(post, path = "/api/v1/drift", tag = "monitoring",
    request_body = DriftRequest,
    responses((status = 200, body = Object), (status = 400, body = sextant_api::v1::Error), (status = 403, body = sextant_api::v1::Error), (status = 404, body = sextant_api::v1::Error)))]
pub(crate) async fn drift(
    State(state): State<AppState>,
    axum::Extension(principal): axum::Extension<sextant_governance::Principal>,
    crate::extract::MlflowRequest(request): crate::extract::MlflowRequest<DriftRequest>,
) -> ApiResult<axum::response::Response> {
    use axum::response::IntoResponse;

    let html = match request.format.as_deref().unwrap_or("json") {
        "json" => false,
        "html" => true,
        other => {
            return Err(ApiError::invalid(format!(
                "format '{other}' is not json or html"
            )))
        }
    };
    let report = drift_report(&state, &principal, request).await?;
    if html {
        let page = sextant_monitor::drift::html::render(&report);
        return Ok((
            [(axum::http::header::CONTENT_TYPE, "text/html; charset=utf-8")],
            page,
        )
            .into_response());
    }
    Ok(Json(report).into_response())
}

/// The report a drift request asks for, read with `principal`'s rights (the
/// API and the web UI's drift page both come here).
pub(crate) async fn drift_report(
    state: &AppState,
    principal: &sextant_governance::Principal,
    request: DriftRequest,
) -> ApiResult<sextant_monitor::drift::DriftReport> {
    use sextant_monitor::drift::{DriftOptions, MethodSet};

    let methods: MethodSet = request
        .methods
        .as_deref()
        .unwrap_or("sextant")
        .parse()
        .map_err(ApiError::invalid)?;
    let drift_share = request.drift_share.unwrap_or(0.5);
    if !(drift_share > 0.0 && drift_share <= 1.0) {
        return Err(ApiError::invalid("drift_share must be in (0, 1]"));
    }
    let column_types =
        sextant_monitor::drift::column_types(&request.numerical, &request.categorical)
            .map_err(ApiError::invalid)?;
    let reference = tables::load(state, principal, &request.reference).await?;
    let current = tables::load(state, principal, &request.current).await?;
    let options = DriftOptions {
        methods,
        columns: request.columns,
        column_types,
        target: request.target,
        prediction: request.prediction,
        drift_share,
        // One worker: the server is answering other requests meanwhile.
        threads: 1,
    };
    tokio::task::spawn_blocking(move || {
        sextant_monitor::drift::drift_report(&reference.table, &current.table, &options).map(
            |mut report| {
                report.reference.path = reference.description.clone();
                report.current.path = current.description.clone();
                report
            },
        )
    })
    .await
    .map_err(|_| ApiError::Internal("the drift report was interrupted".into()))?
    .map_err(|e| ApiError::invalid(e.to_string()))
}

#[derive(Deserialize, utoipa::IntoParams)]
#[into_params(parameter_in = Query)]
pub(crate) struct ProfileQuery {
    /// `created_us` of the profile the caller holds: 204 when it is still current.
    known: Option<i64>,
}

/// The deployment's reference profile as stored (bins, counts, the
/// outlier model), for replicas to monitor against the same reference.
#[utoipa::path(get, path = "/api/v1/deployments/{name}/monitoring/profile", tag = "monitoring",
    params(("name" = String, Path), ProfileQuery),
    responses((status = 200, body = Object), (status = 204), (status = 404, body = sextant_api::v1::Error)))]
pub(crate) async fn profile(
    State(state): State<AppState>,
    Path(name): Path<String>,
    Query(query): Query<ProfileQuery>,
) -> ApiResult<axum::response::Response> {
    use axum::response::IntoResponse;
    state.store().get_deployment(&name).await?;
    let serving = super::deployments::serving_state(&state)?;
    let stored = serving
        .monitor(&name)
        .and_then(|monitor| monitor.profile())
        .ok_or_else(|| {
            ApiError::not_found(format!("Deployment '{name}' has no reference profile yet"))
        })?;
    if query.known == Some(stored.source.created_us) {
        return Ok(axum::http::StatusCode::NO_CONTENT.into_response());
    }
    Ok(Json(stored.as_ref().clone()).into_response())
}
