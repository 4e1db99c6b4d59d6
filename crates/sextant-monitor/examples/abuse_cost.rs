//! Cost of the per-client abuse tracker per observed query: 20 numeric
//! features, every client's history full (512 stored queries, 256
//! signatures, 1000 PRADA distances), one query a second per client.
//!
//! ```text
//! cargo run --release -p sextant-monitor --example abuse_cost
//! ```
//!
//! Prints nanoseconds per `observe` (this thread's CPU time, which other
//! load on a shared machine inflates less than wall time, and wall time)
//! for each of 5 runs and their median, for: one client sending
//! independent reference-like queries (the minimum-distance scan's early
//! exit works best on spread-out history), one client walking in small
//! steps (a near-duplicate attacker: every stored query is close, so
//! fewer rows are abandoned early), and 1000 clients in turn (their
//! histories, 58 MB, do not fit in cache).

use std::hint::black_box;
use std::time::Instant;

use sextant_monitor::live::{AbuseConfig, AbuseTracker, ReferenceProfile, Scaling};

const FEATURES: usize = 20;
const REFERENCE_ROWS: usize = 20_000;
const DISTINCT_ROWS: usize = 8192;
const QUERIES: usize = 200_000;
const RUNS: usize = 5;
const SECOND: i64 = 1_000_000;
const START: i64 = 1_750_000_000 * SECOND;

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

/// Row-major rows of an AR(1) chain across features, each feature on its
/// own scale.
fn rows(rng: &mut Rng, count: usize) -> Vec<f64> {
    let mut values = Vec::with_capacity(count * FEATURES);
    for _ in 0..count {
        let mut previous = rng.normal();
        for feature in 0..FEATURES {
            let x = if feature == 0 {
                previous
            } else {
                0.6 * previous + 0.8 * rng.normal()
            };
            values.push(x * (1.0 + feature as f64) + feature as f64);
            previous = x;
        }
    }
    values
}

fn median(mut values: Vec<f64>) -> f64 {
    values.sort_by(f64::total_cmp);
    values[values.len() / 2]
}

/// This thread's CPU time in nanoseconds (Linux), `None` elsewhere.
fn thread_cpu_ns() -> Option<u64> {
    let stat = std::fs::read_to_string("/proc/thread-self/schedstat").ok()?;
    stat.split_whitespace().next()?.parse().ok()
}

/// Runs `query(i)` for `QUERIES` queries `RUNS` times after a warm-up of
/// `warm_up` queries, and prints the nanoseconds per query.
fn measure(name: &str, warm_up: usize, mut query: impl FnMut(usize)) {
    let mut i = 0;
    for _ in 0..warm_up {
        query(i);
        i += 1;
    }
    let (mut cpu_runs, mut wall_runs) = (Vec::new(), Vec::new());
    for _ in 0..RUNS {
        let cpu_started = thread_cpu_ns();
        let started = Instant::now();
        for _ in 0..QUERIES {
            query(i);
            i += 1;
        }
        wall_runs.push(started.elapsed().as_nanos() as f64 / QUERIES as f64);
        if let (Some(start), Some(end)) = (cpu_started, thread_cpu_ns()) {
            cpu_runs.push((end - start) as f64 / QUERIES as f64);
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
            "{name:<44} CPU  median {:>5.0} ns/observe  (runs: {})",
            median(cpu_runs.clone()),
            shown(&cpu_runs)
        );
    }
    println!(
        "{name:<44} wall median {:>5.0} ns/observe  (runs: {})",
        median(wall_runs.clone()),
        shown(&wall_runs)
    );
}

fn main() {
    let mut rng = Rng(42);
    let names: Vec<String> = (0..FEATURES).map(|i| format!("feature_{i:02}")).collect();
    let reference = rows(&mut rng, REFERENCE_ROWS);
    let profile = ReferenceProfile::from_rows(&names, &reference, &[]).unwrap();
    let scaling = Scaling::from_profile(&profile);
    let spreads: Vec<f64> = scaling.features().iter().map(|f| f.scale).collect();
    let live = rows(&mut rng, DISTINCT_ROWS);
    let row = |i: usize| &live[(i % DISTINCT_ROWS) * FEATURES..][..FEATURES];
    let config = AbuseConfig::default();
    let full_history = config.prada_distances + config.prada_history;

    let mut tracker = AbuseTracker::new(config.clone(), scaling.clone());
    measure("one client, independent queries", full_history, |i| {
        let verdict = tracker.observe(
            "client",
            START + i as i64 * SECOND,
            black_box(row(i)),
            Some(0.5),
        );
        black_box(verdict);
    });

    // Steps of 5% of each feature's spread from the previous query.
    let mut tracker = AbuseTracker::new(config.clone(), scaling.clone());
    let mut walk = row(0).to_vec();
    let mut walk_rng = Rng(7);
    measure("one client, small-step walk", full_history, |i| {
        for (x, spread) in walk.iter_mut().zip(&spreads) {
            *x += 0.05 * spread * walk_rng.normal();
        }
        let verdict = tracker.observe("walker", START + i as i64 * SECOND, &walk, Some(0.5));
        black_box(verdict);
    });

    const CLIENTS: usize = 1000;
    let client_names: Vec<String> = (0..CLIENTS).map(|c| format!("client-{c:04}")).collect();
    let mut tracker = AbuseTracker::new(config, scaling);
    measure(
        "1000 clients in turn, independent queries",
        CLIENTS * full_history,
        |i| {
            let client = &client_names[i % CLIENTS];
            let now = START + (i / CLIENTS) as i64 * SECOND;
            let verdict = tracker.observe(client, now, black_box(row(i)), Some(0.5));
            black_box(verdict);
        },
    );
    println!(
        "tracker memory with {CLIENTS} full clients: {:.1} MB",
        tracker.memory_bytes() as f64 / 1e6
    );
}
