//! Drift of merged windows against the reference, per feature.

use serde::{Deserialize, Serialize};
use sextant_stats::{contingency, correction, divergence};

use super::monitor::MonitorConfig;
use super::profile::{share, FeatureKind, FeatureProfile, ReferenceProfile};
use super::window::{FeatureSketch, WindowSketch};

/// PSI's share for an empty bin (ln 0 is undefined): the usual ε, as
/// Evidently and `drift` use.
const PSI_EMPTY_SHARE: f64 = 1e-4;

/// Live traffic over a span compared with the reference.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct MonitorReport {
    /// Start of the earliest window merged (windows are whole, so this can
    /// be up to one window before `now − span`).
    pub window_start_us: i64,
    /// The `now` of the report.
    pub window_end_us: i64,
    pub requests: u64,
    pub rows: u64,
    pub outliers: u64,
    /// `outliers / rows` (0 without rows).
    pub outlier_rate: f64,
    /// One per profile feature, in profile order.
    pub features: Vec<FeatureDrift>,
    pub prediction: Option<FeatureDrift>,
    pub drifted_features: usize,
    /// `drifted_features / features.len()`.
    pub drift_share: f64,
    pub reference_rows: u64,
}

/// One feature (or the prediction) over the merged windows.
///
/// Both sides are counted in the same buckets: the reference's decile bins
/// for a number (open-ended outer bins), the reference's categories plus
/// one bucket of values outside them for a category. With `r_i`, `c_i` the
/// reference's and the window's shares of their present values:
///
/// - `psi = Σ (c_i − r_i) ln(c_i / r_i)`, empty shares replaced by 10⁻⁴;
/// - `jensen_shannon = √(½ KL(r‖m) + ½ KL(c‖m))` in bits, `m = (r + c)/2`
///   (in [0, 1]);
/// - `p_value`: Pearson's chi-square test of homogeneity on the 2 × k
///   table (reference counts, window counts), buckets empty on both sides
///   left out, Yates-corrected when k = 2 (`scipy.stats.chi2_contingency`);
///   it treats the reference as the sample it is, so it keeps its level
///   where a goodness-of-fit test against the reference's shares would not
///   (`monitoring.md` §6.2). Adjusted by Benjamini-Hochberg across the
///   report's features and prediction. `None` below
///   [`MonitorConfig::min_rows`] values (not tested).
///
/// `drifted` = (`psi ≥ 0.2` or `jensen_shannon ≥ 0.1`) and adjusted
/// `p < 0.05` (the configured values): the shift must be material and
/// significant, so large windows do not flag negligible shifts and small
/// ones do not flag noise. With no value present on either side the
/// divergences are 0.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct FeatureDrift {
    pub name: String,
    pub kind: FeatureKind,
    /// Values present in the windows.
    pub count: u64,
    /// Missing (NaN, null, absent) among all values in the windows.
    pub missing_share: f64,
    pub reference_missing_share: f64,
    pub psi: f64,
    /// Jensen-Shannon distance in bits.
    pub jensen_shannon: f64,
    pub p_value: Option<f64>,
    pub drifted: bool,
    /// Mean of the finite values (numerical features).
    pub mean: Option<f64>,
    pub reference_mean: Option<f64>,
    /// Share of present values outside the reference vocabulary
    /// (categorical features; the vocabulary is the reference's 256 most
    /// frequent categories, so for a feature with more, the rarest
    /// reference categories count here too, and the reference's own share
    /// of them is what this is compared with).
    pub unseen_share: Option<f64>,
}

/// One window's figures, for charts: the same comparison as a report's
/// features, without the names and reference figures (aligned with
/// [`super::ReferenceProfile::features`]).
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct WindowSummary {
    pub start_us: i64,
    pub end_us: i64,
    pub requests: u64,
    pub rows: u64,
    pub outliers: u64,
    pub outlier_rate: f64,
    pub drifted_features: usize,
    pub features: Vec<WindowFeature>,
    pub prediction: Option<WindowFeature>,
}

/// One feature in one window (see [`FeatureDrift`] for the figures).
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct WindowFeature {
    pub count: u64,
    pub missing_share: f64,
    pub psi: f64,
    pub jensen_shannon: f64,
    pub p_value: Option<f64>,
    pub drifted: bool,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub mean: Option<f64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub unseen_share: Option<f64>,
}

impl From<FeatureDrift> for WindowFeature {
    fn from(drift: FeatureDrift) -> Self {
        WindowFeature {
            count: drift.count,
            missing_share: drift.missing_share,
            psi: drift.psi,
            jensen_shannon: drift.jensen_shannon,
            p_value: drift.p_value,
            drifted: drift.drifted,
            mean: drift.mean,
            unseen_share: drift.unseen_share,
        }
    }
}

/// The features' and the prediction's drift, p-values adjusted and
/// verdicts settled.
pub(crate) struct Comparison {
    features: Vec<FeatureDrift>,
    prediction: Option<FeatureDrift>,
}

impl Comparison {
    fn drifted_features(&self) -> usize {
        self.features
            .iter()
            .filter(|feature| feature.drifted)
            .count()
    }
}

impl MonitorReport {
    pub(crate) fn new(
        profile: &ReferenceProfile,
        merged: &WindowSketch,
        now_us: i64,
        comparison: Comparison,
    ) -> MonitorReport {
        let drifted_features = comparison.drifted_features();
        MonitorReport {
            window_start_us: merged.start_us,
            window_end_us: now_us,
            requests: merged.requests,
            rows: merged.rows,
            outliers: merged.outliers,
            outlier_rate: share(merged.outliers, merged.rows),
            drift_share: share(drifted_features as u64, comparison.features.len() as u64),
            drifted_features,
            features: comparison.features,
            prediction: comparison.prediction,
            reference_rows: profile.reference_rows(),
        }
    }
}

impl WindowSummary {
    pub(crate) fn new(
        window: &WindowSketch,
        window_us: i64,
        comparison: Comparison,
    ) -> WindowSummary {
        WindowSummary {
            start_us: window.start_us,
            end_us: window.start_us.saturating_add(window_us),
            requests: window.requests,
            rows: window.rows,
            outliers: window.outliers,
            outlier_rate: share(window.outliers, window.rows),
            drifted_features: comparison.drifted_features(),
            features: comparison
                .features
                .into_iter()
                .map(WindowFeature::from)
                .collect(),
            prediction: comparison.prediction.map(WindowFeature::from),
        }
    }
}

/// Compares every feature of `window` (and the prediction) with the
/// reference, then adjusts the p-values together and settles verdicts.
pub(crate) fn compare_window(
    profile: &ReferenceProfile,
    window: &WindowSketch,
    config: &MonitorConfig,
) -> Comparison {
    let mut features: Vec<FeatureDrift> = profile
        .features()
        .iter()
        .zip(&window.features)
        .map(|(feature, sketch)| compare_feature(feature, sketch, config))
        .collect();
    let mut prediction = match (profile.prediction(), window.prediction.as_ref()) {
        (Some(feature), Some(sketch)) => Some(compare_feature(feature, sketch, config)),
        _ => None,
    };
    let tested: Vec<&mut FeatureDrift> = features
        .iter_mut()
        .chain(prediction.as_mut())
        .filter(|drift| drift.p_value.is_some())
        .collect();
    let raw: Vec<f64> = tested
        .iter()
        .map(|drift| drift.p_value.unwrap_or(1.0))
        .collect();
    let adjusted = correction::benjamini_hochberg(&raw);
    for (drift, p_value) in tested.into_iter().zip(adjusted) {
        let material = drift.psi >= config.psi_threshold
            || drift.jensen_shannon >= config.jensen_shannon_threshold;
        drift.p_value = Some(p_value);
        drift.drifted = material && p_value < config.significance;
    }
    Comparison {
        features,
        prediction,
    }
}

/// One feature's figures with its raw p-value (`drifted` settled later).
fn compare_feature(
    profile: &FeatureProfile,
    sketch: &FeatureSketch,
    config: &MonitorConfig,
) -> FeatureDrift {
    let reference = profile.reference_bucket_counts();
    let current = &sketch.buckets.counts;
    let count = sketch.count();
    let missing = sketch.buckets.nan;
    let comparable = count > 0 && profile.reference_count() > 0;
    let (psi, jensen_shannon) = if comparable {
        let reference_shares = shares(reference);
        let current_shares = shares(current);
        (
            psi_with_empty_bins(&reference_shares, &current_shares),
            divergence::jensen_shannon_distance(
                &reference_shares,
                &current_shares,
                divergence::LogBase::Two,
            ),
        )
    } else {
        (0.0, 0.0)
    };
    let p_value =
        (comparable && count >= config.min_rows).then(|| homogeneity_p_value(reference, current));
    let unseen_share = profile
        .categorical_reference()
        .map(|categorical| share(current[categorical.outside_bucket()], count));
    FeatureDrift {
        name: profile.name.clone(),
        kind: profile.kind,
        count,
        missing_share: share(missing, count + missing),
        reference_missing_share: profile.reference_missing_share(),
        psi,
        jensen_shannon,
        p_value,
        drifted: false,
        mean: sketch.moments.as_ref().and_then(|moments| moments.mean()),
        reference_mean: profile.mean(),
        unseen_share,
    }
}

fn shares(counts: &[u64]) -> Vec<f64> {
    let total: u64 = counts.iter().sum();
    counts.iter().map(|&count| share(count, total)).collect()
}

/// PSI with empty shares replaced by ε = 10⁻⁴ on either side.
fn psi_with_empty_bins(reference: &[f64], current: &[f64]) -> f64 {
    let fill = |shares: &[f64]| -> Vec<f64> {
        shares
            .iter()
            .map(|&share| if share == 0.0 { PSI_EMPTY_SHARE } else { share })
            .collect()
    };
    divergence::psi(&fill(reference), &fill(current))
}

/// p-value of the chi-square test of homogeneity of two count vectors over
/// the same buckets; 1 when fewer than two buckets are non-empty (nothing
/// can differ).
fn homogeneity_p_value(reference: &[u64], current: &[u64]) -> f64 {
    let (reference_row, current_row): (Vec<f64>, Vec<f64>) = reference
        .iter()
        .zip(current)
        .filter(|(&r, &c)| r + c > 0)
        .map(|(&r, &c)| (r as f64, c as f64))
        .unzip();
    if reference_row.len() < 2 {
        return 1.0;
    }
    contingency::chi2_contingency(&[&reference_row, &current_row])
        .map(|result| result.p_value)
        .unwrap_or(1.0)
}
