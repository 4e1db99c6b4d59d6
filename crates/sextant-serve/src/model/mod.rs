//! [`Model`]: a runtime plus the contract it was logged with.
//!
//! Requests arrive in many shapes: dataframe columns (MLflow's
//! `dataframe_split`, `dataframe_records`, CSV; OIP inputs named after
//! columns), one positional matrix (OIP's single tensor, MLflow's
//! `instances`), or named tensors. `Model::predict` checks a request against
//! the model's signature and turns it into exactly the inputs its runtime
//! declares: a model receives only the features it declares (extra request
//! fields are ignored), a missing feature is an error naming every missing
//! one, types are cast the way MLflow's schema enforcement allows (integers
//! widen to floats; floats never silently become integers), and shapes are
//! checked before any engine runs.

use std::sync::Arc;

use crate::error::{Error, Result};
use crate::explain::{ExplainOptions, Explanation};
use crate::runtime::{CallCost, ModelRuntime, RuntimeInfo};
use crate::tensor::{DataType, NamedTensor, Tensor, TensorData, TensorSpec};

/// One column of an MLflow column-based signature.
#[derive(Debug, Clone, PartialEq)]
pub struct ColumnSpec {
    pub name: String,
    pub dtype: DataType,
    /// MLflow's `required`: a request without the column is refused.
    pub required: bool,
}

/// The input half of an MLflow signature.
#[derive(Debug, Clone, PartialEq)]
pub enum InputSchema {
    /// Named, typed columns (`{"type": "double", "name": "x"}`).
    Columns(Vec<ColumnSpec>),
    /// Tensors (`{"type": "tensor", "tensor-spec": {…}}`), named or a
    /// single unnamed one.
    Tensors(Vec<TensorSpec>),
}

impl InputSchema {
    fn column_names(&self) -> Option<Vec<String>> {
        match self {
            InputSchema::Columns(columns) => Some(columns.iter().map(|c| c.name.clone()).collect()),
            InputSchema::Tensors(_) => None,
        }
    }
}

/// How a request's tensors are meant.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Layout {
    /// Dataframe columns: every tensor is 1-D with one element per row.
    Columns,
    /// Tensors as the caller shaped them.
    Tensors,
}

/// A loaded model, with the signature requests are checked against.
#[derive(Clone)]
pub struct Model {
    runtime: Arc<dyn ModelRuntime>,
    schema: Option<InputSchema>,
    /// Index into the runtime's outputs of the answer MLflow's pyfunc
    /// `predict` gives (`/invocations` returns it).
    default_output: usize,
}

impl std::fmt::Debug for Model {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Model")
            .field("engine", &self.runtime.info().engine)
            .field("schema", &self.schema)
            .field("default_output", &self.default_output)
            .finish()
    }
}

impl Model {
    pub fn new(runtime: Arc<dyn ModelRuntime>, schema: Option<InputSchema>) -> Model {
        Model {
            runtime,
            schema,
            default_output: 0,
        }
    }

    /// Makes the output named `name` the default answer (MLflow's
    /// `pyfunc_predict_fn = "predict_proba"`); unknown names are ignored.
    pub fn with_default_output(mut self, name: &str) -> Model {
        if let Some(index) = self
            .runtime
            .info()
            .outputs
            .iter()
            .position(|o| o.name == name)
        {
            self.default_output = index;
        }
        self
    }

    pub fn info(&self) -> &RuntimeInfo {
        self.runtime.info()
    }

    pub fn schema(&self) -> Option<&InputSchema> {
        self.schema.as_ref()
    }

    pub fn cost(&self) -> CallCost {
        self.runtime.cost()
    }

    pub fn default_output(&self) -> usize {
        self.default_output
    }

    /// The inputs as a caller should send them: the signature's columns
    /// when there are any, else the runtime's own inputs.
    pub fn declared_inputs(&self) -> Vec<TensorSpec> {
        match &self.schema {
            Some(InputSchema::Columns(columns)) => columns
                .iter()
                .map(|c| TensorSpec::new(c.name.clone(), c.dtype, vec![-1]))
                .collect(),
            Some(InputSchema::Tensors(tensors)) => tensors.clone(),
            None => match (&self.info().feature_names, self.matrix_width()) {
                (Some(names), Some(_)) => names
                    .iter()
                    .map(|n| TensorSpec::new(n.clone(), DataType::F64, vec![-1]))
                    .collect(),
                _ => self.info().inputs.clone(),
            },
        }
    }

    /// Checks and shapes `request`, runs the model, returns every output.
    pub fn predict(&self, request: Vec<NamedTensor>, layout: Layout) -> Result<Vec<NamedTensor>> {
        let inputs = self.prepare(request, layout)?;
        self.runtime.predict(&inputs)
    }

    /// SHAP values of `request` (checked and shaped as for `predict`). The
    /// background in `options`, if any, is in the request's own form and is
    /// prepared the same way.
    pub fn explain(
        &self,
        request: Vec<NamedTensor>,
        layout: Layout,
        options: &ExplainOptions,
    ) -> Result<Explanation> {
        let inputs = self.prepare(request, layout)?;
        let mut options = options.clone();
        if let Some(background) = &mut options.background {
            let raw = std::mem::take(&mut background.inputs);
            background.inputs = self
                .prepare(raw, Layout::Columns)
                .map_err(|e| Error::input(format!("the background data: {e}")))?;
            background.rows = Model::rows_of(&background.inputs);
        }
        self.runtime.explain(&inputs, &options)
    }

    /// SHAP values of inputs already prepared (`prepare`), against a
    /// background in the same form.
    pub fn explain_prepared(
        &self,
        inputs: &[NamedTensor],
        options: &ExplainOptions,
    ) -> Result<Explanation> {
        self.runtime.explain(inputs, options)
    }

    /// The number of rows in a prepared request.
    pub fn rows_of(inputs: &[NamedTensor]) -> usize {
        inputs.first().map_or(0, |t| t.tensor.rows())
    }

    /// Width of the runtime's input when it is one numeric matrix.
    fn matrix_width(&self) -> Option<usize> {
        let info = self.runtime.info();
        match info.inputs.as_slice() {
            [spec]
                if !info.accepts_any_inputs
                    && spec.shape.len() == 2
                    && spec.shape[1] > 0
                    && spec.dtype.is_float() =>
            {
                Some(spec.shape[1] as usize)
            }
            _ => None,
        }
    }

    /// Turns `request` into the runtime's inputs.
    pub fn prepare(&self, request: Vec<NamedTensor>, layout: Layout) -> Result<Vec<NamedTensor>> {
        if request.is_empty() {
            return Err(Error::input("the request has no inputs"));
        }
        check_rows(&request, layout)?;
        if let Some(width) = self.matrix_width() {
            return self.prepare_matrix(request, width);
        }
        let info = self.runtime.info();
        if info.accepts_any_inputs {
            return match &self.schema {
                Some(InputSchema::Columns(columns)) => select_columns(request, columns),
                Some(InputSchema::Tensors(specs)) => match_tensors(request, specs),
                None => Ok(request),
            };
        }
        // Inputs named by the runtime (an ONNX graph). A column signature
        // can feed a single matrix-shaped graph input.
        match_tensors(self.stack_columns_for_single_input(request)?, &info.inputs)
    }

    fn prepare_matrix(&self, request: Vec<NamedTensor>, width: usize) -> Result<Vec<NamedTensor>> {
        let input_name = self.runtime.info().inputs[0].name.clone();
        let names = self
            .schema
            .as_ref()
            .and_then(InputSchema::column_names)
            .or_else(|| self.info().feature_names.clone());
        let integer_columns: Vec<bool> = match &self.schema {
            Some(InputSchema::Columns(columns)) if columns.len() == width => {
                columns.iter().map(|c| c.dtype.is_integer()).collect()
            }
            _ => vec![false; width],
        };
        // One positional matrix: a single tensor of the right width that is
        // not itself one of the named columns.
        let positional = match request.as_slice() {
            [only] if only.tensor.shape.len() == 2 => {
                let named_column = names.as_ref().is_some_and(|n| n.contains(&only.name));
                (!named_column || width == 1).then_some(())
            }
            _ => None,
        };
        let matrix = if positional.is_some() {
            let only = request.into_iter().next().expect("one tensor");
            if only.tensor.shape[1] != width {
                return Err(Error::input(format!(
                    "input '{}' has {} columns; the model takes {width} features",
                    only.name, only.tensor.shape[1]
                )));
            }
            tensor_to_f64(&only.name, only.tensor, &integer_columns)?
        } else {
            let columns = match &names {
                Some(names) if names.len() == width => pick_columns(request, names)?,
                _ => {
                    if request.len() != width {
                        return Err(Error::input(format!(
                            "the model takes {width} features and does not know their names; got {} input(s)",
                            request.len()
                        )));
                    }
                    request
                }
            };
            stack_f64(columns, &integer_columns)?
        };
        // An ONNX graph may take the matrix as FP32.
        let dtype = self.runtime.info().inputs[0].dtype;
        let matrix = if dtype == DataType::F64 {
            matrix
        } else {
            cast_tensor(&input_name, matrix, dtype)?
        };
        Ok(vec![NamedTensor::new(input_name, matrix)])
    }

    /// A graph with one `[-1, n]` input, asked with dataframe columns:
    /// stacks the signature's columns (or all columns, in request order)
    /// into that matrix.
    fn stack_columns_for_single_input(
        &self,
        request: Vec<NamedTensor>,
    ) -> Result<Vec<NamedTensor>> {
        let info = self.runtime.info();
        let [spec] = info.inputs.as_slice() else {
            return Ok(request);
        };
        if request.iter().any(|t| t.name == spec.name) || spec.shape.len() != 2 || request.len() < 2
        {
            return Ok(request);
        }
        let columns = match self.schema.as_ref().and_then(InputSchema::column_names) {
            Some(names) => pick_columns(request, &names)?,
            None => request,
        };
        if spec.shape[1] > 0 && columns.len() != spec.shape[1] as usize {
            return Err(Error::input(format!(
                "input '{}' takes {} columns, got {}",
                spec.name,
                spec.shape[1],
                columns.len()
            )));
        }
        let rows = columns[0].tensor.rows();
        let stacked = if spec.dtype == DataType::Bytes {
            let mut values = Vec::with_capacity(rows * columns.len());
            let strings: Vec<Vec<String>> = columns
                .into_iter()
                .map(|c| match c.tensor.data {
                    TensorData::Str(s) => Ok(s),
                    _ => Err(Error::input(format!(
                        "column '{}' must hold strings",
                        c.name
                    ))),
                })
                .collect::<Result<_>>()?;
            for r in 0..rows {
                for column in &strings {
                    values.push(column[r].clone());
                }
            }
            Tensor::new(
                DataType::Bytes,
                vec![rows, strings.len()],
                TensorData::Str(values),
            )
            .expect("shape matches")
        } else {
            let width = columns.len();
            stack_f64(columns, &vec![false; width])?
        };
        Ok(vec![NamedTensor::new(spec.name.clone(), stacked)])
    }
}

/// Every tensor must have the same number of rows; dataframe columns must
/// be 1-D (or `[rows, 1]`).
fn check_rows(request: &[NamedTensor], layout: Layout) -> Result<()> {
    let rows = request[0].tensor.rows();
    for t in request {
        if layout == Layout::Columns && t.tensor.shape.len() > 1 && t.tensor.row_width() != 1 {
            return Err(Error::input(format!(
                "column '{}' must hold one value per row, got shape {:?}",
                t.name, t.tensor.shape
            )));
        }
        if t.tensor.rows() != rows {
            return Err(Error::input(format!(
                "inputs disagree on the number of rows: '{}' has {}, '{}' has {rows}",
                t.name,
                t.tensor.rows(),
                request[0].name
            )));
        }
    }
    Ok(())
}

/// The request's tensors named `names`, in that order; a missing one is an
/// error naming every missing name. Extra tensors are dropped.
fn pick_columns(request: Vec<NamedTensor>, names: &[String]) -> Result<Vec<NamedTensor>> {
    let mut slots: Vec<Option<NamedTensor>> = vec![None; names.len()];
    for tensor in request {
        if let Some(i) = names.iter().position(|n| *n == tensor.name) {
            slots[i] = Some(tensor);
        }
    }
    let missing: Vec<&str> = names
        .iter()
        .zip(&slots)
        .filter(|(_, s)| s.is_none())
        .map(|(n, _)| n.as_str())
        .collect();
    if !missing.is_empty() {
        return Err(Error::input(format!(
            "missing input feature{} {}",
            if missing.len() == 1 { "" } else { "s" },
            quoted_list(&missing)
        )));
    }
    Ok(slots
        .into_iter()
        .map(|s| s.expect("checked above"))
        .collect())
}

fn quoted_list(names: &[&str]) -> String {
    const SHOWN: usize = 20;
    let mut text = names
        .iter()
        .take(SHOWN)
        .map(|n| format!("'{n}'"))
        .collect::<Vec<_>>()
        .join(", ");
    if names.len() > SHOWN {
        text.push_str(&format!(" and {} more", names.len() - SHOWN));
    }
    text
}

/// Selects and casts a column signature's columns for a runtime that takes
/// named columns (Python): required ones must be there, optional ones may
/// be absent.
fn select_columns(request: Vec<NamedTensor>, columns: &[ColumnSpec]) -> Result<Vec<NamedTensor>> {
    let mut picked = Vec::with_capacity(columns.len());
    let mut missing = Vec::new();
    let mut request: Vec<Option<NamedTensor>> = request.into_iter().map(Some).collect();
    for spec in columns {
        match request
            .iter_mut()
            .find(|t| t.as_ref().is_some_and(|t| t.name == spec.name))
        {
            Some(slot) => {
                let tensor = slot.take().expect("found above");
                let cast = cast_tensor(&tensor.name, tensor.tensor, spec.dtype)?;
                picked.push(NamedTensor::new(spec.name.clone(), cast));
            }
            None if spec.required => missing.push(spec.name.as_str()),
            None => {}
        }
    }
    if !missing.is_empty() {
        return Err(Error::input(format!(
            "missing input column{} {}",
            if missing.len() == 1 { "" } else { "s" },
            quoted_list(&missing)
        )));
    }
    Ok(picked)
}

/// Matches request tensors to declared tensor inputs by name (or, for a
/// single input, whatever single tensor came), casting and checking shapes.
fn match_tensors(request: Vec<NamedTensor>, specs: &[TensorSpec]) -> Result<Vec<NamedTensor>> {
    if specs.len() == 1 && request.len() == 1 {
        let tensor = request.into_iter().next().expect("one tensor");
        let spec = &specs[0];
        let cast = cast_tensor(&tensor.name, tensor.tensor, spec.dtype)?;
        check_shape(&tensor.name, &cast, spec)?;
        return Ok(vec![NamedTensor::new(spec.name.clone(), cast)]);
    }
    let names: Vec<String> = specs.iter().map(|s| s.name.clone()).collect();
    let picked = pick_columns(request, &names)?;
    picked
        .into_iter()
        .zip(specs)
        .map(|(tensor, spec)| {
            let mut cast = cast_tensor(&tensor.name, tensor.tensor, spec.dtype)?;
            // A dataframe column `[rows]` fed to a `[-1, 1]` input.
            if spec.shape.len() == 2 && spec.shape[1] == 1 && cast.shape.len() == 1 {
                cast.shape.push(1);
            }
            check_shape(&tensor.name, &cast, spec)?;
            Ok(NamedTensor::new(spec.name.clone(), cast))
        })
        .collect()
}

fn check_shape(name: &str, tensor: &Tensor, spec: &TensorSpec) -> Result<()> {
    if spec.shape.is_empty() {
        return Ok(());
    }
    let fits = tensor.shape.len() == spec.shape.len()
        && tensor
            .shape
            .iter()
            .zip(&spec.shape)
            .all(|(&got, &want)| want < 0 || got as i64 == want);
    if fits {
        Ok(())
    } else {
        Err(Error::input(format!(
            "input '{name}' has shape {:?}; the model takes {:?} (-1: any size)",
            tensor.shape, spec.shape
        )))
    }
}

/// Casts `tensor` to `dtype` where MLflow's schema enforcement would:
/// numbers widen, integers accept integral floats, booleans are 0/1;
/// strings and numbers never convert into each other.
pub fn cast_tensor(name: &str, tensor: Tensor, dtype: DataType) -> Result<Tensor> {
    let Tensor { shape, data, .. } = tensor;
    let data = match (dtype, data) {
        (DataType::Bytes, TensorData::Str(v)) => TensorData::Str(v),
        (DataType::Bytes, other) => {
            return Err(Error::input(format!(
                "input '{name}' must hold strings, got {}",
                other.natural_dtype()
            )))
        }
        (_, TensorData::Str(_)) => {
            return Err(Error::input(format!(
                "input '{name}' must be {dtype}, got strings"
            )))
        }
        (DataType::Bool, TensorData::Bool(v)) => TensorData::Bool(v),
        (DataType::Bool, other) => {
            let mut out = Vec::with_capacity(other.len());
            for i in 0..other.len() {
                match other.get_f64(i) {
                    Some(x) if x == 0.0 => out.push(false),
                    Some(x) if x == 1.0 => out.push(true),
                    _ => {
                        return Err(Error::input(format!(
                            "input '{name}' must be BOOL (0 or 1)"
                        )))
                    }
                }
            }
            TensorData::Bool(out)
        }
        (DataType::F64, TensorData::F64(v)) => TensorData::F64(v),
        (DataType::F64, other) => TensorData::F64(
            (0..other.len())
                .map(|i| other.get_f64(i).expect("numeric"))
                .collect(),
        ),
        (DataType::F32 | DataType::F16, TensorData::F32(v)) => TensorData::F32(v),
        (DataType::F32 | DataType::F16, other) => TensorData::F32(
            (0..other.len())
                .map(|i| other.get_f64(i).expect("numeric") as f32)
                .collect(),
        ),
        (int_type, TensorData::I64(v)) => {
            if let Some(bad) = v.iter().find(|&&x| !int_type.holds_integer(x)) {
                return Err(Error::input(format!(
                    "input '{name}': {bad} does not fit {int_type}"
                )));
            }
            TensorData::I64(v)
        }
        (int_type, other) => {
            let mut out = Vec::with_capacity(other.len());
            for i in 0..other.len() {
                let x = other.get_f64(i).expect("numeric");
                if x.is_nan() {
                    return Err(Error::input(format!(
                        "input '{name}' is {int_type} and cannot hold NaN"
                    )));
                }
                if x.fract() != 0.0 || !int_type.holds_integer(x as i64) || x.abs() > 9.0e15 {
                    return Err(Error::input(format!(
                        "input '{name}' is {int_type}; {x} is not a valid value"
                    )));
                }
                out.push(x as i64);
            }
            TensorData::I64(out)
        }
    };
    Ok(Tensor { dtype, shape, data })
}

/// One matrix tensor as `[rows, width]` f64, refusing strings and NaN in
/// integer columns.
fn tensor_to_f64(name: &str, tensor: Tensor, integer_columns: &[bool]) -> Result<Tensor> {
    let rows = tensor.rows();
    let width = tensor.row_width();
    let values = match tensor.data {
        TensorData::F64(v) => v,
        TensorData::Str(_) => {
            return Err(Error::input(format!(
                "input '{name}' must be numeric, got strings"
            )))
        }
        other => (0..other.len())
            .map(|i| other.get_f64(i).expect("numeric"))
            .collect(),
    };
    for (c, _) in integer_columns.iter().enumerate().filter(|(_, int)| **int) {
        if values
            .iter()
            .skip(c)
            .step_by(width.max(1))
            .any(|x| x.is_nan())
        {
            return Err(Error::input(format!(
                "column {c} of '{name}' is an integer column and cannot hold NaN"
            )));
        }
    }
    Ok(Tensor::f64_matrix(rows, width, values))
}

/// Columns side by side as a `[rows, n]` f64 matrix.
fn stack_f64(columns: Vec<NamedTensor>, integer_columns: &[bool]) -> Result<Tensor> {
    let rows = columns.first().map_or(0, |c| c.tensor.rows());
    let width = columns.len();
    let mut values = vec![0.0; rows * width];
    for (c, column) in columns.iter().enumerate() {
        let data = &column.tensor.data;
        if let TensorData::Str(_) = data {
            return Err(Error::input(format!(
                "feature '{}' must be numeric, got strings",
                column.name
            )));
        }
        for r in 0..rows {
            let x = data.get_f64(r).expect("numeric");
            if x.is_nan() && integer_columns.get(c).copied().unwrap_or(false) {
                return Err(Error::input(format!(
                    "feature '{}' is an integer column and cannot hold NaN (row {r})",
                    column.name
                )));
            }
            values[r * width + c] = x;
        }
    }
    Ok(Tensor::f64_matrix(rows, width, values))
}

#[cfg(test)]
mod tests;
