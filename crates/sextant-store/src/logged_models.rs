//! MLflow 3 logged models: a model's files and metadata, independent of
//! (but usually produced by) a run.

use std::collections::HashMap;

use sextant_core::search::{Entity, Filter, Identifier, OrderBy, SearchKind};
use sextant_core::validation::{self, KeyKind};
use sextant_core::{KeyValue, LoggedModel, LoggedModelStatus, Page, Readable, RunMetric};
use sqlx::any::AnyRow;

use crate::db::{self, SqlBuilder};
use crate::experiments::{key_value_from_row, parse_experiment_id};
use crate::runs::metric_from_row;
use crate::search_sql::{self, Paging, Target};
use crate::{new_hex_id, now_ms, Result, Store, StoreError};

/// What `logged-models` (create) receives.
#[derive(Debug, Clone, Default)]
pub struct NewLoggedModel {
    pub experiment_id: String,
    pub name: Option<String>,
    pub model_type: Option<String>,
    pub source_run_id: Option<String>,
    pub params: Vec<KeyValue>,
    pub tags: Vec<KeyValue>,
}

impl Store {
    pub async fn create_logged_model(&self, new: &NewLoggedModel) -> Result<LoggedModel> {
        let experiment = self.require_active_experiment(&new.experiment_id).await?;
        for tag in &new.tags {
            validation::validate_key(KeyKind::Tag, &tag.key)?;
            validation::validate_tag_value(&tag.key, &tag.value)?;
        }
        for param in &new.params {
            validation::validate_key(KeyKind::Param, &param.key)?;
            validation::validate_param_value(&param.key, &param.value)?;
        }
        // Like MLflow, the source run is recorded as given, even when no such
        // run exists here (models logged elsewhere, runs deleted since);
        // registering a version checks the run's experiment if it exists.
        let hex = new_hex_id();
        let model_id = format!("m-{hex}");
        let name = new
            .name
            .clone()
            .filter(|n| !n.is_empty())
            .unwrap_or_else(|| format!("model-{}", &hex[..8]));
        let artifact_uri = format!(
            "{}/models/{model_id}/artifacts",
            experiment.artifact_location.trim_end_matches('/')
        );
        let now = now_ms();
        let mut tx = self.write_pool.begin().await?;
        sqlx::query(
            "INSERT INTO logged_models (model_id, experiment_id, name, artifact_uri, status, status_message, model_type, \
             source_run_id, creation_timestamp_ms, last_updated_timestamp_ms, lifecycle_stage) \
             VALUES ($1, $2, $3, $4, $5, NULL, $6, $7, $8, $8, 'active')",
        )
        .bind(&model_id)
        .bind(parse_experiment_id(&new.experiment_id)?)
        .bind(&name)
        .bind(&artifact_uri)
        .bind(LoggedModelStatus::Pending.as_str())
        .bind(new.model_type.clone().filter(|t| !t.is_empty()))
        .bind(new.source_run_id.clone().filter(|r| !r.is_empty()))
        .bind(now)
        .execute(&mut *tx)
        .await?;
        for tag in &new.tags {
            upsert_keyed(&mut tx, "logged_model_tags", &model_id, tag).await?;
        }
        for param in &new.params {
            upsert_keyed(&mut tx, "logged_model_params", &model_id, param).await?;
        }
        tx.commit().await?;
        self.get_logged_model(&model_id).await
    }

    pub async fn get_logged_model(&self, model_id: &str) -> Result<LoggedModel> {
        let mut models = self
            .load_logged_models(std::slice::from_ref(&model_id.to_string()))
            .await?;
        models.pop().ok_or_else(|| not_found(model_id))
    }

    async fn require_logged_model(&self, model_id: &str) -> Result<()> {
        let exists: Option<String> = sqlx::query_scalar(
            "SELECT model_id FROM logged_models WHERE model_id = $1 AND lifecycle_stage = 'active'",
        )
        .bind(model_id)
        .fetch_optional(&self.pool)
        .await?;
        exists.map(|_| ()).ok_or_else(|| not_found(model_id))
    }

    pub async fn finalize_logged_model(
        &self,
        model_id: &str,
        status: LoggedModelStatus,
    ) -> Result<LoggedModel> {
        self.require_logged_model(model_id).await?;
        sqlx::query("UPDATE logged_models SET status = $1, last_updated_timestamp_ms = $2 WHERE model_id = $3")
            .bind(status.as_str())
            .bind(now_ms())
            .bind(model_id)
            .execute(&self.write_pool)
            .await?;
        self.get_logged_model(model_id).await
    }

    pub async fn set_logged_model_tags(&self, model_id: &str, tags: &[KeyValue]) -> Result<()> {
        for tag in tags {
            validation::validate_key(KeyKind::Tag, &tag.key)?;
            validation::validate_tag_value(&tag.key, &tag.value)?;
        }
        self.require_logged_model(model_id).await?;
        let mut tx = self.write_pool.begin().await?;
        for tag in tags {
            upsert_keyed(&mut tx, "logged_model_tags", model_id, tag).await?;
        }
        touch(&mut tx, model_id).await?;
        tx.commit().await?;
        Ok(())
    }

    pub async fn delete_logged_model_tag(&self, model_id: &str, key: &str) -> Result<()> {
        self.require_logged_model(model_id).await?;
        let deleted = sqlx::query("DELETE FROM logged_model_tags WHERE model_id = $1 AND key = $2")
            .bind(model_id)
            .bind(key)
            .execute(&self.write_pool)
            .await?;
        if deleted.rows_affected() == 0 {
            return Err(StoreError::NotFound(format!(
                "No tag with key '{key}' found for logged model '{model_id}'."
            )));
        }
        Ok(())
    }

    pub async fn log_logged_model_params(&self, model_id: &str, params: &[KeyValue]) -> Result<()> {
        for param in params {
            validation::validate_key(KeyKind::Param, &param.key)?;
            validation::validate_param_value(&param.key, &param.value)?;
        }
        self.require_logged_model(model_id).await?;
        let mut tx = self.write_pool.begin().await?;
        for param in params {
            upsert_keyed(&mut tx, "logged_model_params", model_id, param).await?;
        }
        touch(&mut tx, model_id).await?;
        tx.commit().await?;
        Ok(())
    }

    pub async fn delete_logged_model(&self, model_id: &str) -> Result<()> {
        self.require_logged_model(model_id).await?;
        sqlx::query("UPDATE logged_models SET lifecycle_stage = 'deleted', last_updated_timestamp_ms = $1 WHERE model_id = $2")
            .bind(now_ms())
            .bind(model_id)
            .execute(&self.write_pool)
            .await?;
        Ok(())
    }

    /// `order_by` holds `(field_name, ascending)` pairs: this endpoint sends
    /// structured clauses rather than strings. `experiments` are the
    /// experiments searched (already narrowed to what the caller may read).
    ///
    /// `datasets` (`(name, digest)` pairs, MLflow's `datasets` clause) limit
    /// the metrics that filters and ordering consider to those logged on one
    /// of them; without a metric filter, a model must have such a metric.
    pub async fn search_logged_models(
        &self,
        experiments: &Readable,
        filter: Option<&str>,
        datasets: &[(String, Option<String>)],
        order_by: &[(String, bool)],
        max_results: i64,
        page_token: Option<&str>,
    ) -> Result<Page<LoggedModel>> {
        let paging = Paging::new(max_results, 50_000, page_token)?;
        let (filter, _) = search_sql::parse_search(SearchKind::LoggedModels, filter, &[])?;
        if order_by.len() > validation::MAX_ORDER_BY_CLAUSES {
            return Err(StoreError::InvalidInput(format!(
                "Invalid order_by: {} clauses; a search may sort by at most {}",
                order_by.len(),
                validation::MAX_ORDER_BY_CLAUSES
            )));
        }
        if let Readable::Only(ids) = experiments {
            search_sql::check_experiment_count(ids.len())?;
        }
        // This endpoint sends structured clauses: `metrics.<key>` or an attribute.
        let order_by: Vec<OrderBy> = order_by
            .iter()
            .map(|(field, ascending)| {
                let ident = match field.strip_prefix("metrics.") {
                    Some(key) => Identifier {
                        entity: Entity::Metric,
                        key: key.to_string(),
                    },
                    None => Identifier {
                        entity: Entity::Attribute,
                        key: field.clone(),
                    },
                };
                OrderBy {
                    ident,
                    ascending: *ascending,
                }
            })
            .collect();
        // The metrics that filters and ordering see (`search_sql` names them
        // `lm_metrics`): a model's metrics, on the chosen datasets if any.
        let mut sql = SqlBuilder::new(
            self.backend,
            "WITH lm_metrics AS (SELECT * FROM metrics WHERE model_id IS NOT NULL",
        );
        if !datasets.is_empty() {
            sql.push(" AND (");
            for (idx, (name, digest)) in datasets.iter().enumerate() {
                if idx > 0 {
                    sql.push(" OR ");
                }
                sql.push("(dataset_name = ");
                sql.bind_text(name.clone());
                if let Some(digest) = digest {
                    sql.push(" AND dataset_digest = ");
                    sql.bind_text(digest.clone());
                }
                sql.push(")");
            }
            sql.push(")");
        }
        sql.push(") SELECT lm.model_id FROM logged_models lm WHERE lm.lifecycle_stage = 'active'");
        let mentions_metric = filter.as_ref().is_some_and(filter_mentions_metric);
        if !datasets.is_empty() && !mentions_metric {
            sql.push(" AND EXISTS (SELECT 1 FROM lm_metrics x WHERE x.model_id = lm.model_id)");
        }
        if let Readable::Only(experiment_ids) = experiments {
            let ids = experiment_ids
                .iter()
                .map(|id| parse_experiment_id(id))
                .collect::<Result<Vec<_>>>()?;
            if ids.is_empty() {
                sql.push(" AND 1 = 0");
            } else {
                sql.push(" AND lm.experiment_id IN ");
                sql.bind_int_list(&ids);
            }
        }
        search_sql::push_filter_and_order(
            &mut sql,
            self.backend,
            Target::LoggedModels,
            filter.as_ref(),
            &order_by,
            "lm.creation_timestamp_ms DESC, lm.model_id ASC",
        )?;
        paging.push_limit(&mut sql);
        let (rows, next_page_token) = paging.split(sql.query().fetch_all(&self.pool).await?);
        let ids = rows
            .iter()
            .map(|r| db::text(r, "model_id"))
            .collect::<Result<Vec<_>>>()?;
        let items = self.load_logged_models(&ids).await?;
        Ok(Page {
            items,
            next_page_token,
        })
    }
    async fn load_logged_models(&self, model_ids: &[String]) -> Result<Vec<LoggedModel>> {
        if model_ids.is_empty() {
            return Ok(Vec::new());
        }
        let fetch = |sql: &str| {
            let mut builder = SqlBuilder::new(self.backend, sql);
            builder.bind_text_list(model_ids);
            builder
        };
        let mut models: HashMap<String, LoggedModel> = HashMap::new();
        for row in
            fetch("SELECT * FROM logged_models WHERE lifecycle_stage = 'active' AND model_id IN ")
                .query()
                .fetch_all(&self.pool)
                .await?
        {
            let model = logged_model_from_row(&row)?;
            models.insert(model.model_id.clone(), model);
        }
        for row in fetch("SELECT * FROM logged_model_tags WHERE model_id IN ")
            .query()
            .fetch_all(&self.pool)
            .await?
        {
            if let Some(model) = models.get_mut(&db::text(&row, "model_id")?) {
                model.tags.push(key_value_from_row(&row)?);
            }
        }
        for row in fetch("SELECT * FROM logged_model_params WHERE model_id IN ")
            .query()
            .fetch_all(&self.pool)
            .await?
        {
            if let Some(model) = models.get_mut(&db::text(&row, "model_id")?) {
                model.params.push(key_value_from_row(&row)?);
            }
        }
        let metric_rows = fetch("SELECT * FROM metrics WHERE model_id IN ")
            .query()
            .fetch_all(&self.pool)
            .await?;
        let mut latest: HashMap<(String, String, Option<String>, Option<String>), RunMetric> =
            HashMap::new();
        for row in &metric_rows {
            let metric = RunMetric {
                run_id: db::text(row, "run_id")?,
                metric: metric_from_row(row)?,
            };
            let model_id = db::opt_text(row, "model_id")?.unwrap_or_default();
            let slot = (
                model_id,
                metric.metric.key.clone(),
                metric.metric.dataset_name.clone(),
                metric.metric.dataset_digest.clone(),
            );
            let newer = latest.get(&slot).is_none_or(|old| {
                (metric.metric.step, metric.metric.timestamp)
                    >= (old.metric.step, old.metric.timestamp)
            });
            if newer {
                latest.insert(slot, metric);
            }
        }
        for ((model_id, ..), metric) in latest {
            if let Some(model) = models.get_mut(&model_id) {
                model.metrics.push(metric);
            }
        }
        Ok(model_ids
            .iter()
            .filter_map(|id| models.remove(id))
            .map(|mut model| {
                model.tags.sort_by(|a, b| a.key.cmp(&b.key));
                model.params.sort_by(|a, b| a.key.cmp(&b.key));
                model
                    .metrics
                    .sort_by(|a, b| a.metric.key.cmp(&b.metric.key));
                model
            })
            .collect())
    }

    /// The logged model behind a `models:/m-…` source, if it exists.
    pub(crate) async fn find_logged_model(&self, model_id: &str) -> Result<Option<LoggedModel>> {
        match self.get_logged_model(model_id).await {
            Ok(model) => Ok(Some(model)),
            Err(StoreError::NotFound(_)) => Ok(None),
            Err(err) => Err(err),
        }
    }
}

async fn upsert_keyed(
    tx: &mut sqlx::Transaction<'_, sqlx::Any>,
    table: &str,
    model_id: &str,
    entry: &KeyValue,
) -> Result<()> {
    let sql = format!(
        "INSERT INTO {table} (model_id, key, value) VALUES ($1, $2, $3) ON CONFLICT (model_id, key) DO UPDATE SET value = excluded.value"
    );
    sqlx::query(&sql)
        .bind(model_id)
        .bind(&entry.key)
        .bind(&entry.value)
        .execute(&mut **tx)
        .await?;
    Ok(())
}

async fn touch(tx: &mut sqlx::Transaction<'_, sqlx::Any>, model_id: &str) -> Result<()> {
    sqlx::query("UPDATE logged_models SET last_updated_timestamp_ms = $1 WHERE model_id = $2")
        .bind(now_ms())
        .bind(model_id)
        .execute(&mut **tx)
        .await?;
    Ok(())
}

fn not_found(model_id: &str) -> StoreError {
    StoreError::NotFound(format!("Logged model with ID '{model_id}' not found."))
}

fn logged_model_from_row(row: &AnyRow) -> Result<LoggedModel> {
    let status = db::text(row, "status")?;
    Ok(LoggedModel {
        model_id: db::text(row, "model_id")?,
        experiment_id: db::int(row, "experiment_id")?.to_string(),
        name: db::text(row, "name")?,
        artifact_uri: db::text(row, "artifact_uri")?,
        status: LoggedModelStatus::parse(&status).unwrap_or(LoggedModelStatus::Unspecified),
        status_message: db::opt_text(row, "status_message")?,
        model_type: db::opt_text(row, "model_type")?,
        source_run_id: db::opt_text(row, "source_run_id")?,
        creation_timestamp_ms: db::int(row, "creation_timestamp_ms")?,
        last_updated_timestamp_ms: db::int(row, "last_updated_timestamp_ms")?,
        tags: Vec::new(),
        params: Vec::new(),
        metrics: Vec::new(),
    })
}

/// Whether a filter compares any metric.
fn filter_mentions_metric(filter: &Filter) -> bool {
    match filter {
        Filter::Comparison(comparison) => comparison.ident.entity == Entity::Metric,
        Filter::And(parts) | Filter::Or(parts) => parts.iter().any(filter_mentions_metric),
    }
}
