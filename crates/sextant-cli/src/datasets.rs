//! `sextant datasets push|pull|list`: datasets stored by content on the
//! server (`/api/v1/datasets`, see `sextant_server::routes::datasets`).
//!
//! `push` cuts each file into content-defined chunks (FastCDC, Xia et al.
//! 2016/2020: a cut where a rolling gear hash of the last bytes matches a
//! mask, so an edit moves only the cuts near it and every other chunk keeps
//! its bytes and hash), hashes them with SHA-256 on one thread while another
//! asks the server which it lacks and uploads those, then records the
//! version. `pull` fetches a version's chunks in order, checks each chunk's
//! hash and each file's, and writes the files only once they check.

use std::collections::HashSet;
use std::io::Write;
use std::path::{Path, PathBuf};
use std::time::Instant;

use anyhow::{bail, Context};
use futures::StreamExt;
use reqwest::Method;
use serde_json::{json, Value};
use sha2::{Digest, Sha256};

use crate::client::{Client, Connection};

/// Chunk sizes: 1 MiB on average, between 256 KiB and 4 MiB. Large enough
/// that a gigabyte is a thousand chunks (one request each when new), small
/// enough that a local edit re-stores about a megabyte.
const MIN_CHUNK: usize = 256 * 1024;
const AVG_CHUNK: usize = 1024 * 1024;
const MAX_CHUNK: usize = 4 * 1024 * 1024;
/// Chunks asked about per request, and uploads in flight.
const QUERY_BATCH: usize = 64;
const UPLOADS_IN_FLIGHT: usize = 4;

#[derive(clap::Subcommand)]
pub enum DatasetsCommand {
    /// Store a file or directory by content; prints its digest.
    Push {
        /// A file, or a directory (every file under it).
        path: PathBuf,
        /// The dataset's name (letters, digits, '-', '_', '.').
        #[arg(long)]
        name: String,
    },
    /// Fetch a version, checking every chunk's hash: NAME@DIGEST (or a
    /// prefix of at least 8 digits) or NAME@latest.
    Pull {
        version: String,
        /// Where to write it (a file for a file, a directory for a
        /// directory; default: the dataset's name in the working directory).
        #[arg(long, short)]
        output: Option<PathBuf>,
    },
    /// Datasets and their versions.
    List,
}

pub async fn datasets(connection: &Connection, command: DatasetsCommand) -> anyhow::Result<()> {
    let client = Client::new(connection)?;
    match command {
        DatasetsCommand::Push { path, name } => push(&client, &path, &name).await,
        DatasetsCommand::Pull { version, output } => pull(&client, &version, output).await,
        DatasetsCommand::List => {
            let answer = client.call(Method::GET, "/datasets", &[], None).await?;
            crate::output::print(&answer);
            Ok(())
        }
    }
}

/// The files of `path` (relative path, absolute path), sorted.
fn files_of(path: &Path) -> anyhow::Result<(String, Vec<(String, PathBuf)>)> {
    let meta =
        std::fs::metadata(path).with_context(|| format!("cannot read {}", path.display()))?;
    if meta.is_file() {
        return Ok(("file".into(), vec![(String::new(), path.to_path_buf())]));
    }
    let mut files = Vec::new();
    let mut stack = vec![path.to_path_buf()];
    while let Some(dir) = stack.pop() {
        for entry in
            std::fs::read_dir(&dir).with_context(|| format!("cannot list {}", dir.display()))?
        {
            let child = entry?.path();
            if child.is_dir() {
                stack.push(child);
            } else if child.is_file() {
                let relative = child
                    .strip_prefix(path)
                    .expect("under the root")
                    .components()
                    .map(|c| c.as_os_str().to_string_lossy().into_owned())
                    .collect::<Vec<_>>()
                    .join("/");
                files.push((relative, child));
            }
        }
    }
    files.sort();
    if files.is_empty() {
        bail!("{} holds no files", path.display());
    }
    Ok(("directory".into(), files))
}

/// What the chunking thread hands the uploader.
enum Piece {
    Chunk {
        sha256: String,
        data: Vec<u8>,
    },
    FileDone {
        index: usize,
        sha256: String,
        bytes: u64,
        chunks: Vec<(String, u64)>,
    },
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

/// The server's rule for names, checked before any byte is sent.
fn check_name(name: &str) -> anyhow::Result<()> {
    let ok = !name.is_empty()
        && name.len() <= 128
        && !name.starts_with('.')
        && name != "chunks"
        && name
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_' | b'.'));
    if !ok {
        bail!("'{name}' is not a dataset name: 1 to 128 letters, digits, '-', '_' or '.', not starting with '.', and not 'chunks'");
    }
    Ok(())
}

async fn push(client: &Client, path: &Path, name: &str) -> anyhow::Result<()> {
    check_name(name)?;
    let started = Instant::now();
    let (kind, files) = files_of(path)?;
    let (sender, mut receiver) = tokio::sync::mpsc::channel::<Piece>(16);
    let paths: Vec<PathBuf> = files.iter().map(|(_, p)| p.clone()).collect();
    let chunker = tokio::task::spawn_blocking(move || -> anyhow::Result<()> {
        for (index, path) in paths.iter().enumerate() {
            let file = std::fs::File::open(path)
                .with_context(|| format!("cannot read {}", path.display()))?;
            let mut whole = Sha256::new();
            let mut chunks = Vec::new();
            let mut bytes = 0u64;
            for chunk in fastcdc::v2020::StreamCDC::new(file, MIN_CHUNK, AVG_CHUNK, MAX_CHUNK) {
                let chunk = chunk.with_context(|| format!("while reading {}", path.display()))?;
                whole.update(&chunk.data);
                let sha256 = hex(&Sha256::digest(&chunk.data));
                chunks.push((sha256.clone(), chunk.length as u64));
                bytes += chunk.length as u64;
                if sender
                    .blocking_send(Piece::Chunk {
                        sha256,
                        data: chunk.data,
                    })
                    .is_err()
                {
                    return Ok(()); // the uploader failed; its error is the one to show
                }
            }
            let done = Piece::FileDone {
                index,
                sha256: hex(&whole.finalize()),
                bytes,
                chunks,
            };
            if sender.blocking_send(done).is_err() {
                return Ok(());
            }
        }
        Ok(())
    });

    let mut described: Vec<Option<Value>> = vec![None; files.len()];
    let mut handled: HashSet<String> = HashSet::new();
    let mut batch: Vec<(String, Vec<u8>)> = Vec::new();
    let (mut total, mut stored) = (0u64, 0u64);
    loop {
        let piece = receiver.recv().await;
        let ended = piece.is_none();
        let flush = match &piece {
            None => true,
            Some(Piece::Chunk { .. }) => batch.len() + 1 >= QUERY_BATCH,
            Some(Piece::FileDone { .. }) => false,
        };
        match piece {
            Some(Piece::Chunk { sha256, data }) => {
                total += data.len() as u64;
                if handled.insert(sha256.clone()) {
                    batch.push((sha256, data));
                }
            }
            Some(Piece::FileDone {
                index,
                sha256,
                bytes,
                chunks,
            }) => {
                described[index] = Some(json!({
                    "path": files[index].0, "bytes": bytes, "sha256": sha256,
                    "chunks": chunks.iter().map(|(sha, size)| json!([sha, size])).collect::<Vec<_>>(),
                }));
            }
            None => {}
        }
        if flush && !batch.is_empty() {
            stored += upload_missing(client, std::mem::take(&mut batch)).await?;
        }
        if ended {
            break;
        }
    }
    chunker.await.context("the chunking thread failed")??;
    let body = json!({
        "kind": kind,
        "files": described.into_iter().map(|d| d.context("a file was not chunked")).collect::<anyhow::Result<Vec<_>>>()?,
        "source": path.display().to_string(),
    });
    let version = client
        .call(
            Method::POST,
            &format!("/datasets/{name}/versions"),
            &[],
            Some(body),
        )
        .await?;
    let seconds = started.elapsed().as_secs_f64();
    eprintln!(
        "sextant: {} bytes in {:.2} s ({:.0} MB/s); {} bytes were new",
        total,
        seconds,
        total as f64 / 1e6 / seconds.max(1e-9),
        stored
    );
    crate::output::print(&json!({
        "name": version["name"], "digest": version["digest"], "bytes": version["bytes"],
        "files": version["files"].as_array().map_or(0, Vec::len), "new_bytes": stored,
    }));
    Ok(())
}

/// Asks which of `batch` the server lacks and uploads those; returns the
/// bytes uploaded.
async fn upload_missing(client: &Client, batch: Vec<(String, Vec<u8>)>) -> anyhow::Result<u64> {
    let names: Vec<&String> = batch.iter().map(|(sha, _)| sha).collect();
    let answer = client
        .call(
            Method::POST,
            "/datasets/chunks/missing",
            &[],
            Some(json!({"chunks": names})),
        )
        .await?;
    let missing: HashSet<&str> = answer["missing"]
        .as_array()
        .into_iter()
        .flatten()
        .filter_map(Value::as_str)
        .collect();
    let uploads = batch
        .into_iter()
        .filter(|(sha, _)| missing.contains(sha.as_str()))
        .map(|(sha, data)| async move {
            let size = data.len() as u64;
            client
                .call_with_bytes(Method::PUT, &format!("/datasets/chunks/{sha}"), &[], data)
                .await
                .with_context(|| format!("uploading chunk {sha}"))?;
            anyhow::Ok(size)
        });
    let sizes: Vec<anyhow::Result<u64>> = futures::stream::iter(uploads)
        .buffer_unordered(UPLOADS_IN_FLIGHT)
        .collect()
        .await;
    sizes.into_iter().sum()
}

async fn pull(client: &Client, version: &str, output: Option<PathBuf>) -> anyhow::Result<()> {
    let started = Instant::now();
    let (name, wanted) = version
        .split_once('@')
        .with_context(|| format!("'{version}' is not NAME@DIGEST or NAME@latest"))?;
    let output = output.unwrap_or_else(|| PathBuf::from(name));
    let (version, total) = pull_into(client, name, wanted, &output).await?;
    let seconds = started.elapsed().as_secs_f64();
    eprintln!(
        "sextant: {} bytes in {:.2} s ({:.0} MB/s), every chunk checked",
        total,
        seconds,
        total as f64 / 1e6 / seconds.max(1e-9)
    );
    crate::output::print(&json!({
        "name": version["name"], "digest": version["digest"], "bytes": total,
        "output": output.display().to_string(),
    }));
    Ok(())
}

/// Pulls version `wanted` of dataset `name` to `output` (for `reproduce`).
pub async fn pull_version(
    client: &Client,
    name: &str,
    wanted: &str,
    output: &Path,
) -> anyhow::Result<()> {
    pull_into(client, name, wanted, output).await.map(|_| ())
}

/// Fetches a version's files into `output`, checking every chunk and file;
/// returns the version and the bytes written.
async fn pull_into(
    client: &Client,
    name: &str,
    wanted: &str,
    output: &Path,
) -> anyhow::Result<(Value, u64)> {
    let version = client
        .call(
            Method::GET,
            &format!("/datasets/{name}/versions/{wanted}"),
            &[],
            None,
        )
        .await?;
    let output = output.to_path_buf();
    let files = version["files"].as_array().cloned().unwrap_or_default();
    let directory = version["kind"] == "directory";
    let mut total = 0u64;
    for file in &files {
        let relative = file["path"].as_str().unwrap_or_default();
        let target = if directory {
            output.join(relative)
        } else {
            output.clone()
        };
        if let Some(parent) = target.parent().filter(|p| !p.as_os_str().is_empty()) {
            std::fs::create_dir_all(parent)
                .with_context(|| format!("cannot create {}", parent.display()))?;
        }
        let partial = target.with_extension(match target.extension() {
            Some(ext) => format!("{}.partial", ext.to_string_lossy()),
            None => "partial".into(),
        });
        let mut out = std::io::BufWriter::new(
            std::fs::File::create(&partial)
                .with_context(|| format!("cannot write {}", partial.display()))?,
        );
        let mut whole = Sha256::new();
        let chunks: Vec<String> = file["chunks"]
            .as_array()
            .into_iter()
            .flatten()
            .filter_map(|c| c[0].as_str().map(str::to_string))
            .collect();
        let mut fetched = futures::stream::iter(chunks.into_iter().map(|sha| async move {
            let bytes = client.get_bytes(&format!("/datasets/chunks/{sha}")).await?;
            let actual = hex(&Sha256::digest(&bytes));
            if actual != sha {
                bail!("chunk {sha} arrived with hash {actual}: refusing it");
            }
            anyhow::Ok(bytes)
        }))
        .buffered(UPLOADS_IN_FLIGHT);
        while let Some(bytes) = fetched.next().await {
            let bytes = bytes?;
            whole.update(&bytes);
            total += bytes.len() as u64;
            out.write_all(&bytes)?;
        }
        out.flush()?;
        drop(out);
        let actual = hex(&whole.finalize());
        if Some(actual.as_str()) != file["sha256"].as_str() {
            let _ = std::fs::remove_file(&partial);
            bail!(
                "{}: the chunks make a file with hash {actual}, not {}",
                target.display(),
                file["sha256"]
            );
        }
        std::fs::rename(&partial, &target)
            .with_context(|| format!("cannot write {}", target.display()))?;
    }
    Ok((version, total))
}
