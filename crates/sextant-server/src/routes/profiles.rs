//! Profiles (EDA) of stored dataset versions: what `sextant profile` prints,
//! answered by the server for the API and the web UI's dataset pages.
//!
//! A version's content never changes, so its profile is computed once and
//! kept beside it as the mergeable sketches (`Profile`), at
//! `_datasets/profiles/<name>/<digest>/<key>.json`: `profile` without a
//! target, `target-<sha256 of the column name>` with one. A push starts
//! the profile without a target in the background; any other is computed
//! on first request. Reports (summaries, comparisons, HTML) are cheap and
//! made from the stored sketches on every request.

use axum::body::Bytes;
use axum::extract::{Path, Query, State};
use axum::http::header;
use axum::response::{IntoResponse, Response};
use axum::Json;
use serde::Deserialize;
use sextant_artifacts::ArtifactPath;
use sextant_monitor::profile::{Profile, ProfileReport};
use sha2::{Digest, Sha256};
use utoipa::IntoParams;

use super::datasets::{get_version, stage_file, DatasetVersion};
use crate::error::{ApiError, ApiResult};
use crate::AppState;

/// One profile at a time: each already uses every core, and a queue keeps
/// a burst of pushes from starving the requests the server is answering.
static PROFILING: tokio::sync::Semaphore = tokio::sync::Semaphore::const_new(1);

/// The largest table the server profiles: it is read whole into memory.
const MAX_PROFILED_BYTES: u64 = 2 << 30;

#[derive(Debug, Default, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub(crate) struct ProfileQuery {
    /// The label column: each column's association with it.
    #[param(min_length = 1)]
    pub target: Option<String>,
    /// Another version to compare with: a version of the same dataset
    /// (`latest` or a digest) or `NAME@VERSION` of another.
    #[param(min_length = 1)]
    pub compare: Option<String>,
}

fn profile_path(name: &str, digest: &str, target: Option<&str>) -> ApiResult<ArtifactPath> {
    let hex = digest.strip_prefix("sha256:").unwrap_or(digest);
    let key = match target {
        None => "profile".to_string(),
        Some(column) => format!("target-{}", super::datasets::hex(&Sha256::digest(column))),
    };
    Ok(ArtifactPath::parse(&format!(
        "_datasets/profiles/{name}/{hex}/{key}.json"
    ))?)
}

/// A stored profile is a few sketches per column; one larger than this is
/// not one the server wrote, and is computed again rather than read.
const MAX_STORED_PROFILE_BYTES: u64 = 256 << 20;

async fn read_stored(state: &AppState, path: &ArtifactPath) -> Option<Profile> {
    let bytes = state
        .artifacts()
        .get_bytes(path, MAX_STORED_PROFILE_BYTES)
        .await
        .ok()?;
    serde_json::from_slice(&bytes).ok()
}

/// The version `wanted` of `name` and its profile, computed and stored
/// when it is not yet.
pub(crate) async fn profile_of(
    state: &AppState,
    name: &str,
    wanted: &str,
    target: Option<&str>,
) -> ApiResult<(DatasetVersion, Profile)> {
    let Json(version) = get_version(
        State(state.clone()),
        Path((name.to_string(), wanted.to_string())),
    )
    .await?;
    let path = profile_path(name, &version.digest, target)?;
    if let Some(profile) = read_stored(state, &path).await {
        return Ok((version, profile));
    }
    if version.bytes > MAX_PROFILED_BYTES {
        return Err(ApiError::invalid(format!(
            "dataset '{name}' version {} is {} MiB; the server profiles tables of at most {} MiB \
             (it holds the table in memory): run `sextant profile` on a copy",
            short(&version.digest),
            version.bytes >> 20,
            MAX_PROFILED_BYTES >> 20
        )));
    }
    let _turn = PROFILING
        .acquire()
        .await
        .map_err(|_| ApiError::Internal("the profiling queue is closed".into()))?;
    // Another request may have made it while this one waited.
    if let Some(profile) = read_stored(state, &path).await {
        return Ok((version, profile));
    }
    let staged = stage_file(state, name, &version.digest).await?;
    // Errors name the file; the staged copy's path means nothing to the caller.
    let staged_name = staged.display().to_string();
    let column = target.map(str::to_string);
    let profile = tokio::task::spawn_blocking(move || {
        let table =
            sextant_monitor::dataset::Table::open_bounded(&staged, crate::tables::MAX_TABLE_BYTES)?;
        Profile::of(&table, column.as_deref())
    })
    .await
    .map_err(|e| ApiError::Internal(format!("profiling stopped: {e}")))?
    .map_err(|e| {
        ApiError::invalid(format!(
            "dataset '{name}' version {} cannot be profiled: {}",
            short(&version.digest),
            e.to_string().replace(&staged_name, &version.source)
        ))
    })?;
    let json = serde_json::to_vec(&profile).map_err(|e| ApiError::Internal(e.to_string()))?;
    let stream = futures::stream::once(async move { Ok::<_, std::io::Error>(Bytes::from(json)) });
    state.artifacts().put(&path, stream).await?;
    Ok((version, profile))
}

/// Starts the profile of a version just pushed, so its page has it at once.
/// A file that is not a table simply has none; asking says why.
pub(crate) fn profile_in_background(state: AppState, name: String, digest: String) {
    tokio::spawn(async move {
        if let Err(err) = profile_of(&state, &name, &digest, None).await {
            tracing::debug!(dataset = %name, %digest, "no profile: {err:?}");
        }
    });
}

/// The report of a version's profile, compared with another when asked.
pub(crate) async fn report(
    state: &AppState,
    name: &str,
    wanted: &str,
    query: &ProfileQuery,
) -> ApiResult<ProfileReport> {
    let target = query.target.as_deref().filter(|t| !t.is_empty());
    let (version, profile) = profile_of(state, name, wanted, target).await?;
    let other = match query.compare.as_deref().filter(|c| !c.is_empty()) {
        None => None,
        Some(compare) => {
            let (other_name, other_version) = compare.split_once('@').unwrap_or((name, compare));
            let (found, other) = profile_of(state, other_name, other_version, None).await?;
            Some((format!("{other_name}@{}", short(&found.digest)), other))
        }
    };
    Ok(ProfileReport::new(
        &format!("{name}@{}", short(&version.digest)),
        &profile,
        other.as_ref().map(|(label, p)| (label.as_str(), p)),
    ))
}

/// The first 12 hexadecimal digits of a `sha256:` digest, as `datasets list` shows them.
fn short(digest: &str) -> &str {
    let hex = digest.strip_prefix("sha256:").unwrap_or(digest);
    hex.get(..12).unwrap_or(hex)
}

/// A stored version's profile (EDA): per column type, missing values,
/// distinct count, moments, quantiles, histogram or top categories, zeros
/// and outliers; duplicate rows, constant columns, correlations; with
/// `target`, each column's association with it; with `compare`, the
/// differences from another version. What `sextant profile --format json`
/// prints for the same file.
#[utoipa::path(get, path = "/api/v1/datasets/{name}/versions/{version}/profile", tag = "lineage",
    params(super::datasets::VersionPath, ProfileQuery),
    responses((status = 200, description = "The profile report (as `sextant profile --format json`)"),
        (status = 400, body = sextant_api::v1::Error), (status = 404, body = sextant_api::v1::Error)))]
pub(crate) async fn get_profile(
    State(state): State<AppState>,
    Path((name, version)): Path<(String, String)>,
    Query(query): Query<ProfileQuery>,
) -> ApiResult<Json<ProfileReport>> {
    Ok(Json(report(&state, &name, &version, &query).await?))
}

/// The same profile as a self-contained HTML page (no script).
#[utoipa::path(get, path = "/api/v1/datasets/{name}/versions/{version}/profile.html", tag = "lineage",
    params(super::datasets::VersionPath, ProfileQuery),
    responses((status = 200, description = "A self-contained HTML page", content_type = "text/html"),
        (status = 400, body = sextant_api::v1::Error), (status = 404, body = sextant_api::v1::Error)))]
pub(crate) async fn get_profile_html(
    State(state): State<AppState>,
    Path((name, version)): Path<(String, String)>,
    Query(query): Query<ProfileQuery>,
) -> ApiResult<Response> {
    let report = report(&state, &name, &version, &query).await?;
    Ok((
        [
            (header::CONTENT_TYPE, "text/html; charset=utf-8"),
            // The page has no script; it may not run any.
            (
                header::CONTENT_SECURITY_POLICY,
                "default-src 'none'; style-src 'unsafe-inline'; frame-ancestors 'self'",
            ),
        ],
        report.to_html(),
    )
        .into_response())
}
