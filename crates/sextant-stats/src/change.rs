//! Streaming change detectors for an error or loss stream: Page-Hinkley,
//! DDM and ADWIN, reproducing `river` 0.26's `drift.PageHinkley`,
//! `drift.binary.DDM` and `drift.ADWIN` with their defaults.
//!
//! Feed one value per labelled prediction (the 0/1 error, or a loss) to
//! [`ChangeDetector::update`]; it answers [`ChangeState::Stable`],
//! [`ChangeState::Warning`] (DDM only) or [`ChangeState::Drift`]. Every
//! update is O(1) (Page-Hinkley, DDM) or amortised O(log W) for a window of
//! W values (ADWIN). All state is plain data that derives
//! `Serialize`/`Deserialize` and holds no infinities, so a detector can be
//! stored as JSON between requests and resumed bit-identically.
//!
//! After a drift each detector behaves as river's does: the update *after*
//! the one that reported [`ChangeState::Drift`] starts from a fresh state
//! (river's `if self.drift_detected: self._reset()` at the top of
//! `update`). For ADWIN this is river 0.26's behaviour and differs from
//! the paper, which keeps the shrunken window and goes on: see [`Adwin`].
//!
//! The golden test (`tests/it/change.rs`) feeds river's own detectors and
//! these the same streams and asserts the identical state at every step.

use serde::{Deserialize, Serialize};

/// What a detector concluded after one update.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum ChangeState {
    /// No evidence of change.
    Stable,
    /// The statistic is past the warning level but not the drift level
    /// (only DDM warns).
    Warning,
    /// A change was detected at this update. The next update starts from a
    /// fresh state.
    Drift,
}

/// A streaming change detector on a stream of numbers.
pub trait ChangeDetector {
    /// Adds one value (an error indicator 0/1, or a loss) and reports the
    /// state after it.
    fn update(&mut self, x: f64) -> ChangeState;
    /// Forgets everything seen so far; the configuration is kept.
    fn reset(&mut self);
}

/// river's `stats.Mean` update, `n += 1; mean += (1 / n)(x − mean)`, in
/// river's operation order so the running mean is bit-identical.
fn running_mean_update(n: &mut f64, mean: &mut f64, x: f64) {
    *n += 1.0;
    *mean += (1.0 / *n) * (x - *mean);
}

// ------------------------------------------------------------ Page-Hinkley

/// Which direction of change [`PageHinkley`] reports (river's `mode`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum PageHinkleyMode {
    /// Increases of the mean only (`"up"`).
    Up,
    /// Decreases of the mean only (`"down"`).
    Down,
    /// Either direction (`"both"`, river's default).
    Both,
}

/// Parameters of [`PageHinkley`]; [`PageHinkleyConfig::RIVER`] holds
/// river's defaults.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct PageHinkleyConfig {
    /// No drift is reported before this many values (river `min_instances`).
    pub min_instances: u64,
    /// Magnitude of change tolerated without counting it (δ).
    pub delta: f64,
    /// Detection threshold λ on the cumulative statistic.
    pub threshold: f64,
    /// Fading factor α applied to the cumulative sums each step.
    pub alpha: f64,
    pub mode: PageHinkleyMode,
}

impl PageHinkleyConfig {
    /// river 0.26's defaults: `min_instances=30, delta=0.005, threshold=50,
    /// alpha=1-0.0001, mode="both"`.
    pub const RIVER: Self = Self {
        min_instances: 30,
        delta: 0.005,
        threshold: 50.0,
        alpha: 1.0 - 0.0001,
        mode: PageHinkleyMode::Both,
    };
}

/// Page-Hinkley test (Page, "Continuous inspection schemes", Biometrika
/// 41, 1954), the two-sided fading variant of `river.drift.PageHinkley`.
///
/// With x̄_t the running mean of the values so far (including x_t):
///
/// ```text
/// U_t = α U_{t−1} + (x_t − x̄_t) − δ      m_t = min_{s≤t} U_s
/// L_t = α L_{t−1} + (x_t − x̄_t) + δ      M_t = max(−1, max_{s≤t} L_s)
/// drift (up)   iff  U_t − m_t > λ
/// drift (down) iff  M_t − L_t > λ
/// ```
///
/// tested once at least `min_instances` values have been seen. Page's
/// statistic is the α = 1 case of the upward test. As in river, the
/// running maximum of the downward sum starts at −1 rather than −∞ (river
/// initialises `_max_decrease = -1`), which this reproduces; it only
/// matters while every L_s is below −1. After a drift the next update
/// starts afresh. Page-Hinkley never warns.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct PageHinkley {
    config: PageHinkleyConfig,
    /// Number of values in the running mean (river keeps it as a float).
    n: f64,
    mean: f64,
    sum_increase: f64,
    sum_decrease: f64,
    /// Running minimum of `sum_increase`; `None` stands for river's +∞
    /// (JSON has no infinity).
    min_increase: Option<f64>,
    max_decrease: f64,
    drift: bool,
}

impl PageHinkley {
    pub fn new(config: PageHinkleyConfig) -> Self {
        Self {
            config,
            n: 0.0,
            mean: 0.0,
            sum_increase: 0.0,
            sum_decrease: 0.0,
            min_increase: None,
            max_decrease: -1.0,
            drift: false,
        }
    }

    pub fn config(&self) -> &PageHinkleyConfig {
        &self.config
    }

    /// Values seen since the last reset.
    pub fn count(&self) -> u64 {
        self.n as u64
    }
}

impl ChangeDetector for PageHinkley {
    fn update(&mut self, x: f64) -> ChangeState {
        if self.drift {
            self.reset();
        }
        let config = self.config;
        running_mean_update(&mut self.n, &mut self.mean, x);
        let deviation = x - self.mean;
        self.sum_increase = config.alpha * self.sum_increase + deviation - config.delta;
        self.sum_decrease = config.alpha * self.sum_decrease + deviation + config.delta;
        if self.min_increase.is_none_or(|min| self.sum_increase < min) {
            self.min_increase = Some(self.sum_increase);
        }
        if self.sum_decrease > self.max_decrease {
            self.max_decrease = self.sum_decrease;
        }
        if self.n >= config.min_instances as f64 {
            let min_increase = self.min_increase.unwrap_or(self.sum_increase);
            let test_increase = self.sum_increase - min_increase;
            let test_decrease = self.max_decrease - self.sum_decrease;
            self.drift = match config.mode {
                PageHinkleyMode::Up => test_increase > config.threshold,
                PageHinkleyMode::Down => test_decrease > config.threshold,
                PageHinkleyMode::Both => {
                    test_increase > config.threshold || test_decrease > config.threshold
                }
            };
        }
        if self.drift {
            ChangeState::Drift
        } else {
            ChangeState::Stable
        }
    }

    fn reset(&mut self) {
        *self = Self::new(self.config);
    }
}

// --------------------------------------------------------------------- DDM

/// Parameters of [`Ddm`]; [`DdmConfig::RIVER`] holds river's defaults.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct DdmConfig {
    /// Neither warning nor drift is reported until more than this many
    /// values have been seen (river `warm_start`; the paper's n > 30).
    pub warm_start: u64,
    /// Warning when p + s > p_min + warning_threshold · s_min.
    pub warning_threshold: f64,
    /// Drift when p + s > p_min + drift_threshold · s_min.
    pub drift_threshold: f64,
}

impl DdmConfig {
    /// river 0.26's defaults: `warm_start=30, warning_threshold=2,
    /// drift_threshold=3`.
    pub const RIVER: Self = Self {
        warm_start: 30,
        warning_threshold: 2.0,
        drift_threshold: 3.0,
    };
}

/// Drift Detection Method (Gama, Medas, Castillo & Rodrigues, "Learning
/// with drift detection", SBIA 2004), as `river.drift.binary.DDM`.
///
/// The input is a 0/1 error stream (1 = the prediction was wrong). With
/// p_i the error rate so far and s_i = √(p_i (1 − p_i) / i), once
/// i > `warm_start` the detector records (p_min, s_min) at the step where
/// p_i + s_i is smallest (ties take the later step, river's `<=`) and reports
///
/// ```text
/// drift    iff  p_i + s_i > p_min + 3 s_min
/// warning  iff  p_i + s_i > p_min + 2 s_min   (and not drift)
/// ```
///
/// As in river (and the paper), the first step after warm-up sets
/// (p_min, s_min), so a warm-up with no errors gives s_min = 0 and the
/// first error after it is a drift. After a drift the next update starts
/// afresh. Values other than 0 and 1 are averaged as given, as river does.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Ddm {
    config: DdmConfig,
    n: f64,
    error_rate: f64,
    p_min: f64,
    s_min: f64,
    /// p_min + s_min; `None` stands for river's +∞ before warm-up ends.
    ps_min: Option<f64>,
    warning: bool,
    drift: bool,
}

impl Ddm {
    pub fn new(config: DdmConfig) -> Self {
        Self {
            config,
            n: 0.0,
            error_rate: 0.0,
            p_min: 0.0,
            s_min: 0.0,
            ps_min: None,
            warning: false,
            drift: false,
        }
    }

    pub fn config(&self) -> &DdmConfig {
        &self.config
    }

    /// [`ChangeDetector::update`] with an error indicator.
    pub fn update_error(&mut self, error: bool) -> ChangeState {
        self.update(if error { 1.0 } else { 0.0 })
    }

    /// Error rate since the last reset.
    pub fn error_rate(&self) -> f64 {
        self.error_rate
    }
}

impl ChangeDetector for Ddm {
    fn update(&mut self, x: f64) -> ChangeState {
        if self.drift {
            self.reset();
        }
        running_mean_update(&mut self.n, &mut self.error_rate, x);
        let p = self.error_rate;
        let s = (p * (1.0 - p) / self.n).sqrt();
        if self.n > self.config.warm_start as f64 {
            if self.ps_min.is_none_or(|ps_min| p + s <= ps_min) {
                self.p_min = p;
                self.s_min = s;
                self.ps_min = Some(p + s);
            }
            self.warning = p + s > self.p_min + self.config.warning_threshold * self.s_min;
            if p + s > self.p_min + self.config.drift_threshold * self.s_min {
                self.drift = true;
                self.warning = false;
            }
        }
        if self.drift {
            ChangeState::Drift
        } else if self.warning {
            ChangeState::Warning
        } else {
            ChangeState::Stable
        }
    }

    fn reset(&mut self) {
        *self = Self::new(self.config);
    }
}

// ------------------------------------------------------------------- ADWIN

/// Parameters of [`Adwin`]; [`AdwinConfig::RIVER`] holds river's defaults.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct AdwinConfig {
    /// Confidence δ of each cut test.
    pub delta: f64,
    /// Cuts are tested every `clock` updates.
    pub clock: u32,
    /// Buckets of each size kept before two are merged (M in the paper).
    pub max_buckets: usize,
    /// Both sub-windows of a cut must hold at least this many values.
    pub min_window_length: u32,
    /// No cut is tested while the window holds this many values or fewer.
    pub grace_period: u32,
}

impl AdwinConfig {
    /// river 0.26's defaults: `delta=0.002, clock=32, max_buckets=5,
    /// min_window_length=5, grace_period=10`.
    pub const RIVER: Self = Self {
        delta: 0.002,
        clock: 32,
        max_buckets: 5,
        min_window_length: 5,
        grace_period: 10,
    };
}

/// One row of ADWIN's exponential histogram: up to `max_buckets + 1`
/// buckets, oldest first, each summarising 2^row values by their total and
/// their sum of squared deviations from the bucket mean.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
struct BucketRow {
    totals: Vec<f64>,
    variances: Vec<f64>,
}

impl BucketRow {
    fn new() -> Self {
        Self {
            totals: Vec::new(),
            variances: Vec::new(),
        }
    }

    fn len(&self) -> usize {
        self.totals.len()
    }

    fn is_empty(&self) -> bool {
        self.totals.is_empty()
    }

    fn push(&mut self, total: f64, variance: f64) {
        self.totals.push(total);
        self.variances.push(variance);
    }

    /// Drops the `count` oldest buckets.
    fn drop_oldest(&mut self, count: usize) {
        self.totals.drain(..count);
        self.variances.drain(..count);
    }
}

/// ADWIN, adaptive windowing (Bifet & Gavaldà, "Learning from
/// time-changing data with adaptive windowing", SDM 2007), as river 0.26's
/// `drift.ADWIN` (its Rust `AdaptiveWindowing`, a port of the earlier
/// Cython code), with the same arithmetic in the same order.
///
/// The window W is stored as an exponential histogram (ADWIN2): row i holds
/// up to M + 1 buckets of 2^i values (M = `max_buckets`); when a row
/// overflows, its two oldest buckets merge into one bucket of the next row,
/// with the variance combined by Babcock et al.'s rule
/// `v₁₂ = v₁ + v₂ + n₁n₂(μ₁ − μ₂)²/(n₁ + n₂)`. Every `clock` updates, once
/// |W| > `grace_period`, each split W = W₀·W₁ at a bucket boundary (oldest
/// first) with |W₀|, |W₁| ≥ `min_window_length` is tested:
///
/// ```text
/// δ' = ln(2 ln|W| / δ)
/// 1/m = 1/(|W₀| − mwl + 1) + 1/(|W₁| − mwl + 1)
/// ε  = √(2 (1/m) σ²_W δ') + (2/3) δ' (1/m)
/// cut iff |μ̂_W₀ − μ̂_W₁| > ε
/// ```
///
/// where σ²_W is the window's population variance. On a cut the oldest
/// bucket is dropped and the scan restarts, until no split is significant.
/// This is the paper's ADWIN2 bound (Bernstein form, as in MOA) with
/// river's `mwl − 1` correction to the sub-window sizes.
///
/// Difference from the paper: after the update that reports
/// [`ChangeState::Drift`], river 0.26 resets the whole detector on the next
/// update (`ADWIN.update` calls `_reset()` when `drift_detected`), so the
/// shrunken window is available ([`Adwin::width`], [`Adwin::estimation`])
/// only until the next value arrives. This follows river.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Adwin {
    config: AdwinConfig,
    rows: Vec<BucketRow>,
    width: f64,
    total: f64,
    /// Sum of squared deviations from the window mean (river's `variance`).
    variance: f64,
    tick: u64,
    n_detections: u64,
    drift: bool,
}

impl Adwin {
    pub fn new(config: AdwinConfig) -> Self {
        Self {
            config,
            rows: vec![BucketRow::new()],
            width: 0.0,
            total: 0.0,
            variance: 0.0,
            tick: 0,
            n_detections: 0,
            drift: false,
        }
    }

    pub fn config(&self) -> &AdwinConfig {
        &self.config
    }

    /// Number of values in the window.
    pub fn width(&self) -> f64 {
        self.width
    }

    /// Sum of the values in the window.
    pub fn total(&self) -> f64 {
        self.total
    }

    /// Sum of squared deviations from the window mean (what river's
    /// `ADWIN.variance` returns, despite its docstring).
    pub fn squared_deviation_sum(&self) -> f64 {
        self.variance
    }

    /// Mean of the window, 0 when it is empty (river's `estimation`).
    pub fn estimation(&self) -> f64 {
        if self.width == 0.0 {
            0.0
        } else {
            self.total / self.width
        }
    }

    /// Cuts since the last reset (at most 1, since a drift resets).
    pub fn n_detections(&self) -> u64 {
        self.n_detections
    }

    /// Number of values a bucket in `row` summarises.
    fn bucket_size(row: usize) -> f64 {
        (1u64 << row) as f64
    }

    fn insert(&mut self, value: f64) {
        if self.rows.is_empty() {
            self.rows.push(BucketRow::new());
        }
        self.rows[0].push(value, 0.0);
        self.width += 1.0;
        let mut incremental_variance = 0.0;
        if self.width > 1.0 {
            let deviation = value - self.total / (self.width - 1.0);
            incremental_variance = (self.width - 1.0) * deviation * deviation / self.width;
        }
        self.variance += incremental_variance;
        self.total += value;
        self.compress();
    }

    /// Merges the two oldest buckets of every overflowing row upwards.
    fn compress(&mut self) {
        let max_buckets = self.config.max_buckets;
        let mut row = 0;
        while self.rows[row].len() == max_buckets + 1 {
            let size = Self::bucket_size(row);
            let (total_0, total_1) = (self.rows[row].totals[0], self.rows[row].totals[1]);
            let (variance_0, variance_1) =
                (self.rows[row].variances[0], self.rows[row].variances[1]);
            let mean_difference = total_0 / size - total_1 / size;
            // n₁n₂/(n₁ + n₂) = size/2 for two buckets of equal size.
            let between = size * 0.5 * mean_difference * mean_difference;
            if row + 1 == self.rows.len() {
                self.rows.push(BucketRow::new());
            }
            self.rows[row + 1].push(total_0 + total_1, variance_0 + variance_1 + between);
            self.rows[row].drop_oldest(2);
            if self.rows[row + 1].len() <= max_buckets {
                break;
            }
            row += 1;
        }
    }

    /// Drops the oldest bucket and removes it from the window statistics.
    fn drop_oldest_bucket(&mut self) {
        let last = self.rows.len() - 1;
        let size = Self::bucket_size(last);
        let total = self.rows[last].totals[0];
        let variance = self.rows[last].variances[0];
        let bucket_mean = total / size;
        self.width -= size;
        self.total -= total;
        let window_mean = self.total / self.width;
        let difference = bucket_mean - window_mean;
        self.variance -=
            variance + size * self.width * difference * difference / (size + self.width);
        self.rows[last].drop_oldest(1);
        if self.rows[last].is_empty() {
            self.rows.pop();
        }
    }

    fn cut_is_significant(&self, n0: f64, n1: f64, mean_difference: f64) -> bool {
        let min_length = f64::from(self.config.min_window_length);
        let delta_prime = (2.0 * self.width.ln() / self.config.delta).ln();
        let m_reciprocal = 1.0 / (n0 - min_length + 1.0) + 1.0 / (n1 - min_length + 1.0);
        let epsilon = (2.0 * m_reciprocal * (self.variance / self.width) * delta_prime).sqrt()
            + 2.0 / 3.0 * delta_prime * m_reciprocal;
        mean_difference.abs() > epsilon
    }

    /// Scans the splits oldest-first; drops the oldest bucket and rescans
    /// while a split is significant. Returns whether any was.
    fn detect_change(&mut self) -> bool {
        self.tick += 1;
        if self.tick % u64::from(self.config.clock) != 0
            || self.width <= f64::from(self.config.grace_period)
        {
            return false;
        }
        let min_length = f64::from(self.config.min_window_length);
        let mut change = false;
        loop {
            let mut cut = false;
            let (mut n0, mut n1) = (0.0, self.width);
            let (mut u0, mut u1) = (0.0, self.total);
            'scan: for row in (0..self.rows.len()).rev() {
                let size = Self::bucket_size(row);
                let buckets = self.rows[row].len();
                for k in 0..buckets {
                    let bucket_total = self.rows[row].totals[k];
                    n0 += size;
                    n1 -= size;
                    u0 += bucket_total;
                    u1 -= bucket_total;
                    if row == 0 && k == buckets - 1 {
                        // W₁ would be empty.
                        break 'scan;
                    }
                    let mean_difference = u0 / n0 - u1 / n1;
                    if n1 >= min_length
                        && n0 >= min_length
                        && self.cut_is_significant(n0, n1, mean_difference)
                    {
                        cut = true;
                        change = true;
                        if self.width > 0.0 {
                            self.drop_oldest_bucket();
                            break 'scan;
                        }
                    }
                }
            }
            if !cut {
                break;
            }
        }
        if change {
            self.n_detections += 1;
        }
        change
    }
}

impl ChangeDetector for Adwin {
    fn update(&mut self, x: f64) -> ChangeState {
        if self.drift {
            self.reset();
        }
        self.insert(x);
        self.drift = self.detect_change();
        if self.drift {
            ChangeState::Drift
        } else {
            ChangeState::Stable
        }
    }

    fn reset(&mut self) {
        *self = Self::new(self.config);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn states(detector: &mut impl ChangeDetector, values: &[f64]) -> Vec<ChangeState> {
        values.iter().map(|&x| detector.update(x)).collect()
    }

    #[test]
    fn constant_streams_never_drift() {
        let values = vec![0.0; 5000];
        for state in states(&mut PageHinkley::new(PageHinkleyConfig::RIVER), &values) {
            assert_eq!(state, ChangeState::Stable);
        }
        for state in states(&mut Ddm::new(DdmConfig::RIVER), &values) {
            assert_eq!(state, ChangeState::Stable);
        }
        let mut adwin = Adwin::new(AdwinConfig::RIVER);
        for state in states(&mut adwin, &values) {
            assert_eq!(state, ChangeState::Stable);
        }
        assert_eq!(adwin.width(), 5000.0);
    }

    #[test]
    fn a_jump_in_the_mean_is_detected_by_all_three() {
        let mut values = vec![0.0; 1000];
        values.extend(std::iter::repeat_n(1.0, 1000));
        for detector in [
            &mut PageHinkley::new(PageHinkleyConfig::RIVER) as &mut dyn ChangeDetector,
            &mut Ddm::new(DdmConfig::RIVER),
            &mut Adwin::new(AdwinConfig::RIVER),
        ] {
            let first = values
                .iter()
                .position(|&x| detector.update(x) == ChangeState::Drift)
                .expect("drift");
            assert!((1000..1100).contains(&first), "first drift at {first}");
        }
    }

    #[test]
    fn adwin_window_statistics_are_exact_for_small_integers() {
        let mut adwin = Adwin::new(AdwinConfig::RIVER);
        for x in [1.0, 2.0, 3.0, 4.0, 5.0] {
            adwin.update(x);
        }
        assert_eq!((adwin.width(), adwin.total()), (5.0, 15.0));
        assert_eq!(adwin.squared_deviation_sum(), 10.0);
        assert_eq!(adwin.estimation(), 3.0);
    }

    #[test]
    fn adwin_memory_is_logarithmic() {
        let mut adwin = Adwin::new(AdwinConfig::RIVER);
        for i in 0..100_000 {
            adwin.update(f64::from(i % 2));
        }
        assert_eq!(adwin.width(), 100_000.0);
        let buckets: usize = adwin.rows.iter().map(BucketRow::len).sum();
        assert!(
            adwin.rows.len() <= 17 && buckets <= 6 * 17,
            "{} rows",
            adwin.rows.len()
        );
    }

    fn round_trip<T: Serialize + serde::de::DeserializeOwned>(value: &T) -> T {
        serde_json::from_str(&serde_json::to_string(value).unwrap()).unwrap()
    }

    #[test]
    fn state_survives_a_json_round_trip() {
        let mut ph = PageHinkley::new(PageHinkleyConfig::RIVER);
        let mut ddm = Ddm::new(DdmConfig::RIVER);
        let mut adwin = Adwin::new(AdwinConfig::RIVER);
        // Before warm-up the minima are river's +inf: they must still encode.
        for i in 0..10 {
            let x = f64::from(i % 3 == 0);
            ph.update(x);
            ddm.update(x);
            adwin.update(x);
        }
        let (mut ph2, mut ddm2, mut adwin2) =
            (round_trip(&ph), round_trip(&ddm), round_trip(&adwin));
        assert_eq!((&ph2, &ddm2, &adwin2), (&ph, &ddm, &adwin));
        for i in 0..3000 {
            let x = f64::from(i % 7 == 0 || (i > 1500 && i % 2 == 0));
            assert_eq!(ph2.update(x), ph.update(x));
            assert_eq!(ddm2.update(x), ddm.update(x));
            assert_eq!(adwin2.update(x), adwin.update(x));
            if i % 500 == 0 {
                (ph2, ddm2, adwin2) = (round_trip(&ph2), round_trip(&ddm2), round_trip(&adwin2));
            }
        }
        assert_eq!((ph2, ddm2, adwin2), (ph, ddm, adwin));
    }

    #[test]
    fn reset_forgets_the_stream() {
        let mut ddm = Ddm::new(DdmConfig::RIVER);
        for _ in 0..100 {
            ddm.update_error(true);
        }
        ddm.reset();
        assert_eq!(ddm, Ddm::new(DdmConfig::RIVER));
    }
}
