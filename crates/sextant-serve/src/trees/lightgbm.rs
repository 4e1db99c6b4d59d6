//! LightGBM models in the text format (`Booster.save_model`,
//! `model_to_string`).
//!
//! The format (`GBDT::SaveModelToString` and `Tree::ToString` in LightGBM's
//! `src/boosting/gbdt_model_text.cpp` and `src/io/tree.cpp`) is a header of
//! `key=value` lines (and bare flags such as `average_output`), then one
//! block per tree opened by `Tree=<i>`, then `end of trees` and sections we
//! do not need (importances, parameters). The header holds `num_class`,
//! `num_tree_per_iteration` (trees per boosting round: one per class for
//! multiclass), `max_feature_idx`, `objective` (a name followed by
//! `key:value` parameters, e.g. `binary sigmoid:1`) and `feature_names`.
//!
//! A tree block holds space-separated arrays: per internal node
//! `split_feature`, `threshold`, `decision_type`, `left_child`,
//! `right_child` (a negative child `c` is leaf `!c`), `internal_count`;
//! per leaf `leaf_value` (shrinkage already applied) and `leaf_count`; and
//! for categorical splits `cat_boundaries` / `cat_threshold`, bitsets of
//! 32-bit words. `decision_type` packs bit 0: categorical, bit 1: default
//! left, bits 2–3: missing type (0 none, 1 zero, 2 NaN). The tests
//! (`Tree::NumericalDecision` and `Tree::CategoricalDecision` in
//! `include/LightGBM/tree.h`), on `float64` inputs:
//! - numeric: left when `x <= threshold`; missing type none reads NaN as
//!   0; zero sends 0 (|x| <= 1e-35f) and NaN to the default side; NaN sends
//!   NaN there;
//! - categorical: left when the integer category is in the bitset; NaN and
//!   negative categories go right.
//!
//! The prediction (`GBDT::Predict`) sums the trees of each output in
//! `float64` from 0 (the initial score is folded into the first trees),
//! divides by the number of rounds for random forests (`average_output`),
//! then applies the objective's `ConvertOutput`.

use std::collections::HashMap;
use std::str::FromStr;

use super::categories::{CategoryValues, InputCategories, UnknownCategory};
use super::{ClassLabels, EnsembleSpec, Link, Missing, Task, Test, Tree, TreeNode};
use crate::error::{Error, Result};

/// `decision_type` bits (`kCategoricalMask`, `kDefaultLeftMask` in
/// LightGBM's `tree.h`).
const CATEGORICAL_MASK: u8 = 1;
const DEFAULT_LEFT_MASK: u8 = 2;

fn invalid(message: impl std::fmt::Display) -> Error {
    Error::invalid(format!("lightgbm model: {message}"))
}

pub fn from_text(text: &str) -> Result<EnsembleSpec> {
    let model = Sections::split(text)?;
    let header = &model.header;

    let max_feature_idx: usize = header.number("max_feature_idx")?;
    let n_features = max_feature_idx
        .checked_add(1)
        .ok_or_else(|| invalid(format!("max_feature_idx {max_feature_idx}")))?;
    let num_class: usize = header.number_or("num_class", 1)?;
    let n_outputs: usize = header.number_or("num_tree_per_iteration", num_class)?;
    if n_outputs == 0 {
        return Err(invalid("num_tree_per_iteration is 0"));
    }
    if model.trees.len() % n_outputs != 0 {
        return Err(invalid(format!(
            "{} trees is not a whole number of rounds of {n_outputs} trees",
            model.trees.len()
        )));
    }
    let (task, link) = objective(
        header.values.get("objective").copied().unwrap_or(""),
        num_class,
        n_outputs,
    )?;

    let feature_names = match header.values.get("feature_names") {
        None => None,
        Some(names) => {
            let names: Vec<String> = names.split_whitespace().map(str::to_owned).collect();
            if names.len() != n_features {
                return Err(invalid(format!(
                    "{} feature names for {n_features} features",
                    names.len()
                )));
            }
            Some(names)
        }
    };

    let trees = model
        .trees
        .iter()
        .enumerate()
        .map(|(index, block)| {
            let mut tree = block.tree().map_err(|e| match e {
                Error::InvalidModel(message) => invalid(format!("tree {index}: {message}")),
                other => other,
            })?;
            // Round r holds trees r * n_outputs .. (r + 1) * n_outputs, one
            // per output in order.
            tree.output = index % n_outputs;
            Ok(tree)
        })
        .collect::<Result<Vec<_>>>()?;

    let categories = pandas_categories(
        text,
        header.values.get("feature_infos").copied(),
        n_features,
    )?;

    Ok(EnsembleSpec {
        source: "lightgbm",
        n_features,
        n_outputs,
        trees,
        base: vec![0.0; n_outputs],
        average: header.flags.contains(&"average_output"),
        input_f32: false,
        accumulate_f32: false,
        link,
        task,
        feature_names,
        categories,
    })
}

/// The category values of the features that were pandas `category`
/// columns in training. LightGBM's Python package appends
/// `pandas_categorical:<json>` to the model text: one list per such column,
/// in column order (`_dump_pandas_categorical`); at prediction
/// `_data_from_pandas` maps each value to its position in its list, and an
/// unseen one to -1, then NaN. Which features those were is not written
/// down; they are the categorical features of `feature_infos` (a
/// `:`-separated list of category codes, where numeric features have
/// `[min:max]`), in order, when there are as many of them as lists. When a
/// model also has categorical features that were integer codes (the
/// `categorical_feature` parameter), the two cannot be told apart: refused.
fn pandas_categories(
    text: &str,
    feature_infos: Option<&str>,
    n_features: usize,
) -> Result<Option<InputCategories>> {
    let Some(json) = text
        .lines()
        .rev()
        .take(8)
        .find_map(|line| line.trim_end().strip_prefix("pandas_categorical:"))
    else {
        return Ok(None);
    };
    let lists: Option<Vec<Vec<serde_json::Value>>> = serde_json::from_str(json)
        .map_err(|e| invalid(format!("pandas_categorical is not JSON lists: {e}")))?;
    let Some(lists) = lists.filter(|l| !l.is_empty()) else {
        return Ok(None);
    };
    let infos: Vec<&str> = feature_infos.unwrap_or("").split_whitespace().collect();
    if infos.len() != n_features {
        return Err(invalid(format!(
            "{} feature_infos for {n_features} features",
            infos.len()
        )));
    }
    let categorical: Vec<usize> = (0..n_features)
        .filter(|&f| infos[f] != "none" && !infos[f].starts_with('['))
        .collect();
    if categorical.len() != lists.len() {
        return Err(Error::unsupported(format!(
            "LightGBM model with {} categorical features and {} pandas category columns \
             (categorical integer codes beside pandas categories)",
            categorical.len(),
            lists.len()
        )));
    }
    let mut features = vec![None; n_features];
    for (&feature, list) in categorical.iter().zip(lists) {
        let values = if list.iter().all(serde_json::Value::is_string) {
            CategoryValues::Text(
                list.iter()
                    .map(|v| v.as_str().expect("checked").to_owned())
                    .collect(),
            )
        } else if list.iter().all(serde_json::Value::is_number) {
            CategoryValues::Numbers(list.iter().filter_map(serde_json::Value::as_f64).collect())
        } else {
            return Err(Error::unsupported(
                "LightGBM pandas categories that mix text and numbers",
            ));
        };
        features[feature] = Some(values);
    }
    Ok(Some(InputCategories {
        features,
        unknown: UnknownCategory::Missing,
        library: "LightGBM",
    }))
}

/// How the objective (`ObjectiveFunction::ConvertOutput` of each class in
/// LightGBM's `src/objective/`) turns raw scores into predictions. Names are
/// those `ToString` writes, plus their documented aliases.
fn objective(line: &str, num_class: usize, n_outputs: usize) -> Result<(Task, Link)> {
    let mut tokens = line.split_whitespace();
    let name = tokens.next().unwrap_or("");
    let mut params = HashMap::new();
    let mut flags = Vec::new();
    for token in tokens {
        match token.split_once(':') {
            Some((key, value)) => {
                params.insert(key, value);
            }
            None => flags.push(token),
        }
    }
    let sigmoid = || -> Result<f64> {
        params.get("sigmoid").map_or(Ok(1.0), |v| {
            v.parse::<f64>()
                .ok()
                .filter(|s| s.is_finite() && *s > 0.0)
                .ok_or_else(|| invalid(format!("bad sigmoid parameter {v:?}")))
        })
    };
    let classes = || -> Result<Task> {
        if num_class < 2 || num_class != n_outputs {
            return Err(invalid(format!(
                "objective {name} with num_class {num_class} and {n_outputs} trees per round"
            )));
        }
        Ok(Task::Classification(ClassLabels::indices(num_class)))
    };
    let single_output = || -> Result<()> {
        if n_outputs != 1 {
            return Err(invalid(format!(
                "objective {name} with {n_outputs} trees per round"
            )));
        }
        Ok(())
    };
    Ok(match name {
        "regression"
        | "regression_l2"
        | "l2"
        | "mean_squared_error"
        | "mse"
        | "l2_root"
        | "root_mean_squared_error"
        | "rmse"
        | "regression_l1"
        | "l1"
        | "mean_absolute_error"
        | "mae"
        | "huber"
        | "fair"
        | "quantile"
        | "mape"
        | "mean_absolute_percentage_error" => {
            // `reg_sqrt` trains on sqrt(label) and squares predictions back
            // with their sign: a link the engine does not have.
            if flags.contains(&"sqrt") {
                return Err(Error::unsupported("lightgbm regression with reg_sqrt"));
            }
            (Task::Regression, Link::Identity)
        }
        "lambdarank" | "rank_xendcg" | "xendcg" | "xe_ndcg" | "xe_ndcg_mart" | "xendcg_mart" => {
            (Task::Regression, Link::Identity)
        }
        // A custom objective: LightGBM predicts raw scores.
        "" | "custom" | "none" | "null" | "na" => (Task::Regression, Link::Identity),
        "binary" => {
            single_output()?;
            (
                Task::Classification(ClassLabels::indices(2)),
                Link::Sigmoid { scale: sigmoid()? },
            )
        }
        "multiclass" | "softmax" => (classes()?, Link::Softmax),
        "multiclassova" | "multiclass_ova" | "ova" | "ovr" => {
            (classes()?, Link::OneVsRestSigmoid { scale: sigmoid()? })
        }
        "cross_entropy" | "xentropy" => {
            single_output()?;
            (Task::Regression, Link::Sigmoid { scale: 1.0 })
        }
        "poisson" | "gamma" | "tweedie" => (Task::Regression, Link::Exp),
        "cross_entropy_lambda" | "xentlambda" => {
            return Err(Error::unsupported(
                "lightgbm objective cross_entropy_lambda (its link is log(1 + exp(x)))",
            ))
        }
        other => return Err(Error::unsupported(format!("lightgbm objective {other}"))),
    })
}

/// `key=value` lines of the header or of one tree block.
#[derive(Default)]
struct Fields<'a> {
    values: HashMap<&'a str, &'a str>,
    /// Lines without `=` (`average_output`).
    flags: Vec<&'a str>,
}

impl<'a> Fields<'a> {
    fn add(&mut self, line: &'a str) {
        match line.split_once('=') {
            Some((key, value)) => {
                self.values.insert(key.trim(), value.trim());
            }
            None => self.flags.push(line.trim()),
        }
    }

    fn number<T: FromStr>(&self, key: &str) -> Result<T> {
        let value = self
            .values
            .get(key)
            .ok_or_else(|| invalid(format!("no {key}")))?;
        value
            .parse()
            .map_err(|_| invalid(format!("bad {key} {value:?}")))
    }

    fn number_or<T: FromStr>(&self, key: &str, default: T) -> Result<T> {
        match self.values.contains_key(key) {
            true => self.number(key),
            false => Ok(default),
        }
    }

    /// The space-separated array `key`, which must hold `len` values. A
    /// missing key is an error unless `len` is 0.
    fn array<T: FromStr>(&self, key: &str, len: usize) -> Result<Vec<T>> {
        let Some(text) = self.values.get(key) else {
            if len == 0 {
                return Ok(Vec::new());
            }
            return Err(Error::invalid(format!("no {key}")));
        };
        let values = text
            .split_whitespace()
            .map(|v| {
                v.parse()
                    .map_err(|_| Error::invalid(format!("bad value {v:?} in {key}")))
            })
            .collect::<Result<Vec<T>>>()?;
        if values.len() != len {
            return Err(Error::invalid(format!(
                "{key} has {} values, expected {len}",
                values.len()
            )));
        }
        Ok(values)
    }

    /// A cover array: counts of training rows when present (what LightGBM's
    /// TreeSHAP uses), else hessian sums, else NaN.
    fn covers(&self, count_key: &str, weight_key: &str, len: usize) -> Result<Vec<f64>> {
        for key in [count_key, weight_key] {
            if self.values.get(key).is_some_and(|v| !v.is_empty()) {
                return self.array(key, len);
            }
        }
        Ok(vec![f64::NAN; len])
    }
}

/// The model text split into its header and tree blocks.
struct Sections<'a> {
    header: Fields<'a>,
    trees: Vec<Fields<'a>>,
}

impl<'a> Sections<'a> {
    fn split(text: &'a str) -> Result<Sections<'a>> {
        let mut lines = text.lines().map(str::trim_end).skip_while(|l| l.is_empty());
        if lines.next() != Some("tree") {
            return Err(invalid(
                "not a LightGBM text model (the first line is not `tree`)",
            ));
        }
        let mut header = Fields::default();
        let mut trees: Vec<Fields> = Vec::new();
        let mut finished = false;
        for line in lines {
            if line == "end of trees" {
                finished = true;
                break;
            }
            if line.is_empty() {
                continue;
            }
            if let Some(index) = line.strip_prefix("Tree=") {
                if index.trim().parse::<usize>() != Ok(trees.len()) {
                    return Err(invalid(format!(
                        "tree {} is numbered {index:?}",
                        trees.len()
                    )));
                }
                trees.push(Fields::default());
            } else if let Some(tree) = trees.last_mut() {
                tree.add(line);
            } else {
                header.add(line);
            }
        }
        // The text may be cut anywhere; a model always ends its trees with
        // this line, so its absence means the file is incomplete.
        if !finished {
            return Err(invalid(format!(
                "the text is cut short: no `end of trees` after {} tree(s)",
                trees.len()
            )));
        }
        if trees.is_empty() {
            return Err(invalid("no trees"));
        }
        Ok(Sections { header, trees })
    }
}

impl Fields<'_> {
    /// The tree of one block. Errors are `InvalidModel` messages about this
    /// tree (or `Unsupported`).
    fn tree(&self) -> Result<Tree> {
        if self.values.get("is_linear").is_some_and(|v| *v != "0") {
            return Err(Error::unsupported(
                "lightgbm linear trees (linear_tree=true): their leaves hold linear models",
            ));
        }
        let num_leaves: usize = self
            .values
            .get("num_leaves")
            .and_then(|v| v.parse().ok())
            .filter(|&n| n >= 1)
            .ok_or_else(|| Error::invalid("no valid num_leaves"))?;
        let n_internal = num_leaves - 1;
        let leaf_values: Vec<f64> = self.array("leaf_value", num_leaves)?;
        let leaf_covers = self.covers("leaf_count", "leaf_weight", num_leaves)?;
        let leaves = leaf_values
            .into_iter()
            .zip(leaf_covers)
            .map(|(value, cover)| TreeNode::Leaf {
                values: vec![value],
                cover,
            });
        if n_internal == 0 {
            return Ok(Tree {
                nodes: leaves.collect(),
                output: 0,
            });
        }

        let features: Vec<usize> = self.array("split_feature", n_internal)?;
        let thresholds: Vec<f64> = self.array("threshold", n_internal)?;
        let decision_types: Vec<u8> = self.array("decision_type", n_internal)?;
        let left: Vec<i64> = self.array("left_child", n_internal)?;
        let right: Vec<i64> = self.array("right_child", n_internal)?;
        let covers = self.covers("internal_count", "internal_weight", n_internal)?;
        let num_cat: usize = self.values.get("num_cat").map_or(Ok(0), |v| {
            v.parse()
                .map_err(|_| Error::invalid(format!("bad num_cat {v:?}")))
        })?;
        let (boundaries, bitset_words): (Vec<usize>, Vec<u32>) = if num_cat > 0 {
            let boundaries: Vec<usize> = self.array("cat_boundaries", num_cat + 1)?;
            let words = self
                .values
                .get("cat_threshold")
                .ok_or_else(|| Error::invalid("no cat_threshold"))?
                .split_whitespace()
                .map(|v| {
                    v.parse()
                        .map_err(|_| Error::invalid(format!("bad value {v:?} in cat_threshold")))
                })
                .collect::<Result<Vec<u32>>>()?;
            (boundaries, words)
        } else {
            (Vec::new(), Vec::new())
        };

        // Internal nodes keep their indices; leaf k becomes node n_internal + k.
        let node_index = |child: i64, parent: usize| -> Result<usize> {
            let index = if child >= 0 {
                usize::try_from(child)
                    .ok()
                    .filter(|&c| c < n_internal && c != parent)
            } else {
                usize::try_from(!child)
                    .ok()
                    .filter(|&leaf| leaf < num_leaves)
                    .map(|leaf| n_internal + leaf)
            };
            index.ok_or_else(|| {
                Error::invalid(format!("node {parent} has child {child} out of range"))
            })
        };
        let mut nodes = Vec::with_capacity(n_internal + num_leaves);
        for i in 0..n_internal {
            let decision = decision_types[i];
            let default_left = decision & DEFAULT_LEFT_MASK != 0;
            let (test, missing) = if decision & CATEGORICAL_MASK != 0 {
                let members = category_set(thresholds[i], &boundaries, &bitset_words)
                    .map_err(|m| Error::invalid(format!("node {i}: {m}")))?;
                // NaN and negative categories go right whatever the missing
                // type (`CategoricalDecision`).
                (Test::InSet(members), Missing::Right)
            } else {
                let missing = match (decision >> 2) & 3 {
                    0 => Missing::AsZero,
                    1 => Missing::ZeroAndNan { left: default_left },
                    2 if default_left => Missing::Left,
                    2 => Missing::Right,
                    other => {
                        return Err(Error::invalid(format!("node {i} has missing type {other}")))
                    }
                };
                if thresholds[i].is_nan() {
                    return Err(Error::invalid(format!("node {i} has a NaN threshold")));
                }
                (Test::LessOrEqual(thresholds[i]), missing)
            };
            nodes.push(TreeNode::Split {
                feature: features[i],
                test,
                missing,
                left: node_index(left[i], i)?,
                right: node_index(right[i], i)?,
                cover: covers[i],
            });
        }
        nodes.extend(leaves);
        Ok(Tree { nodes, output: 0 })
    }
}

/// The categories of a categorical split whose `threshold` indexes
/// `cat_boundaries`: bit `c % 32` of word `c / 32` of its bitset.
fn category_set(
    threshold: f64,
    boundaries: &[usize],
    words: &[u32],
) -> std::result::Result<Vec<u32>, String> {
    let valid =
        threshold >= 0.0 && threshold.fract() == 0.0 && threshold + 1.0 < boundaries.len() as f64;
    if !valid {
        return Err(format!(
            "categorical threshold {threshold} is not a bitset index"
        ));
    }
    let index = threshold as usize;
    let (start, end) = (boundaries[index], boundaries[index + 1]);
    let bitset = words
        .get(start..end)
        .filter(|_| start <= end)
        .ok_or_else(|| {
            format!(
                "bitset {index} spans words {start}..{end} of {}",
                words.len()
            )
        })?;
    let mut members = Vec::new();
    for (w, &word) in bitset.iter().enumerate() {
        for bit in 0..32 {
            if word & (1 << bit) != 0 {
                members.push(w as u32 * 32 + bit);
            }
        }
    }
    Ok(members)
}

#[cfg(test)]
mod tests {
    use super::*;

    const TWO_TREES: &str = "tree\nversion=v4\nnum_class=1\nnum_tree_per_iteration=1\nmax_feature_idx=1\n\
        objective=binary sigmoid:1\nfeature_names=a b\n\n\
        Tree=0\nnum_leaves=3\nnum_cat=1\nsplit_feature=1 0\nthreshold=0 1.5\ndecision_type=1 6\n\
        left_child=-1 -2\nright_child=1 -3\nleaf_value=0.5 -1 2\nleaf_count=3 4 5\ninternal_count=12 9\n\
        cat_boundaries=0 2\ncat_threshold=10 1\nis_linear=0\nshrinkage=1\n\n\n\
        Tree=1\nnum_leaves=1\nnum_cat=0\nsplit_feature=\nthreshold=\ndecision_type=\nleft_child=\n\
        right_child=\nleaf_value=0.25\nleaf_weight=\nleaf_count=12\nis_linear=0\nshrinkage=1\n\n\n\
        end of trees\n\nfeature_importances:\na=1\n";

    #[test]
    fn reads_splits_bitsets_and_single_leaf_trees() {
        let spec = from_text(TWO_TREES).unwrap();
        assert_eq!(spec.n_features, 2);
        assert_eq!(
            spec.feature_names,
            Some(vec!["a".to_string(), "b".to_string()])
        );
        assert_eq!(spec.link, Link::Sigmoid { scale: 1.0 });
        let nodes = &spec.trees[0].nodes;
        // Words 10 = 0b1010 and 1: categories 1, 3 and 32.
        assert_eq!(
            nodes[0],
            TreeNode::Split {
                feature: 1,
                test: Test::InSet(vec![1, 3, 32]),
                missing: Missing::Right,
                left: 2,
                right: 1,
                cover: 12.0
            }
        );
        // decision_type 6: default left (bit 1), missing type zero (bits 2-3).
        assert_eq!(
            nodes[1],
            TreeNode::Split {
                feature: 0,
                test: Test::LessOrEqual(1.5),
                missing: Missing::ZeroAndNan { left: true },
                left: 3,
                right: 4,
                cover: 9.0
            }
        );
        assert_eq!(
            nodes[4],
            TreeNode::Leaf {
                values: vec![2.0],
                cover: 5.0
            }
        );
        assert_eq!(
            spec.trees[1].nodes,
            vec![TreeNode::Leaf {
                values: vec![0.25],
                cover: 12.0
            }]
        );
    }

    #[track_caller]
    fn refused(text: &str, needle: &str) {
        match from_text(text) {
            Err(Error::InvalidModel(message)) => {
                assert!(message.contains(needle), "{message:?} lacks {needle:?}")
            }
            other => panic!("expected InvalidModel({needle}), got {other:?}"),
        }
    }

    #[test]
    fn inconsistent_trees_are_refused() {
        refused(
            &TWO_TREES.replace("left_child=-1 -2", "left_child=-1 -7"),
            "child -7 out of range",
        );
        refused(
            &TWO_TREES.replace("left_child=-1 -2", "left_child=-1 1"),
            "child 1 out of range",
        );
        refused(
            &TWO_TREES.replace("threshold=0 1.5", "threshold=1 1.5"),
            "not a bitset index",
        );
        refused(
            &TWO_TREES.replace("decision_type=1 6", "decision_type=1 14"),
            "missing type 3",
        );
        refused(
            &TWO_TREES.replace("leaf_value=0.5 -1 2", "leaf_value=0.5 -1"),
            "leaf_value has 2 values",
        );
        refused(&TWO_TREES.replace("Tree=1", "Tree=7"), "numbered");
        refused(
            &TWO_TREES.replace("max_feature_idx=1\n", ""),
            "no max_feature_idx",
        );
        refused(
            &TWO_TREES.replace("tree\n", "forest\n"),
            "not a LightGBM text model",
        );
    }

    #[test]
    fn objectives_map_to_links() {
        let link = |line: &str| objective(line, 3, 3).map(|(_, link)| link);
        assert_eq!(
            link("multiclassova num_class:3 sigmoid:2").unwrap(),
            Link::OneVsRestSigmoid { scale: 2.0 }
        );
        assert_eq!(link("multiclass num_class:3").unwrap(), Link::Softmax);
        assert!(matches!(
            link("regression sqrt"),
            Err(Error::Unsupported(_))
        ));
        assert!(matches!(
            link("cross_entropy_lambda"),
            Err(Error::Unsupported(_))
        ));
        assert!(matches!(
            link("binary sigmoid:1"),
            Err(Error::InvalidModel(_))
        ));
        assert!(matches!(
            objective("multiclass num_class:3", 3, 1),
            Err(Error::InvalidModel(_))
        ));
    }
}
