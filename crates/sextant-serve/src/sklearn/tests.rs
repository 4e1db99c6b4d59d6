//! Recognising estimators and reading their attributes, on hand-made
//! pickles. Parity with scikit-learn itself is in `tests/it/sklearn.rs`.

use super::*;
use crate::pickle::builder::Bytes;
use crate::tensor::{NamedTensor, Tensor, TensorData};

#[track_caller]
fn unsupported(bytes: &[u8], expected: &str) {
    match from_pickle(bytes) {
        Err(Error::Unsupported(message)) => {
            assert!(
                message.contains(expected),
                "message {message:?} lacks {expected:?}"
            )
        }
        Err(other) => panic!("expected Unsupported, got {other}"),
        Ok(_) => panic!("loaded"),
    }
}

#[track_caller]
fn invalid(bytes: &[u8], expected: &str) {
    match from_pickle(bytes) {
        Err(Error::InvalidModel(message)) => {
            assert!(
                message.contains(expected),
                "message {message:?} lacks {expected:?}"
            )
        }
        Err(other) => panic!("expected InvalidModel, got {other}"),
        Ok(_) => panic!("loaded"),
    }
}

/// `LinearRegression` with two features; `coef` writes `coef_`.
fn linear_regression(coef: impl FnOnce(Bytes) -> Bytes) -> Vec<u8> {
    Bytes::proto(4)
        .object("sklearn.linear_model._base", "LinearRegression", |b| {
            coef(b.str("n_features_in_").int(2).str("coef_"))
                .str("intercept_")
                .raw(b"G")
                .raw(&0.5f64.to_be_bytes())
        })
        .stop()
}

#[test]
fn a_linear_regression_is_read_from_its_attributes() {
    let bytes = linear_regression(|b| b.f64_array(&[2.0, -1.0]));
    let runtime = from_pickle(&bytes).unwrap();
    assert_eq!(runtime.info().engine, "native-linear");
    let input = NamedTensor::new("input", Tensor::f64_matrix(1, 2, vec![1.0, 3.0]));
    let outputs = runtime.predict(&[input]).unwrap();
    assert_eq!(
        outputs[0].tensor.data,
        TensorData::F64(vec![2.0 - 3.0 + 0.5])
    );
}

#[test]
fn attributes_of_the_wrong_shape_or_type_are_invalid() {
    invalid(
        &linear_regression(|b| b.f64_array(&[1.0, 2.0, 3.0])),
        "LinearRegression.coef_",
    );
    invalid(
        &linear_regression(|b| b.str("not an array")),
        "LinearRegression.coef_",
    );
    // Fitted attributes missing: an unfitted estimator.
    let unfitted = Bytes::proto(4)
        .object("sklearn.tree._classes", "DecisionTreeClassifier", |b| {
            b.str("max_depth").int(3)
        })
        .stop();
    invalid(&unfitted, "DecisionTreeClassifier.n_features_in_: missing");
}

#[test]
fn anything_but_a_known_estimator_is_unsupported() {
    // A dict, an int: not estimators.
    unsupported(b"\x80\x04}.", "dict");
    unsupported(b"K\x01.", "int");
    // A class we do not run, and scikit-learn's name in another module (a
    // user subclass).
    let knn = Bytes::proto(4)
        .object(
            "sklearn.neighbors._classification",
            "KNeighborsClassifier",
            |b| b.str("n_neighbors").int(5),
        )
        .stop();
    unsupported(
        &knn,
        "sklearn.neighbors._classification.KNeighborsClassifier",
    );
    let subclass = Bytes::proto(4)
        .object("my_project.models", "LinearRegression", |b| {
            b.str("n_features_in_").int(2)
        })
        .stop();
    unsupported(&subclass, "my_project.models.LinearRegression");
    // An object whose class was itself built by a call (cloudpickle's
    // classes pickled by value).
    let dynamic = Bytes::proto(4)
        .global("cloudpickle.cloudpickle", "_make_skeleton_class")
        .op(b')')
        .op(b'R')
        .op(b')')
        .op(0x81)
        .op(b'}')
        .op(b'b')
        .stop();
    unsupported(&dynamic, "class defined in the training script");
}

#[test]
fn class_labels_keep_their_type_or_are_refused() {
    let labels = |bytes: Vec<u8>| {
        let pickle = pickle::parse(&bytes).unwrap();
        let array = numpy::ndarray(pickle.root()).unwrap();
        class_labels(&array)
    };
    let ints: Vec<u8> = [3i64, 7].iter().flat_map(|v| v.to_le_bytes()).collect();
    let bytes = Bytes::proto(4)
        .array(&[2], false, |b| b.dtype("i8", "<", -1), &ints)
        .stop();
    assert_eq!(labels(bytes).unwrap(), ClassLabels::Int(vec![3, 7]));

    let chars: Vec<u8> = ['n', 'o', 'y', 's']
        .iter()
        .flat_map(|&c| (c as u32).to_le_bytes())
        .collect();
    let bytes = Bytes::proto(4)
        .array(&[2], false, |b| b.dtype("U2", "<", 8), &chars)
        .stop();
    assert_eq!(
        labels(bytes).unwrap(),
        ClassLabels::Str(vec!["no".into(), "ys".into()])
    );

    // Whole floats (a target read as float) become integers.
    let bytes = Bytes::proto(4).f64_array(&[0.0, 1.0]).stop();
    assert_eq!(labels(bytes).unwrap(), ClassLabels::Int(vec![0, 1]));
    let bytes = Bytes::proto(4).f64_array(&[0.5, 1.0]).stop();
    assert!(matches!(labels(bytes), Err(Error::Unsupported(_))));

    let bytes = Bytes::proto(4)
        .array(&[2], false, |b| b.dtype("b1", "|", -1), &[0, 1])
        .stop();
    assert!(matches!(labels(bytes), Err(Error::Unsupported(_))));
    let bytes = Bytes::proto(4)
        .array(&[1, 2], false, |b| b.dtype("i8", "<", -1), &ints)
        .stop();
    assert!(matches!(labels(bytes), Err(Error::InvalidModel(_))));
}

#[test]
fn a_pipeline_that_contains_itself_is_invalid() {
    // p = Pipeline(); p.steps = [("p", p)]: memo entry 0 is the pipeline.
    let bytes = Bytes::proto(4)
        .global("sklearn.pipeline", "Pipeline")
        .op(b')')
        .op(0x81)
        .op(0x94)
        .op(b'}')
        .str("steps")
        .op(b']')
        .str("p")
        .raw(&[b'h', 0])
        .op(0x86)
        .op(b'a')
        .op(b's')
        .op(b'b')
        .stop();
    invalid(&bytes, "nested too deeply");
}
