//! KernelSHAP (Lundberg & Lee, NeurIPS 2017, Theorem 2) around any
//! runtime's `predict`: the SHAP values are the solution of a weighted
//! linear regression of v(z) on the coalitions z ∈ {0,1}^M, with the
//! Shapley kernel π(z) = (M−1) / (C(M,|z|)·|z|·(M−|z|)), and
//! v(z) = mean over background rows r of f(x_z, r_z̄) (the interventional
//! value function).
//!
//! The coalitions follow shap's `KernelExplainer` (0.51): the smallest and
//! largest subset sizes are enumerated whole while the budget allows, paired
//! with their complements, and the rest are sampled by kernel weight. The
//! sampler is seeded per row, so a row's values do not depend on the batch
//! it came in or the thread that computed it. Unlike shap, there is no l1
//! regularisation: shap's default (`num_features(10)`) sets all but ten
//! features to exactly zero. With 2^M − 2 samples or more every coalition
//! is enumerated and the values are exact.
//!
//! Features are the columns of the inputs (each column of a matrix input, or
//! each one-column input of a table); a feature whose value equals the
//! row's in every background row cannot change anything and gets 0, as in
//! shap.

use crate::error::{Error, Result};
use crate::explain::{ExplainOptions, Explanation, Method, OutputSpace};
use crate::runtime::ModelRuntime;
use crate::tensor::{NamedTensor, Tensor, TensorData};

/// Model rows evaluated per `predict` call: enough to amortise a call,
/// few enough that the synthetic rows stay in cache.
const ROWS_PER_CALL: usize = 1 << 13;

/// KernelSHAP of `inputs` against `options.background`.
pub fn explain<R: ModelRuntime + ?Sized>(
    runtime: &R,
    inputs: &[NamedTensor],
    options: &ExplainOptions,
) -> Result<Explanation> {
    if let Some(method) = options.method.filter(|&m| m != Method::Kernel) {
        return Err(Error::input(format!(
            "the {} engine is explained by KernelSHAP; the {} method is for {}",
            runtime.info().engine,
            method.name(),
            match method {
                Method::Linear => "linear models",
                _ => "tree ensembles",
            }
        )));
    }
    if options.interactions {
        return Err(Error::input(
            "interaction values are computed for tree ensembles (path-dependent TreeSHAP) and \
             linear models; this model is explained by KernelSHAP",
        ));
    }
    let background = options.background.as_ref().ok_or_else(|| {
        Error::input(
            "KernelSHAP needs background data (the deployment's reference data, or \
             `background` in the request)",
        )
    })?;
    let layout = FeatureLayout::of(runtime, inputs, &background.inputs)?;
    let rows = inputs.first().map_or(0, |t| t.tensor.rows());
    let background_rows = background.rows;
    if background_rows == 0 {
        return Err(Error::input("the background data has no rows"));
    }
    let answer = |batch: &[NamedTensor]| -> Result<(Vec<f64>, usize, OutputSpace, Vec<String>)> {
        read_output(runtime.predict(batch)?)
    };
    let (background_values, n_outputs, output_space, outputs) = answer(&background.inputs)?;
    let mut base_values = vec![0.0; n_outputs];
    for row in background_values.chunks_exact(n_outputs) {
        for (b, v) in base_values.iter_mut().zip(row) {
            *b += v / background_rows as f64;
        }
    }
    let (predictions, width, ..) = answer(inputs)?;
    if width != n_outputs {
        return Err(Error::invalid(
            "the model answers rows and background with different widths",
        ));
    }
    let m = layout.names.len();
    let samples = options.samples;
    if let Some(budget) = options.max_model_rows {
        let most = if m < 31 {
            (1usize << m).saturating_sub(2)
        } else {
            usize::MAX
        };
        let coalitions = samples.unwrap_or(2 * m + 2048).min(most);
        let work = rows
            .saturating_mul(coalitions)
            .saturating_mul(background_rows);
        if work > budget {
            return Err(Error::input(format!(
                "KernelSHAP of {rows} rows would run the model on {work} rows ({coalitions} \
                 coalitions × {background_rows} background rows per row), more than one request \
                 may ({budget}): send fewer rows or ask for fewer samples, or explain a file with \
                 `sextant explain`"
            )));
        }
    }
    let mut values = vec![0.0; rows * m * n_outputs];
    for row in 0..rows {
        let varying: Vec<usize> = (0..m)
            .filter(|&f| layout.varies(inputs, &background.inputs, row, f))
            .collect();
        let fx = &predictions[row * n_outputs..(row + 1) * n_outputs];
        let phi = &mut values[row * m * n_outputs..(row + 1) * m * n_outputs];
        match varying.len() {
            0 => continue,
            1 => {
                for (o, (f, b)) in fx.iter().zip(&base_values).enumerate() {
                    phi[varying[0] * n_outputs + o] = f - b;
                }
                continue;
            }
            _ => {}
        }
        let seed = options.seed ^ (row as u64).wrapping_mul(0x9E37_79B9_7F4A_7C15);
        let coalitions = Coalitions::sample(varying.len(), samples, seed);
        // v(z) for every coalition, one output per column.
        let mut v = vec![0.0; coalitions.len() * n_outputs];
        let per_call = (ROWS_PER_CALL / background_rows).max(1);
        for start in (0..coalitions.len()).step_by(per_call) {
            let end = (start + per_call).min(coalitions.len());
            let masks: Vec<Vec<bool>> = (start..end)
                .map(|c| {
                    let mut mask = vec![false; m];
                    for (k, &f) in varying.iter().enumerate() {
                        mask[f] = coalitions.member(c, k);
                    }
                    mask
                })
                .collect();
            let batch = layout.mix(inputs, &background.inputs, row, background_rows, &masks)?;
            let (answers, ..) = answer(&batch)?;
            for (chunk, mean) in answers
                .chunks_exact(background_rows * n_outputs)
                .zip(v[start * n_outputs..].chunks_exact_mut(n_outputs))
            {
                for r in chunk.chunks_exact(n_outputs) {
                    for (m, value) in mean.iter_mut().zip(r) {
                        *m += value;
                    }
                }
                mean.iter_mut().for_each(|m| *m /= background_rows as f64);
            }
        }
        for o in 0..n_outputs {
            let target: Vec<f64> = (0..coalitions.len())
                .map(|c| v[c * n_outputs + o])
                .collect();
            let solved = coalitions.solve(&target, base_values[o], fx[o])?;
            for (k, &f) in varying.iter().enumerate() {
                phi[f * n_outputs + o] = solved[k];
            }
        }
    }
    Ok(Explanation {
        method: Method::Kernel,
        output_space,
        features: layout.names,
        outputs,
        rows,
        base_values,
        values,
        predictions,
        background_hash: Some(background.hash.clone()),
        interactions: None,
    })
}

/// The explained answer: `predict_proba` when the model has it, else its
/// first numeric output; row-major values, their width, the space and the
/// column names.
fn read_output(outputs: Vec<NamedTensor>) -> Result<(Vec<f64>, usize, OutputSpace, Vec<String>)> {
    let is_probability = |o: &NamedTensor| o.name == "predict_proba" || o.name == "probabilities";
    let position = outputs
        .iter()
        .position(is_probability)
        .or_else(|| {
            outputs
                .iter()
                .position(|o| !matches!(o.tensor.data, TensorData::Str(_)))
        })
        .ok_or_else(|| Error::input("the model answers no numeric output to explain"))?;
    let chosen = outputs.into_iter().nth(position).expect("a chosen output");
    let probability = is_probability(&chosen);
    let width = chosen.tensor.row_width().max(1);
    let name = chosen.name;
    let values: Vec<f64> = match chosen.tensor.data {
        TensorData::F64(values) => values,
        data => (0..data.len())
            .map(|i| data.get_f64(i).unwrap_or(f64::NAN))
            .collect(),
    };
    // Probability columns are the classes in order: named by position.
    let names = if probability {
        (0..width).map(|j| j.to_string()).collect()
    } else if width == 1 {
        vec![name]
    } else {
        (0..width).map(|j| format!("{name}[{j}]")).collect()
    };
    let space = if probability {
        OutputSpace::Probability
    } else {
        OutputSpace::Prediction
    };
    Ok((values, width, space, names))
}

/// The names of the explained features of `inputs`: each column of a
/// matrix input (by the model's feature names when it has them), or each
/// one-column input of a table.
pub(crate) fn feature_names<R: ModelRuntime + ?Sized>(
    runtime: &R,
    inputs: &[NamedTensor],
) -> Vec<String> {
    let feature_names = runtime.info().feature_names.as_ref();
    let mut names = Vec::new();
    for input in inputs {
        let width = input.tensor.row_width().max(1);
        for column in 0..width {
            names.push(match (input.tensor.shape.len(), feature_names) {
                (1, _) => input.name.clone(),
                (_, Some(names)) if inputs.len() == 1 && names.len() == width => {
                    names[column].clone()
                }
                _ if width == 1 && inputs.len() > 1 => input.name.clone(),
                _ => format!("{}[{column}]", input.name),
            });
        }
    }
    names
}

/// Which input column each feature is.
struct FeatureLayout {
    names: Vec<String>,
    /// (input index, column within a row of that input) per feature.
    columns: Vec<(usize, usize)>,
    /// Per input, the feature of its first column (an input's columns are
    /// consecutive features).
    first_feature: Vec<usize>,
}

impl FeatureLayout {
    fn of<R: ModelRuntime + ?Sized>(
        runtime: &R,
        inputs: &[NamedTensor],
        background: &[NamedTensor],
    ) -> Result<FeatureLayout> {
        if inputs.len() != background.len()
            || inputs
                .iter()
                .zip(background)
                .any(|(a, b)| a.name != b.name || a.tensor.row_width() != b.tensor.row_width())
        {
            return Err(Error::input(
                "the background data does not have the request's inputs",
            ));
        }
        let mut columns = Vec::new();
        let mut first_feature = Vec::new();
        for (index, input) in inputs.iter().enumerate() {
            let width = input.tensor.row_width().max(1);
            first_feature.push(columns.len());
            columns.extend((0..width).map(|column| (index, column)));
        }
        let names = feature_names(runtime, inputs);
        Ok(FeatureLayout {
            names,
            columns,
            first_feature,
        })
    }

    /// Whether feature `f` of `row` differs from its value in some
    /// background row.
    fn varies(
        &self,
        inputs: &[NamedTensor],
        background: &[NamedTensor],
        row: usize,
        f: usize,
    ) -> bool {
        let (input, column) = self.columns[f];
        let (x, bg) = (&inputs[input].tensor, &background[input].tensor);
        let width = x.row_width().max(1);
        let at = row * width + column;
        (0..bg.rows()).any(|r| !same(&x.data, at, &bg.data, r * width + column))
    }

    /// The model inputs for `masks.len()` coalitions × `background_rows`:
    /// row `row` of `inputs` where the mask holds, the background elsewhere.
    fn mix(
        &self,
        inputs: &[NamedTensor],
        background: &[NamedTensor],
        row: usize,
        background_rows: usize,
        masks: &[Vec<bool>],
    ) -> Result<Vec<NamedTensor>> {
        let total = masks.len() * background_rows;
        inputs
            .iter()
            .zip(background)
            .enumerate()
            .map(|(index, (x, bg))| {
                let width = x.tensor.row_width().max(1);
                let first = self.first_feature[index];
                // Per mask, the columns of this input that take x's value.
                let taken: Vec<Vec<usize>> = masks
                    .iter()
                    .map(|mask| (0..width).filter(|&c| mask[first + c]).collect())
                    .collect();
                let data = match (&x.tensor.data, &bg.tensor.data) {
                    (TensorData::F64(a), TensorData::F64(b)) => {
                        TensorData::F64(mix_values(a, b, row, width, background_rows, &taken))
                    }
                    (TensorData::F32(a), TensorData::F32(b)) => {
                        TensorData::F32(mix_values(a, b, row, width, background_rows, &taken))
                    }
                    (TensorData::I64(a), TensorData::I64(b)) => {
                        TensorData::I64(mix_values(a, b, row, width, background_rows, &taken))
                    }
                    (TensorData::Bool(a), TensorData::Bool(b)) => {
                        TensorData::Bool(mix_values(a, b, row, width, background_rows, &taken))
                    }
                    (TensorData::Str(a), TensorData::Str(b)) => {
                        TensorData::Str(mix_values(a, b, row, width, background_rows, &taken))
                    }
                    _ => {
                        return Err(Error::input(format!(
                            "input '{}' has different types in the request and the background",
                            x.name
                        )))
                    }
                };
                let mut shape = x.tensor.shape.clone();
                shape[0] = total;
                Ok(NamedTensor::new(
                    x.name.clone(),
                    Tensor {
                        dtype: x.tensor.dtype,
                        shape,
                        data,
                    },
                ))
            })
            .collect()
    }
}

fn same(a: &TensorData, i: usize, b: &TensorData, j: usize) -> bool {
    match (a, b) {
        (TensorData::Str(a), TensorData::Str(b)) => a[i] == b[j],
        _ => match (a.get_f64(i), b.get_f64(j)) {
            (Some(x), Some(y)) => x == y || (x.is_nan() && y.is_nan()),
            _ => false,
        },
    }
}

/// Per coalition, the background rows with the `taken` columns replaced by
/// row `row` of `x`. Whichever side has fewer columns is patched in: the
/// whole background is copied and x's columns written over it, or x's row
/// is repeated and the background's columns written over it.
fn mix_values<T: Clone>(
    x: &[T],
    background: &[T],
    row: usize,
    width: usize,
    background_rows: usize,
    taken: &[Vec<usize>],
) -> Vec<T> {
    let own = &x[row * width..(row + 1) * width];
    let block = &background[..background_rows * width];
    let mut out = Vec::with_capacity(taken.len() * block.len());
    let mut kept = Vec::with_capacity(width);
    for taken in taken {
        let start = out.len();
        if taken.len() * 2 <= width {
            out.extend_from_slice(block);
            for synthetic in out[start..].chunks_exact_mut(width) {
                for &column in taken {
                    synthetic[column] = own[column].clone();
                }
            }
        } else {
            kept.clear();
            kept.extend((0..width).filter(|c| !taken.contains(c)));
            for reference in block.chunks_exact(width) {
                let at = out.len();
                out.extend_from_slice(own);
                let synthetic = &mut out[at..];
                for &column in &kept {
                    synthetic[column] = reference[column].clone();
                }
            }
        }
    }
    out
}

/// SplitMix64 (Steele, Lea & Flood 2014): a small, well-mixed seeded
/// generator; enough for choosing coalitions.
struct SplitMix64(u64);

impl SplitMix64 {
    fn next(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }

    /// Uniform in [0, 1).
    fn unit(&mut self) -> f64 {
        (self.next() >> 11) as f64 / (1u64 << 53) as f64
    }

    fn below(&mut self, n: usize) -> usize {
        (self.unit() * n as f64) as usize
    }
}

/// The coalitions of one row and their regression weights.
struct Coalitions {
    m: usize,
    /// `m` membership flags per coalition.
    members: Vec<bool>,
    weights: Vec<f64>,
}

fn binomial(n: usize, k: usize) -> f64 {
    (0..k).fold(1.0, |acc, i| acc * (n - i) as f64 / (i + 1) as f64)
}

impl Coalitions {
    fn len(&self) -> usize {
        self.weights.len()
    }

    fn member(&self, coalition: usize, feature: usize) -> bool {
        self.members[coalition * self.m + feature]
    }

    fn push(&mut self, mask: &[bool], weight: f64) {
        self.members.extend_from_slice(mask);
        self.weights.push(weight);
    }

    /// shap's scheme (`KernelExplainer.explain`): subset sizes s and M − s
    /// share the kernel weight (M−1)/(s·(M−s)); sizes are enumerated whole,
    /// smallest first, while the remaining budget covers them, and the rest
    /// of the budget samples subsets of the remaining sizes.
    fn sample(m: usize, samples: Option<usize>, seed: u64) -> Coalitions {
        let mut coalitions = Coalitions {
            m,
            members: Vec::new(),
            weights: Vec::new(),
        };
        let max_samples = if m < 31 {
            (1usize << m) - 2
        } else {
            usize::MAX
        };
        let budget = samples.unwrap_or(2 * m + 2048).min(max_samples);
        // Sizes 1..=ceil((M−1)/2); those below M/2 are paired with M − s.
        let num_sizes = (m - 1).div_ceil(2);
        let num_paired = (m - 1) / 2;
        let mut weight_of_size: Vec<f64> = (1..=num_sizes)
            .map(|s| (m - 1) as f64 / (s * (m - s)) as f64)
            .collect();
        for (index, w) in weight_of_size.iter_mut().enumerate() {
            if index < num_paired {
                *w *= 2.0;
            }
        }
        let total: f64 = weight_of_size.iter().sum();
        weight_of_size.iter_mut().for_each(|w| *w /= total);

        let mut full = 0;
        let mut left = budget as f64;
        let mut remaining = weight_of_size.clone();
        for s in 1..=num_sizes {
            let paired = s <= num_paired;
            let count = binomial(m, s) * if paired { 2.0 } else { 1.0 };
            if left * remaining[s - 1] / count < 1.0 - 1e-8 {
                break;
            }
            full += 1;
            left -= count;
            if remaining[s - 1] < 1.0 {
                let scale = 1.0 - remaining[s - 1];
                remaining.iter_mut().for_each(|w| *w /= scale);
            }
            let mut weight = weight_of_size[s - 1] / binomial(m, s);
            if paired {
                weight /= 2.0;
            }
            for_each_subset(m, s, |mask| {
                coalitions.push(mask, weight);
                if paired {
                    let complement: Vec<bool> = mask.iter().map(|b| !b).collect();
                    coalitions.push(&complement, weight);
                }
            });
        }
        let fixed = coalitions.len();
        let budget_left = budget.saturating_sub(fixed);
        if full < num_sizes && budget_left > 0 {
            let mut sizes_left: Vec<f64> = weight_of_size[full..].to_vec();
            let sum: f64 = sizes_left.iter().sum();
            sizes_left.iter_mut().for_each(|w| *w /= sum);
            let weight_left: f64 = weight_of_size[full..].iter().sum();
            let mut rng = SplitMix64(seed);
            let mut seen = std::collections::HashMap::<Vec<bool>, usize>::new();
            let mut order: Vec<usize> = (0..m).collect();
            let mut attempts = 0;
            while coalitions.len() - fixed < budget_left && attempts < 4 * budget_left + 64 {
                attempts += 1;
                let mut u = rng.unit();
                let mut index = 0;
                while index + 1 < sizes_left.len() && u >= sizes_left[index] {
                    u -= sizes_left[index];
                    index += 1;
                }
                let s = full + index + 1;
                // The first s of a partial Fisher–Yates shuffle.
                for i in 0..s {
                    let j = i + rng.below(m - i);
                    order.swap(i, j);
                }
                let mut mask = vec![false; m];
                order[..s].iter().for_each(|&f| mask[f] = true);
                let mut add = |mask: Vec<bool>, coalitions: &mut Coalitions| match seen.get(&mask) {
                    Some(&at) => coalitions.weights[at] += 1.0,
                    None => {
                        seen.insert(mask.clone(), coalitions.len());
                        coalitions.push(&mask, 1.0);
                    }
                };
                let paired = s <= num_paired;
                let complement: Vec<bool> = mask.iter().map(|b| !b).collect();
                add(mask, &mut coalitions);
                if paired && coalitions.len() - fixed < budget_left {
                    add(complement, &mut coalitions);
                }
            }
            let sampled: f64 = coalitions.weights[fixed..].iter().sum();
            if sampled > 0.0 {
                for w in &mut coalitions.weights[fixed..] {
                    *w *= weight_left / sampled;
                }
            }
        }
        coalitions
    }

    /// The constrained weighted least squares: Σφ = f(x) − E[f] holds
    /// exactly, by eliminating the last feature (as shap does).
    fn solve(&self, v: &[f64], base: f64, fx: f64) -> Result<Vec<f64>> {
        let m = self.m;
        let total = fx - base;
        let last = m - 1;
        // X' = z[:, :last] − z[:, last]; y' = v − base − z_last·total.
        let mut gram = vec![0.0; last * last];
        let mut rhs = vec![0.0; last];
        let mut row = vec![0.0; last];
        for c in 0..self.len() {
            let z_last = f64::from(u8::from(self.member(c, last)));
            for (j, r) in row.iter_mut().enumerate() {
                *r = f64::from(u8::from(self.member(c, j))) - z_last;
            }
            let y = v[c] - base - z_last * total;
            let w = self.weights[c];
            for i in 0..last {
                if row[i] == 0.0 {
                    continue;
                }
                let wi = w * row[i];
                rhs[i] += wi * y;
                for j in 0..last {
                    gram[i * last + j] += wi * row[j];
                }
            }
        }
        let mut phi = solve_linear(gram, rhs, last).ok_or_else(|| {
            Error::input(
                "KernelSHAP: too few coalitions to solve for every feature; ask for more samples",
            )
        })?;
        let sum: f64 = phi.iter().sum();
        phi.push(total - sum);
        Ok(phi)
    }
}

/// Calls `visit` with the mask of every subset of size `s` of `m` features.
fn for_each_subset(m: usize, s: usize, mut visit: impl FnMut(&[bool])) {
    let mut picked: Vec<usize> = (0..s).collect();
    let mut mask = vec![false; m];
    loop {
        mask.iter_mut().for_each(|b| *b = false);
        picked.iter().for_each(|&f| mask[f] = true);
        visit(&mask);
        // The next combination in lexicographic order.
        let Some(i) = (0..s).rev().find(|&i| picked[i] != i + m - s) else {
            return;
        };
        picked[i] += 1;
        for j in i + 1..s {
            picked[j] = picked[j - 1] + 1;
        }
    }
}

/// Solves `a·x = b` (`n × n`, row-major) by Gaussian elimination with
/// partial pivoting; `None` when `a` is singular.
fn solve_linear(mut a: Vec<f64>, mut b: Vec<f64>, n: usize) -> Option<Vec<f64>> {
    let scale = a
        .iter()
        .fold(0f64, |m, v| m.max(v.abs()))
        .max(f64::MIN_POSITIVE);
    for col in 0..n {
        let pivot =
            (col..n).max_by(|&i, &j| a[i * n + col].abs().total_cmp(&a[j * n + col].abs()))?;
        if a[pivot * n + col].abs() <= scale * 1e-12 {
            return None;
        }
        if pivot != col {
            for k in 0..n {
                a.swap(pivot * n + k, col * n + k);
            }
            b.swap(pivot, col);
        }
        for row in col + 1..n {
            let factor = a[row * n + col] / a[col * n + col];
            if factor == 0.0 {
                continue;
            }
            for k in col..n {
                a[row * n + k] -= factor * a[col * n + k];
            }
            b[row] -= factor * b[col];
        }
    }
    let mut x = vec![0.0; n];
    for row in (0..n).rev() {
        let tail: f64 = (row + 1..n).map(|k| a[row * n + k] * x[k]).sum();
        x[row] = (b[row] - tail) / a[row * n + row];
    }
    Some(x)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_coalition_is_enumerated_when_the_budget_allows() {
        let coalitions = Coalitions::sample(5, Some(100), 1);
        assert_eq!(coalitions.len(), 30);
        let mut seen: Vec<Vec<bool>> = (0..30)
            .map(|c| (0..5).map(|f| coalitions.member(c, f)).collect())
            .collect();
        seen.sort();
        seen.dedup();
        assert_eq!(seen.len(), 30);
    }

    #[test]
    fn sampling_is_deterministic_per_seed_and_respects_the_budget() {
        let a = Coalitions::sample(20, Some(300), 7);
        let b = Coalitions::sample(20, Some(300), 7);
        let c = Coalitions::sample(20, Some(300), 8);
        assert_eq!(a.members, b.members);
        assert_eq!(a.weights, b.weights);
        assert_ne!(a.members, c.members);
        assert!(a.len() <= 300 && a.len() > 250, "{}", a.len());
    }

    #[test]
    fn the_regression_recovers_an_additive_game_exactly() {
        // v(z) = Σ_i z_i·c_i: the Shapley values are the c_i.
        let c = [0.5, -1.0, 2.0, 0.25];
        let coalitions = Coalitions::sample(4, None, 0);
        let v: Vec<f64> = (0..coalitions.len())
            .map(|k| {
                (0..4)
                    .filter(|&f| coalitions.member(k, f))
                    .map(|f| c[f])
                    .sum()
            })
            .collect();
        let phi = coalitions.solve(&v, 0.0, c.iter().sum()).unwrap();
        for (p, c) in phi.iter().zip(c) {
            assert!((p - c).abs() < 1e-12, "{phi:?}");
        }
    }
}
