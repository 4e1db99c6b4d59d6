//! Categorical features given as their values (a pandas `category` column
//! of country names, say), mapped to the codes a booster's categorical
//! splits test.
//!
//! Both libraries record, with the model, the categories each categorical
//! feature had in training, in pandas' order; a value's code is its
//! position in that list:
//! - XGBoost ≥ 3.1 keeps them in the booster (`gradient_booster.model.cats`:
//!   per feature an `enc` entry, strings as UTF-8 `values` cut at
//!   `offsets`, numbers as `values` with a `type`), and its predictor
//!   refuses a category it did not see (`cat_container.h`: "Found a
//!   category not in the training set");
//! - LightGBM's Python package writes `pandas_categorical` at the end of the
//!   model text (one list per `category` column, in column order) and maps
//!   an unseen value to code -1, then NaN (`_data_from_pandas`), which the
//!   categorical split treats as missing.
//!
//! [`with_categories`] wraps the compiled ensemble in a runtime that takes
//! one input per feature (`BYTES` for text categories), recodes, and hands
//! the ensemble its usual float matrix.

use std::collections::HashMap;
use std::sync::Arc;

use crate::error::{Error, Result};
use crate::explain::{ExplainOptions, Explanation};
use crate::runtime::{CallCost, ModelRuntime, RuntimeInfo};
use crate::tensor::{DataType, NamedTensor, Tensor, TensorData, TensorSpec};

/// The categories one feature had in training, in code order.
#[derive(Debug, Clone, PartialEq)]
pub enum CategoryValues {
    Text(Vec<String>),
    Numbers(Vec<f64>),
}

/// What the library does with a value it did not see in training.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum UnknownCategory {
    /// Refuse the request (XGBoost).
    Refuse,
    /// Treat it as missing (LightGBM).
    Missing,
}

/// The recorded categories of a model's features (`None` for numeric
/// features).
#[derive(Debug, Clone, PartialEq)]
pub struct InputCategories {
    pub features: Vec<Option<CategoryValues>>,
    pub unknown: UnknownCategory,
    /// Which library, for messages.
    pub library: &'static str,
}

enum Recode {
    Text(HashMap<String, f64>),
    /// Values by their bits (`-0.0` folded into `0.0`): categories are
    /// whole numbers, compared exactly.
    Numbers(HashMap<u64, f64>),
}

fn number_key(x: f64) -> u64 {
    if x == 0.0 {
        0.0f64.to_bits()
    } else {
        x.to_bits()
    }
}

/// A booster over category values.
pub struct CategoricalInputs {
    model: Arc<dyn ModelRuntime>,
    recodes: Vec<Option<Recode>>,
    unknown: UnknownCategory,
    library: &'static str,
    info: RuntimeInfo,
}

/// `model` taking category values where `categories` names them; `model`
/// unchanged when no feature has recorded categories.
pub fn with_categories(
    model: Arc<dyn ModelRuntime>,
    categories: InputCategories,
) -> Result<Arc<dyn ModelRuntime>> {
    if categories.features.iter().all(Option::is_none) {
        return Ok(model);
    }
    let model_info = model.info().clone();
    let width = match model_info.inputs.as_slice() {
        [input] if input.shape.len() == 2 && input.shape[1] > 0 => input.shape[1] as usize,
        _ => {
            return Err(Error::invalid(
                "a booster that does not take one feature matrix",
            ))
        }
    };
    if categories.features.len() != width {
        return Err(Error::invalid(format!(
            "{}: categories for {} features in a model of {width}",
            categories.library,
            categories.features.len()
        )));
    }
    let names = model_info.feature_names.clone().ok_or_else(|| {
        Error::unsupported(format!(
            "{} categorical features without feature names",
            categories.library
        ))
    })?;
    let mut specs = Vec::with_capacity(width);
    let mut recodes = Vec::with_capacity(width);
    for (name, feature) in names.iter().zip(categories.features) {
        let (dtype, recode) = match feature {
            None => (DataType::F64, None),
            Some(CategoryValues::Text(values)) => (
                DataType::Bytes,
                Some(Recode::Text(
                    values
                        .into_iter()
                        .enumerate()
                        .map(|(code, value)| (value, code as f64))
                        .collect(),
                )),
            ),
            Some(CategoryValues::Numbers(values)) => (
                DataType::F64,
                Some(Recode::Numbers(
                    values
                        .into_iter()
                        .enumerate()
                        .map(|(code, value)| (number_key(value), code as f64))
                        .collect(),
                )),
            ),
        };
        specs.push(TensorSpec::new(name.clone(), dtype, vec![-1, 1]));
        recodes.push(recode);
    }
    let info = RuntimeInfo {
        inputs: specs,
        feature_names: None,
        ..model_info
    };
    Ok(Arc::new(CategoricalInputs {
        model,
        recodes,
        unknown: categories.unknown,
        library: categories.library,
        info,
    }))
}

impl CategoricalInputs {
    fn unknown(&self, feature: &str, value: &str) -> Result<f64> {
        match self.unknown {
            UnknownCategory::Missing => Ok(f64::NAN),
            UnknownCategory::Refuse => Err(Error::input(format!(
                "feature '{feature}': category {value} was not in the training data ({} refuses unseen categories)",
                self.library
            ))),
        }
    }
}

impl CategoricalInputs {
    /// `inputs` as the booster's one matrix of category codes.
    fn recoded(&self, inputs: &[NamedTensor]) -> Result<NamedTensor> {
        let width = self.recodes.len();
        if inputs.len() != width {
            return Err(Error::input(format!(
                "the model takes {width} columns, got {}",
                inputs.len()
            )));
        }
        let rows = inputs.first().map_or(0, |t| t.tensor.rows());
        let mut matrix = vec![0.0; rows * width];
        for (column, (input, recode)) in inputs.iter().zip(&self.recodes).enumerate() {
            if input.tensor.len() != rows {
                return Err(Error::input(format!(
                    "column '{}' has {} values for {rows} rows",
                    input.name,
                    input.tensor.len()
                )));
            }
            for row in 0..rows {
                let value = match (&input.tensor.data, recode) {
                    (TensorData::Str(values), Some(Recode::Text(codes))) => {
                        match codes.get(&values[row]) {
                            Some(&code) => code,
                            None => self.unknown(&input.name, &format!("'{}'", values[row]))?,
                        }
                    }
                    (TensorData::Str(_), _) => {
                        return Err(Error::input(format!(
                            "feature '{}' must be numeric, got strings",
                            input.name
                        )))
                    }
                    (data, Some(Recode::Numbers(codes))) => {
                        let x = data.get_f64(row).unwrap_or(f64::NAN);
                        if x.is_nan() {
                            f64::NAN
                        } else {
                            match codes.get(&number_key(x)) {
                                Some(&code) => code,
                                None => self.unknown(&input.name, &x.to_string())?,
                            }
                        }
                    }
                    (_, Some(Recode::Text(_))) => {
                        return Err(Error::input(format!(
                            "feature '{}' takes its categories as text",
                            input.name
                        )))
                    }
                    (data, None) => data.get_f64(row).unwrap_or(f64::NAN),
                };
                matrix[row * width + column] = value;
            }
        }
        let name = self.model.info().inputs[0].name.clone();
        Ok(NamedTensor::new(
            name,
            Tensor::f64_matrix(rows, width, matrix),
        ))
    }
}

impl ModelRuntime for CategoricalInputs {
    fn info(&self) -> &RuntimeInfo {
        &self.info
    }

    fn predict(&self, inputs: &[NamedTensor]) -> Result<Vec<NamedTensor>> {
        self.model.predict(&[self.recoded(inputs)?])
    }

    /// The booster explains the codes; each code column is its feature.
    fn explain(&self, inputs: &[NamedTensor], options: &ExplainOptions) -> Result<Explanation> {
        let mut options = options.clone();
        if let Some(background) = &mut options.background {
            background.inputs = vec![self.recoded(&background.inputs)?];
        }
        self.model.explain(&[self.recoded(inputs)?], &options)
    }

    fn explains_exactly(&self) -> bool {
        self.model.explains_exactly()
    }

    fn cost(&self) -> CallCost {
        self.model.cost()
    }
}
