use super::*;

const SKLEARN_MLMODEL: &str = r#"artifact_path: model
flavors:
  python_function:
    env:
      conda: conda.yaml
      virtualenv: python_env.yaml
    loader_module: mlflow.sklearn
    model_path: model.pkl
    predict_fn: predict_proba
    python_version: 3.11.7
  sklearn:
    code: null
    pickled_model: model.pkl
    serialization_format: cloudpickle
    sklearn_version: 1.9.1
mlflow_version: 3.17.2
model_id: m-0123456789abcdef
run_id: 4f1c0c5d6a0b4a55a3b1c2d3e4f5a6b7
signature:
  inputs: '[{"type": "double", "name": "sepal length (cm)", "required": true}, {"type":
    "long", "name": "count", "required": false}]'
  outputs: '[{"type": "tensor", "tensor-spec": {"dtype": "int64", "shape": [-1]}}]'
  params: null
utc_time_created: '2026-12-02 01:02:03.456789'
"#;

#[test]
fn reads_flavors_ids_and_a_column_signature() {
    let model = read_mlmodel(SKLEARN_MLMODEL).unwrap();
    assert_eq!(
        model.run_id.as_deref(),
        Some("4f1c0c5d6a0b4a55a3b1c2d3e4f5a6b7")
    );
    assert_eq!(model.model_id.as_deref(), Some("m-0123456789abcdef"));
    assert_eq!(model.mlflow_version.as_deref(), Some("3.17.2"));
    assert_eq!(
        model.flavor_value("sklearn", "pickled_model"),
        Some("model.pkl")
    );
    assert_eq!(
        model.flavor_value("python_function", "predict_fn"),
        Some("predict_proba")
    );
    assert_eq!(
        model.flavor_value("python_function", "python_version"),
        Some("3.11.7")
    );
    assert_eq!(model.flavor_value("sklearn", "code"), Some(""));
    assert_eq!(
        model.signature,
        Some(InputSchema::Columns(vec![
            ColumnSpec {
                name: "sepal length (cm)".into(),
                dtype: DataType::F64,
                required: true
            },
            ColumnSpec {
                name: "count".into(),
                dtype: DataType::I64,
                required: false
            },
        ]))
    );
    assert!(model.signature_outputs.unwrap().contains("int64"));
}

#[test]
fn reads_a_tensor_signature() {
    let text = SKLEARN_MLMODEL.replace(
        r#"'[{"type": "double", "name": "sepal length (cm)", "required": true}, {"type":
    "long", "name": "count", "required": false}]'"#,
        r#"'[{"type": "tensor", "tensor-spec": {"dtype": "float32", "shape": [-1, 4]}}]'"#,
    );
    let model = read_mlmodel(&text).unwrap();
    assert_eq!(
        model.signature,
        Some(InputSchema::Tensors(vec![TensorSpec::new(
            "",
            DataType::F32,
            vec![-1, 4]
        )]))
    );
}

#[test]
fn complex_signatures_are_noted_not_enforced() {
    let text = SKLEARN_MLMODEL.replace(
        r#"'[{"type": "double", "name": "sepal length (cm)", "required": true}, {"type":
    "long", "name": "count", "required": false}]'"#,
        r#"'[{"type": "array", "items": {"type": "string"}, "name": "tags", "required": true}]'"#,
    );
    let model = read_mlmodel(&text).unwrap();
    assert_eq!(model.signature, None);
    assert!(model.signature_note.unwrap().contains("array"));
}

#[test]
fn malformed_descriptors_are_invalid_models() {
    for text in [
        "",
        "just a string",
        "flavors: [1, 2",
        "run_id: x\n",
        "flavors: {}\nsignature:\n  inputs: 'not json'\n",
    ] {
        match read_mlmodel(text) {
            Err(Error::InvalidModel(_)) => {}
            Ok(m) if text.starts_with("flavors: {}") => panic!("accepted a bad signature: {m:?}"),
            other => panic!("{text:?}: expected InvalidModel, got {other:?}"),
        }
    }
}
