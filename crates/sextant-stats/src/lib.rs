//! Statistics for drift detection and monitoring.
//!
//! Pure, synchronous and free of I/O: every function takes slices or
//! counts and returns numbers, so the batch reports (`sextant-monitor`)
//! and the live path (the serving process) share one implementation.
//! Each function names the formula it computes and where it comes from;
//! where a peer's exact numbers matter (scipy, Evidently) the function says
//! which of its code paths it reproduces.

pub mod anderson;
pub mod cbpe;
pub mod change;
pub mod contingency;
pub mod correction;
pub mod cvm;
pub mod divergence;
pub mod dle;
pub mod gbdt;
pub mod ks;
pub mod normality;
pub mod performance;
pub mod sketch;
pub mod sort;
pub mod special;
pub mod wasserstein;

/// A test statistic and its p-value.
#[derive(Debug, Clone, Copy, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct TestResult {
    pub statistic: f64,
    pub p_value: f64,
}

/// A file of this crate's source tree, for tests reading golden values.
/// The directory comes from the environment `cargo test` runs them in,
/// falling back to the one they were compiled in: a test binary reused
/// from a target directory shared by another checkout must still read this
/// checkout's files.
#[cfg(test)]
pub(crate) fn source_file(relative: &str) -> std::path::PathBuf {
    std::env::var_os("CARGO_MANIFEST_DIR")
        .map(std::path::PathBuf::from)
        .unwrap_or_else(|| env!("CARGO_MANIFEST_DIR").into())
        .join(relative)
}
