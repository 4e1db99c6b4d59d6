//! The model registry: registered models, versions, stages, aliases, tags.

use std::collections::HashMap;

use sextant_core::search::SearchKind;
use sextant_core::validation::{self, KeyKind};
use sextant_core::{
    KeyValue, ModelVersion, Page, Readable, RegisteredModel, RegisteredModelAlias, Stage,
};
use sqlx::any::AnyRow;

use crate::db::{self, Bind, SqlBuilder};
use crate::experiments::key_value_from_row;
use crate::search_sql::{self, Paging, Target};
use crate::{now_ms, Result, Store, StoreError};

/// What `model-versions/create` receives.
#[derive(Debug, Clone, Default)]
pub struct NewModelVersion {
    pub name: String,
    pub source: String,
    pub run_id: Option<String>,
    pub run_link: Option<String>,
    pub description: Option<String>,
    pub model_id: Option<String>,
    pub user_id: Option<String>,
    pub tags: Vec<KeyValue>,
}

impl Store {
    pub async fn create_registered_model(
        &self,
        name: &str,
        tags: &[KeyValue],
        description: Option<&str>,
    ) -> Result<RegisteredModel> {
        validate_model_name(name)?;
        validate_tags(tags)?;
        let now = now_ms();
        let mut tx = self.write_pool.begin().await?;
        let inserted = sqlx::query(
            "INSERT INTO registered_models (name, creation_timestamp, last_updated_timestamp, description, last_version) \
             VALUES ($1, $2, $2, $3, 0)",
        )
        .bind(name)
        .bind(now)
        .bind(description.map(str::to_string))
        .execute(&mut *tx)
        .await;
        match inserted {
            Ok(_) => {}
            Err(err) if db::is_unique_violation(&err) => {
                return Err(StoreError::AlreadyExists(format!(
                    "Registered Model (name={name}) already exists."
                )))
            }
            Err(err) => return Err(err.into()),
        }
        for tag in tags {
            upsert_model_tag(&mut tx, name, tag).await?;
        }
        tx.commit().await?;
        self.get_registered_model(name).await
    }

    pub async fn get_registered_model(&self, name: &str) -> Result<RegisteredModel> {
        let mut models = self
            .load_registered_models(std::slice::from_ref(&name.to_string()))
            .await?;
        models.pop().ok_or_else(|| model_not_found(name))
    }

    pub(crate) async fn require_registered_model(&self, name: &str) -> Result<()> {
        let found: Option<String> =
            sqlx::query_scalar("SELECT name FROM registered_models WHERE name = $1")
                .bind(name)
                .fetch_optional(&self.pool)
                .await?;
        found.map(|_| ()).ok_or_else(|| model_not_found(name))
    }

    pub async fn rename_registered_model(
        &self,
        name: &str,
        new_name: &str,
    ) -> Result<RegisteredModel> {
        validate_model_name(new_name)?;
        self.require_registered_model(name).await?;
        let mut tx = self.write_pool.begin().await?;
        let renamed = sqlx::query(
            "UPDATE registered_models SET name = $1, last_updated_timestamp = $2 WHERE name = $3",
        )
        .bind(new_name)
        .bind(now_ms())
        .bind(name)
        .execute(&mut *tx)
        .await;
        match renamed {
            Ok(_) => {}
            Err(err) if db::is_unique_violation(&err) => {
                return Err(StoreError::AlreadyExists(format!(
                    "Registered Model (name={new_name}) already exists."
                )))
            }
            Err(err) => return Err(err.into()),
        }
        for table in [
            "registered_model_tags",
            "model_versions",
            "model_version_tags",
            "registered_model_aliases",
            "model_policies",
            "transition_requests",
            "validation_specs",
            "model_version_validations",
        ] {
            sqlx::query(&format!("UPDATE {table} SET name = $1 WHERE name = $2"))
                .bind(new_name)
                .bind(name)
                .execute(&mut *tx)
                .await?;
        }
        // Grants follow the model: they are what keeps it confidential.
        sqlx::query("UPDATE permissions SET resource_id = $1 WHERE resource_type = 'registered_model' AND resource_id = $2")
            .bind(new_name)
            .bind(name)
            .execute(&mut *tx)
            .await?;
        tx.commit().await?;
        self.get_registered_model(new_name).await
    }

    pub async fn update_registered_model(
        &self,
        name: &str,
        description: Option<&str>,
    ) -> Result<RegisteredModel> {
        self.require_registered_model(name).await?;
        sqlx::query("UPDATE registered_models SET description = $1, last_updated_timestamp = $2 WHERE name = $3")
            .bind(description.map(str::to_string))
            .bind(now_ms())
            .bind(name)
            .execute(&self.write_pool)
            .await?;
        self.get_registered_model(name).await
    }

    pub async fn delete_registered_model(&self, name: &str) -> Result<()> {
        self.require_registered_model(name).await?;
        let mut tx = self.write_pool.begin().await?;
        for table in [
            "registered_model_tags",
            "model_version_tags",
            "registered_model_aliases",
            "model_versions",
            "model_policies",
            "validation_specs",
            "model_version_validations",
            "registered_models",
        ] {
            sqlx::query(&format!("DELETE FROM {table} WHERE name = $1"))
                .bind(name)
                .execute(&mut *tx)
                .await?;
        }
        // A model created later under the same name must not inherit grants.
        sqlx::query(
            "DELETE FROM permissions WHERE resource_type = 'registered_model' AND resource_id = $1",
        )
        .bind(name)
        .execute(&mut *tx)
        .await?;
        tx.commit().await?;
        Ok(())
    }

    pub async fn set_registered_model_tag(&self, name: &str, tag: &KeyValue) -> Result<()> {
        validate_tags(std::slice::from_ref(tag))?;
        self.require_registered_model(name).await?;
        let mut tx = self.write_pool.begin().await?;
        upsert_model_tag(&mut tx, name, tag).await?;
        tx.commit().await?;
        Ok(())
    }

    pub async fn delete_registered_model_tag(&self, name: &str, key: &str) -> Result<()> {
        self.require_registered_model(name).await?;
        sqlx::query("DELETE FROM registered_model_tags WHERE name = $1 AND key = $2")
            .bind(name)
            .bind(key)
            .execute(&self.write_pool)
            .await?;
        Ok(())
    }

    pub async fn search_registered_models(
        &self,
        filter: Option<&str>,
        max_results: i64,
        order_by: &[String],
        page_token: Option<&str>,
        visible: &Readable,
    ) -> Result<Page<RegisteredModel>> {
        let paging = Paging::new(max_results, 1000, page_token)?;
        let (filter, order_by) =
            search_sql::parse_search(SearchKind::RegisteredModels, filter, order_by)?;
        let mut sql = SqlBuilder::new(
            self.backend,
            "SELECT rm.name FROM registered_models rm WHERE 1 = 1",
        );
        sql.push_visible("rm.name", visible, false);
        search_sql::push_filter_and_order(
            &mut sql,
            self.backend,
            Target::RegisteredModels,
            filter.as_ref(),
            &order_by,
            "rm.name ASC",
        )?;
        paging.push_limit(&mut sql);
        let (rows, next_page_token) = paging.split(sql.query().fetch_all(&self.pool).await?);
        let names = rows
            .iter()
            .map(|r| db::text(r, "name"))
            .collect::<Result<Vec<_>>>()?;
        let items = self.load_registered_models(&names).await?;
        Ok(Page {
            items,
            next_page_token,
        })
    }

    async fn load_registered_models(&self, names: &[String]) -> Result<Vec<RegisteredModel>> {
        if names.is_empty() {
            return Ok(Vec::new());
        }
        let fetch = |sql: &str| {
            let mut builder = SqlBuilder::new(self.backend, sql);
            builder.bind_text_list(names);
            builder
        };
        let mut models: HashMap<String, RegisteredModel> = HashMap::new();
        for row in fetch("SELECT * FROM registered_models WHERE name IN ")
            .query()
            .fetch_all(&self.pool)
            .await?
        {
            let name = db::text(&row, "name")?;
            models.insert(
                name.clone(),
                RegisteredModel {
                    name,
                    creation_timestamp: db::int(&row, "creation_timestamp")?,
                    last_updated_timestamp: db::int(&row, "last_updated_timestamp")?,
                    description: db::opt_text(&row, "description")?,
                    latest_versions: Vec::new(),
                    tags: Vec::new(),
                    aliases: Vec::new(),
                },
            );
        }
        for row in fetch("SELECT * FROM registered_model_tags WHERE name IN ")
            .query()
            .fetch_all(&self.pool)
            .await?
        {
            if let Some(model) = models.get_mut(&db::text(&row, "name")?) {
                model.tags.push(key_value_from_row(&row)?);
            }
        }
        for row in fetch("SELECT * FROM registered_model_aliases WHERE name IN ")
            .query()
            .fetch_all(&self.pool)
            .await?
        {
            if let Some(model) = models.get_mut(&db::text(&row, "name")?) {
                model.aliases.push(RegisteredModelAlias {
                    alias: db::text(&row, "alias")?,
                    version: db::int(&row, "version")?,
                });
            }
        }
        // The latest version in each stage, as MLflow's `latest_versions`.
        let versions = self
            .load_model_versions(
                fetch("SELECT * FROM model_versions WHERE name IN ")
                    .push(" ORDER BY name, version"),
            )
            .await?;
        let mut latest: HashMap<(String, Stage), ModelVersion> = HashMap::new();
        for version in versions {
            latest.insert((version.name.clone(), version.current_stage), version);
        }
        let mut latest: Vec<ModelVersion> = latest.into_values().collect();
        latest.sort_by_key(|v| v.version);
        for version in latest {
            if let Some(model) = models.get_mut(&version.name) {
                model.latest_versions.push(version);
            }
        }
        Ok(names
            .iter()
            .filter_map(|name| models.remove(name))
            .map(|mut model| {
                model.tags.sort_by(|a, b| a.key.cmp(&b.key));
                model.aliases.sort_by(|a, b| a.alias.cmp(&b.alias));
                model
            })
            .collect())
    }

    pub async fn create_model_version(&self, new: &NewModelVersion) -> Result<ModelVersion> {
        if new.source.is_empty() {
            return Err(StoreError::InvalidInput(
                "Missing value for required parameter 'source'".into(),
            ));
        }
        validate_tags(&new.tags)?;
        self.require_registered_model(&new.name).await?;
        // A `models:/m-…` source names an MLflow 3 logged model: its files
        // live at the logged model's artifact URI, and its run is the source.
        let logged_model_id = new
            .model_id
            .clone()
            .filter(|id| !id.is_empty())
            .or_else(|| {
                new.source
                    .strip_prefix("models:/")
                    .filter(|rest| rest.starts_with("m-"))
                    .map(|rest| rest.trim_end_matches('/').to_string())
            });
        let mut storage_location = new.source.clone();
        let mut run_id = new.run_id.clone().filter(|r| !r.is_empty());
        let mut logged_model = None;
        if let Some(model_id) = &logged_model_id {
            if let Some(model) = self.find_logged_model(model_id).await? {
                if new.source.starts_with("models:/") {
                    storage_location = model.artifact_uri.clone();
                }
                if run_id.is_none() {
                    run_id = model.source_run_id.clone();
                }
                logged_model = Some(model);
            }
        }
        // A copy of another version (`models:/name/3`, `models:/name@alias`)
        // lives where that version's files are, as in MLflow.
        if logged_model.is_none() {
            if let Some(location) = self.registry_source_location(&new.source).await? {
                storage_location = location;
            }
        }
        let now = now_ms();
        let mut tx = self.write_pool.begin().await?;
        let version: i64 = sqlx::query_scalar(
            "UPDATE registered_models SET last_version = last_version + 1, last_updated_timestamp = $1 WHERE name = $2 RETURNING last_version",
        )
        .bind(now)
        .bind(&new.name)
        .fetch_one(&mut *tx)
        .await?;
        sqlx::query(
            "INSERT INTO model_versions (name, version, creation_timestamp, last_updated_timestamp, user_id, current_stage, \
             description, source, storage_location, run_id, run_link, model_id) VALUES ($1, $2, $3, $3, $4, 'None', $5, $6, $7, $8, $9, $10)",
        )
        .bind(&new.name)
        .bind(version)
        .bind(now)
        .bind(new.user_id.clone())
        .bind(new.description.clone().filter(|d| !d.is_empty()))
        .bind(&new.source)
        .bind(&storage_location)
        .bind(run_id)
        .bind(new.run_link.clone().filter(|l| !l.is_empty()))
        .bind(logged_model_id)
        .execute(&mut *tx)
        .await?;
        for tag in &new.tags {
            upsert_version_tag(&mut tx, &new.name, version, tag).await?;
        }
        if let Some(model) = &logged_model {
            link_version_to_logged_model(&mut tx, model, &new.name, version).await?;
        }
        tx.commit().await?;
        self.get_model_version(&new.name, &version.to_string())
            .await
    }

    /// The storage location of the version a `models:/name/version` or
    /// `models:/name@alias` source names, if it names one.
    async fn registry_source_location(&self, source: &str) -> Result<Option<String>> {
        let Some(rest) = source.strip_prefix("models:/") else {
            return Ok(None);
        };
        let rest = rest.trim_end_matches('/');
        let found = if let Some((name, alias)) = rest.split_once('@') {
            self.get_model_version_by_alias(name, alias).await
        } else if let Some((name, version)) = rest.rsplit_once('/') {
            if version.parse::<i64>().is_err() {
                return Ok(None);
            }
            self.get_model_version(name, version).await
        } else {
            return Ok(None);
        };
        match found {
            Ok(version) => Ok(Some(version.storage_location)),
            Err(StoreError::NotFound(_)) => Ok(None),
            Err(err) => Err(err),
        }
    }

    pub async fn get_model_version(&self, name: &str, version: &str) -> Result<ModelVersion> {
        let number = parse_version(version)?;
        let mut sql = SqlBuilder::new(self.backend, "SELECT * FROM model_versions WHERE name = ");
        sql.bind_text(name)
            .push(" AND version = ")
            .bind(Bind::Int(number));
        let mut versions = self.load_model_versions(&mut sql).await?;
        versions
            .pop()
            .ok_or_else(|| version_not_found(name, version))
    }

    pub async fn update_model_version(
        &self,
        name: &str,
        version: &str,
        description: Option<&str>,
    ) -> Result<ModelVersion> {
        let current = self.get_model_version(name, version).await?;
        sqlx::query("UPDATE model_versions SET description = $1, last_updated_timestamp = $2 WHERE name = $3 AND version = $4")
            .bind(description.map(str::to_string))
            .bind(now_ms())
            .bind(name)
            .bind(current.version)
            .execute(&self.write_pool)
            .await?;
        self.get_model_version(name, version).await
    }

    pub async fn delete_model_version(&self, name: &str, version: &str) -> Result<()> {
        let current = self.get_model_version(name, version).await?;
        let mut tx = self.write_pool.begin().await?;
        for table in [
            "model_version_tags",
            "registered_model_aliases",
            "model_version_validations",
            "model_versions",
        ] {
            sqlx::query(&format!(
                "DELETE FROM {table} WHERE name = $1 AND version = $2"
            ))
            .bind(name)
            .bind(current.version)
            .execute(&mut *tx)
            .await?;
        }
        sqlx::query("UPDATE registered_models SET last_updated_timestamp = $1 WHERE name = $2")
            .bind(now_ms())
            .bind(name)
            .execute(&mut *tx)
            .await?;
        tx.commit().await?;
        Ok(())
    }

    /// Moves a version to `stage`; with `archive_existing`, versions already
    /// in Staging/Production move to Archived in the same transaction.
    pub async fn transition_model_version_stage(
        &self,
        name: &str,
        version: &str,
        stage: &str,
        archive_existing: bool,
    ) -> Result<ModelVersion> {
        let stage = Stage::parse_loose(stage).ok_or_else(|| {
            StoreError::InvalidInput(format!(
                "Invalid Model Version stage: {stage}. Value must be one of None, Staging, Production, Archived."
            ))
        })?;
        let current = self.get_model_version(name, version).await?;
        let mut tx = self.write_pool.begin().await?;
        apply_stage(
            &mut tx,
            name,
            current.version,
            stage,
            archive_existing,
            now_ms(),
        )
        .await?;
        tx.commit().await?;
        self.get_model_version(name, version).await
    }

    /// The newest version in each requested stage (every stage if none).
    pub async fn get_latest_versions(
        &self,
        name: &str,
        stages: &[String],
    ) -> Result<Vec<ModelVersion>> {
        let model = self.get_registered_model(name).await?;
        let wanted = stages
            .iter()
            .map(|s| {
                Stage::parse_loose(s).ok_or_else(|| {
                    StoreError::InvalidInput(format!("Invalid Model Version stage: {s}. Value must be one of None, Staging, Production, Archived."))
                })
            })
            .collect::<Result<Vec<_>>>()?;
        Ok(model
            .latest_versions
            .into_iter()
            .filter(|v| wanted.is_empty() || wanted.contains(&v.current_stage))
            .collect())
    }

    pub async fn set_model_version_tag(
        &self,
        name: &str,
        version: &str,
        tag: &KeyValue,
    ) -> Result<()> {
        validate_tags(std::slice::from_ref(tag))?;
        let current = self.get_model_version(name, version).await?;
        let mut tx = self.write_pool.begin().await?;
        upsert_version_tag(&mut tx, name, current.version, tag).await?;
        tx.commit().await?;
        Ok(())
    }

    pub async fn delete_model_version_tag(
        &self,
        name: &str,
        version: &str,
        key: &str,
    ) -> Result<()> {
        let current = self.get_model_version(name, version).await?;
        sqlx::query("DELETE FROM model_version_tags WHERE name = $1 AND version = $2 AND key = $3")
            .bind(name)
            .bind(current.version)
            .bind(key)
            .execute(&self.write_pool)
            .await?;
        Ok(())
    }

    pub async fn set_registered_model_alias(
        &self,
        name: &str,
        alias: &str,
        version: &str,
    ) -> Result<()> {
        validate_alias(alias)?;
        let current = self.get_model_version(name, version).await?;
        let mut conn = self.write_pool.acquire().await?;
        apply_alias(&mut conn, name, alias, current.version).await
    }

    pub async fn delete_registered_model_alias(&self, name: &str, alias: &str) -> Result<()> {
        self.require_registered_model(name).await?;
        sqlx::query("DELETE FROM registered_model_aliases WHERE name = $1 AND alias = $2")
            .bind(name)
            .bind(alias)
            .execute(&self.write_pool)
            .await?;
        Ok(())
    }

    pub async fn get_model_version_by_alias(
        &self,
        name: &str,
        alias: &str,
    ) -> Result<ModelVersion> {
        self.require_registered_model(name).await?;
        let version: Option<i64> = sqlx::query_scalar(
            "SELECT version FROM registered_model_aliases WHERE name = $1 AND alias = $2",
        )
        .bind(name)
        .bind(alias)
        .fetch_optional(&self.pool)
        .await?;
        let version = version.ok_or_else(|| {
            StoreError::NotFound(format!("Registered model alias {alias} not found."))
        })?;
        self.get_model_version(name, &version.to_string()).await
    }

    pub async fn get_model_version_download_uri(
        &self,
        name: &str,
        version: &str,
    ) -> Result<String> {
        Ok(self
            .get_model_version(name, version)
            .await?
            .storage_location)
    }

    pub async fn search_model_versions(
        &self,
        filter: Option<&str>,
        max_results: i64,
        order_by: &[String],
        page_token: Option<&str>,
        visible: &Readable,
    ) -> Result<Page<ModelVersion>> {
        let paging = Paging::new(max_results, 200_000, page_token)?;
        let (filter, order_by) =
            search_sql::parse_search(SearchKind::ModelVersions, filter, order_by)?;
        let mut sql = SqlBuilder::new(
            self.backend,
            "SELECT mv.* FROM model_versions mv WHERE 1 = 1",
        );
        sql.push_visible("mv.name", visible, false);
        search_sql::push_filter_and_order(
            &mut sql,
            self.backend,
            Target::ModelVersions,
            filter.as_ref(),
            &order_by,
            // MLflow's order: the caller's keys, then name ascending and
            // version descending; without keys, the latest change first.
            if order_by.is_empty() {
                "mv.last_updated_timestamp DESC, mv.name ASC, mv.version DESC"
            } else {
                "mv.name ASC, mv.version DESC"
            },
        )?;
        paging.push_limit(&mut sql);
        let (items, next_page_token) = paging.split(self.load_model_versions(&mut sql).await?);
        Ok(Page {
            items,
            next_page_token,
        })
    }

    /// Runs a `SELECT * FROM model_versions …` query and attaches tags and
    /// aliases, keeping the query's order.
    async fn load_model_versions(&self, sql: &mut SqlBuilder) -> Result<Vec<ModelVersion>> {
        let rows = sql.query().fetch_all(&self.pool).await?;
        let mut versions = rows
            .iter()
            .map(model_version_from_row)
            .collect::<Result<Vec<_>>>()?;
        if versions.is_empty() {
            return Ok(versions);
        }
        let names: Vec<String> = {
            let mut names: Vec<String> = versions.iter().map(|v| v.name.clone()).collect();
            names.sort();
            names.dedup();
            names
        };
        let mut index: HashMap<(String, i64), usize> = HashMap::new();
        for (idx, version) in versions.iter().enumerate() {
            index.insert((version.name.clone(), version.version), idx);
        }
        let mut tags = SqlBuilder::new(
            self.backend,
            "SELECT * FROM model_version_tags WHERE name IN ",
        );
        tags.bind_text_list(&names);
        for row in tags.query().fetch_all(&self.pool).await? {
            if let Some(&idx) = index.get(&(db::text(&row, "name")?, db::int(&row, "version")?)) {
                versions[idx].tags.push(key_value_from_row(&row)?);
            }
        }
        let mut aliases = SqlBuilder::new(
            self.backend,
            "SELECT * FROM registered_model_aliases WHERE name IN ",
        );
        aliases.bind_text_list(&names);
        for row in aliases.query().fetch_all(&self.pool).await? {
            if let Some(&idx) = index.get(&(db::text(&row, "name")?, db::int(&row, "version")?)) {
                versions[idx].aliases.push(db::text(&row, "alias")?);
            }
        }
        for version in &mut versions {
            version.tags.sort_by(|a, b| a.key.cmp(&b.key));
            version.aliases.sort();
        }
        Ok(versions)
    }
}

async fn upsert_model_tag(
    tx: &mut sqlx::Transaction<'_, sqlx::Any>,
    name: &str,
    tag: &KeyValue,
) -> Result<()> {
    sqlx::query(
        "INSERT INTO registered_model_tags (name, key, value) VALUES ($1, $2, $3) ON CONFLICT (name, key) DO UPDATE SET value = excluded.value",
    )
    .bind(name)
    .bind(&tag.key)
    .bind(&tag.value)
    .execute(&mut **tx)
    .await?;
    Ok(())
}

async fn upsert_version_tag(
    tx: &mut sqlx::Transaction<'_, sqlx::Any>,
    name: &str,
    version: i64,
    tag: &KeyValue,
) -> Result<()> {
    sqlx::query(
        "INSERT INTO model_version_tags (name, version, key, value) VALUES ($1, $2, $3, $4) \
         ON CONFLICT (name, version, key) DO UPDATE SET value = excluded.value",
    )
    .bind(name)
    .bind(version)
    .bind(&tag.key)
    .bind(&tag.value)
    .execute(&mut **tx)
    .await?;
    Ok(())
}

fn validate_model_name(name: &str) -> Result<()> {
    if name.trim().is_empty() {
        return Err(StoreError::InvalidInput(
            "Registered model name cannot be empty.".into(),
        ));
    }
    validation::validate_name("Registered model", name)?;
    Ok(())
}

fn validate_tags(tags: &[KeyValue]) -> Result<()> {
    for tag in tags {
        validation::validate_key(KeyKind::Tag, &tag.key)?;
        validation::validate_tag_value(&tag.key, &tag.value)?;
    }
    Ok(())
}

/// MLflow reserves `latest` and version-like aliases (`v1`), which would
/// make `models:/name@alias` URIs ambiguous.
pub(crate) fn validate_alias(alias: &str) -> Result<()> {
    let lower = alias.to_ascii_lowercase();
    let version_like = lower
        .strip_prefix('v')
        .is_some_and(|rest| !rest.is_empty() && rest.bytes().all(|b| b.is_ascii_digit()));
    if alias.is_empty() || lower == "latest" || version_like || alias.chars().count() > 255 {
        return Err(StoreError::InvalidInput(format!(
            "Invalid alias name: '{alias}'. Aliases cannot be empty, 'latest' or of the form v<number>, and are at most 255 characters"
        )));
    }
    if !alias
        .chars()
        .all(|c| c.is_alphanumeric() || c == '_' || c == '-')
    {
        return Err(StoreError::InvalidInput(format!(
            "Invalid alias name: '{alias}'. Alias names may only contain alphanumerics, underscores and dashes"
        )));
    }
    Ok(())
}

fn parse_version(version: &str) -> Result<i64> {
    version.trim().parse::<i64>().map_err(|_| {
        StoreError::InvalidInput(format!(
            "Parameter 'version' must be an integer, got '{version}'."
        ))
    })
}

fn model_not_found(name: &str) -> StoreError {
    StoreError::NotFound(format!("Registered Model with name={name} not found"))
}

fn version_not_found(name: &str, version: &str) -> StoreError {
    StoreError::NotFound(format!(
        "Model Version (name={name}, version={version}) not found"
    ))
}

fn model_version_from_row(row: &AnyRow) -> Result<ModelVersion> {
    let stage = db::text(row, "current_stage")?;
    Ok(ModelVersion {
        name: db::text(row, "name")?,
        version: db::int(row, "version")?,
        creation_timestamp: db::int(row, "creation_timestamp")?,
        last_updated_timestamp: db::int(row, "last_updated_timestamp")?,
        user_id: db::opt_text(row, "user_id")?,
        current_stage: Stage::parse(&stage).unwrap_or(Stage::None),
        description: db::opt_text(row, "description")?,
        source: db::text(row, "source")?,
        storage_location: db::text(row, "storage_location")?,
        run_id: db::opt_text(row, "run_id")?,
        run_link: db::opt_text(row, "run_link")?,
        model_id: db::opt_text(row, "model_id")?,
        tags: Vec::new(),
        aliases: Vec::new(),
    })
}

/// Moves version `version` of `name` to `stage` inside `conn`'s transaction;
/// with `archive_existing`, the versions already in that stage move to
/// Archived.
pub(crate) async fn apply_stage(
    conn: &mut sqlx::AnyConnection,
    name: &str,
    version: i64,
    stage: Stage,
    archive_existing: bool,
    now: i64,
) -> Result<()> {
    if archive_existing && matches!(stage, Stage::Staging | Stage::Production) {
        sqlx::query(
            "UPDATE model_versions SET current_stage = 'Archived', last_updated_timestamp = $1 \
             WHERE name = $2 AND version <> $3 AND current_stage = $4",
        )
        .bind(now)
        .bind(name)
        .bind(version)
        .bind(stage.as_str())
        .execute(&mut *conn)
        .await?;
    }
    let done = sqlx::query("UPDATE model_versions SET current_stage = $1, last_updated_timestamp = $2 WHERE name = $3 AND version = $4")
        .bind(stage.as_str())
        .bind(now)
        .bind(name)
        .bind(version)
        .execute(&mut *conn)
        .await?;
    if done.rows_affected() == 0 {
        return Err(StoreError::NotFound(format!(
            "Model Version (name={name}, version={version}) not found"
        )));
    }
    Ok(())
}

/// Points `alias` of `name` at `version`.
pub(crate) async fn apply_alias(
    conn: &mut sqlx::AnyConnection,
    name: &str,
    alias: &str,
    version: i64,
) -> Result<()> {
    sqlx::query(
        "INSERT INTO registered_model_aliases (name, alias, version) VALUES ($1, $2, $3) \
         ON CONFLICT (name, alias) DO UPDATE SET version = excluded.version",
    )
    .bind(name)
    .bind(alias)
    .bind(version)
    .execute(&mut *conn)
    .await?;
    Ok(())
}

/// Records on a logged model the versions registered from it, in the tag
/// MLflow keeps (`mlflow.modelVersions`, a JSON list written as Python's
/// `json.dumps` writes it, so clients that compare the text agree).
async fn link_version_to_logged_model(
    tx: &mut sqlx::Transaction<'_, sqlx::Any>,
    model: &sextant_core::LoggedModel,
    name: &str,
    version: i64,
) -> Result<()> {
    const TAG: &str = "mlflow.modelVersions";
    let mut versions: Vec<(String, serde_json::Value)> = model
        .tags
        .iter()
        .find(|tag| tag.key == TAG)
        .and_then(|tag| serde_json::from_str::<Vec<serde_json::Value>>(&tag.value).ok())
        .unwrap_or_default()
        .into_iter()
        .filter_map(|entry| {
            Some((
                entry.get("name")?.as_str()?.to_string(),
                entry.get("version")?.clone(),
            ))
        })
        .collect();
    let this = (name.to_string(), serde_json::Value::from(version));
    if !versions.contains(&this) {
        versions.push(this);
    }
    let entries: Vec<String> = versions
        .iter()
        .map(|(name, version)| {
            format!(
                "{{\"name\": {}, \"version\": {version}}}",
                serde_json::Value::from(name.as_str())
            )
        })
        .collect();
    sqlx::query(
        "INSERT INTO logged_model_tags (model_id, key, value) VALUES ($1, $2, $3) \
         ON CONFLICT (model_id, key) DO UPDATE SET value = excluded.value",
    )
    .bind(&model.model_id)
    .bind(TAG)
    .bind(format!("[{}]", entries.join(", ")))
    .execute(&mut **tx)
    .await?;
    Ok(())
}
