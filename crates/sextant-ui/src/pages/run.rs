//! One run: status, duration, user, source and commit, params, editable
//! tags, metrics with charts, datasets, logged models and the registered
//! versions made from them, nested runs, and the artifact browser.

use maud::{html, Markup};
use sextant_core::{Experiment, ModelVersion, Run};

use crate::pages::runs::run_href;
use crate::{encode, format, page, Section, Viewer};

/// A file or directory of the run's artifacts.
pub struct ArtifactEntry {
    pub path: String,
    pub is_dir: bool,
    pub size: Option<u64>,
}

pub struct RunPage {
    pub experiment: Experiment,
    pub run: Run,
    pub children: Vec<Run>,
    /// Registered versions whose source is this run.
    pub versions: Vec<ModelVersion>,
    /// The artifact directory shown (relative to the run's root).
    pub artifact_dir: String,
    pub artifacts: Vec<ArtifactEntry>,
    /// Why the artifacts could not be listed, if they could not.
    pub artifact_error: Option<String>,
    pub may_edit: bool,
}

/// Each segment of a directory with the path up to it.
fn breadcrumbs(dir: &str) -> Vec<(String, String)> {
    let mut prefix = String::new();
    dir.split('/')
        .filter(|s| !s.is_empty())
        .map(|segment| {
            if !prefix.is_empty() {
                prefix.push('/');
            }
            prefix.push_str(segment);
            (segment.to_string(), prefix.clone())
        })
        .collect()
}

fn tag<'r>(run: &'r Run, key: &str) -> Option<&'r str> {
    run.data
        .tags
        .iter()
        .find(|t| t.key == key)
        .map(|t| t.value.as_str())
}

pub fn render(data: &RunPage, viewer: &Viewer) -> Markup {
    let run = &data.run;
    let info = &run.info;
    let name = if info.run_name.is_empty() {
        info.run_id.clone()
    } else {
        info.run_name.clone()
    };
    let here = run_href(run);
    let metric_keys: Vec<&str> = run.data.metrics.iter().map(|m| m.key.as_str()).collect();
    let body = html! {
        p.crumbs {
            a href="/" { "Experiments" } " / "
            a href=(format!("/experiments/{}", data.experiment.experiment_id)) { (data.experiment.name) } " / "
            span { (name) }
        }
        div.heading {
            h1 { (name) }
            span class=(format!("status {}", info.status.as_str().to_ascii_lowercase())) { (info.status.as_str()) }
        }
        dl.facts {
            dt { "Run ID" } dd { code { (info.run_id) } }
            dt { "Started" } dd { (format::time(info.start_time)) }
            dt { "Duration" } dd { (info.end_time.map(|end| format::duration(end - info.start_time)).unwrap_or_else(|| "running".into())) }
            dt { "User" } dd { (info.user_id) }
            @if let Some(source) = tag(run, "mlflow.source.name") { dt { "Source" } dd { code { (source) } } }
            @if let Some(commit) = tag(run, "mlflow.source.git.commit") { dt { "Commit" } dd { code { (commit) } } }
            @if let Some(parent) = tag(run, "mlflow.parentRunId") {
                dt { "Parent run" } dd { a href=(format!("/experiments/{}/runs/{}", info.experiment_id, parent)) { (parent) } }
            }
            dt { "Artifacts" } dd { code { (info.artifact_uri) } }
        }
        @if !data.children.is_empty() {
            section {
                h2 { "Child runs (" (data.children.len()) ")" }
                ul.plain {
                    @for child in &data.children {
                        li { a href=(run_href(child)) { @if child.info.run_name.is_empty() { (child.info.run_id) } @else { (child.info.run_name) } } " · " (child.info.status.as_str()) }
                    }
                }
            }
        }
        div.columns2 {
            section {
                h2 { "Parameters (" (run.data.params.len()) ")" }
                @if run.data.params.is_empty() { p.empty { "None." } } @else {
                    table.grid.compact { tbody {
                        @for param in &run.data.params {
                            tr { th { (param.key) } td { (param.value) } }
                        }
                    } }
                }
            }
            section {
                h2 { "Metrics (" (run.data.metrics.len()) ")" }
                @if run.data.metrics.is_empty() { p.empty { "None." } } @else {
                    table.grid.compact { thead { tr { th { "Key" } th.num { "Last" } th.num { "Step" } th {} } } tbody {
                        @for metric in &run.data.metrics {
                            tr {
                                th { (metric.key) }
                                td.num { (format::number(metric.value)) }
                                td.num { (metric.step) }
                                td { button.link.js-chart-metric type="button" data-metric=(metric.key) { "chart" } }
                            }
                        }
                    } }
                }
            }
        }
        @if !metric_keys.is_empty() {
            section.charts {
                h2 { "Charts" }
                (chart_controls(&[&info.run_id], &metric_keys, metric_keys.iter().take(4).copied().collect()))
            }
        }
        section {
            h2 { "Tags" }
            table.grid.compact.js-tags data-run=(info.run_id) { tbody {
                @for tag in run.data.tags.iter().filter(|t| !t.key.starts_with("mlflow.")) {
                    tr {
                        th { (tag.key) } td { (tag.value) }
                        td { @if data.may_edit { button.link.danger.js-delete-tag type="button" data-key=(tag.key) { "Remove" } } }
                    }
                }
            } }
            @if data.may_edit {
                form.inline.js-set-tag data-run=(info.run_id) {
                    input type="text" name="key" placeholder="key" required maxlength="250";
                    input type="text" name="value" placeholder="value" maxlength="8000";
                    button type="submit" { "Set tag" }
                }
            }
            details { summary.muted { "System tags" }
                table.grid.compact { tbody {
                    @for tag in run.data.tags.iter().filter(|t| t.key.starts_with("mlflow.")) {
                        tr { th { (tag.key) } td { (format::clip(&tag.value, 400)) } }
                    }
                } }
            }
        }
        (recorded_environment(run))
        @if !run.inputs.dataset_inputs.is_empty() {
            section {
                h2 { "Datasets" }
                table.grid.compact { thead { tr { th { "Name" } th { "Digest" } th { "Context" } th { "Source" } } } tbody {
                    @for input in &run.inputs.dataset_inputs {
                        tr {
                            td { (input.dataset.name) }
                            td { code { (input.dataset.digest) } }
                            td { (input.tags.iter().find(|t| t.key == "mlflow.data.context").map(|t| t.value.as_str()).unwrap_or("")) }
                            td { code { (format::clip(&input.dataset.source, 120)) } }
                        }
                    }
                } }
            }
        }
        @if !run.outputs.is_empty() || !run.inputs.model_inputs.is_empty() || !data.versions.is_empty() {
            section {
                h2 { "Models" }
                ul.plain {
                    @for output in &run.outputs { li { "logged model " code { (output.model_id) } " (step " (output.step) ")" } }
                    @for input in &run.inputs.model_inputs { li { "input model " code { (input) } } }
                    @for version in &data.versions {
                        li { "registered as " a href=(format!("/models/{}/versions/{}", encode(&version.name), version.version)) { (version.name) " v" (version.version) } }
                    }
                }
            }
        }
        section #artifacts {
            h2 { "Artifacts" }
            p.crumbs {
                a href=(format!("{here}#artifacts")) { "root" }
                @for (segment, prefix) in breadcrumbs(&data.artifact_dir) {
                    " / " a href=(format!("{here}?dir={}#artifacts", encode(&prefix))) { (segment) }
                }
            }
            @if let Some(error) = &data.artifact_error { p.error { (error) } }
            @else if data.artifacts.is_empty() { p.empty { "No artifacts here." } }
            @else {
                div.artifacts {
                    ul.files {
                        @for entry in &data.artifacts {
                            @let full = if data.artifact_dir.is_empty() { entry.path.clone() } else { format!("{}/{}", data.artifact_dir, entry.path) };
                            li {
                                @if entry.is_dir {
                                    a.dir href=(format!("{here}?dir={}#artifacts", encode(&full))) { "▸ " (entry.path) }
                                } @else {
                                    a.file.js-preview href=(format!("/ui/artifacts/preview?run={}&path={}", info.run_id, encode(&full))) { (entry.path) }
                                    " " span.muted { (entry.size.map(format::bytes).unwrap_or_default()) }
                                    " " a.muted href=(format!("/ui/artifacts/raw?run={}&path={}", info.run_id, encode(&full))) download { "download" }
                                    @if [".csv", ".tsv", ".parquet"].iter().any(|ext| full.ends_with(ext)) {
                                        " " a.muted href=(format!("/drift?ref.run={}&ref.path={}", info.run_id, encode(&full))) title="Use this table as a drift reference" { "drift" }
                                    }
                                }
                            }
                        }
                    }
                    iframe.preview name="preview" sandbox="" title="artifact preview" {}
                }
            }
        }
    };
    page(&name, Section::Experiments, viewer, body)
}

/// What `sextant exec` recorded about a run, from the tags it sets: the
/// code (commit, branch, uncommitted diff), the environment (Python,
/// frameworks, system, GPU, container), the seed, the data's content
/// digests with what each fed, the manifest with its check against the
/// audit log, and the run this one reproduces. Nothing for other runs.
pub fn recorded_environment(run: &Run) -> Markup {
    let Some(manifest) = tag(run, "sextant.manifest.sha256") else {
        return html! {};
    };
    let info = &run.info;
    let raw = |path: &str| {
        format!(
            "/ui/artifacts/raw?run={}&path={}",
            info.run_id,
            encode(path)
        )
    };
    let facts = [
        ("Python", "sextant.python"),
        ("Frameworks", "sextant.frameworks"),
        ("System", "sextant.os"),
        ("GPU", "sextant.gpu"),
        ("Container", "sextant.container"),
        ("Seed", "sextant.seed"),
        ("Exit code", "sextant.exit_code"),
    ];
    html! {
        section.environment {
            h2 { "Recorded environment" }
            dl.facts {
                @if let Some(commit) = tag(run, "mlflow.source.git.commit") {
                    dt { "Code" }
                    dd {
                        code { (commit) }
                        @if let Some(branch) = tag(run, "mlflow.source.git.branch") { " on " (branch) }
                        @if tag(run, "sextant.git.dirty") == Some("true") {
                            " with uncommitted changes (" a href=(raw("sextant/git.diff")) { "diff" } ")"
                        }
                    }
                }
                @if let Some(remote) = tag(run, "mlflow.source.git.repoURL") { dt { "Repository" } dd { code { (remote) } } }
                @for (label, key) in facts {
                    @if let Some(value) = tag(run, key) { dt { (label) } dd { (value) } }
                }
                @if let Some(inputs) = tag(run, "sextant.inputs").filter(|i| !i.is_empty()) {
                    dt { "Data" }
                    dd {
                        @for digest in inputs.split_whitespace() {
                            code { (format::clip(digest, 23)) } " "
                            a.muted href=(format!("/api/v1/lineage?of=dataset:{digest}")) { "what it fed" }
                            br;
                        }
                    }
                }
                dt { "Manifest" }
                dd {
                    a href=(raw("sextant/environment.json")) { "environment.json" } " "
                    code.muted { (format::clip(manifest, 16)) } " · "
                    a href=(format!("/api/v1/run-manifests?run_id={}", info.run_id)) { "check against the audit log" }
                }
                @if let Some(original) = tag(run, "sextant.reproduction_of") {
                    dt { "Reproduces" }
                    dd { a href=(format!("/experiments/{}/runs/{}", info.experiment_id, original)) { (original) } }
                }
            }
            p.muted { "Lineage of this run: " a href=(format!("/api/v1/lineage?of=runs:/{}", info.run_id)) { "deployments, versions, code and data" } }
        }
    }
}

/// A chart panel: metric and axis choices, smoothing, log scale, and the
/// canvases the script draws into from `/ui/api/series`.
pub fn chart_controls(runs: &[&str], metrics: &[&str], shown: Vec<&str>) -> Markup {
    html! {
        div.chart-panel data-runs=(runs.join(",")) {
            form.chart-controls {
                label { "x " select name="x" {
                    option value="step" { "step" }
                    option value="time" { "wall time" }
                    option value="relative" { "relative time" }
                    @for metric in metrics { option value=(format!("metric:{metric}")) { "metric " (metric) } }
                } }
                label { "smoothing " select name="smooth" {
                    option value="none" { "none" }
                    option value="ema:0.6" { "EMA 0.6" }
                    option value="ema:0.9" { "EMA 0.9" }
                    option value="ema:0.99" { "EMA 0.99" }
                    option value="mean:10" { "running mean 10" }
                    option value="mean:100" { "running mean 100" }
                } }
                label { input type="checkbox" name="log"; " log y" }
                label { "metrics " select name="metrics" multiple size="3" {
                    @for metric in metrics { option value=(metric) selected[shown.contains(metric)] { (metric) } }
                } }
                button.link.js-reset-zoom type="button" { "reset zoom" }
            }
            div.charts-grid {}
        }
    }
}
