//! Mergeable sketches for live drift monitoring.
//!
//! A serving process updates one sketch per column per request, so every
//! `update` is a few tens of nanoseconds and allocation-free once warm.
//! Sketches of 5-minute windows are persisted (all derive serde) and rolled
//! up to hours and days by `merge`, and drift is computed from a merged
//! sketch against a reference. Each sketch's module states its algorithm,
//! source and error bound:
//!
//! - [`Moments`]: count, missing, min, max, mean, variance, skewness,
//!   kurtosis — Welford updates, Chan–Golub–LeVeque/Pébay merges; exact up
//!   to rounding.
//! - [`KllSketch`]: quantiles, ranks and CDFs with rank error ≈ 1.3% at
//!   k = 200 (Karnin, Lang & Liberty 2016).
//! - [`ReferenceBins`] / [`Histogram`] / [`BinnedHistogram`]: exact counts
//!   in bins fixed by a reference's quantiles, for PSI/JS.
//! - [`CategoryCounts`]: exact counts over a reference vocabulary plus an
//!   unseen bucket.
//! - [`FrequentItems`]: SpaceSaving heavy hitters with guaranteed bounds.
//! - [`HyperLogLog`]: distinct counts, 1.6% standard error at p = 12.
//! - [`ColumnSketch`]: the per-column bundle of the above.

mod categories;
mod column;
mod frequent;
pub mod hash;
mod histogram;
mod hll;
mod kll;
mod moments;

use std::fmt;

pub use categories::{CategoryCounts, CategoryVocabulary, DEFAULT_UNSEEN_CAPACITY};
pub use column::{CategoricalSketch, ColumnSketch, NumericSketch, DEFAULT_FREQUENT_CAPACITY};
pub use frequent::{FrequentItems, ItemEstimate};
pub use histogram::{BinnedHistogram, Histogram, ReferenceBins, DEFAULT_BIN_COUNT};
pub use hll::{HyperLogLog, DEFAULT_HLL_PRECISION, MAX_HLL_PRECISION, MIN_HLL_PRECISION};
pub use kll::{
    normalized_pmf_error, normalized_rank_error, KllSketch, KllSortedView, DEFAULT_KLL_K, MIN_KLL_K,
};
pub use moments::Moments;

/// Why two sketches cannot be merged. A failed merge leaves the target
/// unchanged.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum MergeError {
    /// Histograms over different bin edges (or one side has none).
    BinsDiffer,
    /// Category counts over different reference vocabularies (or one side
    /// has none).
    VocabulariesDiffer,
    /// HyperLogLogs of different precision.
    PrecisionsDiffer { left: u8, right: u8 },
    /// A numeric column sketch merged with a categorical one.
    ColumnKindsDiffer,
}

impl fmt::Display for MergeError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            MergeError::BinsDiffer => f.write_str("histograms have different bins"),
            MergeError::VocabulariesDiffer => {
                f.write_str("category counts have different reference vocabularies")
            }
            MergeError::PrecisionsDiffer { left, right } => {
                write!(f, "HyperLogLog precisions differ: {left} and {right}")
            }
            MergeError::ColumnKindsDiffer => {
                f.write_str("cannot merge a numeric column sketch with a categorical one")
            }
        }
    }
}

impl std::error::Error for MergeError {}
