//! Each deployment's recent traffic, kept in the server so the UI shows
//! requests per second, p50/p99 latency and error rate per arm over time
//! without a Prometheus server: every [`SAMPLE_PERIOD`] the arms' counters
//! are sampled into a ring of the last hour.

use std::collections::{HashMap, VecDeque};
use std::sync::Mutex;
use std::time::Duration;

use sextant_api::deployments::{ArmCounters, LATENCY_BUCKETS_MS};

/// How often counters are sampled.
pub const SAMPLE_PERIOD: Duration = Duration::from_secs(10);
/// Samples kept per deployment: an hour.
const KEPT: usize = 360;

/// One arm's figures over one sampling interval.
#[derive(Debug, Clone, PartialEq)]
pub struct Interval {
    pub end_ms: i64,
    pub requests_per_second: f64,
    pub error_rate: f64,
    pub p50_ms: Option<f64>,
    pub p99_ms: Option<f64>,
}

type Sample = (i64, Vec<(String, ArmCounters)>);

#[derive(Default)]
pub struct TrafficHistory {
    samples: Mutex<HashMap<String, VecDeque<Sample>>>,
}

impl TrafficHistory {
    pub fn record(&self, deployment: &str, at_ms: i64, arms: Vec<(String, ArmCounters)>) {
        let mut samples = self.samples.lock().unwrap_or_else(|e| e.into_inner());
        let ring = samples.entry(deployment.to_string()).or_default();
        ring.push_back((at_ms, arms));
        while ring.len() > KEPT {
            ring.pop_front();
        }
    }

    /// Forgets deployments that no longer exist.
    pub fn retain(&self, deployments: &[String]) {
        let mut samples = self.samples.lock().unwrap_or_else(|e| e.into_inner());
        samples.retain(|name, _| deployments.contains(name));
    }

    /// Per arm, the figures of each interval between consecutive samples.
    pub fn intervals(&self, deployment: &str) -> Vec<(String, Vec<Interval>)> {
        let samples = self.samples.lock().unwrap_or_else(|e| e.into_inner());
        let Some(ring) = samples.get(deployment) else {
            return Vec::new();
        };
        let mut by_arm: Vec<(String, Vec<Interval>)> = Vec::new();
        for pair in ring.iter().collect::<Vec<_>>().windows(2) {
            let ((start, before), (end, after)) = (pair[0], pair[1]);
            let seconds = (end - start) as f64 / 1000.0;
            if seconds <= 0.0 {
                continue;
            }
            for (arm, now) in after {
                let previous = before.iter().find(|(name, _)| name == arm).map(|(_, c)| c);
                let interval = interval(previous, now, *end, seconds);
                match by_arm.iter_mut().find(|(name, _)| name == arm) {
                    Some((_, list)) => list.push(interval),
                    None => by_arm.push((arm.clone(), vec![interval])),
                }
            }
        }
        by_arm
    }
}

/// The figures between two snapshots of one arm's counters; counters that
/// went down were reset (a new revision), so the later snapshot is the delta.
fn interval(
    before: Option<&ArmCounters>,
    after: &ArmCounters,
    end_ms: i64,
    seconds: f64,
) -> Interval {
    let reset = before.is_none_or(|b| b.requests > after.requests);
    let delta = |now: u64, then: u64| if reset { now } else { now.saturating_sub(then) };
    let requests = delta(after.requests, before.map_or(0, |b| b.requests));
    let errors = delta(after.errors, before.map_or(0, |b| b.errors));
    let buckets: Vec<u64> = after
        .latency_buckets
        .iter()
        .enumerate()
        .map(|(idx, now)| {
            delta(
                *now,
                before
                    .and_then(|b| b.latency_buckets.get(idx).copied())
                    .unwrap_or(0),
            )
        })
        .collect();
    Interval {
        end_ms,
        requests_per_second: requests as f64 / seconds,
        error_rate: if requests > 0 {
            errors as f64 / requests as f64
        } else {
            0.0
        },
        p50_ms: quantile(&buckets, 0.5),
        p99_ms: quantile(&buckets, 0.99),
    }
}

/// The `q` quantile of a latency histogram, interpolated linearly inside
/// the bucket where the cumulative count crosses it (as Prometheus'
/// `histogram_quantile` does); the open last bucket reports its lower bound.
fn quantile(buckets: &[u64], q: f64) -> Option<f64> {
    let total: u64 = buckets.iter().sum();
    if total == 0 {
        return None;
    }
    let rank = q * total as f64;
    let mut seen = 0u64;
    for (idx, count) in buckets.iter().enumerate() {
        if *count > 0 && (seen + count) as f64 >= rank {
            let lower = if idx == 0 {
                0.0
            } else {
                LATENCY_BUCKETS_MS[idx - 1]
            };
            let Some(upper) = LATENCY_BUCKETS_MS.get(idx).copied() else {
                return Some(lower);
            };
            let within = (rank - seen as f64) / *count as f64;
            return Some(lower + (upper - lower) * within.clamp(0.0, 1.0));
        }
        seen += count;
    }
    LATENCY_BUCKETS_MS.last().copied()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn counters(requests: u64, errors: u64, in_bucket: usize) -> ArmCounters {
        let mut latency_buckets = vec![0; LATENCY_BUCKETS_MS.len() + 1];
        latency_buckets[in_bucket] = requests;
        ArmCounters {
            requests,
            errors,
            rejected: 0,
            latency_buckets,
        }
    }

    #[test]
    fn intervals_are_rates_between_samples_and_survive_resets() {
        let history = TrafficHistory::default();
        history.record("d", 0, vec![("primary".into(), counters(0, 0, 4))]);
        history.record("d", 10_000, vec![("primary".into(), counters(100, 5, 4))]);
        // A new revision restarts its counters.
        history.record("d", 20_000, vec![("primary".into(), counters(30, 0, 6))]);
        let intervals = history.intervals("d");
        assert_eq!(intervals.len(), 1);
        let (arm, list) = &intervals[0];
        assert_eq!(arm, "primary");
        assert_eq!(list[0].requests_per_second, 10.0);
        assert_eq!(list[0].error_rate, 0.05);
        // All requests in the (0.5, 1] ms bucket: p50 is inside it.
        let p50 = list[0].p50_ms.unwrap();
        assert!(p50 > 0.5 && p50 <= 1.0, "{p50}");
        assert_eq!(list[1].requests_per_second, 3.0);
    }
}
