//! Reductions (`Reduce*`, `ArgMax`, `ArgMin`, `TopK`) and the softmax
//! family.
//!
//! `axes` is an attribute before opset 13 (ReduceSum) or 18 (the other
//! reductions) and an optional input since; an empty or absent `axes`
//! reduces every axis unless `noop_with_empty_axes` is set. `Softmax` and
//! `LogSoftmax` before opset 13 flatten the input to 2-D at `axis`
//! (default 1) and normalise each row; since opset 13 they normalise along
//! the one axis (default -1).

use crate::error::{Error, Result};
use crate::onnx::broadcast::{
    broadcast_strides, for_each_broadcast, normalize_axis, split_at_axis,
};
use crate::onnx::ops::numeric::Float;
use crate::onnx::ops::{
    int_list, int_scalar, required, storage_error, tensor, Kernel, Lowered, NodeContext, FLOATS,
    NUMERIC,
};
use crate::onnx::value::wrap_integer;
use crate::tensor::{DataType, Tensor, TensorData};

#[derive(Debug, Clone, Copy, PartialEq)]
enum Reduction {
    Sum,
    Mean,
    Max,
    Min,
    Prod,
    SumSquare,
    LogSumExp,
    LogSum,
    L1,
    L2,
}

struct Reduce {
    op: Reduction,
    dtype: DataType,
    /// `Some` when `axes` is an attribute of this opset's version.
    axes_attribute: Option<Option<Vec<i64>>>,
    keep_dims: bool,
    noop_with_empty_axes: bool,
}

/// Which axes to reduce, and the output shape with reduced axes kept as 1.
fn reduced_shape(shape: &[usize], axes: &[i64]) -> Result<(Vec<bool>, Vec<usize>)> {
    let rank = shape.len();
    let mut reduced = vec![axes.is_empty(); rank];
    for &axis in axes {
        reduced[normalize_axis(axis, rank)?] = true;
    }
    let kept = shape
        .iter()
        .zip(&reduced)
        .map(|(&d, &r)| if r { 1 } else { d })
        .collect();
    Ok((reduced, kept))
}

fn reduce_floats<T: Float>(op: Reduction, x: &[T], shape: &[usize], kept: &[usize]) -> Vec<T> {
    let n_out: usize = kept.iter().product();
    let strides = broadcast_strides(kept, shape);
    let count = x.len().checked_div(n_out).unwrap_or(0);
    let initial = match op {
        Reduction::Max => T::NEG_INFINITY,
        Reduction::Min => T::INFINITY,
        Reduction::Prod => T::ONE,
        _ => T::ZERO,
    };
    let mut acc = vec![initial; n_out];
    let mut position = 0;
    match op {
        Reduction::LogSumExp => {
            let mut max = vec![T::NEG_INFINITY; n_out];
            for_each_broadcast(shape, [&strides], |[o]| {
                if x[position] > max[o] {
                    max[o] = x[position];
                }
                position += 1;
            });
            position = 0;
            for_each_broadcast(shape, [&strides], |[o]| {
                acc[o] = acc[o] + (x[position] - max[o]).exp();
                position += 1;
            });
            for (a, m) in acc.iter_mut().zip(&max) {
                *a = a.ln() + *m;
            }
            return acc;
        }
        _ => for_each_broadcast(shape, [&strides], |[o]| {
            let v = x[position];
            acc[o] = match op {
                Reduction::Sum | Reduction::Mean | Reduction::LogSum => acc[o] + v,
                Reduction::SumSquare | Reduction::L2 => acc[o] + v * v,
                Reduction::L1 => acc[o] + v.abs(),
                Reduction::Prod => acc[o] * v,
                Reduction::Max => {
                    if v > acc[o] || v.is_nan() {
                        v
                    } else {
                        acc[o]
                    }
                }
                Reduction::Min => {
                    if v < acc[o] || v.is_nan() {
                        v
                    } else {
                        acc[o]
                    }
                }
                Reduction::LogSumExp => unreachable!("handled above"),
            };
            position += 1;
        }),
    }
    match op {
        Reduction::Mean => {
            let divisor = T::from_i64(count as i64);
            acc.iter_mut().for_each(|a| *a = *a / divisor);
        }
        Reduction::LogSum => acc.iter_mut().for_each(|a| *a = a.ln()),
        Reduction::L2 => acc.iter_mut().for_each(|a| *a = a.sqrt()),
        _ => {}
    }
    acc
}

fn reduce_integers(
    op: Reduction,
    dtype: DataType,
    x: &[i64],
    shape: &[usize],
    kept: &[usize],
) -> Result<Vec<i64>> {
    let n_out: usize = kept.iter().product();
    let strides = broadcast_strides(kept, shape);
    let initial = match op {
        Reduction::Max => i64::MIN,
        Reduction::Min => i64::MAX,
        Reduction::Prod => 1,
        Reduction::Sum | Reduction::Mean | Reduction::SumSquare | Reduction::L1 => 0,
        _ => return Err(Error::unsupported(format!("{op:?} of integers"))),
    };
    let mut acc = vec![initial; n_out];
    let mut position = 0;
    for_each_broadcast(shape, [&strides], |[o]| {
        let v = x[position];
        acc[o] = match op {
            Reduction::Max => acc[o].max(v),
            Reduction::Min => acc[o].min(v),
            Reduction::Prod => acc[o].wrapping_mul(v),
            Reduction::SumSquare => acc[o].wrapping_add(v.wrapping_mul(v)),
            Reduction::L1 => acc[o].wrapping_add(v.wrapping_abs()),
            _ => acc[o].wrapping_add(v),
        };
        position += 1;
    });
    if op == Reduction::Mean && n_out > 0 {
        let count = (x.len() / n_out) as i64;
        if count > 0 {
            acc.iter_mut().for_each(|a| *a /= count);
        }
    }
    Ok(acc.into_iter().map(|v| wrap_integer(dtype, v)).collect())
}

impl Kernel for Reduce {
    fn run(&self, inputs: &[Option<&Tensor>]) -> Result<Vec<Tensor>> {
        let x = required(inputs, 0)?;
        let axes = match &self.axes_attribute {
            Some(axes) => axes.clone().unwrap_or_default(),
            None => inputs
                .get(1)
                .copied()
                .flatten()
                .map(int_list)
                .transpose()?
                .unwrap_or_default(),
        };
        if axes.is_empty() && self.noop_with_empty_axes {
            return Ok(vec![x.clone()]);
        }
        let (reduced, kept) = reduced_shape(&x.shape, &axes)?;
        let data = match &x.data {
            TensorData::F32(v) => TensorData::F32(reduce_floats(self.op, v, &x.shape, &kept)),
            TensorData::F64(v) => TensorData::F64(reduce_floats(self.op, v, &x.shape, &kept)),
            TensorData::I64(v) => {
                TensorData::I64(reduce_integers(self.op, self.dtype, v, &x.shape, &kept)?)
            }
            _ => return Err(storage_error("numeric", x)),
        };
        let shape = if self.keep_dims {
            kept
        } else {
            x.shape
                .iter()
                .zip(&reduced)
                .filter(|(_, &r)| !r)
                .map(|(&d, _)| d)
                .collect()
        };
        Ok(vec![tensor(self.dtype, shape, data)])
    }
}

fn lower_reduce(ctx: &NodeContext<'_>, op: Reduction, axes_input_since: i64) -> Result<Lowered> {
    ctx.expect_inputs(1..=2)?;
    let integers_allowed = matches!(
        op,
        Reduction::Sum
            | Reduction::Mean
            | Reduction::Max
            | Reduction::Min
            | Reduction::Prod
            | Reduction::SumSquare
            | Reduction::L1
    );
    let dtype = ctx.expect_type(0, if integers_allowed { NUMERIC } else { FLOATS })?;
    let axes_attribute = if ctx.opset < axes_input_since {
        Some(ctx.ints("axes")?)
    } else {
        None
    };
    Ok(Lowered::kernel(
        Reduce {
            op,
            dtype,
            axes_attribute,
            keep_dims: ctx.int_or("keepdims", 1)? != 0,
            noop_with_empty_axes: ctx.int_or("noop_with_empty_axes", 0)? != 0,
        },
        vec![dtype],
    ))
}

pub(crate) fn lower_reduce_sum(ctx: &NodeContext<'_>) -> Result<Lowered> {
    lower_reduce(ctx, Reduction::Sum, 13)
}

pub(crate) fn lower_reduce_mean(ctx: &NodeContext<'_>) -> Result<Lowered> {
    lower_reduce(ctx, Reduction::Mean, 18)
}

pub(crate) fn lower_reduce_max(ctx: &NodeContext<'_>) -> Result<Lowered> {
    lower_reduce(ctx, Reduction::Max, 18)
}

pub(crate) fn lower_reduce_min(ctx: &NodeContext<'_>) -> Result<Lowered> {
    lower_reduce(ctx, Reduction::Min, 18)
}

pub(crate) fn lower_reduce_prod(ctx: &NodeContext<'_>) -> Result<Lowered> {
    lower_reduce(ctx, Reduction::Prod, 18)
}

pub(crate) fn lower_reduce_sum_square(ctx: &NodeContext<'_>) -> Result<Lowered> {
    lower_reduce(ctx, Reduction::SumSquare, 18)
}

pub(crate) fn lower_reduce_log_sum_exp(ctx: &NodeContext<'_>) -> Result<Lowered> {
    lower_reduce(ctx, Reduction::LogSumExp, 18)
}

pub(crate) fn lower_reduce_log_sum(ctx: &NodeContext<'_>) -> Result<Lowered> {
    lower_reduce(ctx, Reduction::LogSum, 18)
}

pub(crate) fn lower_reduce_l1(ctx: &NodeContext<'_>) -> Result<Lowered> {
    lower_reduce(ctx, Reduction::L1, 18)
}

pub(crate) fn lower_reduce_l2(ctx: &NodeContext<'_>) -> Result<Lowered> {
    lower_reduce(ctx, Reduction::L2, 18)
}

// --- ArgMax, ArgMin ------------------------------------------------------------------------

struct ArgExtreme {
    largest: bool,
    axis: i64,
    keep_dims: bool,
    select_last_index: bool,
}

impl ArgExtreme {
    fn pick<T: PartialOrd + Copy>(
        &self,
        x: &[T],
        shape: &[usize],
    ) -> Result<(Vec<i64>, Vec<usize>)> {
        let axis = normalize_axis(self.axis, shape.len())?;
        let (outer, length, inner) = split_at_axis(shape, axis);
        if length == 0 {
            return Err(Error::input("ArgMax/ArgMin over an empty axis"));
        }
        let mut indices = Vec::with_capacity(outer * inner);
        for row in 0..outer {
            for column in 0..inner {
                let at = |k: usize| x[(row * length + k) * inner + column];
                let mut best = 0;
                for k in 1..length {
                    let better = if self.largest {
                        at(k) > at(best)
                    } else {
                        at(k) < at(best)
                    };
                    let tie = at(k) == at(best);
                    if better || (tie && self.select_last_index) {
                        best = k;
                    }
                }
                indices.push(best as i64);
            }
        }
        let mut out = shape.to_vec();
        if self.keep_dims {
            out[axis] = 1;
        } else {
            out.remove(axis);
        }
        Ok((indices, out))
    }
}

impl Kernel for ArgExtreme {
    fn run(&self, inputs: &[Option<&Tensor>]) -> Result<Vec<Tensor>> {
        let x = required(inputs, 0)?;
        let (indices, shape) = match &x.data {
            TensorData::F32(v) => self.pick(v, &x.shape)?,
            TensorData::F64(v) => self.pick(v, &x.shape)?,
            TensorData::I64(v) => self.pick(v, &x.shape)?,
            _ => return Err(storage_error("numeric", x)),
        };
        Ok(vec![tensor(DataType::I64, shape, TensorData::I64(indices))])
    }
}

fn lower_arg(ctx: &NodeContext<'_>, largest: bool) -> Result<Lowered> {
    ctx.expect_inputs(1..=1)?;
    ctx.expect_type(0, NUMERIC)?;
    Ok(Lowered::kernel(
        ArgExtreme {
            largest,
            axis: ctx.int_or("axis", 0)?,
            keep_dims: ctx.int_or("keepdims", 1)? != 0,
            select_last_index: ctx.int_or("select_last_index", 0)? != 0,
        },
        vec![DataType::I64],
    ))
}

pub(crate) fn lower_arg_max(ctx: &NodeContext<'_>) -> Result<Lowered> {
    lower_arg(ctx, true)
}

pub(crate) fn lower_arg_min(ctx: &NodeContext<'_>) -> Result<Lowered> {
    lower_arg(ctx, false)
}

// --- TopK -------------------------------------------------------------------------------------

/// `TopK`: the `k` largest (or smallest) values along `axis` and their
/// indices, sorted; equal values keep their original order (the lower
/// index first), as ONNX Runtime returns them.
struct TopK {
    k_attribute: Option<i64>,
    axis: i64,
    largest: bool,
    dtype: DataType,
}

impl TopK {
    fn select<T: PartialOrd + Copy>(
        &self,
        x: &[T],
        shape: &[usize],
        k: usize,
    ) -> Result<(Vec<T>, Vec<i64>, Vec<usize>)> {
        let axis = normalize_axis(self.axis, shape.len())?;
        let (outer, length, inner) = split_at_axis(shape, axis);
        if k > length {
            return Err(Error::input(format!(
                "TopK with k = {k} on an axis of length {length}"
            )));
        }
        let mut out_shape = shape.to_vec();
        out_shape[axis] = k;
        let total = outer * k * inner;
        let mut values = Vec::with_capacity(total);
        let mut indices = Vec::with_capacity(total);
        let mut order: Vec<usize> = Vec::with_capacity(length);
        // Output position (row, rank, column) holds the rank-th element of
        // the sorted run (row, ·, column).
        for row in 0..outer {
            let mut ranked: Vec<Vec<usize>> = Vec::with_capacity(inner);
            for column in 0..inner {
                let at = |j: usize| x[(row * length + j) * inner + column];
                order.clear();
                order.extend(0..length);
                // A stable sort keeps equal values in index order.
                order.sort_by(|&a, &b| {
                    let ordering = at(a)
                        .partial_cmp(&at(b))
                        .unwrap_or(std::cmp::Ordering::Equal);
                    if self.largest {
                        ordering.reverse()
                    } else {
                        ordering
                    }
                });
                ranked.push(order[..k].to_vec());
            }
            for rank in 0..k {
                for (column, best) in ranked.iter().enumerate() {
                    let j = best[rank];
                    values.push(x[(row * length + j) * inner + column]);
                    indices.push(j as i64);
                }
            }
        }
        Ok((values, indices, out_shape))
    }
}

impl Kernel for TopK {
    fn run(&self, inputs: &[Option<&Tensor>]) -> Result<Vec<Tensor>> {
        let x = required(inputs, 0)?;
        let k = match self.k_attribute {
            Some(k) => k,
            None => int_scalar(required(inputs, 1)?)?,
        };
        let k = usize::try_from(k).map_err(|_| Error::input(format!("TopK with k = {k}")))?;
        let (values, indices, shape) = match &x.data {
            TensorData::F32(v) => {
                let (values, indices, shape) = self.select(v, &x.shape, k)?;
                (TensorData::F32(values), indices, shape)
            }
            TensorData::F64(v) => {
                let (values, indices, shape) = self.select(v, &x.shape, k)?;
                (TensorData::F64(values), indices, shape)
            }
            TensorData::I64(v) => {
                let (values, indices, shape) = self.select(v, &x.shape, k)?;
                (TensorData::I64(values), indices, shape)
            }
            _ => return Err(storage_error("numeric", x)),
        };
        Ok(vec![
            tensor(self.dtype, shape.clone(), values),
            tensor(DataType::I64, shape, TensorData::I64(indices)),
        ])
    }
}

pub(crate) fn lower_top_k(ctx: &NodeContext<'_>) -> Result<Lowered> {
    let dtype = ctx.expect_type(0, NUMERIC)?;
    let k_attribute = if ctx.opset < 10 {
        ctx.expect_inputs(1..=1)?;
        Some(
            ctx.int("k")?
                .ok_or_else(|| Error::invalid("TopK needs the attribute 'k'"))?,
        )
    } else {
        ctx.expect_inputs(2..=2)?;
        None
    };
    Ok(Lowered::kernel(
        TopK {
            k_attribute,
            axis: ctx.int_or("axis", -1)?,
            largest: ctx.int_or("largest", 1)? != 0,
            dtype,
        },
        vec![dtype, DataType::I64],
    ))
}

// --- Softmax, LogSoftmax ----------------------------------------------------------------------

struct Softmax {
    axis: i64,
    /// Before opset 13: normalise the 2-D flattening at `axis`.
    coerce_to_2d: bool,
    log: bool,
    dtype: DataType,
}

/// Softmax (or log-softmax) of each run of `length` elements `stride`
/// apart, in place: `exp(x - max) / Σ exp(x - max)`.
pub(crate) fn softmax_in_place<T: Float>(
    values: &mut [T],
    outer: usize,
    length: usize,
    inner: usize,
    log: bool,
) {
    for row in 0..outer {
        for column in 0..inner {
            let index = |k: usize| (row * length + k) * inner + column;
            let mut max = T::NEG_INFINITY;
            for k in 0..length {
                if values[index(k)] > max {
                    max = values[index(k)];
                }
            }
            let mut sum = T::ZERO;
            for k in 0..length {
                let shifted = values[index(k)] - max;
                let e = shifted.exp();
                sum = sum + e;
                values[index(k)] = if log { shifted } else { e };
            }
            if log {
                let log_sum = sum.ln();
                for k in 0..length {
                    values[index(k)] = values[index(k)] - log_sum;
                }
            } else {
                for k in 0..length {
                    values[index(k)] = values[index(k)] / sum;
                }
            }
        }
    }
}

impl Kernel for Softmax {
    fn run(&self, inputs: &[Option<&Tensor>]) -> Result<Vec<Tensor>> {
        let x = required(inputs, 0)?;
        let rank = x.shape.len();
        let (outer, length, inner) = if self.coerce_to_2d {
            let axis = if self.axis == rank as i64 {
                rank
            } else {
                normalize_axis(self.axis, rank)?
            };
            (
                x.shape[..axis].iter().product(),
                x.shape[axis..].iter().product(),
                1,
            )
        } else {
            split_at_axis(&x.shape, normalize_axis(self.axis, rank)?)
        };
        let data = match &x.data {
            TensorData::F32(v) => {
                let mut values = v.clone();
                softmax_in_place(&mut values, outer, length, inner, self.log);
                TensorData::F32(values)
            }
            TensorData::F64(v) => {
                let mut values = v.clone();
                softmax_in_place(&mut values, outer, length, inner, self.log);
                TensorData::F64(values)
            }
            _ => return Err(storage_error("float", x)),
        };
        Ok(vec![tensor(self.dtype, x.shape.clone(), data)])
    }
}

fn lower_softmax_family(ctx: &NodeContext<'_>, log: bool) -> Result<Lowered> {
    ctx.expect_inputs(1..=1)?;
    let dtype = ctx.expect_type(0, FLOATS)?;
    let coerce_to_2d = ctx.opset < 13;
    let axis = ctx.int_or("axis", if coerce_to_2d { 1 } else { -1 })?;
    Ok(Lowered::kernel(
        Softmax {
            axis,
            coerce_to_2d,
            log,
            dtype,
        },
        vec![dtype],
    ))
}

pub(crate) fn lower_softmax(ctx: &NodeContext<'_>) -> Result<Lowered> {
    lower_softmax_family(ctx, false)
}

pub(crate) fn lower_log_softmax(ctx: &NodeContext<'_>) -> Result<Lowered> {
    lower_softmax_family(ctx, true)
}
