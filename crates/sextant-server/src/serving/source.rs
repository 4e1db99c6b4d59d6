//! Where a serving process gets deployments and model files from.

use std::path::{Path, PathBuf};

use futures::TryStreamExt;
use sextant_api::deployments as dto;
use sextant_artifacts::{ArtifactPath, ArtifactStore};
use sextant_core::{DeploymentSpec, ModelRef};
use sextant_store::Store;
use tokio::io::AsyncWriteExt;

/// A server a replica follows.
#[derive(Clone)]
pub struct RemoteServer {
    pub client: reqwest::Client,
    /// `http://host:port`, no trailing slash.
    pub base_url: String,
    /// The `Authorization` header sent with every request (`Bearer …` or
    /// `Basic …`), if any.
    pub authorization: Option<String>,
}

impl RemoteServer {
    pub fn get(&self, path: &str) -> reqwest::RequestBuilder {
        self.authorized(self.client.get(format!("{}{path}", self.base_url)))
    }

    pub fn post(&self, path: &str) -> reqwest::RequestBuilder {
        self.authorized(self.client.post(format!("{}{path}", self.base_url)))
    }

    pub fn put(&self, path: &str) -> reqwest::RequestBuilder {
        self.authorized(self.client.put(format!("{}{path}", self.base_url)))
    }

    fn authorized(&self, request: reqwest::RequestBuilder) -> reqwest::RequestBuilder {
        match &self.authorization {
            Some(value) => request.header(reqwest::header::AUTHORIZATION, value),
            None => request,
        }
    }

    /// The deployment as the server has it.
    pub async fn deployment(&self, name: &str) -> Result<dto::Deployment, String> {
        let response = self
            .get(&format!("/api/v1/deployments/{name}"))
            .send()
            .await
            .map_err(|e| format!("cannot reach {}: {e}", self.base_url))?;
        let status = response.status();
        if !status.is_success() {
            let body = response.text().await.unwrap_or_default();
            return Err(format!(
                "{} answered {status} for deployment '{name}': {body}",
                self.base_url
            ));
        }
        response
            .json()
            .await
            .map_err(|e| format!("unexpected deployment document: {e}"))
    }
}

/// Where deployments and model files come from.
#[derive(Clone)]
pub enum Source {
    /// `sextant server`: the registry and artifacts of this process.
    Local {
        store: Store,
        artifacts: ArtifactStore,
    },
    /// A replica following a server over HTTP.
    Remote(RemoteServer),
    /// A bundle on disk: `deployment.json` and `models/<name>/<version>/`
    /// (what `sextant deployments image` puts in a container image).
    Bundle { dir: PathBuf },
}

/// The file a bundle describes its deployment in.
pub const BUNDLE_SPEC: &str = "deployment.json";

impl Source {
    /// Puts the files of `model` into `dir` (created; replaced atomically:
    /// they go to a temporary sibling first, so a half-fetched model is
    /// never taken for a whole one).
    pub async fn fetch_model(&self, model: &ModelRef, dir: &Path) -> Result<(), String> {
        let parent = dir.parent().ok_or("cache directory without a parent")?;
        tokio::fs::create_dir_all(parent)
            .await
            .map_err(|e| format!("cannot create {}: {e}", parent.display()))?;
        let partial = parent.join(format!(
            ".{}.partial-{}",
            model.version,
            super::random_u64()
        ));
        let fetched = match self {
            Source::Local { store, artifacts } => {
                let version = store
                    .get_model_version(&model.name, &model.version.to_string())
                    .await
                    .map_err(|e| e.to_string())?;
                let root = artifact_root(&version.storage_location)?;
                download_tree(artifacts, &root, &partial).await
            }
            Source::Remote(server) => fetch_archive(server, model, &partial).await,
            Source::Bundle { dir: bundle } => {
                let from = bundle_model_dir(bundle, model);
                copy_tree(&from, &partial).await
            }
        };
        if let Err(err) = fetched {
            let _ = tokio::fs::remove_dir_all(&partial).await;
            return Err(err);
        }
        let _ = tokio::fs::remove_dir_all(dir).await;
        tokio::fs::rename(&partial, dir)
            .await
            .map_err(|e| format!("cannot move the model into {}: {e}", dir.display()))
    }

    /// The spec and revision of a deployment, for replicas and bundles.
    pub async fn deployment(&self, name: &str) -> Result<(i64, DeploymentSpec), String> {
        let document = match self {
            Source::Local { store, .. } => {
                let record = store
                    .get_deployment(name)
                    .await
                    .map_err(|e| e.to_string())?;
                let spec: dto::DeploymentSpec = serde_json::from_str(&record.spec)
                    .map_err(|e| format!("stored spec of '{name}': {e}"))?;
                return Ok((record.revision, DeploymentSpec::try_from(&spec)?));
            }
            Source::Remote(server) => server.deployment(name).await?,
            Source::Bundle { dir } => {
                let path = dir.join(BUNDLE_SPEC);
                let text = tokio::fs::read(&path)
                    .await
                    .map_err(|e| format!("cannot read {}: {e}", path.display()))?;
                serde_json::from_slice(&text).map_err(|e| format!("{}: {e}", path.display()))?
            }
        };
        if document.name != name {
            return Err(format!(
                "asked for deployment '{name}', got '{}'",
                document.name
            ));
        }
        Ok((document.revision, DeploymentSpec::try_from(&document.spec)?))
    }
}

/// Where a bundle keeps a model version's files.
pub fn bundle_model_dir(bundle: &Path, model: &ModelRef) -> PathBuf {
    bundle
        .join("models")
        .join(&model.name)
        .join(model.version.to_string())
}

/// The artifact-store path of a version's `storage_location`.
pub fn artifact_root(location: &str) -> Result<ArtifactPath, String> {
    match sextant_artifacts::proxied_path(location) {
        Some(path) => path.map_err(|e| e.to_string()),
        None => Err(format!(
            "the model's files are at '{location}', outside this server's artifact store; Sextant serves models stored through its artifact proxy (mlflow-artifacts:/)"
        )),
    }
}

/// Downloads every file under `root` into `dest`.
async fn download_tree(
    artifacts: &ArtifactStore,
    root: &ArtifactPath,
    dest: &Path,
) -> Result<(), String> {
    let files = list_tree(artifacts, root).await?;
    if files.is_empty() {
        return Err(format!("no files under '{}'", root.as_str()));
    }
    for relative in files {
        let source =
            ArtifactPath::parse(&join(root.as_str(), &relative)).map_err(|e| e.to_string())?;
        let target = dest.join(&relative);
        if let Some(parent) = target.parent() {
            tokio::fs::create_dir_all(parent)
                .await
                .map_err(|e| format!("cannot create {}: {e}", parent.display()))?;
        }
        let download = artifacts
            .get(&source)
            .await
            .map_err(|e| format!("{}: {e}", source.as_str()))?;
        let mut file = tokio::fs::File::create(&target)
            .await
            .map_err(|e| format!("cannot write {}: {e}", target.display()))?;
        let mut body = download.body;
        while let Some(chunk) = body
            .try_next()
            .await
            .map_err(|e| format!("{}: {e}", source.as_str()))?
        {
            file.write_all(&chunk)
                .await
                .map_err(|e| format!("cannot write {}: {e}", target.display()))?;
        }
        file.flush()
            .await
            .map_err(|e| format!("cannot write {}: {e}", target.display()))?;
    }
    Ok(())
}

/// Relative paths of every file under `root`, depth first.
pub async fn list_tree(
    artifacts: &ArtifactStore,
    root: &ArtifactPath,
) -> Result<Vec<String>, String> {
    let mut files = Vec::new();
    let mut pending = vec![String::new()];
    while let Some(relative) = pending.pop() {
        let dir =
            ArtifactPath::parse(&join(root.as_str(), &relative)).map_err(|e| e.to_string())?;
        for entry in artifacts.list(&dir).await.map_err(|e| e.to_string())? {
            let child = join(&relative, &entry.path);
            if entry.is_dir {
                pending.push(child);
            } else {
                files.push(child);
            }
        }
        if files.len() > 100_000 {
            return Err("a model of more than 100 000 files".into());
        }
    }
    files.sort();
    Ok(files)
}

fn join(a: &str, b: &str) -> String {
    match (a.is_empty(), b.is_empty()) {
        (true, _) => b.to_string(),
        (_, true) => a.to_string(),
        _ => format!("{a}/{b}"),
    }
}

/// Downloads a version's tar archive from the server and unpacks it.
async fn fetch_archive(server: &RemoteServer, model: &ModelRef, dest: &Path) -> Result<(), String> {
    let response = server
        .get("/api/v1/model-versions/archive")
        .query(&[
            ("name", model.name.as_str()),
            ("version", &model.version.to_string()),
        ])
        .send()
        .await
        .map_err(|e| format!("cannot reach {}: {e}", server.base_url))?;
    let status = response.status();
    if !status.is_success() {
        let body = response.text().await.unwrap_or_default();
        return Err(format!(
            "{} answered {status} for the files of {model}: {body}",
            server.base_url
        ));
    }
    let archive = dest.with_extension("tar");
    let mut file = tokio::fs::File::create(&archive)
        .await
        .map_err(|e| format!("cannot write {}: {e}", archive.display()))?;
    let mut body = response.bytes_stream();
    while let Some(chunk) = body
        .try_next()
        .await
        .map_err(|e| format!("download of {model} failed: {e}"))?
    {
        file.write_all(&chunk)
            .await
            .map_err(|e| format!("cannot write {}: {e}", archive.display()))?;
    }
    file.flush().await.map_err(|e| e.to_string())?;
    drop(file);
    let (archive_path, dest) = (archive.clone(), dest.to_path_buf());
    let unpacked = tokio::task::spawn_blocking(move || -> Result<(), String> {
        let file = std::fs::File::open(&archive_path).map_err(|e| e.to_string())?;
        std::fs::create_dir_all(&dest).map_err(|e| e.to_string())?;
        // `unpack` refuses entries that would land outside `dest`.
        tar::Archive::new(file)
            .unpack(&dest)
            .map_err(|e| format!("bad model archive: {e}"))
    })
    .await
    .map_err(|_| "unpacking was interrupted".to_string())?;
    let _ = tokio::fs::remove_file(&archive).await;
    unpacked
}

async fn copy_tree(from: &Path, to: &Path) -> Result<(), String> {
    let (from, to) = (from.to_path_buf(), to.to_path_buf());
    tokio::task::spawn_blocking(move || copy_tree_blocking(&from, &to))
        .await
        .map_err(|_| "copy was interrupted".to_string())?
}

fn copy_tree_blocking(from: &Path, to: &Path) -> Result<(), String> {
    std::fs::create_dir_all(to).map_err(|e| format!("cannot create {}: {e}", to.display()))?;
    let entries =
        std::fs::read_dir(from).map_err(|e| format!("cannot read {}: {e}", from.display()))?;
    for entry in entries {
        let entry = entry.map_err(|e| e.to_string())?;
        let target = to.join(entry.file_name());
        if entry.file_type().map_err(|e| e.to_string())?.is_dir() {
            copy_tree_blocking(&entry.path(), &target)?;
        } else {
            std::fs::copy(entry.path(), &target)
                .map_err(|e| format!("cannot copy {}: {e}", entry.path().display()))?;
        }
    }
    Ok(())
}
