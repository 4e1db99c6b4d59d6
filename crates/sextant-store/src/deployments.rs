//! Deployments and their revision history.
//!
//! The spec is stored as the JSON text the server gives (sextant-api's
//! `v1::DeploymentSpec`); the store guards its history: every change is a
//! new revision, written with the deployment row in one transaction, and a
//! change based on a stale revision is refused, so two operators (or the
//! canary controller and an operator) cannot overwrite each other.

use sextant_core::Readable;
use sqlx::any::AnyRow;

use crate::db::{self, SqlBuilder};
use crate::{now_ms, Result, Store, StoreError};

/// A deployment as stored: its latest revision.
#[derive(Debug, Clone, PartialEq)]
pub struct DeploymentRecord {
    pub name: String,
    pub revision: i64,
    /// JSON document of the spec.
    pub spec: String,
    pub description: String,
    pub created_by: String,
    pub creation_time: i64,
    pub last_updated_time: i64,
}

/// One change in a deployment's history.
#[derive(Debug, Clone, PartialEq)]
pub struct RevisionRecord {
    pub revision: i64,
    pub spec: String,
    pub action: String,
    pub reason: String,
    pub actor: String,
    pub time: i64,
}

fn not_found(name: &str) -> StoreError {
    StoreError::NotFound(format!("Deployment '{name}' does not exist"))
}

fn deployment_from_row(row: &AnyRow) -> Result<DeploymentRecord> {
    Ok(DeploymentRecord {
        name: db::text(row, "name")?,
        revision: db::int(row, "revision")?,
        spec: db::text(row, "spec")?,
        description: db::text(row, "description")?,
        created_by: db::text(row, "created_by")?,
        creation_time: db::int(row, "creation_time")?,
        last_updated_time: db::int(row, "last_updated_time")?,
    })
}

const DEPLOYMENT_COLUMNS: &str =
    "name, revision, spec, description, created_by, creation_time, last_updated_time";

impl Store {
    /// Creates a deployment at revision 1.
    pub async fn create_deployment(
        &self,
        name: &str,
        spec: &str,
        description: &str,
        actor: &str,
    ) -> Result<DeploymentRecord> {
        let now = now_ms();
        let mut tx = self.write_pool.begin().await?;
        let inserted = sqlx::query(
            "INSERT INTO deployments (name, revision, spec, description, created_by, creation_time, last_updated_time) \
             VALUES ($1, 1, $2, $3, $4, $5, $5)",
        )
        .bind(name)
        .bind(spec)
        .bind(description)
        .bind(actor)
        .bind(now)
        .execute(&mut *tx)
        .await;
        match inserted {
            Err(err) if db::is_unique_violation(&err) => {
                return Err(StoreError::AlreadyExists(format!(
                    "Deployment '{name}' already exists"
                )))
            }
            other => other?,
        };
        insert_revision(&mut tx, name, 1, spec, "create", "", actor, now).await?;
        tx.commit().await?;
        Ok(DeploymentRecord {
            name: name.to_string(),
            revision: 1,
            spec: spec.to_string(),
            description: description.to_string(),
            created_by: actor.to_string(),
            creation_time: now,
            last_updated_time: now,
        })
    }

    pub async fn get_deployment(&self, name: &str) -> Result<DeploymentRecord> {
        let row = sqlx::query(&format!(
            "SELECT {DEPLOYMENT_COLUMNS} FROM deployments WHERE name = $1"
        ))
        .bind(name)
        .fetch_optional(&self.pool)
        .await?
        .ok_or_else(|| not_found(name))?;
        deployment_from_row(&row)
    }

    /// Every deployment, by name; `visible` restricts to those names.
    pub async fn list_deployments(&self, visible: &Readable) -> Result<Vec<DeploymentRecord>> {
        let mut sql = SqlBuilder::new(
            self.backend,
            &format!("SELECT {DEPLOYMENT_COLUMNS} FROM deployments WHERE 1 = 1"),
        );
        sql.push_visible("name", visible, false)
            .push(" ORDER BY name");
        let rows = sql.query().fetch_all(&self.pool).await?;
        rows.iter().map(deployment_from_row).collect()
    }

    /// Records a new revision of `name` with `spec`, provided the latest
    /// revision is still `expected_revision`.
    #[allow(clippy::too_many_arguments)]
    pub async fn update_deployment(
        &self,
        name: &str,
        expected_revision: i64,
        spec: &str,
        description: Option<&str>,
        action: &str,
        reason: &str,
        actor: &str,
    ) -> Result<DeploymentRecord> {
        let now = now_ms();
        let revision = expected_revision + 1;
        let mut tx = self.write_pool.begin().await?;
        let updated = sqlx::query(
            "UPDATE deployments SET revision = $1, spec = $2, description = COALESCE($3, description), last_updated_time = $4 \
             WHERE name = $5 AND revision = $6",
        )
        .bind(revision)
        .bind(spec)
        .bind(description)
        .bind(now)
        .bind(name)
        .bind(expected_revision)
        .execute(&mut *tx)
        .await?;
        if updated.rows_affected() == 0 {
            drop(tx);
            let current = self.get_deployment(name).await?;
            return Err(StoreError::Conflict(format!(
                "Deployment '{name}' changed meanwhile (now at revision {}, this change was based on {expected_revision}); retry",
                current.revision
            )));
        }
        insert_revision(&mut tx, name, revision, spec, action, reason, actor, now).await?;
        tx.commit().await?;
        self.get_deployment(name).await
    }

    /// The newest `limit` revisions of `name`, newest first.
    pub async fn deployment_history(&self, name: &str, limit: i64) -> Result<Vec<RevisionRecord>> {
        self.get_deployment(name).await?;
        let rows = sqlx::query(
            "SELECT revision, spec, action, reason, actor, time FROM deployment_revisions \
             WHERE name = $1 ORDER BY revision DESC LIMIT $2",
        )
        .bind(name)
        .bind(limit)
        .fetch_all(&self.pool)
        .await?;
        rows.iter()
            .map(|row| {
                Ok(RevisionRecord {
                    revision: db::int(row, "revision")?,
                    spec: db::text(row, "spec")?,
                    action: db::text(row, "action")?,
                    reason: db::text(row, "reason")?,
                    actor: db::text(row, "actor")?,
                    time: db::int(row, "time")?,
                })
            })
            .collect()
    }

    /// Deletes a deployment, its history and the grants on it.
    pub async fn delete_deployment(&self, name: &str) -> Result<()> {
        self.get_deployment(name).await?;
        let mut tx = self.write_pool.begin().await?;
        for table in ["deployment_revisions", "deployments"] {
            sqlx::query(&format!("DELETE FROM {table} WHERE name = $1"))
                .bind(name)
                .execute(&mut *tx)
                .await?;
        }
        Store::delete_monitoring_of(&mut tx, name).await?;
        // A deployment created later under the same name must not inherit grants.
        sqlx::query(
            "DELETE FROM permissions WHERE resource_type = 'deployment' AND resource_id = $1",
        )
        .bind(name)
        .execute(&mut *tx)
        .await?;
        tx.commit().await?;
        Ok(())
    }
}

#[allow(clippy::too_many_arguments)]
async fn insert_revision(
    tx: &mut sqlx::Transaction<'_, sqlx::Any>,
    name: &str,
    revision: i64,
    spec: &str,
    action: &str,
    reason: &str,
    actor: &str,
    time: i64,
) -> Result<()> {
    sqlx::query(
        "INSERT INTO deployment_revisions (name, revision, spec, action, reason, actor, time) \
         VALUES ($1, $2, $3, $4, $5, $6, $7)",
    )
    .bind(name)
    .bind(revision)
    .bind(spec)
    .bind(action)
    .bind(reason)
    .bind(actor)
    .bind(time)
    .execute(&mut **tx)
    .await?;
    Ok(())
}

/// One reporter's counters of a deployment revision (`deployment_arm_reports`).
#[derive(Debug, Clone, PartialEq)]
pub struct ArmReportRecord {
    pub reporter: String,
    pub revision: i64,
    /// JSON: arm name to that revision's cumulative counters.
    pub arms: String,
    pub reported_at: i64,
}

impl Store {
    /// Replaces `reporter`'s counters of `deployment` (one row per reporter).
    pub async fn put_arm_report(
        &self,
        deployment: &str,
        reporter: &str,
        revision: i64,
        arms: &str,
    ) -> Result<()> {
        sqlx::query(
            "INSERT INTO deployment_arm_reports (deployment, reporter, revision, arms, reported_at) \
             VALUES ($1, $2, $3, $4, $5) ON CONFLICT (deployment, reporter) DO UPDATE SET \
             revision = excluded.revision, arms = excluded.arms, reported_at = excluded.reported_at",
        )
        .bind(deployment)
        .bind(reporter)
        .bind(revision)
        .bind(arms)
        .bind(now_ms())
        .execute(&self.write_pool)
        .await?;
        Ok(())
    }

    /// Every reporter's counters of `deployment` reported at or after
    /// `since_ms`, whatever the revision (the caller keeps its own).
    pub async fn arm_reports(
        &self,
        deployment: &str,
        since_ms: i64,
    ) -> Result<Vec<ArmReportRecord>> {
        let rows = sqlx::query(
            "SELECT reporter, revision, arms, reported_at FROM deployment_arm_reports \
             WHERE deployment = $1 AND reported_at >= $2 ORDER BY reporter",
        )
        .bind(deployment)
        .bind(since_ms)
        .fetch_all(&self.pool)
        .await?;
        rows.iter()
            .map(|row| {
                Ok(ArmReportRecord {
                    reporter: db::text(row, "reporter")?,
                    revision: db::int(row, "revision")?,
                    arms: db::text(row, "arms")?,
                    reported_at: db::int(row, "reported_at")?,
                })
            })
            .collect()
    }

    /// Forgets reports older than `before_ms` (reporters that are gone).
    pub async fn prune_arm_reports(&self, before_ms: i64) -> Result<u64> {
        let done = sqlx::query("DELETE FROM deployment_arm_reports WHERE reported_at < $1")
            .bind(before_ms)
            .execute(&self.write_pool)
            .await?;
        Ok(done.rows_affected())
    }
}
