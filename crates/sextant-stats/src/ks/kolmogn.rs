//! Distribution of the two-sided one-sample statistic `D_n` (scipy `kstwo`)
//! and its limit (scipy `kstwobign` / `scipy.special.kolmogorov`).
//!
//! Branch selection follows Simard & L'Ecuyer (2011), "Computing the
//! two-sided Kolmogorov-Smirnov distribution", J. Stat. Softw. 39(11), as
//! implemented by `scipy/stats/_ksstats.py::_kolmogn`.

use std::f64::consts::PI;

use super::double_double::DoubleDouble as Dd;
use super::numpy_compat::numpy_sum;
use super::smirnov::smirnov_sf;

/// Rescaling threshold of the recursions: 2^128 and 2^-128.
const SCALE_EXPONENT: i32 = 128;
const BIG: f64 = 3.402_823_669_209_385e38; // 2^128
const SMALL: f64 = 2.938_735_877_055_719e-39; // 2^-128

/// Survival function `P(D_n >= d)` of the two-sided Kolmogorov-Smirnov
/// statistic for a sample of size `n` — `scipy.stats.kstwo.sf(d, n)`.
///
/// Branches (Simard & L'Ecuyer 2011, scipy `_ksstats.py::_kolmogn`):
/// Ruben-Gambino closed forms for `nd <= 1` and `nd >= n-1`; twice the exact
/// one-sided Smirnov tail for `d >= 1/2` and for large `n d^2`; the Durbin
/// matrix algorithm (Marsaglia-Tsang-Wang 2003) or Pomeranz (1974) recursion
/// for `n <= 140`; for `n > 140` Durbin when `n d^1.5 <= 1.4` (and
/// `n <= 100000`), else the Pelz-Good (1976) asymptotic series.
pub fn kstwo_sf(d: f64, n: u64) -> f64 {
    if n == 0 || d.is_nan() {
        return f64::NAN;
    }
    let nf = n as f64;
    if d >= 1.0 {
        return 0.0;
    }
    // The distribution's support is (1/(2n), 1): scipy's rv_continuous
    // wrapper returns 1 below it before `_kolmogn` is reached.
    if d <= 0.5 / nf || d <= 0.0 {
        return 1.0;
    }
    let t = nf * d;
    if t <= 1.0 {
        if t <= 0.5 {
            return 1.0;
        }
        // Ruben & Gambino (1982): P(D_n <= d) = n! / n^n (2nd - 1)^n.
        let cdf = if n <= 140 {
            let step = 1.0 / nf;
            let base = 2.0 * t - 1.0;
            let mut product = 1.0;
            for i in 1..=n {
                product *= (i as f64) * step * base;
            }
            product
        } else {
            (log_nfactorial_div_n_pow_n(nf) + nf * (2.0 * t - 1.0).ln()).exp()
        };
        return clip_prob(1.0 - cdf);
    }
    if t >= nf - 1.0 {
        return clip_prob(2.0 * (1.0 - d).powf(nf));
    }
    if d >= 0.5 {
        return clip_prob(2.0 * smirnov_sf(n, d));
    }
    let n_d_squared = t * d;
    if n <= 140 {
        if n_d_squared <= 0.754_693 {
            return sf_from_extended_cdf(durbin_cdf(n, d));
        }
        if n_d_squared <= 4.0 {
            return sf_from_extended_cdf(pomeranz_cdf(n, d));
        }
        return clip_prob(2.0 * smirnov_sf(n, d));
    }
    if n_d_squared >= 370.0 {
        return 0.0;
    }
    if n_d_squared >= 2.2 {
        return clip_prob(2.0 * smirnov_sf(n, d));
    }
    if n <= 100_000 && nf * d.powf(1.5) <= 1.4 {
        sf_from_extended_cdf(durbin_cdf(n, d))
    } else {
        clip_prob(1.0 - pelz_good_cdf(nf, d))
    }
}

/// Limiting survival function `Q(x) = 2 sum_{k>=1} (-1)^(k-1) exp(-2 k^2 x^2)`
/// of `sqrt(n) D_n` — `scipy.special.kolmogorov(x)` (= `kstwobign.sf`).
///
/// For `x <= 0.82` uses the Jacobi-theta form
/// `1 - sqrt(2 pi)/x sum_k exp(-(2k-1)^2 pi^2 / (8 x^2))`, otherwise the
/// alternating series, each truncated after the terms that matter in double
/// precision (xsf `cephes/kolmogorov.h::_kolmogorov`; van Mulbregt 2018,
/// arXiv:1803.00426).
pub fn kolmogorov_sf(x: f64) -> f64 {
    if x.is_nan() {
        return f64::NAN;
    }
    // exp(-pi^2 / (8 x^2)) underflows below this: the cdf is exactly 0.
    let cdf_underflow = PI / (8.0 * 746.0_f64).sqrt();
    if x <= 0.0 || x <= cdf_underflow {
        return 1.0;
    }
    let sf = if x <= 0.82 {
        let w = (2.0 * PI).sqrt() / x;
        let log_u8 = -PI * PI / (x * x);
        let u = (log_u8 / 8.0).exp();
        let cdf = if u == 0.0 {
            (log_u8 / 8.0 + w.ln()).exp()
        } else {
            let u8 = log_u8.exp();
            let u24 = u8.powf(3.0);
            let mut p = 1.0 + u24;
            p = 1.0 + u8 * u8 * p;
            p = 1.0 + u8 * p;
            w * u * p
        };
        1.0 - cdf.clamp(0.0, 1.0)
    } else {
        let v = (-2.0 * x * x).exp();
        let v2 = v * v;
        let v3 = v.powf(3.0);
        let mut p = 1.0 - v3 * v3 * v;
        p = 1.0 - v3 * v2 * p;
        p = 1.0 - v3 * p;
        2.0 * v * p
    };
    sf.clamp(0.0, 1.0)
}

fn clip_prob(p: f64) -> f64 {
    p.clamp(0.0, 1.0)
}

/// The Durbin and Pomeranz paths finish in numpy `longdouble` once their
/// rescaling kicks in; `1 - cdf` is formed at that precision and only then
/// rounded, which double-double reproduces.
fn sf_from_extended_cdf(cdf: Dd) -> f64 {
    let cdf = if cdf.hi > 1.0 {
        Dd::ONE
    } else if cdf.hi < 0.0 {
        Dd::ZERO
    } else {
        cdf
    };
    clip_prob((Dd::ONE - cdf).to_f64())
}

/// `log(n! / n^n)` by Stirling's series (scipy `_log_nfactorial_div_n_pow_n`).
fn log_nfactorial_div_n_pow_n(n: f64) -> f64 {
    const STIRLING: [f64; 8] = [
        -2.955_065_359_477_124_183e-2,
        6.410_256_410_256_410_256_4e-3,
        -1.917_526_917_526_917_526_9e-3,
        8.417_508_417_508_417_508_4e-4,
        -5.952_380_952_380_952_381e-4,
        7.936_507_936_507_936_507_9e-4,
        -2.777_777_777_777_777_777_8e-3,
        8.333_333_333_333_333_333_3e-2,
    ];
    let rn = 1.0 / n;
    let z = rn / n;
    let series = STIRLING.iter().fold(0.0, |acc, &c| acc * z + c);
    n.ln() / 2.0 - n + (2.0 * PI).ln() / 2.0 + rn * series
}

/// A value carried with an extra binary exponent so the long products of
/// the recursions neither overflow nor underflow.
struct Scaled {
    value: Dd,
    /// Whether scipy would have switched to `longdouble` by now.
    extended: bool,
    exponent: i32,
}

impl Scaled {
    fn new(value: f64, exponent: i32) -> Self {
        Self {
            value: Dd::new(value),
            extended: false,
            exponent,
        }
    }

    /// Rounds like a `float64` until scipy's first rescale, extended after.
    fn round(&mut self) {
        if !self.extended {
            self.value = Dd::new(self.value.hi);
        }
    }

    fn finish(self) -> Dd {
        self.value.ldexp(self.exponent)
    }
}

/// `P(D_n < d)` by Durbin's matrix formula: `n!/n^n` times the `(k,k)`
/// entry of `H^n` with `k = ceil(nd)` (Durbin 1968; Marsaglia, Tsang & Wang
/// 2003, J. Stat. Softw. 8(18)). scipy `_kolmogn_DMTW`.
fn durbin_cdf(n: u64, d: f64) -> Dd {
    let nf = n as f64;
    if d >= 1.0 {
        return Dd::ONE;
    }
    let nd = nf * d;
    if nd <= 0.5 {
        return Dd::ZERO;
    }
    let k = nd.ceil() as usize;
    let h = k as f64 - nd;
    let m = 2 * k - 1;

    let mut v: Vec<f64> = (1..=m).map(|j| 1.0 - h.powf(j as f64)).collect();
    let mut w = vec![0.0; m];
    let mut inv_factorial = 1.0;
    for j in 1..=m {
        w[j - 1] = inv_factorial;
        inv_factorial /= j as f64;
        v[j - 1] *= inv_factorial;
    }
    let tail = (2.0 * h - 1.0).max(0.0).powf(m as f64) - 2.0 * h.powf(m as f64);
    v[m - 1] = (1.0 + tail) * inv_factorial;

    let mut base = Matrix::zeros(m);
    for col in 1..m {
        for row in (col - 1)..m {
            base.set(row, col, w[row + 1 - col]);
        }
    }
    for row in 0..m {
        base.set(row, 0, v[row]);
    }
    for col in 0..m {
        base.set(m - 1, col, v[m - 1 - col]);
    }

    // Binary powering with the scaling exponents tracked separately.
    let mut power = Matrix::identity(m);
    let mut power_exp: i32 = 0;
    let mut base_exp: i32 = 0;
    let mut remaining = n;
    while remaining > 0 {
        if remaining % 2 == 1 {
            power = power.matmul(&base);
            power_exp += base_exp;
        }
        remaining /= 2;
        if remaining == 0 {
            break; // scipy squares once more, but never uses the result
        }
        base = base.matmul(&base);
        base_exp *= 2;
        if base.get(k - 1, k - 1).abs() > BIG {
            base.scale(1.0 / BIG);
            base_exp += SCALE_EXPONENT;
        }
    }

    let mut p = Scaled::new(power.get(k - 1, k - 1), power_exp);
    for i in 1..=n {
        p.value = p.value * (i as f64);
        p.round();
        p.value = p.value / nf;
        p.round();
        if p.value.hi.abs() < SMALL {
            p.value = p.value * BIG;
            p.extended = true;
            p.exponent -= SCALE_EXPONENT;
        }
    }
    p.finish()
}

/// Dense row-major square matrix, just enough for Durbin's algorithm.
struct Matrix {
    size: usize,
    data: Vec<f64>,
}

impl Matrix {
    fn zeros(size: usize) -> Self {
        Self {
            size,
            data: vec![0.0; size * size],
        }
    }

    fn identity(size: usize) -> Self {
        let mut m = Self::zeros(size);
        for i in 0..size {
            m.set(i, i, 1.0);
        }
        m
    }

    fn get(&self, row: usize, col: usize) -> f64 {
        self.data[row * self.size + col]
    }

    fn set(&mut self, row: usize, col: usize, value: f64) {
        self.data[row * self.size + col] = value;
    }

    fn scale(&mut self, factor: f64) {
        self.data.iter_mut().for_each(|x| *x *= factor);
    }

    fn matmul(&self, other: &Self) -> Self {
        let n = self.size;
        let mut out = Self::zeros(n);
        for i in 0..n {
            let out_row = &mut out.data[i * n..(i + 1) * n];
            for l in 0..n {
                let a = self.data[i * n + l];
                if a == 0.0 {
                    continue;
                }
                let other_row = &other.data[l * n..(l + 1) * n];
                for (o, &b) in out_row.iter_mut().zip(other_row) {
                    *o += a * b;
                }
            }
        }
        out
    }
}

/// `P(D_n < d)` by Pomeranz's (1974) recursion over the `2n+2` breakpoints
/// `j/n` and `j/n +- d`, with Simard & L'Ecuyer's windowing of each row.
/// scipy `_kolmogn_Pomeranz`.
fn pomeranz_cdf(n: u64, x: f64) -> Dd {
    let nf = n as f64;
    let n = n as i64;
    let t = nf * x;
    let ll = t.floor() as i64;
    let f = t - ll as f64;
    let g = f.min(1.0 - f);
    let ceil_f = i64::from(f > 0.0);
    let round_f = i64::from(f > 0.5);
    let n_powers = (2 * (ll + 1)) as usize;

    // (c/n)^m / m! for the three interval lengths that occur.
    let series = |c: f64| {
        let mut out = vec![1.0; n_powers];
        for m in 1..n_powers {
            out[m] = out[m - 1] * c / m as f64;
        }
        out
    };
    let g_powers = series(g / nf);
    let two_g_powers = series(2.0 * g / nf);
    let one_minus_two_g_powers = series((1.0 - 2.0 * g) / nf);

    let window = |i: i64| -> (i64, i64) {
        let (j1, j2) = if i == 0 {
            (-ll - ceil_f - 1, ll + ceil_f - 1)
        } else {
            let half = (i + 1) / 2;
            if (i + 1) % 2 == 0 {
                if half == n + 1 {
                    (n - ll - ceil_f - 1, n + ll + ceil_f - 1)
                } else {
                    (half - 1 - ll - round_f - 1, half + ll - 1 + ceil_f - 1)
                }
            } else {
                (half - 1 - ll - 1, half + ll + round_f - 1)
            }
        };
        ((j1 + 2).max(0), j2.min(n))
    };

    let mut prev = vec![0.0; n_powers];
    let mut cur = vec![0.0; n_powers];
    cur[0] = 1.0;
    let (mut prev_start, mut cur_start) = (0_i64, 0_i64);
    let mut exponent: i32 = 0;
    let (mut j1, _) = window(0);
    let mut j2;
    for i in 1..(2 * n + 2) {
        let k1 = j1;
        std::mem::swap(&mut prev, &mut cur);
        std::mem::swap(&mut prev_start, &mut cur_start);
        cur.iter_mut().for_each(|v| *v = 0.0);
        (j1, j2) = window(i);
        let powers = if i == 1 || i == 2 * n + 1 {
            &g_powers
        } else if i % 2 == 1 {
            &two_g_powers
        } else {
            &one_minus_two_g_powers
        };
        let len = j2 - k1 + 1;
        if len > 0 {
            let from = (k1 - prev_start) as usize;
            let a = &prev[from.min(n_powers)..(from + len as usize).min(n_powers)];
            let b = &powers[..(len as usize).min(n_powers)];
            let conv_start = (j1 - k1) as usize;
            let conv_len = (j2 - j1 + 1).max(0) as usize;
            for (slot, out) in cur.iter_mut().take(conv_len).enumerate() {
                *out = convolution_at(a, b, conv_start + slot);
            }
            let max = cur.iter().copied().fold(f64::NEG_INFINITY, f64::max);
            if 0.0 < max && max < SMALL {
                cur.iter_mut().for_each(|v| *v *= BIG);
                exponent -= SCALE_EXPONENT;
            }
            cur_start = prev_start + j1 - k1;
        }
    }

    let mut ans = Scaled::new(cur[(n - cur_start) as usize], exponent);
    for m in 1..=n {
        if ans.value.hi.abs() > BIG {
            ans.value = ans.value * SMALL;
            ans.extended = true;
            ans.exponent += SCALE_EXPONENT;
        }
        ans.value = ans.value * (m as f64);
        ans.round();
    }
    ans.finish()
}

/// Entry `k` of the full discrete convolution of `a` and `b`.
fn convolution_at(a: &[f64], b: &[f64], k: usize) -> f64 {
    if a.is_empty() || b.is_empty() || k > a.len() + b.len() - 2 {
        return 0.0;
    }
    let lo = k.saturating_sub(b.len() - 1);
    let hi = k.min(a.len() - 1);
    (lo..=hi).map(|i| a[i] * b[k - i]).sum()
}

/// Pelz & Good (1976) asymptotic expansion
/// `P(D_n <= x) ~ K0(z) + K1(z)/sqrt(n) + K2(z)/n + K3(z)/n^1.5`, `z = x sqrt(n)`,
/// in the Jacobi-theta form that converges fast for small `z`.
/// scipy `_kolmogn_PelzGood`; the operation order follows it so results agree
/// to the last bits.
fn pelz_good_cdf(n: f64, x: f64) -> f64 {
    if x <= 0.0 {
        return 0.0;
    }
    if x >= 1.0 {
        return 1.0;
    }
    let pi2 = PI.powf(2.0);
    let pi4 = PI.powf(4.0);
    let pi6 = PI.powf(6.0);
    let sqrt_2pi = (2.0 * PI).sqrt();

    let z = n.sqrt() * x;
    let z2 = z.powf(2.0);
    let z3 = z.powf(3.0);
    let z4 = z.powf(4.0);
    let z6 = z.powf(6.0);

    let q_log = -pi2 / 8.0 / z2;
    if q_log < -708.0 {
        return 0.0;
    }
    let q = q_log.exp();

    let k1a = -z2;
    let k1b = pi2 / 4.0;
    let k2a = 6.0 * z6 + 2.0 * z4;
    let k2b = (2.0 * z4 - 5.0 * z2) * pi2 / 4.0;
    let k2c = pi4 * (1.0 - 2.0 * z2) / 16.0;
    let k3d = pi6 * (5.0 - 30.0 * z2) / 64.0;
    let k3c = pi4 * (-60.0 * z2 + 212.0 * z4) / 16.0;
    let k3b = pi2 * (135.0 * z4 - 96.0 * z6) / 4.0;
    let k3a = -30.0 * z6 - 90.0 * z.powf(8.0);

    let max_k = (16.0 * z / PI).ceil() as i64;
    let mut terms = [0.0_f64; 4];
    for k in (1..=max_k).rev() {
        let m = (2 * k - 1) as f64;
        let (m2, m4, m6) = (m * m, m.powi(2) * m.powi(2), m.powi(3) * m.powi(3));
        let q_power = q.powf((8 * k) as f64);
        let coeffs = [
            1.0,
            k1a + k1b * m2,
            k2a + k2b * m2 + k2c * m4,
            k3a + k3b * m2 + k3c * m4 + k3d * m6,
        ];
        for (term, c) in terms.iter_mut().zip(coeffs) {
            *term = *term * q_power + c;
        }
    }
    let divisors = [z, 6.0 * z4, 72.0 * z.powf(7.0), 6480.0 * z.powf(10.0)];
    for (term, div) in terms.iter_mut().zip(divisors) {
        *term = *term * q * sqrt_2pi / div;
    }

    // Corrections to K2 and K3 from the k^2-weighted theta series.
    let q = (-pi2 / 2.0 / z2).exp();
    let sqrt3_z = 3.0_f64.sqrt() * z;
    let mut k2_terms = Vec::with_capacity(max_k as usize);
    let mut k3_terms = Vec::with_capacity(max_k as usize);
    for k in (1..=max_k).rev() {
        let k_squared = (k * k) as f64;
        let k_pi = PI * k as f64;
        let q_power = q.powf(k_squared);
        k2_terms.push(k_squared * q_power);
        k3_terms.push((sqrt3_z + k_pi) * (sqrt3_z - k_pi) * k_squared * q_power);
    }
    terms[2] += numpy_sum(&k2_terms) * (pi2 * sqrt_2pi / (-36.0 * z3));
    terms[3] += numpy_sum(&k3_terms) * (pi2 * sqrt_2pi / (216.0 * z6));
    for (j, term) in terms.iter_mut().enumerate() {
        *term /= n.powf(j as f64 / 2.0);
    }
    terms.iter().fold(0.0, |acc, t| acc + t)
}
