//! scikit-learn tree models read from their pickles.
//!
//! Each rule below is scikit-learn's own (version 1.9; the file it comes
//! from is named where it is used):
//! - a fitted `Tree` (`sklearn/tree/_tree.pyx`) pickles as
//!   `Tree(n_features, n_classes, n_outputs)` with the state `{max_depth,
//!   node_count, nodes, values}`: `nodes` is a structured array with fields
//!   `left_child`, `right_child`, `feature`, `threshold`, `impurity`,
//!   `n_node_samples`, `weighted_n_node_samples` and, since 1.3,
//!   `missing_go_to_left`; a leaf has `left_child == -1` (`_TREE_LEAF`);
//!   `values` has shape `(node_count, n_outputs, max_n_classes)`;
//! - `Tree.apply` casts X to float32, sends NaN to the side
//!   `missing_go_to_left` names and goes left when `x <= threshold`;
//! - a decision tree classifier's `predict_proba` is the leaf's row of
//!   `values` (class fractions since 1.4; older versions stored weighted
//!   counts and divided by their sum, which is what we do when a leaf does
//!   not sum to one), `predict` the `classes_` entry of its argmax;
//! - forests (`ensemble/_forest.py`) add the trees' `predict_proba` (or
//!   `predict`) in order, then divide by the number of trees;
//! - gradient boosting (`ensemble/_gb.py`, `_gradient_boosting.pyx`)
//!   starts from the `init_` estimator's prediction through the loss's link
//!   and adds `learning_rate * value` of each stage's tree per class; its
//!   trees ignore `missing_go_to_left` (NaN fails `x <= threshold` and goes
//!   right);
//! - histogram gradient boosting (`ensemble/_hist_gradient_boosting/`)
//!   compares float64 inputs with `num_threshold`, sends NaN to the side
//!   `missing_go_to_left` names, starts from `_baseline_prediction` and
//!   applies the inverse link of its loss.

use crate::error::{Error, Result};
use crate::pickle::numpy::{self, NdArray};
use crate::pickle::Node;
use crate::sklearn::Estimator;
use crate::trees::{ClassLabels, EnsembleSpec, Link, Missing, Task, Test, Tree, TreeNode};

/// The tree estimators this module reads.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TreeModel {
    /// `DecisionTree*` and `ExtraTree*`.
    SingleTree {
        classifier: bool,
    },
    /// `RandomForest*` and `ExtraTrees*`.
    Forest {
        classifier: bool,
    },
    GradientBoosting {
        classifier: bool,
    },
    HistGradientBoosting {
        classifier: bool,
    },
}

impl TreeModel {
    pub fn from_estimator(estimator: &Estimator<'_>) -> Option<TreeModel> {
        Some(match estimator.sklearn_name()? {
            "DecisionTreeClassifier" | "ExtraTreeClassifier" => {
                TreeModel::SingleTree { classifier: true }
            }
            "DecisionTreeRegressor" | "ExtraTreeRegressor" => {
                TreeModel::SingleTree { classifier: false }
            }
            "RandomForestClassifier" | "ExtraTreesClassifier" => {
                TreeModel::Forest { classifier: true }
            }
            "RandomForestRegressor" | "ExtraTreesRegressor" => {
                TreeModel::Forest { classifier: false }
            }
            "GradientBoostingClassifier" => TreeModel::GradientBoosting { classifier: true },
            "GradientBoostingRegressor" => TreeModel::GradientBoosting { classifier: false },
            "HistGradientBoostingClassifier" => {
                TreeModel::HistGradientBoosting { classifier: true }
            }
            "HistGradientBoostingRegressor" => {
                TreeModel::HistGradientBoosting { classifier: false }
            }
            _ => return None,
        })
    }
}

/// Describes a fitted tree estimator as an ensemble.
pub fn ensemble_spec(estimator: &Estimator<'_>, model: TreeModel) -> Result<EnsembleSpec> {
    match model {
        TreeModel::SingleTree { classifier } => forest(estimator, &[*estimator], classifier, false),
        TreeModel::Forest { classifier } => {
            let trees = estimator_list(estimator, "estimators_")?;
            forest(estimator, &trees, classifier, true)
        }
        TreeModel::GradientBoosting { classifier } => gradient_boosting(estimator, classifier),
        TreeModel::HistGradientBoosting { classifier } => {
            hist_gradient_boosting(estimator, classifier)
        }
    }
}

/// The estimators in a list attribute (a forest's `estimators_`).
fn estimator_list<'p>(estimator: &Estimator<'p>, attribute: &str) -> Result<Vec<Estimator<'p>>> {
    let list = estimator.require(attribute)?;
    let items = list.as_list().ok_or_else(|| {
        Error::invalid(format!(
            "{}.{attribute}: expected a list, found {}",
            estimator.name(),
            list.describe()
        ))
    })?;
    items.iter().map(Estimator::new).collect()
}

// --- Decision trees and forests --------------------------------------------------------

/// A single tree (`trees` holds the estimator itself, `average` false) or
/// a forest of them.
fn forest(
    estimator: &Estimator<'_>,
    trees: &[Estimator<'_>],
    classifier: bool,
    average: bool,
) -> Result<EnsembleSpec> {
    let n_features = estimator.n_features()?;
    let n_outputs = estimator.count("n_outputs_")?;
    let (task, width) = if classifier {
        if n_outputs != 1 {
            return Err(Error::unsupported(format!(
                "{} with {n_outputs} outputs (multi-output classification)",
                estimator.name()
            )));
        }
        let labels = estimator.classes()?;
        let width = labels.len();
        (Task::Classification(labels), width)
    } else {
        (Task::Regression, n_outputs)
    };
    let mut spec_trees = Vec::with_capacity(trees.len());
    for (index, tree_estimator) in trees.iter().enumerate() {
        let arrays = TreeArrays::read(tree_estimator.require("tree_")?)
            .map_err(|e| in_tree(estimator, index, e))?;
        let tree = if classifier {
            arrays.to_tree(learned_direction, |node| {
                arrays.class_distribution(node, width)
            })
        } else {
            arrays.to_tree(learned_direction, |node| {
                arrays.regression_values(node, n_outputs, 1.0)
            })
        }
        .map_err(|e| in_tree(estimator, index, e))?;
        spec_trees.push(tree);
    }
    Ok(EnsembleSpec {
        source: "sklearn",
        n_features,
        n_outputs: width,
        trees: spec_trees,
        base: vec![0.0; width],
        average,
        input_f32: true,
        accumulate_f32: false,
        link: Link::Identity,
        task,
        feature_names: estimator.feature_names()?,
        categories: None,
    })
}

fn in_tree(estimator: &Estimator<'_>, index: usize, error: Error) -> Error {
    match error {
        Error::InvalidModel(message) => {
            Error::invalid(format!("{} tree {index}: {message}", estimator.name()))
        }
        other => other,
    }
}

/// A node's `missing_go_to_left`, as `Tree.apply` and the histogram
/// predictor read it.
fn learned_direction(go_left: bool) -> Missing {
    if go_left {
        Missing::Left
    } else {
        Missing::Right
    }
}

/// Gradient boosting's `predict_stages` tests `x <= threshold` only, so
/// NaN goes right whatever the node says.
fn always_right(_go_left: bool) -> Missing {
    Missing::Right
}

/// The arrays of a pickled `sklearn.tree._tree.Tree`.
struct TreeArrays {
    left: Vec<i64>,
    right: Vec<i64>,
    feature: Vec<i64>,
    threshold: Vec<f64>,
    cover: Vec<f64>,
    /// All false for trees pickled before scikit-learn 1.3.
    missing_go_to_left: Vec<bool>,
    /// `(node_count, n_outputs, max_n_classes)`, flattened.
    values: Vec<f64>,
    n_outputs: usize,
    max_n_classes: usize,
}

/// `Tree` stores children as indices, `-1` for "none".
const TREE_LEAF: i64 = -1;

impl TreeArrays {
    fn read(tree: Node<'_>) -> Result<TreeArrays> {
        let object = tree
            .as_object()
            .filter(|o| {
                o.class()
                    .is_some_and(|g| g.name == "Tree" && g.module.starts_with("sklearn.tree"))
            })
            .ok_or_else(|| {
                Error::invalid(format!("tree_ is {}, not a sklearn Tree", tree.describe()))
            })?;
        let args = object.args();
        let n_outputs = args
            .get(2)
            .and_then(numpy::as_i64)
            .and_then(|n| usize::try_from(n).ok())
            .filter(|&n| n > 0)
            .ok_or_else(|| Error::invalid("Tree without a valid n_outputs argument"))?;
        let state = object
            .attributes()
            .ok_or_else(|| Error::invalid("Tree without its state dict"))?;
        let field = |name: &str| {
            state
                .get(name)
                .ok_or_else(|| Error::invalid(format!("Tree state has no {name:?}")))
        };
        let nodes = numpy::ndarray(field("nodes")?)?;
        let values = numpy::ndarray(field("values")?)?;
        let node_count = numpy::as_i64(field("node_count")?)
            .and_then(|n| usize::try_from(n).ok())
            .ok_or_else(|| Error::invalid("Tree node_count is not a count"))?;
        if nodes.shape != [node_count] || node_count == 0 {
            return Err(Error::invalid(format!(
                "Tree of {node_count} nodes with a nodes array of shape {:?}",
                nodes.shape
            )));
        }
        let [value_nodes, value_outputs, max_n_classes] = values.shape[..] else {
            return Err(Error::invalid(format!(
                "Tree values of shape {:?}",
                values.shape
            )));
        };
        if value_nodes != node_count || value_outputs != n_outputs || max_n_classes == 0 {
            return Err(Error::invalid(format!(
                "Tree values of shape {:?} for {node_count} nodes and {n_outputs} outputs",
                values.shape
            )));
        }
        let integers = |array: &NdArray<'_>, name: &str| array.field(name)?.to_i64();
        let floats = |array: &NdArray<'_>, name: &str| array.field(name)?.to_f64();
        let missing_go_to_left = if nodes.has_field("missing_go_to_left") {
            integers(&nodes, "missing_go_to_left")?
                .iter()
                .map(|&m| m != 0)
                .collect()
        } else {
            vec![false; node_count]
        };
        Ok(TreeArrays {
            left: integers(&nodes, "left_child")?,
            right: integers(&nodes, "right_child")?,
            feature: integers(&nodes, "feature")?,
            threshold: floats(&nodes, "threshold")?,
            cover: floats(&nodes, "weighted_n_node_samples")?,
            missing_go_to_left,
            values: values.to_f64()?,
            n_outputs,
            max_n_classes,
        })
    }

    /// `values[node, output, class]`.
    fn value(&self, node: usize, output: usize, class: usize) -> f64 {
        self.values[(node * self.n_outputs + output) * self.max_n_classes + class]
    }

    /// The leaf's class distribution, as `DecisionTreeClassifier
    /// .predict_proba` returns it: the first `n_classes` values of the
    /// leaf; divided by their sum when they do not already sum to one
    /// (weighted counts, as pickles before 1.4 store them).
    fn class_distribution(&self, node: usize, n_classes: usize) -> Result<Vec<f64>> {
        if n_classes > self.max_n_classes {
            return Err(Error::invalid(format!(
                "{n_classes} classes for a tree with {} value columns",
                self.max_n_classes
            )));
        }
        let mut values: Vec<f64> = (0..n_classes)
            .map(|class| self.value(node, 0, class))
            .collect();
        let sum: f64 = values.iter().sum();
        if (sum - 1.0).abs() > 1e-9 && sum != 0.0 {
            for v in values.iter_mut() {
                *v /= sum;
            }
        }
        Ok(values)
    }

    /// The leaf's value per output, times `scale`.
    fn regression_values(&self, node: usize, n_outputs: usize, scale: f64) -> Result<Vec<f64>> {
        if n_outputs != self.n_outputs {
            return Err(Error::invalid(format!(
                "tree with {} outputs in an estimator with {n_outputs}",
                self.n_outputs
            )));
        }
        Ok((0..n_outputs)
            .map(|output| scale * self.value(node, output, 0))
            .collect())
    }

    fn to_tree(
        &self,
        missing: impl Fn(bool) -> Missing,
        leaf_values: impl Fn(usize) -> Result<Vec<f64>>,
    ) -> Result<Tree> {
        let node_count = self.left.len();
        let child = |index: i64| {
            usize::try_from(index)
                .ok()
                .filter(|&i| i < node_count)
                .ok_or_else(|| Error::invalid(format!("child index {index} of {node_count} nodes")))
        };
        let mut nodes = Vec::with_capacity(node_count);
        for node in 0..node_count {
            let cover = self.cover[node];
            if self.left[node] == TREE_LEAF {
                nodes.push(TreeNode::Leaf {
                    values: leaf_values(node)?,
                    cover,
                });
                continue;
            }
            let feature = usize::try_from(self.feature[node])
                .map_err(|_| Error::invalid(format!("split on feature {}", self.feature[node])))?;
            nodes.push(TreeNode::Split {
                feature,
                test: Test::LessOrEqual(self.threshold[node]),
                missing: missing(self.missing_go_to_left[node]),
                left: child(self.left[node])?,
                right: child(self.right[node])?,
                cover,
            });
        }
        Ok(Tree { nodes, output: 0 })
    }
}

// --- Gradient boosting -----------------------------------------------------------------

/// The link of a scikit-learn loss (`sklearn/_loss/link.py`), read from the
/// pickled loss object's `link` attribute.
#[derive(Debug, Clone, Copy, PartialEq)]
enum LossLink {
    Identity,
    Log,
    /// `logit`; inverse `expit`.
    Logit,
    /// `logit / 2`; inverse `expit(2 x)` (the exponential loss).
    HalfLogit,
    /// The symmetric multinomial logit; inverse softmax.
    MultinomialLogit,
}

fn loss_link(estimator: &Estimator<'_>) -> Result<LossLink> {
    let loss = estimator.child("_loss").map_err(|_| {
        Error::unsupported(format!(
            "{} without a _loss object (pickled by scikit-learn before 1.1?)",
            estimator.name()
        ))
    })?;
    // Links have no attributes, so they pickle as a bare class instance.
    let link = loss.require("link")?;
    let class = link
        .as_object()
        .and_then(|object| object.class())
        .filter(|class| class.module.starts_with("sklearn."))
        .ok_or_else(|| {
            Error::unsupported(format!(
                "{} with the loss link {}",
                estimator.name(),
                link.describe()
            ))
        })?;
    Ok(match class.name.as_str() {
        "IdentityLink" => LossLink::Identity,
        "LogLink" => LossLink::Log,
        "LogitLink" => LossLink::Logit,
        "HalfLogitLink" => LossLink::HalfLogit,
        "MultinomialLogit" => LossLink::MultinomialLogit,
        _ => {
            return Err(Error::unsupported(format!(
                "{} with the loss link {class}",
                estimator.name()
            )))
        }
    })
}

/// The engine's link for a classifier's probabilities or a regressor's
/// prediction.
fn engine_link(
    estimator: &Estimator<'_>,
    link: LossLink,
    classifier: bool,
    n_outputs: usize,
) -> Result<Link> {
    Ok(match (classifier, link, n_outputs) {
        (true, LossLink::Logit, 1) => Link::Sigmoid { scale: 1.0 },
        (true, LossLink::HalfLogit, 1) => Link::Sigmoid { scale: 2.0 },
        (true, LossLink::MultinomialLogit, n) if n > 1 => Link::Softmax,
        (false, LossLink::Identity, 1) => Link::Identity,
        (false, LossLink::Log, 1) => Link::Exp,
        _ => {
            return Err(Error::invalid(format!(
                "{} with link {link:?} and {n_outputs} trees per iteration",
                estimator.name()
            )))
        }
    })
}

fn gradient_boosting(estimator: &Estimator<'_>, classifier: bool) -> Result<EnsembleSpec> {
    let n_features = estimator.n_features()?;
    let learning_rate = estimator.float("learning_rate")?;
    let stages = estimator.array("estimators_")?;
    let [n_stages, per_stage] = stages.shape[..] else {
        return Err(Error::invalid(format!(
            "{} estimators_ of shape {:?}",
            estimator.name(),
            stages.shape
        )));
    };
    let stage_trees = stages.objects().ok_or_else(|| {
        Error::invalid(format!(
            "{} estimators_ is not an object array",
            estimator.name()
        ))
    })?;
    let loss = loss_link(estimator)?;
    let (task, link) = if classifier {
        let labels = estimator.classes()?;
        let expected = if labels.len() == 2 { 1 } else { labels.len() };
        if per_stage != expected {
            return Err(Error::invalid(format!(
                "GradientBoostingClassifier with {} classes and {per_stage} trees per stage",
                labels.len()
            )));
        }
        (
            Task::Classification(labels),
            engine_link(estimator, loss, true, per_stage)?,
        )
    } else {
        // `GradientBoostingRegressor.predict` returns the raw prediction:
        // every regression loss it offers has the identity link.
        if per_stage != 1 || loss != LossLink::Identity {
            return Err(Error::unsupported(format!(
                "GradientBoostingRegressor with link {loss:?} and {per_stage} trees per stage"
            )));
        }
        (Task::Regression, Link::Identity)
    };
    let base = gradient_boosting_init(estimator, loss, per_stage)?;
    let mut trees = Vec::with_capacity(n_stages * per_stage);
    for (index, tree) in stage_trees.iter().enumerate() {
        let tree = Estimator::new(*tree)?;
        let arrays =
            TreeArrays::read(tree.require("tree_")?).map_err(|e| in_tree(estimator, index, e))?;
        // `predict_stages` adds `scale * value` with `scale` the learning
        // rate: the same product, so the same bits.
        let mut spec_tree = arrays
            .to_tree(always_right, |node| {
                arrays.regression_values(node, 1, learning_rate)
            })
            .map_err(|e| in_tree(estimator, index, e))?;
        // `estimators_[stage, k]`, flattened in C order.
        spec_tree.output = index % per_stage;
        trees.push(spec_tree);
    }
    Ok(EnsembleSpec {
        source: "sklearn",
        n_features,
        n_outputs: per_stage,
        trees,
        base,
        average: false,
        input_f32: true,
        accumulate_f32: false,
        link,
        task,
        feature_names: estimator.feature_names()?,
        categories: None,
    })
}

/// The raw prediction of `init_`, constant for the dummy estimators that
/// scikit-learn uses by default (`_init_raw_predictions` in `_gb.py`): the
/// init's `predict_proba` (the positive class only when binary), clipped to
/// `[eps, 1 - eps]` with float64's epsilon, through the loss's link; or the
/// init regressor's `predict`; or zeros for `init="zero"`.
fn gradient_boosting_init(
    estimator: &Estimator<'_>,
    link: LossLink,
    n_outputs: usize,
) -> Result<Vec<f64>> {
    let init = estimator.require("init_")?;
    if init.as_str() == Some("zero") {
        return Ok(vec![0.0; n_outputs]);
    }
    let init = Estimator::new(init)?;
    let clipped_proba = || -> Result<Vec<f64>> {
        let eps = f64::EPSILON;
        let proba = dummy_classifier_proba(&init)?;
        Ok(proba.iter().map(|p| p.clamp(eps, 1.0 - eps)).collect())
    };
    let raw = match (init.sklearn_name(), link) {
        (Some("DummyRegressor"), LossLink::Identity) => init.floats("constant_")?.0,
        (Some("DummyClassifier"), LossLink::Logit | LossLink::HalfLogit) => {
            let [_, positive] = clipped_proba()?[..] else {
                return Err(Error::invalid("binary init_ without two class priors"));
            };
            // `HalfLogitLink.link` is half the logit.
            let scale = if link == LossLink::HalfLogit {
                0.5
            } else {
                1.0
            };
            vec![scale * logit(positive)]
        }
        (Some("DummyClassifier"), LossLink::MultinomialLogit) => {
            multinomial_logit(&clipped_proba()?)
        }
        _ => {
            return Err(Error::unsupported(format!(
                "{} with init estimator {}",
                estimator.name(),
                init.class()
            )))
        }
    };
    if raw.len() != n_outputs {
        return Err(Error::invalid(format!(
            "{} init_ predicts {} values for {n_outputs} outputs",
            estimator.name(),
            raw.len()
        )));
    }
    Ok(raw)
}

/// `DummyClassifier.predict_proba` for its data-independent strategies
/// (`sklearn/dummy.py`).
fn dummy_classifier_proba(init: &Estimator<'_>) -> Result<Vec<f64>> {
    let strategy = init
        .string("_strategy")
        .or_else(|_| init.string("strategy"))?;
    let (prior, _) = init.floats("class_prior_")?;
    let n = prior.len();
    Ok(match strategy {
        "prior" => prior,
        "most_frequent" => {
            let best = first_argmax(&prior);
            (0..n).map(|i| if i == best { 1.0 } else { 0.0 }).collect()
        }
        "uniform" => vec![1.0 / n as f64; n],
        other => {
            return Err(Error::unsupported(format!(
                "a DummyClassifier init with strategy {other:?}"
            )))
        }
    })
}

/// numpy's `argmax`: the first of equal maxima.
fn first_argmax(values: &[f64]) -> usize {
    let mut best = 0;
    for (i, &v) in values.iter().enumerate().skip(1) {
        if v > values[best] {
            best = i;
        }
    }
    best
}

/// scipy's `logit`, as xsf computes it (`xsf/log_exp.h`): `log(p / (1 - p))`
/// away from one half, `log1p(2 (p - 1/2)) - log1p(-2 (p - 1/2))` near it,
/// where the first form loses precision.
fn logit(p: f64) -> f64 {
    if !(0.3..=0.65).contains(&p) {
        (p / (1.0 - p)).ln()
    } else {
        let s = 2.0 * (p - 0.5);
        s.ln_1p() - (-s).ln_1p()
    }
}

/// `MultinomialLogit.link`: `log(p / gmean(p))`, the geometric mean being
/// `exp(mean(log p))` as scipy's `gmean` computes it.
fn multinomial_logit(p: &[f64]) -> Vec<f64> {
    let mean_log = p.iter().map(|v| v.ln()).sum::<f64>() / p.len() as f64;
    let geometric_mean = mean_log.exp();
    p.iter().map(|v| (v / geometric_mean).ln()).collect()
}

// --- Histogram gradient boosting -------------------------------------------------------

fn hist_gradient_boosting(estimator: &Estimator<'_>, classifier: bool) -> Result<EnsembleSpec> {
    let n_features = estimator.n_features()?;
    // Categorical features go through an OrdinalEncoder (`_preprocessor`)
    // and bitset splits; we do not map those yet.
    let categorical = match estimator.get("is_categorical_") {
        None => false,
        Some(node) => numpy::ndarray(node)?.to_i64()?.iter().any(|&c| c != 0),
    };
    if categorical || estimator.get("_preprocessor").is_some() {
        return Err(Error::unsupported(format!(
            "{} with categorical features",
            estimator.name()
        )));
    }
    let per_iteration = estimator.count("n_trees_per_iteration_")?;
    let (baseline, baseline_shape) = estimator.floats("_baseline_prediction")?;
    if baseline.len() != per_iteration || baseline_shape.len() > 2 {
        return Err(Error::invalid(format!(
            "{} baseline of shape {baseline_shape:?} for {per_iteration} trees per iteration",
            estimator.name()
        )));
    }
    let link = engine_link(estimator, loss_link(estimator)?, classifier, per_iteration)?;
    let task = if classifier {
        let labels = estimator.classes()?;
        let expected = if labels.len() == 2 { 1 } else { labels.len() };
        if per_iteration != expected {
            return Err(Error::invalid(format!(
                "{} with {} classes and {per_iteration} trees per iteration",
                estimator.name(),
                labels.len()
            )));
        }
        Task::Classification(labels)
    } else {
        Task::Regression
    };
    let predictors = estimator.require("_predictors")?;
    let iterations = predictors
        .as_list()
        .ok_or_else(|| Error::invalid(format!("{}._predictors is not a list", estimator.name())))?;
    let mut trees = Vec::with_capacity(iterations.len() * per_iteration);
    for (iteration, predictors) in iterations.iter().enumerate() {
        let predictors = predictors
            .as_list()
            .filter(|p| p.len() == per_iteration)
            .ok_or_else(|| {
                Error::invalid(format!(
                    "{} iteration {iteration} does not hold {per_iteration} predictors",
                    estimator.name()
                ))
            })?;
        for (output, predictor) in predictors.iter().enumerate() {
            let mut tree = hist_tree(predictor).map_err(|error| match error {
                Error::InvalidModel(message) => Error::invalid(format!(
                    "{} iteration {iteration} tree {output}: {message}",
                    estimator.name()
                )),
                other => other,
            })?;
            tree.output = output;
            trees.push(tree);
        }
    }
    Ok(EnsembleSpec {
        source: "sklearn",
        n_features,
        n_outputs: per_iteration,
        trees,
        base: baseline,
        average: false,
        input_f32: false,
        accumulate_f32: false,
        link,
        task,
        feature_names: estimator.feature_names()?,
        categories: None,
    })
}

/// A `TreePredictor` (`_hist_gradient_boosting/predictor.py`): its `nodes`
/// array of `PREDICTOR_RECORD_DTYPE` (`common.pyx`).
fn hist_tree(predictor: Node<'_>) -> Result<Tree> {
    let predictor = Estimator::new(predictor)?;
    let nodes = predictor.array("nodes")?;
    let node_count = nodes.len();
    if nodes.shape.len() != 1 || node_count == 0 {
        return Err(Error::invalid(format!(
            "nodes array of shape {:?}",
            nodes.shape
        )));
    }
    let integers = |name: &str| nodes.field(name)?.to_i64();
    let floats = |name: &str| nodes.field(name)?.to_f64();
    let value = floats("value")?;
    let count = floats("count")?;
    let feature = integers("feature_idx")?;
    let threshold = floats("num_threshold")?;
    let missing_go_to_left = integers("missing_go_to_left")?;
    let left = integers("left")?;
    let right = integers("right")?;
    let is_leaf = integers("is_leaf")?;
    let is_categorical = if nodes.has_field("is_categorical") {
        integers("is_categorical")?
    } else {
        vec![0; node_count]
    };
    let child = |index: i64| {
        usize::try_from(index)
            .ok()
            .filter(|&i| i < node_count)
            .ok_or_else(|| Error::invalid(format!("child index {index} of {node_count} nodes")))
    };
    let mut tree_nodes = Vec::with_capacity(node_count);
    for node in 0..node_count {
        if is_leaf[node] != 0 {
            tree_nodes.push(TreeNode::Leaf {
                values: vec![value[node]],
                cover: count[node],
            });
            continue;
        }
        if is_categorical[node] != 0 {
            return Err(Error::unsupported("HistGradientBoosting categorical split"));
        }
        let feature = usize::try_from(feature[node])
            .map_err(|_| Error::invalid(format!("split on feature {}", feature[node])))?;
        tree_nodes.push(TreeNode::Split {
            feature,
            test: Test::LessOrEqual(threshold[node]),
            missing: learned_direction(missing_go_to_left[node] != 0),
            left: child(left[node])?,
            right: child(right[node])?,
            cover: count[node],
        });
    }
    Ok(Tree {
        nodes: tree_nodes,
        output: 0,
    })
}

/// Labels of a wrapper's classifier, for the XGBoost and LightGBM wrappers.
pub(crate) fn relabel(spec: &mut EnsembleSpec, labels: ClassLabels) -> Result<()> {
    match &spec.task {
        Task::Classification(current) if current.len() == labels.len() => {
            spec.task = Task::Classification(labels);
            Ok(())
        }
        Task::Classification(current) => Err(Error::invalid(format!(
            "the wrapper has {} classes and its booster {}",
            labels.len(),
            current.len()
        ))),
        Task::Regression => Err(Error::unsupported(
            "a classifier wrapper whose booster has no classification objective",
        )),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn logit_matches_scipy_on_both_branches() {
        // `scipy.special.logit(p)` (scipy 1.x as installed with
        // scikit-learn 1.9.1), at and around the branch bounds.
        let expected = [
            (0.123456789, -1.96009479442896),
            (0.2, -1.3862943611198906),
            (0.3, -0.8472978603872037),
            (0.31, -0.8001193001121132),
            (0.5, 0.0),
            (0.5000001, 3.9999999978946295e-07),
            (0.6, 0.4054651081081643),
            (0.64, 0.5753641449035619),
            (0.65, 0.6190392084062235),
            (0.9, 2.1972245773362196),
        ];
        for (p, value) in expected {
            assert_eq!(logit(p), value, "logit({p})");
        }
    }
}
