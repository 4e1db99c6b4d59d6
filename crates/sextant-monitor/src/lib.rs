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
