//! `SVMClassifier` and `SVMRegressor` (libsvm models as skl2onnx writes
//! them), following ONNX Runtime's `svmclassifier.cc`/`svmregressor.cc`:
//!
//! - Kernels in `f32`: LINEAR `⟨x, v⟩`, POLY `(γ⟨x, v⟩ + c₀)^d`, RBF
//!   `exp(−γ‖x − v‖²)`, SIGMOID `tanh(γ⟨x, v⟩ + c₀)`
//!   (`kernel_params = [γ, c₀, d]`).
//! - With support vectors (libsvm's SVC), one-vs-one: the decision value
//!   of classes `i < j` sums `coef[j−1][v]·K(x, v)` over class i's support
//!   vectors and `coef[i][v]·K(x, v)` over class j's (products in `f32`,
//!   the sum in `f64`) plus `rho`; a positive value is a vote for `i`,
//!   otherwise for `j`; the label is the first class with the most votes.
//!   With `prob_a`/`prob_b`, the pairwise Platt probabilities are coupled
//!   into class probabilities by the method of Wu, Lin and Weng (2004),
//!   as libsvm does (`multiclass_probability`).
//! - Without support vectors (liblinear): one score per class,
//!   `⟨x, w_c⟩ + rho[0]`.

use crate::error::{Error, Result};
use crate::onnx::ops::ml::{class_labels, dot_fused, label_type, labels_at, rows_and_columns};
use crate::onnx::ops::numeric::fused_multiply_add;
use crate::onnx::ops::post_transform::{logistic, probit, PostTransform};
use crate::onnx::ops::{required, tensor, to_f32_vec, Kernel, Lowered, NodeContext};
use crate::tensor::{DataType, Tensor, TensorData};
use crate::trees::ClassLabels;

#[derive(Debug, Clone, Copy, PartialEq)]
enum SvmKernel {
    Linear,
    Poly { gamma: f32, coef0: f32, degree: f32 },
    Rbf { gamma: f32 },
    Sigmoid { gamma: f32, coef0: f32 },
}

impl SvmKernel {
    fn from_attributes(ctx: &NodeContext<'_>) -> Result<SvmKernel> {
        let params = ctx.floats("kernel_params")?.unwrap_or_default();
        let param = |i: usize| params.get(i).copied().unwrap_or(0.0);
        let (gamma, coef0, degree) = (param(0), param(1), param(2));
        Ok(match ctx.string_or("kernel_type", "LINEAR")?.as_str() {
            "LINEAR" => SvmKernel::Linear,
            "POLY" => SvmKernel::Poly {
                gamma,
                coef0,
                degree,
            },
            "RBF" => SvmKernel::Rbf { gamma },
            "SIGMOID" => SvmKernel::Sigmoid { gamma, coef0 },
            other => return Err(Error::invalid(format!("unknown SVM kernel '{other}'"))),
        })
    }

    /// `K(x, v)` in `f32`.
    fn apply(self, x: &[f32], v: &[f32]) -> f32 {
        // ONNX Runtime's GEMM: fused multiply-adds (see `linalg.rs`).
        let dot = || dot_fused(x, v);
        match self {
            SvmKernel::Linear => dot(),
            SvmKernel::Poly {
                gamma,
                coef0,
                degree,
            } => {
                let base = gamma * dot() + coef0;
                if degree == 2.0 {
                    base * base
                } else if degree == 3.0 {
                    base * base * base
                } else {
                    base.powf(degree)
                }
            }
            SvmKernel::Rbf { gamma } => {
                let distance = x.iter().zip(v).fold(0.0f32, |acc, (&a, &b)| {
                    let d = a - b;
                    acc + d * d
                });
                (-gamma * distance).exp()
            }
            SvmKernel::Sigmoid { gamma, coef0 } => (gamma * dot() + coef0).tanh(),
        }
    }
}

/// The input as `f32` rows of `features` columns.
fn input_rows(x: &Tensor, features: usize) -> Result<(usize, Vec<f32>)> {
    let (rows, columns) = rows_and_columns(x)?;
    if columns != features {
        return Err(Error::input(format!(
            "the SVM expects {features} features, the input has {columns}"
        )));
    }
    Ok((rows, to_f32_vec(x)?))
}

// --- SVMClassifier -------------------------------------------------------------------------

enum Mode {
    /// libsvm: support vectors grouped by class.
    SupportVectors {
        vectors: Vec<f32>,
        /// First support vector of each class, and how many it has.
        class_vectors: Vec<(usize, usize)>,
        n_vectors: usize,
    },
    /// liblinear: one weight row per class.
    Linear,
}

struct SvmClassifier {
    kernel: SvmKernel,
    mode: Mode,
    coefficients: Vec<f32>,
    rho: Vec<f32>,
    prob_a: Vec<f32>,
    prob_b: Vec<f32>,
    labels: ClassLabels,
    n_features: usize,
    post_transform: PostTransform,
    weights_all_positive: bool,
}

/// Pairwise coupling of one-vs-one probabilities `r` (`k × k`, `r[i][j]`
/// the probability of i against j) into class probabilities, by the
/// fixed-point iteration of Wu, Lin and Weng (2004, method 2) that libsvm
/// implements, in `f32`, at most 100 rounds.
fn couple_probabilities(k: usize, r: &[f32], p: &mut [f32]) {
    let mut q = vec![0.0f32; k * k];
    let mut qp = vec![0.0f32; k];
    let eps = 0.005 / k as f32;
    for t in 0..k {
        p[t] = 1.0 / k as f32;
        for j in 0..k {
            if j < t {
                q[t * k + t] += r[j * k + t] * r[j * k + t];
                q[t * k + j] = q[j * k + t];
            } else if j > t {
                q[t * k + t] += r[j * k + t] * r[j * k + t];
                q[t * k + j] = -r[j * k + t] * r[t * k + j];
            }
        }
    }
    for _ in 0..100 {
        let mut pqp = 0.0f32;
        for t in 0..k {
            qp[t] = 0.0;
            for j in 0..k {
                qp[t] += q[t * k + j] * p[j];
            }
            pqp += p[t] * qp[t];
        }
        let max_error = qp.iter().fold(0.0f32, |m, &v| m.max((v - pqp).abs()));
        if max_error < eps {
            break;
        }
        for t in 0..k {
            let diff = (-qp[t] + pqp) / q[t * k + t];
            p[t] += diff;
            pqp = (pqp + diff * (diff * q[t * k + t] + 2.0 * qp[t])) / (1.0 + diff) / (1.0 + diff);
            for j in 0..k {
                qp[j] = (qp[j] + diff * q[t * k + j]) / (1.0 + diff);
                p[j] /= 1.0 + diff;
            }
        }
    }
}

impl SvmClassifier {
    fn n_classes(&self) -> usize {
        self.labels.len()
    }

    fn has_probabilities(&self) -> bool {
        !self.prob_a.is_empty()
    }

    /// Scores of one row and the winning class; `row_scores` has the
    /// output's width.
    fn score_row(&self, x: &[f32], kernels: &mut Vec<f32>, out: &mut [f32]) -> (usize, f32) {
        let k = self.n_classes();
        match &self.mode {
            Mode::Linear => {
                let features = self.n_features;
                for (c, o) in out.iter_mut().enumerate().take(k) {
                    let w = &self.coefficients[c * features..(c + 1) * features];
                    let dot = dot_fused(x, w);
                    *o = if self.rho[0] != 0.0 {
                        dot + self.rho[0]
                    } else {
                        dot
                    };
                }
                let mut best = 0;
                for c in 1..k {
                    if out[c] > out[best] {
                        best = c;
                    }
                }
                (best, out[best])
            }
            Mode::SupportVectors {
                vectors,
                class_vectors,
                n_vectors,
            } => {
                kernels.clear();
                kernels.extend(
                    vectors
                        .chunks_exact(self.n_features)
                        .map(|v| self.kernel.apply(x, v)),
                );
                let mut votes = vec![0usize; k];
                let mut decisions = Vec::with_capacity(k * (k - 1) / 2);
                for i in 0..k - 1 {
                    let (start_i, count_i) = class_vectors[i];
                    for j in i + 1..k {
                        let (start_j, count_j) = class_vectors[j];
                        // Class i's vectors weighed by row j - 1 of the
                        // coefficients, class j's by row i.
                        let terms = |row: usize, start: usize, count: usize| {
                            let weights = &self.coefficients
                                [row * n_vectors + start..row * n_vectors + start + count];
                            weights
                                .iter()
                                .zip(&kernels[start..start + count])
                                .map(|(&w, &k)| (w * k) as f64)
                        };
                        let mut sum = 0.0f64;
                        for term in terms(j - 1, start_i, count_i).chain(terms(i, start_j, count_j))
                        {
                            sum += term;
                        }
                        sum += self.rho[decisions.len()] as f64;
                        decisions.push(sum as f32);
                        votes[if sum > 0.0 { i } else { j }] += 1;
                    }
                }
                // The first class with the most votes.
                let mut best = 0;
                for c in 1..k {
                    if votes[c] > votes[best] {
                        best = c;
                    }
                }
                if self.has_probabilities() {
                    let mut pairwise = vec![0.0f32; k * k];
                    let mut index = 0;
                    for i in 0..k - 1 {
                        for j in i + 1..k {
                            // Platt scaling: 1 − logistic(a·f + b), kept
                            // away from 0 and 1.
                            let p = 1.0
                                - logistic(
                                    decisions[index] * self.prob_a[index] + self.prob_b[index],
                                );
                            let p = p.clamp(1.0e-7, 1.0 - 1.0e-7);
                            pairwise[i * k + j] = p;
                            pairwise[j * k + i] = 1.0 - p;
                            index += 1;
                        }
                    }
                    couple_probabilities(k, &pairwise, &mut out[..k]);
                } else {
                    out[..decisions.len()].copy_from_slice(&decisions);
                }
                (best, 0.0)
            }
        }
    }
}

impl Kernel for SvmClassifier {
    fn run(&self, inputs: &[Option<&Tensor>]) -> Result<Vec<Tensor>> {
        let x = required(inputs, 0)?;
        let (rows, values) = input_rows(x, self.n_features)?;
        let k = self.n_classes();
        let one_vs_one = matches!(self.mode, Mode::SupportVectors { .. });
        // Without probabilities, libsvm's scores are the pairwise decision
        // values (two columns for two classes).
        let (width, n_scores) = if one_vs_one && !self.has_probabilities() {
            let pairs = k * (k - 1) / 2;
            (if k > 2 { pairs } else { 2 }, pairs)
        } else {
            (k, k)
        };
        let mut scores = vec![0.0f32; rows * width];
        let mut kernels = Vec::new();
        let mut labels = Vec::with_capacity(rows);
        for (row, out) in values
            .chunks_exact(self.n_features.max(1))
            .zip(scores.chunks_exact_mut(width))
        {
            let (best, best_score) = self.score_row(row, &mut kernels, out);
            labels.push(self.choose_label(best, best_score));
            self.transform(&mut out[..], n_scores);
        }
        Ok(vec![
            labels_at(&self.labels, &labels),
            tensor(DataType::F32, vec![rows, width], TensorData::F32(scores)),
        ])
    }
}

impl SvmClassifier {
    /// The label index, with ONNX Runtime's two-class rules.
    fn choose_label(&self, best: usize, best_score: f32) -> usize {
        if self.n_classes() != 2 || self.has_probabilities() {
            return best;
        }
        let positive = if self.weights_all_positive {
            best_score >= 0.5
        } else {
            best_score > 0.0
        };
        if positive {
            1
        } else {
            best
        }
    }

    /// ONNX Runtime's `batched_update_scores_inplace` on one row of
    /// `n_scores` scores.
    fn transform(&self, out: &mut [f32], n_scores: usize) {
        if n_scores > 1 {
            self.post_transform.apply_to_row(&mut out[..n_scores]);
            return;
        }
        // One decision value (two classes, no probabilities).
        let s = out[0];
        if self.post_transform == PostTransform::Probit {
            out[0] = probit(s);
        } else if self.post_transform == PostTransform::None {
            out[0] = -s;
            out[1] = s;
        } else {
            out[0] = 1.0 - s;
            out[1] = s;
        }
    }
}

pub(crate) fn lower_svm_classifier(ctx: &NodeContext<'_>) -> Result<Lowered> {
    ctx.expect_inputs(1..=1)?;
    ctx.expect_type(
        0,
        &[DataType::F32, DataType::F64, DataType::I64, DataType::I32],
    )?;
    let labels = class_labels(ctx, "classlabels_ints", "classlabels_strings")?;
    let k = labels.len();
    let coefficients = ctx.floats("coefficients")?.unwrap_or_default();
    let rho = ctx.floats("rho")?.unwrap_or_default();
    let prob_a = ctx.floats("prob_a")?.unwrap_or_default();
    let prob_b = ctx.floats("prob_b")?.unwrap_or_default();
    let vectors = ctx.floats("support_vectors")?.unwrap_or_default();
    let per_class = ctx.ints("vectors_per_class")?.unwrap_or_default();
    let post_transform = PostTransform::parse(&ctx.string_or("post_transform", "NONE")?)?;
    if coefficients.is_empty() || rho.is_empty() {
        return Err(Error::invalid("SVMClassifier needs coefficients and rho"));
    }
    if prob_a.len() != prob_b.len() {
        return Err(Error::invalid(
            "SVMClassifier's prob_a and prob_b differ in length",
        ));
    }
    let n_vectors: usize = per_class.iter().map(|&c| c.max(0) as usize).sum();
    let pairs = k * k.saturating_sub(1) / 2;
    let (kernel, mode, n_features) = if n_vectors > 0 {
        if per_class.len() != k || vectors.len() % n_vectors != 0 {
            return Err(Error::invalid(
                "SVMClassifier's support vectors do not match its classes",
            ));
        }
        if coefficients.len() != (k - 1) * n_vectors || rho.len() < pairs {
            return Err(Error::invalid(
                "SVMClassifier's coefficients or rho do not match its support vectors",
            ));
        }
        if !prob_a.is_empty() && prob_a.len() < pairs {
            return Err(Error::invalid(
                "SVMClassifier needs one prob_a per pair of classes",
            ));
        }
        let mut class_vectors = Vec::with_capacity(k);
        let mut start = 0;
        for &count in &per_class {
            class_vectors.push((start, count as usize));
            start += count as usize;
        }
        let n_features = vectors.len() / n_vectors;
        (
            SvmKernel::from_attributes(ctx)?,
            Mode::SupportVectors {
                vectors,
                class_vectors,
                n_vectors,
            },
            n_features,
        )
    } else {
        if k == 0 || coefficients.len() % k != 0 {
            return Err(Error::invalid(
                "SVMClassifier's coefficients do not match its classes",
            ));
        }
        (SvmKernel::Linear, Mode::Linear, coefficients.len() / k)
    };
    if k < 2 {
        return Err(Error::unsupported(
            "an SVM classifier with fewer than two classes",
        ));
    }
    if k == 2 && n_vectors > 0 && prob_a.is_empty() && post_transform == PostTransform::Probit {
        return Err(Error::unsupported(
            "a two-class SVM with PROBIT (ONNX Runtime leaves its second score unset)",
        ));
    }
    if matches!(mode, Mode::Linear) && k == 2 && coefficients.len() / n_features.max(1) != k {
        return Err(Error::invalid(
            "SVMClassifier's coefficients do not match its classes",
        ));
    }
    let weights_all_positive = coefficients.iter().all(|&c| c >= 0.0);
    let label_dtype = label_type(&labels);
    Ok(Lowered::kernel(
        SvmClassifier {
            kernel,
            mode,
            coefficients,
            rho,
            prob_a,
            prob_b,
            labels,
            n_features,
            post_transform,
            weights_all_positive,
        },
        vec![label_dtype, DataType::F32],
    ))
}

// --- SVMRegressor -------------------------------------------------------------------------

struct SvmRegressor {
    kernel: SvmKernel,
    /// Support vectors, `n_features` each; empty for a linear model.
    vectors: Vec<f32>,
    coefficients: Vec<f32>,
    rho: f32,
    n_features: usize,
    one_class: bool,
}

impl Kernel for SvmRegressor {
    fn run(&self, inputs: &[Option<&Tensor>]) -> Result<Vec<Tensor>> {
        let x = required(inputs, 0)?;
        let (rows, values) = input_rows(x, self.n_features)?;
        let mut out = Vec::with_capacity(rows);
        for row in values.chunks_exact(self.n_features.max(1)).take(rows) {
            let value = if self.vectors.is_empty() {
                let dot = dot_fused(row, &self.coefficients);
                if self.rho != 0.0 {
                    dot + self.rho
                } else {
                    dot
                }
            } else {
                let sum = self
                    .vectors
                    .chunks_exact(self.n_features)
                    .zip(&self.coefficients)
                    .fold(0.0f32, |acc, (v, &c)| {
                        fused_multiply_add(self.kernel.apply(row, v), c, acc)
                    });
                sum + self.rho
            };
            out.push(if self.one_class {
                if value > 0.0 {
                    1.0
                } else {
                    -1.0
                }
            } else {
                value
            });
        }
        Ok(vec![tensor(
            DataType::F32,
            vec![rows, 1],
            TensorData::F32(out),
        )])
    }
}

pub(crate) fn lower_svm_regressor(ctx: &NodeContext<'_>) -> Result<Lowered> {
    ctx.expect_inputs(1..=1)?;
    // ONNX Runtime registers the SVMRegressor for float only.
    ctx.expect_type(0, &[DataType::F32])?;
    let n_vectors = usize::try_from(ctx.int_or("n_supports", 0)?)
        .map_err(|_| Error::invalid("SVMRegressor with a negative n_supports"))?;
    let coefficients = ctx.floats("coefficients")?.unwrap_or_default();
    let rho = ctx.floats("rho")?.unwrap_or_default();
    let vectors = ctx.floats("support_vectors")?.unwrap_or_default();
    if coefficients.is_empty() || rho.is_empty() {
        return Err(Error::invalid("SVMRegressor needs coefficients and rho"));
    }
    let (kernel, vectors, n_features) = if n_vectors > 0 {
        if vectors.len() % n_vectors != 0 || coefficients.len() != n_vectors {
            return Err(Error::invalid(
                "SVMRegressor's support vectors and coefficients do not match",
            ));
        }
        let n_features = vectors.len() / n_vectors;
        (SvmKernel::from_attributes(ctx)?, vectors, n_features)
    } else {
        (SvmKernel::Linear, Vec::new(), coefficients.len())
    };
    Ok(Lowered::kernel(
        SvmRegressor {
            kernel,
            vectors,
            coefficients,
            rho: rho[0],
            n_features,
            one_class: ctx.int_or("one_class", 0)? != 0,
        },
        vec![DataType::F32],
    ))
}
