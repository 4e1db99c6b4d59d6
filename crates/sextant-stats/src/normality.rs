//! The Shapiro-Wilk W test of normality, reproducing
//! `scipy.stats.shapiro` (scipy 1.17, `_morestats.py` and the `swilk` of
//! `_ansari_swilk_statistics.pyx`, itself a translation of the Fortran
//! algorithm AS R94).
//!
//! **Statistic** (Shapiro & Wilk, Biometrika 52, 1965): for the sorted
//! sample `x₍₁₎ ≤ … ≤ x₍ₙ₎`,
//!
//! ```text
//! W = (Σᵢ aᵢ x₍ᵢ₎)² / Σᵢ (xᵢ − x̄)²
//! ```
//!
//! with `a` the normalised weights of the best linear unbiased estimate of
//! σ from normal order statistics. `W ≤ 1`, near 1 for normal samples and
//! lower the less normal the sample is. AS R94 (Royston, Applied
//! Statistics 44(4), 1995, after Royston, Statistics and Computing 2,
//! 1992) approximates the weights: with `mᵢ = Φ⁻¹((i − 3/8)/(n + 1/4))`
//! (Blom scores, computed with AS 111's 7-digit `PPND`) and
//! `u = 1/√n`,
//!
//! ```text
//! aₙ   = cₙ + 0.221157u − 0.147981u² − 2.071190u³ + 4.434685u⁴ − 2.706056u⁵
//! aₙ₋₁ = cₙ₋₁ + 0.042981u − 0.293762u² − 1.752461u³ + 5.682633u⁴ − 3.582633u⁵
//! ```
//!
//! (`cᵢ = mᵢ/√(mᵀm)`; `aₙ₋₁` only for n > 5), the other weights `mᵢ/√ε`
//! rescaled so that `aᵀa = 1`, and `a₁ = −aₙ` by symmetry; for n = 3,
//! `a = (−√½, 0, √½)` exactly.
//!
//! **p-value**: for n = 3 exact, `p = 1 − (6/π) · acos(√W)`. Otherwise
//! `ln(1 − W)` (for 4 ≤ n ≤ 11 first transformed as
//! `−ln(γ − ln(1 − W))`, `γ = −2.273 + 0.459n`) is normal with mean and
//! standard deviation polynomial in n (n ≤ 11) or in ln n (n ≥ 12), and the
//! p-value is its upper tail, computed with AS 66 (`ALNORM`). Royston fitted
//! these approximations for 3 ≤ n ≤ 5000; beyond 5000 scipy warns that the
//! p-value may be inaccurate, and this module refuses the sample.
//!
//! Every floating-point operation follows scipy's order, so W agrees with
//! scipy to a few units in the last place (the golden test holds it to
//! 1e-12 and the p-value to 1e-9 relative; see
//! `tests/golden/normality.py`). The approximations themselves are what
//! they are: the weights and p-value are good to about 3–4 significant
//! digits against the exact distribution, like every implementation of
//! AS R94.

use std::f64::consts::PI;
use std::fmt;

use crate::TestResult;

/// Smallest sample the test accepts.
pub const MIN_SAMPLE: usize = 3;
/// Largest sample the test accepts: the end of the range AS R94's
/// approximations were fitted on.
pub const MAX_SAMPLE: usize = 5000;

/// A range below this is zero (AS R94's `SMALL`): the test is undefined
/// for a constant sample.
const SMALL: f64 = 1e-19;

/// Why a sample cannot be tested.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum NormalityError {
    /// Fewer than [`MIN_SAMPLE`] values.
    TooFew(usize),
    /// More than [`MAX_SAMPLE`] values.
    TooMany(usize),
    /// A value is NaN or infinite.
    NotFinite { index: usize, value: f64 },
    /// Every value is the same (the range is below 1e-19): W is 0/0.
    /// scipy warns and returns W = 1, p = 1 there.
    ZeroRange,
}

impl fmt::Display for NormalityError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::TooFew(n) => write!(
                f,
                "the Shapiro-Wilk test needs at least {MIN_SAMPLE} values, got {n}"
            ),
            Self::TooMany(n) => write!(
                f,
                "the Shapiro-Wilk test takes at most {MAX_SAMPLE} values, got {n}"
            ),
            Self::NotFinite { index, value } => write!(
                f,
                "value {index} of the sample is {value}; the Shapiro-Wilk test needs finite values"
            ),
            Self::ZeroRange => write!(
                f,
                "every value of the sample is the same, so the Shapiro-Wilk statistic is undefined"
            ),
        }
    }
}

impl std::error::Error for NormalityError {}

/// Shapiro-Wilk test of `values` (any order): W and its p-value, as
/// `scipy.stats.shapiro(values)`.
///
/// Like scipy, the sorted values are shifted by `values[n / 2]` (an
/// element near the median; scipy gh-15777) before the statistic is
/// computed, so large offsets do not cost precision.
pub fn shapiro_wilk(values: &[f64]) -> Result<TestResult, NormalityError> {
    let weights = ShapiroWilk::new(values.len())?;
    if let Some((index, &value)) = values.iter().enumerate().find(|(_, v)| !v.is_finite()) {
        return Err(NormalityError::NotFinite { index, value });
    }
    let mut sorted = values.to_vec();
    sorted.sort_unstable_by(f64::total_cmp);
    weights.test_shifted(&sorted, values[values.len() / 2])
}

/// The Shapiro-Wilk weights for one sample size, computed once and
/// reused: a caller testing many samples of the same size (a sliding
/// window) pays the `n/2` normal quantiles once.
#[derive(Debug, Clone, PartialEq)]
pub struct ShapiroWilk {
    n: usize,
    /// Half of the weights, largest first and positive: the order
    /// statistic `x₍ₙ₋ᵢ₎` weighs `half[i]` and its mirror `x₍ᵢ₊₁₎` weighs
    /// `−half[i]` (the middle one of an odd sample weighs 0).
    half: Vec<f64>,
}

impl ShapiroWilk {
    /// The weights for samples of `n` values, `3 ≤ n ≤ 5000`.
    pub fn new(n: usize) -> Result<ShapiroWilk, NormalityError> {
        if n < MIN_SAMPLE {
            return Err(NormalityError::TooFew(n));
        }
        if n > MAX_SAMPLE {
            return Err(NormalityError::TooMany(n));
        }
        Ok(ShapiroWilk {
            n,
            half: weights(n),
        })
    }

    /// The sample size these weights are for.
    pub fn n(&self) -> usize {
        self.n
    }

    /// The test of a sample already sorted ascending, of exactly
    /// [`ShapiroWilk::n`] values (panics otherwise: a caller's bug). The
    /// values are shifted by the middle one, `sorted[n / 2]`; the result
    /// differs from [`shapiro_wilk`] on the same values only by that
    /// shift's rounding.
    pub fn test_sorted(&self, sorted: &[f64]) -> Result<TestResult, NormalityError> {
        assert_eq!(
            sorted.len(),
            self.n,
            "ShapiroWilk::test_sorted: weights for {} values, sample of {}",
            self.n,
            sorted.len()
        );
        if let Some((index, &value)) = sorted.iter().enumerate().find(|(_, v)| !v.is_finite()) {
            return Err(NormalityError::NotFinite { index, value });
        }
        self.test_shifted(sorted, sorted[self.n / 2])
    }

    /// `swilk` on `sorted − shift` (the subtraction done value by value,
    /// as scipy's `y -= x[N//2]`), for `n1 = n` (no censoring).
    fn test_shifted(&self, sorted: &[f64], shift: f64) -> Result<TestResult, NormalityError> {
        let n = self.n;
        let a = &self.half;
        let x = |i: usize| sorted[i] - shift;
        let range = x(n - 1) - x(0);
        if range < SMALL {
            return Err(NormalityError::ZeroRange);
        }
        // The weight of the i-th order statistic (negative for the lower
        // half); `mirror = n − 1 − i`.
        let weight = |i: usize, mirror: usize| -> f64 {
            if i < mirror {
                -a[i]
            } else if i > mirror {
                a[mirror]
            } else {
                0.0
            }
        };
        let mut sx = x(0) / range;
        let mut sa = -a[0];
        for i in 1..n {
            sx += x(i) / range;
            let mirror = n - 1 - i;
            if i != mirror {
                sa += weight(i, mirror);
            }
        }
        let nf = n as f64;
        sa /= nf;
        sx /= nf;
        let (mut ssa, mut ssx, mut sax) = (0.0, 0.0, 0.0);
        for i in 0..n {
            let mirror = n - 1 - i;
            let asa = if i != mirror {
                weight(i, mirror) - sa
            } else {
                -sa
            };
            let xsx = x(i) / range - sx;
            ssa += asa * asa;
            ssx += xsx * xsx;
            sax += asa * xsx;
        }
        // W = 1 − w1, with w1 computed as a product so that W near 1 keeps
        // its digits (AS R94).
        let ssassx = (ssa * ssx).sqrt();
        let w1 = (ssassx - sax) * (ssassx + sax) / (ssa * ssx);
        let w = 1.0 - w1;
        Ok(TestResult {
            statistic: if n == 3 && w < 0.75 { 0.75 } else { w },
            p_value: p_value(n, w, w1),
        })
    }
}

/// AS R94's weights for `n` values: the upper half (positive), largest
/// first.
fn weights(n: usize) -> Vec<f64> {
    const C1: [f64; 6] = [0.0, 0.221157, -0.147981, -2.07119, 4.434685, -2.706056];
    const C2: [f64; 6] = [0.0, 0.042981, -0.293762, -1.752461, 5.682633, -3.582633];
    let half = n / 2;
    let mut a = vec![0.0; half];
    if n == 3 {
        a[0] = 2f64.sqrt() / 2.0;
        return a;
    }
    let an = n as f64;
    let an25 = an + 0.25;
    let mut summ2 = 0.0;
    for (i, slot) in a.iter_mut().enumerate() {
        let m = ppnd((i as f64 + 1.0 - 0.375) / an25);
        *slot = m;
        summ2 += m * m;
    }
    summ2 *= 2.0;
    let ssumm2 = summ2.sqrt();
    let rsn = 1.0 / an.sqrt();
    let a1 = poly(&C1, rsn) - a[0] / ssumm2;
    let (first_scaled, fac) = if n > 5 {
        let a2 = -a[1] / ssumm2 + poly(&C2, rsn);
        let fac = ((summ2 - 2.0 * (a[0] * a[0]) - 2.0 * (a[1] * a[1]))
            / (1.0 - 2.0 * (a1 * a1) - 2.0 * (a2 * a2)))
            .sqrt();
        a[1] = a2;
        (2, fac)
    } else {
        let fac = ((summ2 - 2.0 * (a[0] * a[0])) / (1.0 - 2.0 * (a1 * a1))).sqrt();
        (1, fac)
    };
    a[0] = a1;
    let factor = -1.0 / fac;
    for slot in &mut a[first_scaled..] {
        *slot *= factor;
    }
    a
}

/// The p-value of W (`w1 = 1 − W`) for `n` values, AS R94's
/// approximation.
fn p_value(n: usize, w: f64, w1: f64) -> f64 {
    const C3: [f64; 4] = [0.5440, -0.39978, 0.025054, -6.714e-4];
    const C4: [f64; 4] = [1.3822, -0.77857, 0.062767, -0.0020322];
    const C5: [f64; 4] = [-1.5861, -0.31082, -0.083751, 0.0038915];
    const C6: [f64; 3] = [-0.4803, -0.082676, 0.0030302];
    const G: [f64; 2] = [-2.273, 0.459];
    if n == 3 {
        // Exact (Shapiro & Wilk 1965); W ≥ 3/4 in exact arithmetic, so a
        // smaller W is rounding and has p = 0 (scipy gh-18322).
        return if w < 0.75 {
            0.0
        } else {
            1.0 - 6.0 / PI * w.sqrt().acos()
        };
    }
    let an = n as f64;
    let mut y = w1.ln();
    let ln_n = an.ln();
    let (m, s) = if n <= 11 {
        let gamma = poly(&G, an);
        if y >= gamma {
            return SMALL;
        }
        y = -(gamma - y).ln();
        (poly(&C3, an), poly(&C4, an).exp())
    } else {
        (poly(&C5, ln_n), poly(&C6, ln_n).exp())
    };
    alnorm_upper((y - m) / s)
}

/// `c[0] + c[1]x + … + c[k]xᵏ`, in AS R94's `POLY` order.
fn poly(c: &[f64], x: f64) -> f64 {
    let mut res = c[0];
    if c.len() == 1 {
        return res;
    }
    let mut p = x * c[c.len() - 1];
    if c.len() == 2 {
        return res + p;
    }
    for &coefficient in c[1..c.len() - 1].iter().rev() {
        p = (p + coefficient) * x;
    }
    res += p;
    res
}

/// The normal quantile Φ⁻¹(p), algorithm AS 111 (Beasley & Springer,
/// Applied Statistics 26, 1977), about 7 significant digits: the quantile
/// AS R94 was fitted with, so the weights must use it (not an exact one).
fn ppnd(p: f64) -> f64 {
    const A: [f64; 4] = [
        2.50662823884,
        -18.61500062529,
        41.39119773534,
        -25.44106049637,
    ];
    const B: [f64; 4] = [
        -8.47351093090,
        23.08336743743,
        -21.06224101826,
        3.13082909833,
    ];
    const C: [f64; 4] = [-2.78718931138, -2.29796479134, 4.85014127135, 2.32121276858];
    const D: [f64; 2] = [3.54388924762, 1.63706781897];
    const SPLIT: f64 = 0.42;
    let q = p - 0.5;
    if q.abs() <= SPLIT {
        let r = q * q;
        let numerator = q * (((A[3] * r + A[2]) * r + A[1]) * r + A[0]);
        return numerator / ((((B[3] * r + B[2]) * r + B[1]) * r + B[0]) * r + 1.0);
    }
    let mut r = if q > 0.0 { 1.0 - p } else { p };
    if r > 0.0 {
        r = (-r.ln()).sqrt();
    } else {
        return 0.0;
    }
    let value = (((C[3] * r + C[2]) * r + C[1]) * r + C[0]) / ((D[1] * r + D[0]) * r + 1.0);
    if q < 0.0 {
        -value
    } else {
        value
    }
}

/// The upper normal tail `1 − Φ(x)`, algorithm AS 66 (Hill, Applied
/// Statistics 22, 1973, with scipy's `utzero = 38`), about 1e-9 relative
/// against the exact tail. scipy's `swilk` uses it, so it is used here
/// too rather than [`crate::special::normal_sf`]: the p-values then agree
/// with scipy's to rounding instead of to AS 66's own error. NaN gives 1.
fn alnorm_upper(x: f64) -> f64 {
    const LTONE: f64 = 7.0;
    const UTZERO: f64 = 38.0;
    const CON: f64 = 1.28;
    const A: [f64; 7] = [
        0.398942280444,
        0.399903438504,
        5.75885480458,
        29.8213557808,
        2.62433121679,
        48.6959930692,
        5.92885724438,
    ];
    const B: [f64; 12] = [
        0.398942280385,
        3.8052e-8,
        1.00000615302,
        3.98064794e-4,
        1.98615381364,
        0.151679116635,
        5.29330324926,
        4.8385912808,
        15.1508972451,
        0.742380924027,
        30.789933034,
        3.99019417011,
    ];
    let mut upper = true;
    let mut z = x;
    // NaN takes this branch too, as in scipy.
    if z.is_nan() || z <= 0.0 {
        upper = false;
        z = -z;
    }
    let tabulated = z <= LTONE || (upper && z <= UTZERO);
    if !tabulated {
        return if upper { 0.0 } else { 1.0 };
    }
    let y = 0.5 * z * z;
    let tail = if z <= CON {
        0.5 - z * (A[0] - A[1] * y / (y + A[2] - A[3] / (y + A[4] + A[5] / (y + A[6]))))
    } else {
        B[0] * (-y).exp()
            / (z - B[1]
                + B[2]
                    / (z + B[3]
                        + B[4]
                            / (z - B[5]
                                + B[6] / (z + B[7] - B[8] / (z + B[9] + B[10] / (z + B[11]))))))
    };
    if upper {
        tail
    } else {
        1.0 - tail
    }
}
