//! cbpe against `tests/golden/cbpe.json`: the isotonic calibrator against
//! scikit-learn 1.9.1's `IsotonicRegression`, the ECE against NannyML
//! 0.13.1's, and CBPE against NannyML 0.13.1's `CBPE` on two generated
//! data sets (overconfident scores that NannyML calibrates, calibrated
//! scores that it leaves alone) with fixed and default chunking.
//!
//! Tolerances: everything is compared exactly (bit-identical) — the
//! isotonic fit and predictions, the ECE, and CBPE's estimates, sampling
//! errors, confidence bands, thresholds, realised metrics and alerts —
//! except the realised ROC AUC and the ROC AUC thresholds derived from it,
//! held to 1e-15 relative (see `REALIZED_AUC_RTOL`). The calibration
//! decision is pinned to NannyML's for the estimates, and
//! [`needs_calibration`]'s own decision is checked to agree on all three
//! references.

use serde_json::Value;
use sextant_stats::cbpe::{
    expected_calibration_error, needs_calibration, realized_metrics, CalibrationPolicy, Cbpe,
    CbpeConfig, CbpeMetric, IsotonicCalibrator, Predicted,
};

/// Relative tolerance for the realised ROC AUC and the AUC thresholds
/// derived from it: sklearn sums trapezoids, [`roc_auc`] divides the exact
/// Mann–Whitney U once, so they differ by an ulp or two. Everything else is
/// compared exactly.
///
/// [`roc_auc`]: sextant_stats::performance::roc_auc
const REALIZED_AUC_RTOL: f64 = 1e-15;

fn realized_rtol(metric: CbpeMetric) -> f64 {
    if metric == CbpeMetric::RocAuc {
        REALIZED_AUC_RTOL
    } else {
        0.0
    }
}

fn data() -> Value {
    crate::golden("cbpe")
}

fn number(value: &Value) -> f64 {
    match value {
        Value::String(s) if s == "nan" => f64::NAN,
        Value::Null => f64::NAN,
        other => other
            .as_f64()
            .unwrap_or_else(|| panic!("not a number: {other}")),
    }
}

fn numbers(value: &Value) -> Vec<f64> {
    value.as_array().unwrap().iter().map(number).collect()
}

#[track_caller]
fn assert_close(actual: f64, expected: f64, rtol: f64, what: &str) {
    if actual.is_nan() && expected.is_nan() || actual == expected {
        return;
    }
    let error = (actual - expected).abs() / expected.abs().max(actual.abs());
    assert!(
        error <= rtol,
        "{what}: got {actual:e}, NannyML {expected:e} (relative {error:e})"
    );
}

#[test]
fn isotonic_matches_sklearn_exactly() {
    for case in data()["isotonic"].as_array().unwrap() {
        let name = case["name"].as_str().unwrap();
        let calibrator =
            IsotonicCalibrator::fit(&numbers(&case["x"]), &numbers(&case["y"])).unwrap();
        let (x, y) = calibrator.thresholds();
        assert_eq!(x, numbers(&case["x_thresholds"]), "{name} X_thresholds_");
        assert_eq!(y, numbers(&case["y_thresholds"]), "{name} y_thresholds_");
        for (query, expected) in numbers(&case["queries"])
            .into_iter()
            .zip(numbers(&case["predictions"]))
        {
            let got = calibrator.predict(query);
            assert!(
                got == expected,
                "{name}: predict({query:e}) = {got:e}, sklearn {expected:e}"
            );
        }
    }
}

#[test]
fn ece_matches_nannyml() {
    for case in data()["ece"].as_array().unwrap() {
        let labels: Vec<bool> = case["y_true"]
            .as_array()
            .unwrap()
            .iter()
            .map(|v| v == 1)
            .collect();
        let ece =
            expected_calibration_error(&labels, &numbers(&case["probabilities"]), 10).unwrap();
        assert_eq!(ece, number(&case["ece"]), "n = {}", labels.len());
    }
}

struct Frame {
    scores: Vec<f64>,
    labels: Vec<bool>,
    predicted: Vec<bool>,
}

fn frame(value: &Value, rows: Option<usize>) -> Frame {
    let mut scores = numbers(&value["score"]);
    let mut labels: Vec<bool> = value["label"]
        .as_array()
        .unwrap()
        .iter()
        .map(|v| v == 1)
        .collect();
    if let Some(rows) = rows {
        scores.truncate(rows);
        labels.truncate(rows);
    }
    let predicted = scores.iter().map(|&s| s >= 0.5).collect();
    Frame {
        scores,
        labels,
        predicted,
    }
}

#[test]
fn cbpe_matches_nannyml() {
    let data = data();
    let fields: Vec<&str> = data["chunk_fields"]
        .as_array()
        .unwrap()
        .iter()
        .map(|f| f.as_str().unwrap())
        .collect();
    assert_eq!(
        fields,
        [
            "value",
            "sampling_error",
            "realized",
            "lower_confidence_boundary",
            "upper_confidence_boundary",
            "alert"
        ]
    );
    for case in data["cbpe"].as_array().unwrap() {
        let name = case["name"].as_str().unwrap();
        let dataset = &data["datasets"][case["dataset"].as_str().unwrap()];
        let reference = frame(
            &dataset["reference"],
            case["reference_rows"].as_u64().map(|r| r as usize),
        );
        let analysis = frame(&dataset["analysis"], None);
        let nannyml_calibrates = case["needs_calibration"].as_bool().unwrap();
        let config = CbpeConfig {
            calibration: if nannyml_calibrates {
                CalibrationPolicy::Always
            } else {
                CalibrationPolicy::Never
            },
            chunk_size: case["chunk_size"].as_u64().map(|c| c as usize),
        };
        let cbpe = Cbpe::fit(
            &reference.scores,
            &reference.labels,
            Predicted::Labels(&reference.predicted),
            &config,
        )
        .unwrap();
        assert_eq!(cbpe.is_calibrated(), nannyml_calibrates, "{name}");

        for metric in CbpeMetric::ALL {
            let column = metric.name();
            let expected = &case["thresholds"][column];
            let threshold = cbpe.thresholds().get(metric);
            let what = format!("{name} {column} threshold");
            let rtol = realized_rtol(metric);
            assert_close(
                threshold.lower.unwrap_or(f64::NAN),
                number(&expected[0]),
                rtol,
                &what,
            );
            assert_close(
                threshold.upper.unwrap_or(f64::NAN),
                number(&expected[1]),
                rtol,
                &what,
            );
        }

        let mut alerts = 0;
        for chunk in case["chunks"].as_array().unwrap() {
            let source = match chunk["period"].as_str().unwrap() {
                "reference" => &reference,
                "analysis" => &analysis,
                other => panic!("period {other}"),
            };
            let (start, end) = (
                chunk["start"].as_u64().unwrap() as usize,
                chunk["end"].as_u64().unwrap() as usize,
            );
            let rows = start..end + 1;
            let estimate = cbpe.estimate(
                &source.scores[rows.clone()],
                &source.predicted[rows.clone()],
            );
            let realized = realized_metrics(
                &source.scores[rows.clone()],
                &source.labels[rows.clone()],
                &source.predicted[rows.clone()],
            );
            assert_eq!(estimate.rows, end + 1 - start);
            for metric in CbpeMetric::ALL {
                let column = metric.name();
                let expected = &chunk[column];
                let got = estimate.metrics.get(metric);
                let what = |field: &str| {
                    format!(
                        "{name} {} [{start}:{end}] {column} {field}",
                        chunk["period"]
                    )
                };
                assert_close(got.value, number(&expected[0]), 0.0, &what("value"));
                assert_close(
                    got.sampling_error,
                    number(&expected[1]),
                    0.0,
                    &what("sampling error"),
                );
                let rtol = realized_rtol(metric);
                assert_close(
                    *realized.get(metric),
                    number(&expected[2]),
                    rtol,
                    &what("realized"),
                );
                assert_close(
                    got.lower_confidence,
                    number(&expected[3]),
                    0.0,
                    &what("lower band"),
                );
                assert_close(
                    got.upper_confidence,
                    number(&expected[4]),
                    0.0,
                    &what("upper band"),
                );
                assert_eq!(
                    got.alert,
                    expected[5].as_bool().unwrap(),
                    "{}",
                    what("alert")
                );
                alerts += usize::from(got.alert);
            }
        }
        assert!(
            alerts > 0,
            "{name}: the shifted analysis half should raise alerts"
        );
    }
}

#[test]
fn calibration_decision_agrees_with_nannyml() {
    let data = data();
    for case in data["cbpe"].as_array().unwrap() {
        let dataset = &data["datasets"][case["dataset"].as_str().unwrap()];
        let reference = frame(
            &dataset["reference"],
            case["reference_rows"].as_u64().map(|r| r as usize),
        );
        assert_eq!(
            needs_calibration(&reference.scores, &reference.labels),
            case["needs_calibration"].as_bool().unwrap(),
            "{}",
            case["name"]
        );
    }
}

#[test]
fn estimates_on_a_calibrated_reference_cover_the_realised_metrics() {
    // Property: on data like the reference, realised performance lies in
    // the ±3 sampling-error band for nearly every chunk and metric.
    let data = data();
    let dataset = &data["datasets"]["calibrated"];
    let reference = frame(&dataset["reference"], None);
    let analysis = frame(&dataset["analysis"], None);
    let cbpe = Cbpe::fit(
        &reference.scores,
        &reference.labels,
        Predicted::Threshold(0.5),
        &CbpeConfig {
            calibration: CalibrationPolicy::Never,
            chunk_size: Some(200),
        },
    )
    .unwrap();
    let (mut inside, mut total) = (0, 0);
    for start in (0..2000).step_by(200) {
        let rows = start..start + 200;
        let estimate = cbpe.estimate(
            &analysis.scores[rows.clone()],
            &analysis.predicted[rows.clone()],
        );
        let realized = realized_metrics(
            &analysis.scores[rows.clone()],
            &analysis.labels[rows.clone()],
            &analysis.predicted[rows],
        );
        for metric in CbpeMetric::ALL {
            let got = estimate.metrics.get(metric);
            let actual = *realized.get(metric);
            total += 1;
            inside += usize::from(got.lower_confidence <= actual && actual <= got.upper_confidence);
        }
    }
    assert!(
        inside * 100 >= total * 95,
        "{inside} of {total} inside the band"
    );
}
