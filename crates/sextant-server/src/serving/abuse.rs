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

enum DeploymentAbuse {
    /// Gathering rows for the scaling.
    Warming {
        names: Vec<String>,
        rows: Vec<Vec<f64>>,
    },
    Tracking {
        names: Vec<String>,
        tracker: Box<AbuseTracker>,
    },
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
        let entry = deployments
            .entry(deployment.to_string())
            .or_insert_with(|| DeploymentAbuse::Warming {
                names: names.clone(),
                rows: Vec::new(),
            });
        match entry {
            DeploymentAbuse::Warming {
                names: first,
                rows: gathered,
            } => {
                if *first != names {
                    return;
                }
                gathered.extend(values.chunks(names.len()).map(<[f64]>::to_vec));
                if gathered.len() >= SCALING_ROWS {
                    let scaling = robust_scaling(first, gathered);
                    *entry = DeploymentAbuse::Tracking {
                        names: first.clone(),
                        tracker: Box::new(AbuseTracker::new(AbuseConfig::default(), scaling)),
                    };
                }
            }
            DeploymentAbuse::Tracking {
                names: tracked,
                tracker,
            } => {
                let aligned: Vec<Option<usize>> = tracked
                    .iter()
                    .map(|n| names.iter().position(|m| m == n))
                    .collect();
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
        }
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
        match deployments.get(deployment)? {
            DeploymentAbuse::Tracking { tracker, .. } => Some(tracker.report(now_us)),
            DeploymentAbuse::Warming { .. } => None,
        }
    }

    /// Rows gathered towards the scaling, while warming up.
    pub fn warming_rows(&self, deployment: &str) -> Option<usize> {
        match self
            .deployments
            .lock()
            .expect("abuse lock")
            .get(deployment)?
        {
            DeploymentAbuse::Warming { rows, .. } => Some(rows.len()),
            DeploymentAbuse::Tracking { .. } => None,
        }
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

/// Numeric features of a request, row-major: 1-D tensors by their names, a
/// matrix by the model's feature names (or `<input>_<k>`).
fn numeric_features(
    inputs: &[NamedTensor],
    feature_names: Option<&[String]>,
    rows: usize,
) -> (Vec<String>, Vec<f64>) {
    let mut names = Vec::new();
    let mut columns: Vec<(usize, usize, usize)> = Vec::new();
    for (index, input) in inputs.iter().enumerate() {
        if matches!(input.tensor.data, TensorData::Str(_)) || input.tensor.rows() != rows {
            continue;
        }
        let width = input.tensor.row_width();
        if input.tensor.shape.len() <= 1 || width == 1 {
            names.push(input.name.clone());
            columns.push((index, 1, 0));
        } else {
            for k in 0..width {
                let name = feature_names
                    .filter(|f| f.len() == width && inputs.len() == 1)
                    .map_or_else(|| format!("{}_{k}", input.name), |f| f[k].clone());
                names.push(name);
                columns.push((index, width, k));
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
