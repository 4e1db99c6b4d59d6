//! Native scikit-learn models read from skops files, against scikit-learn's
//! own answers on the fixtures of `tests/fixtures/skops.py` (see its
//! docstring for `case.json`). Each case is loaded twice: `model.skops`
//! through `sklearn::from_skops`, and the whole MLflow directory through
//! `mlflow::load_model_dir` without Python, which must choose a native
//! engine and answer the same.
//!
//! Tolerances, as for pickles (`sklearn.rs`): probabilities within 1e-6
//! absolute; regression values within 1e-9 relative to `max(1,
//! |expected|)`; labels equal. Each case prints the largest difference it
//! saw (`cargo test -- --nocapture`).
//!
//! Damaged archives are made from a fixture by rewriting it: cut short,
//! without `schema.json`, with a schema naming a file that is not there,
//! with an `.npy` file whose header does not match its data.

use std::io::{Cursor, Read, Write};
use std::path::PathBuf;

use serde_json::Value;
use sextant_serve::mlflow::{load_model_dir, LoadOptions};
use sextant_serve::model::Layout;
use sextant_serve::{sklearn, Error, NamedTensor, Tensor, TensorData};
use zip::write::SimpleFileOptions;
use zip::{CompressionMethod, ZipArchive, ZipWriter};

use crate::fixtures_dir;

const PROBABILITY_TOLERANCE: f64 = 1e-6;
const REGRESSION_TOLERANCE: f64 = 1e-9;

/// One fixture case: its directory (`model/` and `case.json`).
struct Case {
    name: String,
    dir: PathBuf,
    json: Value,
}

impl Case {
    fn open(name: &str) -> Option<Case> {
        let dir = fixtures_dir("skops")?.join(name);
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

    fn model_dir(&self) -> PathBuf {
        self.dir.join("model")
    }

    fn skops(&self) -> Vec<u8> {
        std::fs::read(self.model_dir().join("model.skops"))
            .unwrap_or_else(|e| panic!("{}: model.skops: {e}", self.name))
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

/// Checks `outputs` (from `how`) against scikit-learn's answers; returns
/// what it saw.
fn check_answers(case: &Case, how: &str, outputs: &[NamedTensor], rows: usize) -> String {
    let name = format!("{} ({how})", case.name);
    let predict = output(outputs, "predict");
    match case.str("task") {
        "classification" => {
            let labels = case.json["predict"].as_array().expect("predict");
            assert_eq!(predict.shape, vec![rows], "{name}: predict shape");
            let mismatches: Vec<usize> = match &predict.data {
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
            let expected = expected_numbers(&case.json["predict_proba"]);
            let proba = output(outputs, "predict_proba");
            assert_eq!(proba.shape[0], rows, "{name}: predict_proba rows");
            let worst = max_difference(floats(proba), &expected, |_| 1.0);
            assert!(
                worst <= PROBABILITY_TOLERANCE,
                "{name}: probabilities differ by {worst:e}"
            );
            format!("labels equal, largest probability difference {worst:e}")
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
            assert!(
                worst <= REGRESSION_TOLERANCE,
                "{name}: predictions differ by {worst:e} (relative)"
            );
            format!("largest relative difference {worst:e}")
        }
        other => panic!("{name}: task {other}"),
    }
}

/// Checks one `ok` case, from `model.skops` and from the MLflow directory.
fn check_parity(name: &str) {
    let Some(case) = Case::open(name) else { return };
    assert_eq!(case.str("expect"), "ok", "{name}: not a parity case");
    let input = case.input();
    let rows = input.tensor.shape[0];

    let runtime = sklearn::from_skops(&case.skops())
        .unwrap_or_else(|e| panic!("{name}: from_skops failed: {e}"));
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
    let outputs = runtime
        .predict(std::slice::from_ref(&input))
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
    let seen = check_answers(&case, "from_skops", &outputs, rows);
    println!("{name}: {seen}");

    let options = LoadOptions {
        python: None,
        force_python: false,
        progress: None,
    };
    let loaded = load_model_dir(&case.model_dir(), &options)
        .unwrap_or_else(|e| panic!("{name}: load_model_dir failed: {e}"));
    let engine = loaded.model.info().engine;
    assert!(
        matches!(engine, "native-trees" | "native-linear"),
        "{name}: the directory loaded with engine {engine}"
    );
    assert!(loaded.declined.is_empty(), "{name}: {:?}", loaded.declined);
    assert_eq!(loaded.model.default_output(), 0, "{name}: default output");
    let outputs = loaded
        .model
        .predict(vec![input], Layout::Tensors)
        .unwrap_or_else(|e| panic!("{name}: predict through the directory failed: {e}"));
    check_answers(&case, "load_model_dir", &outputs, rows);
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
    decision_tree_classifier_deflated,
    decision_tree_regressor,
    random_forest_classifier_binary_str,
    random_forest_regressor_multi_target,
    extra_trees_classifier_3class_str,
    decision_tree_classifier_nan,
    gradient_boosting_classifier_binary,
    gradient_boosting_classifier_3class_str,
    gradient_boosting_regressor_huber,
    hist_gradient_boosting_classifier_binary_nan,
    hist_gradient_boosting_classifier_3class_str,
    hist_gradient_boosting_regressor_poisson,
    logistic_regression_binary,
    logistic_regression_3class_str,
    linear_regression,
    ridge,
    ridge_multi_target,
    pipeline_imputer_scaler_logistic_regression,
    pipeline_median_imputer_scaler_ridge,
    xgb_classifier_binary,
    lgbm_classifier_3class_str,
    benchmark_random_forest,
);

const UNSUPPORTED_CASE: &str = "unsupported_k_neighbors";

#[test]
fn an_estimator_without_a_native_runtime_is_unsupported() {
    let Some(case) = Case::open(UNSUPPORTED_CASE) else {
        return;
    };
    assert_eq!(case.str("expect"), "unsupported");
    match sklearn::from_skops(&case.skops()) {
        Err(Error::Unsupported(message)) => assert!(
            message.contains("KNeighborsClassifier"),
            "message {message:?} does not name the class"
        ),
        Err(other) => panic!("expected Unsupported, got {other}"),
        Ok(_) => panic!("loaded a model it cannot run"),
    }
    // Without Python, the directory cannot be served, and the error says
    // why the native engine declined.
    let options = LoadOptions {
        python: None,
        force_python: false,
        progress: None,
    };
    match load_model_dir(&case.model_dir(), &options) {
        Err(Error::Unsupported(message)) => assert!(
            message.contains("KNeighborsClassifier"),
            "message {message:?} does not name the class"
        ),
        Err(other) => panic!("expected Unsupported, got {other}"),
        Ok(_) => panic!("loaded a model it cannot run"),
    }
}

#[test]
fn every_fixture_case_is_tested() {
    let Some(dir) = fixtures_dir("skops") else {
        return;
    };
    let manifest: Value = serde_json::from_str(
        &std::fs::read_to_string(dir.join("manifest.json")).expect("manifest.json"),
    )
    .expect("manifest.json is JSON");
    for case in manifest["cases"].as_array().expect("cases") {
        let case = case.as_str().expect("case name");
        assert!(
            PARITY_CASES.contains(&case) || case == UNSUPPORTED_CASE,
            "fixture case {case} has no test"
        );
    }
}

// --- Damaged archives -------------------------------------------------------------------

/// The files of an archive, in order.
fn entries(archive: &[u8]) -> Vec<(String, Vec<u8>)> {
    let mut zip = ZipArchive::new(Cursor::new(archive)).expect("a zip archive");
    (0..zip.len())
        .map(|index| {
            let mut file = zip.by_index(index).expect("an entry");
            let name = file.name().expect("a name").into_owned();
            let mut data = Vec::new();
            file.read_to_end(&mut data).expect("entry data");
            (name, data)
        })
        .collect()
}

/// An archive of stored `entries`, as skops writes them.
fn archive(entries: &[(String, Vec<u8>)]) -> Vec<u8> {
    let mut zip = ZipWriter::new(Cursor::new(Vec::new()));
    let options = SimpleFileOptions::default().compression_method(CompressionMethod::Stored);
    for (name, data) in entries {
        zip.start_file(name.as_str(), options).expect("start_file");
        zip.write_all(data).expect("write");
    }
    zip.finish().expect("finish").into_inner()
}

/// `case`'s archive with `edit` applied to its entries.
fn rewritten(case: &Case, edit: impl FnOnce(&mut Vec<(String, Vec<u8>)>)) -> Vec<u8> {
    let mut files = entries(&case.skops());
    edit(&mut files);
    archive(&files)
}

fn schema(files: &[(String, Vec<u8>)]) -> Value {
    let (_, data) = files
        .iter()
        .find(|(name, _)| name == "schema.json")
        .expect("schema.json");
    serde_json::from_slice(data).expect("schema.json is JSON")
}

fn set_schema(files: &mut [(String, Vec<u8>)], schema: &Value) {
    let entry = files
        .iter_mut()
        .find(|(name, _)| name == "schema.json")
        .expect("schema.json");
    entry.1 = serde_json::to_vec(schema).expect("schema");
}

/// The name of the `.npy` file holding `attribute` of the root estimator.
fn npy_of(schema: &Value, attribute: &str) -> String {
    schema["content"]["content"][attribute]["file"]
        .as_str()
        .unwrap_or_else(|| panic!("{attribute} is not an .npy file"))
        .to_owned()
}

#[track_caller]
fn invalid(bytes: &[u8], expected: &str) {
    match sklearn::from_skops(bytes) {
        Err(Error::InvalidModel(message)) => assert!(
            message.contains(expected),
            "message {message:?} lacks {expected:?}"
        ),
        Err(other) => panic!("expected InvalidModel, got {other}"),
        Ok(_) => panic!("loaded"),
    }
}

#[test]
fn a_rewritten_archive_still_loads() {
    // The rewriting itself keeps a model whole (so that the tests below
    // fail for the damage they make, not for the rewriting).
    let Some(case) = Case::open("linear_regression") else {
        return;
    };
    let bytes = rewritten(&case, |_| {});
    let runtime = sklearn::from_skops(&bytes).expect("the rewritten archive loads");
    let input = case.input();
    let rows = input.tensor.shape[0];
    let outputs = runtime.predict(&[input]).expect("predict");
    check_answers(&case, "rewritten", &outputs, rows);
}

#[test]
fn truncated_archives_are_invalid() {
    let Some(case) = Case::open("linear_regression") else {
        return;
    };
    let bytes = case.skops();
    for cut in 0..bytes.len() {
        match sklearn::from_skops(&bytes[..cut]) {
            Err(Error::InvalidModel(_)) => {}
            Err(other) => panic!("a prefix of {cut} bytes: expected InvalidModel, got {other}"),
            Ok(_) => panic!("a prefix of {cut} bytes loaded"),
        }
    }
}

#[test]
fn an_archive_without_its_schema_is_invalid() {
    let Some(case) = Case::open("logistic_regression_binary") else {
        return;
    };
    let bytes = rewritten(&case, |files| {
        files.retain(|(name, _)| name != "schema.json")
    });
    invalid(&bytes, "schema.json");
}

#[test]
fn a_schema_naming_a_missing_file_is_invalid() {
    let Some(case) = Case::open("logistic_regression_binary") else {
        return;
    };
    let bytes = rewritten(&case, |files| {
        let mut schema = schema(files);
        schema["content"]["content"]["coef_"]["file"] = Value::from("no-such-array.npy");
        set_schema(files, &schema);
    });
    invalid(&bytes, "no-such-array.npy");
    // The file exists but the schema's is gone.
    let bytes = rewritten(&case, |files| {
        let name = npy_of(&schema(files), "coef_");
        files.retain(|(file, _)| *file != name);
    });
    invalid(&bytes, ".npy");
}

#[test]
fn an_npy_whose_header_lies_about_its_size_is_invalid() {
    let Some(case) = Case::open("ridge") else {
        return;
    };
    // Eight bytes short: one float of `coef_` missing.
    let bytes = rewritten(&case, |files| {
        let name = npy_of(&schema(files), "coef_");
        let entry = files
            .iter_mut()
            .find(|(file, _)| *file == name)
            .expect("coef_");
        let len = entry.1.len();
        entry.1.truncate(len - 8);
    });
    invalid(&bytes, "holds");
    // A header claiming more elements than the data holds, and fewer.
    for (from, to) in [
        ("(20,)", "(21,)"),
        ("(20,)", "(19,)"),
        ("(20,)", "(9999999999999,)"),
    ] {
        let bytes = rewritten(&case, |files| {
            let name = npy_of(&schema(files), "coef_");
            let entry = files
                .iter_mut()
                .find(|(file, _)| *file == name)
                .expect("coef_");
            let header = &entry.1[..128];
            let at = header
                .windows(from.len())
                .position(|w| w == from.as_bytes())
                .unwrap_or_else(|| panic!("coef_ header {:?}", String::from_utf8_lossy(header)));
            let mut patched = header[..at].to_vec();
            patched.extend_from_slice(to.as_bytes());
            patched.extend_from_slice(&header[at + from.len()..]);
            // Keep the header's length: drop spaces of its padding, which
            // ends with a newline.
            while patched.len() > 128 {
                assert_eq!(patched[patched.len() - 2], b' ', "padding");
                patched.remove(patched.len() - 2);
            }
            entry.1[..128].copy_from_slice(&patched);
        });
        invalid(&bytes, "npy header says shape");
    }
}

#[test]
fn unknown_classes_and_loaders_are_unsupported() {
    let Some(case) = Case::open("ridge") else {
        return;
    };
    let unsupported = |bytes: &[u8], expected: &str| match sklearn::from_skops(bytes) {
        Err(Error::Unsupported(message)) => assert!(
            message.contains(expected),
            "message {message:?} lacks {expected:?}"
        ),
        Err(other) => panic!("expected Unsupported, got {other}"),
        Ok(_) => panic!("loaded"),
    };
    // A user subclass of a native estimator: it may override anything.
    let bytes = rewritten(&case, |files| {
        let mut schema = schema(files);
        schema["__module__"] = Value::from("my_project.models");
        set_schema(files, &schema);
    });
    unsupported(&bytes, "my_project.models.Ridge");
    // A loader skops may add one day.
    let bytes = rewritten(&case, |files| {
        let mut schema = schema(files);
        schema["content"]["content"]["coef_"]["__loader__"] = Value::from("TensorNode");
        set_schema(files, &schema);
    });
    unsupported(&bytes, "TensorNode");
    // A newer protocol.
    let bytes = rewritten(&case, |files| {
        let mut schema = schema(files);
        schema["protocol"] = Value::from(3);
        set_schema(files, &schema);
    });
    unsupported(&bytes, "protocol 3");
}

/// Corrupting any byte of a real archive gives an error or a model, never
/// a panic (stored entries are checked against their CRC-32, so most
/// damage to the data is caught by the zip reader).
#[test]
fn corrupted_archives_do_not_panic() {
    let Some(case) = Case::open("pipeline_median_imputer_scaler_ridge") else {
        return;
    };
    let bytes = case.skops();
    let input = case.input();
    for position in (0..bytes.len()).step_by(3) {
        for replacement in [0x00, bytes[position].wrapping_add(1)] {
            let mut corrupted = bytes.clone();
            corrupted[position] = replacement;
            if let Ok(runtime) = sklearn::from_skops(&corrupted) {
                let _ = runtime.predict(std::slice::from_ref(&input));
            }
        }
    }
}

#[test]
fn garbage_is_invalid() {
    assert!(matches!(
        sklearn::from_skops(b"not a zip archive"),
        Err(Error::InvalidModel(_))
    ));
    assert!(matches!(
        sklearn::from_skops(b""),
        Err(Error::InvalidModel(_))
    ));
    // A zip archive, but not skops'.
    let bytes = archive(&[("hello.txt".into(), b"hello".to_vec())]);
    assert!(matches!(
        sklearn::from_skops(&bytes),
        Err(Error::InvalidModel(_))
    ));
}
