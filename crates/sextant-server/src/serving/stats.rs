//! Counters of every arm, shared by three readers: Prometheus (`/metrics`),
//! the canary controller (health of the current step) and the reports
//! replicas send to the server.
//!
//! Each arm records into two sets: [`ArmStats`] for Prometheus, which lives
//! as long as the (deployment, arm, model version) it is labelled with, so
//! its counters only ever grow; and a per-revision set, created fresh with
//! every revision a server starts serving, so that "the canary's error rate
//! in this step" is a plain read. Recording is a handful of relaxed atomic
//! additions.
//!
//! The exposition is written by hand: the text format is a few lines per
//! metric, and the counters have to be ours anyway for the other two
//! readers.

use std::collections::BTreeMap;
use std::fmt::Write;
use std::sync::atomic::{AtomicI64, AtomicU64, Ordering::Relaxed};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use sextant_api::deployments::{ArmCounters, LATENCY_BUCKETS_MS};

/// How a request ended, for the `code` and `kind` labels.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Outcome {
    Ok,
    /// The caller's mistake (4xx): bad shape, type, missing feature.
    Rejected,
    /// The server's failure (5xx): a crashed worker, a timeout, a bug.
    Failed,
    /// Refused for lack of capacity (503).
    Overloaded,
}

/// Lock-free counters of one arm.
#[derive(Debug)]
pub struct Counters {
    requests: AtomicU64,
    rows: AtomicU64,
    errors: AtomicU64,
    rejected: AtomicU64,
    overloaded: AtomicU64,
    /// One per bound in `LATENCY_BUCKETS_MS`, plus one for slower.
    buckets: Vec<AtomicU64>,
    latency_micros: AtomicU64,
}

impl Counters {
    pub fn new() -> Counters {
        Counters {
            requests: AtomicU64::new(0),
            rows: AtomicU64::new(0),
            errors: AtomicU64::new(0),
            rejected: AtomicU64::new(0),
            overloaded: AtomicU64::new(0),
            buckets: (0..=LATENCY_BUCKETS_MS.len())
                .map(|_| AtomicU64::new(0))
                .collect(),
            latency_micros: AtomicU64::new(0),
        }
    }

    pub fn record(&self, outcome: Outcome, rows: usize, latency: Duration) {
        self.requests.fetch_add(1, Relaxed);
        match outcome {
            Outcome::Ok => {
                self.rows.fetch_add(rows as u64, Relaxed);
            }
            Outcome::Rejected => {
                self.rejected.fetch_add(1, Relaxed);
            }
            Outcome::Failed => {
                self.errors.fetch_add(1, Relaxed);
            }
            Outcome::Overloaded => {
                self.overloaded.fetch_add(1, Relaxed);
                self.errors.fetch_add(1, Relaxed);
            }
        }
        let ms = latency.as_secs_f64() * 1000.0;
        let bucket = LATENCY_BUCKETS_MS
            .iter()
            .position(|&bound| ms <= bound)
            .unwrap_or(LATENCY_BUCKETS_MS.len());
        self.buckets[bucket].fetch_add(1, Relaxed);
        self.latency_micros
            .fetch_add(latency.as_micros() as u64, Relaxed);
    }

    pub fn snapshot(&self) -> ArmCounters {
        ArmCounters {
            requests: self.requests.load(Relaxed),
            errors: self.errors.load(Relaxed),
            rejected: self.rejected.load(Relaxed),
            latency_buckets: self.buckets.iter().map(|b| b.load(Relaxed)).collect(),
        }
    }
}

impl Default for Counters {
    fn default() -> Counters {
        Counters::new()
    }
}

/// Adds `other` into `sum` (bucket by bucket).
pub fn add_counters(sum: &mut ArmCounters, other: &ArmCounters) {
    sum.requests += other.requests;
    sum.errors += other.errors;
    sum.rejected += other.rejected;
    if sum.latency_buckets.len() < other.latency_buckets.len() {
        sum.latency_buckets.resize(other.latency_buckets.len(), 0);
    }
    for (s, o) in sum.latency_buckets.iter_mut().zip(&other.latency_buckets) {
        *s += o;
    }
}

/// The `q` quantile (0..1) of the latencies in `counters`, in ms: the
/// upper bound of the bucket where the cumulative count reaches `q` (as
/// Prometheus' `histogram_quantile` would, without its interpolation, so
/// the answer never understates a breach).
pub fn quantile_ms(counters: &ArmCounters, q: f64) -> Option<f64> {
    let total: u64 = counters.latency_buckets.iter().sum();
    if total == 0 {
        return None;
    }
    let rank = (q * total as f64).ceil().max(1.0) as u64;
    let mut seen = 0;
    for (i, count) in counters.latency_buckets.iter().enumerate() {
        seen += count;
        if seen >= rank {
            return Some(LATENCY_BUCKETS_MS.get(i).copied().unwrap_or(f64::INFINITY));
        }
    }
    None
}

/// Labels of an arm's Prometheus series.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
pub struct ArmLabels {
    pub deployment: String,
    pub arm: String,
    pub model: String,
    pub version: String,
}

/// Every metric `/metrics` exports.
#[derive(Default)]
pub struct Metrics {
    arms: Mutex<BTreeMap<ArmLabels, Arc<Counters>>>,
    in_flight: Mutex<BTreeMap<String, Arc<AtomicI64>>>,
    model_loads: Mutex<BTreeMap<(String, String, String), f64>>,
    pub prediction_log_written: AtomicU64,
    pub prediction_log_dropped: AtomicU64,
    pub prediction_log_failed_writes: AtomicU64,
    pub shadow_dropped: AtomicU64,
    /// Rows explained in the background for monitoring.
    pub explanations: AtomicU64,
    /// Sampled requests not explained (queue full, no background yet, or
    /// the model cannot be explained).
    pub explanations_dropped: AtomicU64,
    /// Requests to the tracking, registry, artifact and native APIs, keyed
    /// by "METHOD route" (the route template, never the raw path, so that
    /// the series stay as few as the route table).
    api_routes: Mutex<BTreeMap<String, Arc<Counters>>>,
}

impl Metrics {
    /// The counters of an arm, created on first use and kept for good.
    pub fn arm(&self, labels: ArmLabels) -> Arc<Counters> {
        let mut arms = self.arms.lock().expect("metrics lock");
        arms.entry(labels).or_default().clone()
    }

    pub fn in_flight(&self, deployment: &str) -> Arc<AtomicI64> {
        let mut gauges = self.in_flight.lock().expect("metrics lock");
        gauges.entry(deployment.to_string()).or_default().clone()
    }

    pub fn model_loaded(&self, model: &str, version: &str, engine: &str, seconds: f64) {
        self.model_loads.lock().expect("metrics lock").insert(
            (model.to_string(), version.to_string(), engine.to_string()),
            seconds,
        );
    }

    /// Counts one request to an API route: `route` is its template
    /// (`/api/2.0/mlflow/runs/get`), `status` the response's.
    pub fn api_request(&self, method: &str, route: &str, status: u16, latency: Duration) {
        let key = format!("{method} {route}");
        let counters = {
            let mut routes = self.api_routes.lock().expect("metrics lock");
            match routes.get(&key) {
                Some(counters) => counters.clone(),
                None => routes.entry(key).or_default().clone(),
            }
        };
        let outcome = match status {
            500.. => Outcome::Failed,
            400..=499 => Outcome::Rejected,
            _ => Outcome::Ok,
        };
        counters.record(outcome, 0, latency);
    }

    /// The Prometheus text exposition (format 0.0.4).
    pub fn render(&self) -> String {
        let mut out = String::with_capacity(4096);
        let arms: Vec<(ArmLabels, ArmCounters, u64, u64)> = self
            .arms
            .lock()
            .expect("metrics lock")
            .iter()
            .map(|(labels, c)| {
                (
                    labels.clone(),
                    c.snapshot(),
                    c.rows.load(Relaxed),
                    c.latency_micros.load(Relaxed),
                )
            })
            .collect();
        let label_text = |l: &ArmLabels| {
            format!(
                "deployment=\"{}\",arm=\"{}\",model=\"{}\",version=\"{}\"",
                escape(&l.deployment),
                escape(&l.arm),
                escape(&l.model),
                escape(&l.version)
            )
        };
        header(
            &mut out,
            "sextant_inference_requests_total",
            "counter",
            "Inference requests by outcome (ok, rejected: 4xx, failed: 5xx).",
        );
        for (labels, c, _, _) in &arms {
            let ok = c.requests - c.errors - c.rejected;
            for (outcome, n) in [("ok", ok), ("rejected", c.rejected), ("failed", c.errors)] {
                let _ = writeln!(
                    out,
                    "sextant_inference_requests_total{{{},outcome=\"{outcome}\"}} {n}",
                    label_text(labels)
                );
            }
        }
        header(
            &mut out,
            "sextant_inference_rows_total",
            "counter",
            "Rows predicted (a batched request counts each row).",
        );
        for (labels, _, rows, _) in &arms {
            let _ = writeln!(
                out,
                "sextant_inference_rows_total{{{}}} {rows}",
                label_text(labels)
            );
        }
        header(
            &mut out,
            "sextant_inference_latency_seconds",
            "histogram",
            "Time from request parsed to response ready, per arm.",
        );
        for (labels, c, _, micros) in &arms {
            write_histogram(
                &mut out,
                "sextant_inference_latency_seconds",
                &label_text(labels),
                &c.latency_buckets,
                *micros,
            );
        }
        header(
            &mut out,
            "sextant_inference_in_flight",
            "gauge",
            "Inference requests being handled now.",
        );
        for (deployment, gauge) in self.in_flight.lock().expect("metrics lock").iter() {
            let _ = writeln!(
                out,
                "sextant_inference_in_flight{{deployment=\"{}\"}} {}",
                escape(deployment),
                gauge.load(Relaxed)
            );
        }
        header(
            &mut out,
            "sextant_model_load_seconds",
            "gauge",
            "How long loading (and warming up) a model version took.",
        );
        for ((model, version, engine), seconds) in
            self.model_loads.lock().expect("metrics lock").iter()
        {
            let _ = writeln!(
                out,
                "sextant_model_load_seconds{{model=\"{}\",version=\"{}\",engine=\"{}\"}} {seconds}",
                escape(model),
                escape(version),
                escape(engine)
            );
        }
        for (name, help, value) in [
            (
                "sextant_prediction_log_rows_total",
                "Predictions written to the prediction log.",
                &self.prediction_log_written,
            ),
            (
                "sextant_prediction_log_dropped_total",
                "Predictions not logged because the log's queue was full.",
                &self.prediction_log_dropped,
            ),
            (
                "sextant_prediction_log_failed_writes_total",
                "Prediction log segments that could not be written.",
                &self.prediction_log_failed_writes,
            ),
            (
                "sextant_shadow_dropped_total",
                "Shadow requests skipped because the shadow queue was full.",
                &self.shadow_dropped,
            ),
            (
                "sextant_explanations_total",
                "Rows of sampled predictions explained in the background.",
                &self.explanations,
            ),
            (
                "sextant_explanations_dropped_total",
                "Sampled predictions not explained (queue full, no background yet, or no explainer).",
                &self.explanations_dropped,
            ),
        ] {
            header(&mut out, name, "counter", help);
            let _ = writeln!(out, "{name} {}", value.load(Relaxed));
        }
        self.render_api_routes(&mut out);
        out
    }

    /// `sextant_http_requests_total` and `sextant_http_request_duration_seconds`
    /// per API route (inference has its own series per arm above).
    fn render_api_routes(&self, out: &mut String) {
        let routes: Vec<(String, ArmCounters, u64)> = self
            .api_routes
            .lock()
            .expect("metrics lock")
            .iter()
            .map(|(key, c)| (key.clone(), c.snapshot(), c.latency_micros.load(Relaxed)))
            .collect();
        let label_text = |key: &str| {
            let (method, route) = key.split_once(' ').unwrap_or((key, ""));
            format!("method=\"{}\",route=\"{}\"", escape(method), escape(route))
        };
        header(
            out,
            "sextant_http_requests_total",
            "counter",
            "Requests to the tracking, registry, artifact and native APIs by route and outcome (ok, rejected: 4xx, failed: 5xx).",
        );
        for (key, c, _) in &routes {
            let ok = c.requests - c.errors - c.rejected;
            for (outcome, n) in [("ok", ok), ("rejected", c.rejected), ("failed", c.errors)] {
                let _ = writeln!(
                    out,
                    "sextant_http_requests_total{{{},outcome=\"{outcome}\"}} {n}",
                    label_text(key)
                );
            }
        }
        header(
            out,
            "sextant_http_request_duration_seconds",
            "histogram",
            "Time to answer a request to an API route.",
        );
        for (key, c, micros) in &routes {
            write_histogram(
                out,
                "sextant_http_request_duration_seconds",
                &label_text(key),
                &c.latency_buckets,
                *micros,
            );
        }
    }
}

/// One histogram series: cumulative `_bucket`s over `LATENCY_BUCKETS_MS`
/// (and `+Inf`), `_sum` in seconds and `_count`.
fn write_histogram(out: &mut String, name: &str, labels: &str, buckets: &[u64], micros: u64) {
    let mut cumulative = 0;
    for (i, count) in buckets.iter().enumerate() {
        cumulative += count;
        let le = LATENCY_BUCKETS_MS
            .get(i)
            .map_or_else(|| "+Inf".to_string(), |ms| format!("{}", ms / 1000.0));
        let _ = writeln!(out, "{name}_bucket{{{labels},le=\"{le}\"}} {cumulative}");
    }
    let _ = writeln!(out, "{name}_sum{{{labels}}} {}", micros as f64 / 1e6);
    let _ = writeln!(out, "{name}_count{{{labels}}} {cumulative}");
}

fn header(out: &mut String, name: &str, kind: &str, help: &str) {
    let _ = writeln!(out, "# HELP {name} {help}");
    let _ = writeln!(out, "# TYPE {name} {kind}");
}

/// Label values escape `\`, `"` and newlines.
fn escape(value: &str) -> String {
    value
        .replace('\\', "\\\\")
        .replace('"', "\\\"")
        .replace('\n', "\\n")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn quantiles_read_the_bucket_bounds() {
        let counters = Counters::new();
        for _ in 0..98 {
            counters.record(Outcome::Ok, 1, Duration::from_micros(300));
        }
        counters.record(Outcome::Failed, 1, Duration::from_millis(20));
        counters.record(Outcome::Rejected, 1, Duration::from_millis(20));
        let snapshot = counters.snapshot();
        assert_eq!(
            (snapshot.requests, snapshot.errors, snapshot.rejected),
            (100, 1, 1)
        );
        assert_eq!(quantile_ms(&snapshot, 0.5), Some(0.5));
        assert_eq!(quantile_ms(&snapshot, 0.99), Some(25.0));
        assert_eq!(quantile_ms(&ArmCounters::default(), 0.99), None);
    }

    #[test]
    fn api_requests_are_counted_per_route_template_and_outcome() {
        let metrics = Metrics::default();
        let route = "/api/2.0/mlflow/runs/get";
        metrics.api_request("GET", route, 200, Duration::from_micros(300));
        metrics.api_request("GET", route, 404, Duration::from_millis(3));
        metrics.api_request("GET", route, 503, Duration::from_millis(30));
        metrics.api_request(
            "POST",
            "/api/2.0/mlflow/runs/log-metric",
            200,
            Duration::ZERO,
        );
        let text = metrics.render();
        let labels = format!("method=\"GET\",route=\"{route}\"");
        for (outcome, n) in [("ok", 1), ("rejected", 1), ("failed", 1)] {
            let line =
                format!("sextant_http_requests_total{{{labels},outcome=\"{outcome}\"}} {n}\n");
            assert!(text.contains(&line), "{line} missing from\n{text}");
        }
        for line in [
            format!("sextant_http_request_duration_seconds_bucket{{{labels},le=\"0.0005\"}} 1\n"),
            format!("sextant_http_request_duration_seconds_bucket{{{labels},le=\"0.005\"}} 2\n"),
            format!("sextant_http_request_duration_seconds_bucket{{{labels},le=\"+Inf\"}} 3\n"),
            format!("sextant_http_request_duration_seconds_count{{{labels}}} 3\n"),
            "sextant_http_requests_total{method=\"POST\",route=\"/api/2.0/mlflow/runs/log-metric\",outcome=\"ok\"} 1\n".to_string(),
        ] {
            assert!(text.contains(&line), "{line} missing from\n{text}");
        }
    }

    #[test]
    fn the_exposition_is_cumulative_and_escaped() {
        let metrics = Metrics::default();
        let labels = ArmLabels {
            deployment: "d\"x".into(),
            arm: "primary".into(),
            model: "m".into(),
            version: "1".into(),
        };
        let arm = metrics.arm(labels.clone());
        arm.record(Outcome::Ok, 3, Duration::from_micros(40));
        arm.record(Outcome::Ok, 1, Duration::from_secs(20));
        assert!(Arc::ptr_eq(&arm, &metrics.arm(labels)));
        let text = metrics.render();
        assert!(text.contains(r#"sextant_inference_requests_total{deployment="d\"x",arm="primary",model="m",version="1",outcome="ok"} 2"#), "{text}");
        assert!(text.contains(r#"le="0.00005"} 1"#), "{text}");
        assert!(text.contains(r#"le="+Inf"} 2"#), "{text}");
        assert!(text.contains("sextant_inference_rows_total{deployment=\"d\\\"x\",arm=\"primary\",model=\"m\",version=\"1\"} 4"), "{text}");
    }
}
