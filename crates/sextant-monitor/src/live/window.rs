//! One window's mergeable summary: per feature the counts in the
//! reference's buckets, the missing count and (numbers) a shifted sum for
//! the mean; per window the request, row and outlier counts. Every part
//! merges by addition, so an hour is exactly the sum of its twelve 5-minute
//! windows.

use serde::{Deserialize, Serialize};
use sextant_stats::sketch::Histogram;

use super::profile::{FeatureProfile, ReferenceProfile};
use super::FeatureColumn;

/// Count and sum of `x − shift` over the finite values, for the window's
/// mean `shift + Σ(x − shift) / n`, with the shift fixed at the reference's
/// mean for every window of a monitor so windows merge by adding. Summing
/// deviations from a nearby shift rather than raw values keeps the sum
/// small and exact to more digits ("shifted data", Chan, Golub & LeVeque
/// 1983, "Algorithms for computing the sample variance", §3).
///
/// [`sextant_stats::sketch::Moments`] (Welford, up to the fourth moment)
/// merges as well, but its update divides and carries four moments:
/// measured at about a quarter of the whole per-request cost for 20
/// features, for figures the report does not show.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub(crate) struct ShiftedSums {
    shift: f64,
    count: u64,
    sum: f64,
}

impl ShiftedSums {
    fn new(shift: f64) -> ShiftedSums {
        ShiftedSums {
            shift,
            count: 0,
            sum: 0.0,
        }
    }

    #[inline]
    fn update(&mut self, value: f64) {
        if value.is_finite() {
            self.count += 1;
            self.sum += value - self.shift;
        }
    }

    fn merge(&mut self, other: &ShiftedSums) {
        debug_assert_eq!(
            self.shift.to_bits(),
            other.shift.to_bits(),
            "one monitor, one shift"
        );
        self.count += other.count;
        self.sum += other.sum;
    }

    pub fn mean(&self) -> Option<f64> {
        (self.count > 0).then(|| self.shift + self.sum / self.count as f64)
    }
}

/// One feature in one window.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub(crate) struct FeatureSketch {
    /// Counts per drift bucket of the feature's profile; `nan` counts
    /// missing values (NaN, null, absent, unparseable text).
    pub buckets: Histogram,
    /// Finite values' count and mean (numerical features only).
    pub moments: Option<ShiftedSums>,
}

impl FeatureSketch {
    fn for_profile(profile: &FeatureProfile) -> FeatureSketch {
        FeatureSketch {
            buckets: Histogram::new(profile.bucket_count()),
            moments: profile
                .numeric()
                .map(|_| ShiftedSums::new(profile.mean().unwrap_or(0.0))),
        }
    }

    fn reset(&mut self) {
        self.buckets.counts.iter_mut().for_each(|count| *count = 0);
        self.buckets.nan = 0;
        if let Some(moments) = self.moments.as_mut() {
            *moments = ShiftedSums::new(moments.shift);
        }
    }

    fn merge(&mut self, other: &FeatureSketch) {
        let merged = self.buckets.merge(&other.buckets);
        debug_assert!(
            merged.is_ok(),
            "windows of one profile have the same buckets"
        );
        if let (Some(moments), Some(other)) = (self.moments.as_mut(), other.moments.as_ref()) {
            moments.merge(other);
        }
    }

    /// Values present (not missing).
    pub fn count(&self) -> u64 {
        self.buckets.binned_total()
    }

    /// Counts one value of a numerical or categorical feature.
    #[inline]
    fn record_number(&mut self, profile: &FeatureProfile, value: f64) {
        if value.is_nan() {
            self.buckets.nan += 1;
        } else if let Some(numeric) = profile.numeric() {
            self.buckets.counts[bin_of(numeric.bins.edges(), value)] += 1;
            if let Some(moments) = self.moments.as_mut() {
                moments.update(value);
            }
        } else if let Some(categorical) = profile.categorical_reference() {
            self.buckets.counts[categorical.bucket_of_number(value)] += 1;
        }
    }

    /// Counts one text value; `None` is missing.
    #[inline]
    fn record_text(&mut self, profile: &FeatureProfile, text: Option<&str>) {
        let Some(text) = text else {
            self.buckets.nan += 1;
            return;
        };
        if let Some(categorical) = profile.categorical_reference() {
            self.buckets.counts[categorical.bucket_of_text(text)] += 1;
        } else {
            // Text in a numerical feature: its number, or missing.
            let value = text.trim().parse::<f64>().unwrap_or(f64::NAN);
            self.record_number(profile, value);
        }
    }

    fn record_missing(&mut self, rows: usize) {
        self.buckets.nan += rows as u64;
    }

    /// Counts a request's column of this feature.
    #[inline]
    pub fn record_column(
        &mut self,
        profile: &FeatureProfile,
        column: FeatureColumn<'_>,
        rows: usize,
    ) {
        match column {
            FeatureColumn::Numeric(values) => {
                for &value in values {
                    self.record_number(profile, value);
                }
            }
            FeatureColumn::Text(values) => {
                for &text in values {
                    self.record_text(profile, text);
                }
            }
            FeatureColumn::Absent => self.record_missing(rows),
        }
    }

    /// Counts a request's predicted classes.
    pub fn record_classes(&mut self, profile: &FeatureProfile, classes: &[&str]) {
        for &class in classes {
            self.record_text(profile, Some(class));
        }
    }

    pub fn record_missing_rows(&mut self, rows: usize) {
        self.record_missing(rows);
    }
}

/// The bin of a non-NaN `value`: the number of interior edges strictly
/// below it, as [`sextant_stats::sketch::ReferenceBins::index`] finds by
/// binary search. Over a decile's 9 edges a branch-free count is faster: its
/// comparisons are independent, where each step of a binary search waits
/// for the previous load and compare (measured: the search was a third of
/// the per-request cost).
#[inline]
fn bin_of(edges: &[f64], value: f64) -> usize {
    if edges.len() <= 32 {
        edges.iter().map(|&edge| usize::from(edge < value)).sum()
    } else {
        edges.partition_point(|&edge| edge < value)
    }
}

/// One window: `[start_us, start_us + window)`.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub(crate) struct WindowSketch {
    pub start_us: i64,
    pub requests: u64,
    pub rows: u64,
    pub outliers: u64,
    /// Aligned with the profile's features.
    pub features: Vec<FeatureSketch>,
    pub prediction: Option<FeatureSketch>,
}

impl WindowSketch {
    pub fn new(profile: &ReferenceProfile, start_us: i64) -> WindowSketch {
        WindowSketch {
            start_us,
            requests: 0,
            rows: 0,
            outliers: 0,
            features: profile
                .features()
                .iter()
                .map(FeatureSketch::for_profile)
                .collect(),
            prediction: profile.prediction().map(FeatureSketch::for_profile),
        }
    }

    /// Empties the window for reuse as the one starting at `start_us`,
    /// keeping its allocations.
    pub fn reset(&mut self, start_us: i64) {
        self.start_us = start_us;
        self.requests = 0;
        self.rows = 0;
        self.outliers = 0;
        self.features.iter_mut().for_each(FeatureSketch::reset);
        if let Some(prediction) = self.prediction.as_mut() {
            prediction.reset();
        }
    }

    /// Adds another window of the same profile.
    pub fn merge(&mut self, other: &WindowSketch) {
        self.requests += other.requests;
        self.rows += other.rows;
        self.outliers += other.outliers;
        for (feature, other) in self.features.iter_mut().zip(&other.features) {
            feature.merge(other);
        }
        if let (Some(prediction), Some(other)) =
            (self.prediction.as_mut(), other.prediction.as_ref())
        {
            prediction.merge(other);
        }
    }

    pub fn is_empty(&self) -> bool {
        self.requests == 0
    }
}
