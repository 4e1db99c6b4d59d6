//! Per-client abuse signals on generated traffic: benign clients raise
//! nothing; replays, extraction-like query streams (PRADA's attacks),
//! rate spikes and boundary probing are each flagged; memory stays
//! bounded.

use sextant_monitor::live::{
    AbuseConfig, AbuseSignals, AbuseTracker, ClientVerdict, ReferenceProfile, ScaledFeature,
    Scaling,
};

use crate::live::Rng;

const FEATURES: usize = 20;
const SECOND: i64 = 1_000_000;
const START: i64 = 1_750_000_000 * SECOND;

/// A reference-like row: 12 correlated normal features (an AR(1) chain),
/// 4 log-normal (skewed), 2 uniform on [0, 10] and 2 small integers, each
/// on its own scale.
fn reference_row(rng: &mut Rng) -> Vec<f64> {
    let mut row = Vec::with_capacity(FEATURES);
    let mut previous = rng.normal();
    for feature in 0..12 {
        let x = if feature == 0 {
            previous
        } else {
            0.6 * previous + 0.8 * rng.normal()
        };
        previous = x;
        row.push(10.0 * feature as f64 + (1.0 + feature as f64) * x);
    }
    for _ in 0..4 {
        row.push(rng.normal().exp());
    }
    for _ in 0..2 {
        row.push(10.0 * rng.uniform());
    }
    for _ in 0..2 {
        row.push((rng.uniform() * 5.0).floor());
    }
    row
}

fn scaling() -> Scaling {
    let mut rng = Rng(7);
    let names: Vec<String> = (0..FEATURES).map(|i| format!("f{i}")).collect();
    let rows: Vec<f64> = (0..20_000).flat_map(|_| reference_row(&mut rng)).collect();
    let profile = ReferenceProfile::from_rows(&names, &rows, &[]).unwrap();
    let scaling = Scaling::from_profile(&profile);
    assert_eq!(scaling.len(), FEATURES);
    scaling
}

/// A benign classifier's margin: mostly confident, sometimes not.
fn benign_margin(rng: &mut Rng) -> Option<f64> {
    Some(rng.uniform())
}

/// Observes `queries` queries of `client`, one every `spacing_us` from
/// `start_us`, drawn by `query`; returns every verdict.
fn stream(
    tracker: &mut AbuseTracker,
    client: &str,
    start_us: i64,
    spacing_us: i64,
    queries: usize,
    mut query: impl FnMut(usize) -> (Vec<f64>, Option<f64>),
) -> Vec<ClientVerdict> {
    (0..queries)
        .map(|i| {
            let (features, margin) = query(i);
            tracker.observe(client, start_us + i as i64 * spacing_us, &features, margin)
        })
        .collect()
}

/// How many verdicts raised each signal.
fn raised(verdicts: &[ClientVerdict], signal: fn(&AbuseSignals) -> bool) -> usize {
    verdicts.iter().filter(|v| signal(&v.signals)).count()
}

#[test]
fn benign_clients_raise_nothing() {
    let scaling = scaling();
    let mut tracker = AbuseTracker::new(AbuseConfig::default(), scaling);
    for seed in 0..4 {
        let mut rng = Rng(100 + seed);
        let client = format!("benign-{seed}");
        // One query a second for 40 minutes: past every warm-up, with the
        // PRADA distance set full. W is read after every query.
        let mut verdicts = Vec::new();
        let mut lowest_w = f64::INFINITY;
        for i in 0..2400 {
            let now = START + i * SECOND;
            let features = reference_row(&mut rng);
            verdicts.push(tracker.observe(&client, now, &features, benign_margin(&mut rng)));
            if let Some(w) = tracker.client(&client, now).unwrap().prada_w {
                lowest_w = lowest_w.min(w);
            }
        }
        eprintln!("{client}: lowest W while the distances accumulated: {lowest_w}");
        assert!(lowest_w > 0.92, "{lowest_w}");
        let flagged = raised(&verdicts, AbuseSignals::any);
        let end = START + 2400 * SECOND;
        let figures = tracker.client(&client, end).unwrap();
        eprintln!(
            "{client}: W = {:?} over {} distances, near-duplicate share {:?}, boundary share {:?}",
            figures.prada_w,
            figures.prada_tested,
            figures.near_duplicate_share,
            figures.near_boundary_share
        );
        assert_eq!(flagged, 0, "{client}: {figures:?}");
        assert!(figures.prada_w.unwrap() > 0.95, "{figures:?}");
        assert_eq!(figures.prada_distances, 1000);
        assert!(figures.near_duplicate_share.unwrap() < 0.05, "{figures:?}");
        assert!(
            (59.0..=61.0).contains(&figures.requests_in_window),
            "{figures:?}"
        );
    }
    let report = tracker.report(START + 2400 * SECOND);
    assert_eq!(report.totals.clients, 4);
    assert_eq!(report.totals.flagged, 0);
    assert_eq!(report.totals.observed, 4 * 2400);
}

#[test]
fn replayed_near_identical_queries_are_near_duplicates() {
    let mut tracker = AbuseTracker::new(AbuseConfig::default(), scaling());
    let mut rng = Rng(200);
    let bases: Vec<Vec<f64>> = (0..5).map(|_| reference_row(&mut rng)).collect();
    let spreads: Vec<f64> = tracker
        .scaling()
        .features()
        .iter()
        .map(|f| f.scale)
        .collect();
    // Five queries replayed with jitter of 1% of each feature's spread.
    let verdicts = stream(&mut tracker, "replayer", START, SECOND, 300, |i| {
        let row = bases[i % bases.len()]
            .iter()
            .zip(&spreads)
            .map(|(x, spread)| x + 0.01 * spread * rng.normal())
            .collect();
        (row, benign_margin(&mut rng))
    });
    let mut benign_rng = Rng(201);
    let benign = stream(&mut tracker, "benign", START, SECOND, 300, |_| {
        (
            reference_row(&mut benign_rng),
            benign_margin(&mut benign_rng),
        )
    });
    let first = verdicts
        .iter()
        .position(|v| v.signals.near_duplicates)
        .expect("the replayer is flagged");
    // Judged once 50 queries are in the window; all but the first five
    // are near duplicates.
    assert_eq!(first, 49);
    assert!(verdicts[first..].iter().all(|v| v.signals.near_duplicates));
    assert_eq!(raised(&benign, |s| s.near_duplicates), 0);
    let figures = tracker.client("replayer", START + 300 * SECOND).unwrap();
    assert!(figures.near_duplicate_share.unwrap() > 0.95, "{figures:?}");
    // The signal fades once the client stops: two windows later nothing
    // of its traffic is in the sliding window.
    let later = tracker.client("replayer", START + 420 * SECOND).unwrap();
    assert!(!later.signals.near_duplicates, "{later:?}");
}

/// PRADA's first attack family (Papernot et al.'s Jacobian-based
/// augmentation and its variants): synthetic queries a step of `λ` times
/// each feature's spread, in a random sign pattern, away from a recent
/// query, starting from a few real seeds; `λ` alternates between two
/// sizes every 100 queries, as the step schedule of an augmentation does.
fn perturbation_attack(rng: &mut Rng, spreads: &[f64], queries: usize) -> Vec<Vec<f64>> {
    let mut made: Vec<Vec<f64>> = (0..10).map(|_| reference_row(rng)).collect();
    for i in 0..queries {
        let step = if (i / 100) % 2 == 0 { 0.1 } else { 0.25 };
        let recent = made.len().min(300);
        let parent = made[made.len() - 1 - (rng.next_u64() as usize % recent)].clone();
        let child = parent
            .iter()
            .zip(spreads)
            .map(|(x, spread)| {
                let sign = if rng.next_u64() % 2 == 0 { 1.0 } else { -1.0 };
                x + sign * step * spread
            })
            .collect();
        made.push(child);
    }
    made.split_off(10)
}

/// Tramèr et al.'s line searches (USENIX Security 2016), PRADA's second
/// family: from a real seed, one feature at a time is walked in `steps`
/// steps of `step` times its spread.
fn line_search_attack(rng: &mut Rng, spreads: &[f64], queries: usize, step: f64) -> Vec<Vec<f64>> {
    let mut made = Vec::with_capacity(queries);
    while made.len() < queries {
        let seed = reference_row(rng);
        for (feature, spread) in spreads.iter().enumerate() {
            for t in 1..=10 {
                let mut query = seed.clone();
                query[feature] += t as f64 * step * spread;
                made.push(query);
            }
        }
    }
    made.truncate(queries);
    made
}

#[test]
fn extraction_queries_trip_prada_and_benign_traffic_at_the_same_rate_does_not() {
    let mut tracker = AbuseTracker::new(AbuseConfig::default(), scaling());
    let spreads: Vec<f64> = tracker
        .scaling()
        .features()
        .iter()
        .map(|f| f.scale)
        .collect();
    let mut rng = Rng(300);
    let attacks = [
        (
            "perturbations",
            perturbation_attack(&mut rng, &spreads, 1500),
        ),
        (
            "line-search",
            line_search_attack(&mut rng, &spreads, 1500, 0.2),
        ),
        (
            "coarse-line-search",
            line_search_attack(&mut rng, &spreads, 1500, 1.0),
        ),
    ];
    // Every client sends one query every 2 s for 50 minutes: far below any
    // rate limit.
    for (name, queries) in &attacks {
        let verdicts = stream(&mut tracker, name, START, 2 * SECOND, queries.len(), |i| {
            (queries[i].clone(), None)
        });
        let first = verdicts.iter().position(|v| v.signals.extraction);
        let end = START + 3000 * SECOND;
        let figures = tracker.client(name, end).unwrap();
        eprintln!(
            "{name}: extraction first raised at query {first:?}, W = {:?} over {} distances; \
             near-duplicate share {:?}",
            figures.prada_w, figures.prada_tested, figures.near_duplicate_share
        );
        assert!(first.is_some_and(|i| i < 200), "{name}: {first:?}");
        // Raised from then on.
        let after = raised(&verdicts[first.unwrap()..], |s| s.extraction);
        assert!(after as f64 > 0.99 * (verdicts.len() - first.unwrap()) as f64);
        assert!(figures.signals.extraction && figures.prada_w.unwrap() < 0.9);
        assert!(!figures.signals.rate_spike && !figures.signals.boundary_probing);
    }
    let mut benign_rng = Rng(301);
    let benign = stream(&mut tracker, "benign", START, 2 * SECOND, 1500, |_| {
        (reference_row(&mut benign_rng), None)
    });
    assert_eq!(raised(&benign, AbuseSignals::any), 0);
    let report = tracker.report(START + 3000 * SECOND);
    assert_eq!(report.totals.extraction, 3);
    assert_eq!(report.clients.last().unwrap().client, "benign");
}

#[test]
fn rate_spikes_are_flagged_and_steady_high_rates_are_not() {
    let mut tracker = AbuseTracker::new(AbuseConfig::default(), scaling());
    // 2 requests a second for 10 minutes, then 20 a second for a minute,
    // then 2 a second again. Rate alone: no features.
    let mut times: Vec<i64> = (0..1200).map(|i| START + i * SECOND / 2).collect();
    let spike_start = START + 600 * SECOND;
    times.extend((0..1200).map(|i| spike_start + i * SECOND / 20));
    let after_start = spike_start + 60 * SECOND;
    times.extend((0..1200).map(|i| after_start + i * SECOND / 2));
    let mut verdicts: Vec<ClientVerdict> = times[..2400]
        .iter()
        .map(|&t| tracker.observe("spiky", t, &[], None))
        .collect();
    let figures = tracker.client("spiky", times[2399]).unwrap();
    assert!(figures.requests_in_window > 1100.0, "{figures:?}");
    assert!((110.0..=130.0).contains(&figures.baseline_requests.unwrap()));
    verdicts.extend(
        times[2400..]
            .iter()
            .map(|&t| tracker.observe("spiky", t, &[], None)),
    );
    assert_eq!(raised(&verdicts[..1200], |s| s.rate_spike), 0);
    // The sliding window passes 600 requests about 26 s into the spike
    // (120 of the previous window's + 20/s) and stays above until the
    // spike's requests slide out.
    let first = verdicts.iter().position(|v| v.signals.rate_spike).unwrap();
    assert!((1200 + 400..1200 + 600).contains(&first), "{first}");
    assert!(verdicts[first..2400].iter().all(|v| v.signals.rate_spike));
    assert!(!verdicts.last().unwrap().signals.rate_spike);

    // 20 a second from the start, for 15 minutes: no history, so the
    // first window is held to the 600-request floor; after it the client's
    // own rate is its baseline.
    let steady: Vec<ClientVerdict> = (0..18_000)
        .map(|i| tracker.observe("steady", START + i * SECOND / 20, &[], None))
        .collect();
    let flagged: Vec<usize> = steady
        .iter()
        .enumerate()
        .filter(|(_, v)| v.signals.rate_spike)
        .map(|(i, _)| i)
        .collect();
    assert_eq!(
        flagged.first(),
        Some(&600),
        "the 601st request of the first minute"
    );
    assert_eq!(flagged.last(), Some(&1199), "not after the first window");
    let figures = tracker.client("steady", START + 900 * SECOND).unwrap();
    assert!(!figures.signals.rate_spike);
    // The first window enters the baseline capped at the threshold (600),
    // and the baseline then climbs towards 1200.
    let baseline = figures.baseline_requests.unwrap();
    assert!((1000.0..1200.0).contains(&baseline), "{baseline}");
}

#[test]
fn boundary_probing_is_flagged() {
    let mut tracker = AbuseTracker::new(AbuseConfig::default(), scaling());
    let mut rng = Rng(400);
    // 70% of the predictions within 0.08 of a tie: a walk along the
    // decision boundary.
    let prober = stream(&mut tracker, "prober", START, SECOND, 200, |_| {
        let margin = if rng.uniform() < 0.7 {
            0.08 * rng.uniform()
        } else {
            rng.uniform()
        };
        (reference_row(&mut rng), Some(margin))
    });
    assert_eq!(
        prober.iter().position(|v| v.signals.boundary_probing),
        Some(49)
    );
    assert!(raised(&prober[49..], |s| s.boundary_probing) > 140);
    let benign = stream(&mut tracker, "benign", START, SECOND, 200, |_| {
        (reference_row(&mut rng), benign_margin(&mut rng))
    });
    assert_eq!(raised(&benign, AbuseSignals::any), 0);
    // A regressor has no margin: never flagged, and NaN counts as none.
    let regressor = stream(&mut tracker, "regressor", START, SECOND, 200, |i| {
        let margin = (i % 2 == 0).then_some(f64::NAN);
        (reference_row(&mut rng), margin)
    });
    assert_eq!(raised(&regressor, AbuseSignals::any), 0);
    let figures = tracker.client("regressor", START + 200 * SECOND).unwrap();
    assert_eq!(figures.near_boundary_share, None);
}

#[test]
fn memory_stays_bounded_by_evicting_the_least_recently_seen() {
    let config = AbuseConfig {
        max_clients: 50,
        ..AbuseConfig::default()
    };
    let mut tracker = AbuseTracker::new(config, scaling());
    let mut rng = Rng(500);
    let mut now = START;
    let mut peak_memory = 0;
    for client in 0..500 {
        for _ in 0..20 {
            now += SECOND / 10;
            tracker.observe(
                &format!("client-{client}"),
                now,
                &reference_row(&mut rng),
                None,
            );
            // A regular client, seen all along, is never the least recent.
            tracker.observe("regular", now, &reference_row(&mut rng), None);
        }
        assert!(tracker.len() <= 50);
        peak_memory = peak_memory.max(tracker.memory_bytes());
    }
    let report = tracker.report(now);
    assert_eq!(report.totals.clients, 50);
    assert_eq!(report.totals.evicted, 451);
    assert_eq!(report.totals.observed, 500 * 20 * 2);
    assert!(tracker.client("regular", now).is_some());
    assert!(tracker.client("client-499", now).is_some());
    assert!(tracker.client("client-450", now).is_none());
    assert!(tracker.client("client-451", now).is_some());
    // 50 clients of 20 queries (and one of 10 000): well under 50 full
    // histories (50 · 58 KB).
    assert!(peak_memory < 3_000_000, "{peak_memory}");

    // Forgetting keeps the recency order: the oldest left is still the
    // next evicted.
    assert!(tracker.forget("client-460"));
    assert!(!tracker.forget("client-460"));
    assert_eq!(tracker.len(), 49);
    tracker.observe("newcomer-1", now, &[], None);
    assert_eq!(tracker.len(), 50);
    tracker.observe("newcomer-2", now, &[], None);
    assert!(tracker.client("client-451", now).is_none());
    assert!(tracker.client("client-452", now).is_some());
    assert!(tracker.client("regular", now).is_some());
    assert_eq!(tracker.len(), 50);
}

#[test]
fn throttling_follows_the_signals_and_reports_serialize() {
    let config: AbuseConfig = serde_json::from_str(r#"{"throttle": true, "window_seconds": 30}"#)
        .expect("every field is optional");
    assert_eq!(config.window_seconds, 30);
    assert_eq!(
        config.rate_min_requests,
        AbuseConfig::default().rate_min_requests
    );
    let mut tracker = AbuseTracker::new(config, scaling());
    // 700 requests in 7 s from a new client: above the 600 floor.
    let burst: Vec<ClientVerdict> = (0..700)
        .map(|i| tracker.observe("burst", START + i * SECOND / 100, &[], None))
        .collect();
    let last = burst.last().unwrap();
    assert!(last.signals.rate_spike && last.throttle);
    assert!(tracker.is_throttled("burst", START + 7 * SECOND));
    assert!(!tracker.is_throttled("unknown", START));
    // Two windows later the burst has slid out.
    assert!(!tracker.is_throttled("burst", START + 61 * SECOND));
    let quiet = tracker.observe("quiet", START, &[1.0; FEATURES], Some(0.9));
    assert_eq!(quiet, ClientVerdict::default());

    let report = tracker.report(START + 7 * SECOND);
    assert_eq!(report.window_seconds, 30);
    assert_eq!(report.clients[0].client, "burst");
    assert_eq!(report.totals.throttled, 1);
    let json = serde_json::to_value(&report).unwrap();
    assert_eq!(json["clients"][0]["signals"]["rate_spike"], true);
    assert_eq!(json["totals"]["clients"], 2);

    // Without `throttle`, signals are reported but nobody is throttled.
    let mut tracker = AbuseTracker::new(AbuseConfig::default(), scaling());
    for i in 0..700 {
        tracker.observe("burst", START + i * SECOND / 100, &[], None);
    }
    assert!(
        tracker
            .client("burst", START + 7 * SECOND)
            .unwrap()
            .signals
            .rate_spike
    );
    assert!(!tracker.is_throttled("burst", START + 7 * SECOND));
}

#[test]
fn scaling_sanitises_and_short_rows_read_as_missing() {
    let scaling = Scaling::new(vec![
        ScaledFeature {
            name: "a".into(),
            center: f64::NAN,
            scale: 0.0,
        },
        ScaledFeature {
            name: "b".into(),
            center: 5.0,
            scale: 2.0,
        },
    ]);
    assert_eq!(scaling.features()[0].center, 0.0);
    assert_eq!(scaling.features()[0].scale, 1.0);
    let mut tracker = AbuseTracker::new(AbuseConfig::default(), scaling);
    // One value for two features, extra values, infinities: read as far as
    // they fit, never a panic.
    for i in 0..100 {
        tracker.observe("short", START + i * SECOND, &[i as f64], None);
        tracker.observe("long", START + i * SECOND, &[1.0, 2.0, 3.0, 4.0], None);
        tracker.observe(
            "wild",
            START + i * SECOND,
            &[f64::INFINITY, -f64::INFINITY],
            None,
        );
        tracker.observe("empty", START + i * SECOND, &[f64::NAN, f64::NAN], None);
    }
    let report = tracker.report(START + 100 * SECOND);
    let figures = |name: &str| report.clients.iter().find(|c| c.client == name).unwrap();
    assert!(figures("short").near_duplicate_share.is_some());
    // The same query 100 times: replays, and no PRADA distance (0 is left
    // out).
    assert!(figures("long").signals.near_duplicates);
    assert_eq!(figures("long").prada_distances, 0);
    assert!(figures("wild").signals.near_duplicates);
    // No feature present: counted as requests only.
    assert_eq!(figures("empty").compared_in_window, 0.0);
    assert_eq!(figures("empty").near_duplicate_share, None);
    assert!((figures("empty").requests_in_window - 60.0).abs() < 1e-9);
}
