//! Operators that move elements without computing on them: constants,
//! shapes, reshaping, transposition, concatenation, indexing.
//!
//! They work on any element type by choosing source indices and copying
//! the chosen elements ([`take`]). Attribute-versus-input conventions
//! follow the opset: `Squeeze`/`Unsqueeze` take `axes` as an input since
//! opset 13, `Slice` takes its bounds as inputs since opset 10, `Split` its
//! sizes since opset 13 (ONNX `docs/Changelog.md`).

use crate::error::{Error, Result};
use crate::onnx::broadcast::{
    broadcast_shapes, element_count, expand_to, normalize_axis, strides_of,
};
use crate::onnx::ops::{
    as_i64, int_list, int_scalar, required, storage_error, tensor, Kernel, Lowered, NodeContext,
    NUMERIC,
};
use crate::onnx::value::{empty_data, wrap_integer};
use crate::tensor::{DataType, Tensor, TensorData};

/// The elements of `data` at `indices`, in order.
pub(crate) fn take(data: &TensorData, indices: &[usize]) -> TensorData {
    match data {
        TensorData::F32(v) => TensorData::F32(indices.iter().map(|&i| v[i]).collect()),
        TensorData::F64(v) => TensorData::F64(indices.iter().map(|&i| v[i]).collect()),
        TensorData::I64(v) => TensorData::I64(indices.iter().map(|&i| v[i]).collect()),
        TensorData::Bool(v) => TensorData::Bool(indices.iter().map(|&i| v[i]).collect()),
        TensorData::Str(v) => TensorData::Str(indices.iter().map(|i| v[*i].clone()).collect()),
    }
}

/// Appends `source[range]` to `target` (same storage class).
fn extend_from(
    target: &mut TensorData,
    source: &TensorData,
    range: std::ops::Range<usize>,
) -> Result<()> {
    match (target, source) {
        (TensorData::F32(t), TensorData::F32(s)) => t.extend_from_slice(&s[range]),
        (TensorData::F64(t), TensorData::F64(s)) => t.extend_from_slice(&s[range]),
        (TensorData::I64(t), TensorData::I64(s)) => t.extend_from_slice(&s[range]),
        (TensorData::Bool(t), TensorData::Bool(s)) => t.extend_from_slice(&s[range]),
        (TensorData::Str(t), TensorData::Str(s)) => t.extend_from_slice(&s[range]),
        _ => return Err(Error::invalid("operands of different types")),
    }
    Ok(())
}

/// The same elements under another shape.
fn reshaped(x: &Tensor, shape: Vec<usize>) -> Tensor {
    tensor(x.dtype, shape, x.data.clone())
}

fn to_usize_dims(dims: &[i64], what: &str) -> Result<Vec<usize>> {
    dims.iter()
        .map(|&d| {
            usize::try_from(d)
                .map_err(|_| Error::input(format!("{what} has a negative dimension {d}")))
        })
        .collect()
}

// --- Identity, Dropout, Constant ---------------------------------------------------------

pub(crate) fn lower_identity(ctx: &NodeContext<'_>) -> Result<Lowered> {
    ctx.expect_inputs(1..=1)?;
    Ok(Lowered::Alias {
        input: 0,
        output_shape: None,
    })
}

/// Inference-mode `Dropout` with its optional mask output (all true).
struct DropoutWithMask;

impl Kernel for DropoutWithMask {
    fn run(&self, inputs: &[Option<&Tensor>]) -> Result<Vec<Tensor>> {
        let x = required(inputs, 0)?;
        let mask = tensor(
            DataType::Bool,
            x.shape.clone(),
            TensorData::Bool(vec![true; x.len()]),
        );
        Ok(vec![x.clone(), mask])
    }
}

pub(crate) fn lower_dropout(ctx: &NodeContext<'_>) -> Result<Lowered> {
    ctx.expect_inputs(1..=3)?;
    // Since opset 12 the mode is an input; a constant `true` asks for
    // training-time randomness.
    if ctx.has_input(2) {
        match ctx.constant(2) {
            Some(t) if matches!(&t.data, TensorData::Bool(v) if v.iter().all(|b| !b)) => {}
            _ => return Err(Error::unsupported("Dropout in training mode")),
        }
    }
    if ctx.has_output(1) {
        let dtype = ctx.input_type(0)?;
        Ok(Lowered::kernel(
            DropoutWithMask,
            vec![dtype, DataType::Bool],
        ))
    } else {
        Ok(Lowered::Alias {
            input: 0,
            output_shape: None,
        })
    }
}

struct ConstantValue(Tensor);

impl Kernel for ConstantValue {
    fn run(&self, _inputs: &[Option<&Tensor>]) -> Result<Vec<Tensor>> {
        Ok(vec![self.0.clone()])
    }
}

pub(crate) fn lower_constant(ctx: &NodeContext<'_>) -> Result<Lowered> {
    ctx.expect_inputs(0..=0)?;
    ctx.reject_attribute("sparse_value", "sparse tensors are not supported")?;
    let value = if let Some(t) = ctx.tensor("value")? {
        t
    } else if let Some(v) = ctx.float("value_float")? {
        tensor(DataType::F32, vec![], TensorData::F32(vec![v]))
    } else if let Some(v) = ctx.floats("value_floats")? {
        tensor(DataType::F32, vec![v.len()], TensorData::F32(v))
    } else if let Some(v) = ctx.int("value_int")? {
        tensor(DataType::I64, vec![], TensorData::I64(vec![v]))
    } else if let Some(v) = ctx.ints("value_ints")? {
        tensor(DataType::I64, vec![v.len()], TensorData::I64(v))
    } else if let Some(v) = ctx.string("value_string")? {
        tensor(DataType::Bytes, vec![], TensorData::Str(vec![v]))
    } else if let Some(v) = ctx.strings("value_strings")? {
        tensor(DataType::Bytes, vec![v.len()], TensorData::Str(v))
    } else {
        return Err(Error::invalid("Constant has no value"));
    };
    let dtype = value.dtype;
    Ok(Lowered::kernel(ConstantValue(value), vec![dtype]))
}

/// `ConstantOfShape`: a tensor of the given shape filled with `value`
/// (one element; float 0 by default).
struct ConstantOfShape {
    value: Tensor,
}

impl Kernel for ConstantOfShape {
    fn run(&self, inputs: &[Option<&Tensor>]) -> Result<Vec<Tensor>> {
        let shape = to_usize_dims(&int_list(required(inputs, 0)?)?, "ConstantOfShape")?;
        let count = element_count(&shape);
        let data = take(&self.value.data, &vec![0; count]);
        Ok(vec![tensor(self.value.dtype, shape, data)])
    }
}

pub(crate) fn lower_constant_of_shape(ctx: &NodeContext<'_>) -> Result<Lowered> {
    ctx.expect_inputs(1..=1)?;
    ctx.expect_type(0, &[DataType::I64])?;
    let value = ctx
        .tensor("value")?
        .unwrap_or_else(|| tensor(DataType::F32, vec![1], TensorData::F32(vec![0.0])));
    if value.len() != 1 {
        return Err(Error::invalid(
            "ConstantOfShape's value must have one element",
        ));
    }
    let dtype = value.dtype;
    Ok(Lowered::kernel(ConstantOfShape { value }, vec![dtype]))
}

// --- Shape, Size --------------------------------------------------------------------------

struct ShapeOf {
    start: i64,
    end: Option<i64>,
}

impl Kernel for ShapeOf {
    fn run(&self, inputs: &[Option<&Tensor>]) -> Result<Vec<Tensor>> {
        let x = required(inputs, 0)?;
        // Since opset 15, `start` and `end` select a range of axes, clamped
        // to the rank like a Python slice.
        let rank = x.shape.len() as i64;
        let clamp = |v: i64| (if v < 0 { v + rank } else { v }).clamp(0, rank) as usize;
        let start = clamp(self.start);
        let end = clamp(self.end.unwrap_or(rank)).max(start);
        let dims: Vec<i64> = x.shape[start..end].iter().map(|&d| d as i64).collect();
        Ok(vec![tensor(
            DataType::I64,
            vec![dims.len()],
            TensorData::I64(dims),
        )])
    }
}

pub(crate) fn lower_shape(ctx: &NodeContext<'_>) -> Result<Lowered> {
    ctx.expect_inputs(1..=1)?;
    ctx.input_type(0)?;
    Ok(Lowered::kernel(
        ShapeOf {
            start: ctx.int_or("start", 0)?,
            end: ctx.int("end")?,
        },
        vec![DataType::I64],
    ))
}

struct Size;

impl Kernel for Size {
    fn run(&self, inputs: &[Option<&Tensor>]) -> Result<Vec<Tensor>> {
        let x = required(inputs, 0)?;
        Ok(vec![tensor(
            DataType::I64,
            vec![],
            TensorData::I64(vec![x.len() as i64]),
        )])
    }
}

pub(crate) fn lower_size(ctx: &NodeContext<'_>) -> Result<Lowered> {
    ctx.expect_inputs(1..=1)?;
    Ok(Lowered::kernel(Size, vec![DataType::I64]))
}

// --- Reshape, Flatten, Squeeze, Unsqueeze --------------------------------------------------

struct Reshape {
    allow_zero: bool,
}

/// The output shape of `Reshape`: `0` copies the input's dimension (unless
/// `allowzero`), `-1` takes what is left.
fn reshape_target(input: &[usize], requested: &[i64], allow_zero: bool) -> Result<Vec<usize>> {
    let mut shape = Vec::with_capacity(requested.len());
    let mut inferred = None;
    for (axis, &d) in requested.iter().enumerate() {
        match d {
            -1 if inferred.is_none() => {
                inferred = Some(axis);
                shape.push(1);
            }
            0 if !allow_zero => shape.push(*input.get(axis).ok_or_else(|| {
                Error::input(format!("cannot copy dimension {axis} of shape {input:?}"))
            })?),
            d if d >= 0 => shape.push(d as usize),
            _ => return Err(Error::input(format!("invalid target shape {requested:?}"))),
        }
    }
    let total = element_count(input);
    if let Some(axis) = inferred {
        let known = element_count(&shape);
        if known == 0 || !total.is_multiple_of(known) {
            return Err(Error::input(format!(
                "cannot reshape {input:?} to {requested:?}"
            )));
        }
        shape[axis] = total / known;
    }
    if element_count(&shape) != total {
        return Err(Error::input(format!(
            "cannot reshape {input:?} to {requested:?}"
        )));
    }
    Ok(shape)
}

impl Kernel for Reshape {
    fn run(&self, inputs: &[Option<&Tensor>]) -> Result<Vec<Tensor>> {
        let x = required(inputs, 0)?;
        let requested = int_list(required(inputs, 1)?)?;
        let shape = reshape_target(&x.shape, &requested, self.allow_zero)?;
        Ok(vec![reshaped(x, shape)])
    }
}

pub(crate) fn lower_reshape(ctx: &NodeContext<'_>) -> Result<Lowered> {
    ctx.expect_inputs(2..=2)?;
    let dtype = ctx.input_type(0)?;
    ctx.expect_type(1, &[DataType::I64])?;
    let allow_zero = ctx.int_or("allowzero", 0)? != 0;
    Ok(Lowered::kernel(Reshape { allow_zero }, vec![dtype]))
}

struct Flatten {
    axis: i64,
}

impl Kernel for Flatten {
    fn run(&self, inputs: &[Option<&Tensor>]) -> Result<Vec<Tensor>> {
        let x = required(inputs, 0)?;
        let rank = x.shape.len();
        // `axis` may equal the rank (everything in the first dimension).
        let axis = if self.axis == rank as i64 {
            rank
        } else {
            normalize_axis(self.axis, rank.max(1))?
        };
        let outer = element_count(&x.shape[..axis.min(rank)]);
        let inner = element_count(&x.shape[axis.min(rank)..]);
        Ok(vec![reshaped(x, vec![outer, inner])])
    }
}

pub(crate) fn lower_flatten(ctx: &NodeContext<'_>) -> Result<Lowered> {
    ctx.expect_inputs(1..=1)?;
    let dtype = ctx.input_type(0)?;
    Ok(Lowered::kernel(
        Flatten {
            axis: ctx.int_or("axis", 1)?,
        },
        vec![dtype],
    ))
}

/// `axes` from the attribute (before `since`) or from input 1.
fn axes_argument(
    attribute: &Option<Vec<i64>>,
    inputs: &[Option<&Tensor>],
) -> Result<Option<Vec<i64>>> {
    match (attribute, inputs.get(1).copied().flatten()) {
        (Some(axes), _) => Ok(Some(axes.clone())),
        (None, Some(t)) => Ok(Some(int_list(t)?)),
        (None, None) => Ok(None),
    }
}

struct Squeeze {
    axes: Option<Vec<i64>>,
}

impl Kernel for Squeeze {
    fn run(&self, inputs: &[Option<&Tensor>]) -> Result<Vec<Tensor>> {
        let x = required(inputs, 0)?;
        let rank = x.shape.len();
        let shape = match axes_argument(&self.axes, inputs)? {
            None => x.shape.iter().copied().filter(|&d| d != 1).collect(),
            Some(axes) => {
                let mut drop = vec![false; rank];
                for axis in axes {
                    let axis = normalize_axis(axis, rank)?;
                    if x.shape[axis] != 1 {
                        return Err(Error::input(format!(
                            "cannot squeeze axis {axis} of shape {:?}",
                            x.shape
                        )));
                    }
                    drop[axis] = true;
                }
                x.shape
                    .iter()
                    .zip(drop)
                    .filter(|(_, d)| !d)
                    .map(|(&s, _)| s)
                    .collect()
            }
        };
        Ok(vec![reshaped(x, shape)])
    }
}

pub(crate) fn lower_squeeze(ctx: &NodeContext<'_>) -> Result<Lowered> {
    ctx.expect_inputs(1..=2)?;
    let dtype = ctx.input_type(0)?;
    let axes = if ctx.opset < 13 {
        ctx.ints("axes")?
    } else {
        None
    };
    Ok(Lowered::kernel(Squeeze { axes }, vec![dtype]))
}

struct Unsqueeze {
    axes: Option<Vec<i64>>,
}

impl Kernel for Unsqueeze {
    fn run(&self, inputs: &[Option<&Tensor>]) -> Result<Vec<Tensor>> {
        let x = required(inputs, 0)?;
        let axes = axes_argument(&self.axes, inputs)?
            .ok_or_else(|| Error::invalid("Unsqueeze needs axes"))?;
        // Axes index the output, whose rank counts the new axes.
        let rank = x.shape.len() + axes.len();
        let mut inserted = vec![false; rank];
        for axis in axes {
            let axis = normalize_axis(axis, rank)?;
            if std::mem::replace(&mut inserted[axis], true) {
                return Err(Error::invalid(format!("Unsqueeze axis {axis} repeats")));
            }
        }
        let mut dims = x.shape.iter();
        let shape = inserted
            .into_iter()
            .map(|new| {
                if new {
                    1
                } else {
                    dims.next().copied().unwrap_or(1)
                }
            })
            .collect();
        Ok(vec![reshaped(x, shape)])
    }
}

pub(crate) fn lower_unsqueeze(ctx: &NodeContext<'_>) -> Result<Lowered> {
    ctx.expect_inputs(1..=2)?;
    let dtype = ctx.input_type(0)?;
    let axes = if ctx.opset < 13 {
        Some(
            ctx.ints("axes")?
                .ok_or_else(|| Error::invalid("Unsqueeze needs the attribute 'axes'"))?,
        )
    } else {
        None
    };
    Ok(Lowered::kernel(Unsqueeze { axes }, vec![dtype]))
}

// --- Transpose ---------------------------------------------------------------------------

struct Transpose {
    perm: Option<Vec<i64>>,
}

pub(crate) fn transpose(x: &Tensor, perm: &[usize]) -> Result<Tensor> {
    let rank = x.shape.len();
    let mut seen = vec![false; rank];
    if perm.len() != rank
        || perm
            .iter()
            .any(|&p| p >= rank || std::mem::replace(&mut seen[p], true))
    {
        return Err(Error::invalid(format!(
            "invalid permutation {perm:?} of rank {rank}"
        )));
    }
    let shape: Vec<usize> = perm.iter().map(|&p| x.shape[p]).collect();
    let strides = strides_of(&x.shape);
    let permuted_strides: Vec<usize> = perm.iter().map(|&p| strides[p]).collect();
    let mut indices = Vec::with_capacity(x.len());
    crate::onnx::broadcast::for_each_broadcast(&shape, [&permuted_strides], |[i]| indices.push(i));
    Ok(tensor(x.dtype, shape, take(&x.data, &indices)))
}

impl Kernel for Transpose {
    fn run(&self, inputs: &[Option<&Tensor>]) -> Result<Vec<Tensor>> {
        let x = required(inputs, 0)?;
        let rank = x.shape.len();
        let perm: Vec<usize> = match &self.perm {
            Some(perm) => perm
                .iter()
                .map(|&p| normalize_axis(p, rank))
                .collect::<Result<_>>()?,
            None => (0..rank).rev().collect(),
        };
        Ok(vec![transpose(x, &perm)?])
    }
}

pub(crate) fn lower_transpose(ctx: &NodeContext<'_>) -> Result<Lowered> {
    ctx.expect_inputs(1..=1)?;
    let dtype = ctx.input_type(0)?;
    Ok(Lowered::kernel(
        Transpose {
            perm: ctx.ints("perm")?,
        },
        vec![dtype],
    ))
}

// --- Concat, Split -----------------------------------------------------------------------

struct Concat {
    axis: i64,
    dtype: DataType,
}

impl Kernel for Concat {
    fn run(&self, inputs: &[Option<&Tensor>]) -> Result<Vec<Tensor>> {
        let parts: Vec<&Tensor> = inputs.iter().flatten().copied().collect();
        let first = parts
            .first()
            .ok_or_else(|| Error::invalid("Concat without inputs"))?;
        let rank = first.shape.len();
        let axis = normalize_axis(self.axis, rank)?;
        let mut shape = first.shape.clone();
        shape[axis] = 0;
        for part in &parts {
            let compatible = part.shape.len() == rank
                && part
                    .shape
                    .iter()
                    .enumerate()
                    .all(|(a, &d)| a == axis || d == first.shape[a]);
            if !compatible {
                return Err(Error::input(format!(
                    "cannot concatenate shapes {:?} and {:?} on axis {axis}",
                    first.shape, part.shape
                )));
            }
            shape[axis] += part.shape[axis];
        }
        let outer = element_count(&shape[..axis]);
        let mut data = empty_data(self.dtype);
        for row in 0..outer {
            for part in &parts {
                let block = element_count(&part.shape[axis..]);
                extend_from(&mut data, &part.data, row * block..(row + 1) * block)?;
            }
        }
        Ok(vec![tensor(self.dtype, shape, data)])
    }
}

pub(crate) fn lower_concat(ctx: &NodeContext<'_>) -> Result<Lowered> {
    if ctx.n_inputs() == 0 {
        return Err(Error::invalid("Concat needs inputs"));
    }
    let dtype = ctx.input_type(0)?;
    for index in 1..ctx.n_inputs() {
        if ctx.input_type(index)? != dtype {
            return Err(Error::invalid("Concat's inputs differ in type"));
        }
    }
    let axis = ctx
        .int("axis")?
        .ok_or_else(|| Error::invalid("Concat needs the attribute 'axis'"))?;
    Ok(Lowered::kernel(Concat { axis, dtype }, vec![dtype]))
}

struct Split {
    axis: i64,
    sizes: Option<Vec<i64>>,
    n_outputs: usize,
}

impl Kernel for Split {
    fn run(&self, inputs: &[Option<&Tensor>]) -> Result<Vec<Tensor>> {
        let x = required(inputs, 0)?;
        let axis = normalize_axis(self.axis, x.shape.len())?;
        let length = x.shape[axis];
        let sizes: Vec<usize> = match (&self.sizes, inputs.get(1).copied().flatten()) {
            (Some(sizes), _) => to_usize_dims(sizes, "Split")?,
            (None, Some(t)) => to_usize_dims(&int_list(t)?, "Split")?,
            // Equal parts; the last one smaller when the length does not
            // divide (opset 18).
            (None, None) => {
                let part = length.div_ceil(self.n_outputs.max(1));
                (0..self.n_outputs)
                    .map(|i| part.min(length.saturating_sub(i * part)))
                    .collect()
            }
        };
        if sizes.iter().sum::<usize>() != length || sizes.len() != self.n_outputs {
            return Err(Error::input(format!(
                "cannot split length {length} into {sizes:?} ({} outputs)",
                self.n_outputs
            )));
        }
        let outer = element_count(&x.shape[..axis]);
        let inner = element_count(&x.shape[axis + 1..]);
        let mut offset = 0;
        let mut parts = Vec::with_capacity(sizes.len());
        for size in sizes {
            let mut data = empty_data(x.dtype);
            for row in 0..outer {
                let start = (row * length + offset) * inner;
                extend_from(&mut data, &x.data, start..start + size * inner)?;
            }
            let mut shape = x.shape.clone();
            shape[axis] = size;
            parts.push(tensor(x.dtype, shape, data));
            offset += size;
        }
        Ok(parts)
    }
}

pub(crate) fn lower_split(ctx: &NodeContext<'_>) -> Result<Lowered> {
    ctx.expect_inputs(1..=2)?;
    let dtype = ctx.input_type(0)?;
    let sizes = if ctx.opset < 13 {
        ctx.ints("split")?
    } else {
        None
    };
    let n_outputs = ctx.n_outputs();
    Ok(Lowered::kernel(
        Split {
            axis: ctx.int_or("axis", 0)?,
            sizes,
            n_outputs,
        },
        vec![dtype; n_outputs],
    ))
}

// --- Gather, GatherElements, Slice --------------------------------------------------------

/// An index into an axis of `length`, negative counting from the end.
fn resolve_index(index: i64, length: usize) -> Result<usize> {
    let resolved = if index < 0 {
        index + length as i64
    } else {
        index
    };
    if (0..length as i64).contains(&resolved) {
        Ok(resolved as usize)
    } else {
        Err(Error::input(format!(
            "index {index} is out of range for an axis of length {length}"
        )))
    }
}

struct Gather {
    axis: i64,
}

impl Kernel for Gather {
    fn run(&self, inputs: &[Option<&Tensor>]) -> Result<Vec<Tensor>> {
        let x = required(inputs, 0)?;
        let indices_tensor = required(inputs, 1)?;
        let indices = as_i64(indices_tensor)?;
        let axis = normalize_axis(self.axis, x.shape.len())?;
        let (outer, length, inner) = crate::onnx::broadcast::split_at_axis(&x.shape, axis);
        let resolved: Vec<usize> = indices
            .iter()
            .map(|&i| resolve_index(i, length))
            .collect::<Result<_>>()?;
        let mut picks = Vec::with_capacity(outer * resolved.len() * inner);
        for row in 0..outer {
            for &index in &resolved {
                let start = (row * length + index) * inner;
                picks.extend(start..start + inner);
            }
        }
        let mut shape = x.shape[..axis].to_vec();
        shape.extend_from_slice(&indices_tensor.shape);
        shape.extend_from_slice(&x.shape[axis + 1..]);
        Ok(vec![tensor(x.dtype, shape, take(&x.data, &picks))])
    }
}

pub(crate) fn lower_gather(ctx: &NodeContext<'_>) -> Result<Lowered> {
    ctx.expect_inputs(2..=2)?;
    let dtype = ctx.input_type(0)?;
    ctx.expect_type(1, &[DataType::I64, DataType::I32])?;
    Ok(Lowered::kernel(
        Gather {
            axis: ctx.int_or("axis", 0)?,
        },
        vec![dtype],
    ))
}

struct GatherElements {
    axis: i64,
}

impl Kernel for GatherElements {
    fn run(&self, inputs: &[Option<&Tensor>]) -> Result<Vec<Tensor>> {
        let x = required(inputs, 0)?;
        let indices_tensor = required(inputs, 1)?;
        let indices = as_i64(indices_tensor)?;
        let rank = x.shape.len();
        let axis = normalize_axis(self.axis, rank)?;
        if indices_tensor.shape.len() != rank {
            return Err(Error::input(
                "GatherElements: indices and data differ in rank",
            ));
        }
        let x_strides = strides_of(&x.shape);
        let index_strides = strides_of(&indices_tensor.shape);
        let mut picks = Vec::with_capacity(indices.len());
        for (flat, &index) in indices.iter().enumerate() {
            let mut source = 0;
            for a in 0..rank {
                let coordinate = (flat / index_strides[a]) % indices_tensor.shape[a].max(1);
                let coordinate = if a == axis {
                    resolve_index(index, x.shape[a])?
                } else {
                    coordinate
                };
                if coordinate >= x.shape[a] {
                    return Err(Error::input(
                        "GatherElements: indices exceed the data's shape",
                    ));
                }
                source += coordinate * x_strides[a];
            }
            picks.push(source);
        }
        Ok(vec![tensor(
            x.dtype,
            indices_tensor.shape.clone(),
            take(&x.data, &picks),
        )])
    }
}

pub(crate) fn lower_gather_elements(ctx: &NodeContext<'_>) -> Result<Lowered> {
    ctx.expect_inputs(2..=2)?;
    let dtype = ctx.input_type(0)?;
    ctx.expect_type(1, &[DataType::I64, DataType::I32])?;
    Ok(Lowered::kernel(
        GatherElements {
            axis: ctx.int_or("axis", 0)?,
        },
        vec![dtype],
    ))
}

/// `Slice`'s bounds as attributes (before opset 10).
struct SliceAttributes {
    starts: Vec<i64>,
    ends: Vec<i64>,
    axes: Option<Vec<i64>>,
}

/// `Slice`: bounds from attributes before opset 10, from inputs since.
struct Slice {
    attributes: Option<SliceAttributes>,
}

impl Kernel for Slice {
    fn run(&self, inputs: &[Option<&Tensor>]) -> Result<Vec<Tensor>> {
        let x = required(inputs, 0)?;
        let optional = |i: usize| inputs.get(i).copied().flatten().map(int_list).transpose();
        let (starts, ends, axes, steps) = match &self.attributes {
            Some(bounds) => (
                bounds.starts.clone(),
                bounds.ends.clone(),
                bounds.axes.clone(),
                None,
            ),
            None => (
                int_list(required(inputs, 1)?)?,
                int_list(required(inputs, 2)?)?,
                optional(3)?,
                optional(4)?,
            ),
        };
        let rank = x.shape.len();
        let axes: Vec<i64> = axes.unwrap_or_else(|| (0..starts.len() as i64).collect());
        let steps = steps.unwrap_or_else(|| vec![1; starts.len()]);
        if ends.len() != starts.len() || axes.len() != starts.len() || steps.len() != starts.len() {
            return Err(Error::input(
                "Slice: starts, ends, axes and steps differ in length",
            ));
        }
        // Per axis: first index, step, count. Bounds clamp as in numpy.
        let mut first = vec![0i64; rank];
        let mut step_of = vec![1i64; rank];
        let mut count = x.shape.clone();
        for k in 0..starts.len() {
            let axis = normalize_axis(axes[k], rank)?;
            let length = x.shape[axis] as i64;
            let step = steps[k];
            if step == 0 {
                return Err(Error::input("Slice step is 0"));
            }
            let resolve = |v: i64| if v < 0 { v + length } else { v };
            let (start, end) = if step > 0 {
                (
                    resolve(starts[k]).clamp(0, length),
                    resolve(ends[k]).clamp(0, length),
                )
            } else {
                (
                    resolve(starts[k]).clamp(-1, length - 1),
                    resolve(ends[k]).clamp(-1, length - 1),
                )
            };
            let n = if step > 0 {
                (end - start + step - 1).div_euclid(step).max(0)
            } else {
                (start - end + (-step) - 1).div_euclid(-step).max(0)
            };
            first[axis] = start;
            step_of[axis] = step;
            count[axis] = n as usize;
        }
        let strides = strides_of(&x.shape);
        let base: i64 = (0..rank).map(|a| first[a] * strides[a] as i64).sum();
        let mut picks = Vec::with_capacity(element_count(&count));
        if element_count(&count) > 0 {
            let mut index = vec![0usize; rank];
            loop {
                let offset: i64 = (0..rank)
                    .map(|a| index[a] as i64 * step_of[a] * strides[a] as i64)
                    .sum();
                picks.push((base + offset) as usize);
                // Advance the odometer, innermost axis first.
                let mut axis = rank;
                let finished = loop {
                    if axis == 0 {
                        break true;
                    }
                    axis -= 1;
                    index[axis] += 1;
                    if index[axis] < count[axis] {
                        break false;
                    }
                    index[axis] = 0;
                };
                if finished {
                    break;
                }
            }
        }
        Ok(vec![tensor(x.dtype, count, take(&x.data, &picks))])
    }
}

pub(crate) fn lower_slice(ctx: &NodeContext<'_>) -> Result<Lowered> {
    let dtype = ctx.input_type(0)?;
    let attributes = if ctx.opset < 10 {
        ctx.expect_inputs(1..=1)?;
        let starts = ctx
            .ints("starts")?
            .ok_or_else(|| Error::invalid("Slice needs 'starts'"))?;
        let ends = ctx
            .ints("ends")?
            .ok_or_else(|| Error::invalid("Slice needs 'ends'"))?;
        Some(SliceAttributes {
            starts,
            ends,
            axes: ctx.ints("axes")?,
        })
    } else {
        ctx.expect_inputs(3..=5)?;
        None
    };
    Ok(Lowered::kernel(Slice { attributes }, vec![dtype]))
}

// --- Expand, Tile, Range ------------------------------------------------------------------

struct Expand;

impl Kernel for Expand {
    fn run(&self, inputs: &[Option<&Tensor>]) -> Result<Vec<Tensor>> {
        let x = required(inputs, 0)?;
        let requested = to_usize_dims(&int_list(required(inputs, 1)?)?, "Expand")?;
        let shape = broadcast_shapes(&[&x.shape, &requested])?;
        let indices: Vec<usize> = expand_to(&(0..x.len()).collect::<Vec<_>>(), &x.shape, &shape);
        Ok(vec![tensor(x.dtype, shape, take(&x.data, &indices))])
    }
}

pub(crate) fn lower_expand(ctx: &NodeContext<'_>) -> Result<Lowered> {
    ctx.expect_inputs(2..=2)?;
    let dtype = ctx.input_type(0)?;
    ctx.expect_type(1, &[DataType::I64])?;
    Ok(Lowered::kernel(Expand, vec![dtype]))
}

struct Tile;

impl Kernel for Tile {
    fn run(&self, inputs: &[Option<&Tensor>]) -> Result<Vec<Tensor>> {
        let x = required(inputs, 0)?;
        let repeats = to_usize_dims(&int_list(required(inputs, 1)?)?, "Tile")?;
        if repeats.len() != x.shape.len() {
            return Err(Error::input("Tile: repeats and input differ in rank"));
        }
        let shape: Vec<usize> = x.shape.iter().zip(&repeats).map(|(d, r)| d * r).collect();
        let strides = strides_of(&x.shape);
        let mut picks = Vec::with_capacity(element_count(&shape));
        let out_strides = strides_of(&shape);
        for flat in 0..element_count(&shape) {
            let source: usize = (0..shape.len())
                .map(|a| ((flat / out_strides[a]) % shape[a]) % x.shape[a] * strides[a])
                .sum();
            picks.push(source);
        }
        Ok(vec![tensor(x.dtype, shape, take(&x.data, &picks))])
    }
}

pub(crate) fn lower_tile(ctx: &NodeContext<'_>) -> Result<Lowered> {
    ctx.expect_inputs(2..=2)?;
    let dtype = ctx.input_type(0)?;
    ctx.expect_type(1, &[DataType::I64])?;
    Ok(Lowered::kernel(Tile, vec![dtype]))
}

struct Range {
    dtype: DataType,
}

impl Kernel for Range {
    fn run(&self, inputs: &[Option<&Tensor>]) -> Result<Vec<Tensor>> {
        let (start, limit, delta) = (
            required(inputs, 0)?,
            required(inputs, 1)?,
            required(inputs, 2)?,
        );
        let data = match (&start.data, &limit.data, &delta.data) {
            (TensorData::I64(_), TensorData::I64(_), TensorData::I64(_)) => {
                let (s, l, d) = (int_scalar(start)?, int_scalar(limit)?, int_scalar(delta)?);
                if d == 0 {
                    return Err(Error::input("Range with delta 0"));
                }
                // ceil((limit - start) / delta), at least 0.
                let n = ((l - s) as f64 / d as f64).ceil().max(0.0) as i64;
                TensorData::I64(
                    (0..n)
                        .map(|i| wrap_integer(self.dtype, s + i * d))
                        .collect(),
                )
            }
            (TensorData::F32(s), TensorData::F32(l), TensorData::F32(d))
                if s.len() == 1 && l.len() == 1 && d.len() == 1 =>
            {
                let n = ((l[0] - s[0]) / d[0]).ceil().max(0.0) as usize;
                TensorData::F32((0..n).map(|i| s[0] + i as f32 * d[0]).collect())
            }
            (TensorData::F64(s), TensorData::F64(l), TensorData::F64(d))
                if s.len() == 1 && l.len() == 1 && d.len() == 1 =>
            {
                let n = ((l[0] - s[0]) / d[0]).ceil().max(0.0) as usize;
                TensorData::F64((0..n).map(|i| s[0] + i as f64 * d[0]).collect())
            }
            _ => return Err(storage_error("scalar numeric", start)),
        };
        let n = data.len();
        Ok(vec![tensor(self.dtype, vec![n], data)])
    }
}

pub(crate) fn lower_range(ctx: &NodeContext<'_>) -> Result<Lowered> {
    ctx.expect_inputs(3..=3)?;
    let dtype = ctx.expect_type(0, NUMERIC)?;
    Ok(Lowered::kernel(Range { dtype }, vec![dtype]))
}
