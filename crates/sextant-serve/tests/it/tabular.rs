//! Native scikit-learn pipelines over DataFrames with text and number
//! columns, against scikit-learn's own answers on the fixtures of
//! `tests/fixtures/tabular.py` (see its docstring for `case.json`): each
//! case is loaded from its pickle and from its skops file, and, where
//! skl2onnx converted it, from its ONNX graph, and asked through
//! [`Model::predict`] with the test rows as dataframe columns, as the
//! server asks it.
//!
//! Tolerances: labels equal; probabilities within 1e-9 for native runtimes
//! (the same float64 operations, summed in another order only by linear
//! models); regression values within 1e-9 relative to `max(1, |expected|)`.
//! The ONNX graphs are compared with ONNX Runtime's answers on the same file
//! (float32 throughout, within 1e-5), which are what a user of the export
//! gets and may differ from scikit-learn's.

use std::path::PathBuf;
use std::sync::Arc;

use serde_json::Value;
use sextant_serve::model::Layout;
use sextant_serve::{
    onnx, sklearn, trees, DataType, Error, Model, ModelRuntime, NamedTensor, Tensor, TensorData,
};

use crate::fixtures_dir;

struct Case {
    name: String,
    dir: PathBuf,
    json: Value,
}

impl Case {
    fn open(name: &str) -> Option<Case> {
        let dir = fixtures_dir("tabular")?.join(name);
        let text = std::fs::read_to_string(dir.join("case.json"))
            .unwrap_or_else(|e| panic!("{name}: case.json: {e}"));
        Some(Case {
            name: name.to_owned(),
            json: serde_json::from_str(&text).expect("case.json"),
            dir,
        })
    }

    fn file(&self, name: &str) -> Vec<u8> {
        std::fs::read(self.dir.join(name)).unwrap_or_else(|e| panic!("{}: {name}: {e}", self.name))
    }

    /// The test rows as dataframe columns, as the wire codecs make them.
    fn columns(&self) -> Vec<NamedTensor> {
        self.json["columns"]
            .as_array()
            .expect("columns")
            .iter()
            .map(|column| {
                let name = column["name"].as_str().expect("name");
                let values = column["values"].as_array().expect("values");
                let data = match column["kind"].as_str() {
                    Some("text") => TensorData::Str(
                        values
                            .iter()
                            .map(|v| v.as_str().expect("text").to_owned())
                            .collect(),
                    ),
                    _ => TensorData::F64(
                        values
                            .iter()
                            .map(|v| v.as_f64().unwrap_or(f64::NAN))
                            .collect(),
                    ),
                };
                NamedTensor::new(name, Tensor::column(data))
            })
            .collect()
    }

    fn rows(&self) -> usize {
        self.json["columns"][0]["values"]
            .as_array()
            .expect("values")
            .len()
    }
}

fn output<'a>(outputs: &'a [NamedTensor], name: &str) -> &'a Tensor {
    &outputs
        .iter()
        .find(|o| o.name == name)
        .unwrap_or_else(|| panic!("no output {name}"))
        .tensor
}

fn numbers(tensor: &Tensor) -> Vec<f64> {
    (0..tensor.data.len())
        .map(|i| tensor.data.get_f64(i).expect("numbers"))
        .collect()
}

fn flatten(value: &Value) -> Vec<f64> {
    let mut out = Vec::new();
    for item in value.as_array().expect("array") {
        match item {
            Value::Array(row) => out.extend(row.iter().map(|v| v.as_f64().unwrap_or(f64::NAN))),
            other => out.push(other.as_f64().unwrap_or(f64::NAN)),
        }
    }
    out
}

/// Asks `runtime` the case's rows and compares with scikit-learn.
fn check_answers(case: &Case, runtime: Arc<dyn ModelRuntime>, source: &str, tolerance: f64) {
    let name = format!("{} ({source})", case.name);
    let model = Model::new(runtime, None);
    let outputs = model
        .predict(case.columns(), Layout::Columns)
        .unwrap_or_else(|e| panic!("{name}: predict failed: {e}"));
    let rows = case.rows();
    let predict = output(&outputs, "predict");
    match case.json["task"].as_str() {
        Some("classification") => {
            let expected = case.json["predict"].as_array().expect("predict");
            assert_eq!(predict.data.len(), rows, "{name}: labels");
            for (row, label) in expected.iter().enumerate() {
                let same = match (&predict.data, label) {
                    (TensorData::Str(got), Value::String(want)) => got[row] == *want,
                    (data, want) => data.get_f64(row) == want.as_f64(),
                };
                assert!(same, "{name}: row {row}: label {label} expected");
            }
            let proba = output(&outputs, "predict_proba");
            let got = numbers(proba);
            let want = flatten(&case.json["predict_proba"]);
            let worst = worst_difference(&got, &want, |_| 1.0);
            println!("{name}: labels equal, largest probability difference {worst:e}");
            assert!(
                worst <= tolerance,
                "{name}: probabilities differ by {worst:e}"
            );
        }
        _ => {
            let got = numbers(predict);
            let want = flatten(&case.json["predict"]);
            let worst = worst_difference(&got, &want, |e| e.abs().max(1.0));
            println!("{name}: largest relative difference {worst:e}");
            assert!(
                worst <= tolerance,
                "{name}: predictions differ by {worst:e}"
            );
        }
    }
}

fn worst_difference(got: &[f64], want: &[f64], scale: impl Fn(f64) -> f64) -> f64 {
    assert_eq!(got.len(), want.len(), "output sizes differ");
    got.iter()
        .zip(want)
        .map(|(g, w)| (g - w).abs() / scale(*w))
        .fold(0.0, f64::max)
}

/// The runtime's inputs: exactly the columns the case lists, with their
/// kinds (or one matrix, for a pipeline that reads every column and only
/// numbers).
fn check_inputs(case: &Case, runtime: &Arc<dyn ModelRuntime>) {
    let expected: Vec<(String, DataType)> = case.json["inputs"]
        .as_array()
        .expect("inputs")
        .iter()
        .map(|input| {
            let dtype = match input["kind"].as_str() {
                Some("text") => DataType::Bytes,
                _ => DataType::F64,
            };
            (input["name"].as_str().expect("name").to_owned(), dtype)
        })
        .collect();
    let info = runtime.info();
    let every_column = case.json["columns"].as_array().expect("columns").len() == expected.len();
    if every_column && expected.iter().all(|(_, dtype)| *dtype == DataType::F64) {
        assert_eq!(info.inputs.len(), 1, "{}: one matrix input", case.name);
        let names: Vec<String> = expected.into_iter().map(|(name, _)| name).collect();
        assert_eq!(
            info.feature_names.as_ref(),
            Some(&names),
            "{}: feature names",
            case.name
        );
        return;
    }
    let mut got: Vec<(String, DataType)> = info
        .inputs
        .iter()
        .map(|spec| (spec.name.clone(), spec.dtype))
        .collect();
    let mut expected = expected;
    got.sort_by(|a, b| a.0.cmp(&b.0));
    expected.sort_by(|a, b| a.0.cmp(&b.0));
    assert_eq!(got, expected, "{}: inputs", case.name);
}

fn check(name: &str) {
    let Some(case) = Case::open(name) else { return };
    assert_eq!(case.json["expect"], "ok", "{name}: not a parity case");
    let from_pickle = sklearn::from_pickle(&case.file("model.pkl"))
        .unwrap_or_else(|e| panic!("{name}: pickle: {e}"));
    check_inputs(&case, &from_pickle);
    check_answers(&case, from_pickle, "pickle", 1e-9);
    let from_skops = sklearn::from_skops(&case.file("model.skops"))
        .unwrap_or_else(|e| panic!("{name}: skops: {e}"));
    check_answers(&case, from_skops, "skops", 1e-9);
    for file in case.json["booster_files"].as_array().into_iter().flatten() {
        let file = file.as_str().expect("file name");
        let bytes = case.file(file);
        let spec = if file.ends_with(".txt") {
            trees::lightgbm::from_text(std::str::from_utf8(&bytes).expect("text"))
        } else {
            trees::xgboost::load(&bytes)
        }
        .unwrap_or_else(|e| panic!("{name}: {file}: {e}"));
        let runtime = trees::runtime(spec).unwrap_or_else(|e| panic!("{name}: {file}: {e}"));
        check_inputs(&case, &runtime);
        check_answers(&case, runtime, file, 1e-9);
    }
    if case.json["onnx"].is_object() {
        check_onnx(&case);
    }
}

/// The skl2onnx export against ONNX Runtime on the same file: the same
/// outputs (float32, so within 1e-5), or a bad request where ONNX Runtime
/// fails (an encoder exported to refuse unknown categories).
fn check_onnx(case: &Case) {
    let name = &case.name;
    let graph =
        onnx::load(&case.file("model.onnx")).unwrap_or_else(|e| panic!("{name}: onnx: {e}"));
    let model = Model::new(Arc::new(graph), None);
    let answer = model.predict(case.columns(), Layout::Columns);
    let reference = &case.json["onnx"];
    if let Some(error) = reference["error"].as_str() {
        match answer {
            Err(Error::Input(message)) => {
                println!("{name} (skl2onnx): refused like ONNX Runtime: {message}")
            }
            other => {
                panic!("{name} (skl2onnx): ONNX Runtime failed ({error}), we answered {other:?}")
            }
        }
        return;
    }
    let outputs = answer.unwrap_or_else(|e| panic!("{name} (skl2onnx): predict failed: {e}"));
    for (output, expected) in reference["outputs"].as_object().expect("outputs") {
        let got = outputs
            .iter()
            .find(|o| o.name == *output)
            .unwrap_or_else(|| panic!("{name} (skl2onnx): no output {output}"));
        match &got.tensor.data {
            TensorData::Str(labels) => {
                let want: Vec<&str> = expected
                    .as_array()
                    .expect("labels")
                    .iter()
                    .map(|v| v.as_str().expect("text"))
                    .collect();
                assert_eq!(labels, &want, "{name} (skl2onnx): {output}");
            }
            _ => {
                let worst = worst_difference(&numbers(&got.tensor), &flatten(expected), |e| {
                    e.abs().max(1.0)
                });
                println!("{name} (skl2onnx): {output} within {worst:e} of ONNX Runtime");
                assert!(
                    worst <= 1e-5,
                    "{name} (skl2onnx): {output} differs by {worst:e}"
                );
            }
        }
    }
}

macro_rules! parity {
    ($($name:ident),* $(,)?) => {
        const PARITY_CASES: &[&str] = &[$(stringify!($name)),*];
        $(
            #[test]
            fn $name() {
                check(stringify!($name));
            }
        )*
    };
}

parity!(
    scam_call_pipeline,
    tutorial_pipeline,
    onehot_drop_first_infrequent_random_forest,
    onehot_max_categories_warn_logistic,
    onehot_integer_categories,
    ordinal_hist_gradient_boosting_missing,
    ordinal_infrequent_logistic,
    target_encoder_binary,
    target_encoder_multiclass,
    target_encoder_continuous_regressor,
    polynomial_bins_ridge,
    interaction_features_by_index,
    numeric_pipeline_stays_a_matrix,
    xgboost_categorical_classifier,
    lightgbm_categorical_classifier,
);

const UNSUPPORTED_CASES: &[(&str, &str)] = &[
    ("unsupported_custom_function", "FunctionTransformer"),
    ("unsupported_knn_after_encoder", "KNeighborsClassifier"),
];

#[test]
fn pipelines_only_python_can_run_are_refused_by_name() {
    for (name, what) in UNSUPPORTED_CASES {
        let Some(case) = Case::open(name) else { return };
        for (file, load) in [
            ("model.pkl", sklearn::from_pickle as fn(&[u8]) -> _),
            ("model.skops", sklearn::from_skops),
        ] {
            match load(&case.file(file)) {
                Err(Error::Unsupported(message)) => assert!(
                    message.contains(what),
                    "{name} ({file}): {message:?} does not name {what}"
                ),
                Err(other) => panic!("{name} ({file}): expected Unsupported, got {other}"),
                Ok(_) => panic!("{name} ({file}): loaded a pipeline it cannot run"),
            }
        }
    }
}

#[test]
fn every_fixture_case_is_checked() {
    let Some(dir) = fixtures_dir("tabular") else {
        return;
    };
    let manifest: Value = serde_json::from_str(
        &std::fs::read_to_string(dir.join("manifest.json")).expect("manifest"),
    )
    .expect("manifest json");
    for case in manifest["cases"].as_array().expect("cases") {
        let case = case.as_str().expect("name");
        assert!(
            PARITY_CASES.contains(&case) || UNSUPPORTED_CASES.iter().any(|(n, _)| *n == case),
            "fixture case {case} is not checked"
        );
    }
}

#[test]
fn xgboost_refuses_categories_it_never_saw_and_lightgbm_counts_them_missing() {
    let Some(xgb) = Case::open("xgboost_categorical_classifier") else {
        return;
    };
    let request = |country: &str| {
        vec![
            NamedTensor::new(
                "location_of_call",
                Tensor::column(TensorData::Str(vec![country.into()])),
            ),
            NamedTensor::new(
                "carrier",
                Tensor::column(TensorData::Str(vec!["tel-a".into()])),
            ),
            NamedTensor::new("amount", Tensor::column(TensorData::F64(vec![20.0]))),
            NamedTensor::new("duration_s", Tensor::column(TensorData::F64(vec![60.0]))),
            NamedTensor::new(
                "asked_for_gift_cards",
                Tensor::column(TensorData::F64(vec![1.0])),
            ),
        ]
    };
    let model = Model::new(sklearn::from_pickle(&xgb.file("model.pkl")).unwrap(), None);
    model
        .predict(request("NG"), Layout::Columns)
        .expect("a known country");
    match model.predict(request("ZZ"), Layout::Columns) {
        Err(Error::Input(message)) => assert!(message.contains("'ZZ'"), "{message}"),
        other => panic!("XGBoost refuses unseen categories; got {other:?}"),
    }
    let Some(lgbm) = Case::open("lightgbm_categorical_classifier") else {
        return;
    };
    let model = Model::new(sklearn::from_pickle(&lgbm.file("model.pkl")).unwrap(), None);
    let unseen = model
        .predict(request("ZZ"), Layout::Columns)
        .expect("unseen is missing");
    let mut missing = request("ZZ");
    missing[0] = NamedTensor::new(
        "location_of_call",
        Tensor::column(TensorData::Str(vec!["also unseen".into()])),
    );
    let also = model.predict(missing, Layout::Columns).unwrap();
    assert_eq!(unseen[1].tensor.data, also[1].tensor.data);
}

#[test]
fn unknown_categories_are_refused_only_where_the_encoder_refuses_them() {
    let Some(case) = Case::open("onehot_integer_categories") else {
        return;
    };
    let model = Model::new(sklearn::from_pickle(&case.file("model.pkl")).unwrap(), None);
    let request = |carrier: &str| {
        vec![
            NamedTensor::new(
                "carrier",
                Tensor::column(TensorData::Str(vec![carrier.into()])),
            ),
            // An hour never seen in training: handle_unknown="ignore".
            NamedTensor::new("hour", Tensor::column(TensorData::F64(vec![99.0]))),
        ]
    };
    model
        .predict(request("tel-a"), Layout::Columns)
        .expect("known carrier");
    match model.predict(request("tel-zz"), Layout::Columns) {
        Err(Error::Input(message)) => {
            assert!(message.contains("'tel-zz'"), "{message}");
        }
        other => panic!("an unknown carrier must be a bad request, got {other:?}"),
    }
    // A number where the encoder learnt text is the caller's mistake too.
    let numbers_for_text = vec![
        NamedTensor::new("carrier", Tensor::column(TensorData::F64(vec![1.0]))),
        NamedTensor::new("hour", Tensor::column(TensorData::F64(vec![3.0]))),
    ];
    assert!(matches!(
        model.predict(numbers_for_text, Layout::Columns),
        Err(Error::Input(_))
    ));
}
