//! Deployments: the list with status and traffic split per arm, and a
//! deployment's page: requests per second, p50/p99 latency and error rate
//! per arm over time (kept by the server), revision history, rollout
//! actions, its monitoring (drift heatmap, missing values, outliers,
//! performance with label coverage, alerts, abuse flags, retraining runs),
//! and its explanations (global importance and explanation drift of the
//! sampled answers; any prediction explained on demand).

use maud::{html, Markup, PreEscaped};
use sextant_core::{Deployment, DeploymentRevision, Policy};

use crate::{encode, format, page, Section, Viewer};

pub struct DeploymentRow {
    pub deployment: Deployment,
    /// `ready`, or why the latest change failed.
    pub status: String,
    pub healthy: bool,
}

pub struct DeploymentsPage {
    pub rows: Vec<DeploymentRow>,
    pub may_create: bool,
}

/// One arm's traffic over time: `(time ms, value)` per measure.
pub struct ArmTraffic {
    pub arm: String,
    pub requests_per_second: Vec<(i64, f64)>,
    pub p50_ms: Vec<(i64, f64)>,
    pub p99_ms: Vec<(i64, f64)>,
    pub error_rate: Vec<(i64, f64)>,
}

/// Drift per feature and window: the effect size (PSI) and whether it drifted.
pub struct DriftGrid {
    pub windows: Vec<i64>,
    pub features: Vec<String>,
    /// `cells[feature][window]`.
    pub cells: Vec<Vec<Option<(f64, bool)>>>,
}

pub struct Named {
    pub name: String,
    pub value: String,
}

/// One feature's place in a version's sampled explanations.
pub struct FeatureImportance {
    pub name: String,
    /// Mean |SHAP| over the last hour.
    pub mean_abs_shap: f64,
    /// Mean |SHAP| over the first explained rows (the reference).
    pub reference_mean_abs_shap: f64,
    /// Kolmogorov–Smirnov distance of its attributions to the reference.
    pub drift: f64,
    pub drifted: bool,
}

/// Global importance and explanation drift of one model version.
pub struct Importance {
    pub label: String,
    /// The explained output (a classifier's class).
    pub output: String,
    pub explained_rows: usize,
    pub top_driver: Option<String>,
    pub reference_top_driver: Option<String>,
    pub top_driver_changed: bool,
    /// Most important first.
    pub features: Vec<FeatureImportance>,
}

pub struct DeploymentPage {
    pub deployment: Deployment,
    /// The drift page comparing the day before the last hour with the last
    /// hour of this deployment's prediction log.
    pub drift_href: String,
    pub status: String,
    pub healthy: bool,
    pub traffic: Vec<ArmTraffic>,
    pub history: Vec<DeploymentRevision>,
    pub drift: Option<DriftGrid>,
    /// Monitoring figures of the last hour: rows, outlier rate, missing shares.
    pub monitoring: Vec<Named>,
    pub prediction_distribution: Vec<Named>,
    pub performance: Vec<Named>,
    pub alerts: Vec<Vec<String>>,
    pub alert_history: Vec<Vec<String>>,
    pub abuse: Vec<Vec<String>>,
    pub retraining: Vec<Vec<String>>,
    pub importance: Vec<Importance>,
    /// A request to start the "explain a prediction" form from, when the
    /// viewer may call the deployment.
    pub explain_example: Option<String>,
    pub may_edit: bool,
}

/// Mean |SHAP| per feature as bars scaled to the largest, with the
/// reference's value and the drift of the feature's attributions.
fn importance_table(importance: &Importance) -> Markup {
    let largest = importance
        .features
        .iter()
        .map(|f| f.mean_abs_shap.max(f.reference_mean_abs_shap))
        .filter(|v| v.is_finite())
        .fold(0.0, f64::max);
    // Bars are SVG rectangles: the pages' CSP allows no inline styles.
    let width = |value: f64| {
        if largest > 0.0 && value.is_finite() {
            format!("{:.1}", 100.0 * value / largest)
        } else {
            "0".to_string()
        }
    };
    html! {
        h3 {
            (importance.label) ": what drives output " code { (importance.output) }
            span.muted { " (" (importance.explained_rows) " rows explained in the last hour)" }
        }
        @if importance.top_driver_changed {
            p.warning.js-top-driver-changed {
                "Top driver changed: "
                (importance.reference_top_driver.as_deref().unwrap_or("?")) " → "
                (importance.top_driver.as_deref().unwrap_or("?"))
            }
        }
        table.grid.compact.importance {
            thead { tr { th { "feature" } th { "mean |SHAP|" } th.num { "value" } th.num { "reference" } th.num { "drift (KS)" } } }
            tbody {
                @for feature in &importance.features {
                    tr class=(if feature.drifted { "drifted" } else { "" }) {
                        th { (feature.name) }
                        td.bars {
                            svg viewBox="0 0 100 10" preserveAspectRatio="none" {
                                rect.now x="0" y="0" height="6" width=(width(feature.mean_abs_shap)) {}
                                rect.reference x="0" y="7" height="3" width=(width(feature.reference_mean_abs_shap)) {}
                            }
                        }
                        td.num { (format::number(feature.mean_abs_shap)) }
                        td.num { (format::number(feature.reference_mean_abs_shap)) }
                        td.num { @if feature.drift.is_finite() { (format::number(feature.drift)) @if feature.drifted { " drifted" } } }
                    }
                }
            }
        }
    }
}

fn policy_text(policy: &Policy) -> String {
    match policy {
        Policy::Single => "single".into(),
        Policy::Canary(canary) => format!(
            "canary, step {} of {} ({}%)",
            canary.step + 1,
            canary.steps.len(),
            canary.steps.get(canary.step).copied().unwrap_or_default()
        ),
        Policy::AbTest(_) => "A/B test".into(),
        Policy::Shadow(shadow) => format!("shadow on {}%", shadow.percent),
    }
}

fn arms(deployment: &Deployment) -> Markup {
    html! {
        @for arm in &deployment.spec.arms {
            span.chip title=(arm.role.as_str()) {
                (arm.name) ": " (arm.model.name) " v" (arm.model.version)
                @if arm.weight > 0 { " · " (arm.weight) "%" } @else { " · " (arm.role.as_str()) }
            }
            " "
        }
    }
}

pub fn render_list(data: &DeploymentsPage, viewer: &Viewer) -> Markup {
    let body = html! {
        div.heading { h1 { "Deployments" } a href="/drift" { "Drift report between two tables →" } }
        @if data.may_create {
            details.create {
                summary { "New deployment" }
                form.inline.js-create-deployment {
                    input type="text" name="name" placeholder="name" required pattern="[A-Za-z0-9][A-Za-z0-9._\\-]{0,62}";
                    input type="text" name="model" placeholder="model@alias or model/version" required;
                    button type="submit" { "Deploy" }
                }
                p.js-result.muted {}
            }
        }
        @if data.rows.is_empty() { p.empty { "Nothing is deployed." } } @else {
            table.grid.navigable {
                thead { tr { th { "Deployment" } th { "Status" } th { "Policy" } th { "Traffic" } th.num { "Revision" } th { "Updated" } } }
                tbody {
                    @for row in &data.rows {
                        @let deployment = &row.deployment;
                        tr data-href=(format!("/deployments/{}", encode(&deployment.name))) {
                            td { a.name href=(format!("/deployments/{}", encode(&deployment.name))) { (deployment.name) } }
                            td { span class=(if row.healthy { "status finished" } else { "status failed" }) { (format::clip(&row.status, 60)) } }
                            td { (policy_text(&deployment.spec.policy)) }
                            td { (arms(deployment)) }
                            td.num { (deployment.revision) }
                            td { (format::time(deployment.last_updated_time)) }
                        }
                    }
                }
            }
        }
    };
    page("Deployments", Section::Deployments, viewer, body)
}

/// A small line chart of several series, drawn as SVG on the server.
pub fn line_chart(title: &str, series: &[(&str, &[(i64, f64)])], unit: &str) -> Markup {
    const WIDTH: f64 = 320.0;
    const HEIGHT: f64 = 110.0;
    const PAD: f64 = 4.0;
    let points: Vec<(i64, f64)> = series
        .iter()
        .flat_map(|(_, s)| s.iter().copied())
        .filter(|(_, v)| v.is_finite())
        .collect();
    let (t0, t1) = points
        .iter()
        .fold((i64::MAX, i64::MIN), |(lo, hi), (t, _)| {
            (lo.min(*t), hi.max(*t))
        });
    let largest = points.iter().fold(0.0_f64, |m, (_, v)| m.max(*v));
    // Headroom above the largest value; an all-zero chart still has a scale.
    let vmax = if largest > 0.0 { largest * 1.1 } else { 1.0 };
    let span = t1.saturating_sub(t0).max(1) as f64;
    let position = |t: i64, v: f64| {
        // A single sample sits at the right edge, where the newest one goes.
        let x = if t1 > t0 {
            PAD + t.saturating_sub(t0) as f64 / span * (WIDTH - 2.0 * PAD)
        } else {
            WIDTH - PAD
        };
        (x, HEIGHT - PAD - v / vmax * (HEIGHT - 2.0 * PAD))
    };
    let path = |values: &[(i64, f64)]| {
        let mut d = String::new();
        for (idx, (t, v)) in values.iter().filter(|(_, v)| v.is_finite()).enumerate() {
            let (x, y) = position(*t, *v);
            d.push_str(&format!(
                "{}{x:.1},{y:.1}",
                if idx == 0 { "M" } else { " L" }
            ));
        }
        d
    };
    // The newest sample of each series is marked, so a series of one sample shows.
    let newest = |values: &[(i64, f64)]| {
        values
            .iter()
            .rev()
            .find(|(_, v)| v.is_finite())
            .map(|(t, v)| position(*t, *v))
    };
    let latest: Vec<String> = series
        .iter()
        .filter_map(|(name, s)| {
            s.last()
                .map(|(_, v)| format!("{name} {}{unit}", format::number(*v)))
        })
        .collect();
    html! {
        figure.mini {
            figcaption { strong { (title) } " " span.muted { (latest.join(" · ")) } }
            @if points.is_empty() { p.empty { "no traffic yet" } } @else {
                svg width=(WIDTH) height=(HEIGHT) viewBox=(format!("0 0 {WIDTH} {HEIGHT}")) role="img" aria-label=(title) {
                    @for (idx, (name, values)) in series.iter().enumerate() {
                        path class=(format!("line c{}", idx % 6)) d=(path(values)) { title { (name) } }
                        @if let Some((x, y)) = newest(values) {
                            circle class=(format!("dot c{}", idx % 6)) cx=(format!("{x:.1}")) cy=(format!("{y:.1}")) r="2.5" {}
                        }
                    }
                    text x="4" y="12" class="axis" { (format::number(largest)) (unit) }
                }
            }
        }
    }
}

fn heat_class(cell: &Option<(f64, bool)>) -> &'static str {
    match cell {
        None => "heat none",
        Some((_, true)) => "heat drifted",
        Some((psi, false)) if *psi >= 0.1 => "heat warm",
        Some(_) => "heat calm",
    }
}

fn table_of(rows: &[Vec<String>], header: &[&str]) -> Markup {
    html! {
        @if rows.is_empty() { p.empty { "None." } } @else {
            table.grid.compact {
                thead { tr { @for h in header { th { (h) } } } }
                tbody { @for row in rows { tr { @for cell in row { td { (format::clip(cell, 200)) } } } } }
            }
        }
    }
}

pub fn render(data: &DeploymentPage, viewer: &Viewer) -> Markup {
    let deployment = &data.deployment;
    let name = &deployment.name;
    let body = html! {
        p.crumbs { a href="/deployments" { "Deployments" } " / " span { (name) } }
        div.heading {
            h1 { (name) }
            span class=(if data.healthy { "status finished" } else { "status failed" }) { (format::clip(&data.status, 80)) }
        }
        dl.facts {
            dt { "Policy" } dd { (policy_text(&deployment.spec.policy)) }
            dt { "Arms" } dd { (arms(deployment)) }
            dt { "Revision" } dd { (deployment.revision) " · updated " (format::time(deployment.last_updated_time)) }
            dt { "Endpoints" } dd {
                code { "POST /v2/models/" (name) "/infer" } br;
                code { "POST /deployments/" (name) "/invocations" }
            }
        }
        section {
            h2 { "Traffic (last hour, kept by the server)" }
            div.minis {
                (line_chart("requests/s", &data.traffic.iter().map(|a| (a.arm.as_str(), a.requests_per_second.as_slice())).collect::<Vec<_>>(), ""))
                (line_chart("p50 latency", &data.traffic.iter().map(|a| (a.arm.as_str(), a.p50_ms.as_slice())).collect::<Vec<_>>(), " ms"))
                (line_chart("p99 latency", &data.traffic.iter().map(|a| (a.arm.as_str(), a.p99_ms.as_slice())).collect::<Vec<_>>(), " ms"))
                (line_chart("error rate", &data.traffic.iter().map(|a| (a.arm.as_str(), a.error_rate.as_slice())).collect::<Vec<_>>(), ""))
            }
            p.muted { "This page refreshes its numbers every 10 s." }
        }
        @if data.may_edit {
            section {
                h2 { "Rollout" }
                form.inline.js-rollout data-deployment=(name) {
                    input type="text" name="model" placeholder="model@alias or model/version";
                    select name="action" {
                        option value="update" { "replace" }
                        option value="blue_green" { "blue-green" }
                        option value="canary" { "canary (step-wise)" }
                        option value="ab" { "A/B test" }
                        option value="shadow" { "shadow" }
                    }
                    input type="number" name="weight" placeholder="weight %" min="1" max="100";
                    button type="submit" { "Start" }
                }
                form.inline {
                    button.js-deployment-action type="button" data-deployment=(name) data-action="promote" { "Promote candidate" }
                    button.js-deployment-action.danger type="button" data-deployment=(name) data-action="rollback" { "Roll back" }
                }
                p.js-result.muted {}
            }
        }
        section {
            h2 { "Monitoring" }
            p { a.js-drift-report href=(data.drift_href) { "Drift report: the last hour against the day before →" } }
            div.columns2 {
                div {
                    h3 { "Last hour" }
                    dl.facts { @for item in &data.monitoring { dt { (item.name) } dd { (item.value) } } }
                }
                div {
                    h3 { "Predictions" }
                    dl.facts { @for item in &data.prediction_distribution { dt { (item.name) } dd { (item.value) } } }
                    h3 { "Performance" }
                    @if data.performance.is_empty() { p.empty { "No labels yet: send ground truth to " code { "POST /api/v1/deployments/" (name) "/feedback" } "." } }
                    dl.facts { @for item in &data.performance { dt { (item.name) } dd { (item.value) } } }
                }
            }
            @if let Some(grid) = &data.drift {
                h3 { "Drift per feature and window (PSI)" }
                div.scroll { table.heatmap {
                    thead { tr { th { "feature" } @for window in &grid.windows { th title=(format::time(*window)) { (format::time(*window).get(11..16).unwrap_or("")) } } } }
                    tbody {
                        @for (feature, cells) in grid.features.iter().zip(&grid.cells) {
                            tr { th { (feature) } @for cell in cells {
                                td class=(heat_class(cell)) title=(cell.map(|(psi, drifted)| format!("PSI {}{}", format::number(psi), if drifted { ", drifted" } else { "" })).unwrap_or_else(|| "no data".into())) {
                                    (cell.map(|(psi, _)| format::number(psi)).unwrap_or_default())
                                }
                            } }
                        }
                    }
                } }
            }
            h3 { "Alerts" }
            (table_of(&data.alerts, &["rule", "state", "value", "since"]))
            details { summary { "Alert history" } (table_of(&data.alert_history, &["rule", "state", "value", "at"])) }
            h3 { "Abuse flags" }
            (table_of(&data.abuse, &["caller", "flags", "requests"]))
            h3 { "Retraining runs" }
            (table_of(&data.retraining, &["run", "status", "reason", "started"]))
        }
        section {
            h2 { "Explanations" }
            @if data.importance.is_empty() {
                p.empty { "No sampled explanations in the last hour: a share of answers (" code { "--explain-sample-rate" } ", 1% by default) is explained in the background." }
            }
            @for importance in &data.importance { (importance_table(importance)) }
            @if let Some(example) = &data.explain_example {
                h3 { "Explain a prediction" }
                form.js-explain data-deployment=(name) {
                    textarea name="body" rows="6" spellcheck="false" { (example) }
                    button type="submit" { "Explain" }
                }
                p.muted { "Sends the request to " code { "POST /deployments/" (name) "/explain" } " and shows each feature's contribution to the prediction." }
                div.js-explanation {}
            }
        }
        section {
            h2 { "Revisions" }
            table.grid.compact {
                thead { tr { th.num { "#" } th { "Action" } th { "By" } th { "When" } th { "Reason" } th { "Arms" } } }
                tbody {
                    @for revision in &data.history {
                        tr {
                            td.num { (revision.revision) }
                            td { (revision.action) }
                            td { (revision.actor) }
                            td { (format::time(revision.time)) }
                            td { (format::clip(&revision.reason, 120)) }
                            td { @for arm in &revision.spec.arms { span.chip { (arm.name) " v" (arm.model.version) " " (arm.weight) "%" } " " } }
                        }
                    }
                }
            }
        }
        (PreEscaped(""))
    };
    page(name, Section::Deployments, viewer, body)
}

#[cfg(test)]
mod tests {
    use super::line_chart;

    #[test]
    fn charts_without_points_say_so() {
        let empty: &[(i64, f64)] = &[];
        let html = line_chart("requests/s", &[("primary", empty)], "").into_string();
        assert!(html.contains("no traffic yet"), "{html}");
        let one = [(1_000_i64, 2.0)];
        let html =
            line_chart("p99", &[("primary", &one[..]), ("canary", empty)], " ms").into_string();
        assert!(html.contains("<svg"), "{html}");
        assert!(
            html.contains("<circle"),
            "a single sample is drawn as a dot: {html}"
        );
    }

    #[test]
    fn the_scale_label_is_the_largest_value() {
        let zeros = [(1_000_i64, 0.0), (11_000, 0.0)];
        let html = line_chart("error rate", &[("primary", &zeros[..])], "").into_string();
        assert!(html.contains(r#"class="axis">0<"#), "{html}");
        let rising = [(1_000_i64, 1.0), (11_000, 4.0)];
        let html = line_chart("p50", &[("primary", &rising[..])], " ms").into_string();
        assert!(html.contains(r#"class="axis">4 ms<"#), "{html}");
    }
}
