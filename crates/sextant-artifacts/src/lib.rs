//! The artifact store of Sextant: files logged by runs and models, kept on
//! the local disk or in object storage (S3, GCS, Azure) through the
//! `object_store` crate.
//!
//! Paths are checked once, when an [`ArtifactPath`] is built: nothing that
//! could escape the artifact root (`..`, absolute paths, encoded traversal)
//! gets that far. Uploads stream: small bodies are written in one request,
//! larger ones switch to a multipart upload, so memory use stays bounded
//! whatever the file size. On the local disk a file appears only when it is
//! complete (object_store writes a temporary file and renames it).
//!
//! This crate knows nothing about HTTP or about which run a file belongs to.

use std::sync::Arc;

use bytes::{Bytes, BytesMut};
use futures::stream::BoxStream;
use futures::{Stream, StreamExt, TryStreamExt};
use object_store::local::LocalFileSystem;
use object_store::path::Path as ObjectPath;
use object_store::{ObjectStore, PutPayload, WriteMultipart};

/// Bodies up to this size are uploaded in one request.
const SINGLE_PUT_LIMIT: usize = 8 * 1024 * 1024;

#[derive(Debug, thiserror::Error)]
pub enum ArtifactError {
    #[error("{0}")]
    InvalidPath(String),
    #[error("artifact '{0}' not found")]
    NotFound(String),
    #[error("artifact is larger than the limit of {limit} bytes")]
    TooLarge { limit: u64 },
    #[error("upload body could not be read: {0}")]
    Body(String),
    #[error("cannot open artifact destination: {0}")]
    Config(String),
    #[error("artifact storage error: {0}")]
    Backend(#[from] object_store::Error),
}

pub type Result<T, E = ArtifactError> = std::result::Result<T, E>;

/// A relative artifact path that cannot escape the artifact root.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ArtifactPath(String);

impl ArtifactPath {
    /// Checks a client-supplied path (already percent-decoded once by the
    /// HTTP layer). An empty path is the root.
    pub fn parse(raw: &str) -> Result<ArtifactPath> {
        let invalid = || {
            ArtifactError::InvalidPath(format!(
                "Invalid path: '{raw}'. Artifact paths must be relative and must not contain '..'"
            ))
        };
        // A second decoding catches `%2e%2e`-style traversal that survived
        // the first one.
        let decoded = percent_decode(raw).ok_or_else(invalid)?;
        for candidate in [raw, decoded.as_str()] {
            if candidate.starts_with('/') || candidate.contains('\\') || candidate.contains('\0') {
                return Err(invalid());
            }
            if candidate
                .split('/')
                .any(|segment| segment == ".." || segment == ".")
            {
                return Err(invalid());
            }
            if candidate.len() >= 2 && candidate.as_bytes()[1] == b':' {
                return Err(invalid());
            }
        }
        let trimmed = raw.trim_end_matches('/');
        if trimmed.split('/').any(str::is_empty) && !trimmed.is_empty() {
            return Err(invalid());
        }
        Ok(ArtifactPath(trimmed.to_string()))
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }

    pub fn is_root(&self) -> bool {
        self.0.is_empty()
    }

    /// Whether this path is `root` or lies under it (whole segments:
    /// `1/ab` is not under `1/a`).
    pub fn is_within(&self, root: &ArtifactPath) -> bool {
        root.is_root()
            || self.0 == root.0
            || self
                .0
                .strip_prefix(&root.0)
                .is_some_and(|rest| rest.starts_with('/'))
    }

    /// The last segment (file name).
    pub fn file_name(&self) -> &str {
        self.0.rsplit('/').next().unwrap_or(&self.0)
    }
}

/// The artifact path an `mlflow-artifacts:` URI names, or `None` when the
/// URI has another scheme. `mlflow-artifacts:/1/abc`,
/// `mlflow-artifacts:///1/abc` and `mlflow-artifacts://host:5000/1/abc` all
/// name `1/abc`: a host only says which server holds the files, as in
/// MLflow's client. Every reader of such a URI (permission checks, listings,
/// serving) goes through this one function, so none of them can read the
/// host as a path segment or the path as a host.
pub fn proxied_path(uri: &str) -> Option<Result<ArtifactPath>> {
    let (scheme, rest) = uri.split_once(':')?;
    if !scheme.eq_ignore_ascii_case("mlflow-artifacts") {
        return None;
    }
    let invalid =
        |why: &str| ArtifactError::InvalidPath(format!("Invalid artifact URI '{uri}': {why}"));
    if rest.contains(['?', '#']) {
        return Some(Err(invalid("a query or fragment is not allowed")));
    }
    let path = match rest.strip_prefix("//") {
        // An authority (possibly empty) ends at the next slash.
        Some(after) => after.split_once('/').map_or("", |(_, path)| path),
        None => rest.strip_prefix('/').unwrap_or(rest),
    };
    Some(ArtifactPath::parse(path.trim_end_matches('/')))
}

fn percent_decode(text: &str) -> Option<String> {
    let bytes = text.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut idx = 0;
    while idx < bytes.len() {
        if bytes[idx] == b'%' && idx + 2 < bytes.len() {
            let hex = std::str::from_utf8(&bytes[idx + 1..idx + 3]).ok()?;
            match u8::from_str_radix(hex, 16) {
                Ok(byte) => {
                    out.push(byte);
                    idx += 3;
                    continue;
                }
                Err(_) => out.push(b'%'),
            }
        } else {
            out.push(bytes[idx]);
        }
        idx += 1;
    }
    String::from_utf8(out).ok()
}

/// One entry of a directory listing, as MLflow's `FileInfo`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FileInfo {
    /// The entry's name relative to the listed directory.
    pub path: String,
    pub is_dir: bool,
    pub file_size: Option<u64>,
}

/// A downloadable artifact: its size and a stream of its bytes.
pub struct Download {
    pub size: u64,
    pub body: BoxStream<'static, Result<Bytes>>,
}

/// Where artifacts live: a backend plus a prefix inside it.
#[derive(Clone)]
pub struct ArtifactStore {
    backend: Arc<dyn ObjectStore>,
    /// The directory of a local store, where symbolic links are refused.
    local_root: Option<std::path::PathBuf>,
    prefix: ObjectPath,
    description: String,
    max_upload_bytes: u64,
}

impl std::fmt::Debug for ArtifactStore {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ArtifactStore")
            .field("destination", &self.description)
            .finish()
    }
}

impl ArtifactStore {
    /// Opens a destination: a local directory (created if missing), a
    /// `file://` URL, or an object-store URL (`s3://bucket/prefix`,
    /// `gs://…`, `az://…`) configured by `options` (e.g. `aws_endpoint`,
    /// `aws_access_key_id`, `aws_allow_http`).
    pub fn open(
        destination: &str,
        options: &[(String, String)],
        max_upload_bytes: u64,
    ) -> Result<ArtifactStore> {
        let is_url = destination.contains("://");
        let local_dir = if let Some(path) = destination.strip_prefix("file://") {
            Some(path.to_string())
        } else if !is_url {
            Some(destination.to_string())
        } else {
            None
        };
        if let Some(dir) = local_dir {
            std::fs::create_dir_all(&dir)
                .map_err(|err| ArtifactError::Config(format!("cannot create {dir}: {err}")))?;
            let backend = LocalFileSystem::new_with_prefix(&dir)
                .map_err(|err| ArtifactError::Config(format!("{dir}: {err}")))?
                .with_automatic_cleanup(true);
            return Ok(ArtifactStore {
                backend: Arc::new(backend),
                local_root: Some(std::path::PathBuf::from(&dir)),
                prefix: ObjectPath::default(),
                description: dir,
                max_upload_bytes,
            });
        }
        let url = url::Url::parse(destination).map_err(|err| {
            ArtifactError::Config(format!(
                "invalid artifact destination '{destination}': {err}"
            ))
        })?;
        let (backend, prefix) = object_store::parse_url_opts(
            &url,
            options.iter().map(|(k, v)| (k.as_str(), v.as_str())),
        )
        .map_err(|err| ArtifactError::Config(format!("{destination}: {err}")))?;
        Ok(ArtifactStore {
            backend: Arc::from(backend),
            local_root: None,
            prefix,
            description: destination.to_string(),
            max_upload_bytes,
        })
    }

    /// The destination as configured, for logs and `server-info`.
    pub fn description(&self) -> &str {
        &self.description
    }

    /// On the local disk a path through a symbolic link could lead out of
    /// the root (a link planted by anyone who can write there, or by a
    /// tar file unpacked in place): every path through one is absent.
    fn refuse_links(&self, path: &ArtifactPath) -> Result<()> {
        let Some(root) = &self.local_root else {
            return Ok(());
        };
        let mut current = root.clone();
        for segment in path.as_str().split('/').filter(|s| !s.is_empty()) {
            current.push(segment);
            match std::fs::symlink_metadata(&current) {
                Ok(meta) if meta.file_type().is_symlink() => {
                    return Err(ArtifactError::NotFound(path.as_str().into()))
                }
                Ok(_) => {}
                // Nothing below a missing entry can be a link.
                Err(_) => break,
            }
        }
        Ok(())
    }

    fn object_path(&self, path: &ArtifactPath) -> ObjectPath {
        let mut full = self.prefix.clone();
        for segment in path.as_str().split('/').filter(|s| !s.is_empty()) {
            full = full.child(segment);
        }
        full
    }

    /// Streams `body` to `path`, replacing any previous file. Returns the
    /// number of bytes written. Nothing is visible at `path` unless the
    /// whole body arrived.
    pub async fn put<S, E>(&self, path: &ArtifactPath, body: S) -> Result<u64>
    where
        S: Stream<Item = std::result::Result<Bytes, E>> + Send,
        E: std::fmt::Display,
    {
        if path.is_root() {
            return Err(ArtifactError::InvalidPath(
                "an upload needs a file path".into(),
            ));
        }
        self.refuse_links(path)?;
        let location = self.object_path(path);
        let mut body = std::pin::pin!(body);
        let mut buffer = BytesMut::new();
        let mut written: u64 = 0;
        let mut multipart: Option<WriteMultipart> = None;
        while let Some(chunk) = body.next().await {
            let chunk = chunk.map_err(|err| ArtifactError::Body(err.to_string()))?;
            written += chunk.len() as u64;
            if written > self.max_upload_bytes {
                if let Some(upload) = multipart.take() {
                    let _ = upload.abort().await;
                }
                return Err(ArtifactError::TooLarge {
                    limit: self.max_upload_bytes,
                });
            }
            match multipart.as_mut() {
                Some(upload) => {
                    upload.wait_for_capacity(4).await?;
                    upload.write(&chunk);
                }
                None => {
                    buffer.extend_from_slice(&chunk);
                    if buffer.len() > SINGLE_PUT_LIMIT {
                        let mut upload =
                            WriteMultipart::new(self.backend.put_multipart(&location).await?);
                        upload.write(&buffer);
                        buffer.clear();
                        multipart = Some(upload);
                    }
                }
            }
        }
        match multipart {
            Some(upload) => {
                upload.finish().await?;
            }
            None => {
                self.backend
                    .put(&location, PutPayload::from(buffer.freeze()))
                    .await?;
            }
        }
        Ok(written)
    }

    /// Whether a file exists at `path` (its metadata only, no download).
    pub async fn exists(&self, path: &ArtifactPath) -> Result<bool> {
        if path.is_root() {
            return Ok(false);
        }
        self.refuse_links(path)?;
        match self.backend.head(&self.object_path(path)).await {
            Ok(_) => Ok(true),
            Err(object_store::Error::NotFound { .. }) => Ok(false),
            Err(err) => Err(err.into()),
        }
    }

    /// The size of the file at `path` (its metadata only), None when there
    /// is none.
    pub async fn size(&self, path: &ArtifactPath) -> Result<Option<u64>> {
        if path.is_root() {
            return Ok(None);
        }
        self.refuse_links(path)?;
        match self.backend.head(&self.object_path(path)).await {
            Ok(meta) => Ok(Some(meta.size)),
            Err(object_store::Error::NotFound { .. }) => Ok(None),
            Err(err) => Err(err.into()),
        }
    }

    /// Opens a file for download.
    pub async fn get(&self, path: &ArtifactPath) -> Result<Download> {
        if path.is_root() {
            return Err(ArtifactError::NotFound(String::new()));
        }
        self.refuse_links(path)?;
        let result = match self.backend.get(&self.object_path(path)).await {
            Ok(result) => result,
            Err(object_store::Error::NotFound { .. }) => {
                return Err(ArtifactError::NotFound(path.as_str().into()))
            }
            Err(err) => return Err(err.into()),
        };
        let size = result.meta.size;
        let body = result.into_stream().map_err(ArtifactError::from).boxed();
        Ok(Download { size, body })
    }

    /// Reads a file whole into memory. A file over `limit` bytes is refused
    /// with `TooLarge` before any of it is read, and so is a body that runs
    /// past the limit whatever size the store announced.
    pub async fn get_bytes(&self, path: &ArtifactPath, limit: u64) -> Result<Vec<u8>> {
        let download = self.get(path).await?;
        if download.size > limit {
            return Err(ArtifactError::TooLarge { limit });
        }
        let mut bytes = Vec::with_capacity(download.size as usize);
        let mut body = download.body;
        while let Some(chunk) = body.next().await {
            bytes.extend_from_slice(&chunk?);
            if bytes.len() as u64 > limit {
                return Err(ArtifactError::TooLarge { limit });
            }
        }
        Ok(bytes)
    }

    /// Lists the direct children of a directory, directories first then
    /// files, each sorted by name. A file path or a missing directory lists
    /// as empty, as MLflow's proxy does.
    pub async fn list(&self, dir: &ArtifactPath) -> Result<Vec<FileInfo>> {
        if self.refuse_links(dir).is_err() {
            return Ok(Vec::new());
        }
        let location = self.object_path(dir);
        let prefix = if location.as_ref().is_empty() {
            None
        } else {
            Some(&location)
        };
        let listing = match self.backend.list_with_delimiter(prefix).await {
            Ok(listing) => listing,
            Err(object_store::Error::NotFound { .. }) => return Ok(Vec::new()),
            Err(err) => return Err(err.into()),
        };
        let mut dirs: Vec<FileInfo> = listing
            .common_prefixes
            .iter()
            .filter_map(|p| p.filename().map(str::to_string))
            .map(|name| FileInfo {
                path: name,
                is_dir: true,
                file_size: None,
            })
            .collect();
        let mut files: Vec<FileInfo> = listing
            .objects
            .iter()
            .filter_map(|meta| {
                meta.location
                    .filename()
                    .map(|name| (name.to_string(), meta.size))
            })
            .filter(|(name, _)| !name.starts_with('#'))
            .map(|(name, size)| FileInfo {
                path: name,
                is_dir: false,
                file_size: Some(size),
            })
            .collect();
        dirs.sort_by(|a, b| a.path.cmp(&b.path));
        files.sort_by(|a, b| a.path.cmp(&b.path));
        dirs.extend(files);
        if let Some(root) = &self.local_root {
            let here = root.join(dir.as_str());
            dirs.retain(|entry| {
                std::fs::symlink_metadata(here.join(&entry.path))
                    .is_ok_and(|meta| !meta.file_type().is_symlink())
            });
        }
        Ok(dirs)
    }

    /// Deletes a file, or a directory and everything under it.
    pub async fn delete(&self, path: &ArtifactPath) -> Result<()> {
        if path.is_root() {
            return Err(ArtifactError::InvalidPath(
                "refusing to delete the artifact root".into(),
            ));
        }
        self.refuse_links(path)?;
        let location = self.object_path(path);
        // A file is one object; a directory is every object under its prefix
        // (on the local disk the directory itself cannot be deleted as an
        // object, so it is never passed to `delete`).
        match self.backend.head(&location).await {
            Ok(_) => return Ok(self.backend.delete(&location).await?),
            Err(object_store::Error::NotFound { .. }) => {}
            Err(err) => return Err(err.into()),
        }
        let children: Vec<ObjectPath> = self
            .backend
            .list(Some(&location))
            .map_ok(|meta| meta.location)
            .try_collect()
            .await?;
        if children.is_empty() {
            return Err(ArtifactError::NotFound(path.as_str().into()));
        }
        for child in children {
            // A link inside the directory is not followed out of it.
            let relative = child
                .as_ref()
                .strip_prefix(self.prefix.as_ref())
                .unwrap_or(child.as_ref());
            if let Ok(child_path) = ArtifactPath::parse(relative.trim_start_matches('/')) {
                if self.refuse_links(&child_path).is_err() {
                    continue;
                }
            }
            match self.backend.delete(&child).await {
                Ok(()) | Err(object_store::Error::NotFound { .. }) => {}
                Err(err) => return Err(err.into()),
            }
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests;
