//! Linear models: a decision function `X · coefᵀ + intercept` computed in
//! `f64`, and the classifiers' rules for turning it into labels and
//! probabilities.
//!
//! The shapes follow the tree engine ([`crate::trees::TreeEnsemble`]): one
//! `FP64` input `[-1, n_features]`; a regressor answers `predict` (`[-1]`,
//! or `[-1, n_targets]` for several targets); a classifier answers
//! `predict` (its labels) and, when it has probabilities, `predict_proba`
//! (`[-1, n_classes]`).
//!
//! The rules are scikit-learn's (`sklearn/linear_model/_base.py`,
//! `LinearClassifierMixin`): a binary classifier has one decision column
//! and predicts the second class when it is positive; a multiclass one has
//! one column per class and predicts the first largest. Inputs must be
//! finite: scikit-learn refuses NaN and infinities for these models.

use crate::error::{Error, Result};
use crate::explain::{Background, ExplainOptions, Explanation, Method, OutputSpace};
use crate::runtime::{ModelRuntime, RuntimeInfo};
use crate::tensor::{DataType, NamedTensor, Tensor, TensorData, TensorSpec};
use crate::trees::ClassLabels;

/// A linear model as a loader describes it.
#[derive(Debug, Clone, PartialEq)]
pub struct LinearSpec {
    pub n_features: usize,
    /// One row of `n_features` coefficients per decision column,
    /// row-major.
    pub coefficients: Vec<f64>,
    /// One intercept per decision column.
    pub intercepts: Vec<f64>,
    pub task: LinearTask,
    pub feature_names: Option<Vec<String>>,
}

#[derive(Debug, Clone, PartialEq)]
pub enum LinearTask {
    Regression {
        /// Answer `[rows, n_targets]` even for one target, as scikit-learn
        /// does when `coef_` is two-dimensional.
        matrix_output: bool,
    },
    Classification {
        labels: ClassLabels,
        probability: Probability,
    },
}

/// How a classifier's decision function becomes probabilities.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Probability {
    /// No `predict_proba` (hinge losses, SVMs).
    None,
    /// `expit` of each column; with several classes, each row divided by
    /// its sum, or uniform when the sum is zero (`_predict_proba_lr`).
    OneVsRestLogistic,
    /// Softmax over the columns (multinomial logistic regression).
    Softmax,
    /// `(clip(d, -1, 1) + 1) / 2` per column, normalised like
    /// [`Probability::OneVsRestLogistic`] (`SGDClassifier` with
    /// `loss="modified_huber"`).
    ModifiedHuber,
}

/// A linear model, ready to predict.
#[derive(Debug, Clone)]
pub struct LinearModel {
    spec: LinearSpec,
    /// Decision columns: 1 for a regressor with one target and a binary
    /// classifier.
    n_columns: usize,
    info: RuntimeInfo,
}

impl LinearModel {
    /// Checks that the coefficients, intercepts and labels agree.
    pub fn new(spec: LinearSpec) -> Result<LinearModel> {
        let n_features = spec.n_features;
        let n_columns = spec.coefficients.len().checked_div(n_features).unwrap_or(0);
        if n_columns == 0 || n_columns * n_features != spec.coefficients.len() {
            return Err(Error::invalid(format!(
                "linear model with {} coefficients for {n_features} features",
                spec.coefficients.len()
            )));
        }
        if spec.intercepts.len() != n_columns {
            return Err(Error::invalid(format!(
                "linear model with {n_columns} coefficient rows and {} intercepts",
                spec.intercepts.len()
            )));
        }
        if let LinearTask::Classification { labels, .. } = &spec.task {
            let expected = if labels.len() == 2 { 1 } else { labels.len() };
            if labels.len() < 2 || n_columns != expected {
                return Err(Error::invalid(format!(
                    "linear classifier with {} classes and {n_columns} coefficient rows",
                    labels.len()
                )));
            }
        }
        if let LinearTask::Regression {
            matrix_output: false,
        } = spec.task
        {
            if n_columns != 1 {
                return Err(Error::invalid(format!(
                    "linear regressor with {n_columns} targets and a one-dimensional output"
                )));
            }
        }
        let info = runtime_info(&spec, n_columns);
        Ok(LinearModel {
            spec,
            n_columns,
            info,
        })
    }

    pub fn spec(&self) -> &LinearSpec {
        &self.spec
    }

    /// `X · coefᵀ + intercept` for each row of `features` into `out`
    /// (`n_columns` per row). The products are summed in feature order;
    /// BLAS may sum in another order, which changes the last bits only.
    fn decision_function(&self, features: &[f64], out: &mut [f64]) {
        let n_features = self.spec.n_features;
        for (row, scores) in features
            .chunks_exact(n_features)
            .zip(out.chunks_exact_mut(self.n_columns))
        {
            for ((score, coefficients), intercept) in scores
                .iter_mut()
                .zip(self.spec.coefficients.chunks_exact(n_features))
                .zip(&self.spec.intercepts)
            {
                *score = dot(row, coefficients) + intercept;
            }
        }
    }
}

/// Σ x·c in four interleaved partial sums: independent additions keep the
/// pipeline full (BLAS, which scikit-learn calls, does not sum in order
/// either).
fn dot(x: &[f64], c: &[f64]) -> f64 {
    let mut partial = [0.0; 4];
    let (x_blocks, c_blocks) = (x.chunks_exact(4), c.chunks_exact(4));
    let (x_rest, c_rest) = (x_blocks.remainder(), c_blocks.remainder());
    for (x, c) in x_blocks.zip(c_blocks) {
        for k in 0..4 {
            partial[k] += x[k] * c[k];
        }
    }
    let rest: f64 = x_rest.iter().zip(c_rest).map(|(x, c)| x * c).sum();
    (partial[0] + partial[1]) + (partial[2] + partial[3]) + rest
}

fn runtime_info(spec: &LinearSpec, n_columns: usize) -> RuntimeInfo {
    let input = TensorSpec::new("input", DataType::F64, vec![-1, spec.n_features as i64]);
    let outputs = match &spec.task {
        LinearTask::Regression {
            matrix_output: false,
        } => {
            vec![TensorSpec::new("predict", DataType::F64, vec![-1])]
        }
        LinearTask::Regression {
            matrix_output: true,
        } => {
            vec![TensorSpec::new(
                "predict",
                DataType::F64,
                vec![-1, n_columns as i64],
            )]
        }
        LinearTask::Classification {
            labels,
            probability,
        } => {
            let label_type = match labels {
                ClassLabels::Int(_) => DataType::I64,
                ClassLabels::Str(_) => DataType::Bytes,
            };
            let mut outputs = vec![TensorSpec::new("predict", label_type, vec![-1])];
            if *probability != Probability::None {
                outputs.push(TensorSpec::new(
                    "predict_proba",
                    DataType::F64,
                    vec![-1, labels.len() as i64],
                ));
            }
            outputs
        }
    };
    RuntimeInfo {
        engine: "native-linear",
        inputs: vec![input],
        outputs,
        feature_names: spec.feature_names.clone(),
        accepts_any_inputs: false,
    }
}

/// scipy's `expit`: `1 / (1 + exp(-x))`.
fn expit(x: f64) -> f64 {
    1.0 / (1.0 + (-x).exp())
}

/// Probabilities of one row from its decision columns (`decision` has one
/// value for a binary classifier).
fn probabilities(probability: Probability, decision: &[f64], out: &mut [f64]) {
    let squash = |d: f64| match probability {
        Probability::ModifiedHuber => (d.clamp(-1.0, 1.0) + 1.0) / 2.0,
        _ => expit(d),
    };
    match (probability, decision) {
        (Probability::None, _) => {}
        (Probability::Softmax, [d]) => {
            // scikit-learn's binary LogisticRegression takes the
            // one-vs-rest branch; this is its softmax of `[-d, d]` for
            // completeness.
            let (low, high) = (-d, *d);
            let max = low.max(high);
            let (e_low, e_high) = ((low - max).exp(), (high - max).exp());
            let sum = e_low + e_high;
            out[0] = e_low / sum;
            out[1] = e_high / sum;
        }
        (Probability::Softmax, _) => {
            // `sklearn.utils.extmath.softmax`: subtract the row maximum,
            // exponentiate, divide by the sum.
            let max = decision.iter().fold(f64::NEG_INFINITY, |m, &d| m.max(d));
            for (o, d) in out.iter_mut().zip(decision) {
                *o = (d - max).exp();
            }
            let sum: f64 = out.iter().sum();
            for o in out.iter_mut() {
                *o /= sum;
            }
        }
        (Probability::OneVsRestLogistic | Probability::ModifiedHuber, [d]) => {
            let p = squash(*d);
            out[0] = 1.0 - p;
            out[1] = p;
        }
        (Probability::OneVsRestLogistic | Probability::ModifiedHuber, _) => {
            for (o, d) in out.iter_mut().zip(decision) {
                *o = squash(*d);
            }
            let sum: f64 = out.iter().sum();
            if sum == 0.0 {
                let uniform = 1.0 / out.len() as f64;
                out.fill(uniform);
            } else {
                for o in out.iter_mut() {
                    *o /= sum;
                }
            }
        }
    }
}

/// The predicted class index from a row's decision columns.
fn predicted_class(decision: &[f64]) -> usize {
    match decision {
        [d] => usize::from(*d > 0.0),
        _ => {
            let mut best = 0;
            for (i, &d) in decision.iter().enumerate().skip(1) {
                if d > decision[best] {
                    best = i;
                }
            }
            best
        }
    }
}

impl LinearModel {
    /// Linear SHAP (Lundberg & Lee 2017, §4.1; shap's `LinearExplainer`
    /// with independent features): for each decision column c,
    /// φ_{c,i} = w_{c,i}·(x_i − E[x_i]), and the base value is the decision
    /// at the background mean, E[f] = b_c + Σ_i w_{c,i}·E[x_i]. Exact for
    /// the margin (log-odds of a logistic regression).
    fn explain_linear(&self, features: &[f64], background: &Background) -> Result<Explanation> {
        let n_features = self.spec.n_features;
        let [reference] = background.inputs.as_slice() else {
            return Err(Error::input("the background must be one feature matrix"));
        };
        let TensorData::F64(reference) = &reference.tensor.data else {
            return Err(Error::input("the background must be an FP64 matrix"));
        };
        let background_rows = reference.len() / n_features;
        if background_rows == 0 {
            return Err(Error::input("the background data has no rows"));
        }
        let mut mean = vec![0.0; n_features];
        for row in reference.chunks_exact(n_features) {
            for (m, x) in mean.iter_mut().zip(row) {
                *m += x / background_rows as f64;
            }
        }
        let k = self.n_columns;
        let rows = features.len() / n_features;
        let mut base_values = vec![0.0; k];
        self.decision_function(&mean, &mut base_values);
        let mut predictions = vec![0.0; rows * k];
        self.decision_function(features, &mut predictions);
        let mut values = vec![0.0; rows * n_features * k];
        for (row, x) in features.chunks_exact(n_features).enumerate() {
            for (i, (x, m)) in x.iter().zip(&mean).enumerate() {
                for c in 0..k {
                    let w = self.spec.coefficients[c * n_features + i];
                    values[(row * n_features + i) * k + c] = w * (x - m);
                }
            }
        }
        let (outputs, output_space) = match &self.spec.task {
            LinearTask::Classification { labels, .. } => {
                let name = |i: usize| match labels {
                    ClassLabels::Int(v) => v[i].to_string(),
                    ClassLabels::Str(v) => v[i].clone(),
                };
                let names = if k == 1 {
                    vec![name(1)]
                } else {
                    (0..k).map(name).collect()
                };
                (names, OutputSpace::Margin)
            }
            LinearTask::Regression { .. } if k == 1 => {
                (vec!["predict".to_owned()], OutputSpace::Prediction)
            }
            LinearTask::Regression { .. } => (
                (0..k).map(|c| format!("predict_{c}")).collect(),
                OutputSpace::Prediction,
            ),
        };
        Ok(Explanation {
            method: Method::Linear,
            output_space,
            features: match &self.spec.feature_names {
                Some(names) => names.clone(),
                None => (0..n_features).map(|i| format!("f{i}")).collect(),
            },
            outputs,
            rows,
            base_values,
            values,
            predictions,
            background_hash: Some(background.hash.clone()),
            interactions: None,
        })
    }

    fn checked_matrix<'a>(&self, inputs: &'a [NamedTensor]) -> Result<&'a [f64]> {
        let [input] = inputs else {
            return Err(Error::input(format!(
                "a linear model takes one input, got {}",
                inputs.len()
            )));
        };
        let TensorData::F64(features) = &input.tensor.data else {
            return Err(Error::input("a linear model takes an FP64 matrix"));
        };
        if features.len() % self.spec.n_features != 0 {
            return Err(Error::input("a ragged feature matrix"));
        }
        Ok(features)
    }
}

impl ModelRuntime for LinearModel {
    fn info(&self) -> &RuntimeInfo {
        &self.info
    }

    fn explains_exactly(&self) -> bool {
        true
    }

    fn explain(&self, inputs: &[NamedTensor], options: &ExplainOptions) -> Result<Explanation> {
        match options.method {
            None | Some(Method::Linear) => {
                let background = options.background.as_ref().ok_or_else(|| {
                    Error::input("Linear SHAP needs background data for the features' means")
                })?;
                let mut explanation =
                    self.explain_linear(self.checked_matrix(inputs)?, background)?;
                if options.interactions {
                    // A linear margin has no interactions: Φ is diagonal.
                    let (m, k) = (explanation.features.len(), explanation.outputs.len());
                    let mut interactions = vec![0.0; explanation.rows * m * m * k];
                    for row in 0..explanation.rows {
                        for i in 0..m {
                            for o in 0..k {
                                interactions[((row * m + i) * m + i) * k + o] =
                                    explanation.value(row, i, o);
                            }
                        }
                    }
                    explanation.interactions = Some(interactions);
                }
                Ok(explanation)
            }
            Some(Method::Kernel) => crate::explain::kernel::explain(self, inputs, options),
            Some(other) => Err(Error::input(format!(
                "a linear model is explained by the linear or kernel method, not {}",
                other.name()
            ))),
        }
    }

    fn predict(&self, inputs: &[NamedTensor]) -> Result<Vec<NamedTensor>> {
        let [input] = inputs else {
            return Err(Error::input(format!(
                "a linear model takes one input, got {}",
                inputs.len()
            )));
        };
        let TensorData::F64(features) = &input.tensor.data else {
            return Err(Error::input("a linear model takes an FP64 matrix"));
        };
        let n_features = self.spec.n_features;
        if input.tensor.shape.len() != 2 || input.tensor.shape[1] != n_features {
            return Err(Error::input(format!(
                "expected a [rows, {n_features}] matrix, got shape {:?}",
                input.tensor.shape
            )));
        }
        let rows = input.tensor.shape[0];
        if features.len() != rows * n_features {
            return Err(Error::input(format!(
                "a [{rows}, {n_features}] matrix with {} values",
                features.len()
            )));
        }
        // scikit-learn validates linear models' input with
        // `ensure_all_finite=True`: it refuses NaN and infinities rather
        // than predict from them.
        // A branch-free scan first (it vectorises); the position only on
        // failure.
        let all_finite = features.iter().fold(true, |ok, x| ok & x.is_finite());
        if let Some(position) = (!all_finite)
            .then(|| features.iter().position(|x| !x.is_finite()))
            .flatten()
        {
            return Err(Error::input(format!(
                "row {}, column {} of the matrix the linear model receives (after any \
                 preprocessing steps) is {}: a linear model needs finite values, as \
                 scikit-learn's does (impute missing values, e.g. with SimpleImputer)",
                position / n_features,
                position % n_features,
                features[position]
            )));
        }
        let mut decision = vec![0.0; rows * self.n_columns];
        self.decision_function(features, &mut decision);
        Ok(match &self.spec.task {
            LinearTask::Regression { matrix_output } => {
                let shape = if *matrix_output {
                    vec![rows, self.n_columns]
                } else {
                    vec![rows]
                };
                vec![NamedTensor::new(
                    "predict",
                    Tensor {
                        dtype: DataType::F64,
                        shape,
                        data: TensorData::F64(decision),
                    },
                )]
            }
            LinearTask::Classification {
                labels,
                probability,
            } => {
                let winners = decision.chunks_exact(self.n_columns).map(predicted_class);
                let predicted = match labels {
                    ClassLabels::Int(l) => {
                        Tensor::column(TensorData::I64(winners.map(|i| l[i]).collect()))
                    }
                    ClassLabels::Str(l) => {
                        Tensor::column(TensorData::Str(winners.map(|i| l[i].clone()).collect()))
                    }
                };
                let mut outputs = vec![NamedTensor::new("predict", predicted)];
                if *probability != Probability::None {
                    let n_classes = labels.len();
                    let mut proba = vec![0.0; rows * n_classes];
                    for (row, out) in decision
                        .chunks_exact(self.n_columns)
                        .zip(proba.chunks_exact_mut(n_classes))
                    {
                        probabilities(*probability, row, out);
                    }
                    outputs.push(NamedTensor::new(
                        "predict_proba",
                        Tensor {
                            dtype: DataType::F64,
                            shape: vec![rows, n_classes],
                            data: TensorData::F64(proba),
                        },
                    ));
                }
                outputs
            }
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn model(coefficients: Vec<f64>, intercepts: Vec<f64>, task: LinearTask) -> LinearModel {
        LinearModel::new(LinearSpec {
            n_features: 2,
            coefficients,
            intercepts,
            task,
            feature_names: None,
        })
        .unwrap()
    }

    fn run(model: &LinearModel, rows: &[[f64; 2]]) -> Vec<NamedTensor> {
        let values = rows.iter().flatten().copied().collect();
        model
            .predict(&[NamedTensor::new(
                "input",
                Tensor::f64_matrix(rows.len(), 2, values),
            )])
            .unwrap()
    }

    #[test]
    fn regression_is_the_dot_product_plus_intercept() {
        let m = model(
            vec![2.0, -1.0],
            vec![0.5],
            LinearTask::Regression {
                matrix_output: false,
            },
        );
        let out = run(&m, &[[1.0, 1.0], [0.0, 3.0]]);
        assert_eq!(out[0].tensor.data, TensorData::F64(vec![1.5, -2.5]));
        assert_eq!(out[0].tensor.shape, vec![2]);
    }

    #[test]
    fn binary_classifier_predicts_the_second_class_only_when_positive() {
        let labels = ClassLabels::Str(vec!["no".into(), "yes".into()]);
        let m = model(
            vec![1.0, 0.0],
            vec![0.0],
            LinearTask::Classification {
                labels,
                probability: Probability::OneVsRestLogistic,
            },
        );
        let out = run(&m, &[[1.0, 0.0], [0.0, 0.0], [-1.0, 0.0]]);
        assert_eq!(
            out[0].tensor.data,
            TensorData::Str(vec!["yes".into(), "no".into(), "no".into()])
        );
        let TensorData::F64(proba) = &out[1].tensor.data else {
            panic!()
        };
        assert_eq!(proba[2..4], [0.5, 0.5]);
        assert_eq!(proba[1], expit(1.0));
    }

    #[test]
    fn one_vs_rest_rows_sum_to_one_and_zero_rows_are_uniform() {
        let mut out = [0.0; 3];
        probabilities(Probability::OneVsRestLogistic, &[0.0, 1.0, -1.0], &mut out);
        assert!((out.iter().sum::<f64>() - 1.0).abs() < 1e-15);
        probabilities(Probability::ModifiedHuber, &[-2.0, -1.0, -5.0], &mut out);
        assert_eq!(out, [1.0 / 3.0; 3]);
    }

    #[test]
    fn missing_values_are_refused_like_scikit_learn_does() {
        let m = model(
            vec![1.0, 1.0],
            vec![0.0],
            LinearTask::Regression {
                matrix_output: false,
            },
        );
        let input = NamedTensor::new("input", Tensor::f64_matrix(1, 2, vec![1.0, f64::NAN]));
        match m.predict(&[input]) {
            Err(Error::Input(message)) => assert!(message.contains("row 0, column 1"), "{message}"),
            other => panic!("expected an input error, got {other:?}"),
        }
    }

    #[test]
    fn mismatched_shapes_are_invalid_models() {
        let spec = LinearSpec {
            n_features: 2,
            coefficients: vec![1.0, 2.0, 3.0],
            intercepts: vec![0.0],
            task: LinearTask::Regression {
                matrix_output: false,
            },
            feature_names: None,
        };
        assert!(matches!(
            LinearModel::new(spec),
            Err(Error::InvalidModel(_))
        ));
    }
}
