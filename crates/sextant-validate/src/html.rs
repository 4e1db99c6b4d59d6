//! The report as one self-contained HTML page: inline CSS, no script, every
//! value escaped by maud.

use maud::{html, Markup, PreEscaped, DOCTYPE};
use serde_json::Value;

use crate::report::{Report, Verdict};

const STYLE: &str = "body{font:14px/1.45 system-ui,sans-serif;margin:2rem;color:#1d2330;max-width:1100px}\
h1{font-size:1.4rem}h2{font-size:1.1rem;margin-top:2rem}table{border-collapse:collapse;margin:.5rem 0;width:100%}\
td,th{border-bottom:1px solid #e3e6ee;padding:.3rem .5rem;text-align:left;vertical-align:top}th{background:#f5f6fa}\
.passed{color:#17663a}.failed{color:#b42318;font-weight:600}.error{color:#9a3412;font-weight:600}.skipped{color:#6b7280}\
.badge{display:inline-block;padding:.1rem .6rem;border-radius:1rem;font-weight:600}\
.badge.passed{background:#dcfce7}.badge.failed{background:#fee2e2}.badge.error{background:#ffedd5}\
code{font-size:.9em}.muted{color:#6b7280}";

/// A file's expectations checked, as one page: each expectation's verdict,
/// what was observed and the first unexpected rows.
pub(crate) fn render_checked(checked: &crate::expectations::Checked, data: &str) -> String {
    let status = if checked.outcomes.iter().any(|o| o.error.is_some()) {
        "error"
    } else if checked.success {
        "passed"
    } else {
        "failed"
    };
    html! {
        (DOCTYPE)
        html lang="en" {
            head {
                meta charset="utf-8";
                title { "Expectations on " (data) }
                style { (PreEscaped(STYLE)) }
            }
            body {
                h1 { "Expectations on " code { (data) } " " span.badge.(status) { (status) } }
                p.muted { (checked.rows) " rows, " (checked.columns) " columns, checked in " (format!("{:.2}", checked.seconds)) " s" }
                table {
                    tr { th { "Expectation" } th { "Column" } th { "Verdict" } th { "Observed" } th { "Unexpected" } th { "First unexpected rows" } }
                    @for o in &checked.outcomes {
                        @let verdict = if o.error.is_some() { "error" } else if o.success { "passed" } else { "failed" };
                        tr {
                            td { code { (o.expectation) } }
                            td { @if let Some(c) = &o.column { code { (c) } } }
                            td.(verdict) { (verdict) }
                            td { @if let Some(e) = &o.error { (e) } @else { (cell(&o.observed)) } }
                            td { @if let Some(n) = o.unexpected_count { (n) " (" (format!("{:.2}%", o.unexpected_share.unwrap_or(0.0) * 100.0)) ")" } }
                            td { (o.unexpected_rows.iter().map(cell).collect::<Vec<_>>().join(", ")) }
                        }
                    }
                }
            }
        }
    }
    .into_string()
}

fn verdict_class(v: Verdict) -> &'static str {
    match v {
        Verdict::Passed => "passed",
        Verdict::Failed => "failed",
        Verdict::Skipped => "skipped",
        Verdict::Error => "error",
    }
}

fn number(value: Option<f64>) -> String {
    match value {
        Some(x) if x.is_finite() => format!("{x:.4}"),
        Some(x) => x.to_string(),
        None => "—".into(),
    }
}

fn cell(value: &Value) -> String {
    match value {
        Value::Number(n) => n.as_f64().map_or_else(
            || n.to_string(),
            |x| {
                if x.fract() == 0.0 {
                    format!("{x}")
                } else {
                    format!("{x:.4}")
                }
            },
        ),
        Value::String(s) => s.clone(),
        Value::Null => "—".into(),
        other => other.to_string(),
    }
}

/// A list of flat objects as a table (slices, groups).
fn table(rows: &[Value]) -> Markup {
    let columns: Vec<String> = rows
        .first()
        .and_then(Value::as_object)
        .map(|o| o.keys().cloned().collect())
        .unwrap_or_default();
    html! {
        table {
            tr { @for c in &columns { th { (c) } } }
            @for row in rows {
                tr { @for c in &columns { td { (cell(row.get(c).unwrap_or(&Value::Null))) } } }
            }
        }
    }
}

pub fn render(report: &Report) -> String {
    let status = report.status.as_str();
    let page = html! {
        (DOCTYPE)
        html lang="en" {
            head {
                meta charset="utf-8";
                title { "Validation of " (report.model) ": " (status) }
                style { (PreEscaped(STYLE)) }
            }
            body {
                h1 { "Validation of " code { (report.model) } " " span class=(format!("badge {status}")) { (status) } }
                p class="muted" {
                    "Spec sha256 " code { (report.spec_sha256) } " · " (format!("{:.2}", report.seconds)) " s"
                    @if let Some(b) = &report.baseline { " · baseline " code { (b) } }
                    @if let Some(note) = &report.baseline_note { " · " (note) }
                }
                @if !report.failed_checks.is_empty() {
                    h2 { "Blocking failures" }
                    ul { @for id in &report.failed_checks { li class="failed" { code { (id) } } } }
                }
                @if !report.gates.is_empty() {
                    h2 { "Gates" }
                    table {
                        tr { th { "To" } th { "Decision" } th { "Blocking" } }
                        @for g in &report.gates {
                            tr {
                                td { (g.to) }
                                td class=(if g.allowed { "passed" } else { "failed" }) { (if g.allowed { "allowed" } else { "blocked" }) }
                                td { (g.blocking.join(", ")) }
                            }
                        }
                    }
                }
                h2 { "Datasets" }
                table {
                    tr { th { "Name" } th { "Source" } th { "Rows" } th { "SHA-256" } }
                    @for d in &report.datasets {
                        tr { td { (d.name) } td { (d.source) } td { (d.rows) } td { code { (d.sha256) } } }
                    }
                }
                @for test in &report.tests {
                    h2 { (test.id) " " span class="muted" { "(" (test.kind) @if let Some(d) = &test.dataset { " on " (d) } ")" } }
                    table {
                        tr { th { "Assertion" } th { "Verdict" } th { "Value" } th { "Threshold" } th { "Interval" } th { "Detail" } }
                        @for a in &test.assertions {
                            tr {
                                td { code { (a.id) } }
                                td class=(verdict_class(a.verdict)) { (verdict_class(a.verdict)) }
                                td { (number(a.value)) }
                                td { (a.threshold.clone().unwrap_or_default()) }
                                td { @if let Some([lo, hi]) = a.interval { (format!("{lo:.4} – {hi:.4}")) } }
                                td { (a.message) }
                            }
                        }
                    }
                    @if let Some(slices) = test.details.get("slices").and_then(Value::as_array) { (table(slices)) }
                    @if let Some(weak) = test.details.get("weak_slices").and_then(Value::as_array) { (table(weak)) }
                    @if let Some(groups) = test.details.get("by_group").and_then(Value::as_array) { (table(groups)) }
                    @if let Some(rows) = test.details.get("failing_rows").and_then(Value::as_array) {
                        @if !rows.is_empty() { p class="muted" { "Sample of failing rows" } (table(rows)) }
                    }
                }
            }
        }
    };
    page.into_string()
}
