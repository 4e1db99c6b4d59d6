//! Validation specs of registered models and the validations of their
//! versions (quality gates).

use sextant_core::{ValidationSpecRecord, ValidationStatus, VersionValidation};
use sqlx::any::AnyRow;

use crate::db;
use crate::{now_ms, Result, Store, StoreError};

impl Store {
    pub async fn validation_spec(&self, name: &str) -> Result<Option<ValidationSpecRecord>> {
        let row = sqlx::query("SELECT * FROM validation_specs WHERE name = $1")
            .bind(name)
            .fetch_optional(&self.pool)
            .await?;
        row.map(|row| {
            Ok(ValidationSpecRecord {
                name: db::text(&row, "name")?,
                spec: db::text(&row, "spec")?,
                sha256: db::text(&row, "sha256")?,
                updated_by: db::opt_text(&row, "updated_by")?,
                updated_at: db::int(&row, "updated_at")?,
            })
        })
        .transpose()
    }

    /// Attaches (or replaces) a model's spec; the caller has parsed it.
    pub async fn set_validation_spec(
        &self,
        name: &str,
        spec: &str,
        sha256: &str,
        updated_by: Option<&str>,
    ) -> Result<ValidationSpecRecord> {
        self.require_registered_model(name).await?;
        let now = now_ms();
        sqlx::query(
            "INSERT INTO validation_specs (name, spec, sha256, updated_by, updated_at) VALUES ($1, $2, $3, $4, $5) \
             ON CONFLICT (name) DO UPDATE SET spec = excluded.spec, sha256 = excluded.sha256, \
             updated_by = excluded.updated_by, updated_at = excluded.updated_at",
        )
        .bind(name)
        .bind(spec)
        .bind(sha256)
        .bind(updated_by.map(str::to_string))
        .bind(now)
        .execute(&self.write_pool)
        .await?;
        Ok(ValidationSpecRecord {
            name: name.to_string(),
            spec: spec.to_string(),
            sha256: sha256.to_string(),
            updated_by: updated_by.map(str::to_string),
            updated_at: now,
        })
    }

    /// Detaches a model's spec; its versions' validations stay on record.
    pub async fn delete_validation_spec(&self, name: &str) -> Result<()> {
        let deleted = sqlx::query("DELETE FROM validation_specs WHERE name = $1")
            .bind(name)
            .execute(&self.write_pool)
            .await?;
        if deleted.rows_affected() == 0 {
            return Err(StoreError::NotFound(format!(
                "Registered model '{name}' has no validation spec"
            )));
        }
        Ok(())
    }

    pub async fn version_validation(
        &self,
        name: &str,
        version: i64,
    ) -> Result<Option<VersionValidation>> {
        let row =
            sqlx::query("SELECT * FROM model_version_validations WHERE name = $1 AND version = $2")
                .bind(name)
                .bind(version)
                .fetch_optional(&self.pool)
                .await?;
        row.map(|row| validation_from_row(&row)).transpose()
    }

    /// Validations still pending (a server stopped while they ran).
    pub async fn pending_validations(&self) -> Result<Vec<VersionValidation>> {
        let rows = sqlx::query("SELECT * FROM model_version_validations WHERE status = 'pending'")
            .fetch_all(&self.pool)
            .await?;
        rows.iter().map(validation_from_row).collect()
    }

    /// Marks a version's validation as started (pending), replacing any
    /// earlier one.
    pub async fn start_validation(
        &self,
        name: &str,
        version: i64,
        spec_sha256: &str,
    ) -> Result<VersionValidation> {
        let now = now_ms();
        sqlx::query(
            "INSERT INTO model_version_validations (name, version, status, spec_sha256, failed_checks, started_at) \
             VALUES ($1, $2, 'pending', $3, '[]', $4) ON CONFLICT (name, version) DO UPDATE SET \
             status = 'pending', spec_sha256 = excluded.spec_sha256, failed_checks = '[]', report = NULL, \
             message = NULL, started_at = excluded.started_at, finished_at = NULL, override_by = NULL, \
             override_reason = NULL",
        )
        .bind(name)
        .bind(version)
        .bind(spec_sha256)
        .bind(now)
        .execute(&self.write_pool)
        .await?;
        self.version_validation(name, version)
            .await?
            .ok_or_else(|| StoreError::NotFound(format!("validation of {name} version {version}")))
    }

    /// Records a finished validation, unless a newer one started since
    /// (`started_at` differs): then this result is stale and dropped.
    #[allow(clippy::too_many_arguments)]
    pub async fn finish_validation(
        &self,
        name: &str,
        version: i64,
        started_at: i64,
        status: ValidationStatus,
        failed_checks: &[String],
        report: Option<&str>,
        message: Option<&str>,
    ) -> Result<bool> {
        let done = sqlx::query(
            "UPDATE model_version_validations SET status = $1, failed_checks = $2, report = $3, message = $4, \
             finished_at = $5 WHERE name = $6 AND version = $7 AND started_at = $8 AND status = 'pending'",
        )
        .bind(status.as_str())
        .bind(serde_json::to_string(failed_checks).unwrap_or_else(|_| "[]".into()))
        .bind(report.map(str::to_string))
        .bind(message.map(str::to_string))
        .bind(now_ms())
        .bind(name)
        .bind(version)
        .bind(started_at)
        .execute(&self.write_pool)
        .await?;
        Ok(done.rows_affected() == 1)
    }

    /// An administrator lets a failed (or errored) version through.
    pub async fn override_validation(
        &self,
        name: &str,
        version: i64,
        by: &str,
        reason: &str,
    ) -> Result<VersionValidation> {
        let current = self
            .version_validation(name, version)
            .await?
            .ok_or_else(|| {
                StoreError::NotFound(format!(
                    "Version {version} of '{name}' has no validation to override"
                ))
            })?;
        if !matches!(
            current.status,
            ValidationStatus::Failed | ValidationStatus::Error
        ) {
            return Err(StoreError::InvalidInput(format!(
                "Only a failed validation can be overridden; version {version} of '{name}' is {}",
                current.status.as_str()
            )));
        }
        sqlx::query(
            "UPDATE model_version_validations SET status = 'overridden', override_by = $1, override_reason = $2 \
             WHERE name = $3 AND version = $4",
        )
        .bind(by)
        .bind(reason)
        .bind(name)
        .bind(version)
        .execute(&self.write_pool)
        .await?;
        self.version_validation(name, version)
            .await?
            .ok_or_else(|| StoreError::NotFound(format!("validation of {name} version {version}")))
    }
}

fn validation_from_row(row: &AnyRow) -> Result<VersionValidation> {
    let status = db::text(row, "status")?;
    Ok(VersionValidation {
        name: db::text(row, "name")?,
        version: db::int(row, "version")?,
        status: ValidationStatus::parse(&status).unwrap_or(ValidationStatus::Error),
        spec_sha256: db::text(row, "spec_sha256")?,
        failed_checks: serde_json::from_str(&db::text(row, "failed_checks")?).unwrap_or_default(),
        report: db::opt_text(row, "report")?,
        message: db::opt_text(row, "message")?,
        started_at: db::int(row, "started_at")?,
        finished_at: db::opt_int(row, "finished_at")?,
        override_by: db::opt_text(row, "override_by")?,
        override_reason: db::opt_text(row, "override_reason")?,
    })
}
