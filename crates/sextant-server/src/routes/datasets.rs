//! Datasets by content: `sextant datasets push` cuts files into
//! content-defined chunks, uploads the chunks the store lacks, then records a
//! version: the files, each as its ordered chunks. Chunks are stored once
//! under their SHA-256 whatever dataset or version they belong to, so a new
//! version of a large file costs only the chunks that changed.
//!
//! A version's digest is its content's: a file's SHA-256, or for a
//! directory the SHA-256 of its sorted `path\tsha256\n` lines (what
//! `sextant exec --input` records, so a run's input and a stored version
//! name each other). The server checks every chunk's hash when it is
//! uploaded and that every chunk of a version exists before recording it;
//! `pull` checks them again on the way back.
//!
//! Layout in the artifact store: `_datasets/chunks/<aa>/<sha256>` and
//! `_datasets/versions/<name>/<digest>.json`.

use axum::body::{Body, Bytes};
use axum::extract::{Path, State};
use axum::http::header;
use axum::response::{IntoResponse, Response};
use axum::Json;
use futures::StreamExt;
use serde::{Deserialize, Serialize};
use sextant_api::ErrorCode;
use sextant_artifacts::ArtifactPath;
use sha2::{Digest, Sha256};
use utoipa::{IntoParams, ToSchema};

use crate::error::{ApiError, ApiResult};
use crate::extract::MlflowRequest;
use crate::AppState;

/// The largest chunk accepted (`push` cuts at most 4 MiB).
pub(crate) const MAX_CHUNK_BYTES: usize = 16 * 1024 * 1024;
/// Chunks asked about at once.
const MAX_QUERY_CHUNKS: usize = 10_000;

#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub(crate) struct DatasetFile {
    /// Relative path inside the dataset ("" for a single file).
    pub path: String,
    pub bytes: u64,
    pub sha256: String,
    /// `[sha256, bytes]` per chunk, in order.
    #[schema(value_type = Vec<Vec<String>>)]
    pub chunks: Vec<(String, u64)>,
}

#[derive(Debug, Deserialize, ToSchema)]
pub(crate) struct NewVersion {
    /// `file` or `directory`.
    pub kind: String,
    pub files: Vec<DatasetFile>,
    /// Where it was pushed from, for people (a path, a URL).
    #[serde(default)]
    pub source: String,
}

/// A stored version.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub(crate) struct DatasetVersion {
    pub name: String,
    /// `sha256:<hex>`.
    pub digest: String,
    pub kind: String,
    pub bytes: u64,
    pub files: Vec<DatasetFile>,
    pub source: String,
    pub created_at: i64,
    pub created_by: String,
}

#[derive(Debug, Deserialize, ToSchema)]
pub(crate) struct ChunkQuery {
    #[schema(value_type = Vec<Sha256Hex>, max_items = 10000)]
    pub chunks: Vec<String>,
}

/// A SHA-256 in lowercase hex (for the OpenAPI document).
#[derive(Debug, ToSchema)]
#[schema(pattern = "^[0-9a-f]{64}$")]
#[allow(dead_code)]
pub(crate) struct Sha256Hex(String);

/// A chunk's name (for the OpenAPI document).
#[derive(Debug, IntoParams)]
#[into_params(parameter_in = Path)]
#[allow(dead_code)]
pub(crate) struct ChunkPath {
    #[param(pattern = "^[0-9a-f]{64}$")]
    sha256: String,
}

/// A dataset version's place (for the OpenAPI document).
#[derive(Debug, IntoParams)]
#[into_params(parameter_in = Path)]
#[allow(dead_code)]
pub(crate) struct VersionPath {
    #[param(pattern = r"^[A-Za-z0-9_\-][A-Za-z0-9_.\-]{0,127}$")]
    name: String,
    /// `latest`, or a digest (`sha256:<hex>`, the hex, or 8 of its first digits).
    #[param(pattern = "^(latest|(sha256:)?[0-9a-f]{8,64})$")]
    version: String,
}

/// A dataset's name (for the OpenAPI document).
#[derive(Debug, IntoParams)]
#[into_params(parameter_in = Path)]
#[allow(dead_code)]
pub(crate) struct NamePath {
    #[param(pattern = r"^[A-Za-z0-9_\-][A-Za-z0-9_.\-]{0,127}$")]
    name: String,
}

fn is_sha256(text: &str) -> bool {
    text.len() == 64 && text.bytes().all(|b| matches!(b, b'0'..=b'9' | b'a'..=b'f'))
}

pub(crate) fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

fn check_name(name: &str) -> ApiResult<()> {
    let ok = !name.is_empty()
        && name.len() <= 128
        && !name.starts_with('.')
        && name != "chunks"
        && name
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_' | b'.'));
    if ok {
        Ok(())
    } else {
        Err(ApiError::invalid(format!(
            "'{name}' is not a dataset name: 1 to 128 letters, digits, '-', '_' or '.', not starting with '.', and not 'chunks'"
        )))
    }
}

fn chunk_path(sha256: &str) -> ArtifactPath {
    ArtifactPath::parse(&format!("_datasets/chunks/{}/{sha256}", &sha256[..2]))
        .expect("hex digits make a valid path")
}

fn version_path(name: &str, digest_hex: &str) -> ArtifactPath {
    ArtifactPath::parse(&format!("_datasets/versions/{name}/{digest_hex}.json"))
        .expect("checked names make a valid path")
}

/// The digest of a version's files (see the module's documentation).
pub(crate) fn content_digest(kind: &str, files: &[DatasetFile]) -> String {
    if kind == "file" {
        return files.first().map(|f| f.sha256.clone()).unwrap_or_default();
    }
    let mut listing = String::new();
    for file in files {
        listing.push_str(&format!("{}\t{}\n", file.path, file.sha256));
    }
    hex(&Sha256::digest(listing.as_bytes()))
}

async fn exists(state: &AppState, path: &ArtifactPath) -> bool {
    state.artifacts().exists(path).await.unwrap_or(false)
}

/// Which of the given chunks the store lacks.
#[utoipa::path(post, path = "/api/v1/datasets/chunks/missing", tag = "lineage", request_body = ChunkQuery,
    responses((status = 200, description = "{\"missing\": [sha256…]}")))]
pub(crate) async fn missing_chunks(
    State(state): State<AppState>,
    MlflowRequest(query): MlflowRequest<ChunkQuery>,
) -> ApiResult<Json<serde_json::Value>> {
    if query.chunks.len() > MAX_QUERY_CHUNKS {
        return Err(ApiError::invalid(format!(
            "at most {MAX_QUERY_CHUNKS} chunks per question"
        )));
    }
    if let Some(bad) = query.chunks.iter().find(|c| !is_sha256(c)) {
        return Err(ApiError::invalid(format!(
            "'{bad}' is not a SHA-256 (64 lowercase hexadecimal digits)"
        )));
    }
    let checks = futures::stream::iter(query.chunks.iter().cloned())
        .map(|sha| {
            let state = state.clone();
            async move { (!exists(&state, &chunk_path(&sha)).await).then_some(sha) }
        })
        .buffered(16)
        .filter_map(|missing| async move { missing })
        .collect::<Vec<_>>()
        .await;
    Ok(Json(serde_json::json!({ "missing": checks })))
}

/// Stores a chunk under its SHA-256, which must be the body's.
#[utoipa::path(put, path = "/api/v1/datasets/chunks/{sha256}", tag = "lineage", params(ChunkPath),
    request_body(content = Vec<u8>, content_type = "application/octet-stream"),
    responses((status = 200, description = "Stored (or already there)"), (status = 400, body = sextant_api::v1::Error)))]
pub(crate) async fn put_chunk(
    State(state): State<AppState>,
    Path(sha256): Path<String>,
    body: Bytes,
) -> ApiResult<Json<serde_json::Value>> {
    if !is_sha256(&sha256) {
        return Err(ApiError::invalid(format!(
            "'{sha256}' is not a SHA-256 (64 lowercase hexadecimal digits)"
        )));
    }
    if body.len() > MAX_CHUNK_BYTES {
        return Err(ApiError::invalid(format!(
            "a chunk is at most {MAX_CHUNK_BYTES} bytes"
        )));
    }
    let actual = hex(&Sha256::digest(&body));
    if actual != sha256 {
        return Err(ApiError::invalid(format!(
            "the chunk's bytes hash to {actual}, not {sha256}"
        )));
    }
    let path = chunk_path(&sha256);
    if !exists(&state, &path).await {
        let size = body.len();
        let stream = futures::stream::once(async move { Ok::<_, std::io::Error>(body) });
        state.artifacts().put(&path, stream).await?;
        return Ok(Json(serde_json::json!({"stored": size})));
    }
    Ok(Json(serde_json::json!({"stored": 0})))
}

/// A chunk's bytes.
#[utoipa::path(get, path = "/api/v1/datasets/chunks/{sha256}", tag = "lineage", params(ChunkPath),
    responses((status = 200, content_type = "application/octet-stream"), (status = 404, body = sextant_api::v1::Error)))]
pub(crate) async fn get_chunk(
    State(state): State<AppState>,
    Path(sha256): Path<String>,
) -> ApiResult<Response> {
    if !is_sha256(&sha256) {
        return Err(ApiError::invalid(format!(
            "'{sha256}' is not a SHA-256 (64 lowercase hexadecimal digits)"
        )));
    }
    let download = state
        .artifacts()
        .get(&chunk_path(&sha256))
        .await
        .map_err(|_| ApiError::not_found(format!("no chunk {sha256}")))?;
    Ok((
        [
            (header::CONTENT_TYPE, "application/octet-stream".to_string()),
            (header::CONTENT_LENGTH, download.size.to_string()),
        ],
        Body::from_stream(download.body),
    )
        .into_response())
}

/// Records a version once every chunk of it is stored.
#[utoipa::path(post, path = "/api/v1/datasets/{name}/versions", tag = "lineage", params(NamePath),
    request_body = NewVersion,
    responses((status = 200, body = DatasetVersion), (status = 400, body = sextant_api::v1::Error)))]
pub(crate) async fn create_version(
    State(state): State<AppState>,
    principal: Option<axum::Extension<sextant_governance::Principal>>,
    Path(name): Path<String>,
    MlflowRequest(request): MlflowRequest<NewVersion>,
) -> ApiResult<Json<DatasetVersion>> {
    check_name(&name)?;
    match request.kind.as_str() {
        "file" if request.files.len() == 1 => {}
        "file" => return Err(ApiError::invalid("a file dataset has exactly one file")),
        "directory" => {}
        other => {
            return Err(ApiError::invalid(format!(
                "kind is 'file' or 'directory', not '{other}'"
            )))
        }
    }
    let mut bytes = 0u64;
    let mut previous: Option<&str> = None;
    for file in &request.files {
        if request.kind == "directory"
            && (file.path.is_empty()
                || file.path.starts_with('/')
                || file
                    .path
                    .split('/')
                    .any(|p| p == ".." || p == "." || p.is_empty()))
        {
            return Err(ApiError::invalid(format!(
                "'{}' is not a relative path inside the dataset",
                file.path
            )));
        }
        if previous.is_some_and(|p| p >= file.path.as_str()) {
            return Err(ApiError::invalid("files must be sorted by path, each once"));
        }
        previous = Some(&file.path);
        if !is_sha256(&file.sha256) {
            return Err(ApiError::invalid(format!(
                "file '{}': sha256 is not 64 lowercase hexadecimal digits",
                file.path
            )));
        }
        let chunked = file
            .chunks
            .iter()
            .try_fold(0u64, |total, (_, size)| total.checked_add(*size))
            .ok_or_else(|| {
                ApiError::invalid(format!("file '{}': its chunks' sizes overflow", file.path))
            })?;
        if chunked != file.bytes {
            return Err(ApiError::invalid(format!(
                "file '{}': its chunks add up to {chunked} bytes, not {}",
                file.path, file.bytes
            )));
        }
        bytes = bytes
            .checked_add(file.bytes)
            .ok_or_else(|| ApiError::invalid("the files' sizes overflow"))?;
    }
    let all_chunks: Vec<String> = request
        .files
        .iter()
        .flat_map(|f| f.chunks.iter().map(|(sha, _)| sha.clone()))
        .collect();
    if let Some(bad) = all_chunks.iter().find(|c| !is_sha256(c)) {
        return Err(ApiError::invalid(format!("'{bad}' is not a SHA-256")));
    }
    // Each chunk once, with the size the record claims for it: a chunk is
    // stored under its content's hash, so one chunk has one size.
    let mut claimed: Vec<(String, u64)> = request
        .files
        .iter()
        .flat_map(|f| f.chunks.iter().cloned())
        .collect();
    claimed.sort();
    claimed.dedup();
    if let Some(pair) = claimed.windows(2).find(|pair| pair[0].0 == pair[1].0) {
        return Err(ApiError::invalid(format!(
            "chunk {} is listed with two sizes",
            pair[0].0
        )));
    }
    let stored_sizes: Vec<(String, u64, ApiResult<Option<u64>>)> = futures::stream::iter(claimed)
        .map(|(sha, size)| {
            let state = state.clone();
            async move {
                let stored = state.artifacts().size(&chunk_path(&sha)).await;
                (sha, size, stored.map_err(ApiError::from))
            }
        })
        .buffered(16)
        .collect()
        .await;
    let mut absent = Vec::new();
    for (sha, size, stored) in stored_sizes {
        match stored? {
            None => absent.push(sha),
            // The sizes bound what profiling and validation stage: they
            // must be the chunks' own.
            Some(actual) if actual != size => {
                return Err(ApiError::invalid(format!(
                    "chunk {sha} holds {actual} bytes, not {size}"
                )))
            }
            Some(_) => {}
        }
    }
    if let Some(first) = absent.first() {
        return Err(ApiError::invalid(format!(
            "{} chunks of this version are not stored (the first: {first}); upload them first",
            absent.len()
        )));
    }
    // A name belongs to whoever pushed its first version: specs and runs
    // name a dataset's latest version, and another user's push would
    // replace the data their quality gate judges.
    if let Some(axum::Extension(sextant_governance::Principal::User(caller))) = &principal {
        if !caller.is_admin {
            let versions = versions_of(&state, &name).await?;
            // Newest first: the last is the first pushed.
            let owner = versions.last().map(|v| v.created_by.as_str());
            let pushed_before = versions.iter().any(|v| v.created_by == caller.username);
            if let (Some(owner), false) = (owner, pushed_before) {
                return Err(ApiError::User(
                    ErrorCode::PermissionDenied,
                    format!(
                        "Permission denied: dataset '{name}' is {owner}'s; push under another name"
                    ),
                ));
            }
        }
    }
    let digest_hex = content_digest(&request.kind, &request.files);
    let path = version_path(&name, &digest_hex);
    if let Ok(existing) = read_version(&state, &path).await {
        return Ok(Json(existing));
    }
    let version = DatasetVersion {
        name,
        digest: format!("sha256:{digest_hex}"),
        kind: request.kind,
        bytes,
        files: request.files,
        source: request.source,
        created_at: sextant_governance::now_ms(),
        created_by: principal.map_or("-".into(), |p| p.0.name().to_string()),
    };
    let json = serde_json::to_vec(&version).map_err(|e| ApiError::invalid(e.to_string()))?;
    let stream = futures::stream::once(async move { Ok::<_, std::io::Error>(Bytes::from(json)) });
    state.artifacts().put(&path, stream).await?;
    super::profiles::profile_in_background(
        state.clone(),
        version.name.clone(),
        version.digest.clone(),
    );
    Ok(Json(version))
}

/// A version record lists its chunks' hashes: about 1 MiB for a 100 GiB
/// table, so this bounds what one unreadable record can cost.
const MAX_VERSION_RECORD_BYTES: u64 = 64 << 20;

async fn read_version(state: &AppState, path: &ArtifactPath) -> ApiResult<DatasetVersion> {
    let bytes = state
        .artifacts()
        .get_bytes(path, MAX_VERSION_RECORD_BYTES)
        .await?;
    serde_json::from_slice(&bytes)
        .map_err(|e| ApiError::invalid(format!("a stored dataset version is unreadable: {e}")))
}

/// Every version of a dataset, newest first.
pub(crate) async fn versions_of(state: &AppState, name: &str) -> ApiResult<Vec<DatasetVersion>> {
    let dir = ArtifactPath::parse(&format!("_datasets/versions/{name}"))?;
    let mut versions = Vec::new();
    for entry in state.artifacts().list(&dir).await? {
        if entry.is_dir || !entry.path.ends_with(".json") {
            continue;
        }
        let path = ArtifactPath::parse(&format!("_datasets/versions/{name}/{}", entry.path))?;
        versions.push(read_version(state, &path).await?);
    }
    versions.sort_by(|a, b| b.created_at.cmp(&a.created_at));
    Ok(versions)
}

/// Datasets with their versions (without the chunk lists), newest first.
#[utoipa::path(get, path = "/api/v1/datasets", tag = "lineage",
    responses((status = 200, description = "{\"datasets\": [{name, versions: [...]}]}")))]
pub(crate) async fn list(State(state): State<AppState>) -> ApiResult<Json<serde_json::Value>> {
    let datasets: Vec<serde_json::Value> = all_datasets(&state)
        .await?
        .into_iter()
        .map(|(name, versions)| {
            serde_json::json!({
                "name": name,
                "versions": versions.iter().map(summary).collect::<Vec<_>>(),
            })
        })
        .collect();
    Ok(Json(serde_json::json!({ "datasets": datasets })))
}

/// Every dataset by name with its versions, newest first.
pub(crate) async fn all_datasets(
    state: &AppState,
) -> ApiResult<Vec<(String, Vec<DatasetVersion>)>> {
    let root = ArtifactPath::parse("_datasets/versions")?;
    let mut datasets = Vec::new();
    for entry in state.artifacts().list(&root).await? {
        if entry.is_dir {
            let versions = versions_of(state, &entry.path).await?;
            datasets.push((entry.path, versions));
        }
    }
    Ok(datasets)
}

fn summary(version: &DatasetVersion) -> serde_json::Value {
    serde_json::json!({
        "digest": version.digest,
        "kind": version.kind,
        "bytes": version.bytes,
        "files": version.files.len(),
        "chunks": version.files.iter().map(|f| f.chunks.len()).sum::<usize>(),
        "source": version.source,
        "created_at": version.created_at,
        "created_by": version.created_by,
    })
}

/// One version with its files and chunks: `latest`, or a digest
/// (`sha256:<hex>` or the hex alone, or a unique prefix of at least 8).
#[utoipa::path(get, path = "/api/v1/datasets/{name}/versions/{version}", tag = "lineage",
    params(VersionPath),
    responses((status = 200, body = DatasetVersion), (status = 404, body = sextant_api::v1::Error)))]
pub(crate) async fn get_version(
    State(state): State<AppState>,
    Path((name, version)): Path<(String, String)>,
) -> ApiResult<Json<DatasetVersion>> {
    if check_name(&name).is_err() {
        return Err(ApiError::not_found(format!("no dataset named '{name}'")));
    }
    let versions = versions_of(&state, &name).await?;
    if versions.is_empty() {
        return Err(ApiError::not_found(format!("no dataset named '{name}'")));
    }
    let wanted = version.strip_prefix("sha256:").unwrap_or(&version);
    if wanted == "latest" {
        return Ok(Json(versions.into_iter().next().expect("not empty")));
    }
    if wanted.len() < 8 {
        return Err(ApiError::invalid(
            "give at least 8 hexadecimal digits of the digest, or 'latest'",
        ));
    }
    let mut matching = versions
        .into_iter()
        .filter(|v| v.digest["sha256:".len()..].starts_with(wanted));
    match (matching.next(), matching.next()) {
        (Some(found), None) => Ok(Json(found)),
        (Some(_), Some(_)) => Err(ApiError::invalid(format!(
            "'{version}' matches several versions of '{name}': give more digits"
        ))),
        (None, _) => Err(ApiError::not_found(format!(
            "dataset '{name}' has no version {version}"
        ))),
    }
}

/// For each `sha256:<hex>` digest, the stored versions with that content
/// (`{name, digest}`), for lineage.
pub(crate) async fn versions_with_digests(
    state: &AppState,
    digests: &std::collections::BTreeSet<String>,
) -> ApiResult<std::collections::BTreeMap<String, Vec<serde_json::Value>>> {
    let mut found = std::collections::BTreeMap::new();
    let root = ArtifactPath::parse("_datasets/versions")?;
    for entry in state.artifacts().list(&root).await? {
        if !entry.is_dir {
            continue;
        }
        for digest in digests {
            let Some(hex) = digest.strip_prefix("sha256:").filter(|h| is_sha256(h)) else {
                continue;
            };
            if exists(state, &version_path(&entry.path, hex)).await {
                found
                    .entry(digest.clone())
                    .or_insert_with(Vec::new)
                    .push(serde_json::json!({"name": entry.path, "digest": digest}));
            }
        }
    }
    Ok(found)
}

/// A stored single-file dataset version (`latest` or a digest) written to a
/// temporary file, every chunk and the whole file checked against their
/// hashes; named with the pushed file's extension (CSV when it had none).
pub(crate) async fn stage_file(
    state: &AppState,
    name: &str,
    wanted: &str,
) -> ApiResult<tempfile::TempPath> {
    let Json(version) = get_version(
        State(state.clone()),
        Path((name.to_string(), wanted.to_string())),
    )
    .await?;
    let [file] = version.files.as_slice() else {
        return Err(ApiError::invalid(format!(
            "dataset '{name}' is a directory of {} files; a table is one file",
            version.files.len()
        )));
    };
    let staged = tempfile::Builder::new()
        .suffix(&sextant_monitor::dataset::format_suffix(&version.source))
        .tempfile()
        .map_err(|e| ApiError::Internal(format!("cannot stage a dataset: {e}")))?;
    let (handle, path) = staged.into_parts();
    let mut out = tokio::fs::File::from_std(handle);
    let mut whole = Sha256::new();
    // The record's size bounds what callers agreed to stage (a record from
    // before chunk sizes were checked may understate it): no more is written.
    let mut written = 0u64;
    for (sha, _) in &file.chunks {
        if !is_sha256(sha) {
            return Err(ApiError::invalid(format!(
                "dataset '{name}' lists a malformed chunk"
            )));
        }
        let download = state.artifacts().get(&chunk_path(sha)).await?;
        let mut body = download.body;
        let mut chunk = Sha256::new();
        while let Some(bytes) = body.next().await {
            let bytes = bytes?;
            written = written.saturating_add(bytes.len() as u64);
            if written > file.bytes {
                return Err(ApiError::invalid(format!(
                    "dataset '{name}': its chunks hold more than the {} bytes its record states",
                    file.bytes
                )));
            }
            chunk.update(&bytes);
            whole.update(&bytes);
            tokio::io::AsyncWriteExt::write_all(&mut out, &bytes)
                .await
                .map_err(|e| ApiError::Internal(format!("cannot stage a dataset: {e}")))?;
        }
        if hex(&chunk.finalize()) != *sha {
            return Err(ApiError::invalid(format!(
                "dataset '{name}': stored chunk {sha} does not match its hash"
            )));
        }
    }
    tokio::io::AsyncWriteExt::flush(&mut out)
        .await
        .map_err(|e| ApiError::Internal(format!("cannot stage a dataset: {e}")))?;
    if hex(&whole.finalize()) != file.sha256 {
        return Err(ApiError::invalid(format!(
            "dataset '{name}': the file does not match its hash"
        )));
    }
    Ok(path)
}
