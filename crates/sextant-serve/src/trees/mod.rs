//! The native tree-ensemble engine.
//!
//! Loaders (`xgboost`, `lightgbm`, `sklearn`, and the ONNX `TreeEnsemble*`
//! operators) describe a model as an [`EnsembleSpec`]: trees of [`TreeNode`]s
//! in the library's own terms (its comparison, its missing-value rule, its
//! node covers), plus how the trees' sums become predictions. [`compile`]
//! turns that into a [`TreeEnsemble`]: every tree flattened into one array of
//! 16-byte nodes whose children sit side by side, every test rewritten as
//! `x < threshold`, so that the hot loop has one comparison and one load per
//! level. The spec is kept beside the compiled form, because exact TreeSHAP
//! needs the covers and the original structure.
//!
//! Conventions the loaders map onto (each library's own rule, kept exactly,
//! so that predictions match to the last bit where the library computes in
//! `f64` and to `f32` rounding where it does not):
//! - scikit-learn casts inputs to `f32` and goes left when `x <= threshold`;
//! - XGBoost casts inputs to `f32`, goes left when `x < split_condition`,
//!   sends NaN to `default_left`, and sums leaves in `f32`;
//! - LightGBM compares `f64` values, goes left when `x <= threshold`, and has
//!   per-node missing types (none: NaN counts as 0; zero: 0 and NaN take the
//!   default direction; NaN: NaN takes the default direction) and
//!   categorical splits on bitsets.

pub mod categories;
pub mod lightgbm;
mod shap;
pub mod sklearn;
mod ubjson;
pub mod xgboost;

use std::sync::Arc;

use crate::error::{Error, Result};
use crate::runtime::{ModelRuntime, RuntimeInfo};
use crate::tensor::{DataType, NamedTensor, Tensor, TensorData, TensorSpec};

/// The test at an internal node. `x` is the row's value of the split's
/// feature after the ensemble's input cast.
#[derive(Debug, Clone, PartialEq)]
pub enum Test {
    /// Left when `x < t` (XGBoost, ONNX `BRANCH_LT`).
    LessThan(f64),
    /// Left when `x <= t` (scikit-learn, LightGBM, ONNX `BRANCH_LEQ`).
    LessOrEqual(f64),
    /// Left when `x` is a non-negative integer in the set (LightGBM and
    /// XGBoost categorical splits; ONNX `BRANCH_EQ` with one member).
    InSet(Vec<u32>),
    /// Left when `x == t` exactly (ONNX `BRANCH_EQ`, and `BRANCH_NEQ` with
    /// its children swapped; converters write LightGBM's categorical splits
    /// as chains of them).
    Equal(f64),
}

/// Where a row goes when its value is missing.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Missing {
    /// NaN fails every comparison and goes right; in-set tests send it right.
    Right,
    /// NaN goes left.
    Left,
    /// NaN is read as `0.0` and tested like any value (LightGBM's
    /// missing type "none").
    AsZero,
    /// `0.0` and NaN both take the given direction (LightGBM's missing type
    /// "zero"); `true` is left.
    ZeroAndNan { left: bool },
}

/// A node as a loader describes it.
#[derive(Debug, Clone, PartialEq)]
pub enum TreeNode {
    Split {
        feature: usize,
        test: Test,
        missing: Missing,
        left: usize,
        right: usize,
        /// Training rows (or hessian sum) that reached the node: TreeSHAP's
        /// cover. `NaN` when the format does not record it.
        cover: f64,
    },
    Leaf {
        /// One value per output of the tree (see [`Tree::output`]).
        values: Vec<f64>,
        cover: f64,
    },
}

/// One tree. Node 0 is the root.
#[derive(Debug, Clone, PartialEq)]
pub struct Tree {
    pub nodes: Vec<TreeNode>,
    /// When the leaves hold one value, the ensemble output they add to
    /// (the class of a multiclass boosting round). Leaves holding
    /// `n_outputs` values add to every output and ignore this.
    pub output: usize,
}

/// How the trees' summed outputs become the prediction.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Link {
    /// The sum is the answer (regression, or a random forest's averaged
    /// class probabilities).
    Identity,
    /// `1 / (1 + exp(-scale * margin))` on a single output: the probability
    /// of the positive class.
    Sigmoid { scale: f64 },
    /// `1 / (1 + exp(-scale * margin))` on every output separately: the class
    /// probabilities of a one-vs-rest classifier (LightGBM's
    /// `multiclassova`), which do not sum to 1.
    OneVsRestSigmoid { scale: f64 },
    /// Softmax over the outputs.
    Softmax,
    /// `exp(margin)` (Poisson, Gamma, Tweedie regression).
    Exp,
}

/// Labels of a classifier, in the order of its probability columns.
#[derive(Debug, Clone, PartialEq)]
pub enum ClassLabels {
    Int(Vec<i64>),
    Str(Vec<String>),
}

impl ClassLabels {
    pub fn len(&self) -> usize {
        match self {
            ClassLabels::Int(v) => v.len(),
            ClassLabels::Str(v) => v.len(),
        }
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// `0..n` as integer labels.
    pub fn indices(n: usize) -> ClassLabels {
        ClassLabels::Int((0..n as i64).collect())
    }
}

#[derive(Debug, Clone, PartialEq)]
pub enum Task {
    Regression,
    Classification(ClassLabels),
}

/// A tree ensemble as a loader reads it.
#[derive(Debug, Clone, PartialEq)]
pub struct EnsembleSpec {
    /// Which library it came from, for metadata (`xgboost`, `lightgbm`,
    /// `sklearn`, `onnx`).
    pub source: &'static str,
    pub n_features: usize,
    /// Columns of the summed margin: 1 for regression and binary boosting,
    /// the class count for multiclass boosting and forests.
    pub n_outputs: usize,
    pub trees: Vec<Tree>,
    /// Added to the sum before the link (XGBoost's margin of `base_score`,
    /// scikit-learn's `init_` prediction, LightGBM's initial score).
    pub base: Vec<f64>,
    /// Divide the trees' sum by their number (random forests) before adding
    /// `base`.
    pub average: bool,
    /// Cast every input to `f32` before testing it (scikit-learn, XGBoost).
    pub input_f32: bool,
    /// Accumulate leaves in `f32` and apply the link in `f32` (XGBoost).
    pub accumulate_f32: bool,
    pub link: Link,
    pub task: Task,
    pub feature_names: Option<Vec<String>>,
    /// Category values of categorical features, when the library recorded
    /// them (pandas `category` columns): requests then give the values, and
    /// [`runtime`] recodes them.
    pub categories: Option<categories::InputCategories>,
}

/// The flattened node. `child` of a split is the left child; the right one
/// follows it.
///
/// A leaf loops on itself: its threshold is a NaN (whose payload is the
/// index of its first value in `leaf_values`), so every row "goes right",
/// and its `child` is its own index minus one, so right is itself. A walk
/// can therefore take a fixed number of steps, the tree's depth, with no
/// test for leaves: that lets several trees be walked in lockstep, their
/// independent loads overlapping in the CPU, which is where single-row
/// latency goes (see `TreeEnsemble::margin_f64`).
#[derive(Debug, Clone, Copy)]
struct Node {
    /// For `InSet` splits: the bitset's word offset (low 32 bits) and word
    /// count (high 32 bits), as raw bits. For leaves: a quiet NaN carrying
    /// the leaf's value index.
    threshold: f64,
    /// Feature index in the low 24 bits, flags above.
    feature_flags: u32,
    child: u32,
}

const FEATURE_MASK: u32 = 0x00FF_FFFF;
const LEAF: u32 = 1 << 24;
const DEFAULT_LEFT: u32 = 1 << 25;
/// `0.0` (and NaN) take the default direction.
const ZERO_MISSING: u32 = 1 << 26;
const CATEGORICAL: u32 = 1 << 27;
/// The test is `x == threshold`.
const EQUAL: u32 = 1 << 28;
/// Fields in `feature_flags` that need more than `x < threshold`.
const SLOW_PATH: u32 = ZERO_MISSING | CATEGORICAL | EQUAL;

/// Trees walked in lockstep for one row.
const LANES: usize = 8;

/// A node in half the space, for ensembles whose inputs are `f32` and whose
/// tests are all `x < threshold` (scikit-learn, XGBoost, ONNX trees): the
/// threshold fits an `f32` exactly (see `f32_threshold`), and the children
/// are an offset from the node. A forest of 100 trees of depth 8 then fits
/// the L2 cache. Leaves loop on themselves like `Node`'s: a NaN threshold
/// whose payload is the value index, and an offset of -1.
#[derive(Debug, Clone, Copy)]
struct CompactNode {
    threshold: f32,
    feature: u16,
    child: i16,
}

/// Quiet `f32` NaN; the low 22 bits carry a compact leaf's value index.
const COMPACT_LEAF_NAN: u32 = 0x7FC0_0000;
const COMPACT_VALUE_MASK: u32 = 0x003F_FFFF;

/// The `f32` threshold `T` with `x < T` exactly when `x < t`, for every
/// `f32` `x` (`t` being an `f64` threshold already rewritten as `<`): the
/// smallest `f32` not below `t`.
fn f32_threshold(t: f64) -> f32 {
    let nearest = t as f32;
    if (nearest as f64) < t {
        nearest.next_up()
    } else {
        nearest
    }
}

/// The compact form of `nodes`, when every node fits it.
fn compact_nodes(nodes: &[Node]) -> Option<Vec<CompactNode>> {
    nodes
        .iter()
        .enumerate()
        .map(|(index, node)| {
            if node.feature_flags & LEAF != 0 {
                let value = u32::try_from(node.value_index())
                    .ok()
                    .filter(|v| *v <= COMPACT_VALUE_MASK)?;
                return Some(CompactNode {
                    threshold: f32::from_bits(COMPACT_LEAF_NAN | value),
                    feature: 0,
                    child: -1,
                });
            }
            if node.feature_flags & SLOW_PATH != 0 {
                return None;
            }
            let offset = i16::try_from(i64::from(node.child) - index as i64).ok()?;
            Some(CompactNode {
                threshold: f32_threshold(node.threshold),
                feature: u16::try_from(node.feature()).ok()?,
                child: offset,
            })
        })
        .collect()
}

/// A row as the walks see it: its values, and their `f32` copy when the
/// ensemble has compact nodes.
#[derive(Clone, Copy)]
struct Row<'a> {
    x64: &'a [f64],
    x32: Option<&'a [f32]>,
}

impl Row<'_> {
    fn has_nan(&self) -> bool {
        self.x64.iter().any(|x| x.is_nan())
    }
}

/// Bits of a quiet NaN; the low 32 bits carry a leaf's value index.
const LEAF_NAN: u64 = 0x7FF8_0000_0000_0000;

impl Node {
    fn leaf(index: usize, value_index: u32) -> Node {
        Node {
            threshold: f64::from_bits(LEAF_NAN | u64::from(value_index)),
            feature_flags: LEAF,
            child: (index as u32).wrapping_sub(1),
        }
    }

    /// The first value of the leaf this node is.
    #[inline(always)]
    fn value_index(self) -> usize {
        (self.threshold.to_bits() & 0xFFFF_FFFF) as usize
    }

    #[inline(always)]
    fn feature(self) -> usize {
        (self.feature_flags & FEATURE_MASK) as usize
    }
}

/// A compiled ensemble, ready to predict.
#[derive(Debug, Clone)]
pub struct TreeEnsemble {
    spec: EnsembleSpec,
    nodes: Vec<Node>,
    /// `cover` of each of `nodes` (NaN when the format has none), for
    /// path-dependent TreeSHAP.
    covers: Vec<f64>,
    roots: Vec<u32>,
    /// Per tree: the output index its single-valued leaves add to, or
    /// `u32::MAX` when its leaves carry every output.
    tree_outputs: Vec<u32>,
    leaf_values: Vec<f64>,
    leaf_values_f32: Vec<f32>,
    bitsets: Vec<u32>,
    /// Trees in groups of `LANES` walked together: the roots of each group
    /// (padded with `pad_leaf`) and the group's deepest tree.
    lane_roots: Vec<[u32; LANES]>,
    lane_depths: Vec<u32>,
    /// No node needs more than `x < threshold` (no categorical, equality or
    /// zero-as-missing tests): rows without NaN take the short walk.
    plain_tests: bool,
    /// `nodes` in half the space, for `f32` ensembles with plain tests.
    compact: Option<Vec<CompactNode>>,
    /// Per output: how many trees add to it, the divisor of an averaging
    /// ensemble (a LightGBM random forest divides each class by its own
    /// number of trees, its rounds).
    trees_per_output: Vec<f64>,
    info: RuntimeInfo,
    /// Built on the first explanation.
    shap: shap::LazyTables,
}

/// Checks `spec` and flattens it.
/// The runtime of `spec`: its compiled ensemble, taking category values
/// where the model recorded them.
pub fn runtime(mut spec: EnsembleSpec) -> Result<Arc<dyn ModelRuntime>> {
    let categories = spec.categories.take();
    let ensemble: Arc<dyn ModelRuntime> = Arc::new(compile(spec)?);
    match categories {
        Some(categories) => categories::with_categories(ensemble, categories),
        None => Ok(ensemble),
    }
}

pub fn compile(spec: EnsembleSpec) -> Result<TreeEnsemble> {
    if spec.n_features == 0 || spec.n_features > FEATURE_MASK as usize {
        return Err(Error::invalid(format!(
            "tree ensemble with {} features",
            spec.n_features
        )));
    }
    if spec.n_outputs == 0 || spec.base.len() != spec.n_outputs {
        return Err(Error::invalid(format!(
            "tree ensemble with {} outputs and {} base values",
            spec.n_outputs,
            spec.base.len()
        )));
    }
    match (&spec.task, spec.link) {
        (Task::Classification(labels), Link::Sigmoid { .. })
            if labels.len() != 2 || spec.n_outputs != 1 =>
        {
            return Err(Error::invalid(
                "a sigmoid classifier has one output and two classes",
            ))
        }
        (
            Task::Classification(labels),
            Link::Softmax | Link::Identity | Link::OneVsRestSigmoid { .. },
        ) if labels.len() != spec.n_outputs => {
            return Err(Error::invalid(format!(
                "classifier with {} classes and {} outputs",
                labels.len(),
                spec.n_outputs
            )))
        }
        (Task::Classification(_), Link::Exp) => {
            return Err(Error::invalid("a classifier cannot have an exp link"))
        }
        _ => {}
    }
    let mut compiler = Compiler {
        nodes: Vec::new(),
        covers: Vec::new(),
        leaf_values: Vec::new(),
        bitsets: Vec::new(),
        n_features: spec.n_features,
        n_outputs: spec.n_outputs,
    };
    let mut roots = Vec::with_capacity(spec.trees.len());
    let mut depths = Vec::with_capacity(spec.trees.len());
    let mut tree_outputs = Vec::with_capacity(spec.trees.len());
    for (index, tree) in spec.trees.iter().enumerate() {
        roots.push(compiler.nodes.len() as u32);
        let (width, depth) = compiler
            .tree(tree)
            .map_err(|message| Error::invalid(format!("tree {index}: {message}")))?;
        depths.push(depth);
        let output = if width == spec.n_outputs && spec.n_outputs > 1 {
            u32::MAX
        } else if tree.output < spec.n_outputs {
            tree.output as u32
        } else {
            return Err(Error::invalid(format!(
                "tree {index} adds to output {} of {}",
                tree.output, spec.n_outputs
            )));
        };
        tree_outputs.push(output);
    }
    if spec.trees.is_empty() {
        return Err(Error::invalid("tree ensemble without trees"));
    }
    // A leaf for the unused lanes of the last group.
    let pad_leaf = compiler.nodes.len() as u32;
    compiler.nodes.push(Node::leaf(pad_leaf as usize, 0));
    compiler.covers.push(f64::NAN);
    let Compiler {
        nodes,
        covers,
        leaf_values,
        bitsets,
        ..
    } = compiler;
    let lane_roots = roots
        .chunks(LANES)
        .map(|group| {
            let mut lanes = [pad_leaf; LANES];
            lanes[..group.len()].copy_from_slice(group);
            lanes
        })
        .collect();
    let plain_tests = nodes.iter().all(|n| n.feature_flags & SLOW_PATH == 0);
    let compact = if spec.input_f32 && plain_tests {
        compact_nodes(&nodes)
    } else {
        None
    };
    let lane_depths = depths
        .chunks(LANES)
        .map(|group| group.iter().copied().max().unwrap_or(0))
        .collect();
    let leaf_values_f32 = leaf_values.iter().map(|&v| v as f32).collect();
    let mut trees_per_output = vec![0.0; spec.n_outputs];
    for &output in &tree_outputs {
        match trees_per_output.get_mut(output as usize) {
            Some(count) => *count += 1.0,
            None => trees_per_output.iter_mut().for_each(|count| *count += 1.0),
        }
    }
    let info = runtime_info(&spec);
    Ok(TreeEnsemble {
        spec,
        nodes,
        covers,
        roots,
        tree_outputs,
        leaf_values,
        leaf_values_f32,
        bitsets,
        lane_roots,
        lane_depths,
        plain_tests,
        compact,
        trees_per_output,
        info,
        shap: Default::default(),
    })
}

struct Compiler {
    nodes: Vec<Node>,
    covers: Vec<f64>,
    leaf_values: Vec<f64>,
    bitsets: Vec<u32>,
    n_features: usize,
    n_outputs: usize,
}

impl Compiler {
    /// Appends `tree` and returns the width of its leaves and its depth
    /// (splits on its longest path). Nodes are laid out breadth-first per
    /// tree, so each split's two children are adjacent.
    fn tree(&mut self, tree: &Tree) -> std::result::Result<(usize, u32), String> {
        if tree.nodes.is_empty() {
            return Err("no nodes".into());
        }
        let base = self.nodes.len();
        // (source index, slot in self.nodes, depth) in breadth-first order.
        let mut queue = std::collections::VecDeque::from([(0usize, base, 0u32)]);
        self.nodes.push(placeholder());
        self.covers.push(f64::NAN);
        let mut width = None;
        let mut depth = 0;
        let mut visited = 0usize;
        while let Some((source, slot, level)) = queue.pop_front() {
            depth = depth.max(level);
            visited += 1;
            if visited > tree.nodes.len() {
                return Err("nodes form a cycle or share children".into());
            }
            let node = tree
                .nodes
                .get(source)
                .ok_or_else(|| format!("child index {source} out of range"))?;
            match node {
                TreeNode::Leaf { values, cover } => {
                    self.covers[slot] = *cover;
                    match width {
                        None => width = Some(values.len()),
                        Some(w) if w != values.len() => {
                            return Err("leaves hold different numbers of values".into())
                        }
                        Some(_) => {}
                    }
                    if values.is_empty() || (values.len() != 1 && values.len() != self.n_outputs) {
                        return Err(format!(
                            "a leaf holds {} values for {} outputs",
                            values.len(),
                            self.n_outputs
                        ));
                    }
                    let first =
                        u32::try_from(self.leaf_values.len()).map_err(|_| "too many leaves")?;
                    self.leaf_values.extend_from_slice(values);
                    self.nodes[slot] = Node::leaf(slot, first);
                }
                TreeNode::Split {
                    feature,
                    test,
                    missing,
                    left,
                    right,
                    cover,
                } => {
                    self.covers[slot] = *cover;
                    if *feature >= self.n_features {
                        return Err(format!("split on feature {feature} of {}", self.n_features));
                    }
                    let mut flags = *feature as u32;
                    let threshold = match test {
                        Test::LessThan(t) => *t,
                        Test::LessOrEqual(t) => {
                            // `x <= t` and `x < next_up(t)` agree for every
                            // f64 `x`, including f32 inputs widened to f64.
                            if t.is_nan() {
                                return Err("NaN threshold".into());
                            }
                            if *t == f64::INFINITY {
                                f64::INFINITY
                            } else {
                                t.next_up()
                            }
                        }
                        Test::Equal(t) => {
                            flags |= EQUAL;
                            *t
                        }
                        Test::InSet(members) => {
                            flags |= CATEGORICAL;
                            let words = members.iter().map(|&m| m / 32 + 1).max().unwrap_or(0);
                            let offset = self.bitsets.len();
                            self.bitsets.resize(offset + words as usize, 0);
                            for &m in members {
                                self.bitsets[offset + (m / 32) as usize] |= 1 << (m % 32);
                            }
                            f64::from_bits((offset as u64) | ((words as u64) << 32))
                        }
                    };
                    match missing {
                        Missing::Right => {}
                        Missing::Left => flags |= DEFAULT_LEFT,
                        Missing::AsZero => {
                            // NaN reads as 0.0: its direction is fixed per node.
                            let zero_left = match test {
                                Test::LessThan(t) => 0.0 < *t,
                                Test::LessOrEqual(t) => 0.0 <= *t,
                                Test::InSet(members) => members.contains(&0),
                                Test::Equal(t) => 0.0 == *t,
                            };
                            if zero_left {
                                flags |= DEFAULT_LEFT;
                            }
                        }
                        Missing::ZeroAndNan { left } => {
                            flags |= ZERO_MISSING;
                            if *left {
                                flags |= DEFAULT_LEFT;
                            }
                        }
                    }
                    let child = self.nodes.len();
                    self.nodes.push(placeholder());
                    self.nodes.push(placeholder());
                    self.covers.extend([f64::NAN; 2]);
                    queue.push_back((*left, child, level + 1));
                    queue.push_back((*right, child + 1, level + 1));
                    self.nodes[slot] = Node {
                        threshold,
                        feature_flags: flags,
                        child: u32::try_from(child).map_err(|_| "too many nodes")?,
                    };
                }
            }
        }
        width
            .ok_or_else(|| "no leaves".to_string())
            .map(|w| (w, depth))
    }
}

fn placeholder() -> Node {
    Node {
        threshold: 0.0,
        feature_flags: LEAF,
        child: 0,
    }
}

fn runtime_info(spec: &EnsembleSpec) -> RuntimeInfo {
    let input = TensorSpec::new("input", DataType::F64, vec![-1, spec.n_features as i64]);
    let outputs = match &spec.task {
        Task::Regression if spec.n_outputs == 1 => {
            vec![TensorSpec::new("predict", DataType::F64, vec![-1])]
        }
        Task::Regression => vec![TensorSpec::new(
            "predict",
            DataType::F64,
            vec![-1, spec.n_outputs as i64],
        )],
        Task::Classification(labels) => {
            let label_type = match labels {
                ClassLabels::Int(_) => DataType::I64,
                ClassLabels::Str(_) => DataType::Bytes,
            };
            vec![
                TensorSpec::new("predict", label_type, vec![-1]),
                TensorSpec::new(
                    "predict_proba",
                    DataType::F64,
                    vec![-1, labels.len() as i64],
                ),
            ]
        }
    };
    RuntimeInfo {
        engine: "native-trees",
        inputs: vec![input],
        outputs,
        feature_names: spec.feature_names.clone(),
        accepts_any_inputs: false,
    }
}

impl TreeEnsemble {
    pub fn spec(&self) -> &EnsembleSpec {
        &self.spec
    }

    pub fn n_features(&self) -> usize {
        self.spec.n_features
    }

    pub fn n_outputs(&self) -> usize {
        self.spec.n_outputs
    }

    /// Columns of [`TreeEnsemble::predict_scores`]: class probabilities
    /// of a classifier, regression targets otherwise.
    pub fn n_scores(&self) -> usize {
        match &self.spec.task {
            Task::Classification(labels) => labels.len(),
            Task::Regression => self.spec.n_outputs,
        }
    }

    /// The margins (trees' sum plus base, before the link) of `rows` rows
    /// of `features` (row-major, `n_features` per row) into `out`
    /// (`n_outputs` per row).
    pub fn predict_margins(&self, features: &[f64], out: &mut [f64]) {
        let n_features = self.spec.n_features;
        let n_outputs = self.spec.n_outputs;
        assert_eq!(features.len() % n_features, 0, "ragged feature matrix");
        let rows = features.len() / n_features;
        assert_eq!(
            out.len(),
            rows * n_outputs,
            "output buffer of the wrong size"
        );
        let mut cast = Vec::new();
        let features = if self.spec.input_f32 {
            cast.extend(features.iter().map(|&x| x as f32 as f64));
            &cast[..]
        } else {
            features
        };
        let cast32: Vec<f32> = match self.compact {
            Some(_) => features.iter().map(|&x| x as f32).collect(),
            None => Vec::new(),
        };
        let x32 = |range: std::ops::Range<usize>| self.compact.as_ref().map(|_| &cast32[range]);
        // Blocks of `LANES` rows without NaN walk each tree together (the
        // tree stays in cache across the rows); the rest go row by row.
        // Both sum every row's trees in tree order, so results agree.
        let mut acc = vec![0f32; n_outputs * LANES];
        let block_len = n_features * LANES;
        let mut done = 0;
        if self.plain_tests {
            for (index, (block, out)) in features
                .chunks_exact(block_len)
                .zip(out.chunks_exact_mut(n_outputs * LANES))
                .enumerate()
            {
                let block = Row {
                    x64: block,
                    x32: x32(index * block_len..(index + 1) * block_len),
                };
                if block.has_nan() {
                    break;
                }
                self.margin_block(block, out, &mut acc);
                done += LANES;
            }
        }
        for (index, (row, out)) in features[done * n_features..]
            .chunks_exact(n_features)
            .zip(out[done * n_outputs..].chunks_exact_mut(n_outputs))
            .enumerate()
        {
            let start = (done + index) * n_features;
            let row = Row {
                x64: row,
                x32: x32(start..start + n_features),
            };
            if self.spec.accumulate_f32 {
                self.margin_f32(row, &mut acc[..n_outputs]);
                for (o, a) in out.iter_mut().zip(&acc) {
                    *o = *a as f64;
                }
            } else {
                self.margin_f64(row, out);
            }
        }
    }

    /// Margins of `LANES` rows without NaN (`block`, row-major) into `out`;
    /// `acc` is scratch space for `f32` sums.
    fn margin_block(&self, block: Row<'_>, out: &mut [f64], acc: &mut [f32]) {
        let n_outputs = self.spec.n_outputs;
        if self.spec.accumulate_f32 {
            for acc in acc.chunks_exact_mut(n_outputs) {
                for (a, b) in acc.iter_mut().zip(&self.spec.base) {
                    *a = if self.spec.average { 0.0 } else { *b as f32 };
                }
            }
            self.for_each_leaf_block(block, |tree, lane, leaf| {
                let acc = &mut acc[lane * n_outputs..(lane + 1) * n_outputs];
                let output = self.tree_outputs[tree];
                if output == u32::MAX {
                    for (a, v) in acc
                        .iter_mut()
                        .zip(&self.leaf_values_f32[leaf..leaf + n_outputs])
                    {
                        *a += v;
                    }
                } else {
                    acc[output as usize] += self.leaf_values_f32[leaf];
                }
            });
            for (out, acc) in out
                .chunks_exact_mut(n_outputs)
                .zip(acc.chunks_exact(n_outputs))
            {
                for (((o, a), b), n) in out
                    .iter_mut()
                    .zip(acc)
                    .zip(&self.spec.base)
                    .zip(&self.trees_per_output)
                {
                    *o = if self.spec.average {
                        (*a / *n as f32 + *b as f32) as f64
                    } else {
                        *a as f64
                    };
                }
            }
        } else {
            for out in out.chunks_exact_mut(n_outputs) {
                if self.spec.average {
                    out.fill(0.0);
                } else {
                    out.copy_from_slice(&self.spec.base);
                }
            }
            self.for_each_leaf_block(block, |tree, lane, leaf| {
                let out = &mut out[lane * n_outputs..(lane + 1) * n_outputs];
                let output = self.tree_outputs[tree];
                if output == u32::MAX {
                    for (a, v) in out
                        .iter_mut()
                        .zip(&self.leaf_values[leaf..leaf + n_outputs])
                    {
                        *a += v;
                    }
                } else {
                    out[output as usize] += self.leaf_values[leaf];
                }
            });
            if self.spec.average {
                for out in out.chunks_exact_mut(n_outputs) {
                    for ((a, b), n) in out
                        .iter_mut()
                        .zip(&self.spec.base)
                        .zip(&self.trees_per_output)
                    {
                        *a = *a / n + b;
                    }
                }
            }
        }
    }

    /// Like `for_each_leaf` for the `LANES` rows of `block` (row-major, no
    /// NaN) at once: each tree is walked by every row in lockstep, and
    /// `visit(tree, lane, value_index)` sees the trees in order for each
    /// row. Rows are addressed by offset into the block, which keeps the
    /// lanes and the one base pointer in registers.
    #[inline(always)]
    fn for_each_leaf_block(&self, block: Row<'_>, mut visit: impl FnMut(usize, usize, usize)) {
        let nodes = &self.nodes[..];
        let n_features = self.spec.n_features;
        let offsets: [usize; LANES] = std::array::from_fn(|k| k * n_features);
        for (group, (roots, &depth)) in self.lane_roots.iter().zip(&self.lane_depths).enumerate() {
            for (k, &root) in roots
                .iter()
                .enumerate()
                .take(self.roots.len() - group * LANES)
            {
                let mut lanes = [root; LANES];
                let tree = group * LANES + k;
                if let (Some(compact), Some(x32)) = (&self.compact, block.x32) {
                    for _ in 0..depth {
                        for (lane, offset) in lanes.iter_mut().zip(offsets) {
                            *lane = compact_step(compact, *lane, x32, offset);
                        }
                    }
                    for (row, &lane) in lanes.iter().enumerate() {
                        visit(tree, row, compact_value_index(compact[lane as usize]));
                    }
                    continue;
                }
                for _ in 0..depth {
                    for (lane, offset) in lanes.iter_mut().zip(offsets) {
                        let node = nodes[*lane as usize];
                        let x = block.x64[offset + node.feature()];
                        *lane = node.child.wrapping_add(u32::from(!(x < node.threshold)));
                    }
                }
                for (row, &lane) in lanes.iter().enumerate() {
                    visit(tree, row, nodes[lane as usize].value_index());
                }
            }
        }
    }

    /// Predictions after the link, `n_scores()` per row: class
    /// probabilities for a classifier, targets for a regressor.
    pub fn predict_scores(&self, features: &[f64], out: &mut [f64]) {
        let n_features = self.spec.n_features;
        let rows = features.len() / n_features;
        let n_outputs = self.spec.n_outputs;
        let n_scores = self.n_scores();
        assert_eq!(
            out.len(),
            rows * n_scores,
            "output buffer of the wrong size"
        );
        if n_scores == n_outputs {
            self.predict_margins(features, out);
            for scores in out.chunks_exact_mut(n_scores) {
                self.apply_link(scores);
            }
        } else {
            // A sigmoid classifier: one margin, two probabilities.
            let mut margins = vec![0.0; rows * n_outputs];
            self.predict_margins(features, &mut margins);
            for (margin, scores) in margins.iter().zip(out.chunks_exact_mut(n_scores)) {
                let p = self.sigmoid(*margin);
                if self.spec.accumulate_f32 {
                    scores[0] = (1.0f32 - p as f32) as f64;
                } else {
                    scores[0] = 1.0 - p;
                }
                scores[1] = p;
            }
        }
    }

    #[inline]
    fn margin_f64(&self, row: Row<'_>, acc: &mut [f64]) {
        let n_outputs = self.spec.n_outputs;
        if self.spec.average {
            acc.fill(0.0);
        } else {
            acc.copy_from_slice(&self.spec.base);
        }
        self.for_each_leaf(row, |tree, leaf| {
            let output = self.tree_outputs[tree];
            if output == u32::MAX {
                for (a, v) in acc
                    .iter_mut()
                    .zip(&self.leaf_values[leaf..leaf + n_outputs])
                {
                    *a += v;
                }
            } else {
                acc[output as usize] += self.leaf_values[leaf];
            }
        });
        if self.spec.average {
            for ((a, b), n) in acc
                .iter_mut()
                .zip(&self.spec.base)
                .zip(&self.trees_per_output)
            {
                *a = *a / n + b;
            }
        }
    }

    #[inline]
    fn margin_f32(&self, row: Row<'_>, acc: &mut [f32]) {
        let n_outputs = self.spec.n_outputs;
        if self.spec.average {
            acc.fill(0.0);
        } else {
            for (a, b) in acc.iter_mut().zip(&self.spec.base) {
                *a = *b as f32;
            }
        }
        self.for_each_leaf(row, |tree, leaf| {
            let output = self.tree_outputs[tree];
            if output == u32::MAX {
                for (a, v) in acc
                    .iter_mut()
                    .zip(&self.leaf_values_f32[leaf..leaf + n_outputs])
                {
                    *a += v;
                }
            } else {
                acc[output as usize] += self.leaf_values_f32[leaf];
            }
        });
        if self.spec.average {
            for ((a, b), n) in acc
                .iter_mut()
                .zip(&self.spec.base)
                .zip(&self.trees_per_output)
            {
                *a = *a / *n as f32 + *b as f32;
            }
        }
    }

    /// Calls `visit(tree, value_index)` for every tree, in order, with the
    /// first value of the leaf `row` reaches in it. Trees are walked
    /// `LANES` at a time in lockstep, each for its group's depth (leaves
    /// loop on themselves), so the walks' loads overlap.
    #[inline(always)]
    fn for_each_leaf(&self, row: Row<'_>, visit: impl FnMut(usize, usize)) {
        // Most rows have no missing value, and most ensembles only `<`
        // tests: then a step is a load, a comparison and an add.
        if self.plain_tests && !row.has_nan() {
            match (&self.compact, row.x32) {
                (Some(compact), Some(x32)) => self.walk_compact(compact, x32, visit),
                _ => self.walk::<true>(row.x64, visit),
            }
        } else {
            self.walk::<false>(row.x64, visit)
        }
    }

    /// `walk::<true>` over the compact nodes.
    #[inline(always)]
    fn walk_compact(
        &self,
        compact: &[CompactNode],
        row: &[f32],
        mut visit: impl FnMut(usize, usize),
    ) {
        let n_trees = self.roots.len();
        for (group, (roots, &depth)) in self.lane_roots.iter().zip(&self.lane_depths).enumerate() {
            let mut lanes = *roots;
            for _ in 0..depth {
                for lane in lanes.iter_mut() {
                    *lane = compact_step(compact, *lane, row, 0);
                }
            }
            let first = group * LANES;
            for (k, &lane) in lanes.iter().enumerate().take(n_trees - first) {
                visit(first + k, compact_value_index(compact[lane as usize]));
            }
        }
    }

    #[inline(always)]
    fn walk<const PLAIN: bool>(&self, row: &[f64], mut visit: impl FnMut(usize, usize)) {
        let nodes = &self.nodes[..];
        let n_trees = self.roots.len();
        for (group, (roots, &depth)) in self.lane_roots.iter().zip(&self.lane_depths).enumerate() {
            let mut lanes = *roots;
            for _ in 0..depth {
                for lane in lanes.iter_mut() {
                    *lane = self.step::<PLAIN>(nodes, *lane, row);
                }
            }
            let first = group * LANES;
            for (k, &lane) in lanes.iter().enumerate().take(n_trees - first) {
                visit(first + k, nodes[lane as usize].value_index());
            }
        }
    }

    /// One level down from node `index`: its left or right child, or the
    /// leaf itself. `PLAIN`: the row has no NaN and no node a slow test.
    #[inline(always)]
    fn step<const PLAIN: bool>(&self, nodes: &[Node], index: u32, row: &[f64]) -> u32 {
        let node = nodes[index as usize];
        let x = row[node.feature()];
        if PLAIN {
            return node.child.wrapping_add(u32::from(!(x < node.threshold)));
        }
        let left = if node.feature_flags & SLOW_PATH == 0 {
            (x < node.threshold) | (x.is_nan() & (node.feature_flags & DEFAULT_LEFT != 0))
        } else {
            self.slow_test(node, x)
        };
        node.child.wrapping_add(u32::from(!left))
    }

    #[cold]
    fn slow_test(&self, node: Node, x: f64) -> bool {
        let default_left = node.feature_flags & DEFAULT_LEFT != 0;
        // LightGBM's `IsZero`: |x| <= kZeroThreshold, the float 1e-35f
        // widened to double (include/LightGBM/meta.h).
        const ZERO_THRESHOLD: f64 = 1e-35f32 as f64;
        if node.feature_flags & ZERO_MISSING != 0 && (x.is_nan() || x.abs() <= ZERO_THRESHOLD) {
            return default_left;
        }
        if node.feature_flags & EQUAL != 0 {
            return if x.is_nan() {
                default_left
            } else {
                x == node.threshold
            };
        }
        if node.feature_flags & CATEGORICAL != 0 {
            if x.is_nan() {
                return default_left;
            }
            if !(0.0..4_294_967_296.0).contains(&x) {
                return false;
            }
            let category = x as u32;
            let bits = node.threshold.to_bits();
            let (offset, words) = ((bits & 0xFFFF_FFFF) as usize, (bits >> 32) as usize);
            let word = (category / 32) as usize;
            return word < words && self.bitsets[offset + word] & (1 << (category % 32)) != 0;
        }
        let x = if x.is_nan() { 0.0 } else { x };
        x < node.threshold
    }

    fn sigmoid(&self, margin: f64) -> f64 {
        let (Link::Sigmoid { scale } | Link::OneVsRestSigmoid { scale }) = self.spec.link else {
            unreachable!("sigmoid on an ensemble without a sigmoid link")
        };
        if self.spec.accumulate_f32 {
            // XGBoost's `common::Sigmoid` (src/common/math.h): the exponent
            // is capped at 88.7 (as `std::min(-x, 88.7f)`, which keeps a NaN
            // first argument) so that `expf` cannot overflow.
            let m = (scale as f32) * margin as f32;
            let exponent = if 88.7f32 < -m { 88.7f32 } else { -m };
            (1.0f32 / (exponent.exp() + 1.0f32)) as f64
        } else {
            1.0 / (1.0 + (-scale * margin).exp())
        }
    }

    fn apply_link(&self, scores: &mut [f64]) {
        match self.spec.link {
            Link::Identity => {}
            Link::Sigmoid { .. } | Link::OneVsRestSigmoid { .. } => {
                for s in scores.iter_mut() {
                    *s = self.sigmoid(*s);
                }
            }
            Link::Exp => {
                for s in scores.iter_mut() {
                    *s = if self.spec.accumulate_f32 {
                        (*s as f32).exp() as f64
                    } else {
                        s.exp()
                    };
                }
            }
            Link::Softmax => {
                if self.spec.accumulate_f32 {
                    // XGBoost's `common::Softmax` (src/common/math.h):
                    // float32 exponentials, summed in double, each divided
                    // by the sum rounded to float32.
                    let max = scores
                        .iter()
                        .fold(f32::NEG_INFINITY, |m, &s| m.max(s as f32));
                    let mut sum = 0f64;
                    for s in scores.iter_mut() {
                        let e = (*s as f32 - max).exp();
                        sum += e as f64;
                        *s = e as f64;
                    }
                    for s in scores.iter_mut() {
                        *s = (*s as f32 / sum as f32) as f64;
                    }
                } else {
                    let max = scores.iter().fold(f64::NEG_INFINITY, |m, &s| m.max(s));
                    let mut sum = 0.0;
                    for s in scores.iter_mut() {
                        *s = (*s - max).exp();
                        sum += *s;
                    }
                    for s in scores.iter_mut() {
                        *s /= sum;
                    }
                }
            }
        }
    }
}

/// One level down from compact node `index` for the row at `offset` of
/// `x`: the left child, the right one, or the leaf itself.
#[inline(always)]
fn compact_step(compact: &[CompactNode], index: u32, x: &[f32], offset: usize) -> u32 {
    let node = compact[index as usize];
    let value = x[offset + usize::from(node.feature)];
    let right = i32::from(!(value < node.threshold));
    (index as i32 + i32::from(node.child) + right) as u32
}

fn compact_value_index(node: CompactNode) -> usize {
    (node.threshold.to_bits() & COMPACT_VALUE_MASK) as usize
}

/// Index of the first largest value, as numpy's `argmax`.
fn argmax(values: &[f64]) -> usize {
    let mut best = 0;
    for (i, &v) in values.iter().enumerate().skip(1) {
        if v > values[best] {
            best = i;
        }
    }
    best
}

impl TreeEnsemble {
    /// The one `[rows, n_features]` FP64 matrix a tree ensemble takes, and
    /// its row count.
    fn feature_matrix<'a>(&self, inputs: &'a [NamedTensor]) -> Result<(&'a [f64], usize)> {
        let [input] = inputs else {
            return Err(Error::input(format!(
                "a tree ensemble takes one input, got {}",
                inputs.len()
            )));
        };
        let TensorData::F64(features) = &input.tensor.data else {
            return Err(Error::input("a tree ensemble takes an FP64 matrix"));
        };
        let n_features = self.spec.n_features;
        if input.tensor.shape.len() != 2 || input.tensor.shape[1] != n_features {
            return Err(Error::input(format!(
                "expected a [rows, {n_features}] matrix, got shape {:?}",
                input.tensor.shape
            )));
        }
        Ok((features, input.tensor.shape[0]))
    }
}

impl ModelRuntime for TreeEnsemble {
    fn info(&self) -> &RuntimeInfo {
        &self.info
    }

    fn explain(
        &self,
        inputs: &[NamedTensor],
        options: &crate::explain::ExplainOptions,
    ) -> Result<crate::explain::Explanation> {
        use crate::explain::Method;
        let (features, _) = self.feature_matrix(inputs)?;
        if options.interactions {
            return match options.method {
                None | Some(Method::TreePathDependent) => self.explain_interactions(features),
                Some(other) => Err(Error::input(format!(
                    "interaction values are computed by path-dependent TreeSHAP, not {}",
                    other.name()
                ))),
            };
        }
        match (options.method, &options.background) {
            (None | Some(Method::TreePathDependent), _) => self.explain_path_dependent(features),
            (Some(Method::TreeInterventional), Some(background)) => {
                let (reference, _) = self.feature_matrix(&background.inputs)?;
                self.explain_interventional(features, reference, Some(background.hash.clone()))
            }
            (Some(Method::TreeInterventional), None) => Err(Error::input(
                "interventional TreeSHAP needs background data, and this model has none",
            )),
            (Some(Method::Kernel), _) => crate::explain::kernel::explain(self, inputs, options),
            (Some(Method::Linear), _) => Err(Error::input(
                "a tree ensemble is explained by TreeSHAP (or KernelSHAP), not Linear SHAP",
            )),
        }
    }

    fn explains_exactly(&self) -> bool {
        true
    }

    fn predict(&self, inputs: &[NamedTensor]) -> Result<Vec<NamedTensor>> {
        let (features, rows) = self.feature_matrix(inputs)?;
        let n_scores = self.n_scores();
        let mut scores = vec![0.0; rows * n_scores];
        self.predict_scores(features, &mut scores);
        Ok(match &self.spec.task {
            Task::Regression => {
                let shape = if n_scores == 1 {
                    vec![rows]
                } else {
                    vec![rows, n_scores]
                };
                vec![NamedTensor::new(
                    "predict",
                    Tensor {
                        dtype: DataType::F64,
                        shape,
                        data: TensorData::F64(scores),
                    },
                )]
            }
            Task::Classification(labels) => {
                let winners = scores.chunks_exact(n_scores).map(argmax);
                let predicted = match labels {
                    ClassLabels::Int(l) => {
                        Tensor::column(TensorData::I64(winners.map(|i| l[i]).collect()))
                    }
                    ClassLabels::Str(l) => {
                        Tensor::column(TensorData::Str(winners.map(|i| l[i].clone()).collect()))
                    }
                };
                vec![
                    NamedTensor::new("predict", predicted),
                    NamedTensor::new(
                        "predict_proba",
                        Tensor {
                            dtype: DataType::F64,
                            shape: vec![rows, n_scores],
                            data: TensorData::F64(scores),
                        },
                    ),
                ]
            }
        })
    }
}

#[cfg(test)]
mod tests;
