//! Compare runs (up to 1,000): overlaid metric charts, a params table with
//! "differences only", parallel coordinates, a scatter of any param or
//! metric against a metric, and groups drawn as mean ± std bands.

use std::collections::BTreeSet;

use maud::{html, Markup, PreEscaped};
use sextant_core::Run;

use crate::pages::run::chart_controls;
use crate::pages::runs::run_href;
use crate::{format, page, Section, Viewer};

/// Most runs one comparison takes.
pub const MAX_COMPARED: usize = 1000;

pub struct ComparePage {
    pub runs: Vec<Run>,
    /// Run ids asked for that the viewer may not see or that do not exist.
    pub missing: usize,
}

fn name(run: &Run) -> &str {
    if run.info.run_name.is_empty() {
        &run.info.run_id
    } else {
        &run.info.run_name
    }
}

/// The runs' params and last metric values as JSON for the script's
/// parallel coordinates and scatter plots (a `type="application/json"`
/// block is data, never executed). `<` is escaped so no value can close
/// the element.
fn data_json(runs: &[Run], params: &[String], metrics: &[String]) -> String {
    let mut out = String::from("{\"runs\":[");
    for (idx, run) in runs.iter().enumerate() {
        if idx > 0 {
            out.push(',');
        }
        out.push_str(&format!(
            "{{\"id\":{},\"name\":{},\"values\":{{",
            json_string(&run.info.run_id),
            json_string(name(run))
        ));
        let mut first = true;
        for key in params {
            if let Some(param) = run.data.params.iter().find(|p| &p.key == key) {
                if !first {
                    out.push(',');
                }
                first = false;
                let value = param.value.parse::<f64>().ok().filter(|v| v.is_finite());
                match value {
                    Some(number) => out.push_str(&format!(
                        "{}:{}",
                        json_string(&format!("params.{key}")),
                        number
                    )),
                    None => out.push_str(&format!(
                        "{}:{}",
                        json_string(&format!("params.{key}")),
                        json_string(&param.value)
                    )),
                }
            }
        }
        for key in metrics {
            if let Some(metric) = run
                .data
                .metrics
                .iter()
                .find(|m| &m.key == key)
                .filter(|m| m.value.is_finite())
            {
                if !first {
                    out.push(',');
                }
                first = false;
                out.push_str(&format!(
                    "{}:{}",
                    json_string(&format!("metrics.{key}")),
                    metric.value
                ));
            }
        }
        out.push_str("}}");
    }
    out.push_str("]}");
    out
}

/// A JSON string literal, with `<`, `>` and `&` escaped for an HTML data block.
pub fn json_string(text: &str) -> String {
    let mut out = String::with_capacity(text.len() + 2);
    out.push('"');
    for c in text.chars() {
        match c {
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            '<' => out.push_str("\\u003c"),
            '>' => out.push_str("\\u003e"),
            '&' => out.push_str("\\u0026"),
            c if (c as u32) < 0x20 => out.push_str(&format!("\\u{:04x}", c as u32)),
            c => out.push(c),
        }
    }
    out.push('"');
    out
}

pub fn render(data: &ComparePage, viewer: &Viewer) -> Markup {
    let runs = &data.runs;
    let params: Vec<String> = runs
        .iter()
        .flat_map(|r| r.data.params.iter().map(|p| p.key.clone()))
        .collect::<BTreeSet<_>>()
        .into_iter()
        .collect();
    let metrics: Vec<String> = runs
        .iter()
        .flat_map(|r| r.data.metrics.iter().map(|m| m.key.clone()))
        .collect::<BTreeSet<_>>()
        .into_iter()
        .collect();
    let value = |run: &Run, key: &str| {
        run.data
            .params
            .iter()
            .find(|p| p.key == key)
            .map(|p| p.value.clone())
    };
    let differs = |key: &str| {
        let values: BTreeSet<Option<String>> = runs.iter().map(|r| value(r, key)).collect();
        values.len() > 1
    };
    let ids: Vec<&str> = runs.iter().map(|r| r.info.run_id.as_str()).collect();
    let metric_refs: Vec<&str> = metrics.iter().map(String::as_str).collect();
    let shown_columns = runs.len().min(50);
    let body = html! {
        h1 { "Compare " (runs.len()) " runs" }
        @if data.missing > 0 { p.muted { (data.missing) " of the runs asked for are not shown: they do not exist or you may not see them." } }
        @if runs.is_empty() { p.empty { "Nothing to compare: select runs in a runs table and press c." } } @else {
            section.charts {
                h2 { "Metrics" }
                (chart_controls(&ids, &metric_refs, metric_refs.iter().take(4).copied().collect()))
            }
            section {
                h2 { "Parameters" }
                label { input.js-diff-only type="checkbox" checked; " differences only" }
                div.scroll { table.grid.compact.params-table {
                    thead { tr {
                        th { "param" }
                        @for run in runs.iter().take(shown_columns) { th { a href=(run_href(run)) { (format::clip(name(run), 24)) } } }
                    } }
                    tbody {
                        @for key in &params {
                            tr.same[!differs(key)] {
                                th { (key) }
                                @for run in runs.iter().take(shown_columns) { td { (value(run, key).map(|v| format::clip(&v, 40)).unwrap_or_else(|| "—".into())) } }
                            }
                        }
                        @for key in &metrics {
                            tr {
                                th { "metrics." (key) }
                                @for run in runs.iter().take(shown_columns) {
                                    td.num { (run.data.metrics.iter().find(|m| &m.key == key).map(|m| format::number(m.value)).unwrap_or_else(|| "—".into())) }
                                }
                            }
                        }
                    }
                } }
                @if runs.len() > shown_columns { p.muted { "The table shows the first " (shown_columns) " runs; the charts show all of them." } }
            }
            section {
                h2 { "Parallel coordinates" }
                canvas.parallel width="1000" height="320" {}
            }
            section {
                h2 { "Scatter" }
                form.scatter-controls {
                    label { "x " select name="sx" {
                        @for key in params.iter().map(|k| format!("params.{k}")).chain(metrics.iter().map(|k| format!("metrics.{k}"))) { option value=(key) { (key) } }
                    } }
                    label { "y " select name="sy" {
                        @for (idx, key) in metrics.iter().enumerate() { option value=(format!("metrics.{key}")) selected[idx == 0] { "metrics." (key) } }
                    } }
                    label { "group by " select name="sg" {
                        option value="" { "none" }
                        @for key in &params { option value=(format!("params.{key}")) { "params." (key) } }
                    } }
                }
                canvas.scatter width="700" height="360" {}
            }
            script #compare-data type="application/json" { (PreEscaped(data_json(runs, &params, &metrics))) }
        }
    };
    page("Compare runs", Section::Experiments, viewer, body)
}

#[cfg(test)]
mod tests {
    use super::json_string;

    #[test]
    fn json_in_a_data_block_cannot_close_it() {
        let text = json_string("</script><script>alert(1)</script>");
        assert!(!text.contains('<'), "{text}");
        assert_eq!(json_string("a\"b\\c\n"), "\"a\\\"b\\\\c\\u000a\"");
    }
}
