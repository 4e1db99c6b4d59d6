//! XGBoost models: the JSON format (`save_model("m.json")`) and UBJSON
//! (`.ubj`, the default of `save_model` for other names since XGBoost 2.1,
//! and what `save_raw()` / pickles carry).
//!
//! Both encodings hold the same document (XGBoost's "JSON model" schema,
//! `doc/model.schema` in its repository; key names below are that schema's):
//!
//! ```text
//! { "version": [3, 2, 0],
//!   "learner": {
//!     "feature_names": [...], "feature_types": [...],
//!     "learner_model_param": { "base_score": "[5E-1]", "num_class": "0",
//!                              "num_feature": "20", "num_target": "1", ... },
//!     "objective": { "name": "binary:logistic", ... },
//!     "gradient_booster": { "name": "gbtree", "model": { "tree_info": [...], "trees": [...] } }
//!                      or { "name": "dart", "gbtree": {...as above...}, "weight_drop": [...] } } }
//! ```
//!
//! A tree is a set of parallel arrays indexed by node: `left_children` and
//! `right_children` (`-1` for a leaf), `split_indices` (the feature),
//! `split_conditions` (the threshold, or the leaf value at a leaf),
//! `default_left` (where NaN goes), `split_type` (0 numeric, 1
//! categorical), `sum_hessian` (the node's cover), and for categorical
//! splits `categories_nodes` / `categories_segments` / `categories_sizes`
//! indexing the flat list `categories`. XGBoost's predictor
//! (`src/predictor/predict_fn.h`, `GetNextNode`) sends NaN to the default
//! child and otherwise goes left when `x < split_condition`, with the input
//! cast to `float32`; a categorical split (`common::Decision` in
//! `src/common/categorical.h`) goes RIGHT when the category is in the set,
//! and left when it is not in it, negative, or at least 2^24.

use std::collections::HashMap;

use super::categories::{CategoryValues, InputCategories, UnknownCategory};
use super::ubjson::{Document, JsonText, Kind, Ubjson};
use super::{ClassLabels, EnsembleSpec, Link, Missing, Task, Test, Tree, TreeNode};
use crate::error::{Error, Result};

/// Reads a model in either format, told apart by its first bytes.
pub fn load(bytes: &[u8]) -> Result<EnsembleSpec> {
    let document = match Encoding::detect(bytes)? {
        Encoding::Ubjson => {
            let mut reader = Ubjson::new(bytes);
            let document = read_document(&mut reader)?;
            reader.finish().map_err(|e| context(e, "after the model"))?;
            document
        }
        Encoding::JsonText => {
            let mut reader = JsonText::new(bytes);
            let document = read_document(&mut reader)?;
            reader.finish().map_err(|e| context(e, "after the model"))?;
            document
        }
    };
    document.into_spec()
}

const PREFIX: &str = "xgboost model: ";

fn invalid(message: impl std::fmt::Display) -> Error {
    Error::invalid(format!("{PREFIX}{message}"))
}

/// Prefixes a reader's error with where in the document it happened (a
/// path such as `learner.gradient_booster.model.trees[3].left_children`).
/// The innermost place wins: an error that already names its place passes
/// through the outer ones unchanged.
fn context(error: Error, place: &str) -> Error {
    match error {
        Error::InvalidModel(message) if !message.starts_with(PREFIX) => {
            invalid(format!("{place}: {message}"))
        }
        other => other,
    }
}

enum Encoding {
    Ubjson,
    JsonText,
}

impl Encoding {
    /// Both encodings open with `{`. JSON text goes on with whitespace, a
    /// quote or `}`; UBJSON with the integer marker of the first key's
    /// length (or a `#` count).
    fn detect(bytes: &[u8]) -> Result<Encoding> {
        let start = bytes.iter().position(|b| !b.is_ascii_whitespace());
        let Some(start) = start else {
            return Err(invalid("the file is empty"));
        };
        if bytes[start] != b'{' {
            // XGBoost before 1.0 saved a binary format of its own, not this
            // schema; some of those files start with the magic "binf".
            if bytes[start..].starts_with(b"binf") {
                return Err(Error::unsupported(
                    "xgboost model in the legacy binary format (XGBoost < 1.0): load it with XGBoost and save it \
                     again as JSON or UBJSON",
                ));
            }
            return Err(invalid(
                "not a JSON or UBJSON document (it does not start with '{')",
            ));
        }
        Ok(match bytes.get(start + 1) {
            Some(b'"' | b'}' | b' ' | b'\t' | b'\r' | b'\n') => Encoding::JsonText,
            _ => Encoding::Ubjson,
        })
    }
}

// --- The document, as read ------------------------------------------------------------

#[derive(Default)]
struct RawDocument {
    learner: Option<RawLearner>,
}

#[derive(Default)]
struct RawLearner {
    feature_names: Vec<String>,
    /// `feature_types`: `c` for a categorical feature.
    feature_types: Vec<String>,
    /// `learner_model_param`: XGBoost writes every value as a string.
    params: HashMap<String, String>,
    objective: Option<String>,
    booster: Option<RawBooster>,
}

#[derive(Default)]
struct RawBooster {
    name: Option<String>,
    /// `model` of a gbtree booster.
    model: Option<RawForest>,
    /// `gbtree` of a dart booster: the booster it wraps.
    wrapped: Option<Box<RawBooster>>,
    /// `weight_drop` of a dart booster: one weight per tree.
    weight_drop: Option<Vec<f32>>,
}

#[derive(Default)]
struct RawForest {
    /// `cats.enc`: per feature, the categories seen in training (XGBoost ≥
    /// 3.1), empty for other features.
    categories: Vec<Option<CategoryValues>>,
    trees: Option<Vec<Tree>>,
    /// The output (class or target) of each tree.
    tree_info: Option<Vec<i32>>,
}

/// The arrays of one tree.
#[derive(Default)]
struct RawTree {
    left_children: Option<Vec<i32>>,
    right_children: Option<Vec<i32>>,
    split_indices: Option<Vec<i32>>,
    split_conditions: Option<Vec<f32>>,
    default_left: Option<Vec<bool>>,
    split_type: Vec<i32>,
    sum_hessian: Vec<f32>,
    /// Leaf vectors of a multi-target tree, `size_leaf_vector` values per
    /// leaf, indexed by the leaf's `right_children` entry (XGBoost ≥ 3.0).
    leaf_weights: Option<Vec<f32>>,
    categories: Vec<i32>,
    categories_nodes: Vec<i32>,
    categories_segments: Vec<i32>,
    categories_sizes: Vec<i32>,
    num_nodes: Option<String>,
    size_leaf_vector: Option<String>,
}

fn read_document<'a>(doc: &mut impl Document<'a>) -> Result<RawDocument> {
    let mut document = RawDocument::default();
    doc.object(|d, key| {
        match key {
            "learner" => document.learner = Some(read_learner(d)?),
            // A pickled Booster's `handle` is the learner snapshot
            // `{"Config": {...}, "Model": {<this document>}}`.
            "Model" => document = read_document(d)?,
            _ => d.skip()?,
        }
        Ok(())
    })
    .map_err(|e| context(e, "document"))?;
    Ok(document)
}

fn read_learner<'a>(doc: &mut impl Document<'a>) -> Result<RawLearner> {
    let mut learner = RawLearner::default();
    doc.object(|d, key| {
        match key {
            "feature_names" => {
                d.array(|d| {
                    learner.feature_names.push(d.string()?.into_owned());
                    Ok(())
                })
                .map_err(|e| context(e, "learner.feature_names"))?;
            }
            "feature_types" => {
                d.array(|d| {
                    learner.feature_types.push(d.string()?.into_owned());
                    Ok(())
                })
                .map_err(|e| context(e, "learner.feature_types"))?;
            }
            "learner_model_param" => {
                d.object(|d, key| {
                    // Values are strings; tolerate numbers, skip anything else.
                    let value = match d.peek()? {
                        Kind::String => d.string()?.into_owned(),
                        Kind::Number => d.f32()?.to_string(),
                        _ => return d.skip(),
                    };
                    learner.params.insert(key.to_owned(), value);
                    Ok(())
                })
                .map_err(|e| context(e, "learner.learner_model_param"))?;
            }
            "objective" => {
                d.object(|d, key| {
                    match key {
                        "name" => learner.objective = Some(d.string()?.into_owned()),
                        _ => d.skip()?,
                    }
                    Ok(())
                })
                .map_err(|e| context(e, "learner.objective"))?;
            }
            "gradient_booster" => {
                learner.booster = Some(read_booster(d, "learner.gradient_booster")?)
            }
            _ => d.skip()?,
        }
        Ok(())
    })
    .map_err(|e| context(e, "learner"))?;
    Ok(learner)
}

fn read_booster<'a>(doc: &mut impl Document<'a>, place: &str) -> Result<RawBooster> {
    let mut booster = RawBooster::default();
    doc.object(|d, key| {
        match key {
            "name" => booster.name = Some(d.string().map_err(|e| context(e, place))?.into_owned()),
            "model" => booster.model = Some(read_forest(d, &format!("{place}.model"))?),
            "gbtree" => {
                booster.wrapped = Some(Box::new(read_booster(d, &format!("{place}.gbtree"))?))
            }
            "weight_drop" => {
                booster.weight_drop = Some(
                    d.f32_array()
                        .map_err(|e| context(e, &format!("{place}.weight_drop")))?,
                )
            }
            _ => d.skip()?,
        }
        Ok(())
    })
    .map_err(|e| context(e, place))?;
    Ok(booster)
}

fn read_forest<'a>(doc: &mut impl Document<'a>, place: &str) -> Result<RawForest> {
    let mut forest = RawForest::default();
    doc.object(|d, key| {
        match key {
            "trees" => {
                let mut trees = Vec::new();
                d.array(|d| {
                    let place = format!("{place}.trees[{}]", trees.len());
                    let raw = read_tree(d, &place)?;
                    // Converted at once, so that only one tree's arrays are
                    // held alongside the converted nodes.
                    trees.push(raw.into_tree().map_err(|e| context(e, &place))?);
                    Ok(())
                })
                .map_err(|e| context(e, &format!("{place}.trees")))?;
                forest.trees = Some(trees);
            }
            "cats" => {
                d.object(|d, key| {
                    match key {
                        "enc" => d.array(|d| {
                            forest.categories.push(read_category_encoding(d)?);
                            Ok(())
                        })?,
                        _ => d.skip()?,
                    }
                    Ok(())
                })
                .map_err(|e| context(e, &format!("{place}.cats")))?;
            }
            "tree_info" => {
                forest.tree_info = Some(
                    d.i32_array()
                        .map_err(|e| context(e, &format!("{place}.tree_info")))?,
                )
            }
            _ => d.skip()?,
        }
        Ok(())
    })
    .map_err(|e| context(e, place))?;
    Ok(forest)
}

/// One feature's `enc` entry: strings as UTF-8 bytes in `values` cut at
/// `offsets`, or numbers in `values` (with their `type`); nothing for a
/// feature that is not categorical.
fn read_category_encoding<'a>(doc: &mut impl Document<'a>) -> Result<Option<CategoryValues>> {
    let mut offsets: Option<Vec<i64>> = None;
    let mut values: Vec<f64> = Vec::new();
    let mut typed = false;
    doc.object(|d, key| {
        match key {
            "offsets" => {
                let mut list = Vec::new();
                d.array(|d| {
                    list.push(d.integer()?);
                    Ok(())
                })?;
                offsets = Some(list);
            }
            "values" => d.array(|d| {
                // XGBoost refuses float categories at training.
                values.push(d.integer()? as f64);
                Ok(())
            })?,
            "type" => {
                typed = true;
                d.skip()?
            }
            _ => d.skip()?,
        }
        Ok(())
    })?;
    if values.is_empty() {
        return Ok(None);
    }
    let Some(offsets) = offsets.filter(|_| !typed) else {
        return Ok(Some(CategoryValues::Numbers(values)));
    };
    let bytes = values
        .iter()
        .map(|&b| u8::try_from(b as i64).ok().filter(|_| b.fract() == 0.0))
        .collect::<Option<Vec<u8>>>()
        .ok_or_else(|| invalid("category text that is not bytes"))?;
    let mut strings = Vec::with_capacity(offsets.len().saturating_sub(1));
    for window in offsets.windows(2) {
        let (Ok(start), Ok(end)) = (usize::try_from(window[0]), usize::try_from(window[1])) else {
            return Err(invalid("negative category offsets"));
        };
        let text = bytes
            .get(start..end)
            .ok_or_else(|| invalid("category offsets outside the values"))?;
        strings.push(
            String::from_utf8(text.to_vec())
                .map_err(|_| invalid("a category that is not UTF-8"))?,
        );
    }
    Ok(Some(CategoryValues::Text(strings)))
}

fn read_tree<'a>(doc: &mut impl Document<'a>, place: &str) -> Result<RawTree> {
    let mut tree = RawTree::default();
    doc.object(|d, key| {
        let field = |e: Error| context(e, &format!("{place}.{key}"));
        match key {
            "left_children" => tree.left_children = Some(d.i32_array().map_err(field)?),
            "right_children" => tree.right_children = Some(d.i32_array().map_err(field)?),
            "split_indices" => tree.split_indices = Some(d.i32_array().map_err(field)?),
            "split_conditions" => tree.split_conditions = Some(d.f32_array().map_err(field)?),
            "default_left" => tree.default_left = Some(d.flag_array().map_err(field)?),
            "split_type" => tree.split_type = d.i32_array().map_err(field)?,
            "sum_hessian" => tree.sum_hessian = d.f32_array().map_err(field)?,
            "leaf_weights" => tree.leaf_weights = Some(d.f32_array().map_err(field)?),
            "categories" => tree.categories = d.i32_array().map_err(field)?,
            "categories_nodes" => tree.categories_nodes = d.i32_array().map_err(field)?,
            "categories_segments" => tree.categories_segments = d.i32_array().map_err(field)?,
            "categories_sizes" => tree.categories_sizes = d.i32_array().map_err(field)?,
            "tree_param" => d
                .object(|d, key| {
                    match key {
                        "num_nodes" => tree.num_nodes = Some(d.string()?.into_owned()),
                        "size_leaf_vector" => {
                            tree.size_leaf_vector = Some(d.string()?.into_owned())
                        }
                        _ => d.skip()?,
                    }
                    Ok(())
                })
                .map_err(field)?,
            _ => d.skip()?,
        }
        Ok(())
    })
    .map_err(|e| context(e, place))?;
    Ok(tree)
}

// --- Trees -----------------------------------------------------------------------------

impl RawTree {
    /// The tree in the engine's terms.
    fn into_tree(self) -> Result<Tree> {
        let vector_leaves = self
            .size_leaf_vector
            .as_deref()
            .is_some_and(|s| !matches!(s.trim(), "0" | "1"));
        if vector_leaves && self.leaf_weights.is_none() {
            return Err(Error::unsupported(
                "xgboost multi-target tree without leaf_weights (written by an older XGBoost)",
            ));
        }
        let nodes = self.nodes().map_err(Error::invalid)?;
        Ok(Tree { nodes, output: 0 })
    }

    /// The nodes, in the engine's terms. Errors are messages about this tree.
    fn nodes(mut self) -> std::result::Result<Vec<TreeNode>, String> {
        let left = self.left_children.take().ok_or("no left_children")?;
        let right = self.right_children.take().ok_or("no right_children")?;
        let features = self.split_indices.take().ok_or("no split_indices")?;
        let conditions = self.split_conditions.take().ok_or("no split_conditions")?;
        let default_left = self.default_left.take().ok_or("no default_left")?;
        let n = left.len();
        if n == 0 {
            return Err("no nodes".into());
        }
        let lengths = [
            ("right_children", right.len()),
            ("split_indices", features.len()),
            ("split_conditions", conditions.len()),
            ("default_left", default_left.len()),
        ];
        for (name, len) in lengths {
            if len != n {
                return Err(format!("{name} has {len} entries for {n} nodes"));
            }
        }
        // Older versions omit split_type (no categorical splits) and may
        // omit sum_hessian.
        if !self.split_type.is_empty() && self.split_type.len() != n {
            return Err(format!(
                "split_type has {} entries for {n} nodes",
                self.split_type.len()
            ));
        }
        if !self.sum_hessian.is_empty() && self.sum_hessian.len() != n {
            return Err(format!(
                "sum_hessian has {} entries for {n} nodes",
                self.sum_hessian.len()
            ));
        }
        if let Some(declared) = &self.num_nodes {
            if declared.parse::<usize>().ok() != Some(n) {
                return Err(format!(
                    "tree_param.num_nodes is {declared:?} but the arrays hold {n} nodes"
                ));
            }
        }
        let leaf_size = match &self.size_leaf_vector {
            None => 1,
            Some(s) => s
                .parse::<usize>()
                .map_err(|_| format!("bad size_leaf_vector {s:?}"))?
                .max(1),
        };
        let categories = self.category_sets(n)?;

        let child = |index: i32, parent: usize| -> std::result::Result<usize, String> {
            usize::try_from(index)
                .ok()
                .filter(|&c| c < n && c != parent)
                .ok_or_else(|| {
                    format!("node {parent} has child index {index} out of range (0..{n})")
                })
        };
        let mut nodes = Vec::with_capacity(n);
        for i in 0..n {
            let cover = self.sum_hessian.get(i).map_or(f64::NAN, |&h| h as f64);
            if left[i] == -1 {
                let values = if leaf_size == 1 {
                    vec![conditions[i] as f64]
                } else {
                    // A multi-target leaf: `right_children` holds the leaf's
                    // row in `leaf_weights` (`MultiTargetTree::SaveModel`).
                    let weights = self.leaf_weights.as_ref().ok_or("no leaf_weights")?;
                    let row = usize::try_from(right[i])
                        .map_err(|_| format!("leaf {i} has weight row {}", right[i]))?;
                    let slice = weights
                        .get(row * leaf_size..(row + 1) * leaf_size)
                        .ok_or_else(|| {
                            format!("leaf {i} has weight row {row} beyond leaf_weights")
                        })?;
                    slice.iter().map(|&w| w as f64).collect()
                };
                nodes.push(TreeNode::Leaf { values, cover });
                continue;
            }
            let feature = usize::try_from(features[i])
                .map_err(|_| format!("node {i} splits on feature {}", features[i]))?;
            let (left, right) = (child(left[i], i)?, child(right[i], i)?);
            let split_type = self.split_type.get(i).copied().unwrap_or(0);
            nodes.push(match split_type {
                0 => TreeNode::Split {
                    feature,
                    test: Test::LessThan(conditions[i] as f64),
                    missing: if default_left[i] {
                        Missing::Left
                    } else {
                        Missing::Right
                    },
                    left,
                    right,
                    cover,
                },
                1 => {
                    let members = categories
                        .get(&i)
                        .cloned()
                        .ok_or_else(|| format!("categorical node {i} has no categories"))?;
                    // XGBoost sends the categories in the set to the right
                    // child; `Test::InSet` sends them left, so the children
                    // and the default direction swap.
                    TreeNode::Split {
                        feature,
                        test: Test::InSet(members),
                        missing: if default_left[i] {
                            Missing::Right
                        } else {
                            Missing::Left
                        },
                        left: right,
                        right: left,
                        cover,
                    }
                }
                other => return Err(format!("node {i} has unknown split_type {other}")),
            });
        }
        Ok(nodes)
    }

    /// The category set of each categorical node.
    fn category_sets(&self, n: usize) -> std::result::Result<HashMap<usize, Vec<u32>>, String> {
        let k = self.categories_nodes.len();
        if self.categories_segments.len() != k || self.categories_sizes.len() != k {
            return Err(format!(
                "categories_nodes, categories_segments and categories_sizes have {k}, {} and {} entries",
                self.categories_segments.len(),
                self.categories_sizes.len()
            ));
        }
        let mut sets = HashMap::with_capacity(k);
        for j in 0..k {
            let node = usize::try_from(self.categories_nodes[j])
                .ok()
                .filter(|&node| node < n);
            let start = usize::try_from(self.categories_segments[j]).ok();
            let size = usize::try_from(self.categories_sizes[j]).ok();
            let slice = start
                .zip(size)
                .and_then(|(start, size)| self.categories.get(start..start.checked_add(size)?));
            let (Some(node), Some(slice)) = (node, slice) else {
                return Err(format!(
                    "categorical split {j} points outside the tree or the category list"
                ));
            };
            // XGBoost's categories are below 2^24 (`OutOfRangeCat` in
            // `src/common/categorical.h`); the bound also keeps the engine's
            // bitsets small.
            let members = slice
                .iter()
                .map(|&c| {
                    u32::try_from(c)
                        .ok()
                        .filter(|&c| c < 1 << 24)
                        .ok_or_else(|| format!("node {node} has category {c} outside [0, 2^24)"))
                })
                .collect::<std::result::Result<Vec<_>, _>>()?;
            sets.insert(node, members);
        }
        Ok(sets)
    }
}

// --- Objectives and the intercept ------------------------------------------------------

/// How `base_score`, stored as a prediction, becomes the starting margin:
/// the objective's `ProbToMargin`, computed in `float32` as XGBoost does.
#[derive(Debug, Clone, Copy)]
enum Intercept {
    /// Stored as a margin already (identity links; softmax, whose vector
    /// intercept XGBoost ≥ 3.1 writes in margin space; `binary:logitraw`,
    /// whose `ProbToMargin` is the identity since XGBoost 1.4).
    Margin,
    /// `-ln(1/p - 1)` after clamping `p` into `[1e-6, 1 - 1e-6]`
    /// (`LogisticRegression::ProbToMargin`; the clamp, `kRtEps`, lets a
    /// model trained on a single label keep a finite intercept).
    Logit,
    /// `ln(p)` (Poisson, Gamma and Tweedie regression).
    Log,
}

impl Intercept {
    fn margin(self, p: f32) -> f32 {
        match self {
            Intercept::Margin => p,
            Intercept::Logit => {
                const RT_EPS: f32 = 1e-6;
                let p = p.clamp(RT_EPS, 1.0 - RT_EPS);
                -(1.0f32 / p - 1.0).ln()
            }
            Intercept::Log => p.ln(),
        }
    }
}

/// What an objective means for prediction.
struct Objective {
    task: Task,
    link: Link,
    n_outputs: usize,
    intercept: Intercept,
}

/// The objectives XGBoost registers (`XGBOOST_REGISTER_OBJECTIVE` in
/// `src/objective/`) with their prediction transform (`PredTransform`).
fn objective(name: &str, num_class: usize, num_target: usize) -> Result<Objective> {
    let regression = |link, intercept| Objective {
        task: Task::Regression,
        link,
        n_outputs: num_target,
        intercept,
    };
    Ok(match name {
        "reg:squarederror"
        | "reg:linear"
        | "reg:squaredlogerror"
        | "reg:absoluteerror"
        | "reg:pseudohubererror"
        | "reg:quantileerror"
        | "reg:expectileerror"
        | "binary:logitraw" => regression(Link::Identity, Intercept::Margin),
        _ if name.starts_with("rank:") => regression(Link::Identity, Intercept::Margin),
        "reg:logistic" => regression(Link::Sigmoid { scale: 1.0 }, Intercept::Logit),
        "count:poisson" | "reg:gamma" | "reg:tweedie" => regression(Link::Exp, Intercept::Log),
        "binary:logistic" => {
            if num_target != 1 {
                return Err(invalid(format!(
                    "binary:logistic with {num_target} targets"
                )));
            }
            Objective {
                task: Task::Classification(ClassLabels::indices(2)),
                link: Link::Sigmoid { scale: 1.0 },
                n_outputs: 1,
                intercept: Intercept::Logit,
            }
        }
        "multi:softprob" | "multi:softmax" => {
            if num_class < 2 {
                return Err(invalid(format!("{name} with num_class {num_class}")));
            }
            Objective {
                task: Task::Classification(ClassLabels::indices(num_class)),
                link: Link::Softmax,
                n_outputs: num_class,
                intercept: Intercept::Margin,
            }
        }
        "binary:hinge" => {
            return Err(Error::unsupported(
                "xgboost objective binary:hinge (it predicts 0 or 1 from the margin's sign)",
            ))
        }
        other => return Err(Error::unsupported(format!("xgboost objective {other}"))),
    })
}

/// Parses `base_score`: `"5E-1"` before XGBoost 3.1, `"[5E-1]"` or a vector
/// `"[a,b,c]"` (one per class or target) since.
fn parse_base_score(text: &str) -> Result<Vec<f32>> {
    let inner = text.trim();
    let inner = inner
        .strip_prefix('[')
        .and_then(|s| s.strip_suffix(']'))
        .unwrap_or(inner);
    inner
        .split(',')
        .map(|v| {
            v.trim()
                .parse::<f32>()
                .ok()
                .filter(|p| p.is_finite())
                .ok_or_else(|| invalid(format!("bad base_score {text:?}")))
        })
        .collect()
}

fn count_param(
    params: &HashMap<String, String>,
    name: &str,
    default: Option<usize>,
) -> Result<usize> {
    match params.get(name) {
        Some(text) => text
            .trim()
            .parse::<usize>()
            .map_err(|_| invalid(format!("bad learner_model_param.{name} {text:?}"))),
        None => default.ok_or_else(|| invalid(format!("no learner_model_param.{name}"))),
    }
}

impl RawDocument {
    fn into_spec(self) -> Result<EnsembleSpec> {
        let learner = self.learner.ok_or_else(|| invalid("no learner"))?;
        let booster = learner
            .booster
            .ok_or_else(|| invalid("no learner.gradient_booster"))?;

        // Dart wraps a gbtree booster and weighs each tree's output.
        let (forest, weight_drop) = match booster.name.as_deref() {
            Some("gbtree") => (booster.model, None),
            Some("dart") => {
                let inner = booster
                    .wrapped
                    .ok_or_else(|| invalid("a dart booster without its gbtree"))?;
                let weights = booster
                    .weight_drop
                    .ok_or_else(|| invalid("a dart booster without weight_drop"))?;
                (inner.model, Some(weights))
            }
            Some("gblinear") => {
                return Err(Error::unsupported(
                    "xgboost gblinear booster (a linear model, not trees)",
                ))
            }
            Some(other) => return Err(Error::unsupported(format!("xgboost booster {other}"))),
            None => return Err(invalid("gradient_booster has no name")),
        };
        let mut forest = forest.ok_or_else(|| invalid("the booster has no model"))?;
        let recorded_categories = std::mem::take(&mut forest.categories);
        let mut trees = forest
            .trees
            .ok_or_else(|| invalid("the booster has no trees"))?;
        let tree_info = forest
            .tree_info
            .ok_or_else(|| invalid("the booster has no tree_info"))?;
        if tree_info.len() != trees.len() {
            return Err(invalid(format!(
                "{} trees but {} tree_info entries",
                trees.len(),
                tree_info.len()
            )));
        }
        for (tree, &output) in trees.iter_mut().zip(&tree_info) {
            tree.output = usize::try_from(output)
                .map_err(|_| invalid(format!("tree_info entry {output}")))?;
        }
        if let Some(weights) = weight_drop {
            if weights.len() != trees.len() {
                return Err(invalid(format!(
                    "{} trees but {} dart weights",
                    trees.len(),
                    weights.len()
                )));
            }
            // `Dart::PredictBatchImpl` adds each tree's output times its
            // weight, a float32 product: the same product folded into the
            // leaves gives the same sums.
            for (tree, &weight) in trees.iter_mut().zip(&weights) {
                for node in &mut tree.nodes {
                    if let TreeNode::Leaf { values, .. } = node {
                        for v in values.iter_mut() {
                            *v = ((*v as f32) * weight) as f64;
                        }
                    }
                }
            }
        }

        let params = &learner.params;
        let n_features = count_param(params, "num_feature", None)?;
        let num_class = count_param(params, "num_class", Some(0))?;
        let num_target = count_param(params, "num_target", Some(1))?.max(1);
        // Every output needs a leaf value somewhere; the check also keeps a
        // corrupt count from sizing allocations.
        let leaf_values: usize = trees
            .iter()
            .flat_map(|tree| &tree.nodes)
            .map(|node| match node {
                TreeNode::Leaf { values, .. } => values.len(),
                TreeNode::Split { .. } => 0,
            })
            .sum();
        if num_class.max(num_target) > leaf_values {
            return Err(invalid(format!(
                "num_class {num_class} / num_target {num_target} for {leaf_values} leaf values"
            )));
        }
        let objective_name = learner
            .objective
            .ok_or_else(|| invalid("no learner.objective.name"))?;
        let objective = objective(&objective_name, num_class, num_target)?;

        let base_score = parse_base_score(params.get("base_score").map_or("0.5", String::as_str))?;
        let base_score = match base_score.len() {
            1 => vec![base_score[0]; objective.n_outputs],
            n if n == objective.n_outputs => base_score,
            n => {
                return Err(invalid(format!(
                    "base_score has {n} values for {} outputs",
                    objective.n_outputs
                )))
            }
        };
        let base = base_score
            .iter()
            .map(|&p| objective.intercept.margin(p) as f64)
            .collect();

        let feature_names = if learner.feature_names.is_empty() {
            None
        } else if learner.feature_names.len() == n_features {
            Some(learner.feature_names)
        } else {
            return Err(invalid(format!(
                "{} feature names for {n_features} features",
                learner.feature_names.len()
            )));
        };

        // Categorical features whose categories XGBoost recorded: requests
        // give the values. Without them (XGBoost < 3.1, or codes given at
        // training), the codes themselves are the features.
        let categorical = |f: usize| learner.feature_types.get(f).is_some_and(|t| t == "c");
        let categories = if recorded_categories.len() == n_features
            && (0..n_features).any(|f| categorical(f) && recorded_categories[f].is_some())
        {
            Some(InputCategories {
                features: recorded_categories
                    .into_iter()
                    .enumerate()
                    .map(|(f, values)| values.filter(|_| categorical(f)))
                    .collect(),
                unknown: UnknownCategory::Refuse,
                library: "XGBoost",
            })
        } else {
            None
        };

        Ok(EnsembleSpec {
            source: "xgboost",
            n_features,
            n_outputs: objective.n_outputs,
            trees,
            base,
            average: false,
            input_f32: true,
            accumulate_f32: true,
            link: objective.link,
            task: objective.task,
            feature_names,
            categories,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn base_score_in_every_spelling() {
        assert_eq!(parse_base_score("5E-1").unwrap(), [0.5]);
        assert_eq!(parse_base_score("[5E-1]").unwrap(), [0.5]);
        assert_eq!(parse_base_score("[1E0,-2.5E-1]").unwrap(), [1.0, -0.25]);
        assert!(matches!(
            parse_base_score("[x]"),
            Err(Error::InvalidModel(_))
        ));
        assert!(matches!(
            parse_base_score("NaN"),
            Err(Error::InvalidModel(_))
        ));
    }

    #[test]
    fn intercepts_follow_prob_to_margin_in_f32() {
        // XGBoost 3.2 gives these margins (checked against
        // `Booster.predict(output_margin=True)` of a model with zero leaves).
        assert_eq!(Intercept::Logit.margin(0.3), -0.847_297_85);
        // base_score 0 and 1 (every label the same) are clamped.
        assert_eq!(Intercept::Logit.margin(0.0), -13.815_51);
        assert_eq!(Intercept::Logit.margin(1.0), 13.745_16);
        assert_eq!(Intercept::Log.margin(0.3), -1.203_972_8);
        assert_eq!(Intercept::Margin.margin(0.3), 0.3);
    }

    #[test]
    fn encodings_are_told_apart() {
        assert!(matches!(
            Encoding::detect(b"{\"learner\": {}}"),
            Ok(Encoding::JsonText)
        ));
        assert!(matches!(Encoding::detect(b"  {\n"), Ok(Encoding::JsonText)));
        assert!(matches!(
            Encoding::detect(b"{L\0\0\0\0\0\0\0\x07learner"),
            Ok(Encoding::Ubjson)
        ));
        assert!(matches!(
            Encoding::detect(b"binf\0\0\0?"),
            Err(Error::Unsupported(_))
        ));
        assert!(matches!(Encoding::detect(b""), Err(Error::InvalidModel(_))));
        assert!(matches!(
            Encoding::detect(b"\x80\x04\x95"),
            Err(Error::InvalidModel(_))
        ));
    }
}
