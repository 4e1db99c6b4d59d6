//! Confidence-based performance estimation (CBPE) for binary classifiers:
//! the performance a model *would* show on data whose labels have not
//! arrived yet, from its calibrated scores, as NannyML 0.13's
//! `CBPE(problem_type="classification_binary")`.
//!
//! If the scores p̂ are calibrated probabilities of class 1, a row with
//! predicted label ŷ is a true positive with probability p̂ when ŷ = 1 and
//! a false negative with probability p̂ when ŷ = 0. Summing over a window
//! gives the expected confusion matrix
//!
//! ```text
//! TP = Σ p̂·ŷ     FP = Σ (1 − p̂)·ŷ     FN = Σ p̂·(1 − ŷ)     TN = Σ (1 − p̂)(1 − ŷ)
//! ```
//!
//! and from it every confusion-matrix metric (NannyML's
//! `performance_estimation/confidence_based/metrics.py`; the method is in
//! NannyML's docs, "how it works: performance estimation"). ROC AUC is
//! estimated from the expected TPR/FPR curve of the rows ordered by score.
//!
//! Assumptions, as NannyML states them: the probabilities are calibrated
//! on the reference (this module calibrates with isotonic regression when
//! that helps, as NannyML does), P(y | x) does not change (no concept
//! drift: a gap between realised and estimated performance is how concept
//! drift shows up), covariate shift stays within the region the reference
//! covers, and windows are large enough for the sampling error to be small.
//!
//! Reproduced bit for bit (golden test against NannyML,
//! `tests/it/cbpe.rs`), given the same calibration decision: the isotonic
//! calibration, the estimates, the sampling errors and confidence bands,
//! the reference thresholds and the alerts (the ROC AUC thresholds to an
//! ulp: they rest on [`roc_auc`], see there). Not reproduced bit for bit:
//! NannyML's *choice* whether to calibrate ([`needs_calibration`]), whose
//! cross-validation splits come from scikit-learn's seeded
//! `StratifiedShuffleSplit` and numpy's unstable sort; pin the decision
//! with [`CalibrationPolicy`] to reproduce a NannyML run exactly. Where
//! NannyML leaves the order of tied scores to numpy's unstable sort (the
//! ROC AUC estimate, the AUC sampling error, the ECE), ties are taken in a
//! fixed order here.

use serde::{Deserialize, Serialize};

use crate::performance::{roc_auc, BinaryCounts};
use crate::special::pairwise_sum_by;

/// NannyML's `SAMPLING_ERROR_RANGE`: confidence bands are ± this many
/// sampling errors.
pub const SAMPLING_ERROR_RANGE: f64 = 3.0;

/// NannyML's `StandardDeviationThreshold` multiplier: alert thresholds are
/// the mean ± this many standard deviations of the metric over the
/// reference chunks.
pub const THRESHOLD_STD_MULTIPLIER: f64 = 3.0;

/// NannyML's `DefaultChunker.DEFAULT_CHUNK_COUNT`.
pub const DEFAULT_CHUNK_COUNT: usize = 10;

/// Fewest reference rows [`Cbpe::fit`] accepts: NannyML's default chunker
/// needs `n / 10 ≥ 1`.
pub const MIN_REFERENCE_ROWS: usize = DEFAULT_CHUNK_COUNT;

/// Serialises non-finite floats as `null` (JSON has no NaN or infinity) and
/// reads `null` back as NaN.
mod nan_as_null {
    use serde::{Deserialize, Deserializer, Serializer};

    pub fn serialize<S: Serializer>(value: &f64, serializer: S) -> Result<S::Ok, S::Error> {
        if value.is_finite() {
            serializer.serialize_some(value)
        } else {
            serializer.serialize_none()
        }
    }

    pub fn deserialize<'de, D: Deserializer<'de>>(deserializer: D) -> Result<f64, D::Error> {
        Ok(Option::<f64>::deserialize(deserializer)?.unwrap_or(f64::NAN))
    }
}

/// Mean in numpy's pairwise order; NaN for n = 0.
fn pairwise_mean(n: usize, value: impl Fn(usize) -> f64 + Copy) -> f64 {
    pairwise_sum_by(n, value) / n as f64
}

/// Population standard deviation (ddof = 0) of `value(0..n)` as numpy's
/// `np.std`: mean first, then the squared deviations, both summed
/// pairwise. NaN for n = 0 (numpy warns and returns NaN).
fn population_std_by(n: usize, value: impl Fn(usize) -> f64 + Copy) -> f64 {
    let mean = pairwise_mean(n, value);
    let sum_of_squares = pairwise_sum_by(n, |i| {
        let deviation = value(i) - mean;
        deviation * deviation
    });
    (sum_of_squares / n as f64).sqrt()
}

/// Sorts `values` ascending; ties keep their input order. −0 and +0 tie.
fn stable_order(values: &[f64]) -> Vec<usize> {
    let mut order: Vec<usize> = (0..values.len()).collect();
    order.sort_by(|&a, &b| (values[a] + 0.0).total_cmp(&(values[b] + 0.0)));
    order
}

// ---------------------------------------------------------------- isotonic

/// Monotone (non-decreasing) calibration map fitted by isotonic regression,
/// as scikit-learn 1.9's `IsotonicRegression(increasing=True,
/// out_of_bounds="clip")`, the calibrator NannyML uses.
///
/// Fitting (`sklearn/isotonic.py::_build_y`): the points are sorted by
/// (x, y); runs of x closer than numpy's float64 resolution (1e-15, measured
/// from the first x of the run, as sklearn's `_make_unique`) become one
/// point whose y is their mean and whose weight is their count; then the
/// pool-adjacent-violators algorithm (Ayer et al., Ann. Math. Statist. 26,
/// 1955; the single-pass variant scipy's `optimize.isotonic_regression`
/// runs for sklearn, same pooling order so the same rounding) finds the
/// weighted least-squares non-decreasing fit. Interior points whose fitted y equals both
/// neighbours' are dropped, as sklearn does; this does not change any
/// prediction.
///
/// Prediction: x is clipped to the fitted range and the fitted points are
/// interpolated linearly, with numpy's `np.interp` arithmetic
/// (`slope·(x − x_j) + y_j`), so predictions match sklearn's bit for bit.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct IsotonicCalibrator {
    /// Fitted abscissae, strictly increasing (sklearn's `X_thresholds_`).
    x: Vec<f64>,
    /// Fitted values, non-decreasing (sklearn's `y_thresholds_`).
    y: Vec<f64>,
}

/// numpy's `np.finfo(np.float64).resolution`, the tolerance sklearn's
/// `_make_unique` merges x values within.
const FLOAT64_RESOLUTION: f64 = 1e-15;

impl IsotonicCalibrator {
    /// Fits `y ≈ f(x)` with f non-decreasing. Returns `None` when there are
    /// no points or a value is not finite (sklearn raises). Panics if the
    /// slices differ in length.
    pub fn fit(x: &[f64], y: &[f64]) -> Option<Self> {
        assert_eq!(x.len(), y.len(), "x and y must have one entry per point");
        if x.is_empty() || x.iter().chain(y).any(|v| !v.is_finite()) {
            return None;
        }
        // np.lexsort((y, X)): by x, then y. `+ 0.0` makes −0 equal to +0.
        let mut points: Vec<(f64, f64)> =
            x.iter().zip(y).map(|(&a, &b)| (a + 0.0, b + 0.0)).collect();
        points.sort_by(|a, b| a.0.total_cmp(&b.0).then(a.1.total_cmp(&b.1)));

        // sklearn's _make_unique: weighted mean of y over near-equal x.
        let (mut unique_x, mut unique_y, mut weights) = (Vec::new(), Vec::new(), Vec::new());
        let mut current_x = points[0].0;
        let (mut current_y, mut current_weight) = (0.0, 0.0);
        for &(xv, yv) in &points {
            if xv - current_x >= FLOAT64_RESOLUTION {
                unique_x.push(current_x);
                weights.push(current_weight);
                unique_y.push(current_y / current_weight);
                current_x = xv;
                current_weight = 1.0;
                current_y = yv;
            } else {
                current_weight += 1.0;
                current_y += yv;
            }
        }
        unique_x.push(current_x);
        weights.push(current_weight);
        unique_y.push(current_y / current_weight);

        pool_adjacent_violators(&mut unique_y, &mut weights);

        // Keep the ends and every point that differs from a neighbour.
        let n = unique_y.len();
        let keep = |i: usize| {
            i == 0 || i == n - 1 || unique_y[i] != unique_y[i - 1] || unique_y[i] != unique_y[i + 1]
        };
        let (x, y) = (0..n)
            .filter(|&i| keep(i))
            .map(|i| (unique_x[i], unique_y[i]))
            .unzip();
        Some(Self { x, y })
    }

    /// The calibrated value at `score`: clipped to the fitted range, then
    /// linearly interpolated (sklearn's `predict`). NaN stays NaN.
    pub fn predict(&self, score: f64) -> f64 {
        if score.is_nan() {
            return score;
        }
        let last = self.x.len() - 1;
        if last == 0 {
            return self.y[0];
        }
        let t = score.clamp(self.x[0], self.x[last]);
        // np.interp: j with x[j] <= t < x[j + 1].
        let j = self.x.partition_point(|&v| v <= t) - 1;
        if j == last || self.x[j] == t {
            return self.y[j];
        }
        let slope = (self.y[j + 1] - self.y[j]) / (self.x[j + 1] - self.x[j]);
        let mut value = slope * (t - self.x[j]) + self.y[j];
        if value.is_nan() {
            value = slope * (t - self.x[j + 1]) + self.y[j + 1];
            if value.is_nan() && self.y[j] == self.y[j + 1] {
                value = self.y[j];
            }
        }
        value
    }

    /// The fitted points (sklearn's `X_thresholds_`, `y_thresholds_`).
    pub fn thresholds(&self) -> (&[f64], &[f64]) {
        (&self.x, &self.y)
    }
}

/// Weighted pool-adjacent-violators in place, in the order of scipy's
/// `optimize.isotonic_regression` (which sklearn ≥ 1.4 calls): Busing's
/// single-pass O(n) PAVA (Busing, "Monotone regression: a simple and fast
/// O(n) PAVA implementation", J. Stat. Softw. 102(1), 2022, Algorithm 1)
/// with scipy's `>=` in both violation tests, so equal neighbours pool too
/// (which changes the rounding of the pooled mean, hence reproduced).
fn pool_adjacent_violators(x: &mut [f64], w: &mut [f64]) {
    let n = x.len();
    if n == 0 {
        return;
    }
    // Block b spans x[starts[b]..starts[b + 1]]; its value is x[b] and its
    // weight w[b] while the scan runs.
    let mut starts = vec![0usize; n + 1];
    starts[1] = 1;
    let mut b = 0usize;
    let (mut previous_value, mut previous_weight) = (x[0], w[0]);
    let mut i = 1;
    while i < n {
        b += 1;
        let mut value = x[i];
        let mut weight = w[i];
        if previous_value >= value {
            b -= 1;
            let mut sum = previous_weight * previous_value + weight * value;
            weight += previous_weight;
            value = sum / weight;
            while i < n - 1 && value >= x[i + 1] {
                i += 1;
                sum += w[i] * x[i];
                weight += w[i];
                value = sum / weight;
            }
            while b > 0 && x[b - 1] >= value {
                b -= 1;
                sum += w[b] * x[b];
                weight += w[b];
                value = sum / weight;
            }
        }
        x[b] = value;
        w[b] = weight;
        previous_value = value;
        previous_weight = weight;
        starts[b + 1] = i + 1;
        i += 1;
    }
    // Expand the block values back over their elements, last block first.
    for k in (0..=b).rev() {
        let value = x[k];
        x[starts[k]..starts[k + 1]].fill(value);
    }
}

// ---------------------------------------------------------- calibration

/// Expected calibration error as NannyML's
/// `calibration._calculate_expected_calibration_error`: rows sorted by
/// probability are cut into equal-count bins and
/// `ECE = Σ_b (n_b / n)·|mean(p)_b − mean(y)_b|`.
///
/// The bins are NannyML's `_get_bin_index_edges(n, bin_count)`: when
/// n ≤ 2·`bin_count` the count drops to n / 2; bins are n / count rows wide
/// and the last bin runs to n, so there can be *more* than `bin_count`
/// bins (n = 25 gives 12 bins of 2 and one of 3). `None` when fewer than 2
/// bins fit (NannyML raises). Ties in `probabilities` keep their input
/// order (NannyML's numpy `argsort` leaves them in an unspecified order).
/// Panics if the slices differ in length.
pub fn expected_calibration_error(
    y_true: &[bool],
    probabilities: &[f64],
    bin_count: usize,
) -> Option<f64> {
    assert_eq!(
        y_true.len(),
        probabilities.len(),
        "y_true and probabilities must have one entry per row"
    );
    let n = probabilities.len();
    let edges = bin_index_edges(n, bin_count)?;
    let order = stable_order(probabilities);
    let terms: Vec<f64> = edges
        .iter()
        .map(|&(left, right)| {
            let rows = &order[left..right];
            let mean_probability = pairwise_mean(rows.len(), |i| probabilities[rows[i]]);
            let positives = rows.iter().filter(|&&r| y_true[r]).count();
            let mean_truth = positives as f64 / rows.len() as f64;
            let weight = rows.len() as f64 / n as f64;
            weight * (mean_probability - mean_truth).abs()
        })
        .collect();
    Some(pairwise_sum_by(terms.len(), |i| terms[i]))
}

/// NannyML's `_get_bin_index_edges`.
fn bin_index_edges(n: usize, bin_count: usize) -> Option<Vec<(usize, usize)>> {
    let mut bin_count = bin_count;
    if n <= 2 * bin_count {
        bin_count = n / 2;
        if bin_count < 2 {
            return None;
        }
    }
    let width = n / bin_count;
    let mut edges: Vec<usize> = (0..=n).step_by(width).collect();
    if let Some(last) = edges.last_mut() {
        *last = n;
    }
    Some(edges.windows(2).map(|pair| (pair[0], pair[1])).collect())
}

/// Number of cross-validation splits of [`needs_calibration`] (NannyML's
/// `split_count`).
const CALIBRATION_SPLITS: usize = 10;
/// ECE bins of [`needs_calibration`] (NannyML's `bin_count`).
const CALIBRATION_BINS: usize = 10;
/// Seed of the split shuffles, so the decision is reproducible.
const CALIBRATION_SEED: u64 = 0x00ca_11b7_a7e0;

/// SplitMix64 (Steele, Lea & Flood, OOPSLA 2014): the shuffles of the
/// calibration splits.
struct SplitMix64(u64);

impl SplitMix64 {
    fn next(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9e37_79b9_7f4a_7c15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
        z ^ (z >> 31)
    }

    /// Uniform in `0..bound` (modulo bias below 2⁻⁴⁰ for the sizes here).
    fn below(&mut self, bound: usize) -> usize {
        (self.next() % bound as u64) as usize
    }
}

/// Whether isotonic calibration improves the reference scores, NannyML's
/// `calibration.needs_calibration` procedure:
///
/// * no when the labels have one class, or when the scores' ROC AUC exceeds
///   0.999 (nothing to gain);
/// * otherwise 10 stratified splits each hold out 10% of every class
///   (⌈n_c / 10⌉ rows, at least one row of each class left to train on),
///   fit an [`IsotonicCalibrator`] on the rest and calibrate the held-out
///   scores; the held-out rows of all splits are pooled, and calibration is
///   needed iff the pooled ECE ([`expected_calibration_error`], 10 bins)
///   is larger before calibration than after.
///
/// Difference from NannyML: its splits come from scikit-learn's
/// `StratifiedShuffleSplit(random_state=42)` and its ECE sorts with numpy's
/// unstable `argsort` (the calibrated scores are full of ties), neither of
/// which is reproducible outside numpy; here the splits are seeded
/// SplitMix64 shuffles and ties keep their order. The two decisions agree
/// when calibration clearly helps or clearly does not, and can differ when
/// the two ECEs are close, where either choice estimates about equally
/// well. Panics if the slices differ in length.
pub fn needs_calibration(scores: &[f64], labels: &[bool]) -> bool {
    assert_eq!(
        scores.len(),
        labels.len(),
        "scores and labels must have one entry per row"
    );
    let positives: Vec<usize> = (0..labels.len()).filter(|&i| labels[i]).collect();
    let negatives: Vec<usize> = (0..labels.len()).filter(|&i| !labels[i]).collect();
    if positives.is_empty() || negatives.is_empty() {
        return false;
    }
    if roc_auc(labels, scores).is_none_or(|auc| auc > 0.999) {
        return false;
    }
    let mut rng = SplitMix64(CALIBRATION_SEED);
    let (mut pooled_labels, mut pooled_raw, mut pooled_calibrated) =
        (Vec::new(), Vec::new(), Vec::new());
    let mut held_out = vec![false; labels.len()];
    for _ in 0..CALIBRATION_SPLITS {
        held_out.fill(false);
        for class in [&negatives, &positives] {
            let mut rows = class.clone();
            let held = rows.len().div_ceil(10).min(rows.len() - 1);
            for i in 0..held {
                let j = i + rng.below(rows.len() - i);
                rows.swap(i, j);
                held_out[rows[i]] = true;
            }
        }
        let (train_x, train_y): (Vec<f64>, Vec<f64>) = (0..labels.len())
            .filter(|&i| !held_out[i])
            .map(|i| (scores[i], f64::from(u8::from(labels[i]))))
            .unzip();
        let Some(calibrator) = IsotonicCalibrator::fit(&train_x, &train_y) else {
            return false;
        };
        for i in (0..labels.len()).filter(|&i| held_out[i]) {
            pooled_labels.push(labels[i]);
            pooled_raw.push(scores[i]);
            pooled_calibrated.push(calibrator.predict(scores[i]));
        }
    }
    let before = expected_calibration_error(&pooled_labels, &pooled_raw, CALIBRATION_BINS);
    let after = expected_calibration_error(&pooled_labels, &pooled_calibrated, CALIBRATION_BINS);
    matches!((before, after), (Some(before), Some(after)) if before > after)
}

// -------------------------------------------------------------- metrics

/// The binary-classification metrics CBPE estimates (NannyML's metric
/// columns; the confusion-matrix entries are counts, NannyML's
/// `normalize_confusion_matrix=None`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum CbpeMetric {
    RocAuc,
    F1,
    Precision,
    Recall,
    Specificity,
    Accuracy,
    TruePositive,
    TrueNegative,
    FalsePositive,
    FalseNegative,
}

impl CbpeMetric {
    pub const ALL: [Self; 10] = [
        Self::RocAuc,
        Self::F1,
        Self::Precision,
        Self::Recall,
        Self::Specificity,
        Self::Accuracy,
        Self::TruePositive,
        Self::TrueNegative,
        Self::FalsePositive,
        Self::FalseNegative,
    ];

    /// NannyML's column name (`"roc_auc"`, `"true_positive"`, …).
    pub fn name(self) -> &'static str {
        match self {
            Self::RocAuc => "roc_auc",
            Self::F1 => "f1",
            Self::Precision => "precision",
            Self::Recall => "recall",
            Self::Specificity => "specificity",
            Self::Accuracy => "accuracy",
            Self::TruePositive => "true_positive",
            Self::TrueNegative => "true_negative",
            Self::FalsePositive => "false_positive",
            Self::FalseNegative => "false_negative",
        }
    }

    /// Whether the metric is a confusion-matrix count (its sampling error
    /// scales with n rather than 1/√n).
    pub fn is_count(self) -> bool {
        matches!(
            self,
            Self::TruePositive | Self::TrueNegative | Self::FalsePositive | Self::FalseNegative
        )
    }

    /// NannyML's value limits, applied to thresholds and confidence bands:
    /// rates lie in [0, 1], counts are at least 0.
    fn limits(self) -> (Option<f64>, Option<f64>) {
        if self.is_count() {
            (Some(0.0), None)
        } else {
            (Some(0.0), Some(1.0))
        }
    }
}

/// One value per [`CbpeMetric`].
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct CbpeMetrics<T> {
    pub roc_auc: T,
    pub f1: T,
    pub precision: T,
    pub recall: T,
    pub specificity: T,
    pub accuracy: T,
    pub true_positive: T,
    pub true_negative: T,
    pub false_positive: T,
    pub false_negative: T,
}

impl<T> CbpeMetrics<T> {
    pub fn from_fn(mut value: impl FnMut(CbpeMetric) -> T) -> Self {
        Self {
            roc_auc: value(CbpeMetric::RocAuc),
            f1: value(CbpeMetric::F1),
            precision: value(CbpeMetric::Precision),
            recall: value(CbpeMetric::Recall),
            specificity: value(CbpeMetric::Specificity),
            accuracy: value(CbpeMetric::Accuracy),
            true_positive: value(CbpeMetric::TruePositive),
            true_negative: value(CbpeMetric::TrueNegative),
            false_positive: value(CbpeMetric::FalsePositive),
            false_negative: value(CbpeMetric::FalseNegative),
        }
    }

    pub fn get(&self, metric: CbpeMetric) -> &T {
        match metric {
            CbpeMetric::RocAuc => &self.roc_auc,
            CbpeMetric::F1 => &self.f1,
            CbpeMetric::Precision => &self.precision,
            CbpeMetric::Recall => &self.recall,
            CbpeMetric::Specificity => &self.specificity,
            CbpeMetric::Accuracy => &self.accuracy,
            CbpeMetric::TruePositive => &self.true_positive,
            CbpeMetric::TrueNegative => &self.true_negative,
            CbpeMetric::FalsePositive => &self.false_positive,
            CbpeMetric::FalseNegative => &self.false_negative,
        }
    }
}

/// Realised metrics of a labelled window as NannyML reports them next to
/// its estimates (`realized_*` columns), used for the reference thresholds:
///
/// * ROC AUC of the raw `scores` (sklearn's `roc_auc_score`; see
///   [`roc_auc`]), NaN when the labels have one class;
/// * F1, precision and recall NaN when the labels or the predictions have
///   one class (NannyML's guard), else sklearn's values;
/// * specificity TN / (TN + FP), NaN when there are no negatives;
/// * accuracy, and the four confusion-matrix counts.
///
/// Panics if the slices differ in length.
pub fn realized_metrics(scores: &[f64], labels: &[bool], predicted: &[bool]) -> CbpeMetrics<f64> {
    assert_eq!(
        scores.len(),
        labels.len(),
        "scores and labels must have one entry per row"
    );
    let counts = BinaryCounts::from_labels(labels, predicted);
    let one_class = |values: &[bool]| values.iter().all(|&v| v) || values.iter().all(|&v| !v);
    let degenerate = one_class(labels) || one_class(predicted);
    let unless_degenerate = |value: f64| if degenerate { f64::NAN } else { value };
    CbpeMetrics {
        roc_auc: if one_class(labels) {
            f64::NAN
        } else {
            roc_auc(labels, scores).unwrap_or(f64::NAN)
        },
        f1: unless_degenerate(counts.f1()),
        precision: unless_degenerate(counts.precision()),
        recall: unless_degenerate(counts.recall()),
        specificity: if counts.tn + counts.fp == 0 {
            f64::NAN
        } else {
            counts.specificity()
        },
        accuracy: counts.accuracy(),
        true_positive: counts.tp as f64,
        true_negative: counts.tn as f64,
        false_positive: counts.fp as f64,
        false_negative: counts.fn_ as f64,
    }
}

// ------------------------------------------------------------------ CBPE

/// Whether [`Cbpe::fit`] calibrates the scores.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum CalibrationPolicy {
    /// Decide by [`needs_calibration`], as NannyML does.
    Auto,
    /// Always fit an isotonic calibrator on the reference.
    Always,
    /// Use the scores as they are.
    Never,
}

/// Settings of [`Cbpe::fit`]. [`CbpeConfig::NANNYML`] is NannyML's default.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct CbpeConfig {
    pub calibration: CalibrationPolicy,
    /// Rows per reference chunk for the alert thresholds, which should be
    /// the size of the windows that will be estimated. `None` is NannyML's
    /// `DefaultChunker`: n / 10 rows. As NannyML's size-based chunker with
    /// `incomplete="keep"`, the remainder forms one more, smaller chunk.
    pub chunk_size: Option<usize>,
}

impl CbpeConfig {
    pub const NANNYML: Self = Self {
        calibration: CalibrationPolicy::Auto,
        chunk_size: None,
    };
}

/// How the model turned scores into predicted labels.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Predicted<'a> {
    /// One predicted label per row.
    Labels(&'a [bool]),
    /// Class 1 iff the score is at least this.
    Threshold(f64),
}

impl Predicted<'_> {
    fn labels(&self, scores: &[f64]) -> Vec<bool> {
        match *self {
            Self::Labels(labels) => labels.to_vec(),
            Self::Threshold(threshold) => scores.iter().map(|&s| s >= threshold).collect(),
        }
    }
}

/// Why [`Cbpe::fit`] refused a reference.
#[derive(Debug, Clone, PartialEq)]
pub enum CbpeError {
    /// Fewer than [`MIN_REFERENCE_ROWS`] rows, or a chunk size of 0.
    TooFewRows { rows: usize },
    /// The labels or predictions do not have one entry per score.
    LengthMismatch { scores: usize, other: usize },
    /// A reference score is NaN, infinite or outside [0, 1].
    InvalidScore { row: usize, value: f64 },
}

impl std::fmt::Display for CbpeError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Self::TooFewRows { rows } => write!(
                f,
                "the CBPE reference has {rows} rows; at least {MIN_REFERENCE_ROWS} and a chunk size of at least 1 are needed"
            ),
            Self::LengthMismatch { scores, other } => write!(
                f,
                "the CBPE reference has {scores} scores but {other} labels or predictions"
            ),
            Self::InvalidScore { row, value } => write!(
                f,
                "reference score {row} is {value}; scores must be probabilities in [0, 1]"
            ),
        }
    }
}

impl std::error::Error for CbpeError {}

/// A reference standard deviation and the share of rows it applies to,
/// NannyML's sampling-error components: the sampling error of a window of
/// n rows is `std / √(n · fraction)` (times n for counts).
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
struct SamplingComponents {
    #[serde(with = "nan_as_null")]
    std: f64,
    fraction: f64,
}

/// Alert thresholds of one metric; `None` where there is none (NannyML's
/// `None`, and also where its value would be NaN, which never alerts).
#[derive(Debug, Clone, Copy, Default, PartialEq, Serialize, Deserialize)]
pub struct Threshold {
    pub lower: Option<f64>,
    pub upper: Option<f64>,
}

impl Threshold {
    /// Whether `value` is outside the thresholds (NaN never is).
    pub fn alerts(&self, value: f64) -> bool {
        self.lower.is_some_and(|lower| value < lower)
            || self.upper.is_some_and(|upper| value > upper)
    }
}

/// An estimated metric with its sampling error and confidence band.
/// Non-finite values serialise as `null`.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct MetricEstimate {
    #[serde(with = "nan_as_null")]
    pub value: f64,
    /// Standard error of the estimate for a window of this size.
    #[serde(with = "nan_as_null")]
    pub sampling_error: f64,
    /// `max(lower limit, value − 3·sampling_error)`.
    #[serde(with = "nan_as_null")]
    pub lower_confidence: f64,
    /// `min(upper limit, value + 3·sampling_error)`.
    #[serde(with = "nan_as_null")]
    pub upper_confidence: f64,
    /// The value is outside the reference thresholds.
    pub alert: bool,
}

/// CBPE's estimates for one window.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct CbpeEstimate {
    /// Rows estimated (rows with a NaN score are left out, as NannyML does).
    pub rows: usize,
    pub metrics: CbpeMetrics<MetricEstimate>,
}

/// A fitted CBPE estimator: the calibrator (if any), the reference
/// sampling-error components and the reference alert thresholds. Plain
/// data, serialisable, so it can be fitted once and stored.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Cbpe {
    calibrator: Option<IsotonicCalibrator>,
    sampling: CbpeMetrics<SamplingComponents>,
    thresholds: CbpeMetrics<Threshold>,
    reference_rows: usize,
    chunk_size: usize,
}

impl Cbpe {
    /// Fits CBPE on a labelled reference: `scores` are the model's
    /// probabilities of class 1 on data it was *not* trained on (a
    /// calibrator fitted on training data is biased), `labels` the true
    /// classes and `predicted` the model's predicted labels.
    ///
    /// As NannyML's `CBPE._fit_binary`: decides on calibration
    /// ([`CbpeConfig::calibration`]) and fits the isotonic calibrator on the
    /// whole reference; computes each metric's sampling-error components
    /// from the raw reference (below); and sets alert thresholds at the mean
    /// ± 3 standard deviations (ddof 0, NaN chunks skipped) of the realised
    /// metric ([`realized_metrics`]) over the reference chunks, clamped to
    /// the metric's limits — a threshold at or beyond [0, 1] becomes the
    /// limit.
    ///
    /// Sampling-error components (NannyML `sampling_error/
    /// binary_classification.py`; the reference std of a per-row indicator
    /// and the share of rows it applies to):
    ///
    /// * accuracy: std of 1(ŷ = y) over all rows;
    /// * precision: std of 1(TP) over predicted positives, share Σŷ / n;
    /// * recall: std of 1(TP) over actual positives, share Σy / n;
    /// * specificity: std of 1(TN) over actual negatives, share of them;
    /// * F1: std of c·1(TP) over TP ∪ FP ∪ FN rows with c = |TP ∪ FP ∪ FN| /
    ///   (TP + (FP + FN)/2), share of those rows;
    /// * ROC AUC: std of the share of negatives ranked below each positive
    ///   (the Mann–Whitney view of AUC), share n₊ / n — computed after
    ///   swapping the classes when positives are the majority, and, as
    ///   NannyML does, leaving out a positive ranked lowest of all and
    ///   counting the rest one rank high (its `np.unique(...)[1:]`);
    /// * each confusion-matrix count: std of its indicator over all rows,
    ///   with sampling error `std · √n`.
    pub fn fit(
        scores: &[f64],
        labels: &[bool],
        predicted: Predicted<'_>,
        config: &CbpeConfig,
    ) -> Result<Self, CbpeError> {
        let n = scores.len();
        let predicted = predicted.labels(scores);
        for other in [labels.len(), predicted.len()] {
            if other != n {
                return Err(CbpeError::LengthMismatch { scores: n, other });
            }
        }
        if let Some(row) = scores.iter().position(|s| !(0.0..=1.0).contains(s)) {
            return Err(CbpeError::InvalidScore {
                row,
                value: scores[row],
            });
        }
        let chunk_size = config.chunk_size.unwrap_or(n / DEFAULT_CHUNK_COUNT);
        if n < MIN_REFERENCE_ROWS || chunk_size == 0 {
            return Err(CbpeError::TooFewRows { rows: n });
        }

        let calibrate = match config.calibration {
            CalibrationPolicy::Auto => needs_calibration(scores, labels),
            CalibrationPolicy::Always => true,
            CalibrationPolicy::Never => false,
        };
        let calibrator = if calibrate {
            let targets: Vec<f64> = labels.iter().map(|&y| f64::from(u8::from(y))).collect();
            IsotonicCalibrator::fit(scores, &targets)
        } else {
            None
        };

        let sampling = sampling_components(scores, labels, &predicted);

        let chunks = chunk_bounds(n, chunk_size);
        let realized: Vec<CbpeMetrics<f64>> = chunks
            .iter()
            .map(|&(start, end)| {
                realized_metrics(
                    &scores[start..end],
                    &labels[start..end],
                    &predicted[start..end],
                )
            })
            .collect();
        let thresholds = CbpeMetrics::from_fn(|metric| {
            let values: Vec<f64> = realized.iter().map(|r| *r.get(metric)).collect();
            standard_deviation_threshold(&values, metric.limits())
        });

        Ok(Self {
            calibrator,
            sampling,
            thresholds,
            reference_rows: n,
            chunk_size,
        })
    }

    /// Estimates every metric for a window of unlabelled rows from the
    /// model's scores and predicted labels. Rows whose score is NaN are
    /// left out (NannyML's `common_nan_removal`); if none remain every
    /// value is NaN.
    ///
    /// With p̂ the calibrated score and the expected counts of the module
    /// docs (summed in numpy's pairwise order):
    ///
    /// * accuracy (TP + TN) / n, precision TP / (TP + FP), recall
    ///   TP / (TP + FN), specificity TN / (TN + FP), F1 TP / (TP + (FP + FN)/2),
    ///   each 0 when its denominator is 0 (NannyML's `estimate_*`);
    /// * the counts as NannyML reports them, mean × n;
    /// * ROC AUC as NannyML's `estimate_roc_auc`: rows in descending order of
    ///   the *uncalibrated* score, expected TP and FP counts accumulated
    ///   (TP_k = Σ_{i≤k} p̂_i, FP_k = k − TP_k), both rounded to 5 decimals
    ///   as NannyML does, normalised by their totals and integrated with the
    ///   trapezoidal rule; NaN when either total is 0. Ties in the score are
    ///   taken in reverse input order (NannyML's numpy order is
    ///   unspecified).
    ///
    /// Panics if the slices differ in length.
    pub fn estimate(&self, scores: &[f64], predicted: &[bool]) -> CbpeEstimate {
        assert_eq!(
            scores.len(),
            predicted.len(),
            "scores and predicted must have one entry per row"
        );
        let rows: Vec<usize> = (0..scores.len()).filter(|&i| !scores[i].is_nan()).collect();
        let n = rows.len();
        if n == 0 {
            let nan = MetricEstimate {
                value: f64::NAN,
                sampling_error: f64::NAN,
                lower_confidence: f64::NAN,
                upper_confidence: f64::NAN,
                alert: false,
            };
            return CbpeEstimate {
                rows: 0,
                metrics: CbpeMetrics::from_fn(|_| nan),
            };
        }
        let raw: Vec<f64> = rows.iter().map(|&i| scores[i]).collect();
        let predicted: Vec<bool> = rows.iter().map(|&i| predicted[i]).collect();
        let calibrated: Vec<f64> = match &self.calibrator {
            Some(calibrator) => raw.iter().map(|&s| calibrator.predict(s)).collect(),
            None => raw.clone(),
        };
        let p = &calibrated;
        let tp = pairwise_sum_by(n, |i| if predicted[i] { p[i] } else { 0.0 });
        let fp = pairwise_sum_by(n, |i| if predicted[i] { 1.0 - p[i] } else { 0.0 });
        let fn_ = pairwise_sum_by(n, |i| if predicted[i] { 0.0 } else { p[i] });
        let tn = pairwise_sum_by(n, |i| if predicted[i] { 0.0 } else { 1.0 - p[i] });
        let ratio = |numerator: f64, denominator: f64| {
            if denominator == 0.0 {
                0.0
            } else {
                numerator / denominator
            }
        };
        let rows_f = n as f64;
        let values = CbpeMetrics {
            roc_auc: estimate_roc_auc(&calibrated, &raw),
            f1: ratio(tp, tp + 0.5 * (fp + fn_)),
            precision: ratio(tp, tp + fp),
            recall: ratio(tp, tp + fn_),
            specificity: ratio(tn, tn + fp),
            accuracy: (tp + tn) / rows_f,
            true_positive: tp / rows_f * rows_f,
            true_negative: tn / rows_f * rows_f,
            false_positive: fp / rows_f * rows_f,
            false_negative: fn_ / rows_f * rows_f,
        };
        let metrics = CbpeMetrics::from_fn(|metric| {
            let value = *values.get(metric);
            let sampling_error = self.sampling_error(metric, n);
            let (lower_limit, upper_limit) = metric.limits();
            let band = SAMPLING_ERROR_RANGE * sampling_error;
            MetricEstimate {
                value,
                sampling_error,
                lower_confidence: nan_max(lower_limit.unwrap_or(f64::NEG_INFINITY), value - band),
                upper_confidence: nan_min(upper_limit.unwrap_or(f64::INFINITY), value + band),
                alert: self.thresholds.get(metric).alerts(value),
            }
        });
        CbpeEstimate { rows: n, metrics }
    }

    /// [`Cbpe::estimate`] with predicted label 1 iff `score >= threshold`.
    pub fn estimate_thresholded(&self, scores: &[f64], threshold: f64) -> CbpeEstimate {
        let predicted: Vec<bool> = scores.iter().map(|&s| s >= threshold).collect();
        self.estimate(scores, &predicted)
    }

    /// Sampling error of `metric` for a window of `rows` rows:
    /// `std / √(rows · fraction)` for rates, `std / √rows · rows` for
    /// counts (NannyML's formulas; NaN when the reference component is).
    pub fn sampling_error(&self, metric: CbpeMetric, rows: usize) -> f64 {
        let SamplingComponents { std, fraction } = *self.sampling.get(metric);
        let n = rows as f64;
        if metric.is_count() {
            std / n.sqrt() * n
        } else {
            std / (n * fraction).sqrt()
        }
    }

    /// The isotonic calibrator, when the reference scores are calibrated.
    pub fn calibrator(&self) -> Option<&IsotonicCalibrator> {
        self.calibrator.as_ref()
    }

    pub fn is_calibrated(&self) -> bool {
        self.calibrator.is_some()
    }

    /// Alert thresholds from the reference chunks.
    pub fn thresholds(&self) -> &CbpeMetrics<Threshold> {
        &self.thresholds
    }

    pub fn reference_rows(&self) -> usize {
        self.reference_rows
    }

    /// Rows per reference chunk the thresholds were computed on.
    pub fn chunk_size(&self) -> usize {
        self.chunk_size
    }
}

/// numpy's `np.maximum`: NaN if either is NaN.
fn nan_max(a: f64, b: f64) -> f64 {
    if a.is_nan() || b.is_nan() {
        f64::NAN
    } else {
        a.max(b)
    }
}

/// numpy's `np.minimum`: NaN if either is NaN.
fn nan_min(a: f64, b: f64) -> f64 {
    if a.is_nan() || b.is_nan() {
        f64::NAN
    } else {
        a.min(b)
    }
}

/// NannyML's `SizeBasedChunker(chunk_size, incomplete="keep")` bounds.
fn chunk_bounds(n: usize, chunk_size: usize) -> Vec<(usize, usize)> {
    let mut bounds: Vec<(usize, usize)> = (0..n / chunk_size)
        .map(|k| (k * chunk_size, (k + 1) * chunk_size))
        .collect();
    if n % chunk_size != 0 {
        bounds.push((n - n % chunk_size, n));
    }
    bounds
}

/// NannyML's `StandardDeviationThreshold()` with `calculate_threshold_values`'
/// limits: mean ± 3·std of the non-NaN values (numpy's `nanmean` and
/// `nanstd`, NaN slots summed as 0), a threshold at or beyond a limit
/// replaced by the limit, NaN reported as no threshold.
fn standard_deviation_threshold(values: &[f64], limits: (Option<f64>, Option<f64>)) -> Threshold {
    let n = values.len();
    let present = values.iter().filter(|v| !v.is_nan()).count() as f64;
    let zeroed = |i: usize| if values[i].is_nan() { 0.0 } else { values[i] };
    let mean = pairwise_sum_by(n, zeroed) / present;
    let sum_of_squares = pairwise_sum_by(n, |i| {
        if values[i].is_nan() {
            0.0
        } else {
            let deviation = values[i] - mean;
            deviation * deviation
        }
    });
    let std = (sum_of_squares / present).sqrt();
    let mut lower = mean - std * THRESHOLD_STD_MULTIPLIER;
    let mut upper = mean + std * THRESHOLD_STD_MULTIPLIER;
    if let Some(limit) = limits.0 {
        if lower <= limit {
            lower = limit;
        }
    }
    if let Some(limit) = limits.1 {
        if upper >= limit {
            upper = limit;
        }
    }
    let finite = |value: f64| (!value.is_nan()).then_some(value);
    Threshold {
        lower: finite(lower),
        upper: finite(upper),
    }
}

/// Std of an array of `ones` ones followed by `zeros` zeros, each times
/// `scale`, in numpy's order (NannyML concatenates the indicators of each
/// group in this order).
fn indicator_std(ones: u64, zeros: u64, scale: f64) -> f64 {
    let ones = ones as usize;
    population_std_by(
        ones + zeros as usize,
        |i| if i < ones { scale } else { 0.0 },
    )
}

fn sampling_components(
    scores: &[f64],
    labels: &[bool],
    predicted: &[bool],
) -> CbpeMetrics<SamplingComponents> {
    let n = labels.len();
    let rows = n as f64;
    let counts = BinaryCounts::from_labels(labels, predicted);
    let BinaryCounts { tp, fp, tn, fn_ } = counts;
    let component = |std: f64, fraction: f64| SamplingComponents { std, fraction };
    // The counts' indicators are taken in row order, as NannyML's np.where.
    let count_component = |truth: bool, prediction: bool| {
        let hit = |i: usize| labels[i] == truth && predicted[i] == prediction;
        component(
            population_std_by(n, |i| if hit(i) { 1.0 } else { 0.0 }),
            1.0,
        )
    };

    let relevant = tp + fp + fn_;
    let f1 = if relevant == 0 {
        component(f64::NAN, 0.0)
    } else {
        let correcting_factor = relevant as f64 / ((fn_ + fp) as f64 * 0.5 + tp as f64);
        component(
            indicator_std(tp, fn_ + fp, correcting_factor),
            relevant as f64 / rows,
        )
    };
    CbpeMetrics {
        roc_auc: auroc_components(scores, labels),
        f1,
        precision: component(indicator_std(tp, fp, 1.0), (tp + fp) as f64 / rows),
        recall: component(indicator_std(tp, fn_, 1.0), (tp + fn_) as f64 / rows),
        specificity: component(indicator_std(tn, fp, 1.0), (tn + fp) as f64 / rows),
        accuracy: component(
            population_std_by(n, |i| if labels[i] == predicted[i] { 1.0 } else { 0.0 }),
            1.0,
        ),
        true_positive: count_component(true, true),
        true_negative: count_component(false, false),
        false_positive: count_component(false, true),
        false_negative: count_component(true, false),
    }
}

/// NannyML's `auroc_sampling_error_components`, quirks included (see
/// [`Cbpe::fit`]).
fn auroc_components(scores: &[f64], labels: &[bool]) -> SamplingComponents {
    let n = labels.len();
    let positives_total = labels.iter().filter(|&&y| y).count();
    let flip = positives_total as f64 / n as f64 > 0.5;
    let (truth, ordered_scores): (Vec<bool>, Vec<f64>) = labels
        .iter()
        .zip(scores)
        .map(|(&y, &s)| if flip { (!y, 1.0 - s) } else { (y, s) })
        .unzip();
    let order = stable_order(&ordered_scores);
    let positives = truth.iter().filter(|&&y| y).count();
    let negatives = n - positives;
    // Ranks of the positives in score order, without rank 0.
    let ranks: Vec<usize> = order
        .iter()
        .enumerate()
        .filter(|&(rank, &row)| truth[row] && rank > 0)
        .map(|(rank, _)| rank)
        .collect();
    let shares: Vec<f64> = ranks
        .iter()
        .enumerate()
        .map(|(i, &rank)| (rank - i) as f64 / negatives as f64)
        .collect();
    SamplingComponents {
        std: population_std_by(shares.len(), |i| shares[i]),
        fraction: positives as f64 / n as f64,
    }
}

/// NannyML's `estimate_roc_auc(calibrated, uncalibrated)`.
fn estimate_roc_auc(calibrated: &[f64], uncalibrated: &[f64]) -> f64 {
    let n = calibrated.len();
    if n == 0 {
        return f64::NAN;
    }
    let mut order = stable_order(uncalibrated);
    order.reverse();
    let round5 = |x: f64| (x * 1e5).round_ties_even() / 1e5;
    let mut tps = Vec::with_capacity(n + 1);
    let mut fps = Vec::with_capacity(n + 1);
    tps.push(0.0);
    fps.push(0.0);
    let mut cumulative = 0.0;
    for (i, &row) in order.iter().enumerate() {
        cumulative += calibrated[row];
        tps.push(round5(cumulative));
        fps.push(round5((1 + i) as f64 - cumulative));
    }
    let (tp_total, fp_total) = (tps[n], fps[n]);
    if tp_total == 0.0 || fp_total == 0.0 {
        return f64::NAN;
    }
    let tpr: Vec<f64> = tps.iter().map(|&t| t / tp_total).collect();
    let fpr: Vec<f64> = fps.iter().map(|&f| f / fp_total).collect();
    // sklearn's `auc`: the x values must be monotone in one direction.
    let decreasing = fpr.windows(2).any(|w| w[1] < w[0]);
    let direction = if decreasing {
        if fpr.windows(2).any(|w| w[1] > w[0]) {
            return f64::NAN;
        }
        -1.0
    } else {
        1.0
    };
    direction * pairwise_sum_by(n, |i| (fpr[i + 1] - fpr[i]) * (tpr[i + 1] + tpr[i]) / 2.0)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn isotonic_pools_violators_and_interpolates() {
        let calibrator =
            IsotonicCalibrator::fit(&[1.0, 2.0, 3.0, 4.0], &[1.0, 3.0, 2.0, 4.0]).unwrap();
        assert_eq!(
            calibrator.thresholds(),
            (&[1.0, 2.0, 3.0, 4.0][..], &[1.0, 2.5, 2.5, 4.0][..])
        );
        assert_eq!(calibrator.predict(1.5), 1.75);
        assert_eq!(calibrator.predict(-10.0), 1.0);
        assert_eq!(calibrator.predict(10.0), 4.0);
        assert!(calibrator.predict(f64::NAN).is_nan());
    }

    #[test]
    fn isotonic_output_is_monotone_and_preserves_the_mean() {
        let mut state = 7u64;
        let mut next = || {
            state = state
                .wrapping_mul(6364136223846793005)
                .wrapping_add(1442695040888963407);
            (state >> 11) as f64 / (1u64 << 53) as f64
        };
        let x: Vec<f64> = (0..500).map(|_| next()).collect();
        let y: Vec<f64> = x.iter().map(|&v| f64::from(u8::from(next() < v))).collect();
        let calibrator = IsotonicCalibrator::fit(&x, &y).unwrap();
        let fitted: Vec<f64> = x.iter().map(|&v| calibrator.predict(v)).collect();
        let mut sorted: Vec<(f64, f64)> = x.iter().copied().zip(fitted.iter().copied()).collect();
        sorted.sort_by(|a, b| a.0.total_cmp(&b.0));
        assert!(sorted.windows(2).all(|w| w[0].1 <= w[1].1));
        // The least-squares fit keeps the mean (each pooled block does).
        let mean = |v: &[f64]| v.iter().sum::<f64>() / v.len() as f64;
        assert!((mean(&fitted) - mean(&y)).abs() < 1e-12);
    }

    #[test]
    fn estimated_confusion_matrix_is_the_expectation() {
        let cbpe = Cbpe {
            calibrator: None,
            sampling: CbpeMetrics::from_fn(|_| SamplingComponents {
                std: 0.1,
                fraction: 1.0,
            }),
            thresholds: CbpeMetrics::from_fn(|_| Threshold::default()),
            reference_rows: 10,
            chunk_size: 1,
        };
        let estimate = cbpe.estimate(
            &[0.9, 0.2, 0.6, 0.5, f64::NAN],
            &[true, false, true, false, true],
        );
        let m = estimate.metrics;
        assert_eq!(estimate.rows, 4);
        assert!((m.true_positive.value - 1.5).abs() < 1e-15);
        assert!((m.false_positive.value - 0.5).abs() < 1e-15);
        assert!((m.false_negative.value - 0.7).abs() < 1e-15);
        assert!((m.true_negative.value - 1.3).abs() < 1e-15);
        assert!((m.accuracy.value - 2.8 / 4.0).abs() < 1e-15);
        assert!((m.precision.value - 0.75).abs() < 1e-15);
        assert!((m.f1.value - 1.5 / (1.5 + 0.6)).abs() < 1e-15);
        assert!(!m.accuracy.alert);
        assert_eq!(m.accuracy.sampling_error, 0.1 / 2.0);
        assert_eq!(m.true_positive.sampling_error, 0.1 / 2.0 * 4.0);
    }

    #[test]
    fn certain_scores_estimate_the_realised_auc() {
        // With p̂ ∈ {0, 1} the expected curve is the realised ROC curve.
        let labels = [true, false, true, true, false, false, true, false];
        let scores: Vec<f64> = labels.iter().map(|&y| f64::from(u8::from(y))).collect();
        let raw = [0.9, 0.8, 0.7, 0.4, 0.5, 0.2, 0.6, 0.1];
        let estimated = estimate_roc_auc(&scores, &raw);
        assert_eq!(Some(estimated), roc_auc(&labels, &raw));
    }

    #[test]
    fn ece_bins_follow_nannyml() {
        assert_eq!(
            bin_index_edges(20, 4),
            Some(vec![(0, 5), (5, 10), (10, 15), (15, 20)])
        );
        assert_eq!(bin_index_edges(25, 10).map(|e| e.len()), Some(12));
        assert_eq!(bin_index_edges(3, 10), None);
        // Perfect calibration on certain outcomes has zero ECE.
        let probabilities = [0.0, 0.0, 1.0, 1.0, 0.0, 1.0];
        let labels = [false, false, true, true, false, true];
        assert_eq!(
            expected_calibration_error(&labels, &probabilities, 3),
            Some(0.0)
        );
    }

    #[test]
    fn cbpe_round_trips_through_json() {
        let scores: Vec<f64> = (0..200).map(|i| (i as f64 + 0.5) / 200.0).collect();
        let labels: Vec<bool> = (0..200).map(|i| (i * 7919) % 200 < i).collect();
        let cbpe = Cbpe::fit(
            &scores,
            &labels,
            Predicted::Threshold(0.5),
            &CbpeConfig::NANNYML,
        )
        .unwrap();
        let json = serde_json::to_string(&cbpe).unwrap();
        let back: Cbpe = serde_json::from_str(&json).unwrap();
        assert_eq!(back, cbpe);
        let estimate = cbpe.estimate_thresholded(&scores[..50], 0.5);
        let json = serde_json::to_string(&estimate).unwrap();
        let back: CbpeEstimate = serde_json::from_str(&json).unwrap();
        assert_eq!(back.rows, 50);
    }

    #[test]
    fn fit_rejects_bad_references() {
        let config = CbpeConfig::NANNYML;
        assert_eq!(
            Cbpe::fit(&[0.5; 5], &[true; 5], Predicted::Threshold(0.5), &config),
            Err(CbpeError::TooFewRows { rows: 5 })
        );
        assert_eq!(
            Cbpe::fit(&[0.5; 20], &[true; 19], Predicted::Threshold(0.5), &config),
            Err(CbpeError::LengthMismatch {
                scores: 20,
                other: 19
            })
        );
        let mut scores = [0.5; 20];
        scores[3] = 1.5;
        assert_eq!(
            Cbpe::fit(&scores, &[true; 20], Predicted::Threshold(0.5), &config),
            Err(CbpeError::InvalidScore { row: 3, value: 1.5 })
        );
    }
}
