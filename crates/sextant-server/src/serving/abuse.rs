//! Abuse and model-extraction signals per caller (API user or address):
//! request-rate spikes, near-duplicate queries, PRADA's distance test and
//! near-decision-boundary probing (`sextant_monitor::live::abuse`).
//!
//! The prediction log's writer feeds every answered request here, off the
//! request path. Features are scaled by the median and MAD of the first
//! [`SCALING_ROWS`] rows a deployment serves (robust to the outliers an
//! attacker sends later), in the order of that first request's features.
//!
//! A caller with a signal raised stays flagged for one abuse window after
//! its last flagged query. Deployments with `throttle_abusive_callers` turn
//! flagged callers away with 429 on the request path, which reads only
//! [`AbuseMonitor::flagged_until`]'s small map, never the trackers. A
//! turned-away caller's queries are not observed; when the window has
//! passed it is let through and judged again on what it sends.

use std::collections::HashMap;
use std::sync::{Mutex, RwLock};

use sextant_monitor::live::{AbuseConfig, AbuseReport, AbuseTracker, ScaledFeature, Scaling};
use sextant_serve::{NamedTensor, TensorData};

use super::feedback::outcomes_of;

/// Rows a deployment serves before its callers are tracked: they set the
/// feature scaling.
pub const SCALING_ROWS: usize = 200;

/// Feature layouts gathered at once while warming up; a deployment's
/// requests have one or two (a matrix and named columns, or a new model
/// version's features), and any more are not kept.
const MAX_WARMING_LAYOUTS: usize = 8;

/// One deployment's callers.
#[derive(Default)]
struct DeploymentAbuse {
    /// Rows gathered per feature layout (names in order) until one has
    /// [`SCALING_ROWS`]: it sets the scaling. Requests whose features
    /// mostly differ from the tracked ones (another model version's) gather
    /// here too, and take over once they have enough rows.
    warming: HashMap<Vec<String>, Vec<Vec<f64>>>,
    tracking: Option<(Vec<String>, Box<AbuseTracker>)>,
}

impl DeploymentAbuse {
    /// Where each tracked feature is in `names`, when enough of them are
    /// there (at least half) for the request to be judged by the tracker.
    fn aligned(&self, names: &[String]) -> Option<Vec<Option<usize>>> {
        let (tracked, _) = self.tracking.as_ref()?;
        // Nearly every request names the tracked features in their order.
        if tracked.as_slice() == names {
            return Some((0..names.len()).map(Some).collect());
        }
        let aligned: Vec<Option<usize>> = tracked
            .iter()
            .map(|n| names.iter().position(|m| m == n))
            .collect();
        let present = aligned.iter().filter(|a| a.is_some()).count();
        (present > 0 && present * 2 >= tracked.len()).then_some(aligned)
    }
}

/// Trackers of every deployment served here.
#[derive(Default)]
pub struct AbuseMonitor {
    deployments: Mutex<HashMap<String, DeploymentAbuse>>,
    /// Deployment → flagged caller → until when (µs since the epoch).
    flagged: RwLock<HashMap<String, HashMap<String, i64>>>,
}

impl AbuseMonitor {
    /// Observes one answered request (every row of it).
    #[allow(clippy::too_many_arguments)]
    pub fn observe(
        &self,
        deployment: &str,
        caller: Option<&str>,
        time_us: i64,
        inputs: &[NamedTensor],
        feature_names: Option<&[String]>,
        outputs: &[NamedTensor],
        default_output: usize,
    ) {
        let rows = inputs.first().map_or(0, |t| t.tensor.rows());
        if rows == 0 {
            return;
        }
        let (names, values) = numeric_features(inputs, feature_names, rows);
        if names.is_empty() {
            return;
        }
        let margins: Vec<Option<f64>> = outcomes_of(outputs, default_output)
            .iter()
            .map(|o| o.probabilities.as_deref().and_then(margin))
            .collect();
        let client = caller.unwrap_or("anonymous");
        let mut deployments = self.deployments.lock().expect("abuse lock");
        let entry = deployments.entry(deployment.to_string()).or_default();
        let Some(aligned) = entry.aligned(&names) else {
            // Not (or no longer) judged with these features: gather them.
            if !entry.warming.contains_key(&names) && entry.warming.len() >= MAX_WARMING_LAYOUTS {
                return;
            }
            let gathered = entry.warming.entry(names.clone()).or_default();
            let room = SCALING_ROWS.saturating_sub(gathered.len());
            gathered.extend(values.chunks(names.len()).take(room).map(<[f64]>::to_vec));
            if gathered.len() >= SCALING_ROWS {
                let scaling = robust_scaling(&names, gathered);
                entry.tracking = Some((
                    names,
                    Box::new(AbuseTracker::new(AbuseConfig::default(), scaling)),
                ));
                entry.warming.clear();
            }
            return;
        };
        let (tracked, tracker) = entry.tracking.as_mut().expect("aligned implies tracking");
        let mut row_values = vec![f64::NAN; tracked.len()];
        let mut flagged = false;
        for row in 0..rows {
            let source = &values[row * names.len()..(row + 1) * names.len()];
            for (slot, at) in row_values.iter_mut().zip(&aligned) {
                *slot = at.map_or(f64::NAN, |k| source[k]);
            }
            let margin = margins.get(row).copied().flatten();
            flagged |= tracker
                .observe(client, time_us, &row_values, margin)
                .signals
                .any();
        }
        let window_us = tracker.config().window_seconds as i64 * 1_000_000;
        drop(deployments);
        self.mark(deployment, client, flagged.then_some(time_us + window_us));
    }

    /// Records whether `client` is flagged (until when), writing the
    /// shared map only when that changes or the flag is extended.
    fn mark(&self, deployment: &str, client: &str, until_us: Option<i64>) {
        let known = self
            .flagged
            .read()
            .expect("abuse flags lock")
            .get(deployment)
            .and_then(|callers| callers.get(client).copied());
        if known.is_none() && until_us.is_none() {
            return;
        }
        let mut flags = self.flagged.write().expect("abuse flags lock");
        let callers = flags.entry(deployment.to_string()).or_default();
        match until_us {
            Some(until) => {
                callers.insert(client.to_string(), until);
            }
            None => {
                // Cleared once the window has passed without a new flag.
                if let Some(&until) = callers.get(client) {
                    if until <= super::now_micros() {
                        callers.remove(client);
                    }
                }
            }
        }
    }

    /// Until when `caller` (`anonymous` when unknown) is flagged on
    /// `deployment`, if it is at `now_us`.
    pub fn flagged_until(
        &self,
        deployment: &str,
        caller: Option<&str>,
        now_us: i64,
    ) -> Option<i64> {
        let flags = self.flagged.read().expect("abuse flags lock");
        let until = *flags.get(deployment)?.get(caller.unwrap_or("anonymous"))?;
        (until > now_us).then_some(until)
    }

    /// Forgets a deployment's trackers and flags (it was deleted).
    pub fn forget(&self, deployment: &str) {
        self.deployments
            .lock()
            .expect("abuse lock")
            .remove(deployment);
        self.flagged
            .write()
            .expect("abuse flags lock")
            .remove(deployment);
    }

    /// The deployment's per-caller report; `None` until it is tracked.
    pub fn report(&self, deployment: &str, now_us: i64) -> Option<AbuseReport> {
        let deployments = self.deployments.lock().expect("abuse lock");
        let (_, tracker) = deployments.get(deployment)?.tracking.as_ref()?;
        Some(tracker.report(now_us))
    }

    /// Rows gathered towards the scaling (of the layout closest to it),
    /// while warming up.
    pub fn warming_rows(&self, deployment: &str) -> Option<usize> {
        let deployments = self.deployments.lock().expect("abuse lock");
        let entry = deployments.get(deployment)?;
        if entry.tracking.is_some() {
            return None;
        }
        Some(entry.warming.values().map(Vec::len).max().unwrap_or(0))
    }
}

/// Top-1 minus top-2 probability.
fn margin(probabilities: &[f64]) -> Option<f64> {
    if probabilities.len() < 2 || probabilities.iter().any(|p| !p.is_finite()) {
        return None;
    }
    let (mut first, mut second) = (f64::NEG_INFINITY, f64::NEG_INFINITY);
    for &p in probabilities {
        if p > first {
            second = first;
            first = p;
        } else if p > second {
            second = p;
        }
    }
    Some(first - second)
}

/// Numeric features of a request, row-major, named the same way whatever
/// the wire format: with the model's feature names, its named columns in
/// the model's order (extra columns a caller adds are left out, so they
/// cannot change how it is judged), or one matrix as wide as them by
/// position; without names, 1-D tensors by their names and a matrix's
/// columns as `#0`, `#1`, … (whatever the input is called: OIP's `input-0`
/// and MLflow's `instances` are the same matrix).
fn numeric_features(
    inputs: &[NamedTensor],
    feature_names: Option<&[String]>,
    rows: usize,
) -> (Vec<String>, Vec<f64>) {
    let mut names = Vec::new();
    let mut columns: Vec<(usize, usize, usize)> = Vec::new();
    let usable = |input: &NamedTensor| {
        !matches!(input.tensor.data, TensorData::Str(_)) && input.tensor.rows() == rows
    };
    let single_matrix = match inputs {
        [only] if only.tensor.shape.len() == 2 && only.tensor.row_width() > 1 && usable(only) => {
            Some(only.tensor.row_width())
        }
        _ => None,
    };
    match (feature_names, single_matrix) {
        (Some(model_names), Some(width)) if model_names.len() == width => {
            for (k, name) in model_names.iter().enumerate() {
                names.push(name.clone());
                columns.push((0, width, k));
            }
        }
        (Some(model_names), _) => {
            for name in model_names {
                let found = inputs.iter().position(|input| {
                    input.name == *name && usable(input) && input.tensor.row_width() == 1
                });
                if let Some(index) = found {
                    names.push(name.clone());
                    columns.push((index, 1, 0));
                }
            }
        }
        (None, _) => {
            for (index, input) in inputs.iter().enumerate() {
                if !usable(input) {
                    continue;
                }
                let width = input.tensor.row_width();
                if input.tensor.shape.len() <= 1 || width == 1 {
                    names.push(input.name.clone());
                    columns.push((index, 1, 0));
                } else {
                    for k in 0..width {
                        names.push(format!("#{k}"));
                        columns.push((index, width, k));
                    }
                }
            }
        }
    }
    let mut values = Vec::with_capacity(rows * names.len());
    for row in 0..rows {
        for &(index, stride, offset) in &columns {
            values.push(
                inputs[index]
                    .tensor
                    .data
                    .get_f64(row * stride + offset)
                    .unwrap_or(f64::NAN),
            );
        }
    }
    (names, values)
}

/// Median and MAD·1.4826 (a normal σ) per feature; a zero MAD falls back
/// to the population standard deviation, then to 1.
fn robust_scaling(names: &[String], rows: &[Vec<f64>]) -> Scaling {
    let features = names
        .iter()
        .enumerate()
        .map(|(k, name)| {
            let mut values: Vec<f64> = rows
                .iter()
                .map(|r| r[k])
                .filter(|v| v.is_finite())
                .collect();
            values.sort_by(f64::total_cmp);
            let median = |sorted: &[f64]| -> f64 {
                match sorted.len() {
                    0 => 0.0,
                    n if n % 2 == 1 => sorted[n / 2],
                    n => (sorted[n / 2 - 1] + sorted[n / 2]) / 2.0,
                }
            };
            let center = median(&values);
            let mut deviations: Vec<f64> = values.iter().map(|v| (v - center).abs()).collect();
            deviations.sort_by(f64::total_cmp);
            let mut scale = 1.4826 * median(&deviations);
            if !(scale > 0.0) {
                let mut moments = sextant_stats::sketch::Moments::new();
                moments.extend(&values);
                scale = moments.std(0).unwrap_or(0.0);
            }
            if !(scale > 0.0 && scale.is_finite()) {
                scale = 1.0;
            }
            ScaledFeature {
                name: name.clone(),
                center,
                scale,
            }
        })
        .collect();
    Scaling::new(features)
}

#[cfg(test)]
mod tests {
    use sextant_serve::Tensor;

    use super::*;

    fn names(list: &[&str]) -> Vec<String> {
        list.iter().map(|s| s.to_string()).collect()
    }

    fn matrix(rows: usize, width: usize) -> Vec<NamedTensor> {
        let values = (0..rows * width).map(|i| (i % 97) as f64).collect();
        vec![NamedTensor::new(
            "input-0",
            Tensor::f64_matrix(rows, width, values),
        )]
    }

    fn columns(rows: usize, features: &[&str]) -> Vec<NamedTensor> {
        features
            .iter()
            .map(|f| {
                let values = (0..rows).map(|i| (i % 89) as f64).collect();
                NamedTensor::new(*f, Tensor::column(TensorData::F64(values)))
            })
            .collect()
    }

    #[test]
    fn requests_in_every_wire_format_warm_up_the_same_features() {
        let monitor = AbuseMonitor::default();
        let model = names(&["a", "b", "c"]);
        // An OIP matrix, then dataframe columns with an extra field, in
        // another order: the same three features.
        monitor.observe("d", Some("x"), 1, &matrix(120, 3), Some(&model), &[], 0);
        assert_eq!(monitor.warming_rows("d"), Some(120));
        monitor.observe(
            "d",
            Some("x"),
            2,
            &columns(100, &["c", "extra", "a", "b"]),
            Some(&model),
            &[],
            0,
        );
        assert_eq!(monitor.warming_rows("d"), None, "tracking after 220 rows");
        assert!(monitor.report("d", 3).is_some());
    }

    #[test]
    fn a_new_model_versions_features_take_over_once_warmed_up() {
        let monitor = AbuseMonitor::default();
        let first = names(&["a", "b"]);
        monitor.observe(
            "d",
            None,
            1,
            &columns(SCALING_ROWS, &["a", "b"]),
            Some(&first),
            &[],
            0,
        );
        assert!(monitor.report("d", 2).is_some());
        // Version 2 takes other features: they gather, then are tracked.
        let second = names(&["p", "q", "r"]);
        monitor.observe(
            "d",
            None,
            3,
            &columns(150, &["p", "q", "r"]),
            Some(&second),
            &[],
            0,
        );
        {
            let deployments = monitor.deployments.lock().unwrap();
            let entry = &deployments["d"];
            assert_eq!(entry.tracking.as_ref().unwrap().0, first);
            assert_eq!(entry.warming[&second].len(), 150);
        }
        monitor.observe(
            "d",
            None,
            4,
            &columns(60, &["p", "q", "r"]),
            Some(&second),
            &[],
            0,
        );
        let deployments = monitor.deployments.lock().unwrap();
        assert_eq!(deployments["d"].tracking.as_ref().unwrap().0, second);
    }

    #[test]
    fn without_model_names_a_matrix_is_positional_whatever_its_name() {
        let (names_a, _) = numeric_features(&matrix(2, 3), None, 2);
        let renamed = vec![NamedTensor::new(
            "instances",
            Tensor::f64_matrix(2, 3, vec![0.0; 6]),
        )];
        let (names_b, _) = numeric_features(&renamed, None, 2);
        assert_eq!(names_a, names_b);
        assert_eq!(names_a, names(&["#0", "#1", "#2"]));
    }
}
