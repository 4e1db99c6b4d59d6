//! Elementwise operators: arithmetic with numpy broadcasting, activation
//! functions, comparisons, logic, `Where`, `Cast`.
//!
//! Semantics follow the ONNX operator specification (`docs/Operators.md`);
//! integer arithmetic wraps to the tensor's type like C's does on ONNX
//! Runtime's two's-complement targets, and integer division truncates
//! toward zero.

use crate::error::{Error, Result};
use crate::onnx::broadcast::{
    broadcast_binary, broadcast_shapes, broadcast_strides, for_each_broadcast,
};
use crate::onnx::ops::numeric::Float;
use crate::onnx::ops::{
    as_bool, required, storage_error, tensor, Kernel, Lowered, NodeContext, ALL_TYPES, FLOATS,
    NUMERIC,
};
use crate::onnx::value::{empty_data, wrap_integer};
use crate::tensor::{DataType, Tensor, TensorData};

// --- binary arithmetic -------------------------------------------------------------

#[derive(Debug, Clone, Copy)]
enum Arithmetic {
    Add,
    Sub,
    Mul,
    Div,
}

struct BinaryArithmetic {
    op: Arithmetic,
    dtype: DataType,
}

fn float_arithmetic<T: Float>(
    op: Arithmetic,
    a: &[T],
    a_shape: &[usize],
    b: &[T],
    b_shape: &[usize],
) -> Result<(Vec<T>, Vec<usize>)> {
    match op {
        Arithmetic::Add => broadcast_binary(a, a_shape, b, b_shape, |x, y| x + y),
        Arithmetic::Sub => broadcast_binary(a, a_shape, b, b_shape, |x, y| x - y),
        Arithmetic::Mul => broadcast_binary(a, a_shape, b, b_shape, |x, y| x * y),
        Arithmetic::Div => broadcast_binary(a, a_shape, b, b_shape, |x, y| x / y),
    }
}

impl Kernel for BinaryArithmetic {
    fn run(&self, inputs: &[Option<&Tensor>]) -> Result<Vec<Tensor>> {
        let a = required(inputs, 0)?;
        let b = required(inputs, 1)?;
        let (data, shape) = match (&a.data, &b.data) {
            (TensorData::F32(x), TensorData::F32(y)) => {
                let (values, shape) = float_arithmetic(self.op, x, &a.shape, y, &b.shape)?;
                (TensorData::F32(values), shape)
            }
            (TensorData::F64(x), TensorData::F64(y)) => {
                let (values, shape) = float_arithmetic(self.op, x, &a.shape, y, &b.shape)?;
                (TensorData::F64(values), shape)
            }
            (TensorData::I64(x), TensorData::I64(y)) => {
                let dtype = self.dtype;
                let (values, shape) = match self.op {
                    Arithmetic::Add => {
                        broadcast_binary(x, &a.shape, y, &b.shape, |p, q| p.wrapping_add(q))?
                    }
                    Arithmetic::Sub => {
                        broadcast_binary(x, &a.shape, y, &b.shape, |p, q| p.wrapping_sub(q))?
                    }
                    Arithmetic::Mul => {
                        broadcast_binary(x, &a.shape, y, &b.shape, |p, q| p.wrapping_mul(q))?
                    }
                    Arithmetic::Div => {
                        if y.contains(&0) {
                            return Err(Error::input("integer division by zero"));
                        }
                        broadcast_binary(x, &a.shape, y, &b.shape, |p, q| p.wrapping_div(q))?
                    }
                };
                let values = if dtype == DataType::I64 || dtype == DataType::U64 {
                    values
                } else {
                    values.into_iter().map(|v| wrap_integer(dtype, v)).collect()
                };
                (TensorData::I64(values), shape)
            }
            _ => return Err(storage_error(&self.dtype.to_string(), b)),
        };
        Ok(vec![tensor(self.dtype, shape, data)])
    }
}

/// Both inputs of a binary operator share one type `T`.
fn same_types(ctx: &NodeContext<'_>, allowed: &[DataType]) -> Result<DataType> {
    ctx.expect_inputs(2..=2)?;
    let dtype = ctx.expect_type(0, allowed)?;
    let other = ctx.input_type(1)?;
    if other != dtype {
        return Err(Error::invalid(format!(
            "{} takes two inputs of one type, got {dtype} and {other}",
            ctx.op_type
        )));
    }
    Ok(dtype)
}

fn lower_arithmetic(ctx: &NodeContext<'_>, op: Arithmetic) -> Result<Lowered> {
    let dtype = same_types(ctx, NUMERIC)?;
    Ok(Lowered::kernel(BinaryArithmetic { op, dtype }, vec![dtype]))
}

pub(crate) fn lower_add(ctx: &NodeContext<'_>) -> Result<Lowered> {
    lower_arithmetic(ctx, Arithmetic::Add)
}

pub(crate) fn lower_sub(ctx: &NodeContext<'_>) -> Result<Lowered> {
    lower_arithmetic(ctx, Arithmetic::Sub)
}

pub(crate) fn lower_mul(ctx: &NodeContext<'_>) -> Result<Lowered> {
    lower_arithmetic(ctx, Arithmetic::Mul)
}

pub(crate) fn lower_div(ctx: &NodeContext<'_>) -> Result<Lowered> {
    lower_arithmetic(ctx, Arithmetic::Div)
}

/// `Pow(X, Y)`: since opset 12 the exponent may have another numeric type
/// than the base; the result has the base's type.
struct Pow {
    dtype: DataType,
}

fn exponent_as<T: Float>(y: &Tensor) -> Result<Vec<T>> {
    Ok(match &y.data {
        TensorData::F32(v) => v.iter().map(|&e| T::from_f64(e as f64)).collect(),
        TensorData::F64(v) => v.iter().map(|&e| T::from_f64(e)).collect(),
        TensorData::I64(v) => v.iter().map(|&e| T::from_i64(e)).collect(),
        _ => return Err(storage_error("numeric", y)),
    })
}

impl Kernel for Pow {
    fn run(&self, inputs: &[Option<&Tensor>]) -> Result<Vec<Tensor>> {
        let x = required(inputs, 0)?;
        let y = required(inputs, 1)?;
        let (data, shape) = match &x.data {
            TensorData::F32(base) => {
                let exponent = exponent_as::<f32>(y)?;
                let (values, shape) =
                    broadcast_binary(base, &x.shape, &exponent, &y.shape, f32::powf)?;
                (TensorData::F32(values), shape)
            }
            TensorData::F64(base) => {
                let exponent = exponent_as::<f64>(y)?;
                let (values, shape) =
                    broadcast_binary(base, &x.shape, &exponent, &y.shape, f64::powf)?;
                (TensorData::F64(values), shape)
            }
            TensorData::I64(base) => {
                // ONNX Runtime raises integers with `std::pow` in double
                // precision and casts back.
                let exponent = exponent_as::<f64>(y)?;
                let dtype = self.dtype;
                let (values, shape) =
                    broadcast_binary(base, &x.shape, &exponent, &y.shape, |b, e| {
                        wrap_integer(dtype, (b as f64).powf(e) as i64)
                    })?;
                (TensorData::I64(values), shape)
            }
            _ => return Err(storage_error("numeric", x)),
        };
        Ok(vec![tensor(self.dtype, shape, data)])
    }
}

pub(crate) fn lower_pow(ctx: &NodeContext<'_>) -> Result<Lowered> {
    ctx.expect_inputs(2..=2)?;
    let dtype = ctx.expect_type(0, NUMERIC)?;
    ctx.expect_type(1, NUMERIC)?;
    Ok(Lowered::kernel(Pow { dtype }, vec![dtype]))
}

// --- variadic: Max, Min, Sum, Mean -------------------------------------------------

#[derive(Debug, Clone, Copy)]
enum Variadic {
    Max,
    Min,
    Sum,
    Mean,
}

struct VariadicKernel {
    op: Variadic,
    dtype: DataType,
}

fn fold_floats<T: Float>(op: Variadic, operands: &[&Tensor]) -> Result<(Vec<T>, Vec<usize>)> {
    let first = operands[0];
    let mut acc = T::slice(&first.data)
        .ok_or_else(|| storage_error("float", first))?
        .to_vec();
    let mut shape = first.shape.clone();
    for operand in &operands[1..] {
        let values = T::slice(&operand.data).ok_or_else(|| storage_error("float", operand))?;
        let combined = match op {
            // NaN wins, as with ONNX Runtime's Eigen-based Max and Min.
            Variadic::Max => broadcast_binary(&acc, &shape, values, &operand.shape, |a, b| {
                if a.is_nan() || a >= b {
                    a
                } else {
                    b
                }
            })?,
            Variadic::Min => broadcast_binary(&acc, &shape, values, &operand.shape, |a, b| {
                if a.is_nan() || a <= b {
                    a
                } else {
                    b
                }
            })?,
            Variadic::Sum | Variadic::Mean => {
                broadcast_binary(&acc, &shape, values, &operand.shape, |a, b| a + b)?
            }
        };
        (acc, shape) = combined;
    }
    if let Variadic::Mean = op {
        let count = T::from_i64(operands.len() as i64);
        for value in &mut acc {
            *value = *value / count;
        }
    }
    Ok((acc, shape))
}

impl Kernel for VariadicKernel {
    fn run(&self, inputs: &[Option<&Tensor>]) -> Result<Vec<Tensor>> {
        let operands: Vec<&Tensor> = inputs.iter().flatten().copied().collect();
        if operands.is_empty() {
            return Err(Error::invalid("no inputs"));
        }
        let (data, shape) = match &operands[0].data {
            TensorData::F32(_) => {
                let (values, shape) = fold_floats::<f32>(self.op, &operands)?;
                (TensorData::F32(values), shape)
            }
            TensorData::F64(_) => {
                let (values, shape) = fold_floats::<f64>(self.op, &operands)?;
                (TensorData::F64(values), shape)
            }
            TensorData::I64(first) => {
                let mut acc = first.clone();
                let mut shape = operands[0].shape.clone();
                for operand in &operands[1..] {
                    let TensorData::I64(values) = &operand.data else {
                        return Err(storage_error("integer", operand));
                    };
                    (acc, shape) = match self.op {
                        Variadic::Max => {
                            broadcast_binary(&acc, &shape, values, &operand.shape, i64::max)?
                        }
                        Variadic::Min => {
                            broadcast_binary(&acc, &shape, values, &operand.shape, i64::min)?
                        }
                        Variadic::Sum | Variadic::Mean => broadcast_binary(
                            &acc,
                            &shape,
                            values,
                            &operand.shape,
                            i64::wrapping_add,
                        )?,
                    };
                }
                if let Variadic::Mean = self.op {
                    let count = operands.len() as i64;
                    acc.iter_mut().for_each(|v| *v /= count);
                }
                let dtype = self.dtype;
                (
                    TensorData::I64(acc.into_iter().map(|v| wrap_integer(dtype, v)).collect()),
                    shape,
                )
            }
            _ => return Err(storage_error("numeric", operands[0])),
        };
        Ok(vec![tensor(self.dtype, shape, data)])
    }
}

fn lower_variadic(ctx: &NodeContext<'_>, op: Variadic, allowed: &[DataType]) -> Result<Lowered> {
    if ctx.n_inputs() == 0 {
        return Err(Error::invalid(format!(
            "{} needs at least one input",
            ctx.op_type
        )));
    }
    let dtype = ctx.expect_type(0, allowed)?;
    for index in 1..ctx.n_inputs() {
        if ctx.input_type(index)? != dtype {
            return Err(Error::invalid(format!(
                "the inputs of {} differ in type",
                ctx.op_type
            )));
        }
    }
    Ok(Lowered::kernel(VariadicKernel { op, dtype }, vec![dtype]))
}

pub(crate) fn lower_max(ctx: &NodeContext<'_>) -> Result<Lowered> {
    lower_variadic(ctx, Variadic::Max, NUMERIC)
}

pub(crate) fn lower_min(ctx: &NodeContext<'_>) -> Result<Lowered> {
    lower_variadic(ctx, Variadic::Min, NUMERIC)
}

pub(crate) fn lower_sum(ctx: &NodeContext<'_>) -> Result<Lowered> {
    lower_variadic(ctx, Variadic::Sum, FLOATS)
}

pub(crate) fn lower_mean(ctx: &NodeContext<'_>) -> Result<Lowered> {
    lower_variadic(ctx, Variadic::Mean, FLOATS)
}

// --- unary --------------------------------------------------------------------------

#[derive(Debug, Clone, Copy)]
enum Unary {
    Relu,
    LeakyRelu { alpha: f32 },
    Sigmoid,
    HardSigmoid { alpha: f32, beta: f32 },
    Tanh,
    Exp,
    Log,
    Abs,
    Neg,
    Sqrt,
    Reciprocal,
    Floor,
    Ceil,
    Round,
    Sign,
    Erf,
    Softplus,
    Elu { alpha: f32 },
    Selu { alpha: f32, gamma: f32 },
    Gelu { tanh_approximation: bool },
}

impl Unary {
    #[inline(always)]
    fn apply<T: Float>(self, x: T) -> T {
        let param = |p: f32| T::from_f64(p as f64);
        match self {
            Unary::Relu => {
                if x > T::ZERO || x.is_nan() {
                    x
                } else {
                    T::ZERO
                }
            }
            Unary::LeakyRelu { alpha } => {
                if x >= T::ZERO {
                    x
                } else {
                    param(alpha) * x
                }
            }
            Unary::Sigmoid => T::ONE / (T::ONE + (-x).exp()),
            Unary::HardSigmoid { alpha, beta } => {
                let y = param(alpha) * x + param(beta);
                if y < T::ZERO {
                    T::ZERO
                } else if y > T::ONE {
                    T::ONE
                } else {
                    y
                }
            }
            Unary::Tanh => x.tanh(),
            Unary::Exp => x.exp(),
            Unary::Log => x.ln(),
            Unary::Abs => x.abs(),
            Unary::Neg => -x,
            Unary::Sqrt => x.sqrt(),
            Unary::Reciprocal => T::ONE / x,
            Unary::Floor => x.floor(),
            Unary::Ceil => x.ceil(),
            // ONNX's Round rounds halves to even, like numpy.
            Unary::Round => x.round_ties_even(),
            Unary::Sign => {
                if x > T::ZERO {
                    T::ONE
                } else if x < T::ZERO {
                    -T::ONE
                } else {
                    x
                }
            }
            Unary::Erf => x.erf(),
            Unary::Softplus => (x.exp() + T::ONE).ln(),
            Unary::Elu { alpha } => {
                if x >= T::ZERO {
                    x
                } else {
                    param(alpha) * (x.exp() - T::ONE)
                }
            }
            Unary::Selu { alpha, gamma } => {
                if x > T::ZERO {
                    param(gamma) * x
                } else {
                    param(gamma) * (param(alpha) * x.exp() - param(alpha))
                }
            }
            Unary::Gelu {
                tanh_approximation: false,
            } => {
                let half = T::from_f64(0.5);
                half * x * (T::ONE + (x * T::from_f64(std::f64::consts::FRAC_1_SQRT_2)).erf())
            }
            Unary::Gelu {
                tanh_approximation: true,
            } => {
                let half = T::from_f64(0.5);
                let inner = T::from_f64((2.0 / std::f64::consts::PI).sqrt())
                    * (x + T::from_f64(0.044715) * x * x * x);
                half * x * (T::ONE + inner.tanh())
            }
        }
    }

    /// The operators that also take integers.
    fn apply_integer(self, x: i64) -> Option<i64> {
        Some(match self {
            Unary::Relu => x.max(0),
            Unary::Abs => x.wrapping_abs(),
            Unary::Neg => x.wrapping_neg(),
            Unary::Sign => x.signum(),
            _ => return None,
        })
    }
}

struct UnaryKernel {
    op: Unary,
    dtype: DataType,
}

impl Kernel for UnaryKernel {
    fn run(&self, inputs: &[Option<&Tensor>]) -> Result<Vec<Tensor>> {
        let x = required(inputs, 0)?;
        let op = self.op;
        let data = match &x.data {
            TensorData::F32(v) => TensorData::F32(v.iter().map(|&e| op.apply(e)).collect()),
            TensorData::F64(v) => TensorData::F64(v.iter().map(|&e| op.apply(e)).collect()),
            TensorData::I64(v) => {
                let dtype = self.dtype;
                TensorData::I64(
                    v.iter()
                        .map(|&e| op.apply_integer(e).map(|r| wrap_integer(dtype, r)))
                        .collect::<Option<_>>()
                        .ok_or_else(|| storage_error("float", x))?,
                )
            }
            _ => return Err(storage_error("numeric", x)),
        };
        Ok(vec![tensor(self.dtype, x.shape.clone(), data)])
    }
}

fn lower_unary(ctx: &NodeContext<'_>, op: Unary) -> Result<Lowered> {
    ctx.expect_inputs(1..=1)?;
    let takes_integers = op.apply_integer(0).is_some();
    let dtype = ctx.expect_type(0, if takes_integers { NUMERIC } else { FLOATS })?;
    Ok(Lowered::kernel(UnaryKernel { op, dtype }, vec![dtype]))
}

pub(crate) fn lower_relu(ctx: &NodeContext<'_>) -> Result<Lowered> {
    lower_unary(ctx, Unary::Relu)
}

pub(crate) fn lower_leaky_relu(ctx: &NodeContext<'_>) -> Result<Lowered> {
    lower_unary(
        ctx,
        Unary::LeakyRelu {
            alpha: ctx.float_or("alpha", 0.01)?,
        },
    )
}

pub(crate) fn lower_sigmoid(ctx: &NodeContext<'_>) -> Result<Lowered> {
    lower_unary(ctx, Unary::Sigmoid)
}

pub(crate) fn lower_hard_sigmoid(ctx: &NodeContext<'_>) -> Result<Lowered> {
    lower_unary(
        ctx,
        Unary::HardSigmoid {
            alpha: ctx.float_or("alpha", 0.2)?,
            beta: ctx.float_or("beta", 0.5)?,
        },
    )
}

pub(crate) fn lower_tanh(ctx: &NodeContext<'_>) -> Result<Lowered> {
    lower_unary(ctx, Unary::Tanh)
}

pub(crate) fn lower_exp(ctx: &NodeContext<'_>) -> Result<Lowered> {
    lower_unary(ctx, Unary::Exp)
}

pub(crate) fn lower_log(ctx: &NodeContext<'_>) -> Result<Lowered> {
    lower_unary(ctx, Unary::Log)
}

pub(crate) fn lower_abs(ctx: &NodeContext<'_>) -> Result<Lowered> {
    lower_unary(ctx, Unary::Abs)
}

pub(crate) fn lower_neg(ctx: &NodeContext<'_>) -> Result<Lowered> {
    lower_unary(ctx, Unary::Neg)
}

pub(crate) fn lower_sqrt(ctx: &NodeContext<'_>) -> Result<Lowered> {
    lower_unary(ctx, Unary::Sqrt)
}

pub(crate) fn lower_reciprocal(ctx: &NodeContext<'_>) -> Result<Lowered> {
    lower_unary(ctx, Unary::Reciprocal)
}

pub(crate) fn lower_floor(ctx: &NodeContext<'_>) -> Result<Lowered> {
    lower_unary(ctx, Unary::Floor)
}

pub(crate) fn lower_ceil(ctx: &NodeContext<'_>) -> Result<Lowered> {
    lower_unary(ctx, Unary::Ceil)
}

pub(crate) fn lower_round(ctx: &NodeContext<'_>) -> Result<Lowered> {
    lower_unary(ctx, Unary::Round)
}

pub(crate) fn lower_sign(ctx: &NodeContext<'_>) -> Result<Lowered> {
    lower_unary(ctx, Unary::Sign)
}

pub(crate) fn lower_erf(ctx: &NodeContext<'_>) -> Result<Lowered> {
    lower_unary(ctx, Unary::Erf)
}

pub(crate) fn lower_softplus(ctx: &NodeContext<'_>) -> Result<Lowered> {
    lower_unary(ctx, Unary::Softplus)
}

pub(crate) fn lower_elu(ctx: &NodeContext<'_>) -> Result<Lowered> {
    lower_unary(
        ctx,
        Unary::Elu {
            alpha: ctx.float_or("alpha", 1.0)?,
        },
    )
}

pub(crate) fn lower_selu(ctx: &NodeContext<'_>) -> Result<Lowered> {
    // The defaults are the constants of the SELU paper, as the spec gives
    // them in single precision.
    lower_unary(
        ctx,
        Unary::Selu {
            alpha: ctx.float_or("alpha", 1.673_263_2)?,
            gamma: ctx.float_or("gamma", 1.050_701)?,
        },
    )
}

pub(crate) fn lower_gelu(ctx: &NodeContext<'_>) -> Result<Lowered> {
    let tanh_approximation = match ctx.string_or("approximate", "none")?.as_str() {
        "none" => false,
        "tanh" => true,
        other => return Err(Error::invalid(format!("Gelu approximation '{other}'"))),
    };
    lower_unary(ctx, Unary::Gelu { tanh_approximation })
}

// --- Clip ---------------------------------------------------------------------------

/// `Clip`: bounds are attributes before opset 11 and optional scalar
/// inputs since.
struct Clip {
    dtype: DataType,
    attribute_bounds: Option<(f32, f32)>,
}

fn bound_f64(t: Option<&Tensor>) -> Result<Option<f64>> {
    let Some(t) = t else { return Ok(None) };
    if t.len() != 1 {
        return Err(Error::input(format!(
            "Clip bounds must be scalars, got shape {:?}",
            t.shape
        )));
    }
    Ok(t.data.get_f64(0))
}

fn bound_i64(t: Option<&Tensor>) -> Result<Option<i64>> {
    let Some(t) = t else { return Ok(None) };
    match &t.data {
        TensorData::I64(v) if v.len() == 1 => Ok(Some(v[0])),
        _ => Err(Error::input(format!(
            "Clip bounds must be scalars, got shape {:?}",
            t.shape
        ))),
    }
}

fn clip_floats<T: Float>(values: &[T], low: Option<f64>, high: Option<f64>) -> Vec<T> {
    let low = low.map_or(T::NEG_INFINITY, T::from_f64);
    let high = high.map_or(T::INFINITY, T::from_f64);
    values
        .iter()
        .map(|&x| {
            let x = if x < low { low } else { x };
            if x > high {
                high
            } else {
                x
            }
        })
        .collect()
}

impl Kernel for Clip {
    fn run(&self, inputs: &[Option<&Tensor>]) -> Result<Vec<Tensor>> {
        let x = required(inputs, 0)?;
        let (low_tensor, high_tensor) = (
            inputs.get(1).copied().flatten(),
            inputs.get(2).copied().flatten(),
        );
        let data = match &x.data {
            TensorData::F32(v) => {
                let (low, high) = match self.attribute_bounds {
                    Some((low, high)) => (Some(low as f64), Some(high as f64)),
                    None => (bound_f64(low_tensor)?, bound_f64(high_tensor)?),
                };
                TensorData::F32(clip_floats(v, low, high))
            }
            TensorData::F64(v) => {
                let (low, high) = match self.attribute_bounds {
                    Some((low, high)) => (Some(low as f64), Some(high as f64)),
                    None => (bound_f64(low_tensor)?, bound_f64(high_tensor)?),
                };
                TensorData::F64(clip_floats(v, low, high))
            }
            TensorData::I64(v) => {
                let low = bound_i64(low_tensor)?.unwrap_or(i64::MIN);
                let high = bound_i64(high_tensor)?.unwrap_or(i64::MAX);
                TensorData::I64(v.iter().map(|&e| e.max(low).min(high)).collect())
            }
            _ => return Err(storage_error("numeric", x)),
        };
        Ok(vec![tensor(self.dtype, x.shape.clone(), data)])
    }
}

pub(crate) fn lower_clip(ctx: &NodeContext<'_>) -> Result<Lowered> {
    ctx.expect_inputs(1..=3)?;
    let dtype = ctx.expect_type(0, NUMERIC)?;
    let attribute_bounds = if ctx.opset < 11 {
        Some((
            ctx.float_or("min", f32::MIN)?,
            ctx.float_or("max", f32::MAX)?,
        ))
    } else {
        None
    };
    if attribute_bounds.is_some() && !dtype.is_float() {
        return Err(Error::invalid("Clip before opset 11 takes floats"));
    }
    Ok(Lowered::kernel(
        Clip {
            dtype,
            attribute_bounds,
        },
        vec![dtype],
    ))
}

// --- IsNaN ----------------------------------------------------------------------------

struct IsNan;

impl Kernel for IsNan {
    fn run(&self, inputs: &[Option<&Tensor>]) -> Result<Vec<Tensor>> {
        let x = required(inputs, 0)?;
        let flags = match &x.data {
            TensorData::F32(v) => v.iter().map(|e| e.is_nan()).collect(),
            TensorData::F64(v) => v.iter().map(|e| e.is_nan()).collect(),
            _ => return Err(storage_error("float", x)),
        };
        Ok(vec![tensor(
            DataType::Bool,
            x.shape.clone(),
            TensorData::Bool(flags),
        )])
    }
}

pub(crate) fn lower_is_nan(ctx: &NodeContext<'_>) -> Result<Lowered> {
    ctx.expect_inputs(1..=1)?;
    ctx.expect_type(0, FLOATS)?;
    Ok(Lowered::kernel(IsNan, vec![DataType::Bool]))
}

// --- comparisons ----------------------------------------------------------------------

#[derive(Debug, Clone, Copy)]
enum Comparison {
    Equal,
    Less,
    Greater,
    LessOrEqual,
    GreaterOrEqual,
}

impl Comparison {
    #[inline(always)]
    fn test<T: PartialOrd>(self, a: &T, b: &T) -> bool {
        match self {
            Comparison::Equal => a == b,
            Comparison::Less => a < b,
            Comparison::Greater => a > b,
            Comparison::LessOrEqual => a <= b,
            Comparison::GreaterOrEqual => a >= b,
        }
    }
}

struct Compare {
    op: Comparison,
}

impl Kernel for Compare {
    fn run(&self, inputs: &[Option<&Tensor>]) -> Result<Vec<Tensor>> {
        let a = required(inputs, 0)?;
        let b = required(inputs, 1)?;
        let op = self.op;
        let (flags, shape) = match (&a.data, &b.data) {
            (TensorData::F32(x), TensorData::F32(y)) => {
                broadcast_binary(x, &a.shape, y, &b.shape, |p, q| op.test(&p, &q))?
            }
            (TensorData::F64(x), TensorData::F64(y)) => {
                broadcast_binary(x, &a.shape, y, &b.shape, |p, q| op.test(&p, &q))?
            }
            (TensorData::I64(x), TensorData::I64(y)) => {
                broadcast_binary(x, &a.shape, y, &b.shape, |p, q| op.test(&p, &q))?
            }
            (TensorData::Bool(x), TensorData::Bool(y)) => {
                broadcast_binary(x, &a.shape, y, &b.shape, |p, q| op.test(&p, &q))?
            }
            (TensorData::Str(x), TensorData::Str(y)) => {
                let xi: Vec<usize> = (0..x.len()).collect();
                let yi: Vec<usize> = (0..y.len()).collect();
                broadcast_binary(&xi, &a.shape, &yi, &b.shape, |p, q| op.test(&x[p], &y[q]))?
            }
            _ => return Err(storage_error(&a.dtype.to_string(), b)),
        };
        Ok(vec![tensor(DataType::Bool, shape, TensorData::Bool(flags))])
    }
}

fn lower_comparison(ctx: &NodeContext<'_>, op: Comparison) -> Result<Lowered> {
    let allowed: &[DataType] = match op {
        Comparison::Equal => ALL_TYPES,
        _ => NUMERIC,
    };
    same_types(ctx, allowed)?;
    Ok(Lowered::kernel(Compare { op }, vec![DataType::Bool]))
}

pub(crate) fn lower_equal(ctx: &NodeContext<'_>) -> Result<Lowered> {
    lower_comparison(ctx, Comparison::Equal)
}

pub(crate) fn lower_less(ctx: &NodeContext<'_>) -> Result<Lowered> {
    lower_comparison(ctx, Comparison::Less)
}

pub(crate) fn lower_greater(ctx: &NodeContext<'_>) -> Result<Lowered> {
    lower_comparison(ctx, Comparison::Greater)
}

pub(crate) fn lower_less_or_equal(ctx: &NodeContext<'_>) -> Result<Lowered> {
    lower_comparison(ctx, Comparison::LessOrEqual)
}

pub(crate) fn lower_greater_or_equal(ctx: &NodeContext<'_>) -> Result<Lowered> {
    lower_comparison(ctx, Comparison::GreaterOrEqual)
}

// --- logic ------------------------------------------------------------------------------

struct Not;

impl Kernel for Not {
    fn run(&self, inputs: &[Option<&Tensor>]) -> Result<Vec<Tensor>> {
        let x = required(inputs, 0)?;
        let flags = as_bool(x)?.iter().map(|b| !b).collect();
        Ok(vec![tensor(
            DataType::Bool,
            x.shape.clone(),
            TensorData::Bool(flags),
        )])
    }
}

pub(crate) fn lower_not(ctx: &NodeContext<'_>) -> Result<Lowered> {
    ctx.expect_inputs(1..=1)?;
    ctx.expect_type(0, &[DataType::Bool])?;
    Ok(Lowered::kernel(Not, vec![DataType::Bool]))
}

#[derive(Debug, Clone, Copy)]
enum Logic {
    And,
    Or,
    Xor,
}

struct LogicKernel {
    op: Logic,
}

impl Kernel for LogicKernel {
    fn run(&self, inputs: &[Option<&Tensor>]) -> Result<Vec<Tensor>> {
        let a = required(inputs, 0)?;
        let b = required(inputs, 1)?;
        let (x, y) = (as_bool(a)?, as_bool(b)?);
        let (flags, shape) = match self.op {
            Logic::And => broadcast_binary(x, &a.shape, y, &b.shape, |p, q| p & q)?,
            Logic::Or => broadcast_binary(x, &a.shape, y, &b.shape, |p, q| p | q)?,
            Logic::Xor => broadcast_binary(x, &a.shape, y, &b.shape, |p, q| p ^ q)?,
        };
        Ok(vec![tensor(DataType::Bool, shape, TensorData::Bool(flags))])
    }
}

fn lower_logic(ctx: &NodeContext<'_>, op: Logic) -> Result<Lowered> {
    same_types(ctx, &[DataType::Bool])?;
    Ok(Lowered::kernel(LogicKernel { op }, vec![DataType::Bool]))
}

pub(crate) fn lower_and(ctx: &NodeContext<'_>) -> Result<Lowered> {
    lower_logic(ctx, Logic::And)
}

pub(crate) fn lower_or(ctx: &NodeContext<'_>) -> Result<Lowered> {
    lower_logic(ctx, Logic::Or)
}

pub(crate) fn lower_xor(ctx: &NodeContext<'_>) -> Result<Lowered> {
    lower_logic(ctx, Logic::Xor)
}

// --- Where ------------------------------------------------------------------------------

struct Where {
    dtype: DataType,
}

fn select<T: Clone>(
    condition: &[bool],
    strides: [&[usize]; 3],
    shape: &[usize],
    x: &[T],
    y: &[T],
) -> Vec<T> {
    let mut values = Vec::with_capacity(shape.iter().product());
    for_each_broadcast(shape, strides, |[c, i, j]| {
        values.push(if condition[c] {
            x[i].clone()
        } else {
            y[j].clone()
        })
    });
    values
}

impl Kernel for Where {
    fn run(&self, inputs: &[Option<&Tensor>]) -> Result<Vec<Tensor>> {
        let condition = required(inputs, 0)?;
        let x = required(inputs, 1)?;
        let y = required(inputs, 2)?;
        let flags = as_bool(condition)?;
        let shape = broadcast_shapes(&[&condition.shape, &x.shape, &y.shape])?;
        let strides_c = broadcast_strides(&condition.shape, &shape);
        let strides_x = broadcast_strides(&x.shape, &shape);
        let strides_y = broadcast_strides(&y.shape, &shape);
        let strides = [&strides_c[..], &strides_x[..], &strides_y[..]];
        let data = match (&x.data, &y.data) {
            (TensorData::F32(a), TensorData::F32(b)) => {
                TensorData::F32(select(flags, strides, &shape, a, b))
            }
            (TensorData::F64(a), TensorData::F64(b)) => {
                TensorData::F64(select(flags, strides, &shape, a, b))
            }
            (TensorData::I64(a), TensorData::I64(b)) => {
                TensorData::I64(select(flags, strides, &shape, a, b))
            }
            (TensorData::Bool(a), TensorData::Bool(b)) => {
                TensorData::Bool(select(flags, strides, &shape, a, b))
            }
            (TensorData::Str(a), TensorData::Str(b)) => {
                TensorData::Str(select(flags, strides, &shape, a, b))
            }
            _ => return Err(storage_error(&x.dtype.to_string(), y)),
        };
        Ok(vec![tensor(self.dtype, shape, data)])
    }
}

pub(crate) fn lower_where(ctx: &NodeContext<'_>) -> Result<Lowered> {
    ctx.expect_inputs(3..=3)?;
    ctx.expect_type(0, &[DataType::Bool])?;
    let dtype = ctx.input_type(1)?;
    if ctx.input_type(2)? != dtype {
        return Err(Error::invalid("Where takes X and Y of one type"));
    }
    Ok(Lowered::kernel(Where { dtype }, vec![dtype]))
}

// --- Cast ---------------------------------------------------------------------------------

struct Cast {
    to: DataType,
}

/// Converts `x` to `to`, as ONNX Runtime's `Cast` does: floats to
/// integers truncate toward zero (Rust's `as` also saturates out-of-range
/// values and maps NaN to 0, where C leaves them undefined), integers wrap
/// to narrower types, anything numeric to BOOL is `!= 0`, strings parse as
/// numbers.
pub(crate) fn cast(x: &Tensor, to: DataType) -> Result<Tensor> {
    if x.dtype == to {
        return Ok(x.clone());
    }
    let data = match (&x.data, empty_data(to)) {
        (TensorData::F32(v), TensorData::F32(_)) => TensorData::F32(v.clone()),
        (TensorData::F32(v), TensorData::F64(_)) => {
            TensorData::F64(v.iter().map(|&e| e as f64).collect())
        }
        (TensorData::F64(v), TensorData::F32(_)) => {
            TensorData::F32(v.iter().map(|&e| e as f32).collect())
        }
        (TensorData::F64(v), TensorData::F64(_)) => TensorData::F64(v.clone()),
        (TensorData::F32(v), TensorData::I64(_)) => {
            TensorData::I64(v.iter().map(|&e| float_to_integer(to, e as f64)).collect())
        }
        (TensorData::F64(v), TensorData::I64(_)) => {
            TensorData::I64(v.iter().map(|&e| float_to_integer(to, e)).collect())
        }
        (TensorData::I64(v), TensorData::F32(_)) => {
            TensorData::F32(v.iter().map(|&e| e as f32).collect())
        }
        (TensorData::I64(v), TensorData::F64(_)) => {
            TensorData::F64(v.iter().map(|&e| e as f64).collect())
        }
        (TensorData::I64(v), TensorData::I64(_)) => {
            TensorData::I64(v.iter().map(|&e| wrap_integer(to, e)).collect())
        }
        (TensorData::F32(v), TensorData::Bool(_)) => {
            TensorData::Bool(v.iter().map(|&e| e != 0.0).collect())
        }
        (TensorData::F64(v), TensorData::Bool(_)) => {
            TensorData::Bool(v.iter().map(|&e| e != 0.0).collect())
        }
        (TensorData::I64(v), TensorData::Bool(_)) => {
            TensorData::Bool(v.iter().map(|&e| e != 0).collect())
        }
        (TensorData::Bool(v), TensorData::Bool(_)) => TensorData::Bool(v.clone()),
        (TensorData::Bool(v), TensorData::F32(_)) => {
            TensorData::F32(v.iter().map(|&e| f32::from(u8::from(e))).collect())
        }
        (TensorData::Bool(v), TensorData::F64(_)) => {
            TensorData::F64(v.iter().map(|&e| f64::from(u8::from(e))).collect())
        }
        (TensorData::Bool(v), TensorData::I64(_)) => {
            TensorData::I64(v.iter().map(|&e| i64::from(e)).collect())
        }
        (TensorData::I64(v), TensorData::Str(_)) => {
            TensorData::Str(v.iter().map(|e| e.to_string()).collect())
        }
        (TensorData::Str(v), TensorData::Str(_)) => TensorData::Str(v.clone()),
        (TensorData::Str(v), TensorData::F32(_)) => TensorData::F32(
            v.iter()
                .map(|s| parse_float(s).map(|f| f as f32))
                .collect::<Result<_>>()?,
        ),
        (TensorData::Str(v), TensorData::F64(_)) => {
            TensorData::F64(v.iter().map(|s| parse_float(s)).collect::<Result<_>>()?)
        }
        (TensorData::Str(v), TensorData::I64(_)) => TensorData::I64(
            v.iter()
                .map(|s| {
                    s.trim()
                        .parse::<i64>()
                        .map(|i| wrap_integer(to, i))
                        .map_err(|_| Error::input(format!("cannot cast '{s}' to {to}")))
                })
                .collect::<Result<_>>()?,
        ),
        _ => {
            return Err(Error::unsupported(format!(
                "casting {} to {to} is not supported",
                x.dtype
            )))
        }
    };
    Ok(tensor(to, x.shape.clone(), data))
}

fn float_to_integer(to: DataType, value: f64) -> i64 {
    match to {
        DataType::U64 => value as u64 as i64,
        _ => wrap_integer(to, value as i64),
    }
}

/// Numbers as C's `strtod` reads them, including `nan`, `inf` and
/// `infinity` in any case.
fn parse_float(text: &str) -> Result<f64> {
    let trimmed = text.trim();
    trimmed
        .parse::<f64>()
        .or_else(
            |_| match trimmed.to_ascii_lowercase().trim_start_matches(['+', '-']) {
                "nan" => Ok(f64::NAN),
                "inf" | "infinity" if trimmed.starts_with('-') => Ok(f64::NEG_INFINITY),
                "inf" | "infinity" => Ok(f64::INFINITY),
                _ => Err(()),
            },
        )
        .map_err(|_| Error::input(format!("cannot cast '{text}' to a number")))
}

impl Kernel for Cast {
    fn run(&self, inputs: &[Option<&Tensor>]) -> Result<Vec<Tensor>> {
        Ok(vec![cast(required(inputs, 0)?, self.to)?])
    }
}

/// Whether `cast` converts `from` to `to` (checked at load time, so that an
/// unsupported cast is reported before any call).
fn castable(from: DataType, to: DataType) -> bool {
    let supported = |t: DataType| t != DataType::F16;
    if !supported(from) || !supported(to) {
        return false;
    }
    match (from, to) {
        // Number formatting differs between libraries; only integers have
        // one obvious spelling.
        (f, DataType::Bytes) => f == DataType::Bytes || f.is_integer(),
        (DataType::Bytes, t) => t.is_float() || t.is_integer() || t == DataType::Bytes,
        _ => true,
    }
}

fn lower_cast_to(ctx: &NodeContext<'_>, to: DataType) -> Result<Lowered> {
    let from = ctx.input_type(0)?;
    if !castable(from, to) {
        return Err(Error::unsupported(format!(
            "casting {from} to {to} is not supported"
        )));
    }
    Ok(Lowered::kernel(Cast { to }, vec![to]))
}

pub(crate) fn lower_cast(ctx: &NodeContext<'_>) -> Result<Lowered> {
    ctx.expect_inputs(1..=1)?;
    let code = ctx
        .int("to")?
        .ok_or_else(|| Error::invalid("Cast needs the attribute 'to'"))?;
    let to = crate::onnx::value::data_type_from_onnx(code as i32)?;
    lower_cast_to(ctx, to)
}

pub(crate) fn lower_cast_like(ctx: &NodeContext<'_>) -> Result<Lowered> {
    ctx.expect_inputs(2..=2)?;
    let to = ctx.input_type(1)?;
    lower_cast_to(ctx, to)
}
