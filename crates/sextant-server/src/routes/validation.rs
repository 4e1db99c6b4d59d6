//! The quality-gate API: a registered model's validation spec, each
//! version's validation (status, failed checks, the report as JSON or
//! HTML), running it again, and an administrator's override.

use axum::extract::{Path, State};
use axum::http::header;
use axum::response::{IntoResponse, Response};
use axum::{Extension, Json};
use serde_json::json;
use sextant_api::v1 as dto;
use sextant_core::ValidationSpecRecord;
use sextant_governance::Principal;

use crate::error::{ApiError, ApiResult};
use crate::extract::MlflowRequest;
use crate::guard::AuditNote;
use crate::AppState;

fn spec_dto(record: ValidationSpecRecord) -> dto::ValidationSpec {
    let tests = sextant_validate::Spec::parse(&record.spec)
        .map(|spec| spec.tests.iter().map(|t| t.id.clone()).collect())
        .unwrap_or_default();
    dto::ValidationSpec {
        name: record.name,
        spec: record.spec,
        sha256: record.sha256,
        tests,
        updated_by: record.updated_by,
        updated_at: record.updated_at,
    }
}

fn note(name: &str) -> AuditNote {
    AuditNote {
        resource: Some(("registered_model".into(), name.to_string())),
        ..AuditNote::default()
    }
}

fn version_number(text: &str) -> ApiResult<i64> {
    text.parse::<i64>()
        .ok()
        .filter(|v| *v > 0)
        .ok_or_else(|| ApiError::invalid(format!("Invalid version '{text}': a positive integer")))
}

/// The model's validation spec.
#[utoipa::path(get, path = "/api/v1/registered-models/{name}/validation-spec", tag = "validation",
    params(("name" = String, Path, min_length = 1)),
    responses((status = 200, body = dto::ValidationSpec), (status = 404, body = dto::Error)))]
pub(crate) async fn get_spec(
    State(state): State<AppState>,
    Path(name): Path<String>,
) -> ApiResult<Json<dto::ValidationSpec>> {
    let record = state.store().validation_spec(&name).await?.ok_or_else(|| {
        ApiError::not_found(format!("Registered model '{name}' has no validation spec"))
    })?;
    Ok(Json(spec_dto(record)))
}

/// Attach (or replace) the model's validation spec: every version
/// registered from now on is validated against it. The caller must be able
/// to read every run the spec reads data from.
#[utoipa::path(put, path = "/api/v1/registered-models/{name}/validation-spec", tag = "validation",
    params(("name" = String, Path, min_length = 1)), request_body = dto::PutValidationSpec,
    responses((status = 200, body = dto::ValidationSpec), (status = 400, body = dto::Error), (status = 403, body = dto::Error)))]
pub(crate) async fn put_spec(
    State(state): State<AppState>,
    Extension(principal): Extension<Principal>,
    Path(name): Path<String>,
    MlflowRequest(request): MlflowRequest<dto::PutValidationSpec>,
) -> ApiResult<(Extension<AuditNote>, Json<dto::ValidationSpec>)> {
    let spec = crate::validation::parse_spec(&request.spec)?;
    crate::validation::check_readable(&state, &principal, &spec).await?;
    crate::validation::check_datasets_exist(&state, &spec).await?;
    let before = state.store().validation_spec(&name).await?;
    let record = state
        .store()
        .set_validation_spec(&name, &request.spec, &spec.sha256, Some(principal.name()))
        .await?;
    let mut note = note(&name);
    note.before = before.map(|b| json!({ "spec_sha256": b.sha256 }));
    note.after = Some(json!({ "spec_sha256": record.sha256 }));
    Ok((Extension(note), Json(spec_dto(record))))
}

/// Detach the model's validation spec (its versions' results stay).
#[utoipa::path(delete, path = "/api/v1/registered-models/{name}/validation-spec", tag = "validation",
    params(("name" = String, Path, min_length = 1)),
    responses((status = 200, body = Object), (status = 404, body = dto::Error)))]
pub(crate) async fn delete_spec(
    State(state): State<AppState>,
    Path(name): Path<String>,
) -> ApiResult<(Extension<AuditNote>, Json<serde_json::Value>)> {
    state.store().delete_validation_spec(&name).await?;
    Ok((Extension(note(&name)), Json(json!({}))))
}

/// A version's validation: status, failed checks and the report.
#[utoipa::path(get, path = "/api/v1/registered-models/{name}/versions/{version}/validation", tag = "validation",
    params(("name" = String, Path, min_length = 1), ("version" = String, Path, pattern = r"^[1-9][0-9]{0,17}$")),
    responses((status = 200, body = dto::VersionValidation), (status = 404, body = dto::Error)))]
pub(crate) async fn get_validation(
    State(state): State<AppState>,
    Path((name, version)): Path<(String, String)>,
) -> ApiResult<Json<dto::VersionValidation>> {
    let version = version_number(&version)?;
    let found = state
        .store()
        .version_validation(&name, version)
        .await?
        .ok_or_else(|| {
            ApiError::not_found(format!(
                "Version {version} of '{name}' has no validation (it was registered before a spec \
                 applied to it): `sextant gates run {name}/{version}` or POST \
                 /api/v1/registered-models/{name}/versions/{version}/validation runs one"
            ))
        })?;
    Ok(Json(found.into()))
}

/// The report as a self-contained HTML page.
#[utoipa::path(get, path = "/api/v1/registered-models/{name}/versions/{version}/validation/report.html", tag = "validation",
    params(("name" = String, Path, min_length = 1), ("version" = String, Path, pattern = r"^[1-9][0-9]{0,17}$")),
    responses((status = 200, content_type = "text/html", body = String), (status = 404, body = dto::Error)))]
pub(crate) async fn report_html(
    State(state): State<AppState>,
    Path((name, version)): Path<(String, String)>,
) -> ApiResult<Response> {
    let version = version_number(&version)?;
    let report = state
        .store()
        .version_validation(&name, version)
        .await?
        .and_then(|v| v.report)
        .and_then(|r| serde_json::from_str::<sextant_validate::Report>(&r).ok())
        .ok_or_else(|| {
            ApiError::not_found(format!(
                "Version {version} of '{name}' has no validation report"
            ))
        })?;
    Ok((
        [
            (header::CONTENT_TYPE, "text/html; charset=utf-8"),
            // The page has no script; it may not run any.
            (
                header::CONTENT_SECURITY_POLICY,
                "default-src 'none'; style-src 'unsafe-inline'",
            ),
        ],
        report.to_html(),
    )
        .into_response())
}

/// Validate the version (again) against the model's current spec (or,
/// without one, the spec logged with the version).
#[utoipa::path(post, path = "/api/v1/registered-models/{name}/versions/{version}/validation", tag = "validation",
    params(("name" = String, Path, min_length = 1), ("version" = String, Path, pattern = r"^[1-9][0-9]{0,17}$")),
    responses((status = 200, body = dto::VersionValidation), (status = 400, body = dto::Error), (status = 404, body = dto::Error)))]
pub(crate) async fn run_validation(
    State(state): State<AppState>,
    Path((name, version)): Path<(String, String)>,
) -> ApiResult<(Extension<AuditNote>, Json<dto::VersionValidation>)> {
    let number = version_number(&version)?;
    state
        .store()
        .get_model_version(&name, &number.to_string())
        .await?;
    let started = crate::validation::start(&state, &name, number)
        .await?
        .ok_or_else(|| {
            ApiError::invalid(format!(
                "Registered model '{name}' has no validation spec to run"
            ))
        })?;
    let mut note = note(&name);
    note.detail = Some(format!("version {number}: validation started"));
    Ok((Extension(note), Json(started.into())))
}

/// Let a version whose validation failed through the gate (admins only,
/// with a reason; audited).
#[utoipa::path(post, path = "/api/v1/registered-models/{name}/versions/{version}/validation/override", tag = "validation",
    params(("name" = String, Path, min_length = 1), ("version" = String, Path, pattern = r"^[1-9][0-9]{0,17}$")),
    request_body = dto::ValidationOverride,
    responses((status = 200, body = dto::VersionValidation), (status = 400, body = dto::Error), (status = 403, body = dto::Error)))]
pub(crate) async fn override_validation(
    State(state): State<AppState>,
    Extension(principal): Extension<Principal>,
    Path((name, version)): Path<(String, String)>,
    MlflowRequest(request): MlflowRequest<dto::ValidationOverride>,
) -> ApiResult<(Extension<AuditNote>, Json<dto::VersionValidation>)> {
    let number = version_number(&version)?;
    let reason = request.reason.trim();
    if reason.is_empty() {
        return Err(ApiError::invalid("An override needs a reason"));
    }
    let before = state.store().version_validation(&name, number).await?;
    let updated = state
        .store()
        .override_validation(&name, number, principal.name(), reason)
        .await?;
    let mut note = note(&name);
    note.detail = Some(format!("version {number}: validation overridden: {reason}"));
    note.before = before.map(|b| json!({ "version": number, "status": b.status.as_str(), "failed_checks": b.failed_checks }));
    note.after =
        Some(json!({ "version": number, "status": updated.status.as_str(), "reason": reason }));
    Ok((Extension(note), Json(updated.into())))
}
