use super::*;

/// `x0 <= 0.5` (left: leaf 1.0, right: `x1 < 2.0` → 2.0 / 3.0).
fn two_level(test: Test, missing: Missing) -> EnsembleSpec {
    EnsembleSpec {
        source: "test",
        n_features: 2,
        n_outputs: 1,
        trees: vec![Tree {
            nodes: vec![
                TreeNode::Split {
                    feature: 0,
                    test,
                    missing,
                    left: 1,
                    right: 2,
                    cover: 10.0,
                },
                TreeNode::Leaf {
                    values: vec![1.0],
                    cover: 4.0,
                },
                TreeNode::Split {
                    feature: 1,
                    test: Test::LessThan(2.0),
                    missing: Missing::Right,
                    left: 3,
                    right: 4,
                    cover: 6.0,
                },
                TreeNode::Leaf {
                    values: vec![2.0],
                    cover: 3.0,
                },
                TreeNode::Leaf {
                    values: vec![3.0],
                    cover: 3.0,
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
    }
}

#[track_caller]
fn check(spec: EnsembleSpec, rows: &[[f64; 2]], expected: &[f64]) {
    let ensemble = compile(spec).unwrap();
    let features: Vec<f64> = rows.iter().flatten().copied().collect();
    let mut out = vec![0.0; expected.len()];
    ensemble.predict_scores(&features, &mut out);
    assert_eq!(out, expected);
}

#[test]
fn comparisons_follow_each_library() {
    let rows = [[0.5, 1.0], [0.6, 1.0], [0.6, 2.0], [-1.0, 5.0]];
    check(
        two_level(Test::LessOrEqual(0.5), Missing::Right),
        &rows,
        &[1.0, 2.0, 3.0, 1.0],
    );
    check(
        two_level(Test::LessThan(0.5), Missing::Right),
        &rows,
        &[2.0, 2.0, 3.0, 1.0],
    );
}

#[test]
fn missing_values_take_the_node_rule() {
    let rows = [[f64::NAN, 1.0], [0.0, 1.0]];
    check(
        two_level(Test::LessOrEqual(0.5), Missing::Right),
        &rows,
        &[2.0, 1.0],
    );
    check(
        two_level(Test::LessOrEqual(0.5), Missing::Left),
        &rows,
        &[1.0, 1.0],
    );
    // NaN reads as zero: 0 <= -1 is false, so right.
    check(
        two_level(Test::LessOrEqual(-1.0), Missing::AsZero),
        &rows,
        &[2.0, 2.0],
    );
    check(
        two_level(Test::LessOrEqual(0.5), Missing::AsZero),
        &rows,
        &[1.0, 1.0],
    );
    // Zero and NaN both take the default direction, whatever the threshold.
    check(
        two_level(Test::LessOrEqual(-1.0), Missing::ZeroAndNan { left: true }),
        &rows,
        &[1.0, 1.0],
    );
    check(
        two_level(Test::LessOrEqual(5.0), Missing::ZeroAndNan { left: false }),
        &[[f64::NAN, 1.0], [0.0, 1.0], [1.0, 1.0]],
        &[2.0, 2.0, 1.0],
    );
}

#[test]
fn categorical_splits_test_set_membership() {
    let spec = two_level(Test::InSet(vec![1, 3, 40]), Missing::Right);
    let rows = [
        [1.0, 1.0],
        [2.0, 1.0],
        [40.0, 9.0],
        [41.0, 9.0],
        [-1.0, 1.0],
        [f64::NAN, 1.0],
    ];
    check(spec, &rows, &[1.0, 2.0, 1.0, 3.0, 2.0, 2.0]);
}

#[test]
fn f32_inputs_compare_after_rounding() {
    // Just above the threshold in f64, equal to it once rounded to f32.
    let threshold = 0.1f32 as f64;
    let x = threshold + 1e-12;
    let mut spec = two_level(Test::LessOrEqual(threshold), Missing::Right);
    check(spec.clone(), &[[x, 1.0]], &[2.0]);
    spec.input_f32 = true;
    check(spec, &[[x, 1.0]], &[1.0]);
}

#[test]
fn forests_average_and_boosting_adds_base() {
    let mut spec = two_level(Test::LessOrEqual(0.5), Missing::Right);
    spec.trees.push(spec.trees[0].clone());
    spec.base = vec![10.0];
    check(spec.clone(), &[[0.0, 0.0]], &[12.0]);
    spec.average = true;
    check(spec, &[[0.0, 0.0]], &[11.0]);
}

#[test]
fn classifiers_report_labels_and_probabilities() {
    let mut spec = two_level(Test::LessOrEqual(0.5), Missing::Right);
    spec.link = Link::Sigmoid { scale: 1.0 };
    spec.task = Task::Classification(ClassLabels::Str(vec!["no".into(), "yes".into()]));
    let ensemble = compile(spec).unwrap();
    let input = NamedTensor::new("input", Tensor::f64_matrix(2, 2, vec![0.0, 0.0, 1.0, 5.0]));
    let outputs = ensemble.predict(&[input]).unwrap();
    assert_eq!(
        outputs[0].tensor.data,
        TensorData::Str(vec!["yes".into(), "yes".into()])
    );
    let TensorData::F64(p) = &outputs[1].tensor.data else {
        panic!("probabilities are FP64")
    };
    let sigmoid = |m: f64| 1.0 / (1.0 + (-m).exp());
    assert_eq!(
        p,
        &vec![
            1.0 - sigmoid(1.0),
            sigmoid(1.0),
            1.0 - sigmoid(3.0),
            sigmoid(3.0)
        ]
    );
}

#[test]
fn multiclass_trees_add_to_their_class() {
    let leaf = |v: f64| Tree {
        nodes: vec![TreeNode::Leaf {
            values: vec![v],
            cover: 1.0,
        }],
        output: 0,
    };
    let mut trees = vec![leaf(1.0), leaf(2.0), leaf(3.0)];
    for (k, tree) in trees.iter_mut().enumerate() {
        tree.output = k;
    }
    let spec = EnsembleSpec {
        n_outputs: 3,
        trees,
        base: vec![0.0; 3],
        link: Link::Softmax,
        task: Task::Classification(ClassLabels::indices(3)),
        ..two_level(Test::LessThan(0.0), Missing::Right)
    };
    let ensemble = compile(spec).unwrap();
    let mut out = vec![0.0; 3];
    ensemble.predict_scores(&[0.0, 0.0], &mut out);
    let z: f64 = [1.0f64, 2.0, 3.0].iter().map(|v| (v - 3.0).exp()).sum();
    assert_eq!(out, vec![(-2.0f64).exp() / z, (-1.0f64).exp() / z, 1.0 / z]);
}

#[test]
fn malformed_trees_are_refused() {
    let mut spec = two_level(Test::LessOrEqual(0.5), Missing::Right);
    if let TreeNode::Split { right, .. } = &mut spec.trees[0].nodes[0] {
        *right = 0; // a cycle back to the root
    }
    assert!(matches!(compile(spec), Err(Error::InvalidModel(_))));
    let mut spec = two_level(Test::LessOrEqual(0.5), Missing::Right);
    if let TreeNode::Split { feature, .. } = &mut spec.trees[0].nodes[2] {
        *feature = 7;
    }
    assert!(matches!(compile(spec), Err(Error::InvalidModel(_))));
    let mut spec = two_level(Test::LessOrEqual(0.5), Missing::Right);
    if let TreeNode::Split { left, .. } = &mut spec.trees[0].nodes[0] {
        *left = 99;
    }
    assert!(matches!(compile(spec), Err(Error::InvalidModel(_))));
}
