//! `MatMul` (numpy's `matmul`: 1-D operands promoted, batch dimensions
//! broadcast), `Gemm` (`alpha · A' · B' + beta · C`) and inference-mode
//! `BatchNormalization`.
//!
//! `FLOAT` products accumulate in `f32`, one fused multiply-add per term
//! (see [`fused_multiply_add`]) in order of the inner dimension, starting
//! from zero, with the bias (`C`) added last: the order in which ONNX
//! Runtime's MLAS kernels accumulate on CPUs with FMA (the x86-64 machines
//! of the last decade), so that results usually agree to the bit. MLAS
//! splits very long inner dimensions into blocks, and on CPUs without FMA
//! rounds each product; there results agree to rounding. `DOUBLE` products
//! round each product (`f64` has no wider type to fuse through cheaply).

use crate::error::{Error, Result};
use crate::onnx::broadcast::{
    broadcast_shapes, broadcast_strides, element_count, expand_to, for_each_broadcast,
};
use crate::onnx::ops::numeric::{fused_multiply_add, Float};
use crate::onnx::ops::{
    required, storage_error, tensor, Kernel, Lowered, NodeContext, FLOATS, NUMERIC,
};
use crate::onnx::value::wrap_integer;
use crate::tensor::{DataType, Tensor, TensorData};

/// The scalar operations a product needs, for floats and wrapping
/// integers alike.
trait Ring: Copy + Send + Sync {
    const ZERO: Self;
    /// `self + a · b`, fused (rounded once) for `f32`.
    fn mul_add(self, a: Self, b: Self) -> Self;
}

impl Ring for f32 {
    const ZERO: Self = 0.0;
    #[inline(always)]
    fn mul_add(self, a: Self, b: Self) -> Self {
        fused_multiply_add(a, b, self)
    }
}

impl Ring for f64 {
    const ZERO: Self = 0.0;
    #[inline(always)]
    fn mul_add(self, a: Self, b: Self) -> Self {
        self + a * b
    }
}

impl Ring for i64 {
    const ZERO: Self = 0;
    #[inline(always)]
    fn mul_add(self, a: Self, b: Self) -> Self {
        self.wrapping_add(a.wrapping_mul(b))
    }
}

/// `out[m×n] = a[m×k] · b[k×n]`, row-major; the inner loop runs along a
/// row of `b` so that it vectorises.
fn multiply<T: Ring>(a: &[T], b: &[T], m: usize, k: usize, n: usize, out: &mut [T]) {
    for i in 0..m {
        let row = &mut out[i * n..(i + 1) * n];
        row.fill(T::ZERO);
        for p in 0..k {
            let scale = a[i * k + p];
            for (o, &bv) in row.iter_mut().zip(&b[p * n..(p + 1) * n]) {
                *o = o.mul_add(scale, bv);
            }
        }
    }
}

/// `out[m×n] = a[m×k] · b[n×k]ᵀ` (B stored transposed, as `Gemm` with
/// `transB = 1` and torch's linear layers have it): dot products of rows.
fn multiply_transposed<T: Ring>(a: &[T], b: &[T], m: usize, k: usize, n: usize, out: &mut [T]) {
    for i in 0..m {
        let a_row = &a[i * k..(i + 1) * k];
        for j in 0..n {
            let b_row = &b[j * k..(j + 1) * k];
            out[i * n + j] = a_row
                .iter()
                .zip(b_row)
                .fold(T::ZERO, |acc, (&x, &y)| acc.mul_add(x, y));
        }
    }
}

fn transposed<T: Copy>(values: &[T], rows: usize, columns: usize) -> Vec<T> {
    let mut out = Vec::with_capacity(values.len());
    for c in 0..columns {
        for r in 0..rows {
            out.push(values[r * columns + c]);
        }
    }
    out
}

// --- MatMul -------------------------------------------------------------------------------

struct MatMul {
    dtype: DataType,
}

fn mat_mul<T: Ring + Default>(
    a: &[T],
    a_shape: &[usize],
    b: &[T],
    b_shape: &[usize],
) -> Result<(Vec<T>, Vec<usize>)> {
    if a_shape.is_empty() || b_shape.is_empty() {
        return Err(Error::input("MatMul does not take scalars"));
    }
    // 1-D operands become a row (A) or a column (B), removed afterwards.
    let a_matrix: Vec<usize> = if a_shape.len() == 1 {
        vec![1, a_shape[0]]
    } else {
        a_shape.to_vec()
    };
    let b_matrix: Vec<usize> = if b_shape.len() == 1 {
        vec![b_shape[0], 1]
    } else {
        b_shape.to_vec()
    };
    let (m, k) = (a_matrix[a_matrix.len() - 2], a_matrix[a_matrix.len() - 1]);
    let (k2, n) = (b_matrix[b_matrix.len() - 2], b_matrix[b_matrix.len() - 1]);
    if k != k2 {
        return Err(Error::input(format!(
            "MatMul of shapes {a_shape:?} and {b_shape:?}"
        )));
    }
    let a_batch = &a_matrix[..a_matrix.len() - 2];
    let b_batch = &b_matrix[..b_matrix.len() - 2];
    let batch = broadcast_shapes(&[a_batch, b_batch])?;
    let n_batches = element_count(&batch);
    let mut out = vec![T::ZERO; n_batches * m * n];
    if a_batch.iter().product::<usize>() == n_batches && b_batch.iter().product::<usize>() == 1 {
        // One B for every batch of A: a single product of the stacked rows.
        multiply(a, b, n_batches * m, k, n, &mut out);
    } else {
        let a_strides = broadcast_strides(a_batch, &batch);
        let b_strides = broadcast_strides(b_batch, &batch);
        let mut pairs = Vec::with_capacity(n_batches);
        for_each_broadcast(&batch, [&a_strides, &b_strides], |[i, j]| {
            pairs.push((i, j))
        });
        for (index, (i, j)) in pairs.into_iter().enumerate() {
            multiply(
                &a[i * m * k..(i + 1) * m * k],
                &b[j * k * n..(j + 1) * k * n],
                m,
                k,
                n,
                &mut out[index * m * n..(index + 1) * m * n],
            );
        }
    }
    let mut shape = batch;
    if a_shape.len() > 1 {
        shape.push(m);
    }
    if b_shape.len() > 1 {
        shape.push(n);
    }
    Ok((out, shape))
}

impl Kernel for MatMul {
    fn run(&self, inputs: &[Option<&Tensor>]) -> Result<Vec<Tensor>> {
        let a = required(inputs, 0)?;
        let b = required(inputs, 1)?;
        let (data, shape) = match (&a.data, &b.data) {
            (TensorData::F32(x), TensorData::F32(y)) => {
                let (v, s) = mat_mul(x, &a.shape, y, &b.shape)?;
                (TensorData::F32(v), s)
            }
            (TensorData::F64(x), TensorData::F64(y)) => {
                let (v, s) = mat_mul(x, &a.shape, y, &b.shape)?;
                (TensorData::F64(v), s)
            }
            (TensorData::I64(x), TensorData::I64(y)) => {
                let (v, s) = mat_mul(x, &a.shape, y, &b.shape)?;
                let dtype = self.dtype;
                (
                    TensorData::I64(v.into_iter().map(|e| wrap_integer(dtype, e)).collect()),
                    s,
                )
            }
            _ => return Err(storage_error(&self.dtype.to_string(), b)),
        };
        Ok(vec![tensor(self.dtype, shape, data)])
    }
}

pub(crate) fn lower_mat_mul(ctx: &NodeContext<'_>) -> Result<Lowered> {
    ctx.expect_inputs(2..=2)?;
    let dtype = ctx.expect_type(0, NUMERIC)?;
    if ctx.input_type(1)? != dtype {
        return Err(Error::invalid("MatMul takes two inputs of one type"));
    }
    Ok(Lowered::kernel(MatMul { dtype }, vec![dtype]))
}

// --- Gemm ---------------------------------------------------------------------------------

struct Gemm {
    alpha: f32,
    beta: f32,
    transpose_a: bool,
    transpose_b: bool,
    /// B as `[K, N]` when it is a constant stored transposed (torch's
    /// linear layers): products then run along rows of B, which
    /// vectorises, in the same order of terms.
    b_untransposed: Option<Tensor>,
    dtype: DataType,
}

impl Gemm {
    fn compute<T: Float + Ring>(
        &self,
        a: &Tensor,
        b: &Tensor,
        c: Option<&Tensor>,
    ) -> Result<(Vec<T>, Vec<usize>)> {
        fn values<T: Float>(t: &Tensor) -> Result<&[T]> {
            T::slice(&t.data).ok_or_else(|| storage_error("float", t))
        }
        let (a_values, b_values) = (values::<T>(a)?, values::<T>(b)?);
        let [a_rows, a_columns] = a.shape[..] else {
            return Err(Error::input(format!(
                "Gemm's A must be a matrix, got shape {:?}",
                a.shape
            )));
        };
        let [b_rows, b_columns] = b.shape[..] else {
            return Err(Error::input(format!(
                "Gemm's B must be a matrix, got shape {:?}",
                b.shape
            )));
        };
        let (m, k) = if self.transpose_a {
            (a_columns, a_rows)
        } else {
            (a_rows, a_columns)
        };
        let (k2, n) = if self.transpose_b {
            (b_columns, b_rows)
        } else {
            (b_rows, b_columns)
        };
        if k != k2 {
            return Err(Error::input(format!(
                "Gemm of shapes {:?} and {:?}",
                a.shape, b.shape
            )));
        }
        let a_transposed;
        let a_values = if self.transpose_a {
            a_transposed = transposed(a_values, a_rows, a_columns);
            &a_transposed[..]
        } else {
            a_values
        };
        let mut out = vec![<T as Ring>::ZERO; m * n];
        match &self.b_untransposed {
            Some(b) => multiply(a_values, values::<T>(b)?, m, k, n, &mut out),
            None if self.transpose_b => multiply_transposed(a_values, b_values, m, k, n, &mut out),
            None => multiply(a_values, b_values, m, k, n, &mut out),
        }
        let alpha = T::from_f64(self.alpha as f64);
        if self.alpha != 1.0 {
            out.iter_mut().for_each(|v| *v = alpha * *v);
        }
        if let Some(c) = c {
            let shape = [m, n];
            if broadcast_shapes(&[&c.shape, &shape])? != shape {
                return Err(Error::input(format!(
                    "Gemm's C of shape {:?} does not fit [{m}, {n}]",
                    c.shape
                )));
            }
            let c_values = expand_to(values::<T>(c)?, &c.shape, &shape);
            let beta = T::from_f64(self.beta as f64);
            for (o, &cv) in out.iter_mut().zip(&c_values) {
                *o = *o + if self.beta == 1.0 { cv } else { beta * cv };
            }
        }
        Ok((out, vec![m, n]))
    }
}

impl Kernel for Gemm {
    fn run(&self, inputs: &[Option<&Tensor>]) -> Result<Vec<Tensor>> {
        let a = required(inputs, 0)?;
        let b = required(inputs, 1)?;
        let c = inputs.get(2).copied().flatten();
        let (data, shape) = match self.dtype {
            DataType::F32 => {
                let (v, s) = self.compute::<f32>(a, b, c)?;
                (TensorData::F32(v), s)
            }
            _ => {
                let (v, s) = self.compute::<f64>(a, b, c)?;
                (TensorData::F64(v), s)
            }
        };
        Ok(vec![tensor(self.dtype, shape, data)])
    }
}

pub(crate) fn lower_gemm(ctx: &NodeContext<'_>) -> Result<Lowered> {
    ctx.expect_inputs(2..=3)?;
    let dtype = ctx.expect_type(0, FLOATS)?;
    for index in 1..ctx.n_inputs() {
        if ctx.has_input(index) && ctx.input_type(index)? != dtype {
            return Err(Error::invalid("Gemm's inputs differ in type"));
        }
    }
    let transpose_b = ctx.int_or("transB", 0)? != 0;
    let b_untransposed = match ctx.constant(1) {
        Some(b) if transpose_b && b.shape.len() == 2 => {
            Some(crate::onnx::ops::shape::transpose(b, &[1, 0])?)
        }
        _ => None,
    };
    Ok(Lowered::kernel(
        Gemm {
            alpha: ctx.float_or("alpha", 1.0)?,
            beta: ctx.float_or("beta", 1.0)?,
            transpose_a: ctx.int_or("transA", 0)? != 0,
            transpose_b,
            b_untransposed,
            dtype,
        },
        vec![dtype],
    ))
}

// --- BatchNormalization -------------------------------------------------------------------

/// `Y = (X - mean) / sqrt(var + epsilon) · scale + B`, per channel (axis 1).
struct BatchNormalization {
    epsilon: f32,
    dtype: DataType,
}

fn normalize_channels<T: Float>(
    x: &Tensor,
    parameters: [&Tensor; 4],
    epsilon: f32,
) -> Result<Vec<T>> {
    let values = T::slice(&x.data).ok_or_else(|| storage_error("float", x))?;
    let [scale, bias, mean, variance] = parameters.map(|p| T::slice(&p.data));
    let (Some(scale), Some(bias), Some(mean), Some(variance)) = (scale, bias, mean, variance)
    else {
        return Err(Error::invalid(
            "BatchNormalization's parameters differ in type from X",
        ));
    };
    let channels = *x.shape.get(1).unwrap_or(&1);
    if [scale.len(), bias.len(), mean.len(), variance.len()]
        .iter()
        .any(|&l| l != channels)
    {
        return Err(Error::input(format!(
            "BatchNormalization parameters do not match {channels} channels"
        )));
    }
    let inner: usize = x.shape.iter().skip(2).product();
    let epsilon = T::from_f64(epsilon as f64);
    let mut out = Vec::with_capacity(values.len());
    for (position, &v) in values.iter().enumerate() {
        let c = (position / inner.max(1)) % channels.max(1);
        out.push((v - mean[c]) / (variance[c] + epsilon).sqrt() * scale[c] + bias[c]);
    }
    Ok(out)
}

impl Kernel for BatchNormalization {
    fn run(&self, inputs: &[Option<&Tensor>]) -> Result<Vec<Tensor>> {
        let x = required(inputs, 0)?;
        let parameters = [
            required(inputs, 1)?,
            required(inputs, 2)?,
            required(inputs, 3)?,
            required(inputs, 4)?,
        ];
        let data = match &x.data {
            TensorData::F32(_) => {
                TensorData::F32(normalize_channels::<f32>(x, parameters, self.epsilon)?)
            }
            TensorData::F64(_) => {
                TensorData::F64(normalize_channels::<f64>(x, parameters, self.epsilon)?)
            }
            _ => return Err(storage_error("float", x)),
        };
        Ok(vec![tensor(self.dtype, x.shape.clone(), data)])
    }
}

pub(crate) fn lower_batch_normalization(ctx: &NodeContext<'_>) -> Result<Lowered> {
    ctx.expect_inputs(5..=5)?;
    let dtype = ctx.expect_type(0, FLOATS)?;
    if ctx.int_or("training_mode", 0)? != 0 || ctx.n_outputs() > 1 {
        return Err(Error::unsupported("BatchNormalization in training mode"));
    }
    if ctx.int_or("spatial", 1)? == 0 {
        return Err(Error::unsupported("BatchNormalization with spatial = 0"));
    }
    Ok(Lowered::kernel(
        BatchNormalization {
            epsilon: ctx.float_or("epsilon", 1e-5)?,
            dtype,
        },
        vec![dtype],
    ))
}
