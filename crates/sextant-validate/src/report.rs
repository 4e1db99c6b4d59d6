//! What a validation found: per test, assertions that passed, failed, were
//! skipped or could not run; the gate decision per promotion target; and
//! the report as JSON, JUnit XML (what every CI shows) or a self-contained
//! HTML page.

use serde::{Deserialize, Serialize};
use serde_json::Value;

use crate::spec::{GateRule, Require, Severity};

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Verdict {
    Passed,
    Failed,
    /// Allowed only for comparisons with a baseline that does not exist.
    Skipped,
    /// The check could not run (unreadable data, a model error).
    Error,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Assertion {
    /// `<test id>[<slice>]/<what>`, what gate rules select with globs.
    pub id: String,
    pub severity: Severity,
    pub verdict: Verdict,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub value: Option<f64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub threshold: Option<String>,
    /// The bootstrap interval the verdict used, when it used one.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub interval: Option<[f64; 2]>,
    pub message: String,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct TestResult {
    pub id: String,
    pub kind: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub dataset: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub rows: Option<usize>,
    pub seconds: f64,
    pub assertions: Vec<Assertion>,
    /// Per-slice or per-group tables, sampled failing rows, expectation
    /// outcomes.
    #[serde(skip_serializing_if = "Value::is_null", default)]
    pub details: Value,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct DatasetRecord {
    pub name: String,
    pub source: String,
    /// SHA-256 of the file read (or of the spec's rows, or the generator).
    pub sha256: String,
    pub rows: usize,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Status {
    Passed,
    Failed,
    Error,
}

impl Status {
    pub fn as_str(self) -> &'static str {
        match self {
            Status::Passed => "passed",
            Status::Failed => "failed",
            Status::Error => "error",
        }
    }

    /// `sextant validate`'s exit code: 0 passed, 1 failed, 2 could not run.
    pub fn exit_code(self) -> i32 {
        match self {
            Status::Passed => 0,
            Status::Failed => 1,
            Status::Error => 2,
        }
    }
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct GateDecision {
    pub to: String,
    pub allowed: bool,
    pub blocking: Vec<String>,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Report {
    pub status: Status,
    pub model: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub baseline: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub baseline_note: Option<String>,
    pub spec_sha256: String,
    pub datasets: Vec<DatasetRecord>,
    pub tests: Vec<TestResult>,
    /// Blocking assertions that failed or could not run.
    pub failed_checks: Vec<String>,
    pub gates: Vec<GateDecision>,
    /// The spec's gate rules, so a stored report decides any target.
    pub gate_rules: Vec<GateRule>,
    pub seconds: f64,
}

/// `*` matches any run of characters; everything else itself.
pub fn glob_matches(pattern: &str, text: &str) -> bool {
    let parts: Vec<&str> = pattern.split('*').collect();
    if parts.len() == 1 {
        return pattern == text;
    }
    let mut rest = text;
    for (i, part) in parts.iter().enumerate() {
        if i == 0 {
            match rest.strip_prefix(part) {
                Some(r) => rest = r,
                None => return false,
            }
        } else if i == parts.len() - 1 {
            return rest.ends_with(part);
        } else {
            match rest.find(part) {
                Some(at) => rest = &rest[at + part.len()..],
                None => return false,
            }
        }
    }
    true
}

/// Whether a gate rule's `to` names `target` (`@champion` or `champion`
/// for an alias; a stage by name, any case; `deployment`).
fn rule_names(rule: &str, target: &str) -> bool {
    let rule = rule.trim().trim_start_matches('@');
    let target = target.trim().trim_start_matches('@');
    rule.eq_ignore_ascii_case(target)
}

impl Report {
    pub fn assertions(&self) -> impl Iterator<Item = &Assertion> {
        self.tests.iter().flat_map(|t| t.assertions.iter())
    }

    /// The assertions that stop a move to `target`: failed or errored,
    /// at the rule's severity or above, not excluded. Without a rule for
    /// the target every blocking assertion counts.
    pub fn blocking_for(&self, target: &str) -> Vec<String> {
        let default = Require::default();
        let require = self
            .gate_rules
            .iter()
            .find(|rule| rule_names(&rule.to, target))
            .map_or(&default, |rule| &rule.require);
        self.assertions()
            .filter(|a| matches!(a.verdict, Verdict::Failed | Verdict::Error))
            .filter(|a| a.severity >= require.severity)
            .filter(|a| !require.exclude.iter().any(|p| glob_matches(p, &a.id)))
            .map(|a| a.id.clone())
            .collect()
    }

    /// Fills `status`, `failed_checks` and `gates` from the assertions.
    pub fn decide(&mut self) {
        self.failed_checks = self
            .assertions()
            .filter(|a| a.severity == Severity::Blocking)
            .filter(|a| matches!(a.verdict, Verdict::Failed | Verdict::Error))
            .map(|a| a.id.clone())
            .collect();
        let errored = self.assertions().any(|a| a.verdict == Verdict::Error);
        self.status = if errored {
            Status::Error
        } else if self.failed_checks.is_empty() {
            Status::Passed
        } else {
            Status::Failed
        };
        self.gates = self
            .gate_rules
            .iter()
            .map(|rule| {
                let blocking = self.blocking_for(&rule.to);
                GateDecision {
                    to: rule.to.clone(),
                    allowed: blocking.is_empty(),
                    blocking,
                }
            })
            .collect();
    }

    /// One line per blocking failure, for error messages and terminals.
    pub fn describe(&self, ids: &[String]) -> String {
        let mut lines = Vec::new();
        for a in self.assertions().filter(|a| ids.contains(&a.id)) {
            lines.push(format!("{} ({})", a.id, a.message));
        }
        lines.join("; ")
    }

    pub fn to_junit(&self) -> String {
        let mut out = String::from("<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n");
        let total: usize = self.tests.iter().map(|t| t.assertions.len()).sum();
        let failures = self
            .assertions()
            .filter(|a| a.verdict == Verdict::Failed)
            .count();
        let errors = self
            .assertions()
            .filter(|a| a.verdict == Verdict::Error)
            .count();
        let skipped = self
            .assertions()
            .filter(|a| a.verdict == Verdict::Skipped)
            .count();
        out.push_str(&format!(
            "<testsuites name=\"sextant validate\" tests=\"{total}\" failures=\"{failures}\" errors=\"{errors}\" skipped=\"{skipped}\" time=\"{:.3}\">\n",
            self.seconds
        ));
        for test in &self.tests {
            let f = test
                .assertions
                .iter()
                .filter(|a| a.verdict == Verdict::Failed)
                .count();
            let e = test
                .assertions
                .iter()
                .filter(|a| a.verdict == Verdict::Error)
                .count();
            let s = test
                .assertions
                .iter()
                .filter(|a| a.verdict == Verdict::Skipped)
                .count();
            out.push_str(&format!(
                "  <testsuite name=\"{}\" tests=\"{}\" failures=\"{f}\" errors=\"{e}\" skipped=\"{s}\" time=\"{:.3}\">\n",
                xml(&test.id),
                test.assertions.len(),
                test.seconds
            ));
            for a in &test.assertions {
                out.push_str(&format!(
                    "    <testcase classname=\"{}\" name=\"{}\">",
                    xml(&format!("{}.{}", test.kind, test.id)),
                    xml(&a.id)
                ));
                let severity = match a.severity {
                    Severity::Blocking => "blocking",
                    Severity::Warning => "warning",
                };
                match a.verdict {
                    Verdict::Passed => {}
                    Verdict::Failed => out.push_str(&format!(
                        "<failure type=\"{severity}\" message=\"{}\"/>",
                        xml(&a.message)
                    )),
                    Verdict::Error => {
                        out.push_str(&format!("<error message=\"{}\"/>", xml(&a.message)))
                    }
                    Verdict::Skipped => {
                        out.push_str(&format!("<skipped message=\"{}\"/>", xml(&a.message)))
                    }
                }
                out.push_str("</testcase>\n");
            }
            out.push_str("  </testsuite>\n");
        }
        out.push_str("</testsuites>\n");
        out
    }

    pub fn to_html(&self) -> String {
        crate::html::render(self)
    }
}

pub(crate) fn xml(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for c in text.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&apos;"),
            c if (c as u32) < 0x20 && !matches!(c, '\n' | '\t' | '\r') => {}
            c => out.push(c),
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::glob_matches;

    #[test]
    fn globs() {
        assert!(glob_matches("*/vs_baseline", "perf.auc/vs_baseline"));
        assert!(glob_matches(
            "slice.*[unknown]*",
            "slice.location[unknown]/min"
        ));
        assert!(!glob_matches("*/vs_baseline", "perf.auc/min"));
        assert!(glob_matches("perf.auc/min", "perf.auc/min"));
        assert!(glob_matches("*", "anything"));
    }
}
