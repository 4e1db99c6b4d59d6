//! Live monitoring of a deployment: per-request outlier scores and windowed
//! drift against a reference profile.
//!
//! The serving process calls [`LiveMonitor::observe`] on every request, so
//! that path is sync, pure and cheap (about 0.5 µs of CPU for a row of 20
//! numeric features, scores and window updates included, measured by
//! `examples/live_cost.rs`) and does not allocate once warm (use
//! [`LiveMonitor::observe_into`] with a reused buffer). Time is always
//! passed in (`now_us`, unix microseconds): nothing here reads a clock, so
//! every result is reproducible.
//!
//! The methods are the streaming ones recommended in
//! `shared/reference/monitoring.md` §6.1, §6.2 and §6.7:
//!
//! - **Profile** ([`ReferenceProfile`]): built once from a reference table or
//!   from the first rows a deployment served. Numbers are binned at the
//!   reference's deciles ([`ReferenceBins::deciles`], open-ended outer bins);
//!   categories on the reference's vocabulary plus one bucket for values
//!   outside it. The bins never move, so windows are comparable with each
//!   other and merge by adding counts. The profile keeps the reference's own
//!   counts in those bins, its moments, median and MAD, and a Mahalanobis
//!   model (mean, correlation, Cholesky factor, calibrated threshold).
//! - **Windows**: fixed, aligned windows (`start = ⌊now / w⌋ · w`, 5 min by
//!   default) hold bin counts, missing counts, shifted sums for the mean
//!   and request, row and outlier counts, all merged by addition. KLL
//!   quantile sketches are left out (an update costs more than the whole
//!   per-request budget for 20 features), and so is [`Moments`]' Welford
//!   update (a quarter of it; see `window.rs`).
//! - **Drift** ([`LiveMonitor::report`]): the windows overlapping the span are
//!   merged (exact: counts add) and compared with the reference per feature
//!   by PSI, Jensen-Shannon distance in bits and a chi-square test of
//!   homogeneity, Benjamini-Hochberg-adjusted across features (see
//!   [`FeatureDrift`]).
//! - **Outliers** ([`OutlierVerdict`]): tier 0 (NaN, ±∞, unseen category),
//!   tier A (robust z) and tier C (Mahalanobis distance) of §6.7, combined
//!   into one score whose threshold is 1.
//! - **Abuse** ([`AbuseTracker`], §6.8): per-client signals of rate spikes,
//!   near-duplicate queries, model extraction (PRADA) and decision-boundary
//!   probing, fed off the request path.
//!
//! [`ReferenceBins::deciles`]: sextant_stats::sketch::ReferenceBins::deciles
//! [`Moments`]: sextant_stats::sketch::Moments

mod abuse;
mod linalg;
mod monitor;
mod outlier;
mod partial;
mod profile;
mod report;
mod window;

use serde::{Deserialize, Serialize};

pub use abuse::{
    AbuseConfig, AbuseReport, AbuseSignals, AbuseTotals, AbuseTracker, ClientAbuse, ClientVerdict,
    ScaledFeature, Scaling,
};
pub use monitor::{LiveMonitor, MonitorConfig};
pub use partial::{DriftPartial, MergeError};
pub use profile::{
    FeatureKind, FeatureProfile, ProfileError, ReferenceProfile, DEFAULT_PREDICTION_NAME,
};
pub use report::{FeatureDrift, MonitorReport, WindowFeature, WindowSummary};

/// One feature's values in a request, aligned with
/// [`ReferenceProfile::features`].
///
/// Values are converted to what the profile expects rather than refused:
/// text in a numerical feature is parsed as a number (unparseable text
/// counts as missing), a number in a categorical feature is looked up by
/// its value (`3.0` is the category `"3"`, as a pandas integer column
/// prints it; `0`/`1` and `"true"`/`"false"` match a boolean reference's
/// `"False"`/`"True"`).
#[derive(Debug, Clone, Copy)]
pub enum FeatureColumn<'a> {
    /// One number per row; NaN is a missing value.
    Numeric(&'a [f64]),
    /// One string per row; `None` is a missing value.
    Text(&'a [Option<&'a str>]),
    /// The request did not carry this feature: every row counts it as
    /// missing.
    Absent,
}

/// A request's rows, column by column.
///
/// `columns[i]` holds feature `i` of the profile. A batch that does not
/// fit is read as far as it fits, never refused and never a panic: missing
/// trailing columns are [`FeatureColumn::Absent`], extra columns are
/// ignored, and a column whose length is not `rows` is treated as
/// `Absent`.
#[derive(Debug, Clone)]
pub struct FeatureBatch<'a> {
    pub rows: usize,
    pub columns: Vec<FeatureColumn<'a>>,
}

impl FeatureBatch<'_> {
    /// Column `index`, or `Absent` when the batch has no usable column
    /// there.
    #[inline]
    pub(crate) fn column(&self, index: usize) -> FeatureColumn<'_> {
        match self.columns.get(index) {
            Some(&FeatureColumn::Numeric(values)) if values.len() == self.rows => {
                FeatureColumn::Numeric(values)
            }
            Some(&FeatureColumn::Text(values)) if values.len() == self.rows => {
                FeatureColumn::Text(values)
            }
            _ => FeatureColumn::Absent,
        }
    }
}

/// The model's outputs for a request's rows: one number or one class per
/// row. A slice whose length is not the batch's row count (multi-output
/// models, for instance) is counted as missing, like `None`.
#[derive(Debug, Clone, Copy)]
pub enum PredictionValues<'a> {
    Numbers(&'a [f64]),
    Classes(&'a [&'a str]),
    None,
}

/// A row's outlier verdict.
///
/// `score` is the largest of two ratios, each a distance over its own
/// threshold, so `score ≥ 1` ⇔ `outlier` and the scale reads the same for
/// every deployment (0.5: half-way to the threshold; 3: three times it):
///
/// - **Mahalanobis** (tier C): `d(x) / T`, with
///   `d(x) = √((x − μ)ᵀ Σ⁻¹ (x − μ))` over the numeric features and `T` the
///   99.9th percentile of the reference rows' own distances, so about 0.1%
///   of rows like the reference's score ≥ 1 on this ratio. It sees a row
///   whose values are each ordinary but whose combination is not.
/// - **Robust z** (tier A): `max_j |x_j − median_j| / (1.4826 · MAD_j) / τ_j`
///   with `τ_j = max(6, 1.5 · the reference's own largest z_j)`: 6 robust
///   standard deviations (never reached by Gaussian data, P ≈ 2·10⁻⁹), and
///   for long-tailed features half as far again as the reference's most
///   extreme value, so a row is flagged only beyond anything seen.
///
/// Infinite values score as far as possible. Missing values (NaN, null,
/// an absent feature) do not raise the score: they are counted as missing,
/// and the Mahalanobis distance of such a row is taken over the features
/// it has (with the threshold scaled to that dimension). An unseen
/// category does not raise the score either, unless
/// [`MonitorConfig::unseen_category_is_outlier`] is set: new categories
/// usually arrive together (a new product, a new market) and are drift,
/// reported per feature as `unseen_share`; flagging every such row would
/// make the outlier rate a copy of that share. Scores are capped at
/// [`OutlierVerdict::MAX_SCORE`] so they stay finite in JSON.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct OutlierVerdict {
    pub outlier: bool,
    pub score: f64,
}

impl OutlierVerdict {
    /// The score of an infinite value or of a value away from a constant
    /// reference feature.
    pub const MAX_SCORE: f64 = 1e9;

    /// An unremarkable row.
    pub const INLIER: OutlierVerdict = OutlierVerdict {
        outlier: false,
        score: 0.0,
    };

    pub(crate) fn from_score(score: f64) -> OutlierVerdict {
        let score = if score.is_nan() {
            0.0
        } else {
            score.min(Self::MAX_SCORE)
        };
        OutlierVerdict {
            outlier: score >= 1.0,
            score,
        }
    }
}
