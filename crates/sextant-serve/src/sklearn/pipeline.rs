//! scikit-learn `Pipeline`s of numeric transforms followed by a native
//! estimator.
//!
//! `Pipeline.predict` (`sklearn/pipeline.py`) runs each step's `transform`
//! in order, then the last step's `predict`; steps named `"passthrough"`
//! (or `None`) do nothing. The transforms we run natively are the ones that
//! work column by column on float64 data, each written as the same
//! elementwise numpy operations scikit-learn 1.9 performs, in the same
//! order, so that the results are the same bits
//! (`sklearn/preprocessing/_data.py`, `sklearn/impute/_base.py`):
//! - `StandardScaler`: `X -= mean_` (when `with_mean`), `X /= scale_`
//!   (when `with_std`);
//! - `MinMaxScaler`: `X *= scale_`, `X += min_`, then `clip` to
//!   `feature_range` when `clip`;
//! - `MaxAbsScaler`: `X /= scale_`, then `clip` to `[-1, 1]` when `clip`;
//! - `RobustScaler`: `X -= center_` (when `with_centering`), `X /= scale_`
//!   (when `with_scaling`);
//! - `SimpleImputer` on numbers: values equal to `missing_values` (NaN by
//!   default) take `statistics_` cast to the fitted dtype; columns whose
//!   statistic is NaN are dropped unless `keep_empty_features`;
//!   `add_indicator` is not supported.
//!
//! Any other step gives [`Error::Unsupported`] naming its class.

use std::sync::Arc;

use crate::error::{Error, Result};
use crate::pickle::numpy::{self, Kind};
use crate::runtime::{CallCost, ModelRuntime, RuntimeInfo};
use crate::sklearn::{self, Estimator, Nesting};
use crate::tensor::{DataType, NamedTensor, Tensor, TensorData, TensorSpec};

/// Numeric transforms, then a model.
pub struct Preprocessed {
    operations: Vec<Operation>,
    n_features: usize,
    /// Columns the model receives.
    model_features: usize,
    model: Arc<dyn ModelRuntime>,
    info: RuntimeInfo,
}

/// One columnwise operation on a row-major batch.
#[derive(Debug, Clone, PartialEq)]
enum Operation {
    Subtract(Vec<f64>),
    Divide(Vec<f64>),
    Multiply(Vec<f64>),
    Add(Vec<f64>),
    /// numpy's `clip`: NaN stays NaN.
    Clip {
        low: f64,
        high: f64,
    },
    /// Missing values of each column take its fill value.
    Impute {
        missing: MissingValue,
        fill: Vec<f64>,
    },
    /// Keep these columns, in this order.
    Select(Vec<usize>),
}

/// `SimpleImputer.missing_values` for numeric data.
#[derive(Debug, Clone, Copy, PartialEq)]
enum MissingValue {
    Nan,
    Number(f64),
}

impl MissingValue {
    fn matches(self, x: f64) -> bool {
        match self {
            MissingValue::Nan => x.is_nan(),
            MissingValue::Number(value) => x == value,
        }
    }
}

/// The runtime of a fitted `Pipeline`.
pub(crate) fn from_pipeline(pipeline: &Estimator<'_>, nesting: Nesting) -> Result<Preprocessed> {
    let steps = pipeline.require("steps")?;
    let steps = steps.as_list().ok_or_else(|| {
        Error::invalid(format!(
            "Pipeline.steps: expected a list, found {}",
            steps.describe()
        ))
    })?;
    let mut estimators = Vec::with_capacity(steps.len());
    for step in steps.iter() {
        let pair = step
            .as_tuple()
            .filter(|t| t.len() == 2)
            .ok_or_else(|| Error::invalid("Pipeline step is not a (name, estimator) pair"))?;
        let estimator = pair
            .get(1)
            .ok_or_else(|| Error::invalid("empty Pipeline step"))?;
        if estimator.is_none() || estimator.as_str() == Some("passthrough") {
            estimators.push(None);
        } else {
            estimators.push(Some(Estimator::new(estimator)?));
        }
    }
    let Some(Some(last)) = estimators.pop() else {
        return Err(Error::unsupported("a Pipeline without a final estimator"));
    };
    let transforms: Vec<Estimator<'_>> = estimators.into_iter().flatten().collect();
    let model = sklearn::build(&last, nesting)?;
    let Some(first) = transforms.first() else {
        // Nothing but passthrough steps before the model.
        return Preprocessed::new(Vec::new(), model_width(&model)?, None, model);
    };
    let n_features = first.n_features()?;
    let feature_names = first.feature_names()?;
    let mut operations = Vec::new();
    let mut width = n_features;
    for transform in &transforms {
        let n_in = transform.n_features()?;
        if n_in != width {
            return Err(Error::invalid(format!(
                "Pipeline step {} takes {n_in} features after a step that gives {width}",
                transform.name()
            )));
        }
        width = column_operations(transform, width, &mut operations)?;
    }
    let model_features = model_width(&model)?;
    if model_features != width {
        return Err(Error::invalid(format!(
            "Pipeline transforms give {width} features and its model takes {model_features}"
        )));
    }
    Preprocessed::new(operations, n_features, feature_names, model)
}

/// The columns of the single matrix a native model takes.
fn model_width(model: &Arc<dyn ModelRuntime>) -> Result<usize> {
    match &model.info().inputs[..] {
        [input] if input.shape.len() == 2 && input.shape[1] > 0 => Ok(input.shape[1] as usize),
        _ => Err(Error::invalid(
            "a Pipeline model that does not take one feature matrix",
        )),
    }
}

/// Appends the operations of one transformer; returns its output width.
fn column_operations(
    step: &Estimator<'_>,
    width: usize,
    operations: &mut Vec<Operation>,
) -> Result<usize> {
    let name = step.sklearn_name().ok_or_else(|| {
        Error::unsupported(format!(
            "no native runtime for the Pipeline step {}",
            step.class()
        ))
    })?;
    match name {
        "StandardScaler" => {
            if step.flag("with_mean", true)? {
                operations.push(Operation::Subtract(step.floats_of_len("mean_", width)?));
            }
            if step.flag("with_std", true)? {
                operations.push(Operation::Divide(step.floats_of_len("scale_", width)?));
            }
        }
        "MinMaxScaler" => {
            operations.push(Operation::Multiply(step.floats_of_len("scale_", width)?));
            operations.push(Operation::Add(step.floats_of_len("min_", width)?));
            if step.flag("clip", false)? {
                let range = step.require("feature_range")?;
                let bounds = range
                    .as_sequence()
                    .filter(|r| r.len() == 2)
                    .and_then(|r| Some((numpy::as_f64(r.get(0)?)?, numpy::as_f64(r.get(1)?)?)))
                    .ok_or_else(|| {
                        Error::invalid("MinMaxScaler.feature_range is not a pair of numbers")
                    })?;
                operations.push(Operation::Clip {
                    low: bounds.0,
                    high: bounds.1,
                });
            }
        }
        "MaxAbsScaler" => {
            operations.push(Operation::Divide(step.floats_of_len("scale_", width)?));
            if step.flag("clip", false)? {
                operations.push(Operation::Clip {
                    low: -1.0,
                    high: 1.0,
                });
            }
        }
        "RobustScaler" => {
            if step.flag("with_centering", true)? {
                operations.push(Operation::Subtract(step.floats_of_len("center_", width)?));
            }
            if step.flag("with_scaling", true)? {
                operations.push(Operation::Divide(step.floats_of_len("scale_", width)?));
            }
        }
        "SimpleImputer" => return imputer_operations(step, width, operations),
        _ => {
            return Err(Error::unsupported(format!(
                "no native runtime for the Pipeline step {}",
                step.class()
            )))
        }
    }
    Ok(width)
}

fn imputer_operations(
    step: &Estimator<'_>,
    width: usize,
    operations: &mut Vec<Operation>,
) -> Result<usize> {
    if step.flag("add_indicator", false)? {
        return Err(Error::unsupported("SimpleImputer with add_indicator"));
    }
    let missing = match step.attribute("missing_values") {
        Some(node) => match numpy::as_f64(node) {
            Some(value) if value.is_nan() => MissingValue::Nan,
            Some(value) => MissingValue::Number(value),
            None => {
                return Err(Error::unsupported(format!(
                    "SimpleImputer with missing_values {}",
                    node.describe()
                )))
            }
        },
        None => MissingValue::Nan,
    };
    let statistics = step.floats_of_len("statistics_", width)?;
    // `transform` casts the statistics to the dtype the imputer was fitted
    // on before filling.
    let fill_dtype = step.get("_fill_dtype").or_else(|| step.get("_fit_dtype"));
    let cast: fn(f64) -> f64 = match fill_dtype.map(numpy::dtype).transpose()? {
        None => |s| s,
        Some(dtype) => match (dtype.kind, dtype.item_size) {
            (Kind::Float, 8) => |s| s,
            (Kind::Float, 4) => |s| s as f32 as f64,
            // `astype` to an integer type truncates toward zero.
            (Kind::Int | Kind::UInt, _) => f64::trunc,
            (kind, size) => {
                return Err(Error::unsupported(format!(
                    "SimpleImputer fitted on {kind:?} data of {size} bytes"
                )))
            }
        },
    };
    let fill: Vec<f64> = statistics.iter().map(|&s| cast(s)).collect();
    operations.push(Operation::Impute { missing, fill });
    if step.flag("keep_empty_features", false)? {
        return Ok(width);
    }
    let kept: Vec<usize> = (0..width).filter(|&c| !statistics[c].is_nan()).collect();
    let kept_width = kept.len();
    if kept_width != width {
        operations.push(Operation::Select(kept));
    }
    Ok(kept_width)
}

impl Preprocessed {
    fn new(
        operations: Vec<Operation>,
        n_features: usize,
        feature_names: Option<Vec<String>>,
        model: Arc<dyn ModelRuntime>,
    ) -> Result<Preprocessed> {
        let model_features = model_width(&model)?;
        let model_info = model.info();
        let info = RuntimeInfo {
            engine: model_info.engine,
            inputs: vec![TensorSpec::new(
                "input",
                DataType::F64,
                vec![-1, n_features as i64],
            )],
            outputs: model_info.outputs.clone(),
            feature_names: feature_names.or_else(|| model_info.feature_names.clone()),
            accepts_any_inputs: false,
        };
        Ok(Preprocessed {
            operations,
            n_features,
            model_features,
            model,
            info,
        })
    }

    /// Applies the operations to `rows` rows of `n_features` columns.
    fn transform(&self, mut data: Vec<f64>) -> Vec<f64> {
        let mut width = self.n_features;
        for operation in &self.operations {
            let columnwise = |data: &mut Vec<f64>, f: &dyn Fn(f64, usize) -> f64| {
                for row in data.chunks_exact_mut(width) {
                    for (column, x) in row.iter_mut().enumerate() {
                        *x = f(*x, column);
                    }
                }
            };
            match operation {
                Operation::Subtract(v) => columnwise(&mut data, &|x, c| x - v[c]),
                Operation::Divide(v) => columnwise(&mut data, &|x, c| x / v[c]),
                Operation::Multiply(v) => columnwise(&mut data, &|x, c| x * v[c]),
                Operation::Add(v) => columnwise(&mut data, &|x, c| x + v[c]),
                Operation::Clip { low, high } => columnwise(&mut data, &|x, _| {
                    if x < *low {
                        *low
                    } else if x > *high {
                        *high
                    } else {
                        x
                    }
                }),
                Operation::Impute { missing, fill } => columnwise(&mut data, &|x, c| {
                    if missing.matches(x) {
                        fill[c]
                    } else {
                        x
                    }
                }),
                Operation::Select(columns) => {
                    let mut selected = Vec::with_capacity(data.len() / width * columns.len());
                    for row in data.chunks_exact(width) {
                        selected.extend(columns.iter().map(|&c| row[c]));
                    }
                    data = selected;
                    width = columns.len();
                }
            }
        }
        data
    }
}

impl ModelRuntime for Preprocessed {
    fn info(&self) -> &RuntimeInfo {
        &self.info
    }

    fn predict(&self, inputs: &[NamedTensor]) -> Result<Vec<NamedTensor>> {
        let [input] = inputs else {
            return Err(Error::input(format!(
                "a pipeline takes one input, got {}",
                inputs.len()
            )));
        };
        let TensorData::F64(features) = &input.tensor.data else {
            return Err(Error::input("a pipeline takes an FP64 matrix"));
        };
        if input.tensor.shape.len() != 2 || input.tensor.shape[1] != self.n_features {
            return Err(Error::input(format!(
                "expected a [rows, {}] matrix, got shape {:?}",
                self.n_features, input.tensor.shape
            )));
        }
        let rows = input.tensor.shape[0];
        if features.len() != rows * self.n_features {
            return Err(Error::input(format!(
                "a [{rows}, {}] matrix with {} values",
                self.n_features,
                features.len()
            )));
        }
        let transformed = self.transform(features.clone());
        let matrix = Tensor::f64_matrix(rows, self.model_features, transformed);
        self.model
            .predict(&[NamedTensor::new(input.name.clone(), matrix)])
    }

    fn cost(&self) -> CallCost {
        self.model.cost()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::linear::{LinearModel, LinearSpec, LinearTask};

    /// A model that returns its first input column, to see what the
    /// operations made of a batch.
    fn first_column(n_features: usize) -> Arc<dyn ModelRuntime> {
        let mut coefficients = vec![0.0; n_features];
        coefficients[0] = 1.0;
        Arc::new(
            LinearModel::new(LinearSpec {
                n_features,
                coefficients,
                intercepts: vec![0.0],
                task: LinearTask::Regression {
                    matrix_output: false,
                },
                feature_names: None,
            })
            .unwrap(),
        )
    }

    #[test]
    fn operations_apply_in_order_and_keep_nan() {
        let pipeline = Preprocessed::new(
            vec![
                Operation::Impute {
                    missing: MissingValue::Number(-1.0),
                    fill: vec![10.0, 20.0, 30.0],
                },
                Operation::Subtract(vec![1.0, 2.0, 3.0]),
                Operation::Divide(vec![2.0, 2.0, 2.0]),
                Operation::Clip {
                    low: -1.0,
                    high: 4.0,
                },
                Operation::Select(vec![2, 0]),
            ],
            3,
            None,
            first_column(2),
        )
        .unwrap();
        let out = pipeline.transform(vec![-1.0, 5.0, f64::NAN, 3.0, -1.0, 100.0]);
        // Row 1: column 0 imputed to 10 → 4.5 → 4 (clipped); column 2 NaN
        // stays NaN (the marker is -1, and clip keeps NaN).
        assert!(out[0].is_nan());
        assert_eq!(out[1], 4.0);
        // Row 2: (100 - 3) / 2 clipped to 4; (3 - 1) / 2 = 1.
        assert_eq!(&out[2..], &[4.0, 1.0]);
    }

    #[test]
    fn requests_are_checked_before_the_model_sees_them() {
        let pipeline = Preprocessed::new(Vec::new(), 2, None, first_column(2)).unwrap();
        let wrong = NamedTensor::new("input", Tensor::f64_matrix(1, 3, vec![0.0; 3]));
        assert!(matches!(pipeline.predict(&[wrong]), Err(Error::Input(_))));
        let ragged = NamedTensor::new(
            "input",
            Tensor {
                dtype: DataType::F64,
                shape: vec![2, 2],
                data: TensorData::F64(vec![0.0; 3]),
            },
        );
        assert!(matches!(pipeline.predict(&[ragged]), Err(Error::Input(_))));
    }
}
