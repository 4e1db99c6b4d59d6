//! Native scikit-learn models, read from the files MLflow's `sklearn`
//! flavor writes: `model.pkl` (by `pickle` or `cloudpickle`) and
//! `model.skops` (by skops, its default format).
//!
//! [`from_pickle`] reads the pickle with [`crate::pickle`] (which never runs
//! code); [`from_skops`] translates a skops archive into the pickle of the
//! same objects (`skops.rs`) and reads that. Both then recognise the
//! estimator by its class path:
//! - tree models (decision trees, forests, gradient boosting, histogram
//!   gradient boosting) become a [`crate::trees::EnsembleSpec`], see
//!   [`crate::trees::sklearn`];
//! - linear models become a [`crate::linear::LinearModel`] (`linear.rs`);
//! - a `Pipeline` of transformers followed by one of those becomes a
//!   runtime that transforms the input, then calls the model's
//!   (`pipeline.rs`): `ColumnTransformer`, the encoders (one-hot, ordinal,
//!   target), imputers, scalers, `KBinsDiscretizer`, `PolynomialFeatures`
//!   and `FunctionTransformer` with numpy ufuncs (`transform.rs`), over
//!   DataFrames with text and number columns;
//! - XGBoost's and LightGBM's scikit-learn wrappers go to the loaders of
//!   [`crate::trees`] (`wrappers.rs`).
//!
//! Anything else (an estimator we do not know, a custom class, a
//! transformer we do not run) gives [`Error::Unsupported`] naming the
//! class, so that the caller can fall back to a Python worker: this module
//! answers exactly as scikit-learn would, or not at all.

mod linear;
mod pipeline;
mod skops;
mod transform;
mod wrappers;

use std::sync::Arc;

use crate::error::{Error, Result};
use crate::pickle::numpy::{self, Kind, NdArray};
use crate::pickle::{self, Global, Mapping, Node};
use crate::runtime::ModelRuntime;
use crate::trees::{self, ClassLabels};

/// Reads a pickled estimator and builds its native runtime.
pub fn from_pickle(bytes: &[u8]) -> Result<Arc<dyn ModelRuntime>> {
    let pickle = pickle::parse(bytes)?;
    let estimator = Estimator::new(pickle.root())?;
    build(&estimator, Nesting::default())
}

/// Reads an estimator saved by skops (`model.skops`) and builds its native
/// runtime: the same estimators as [`from_pickle`], with the same answers.
pub fn from_skops(bytes: &[u8]) -> Result<Arc<dyn ModelRuntime>> {
    from_pickle(&skops::to_pickle(bytes)?)
}

/// How deep [`build`] is in pipelines whose last step is a pipeline. A
/// pickle can make a pipeline its own last step (through the memo), which
/// must end in an error rather than a stack overflow.
#[derive(Debug, Clone, Copy, Default)]
pub(crate) struct Nesting(usize);

impl Nesting {
    const MAX: usize = 16;

    pub(crate) fn inner(self) -> Result<Nesting> {
        if self.0 >= Nesting::MAX {
            return Err(Error::invalid("pipelines nested too deeply"));
        }
        Ok(Nesting(self.0 + 1))
    }
}

/// The runtime of one estimator (a pipeline's last step, or the whole
/// pickle).
pub(crate) fn build(estimator: &Estimator<'_>, nesting: Nesting) -> Result<Arc<dyn ModelRuntime>> {
    if let Some(model) = trees::sklearn::TreeModel::from_estimator(estimator) {
        let spec = trees::sklearn::ensemble_spec(estimator, model)?;
        return trees::runtime(spec);
    }
    if let Some(model) = linear::LinearEstimator::from_estimator(estimator) {
        return Ok(Arc::new(linear::linear_model(estimator, model)?));
    }
    if estimator.is_sklearn("Pipeline") {
        return Ok(Arc::new(pipeline::from_pipeline(
            estimator,
            nesting.inner()?,
        )?));
    }
    if let Some(wrapper) = wrappers::Wrapper::from_estimator(estimator) {
        return wrappers::from_wrapper(estimator, wrapper);
    }
    Err(Error::unsupported(format!(
        "no native runtime for {}",
        estimator.class()
    )))
}

/// An estimator in a pickle: an object whose state is its attribute
/// dictionary (what `BaseEstimator.__getstate__` returns), with accessors
/// that turn a missing or mistyped attribute into [`Error::InvalidModel`]
/// naming it.
#[derive(Clone, Copy)]
pub struct Estimator<'p> {
    class: &'p Global,
    attributes: Mapping<'p>,
}

impl<'p> Estimator<'p> {
    /// `node` as an estimator; [`Error::Unsupported`] when it is not an
    /// object of a named class with an attribute dictionary (a function, a
    /// builtin value, a class cloudpickle rebuilt from its code).
    pub fn new(node: Node<'p>) -> Result<Estimator<'p>> {
        let object = node.as_object().ok_or_else(|| {
            Error::unsupported(format!("expected an estimator, found {}", node.describe()))
        })?;
        let class = object.class().ok_or_else(|| {
            Error::unsupported(format!(
                "an object of a class built by {} (a class defined in the training \
                 script, pickled by value)",
                object.callable().describe()
            ))
        })?;
        let attributes = object.attributes().ok_or_else(|| {
            Error::unsupported(format!("{class} object without an attribute dictionary"))
        })?;
        Ok(Estimator { class, attributes })
    }

    pub fn class(&self) -> &'p Global {
        self.class
    }

    /// The class name.
    pub fn name(&self) -> &'p str {
        &self.class.name
    }

    /// Whether the class is scikit-learn's `name` (any module of the
    /// `sklearn` package: modules move between versions, user subclasses
    /// live elsewhere and may override anything).
    pub fn is_sklearn(&self, name: &str) -> bool {
        self.class.name == name && is_sklearn_module(&self.class.module)
    }

    /// The class name when the class is scikit-learn's.
    pub fn sklearn_name(&self) -> Option<&'p str> {
        is_sklearn_module(&self.class.module).then_some(self.name())
    }

    fn error(&self, attribute: &str, problem: &str) -> Error {
        Error::invalid(format!("{}.{attribute}: {problem}", self.name()))
    }

    /// An error about `attribute` from an error reading it: invalid data
    /// becomes an invalid attribute; anything else passes through.
    fn attribute_error(&self, attribute: &str, error: Error) -> Error {
        match error {
            Error::InvalidModel(message) => self.error(attribute, &message),
            Error::Unsupported(message) => {
                Error::unsupported(format!("{}.{attribute}: {message}", self.name()))
            }
            other => other,
        }
    }

    /// The attribute as pickled, Python `None` included.
    pub fn attribute(&self, attribute: &str) -> Option<Node<'p>> {
        self.attributes.get(attribute)
    }

    /// The attribute, `None` when it is missing or Python `None`.
    pub fn get(&self, attribute: &str) -> Option<Node<'p>> {
        self.attributes
            .get(attribute)
            .filter(|node| !node.is_none())
    }

    pub fn require(&self, attribute: &str) -> Result<Node<'p>> {
        self.get(attribute)
            .ok_or_else(|| self.error(attribute, "missing (was the estimator fitted?)"))
    }

    pub fn int(&self, attribute: &str) -> Result<i64> {
        let node = self.require(attribute)?;
        numpy::as_i64(node).ok_or_else(|| {
            self.error(
                attribute,
                &format!("expected an int, found {}", node.describe()),
            )
        })
    }

    /// A non-negative int.
    pub fn count(&self, attribute: &str) -> Result<usize> {
        let value = self.int(attribute)?;
        usize::try_from(value)
            .map_err(|_| self.error(attribute, &format!("negative count {value}")))
    }

    pub fn float(&self, attribute: &str) -> Result<f64> {
        let node = self.require(attribute)?;
        numpy::as_f64(node).ok_or_else(|| {
            self.error(
                attribute,
                &format!("expected a number, found {}", node.describe()),
            )
        })
    }

    /// A bool attribute; `default` when it is absent (parameters added in
    /// later scikit-learn versions).
    pub fn flag(&self, attribute: &str, default: bool) -> Result<bool> {
        match self.get(attribute) {
            None => Ok(default),
            Some(node) => numpy::as_bool(node).ok_or_else(|| {
                self.error(
                    attribute,
                    &format!("expected a bool, found {}", node.describe()),
                )
            }),
        }
    }

    pub fn string(&self, attribute: &str) -> Result<&'p str> {
        let node = self.require(attribute)?;
        node.as_str().ok_or_else(|| {
            self.error(
                attribute,
                &format!("expected a string, found {}", node.describe()),
            )
        })
    }

    pub fn array(&self, attribute: &str) -> Result<NdArray<'p>> {
        let node = self.require(attribute)?;
        numpy::ndarray(node).map_err(|e| self.attribute_error(attribute, e))
    }

    /// A numeric array attribute as `f64`, with its shape.
    pub fn floats(&self, attribute: &str) -> Result<(Vec<f64>, Vec<usize>)> {
        let array = self.array(attribute)?;
        let values = array
            .to_f64()
            .map_err(|e| self.attribute_error(attribute, e))?;
        Ok((values, array.shape))
    }

    /// A one-dimensional numeric array attribute of `len` values, or a
    /// number repeated `len` times (scikit-learn keeps some per-feature
    /// statistics as scalars when they are all equal).
    pub fn floats_of_len(&self, attribute: &str, len: usize) -> Result<Vec<f64>> {
        let node = self.require(attribute)?;
        if let Some(value) = numpy::as_f64(node) {
            return Ok(vec![value; len]);
        }
        let (values, shape) = self.floats(attribute)?;
        if values.len() != len || shape.len() > 1 {
            return Err(self.error(
                attribute,
                &format!("expected {len} values, found shape {shape:?}"),
            ));
        }
        Ok(values)
    }

    /// Another estimator held in an attribute.
    pub fn child(&self, attribute: &str) -> Result<Estimator<'p>> {
        Estimator::new(self.require(attribute)?)
    }

    /// `n_features_in_`.
    pub fn n_features(&self) -> Result<usize> {
        let n = self.count("n_features_in_")?;
        if n == 0 {
            return Err(self.error("n_features_in_", "zero features"));
        }
        Ok(n)
    }

    /// `feature_names_in_`, set when the estimator was fitted on a
    /// DataFrame with string column names.
    pub fn feature_names(&self) -> Result<Option<Vec<String>>> {
        let Some(node) = self.get("feature_names_in_") else {
            return Ok(None);
        };
        let array =
            numpy::ndarray(node).map_err(|e| self.attribute_error("feature_names_in_", e))?;
        let names = array
            .to_strings()
            .map_err(|e| self.attribute_error("feature_names_in_", e))?;
        Ok(Some(names))
    }

    /// `classes_`, the labels in the order of the probability columns.
    pub fn classes(&self) -> Result<ClassLabels> {
        let array = self.array("classes_")?;
        class_labels(&array).map_err(|e| self.attribute_error("classes_", e))
    }
}

fn is_sklearn_module(module: &str) -> bool {
    module == "sklearn" || module.starts_with("sklearn.")
}

/// The class labels of a `classes_` array. Integer labels stay integers;
/// string labels (`U` arrays, or `object` arrays of `str`) stay strings;
/// float labels that are all whole numbers (a target column read as float)
/// become integers, which only changes how the predicted labels are
/// typed. Other labels (booleans, fractional floats, mixed objects) are
/// refused: the predicted labels could not be written faithfully.
pub(crate) fn class_labels(array: &NdArray<'_>) -> Result<ClassLabels> {
    if array.shape.len() != 1 || array.is_empty() {
        return Err(Error::invalid(format!(
            "expected a 1-D array of labels, found shape {:?}",
            array.shape
        )));
    }
    let labels = match array.dtype.kind {
        Kind::Int | Kind::UInt => ClassLabels::Int(array.to_i64()?),
        Kind::Unicode | Kind::Bytes | Kind::Object => {
            let strings = array
                .to_strings()
                .map_err(|_| Error::unsupported("class labels that are not all strings"))?;
            ClassLabels::Str(strings)
        }
        Kind::Float => {
            let values = array.to_f64()?;
            let whole = values
                .iter()
                .all(|v| v.fract() == 0.0 && v.abs() < 9.007_199_254_740_992e15);
            if !whole {
                return Err(Error::unsupported("fractional float class labels"));
            }
            ClassLabels::Int(values.iter().map(|&v| v as i64).collect())
        }
        Kind::Bool | Kind::Void => {
            return Err(Error::unsupported(format!(
                "{:?} class labels",
                array.dtype.kind
            )))
        }
    };
    Ok(labels)
}

#[cfg(test)]
mod tests;
