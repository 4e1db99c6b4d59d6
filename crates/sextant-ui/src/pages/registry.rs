//! The model registry: models with their latest versions, aliases, stages
//! and where each version is deployed; a model's page with every version's
//! history and the deployed vs retired overview; a version's page with its
//! source run, lineage, signature and input example. Promotions go through
//! the same API (and, with `--auth`, the same workflow) as any client.

use maud::{html, Markup};
use sextant_core::{ModelVersion, RegisteredModel, Run, Stage, TransitionRequest};

use crate::pages::runs::run_href;
use crate::{encode, format, page, query, Section, Viewer};

/// Where a version serves: deployment, arm and its share of traffic.
#[derive(Debug, Clone)]
pub struct Serving {
    pub deployment: String,
    pub version: i64,
    pub arm: String,
    pub weight: u32,
}

pub struct ModelRow {
    pub model: RegisteredModel,
    pub serving: Vec<Serving>,
}

pub struct ModelsPage {
    pub rows: Vec<ModelRow>,
    pub search: String,
    pub next_page: Option<String>,
    pub may_create: bool,
    pub error: Option<String>,
}

/// One move in a model's history, from the audit log.
pub struct HistoryEntry {
    pub ts: i64,
    pub actor: String,
    pub action: String,
    pub detail: String,
}

/// An alias that pointed at another version before its last move.
pub struct AliasRollback {
    pub alias: String,
    pub current: i64,
    pub previous: i64,
}

pub struct ModelPage {
    pub model: RegisteredModel,
    /// From the audit log: where each alias pointed before.
    pub rollbacks: Vec<AliasRollback>,
    pub versions: Vec<ModelVersion>,
    pub serving: Vec<Serving>,
    pub history: Vec<HistoryEntry>,
    pub requests: Vec<TransitionRequest>,
    /// Authentication is on: protected moves go through requests.
    pub workflow: bool,
    pub may_edit: bool,
    pub may_approve: bool,
}

/// A version's validation against its model's spec, as the page shows it.
pub struct ValidationView {
    /// pending, passed, failed, error or overridden.
    pub status: String,
    /// Why it could not run, when it could not.
    pub message: Option<String>,
    pub finished_at: Option<i64>,
    /// Who let it through, and why.
    pub overridden: Option<(String, String)>,
    /// Failed and errored checks first, then the rest.
    pub assertions: Vec<AssertionView>,
    /// The self-contained HTML report, once there is one.
    pub report_href: Option<String>,
}

pub struct AssertionView {
    pub id: String,
    /// passed, failed, skipped or error.
    pub verdict: String,
    pub blocking: bool,
    pub message: String,
}

pub struct VersionPage {
    pub version: ModelVersion,
    /// None when the model has no validation spec.
    pub validation: Option<ValidationView>,
    pub run: Option<Run>,
    /// The version's `MLmodel` file, when it could be read.
    pub mlmodel: Option<String>,
    pub input_example: Option<String>,
    pub serving: Vec<Serving>,
    pub workflow: bool,
    pub may_edit: bool,
}

fn model_href(name: &str) -> String {
    format!("/models/{}", encode(name))
}

fn version_href(name: &str, version: i64) -> String {
    format!("/models/{}/versions/{version}", encode(name))
}

fn stage_chip(stage: Stage) -> Markup {
    html! { span class=(format!("chip stage-{}", stage.as_str().to_ascii_lowercase())) { (stage.as_str()) } }
}

pub fn render_models(data: &ModelsPage, viewer: &Viewer) -> Markup {
    let body = html! {
        div.heading {
            h1 { "Models" }
            @if data.may_create {
                form.inline.js-create-model {
                    input type="text" name="name" placeholder="New model name" required;
                    button type="submit" { "Create" }
                }
            }
        }
        form.searchbar method="get" action="/models" {
            input.search type="search" name="search" value=(data.search) placeholder="Search by name (press /)";
            button type="submit" { "Search" }
        }
        @if let Some(error) = &data.error { p.error.filter-error { (error) } }
        @if data.rows.is_empty() { p.empty { "No registered models." } } @else {
            table.grid.navigable {
                thead { tr { th { "Model" } th { "Latest versions" } th { "Aliases" } th { "Deployed" } th { "Updated" } } }
                tbody {
                    @for row in &data.rows {
                        @let model = &row.model;
                        tr data-href=(model_href(&model.name)) {
                            td { a.name href=(model_href(&model.name)) { (model.name) } }
                            td {
                                @for version in &model.latest_versions {
                                    a href=(version_href(&model.name, version.version)) { "v" (version.version) } " " (stage_chip(version.current_stage)) " "
                                }
                            }
                            td { @for alias in &model.aliases { span.chip { "@" (alias.alias) " → v" (alias.version) } " " } }
                            td {
                                @for serving in &row.serving {
                                    a.chip href=(format!("/deployments/{}", encode(&serving.deployment))) { (serving.deployment) ": v" (serving.version) " " (serving.weight) "%" } " "
                                }
                            }
                            td { (format::time(model.last_updated_timestamp)) }
                        }
                    }
                }
            }
        }
        @if let Some(token) = &data.next_page {
            p { a.more href=(format!("/models{}", query(&[("search", &data.search), ("page", token)]))) { "Next page →" } }
        }
    };
    page("Models", Section::Models, viewer, body)
}

pub fn render_model(data: &ModelPage, viewer: &Viewer) -> Markup {
    let model = &data.model;
    let deployed: Vec<i64> = data.serving.iter().map(|s| s.version).collect();
    let body = html! {
        p.crumbs { a href="/models" { "Models" } " / " span { (model.name) } }
        div.heading { h1 { (model.name) } }
        @if let Some(description) = &model.description { p { (description) } }
        section.overview {
            h2 { "Deployed and retired" }
            div.cards {
                @for version in &data.versions {
                    @let is_deployed = deployed.contains(&version.version);
                    @let retired = version.current_stage == Stage::Archived;
                    a.card.deployed[is_deployed].retired[retired] href=(version_href(&model.name, version.version)) {
                        strong { "v" (version.version) } " " (stage_chip(version.current_stage))
                        @for alias in &version.aliases { " " span.chip { "@" (alias) } }
                        @if is_deployed { br; span.muted { "serving" } }
                        @else if retired { br; span.muted { "retired" } }
                    }
                }
            }
        }
        @if data.may_edit {
            section {
                h2 { "Promote" }
                form.inline.js-promote data-model=(model.name) data-workflow=(data.workflow) {
                    label { "version " select name="version" { @for version in &data.versions { option value=(version.version) { (version.version) } } } }
                    label { "alias " input type="text" name="alias" placeholder="champion" pattern="[A-Za-z0-9_\\-]+"; }
                    label { "or stage " select name="stage" {
                        option value="" { "—" }
                        @for stage in ["Staging", "Production", "Archived", "None"] { option value=(stage) { (stage) } }
                    } }
                    input type="text" name="comment" placeholder="comment";
                    button type="submit" { @if data.workflow { "Request" } @else { "Apply" } }
                }
                @for rollback in &data.rollbacks {
                    form.inline.js-promote data-model=(model.name) data-workflow=(data.workflow) {
                        input type="hidden" name="version" value=(rollback.previous);
                        input type="hidden" name="alias" value=(rollback.alias);
                        input type="hidden" name="comment" value=(format!("roll @{} back from v{} to v{}", rollback.alias, rollback.current, rollback.previous));
                        span { "@" (rollback.alias) " → v" (rollback.current) ", before v" (rollback.previous) " " }
                        button.js-rollback-alias type="submit" {
                            @if data.workflow { "Request roll back to v" (rollback.previous) } @else { "Roll back to v" (rollback.previous) }
                        }
                    }
                }
                p.js-promote-result.muted {}
            }
        }
        @if !data.requests.is_empty() {
            section {
                h2 { "Transition requests" }
                (requests_table(&data.requests, data.may_approve))
            }
        }
        section {
            h2 { "Versions" }
            table.grid.navigable {
                thead { tr { th { "Version" } th { "Stage" } th { "Aliases" } th { "Created" } th { "By" } th { "Source run" } th { "Deployed" } } }
                tbody {
                    @for version in &data.versions {
                        tr data-href=(version_href(&model.name, version.version)) {
                            td { a href=(version_href(&model.name, version.version)) { "v" (version.version) } }
                            td { (stage_chip(version.current_stage)) }
                            td { @for alias in &version.aliases { span.chip { "@" (alias) } " " } }
                            td { (format::time(version.creation_timestamp)) }
                            td { (version.user_id.as_deref().unwrap_or("")) }
                            // The run page finds the run's experiment itself.
                            td { @if let Some(run) = &version.run_id { a href=(format!("/experiments/-/runs/{}", crate::encode(run))) { code { (format::clip(run, 12)) } } } }
                            td { @for serving in data.serving.iter().filter(|s| s.version == version.version) { span.chip { (serving.deployment) " " (serving.weight) "%" } } }
                        }
                    }
                }
            }
        }
        section {
            h2 { "History" }
            @if data.history.is_empty() { p.empty { "No recorded moves (the audit log records them when authentication is on, and every change made through this server)." } } @else {
                table.grid.compact { thead { tr { th { "When" } th { "Who" } th { "What" } th { "Detail" } } } tbody {
                    @for entry in &data.history {
                        tr { td { (format::time(entry.ts)) } td { (entry.actor) } td { code { (entry.action) } } td { (format::clip(&entry.detail, 200)) } }
                    }
                } }
            }
        }
    };
    page(&model.name, Section::Models, viewer, body)
}

/// Pending and decided transition requests, with approve/reject buttons
/// for approvers.
pub fn requests_table(requests: &[TransitionRequest], may_approve: bool) -> Markup {
    html! {
        table.grid.compact.requests {
            thead { tr { th { "#" } th { "Model" } th { "Target" } th { "By" } th { "When" } th { "Comment" } th { "Status" } th {} } }
            tbody {
                @for request in requests {
                    tr data-request=(request.request_id) {
                        td { (request.request_id) }
                        td { a href=(version_href(&request.name, request.version)) { (request.name) " v" (request.version) } }
                        td { (request.target.to_string()) }
                        td { (request.requested_by) }
                        td { (format::time(request.requested_at)) }
                        td { (request.comment) }
                        td { (request.status.as_str()) }
                        td.actions {
                            @if may_approve && request.status == sextant_core::RequestStatus::Pending {
                                button.js-decide type="button" data-decision="approve" { "Approve" }
                                button.js-decide.danger type="button" data-decision="reject" { "Reject" }
                            }
                        }
                    }
                }
            }
        }
    }
}

fn validation_section(validation: &ValidationView) -> Markup {
    let failing: Vec<&AssertionView> = validation
        .assertions
        .iter()
        .filter(|a| a.verdict == "failed" || a.verdict == "error")
        .collect();
    let passed = validation
        .assertions
        .iter()
        .filter(|a| a.verdict == "passed")
        .count();
    html! {
        section.validation {
            h2 { "Validation " span class=(format!("chip validation-{}", validation.status)) { (validation.status) } }
            p.muted {
                @match validation.status.as_str() {
                    "pending" => { "Running against the model's spec; promotions wait for it." }
                    "passed" => { "Every blocking check passed: this version may be promoted." }
                    "overridden" => { "Failed, and let through by an administrator." }
                    "error" => { "The validation could not run: this version cannot be promoted until it does." }
                    _ => { "Blocking checks failed: this version cannot take an alias, a stage or a deployment." }
                }
                @if let Some(at) = validation.finished_at { " Finished " (format::time(at)) "." }
                " " (passed) " of " (validation.assertions.len()) " checks passed."
            }
            @if let Some(message) = &validation.message { p { code { (message) } } }
            @if let Some((by, reason)) = &validation.overridden { p { "Overridden by " strong { (by) } ": " (reason) } }
            @if !failing.is_empty() {
                table.grid {
                    thead { tr { th { "Check" } th { "Verdict" } th { "Detail" } } }
                    tbody {
                        @for a in &failing {
                            tr { td { code { (a.id) } } td { (a.verdict) @if !a.blocking { " (warning)" } } td { (a.message) } }
                        }
                    }
                }
            }
            @if let Some(href) = &validation.report_href { p { a href=(href) target="_blank" rel="noopener" { "Full report" } } }
        }
    }
}

pub fn render_version(data: &VersionPage, viewer: &Viewer) -> Markup {
    let version = &data.version;
    let title = format!("{} v{}", version.name, version.version);
    let body = html! {
        p.crumbs { a href="/models" { "Models" } " / " a href=(model_href(&version.name)) { (version.name) } " / " span { "v" (version.version) } }
        div.heading { h1 { (title) } (stage_chip(version.current_stage)) @for alias in &version.aliases { " " span.chip { "@" (alias) } } }
        dl.facts {
            dt { "Created" } dd { (format::time(version.creation_timestamp)) " by " (version.user_id.as_deref().unwrap_or("?")) }
            dt { "Source" } dd { code { (version.source) } }
            @if let Some(model_id) = &version.model_id { dt { "Logged model" } dd { code { (model_id) } } }
            dt { "Serving" } dd {
                @if data.serving.is_empty() { "not deployed" }
                @for serving in &data.serving { a.chip href=(format!("/deployments/{}", encode(&serving.deployment))) { (serving.deployment) " · " (serving.arm) " " (serving.weight) "%" } " " }
            }
        }
        section {
            h2 { "Lineage" }
            @match &data.run {
                Some(run) => {
                    ul.plain {
                        li { "trained in run " a href=(run_href(run)) { @if run.info.run_name.is_empty() { (run.info.run_id) } @else { (run.info.run_name) } } " (experiment " (run.info.experiment_id) ")" }
                        @for tag in run.data.tags.iter().filter(|t| t.key == "mlflow.source.git.commit" || t.key == "mlflow.source.name") {
                            li { (tag.key.trim_start_matches("mlflow.source.")) ": " code { (tag.value) } }
                        }
                        @for input in &run.inputs.dataset_inputs {
                            li { "dataset " (input.dataset.name) " " code { (input.dataset.digest) } }
                        }
                    }
                }
                None => p.muted { "The source run is not known, or you may not see it." }
            }
        }
        @if let Some(validation) = &data.validation { (validation_section(validation)) }
        @if let Some(run) = &data.run { (crate::pages::run::recorded_environment(run)) }
        @if let Some(mlmodel) = &data.mlmodel {
            section { h2 { "MLmodel (signature)" } pre.file { (mlmodel) } }
        }
        @if let Some(example) = &data.input_example {
            section { h2 { "Input example" } pre.file { (format::clip(example, 20_000)) } }
        }
        @if data.may_edit {
            section {
                h2 { "Promote this version" }
                form.inline.js-promote data-model=(version.name) data-workflow=(data.workflow) {
                    input type="hidden" name="version" value=(version.version);
                    label { "alias " input type="text" name="alias" placeholder="champion" pattern="[A-Za-z0-9_\\-]+"; }
                    label { "or stage " select name="stage" {
                        option value="" { "—" }
                        @for stage in ["Staging", "Production", "Archived", "None"] { option value=(stage) { (stage) } }
                    } }
                    input type="text" name="comment" placeholder="comment";
                    button type="submit" { @if data.workflow { "Request" } @else { "Apply" } }
                }
                p.js-promote-result.muted {}
            }
        }
    };
    page(&title, Section::Models, viewer, body)
}
