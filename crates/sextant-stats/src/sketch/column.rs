//! Everything the drift monitor keeps per column and time window, merged
//! as one unit when windows are rolled up.

use serde::{Deserialize, Serialize};

use super::categories::CategoryCounts;
use super::frequent::FrequentItems;
use super::histogram::{BinnedHistogram, ReferenceBins};
use super::hll::HyperLogLog;
use super::kll::KllSketch;
use super::moments::Moments;
use super::MergeError;

/// Default number of frequent values tracked for a categorical column.
pub const DEFAULT_FREQUENT_CAPACITY: usize = 64;

/// Sketches of a numeric column: moments (mean/std/missing rate), a KLL
/// quantile sketch (quantiles, KS-style distances, re-binning) and, when a
/// reference profile exists, counts in the reference's bins (PSI/JS).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct NumericSketch {
    pub moments: Moments,
    pub quantiles: KllSketch,
    pub histogram: Option<BinnedHistogram>,
}

impl NumericSketch {
    /// `kll_k`: see [`KllSketch::new`]; `bins`: the reference's bins, if any.
    pub fn new(kll_k: u16, bins: Option<ReferenceBins>) -> Self {
        Self {
            moments: Moments::new(),
            quantiles: KllSketch::new(kll_k),
            histogram: bins.map(BinnedHistogram::new),
        }
    }

    /// Adds one value to every sketch (each handles NaN/±∞ its own way).
    #[inline]
    pub fn update(&mut self, x: f64) {
        self.moments.update(x);
        self.quantiles.update(x);
        if let Some(histogram) = &mut self.histogram {
            histogram.update(x);
        }
    }

    /// Merges all parts, or none: fails without changes when only one side
    /// has a histogram or their bins differ.
    pub fn merge(&mut self, other: &NumericSketch) -> Result<(), MergeError> {
        match (&mut self.histogram, &other.histogram) {
            (Some(mine), Some(theirs)) => mine.merge(theirs)?,
            (None, None) => {}
            _ => return Err(MergeError::BinsDiffer),
        }
        self.moments.merge(&other.moments);
        self.quantiles.merge(&other.quantiles);
        Ok(())
    }
}

/// Sketches of a categorical column: missing count, frequent values with
/// bounds, distinct count and, when a reference vocabulary exists, exact
/// counts per reference category.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct CategoricalSketch {
    /// Values seen, missing included.
    pub total: u64,
    pub missing: u64,
    pub frequent: FrequentItems,
    pub distinct: HyperLogLog,
    pub reference_counts: Option<CategoryCounts>,
}

impl CategoricalSketch {
    pub fn new(
        frequent_capacity: usize,
        hll_precision: u8,
        reference_counts: Option<CategoryCounts>,
    ) -> Self {
        Self {
            total: 0,
            missing: 0,
            frequent: FrequentItems::new(frequent_capacity),
            distinct: HyperLogLog::new(hll_precision),
            reference_counts,
        }
    }

    /// Adds one value; `None` is missing.
    #[inline]
    pub fn update(&mut self, value: Option<&str>) {
        self.total += 1;
        match value {
            Some(value) => {
                self.frequent.update(value);
                self.distinct.insert_str(value);
            }
            None => self.missing += 1,
        }
        if let Some(counts) = &mut self.reference_counts {
            counts.update_option(value);
        }
    }

    /// Merges all parts, or none: fails without changes when the HLL
    /// precisions or the reference vocabularies differ.
    pub fn merge(&mut self, other: &CategoricalSketch) -> Result<(), MergeError> {
        if self.distinct.precision() != other.distinct.precision() {
            return Err(MergeError::PrecisionsDiffer {
                left: self.distinct.precision(),
                right: other.distinct.precision(),
            });
        }
        match (&self.reference_counts, &other.reference_counts) {
            (Some(mine), Some(theirs)) if mine.vocabulary() != theirs.vocabulary() => {
                return Err(MergeError::VocabulariesDiffer)
            }
            (Some(_), None) | (None, Some(_)) => return Err(MergeError::VocabulariesDiffer),
            _ => {}
        }
        if let (Some(mine), Some(theirs)) = (&mut self.reference_counts, &other.reference_counts) {
            mine.merge(theirs)?;
        }
        self.distinct.merge(&other.distinct)?;
        self.frequent.merge(&other.frequent);
        self.total += other.total;
        self.missing += other.missing;
        Ok(())
    }
}

/// The sketch of one column, numeric or categorical.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum ColumnSketch {
    Numeric(NumericSketch),
    Categorical(CategoricalSketch),
}

impl ColumnSketch {
    /// Merges two sketches of the same kind and configuration; all or nothing.
    pub fn merge(&mut self, other: &ColumnSketch) -> Result<(), MergeError> {
        match (self, other) {
            (ColumnSketch::Numeric(mine), ColumnSketch::Numeric(theirs)) => mine.merge(theirs),
            (ColumnSketch::Categorical(mine), ColumnSketch::Categorical(theirs)) => {
                mine.merge(theirs)
            }
            _ => Err(MergeError::ColumnKindsDiffer),
        }
    }
}
