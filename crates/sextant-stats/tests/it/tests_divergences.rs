//! special, divergence, wasserstein, contingency and correction against
//! `tests/golden/tests_divergences.json` (scipy 1.17.1 / numpy 2.4.6, and
//! 50-digit mpmath for the special functions), plus property checks.
//!
//! Tolerance: 1e-12 relative against scipy everywhere, with 1e-300
//! absolute so values that underflow (or land in subnormals) on either
//! side compare equal. Against the exact mpmath values the special
//! functions are held tighter; each test states its bound.

use serde_json::Value;
use sextant_stats::contingency::{
    chi2_contingency, chi_square_goodness_of_fit, fisher_exact_2x2, g_test_contingency,
    g_test_goodness_of_fit, two_proportion_z, two_proportion_z_evidently, ContingencyError,
};
use sextant_stats::correction::{benjamini_hochberg, bonferroni};
use sextant_stats::divergence::{
    hellinger, jensen_shannon_distance, kl_divergence, l_infinity, psi, LogBase,
};
use sextant_stats::special::{
    chi2_sf, erf, erfc, gamma_p, gamma_q, ln_factorial, ln_gamma, normal_cdf, normal_sf,
};
use sextant_stats::wasserstein::{wasserstein_1, wasserstein_1_sorted, wasserstein_normed};

const SCIPY_RTOL: f64 = 1e-12;
const UNDERFLOW_ATOL: f64 = 1e-300;

fn data() -> Value {
    crate::golden("tests_divergences")
}

fn number(value: &Value) -> f64 {
    match value {
        Value::String(s) => match s.as_str() {
            "inf" => f64::INFINITY,
            "-inf" => f64::NEG_INFINITY,
            "nan" => f64::NAN,
            other => panic!("unexpected non-finite marker {other}"),
        },
        other => other
            .as_f64()
            .unwrap_or_else(|| panic!("not a number: {other}")),
    }
}

fn numbers(value: &Value) -> Vec<f64> {
    value
        .as_array()
        .expect("array")
        .iter()
        .map(number)
        .collect()
}

fn relative_error(actual: f64, expected: f64) -> f64 {
    if actual == expected || (actual.is_nan() && expected.is_nan()) {
        return 0.0;
    }
    if (actual - expected).abs() <= UNDERFLOW_ATOL {
        return 0.0;
    }
    (actual - expected).abs() / expected.abs().max(actual.abs())
}

#[track_caller]
fn assert_close(actual: f64, expected: f64, rtol: f64, what: &str) {
    let error = relative_error(actual, expected);
    assert!(
        error <= rtol,
        "{what}: got {actual:e}, expected {expected:e} (relative error {error:e} > {rtol:e})"
    );
}

// ------------------------------------------------------------------ special

#[test]
fn ln_gamma_matches_scipy_and_exact() {
    for case in data()["ln_gamma"].as_array().unwrap() {
        let x = number(&case["x"]);
        let got = ln_gamma(x);
        assert_close(
            got,
            number(&case["scipy"]),
            SCIPY_RTOL,
            &format!("ln_gamma({x})"),
        );
        let exact = number(&case["exact"]);
        // Relative 1e-15, or absolute 4e-15 below 10 where the recurrence
        // subtracts terms of size ~ln Γ(10) (relative accuracy is lost only
        // next to the zeros at 1 and 2).
        let ok = relative_error(got, exact) <= 1e-15 || (x < 10.0 && (got - exact).abs() <= 4e-15);
        assert!(ok, "ln_gamma({x}) = {got:e}, exact {exact:e}");
    }
}

#[test]
fn ln_factorial_matches_scipy_and_exact() {
    for case in data()["ln_factorial"].as_array().unwrap() {
        let n = case["n"].as_u64().unwrap();
        let got = ln_factorial(n);
        assert_close(
            got,
            number(&case["scipy"]),
            SCIPY_RTOL,
            &format!("ln_factorial({n})"),
        );
        assert_close(
            got,
            number(&case["exact"]),
            1e-15,
            &format!("ln_factorial({n}) exact"),
        );
    }
}

/// Bound against the exact value for results that come out of
/// `exp(exponent)`: the exponent's rounding costs |ln value| ulps, and for
/// a < 10 `ln_gamma(a)`'s absolute error (≤ 4e-15) enters as relative error.
fn exponent_tolerance(value: f64) -> f64 {
    1e-14 + 2.5e-16 * value.ln().abs()
}

#[test]
fn incomplete_gamma_matches_scipy_and_exact() {
    for case in data()["gamma"].as_array().unwrap() {
        let (a, x) = (number(&case["a"]), number(&case["x"]));
        let (p, q) = (gamma_p(a, x), gamma_q(a, x));
        assert_close(
            p,
            number(&case["p_scipy"]),
            SCIPY_RTOL,
            &format!("P({a}, {x})"),
        );
        assert_close(
            q,
            number(&case["q_scipy"]),
            SCIPY_RTOL,
            &format!("Q({a}, {x})"),
        );
        let (p_exact, q_exact) = (number(&case["p_exact"]), number(&case["q_exact"]));
        // P is computed directly (series) for x < a + 1, Q (continued
        // fraction) otherwise; the other one as one minus it is held to
        // absolute accuracy only.
        let (direct, direct_exact) = if x < a + 1.0 {
            (p, p_exact)
        } else {
            (q, q_exact)
        };
        assert_close(
            direct,
            direct_exact,
            exponent_tolerance(direct_exact),
            &format!("P/Q({a}, {x}) exact"),
        );
        // ln_gamma's absolute error (≤ 4e-15 below 10) bounds the absolute error.
        assert!(
            (p - p_exact).abs() <= 4e-15 && (q - q_exact).abs() <= 4e-15,
            "P/Q({a}, {x}) absolute"
        );
    }
}

#[test]
fn chi2_sf_matches_scipy_and_exact() {
    for case in data()["chi2_sf"].as_array().unwrap() {
        let (x, df) = (number(&case["x"]), number(&case["df"]));
        let got = chi2_sf(x, df);
        assert_close(
            got,
            number(&case["scipy"]),
            SCIPY_RTOL,
            &format!("chi2_sf({x}, {df})"),
        );
        let exact = number(&case["exact"]);
        assert_close(
            got,
            exact,
            exponent_tolerance(exact),
            &format!("chi2_sf({x}, {df}) exact"),
        );
    }
    assert!(chi2_sf(1.0, 0.0).is_nan());
    assert_eq!(chi2_sf(-1.0, 3.0), 1.0);
    assert_eq!(chi2_sf(f64::INFINITY, 3.0), 0.0);
}

#[test]
fn normal_tails_match_scipy_and_exact() {
    for case in data()["normal"].as_array().unwrap() {
        let x = number(&case["x"]);
        let (cdf, sf) = (normal_cdf(x), normal_sf(x));
        assert_close(
            cdf,
            number(&case["cdf_scipy"]),
            SCIPY_RTOL,
            &format!("normal_cdf({x})"),
        );
        assert_close(
            sf,
            number(&case["sf_scipy"]),
            SCIPY_RTOL,
            &format!("normal_sf({x})"),
        );
        // Cody's erfc is good to ~1e-16, but forming x/√2 rounds the argument
        // (≤ 1 ulp) and the tail's condition number is ~x², as in scipy's ndtr.
        let tolerance = 2e-15 + 2.5e-16 * x * x;
        assert_close(
            cdf,
            number(&case["cdf_exact"]),
            tolerance,
            &format!("normal_cdf({x}) exact"),
        );
        assert_close(
            sf,
            number(&case["sf_exact"]),
            tolerance,
            &format!("normal_sf({x}) exact"),
        );
    }
}

#[test]
fn erf_and_erfc_match_scipy_and_exact() {
    for case in data()["erfc"].as_array().unwrap() {
        let x = number(&case["x"]);
        assert_close(
            erfc(x),
            number(&case["erfc_scipy"]),
            SCIPY_RTOL,
            &format!("erfc({x})"),
        );
        assert_close(
            erf(x),
            number(&case["erf_scipy"]),
            SCIPY_RTOL,
            &format!("erf({x})"),
        );
        assert_close(
            erfc(x),
            number(&case["erfc_exact"]),
            2e-15,
            &format!("erfc({x}) exact"),
        );
        assert_close(
            erf(x),
            number(&case["erf_exact"]),
            2e-15,
            &format!("erf({x}) exact"),
        );
    }
}

// --------------------------------------------------------------- divergence

#[test]
fn divergences_match_scipy() {
    for case in data()["divergence"].as_array().unwrap() {
        let name = case["name"].as_str().unwrap();
        let (p, q) = (numbers(&case["p"]), numbers(&case["q"]));
        let js2 = jensen_shannon_distance(&p, &q, LogBase::Two);
        let js_nats = jensen_shannon_distance(&p, &q, LogBase::E);
        // scipy's JS sum cancels for nearly identical inputs (its value there
        // is rounding noise, off by ~10x); that case is held to the exact value only.
        if name != "nearly identical" {
            assert_close(
                js2,
                number(&case["js_base2"]),
                SCIPY_RTOL,
                &format!("{name}: JS base 2"),
            );
            assert_close(
                js_nats,
                number(&case["js_nats"]),
                SCIPY_RTOL,
                &format!("{name}: JS nats"),
            );
        }
        assert_close(
            js2,
            number(&case["js_base2_exact"]),
            1e-14,
            &format!("{name}: JS base 2 exact"),
        );
        assert_close(
            js_nats,
            number(&case["js_nats_exact"]),
            1e-14,
            &format!("{name}: JS nats exact"),
        );
        let kl = kl_divergence(&p, &q);
        if name == "nearly identical" {
            // KL ≈ 3e-17 here: scipy's sum and ours both carry ~1e-16
            // absolute rounding (terms of size 0.3 cancel), so only the
            // absolute agreement is meaningful.
            assert!(
                (kl - number(&case["kl"])).abs() < 2e-16,
                "{name}: KL {kl:e}"
            );
        } else {
            assert_close(kl, number(&case["kl"]), SCIPY_RTOL, &format!("{name}: KL"));
        }
        // Exact (mpmath) reference: the difference-of-roots form is good to a few ulps.
        assert_close(
            hellinger(&p, &q),
            number(&case["hellinger"]),
            1e-14,
            &format!("{name}: Hellinger"),
        );
        assert_close(
            l_infinity(&p, &q),
            number(&case["l_infinity"]),
            SCIPY_RTOL,
            &format!("{name}: L-inf"),
        );
    }
}

#[test]
fn psi_matches_numpy_formula() {
    for case in data()["psi"].as_array().unwrap() {
        let name = case["name"].as_str().unwrap();
        let got = psi(&numbers(&case["reference"]), &numbers(&case["current"]));
        assert_close(
            got,
            number(&case["expected"]),
            SCIPY_RTOL,
            &format!("{name}: PSI"),
        );
    }
    assert_eq!(psi(&[0.0, 0.5, 0.5], &[0.0, 0.5, 0.5]), 0.0);
    assert_eq!(psi(&[0.0, 1.0], &[0.5, 0.5]), f64::INFINITY);
}

// -------------------------------------------------------------- wasserstein

#[test]
fn wasserstein_matches_scipy() {
    for case in data()["wasserstein"].as_array().unwrap() {
        let name = case["name"].as_str().unwrap();
        let (u, v) = (numbers(&case["u"]), numbers(&case["v"]));
        assert_close(
            wasserstein_1(&u, &v),
            number(&case["w1"]),
            SCIPY_RTOL,
            &format!("{name}: W1"),
        );
        assert_close(
            wasserstein_1(&v, &u),
            number(&case["w1_swapped"]),
            SCIPY_RTOL,
            &format!("{name}: W1 swapped"),
        );
        assert_close(
            wasserstein_normed(&u, &v),
            number(&case["normed"]),
            SCIPY_RTOL,
            &format!("{name}: normed"),
        );
        let (mut us, mut vs) = (u.clone(), v.clone());
        us.sort_by(f64::total_cmp);
        vs.sort_by(f64::total_cmp);
        assert_eq!(
            wasserstein_1_sorted(&us, &vs),
            wasserstein_1(&u, &v),
            "{name}: sorted entry point"
        );
    }
    assert!(wasserstein_1(&[], &[1.0]).is_nan());
    assert!(wasserstein_1(&[f64::NAN], &[1.0]).is_nan());
}

// -------------------------------------------------------------- contingency

#[track_caller]
fn assert_test(actual: sextant_stats::TestResult, expected: &Value, what: &str) {
    assert_close(
        actual.statistic,
        number(&expected[0]),
        SCIPY_RTOL,
        &format!("{what}: statistic"),
    );
    assert_close(
        actual.p_value,
        number(&expected[1]),
        SCIPY_RTOL,
        &format!("{what}: p-value"),
    );
}

#[test]
fn goodness_of_fit_matches_scipy() {
    for case in data()["goodness_of_fit"].as_array().unwrap() {
        let name = case["name"].as_str().unwrap();
        let (observed, expected) = (numbers(&case["observed"]), numbers(&case["expected"]));
        assert_test(
            chi_square_goodness_of_fit(&observed, &expected),
            &case["chi2"],
            &format!("{name}: chi2"),
        );
        assert_test(
            g_test_goodness_of_fit(&observed, &expected),
            &case["g"],
            &format!("{name}: G"),
        );
    }
}

#[test]
fn contingency_tests_match_scipy() {
    for case in data()["contingency"].as_array().unwrap() {
        let name = case["name"].as_str().unwrap();
        let rows: Vec<Vec<f64>> = case["table"]
            .as_array()
            .unwrap()
            .iter()
            .map(numbers)
            .collect();
        let table: Vec<&[f64]> = rows.iter().map(Vec::as_slice).collect();
        for (result, expected, kind) in [
            (chi2_contingency(&table).unwrap(), &case["chi2"], "chi2"),
            (g_test_contingency(&table).unwrap(), &case["g"], "G"),
        ] {
            let what = format!("{name}: {kind}");
            assert_close(
                result.statistic,
                number(&expected[0]),
                SCIPY_RTOL,
                &format!("{what} statistic"),
            );
            assert_close(
                result.p_value,
                number(&expected[1]),
                SCIPY_RTOL,
                &format!("{what} p-value"),
            );
            assert_eq!(
                result.dof as u64,
                expected[2].as_u64().unwrap(),
                "{what} dof"
            );
        }
    }
}

#[test]
fn contingency_rejects_tables_scipy_rejects() {
    let zero_row: [&[f64]; 2] = [&[0.0, 0.0], &[3.0, 4.0]];
    assert_eq!(
        chi2_contingency(&zero_row),
        Err(ContingencyError::EmptyRow(0))
    );
    let zero_column: [&[f64]; 2] = [&[1.0, 0.0], &[3.0, 0.0]];
    assert_eq!(
        g_test_contingency(&zero_column),
        Err(ContingencyError::EmptyColumn(1))
    );
    let ragged: [&[f64]; 2] = [&[1.0, 2.0], &[3.0]];
    assert!(matches!(
        chi2_contingency(&ragged),
        Err(ContingencyError::Ragged { row: 1, .. })
    ));
    let negative: [&[f64]; 2] = [&[1.0, -2.0], &[3.0, 4.0]];
    assert!(matches!(
        chi2_contingency(&negative),
        Err(ContingencyError::InvalidCount {
            row: 0,
            column: 1,
            ..
        })
    ));
    assert_eq!(chi2_contingency(&[]), Err(ContingencyError::Empty));
    let message = ContingencyError::EmptyRow(0).to_string();
    assert!(
        message.contains("row 0") && message.contains("drop"),
        "{message}"
    );
}

#[test]
fn two_proportion_z_matches_scipy_and_evidently() {
    for case in data()["z_test"].as_array().unwrap() {
        let c: Vec<u64> = case["counts"]
            .as_array()
            .unwrap()
            .iter()
            .map(|v| v.as_u64().unwrap())
            .collect();
        let accurate = two_proportion_z(c[0], c[1], c[2], c[3]);
        let evidently = two_proportion_z_evidently(c[0], c[1], c[2], c[3]);
        let what = format!("z test {c:?}");
        let z = number(&case["z"]);
        if z.is_nan() {
            // Both samples constant and equal: scipy's arithmetic gives 0/0.
            assert_eq!((accurate.statistic, accurate.p_value), (0.0, 1.0), "{what}");
            continue;
        }
        assert_close(accurate.statistic, z, SCIPY_RTOL, &what);
        assert_close(
            accurate.p_value,
            number(&case["p_sf"]),
            SCIPY_RTOL,
            &format!("{what} p (sf)"),
        );
        assert_close(
            evidently.p_value,
            number(&case["p_evidently"]),
            SCIPY_RTOL,
            &format!("{what} p (Evidently)"),
        );
    }
    assert!(two_proportion_z(1, 0, 1, 2).p_value.is_nan());
    assert!(two_proportion_z(3, 2, 1, 2).statistic.is_nan());
}

#[test]
fn fisher_exact_matches_scipy() {
    for case in data()["fisher"].as_array().unwrap() {
        let t: Vec<Vec<u64>> = case["table"]
            .as_array()
            .unwrap()
            .iter()
            .map(|row| {
                row.as_array()
                    .unwrap()
                    .iter()
                    .map(|v| v.as_u64().unwrap())
                    .collect()
            })
            .collect();
        let result = fisher_exact_2x2(t[0][0], t[0][1], t[1][0], t[1][1]);
        let what = format!("fisher {t:?}");
        assert_close(
            result.statistic,
            number(&case["odds_ratio"]),
            SCIPY_RTOL,
            &format!("{what} odds ratio"),
        );
        assert_close(
            result.p_value,
            number(&case["p"]),
            SCIPY_RTOL,
            &format!("{what} p"),
        );
    }
}

// --------------------------------------------------------------- correction

#[test]
fn corrections_match_scipy() {
    for case in data()["correction"].as_array().unwrap() {
        let p = numbers(&case["p"]);
        for (got, want) in benjamini_hochberg(&p).iter().zip(numbers(&case["bh"])) {
            assert_close(*got, want, SCIPY_RTOL, "BH");
        }
        for (got, want) in bonferroni(&p).iter().zip(numbers(&case["bonferroni"])) {
            assert_close(*got, want, SCIPY_RTOL, "Bonferroni");
        }
    }
}

#[test]
fn corrections_leave_nan_out_of_the_family() {
    let p = [0.01, f64::NAN, 0.04];
    let bh = benjamini_hochberg(&p);
    assert_eq!(bh[0], 0.02);
    assert!(bh[1].is_nan());
    assert_eq!(bh[2], 0.04);
    let bonf = bonferroni(&p);
    assert_eq!((bonf[0], bonf[2]), (0.02, 0.08));
    assert!(bonf[1].is_nan());
    assert!(benjamini_hochberg(&[]).is_empty());
}

// --------------------------------------------------------------- properties

/// SplitMix64: a small seeded generator so property loops are reproducible.
struct Rng(u64);

impl Rng {
    fn next_u64(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }

    /// Uniform in [0, 1).
    fn uniform(&mut self) -> f64 {
        (self.next_u64() >> 11) as f64 * (1.0 / (1u64 << 53) as f64)
    }

    /// Positive weights with an occasional zero, `len` in 1..=max_len.
    fn weights(&mut self, max_len: usize) -> Vec<f64> {
        let len = 1 + (self.next_u64() % max_len as u64) as usize;
        (0..len)
            .map(|_| {
                if self.uniform() < 0.1 {
                    0.0
                } else {
                    self.uniform() * 100.0
                }
            })
            .collect()
    }
}

fn non_degenerate_pair(rng: &mut Rng) -> (Vec<f64>, Vec<f64>) {
    loop {
        let p = rng.weights(40);
        let q: Vec<f64> = (0..p.len()).map(|_| rng.uniform() * 10.0).collect();
        if p.iter().sum::<f64>() > 0.0 && q.iter().sum::<f64>() > 0.0 {
            return (p, q);
        }
    }
}

#[test]
fn psi_of_a_distribution_with_itself_is_zero() {
    let mut rng = Rng(1);
    for _ in 0..500 {
        let shares = rng.weights(50);
        assert_eq!(psi(&shares, &shares), 0.0);
    }
}

#[test]
fn jensen_shannon_is_symmetric_and_bounded() {
    let mut rng = Rng(2);
    let max_nats = std::f64::consts::LN_2.sqrt();
    for _ in 0..1000 {
        let (p, q) = non_degenerate_pair(&mut rng);
        let bits = jensen_shannon_distance(&p, &q, LogBase::Two);
        let nats = jensen_shannon_distance(&p, &q, LogBase::E);
        assert_close(
            bits,
            jensen_shannon_distance(&q, &p, LogBase::Two),
            1e-14,
            "JS symmetry",
        );
        assert!((0.0..=1.0 + 1e-15).contains(&bits), "JS bits {bits}");
        assert!(
            (0.0..=max_nats * (1.0 + 1e-15)).contains(&nats),
            "JS nats {nats}"
        );
        assert_eq!(jensen_shannon_distance(&p, &p, LogBase::Two), 0.0);
    }
    // Disjoint supports reach the upper bounds.
    assert_close(
        jensen_shannon_distance(&[1.0, 0.0], &[0.0, 1.0], LogBase::Two),
        1.0,
        1e-15,
        "JS max bits",
    );
    assert_close(
        jensen_shannon_distance(&[1.0, 0.0], &[0.0, 1.0], LogBase::E),
        max_nats,
        1e-15,
        "JS max nats",
    );
}

#[test]
fn hellinger_and_l_infinity_are_bounded_and_symmetric() {
    let mut rng = Rng(3);
    for _ in 0..1000 {
        let (p, q) = non_degenerate_pair(&mut rng);
        let h = hellinger(&p, &q);
        assert!((0.0..=1.0 + 1e-15).contains(&h), "Hellinger {h}");
        assert_eq!(h, hellinger(&q, &p));
        assert_eq!(hellinger(&p, &p), 0.0);
        let linf = l_infinity(&p, &q);
        assert!((0.0..=1.0).contains(&linf), "L-inf {linf}");
        assert!(kl_divergence(&p, &p).abs() < 1e-15);
    }
    assert_close(
        hellinger(&[1.0, 0.0], &[0.0, 1.0]),
        1.0,
        1e-15,
        "Hellinger max",
    );
}

#[test]
fn wasserstein_is_zero_on_itself_symmetric_and_shift_equivariant() {
    let mut rng = Rng(4);
    for _ in 0..300 {
        let n = 1 + (rng.next_u64() % 200) as usize;
        let m = 1 + (rng.next_u64() % 200) as usize;
        let u: Vec<f64> = (0..n)
            .map(|_| (rng.uniform() * 100.0).floor() / 10.0)
            .collect();
        let v: Vec<f64> = (0..m).map(|_| rng.uniform() * 12.0 - 1.0).collect();
        assert_eq!(wasserstein_1(&u, &u), 0.0);
        let forward = wasserstein_1(&u, &v);
        assert_close(forward, wasserstein_1(&v, &u), 1e-14, "W1 symmetry");
        // Shifting one sample by s moves W1 by at most |s| (triangle inequality).
        let shifted: Vec<f64> = u.iter().map(|x| x + 0.25).collect();
        assert!((wasserstein_1(&shifted, &u) - 0.25).abs() < 1e-12);
        assert!((wasserstein_1(&shifted, &v) - forward).abs() <= 0.25 + 1e-12);
    }
}

#[test]
fn benjamini_hochberg_dominates_raw_and_is_monotone_in_rank() {
    let mut rng = Rng(5);
    for _ in 0..500 {
        let n = 1 + (rng.next_u64() % 60) as usize;
        let p: Vec<f64> = (0..n).map(|_| rng.uniform().powi(3)).collect();
        let q = benjamini_hochberg(&p);
        let mut order: Vec<usize> = (0..n).collect();
        order.sort_by(|&i, &j| p[i].total_cmp(&p[j]));
        for window in order.windows(2) {
            assert!(q[window[0]] <= q[window[1]], "BH not monotone in rank");
        }
        for i in 0..n {
            assert!(q[i] >= p[i] && q[i] <= 1.0, "BH q {} for p {}", q[i], p[i]);
        }
        let bonf = bonferroni(&p);
        for i in 0..n {
            assert!(
                bonf[i] >= q[i],
                "Bonferroni is never less conservative than BH"
            );
        }
    }
}
