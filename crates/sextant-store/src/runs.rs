//! Runs: lifecycle, logging (through the group-commit writer), datasets,
//! model inputs/outputs, metric history and search.

use std::collections::{BTreeMap, BTreeSet, HashMap, HashSet};

use sextant_core::search::{Entity, Filter, OrderBy, SearchKind};
use sextant_core::validation::{self, KeyKind};
use sextant_core::{
    Dataset, DatasetInput, KeyValue, LifecycleStage, Metric, ModelOutput, Page, Run, RunData,
    RunInfo, RunInputs, RunMetric, RunStatus, ViewType,
};
use sqlx::any::AnyRow;
use sqlx::{Any, Transaction};

use crate::db::{self, Bind, SqlBuilder};
use crate::experiments::{key_value_from_row, parse_experiment_id};
use crate::search_sql::{self, SortKey, SortValue, Target, ValueKind};
use crate::{new_hex_id, now_ms, Backend, Result, Store, StoreError};

/// The conditions every run search applies: experiments, lifecycle and
/// the user's filter; optionally only runs lacking a metric.
#[derive(Clone, Copy)]
struct RunConditions<'a> {
    experiment_ids: &'a [i64],
    view_type: ViewType,
    filter: Option<&'a Filter>,
    without_metric: Option<&'a str>,
}

impl RunConditions<'_> {
    fn push(&self, sql: &mut SqlBuilder, backend: Backend) -> Result<()> {
        sql.push("r.experiment_id IN ");
        sql.bind_int_list(self.experiment_ids);
        sql.push(" AND ");
        search_sql::push_view_type(sql, "r.lifecycle_stage", self.view_type);
        if let Some(filter) = self.filter {
            sql.push(" AND ");
            search_sql::push_filter(sql, backend, Target::Runs, filter)?;
        }
        if let Some(metric_key) = self.without_metric {
            sql.push(" AND NOT EXISTS (SELECT 1 FROM latest_metrics x WHERE x.run_id = r.run_id AND x.key = ");
            sql.bind_text(metric_key);
            sql.push(" AND x.is_nan = 0)");
        }
        Ok(())
    }
}

/// Tag MLflow uses to carry the run name.
const RUN_NAME_TAG: &str = "mlflow.runName";
/// Rows per multi-row `INSERT` (9 columns each stays far below the engines'
/// placeholder limits).
const METRIC_ROWS_PER_INSERT: usize = 200;

/// Metrics, params and tags to log to one run in one request.
#[derive(Debug, Clone, Default)]
pub struct LogBatch {
    pub run_id: String,
    pub metrics: Vec<Metric>,
    pub params: Vec<KeyValue>,
    pub tags: Vec<KeyValue>,
    /// The audit entry of the request, committed in the same transaction as
    /// the batch when it is accepted (and not at all when it is refused).
    pub audit: Option<sextant_core::NewAuditEntry>,
}

/// Fields `runs/update` may change; `None` leaves a field as it is.
#[derive(Debug, Clone, Default)]
pub struct RunUpdate {
    pub status: Option<RunStatus>,
    pub end_time: Option<i64>,
    pub run_name: Option<String>,
}

impl Store {
    pub async fn create_run(
        &self,
        experiment_id: &str,
        user_id: &str,
        run_name: Option<&str>,
        start_time: Option<i64>,
        tags: &[KeyValue],
    ) -> Result<Run> {
        let experiment = self.require_active_experiment(experiment_id).await?;
        let mut tags = tags.to_vec();
        for tag in &mut tags {
            validation::validate_key(KeyKind::Tag, &tag.key)?;
            validation::truncate_tag_value(&mut tag.value);
        }
        let tags = tags.as_slice();
        let tag_name = tags
            .iter()
            .find(|t| t.key == RUN_NAME_TAG)
            .map(|t| t.value.as_str());
        if let (Some(given), Some(tagged)) = (run_name.filter(|n| !n.is_empty()), tag_name) {
            if given != tagged {
                return Err(StoreError::InvalidInput(format!(
                    "Both 'run_name' argument and 'mlflow.runName' tag are specified, but with different values (run_name='{given}', mlflow.runName='{tagged}')."
                )));
            }
        }
        let run_id = new_hex_id();
        let name = run_name
            .filter(|n| !n.is_empty())
            .or(tag_name)
            .map(str::to_string)
            .unwrap_or_else(|| generate_run_name(&run_id));
        let artifact_uri = format!(
            "{}/{run_id}/artifacts",
            experiment.artifact_location.trim_end_matches('/')
        );
        let start_time = start_time.unwrap_or_else(now_ms);
        let mut tx = self.write_pool.begin().await?;
        sqlx::query(
            "INSERT INTO runs (run_id, experiment_id, name, user_id, status, start_time, end_time, artifact_uri, lifecycle_stage) \
             VALUES ($1, $2, $3, $4, 'RUNNING', $5, NULL, $6, 'active')",
        )
        .bind(&run_id)
        .bind(parse_experiment_id(experiment_id)?)
        .bind(&name)
        .bind(user_id)
        .bind(start_time)
        .bind(&artifact_uri)
        .execute(&mut *tx)
        .await?;
        let mut all_tags: Vec<KeyValue> = tags.to_vec();
        if tag_name.is_none() {
            all_tags.push(KeyValue {
                key: RUN_NAME_TAG.into(),
                value: name.clone(),
            });
        }
        for tag in &all_tags {
            upsert_run_tag(&mut tx, &run_id, &tag.key, &tag.value).await?;
        }
        tx.commit().await?;
        self.get_run(&run_id).await
    }

    pub async fn get_run(&self, run_id: &str) -> Result<Run> {
        let mut runs = self
            .load_runs(std::slice::from_ref(&run_id.to_string()))
            .await?;
        runs.pop().ok_or_else(|| run_not_found(run_id))
    }

    async fn run_info(&self, run_id: &str) -> Result<RunInfo> {
        let row = sqlx::query("SELECT * FROM runs WHERE run_id = $1")
            .bind(run_id)
            .fetch_optional(&self.pool)
            .await?
            .ok_or_else(|| run_not_found(run_id))?;
        run_info_from_row(&row)
    }

    async fn require_active_run(&self, run_id: &str) -> Result<RunInfo> {
        let info = self.run_info(run_id).await?;
        if info.lifecycle_stage != LifecycleStage::Active {
            return Err(run_not_active(run_id));
        }
        Ok(info)
    }

    pub async fn update_run(&self, run_id: &str, update: &RunUpdate) -> Result<RunInfo> {
        self.require_active_run(run_id).await?;
        let mut tx = self.write_pool.begin().await?;
        if let Some(status) = update.status {
            sqlx::query("UPDATE runs SET status = $1 WHERE run_id = $2")
                .bind(status.as_str())
                .bind(run_id)
                .execute(&mut *tx)
                .await?;
        }
        if let Some(end_time) = update.end_time {
            sqlx::query("UPDATE runs SET end_time = $1 WHERE run_id = $2")
                .bind(end_time)
                .bind(run_id)
                .execute(&mut *tx)
                .await?;
        }
        if let Some(name) = update.run_name.as_deref().filter(|n| !n.is_empty()) {
            sqlx::query("UPDATE runs SET name = $1 WHERE run_id = $2")
                .bind(name)
                .bind(run_id)
                .execute(&mut *tx)
                .await?;
            upsert_run_tag(&mut tx, run_id, RUN_NAME_TAG, name).await?;
        }
        tx.commit().await?;
        self.run_info(run_id).await
    }

    pub async fn delete_run(&self, run_id: &str) -> Result<()> {
        self.run_info(run_id).await?;
        sqlx::query(
            "UPDATE runs SET lifecycle_stage = 'deleted', deleted_time = $1 WHERE run_id = $2",
        )
        .bind(now_ms())
        .bind(run_id)
        .execute(&self.write_pool)
        .await?;
        Ok(())
    }

    pub async fn restore_run(&self, run_id: &str) -> Result<()> {
        self.run_info(run_id).await?;
        sqlx::query(
            "UPDATE runs SET lifecycle_stage = 'active', deleted_time = NULL WHERE run_id = $1",
        )
        .bind(run_id)
        .execute(&self.write_pool)
        .await?;
        Ok(())
    }

    /// Logs metrics, params and tags atomically; returns once committed.
    pub async fn log_batch(&self, mut batch: LogBatch) -> Result<()> {
        validation::validate_batch_sizes(
            batch.metrics.len(),
            batch.params.len(),
            batch.tags.len(),
        )?;
        for metric in &batch.metrics {
            validation::validate_key(KeyKind::Metric, &metric.key)?;
        }
        let mut seen_params: HashMap<&str, &str> = HashMap::new();
        for param in &mut batch.params {
            validation::truncate_param_value(&mut param.value);
        }
        for tag in &mut batch.tags {
            validation::truncate_tag_value(&mut tag.value);
        }
        for param in &batch.params {
            validation::validate_key(KeyKind::Param, &param.key)?;
            if let Some(previous) = seen_params.insert(&param.key, &param.value) {
                if previous != param.value {
                    return Err(StoreError::InvalidInput(format!(
                        "Duplicate parameter keys have been submitted with different values: '{}'",
                        param.key
                    )));
                }
            }
        }
        for tag in &batch.tags {
            validation::validate_key(KeyKind::Tag, &tag.key)?;
        }
        if batch.metrics.is_empty() && batch.params.is_empty() && batch.tags.is_empty() {
            // Still report a missing or deleted run, as MLflow does.
            self.require_active_run(&batch.run_id).await?;
            return Ok(());
        }
        self.writer.write(batch).await
    }

    pub async fn delete_run_tag(&self, run_id: &str, key: &str) -> Result<()> {
        self.require_active_run(run_id).await?;
        let deleted = sqlx::query("DELETE FROM run_tags WHERE run_id = $1 AND key = $2")
            .bind(run_id)
            .bind(key)
            .execute(&self.write_pool)
            .await?;
        if deleted.rows_affected() == 0 {
            return Err(StoreError::NotFound(format!(
                "No tag with name: {key} in run with id {run_id}"
            )));
        }
        Ok(())
    }

    /// Records datasets (and model inputs) a run consumed.
    pub async fn log_inputs(
        &self,
        run_id: &str,
        datasets: &[DatasetInput],
        model_ids: &[String],
    ) -> Result<()> {
        let info = self.require_active_run(run_id).await?;
        let experiment_id = parse_experiment_id(&info.experiment_id)?;
        let mut tx = self.write_pool.begin().await?;
        for input in datasets {
            let dataset = &input.dataset;
            if dataset.name.is_empty() || dataset.digest.is_empty() {
                return Err(StoreError::InvalidInput(
                    "Dataset name and digest are required".into(),
                ));
            }
            let existing: Option<String> = sqlx::query_scalar(
                "SELECT dataset_id FROM datasets WHERE experiment_id = $1 AND name = $2 AND digest = $3",
            )
            .bind(experiment_id)
            .bind(&dataset.name)
            .bind(&dataset.digest)
            .fetch_optional(&mut *tx)
            .await?;
            let dataset_id = match existing {
                Some(id) => id,
                None => {
                    let id = new_hex_id();
                    sqlx::query(
                        "INSERT INTO datasets (dataset_id, experiment_id, name, digest, source_type, source, dataset_schema, profile) \
                         VALUES ($1, $2, $3, $4, $5, $6, $7, $8)",
                    )
                    .bind(&id)
                    .bind(experiment_id)
                    .bind(&dataset.name)
                    .bind(&dataset.digest)
                    .bind(&dataset.source_type)
                    .bind(&dataset.source)
                    .bind(dataset.schema.clone())
                    .bind(dataset.profile.clone())
                    .execute(&mut *tx)
                    .await?;
                    id
                }
            };
            let context = input
                .tags
                .iter()
                .find(|t| t.key == "mlflow.data.context")
                .map(|t| t.value.clone());
            let tags_json = serde_json::to_string(
                &input
                    .tags
                    .iter()
                    .map(|t| serde_json::json!({"key": t.key, "value": t.value}))
                    .collect::<Vec<_>>(),
            )
            .map_err(|err| StoreError::InvalidInput(err.to_string()))?;
            sqlx::query(
                "INSERT INTO run_dataset_inputs (run_id, dataset_id, context, tags_json) VALUES ($1, $2, $3, $4) \
                 ON CONFLICT (run_id, dataset_id) DO UPDATE SET context = excluded.context, tags_json = excluded.tags_json",
            )
            .bind(run_id)
            .bind(&dataset_id)
            .bind(context)
            .bind(tags_json)
            .execute(&mut *tx)
            .await?;
        }
        for model_id in model_ids {
            sqlx::query("INSERT INTO run_model_inputs (run_id, model_id) VALUES ($1, $2) ON CONFLICT DO NOTHING")
                .bind(run_id)
                .bind(model_id)
                .execute(&mut *tx)
                .await?;
        }
        tx.commit().await?;
        Ok(())
    }

    /// Records models a run produced (MLflow 3 `runs/outputs`).
    pub async fn log_outputs(&self, run_id: &str, outputs: &[ModelOutput]) -> Result<()> {
        self.require_active_run(run_id).await?;
        let mut tx = self.write_pool.begin().await?;
        for output in outputs {
            sqlx::query(
                "INSERT INTO run_model_outputs (run_id, model_id, step) VALUES ($1, $2, $3) \
                 ON CONFLICT (run_id, model_id) DO UPDATE SET step = excluded.step",
            )
            .bind(run_id)
            .bind(&output.model_id)
            .bind(output.step)
            .execute(&mut *tx)
            .await?;
        }
        tx.commit().await?;
        Ok(())
    }

    /// Every point of one metric, ordered by step then timestamp, paged.
    pub async fn get_metric_history(
        &self,
        run_id: &str,
        key: &str,
        max_results: Option<i64>,
        page_token: Option<&str>,
    ) -> Result<Page<Metric>> {
        self.run_info(run_id).await?;
        let limit = max_results.unwrap_or(validation::MAX_METRIC_HISTORY_PAGE);
        if !(1..=validation::MAX_METRIC_HISTORY_PAGE).contains(&limit) {
            return Err(StoreError::InvalidInput(format!(
                "Invalid value {limit} for parameter 'max_results' supplied. It must be between 1 and {}",
                validation::MAX_METRIC_HISTORY_PAGE
            )));
        }
        // Keyset pagination: the token is the last point's primary-key
        // suffix, so each page is one index range scan however deep it is.
        let mut sql = SqlBuilder::new(self.backend, "SELECT * FROM metrics WHERE run_id = ");
        sql.bind_text(run_id).push(" AND key = ").bind_text(key);
        if let Some(after) = HistoryCursor::decode(page_token)? {
            sql.push(" AND (step, timestamp, value, is_nan) > (");
            sql.bind(Bind::Int(after.step)).push(", ");
            sql.bind(Bind::Int(after.timestamp)).push(", ");
            sql.bind(Bind::Real(after.value)).push(", ");
            sql.bind(Bind::Int(after.is_nan)).push(")");
        }
        sql.push(" ORDER BY step, timestamp, value, is_nan LIMIT ");
        sql.bind(Bind::Int(limit + 1));
        let rows = sql.query().fetch_all(&self.pool).await?;
        let has_more = rows.len() as i64 > limit;
        let rows = &rows[..rows.len().min(limit as usize)];
        let next_page_token = match rows.last() {
            Some(last) if has_more => Some(HistoryCursor::from_row(last)?.encode()),
            _ => None,
        };
        let items = rows
            .iter()
            .map(metric_from_row)
            .collect::<Result<Vec<_>>>()?;
        Ok(Page {
            items,
            next_page_token,
        })
    }

    /// Metric points of several runs, at most `max_results` per run, as
    /// MLflow 3's bulk-interval endpoint samples them: each run's points in
    /// `(step, timestamp, value)` order are cut into `max_results` buckets as
    /// SQL's `NTILE` cuts them, the first point of each bucket is kept, and
    /// the run's last point replaces the last kept one if it is not already
    /// there. Runs come back in the order they were asked for.
    pub async fn get_metric_history_bulk_interval(
        &self,
        run_ids: &[String],
        key: &str,
        start_step: Option<i64>,
        end_step: Option<i64>,
        max_results: i64,
    ) -> Result<Vec<RunMetric>> {
        if run_ids.is_empty() {
            return Err(StoreError::InvalidInput(
                "Missing value for required parameter 'run_ids'".into(),
            ));
        }
        if run_ids.len() > 100 {
            return Err(StoreError::InvalidInput(format!(
                "GetMetricHistoryBulkInterval request must specify at most 100 run_ids. Received {} run_ids.",
                run_ids.len()
            )));
        }
        if !(1..=MAX_BULK_INTERVAL_RESULTS).contains(&max_results) {
            return Err(StoreError::InvalidInput(format!(
                "max_results must be between 1 and {MAX_BULK_INTERVAL_RESULTS}."
            )));
        }
        match (start_step, end_step) {
            (Some(start), Some(end)) if start > end => {
                return Err(StoreError::InvalidInput(format!(
                    "end_step must be greater than start_step. Found start_step={start} and end_step={end}."
                )))
            }
            (Some(_), None) | (None, Some(_)) => {
                return Err(StoreError::InvalidInput(
                    "If either start step or end step are specified, both must be specified."
                        .into(),
                ))
            }
            _ => {}
        }
        let mut sql = SqlBuilder::new(self.backend, "SELECT * FROM metrics WHERE key = ");
        sql.bind_text(key);
        sql.push(" AND run_id IN ");
        sql.bind_text_list(run_ids);
        if let (Some(start), Some(end)) = (start_step, end_step) {
            sql.push(" AND step >= ");
            sql.bind(Bind::Int(start));
            sql.push(" AND step <= ");
            sql.bind(Bind::Int(end));
        }
        sql.push(" ORDER BY run_id, step, timestamp, value, is_nan");
        let rows = sql.query().fetch_all(&self.pool).await?;
        let mut by_run: HashMap<String, Vec<Metric>> = HashMap::new();
        for row in &rows {
            by_run
                .entry(db::text(row, "run_id")?)
                .or_default()
                .push(metric_from_row(row)?);
        }
        let mut result = Vec::new();
        let mut seen = HashSet::new();
        for run_id in run_ids {
            if !seen.insert(run_id) {
                continue;
            }
            let Some(metrics) = by_run.remove(run_id) else {
                continue;
            };
            for index in ntile_sample(metrics.len(), max_results as usize) {
                result.push(RunMetric {
                    run_id: run_id.clone(),
                    metric: metrics[index].clone(),
                });
            }
        }
        Ok(result)
    }

    /// Runs matching a filter, in `order_by` order (then newest first), one
    /// page at a time. Pages are keyset pages: the token carries the last
    /// run's sort values, so a page deep into the results costs the same as
    /// the first one.
    pub async fn search_runs(
        &self,
        experiment_ids: &[String],
        filter: Option<&str>,
        view_type: ViewType,
        max_results: i64,
        order_by: &[String],
        page_token: Option<&str>,
    ) -> Result<Page<Run>> {
        if !(1..=validation::MAX_RUNS_PAGE).contains(&max_results) {
            return Err(StoreError::InvalidInput(format!(
                "Invalid value {max_results} for parameter 'max_results' supplied. It must be between 1 and {}",
                validation::MAX_RUNS_PAGE
            )));
        }
        let (filter, order_by) = search_sql::parse_search(SearchKind::Runs, filter, order_by)?;
        let mut keys = order_by
            .iter()
            .map(|clause| SortKey::for_order(Target::Runs, clause))
            .collect::<Result<Vec<_>>>()?;
        keys.push(SortKey::column("r.start_time", ValueKind::Int, false));
        keys.push(SortKey::column("r.run_id", ValueKind::Text, true));
        let cursor = search_sql::decode_cursor(page_token, &keys)?;
        crate::search_sql::check_experiment_count(experiment_ids.len())?;
        let experiment_numbers = experiment_ids
            .iter()
            .map(|id| {
                id.trim()
                    .parse::<i64>()
                    .map_err(|_| StoreError::InvalidInput(format!("Invalid experiment id '{id}'")))
            })
            .collect::<Result<Vec<_>>>()?;
        if experiment_numbers.is_empty() {
            return Ok(Page {
                items: Vec::new(),
                next_page_token: None,
            });
        }
        let common = RunConditions {
            experiment_ids: &experiment_numbers,
            view_type,
            filter: filter.as_ref(),
            without_metric: None,
        };
        let wanted = max_results + 1;
        let mut found = match order_by.first() {
            Some(first) if first.ident.entity == Entity::Metric => {
                self.runs_ordered_by_metric(&common, first, &keys, cursor.as_deref(), wanted)
                    .await?
            }
            _ => {
                self.select_runs(&common, None, &keys, cursor.as_deref(), wanted)
                    .await?
            }
        };
        let next_page_token = if found.len() as i64 > max_results {
            found.truncate(max_results as usize);
            found
                .last()
                .map(|(_, values)| search_sql::encode_cursor(values))
        } else {
            None
        };
        let run_ids: Vec<String> = found.into_iter().map(|(run_id, _)| run_id).collect();
        let items = self.load_runs(&run_ids).await?;
        Ok(Page {
            items,
            next_page_token,
        })
    }

    /// Up to `limit` runs after `cursor` in the order of `keys`, with their
    /// sort values. With `metric`, only runs that have that metric, joined
    /// as `o` so that `keys` may use `o.value`.
    async fn select_runs(
        &self,
        common: &RunConditions<'_>,
        metric: Option<&str>,
        keys: &[SortKey],
        cursor: Option<&[SortValue]>,
        limit: i64,
    ) -> Result<Vec<(String, Vec<SortValue>)>> {
        let mut sql = SqlBuilder::new(self.backend, "SELECT r.run_id");
        let aliases: Vec<String> = (0..keys.len()).map(|idx| format!("s{idx}")).collect();
        for (key, alias) in keys.iter().zip(&aliases) {
            sql.push(", ");
            key.push_select(&mut sql, alias);
        }
        match metric {
            Some(metric_key) => {
                sql.push(
                    " FROM latest_metrics o JOIN runs r ON r.run_id = o.run_id WHERE o.key = ",
                );
                sql.bind_text(metric_key);
                sql.push(" AND o.is_nan = 0 AND ");
            }
            None => {
                sql.push(" FROM runs r WHERE ");
            }
        }
        common.push(&mut sql, self.backend)?;
        if let Some(cursor) = cursor {
            sql.push(" AND ");
            search_sql::push_keyset_after(&mut sql, keys, cursor);
        }
        sql.push(" ORDER BY ");
        for (idx, key) in keys.iter().enumerate() {
            if idx > 0 {
                sql.push(", ");
            }
            key.push_order(&mut sql);
        }
        sql.push(" LIMIT ");
        sql.bind(Bind::Int(limit));
        let rows = sql.query().fetch_all(&self.pool).await?;
        rows.iter()
            .map(|row| {
                let values = keys
                    .iter()
                    .zip(&aliases)
                    .map(|(key, alias)| key.decode(row, alias))
                    .collect::<Result<Vec<_>>>()?;
                Ok((db::text(row, "run_id")?, values))
            })
            .collect()
    }

    /// Runs ordered first by a metric, the common way to look for the best
    /// runs. Runs that have the metric come first, read in order from the
    /// `(key, value)` index so that the database stops after the page
    /// instead of sorting every candidate; runs without it follow, in the
    /// order of the remaining keys. Same order, and same tokens, as the
    /// general query, which sorts missing values last.
    async fn runs_ordered_by_metric(
        &self,
        common: &RunConditions<'_>,
        first: &OrderBy,
        keys: &[SortKey],
        cursor: Option<&[SortValue]>,
        wanted: i64,
    ) -> Result<Vec<(String, Vec<SortValue>)>> {
        let rest = &keys[1..];
        let in_runs_without = cursor.is_some_and(|values| values[0] == SortValue::Null);
        let mut found = Vec::new();
        if !in_runs_without {
            let mut with_metric =
                vec![SortKey::column("o.value", ValueKind::Real, first.ascending)];
            with_metric.extend(rest.iter().cloned());
            found = self
                .select_runs(common, Some(&first.ident.key), &with_metric, cursor, wanted)
                .await?;
            if found.len() as i64 >= wanted {
                return Ok(found);
            }
        }
        let rest_cursor = cursor
            .filter(|_| in_runs_without)
            .map(|values| &values[1..]);
        let remaining = wanted - found.len() as i64;
        let conditions = RunConditions {
            without_metric: Some(&first.ident.key),
            ..*common
        };
        for (run_id, values) in self
            .select_runs(&conditions, None, rest, rest_cursor, remaining)
            .await?
        {
            let mut full = Vec::with_capacity(keys.len());
            full.push(SortValue::Null);
            full.extend(values);
            found.push((run_id, full));
        }
        Ok(found)
    }

    /// Loads full runs (info, latest metrics, params, tags, inputs, outputs)
    /// in a fixed number of queries, keeping the order of `run_ids`.
    async fn load_runs(&self, run_ids: &[String]) -> Result<Vec<Run>> {
        if run_ids.is_empty() {
            return Ok(Vec::new());
        }
        let fetch = |table: &str| {
            let mut sql = SqlBuilder::new(
                self.backend,
                &format!("SELECT * FROM {table} WHERE run_id IN "),
            );
            sql.bind_text_list(run_ids);
            sql
        };
        let infos = fetch("runs");
        let info_rows = infos.query().fetch_all(&self.pool).await?;
        let mut runs: HashMap<String, Run> = HashMap::with_capacity(info_rows.len());
        for row in &info_rows {
            let info = run_info_from_row(row)?;
            runs.insert(
                info.run_id.clone(),
                Run {
                    info,
                    data: RunData::default(),
                    inputs: RunInputs::default(),
                    outputs: Vec::new(),
                },
            );
        }
        let metrics = fetch("latest_metrics");
        for row in metrics.query().fetch_all(&self.pool).await? {
            if let Some(run) = runs.get_mut(&db::text(&row, "run_id")?) {
                run.data.metrics.push(metric_from_row(&row)?);
            }
        }
        let params = fetch("params");
        for row in params.query().fetch_all(&self.pool).await? {
            if let Some(run) = runs.get_mut(&db::text(&row, "run_id")?) {
                run.data.params.push(key_value_from_row(&row)?);
            }
        }
        let tags = fetch("run_tags");
        for row in tags.query().fetch_all(&self.pool).await? {
            if let Some(run) = runs.get_mut(&db::text(&row, "run_id")?) {
                run.data.tags.push(key_value_from_row(&row)?);
            }
        }
        let mut inputs = SqlBuilder::new(
            self.backend,
            "SELECT ri.run_id, ri.tags_json, d.name, d.digest, d.source_type, d.source, d.dataset_schema, d.profile \
             FROM run_dataset_inputs ri JOIN datasets d ON d.dataset_id = ri.dataset_id WHERE ri.run_id IN ",
        );
        inputs.bind_text_list(run_ids);
        for row in inputs.query().fetch_all(&self.pool).await? {
            if let Some(run) = runs.get_mut(&db::text(&row, "run_id")?) {
                run.inputs
                    .dataset_inputs
                    .push(dataset_input_from_row(&row)?);
            }
        }
        let model_inputs = fetch("run_model_inputs");
        for row in model_inputs.query().fetch_all(&self.pool).await? {
            if let Some(run) = runs.get_mut(&db::text(&row, "run_id")?) {
                run.inputs.model_inputs.push(db::text(&row, "model_id")?);
            }
        }
        let outputs = fetch("run_model_outputs");
        for row in outputs.query().fetch_all(&self.pool).await? {
            if let Some(run) = runs.get_mut(&db::text(&row, "run_id")?) {
                run.outputs.push(ModelOutput {
                    model_id: db::text(&row, "model_id")?,
                    step: db::int(&row, "step")?,
                });
            }
        }
        let mut ordered = Vec::with_capacity(run_ids.len());
        for run_id in run_ids {
            if let Some(mut run) = runs.remove(run_id) {
                run.data.metrics.sort_by(|a, b| a.key.cmp(&b.key));
                run.data.params.sort_by(|a, b| a.key.cmp(&b.key));
                run.data.tags.sort_by(|a, b| a.key.cmp(&b.key));
                ordered.push(run);
            }
        }
        Ok(ordered)
    }
}

/// Applies one batch inside the writer's transaction.
pub(crate) async fn apply_log_batch(
    tx: &mut Transaction<'_, Any>,
    backend: Backend,
    batch: &LogBatch,
) -> Result<()> {
    let run_id = batch.run_id.as_str();
    let stage: Option<String> =
        sqlx::query_scalar("SELECT lifecycle_stage FROM runs WHERE run_id = $1")
            .bind(run_id)
            .fetch_optional(&mut **tx)
            .await?;
    match stage.as_deref() {
        None => return Err(run_not_found(run_id)),
        Some("active") => {}
        Some(_) => return Err(run_not_active(run_id)),
    }
    for param in &batch.params {
        let inserted = sqlx::query("INSERT INTO params (run_id, key, value) VALUES ($1, $2, $3) ON CONFLICT (run_id, key) DO NOTHING")
            .bind(run_id)
            .bind(&param.key)
            .bind(&param.value)
            .execute(&mut **tx)
            .await?;
        if inserted.rows_affected() == 0 {
            let existing: String =
                sqlx::query_scalar("SELECT value FROM params WHERE run_id = $1 AND key = $2")
                    .bind(run_id)
                    .bind(&param.key)
                    .fetch_one(&mut **tx)
                    .await?;
            if existing != param.value {
                return Err(StoreError::InvalidInput(format!(
                    "Changing param values is not allowed. Param with key='{}' was already logged with value='{}' for run ID='{}'. Attempted logging new value '{}'.",
                    param.key, existing, run_id, param.value
                )));
            }
        }
    }
    for tag in &batch.tags {
        upsert_run_tag(tx, run_id, &tag.key, &tag.value).await?;
        if tag.key == RUN_NAME_TAG {
            sqlx::query("UPDATE runs SET name = $1 WHERE run_id = $2")
                .bind(&tag.value)
                .bind(run_id)
                .execute(&mut **tx)
                .await?;
        }
    }
    if !batch.metrics.is_empty() {
        let points: Vec<RunPoint<'_>> = batch
            .metrics
            .iter()
            .map(|metric| (run_id, metric))
            .collect();
        insert_metric_points(tx, backend, &points).await?;
    }
    Ok(())
}

/// One metric point and the run it belongs to; the writer merges the
/// points of many requests into one set of statements.
pub(crate) type RunPoint<'a> = (&'a str, &'a Metric);

/// Appends points to the history and moves `latest_metrics` forward, in a
/// fixed number of statements however many runs and requests they span.
pub(crate) async fn insert_metric_points(
    tx: &mut Transaction<'_, Any>,
    backend: Backend,
    points: &[RunPoint<'_>],
) -> Result<()> {
    for chunk in points.chunks(METRIC_ROWS_PER_INSERT) {
        let mut sql = SqlBuilder::new(
            backend,
            "INSERT INTO metrics (run_id, key, step, timestamp, value, is_nan, model_id, dataset_name, dataset_digest) VALUES ",
        );
        for (idx, (run_id, metric)) in chunk.iter().enumerate() {
            if idx > 0 {
                sql.push(", ");
            }
            push_metric_values(&mut sql, run_id, metric);
        }
        sql.push(" ON CONFLICT DO NOTHING");
        sql.query().execute(&mut **tx).await?;
    }
    update_latest_metrics(tx, backend, points).await?;
    bump_metric_generations(tx, backend, points).await
}

/// Moves on the generation of every (run, metric) the points touch, in the
/// transaction that writes them (see `Store::metric_generations`).
async fn bump_metric_generations(
    tx: &mut Transaction<'_, Any>,
    backend: Backend,
    points: &[RunPoint<'_>],
) -> Result<()> {
    let touched: BTreeSet<(&str, &str)> = points
        .iter()
        .map(|(run_id, metric)| (*run_id, metric.key.as_str()))
        .collect();
    let touched: Vec<_> = touched.into_iter().collect();
    for chunk in touched.chunks(METRIC_ROWS_PER_INSERT) {
        let mut sql = SqlBuilder::new(
            backend,
            "INSERT INTO metric_generations (run_id, key, generation) VALUES ",
        );
        for (idx, (run_id, key)) in chunk.iter().enumerate() {
            if idx > 0 {
                sql.push(", ");
            }
            sql.push("(");
            sql.bind_text(*run_id);
            sql.push(", ");
            sql.bind_text(*key);
            sql.push(", 1)");
        }
        sql.push(
            " ON CONFLICT (run_id, key) DO UPDATE SET generation = metric_generations.generation + 1",
        );
        sql.query().execute(&mut **tx).await?;
    }
    Ok(())
}

/// Keeps `latest_metrics` at the greatest `(step, timestamp, value)` per run
/// and key, MLflow's definition of a run's current metric value. Points are
/// first reduced to one per (run, key), so one upsert statement never
/// touches a row twice (PostgreSQL refuses that).
async fn update_latest_metrics(
    tx: &mut Transaction<'_, Any>,
    backend: Backend,
    points: &[RunPoint<'_>],
) -> Result<()> {
    let mut latest: BTreeMap<(&str, &str), &Metric> = BTreeMap::new();
    for (run_id, metric) in points {
        let entry = latest
            .entry((run_id, metric.key.as_str()))
            .or_insert(metric);
        if sort_key(metric) > sort_key(entry) {
            *entry = metric;
        }
    }
    let latest: Vec<_> = latest.into_iter().collect();
    for chunk in latest.chunks(METRIC_ROWS_PER_INSERT) {
        let mut sql = SqlBuilder::new(
            backend,
            "INSERT INTO latest_metrics (run_id, key, step, timestamp, value, is_nan, model_id, dataset_name, dataset_digest) VALUES ",
        );
        for (idx, ((run_id, _), metric)) in chunk.iter().enumerate() {
            if idx > 0 {
                sql.push(", ");
            }
            push_metric_values(&mut sql, run_id, metric);
        }
        sql.push(
            " ON CONFLICT (run_id, key) DO UPDATE SET step = excluded.step, timestamp = excluded.timestamp, \
             value = excluded.value, is_nan = excluded.is_nan, model_id = excluded.model_id, \
             dataset_name = excluded.dataset_name, dataset_digest = excluded.dataset_digest \
             WHERE excluded.step > latest_metrics.step \
             OR (excluded.step = latest_metrics.step AND excluded.timestamp > latest_metrics.timestamp) \
             OR (excluded.step = latest_metrics.step AND excluded.timestamp = latest_metrics.timestamp \
                 AND excluded.value > latest_metrics.value)",
        );
        sql.query().execute(&mut **tx).await?;
    }
    Ok(())
}

fn sort_key(metric: &Metric) -> (i64, i64, f64) {
    (metric.step, metric.timestamp, stored_value(metric.value))
}

/// NaN is stored as 0 with `is_nan` set; neither engine keeps NaN reliably.
fn stored_value(value: f64) -> f64 {
    if value.is_nan() {
        0.0
    } else {
        value
    }
}

fn push_metric_values(sql: &mut SqlBuilder, run_id: &str, metric: &Metric) {
    sql.push("(");
    sql.bind_text(run_id).push(", ");
    sql.bind_text(metric.key.clone()).push(", ");
    sql.bind(Bind::Int(metric.step)).push(", ");
    sql.bind(Bind::Int(metric.timestamp)).push(", ");
    sql.bind(Bind::Real(stored_value(metric.value))).push(", ");
    sql.bind(Bind::Int(i64::from(metric.value.is_nan())))
        .push(", ");
    sql.bind(Bind::OptText(metric.model_id.clone())).push(", ");
    sql.bind(Bind::OptText(metric.dataset_name.clone()))
        .push(", ");
    sql.bind(Bind::OptText(metric.dataset_digest.clone()));
    sql.push(")");
}

async fn upsert_run_tag(
    tx: &mut Transaction<'_, Any>,
    run_id: &str,
    key: &str,
    value: &str,
) -> Result<()> {
    sqlx::query(
        "INSERT INTO run_tags (run_id, key, value) VALUES ($1, $2, $3) ON CONFLICT (run_id, key) DO UPDATE SET value = excluded.value",
    )
    .bind(run_id)
    .bind(key)
    .bind(value)
    .execute(&mut **tx)
    .await?;
    Ok(())
}

/// Picks at most `max` of the sorted distinct `steps`, evenly spaced, always
/// keeping the first and the last.
/// MLflow's largest and default `max_results` for bulk-interval history.
pub const MAX_BULK_INTERVAL_RESULTS: i64 = 2500;

/// The indices MLflow keeps of `total` ordered points: `NTILE(buckets)` puts
/// the first `total % buckets` buckets one point longer than the rest, the
/// first point of each bucket is kept, and the last point replaces the last
/// kept one (or is added) so the series ends where it ends.
fn ntile_sample(total: usize, buckets: usize) -> Vec<usize> {
    if total == 0 {
        return Vec::new();
    }
    let buckets = buckets.max(1);
    let mut chosen: Vec<usize> = if total <= buckets {
        (0..total).collect()
    } else {
        let (size, longer) = (total / buckets, total % buckets);
        (0..buckets).map(|i| i * size + i.min(longer)).collect()
    };
    let last = total - 1;
    if chosen.last() != Some(&last) {
        if chosen.len() >= buckets {
            chosen.pop();
        }
        chosen.push(last);
    }
    chosen
}

pub(crate) fn metric_from_row(row: &AnyRow) -> Result<Metric> {
    Ok(Metric {
        key: db::text(row, "key")?,
        value: db::metric_value(row)?,
        timestamp: db::int(row, "timestamp")?,
        step: db::int(row, "step")?,
        model_id: db::opt_text(row, "model_id")?,
        dataset_name: db::opt_text(row, "dataset_name")?,
        dataset_digest: db::opt_text(row, "dataset_digest")?,
    })
}

fn run_info_from_row(row: &AnyRow) -> Result<RunInfo> {
    let status = db::text(row, "status")?;
    let stage = db::text(row, "lifecycle_stage")?;
    Ok(RunInfo {
        run_id: db::text(row, "run_id")?,
        run_name: db::text(row, "name")?,
        experiment_id: db::int(row, "experiment_id")?.to_string(),
        user_id: db::text(row, "user_id")?,
        status: RunStatus::parse(&status).unwrap_or(RunStatus::Running),
        start_time: db::int(row, "start_time")?,
        end_time: db::opt_int(row, "end_time")?,
        artifact_uri: db::text(row, "artifact_uri")?,
        lifecycle_stage: LifecycleStage::parse(&stage).unwrap_or(LifecycleStage::Active),
    })
}

fn dataset_input_from_row(row: &AnyRow) -> Result<DatasetInput> {
    let tags_json = db::text(row, "tags_json")?;
    let tags: Vec<KeyValue> = serde_json::from_str::<Vec<serde_json::Value>>(&tags_json)
        .unwrap_or_default()
        .into_iter()
        .filter_map(|tag| {
            Some(KeyValue {
                key: tag.get("key")?.as_str()?.to_string(),
                value: tag.get("value")?.as_str()?.to_string(),
            })
        })
        .collect();
    Ok(DatasetInput {
        tags,
        dataset: Dataset {
            name: db::text(row, "name")?,
            digest: db::text(row, "digest")?,
            source_type: db::text(row, "source_type")?,
            source: db::text(row, "source")?,
            schema: db::opt_text(row, "dataset_schema")?,
            profile: db::opt_text(row, "profile")?,
        },
    })
}

pub(crate) fn run_not_found(run_id: &str) -> StoreError {
    StoreError::NotFound(format!("Run with id={run_id} not found"))
}

pub(crate) fn run_not_active(run_id: &str) -> StoreError {
    StoreError::InvalidInput(format!(
        "The run {run_id} must be in the 'active' state. Current state is deleted."
    ))
}

/// A readable default run name in MLflow's `adjective-noun-number` style,
/// derived from the run id so it needs no random source of its own.
fn generate_run_name(run_id: &str) -> String {
    const ADJECTIVES: &[&str] = &[
        "amber", "bold", "brave", "bright", "calm", "clever", "crisp", "eager", "fast", "gentle",
        "glad", "keen", "lucid", "merry", "nimble", "proud", "quiet", "rare", "sharp", "steady",
        "swift", "tidy", "vast", "wise",
    ];
    const NOUNS: &[&str] = &[
        "albatross",
        "badger",
        "bison",
        "crane",
        "dolphin",
        "falcon",
        "finch",
        "fox",
        "gull",
        "hare",
        "heron",
        "ibis",
        "lynx",
        "mole",
        "newt",
        "otter",
        "owl",
        "panda",
        "puffin",
        "raven",
        "seal",
        "stork",
        "tern",
        "wren",
    ];
    let bytes = run_id.as_bytes();
    let pick = |offset: usize| {
        bytes
            .get(offset..offset + 4)
            .and_then(|b| std::str::from_utf8(b).ok())
            .and_then(|s| u32::from_str_radix(s, 16).ok())
            .unwrap_or(0) as usize
    };
    format!(
        "{}-{}-{}",
        ADJECTIVES[pick(0) % ADJECTIVES.len()],
        NOUNS[pick(4) % NOUNS.len()],
        pick(8) % 1000
    )
}

/// Position after the last point of a metric-history page.
struct HistoryCursor {
    step: i64,
    timestamp: i64,
    value: f64,
    is_nan: i64,
}

impl HistoryCursor {
    fn from_row(row: &AnyRow) -> Result<HistoryCursor> {
        Ok(HistoryCursor {
            step: db::int(row, "step")?,
            timestamp: db::int(row, "timestamp")?,
            value: db::real(row, "value")?,
            is_nan: db::int(row, "is_nan")?,
        })
    }

    fn encode(&self) -> String {
        use base64::Engine;
        let json = serde_json::json!([self.step, self.timestamp, self.value, self.is_nan]);
        base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(json.to_string())
    }

    fn decode(token: Option<&str>) -> Result<Option<HistoryCursor>> {
        use base64::Engine;
        let Some(token) = token.filter(|t| !t.is_empty()) else {
            return Ok(None);
        };
        let invalid = || StoreError::InvalidInput(format!("Invalid page token '{token}'"));
        let bytes = base64::engine::general_purpose::URL_SAFE_NO_PAD
            .decode(token)
            .map_err(|_| invalid())?;
        let parts: (i64, i64, f64, i64) = serde_json::from_slice(&bytes).map_err(|_| invalid())?;
        Ok(Some(HistoryCursor {
            step: parts.0,
            timestamp: parts.1,
            value: parts.2,
            is_nan: parts.3,
        }))
    }
}

#[cfg(test)]
mod tests {
    use super::ntile_sample;

    /// MLflow 3.17.2's answers for the same shapes (steps 0..999 and
    /// 100..=200, one point per step), read from its server.
    #[test]
    fn bulk_interval_keeps_the_points_mlflow_keeps() {
        let tenth: Vec<usize> = (0..9).map(|i| i * 100).chain([999]).collect();
        assert_eq!(ntile_sample(1000, 10), tenth);
        let many = ntile_sample(1000, 320);
        assert_eq!(many.len(), 320);
        assert_eq!(&many[..3], &[0, 4, 8]);
        assert_eq!(&many[39..42], &[156, 160, 163]);
        assert_eq!(many.last(), Some(&999));
        let range: Vec<usize> = ntile_sample(101, 10).iter().map(|i| i + 100).collect();
        assert_eq!(range, [100, 111, 121, 131, 141, 151, 161, 171, 181, 200]);
        assert_eq!(ntile_sample(3, 10), [0, 1, 2]);
        assert_eq!(ntile_sample(5, 1), [4]);
        assert!(ntile_sample(0, 5).is_empty());
    }
}
