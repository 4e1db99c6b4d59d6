//! The live monitor: scores each request's rows and counts them into the
//! current window; merges windows into reports.

use std::cell::RefCell;
use std::collections::VecDeque;
use std::sync::{Mutex, PoisonError};
use std::time::Duration;

use super::outlier::{robust_ratio, MahalanobisScratch};
use super::profile::{FeatureKind, ReferenceProfile};
use super::report::{compare_window, MonitorReport, WindowSummary};
use super::window::WindowSketch;
use super::{FeatureBatch, FeatureColumn, OutlierVerdict, PredictionValues};

/// How windows are cut and kept, and when drift is called.
#[derive(Debug, Clone, PartialEq)]
pub struct MonitorConfig {
    /// Length of a window; windows are aligned on multiples of it since the
    /// unix epoch, so every replica cuts the same windows. At least 1 µs.
    pub window: Duration,
    /// Closed windows kept for reports and charts (288 × 5 min = 24 h).
    /// Windows without traffic are not stored.
    pub retained_windows: usize,
    /// A feature is flagged as drifted only with at least this many values
    /// present in the compared windows: below it its figures are reported,
    /// without a p-value, and never flagged. 100 values give the chi-square
    /// test over 10 bins about 10 expected per bin.
    pub min_rows: u64,
    /// PSI at or above which a shift is material. 0.2 sits between the
    /// conventional "moderate" (0.1) and "major" (0.25) bands of credit
    /// scoring (Yurdakul 2018), the usual alerting point.
    pub psi_threshold: f64,
    /// Jensen-Shannon distance (bits, in [0, 1]) at or above which a shift
    /// is material; 0.1 as in `drift`'s sextant methods.
    pub jensen_shannon_threshold: f64,
    /// Level for the Benjamini-Hochberg-adjusted p-values (the false
    /// discovery rate across a report's features).
    pub significance: f64,
    /// When set, a value outside a categorical feature's reference
    /// vocabulary makes its row an outlier (score at least 1). Off by
    /// default: see [`OutlierVerdict`].
    pub unseen_category_is_outlier: bool,
}

impl Default for MonitorConfig {
    fn default() -> Self {
        MonitorConfig {
            window: Duration::from_secs(300),
            retained_windows: 288,
            min_rows: 100,
            psi_threshold: 0.2,
            jensen_shannon_threshold: 0.1,
            significance: 0.05,
            unseen_category_is_outlier: false,
        }
    }
}

/// One numerical feature's tier-A terms, laid out for the per-row loop.
#[derive(Debug, Clone, Copy)]
struct RobustTerm {
    feature: usize,
    median: f64,
    inverse_fence: f64,
}

/// The current window and the closed ones, oldest first.
#[derive(Debug)]
struct Windows {
    current: WindowSketch,
    closed: VecDeque<WindowSketch>,
    /// An evicted window kept for reuse, so rolling over does not allocate.
    spare: Option<WindowSketch>,
}

/// Per-thread buffers for scoring, so a warm thread allocates nothing
/// (the monitor itself is shared between threads).
#[derive(Debug, Default)]
struct Scratch {
    /// The current row's numbers, indexed like the profile's features
    /// (categorical features left NaN).
    row: Vec<f64>,
    mahalanobis: MahalanobisScratch,
}

thread_local! {
    static SCRATCH: RefCell<Scratch> = RefCell::new(Scratch::default());
}

/// Live monitoring of one deployment against its reference.
///
/// `Send + Sync`: share it behind an `Arc`. [`LiveMonitor::observe`] scores
/// rows without any lock (the profile is immutable) and then holds one
/// mutex only to add the rows' counts to the current window, a few hundred
/// nanoseconds.
#[derive(Debug)]
pub struct LiveMonitor {
    profile: ReferenceProfile,
    config: MonitorConfig,
    window_us: i64,
    /// Indices of the numerical features.
    numeric_features: Vec<usize>,
    robust_terms: Vec<RobustTerm>,
    windows: Mutex<Windows>,
}

impl LiveMonitor {
    pub fn new(profile: ReferenceProfile, config: MonitorConfig) -> LiveMonitor {
        let window_us = i64::try_from(config.window.as_micros())
            .unwrap_or(i64::MAX)
            .max(1);
        let robust_terms = profile
            .features()
            .iter()
            .enumerate()
            .filter_map(|(feature, profile)| {
                profile.robust().map(|robust| RobustTerm {
                    feature,
                    median: robust.median,
                    inverse_fence: robust.inverse_fence(),
                })
            })
            .collect();
        let numeric_features = profile
            .features()
            .iter()
            .enumerate()
            .filter(|(_, feature)| feature.kind == FeatureKind::Numerical)
            .map(|(index, _)| index)
            .collect();
        let windows = Windows {
            // Replaced at the first observation: a window starts only when
            // traffic arrives.
            current: WindowSketch::new(&profile, i64::MIN),
            closed: VecDeque::with_capacity(config.retained_windows.min(4096) + 1),
            spare: None,
        };
        LiveMonitor {
            profile,
            config,
            window_us,
            numeric_features,
            robust_terms,
            windows: Mutex::new(windows),
        }
    }

    pub fn profile(&self) -> &ReferenceProfile {
        &self.profile
    }

    pub fn config(&self) -> &MonitorConfig {
        &self.config
    }

    /// Scores and records one request's rows at `now_us` (unix
    /// microseconds); returns a verdict per row.
    pub fn observe(
        &self,
        now_us: i64,
        batch: &FeatureBatch<'_>,
        predictions: &PredictionValues<'_>,
    ) -> Vec<OutlierVerdict> {
        let mut verdicts = Vec::with_capacity(batch.rows);
        self.observe_into(now_us, batch, predictions, &mut verdicts);
        verdicts
    }

    /// [`LiveMonitor::observe`] into a caller's buffer (cleared first), so
    /// a warm caller allocates nothing.
    pub fn observe_into(
        &self,
        now_us: i64,
        batch: &FeatureBatch<'_>,
        predictions: &PredictionValues<'_>,
        verdicts: &mut Vec<OutlierVerdict>,
    ) {
        self.score(batch, verdicts);
        let outliers = verdicts.iter().filter(|verdict| verdict.outlier).count() as u64;
        let rows = batch.rows;
        let mut windows = self.windows.lock().unwrap_or_else(PoisonError::into_inner);
        let window = windows.window_for(now_us, self.window_us, &self.config, &self.profile);
        window.requests += 1;
        window.rows += rows as u64;
        window.outliers += outliers;
        for (index, (sketch, feature)) in window
            .features
            .iter_mut()
            .zip(self.profile.features())
            .enumerate()
        {
            sketch.record_column(feature, batch.column(index), rows);
        }
        if let (Some(sketch), Some(profile)) =
            (window.prediction.as_mut(), self.profile.prediction())
        {
            match *predictions {
                PredictionValues::Numbers(values) if values.len() == rows => {
                    sketch.record_column(profile, FeatureColumn::Numeric(values), rows)
                }
                PredictionValues::Classes(classes) if classes.len() == rows => {
                    sketch.record_classes(profile, classes)
                }
                _ => sketch.record_missing_rows(rows),
            }
        }
    }

    /// The outlier scores of a batch's rows, into `verdicts`. Row by row:
    /// the row's numbers are gathered once into a scratch buffer, then the
    /// robust z of each and the Mahalanobis distance read them from there,
    /// the running maximum staying in a register.
    fn score(&self, batch: &FeatureBatch<'_>, verdicts: &mut Vec<OutlierVerdict>) {
        verdicts.clear();
        verdicts.resize(batch.rows, OutlierVerdict::INLIER);
        let mahalanobis = self.profile.mahalanobis();
        SCRATCH.with(|scratch| {
            let scratch = &mut *scratch.borrow_mut();
            scratch.row.resize(self.profile.features().len(), f64::NAN);
            for (row, verdict) in verdicts.iter_mut().enumerate() {
                for &feature in &self.numeric_features {
                    scratch.row[feature] = number_at(batch.column(feature), row);
                }
                let values = &scratch.row;
                // Tiers 0 and A: ±∞ gives an infinite ratio, NaN none.
                let mut score = 0.0f64;
                for term in &self.robust_terms {
                    score = score.max(robust_ratio(
                        values[term.feature],
                        term.median,
                        term.inverse_fence,
                    ));
                }
                // Tier C.
                if let Some(model) = mahalanobis {
                    score =
                        score.max(model.ratio(&mut scratch.mahalanobis, |feature| values[feature]));
                }
                verdict.score = score;
            }
        });
        if self.config.unseen_category_is_outlier {
            self.score_unseen_categories(batch, verdicts);
        }
        for verdict in verdicts.iter_mut() {
            *verdict = OutlierVerdict::from_score(verdict.score);
        }
    }

    fn score_unseen_categories(&self, batch: &FeatureBatch<'_>, verdicts: &mut [OutlierVerdict]) {
        for (index, feature) in self.profile.features().iter().enumerate() {
            let Some(categorical) = feature.categorical_reference() else {
                continue;
            };
            let outside = categorical.outside_bucket();
            let unseen = |row: usize| match batch.column(index) {
                FeatureColumn::Numeric(values) => {
                    !values[row].is_nan() && categorical.bucket_of_number(values[row]) == outside
                }
                FeatureColumn::Text(values) => {
                    values[row].is_some_and(|text| categorical.bucket_of_text(text) == outside)
                }
                FeatureColumn::Absent => false,
            };
            for (row, verdict) in verdicts.iter_mut().enumerate() {
                if unseen(row) {
                    verdict.score = verdict.score.max(1.0);
                }
            }
        }
    }

    /// Merges the windows overlapping `(now − span, now]` (closed windows
    /// and the current one) and compares them with the reference. Windows
    /// are whole: a window that started before `now − span` but ends after
    /// it is included, and the report's `window_start_us` says so.
    pub fn report(&self, now_us: i64, span: Duration) -> MonitorReport {
        let from = now_us.saturating_sub(duration_us(span));
        let mut merged: Option<WindowSketch> = None;
        {
            let windows = self.windows.lock().unwrap_or_else(PoisonError::into_inner);
            for window in windows.overlapping(from, now_us, self.window_us) {
                match merged.as_mut() {
                    Some(merged) => merged.merge(window),
                    None => merged = Some(window.clone()),
                }
            }
        }
        let merged = merged.unwrap_or_else(|| {
            WindowSketch::new(
                &self.profile,
                from.div_euclid(self.window_us) * self.window_us,
            )
        });
        let comparison = compare_window(&self.profile, &merged, &self.config);
        MonitorReport::new(&self.profile, &merged, now_us, comparison)
    }

    /// The windows overlapping `(now − span, now]` that saw traffic, oldest
    /// first, each compared with the reference on its own (for charts:
    /// a window without traffic is a gap, not a zero).
    pub fn windows(&self, now_us: i64, span: Duration) -> Vec<WindowSummary> {
        let from = now_us.saturating_sub(duration_us(span));
        let selected: Vec<WindowSketch> = {
            let windows = self.windows.lock().unwrap_or_else(PoisonError::into_inner);
            windows
                .overlapping(from, now_us, self.window_us)
                .cloned()
                .collect()
        };
        selected
            .iter()
            .map(|window| {
                let comparison = compare_window(&self.profile, window, &self.config);
                WindowSummary::new(window, self.window_us, comparison)
            })
            .collect()
    }
}

impl Windows {
    /// The window that `now_us` falls in, rolling over when it is past the
    /// current one. A request that arrives late (its `now` was read before
    /// another request rolled the window) goes to its own closed window
    /// when that is still kept, else to the current one.
    fn window_for(
        &mut self,
        now_us: i64,
        window_us: i64,
        config: &MonitorConfig,
        profile: &ReferenceProfile,
    ) -> &mut WindowSketch {
        let start = now_us.div_euclid(window_us) * window_us;
        if start > self.current.start_us {
            self.roll(start, window_us, config, profile);
        } else if start < self.current.start_us {
            if let Some(position) = self
                .closed
                .iter()
                .rposition(|window| window.start_us == start)
            {
                return &mut self.closed[position];
            }
        }
        &mut self.current
    }

    fn roll(
        &mut self,
        start: i64,
        window_us: i64,
        config: &MonitorConfig,
        profile: &ReferenceProfile,
    ) {
        if self.current.is_empty() {
            self.current.reset(start);
        } else {
            let next = match self.spare.take() {
                Some(mut spare) => {
                    spare.reset(start);
                    spare
                }
                None => WindowSketch::new(profile, start),
            };
            let finished = std::mem::replace(&mut self.current, next);
            self.closed.push_back(finished);
        }
        let retained = i64::try_from(config.retained_windows).unwrap_or(i64::MAX);
        let retained_span = window_us.saturating_mul(retained);
        let oldest_kept = start.saturating_sub(retained_span);
        while self.closed.front().is_some_and(|window| {
            self.closed.len() > config.retained_windows || window.start_us < oldest_kept
        }) {
            self.spare = self.closed.pop_front();
        }
    }

    /// Windows with traffic whose `[start, start + window)` meets
    /// `(from, now]`, oldest first.
    fn overlapping(
        &self,
        from: i64,
        now: i64,
        window_us: i64,
    ) -> impl Iterator<Item = &WindowSketch> {
        self.closed
            .iter()
            .chain(std::iter::once(&self.current))
            .filter(move |window| {
                !window.is_empty()
                    && window.start_us <= now
                    && window.start_us.saturating_add(window_us) > from
            })
    }
}

fn duration_us(span: Duration) -> i64 {
    i64::try_from(span.as_micros()).unwrap_or(i64::MAX)
}

fn parse_or_nan(text: Option<&str>) -> f64 {
    text.and_then(|text| text.trim().parse::<f64>().ok())
        .unwrap_or(f64::NAN)
}

/// Row `row` of a column as a number: NaN when missing or not a number.
#[inline]
fn number_at(column: FeatureColumn<'_>, row: usize) -> f64 {
    match column {
        FeatureColumn::Numeric(values) => values[row],
        FeatureColumn::Text(values) => parse_or_nan(values[row]),
        FeatureColumn::Absent => f64::NAN,
    }
}
