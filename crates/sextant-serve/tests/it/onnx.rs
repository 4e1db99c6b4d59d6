//! The ONNX interpreter against ONNX Runtime, on the models and inputs of
//! `tests/fixtures/onnx.py` (area `onnx`), plus its refusals: unsupported
//! operators, corrupt files, bad requests.
//!
//! Tree ensembles must agree with ONNX Runtime to the bit (both sum in
//! `f32` in the same order); other float outputs within an explicit
//! tolerance, since ONNX Runtime's matrix products and activations round
//! differently; labels exactly. Run with `--nocapture` to see each case's
//! largest difference.

use std::path::Path;

use prost::Message;
use serde_json::Value;
use sextant_serve::onnx::{self, proto};
use sextant_serve::{DataType, Error, ModelRuntime, NamedTensor, Tensor, TensorData};

use crate::fixtures_dir;

/// How close our floats must be to ONNX Runtime's: `|ours − theirs| <=
/// absolute + relative · |theirs|`.
#[derive(Debug, Clone, Copy)]
struct Tolerance {
    absolute: f64,
    relative: f64,
}

/// Bit-for-bit (tree ensembles, lookups, pure data movement).
const EXACT: Tolerance = Tolerance {
    absolute: 0.0,
    relative: 0.0,
};
/// Probabilities from `f32` arithmetic that rounds differently.
const PROBABILITIES: Tolerance = Tolerance {
    absolute: 1e-6,
    relative: 0.0,
};
/// Unbounded `f32` values (scores, logits, regression outputs): a few
/// units in the last place of `f32`.
const FLOAT32: Tolerance = Tolerance {
    absolute: 1e-6,
    relative: 2e-6,
};

struct Case {
    model: Vec<u8>,
    inputs: Vec<NamedTensor>,
    expected: Vec<NamedTensor>,
}

fn dtype_of(name: &str) -> DataType {
    DataType::from_numpy(name).unwrap_or_else(|| panic!("unknown dtype {name} in a fixture"))
}

fn float_values(values: &[Value]) -> impl Iterator<Item = f64> + '_ {
    // NaN is written as null.
    values.iter().map(|v| v.as_f64().unwrap_or(f64::NAN))
}

fn tensor_from_json(entry: &Value) -> NamedTensor {
    let name = entry["name"].as_str().expect("name").to_string();
    let dtype = dtype_of(entry["dtype"].as_str().expect("dtype"));
    let shape: Vec<usize> = entry["shape"]
        .as_array()
        .expect("shape")
        .iter()
        .map(|d| d.as_u64().expect("dimension") as usize)
        .collect();
    let values = entry["data"].as_array().expect("data");
    let data = match dtype {
        DataType::F32 => TensorData::F32(float_values(values).map(|v| v as f32).collect()),
        DataType::F64 => TensorData::F64(float_values(values).collect()),
        DataType::Bool => {
            TensorData::Bool(values.iter().map(|v| v.as_bool().expect("bool")).collect())
        }
        DataType::Bytes => TensorData::Str(
            values
                .iter()
                .map(|v| v.as_str().expect("string").to_string())
                .collect(),
        ),
        _ => TensorData::I64(
            values
                .iter()
                .map(|v| v.as_i64().expect("integer"))
                .collect(),
        ),
    };
    NamedTensor::new(
        name,
        Tensor::new(dtype, shape, data).expect("fixture shape and data agree"),
    )
}

fn load_case(directory: &Path, name: &str) -> Case {
    let case_dir = directory.join(name);
    let model = std::fs::read(case_dir.join("model.onnx")).expect("model.onnx");
    let text = std::fs::read_to_string(case_dir.join("case.json")).expect("case.json");
    let case: Value = serde_json::from_str(&text).expect("case.json is JSON");
    let tensors = |key: &str| {
        case[key]
            .as_array()
            .expect(key)
            .iter()
            .map(tensor_from_json)
            .collect()
    };
    Case {
        model,
        inputs: tensors("inputs"),
        expected: tensors("outputs"),
    }
}

/// The largest `|ours − theirs|` over float outputs, and the output where
/// it is; panics on any value outside `tolerance`, any label that differs,
/// any name, type or shape that differs.
fn compare(
    case: &str,
    ours: &[NamedTensor],
    theirs: &[NamedTensor],
    tolerance: Tolerance,
) -> (f64, String) {
    assert_eq!(
        ours.iter().map(|t| &t.name).collect::<Vec<_>>(),
        theirs.iter().map(|t| &t.name).collect::<Vec<_>>(),
        "{case}: output names"
    );
    let mut worst = (0.0f64, String::new());
    for (mine, reference) in ours.iter().zip(theirs) {
        let what = format!("{case}: output '{}'", mine.name);
        assert_eq!(mine.tensor.dtype, reference.tensor.dtype, "{what}: type");
        assert_eq!(mine.tensor.shape, reference.tensor.shape, "{what}: shape");
        match (&mine.tensor.data, &reference.tensor.data) {
            (TensorData::F32(_) | TensorData::F64(_), TensorData::F32(_) | TensorData::F64(_)) => {
                for i in 0..mine.tensor.len() {
                    let a = mine.tensor.data.get_f64(i).unwrap_or(f64::NAN);
                    let b = reference.tensor.data.get_f64(i).unwrap_or(f64::NAN);
                    if a.is_nan() && b.is_nan() {
                        continue;
                    }
                    let difference = (a - b).abs();
                    let allowed = tolerance.absolute + tolerance.relative * b.abs();
                    assert!(
                        difference <= allowed,
                        "{what}: element {i} is {a:e}, ONNX Runtime says {b:e} (difference {difference:e}, allowed {allowed:e})"
                    );
                    if difference > worst.0 {
                        worst = (difference, mine.name.clone());
                    }
                }
            }
            (a, b) => assert_eq!(a, b, "{what}: values"),
        }
    }
    worst
}

fn check_fixture(name: &str, tolerance: Tolerance) {
    let Some(directory) = fixtures_dir("onnx") else {
        return;
    };
    let case = load_case(&directory, name);
    let model = onnx::load(&case.model).unwrap_or_else(|e| panic!("{name}: load failed: {e}"));
    let info = model.info();
    assert_eq!(info.engine, "onnx");
    assert_eq!(
        info.inputs
            .iter()
            .map(|s| (&s.name, s.dtype))
            .collect::<Vec<_>>(),
        case.inputs
            .iter()
            .map(|t| (&t.name, t.tensor.dtype))
            .collect::<Vec<_>>(),
        "{name}: declared inputs"
    );
    assert_eq!(
        info.outputs
            .iter()
            .map(|s| (&s.name, s.dtype))
            .collect::<Vec<_>>(),
        case.expected
            .iter()
            .map(|t| (&t.name, t.tensor.dtype))
            .collect::<Vec<_>>(),
        "{name}: declared outputs"
    );
    let outputs = model
        .predict(&case.inputs)
        .unwrap_or_else(|e| panic!("{name}: predict failed: {e}"));
    let (worst, output) = compare(name, &outputs, &case.expected, tolerance);
    if worst == 0.0 {
        eprintln!("{name}: identical to ONNX Runtime");
    } else {
        eprintln!("{name}: max |ours - onnxruntime| = {worst:e} (output '{output}')");
    }
}

/// The cases the generator may skip when a converter cannot convert the
/// model: skl2onnx 1.20 with onnx 1.23 crashes on HistGradientBoosting
/// (inference.md). The generator records why in `manifest.json`.
const MAY_BE_SKIPPED: &[&str] = &["hist_gradient_boosting"];

fn manifest(directory: &Path) -> Value {
    let text = std::fs::read_to_string(directory.join("manifest.json")).expect("manifest.json");
    serde_json::from_str(&text).expect("manifest is JSON")
}

macro_rules! fixture_tests {
    ($($name:ident: $tolerance:expr,)*) => {
        $(
            #[test]
            fn $name() {
                check_fixture(stringify!($name), $tolerance);
            }
        )*

        /// Every case the generator wrote has a test, and every test has a
        /// case (or, for the cases that may be skipped, a recorded reason).
        #[test]
        fn every_fixture_case_is_tested() {
            let Some(directory) = fixtures_dir("onnx") else { return };
            let manifest = manifest(&directory);
            let names = |key: &str| -> Vec<String> {
                let mut names: Vec<String> = match &manifest[key] {
                    Value::Array(cases) => cases.iter().map(|c| c.as_str().expect("name").to_string()).collect(),
                    Value::Object(skipped) => skipped.keys().cloned().collect(),
                    other => panic!("manifest {key}: {other:?}"),
                };
                names.sort();
                names
            };
            let mut tested: Vec<String> = vec![$(stringify!($name).to_string()),*];
            tested.extend(MAY_BE_SKIPPED.iter().map(|s| s.to_string()));
            tested.sort();
            let mut accounted = names("cases");
            accounted.extend(names("skipped"));
            accounted.sort();
            assert_eq!(accounted, tested, "fixture cases and tests differ");
            for skipped in names("skipped") {
                assert!(MAY_BE_SKIPPED.contains(&skipped.as_str()), "{skipped} was skipped");
            }
        }
    };
}

/// Checked like the others when the converter manages it.
#[test]
fn hist_gradient_boosting() {
    let Some(directory) = fixtures_dir("onnx") else {
        return;
    };
    let name = "hist_gradient_boosting";
    if let Some(reason) = manifest(&directory)["skipped"].get(name) {
        eprintln!("{name}: not generated ({reason})");
        return;
    }
    check_fixture(name, EXACT);
}

fixture_tests! {
    // The eleven models of inference.md (hist_gradient_boosting is skipped
    // when skl2onnx cannot convert it).
    logistic_regression: PROBABILITIES,
    random_forest: EXACT,
    gradient_boosting: EXACT,
    xgboost: EXACT,
    lightgbm: EXACT,
    mlp: PROBABILITIES,
    random_forest_regressor: EXACT,
    scaler_logistic: PROBABILITIES,
    onehot_pipeline: PROBABILITIES,
    zipmap: EXACT,
    // More regressors, multiclass trees, missing values, labels.
    linear_regression: FLOAT32,
    xgboost_regressor: EXACT,
    gradient_boosting_regressor: EXACT,
    random_forest_multiclass: EXACT,
    gradient_boosting_multiclass: EXACT,
    xgboost_multiclass: EXACT,
    lightgbm_multiclass: EXACT,
    xgboost_missing: EXACT,
    lightgbm_missing: EXACT,
    string_labels_tree: EXACT,
    string_labels_zipmap: PROBABILITIES,
    label_encoder: EXACT,
    label_encoder_v2: EXACT,
    linear_svc: FLOAT32,
    svm_classifier: FLOAT32,
    svm_classifier_poly_proba: PROBABILITIES,
    svm_regressor: FLOAT32,
    preprocessing: FLOAT32,
    // Graphs in torch.onnx's shape and operator coverage.
    mlp_torch_style: FLOAT32,
    ops_elementwise: FLOAT32,
    ops_shapes: FLOAT32,
    ops_reductions: FLOAT32,
    // Tree ensembles built by hand for ONNX Runtime's corner cases, and
    // LightGBM's categorical splits (chains of BRANCH_EQ).
    lightgbm_categorical: EXACT,
    trees_modes_average: EXACT,
    trees_probit: EXACT,
    trees_softmax_zero: EXACT,
    trees_binary_positive: EXACT,
    trees_binary_logistic: EXACT,
    trees_binary_second_class: EXACT,
    trees_binary_both_classes: EXACT,
    trees_double_input: EXACT,
    trees_int64_input: EXACT,
    tree_ensemble_v5: EXACT,
}

// --- one row at a time -------------------------------------------------------------------------

/// Row `row` of every input, keeping the batch axis.
fn single_row(inputs: &[NamedTensor], row: usize) -> Vec<NamedTensor> {
    inputs
        .iter()
        .map(|input| {
            let t = &input.tensor;
            let width = t.row_width();
            let pick: Vec<usize> = (row * width..(row + 1) * width).collect();
            let data = match &t.data {
                TensorData::F32(v) => TensorData::F32(pick.iter().map(|&i| v[i]).collect()),
                TensorData::F64(v) => TensorData::F64(pick.iter().map(|&i| v[i]).collect()),
                TensorData::I64(v) => TensorData::I64(pick.iter().map(|&i| v[i]).collect()),
                TensorData::Bool(v) => TensorData::Bool(pick.iter().map(|&i| v[i]).collect()),
                TensorData::Str(v) => TensorData::Str(pick.iter().map(|&i| v[i].clone()).collect()),
            };
            let mut shape = t.shape.clone();
            shape[0] = 1;
            NamedTensor::new(
                input.name.clone(),
                Tensor::new(t.dtype, shape, data).expect("row"),
            )
        })
        .collect()
}

/// A tree model called one row at a time gives the batch's answers to the
/// bit (ONNX Runtime's single-threaded loop sums each row alike).
#[test]
fn single_rows_match_the_batch() {
    let Some(directory) = fixtures_dir("onnx") else {
        return;
    };
    for name in [
        "random_forest",
        "xgboost_multiclass",
        "mlp_torch_style",
        "onehot_pipeline",
    ] {
        let case = load_case(&directory, name);
        let model = onnx::load(&case.model).expect("load");
        let batch = model.predict(&case.inputs).expect("batch");
        for row in [0, 7, 199] {
            let outputs = model
                .predict(&single_row(&case.inputs, row))
                .expect("one row");
            let expected: Vec<NamedTensor> = batch
                .iter()
                .map(|t| single_row(std::slice::from_ref(t), row).remove(0))
                .collect();
            compare(&format!("{name}, row {row}"), &outputs, &expected, EXACT);
        }
    }
}

// --- refusals ------------------------------------------------------------------------------------

fn node(domain: &str, op_type: &str, inputs: &[&str], outputs: &[&str]) -> proto::NodeProto {
    proto::NodeProto {
        input: inputs.iter().map(|s| s.to_string()).collect(),
        output: outputs.iter().map(|s| s.to_string()).collect(),
        name: Some(format!("{op_type}_node")),
        op_type: Some(op_type.to_string()),
        domain: Some(domain.to_string()),
        attribute: Vec::new(),
    }
}

fn float_matrix(name: &str, columns: i64) -> proto::ValueInfoProto {
    use proto::tensor_shape_proto::{dimension, Dimension};
    let dims = [None, Some(columns)]
        .into_iter()
        .map(|d| Dimension {
            value: Some(match d {
                Some(v) => dimension::Value::DimValue(v),
                None => dimension::Value::DimParam("batch".into()),
            }),
        })
        .collect();
    proto::ValueInfoProto {
        name: Some(name.to_string()),
        r#type: Some(proto::TypeProto {
            value: Some(proto::type_proto::Value::TensorType(
                proto::type_proto::Tensor {
                    elem_type: Some(proto::data_type::FLOAT),
                    shape: Some(proto::TensorShapeProto { dim: dims }),
                },
            )),
        }),
    }
}

fn model_bytes(nodes: Vec<proto::NodeProto>, output: &str) -> Vec<u8> {
    let opset = |domain: &str, version| proto::OperatorSetIdProto {
        domain: Some(domain.to_string()),
        version: Some(version),
    };
    proto::ModelProto {
        ir_version: Some(8),
        opset_import: vec![
            opset("", 17),
            opset("ai.onnx.ml", 3),
            opset("com.microsoft", 1),
        ],
        producer_name: Some("sextant tests".into()),
        producer_version: None,
        domain: None,
        model_version: None,
        graph: Some(proto::GraphProto {
            node: nodes,
            name: Some("test".into()),
            initializer: Vec::new(),
            sparse_initializer: Vec::new(),
            input: vec![float_matrix("x", 4)],
            output: vec![float_matrix(output, 4)],
            value_info: Vec::new(),
        }),
        metadata_props: Vec::new(),
        functions: Vec::new(),
    }
    .encode_to_vec()
}

#[test]
fn unsupported_operators_are_all_named() {
    let bytes = model_bytes(
        vec![
            node("", "Relu", &["x"], &["a"]),
            node("", "Conv", &["a", "w"], &["b"]),
            node("", "LSTM", &["b", "w", "r"], &["c"]),
            node("ai.onnx.ml", "CastMap", &["c"], &["d"]),
            node("com.microsoft", "FusedMatMul", &["d", "d"], &["e"]),
            node("", "Conv", &["e", "w"], &["y"]),
        ],
        "y",
    );
    let error = onnx::load(&bytes).expect_err("the graph has unsupported operators");
    let Error::Unsupported(message) = &error else {
        panic!("expected Unsupported, got {error:?}")
    };
    for expected in [
        "ai.onnx.Conv",
        "ai.onnx.LSTM",
        "ai.onnx.ml.CastMap",
        "com.microsoft.FusedMatMul",
    ] {
        assert!(
            message.contains(expected),
            "{expected} is missing from: {message}"
        );
    }
    assert!(!message.contains("Relu"), "Relu is supported: {message}");
    assert_eq!(
        message.matches("ai.onnx.Conv").count(),
        1,
        "Conv listed twice: {message}"
    );
}

#[test]
fn a_valid_graph_of_supported_operators_loads_and_runs() {
    // The same builder with supported operators only: the refusal above is
    // about the operators, not the builder.
    let bytes = model_bytes(
        vec![
            node("", "Relu", &["x"], &["a"]),
            node("", "Neg", &["a"], &["y"]),
        ],
        "y",
    );
    let model = onnx::load(&bytes).expect("load");
    let x = NamedTensor::new(
        "x",
        Tensor::new(
            DataType::F32,
            vec![1, 4],
            TensorData::F32(vec![-1.0, 2.0, -3.0, 4.0]),
        )
        .unwrap(),
    );
    let y = model.predict(&[x]).expect("predict");
    assert_eq!(
        y[0].tensor.data,
        TensorData::F32(vec![-0.0, -2.0, -0.0, -4.0])
    );
}

#[test]
fn corrupt_and_truncated_files_are_invalid_models() {
    let bytes = model_bytes(vec![node("", "Relu", &["x"], &["y"])], "y");
    let fixture = fixtures_dir("onnx")
        .map(|d| std::fs::read(d.join("random_forest/model.onnx")).expect("model"));
    let mut samples: Vec<(String, Vec<u8>)> = vec![
        ("empty".into(), Vec::new()),
        ("text".into(), b"this is not an onnx model at all".to_vec()),
        (
            "garbage".into(),
            (0..4096u32)
                .map(|i| (i.wrapping_mul(2_654_435_761) >> 13) as u8)
                .collect(),
        ),
    ];
    // A cut at a field boundary can leave a valid (smaller) message, so
    // the cuts fall inside the graph, which is most of the file.
    samples.push((
        "small model cut in half".into(),
        bytes[..bytes.len() / 2].to_vec(),
    ));
    if let Some(source) = fixture {
        for cut in 1..8 {
            let at = source.len() * cut / 8;
            samples.push((
                format!("fixture cut at {at} of {}", source.len()),
                source[..at].to_vec(),
            ));
        }
    }
    for (what, sample) in samples {
        match onnx::load(&sample) {
            Err(Error::InvalidModel(_)) => {}
            other => panic!("{what}: expected InvalidModel, got {other:?}"),
        }
    }
}

#[test]
fn requests_of_the_wrong_type_or_shape_are_input_errors() {
    let bytes = model_bytes(vec![node("", "Relu", &["x"], &["y"])], "y");
    let model = onnx::load(&bytes).expect("load");
    let good = Tensor::new(DataType::F32, vec![2, 4], TensorData::F32(vec![0.0; 8])).unwrap();
    assert!(model
        .predict(&[NamedTensor::new("x", good.clone())])
        .is_ok());

    let doubles = Tensor::new(DataType::F64, vec![2, 4], TensorData::F64(vec![0.0; 8])).unwrap();
    let three_columns =
        Tensor::new(DataType::F32, vec![2, 3], TensorData::F32(vec![0.0; 6])).unwrap();
    let flat = Tensor::new(DataType::F32, vec![8], TensorData::F32(vec![0.0; 8])).unwrap();
    let lying = Tensor {
        dtype: DataType::F32,
        shape: vec![2, 4],
        data: TensorData::F32(vec![0.0; 7]),
    };
    let cases = [
        ("FP64 for FP32", vec![NamedTensor::new("x", doubles)]),
        (
            "3 columns for 4",
            vec![NamedTensor::new("x", three_columns)],
        ),
        ("rank 1 for rank 2", vec![NamedTensor::new("x", flat)]),
        (
            "shape and data disagree",
            vec![NamedTensor::new("x", lying)],
        ),
        ("wrong name", vec![NamedTensor::new("z", good.clone())]),
        ("no inputs", vec![]),
    ];
    for (what, inputs) in cases {
        match model.predict(&inputs) {
            Err(Error::Input(_)) => {}
            other => panic!("{what}: expected an input error, got {other:?}"),
        }
    }

    // A fixture with static feature counts refuses rows of another width.
    let Some(directory) = fixtures_dir("onnx") else {
        return;
    };
    let case = load_case(&directory, "random_forest");
    let model = onnx::load(&case.model).expect("load");
    let narrow = Tensor::new(DataType::F32, vec![1, 19], TensorData::F32(vec![0.0; 19])).unwrap();
    match model.predict(&[NamedTensor::new("input", narrow)]) {
        Err(Error::Input(message)) => assert!(message.contains("input"), "{message}"),
        other => panic!("expected an input error, got {other:?}"),
    }
}
