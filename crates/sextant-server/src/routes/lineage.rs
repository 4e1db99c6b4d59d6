//! Lineage: from a deployment, a model version or a run back to the code,
//! environment and data it came from; and from a dataset's digest or a git
//! commit forward to the runs, versions and deployments it fed.
//!
//! The graph is read from what is stored: deployments' specs name model
//! versions, versions name their run, runs carry the tags `sextant exec`
//! sets (commit, manifest hash, `sextant.inputs`: the content digests of
//! their data) and the datasets logged with `mlflow.log_input`; a digest
//! names a dataset version stored by `sextant datasets push` when one has
//! that content. Everything answered is filtered by what the caller may
//! read: a run of an experiment they cannot see is left out, not named.

use std::collections::{BTreeMap, BTreeSet};

use axum::extract::State;
use axum::{Extension, Json};
use serde::Deserialize;
use serde_json::{json, Value};
use sextant_core::{Permission, ResourceKind, Run, ViewType};
use sextant_governance::Principal;
use utoipa::IntoParams;

use crate::error::{ApiError, ApiResult};
use crate::extract::MlflowRequest;
use crate::AppState;

/// Runs a reverse query may return (newest first).
const MAX_RUNS: i64 = 1000;

#[derive(Debug, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub(crate) struct LineageQuery {
    /// `deployment:NAME`, `models:/NAME/VERSION`, `models:/NAME@ALIAS`,
    /// `runs:/RUN_ID`, `dataset:sha256:HEX` or `commit:SHA`.
    #[param(
        pattern = r"^(deployment:[A-Za-z0-9][A-Za-z0-9._-]{0,62}|models:/[A-Za-z0-9_.\-]+(/[0-9]{1,18}|@[A-Za-z0-9_\-]+)|runs:/[0-9a-f]{32}|dataset:(sha256:)?[0-9a-fA-F]{64}|commit:[0-9a-fA-F]{7,40})$"
    )]
    pub of: String,
}

/// What `of` names.
enum Start {
    Deployment(String),
    ModelVersion(String, String),
    ModelAlias(String, String),
    Run(String),
    Dataset(String),
    Commit(String),
}

fn parse(of: &str) -> ApiResult<Start> {
    let of = of.trim();
    let bad = || {
        ApiError::invalid(format!(
            "'{of}' is not deployment:NAME, models:/NAME/VERSION, models:/NAME@ALIAS, runs:/RUN_ID, dataset:sha256:HEX or commit:SHA"
        ))
    };
    if let Some(name) = of.strip_prefix("deployment:") {
        return Ok(Start::Deployment(name.to_string()));
    }
    if let Some(rest) = of.strip_prefix("models:/") {
        if let Some((name, alias)) = rest.split_once('@') {
            return Ok(Start::ModelAlias(name.to_string(), alias.to_string()));
        }
        let (name, version) = rest.rsplit_once('/').ok_or_else(bad)?;
        return Ok(Start::ModelVersion(name.to_string(), version.to_string()));
    }
    if let Some(run) = of.strip_prefix("runs:/") {
        return Ok(Start::Run(run.trim_end_matches('/').to_string()));
    }
    if let Some(digest) = of.strip_prefix("dataset:") {
        let hex = digest
            .strip_prefix("sha256:")
            .unwrap_or(digest)
            .to_ascii_lowercase();
        if hex.len() != 64 || !hex.bytes().all(|b| b.is_ascii_hexdigit()) {
            return Err(ApiError::invalid(
                "a dataset is named by its SHA-256 digest: dataset:sha256:<64 hex digits>",
            ));
        }
        return Ok(Start::Dataset(hex));
    }
    if let Some(commit) = of.strip_prefix("commit:") {
        if commit.len() < 7 || !commit.bytes().all(|b| b.is_ascii_hexdigit()) {
            return Err(ApiError::invalid(
                "a commit is at least 7 hexadecimal digits",
            ));
        }
        return Ok(Start::Commit(commit.to_ascii_lowercase()));
    }
    Err(bad())
}

fn tag<'a>(run: &'a Run, key: &str) -> Option<&'a str> {
    run.data
        .tags
        .iter()
        .find(|t| t.key == key)
        .map(|t| t.value.as_str())
}

/// The lineage graph of `of`.
#[utoipa::path(get, path = "/api/v1/lineage", tag = "lineage", params(LineageQuery),
    responses((status = 200, description = "{start, deployments, model_versions, runs, datasets}"),
              (status = 400, body = sextant_api::v1::Error), (status = 404, body = sextant_api::v1::Error)))]
pub(crate) async fn lineage(
    State(state): State<AppState>,
    principal: Option<Extension<Principal>>,
    MlflowRequest(query): MlflowRequest<LineageQuery>,
) -> ApiResult<Json<Value>> {
    let principal = principal.map_or(Principal::Anonymous, |p| p.0);
    let mut graph = Graph::new(&state, &principal);
    match parse(&query.of)? {
        Start::Deployment(name) => {
            if !principal.may(ResourceKind::Deployment, &name, Permission::Read) {
                return Err(ApiError::not_found(format!("No deployment named '{name}'")));
            }
            let record = state.store().get_deployment(&name).await?;
            let spec =
                crate::serving::controller::decode_spec(&record.spec).map_err(ApiError::invalid)?;
            for arm in &spec.arms {
                graph
                    .add_version(&arm.model.name, &arm.model.version.to_string())
                    .await?;
            }
        }
        Start::ModelVersion(name, version) => {
            graph.require_model(&name)?;
            graph.add_version(&name, &version).await?;
        }
        Start::ModelAlias(name, alias) => {
            graph.require_model(&name)?;
            let version = state
                .store()
                .get_model_version_by_alias(&name, &alias)
                .await?;
            graph
                .add_version(&name, &version.version.to_string())
                .await?;
        }
        Start::Run(run_id) => {
            graph.add_run_and_what_it_made(&run_id, true).await?;
        }
        Start::Dataset(hex) => {
            let filter = format!("tags.`sextant.inputs` LIKE '%{hex}%'");
            for run in graph.search_runs(&filter).await? {
                graph.add_run_and_what_it_made(&run, false).await?;
            }
        }
        Start::Commit(commit) => {
            let filter = format!("tags.`mlflow.source.git.commit` LIKE '{commit}%'");
            for run in graph.search_runs(&filter).await? {
                graph.add_run_and_what_it_made(&run, false).await?;
            }
        }
    }
    graph.add_deployments().await?;
    graph.add_datasets().await?;
    Ok(Json(json!({
        "start": query.of,
        "deployments": graph.deployments.into_values().collect::<Vec<_>>(),
        "model_versions": graph.versions.into_values().collect::<Vec<_>>(),
        "runs": graph.runs.into_values().collect::<Vec<_>>(),
        "datasets": graph.datasets.into_values().collect::<Vec<_>>(),
    })))
}

struct Graph<'a> {
    state: &'a AppState,
    principal: &'a Principal,
    deployments: BTreeMap<String, Value>,
    versions: BTreeMap<(String, i64), Value>,
    runs: BTreeMap<String, Value>,
    datasets: BTreeMap<String, Value>,
}

impl<'a> Graph<'a> {
    fn new(state: &'a AppState, principal: &'a Principal) -> Graph<'a> {
        Graph {
            state,
            principal,
            deployments: BTreeMap::new(),
            versions: BTreeMap::new(),
            runs: BTreeMap::new(),
            datasets: BTreeMap::new(),
        }
    }

    fn require_model(&self, name: &str) -> ApiResult<()> {
        if self
            .principal
            .may(ResourceKind::RegisteredModel, name, Permission::Read)
        {
            Ok(())
        } else {
            Err(ApiError::not_found(format!(
                "Registered Model with name={name} not found"
            )))
        }
    }

    /// A model version and the run that made it.
    async fn add_version(&mut self, name: &str, version: &str) -> ApiResult<()> {
        if !self
            .principal
            .may(ResourceKind::RegisteredModel, name, Permission::Read)
        {
            return Ok(());
        }
        let found = self.state.store().get_model_version(name, version).await?;
        let key = (found.name.clone(), found.version);
        if self.versions.contains_key(&key) {
            return Ok(());
        }
        self.versions.insert(
            key,
            json!({
                "name": found.name, "version": found.version.to_string(), "stage": found.current_stage.as_str(),
                "aliases": found.aliases, "source": found.source, "run_id": found.run_id,
                "created": found.creation_timestamp,
            }),
        );
        if let Some(run_id) = &found.run_id {
            self.add_run(run_id).await?;
        }
        Ok(())
    }

    /// A run, and (`made`) the model versions registered from it.
    async fn add_run_and_what_it_made(&mut self, run_id: &str, strict: bool) -> ApiResult<()> {
        let added = self.add_run(run_id).await;
        match added {
            Err(err) if strict => return Err(err),
            Err(_) => return Ok(()),
            Ok(false) if strict => {
                return Err(ApiError::not_found(format!("Run '{run_id}' not found")))
            }
            Ok(_) => {}
        }
        let visible = self.principal.visible(ResourceKind::RegisteredModel);
        let made = self
            .state
            .store()
            .search_model_versions(
                Some(&format!("run_id = '{run_id}'")),
                1000,
                &[],
                None,
                &visible,
            )
            .await?;
        for version in made.items {
            self.add_version(&version.name, &version.version.to_string())
                .await?;
        }
        Ok(())
    }

    /// A run with its code, environment and data; false when the caller
    /// may not read it.
    async fn add_run(&mut self, run_id: &str) -> ApiResult<bool> {
        if self.runs.contains_key(run_id) {
            return Ok(true);
        }
        let run = self.state.store().get_run(run_id).await?;
        if !self.principal.may(
            ResourceKind::Experiment,
            &run.info.experiment_id,
            Permission::Read,
        ) {
            return Ok(false);
        }
        let inputs: Vec<&str> = tag(&run, "sextant.inputs")
            .map(|text| text.split_whitespace().collect())
            .unwrap_or_default();
        for digest in &inputs {
            let node = self
                .datasets
                .entry(digest.to_string())
                .or_insert_with(|| json!({"digest": digest, "stored_versions": [], "runs": []}));
            if let Some(runs) = node["runs"].as_array_mut() {
                runs.push(json!(run.info.run_id));
            }
        }
        let logged: Vec<Value> = run
            .inputs
            .dataset_inputs
            .iter()
            .map(|input| {
                json!({
                    "name": input.dataset.name, "mlflow_digest": input.dataset.digest,
                    "source_type": input.dataset.source_type, "source": input.dataset.source,
                    "context": input.tags.iter().find(|t| t.key == "mlflow.data.context").map(|t| &t.value),
                })
            })
            .collect();
        let node = json!({
            "run_id": run.info.run_id,
            "run_name": run.info.run_name,
            "experiment_id": run.info.experiment_id,
            "status": run.info.status.as_str(),
            "user": run.info.user_id,
            "start_time": run.info.start_time,
            "end_time": run.info.end_time,
            "parent_run_id": tag(&run, "mlflow.parentRunId"),
            "params": run.data.params.iter().map(|p| (p.key.clone(), json!(p.value))).collect::<serde_json::Map<_, _>>(),
            "metrics": run.data.metrics.iter().map(|m| (m.key.clone(), json!(m.value))).collect::<serde_json::Map<_, _>>(),
            "code": {
                "commit": tag(&run, "mlflow.source.git.commit"),
                "branch": tag(&run, "mlflow.source.git.branch"),
                "remote": tag(&run, "mlflow.source.git.repoURL"),
                "dirty": tag(&run, "sextant.git.dirty").map(|d| d == "true"),
                "diff_artifact": (tag(&run, "sextant.git.dirty") == Some("true")).then_some("sextant/git.diff"),
                "entry_point": tag(&run, "mlflow.source.name"),
            },
            "environment": {
                "manifest_artifact": tag(&run, "sextant.manifest.sha256").map(|_| crate::routes::manifests::MANIFEST_ARTIFACT),
                "manifest_sha256": tag(&run, "sextant.manifest.sha256"),
                "python": tag(&run, "sextant.python"),
                "frameworks": tag(&run, "sextant.frameworks"),
                "os": tag(&run, "sextant.os"),
                "gpu": tag(&run, "sextant.gpu"),
                "container": tag(&run, "sextant.container"),
                "seed": tag(&run, "sextant.seed"),
            },
            "inputs": inputs,
            "logged_datasets": logged,
        });
        self.runs.insert(run.info.run_id.clone(), node);
        Ok(true)
    }

    /// Runs matching `filter` in every experiment the caller may read.
    async fn search_runs(&self, filter: &str) -> ApiResult<Vec<String>> {
        let visible = self.principal.visible(ResourceKind::Experiment);
        let experiments = self
            .state
            .store()
            .search_experiments(ViewType::ActiveOnly, None, &[], 50_000, None, &visible)
            .await?;
        let ids: Vec<String> = experiments
            .items
            .iter()
            .map(|e| e.experiment_id.clone())
            .collect();
        if ids.is_empty() {
            return Ok(Vec::new());
        }
        let runs = self
            .state
            .store()
            .search_runs(
                &ids,
                Some(filter),
                ViewType::ActiveOnly,
                MAX_RUNS,
                &["attributes.start_time DESC".to_string()],
                None,
            )
            .await?;
        Ok(runs.items.into_iter().map(|r| r.info.run_id).collect())
    }

    /// Every deployment (the caller may read) serving one of the versions.
    async fn add_deployments(&mut self) -> ApiResult<()> {
        let visible = self.principal.visible(ResourceKind::Deployment);
        for record in self.state.store().list_deployments(&visible).await? {
            let Ok(spec) = crate::serving::controller::decode_spec(&record.spec) else {
                continue;
            };
            let arms: Vec<Value> = spec
                .arms
                .iter()
                .filter(|arm| self.versions.contains_key(&(arm.model.name.clone(), arm.model.version)))
                .map(|arm| {
                    json!({
                        "arm": arm.name, "model": arm.model.name, "version": arm.model.version.to_string(),
                        "weight": arm.weight, "role": format!("{:?}", arm.role).to_lowercase(),
                    })
                })
                .collect();
            if !arms.is_empty() {
                self.deployments.insert(
                    record.name.clone(),
                    json!({"name": record.name, "revision": record.revision, "arms": arms}),
                );
            }
        }
        Ok(())
    }

    /// Which stored dataset versions have each digest's content.
    async fn add_datasets(&mut self) -> ApiResult<()> {
        if self.datasets.is_empty() {
            return Ok(());
        }
        let digests: BTreeSet<String> = self.datasets.keys().cloned().collect();
        let stored = crate::routes::datasets::versions_with_digests(self.state, &digests).await?;
        for (digest, versions) in stored {
            if let Some(node) = self.datasets.get_mut(&digest) {
                node["stored_versions"] = json!(versions);
            }
        }
        Ok(())
    }
}
