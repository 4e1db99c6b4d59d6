use super::*;
use crate::trees::{compile, ClassLabels, EnsembleSpec, Link, Missing, Task, Test, Tree, TreeNode};

/// A stump on feature 1 (`b`): `b <= 0.5` → 10, else 20; features a, b, c.
fn stump() -> Arc<dyn ModelRuntime> {
    Arc::new(
        compile(EnsembleSpec {
            source: "test",
            n_features: 3,
            n_outputs: 1,
            trees: vec![Tree {
                nodes: vec![
                    TreeNode::Split {
                        feature: 1,
                        test: Test::LessOrEqual(0.5),
                        missing: Missing::Left,
                        left: 1,
                        right: 2,
                        cover: 2.0,
                    },
                    TreeNode::Leaf {
                        values: vec![10.0],
                        cover: 1.0,
                    },
                    TreeNode::Leaf {
                        values: vec![20.0],
                        cover: 1.0,
                    },
                ],
                output: 0,
            }],
            base: vec![0.0],
            average: false,
            input_f32: false,
            accumulate_f32: false,
            link: Link::Identity,
            task: Task::Regression,
            feature_names: None,
            categories: None,
        })
        .unwrap(),
    )
}

fn columns(spec: &[(&str, DataType)]) -> InputSchema {
    InputSchema::Columns(
        spec.iter()
            .map(|(name, dtype)| ColumnSpec {
                name: name.to_string(),
                dtype: *dtype,
                required: true,
            })
            .collect(),
    )
}

fn col(name: &str, data: TensorData) -> NamedTensor {
    NamedTensor::new(name, Tensor::column(data))
}

fn predictions(outputs: Vec<NamedTensor>) -> Vec<f64> {
    match &outputs[0].tensor.data {
        TensorData::F64(v) => v.clone(),
        other => panic!("expected FP64 predictions, got {other:?}"),
    }
}

#[test]
fn named_columns_are_picked_in_signature_order_and_extras_ignored() {
    let model = Model::new(
        stump(),
        Some(columns(&[
            ("a", DataType::F64),
            ("b", DataType::F64),
            ("c", DataType::I64),
        ])),
    );
    let request = vec![
        col("extra", TensorData::Str(vec!["x".into(), "y".into()])),
        col("c", TensorData::I64(vec![1, 2])),
        col("b", TensorData::F64(vec![0.0, 0.9])),
        col("a", TensorData::F64(vec![5.0, 5.0])),
    ];
    assert_eq!(
        predictions(model.predict(request, Layout::Columns).unwrap()),
        vec![10.0, 20.0]
    );
}

#[test]
fn missing_features_are_all_named() {
    let model = Model::new(
        stump(),
        Some(columns(&[
            ("a", DataType::F64),
            ("b", DataType::F64),
            ("c", DataType::F64),
        ])),
    );
    let err = model
        .predict(vec![col("b", TensorData::F64(vec![0.0]))], Layout::Columns)
        .unwrap_err();
    assert!(
        matches!(&err, Error::Input(m) if m.contains("'a'") && m.contains("'c'") && !m.contains("'b'")),
        "{err}"
    );
}

#[test]
fn a_positional_matrix_must_have_the_model_width() {
    let model = Model::new(stump(), None);
    let ok = NamedTensor::new("input-0", Tensor::f64_matrix(1, 3, vec![0.0, 1.0, 0.0]));
    assert_eq!(
        predictions(model.predict(vec![ok], Layout::Tensors).unwrap()),
        vec![20.0]
    );
    let narrow = NamedTensor::new("input-0", Tensor::f64_matrix(1, 2, vec![0.0, 1.0]));
    let err = model.predict(vec![narrow], Layout::Tensors).unwrap_err();
    assert!(
        matches!(&err, Error::Input(m) if m.contains("2 columns") && m.contains("3 features")),
        "{err}"
    );
}

#[test]
fn types_are_enforced() {
    let model = Model::new(
        stump(),
        Some(columns(&[
            ("a", DataType::F64),
            ("b", DataType::I64),
            ("c", DataType::F64),
        ])),
    );
    let with = |b: TensorData| {
        vec![
            col("a", TensorData::F64(vec![1.0])),
            col("b", b),
            col("c", TensorData::F64(vec![1.0])),
        ]
    };
    // NaN in an integer column is refused; in a float column it is a missing value.
    let err = model
        .predict(with(TensorData::F64(vec![f64::NAN])), Layout::Columns)
        .unwrap_err();
    assert!(
        matches!(&err, Error::Input(m) if m.contains("'b'") && m.contains("NaN")),
        "{err}"
    );
    let err = model
        .predict(with(TensorData::Str(vec!["1".into()])), Layout::Columns)
        .unwrap_err();
    assert!(
        matches!(&err, Error::Input(m) if m.contains("'b'") && m.contains("numeric")),
        "{err}"
    );
    assert_eq!(
        predictions(
            model
                .predict(with(TensorData::Bool(vec![true])), Layout::Columns)
                .unwrap()
        ),
        vec![20.0]
    );
    let model = Model::new(
        stump(),
        Some(columns(&[
            ("a", DataType::F64),
            ("b", DataType::F64),
            ("c", DataType::F64),
        ])),
    );
    assert_eq!(
        predictions(
            model
                .predict(with(TensorData::F64(vec![f64::NAN])), Layout::Columns)
                .unwrap()
        ),
        vec![10.0]
    );
}

#[test]
fn ragged_requests_are_refused() {
    let model = Model::new(
        stump(),
        Some(columns(&[
            ("a", DataType::F64),
            ("b", DataType::F64),
            ("c", DataType::F64),
        ])),
    );
    let request = vec![
        col("a", TensorData::F64(vec![1.0, 2.0])),
        col("b", TensorData::F64(vec![1.0])),
        col("c", TensorData::F64(vec![1.0, 2.0])),
    ];
    let err = model.predict(request, Layout::Columns).unwrap_err();
    assert!(
        matches!(&err, Error::Input(m) if m.contains("number of rows")),
        "{err}"
    );
    assert!(model.predict(Vec::new(), Layout::Columns).is_err());
}

#[test]
fn the_default_output_follows_the_predict_fn() {
    let runtime = compile(EnsembleSpec {
        link: Link::Sigmoid { scale: 1.0 },
        task: Task::Classification(ClassLabels::indices(2)),
        ..single_leaf()
    })
    .unwrap();
    let model = Model::new(Arc::new(runtime), None);
    assert_eq!(model.default_output(), 0);
    assert_eq!(
        model
            .clone()
            .with_default_output("predict_proba")
            .default_output(),
        1
    );
    assert_eq!(model.with_default_output("nonsense").default_output(), 0);
}

fn single_leaf() -> EnsembleSpec {
    EnsembleSpec {
        source: "test",
        n_features: 1,
        n_outputs: 1,
        trees: vec![Tree {
            nodes: vec![TreeNode::Leaf {
                values: vec![0.5],
                cover: 1.0,
            }],
            output: 0,
        }],
        base: vec![0.0],
        average: false,
        input_f32: false,
        accumulate_f32: false,
        link: Link::Identity,
        task: Task::Regression,
        feature_names: None,
        categories: None,
    }
}
