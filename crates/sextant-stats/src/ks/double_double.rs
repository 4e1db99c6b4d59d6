//! Minimal double-double arithmetic (an unevaluated sum `hi + lo` of two
//! `f64`, about 106 significant bits).
//!
//! Used where scipy itself computes in extended precision: the one-sided
//! Smirnov sum (xsf's `dd_real`) and the tail of the Durbin / Pomeranz
//! recursions (numpy `longdouble`). Error-free transformations follow
//! Dekker (1971) and Knuth's TwoSum; the products use a fused multiply-add.

use std::ops::{Add, Div, Mul, Neg, Sub};

#[derive(Debug, Clone, Copy, PartialEq)]
pub(crate) struct DoubleDouble {
    pub hi: f64,
    pub lo: f64,
}

/// Exact `a + b = s + e` (Knuth's TwoSum).
fn two_sum(a: f64, b: f64) -> (f64, f64) {
    let s = a + b;
    let bb = s - a;
    let e = (a - (s - bb)) + (b - bb);
    (s, e)
}

/// Exact `a + b = s + e` when `|a| >= |b|`.
fn quick_two_sum(a: f64, b: f64) -> (f64, f64) {
    let s = a + b;
    (s, b - (s - a))
}

/// Exact `a * b = p + e`.
fn two_prod(a: f64, b: f64) -> (f64, f64) {
    let p = a * b;
    (p, a.mul_add(b, -p))
}

impl DoubleDouble {
    pub const ONE: Self = Self { hi: 1.0, lo: 0.0 };
    pub const ZERO: Self = Self { hi: 0.0, lo: 0.0 };

    pub fn new(x: f64) -> Self {
        Self { hi: x, lo: 0.0 }
    }

    pub fn to_f64(self) -> f64 {
        self.hi + self.lo
    }

    /// Largest integer not above the value.
    pub fn floor(self) -> Self {
        let hi = self.hi.floor();
        if hi == self.hi {
            let (s, e) = quick_two_sum(hi, self.lo.floor());
            Self { hi: s, lo: e }
        } else {
            Self { hi, lo: 0.0 }
        }
    }

    /// Splits into a mantissa with `|hi|` in `[0.5, 1)` and a power of two.
    pub fn frexp(self) -> (Self, i32) {
        let (_, exponent) = frexp(self.hi);
        (self.ldexp(-exponent), exponent)
    }

    /// Multiplies by `2^exponent` (exact unless it under/overflows).
    pub fn ldexp(self, exponent: i32) -> Self {
        Self {
            hi: ldexp(self.hi, exponent),
            lo: ldexp(self.lo, exponent),
        }
    }

    /// `self^m` for `m >= 0` as a normalised mantissa and a binary exponent,
    /// by binary powering with renormalisation after every product so that
    /// neither under- nor overflow can occur for any `m`.
    pub fn powi_scaled(self, m: u64) -> (Self, i64) {
        let (mut base, base_exp) = self.frexp();
        let mut base_exp = i64::from(base_exp);
        let (mut acc, mut acc_exp) = (Self::ONE, 0_i64);
        let mut remaining = m;
        while remaining > 0 {
            if remaining & 1 == 1 {
                let (mant, e) = (acc * base).frexp();
                acc = mant;
                acc_exp += base_exp + i64::from(e);
            }
            remaining >>= 1;
            if remaining > 0 {
                let (mant, e) = (base * base).frexp();
                base = mant;
                base_exp = 2 * base_exp + i64::from(e);
            }
        }
        (acc, acc_exp)
    }
}

impl From<f64> for DoubleDouble {
    fn from(x: f64) -> Self {
        Self::new(x)
    }
}

impl Neg for DoubleDouble {
    type Output = Self;
    fn neg(self) -> Self {
        Self {
            hi: -self.hi,
            lo: -self.lo,
        }
    }
}

impl Add for DoubleDouble {
    type Output = Self;
    fn add(self, b: Self) -> Self {
        let (s1, s2) = two_sum(self.hi, b.hi);
        let (t1, t2) = two_sum(self.lo, b.lo);
        let s2 = s2 + t1;
        let (s1, s2) = quick_two_sum(s1, s2);
        let s2 = s2 + t2;
        let (hi, lo) = quick_two_sum(s1, s2);
        Self { hi, lo }
    }
}

impl Add<f64> for DoubleDouble {
    type Output = Self;
    fn add(self, b: f64) -> Self {
        let (s1, s2) = two_sum(self.hi, b);
        let (hi, lo) = quick_two_sum(s1, s2 + self.lo);
        Self { hi, lo }
    }
}

impl Sub for DoubleDouble {
    type Output = Self;
    fn sub(self, b: Self) -> Self {
        self + (-b)
    }
}

impl Sub<f64> for DoubleDouble {
    type Output = Self;
    fn sub(self, b: f64) -> Self {
        self + (-b)
    }
}

impl Mul for DoubleDouble {
    type Output = Self;
    fn mul(self, b: Self) -> Self {
        let (p, e) = two_prod(self.hi, b.hi);
        let e = e + (self.hi * b.lo + self.lo * b.hi);
        let (hi, lo) = quick_two_sum(p, e);
        Self { hi, lo }
    }
}

impl Mul<f64> for DoubleDouble {
    type Output = Self;
    fn mul(self, b: f64) -> Self {
        let (p, e) = two_prod(self.hi, b);
        let (hi, lo) = quick_two_sum(p, e + self.lo * b);
        Self { hi, lo }
    }
}

impl Div for DoubleDouble {
    type Output = Self;
    /// Long division: two correction steps give full double-double accuracy.
    fn div(self, b: Self) -> Self {
        let q1 = self.hi / b.hi;
        let r = self - b * q1;
        let q2 = r.hi / b.hi;
        let r = r - b * q2;
        let q3 = r.hi / b.hi;
        let (hi, lo) = quick_two_sum(q1, q2);
        Self { hi, lo } + q3
    }
}

impl Div<f64> for DoubleDouble {
    type Output = Self;
    fn div(self, b: f64) -> Self {
        self / Self::new(b)
    }
}

/// `x = m * 2^e` with `|m|` in `[0.5, 1)`; zero and non-finite map to themselves.
pub(crate) fn frexp(x: f64) -> (f64, i32) {
    if x == 0.0 || !x.is_finite() {
        return (x, 0);
    }
    let bits = x.to_bits();
    let biased = ((bits >> 52) & 0x7ff) as i32;
    if biased == 0 {
        // Subnormal: scale into the normal range first.
        let (m, e) = frexp(x * 2f64.powi(64));
        return (m, e - 64);
    }
    let mantissa = f64::from_bits((bits & !(0x7ff << 52)) | (1022 << 52));
    (mantissa, biased - 1022)
}

/// `x * 2^e`, exact whenever the result is representable (C `ldexp`).
pub(crate) fn ldexp(x: f64, e: i32) -> f64 {
    // Apply the scale in steps that are themselves exact powers of two so a
    // large |e| cannot overflow the intermediate factor.
    let mut value = x;
    let mut remaining = e;
    while remaining > 1000 {
        value *= 2f64.powi(1000);
        remaining -= 1000;
    }
    while remaining < -1000 {
        // Two steps keep a result that ends up subnormal correctly rounded
        // in all but pathological double-rounding cases.
        value *= 2f64.powi(-1000);
        remaining += 1000;
    }
    value * 2f64.powi(remaining)
}
