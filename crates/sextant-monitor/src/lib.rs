//! Monitoring of models and their data.
//!
//! This crate holds what monitoring computes, apart from where the data
//! comes from or goes: the statistics live in `sextant-stats`, the HTTP
//! surface in `sextant-server`, the command line in `sextant-cli`.
//!
//! - [`dataset`] reads tables (CSV, Parquet) into typed columns, one column
//!   at a time where the format allows it, so a report on a 1M-row file
//!   never holds more than a few columns in memory.
//! - [`drift`] compares a reference table with a current one, column by
//!   column, with two method sets: `evidently` (Evidently 0.7's defaults,
//!   reproduced exactly) and `sextant` (fixed reference bins, effect sizes
//!   with significance after multiple-testing correction).
//! - [`live`] monitors a deployment as it serves: a reference profile,
//!   per-request outlier scores, and drift of fixed time windows merged
//!   over a span (sync and pure; the server calls it from its handlers).
//! - [`alerts`] turns a deployment's metrics into alerts: threshold and
//!   baseline (mean ± kσ) rules with Prometheus-style pending, firing and
//!   hysteresis, and the Alertmanager webhook payload that announces them
//!   (sync and pure; the server persists each rule's state).

pub mod alerts;
mod csv_reader;
pub mod dataset;
pub mod drift;
pub mod estimate;
pub mod live;
pub mod performance;
pub mod profile;
pub mod temporal;

/// `f` of every item, in order, computed on up to `threads` threads that
/// each take the next item when done (items cost unequal time: a regular
/// expression over strings against a null count).
pub fn map_parallel<T: Sync, R: Send>(
    items: &[T],
    threads: usize,
    f: impl Fn(&T) -> R + Sync,
) -> Vec<R> {
    use std::sync::atomic::{AtomicUsize, Ordering};
    if threads <= 1 || items.len() <= 1 {
        return items.iter().map(f).collect();
    }
    let next = AtomicUsize::new(0);
    let mut done: Vec<(usize, R)> = std::thread::scope(|scope| {
        let workers: Vec<_> = (0..threads.min(items.len()))
            .map(|_| {
                scope.spawn(|| {
                    let mut mine = Vec::new();
                    loop {
                        let index = next.fetch_add(1, Ordering::Relaxed);
                        let Some(item) = items.get(index) else {
                            return mine;
                        };
                        mine.push((index, f(item)));
                    }
                })
            })
            .collect();
        workers
            .into_iter()
            .flat_map(|w| {
                w.join()
                    .unwrap_or_else(|panic| std::panic::resume_unwind(panic))
            })
            .collect()
    });
    done.sort_by_key(|(index, _)| *index);
    done.into_iter().map(|(_, r)| r).collect()
}
