//! Experiments: create, read, rename, soft-delete, restore, tags, search.

use sextant_core::search::SearchKind;
use sextant_core::validation::{self, KeyKind};
use sextant_core::{Experiment, KeyValue, LifecycleStage, Page, Readable, ViewType};
use sqlx::any::AnyRow;

use crate::db::{self, SqlBuilder};
use crate::search_sql::{self, Paging, Target};
use crate::{now_ms, Result, Store, StoreError};

const DEFAULT_EXPERIMENT_NAME: &str = "Default";

impl Store {
    pub(crate) async fn ensure_default_experiment(&self) -> Result<()> {
        // ON CONFLICT rather than a NOT EXISTS check: servers opening a new
        // database together would otherwise both see none and both insert.
        let now = now_ms();
        sqlx::query(
            "INSERT INTO experiments (experiment_id, name, artifact_location, lifecycle_stage, creation_time, last_update_time) \
             VALUES (0, $1, $2, 'active', $3, $3) ON CONFLICT DO NOTHING",
        )
        .bind(DEFAULT_EXPERIMENT_NAME)
        .bind(self.artifact_location_for(0))
        .bind(now)
        .execute(&self.write_pool)
        .await?;
        Ok(())
    }

    fn artifact_location_for(&self, experiment_id: i64) -> String {
        let root = &self.default_artifact_root;
        if root.ends_with('/') {
            format!("{root}{experiment_id}")
        } else {
            format!("{root}/{experiment_id}")
        }
    }

    /// Creates an experiment and returns its id.
    pub async fn create_experiment(
        &self,
        name: &str,
        artifact_location: Option<&str>,
        tags: &[KeyValue],
    ) -> Result<String> {
        validation::validate_name("Experiment", name)?;
        for tag in tags {
            validation::validate_key(KeyKind::Tag, &tag.key)?;
            validation::validate_tag_value(&tag.key, &tag.value)?;
        }
        let now = now_ms();
        let mut tx = self.write_pool.begin().await?;
        let inserted = sqlx::query_scalar::<_, i64>(
            "INSERT INTO experiments (name, artifact_location, lifecycle_stage, creation_time, last_update_time) \
             VALUES ($1, $2, 'active', $3, $3) RETURNING experiment_id",
        )
        .bind(name)
        .bind(artifact_location.unwrap_or(""))
        .bind(now)
        .fetch_one(&mut *tx)
        .await;
        let experiment_id = match inserted {
            Ok(id) => id,
            Err(err) if db::is_unique_violation(&err) => {
                return Err(StoreError::AlreadyExists(format!(
                    "Experiment '{name}' already exists."
                )))
            }
            Err(err) => return Err(err.into()),
        };
        if artifact_location.is_none_or(str::is_empty) {
            sqlx::query("UPDATE experiments SET artifact_location = $1 WHERE experiment_id = $2")
                .bind(self.artifact_location_for(experiment_id))
                .bind(experiment_id)
                .execute(&mut *tx)
                .await?;
        }
        for tag in tags {
            upsert_tag(&mut tx, experiment_id, &tag.key, &tag.value).await?;
        }
        tx.commit().await?;
        Ok(experiment_id.to_string())
    }

    pub async fn get_experiment(&self, experiment_id: &str) -> Result<Experiment> {
        let id = parse_experiment_id(experiment_id)?;
        let row = sqlx::query("SELECT * FROM experiments WHERE experiment_id = $1")
            .bind(id)
            .fetch_optional(&self.pool)
            .await?
            .ok_or_else(|| not_found(experiment_id))?;
        let mut experiment = experiment_from_row(&row)?;
        experiment.tags = self.experiment_tags(id).await?;
        Ok(experiment)
    }

    pub async fn get_experiment_by_name(&self, name: &str) -> Result<Experiment> {
        let row = sqlx::query("SELECT * FROM experiments WHERE name = $1")
            .bind(name)
            .fetch_optional(&self.pool)
            .await?
            .ok_or_else(|| {
                StoreError::NotFound(format!("Could not find experiment with name '{name}'"))
            })?;
        let mut experiment = experiment_from_row(&row)?;
        experiment.tags = self
            .experiment_tags(db::int(&row, "experiment_id")?)
            .await?;
        Ok(experiment)
    }

    /// The experiment, which must exist and be active (for writes under it).
    pub(crate) async fn require_active_experiment(
        &self,
        experiment_id: &str,
    ) -> Result<Experiment> {
        let experiment = self.get_experiment(experiment_id).await?;
        if experiment.lifecycle_stage != LifecycleStage::Active {
            return Err(StoreError::InvalidInput(format!(
                "The experiment {experiment_id} must be in the 'active' state. Current state is deleted."
            )));
        }
        Ok(experiment)
    }

    async fn experiment_tags(&self, experiment_id: i64) -> Result<Vec<KeyValue>> {
        let rows = sqlx::query(
            "SELECT key, value FROM experiment_tags WHERE experiment_id = $1 ORDER BY key",
        )
        .bind(experiment_id)
        .fetch_all(&self.pool)
        .await?;
        rows.iter().map(key_value_from_row).collect()
    }

    pub async fn rename_experiment(&self, experiment_id: &str, new_name: &str) -> Result<()> {
        validation::validate_name("Experiment", new_name)?;
        let experiment = self.require_active_experiment(experiment_id).await?;
        let updated = sqlx::query(
            "UPDATE experiments SET name = $1, last_update_time = $2 WHERE experiment_id = $3",
        )
        .bind(new_name)
        .bind(now_ms())
        .bind(parse_experiment_id(&experiment.experiment_id)?)
        .execute(&self.write_pool)
        .await;
        match updated {
            Ok(_) => Ok(()),
            Err(err) if db::is_unique_violation(&err) => Err(StoreError::AlreadyExists(format!(
                "Experiment '{new_name}' already exists."
            ))),
            Err(err) => Err(err.into()),
        }
    }

    /// Soft-deletes an experiment and its runs, as MLflow does.
    pub async fn delete_experiment(&self, experiment_id: &str) -> Result<()> {
        let id = parse_experiment_id(experiment_id)?;
        self.get_experiment(experiment_id).await?;
        if id == 0 {
            return Err(StoreError::InvalidInput("Cannot delete the default experiment '0'. This is an internally reserved experiment.".into()));
        }
        self.set_experiment_stage(id, LifecycleStage::Deleted).await
    }

    pub async fn restore_experiment(&self, experiment_id: &str) -> Result<()> {
        let id = parse_experiment_id(experiment_id)?;
        let experiment = self.get_experiment(experiment_id).await?;
        if experiment.lifecycle_stage != LifecycleStage::Deleted {
            return Err(StoreError::InvalidInput(format!(
                "Cannot restore an experiment that is not deleted (experiment {experiment_id} is active)"
            )));
        }
        self.set_experiment_stage(id, LifecycleStage::Active).await
    }

    async fn set_experiment_stage(&self, experiment_id: i64, stage: LifecycleStage) -> Result<()> {
        let now = now_ms();
        let mut tx = self.write_pool.begin().await?;
        sqlx::query("UPDATE experiments SET lifecycle_stage = $1, last_update_time = $2 WHERE experiment_id = $3")
            .bind(stage.as_str())
            .bind(now)
            .bind(experiment_id)
            .execute(&mut *tx)
            .await?;
        let deleted_time = (stage == LifecycleStage::Deleted).then_some(now);
        sqlx::query(
            "UPDATE runs SET lifecycle_stage = $1, deleted_time = $2 WHERE experiment_id = $3",
        )
        .bind(stage.as_str())
        .bind(deleted_time)
        .bind(experiment_id)
        .execute(&mut *tx)
        .await?;
        tx.commit().await?;
        Ok(())
    }

    pub async fn set_experiment_tag(
        &self,
        experiment_id: &str,
        key: &str,
        value: &str,
    ) -> Result<()> {
        validation::validate_key(KeyKind::Tag, key)?;
        validation::validate_tag_value(key, value)?;
        let experiment = self.require_active_experiment(experiment_id).await?;
        let id = parse_experiment_id(&experiment.experiment_id)?;
        let mut tx = self.write_pool.begin().await?;
        upsert_tag(&mut tx, id, key, value).await?;
        tx.commit().await?;
        Ok(())
    }

    pub async fn delete_experiment_tag(&self, experiment_id: &str, key: &str) -> Result<()> {
        let experiment = self.require_active_experiment(experiment_id).await?;
        let id = parse_experiment_id(&experiment.experiment_id)?;
        let deleted =
            sqlx::query("DELETE FROM experiment_tags WHERE experiment_id = $1 AND key = $2")
                .bind(id)
                .bind(key)
                .execute(&self.write_pool)
                .await?;
        if deleted.rows_affected() == 0 {
            return Err(StoreError::NotFound(format!(
                "No tag with name: {key} in experiment {experiment_id}."
            )));
        }
        Ok(())
    }

    pub async fn search_experiments(
        &self,
        view_type: ViewType,
        filter: Option<&str>,
        order_by: &[String],
        max_results: i64,
        page_token: Option<&str>,
        visible: &Readable,
    ) -> Result<Page<Experiment>> {
        let paging = Paging::new(max_results, 50_000, page_token)?;
        let (filter, order_by) =
            search_sql::parse_search(SearchKind::Experiments, filter, order_by)?;
        let mut sql = SqlBuilder::new(self.backend, "SELECT e.* FROM experiments e WHERE ");
        search_sql::push_view_type(&mut sql, "e.lifecycle_stage", view_type);
        sql.push_visible("e.experiment_id", visible, true);
        search_sql::push_filter_and_order(
            &mut sql,
            self.backend,
            Target::Experiments,
            filter.as_ref(),
            &order_by,
            "e.creation_time DESC, e.experiment_id ASC",
        )?;
        paging.push_limit(&mut sql);
        let (rows, next_page_token) = paging.split(sql.query().fetch_all(&self.pool).await?);
        let mut experiments = Vec::with_capacity(rows.len());
        for row in &rows {
            let mut experiment = experiment_from_row(row)?;
            experiment.tags = self.experiment_tags(db::int(row, "experiment_id")?).await?;
            experiments.push(experiment);
        }
        Ok(Page {
            items: experiments,
            next_page_token,
        })
    }
}

async fn upsert_tag(
    tx: &mut sqlx::Transaction<'_, sqlx::Any>,
    experiment_id: i64,
    key: &str,
    value: &str,
) -> Result<()> {
    sqlx::query(
        "INSERT INTO experiment_tags (experiment_id, key, value) VALUES ($1, $2, $3) \
         ON CONFLICT (experiment_id, key) DO UPDATE SET value = excluded.value",
    )
    .bind(experiment_id)
    .bind(key)
    .bind(value)
    .execute(&mut **tx)
    .await?;
    Ok(())
}

pub(crate) fn parse_experiment_id(experiment_id: &str) -> Result<i64> {
    experiment_id
        .trim()
        .parse::<i64>()
        .map_err(|_| not_found(experiment_id))
}

fn not_found(experiment_id: &str) -> StoreError {
    StoreError::NotFound(format!("No Experiment with id={experiment_id} exists"))
}

fn experiment_from_row(row: &AnyRow) -> Result<Experiment> {
    let stage = db::text(row, "lifecycle_stage")?;
    Ok(Experiment {
        experiment_id: db::int(row, "experiment_id")?.to_string(),
        name: db::text(row, "name")?,
        artifact_location: db::text(row, "artifact_location")?,
        lifecycle_stage: LifecycleStage::parse(&stage).unwrap_or(LifecycleStage::Active),
        creation_time: db::int(row, "creation_time")?,
        last_update_time: db::int(row, "last_update_time")?,
        tags: Vec::new(),
    })
}

pub(crate) fn key_value_from_row(row: &AnyRow) -> Result<KeyValue> {
    Ok(KeyValue {
        key: db::text(row, "key")?,
        value: db::text(row, "value")?,
    })
}
