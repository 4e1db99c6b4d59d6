//! XGBoost's and LightGBM's scikit-learn wrappers, as MLflow's `sklearn`
//! flavor pickles them.
//!
//! - `xgboost.sklearn.XGBClassifier`/`XGBRegressor` hold their booster in
//!   `_Booster`, an `xgboost.core.Booster` whose pickled state is
//!   `{"handle": <the model as UBJSON bytes>}` (`Booster.__getstate__`).
//!   The classifier's labels are `0..n_classes_` (`classes_` is computed
//!   from `n_classes_` in XGBoost 2 and later). Its `predict` uses only the
//!   trees up to `best_iteration` when early stopping recorded one, which
//!   the booster keeps among its attributes: we refuse those models rather
//!   than answer with every tree.
//! - `lightgbm.sklearn.LGBMClassifier`/`LGBMRegressor` hold a
//!   `lightgbm.basic.Booster` in `_Booster`, whose state carries the model
//!   text under `_handle` (`handle` before LightGBM 4.4;
//!   `Booster.__getstate__` writes `model_to_string()`). The classifier's
//!   labels are `_classes` (its `LabelEncoder`'s `classes_`). `predict`
//!   stops at `best_iteration` when it is positive (refused), and maps
//!   pandas categories through `pandas_categorical`, which the model text
//!   carries too (`trees::lightgbm`).

use std::sync::Arc;

use crate::error::{Error, Result};
use crate::pickle::numpy;
use crate::runtime::ModelRuntime;
use crate::sklearn::{class_labels, Estimator};
use crate::trees::{self, ClassLabels, Task};

/// The wrappers this module reads.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Wrapper {
    Xgboost { classifier: bool },
    Lightgbm { classifier: bool },
}

impl Wrapper {
    pub fn from_estimator(estimator: &Estimator<'_>) -> Option<Wrapper> {
        let class = estimator.class();
        Some(match (class.module.as_str(), class.name.as_str()) {
            ("xgboost.sklearn", "XGBClassifier") => Wrapper::Xgboost { classifier: true },
            ("xgboost.sklearn", "XGBRegressor") => Wrapper::Xgboost { classifier: false },
            ("lightgbm.sklearn", "LGBMClassifier") => Wrapper::Lightgbm { classifier: true },
            ("lightgbm.sklearn", "LGBMRegressor") => Wrapper::Lightgbm { classifier: false },
            _ => return None,
        })
    }
}

pub fn from_wrapper(estimator: &Estimator<'_>, wrapper: Wrapper) -> Result<Arc<dyn ModelRuntime>> {
    let (mut spec, labels) = match wrapper {
        Wrapper::Xgboost { classifier } => xgboost(estimator, classifier)?,
        Wrapper::Lightgbm { classifier } => lightgbm(estimator, classifier)?,
    };
    match (labels, &spec.task) {
        (Some(labels), _) => trees::sklearn::relabel(&mut spec, labels)?,
        (None, Task::Regression) => {}
        (None, Task::Classification(_)) => {
            return Err(Error::unsupported(format!(
                "{} whose booster has a classification objective",
                estimator.name()
            )))
        }
    }
    trees::runtime(spec)
}

type WrapperSpec = (trees::EnsembleSpec, Option<ClassLabels>);

fn xgboost(estimator: &Estimator<'_>, classifier: bool) -> Result<WrapperSpec> {
    let booster = estimator.child("_Booster")?;
    let raw = booster.require("handle")?;
    let raw = raw.as_bytes().ok_or_else(|| {
        Error::invalid(format!(
            "XGBoost Booster handle is {}, not bytes",
            raw.describe()
        ))
    })?;
    // The attribute's name, as its UBJSON key (length-prefixed bytes): a
    // feature named so could only make us refuse a model we could serve.
    if contains(raw, b"best_iteration") {
        return Err(Error::unsupported(format!(
            "{} trained with early stopping (predicts with best_iteration)",
            estimator.name()
        )));
    }
    let spec = trees::xgboost::load(raw)?;
    let labels = if classifier {
        let n_classes = estimator.count("n_classes_")?;
        Some(ClassLabels::indices(n_classes))
    } else {
        None
    };
    Ok((spec, labels))
}

fn lightgbm(estimator: &Estimator<'_>, classifier: bool) -> Result<WrapperSpec> {
    let booster = estimator.child("_Booster")?;
    let text = booster
        .get("_handle")
        .or_else(|| booster.get("handle"))
        .ok_or_else(|| Error::invalid("LightGBM Booster without its model text"))?;
    let text = text.as_str().ok_or_else(|| {
        Error::invalid(format!(
            "LightGBM Booster model is {}, not text",
            text.describe()
        ))
    })?;
    let best_iteration = booster
        .get("best_iteration")
        .and_then(numpy::as_i64)
        .unwrap_or(0);
    if best_iteration > 0 {
        return Err(Error::unsupported(format!(
            "{} trained with early stopping (predicts with best_iteration {best_iteration})",
            estimator.name()
        )));
    }
    let mut spec = trees::lightgbm::from_text(text)?;
    // Without `feature_names_in_`, LightGBM names the columns `Column_0`,
    // …: those are not names a caller could have used.
    if !estimator.flag("_fitted_with_feature_names", true)? {
        spec.feature_names = None;
    }
    let labels = if classifier {
        let classes = estimator.array("_classes")?;
        Some(class_labels(&classes)?)
    } else {
        None
    };
    Ok((spec, labels))
}

fn contains(haystack: &[u8], needle: &[u8]) -> bool {
    haystack
        .windows(needle.len())
        .any(|window| window == needle)
}
