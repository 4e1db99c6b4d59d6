//! The ai.onnx.ml operators other than tree ensembles and SVMs: linear
//! models, scalers, encoders, feature extraction, `ZipMap`.
//!
//! Each follows ONNX Runtime's CPU kernel (`core/providers/cpu/ml/`),
//! including its corners: numeric inputs are read as `float` (a C cast),
//! scores are `float`, and a one-score `LinearClassifier` writes
//! `[1 - s, s]` without applying its LOGISTIC transform. Where ONNX Runtime
//! would read uninitialized memory or crash, we refuse the model or the
//! request instead.

use std::collections::HashMap;

use crate::error::{Error, Result};
use crate::onnx::ops::numeric::fused_multiply_add;
use crate::onnx::ops::post_transform::{probit, PostTransform};
use crate::onnx::ops::shape::take;
use crate::onnx::ops::{
    as_i64, required, storage_error, tensor, to_f32_vec, Kernel, Lowered, NodeContext,
};
use crate::tensor::{DataType, Tensor, TensorData};
use crate::trees::ClassLabels;

/// Rows and columns of an ai.onnx.ml operator's input: `[N, C]`, or one
/// row for a 1-D `[C]`.
pub(crate) fn rows_and_columns(x: &Tensor) -> Result<(usize, usize)> {
    match x.shape[..] {
        [columns] => Ok((1, columns)),
        [rows, columns] => Ok((rows, columns)),
        _ => Err(Error::input(format!(
            "expected a matrix, got shape {:?}",
            x.shape
        ))),
    }
}

/// The class labels from `<prefix>_int64s`/`<prefix>_ints` or
/// `<prefix>_strings`.
pub(crate) fn class_labels(
    ctx: &NodeContext<'_>,
    ints_name: &str,
    strings_name: &str,
) -> Result<ClassLabels> {
    let ints = ctx.ints(ints_name)?.filter(|v| !v.is_empty());
    let strings = ctx.strings(strings_name)?.filter(|v| !v.is_empty());
    match (ints, strings) {
        (Some(_), Some(_)) => Err(Error::invalid(format!(
            "both {ints_name} and {strings_name} are set"
        ))),
        (Some(ints), None) => Ok(ClassLabels::Int(ints)),
        (None, Some(strings)) => Ok(ClassLabels::Str(strings)),
        (None, None) => Err(Error::invalid(format!(
            "neither {ints_name} nor {strings_name} is set"
        ))),
    }
}

pub(crate) fn label_type(labels: &ClassLabels) -> DataType {
    match labels {
        ClassLabels::Int(_) => DataType::I64,
        ClassLabels::Str(_) => DataType::Bytes,
    }
}

/// The labels at `indices`, as a 1-D tensor.
pub(crate) fn labels_at(labels: &ClassLabels, indices: &[usize]) -> Tensor {
    let data = match labels {
        ClassLabels::Int(l) => TensorData::I64(indices.iter().map(|&i| l[i]).collect()),
        ClassLabels::Str(l) => TensorData::Str(indices.iter().map(|&i| l[i].clone()).collect()),
    };
    tensor(label_type(labels), vec![indices.len()], data)
}

/// `out[r, t] = Σ_f x[r, f] · w[t, f] + b[t]` in `f32`, the way ONNX
/// Runtime's GEMM computes it: fused multiply-adds in feature order from
/// zero, then the intercept (see `linalg.rs`).
pub(crate) fn dot_fused(x: &[f32], w: &[f32]) -> f32 {
    x.iter()
        .zip(w)
        .fold(0.0f32, |acc, (&a, &b)| fused_multiply_add(a, b, acc))
}

/// Scores of a linear model for `rows` rows of `columns` features.
fn linear_scores(
    x: &[f32],
    rows: usize,
    columns: usize,
    weights: &[f32],
    intercepts: Option<&[f32]>,
    targets: usize,
) -> Vec<f32> {
    let mut scores = Vec::with_capacity(rows * targets);
    for row in x.chunks_exact(columns.max(1)).take(rows) {
        for t in 0..targets {
            let w = &weights[t * columns..(t + 1) * columns];
            let dot = dot_fused(row, w);
            scores.push(match intercepts {
                Some(b) => dot + b[t],
                None => dot,
            });
        }
    }
    scores
}

// --- LinearClassifier ---------------------------------------------------------------------

struct LinearClassifier {
    coefficients: Vec<f32>,
    intercepts: Vec<f32>,
    /// The labels a decision picks from: the model's, or `[0, 1]` /
    /// `["0", "1"]` for a one-score model without exactly two labels.
    labels: ClassLabels,
    post_transform: PostTransform,
    /// One score, two labels: the output has a second column.
    add_second_class: bool,
}

impl Kernel for LinearClassifier {
    fn run(&self, inputs: &[Option<&Tensor>]) -> Result<Vec<Tensor>> {
        let x = required(inputs, 0)?;
        let (rows, columns) = rows_and_columns(x)?;
        let classes = self.intercepts.len();
        if self.coefficients.len() != classes * columns {
            return Err(Error::input(format!(
                "the model has {} coefficients for {classes} classes; the input has {columns} features",
                self.coefficients.len()
            )));
        }
        let values = to_f32_vec(x)?;
        let scores = linear_scores(
            &values,
            rows,
            columns,
            &self.coefficients,
            Some(&self.intercepts),
            classes,
        );
        let decisions: Vec<usize> = if classes == 1 {
            scores.iter().map(|&s| usize::from(s > 0.0)).collect()
        } else {
            scores
                .chunks_exact(classes)
                .map(|row| {
                    let mut best = 0;
                    for (k, &s) in row.iter().enumerate().skip(1) {
                        if s > row[best] {
                            best = k;
                        }
                    }
                    best
                })
                .collect()
        };
        let (output, width) = if classes == 1 {
            if self.add_second_class {
                // ONNX Runtime's one-score case writes `[1 - s, s]` with the
                // raw score, whatever the post_transform (except PROBIT,
                // refused at load time).
                (scores.iter().flat_map(|&s| [1.0 - s, s]).collect(), 2)
            } else if self.post_transform == PostTransform::Probit {
                (scores.iter().map(|&s| probit(s)).collect(), 1)
            } else {
                (scores, 1)
            }
        } else {
            let mut scores = scores;
            for row in scores.chunks_exact_mut(classes) {
                self.post_transform.apply_to_row(row);
            }
            (scores, classes)
        };
        Ok(vec![
            labels_at(&self.labels, &decisions),
            tensor(DataType::F32, vec![rows, width], TensorData::F32(output)),
        ])
    }
}

const ML_NUMERIC: &[DataType] = &[DataType::F32, DataType::F64, DataType::I64, DataType::I32];

pub(crate) fn lower_linear_classifier(ctx: &NodeContext<'_>) -> Result<Lowered> {
    ctx.expect_inputs(1..=1)?;
    ctx.expect_type(0, ML_NUMERIC)?;
    let coefficients = ctx
        .floats("coefficients")?
        .ok_or_else(|| Error::invalid("LinearClassifier needs coefficients"))?;
    let intercepts = ctx.floats("intercepts")?.unwrap_or_default();
    if intercepts.is_empty() {
        return Err(Error::unsupported("LinearClassifier without intercepts"));
    }
    let model_labels = class_labels(ctx, "classlabels_ints", "classlabels_strings")?;
    let post_transform = PostTransform::parse(&ctx.string_or("post_transform", "NONE")?)?;
    let classes = intercepts.len();
    let add_second_class = classes == 1 && model_labels.len() == 2;
    if add_second_class && post_transform == PostTransform::Probit {
        return Err(Error::unsupported(
            "a one-score LinearClassifier with PROBIT (ONNX Runtime leaves its second score unset)",
        ));
    }
    let labels = match (&model_labels, classes) {
        (_, 1) if model_labels.len() == 2 => model_labels.clone(),
        (ClassLabels::Int(_), 1) => ClassLabels::Int(vec![0, 1]),
        (ClassLabels::Str(_), 1) => ClassLabels::Str(vec!["0".into(), "1".into()]),
        _ if model_labels.len() < classes => {
            return Err(Error::invalid(format!(
                "LinearClassifier with {classes} classes and {} labels",
                model_labels.len()
            )))
        }
        _ => model_labels.clone(),
    };
    let label_dtype = label_type(&labels);
    Ok(Lowered::kernel(
        LinearClassifier {
            coefficients,
            intercepts,
            labels,
            post_transform,
            add_second_class,
        },
        vec![label_dtype, DataType::F32],
    ))
}

// --- LinearRegressor ----------------------------------------------------------------------

struct LinearRegressor {
    coefficients: Vec<f32>,
    intercepts: Option<Vec<f32>>,
    targets: usize,
    post_transform: PostTransform,
}

impl Kernel for LinearRegressor {
    fn run(&self, inputs: &[Option<&Tensor>]) -> Result<Vec<Tensor>> {
        let x = required(inputs, 0)?;
        let (rows, columns) = rows_and_columns(x)?;
        if self.coefficients.len() != self.targets * columns {
            return Err(Error::input(format!(
                "the model has {} coefficients for {} targets; the input has {columns} features",
                self.coefficients.len(),
                self.targets
            )));
        }
        let values = to_f32_vec(x)?;
        let mut scores = linear_scores(
            &values,
            rows,
            columns,
            &self.coefficients,
            self.intercepts.as_deref(),
            self.targets,
        );
        if self.targets > 1 {
            for row in scores.chunks_exact_mut(self.targets) {
                self.post_transform.apply_to_row(row);
            }
        } else if self.post_transform == PostTransform::Probit {
            // With one target ONNX Runtime applies only PROBIT.
            scores.iter_mut().for_each(|s| *s = probit(*s));
        }
        Ok(vec![tensor(
            DataType::F32,
            vec![rows, self.targets],
            TensorData::F32(scores),
        )])
    }
}

pub(crate) fn lower_linear_regressor(ctx: &NodeContext<'_>) -> Result<Lowered> {
    ctx.expect_inputs(1..=1)?;
    ctx.expect_type(0, ML_NUMERIC)?;
    let targets = usize::try_from(ctx.int_or("targets", 1)?)
        .map_err(|_| Error::invalid("LinearRegressor with a negative number of targets"))?;
    let coefficients = ctx
        .floats("coefficients")?
        .ok_or_else(|| Error::invalid("LinearRegressor needs coefficients"))?;
    // Intercepts count only when there is one per target.
    let intercepts = ctx.floats("intercepts")?.filter(|i| i.len() == targets);
    let post_transform = PostTransform::parse(&ctx.string_or("post_transform", "NONE")?)?;
    Ok(Lowered::kernel(
        LinearRegressor {
            coefficients,
            intercepts,
            targets,
            post_transform,
        },
        vec![DataType::F32],
    ))
}

// --- Scaler, Normalizer, Imputer, Binarizer ------------------------------------------------

/// `Y = (X - offset) · scale`, per column or with one value for all; in
/// `f64` for `DOUBLE` input and `f32` otherwise, then stored as `f32`.
struct Scaler {
    offset: Vec<f32>,
    scale: Vec<f32>,
}

impl Kernel for Scaler {
    fn run(&self, inputs: &[Option<&Tensor>]) -> Result<Vec<Tensor>> {
        let x = required(inputs, 0)?;
        let stride = match x.shape[..] {
            [] => return Err(Error::input("Scaler takes a tensor of rank 1 or more")),
            [columns] => columns,
            [_, columns, ..] => columns,
        };
        let per_column = self.scale.len() == stride && self.offset.len() == stride;
        if !per_column && self.scale.len() != 1 {
            return Err(Error::input(format!(
                "the Scaler has {} values for an input with {stride} columns",
                self.scale.len()
            )));
        }
        let parameter = |i: usize| if per_column { i % stride.max(1) } else { 0 };
        let values: Vec<f32> = match &x.data {
            TensorData::F64(v) => v
                .iter()
                .enumerate()
                .map(|(i, &e)| {
                    ((e - self.offset[parameter(i)] as f64) * self.scale[parameter(i)] as f64)
                        as f32
                })
                .collect(),
            _ => to_f32_vec(x)?
                .into_iter()
                .enumerate()
                .map(|(i, e)| (e - self.offset[parameter(i)]) * self.scale[parameter(i)])
                .collect(),
        };
        Ok(vec![tensor(
            DataType::F32,
            x.shape.clone(),
            TensorData::F32(values),
        )])
    }
}

pub(crate) fn lower_scaler(ctx: &NodeContext<'_>) -> Result<Lowered> {
    ctx.expect_inputs(1..=1)?;
    ctx.expect_type(0, ML_NUMERIC)?;
    let scale = ctx.floats("scale")?.unwrap_or_default();
    let offset = ctx.floats("offset")?.unwrap_or_default();
    if scale.is_empty() || scale.len() != offset.len() {
        return Err(Error::invalid(format!(
            "Scaler with {} scales and {} offsets",
            scale.len(),
            offset.len()
        )));
    }
    Ok(Lowered::kernel(
        Scaler { offset, scale },
        vec![DataType::F32],
    ))
}

#[derive(Debug, Clone, Copy)]
enum Norm {
    Max,
    L1,
    L2,
}

/// Divides each row (the elements along axis 1) by its max, L1 or L2
/// norm, in `f32`; a row whose norm is 0 is copied unchanged.
struct Normalizer {
    norm: Norm,
}

impl Kernel for Normalizer {
    fn run(&self, inputs: &[Option<&Tensor>]) -> Result<Vec<Tensor>> {
        let x = required(inputs, 0)?;
        // ONNX Runtime normalises along axis 1; for rank > 2 the elements of
        // a "row" are `inner` apart.
        let (stride, inner) = match x.shape[..] {
            [] => return Err(Error::input("Normalizer takes a tensor of rank 1 or more")),
            [columns] => (columns, 1),
            [_, columns, ref rest @ ..] => (columns, rest.iter().product()),
        };
        let floats = to_f32_vec(x)?;
        // L2 squares the input in its own type before the cast to float.
        let squares: Vec<f32> = match &x.data {
            TensorData::F64(v) => v.iter().map(|&e| (e * e) as f32).collect(),
            TensorData::I64(v) => v.iter().map(|&e| e.wrapping_mul(e) as f32).collect(),
            _ => floats.iter().map(|&e| e * e).collect(),
        };
        let mut out = floats.clone();
        let groups = floats.len().checked_div(stride).unwrap_or(0);
        for group in 0..groups {
            let offset = (group % inner) + (group / inner) * stride * inner;
            let indices = (0..stride).map(|s| offset + s * inner);
            match self.norm {
                Norm::Max => {
                    let max = indices.clone().fold(f32::MIN, |m, i| m.max(floats[i]));
                    if max != 0.0 {
                        indices.for_each(|i| out[i] = floats[i] / max);
                    }
                }
                Norm::L1 => {
                    let sum = indices.clone().fold(0.0f32, |s, i| s + floats[i].abs());
                    if sum != 0.0 {
                        indices.for_each(|i| out[i] = floats[i] / sum);
                    }
                }
                Norm::L2 => {
                    let sum = indices.clone().fold(0.0f32, |s, i| s + squares[i]);
                    if sum != 0.0 {
                        indices.for_each(|i| {
                            let magnitude = (squares[i] / sum).sqrt();
                            out[i] = if floats[i] < 0.0 {
                                -magnitude
                            } else {
                                magnitude
                            };
                        });
                    }
                }
            }
        }
        Ok(vec![tensor(
            DataType::F32,
            x.shape.clone(),
            TensorData::F32(out),
        )])
    }
}

pub(crate) fn lower_normalizer(ctx: &NodeContext<'_>) -> Result<Lowered> {
    ctx.expect_inputs(1..=1)?;
    ctx.expect_type(0, ML_NUMERIC)?;
    let norm = match ctx.string_or("norm", "MAX")?.as_str() {
        "MAX" => Norm::Max,
        "L1" => Norm::L1,
        "L2" => Norm::L2,
        other => return Err(Error::invalid(format!("unknown norm '{other}'"))),
    };
    Ok(Lowered::kernel(Normalizer { norm }, vec![DataType::F32]))
}

/// Replaces `replaced_value` (NaN matches NaN) with the imputed value of
/// the column, or the single imputed value.
enum Imputer {
    Float { replaced: f32, imputed: Vec<f32> },
    Int { replaced: i64, imputed: Vec<i64> },
}

impl Kernel for Imputer {
    fn run(&self, inputs: &[Option<&Tensor>]) -> Result<Vec<Tensor>> {
        let x = required(inputs, 0)?;
        let stride = match x.shape[..] {
            [] => return Err(Error::input("Imputer takes a tensor of rank 1 or more")),
            [columns] => columns,
            [_, columns, ..] => columns,
        };
        let pick = |i: usize, count: usize| {
            if count == stride {
                i % stride.max(1)
            } else {
                0
            }
        };
        let data = match (self, &x.data) {
            (Imputer::Float { replaced, imputed }, TensorData::F32(v)) => TensorData::F32(
                v.iter()
                    .enumerate()
                    .map(|(i, &e)| {
                        if (e.is_nan() && replaced.is_nan()) || e == *replaced {
                            imputed[pick(i, imputed.len())]
                        } else {
                            e
                        }
                    })
                    .collect(),
            ),
            (Imputer::Int { replaced, imputed }, TensorData::I64(v)) => TensorData::I64(
                v.iter()
                    .enumerate()
                    .map(|(i, &e)| {
                        if e == *replaced {
                            imputed[pick(i, imputed.len())]
                        } else {
                            e
                        }
                    })
                    .collect(),
            ),
            _ => return Err(storage_error("FP32 or INT64", x)),
        };
        Ok(vec![tensor(x.dtype, x.shape.clone(), data)])
    }
}

pub(crate) fn lower_imputer(ctx: &NodeContext<'_>) -> Result<Lowered> {
    ctx.expect_inputs(1..=1)?;
    // ONNX Runtime registers the Imputer for float and int64 only.
    let dtype = ctx.expect_type(0, &[DataType::F32, DataType::I64])?;
    let floats = ctx
        .floats("imputed_value_floats")?
        .filter(|v| !v.is_empty());
    let ints = ctx.ints("imputed_value_int64s")?.filter(|v| !v.is_empty());
    let imputer = match (dtype, floats, ints) {
        (DataType::F32, Some(imputed), None) => Imputer::Float {
            replaced: ctx.float_or("replaced_value_float", 0.0)?,
            imputed,
        },
        (DataType::I64, None, Some(imputed)) => Imputer::Int {
            replaced: ctx.int_or("replaced_value_int64", 0)?,
            imputed,
        },
        _ => return Err(Error::invalid(
            "Imputer needs imputed values of its input's type (floats for FP32, int64s for INT64)",
        )),
    };
    Ok(Lowered::kernel(imputer, vec![dtype]))
}

/// `1` where `x > threshold`, else `0`, in the input's type; NaN is an
/// error, as in ONNX Runtime.
struct Binarizer {
    threshold: f32,
    dtype: DataType,
}

impl Kernel for Binarizer {
    fn run(&self, inputs: &[Option<&Tensor>]) -> Result<Vec<Tensor>> {
        let x = required(inputs, 0)?;
        let threshold = self.threshold;
        let data = match &x.data {
            TensorData::F32(v) => {
                if v.iter().any(|e| e.is_nan()) {
                    return Err(Error::input("Binarizer input contains NaN"));
                }
                TensorData::F32(
                    v.iter()
                        .map(|&e| if e > threshold { 1.0 } else { 0.0 })
                        .collect(),
                )
            }
            TensorData::F64(v) => {
                if v.iter().any(|e| e.is_nan()) {
                    return Err(Error::input("Binarizer input contains NaN"));
                }
                TensorData::F64(
                    v.iter()
                        .map(|&e| if e > threshold as f64 { 1.0 } else { 0.0 })
                        .collect(),
                )
            }
            TensorData::I64(v) => {
                TensorData::I64(v.iter().map(|&e| i64::from(e as f32 > threshold)).collect())
            }
            _ => return Err(storage_error("numeric", x)),
        };
        Ok(vec![tensor(self.dtype, x.shape.clone(), data)])
    }
}

pub(crate) fn lower_binarizer(ctx: &NodeContext<'_>) -> Result<Lowered> {
    ctx.expect_inputs(1..=1)?;
    let dtype = ctx.expect_type(0, ML_NUMERIC)?;
    Ok(Lowered::kernel(
        Binarizer {
            threshold: ctx.float_or("threshold", 0.0)?,
            dtype,
        },
        vec![dtype],
    ))
}

// --- encoders ----------------------------------------------------------------------------------

/// Lookup tables keyed by the input's element type.
#[derive(Debug)]
enum KeyTable {
    Str(HashMap<String, usize>),
    Int(HashMap<i64, usize>),
    /// Keyed by the bits of the float (with -0.0 read as 0.0, as C++'s
    /// float hashing does); NaN never matches.
    Float(HashMap<u64, usize>),
}

fn float_key(value: f64) -> Option<u64> {
    if value.is_nan() {
        None
    } else if value == 0.0 {
        Some(0.0f64.to_bits())
    } else {
        Some(value.to_bits())
    }
}

impl KeyTable {
    /// A table from `keys`: the first of duplicate keys wins, as with
    /// `unordered_map::emplace`.
    fn build(keys: &Tensor) -> Result<KeyTable> {
        Ok(match &keys.data {
            TensorData::Str(k) => {
                let mut table = HashMap::with_capacity(k.len());
                for (i, key) in k.iter().enumerate() {
                    table.entry(key.clone()).or_insert(i);
                }
                KeyTable::Str(table)
            }
            TensorData::I64(k) => {
                let mut table = HashMap::with_capacity(k.len());
                for (i, &key) in k.iter().enumerate() {
                    table.entry(key).or_insert(i);
                }
                KeyTable::Int(table)
            }
            TensorData::F32(_) | TensorData::F64(_) => {
                let mut table = HashMap::with_capacity(keys.len());
                for i in 0..keys.len() {
                    if let Some(bits) = keys.data.get_f64(i).and_then(float_key) {
                        table.entry(bits).or_insert(i);
                    }
                }
                KeyTable::Float(table)
            }
            TensorData::Bool(_) => return Err(Error::unsupported("boolean keys")),
        })
    }

    /// For each element of `x`, the index of its key, or `missing`.
    fn look_up(&self, x: &Tensor, missing: usize) -> Result<Vec<usize>> {
        Ok(match (self, &x.data) {
            (KeyTable::Str(table), TensorData::Str(v)) => v
                .iter()
                .map(|s| table.get(s).copied().unwrap_or(missing))
                .collect(),
            (KeyTable::Int(table), TensorData::I64(v)) => v
                .iter()
                .map(|k| table.get(k).copied().unwrap_or(missing))
                .collect(),
            (KeyTable::Float(table), TensorData::F32(_) | TensorData::F64(_)) => (0..x.len())
                .map(|i| {
                    x.data
                        .get_f64(i)
                        .and_then(float_key)
                        .and_then(|bits| table.get(&bits).copied())
                        .unwrap_or(missing)
                })
                .collect(),
            _ => return Err(storage_error("key-typed", x)),
        })
    }
}

/// `LabelEncoder` (and `CategoryMapper`): each input element's key maps to
/// the value at the same position, or to the default. `values` holds the
/// values followed by the default.
struct LabelEncoder {
    keys: KeyTable,
    values_and_default: Tensor,
}

impl Kernel for LabelEncoder {
    fn run(&self, inputs: &[Option<&Tensor>]) -> Result<Vec<Tensor>> {
        let x = required(inputs, 0)?;
        let default = self.values_and_default.len() - 1;
        let indices = self.keys.look_up(x, default)?;
        let dtype = self.values_and_default.dtype;
        Ok(vec![tensor(
            dtype,
            x.shape.clone(),
            take(&self.values_and_default.data, &indices),
        )])
    }
}

fn list_tensor(dtype: DataType, data: TensorData) -> Tensor {
    tensor(dtype, vec![data.len()], data)
}

fn append_default(values: Tensor, default: Tensor) -> Result<Tensor> {
    let data = match (values.data, default.data) {
        (TensorData::F32(mut v), TensorData::F32(d)) if d.len() == 1 => {
            v.push(d[0]);
            TensorData::F32(v)
        }
        (TensorData::F64(mut v), TensorData::F64(d)) if d.len() == 1 => {
            v.push(d[0]);
            TensorData::F64(v)
        }
        (TensorData::I64(mut v), TensorData::I64(d)) if d.len() == 1 => {
            v.push(d[0]);
            TensorData::I64(v)
        }
        (TensorData::Str(mut v), TensorData::Str(mut d)) if d.len() == 1 => {
            v.push(d.remove(0));
            TensorData::Str(v)
        }
        _ => {
            return Err(Error::invalid(
                "LabelEncoder's default does not match its values",
            ))
        }
    };
    Ok(list_tensor(values.dtype, data))
}

/// The keys (or values) of a LabelEncoder: the `*_tensor` attribute
/// (opset 4) or one of the typed lists.
fn encoder_list(ctx: &NodeContext<'_>, prefix: &str) -> Result<Option<Tensor>> {
    if let Some(t) = ctx.tensor(&format!("{prefix}_tensor"))? {
        return Ok(Some(list_tensor(t.dtype, t.data)));
    }
    if let Some(v) = ctx.strings(&format!("{prefix}_strings"))? {
        return Ok(Some(list_tensor(DataType::Bytes, TensorData::Str(v))));
    }
    if let Some(v) = ctx.ints(&format!("{prefix}_int64s"))? {
        return Ok(Some(list_tensor(DataType::I64, TensorData::I64(v))));
    }
    if let Some(v) = ctx.floats(&format!("{prefix}_floats"))? {
        return Ok(Some(list_tensor(DataType::F32, TensorData::F32(v))));
    }
    Ok(None)
}

/// The default output of a LabelEncoder whose values have type `dtype`.
fn encoder_default(ctx: &NodeContext<'_>, dtype: DataType) -> Result<Tensor> {
    if let Some(t) = ctx.tensor("default_tensor")? {
        return Ok(t);
    }
    Ok(match dtype {
        DataType::Bytes => list_tensor(
            dtype,
            TensorData::Str(vec![ctx.string_or("default_string", "_Unused")?]),
        ),
        DataType::F32 => list_tensor(
            dtype,
            TensorData::F32(vec![ctx.float_or("default_float", -0.0)?]),
        ),
        DataType::F64 => list_tensor(dtype, TensorData::F64(vec![-0.0])),
        DataType::I64 => list_tensor(
            dtype,
            TensorData::I64(vec![ctx.int_or("default_int64", -1)?]),
        ),
        other => {
            return Err(Error::unsupported(format!(
                "LabelEncoder values of type {other}"
            )))
        }
    })
}

pub(crate) fn lower_label_encoder(ctx: &NodeContext<'_>) -> Result<Lowered> {
    ctx.expect_inputs(1..=1)?;
    let input = ctx.input_type(0)?;
    let (keys, values_and_default) = if ctx.opset < 2 {
        // Version 1: `classes_strings` maps strings to their index and back.
        let classes = ctx.strings("classes_strings")?.unwrap_or_default();
        let indices: Vec<i64> = (0..classes.len() as i64).collect();
        let strings = list_tensor(DataType::Bytes, TensorData::Str(classes));
        let ints = list_tensor(DataType::I64, TensorData::I64(indices));
        let default_string = list_tensor(
            DataType::Bytes,
            TensorData::Str(vec![ctx.string_or("default_string", "_Unused")?]),
        );
        let default_int = list_tensor(
            DataType::I64,
            TensorData::I64(vec![ctx.int_or("default_int64", -1)?]),
        );
        match input {
            DataType::Bytes => (strings, append_default(ints, default_int)?),
            DataType::I64 => (ints, append_default(strings, default_string)?),
            other => {
                return Err(Error::unsupported(format!(
                    "LabelEncoder (version 1) of {other}"
                )))
            }
        }
    } else {
        let keys = encoder_list(ctx, "keys")?
            .ok_or_else(|| Error::invalid("LabelEncoder without keys"))?;
        let values = encoder_list(ctx, "values")?
            .ok_or_else(|| Error::invalid("LabelEncoder without values"))?;
        if keys.len() != values.len() {
            return Err(Error::invalid(format!(
                "LabelEncoder with {} keys and {} values",
                keys.len(),
                values.len()
            )));
        }
        let default = encoder_default(ctx, values.dtype)?;
        (keys, append_default(values, default)?)
    };
    if keys.dtype != input && !(keys.dtype.is_float() && input.is_float()) {
        return Err(Error::invalid(format!(
            "LabelEncoder keys are {} but its input is {input}",
            keys.dtype
        )));
    }
    let dtype = values_and_default.dtype;
    Ok(Lowered::kernel(
        LabelEncoder {
            keys: KeyTable::build(&keys)?,
            values_and_default,
        },
        vec![dtype],
    ))
}

pub(crate) fn lower_category_mapper(ctx: &NodeContext<'_>) -> Result<Lowered> {
    ctx.expect_inputs(1..=1)?;
    let strings = ctx.strings("cats_strings")?.unwrap_or_default();
    let ints = ctx.ints("cats_int64s")?.unwrap_or_default();
    if strings.len() != ints.len() {
        return Err(Error::invalid(
            "CategoryMapper's cats_strings and cats_int64s differ in length",
        ));
    }
    let strings = list_tensor(DataType::Bytes, TensorData::Str(strings));
    let ints = list_tensor(DataType::I64, TensorData::I64(ints));
    let (keys, values_and_default) = match ctx.input_type(0)? {
        DataType::Bytes => {
            let default = list_tensor(
                DataType::I64,
                TensorData::I64(vec![ctx.int_or("default_int64", -1)?]),
            );
            (strings, append_default(ints, default)?)
        }
        DataType::I64 => {
            let default = list_tensor(
                DataType::Bytes,
                TensorData::Str(vec![ctx.string_or("default_string", "_Unused")?]),
            );
            (ints, append_default(strings, default)?)
        }
        other => return Err(Error::unsupported(format!("CategoryMapper of {other}"))),
    };
    let dtype = values_and_default.dtype;
    Ok(Lowered::kernel(
        LabelEncoder {
            keys: KeyTable::build(&keys)?,
            values_and_default,
        },
        vec![dtype],
    ))
}

/// `OneHotEncoder`: a 1 at the category's position in a new last axis;
/// unknown categories give all zeros (`zeros = 1`, the default) or an
/// error. Numeric inputs are truncated to integers before the lookup.
struct OneHotEncoder {
    categories: KeyTable,
    n_categories: usize,
    zeros: bool,
}

impl Kernel for OneHotEncoder {
    fn run(&self, inputs: &[Option<&Tensor>]) -> Result<Vec<Tensor>> {
        let x = required(inputs, 0)?;
        let keys = match &x.data {
            TensorData::F32(v) => tensor(
                DataType::I64,
                x.shape.clone(),
                TensorData::I64(v.iter().map(|&e| e as i64).collect()),
            ),
            TensorData::F64(v) => tensor(
                DataType::I64,
                x.shape.clone(),
                TensorData::I64(v.iter().map(|&e| e as i64).collect()),
            ),
            _ => x.clone(),
        };
        let missing = usize::MAX;
        let positions = self.categories.look_up(&keys, missing)?;
        let mut out = vec![0.0f32; positions.len() * self.n_categories];
        for (i, &position) in positions.iter().enumerate() {
            if position == missing {
                if !self.zeros {
                    return Err(Error::input(
                        "OneHotEncoder: unknown category and zeros = 0",
                    ));
                }
            } else {
                out[i * self.n_categories + position] = 1.0;
            }
        }
        let mut shape = x.shape.clone();
        shape.push(self.n_categories);
        Ok(vec![tensor(DataType::F32, shape, TensorData::F32(out))])
    }
}

pub(crate) fn lower_one_hot_encoder(ctx: &NodeContext<'_>) -> Result<Lowered> {
    ctx.expect_inputs(1..=1)?;
    let input = ctx.expect_type(
        0,
        &[
            DataType::Bytes,
            DataType::I64,
            DataType::I32,
            DataType::F32,
            DataType::F64,
        ],
    )?;
    let strings = ctx.strings("cats_strings")?.filter(|v| !v.is_empty());
    let ints = ctx.ints("cats_int64s")?.filter(|v| !v.is_empty());
    let categories = match (strings, ints) {
        (Some(s), None) if input == DataType::Bytes => {
            list_tensor(DataType::Bytes, TensorData::Str(s))
        }
        (None, Some(i)) if input != DataType::Bytes => {
            list_tensor(DataType::I64, TensorData::I64(i))
        }
        _ => {
            return Err(Error::invalid(
                "OneHotEncoder needs categories of its input's kind",
            ))
        }
    };
    Ok(Lowered::kernel(
        OneHotEncoder {
            n_categories: categories.len(),
            categories: KeyTable::build(&categories)?,
            zeros: ctx.int_or("zeros", 1)? != 0,
        },
        vec![DataType::F32],
    ))
}

// --- ArrayFeatureExtractor, FeatureVectorizer, ZipMap -------------------------------------------

/// Picks elements of the last axis of X at the indices Y; a 1-D X gives
/// `[1, k]`.
struct ArrayFeatureExtractor;

impl Kernel for ArrayFeatureExtractor {
    fn run(&self, inputs: &[Option<&Tensor>]) -> Result<Vec<Tensor>> {
        let x = required(inputs, 0)?;
        let indices = as_i64(required(inputs, 1)?)?;
        let Some(&stride) = x.shape.last() else {
            return Err(Error::input(
                "ArrayFeatureExtractor takes a tensor of rank 1 or more",
            ));
        };
        if indices.is_empty() {
            return Err(Error::input("ArrayFeatureExtractor without indices"));
        }
        let columns: Vec<usize> = indices
            .iter()
            .map(|&i| {
                usize::try_from(i)
                    .ok()
                    .filter(|&i| i < stride)
                    .ok_or_else(|| {
                        Error::input(format!("index {i} is out of range for {stride} columns"))
                    })
            })
            .collect::<Result<_>>()?;
        let rows = x.len().checked_div(stride).unwrap_or(0);
        let picks: Vec<usize> = (0..rows)
            .flat_map(|r| columns.iter().map(move |&c| r * stride + c))
            .collect();
        let shape = if x.shape.len() == 1 {
            vec![1, columns.len()]
        } else {
            let mut shape = x.shape.clone();
            *shape.last_mut().expect("rank checked above") = columns.len();
            shape
        };
        Ok(vec![tensor(x.dtype, shape, take(&x.data, &picks))])
    }
}

pub(crate) fn lower_array_feature_extractor(ctx: &NodeContext<'_>) -> Result<Lowered> {
    ctx.expect_inputs(2..=2)?;
    let dtype = ctx.expect_type(
        0,
        &[
            DataType::F32,
            DataType::F64,
            DataType::I64,
            DataType::I32,
            DataType::Bytes,
        ],
    )?;
    ctx.expect_type(1, &[DataType::I64])?;
    Ok(Lowered::kernel(ArrayFeatureExtractor, vec![dtype]))
}

/// Concatenates its inputs' rows as floats, each truncated or zero-padded
/// to its `inputdimensions` entry.
struct FeatureVectorizer {
    dimensions: Vec<usize>,
}

impl Kernel for FeatureVectorizer {
    fn run(&self, inputs: &[Option<&Tensor>]) -> Result<Vec<Tensor>> {
        let parts: Vec<&Tensor> = inputs.iter().flatten().copied().collect();
        if parts.len() != self.dimensions.len() {
            return Err(Error::invalid(
                "FeatureVectorizer's inputs and inputdimensions differ in number",
            ));
        }
        let rows = match parts.first().map(|p| &p.shape[..]) {
            Some([]) | None => {
                return Err(Error::input(
                    "FeatureVectorizer takes tensors of rank 1 or more",
                ))
            }
            Some([_]) => 1,
            Some([rows, ..]) => *rows,
        };
        let total: usize = self.dimensions.iter().sum();
        let mut out = vec![0.0f32; rows * total];
        let mut offset = 0;
        for (part, &dimension) in parts.iter().zip(&self.dimensions) {
            let values = to_f32_vec(part)?;
            let width = if part.shape.len() == 1 {
                part.len()
            } else {
                part.shape[1..].iter().product()
            };
            if width > 0 && values.len() / width != rows {
                return Err(Error::input("FeatureVectorizer's inputs differ in rows"));
            }
            let copied = width.min(dimension);
            for r in 0..rows {
                out[r * total + offset..r * total + offset + copied]
                    .copy_from_slice(&values[r * width..r * width + copied]);
            }
            offset += dimension;
        }
        Ok(vec![tensor(
            DataType::F32,
            vec![rows, total],
            TensorData::F32(out),
        )])
    }
}

pub(crate) fn lower_feature_vectorizer(ctx: &NodeContext<'_>) -> Result<Lowered> {
    for index in 0..ctx.n_inputs() {
        ctx.expect_type(index, ML_NUMERIC)?;
    }
    let dimensions = ctx
        .ints("inputdimensions")?
        .unwrap_or_default()
        .into_iter()
        .map(|d| usize::try_from(d).map_err(|_| Error::invalid("negative inputdimensions")))
        .collect::<Result<_>>()?;
    Ok(Lowered::kernel(
        FeatureVectorizer { dimensions },
        vec![DataType::F32],
    ))
}

/// `ZipMap` turns `[N, C]` scores into N maps from class label to score;
/// maps have no tensor form, so the graph returns the scores themselves
/// (see the module documentation of `onnx`).
pub(crate) fn lower_zip_map(ctx: &NodeContext<'_>) -> Result<Lowered> {
    ctx.expect_inputs(1..=1)?;
    ctx.expect_type(0, &[DataType::F32])?;
    let labels = class_labels(ctx, "classlabels_int64s", "classlabels_strings")?;
    Ok(Lowered::Alias {
        input: 0,
        output_shape: Some(vec![-1, labels.len() as i64]),
    })
}
