//! Monitoring records: ground-truth feedback joined to predictions, alert
//! rules with their state and history, retraining triggers and their runs.
//!
//! Documents the server interprets (a label, a prediction's outcome, a
//! rule, a trigger's configuration) are stored as JSON text: the store keeps
//! them durable and ordered and does not read them.

use sqlx::any::AnyRow;

use crate::db;
use crate::{Result, Store, StoreError};

/// One labelled row of a prediction.
#[derive(Debug, Clone, PartialEq)]
pub struct FeedbackRecord {
    pub prediction_id: String,
    pub row_index: i64,
    /// The label as JSON.
    pub label: String,
    /// The prediction's outcome as JSON.
    pub outcome: String,
    /// `name/version` of the model that answered.
    pub model: String,
    pub arm: String,
    /// Microseconds since the Unix epoch.
    pub predicted_at: i64,
    pub received_at: i64,
}

/// What storing a batch of labels did.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct FeedbackWrite {
    /// Rows labelled for the first time.
    pub inserted: u64,
    /// Rows whose label changed (a correction).
    pub updated: u64,
    /// Rows sent again with the label they already had.
    pub unchanged: u64,
}

/// An alert rule as stored.
#[derive(Debug, Clone, PartialEq)]
pub struct AlertRuleRecord {
    pub deployment: String,
    pub name: String,
    pub rule: String,
    pub state: String,
    pub created_by: String,
    pub creation_time: i64,
    pub last_updated_time: i64,
}

/// One firing or resolution of an alert.
#[derive(Debug, Clone, PartialEq)]
pub struct AlertEventRecord {
    pub deployment: String,
    pub rule: String,
    /// `firing` or `resolved`.
    pub status: String,
    pub severity: String,
    /// The metric's value, as JSON (a number or null).
    pub value: String,
    pub started_at: i64,
    pub ended_at: Option<i64>,
    pub time: i64,
}

/// One run started by a retraining trigger.
#[derive(Debug, Clone, PartialEq)]
pub struct TriggerRunRecord {
    pub id: String,
    pub deployment: String,
    /// `alert`, `schedule` or `manual`.
    pub reason: String,
    /// JSON: the alert, the data window, who asked.
    pub detail: String,
    /// `running`, `succeeded` or `failed`.
    pub status: String,
    pub output: String,
    pub started_at: i64,
    pub finished_at: Option<i64>,
}

/// Rows per statement when labels are written in bulk: well under both
/// engines' limits on bound parameters.
const FEEDBACK_CHUNK: usize = 100;

impl Store {
    /// Stores labels, idempotently: a row sent again with the same label is
    /// left as it was (and counted `unchanged`), a different label replaces
    /// the old one (`updated`). All rows commit together or not at all.
    pub async fn upsert_feedback(
        &self,
        deployment: &str,
        rows: &[FeedbackRecord],
    ) -> Result<FeedbackWrite> {
        let mut tx = self.write_pool.begin().await?;
        let mut write = FeedbackWrite::default();
        for chunk in rows.chunks(FEEDBACK_CHUNK) {
            // What is there already, for these ids.
            let mut existing = std::collections::HashMap::new();
            let mut select = db::SqlBuilder::new(
                self.backend,
                "SELECT prediction_id, row_index, label FROM feedback WHERE deployment = ",
            );
            select.bind_text(deployment).push(" AND prediction_id IN ");
            select.bind_text_list(chunk.iter().map(|r| &r.prediction_id));
            for row in select.query().fetch_all(&mut *tx).await? {
                existing.insert(
                    (
                        db::text(&row, "prediction_id")?,
                        db::int(&row, "row_index")?,
                    ),
                    db::text(&row, "label")?,
                );
            }
            for record in chunk {
                let key = (record.prediction_id.clone(), record.row_index);
                match existing.get(&key) {
                    Some(label) if *label == record.label => {
                        write.unchanged += 1;
                        continue;
                    }
                    Some(_) => {
                        sqlx::query(
                            "UPDATE feedback SET label = $1, received_at = $2 \
                             WHERE deployment = $3 AND prediction_id = $4 AND row_index = $5",
                        )
                        .bind(&record.label)
                        .bind(record.received_at)
                        .bind(deployment)
                        .bind(&record.prediction_id)
                        .bind(record.row_index)
                        .execute(&mut *tx)
                        .await?;
                        write.updated += 1;
                    }
                    None => {
                        sqlx::query(
                            "INSERT INTO feedback (deployment, prediction_id, row_index, label, outcome, model, arm, predicted_at, received_at) \
                             VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9)",
                        )
                        .bind(deployment)
                        .bind(&record.prediction_id)
                        .bind(record.row_index)
                        .bind(&record.label)
                        .bind(&record.outcome)
                        .bind(&record.model)
                        .bind(&record.arm)
                        .bind(record.predicted_at)
                        .bind(record.received_at)
                        .execute(&mut *tx)
                        .await?;
                        write.inserted += 1;
                    }
                }
                existing.insert(key, record.label.clone());
            }
        }
        tx.commit().await?;
        Ok(write)
    }

    /// Labelled rows of predictions made in `[from_us, to_us)`, oldest
    /// prediction first.
    pub async fn feedback_between(
        &self,
        deployment: &str,
        from_us: i64,
        to_us: i64,
    ) -> Result<Vec<FeedbackRecord>> {
        let rows = sqlx::query(
            "SELECT prediction_id, row_index, label, outcome, model, arm, predicted_at, received_at \
             FROM feedback WHERE deployment = $1 AND predicted_at >= $2 AND predicted_at < $3 \
             ORDER BY predicted_at, prediction_id, row_index",
        )
        .bind(deployment)
        .bind(from_us)
        .bind(to_us)
        .fetch_all(&self.pool)
        .await?;
        rows.iter().map(feedback_from_row).collect()
    }

    /// The earliest-predicted labelled rows of one model version (its
    /// labelled reference).
    pub async fn feedback_earliest(
        &self,
        deployment: &str,
        model: &str,
        limit: i64,
    ) -> Result<Vec<FeedbackRecord>> {
        let rows = sqlx::query(
            "SELECT prediction_id, row_index, label, outcome, model, arm, predicted_at, received_at \
             FROM feedback WHERE deployment = $1 AND model = $2 \
             ORDER BY predicted_at, prediction_id, row_index LIMIT $3",
        )
        .bind(deployment)
        .bind(model)
        .bind(limit)
        .fetch_all(&self.pool)
        .await?;
        rows.iter().map(feedback_from_row).collect()
    }

    /// The labels already stored for `ids` (any row).
    pub async fn feedback_for(
        &self,
        deployment: &str,
        ids: &[String],
    ) -> Result<Vec<FeedbackRecord>> {
        let mut found = Vec::new();
        for chunk in ids.chunks(FEEDBACK_CHUNK) {
            let mut select = db::SqlBuilder::new(
                self.backend,
                "SELECT prediction_id, row_index, label, outcome, model, arm, predicted_at, received_at \
                 FROM feedback WHERE deployment = ",
            );
            select.bind_text(deployment).push(" AND prediction_id IN ");
            select.bind_text_list(chunk);
            for row in select.query().fetch_all(&self.pool).await? {
                found.push(feedback_from_row(&row)?);
            }
        }
        Ok(found)
    }

    /// Creates or replaces an alert rule (its state starts afresh).
    pub async fn put_alert_rule(&self, record: &AlertRuleRecord) -> Result<()> {
        let mut tx = self.write_pool.begin().await?;
        sqlx::query("DELETE FROM alert_rules WHERE deployment = $1 AND name = $2")
            .bind(&record.deployment)
            .bind(&record.name)
            .execute(&mut *tx)
            .await?;
        sqlx::query(
            "INSERT INTO alert_rules (deployment, name, rule, state, created_by, creation_time, last_updated_time) \
             VALUES ($1, $2, $3, $4, $5, $6, $7)",
        )
        .bind(&record.deployment)
        .bind(&record.name)
        .bind(&record.rule)
        .bind(&record.state)
        .bind(&record.created_by)
        .bind(record.creation_time)
        .bind(record.last_updated_time)
        .execute(&mut *tx)
        .await?;
        tx.commit().await?;
        Ok(())
    }

    /// Saves a rule's evaluation state.
    pub async fn set_alert_state(
        &self,
        deployment: &str,
        name: &str,
        state: &str,
        time: i64,
    ) -> Result<()> {
        sqlx::query(
            "UPDATE alert_rules SET state = $1, last_updated_time = $2 WHERE deployment = $3 AND name = $4",
        )
        .bind(state)
        .bind(time)
        .bind(deployment)
        .bind(name)
        .execute(&self.write_pool)
        .await?;
        Ok(())
    }

    /// Alert rules of one deployment, or of all when `deployment` is None.
    pub async fn alert_rules(&self, deployment: Option<&str>) -> Result<Vec<AlertRuleRecord>> {
        let rows = match deployment {
            Some(deployment) => {
                sqlx::query(
                    "SELECT deployment, name, rule, state, created_by, creation_time, last_updated_time \
                     FROM alert_rules WHERE deployment = $1 ORDER BY name",
                )
                .bind(deployment)
                .fetch_all(&self.pool)
                .await?
            }
            None => {
                sqlx::query(
                    "SELECT deployment, name, rule, state, created_by, creation_time, last_updated_time \
                     FROM alert_rules ORDER BY deployment, name",
                )
                .fetch_all(&self.pool)
                .await?
            }
        };
        rows.iter()
            .map(|row| {
                Ok(AlertRuleRecord {
                    deployment: db::text(row, "deployment")?,
                    name: db::text(row, "name")?,
                    rule: db::text(row, "rule")?,
                    state: db::text(row, "state")?,
                    created_by: db::text(row, "created_by")?,
                    creation_time: db::int(row, "creation_time")?,
                    last_updated_time: db::int(row, "last_updated_time")?,
                })
            })
            .collect()
    }

    /// Deletes an alert rule (its history stays).
    pub async fn delete_alert_rule(&self, deployment: &str, name: &str) -> Result<()> {
        let deleted = sqlx::query("DELETE FROM alert_rules WHERE deployment = $1 AND name = $2")
            .bind(deployment)
            .bind(name)
            .execute(&self.write_pool)
            .await?;
        if deleted.rows_affected() == 0 {
            return Err(StoreError::NotFound(format!(
                "Alert rule '{name}' of deployment '{deployment}' does not exist"
            )));
        }
        Ok(())
    }

    /// Records a firing or a resolution; the same event stored twice is one.
    pub async fn record_alert_event(&self, event: &AlertEventRecord) -> Result<()> {
        let inserted = sqlx::query(
            "INSERT INTO alert_events (deployment, rule, status, severity, value, started_at, ended_at, time) \
             VALUES ($1, $2, $3, $4, $5, $6, $7, $8)",
        )
        .bind(&event.deployment)
        .bind(&event.rule)
        .bind(&event.status)
        .bind(&event.severity)
        .bind(&event.value)
        .bind(event.started_at)
        .bind(event.ended_at)
        .bind(event.time)
        .execute(&self.write_pool)
        .await;
        match inserted {
            Err(err) if db::is_unique_violation(&err) => Ok(()),
            other => other.map(|_| ()).map_err(Into::into),
        }
    }

    /// Alert history, newest first.
    pub async fn alert_events(
        &self,
        deployment: Option<&str>,
        limit: i64,
    ) -> Result<Vec<AlertEventRecord>> {
        let columns = "deployment, rule, status, severity, value, started_at, ended_at, time";
        let rows = match deployment {
            Some(deployment) => {
                sqlx::query(&format!(
                    "SELECT {columns} FROM alert_events WHERE deployment = $1 ORDER BY time DESC, rule LIMIT $2"
                ))
                .bind(deployment)
                .bind(limit)
                .fetch_all(&self.pool)
                .await?
            }
            None => {
                sqlx::query(&format!(
                    "SELECT {columns} FROM alert_events ORDER BY time DESC, deployment, rule LIMIT $1"
                ))
                .bind(limit)
                .fetch_all(&self.pool)
                .await?
            }
        };
        rows.iter()
            .map(|row| {
                Ok(AlertEventRecord {
                    deployment: db::text(row, "deployment")?,
                    rule: db::text(row, "rule")?,
                    status: db::text(row, "status")?,
                    severity: db::text(row, "severity")?,
                    value: db::text(row, "value")?,
                    started_at: db::int(row, "started_at")?,
                    ended_at: db::opt_int(row, "ended_at")?,
                    time: db::int(row, "time")?,
                })
            })
            .collect()
    }

    /// Sets (or with `None` removes) a deployment's retraining trigger.
    pub async fn set_retrain_trigger(
        &self,
        deployment: &str,
        config: Option<&str>,
        actor: &str,
        time: i64,
    ) -> Result<()> {
        let mut tx = self.write_pool.begin().await?;
        sqlx::query("DELETE FROM retrain_triggers WHERE deployment = $1")
            .bind(deployment)
            .execute(&mut *tx)
            .await?;
        if let Some(config) = config {
            sqlx::query(
                "INSERT INTO retrain_triggers (deployment, config, created_by, last_updated_time) VALUES ($1, $2, $3, $4)",
            )
            .bind(deployment)
            .bind(config)
            .bind(actor)
            .bind(time)
            .execute(&mut *tx)
            .await?;
        }
        tx.commit().await?;
        Ok(())
    }

    /// A deployment's retraining trigger configuration.
    pub async fn retrain_trigger(&self, deployment: &str) -> Result<Option<String>> {
        let row = sqlx::query("SELECT config FROM retrain_triggers WHERE deployment = $1")
            .bind(deployment)
            .fetch_optional(&self.pool)
            .await?;
        row.map(|row| db::text(&row, "config")).transpose()
    }

    /// Every deployment that has a retraining trigger, with its configuration.
    pub async fn retrain_triggers(&self) -> Result<Vec<(String, String)>> {
        let rows =
            sqlx::query("SELECT deployment, config FROM retrain_triggers ORDER BY deployment")
                .fetch_all(&self.pool)
                .await?;
        rows.iter()
            .map(|row| Ok((db::text(row, "deployment")?, db::text(row, "config")?)))
            .collect()
    }

    /// Records a run when it starts, and again when it ends.
    pub async fn put_trigger_run(&self, run: &TriggerRunRecord) -> Result<()> {
        let mut tx = self.write_pool.begin().await?;
        sqlx::query("DELETE FROM trigger_runs WHERE id = $1")
            .bind(&run.id)
            .execute(&mut *tx)
            .await?;
        sqlx::query(
            "INSERT INTO trigger_runs (id, deployment, reason, detail, status, output, started_at, finished_at) \
             VALUES ($1, $2, $3, $4, $5, $6, $7, $8)",
        )
        .bind(&run.id)
        .bind(&run.deployment)
        .bind(&run.reason)
        .bind(&run.detail)
        .bind(&run.status)
        .bind(&run.output)
        .bind(run.started_at)
        .bind(run.finished_at)
        .execute(&mut *tx)
        .await?;
        tx.commit().await?;
        Ok(())
    }

    /// A deployment's triggered runs, newest first.
    pub async fn trigger_runs(
        &self,
        deployment: &str,
        limit: i64,
    ) -> Result<Vec<TriggerRunRecord>> {
        let rows = sqlx::query(
            "SELECT id, deployment, reason, detail, status, output, started_at, finished_at \
             FROM trigger_runs WHERE deployment = $1 ORDER BY started_at DESC, id LIMIT $2",
        )
        .bind(deployment)
        .bind(limit)
        .fetch_all(&self.pool)
        .await?;
        rows.iter()
            .map(|row| {
                Ok(TriggerRunRecord {
                    id: db::text(row, "id")?,
                    deployment: db::text(row, "deployment")?,
                    reason: db::text(row, "reason")?,
                    detail: db::text(row, "detail")?,
                    status: db::text(row, "status")?,
                    output: db::text(row, "output")?,
                    started_at: db::int(row, "started_at")?,
                    finished_at: db::opt_int(row, "finished_at")?,
                })
            })
            .collect()
    }

    /// Removes a deleted deployment's monitoring records.
    pub(crate) async fn delete_monitoring_of(
        tx: &mut sqlx::Transaction<'_, sqlx::Any>,
        deployment: &str,
    ) -> Result<()> {
        for table in [
            "feedback",
            "alert_rules",
            "alert_events",
            "retrain_triggers",
            "trigger_runs",
        ] {
            sqlx::query(&format!("DELETE FROM {table} WHERE deployment = $1"))
                .bind(deployment)
                .execute(&mut **tx)
                .await?;
        }
        Ok(())
    }
}

fn feedback_from_row(row: &AnyRow) -> Result<FeedbackRecord> {
    Ok(FeedbackRecord {
        prediction_id: db::text(row, "prediction_id")?,
        row_index: db::int(row, "row_index")?,
        label: db::text(row, "label")?,
        outcome: db::text(row, "outcome")?,
        model: db::text(row, "model")?,
        arm: db::text(row, "arm")?,
        predicted_at: db::int(row, "predicted_at")?,
        received_at: db::int(row, "received_at")?,
    })
}
