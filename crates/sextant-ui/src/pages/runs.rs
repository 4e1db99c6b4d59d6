//! The runs table of one or several experiments: server-side pages and
//! sort, a filter box in the search grammar (with `OR`), chosen columns,
//! a summary per metric column, nested runs, groups with aggregate rows,
//! and bulk actions on the selection.

use std::collections::{BTreeMap, HashMap};

use maud::{html, Markup};
use sextant_core::{Experiment, LifecycleStage, Run, RunStatus};

use crate::{encode, format, page, Section, Viewer};

/// Which value a metric column shows.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum MetricStat {
    Last,
    Min,
    Max,
}

impl MetricStat {
    pub fn parse(text: &str) -> MetricStat {
        match text {
            "min" => MetricStat::Min,
            "max" => MetricStat::Max,
            _ => MetricStat::Last,
        }
    }

    fn as_str(self) -> &'static str {
        match self {
            MetricStat::Last => "last",
            MetricStat::Min => "min",
            MetricStat::Max => "max",
        }
    }
}

/// One run of the table, with what the table shows beside it.
pub struct RunRow {
    pub run: Run,
    /// Runs whose `mlflow.parentRunId` is this one.
    pub children: usize,
}

pub struct RunsPage {
    pub experiments: Vec<Experiment>,
    /// The page's own URL without query, e.g. `/experiments/3`.
    pub base: String,
    /// Query pairs that select the experiments (for `/runs?experiments=`).
    pub scope: Vec<(String, String)>,
    pub rows: Vec<RunRow>,
    pub filter: String,
    pub order: String,
    pub view: String,
    pub stat: MetricStat,
    pub group_by: String,
    /// Columns shown: `params.<key>`, `metrics.<key>`, `tags.<key>`.
    pub columns: Vec<String>,
    /// Every param, metric and tag key on this page, for the chooser.
    pub param_keys: Vec<String>,
    pub metric_keys: Vec<String>,
    pub tag_keys: Vec<String>,
    /// `(run id, metric key)` → (min, max) over the metric's history.
    pub summaries: HashMap<(String, String), (f64, f64)>,
    pub page_token: String,
    pub next_page: Option<String>,
    pub error: Option<String>,
    pub may_edit: bool,
    pub may_manage: bool,
}

impl RunsPage {
    /// This page's URL with some query values replaced.
    fn url(&self, changes: &[(&str, &str)]) -> String {
        let mut pairs: Vec<(String, String)> = self.scope.clone();
        let current = [
            ("filter", self.filter.clone()),
            ("order", self.order.clone()),
            ("view", self.view.clone()),
            ("stat", self.stat.as_str().to_string()),
            ("group", self.group_by.clone()),
        ];
        for (key, value) in current {
            let value = changes
                .iter()
                .find(|(k, _)| *k == key)
                .map_or(value, |(_, v)| v.to_string());
            if !value.is_empty()
                && !(key == "stat" && value == "last")
                && !(key == "view" && value == "active")
            {
                pairs.push((key.to_string(), value));
            }
        }
        let columns_changed = changes.iter().any(|(k, _)| *k == "cols");
        if !columns_changed {
            for column in &self.columns {
                pairs.push(("cols".into(), column.clone()));
            }
        }
        for (key, value) in changes {
            if (*key == "page" || *key == "cols") && !value.is_empty() {
                pairs.push((key.to_string(), value.to_string()));
            }
        }
        let query: Vec<String> = pairs
            .iter()
            .map(|(k, v)| format!("{k}={}", encode(v)))
            .collect();
        if query.is_empty() {
            self.base.clone()
        } else {
            format!("{}?{}", self.base, query.join("&"))
        }
    }
}

fn value_of(
    run: &Run,
    column: &str,
    stat: MetricStat,
    summaries: &HashMap<(String, String), (f64, f64)>,
) -> Option<String> {
    let (entity, key) = column.split_once('.')?;
    match entity {
        "params" => run
            .data
            .params
            .iter()
            .find(|p| p.key == key)
            .map(|p| p.value.clone()),
        "tags" => run
            .data
            .tags
            .iter()
            .find(|t| t.key == key)
            .map(|t| t.value.clone()),
        "metrics" => {
            let last = run.data.metrics.iter().find(|m| m.key == key)?;
            let value = match stat {
                MetricStat::Last => last.value,
                MetricStat::Min | MetricStat::Max => {
                    let (min, max) = summaries
                        .get(&(run.info.run_id.clone(), key.to_string()))
                        .copied()
                        .unwrap_or((last.value, last.value));
                    if stat == MetricStat::Min {
                        min
                    } else {
                        max
                    }
                }
            };
            Some(format::number(value))
        }
        _ => None,
    }
}

fn numeric(run: &Run, column: &str) -> Option<f64> {
    let key = column.strip_prefix("metrics.")?;
    run.data
        .metrics
        .iter()
        .find(|m| m.key == key)
        .map(|m| m.value)
}

fn tag<'r>(run: &'r Run, key: &str) -> Option<&'r str> {
    run.data
        .tags
        .iter()
        .find(|t| t.key == key)
        .map(|t| t.value.as_str())
}

fn status_class(status: RunStatus) -> &'static str {
    match status {
        RunStatus::Running | RunStatus::Scheduled => "running",
        RunStatus::Finished => "finished",
        RunStatus::Failed | RunStatus::Killed => "failed",
    }
}

/// The link to a run's page.
pub fn run_href(run: &Run) -> String {
    format!(
        "/experiments/{}/runs/{}",
        run.info.experiment_id, run.info.run_id
    )
}

pub fn render(data: &RunsPage, viewer: &Viewer) -> Markup {
    let title = match data.experiments.as_slice() {
        [one] => one.name.clone(),
        many => format!("{} experiments", many.len()),
    };
    let groups: BTreeMap<String, Vec<&RunRow>> = if data.group_by.is_empty() {
        BTreeMap::new()
    } else {
        let mut groups: BTreeMap<String, Vec<&RunRow>> = BTreeMap::new();
        for row in &data.rows {
            let key = value_of(&row.run, &data.group_by, MetricStat::Last, &data.summaries)
                .unwrap_or_else(|| "(none)".to_string());
            groups.entry(key).or_default().push(row);
        }
        groups
    };
    let sort_link = |column: &str| {
        let descending = format!("{column} DESC");
        let next = if data.order == descending {
            format!("{column} ASC")
        } else {
            descending
        };
        data.url(&[("order", &next)])
    };
    let arrow = |column: &str| {
        if data.order == format!("{column} DESC") {
            "▾"
        } else if data.order == format!("{column} ASC") || data.order == column {
            "▴"
        } else {
            ""
        }
    };
    /// Characters of a param, metric or tag shown in a cell.
    const CELL_CHARS: usize = 40;
    let row_markup = |row: &RunRow| {
        let run = &row.run;
        let deleted = run.info.lifecycle_stage == LifecycleStage::Deleted;
        let parent = tag(run, "mlflow.parentRunId");
        html! {
            tr class=[deleted.then_some("deleted")] data-run=(run.info.run_id) data-href=(run_href(run)) {
                td.select { input.js-select type="checkbox" value=(run.info.run_id) aria-label="select run"; }
                td {
                    a.name href=(run_href(run)) {
                        @if run.info.run_name.is_empty() { (run.info.run_id) } @else { (run.info.run_name) }
                    }
                    @if let Some(parent) = parent {
                        " " a.muted title="parent run" href=(format!("/experiments/{}/runs/{}", run.info.experiment_id, parent)) { "↰ parent" }
                    }
                    @if row.children > 0 {
                        " " a.chip href=(data.url(&[("filter", &format!("tags.mlflow.parentRunId = '{}'", run.info.run_id))])) title="child runs" { (row.children) " children" }
                    }
                }
                td { span class=(format!("status {}", status_class(run.info.status))) { (run.info.status.as_str()) } }
                td { (format::time(run.info.start_time)) }
                td.num { (run.info.end_time.map(|end| format::duration(end - run.info.start_time)).unwrap_or_else(|| "—".into())) }
                td { (run.info.user_id) }
                @if data.experiments.len() > 1 { td.num { (run.info.experiment_id) } }
                @for column in &data.columns {
                    @let value = value_of(run, column, data.stat, &data.summaries);
                    // The full value as a tooltip only where the cell clips it:
                    // a hundred rows of tooltips repeating the text are a
                    // third of the page.
                    @let clipped = value.as_deref().filter(|v| v.chars().count() > CELL_CHARS);
                    td class=[column.starts_with("metrics.").then_some("num")] title=[clipped] { (value.as_deref().map(|v| format::clip(v, CELL_CHARS)).unwrap_or_else(|| "—".into())) }
                }
            }
        }
    };
    let body = html! {
        div.heading {
            h1 { (title) }
            @if let [one] = data.experiments.as_slice() {
                span.muted { "experiment " (one.experiment_id) }
            }
        }
        form.searchbar method="get" action=(data.base) {
            @for (key, value) in &data.scope {
                input type="hidden" name=(key) value=(value);
            }
            @for column in &data.columns {
                input type="hidden" name="cols" value=(column);
            }
            input.search.filter type="search" name="filter" value=(data.filter)
                placeholder="metrics.accuracy > 0.9 OR params.model = 'gbt'   (press /)" autocomplete="off" spellcheck="false";
            input type="hidden" name="order" value=(data.order);
            select name="view" title="lifecycle" {
                @for (value, label) in [("active", "Active"), ("deleted", "Deleted"), ("all", "All")] {
                    option value=(value) selected[data.view == value] { (label) }
                }
            }
            select name="stat" title="metric columns show" {
                @for (value, label) in [("last", "last value"), ("min", "minimum"), ("max", "maximum")] {
                    option value=(value) selected[data.stat.as_str() == value] { (label) }
                }
            }
            select name="group" title="group by" {
                option value="" { "no grouping" }
                @for key in data.param_keys.iter().map(|k| format!("params.{k}")).chain(data.tag_keys.iter().map(|k| format!("tags.{k}"))) {
                    option value=(key) selected[data.group_by == key] { "group by " (key) }
                }
            }
            button type="submit" { "Apply" }
        }
        @if let Some(error) = &data.error {
            p.error.filter-error { (error) }
        }
        details.columns {
            summary { "Columns (" (data.columns.len()) ")" }
            form method="get" action=(data.base) {
                @for (key, value) in &data.scope { input type="hidden" name=(key) value=(value); }
                input type="hidden" name="filter" value=(data.filter);
                input type="hidden" name="order" value=(data.order);
                input type="hidden" name="view" value=(data.view);
                input type="hidden" name="cols" value="-";
                div.choices {
                    @for (entity, keys) in [("params", &data.param_keys), ("metrics", &data.metric_keys), ("tags", &data.tag_keys)] {
                        fieldset {
                            legend { (entity) }
                            @for key in keys.iter().filter(|k| entity != "tags" || !k.starts_with("mlflow.")) {
                                @let column = format!("{entity}.{key}");
                                label { input type="checkbox" name="cols" value=(column) checked[data.columns.contains(&column)]; " " (key) }
                            }
                        }
                    }
                }
                button type="submit" { "Show these columns" }
            }
        }
        div.bulk {
            span.js-selected-count { "0 selected" }
            button.js-compare type="button" disabled { "Compare (c)" }
            @if data.may_manage {
                button.js-delete-runs type="button" disabled { "Delete" }
                button.js-restore-runs type="button" disabled { "Restore" }
            }
            @if data.may_edit {
                button.js-tag-runs type="button" disabled { "Tag…" }
            }
        }
        @if data.rows.is_empty() {
            p.empty { "No runs match." }
        } @else {
            table.grid.navigable.runs {
                thead { tr {
                    th.select { input.js-select-all type="checkbox" aria-label="select all"; }
                    th { a href=(sort_link("attributes.run_name")) { "Run " (arrow("attributes.run_name")) } }
                    th { a href=(sort_link("attributes.status")) { "Status " (arrow("attributes.status")) } }
                    th { a href=(sort_link("attributes.start_time")) { "Started " (arrow("attributes.start_time")) } }
                    th.num { "Duration" }
                    th { a href=(sort_link("attributes.user_id")) { "User " (arrow("attributes.user_id")) } }
                    @if data.experiments.len() > 1 { th.num { "Exp." } }
                    @for column in &data.columns {
                        th.num[column.starts_with("metrics.")] {
                            a href=(sort_link(column)) title=(column) {
                                (column.split_once('.').map_or(column.as_str(), |(_, k)| k)) " " (arrow(column))
                            }
                        }
                    }
                } }
                @if groups.is_empty() {
                    tbody { @for row in &data.rows { (row_markup(row)) } }
                } @else {
                    @for (value, members) in &groups {
                        tbody.group {
                            tr.aggregate {
                                td {}
                                td colspan="5" { strong { (data.group_by) " = " (value) } " · " (members.len()) " runs" }
                                @if data.experiments.len() > 1 { td {} }
                                @for column in &data.columns {
                                    @let values: Vec<f64> = members.iter().filter_map(|r| numeric(&r.run, column)).filter(|v| v.is_finite()).collect();
                                    td.num {
                                        @if !values.is_empty() {
                                            @let mean = values.iter().sum::<f64>() / values.len() as f64;
                                            @let spread = (values.iter().map(|v| (v - mean).powi(2)).sum::<f64>() / values.len() as f64).sqrt();
                                            "μ " (format::number(mean)) " ± " (format::number(spread))
                                        }
                                    }
                                }
                            }
                            @for row in members { (row_markup(row)) }
                        }
                    }
                }
            }
        }
        div.pager {
            @if !data.page_token.is_empty() {
                a href=(data.url(&[])) { "← First page" }
            }
            @if let Some(token) = &data.next_page {
                a.more href=(data.url(&[("page", token)])) { "Next page →" }
            }
        }
    };
    page(&title, Section::Experiments, viewer, body)
}
