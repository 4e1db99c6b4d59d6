//! Realised model performance once labels arrive: confusion-matrix metrics
//! (binary and macro-averaged multiclass), ROC AUC, log loss and the
//! regression errors, reproducing scikit-learn 1.9's `sklearn.metrics`.
//!
//! Where sklearn raises on data (a class missing for ROC AUC, NaN scores,
//! probabilities outside [0, 1]) these functions return `None` or NaN
//! instead, so a monitoring window with odd data cannot bring a report
//! down; mismatched slice lengths and out-of-range class indices are
//! programming errors and panic. Means are taken in numpy's pairwise
//! summation order ([`pairwise_sum_by`]), so results agree with sklearn to
//! the last bit except where a docstring says otherwise.

use serde::{Deserialize, Serialize};

use crate::special::pairwise_sum_by;

/// `numerator / denominator`, or 0 when the denominator is 0: sklearn's
/// `zero_division=0` (also the value its default `zero_division="warn"`
/// returns, with a warning).
fn ratio(numerator: f64, denominator: f64) -> f64 {
    if denominator == 0.0 {
        0.0
    } else {
        numerator / denominator
    }
}

/// Mean in numpy's order (`np.mean`): pairwise sum divided by n. NaN when
/// `n == 0`.
fn pairwise_mean(n: usize, value: impl Fn(usize) -> f64 + Copy) -> f64 {
    pairwise_sum_by(n, value) / n as f64
}

// ------------------------------------------------------------------ binary

/// The 2×2 confusion matrix of a binary classifier (positive class =
/// `true`). Metrics that would divide by zero return 0, as sklearn's
/// `zero_division=0` (the result value of its default `"warn"`).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct BinaryCounts {
    pub tp: u64,
    pub fp: u64,
    pub tn: u64,
    pub fn_: u64,
}

impl BinaryCounts {
    /// Counts from labels. Panics if the slices differ in length.
    pub fn from_labels(y_true: &[bool], y_pred: &[bool]) -> Self {
        assert_eq!(
            y_true.len(),
            y_pred.len(),
            "y_true and y_pred must have one entry per row"
        );
        let mut counts = Self::default();
        for (&truth, &predicted) in y_true.iter().zip(y_pred) {
            counts.add(truth, predicted);
        }
        counts
    }

    /// Adds one labelled prediction.
    pub fn add(&mut self, truth: bool, predicted: bool) {
        match (truth, predicted) {
            (true, true) => self.tp += 1,
            (false, true) => self.fp += 1,
            (false, false) => self.tn += 1,
            (true, false) => self.fn_ += 1,
        }
    }

    /// Adds another window's counts (counts are mergeable).
    pub fn merge(&mut self, other: &Self) {
        self.tp += other.tp;
        self.fp += other.fp;
        self.tn += other.tn;
        self.fn_ += other.fn_;
    }

    pub fn total(&self) -> u64 {
        self.tp + self.fp + self.tn + self.fn_
    }

    /// (TP + TN) / n, sklearn's `accuracy_score`; 0 for no rows.
    pub fn accuracy(&self) -> f64 {
        ratio((self.tp + self.tn) as f64, self.total() as f64)
    }

    /// TP / (TP + FP), sklearn's `precision_score`.
    pub fn precision(&self) -> f64 {
        ratio(self.tp as f64, (self.tp + self.fp) as f64)
    }

    /// TP / (TP + FN), sklearn's `recall_score` (sensitivity, TPR).
    pub fn recall(&self) -> f64 {
        ratio(self.tp as f64, (self.tp + self.fn_) as f64)
    }

    /// 2·TP / (2·TP + FP + FN), sklearn's `f1_score`, which computes F1
    /// from the counts (not from rounded precision and recall).
    pub fn f1(&self) -> f64 {
        let true_sum = (self.tp + self.fn_) as f64;
        let predicted_sum = (self.tp + self.fp) as f64;
        ratio(2.0 * self.tp as f64, true_sum + predicted_sum)
    }

    /// TN / (TN + FP): the recall of the negative class (TNR), sklearn's
    /// `recall_score(pos_label=0)`.
    pub fn specificity(&self) -> f64 {
        ratio(self.tn as f64, (self.tn + self.fp) as f64)
    }
}

// -------------------------------------------------------------- multiclass

/// Confusion matrix of `n_classes` classes, row-major with rows = true
/// class and columns = predicted class: entry `t * n_classes + p` counts
/// rows with `y_true = t` and `y_pred = p` (sklearn's `confusion_matrix`
/// with `labels=range(n_classes)`).
///
/// Panics if the slices differ in length or a label is `>= n_classes`.
pub fn confusion_matrix(y_true: &[usize], y_pred: &[usize], n_classes: usize) -> Vec<u64> {
    assert_eq!(
        y_true.len(),
        y_pred.len(),
        "y_true and y_pred must have one entry per row"
    );
    let mut matrix = vec![0u64; n_classes * n_classes];
    for (&truth, &predicted) in y_true.iter().zip(y_pred) {
        assert!(
            truth < n_classes && predicted < n_classes,
            "label ({truth}, {predicted}) out of range for {n_classes} classes"
        );
        matrix[truth * n_classes + predicted] += 1;
    }
    matrix
}

/// Accuracy, precision, recall and F1 of a classifier.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct ClassificationMetrics {
    pub accuracy: f64,
    pub precision: f64,
    pub recall: f64,
    pub f1: f64,
}

impl ClassificationMetrics {
    /// sklearn's `average="binary"` with positive class 1 (`true`).
    pub fn binary(counts: &BinaryCounts) -> Self {
        Self {
            accuracy: counts.accuracy(),
            precision: counts.precision(),
            recall: counts.recall(),
            f1: counts.f1(),
        }
    }

    /// sklearn's `average="macro"` with its default `labels=None`: the
    /// unweighted mean of per-class precision, recall and F1 over the classes
    /// that occur in `y_true` or `y_pred`. A class absent from both (an
    /// all-zero row and column) is skipped, as sklearn does; passing
    /// `labels=range(n_classes)` to sklearn would instead count it as 0.
    /// Per class, F1 = 2·TP / (|true| + |predicted|) and a zero denominator
    /// gives 0 (`zero_division=0`). Accuracy is the trace over the total
    /// (0 for an empty matrix, where every metric is 0).
    ///
    /// Panics if `confusion.len() != n_classes²`.
    pub fn macro_average(confusion: &[u64], n_classes: usize) -> Self {
        assert_eq!(
            confusion.len(),
            n_classes * n_classes,
            "the confusion matrix must be n_classes × n_classes"
        );
        let row_sum = |c: usize| {
            confusion[c * n_classes..(c + 1) * n_classes]
                .iter()
                .sum::<u64>()
        };
        let column_sum = |c: usize| {
            (0..n_classes)
                .map(|t| confusion[t * n_classes + c])
                .sum::<u64>()
        };
        let mut precision = Vec::with_capacity(n_classes);
        let mut recall = Vec::with_capacity(n_classes);
        let mut f1 = Vec::with_capacity(n_classes);
        let (mut correct, mut total) = (0u64, 0u64);
        for class in 0..n_classes {
            let tp = confusion[class * n_classes + class];
            let (true_sum, predicted_sum) = (row_sum(class), column_sum(class));
            correct += tp;
            total += true_sum;
            if true_sum == 0 && predicted_sum == 0 {
                continue;
            }
            precision.push(ratio(tp as f64, predicted_sum as f64));
            recall.push(ratio(tp as f64, true_sum as f64));
            f1.push(ratio(
                2.0 * tp as f64,
                true_sum as f64 + predicted_sum as f64,
            ));
        }
        let mean = |values: &[f64]| {
            if values.is_empty() {
                0.0
            } else {
                pairwise_mean(values.len(), |i| values[i])
            }
        };
        Self {
            accuracy: ratio(correct as f64, total as f64),
            precision: mean(&precision),
            recall: mean(&recall),
            f1: mean(&f1),
        }
    }
}

// ----------------------------------------------------------------- ROC AUC

/// Area under the ROC curve of `scores` for the positive rows of `y_true`,
/// by the Mann–Whitney U statistic with mid-ranks for ties:
///
/// ```text
/// AUC = (R₊ − n₊(n₊ + 1)/2) / (n₊ n₋)
/// ```
///
/// where R₊ is the sum of the positives' ranks (Hanley & McNeil,
/// Radiology 143, 1982). This equals sklearn's `roc_auc_score` (trapezoids
/// under the ROC curve, which count a tie as half) exactly in real
/// arithmetic; in floating point the U statistic here is exact (twice the
/// rank sum is an integer) and the only rounding is the final division, so
/// the result is the correctly rounded AUC while sklearn's trapezoid sum
/// can differ from it by a few ulps.
///
/// Returns `None` when either class is absent or a score is not finite
/// (sklearn raises in both cases). Panics if the slices differ in length.
pub fn roc_auc(y_true: &[bool], scores: &[f64]) -> Option<f64> {
    assert_eq!(
        y_true.len(),
        scores.len(),
        "y_true and scores must have one entry per row"
    );
    if scores.iter().any(|s| !s.is_finite()) {
        return None;
    }
    let n = scores.len();
    let positives = y_true.iter().filter(|&&t| t).count();
    let negatives = n - positives;
    if positives == 0 || negatives == 0 {
        return None;
    }
    // `+ 0.0` turns −0 into +0, so the total order groups them as equal.
    let mut rows: Vec<(f64, bool)> = scores
        .iter()
        .zip(y_true)
        .map(|(&s, &t)| (s + 0.0, t))
        .collect();
    rows.sort_unstable_by(|a, b| a.0.total_cmp(&b.0));
    // Twice the positives' rank sum: a tie group at sorted positions
    // [start, end) has 1-based mid-rank (start + 1 + end) / 2.
    let mut twice_rank_sum: u128 = 0;
    let mut start = 0;
    while start < n {
        let mut end = start + 1;
        while end < n && rows[end].0 == rows[start].0 {
            end += 1;
        }
        let group_positives = rows[start..end].iter().filter(|r| r.1).count() as u128;
        twice_rank_sum += group_positives * (start + 1 + end) as u128;
        start = end;
    }
    let (positives, negatives) = (positives as u128, negatives as u128);
    let twice_u = twice_rank_sum - positives * (positives + 1);
    Some(twice_u as f64 / (2 * positives * negatives) as f64)
}

/// One-vs-rest macro ROC AUC of a probabilistic classifier, as sklearn's
/// `roc_auc_score(y_true, probabilities, multi_class="ovr",
/// average="macro")`: the unweighted mean over classes c of
/// `roc_auc(y_true == c, probabilities[:, c])`.
///
/// `probabilities` is row-major n × `n_classes`. As in sklearn, two classes
/// take the binary path (AUC of column 1 alone), and with more classes
/// every class must occur in `y_true` and every row must sum to 1 within
/// numpy's `allclose` (|1 − Σ| ≤ 1e-8 + 1e-5·|Σ|); otherwise, or on a
/// non-finite probability, the result is `None` (sklearn raises).
///
/// Panics if `n_classes < 2`, the matrix is not n × `n_classes` or a label is
/// `>= n_classes`.
pub fn roc_auc_ovr_macro(y_true: &[usize], probabilities: &[f64], n_classes: usize) -> Option<f64> {
    check_probability_matrix(y_true, probabilities, n_classes);
    let column = |c: usize| -> Vec<f64> {
        probabilities
            .iter()
            .skip(c)
            .step_by(n_classes)
            .copied()
            .collect()
    };
    if n_classes == 2 {
        let positive: Vec<bool> = y_true.iter().map(|&y| y == 1).collect();
        return roc_auc(&positive, &column(1));
    }
    for row in probabilities.chunks_exact(n_classes) {
        let sum = pairwise_sum_by(n_classes, |c| row[c]);
        if !sum.is_finite() || (1.0 - sum).abs() > 1e-8 + 1e-5 * sum.abs() {
            return None;
        }
    }
    let mut scores = Vec::with_capacity(n_classes);
    for class in 0..n_classes {
        let positive: Vec<bool> = y_true.iter().map(|&y| y == class).collect();
        scores.push(roc_auc(&positive, &column(class))?);
    }
    Some(pairwise_mean(n_classes, |c| scores[c]))
}

fn check_probability_matrix(y_true: &[usize], probabilities: &[f64], n_classes: usize) {
    assert!(n_classes >= 2, "a classifier has at least 2 classes");
    assert_eq!(
        probabilities.len(),
        y_true.len() * n_classes,
        "probabilities must be row-major n × n_classes"
    );
    if let Some(&label) = y_true.iter().find(|&&y| y >= n_classes) {
        panic!("label {label} out of range for {n_classes} classes");
    }
}

// ---------------------------------------------------------------- log loss

/// Mean cross-entropy `−(1/n) Σ ln p_{i, y_i}` as sklearn ≥ 1.5's
/// `log_loss(y_true, probabilities, labels=range(n_classes))`: each
/// probability is clipped to [ε, 1 − ε] with ε = `f64::EPSILON` (sklearn's
/// `np.finfo(dtype).eps`) and rows are *not* renormalised (sklearn 1.5
/// dropped the renormalisation and only warns when rows do not sum to 1).
///
/// Returns NaN for no rows or when a probability is NaN or outside [0, 1]
/// (sklearn raises). Panics if the matrix is not n × `n_classes` or a label
/// is `>= n_classes`.
pub fn log_loss(y_true: &[usize], probabilities: &[f64], n_classes: usize) -> f64 {
    check_probability_matrix(y_true, probabilities, n_classes);
    if y_true.is_empty() || probabilities.iter().any(|p| !(0.0..=1.0).contains(p)) {
        return f64::NAN;
    }
    pairwise_mean(y_true.len(), |i| {
        -clip_probability(probabilities[i * n_classes + y_true[i]]).ln()
    })
}

/// [`log_loss`] of a binary classifier from P(class 1): sklearn's
/// `log_loss(y_true, p_positive)`, which builds the columns `[1 − p, p]`
/// before clipping.
///
/// Returns NaN for no rows or a probability that is NaN or outside [0, 1].
/// Panics if the slices differ in length.
pub fn log_loss_binary(y_true: &[bool], p_positive: &[f64]) -> f64 {
    assert_eq!(
        y_true.len(),
        p_positive.len(),
        "y_true and p_positive must have one entry per row"
    );
    if y_true.is_empty() || p_positive.iter().any(|p| !(0.0..=1.0).contains(p)) {
        return f64::NAN;
    }
    pairwise_mean(y_true.len(), |i| {
        let p = if y_true[i] {
            p_positive[i]
        } else {
            1.0 - p_positive[i]
        };
        -clip_probability(p).ln()
    })
}

fn clip_probability(p: f64) -> f64 {
    p.clamp(f64::EPSILON, 1.0 - f64::EPSILON)
}

// -------------------------------------------------------------- regression

fn check_regression(y_true: &[f64], y_pred: &[f64]) {
    assert_eq!(
        y_true.len(),
        y_pred.len(),
        "y_true and y_pred must have one entry per row"
    );
}

/// Mean absolute error `(1/n) Σ |ŷ − y|`, sklearn's `mean_absolute_error`.
/// NaN for no rows. Panics if the slices differ in length.
pub fn mae(y_true: &[f64], y_pred: &[f64]) -> f64 {
    check_regression(y_true, y_pred);
    pairwise_mean(y_true.len(), |i| (y_pred[i] - y_true[i]).abs())
}

/// Root mean squared error `√((1/n) Σ (y − ŷ)²)`, sklearn's
/// `root_mean_squared_error`. NaN for no rows. Panics if the slices differ
/// in length.
pub fn rmse(y_true: &[f64], y_pred: &[f64]) -> f64 {
    check_regression(y_true, y_pred);
    pairwise_mean(y_true.len(), |i| {
        let error = y_true[i] - y_pred[i];
        error * error
    })
    .sqrt()
}

/// Mean absolute percentage error `(1/n) Σ |ŷ − y| / max(|y|, ε)` with
/// ε = `f64::EPSILON`, sklearn's `mean_absolute_percentage_error`: a
/// fraction, not a percentage, and huge (not infinite) where y = 0. NaN
/// for no rows. Panics if the slices differ in length.
pub fn mape(y_true: &[f64], y_pred: &[f64]) -> f64 {
    check_regression(y_true, y_pred);
    pairwise_mean(y_true.len(), |i| {
        (y_pred[i] - y_true[i]).abs() / y_true[i].abs().max(f64::EPSILON)
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn perfectly_separated_scores_have_auc_one_and_reversed_zero() {
        let y_true = [false, false, true, false, true, true];
        let scores = [0.1, 0.2, 0.8, 0.3, 0.9, 0.7];
        assert_eq!(roc_auc(&y_true, &scores), Some(1.0));
        let reversed: Vec<f64> = scores.iter().map(|s| -s).collect();
        assert_eq!(roc_auc(&y_true, &reversed), Some(0.0));
    }

    #[test]
    fn constant_scores_have_auc_one_half() {
        let y_true = [true, false, false, true, false];
        assert_eq!(roc_auc(&y_true, &[0.3; 5]), Some(0.5));
        // −0 and +0 are one tie.
        assert_eq!(roc_auc(&[true, false], &[0.0, -0.0]), Some(0.5));
    }

    #[test]
    fn auc_is_none_without_both_classes_or_with_nan() {
        assert_eq!(roc_auc(&[true, true], &[0.1, 0.2]), None);
        assert_eq!(roc_auc(&[true, false], &[f64::NAN, 0.2]), None);
        assert_eq!(roc_auc(&[], &[]), None);
    }

    #[test]
    fn auc_equals_the_pairwise_concordance() {
        // AUC = P(score₊ > score₋) + ½ P(tie), by brute force over pairs.
        let y_true = [true, false, true, true, false, false, true, false];
        let scores = [0.5, 0.5, 0.9, 0.1, 0.3, 0.9, 0.5, 0.2];
        let mut concordance = 0.0;
        let mut pairs = 0.0;
        for i in 0..8 {
            for j in 0..8 {
                if y_true[i] && !y_true[j] {
                    pairs += 1.0;
                    concordance += match scores[i].partial_cmp(&scores[j]).unwrap() {
                        std::cmp::Ordering::Greater => 1.0,
                        std::cmp::Ordering::Equal => 0.5,
                        std::cmp::Ordering::Less => 0.0,
                    };
                }
            }
        }
        assert_eq!(roc_auc(&y_true, &scores), Some(concordance / pairs));
    }

    #[test]
    fn zero_division_gives_zero() {
        let counts = BinaryCounts::default();
        assert_eq!(
            (
                counts.accuracy(),
                counts.precision(),
                counts.recall(),
                counts.f1(),
                counts.specificity()
            ),
            (0.0, 0.0, 0.0, 0.0, 0.0)
        );
    }

    #[test]
    fn binary_metrics_from_counts() {
        let counts = BinaryCounts {
            tp: 6,
            fp: 2,
            tn: 10,
            fn_: 4,
        };
        assert_eq!(counts.precision(), 0.75);
        assert_eq!(counts.recall(), 0.6);
        assert_eq!(counts.f1(), 12.0 / 18.0);
        assert_eq!(counts.specificity(), 10.0 / 12.0);
        assert_eq!(counts.accuracy(), 16.0 / 22.0);
    }

    #[test]
    fn macro_average_of_two_classes_averages_both_sides() {
        let y_true = [true, true, false, false, true];
        let y_pred = [true, false, false, true, true];
        let counts = BinaryCounts::from_labels(&y_true, &y_pred);
        let as_index = |v: &[bool]| v.iter().map(|&b| usize::from(b)).collect::<Vec<_>>();
        let matrix = confusion_matrix(&as_index(&y_true), &as_index(&y_pred), 2);
        assert_eq!(matrix, vec![counts.tn, counts.fp, counts.fn_, counts.tp]);
        let macro_metrics = ClassificationMetrics::macro_average(&matrix, 2);
        let negative = BinaryCounts {
            tp: counts.tn,
            tn: counts.tp,
            fp: counts.fn_,
            fn_: counts.fp,
        };
        assert_eq!(
            macro_metrics.recall,
            (counts.recall() + negative.recall()) / 2.0
        );
        assert_eq!(macro_metrics.accuracy, counts.accuracy());
    }

    #[test]
    fn log_loss_of_certain_right_answers_is_clipped_not_zero() {
        let loss = log_loss(&[0, 1], &[1.0, 0.0, 0.0, 1.0], 2);
        assert_eq!(loss, -(1.0 - f64::EPSILON).ln());
        assert!(log_loss(&[0], &[1.5, -0.5], 2).is_nan());
        let wrong = log_loss_binary(&[true], &[0.0]);
        assert_eq!(wrong, -f64::EPSILON.ln());
    }

    #[test]
    fn regression_errors_of_a_perfect_model_are_zero() {
        let y = [1.0, -2.0, 0.0, 4.5];
        assert_eq!((mae(&y, &y), rmse(&y, &y), mape(&y, &y)), (0.0, 0.0, 0.0));
        assert_eq!(mape(&[0.0], &[1.0]), 1.0 / f64::EPSILON);
    }
}
