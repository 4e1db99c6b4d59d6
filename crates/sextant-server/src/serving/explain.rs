//! Explanations of a deployment's predictions: the background rows each
//! model version collects from its first answers, and the request options.
//!
//! Tree ensembles are explained by path-dependent TreeSHAP and need no
//! background. The interventional methods (interventional TreeSHAP, Linear
//! SHAP, KernelSHAP for every other engine, Python workers included) need
//! rows that stand for "the feature is absent": [`BACKGROUND_ROWS`] rows of
//! the version's reference data (its training dataset, or the deployment's
//! uploaded reference), stored beside the monitoring profiles; until there
//! is some, the first rows the version answered, like the reference window
//! of drift monitoring. Both are kept in the model's own input form. The
//! background's hash is in every answer, so that an explanation can be
//! reproduced.

use std::sync::atomic::{AtomicBool, Ordering::Relaxed};
use std::sync::{Mutex, OnceLock};

use sextant_serve::explain::Method;
use sextant_serve::{Background, NamedTensor};

/// Share of monitored predictions explained in the background.
pub const DEFAULT_SAMPLE_RATE: f64 = 0.01;

/// Model rows one KernelSHAP request may cost (rows × coalitions ×
/// background rows): 239 rows at shap's default 2,088 coalitions and 100
/// background rows, a few seconds of one core.
pub const KERNEL_MODEL_ROWS_PER_REQUEST: usize = 50_000_000;

/// Share of one core the background explainer may use: 1% of a busy
/// deployment's answers would otherwise cost more than the answers (an
/// explanation takes tens of predictions' time).
pub const DEFAULT_CORE_SHARE: f64 = 0.02;

/// Rows a version's background holds; shap suggests 100 for KernelSHAP.
pub const BACKGROUND_ROWS: usize = 100;

/// A version's background: rows of its reference data when there is some
/// (the training dataset logged with it, or the deployment's uploaded
/// reference table), else filling from its first answers, then fixed.
#[derive(Default)]
pub struct ExplainBackground {
    reference: Mutex<Option<Background>>,
    filling: Mutex<Option<Vec<NamedTensor>>>,
    full: OnceLock<Background>,
    /// Full, or replaced by reference data: answers are no longer offered.
    /// Read on every answer, so an atomic rather than the locks.
    settled: AtomicBool,
}

impl ExplainBackground {
    /// Whether answers should still be offered (no reference data, not
    /// full yet).
    pub fn wants_rows(&self) -> bool {
        !self.settled.load(Relaxed)
    }

    fn settle(&self, rows: Vec<NamedTensor>) {
        let _ = self.full.set(Background::new(rows));
        self.settled.store(true, Relaxed);
    }

    pub fn has_reference(&self) -> bool {
        self.reference.lock().expect("background lock").is_some()
    }

    /// Rows of the reference data (prepared for the model) replace the
    /// answered rows as the background.
    pub fn set_reference(&self, background: Background) {
        *self.reference.lock().expect("background lock") = Some(background);
        self.settled.store(true, Relaxed);
    }

    /// Rows still wanted (0 once full): callers prepare only these.
    pub fn room(&self) -> usize {
        if !self.wants_rows() {
            return 0;
        }
        let filling = self.filling.lock().expect("background lock");
        let rows = filling
            .as_ref()
            .and_then(|c| c.first())
            .map_or(0, |t| t.tensor.rows());
        BACKGROUND_ROWS.saturating_sub(rows)
    }

    /// Adds the rows of `inputs` (prepared for the model) until the
    /// background is full. Inputs of another form than the first (a model
    /// that takes any inputs, called two ways) end the collection with the
    /// rows so far, so that answers stop being copied for it.
    pub fn offer(&self, inputs: &[NamedTensor]) {
        if !self.wants_rows() {
            return;
        }
        let mut filling = self.filling.lock().expect("background lock");
        let rows = match filling.as_ref() {
            Some(current) => current.first().map_or(0, |t| t.tensor.rows()),
            None => 0,
        };
        let room = BACKGROUND_ROWS.saturating_sub(rows);
        let offered = inputs.first().map_or(0, |t| t.tensor.rows());
        let take = room.min(offered);
        if take == 0 {
            return;
        }
        let head: Vec<NamedTensor> = inputs.iter().map(|t| first_rows(t, take)).collect();
        match filling.as_mut() {
            None => *filling = Some(head),
            Some(current) => {
                let same_shape = current.len() == head.len()
                    && current.iter().zip(&head).all(|(a, b)| {
                        a.name == b.name
                            && a.tensor.row_width() == b.tensor.row_width()
                            && std::mem::discriminant(&a.tensor.data)
                                == std::mem::discriminant(&b.tensor.data)
                    });
                if !same_shape {
                    self.settle(filling.take().expect("collecting"));
                    return;
                }
                for (all, part) in current.iter_mut().zip(head) {
                    all.tensor.append(part.tensor);
                }
            }
        }
        let rows = filling
            .as_ref()
            .and_then(|c| c.first())
            .map_or(0, |t| t.tensor.rows());
        if rows >= BACKGROUND_ROWS {
            self.settle(filling.take().expect("filled"));
        }
    }

    /// The background: the reference data's rows, else every answered row
    /// once full, else the rows collected yet (`None` before the first
    /// answer).
    pub fn current(&self) -> Option<Background> {
        if let Some(reference) = self.reference.lock().expect("background lock").as_ref() {
            return Some(reference.clone());
        }
        if let Some(full) = self.full.get() {
            return Some(full.clone());
        }
        let filling = self.filling.lock().expect("background lock");
        filling.as_ref().map(|rows| Background::new(rows.clone()))
    }
}

/// Where a model version's reference background is stored.
pub fn background_path(model: &sextant_core::ModelRef) -> String {
    format!(
        "monitoring/backgrounds/{}/{}.json",
        super::monitoring::hex_name(model),
        model.version
    )
}

/// Request columns as a scoring request (`dataframe_split`, null for a
/// missing number): the form a reference background is stored in, read
/// back by the `/invocations` parser.
pub fn scoring_request(columns: &[NamedTensor]) -> serde_json::Value {
    use sextant_serve::TensorData;
    let rows = columns.first().map_or(0, |c| c.tensor.rows());
    let cell = |data: &TensorData, i: usize| match data {
        TensorData::Str(v) => serde_json::json!(v[i]),
        TensorData::Bool(v) => serde_json::json!(v[i]),
        data => data
            .get_f64(i)
            .filter(|x| x.is_finite())
            .map_or(serde_json::Value::Null, |x| serde_json::json!(x)),
    };
    let data: Vec<Vec<serde_json::Value>> = (0..rows)
        .map(|row| columns.iter().map(|c| cell(&c.tensor.data, row)).collect())
        .collect();
    let names: Vec<&str> = columns.iter().map(|c| c.name.as_str()).collect();
    serde_json::json!({"dataframe_split": {"columns": names, "data": data}})
}

pub(crate) fn first_rows(tensor: &NamedTensor, rows: usize) -> NamedTensor {
    NamedTensor::new(tensor.name.clone(), tensor.tensor.slice_rows(0, rows))
}

/// What an explain request asks for (`parameters` of an OIP request,
/// `params` of a scoring request, or the query string).
#[derive(Debug, Clone, Default)]
pub struct ExplainRequest {
    pub method: Option<Method>,
    /// KernelSHAP coalitions per row.
    pub samples: Option<usize>,
    pub seed: u64,
}

impl ExplainRequest {
    /// Reads `method`, `samples` and `seed` from request parameters.
    pub fn from_json<'a>(
        params: impl IntoIterator<Item = (&'a String, &'a serde_json::Value)>,
    ) -> Result<ExplainRequest, String> {
        let mut request = ExplainRequest::default();
        let params: std::collections::BTreeMap<&str, &serde_json::Value> =
            params.into_iter().map(|(k, v)| (k.as_str(), v)).collect();
        if let Some(method) = params.get("method") {
            let name = method
                .as_str()
                .ok_or("parameter 'method' must be a string")?;
            request.method = Some(Method::parse(name).map_err(|e| e.to_string())?);
        }
        if let Some(samples) = params.get("samples") {
            let n = samples
                .as_u64()
                .filter(|&n| (1..=1_000_000).contains(&n))
                .ok_or("parameter 'samples' must be a whole number from 1 to 1000000")?;
            request.samples = Some(n as usize);
        }
        if let Some(seed) = params.get("seed") {
            request.seed = seed
                .as_u64()
                .ok_or("parameter 'seed' must be a non-negative whole number")?;
        }
        Ok(request)
    }
}

/// Top `k` contributions per row and output, by |φ|, for `explain_top_k` on
/// an infer request.
pub fn top_contributions(explanation: &sextant_serve::Explanation, k: usize) -> serde_json::Value {
    let rows: Vec<serde_json::Value> = (0..explanation.rows)
        .map(|row| {
            let outputs: Vec<serde_json::Value> = explanation
                .outputs
                .iter()
                .enumerate()
                .map(|(o, name)| {
                    let mut features: Vec<(usize, f64)> = (0..explanation.features.len())
                        .map(|f| (f, explanation.value(row, f, o)))
                        .collect();
                    features.sort_by(|a, b| b.1.abs().total_cmp(&a.1.abs()));
                    let top: Vec<serde_json::Value> = features
                        .into_iter()
                        .take(k)
                        .map(|(f, value)| {
                            serde_json::json!({"feature": explanation.features[f], "value": value})
                        })
                        .collect();
                    serde_json::json!({
                        "output": name,
                        "base_value": explanation.base_values[o],
                        "top": top,
                    })
                })
                .collect();
            serde_json::Value::Array(outputs)
        })
        .collect();
    serde_json::Value::Array(rows)
}

/// Explained rows the attribution reference holds: the first ones a version
/// explains in a deployment.
pub const REFERENCE_EXPLANATIONS: usize = 100;
/// Explained rows kept for the report's windows.
const RECENT_EXPLANATIONS: usize = 10_000;
/// A feature's attributions have drifted when the two-sample
/// Kolmogorov–Smirnov test rejects "same distribution as the reference" at
/// this level, Bonferroni-corrected for the number of features (the
/// reference is small, a hundred rows: a distance threshold alone would
/// fire on sampling noise).
pub const EXPLANATION_DRIFT_ALPHA: f64 = 0.05;

/// The sampled explanations of one model version in one deployment: global
/// importance (mean |φ| per feature) and explanation drift against the
/// first explained rows.
#[derive(Default)]
pub struct ExplanationMonitor {
    inner: Mutex<Explained>,
}

#[derive(Default)]
struct Explained {
    features: Vec<String>,
    /// The explained output (a classifier's last class, or the prediction).
    output: String,
    /// φ per feature of the first explained rows.
    reference: Vec<Vec<f64>>,
    /// (time, part of the reference, φ per feature), oldest first.
    recent: std::collections::VecDeque<(i64, bool, Vec<f64>)>,
    total: u64,
}

/// One feature's attributions in a report.
#[derive(Debug, Clone, serde::Serialize)]
pub struct FeatureAttribution {
    pub name: String,
    /// Mean |φ| over the window: the feature's global importance.
    pub mean_abs_shap: f64,
    pub reference_mean_abs_shap: f64,
    /// The KS statistic D = sup |F_ref − F_window| between the feature's
    /// attributions in the reference and in the window's rows after it.
    pub drift: f64,
    pub p_value: f64,
    /// p < α / features.
    pub drifted: bool,
}

/// Global importance and explanation drift over a span.
#[derive(Debug, Clone, serde::Serialize)]
pub struct ExplanationReport {
    pub output: String,
    pub explained_rows: usize,
    pub explained_total: u64,
    pub reference_rows: usize,
    /// Most important first.
    pub features: Vec<FeatureAttribution>,
    pub top_driver: Option<String>,
    pub reference_top_driver: Option<String>,
    pub top_driver_changed: bool,
    /// The largest D among the drifted features (0 when none drifted; NaN
    /// before the reference is complete and later rows are explained).
    pub drift: f64,
}

impl ExplanationMonitor {
    /// Records the rows of `explanation` (its last output) at `now_us`. An
    /// explanation over other features than before (a new layout) starts
    /// afresh.
    pub fn record(&self, now_us: i64, explanation: &sextant_serve::Explanation) {
        let Some(output) = explanation.outputs.len().checked_sub(1) else {
            return;
        };
        let mut inner = self.inner.lock().expect("explanations lock");
        if inner.features != explanation.features {
            *inner = Explained {
                features: explanation.features.clone(),
                output: explanation.outputs[output].clone(),
                reference: vec![Vec::new(); explanation.features.len()],
                ..Default::default()
            };
        }
        for row in 0..explanation.rows {
            let phi: Vec<f64> = (0..explanation.features.len())
                .map(|f| explanation.value(row, f, output))
                .collect();
            let in_reference = inner.reference.first().map_or(0, Vec::len) < REFERENCE_EXPLANATIONS;
            if in_reference {
                for (column, value) in inner.reference.iter_mut().zip(&phi) {
                    column.push(*value);
                }
            }
            if inner.recent.len() == RECENT_EXPLANATIONS {
                inner.recent.pop_front();
            }
            inner.recent.push_back((now_us, in_reference, phi));
            inner.total += 1;
        }
    }

    /// The report over the rows explained in the last `span`; `None`
    /// before the first explanation.
    pub fn report(&self, now_us: i64, span: std::time::Duration) -> Option<ExplanationReport> {
        let inner = self.inner.lock().expect("explanations lock");
        if inner.total == 0 {
            return None;
        }
        let since = now_us - span.as_micros() as i64;
        let window: Vec<&Vec<f64>> = inner
            .recent
            .iter()
            .filter(|(time, _, _)| *time >= since)
            .map(|(_, _, phi)| phi)
            .collect();
        // Drift compares the rows explained after the reference with it.
        let later: Vec<&Vec<f64>> = inner
            .recent
            .iter()
            .filter(|(time, in_reference, _)| *time >= since && !in_reference)
            .map(|(_, _, phi)| phi)
            .collect();
        let mean_abs = |values: &mut dyn Iterator<Item = f64>| {
            let (sum, n) = values.fold((0.0, 0usize), |(s, n), v| (s + v.abs(), n + 1));
            if n == 0 {
                f64::NAN
            } else {
                sum / n as f64
            }
        };
        let reference_importance: Vec<f64> = inner
            .reference
            .iter()
            .map(|column| mean_abs(&mut column.iter().copied()))
            .collect();
        let alpha = EXPLANATION_DRIFT_ALPHA / inner.features.len().max(1) as f64;
        let reference_complete =
            inner.reference.first().map_or(0, Vec::len) >= REFERENCE_EXPLANATIONS;
        let mut features: Vec<FeatureAttribution> = inner
            .features
            .iter()
            .enumerate()
            .map(|(f, name)| {
                let current: Vec<f64> = window.iter().map(|phi| phi[f]).collect();
                let compared: Vec<f64> = later.iter().map(|phi| phi[f]).collect();
                let test = (reference_complete && !compared.is_empty())
                    .then(|| sextant_stats::ks::ks_2samp(&inner.reference[f], &compared));
                let (drift, p_value) =
                    test.map_or((f64::NAN, f64::NAN), |t| (t.statistic, t.p_value));
                // Importance over the window, of the rows after the
                // reference when there are some.
                let importance = if compared.is_empty() {
                    &current
                } else {
                    &compared
                };
                FeatureAttribution {
                    name: name.clone(),
                    mean_abs_shap: mean_abs(&mut importance.iter().copied()),
                    reference_mean_abs_shap: reference_importance[f],
                    drift,
                    p_value,
                    drifted: p_value < alpha,
                }
            })
            .collect();
        let top = |key: fn(&FeatureAttribution) -> f64, features: &[FeatureAttribution]| {
            features
                .iter()
                .filter(|f| key(f).is_finite())
                .max_by(|a, b| key(a).total_cmp(&key(b)))
                .map(|f| f.name.clone())
        };
        let top_driver = top(|f| f.mean_abs_shap, &features);
        let reference_top_driver = top(|f| f.reference_mean_abs_shap, &features);
        features.sort_by(|a, b| b.mean_abs_shap.total_cmp(&a.mean_abs_shap));
        let drift = if features.iter().any(|f| f.drift.is_finite()) {
            features
                .iter()
                .filter(|f| f.drifted)
                .map(|f| f.drift)
                .fold(0.0, f64::max)
        } else {
            f64::NAN
        };
        Some(ExplanationReport {
            output: inner.output.clone(),
            explained_rows: window.len(),
            explained_total: inner.total,
            reference_rows: inner.reference.first().map_or(0, Vec::len),
            top_driver_changed: reference_complete
                && !later.is_empty()
                && top_driver.is_some()
                && top_driver != reference_top_driver,
            features,
            top_driver,
            reference_top_driver,
            drift,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use sextant_serve::Tensor;

    fn column(values: Vec<f64>) -> Vec<NamedTensor> {
        let rows = values.len();
        vec![NamedTensor::new("x", Tensor::f64_matrix(rows, 1, values))]
    }

    #[test]
    fn the_background_fills_from_answers_then_stays_fixed() {
        let background = ExplainBackground::default();
        assert!(background.current().is_none());
        background.offer(&column(vec![1.0, 2.0]));
        let partial = background.current().unwrap();
        assert_eq!(partial.rows, 2);
        background.offer(&column((0..150).map(f64::from).collect()));
        let full = background.current().unwrap();
        assert_eq!(full.rows, BACKGROUND_ROWS);
        assert!(!background.wants_rows());
        background.offer(&column(vec![7.0]));
        assert_eq!(background.current().unwrap().hash, full.hash);
        assert_ne!(partial.hash, full.hash);
        assert_eq!(background.room(), 0);
    }

    #[test]
    fn answers_in_another_form_end_the_collection() {
        let background = ExplainBackground::default();
        background.offer(&column(vec![1.0, 2.0, 3.0]));
        assert_eq!(background.room(), BACKGROUND_ROWS - 3);
        // A model taking any inputs, called with two columns now.
        let wider = vec![NamedTensor::new(
            "x",
            Tensor::f64_matrix(1, 2, vec![4.0, 5.0]),
        )];
        background.offer(&wider);
        assert!(!background.wants_rows(), "answers stop being copied for it");
        assert_eq!(background.current().unwrap().rows, 3);
    }

    fn explanation(rows: &[[f64; 2]]) -> sextant_serve::Explanation {
        sextant_serve::Explanation {
            method: Method::TreePathDependent,
            output_space: sextant_serve::explain::OutputSpace::Margin,
            features: vec!["amount".into(), "hour".into()],
            outputs: vec!["1".into()],
            rows: rows.len(),
            base_values: vec![0.0],
            values: rows.iter().flatten().copied().collect(),
            predictions: rows.iter().map(|r| r[0] + r[1]).collect(),
            background_hash: None,
            interactions: None,
        }
    }

    #[test]
    fn a_feature_that_takes_over_the_predictions_is_explanation_drift() {
        let monitor = ExplanationMonitor::default();
        let span = std::time::Duration::from_secs(60);
        assert!(monitor.report(0, span).is_none());
        // The reference: amount drives the model.
        let before: Vec<[f64; 2]> = (0..REFERENCE_EXPLANATIONS)
            .map(|i| [1.0 + (i % 7) as f64 * 0.1, 0.05 * ((i % 3) as f64 - 1.0)])
            .collect();
        monitor.record(1_000_000, &explanation(&before));
        assert!(monitor.report(1_000_001, span).unwrap().drift.is_nan());
        // More of the same: no drift.
        monitor.record(2_000_000, &explanation(&before[..42]));
        let steady = monitor.report(2_000_001, span).unwrap();
        assert_eq!(steady.top_driver.as_deref(), Some("amount"));
        assert!(!steady.top_driver_changed);
        assert_eq!(steady.drift, 0.0, "{:?}", steady.features);
        // Later, hour does.
        let after: Vec<[f64; 2]> = (0..50).map(|i| [0.1, 2.0 + (i % 5) as f64 * 0.1]).collect();
        monitor.record(100_000_000, &explanation(&after));
        let changed = monitor.report(100_000_001, span).unwrap();
        assert_eq!(changed.explained_rows, 50);
        assert_eq!(changed.top_driver.as_deref(), Some("hour"));
        assert_eq!(changed.reference_top_driver.as_deref(), Some("amount"));
        assert!(changed.top_driver_changed);
        assert!(
            changed.features.iter().all(|f| f.drifted),
            "{:?}",
            changed.features
        );
        assert_eq!(changed.features[0].name, "hour");
    }

    #[test]
    fn explain_parameters_are_checked() {
        let params = |v: serde_json::Value| ExplainRequest::from_json(v.as_object().unwrap());
        let request =
            params(serde_json::json!({"method": "kernel", "samples": 500, "seed": 3})).unwrap();
        assert_eq!(request.method, Some(Method::Kernel));
        assert_eq!(request.samples, Some(500));
        assert!(params(serde_json::json!({"method": "lime"}))
            .unwrap_err()
            .contains("lime"));
        assert!(params(serde_json::json!({"samples": 0})).is_err());
        assert!(params(serde_json::json!({"seed": -1})).is_err());
    }
}
