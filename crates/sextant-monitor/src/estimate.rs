//! Performance estimation without labels on files, as NannyML runs it:
//! fit on a labelled reference, estimate each chunk of unlabelled analysis
//! data, flag chunks outside the reference's range.
//!
//! A binary classifier with scores gets CBPE ([`sextant_stats::cbpe`]); a
//! regressor gets DLE ([`sextant_stats::dle`]). Alert thresholds are
//! NannyML's `StandardDeviationThreshold`: the realised metric on every
//! reference chunk, mean ± 3 standard deviations (ddof 0), clamped to the
//! metric's limits. Confidence bands are the estimate ± 3 sampling errors.
//! When the analysis data carries the target too, each chunk also shows
//! the realised value, so the estimate can be checked.

use serde::Serialize;
use sextant_stats::cbpe::{self, Cbpe, CbpeConfig, CbpeMetric, MetricEstimate, Predicted};
use sextant_stats::dle::{Dle, DleMetric};
use sextant_stats::gbdt::GbdtConfig;
use sextant_stats::performance as metrics;

use crate::dataset::{ColumnValues, DatasetError, Table};

/// What to estimate and on which columns.
#[derive(Debug, Clone)]
pub struct EstimateOptions {
    /// The label column (needed in the reference; used in the analysis
    /// data, when present, for realised values).
    pub target: String,
    /// The model's output: the predicted value of a regressor, the
    /// predicted class of a classifier (optional with `score`).
    pub prediction: Option<String>,
    /// A binary classifier's probability of the positive class: CBPE.
    /// Without it, DLE on `prediction`.
    pub score: Option<String>,
    /// The nanny's features for DLE (default: every numeric or categorical
    /// column but the target, prediction and score).
    pub features: Option<Vec<String>>,
    /// Rows per chunk (default: a tenth of the analysis rows, as NannyML's
    /// default chunker makes ten).
    pub chunk_size: Option<usize>,
    /// A score at or above this is the positive class, when no prediction
    /// column is given (default 0.5).
    pub threshold: f64,
}

#[derive(Debug, thiserror::Error)]
pub enum EstimateError {
    #[error(transparent)]
    Dataset(#[from] DatasetError),
    #[error("{0}")]
    Invalid(String),
}

/// An estimated metric in one chunk.
#[derive(Debug, Clone, Serialize)]
pub struct ChunkMetric {
    pub value: Option<f64>,
    pub sampling_error: Option<f64>,
    pub lower_confidence: Option<f64>,
    pub upper_confidence: Option<f64>,
    pub lower_threshold: Option<f64>,
    pub upper_threshold: Option<f64>,
    /// Outside the thresholds.
    pub alert: bool,
    /// The metric on the chunk's labels, when the analysis has them.
    pub realised: Option<f64>,
}

#[derive(Debug, Clone, Serialize)]
pub struct Chunk {
    pub start: usize,
    pub end: usize,
    pub rows: usize,
    pub metrics: std::collections::BTreeMap<&'static str, ChunkMetric>,
}

#[derive(Debug, Clone, Serialize)]
pub struct EstimateReport {
    /// `cbpe` or `dle`.
    pub method: &'static str,
    pub reference_rows: usize,
    pub chunk_size: usize,
    /// The nanny's inputs (DLE).
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub features: Vec<String>,
    pub chunks: Vec<Chunk>,
    /// Chunks with any metric alerting.
    pub alerts: usize,
}

fn finite(value: f64) -> Option<f64> {
    value.is_finite().then_some(value)
}

/// A column as numbers: categories by their dictionary code, missing NaN.
fn numbers(table: &Table, name: &str) -> Result<Vec<f64>, EstimateError> {
    Ok(match &*table.column(name)? {
        ColumnValues::Numeric { values, .. } => values.clone(),
        ColumnValues::Strings { codes, .. } | ColumnValues::Boolean { codes } => codes
            .iter()
            .map(|&c| {
                if c == crate::dataset::MISSING_CODE {
                    f64::NAN
                } else {
                    f64::from(c)
                }
            })
            .collect(),
        ColumnValues::Unsupported { type_name, .. } => {
            return Err(EstimateError::Invalid(format!(
                "column '{name}' has type {type_name}, which cannot be used"
            )))
        }
    })
}

/// A feature in both tables as numbers; text categories are numbered by
/// the reference's vocabulary (sorted), so a code means the same category
/// on both sides, and a category the reference never had is missing.
fn feature_pair(
    reference: &Table,
    analysis: &Table,
    name: &str,
) -> Result<(Vec<f64>, Vec<f64>), EstimateError> {
    let (left, right) = (reference.column(name)?, analysis.column(name)?);
    if let ColumnValues::Strings { dictionary, .. } = &*left {
        let mut vocabulary: Vec<&str> = dictionary.iter().map(String::as_str).collect();
        vocabulary.sort_unstable();
        vocabulary.dedup();
        let encode = |column: &ColumnValues| -> Vec<f64> {
            match column {
                ColumnValues::Strings { codes, dictionary } => codes
                    .iter()
                    .map(|&c| {
                        if c == crate::dataset::MISSING_CODE {
                            return f64::NAN;
                        }
                        vocabulary
                            .binary_search(&dictionary[c as usize].as_str())
                            .map_or(f64::NAN, |k| k as f64)
                    })
                    .collect(),
                other => vec![f64::NAN; other.len()],
            }
        };
        return Ok((encode(&left), encode(&right)));
    }
    Ok((numbers(reference, name)?, numbers(analysis, name)?))
}

/// A binary column as booleans: 1/0, true/false, or two categories (the
/// later in sorted order is positive). `None` per missing value.
fn binary(table: &Table, name: &str) -> Result<Vec<Option<bool>>, EstimateError> {
    let column = table.column(name)?;
    let not_binary = || {
        EstimateError::Invalid(format!(
            "column '{name}' must hold two classes (0/1, true/false or two labels) for CBPE"
        ))
    };
    match &*column {
        ColumnValues::Numeric { values, .. } => values
            .iter()
            .map(|&v| match v {
                v if v.is_nan() => Ok(None),
                v if v == 1.0 => Ok(Some(true)),
                v if v == 0.0 => Ok(Some(false)),
                _ => Err(not_binary()),
            })
            .collect(),
        ColumnValues::Boolean { codes } => Ok(codes
            .iter()
            .map(|&c| (c != crate::dataset::MISSING_CODE).then_some(c == 1))
            .collect()),
        ColumnValues::Strings { codes, dictionary } => {
            let mut labels: Vec<&String> = dictionary.iter().collect();
            labels.sort();
            labels.dedup();
            if labels.len() > 2 {
                return Err(not_binary());
            }
            let positive = labels.last().map(|s| s.as_str()).unwrap_or_default();
            Ok(codes
                .iter()
                .map(|&c| {
                    (c != crate::dataset::MISSING_CODE).then(|| dictionary[c as usize] == positive)
                })
                .collect())
        }
        ColumnValues::Unsupported { .. } => Err(not_binary()),
    }
}

fn chunks_of(rows: usize, size: usize) -> Vec<(usize, usize)> {
    (0..rows)
        .step_by(size)
        .map(|start| (start, (start + size).min(rows)))
        .collect()
}

/// `mean ± 3σ` (ddof 0) of the finite values, clamped below at `floor`
/// and above at `ceiling`.
fn std_thresholds(values: &[f64], floor: f64, ceiling: f64) -> (Option<f64>, Option<f64>) {
    let finite: Vec<f64> = values.iter().copied().filter(|v| v.is_finite()).collect();
    if finite.is_empty() {
        return (None, None);
    }
    let n = finite.len() as f64;
    let mean = finite.iter().sum::<f64>() / n;
    let std = (finite.iter().map(|v| (v - mean).powi(2)).sum::<f64>() / n).sqrt();
    (
        Some((mean - 3.0 * std).max(floor)),
        Some((mean + 3.0 * std).min(ceiling)),
    )
}

/// Fits on `reference`, estimates each chunk of `analysis`.
pub fn estimate_report(
    reference: &Table,
    analysis: &Table,
    options: &EstimateOptions,
) -> Result<EstimateReport, EstimateError> {
    if analysis.rows() == 0 {
        return Err(EstimateError::Invalid(
            "the analysis data has no rows".into(),
        ));
    }
    let chunk_size = options
        .chunk_size
        .unwrap_or_else(|| analysis.rows().div_ceil(10))
        .max(1);
    let mut report = match &options.score {
        Some(score) => cbpe_report(reference, analysis, options, score, chunk_size)?,
        None => dle_report(reference, analysis, options, chunk_size)?,
    };
    report.alerts = report
        .chunks
        .iter()
        .filter(|c| c.metrics.values().any(|m| m.alert))
        .count();
    Ok(report)
}

fn cbpe_report(
    reference: &Table,
    analysis: &Table,
    options: &EstimateOptions,
    score: &str,
    chunk_size: usize,
) -> Result<EstimateReport, EstimateError> {
    let labels = binary(reference, &options.target)?;
    let scores = numbers(reference, score)?;
    let predicted_of = |table: &Table, scores: &[f64]| -> Result<Vec<bool>, EstimateError> {
        match &options.prediction {
            Some(column) => Ok(binary(table, column)?
                .into_iter()
                .map(|p| p.unwrap_or(false))
                .collect()),
            None => Ok(scores.iter().map(|&s| s >= options.threshold).collect()),
        }
    };
    let predicted = predicted_of(reference, &scores)?;
    // Labelled rows only, as NannyML drops rows without a target.
    let kept: Vec<usize> = (0..labels.len())
        .filter(|&i| labels[i].is_some() && !scores[i].is_nan())
        .collect();
    let reference_scores: Vec<f64> = kept.iter().map(|&i| scores[i]).collect();
    let reference_labels: Vec<bool> = kept.iter().map(|&i| labels[i] == Some(true)).collect();
    let reference_predicted: Vec<bool> = kept.iter().map(|&i| predicted[i]).collect();
    let config = CbpeConfig {
        chunk_size: Some(chunk_size),
        ..CbpeConfig::NANNYML
    };
    let estimator = Cbpe::fit(
        &reference_scores,
        &reference_labels,
        Predicted::Labels(&reference_predicted),
        &config,
    )
    .map_err(|e| EstimateError::Invalid(e.to_string()))?;
    let analysis_scores = numbers(analysis, score)?;
    let analysis_predicted = predicted_of(analysis, &analysis_scores)?;
    let analysis_labels = if analysis.has_column(&options.target) {
        Some(binary(analysis, &options.target)?)
    } else {
        None
    };
    let metrics = [
        CbpeMetric::RocAuc,
        CbpeMetric::F1,
        CbpeMetric::Precision,
        CbpeMetric::Recall,
        CbpeMetric::Specificity,
        CbpeMetric::Accuracy,
    ];
    let mut chunks = Vec::new();
    for (start, end) in chunks_of(analysis.rows(), chunk_size) {
        let estimate = estimator.estimate(
            &analysis_scores[start..end],
            &analysis_predicted[start..end],
        );
        let realised = analysis_labels.as_ref().map(|labels| {
            let rows: Vec<usize> = (start..end)
                .filter(|&i| labels[i].is_some() && !analysis_scores[i].is_nan())
                .collect();
            cbpe::realized_metrics(
                &rows.iter().map(|&i| analysis_scores[i]).collect::<Vec<_>>(),
                &rows
                    .iter()
                    .map(|&i| labels[i] == Some(true))
                    .collect::<Vec<_>>(),
                &rows
                    .iter()
                    .map(|&i| analysis_predicted[i])
                    .collect::<Vec<_>>(),
            )
        });
        let mut chunk_metrics = std::collections::BTreeMap::new();
        for metric in metrics {
            let value: &MetricEstimate = estimate.metrics.get(metric);
            let threshold = estimator.thresholds().get(metric);
            chunk_metrics.insert(
                metric.name(),
                ChunkMetric {
                    value: finite(value.value),
                    sampling_error: finite(value.sampling_error),
                    lower_confidence: finite(value.lower_confidence),
                    upper_confidence: finite(value.upper_confidence),
                    lower_threshold: threshold.lower,
                    upper_threshold: threshold.upper,
                    alert: value.alert,
                    realised: realised.as_ref().and_then(|r| finite(*r.get(metric))),
                },
            );
        }
        chunks.push(Chunk {
            start,
            end,
            rows: estimate.rows,
            metrics: chunk_metrics,
        });
    }
    Ok(EstimateReport {
        method: "cbpe",
        reference_rows: kept.len(),
        chunk_size,
        features: Vec::new(),
        chunks,
        alerts: 0,
    })
}

fn dle_report(
    reference: &Table,
    analysis: &Table,
    options: &EstimateOptions,
    chunk_size: usize,
) -> Result<EstimateReport, EstimateError> {
    let prediction = options.prediction.as_deref().ok_or_else(|| {
        EstimateError::Invalid(
            "give --prediction (a regressor's output, for DLE) or --score (a binary classifier's probability, for CBPE)".into(),
        )
    })?;
    let features: Vec<String> = match &options.features {
        Some(features) => features.clone(),
        None => reference
            .column_names()
            .iter()
            .filter(|name| {
                *name != &options.target && name.as_str() != prediction && analysis.has_column(name)
            })
            .cloned()
            .collect(),
    };
    for name in &features {
        if !analysis.has_column(name) {
            return Err(EstimateError::Invalid(format!(
                "feature '{name}' is missing from the analysis data"
            )));
        }
    }
    let (reference_features, analysis_features): (Vec<Vec<f64>>, Vec<Vec<f64>>) = features
        .iter()
        .map(|f| feature_pair(reference, analysis, f))
        .collect::<Result<Vec<_>, _>>()?
        .into_iter()
        .unzip();
    let reference_predictions = numbers(reference, prediction)?;
    let reference_targets = numbers(reference, &options.target)?;
    let refs: Vec<&[f64]> = reference_features.iter().map(Vec::as_slice).collect();
    let dle = Dle::fit(
        &refs,
        &reference_predictions,
        &reference_targets,
        &GbdtConfig::LIGHTGBM,
    )
    .map_err(|e| EstimateError::Invalid(e.to_string()))?;

    // Thresholds from the realised metric on each reference chunk.
    // scikit-learn's metrics (sextant-stats), over the rows with both values.
    let realised_metric = |metric: DleMetric, targets: &[f64], predictions: &[f64]| -> f64 {
        let (truth, predicted): (Vec<f64>, Vec<f64>) = targets
            .iter()
            .zip(predictions)
            .filter(|(y, p)| y.is_finite() && p.is_finite())
            .map(|(y, p)| (*y, *p))
            .unzip();
        match metric {
            DleMetric::Mae => metrics::mae(&truth, &predicted),
            DleMetric::Mse => metrics::rmse(&truth, &predicted).powi(2),
            DleMetric::Rmse => metrics::rmse(&truth, &predicted),
            DleMetric::Mape => metrics::mape(&truth, &predicted),
        }
    };
    let thresholds: Vec<(Option<f64>, Option<f64>)> = DleMetric::ALL
        .iter()
        .map(|&metric| {
            let values: Vec<f64> = chunks_of(reference.rows(), chunk_size)
                .into_iter()
                .map(|(s, e)| {
                    realised_metric(
                        metric,
                        &reference_targets[s..e],
                        &reference_predictions[s..e],
                    )
                })
                .collect();
            std_thresholds(&values, 0.0, f64::INFINITY)
        })
        .collect();

    let analysis_predictions = numbers(analysis, prediction)?;
    let analysis_targets = if analysis.has_column(&options.target) {
        Some(numbers(analysis, &options.target)?)
    } else {
        None
    };
    let mut chunks = Vec::new();
    for (start, end) in chunks_of(analysis.rows(), chunk_size) {
        let slices: Vec<&[f64]> = analysis_features.iter().map(|c| &c[start..end]).collect();
        let estimate = dle
            .estimate(&slices, &analysis_predictions[start..end])
            .map_err(|e| EstimateError::Invalid(e.to_string()))?;
        let mut chunk_metrics = std::collections::BTreeMap::new();
        for (k, &metric) in DleMetric::ALL.iter().enumerate() {
            let value = estimate.as_ref().and_then(|e| e.get(metric));
            let (lower, upper) = thresholds[k];
            let estimated = value.map(|v| v.value);
            let alert = estimated
                .is_some_and(|v| lower.is_some_and(|l| v < l) || upper.is_some_and(|u| v > u));
            chunk_metrics.insert(
                metric.name(),
                ChunkMetric {
                    value: estimated.and_then(finite),
                    sampling_error: value.and_then(|v| finite(v.sampling_error)),
                    lower_confidence: value
                        .and_then(|v| finite((v.value - 3.0 * v.sampling_error).max(0.0))),
                    upper_confidence: value.and_then(|v| finite(v.value + 3.0 * v.sampling_error)),
                    lower_threshold: lower,
                    upper_threshold: upper,
                    alert,
                    realised: analysis_targets.as_ref().and_then(|targets| {
                        finite(realised_metric(
                            metric,
                            &targets[start..end],
                            &analysis_predictions[start..end],
                        ))
                    }),
                },
            );
        }
        chunks.push(Chunk {
            start,
            end,
            rows: estimate.map_or(0, |e| e.rows),
            metrics: chunk_metrics,
        });
    }
    Ok(EstimateReport {
        method: "dle",
        reference_rows: dle.reference_rows(),
        chunk_size,
        features,
        chunks,
        alerts: 0,
    })
}
