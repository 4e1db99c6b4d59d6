//! SHAP explanations: what every explaining engine returns.
//!
//! An [`Explanation`] holds, per row, feature and model output, the SHAP
//! value φ, with the base value E[f] per output, so that
//! `base + Σ_features φ = f(x)` in the explanation's [`OutputSpace`]
//! (the *local accuracy* property of Lundberg & Lee 2017, eq. 5). The
//! engines compute it their own way (trees: TreeSHAP in `trees::shap`;
//! linear models: Linear SHAP; anything else: KernelSHAP), and report how
//! far the sum is from the model's own answer ([`Explanation::additivity_error`]).

pub mod kernel;

use crate::error::{Error, Result};
use crate::tensor::{NamedTensor, TensorData};

/// Which SHAP algorithm produced the values.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Method {
    /// Exact TreeSHAP with the conditional expectation estimated from the
    /// trees' own node covers (Lundberg et al. 2018, Algorithm 2).
    TreePathDependent,
    /// Exact TreeSHAP of E[f(x_S, X_S̄)] over a background set (Lundberg et
    /// al. 2020, "interventional").
    TreeInterventional,
    /// φ_i = w_i·(x_i − E[x_i]) for a linear margin.
    Linear,
    /// KernelSHAP: weighted linear regression over feature coalitions.
    Kernel,
}

impl Method {
    pub fn name(self) -> &'static str {
        match self {
            Method::TreePathDependent => "tree_path_dependent",
            Method::TreeInterventional => "tree_interventional",
            Method::Linear => "linear",
            Method::Kernel => "kernel",
        }
    }

    pub fn parse(name: &str) -> Result<Method> {
        Ok(match name {
            "tree_path_dependent" | "path_dependent" => Method::TreePathDependent,
            "tree_interventional" | "interventional" => Method::TreeInterventional,
            "linear" => Method::Linear,
            "kernel" => Method::Kernel,
            other => {
                return Err(Error::input(format!(
                    "unknown explanation method {other:?}: expected tree_path_dependent, \
                     tree_interventional, linear or kernel"
                )))
            }
        })
    }

    /// The value function: what "feature i is absent" means.
    pub fn value_function(self) -> &'static str {
        match self {
            Method::TreePathDependent => "path_dependent",
            Method::TreeInterventional | Method::Linear | Method::Kernel => "interventional",
        }
    }
}

/// The space the values add up in.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum OutputSpace {
    /// Before the link: log-odds of a boosted classifier, log of a Poisson
    /// regressor's mean.
    Margin,
    /// Class probabilities (random forests average them in their leaves).
    Probability,
    /// The regression target itself.
    Prediction,
}

impl OutputSpace {
    pub fn name(self) -> &'static str {
        match self {
            OutputSpace::Margin => "margin",
            OutputSpace::Probability => "probability",
            OutputSpace::Prediction => "prediction",
        }
    }
}

/// Rows the interventional methods average over, in the model's own input
/// form (what [`crate::Model::prepare`] hands a runtime), with the hash of
/// their content for the record.
#[derive(Debug, Clone)]
pub struct Background {
    pub inputs: Vec<NamedTensor>,
    pub rows: usize,
    pub hash: String,
}

impl Background {
    /// `inputs` (all with the same number of rows) with the SHA-256 of
    /// their names, types, shapes and values.
    pub fn new(inputs: Vec<NamedTensor>) -> Background {
        use sha2::{Digest, Sha256};
        let mut hasher = Sha256::new();
        for input in &inputs {
            hasher.update(input.name.as_bytes());
            hasher.update([0]);
            hasher.update(input.tensor.dtype.as_oip().as_bytes());
            for d in &input.tensor.shape {
                hasher.update((*d as u64).to_le_bytes());
            }
            match &input.tensor.data {
                TensorData::Bool(v) => v.iter().for_each(|b| hasher.update([u8::from(*b)])),
                TensorData::I64(v) => v.iter().for_each(|x| hasher.update(x.to_le_bytes())),
                TensorData::F32(v) => v.iter().for_each(|x| hasher.update(x.to_le_bytes())),
                TensorData::F64(v) => v.iter().for_each(|x| hasher.update(x.to_le_bytes())),
                TensorData::Str(v) => v.iter().for_each(|s| {
                    hasher.update((s.len() as u64).to_le_bytes());
                    hasher.update(s.as_bytes());
                }),
            }
        }
        let rows = inputs.first().map_or(0, |t| t.tensor.rows());
        let hash = hasher
            .finalize()
            .iter()
            .map(|b| format!("{b:02x}"))
            .collect::<String>();
        Background {
            inputs,
            rows,
            hash: format!("sha256:{hash}"),
        }
    }
}

/// What the caller asks for.
#[derive(Debug, Clone, Default)]
pub struct ExplainOptions {
    /// `None`: the engine's exact method when it has one.
    pub method: Option<Method>,
    pub background: Option<Background>,
    /// KernelSHAP: coalitions sampled per row (`None`: 2·M + 2048, as shap).
    pub samples: Option<usize>,
    /// KernelSHAP: the sampler's seed.
    pub seed: u64,
    /// KernelSHAP: refuse requests that would run the model on more rows
    /// than this (rows × coalitions × background rows), so that one request
    /// cannot hold a server's cores for minutes.
    pub max_model_rows: Option<usize>,
    /// Also the SHAP interaction values (path-dependent TreeSHAP; linear
    /// models, whose are 0 off the diagonal).
    pub interactions: bool,
}

/// SHAP values of some rows.
#[derive(Debug, Clone, PartialEq)]
pub struct Explanation {
    pub method: Method,
    pub output_space: OutputSpace,
    /// The explained features (columns of `values`).
    pub features: Vec<String>,
    /// The explained outputs: one per class of a multi-output classifier,
    /// the positive class of a binary one, or the prediction.
    pub outputs: Vec<String>,
    pub rows: usize,
    /// E[f] per output.
    pub base_values: Vec<f64>,
    /// φ, `rows × features × outputs`, row-major.
    pub values: Vec<f64>,
    /// The model's own answer per row and output, in `output_space`.
    pub predictions: Vec<f64>,
    /// Hash of the background rows, for the interventional methods.
    pub background_hash: Option<String>,
    /// When asked for, the SHAP interaction values Φ, `rows × features ×
    /// features × outputs`, row-major (Lundberg et al. 2020, *Nature MI*
    /// 2:56, Methods): Φ_ij = Φ_ji is half the Shapley interaction index of
    /// i and j, and Φ_ii = φ_i − Σ_{j≠i} Φ_ij, so each row of Φ sums to φ.
    pub interactions: Option<Vec<f64>>,
}

impl Explanation {
    /// φ of `row`, `feature`, `output`.
    pub fn value(&self, row: usize, feature: usize, output: usize) -> f64 {
        let (m, k) = (self.features.len(), self.outputs.len());
        self.values[(row * m + feature) * k + output]
    }

    /// Φ of `row`, features `i` and `j`, `output` (when computed).
    pub fn interaction(&self, row: usize, i: usize, j: usize, output: usize) -> Option<f64> {
        let (m, k) = (self.features.len(), self.outputs.len());
        let at = ((row * m + i) * m + j) * k + output;
        self.interactions.as_ref().map(|values| values[at])
    }

    /// The values of columns summed into the features they were computed
    /// from (`feature_of[c]`, for each explained column c): a one-hot
    /// encoder's columns back into the column it encoded. By efficiency
    /// the sums still add up to f(x) − E[f].
    pub fn grouped(self, feature_of: &[usize], features: Vec<String>) -> Explanation {
        let (m, k, n) = (self.features.len(), self.outputs.len(), features.len());
        let mut values = vec![0.0; self.rows * n * k];
        for (row_values, grouped) in self
            .values
            .chunks_exact(m * k)
            .zip(values.chunks_exact_mut(n * k))
        {
            for (column, &feature) in feature_of.iter().enumerate() {
                for o in 0..k {
                    grouped[feature * k + o] += row_values[column * k + o];
                }
            }
        }
        // Interactions sum over both features: a group's main effect
        // gains the interactions within it.
        let interactions = self.interactions.as_ref().map(|interactions| {
            let mut out = vec![0.0; self.rows * n * n * k];
            for (row_values, grouped) in interactions
                .chunks_exact(m * m * k)
                .zip(out.chunks_exact_mut(n * n * k))
            {
                for (i, &a) in feature_of.iter().enumerate() {
                    for (j, &b) in feature_of.iter().enumerate() {
                        for o in 0..k {
                            grouped[(a * n + b) * k + o] += row_values[(i * m + j) * k + o];
                        }
                    }
                }
            }
            out
        });
        Explanation {
            features,
            values,
            interactions,
            ..self
        }
    }

    /// The largest |base + Σφ − f(x)| over every row and output.
    pub fn additivity_error(&self) -> f64 {
        let (m, k) = (self.features.len(), self.outputs.len());
        let mut worst = 0f64;
        for row in 0..self.rows {
            for output in 0..k {
                let sum: f64 = (0..m).map(|f| self.value(row, f, output)).sum();
                let error =
                    (self.base_values[output] + sum - self.predictions[row * k + output]).abs();
                worst = worst.max(error);
            }
        }
        worst
    }
}
