//! Alert rules over a deployment's monitoring metrics, and the
//! Alertmanager-compatible webhook payload that announces them.
//!
//! The server evaluates every rule of a deployment each time a monitoring
//! window closes (and on a timer), passing the metric's value for that
//! evaluation: `feature_drift_share`, `drift.<feature>.psi`, `outlier_rate`,
//! `error_rate`, `latency_p99_ms`, `accuracy`, `requests`, ... This module
//! only decides; it does no I/O and reads no clock (time is passed in as
//! `now_us`, unix microseconds), so the same inputs give the same alerts.
//!
//! - **Rules** ([`AlertRule`]) are built once from an [`AlertRuleSpec`] (the
//!   JSON a user sends) and validated then, with a typed [`AlertRuleError`]
//!   whose message suits a 400. A rule's condition is a fixed
//!   [`Threshold`] or a [`Baseline`]: mean ± kσ of the metric's own
//!   previous values.
//! - **Evaluation** ([`evaluate`]) follows Prometheus' alerting rules: an
//!   alert is inactive, pending (the condition holds, but not yet for
//!   `for_windows` consecutive evaluations, like Prometheus' `for`) or
//!   firing. It resolves after `resolve_windows` consecutive evaluations
//!   past its resolve level, which [`AlertRule::hysteresis`] may set apart
//!   from the firing level so a value hovering near the threshold does not
//!   flap. The caller keeps a [`RuleState`] per rule (serializable, so it
//!   survives a restart) and gets a [`Transition`] when the alert starts
//!   or stops firing.
//! - **Notification** ([`alertmanager_payload`]) writes the body of
//!   Alertmanager's webhook, format version 4, so receivers written for
//!   Alertmanager (and Alertmanager itself, behind a relay) work unchanged.
//!
//! A missing value (`None` or NaN: a window without traffic, a metric not
//! computed yet) changes nothing: it neither fires, resolves, advances nor
//! resets a pending count, and it is not added to a baseline.

use std::collections::{BTreeMap, VecDeque};
use std::fmt;

use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};
use sextant_stats::sketch::Moments;

/// Default of [`BaselineSpec::min_windows`].
pub const DEFAULT_MIN_WINDOWS: usize = 12;
/// Default of [`BaselineSpec::window_count`].
pub const DEFAULT_WINDOW_COUNT: usize = 48;
/// Largest baseline ring, which bounds a persisted [`RuleState`].
pub const MAX_WINDOW_COUNT: usize = 10_000;
/// Largest `for_windows` and `resolve_windows`.
pub const MAX_CONSECUTIVE_WINDOWS: u32 = 10_000;
/// Longest rule name, in bytes.
pub const MAX_NAME_LEN: usize = 256;

/// Labels every alert gets from its rule and deployment, which a rule may
/// therefore not set itself.
pub const RESERVED_LABELS: [&str; 3] = ["alertname", "severity", "deployment"];

/// What Go writes for a zero `time.Time`, Alertmanager's `endsAt` of an
/// alert that is still firing.
const GO_ZERO_TIME: &str = "0001-01-01T00:00:00Z";

/// An alert rule as a user writes it: the JSON body of a create-rule
/// request, before validation.
///
/// ```json
/// {"name": "drift", "metric": "feature_drift_share",
///  "condition": {"threshold": {"op": ">", "value": 0.3}},
///  "hysteresis": 0.2, "for_windows": 3, "severity": "critical",
///  "labels": {"team": "fraud"}, "annotations": {"runbook_url": "..."}}
/// ```
///
/// Operators, directions and severities are strings here so that a wrong
/// one is reported as an [`AlertRuleError`] naming the rule, rather than as
/// a JSON error; a misspelt field is refused by the JSON parser.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AlertRuleSpec {
    /// Unique among the deployment's rules; the alert's `alertname` label.
    pub name: String,
    /// The metric the rule watches.
    pub metric: String,
    pub condition: ConditionSpec,
    /// Consecutive evaluations the condition must hold before the alert
    /// fires (Prometheus' `for`, counted in evaluations). Default 1: fire
    /// on the first.
    #[serde(default = "one")]
    pub for_windows: u32,
    /// The resolve level, when it differs from the firing level. For a
    /// threshold rule, the value the metric must cross back past (fire at
    /// `> 0.3`, resolve at `< 0.2`); for a baseline rule, a factor in
    /// (0, 1] of `k_sigma` (resolve within `factor · k_sigma` σ).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub hysteresis: Option<f64>,
    /// Consecutive evaluations past the resolve level before the alert
    /// resolves. Default 1.
    #[serde(default = "one")]
    pub resolve_windows: u32,
    /// `info`, `warning` (default) or `critical`.
    #[serde(default = "default_severity")]
    pub severity: String,
    /// Extra labels of the alert: Alertmanager routes and groups on them.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub labels: BTreeMap<String, String>,
    /// Extra annotations of the alert (`runbook_url`, `summary`, ...).
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub annotations: BTreeMap<String, String>,
    /// Sent as the `description` annotation.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub description: Option<String>,
}

/// The condition of an [`AlertRuleSpec`]: `{"threshold": {...}}` or
/// `{"baseline": {...}}`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ConditionSpec {
    Threshold(ThresholdSpec),
    Baseline(BaselineSpec),
}

/// `value op threshold`, e.g. `{"op": ">", "value": 0.3}`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ThresholdSpec {
    /// One of `>`, `>=`, `<`, `<=`, `==`, `!=`.
    pub op: String,
    pub value: f64,
}

/// The metric against mean ± `k_sigma` σ of its own previous values.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct BaselineSpec {
    pub k_sigma: f64,
    /// `above`, `below` or `both`.
    pub direction: String,
    /// Previous values needed before the rule can fire. Default 12.
    #[serde(default = "default_min_windows")]
    pub min_windows: usize,
    /// Previous values the baseline keeps. Default 48.
    #[serde(default = "default_window_count")]
    pub window_count: usize,
}

fn one() -> u32 {
    1
}

fn default_severity() -> String {
    Severity::Warning.as_str().to_string()
}

fn default_min_windows() -> usize {
    DEFAULT_MIN_WINDOWS
}

fn default_window_count() -> usize {
    DEFAULT_WINDOW_COUNT
}

/// Why an [`AlertRuleSpec`] is not a valid rule. Every message names the
/// rule and is meant for the user who sent it (a 400).
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum AlertRuleError {
    #[error("alert rule name is empty")]
    EmptyName,
    #[error("alert rule name '{name}' is longer than {max} bytes")]
    NameTooLong { name: String, max: usize },
    #[error("alert rule name {name:?} contains a control character")]
    NameControlCharacter { name: String },
    #[error("alert rule '{rule}': metric is empty")]
    EmptyMetric { rule: String },
    #[error("alert rule '{rule}': metric {metric:?} contains a control character")]
    MetricControlCharacter { rule: String, metric: String },
    #[error("alert rule '{rule}': unknown op '{op}': use one of >, >=, <, <=, ==, !=")]
    UnknownOp { rule: String, op: String },
    #[error("alert rule '{rule}': threshold value {value} is not a finite number")]
    NonFiniteThreshold { rule: String, value: f64 },
    #[error("alert rule '{rule}': unknown direction '{direction}': use above, below or both")]
    UnknownDirection { rule: String, direction: String },
    #[error("alert rule '{rule}': k_sigma must be a finite number above 0, not {k_sigma}")]
    InvalidKSigma { rule: String, k_sigma: f64 },
    #[error("alert rule '{rule}': window_count must be between 2 and {max}, not {window_count}")]
    InvalidWindowCount {
        rule: String,
        window_count: usize,
        max: usize,
    },
    #[error(
        "alert rule '{rule}': min_windows must be between 2 and window_count ({window_count}), \
         not {min_windows}"
    )]
    InvalidMinWindows {
        rule: String,
        min_windows: usize,
        window_count: usize,
    },
    #[error("alert rule '{rule}': for_windows must be between 1 and {max}, not {for_windows}")]
    InvalidForWindows {
        rule: String,
        for_windows: u32,
        max: u32,
    },
    #[error(
        "alert rule '{rule}': resolve_windows must be between 1 and {max}, not {resolve_windows}"
    )]
    InvalidResolveWindows {
        rule: String,
        resolve_windows: u32,
        max: u32,
    },
    #[error("alert rule '{rule}': unknown severity '{severity}': use info, warning or critical")]
    UnknownSeverity { rule: String, severity: String },
    #[error("alert rule '{rule}': hysteresis {hysteresis} is not a finite number")]
    NonFiniteHysteresis { rule: String, hysteresis: f64 },
    #[error(
        "alert rule '{rule}': hysteresis {hysteresis} is on the wrong side of the threshold: \
         a rule firing at {op} {threshold} resolves {expected} {threshold}"
    )]
    HysteresisWrongSide {
        rule: String,
        op: ThresholdOp,
        threshold: f64,
        hysteresis: f64,
        /// `at or below` or `at or above`.
        expected: &'static str,
    },
    #[error("alert rule '{rule}': hysteresis does not apply to op '{op}'")]
    HysteresisNotApplicable { rule: String, op: ThresholdOp },
    #[error(
        "alert rule '{rule}': hysteresis of a baseline rule is a factor of k_sigma in (0, 1], \
         not {factor}"
    )]
    InvalidHysteresisFactor { rule: String, factor: f64 },
    #[error(
        "alert rule '{rule}': label name '{label}' is not valid: use letters, digits and \
         underscores, not starting with a digit or '__'"
    )]
    InvalidLabelName { rule: String, label: String },
    #[error(
        "alert rule '{rule}': label '{label}' is set by sextant (alertname, severity and \
         deployment are reserved)"
    )]
    ReservedLabel { rule: String, label: String },
    #[error("alert rule '{rule}': label '{label}' has an empty value")]
    EmptyLabelValue { rule: String, label: String },
    #[error(
        "alert rule '{rule}': annotation name '{annotation}' is not valid: use letters, digits \
         and underscores, not starting with a digit or '__'"
    )]
    InvalidAnnotationName { rule: String, annotation: String },
    #[error("alert rule '{rule}': description is given both as a field and as an annotation")]
    DuplicateDescription { rule: String },
    #[error("alert rule name '{name}' is used twice")]
    DuplicateName { name: String },
}

/// How a threshold compares: `value op threshold` fires.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum ThresholdOp {
    Gt,
    Ge,
    Lt,
    Le,
    Eq,
    Ne,
}

impl ThresholdOp {
    pub fn as_str(self) -> &'static str {
        match self {
            ThresholdOp::Gt => ">",
            ThresholdOp::Ge => ">=",
            ThresholdOp::Lt => "<",
            ThresholdOp::Le => "<=",
            ThresholdOp::Eq => "==",
            ThresholdOp::Ne => "!=",
        }
    }

    fn parse(op: &str) -> Option<ThresholdOp> {
        Some(match op {
            ">" => ThresholdOp::Gt,
            ">=" => ThresholdOp::Ge,
            "<" => ThresholdOp::Lt,
            "<=" => ThresholdOp::Le,
            "==" => ThresholdOp::Eq,
            "!=" => ThresholdOp::Ne,
            _ => return None,
        })
    }

    /// Whether `value op threshold` holds.
    pub fn holds(self, value: f64, threshold: f64) -> bool {
        match self {
            ThresholdOp::Gt => value > threshold,
            ThresholdOp::Ge => value >= threshold,
            ThresholdOp::Lt => value < threshold,
            ThresholdOp::Le => value <= threshold,
            ThresholdOp::Eq => value == threshold,
            ThresholdOp::Ne => value != threshold,
        }
    }
}

impl fmt::Display for ThresholdOp {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// Which side of the baseline fires.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Direction {
    Above,
    Below,
    Both,
}

impl Direction {
    pub fn as_str(self) -> &'static str {
        match self {
            Direction::Above => "above",
            Direction::Below => "below",
            Direction::Both => "both",
        }
    }

    fn parse(direction: &str) -> Option<Direction> {
        Some(match direction {
            "above" => Direction::Above,
            "below" => Direction::Below,
            "both" => Direction::Both,
            _ => return None,
        })
    }

    /// How far `deviation = value − mean` goes in this direction
    /// (negative: the other way).
    fn reach(self, deviation: f64) -> f64 {
        match self {
            Direction::Above => deviation,
            Direction::Below => -deviation,
            Direction::Both => deviation.abs(),
        }
    }
}

/// An alert's `severity` label.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Severity {
    Info,
    Warning,
    Critical,
}

impl Severity {
    pub fn as_str(self) -> &'static str {
        match self {
            Severity::Info => "info",
            Severity::Warning => "warning",
            Severity::Critical => "critical",
        }
    }

    fn parse(severity: &str) -> Option<Severity> {
        Some(match severity {
            "info" => Severity::Info,
            "warning" => Severity::Warning,
            "critical" => Severity::Critical,
            _ => return None,
        })
    }
}

/// A validated rule condition.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Condition {
    Threshold(Threshold),
    Baseline(Baseline),
}

/// Fires while `value op threshold`. Only a [`AlertRule`] holds a checked
/// one: the value and resolve level are finite, and the resolve level is
/// on the resolving side.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Threshold {
    pub op: ThresholdOp,
    pub value: f64,
    /// Resolve once the metric is strictly below this (ops `>`, `>=`) or
    /// strictly above it (`<`, `<=`). `None`: resolve as soon as
    /// `value op threshold` no longer holds.
    pub resolve_at: Option<f64>,
}

/// Fires while the metric is more than `k_sigma` standard deviations from
/// the mean of its previous values, in `direction`.
///
/// The mean and sample standard deviation (n − 1) are those of the last
/// `window_count` values kept by the [`RuleState`], the current one
/// excluded, computed in one pass with Welford's update
/// ([`Moments`]). Values that breach the rule (fire it or count towards
/// `for_windows`) are not kept, nor is any value while the alert fires
/// (including those between the firing and resolve levels), so an incident
/// does not widen or shift the baseline it is measured against; a lasting
/// change of level therefore keeps firing until the rule's state is reset
/// (`RuleState::default()`). Nothing fires
/// before `min_windows` values are kept. A constant history has σ = 0, so
/// any move in `direction` fires: use a threshold rule for metrics that
/// are usually constant.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Baseline {
    pub k_sigma: f64,
    pub direction: Direction,
    pub min_windows: usize,
    pub window_count: usize,
    /// Resolve once within `resolve_factor · k_sigma` σ of the mean
    /// (in (0, 1]); `None`: as soon as within `k_sigma` σ.
    pub resolve_factor: Option<f64>,
}

/// A validated alert rule, built from an [`AlertRuleSpec`] with
/// `AlertRule::try_from`; deserializing one validates it the same way.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(try_from = "AlertRuleSpec", into = "AlertRuleSpec")]
pub struct AlertRule {
    name: String,
    metric: String,
    condition: Condition,
    for_windows: u32,
    resolve_windows: u32,
    severity: Severity,
    labels: BTreeMap<String, String>,
    annotations: BTreeMap<String, String>,
    description: Option<String>,
}

impl AlertRule {
    pub fn name(&self) -> &str {
        &self.name
    }

    pub fn metric(&self) -> &str {
        &self.metric
    }

    pub fn condition(&self) -> &Condition {
        &self.condition
    }

    pub fn for_windows(&self) -> u32 {
        self.for_windows
    }

    /// The spec's `hysteresis`: the resolve level of a threshold rule, the
    /// resolve factor of a baseline rule.
    pub fn hysteresis(&self) -> Option<f64> {
        match self.condition {
            Condition::Threshold(threshold) => threshold.resolve_at,
            Condition::Baseline(baseline) => baseline.resolve_factor,
        }
    }

    pub fn resolve_windows(&self) -> u32 {
        self.resolve_windows
    }

    pub fn severity(&self) -> Severity {
        self.severity
    }

    /// The rule's own labels (without the reserved ones).
    pub fn labels(&self) -> &BTreeMap<String, String> {
        &self.labels
    }

    /// The rule's own annotations (without `description`).
    pub fn annotations(&self) -> &BTreeMap<String, String> {
        &self.annotations
    }

    pub fn description(&self) -> Option<&str> {
        self.description.as_deref()
    }

    /// The condition in words, e.g. `> 0.3` or `more than 4σ above the
    /// mean of its last 48 values`.
    pub fn condition_text(&self) -> String {
        match self.condition {
            Condition::Threshold(threshold) => format!("{} {}", threshold.op, threshold.value),
            Condition::Baseline(baseline) => {
                let side = match baseline.direction {
                    Direction::Above => "above",
                    Direction::Below => "below",
                    Direction::Both => "away from",
                };
                format!(
                    "more than {}σ {side} the mean of its last {} values",
                    baseline.k_sigma, baseline.window_count
                )
            }
        }
    }
}

impl TryFrom<AlertRuleSpec> for AlertRule {
    type Error = AlertRuleError;

    fn try_from(spec: AlertRuleSpec) -> Result<AlertRule, AlertRuleError> {
        let AlertRuleSpec {
            name,
            metric,
            condition,
            for_windows,
            hysteresis,
            resolve_windows,
            severity,
            labels,
            mut annotations,
            description,
        } = spec;
        if name.trim().is_empty() {
            return Err(AlertRuleError::EmptyName);
        }
        if name.len() > MAX_NAME_LEN {
            return Err(AlertRuleError::NameTooLong {
                name,
                max: MAX_NAME_LEN,
            });
        }
        if name.chars().any(char::is_control) {
            return Err(AlertRuleError::NameControlCharacter { name });
        }
        let rule = name.as_str();
        if metric.trim().is_empty() {
            return Err(AlertRuleError::EmptyMetric { rule: name });
        }
        if metric.chars().any(char::is_control) {
            return Err(AlertRuleError::MetricControlCharacter { rule: name, metric });
        }
        let condition = match condition {
            ConditionSpec::Threshold(spec) => {
                Condition::Threshold(threshold_condition(rule, &spec, hysteresis)?)
            }
            ConditionSpec::Baseline(spec) => {
                Condition::Baseline(baseline_condition(rule, &spec, hysteresis)?)
            }
        };
        if !(1..=MAX_CONSECUTIVE_WINDOWS).contains(&for_windows) {
            return Err(AlertRuleError::InvalidForWindows {
                rule: name,
                for_windows,
                max: MAX_CONSECUTIVE_WINDOWS,
            });
        }
        if !(1..=MAX_CONSECUTIVE_WINDOWS).contains(&resolve_windows) {
            return Err(AlertRuleError::InvalidResolveWindows {
                rule: name,
                resolve_windows,
                max: MAX_CONSECUTIVE_WINDOWS,
            });
        }
        let Some(severity) = Severity::parse(&severity) else {
            return Err(AlertRuleError::UnknownSeverity {
                rule: name,
                severity,
            });
        };
        for (label, value) in &labels {
            if !is_label_name(label) {
                return Err(AlertRuleError::InvalidLabelName {
                    rule: name,
                    label: label.clone(),
                });
            }
            if RESERVED_LABELS.contains(&label.as_str()) {
                return Err(AlertRuleError::ReservedLabel {
                    rule: name,
                    label: label.clone(),
                });
            }
            if value.is_empty() {
                return Err(AlertRuleError::EmptyLabelValue {
                    rule: name,
                    label: label.clone(),
                });
            }
        }
        if let Some(annotation) = annotations.keys().find(|name| !is_label_name(name)) {
            return Err(AlertRuleError::InvalidAnnotationName {
                rule: name,
                annotation: annotation.clone(),
            });
        }
        // `description` has one home: an annotation given as such is moved
        // to the field, so the rule reads back the same either way.
        let description = match (description, annotations.remove("description")) {
            (Some(_), Some(_)) => return Err(AlertRuleError::DuplicateDescription { rule: name }),
            (field, annotation) => field.or(annotation),
        };
        Ok(AlertRule {
            name,
            metric,
            condition,
            for_windows,
            resolve_windows,
            severity,
            labels,
            annotations,
            description,
        })
    }
}

fn threshold_condition(
    rule: &str,
    spec: &ThresholdSpec,
    hysteresis: Option<f64>,
) -> Result<Threshold, AlertRuleError> {
    let Some(op) = ThresholdOp::parse(&spec.op) else {
        return Err(AlertRuleError::UnknownOp {
            rule: rule.to_string(),
            op: spec.op.clone(),
        });
    };
    if !spec.value.is_finite() {
        return Err(AlertRuleError::NonFiniteThreshold {
            rule: rule.to_string(),
            value: spec.value,
        });
    }
    if let Some(level) = hysteresis {
        if !level.is_finite() {
            return Err(AlertRuleError::NonFiniteHysteresis {
                rule: rule.to_string(),
                hysteresis: level,
            });
        }
        // A level equal to the threshold is allowed (and changes nothing
        // for `>=`/`<=`); past it, the alert could never resolve.
        let wrong_side = match op {
            ThresholdOp::Gt | ThresholdOp::Ge => (level > spec.value).then_some("at or below"),
            ThresholdOp::Lt | ThresholdOp::Le => (level < spec.value).then_some("at or above"),
            ThresholdOp::Eq | ThresholdOp::Ne => {
                return Err(AlertRuleError::HysteresisNotApplicable {
                    rule: rule.to_string(),
                    op,
                })
            }
        };
        if let Some(expected) = wrong_side {
            return Err(AlertRuleError::HysteresisWrongSide {
                rule: rule.to_string(),
                op,
                threshold: spec.value,
                hysteresis: level,
                expected,
            });
        }
    }
    Ok(Threshold {
        op,
        value: spec.value,
        resolve_at: hysteresis,
    })
}

fn baseline_condition(
    rule: &str,
    spec: &BaselineSpec,
    hysteresis: Option<f64>,
) -> Result<Baseline, AlertRuleError> {
    if !(spec.k_sigma.is_finite() && spec.k_sigma > 0.0) {
        return Err(AlertRuleError::InvalidKSigma {
            rule: rule.to_string(),
            k_sigma: spec.k_sigma,
        });
    }
    let Some(direction) = Direction::parse(&spec.direction) else {
        return Err(AlertRuleError::UnknownDirection {
            rule: rule.to_string(),
            direction: spec.direction.clone(),
        });
    };
    if !(2..=MAX_WINDOW_COUNT).contains(&spec.window_count) {
        return Err(AlertRuleError::InvalidWindowCount {
            rule: rule.to_string(),
            window_count: spec.window_count,
            max: MAX_WINDOW_COUNT,
        });
    }
    if !(2..=spec.window_count).contains(&spec.min_windows) {
        return Err(AlertRuleError::InvalidMinWindows {
            rule: rule.to_string(),
            min_windows: spec.min_windows,
            window_count: spec.window_count,
        });
    }
    if let Some(factor) = hysteresis {
        if !factor.is_finite() {
            return Err(AlertRuleError::NonFiniteHysteresis {
                rule: rule.to_string(),
                hysteresis: factor,
            });
        }
        if !(factor > 0.0 && factor <= 1.0) {
            return Err(AlertRuleError::InvalidHysteresisFactor {
                rule: rule.to_string(),
                factor,
            });
        }
    }
    Ok(Baseline {
        k_sigma: spec.k_sigma,
        direction,
        min_windows: spec.min_windows,
        window_count: spec.window_count,
        resolve_factor: hysteresis,
    })
}

/// Prometheus' classic label name syntax, `[a-zA-Z_][a-zA-Z0-9_]*`, without
/// the `__` prefix it reserves. Alertmanager ≥ 0.28 accepts any UTF-8 name,
/// but routes and receivers written before that expect these.
fn is_label_name(name: &str) -> bool {
    let mut chars = name.chars();
    let Some(first) = chars.next() else {
        return false;
    };
    (first.is_ascii_alphabetic() || first == '_')
        && chars.all(|c| c.is_ascii_alphanumeric() || c == '_')
        && !name.starts_with("__")
}

impl From<AlertRule> for AlertRuleSpec {
    fn from(rule: AlertRule) -> AlertRuleSpec {
        let hysteresis = rule.hysteresis();
        let condition = match rule.condition {
            Condition::Threshold(threshold) => ConditionSpec::Threshold(ThresholdSpec {
                op: threshold.op.as_str().to_string(),
                value: threshold.value,
            }),
            Condition::Baseline(baseline) => ConditionSpec::Baseline(BaselineSpec {
                k_sigma: baseline.k_sigma,
                direction: baseline.direction.as_str().to_string(),
                min_windows: baseline.min_windows,
                window_count: baseline.window_count,
            }),
        };
        AlertRuleSpec {
            name: rule.name,
            metric: rule.metric,
            condition,
            for_windows: rule.for_windows,
            hysteresis,
            resolve_windows: rule.resolve_windows,
            severity: rule.severity.as_str().to_string(),
            labels: rule.labels,
            annotations: rule.annotations,
            description: rule.description,
        }
    }
}

/// Checks that no two of a deployment's rules share a name (the name is
/// the alert's identity: its `alertname` label).
pub fn check_unique_names(rules: &[AlertRule]) -> Result<(), AlertRuleError> {
    let mut seen = std::collections::BTreeSet::new();
    for rule in rules {
        if !seen.insert(rule.name()) {
            return Err(AlertRuleError::DuplicateName {
                name: rule.name.clone(),
            });
        }
    }
    Ok(())
}

/// Where an alert stands, as in Prometheus.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(tag = "state", rename_all = "snake_case")]
pub enum AlertState {
    /// The condition does not hold.
    #[default]
    Inactive,
    /// The condition has held for `breaches` consecutive evaluations since
    /// `since_us`, fewer than the rule's `for_windows`.
    Pending { since_us: i64, breaches: u32 },
    /// Firing since `since_us`; the last `clears` evaluations (fewer than
    /// `resolve_windows`) were past the resolve level.
    Firing { since_us: i64, clears: u32 },
}

/// What the server keeps per rule between evaluations, and persists.
///
/// Start with `RuleState::default()`, and start again from it when the
/// rule's condition is edited (a changed `window_count` is applied to the
/// kept baseline without a reset).
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(default)]
pub struct RuleState {
    alert: AlertState,
    /// Last value present (missing values leave it).
    last_value: Option<f64>,
    last_value_us: Option<i64>,
    /// Previous finite values of a baseline rule that neither breached it
    /// nor came while it fired, oldest first, at most `window_count`.
    baseline: VecDeque<f64>,
}

impl RuleState {
    pub fn alert(&self) -> AlertState {
        self.alert
    }

    pub fn last_value(&self) -> Option<f64> {
        self.last_value
    }

    /// When [`RuleState::last_value`] was evaluated.
    pub fn last_value_us(&self) -> Option<i64> {
        self.last_value_us
    }

    /// The baseline's values, oldest first.
    pub fn baseline_values(&self) -> &VecDeque<f64> {
        &self.baseline
    }

    /// Mean and sample standard deviation of the baseline, once it holds
    /// at least two values.
    pub fn baseline_stats(&self) -> Option<(f64, f64)> {
        let mut moments = Moments::new();
        for &value in &self.baseline {
            moments.update(value);
        }
        Some((moments.mean()?, moments.std(1)?))
    }
}

/// An alert starting or stopping firing.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
#[serde(tag = "status", rename_all = "snake_case")]
pub enum Transition {
    /// Fired at `started_us` (the evaluation that fired, as Prometheus'
    /// `startsAt` is when the alert fired, not when it became pending).
    Firing { started_us: i64, value: f64 },
    /// Resolved at `ended_us`, with the value that resolved it.
    Resolved {
        started_us: i64,
        ended_us: i64,
        value: f64,
    },
}

/// What one value says about a rule.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Verdict {
    /// The rule cannot judge yet (a baseline with too few values).
    Unknown,
    /// The firing condition holds.
    Breach,
    /// Between the firing and the resolve levels (hysteresis).
    Band,
    /// Past the resolve level.
    Clear,
}

impl Threshold {
    fn verdict(&self, value: f64) -> Verdict {
        if self.op.holds(value, self.value) {
            return Verdict::Breach;
        }
        let cleared = match (self.op, self.resolve_at) {
            (_, None) => true,
            (ThresholdOp::Gt | ThresholdOp::Ge, Some(level)) => value < level,
            (ThresholdOp::Lt | ThresholdOp::Le, Some(level)) => value > level,
            // Validation refuses hysteresis on these.
            (ThresholdOp::Eq | ThresholdOp::Ne, Some(_)) => true,
        };
        if cleared {
            Verdict::Clear
        } else {
            Verdict::Band
        }
    }
}

impl Baseline {
    fn verdict(&self, history: &VecDeque<f64>, value: f64) -> Verdict {
        if history.len() < self.min_windows {
            return Verdict::Unknown;
        }
        let mut moments = Moments::new();
        for &previous in history {
            moments.update(previous);
        }
        let (Some(mean), Some(std)) = (moments.mean(), moments.std(1)) else {
            return Verdict::Unknown;
        };
        // Compared as distances rather than as z = (x − μ)/σ, which is 0/0
        // on a constant history.
        let reach = self.direction.reach(value - mean);
        if reach > self.k_sigma * std {
            Verdict::Breach
        } else if reach <= self.k_sigma * self.resolve_factor.unwrap_or(1.0) * std {
            Verdict::Clear
        } else {
            Verdict::Band
        }
    }
}

/// Evaluates `rule` on the metric's `value` at `now_us`, updating `state`;
/// returns the transition when the alert starts or stops firing.
///
/// Each call is one evaluation: `for_windows` and `resolve_windows` count
/// calls with a value, so the caller passes each window's value once.
/// `None` and NaN are missing and change nothing. ±∞ is a value (above
/// every threshold, or below) but never enters a baseline.
pub fn evaluate(
    rule: &AlertRule,
    state: &mut RuleState,
    now_us: i64,
    value: Option<f64>,
) -> Option<Transition> {
    let value = value.filter(|value| !value.is_nan())?;
    let verdict = match &rule.condition {
        Condition::Threshold(threshold) => threshold.verdict(value),
        Condition::Baseline(baseline) => {
            while state.baseline.len() > baseline.window_count {
                state.baseline.pop_front();
            }
            let verdict = baseline.verdict(&state.baseline, value);
            let firing = matches!(state.alert, AlertState::Firing { .. });
            if value.is_finite() && verdict != Verdict::Breach && !firing {
                if state.baseline.len() == baseline.window_count {
                    state.baseline.pop_front();
                }
                state.baseline.push_back(value);
            }
            verdict
        }
    };
    state.last_value = Some(value);
    state.last_value_us = Some(now_us);
    let (alert, transition) = step(rule, state.alert, verdict, now_us, value);
    state.alert = alert;
    transition
}

/// The state machine: Inactive → Pending → Firing → Inactive.
fn step(
    rule: &AlertRule,
    alert: AlertState,
    verdict: Verdict,
    now_us: i64,
    value: f64,
) -> (AlertState, Option<Transition>) {
    let fire_or_wait = |since_us: i64, breaches: u32| {
        if breaches >= rule.for_windows {
            let firing = AlertState::Firing {
                since_us: now_us,
                clears: 0,
            };
            let transition = Transition::Firing {
                started_us: now_us,
                value,
            };
            (firing, Some(transition))
        } else {
            (AlertState::Pending { since_us, breaches }, None)
        }
    };
    match (alert, verdict) {
        (_, Verdict::Unknown) => (alert, None),
        (AlertState::Inactive, Verdict::Breach) => fire_or_wait(now_us, 1),
        (AlertState::Pending { since_us, breaches }, Verdict::Breach) => {
            fire_or_wait(since_us, breaches.saturating_add(1))
        }
        (AlertState::Inactive | AlertState::Pending { .. }, Verdict::Band | Verdict::Clear) => {
            (AlertState::Inactive, None)
        }
        (AlertState::Firing { since_us, .. }, Verdict::Breach | Verdict::Band) => (
            AlertState::Firing {
                since_us,
                clears: 0,
            },
            None,
        ),
        (AlertState::Firing { since_us, clears }, Verdict::Clear) => {
            let clears = clears.saturating_add(1);
            if clears >= rule.resolve_windows {
                let transition = Transition::Resolved {
                    started_us: since_us,
                    // A clock stepped back must not end an alert before
                    // it started.
                    ended_us: now_us.max(since_us),
                    value,
                };
                (AlertState::Inactive, Some(transition))
            } else {
                (AlertState::Firing { since_us, clears }, None)
            }
        }
    }
}

/// An alert's status in Alertmanager's terms.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum AlertStatus {
    Firing,
    Resolved,
}

impl AlertStatus {
    pub fn as_str(self) -> &'static str {
        match self {
            AlertStatus::Firing => "firing",
            AlertStatus::Resolved => "resolved",
        }
    }
}

/// One alert to notify: a rule's transition on a deployment.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct AlertInstance {
    /// The rule's name.
    pub rule: String,
    /// The rule's labels plus `alertname`, `severity` and `deployment`.
    pub labels: BTreeMap<String, String>,
    /// The rule's annotations plus `description` (if the rule has one),
    /// `summary` (unless the rule sets one) and `value` (unless the rule
    /// sets one).
    pub annotations: BTreeMap<String, String>,
    pub status: AlertStatus,
    pub started_us: i64,
    /// `None` while firing.
    pub ended_us: Option<i64>,
    /// The value that fired or resolved the alert.
    pub value: f64,
    pub severity: Severity,
    /// Alertmanager's `generatorURL`: a link back to what raised the alert
    /// (the deployment's monitoring page); empty unless the caller sets it.
    pub generator_url: String,
}

impl AlertInstance {
    /// The alert `transition` of `rule` raises on `deployment`.
    pub fn new(rule: &AlertRule, transition: &Transition, deployment: &str) -> AlertInstance {
        let (status, started_us, ended_us, value) = match *transition {
            Transition::Firing { started_us, value } => {
                (AlertStatus::Firing, started_us, None, value)
            }
            Transition::Resolved {
                started_us,
                ended_us,
                value,
            } => (AlertStatus::Resolved, started_us, Some(ended_us), value),
        };
        let mut labels = rule.labels.clone();
        labels.insert("alertname".to_string(), rule.name.clone());
        labels.insert("severity".to_string(), rule.severity.as_str().to_string());
        labels.insert("deployment".to_string(), deployment.to_string());
        let mut annotations = rule.annotations.clone();
        if let Some(description) = &rule.description {
            annotations.insert("description".to_string(), description.clone());
        }
        annotations.entry("summary".to_string()).or_insert_with(|| {
            format!(
                "{} is {value} on {deployment} (alert when {})",
                rule.metric,
                rule.condition_text()
            )
        });
        annotations
            .entry("value".to_string())
            .or_insert_with(|| value.to_string());
        AlertInstance {
            rule: rule.name.clone(),
            labels,
            annotations,
            status,
            started_us,
            ended_us,
            value,
            severity: rule.severity,
            generator_url: String::new(),
        }
    }

    /// Alertmanager's fingerprint of the alert's labels.
    pub fn fingerprint(&self) -> String {
        fingerprint(&self.labels)
    }
}

/// Alertmanager's alert fingerprint: 16 lowercase hex digits of the 64-bit
/// FNV-1a hash of the labels sorted by name, each name and value followed
/// by the byte 0xff (`labelSetToFingerprint` in prometheus/common
/// `model/signature.go`, printed by `Fingerprint.String` as `%016x`).
/// It depends only on the set of labels, never on their order.
pub fn fingerprint(labels: &BTreeMap<String, String>) -> String {
    const OFFSET: u64 = 14_695_981_039_346_656_037;
    const PRIME: u64 = 1_099_511_628_211;
    const SEPARATOR: u8 = 0xff;
    let mut hash = OFFSET;
    let mut add = |byte: u8| {
        hash ^= u64::from(byte);
        hash = hash.wrapping_mul(PRIME);
    };
    // A BTreeMap iterates by name, in byte order like Go's sort.Strings.
    for (name, value) in labels {
        name.bytes().for_each(&mut add);
        add(SEPARATOR);
        value.bytes().for_each(&mut add);
        add(SEPARATOR);
    }
    format!("{hash:016x}")
}

/// The body of an Alertmanager webhook notification (format version 4)
/// for a group of alerts, as Alertmanager's webhook notifier would POST
/// it to `receiver`.
///
/// The fields are those of `Message` in prometheus/alertmanager
/// `notify/webhook/webhook.go` (`version` "4", `groupKey`,
/// `truncatedAlerts`) around the `Data` and `Alert` of
/// `template/template.go`, filled as `Template.Data` fills them:
///
/// - `receiver` is the name escaped with Go's `regexp.QuoteMeta`, as
///   Alertmanager sends it;
/// - `status` is `firing` if any alert fires, else `resolved`;
/// - `commonLabels`/`commonAnnotations` are the pairs every alert shares;
/// - `groupKey` is `{}:{name="value", ...}`: the root route's key and the
///   group labels (`aggrGroup.GroupKey` in `dispatch/dispatch.go`), values
///   quoted as Go's `%q` does;
/// - each alert's `startsAt`/`endsAt` are RFC 3339 in UTC with trailing
///   zeros of the fraction dropped (Go's `time.RFC3339Nano`); a firing
///   alert's `endsAt` is Go's zero time `0001-01-01T00:00:00Z`;
/// - `fingerprint` is [`fingerprint`] of its labels;
/// - `truncatedAlerts` is 0: every alert given is sent.
pub fn alertmanager_payload(
    receiver: &str,
    group_labels: &BTreeMap<String, String>,
    alerts: &[AlertInstance],
    external_url: &str,
) -> Value {
    let status = if alerts
        .iter()
        .any(|alert| alert.status == AlertStatus::Firing)
    {
        AlertStatus::Firing
    } else {
        AlertStatus::Resolved
    };
    let (common_labels, common_annotations) = match alerts.split_first() {
        None => (BTreeMap::new(), BTreeMap::new()),
        Some((first, rest)) => {
            let mut labels = first.labels.clone();
            let mut annotations = first.annotations.clone();
            for alert in rest {
                labels.retain(|name, value| alert.labels.get(name) == Some(value));
                annotations.retain(|name, value| alert.annotations.get(name) == Some(value));
            }
            (labels, annotations)
        }
    };
    let alerts: Vec<Value> = alerts
        .iter()
        .map(|alert| {
            let ends_at = match alert.ended_us {
                Some(ended_us) => rfc3339(ended_us),
                None => GO_ZERO_TIME.to_string(),
            };
            let mut object = Map::new();
            object.insert("status".into(), alert.status.as_str().into());
            object.insert("labels".into(), string_map(&alert.labels));
            object.insert("annotations".into(), string_map(&alert.annotations));
            object.insert("startsAt".into(), rfc3339(alert.started_us).into());
            object.insert("endsAt".into(), ends_at.into());
            object.insert("generatorURL".into(), alert.generator_url.clone().into());
            object.insert("fingerprint".into(), alert.fingerprint().into());
            Value::Object(object)
        })
        .collect();
    let mut payload = Map::new();
    payload.insert("receiver".into(), go_quote_meta(receiver).into());
    payload.insert("status".into(), status.as_str().into());
    payload.insert("alerts".into(), Value::Array(alerts));
    payload.insert("groupLabels".into(), string_map(group_labels));
    payload.insert("commonLabels".into(), string_map(&common_labels));
    payload.insert("commonAnnotations".into(), string_map(&common_annotations));
    payload.insert("externalURL".into(), external_url.into());
    payload.insert("version".into(), "4".into());
    payload.insert("groupKey".into(), group_key(group_labels).into());
    payload.insert("truncatedAlerts".into(), 0.into());
    Value::Object(payload)
}

fn string_map(map: &BTreeMap<String, String>) -> Value {
    Value::Object(
        map.iter()
            .map(|(name, value)| (name.clone(), Value::String(value.clone())))
            .collect(),
    )
}

/// `{}:{a="1", b="2"}`: the root route's key, then the group labels as
/// prometheus/common's `LabelSet.String` writes them.
fn group_key(group_labels: &BTreeMap<String, String>) -> String {
    let pairs: Vec<String> = group_labels
        .iter()
        .map(|(name, value)| format!("{name}={}", go_quote(value)))
        .collect();
    format!("{{}}:{{{}}}", pairs.join(", "))
}

/// Go's `strconv.Quote`. Printable characters are kept; Go's notion of
/// printable (Unicode letters, marks, numbers, punctuation, symbols and
/// the ASCII space) is approximated as "not a control character and not
/// whitespace other than the space".
fn go_quote(text: &str) -> String {
    let mut quoted = String::with_capacity(text.len() + 2);
    quoted.push('"');
    for c in text.chars() {
        match c {
            '"' => quoted.push_str("\\\""),
            '\\' => quoted.push_str("\\\\"),
            '\u{7}' => quoted.push_str("\\a"),
            '\u{8}' => quoted.push_str("\\b"),
            '\u{c}' => quoted.push_str("\\f"),
            '\n' => quoted.push_str("\\n"),
            '\r' => quoted.push_str("\\r"),
            '\t' => quoted.push_str("\\t"),
            '\u{b}' => quoted.push_str("\\v"),
            c if c < ' ' || c == '\u{7f}' => quoted.push_str(&format!("\\x{:02x}", u32::from(c))),
            c if c.is_control() || (c.is_whitespace() && c != ' ') => {
                if u32::from(c) < 0x1_0000 {
                    quoted.push_str(&format!("\\u{:04x}", u32::from(c)));
                } else {
                    quoted.push_str(&format!("\\U{:08x}", u32::from(c)));
                }
            }
            c => quoted.push(c),
        }
    }
    quoted.push('"');
    quoted
}

/// Go's `regexp.QuoteMeta`: a backslash before each of `\.+*?()|[]{}^$`.
fn go_quote_meta(text: &str) -> String {
    let mut quoted = String::with_capacity(text.len());
    for c in text.chars() {
        if r"\.+*?()|[]{}^$".contains(c) {
            quoted.push('\\');
        }
        quoted.push(c);
    }
    quoted
}

const MICROS_PER_DAY: i64 = 86_400_000_000;

/// RFC 3339 in UTC of a time in µs since the epoch, as Go's
/// `time.RFC3339Nano` writes it: `2024-02-29T13:08:45.8281Z`, the fraction
/// without trailing zeros and left out when zero.
fn rfc3339(time_us: i64) -> String {
    let (year, month, day) = civil_from_days(time_us.div_euclid(MICROS_PER_DAY));
    let micros_of_day = time_us.rem_euclid(MICROS_PER_DAY);
    let seconds = micros_of_day / 1_000_000;
    let micros = micros_of_day % 1_000_000;
    let mut text = format!(
        "{year:04}-{month:02}-{day:02}T{:02}:{:02}:{:02}",
        seconds / 3600,
        seconds / 60 % 60,
        seconds % 60
    );
    if micros != 0 {
        let fraction = format!("{micros:06}");
        text.push('.');
        text.push_str(fraction.trim_end_matches('0'));
    }
    text.push('Z');
    text
}

/// (year, month, day) of a day count since 1970-01-01, by Howard Hinnant's
/// `civil_from_days` ("chrono-Compatible Low-Level Date Algorithms").
fn civil_from_days(days: i64) -> (i64, i64, i64) {
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z - era * 146_097;
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let day = doy - (153 * mp + 2) / 5 + 1;
    let month = if mp < 10 { mp + 3 } else { mp - 9 };
    let year = yoe + era * 400 + i64::from(month <= 2);
    (year, month, day)
}
