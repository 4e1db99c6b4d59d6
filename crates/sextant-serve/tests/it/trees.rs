//! The XGBoost and LightGBM loaders, compiled by the native tree engine,
//! against the libraries' own predictions on the fixtures of
//! `tests/fixtures/trees.py` (see its docstring for `case.json`).
//!
//! Tolerances are the libraries' arithmetic: XGBoost sums in `float32`, so
//! its probabilities must match within 1e-6 absolute and its margins and
//! regression outputs within 1e-5 relative; LightGBM sums in `float64`, so
//! everything must match within 1e-9 relative. Each case also prints the
//! largest difference it saw (`cargo test -- --nocapture`).

use std::path::{Path, PathBuf};

use serde_json::Value;
use sextant_serve::trees::{self, compile, ClassLabels, EnsembleSpec, Task, TreeEnsemble};
use sextant_serve::{Error, ModelRuntime, NamedTensor, Tensor, TensorData};

use crate::fixtures_dir;

/// One fixture case: its directory and `case.json`.
struct Case {
    dir: PathBuf,
    json: Value,
}

impl Case {
    fn open(name: &str) -> Option<Case> {
        let dir = fixtures_dir("trees")?.join(name);
        let text = std::fs::read_to_string(dir.join("case.json"))
            .unwrap_or_else(|e| panic!("{name}: cannot read case.json: {e}"));
        let json =
            serde_json::from_str(&text).unwrap_or_else(|e| panic!("{name}: bad case.json: {e}"));
        Some(Case { dir, json })
    }

    fn library(&self) -> &str {
        self.json["library"].as_str().expect("library")
    }

    fn model_files(&self) -> Vec<PathBuf> {
        let files = self.json["model_files"].as_array().expect("model_files");
        files
            .iter()
            .map(|f| self.dir.join(f.as_str().expect("file name")))
            .collect()
    }

    fn load(&self, path: &Path) -> Result<EnsembleSpec, Error> {
        let bytes = std::fs::read(path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
        load(self.library(), &bytes)
    }

    /// The test rows, row-major, NaN for `null`.
    fn rows(&self) -> (usize, Vec<f64>) {
        let rows = self.json["rows"].as_array().expect("rows");
        (rows.len(), rows.iter().flat_map(numbers).collect())
    }
}

fn load(library: &str, bytes: &[u8]) -> Result<EnsembleSpec, Error> {
    match library {
        "xgboost" => trees::xgboost::load(bytes),
        "lightgbm" => {
            trees::lightgbm::from_text(std::str::from_utf8(bytes).expect("LightGBM text is UTF-8"))
        }
        other => panic!("unknown library {other}"),
    }
}

fn numbers(row: &Value) -> Vec<f64> {
    let row = row.as_array().expect("a row is an array");
    row.iter().map(|v| v.as_f64().unwrap_or(f64::NAN)).collect()
}

/// How far an output may be from the library's.
#[derive(Debug, Clone, Copy)]
enum Tolerance {
    Absolute(f64),
    /// Relative to the expected value, and absolute below 1.
    Relative(f64),
}

impl Tolerance {
    fn allows(self, actual: f64, expected: f64) -> bool {
        if actual.is_nan() || expected.is_nan() {
            return actual.is_nan() && expected.is_nan();
        }
        if actual == expected {
            return true;
        }
        let diff = (actual - expected).abs();
        match self {
            Tolerance::Absolute(t) => diff <= t,
            Tolerance::Relative(t) => diff <= t * expected.abs().max(1.0),
        }
    }
}

fn tolerance(library: &str, kind: &str, classifier: bool) -> Tolerance {
    match (library, kind) {
        ("xgboost", "scores" | "positive_class") if classifier => Tolerance::Absolute(1e-6),
        ("xgboost", _) => Tolerance::Relative(1e-5),
        _ => Tolerance::Relative(1e-9),
    }
}

/// Compares `actual` (`width` values per row) with the library's `expected`
/// rows; returns the largest absolute difference and how many values
/// matched exactly.
#[track_caller]
fn compare(
    what: &str,
    actual: &[f64],
    width: usize,
    expected: &Value,
    tolerance: Tolerance,
) -> (f64, usize) {
    let expected = expected.as_array().expect("values");
    assert_eq!(actual.len(), expected.len() * width, "{what}: row count");
    let (mut worst, mut exact) = (0.0f64, 0);
    for (row, (actual, expected)) in actual.chunks_exact(width).zip(expected).enumerate() {
        let expected = numbers(expected);
        assert_eq!(expected.len(), width, "{what}: row {row} width");
        for (column, (&a, &e)) in actual.iter().zip(&expected).enumerate() {
            assert!(
                tolerance.allows(a, e),
                "{what}: row {row} column {column}: {a:?} vs the library's {e:?} (tolerance {tolerance:?})"
            );
            if a == e || (a.is_nan() && e.is_nan()) {
                exact += 1;
            } else {
                worst = worst.max((a - e).abs());
            }
        }
    }
    (worst, exact)
}

/// Loads every model file of the case, checks what the loader read, and
/// compares the engine's outputs with each of the library's.
fn check(name: &str) {
    let Some(case) = Case::open(name) else { return };
    let library = case.library();
    let (n_rows, features) = case.rows();
    let expected_task = case.json["task"].as_str().expect("task");
    let classifier = expected_task == "classification";
    let mut specs = Vec::new();
    for path in case.model_files() {
        let file = path.file_name().unwrap().to_string_lossy().into_owned();
        let what = format!("{name}/{file}");
        let spec = case.load(&path).unwrap_or_else(|e| panic!("{what}: {e}"));
        assert_eq!(spec.source, library, "{what}");
        assert_eq!(
            spec.n_features as u64,
            case.json["n_features"].as_u64().unwrap(),
            "{what}: n_features"
        );
        let names: Option<Vec<String>> =
            serde_json::from_value(case.json["feature_names"].clone()).unwrap();
        assert_eq!(spec.feature_names, names, "{what}: feature names");
        match (&spec.task, expected_task) {
            (Task::Regression, "regression") => {}
            (Task::Classification(labels), "classification") => {
                let n = case.json["n_classes"].as_u64().unwrap() as usize;
                assert_eq!(labels, &ClassLabels::indices(n), "{what}: class labels");
            }
            (task, expected) => panic!("{what}: read {task:?}, the library trained {expected}"),
        }
        specs.push(spec.clone());

        let ensemble = compile(spec).unwrap_or_else(|e| panic!("{what}: {e}"));
        let mut margins = vec![0.0; n_rows * ensemble.n_outputs()];
        ensemble.predict_margins(&features, &mut margins);
        let mut scores = vec![0.0; n_rows * ensemble.n_scores()];
        ensemble.predict_scores(&features, &mut scores);
        let outputs = case.json["outputs"].as_array().expect("outputs");
        assert!(
            !outputs.is_empty(),
            "{what}: the case has no outputs to compare"
        );
        for output in outputs {
            let kind = output["kind"].as_str().unwrap();
            let source = output["source"].as_str().unwrap();
            let what = format!("{what}: {kind} vs {source}");
            let tolerance = tolerance(library, kind, classifier);
            let values = &output["values"];
            let (worst, exact) = match kind {
                "margins" => compare(&what, &margins, ensemble.n_outputs(), values, tolerance),
                "scores" => compare(&what, &scores, ensemble.n_scores(), values, tolerance),
                "positive_class" => {
                    let positive: Vec<f64> = scores.chunks_exact(2).map(|p| p[1]).collect();
                    compare(&what, &positive, 1, values, tolerance)
                }
                "labels" => compare(
                    &what,
                    &predicted_labels(&ensemble, n_rows, &features),
                    1,
                    values,
                    tolerance,
                ),
                other => panic!("{what}: unknown output kind {other}"),
            };
            let total = values.as_array().unwrap().len() * values[0].as_array().map_or(1, Vec::len);
            eprintln!("{what}: {exact}/{total} exact, max |diff| {worst:e}");
        }
    }
    // JSON and UBJSON hold the same model: the two readers must agree to
    // the bit.
    for pair in specs.windows(2) {
        assert!(
            pair[0] == pair[1],
            "{name}: the model files read differently"
        );
    }
}

/// The labels `ModelRuntime::predict` answers, as floats.
fn predicted_labels(ensemble: &TreeEnsemble, n_rows: usize, features: &[f64]) -> Vec<f64> {
    let input = NamedTensor::new(
        "input",
        Tensor::f64_matrix(n_rows, ensemble.n_features(), features.to_vec()),
    );
    let outputs = ensemble.predict(&[input]).expect("predict");
    let TensorData::I64(labels) = &outputs[0].tensor.data else {
        panic!("integer labels expected, got {:?}", outputs[0].tensor.dtype)
    };
    labels.iter().map(|&l| l as f64).collect()
}

/// A case the loader must refuse as unsupported.
fn check_unsupported(name: &str) {
    let Some(case) = Case::open(name) else { return };
    assert_eq!(case.json["expect"], "unsupported", "{name}");
    for path in case.model_files() {
        match case.load(&path) {
            Err(Error::Unsupported(message)) => eprintln!("{name}: refused: {message}"),
            other => panic!(
                "{name}/{}: expected Unsupported, got {other:?}",
                path.display()
            ),
        }
    }
}

/// Every case the generator writes has a test here: a dropped case fails.
#[test]
fn every_fixture_case_is_tested() {
    let Some(dir) = fixtures_dir("trees") else {
        return;
    };
    let manifest: Value =
        serde_json::from_str(&std::fs::read_to_string(dir.join("manifest.json")).unwrap()).unwrap();
    let mut cases: Vec<&str> = manifest["cases"]
        .as_array()
        .unwrap()
        .iter()
        .map(|c| c.as_str().unwrap())
        .collect();
    cases.sort_unstable();
    let mut tested = TESTED_CASES.to_vec();
    tested.sort_unstable();
    assert_eq!(cases, tested);
}

macro_rules! fixture_tests {
    ($($test:ident => $case:literal $(, $unsupported:ident)?;)*) => {
        const TESTED_CASES: &[&str] = &[$($case),*];
        $(
            #[test]
            fn $test() {
                fixture_tests!(@run $case $(, $unsupported)?);
            }
        )*
    };
    (@run $case:literal) => { check($case) };
    (@run $case:literal, unsupported) => { check_unsupported($case) };
}

fixture_tests! {
    xgboost_binary_logistic => "xgb_binary";
    xgboost_multiclass_softprob => "xgb_multiclass";
    xgboost_dart_weighs_trees => "xgb_dart";
    xgboost_benchmark_size => "xgb_large";
    xgboost_multiclass_softmax_labels => "xgb_softmax";
    xgboost_parallel_trees_per_class => "xgb_forest_multiclass";
    xgboost_logitraw_is_the_margin => "xgb_logitraw";
    xgboost_reg_logistic => "xgb_reg_logistic";
    xgboost_single_label_intercept => "xgb_single_label";
    xgboost_squared_error => "xgb_regression";
    xgboost_absolute_error => "xgb_absoluteerror";
    xgboost_pseudohuber => "xgb_pseudohuber";
    xgboost_poisson => "xgb_poisson";
    xgboost_gamma => "xgb_gamma";
    xgboost_tweedie => "xgb_tweedie";
    xgboost_multi_target => "xgb_multi_target";
    xgboost_multi_output_trees => "xgb_multi_output_tree";
    xgboost_ranking => "xgb_rank";
    xgboost_categorical_partitions => "xgb_categorical";
    xgboost_categorical_one_hot => "xgb_categorical_onehot";
    xgboost_categorical_odd_codes => "xgb_categorical_codes";
    xgboost_gblinear_is_unsupported => "xgb_gblinear", unsupported;
    lightgbm_binary_with_categories => "lgb_binary";
    lightgbm_sigmoid_scale => "lgb_binary_sigmoid_scale";
    lightgbm_multiclass => "lgb_multiclass";
    lightgbm_one_vs_rest => "lgb_multiclassova";
    lightgbm_regression => "lgb_regression";
    lightgbm_zero_as_missing => "lgb_zero_as_missing";
    lightgbm_nan_as_zero => "lgb_no_missing";
    lightgbm_l1 => "lgb_l1";
    lightgbm_poisson => "lgb_poisson";
    lightgbm_gamma => "lgb_gamma";
    lightgbm_tweedie => "lgb_tweedie";
    lightgbm_cross_entropy => "lgb_cross_entropy";
    lightgbm_lambdarank => "lgb_lambdarank";
    lightgbm_random_forest_binary => "lgb_rf_binary";
    lightgbm_random_forest_multiclass => "lgb_rf_multiclass";
    lightgbm_benchmark_size => "lgb_large";
    lightgbm_linear_trees_are_unsupported => "lgb_linear_tree", unsupported;
}

// --- Corrupt models --------------------------------------------------------------------

/// A small deterministic generator (xorshift), for corruptions.
struct Noise(u64);

impl Noise {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        self.0
    }

    fn below(&mut self, n: usize) -> usize {
        (self.next() % n as u64) as usize
    }
}

#[track_caller]
fn assert_invalid(result: Result<EnsembleSpec, Error>, what: &str) -> String {
    match result {
        Err(Error::InvalidModel(message)) => message,
        Err(other) => panic!("{what}: expected InvalidModel, got {other:?}"),
        Ok(_) => panic!("{what}: a corrupt model loaded"),
    }
}

/// Loading, compiling and predicting one row must not panic; the loader may
/// accept a corruption that is still a valid model (a changed number).
fn survives(library: &str, bytes: &[u8]) {
    match load(library, bytes) {
        Ok(spec) => {
            let n_features = spec.n_features.min(1 << 16);
            if let Ok(ensemble) = compile(spec) {
                let row = vec![0.5; n_features];
                if n_features == ensemble.n_features() {
                    let mut out = vec![0.0; ensemble.n_scores()];
                    ensemble.predict_scores(&row, &mut out);
                }
            }
        }
        Err(Error::InvalidModel(_) | Error::Unsupported(_)) => {}
        Err(other) => panic!("{library}: unexpected error kind {other:?}"),
    }
}

fn fixture_bytes(case: &str, file: &str) -> Option<Vec<u8>> {
    let dir = fixtures_dir("trees")?;
    Some(std::fs::read(dir.join(case).join(file)).unwrap())
}

#[test]
fn truncated_ubjson_is_an_invalid_model() {
    let Some(bytes) = fixture_bytes("xgb_binary", "model.ubj") else {
        return;
    };
    let mut cuts = vec![1, 2, 9, 17, bytes.len() - 1];
    cuts.extend((1..20).map(|i| bytes.len() * i / 20));
    for cut in cuts {
        let message = assert_invalid(
            trees::xgboost::load(&bytes[..cut]),
            &format!("cut at byte {cut}"),
        );
        assert!(message.starts_with("xgboost model: "), "{message}");
    }
}

#[test]
fn truncated_json_is_an_invalid_model() {
    let Some(bytes) = fixture_bytes("xgb_binary", "model.json") else {
        return;
    };
    for i in 1..10 {
        let cut = bytes.len() * i / 10;
        assert_invalid(
            trees::xgboost::load(&bytes[..cut]),
            &format!("cut at byte {cut}"),
        );
    }
}

/// Edits `model.json` of `xgb_binary` through serde_json.
fn edited_xgboost_json(edit: impl FnOnce(&mut Value)) -> Option<Vec<u8>> {
    let bytes = fixture_bytes("xgb_binary", "model.json")?;
    let mut model: Value = serde_json::from_slice(&bytes).unwrap();
    edit(&mut model);
    Some(serde_json::to_vec(&model).unwrap())
}

fn first_tree(model: &mut Value) -> &mut Value {
    &mut model["learner"]["gradient_booster"]["model"]["trees"][0]
}

#[test]
fn inconsistent_xgboost_trees_are_invalid_models() {
    // (what, the edit, a phrase the error must contain)
    type Edit = fn(&mut Value);
    let cases: [(&str, Edit, &str); 6] = [
        (
            "child index out of range",
            |m| first_tree(m)["left_children"][0] = 9999.into(),
            "child index 9999 out of range",
        ),
        (
            "arrays of different lengths",
            |m| {
                first_tree(m)["split_conditions"]
                    .as_array_mut()
                    .unwrap()
                    .pop();
            },
            "split_conditions has",
        ),
        (
            "no trees",
            |m| m["learner"]["gradient_booster"]["model"]["trees"] = Value::Null,
            "learner.gradient_booster.model.trees: expected an array, found null",
        ),
        (
            "tree_info of another length",
            |m| {
                m["learner"]["gradient_booster"]["model"]["tree_info"]
                    .as_array_mut()
                    .unwrap()
                    .pop();
            },
            "tree_info entries",
        ),
        (
            "a bad base_score",
            |m| m["learner"]["learner_model_param"]["base_score"] = "[oops]".into(),
            "bad base_score",
        ),
        (
            "a categorical split without categories",
            |m| first_tree(m)["split_type"][0] = 1.into(),
            "has no categories",
        ),
    ];
    for (what, edit, needle) in cases {
        let Some(bytes) = edited_xgboost_json(edit) else {
            return;
        };
        let message = assert_invalid(trees::xgboost::load(&bytes), what);
        assert!(
            message.contains(needle),
            "{what}: {message:?} lacks {needle:?}"
        );
    }
    // A split on a feature the model does not have is caught by compile.
    let Some(bytes) = edited_xgboost_json(|m| first_tree(m)["split_indices"][0] = 500.into())
    else {
        return;
    };
    let spec = trees::xgboost::load(&bytes).unwrap();
    assert!(matches!(compile(spec), Err(Error::InvalidModel(_))));
    // An objective the engine has no link for is unsupported, not invalid.
    let Some(bytes) =
        edited_xgboost_json(|m| m["learner"]["objective"]["name"] = "survival:aft".into())
    else {
        return;
    };
    assert!(matches!(
        trees::xgboost::load(&bytes),
        Err(Error::Unsupported(_))
    ));
}

#[test]
fn garbage_and_flipped_bytes_never_panic() {
    let mut noise = Noise(0x5eed_1234_abcd_0001);
    for length in [0, 1, 2, 3, 8, 64, 1000] {
        let garbage: Vec<u8> = (0..length).map(|_| noise.next() as u8).collect();
        assert!(
            trees::xgboost::load(&garbage).is_err(),
            "{length} random bytes loaded"
        );
        let mut braced = garbage.clone();
        braced.insert(0, b'{');
        assert!(trees::xgboost::load(&braced).is_err());
        let text = String::from_utf8_lossy(&garbage).into_owned();
        assert!(trees::lightgbm::from_text(&text).is_err());
    }
    let Some(ubj) = fixture_bytes("xgb_binary", "model.ubj") else {
        return;
    };
    let Some(json) = fixture_bytes("xgb_binary", "model.json") else {
        return;
    };
    let Some(text) = fixture_bytes("lgb_binary", "model.txt") else {
        return;
    };
    for _ in 0..300 {
        for (library, original) in [("xgboost", &ubj), ("xgboost", &json), ("lightgbm", &text)] {
            let mut bytes = original.clone();
            for _ in 0..1 + noise.below(3) {
                let at = noise.below(bytes.len());
                bytes[at] = if library == "lightgbm" {
                    // Keep the text UTF-8: digits, signs and separators.
                    b"0123456789-. =\n"[noise.below(15)]
                } else {
                    noise.next() as u8
                };
            }
            survives(library, &bytes);
        }
    }
}

#[test]
fn lightgbm_text_cut_mid_tree_is_an_invalid_model() {
    let Some(bytes) = fixture_bytes("lgb_binary", "model.txt") else {
        return;
    };
    let text = String::from_utf8(bytes).unwrap();
    let end = text.find("end of trees").expect("end of trees");
    for fraction in [0.05, 0.3, 0.5, 0.77, 0.99] {
        let mut cut = (end as f64 * fraction) as usize;
        while !text.is_char_boundary(cut) {
            cut -= 1;
        }
        let message = assert_invalid(
            trees::lightgbm::from_text(&text[..cut]),
            &format!("cut at {cut}"),
        );
        assert!(
            message.contains("cut short") || message.contains("no trees"),
            "{message}"
        );
    }
    // A tree whose arrays disagree with num_leaves.
    let bad = text.replacen("num_leaves=", "num_leaves=9", 1);
    let message = assert_invalid(trees::lightgbm::from_text(&bad), "num_leaves changed");
    assert!(message.starts_with("lightgbm model: tree 0: "), "{message}");
}
