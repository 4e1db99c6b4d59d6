//! Native scikit-learn models read from their pickles, against
//! scikit-learn's own answers on the fixtures of `tests/fixtures/sklearn.py`
//! (see its docstring for `case.json`).
//!
//! Tolerances: probabilities within 1e-6 absolute; regression values within
//! 1e-9 relative to `max(1, |expected|)` (the linear models sum their
//! products in another order than BLAS, and a relative bound alone would be
//! meaningless for values near zero); labels equal. Each case prints the
//! largest difference it saw (`cargo test -- --nocapture`).

use std::path::PathBuf;
use std::sync::Arc;

use serde_json::Value;
use sextant_serve::{sklearn, Error, ModelRuntime, NamedTensor, Tensor, TensorData};

use crate::fixtures_dir;

const PROBABILITY_TOLERANCE: f64 = 1e-6;
const REGRESSION_TOLERANCE: f64 = 1e-9;

/// One fixture case: its directory and `case.json`.
struct Case {
    name: String,
    dir: PathBuf,
    json: Value,
}

impl Case {
    fn open(name: &str) -> Option<Case> {
        let dir = fixtures_dir("sklearn")?.join(name);
        let text = std::fs::read_to_string(dir.join("case.json"))
            .unwrap_or_else(|e| panic!("{name}: cannot read case.json: {e}"));
        let json =
            serde_json::from_str(&text).unwrap_or_else(|e| panic!("{name}: bad case.json: {e}"));
        Some(Case {
            name: name.to_owned(),
            dir,
            json,
        })
    }

    fn pickle(&self) -> Vec<u8> {
        std::fs::read(self.dir.join("model.pkl"))
            .unwrap_or_else(|e| panic!("{}: model.pkl: {e}", self.name))
    }

    fn load(&self) -> Result<Arc<dyn ModelRuntime>, Error> {
        sklearn::from_pickle(&self.pickle())
    }

    fn str(&self, key: &str) -> &str {
        self.json[key]
            .as_str()
            .unwrap_or_else(|| panic!("{}: no {key}", self.name))
    }

    /// The test rows as the model's input matrix, NaN for `null`.
    fn input(&self) -> NamedTensor {
        let rows = self.json["rows"].as_array().expect("rows");
        let n_features = self.json["n_features"].as_u64().expect("n_features") as usize;
        let values: Vec<f64> = rows
            .iter()
            .flat_map(|row| {
                let row = row.as_array().expect("a row is an array");
                assert_eq!(row.len(), n_features, "{}: ragged row", self.name);
                row.iter().map(|v| v.as_f64().unwrap_or(f64::NAN))
            })
            .collect();
        NamedTensor::new("input", Tensor::f64_matrix(rows.len(), n_features, values))
    }
}

fn output<'a>(outputs: &'a [NamedTensor], name: &str) -> &'a Tensor {
    &outputs
        .iter()
        .find(|o| o.name == name)
        .unwrap_or_else(|| panic!("no {name} output"))
        .tensor
}

fn floats(tensor: &Tensor) -> &[f64] {
    match &tensor.data {
        TensorData::F64(values) => values,
        other => panic!("expected FP64 values, found {other:?}"),
    }
}

/// Expected numbers, flattened row-major (a row may be a list).
fn expected_numbers(value: &Value) -> Vec<f64> {
    let mut out = Vec::new();
    for item in value.as_array().expect("an array") {
        match item {
            Value::Array(row) => out.extend(row.iter().map(|v| v.as_f64().unwrap_or(f64::NAN))),
            other => out.push(other.as_f64().unwrap_or(f64::NAN)),
        }
    }
    out
}

/// Checks one `ok` case: every output against the library's, the shapes,
/// and the feature names.
fn check_parity(name: &str) {
    let Some(case) = Case::open(name) else { return };
    assert_eq!(case.str("expect"), "ok", "{name}: not a parity case");
    let runtime = case
        .load()
        .unwrap_or_else(|e| panic!("{name}: load failed: {e}"));
    let expected_names: Option<Vec<String>> = case.json["feature_names"].as_array().map(|names| {
        names
            .iter()
            .map(|n| n.as_str().expect("name").to_owned())
            .collect()
    });
    assert_eq!(
        runtime.info().feature_names,
        expected_names,
        "{name}: feature names"
    );

    let input = case.input();
    let rows = input.tensor.shape[0];
    let outputs = runtime
        .predict(&[input])
        .unwrap_or_else(|e| panic!("{name}: predict failed: {e}"));
    let declared: Vec<&str> = runtime
        .info()
        .outputs
        .iter()
        .map(|o| o.name.as_str())
        .collect();
    let produced: Vec<&str> = outputs.iter().map(|o| o.name.as_str()).collect();
    assert_eq!(
        declared, produced,
        "{name}: outputs differ from the declared ones"
    );

    let predict = output(&outputs, "predict");
    match case.str("task") {
        "classification" => {
            let labels = case.json["predict"].as_array().expect("predict");
            assert_eq!(predict.shape, vec![rows], "{name}: predict shape");
            let mismatches: Vec<usize> = match &predict.data {
                // Whole float labels (`1.0`) come back as integers.
                TensorData::I64(got) => (0..rows)
                    .filter(|&i| labels[i].as_f64() != Some(got[i] as f64))
                    .collect(),
                TensorData::Str(got) => (0..rows)
                    .filter(|&i| labels[i].as_str() != Some(got[i].as_str()))
                    .collect(),
                other => panic!("{name}: labels of type {other:?}"),
            };
            assert!(
                mismatches.is_empty(),
                "{name}: labels differ on rows {mismatches:?}"
            );
            match case.json.get("predict_proba") {
                Some(expected) => {
                    let expected = expected_numbers(expected);
                    let proba = output(&outputs, "predict_proba");
                    assert_eq!(proba.shape[0], rows, "{name}: predict_proba rows");
                    let worst = max_difference(floats(proba), &expected, |_| 1.0);
                    println!("{name}: labels equal, largest probability difference {worst:e}");
                    assert!(
                        worst <= PROBABILITY_TOLERANCE,
                        "{name}: probabilities differ by {worst:e}"
                    );
                }
                None => {
                    assert!(
                        outputs.iter().all(|o| o.name != "predict_proba"),
                        "{name}: predict_proba that scikit-learn does not have"
                    );
                    println!("{name}: labels equal");
                }
            }
        }
        "regression" => {
            let expected = expected_numbers(&case.json["predict"]);
            let multi_target = case.json["predict"][0].is_array();
            let shape = if multi_target {
                vec![rows, expected.len() / rows]
            } else {
                vec![rows]
            };
            assert_eq!(predict.shape, shape, "{name}: predict shape");
            let worst = max_difference(floats(predict), &expected, |e| e.abs().max(1.0));
            println!("{name}: largest relative difference {worst:e}");
            assert!(
                worst <= REGRESSION_TOLERANCE,
                "{name}: predictions differ by {worst:e} (relative)"
            );
        }
        other => panic!("{name}: task {other}"),
    }
}

/// The largest `|got - expected| / scale(expected)`.
fn max_difference(got: &[f64], expected: &[f64], scale: impl Fn(f64) -> f64) -> f64 {
    assert_eq!(got.len(), expected.len(), "output sizes differ");
    got.iter()
        .zip(expected)
        .map(|(g, e)| {
            assert!(
                g.is_nan() == e.is_nan(),
                "NaN where the library has {e} (got {g})"
            );
            if e.is_nan() {
                0.0
            } else {
                (g - e).abs() / scale(*e)
            }
        })
        .fold(0.0, f64::max)
}

/// Checks one `unsupported` case: [`Error::Unsupported`] naming `what`.
fn check_unsupported(name: &str, what: &str) {
    let Some(case) = Case::open(name) else { return };
    assert_eq!(
        case.str("expect"),
        "unsupported",
        "{name}: not an unsupported case"
    );
    match case.load() {
        Err(Error::Unsupported(message)) => {
            assert!(
                message.contains(what),
                "{name}: message {message:?} does not name {what}"
            );
        }
        Err(other) => panic!("{name}: expected Unsupported, got {other}"),
        Ok(_) => panic!("{name}: loaded a model it cannot run"),
    }
}

macro_rules! parity {
    ($($name:ident),* $(,)?) => {
        /// Every case these tests check, to compare with the manifest.
        const PARITY_CASES: &[&str] = &[$(stringify!($name)),*];
        $(
            #[test]
            fn $name() {
                check_parity(stringify!($name));
            }
        )*
    };
}

parity!(
    decision_tree_classifier_binary,
    decision_tree_classifier_3class_str,
    decision_tree_regressor,
    decision_tree_regressor_multi_target,
    extra_tree_classifier_3class,
    extra_tree_regressor,
    random_forest_classifier_binary_str,
    random_forest_classifier_3class,
    random_forest_classifier_float_labels,
    random_forest_regressor,
    extra_trees_classifier_3class_str,
    extra_trees_regressor,
    decision_tree_classifier_nan,
    random_forest_classifier_nan,
    decision_tree_regressor_nan,
    gradient_boosting_classifier_binary,
    gradient_boosting_classifier_3class_str,
    gradient_boosting_classifier_zero_init,
    gradient_boosting_classifier_exponential,
    gradient_boosting_regressor_squared_error,
    gradient_boosting_regressor_absolute_error,
    gradient_boosting_regressor_huber,
    gradient_boosting_regressor_quantile,
    hist_gradient_boosting_classifier_binary_nan,
    hist_gradient_boosting_classifier_3class_str,
    hist_gradient_boosting_regressor,
    hist_gradient_boosting_regressor_poisson,
    hist_gradient_boosting_regressor_gamma,
    hist_gradient_boosting_regressor_quantile,
    logistic_regression_binary,
    logistic_regression_3class_str,
    linear_svc_binary_str,
    linear_svc_3class,
    sgd_classifier_log_loss_3class,
    sgd_classifier_modified_huber_binary,
    sgd_classifier_hinge_3class_str,
    logistic_regression_cv_3class,
    perceptron_3class,
    linear_regression,
    linear_regression_no_intercept,
    ridge,
    ridge_multi_target,
    ridge_cv,
    lasso,
    lasso_cv,
    elastic_net,
    elastic_net_cv,
    sgd_regressor,
    linear_svr,
    pipeline_standard_scaler_logistic_regression,
    pipeline_mean_imputer_minmax_random_forest,
    pipeline_median_imputer_robust_scaler_ridge,
    pipeline_most_frequent_imputer_maxabs_gradient_boosting,
    pipeline_constant_imputer_passthrough_hist_gradient_boosting,
    pipeline_column_transformer_numeric_onehot,
    pickle_protocol_2,
    pickle_protocol_0,
    cloudpickle_protocol_5,
    mlflow_save_model,
    xgb_classifier_binary,
    xgb_classifier_3class,
    xgb_regressor,
    lgbm_classifier_binary_str,
    lgbm_classifier_3class,
    lgbm_regressor,
    benchmark_random_forest,
);

/// (case, what its error must name).
const UNSUPPORTED_CASES: &[(&str, &str)] = &[
    ("unsupported_k_neighbors", "KNeighborsClassifier"),
    (
        "unsupported_custom_class",
        "class defined in the training script",
    ),
    (
        "unsupported_hist_gradient_boosting_categorical",
        "categorical",
    ),
    ("unsupported_xgb_early_stopping", "early stopping"),
    ("unsupported_lgbm_early_stopping", "early stopping"),
];

#[test]
fn unknown_estimators_are_unsupported() {
    for (name, what) in UNSUPPORTED_CASES {
        check_unsupported(name, what);
    }
}

#[test]
fn every_fixture_case_is_tested() {
    let Some(dir) = fixtures_dir("sklearn") else {
        return;
    };
    let manifest: Value = serde_json::from_str(
        &std::fs::read_to_string(dir.join("manifest.json")).expect("manifest.json"),
    )
    .expect("manifest.json is JSON");
    let mut tested: Vec<&str> = PARITY_CASES.to_vec();
    tested.extend(UNSUPPORTED_CASES.iter().map(|(name, _)| *name));
    for case in manifest["cases"].as_array().expect("cases") {
        let case = case.as_str().expect("case name");
        assert!(tested.contains(&case), "fixture case {case} has no test");
    }
}

/// Every prefix of a real pickle is refused with an error, never a panic
/// nor a model: protocols 0, 2 and 4 (MLflow's), objects, numpy arrays of
/// numbers and of strings.
#[test]
fn truncated_pickles_are_invalid() {
    for name in [
        "pickle_protocol_0",
        "pickle_protocol_2",
        "pipeline_standard_scaler_logistic_regression",
    ] {
        let Some(case) = Case::open(name) else { return };
        let bytes = case.pickle();
        for cut in 0..bytes.len() {
            match sklearn::from_pickle(&bytes[..cut]) {
                Err(Error::InvalidModel(_)) => {}
                Err(other) => {
                    panic!("{name}: prefix of {cut} bytes: expected InvalidModel, got {other}")
                }
                Ok(_) => panic!("{name}: prefix of {cut} bytes loaded"),
            }
        }
    }
}

/// Corrupting any byte of a real pickle gives an error or a model, never a
/// panic.
#[test]
fn corrupted_pickles_do_not_panic() {
    // Every byte of a pipeline; every seventh of a tree (its node arrays are
    // long runs of numbers).
    for (name, stride) in [
        ("pipeline_standard_scaler_logistic_regression", 1),
        ("decision_tree_classifier_nan", 7),
    ] {
        let Some(case) = Case::open(name) else { return };
        let bytes = case.pickle();
        let input = case.input();
        for position in (0..bytes.len()).step_by(stride) {
            for replacement in [0x00, b'(', bytes[position].wrapping_add(1)] {
                let mut corrupted = bytes.clone();
                corrupted[position] = replacement;
                // A corrupted number may still make a valid model; it must
                // then predict without panicking.
                if let Ok(runtime) = sklearn::from_pickle(&corrupted) {
                    let _ = runtime.predict(std::slice::from_ref(&input));
                }
            }
        }
    }
}

#[test]
fn garbage_is_invalid() {
    // A fixed pseudo-random sequence (an LCG), so that the test is stable.
    let mut state = 0x2545_f491_4f6c_dd1du64;
    for length in [0usize, 1, 2, 3, 17, 256, 4096] {
        let bytes: Vec<u8> = (0..length)
            .map(|_| {
                state = state
                    .wrapping_mul(6_364_136_223_846_793_005)
                    .wrapping_add(1);
                (state >> 56) as u8
            })
            .collect();
        assert!(
            sklearn::from_pickle(&bytes).is_err(),
            "{length} random bytes loaded"
        );
    }
    assert!(matches!(
        sklearn::from_pickle(b"not a pickle"),
        Err(Error::InvalidModel(_))
    ));
}

#[test]
fn requests_of_the_wrong_shape_are_input_errors() {
    let Some(case) = Case::open("pipeline_standard_scaler_logistic_regression") else {
        return;
    };
    let runtime = case.load().expect("load");
    let narrow = NamedTensor::new("input", Tensor::f64_matrix(1, 3, vec![0.0; 3]));
    assert!(matches!(runtime.predict(&[narrow]), Err(Error::Input(_))));
    let Some(case) = Case::open("ridge") else {
        return;
    };
    let runtime = case.load().expect("load");
    let ints = NamedTensor::new("input", Tensor::column(TensorData::I64(vec![1; 20])));
    assert!(matches!(runtime.predict(&[ints]), Err(Error::Input(_))));
}
