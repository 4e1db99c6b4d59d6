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
use crate::AppState;

/// The largest reference table accepted in one upload.
const MAX_REFERENCE_BYTES: usize = 1 << 30;
/// The longest span a report merges (the windows kept: a day of 5 minutes).
const MAX_SPAN: Duration = Duration::from_secs(24 * 3600);

#[derive(Deserialize, utoipa::IntoParams)]
pub(crate) struct ReferenceQuery {
    /// Feature columns (comma-separated); default: every column but the prediction.
    features: Option<String>,
    /// The model's output column in the table, for prediction drift.
    prediction: Option<String>,
}

/// Sets a deployment's reference: the table (CSV or Parquet, in the body)
/// the live traffic of every model version is compared with.
#[utoipa::path(put, path = "/api/v1/deployments/{name}/monitoring/reference", tag = "monitoring",
    params(("name" = String, Path), ReferenceQuery),
    request_body(content = Vec<u8>, content_type = "application/octet-stream"),
    responses((status = 200, body = Object), (status = 400, body = sextant_api::v1::Error), (status = 404, body = sextant_api::v1::Error)))]
pub(crate) async fn put_reference(
    State(state): State<AppState>,
    Path(name): Path<String>,
    Query(query): Query<ReferenceQuery>,
    body: Body,
) -> ApiResult<Json<serde_json::Value>> {
    state.store().get_deployment(&name).await?;
    let serving = super::deployments::serving_state(&state)?;
    let bytes = read_body(body).await?;
    if bytes.is_empty() {
        return Err(ApiError::invalid(
            "send the reference table (CSV with a header row, or Parquet) as the request body",
        ));
    }
    let is_parquet = bytes.starts_with(b"PAR1");
    let extension = if is_parquet { "parquet" } else { "csv" };
    let features: Option<Vec<String>> = query.features.as_deref().map(|list| {
        list.split(',')
            .map(str::trim)
            .filter(|s| !s.is_empty())
            .map(str::to_string)
            .collect()
    });
    let prediction = query.prediction.clone();
    let table_bytes = bytes.clone();
    let profile = tokio::task::spawn_blocking(move || -> Result<_, String> {
        let file = tempfile::Builder::new()
            .suffix(&format!(".{extension}"))
            .tempfile()
            .map_err(|e| format!("cannot stage the table: {e}"))?;
        std::fs::write(file.path(), &table_bytes)
            .map_err(|e| format!("cannot stage the table: {e}"))?;
        let table = sextant_monitor::dataset::Table::open(file.path()).map_err(|e| {
            // The staging file's name means nothing to the caller.
            e.to_string()
                .replace(&file.path().display().to_string(), "the uploaded table")
        })?;
        sextant_monitor::live::ReferenceProfile::from_table(
            &table,
            features.as_deref(),
            prediction.as_deref(),
        )
        .map_err(|e| e.to_string())
    })
    .await
    .map_err(|_| ApiError::Internal("building the profile was interrupted".into()))?
    .map_err(ApiError::invalid)?;

    let stored = Arc::new(StoredProfile {
        source: ReferenceSource {
            kind: "upload".into(),
            description: format!("reference.{extension} ({} bytes)", bytes.len()),
            created_us: now_micros(),
        },
        profile,
    });
    let reference_path = ArtifactPath::parse(&format!("monitoring/{name}/reference.{extension}"))?;
    state
        .artifacts()
        .put(
            &reference_path,
            futures::stream::once(async move { Ok::<_, std::convert::Infallible>(bytes) }),
        )
        .await?;
    serving.store_profile(&name, &stored).await;
    let monitor = serving.monitor_or_create(&name);
    monitor.set_profile(Some(stored.clone()));
    Ok(Json(reference_json(&stored, &reference_path)))
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
    let versions: Vec<serde_json::Value> = monitor
        .versions()
        .iter()
        .map(|version| version_json(version, "report", version.report(now, span)))
        .collect();
    Ok(Json(serde_json::json!({
        "deployment": name,
        "reference": reference,
        "collecting": profile.is_none().then(|| serde_json::json!({"rows": monitor.collected_rows(), "of": REFERENCE_WINDOW_ROWS})),
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
