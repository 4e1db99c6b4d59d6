//! The score transforms of the ai.onnx.ml classifiers and regressors
//! (`post_transform`: NONE, LOGISTIC, SOFTMAX, SOFTMAX_ZERO, PROBIT), in
//! `f32`, written to give the same bits as ONNX Runtime's scalar versions
//! (`ComputeLogistic`, `ComputeSoftmax`, `ComputeSoftmaxZero`,
//! `ComputeProbit` and its `ErfInv` in `core/providers/cpu/ml/ml_common.h`).

use crate::error::{Error, Result};

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum PostTransform {
    None,
    Logistic,
    Softmax,
    SoftmaxZero,
    Probit,
}

impl PostTransform {
    pub(crate) fn parse(name: &str) -> Result<PostTransform> {
        Ok(match name {
            "NONE" => PostTransform::None,
            "LOGISTIC" => PostTransform::Logistic,
            "SOFTMAX" => PostTransform::Softmax,
            "SOFTMAX_ZERO" => PostTransform::SoftmaxZero,
            "PROBIT" => PostTransform::Probit,
            other => return Err(Error::invalid(format!("unknown post_transform '{other}'"))),
        })
    }

    /// Applies the transform to one row of two or more scores.
    pub(crate) fn apply_to_row(self, scores: &mut [f32]) {
        match self {
            PostTransform::None => {}
            PostTransform::Logistic => scores.iter_mut().for_each(|s| *s = logistic(*s)),
            PostTransform::Probit => scores.iter_mut().for_each(|s| *s = probit(*s)),
            PostTransform::Softmax => softmax(scores),
            PostTransform::SoftmaxZero => softmax_zero(scores),
        }
    }
}

/// `1 / (1 + e^-x)`, computed on `|x|` and reflected, so that large
/// negative scores do not overflow `exp`.
pub(crate) fn logistic(x: f32) -> f32 {
    let v = 1.0 / (1.0 + (-x.abs()).exp());
    if x < 0.0 {
        1.0 - v
    } else {
        v
    }
}

/// The probit (the inverse of the standard normal CDF), as
/// `√2 · erfinv(2p − 1)` with Winitzki's approximation of `erfinv`
/// (a = 0.147), the one ONNX Runtime uses.
pub(crate) fn probit(p: f32) -> f32 {
    std::f32::consts::SQRT_2 * inverse_erf(2.0 * p - 1.0)
}

fn inverse_erf(x: f32) -> f32 {
    const A: f32 = 0.147;
    let sign = if x < 0.0 { -1.0f32 } else { 1.0 };
    let one_minus_square = (1.0 - x) * (1.0 + x);
    let log = one_minus_square.ln();
    let v = 2.0 / (std::f32::consts::PI * A) + 0.5 * log;
    let v2 = 1.0 / A * log;
    let v3 = -v + (v * v - v2).sqrt();
    sign * v3.sqrt()
}

/// `exp(x − max) / Σ exp(x − max)` in `f32`; the running maximum starts
/// at `-f32::MAX`, as in ONNX Runtime.
pub(crate) fn softmax(scores: &mut [f32]) {
    let max = scores
        .iter()
        .fold(-f32::MAX, |m, &s| if s > m { s } else { m });
    let mut sum = 0.0f32;
    for s in scores.iter_mut() {
        *s = (*s - max).exp();
        sum += *s;
    }
    for s in scores.iter_mut() {
        *s /= sum;
    }
}

/// Softmax over the non-zero scores: a score within 1e-7 of zero stays
/// (nearly) zero instead of contributing `exp(0 − max)`.
pub(crate) fn softmax_zero(scores: &mut [f32]) {
    let max = scores
        .iter()
        .fold(-f32::MAX, |m, &s| if s > m { s } else { m });
    let exp_neg_max = (-max).exp();
    let mut sum = 0.0f32;
    for s in scores.iter_mut() {
        if *s > 0.000_000_1 || *s < -0.000_000_1 {
            *s = (*s - max).exp();
            sum += *s;
        } else {
            *s *= exp_neg_max;
        }
    }
    for s in scores.iter_mut() {
        *s /= sum;
    }
}
