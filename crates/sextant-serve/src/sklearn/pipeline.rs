//! scikit-learn `Pipeline`s: fitted transformers (`transform.rs`) followed
//! by a native estimator.
//!
//! `Pipeline.predict` (`sklearn/pipeline.py`) runs each step's `transform`
//! in order, then the last step's `predict`; steps named `"passthrough"`
//! (or `None`) do nothing. The runtime takes what the first transformer
//! takes:
//! - numbers only, every column read: one `FP64` matrix `[-1, n_features]`
//!   named by `feature_names_in_` when the pipeline was fitted on a
//!   DataFrame, as for a plain estimator;
//! - text in some columns (a `OneHotEncoder` over a country column, say),
//!   or columns a `ColumnTransformer` drops: one input per DataFrame column
//!   the transformers read, `BYTES` for text and `FP64` for numbers, each
//!   `[-1, 1]`. Dropped columns are not inputs (scikit-learn wants them
//!   present but never reads them, and they may hold anything).
//!
//! Which columns hold text is decided at load, from what each transformer
//! was fitted on (the dtype of an encoder's categories, of an imputer's
//! statistics), and checked through the whole chain, so that a request can
//! only fail on its own values (an unknown category where the encoder
//! refuses them, a missing value where numpy would refuse it).

use std::sync::Arc;

use crate::error::{Error, Result};
use crate::explain::{kernel, ExplainOptions, Explanation, Method};
use crate::runtime::{CallCost, ModelRuntime, RuntimeInfo};
use crate::sklearn::transform::{self, Column, Kind, Source, Table, Transformer};
use crate::sklearn::{self, Estimator, Nesting};
use crate::tensor::{DataType, NamedTensor, Tensor, TensorData, TensorSpec};

/// Transformers, then a model.
pub struct PipelineRuntime {
    transformer: Transformer,
    inputs: Inputs,
    /// Columns the model receives.
    model_features: usize,
    model: Arc<dyn ModelRuntime>,
    info: RuntimeInfo,
    /// Per model column, the explained feature (request column) it is
    /// computed from; `None` when some column mixes several (polynomial
    /// features), and the pipeline is explained by KernelSHAP.
    feature_of_column: Option<Vec<usize>>,
}

/// How requests reach the first transformer.
#[derive(Debug, Clone, PartialEq)]
enum Inputs {
    /// One numeric matrix of this width.
    Matrix(usize),
    /// Named columns: for each runtime input, its position among the
    /// `width` columns the first transformer takes.
    Columns { width: usize, positions: Vec<usize> },
}

/// The runtime of a fitted `Pipeline`.
pub(crate) fn from_pipeline(pipeline: &Estimator<'_>, nesting: Nesting) -> Result<PipelineRuntime> {
    let mut steps = transform::pipeline_steps(pipeline)?;
    let last = steps
        .pop()
        .filter(|node| !node.is_none() && node.as_str() != Some("passthrough"))
        .ok_or_else(|| Error::unsupported("a Pipeline without a final estimator"))?;
    let model = sklearn::build(&Estimator::new(last)?, nesting)?;
    let model_features = model_width(&model)?;
    // The first step that is an estimator names the input columns.
    let first = steps
        .iter()
        .find(|node| !node.is_none() && node.as_str() != Some("passthrough"))
        .map(|node| Estimator::new(*node))
        .transpose()?;
    let transformer = Transformer::Chain(
        steps
            .into_iter()
            .map(|node| transform::read(node, nesting))
            .collect::<Result<Vec<_>>>()?,
    );
    let Some(first) = first else {
        // Nothing but passthrough steps before the model.
        return PipelineRuntime::new(transformer, vec![Kind::Number; model_features], None, model);
    };
    let width = first.n_features()?;
    let kinds = transformer
        .input_kinds()
        .unwrap_or_else(|| vec![Kind::Any; width]);
    if kinds.len() != width {
        return Err(Error::invalid(format!(
            "Pipeline step {} takes {width} features and its transformer {} columns",
            first.name(),
            kinds.len()
        )));
    }
    PipelineRuntime::new(transformer, kinds, first.feature_names()?, model)
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

impl PipelineRuntime {
    fn new(
        transformer: Transformer,
        kinds: Vec<Kind>,
        feature_names: Option<Vec<String>>,
        model: Arc<dyn ModelRuntime>,
    ) -> Result<PipelineRuntime> {
        let width = kinds.len();
        // Named columns when some hold text, or when some are never read
        // (they may hold anything, an id say), and names are known.
        let named = feature_names.is_some()
            && kinds
                .iter()
                .any(|&k| matches!(k, Kind::Text | Kind::Unused));
        let text = kinds.contains(&Kind::Text);
        // Columns nothing reads are numbers in a matrix and absent from
        // named columns; columns passed on unchanged are numbers (they
        // reach the model).
        let resolved: Vec<Kind> = kinds
            .iter()
            .map(|&k| match k {
                Kind::Any => Kind::Number,
                Kind::Unused if !named => Kind::Number,
                other => other,
            })
            .collect();
        let outputs = transformer.output_kinds(&resolved)?;
        if let Some(position) = outputs.iter().position(|&k| k != Kind::Number) {
            return Err(Error::unsupported(format!(
                "a Pipeline that passes text to its model (output column {position})"
            )));
        }
        let model_features = model_width(&model)?;
        if outputs.len() != model_features {
            return Err(Error::invalid(format!(
                "Pipeline transforms give {} features and its model takes {model_features}",
                outputs.len()
            )));
        }
        let model_info = model.info();
        if text && !named {
            return Err(Error::unsupported(
                "a Pipeline over text columns fitted without column names",
            ));
        }
        let (inputs, specs, feature_names) =
            if let (true, Some(names)) = (named, feature_names.clone()) {
                let positions: Vec<usize> = (0..width)
                    .filter(|&c| resolved[c] != Kind::Unused)
                    .collect();
                let specs = positions
                    .iter()
                    .map(|&c| {
                        let dtype = if resolved[c] == Kind::Text {
                            DataType::Bytes
                        } else {
                            DataType::F64
                        };
                        TensorSpec::new(names[c].clone(), dtype, vec![-1, 1])
                    })
                    .collect();
                (Inputs::Columns { width, positions }, specs, None)
            } else {
                (
                    Inputs::Matrix(width),
                    vec![TensorSpec::new(
                        "input",
                        DataType::F64,
                        vec![-1, width as i64],
                    )],
                    feature_names.or_else(|| model_info.feature_names.clone()),
                )
            };
        // The explained features are the matrix's columns, or the named
        // inputs in order.
        let feature_of_input: Vec<Option<usize>> = match &inputs {
            Inputs::Matrix(width) => (0..*width).map(Some).collect(),
            Inputs::Columns { width, positions } => {
                let mut feature = vec![None; *width];
                for (index, &position) in positions.iter().enumerate() {
                    feature[position] = Some(index);
                }
                feature
            }
        };
        let raw: Vec<Source> = (0..width).map(Source::Column).collect();
        let feature_of_column = transformer
            .sources(&raw)
            .into_iter()
            .map(|source| match source {
                Source::Column(c) => feature_of_input[c],
                Source::Mixed => None,
            })
            .collect::<Option<Vec<usize>>>()
            .filter(|columns| columns.len() == model_features);
        let info = RuntimeInfo {
            engine: model_info.engine,
            inputs: specs,
            outputs: model_info.outputs.clone(),
            feature_names,
            accepts_any_inputs: false,
        };
        Ok(PipelineRuntime {
            transformer,
            inputs,
            model_features,
            model,
            info,
            feature_of_column,
        })
    }

    /// The request as the table the first transformer takes.
    fn table(&self, inputs: &[NamedTensor]) -> Result<Table> {
        match &self.inputs {
            Inputs::Matrix(width) => {
                let [input] = inputs else {
                    return Err(Error::input(format!(
                        "a pipeline takes one input, got {}",
                        inputs.len()
                    )));
                };
                let TensorData::F64(values) = &input.tensor.data else {
                    return Err(Error::input("a pipeline takes an FP64 matrix"));
                };
                if input.tensor.shape.len() != 2 || input.tensor.shape[1] != *width {
                    return Err(Error::input(format!(
                        "expected a [rows, {width}] matrix, got shape {:?}",
                        input.tensor.shape
                    )));
                }
                let rows = input.tensor.shape[0];
                if values.len() != rows * width {
                    return Err(Error::input(format!(
                        "a [{rows}, {width}] matrix with {} values",
                        values.len()
                    )));
                }
                let columns = (0..*width)
                    .map(|c| {
                        Column::Numbers(values.iter().skip(c).step_by(*width).copied().collect())
                    })
                    .collect();
                Ok(Table { rows, columns })
            }
            Inputs::Columns { width, positions } => {
                if inputs.len() != positions.len() {
                    return Err(Error::input(format!(
                        "the pipeline takes {} columns, got {}",
                        positions.len(),
                        inputs.len()
                    )));
                }
                let rows = inputs.first().map_or(0, |t| t.tensor.rows());
                let mut columns = vec![Column::Absent; *width];
                for (input, &position) in inputs.iter().zip(positions) {
                    if input.tensor.len() != rows {
                        return Err(Error::input(format!(
                            "column '{}' has {} values for {rows} rows",
                            input.name,
                            input.tensor.len()
                        )));
                    }
                    columns[position] = match &input.tensor.data {
                        TensorData::Str(values) => Column::Text(values.clone()),
                        TensorData::F64(values) => Column::Numbers(values.clone()),
                        other => Column::Numbers(
                            (0..other.len())
                                .map(|i| other.get_f64(i).unwrap_or(f64::NAN))
                                .collect(),
                        ),
                    };
                }
                Ok(Table { rows, columns })
            }
        }
    }
}

impl ModelRuntime for PipelineRuntime {
    fn info(&self) -> &RuntimeInfo {
        &self.info
    }

    fn predict(&self, inputs: &[NamedTensor]) -> Result<Vec<NamedTensor>> {
        self.model.predict(&[self.model_input(inputs)?])
    }

    /// A model with an exact method (TreeSHAP, Linear SHAP) explains the
    /// transformed columns, and each column's value goes to the request
    /// column it was computed from: a one-hot encoder's columns sum back
    /// into the category column, as shap users sum them by hand. Any other
    /// model, or a pipeline with columns computed from several request
    /// columns, is explained by KernelSHAP over the request columns.
    fn explain(&self, inputs: &[NamedTensor], options: &ExplainOptions) -> Result<Explanation> {
        let exact = options.method != Some(Method::Kernel) && self.model.explains_exactly();
        let Some(feature_of_column) = self.feature_of_column.as_ref().filter(|_| exact) else {
            return kernel::explain(self, inputs, options);
        };
        let mut model_options = options.clone();
        if let Some(background) = &mut model_options.background {
            background.inputs = vec![self
                .model_input(&background.inputs)
                .map_err(|e| Error::input(format!("the background data: {e}")))?];
        }
        let explanation = self
            .model
            .explain(&[self.model_input(inputs)?], &model_options)?;
        Ok(explanation.grouped(feature_of_column, kernel::feature_names(self, inputs)))
    }

    fn explains_exactly(&self) -> bool {
        self.feature_of_column.is_some() && self.model.explains_exactly()
    }

    fn cost(&self) -> CallCost {
        self.model.cost()
    }
}

impl PipelineRuntime {
    /// The request, transformed: the matrix the model takes.
    fn model_input(&self, inputs: &[NamedTensor]) -> Result<NamedTensor> {
        let table = self.table(inputs)?;
        let rows = table.rows;
        let transformed = self.transformer.apply(table)?;
        if transformed.columns.len() != self.model_features {
            return Err(Error::input(format!(
                "the transformers gave {} columns for a model of {}",
                transformed.columns.len(),
                self.model_features
            )));
        }
        let mut matrix = vec![0.0; rows * self.model_features];
        for (c, column) in transformed.columns.iter().enumerate() {
            let Column::Numbers(values) = column else {
                return Err(Error::input("the transformers passed text to the model"));
            };
            for (row, &value) in values.iter().enumerate() {
                matrix[row * self.model_features + c] = value;
            }
        }
        let name = inputs
            .first()
            .map_or_else(|| "input".to_owned(), |i| i.name.clone());
        let matrix = Tensor::f64_matrix(rows, self.model_features, matrix);
        Ok(NamedTensor::new(name, matrix))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::linear::{LinearModel, LinearSpec, LinearTask};
    use crate::sklearn::transform::{MissingValue, Operation};

    /// A model that returns its first input column.
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
    fn a_numeric_pipeline_takes_a_matrix_and_checks_it() {
        let pipeline = PipelineRuntime::new(
            Transformer::Chain(vec![Transformer::Numeric {
                width: 2,
                operations: vec![Operation::Impute {
                    missing: MissingValue::Nan,
                    fill: vec![7.0, 0.0],
                }],
            }]),
            vec![Kind::Number; 2],
            None,
            first_column(2),
        )
        .unwrap();
        let input = NamedTensor::new(
            "input",
            Tensor::f64_matrix(2, 2, vec![f64::NAN, 1.0, 3.0, 4.0]),
        );
        let out = pipeline.predict(&[input]).unwrap();
        assert_eq!(out[0].tensor.data, TensorData::F64(vec![7.0, 3.0]));
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

    #[test]
    fn text_reaching_the_model_is_refused_at_load() {
        let error = PipelineRuntime::new(
            Transformer::Chain(vec![Transformer::Identity]),
            vec![Kind::Text],
            Some(vec!["country".into()]),
            first_column(1),
        );
        assert!(matches!(error, Err(Error::Unsupported(_))));
    }
}
