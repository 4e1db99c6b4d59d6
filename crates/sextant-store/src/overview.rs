//! Aggregates that pages show beside lists (run counts, child runs, metric
//! extremes) and whole metric series for charts: one query each for a
//! whole page, never one per row.

use std::collections::HashMap;

use sqlx::Row;

use crate::db::{self, Bind, SqlBuilder};
use crate::{Result, Store};

/// Most ids one aggregate takes (a page of runs or experiments).
const MAX_IDS: usize = 10_000;

/// A metric's history: `(step, timestamp, value)` in step order.
pub type Series = Vec<(i64, i64, f64)>;

impl Store {
    /// Per experiment: its active runs and the latest run start.
    pub async fn experiment_activity(
        &self,
        experiment_ids: &[String],
    ) -> Result<HashMap<String, (i64, i64)>> {
        let ids: Vec<i64> = experiment_ids
            .iter()
            .take(MAX_IDS)
            .filter_map(|id| id.parse().ok())
            .collect();
        if ids.is_empty() {
            return Ok(HashMap::new());
        }
        let mut sql = SqlBuilder::new(
            self.backend,
            "SELECT experiment_id, COUNT(*) AS runs, MAX(start_time) AS latest FROM runs \
             WHERE lifecycle_stage = 'active' AND experiment_id IN ",
        );
        sql.bind_int_list(&ids).push(" GROUP BY experiment_id");
        let rows = sql.query().fetch_all(&self.pool).await?;
        rows.iter()
            .map(|row| {
                Ok((
                    db::int(row, "experiment_id")?.to_string(),
                    (
                        db::int(row, "runs")?,
                        db::opt_int(row, "latest")?.unwrap_or(0),
                    ),
                ))
            })
            .collect()
    }

    /// How many runs name each of `run_ids` as their parent
    /// (`mlflow.parentRunId`).
    pub async fn child_counts(&self, run_ids: &[String]) -> Result<HashMap<String, usize>> {
        if run_ids.is_empty() {
            return Ok(HashMap::new());
        }
        let mut sql = SqlBuilder::new(
            self.backend,
            "SELECT t.value AS parent, COUNT(*) AS children FROM run_tags t JOIN runs r ON r.run_id = t.run_id \
             WHERE r.lifecycle_stage = 'active' AND t.key = 'mlflow.parentRunId' AND t.value IN ",
        );
        sql.bind_text_list(run_ids.iter().take(MAX_IDS))
            .push(" GROUP BY t.value");
        let rows = sql.query().fetch_all(&self.pool).await?;
        rows.iter()
            .map(|row| Ok((db::text(row, "parent")?, db::int(row, "children")? as usize)))
            .collect()
    }

    /// The ids of the active runs whose parent is `parent_run_id`, newest
    /// first (at most 1,000).
    pub async fn child_run_ids(&self, parent_run_id: &str) -> Result<Vec<String>> {
        // The key is written out, not bound, so the partial index
        // `run_tags_by_parent` applies.
        let mut sql = SqlBuilder::new(
            self.backend,
            "SELECT r.run_id FROM run_tags t JOIN runs r ON r.run_id = t.run_id \
             WHERE t.key = 'mlflow.parentRunId' AND r.lifecycle_stage = 'active' AND t.value = ",
        );
        sql.bind(Bind::Text(parent_run_id.to_string()))
            .push(" ORDER BY r.start_time DESC LIMIT 1000");
        let rows = sql.query().fetch_all(&self.pool).await?;
        rows.iter().map(|row| db::text(row, "run_id")).collect()
    }

    /// The smallest and largest value each run logged under each key.
    pub async fn metric_extremes(
        &self,
        run_ids: &[String],
        keys: &[String],
    ) -> Result<HashMap<(String, String), (f64, f64)>> {
        if run_ids.is_empty() || keys.is_empty() {
            return Ok(HashMap::new());
        }
        let mut sql = SqlBuilder::new(
            self.backend,
            "SELECT run_id, key, MIN(value) AS low, MAX(value) AS high FROM metrics \
             WHERE is_nan = 0 AND run_id IN ",
        );
        sql.bind_text_list(run_ids.iter().take(MAX_IDS))
            .push(" AND key IN ")
            .bind_text_list(keys.iter().take(200))
            .push(" GROUP BY run_id, key");
        let rows = sql.query().fetch_all(&self.pool).await?;
        rows.iter()
            .map(|row| {
                Ok((
                    (db::text(row, "run_id")?, db::text(row, "key")?),
                    (db::real(row, "low")?, db::real(row, "high")?),
                ))
            })
            .collect()
    }

    /// The whole history of `key` for each run, in step order. Each run is
    /// its own query, several at a time on their own tasks: a chart reads
    /// millions of points, and turning database rows into values costs far
    /// more than finding them, so the work is spread over the cores instead
    /// of one query decoding every row on one. The columns are read by
    /// position and without the run id, which per row would be one more
    /// string to copy.
    pub async fn metric_series(
        &self,
        run_ids: &[String],
        key: &str,
    ) -> Result<HashMap<String, Series>> {
        let mut reads = tokio::task::JoinSet::new();
        let mut pending = run_ids.iter().take(MAX_IDS).cloned();
        let mut out: HashMap<String, Series> = HashMap::new();
        let concurrent = std::thread::available_parallelism().map_or(2, |n| n.get()) * 2;
        loop {
            while reads.len() < concurrent {
                let Some(run_id) = pending.next() else { break };
                let store = self.clone();
                let key = key.to_string();
                reads.spawn(async move {
                    let series = store.one_metric_series(&run_id, &key).await;
                    (run_id, series)
                });
            }
            let Some(joined) = reads.join_next().await else {
                break;
            };
            let (run_id, series) = joined.map_err(|err| {
                crate::StoreError::Database(sqlx::Error::Protocol(format!(
                    "reading a metric history: {err}"
                )))
            })?;
            let series = series?;
            if !series.is_empty() {
                out.insert(run_id, series);
            }
        }
        Ok(out)
    }

    async fn one_metric_series(&self, run_id: &str, key: &str) -> Result<Series> {
        let mut sql = SqlBuilder::new(
            self.backend,
            "SELECT step, timestamp, value, is_nan FROM metrics WHERE run_id = ",
        );
        sql.bind(Bind::Text(run_id.to_string()))
            .push(" AND key = ")
            .bind(Bind::Text(key.to_string()))
            .push(" ORDER BY step, timestamp");
        let rows = sql.query().fetch_all(&self.pool).await?;
        rows.iter()
            .map(|row| {
                let is_nan: i64 = row.try_get(3)?;
                let value = if is_nan != 0 {
                    f64::NAN
                } else {
                    row.try_get(2)?
                };
                Ok((row.try_get(0)?, row.try_get(1)?, value))
            })
            .collect()
    }

    /// Per run, the generation of its `key` history: it changes whenever
    /// points of that metric are written, so a copy of the history read at
    /// one generation is whole while the generation stays the same. Runs
    /// without a row are at generation 0.
    pub async fn metric_generations(
        &self,
        run_ids: &[String],
        key: &str,
    ) -> Result<HashMap<String, i64>> {
        if run_ids.is_empty() {
            return Ok(HashMap::new());
        }
        let mut sql = SqlBuilder::new(
            self.backend,
            "SELECT run_id, generation FROM metric_generations WHERE key = ",
        );
        sql.bind(Bind::Text(key.to_string()))
            .push(" AND run_id IN ")
            .bind_text_list(run_ids.iter().take(MAX_IDS));
        let rows = sql.query().fetch_all(&self.pool).await?;
        rows.iter()
            .map(|row| Ok((db::text(row, "run_id")?, db::int(row, "generation")?)))
            .collect()
    }
}
