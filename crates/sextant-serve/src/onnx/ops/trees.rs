//! The ai.onnx.ml tree ensembles (`TreeEnsembleClassifier`,
//! `TreeEnsembleRegressor`, and opset 5's `TreeEnsemble`), compiled into
//! the native tree engine ([`crate::trees`]).
//!
//! The engine only sums leaves; everything ONNX Runtime does around the
//! sums is reproduced here, from its `tree_ensemble_common.h` and
//! `tree_ensemble_aggregator.h` (CPU provider, `core/providers/cpu/ml/`),
//! because converters rely on its exact behaviour:
//!
//! - Trees: a new tree starts wherever the attributes' `tree_id` changes;
//!   its first node is its root. Leaf weights are matched to leaves by
//!   `(tree_id, node_id)`, in attribute order; weights on a split are
//!   ignored; a leaf without weights is an error.
//! - Precision: for `double` input, thresholds, sums and base values are
//!   `double`; for every other input type they are `float`, the input is
//!   compared as `float`, and the trees are summed in `float` in tree order
//!   starting from zero (the order of ONNX Runtime's single-threaded
//!   loop), so that sums agree to the bit. Scores come out as `float`.
//! - Comparisons: `x <= t` (BRANCH_LEQ), `<` (LT), `>=` (GTE), `>` (GT),
//!   `==` (EQ), `!=` (NEQ); NaN fails all but NEQ and takes the false
//!   branch unless the node's `missing_value_tracks_true` is set.
//!   Subtrees may be shared (onnxmltools writes LightGBM's categorical
//!   splits as chains of BRANCH_EQ nodes with one common true branch); the
//!   engine wants trees, so shared subtrees are copied. BRANCH_MEMBER is
//!   not supported.
//! - One target (regressors with `n_targets = 1`): each leaf contributes
//!   its first weight; the result is `sum (/ n_trees for AVERAGE) +
//!   base_values[0]` (when there is exactly one base value), and only
//!   PROBIT is applied.
//! - Several targets or classes: a class that no leaf of a row's trees
//!   weighs has "no score", which ONNX Runtime reads as 0 in its output.
//!   We decide which classes have a score at load time: a class has one on
//!   every row when one tree weighs it on all its leaves, on none when no
//!   leaf weighs it; models where it depends on the row are not supported.
//! - Classifiers with more than two classes add the base values, pick the
//!   first highest scored class, then apply the post-transform.
//! - Two classes follow ONNX Runtime's special cases: with weights for one
//!   class only (the "binary case", what every converter writes), the
//!   single score `s` gives the label (`s > 0.5` when all weights are
//!   positive, `s > 0` otherwise) and the pair `[1 - s, s]` (positive
//!   weights) or `[logistic(-s), logistic(s)]` (LOGISTIC) or `[-s, s]`.
//!
//! - Opset 5's `TreeEnsemble` is converted to the same form, as ONNX
//!   Runtime does (`tree_ensemble_attribute.h`), including its reading of
//!   `post_transform`: 1 is LOGISTIC and 2 SOFTMAX there, the reverse of
//!   the ONNX specification's numbering.
//!
//! Known differences: MIN and MAX aggregation are not supported. Several
//! weights of one leaf for the same class are summed before the trees are,
//! where ONNX Runtime adds them one at a time (the last bit can differ;
//! converters do not write such leaves).

use std::collections::HashMap;

use crate::error::{Error, Result};
use crate::onnx::ops::ml::{class_labels, label_type};
use crate::onnx::ops::numeric::Float;
use crate::onnx::ops::post_transform::{logistic, probit, PostTransform};
use crate::onnx::ops::{required, storage_error, tensor, Kernel, Lowered, NodeContext};
use crate::tensor::{DataType, Tensor, TensorData};
use crate::trees::{
    self, ClassLabels, EnsembleSpec, Link, Missing, Task, Test, Tree, TreeEnsemble, TreeNode,
};

/// A split's comparison; the true branch is taken when it holds.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Comparison {
    LessOrEqual,
    Less,
    GreaterOrEqual,
    Greater,
    Equal,
    NotEqual,
}

/// A node of one tree, in ONNX's terms, children as indices into the
/// tree's node list.
#[derive(Debug, Clone)]
enum OnnxNode {
    Split {
        feature: usize,
        comparison: Comparison,
        threshold: f64,
        missing_tracks_true: bool,
        if_true: usize,
        if_false: usize,
    },
    Leaf {
        /// `(target or class, weight)` in attribute order.
        weights: Vec<(usize, f64)>,
    },
}

type OnnxTree = Vec<OnnxNode>;

/// Whether input values are `float` (thresholds and sums in `f32`) or
/// `double`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Precision {
    Single,
    Double,
}

fn precision_of(dtype: DataType) -> Precision {
    if dtype == DataType::F64 {
        Precision::Double
    } else {
        Precision::Single
    }
}

/// A value of the ensemble's precision: `f32` values widened, or `f64`.
fn at_precision(value: f64, precision: Precision) -> f64 {
    match precision {
        Precision::Single => value as f32 as f64,
        Precision::Double => value,
    }
}

fn parse_mode(mode: &str) -> Result<Option<Comparison>> {
    Ok(Some(match mode {
        "LEAF" => return Ok(None),
        "BRANCH_LEQ" => Comparison::LessOrEqual,
        "BRANCH_LT" => Comparison::Less,
        "BRANCH_GTE" => Comparison::GreaterOrEqual,
        "BRANCH_GT" => Comparison::Greater,
        "BRANCH_EQ" => Comparison::Equal,
        "BRANCH_NEQ" => Comparison::NotEqual,
        other => return Err(Error::invalid(format!("unknown tree node mode '{other}'"))),
    }))
}

/// How many nodes the trees may have once shared subtrees are copied:
/// generous for categorical chains, and the bound that stops a cycle.
fn expansion_budget(attribute_nodes: usize) -> usize {
    attribute_nodes.saturating_mul(64).max(1 << 16)
}

fn expansion_error() -> Error {
    Error::invalid(
        "the tree nodes form a cycle, or share subtrees that would take too many nodes to copy",
    )
}

fn to_index(value: i64, what: &str) -> Result<usize> {
    usize::try_from(value).map_err(|_| Error::invalid(format!("negative {what} {value}")))
}

/// A float list attribute, or its `*_as_tensor` (double) form.
fn floats_or_tensor(ctx: &NodeContext<'_>, name: &str) -> Result<Option<Vec<f64>>> {
    if let Some(t) = ctx.tensor(&format!("{name}_as_tensor"))? {
        return Ok(Some(
            (0..t.len()).filter_map(|i| t.data.get_f64(i)).collect(),
        ));
    }
    Ok(ctx
        .floats(name)?
        .map(|v| v.into_iter().map(f64::from).collect()))
}

/// The trees of a `TreeEnsembleClassifier` or `TreeEnsembleRegressor`
/// (opsets 1 and 3). `prefix` is `class` or `target`.
fn trees_from_v1_attributes(ctx: &NodeContext<'_>, prefix: &str) -> Result<(Vec<OnnxTree>, usize)> {
    let ints = |name: &str| -> Result<Vec<i64>> { Ok(ctx.ints(name)?.unwrap_or_default()) };
    let tree_ids = ints("nodes_treeids")?;
    let node_ids = ints("nodes_nodeids")?;
    let feature_ids = ints("nodes_featureids")?;
    let true_ids = ints("nodes_truenodeids")?;
    let false_ids = ints("nodes_falsenodeids")?;
    let tracks = ints("nodes_missing_value_tracks_true")?;
    let modes = ctx.strings("nodes_modes")?.unwrap_or_default();
    let thresholds = floats_or_tensor(ctx, "nodes_values")?.unwrap_or_default();
    let n = tree_ids.len();
    if n == 0 {
        return Err(Error::invalid("a tree ensemble without nodes"));
    }
    for (name, len) in [
        ("nodes_nodeids", node_ids.len()),
        ("nodes_featureids", feature_ids.len()),
        ("nodes_truenodeids", true_ids.len()),
        ("nodes_falsenodeids", false_ids.len()),
        ("nodes_modes", modes.len()),
        ("nodes_values", thresholds.len()),
    ] {
        if len != n {
            return Err(Error::invalid(format!(
                "{name} has {len} entries for {n} nodes"
            )));
        }
    }
    let weight_ids = ints(&format!("{prefix}_ids"))?;
    let weight_tree_ids = ints(&format!("{prefix}_treeids"))?;
    let weight_node_ids = ints(&format!("{prefix}_nodeids"))?;
    let weights = floats_or_tensor(ctx, &format!("{prefix}_weights"))?.unwrap_or_default();
    let m = weight_ids.len();
    if weight_tree_ids.len() != m || weight_node_ids.len() != m || weights.len() != m {
        return Err(Error::invalid(format!(
            "the {prefix}_* attributes differ in length"
        )));
    }

    let mut position: HashMap<(i64, i64), usize> = HashMap::with_capacity(n);
    for i in 0..n {
        if position.insert((tree_ids[i], node_ids[i]), i).is_some() {
            return Err(Error::invalid(format!(
                "node {} of tree {} is defined twice",
                node_ids[i], tree_ids[i]
            )));
        }
    }
    let mut leaf_weights: Vec<Vec<(usize, f64)>> = vec![Vec::new(); n];
    // ONNX Runtime sorts the weights by (tree, node), keeping their
    // attribute order within a leaf.
    for j in 0..m {
        let at = position
            .get(&(weight_tree_ids[j], weight_node_ids[j]))
            .ok_or_else(|| {
                Error::invalid(format!(
                    "a weight refers to node {} of tree {}, which does not exist",
                    weight_node_ids[j], weight_tree_ids[j]
                ))
            })?;
        leaf_weights[*at].push((to_index(weight_ids[j], "class or target id")?, weights[j]));
    }
    let mut comparisons = Vec::with_capacity(n);
    for mode in &modes {
        comparisons.push(parse_mode(mode)?);
    }

    let mut max_feature = 0usize;
    let mut trees = Vec::new();
    let budget = expansion_budget(n);
    let mut expanded = 0usize;
    let mut start = 0;
    while start < n {
        let tree_id = tree_ids[start];
        let mut end = start;
        while end < n && tree_ids[end] == tree_id {
            end += 1;
        }
        // Walk the tree from its root, numbering nodes as they are reached
        // and copying shared subtrees.
        let mut nodes: Vec<Option<OnnxNode>> = vec![None];
        let mut pending = vec![(start, 0usize)];
        while let Some((at, slot)) = pending.pop() {
            max_feature = max_feature.max(to_index(feature_ids[at], "feature id")?);
            let node = match comparisons[at] {
                None => {
                    if leaf_weights[at].is_empty() {
                        return Err(Error::invalid(format!(
                            "leaf {} of tree {tree_id} has no weight",
                            node_ids[at]
                        )));
                    }
                    OnnxNode::Leaf {
                        weights: leaf_weights[at].clone(),
                    }
                }
                Some(comparison) => {
                    let mut child = |id: i64| -> Result<usize> {
                        let at_child = *position.get(&(tree_id, id)).ok_or_else(|| {
                            Error::invalid(format!(
                                "node {} of tree {tree_id} points to missing node {id}",
                                node_ids[at]
                            ))
                        })?;
                        expanded += 1;
                        if expanded > budget {
                            return Err(expansion_error());
                        }
                        let slot = nodes.len();
                        nodes.push(None);
                        pending.push((at_child, slot));
                        Ok(slot)
                    };
                    let if_true = child(true_ids[at])?;
                    let if_false = child(false_ids[at])?;
                    OnnxNode::Split {
                        feature: to_index(feature_ids[at], "feature id")?,
                        comparison,
                        threshold: thresholds[at],
                        missing_tracks_true: tracks.get(at).is_some_and(|&t| t == 1),
                        if_true,
                        if_false,
                    }
                }
            };
            nodes[slot] = Some(node);
        }
        trees.push(
            nodes
                .into_iter()
                .map(|n| n.expect("every reached node is filled"))
                .collect(),
        );
        start = end;
    }
    Ok((trees, max_feature + 1))
}

/// The trees of an opset-5 `TreeEnsemble`: `tree_roots` index the
/// `nodes_*` entries; `nodes_trueleafs`/`nodes_falseleafs` say whether a
/// child index points into `leaf_*`. A one-leaf tree is a root whose two
/// branches have the same index; ONNX Runtime then takes the leaf at the
/// root's own index (which is the same whenever nodes and leaves are
/// numbered alike), and so do we.
fn trees_from_v5_attributes(ctx: &NodeContext<'_>) -> Result<(Vec<OnnxTree>, usize)> {
    let ints = |name: &str| -> Result<Vec<i64>> { Ok(ctx.ints(name)?.unwrap_or_default()) };
    let roots = ints("tree_roots")?;
    let feature_ids = ints("nodes_featureids")?;
    let true_ids = ints("nodes_truenodeids")?;
    let false_ids = ints("nodes_falsenodeids")?;
    let true_leafs = ints("nodes_trueleafs")?;
    let false_leafs = ints("nodes_falseleafs")?;
    let tracks = ints("nodes_missing_value_tracks_true")?;
    let targets = ints("leaf_targetids")?;
    ctx.reject_attribute("membership_values", "BRANCH_MEMBER nodes are not supported")?;
    let tensor_values = |name: &str| -> Result<Vec<f64>> {
        let t = ctx
            .tensor(name)?
            .ok_or_else(|| Error::invalid(format!("TreeEnsemble needs {name}")))?;
        Ok((0..t.len()).filter_map(|i| t.data.get_f64(i)).collect())
    };
    let splits = tensor_values("nodes_splits")?;
    let weights = tensor_values("leaf_weights")?;
    let modes = tensor_values("nodes_modes")?;
    let n = feature_ids.len();
    for (name, len) in [
        ("nodes_truenodeids", true_ids.len()),
        ("nodes_falsenodeids", false_ids.len()),
        ("nodes_trueleafs", true_leafs.len()),
        ("nodes_falseleafs", false_leafs.len()),
        ("nodes_splits", splits.len()),
        ("nodes_modes", modes.len()),
    ] {
        if len != n {
            return Err(Error::invalid(format!(
                "{name} has {len} entries for {n} nodes"
            )));
        }
    }
    if targets.len() != weights.len() {
        return Err(Error::invalid(
            "leaf_targetids and leaf_weights differ in length",
        ));
    }
    let comparison = |code: f64| -> Result<Comparison> {
        Ok(match code as i64 {
            0 => Comparison::LessOrEqual,
            1 => Comparison::Less,
            2 => Comparison::GreaterOrEqual,
            3 => Comparison::Greater,
            4 => Comparison::Equal,
            5 => Comparison::NotEqual,
            6 => {
                return Err(Error::unsupported(
                    "TreeEnsemble nodes with mode BRANCH_MEMBER",
                ))
            }
            other => {
                return Err(Error::invalid(format!(
                    "unknown TreeEnsemble node mode {other}"
                )))
            }
        })
    };

    enum Pending {
        Node(usize),
        Leaf(usize),
    }
    let mut max_feature = 0usize;
    let mut trees = Vec::with_capacity(roots.len());
    let budget = expansion_budget(n + weights.len());
    let mut expanded = 0usize;
    for &root in &roots {
        let root = to_index(root, "tree root")?;
        if root >= n {
            return Err(Error::invalid(format!("tree root {root} of {n} nodes")));
        }
        let mut nodes: Vec<Option<OnnxNode>> = vec![None];
        let first = if true_ids[root] == false_ids[root] {
            Pending::Leaf(root)
        } else {
            Pending::Node(root)
        };
        let mut pending = vec![(first, 0usize)];
        while let Some((item, slot)) = pending.pop() {
            let node = match item {
                Pending::Leaf(leaf) => {
                    let weight = *weights.get(leaf).ok_or_else(|| {
                        Error::invalid(format!("leaf {leaf} of {}", weights.len()))
                    })?;
                    OnnxNode::Leaf {
                        weights: vec![(to_index(targets[leaf], "target id")?, weight)],
                    }
                }
                Pending::Node(at) => {
                    let feature = to_index(feature_ids[at], "feature id")?;
                    max_feature = max_feature.max(feature);
                    let mut child = |id: i64, is_leaf: i64| -> Result<usize> {
                        let id = to_index(id, "child index")?;
                        let item = if is_leaf != 0 {
                            Pending::Leaf(id)
                        } else if id < n {
                            Pending::Node(id)
                        } else {
                            return Err(Error::invalid(format!("child {id} of {n} nodes")));
                        };
                        expanded += 1;
                        if expanded > budget {
                            return Err(expansion_error());
                        }
                        let slot = nodes.len();
                        nodes.push(None);
                        pending.push((item, slot));
                        Ok(slot)
                    };
                    let if_true = child(true_ids[at], true_leafs[at])?;
                    let if_false = child(false_ids[at], false_leafs[at])?;
                    OnnxNode::Split {
                        feature,
                        comparison: comparison(modes[at])?,
                        threshold: splits[at],
                        missing_tracks_true: tracks.get(at).is_some_and(|&t| t == 1),
                        if_true,
                        if_false,
                    }
                }
            };
            nodes[slot] = Some(node);
        }
        trees.push(
            nodes
                .into_iter()
                .map(|n| n.expect("every reached node is filled"))
                .collect(),
        );
    }
    if trees.is_empty() {
        return Err(Error::invalid("a tree ensemble without trees"));
    }
    Ok((trees, max_feature + 1))
}

/// For each class or target: does it get a score on every row?
/// `Some(true)`: always (one tree weighs it on every leaf); `Some(false)`:
/// never (no leaf weighs it). `None`: it depends on the row.
fn score_presence(trees: &[OnnxTree], n_outputs: usize) -> Vec<Option<bool>> {
    let mut always = vec![false; n_outputs];
    let mut anywhere = vec![false; n_outputs];
    for tree in trees {
        let mut on_every_leaf = vec![true; n_outputs];
        for node in tree {
            if let OnnxNode::Leaf { weights } = node {
                let mut here = vec![false; n_outputs];
                for &(k, _) in weights {
                    here[k] = true;
                    anywhere[k] = true;
                }
                for (every, present) in on_every_leaf.iter_mut().zip(here) {
                    *every &= present;
                }
            }
        }
        for (a, every) in always.iter_mut().zip(on_every_leaf) {
            *a |= every;
        }
    }
    always
        .into_iter()
        .zip(anywhere)
        .map(|(a, any)| {
            if a {
                Some(true)
            } else if !any {
                Some(false)
            } else {
                None
            }
        })
        .collect()
}

/// Converts the trees into the engine's form and compiles them, as plain
/// sums (base values and averaging are applied by the kernels). With one
/// output each leaf contributes its first weight; with several, a leaf's
/// weights for one class are summed in the ensemble's precision, and a
/// tree whose leaves all weigh the same single class adds to that class
/// only.
fn compile(
    trees: &[OnnxTree],
    n_features: usize,
    n_outputs: usize,
    precision: Precision,
) -> Result<TreeEnsemble> {
    let mut engine_trees = Vec::with_capacity(trees.len());
    for tree in trees {
        let single_class = single_class_of(tree);
        let nodes = tree
            .iter()
            .map(|node| match node {
                OnnxNode::Split {
                    feature,
                    comparison,
                    threshold,
                    missing_tracks_true,
                    if_true,
                    if_false,
                } => {
                    let threshold = at_precision(*threshold, precision);
                    // The engine goes left when its test holds; `>=`, `>` and
                    // `!=` are the negations of `<`, `<=` and `==` for every
                    // value but NaN, so they swap the branches and the NaN
                    // direction.
                    let (test, left, right, nan_left) = match comparison {
                        Comparison::LessOrEqual => (
                            Test::LessOrEqual(threshold),
                            *if_true,
                            *if_false,
                            *missing_tracks_true,
                        ),
                        Comparison::Less => (
                            Test::LessThan(threshold),
                            *if_true,
                            *if_false,
                            *missing_tracks_true,
                        ),
                        Comparison::GreaterOrEqual => (
                            Test::LessThan(threshold),
                            *if_false,
                            *if_true,
                            !missing_tracks_true,
                        ),
                        Comparison::Greater => (
                            Test::LessOrEqual(threshold),
                            *if_false,
                            *if_true,
                            !missing_tracks_true,
                        ),
                        Comparison::Equal => (
                            Test::Equal(threshold),
                            *if_true,
                            *if_false,
                            *missing_tracks_true,
                        ),
                        // NaN != t holds: NaN always takes the true branch.
                        Comparison::NotEqual => {
                            (Test::Equal(threshold), *if_false, *if_true, false)
                        }
                    };
                    TreeNode::Split {
                        feature: *feature,
                        test,
                        missing: if nan_left {
                            Missing::Left
                        } else {
                            Missing::Right
                        },
                        left,
                        right,
                        cover: f64::NAN,
                    }
                }
                OnnxNode::Leaf { weights } => {
                    let values = if n_outputs == 1 {
                        vec![at_precision(weights[0].1, precision)]
                    } else if single_class.is_some() {
                        vec![sum_at_precision(weights.iter().map(|w| w.1), precision)]
                    } else {
                        let mut dense = vec![Vec::new(); n_outputs];
                        for &(k, w) in weights {
                            dense[k].push(w);
                        }
                        dense
                            .into_iter()
                            .map(|ws| sum_at_precision(ws.into_iter(), precision))
                            .collect()
                    };
                    TreeNode::Leaf {
                        values,
                        cover: f64::NAN,
                    }
                }
            })
            .collect();
        engine_trees.push(Tree {
            nodes,
            output: single_class.unwrap_or(0),
        });
    }
    let single = precision == Precision::Single;
    trees::compile(EnsembleSpec {
        source: "onnx",
        n_features,
        n_outputs,
        trees: engine_trees,
        base: vec![0.0; n_outputs],
        // ONNX Runtime divides every target by the number of trees, which
        // `finalize` does; the engine only sums.
        average: false,
        input_f32: single,
        accumulate_f32: single,
        link: Link::Identity,
        task: Task::Regression,
        feature_names: None,
        categories: None,
    })
}

/// The class every leaf of `tree` weighs, when all its leaves weigh
/// exactly that one class.
fn single_class_of(tree: &OnnxTree) -> Option<usize> {
    let mut class = None;
    for node in tree {
        if let OnnxNode::Leaf { weights } = node {
            let first = weights[0].0;
            if weights.iter().any(|w| w.0 != first) || class.is_some_and(|c| c != first) {
                return None;
            }
            class = Some(first);
        }
    }
    class
}

/// Sums weights in order from zero, in the ensemble's precision.
fn sum_at_precision(weights: impl Iterator<Item = f64>, precision: Precision) -> f64 {
    match precision {
        Precision::Single => weights.fold(0.0f32, |acc, w| acc + w as f32) as f64,
        Precision::Double => weights.fold(0.0f64, |acc, w| acc + w),
    }
}

/// The compiled trees plus what evaluation needs about the input.
struct Forest {
    ensemble: TreeEnsemble,
    /// Columns the input must have (ONNX Runtime counts every node's
    /// feature id, leaves included).
    required_columns: usize,
    precision: Precision,
}

impl Forest {
    /// The trees' sums (or averages) per row, `n_outputs` per row, exact
    /// `f32` values in single precision.
    fn sums(&self, x: &Tensor) -> Result<(usize, Vec<f64>)> {
        let (rows, columns) = match x.shape[..] {
            [columns] => (1, columns),
            [rows, columns] => (rows, columns),
            _ => {
                return Err(Error::input(format!(
                    "a tree ensemble takes a matrix, got shape {:?}",
                    x.shape
                )))
            }
        };
        if columns < self.required_columns {
            return Err(Error::input(format!(
                "the trees read feature {} but the input has {columns} columns",
                self.required_columns - 1
            )));
        }
        let n_features = self.ensemble.n_features();
        let mut sums = vec![0.0; rows * self.ensemble.n_outputs()];
        if rows == 0 {
            return Ok((rows, sums));
        }
        match &x.data {
            TensorData::F64(values) if columns == n_features => {
                self.ensemble.predict_margins(values, &mut sums)
            }
            data => {
                let mut features = Vec::with_capacity(rows * n_features);
                let used = columns.min(n_features);
                for row in 0..rows {
                    let range = row * columns..row * columns + used;
                    match data {
                        TensorData::F32(v) => features.extend(v[range].iter().map(|&e| e as f64)),
                        TensorData::F64(v) => features.extend_from_slice(&v[range]),
                        TensorData::I64(v) => features.extend(v[range].iter().map(|&e| e as f64)),
                        _ => return Err(storage_error("numeric", x)),
                    }
                    features.resize((row + 1) * n_features, 0.0);
                }
                self.ensemble.predict_margins(&features, &mut sums);
            }
        }
        Ok((rows, sums))
    }
}

const TREE_INPUTS: &[DataType] = &[DataType::F32, DataType::F64, DataType::I64, DataType::I32];

// --- TreeEnsembleClassifier ----------------------------------------------------------------

/// What a row's label is: a class, or (ONNX Runtime's two-class case
/// without the binary weights) the literal 1 or 0.
#[derive(Debug, Clone, Copy)]
enum Decision {
    Class(usize),
    Literal(usize),
}

struct TreeClassifier {
    forest: Forest,
    labels: ClassLabels,
    base: Vec<f64>,
    post_transform: PostTransform,
    /// Per class: gets a score on every row (see [`score_presence`]).
    scored: Vec<bool>,
    /// Two classes, weights for one class only.
    binary_case: bool,
    weights_all_positive: bool,
}

impl TreeClassifier {
    /// Every row's decision, its scores written to `scores`.
    fn finalize_rows<A: Float>(&self, sums: &[f64], scores: &mut [f32]) -> Vec<Decision> {
        let n = self.labels.len();
        let mut score = Vec::with_capacity(n);
        let mut has = Vec::with_capacity(n);
        sums.chunks_exact(n)
            .zip(scores.chunks_exact_mut(n))
            .map(|(row_sums, out)| self.finalize::<A>(row_sums, &mut score, &mut has, out))
            .collect()
    }

    /// One row: the decision, and the scores written to `out`. `score` and
    /// `has` are scratch space.
    fn finalize<A: Float>(
        &self,
        sums: &[f64],
        score: &mut Vec<A>,
        has: &mut Vec<bool>,
        out: &mut [f32],
    ) -> Decision {
        let n = sums.len();
        let base = |k: usize| A::from_f64(self.base[k]);
        score.clear();
        score.extend(sums.iter().map(|&s| A::from_f64(s)));
        has.clear();
        has.extend_from_slice(&self.scored);
        // What a score reads as when written out: 0 without a score.
        let shown = |s: A, has: bool| if has { s.to_f64() as f32 } else { 0.0 };
        if n > 2 {
            for k in 0..self.base.len() {
                score[k] = if has[k] { score[k] + base(k) } else { base(k) };
                has[k] = true;
            }
            let mut best: Option<usize> = None;
            for k in 0..n {
                if has[k] && best.is_none_or(|b| score[k] > score[b]) {
                    best = Some(k);
                }
            }
            for k in 0..n {
                out[k] = shown(score[k], has[k]);
            }
            self.post_transform.apply_to_row(out);
            // Load time makes sure some class always has a score.
            return Decision::Class(best.unwrap_or(0));
        }

        // Two classes: ONNX Runtime's binary special cases.
        let mut additional: i32 = -1;
        let mut width = 2;
        match self.base.len() {
            2 => {
                if has[1] {
                    // Base value 0 is ignored and class 0's raw score is
                    // used, as in ONNX Runtime.
                    score[1] = base(1) + score[0];
                    score[0] = -score[1];
                } else {
                    score[1] = score[1] + base(1);
                    score[0] = score[0] + base(0);
                }
            }
            1 => {
                score[0] = score[0] + base(0);
                if !has[1] {
                    width = 1;
                }
            }
            _ => {
                additional = 3;
                if !has[1] {
                    width = 1;
                }
            }
        }
        let positive = if width == 2 && has[1] {
            score[1]
        } else if has[0] {
            score[0]
        } else {
            A::ZERO
        };
        let decision = if self.binary_case {
            if self.weights_all_positive {
                if positive > A::from_f64(0.5) {
                    additional = 0;
                    Decision::Class(1)
                } else {
                    additional = 1;
                    Decision::Class(0)
                }
            } else if positive > A::ZERO {
                additional = 2;
                Decision::Class(1)
            } else {
                additional = 3;
                Decision::Class(0)
            }
        } else {
            Decision::Literal(usize::from(positive > A::ZERO))
        };
        if width == 2 {
            out[0] = shown(score[0], has[0]);
            out[1] = shown(score[1], has[1]);
            self.post_transform.apply_to_row(out);
        } else {
            let s = if has[0] { score[0] } else { A::ZERO };
            match additional {
                0 | 1 => {
                    out[0] = (A::ONE - s).to_f64() as f32;
                    out[1] = s.to_f64() as f32;
                }
                _ if self.post_transform == PostTransform::Logistic => {
                    out[0] = logistic((-s).to_f64() as f32);
                    out[1] = logistic(s.to_f64() as f32);
                }
                _ => {
                    out[0] = (-s).to_f64() as f32;
                    out[1] = s.to_f64() as f32;
                }
            }
        }
        decision
    }
}

impl Kernel for TreeClassifier {
    fn run(&self, inputs: &[Option<&Tensor>]) -> Result<Vec<Tensor>> {
        let x = required(inputs, 0)?;
        let (rows, sums) = self.forest.sums(x)?;
        let n = self.labels.len();
        let mut scores = vec![0.0f32; rows * n];
        let decisions = match self.forest.precision {
            Precision::Single => self.finalize_rows::<f32>(&sums, &mut scores),
            Precision::Double => self.finalize_rows::<f64>(&sums, &mut scores),
        };
        let labels = match &self.labels {
            ClassLabels::Int(labels) => TensorData::I64(
                decisions
                    .iter()
                    .map(|d| match *d {
                        Decision::Class(k) => labels[k],
                        Decision::Literal(v) => v as i64,
                    })
                    .collect(),
            ),
            // String labels: ONNX Runtime decides on class indices, so the
            // literals are indices too.
            ClassLabels::Str(labels) => TensorData::Str(
                decisions
                    .iter()
                    .map(|d| match *d {
                        Decision::Class(k) | Decision::Literal(k) => labels[k].clone(),
                    })
                    .collect(),
            ),
        };
        Ok(vec![
            tensor(label_type(&self.labels), vec![rows], labels),
            tensor(DataType::F32, vec![rows, n], TensorData::F32(scores)),
        ])
    }
}

fn presence_or_unsupported(trees: &[OnnxTree], n_outputs: usize) -> Result<Vec<bool>> {
    score_presence(trees, n_outputs)
        .into_iter()
        .enumerate()
        .map(|(k, presence)| {
            presence.ok_or_else(|| {
                Error::unsupported(format!(
                    "output {k} of the tree ensemble is weighed by some leaves of every tree but not all; \
                     ONNX Runtime's result then depends on which leaves a row reaches, which is not reproduced"
                ))
            })
        })
        .collect()
}

pub(crate) fn lower_tree_ensemble_classifier(ctx: &NodeContext<'_>) -> Result<Lowered> {
    ctx.expect_inputs(1..=1)?;
    let input = ctx.expect_type(0, TREE_INPUTS)?;
    let labels = class_labels(ctx, "classlabels_int64s", "classlabels_strings")?;
    let n = labels.len();
    if n < 2 {
        return Err(Error::unsupported(
            "a tree classifier with fewer than two classes",
        ));
    }
    let (trees, required_columns) = trees_from_v1_attributes(ctx, "class")?;
    let weighed_classes: Vec<usize> = {
        let mut classes: Vec<usize> = trees
            .iter()
            .flatten()
            .filter_map(|node| match node {
                OnnxNode::Leaf { weights } => Some(weights.iter().map(|w| w.0)),
                OnnxNode::Split { .. } => None,
            })
            .flatten()
            .collect();
        classes.sort_unstable();
        classes.dedup();
        classes
    };
    if let Some(&k) = weighed_classes.iter().find(|&&k| k >= n) {
        return Err(Error::invalid(format!("class id {k} of {n} classes")));
    }
    let precision = precision_of(input);
    let base: Vec<f64> = floats_or_tensor(ctx, "base_values")?
        .unwrap_or_default()
        .into_iter()
        .map(|b| at_precision(b, precision))
        .collect();
    if base.len() > n {
        return Err(Error::invalid(format!(
            "{} base values for {n} classes",
            base.len()
        )));
    }
    let post_transform = PostTransform::parse(&ctx.string_or("post_transform", "NONE")?)?;
    let scored = presence_or_unsupported(&trees, n)?;
    let all_weights = floats_or_tensor(ctx, "class_weights")?.unwrap_or_default();
    let weights_all_positive = all_weights.iter().all(|&w| w >= 0.0);
    let binary_case = n == 2 && weighed_classes.len() == 1;
    if n > 2 && base.is_empty() && !scored.iter().any(|&s| s) {
        return Err(Error::invalid(
            "no class of the tree classifier ever gets a score",
        ));
    }
    if n == 2 && base.len() != 2 && !scored[1] {
        // One score: ONNX Runtime writes only one column for PROBIT, and
        // only one when neither special case applies.
        let decided = binary_case || base.is_empty();
        if post_transform == PostTransform::Probit || !decided {
            return Err(Error::unsupported(
                "a two-class tree ensemble whose second score ONNX Runtime leaves unset",
            ));
        }
    }
    let forest = Forest {
        ensemble: compile(&trees, required_columns, n, precision)?,
        required_columns,
        precision,
    };
    let label_dtype = label_type(&labels);
    Ok(Lowered::kernel(
        TreeClassifier {
            forest,
            labels,
            base,
            post_transform,
            scored,
            binary_case,
            weights_all_positive,
        },
        vec![label_dtype, DataType::F32],
    ))
}

// --- TreeEnsembleRegressor and TreeEnsemble -------------------------------------------------

struct TreeRegressor {
    forest: Forest,
    n_targets: usize,
    /// AVERAGE: divide the sums by the number of trees.
    average_over: Option<usize>,
    base: Vec<f64>,
    post_transform: PostTransform,
    scored: Vec<bool>,
}

impl TreeRegressor {
    fn finalize<A: Float>(&self, sums: &[f64], out: &mut [f32]) {
        let total = |k: usize| match self.average_over {
            Some(n_trees) => A::from_f64(sums[k]) / A::from_i64(n_trees as i64),
            None => A::from_f64(sums[k]),
        };
        if self.n_targets == 1 {
            let origin = if self.base.len() == 1 {
                A::from_f64(self.base[0])
            } else {
                A::ZERO
            };
            let value = total(0) + origin;
            out[0] = if self.post_transform == PostTransform::Probit {
                probit(value.to_f64() as f32)
            } else {
                value.to_f64() as f32
            };
            return;
        }
        let use_base = self.base.len() == self.n_targets;
        for (k, target) in out.iter_mut().enumerate().take(self.n_targets) {
            let mut value = total(k);
            if use_base {
                value = value + A::from_f64(self.base[k]);
            }
            // A target without a score reads as 0, base value or not.
            *target = if self.scored[k] {
                value.to_f64() as f32
            } else {
                0.0
            };
        }
        self.post_transform.apply_to_row(out);
    }
}

impl Kernel for TreeRegressor {
    fn run(&self, inputs: &[Option<&Tensor>]) -> Result<Vec<Tensor>> {
        let x = required(inputs, 0)?;
        let (rows, sums) = self.forest.sums(x)?;
        let n = self.n_targets;
        let mut out = vec![0.0f32; rows * n];
        for (row_sums, row_out) in sums.chunks_exact(n).zip(out.chunks_exact_mut(n)) {
            match self.forest.precision {
                Precision::Single => self.finalize::<f32>(row_sums, row_out),
                Precision::Double => self.finalize::<f64>(row_sums, row_out),
            }
        }
        Ok(vec![tensor(
            DataType::F32,
            vec![rows, n],
            TensorData::F32(out),
        )])
    }
}

#[allow(clippy::too_many_arguments)]
fn regressor(
    trees: Vec<OnnxTree>,
    required_columns: usize,
    input: DataType,
    n_targets: usize,
    base: Vec<f64>,
    post_transform: PostTransform,
    average: bool,
) -> Result<Lowered> {
    if n_targets == 0 {
        return Err(Error::invalid("a tree regressor with n_targets = 0"));
    }
    for tree in &trees {
        for node in tree {
            if let OnnxNode::Leaf { weights } = node {
                if let Some(&(k, _)) = weights.iter().find(|w| w.0 >= n_targets) {
                    return Err(Error::invalid(format!(
                        "target id {k} of {n_targets} targets"
                    )));
                }
            }
        }
    }
    let precision = precision_of(input);
    let base = base
        .into_iter()
        .map(|b| at_precision(b, precision))
        .collect();
    let scored = if n_targets == 1 {
        vec![true]
    } else {
        presence_or_unsupported(&trees, n_targets)?
    };
    let forest = Forest {
        ensemble: compile(&trees, required_columns, n_targets, precision)?,
        required_columns,
        precision,
    };
    Ok(Lowered::kernel(
        TreeRegressor {
            forest,
            n_targets,
            average_over: average.then_some(trees.len()),
            base,
            post_transform,
            scored,
        },
        vec![DataType::F32],
    ))
}

fn aggregate_is_average(name: &str) -> Result<bool> {
    match name {
        "SUM" => Ok(false),
        "AVERAGE" => Ok(true),
        "MIN" | "MAX" => Err(Error::unsupported(format!(
            "tree ensembles with aggregate_function {name}"
        ))),
        other => Err(Error::invalid(format!(
            "unknown aggregate_function '{other}'"
        ))),
    }
}

pub(crate) fn lower_tree_ensemble_regressor(ctx: &NodeContext<'_>) -> Result<Lowered> {
    ctx.expect_inputs(1..=1)?;
    // ONNX Runtime registers the regressor for float and double only.
    let input = ctx.expect_type(0, &[DataType::F32, DataType::F64])?;
    let average = aggregate_is_average(&ctx.string_or("aggregate_function", "SUM")?)?;
    let n_targets = to_index(ctx.int_or("n_targets", 0)?, "n_targets")?;
    let (trees, required_columns) = trees_from_v1_attributes(ctx, "target")?;
    let base = floats_or_tensor(ctx, "base_values")?.unwrap_or_default();
    let post_transform = PostTransform::parse(&ctx.string_or("post_transform", "NONE")?)?;
    regressor(
        trees,
        required_columns,
        input,
        n_targets,
        base,
        post_transform,
        average,
    )
}

pub(crate) fn lower_tree_ensemble(ctx: &NodeContext<'_>) -> Result<Lowered> {
    ctx.expect_inputs(1..=1)?;
    let input = ctx.expect_type(0, &[DataType::F32, DataType::F64])?;
    let average = match ctx.int_or("aggregate_function", 1)? {
        0 => true,
        1 => false,
        2 | 3 => {
            return Err(Error::unsupported(
                "TreeEnsemble with aggregate_function MIN or MAX",
            ))
        }
        other => {
            return Err(Error::invalid(format!(
                "unknown aggregate_function {other}"
            )))
        }
    };
    // The ONNX specification numbers SOFTMAX 1 and LOGISTIC 2; ONNX Runtime
    // (1.32) reads the number as its own enumeration, where LOGISTIC is 1
    // and SOFTMAX 2. Models are checked against ONNX Runtime, so we read
    // them its way.
    let post_transform = match ctx.int_or("post_transform", 0)? {
        0 => PostTransform::None,
        1 => PostTransform::Logistic,
        2 => PostTransform::Softmax,
        3 => PostTransform::SoftmaxZero,
        4 => PostTransform::Probit,
        other => return Err(Error::invalid(format!("unknown post_transform {other}"))),
    };
    let n_targets = to_index(ctx.int_or("n_targets", 0)?, "n_targets")?;
    let (trees, required_columns) = trees_from_v5_attributes(ctx)?;
    regressor(
        trees,
        required_columns,
        input,
        n_targets,
        Vec::new(),
        post_transform,
        average,
    )
}
