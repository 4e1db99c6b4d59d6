//! ks / cvm / anderson against scipy 1.17.1 golden values
//! (`tests/golden/ks_cvm_anderson.py`), plus property checks.

use serde_json::Value;
use sextant_stats::anderson::anderson_ksamp;
use sextant_stats::cvm::cramer_von_mises_2samp;
use sextant_stats::ks::{
    kolmogorov_sf, ks_2samp, ks_2samp_sorted, ks_2samp_with, kstwo_sf, KsMethod,
};
use sextant_stats::TestResult;

/// Relative tolerance against scipy; absolute floor for p-values that
/// underflow towards zero.
const REL_TOL: f64 = 1e-12;
const ABS_TOL: f64 = 1e-300;

fn golden() -> Value {
    crate::golden("ks_cvm_anderson")
}

fn close(actual: f64, expected: f64, rel: f64) -> bool {
    actual == expected
        || (actual - expected).abs() <= rel * expected.abs().max(actual.abs()) + ABS_TOL
}

fn assert_close(what: &str, actual: f64, expected: f64, rel: f64, failures: &mut Vec<String>) {
    if !close(actual, expected, rel) {
        let err = (actual - expected).abs() / expected.abs().max(f64::MIN_POSITIVE);
        failures.push(format!(
            "{what}: got {actual:e}, scipy {expected:e} (rel err {err:.2e})"
        ));
    }
}

fn finish(failures: Vec<String>) {
    assert!(
        failures.is_empty(),
        "{} mismatches:\n{}",
        failures.len(),
        failures.join("\n")
    );
}

/// Mirror of `lcg_sample` in the generator: Knuth's MMIX LCG mapped through
/// a rational quantile transform; every float operation is correctly
/// rounded, so Python and Rust produce identical values.
fn lcg_sample(spec: &Value) -> Vec<f64> {
    let mut state = spec["seed"].as_u64().unwrap();
    let n = spec["n"].as_u64().unwrap();
    let shift = spec["shift"].as_f64().unwrap();
    let scale = spec["scale"].as_f64().unwrap();
    let grid = spec["grid"].as_f64().unwrap();
    (0..n)
        .map(|_| {
            state = state
                .wrapping_mul(6_364_136_223_846_793_005)
                .wrapping_add(1_442_695_040_888_963_407);
            let u = ((state >> 11) as f64 + 0.5) * 2f64.powi(-53);
            let t = (u - 0.5) / (u * (1.0 - u));
            let x = shift + scale * t;
            if grid > 0.0 {
                (x * grid).floor() / grid
            } else {
                x
            }
        })
        .collect()
}

fn sample(v: &Value) -> Vec<f64> {
    if let Some(spec) = v.get("lcg") {
        return lcg_sample(spec);
    }
    v["values"]
        .as_array()
        .unwrap()
        .iter()
        .map(|x| x.as_f64().unwrap())
        .collect()
}

fn f(v: &Value, key: &str) -> f64 {
    v[key].as_f64().unwrap_or_else(|| panic!("missing {key}"))
}

#[test]
fn ks_2samp_matches_scipy() {
    let golden = golden();
    let mut failures = Vec::new();
    for case in golden["ks_2samp"].as_array().unwrap() {
        let name = case["name"].as_str().unwrap();
        let (a, b) = (sample(&case["a"]), sample(&case["b"]));
        let method = match case["method"].as_str().unwrap() {
            "auto" => KsMethod::Auto,
            "exact" => KsMethod::Exact,
            "asymp" => KsMethod::Asymptotic,
            other => panic!("unknown method {other}"),
        };
        let res = ks_2samp_with(&a, &b, method);
        assert_close(
            &format!("{name} D"),
            res.statistic,
            f(case, "statistic"),
            0.0,
            &mut failures,
        );
        assert_close(
            &format!("{name} p"),
            res.p_value,
            f(case, "p_value"),
            REL_TOL,
            &mut failures,
        );
    }
    finish(failures);
}

#[test]
fn kstwo_sf_matches_scipy_on_every_branch() {
    let golden = golden();
    let mut failures = Vec::new();
    for case in golden["kstwo_sf"].as_array().unwrap() {
        let (n, d) = (case["n"].as_u64().unwrap(), f(case, "d"));
        let branch = case["branch"].as_str().unwrap();
        let (expected, actual) = (f(case, "sf"), kstwo_sf(d, n));
        if branch == "pomeranz" {
            // sf = 1 - cdf with cdf in (0.999, 1): scipy's convolutions sum in
            // BLAS order, so the cdf agrees to a few ulps, i.e. absolutely.
            let ok = (actual - expected).abs() <= POMERANZ_ABS_TOL;
            if !ok {
                failures.push(format!(
                    "kstwo.sf({d}, {n}) [pomeranz]: got {actual:e}, scipy {expected:e}"
                ));
            }
            continue;
        }
        assert_close(
            &format!("kstwo.sf({d}, {n}) [{branch}]"),
            actual,
            expected,
            REL_TOL,
            &mut failures,
        );
    }
    finish(failures);
}

/// Absolute tolerance of the Pomeranz branch (`n <= 140`, `0.75 < n d^2 <= 4`,
/// so `sf >= 6.7e-4`): the cdf agrees to ~5 ulps of 1 (measured max 1.2e-15),
/// i.e. a relative error on sf of at most 3e-12 there.
const POMERANZ_ABS_TOL: f64 = 2e-15;

#[test]
fn kolmogorov_sf_matches_scipy() {
    let golden = golden();
    let mut failures = Vec::new();
    for case in golden["kolmogorov_sf"].as_array().unwrap() {
        let x = f(case, "x");
        assert_close(
            &format!("kolmogorov({x})"),
            kolmogorov_sf(x),
            f(case, "sf"),
            REL_TOL,
            &mut failures,
        );
    }
    finish(failures);
}

#[test]
fn cramer_von_mises_matches_scipy() {
    let golden = golden();
    let mut failures = Vec::new();
    for case in golden["cramervonmises_2samp"].as_array().unwrap() {
        let name = case["name"].as_str().unwrap();
        let res = cramer_von_mises_2samp(&sample(&case["a"]), &sample(&case["b"]));
        assert_close(
            &format!("{name} T"),
            res.statistic,
            f(case, "statistic"),
            REL_TOL,
            &mut failures,
        );
        let (expected, actual) = (f(case, "p_value"), res.p_value);
        if name.starts_with("exact") {
            assert_close(
                &format!("{name} p"),
                actual,
                expected,
                REL_TOL,
                &mut failures,
            );
        } else if (actual - expected).abs() > CVM_ASYMPTOTIC_P_ABS_TOL {
            failures.push(format!("{name} p: got {actual:e}, scipy {expected:e}"));
        }
    }
    finish(failures);
}

/// The asymptotic p-value is `1 - V(tn)` with `V` a sum of Bessel-K terms.
/// scipy's `kv` (AMOS) is accurate only to ~6e-14 relative below 2 (ours is
/// checked to 4e-15 against mpmath), so p agrees *absolutely* to ~1e-14
/// (measured max 1.6e-15 on the golden cases), not relatively for tiny p.
const CVM_ASYMPTOTIC_P_ABS_TOL: f64 = 1e-13;

#[test]
fn anderson_ksamp_matches_scipy() {
    let golden = golden();
    let mut failures = Vec::new();
    for case in golden["anderson_ksamp"].as_array().unwrap() {
        let name = case["name"].as_str().unwrap();
        let samples: Vec<Vec<f64>> = case["samples"]
            .as_array()
            .unwrap()
            .iter()
            .map(sample)
            .collect();
        let views: Vec<&[f64]> = samples.iter().map(Vec::as_slice).collect();
        let res = anderson_ksamp(&views);
        assert_close(
            &format!("{name} A2"),
            res.statistic,
            f(case, "statistic"),
            REL_TOL,
            &mut failures,
        );
        for (i, cv) in case["critical_values"]
            .as_array()
            .unwrap()
            .iter()
            .enumerate()
        {
            assert_close(
                &format!("{name} cv[{i}]"),
                res.critical_values[i],
                cv.as_f64().unwrap(),
                REL_TOL,
                &mut failures,
            );
        }
        assert_close(
            &format!("{name} p"),
            res.p_value,
            f(case, "p_value"),
            REL_TOL,
            &mut failures,
        );
    }
    finish(failures);
}

fn check_p(res: TestResult) {
    assert!(
        (0.0..=1.0).contains(&res.p_value),
        "p out of range: {res:?}"
    );
    assert!(
        (0.0..=1.0).contains(&res.statistic),
        "D out of range: {res:?}"
    );
}

#[test]
fn ks_properties() {
    let spec = |seed: u64, n: u64, shift: f64, grid: f64| serde_json::json!({"seed": seed, "n": n, "shift": shift, "scale": 1.0, "grid": grid});
    for (n1, n2, shift, grid) in [
        (1, 1, 0.0, 0.0),
        (3, 8, 0.5, 0.0),
        (40, 40, 0.2, 2.0),
        (300, 120, 1.0, 0.0),
        (2_000, 1_500, 0.05, 0.0),
    ] {
        let a = lcg_sample(&spec(n1 * 3 + 1, n1, 0.0, grid));
        let b = lcg_sample(&spec(n2 * 5 + 2, n2, shift, grid));
        let ab = ks_2samp(&a, &b);
        let ba = ks_2samp(&b, &a);
        assert_eq!(ab, ba, "two-sided KS must be symmetric ({n1} x {n2})");
        check_p(ab);
        for method in [KsMethod::Exact, KsMethod::Asymptotic] {
            if (n1, n2, method) == (1, 1, KsMethod::Asymptotic) {
                // round(1*1/2) = 0 observations: scipy's kstwo.sf(D, 0) is NaN.
                assert!(ks_2samp_with(&a, &b, method).p_value.is_nan());
                continue;
            }
            check_p(ks_2samp_with(&a, &b, method));
        }
        // Identical samples: D = 0, p = 1 under every method.
        for method in [KsMethod::Auto, KsMethod::Exact, KsMethod::Asymptotic] {
            if (n1, method) == (1, KsMethod::Asymptotic) {
                continue;
            }
            let same = ks_2samp_with(&a, &a, method);
            assert_eq!((same.statistic, same.p_value), (0.0, 1.0), "{method:?}");
        }
        let (mut sa, mut sb) = (a.clone(), b.clone());
        sa.sort_by(f64::total_cmp);
        sb.sort_by(f64::total_cmp);
        assert_eq!(ks_2samp_sorted(&sa, &sb), ab);
    }
}

#[test]
fn kstwo_sf_is_a_survival_function() {
    for n in [1, 2, 10, 140, 141, 1000, 100_000, 2_000_000] {
        let mut previous = 1.0;
        for i in 0..=100 {
            let d = f64::from(i) / 100.0;
            let sf = kstwo_sf(d, n);
            assert!((0.0..=1.0).contains(&sf), "kstwo.sf({d}, {n}) = {sf}");
            // Branch switches may wobble by rounding, never by more.
            assert!(
                sf <= previous * (1.0 + 1e-9) + 1e-15,
                "kstwo.sf not monotone at d={d}, n={n}: {sf} > {previous}"
            );
            previous = sf;
        }
    }
}
