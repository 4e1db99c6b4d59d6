//! Quality gates in the server: a registered model's validation spec runs
//! by itself on every new version (on this server's engines, predictions
//! computed once per dataset view), its result is stored with the version,
//! written as JSON and HTML artifacts and audited, and promotions of a
//! version whose validation failed or is still pending are refused.

use std::collections::BTreeMap;

use sextant_api::ErrorCode;
use sextant_artifacts::ArtifactPath;
use sextant_core::{
    ModelRef, NewAuditEntry, Permission, ResourceKind, ValidationStatus, VersionValidation,
};
use sextant_governance::Principal;
use sextant_validate::{Report, Spec, Status, LOGGED_SPEC_FILE};

use crate::error::{ApiError, ApiResult};
use crate::AppState;

/// Who the audit log names for validations the server ran.
const VALIDATOR: &str = "sextant-validator";

/// Parses a spec for attaching, naming the line and field it breaks.
pub(crate) fn parse_spec(text: &str) -> ApiResult<Spec> {
    let spec = Spec::parse(text)
        .map_err(|e| ApiError::invalid(format!("Invalid validation spec: {e}")))?;
    for (name, uri) in spec.uris() {
        if !uri.starts_with("runs:/") && !uri.starts_with("dataset:") {
            return Err(ApiError::invalid(format!(
                "Invalid validation spec: dataset '{name}' ({uri}): the server reads run artifacts \
                 (runs:/RUN_ID/PATH) and stored datasets (dataset:NAME@DIGEST); files on its disk are \
                 not for users to name"
            )));
        }
    }
    Ok(spec)
}

/// The runs a spec reads, for the permission check when it is attached.
pub(crate) fn spec_runs(spec: &Spec) -> Vec<String> {
    spec.uris()
        .into_iter()
        .filter_map(|(_, uri)| {
            uri.strip_prefix("runs:/")?
                .split('/')
                .next()
                .map(str::to_string)
        })
        .collect()
}

/// The runs a spec reads must be readable by whoever attaches it or logs
/// it with a version: its report shows values from their data. So must its
/// baseline model: the report shows the baseline's figures on the spec's
/// rows, which would otherwise query a model one may not read (and tell
/// which of its versions and aliases exist).
pub(crate) async fn check_readable(
    state: &AppState,
    principal: &Principal,
    spec: &Spec,
) -> ApiResult<()> {
    if let Some(baseline) = &spec.baseline {
        let bare = baseline
            .model
            .strip_prefix("models:/")
            .unwrap_or(&baseline.model);
        let model = bare
            .rsplit_once('@')
            .or_else(|| bare.rsplit_once('/'))
            .map_or(bare, |(model, _)| model);
        if !principal.may(ResourceKind::RegisteredModel, model, Permission::Read) {
            return Err(ApiError::User(
                ErrorCode::PermissionDenied,
                format!(
                    "Permission denied: user '{}' lacks read permission on registered model '{model}', the spec's baseline",
                    principal.name()
                ),
            ));
        }
    }
    for run_id in spec_runs(spec) {
        let experiment = state
            .governance()
            .experiment_of_run(&run_id)
            .await?
            .ok_or_else(|| {
                ApiError::invalid(format!(
                    "Invalid validation spec: run '{run_id}' does not exist"
                ))
            })?;
        if !principal.may(
            ResourceKind::Experiment,
            &experiment.to_string(),
            Permission::Read,
        ) {
            return Err(ApiError::User(
                ErrorCode::PermissionDenied,
                format!(
                    "Permission denied: user '{}' lacks read permission on experiment {experiment}, where run '{run_id}' of the spec's data is",
                    principal.name()
                ),
            ));
        }
    }
    Ok(())
}

/// Every dataset an attached spec names exists now, so that a mistyped path
/// is refused when the spec is attached rather than showing as an error on
/// the next version.
pub(crate) async fn check_datasets_exist(state: &AppState, spec: &Spec) -> ApiResult<()> {
    for (name, uri) in spec.uris() {
        let missing = |why: String| {
            ApiError::invalid(format!(
                "Invalid validation spec: dataset '{name}' ({uri}): {why}"
            ))
        };
        // A user's mistake becomes the spec's; a failure of ours stays one.
        let explained = |error: ApiError| match error {
            ApiError::User(_, why) => missing(why),
            internal => internal,
        };
        if let Some(stored) = uri.strip_prefix("dataset:") {
            let (dataset, wanted) = stored.split_once('@').unwrap_or((stored, "latest"));
            let _version = crate::routes::datasets::get_version(
                axum::extract::State(state.clone()),
                axum::extract::Path((dataset.to_string(), wanted.to_string())),
            )
            .await
            .map_err(explained)?;
        } else if let Some((run_id, path)) =
            uri.strip_prefix("runs:/").and_then(|r| r.split_once('/'))
        {
            let location = crate::tables::run_artifact_location(state, run_id, path)
                .await
                .map_err(explained)?;
            let exists = state
                .artifacts()
                .exists(&location)
                .await
                .map_err(|e| explained(e.into()))?;
            if !exists {
                return Err(missing(format!("run '{run_id}' has no artifact '{path}'")));
            }
        }
    }
    Ok(())
}

/// The spec a version is validated against.
pub(crate) struct SpecFor {
    pub text: String,
    pub sha256: String,
    /// Logged with the version rather than attached to the model.
    pub logged: bool,
    /// A logged file over `MAX_LOGGED_SPEC_BYTES`, left unread (`text` is
    /// empty).
    pub too_large: bool,
}

/// The model's attached spec (the owners' gate, which a version's author
/// cannot weaken), or else the spec logged with the version, if any.
pub(crate) async fn spec_for(
    state: &AppState,
    name: &str,
    version: i64,
) -> ApiResult<Option<SpecFor>> {
    if let Some(attached) = state.store().validation_spec(name).await? {
        return Ok(Some(SpecFor {
            text: attached.spec,
            sha256: attached.sha256,
            logged: false,
            too_large: false,
        }));
    }
    let found = state
        .store()
        .get_model_version(name, &version.to_string())
        .await?;
    let Some(Ok(root)) = sextant_artifacts::proxied_path(&found.storage_location) else {
        return Ok(None);
    };
    let path = ArtifactPath::parse(&format!("{}/{LOGGED_SPEC_FILE}", root.as_str()))?;
    // A larger file is never loaded: `start` refuses it by name.
    let (text, too_large) = match state
        .artifacts()
        .get_bytes(&path, MAX_LOGGED_SPEC_BYTES)
        .await
    {
        Ok(bytes) => (String::from_utf8_lossy(&bytes).into_owned(), false),
        Err(sextant_artifacts::ArtifactError::TooLarge { .. }) => (String::new(), true),
        Err(_) => return Ok(None),
    };
    Ok(Some(SpecFor {
        sha256: sextant_validate::sha256_hex(text.as_bytes()),
        text,
        logged: true,
        too_large,
    }))
}

/// A logged spec larger than this is refused unread.
const MAX_LOGGED_SPEC_BYTES: u64 = 1024 * 1024;

/// Who registered `version` of `name`, as the permission checks see them:
/// a logged spec may read only what they may read, whoever later asks for
/// the validation to run again (an admin re-running it must not lend it
/// their permissions).
async fn registrant(state: &AppState, name: &str, version: i64) -> Result<Principal, String> {
    let governance = state.governance();
    if !governance.auth_enabled() {
        return Ok(Principal::Anonymous);
    }
    let found = state
        .store()
        .get_model_version(name, &version.to_string())
        .await
        .map_err(|e| e.to_string())?;
    let nobody = || {
        "the version has no registrant whose permissions its spec could be checked against"
            .to_string()
    };
    let username = found.user_id.ok_or_else(nobody)?;
    let user = state
        .store()
        .get_user(&username)
        .await
        .map_err(|_| nobody())?;
    governance
        .principal_of_user(user.user_id)
        .await
        .map_err(|e| format!("its registrant '{username}' cannot be checked: {e}"))
}

/// Starts validating `version` of `name` when it has a spec (attached to
/// the model or logged with the version): the version is pending at once,
/// and the result lands when the run ends. A logged spec may only read
/// runs and models its version's registrant may read (an attached one was
/// checked against whoever attached it).
pub(crate) async fn start(
    state: &AppState,
    name: &str,
    version: i64,
) -> ApiResult<Option<VersionValidation>> {
    let Some(spec) = spec_for(state, name, version).await? else {
        return Ok(None);
    };
    let refused = if spec.too_large {
        Some(format!(
            "the spec logged with the version ({LOGGED_SPEC_FILE}) is larger than {} KiB",
            MAX_LOGGED_SPEC_BYTES / 1024
        ))
    } else if spec.logged {
        match parse_spec(&spec.text) {
            Err(err) => Some(format!(
                "the spec logged with the version ({LOGGED_SPEC_FILE}) is refused: {}",
                err.detail()
            )),
            Ok(parsed) => {
                let checked = match registrant(state, name, version).await {
                    Ok(principal) => check_readable(state, &principal, &parsed)
                        .await
                        .map_err(|err| err.detail().to_string()),
                    Err(why) => Err(why),
                };
                checked.err().map(|why| {
                    format!(
                        "the spec logged with the version ({LOGGED_SPEC_FILE}) is refused: {why}"
                    )
                })
            }
        }
    } else {
        None
    };
    let pending = state
        .store()
        .start_validation(name, version, &spec.sha256)
        .await?;
    let task_state = state.clone();
    let (name, started_at) = (name.to_string(), pending.started_at);
    tokio::spawn(async move {
        let outcome = match refused {
            Some(message) => Err(message),
            None => execute(&task_state, &name, version, &spec.text).await,
        };
        finish(&task_state, &name, version, started_at, outcome).await;
    });
    Ok(Some(pending))
}

/// Validations left pending by a server that stopped while they ran start
/// again (called where background work runs).
pub(crate) async fn resume_pending(state: &AppState) {
    let Ok(pending) = state.store().pending_validations().await else {
        return;
    };
    for validation in pending {
        if let Err(err) = start(state, &validation.name, validation.version).await {
            tracing::warn!(model = %validation.name, version = validation.version, cause = ?err, "cannot resume a validation");
        }
    }
}

async fn finish(
    state: &AppState,
    name: &str,
    version: i64,
    started_at: i64,
    outcome: Result<Report, String>,
) {
    let store = state.store();
    let (status, failed, report_json, message) = match &outcome {
        Ok(report) => {
            let status = match report.status {
                Status::Passed => ValidationStatus::Passed,
                Status::Failed => ValidationStatus::Failed,
                Status::Error => ValidationStatus::Error,
            };
            (
                status,
                report.failed_checks.clone(),
                serde_json::to_string(report).ok(),
                None,
            )
        }
        Err(message) => (
            ValidationStatus::Error,
            Vec::new(),
            None,
            Some(message.clone()),
        ),
    };
    if let Ok(report) = &outcome {
        write_artifacts(state, name, version, report).await;
    }
    match store
        .finish_validation(
            name,
            version,
            started_at,
            status,
            &failed,
            report_json.as_deref(),
            message.as_deref(),
        )
        .await
    {
        Ok(true) => {}
        Ok(false) => return, // a newer validation replaced this one
        Err(err) => {
            tracing::error!(model = name, version, cause = %err, "validation result lost");
            return;
        }
    }
    tracing::info!(
        model = name,
        version,
        status = status.as_str(),
        failed = failed.len(),
        "validation finished"
    );
    let detail = match (&outcome, failed.is_empty()) {
        (Err(message), _) => format!("version {version}: validation could not run: {message}"),
        (Ok(_), true) => format!("version {version}: validation {}", status.as_str()),
        (Ok(_), false) => format!(
            "version {version}: validation {} ({})",
            status.as_str(),
            failed.join(", ")
        ),
    };
    let entry = NewAuditEntry {
        ts: sextant_governance::now_ms(),
        actor: VALIDATOR.into(),
        source: "-".into(),
        method: "-".into(),
        action: "validate".into(),
        resource_type: "registered_model".into(),
        resource_id: name.to_string(),
        status: 200,
        outcome: "ok".into(),
        detail,
        after: Some(serde_json::json!({"version": version, "status": status.as_str(), "failed_checks": failed}).to_string()),
        ..NewAuditEntry::default()
    };
    if let Err(err) = store.append_audit(entry).await {
        tracing::error!(cause = %err, "audit entry lost");
    }
}

/// Where a version's reports go in the artifact store.
pub(crate) fn report_location(name: &str, version: i64, file: &str) -> Option<ArtifactPath> {
    let safe: String = name
        .chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.') {
                c
            } else {
                '_'
            }
        })
        .collect();
    let digest = &sextant_validate::sha256_hex(name.as_bytes())[..12];
    ArtifactPath::parse(&format!("_validations/{safe}-{digest}/{version}/{file}")).ok()
}

async fn write_artifacts(state: &AppState, name: &str, version: i64, report: &Report) {
    let files = [
        (
            "report.json",
            serde_json::to_vec_pretty(report).unwrap_or_default(),
        ),
        ("report.html", report.to_html().into_bytes()),
    ];
    for (file, bytes) in files {
        let Some(location) = report_location(name, version, file) else {
            continue;
        };
        let body =
            futures::stream::once(
                async move { Ok::<_, std::io::Error>(bytes::Bytes::from(bytes)) },
            );
        if let Err(err) = state.artifacts().put(&location, body).await {
            tracing::warn!(model = name, version, cause = %err, "cannot store the validation report");
        }
    }
}

/// Runs the spec against the version (and its baseline) on this server's
/// engines.
async fn execute(state: &AppState, name: &str, version: i64, text: &str) -> Result<Report, String> {
    let spec = Spec::parse(text).map_err(|e| format!("the spec no longer parses: {e}"))?;
    let serving = state
        .serving()
        .ok_or("this server does not load models (serving is off), so it cannot validate")?;
    let candidate = serving
        .load_version(&ModelRef {
            name: name.to_string(),
            version,
            alias: None,
        })
        .await
        .map_err(|e| format!("version {version} does not load: {e}"))?;
    let (baseline, baseline_label, baseline_note) = match &spec.baseline {
        None => (None, None, None),
        Some(baseline) => match resolve_baseline(state, &baseline.model).await {
            Ok(model) if model.version == version && model.name == name => (
                None,
                None,
                Some(format!(
                    "{} is this version; comparisons are skipped",
                    baseline.model
                )),
            ),
            Ok(model) => {
                let label = format!("models:/{}/{}", model.name, model.version);
                match serving.load_version(&model).await {
                    Ok(loaded) => (Some(loaded), Some(label), None),
                    Err(e) => return Err(format!("the baseline {label} does not load: {e}")),
                }
            }
            Err(note) => (None, None, Some(note)),
        },
    };
    // Datasets staged from the artifact store; kept until the run ends.
    let mut staged = Vec::new();
    let mut files = BTreeMap::new();
    for (dataset, uri) in spec.uris() {
        let path = stage_dataset(state, uri)
            .await
            .map_err(|e| format!("dataset '{dataset}' ({uri}) cannot be read: {}", e.detail()))?;
        files.insert(dataset.to_string(), path.to_path_buf());
        staged.push(path);
    }
    let size = sextant_validate::directory_size(&candidate.dir);
    let threads = std::thread::available_parallelism().map_or(1, |n| n.get());
    let label = format!("models:/{name}/{version}");
    let report = tokio::task::spawn_blocking(move || {
        sextant_validate::run(sextant_validate::Run {
            spec: &spec,
            candidate: sextant_validate::Subject {
                name: label,
                model: &candidate.model,
                size_bytes: Some(size),
            },
            baseline: baseline.as_ref().map(|b| sextant_validate::Subject {
                name: baseline_label.clone().unwrap_or_default(),
                model: &b.model,
                size_bytes: None,
            }),
            baseline_note,
            files,
            threads,
        })
    })
    .await
    .map_err(|_| "the validation was interrupted".to_string())?;
    drop(staged);
    serving.evict_unused_models();
    Ok(report)
}

/// `models:/NAME@ALIAS` or `models:/NAME/VERSION`; an absent alias is a
/// note (comparisons skipped), not an error.
async fn resolve_baseline(state: &AppState, text: &str) -> Result<ModelRef, String> {
    let bare = text.strip_prefix("models:/").unwrap_or(text);
    let store = state.store();
    let found = if let Some((model, alias)) = bare.rsplit_once('@') {
        store.get_model_version_by_alias(model, alias).await
    } else if let Some((model, version)) = bare.rsplit_once('/') {
        store.get_model_version(model, version).await
    } else {
        return Err(format!("baseline '{text}' is not models:/NAME@ALIAS or models:/NAME/VERSION; comparisons are skipped"));
    };
    match found {
        Ok(v) => Ok(ModelRef {
            name: v.name,
            version: v.version,
            alias: None,
        }),
        Err(_) => Err(format!(
            "baseline {text} does not exist yet; comparisons are skipped"
        )),
    }
}

async fn stage_dataset(state: &AppState, uri: &str) -> ApiResult<tempfile::TempPath> {
    if let Some(stored) = uri.strip_prefix("dataset:") {
        let (name, wanted) = stored.split_once('@').unwrap_or((stored, "latest"));
        return crate::routes::datasets::stage_file(state, name, wanted).await;
    }
    let Some((run_id, path)) = uri.strip_prefix("runs:/").and_then(|r| r.split_once('/')) else {
        return Err(ApiError::invalid(
            "the server reads run artifacts (runs:/RUN_ID/PATH)",
        ));
    };
    let location = crate::tables::run_artifact_location(state, run_id, path).await?;
    crate::tables::stage(state, &location, path).await
}

/// Refuses moving `version` of `name` to `target` (an alias, a stage, or
/// `deployment`) when the version has a spec (the model's, or its own
/// logged one) and its validation did not pass for that target.
pub(crate) async fn gate(
    state: &AppState,
    name: &str,
    version: i64,
    target: &str,
) -> ApiResult<()> {
    if spec_for(state, name, version).await?.is_none() {
        return Ok(());
    }
    let refuse = |message: String| Err(ApiError::User(ErrorCode::Aborted, message));
    let Some(validation) = state.store().version_validation(name, version).await? else {
        return refuse(format!(
            "Version {version} of '{name}' has not been validated against the model's spec: \
             `sextant gates run {name}/{version}` (POST \
             /api/v1/registered-models/{name}/versions/{version}/validation) runs it"
        ));
    };
    match validation.status {
        ValidationStatus::Passed | ValidationStatus::Overridden => Ok(()),
        ValidationStatus::Pending => refuse(format!(
            "Version {version} of '{name}' is still being validated; it can move to {target} once it passes"
        )),
        ValidationStatus::Error if validation.report.is_none() => refuse(format!(
            "Version {version} of '{name}' could not be validated ({}); it cannot move to {target}",
            validation.message.as_deref().unwrap_or("no reason recorded")
        )),
        ValidationStatus::Failed | ValidationStatus::Error => {
            let report: Option<Report> = validation.report.as_deref().and_then(|r| serde_json::from_str(r).ok());
            let Some(report) = report else {
                return refuse(format!("Version {version} of '{name}' failed validation: {}", validation.failed_checks.join(", ")));
            };
            let blocking = report.blocking_for(target);
            if blocking.is_empty() {
                return Ok(());
            }
            refuse(format!(
                "Version {version} of '{name}' failed validation and cannot move to {target}: {}. \
                 An administrator may override with a reason (POST …/versions/{version}/validation/override).",
                report.describe(&blocking)
            ))
        }
    }
}
