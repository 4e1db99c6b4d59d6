//! Where `predict` and `drift` read data: a file, a directory of files, or
//! either on object storage (`s3://bucket/prefix/`, `gs://…`, `az://…`,
//! configured by the `AWS_*`, `GOOGLE_*` and `AZURE_*` environment as the
//! server is); and which share of it a partition (`--partition I/N`) takes.
//!
//! A directory of at least N data files is split by files, anything else
//! by rows of the files read in name order as one table, each share
//! contiguous, so the N shares in order are the whole input. On object
//! storage only the files of this share are downloaded.

use std::path::{Path, PathBuf};

use anyhow::{bail, Context};
use futures::StreamExt;
use sextant_artifacts::{ArtifactPath, ArtifactStore};

/// Share `index` of `count`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Partition {
    pub index: usize,
    pub count: usize,
}

impl Partition {
    /// The contiguous share of `0..len` this partition takes:
    /// ⌊I·len/N⌋ .. ⌊(I+1)·len/N⌋, so that the shares tile `0..len` in order.
    pub fn range(self, len: usize) -> std::ops::Range<usize> {
        self.index * len / self.count..(self.index + 1) * len / self.count
    }
}

pub(crate) fn parse_partition(text: &str) -> Result<Partition, String> {
    let (index, count) = text
        .split_once('/')
        .ok_or_else(|| format!("'{text}' is not I/N (e.g. 0/4)"))?;
    let index: usize = index
        .trim()
        .parse()
        .map_err(|_| format!("'{index}' is not a whole number"))?;
    let count: usize = count
        .trim()
        .parse()
        .map_err(|_| format!("'{count}' is not a whole number"))?;
    if count == 0 || index >= count {
        return Err(format!(
            "partition {index}/{count}: need 0 ≤ I < N (the first of four is 0/4)"
        ));
    }
    Ok(Partition { index, count })
}

/// The local files this process reads, in name order, and the share of
/// their rows (taken together) it keeps: `None` when the partition was
/// taken by files, or when there is none.
pub(crate) struct SelectedInput {
    pub files: Vec<PathBuf>,
    pub rows: Option<Partition>,
    /// Holds downloaded files until the input is read.
    _downloads: Option<tempfile::TempDir>,
}

/// A table `predict` and `drift` both read, by its name: Parquet, or CSV
/// or TSV (possibly compressed).
fn is_data_file(name: &str) -> bool {
    let format = sextant_monitor::dataset::NamedFormat::of(name);
    format.is_delimited_table() || format.is_parquet()
}

/// The share of `files` a partition takes: whole files when there are at
/// least as many as parts, else every file and a share of the rows.
fn select<T: Clone>(files: &[T], partition: Option<Partition>) -> (Vec<T>, Option<Partition>) {
    match partition {
        Some(partition) if files.len() >= partition.count => {
            (files[partition.range(files.len())].to_vec(), None)
        }
        rows => (files.to_vec(), rows),
    }
}

/// Resolves `input` (a path or an object-store URL) for `partition`.
pub(crate) async fn select_input(
    input: &str,
    partition: Option<Partition>,
) -> anyhow::Result<SelectedInput> {
    if !input.contains("://") || input.starts_with("file://") {
        let path = PathBuf::from(input.strip_prefix("file://").unwrap_or(input));
        return select_local(&path, partition);
    }
    let url = input.trim_end_matches('/');
    let downloads = tempfile::tempdir().context("cannot create a directory for the downloads")?;
    let (store_url, names) = if is_data_file(url) {
        // One object: the store is its directory.
        let (parent, name) = url.rsplit_once('/').context("an object URL names a file")?;
        (parent.to_string(), vec![name.to_string()])
    } else {
        let store = open(url)?;
        let listing = store
            .list(&ArtifactPath::parse("").expect("the root"))
            .await
            .with_context(|| format!("while listing {input}"))?;
        let names: Vec<String> = listing
            .into_iter()
            .filter(|entry| !entry.is_dir && is_data_file(&entry.path))
            .map(|entry| entry.path)
            .collect();
        if names.is_empty() {
            bail!("{input} holds no .parquet or .csv files");
        }
        (url.to_string(), names)
    };
    let (names, rows) = select(&names, partition);
    let store = open(&store_url)?;
    let mut files = Vec::with_capacity(names.len());
    for name in names {
        let path = ArtifactPath::parse(&name).with_context(|| format!("object name {name}"))?;
        let mut download = store
            .get(&path)
            .await
            .with_context(|| format!("while downloading {store_url}/{name}"))?;
        let local = downloads.path().join(&name);
        let mut file = tokio::fs::File::create(&local)
            .await
            .with_context(|| format!("cannot write {}", local.display()))?;
        while let Some(chunk) = download.body.next().await {
            let chunk = chunk.with_context(|| format!("while downloading {store_url}/{name}"))?;
            tokio::io::AsyncWriteExt::write_all(&mut file, &chunk).await?;
        }
        tokio::io::AsyncWriteExt::flush(&mut file).await?;
        files.push(local);
    }
    Ok(SelectedInput {
        files,
        rows,
        _downloads: Some(downloads),
    })
}

fn open(url: &str) -> anyhow::Result<ArtifactStore> {
    ArtifactStore::open(url, &crate::object_store_options(), u64::MAX)
        .with_context(|| format!("cannot open {url}"))
}

fn select_local(path: &Path, partition: Option<Partition>) -> anyhow::Result<SelectedInput> {
    if !path.is_dir() {
        if !path.exists() {
            bail!("{} does not exist", path.display());
        }
        return Ok(SelectedInput {
            files: vec![path.to_path_buf()],
            rows: partition,
            _downloads: None,
        });
    }
    let mut files: Vec<PathBuf> = std::fs::read_dir(path)
        .with_context(|| format!("while listing {}", path.display()))?
        .filter_map(|entry| entry.ok().map(|e| e.path()))
        .filter(|file| {
            file.is_file()
                && file
                    .file_name()
                    .and_then(|n| n.to_str())
                    .is_some_and(is_data_file)
        })
        .collect();
    files.sort();
    if files.is_empty() {
        bail!("{} holds no .parquet or .csv files", path.display());
    }
    let (files, rows) = select(&files, partition);
    Ok(SelectedInput {
        files,
        rows,
        _downloads: None,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn partitions_tile_the_input_in_order() {
        for len in [0, 1, 7, 100] {
            for count in 1..6 {
                let mut next = 0;
                for index in 0..count {
                    let range = Partition { index, count }.range(len);
                    assert_eq!(range.start, next);
                    next = range.end;
                }
                assert_eq!(next, len);
            }
        }
        assert_eq!(parse_partition("1/4"), Ok(Partition { index: 1, count: 4 }));
        for bad in ["4/4", "1", "a/2", "0/0"] {
            assert!(parse_partition(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn enough_files_split_by_files_else_by_rows() {
        let files = ["a", "b", "c", "d", "e"];
        let share = Some(Partition { index: 1, count: 2 });
        assert_eq!(select(&files, share), (vec!["c", "d", "e"], None));
        let many = Some(Partition { index: 1, count: 8 });
        assert_eq!(select(&files, many), (files.to_vec(), many));
        assert_eq!(select(&files, None), (files.to_vec(), None));
    }
}
