//! The validation spec: what a model version must satisfy, as data.
//!
//! The vocabulary follows `shared/reference/explain-validate.md` §3.2:
//! metric thresholds (absolute, and against a baseline version with a
//! non-inferiority margin and an optional paired bootstrap), slices,
//! fairness (fairlearn's `MetricFrame` semantics), CheckList's behavioural
//! tests (minimum functionality, invariance, directional), Great
//! Expectations' data expectations (shortened names, `mostly`), budgets and
//! gate rules. A spec that does not parse is a [`SpecError`] naming the line
//! and the field.

use std::collections::BTreeMap;

use serde::de::DeserializeOwned;
use serde::Deserialize;
use serde_json::Value;

use crate::filter::Filter;
use crate::metrics::Metric;
use crate::yaml::{self, Located};

/// Why a spec was refused: where, and what was wrong.
#[derive(Debug, Clone, thiserror::Error)]
#[error("{}{}{message}", line.map(|l| format!("line {l}: ")).unwrap_or_default(), if field.is_empty() { String::new() } else { format!("{field}: ") })]
pub struct SpecError {
    pub line: Option<usize>,
    pub field: String,
    pub message: String,
}

#[derive(Debug, Clone)]
pub struct Spec {
    /// SHA-256 of the spec's text, recorded with every result.
    pub sha256: String,
    pub task: Task,
    pub schema: BTreeMap<String, FeatureSchema>,
    pub datasets: BTreeMap<String, DatasetSource>,
    pub baseline: Option<Baseline>,
    pub defaults: Defaults,
    pub tests: Vec<Test>,
    pub gates: Vec<GateRule>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, serde::Serialize)]
#[serde(rename_all = "snake_case")]
pub enum TaskKind {
    BinaryClassification,
    MulticlassClassification,
    Regression,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Task {
    #[serde(rename = "type")]
    pub kind: TaskKind,
    /// The label column of labelled datasets.
    pub label: String,
    /// Binary tasks: which label value is positive (default 1 / true).
    #[serde(default)]
    pub positive_class: Option<Value>,
    /// Which output holds the score: `predict_proba` (the positive class's
    /// column is found by the model's own labels), `predict_proba[1]`, or an
    /// output name for regressors.
    #[serde(default)]
    pub score: Option<String>,
    /// Binary tasks: predict positive when the score is at least this
    /// (default: the model's own label output).
    #[serde(default)]
    pub decision_threshold: Option<f64>,
}

#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct FeatureSchema {
    #[serde(rename = "type", default)]
    pub kind: Option<String>,
    #[serde(default)]
    pub values: Option<Vec<Value>>,
    #[serde(default)]
    pub min: Option<f64>,
    #[serde(default)]
    pub max: Option<f64>,
    #[serde(default)]
    pub unit: Option<String>,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawSchema {
    #[serde(default)]
    features: BTreeMap<String, FeatureSchema>,
    #[serde(default)]
    #[allow(dead_code)]
    id_column: Option<String>,
}

/// Where a dataset's rows come from.
#[derive(Debug, Clone)]
pub enum DatasetSource {
    /// A file, a run artifact (`runs:/ID/path`), a stored dataset
    /// (`dataset:NAME@DIGEST`) or an object-store URL: the caller resolves
    /// it to a local file.
    Uri(String),
    /// Rows written in the spec (minimum-functionality cases).
    Rows(Vec<serde_json::Map<String, Value>>),
    /// Rows drawn from a seeded generator.
    Generate(Generator),
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawDataset {
    #[serde(default)]
    uri: Option<String>,
    #[serde(default)]
    rows: Option<Vec<serde_json::Map<String, Value>>>,
    #[serde(default)]
    generate: Option<Generator>,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Generator {
    #[serde(default)]
    pub seed: u64,
    pub n: usize,
    /// The label every generated row carries (written to the task's label
    /// column).
    #[serde(default)]
    pub label: Option<Value>,
    pub columns: BTreeMap<String, ColumnGenerator>,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "snake_case")]
pub enum ColumnGenerator {
    Const(Value),
    Choice(Vec<Value>),
    Uniform([f64; 2]),
    Integers([i64; 2]),
    Normal([f64; 2]),
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Baseline {
    /// `models:/NAME@ALIAS` or `models:/NAME/VERSION`; the caller resolves it.
    pub model: String,
    /// What to do when it does not exist: comparisons are reported as
    /// skipped (never as passed).
    #[serde(default)]
    #[allow(dead_code)]
    pub if_absent: Option<String>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Deserialize, serde::Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Severity {
    Warning,
    Blocking,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Bootstrap {
    #[serde(default = "default_resamples")]
    pub resamples: usize,
    #[serde(default = "default_confidence")]
    pub confidence: f64,
    #[serde(default)]
    pub seed: u64,
}

fn default_resamples() -> usize {
    1000
}

fn default_confidence() -> f64 {
    0.95
}

impl Default for Bootstrap {
    fn default() -> Self {
        Bootstrap {
            resamples: default_resamples(),
            confidence: default_confidence(),
            seed: 0,
        }
    }
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Defaults {
    #[serde(default)]
    pub min_rows: usize,
    #[serde(default = "blocking")]
    pub severity: Severity,
    #[serde(default)]
    pub bootstrap: Bootstrap,
}

fn blocking() -> Severity {
    Severity::Blocking
}

impl Default for Defaults {
    fn default() -> Self {
        Defaults {
            min_rows: 0,
            severity: Severity::Blocking,
            bootstrap: Bootstrap::default(),
        }
    }
}

/// A dataset as a test uses it: a named dataset, optionally filtered and
/// sampled (seeded).
#[derive(Debug, Clone)]
pub struct DatasetRef {
    pub name: String,
    pub filter: Option<Filter>,
    pub sample: Option<usize>,
    pub seed: u64,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Significance {
    Bootstrap,
}

/// A bound: a plain number is strict; with `significance: bootstrap` it
/// fails only when the bootstrap interval lies wholly on the wrong side.
#[derive(Debug, Clone, Copy)]
pub struct Bound {
    pub value: f64,
    pub bootstrap: bool,
}

#[derive(Debug, Clone, Copy, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct VsBaseline {
    /// Non-inferiority: the candidate may be worse than the baseline by at
    /// most this much.
    #[serde(default)]
    pub max_drop: Option<f64>,
    /// MLflow's `min_absolute_change`: the candidate must be better by at
    /// least this much.
    #[serde(default)]
    pub min_gain_abs: Option<f64>,
    /// MLflow's `min_relative_change`.
    #[serde(default)]
    pub min_gain_rel: Option<f64>,
    #[serde(default)]
    pub significance: Option<Significance>,
}

#[derive(Debug, Clone)]
pub enum Slice {
    /// One slice per value of a column (the schema's values when it lists
    /// them, else the values present).
    By(String),
    Where {
        name: String,
        filter: Filter,
    },
}

#[derive(Debug, Clone)]
pub enum TestKind {
    Metric {
        metric: Metric,
        min: Option<Bound>,
        max: Option<Bound>,
        vs_baseline: Option<VsBaseline>,
    },
    SliceMetric {
        metric: Metric,
        slices: Vec<Slice>,
        min: Option<Bound>,
        max: Option<Bound>,
        max_gap_to_overall: Option<f64>,
        vs_baseline: Option<VsBaseline>,
    },
    /// Segments searched for, not listed: each feature's categories,
    /// quantile bins and missing values, and pairs of them (`depth` 2).
    WeakSlices {
        metric: Metric,
        features: Vec<String>,
        max_gap_to_overall: f64,
        bins: usize,
        depth: usize,
        min_support: usize,
    },
    Fairness {
        sensitive_features: Vec<String>,
        metrics: Vec<Metric>,
        /// `demographic_parity_difference`, `accuracy.ratio`, … → bound.
        expect: BTreeMap<String, MinMax>,
        min_group_rows: usize,
    },
    ExpectLabel {
        min_pass_rate: f64,
    },
    Invariance {
        perturb: Vec<(String, Perturbation)>,
        max_abs_score_delta: Option<f64>,
        max_label_flip_rate: Option<f64>,
        min_pass_rate: f64,
    },
    Directional {
        perturb: Vec<(String, Perturbation)>,
        increasing: bool,
        tolerance: f64,
        min_pass_rate: f64,
    },
    Expectations {
        expectations: Vec<crate::expectations::Expectation>,
    },
    Budget {
        max_model_size_mb: Option<f64>,
        max_latency_ms_p50: Option<f64>,
        max_latency_ms_p99: Option<f64>,
        calls: usize,
    },
}

#[derive(Debug, Clone, Copy, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct MinMax {
    #[serde(default)]
    pub min: Option<f64>,
    #[serde(default)]
    pub max: Option<f64>,
    /// Judge the bootstrap interval instead of the point value: fail only
    /// when the whole interval is on the wrong side.
    #[serde(default)]
    pub significance: Option<Significance>,
}

#[derive(Debug, Clone)]
pub struct Test {
    pub id: String,
    pub dataset: Option<DatasetRef>,
    pub severity: Severity,
    pub min_rows: usize,
    pub bootstrap: Bootstrap,
    pub kind: TestKind,
}

impl Test {
    pub fn kind_name(&self) -> &'static str {
        match self.kind {
            TestKind::Metric { .. } => "metric",
            TestKind::SliceMetric { .. } => "slice_metric",
            TestKind::WeakSlices { .. } => "weak_slices",
            TestKind::Fairness { .. } => "fairness",
            TestKind::ExpectLabel { .. } => "expect_label",
            TestKind::Invariance { .. } => "invariance",
            TestKind::Directional { .. } => "directional",
            TestKind::Expectations { .. } => "expectations",
            TestKind::Budget { .. } => "budget",
        }
    }
}

/// A perturbation of one column (CheckList's INV and DIR tests).
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "snake_case")]
pub enum Perturbation {
    /// Every row gets this value.
    Set(Value),
    /// The two values trade places.
    Swap([Value; 2]),
    /// Values in the map's keys become the map's values.
    Replace(BTreeMap<String, Value>),
    Multiply(f64),
    Add(f64),
}

#[derive(Debug, Clone, Deserialize, serde::Serialize)]
#[serde(deny_unknown_fields)]
pub struct GateRule {
    /// An alias (`champion` or `@champion`), a stage (`Production`), or
    /// `deployment`.
    pub to: String,
    #[serde(default)]
    pub require: Require,
}

#[derive(Debug, Clone, Deserialize, serde::Serialize)]
#[serde(deny_unknown_fields)]
pub struct Require {
    #[serde(default = "blocking")]
    pub severity: Severity,
    /// Assertion ids (globs with `*`) this gate ignores.
    #[serde(default)]
    pub exclude: Vec<String>,
}

impl Default for Require {
    fn default() -> Self {
        Require {
            severity: Severity::Blocking,
            exclude: Vec::new(),
        }
    }
}

// ------------------------------------------------------------------ parsing

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawSpec {
    #[serde(rename = "apiVersion", default)]
    #[allow(dead_code)]
    api_version: Option<String>,
    #[serde(default)]
    #[allow(dead_code)]
    kind: Option<String>,
    #[serde(default)]
    #[allow(dead_code)]
    metadata: Option<Value>,
    task: Task,
    #[serde(default)]
    schema: Option<RawSchema>,
    #[serde(default)]
    datasets: BTreeMap<String, RawDataset>,
    #[serde(default)]
    baseline: Option<Baseline>,
    #[serde(default)]
    defaults: Defaults,
    tests: Vec<Value>,
    #[serde(default)]
    gates: Vec<GateRule>,
    #[serde(default)]
    #[allow(dead_code)]
    on_failure: Option<Value>,
    #[serde(default)]
    #[allow(dead_code)]
    report: Option<Value>,
}

/// Fields every test may carry, besides its kind's own.
const COMMON_FIELDS: &[&str] = &["id", "kind", "dataset", "severity", "min_rows", "bootstrap"];

struct Reader<'a> {
    doc: &'a Located,
}

impl Reader<'_> {
    fn error(&self, field: &str, message: impl Into<String>) -> SpecError {
        SpecError {
            line: self.doc.line_of(field),
            field: field.to_string(),
            message: message.into(),
        }
    }

    /// Deserialises `value` found at `at`, naming the innermost field that
    /// failed.
    fn typed<T: DeserializeOwned>(&self, at: &str, value: &Value) -> Result<T, SpecError> {
        serde_path_to_error::deserialize(value).map_err(|error| {
            let inner = error.path().to_string();
            let path = match (at.is_empty(), inner == ".") {
                (true, _) => inner,
                (false, true) => at.to_string(),
                (false, false) if inner.starts_with('[') => format!("{at}{inner}"),
                (false, false) => format!("{at}.{inner}"),
            };
            self.error(&path, error.into_inner().to_string())
        })
    }
}

impl Spec {
    /// Parses a spec's YAML (or JSON) text.
    pub fn parse(text: &str) -> Result<Spec, SpecError> {
        let doc = yaml::parse(text).map_err(|e| SpecError {
            line: Some(e.line),
            field: String::new(),
            message: format!("not valid YAML: {}", e.message),
        })?;
        if !doc.value.is_object() {
            return Err(SpecError {
                line: Some(1),
                field: String::new(),
                message: "a validation spec is a mapping with at least `task` and `tests`".into(),
            });
        }
        let reader = Reader { doc: &doc };
        let raw: RawSpec = reader.typed("", &doc.value)?;
        let sha256 = crate::sha256_hex(text.as_bytes());
        let schema = raw.schema.map(|s| s.features).unwrap_or_default();

        let mut datasets = BTreeMap::new();
        for (name, dataset) in raw.datasets {
            let at = format!("datasets.{name}");
            let source = match (dataset.uri, dataset.rows, dataset.generate) {
                (Some(uri), None, None) => {
                    if uri.trim().is_empty() {
                        return Err(reader.error(&format!("{at}.uri"), "is empty"));
                    }
                    DatasetSource::Uri(uri)
                }
                (None, Some(rows), None) => {
                    if rows.is_empty() {
                        return Err(reader.error(&format!("{at}.rows"), "has no rows"));
                    }
                    DatasetSource::Rows(rows)
                }
                (None, None, Some(generator)) => {
                    if generator.n == 0 || generator.n > 10_000_000 {
                        return Err(reader.error(
                            &format!("{at}.generate.n"),
                            "must be between 1 and 10000000",
                        ));
                    }
                    DatasetSource::Generate(generator)
                }
                _ => {
                    return Err(reader.error(
                        &at,
                        "a dataset has exactly one of `uri`, `rows` or `generate`",
                    ))
                }
            };
            datasets.insert(name, source);
        }

        if let Some(threshold) = raw.task.decision_threshold {
            if !(0.0..=1.0).contains(&threshold) && raw.task.kind != TaskKind::Regression {
                return Err(reader.error("task.decision_threshold", "must be within [0, 1]"));
            }
        }
        let bootstrap = &raw.defaults.bootstrap;
        check_bootstrap(&reader, "defaults.bootstrap", bootstrap)?;

        let mut tests = Vec::new();
        let mut ids = std::collections::HashSet::new();
        if raw.tests.is_empty() {
            return Err(reader.error("tests", "a spec needs at least one test"));
        }
        for (index, value) in raw.tests.iter().enumerate() {
            let at = format!("tests[{index}]");
            let test = parse_test(&reader, &at, value, &raw.defaults, &datasets, raw.task.kind)?;
            if !ids.insert(test.id.clone()) {
                return Err(reader.error(
                    &format!("{at}.id"),
                    format!("test id '{}' is used twice", test.id),
                ));
            }
            tests.push(test);
        }
        for (index, gate) in raw.gates.iter().enumerate() {
            if gate.to.trim().is_empty() {
                return Err(reader.error(&format!("gates[{index}].to"), "is empty"));
            }
        }
        Ok(Spec {
            sha256,
            task: raw.task,
            schema,
            datasets,
            baseline: raw.baseline,
            defaults: raw.defaults,
            tests,
            gates: raw.gates,
        })
    }

    /// The named datasets the tests read (uris to resolve), in name order.
    pub fn uris(&self) -> Vec<(&str, &str)> {
        self.datasets
            .iter()
            .filter_map(|(name, source)| match source {
                DatasetSource::Uri(uri) => Some((name.as_str(), uri.as_str())),
                _ => None,
            })
            .collect()
    }
}

fn check_bootstrap(reader: &Reader, at: &str, bootstrap: &Bootstrap) -> Result<(), SpecError> {
    if !(bootstrap.confidence > 0.0 && bootstrap.confidence < 1.0) {
        return Err(reader.error(&format!("{at}.confidence"), "must be within (0, 1)"));
    }
    if bootstrap.resamples == 0 || bootstrap.resamples > 100_000 {
        return Err(reader.error(&format!("{at}.resamples"), "must be between 1 and 100000"));
    }
    Ok(())
}

fn parse_test(
    reader: &Reader,
    at: &str,
    value: &Value,
    defaults: &Defaults,
    datasets: &BTreeMap<String, DatasetSource>,
    task: TaskKind,
) -> Result<Test, SpecError> {
    let Some(object) = value.as_object() else {
        return Err(reader.error(at, "a test is a mapping with `id` and `kind`"));
    };
    let field = |name: &str| object.get(name);
    let path = |name: &str| format!("{at}.{name}");
    let id = match field("id") {
        Some(Value::String(id)) if !id.trim().is_empty() => id.clone(),
        Some(_) => return Err(reader.error(&path("id"), "must be a non-empty string")),
        None => return Err(reader.error(at, "missing field `id`")),
    };
    let kind = match field("kind") {
        Some(Value::String(kind)) => kind.clone(),
        _ => return Err(reader.error(&path("kind"), "missing or not a string")),
    };
    let allowed: &[&str] = match kind.as_str() {
        "metric" => &["metric", "min", "max", "vs_baseline"],
        "slice_metric" => &[
            "metric",
            "slices",
            "min",
            "max",
            "max_gap_to_overall",
            "vs_baseline",
        ],
        "weak_slices" => &[
            "metric",
            "features",
            "max_gap_to_overall",
            "bins",
            "depth",
            "min_support",
        ],
        "fairness" => &["sensitive_features", "metrics", "expect", "min_group_rows"],
        "expect_label" => &["min_pass_rate"],
        "invariance" | "directional" => &["perturb", "expect"],
        "expectations" => &["expectations"],
        "budget" => &["max_model_size_mb", "max_latency_ms", "calls"],
        other => {
            return Err(reader.error(
                &path("kind"),
                format!(
                    "unknown kind '{other}': expected one of metric, slice_metric, weak_slices, fairness, \
                     expect_label, invariance, directional, expectations, budget"
                ),
            ))
        }
    };
    for key in object.keys() {
        if !COMMON_FIELDS.contains(&key.as_str()) && !allowed.contains(&key.as_str()) {
            return Err(reader.error(
                &path(key),
                format!(
                    "unknown field `{key}` for a {kind} test: expected one of {}",
                    COMMON_FIELDS
                        .iter()
                        .chain(allowed)
                        .map(|f| format!("`{f}`"))
                        .collect::<Vec<_>>()
                        .join(", ")
                ),
            ));
        }
    }
    let severity = match field("severity") {
        Some(v) => reader.typed(&path("severity"), v)?,
        None => defaults.severity,
    };
    let min_rows = match field("min_rows") {
        Some(v) => reader.typed(&path("min_rows"), v)?,
        None => defaults.min_rows,
    };
    let bootstrap: Bootstrap = match field("bootstrap") {
        Some(v) => reader.typed(&path("bootstrap"), v)?,
        None => defaults.bootstrap.clone(),
    };
    check_bootstrap(reader, &path("bootstrap"), &bootstrap)?;
    let dataset = match field("dataset") {
        Some(v) => Some(dataset_ref(reader, &path("dataset"), v, datasets)?),
        None => None,
    };
    let needs_dataset = kind != "budget";
    if needs_dataset && dataset.is_none() {
        return Err(reader.error(
            at,
            format!("missing field `dataset` (a {kind} test reads one)"),
        ));
    }
    let metric = |name: &str| -> Result<Metric, SpecError> {
        let value =
            field(name).ok_or_else(|| reader.error(at, format!("missing field `{name}`")))?;
        let metric = Metric::parse(value).map_err(|m| reader.error(&path(name), m))?;
        metric
            .check_task(task)
            .map_err(|m| reader.error(&path(name), m))?;
        Ok(metric)
    };
    let bound = |name: &str| -> Result<Option<Bound>, SpecError> {
        match field(name) {
            None => Ok(None),
            Some(Value::Number(n)) => Ok(Some(Bound {
                value: n.as_f64().unwrap_or(f64::NAN),
                bootstrap: false,
            })),
            Some(v) if !v.is_object() => Err(reader.error(
                &path(name),
                format!(
                    "must be a number, or {{value: NUMBER, significance: …}}; found {}",
                    serde_json::to_string(v).unwrap_or_default()
                ),
            )),
            Some(v) => {
                #[derive(Deserialize)]
                #[serde(deny_unknown_fields)]
                struct RawBound {
                    value: f64,
                    #[serde(default)]
                    significance: Option<Significance>,
                }
                let raw: RawBound = reader.typed(&path(name), v)?;
                Ok(Some(Bound {
                    value: raw.value,
                    bootstrap: raw.significance.is_some(),
                }))
            }
        }
    };
    let optional = |name: &str| -> Result<Option<f64>, SpecError> {
        field(name)
            .map(|v| reader.typed::<f64>(&path(name), v))
            .transpose()
    };
    let vs_baseline = |name: &str| -> Result<Option<VsBaseline>, SpecError> {
        let vs: Option<VsBaseline> = field(name)
            .map(|v| reader.typed(&path(name), v))
            .transpose()?;
        if let Some(vs) = &vs {
            if vs.max_drop.is_none() && vs.min_gain_abs.is_none() && vs.min_gain_rel.is_none() {
                return Err(reader.error(
                    &path(name),
                    "needs `max_drop`, `min_gain_abs` or `min_gain_rel`",
                ));
            }
        }
        Ok(vs)
    };
    let kind = match kind.as_str() {
        "metric" => {
            let (min, max) = (bound("min")?, bound("max")?);
            let vs = vs_baseline("vs_baseline")?;
            if min.is_none() && max.is_none() && vs.is_none() {
                return Err(reader.error(at, "a metric test needs `min`, `max` or `vs_baseline`"));
            }
            TestKind::Metric {
                metric: metric("metric")?,
                min,
                max,
                vs_baseline: vs,
            }
        }
        "slice_metric" => {
            let slices_value =
                field("slices").ok_or_else(|| reader.error(at, "missing field `slices`"))?;
            let Value::Array(items) = slices_value else {
                return Err(reader.error(&path("slices"), "must be a list"));
            };
            let mut slices = Vec::new();
            for (i, item) in items.iter().enumerate() {
                let at = format!("{}[{i}]", path("slices"));
                slices.push(slice(reader, &at, item)?);
            }
            if slices.is_empty() {
                return Err(reader.error(&path("slices"), "lists no slice"));
            }
            TestKind::SliceMetric {
                metric: metric("metric")?,
                slices,
                min: bound("min")?,
                max: bound("max")?,
                max_gap_to_overall: optional("max_gap_to_overall")?,
                vs_baseline: vs_baseline("vs_baseline")?,
            }
        }
        "weak_slices" => {
            let features: Vec<String> = field("features")
                .map(|v| reader.typed(&path("features"), v))
                .transpose()?
                .unwrap_or_default();
            if features.is_empty() {
                return Err(reader.error(&path("features"), "names at least one column to search"));
            }
            let max_gap_to_overall = optional("max_gap_to_overall")?
                .ok_or_else(|| reader.error(at, "missing field `max_gap_to_overall`"))?;
            if max_gap_to_overall.is_nan() || max_gap_to_overall < 0.0 {
                return Err(reader.error(&path("max_gap_to_overall"), "must be 0 or more"));
            }
            let count = |name: &str, default: usize, range: std::ops::RangeInclusive<usize>| {
                let value: usize = field(name)
                    .map(|v| reader.typed(&path(name), v))
                    .transpose()?
                    .unwrap_or(default);
                if range.contains(&value) {
                    Ok(value)
                } else {
                    Err(reader.error(
                        &path(name),
                        format!("must be between {} and {}", range.start(), range.end()),
                    ))
                }
            };
            TestKind::WeakSlices {
                metric: metric("metric")?,
                features,
                max_gap_to_overall,
                bins: count("bins", 4, 2..=20)?,
                depth: count("depth", 2, 1..=2)?,
                min_support: count("min_support", 30, 1..=usize::MAX)?,
            }
        }
        "fairness" => {
            let sensitive_features: Vec<String> = field("sensitive_features")
                .map(|v| reader.typed(&path("sensitive_features"), v))
                .transpose()?
                .unwrap_or_default();
            if sensitive_features.is_empty() {
                return Err(reader.error(&path("sensitive_features"), "names at least one column"));
            }
            let mut metrics = Vec::new();
            if let Some(Value::Array(items)) = field("metrics") {
                for (i, item) in items.iter().enumerate() {
                    let at = format!("{}[{i}]", path("metrics"));
                    let metric = Metric::parse(item).map_err(|m| reader.error(&at, m))?;
                    metric.check_task(task).map_err(|m| reader.error(&at, m))?;
                    metrics.push(metric);
                }
            }
            let expect: BTreeMap<String, MinMax> = field("expect")
                .map(|v| reader.typed(&path("expect"), v))
                .transpose()?
                .unwrap_or_default();
            for key in expect.keys() {
                crate::fairness::Measure::parse(key, &metrics)
                    .map_err(|m| reader.error(&format!("{}.{key}", path("expect")), m))?;
            }
            TestKind::Fairness {
                sensitive_features,
                metrics,
                expect,
                min_group_rows: field("min_group_rows")
                    .map(|v| reader.typed(&path("min_group_rows"), v))
                    .transpose()?
                    .unwrap_or(0),
            }
        }
        "expect_label" => TestKind::ExpectLabel {
            min_pass_rate: optional("min_pass_rate")?.unwrap_or(1.0),
        },
        "invariance" | "directional" => {
            let perturb_value =
                field("perturb").ok_or_else(|| reader.error(at, "missing field `perturb`"))?;
            let perturb_map: BTreeMap<String, Perturbation> =
                reader.typed(&path("perturb"), perturb_value)?;
            if perturb_map.is_empty() {
                return Err(reader.error(&path("perturb"), "perturbs no column"));
            }
            let perturb: Vec<(String, Perturbation)> = perturb_map.into_iter().collect();
            #[derive(Deserialize)]
            #[serde(deny_unknown_fields)]
            struct RawExpect {
                #[serde(default)]
                max_abs_score_delta: Option<f64>,
                #[serde(default)]
                max_label_flip_rate: Option<f64>,
                #[serde(default)]
                min_pass_rate: Option<f64>,
                #[serde(default)]
                score: Option<Direction>,
                #[serde(default)]
                tolerance: Option<f64>,
            }
            #[derive(Deserialize, PartialEq)]
            #[serde(rename_all = "snake_case")]
            enum Direction {
                NonDecreasing,
                NonIncreasing,
            }
            let expect: RawExpect = match field("expect") {
                Some(v) => reader.typed(&path("expect"), v)?,
                None => return Err(reader.error(at, "missing field `expect`")),
            };
            if kind == "invariance" {
                if expect.score.is_some() || expect.tolerance.is_some() {
                    return Err(reader.error(
                        &path("expect"),
                        "`score` and `tolerance` belong to directional tests",
                    ));
                }
                TestKind::Invariance {
                    perturb,
                    max_abs_score_delta: expect.max_abs_score_delta,
                    max_label_flip_rate: expect.max_label_flip_rate,
                    min_pass_rate: expect.min_pass_rate.unwrap_or(1.0),
                }
            } else {
                let Some(direction) = expect.score else {
                    return Err(reader.error(
                        &path("expect"),
                        "missing field `score` (non_decreasing or non_increasing)",
                    ));
                };
                TestKind::Directional {
                    perturb,
                    increasing: direction == Direction::NonDecreasing,
                    tolerance: expect.tolerance.unwrap_or(0.0),
                    min_pass_rate: expect.min_pass_rate.unwrap_or(1.0),
                }
            }
        }
        "expectations" => {
            let Some(Value::Array(items)) = field("expectations") else {
                return Err(reader.error(&path("expectations"), "must be a list"));
            };
            let mut expectations = Vec::new();
            for (i, item) in items.iter().enumerate() {
                let at = format!("{}[{i}]", path("expectations"));
                expectations.push(crate::expectations::Expectation::parse(item).map_err(
                    |(field, m)| {
                        let at = if field.is_empty() {
                            at.clone()
                        } else {
                            format!("{at}.{field}")
                        };
                        reader.error(&at, m)
                    },
                )?);
            }
            TestKind::Expectations { expectations }
        }
        "budget" => {
            #[derive(Deserialize)]
            #[serde(deny_unknown_fields)]
            struct Latency {
                #[serde(default)]
                p50: Option<f64>,
                #[serde(default)]
                p99: Option<f64>,
            }
            let latency: Option<Latency> = field("max_latency_ms")
                .map(|v| reader.typed(&path("max_latency_ms"), v))
                .transpose()?;
            let size = optional("max_model_size_mb")?;
            if latency.is_none() && size.is_none() {
                return Err(
                    reader.error(at, "a budget needs `max_model_size_mb` or `max_latency_ms`")
                );
            }
            if latency.is_some() && dataset.is_none() {
                return Err(reader.error(
                    at,
                    "a latency budget needs a `dataset` to call the model with",
                ));
            }
            TestKind::Budget {
                max_model_size_mb: size,
                max_latency_ms_p50: latency.as_ref().and_then(|l| l.p50),
                max_latency_ms_p99: latency.as_ref().and_then(|l| l.p99),
                calls: field("calls")
                    .map(|v| reader.typed(&path("calls"), v))
                    .transpose()?
                    .unwrap_or(200),
            }
        }
        _ => unreachable!("kinds are checked above"),
    };
    Ok(Test {
        id,
        dataset,
        severity,
        min_rows,
        bootstrap,
        kind,
    })
}

fn dataset_ref(
    reader: &Reader,
    at: &str,
    value: &Value,
    datasets: &BTreeMap<String, DatasetSource>,
) -> Result<DatasetRef, SpecError> {
    let known = |name: &str, at: &str| -> Result<(), SpecError> {
        if datasets.contains_key(name) {
            Ok(())
        } else {
            Err(reader.error(
                at,
                format!(
                    "unknown dataset '{name}': the spec's datasets are {}",
                    datasets
                        .keys()
                        .map(|k| format!("'{k}'"))
                        .collect::<Vec<_>>()
                        .join(", ")
                ),
            ))
        }
    };
    match value {
        Value::String(name) => {
            known(name, at)?;
            Ok(DatasetRef {
                name: name.clone(),
                filter: None,
                sample: None,
                seed: 0,
            })
        }
        Value::Object(_) => {
            #[derive(Deserialize)]
            #[serde(deny_unknown_fields, rename = "dataset")]
            struct RawRef {
                #[serde(rename = "ref")]
                name: String,
                #[serde(default)]
                sample: Option<usize>,
                #[serde(default)]
                seed: u64,
                #[serde(rename = "where", default)]
                filter: Option<Value>,
            }
            let raw: RawRef = reader.typed(at, value)?;
            known(&raw.name, &format!("{at}.ref"))?;
            let filter = match &raw.filter {
                Some(v) => {
                    Some(Filter::parse(v).map_err(|m| reader.error(&format!("{at}.where"), m))?)
                }
                None => None,
            };
            Ok(DatasetRef {
                name: raw.name,
                filter,
                sample: raw.sample,
                seed: raw.seed,
            })
        }
        _ => Err(reader.error(at, "a dataset name, or {ref, sample, seed, where}")),
    }
}

fn slice(reader: &Reader, at: &str, value: &Value) -> Result<Slice, SpecError> {
    let Some(object) = value.as_object() else {
        return Err(reader.error(at, "a slice is {by: COLUMN} or {name, where}"));
    };
    for key in object.keys() {
        if !matches!(key.as_str(), "by" | "name" | "where") {
            return Err(reader.error(
                &format!("{at}.{key}"),
                format!("unknown field `{key}`: a slice is {{by: COLUMN}} or {{name, where}}"),
            ));
        }
    }
    match (object.get("by"), object.get("name"), object.get("where")) {
        (Some(Value::String(column)), None, None) => Ok(Slice::By(column.clone())),
        (None, Some(Value::String(name)), Some(filter)) => Ok(Slice::Where {
            name: name.clone(),
            filter: Filter::parse(filter).map_err(|m| reader.error(&format!("{at}.where"), m))?,
        }),
        _ => Err(reader.error(at, "a slice is {by: COLUMN} or {name, where}")),
    }
}
