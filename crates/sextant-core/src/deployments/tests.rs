use super::*;

fn m(version: i64) -> ModelRef {
    ModelRef {
        name: "fraud".into(),
        version,
        alias: None,
    }
}

fn single(version: i64) -> DeploymentSpec {
    DeploymentSpec::single(m(version), DeploymentSettings::new())
}

fn canary_policy() -> CanaryPolicy {
    CanaryPolicy {
        steps: vec![5, 50, 100],
        step: 0,
        step_started_ms: 1_000,
        interval_ms: 60_000,
        max_error_rate: 0.05,
        max_p99_ms: Some(100.0),
        min_requests: 20,
    }
}

fn weights(spec: &DeploymentSpec) -> Vec<(String, i64, u32, ArmRole)> {
    spec.arms
        .iter()
        .map(|a| (a.name.clone(), a.model.version, a.weight, a.role))
        .collect()
}

fn revision(spec: DeploymentSpec) -> DeploymentRevision {
    DeploymentRevision {
        revision: 1,
        spec,
        action: "update".into(),
        reason: String::new(),
        actor: "alice".into(),
        time: 0,
    }
}

#[test]
fn names_are_dns_labels() {
    for ok in ["fraud", "fraud-v2", "a", "x.y_z", &"a".repeat(63)] {
        assert!(validate_deployment_name(ok).is_ok(), "{ok}");
    }
    for bad in ["", "-x", "a/b", "a b", "ünï", &"a".repeat(64), "../x"] {
        assert!(validate_deployment_name(bad).is_err(), "{bad}");
    }
}

#[test]
fn a_canary_ramps_step_by_step_and_promotes() {
    let spec = single(1).start_canary(m(2), canary_policy()).unwrap();
    assert_eq!(
        weights(&spec),
        vec![
            ("primary".into(), 1, 95, ArmRole::Live),
            ("canary".into(), 2, 5, ArmRole::Live)
        ]
    );
    let Policy::Canary(policy) = &spec.policy else {
        panic!()
    };
    let healthy = ArmHealth {
        requests: 100,
        errors: 1,
        p99_ms: Some(10.0),
    };
    // Not baked yet.
    assert_eq!(policy.decide(&spec, healthy, 30_000), CanaryDecision::Wait);
    // Baked but too few requests.
    assert_eq!(
        policy.decide(
            &spec,
            ArmHealth {
                requests: 3,
                ..healthy
            },
            90_000
        ),
        CanaryDecision::Wait
    );
    let CanaryDecision::Step(stepped) = policy.decide(&spec, healthy, 61_000) else {
        panic!("expected a step")
    };
    assert_eq!(
        weights(&stepped)[1],
        ("canary".into(), 2, 50, ArmRole::Live)
    );
    assert_eq!(weights(&stepped)[0].2, 50);
    let Policy::Canary(policy) = &stepped.policy else {
        panic!()
    };
    assert_eq!((policy.step, policy.step_started_ms), (1, 61_000));
    let CanaryDecision::Step(full) = policy.decide(&stepped, healthy, 121_000) else {
        panic!()
    };
    let Policy::Canary(policy) = &full.policy else {
        panic!()
    };
    let CanaryDecision::Promote(promoted) = policy.decide(&full, healthy, 181_000) else {
        panic!()
    };
    assert_eq!(
        weights(&promoted),
        vec![
            ("primary".into(), 2, 100, ArmRole::Live),
            ("standby".into(), 1, 0, ArmRole::Standby)
        ]
    );
    promoted.validate().unwrap();
}

#[test]
fn a_failing_canary_rolls_back_at_once() {
    let spec = single(1).start_canary(m(2), canary_policy()).unwrap();
    let Policy::Canary(policy) = &spec.policy else {
        panic!()
    };
    let failing = ArmHealth {
        requests: 40,
        errors: 10,
        p99_ms: Some(5.0),
    };
    let CanaryDecision::Rollback(back, reason) = policy.decide(&spec, failing, 2_000) else {
        panic!()
    };
    assert!(reason.contains("25.0%"), "{reason}");
    assert_eq!(
        weights(&back),
        vec![("primary".into(), 1, 100, ArmRole::Live)]
    );
    let slow = ArmHealth {
        requests: 40,
        errors: 0,
        p99_ms: Some(250.0),
    };
    assert!(
        matches!(policy.decide(&spec, slow, 2_000), CanaryDecision::Rollback(_, r) if r.contains("latency"))
    );
    // Too few requests to judge: wait, even with errors.
    assert_eq!(
        policy.decide(
            &spec,
            ArmHealth {
                requests: 5,
                errors: 5,
                p99_ms: None
            },
            2_000
        ),
        CanaryDecision::Wait
    );
}

#[test]
fn experiments_do_not_stack() {
    let canary = single(1).start_canary(m(2), canary_policy()).unwrap();
    for attempt in [
        canary.start_canary(m(3), canary_policy()),
        canary.start_ab(
            m(3),
            50,
            AbPolicy {
                sticky_header: None,
            },
        ),
        canary.start_shadow(m(3), 100),
    ] {
        assert!(attempt.unwrap_err().0.contains("promote or roll it back"));
    }
    assert!(single(1)
        .start_ab(
            m(2),
            100,
            AbPolicy {
                sticky_header: None
            }
        )
        .is_err());
    assert!(single(1)
        .start_canary(
            m(2),
            CanaryPolicy {
                steps: vec![50, 10],
                ..canary_policy()
            }
        )
        .is_err());
    assert!(single(1).start_shadow(m(2), 0).is_err());
}

#[test]
fn ab_tests_and_shadows_promote_their_candidate() {
    let ab = single(1)
        .start_ab(
            m(2),
            30,
            AbPolicy {
                sticky_header: Some("x-user".into()),
            },
        )
        .unwrap();
    assert_eq!(
        weights(&ab),
        vec![
            ("a".into(), 1, 70, ArmRole::Live),
            ("b".into(), 2, 30, ArmRole::Live)
        ]
    );
    assert_eq!(
        weights(&ab.promote(Some("a")).unwrap())[0],
        ("primary".into(), 1, 100, ArmRole::Live)
    );
    assert_eq!(
        weights(&ab.promote(None).unwrap())[0],
        ("primary".into(), 2, 100, ArmRole::Live)
    );
    let shadow = single(1).start_shadow(m(3), 25).unwrap();
    assert_eq!(
        weights(&shadow),
        vec![
            ("primary".into(), 1, 100, ArmRole::Live),
            ("shadow".into(), 3, 0, ArmRole::Shadow)
        ]
    );
    assert_eq!(weights(&shadow.promote(None).unwrap())[0].1, 3);
    assert!(single(1).promote(None).is_err());
}

#[test]
fn rollback_ends_experiments_then_swaps_standby_then_uses_history() {
    let ab = single(1)
        .start_ab(
            m(2),
            30,
            AbPolicy {
                sticky_header: None,
            },
        )
        .unwrap();
    assert_eq!(
        weights(&ab.rollback(&[]).unwrap()),
        vec![("primary".into(), 1, 100, ArmRole::Live)]
    );

    let mut blue_green = single(1);
    blue_green.settings.keep_standby = true;
    let green = blue_green.replace(m(2));
    assert_eq!(
        weights(&green),
        vec![
            ("primary".into(), 2, 100, ArmRole::Live),
            ("standby".into(), 1, 0, ArmRole::Standby)
        ]
    );
    let back = green.rollback(&[]).unwrap();
    assert_eq!(
        weights(&back),
        vec![
            ("primary".into(), 1, 100, ArmRole::Live),
            ("standby".into(), 2, 0, ArmRole::Standby)
        ]
    );

    let replaced = single(1).replace(m(2));
    assert_eq!(replaced.arms.len(), 1);
    let history = [
        revision(single(2)),
        revision(single(2)),
        revision(single(1)),
    ];
    assert_eq!(
        replaced.rollback(&history).unwrap().primary().model.version,
        1
    );
    assert!(replaced.rollback(&[revision(single(2))]).is_err());
}

#[test]
fn validation_catches_broken_specs() {
    let mut spec = single(1);
    spec.arms[0].weight = 90;
    assert!(spec.validate().is_err());
    let mut spec = single(1);
    spec.arms.push(spec.arms[0].clone());
    spec.arms[1].weight = 0;
    assert!(spec.validate().unwrap_err().0.contains("two arms"));
    let mut spec = single(1);
    spec.arms[0].role = ArmRole::Shadow;
    assert!(spec.validate().is_err());
}

fn following(alias: &str, version: i64) -> DeploymentSpec {
    DeploymentSpec::single(
        ModelRef {
            name: "fraud".into(),
            version,
            alias: Some(alias.into()),
        },
        DeploymentSettings::new(),
    )
}

fn version(v: i64) -> ModelRef {
    ModelRef {
        name: "fraud".into(),
        version: v,
        alias: None,
    }
}

#[test]
fn a_deployment_made_from_an_alias_keeps_following_it_through_every_change() {
    let spec = following("champion", 3);
    assert_eq!(spec.followed_alias(), Some("champion"));
    // Replacing by a version of the same model, promoting a shadow, rolling
    // back: the primary still follows, so the alias moves with it.
    let replaced = spec.replace(version(4));
    assert_eq!(replaced.primary().model.version, 4);
    assert_eq!(replaced.followed_alias(), Some("champion"));
    let promoted = spec
        .start_shadow(version(5), 100)
        .unwrap()
        .promote(None)
        .unwrap();
    assert_eq!(promoted.primary().model.version, 5);
    assert_eq!(promoted.followed_alias(), Some("champion"));
    let back = promoted.rollback(&[]).unwrap();
    assert_eq!(back.primary().model.version, 3);
    assert_eq!(back.followed_alias(), Some("champion"));
    // Another model does not follow this one's alias.
    let other = spec.replace(ModelRef {
        name: "other".into(),
        version: 1,
        alias: None,
    });
    assert_eq!(other.followed_alias(), None);
}

#[test]
fn a_moved_alias_starts_the_configured_rollout() {
    let spec = following("champion", 3);
    assert_eq!(spec.follow(3, 0), None, "already there");
    let replaced = spec.follow(4, 0).unwrap();
    assert_eq!(replaced.primary().model.version, 4);
    assert!(replaced.standby().is_none());

    let mut blue_green = spec.clone();
    blue_green.settings.on_alias_move = AliasRollout::BlueGreen;
    let switched = blue_green.follow(4, 0).unwrap();
    assert_eq!(switched.primary().model.version, 4);
    assert_eq!(switched.standby().unwrap().model.version, 3);

    let mut canary = spec.clone();
    canary.settings.on_alias_move = AliasRollout::Canary;
    let started = canary.follow(4, 1_000).unwrap();
    assert!(matches!(started.policy, Policy::Canary(_)));
    assert_eq!(started.arm("canary").unwrap().model.version, 4);
    // The primary keeps following until the canary is promoted.
    assert_eq!(started.followed_alias(), Some("champion"));
    assert_eq!(
        started.follow(5, 2_000),
        None,
        "an experiment decides on its own"
    );
    let done = started.promote(None).unwrap();
    assert_eq!(done.primary().model.version, 4);
    assert_eq!(done.followed_alias(), Some("champion"));

    // Made from a version: nothing follows.
    let pinned = DeploymentSpec::single(version(3), DeploymentSettings::new());
    assert_eq!(pinned.follow(4, 0), None);
}
