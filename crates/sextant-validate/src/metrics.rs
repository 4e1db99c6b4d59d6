//! Metrics over a model's answers joined with the labels, as scikit-learn
//! 1.9's `sklearn.metrics` defines them, for any subset of the rows and
//! with integer row weights, so one pass computes a slice's value and each
//! bootstrap resample's (a resample is the same rows weighted by how often
//! each was drawn; with unit weights every formula is sklearn's).

use serde_json::Value;

use crate::spec::TaskKind;

#[derive(Debug, Clone, PartialEq)]
pub enum Metric {
    Count,
    Accuracy,
    BalancedAccuracy,
    Precision,
    Recall,
    F1,
    Specificity,
    FalsePositiveRate,
    FalseNegativeRate,
    SelectionRate,
    RocAuc,
    LogLoss,
    BrierScore,
    RecallAtFpr(f64),
    ExpectedCalibrationError(usize),
    Mae,
    Mse,
    Rmse,
    R2,
    Mape,
    MaxError,
    MeanPrediction,
}

const NAMES: &str = "count, accuracy, balanced_accuracy, precision, recall, f1, specificity, \
false_positive_rate, false_negative_rate, selection_rate, roc_auc, log_loss, brier_score, \
recall_at_fpr, expected_calibration_error, mae, mse, rmse, r2, mape, max_error, mean_prediction";

impl Metric {
    /// `name` or `{name: NAME, …parameters}`.
    pub fn parse(value: &Value) -> Result<Metric, String> {
        let (name, object) = match value {
            Value::String(name) => (name.as_str(), None),
            Value::Object(object) => match object.get("name") {
                Some(Value::String(name)) => (name.as_str(), Some(object)),
                _ => return Err("a metric is a name or {name: NAME, …}".into()),
            },
            _ => return Err("a metric is a name or {name: NAME, …}".into()),
        };
        let parameter = |key: &str| object.and_then(|o| o.get(key)).and_then(Value::as_f64);
        if let Some(object) = object {
            let allowed: &[&str] = match name {
                "recall_at_fpr" => &["name", "fpr"],
                "expected_calibration_error" => &["name", "bins"],
                _ => &["name"],
            };
            if let Some(extra) = object.keys().find(|k| !allowed.contains(&k.as_str())) {
                return Err(format!("unknown parameter `{extra}` for metric {name}"));
            }
        }
        Ok(match name {
            "count" => Metric::Count,
            "accuracy" => Metric::Accuracy,
            "balanced_accuracy" => Metric::BalancedAccuracy,
            "precision" => Metric::Precision,
            "recall" | "true_positive_rate" => Metric::Recall,
            "f1" => Metric::F1,
            "specificity" | "true_negative_rate" => Metric::Specificity,
            "false_positive_rate" => Metric::FalsePositiveRate,
            "false_negative_rate" => Metric::FalseNegativeRate,
            "selection_rate" => Metric::SelectionRate,
            "roc_auc" => Metric::RocAuc,
            "log_loss" => Metric::LogLoss,
            "brier_score" => Metric::BrierScore,
            "recall_at_fpr" => {
                let fpr = parameter("fpr").ok_or("recall_at_fpr needs `fpr`")?;
                if !(0.0..=1.0).contains(&fpr) {
                    return Err("recall_at_fpr's `fpr` must be within [0, 1]".into());
                }
                Metric::RecallAtFpr(fpr)
            }
            "expected_calibration_error" => {
                let bins = parameter("bins").unwrap_or(10.0);
                if !(1.0..=1000.0).contains(&bins) || bins.fract() != 0.0 {
                    return Err(
                        "expected_calibration_error's `bins` must be an integer in 1..=1000".into(),
                    );
                }
                Metric::ExpectedCalibrationError(bins as usize)
            }
            "mae" | "mean_absolute_error" => Metric::Mae,
            "mse" | "mean_squared_error" => Metric::Mse,
            "rmse" | "root_mean_squared_error" => Metric::Rmse,
            "r2" => Metric::R2,
            "mape" | "mean_absolute_percentage_error" => Metric::Mape,
            "max_error" => Metric::MaxError,
            "mean_prediction" => Metric::MeanPrediction,
            other => return Err(format!("unknown metric '{other}': expected one of {NAMES}")),
        })
    }

    pub fn name(&self) -> String {
        match self {
            Metric::Count => "count".into(),
            Metric::Accuracy => "accuracy".into(),
            Metric::BalancedAccuracy => "balanced_accuracy".into(),
            Metric::Precision => "precision".into(),
            Metric::Recall => "recall".into(),
            Metric::F1 => "f1".into(),
            Metric::Specificity => "specificity".into(),
            Metric::FalsePositiveRate => "false_positive_rate".into(),
            Metric::FalseNegativeRate => "false_negative_rate".into(),
            Metric::SelectionRate => "selection_rate".into(),
            Metric::RocAuc => "roc_auc".into(),
            Metric::LogLoss => "log_loss".into(),
            Metric::BrierScore => "brier_score".into(),
            Metric::RecallAtFpr(f) => format!("recall_at_fpr[{f}]"),
            Metric::ExpectedCalibrationError(b) => format!("expected_calibration_error[{b}]"),
            Metric::Mae => "mae".into(),
            Metric::Mse => "mse".into(),
            Metric::Rmse => "rmse".into(),
            Metric::R2 => "r2".into(),
            Metric::Mape => "mape".into(),
            Metric::MaxError => "max_error".into(),
            Metric::MeanPrediction => "mean_prediction".into(),
        }
    }

    /// Whether a larger value is better (for `vs_baseline` and gaps).
    pub fn higher_is_better(&self) -> bool {
        !matches!(
            self,
            Metric::FalsePositiveRate
                | Metric::FalseNegativeRate
                | Metric::LogLoss
                | Metric::BrierScore
                | Metric::ExpectedCalibrationError(_)
                | Metric::Mae
                | Metric::Mse
                | Metric::Rmse
                | Metric::Mape
                | Metric::MaxError
        )
    }

    /// Whether the metric reads the score (and wants rows sorted by it).
    pub fn needs_score(&self) -> bool {
        matches!(
            self,
            Metric::RocAuc
                | Metric::LogLoss
                | Metric::BrierScore
                | Metric::RecallAtFpr(_)
                | Metric::ExpectedCalibrationError(_)
        )
    }

    pub fn check_task(&self, task: TaskKind) -> Result<(), String> {
        use Metric::*;
        let fits = match task {
            TaskKind::BinaryClassification => !matches!(
                self,
                Mae | Mse | Rmse | R2 | Mape | MaxError | MeanPrediction
            ),
            TaskKind::MulticlassClassification => matches!(
                self,
                Count | Accuracy | BalancedAccuracy | Precision | Recall | F1
            ),
            TaskKind::Regression => matches!(
                self,
                Count | Mae | Mse | Rmse | R2 | Mape | MaxError | MeanPrediction
            ),
        };
        if fits {
            Ok(())
        } else {
            Err(format!(
                "metric {} does not apply to a {} task",
                self.name(),
                serde_json::to_value(task)
                    .ok()
                    .and_then(|v| v.as_str().map(str::to_string))
                    .unwrap_or_default()
            ))
        }
    }
}

/// The model's answers beside the labels, row by row.
#[derive(Debug, Clone)]
pub struct Outcomes {
    pub task: TaskKind,
    /// Classification: class index of the label (`u32::MAX` when missing).
    pub truth: Vec<u32>,
    /// Classification: class index of the model's label.
    pub predicted: Vec<u32>,
    pub classes: Vec<String>,
    /// Binary: the positive class's index.
    pub positive: u32,
    /// Binary: the positive class's probability, when the model gives one.
    pub score: Option<Vec<f64>>,
    pub threshold: Option<f64>,
    /// Regression: label and prediction.
    pub y: Vec<f64>,
    pub yhat: Vec<f64>,
}

pub const MISSING: u32 = u32::MAX;

impl Outcomes {
    pub fn rows(&self) -> usize {
        match self.task {
            TaskKind::Regression => self.y.len(),
            _ => self.truth.len(),
        }
    }

    pub fn actual_positive(&self, i: usize) -> bool {
        self.truth[i] == self.positive
    }

    pub fn predicted_positive(&self, i: usize) -> bool {
        match (self.threshold, &self.score) {
            (Some(t), Some(score)) => score[i] >= t,
            _ => self.predicted[i] == self.positive,
        }
    }

    /// The number a row contributes as "its score": the positive class's
    /// probability, or a regressor's prediction.
    pub fn score_of(&self, i: usize) -> Option<f64> {
        match self.task {
            TaskKind::Regression => Some(self.yhat[i]),
            TaskKind::BinaryClassification => self.score.as_ref().map(|s| s[i]),
            TaskKind::MulticlassClassification => None,
        }
    }

    /// Rows with a label, in descending score order when there is a score
    /// (what the ordered metrics require), else in row order.
    pub fn labelled_rows(&self, rows: impl Iterator<Item = usize>) -> Vec<usize> {
        let mut rows: Vec<usize> = rows
            .filter(|&i| match self.task {
                TaskKind::Regression => !self.y[i].is_nan(),
                _ => self.truth[i] != MISSING,
            })
            .collect();
        if let (TaskKind::BinaryClassification, Some(score)) = (self.task, &self.score) {
            rows.sort_by(|&a, &b| score[b].total_cmp(&score[a]));
        }
        rows
    }

    /// `metric` over `rows` (from [`Outcomes::labelled_rows`]), each row
    /// counted `weights[k]` times (once when `None`). `None` when the metric
    /// is undefined there (no rows; ROC AUC with one class; no score).
    pub fn evaluate(
        &self,
        metric: &Metric,
        rows: &[usize],
        weights: Option<&[u32]>,
    ) -> Option<f64> {
        let w = |k: usize| weights.map_or(1.0, |w| f64::from(w[k]));
        let total: f64 = (0..rows.len()).map(w).sum();
        if total == 0.0 {
            return None;
        }
        if *metric == Metric::Count {
            return Some(total);
        }
        match self.task {
            TaskKind::Regression => self.regression(metric, rows, &w, total),
            TaskKind::BinaryClassification => self.binary(metric, rows, &w, total),
            TaskKind::MulticlassClassification => self.multiclass(metric, rows, &w, total),
        }
    }

    fn binary(
        &self,
        metric: &Metric,
        rows: &[usize],
        w: &dyn Fn(usize) -> f64,
        total: f64,
    ) -> Option<f64> {
        let ratio = |n: f64, d: f64| if d == 0.0 { 0.0 } else { n / d };
        if metric.needs_score() {
            let score = self.score.as_ref()?;
            return match metric {
                Metric::RocAuc => {
                    weighted_auc(rows, |k| w(k), |i| score[i], |i| self.actual_positive(i))
                }
                Metric::RecallAtFpr(limit) => recall_at_fpr(
                    rows,
                    |k| w(k),
                    |i| score[i],
                    |i| self.actual_positive(i),
                    *limit,
                ),
                Metric::LogLoss => {
                    // sklearn clips to [eps, 1 − eps] with float64's eps.
                    let eps = f64::EPSILON;
                    let sum: f64 = rows
                        .iter()
                        .enumerate()
                        .map(|(k, &i)| {
                            let p = score[i].clamp(eps, 1.0 - eps);
                            let loss = if self.actual_positive(i) {
                                -p.ln()
                            } else {
                                -(1.0 - p).ln()
                            };
                            w(k) * loss
                        })
                        .sum();
                    Some(sum / total)
                }
                Metric::BrierScore => {
                    let sum: f64 = rows
                        .iter()
                        .enumerate()
                        .map(|(k, &i)| {
                            let y = f64::from(u8::from(self.actual_positive(i)));
                            w(k) * (score[i] - y).powi(2)
                        })
                        .sum();
                    Some(sum / total)
                }
                Metric::ExpectedCalibrationError(bins) => {
                    // Equal-width bins on [0, 1]; Σ_b (n_b / n) |mean(y)_b − mean(p)_b|
                    // (Naeini et al., AAAI 2015).
                    let bins = *bins;
                    let mut count = vec![0.0; bins];
                    let mut positives = vec![0.0; bins];
                    let mut scores = vec![0.0; bins];
                    for (k, &i) in rows.iter().enumerate() {
                        let p = score[i].clamp(0.0, 1.0);
                        let b = ((p * bins as f64) as usize).min(bins - 1);
                        count[b] += w(k);
                        scores[b] += w(k) * p;
                        if self.actual_positive(i) {
                            positives[b] += w(k);
                        }
                    }
                    Some(
                        (0..bins)
                            .filter(|&b| count[b] > 0.0)
                            .map(|b| {
                                (count[b] / total) * ((positives[b] - scores[b]) / count[b]).abs()
                            })
                            .sum(),
                    )
                }
                _ => None,
            };
        }
        let (mut tp, mut fp, mut tn, mut fn_) = (0.0, 0.0, 0.0, 0.0);
        for (k, &i) in rows.iter().enumerate() {
            match (self.actual_positive(i), self.predicted_positive(i)) {
                (true, true) => tp += w(k),
                (false, true) => fp += w(k),
                (false, false) => tn += w(k),
                (true, false) => fn_ += w(k),
            }
        }
        let recall = ratio(tp, tp + fn_);
        let specificity = ratio(tn, tn + fp);
        Some(match metric {
            Metric::Accuracy => (tp + tn) / total,
            Metric::BalancedAccuracy => {
                // sklearn averages the recall of the classes present in y_true.
                let present: Vec<f64> = [(tp + fn_ > 0.0, recall), (tn + fp > 0.0, specificity)]
                    .into_iter()
                    .filter_map(|(p, r)| p.then_some(r))
                    .collect();
                present.iter().sum::<f64>() / present.len().max(1) as f64
            }
            Metric::Precision => ratio(tp, tp + fp),
            Metric::Recall => recall,
            Metric::F1 => ratio(2.0 * tp, 2.0 * tp + fp + fn_),
            Metric::Specificity => specificity,
            Metric::FalsePositiveRate => ratio(fp, fp + tn),
            Metric::FalseNegativeRate => ratio(fn_, fn_ + tp),
            Metric::SelectionRate => (tp + fp) / total,
            _ => return None,
        })
    }

    fn multiclass(
        &self,
        metric: &Metric,
        rows: &[usize],
        w: &dyn Fn(usize) -> f64,
        total: f64,
    ) -> Option<f64> {
        let n = self.classes.len();
        let mut true_count = vec![0.0; n];
        let mut predicted_count = vec![0.0; n];
        let mut hits = vec![0.0; n];
        for (k, &i) in rows.iter().enumerate() {
            let (t, p) = (self.truth[i] as usize, self.predicted[i] as usize);
            true_count[t] += w(k);
            if p < n {
                predicted_count[p] += w(k);
            }
            if t == p {
                hits[t] += w(k);
            }
        }
        let ratio = |n: f64, d: f64| if d == 0.0 { 0.0 } else { n / d };
        // sklearn's macro average runs over the labels present in y_true or
        // y_pred; balanced accuracy over those present in y_true.
        let labels: Vec<usize> = (0..n)
            .filter(|&c| true_count[c] > 0.0 || predicted_count[c] > 0.0)
            .collect();
        let macro_mean = |f: &dyn Fn(usize) -> f64| {
            labels.iter().map(|&c| f(c)).sum::<f64>() / labels.len().max(1) as f64
        };
        Some(match metric {
            Metric::Accuracy => hits.iter().sum::<f64>() / total,
            Metric::BalancedAccuracy => {
                let present: Vec<usize> = (0..n).filter(|&c| true_count[c] > 0.0).collect();
                present
                    .iter()
                    .map(|&c| hits[c] / true_count[c])
                    .sum::<f64>()
                    / present.len().max(1) as f64
            }
            Metric::Precision => macro_mean(&|c| ratio(hits[c], predicted_count[c])),
            Metric::Recall => macro_mean(&|c| ratio(hits[c], true_count[c])),
            Metric::F1 => macro_mean(&|c| ratio(2.0 * hits[c], true_count[c] + predicted_count[c])),
            _ => return None,
        })
    }

    fn regression(
        &self,
        metric: &Metric,
        rows: &[usize],
        w: &dyn Fn(usize) -> f64,
        total: f64,
    ) -> Option<f64> {
        let mean_of = |f: &dyn Fn(usize) -> f64| {
            rows.iter()
                .enumerate()
                .map(|(k, &i)| w(k) * f(i))
                .sum::<f64>()
                / total
        };
        Some(match metric {
            Metric::Mae => mean_of(&|i| (self.y[i] - self.yhat[i]).abs()),
            Metric::Mse => mean_of(&|i| (self.y[i] - self.yhat[i]).powi(2)),
            Metric::Rmse => mean_of(&|i| (self.y[i] - self.yhat[i]).powi(2)).sqrt(),
            // sklearn: |y − ŷ| / max(|y|, eps).
            Metric::Mape => {
                mean_of(&|i| (self.y[i] - self.yhat[i]).abs() / self.y[i].abs().max(f64::EPSILON))
            }
            Metric::MaxError => rows
                .iter()
                .enumerate()
                .filter(|(k, _)| w(*k) > 0.0)
                .map(|(_, &i)| (self.y[i] - self.yhat[i]).abs())
                .fold(0.0, f64::max),
            Metric::MeanPrediction => mean_of(&|i| self.yhat[i]),
            Metric::R2 => {
                // 1 − SS_res / SS_tot; sklearn's force_finite gives 1 for a
                // perfect fit of a constant target and 0 otherwise.
                let mean = mean_of(&|i| self.y[i]);
                let ss_res: f64 = rows
                    .iter()
                    .enumerate()
                    .map(|(k, &i)| w(k) * (self.y[i] - self.yhat[i]).powi(2))
                    .sum();
                let ss_tot: f64 = rows
                    .iter()
                    .enumerate()
                    .map(|(k, &i)| w(k) * (self.y[i] - mean).powi(2))
                    .sum();
                if ss_tot == 0.0 {
                    if ss_res == 0.0 {
                        1.0
                    } else {
                        0.0
                    }
                } else {
                    1.0 - ss_res / ss_tot
                }
            }
            _ => return None,
        })
    }
}

/// ROC AUC of rows sorted by descending score: P(score⁺ > score⁻) + ½
/// P(tie), the Mann–Whitney U statistic over the weighted pairs, which is
/// what sklearn's trapezoidal `roc_auc_score` computes.
fn weighted_auc(
    rows: &[usize],
    w: impl Fn(usize) -> f64,
    score: impl Fn(usize) -> f64,
    positive: impl Fn(usize) -> bool,
) -> Option<f64> {
    let (mut positives_above, mut pairs) = (0.0, 0.0);
    let (mut total_pos, mut total_neg) = (0.0, 0.0);
    let mut k = 0;
    while k < rows.len() {
        let s = score(rows[k]);
        if !s.is_finite() {
            return None;
        }
        let (mut group_pos, mut group_neg) = (0.0, 0.0);
        let mut end = k;
        while end < rows.len() && score(rows[end]) == s {
            if positive(rows[end]) {
                group_pos += w(end);
            } else {
                group_neg += w(end);
            }
            end += 1;
        }
        pairs += group_neg * (positives_above + 0.5 * group_pos);
        positives_above += group_pos;
        total_pos += group_pos;
        total_neg += group_neg;
        k = end;
    }
    if total_pos == 0.0 || total_neg == 0.0 {
        return None;
    }
    Some(pairs / (total_pos * total_neg))
}

/// The highest recall among the ROC curve's thresholds whose false
/// positive rate is at most `limit` (rows sorted by descending score).
fn recall_at_fpr(
    rows: &[usize],
    w: impl Fn(usize) -> f64,
    score: impl Fn(usize) -> f64,
    positive: impl Fn(usize) -> bool,
    limit: f64,
) -> Option<f64> {
    let total_pos: f64 = rows
        .iter()
        .enumerate()
        .filter(|(_, &i)| positive(i))
        .map(|(k, _)| w(k))
        .sum();
    let total_neg: f64 = rows
        .iter()
        .enumerate()
        .filter(|(_, &i)| !positive(i))
        .map(|(k, _)| w(k))
        .sum();
    if total_pos == 0.0 || total_neg == 0.0 {
        return None;
    }
    let (mut tp, mut fp, mut best) = (0.0, 0.0, 0.0);
    let mut k = 0;
    while k < rows.len() {
        let s = score(rows[k]);
        while k < rows.len() && score(rows[k]) == s {
            if positive(rows[k]) {
                tp += w(k);
            } else {
                fp += w(k);
            }
            k += 1;
        }
        if fp / total_neg <= limit {
            best = f64::max(best, tp / total_pos);
        }
    }
    Some(best)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn binary(truth: &[u32], score: &[f64]) -> Outcomes {
        Outcomes {
            task: TaskKind::BinaryClassification,
            truth: truth.to_vec(),
            predicted: score.iter().map(|&s| u32::from(s >= 0.5)).collect(),
            classes: vec!["0".into(), "1".into()],
            positive: 1,
            score: Some(score.to_vec()),
            threshold: None,
            y: Vec::new(),
            yhat: Vec::new(),
        }
    }

    #[test]
    fn auc_counts_ties_as_half() {
        // Positives at 0.8 and 0.5, negatives at 0.5 and 0.2: pairs
        // (0.8>0.5, 0.8>0.2, 0.5=0.5, 0.5>0.2) = 3.5 of 4.
        let o = binary(&[1, 1, 0, 0], &[0.8, 0.5, 0.5, 0.2]);
        let rows = o.labelled_rows(0..4);
        assert_eq!(o.evaluate(&Metric::RocAuc, &rows, None), Some(0.875));
        let one_class = binary(&[1, 1], &[0.3, 0.6]);
        assert_eq!(
            one_class.evaluate(&Metric::RocAuc, &one_class.labelled_rows(0..2), None),
            None
        );
    }

    #[test]
    fn weights_equal_repeated_rows() {
        let truth = [1, 0, 1, 1, 0, 0, 1, 0];
        let score = [0.9, 0.4, 0.35, 0.7, 0.6, 0.1, 0.55, 0.5];
        let weights = [3u32, 0, 1, 2, 1, 4, 0, 2];
        let o = binary(&truth, &score);
        let rows = o.labelled_rows(0..8);
        let w: Vec<u32> = rows.iter().map(|&i| weights[i]).collect();
        let (mut t, mut s) = (Vec::new(), Vec::new());
        for i in 0..8 {
            for _ in 0..weights[i] {
                t.push(truth[i]);
                s.push(score[i]);
            }
        }
        let repeated = binary(&t, &s);
        let all = repeated.labelled_rows(0..t.len());
        for metric in [
            Metric::Accuracy,
            Metric::F1,
            Metric::RocAuc,
            Metric::LogLoss,
            Metric::BrierScore,
            Metric::BalancedAccuracy,
            Metric::RecallAtFpr(0.3),
            Metric::ExpectedCalibrationError(5),
        ] {
            let a = o.evaluate(&metric, &rows, Some(&w)).unwrap();
            let b = repeated.evaluate(&metric, &all, None).unwrap();
            assert!((a - b).abs() < 1e-12, "{metric:?}: {a} vs {b}");
        }
    }

    #[test]
    fn regression_metrics() {
        let o = Outcomes {
            task: TaskKind::Regression,
            truth: Vec::new(),
            predicted: Vec::new(),
            classes: Vec::new(),
            positive: 0,
            score: None,
            threshold: None,
            y: vec![3.0, -0.5, 2.0, 7.0],
            yhat: vec![2.5, 0.0, 2.0, 8.0],
        };
        let rows: Vec<usize> = (0..4).collect();
        // sklearn's docstring examples: mae 0.5, mse 0.375, r2 0.9486081370449679.
        assert_eq!(o.evaluate(&Metric::Mae, &rows, None), Some(0.5));
        assert_eq!(o.evaluate(&Metric::Mse, &rows, None), Some(0.375));
        assert!(
            (o.evaluate(&Metric::R2, &rows, None).unwrap() - 0.948_608_137_044_967_9).abs() < 1e-12
        );
        assert_eq!(o.evaluate(&Metric::MaxError, &rows, None), Some(1.0));
    }
}
