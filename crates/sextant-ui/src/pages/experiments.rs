//! The experiments list: search, run counts, last activity; create,
//! rename, delete and restore where the viewer may.

use maud::{html, Markup};
use sextant_core::{Experiment, LifecycleStage};

use crate::{format, page, query, Section, Viewer};

/// One listed experiment and what the viewer may do with it.
pub struct ExperimentRow {
    pub experiment: Experiment,
    pub runs: i64,
    /// The latest run start, or the experiment's own last update.
    pub last_activity: i64,
    pub may_edit: bool,
    pub may_manage: bool,
}

pub struct ExperimentsPage {
    pub rows: Vec<ExperimentRow>,
    /// The name filter as typed.
    pub search: String,
    /// `active`, `deleted` or `all`.
    pub view: String,
    pub next_page: Option<String>,
    pub may_create: bool,
    /// A filter the server could not use, shown beside the box.
    pub error: Option<String>,
}

pub fn render(data: &ExperimentsPage, viewer: &Viewer) -> Markup {
    let body = html! {
        div.heading {
            h1 { "Experiments" }
            @if data.may_create {
                form.inline.js-create-experiment {
                    input type="text" name="name" placeholder="New experiment name" required maxlength="500";
                    button type="submit" { "Create" }
                }
            }
        }
        form.searchbar method="get" action="/" {
            input.search type="search" name="search" value=(data.search) placeholder="Search by name (press /)" autocomplete="off";
            select name="view" {
                @for (value, label) in [("active", "Active"), ("deleted", "Deleted"), ("all", "All")] {
                    option value=(value) selected[data.view == value] { (label) }
                }
            }
            button type="submit" { "Search" }
        }
        @if let Some(error) = &data.error {
            p.error.filter-error { (error) }
        }
        @if data.rows.is_empty() {
            p.empty { "No experiments." }
        } @else {
            table.grid.navigable {
                thead { tr {
                    th { "Name" } th.num { "ID" } th.num { "Runs" } th { "Last activity" } th { "Tags" } th {}
                } }
                tbody {
                    @for row in &data.rows {
                        @let experiment = &row.experiment;
                        @let deleted = experiment.lifecycle_stage == LifecycleStage::Deleted;
                        tr.deleted[deleted] data-href=(format!("/experiments/{}", experiment.experiment_id)) data-experiment=(experiment.experiment_id) {
                            td { a.name href=(format!("/experiments/{}", experiment.experiment_id)) { (experiment.name) } }
                            td.num { (experiment.experiment_id) }
                            td.num { (row.runs) }
                            td { (format::time(row.last_activity)) }
                            td.tags {
                                @for tag in experiment.tags.iter().filter(|t| !t.key.starts_with("mlflow.")).take(4) {
                                    span.chip title=(tag.value) { (tag.key) "=" (format::clip(&tag.value, 24)) }
                                }
                            }
                            td.actions {
                                @if row.may_edit && !deleted {
                                    button.link.js-rename-experiment type="button" data-name=(experiment.name) { "Rename" }
                                }
                                @if row.may_manage {
                                    @if deleted {
                                        button.link.js-restore-experiment type="button" { "Restore" }
                                    } @else {
                                        button.link.danger.js-delete-experiment type="button" { "Delete" }
                                    }
                                }
                            }
                        }
                    }
                }
            }
        }
        @if let Some(token) = &data.next_page {
            p { a.more href=(format!("/{}", query(&[("search", &data.search), ("view", &data.view), ("page", token)]))) { "Next page →" } }
        }
        p.hint { "Links printed by the mlflow client (" code { "#/experiments/…" } ") open here too." }
    };
    page("Experiments", Section::Experiments, viewer, body)
}
