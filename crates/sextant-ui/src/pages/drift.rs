//! The drift page: pick a reference and a current table (a run's artifact
//! or logged dataset, or a window of a deployment's prediction log) and
//! read the report `POST /api/v1/drift` would give, drawn in a sandboxed
//! frame. The whole choice is in the URL, so a report is a link.

use maud::{html, Markup, DOCTYPE};

use crate::{page, Section, Viewer};

/// The fields of one table source, as typed (`ref.` or `cur.` in the URL).
#[derive(Debug, Clone, Default)]
pub struct SourceFields {
    pub run: String,
    pub path: String,
    pub dataset: String,
    pub deployment: String,
    pub span: String,
    pub start: String,
    pub end: String,
    pub version: String,
}

impl SourceFields {
    pub fn is_empty(&self) -> bool {
        self.run.is_empty() && self.deployment.is_empty()
    }

    /// The URL's keys of this source with `prefix` (`ref` or `cur`).
    pub fn keys(prefix: &str) -> [(String, &'static str); 8] {
        [
            (format!("{prefix}.run"), "run"),
            (format!("{prefix}.path"), "path"),
            (format!("{prefix}.dataset"), "dataset"),
            (format!("{prefix}.deployment"), "deployment"),
            (format!("{prefix}.span"), "span"),
            (format!("{prefix}.start"), "start"),
            (format!("{prefix}.end"), "end"),
            (format!("{prefix}.version"), "version"),
        ]
    }

    fn field(&self, name: &str) -> &str {
        match name {
            "run" => &self.run,
            "path" => &self.path,
            "dataset" => &self.dataset,
            "deployment" => &self.deployment,
            "span" => &self.span,
            "start" => &self.start,
            "end" => &self.end,
            _ => &self.version,
        }
    }
}

pub struct DriftPage {
    pub reference: SourceFields,
    pub current: SourceFields,
    pub methods: String,
    pub target: String,
    pub prediction: String,
    /// The query string of the report frame, when both sources are given.
    pub report_query: Option<String>,
    /// Deployments the viewer may read, offered as suggestions.
    pub deployments: Vec<String>,
}

fn source_fieldset(legend: &str, prefix: &str, source: &SourceFields) -> Markup {
    let input = |name: &str, placeholder: &str| {
        let key = format!("{prefix}.{name}");
        html! {
            input type="text" name=(key) value=(source.field(name)) placeholder=(placeholder) list=[(name == "deployment").then_some("deployment-names")];
        }
    };
    html! {
        fieldset.source {
            legend { (legend) }
            p.muted { "A run's file or logged dataset:" }
            div.fields { (input("run", "run id")) (input("path", "artifact path, e.g. data/train.csv")) (input("dataset", "or dataset name or digest")) }
            p.muted { "or a window of a deployment's prediction log:" }
            div.fields {
                (input("deployment", "deployment"))
                (input("span", "span, e.g. 1h, 1d"))
                (input("start", "start (ms since epoch)"))
                (input("end", "end (ms)"))
                (input("version", "model version"))
            }
        }
    }
}

pub fn render(data: &DriftPage, viewer: &Viewer) -> Markup {
    let body = html! {
        h1 { "Drift report" }
        form.drift method="get" action="/drift" {
            div.columns2 {
                (source_fieldset("Reference", "ref", &data.reference))
                (source_fieldset("Current", "cur", &data.current))
            }
            datalist #deployment-names { @for name in &data.deployments { option value=(name) {} } }
            div.fields {
                label { "methods " select name="methods" {
                    option value="sextant" selected[data.methods != "evidently"] { "Sextant" }
                    option value="evidently" selected[data.methods == "evidently"] { "Evidently 0.7 defaults" }
                } }
                input type="text" name="target" value=(data.target) placeholder="label column (optional)";
                input type="text" name="prediction" value=(data.prediction) placeholder="prediction column (optional)";
                button type="submit" { "Compare" }
            }
        }
        @match &data.report_query {
            Some(query) => iframe.report src=(format!("/ui/drift/report?{query}")) sandbox="" title="Drift report" {},
            None => p.empty { "Give a reference and a current table to compare them column by column." },
        }
    };
    page("Drift", Section::Deployments, viewer, body)
}

/// The frame's document for a report that could not be made: the reason,
/// as text.
pub fn error_document(message: &str) -> Markup {
    html! {
        (DOCTYPE)
        html { head { meta charset="utf-8"; } body { p style="color:#c53030;font-family:system-ui,sans-serif" { (message) } } }
    }
}
