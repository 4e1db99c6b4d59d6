//! Environment manifests of runs: what `sextant exec` captured about a
//! training run (code, packages, system, devices, container, command, data
//! hashes) is stored as a run artifact, and its SHA-256 is put in the audit
//! log when recorded. The audit chain cannot be edited unseen, so checking a
//! manifest is comparing the artifact's bytes with the hash recorded there:
//! an edited or replaced manifest shows.

use axum::extract::State;
use axum::{Extension, Json};
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};
use utoipa::{IntoParams, ToSchema};

use crate::error::{ApiError, ApiResult};
use crate::extract::MlflowRequest;
use crate::guard::AuditNote;
use crate::AppState;

/// Where `sextant exec` stores the manifest among the run's artifacts.
pub(crate) const MANIFEST_ARTIFACT: &str = "sextant/environment.json";

/// The action of a recorded manifest's audit entry (its request path).
const ACTION: &str = "/api/v1/run-manifests";
/// Manifests are a few hundred kilobytes; this bounds what a check reads.
const MAX_MANIFEST_BYTES: u64 = 64 * 1024 * 1024;

/// A manifest to record (what the OpenAPI document shows).
#[derive(Debug, ToSchema)]
#[allow(dead_code)]
pub(crate) struct RecordManifest {
    #[schema(pattern = "^[0-9a-f]{32}$")]
    pub run_id: String,
    /// The manifest's path among the run's artifacts.
    #[schema(pattern = r"^[A-Za-z0-9_\-][A-Za-z0-9_.\-]*(/[A-Za-z0-9_\-][A-Za-z0-9_.\-]*)*$")]
    pub artifact_path: String,
    /// SHA-256 of the manifest's bytes, in hex.
    #[schema(pattern = "^[0-9a-fA-F]{64}$")]
    pub sha256: String,
}

/// What the handler reads: the run as `run_id` or `run_uuid` (MLflow's
/// older name), resolved as the permission check resolves it.
#[derive(Debug, Deserialize)]
pub(crate) struct RecordManifestRequest {
    pub run_id: Option<String>,
    pub run_uuid: Option<String>,
    pub artifact_path: String,
    pub sha256: String,
}

#[derive(Debug, IntoParams)]
#[into_params(parameter_in = Query)]
#[allow(dead_code)]
pub(crate) struct ManifestQuery {
    #[param(pattern = "^[0-9a-f]{32}$")]
    pub run_id: String,
}

#[derive(Debug, Deserialize)]
pub(crate) struct ManifestQueryRequest {
    pub run_id: Option<String>,
    pub run_uuid: Option<String>,
}

/// A run's recorded manifest, checked against the stored artifact.
#[derive(Debug, Serialize, ToSchema)]
pub(crate) struct ManifestCheck {
    pub run_id: String,
    pub artifact_path: String,
    /// The hash in the audit log.
    pub recorded_sha256: String,
    /// The hash of the artifact as stored now; `None` when it is gone.
    pub stored_sha256: Option<String>,
    /// The stored manifest is the recorded one.
    pub intact: bool,
    /// The audit entry that recorded it.
    pub audit_seq: i64,
    pub recorded_at: i64,
    pub recorded_by: String,
    /// The manifest itself, when it is stored and JSON.
    #[schema(value_type = Object)]
    pub manifest: Option<serde_json::Value>,
}

fn is_sha256(text: &str) -> bool {
    text.len() == 64 && text.bytes().all(|b| b.is_ascii_hexdigit())
}

/// Records a run's manifest: its path and hash go into the audit log.
#[utoipa::path(post, path = "/api/v1/run-manifests", tag = "lineage", request_body = RecordManifest,
    responses((status = 200, description = "Recorded"), (status = 400, body = sextant_api::v1::Error), (status = 404, body = sextant_api::v1::Error)))]
pub(crate) async fn record(
    State(state): State<AppState>,
    principal: Option<Extension<sextant_governance::Principal>>,
    headers: axum::http::HeaderMap,
    MlflowRequest(request): MlflowRequest<RecordManifestRequest>,
) -> ApiResult<(Extension<AuditNote>, Json<serde_json::Value>)> {
    let run_id = crate::resource::run_id(request.run_id.clone(), request.run_uuid.clone())?;
    let sha256 = request.sha256.to_ascii_lowercase();
    if !is_sha256(&sha256) {
        return Err(ApiError::invalid(
            "sha256 must be 64 hexadecimal digits (the SHA-256 of the manifest)",
        ));
    }
    let location =
        crate::tables::run_artifact_location(&state, &run_id, &request.artifact_path).await?;
    // The manifest must be stored before its hash is recorded.
    if !state.artifacts().exists(&location).await.unwrap_or(false) {
        return Err(ApiError::not_found(format!(
            "run '{}' has no artifact '{}': upload the manifest first",
            run_id, request.artifact_path
        )));
    }
    // Appended here rather than by the guard: writes to a run are audited
    // with their data only when run data is audited at all, and this entry
    // must exist whatever that setting says.
    let after = serde_json::json!({
        "artifact_path": request.artifact_path.trim_matches('/'),
        "sha256": sha256,
    });
    let actor = principal.as_ref().map_or("-", |p| p.0.name()).to_string();
    let user_agent = headers
        .get(axum::http::header::USER_AGENT)
        .and_then(|v| v.to_str().ok())
        .unwrap_or_default()
        .to_string();
    let seq = state
        .store()
        .append_audit(sextant_core::NewAuditEntry {
            ts: sextant_governance::now_ms(),
            actor,
            source: String::new(),
            user_agent,
            method: "POST".into(),
            action: ACTION.into(),
            resource_type: "run".into(),
            resource_id: run_id.clone(),
            status: 200,
            outcome: "ok".into(),
            detail: "environment manifest recorded".into(),
            before: None,
            after: Some(after.to_string()),
        })
        .await?;
    let note = AuditNote {
        resource: Some(("run".into(), run_id.clone())),
        recorded: true,
        ..AuditNote::default()
    };
    Ok((Extension(note), Json(serde_json::json!({"audit_seq": seq}))))
}

/// A run's latest recorded manifest, with the stored artifact's hash
/// compared with the recorded one.
#[utoipa::path(get, path = "/api/v1/run-manifests", tag = "lineage", params(ManifestQuery),
    responses((status = 200, body = ManifestCheck), (status = 404, body = sextant_api::v1::Error)))]
pub(crate) async fn check(
    State(state): State<AppState>,
    MlflowRequest(query): MlflowRequest<ManifestQueryRequest>,
) -> ApiResult<Json<ManifestCheck>> {
    let run_id = crate::resource::run_id(query.run_id, query.run_uuid)?;
    state.store().get_run(&run_id).await?;
    let entries = state
        .store()
        .query_audit(&sextant_store::AuditQuery {
            resource_type: Some("run".into()),
            resource_id: Some(run_id.clone()),
            action: Some(ACTION.into()),
            limit: 10_000,
            ..Default::default()
        })
        .await?;
    let recorded = entries
        .iter()
        .rev()
        .filter(|e| e.entry.method == "POST")
        .filter(|e| e.entry.outcome == "ok")
        .find_map(|e| {
            let after: serde_json::Value = serde_json::from_str(e.entry.after.as_deref()?).ok()?;
            let path = after["artifact_path"].as_str()?.to_string();
            let sha256 = after["sha256"].as_str()?.to_string();
            Some((e, path, sha256))
        });
    let Some((entry, artifact_path, recorded_sha256)) = recorded else {
        return Err(ApiError::not_found(format!(
            "run '{}' has no recorded environment manifest (runs started with `sextant exec` have one)",
            run_id
        )));
    };
    let location = crate::tables::run_artifact_location(&state, &run_id, &artifact_path).await?;
    let (stored_sha256, manifest) = match state
        .artifacts()
        .get_bytes(&location, MAX_MANIFEST_BYTES)
        .await
    {
        Ok(bytes) => {
            let hash = Sha256::digest(&bytes)
                .iter()
                .map(|b| format!("{b:02x}"))
                .collect::<String>();
            (Some(hash), serde_json::from_slice(&bytes).ok())
        }
        Err(sextant_artifacts::ArtifactError::TooLarge { .. }) => {
            return Err(ApiError::invalid(format!(
                "'{artifact_path}' is larger than a manifest can be"
            )))
        }
        Err(_) => (None, None),
    };
    Ok(Json(ManifestCheck {
        run_id,
        intact: stored_sha256.as_deref() == Some(recorded_sha256.as_str()),
        artifact_path,
        recorded_sha256,
        stored_sha256,
        audit_seq: entry.seq,
        recorded_at: entry.entry.ts,
        recorded_by: entry.entry.actor.clone(),
        manifest,
    }))
}
