//! Datasets stored by content (`sextant datasets push`): the list of
//! datasets and their versions, and a version's page with its files and
//! its profile (EDA), optionally against a target column or another
//! version, drawn in a sandboxed frame from the same report
//! `GET /api/v1/datasets/{name}/versions/{version}/profile` answers.

use maud::{html, Markup};

use crate::{encode, format, page, query, Section, Viewer};

/// One stored version, as listed.
pub struct VersionRow {
    /// `sha256:<hex>`.
    pub digest: String,
    pub kind: String,
    pub bytes: u64,
    pub files: usize,
    pub source: String,
    pub created_at: i64,
    pub created_by: String,
}

pub struct DatasetRow {
    pub name: String,
    /// Newest first.
    pub versions: Vec<VersionRow>,
}

pub struct DatasetsPage {
    pub datasets: Vec<DatasetRow>,
}

/// The first 12 hexadecimal digits of a digest, as `sextant datasets list` prints them.
pub fn short_digest(digest: &str) -> &str {
    let hex = digest.strip_prefix("sha256:").unwrap_or(digest);
    hex.get(..12).unwrap_or(hex)
}

fn version_href(name: &str, digest: &str) -> String {
    format!(
        "/datasets/{}/versions/{}",
        encode(name),
        encode(short_digest(digest))
    )
}

pub fn render_list(data: &DatasetsPage, viewer: &Viewer) -> Markup {
    let body = html! {
        div.heading { h1 { "Datasets" } }
        @if data.datasets.is_empty() {
            p.empty { "No dataset is stored. Push one with " code { "sextant datasets push FILE --name NAME" } "." }
        } @else {
            table.grid.navigable {
                thead { tr { th { "Dataset" } th { "Version" } th.num { "Size" } th { "Source" } th { "Pushed" } th { "By" } } }
                tbody {
                    @for dataset in &data.datasets {
                        @for (i, version) in dataset.versions.iter().enumerate() {
                            tr {
                                td { @if i == 0 { strong { (dataset.name) } } }
                                td { a href=(version_href(&dataset.name, &version.digest)) { code { (short_digest(&version.digest)) } } @if i == 0 { " " span.muted { "latest" } } }
                                td.num { (format::bytes(version.bytes)) @if version.files > 1 { " in " (version.files) " files" } }
                                td { (format::clip(&version.source, 60)) }
                                td { (format::time(version.created_at)) }
                                td { (version.created_by) }
                            }
                        }
                    }
                }
            }
        }
    };
    page("Datasets", Section::Datasets, viewer, body)
}

/// A file of a version.
pub struct FileRow {
    pub path: String,
    pub bytes: u64,
    pub sha256: String,
    pub chunks: usize,
}

pub struct VersionPage {
    pub name: String,
    pub version: VersionRow,
    pub files: Vec<FileRow>,
    /// Other versions of the same dataset, newest first (to compare with).
    pub others: Vec<String>,
    /// As typed in the page's form.
    pub target: String,
    pub compare: String,
}

pub fn render_version(data: &VersionPage, viewer: &Viewer) -> Markup {
    let short = short_digest(&data.version.digest);
    let mut frame_query: Vec<(&str, &str)> = vec![("name", &data.name), ("version", short)];
    if !data.target.is_empty() {
        frame_query.push(("target", &data.target));
    }
    if !data.compare.is_empty() {
        frame_query.push(("compare", &data.compare));
    }
    let api = format!(
        "/api/v1/datasets/{}/versions/{}/profile",
        encode(&data.name),
        short
    );
    let body = html! {
        p.crumbs { a href="/datasets" { "Datasets" } " / " (data.name) }
        div.heading { h1 { (data.name) " " code { (short) } } }
        dl.facts {
            dt { "Digest" } dd { code { (data.version.digest) } }
            dt { "Size" } dd { (format::bytes(data.version.bytes)) " (" (data.version.kind) ")" }
            dt { "Source" } dd { (data.version.source) }
            dt { "Pushed" } dd { (format::time(data.version.created_at)) " by " (data.version.created_by) }
            dt { "Pull" } dd { code { "sextant datasets pull " (data.name) "@" (short) " -o FILE" } }
        }
        @if data.files.len() > 1 {
            h2 { "Files" }
            table.grid.compact {
                thead { tr { th { "Path" } th.num { "Size" } th { "SHA-256" } th.num { "Chunks" } } }
                tbody { @for file in &data.files { tr { td { (file.path) } td.num { (format::bytes(file.bytes)) } td { code { (short_digest(&file.sha256)) } } td.num { (file.chunks) } } } }
            }
            p.empty { "A profile is of one table; this version is a directory." }
        } @else {
            h2 { "Profile" }
            form.fields method="get" {
                input type="text" name="target" value=(data.target) placeholder="label column (optional)";
                select name="compare" {
                    option value="" { "compare with no other version" }
                    @for other in &data.others {
                        option value=(other) selected[data.compare == *other] { "compare with " (other) }
                    }
                }
                button type="submit" { "Profile" }
                " " a href=(format!("{api}{}", query(&frame_query[2..]))) { "JSON" }
            }
            iframe.report src=(format!("/ui/datasets/profile{}", query(&frame_query))) sandbox="" title="Profile" {}
        }
    };
    page(
        &format!("{} {short}", data.name),
        Section::Datasets,
        viewer,
        body,
    )
}
