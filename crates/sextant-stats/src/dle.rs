//! Direct loss estimation (DLE): a regressor's performance estimated
//! without labels, as NannyML defines it
//! (`nannyml/performance_estimation/direct_loss_estimation`, 0.13).
//!
//! On a labelled reference, a "nanny" model learns each row's loss from
//! the features and the monitored model's prediction: `|y − ŷ|` for MAE,
//! `(y − ŷ)²` for MSE and RMSE, `|y − ŷ| / max(ε, |y|)` for MAPE (ε the
//! machine epsilon, as scikit-learn's MAPE and NannyML define it). On unlabelled
//! data the estimate is the mean of the nanny's predicted losses, clipped
//! at 0 row by row (NannyML's `np.maximum(0, …)`), and RMSE is the root of
//! the estimated MSE. Where the monitored model errs more in some region
//! of the inputs, a shift of traffic into that region raises the estimate
//! before any label arrives; like CBPE, DLE assumes P(y | x) is unchanged.
//!
//! The nanny is [`crate::gbdt`]'s gradient-boosted trees with LightGBM's
//! default capacity, where NannyML uses LightGBM itself, so estimates are
//! close to NannyML's but not equal (the golden test bounds the
//! difference). Sampling errors are NannyML's
//! (`nannyml/sampling_error/regression.py`), with σ the population
//! standard deviation over the reference and n the rows estimated:
//! MAE, MSE, MAPE: `σ(loss) / √n` (NannyML's MAPE component divides by
//! the signed target; here by `max(ε, |y|)`, the same for positive targets); RMSE: `√(σ(e²)² / (4 n · mean(e²)))`
//! (the delta method on the square root).

use serde::Serialize;

use crate::gbdt::{Gbdt, GbdtConfig, GbdtError};

/// A metric DLE estimates.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DleMetric {
    Mae,
    Mse,
    Rmse,
    Mape,
}

impl DleMetric {
    pub const ALL: [DleMetric; 4] = [
        DleMetric::Mae,
        DleMetric::Mse,
        DleMetric::Rmse,
        DleMetric::Mape,
    ];

    pub fn name(self) -> &'static str {
        match self {
            DleMetric::Mae => "mae",
            DleMetric::Mse => "mse",
            DleMetric::Rmse => "rmse",
            DleMetric::Mape => "mape",
        }
    }
}

/// One estimated metric.
#[derive(Debug, Clone, Copy, PartialEq, Serialize)]
pub struct DleValue {
    pub value: f64,
    pub sampling_error: f64,
}

/// Estimates over one set of rows.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct DleEstimate {
    pub rows: usize,
    pub mae: DleValue,
    pub mse: DleValue,
    pub rmse: DleValue,
    pub mape: DleValue,
}

impl DleEstimate {
    pub fn get(&self, metric: DleMetric) -> Option<DleValue> {
        match metric {
            DleMetric::Mae => Some(self.mae),
            DleMetric::Mse => Some(self.mse),
            DleMetric::Rmse => Some(self.rmse),
            DleMetric::Mape => Some(self.mape),
        }
    }
}

/// Why DLE could not be fitted or applied.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum DleError {
    #[error(
        "the reference has {got} labelled rows with a prediction; DLE needs at least {needed}"
    )]
    TooFewRows { got: usize, needed: usize },
    #[error("{what} has {got} values for {rows} rows")]
    Ragged {
        what: &'static str,
        got: usize,
        rows: usize,
    },
    #[error("expected {expected} feature columns, got {got}")]
    FeatureCount { expected: usize, got: usize },
    #[error(transparent)]
    Nanny(#[from] GbdtError),
}

/// Fewest labelled reference rows DLE is fitted on.
pub const MIN_REFERENCE_ROWS: usize = 100;

/// Population mean and standard deviation (numpy's `np.std`, ddof = 0).
fn mean_and_std(values: &[f64]) -> (f64, f64) {
    let n = values.len() as f64;
    let mean = values.iter().sum::<f64>() / n;
    let variance = values.iter().map(|v| (v - mean) * (v - mean)).sum::<f64>() / n;
    (mean, variance.sqrt())
}

/// DLE fitted on a labelled reference.
#[derive(Debug, Clone)]
pub struct Dle {
    features: usize,
    absolute: Gbdt,
    squared: Gbdt,
    percentage: Gbdt,
    std_absolute: f64,
    std_squared: f64,
    mean_squared: f64,
    std_percentage: f64,
    reference_rows: usize,
}

/// Every feature column has `rows` values.
fn check_rows(features: &[&[f64]], rows: usize) -> Result<(), DleError> {
    match features.iter().find(|column| column.len() != rows) {
        Some(column) => Err(DleError::Ragged {
            what: "a feature column",
            got: column.len(),
            rows,
        }),
        None => Ok(()),
    }
}

/// The nanny's inputs: the features, then the prediction.
fn inputs<'a>(features: &[&'a [f64]], predictions: &'a [f64]) -> Vec<&'a [f64]> {
    let mut columns: Vec<&[f64]> = features.to_vec();
    columns.push(predictions);
    columns
}

impl Dle {
    /// Fits on the reference: `features` (one column per feature, NaN for
    /// missing), the monitored model's `predictions` and the `targets`.
    /// Rows without a finite prediction or target are left out, as
    /// NannyML's `common_nan_removal` leaves them out.
    pub fn fit(
        features: &[&[f64]],
        predictions: &[f64],
        targets: &[f64],
        config: &GbdtConfig,
    ) -> Result<Dle, DleError> {
        let rows = predictions.len();
        if targets.len() != rows {
            return Err(DleError::Ragged {
                what: "targets",
                got: targets.len(),
                rows,
            });
        }
        check_rows(features, rows)?;
        let kept: Vec<usize> = (0..rows)
            .filter(|&i| predictions[i].is_finite() && targets[i].is_finite())
            .collect();
        if kept.len() < MIN_REFERENCE_ROWS {
            return Err(DleError::TooFewRows {
                got: kept.len(),
                needed: MIN_REFERENCE_ROWS,
            });
        }
        let pick = |column: &[f64]| kept.iter().map(|&i| column[i]).collect::<Vec<f64>>();
        let kept_features: Vec<Vec<f64>> = features.iter().map(|c| pick(c)).collect();
        let kept_predictions = pick(predictions);
        let kept_targets = pick(targets);
        let feature_refs: Vec<&[f64]> = kept_features.iter().map(Vec::as_slice).collect();
        let columns = inputs(&feature_refs, &kept_predictions);
        let errors: Vec<f64> = kept_targets
            .iter()
            .zip(&kept_predictions)
            .map(|(y, p)| y - p)
            .collect();
        let absolute_errors: Vec<f64> = errors.iter().map(|e| e.abs()).collect();
        let squared_errors: Vec<f64> = errors.iter().map(|e| e * e).collect();
        let percentage_errors: Vec<f64> = absolute_errors
            .iter()
            .zip(&kept_targets)
            .map(|(a, y)| a / y.abs().max(f64::EPSILON))
            .collect();
        // The three nannies are independent: one thread each.
        let (absolute, squared, percentage) = std::thread::scope(|scope| {
            let squared = scope.spawn(|| Gbdt::fit(&columns, &squared_errors, config));
            let percentage = scope.spawn(|| Gbdt::fit(&columns, &percentage_errors, config));
            let absolute = Gbdt::fit(&columns, &absolute_errors, config);
            (
                absolute,
                squared.join().expect("nanny training does not panic"),
                percentage.join().expect("nanny training does not panic"),
            )
        });
        let (absolute, squared, percentage) = (absolute?, squared?, percentage?);
        let (_, std_absolute) = mean_and_std(&absolute_errors);
        let (mean_squared, std_squared) = mean_and_std(&squared_errors);
        let (_, std_percentage) = mean_and_std(&percentage_errors);
        Ok(Dle {
            features: features.len(),
            absolute,
            squared,
            percentage,
            std_absolute,
            std_squared,
            mean_squared,
            std_percentage,
            reference_rows: kept.len(),
        })
    }

    /// Labelled rows the nanny learnt from.
    pub fn reference_rows(&self) -> usize {
        self.reference_rows
    }

    /// Estimates over rows with `features` and `predictions`; rows without
    /// a finite prediction are left out. `None` when no row is left.
    pub fn estimate(
        &self,
        features: &[&[f64]],
        predictions: &[f64],
    ) -> Result<Option<DleEstimate>, DleError> {
        if features.len() != self.features {
            return Err(DleError::FeatureCount {
                expected: self.features,
                got: features.len(),
            });
        }
        let rows = predictions.len();
        check_rows(features, rows)?;
        let kept: Vec<usize> = (0..rows).filter(|&i| predictions[i].is_finite()).collect();
        if kept.is_empty() {
            return Ok(None);
        }
        let pick = |column: &[f64]| kept.iter().map(|&i| column[i]).collect::<Vec<f64>>();
        let kept_features: Vec<Vec<f64>> = features.iter().map(|c| pick(c)).collect();
        let kept_predictions = pick(predictions);
        let feature_refs: Vec<&[f64]> = kept_features.iter().map(Vec::as_slice).collect();
        let columns = inputs(&feature_refs, &kept_predictions);
        let n = kept.len() as f64;
        let mean_clipped = |model: &Gbdt| {
            model
                .predict(&columns)
                .into_iter()
                .map(|v| v.max(0.0))
                .sum::<f64>()
                / n
        };
        let mse = mean_clipped(&self.squared);
        Ok(Some(DleEstimate {
            rows: kept.len(),
            mae: DleValue {
                value: mean_clipped(&self.absolute),
                sampling_error: self.std_absolute / n.sqrt(),
            },
            mse: DleValue {
                value: mse,
                sampling_error: self.std_squared / n.sqrt(),
            },
            rmse: DleValue {
                value: mse.sqrt(),
                sampling_error: (self.std_squared.powi(2) / (4.0 * n * self.mean_squared)).sqrt(),
            },
            mape: DleValue {
                value: mean_clipped(&self.percentage),
                sampling_error: self.std_percentage / n.sqrt(),
            },
        }))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A model whose error grows with |x|: moving traffic outwards raises
    /// the estimate, as the realised error rises.
    #[test]
    fn follows_a_covariate_shift_into_worse_regions() {
        let mut state = 42u64;
        let mut uniform = move || {
            state = state
                .wrapping_mul(6364136223846793005)
                .wrapping_add(1442695040888963407);
            ((state >> 11) as f64 + 0.5) / (1u64 << 53) as f64
        };
        let mut draw = |n: usize, spread: f64| {
            let mut x = Vec::new();
            let mut predicted = Vec::new();
            let mut target = Vec::new();
            for _ in 0..n {
                let v = (uniform() * 2.0 - 1.0) * spread;
                // Noise with standard deviation |v| (Box-Muller).
                let noise =
                    (-2.0 * uniform().ln()).sqrt() * (std::f64::consts::TAU * uniform()).cos();
                x.push(v);
                predicted.push(2.0 * v);
                target.push(2.0 * v + noise * v.abs());
            }
            (x, predicted, target)
        };
        let (x, predicted, target) = draw(5_000, 1.0);
        let dle = Dle::fit(&[&x], &predicted, &target, &GbdtConfig::LIGHTGBM).unwrap();
        for spread in [1.0, 2.0] {
            let (x, predicted, target) = draw(2_000, spread);
            let estimate = dle.estimate(&[&x], &predicted).unwrap().unwrap();
            let realised = target
                .iter()
                .zip(&predicted)
                .map(|(y, p)| (y - p).abs())
                .sum::<f64>()
                / 2_000.0;
            // Beyond |x| = 1 the trees extrapolate flat, so the shifted
            // estimate rises but stays under the truth.
            if spread == 1.0 {
                assert!(
                    (estimate.mae.value - realised).abs() < 4.0 * estimate.mae.sampling_error,
                    "{estimate:?} vs {realised}"
                );
            } else {
                assert!(estimate.mae.value > 0.45, "{estimate:?} vs {realised}");
            }
        }
    }

    #[test]
    fn bad_input_is_an_error() {
        let config = GbdtConfig::LIGHTGBM;
        let x = vec![1.0; 50];
        assert!(matches!(
            Dle::fit(&[&x], &x, &x, &config),
            Err(DleError::TooFewRows { got: 50, .. })
        ));
        assert!(matches!(
            Dle::fit(&[&x], &x, &x[..10], &config),
            Err(DleError::Ragged { .. })
        ));
        let x: Vec<f64> = (0..200).map(f64::from).collect();
        let dle = Dle::fit(&[&x], &x, &x, &config).unwrap();
        assert!(matches!(
            dle.estimate(&[], &x),
            Err(DleError::FeatureCount { .. })
        ));
        assert_eq!(dle.estimate(&[&[1.0]], &[f64::NAN]).unwrap(), None);
        // A zero target is divided by ε, as scikit-learn's MAPE does.
        assert!(dle
            .estimate(&[&x], &x)
            .unwrap()
            .unwrap()
            .mape
            .value
            .is_finite());
    }
}
