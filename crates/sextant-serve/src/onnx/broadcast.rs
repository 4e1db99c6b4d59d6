//! Shapes: numpy-style broadcasting (ONNX's "multidirectional
//! broadcasting", `docs/Broadcasting.md` in the ONNX repository), axis
//! normalisation and element counts.

use crate::error::{Error, Result};

/// The broadcast shape of `shapes`: aligned on their last dimension, each
/// dimension is the common size, where a size of 1 stretches to any other.
pub(crate) fn broadcast_shapes(shapes: &[&[usize]]) -> Result<Vec<usize>> {
    let rank = shapes.iter().map(|s| s.len()).max().unwrap_or(0);
    let mut out = vec![1usize; rank];
    for shape in shapes {
        let offset = rank - shape.len();
        for (axis, &dim) in shape.iter().enumerate() {
            let target = &mut out[offset + axis];
            if *target == 1 {
                *target = dim;
            } else if dim != 1 && dim != *target {
                return Err(Error::input(format!(
                    "shapes {} cannot be broadcast together",
                    shapes
                        .iter()
                        .map(|s| format!("{s:?}"))
                        .collect::<Vec<_>>()
                        .join(" and ")
                )));
            }
        }
    }
    Ok(out)
}

/// Row-major strides of `shape` as seen from the broadcast shape `out`:
/// one per output axis, 0 where `shape` is stretched or missing.
pub(crate) fn broadcast_strides(shape: &[usize], out: &[usize]) -> Vec<usize> {
    let offset = out.len() - shape.len();
    let mut strides = vec![0usize; out.len()];
    let mut stride = 1usize;
    for axis in (0..shape.len()).rev() {
        if shape[axis] != 1 {
            strides[offset + axis] = stride;
        }
        stride *= shape[axis];
    }
    strides
}

/// Calls `visit` with the element index of each of `N` operands for every
/// element of the broadcast shape `out`, in row-major order. `strides` come
/// from [`broadcast_strides`].
pub(crate) fn for_each_broadcast<const N: usize>(
    out: &[usize],
    strides: [&[usize]; N],
    mut visit: impl FnMut([usize; N]),
) {
    if out.contains(&0) {
        return;
    }
    let rank = out.len();
    if rank == 0 {
        visit([0; N]);
        return;
    }
    let inner = out[rank - 1];
    let inner_strides: [usize; N] = std::array::from_fn(|k| strides[k][rank - 1]);
    let mut counter = vec![0usize; rank - 1];
    let mut base = [0usize; N];
    loop {
        for step in 0..inner {
            visit(std::array::from_fn(|k| base[k] + step * inner_strides[k]));
        }
        // Advance the odometer over the outer axes, innermost first.
        let mut axis = rank - 1;
        loop {
            if axis == 0 {
                return;
            }
            axis -= 1;
            counter[axis] += 1;
            for k in 0..N {
                base[k] += strides[k][axis];
            }
            if counter[axis] < out[axis] {
                break;
            }
            for k in 0..N {
                base[k] -= strides[k][axis] * out[axis];
            }
            counter[axis] = 0;
        }
    }
}

/// `f(a[i], b[j])` over the broadcast of two operands.
pub(crate) fn broadcast_binary<A: Copy, B: Copy, O>(
    a: &[A],
    a_shape: &[usize],
    b: &[B],
    b_shape: &[usize],
    f: impl Fn(A, B) -> O,
) -> Result<(Vec<O>, Vec<usize>)> {
    if a_shape == b_shape {
        return Ok((
            a.iter().zip(b).map(|(&x, &y)| f(x, y)).collect(),
            a_shape.to_vec(),
        ));
    }
    let out = broadcast_shapes(&[a_shape, b_shape])?;
    let count = element_count(&out);
    // The common cases in tabular graphs: a scalar operand, or a matrix
    // combined with a row vector (a bias, an offset).
    if b.len() == 1 && a.len() == count {
        let y = b[0];
        return Ok((a.iter().map(|&x| f(x, y)).collect(), out));
    }
    if a.len() == 1 && b.len() == count {
        let x = a[0];
        return Ok((b.iter().map(|&y| f(x, y)).collect(), out));
    }
    if a.len() == count && !b.is_empty() && is_trailing_block(b_shape, &out) {
        let mut values = Vec::with_capacity(count);
        for row in a.chunks_exact(b.len()) {
            values.extend(row.iter().zip(b).map(|(&x, &y)| f(x, y)));
        }
        return Ok((values, out));
    }
    let a_strides = broadcast_strides(a_shape, &out);
    let b_strides = broadcast_strides(b_shape, &out);
    let mut values = Vec::with_capacity(count);
    for_each_broadcast(&out, [&a_strides, &b_strides], |[i, j]| {
        values.push(f(a[i], b[j]))
    });
    Ok((values, out))
}

/// Whether a tensor of `shape` repeats as whole contiguous blocks of the
/// broadcast shape `out` (leading 1s, then exactly `out`'s trailing dims).
fn is_trailing_block(shape: &[usize], out: &[usize]) -> bool {
    let shape = skip_leading_ones(shape);
    out.ends_with(shape)
}

fn skip_leading_ones(shape: &[usize]) -> &[usize] {
    let first = shape.iter().position(|&d| d != 1).unwrap_or(shape.len());
    &shape[first..]
}

/// `values` (of `shape`) repeated to `out`, which `shape` must broadcast to.
pub(crate) fn expand_to<T: Clone>(values: &[T], shape: &[usize], out: &[usize]) -> Vec<T> {
    let strides = broadcast_strides(shape, out);
    let mut expanded = Vec::with_capacity(element_count(out));
    for_each_broadcast(out, [&strides], |[i]| expanded.push(values[i].clone()));
    expanded
}

pub(crate) fn element_count(shape: &[usize]) -> usize {
    shape.iter().product()
}

/// A possibly negative `axis` of a tensor of `rank` dimensions, as ONNX
/// allows (`-1` is the last axis).
pub(crate) fn normalize_axis(axis: i64, rank: usize) -> Result<usize> {
    let rank_i = rank as i64;
    let resolved = if axis < 0 { axis + rank_i } else { axis };
    if (0..rank_i).contains(&resolved) {
        Ok(resolved as usize)
    } else {
        Err(Error::input(format!(
            "axis {axis} is out of range for a tensor of rank {rank}"
        )))
    }
}

/// Row-major strides of `shape`.
pub(crate) fn strides_of(shape: &[usize]) -> Vec<usize> {
    let mut strides = vec![1usize; shape.len()];
    for axis in (0..shape.len().saturating_sub(1)).rev() {
        strides[axis] = strides[axis + 1] * shape[axis + 1];
    }
    strides
}

/// Splits `shape` around `axis`: (product of the dims before, the dim, the
/// product of the dims after).
pub(crate) fn split_at_axis(shape: &[usize], axis: usize) -> (usize, usize, usize) {
    (
        element_count(&shape[..axis]),
        shape[axis],
        element_count(&shape[axis + 1..]),
    )
}
