//! Model validation: a declarative spec ([`Spec`]) of what a model version
//! must satisfy, run against a loaded model on tables ([`run`]), giving a
//! [`Report`] with a verdict per assertion, the gate decision per
//! promotion target, and JSON, JUnit XML and HTML renderings.
//!
//! Pure and synchronous: the caller resolves datasets to local files and
//! loads the models; the crate reads only the files it is given.

pub mod expectations;
mod fairness;
mod filter;
mod frame;
mod html;
mod metrics;
mod report;
mod rng;
mod runner;
mod segments;
mod spec;
mod yaml;

pub use crate::report::{
    glob_matches, Assertion, DatasetRecord, GateDecision, Report, Status, TestResult, Verdict,
};
pub use crate::runner::{run, Run, Subject};
pub use crate::spec::{DatasetSource, Severity, Spec, SpecError, TaskKind};

/// The file, next to a model's `MLmodel`, holding a spec logged with the
/// model: the server validates a version against it when the registered
/// model has no spec attached, and `sextant validate` reads it without `--spec`.
pub const LOGGED_SPEC_FILE: &str = "sextant-validation.yaml";

/// Lower-case hex SHA-256 of `bytes`.
pub fn sha256_hex(bytes: &[u8]) -> String {
    use sha2::Digest;
    let digest = sha2::Sha256::digest(bytes);
    digest.iter().map(|b| format!("{b:02x}")).collect()
}

/// Bytes of every file under `dir` (a model's size, for size budgets).
pub fn directory_size(dir: &std::path::Path) -> u64 {
    let mut total = 0;
    let mut stack = vec![dir.to_path_buf()];
    while let Some(next) = stack.pop() {
        let Ok(entries) = std::fs::read_dir(&next) else {
            continue;
        };
        for entry in entries.flatten() {
            match entry.metadata() {
                Ok(m) if m.is_dir() => stack.push(entry.path()),
                Ok(m) => total += m.len(),
                Err(_) => {}
            }
        }
    }
    total
}
