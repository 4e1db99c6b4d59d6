//! `/api/v1/deployments/{name}/feedback` and `…/performance`: ground-truth
//! labels joined to served predictions by prediction id, and the realised
//! (and, without labels, estimated) performance they give per window.

use std::collections::{HashMap, HashSet};
use std::sync::Arc;

use axum::extract::{Path, Query, State};
use axum::http::StatusCode;
use axum::Json;
use serde::Deserialize;
use sextant_store::FeedbackRecord;

use crate::error::{ApiError, ApiResult};
use crate::serving::feedback::{find_in_log, label_text, model_key, IndexedPrediction};
use crate::serving::{now_micros, Source};
use crate::AppState;

/// Labels accepted in one request.
const MAX_LABELS: usize = 10_000;
/// Unknown ids echoed back in a response (the count is always complete).
const MAX_ECHOED: usize = 100;

/// One label as sent: for row `row` (default 0) of a prediction, or
/// `labels` for each of its rows.
struct LabelItem {
    prediction_id: String,
    row: Option<i64>,
    labels: Vec<serde_json::Value>,
}

/// Reads one item of the body; the message says what is wrong with it.
fn parse_item(value: &serde_json::Value) -> Result<LabelItem, String> {
    let object = value
        .as_object()
        .ok_or("each label is an object with prediction_id and label")?;
    let prediction_id = match object.get("prediction_id") {
        Some(serde_json::Value::String(id)) if !id.trim().is_empty() => id.trim().to_string(),
        Some(_) => return Err("prediction_id must be a non-empty string".into()),
        None => return Err("missing prediction_id".into()),
    };
    let row = match object.get("row") {
        None | Some(serde_json::Value::Null) => None,
        Some(row) => match row.as_i64() {
            Some(row) if row >= 0 => Some(row),
            _ => return Err("row must be a non-negative integer".into()),
        },
    };
    let labels = match (object.get("label"), object.get("labels")) {
        (Some(label), None) => vec![label.clone()],
        (None, Some(serde_json::Value::Array(labels))) if row.is_none() => labels.clone(),
        (None, Some(serde_json::Value::Array(_))) => {
            return Err("give either row and label, or labels for every row".into())
        }
        (None, Some(_)) => return Err("labels must be an array, one label per row".into()),
        (Some(_), Some(_)) => return Err("give either label or labels, not both".into()),
        (None, None) => return Err("missing label".into()),
    };
    if labels.is_empty() {
        return Err("labels is empty".into());
    }
    for label in &labels {
        if label_text(label).is_none() {
            return Err(format!(
                "a label is a string, a number or a boolean, not {label}"
            ));
        }
        if label.as_f64().is_some_and(|v| !v.is_finite()) {
            return Err("a numeric label must be finite".into());
        }
    }
    Ok(LabelItem {
        prediction_id,
        row,
        labels,
    })
}

/// Records ground-truth labels for served predictions.
///
/// The body is one label, `{"prediction_id": "…", "label": 1}` (`row` picks
/// a row of a multi-row prediction), one per row, `{"prediction_id": "…",
/// "labels": [1, 0]}`, or many, `{"labels": [{…}, {…}]}` or a JSON array.
/// Labels may come late and in any order; sending one again is harmless
/// (`unchanged`), and a different label corrects the first (`updated`).
/// Ids the server never answered are reported (`unknown`), with a 404 when
/// the body was a single label.
#[utoipa::path(post, path = "/api/v1/deployments/{name}/feedback", tag = "monitoring",
    params(("name" = String, Path)),
    request_body(content = Object, content_type = "application/json"),
    responses((status = 200, body = Object), (status = 400, body = sextant_api::v1::Error), (status = 404, body = sextant_api::v1::Error)))]
pub(crate) async fn post_feedback(
    State(state): State<AppState>,
    Path(name): Path<String>,
    body: axum::body::Bytes,
) -> ApiResult<(StatusCode, Json<serde_json::Value>)> {
    state.store().get_deployment(&name).await?;
    let body: serde_json::Value = serde_json::from_slice(&body)
        .map_err(|e| ApiError::bad_request(format!("the body is not JSON: {e}")))?;
    let (single, raw_items): (bool, Vec<serde_json::Value>) = match body {
        serde_json::Value::Array(items) => (false, items),
        serde_json::Value::Object(ref object) if object.contains_key("prediction_id") => {
            (true, vec![body.clone()])
        }
        serde_json::Value::Object(mut object) => match object.remove("labels") {
            Some(serde_json::Value::Array(items)) => (false, items),
            _ => {
                return Err(ApiError::invalid(
                    "send {\"prediction_id\": …, \"label\": …} or {\"labels\": [{\"prediction_id\": …, \"label\": …}, …]}",
                ))
            }
        },
        _ => return Err(ApiError::invalid("the body is a JSON object or array of labels")),
    };
    if raw_items.len() > MAX_LABELS {
        return Err(ApiError::invalid(format!(
            "{} labels in one request; send at most {MAX_LABELS} at a time",
            raw_items.len()
        )));
    }
    let mut items = Vec::with_capacity(raw_items.len());
    let mut invalid = Vec::new();
    for (index, raw) in raw_items.iter().enumerate() {
        match parse_item(raw) {
            Ok(item) => items.push(item),
            Err(message) if single => return Err(ApiError::invalid(message)),
            Err(message) => invalid.push(serde_json::json!({
                "index": index,
                "prediction_id": raw.get("prediction_id"),
                "message": message,
            })),
        }
    }
    let serving = super::deployments::serving_state(&state)?;
    let ids: Vec<String> = {
        let mut seen = HashSet::new();
        items
            .iter()
            .filter(|i| seen.insert(i.prediction_id.clone()))
            .map(|i| i.prediction_id.clone())
            .collect()
    };
    let predictions = find_predictions(&state, &serving, &name, &ids).await?;
    let received_at = now_micros();
    let mut records = Vec::new();
    let mut unknown: Vec<String> = Vec::new();
    for (index, item) in items.iter().enumerate() {
        let Some(prediction) = predictions.get(&item.prediction_id) else {
            unknown.push(item.prediction_id.clone());
            continue;
        };
        let rows = prediction.rows.len() as i64;
        let targets: Vec<(i64, &serde_json::Value)> = match item.row {
            Some(row) => vec![(row, &item.labels[0])],
            None if item.labels.len() == 1 && rows > 1 => {
                let message = format!(
                    "prediction {} has {rows} rows: give row with label, or labels for every row",
                    item.prediction_id
                );
                if single {
                    return Err(ApiError::invalid(message));
                }
                invalid.push(serde_json::json!({"index": index, "prediction_id": item.prediction_id, "message": message}));
                continue;
            }
            None => item
                .labels
                .iter()
                .enumerate()
                .map(|(r, l)| (r as i64, l))
                .collect(),
        };
        if let Some(&(row, _)) = targets.iter().find(|(row, _)| *row >= rows) {
            let message = format!(
                "prediction {} has {rows} row(s); there is no row {row}",
                item.prediction_id
            );
            if single {
                return Err(ApiError::invalid(message));
            }
            invalid.push(serde_json::json!({"index": index, "prediction_id": item.prediction_id, "message": message}));
            continue;
        }
        for (row, label) in targets {
            let outcome = &prediction.rows[row as usize];
            records.push(FeedbackRecord {
                prediction_id: item.prediction_id.clone(),
                row_index: row,
                label: label.to_string(),
                outcome: serde_json::to_string(outcome).expect("outcomes serialise"),
                model: model_key(&prediction.model),
                arm: prediction.arm.to_string(),
                predicted_at: prediction.time_us,
                received_at,
            });
        }
    }
    if single && !unknown.is_empty() {
        return Err(ApiError::not_found(format!(
            "Prediction '{}' of deployment '{name}' is unknown: it was not served by this deployment, or it is older than the prediction log",
            unknown[0]
        )));
    }
    // The last label sent for a row wins within one request too.
    let mut last: HashMap<(String, i64), usize> = HashMap::new();
    for (at, record) in records.iter().enumerate() {
        last.insert((record.prediction_id.clone(), record.row_index), at);
    }
    let mut keep: Vec<usize> = last.into_values().collect();
    keep.sort_unstable();
    let records: Vec<FeedbackRecord> = keep.into_iter().map(|at| records[at].clone()).collect();
    let write = state.store().upsert_feedback(&name, &records).await?;
    let unknown_count = unknown.len();
    unknown.truncate(MAX_ECHOED);
    Ok((
        StatusCode::OK,
        Json(serde_json::json!({
            "deployment": name,
            "received": raw_items.len(),
            "labelled_rows": records.len(),
            "inserted": write.inserted,
            "updated": write.updated,
            "unchanged": write.unchanged,
            "unknown_count": unknown_count,
            "unknown": unknown,
            "invalid": invalid,
        })),
    ))
}

/// The predictions behind `ids`: from memory, from labels already stored,
/// then from the prediction log.
async fn find_predictions(
    state: &AppState,
    serving: &crate::serving::Serving,
    deployment: &str,
    ids: &[String],
) -> ApiResult<HashMap<String, IndexedPrediction>> {
    let index = serving.feedback_index();
    let as_str: Vec<&str> = ids.iter().map(String::as_str).collect();
    let mut found = index.lookup(deployment, &as_str);
    if found.len() < ids.len() {
        // Answers of the last moments may still be on their way to the index.
        serving.flush_log().await;
        found = index.lookup(deployment, &as_str);
    }
    if found.len() < ids.len() {
        let missing: Vec<String> = ids
            .iter()
            .filter(|id| !found.contains_key(*id))
            .cloned()
            .collect();
        let stored = state.store().feedback_for(deployment, &missing).await?;
        for record in stored {
            let Ok(outcome) = serde_json::from_str(&record.outcome) else {
                continue;
            };
            let entry = found
                .entry(record.prediction_id.clone())
                .or_insert_with(|| stored_prediction(deployment, &record));
            let row = record.row_index.max(0) as usize;
            if entry.rows.len() <= row {
                entry.rows.resize(row + 1, Default::default());
            }
            entry.rows[row] = outcome;
        }
    }
    if found.len() < ids.len() {
        if let Source::Local { artifacts, .. } = serving.source() {
            let missing: HashSet<String> = ids
                .iter()
                .filter(|id| !found.contains_key(*id))
                .cloned()
                .collect();
            for (id, prediction) in find_in_log(artifacts, deployment, &missing).await {
                found.entry(id).or_insert(prediction);
            }
        }
    }
    Ok(found)
}

/// A prediction rebuilt from a label stored for it earlier.
fn stored_prediction(deployment: &str, record: &FeedbackRecord) -> IndexedPrediction {
    let (name, version) = record
        .model
        .rsplit_once('/')
        .map(|(n, v)| (n.to_string(), v.parse().unwrap_or(0)))
        .unwrap_or_else(|| (record.model.clone(), 0));
    IndexedPrediction {
        deployment: deployment.into(),
        time_us: record.predicted_at,
        model: std::sync::Arc::new(sextant_core::ModelRef {
            name,
            version,
            alias: None,
        }),
        arm: record.arm.as_str().into(),
        rows: Vec::new(),
    }
}

#[derive(Deserialize, utoipa::IntoParams, Default)]
#[into_params(parameter_in = Query)]
pub(crate) struct PerformanceQuery {
    /// How far back: `30m`, `6h`, `7d` (default `1d`; at most 90 days).
    span: Option<String>,
    /// Window width: `5m`, `1h`, `1d` (default: the span split into about 24 windows, at least 5 minutes).
    window: Option<String>,
    /// `classification` or `regression`; default: inferred from labels and answers.
    task: Option<String>,
}

impl PerformanceQuery {
    /// The last hour in 5-minute windows, as alert rules read it.
    pub(crate) fn last_hour() -> PerformanceQuery {
        PerformanceQuery {
            span: Some("1h".into()),
            window: Some("5m".into()),
            task: None,
        }
    }
}

/// Labelled rows used as each version's reference (CBPE's calibration and
/// the label-drift baseline): its earliest-predicted ones.
pub const REFERENCE_LABELS: i64 = 2_000;
/// The longest span a performance report covers.
const MAX_PERFORMANCE_SPAN_US: i64 = 90 * 86_400 * 1_000_000;

/// Realised performance per model version and window, from the labels
/// received so far: metrics, label distribution and drift, label delay and
/// coverage, change points on the error stream, and (for binary
/// classifiers with probabilities) CBPE's label-free estimate per window
/// with the gap to the realised figure.
#[utoipa::path(get, path = "/api/v1/deployments/{name}/performance", tag = "monitoring",
    params(("name" = String, Path), PerformanceQuery),
    responses((status = 200, body = Object), (status = 400, body = sextant_api::v1::Error), (status = 404, body = sextant_api::v1::Error)))]
pub(crate) async fn performance(
    State(state): State<AppState>,
    Path(name): Path<String>,
    Query(query): Query<PerformanceQuery>,
) -> ApiResult<Json<serde_json::Value>> {
    state.store().get_deployment(&name).await?;
    let report = performance_of(&state, &name, &query).await?;
    Ok(Json(report))
}

/// The report behind `GET …/performance` (alert rules read it too).
pub(crate) async fn performance_of(
    state: &AppState,
    name: &str,
    query: &PerformanceQuery,
) -> ApiResult<serde_json::Value> {
    use sextant_monitor::performance::{
        performance_report, LabelledRow, PerformanceOptions, PredictedWindow, Task,
    };
    let span_us = match query.span.as_deref() {
        None => 86_400 * 1_000_000,
        Some(text) => duration_us(text, "span")?,
    };
    if span_us > MAX_PERFORMANCE_SPAN_US {
        return Err(ApiError::invalid("span is at most 90 days (90d)"));
    }
    let window_us = match query.window.as_deref() {
        None => (span_us / 24).max(crate::serving::feedback::WINDOW_US),
        Some(text) => duration_us(text, "window")?,
    };
    if span_us / window_us > 2_000 {
        return Err(ApiError::invalid(
            "span / window gives more than 2000 windows: widen the window",
        ));
    }
    let task = match query.task.as_deref() {
        None | Some("") => None,
        Some("classification") => Some(Task::Classification),
        Some("regression") => Some(Task::Regression),
        Some(other) => {
            return Err(ApiError::invalid(format!(
                "task '{other}' is not classification or regression"
            )))
        }
    };
    let to_us = now_micros() + 1;
    let from_us = to_us - span_us;
    let records = state.store().feedback_between(name, from_us, to_us).await?;
    let mut by_model: std::collections::BTreeMap<String, Vec<LabelledRow>> = Default::default();
    for record in &records {
        if let Some(row) = labelled_row(record) {
            by_model.entry(record.model.clone()).or_default().push(row);
        }
    }
    let serving = super::deployments::serving_state(state).ok();
    if let Some(serving) = &serving {
        for model in serving.feedback_index().models_of(name) {
            by_model.entry(model).or_default();
        }
    }
    let mut versions = Vec::new();
    for (model, rows) in by_model {
        let reference_records = state
            .store()
            .feedback_earliest(name, &model, REFERENCE_LABELS)
            .await?;
        let reference: Vec<LabelledRow> =
            reference_records.iter().filter_map(labelled_row).collect();
        let predicted: Vec<PredictedWindow> = serving
            .as_ref()
            .map(|s| s.feedback_index().windows(name, &model, from_us, to_us))
            .unwrap_or_default()
            .into_iter()
            .map(|(start_us, window)| PredictedWindow {
                start_us,
                rows: window.rows,
                scores: window.scores,
            })
            .collect();
        let options = PerformanceOptions {
            from_us,
            to_us,
            window_us,
            task,
        };
        let report = tokio::task::spawn_blocking(move || {
            performance_report(&rows, &reference, &predicted, &options)
        })
        .await
        .map_err(|_| ApiError::Internal("the performance report was interrupted".into()))?;
        let (model_name, version) = model.rsplit_once('/').unwrap_or((model.as_str(), ""));
        let task = report.task;
        let mut entry = serde_json::to_value(&report).expect("reports serialise");
        entry["model"] = serde_json::json!({"name": model_name, "version": version});
        if task == Task::Regression {
            let windows = DleWindows {
                from_us,
                to_us,
                window_us,
            };
            entry["estimated_regression"] =
                regression_estimates(state, name, &model, &reference_records, windows).await;
        }
        versions.push(entry);
    }
    Ok(serde_json::json!({
        "deployment": name,
        "from_us": from_us,
        "to_us": to_us,
        "window_seconds": window_us / 1_000_000,
        "versions": versions,
    }))
}

/// Rows of a window DLE estimates (an even sample beyond this).
const DLE_WINDOW_ROWS: usize = 5_000;

/// DLE nannies fitted per (deployment, model version), kept while the
/// version's reference labels stay the same: alert rules read performance
/// every minute, and refitting means reading the log and training trees.
#[derive(Default)]
pub(crate) struct NannyCache(std::sync::Mutex<HashMap<(String, String), Arc<Nanny>>>);

pub(crate) struct Nanny {
    /// Reference rows, latest prediction and latest label time.
    fingerprint: (usize, i64, i64),
    dle: sextant_stats::dle::Dle,
    features: Vec<String>,
    prediction: String,
}

#[derive(Clone, Copy)]
struct DleWindows {
    from_us: i64,
    to_us: i64,
    window_us: i64,
}

/// A logged table's numeric columns by name, and its keys.
struct LoggedColumns {
    features: Vec<(String, Vec<f64>)>,
    prediction: Option<(String, Vec<f64>)>,
    ids: Vec<Option<String>>,
    rows: Vec<f64>,
    times: Vec<f64>,
}

fn logged_columns(table: &sextant_monitor::dataset::Table) -> LoggedColumns {
    use sextant_monitor::dataset::ColumnValues;
    let prefix = crate::tables::KEY_PREFIX;
    let numeric = |name: &str| -> Option<Vec<f64>> {
        match &*table.column(name).ok()? {
            ColumnValues::Numeric { values, .. } => Some(values.clone()),
            ColumnValues::Boolean { codes } => Some(codes.iter().map(|&c| f64::from(c)).collect()),
            _ => None,
        }
    };
    let ids = table
        .column(&format!("{prefix}prediction_id"))
        .ok()
        .map(|column| match &*column {
            ColumnValues::Strings { codes, dictionary } => codes
                .iter()
                .map(|&c| dictionary.get(c as usize).cloned())
                .collect(),
            _ => Vec::new(),
        })
        .unwrap_or_default();
    let mut features = Vec::new();
    let mut prediction = None;
    for name in table.column_names() {
        if name.starts_with(prefix) {
            continue;
        }
        let Some(values) = numeric(name) else {
            continue;
        };
        if name.starts_with("output_") {
            // The first numeric output: a regressor's value.
            if prediction.is_none() {
                prediction = Some((name.clone(), values));
            }
        } else {
            features.push((name.clone(), values));
        }
    }
    LoggedColumns {
        features,
        prediction,
        ids,
        rows: numeric(&format!("{prefix}row")).unwrap_or_default(),
        times: numeric(&format!("{prefix}timestamp")).unwrap_or_default(),
    }
}

/// DLE for a regressor, from the prediction log: the nanny learns from the
/// version's earliest labelled rows joined to their logged inputs and
/// answers, then estimates MAE, MSE, RMSE and MAPE over each window's
/// logged rows, labelled or not. Numeric inputs only. Says why when it
/// cannot (no log, too few labelled rows found in it).
async fn regression_estimates(
    state: &AppState,
    deployment: &str,
    model: &str,
    reference: &[FeedbackRecord],
    windows: DleWindows,
) -> serde_json::Value {
    use sextant_stats::dle::MIN_REFERENCE_ROWS;

    let unavailable = |why: String| serde_json::json!({"method": "dle", "unavailable": why});
    let Some((model_name, version)) = model
        .rsplit_once('/')
        .and_then(|(n, v)| Some((n, v.parse::<i64>().ok()?)))
    else {
        return unavailable(format!("'{model}' is not a model version"));
    };
    let filter = crate::tables::LogFilter {
        model: Some(model_name),
        model_version: Some(version),
        keys: true,
    };
    let labels: HashMap<(&str, i64), f64> = reference
        .iter()
        .filter_map(|r| {
            let value = labelled_row(r)?.label_value?;
            Some(((r.prediction_id.as_str(), r.row_index), value))
        })
        .collect();
    if labels.len() < MIN_REFERENCE_ROWS {
        return unavailable(format!(
            "{} numeric labels; DLE needs at least {MIN_REFERENCE_ROWS}",
            labels.len()
        ));
    }
    let first = reference.iter().map(|r| r.predicted_at).min().unwrap_or(0);
    let last = reference.iter().map(|r| r.predicted_at).max().unwrap_or(0);
    let fingerprint = (
        reference.len(),
        last,
        reference.iter().map(|r| r.received_at).max().unwrap_or(0),
    );
    let key = (deployment.to_string(), model.to_string());
    let cached = state
        .nannies()
        .0
        .lock()
        .expect("nanny cache lock")
        .get(&key)
        .filter(|n| n.fingerprint == fingerprint)
        .cloned();
    let nanny = match cached {
        Some(nanny) => nanny,
        None => match fit_nanny(state, deployment, filter, &labels, first, last, fingerprint).await
        {
            Ok(nanny) => {
                let nanny = Arc::new(nanny);
                state
                    .nannies()
                    .0
                    .lock()
                    .expect("nanny cache lock")
                    .insert(key, nanny.clone());
                nanny
            }
            Err(why) => return unavailable(why),
        },
    };
    estimate_windows(state, deployment, filter, nanny, windows).await
}

/// Fits DLE's nanny on the reference labels joined to their logged rows.
async fn fit_nanny(
    state: &AppState,
    deployment: &str,
    filter: crate::tables::LogFilter<'_>,
    labels: &HashMap<(&str, i64), f64>,
    first: i64,
    last: i64,
    fingerprint: (usize, i64, i64),
) -> Result<Nanny, String> {
    use sextant_stats::dle::{Dle, MIN_REFERENCE_ROWS};
    use sextant_stats::gbdt::GbdtConfig;

    let unavailable = |why: String| Err::<Nanny, String>(why);
    let batches = match crate::tables::read_log(state, deployment, first, last + 1, filter).await {
        Ok(batches) => batches,
        Err(ApiError::User(_, why) | ApiError::Internal(why)) => {
            return unavailable(format!("the prediction log cannot be read: {why}"))
        }
    };
    let label_path = std::path::Path::new("reference rows");
    let logged = logged_columns(&sextant_monitor::dataset::Table::from_batches(
        label_path, &batches,
    ));
    let Some((prediction_name, predictions)) = &logged.prediction else {
        return unavailable("the prediction log has no numeric answers for this version".into());
    };
    let feature_names: Vec<String> = logged.features.iter().map(|(n, _)| n.clone()).collect();
    let mut joined: Vec<usize> = Vec::new();
    let mut targets = Vec::new();
    for i in 0..logged.ids.len() {
        let (Some(id), Some(&row)) = (&logged.ids[i], logged.rows.get(i)) else {
            continue;
        };
        if let Some(&target) = labels.get(&(id.as_str(), row as i64)) {
            joined.push(i);
            targets.push(target);
        }
    }
    if joined.len() < MIN_REFERENCE_ROWS {
        return unavailable(format!(
            "{} labelled rows were found in the prediction log; DLE needs at least {MIN_REFERENCE_ROWS}",
            joined.len()
        ));
    }
    let reference_features: Vec<Vec<f64>> = logged
        .features
        .iter()
        .map(|(_, values)| joined.iter().map(|&i| values[i]).collect())
        .collect();
    let reference_predictions: Vec<f64> = joined.iter().map(|&i| predictions[i]).collect();
    let fitted = tokio::task::spawn_blocking(move || {
        let columns: Vec<&[f64]> = reference_features.iter().map(Vec::as_slice).collect();
        Dle::fit(
            &columns,
            &reference_predictions,
            &targets,
            &GbdtConfig::LIGHTGBM,
        )
    })
    .await;
    match fitted {
        Ok(Ok(dle)) => Ok(Nanny {
            fingerprint,
            dle,
            features: feature_names,
            prediction: prediction_name.clone(),
        }),
        Ok(Err(err)) => Err(err.to_string()),
        Err(_) => Err("fitting was interrupted".into()),
    }
}

/// DLE's estimates over the span's windows, from the log.
async fn estimate_windows(
    state: &AppState,
    deployment: &str,
    filter: crate::tables::LogFilter<'_>,
    nanny: Arc<Nanny>,
    windows: DleWindows,
) -> serde_json::Value {
    use sextant_stats::dle::DleMetric;

    let unavailable = |why: String| serde_json::json!({"method": "dle", "unavailable": why});
    let (feature_names, prediction_name) = (nanny.features.clone(), nanny.prediction.clone());
    let batches =
        match crate::tables::read_log(state, deployment, windows.from_us, windows.to_us, filter)
            .await
        {
            Ok(batches) => batches,
            Err(ApiError::User(_, why) | ApiError::Internal(why)) => {
                return unavailable(format!("the prediction log cannot be read: {why}"))
            }
        };
    let current = logged_columns(&sextant_monitor::dataset::Table::from_batches(
        std::path::Path::new("window rows"),
        &batches,
    ));
    let Some((_, current_predictions)) = current.prediction.clone() else {
        return serde_json::json!({"method": "dle", "reference_rows": nanny.dle.reference_rows(), "features": feature_names, "prediction": prediction_name, "windows": []});
    };
    // The reference's features, by name; a feature the window lacks is missing.
    let columns: Vec<Vec<f64>> = feature_names
        .iter()
        .map(|name| {
            current
                .features
                .iter()
                .find(|(n, _)| n == name)
                .map(|(_, v)| v.clone())
                .unwrap_or_else(|| vec![f64::NAN; current_predictions.len()])
        })
        .collect();
    let times = current.times.clone();
    let feature_list = feature_names.clone();
    let estimates = tokio::task::spawn_blocking(move || {
        let estimate = |rows: &[usize]| -> serde_json::Value {
            // An even sample of at most DLE_WINDOW_ROWS rows.
            let step = rows.len().div_ceil(DLE_WINDOW_ROWS).max(1);
            let sample: Vec<usize> = rows.iter().copied().step_by(step).collect();
            let features: Vec<Vec<f64>> = columns
                .iter()
                .map(|c| sample.iter().map(|&i| c[i]).collect())
                .collect();
            let refs: Vec<&[f64]> = features.iter().map(Vec::as_slice).collect();
            let predictions: Vec<f64> = sample.iter().map(|&i| current_predictions[i]).collect();
            match nanny.dle.estimate(&refs, &predictions) {
                Ok(Some(estimate)) => {
                    let mut value = serde_json::json!({"rows": rows.len(), "estimated_rows": estimate.rows});
                    for metric in DleMetric::ALL {
                        if let Some(v) = estimate.get(metric) {
                            value[metric.name()] = serde_json::json!({"value": v.value, "sampling_error": v.sampling_error});
                        }
                    }
                    value
                }
                _ => serde_json::json!({"rows": rows.len()}),
            }
        };
        let all: Vec<usize> = (0..times.len()).collect();
        let overall = estimate(&all);
        // Rows by window, in one pass over the span's rows.
        let first = windows.from_us.div_euclid(windows.window_us) * windows.window_us;
        let count = usize::try_from((windows.to_us - first).div_euclid(windows.window_us) + 1)
            .unwrap_or(0);
        let mut by_window: Vec<Vec<usize>> = vec![Vec::new(); count];
        for (i, &time) in times.iter().enumerate() {
            let k = (time as i64 - first).div_euclid(windows.window_us);
            if let Some(rows) = usize::try_from(k).ok().and_then(|k| by_window.get_mut(k)) {
                rows.push(i);
            }
        }
        let mut out = Vec::new();
        let mut start = first;
        for rows in &by_window {
            if start >= windows.to_us {
                break;
            }
            let end = start + windows.window_us;
            let mut window = if rows.is_empty() {
                serde_json::json!({"rows": 0})
            } else {
                estimate(rows)
            };
            window["start_us"] = serde_json::json!(start);
            window["end_us"] = serde_json::json!(end);
            out.push(window);
            start = end;
        }
        (nanny.dle.reference_rows(), overall, out)
    })
    .await;
    match estimates {
        Ok((reference_rows, overall, windows)) => serde_json::json!({
            "method": "dle",
            "reference_rows": reference_rows,
            "features": feature_list,
            "prediction": prediction_name,
            "overall": overall,
            "windows": windows,
        }),
        Err(_) => unavailable("estimating was interrupted".into()),
    }
}

fn labelled_row(record: &FeedbackRecord) -> Option<sextant_monitor::performance::LabelledRow> {
    let label: serde_json::Value = serde_json::from_str(&record.label).ok()?;
    Some(sextant_monitor::performance::LabelledRow {
        predicted_at_us: record.predicted_at,
        received_at_us: record.received_at,
        label: label_text(&label)?,
        label_value: match &label {
            serde_json::Value::Number(n) => n.as_f64(),
            serde_json::Value::Bool(b) => Some(f64::from(u8::from(*b))),
            serde_json::Value::String(s) => s.trim().parse().ok(),
            _ => None,
        },
        outcome: serde_json::from_str(&record.outcome).ok()?,
    })
}

/// `30s`, `5m`, `2h`, `1d`, `2w` or seconds, in microseconds.
pub(crate) fn duration_us(text: &str, what: &str) -> ApiResult<i64> {
    let text = text.trim();
    let invalid = || {
        ApiError::invalid(format!(
            "{what} '{text}' is not a duration: use 30s, 5m, 1h, 1d, 2w or a number of seconds"
        ))
    };
    let (number, unit) = match text.char_indices().find(|(_, c)| c.is_ascii_alphabetic()) {
        Some((at, _)) => (&text[..at], &text[at..]),
        None => (text, "s"),
    };
    let number: i64 = number.trim().parse().map_err(|_| invalid())?;
    let seconds = match unit {
        "s" => Some(number),
        "m" => number.checked_mul(60),
        "h" => number.checked_mul(3600),
        "d" => number.checked_mul(86_400),
        "w" => number.checked_mul(7 * 86_400),
        _ => None,
    }
    .filter(|s| *s > 0 && *s <= 10 * 366 * 86_400)
    .ok_or_else(invalid)?;
    Ok(seconds * 1_000_000)
}
