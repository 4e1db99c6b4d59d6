//! Per-client abuse and adversarial-probing signals (`monitoring.md`
//! §6.8): rate spikes, near-duplicate queries, model extraction (PRADA)
//! and decision-boundary probing, each raised per client (API key, or IP as
//! a fallback) from the stream of that client's requests.
//!
//! The server feeds [`AbuseTracker::observe`] from a background task, off
//! the request path. For 20 features with a full history it costs about
//! 4 µs of CPU, most of it the minimum-distance scan over 512 stored
//! queries, and 10–13 µs when a thousand clients take turns and their
//! histories (60 KB each) come from memory rather than cache
//! (`examples/abuse_cost.rs`). Like the rest of `live`, nothing
//! here reads a clock or does I/O: time is passed in as unix
//! microseconds, so every verdict is reproducible.
//!
//! The signals (with the defaults of [`AbuseConfig`]):
//!
//! - **Rate spike**: the client's requests over the last window (60 s)
//!   exceed `max(k · baseline, min_requests)` (k = 5, 600 = 10/s), the
//!   baseline being an exponentially weighted mean of the client's own
//!   previous windows.
//! - **Near duplicates** (Chen, Carlini & Wagner, "Stateful Detection of
//!   Black-Box Adversarial Attacks", 2020): a 64-bit SimHash (Charikar
//!   2002) of the scaled query is compared with the client's last 256;
//!   a query within Hamming distance 3 of one of them is a near
//!   duplicate, and the signal is raised when they are over half of the
//!   window's queries (at least 50).
//! - **Extraction** (PRADA, Juuti et al., EuroS&P 2019): the minimum L2
//!   distance from each query to the client's 512 previous scaled queries
//!   joins the client's last 1000 such distances; benign queries give
//!   roughly normal distances, an extraction attack's synthetic queries
//!   (small steps from seeds, grids) do not. Raised when the Shapiro-Wilk
//!   W of the distances falls below δ (0.90), once there are 50.
//! - **Boundary probing**: over half of the window's predictions
//!   (at least 50) have a margin (top-1 minus top-2 class probability)
//!   below 0.1.
//!
//! Where this departs from the papers, and why:
//!
//! - PRADA keeps a growing set of queries per predicted class, admitting a
//!   query only when its distance exceeds a threshold that adapts to the
//!   set. The tracker is not given the class, and keeps the client's last
//!   512 queries instead: memory stays bounded, and an attack's walk from
//!   a recent query stays in view. Repeated queries (distance 0) are left
//!   out of the distances (they are the near-duplicate signal's), distances
//!   beyond 3σ of their mean are left out of the test as in the authors'
//!   reference code, and a set of one distance repeated (a grid's step, up
//!   to rounding) counts as W = 0.
//! - Queries are compared in units of each feature's robust spread, clamped
//!   to ±3 (see [`Scaling`] and `SCALED_LIMIT`), so neither a feature's
//!   units nor a long tail dominates the distances.
//! - The SimHash hashes the scaled query with a constant `√d` appended, so
//!   its Hamming distance follows the Euclidean distance rather than the
//!   angle alone (plain SimHash puts `x` and `2x` together).
//!
//! These are alerting and rate-limiting signals, not guarantees: adaptive
//! attackers evade stateful defences (Feng et al., CCS 2023), and a benign
//! client can trip one (a health check replays one query; a batch job may
//! sweep a grid). With [`AbuseConfig::throttle`] set,
//! [`AbuseTracker::is_throttled`] reports clients with any signal raised,
//! for the server to slow down.

use std::collections::{HashMap, VecDeque};

use serde::{Deserialize, Serialize};
use sextant_stats::normality::{NormalityError, ShapiroWilk, MAX_SAMPLE};

use super::profile::{FeatureKind, ReferenceProfile};

/// Bits in a query's SimHash signature.
const SIGNATURE_BITS: usize = 64;
/// Scaled values are clamped to ±this many robust standard deviations
/// before they are hashed and compared. Distances then say where queries
/// sit in the bulk of the data, and a long tail cannot dominate them:
/// without the clamp, benign queries with four log-normal features among
/// twenty gave PRADA's W 0.84 (a false alarm at δ = 0.9); with it, 0.99,
/// and 0.95 at the lowest while the distances accumulate
/// (`tests/it/abuse.rs`). Values beyond are the outlier
/// scores' business ([`super::OutlierVerdict`]). Infinite values are
/// clamped too.
const SCALED_LIMIT: f64 = 3.0;
/// PRADA's distances further than this many standard deviations from
/// their mean are left out of the normality test, as in the authors'
/// reference implementation (`reject_outliers(m = 3)`): one odd query
/// (a benign client's first query in a new region) must not make a
/// client's distances non-normal.
const REJECT_SIGMAS: f64 = 3.0;
/// Distances whose range is below this share of their largest value are
/// one distance repeated up to rounding (a grid's step, a fixed
/// perturbation size): W of that rounding noise would mean nothing, so
/// such a set counts as W = 0, as far from benign as a set gets.
const DEGENERATE_RELATIVE_RANGE: f64 = 1e-4;
/// Shapiro-Wilk weights kept for reuse, keyed by sample size (each is
/// `n/2` doubles, computed in a few µs).
const MAX_CACHED_WEIGHTS: usize = 64;
/// Marks the ends of the recency list.
const NIL: usize = usize::MAX;
/// Stored queries are compared in blocks of this many (SIMD lanes).
const BLOCK_ROWS: usize = 8;

/// How the tracker windows, compares and flags each client's requests.
///
/// Deserialised with every field optional (missing fields take the
/// defaults below). Out-of-range values are clamped by
/// [`AbuseTracker::new`] as each field says.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default)]
pub struct AbuseConfig {
    /// Length of a client's window, in seconds (at least 1) (default 60).
    /// Windows are the client's own, starting at its first request, and counts
    /// are read over a sliding window: the current window plus the previous one
    /// weighted by how much of it still lies within the last `window_seconds`
    /// (so signals do not drop at window boundaries).
    pub window_seconds: u64,
    /// A window's requests are a spike above this multiple of the client's
    /// baseline (default 5).
    pub rate_factor: f64,
    /// … and above this many requests per window in any case (default 600: 10/s
    /// over 60 s): the threshold for a client without history, and a floor that
    /// keeps a quiet client's few extra requests from counting as a spike.
    pub rate_min_requests: u64,
    /// Weight of the newest closed window in the baseline, an exponentially
    /// weighted mean of the client's window counts, in (0, 1] (default 0.1: a
    /// memory of about 10 windows). A window without requests counts as 0. A
    /// window's count enters the baseline capped at the spike threshold, so
    /// the baseline grows at most `1 + α(k − 1)` = 1.4 times per window: a
    /// sustained jump is learned over several windows (a tenfold jump stays
    /// flagged for 3) rather than absorbed at once.
    pub rate_baseline_weight: f64,
    /// The near-duplicate and boundary shares are judged only over at least
    /// this many queries in the window (default 50).
    pub min_window_queries: u64,
    /// Signatures of the client's previous queries compared with each new one
    /// (at least 1) (default 256).
    pub near_duplicate_history: usize,
    /// Largest Hamming distance between two 64-bit signatures that makes their
    /// queries near duplicates (default 3). Two hashed vectors at angle θ
    /// differ in each bit with probability θ/π, so 3 bits is θ ≈ 0.15 rad.
    /// The signature hashes the scaled query with a constant `√d` appended,
    /// which makes θ follow the Euclidean distance: with `d` features of
    /// typical scaled size 1 the hashed vectors have length about `√(2d)`,
    /// and 0.15 rad is a distance of about 0.9 for d = 20 (0.2 robust σ per
    /// feature). Independent queries from the reference are about 90° (32
    /// bits) apart.
    pub near_duplicate_max_hamming: u32,
    /// Share of near-duplicate queries above which the signal is raised
    /// (default 0.5).
    pub near_duplicate_share: f64,
    /// Previous scaled queries kept for PRADA's minimum distance (at least 1)
    /// (default 512). Each costs `4d` bytes and `d` multiply-adds per query.
    pub prada_history: usize,
    /// Minimum distances kept for the normality test, the most recent ones (3
    /// to 5000) (default 1000).
    pub prada_distances: usize,
    /// Distances needed before the test is judged (at least 3) (default 50).
    pub prada_min_distances: usize,
    /// δ: the signal is raised when W falls below it (default 0.90); 0 disables
    /// it. PRADA sets δ per model as the largest value that raises no alarm on
    /// benign clients. Here, independent benign queries over 20 features (four
    /// of them log-normal) give W ≈ 0.99 with a full distance set and 0.95 at
    /// the lowest while it fills (`tests/it/abuse.rs`; 0.93 over 30 clients in
    /// a simulation of the same traffic); the attacks of that test give
    /// 0.37–0.86. Nearest-neighbour distances are skewed in few dimensions, so
    /// benign W is lower there (simulated Gaussian inputs: about 0.87 with 2
    /// features, 0.97 with 5, dipping to 0.91 while the set fills): disable or
    /// lower δ for models with fewer than about 5 numeric features, and check
    /// the W of your own clients in [`AbuseTracker::report`] before raising it.
    pub prada_threshold: f64,
    /// The test is rerun after this many new distances (at least 1) (default
    /// 10, as in the authors' reference implementation); it costs about as much
    /// as 2 queries.
    pub prada_test_every: usize,
    /// A prediction whose margin is below this is near the decision boundary
    /// (default 0.1).
    pub boundary_margin: f64,
    /// Share of near-boundary predictions above which the signal is raised
    /// (default 0.5). Benign traffic of a confident model has few: its share is
    /// the model's own rate of margins below 0.1.
    pub boundary_share: f64,
    /// Clients tracked at most (at least 1) (default 10 000); the least
    /// recently seen is forgotten for a new one. Worst-case memory is about
    /// `max_clients · (4·prada_history·d + 8·near_duplicate_history +
    /// 16·prada_distances)` bytes: 60 KB per client at the defaults and d = 20,
    /// so 600 MB for 10 000 clients that each sent over 1500 queries. A
    /// client's history grows with its queries, so light clients cost little;
    /// [`AbuseTotals::memory_bytes`] reports the current figure. Lower this (or
    /// `prada_history`) for wide inputs or many heavy clients.
    pub max_clients: usize,
    /// When set, [`AbuseTracker::is_throttled`] and [`ClientVerdict::throttle`]
    /// report clients with any signal raised (default false).
    pub throttle: bool,
    /// Seed of the SimHash hyperplanes (default: a fixed seed): replicas with
    /// the same seed compute the same signatures.
    pub seed: u64,
}

impl Default for AbuseConfig {
    fn default() -> Self {
        AbuseConfig {
            window_seconds: 60,
            rate_factor: 5.0,
            rate_min_requests: 600,
            rate_baseline_weight: 0.1,
            min_window_queries: 50,
            near_duplicate_history: 256,
            near_duplicate_max_hamming: 3,
            near_duplicate_share: 0.5,
            prada_history: 512,
            prada_distances: 1000,
            prada_min_distances: 50,
            prada_threshold: 0.90,
            prada_test_every: 10,
            boundary_margin: 0.1,
            boundary_share: 0.5,
            max_clients: 10_000,
            throttle: false,
            seed: 0x5EC7_A7AB_05E0_0001,
        }
    }
}

impl AbuseConfig {
    /// The configuration with every field brought into its documented
    /// range.
    fn clamped(mut self) -> AbuseConfig {
        let or = |value: f64, default: f64| if value.is_finite() { value } else { default };
        self.window_seconds = self.window_seconds.max(1);
        self.rate_factor = or(self.rate_factor, 5.0).max(0.0);
        self.rate_baseline_weight = or(self.rate_baseline_weight, 0.1).clamp(1e-6, 1.0);
        self.near_duplicate_history = self.near_duplicate_history.max(1);
        self.near_duplicate_max_hamming = self.near_duplicate_max_hamming.min(64);
        self.prada_history = self.prada_history.max(1);
        self.prada_distances = self.prada_distances.clamp(3, MAX_SAMPLE);
        self.prada_min_distances = self.prada_min_distances.clamp(3, self.prada_distances);
        self.prada_test_every = self.prada_test_every.max(1);
        self.max_clients = self.max_clients.max(1);
        self
    }
}

/// One feature's center and scale: a query's value `x` is compared as
/// `(x − center) / scale`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ScaledFeature {
    pub name: String,
    pub center: f64,
    pub scale: f64,
}

/// How queries are scaled before they are hashed and compared, so that
/// every feature counts in units of its own spread (a feature in dollars
/// and one in years then weigh alike).
///
/// [`AbuseTracker::observe`] takes one value per feature, in this order.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Scaling {
    features: Vec<ScaledFeature>,
}

impl Scaling {
    /// The given features; a center that is not finite becomes 0 and a
    /// scale that is not finite and positive becomes 1.
    pub fn new(features: Vec<ScaledFeature>) -> Scaling {
        let features = features
            .into_iter()
            .map(|feature| ScaledFeature {
                center: if feature.center.is_finite() {
                    feature.center
                } else {
                    0.0
                },
                scale: if feature.scale.is_finite() && feature.scale > 0.0 {
                    feature.scale
                } else {
                    1.0
                },
                name: feature.name,
            })
            .collect();
        Scaling { features }
    }

    /// The profile's numerical features, in profile order, centered on the
    /// reference median and scaled by its robust σ (`1.4826 · MAD`, or
    /// `√(π/2)` times the mean absolute deviation when over half the
    /// reference sits on one value; 1 for a constant feature or one
    /// without finite values). Robust estimates, so a reference's
    /// outliers do not shrink everyone else's distances.
    ///
    /// Categorical features are left out: a query's categories would need
    /// hashing into numbers (one-hot or feature hashing) whose distances
    /// do not mean what numeric ones do, and PRADA's normality argument
    /// is about continuous inputs. Their values do not enter the
    /// near-duplicate or extraction signals.
    pub fn from_profile(profile: &ReferenceProfile) -> Scaling {
        Scaling::new(
            profile
                .features()
                .iter()
                .filter(|feature| feature.kind == FeatureKind::Numerical)
                .map(|feature| {
                    let (center, scale) = feature
                        .robust()
                        .map_or((0.0, 1.0), |robust| (robust.median, robust.scale));
                    ScaledFeature {
                        name: feature.name.clone(),
                        center,
                        scale,
                    }
                })
                .collect(),
        )
    }

    pub fn features(&self) -> &[ScaledFeature] {
        &self.features
    }

    pub fn len(&self) -> usize {
        self.features.len()
    }

    pub fn is_empty(&self) -> bool {
        self.features.is_empty()
    }
}

/// The signals raised for a client.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct AbuseSignals {
    /// Requests over the window above `max(k · baseline, min_requests)`.
    pub rate_spike: bool,
    /// Over half the window's queries are near duplicates of the client's
    /// recent ones.
    pub near_duplicates: bool,
    /// PRADA: the client's minimum query distances are not normal-like
    /// (W < δ).
    pub extraction: bool,
    /// Over half the window's predictions are near the decision boundary.
    pub boundary_probing: bool,
}

impl AbuseSignals {
    pub fn any(&self) -> bool {
        self.rate_spike || self.near_duplicates || self.extraction || self.boundary_probing
    }
}

/// What [`AbuseTracker::observe`] concluded about the client, this query
/// included.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct ClientVerdict {
    pub signals: AbuseSignals,
    /// [`AbuseConfig::throttle`] is set and a signal is raised.
    pub throttle: bool,
}

/// One client's figures at a report's time.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ClientAbuse {
    pub client: String,
    pub first_seen_us: i64,
    pub last_seen_us: i64,
    /// Requests over the last window (sliding estimate, see
    /// [`AbuseConfig::window_seconds`]).
    pub requests_in_window: f64,
    /// The client's baseline requests per window; `None` before its first
    /// window closed.
    pub baseline_requests: Option<f64>,
    /// The rate-spike threshold, `max(k · baseline, min_requests)`.
    pub rate_threshold: f64,
    /// Queries over the window that were compared (a feature present).
    pub compared_in_window: f64,
    /// Share of them that were near duplicates; `None` without any.
    pub near_duplicate_share: Option<f64>,
    /// Predictions with a margin over the window.
    pub margins_in_window: f64,
    /// Share of them below [`AbuseConfig::boundary_margin`]; `None`
    /// without any.
    pub near_boundary_share: Option<f64>,
    /// Shapiro-Wilk W of the client's minimum distances at the last test
    /// (0 for distances that are all the same); `None` before
    /// [`AbuseConfig::prada_min_distances`].
    pub prada_w: Option<f64>,
    /// Distances the client has (up to [`AbuseConfig::prada_distances`]).
    pub prada_distances: usize,
    /// Distances the last test used, after the outlier rejection.
    pub prada_tested: usize,
    pub signals: AbuseSignals,
    pub throttled: bool,
}

/// Counts over every tracked client.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct AbuseTotals {
    pub clients: usize,
    /// Clients with any signal raised.
    pub flagged: usize,
    pub rate_spike: usize,
    pub near_duplicates: usize,
    pub extraction: usize,
    pub boundary_probing: usize,
    pub throttled: usize,
    /// Queries observed since the tracker was built.
    pub observed: u64,
    /// Clients forgotten to make room for new ones.
    pub evicted: u64,
    /// Approximate heap bytes held by the tracker.
    pub memory_bytes: usize,
}

/// Every tracked client at one time: flagged clients first, then by
/// requests in the window (most first).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct AbuseReport {
    pub now_us: i64,
    pub window_seconds: u64,
    pub clients: Vec<ClientAbuse>,
    pub totals: AbuseTotals,
}

/// What a window counted for one client.
#[derive(Debug, Clone, Copy, Default, PartialEq)]
struct Counts {
    requests: u64,
    /// Queries with at least one feature present (hashed and compared).
    compared: u64,
    near_duplicates: u64,
    /// Predictions that came with a margin.
    margins: u64,
    near_boundary: u64,
}

/// A client's current and previous windows and its rate baseline.
#[derive(Debug, Clone, Copy)]
struct Windows {
    start_us: i64,
    current: Counts,
    previous: Counts,
    baseline: Option<f64>,
}

/// The sliding-window estimates at one time.
#[derive(Debug, Clone, Copy)]
struct Estimate {
    requests: f64,
    compared: f64,
    near_duplicates: f64,
    margins: f64,
    near_boundary: f64,
}

impl Windows {
    fn new(start_us: i64) -> Windows {
        Windows {
            start_us,
            current: Counts::default(),
            previous: Counts::default(),
            baseline: None,
        }
    }

    /// Closes the windows that ended by `now_us`, folding their requests
    /// into the baseline. A time before the current window's start (out of
    /// order) counts in the current window.
    fn advance(&mut self, now_us: i64, window_us: i64, config: &AbuseConfig) {
        let elapsed = now_us.saturating_sub(self.start_us);
        if elapsed < window_us {
            return;
        }
        let closed = elapsed / window_us;
        self.fold(self.current.requests as f64, config);
        if closed == 1 {
            self.previous = self.current;
        } else {
            self.previous = Counts::default();
            // The idle windows between count as 0 each.
            let idle = i32::try_from(closed - 1).unwrap_or(i32::MAX);
            if let Some(baseline) = self.baseline.as_mut() {
                *baseline *= (1.0 - config.rate_baseline_weight).powi(idle);
            }
        }
        self.current = Counts::default();
        self.start_us += closed * window_us;
    }

    fn fold(&mut self, requests: f64, config: &AbuseConfig) {
        let capped = requests.min(rate_threshold(self.baseline, config));
        self.baseline = Some(match self.baseline {
            None => capped,
            Some(baseline) => baseline + config.rate_baseline_weight * (capped - baseline),
        });
    }

    /// Counts over the `window_us` before `now_us`: the current window
    /// plus the part of the previous one still inside (assuming its
    /// requests were spread evenly).
    fn estimate(&self, now_us: i64, window_us: i64) -> Estimate {
        let into = now_us.saturating_sub(self.start_us) as f64 / window_us as f64;
        let previous_weight = 1.0 - into.clamp(0.0, 1.0);
        let mix = |current: u64, previous: u64| current as f64 + previous_weight * previous as f64;
        Estimate {
            requests: mix(self.current.requests, self.previous.requests),
            compared: mix(self.current.compared, self.previous.compared),
            near_duplicates: mix(self.current.near_duplicates, self.previous.near_duplicates),
            margins: mix(self.current.margins, self.previous.margins),
            near_boundary: mix(self.current.near_boundary, self.previous.near_boundary),
        }
    }
}

fn rate_threshold(baseline: Option<f64>, config: &AbuseConfig) -> f64 {
    (config.rate_factor * baseline.unwrap_or(0.0)).max(config.rate_min_requests as f64)
}

/// `part / whole`, `None` for an empty whole.
fn share(part: f64, whole: f64) -> Option<f64> {
    (whole > 0.0).then(|| part / whole)
}

/// One tracked client.
#[derive(Debug)]
struct Client {
    name: Box<str>,
    first_seen_us: i64,
    last_seen_us: i64,
    windows: Windows,
    /// Ring of the last signatures; `signature_next` is the oldest once
    /// full.
    signatures: Vec<u64>,
    signature_next: usize,
    /// Ring of the last scaled queries, in blocks of [`BLOCK_ROWS`]
    /// queries stored feature-major (see [`min_squared_distance`]);
    /// `vector_count` are stored, `vector_next` is the slot written next.
    vectors: Vec<f32>,
    vector_count: usize,
    vector_next: usize,
    /// The last minimum distances, oldest first, and the same sorted.
    distances: VecDeque<f64>,
    sorted_distances: Vec<f64>,
    since_test: usize,
    prada_w: Option<f64>,
    prada_tested: usize,
    /// Neighbours in the recency list (`NIL` at the ends).
    newer: usize,
    older: usize,
}

impl Client {
    fn new(name: &str, now_us: i64) -> Client {
        Client {
            name: name.into(),
            first_seen_us: now_us,
            last_seen_us: now_us,
            windows: Windows::new(now_us),
            signatures: Vec::new(),
            signature_next: 0,
            vectors: Vec::new(),
            vector_count: 0,
            vector_next: 0,
            distances: VecDeque::new(),
            sorted_distances: Vec::new(),
            since_test: 0,
            prada_w: None,
            prada_tested: 0,
            newer: NIL,
            older: NIL,
        }
    }

    /// The signals with `windows` (the client's own, possibly advanced to
    /// a later time) and their `estimate`.
    fn signals(
        &self,
        windows: &Windows,
        estimate: &Estimate,
        config: &AbuseConfig,
    ) -> AbuseSignals {
        let min_queries = config.min_window_queries as f64;
        let over = |part: f64, whole: f64, limit: f64| {
            whole >= min_queries && whole > 0.0 && part / whole > limit
        };
        AbuseSignals {
            rate_spike: estimate.requests > rate_threshold(windows.baseline, config),
            near_duplicates: over(
                estimate.near_duplicates,
                estimate.compared,
                config.near_duplicate_share,
            ),
            extraction: self.distances.len() >= config.prada_min_distances
                && self.prada_w.is_some_and(|w| w < config.prada_threshold),
            boundary_probing: over(
                estimate.near_boundary,
                estimate.margins,
                config.boundary_share,
            ),
        }
    }

    fn heap_bytes(&self) -> usize {
        self.name.len()
            + self.signatures.capacity() * 8
            + self.vectors.capacity() * 4
            + self.distances.capacity() * 8
            + self.sorted_distances.capacity() * 8
    }
}

/// Per-client abuse signals over a stream of queries (see the module
/// documentation).
///
/// `observe` takes `&mut self`: the server keeps the tracker in the task
/// that drains its queue of observations (or behind a mutex).
#[derive(Debug)]
pub struct AbuseTracker {
    config: AbuseConfig,
    window_us: i64,
    scaling: Scaling,
    centers: Vec<f64>,
    inverse_scales: Vec<f64>,
    /// SimHash hyperplanes, feature-major: `planes[j · 64 + b]` is plane
    /// `b`'s coefficient for feature `j`; the last 64 are for the constant
    /// `√d` appended to every query.
    planes: Vec<f32>,
    /// The current query, scaled.
    row: Vec<f32>,
    index: HashMap<Box<str>, usize>,
    clients: Vec<Client>,
    /// Most and least recently seen clients.
    newest: usize,
    oldest: usize,
    weights: HashMap<usize, ShapiroWilk>,
    observed: u64,
    evicted: u64,
}

impl AbuseTracker {
    pub fn new(config: AbuseConfig, scaling: Scaling) -> AbuseTracker {
        let config = config.clamped();
        let window_us = i64::try_from(config.window_seconds)
            .unwrap_or(i64::MAX)
            .saturating_mul(1_000_000);
        let width = scaling.len();
        let centers = scaling.features().iter().map(|f| f.center).collect();
        let inverse_scales = scaling.features().iter().map(|f| 1.0 / f.scale).collect();
        let mut rng = SplitMix64(config.seed);
        let planes = (0..(width + 1) * SIGNATURE_BITS)
            .map(|_| rng.normal() as f32)
            .collect();
        AbuseTracker {
            window_us,
            scaling,
            centers,
            inverse_scales,
            planes,
            row: vec![0.0; width],
            index: HashMap::new(),
            clients: Vec::new(),
            newest: NIL,
            oldest: NIL,
            weights: HashMap::new(),
            observed: 0,
            evicted: 0,
            config,
        }
    }

    /// The configuration in effect (clamped into range).
    pub fn config(&self) -> &AbuseConfig {
        &self.config
    }

    pub fn scaling(&self) -> &Scaling {
        &self.scaling
    }

    /// Records one query of `client` at `now_us` and returns the signals
    /// raised for that client, this query included.
    ///
    /// `features` holds one value per [`Scaling`] feature, in its order
    /// (NaN: missing; missing trailing values may be left out, extra ones
    /// are ignored). A missing value is compared as the feature's center;
    /// a query with no feature present counts for the rate and margin
    /// signals only. `margin` is the prediction's top-1 minus top-2 class
    /// probability (`None` for a regressor, or when the caller does not
    /// have it; NaN counts as `None`).
    pub fn observe(
        &mut self,
        client: &str,
        now_us: i64,
        features: &[f64],
        margin: Option<f64>,
    ) -> ClientVerdict {
        self.observed += 1;
        let slot = self.slot_for(client, now_us);
        let present = scale_row(&mut self.row, features, &self.centers, &self.inverse_scales);
        let config = &self.config;
        let state = &mut self.clients[slot];
        state.windows.advance(now_us, self.window_us, config);
        state.last_seen_us = state.last_seen_us.max(now_us);
        let counts = &mut state.windows.current;
        counts.requests += 1;
        if let Some(margin) = margin.filter(|m| !m.is_nan()) {
            counts.margins += 1;
            if margin < config.boundary_margin {
                counts.near_boundary += 1;
            }
        }
        if present {
            counts.compared += 1;
            let signature = simhash(&self.planes, &self.row);
            if is_near_duplicate(
                &state.signatures,
                signature,
                config.near_duplicate_max_hamming,
            ) {
                counts.near_duplicates += 1;
            }
            push_signature(
                &mut state.signatures,
                &mut state.signature_next,
                signature,
                config.near_duplicate_history,
            );
            record_distance(state, &self.row, config, &mut self.weights);
        }
        let estimate = state.windows.estimate(now_us, self.window_us);
        let signals = state.signals(&state.windows, &estimate, config);
        ClientVerdict {
            signals,
            throttle: config.throttle && signals.any(),
        }
    }

    /// Whether `client` should be slowed down at `now_us`:
    /// [`AbuseConfig::throttle`] is set and a signal is raised for it.
    /// Rate and share signals fade as the client's windows pass without
    /// new queries; the extraction signal stays until its queries change
    /// it (or [`AbuseTracker::forget`]).
    pub fn is_throttled(&self, client: &str, now_us: i64) -> bool {
        self.config.throttle
            && self
                .index
                .get(client)
                .is_some_and(|&slot| self.signals_at(&self.clients[slot], now_us).any())
    }

    /// One client's figures at `now_us` (at or after the client's last
    /// query: windows are advanced to it, never rewound); `None` if it is
    /// not tracked.
    pub fn client(&self, client: &str, now_us: i64) -> Option<ClientAbuse> {
        self.index
            .get(client)
            .map(|&slot| self.client_abuse(&self.clients[slot], now_us))
    }

    /// Drops everything known about `client` (after review, say); returns
    /// whether it was tracked.
    pub fn forget(&mut self, client: &str) -> bool {
        let Some(slot) = self.index.remove(client) else {
            return false;
        };
        self.unlink(slot);
        let last = self.clients.len() - 1;
        if slot != last {
            // The last client moves into the freed slot, keeping its place
            // in the recency list.
            self.clients.swap(slot, last);
            let (newer, older) = (self.clients[slot].newer, self.clients[slot].older);
            match newer {
                NIL => self.newest = slot,
                newer => self.clients[newer].older = slot,
            }
            match older {
                NIL => self.oldest = slot,
                older => self.clients[older].newer = slot,
            }
            if let Some(moved) = self.index.get_mut(&*self.clients[slot].name) {
                *moved = slot;
            }
        }
        self.clients.pop();
        true
    }

    /// Every tracked client at `now_us` (at or after the last query
    /// observed), with totals. Reading it does not change the tracker.
    pub fn report(&self, now_us: i64) -> AbuseReport {
        let mut clients: Vec<ClientAbuse> = self
            .clients
            .iter()
            .map(|state| self.client_abuse(state, now_us))
            .collect();
        clients.sort_by(|a, b| {
            b.signals
                .any()
                .cmp(&a.signals.any())
                .then(b.requests_in_window.total_cmp(&a.requests_in_window))
                .then_with(|| a.client.cmp(&b.client))
        });
        let count = |signal: fn(&AbuseSignals) -> bool| {
            clients.iter().filter(|c| signal(&c.signals)).count()
        };
        let totals = AbuseTotals {
            clients: clients.len(),
            flagged: count(AbuseSignals::any),
            rate_spike: count(|s| s.rate_spike),
            near_duplicates: count(|s| s.near_duplicates),
            extraction: count(|s| s.extraction),
            boundary_probing: count(|s| s.boundary_probing),
            throttled: clients.iter().filter(|c| c.throttled).count(),
            observed: self.observed,
            evicted: self.evicted,
            memory_bytes: self.memory_bytes(),
        };
        AbuseReport {
            now_us,
            window_seconds: self.config.window_seconds,
            clients,
            totals,
        }
    }

    /// Clients tracked now.
    pub fn len(&self) -> usize {
        self.clients.len()
    }

    pub fn is_empty(&self) -> bool {
        self.clients.is_empty()
    }

    /// Approximate heap bytes held: the clients' histories, the index and
    /// the cached Shapiro-Wilk weights.
    pub fn memory_bytes(&self) -> usize {
        let per_client = std::mem::size_of::<Client>() + std::mem::size_of::<(Box<str>, usize)>();
        let clients: usize = self
            .clients
            .iter()
            .map(|client| client.name.len() + client.heap_bytes())
            .sum();
        let weights: usize = self.weights.keys().map(|&n| n / 2 * 8).sum();
        self.clients.capacity() * per_client
            + clients
            + weights
            + (self.planes.len() + self.row.len()) * 4
    }

    /// `state`'s windows advanced to `now_us` (without changing the
    /// client) and their estimate.
    fn windows_at(&self, state: &Client, now_us: i64) -> (Windows, Estimate) {
        let mut windows = state.windows;
        windows.advance(now_us, self.window_us, &self.config);
        let estimate = windows.estimate(now_us, self.window_us);
        (windows, estimate)
    }

    fn signals_at(&self, state: &Client, now_us: i64) -> AbuseSignals {
        let (windows, estimate) = self.windows_at(state, now_us);
        state.signals(&windows, &estimate, &self.config)
    }

    fn client_abuse(&self, state: &Client, now_us: i64) -> ClientAbuse {
        let (windows, estimate) = self.windows_at(state, now_us);
        let signals = state.signals(&windows, &estimate, &self.config);
        ClientAbuse {
            client: state.name.to_string(),
            first_seen_us: state.first_seen_us,
            last_seen_us: state.last_seen_us,
            requests_in_window: estimate.requests,
            baseline_requests: windows.baseline,
            rate_threshold: rate_threshold(windows.baseline, &self.config),
            compared_in_window: estimate.compared,
            near_duplicate_share: share(estimate.near_duplicates, estimate.compared),
            margins_in_window: estimate.margins,
            near_boundary_share: share(estimate.near_boundary, estimate.margins),
            prada_w: state.prada_w,
            prada_distances: state.distances.len(),
            prada_tested: state.prada_tested,
            signals,
            throttled: self.config.throttle && signals.any(),
        }
    }

    /// The slot of `client`, created (evicting the least recently seen
    /// client when full) if new, and made the most recent.
    fn slot_for(&mut self, client: &str, now_us: i64) -> usize {
        if let Some(&slot) = self.index.get(client) {
            self.unlink(slot);
            self.push_newest(slot);
            return slot;
        }
        let slot = if self.clients.len() < self.config.max_clients {
            self.clients.push(Client::new(client, now_us));
            self.clients.len() - 1
        } else {
            let slot = self.oldest;
            self.unlink(slot);
            self.index.remove(&self.clients[slot].name);
            self.clients[slot] = Client::new(client, now_us);
            self.evicted += 1;
            slot
        };
        self.index.insert(client.into(), slot);
        self.push_newest(slot);
        slot
    }

    fn unlink(&mut self, slot: usize) {
        let (newer, older) = (self.clients[slot].newer, self.clients[slot].older);
        match newer {
            NIL => self.newest = older,
            newer => self.clients[newer].older = older,
        }
        match older {
            NIL => self.oldest = newer,
            older => self.clients[older].newer = newer,
        }
        self.clients[slot].newer = NIL;
        self.clients[slot].older = NIL;
    }

    fn push_newest(&mut self, slot: usize) {
        self.clients[slot].older = self.newest;
        self.clients[slot].newer = NIL;
        match self.newest {
            NIL => self.oldest = slot,
            newest => self.clients[newest].newer = slot,
        }
        self.newest = slot;
    }
}

/// Scales `features` into `row`; returns whether any feature is present.
fn scale_row(row: &mut [f32], features: &[f64], centers: &[f64], inverse_scales: &[f64]) -> bool {
    let mut present = false;
    for (index, slot) in row.iter_mut().enumerate() {
        let value = features.get(index).copied().unwrap_or(f64::NAN);
        *slot = if value.is_nan() {
            0.0
        } else {
            present = true;
            ((value - centers[index]) * inverse_scales[index]).clamp(-SCALED_LIMIT, SCALED_LIMIT)
                as f32
        };
    }
    present
}

/// The SimHash signature of `row` with `√d` appended: bit `b` is set when
/// the query lies on the positive side of hyperplane `b` (Charikar 2002;
/// two queries at angle θ differ in each bit with probability θ/π).
fn simhash(planes: &[f32], row: &[f32]) -> u64 {
    let mut projections = [0.0_f32; SIGNATURE_BITS];
    let offset = (row.len() as f32).sqrt();
    let (feature_planes, offset_plane) = planes.split_at(row.len() * SIGNATURE_BITS);
    for (projection, &coefficient) in projections.iter_mut().zip(offset_plane) {
        *projection = offset * coefficient;
    }
    for (&value, coefficients) in row.iter().zip(feature_planes.chunks_exact(SIGNATURE_BITS)) {
        if value != 0.0 {
            for (projection, &coefficient) in projections.iter_mut().zip(coefficients) {
                *projection += value * coefficient;
            }
        }
    }
    projections
        .iter()
        .enumerate()
        .fold(0, |signature, (bit, &projection)| {
            signature | (u64::from(projection > 0.0) << bit)
        })
}

fn is_near_duplicate(signatures: &[u64], signature: u64, max_hamming: u32) -> bool {
    signatures
        .iter()
        .any(|&other| (other ^ signature).count_ones() <= max_hamming)
}

/// Appends `signature` to the ring `ring` of at most `capacity`,
/// overwriting the oldest once full.
fn push_signature(ring: &mut Vec<u64>, next: &mut usize, signature: u64, capacity: usize) {
    if ring.len() < capacity {
        ring.push(signature);
    } else {
        ring[*next] = signature;
        *next = (*next + 1) % capacity;
    }
}

/// PRADA's step for one query: its minimum distance to the client's
/// previous queries joins the distance set, the query joins the history,
/// and the normality test is rerun when due.
fn record_distance(
    state: &mut Client,
    row: &[f32],
    config: &AbuseConfig,
    weights: &mut HashMap<usize, ShapiroWilk>,
) {
    let distance = if state.vector_count == 0 {
        None
    } else {
        Some(min_squared_distance(&state.vectors, row).sqrt())
    };
    store_vector(state, row, config.prada_history);
    // A repeated query (distance 0) is left out: it is the near-duplicate
    // signal's business, and teaches an extraction attack nothing.
    let Some(distance) = distance.filter(|&d| d > 0.0) else {
        return;
    };
    let distance = f64::from(distance);
    if state.distances.len() == config.prada_distances {
        if let Some(oldest) = state.distances.pop_front() {
            let at = state
                .sorted_distances
                .partition_point(|&d| d < oldest)
                .min(state.sorted_distances.len() - 1);
            state.sorted_distances.remove(at);
        }
    }
    state.distances.push_back(distance);
    let at = state.sorted_distances.partition_point(|&d| d < distance);
    state.sorted_distances.insert(at, distance);
    state.since_test += 1;
    let count = state.distances.len();
    if count >= config.prada_min_distances
        && (state.since_test >= config.prada_test_every || state.prada_w.is_none())
    {
        state.since_test = 0;
        let (w, tested) = prada_w(&state.sorted_distances, weights);
        state.prada_w = Some(w);
        state.prada_tested = tested;
    }
}

/// Stores `row` in the client's ring of queries (at most `capacity`),
/// overwriting the oldest once full.
fn store_vector(state: &mut Client, row: &[f32], capacity: usize) {
    let width = row.len();
    let slot = state.vector_next;
    let (block, lane) = (slot / BLOCK_ROWS, slot % BLOCK_ROWS);
    let block_len = BLOCK_ROWS * width;
    if state.vectors.len() < (block + 1) * block_len {
        // Unused lanes hold +∞, so they are never the nearest.
        state.vectors.resize((block + 1) * block_len, f32::INFINITY);
    }
    let block = &mut state.vectors[block * block_len..][..block_len];
    for (feature, &value) in row.iter().enumerate() {
        block[feature * BLOCK_ROWS + lane] = value;
    }
    state.vector_count = (state.vector_count + 1).min(capacity);
    state.vector_next = (slot + 1) % capacity;
}

/// The smallest squared Euclidean distance from `query` to the stored
/// queries, in f32.
///
/// The queries are stored in blocks of [`BLOCK_ROWS`], feature-major
/// within a block (`block[j · 8 + r]` is feature `j` of the block's query
/// `r`), so one pass over the features computes 8 distances at once in
/// SIMD lanes with no horizontal sum. A query-at-a-time scan that
/// abandons a query once its partial sum (every 8 features) exceeds the
/// best distance was 3 times slower (`examples/abuse_cost.rs`: 12 µs per
/// observe against 4 µs): each check's horizontal sum is a chain of
/// dependent additions, and the abandon branch is unpredictable.
fn min_squared_distance(blocks: &[f32], query: &[f32]) -> f32 {
    let mut best = [f32::INFINITY; BLOCK_ROWS];
    for block in blocks.chunks_exact(BLOCK_ROWS * query.len()) {
        let mut sums = [0.0_f32; BLOCK_ROWS];
        for (column, &value) in block.chunks_exact(BLOCK_ROWS).zip(query) {
            for (sum, &stored) in sums.iter_mut().zip(column) {
                let difference = stored - value;
                *sum += difference * difference;
            }
        }
        for (best, &sum) in best.iter_mut().zip(&sums) {
            if sum < *best {
                *best = sum;
            }
        }
    }
    best.iter().copied().fold(f32::INFINITY, f32::min)
}

/// W of the distances (sorted) after leaving out those more than
/// [`REJECT_SIGMAS`] standard deviations from their mean, and how many
/// were tested. A set with (next to) no spread counts as W = 0.
fn prada_w(sorted: &[f64], weights: &mut HashMap<usize, ShapiroWilk>) -> (f64, usize) {
    let n = sorted.len() as f64;
    let mean = sorted.iter().sum::<f64>() / n;
    let variance = sorted.iter().map(|d| (d - mean) * (d - mean)).sum::<f64>() / n;
    let fence = REJECT_SIGMAS * variance.sqrt();
    let low = sorted.partition_point(|&d| d <= mean - fence);
    let high = sorted.partition_point(|&d| d < mean + fence);
    let kept = &sorted[low..high.max(low)];
    let degenerate = |kept: &[f64]| match (kept.first(), kept.last()) {
        (Some(&first), Some(&last)) => last - first <= DEGENERATE_RELATIVE_RANGE * last,
        _ => true,
    };
    if kept.len() < 3 || degenerate(kept) {
        return (0.0, kept.len());
    }
    if weights.len() >= MAX_CACHED_WEIGHTS && !weights.contains_key(&kept.len()) {
        weights.clear();
    }
    let test = match weights.entry(kept.len()) {
        std::collections::hash_map::Entry::Occupied(entry) => entry.into_mut().test_sorted(kept),
        std::collections::hash_map::Entry::Vacant(entry) => match ShapiroWilk::new(kept.len()) {
            Ok(weights) => entry.insert(weights).test_sorted(kept),
            Err(error) => Err(error),
        },
    };
    match test {
        Ok(result) => (result.statistic, kept.len()),
        Err(NormalityError::ZeroRange) => (0.0, kept.len()),
        // Distances are finite and at most `prada_distances ≤ 5000`.
        Err(_) => (1.0, kept.len()),
    }
}

/// SplitMix64 (Steele, Lea & Flood 2014) with Box-Muller normals, for the
/// SimHash hyperplanes: deterministic from the configured seed.
struct SplitMix64(u64);

impl SplitMix64 {
    fn next_u64(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }

    /// Uniform in (0, 1).
    fn uniform(&mut self) -> f64 {
        ((self.next_u64() >> 11) as f64 + 0.5) / (1u64 << 53) as f64
    }

    fn normal(&mut self) -> f64 {
        let (u, v) = (self.uniform(), self.uniform());
        (-2.0 * u.ln()).sqrt() * (std::f64::consts::TAU * v).cos()
    }
}
