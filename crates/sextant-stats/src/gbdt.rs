//! Gradient-boosted regression trees for squared error: the "nanny" model
//! behind direct loss estimation ([`crate::dle`]).
//!
//! Least-squares boosting (Friedman, "Greedy function approximation: a
//! gradient boosting machine", Ann. Statist. 29(5), 2001, Algorithm 2,
//! LS_Boost): start from the mean, `F_0 = ȳ`; for m = 1..M fit a tree to
//! the residuals `r_i = y_i − F_{m−1}(x_i)`, set each leaf to the mean
//! residual of its rows, and add it shrunk, `F_m = F_{m−1} + ν · tree_m`.
//!
//! Trees grow as LightGBM grows them (Ke et al., "LightGBM: A highly
//! efficient gradient boosting decision tree", NeurIPS 2017), so that the
//! defaults mean what NannyML's LightGBM nanny means: features are cut
//! into at most 255 bins at the training data's quantiles, and the leaf
//! whose best split gains most is split next (leaf-wise, up to 31 leaves),
//! never leaving fewer than 20 rows in a leaf. A split's gain is the drop
//! in squared error, `S_L²/n_L + S_R²/n_R − S²/n` for residual sums `S`
//! over `n` rows. Missing values (NaN) have a bin of their own and go to
//! whichever side gains more. The result is not LightGBM's model bit for
//! bit (LightGBM adds regularisation terms and its own binning details),
//! only the same kind of model with the same capacity.

use std::collections::BinaryHeap;

/// Training settings.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct GbdtConfig {
    /// Boosting rounds, M (at least 1).
    pub trees: usize,
    /// Shrinkage ν in (0, 1].
    pub learning_rate: f64,
    /// Leaves per tree (at least 2).
    pub max_leaves: usize,
    /// Fewest training rows in a leaf (at least 1).
    pub min_leaf_rows: usize,
    /// Bins per feature, missing values aside (2..=65535).
    pub max_bins: usize,
}

impl GbdtConfig {
    /// LightGBM's `LGBMRegressor()` defaults: 100 trees, learning rate 0.1,
    /// 31 leaves, 20 rows per leaf, 255 bins.
    pub const LIGHTGBM: GbdtConfig = GbdtConfig {
        trees: 100,
        learning_rate: 0.1,
        max_leaves: 31,
        min_leaf_rows: 20,
        max_bins: 255,
    };
}

/// Why a model could not be trained.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum GbdtError {
    #[error("no training rows")]
    Empty,
    #[error("feature {feature} has {got} values for {rows} rows")]
    Ragged {
        feature: usize,
        got: usize,
        rows: usize,
    },
    #[error("a training target is not finite")]
    NonFiniteTarget,
    #[error("invalid settings: {0}")]
    Config(&'static str),
}

#[derive(Debug, Clone)]
enum Node {
    Leaf(f64),
    Split {
        feature: usize,
        /// Rows whose bin is at most this go left.
        bin: u16,
        missing_left: bool,
        left: usize,
        right: usize,
    },
}

#[derive(Debug, Clone)]
struct Tree {
    nodes: Vec<Node>,
}

impl Tree {
    fn predict(&self, bin_of: impl Fn(usize) -> Option<u16>) -> f64 {
        let mut at = 0;
        loop {
            match &self.nodes[at] {
                Node::Leaf(value) => return *value,
                Node::Split {
                    feature,
                    bin,
                    missing_left,
                    left,
                    right,
                } => {
                    let goes_left = match bin_of(*feature) {
                        Some(b) => b <= *bin,
                        None => *missing_left,
                    };
                    at = if goes_left { *left } else { *right };
                }
            }
        }
    }
}

/// A trained model.
#[derive(Debug, Clone)]
pub struct Gbdt {
    base: f64,
    trees: Vec<Tree>,
    /// Per feature, the upper edge of every bin but the last.
    edges: Vec<Vec<f64>>,
}

/// Bin of `value` under `edges`; `None` for a missing value.
fn bin_of(edges: &[f64], value: f64) -> Option<u16> {
    if value.is_nan() {
        return None;
    }
    Some(edges.partition_point(|&edge| edge < value) as u16)
}

/// Upper bin edges of one feature: between consecutive distinct values
/// when there are few, else at quantiles of the distinct values weighted
/// by their counts.
fn feature_edges(values: &[f64], max_bins: usize) -> Vec<f64> {
    let mut sorted: Vec<f64> = values.iter().copied().filter(|v| !v.is_nan()).collect();
    sorted.sort_by(f64::total_cmp);
    let mut distinct: Vec<(f64, usize)> = Vec::new();
    for v in sorted.iter().copied() {
        match distinct.last_mut() {
            Some((last, count)) if *last == v => *count += 1,
            _ => distinct.push((v, 1)),
        }
    }
    if distinct.len() <= max_bins {
        return distinct
            .windows(2)
            .map(|pair| pair[0].0 + (pair[1].0 - pair[0].0) / 2.0)
            .collect();
    }
    let total = sorted.len() as f64;
    let mut edges = Vec::with_capacity(max_bins - 1);
    let mut seen = 0usize;
    let mut next_cut = 1;
    for pair in distinct.windows(2) {
        seen += pair[0].1;
        if next_cut < max_bins && seen as f64 >= total * next_cut as f64 / max_bins as f64 {
            edges.push(pair[0].0 + (pair[1].0 - pair[0].0) / 2.0);
            while next_cut < max_bins && seen as f64 >= total * next_cut as f64 / max_bins as f64 {
                next_cut += 1;
            }
        }
    }
    edges
}

/// Residual sums and counts per bin of every feature over one leaf's rows
/// (per feature, the last slot is the missing bin). A child's histograms
/// are its parent's minus its sibling's, so only the smaller child's are
/// counted (LightGBM's histogram subtraction).
struct Histograms {
    sums: Vec<Vec<f64>>,
    counts: Vec<Vec<u32>>,
    total: f64,
    rows: usize,
}

impl Histograms {
    fn count(
        binned: &[Vec<u16>],
        edges: &[Vec<f64>],
        residuals: &[f64],
        rows: &[u32],
    ) -> Histograms {
        let mut sums = Vec::with_capacity(binned.len());
        let mut counts = Vec::with_capacity(binned.len());
        for (column, feature_edges) in binned.iter().zip(edges) {
            let bins = feature_edges.len() + 1;
            let mut feature_sums = vec![0.0; bins + 1];
            let mut feature_counts = vec![0u32; bins + 1];
            for &row in rows {
                let bin = column[row as usize];
                let slot = if bin == u16::MAX { bins } else { bin as usize };
                feature_sums[slot] += residuals[row as usize];
                feature_counts[slot] += 1;
            }
            sums.push(feature_sums);
            counts.push(feature_counts);
        }
        Histograms {
            sums,
            counts,
            total: rows.iter().map(|&r| residuals[r as usize]).sum(),
            rows: rows.len(),
        }
    }

    /// `self − part`: the histograms of the rows of `self` not in `part`.
    fn minus(&self, part: &Histograms) -> Histograms {
        Histograms {
            sums: self
                .sums
                .iter()
                .zip(&part.sums)
                .map(|(a, b)| a.iter().zip(b).map(|(x, y)| x - y).collect())
                .collect(),
            counts: self
                .counts
                .iter()
                .zip(&part.counts)
                .map(|(a, b)| a.iter().zip(b).map(|(x, y)| x - y).collect())
                .collect(),
            total: self.total - part.total,
            rows: self.rows - part.rows,
        }
    }
}

#[derive(Debug, Clone, Copy)]
struct BestSplit {
    gain: f64,
    feature: usize,
    bin: u16,
    missing_left: bool,
}

struct Candidate {
    gain: f64,
    /// Node index of the leaf in the tree being grown.
    node: usize,
    rows: Vec<u32>,
    histograms: Histograms,
    split: BestSplit,
}

impl PartialEq for Candidate {
    fn eq(&self, other: &Self) -> bool {
        self.gain == other.gain && self.node == other.node
    }
}
impl Eq for Candidate {}
impl PartialOrd for Candidate {
    fn partial_cmp(&self, other: &Self) -> Option<std::cmp::Ordering> {
        Some(self.cmp(other))
    }
}
impl Ord for Candidate {
    /// Larger gain first; the earlier leaf on ties, for determinism.
    fn cmp(&self, other: &Self) -> std::cmp::Ordering {
        self.gain
            .total_cmp(&other.gain)
            .then(other.node.cmp(&self.node))
    }
}

impl Gbdt {
    /// Trains on `columns` (one slice per feature, each with a value per
    /// row; NaN is missing) to predict `targets`.
    pub fn fit(
        columns: &[&[f64]],
        targets: &[f64],
        config: &GbdtConfig,
    ) -> Result<Gbdt, GbdtError> {
        let rows = targets.len();
        if rows == 0 {
            return Err(GbdtError::Empty);
        }
        if config.trees == 0
            || !(config.learning_rate > 0.0 && config.learning_rate <= 1.0)
            || config.max_leaves < 2
            || config.min_leaf_rows == 0
            || !(2..=65_535).contains(&config.max_bins)
        {
            return Err(GbdtError::Config(
                "trees ≥ 1, learning rate in (0, 1], max_leaves ≥ 2, min_leaf_rows ≥ 1, max_bins in 2..=65535",
            ));
        }
        for (feature, column) in columns.iter().enumerate() {
            if column.len() != rows {
                return Err(GbdtError::Ragged {
                    feature,
                    got: column.len(),
                    rows,
                });
            }
        }
        if targets.iter().any(|t| !t.is_finite()) {
            return Err(GbdtError::NonFiniteTarget);
        }
        let edges: Vec<Vec<f64>> = columns
            .iter()
            .map(|c| feature_edges(c, config.max_bins))
            .collect();
        // Binned training data, feature-major; u16::MAX marks missing.
        let binned: Vec<Vec<u16>> = columns
            .iter()
            .zip(&edges)
            .map(|(column, e)| {
                column
                    .iter()
                    .map(|&v| bin_of(e, v).unwrap_or(u16::MAX))
                    .collect()
            })
            .collect();
        let base = targets.iter().sum::<f64>() / rows as f64;
        let mut fitted = vec![base; rows];
        let mut residuals = vec![0.0; rows];
        let mut trees = Vec::with_capacity(config.trees);
        for _ in 0..config.trees {
            for ((r, &y), &f) in residuals.iter_mut().zip(targets).zip(&fitted) {
                *r = y - f;
            }
            let (tree, leaf_of_row) = grow_tree(&binned, &edges, &residuals, config);
            for (row, &leaf) in leaf_of_row.iter().enumerate() {
                if let Node::Leaf(value) = tree.nodes[leaf] {
                    fitted[row] += value;
                }
            }
            trees.push(tree);
        }
        Ok(Gbdt { base, trees, edges })
    }

    /// Features the model was trained on.
    pub fn features(&self) -> usize {
        self.edges.len()
    }

    /// The prediction for one row (a value per feature; NaN is missing).
    pub fn predict_row(&self, row: &[f64]) -> f64 {
        let bins: Vec<Option<u16>> = self
            .edges
            .iter()
            .enumerate()
            .map(|(k, e)| bin_of(e, row.get(k).copied().unwrap_or(f64::NAN)))
            .collect();
        self.base
            + self
                .trees
                .iter()
                .map(|t| t.predict(|k| bins[k]))
                .sum::<f64>()
    }

    /// Predictions for the rows of `columns` (one slice per feature).
    pub fn predict(&self, columns: &[&[f64]]) -> Vec<f64> {
        let rows = columns.first().map_or(0, |c| c.len());
        let mut row = vec![f64::NAN; self.edges.len()];
        (0..rows)
            .map(|i| {
                for (slot, column) in row.iter_mut().zip(columns) {
                    *slot = column.get(i).copied().unwrap_or(f64::NAN);
                }
                self.predict_row(&row)
            })
            .collect()
    }
}

/// Grows one tree on `residuals`; returns it with each row's leaf.
fn grow_tree(
    binned: &[Vec<u16>],
    edges: &[Vec<f64>],
    residuals: &[f64],
    config: &GbdtConfig,
) -> (Tree, Vec<usize>) {
    let rows = residuals.len();
    let all: Vec<u32> = (0..rows as u32).collect();
    let mut nodes = vec![Node::Leaf(0.0)];
    let mut leaf_of_row = vec![0usize; rows];
    let mut leaves = 1;
    let mut heap = BinaryHeap::new();
    let mut finished: Vec<(usize, Vec<u32>)> = Vec::new();
    let root = Histograms::count(binned, edges, residuals, &all);
    let consider = |node: usize,
                    part: Vec<u32>,
                    histograms: Histograms,
                    heap: &mut BinaryHeap<Candidate>,
                    finished: &mut Vec<(usize, Vec<u32>)>| {
        match best_split(&histograms, config) {
            Some(split) => heap.push(Candidate {
                gain: split.gain,
                node,
                rows: part,
                histograms,
                split,
            }),
            None => finished.push((node, part)),
        }
    };
    consider(0, all, root, &mut heap, &mut finished);
    while let Some(candidate) = heap.pop() {
        if leaves >= config.max_leaves {
            finished.push((candidate.node, candidate.rows));
            continue;
        }
        let split = candidate.split;
        let column = &binned[split.feature];
        let (left_rows, right_rows): (Vec<u32>, Vec<u32>) =
            candidate.rows.iter().partition(|&&row| {
                let bin = column[row as usize];
                if bin == u16::MAX {
                    split.missing_left
                } else {
                    bin <= split.bin
                }
            });
        let (left, right) = (nodes.len(), nodes.len() + 1);
        nodes.push(Node::Leaf(0.0));
        nodes.push(Node::Leaf(0.0));
        nodes[candidate.node] = Node::Split {
            feature: split.feature,
            bin: split.bin,
            missing_left: split.missing_left,
            left,
            right,
        };
        leaves += 1;
        let (left_histograms, right_histograms) = if left_rows.len() <= right_rows.len() {
            let small = Histograms::count(binned, edges, residuals, &left_rows);
            let large = candidate.histograms.minus(&small);
            (small, large)
        } else {
            let small = Histograms::count(binned, edges, residuals, &right_rows);
            let large = candidate.histograms.minus(&small);
            (large, small)
        };
        consider(left, left_rows, left_histograms, &mut heap, &mut finished);
        consider(
            right,
            right_rows,
            right_histograms,
            &mut heap,
            &mut finished,
        );
    }
    for (node, part) in finished {
        let mean =
            part.iter().map(|&r| residuals[r as usize]).sum::<f64>() / part.len().max(1) as f64;
        nodes[node] = Node::Leaf(config.learning_rate * mean);
        for &row in &part {
            leaf_of_row[row as usize] = node;
        }
    }
    (Tree { nodes }, leaf_of_row)
}

/// The split that most lowers the squared error of a leaf with these
/// histograms, if any leaves at least `min_leaf_rows` a side and gains
/// anything.
fn best_split(histograms: &Histograms, config: &GbdtConfig) -> Option<BestSplit> {
    let (n, total) = (histograms.rows, histograms.total);
    if n < 2 * config.min_leaf_rows {
        return None;
    }
    let parent = total * total / n as f64;
    let mut best: Option<BestSplit> = None;
    for (feature, (sums, counts)) in histograms.sums.iter().zip(&histograms.counts).enumerate() {
        let bins = sums.len() - 1;
        if bins < 2 {
            continue;
        }
        let (missing_sum, missing_count) = (sums[bins], counts[bins] as usize);
        let mut left_sum = 0.0;
        let mut left_count = 0usize;
        for bin in 0..bins - 1 {
            left_sum += sums[bin];
            left_count += counts[bin] as usize;
            for missing_left in [false, true] {
                if missing_left && missing_count == 0 {
                    continue;
                }
                let (ls, lc) = if missing_left {
                    (left_sum + missing_sum, left_count + missing_count)
                } else {
                    (left_sum, left_count)
                };
                let (rs, rc) = (total - ls, n - lc);
                if lc < config.min_leaf_rows || rc < config.min_leaf_rows {
                    continue;
                }
                let gain = ls * ls / lc as f64 + rs * rs / rc as f64 - parent;
                if gain > 1e-12 * parent.abs().max(1e-300) && best.is_none_or(|b| gain > b.gain) {
                    best = Some(BestSplit {
                        gain,
                        feature,
                        bin: bin as u16,
                        missing_left,
                    });
                }
            }
        }
    }
    best
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn learns_a_step_and_a_slope() {
        // y = 3·[x0 > 0.5] + x1, with x2 noise the model should ignore.
        let n = 2_000;
        let x0: Vec<f64> = (0..n).map(|i| (i % 97) as f64 / 97.0).collect();
        let x1: Vec<f64> = (0..n).map(|i| (i % 13) as f64 / 13.0).collect();
        let x2: Vec<f64> = (0..n).map(|i| ((i * 7919) % 101) as f64).collect();
        let y: Vec<f64> = (0..n)
            .map(|i| 3.0 * f64::from(u8::from(x0[i] > 0.5)) + x1[i])
            .collect();
        let model = Gbdt::fit(&[&x0, &x1, &x2], &y, &GbdtConfig::LIGHTGBM).unwrap();
        let predicted = model.predict(&[&x0, &x1, &x2]);
        let mse = predicted
            .iter()
            .zip(&y)
            .map(|(p, t)| (p - t).powi(2))
            .sum::<f64>()
            / n as f64;
        assert!(mse < 0.01, "mse {mse}");
        assert!((model.predict_row(&[0.9, 0.0, 5.0]) - 3.0).abs() < 0.15);
        assert!((model.predict_row(&[0.1, 0.5, 5.0]) - 0.5).abs() < 0.15);
    }

    #[test]
    fn missing_values_take_the_better_side() {
        // Missing x means y = 10; present x carries y = x.
        let n = 1_000;
        let x: Vec<f64> = (0..n)
            .map(|i| {
                if i % 4 == 0 {
                    f64::NAN
                } else {
                    (i % 10) as f64
                }
            })
            .collect();
        let y: Vec<f64> = x
            .iter()
            .map(|v| if v.is_nan() { 10.0 } else { *v })
            .collect();
        let model = Gbdt::fit(&[&x], &y, &GbdtConfig::LIGHTGBM).unwrap();
        assert!((model.predict_row(&[f64::NAN]) - 10.0).abs() < 0.2);
        assert!((model.predict_row(&[2.0]) - 2.0).abs() < 0.3);
    }

    #[test]
    fn bad_input_is_an_error() {
        let config = GbdtConfig::LIGHTGBM;
        assert_eq!(Gbdt::fit(&[], &[], &config).unwrap_err(), GbdtError::Empty);
        assert!(matches!(
            Gbdt::fit(&[&[1.0, 2.0]], &[1.0], &config),
            Err(GbdtError::Ragged { .. })
        ));
        assert_eq!(
            Gbdt::fit(&[&[1.0]], &[f64::NAN], &config).unwrap_err(),
            GbdtError::NonFiniteTarget
        );
        // A constant target is its own mean, whatever the features.
        let model = Gbdt::fit(&[&[1.0, 2.0, 3.0]], &[4.0, 4.0, 4.0], &config).unwrap();
        assert_eq!(model.predict_row(&[9.0]), 4.0);
    }
}
