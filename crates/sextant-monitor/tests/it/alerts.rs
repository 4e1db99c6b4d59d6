//! Alert rules: pending and firing as Prometheus does, hysteresis against
//! flapping, a baseline that stays quiet on noise and fires on a step,
//! missing values, every validation error, and the Alertmanager webhook
//! payload checked field for field against a hand-written v4 example.

use std::collections::{BTreeMap, BTreeSet};

use serde_json::json;
use sextant_monitor::alerts::{
    alertmanager_payload, check_unique_names, evaluate, fingerprint, AlertInstance, AlertRule,
    AlertRuleError, AlertRuleSpec, AlertState, ConditionSpec, RuleState, ThresholdOp,
    ThresholdSpec, Transition,
};

/// 5 minutes, the default monitoring window.
const WINDOW_US: i64 = 300_000_000;
/// 2023-11-14T22:13:20Z
const T0_US: i64 = 1_700_000_000_000_000;

/// SplitMix64 (Steele, Lea & Flood 2014): deterministic, no dependency.
struct Rng(u64);

impl Rng {
    fn next_u64(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }

    /// Uniform in (0, 1).
    fn uniform(&mut self) -> f64 {
        ((self.next_u64() >> 11) as f64 + 0.5) / (1u64 << 53) as f64
    }

    /// Standard normal (Box-Muller).
    fn normal(&mut self) -> f64 {
        let (u, v) = (self.uniform(), self.uniform());
        (-2.0 * u.ln()).sqrt() * (std::f64::consts::TAU * v).cos()
    }
}

/// A rule from its JSON spec: `base` with the fields of `patch` replaced.
fn spec(patch: serde_json::Value) -> AlertRuleSpec {
    let mut base = json!({
        "name": "drift",
        "metric": "feature_drift_share",
        "condition": {"threshold": {"op": ">", "value": 0.3}},
    });
    for (key, value) in patch.as_object().unwrap() {
        base[key] = value.clone();
    }
    serde_json::from_value(base).unwrap()
}

fn rule(patch: serde_json::Value) -> AlertRule {
    AlertRule::try_from(spec(patch)).unwrap()
}

/// Evaluates `values` in order, one window apart from `T0_US`, and returns
/// the transitions with the index of the value that caused them.
fn run(
    rule: &AlertRule,
    state: &mut RuleState,
    values: &[Option<f64>],
) -> Vec<(usize, Transition)> {
    values
        .iter()
        .enumerate()
        .filter_map(|(index, &value)| {
            let now_us = T0_US + index as i64 * WINDOW_US;
            evaluate(rule, state, now_us, value).map(|transition| (index, transition))
        })
        .collect()
}

fn at(index: usize) -> i64 {
    T0_US + index as i64 * WINDOW_US
}

fn firing(index: usize, value: f64) -> (usize, Transition) {
    let started_us = at(index);
    (index, Transition::Firing { started_us, value })
}

fn resolved(fired: usize, index: usize, value: f64) -> (usize, Transition) {
    let transition = Transition::Resolved {
        started_us: at(fired),
        ended_us: at(index),
        value,
    };
    (index, transition)
}

fn some(values: &[f64]) -> Vec<Option<f64>> {
    values.iter().copied().map(Some).collect()
}

#[test]
fn for_windows_fires_on_the_third_consecutive_breach() {
    let rule = rule(json!({"for_windows": 3}));
    let mut state = RuleState::default();
    let transitions = run(&rule, &mut state, &some(&[0.1, 0.5, 0.6, 0.7, 0.8]));
    assert_eq!(transitions, vec![firing(3, 0.7)]);
    assert_eq!(
        state.alert(),
        AlertState::Firing {
            since_us: at(3),
            clears: 0
        }
    );

    // Two breaches, a dip, two breaches: never three in a row.
    let mut state = RuleState::default();
    let transitions = run(&rule, &mut state, &some(&[0.5, 0.5, 0.1, 0.5, 0.5]));
    assert_eq!(transitions, vec![]);
    assert_eq!(
        state.alert(),
        AlertState::Pending {
            since_us: at(3),
            breaches: 2
        }
    );

    // for_windows = 1 (the default) fires on the first breach and resolves
    // on the first value back under the threshold.
    let rule = self::rule(json!({}));
    let mut state = RuleState::default();
    let transitions = run(&rule, &mut state, &some(&[0.1, 0.4, 0.35, 0.3, 0.5]));
    assert_eq!(
        transitions,
        vec![firing(1, 0.4), resolved(1, 3, 0.3), firing(4, 0.5)]
    );
}

#[test]
fn resolve_windows_needs_consecutive_clear_evaluations() {
    let rule = rule(json!({"resolve_windows": 2}));
    let mut state = RuleState::default();
    let values = some(&[0.5, 0.1, 0.5, 0.1, 0.1, 0.1]);
    let transitions = run(&rule, &mut state, &values);
    assert_eq!(transitions, vec![firing(0, 0.5), resolved(0, 4, 0.1)]);
}

#[test]
fn hysteresis_prevents_flapping() {
    // Oscillating between the firing level (> 0.3) and the resolve level
    // (< 0.2), never past either.
    let oscillating: Vec<f64> = (0..40)
        .map(|index| if index % 2 == 0 { 0.35 } else { 0.25 })
        .collect();

    let without = rule(json!({}));
    let mut state = RuleState::default();
    let flapping = run(&without, &mut state, &some(&oscillating));
    assert_eq!(flapping.len(), 40, "fires and resolves every window");

    let with = rule(json!({"hysteresis": 0.2}));
    let mut state = RuleState::default();
    let mut values = some(&oscillating);
    values.extend(some(&[0.2, 0.19, 0.25, 0.35]));
    let transitions = run(&with, &mut state, &values);
    // 0.2 is not below 0.2; 0.19 is. 0.25 is not above 0.3 again.
    assert_eq!(
        transitions,
        vec![firing(0, 0.35), resolved(0, 41, 0.19), firing(43, 0.35)]
    );

    // A falling metric: fire under 0.8, resolve above 0.85.
    let accuracy = rule(json!({
        "metric": "accuracy",
        "condition": {"threshold": {"op": "<", "value": 0.8}},
        "hysteresis": 0.85,
    }));
    let mut state = RuleState::default();
    let values = some(&[0.9, 0.79, 0.82, 0.78, 0.84, 0.86]);
    let transitions = run(&accuracy, &mut state, &values);
    assert_eq!(transitions, vec![firing(1, 0.79), resolved(1, 5, 0.86)]);
}

#[test]
fn missing_values_change_nothing() {
    let rule = rule(json!({"for_windows": 3, "resolve_windows": 2}));
    let mut state = RuleState::default();
    let values = [
        Some(0.5),
        None,
        Some(f64::NAN),
        Some(0.5),
        None,
        Some(0.5), // the third breach: fires
        Some(0.1),
        None,
        Some(f64::NAN),
        Some(0.1), // the second clear: resolves
    ];
    let transitions = run(&rule, &mut state, &values);
    assert_eq!(transitions, vec![firing(5, 0.5), resolved(5, 9, 0.1)]);

    // A missing value leaves the state exactly as it was.
    let mut state = RuleState::default();
    run(&rule, &mut state, &some(&[0.5, 0.5]));
    let before = state.clone();
    assert_eq!(evaluate(&rule, &mut state, at(7), None), None);
    assert_eq!(evaluate(&rule, &mut state, at(8), Some(f64::NAN)), None);
    assert_eq!(state, before);
    assert_eq!(state.last_value(), Some(0.5));
    assert_eq!(state.last_value_us(), Some(at(1)));

    // Nor does it enter a baseline.
    let baseline = baseline_rule(json!({}));
    let mut state = RuleState::default();
    run(
        &baseline,
        &mut state,
        &[Some(1.0), None, Some(f64::NAN), Some(2.0)],
    );
    assert_eq!(state.baseline_values(), &[1.0, 2.0]);
}

#[test]
fn infinite_values_are_values_but_stay_out_of_baselines() {
    let rule = rule(json!({}));
    let mut state = RuleState::default();
    let transitions = run(
        &rule,
        &mut state,
        &some(&[f64::INFINITY, f64::NEG_INFINITY]),
    );
    assert_eq!(
        transitions,
        vec![firing(0, f64::INFINITY), resolved(0, 1, f64::NEG_INFINITY)]
    );

    let baseline = baseline_rule(json!({"direction": "above"}));
    let mut state = RuleState::default();
    run(&baseline, &mut state, &some(&[1.0, f64::NEG_INFINITY, 2.0]));
    assert_eq!(state.baseline_values(), &[1.0, 2.0]);
}

fn baseline_rule(condition: serde_json::Value) -> AlertRule {
    let mut baseline = json!({"k_sigma": 4.0, "direction": "both"});
    for (key, value) in condition.as_object().unwrap() {
        baseline[key] = value.clone();
    }
    rule(json!({
        "name": "errors",
        "metric": "error_rate",
        "condition": {"baseline": baseline},
    }))
}

#[test]
fn baseline_is_quiet_on_stationary_noise() {
    // Defaults: 12 values before judging, the last 48 kept. Against the
    // mean and standard deviation of n earlier N(0, 1) values, a new one
    // gives (x − mean) / (s·√(1 + 1/n)) ~ Student's t with n − 1 degrees of
    // freedom, so beyond 4σ has probability 2.6·10⁻⁴ at n = 48 (and at
    // most 2.6·10⁻³, at n = 12, for the first windows): about 0.14 alerts
    // per series of 500 windows (a simulation of the same rule, 4000
    // series, gives 0.141), 2.8 over 20 series.
    let rule = baseline_rule(json!({}));
    let mut n_fired = 0;
    let mut n_resolved = 0;
    for seed in 0..20 {
        let mut rng = Rng(seed);
        let values: Vec<Option<f64>> = (0..500).map(|_| Some(rng.normal())).collect();
        let mut state = RuleState::default();
        for (_, transition) in run(&rule, &mut state, &values) {
            match transition {
                Transition::Firing { .. } => n_fired += 1,
                Transition::Resolved { .. } => n_resolved += 1,
            }
        }
        assert_eq!(state.baseline_values().len(), 48);
    }
    assert!(n_fired <= 8, "{n_fired} alerts on 10 000 windows of noise");
    assert!(n_resolved <= n_fired);

    // The first series alone, the test the rule is usually described by.
    let mut rng = Rng(0);
    let values: Vec<Option<f64>> = (0..500).map(|_| Some(rng.normal())).collect();
    let fired = run(&rule, &mut RuleState::default(), &values)
        .into_iter()
        .filter(|(_, transition)| matches!(transition, Transition::Firing { .. }))
        .count();
    assert!(fired <= 1, "{fired} alerts on 500 windows of noise");
}

#[test]
fn baseline_fires_on_a_step_and_resolves_when_it_returns() {
    let rule = baseline_rule(json!({}));
    let mut rng = Rng(7);
    let mut values = Vec::new();
    values.extend((0..200).map(|_| Some(0.02 + 0.005 * rng.normal())));
    values.extend((0..10).map(|_| Some(0.10 + 0.005 * rng.normal())));
    values.extend((0..50).map(|_| Some(0.02 + 0.005 * rng.normal())));
    let mut state = RuleState::default();
    let transitions = run(&rule, &mut state, &values);
    assert_eq!(transitions.len(), 2, "{transitions:?}");
    assert_eq!(transitions[0], firing(200, values[200].unwrap()));
    assert_eq!(transitions[1], resolved(200, 210, values[210].unwrap()));
    // The step stayed out of the baseline it was measured against.
    assert!(state.baseline_values().iter().all(|&value| value < 0.05));
    let (mean, std) = state.baseline_stats().unwrap();
    assert!((mean - 0.02).abs() < 0.003 && (std - 0.005).abs() < 0.002);

    // The other way: a rule watching for rises does not fire on a drop.
    let above = baseline_rule(json!({"direction": "above"}));
    let dropping: Vec<Option<f64>> = values
        .iter()
        .map(|value| value.map(|value| 0.04 - value))
        .collect();
    assert_eq!(run(&above, &mut RuleState::default(), &dropping), vec![]);
    let below = baseline_rule(json!({"direction": "below"}));
    let transitions = run(&below, &mut RuleState::default(), &dropping);
    assert_eq!(transitions.len(), 2);
    assert_eq!(transitions[0].0, 200);
}

#[test]
fn baseline_waits_for_min_windows_and_keeps_window_count() {
    let rule = baseline_rule(json!({"min_windows": 3, "window_count": 4}));
    let mut state = RuleState::default();
    // Nothing fires before three values are kept, however far the third is.
    let transitions = run(&rule, &mut state, &some(&[1.0, 1.1, 50.0, 0.9, 1.0]));
    assert_eq!(transitions, vec![]);
    assert_eq!(state.baseline_values(), &[1.1, 50.0, 0.9, 1.0]);

    // A constant history has σ = 0: any move fires.
    let mut state = RuleState::default();
    let transitions = run(&rule, &mut state, &some(&[2.0, 2.0, 2.0, 2.0, 2.5, 2.0]));
    assert_eq!(transitions, vec![firing(4, 2.5), resolved(4, 5, 2.0)]);
}

#[test]
fn baseline_hysteresis_resolves_closer_to_the_mean() {
    // Fire beyond 4σ, resolve within 2σ.
    let rule = rule(json!({
        "condition": {"baseline": {"k_sigma": 4.0, "direction": "above", "min_windows": 4}},
        "hysteresis": 0.5,
    }));
    // The history alternates 9 and 11: mean 10, σ ≈ 1.07 (n − 1).
    let mut values = some(&[9.0, 11.0, 9.0, 11.0, 9.0, 11.0]);
    values.extend(some(&[20.0, 13.0, 12.5, 11.0]));
    let transitions = run(&rule, &mut RuleState::default(), &values);
    // 13 is 2.7σ above the mean: in the band, still firing. 12.5 (2.3σ)
    // too; 11 is back within 2σ.
    assert_eq!(transitions, vec![firing(6, 20.0), resolved(6, 9, 11.0)]);
}

#[test]
fn state_survives_a_json_round_trip() {
    let rule = rule(json!({"for_windows": 3}));
    let values = some(&[0.5, 0.5, 0.5, 0.1]);
    let uninterrupted = run(&rule, &mut RuleState::default(), &values);

    let mut state = RuleState::default();
    run(&rule, &mut state, &values[..2]);
    let saved = serde_json::to_value(&state).unwrap();
    assert_eq!(
        saved["alert"],
        json!({"state": "pending", "since_us": T0_US, "breaches": 2})
    );
    let mut restored: RuleState = serde_json::from_value(saved).unwrap();
    assert_eq!(restored, state);
    let resumed: Vec<_> = values
        .iter()
        .enumerate()
        .skip(2)
        .filter_map(|(index, &value)| {
            evaluate(&rule, &mut restored, at(index), value).map(|transition| (index, transition))
        })
        .collect();
    assert_eq!(resumed, uninterrupted);

    // A baseline state too, and one from an older format with fields
    // missing.
    let baseline = baseline_rule(json!({}));
    let mut state = RuleState::default();
    run(&baseline, &mut state, &some(&[1.0, 2.0, 3.0]));
    let json = serde_json::to_string(&state).unwrap();
    assert_eq!(serde_json::from_str::<RuleState>(&json).unwrap(), state);
    let old: RuleState = serde_json::from_str(r#"{"alert": {"state": "inactive"}}"#).unwrap();
    assert_eq!(old, RuleState::default());
}

#[test]
fn rules_round_trip_and_revalidate() {
    let json = json!({
        "name": "drift",
        "metric": "feature_drift_share",
        "condition": {"threshold": {"op": ">=", "value": 0.3}},
        "for_windows": 3,
        "hysteresis": 0.2,
        "resolve_windows": 2,
        "severity": "critical",
        "labels": {"team": "fraud"},
        "annotations": {"runbook_url": "https://runbooks.example/drift"},
        "description": "Share of drifted features",
    });
    let rule: AlertRule = serde_json::from_value(json.clone()).unwrap();
    assert_eq!(rule.name(), "drift");
    assert_eq!(rule.hysteresis(), Some(0.2));
    assert_eq!(rule.condition_text(), ">= 0.3");
    assert_eq!(serde_json::to_value(&rule).unwrap(), json);

    // Defaults are written out.
    let minimal = self::rule(json!({
        "condition": {"baseline": {"k_sigma": 3.0, "direction": "above"}},
    }));
    assert_eq!(
        serde_json::to_value(&minimal).unwrap(),
        json!({
            "name": "drift",
            "metric": "feature_drift_share",
            "condition": {"baseline": {
                "k_sigma": 3.0, "direction": "above", "min_windows": 12, "window_count": 48,
            }},
            "for_windows": 1,
            "resolve_windows": 1,
            "severity": "warning",
        })
    );

    // Deserializing an AlertRule validates it.
    let error = serde_json::from_value::<AlertRule>(json!({
        "name": "drift",
        "metric": "feature_drift_share",
        "condition": {"threshold": {"op": "=>", "value": 0.3}},
    }))
    .unwrap_err();
    assert!(error.to_string().contains("unknown op '=>'"), "{error}");

    // A description annotation is the description.
    let rule = self::rule(json!({"annotations": {"description": "drift"}}));
    assert_eq!(rule.description(), Some("drift"));
    assert!(rule.annotations().is_empty());
}

#[test]
fn validation_errors() {
    let threshold = |op: &str, value: f64| json!({"threshold": {"op": op, "value": value}});
    let baseline = |k_sigma: f64, min_windows: usize, window_count: usize| {
        json!({"baseline": {
            "k_sigma": k_sigma, "direction": "both",
            "min_windows": min_windows, "window_count": window_count,
        }})
    };
    let long_name = "a".repeat(300);
    let cases = [
        (json!({"name": ""}), "alert rule name is empty"),
        (json!({"name": "  "}), "alert rule name is empty"),
        (
            json!({"name": long_name}),
            &*format!("alert rule name '{long_name}' is longer than 256 bytes"),
        ),
        (
            json!({"name": "a\nb"}),
            "alert rule name \"a\\nb\" contains a control character",
        ),
        (json!({"metric": ""}), "alert rule 'drift': metric is empty"),
        (
            json!({"metric": "error\trate"}),
            "alert rule 'drift': metric \"error\\trate\" contains a control character",
        ),
        (
            json!({"condition": threshold("=>", 0.3)}),
            "alert rule 'drift': unknown op '=>': use one of >, >=, <, <=, ==, !=",
        ),
        (
            json!({"condition": baseline(0.0, 12, 48)}),
            "alert rule 'drift': k_sigma must be a finite number above 0, not 0",
        ),
        (
            json!({"condition": baseline(-3.0, 12, 48)}),
            "alert rule 'drift': k_sigma must be a finite number above 0, not -3",
        ),
        (
            json!({"condition": {"baseline": {"k_sigma": 3.0, "direction": "up"}}}),
            "alert rule 'drift': unknown direction 'up': use above, below or both",
        ),
        (
            json!({"condition": baseline(3.0, 1, 1)}),
            "alert rule 'drift': window_count must be between 2 and 10000, not 1",
        ),
        (
            json!({"condition": baseline(3.0, 12, 20_000)}),
            "alert rule 'drift': window_count must be between 2 and 10000, not 20000",
        ),
        (
            json!({"condition": baseline(3.0, 1, 48)}),
            "alert rule 'drift': min_windows must be between 2 and window_count (48), not 1",
        ),
        (
            json!({"condition": baseline(3.0, 60, 48)}),
            "alert rule 'drift': min_windows must be between 2 and window_count (48), not 60",
        ),
        (
            json!({"for_windows": 0}),
            "alert rule 'drift': for_windows must be between 1 and 10000, not 0",
        ),
        (
            json!({"resolve_windows": 0}),
            "alert rule 'drift': resolve_windows must be between 1 and 10000, not 0",
        ),
        (
            json!({"severity": "fatal"}),
            "alert rule 'drift': unknown severity 'fatal': use info, warning or critical",
        ),
        (
            json!({"hysteresis": 0.4}),
            "alert rule 'drift': hysteresis 0.4 is on the wrong side of the threshold: a rule \
             firing at > 0.3 resolves at or below 0.3",
        ),
        (
            json!({"condition": threshold("<", 0.8), "hysteresis": 0.7}),
            "alert rule 'drift': hysteresis 0.7 is on the wrong side of the threshold: a rule \
             firing at < 0.8 resolves at or above 0.8",
        ),
        (
            json!({"condition": threshold("==", 0.0), "hysteresis": 0.1}),
            "alert rule 'drift': hysteresis does not apply to op '=='",
        ),
        (
            json!({"condition": baseline(3.0, 12, 48), "hysteresis": 1.5}),
            "alert rule 'drift': hysteresis of a baseline rule is a factor of k_sigma in (0, 1], \
             not 1.5",
        ),
        (
            json!({"condition": baseline(3.0, 12, 48), "hysteresis": 0.0}),
            "alert rule 'drift': hysteresis of a baseline rule is a factor of k_sigma in (0, 1], \
             not 0",
        ),
        (
            json!({"labels": {"1team": "fraud"}}),
            "alert rule 'drift': label name '1team' is not valid: use letters, digits and \
             underscores, not starting with a digit or '__'",
        ),
        (
            json!({"labels": {"team-name": "fraud"}}),
            "alert rule 'drift': label name 'team-name' is not valid: use letters, digits and \
             underscores, not starting with a digit or '__'",
        ),
        (
            json!({"labels": {"__meta": "x"}}),
            "alert rule 'drift': label name '__meta' is not valid: use letters, digits and \
             underscores, not starting with a digit or '__'",
        ),
        (
            json!({"labels": {"severity": "page"}}),
            "alert rule 'drift': label 'severity' is set by sextant (alertname, severity and \
             deployment are reserved)",
        ),
        (
            json!({"labels": {"deployment": "other"}}),
            "alert rule 'drift': label 'deployment' is set by sextant (alertname, severity and \
             deployment are reserved)",
        ),
        (
            json!({"labels": {"alertname": "other"}}),
            "alert rule 'drift': label 'alertname' is set by sextant (alertname, severity and \
             deployment are reserved)",
        ),
        (
            json!({"labels": {"team": ""}}),
            "alert rule 'drift': label 'team' has an empty value",
        ),
        (
            json!({"annotations": {"run book": "x"}}),
            "alert rule 'drift': annotation name 'run book' is not valid: use letters, digits \
             and underscores, not starting with a digit or '__'",
        ),
        (
            json!({"description": "a", "annotations": {"description": "b"}}),
            "alert rule 'drift': description is given both as a field and as an annotation",
        ),
    ];
    for (patch, expected) in cases {
        let error = AlertRule::try_from(spec(patch.clone())).unwrap_err();
        assert_eq!(error.to_string(), expected, "{patch}");
        check_message(&error);
    }

    // Non-finite numbers cannot come through JSON; a spec built in code
    // is checked all the same.
    let with_value = |value: f64, hysteresis: Option<f64>| AlertRuleSpec {
        condition: ConditionSpec::Threshold(ThresholdSpec {
            op: ">".to_string(),
            value,
        }),
        hysteresis,
        ..spec(json!({}))
    };
    let error = AlertRule::try_from(with_value(f64::NAN, None)).unwrap_err();
    assert!(
        matches!(error, AlertRuleError::NonFiniteThreshold { ref rule, value }
        if rule == "drift" && value.is_nan())
    );
    assert_eq!(
        AlertRule::try_from(with_value(f64::INFINITY, None)).unwrap_err(),
        AlertRuleError::NonFiniteThreshold {
            rule: "drift".to_string(),
            value: f64::INFINITY
        }
    );
    assert_eq!(
        AlertRule::try_from(with_value(0.3, Some(f64::NEG_INFINITY))).unwrap_err(),
        AlertRuleError::NonFiniteHysteresis {
            rule: "drift".to_string(),
            hysteresis: f64::NEG_INFINITY
        }
    );
    let mut nan_k = spec(json!({"condition": baseline(1.0, 12, 48)}));
    if let ConditionSpec::Baseline(baseline) = &mut nan_k.condition {
        baseline.k_sigma = f64::NAN;
    }
    assert!(matches!(
        AlertRule::try_from(nan_k).unwrap_err(),
        AlertRuleError::InvalidKSigma { k_sigma, .. } if k_sigma.is_nan()
    ));

    // Typed, so the server can map them without parsing messages.
    assert_eq!(
        AlertRule::try_from(spec(json!({"hysteresis": 0.4}))).unwrap_err(),
        AlertRuleError::HysteresisWrongSide {
            rule: "drift".to_string(),
            op: ThresholdOp::Gt,
            threshold: 0.3,
            hysteresis: 0.4,
            expected: "at or below",
        }
    );

    // Names are unique per deployment.
    let rules = [
        rule(json!({})),
        rule(json!({"name": "latency"})),
        rule(json!({"metric": "outlier_rate"})),
    ];
    assert_eq!(check_unique_names(&rules[..2]), Ok(()));
    let error = check_unique_names(&rules).unwrap_err();
    assert_eq!(
        error,
        AlertRuleError::DuplicateName {
            name: "drift".to_string()
        }
    );
    assert_eq!(error.to_string(), "alert rule name 'drift' is used twice");

    // What JSON cannot shape is a JSON error: a misspelt field, a missing
    // one, a condition of neither kind, a negative count.
    for bad in [
        json!({"name": "a", "metric": "m", "condition": {"threshold": {"op": ">", "value": 1}},
               "for_window": 3}),
        json!({"name": "a", "condition": {"threshold": {"op": ">", "value": 1}}}),
        json!({"name": "a", "metric": "m", "condition": {"cusum": {}}}),
        json!({"name": "a", "metric": "m", "condition": {"threshold": {"op": ">", "value": 1}},
               "for_windows": -1}),
        json!({"name": "a", "metric": "m",
               "condition": {"threshold": {"op": ">", "value": 1, "k_sigma": 2}}}),
    ] {
        assert!(
            serde_json::from_value::<AlertRuleSpec>(bad.clone()).is_err(),
            "{bad}"
        );
    }
}

/// Messages are lowercase and have no trailing period (STYLE §3.1).
#[track_caller]
fn check_message(error: &AlertRuleError) {
    let message = error.to_string();
    assert!(!message.ends_with('.'), "{message}");
    assert!(
        !message.starts_with(|c: char| c.is_uppercase()),
        "{message}"
    );
}

#[test]
fn alertmanager_payload_matches_version_4() {
    let drift = rule(json!({
        "name": "drift_share",
        "hysteresis": 0.2,
        "severity": "critical",
        "labels": {"team": "fraud"},
        "annotations": {"runbook_url": "https://runbooks.example/drift"},
        "description": "Share of drifted features",
    }));
    let latency = rule(json!({
        "name": "latency",
        "metric": "latency_p99_ms",
        "condition": {"threshold": {"op": ">=", "value": 500.0}},
        "labels": {"team": "fraud"},
        "annotations": {"runbook_url": "https://runbooks.example/drift"},
    }));
    // 2000-02-29T12:34:56.789Z: a leap day, milliseconds.
    let fired = Transition::Firing {
        started_us: 951_827_696_789_000,
        value: 0.42,
    };
    // Five minutes and 100 µs later: microseconds, trailing zeros dropped.
    let ended = Transition::Resolved {
        started_us: T0_US,
        ended_us: T0_US + 300_000_100,
        value: 412.5,
    };
    let mut drift_alert = AlertInstance::new(&drift, &fired, "fraud-v3");
    drift_alert.generator_url =
        "https://sextant.example/deployments/fraud-v3/monitoring".to_string();
    let latency_alert = AlertInstance::new(&latency, &ended, "fraud-v3");
    let group_labels = BTreeMap::from([
        ("team".to_string(), "fraud".to_string()),
        ("deployment".to_string(), "fraud-v3".to_string()),
    ]);
    let payload = alertmanager_payload(
        "sextant.webhook",
        &group_labels,
        &[drift_alert, latency_alert],
        "https://sextant.example",
    );

    // Written by hand after Alertmanager's webhook notifier (prometheus/
    // alertmanager notify/webhook/webhook.go `Message`, template/template.go
    // `Data` and `Alert`): the fingerprints were computed separately with
    // a ten-line Python FNV-1a over the sorted labels
    // (prometheus/common model/signature.go).
    let expected = json!({
        "version": "4",
        "groupKey": "{}:{deployment=\"fraud-v3\", team=\"fraud\"}",
        "truncatedAlerts": 0,
        "status": "firing",
        "receiver": "sextant\\.webhook",
        "groupLabels": {"deployment": "fraud-v3", "team": "fraud"},
        "commonLabels": {"deployment": "fraud-v3", "team": "fraud"},
        "commonAnnotations": {"runbook_url": "https://runbooks.example/drift"},
        "externalURL": "https://sextant.example",
        "alerts": [
            {
                "status": "firing",
                "labels": {
                    "alertname": "drift_share",
                    "deployment": "fraud-v3",
                    "severity": "critical",
                    "team": "fraud",
                },
                "annotations": {
                    "description": "Share of drifted features",
                    "runbook_url": "https://runbooks.example/drift",
                    "summary": "feature_drift_share is 0.42 on fraud-v3 (alert when > 0.3)",
                    "value": "0.42",
                },
                "startsAt": "2000-02-29T12:34:56.789Z",
                "endsAt": "0001-01-01T00:00:00Z",
                "generatorURL": "https://sextant.example/deployments/fraud-v3/monitoring",
                "fingerprint": "d7d1fc8687c00257",
            },
            {
                "status": "resolved",
                "labels": {
                    "alertname": "latency",
                    "deployment": "fraud-v3",
                    "severity": "warning",
                    "team": "fraud",
                },
                "annotations": {
                    "runbook_url": "https://runbooks.example/drift",
                    "summary": "latency_p99_ms is 412.5 on fraud-v3 (alert when >= 500)",
                    "value": "412.5",
                },
                "startsAt": "2023-11-14T22:13:20Z",
                "endsAt": "2023-11-14T22:18:20.0001Z",
                "generatorURL": "",
                "fingerprint": "08ffe0bdc0ab5259",
            },
        ],
    });
    // Field for field first, for a readable failure.
    let object = payload.as_object().unwrap();
    let expected_object = expected.as_object().unwrap();
    let keys: BTreeSet<&String> = object.keys().collect();
    assert_eq!(keys, expected_object.keys().collect::<BTreeSet<_>>());
    for (key, value) in expected_object {
        assert_eq!(&object[key], value, "field {key}");
    }
    assert_eq!(payload, expected);

    // Only resolved alerts: the group is resolved.
    let latency_alert = AlertInstance::new(&latency, &ended, "fraud-v3");
    let payload = alertmanager_payload("web", &BTreeMap::new(), &[latency_alert], "");
    assert_eq!(payload["status"], "resolved");
    assert_eq!(payload["groupKey"], "{}:{}");
    assert_eq!(payload["commonLabels"]["alertname"], "latency");

    // No alerts at all: nothing in common.
    let payload = alertmanager_payload("web", &BTreeMap::new(), &[], "");
    assert_eq!(payload["status"], "resolved");
    assert_eq!(payload["alerts"], json!([]));
    assert_eq!(payload["commonLabels"], json!({}));
}

#[test]
fn group_key_quotes_as_go_does() {
    let group_labels = BTreeMap::from([
        ("b".to_string(), "say \"hi\"\\\n\u{1}é".to_string()),
        ("a".to_string(), "x".to_string()),
    ]);
    let payload = alertmanager_payload("a+b (c)", &group_labels, &[], "");
    assert_eq!(
        payload["groupKey"],
        r#"{}:{a="x", b="say \"hi\"\\\n\x01é"}"#
    );
    assert_eq!(payload["receiver"], r"a\+b \(c\)");
}

#[test]
fn fingerprint_is_alertmanagers_and_ignores_label_order() {
    // prometheus/common model/signature_test.go.
    let labels = |pairs: &[(&str, &str)]| -> BTreeMap<String, String> {
        pairs
            .iter()
            .map(|&(name, value)| (name.to_string(), value.to_string()))
            .collect()
    };
    assert_eq!(fingerprint(&labels(&[])), "cbf29ce484222325");
    assert_eq!(
        fingerprint(&labels(&[
            ("name", "garland, briggs"),
            ("fear", "love is not enough")
        ])),
        format!("{:016x}", 5_799_056_148_416_392_346u64)
    );
    assert_eq!(
        fingerprint(&labels(&[("c", "d"), ("a", "b")])),
        fingerprint(&labels(&[("a", "b"), ("c", "d")]))
    );
    // The separator keeps names and values apart.
    assert_ne!(
        fingerprint(&labels(&[("a", "bc")])),
        fingerprint(&labels(&[("ab", "c")]))
    );

    // Rules whose labels are written in another order raise alerts with
    // the same fingerprint, firing or resolved.
    let one = rule(json!({"labels": {"team": "fraud", "region": "eu", "tier": "gold"}}));
    let other: AlertRule = serde_json::from_str(
        r#"{"labels": {"tier": "gold", "region": "eu", "team": "fraud"},
            "condition": {"threshold": {"value": 0.3, "op": ">"}},
            "metric": "feature_drift_share", "name": "drift"}"#,
    )
    .unwrap();
    let fired = Transition::Firing {
        started_us: T0_US,
        value: 0.5,
    };
    let ended = Transition::Resolved {
        started_us: T0_US,
        ended_us: T0_US + WINDOW_US,
        value: 0.1,
    };
    let fingerprint = AlertInstance::new(&one, &fired, "fraud-v3").fingerprint();
    assert_eq!(fingerprint.len(), 16);
    assert!(fingerprint.bytes().all(|byte| byte.is_ascii_hexdigit()));
    assert_eq!(
        AlertInstance::new(&other, &fired, "fraud-v3").fingerprint(),
        fingerprint
    );
    assert_eq!(
        AlertInstance::new(&one, &ended, "fraud-v3").fingerprint(),
        fingerprint
    );
    assert_ne!(
        AlertInstance::new(&one, &fired, "fraud-v4").fingerprint(),
        fingerprint
    );
}
