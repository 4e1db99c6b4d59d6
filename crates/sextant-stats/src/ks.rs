//! Two-sample Kolmogorov-Smirnov test and the Kolmogorov distributions,
//! reproducing `scipy.stats.ks_2samp` (two-sided), `scipy.stats.kstwo.sf`
//! and `scipy.special.kolmogorov` of scipy 1.17.

mod double_double;
mod kolmogn;
pub(crate) mod numpy_compat;
mod smirnov;

pub use kolmogn::{kolmogorov_sf, kstwo_sf};

use crate::TestResult;

/// How [`ks_2samp_with`] computes the p-value (scipy's `method=`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum KsMethod {
    /// Exact when both samples have at most 10 000 observations, else asymptotic.
    #[default]
    Auto,
    /// Exact lattice-path count; falls back to asymptotic when the exact
    /// computation is not possible or not numerically valid.
    Exact,
    /// `kstwo.sf(D, round(n1 n2 / (n1 + n2)))`.
    Asymptotic,
}

/// scipy's `MAX_AUTO_N`: `method="auto"` is exact iff `max(n1, n2) <= 10000`.
const MAX_AUTO_EXACT_N: usize = 10_000;

/// Two-sided two-sample Kolmogorov-Smirnov test with scipy's default
/// `method="auto"`: `D = sup_x |F_ref(x) - F_cur(x)|` and its p-value.
///
/// Reproduces `scipy/stats/_stats_py.py::ks_2samp(alternative="two-sided")`.
/// Inputs need not be sorted and may contain ties; they must not contain NaN.
/// Panics if either sample is empty.
pub fn ks_2samp(reference: &[f64], current: &[f64]) -> TestResult {
    ks_2samp_with(reference, current, KsMethod::Auto)
}

/// [`ks_2samp`] with an explicit p-value method (scipy's `method=`).
pub fn ks_2samp_with(a: &[f64], b: &[f64], method: KsMethod) -> TestResult {
    let (a, b) = (sorted(a), sorted(b));
    ks_2samp_sorted_with(&a, &b, method)
}

/// [`ks_2samp`] for samples already sorted ascending (skips the O(n log n) sort).
pub fn ks_2samp_sorted(a_sorted: &[f64], b_sorted: &[f64]) -> TestResult {
    ks_2samp_sorted_with(a_sorted, b_sorted, KsMethod::Auto)
}

/// [`ks_2samp_with`] for samples already sorted ascending.
pub fn ks_2samp_sorted_with(a: &[f64], b: &[f64], method: KsMethod) -> TestResult {
    assert!(
        !a.is_empty() && !b.is_empty(),
        "ks_2samp: samples must not be empty"
    );
    debug_assert!(a.windows(2).all(|w| w[0] <= w[1]) && b.windows(2).all(|w| w[0] <= w[1]));
    let d = max_ecdf_distance(a, b);
    let (n1, n2) = (a.len(), b.len());

    let exact_first = match method {
        KsMethod::Auto => n1.max(n2) <= MAX_AUTO_EXACT_N,
        KsMethod::Exact => {
            // scipy gives up on exact when lcm(n1, n2) would overflow an i32.
            let g = gcd(n1 as u64, n2 as u64);
            ((n1 as u64 / g) as f64) < f64::from(i32::MAX) / ((n2 as u64 / g) as f64)
        }
        KsMethod::Asymptotic => false,
    };
    let mut statistic = d;
    if exact_first {
        let exact = exact_two_sided(n1 as u64, n2 as u64, d);
        statistic = exact.rounded_d;
        if let Some(p) = exact.p_value {
            return TestResult {
                statistic,
                p_value: p.clamp(0.0, 1.0),
            };
        }
    }
    let (m, n) = (n1.max(n2) as f64, n1.min(n2) as f64);
    let effective_n = (m * n / (m + n)).round_ties_even() as u64;
    TestResult {
        statistic,
        p_value: kstwo_sf(statistic, effective_n).clamp(0.0, 1.0),
    }
}

/// The two-sided test with the p-value of Kolmogorov's limiting
/// distribution, `P(K > √(n₁n₂/(n₁+n₂)) · D)` (Smirnov 1939; the series
/// of `scipy.special.kolmogorov`), for sorted samples.
///
/// The limit is what large samples approach; it costs a few terms of a
/// series where scipy's finite-n `kstwo.sf` can take O(n) work for small
/// p-values. Monitoring uses it above 10 000 observations a side, where
/// only whether p is below a significance level matters, not its digits.
pub fn ks_2samp_limiting_sorted(a: &[f64], b: &[f64]) -> TestResult {
    assert!(
        !a.is_empty() && !b.is_empty(),
        "ks_2samp: samples must not be empty"
    );
    let d = max_ecdf_distance(a, b);
    let (n1, n2) = (a.len() as f64, b.len() as f64);
    let scale = (n1 * n2 / (n1 + n2)).sqrt();
    TestResult {
        statistic: d,
        p_value: kolmogorov_sf(scale * d).clamp(0.0, 1.0),
    }
}

fn sorted(x: &[f64]) -> Vec<f64> {
    crate::sort::sorted_floats(x.iter().copied())
}

/// `max_x |F_a(x) - F_b(x)|` by one merge walk over the sorted samples.
///
/// Evaluated at every observed value with right-continuous ECDFs, exactly as
/// scipy's `searchsorted(..., side="right")` formulation, so ties are handled
/// identically and the floating-point value of `D` is bit-identical.
fn max_ecdf_distance(a: &[f64], b: &[f64]) -> f64 {
    let (n1, n2) = (a.len() as f64, b.len() as f64);
    let (mut i, mut j) = (0, 0);
    let (mut max_diff, mut min_diff) = (f64::NEG_INFINITY, f64::INFINITY);
    while i < a.len() || j < b.len() {
        let value = match (a.get(i), b.get(j)) {
            (Some(&x), Some(&y)) => x.min(y),
            (Some(&x), None) => x,
            (None, Some(&y)) => y,
            (None, None) => unreachable!(),
        };
        while i < a.len() && a[i] <= value {
            i += 1;
        }
        while j < b.len() && b[j] <= value {
            j += 1;
        }
        let diff = i as f64 / n1 - j as f64 / n2;
        max_diff = max_diff.max(diff);
        min_diff = min_diff.min(diff);
    }
    let below = (-min_diff).clamp(0.0, 1.0);
    if below > max_diff {
        below
    } else {
        max_diff
    }
}

struct ExactOutcome {
    /// `D` snapped to the lattice: `round(D * lcm) / lcm`.
    rounded_d: f64,
    /// `None` when the computation was not valid (scipy then goes asymptotic).
    p_value: Option<f64>,
}

/// Exact `P(D_{n1,n2} >= d)` under H0 (scipy `_attempt_exact_2kssamp`,
/// two-sided): Hodges (1958) lattice-path counting.
fn exact_two_sided(n1: u64, n2: u64, d: f64) -> ExactOutcome {
    let g = gcd(n1, n2);
    let lcm = (n1 / g) * n2;
    let h = (d * lcm as f64).round_ties_even() as u64;
    let rounded_d = h as f64 / lcm as f64;
    if h == 0 {
        return ExactOutcome {
            rounded_d,
            p_value: Some(1.0),
        };
    }
    let p = if n1 == n2 {
        prob_outside_square(n1, h)
    } else {
        prob_outside_band(n1, n2, g, h)
    };
    let valid = (0.0..=1.0).contains(&p);
    ExactOutcome {
        rounded_d,
        p_value: valid.then_some(p),
    }
}

/// `P(D_{n,n} >= h/n)` for equal sample sizes via the reflection formula
/// `2 sum_{k>=1} (-1)^(k-1) C(2n, n-kh) / C(2n, n)`, evaluated as nested
/// products `2 A0 (1 - A1 (1 - A2 (...)))` to avoid cancellation
/// (scipy `_compute_prob_outside_square`).
fn prob_outside_square(n: u64, h: u64) -> f64 {
    let (n, h) = (n as i64, h as i64);
    let mut p = 0.0;
    for k in (0..=n / h).rev() {
        // A_k = C(2n, n-kh-h) / C(2n, n-kh), a product of h ratios.
        let mut ratio = 1.0;
        for j in 0..h {
            ratio = (n - k * h - j) as f64 * ratio / (n + k * h + j + 1) as f64;
        }
        p = ratio * (1.0 - p);
    }
    2.0 * p
}

/// `P(D_{m,n} >= h/lcm(m,n))` for unequal sizes: the proportion of monotone
/// lattice paths from (0,0) to (m,n) that leave the band `|x/m - y/n| < h/lcm`.
///
/// Column-by-column recursion over a sliding window that directly carries
/// the *complement* proportion, so no large binomial coefficient is ever
/// formed (Hodges 1958; Viehmann 2021, arXiv:2102.08037). Reproduces scipy's
/// `_stats_pythran.py::_compute_outer_prob_inside_method`; O(m * window).
fn prob_outside_band(m: u64, n: u64, g: u64, h: u64) -> f64 {
    let (m, n) = if m < n { (n, m) } else { (m, n) };
    let (m, n, h) = (m as i64, n as i64, h as i64);
    let (mg, ng) = (m / (g as i64), n / (g as i64));
    let floor_div = |a: i64, b: i64| a.div_euclid(b);
    let ceil_div = |a: i64, b: i64| -(-a).div_euclid(b);

    let mut min_j: i64 = 0;
    let mut max_j: i64 = ceil_div(h, mg).min(n + 1);
    let mut cur_len = max_j - min_j;
    let window = (2 * max_j + 2).min(n + 1) as usize;
    let mut column = vec![1.0_f64; window];
    column[..max_j as usize].iter_mut().for_each(|v| *v = 0.0);
    for i in 1..=m {
        let (last_min_j, last_len) = (min_j, cur_len);
        min_j = (floor_div(ng * i - h, mg) + 1).max(0).min(n);
        max_j = ceil_div(ng * i + h, mg).min(n + 1);
        if max_j <= min_j {
            return 1.0;
        }
        let fi = i as f64;
        let mut val = if min_j == 0 { 0.0 } else { 1.0 };
        for jj in 0..(max_j - min_j) {
            let j = (jj + min_j) as f64;
            val = (column[(jj + min_j - last_min_j) as usize] * fi + val * j) / (fi + j);
            column[jj as usize] = val;
        }
        cur_len = max_j - min_j;
        if last_len > cur_len {
            let from = (max_j - min_j) as usize;
            let to = (from + (last_len - cur_len) as usize).min(window);
            column[from..to].iter_mut().for_each(|v| *v = 1.0);
        }
    }
    column[(max_j - min_j - 1) as usize]
}

fn gcd(mut a: u64, mut b: u64) -> u64 {
    while b != 0 {
        (a, b) = (b, a % b);
    }
    a
}
