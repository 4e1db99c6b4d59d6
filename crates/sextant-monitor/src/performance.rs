//! Performance of a served model version from ground-truth labels joined
//! to its predictions: realised metrics per window, label drift, label
//! delay and coverage, concept-drift signals (change detectors on the error
//! stream, and the gap between realised and label-free estimated
//! performance), and CBPE's estimate for windows whose labels have not come.
//!
//! Pure and sync: the server hands in labelled rows (ordered by prediction
//! time), the reference rows (the version's earliest labelled rows) and per
//! window prediction counts and score samples; nothing here reads a clock.

use std::collections::{BTreeMap, HashMap};

use serde::{Deserialize, Serialize};
use sextant_stats::cbpe::{Cbpe, CbpeConfig, CbpeMetric, Predicted};
use sextant_stats::change::{
    Adwin, AdwinConfig, ChangeDetector, ChangeState, Ddm, DdmConfig, PageHinkley, PageHinkleyConfig,
};
use sextant_stats::performance as metrics;

/// What a model answered for one row, as far as judging it needs.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct Outcome {
    /// The predicted class as text, when the model names one.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub label: Option<String>,
    /// The answer as a number (a regression value, a score, a class number).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub value: Option<f64>,
    /// Class probabilities in the model's class order.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub probabilities: Option<Vec<f64>>,
}

/// One labelled row.
#[derive(Debug, Clone)]
pub struct LabelledRow {
    pub predicted_at_us: i64,
    pub received_at_us: i64,
    /// The label as text (`1.0` written `1`).
    pub label: String,
    /// The label as a number, when it is one.
    pub label_value: Option<f64>,
    pub outcome: Outcome,
}

/// Rows predicted in one window (labelled or not), from the serving side.
#[derive(Debug, Clone, Default)]
pub struct PredictedWindow {
    pub start_us: i64,
    pub rows: u64,
    /// A sample of the positive-class scores of a binary classifier.
    pub scores: Vec<f64>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Task {
    Classification,
    Regression,
}

/// What to compute.
#[derive(Debug, Clone)]
pub struct PerformanceOptions {
    pub from_us: i64,
    pub to_us: i64,
    pub window_us: i64,
    /// `None`: inferred from labels and answers.
    pub task: Option<Task>,
}

/// Realised metrics; absent where they do not apply or cannot be computed.
#[derive(Debug, Clone, Default, Serialize)]
pub struct Metrics {
    #[serde(skip_serializing_if = "Option::is_none")]
    pub accuracy: Option<f64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub precision: Option<f64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub recall: Option<f64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub f1: Option<f64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub roc_auc: Option<f64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub log_loss: Option<f64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub mae: Option<f64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub rmse: Option<f64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub mape: Option<f64>,
}

/// How long labels took to arrive, in seconds.
#[derive(Debug, Clone, Serialize)]
pub struct LabelDelay {
    pub median_seconds: f64,
    pub p90_seconds: f64,
    pub max_seconds: f64,
}

/// The labels of a window against the reference's labels.
#[derive(Debug, Clone, Serialize)]
pub struct LabelDrift {
    /// `jensen_shannon` (classes, bits) or `wasserstein_normed` (numbers).
    pub method: &'static str,
    pub statistic: f64,
    /// Chi-square homogeneity (classes) or two-sample K-S (numbers).
    pub p_value: f64,
    pub threshold: f64,
    pub drifted: bool,
}

/// CBPE's estimate of a binary classifier's metrics without labels.
#[derive(Debug, Clone, Serialize)]
pub struct Estimated {
    pub rows: usize,
    pub accuracy: f64,
    pub precision: f64,
    pub recall: f64,
    pub f1: f64,
    pub roc_auc: Option<f64>,
    /// One standard error of the estimate at this window's size.
    pub sampling_error: BTreeMap<&'static str, f64>,
}

/// Realised accuracy (or ROC AUC) well below CBPE's estimate: the model's
/// P(y|x) no longer holds (CBPE assumes it does), i.e. concept drift.
#[derive(Debug, Clone, Serialize)]
pub struct ConceptGap {
    pub metric: &'static str,
    pub realised: f64,
    pub estimated: f64,
    /// Sampling error of the realised metric over the labelled rows.
    pub tolerance: f64,
    pub flagged: bool,
}

#[derive(Debug, Clone, Serialize)]
pub struct WindowPerformance {
    pub start_us: i64,
    pub end_us: i64,
    /// Rows predicted (from the serving side; absent when not known here).
    pub predictions: Option<u64>,
    pub labelled: u64,
    /// Labelled share of the rows predicted.
    pub coverage: Option<f64>,
    pub metrics: Metrics,
    /// Share of each class (classification) among the labels.
    #[serde(skip_serializing_if = "BTreeMap::is_empty")]
    pub label_distribution: BTreeMap<String, f64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub label_mean: Option<f64>,
    pub label_drift: Option<LabelDrift>,
    pub label_delay: Option<LabelDelay>,
    pub estimated: Option<Estimated>,
    pub concept_gap: Option<ConceptGap>,
}

/// A change detector's alarm on the error stream.
#[derive(Debug, Clone, Serialize)]
pub struct ChangePoint {
    pub detector: &'static str,
    /// Prediction time of the row that raised it.
    pub time_us: i64,
    /// Its position among the span's labelled rows.
    pub index: usize,
    /// Mean error since the same detector's previous alarm, and up to its next.
    pub error_before: f64,
    pub error_after: f64,
    /// One-sided p-value that errors grew at this point: a pooled
    /// two-proportion z-test on 0/1 errors, a large-sample z-test on the
    /// mean absolute error of a regressor. `None` with fewer than
    /// [`MIN_ROWS`] rows on either side.
    pub p_value: Option<f64>,
    /// Errors grew here beyond chance (`p_value` < [`CHANGE_SIGNIFICANCE`]).
    /// The detectors reproduce river and so keep its blind spots: DDM
    /// alarms on the first error after a run of correct answers (its
    /// minimum `p + s` is then 0), which on a good model is noise, so
    /// only confirmed points count as concept drift.
    pub confirmed: bool,
}

#[derive(Debug, Clone, Serialize)]
pub struct PerformanceReport {
    pub task: Task,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub classes: Vec<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub positive_class: Option<String>,
    pub reference_rows: usize,
    pub overall: WindowPerformance,
    pub windows: Vec<WindowPerformance>,
    pub change_points: Vec<ChangePoint>,
    /// A detector raised an alarm where errors grew, or a window's
    /// realised performance fell well below its estimate.
    pub concept_drift: bool,
}

/// Minimum labelled rows before a window's metrics, drift or gap are judged.
const MIN_ROWS: usize = 30;
/// Effect-size thresholds, as the batch report's `sextant` methods use.
const LABEL_JS_THRESHOLD: f64 = 0.1;
const LABEL_W1_THRESHOLD: f64 = 0.1;
const SIGNIFICANCE: f64 = 0.05;
/// A change point counts when errors after it exceed those before at this
/// one-sided level; strict, because the split is chosen by the detector.
const CHANGE_SIGNIFICANCE: f64 = 0.001;

/// Computes a version's performance over `rows` (its labelled rows in the
/// span, oldest prediction first), against `reference` (its earliest
/// labelled rows), with `predicted` windows from the serving side.
pub fn performance_report(
    rows: &[LabelledRow],
    reference: &[LabelledRow],
    predicted: &[PredictedWindow],
    options: &PerformanceOptions,
) -> PerformanceReport {
    let task = options.task.unwrap_or_else(|| infer_task(rows, reference));
    let judge = Judge::new(task, rows, reference);
    let cbpe = judge.fit_cbpe(reference);
    let window_us = options.window_us.max(1);
    let mut windows = Vec::new();
    let mut start = options.from_us.div_euclid(window_us) * window_us;
    let mut at = 0;
    while start < options.to_us {
        let end = start + window_us;
        let first = at;
        while at < rows.len() && rows[at].predicted_at_us < end {
            at += 1;
        }
        let slice = &rows[first..at];
        let predicted_rows: Vec<&PredictedWindow> = predicted
            .iter()
            .filter(|w| w.start_us >= start && w.start_us < end)
            .collect();
        windows.push(judge.window(start, end, slice, reference, &predicted_rows, cbpe.as_ref()));
        start = end;
    }
    let all: Vec<&PredictedWindow> = predicted.iter().collect();
    let overall = judge.window(
        options.from_us,
        options.to_us,
        rows,
        reference,
        &all,
        cbpe.as_ref(),
    );
    let change_points = judge.change_points(rows);
    let concept_drift = change_points.iter().any(|c| c.confirmed)
        || windows
            .iter()
            .any(|w| w.concept_gap.as_ref().is_some_and(|g| g.flagged));
    PerformanceReport {
        task,
        classes: judge.classes.clone(),
        positive_class: judge.positive.clone(),
        reference_rows: reference.len(),
        overall,
        windows,
        change_points,
        concept_drift,
    }
}

/// Classification when the model names classes or gives probabilities, or
/// when labels and answers are all small whole numbers (at most 20 classes).
fn infer_task(rows: &[LabelledRow], reference: &[LabelledRow]) -> Task {
    let all = || rows.iter().chain(reference);
    if all().any(|r| r.outcome.label.is_some() || r.outcome.probabilities.is_some()) {
        return Task::Classification;
    }
    if all().any(|r| r.label_value.is_none()) {
        return Task::Classification;
    }
    let whole = |v: f64| v.is_finite() && v == v.trunc();
    let integral =
        all().all(|r| r.label_value.is_some_and(whole) && r.outcome.value.is_some_and(whole));
    let mut distinct: Vec<&str> = all().map(|r| r.label.as_str()).collect();
    distinct.sort_unstable();
    distinct.dedup();
    if integral && distinct.len() <= 20 {
        Task::Classification
    } else {
        Task::Regression
    }
}

/// The class of an answer as text.
fn predicted_class(outcome: &Outcome) -> Option<String> {
    outcome
        .label
        .clone()
        .or_else(|| outcome.value.filter(|v| v.is_finite()).map(number_text))
}

/// A number as label text: whole numbers without a fraction (`1.0` is `1`).
pub fn number_text(value: f64) -> String {
    if value.is_finite() && value == value.trunc() && value.abs() < 1e15 {
        format!("{}", value as i64)
    } else {
        format!("{value}")
    }
}

/// Class bookkeeping shared by every window of one report.
struct Judge {
    task: Task,
    classes: Vec<String>,
    class_index: HashMap<String, usize>,
    /// Probability column → class index.
    probability_classes: Vec<Option<usize>>,
    positive: Option<String>,
}

impl Judge {
    fn new(task: Task, rows: &[LabelledRow], reference: &[LabelledRow]) -> Judge {
        if task == Task::Regression {
            return Judge {
                task,
                classes: Vec::new(),
                class_index: HashMap::new(),
                probability_classes: Vec::new(),
                positive: None,
            };
        }
        let all = || rows.iter().chain(reference);
        let mut classes: Vec<String> = all()
            .flat_map(|r| [Some(r.label.clone()), predicted_class(&r.outcome)])
            .flatten()
            .collect();
        // Numbers in numeric order, as scikit-learn's `classes_`.
        let numeric = classes.iter().all(|c| c.parse::<f64>().is_ok());
        if numeric {
            classes.sort_by(|a, b| {
                a.parse::<f64>()
                    .unwrap()
                    .total_cmp(&b.parse::<f64>().unwrap())
            });
        } else {
            classes.sort();
        }
        classes.dedup();
        let class_index: HashMap<String, usize> = classes
            .iter()
            .enumerate()
            .map(|(i, c)| (c.clone(), i))
            .collect();
        // Which class each probability column stands for: by vote of the
        // rows where the model named its class, else the sorted order.
        let width = all()
            .find_map(|r| r.outcome.probabilities.as_ref().map(Vec::len))
            .unwrap_or(0);
        let mut votes: Vec<HashMap<usize, usize>> = vec![HashMap::new(); width];
        for row in all() {
            let (Some(p), Some(label)) = (&row.outcome.probabilities, &row.outcome.label) else {
                continue;
            };
            if p.len() != width {
                continue;
            }
            let best = (0..width)
                .max_by(|&a, &b| p[a].total_cmp(&p[b]))
                .unwrap_or(0);
            if let Some(&class) = class_index.get(label) {
                *votes[best].entry(class).or_default() += 1;
            }
        }
        let probability_classes: Vec<Option<usize>> = (0..width)
            .map(|column| {
                votes[column]
                    .iter()
                    .max_by_key(|(_, n)| **n)
                    .map(|(class, _)| *class)
                    .or_else(|| (classes.len() == width).then_some(column))
            })
            .collect();
        let positive = match classes.len() {
            2 => Some(
                probability_classes
                    .get(1)
                    .copied()
                    .flatten()
                    .map_or_else(|| classes[1].clone(), |i| classes[i].clone()),
            ),
            _ => None,
        };
        Judge {
            task,
            classes,
            class_index,
            probability_classes,
            positive,
        }
    }

    /// The positive class's probability for a binary classifier.
    fn positive_score(&self, outcome: &Outcome) -> Option<f64> {
        let positive = self.class_index.get(self.positive.as_ref()?)?;
        let p = outcome.probabilities.as_ref()?;
        let column = self
            .probability_classes
            .iter()
            .position(|c| *c == Some(*positive))?;
        p.get(column).copied().filter(|v| v.is_finite())
    }

    fn window(
        &self,
        start_us: i64,
        end_us: i64,
        rows: &[LabelledRow],
        reference: &[LabelledRow],
        predicted: &[&PredictedWindow],
        cbpe: Option<&Cbpe>,
    ) -> WindowPerformance {
        let predictions =
            (!predicted.is_empty()).then(|| predicted.iter().map(|w| w.rows).sum::<u64>());
        let labelled = rows.len() as u64;
        let coverage = predictions
            .filter(|&n| n > 0)
            .map(|n| (labelled as f64 / n as f64).min(1.0));
        let mut window = WindowPerformance {
            start_us,
            end_us,
            predictions,
            labelled,
            coverage,
            metrics: Metrics::default(),
            label_distribution: BTreeMap::new(),
            label_mean: None,
            label_drift: None,
            label_delay: label_delay(rows),
            estimated: None,
            concept_gap: None,
        };
        match self.task {
            Task::Classification => self.classification(&mut window, rows, reference),
            Task::Regression => regression(&mut window, rows, reference),
        }
        if let Some(cbpe) = cbpe {
            let scores: Vec<f64> = predicted
                .iter()
                .flat_map(|w| w.scores.iter().copied())
                .collect();
            if scores.len() >= MIN_ROWS {
                let predicted_positive: Vec<bool> = scores.iter().map(|&s| s >= 0.5).collect();
                let estimate = cbpe.estimate(&scores, &predicted_positive);
                let metric = |m: CbpeMetric| estimate.metrics.get(m).value;
                let sampling_error = [
                    CbpeMetric::Accuracy,
                    CbpeMetric::Precision,
                    CbpeMetric::Recall,
                    CbpeMetric::F1,
                    CbpeMetric::RocAuc,
                ]
                .into_iter()
                .map(|m| (m.name(), estimate.metrics.get(m).sampling_error))
                .filter(|(_, e)| e.is_finite())
                .collect();
                window.estimated = Some(Estimated {
                    rows: estimate.rows,
                    accuracy: metric(CbpeMetric::Accuracy),
                    precision: metric(CbpeMetric::Precision),
                    recall: metric(CbpeMetric::Recall),
                    f1: metric(CbpeMetric::F1),
                    roc_auc: Some(metric(CbpeMetric::RocAuc)).filter(|v| v.is_finite()),
                    sampling_error,
                });
            }
        }
        if let (Some(estimated), Some(realised)) = (&window.estimated, window.metrics.accuracy) {
            if rows.len() >= MIN_ROWS {
                // Three standard errors of a proportion over the labelled
                // rows, plus the estimate's own error.
                let n = rows.len() as f64;
                let se_realised = (realised * (1.0 - realised) / n).sqrt().max(0.5 / n);
                let se_estimate = estimated
                    .sampling_error
                    .get("accuracy")
                    .copied()
                    .unwrap_or(0.0);
                let tolerance = 3.0 * (se_realised.powi(2) + se_estimate.powi(2)).sqrt();
                window.concept_gap = Some(ConceptGap {
                    metric: "accuracy",
                    realised,
                    estimated: estimated.accuracy,
                    tolerance,
                    flagged: estimated.accuracy - realised > tolerance,
                });
            }
        }
        window
    }

    fn classification(
        &self,
        window: &mut WindowPerformance,
        rows: &[LabelledRow],
        reference: &[LabelledRow],
    ) {
        if rows.is_empty() {
            return;
        }
        let truth: Vec<usize> = rows.iter().map(|r| self.class_index[&r.label]).collect();
        let unknown = self.classes.len();
        let predicted: Vec<usize> = rows
            .iter()
            .map(|r| {
                predicted_class(&r.outcome)
                    .and_then(|c| self.class_index.get(&c).copied())
                    .unwrap_or(unknown)
            })
            .collect();
        let n_classes = self.classes.len() + 1;
        let matrix = metrics::confusion_matrix(&truth, &predicted, n_classes);
        let correct: u64 = (0..n_classes).map(|k| matrix[k * n_classes + k]).sum();
        window.metrics.accuracy = Some(correct as f64 / rows.len() as f64);
        if let Some(positive) = self.positive.as_ref().map(|p| self.class_index[p]) {
            let actual: Vec<bool> = truth.iter().map(|&t| t == positive).collect();
            let said: Vec<bool> = predicted.iter().map(|&p| p == positive).collect();
            let counts = metrics::BinaryCounts::from_labels(&actual, &said);
            window.metrics.precision = Some(counts.precision());
            window.metrics.recall = Some(counts.recall());
            window.metrics.f1 = Some(counts.f1());
            let scores: Option<Vec<f64>> = rows
                .iter()
                .map(|r| self.positive_score(&r.outcome))
                .collect();
            if let Some(scores) = scores {
                window.metrics.roc_auc = metrics::roc_auc(&actual, &scores);
                window.metrics.log_loss = Some(metrics::log_loss_binary(&actual, &scores));
            }
        } else {
            let macro_average = metrics::ClassificationMetrics::macro_average(&matrix, n_classes);
            window.metrics.precision = Some(macro_average.precision);
            window.metrics.recall = Some(macro_average.recall);
            window.metrics.f1 = Some(macro_average.f1);
            // Probabilities in class order, when every row has them.
            let k = self.classes.len();
            let mut probabilities = Vec::with_capacity(rows.len() * k);
            let complete = self.probability_classes.len() == k
                && rows.iter().all(|r| {
                    let Some(p) = r.outcome.probabilities.as_ref().filter(|p| p.len() == k) else {
                        return false;
                    };
                    let mut ordered = vec![0.0; k];
                    for (column, class) in self.probability_classes.iter().enumerate() {
                        if let Some(class) = class {
                            ordered[*class] = p[column];
                        }
                    }
                    probabilities.extend(ordered);
                    true
                });
            if complete && k > 2 {
                window.metrics.roc_auc = metrics::roc_auc_ovr_macro(&truth, &probabilities, k);
                window.metrics.log_loss = Some(metrics::log_loss(&truth, &probabilities, k));
            }
        }
        let mut counts = vec![0.0; self.classes.len()];
        for &t in &truth {
            counts[t] += 1.0;
        }
        for (class, count) in self.classes.iter().zip(&counts) {
            if *count > 0.0 {
                window
                    .label_distribution
                    .insert(class.clone(), count / rows.len() as f64);
            }
        }
        if rows.len() >= MIN_ROWS && reference.len() >= MIN_ROWS {
            let mut reference_counts = vec![0.0; self.classes.len()];
            for row in reference {
                reference_counts[self.class_index[&row.label]] += 1.0;
            }
            let statistic = sextant_stats::divergence::jensen_shannon_distance(
                &reference_counts,
                &counts,
                sextant_stats::divergence::LogBase::Two,
            );
            // Classes seen in neither sample carry no information.
            let (a, b): (Vec<f64>, Vec<f64>) = reference_counts
                .iter()
                .zip(&counts)
                .filter(|(a, b)| **a + **b > 0.0)
                .map(|(a, b)| (*a, *b))
                .unzip();
            let p_value = sextant_stats::contingency::chi2_contingency(&[&a, &b])
                .map(|r| r.p_value)
                .unwrap_or(1.0);
            window.label_drift = Some(LabelDrift {
                method: "jensen_shannon",
                statistic,
                p_value,
                threshold: LABEL_JS_THRESHOLD,
                drifted: statistic >= LABEL_JS_THRESHOLD && p_value < SIGNIFICANCE,
            });
        }
    }

    fn fit_cbpe(&self, reference: &[LabelledRow]) -> Option<Cbpe> {
        let positive = self.positive.as_ref()?;
        let mut scores = Vec::new();
        let mut labels = Vec::new();
        for row in reference {
            let score = self.positive_score(&row.outcome)?;
            scores.push(score);
            labels.push(&row.label == positive);
        }
        if scores.len() < 100 || labels.iter().all(|&l| l) || labels.iter().all(|&l| !l) {
            return None;
        }
        Cbpe::fit(
            &scores,
            &labels,
            Predicted::Threshold(0.5),
            &CbpeConfig::NANNYML,
        )
        .ok()
    }

    /// Change detectors on the error stream, in prediction order: DDM and
    /// ADWIN on 0/1 errors of a classifier; Page-Hinkley and ADWIN on the
    /// absolute errors of a regressor.
    fn change_points(&self, rows: &[LabelledRow]) -> Vec<ChangePoint> {
        let errors: Vec<f64> = match self.task {
            Task::Classification => rows
                .iter()
                .map(|r| {
                    f64::from(u8::from(
                        predicted_class(&r.outcome).as_deref() != Some(r.label.as_str()),
                    ))
                })
                .collect(),
            Task::Regression => rows
                .iter()
                .filter_map(|r| Some((r.label_value? - r.outcome.value?).abs()))
                .collect(),
        };
        let mut alarms: Vec<(&'static str, usize)> = Vec::new();
        let mut adwin = Adwin::new(AdwinConfig::RIVER);
        match self.task {
            Task::Classification => {
                let mut ddm = Ddm::new(DdmConfig::RIVER);
                for (i, &e) in errors.iter().enumerate() {
                    if ddm.update(e) == ChangeState::Drift {
                        alarms.push(("ddm", i));
                    }
                    if adwin.update(e) == ChangeState::Drift {
                        alarms.push(("adwin", i));
                    }
                }
            }
            Task::Regression => {
                let mut page_hinkley = PageHinkley::new(PageHinkleyConfig::RIVER);
                for (i, &e) in errors.iter().enumerate() {
                    if page_hinkley.update(e) == ChangeState::Drift {
                        alarms.push(("page_hinkley", i));
                    }
                    if adwin.update(e) == ChangeState::Drift {
                        alarms.push(("adwin", i));
                    }
                }
            }
        }
        let mean = |s: &[f64]| {
            if s.is_empty() {
                f64::NAN
            } else {
                s.iter().sum::<f64>() / s.len() as f64
            }
        };
        // Each alarm compares the errors since the same detector's previous
        // alarm with those up to its next one: a detector restarts after an
        // alarm, and a later change must not confirm an earlier false one.
        alarms
            .iter()
            .map(|&(detector, index)| {
                let same = || {
                    alarms
                        .iter()
                        .filter(|(d, _)| *d == detector)
                        .map(|(_, i)| *i)
                };
                let start = same().filter(|&i| i < index).last().map_or(0, |i| i + 1);
                let end = same().find(|&i| i > index).unwrap_or(errors.len());
                let (before, after) = (&errors[start..index], &errors[index..end]);
                let p_value = errors_grew(self.task, before, after);
                ChangePoint {
                    detector,
                    time_us: rows.get(index).map_or(0, |r| r.predicted_at_us),
                    index,
                    error_before: mean(before),
                    error_after: mean(after),
                    p_value,
                    confirmed: p_value.is_some_and(|p| p < CHANGE_SIGNIFICANCE),
                }
            })
            .collect()
    }
}

/// One-sided p-value that the errors `after` a change point are larger
/// than those `before` it; `None` with fewer than [`MIN_ROWS`] on a side.
///
/// Classification: the pooled two-proportion z-test on 0/1 errors
/// (Fleiss §2.2), `p = 1 - Φ(z)` with z > 0 when `after` errs more.
/// Regression: the large-sample z-test on mean absolute errors,
/// `z = (m_a - m_b) / √(s²_a/n_a + s²_b/n_b)` (Welch's statistic with the
/// normal in place of Student's t, fair at 30+ rows a side).
fn errors_grew(task: Task, before: &[f64], after: &[f64]) -> Option<f64> {
    if before.len() < MIN_ROWS || after.len() < MIN_ROWS {
        return None;
    }
    let z = match task {
        Task::Classification => {
            let count = |s: &[f64]| s.iter().filter(|&&e| e > 0.0).count() as u64;
            sextant_stats::contingency::two_proportion_z(
                count(after),
                after.len() as u64,
                count(before),
                before.len() as u64,
            )
            .statistic
        }
        Task::Regression => {
            let moments = |s: &[f64]| {
                let n = s.len() as f64;
                let m = s.iter().sum::<f64>() / n;
                let v = s.iter().map(|x| (x - m) * (x - m)).sum::<f64>() / (n - 1.0);
                (m, v / n)
            };
            let ((m_a, v_a), (m_b, v_b)) = (moments(after), moments(before));
            let se = (v_a + v_b).sqrt();
            if se > 0.0 {
                (m_a - m_b) / se
            } else if m_a > m_b {
                f64::INFINITY
            } else {
                0.0
            }
        }
    };
    if z.is_nan() {
        return Some(1.0);
    }
    Some(sextant_stats::special::normal_sf(z))
}

fn regression(window: &mut WindowPerformance, rows: &[LabelledRow], reference: &[LabelledRow]) {
    let pairs: Vec<(f64, f64)> = rows
        .iter()
        .filter_map(|r| Some((r.label_value?, r.outcome.value?)))
        .filter(|(y, p)| y.is_finite() && p.is_finite())
        .collect();
    if pairs.is_empty() {
        return;
    }
    let (truth, predicted): (Vec<f64>, Vec<f64>) = pairs.iter().copied().unzip();
    window.metrics.mae = Some(metrics::mae(&truth, &predicted));
    window.metrics.rmse = Some(metrics::rmse(&truth, &predicted));
    window.metrics.mape = Some(metrics::mape(&truth, &predicted));
    window.label_mean = Some(truth.iter().sum::<f64>() / truth.len() as f64);
    let reference_labels: Vec<f64> = reference
        .iter()
        .filter_map(|r| r.label_value)
        .filter(|v| v.is_finite())
        .collect();
    if truth.len() >= MIN_ROWS && reference_labels.len() >= MIN_ROWS {
        let statistic = sextant_stats::wasserstein::wasserstein_normed(&reference_labels, &truth);
        let p_value = sextant_stats::ks::ks_2samp(&reference_labels, &truth).p_value;
        window.label_drift = Some(LabelDrift {
            method: "wasserstein_normed",
            statistic,
            p_value,
            threshold: LABEL_W1_THRESHOLD,
            drifted: statistic >= LABEL_W1_THRESHOLD && p_value < SIGNIFICANCE,
        });
    }
}

/// Median, 90th percentile and maximum of received − predicted times.
fn label_delay(rows: &[LabelledRow]) -> Option<LabelDelay> {
    if rows.is_empty() {
        return None;
    }
    let mut delays: Vec<f64> = rows
        .iter()
        .map(|r| (r.received_at_us - r.predicted_at_us).max(0) as f64 / 1e6)
        .collect();
    delays.sort_by(f64::total_cmp);
    // Nearest-rank percentiles (no interpolation).
    let rank =
        |q: f64| delays[((q * delays.len() as f64).ceil() as usize).clamp(1, delays.len()) - 1];
    Some(LabelDelay {
        median_seconds: rank(0.5),
        p90_seconds: rank(0.9),
        max_seconds: *delays.last().expect("non-empty"),
    })
}
