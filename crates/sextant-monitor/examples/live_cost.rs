//! Cost of live monitoring per request: 20 numeric features, one row per
//! request (the common online case), outlier score (robust z + Mahalanobis)
//! and window updates (bins, mean, missing, counters), windows rolling
//! every 5 minutes of simulated time.
//!
//! ```text
//! cargo run --release -p sextant-monitor --example live_cost
//! ```
//!
//! Prints nanoseconds per request (this thread's CPU time, which other load
//! on a shared machine inflates less than wall time, and wall time) for
//! each of 5 runs of 1M requests and their median, for four variants:
//! `observe_into` on prebuilt batches (the monitor's own cost), the same
//! building the `FeatureBatch` per request (what a server pays), `observe`
//! (allocates the verdict vector), and rows with one feature missing (the
//! Mahalanobis distance over the other 19 through the precision matrix's
//! Schur complement).

use std::hint::black_box;
use std::time::{Duration, Instant};

use sextant_monitor::live::{
    FeatureBatch, FeatureColumn, LiveMonitor, MonitorConfig, OutlierVerdict, PredictionValues,
    ReferenceProfile,
};

const FEATURES: usize = 20;
const REFERENCE_ROWS: usize = 20_000;
const DISTINCT_ROWS: usize = 4096;
const REQUESTS: usize = 1_000_000;
const RUNS: usize = 5;
/// Simulated time between requests: 0.5 ms, so a 5-minute window holds
/// 600 000 requests and each run rolls over at least once.
const REQUEST_SPACING_US: i64 = 500;

/// SplitMix64 and Box-Muller: deterministic data without dependencies.
struct Rng(u64);

impl Rng {
    fn uniform(&mut self) -> f64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        (((z ^ (z >> 31)) >> 11) as f64 + 0.5) / (1u64 << 53) as f64
    }

    fn normal(&mut self) -> f64 {
        let (u, v) = (self.uniform(), self.uniform());
        (-2.0 * u.ln()).sqrt() * (std::f64::consts::TAU * v).cos()
    }
}

/// Row-major rows of an AR(1) chain across features (x_j = 0.6 x_{j−1} +
/// 0.8 z_j), so the covariance is not diagonal, plus a prediction.
fn rows(rng: &mut Rng, count: usize) -> (Vec<f64>, Vec<f64>) {
    let mut values = Vec::with_capacity(count * FEATURES);
    let mut predictions = Vec::with_capacity(count);
    for _ in 0..count {
        let mut previous = rng.normal();
        let mut sum = 0.0;
        for feature in 0..FEATURES {
            let x = if feature == 0 {
                previous
            } else {
                0.6 * previous + 0.8 * rng.normal()
            };
            values.push(x * (1.0 + feature as f64) + feature as f64);
            sum += x;
            previous = x;
        }
        predictions.push(sum / FEATURES as f64);
    }
    (values, predictions)
}

fn median(mut values: Vec<f64>) -> f64 {
    values.sort_by(f64::total_cmp);
    values[values.len() / 2]
}

/// This thread's CPU time in nanoseconds (Linux: the first field of
/// `/proc/thread-self/schedstat`), which other processes on a shared
/// machine do not inflate the way they inflate wall time; `None` elsewhere.
fn thread_cpu_ns() -> Option<u64> {
    let stat = std::fs::read_to_string("/proc/thread-self/schedstat").ok()?;
    stat.split_whitespace().next()?.parse().ok()
}

/// Runs `request(i)` for `REQUESTS` requests `RUNS` times and prints the
/// nanoseconds per request of each run (thread CPU time, and wall time).
///
/// `i` counts requests across every call, so simulated time only moves
/// forward and windows roll as in a server.
fn measure(name: &str, requests_so_far: &mut usize, mut request: impl FnMut(usize)) {
    for _ in 0..REQUESTS / 10 {
        request(*requests_so_far); // warm-up: buffers grown, caches filled
        *requests_so_far += 1;
    }
    let (mut cpu_runs, mut wall_runs) = (Vec::with_capacity(RUNS), Vec::with_capacity(RUNS));
    for _ in 0..RUNS {
        let cpu_started = thread_cpu_ns();
        let started = Instant::now();
        for _ in 0..REQUESTS {
            request(*requests_so_far);
            *requests_so_far += 1;
        }
        wall_runs.push(started.elapsed().as_nanos() as f64 / REQUESTS as f64);
        if let (Some(start), Some(end)) = (cpu_started, thread_cpu_ns()) {
            cpu_runs.push((end - start) as f64 / REQUESTS as f64);
        }
    }
    let shown = |runs: &[f64]| {
        runs.iter()
            .map(|ns| format!("{ns:.0}"))
            .collect::<Vec<_>>()
            .join(", ")
    };
    if !cpu_runs.is_empty() {
        println!(
            "{name:<46} CPU  median {:>5.0} ns/request  (runs: {})",
            median(cpu_runs.clone()),
            shown(&cpu_runs)
        );
    }
    println!(
        "{name:<46} wall median {:>5.0} ns/request  (runs: {})",
        median(wall_runs.clone()),
        shown(&wall_runs)
    );
}

fn main() {
    let mut rng = Rng(42);
    let names: Vec<String> = (0..FEATURES).map(|i| format!("feature_{i:02}")).collect();
    let (reference, reference_predictions) = rows(&mut rng, REFERENCE_ROWS);
    let started = Instant::now();
    let profile = ReferenceProfile::from_rows(&names, &reference, &reference_predictions).unwrap();
    println!(
        "profile of {REFERENCE_ROWS} rows x {FEATURES} features built in {:.1} ms; Mahalanobis over {} features, threshold {:.2}",
        started.elapsed().as_secs_f64() * 1e3,
        profile.mahalanobis_features().len(),
        profile.mahalanobis_threshold().unwrap_or(f64::NAN),
    );
    let monitor = LiveMonitor::new(profile, MonitorConfig::default());

    let (live, live_predictions) = rows(&mut rng, DISTINCT_ROWS);
    let batches: Vec<FeatureBatch<'_>> = (0..DISTINCT_ROWS)
        .map(|row| FeatureBatch {
            rows: 1,
            columns: (0..FEATURES)
                .map(|feature| FeatureColumn::Numeric(&live[row * FEATURES + feature..][..1]))
                .collect(),
        })
        .collect();
    let mut with_missing = live.clone();
    for row in 0..DISTINCT_ROWS {
        with_missing[row * FEATURES + row % FEATURES] = f64::NAN;
    }
    let missing_batches: Vec<FeatureBatch<'_>> = (0..DISTINCT_ROWS)
        .map(|row| FeatureBatch {
            rows: 1,
            columns: (0..FEATURES)
                .map(|feature| {
                    FeatureColumn::Numeric(&with_missing[row * FEATURES + feature..][..1])
                })
                .collect(),
        })
        .collect();
    let prediction = |row: usize| PredictionValues::Numbers(&live_predictions[row..][..1]);
    let now = |i: usize| 1_750_000_000_000_000 + i as i64 * REQUEST_SPACING_US;

    let mut verdicts: Vec<OutlierVerdict> = Vec::with_capacity(1);
    let mut requests = 0;
    measure(
        "observe_into, prebuilt single-row batches",
        &mut requests,
        |i| {
            let row = i % DISTINCT_ROWS;
            monitor.observe_into(
                now(i),
                black_box(&batches[row]),
                &prediction(row),
                &mut verdicts,
            );
            black_box(&verdicts);
        },
    );
    measure(
        "observe_into, building the batch per request",
        &mut requests,
        |i| {
            let row = i % DISTINCT_ROWS;
            let batch = FeatureBatch {
                rows: 1,
                columns: (0..FEATURES)
                    .map(|feature| FeatureColumn::Numeric(&live[row * FEATURES + feature..][..1]))
                    .collect(),
            };
            monitor.observe_into(now(i), black_box(&batch), &prediction(row), &mut verdicts);
            black_box(&verdicts);
        },
    );
    measure("observe (allocates the verdicts)", &mut requests, |i| {
        let row = i % DISTINCT_ROWS;
        black_box(monitor.observe(now(i), black_box(&batches[row]), &prediction(row)));
    });
    measure(
        "observe_into, one feature missing per row",
        &mut requests,
        |i| {
            let row = i % DISTINCT_ROWS;
            monitor.observe_into(
                now(i),
                black_box(&missing_batches[row]),
                &prediction(row),
                &mut verdicts,
            );
            black_box(&verdicts);
        },
    );

    let end = now(requests);
    let day = Duration::from_secs(24 * 3600);
    let started = Instant::now();
    let report = monitor.report(end, day);
    let report_us = started.elapsed().as_secs_f64() * 1e6;
    let started = Instant::now();
    let windows = monitor.windows(end, day);
    let windows_us = started.elapsed().as_secs_f64() * 1e6;
    println!(
        "report over 24 h: {} requests in {} windows, outlier rate {:.4}%, {} drifted features; \
         report in {report_us:.0} µs, per-window summaries in {windows_us:.0} µs",
        report.requests,
        windows.len(),
        report.outlier_rate * 100.0,
        report.drifted_features,
    );
}
