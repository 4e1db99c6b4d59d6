//! scikit-learn's linear models as [`LinearModel`]s.
//!
//! Every estimator here predicts through `LinearModel._decision_function`
//! or `LinearClassifierMixin.decision_function`
//! (`sklearn/linear_model/_base.py`): `X @ coef_.T + intercept_` on the
//! float64 input. Probabilities follow each class's `predict_proba`:
//! - `LogisticRegression` (`_logistic.py`): binary → `expit` of the single
//!   column (`_predict_proba_lr`); multiclass → softmax of the columns,
//!   except for models pickled by versions that still had `multi_class`
//!   and fitted one-vs-rest (`multi_class="ovr"`, or `"auto"` with the
//!   liblinear solver), which normalise the `expit` of each column;
//! - `SGDClassifier` (`_stochastic_gradient.py`): `loss="log_loss"` →
//!   one-vs-rest `expit`; `loss="modified_huber"` → clipped decision;
//!   other losses have no probabilities;
//! - `LinearSVC`, `Perceptron`: no probabilities.

use crate::error::{Error, Result};
use crate::linear::{LinearModel, LinearSpec, LinearTask, Probability};
use crate::sklearn::Estimator;

/// The linear estimators this module reads.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LinearEstimator {
    Regressor,
    LogisticRegression,
    SgdClassifier,
    /// A classifier with a decision function and no probabilities.
    MarginClassifier,
}

impl LinearEstimator {
    pub fn from_estimator(estimator: &Estimator<'_>) -> Option<LinearEstimator> {
        Some(match estimator.sklearn_name()? {
            "LinearRegression" | "Ridge" | "RidgeCV" | "Lasso" | "LassoCV" | "ElasticNet"
            | "ElasticNetCV" | "SGDRegressor" | "LinearSVR" => LinearEstimator::Regressor,
            "LogisticRegression" | "LogisticRegressionCV" => LinearEstimator::LogisticRegression,
            "SGDClassifier" => LinearEstimator::SgdClassifier,
            "LinearSVC" | "Perceptron" => LinearEstimator::MarginClassifier,
            _ => return None,
        })
    }
}

pub fn linear_model(estimator: &Estimator<'_>, kind: LinearEstimator) -> Result<LinearModel> {
    let n_features = estimator.n_features()?;
    let (coefficients, shape) = estimator.floats("coef_")?;
    let (n_columns, two_dimensional) = match shape[..] {
        [n] if n == n_features => (1, false),
        [rows, n] if n == n_features && rows > 0 => (rows, true),
        _ => {
            return Err(Error::invalid(format!(
                "{}.coef_ of shape {shape:?} for {n_features} features",
                estimator.name()
            )))
        }
    };
    let intercepts = estimator.floats_of_len("intercept_", n_columns)?;
    let task = match kind {
        LinearEstimator::Regressor => LinearTask::Regression {
            matrix_output: two_dimensional,
        },
        LinearEstimator::LogisticRegression => LinearTask::Classification {
            labels: estimator.classes()?,
            probability: logistic_probability(estimator, n_columns)?,
        },
        LinearEstimator::SgdClassifier => LinearTask::Classification {
            labels: estimator.classes()?,
            probability: match estimator.string("loss")? {
                "log_loss" | "log" => Probability::OneVsRestLogistic,
                "modified_huber" => Probability::ModifiedHuber,
                _ => Probability::None,
            },
        },
        LinearEstimator::MarginClassifier => LinearTask::Classification {
            labels: estimator.classes()?,
            probability: Probability::None,
        },
    };
    LinearModel::new(LinearSpec {
        n_features,
        coefficients,
        intercepts,
        task,
        feature_names: estimator.feature_names()?,
    })
}

fn logistic_probability(estimator: &Estimator<'_>, n_columns: usize) -> Result<Probability> {
    if n_columns == 1 {
        return Ok(Probability::OneVsRestLogistic);
    }
    // `multi_class` was deprecated in 1.5 and removed later; a model that
    // still carries it predicts as its own version did.
    let one_vs_rest = match estimator.get("multi_class").and_then(|m| m.as_str()) {
        Some("ovr") => true,
        Some("auto" | "warn" | "deprecated") => {
            estimator.get("solver").and_then(|s| s.as_str()) == Some("liblinear")
        }
        _ => false,
    };
    Ok(if one_vs_rest {
        Probability::OneVsRestLogistic
    } else {
        Probability::Softmax
    })
}
