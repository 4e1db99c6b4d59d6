//! Floating-point element types: operators on `FLOAT` tensors compute in
//! `f32` and on `DOUBLE` tensors in `f64`, as ONNX Runtime does, through
//! one generic implementation.

use std::fmt::Debug;
use std::ops::{Add, Div, Mul, Neg, Sub};

use crate::tensor::TensorData;

pub(crate) trait Float:
    Copy
    + PartialOrd
    + Debug
    + Send
    + Sync
    + 'static
    + Add<Output = Self>
    + Sub<Output = Self>
    + Mul<Output = Self>
    + Div<Output = Self>
    + Neg<Output = Self>
{
    const ZERO: Self;
    const ONE: Self;
    const INFINITY: Self;
    const NEG_INFINITY: Self;

    fn from_f64(value: f64) -> Self;
    fn to_f64(self) -> f64;
    fn from_i64(value: i64) -> Self;
    fn slice(data: &TensorData) -> Option<&[Self]>;

    fn exp(self) -> Self;
    fn ln(self) -> Self;
    fn sqrt(self) -> Self;
    fn tanh(self) -> Self;
    fn abs(self) -> Self;
    fn floor(self) -> Self;
    fn ceil(self) -> Self;
    fn round_ties_even(self) -> Self;
    fn is_nan(self) -> bool;
    fn erf(self) -> Self;
}

macro_rules! impl_float {
    ($t:ty, $variant:ident) => {
        impl Float for $t {
            const ZERO: Self = 0.0;
            const ONE: Self = 1.0;
            const INFINITY: Self = <$t>::INFINITY;
            const NEG_INFINITY: Self = <$t>::NEG_INFINITY;

            #[inline(always)]
            fn from_f64(value: f64) -> Self {
                value as $t
            }
            #[inline(always)]
            fn to_f64(self) -> f64 {
                self as f64
            }
            #[inline(always)]
            fn from_i64(value: i64) -> Self {
                value as $t
            }
            fn slice(data: &TensorData) -> Option<&[Self]> {
                match data {
                    TensorData::$variant(values) => Some(values),
                    _ => None,
                }
            }
            #[inline(always)]
            fn exp(self) -> Self {
                <$t>::exp(self)
            }
            #[inline(always)]
            fn ln(self) -> Self {
                <$t>::ln(self)
            }
            #[inline(always)]
            fn sqrt(self) -> Self {
                <$t>::sqrt(self)
            }
            #[inline(always)]
            fn tanh(self) -> Self {
                <$t>::tanh(self)
            }
            #[inline(always)]
            fn abs(self) -> Self {
                <$t>::abs(self)
            }
            #[inline(always)]
            fn floor(self) -> Self {
                <$t>::floor(self)
            }
            #[inline(always)]
            fn ceil(self) -> Self {
                <$t>::ceil(self)
            }
            #[inline(always)]
            fn round_ties_even(self) -> Self {
                <$t>::round_ties_even(self)
            }
            #[inline(always)]
            fn is_nan(self) -> bool {
                <$t>::is_nan(self)
            }
            fn erf(self) -> Self {
                erf(self as f64) as $t
            }
        }
    };
}

impl_float!(f32, F32);
impl_float!(f64, F64);

/// `a · b + c` rounded once to `f32`, as a fused multiply-add instruction
/// computes it, without needing one: the product of two `f32`s is exact in
/// `f64`, and the `f64` sum rounded to `f32` equals the fused result except
/// when that sum falls within an `f64` rounding step of a halfway point
/// between two `f32`s (a chance of about 2⁻²⁹ per operation). `f32::mul_add`
/// would be exact, but without `-C target-feature=+fma` it is a call into
/// the C library costing several nanoseconds; this compiles to a few
/// vectorisable instructions.
#[inline(always)]
pub(crate) fn fused_multiply_add(a: f32, b: f32, c: f32) -> f32 {
    (a as f64 * b as f64 + c as f64) as f32
}

/// The error function, to about 1e-15 relative accuracy (the standard
/// library has no stable `erf`).
///
/// For |x| < 3 it sums the Maclaurin series
/// `erf(x) = 2/√π · Σ (-1)^n x^(2n+1) / (n! (2n+1))`, whose terms peak near
/// 170 at x = 3 and so lose at most three digits to cancellation; beyond,
/// `erfc(x)` comes from its continued fraction
/// `erfc(x) = exp(-x²)/√π · 1/(x + (1/2)/(x + 1/(x + (3/2)/(x + …))))`
/// (Abramowitz & Stegun 7.1.2 and 7.1.14), evaluated bottom-up; past
/// |x| = 6, erf is ±1 in double precision.
pub(crate) fn erf(x: f64) -> f64 {
    const TWO_OVER_SQRT_PI: f64 = std::f64::consts::FRAC_2_SQRT_PI;
    if x.is_nan() {
        return x;
    }
    let magnitude = x.abs();
    if magnitude >= 6.0 {
        return x.signum();
    }
    if magnitude < 3.0 {
        let square = x * x;
        let mut term = x; // (-1)^n x^(2n+1) / n!
        let mut sum = x;
        for n in 1..200 {
            term *= -square / n as f64;
            let contribution = term / (2 * n + 1) as f64;
            sum += contribution;
            if contribution.abs() < 1e-17 * sum.abs() {
                break;
            }
        }
        return TWO_OVER_SQRT_PI * sum;
    }
    // Continued fraction with 60 levels: ample at |x| >= 3.
    let mut fraction = magnitude;
    for level in (1..=60).rev() {
        fraction = magnitude + (level as f64 / 2.0) / fraction;
    }
    let complement = (-magnitude * magnitude).exp() / (fraction * std::f64::consts::PI.sqrt());
    (1.0 - complement).copysign(x)
}
