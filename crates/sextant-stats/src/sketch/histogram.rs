//! Fixed-bin histograms over edges taken from a reference sample.
//!
//! PSI and Jensen–Shannon on the live path compare the share of live values
//! in each bin with the reference's share in the same bins. Taking the
//! interior edges at the reference's quantiles (deciles by default, the
//! usual PSI construction, e.g. Siddiqi 2006, "Credit Risk Scorecards",
//! ch. 8) gives every bin about the same reference mass, so no reference
//! bin is empty on continuous data. The outer bins are open-ended so live
//! values beyond the reference's range land in the extreme bins instead of
//! being dropped, and NaN has its own count.
//!
//! Counting is exact, so merging two windows is element-wise addition and
//! `merge(h(A), h(B)) == h(A ∪ B)` exactly.

use serde::{Deserialize, Serialize};

use super::MergeError;

/// Default number of bins: deciles.
pub const DEFAULT_BIN_COUNT: usize = 10;

/// Interior bin edges; bin `i` is `(edges[i−1], edges[i]]`, with
/// `edges[−1] = −∞` and `edges[len] = +∞`, so there are `edges.len() + 1`
/// bins. Right-closed, so on discrete data an edge at a value puts that
/// value in the bin it closes (pandas `cut(right=True)` convention).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(try_from = "Vec<f64>", into = "Vec<f64>")]
pub struct ReferenceBins {
    edges: Vec<f64>,
}

impl ReferenceBins {
    /// Edges at the `i / n_bins` quantiles (`i = 1 … n_bins − 1`) of the
    /// finite reference values, by the inverted-CDF definition (the smallest
    /// value whose empirical CDF reaches `i / n_bins`, numpy's
    /// `method="inverted_cdf"`). Edges are therefore reference values, and
    /// equal edges — discrete or heavily tied data — are collapsed, so a
    /// value with a large share gets one bin rather than several empty ones:
    /// fewer than `n_bins` bins may result. With no finite values, a single
    /// bin. `n_bins` is treated as at least 1.
    pub fn from_reference(values: &[f64], n_bins: usize) -> Self {
        let mut sorted: Vec<f64> = values.iter().copied().filter(|v| v.is_finite()).collect();
        sorted.sort_unstable_by(f64::total_cmp);
        let n_bins = n_bins.max(1);
        let n = sorted.len();
        let mut edges: Vec<f64> = Vec::with_capacity(n_bins.saturating_sub(1));
        if n > 0 {
            for i in 1..n_bins {
                // Smallest index j with (j + 1) / n ≥ i / n_bins, in integers.
                let index = (i * n).div_ceil(n_bins) - 1;
                let edge = sorted[index];
                if edges.last() != Some(&edge) {
                    edges.push(edge);
                }
            }
        }
        Self { edges }
    }

    /// Decile bins ([`DEFAULT_BIN_COUNT`]).
    pub fn deciles(values: &[f64]) -> Self {
        Self::from_reference(values, DEFAULT_BIN_COUNT)
    }

    /// Bins from explicit interior edges, e.g. loaded from a stored
    /// reference profile. Edges must be finite and strictly increasing.
    pub fn from_edges(edges: Vec<f64>) -> Result<Self, String> {
        if let Some(bad) = edges.iter().find(|e| !e.is_finite()) {
            return Err(format!("bin edge {bad} is not finite"));
        }
        if let Some(pair) = edges.windows(2).find(|pair| pair[0] >= pair[1]) {
            return Err(format!(
                "bin edges must increase strictly: {} then {}",
                pair[0], pair[1]
            ));
        }
        Ok(Self { edges })
    }

    /// The interior edges.
    pub fn edges(&self) -> &[f64] {
        &self.edges
    }

    /// Number of bins, `edges.len() + 1`.
    pub fn bin_count(&self) -> usize {
        self.edges.len() + 1
    }

    /// Bin of `x` by binary search: the number of edges strictly below it.
    /// ±∞ land in the outer bins. `None` for NaN, which has no bin.
    #[inline]
    pub fn index(&self, x: f64) -> Option<usize> {
        if x.is_nan() {
            return None;
        }
        Some(self.edges.partition_point(|&edge| edge < x))
    }
}

impl TryFrom<Vec<f64>> for ReferenceBins {
    type Error = String;

    fn try_from(edges: Vec<f64>) -> Result<Self, String> {
        Self::from_edges(edges)
    }
}

impl From<ReferenceBins> for Vec<f64> {
    fn from(bins: ReferenceBins) -> Self {
        bins.edges
    }
}

/// Counts per bin of some [`ReferenceBins`], plus NaN. The bins are not
/// stored here; [`BinnedHistogram`] pairs the two.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Histogram {
    pub counts: Vec<u64>,
    pub nan: u64,
}

impl Histogram {
    /// Zero counts for `bin_count` bins.
    pub fn new(bin_count: usize) -> Self {
        Self {
            counts: vec![0; bin_count],
            nan: 0,
        }
    }

    /// Zero counts for the bins of `bins`.
    pub fn for_bins(bins: &ReferenceBins) -> Self {
        Self::new(bins.bin_count())
    }

    /// Counts `x` in its bin of `bins` (which must be the bins this
    /// histogram was created for), or as NaN. No allocation.
    #[inline]
    pub fn update(&mut self, bins: &ReferenceBins, x: f64) {
        match bins.index(x) {
            Some(bin) => self.counts[bin] += 1,
            None => self.nan += 1,
        }
    }

    /// Element-wise sum; exact.
    pub fn merge(&mut self, other: &Histogram) -> Result<(), MergeError> {
        if self.counts.len() != other.counts.len() {
            return Err(MergeError::BinsDiffer);
        }
        for (count, other_count) in self.counts.iter_mut().zip(&other.counts) {
            *count += other_count;
        }
        self.nan += other.nan;
        Ok(())
    }

    /// Values counted in bins (NaN excluded).
    pub fn binned_total(&self) -> u64 {
        self.counts.iter().sum()
    }

    /// Every value counted, NaN included.
    pub fn total(&self) -> u64 {
        self.binned_total() + self.nan
    }

    /// Share of the non-NaN values in each bin; all zeros when there are
    /// none (the divergence functions decide how to treat empty inputs).
    /// NaN is monitored as a missing rate, not as a bin.
    pub fn shares(&self) -> Vec<f64> {
        shares_of(&self.counts, self.binned_total())
    }

    /// Shares over the bins followed by NaN as a last bucket, for drift
    /// measures that should also react to a change in the missing rate.
    pub fn shares_with_nan(&self) -> Vec<f64> {
        let mut buckets = self.counts.clone();
        buckets.push(self.nan);
        shares_of(&buckets, self.total())
    }
}

pub(super) fn shares_of(counts: &[u64], total: u64) -> Vec<f64> {
    if total == 0 {
        return vec![0.0; counts.len()];
    }
    let total = total as f64;
    counts.iter().map(|&count| count as f64 / total).collect()
}

/// A [`Histogram`] together with its [`ReferenceBins`], so it can be
/// updated on its own and refuses to merge with counts over other edges.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct BinnedHistogram {
    bins: ReferenceBins,
    histogram: Histogram,
}

impl BinnedHistogram {
    pub fn new(bins: ReferenceBins) -> Self {
        let histogram = Histogram::for_bins(&bins);
        Self { bins, histogram }
    }

    #[inline]
    pub fn update(&mut self, x: f64) {
        self.histogram.update(&self.bins, x);
    }

    /// Exact merge; fails when the edges differ.
    pub fn merge(&mut self, other: &BinnedHistogram) -> Result<(), MergeError> {
        if self.bins != other.bins {
            return Err(MergeError::BinsDiffer);
        }
        self.histogram.merge(&other.histogram)
    }

    pub fn bins(&self) -> &ReferenceBins {
        &self.bins
    }

    pub fn histogram(&self) -> &Histogram {
        &self.histogram
    }

    pub fn shares(&self) -> Vec<f64> {
        self.histogram.shares()
    }
}
