//! Exact SHAP values of a compiled tree ensemble.
//!
//! Both algorithms walk the compiled nodes with the predictor's own test
//! (`TreeEnsemble::step`), so an explanation takes every branch the
//! prediction takes, missing values and categorical splits included.
//!
//! - **Path-dependent TreeSHAP** (Lundberg, Erion & Lee 2018,
//!   arXiv:1802.03888): E[f(x) | x_S] estimated from the fraction of
//!   training cover flowing down each branch. Computed by one walk per tree
//!   that integrates each leaf's multilinear game exactly by Gauss–Legendre
//!   quadrature (`QuadratureTree`, O(nodes·d/2) per row). The paper's
//!   Algorithm 2 (`PathWalker`: the path of unique features with their
//!   "zero" fraction, the cover ratio, and "one" fraction, 1 if `x` takes
//!   the branch, and the Shapley weights of every subset size maintained by
//!   EXTEND and UNWIND; O(T·L·D²) per row) is kept for trees whose paths
//!   have more than 32 features, and as the reference the walk is tested
//!   against.
//! - **Interventional TreeSHAP** (Lundberg et al. 2020, *Nature MI* 2:56,
//!   "Independent Tree SHAP"): the Shapley values of the game
//!   v(S) = f(x_S, r_S̄), averaged over background rows r. For one r, only
//!   features on which x and r take different branches matter; a leaf
//!   reached with x's branch on the features in A and r's on those in B is
//!   worth its value to every coalition containing A and none of B, so
//!   i ∈ A gains v·(|A|−1)!·|B|!/(|A|+|B|)! and i ∈ B loses
//!   v·|A|!·(|B|−1)!/(|A|+|B|)!. O(T·R·L) per row.

use std::sync::OnceLock;

use super::{Link, Node, Task, TreeEnsemble, LEAF};
use crate::error::{Error, Result};
use crate::explain::{Explanation, Method, OutputSpace};

/// Absent feature marker at the root of a path.
const NO_FEATURE: u32 = u32::MAX;

#[derive(Debug, Clone, Copy, Default)]
struct PathElement {
    feature: u32,
    /// Fraction of the cover that flows down this path when the feature is
    /// not in the coalition.
    zero: f64,
    /// 1 when `x` takes this path, 0 otherwise.
    one: f64,
    /// Proportion of subsets of a given size (the Shapley weight times
    /// the product of fractions), maintained by `extend` and `unwind`.
    weight: f64,
}

/// EXTEND: adds a feature to `path[..=depth]` (which holds `depth`
/// elements before the call) and updates the subset-size weights.
fn extend(path: &mut [PathElement], depth: usize, zero: f64, one: f64, feature: u32) {
    path[depth] = PathElement {
        feature,
        zero,
        one,
        weight: if depth == 0 { 1.0 } else { 0.0 },
    };
    let scale = (depth + 1) as f64;
    for i in (0..depth).rev() {
        path[i + 1].weight += one * path[i].weight * (i + 1) as f64 / scale;
        path[i].weight = zero * path[i].weight * (depth - i) as f64 / scale;
    }
}

/// UNWIND: removes element `index` from `path[..=depth]`, undoing its
/// `extend`.
fn unwind(path: &mut [PathElement], depth: usize, index: usize) {
    let PathElement { zero, one, .. } = path[index];
    let scale = (depth + 1) as f64;
    let mut next = path[depth].weight;
    for j in (0..depth).rev() {
        if one != 0.0 {
            let kept = path[j].weight;
            path[j].weight = next * scale / ((j + 1) as f64 * one);
            next = kept - path[j].weight * zero * (depth - j) as f64 / scale;
        } else {
            path[j].weight = path[j].weight * scale / (zero * (depth - j) as f64);
        }
    }
    for j in index..depth {
        let PathElement {
            feature, zero, one, ..
        } = path[j + 1];
        path[j].feature = feature;
        path[j].zero = zero;
        path[j].one = one;
    }
}

/// The total weight `path[..=depth]` would have without element `index`,
/// without changing it: Σ of the weights `unwind` would leave.
fn unwound_sum(path: &[PathElement], depth: usize, index: usize) -> f64 {
    let PathElement { zero, one, .. } = path[index];
    let scale = (depth + 1) as f64;
    let mut next = path[depth].weight;
    let mut total = 0.0;
    for j in (0..depth).rev() {
        if one != 0.0 {
            let weight = next * scale / ((j + 1) as f64 * one);
            total += weight;
            next = path[j].weight - weight * zero * (depth - j) as f64 / scale;
        } else if zero != 0.0 {
            total += path[j].weight * scale / (zero * (depth - j) as f64);
        }
    }
    total
}

/// What explanations need beyond prediction, computed once per ensemble.
#[derive(Debug, Clone)]
pub(super) struct ShapTables {
    /// Per output: the divisor of a tree's leaves (trees per output for an
    /// averaging ensemble, else 1).
    divisors: Vec<f64>,
    /// Per tree: the expectation of its (undivided) leaves under the cover
    /// fractions, one per output for multi-output leaves. `None` when the
    /// covers are missing.
    expectations: Option<Vec<Vec<f64>>>,
    max_depth: usize,
    /// Per tree, its quadrature walk (`QuadratureTree`); `None` trees
    /// (paths over more than 32 features) take the recursion.
    fast: Vec<Option<QuadratureTree>>,
    inverse_divisors: Vec<f64>,
    /// Every leaf's values sum to 1 (a forest's class probabilities): the
    /// last output's values are minus the sum of the others' (the constant
    /// 1 has no attributions), so the walks skip it.
    complement: bool,
}

pub(super) type LazyTables = OnceLock<ShapTables>;

/// Why path-dependent TreeSHAP cannot run on these covers, if it cannot.
fn cover_problem(ensemble: &TreeEnsemble) -> Option<String> {
    let mut all_one = true;
    for (index, node) in ensemble.nodes.iter().enumerate() {
        if index as u32 == ensemble.pad_leaf() {
            continue;
        }
        let cover = ensemble.covers[index];
        if !cover.is_finite() || cover < 0.0 {
            return Some(format!(
                "the {} model does not record how much training data reached each tree \
                 node (node covers)",
                ensemble.spec.source
            ));
        }
        if node.feature_flags & LEAF == 0 && cover <= 0.0 {
            return Some("a split node has no training cover".into());
        }
        all_one &= cover == 1.0;
    }
    if all_one {
        // skl2onnx and onnxmltools write hit rates of 1.0 everywhere; with
        // such covers path-dependent TreeSHAP still adds up but is wrong.
        return Some("every node cover is 1.0, a placeholder rather than training counts".into());
    }
    None
}

impl TreeEnsemble {
    fn pad_leaf(&self) -> u32 {
        (self.nodes.len() - 1) as u32
    }

    fn shap_tables(&self) -> &ShapTables {
        self.shap.get_or_init(|| {
            let divisors = if self.spec.average {
                self.trees_per_output.clone()
            } else {
                vec![1.0; self.spec.n_outputs]
            };
            let expectations = cover_problem(self).is_none().then(|| {
                self.roots
                    .iter()
                    .enumerate()
                    .map(|(tree, &root)| {
                        let mut out = vec![0.0; self.leaf_width(tree)];
                        self.expectation(root, 1.0, &mut out);
                        out
                    })
                    .collect()
            });
            let max_depth = self.lane_depths.iter().copied().max().unwrap_or(0) as usize;
            let fast = match &expectations {
                Some(_) => (0..self.roots.len())
                    .map(|tree| QuadratureTree::build(self, tree))
                    .collect(),
                None => Vec::new(),
            };
            let complement = self.spec.n_outputs >= 2
                && matches!(self.spec.task, Task::Classification(_))
                && self.spec.link == Link::Identity
                && self.tree_outputs.iter().all(|&o| o == u32::MAX)
                && self.leaf_values.chunks(self.spec.n_outputs).all(|leaf| {
                    leaf.len() == self.spec.n_outputs
                        && (leaf.iter().sum::<f64>() - 1.0).abs() < 1e-9
                });
            ShapTables {
                inverse_divisors: divisors.iter().map(|d| 1.0 / d).collect(),
                divisors,
                expectations,
                max_depth,
                fast,
                complement,
            }
        })
    }

    fn leaf_width(&self, tree: usize) -> usize {
        if self.tree_outputs[tree] == u32::MAX {
            self.spec.n_outputs
        } else {
            1
        }
    }

    /// Adds `fraction` × the cover-weighted mean of the leaves under
    /// `node` to `out`, with the same ratios the recursion uses
    /// (cover of child / cover of node), so that the values add up exactly.
    fn expectation(&self, node: u32, fraction: f64, out: &mut [f64]) {
        let n = self.nodes[node as usize];
        if n.feature_flags & LEAF != 0 {
            let first = n.value_index();
            for (o, v) in out.iter_mut().zip(&self.leaf_values[first..]) {
                *o += fraction * v;
            }
            return;
        }
        let cover = self.covers[node as usize];
        for child in [n.child, n.child + 1] {
            let share = self.covers[child as usize] / cover;
            self.expectation(child, fraction * share, out);
        }
    }

    fn explained_outputs(&self) -> (Vec<String>, OutputSpace) {
        let n_outputs = self.spec.n_outputs;
        let names = match &self.spec.task {
            Task::Classification(labels) if n_outputs == 1 => vec![label(labels, 1)],
            Task::Classification(labels) => (0..n_outputs).map(|i| label(labels, i)).collect(),
            Task::Regression if n_outputs == 1 => vec!["predict".to_owned()],
            Task::Regression => (0..n_outputs).map(|i| format!("predict_{i}")).collect(),
        };
        let space = match (self.spec.link, &self.spec.task) {
            (Link::Identity, Task::Classification(_)) => OutputSpace::Probability,
            (Link::Identity, Task::Regression) => OutputSpace::Prediction,
            _ => OutputSpace::Margin,
        };
        (names, space)
    }

    fn feature_labels(&self) -> Vec<String> {
        match &self.spec.feature_names {
            Some(names) => names.clone(),
            None => (0..self.spec.n_features).map(|i| format!("f{i}")).collect(),
        }
    }

    /// `features` as the trees test them (`f32`-rounded for libraries that
    /// cast).
    fn tested_values(&self, features: &[f64]) -> Vec<f64> {
        if self.spec.input_f32 {
            features.iter().map(|&x| x as f32 as f64).collect()
        } else {
            features.to_vec()
        }
    }

    /// Path-dependent TreeSHAP of `features` (row-major, `n_features` per
    /// row), in margin space. Refused when the model has no real node
    /// covers (ONNX files): the values would add up and still be wrong.
    pub fn explain_path_dependent(&self, features: &[f64]) -> Result<Explanation> {
        self.path_dependent(features, true)
    }

    /// `tables`: use the leaf tables where built (false: the recursion
    /// everywhere, which tests compare them with).
    fn path_dependent(&self, features: &[f64], use_tables: bool) -> Result<Explanation> {
        let tables = self.shap_tables();
        let Some(expectations) = &tables.expectations else {
            let problem = cover_problem(self).unwrap_or_default();
            return Err(Error::unsupported(format!(
                "path-dependent TreeSHAP needs node covers and {problem}; ask for the \
                 interventional method (method=tree_interventional, explained against \
                 background data), or serve the original model instead of its ONNX export"
            )));
        };
        let n_features = self.spec.n_features;
        let n_outputs = self.spec.n_outputs;
        let rows = self.rows_of(features)?;
        let mut base_values = if self.spec.average {
            vec![0.0; n_outputs]
        } else {
            self.spec.base.clone()
        };
        for (tree, expectation) in expectations.iter().enumerate() {
            self.add_leaf(tree, expectation, 1.0, &mut base_values, tables);
        }
        if self.spec.average {
            for (b, base) in base_values.iter_mut().zip(&self.spec.base) {
                *b += base;
            }
        }
        let tested = self.tested_values(features);
        let mut values = vec![0.0; rows * n_features * n_outputs];
        let stride = n_features * n_outputs;
        let mut path =
            vec![PathElement::default(); (tables.max_depth + 2) * (tables.max_depth + 3) / 2];
        let mut scratch = WalkScratch::default();
        each_row(&tested, &mut values, n_features, stride, |row, phi| {
            for tree in 0..self.roots.len() {
                if let Some(fast) = tables.fast[tree].as_ref().filter(|_| use_tables) {
                    fast.explain(self, tree, row, phi, tables, &mut scratch);
                    continue;
                }
                let mut walker = PathWalker {
                    ensemble: self,
                    tables,
                    row,
                    phi: &mut *phi,
                    path: &mut path,
                    tree,
                };
                walker.recurse(self.roots[tree], 0, 0, 0, 1.0, 1.0, NO_FEATURE);
            }
            if tables.complement && use_tables {
                for per_feature in phi.chunks_exact_mut(n_outputs) {
                    let (others, last) = per_feature.split_at_mut(n_outputs - 1);
                    last[0] = -others.iter().sum::<f64>();
                }
            }
        });
        self.finish(
            Method::TreePathDependent,
            features,
            rows,
            base_values,
            values,
            None,
        )
    }

    /// Path-dependent TreeSHAP of `features` with the SHAP interaction
    /// values (`Explanation::interactions`).
    ///
    /// For one leaf's multilinear game (see `QuadratureTree`), the Shapley
    /// interaction index of features i ≠ j on its path (Grabisch 1997) is
    /// value · (o_i − z_i)·(o_j − z_j) · ∫₀¹ Π_{k≠i,j} F_k(t) dt: the
    /// discrete second derivative in i and j, with the index's weights
    /// |S|!·(d−|S|−2)!/(d−1)! = ∫₀¹ t^|S|·(1−t)^(d−2−|S|) dt. The integrand
    /// has degree d − 2, so Gauss–Legendre quadrature is exact. Half the
    /// index is what shap computes by conditioning TreeSHAP on i present and
    /// absent. O(leaves · d³ · q) per tree and row (each pair's product
    /// runs over the path): batch work, not a request's.
    pub fn explain_interactions(&self, features: &[f64]) -> Result<Explanation> {
        let mut explanation = self.explain_path_dependent(features)?;
        let tables = self.shap_tables();
        let (m, k) = (self.spec.n_features, self.spec.n_outputs);
        let (nodes, weights) = gauss_legendre(tables.max_depth.div_ceil(2).max(1));
        let tested = self.tested_values(features);
        let mut interactions = vec![0.0; explanation.rows * m * m * k];
        for (row_index, (row, out)) in tested
            .chunks_exact(m)
            .zip(interactions.chunks_exact_mut(m * m * k))
            .enumerate()
        {
            for tree in 0..self.roots.len() {
                let mut walk = InteractionWalk {
                    ensemble: self,
                    tables,
                    tree,
                    row,
                    out: &mut *out,
                    path: Vec::with_capacity(tables.max_depth),
                    nodes: &nodes,
                    weights: &weights,
                };
                walk.visit(self.roots[tree]);
            }
            for i in 0..m {
                for o in 0..k {
                    let off_diagonal: f64 = (0..m)
                        .filter(|&j| j != i)
                        .map(|j| out[(i * m + j) * k + o])
                        .sum();
                    out[(i * m + i) * k + o] = explanation.value(row_index, i, o) - off_diagonal;
                }
            }
        }
        explanation.interactions = Some(interactions);
        Ok(explanation)
    }

    /// Interventional TreeSHAP of `features` against `background` (both
    /// row-major, `n_features` per row), in margin space.
    pub fn explain_interventional(
        &self,
        features: &[f64],
        background: &[f64],
        background_hash: Option<String>,
    ) -> Result<Explanation> {
        let tables = self.shap_tables();
        let n_features = self.spec.n_features;
        let n_outputs = self.spec.n_outputs;
        let rows = self.rows_of(features)?;
        let background_rows = self.rows_of(background)?;
        if background_rows == 0 {
            return Err(Error::input("the background data has no rows"));
        }
        let mut margins = vec![0.0; background_rows * n_outputs];
        self.predict_margins(background, &mut margins);
        let mut base_values = vec![0.0; n_outputs];
        for margin in margins.chunks_exact(n_outputs) {
            for (b, m) in base_values.iter_mut().zip(margin) {
                *b += m / background_rows as f64;
            }
        }
        let tested = self.tested_values(features);
        let reference = self.tested_values(background);
        let mut values = vec![0.0; rows * n_features * n_outputs];
        let stride = n_features * n_outputs;
        // Shapley weights by (|A|, |B|): w⁺ = (a−1)!·b!/(a+b)!, w⁻ = a!·(b−1)!/(a+b)!.
        let depth = tables.max_depth + 1;
        let weights = SubsetWeights::new(depth);
        let mut state = vec![Side::Neither; n_features];
        let mut a_set = Vec::with_capacity(depth);
        let mut b_set = Vec::with_capacity(depth);
        each_row(&tested, &mut values, n_features, stride, |row, phi| {
            for r in reference.chunks_exact(n_features) {
                for tree in 0..self.roots.len() {
                    let mut walker = InterventionalWalker {
                        ensemble: self,
                        tables,
                        weights: &weights,
                        x: row,
                        r,
                        phi: &mut *phi,
                        state: &mut state,
                        a_set: &mut a_set,
                        b_set: &mut b_set,
                        tree,
                        scale: 1.0 / background_rows as f64,
                    };
                    walker.recurse(self.roots[tree]);
                }
            }
        });
        self.finish(
            Method::TreeInterventional,
            features,
            rows,
            base_values,
            values,
            background_hash,
        )
    }

    fn rows_of(&self, features: &[f64]) -> Result<usize> {
        let n_features = self.spec.n_features;
        if !features.len().is_multiple_of(n_features) {
            return Err(Error::input(format!(
                "{} values do not make rows of {n_features} features",
                features.len()
            )));
        }
        Ok(features.len() / n_features)
    }

    /// Adds a leaf's `values` × `scale` to `out` (one slot per output),
    /// divided as the ensemble divides that tree.
    #[inline]
    fn add_leaf(
        &self,
        tree: usize,
        values: &[f64],
        scale: f64,
        out: &mut [f64],
        tables: &ShapTables,
    ) {
        let output = self.tree_outputs[tree];
        if output == u32::MAX {
            for ((o, v), d) in out.iter_mut().zip(values).zip(&tables.divisors) {
                *o += scale * v / d;
            }
        } else {
            let o = output as usize;
            out[o] += scale * values[0] / tables.divisors[o];
        }
    }

    fn finish(
        &self,
        method: Method,
        features: &[f64],
        rows: usize,
        base_values: Vec<f64>,
        values: Vec<f64>,
        background_hash: Option<String>,
    ) -> Result<Explanation> {
        let mut predictions = vec![0.0; rows * self.spec.n_outputs];
        self.predict_margins(features, &mut predictions);
        let (outputs, output_space) = self.explained_outputs();
        Ok(Explanation {
            method,
            output_space,
            features: self.feature_labels(),
            outputs,
            rows,
            base_values,
            values,
            predictions,
            background_hash,
            interactions: None,
        })
    }
}

fn label(labels: &super::ClassLabels, index: usize) -> String {
    match labels {
        super::ClassLabels::Int(v) => v
            .get(index)
            .map_or_else(|| index.to_string(), |l| l.to_string()),
        super::ClassLabels::Str(v) => v.get(index).cloned().unwrap_or_else(|| index.to_string()),
    }
}

/// Runs `explain(row, phi)` for every row of `features`. One thread: a
/// server explains concurrent requests on its own threads, and batch
/// callers split their rows across cores.
fn each_row(
    features: &[f64],
    values: &mut [f64],
    n_features: usize,
    stride: usize,
    mut explain: impl FnMut(&[f64], &mut [f64]),
) {
    for (row, phi) in features
        .chunks_exact(n_features)
        .zip(values.chunks_exact_mut(stride))
    {
        explain(row, phi);
    }
}

/// Path-dependent TreeSHAP by exact quadrature, one walk of the tree per
/// row: O(nodes · d/2) with d the most unique features on a path, against
/// O(leaves · d²) for the recursion of Lundberg et al.
///
/// One leaf's game, with z_j the product of the cover ratios of the path's
/// splits on feature j and o_j ∈ {0, 1} whether x takes every one of them,
/// is v(S) = value · Π_{j∈S} o_j · Π_{j∉S} z_j (features off the path are
/// null players). It is multilinear, so by Owen's multilinear extension
/// (Owen 1972; the route of Linear TreeSHAP, Yu et al., NeurIPS 2022),
/// with F_j(t) = z_j + t·(o_j − z_j) and A(t) = Π_j F_j(t),
///
///   φ_i = value · ∫₀¹ A(t) · (o_i − z_i)/F_i(t) dt
///       = value · ∫₀¹ A(t) · d/dt log F_i(t) dt.
///
/// Along the path, each split on feature i changes F_i from its value
/// above (1 before the first split) to the merged value below, so
/// d/dt log F_i is the sum over those splits of D_c(t) = d/dt log F_i^c −
/// d/dt log F_i^parent. Summing over leaves, a tree's φ_i is
/// Σ_c ∫ D_c(t)·C_c(t) dt over the children c of splits on i, where
/// C_c(t) = Σ_{leaves ℓ under c} value_ℓ·A_ℓ(t) accumulates bottom-up. Every
/// leaf's integrand is a polynomial of degree < d, so Gauss–Legendre
/// quadrature with ⌈d/2⌉ nodes is exact; the walk carries A(t) and C(t) at
/// the nodes only. D_c is a tree constant once it is known whether x took c
/// and every earlier split on i, so the factor F_c/F_parent and the
/// weighted derivative w_l·D_c(t_l) are prepared per node for both cases.
#[derive(Debug, Clone)]
struct QuadratureTree {
    root: u32,
    /// Quadrature nodes.
    q: usize,
    /// Per node (offset from the root): where its parent's split feature
    /// was last split above it (an offset, or `NONE`).
    previous: Vec<u32>,
    /// Per node with a `previous`: z / z_previous, A's factor when x left
    /// the feature's path above (the node then adds nothing to φ).
    ratio: Vec<f64>,
    /// Per node, `4·q` values: A's factor F_c/F_parent at the quadrature
    /// nodes and w_l·D_c(t_l) when x takes the node, then both when it
    /// does not.
    coefficients: Vec<f64>,
    max_depth: usize,
}

const NONE: u32 = u32::MAX;

/// Unique features a path may have for the quadrature (16 nodes); trees
/// with longer paths take the recursion.
const MAX_PATH_FEATURES: usize = 32;

#[derive(Default)]
struct WalkScratch {
    /// Per node: whether x took it and every split on its feature above.
    followed: Vec<bool>,
    /// C(t) per level of the walk, `q × width` each (multi-output leaves).
    sums: Vec<f64>,
}

/// How a child's subtree enters the walk.
enum Branch<'a, const Q: usize> {
    /// x left the split feature's path above: A(t) scales by the cover
    /// ratio, and the child adds nothing to φ.
    Scaled(f64),
    /// A(t) scales by `factor`; φ of the split feature gains
    /// Σ_l `weighted_derivative`_l · C_c(t_l).
    Active {
        factor: &'a [f64; Q],
        weighted_derivative: &'a [f64; Q],
    },
}

impl QuadratureTree {
    fn build(ensemble: &TreeEnsemble, tree: usize) -> Option<QuadratureTree> {
        let root = ensemble.roots[tree];
        let end = ensemble
            .roots
            .get(tree + 1)
            .copied()
            .unwrap_or_else(|| ensemble.pad_leaf());
        let span = (end - root) as usize;
        let mut builder = Builder {
            ensemble,
            root,
            zero: vec![1.0; span],
            previous: vec![NONE; span],
            last: vec![NONE; ensemble.spec.n_features],
            max_unique: 0,
            max_depth: 0,
        };
        builder.visit(root, 0, 0);
        let Builder {
            zero,
            previous,
            max_unique,
            max_depth,
            ..
        } = builder;
        if max_unique > MAX_PATH_FEATURES {
            return None;
        }
        let q = max_unique.div_ceil(2).max(1);
        let (nodes, weights) = gauss_legendre(q);
        let mut ratio = vec![0.0; span];
        let mut coefficients = vec![0.0; span * 4 * q];
        for c in 0..span {
            let z = zero[c];
            let above = (previous[c] != NONE).then(|| zero[previous[c] as usize]);
            if let Some(zp) = above {
                ratio[c] = if zp == 0.0 { 0.0 } else { z / zp };
            }
            let block = &mut coefficients[c * 4 * q..(c + 1) * 4 * q];
            for l in 0..q {
                let t = nodes[l];
                // Followed: F = z + t·(1 − z); left: F = z·(1 − t), whose
                // d/dt log F is −1/(1 − t).
                let followed = z + t * (1.0 - z);
                let cases = [
                    (followed, (1.0 - z) / followed),
                    (z * (1.0 - t), -1.0 / (1.0 - t)),
                ];
                for (case, (mut f, mut d)) in cases.into_iter().enumerate() {
                    if let Some(zp) = above {
                        // Relative to F above, which x followed.
                        let f_above = zp + t * (1.0 - zp);
                        f /= f_above;
                        d -= (1.0 - zp) / f_above;
                    }
                    block[case * 2 * q + l] = f;
                    block[case * 2 * q + q + l] = weights[l] * d;
                }
            }
        }
        Some(QuadratureTree {
            root,
            q,
            previous,
            ratio,
            coefficients,
            max_depth,
        })
    }

    /// The child at offset `c`, which x takes or not, given `followed` of
    /// the nodes above; records its own `followed`.
    #[inline(always)]
    fn branch<const Q: usize>(&self, c: usize, took: bool, followed: &mut [bool]) -> Branch<'_, Q> {
        let previous = self.previous[c];
        if previous != NONE && !followed[previous as usize] {
            followed[c] = false;
            return Branch::Scaled(self.ratio[c]);
        }
        followed[c] = took;
        let start = c * 4 * Q + if took { 0 } else { 2 * Q };
        let (factor, weighted_derivative) = self.coefficients[start..start + 2 * Q].split_at(Q);
        Branch::Active {
            factor: factor.try_into().expect("Q factors"),
            weighted_derivative: weighted_derivative.try_into().expect("Q weights"),
        }
    }

    fn explain(
        &self,
        ensemble: &TreeEnsemble,
        tree: usize,
        row: &[f64],
        phi: &mut [f64],
        tables: &ShapTables,
        scratch: &mut WalkScratch,
    ) {
        // Leaves' values are read in their layout; the last is skipped when
        // it is the complement of the others.
        let stride = ensemble.leaf_width(tree);
        let width = if tables.complement {
            stride - 1
        } else {
            stride
        };
        scratch.followed.clear();
        scratch.followed.resize(self.previous.len(), false);
        let n_outputs = ensemble.spec.n_outputs;
        let output = ensemble.tree_outputs[tree];
        macro_rules! walk {
            ($($q:literal)*) => {
                match self.q {
                    $($q => if width == 1 {
                        // One value per leaf (boosters, binary forests):
                        // C(t) travels by value.
                        let output = if output == u32::MAX { 0 } else { output as usize };
                        let mut walk = ScalarWalk::<$q> {
                            tree: self,
                            ensemble,
                            row,
                            phi: &mut phi[output..],
                            n_outputs,
                            scale: tables.inverse_divisors[output],
                            followed: &mut scratch.followed,
                        };
                        walk.visit(self.root, [1.0; $q]);
                    } else {
                        scratch.sums.clear();
                        scratch.sums.resize((self.max_depth + 2) * $q * width, 0.0);
                        let mut walk = VectorWalk::<$q> {
                            tree: self,
                            ensemble,
                            row,
                            phi,
                            followed: &mut scratch.followed,
                            width,
                            output,
                            n_outputs,
                            inverse_divisors: &tables.inverse_divisors,
                        };
                        walk.visit(self.root, [1.0; $q], &mut scratch.sums);
                    })*
                    _ => unreachable!("at most 16 quadrature nodes"),
                }
            };
        }
        walk!(1 2 3 4 5 6 7 8 9 10 11 12 13 14 15 16);
    }
}

struct Builder<'a> {
    ensemble: &'a TreeEnsemble,
    root: u32,
    zero: Vec<f64>,
    previous: Vec<u32>,
    /// Per feature, the node (offset) below its last split on the current
    /// path.
    last: Vec<u32>,
    max_unique: usize,
    max_depth: usize,
}

impl Builder<'_> {
    fn visit(&mut self, node: u32, depth: usize, unique: usize) {
        self.max_depth = self.max_depth.max(depth);
        self.max_unique = self.max_unique.max(unique);
        let n = self.ensemble.nodes[node as usize];
        if n.feature_flags & LEAF != 0 {
            return;
        }
        let feature = n.feature();
        let before = self.last[feature];
        for child in [n.child, n.child + 1] {
            let c = (child - self.root) as usize;
            let ratio = self.ensemble.covers[child as usize] / self.ensemble.covers[node as usize];
            if before == NONE {
                self.zero[c] = ratio;
            } else {
                self.previous[c] = before;
                self.zero[c] = self.zero[before as usize] * ratio;
            }
            self.last[feature] = c as u32;
            self.visit(child, depth + 1, unique + usize::from(before == NONE));
        }
        self.last[feature] = before;
    }
}

/// The walk of a tree whose leaves hold one value for the explained
/// outputs.
struct ScalarWalk<'a, const Q: usize> {
    tree: &'a QuadratureTree,
    ensemble: &'a TreeEnsemble,
    row: &'a [f64],
    /// φ from the tree's output on: feature i's slot is `i · n_outputs`.
    phi: &'a mut [f64],
    n_outputs: usize,
    /// 1 / the output's divisor (a forest's tree count).
    scale: f64,
    followed: &'a mut [bool],
}

impl<const Q: usize> ScalarWalk<'_, Q> {
    /// C(t) of the subtree at `node`, reached with A(t) = `a`; adds the
    /// subtree's contributions to φ.
    fn visit(&mut self, node: u32, a: [f64; Q]) -> [f64; Q] {
        let ensemble = self.ensemble;
        let n = ensemble.nodes[node as usize];
        if n.feature_flags & LEAF != 0 {
            let value = ensemble.leaf_values[n.value_index()];
            return a.map(|a| a * value);
        }
        let taken = ensemble.step::<false>(&ensemble.nodes, node, self.row);
        let mut total = [0.0; Q];
        let mut integral = 0.0;
        for child in [n.child, n.child + 1] {
            let c = (child - self.tree.root) as usize;
            let sums = match self.tree.branch::<Q>(c, child == taken, self.followed) {
                Branch::Scaled(ratio) => self.visit(child, a.map(|a| a * ratio)),
                Branch::Active {
                    factor,
                    weighted_derivative,
                } => {
                    let sums = self.visit(child, std::array::from_fn(|l| a[l] * factor[l]));
                    for l in 0..Q {
                        integral += weighted_derivative[l] * sums[l];
                    }
                    sums
                }
            };
            for l in 0..Q {
                total[l] += sums[l];
            }
        }
        self.phi[n.feature() * self.n_outputs] += integral * self.scale;
        total
    }
}

/// The walk of a tree whose leaves hold several values (a multi-class
/// forest).
struct VectorWalk<'a, const Q: usize> {
    tree: &'a QuadratureTree,
    ensemble: &'a TreeEnsemble,
    row: &'a [f64],
    phi: &'a mut [f64],
    followed: &'a mut [bool],
    width: usize,
    /// The output single-valued leaves add to (`u32::MAX`: every output).
    output: u32,
    n_outputs: usize,
    /// 1 / the divisor of each output (a forest's tree count).
    inverse_divisors: &'a [f64],
}

impl<const Q: usize> VectorWalk<'_, Q> {
    /// Adds C(t) of the subtree at `node` (reached with A(t) = `a`) to
    /// `sums[..Q·width]` (output-major), and the subtree's contributions to
    /// φ; `sums[Q·width..]` is room for the levels below.
    fn visit(&mut self, node: u32, a: [f64; Q], sums: &mut [f64]) {
        let ensemble = self.ensemble;
        let n = ensemble.nodes[node as usize];
        let qw = Q * self.width;
        let (mine, below) = sums.split_at_mut(qw);
        if n.feature_flags & LEAF != 0 {
            let first = n.value_index();
            let values = &ensemble.leaf_values[first..first + self.width];
            for (sum, v) in mine.chunks_exact_mut(Q).zip(values) {
                for l in 0..Q {
                    sum[l] += v * a[l];
                }
            }
            return;
        }
        let feature = n.feature();
        let taken = ensemble.step::<false>(&ensemble.nodes, node, self.row);
        for child in [n.child, n.child + 1] {
            let c = (child - self.tree.root) as usize;
            below[..qw].fill(0.0);
            let weighted_derivative = match self.tree.branch::<Q>(c, child == taken, self.followed)
            {
                Branch::Scaled(ratio) => {
                    self.visit(child, a.map(|a| a * ratio), below);
                    None
                }
                Branch::Active {
                    factor,
                    weighted_derivative,
                } => {
                    self.visit(child, std::array::from_fn(|l| a[l] * factor[l]), below);
                    Some(weighted_derivative)
                }
            };
            let child_sums = &below[..qw];
            if let Some(weighted_derivative) = weighted_derivative {
                for (o, sums) in child_sums.chunks_exact(Q).enumerate() {
                    let integral: f64 = (0..Q).map(|l| weighted_derivative[l] * sums[l]).sum();
                    let output = if self.output == u32::MAX {
                        o
                    } else {
                        self.output as usize
                    };
                    self.phi[feature * self.n_outputs + output] +=
                        integral * self.inverse_divisors[output];
                }
            }
            for (m, s) in mine.iter_mut().zip(child_sums) {
                *m += s;
            }
        }
    }
}

/// One unique feature on the path to a node: `one`, whether x took every
/// split on it; `zero`, the product of their cover ratios.
#[derive(Debug, Clone, Copy)]
struct PathFeature {
    feature: usize,
    one: f64,
    zero: f64,
}

/// The interaction values of one tree for one row.
struct InteractionWalk<'a> {
    ensemble: &'a TreeEnsemble,
    tables: &'a ShapTables,
    tree: usize,
    row: &'a [f64],
    /// Φ of the row, `features × features × outputs`.
    out: &'a mut [f64],
    path: Vec<PathFeature>,
    nodes: &'a [f64],
    weights: &'a [f64],
}

impl InteractionWalk<'_> {
    fn visit(&mut self, node: u32) {
        let ensemble = self.ensemble;
        let n = ensemble.nodes[node as usize];
        if n.feature_flags & LEAF != 0 {
            self.leaf(n);
            return;
        }
        let feature = n.feature();
        let taken = ensemble.step::<false>(&ensemble.nodes, node, self.row);
        let cover = ensemble.covers[node as usize];
        let known = self.path.iter().position(|p| p.feature == feature);
        for child in [n.child, n.child + 1] {
            let ratio = ensemble.covers[child as usize] / cover;
            let took = f64::from(u8::from(child == taken));
            match known {
                Some(p) => {
                    let saved = self.path[p];
                    self.path[p].one *= took;
                    self.path[p].zero *= ratio;
                    self.visit(child);
                    self.path[p] = saved;
                }
                None => {
                    self.path.push(PathFeature {
                        feature,
                        one: took,
                        zero: ratio,
                    });
                    self.visit(child);
                    self.path.pop();
                }
            }
        }
    }

    fn leaf(&mut self, n: Node) {
        let ensemble = self.ensemble;
        let (m, k) = (ensemble.spec.n_features, ensemble.spec.n_outputs);
        let first = n.value_index();
        let values = &ensemble.leaf_values[first..first + ensemble.leaf_width(self.tree)];
        let path = &self.path;
        for i in 0..path.len() {
            for j in i + 1..path.len() {
                let integral: f64 = self
                    .nodes
                    .iter()
                    .zip(self.weights)
                    .map(|(&t, &w)| {
                        let product: f64 = path
                            .iter()
                            .enumerate()
                            .filter(|&(index, _)| index != i && index != j)
                            .map(|(_, p)| p.zero + t * (p.one - p.zero))
                            .product();
                        w * product
                    })
                    .sum();
                let (a, b) = (path[i], path[j]);
                let half_index = 0.5 * (a.one - a.zero) * (b.one - b.zero) * integral;
                for (x, y) in [(a.feature, b.feature), (b.feature, a.feature)] {
                    let at = (x * m + y) * k;
                    ensemble.add_leaf(
                        self.tree,
                        values,
                        half_index,
                        &mut self.out[at..at + k],
                        self.tables,
                    );
                }
            }
        }
    }
}

/// Gauss–Legendre nodes and weights on [0, 1] for n points: the roots of
/// the Legendre polynomial P_n by Newton's method from the Chebyshev
/// estimate cos(π(i − 1/4)/(n + 1/2)), weights 2/((1 − x²)·P_n'(x)²)
/// (Abramowitz & Stegun 25.4.29), mapped from [−1, 1]. Exact for
/// polynomials of degree ≤ 2n − 1.
fn gauss_legendre(n: usize) -> (Vec<f64>, Vec<f64>) {
    let mut nodes = vec![0.0; n];
    let mut weights = vec![0.0; n];
    for i in 0..n {
        let mut x = (std::f64::consts::PI * (i as f64 + 0.75) / (n as f64 + 0.5)).cos();
        let mut derivative = 0.0;
        for _ in 0..100 {
            // P_n(x) and P_{n−1}(x) by the three-term recurrence.
            let (mut p0, mut p1) = (1.0, x);
            for k in 2..=n {
                let p2 = ((2 * k - 1) as f64 * x * p1 - (k - 1) as f64 * p0) / k as f64;
                p0 = p1;
                p1 = p2;
            }
            let (pn, pn1) = if n == 1 { (x, 1.0) } else { (p1, p0) };
            derivative = n as f64 * (x * pn - pn1) / (x * x - 1.0);
            let step = pn / derivative;
            x -= step;
            if step.abs() < 1e-16 {
                break;
            }
        }
        nodes[i] = (1.0 - x) / 2.0;
        weights[i] = 1.0 / ((1.0 - x * x) * derivative * derivative);
    }
    (nodes, weights)
}

/// One path-dependent TreeSHAP recursion over one tree for one row.
struct PathWalker<'a> {
    ensemble: &'a TreeEnsemble,
    tables: &'a ShapTables,
    row: &'a [f64],
    phi: &'a mut [f64],
    /// Room for every level's copy of the path: level `d` uses `d + 1`
    /// elements after its parent's.
    path: &'a mut [PathElement],
    tree: usize,
}

impl PathWalker<'_> {
    /// The paper's RECURSE: `depth` is the number of unique features on the
    /// parent's path (its elements are `path[parent..parent + depth]`), and
    /// the new element is (`zero`, `one`, `feature`).
    #[allow(clippy::too_many_arguments)]
    fn recurse(
        &mut self,
        node: u32,
        parent: usize,
        offset: usize,
        depth: usize,
        zero: f64,
        one: f64,
        feature: u32,
    ) {
        if offset != parent {
            self.path.copy_within(parent..parent + depth, offset);
        }
        extend(&mut self.path[offset..], depth, zero, one, feature);
        let ensemble = self.ensemble;
        let n: Node = ensemble.nodes[node as usize];
        if n.feature_flags & LEAF != 0 {
            let path = &self.path[offset..=offset + depth];
            let first = n.value_index();
            let n_outputs = ensemble.spec.n_outputs;
            let width = ensemble.leaf_width(self.tree);
            let values = &ensemble.leaf_values[first..first + width];
            for i in 1..=depth {
                let element = path[i];
                let scale = unwound_sum(path, depth, i) * (element.one - element.zero);
                let f = element.feature as usize;
                ensemble.add_leaf(
                    self.tree,
                    values,
                    scale,
                    &mut self.phi[f * n_outputs..(f + 1) * n_outputs],
                    self.tables,
                );
            }
            return;
        }
        let hot = ensemble.step::<false>(&ensemble.nodes, node, self.row);
        let cold = if hot == n.child { n.child + 1 } else { n.child };
        let cover = ensemble.covers[node as usize];
        let hot_zero = ensemble.covers[hot as usize] / cover;
        let cold_zero = ensemble.covers[cold as usize] / cover;
        let split = n.feature() as u32;
        let mut incoming_zero = 1.0;
        let mut incoming_one = 1.0;
        let mut depth = depth;
        // A feature already on the path: undo its element and merge its
        // fractions into the new one, so that each feature appears once.
        if let Some(k) = (1..=depth).find(|&k| self.path[offset + k].feature == split) {
            incoming_zero = self.path[offset + k].zero;
            incoming_one = self.path[offset + k].one;
            unwind(&mut self.path[offset..], depth, k);
            depth -= 1;
        }
        let child_offset = offset + depth + 1;
        self.recurse(
            hot,
            offset,
            child_offset,
            depth + 1,
            hot_zero * incoming_zero,
            incoming_one,
            split,
        );
        self.recurse(
            cold,
            offset,
            child_offset,
            depth + 1,
            cold_zero * incoming_zero,
            0.0,
            split,
        );
    }
}

/// Which row's branch a feature follows on the current interventional path.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Side {
    /// x and r have agreed wherever the feature was tested, so far.
    Neither,
    /// The path follows x where they differ (the feature is in A).
    Explained,
    /// The path follows r (the feature is in B).
    Reference,
}

/// w⁺(a, b) = (a−1)!·b!/(a+b)! and w⁻(a, b) = a!·(b−1)!/(a+b)! for
/// a, b ≤ `max`.
struct SubsetWeights {
    size: usize,
    positive: Vec<f64>,
    negative: Vec<f64>,
}

impl SubsetWeights {
    fn new(max: usize) -> SubsetWeights {
        let size = max + 1;
        let factorial: Vec<f64> = (0..=2 * max)
            .scan(1.0, |f, n| {
                let value = *f;
                *f *= (n + 1) as f64;
                Some(value)
            })
            .collect();
        let mut positive = vec![0.0; size * size];
        let mut negative = vec![0.0; size * size];
        for a in 0..size {
            for b in 0..size {
                if a > 0 {
                    positive[a * size + b] = factorial[a - 1] * factorial[b] / factorial[a + b];
                }
                if b > 0 {
                    negative[a * size + b] = factorial[a] * factorial[b - 1] / factorial[a + b];
                }
            }
        }
        SubsetWeights {
            size,
            positive,
            negative,
        }
    }
}

struct InterventionalWalker<'a> {
    ensemble: &'a TreeEnsemble,
    tables: &'a ShapTables,
    weights: &'a SubsetWeights,
    x: &'a [f64],
    r: &'a [f64],
    phi: &'a mut [f64],
    state: &'a mut Vec<Side>,
    a_set: &'a mut Vec<u32>,
    b_set: &'a mut Vec<u32>,
    tree: usize,
    /// 1 / background rows.
    scale: f64,
}

impl InterventionalWalker<'_> {
    fn recurse(&mut self, node: u32) {
        let ensemble = self.ensemble;
        let n = ensemble.nodes[node as usize];
        if n.feature_flags & LEAF != 0 {
            let (a, b) = (self.a_set.len(), self.b_set.len());
            if a + b == 0 {
                return;
            }
            let first = n.value_index();
            let width = ensemble.leaf_width(self.tree);
            let values = &ensemble.leaf_values[first..first + width];
            let n_outputs = ensemble.spec.n_outputs;
            let index = a * self.weights.size + b;
            let gain = self.scale * self.weights.positive[index];
            let loss = -self.scale * self.weights.negative[index];
            for (set, weight) in [(&*self.a_set, gain), (&*self.b_set, loss)] {
                for &f in set {
                    let f = f as usize;
                    ensemble.add_leaf(
                        self.tree,
                        values,
                        weight,
                        &mut self.phi[f * n_outputs..(f + 1) * n_outputs],
                        self.tables,
                    );
                }
            }
            return;
        }
        let feature = n.feature();
        let x_child = ensemble.step::<false>(&ensemble.nodes, node, self.x);
        let r_child = ensemble.step::<false>(&ensemble.nodes, node, self.r);
        match self.state[feature] {
            Side::Explained => self.recurse(x_child),
            Side::Reference => self.recurse(r_child),
            Side::Neither if x_child == r_child => self.recurse(x_child),
            Side::Neither => {
                self.state[feature] = Side::Explained;
                self.a_set.push(feature as u32);
                self.recurse(x_child);
                self.a_set.pop();
                self.state[feature] = Side::Reference;
                self.b_set.push(feature as u32);
                self.recurse(r_child);
                self.b_set.pop();
                self.state[feature] = Side::Neither;
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::trees::{compile, EnsembleSpec, Missing, Test, Tree, TreeNode};

    /// f(x) = 1 when x0 ≤ 0.5 and x1 ≤ 0.5, else 0, with uneven covers.
    fn and_tree() -> TreeEnsemble {
        let split = |feature, left, right, cover| TreeNode::Split {
            feature,
            test: Test::LessOrEqual(0.5),
            missing: Missing::Right,
            left,
            right,
            cover,
        };
        let leaf = |v: f64, cover| TreeNode::Leaf {
            values: vec![v],
            cover,
        };
        compile(EnsembleSpec {
            source: "test",
            n_features: 3,
            n_outputs: 1,
            trees: vec![Tree {
                nodes: vec![
                    split(0, 1, 2, 10.0),
                    split(1, 3, 4, 6.0),
                    leaf(0.0, 4.0),
                    leaf(1.0, 2.0),
                    leaf(0.0, 4.0),
                ],
                output: 0,
            }],
            base: vec![0.25],
            average: false,
            input_f32: false,
            accumulate_f32: false,
            link: Link::Identity,
            task: Task::Regression,
            feature_names: None,
            categories: None,
        })
        .unwrap()
    }

    /// Shapley values by enumeration of the game v(S) = E[f | x_S] with
    /// cover fractions, for the AND tree: the brute force the recursion
    /// must agree with.
    fn brute_force(x: [f64; 3]) -> [f64; 3] {
        let covers = (10.0, 6.0, 4.0, 2.0, 4.0);
        let v = |s: [bool; 3]| -> f64 {
            // Probability of reaching the only non-zero leaf (value 1).
            let first = if s[0] {
                f64::from(u8::from(x[0] <= 0.5))
            } else {
                covers.1 / covers.0
            };
            let second = if s[1] {
                f64::from(u8::from(x[1] <= 0.5))
            } else {
                covers.3 / covers.1
            };
            first * second
        };
        let mut phi = [0.0; 3];
        let factorial = [1.0, 1.0, 2.0, 6.0];
        for (i, phi) in phi.iter_mut().enumerate() {
            for mask in 0..8u32 {
                if mask & (1 << i) != 0 {
                    continue;
                }
                let s: [bool; 3] = std::array::from_fn(|j| mask & (1 << j) != 0);
                let mut with = s;
                with[i] = true;
                let size = mask.count_ones() as usize;
                let weight = factorial[size] * factorial[3 - size - 1] / factorial[3];
                *phi += weight * (v(with) - v(s));
            }
        }
        phi
    }

    #[test]
    fn path_dependent_values_are_the_shapley_values_of_the_cover_game() {
        let ensemble = and_tree();
        for x in [
            [0.0, 0.0, 5.0],
            [0.0, 1.0, 0.0],
            [1.0, 0.0, 0.0],
            [1.0, 1.0, 1.0],
        ] {
            let explanation = ensemble.explain_path_dependent(&x).unwrap();
            let expected = brute_force(x);
            for (f, expected) in expected.iter().enumerate() {
                let got = explanation.value(0, f, 0);
                assert!(
                    (got - expected).abs() < 1e-12,
                    "x={x:?} f{f}: {got} vs {expected}"
                );
            }
            assert!((explanation.base_values[0] - (0.25 + 0.2)).abs() < 1e-12);
            assert!(explanation.additivity_error() < 1e-12);
        }
    }

    #[test]
    fn interventional_values_add_up_to_the_difference_from_the_background_mean() {
        let ensemble = and_tree();
        let background = [1.0, 1.0, 0.0, 0.0, 0.0, 0.0, 0.0, 1.0, 0.0];
        let explanation = ensemble
            .explain_interventional(&[0.0, 0.0, 0.0], &background, None)
            .unwrap();
        // f(x) = 1.25; f over the background: 0.25, 1.25, 0.25.
        assert!((explanation.base_values[0] - (0.25 + 1.0 / 3.0)).abs() < 1e-12);
        assert!(explanation.additivity_error() < 1e-12);
        // Against r = (0, 1): only x1 differs, and it alone earns the 1.
        // Against r = (1, 1): both differ and split it. Against (0, 0): nothing.
        let phi0 = explanation.value(0, 0, 0);
        let phi1 = explanation.value(0, 1, 0);
        assert!((phi0 - 0.5 / 3.0).abs() < 1e-12, "{phi0}");
        assert!((phi1 - 1.5 / 3.0).abs() < 1e-12, "{phi1}");
        assert_eq!(explanation.value(0, 2, 0), 0.0);
    }

    /// A random tree of the given depth over `n_features` features (so
    /// that features repeat on paths), with covers that split each node's
    /// cover at random and a leaf value per node.
    fn random_tree(seed: u64, depth: usize, n_features: usize) -> Tree {
        let mut state = seed;
        let mut next = move || {
            state = state
                .wrapping_mul(6364136223846793005)
                .wrapping_add(1442695040888963407);
            (state >> 11) as f64 / (1u64 << 53) as f64
        };
        let mut nodes = Vec::new();
        // (cover, depth) in the order nodes are created; children appended.
        let mut queue = std::collections::VecDeque::from([(0usize, 100.0f64, 0usize)]);
        nodes.push(None);
        while let Some((index, cover, level)) = queue.pop_front() {
            if level == depth || next() < 0.1 {
                nodes[index] = Some(TreeNode::Leaf {
                    values: vec![next() * 2.0 - 1.0],
                    cover,
                });
                continue;
            }
            let share = 0.1 + 0.8 * next();
            let (left, right) = (nodes.len(), nodes.len() + 1);
            nodes.push(None);
            nodes.push(None);
            nodes[index] = Some(TreeNode::Split {
                feature: (next() * n_features as f64) as usize,
                test: Test::LessOrEqual(next()),
                missing: if next() < 0.5 {
                    Missing::Left
                } else {
                    Missing::Right
                },
                left,
                right,
                cover,
            });
            queue.push_back((left, cover * share, level + 1));
            queue.push_back((right, cover * (1.0 - share), level + 1));
        }
        Tree {
            nodes: nodes.into_iter().map(Option::unwrap).collect(),
            output: 0,
        }
    }

    #[test]
    fn leaf_tables_agree_with_the_recursion() {
        let spec = EnsembleSpec {
            trees: (0..6).map(|seed| random_tree(seed, 7, 5)).collect(),
            ..and_tree().spec().clone()
        };
        let spec = EnsembleSpec {
            n_features: 5,
            ..spec
        };
        let ensemble = compile(spec).unwrap();
        let rows: Vec<f64> = (0..40)
            .map(|i| {
                if i % 7 == 3 {
                    f64::NAN
                } else {
                    ((i * 37) % 100) as f64 / 100.0
                }
            })
            .collect();
        let fast = ensemble.path_dependent(&rows, true).unwrap();
        let slow = ensemble.path_dependent(&rows, false).unwrap();
        assert!(ensemble.shap_tables().fast.iter().all(Option::is_some));
        for (a, b) in fast.values.iter().zip(&slow.values) {
            assert!((a - b).abs() < 1e-12, "{a} vs {b}");
        }
        assert!(fast.additivity_error() < 1e-12);
    }

    #[test]
    fn placeholder_covers_are_refused() {
        let mut spec = and_tree().spec().clone();
        for node in &mut spec.trees[0].nodes {
            match node {
                TreeNode::Split { cover, .. } | TreeNode::Leaf { cover, .. } => *cover = 1.0,
            }
        }
        let error = compile(spec)
            .unwrap()
            .explain_path_dependent(&[0.0; 3])
            .unwrap_err();
        assert!(error.to_string().contains("placeholder"), "{error}");
    }
}
