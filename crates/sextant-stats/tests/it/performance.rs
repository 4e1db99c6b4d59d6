//! performance against scikit-learn 1.9.1, `tests/golden/performance.json`.
//!
//! Tolerance: exact (bit-identical) for the confusion-matrix metrics, log
//! loss and the regression errors, which follow sklearn's arithmetic and
//! numpy's summation order; 4 ulps (relative 1e-15) for ROC AUC, computed
//! here as the exact Mann–Whitney U over one division where sklearn sums
//! trapezoids.

use serde_json::Value;
use sextant_stats::performance::{
    confusion_matrix, log_loss, log_loss_binary, mae, mape, rmse, roc_auc, roc_auc_ovr_macro,
    BinaryCounts, ClassificationMetrics,
};

const AUC_RTOL: f64 = 1e-15;

fn data() -> Value {
    crate::golden("performance")
}

fn floats(value: &Value) -> Vec<f64> {
    value
        .as_array()
        .unwrap()
        .iter()
        .map(|v| v.as_f64().unwrap())
        .collect()
}

fn bools(value: &Value) -> Vec<bool> {
    value
        .as_array()
        .unwrap()
        .iter()
        .map(|v| v.as_bool().unwrap())
        .collect()
}

fn labels(value: &Value) -> Vec<usize> {
    value
        .as_array()
        .unwrap()
        .iter()
        .map(|v| v.as_u64().unwrap() as usize)
        .collect()
}

fn f(value: &Value) -> f64 {
    value.as_f64().unwrap()
}

#[track_caller]
fn assert_exact(actual: f64, expected: f64, what: &str) {
    assert!(
        actual == expected,
        "{what}: got {actual:e}, sklearn {expected:e}"
    );
}

#[track_caller]
fn assert_close(actual: f64, expected: f64, rtol: f64, what: &str) {
    let error = (actual - expected).abs() / expected.abs().max(f64::MIN_POSITIVE);
    assert!(
        error <= rtol,
        "{what}: got {actual:e}, sklearn {expected:e} (relative {error:e})"
    );
}

#[test]
fn binary_counts_and_metrics_match_sklearn() {
    for case in data()["binary"].as_array().unwrap() {
        let name = case["name"].as_str().unwrap();
        let counts = BinaryCounts::from_labels(&bools(&case["y_true"]), &bools(&case["y_pred"]));
        let expected = &case["counts"];
        assert_eq!(
            [counts.tp, counts.fp, counts.tn, counts.fn_],
            ["tp", "fp", "tn", "fn"].map(|k| expected[k].as_u64().unwrap()),
            "{name}"
        );
        assert_exact(
            counts.accuracy(),
            f(&case["accuracy"]),
            &format!("{name} accuracy"),
        );
        assert_exact(
            counts.precision(),
            f(&case["precision"]),
            &format!("{name} precision"),
        );
        assert_exact(
            counts.recall(),
            f(&case["recall"]),
            &format!("{name} recall"),
        );
        assert_exact(counts.f1(), f(&case["f1"]), &format!("{name} f1"));
        assert_exact(
            counts.specificity(),
            f(&case["specificity"]),
            &format!("{name} specificity"),
        );
        let metrics = ClassificationMetrics::binary(&counts);
        assert_exact(metrics.f1, f(&case["f1"]), &format!("{name} binary f1"));
    }
}

#[test]
fn multiclass_macro_metrics_match_sklearn() {
    for case in data()["multiclass"].as_array().unwrap() {
        let name = case["name"].as_str().unwrap();
        let k = case["n_classes"].as_u64().unwrap() as usize;
        let matrix = confusion_matrix(&labels(&case["y_true"]), &labels(&case["y_pred"]), k);
        let expected: Vec<u64> = labels(&case["confusion_matrix"])
            .iter()
            .map(|&v| v as u64)
            .collect();
        assert_eq!(matrix, expected, "{name} confusion matrix");
        let metrics = ClassificationMetrics::macro_average(&matrix, k);
        assert_exact(
            metrics.accuracy,
            f(&case["accuracy"]),
            &format!("{name} accuracy"),
        );
        assert_exact(
            metrics.precision,
            f(&case["precision"]),
            &format!("{name} precision"),
        );
        assert_exact(
            metrics.recall,
            f(&case["recall"]),
            &format!("{name} recall"),
        );
        assert_exact(metrics.f1, f(&case["f1"]), &format!("{name} f1"));
    }
}

#[test]
fn roc_auc_matches_sklearn() {
    for case in data()["roc_auc"].as_array().unwrap() {
        let name = case["name"].as_str().unwrap();
        let auc = roc_auc(&bools(&case["y_true"]), &floats(&case["scores"])).expect(name);
        assert_close(auc, f(&case["auc"]), AUC_RTOL, name);
    }
}

#[test]
fn roc_auc_ovr_macro_matches_sklearn() {
    for case in data()["roc_auc_ovr"].as_array().unwrap() {
        let name = case["name"].as_str().unwrap();
        let k = case["n_classes"].as_u64().unwrap() as usize;
        let auc = roc_auc_ovr_macro(&labels(&case["y_true"]), &floats(&case["probabilities"]), k)
            .expect(name);
        assert_close(auc, f(&case["auc"]), AUC_RTOL, name);
    }
}

#[test]
fn roc_auc_ovr_is_none_where_sklearn_raises() {
    // Class 2 never occurs.
    let probabilities = [0.2, 0.3, 0.5, 0.6, 0.2, 0.2, 0.1, 0.8, 0.1];
    assert_eq!(roc_auc_ovr_macro(&[0, 1, 1], &probabilities, 3), None);
    // Rows that do not sum to 1.
    let unnormalised = [0.2, 0.3, 0.6, 0.6, 0.2, 0.2, 0.1, 0.8, 0.1];
    assert_eq!(roc_auc_ovr_macro(&[0, 1, 2], &unnormalised, 3), None);
}

#[test]
fn log_loss_matches_sklearn() {
    let data = data();
    for case in data["log_loss"].as_array().unwrap() {
        let name = case["name"].as_str().unwrap();
        let k = case["n_classes"].as_u64().unwrap() as usize;
        let loss = log_loss(&labels(&case["y_true"]), &floats(&case["probabilities"]), k);
        assert_exact(loss, f(&case["loss"]), name);
    }
    let case = &data["log_loss_binary"];
    let loss = log_loss_binary(&bools(&case["y_true"]), &floats(&case["p_positive"]));
    assert_exact(loss, f(&case["loss"]), "binary");
}

#[test]
fn regression_errors_match_sklearn() {
    for case in data()["regression"].as_array().unwrap() {
        let name = case["name"].as_str().unwrap();
        let (y_true, y_pred) = (floats(&case["y_true"]), floats(&case["y_pred"]));
        assert_exact(
            mae(&y_true, &y_pred),
            f(&case["mae"]),
            &format!("{name} mae"),
        );
        assert_exact(
            rmse(&y_true, &y_pred),
            f(&case["rmse"]),
            &format!("{name} rmse"),
        );
        assert_exact(
            mape(&y_true, &y_pred),
            f(&case["mape"]),
            &format!("{name} mape"),
        );
    }
}
