//! Shapiro-Wilk against `tests/golden/normality.json` (scipy 1.17.1
//! `stats.shapiro`), plus the refusals and the reusable weights.
//!
//! Tolerance: W to 1e-12 absolute and the p-value to 1e-9 relative (with
//! 1e-300 absolute for underflow). The port follows scipy's operations in
//! order, so both are met with a wide margin (the test prints the largest
//! errors seen).

use serde_json::Value;
use sextant_stats::normality::{shapiro_wilk, NormalityError, ShapiroWilk, MAX_SAMPLE};

const W_ATOL: f64 = 1e-12;
const P_RTOL: f64 = 1e-9;
const UNDERFLOW_ATOL: f64 = 1e-300;

/// Expands an `lcg` spec exactly as `lcg_sample` in
/// `tests/golden/normality.py`: integer LCG, then only correctly rounded
/// operations.
fn lcg_sample(spec: &Value) -> Vec<f64> {
    let mut state = spec["seed"].as_u64().unwrap();
    let n = spec["n"].as_u64().unwrap();
    let kind = spec["kind"].as_str().unwrap();
    let shift = spec["shift"].as_f64().unwrap();
    let scale = spec["scale"].as_f64().unwrap();
    let grid = spec["grid"].as_f64().unwrap();
    let mut uniform = || {
        state = state
            .wrapping_mul(6_364_136_223_846_793_005)
            .wrapping_add(1_442_695_040_888_963_407);
        ((state >> 11) as f64 + 0.5) * 2f64.powi(-53)
    };
    (0..n)
        .map(|_| {
            let t = match kind {
                "uniform" => uniform(),
                "irwin_hall" => {
                    let mut sum = 0.0;
                    for _ in 0..12 {
                        sum += uniform();
                    }
                    sum - 6.0
                }
                "square" => {
                    let u = uniform();
                    u * u
                }
                "reciprocal" => 1.0 / uniform(),
                "logistic" => {
                    let u = uniform();
                    (u - 0.5) / (u * (1.0 - u))
                }
                other => panic!("unknown lcg kind {other}"),
            };
            let x = shift + scale * t;
            if grid > 0.0 {
                (x * grid).floor() / grid
            } else {
                x
            }
        })
        .collect()
}

fn sample(case: &Value) -> Vec<f64> {
    if let Some(spec) = case.get("lcg") {
        return lcg_sample(spec);
    }
    case["values"]
        .as_array()
        .unwrap()
        .iter()
        .map(|v| v.as_f64().unwrap())
        .collect()
}

fn p_error(actual: f64, expected: f64) -> f64 {
    if actual == expected || (actual - expected).abs() <= UNDERFLOW_ATOL {
        return 0.0;
    }
    (actual - expected).abs() / expected.abs().max(actual.abs())
}

#[test]
fn shapiro_wilk_matches_scipy() {
    let golden = crate::golden("normality");
    let cases = golden["cases"].as_array().unwrap();
    assert!(cases.len() > 50);
    let (mut worst_w, mut worst_p) = (0.0_f64, 0.0_f64);
    for case in cases {
        let name = case["name"].as_str().unwrap();
        let values = sample(case);
        let expected_w = case["w"].as_f64().unwrap();
        let expected_p = case["p"].as_f64().unwrap();
        let result = shapiro_wilk(&values).unwrap_or_else(|e| panic!("{name}: {e}"));
        let w_error = (result.statistic - expected_w).abs();
        let p_error = p_error(result.p_value, expected_p);
        assert!(
            w_error <= W_ATOL,
            "{name}: W {} against scipy {expected_w} (error {w_error:e})",
            result.statistic
        );
        assert!(
            p_error <= P_RTOL,
            "{name}: p {} against scipy {expected_p} (relative error {p_error:e})",
            result.p_value
        );
        worst_w = worst_w.max(w_error);
        worst_p = worst_p.max(p_error);
    }
    eprintln!("shapiro_wilk vs scipy: max |ΔW| = {worst_w:e}, max relative Δp = {worst_p:e}");
}

#[test]
fn reusable_weights_give_the_same_test_on_sorted_samples() {
    let golden = crate::golden("normality");
    for case in golden["cases"].as_array().unwrap() {
        let name = case["name"].as_str().unwrap();
        let mut values = sample(case);
        let direct = shapiro_wilk(&values).unwrap();
        values.sort_unstable_by(f64::total_cmp);
        let weights = ShapiroWilk::new(values.len()).unwrap();
        assert_eq!(weights.n(), values.len());
        let sorted = weights.test_sorted(&values).unwrap();
        // Only the shift differs (values[n/2] of the input against the
        // sorted middle), so the results agree to rounding.
        assert!(
            (sorted.statistic - direct.statistic).abs() <= 1e-12,
            "{name}: {} vs {}",
            sorted.statistic,
            direct.statistic
        );
        assert!(
            p_error(sorted.p_value, direct.p_value) <= 1e-9,
            "{name}: {} vs {}",
            sorted.p_value,
            direct.p_value
        );
    }
}

#[test]
fn refuses_what_it_cannot_test() {
    assert_eq!(shapiro_wilk(&[]), Err(NormalityError::TooFew(0)));
    assert_eq!(shapiro_wilk(&[1.0, 2.0]), Err(NormalityError::TooFew(2)));
    let too_many: Vec<f64> = (0..=MAX_SAMPLE).map(|i| i as f64).collect();
    assert_eq!(
        shapiro_wilk(&too_many),
        Err(NormalityError::TooMany(MAX_SAMPLE + 1))
    );
    assert!(shapiro_wilk(&too_many[..MAX_SAMPLE]).is_ok());
    // scipy warns and returns (1, 1) on a constant sample.
    assert_eq!(shapiro_wilk(&[4.0; 10]), Err(NormalityError::ZeroRange));
    assert!(matches!(
        shapiro_wilk(&[1.0, f64::NAN, 2.0, 3.0]),
        Err(NormalityError::NotFinite { index: 1, .. })
    ));
    assert!(matches!(
        shapiro_wilk(&[1.0, 2.0, f64::INFINITY]),
        Err(NormalityError::NotFinite { index: 2, .. })
    ));
    let weights = ShapiroWilk::new(4).unwrap();
    assert_eq!(
        weights.test_sorted(&[1.0, 1.0, 1.0, 1.0]),
        Err(NormalityError::ZeroRange)
    );
    assert!(matches!(
        weights.test_sorted(&[1.0, 2.0, 3.0, f64::NAN]),
        Err(NormalityError::NotFinite { index: 3, .. })
    ));
    assert!(ShapiroWilk::new(2).is_err() && ShapiroWilk::new(MAX_SAMPLE + 1).is_err());
}

#[test]
fn w_is_location_and_scale_invariant_and_orders_by_normality() {
    // Equally spaced normal scores are as normal as a sample gets; a
    // sample with one far value is not.
    let scores: Vec<f64> = (1..=50)
        .map(|i| {
            let p = (i as f64 - 0.5) / 50.0;
            // A crude but monotone quantile: the logit, close enough in shape.
            (p / (1.0 - p)).ln() / 1.7
        })
        .collect();
    let base = shapiro_wilk(&scores).unwrap();
    assert!(base.statistic > 0.98, "{base:?}");
    let moved: Vec<f64> = scores.iter().map(|x| 1e3 + 7.0 * x).collect();
    let moved = shapiro_wilk(&moved).unwrap();
    assert!((moved.statistic - base.statistic).abs() < 1e-12);
    let mut outlier = scores.clone();
    outlier[49] = 40.0;
    let outlier = shapiro_wilk(&outlier).unwrap();
    assert!(
        outlier.statistic < 0.6 && outlier.p_value < 1e-8,
        "{outlier:?}"
    );
}
