//! The drift report as one self-contained HTML page: inline CSS and SVG,
//! no script and nothing fetched from the network, so it can be mailed,
//! attached to a CI run or opened offline.

use std::fmt::Write;

use super::{ColumnDrift, Distribution, DriftReport, MethodSet};

const REFERENCE_COLOUR: &str = "#4c78a8";
const CURRENT_COLOUR: &str = "#f58518";

/// Renders `report` as HTML.
pub fn render(report: &DriftReport) -> String {
    let mut page = String::with_capacity(64 * 1024);
    let dataset = &report.dataset;
    let methods = match report.methods {
        MethodSet::Evidently => "Evidently 0.7 defaults",
        MethodSet::Sextant => {
            "Sextant (fixed reference bins, effect size and corrected significance)"
        }
    };
    let _ = write!(
        page,
        r#"<!DOCTYPE html>
<html lang="en"><head><meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>Drift report: {current}</title>
<style>{STYLE}</style></head><body>
<header><h1>Data drift</h1>
<p class="files"><span class="key ref"></span>reference <code>{reference}</code> ({reference_rows} rows)
&nbsp; <span class="key cur"></span>current <code>{current}</code> ({current_rows} rows)</p>
<p class="methods">Methods: {methods}</p></header>
<section class="summary {verdict_class}">
<div class="verdict">{verdict}</div>
<div class="detail">{drifted} of {columns} columns drifted ({share:.0}%); the dataset drifts at {threshold:.0}% or more.</div>
</section>
"#,
        STYLE = STYLE,
        reference = escape(&report.reference.path),
        reference_rows = report.reference.rows,
        current = escape(&report.current.path),
        current_rows = report.current.rows,
        methods = methods,
        verdict_class = if dataset.drift { "drift" } else { "stable" },
        verdict = if dataset.drift {
            "Dataset drift detected"
        } else {
            "No dataset drift"
        },
        drifted = dataset.drifted_columns,
        columns = dataset.columns,
        share = dataset.share * 100.0,
        threshold = dataset.drift_share * 100.0,
    );

    page.push_str(
        "<table><thead><tr><th>Column</th><th>Type</th><th>Distributions</th><th>Method</th>\
         <th class=\"num\">Statistic</th><th class=\"num\">Threshold</th><th class=\"num\">p-value</th>\
         <th class=\"num\">Missing (ref → cur)</th><th>Verdict</th></tr></thead><tbody>\n",
    );
    // Drifted columns first, the strongest signals at the top.
    let mut order: Vec<&ColumnDrift> = report.columns.iter().collect();
    order.sort_by_key(|c| !c.drifted);
    for column in order {
        render_row(&mut page, column);
    }
    page.push_str("</tbody></table>\n");

    if !report.skipped.is_empty() {
        page.push_str("<section class=\"skipped\"><h2>Not compared</h2><ul>");
        for skipped in &report.skipped {
            let _ = write!(
                page,
                "<li><code>{}</code>: {}</li>",
                escape(&skipped.column),
                escape(&skipped.reason)
            );
        }
        page.push_str("</ul></section>\n");
    }
    page.push_str(
        "<footer>Made by <code>sextant drift</code>. Shares are of each side's non-missing values.</footer>\
         </body></html>\n",
    );
    page
}

fn render_row(page: &mut String, column: &ColumnDrift) {
    let role = match column.role {
        super::ColumnRole::Feature => String::new(),
        super::ColumnRole::Target => " <span class=\"role\">target</span>".to_string(),
        super::ColumnRole::Prediction => " <span class=\"role\">prediction</span>".to_string(),
    };
    let type_name = match column.column_type {
        super::ColumnType::Numerical => "numerical",
        super::ColumnType::Categorical => "categorical",
        super::ColumnType::Text => "text",
    };
    let mut notes = String::new();
    if let Some(unseen) = column.unseen_share.filter(|&s| s > 0.0) {
        let _ = write!(
            notes,
            "<div class=\"note\">{:.1}% of current values unseen in the reference: {}</div>",
            unseen * 100.0,
            escape(&column.unseen_categories.join(", "))
        );
    }
    if let Some(effect) = &column.effect_sizes {
        let _ = write!(
            notes,
            "<div class=\"note\">PSI {:.3} · JS {:.3} bits",
            effect.psi, effect.jensen_shannon
        );
        if let Some(d) = effect.ks_statistic {
            let _ = write!(notes, " · K-S D {d:.3}");
        }
        notes.push_str("</div>");
    }
    let verdict = if column.drifted {
        format!(
            "<span class=\"badge drift\">Drift</span><div class=\"note\">{}</div>",
            escape(&column.reasons.join(", "))
        )
    } else {
        "<span class=\"badge stable\">Stable</span>".to_string()
    };
    let _ = write!(
        page,
        "<tr class=\"{row_class}\"><td data-label=\"Column\"><code>{name}</code>{role}</td><td data-label=\"Type\">{type_name}</td>\
         <td data-label=\"Distributions\">{chart}</td><td data-label=\"Method\">{method}{notes}</td>\
         <td class=\"num\" data-label=\"Statistic\">{statistic}</td><td class=\"num\" data-label=\"Threshold\">{threshold}</td>\
         <td class=\"num\" data-label=\"p-value\">{p_value}</td>\
         <td class=\"num\" data-label=\"Missing (ref → cur)\">{missing_ref:.1}% → {missing_cur:.1}%</td><td data-label=\"Verdict\">{verdict}</td></tr>\n",
        row_class = if column.drifted { "drifted" } else { "" },
        name = escape(&column.column),
        chart = chart(&column.distribution),
        method = escape(&column.method_name),
        statistic = number(column.statistic),
        threshold = number(column.threshold),
        p_value = column.p_value.map_or_else(|| "—".to_string(), number),
        missing_ref = column.reference_missing_share * 100.0,
        missing_cur = column.current_missing_share * 100.0,
    );
}

/// Overlaid bars: the reference behind, the current in front.
fn chart(distribution: &Distribution) -> String {
    const WIDTH: f64 = 240.0;
    const HEIGHT: f64 = 64.0;
    let bars = distribution.reference.len().max(distribution.current.len());
    if bars == 0 {
        return String::new();
    }
    let top = distribution
        .reference
        .iter()
        .chain(&distribution.current)
        .copied()
        .fold(0.0f64, f64::max)
        .max(f64::MIN_POSITIVE);
    let slot = WIDTH / bars as f64;
    let mut svg = format!(
        "<svg class=\"chart\" viewBox=\"0 0 {WIDTH} {h}\" width=\"{WIDTH}\" height=\"{h}\" role=\"img\">",
        h = HEIGHT + 12.0
    );
    let categories = distribution.kind == "categories";
    for (i, (&r, &c)) in distribution
        .reference
        .iter()
        .zip(&distribution.current)
        .enumerate()
    {
        let x = i as f64 * slot;
        let label = if categories {
            distribution.labels.get(i).map(String::as_str).unwrap_or("")
        } else {
            ""
        };
        let title = if categories {
            format!(
                "{}: reference {:.1}%, current {:.1}%",
                escape(label),
                r * 100.0,
                c * 100.0
            )
        } else {
            let from = distribution.edges.get(i).copied().unwrap_or(f64::NAN);
            let to = distribution.edges.get(i + 1).copied().unwrap_or(f64::NAN);
            format!(
                "[{}, {}): reference {:.1}%, current {:.1}%",
                number(from),
                number(to),
                r * 100.0,
                c * 100.0
            )
        };
        let (ref_width, cur_width, cur_offset) = if categories {
            (slot * 0.45, slot * 0.45, slot * 0.45)
        } else {
            (slot * 0.95, slot * 0.6, slot * 0.175)
        };
        let rh = r / top * HEIGHT;
        let ch = c / top * HEIGHT;
        let _ = write!(
            svg,
            "<g><title>{title}</title><rect x=\"{x:.2}\" y=\"{ry:.2}\" width=\"{ref_width:.2}\" height=\"{rh:.2}\" fill=\"{REFERENCE_COLOUR}\" opacity=\"0.55\"/>\
             <rect x=\"{cx:.2}\" y=\"{cy:.2}\" width=\"{cur_width:.2}\" height=\"{ch:.2}\" fill=\"{CURRENT_COLOUR}\" opacity=\"0.8\"/></g>",
            ry = HEIGHT - rh,
            cx = x + cur_offset,
            cy = HEIGHT - ch,
        );
    }
    if categories {
        // Every bar named under it, shortened to its slot (the full name
        // and shares are in the bar's title); with many categories every
        // other bar, so printed labels never overlap.
        let every = if slot < 18.0 { 2 } else { 1 };
        let characters = ((slot * every as f64) / 5.5).floor().max(1.0) as usize;
        for (i, label) in distribution.labels.iter().enumerate().step_by(every) {
            let _ = write!(
                svg,
                "<text x=\"{x:.2}\" y=\"{y}\" class=\"axis\" text-anchor=\"middle\">{}</text>",
                escape(&shorten(label, characters)),
                x = (i as f64 + 0.45) * slot,
                y = HEIGHT + 11.0
            );
        }
    } else if distribution.edges.len() >= 2 {
        // Edges at the ends and the middle; quantile bins are not equally
        // wide, so the middle edge is the one under the middle bar.
        let edges = &distribution.edges;
        let middle = edges.len() / 2;
        let _ = write!(
            svg,
            "<text x=\"0\" y=\"{y}\" class=\"axis\">{}</text>\
             <text x=\"{mx:.2}\" y=\"{y}\" class=\"axis\" text-anchor=\"middle\">{}</text>\
             <text x=\"{WIDTH}\" y=\"{y}\" class=\"axis\" text-anchor=\"end\">{}</text>",
            short_number(edges[0]),
            short_number(edges[middle]),
            short_number(edges[edges.len() - 1]),
            mx = middle as f64 * slot,
            y = HEIGHT + 11.0
        );
    }
    svg.push_str("</svg>");
    svg
}

/// At most `max` characters, with an ellipsis when cut.
fn shorten(text: &str, max: usize) -> String {
    if text.chars().count() <= max {
        text.to_string()
    } else {
        let mut cut: String = text.chars().take(max.saturating_sub(1)).collect();
        cut.push('…');
        cut
    }
}

/// An axis number: 4 significant digits, k/M/G for large magnitudes.
fn short_number(value: f64) -> String {
    if !value.is_finite() || value == 0.0 {
        return number(value);
    }
    let magnitude = value.abs();
    let (scaled, suffix) = match magnitude {
        m if m >= 1e9 => (value / 1e9, "G"),
        m if m >= 1e6 => (value / 1e6, "M"),
        m if m >= 1e4 => (value / 1e3, "k"),
        _ => (value, ""),
    };
    if scaled.abs() < 1e-3 {
        return format!("{value:.2e}");
    }
    let digits = (3 - scaled.abs().log10().floor() as i32).clamp(0, 6) as usize;
    let text = format!("{scaled:.digits$}");
    let text = if text.contains('.') {
        text.trim_end_matches('0').trim_end_matches('.').to_string()
    } else {
        text
    };
    format!("{text}{suffix}")
}

fn number(value: f64) -> String {
    if value == 0.0 {
        "0".to_string()
    } else if !value.is_finite() {
        value.to_string()
    } else if value.abs() < 1e-3 || value.abs() >= 1e6 {
        format!("{value:.3e}")
    } else {
        format!("{value:.4}")
    }
}

fn escape(text: &str) -> String {
    let mut escaped = String::with_capacity(text.len());
    for c in text.chars() {
        match c {
            '<' => escaped.push_str("&lt;"),
            '>' => escaped.push_str("&gt;"),
            '&' => escaped.push_str("&amp;"),
            '"' => escaped.push_str("&quot;"),
            '\'' => escaped.push_str("&#39;"),
            c => escaped.push(c),
        }
    }
    escaped
}

const STYLE: &str = "
body{font:14px/1.45 system-ui,-apple-system,'Segoe UI',sans-serif;margin:24px auto;max-width:1280px;padding:0 16px;color:#1f2328}
h1{margin:0 0 4px;font-size:24px} code{font:12px ui-monospace,SFMono-Regular,Menlo,monospace}
.files,.methods{margin:2px 0;color:#57606a}
.key{display:inline-block;width:10px;height:10px;margin-right:4px;border-radius:2px}
.key.ref{background:#4c78a8;opacity:.55}.key.cur{background:#f58518;opacity:.8}
.summary{margin:16px 0;padding:14px 18px;border-radius:8px;border:1px solid}
.summary.drift{background:#fff1f0;border-color:#f5b5ae}.summary.stable{background:#effaf2;border-color:#a9dfb8}
.verdict{font-size:20px;font-weight:600}
table{border-collapse:collapse;width:100%}
th,td{padding:6px 8px;border-bottom:1px solid #d8dee4;vertical-align:top;text-align:left}
th{background:#f6f8fa;position:sticky;top:0}
td.num,th.num{text-align:right;font-variant-numeric:tabular-nums;white-space:nowrap}
tr.drifted td:first-child{border-left:3px solid #cf222e}
.badge{display:inline-block;padding:1px 8px;border-radius:10px;font-size:12px;font-weight:600}
.badge.drift{background:#cf222e;color:#fff}.badge.stable{background:#dafbe1;color:#116329}
.note{font-size:12px;color:#57606a}.role{font-size:11px;background:#ddf4ff;border-radius:6px;padding:0 5px}
.chart .axis{font-size:9px;fill:#57606a}
.skipped{margin-top:20px}footer{margin-top:24px;color:#8c959f;font-size:12px}
svg.chart{max-width:100%;height:auto}
@media (max-width:760px){
thead{display:none}table,tbody,tr,td{display:block;width:100%}
tr{border:1px solid #d8dee4;border-radius:6px;margin:0 0 12px;padding:4px 0}
td{border:none;padding:3px 10px}td.num{text-align:left}
td[data-label]::before{content:attr(data-label);display:block;font-size:11px;color:#57606a}
tr.drifted td:first-child{border-left:none}tr.drifted{border-left:3px solid #cf222e}
}
";
