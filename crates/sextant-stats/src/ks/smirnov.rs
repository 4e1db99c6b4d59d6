//! One-sided Kolmogorov-Smirnov (Smirnov) survival function `P(D+_n >= x)`.

use super::double_double::DoubleDouble as Dd;

/// cephes `MINLOG`: `exp` of anything smaller underflows to zero.
const MIN_LOG: f64 = -7.083_964_185_322_641e2;
/// Above this `n` scipy switches to an asymptotic approximation.
const SMIRNOV_MAX_COMPUTE_N: u64 = 1_000_000;
/// The alternating "upper" sum is only used when it has this few terms...
const UPPER_SUM_MAX_TERMS: u64 = 3;
/// ...and `n` is at least this large (otherwise accuracy drops ~1.6 bits a term).
const UPPER_SUM_MIN_N: u64 = 10;

/// Survival function of the one-sided statistic, `scipy.special.smirnov(n, x)`.
///
/// Exact Birnbaum-Tingey (1951) / Smirnov (1944) sum
/// `P(D+_n >= x) = x * sum_{v=0}^{floor(n(1-x))} C(n,v) (x+v/n)^(v-1) (1-x-v/n)^(n-v)`,
/// evaluated in double-double with separate binary exponents for the
/// binomial and the powers (van Mulbregt 2018, arXiv:1802.06966), which is the
/// algorithm of scipy's xsf `cephes/kolmogorov.h::_smirnov`. Closed forms are
/// used for `x <= 1/n` and `x >= 1 - 1/n`; for `n > 10^6` the approximation
/// `exp(-(6nx+1)^2 / 18n)` is used, as scipy does.
pub(crate) fn smirnov_sf(n: u64, x: f64) -> f64 {
    if n == 0 || !(0.0..=1.0).contains(&x) {
        return f64::NAN;
    }
    if n == 1 {
        return 1.0 - x;
    }
    if x == 0.0 {
        return 1.0;
    }
    if x == 1.0 {
        return 0.0;
    }
    let nf = n as f64;

    // floor(n x) and its fractional part, computed exactly.
    let nx_exact = Dd::new(x) * nf;
    let mut nx_floor_dd = nx_exact.floor();
    let mut alpha = (nx_exact - nx_floor_dd).hi;
    if alpha == 1.0 {
        nx_floor_dd = nx_floor_dd + 1.0;
        alpha = 0.0;
    }
    let nx_floor = nx_floor_dd.to_f64() as u64;

    // x <= 1/n: P(D+ >= x) = 1 - x (1 + x)^(n-1).
    if nx_floor == 0 || (nx_floor == 1 && alpha == 0.0) {
        let cdf = x * pow_dd(Dd::ONE + x, n - 1).to_f64();
        return (1.0 - cdf).clamp(0.0, 1.0);
    }
    if -2.0 * nf * x * x < MIN_LOG {
        return 0.0;
    }
    // x >= 1 - 1/n: only the v = 0 term survives.
    if nx_floor >= n - 1 {
        return pow_dd(Dd::ONE - x, n).to_f64().clamp(0.0, 1.0);
    }
    if n > SMIRNOV_MAX_COMPUTE_N {
        let log_p = -(6.0 * nf * x + 1.0).powf(2.0) / 18.0 / nf;
        let sf = if log_p < -std::f64::consts::LN_2 {
            log_p.exp()
        } else {
            1.0 - (-log_p.exp_m1())
        };
        return sf.clamp(0.0, 1.0);
    }

    // Last index of the lower sum (terms with x + v/n < 1), and first of the upper.
    let alpha_is_zero = alpha == 0.0;
    let mut lower_last = n - nx_floor - u64::from(!alpha_is_zero);
    let mut upper_first = n - nx_floor;
    if alpha_is_zero {
        // The boundary term is zero: keep it out of both sums.
        lower_last -= 1;
        upper_first += 1;
    }
    let upper_terms = n - upper_first + 1;
    let use_upper_sum = (upper_terms <= 1 && x < 0.5)
        || (n >= UPPER_SUM_MIN_N && upper_terms <= UPPER_SUM_MAX_TERMS && x <= 0.5 / nf.sqrt());

    let (first_term, n_terms) = if use_upper_sum {
        // v = n: C(n,n) (1+x)^(n-1) (0)^0
        (pow_dd(Dd::ONE + x, n - 1), upper_terms)
    } else {
        // v = 0: (1-x)^n / x
        (pow_dd(Dd::ONE - x, n) / x, lower_last + 1)
    };

    // The terms are unimodal in v. For large n most of them are negligible
    // but scipy still evaluates them all (O(n) double-double powers). A cheap
    // f64 pass over log|A_v| finds the peak so that terms more than e^-60
    // below it can be skipped: together they change the sum by < n e^-60,
    // far below double precision.
    let log_peak = if use_upper_sum {
        f64::INFINITY
    } else {
        lower_sum_log_peak(n, x, n_terms)
    };
    let negligible = |log_term: f64| log_term < log_peak - 60.0;

    let mut sum = first_term;
    let half_n = n / 2;
    // C(n, j) as a double-double mantissa and a binary exponent.
    let (mut binom_mant, mut binom_exp) = (Dd::ONE, 0_i64);
    let mut ln_binom = 0.0;
    let mut past_peak = false;
    update_binomial(&mut binom_mant, &mut binom_exp, n, 0);
    for j in 1..n_terms {
        let v = if use_upper_sum { n - j } else { j };
        if !use_upper_sum {
            ln_binom += ((n - j + 1) as f64 / j as f64).ln();
            let log_term = lower_log_term(n, x, v, ln_binom);
            past_peak |= log_term >= log_peak - 1e-6 * log_peak.abs().max(1.0);
            if negligible(log_term) {
                if past_peak {
                    break;
                }
                update_binomial(&mut binom_mant, &mut binom_exp, n, j);
                continue;
            }
        }
        let term = birnbaum_tingey_term(n, x, v, binom_mant, binom_exp);
        if term.hi.is_finite() && term.hi != 0.0 {
            sum = sum + term;
        }
        if term.hi != 0.0 {
            let remaining = (n_terms - j) as f64;
            if 4.0 * remaining * term.to_f64().abs() < f64::EPSILON * sum.to_f64()
                && j != n_terms - 1
            {
                break;
            }
        } else if j > half_n {
            break;
        }
        update_binomial(&mut binom_mant, &mut binom_exp, n, j);
    }
    let prob = (sum * x).to_f64();
    let sf = if use_upper_sum { 1.0 - prob } else { prob };
    sf.clamp(0.0, 1.0)
}

/// `log A_v` in plain f64, accurate to ~1e-9 absolute: enough to rank terms.
fn lower_log_term(n: u64, x: f64, v: u64, ln_binom: f64) -> f64 {
    let nf = n as f64;
    let vf = v as f64;
    ln_binom + (vf - 1.0) * (x + vf / nf).ln() + (nf - vf) * (1.0 - x - vf / nf).ln()
}

/// Largest `log A_v` of the lower sum (`v = 0` is `(1-x)^n / x`).
fn lower_sum_log_peak(n: u64, x: f64, n_terms: u64) -> f64 {
    let mut peak = n as f64 * (1.0 - x).ln() - x.ln();
    let mut ln_binom = 0.0;
    for j in 1..n_terms {
        ln_binom += ((n - j + 1) as f64 / j as f64).ln();
        let log_term = lower_log_term(n, x, j, ln_binom);
        if log_term > peak {
            peak = log_term;
        } else if log_term < peak - 60.0 {
            break; // unimodal: everything further is smaller still
        }
    }
    peak
}

/// `C(n, v) (1 - x - v/n)^(n-v) (x + v/n)^(v-1)` for `1 <= v < n`.
fn birnbaum_tingey_term(n: u64, x: f64, v: u64, binom_mant: Dd, binom_exp: i64) -> Dd {
    let nf = n as f64;
    let right = Dd::new((n - v) as f64) / nf - x;
    let (right_pow, right_exp) = right.powi_scaled(n - v);
    let left = Dd::new(v as f64) / nf + x;
    let (left_pow, left_exp) = left.powi_scaled(v - 1);
    let mantissa = left_pow * right_pow * binom_mant;
    let exponent = binom_exp + left_exp + right_exp;
    mantissa.ldexp(exponent.clamp(-4000, 4000) as i32)
}

/// `C(n, j+1) = C(n, j) (n-j)/(j+1)`, renormalising the mantissa.
fn update_binomial(mant: &mut Dd, exp: &mut i64, n: u64, j: u64) {
    let ratio = Dd::new((n - j) as f64) / ((j + 1) as f64);
    let (m, e) = (*mant * ratio).frexp();
    *mant = m;
    *exp += i64::from(e);
}

/// `base^m` in double-double (saturating to 0 / inf outside the f64 range).
fn pow_dd(base: Dd, m: u64) -> Dd {
    if base.hi == 0.0 {
        return if m == 0 { Dd::ONE } else { Dd::ZERO };
    }
    let (mant, exp) = base.powi_scaled(m);
    mant.ldexp(exp.clamp(-4000, 4000) as i32)
}

#[cfg(test)]
mod tests {
    use super::smirnov_sf;

    /// `scipy.special.smirnov` golden values from `tests/golden/ks_cvm_anderson.py`.
    #[test]
    fn matches_scipy_special_smirnov() {
        let path = crate::source_file("tests/golden/ks_cvm_anderson.json");
        let golden: serde_json::Value =
            serde_json::from_str(&std::fs::read_to_string(path).unwrap()).unwrap();
        let mut failures = Vec::new();
        for case in golden["smirnov_sf"].as_array().unwrap() {
            let (n, x) = (case["n"].as_u64().unwrap(), case["x"].as_f64().unwrap());
            let (expected, actual) = (case["sf"].as_f64().unwrap(), smirnov_sf(n, x));
            if (actual - expected).abs() > 1e-12 * expected.abs() + 1e-300 {
                failures.push(format!(
                    "smirnov({n}, {x}): got {actual:e}, scipy {expected:e}"
                ));
            }
        }
        assert!(failures.is_empty(), "{}", failures.join("\n"));
    }
}
