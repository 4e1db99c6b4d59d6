//! KLL quantile sketch (Karnin, Lang & Liberty, "Optimal quantile
//! approximation in streams", FOCS 2016).
//!
//! The sketch is a stack of compactors. Level `h` holds items that each
//! stand for `2^h` stream items. When the sketch is full, a level over its
//! capacity is sorted and *compacted*: every other item (odd or even
//! positions, chosen by a fair coin) moves to level `h + 1`, the rest are
//! dropped. Total weight is conserved exactly, so `count()` is exact.
//! Capacities shrink geometrically going down, `⌈k·c^depth⌉` with
//! `c = 2/3` and a floor of 8 (the choices of the paper's reference code and
//! of Apache DataSketches) — except level 0, which keeps `k` (see
//! `level_capacity`) — and compaction is lazy — only when the whole
//! sketch is full — as in the authors' reference implementation
//! (github.com/edoliberty/streaming-quantiles), which lets level 0 use all
//! free space and so compacts less often.
//!
//! # Error bound
//!
//! A compaction at level `h` changes the estimated rank of a query `x` by
//! `+2^h` or `−2^h` with equal probability when `x` falls at an odd position
//! of the sorted buffer, and by 0 otherwise; the contributions are
//! independent and zero-mean. Each compaction of level `h` consumes at
//! least `cap_h` items of weight `2^h`, so level `h` compacts at most
//! `n / (2^h·cap_h)` times and the rank-error variance is at most
//! `Σ_h n·2^h / cap_h`. With `H` levels and `cap_h = k·(2/3)^{H−1−h}` the
//! terms shrink by 3/4 per level down, so the sum is `≤ 4·n·2^{H−1}/k`; and
//! level `H−1` was created by compacting a full top level of capacity `k`
//! and weight `2^{H−2}`, so `n ≥ k·2^{H−2}`. Dividing by `n²`: the
//! normalised rank error has standard deviation `σ ≤ 2√2 / k ≈ 2.83 / k`
//! for any `n` and any data, and `2 / k` when (as for continuous data) a
//! query sits at an odd position about half the time. Measured errors are
//! well below this worst case; [`normalized_rank_error`]
//! returns the tighter empirical 99th percentile Apache DataSketches
//! publishes for this algorithm (`2.296 / k^0.9723`, 1.33% at k = 200),
//! which the tests check on every quantile query of several streams.
//!
//! Deterministic by default: the coin is a seeded xorshift64 (Marsaglia
//! 2003) stored in the sketch, so the same updates and merges in the same
//! order give bit-identical sketches, before and after a serde round trip.
//!
//! Non-finite values are ignored (count them with [`super::Moments`]): NaN
//! has no rank, and ±∞ would not survive a JSON round trip.

use serde::{Deserialize, Serialize};

/// Default `k`: normalised rank error ≈ 1.3% (99th percentile), ~2 KiB
/// retained per sketch once warm.
pub const DEFAULT_KLL_K: u16 = 200;

/// Smallest allowed `k`, and the floor on every level's capacity.
pub const MIN_KLL_K: u16 = 8;

/// Capacity ratio between a level and the one above it.
const CAPACITY_DECAY: f64 = 2.0 / 3.0;

/// Seed of the default coin, so default sketches are reproducible.
const DEFAULT_COIN_SEED: u64 = 0x5eed_0f5e_c7a7;

/// Normalised rank error of a single rank or quantile query at 99%
/// confidence, for sketches with parameter `k`: the empirical fit
/// `2.296 / k^0.9723` published by Apache DataSketches for KLL with
/// `c = 2/3` and minimum width 8 (`KllSketch.getNormalizedRankError(k,
/// false)`). For k = 200: 0.0133. The module docs derive the worst-case
/// `σ ≤ 2.83/k` this is consistent with.
pub fn normalized_rank_error(k: u16) -> f64 {
    2.296 / f64::from(k).powf(0.9723)
}

/// Normalised error of a whole PMF/CDF (every split at once, two-sided) at
/// 99% confidence: DataSketches' `2.446 / k^0.9433`. For k = 200: 0.0165.
pub fn normalized_pmf_error(k: u16) -> f64 {
    2.446 / f64::from(k).powf(0.9433)
}

/// xorshift64 (Marsaglia, "Xorshift RNGs", JSS 2003) — one fair bit per
/// compaction; eight bytes of state that serialise with the sketch.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
struct Coin {
    state: u64,
}

impl Coin {
    fn seeded(seed: u64) -> Self {
        // xorshift has the all-zero fixed point; the mixed seed avoids it
        // for every seed but one, which is then remapped.
        let state = super::hash::mix64(seed);
        Self {
            state: if state == 0 { DEFAULT_COIN_SEED } else { state },
        }
    }

    fn flip(&mut self) -> usize {
        let mut x = self.state;
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        self.state = x;
        (x >> 63) as usize
    }
}

/// Mergeable KLL quantile sketch over `f64`.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(try_from = "KllParts")]
pub struct KllSketch {
    k: u16,
    /// Finite values absorbed; equals the total weight of `levels`.
    count: u64,
    // Exact extremes, meaningful only when count > 0.
    min: f64,
    max: f64,
    /// `levels[h]` holds items of weight `2^h`. Level 0 is unsorted;
    /// higher levels are kept sorted, so a compaction merges its sorted
    /// output into the level above in linear time instead of re-sorting:
    /// sorting dominates the update cost, and this halves it.
    levels: Vec<Vec<f64>>,
    coin: Coin,
    /// Reused buffer for those merges, so compaction does not allocate
    /// once warm.
    #[serde(skip)]
    merge_buffer: Vec<f64>,
    /// Items held across all levels (derived).
    #[serde(skip)]
    retained: usize,
    /// Sum of level capacities; reaching it triggers compaction (derived).
    #[serde(skip)]
    retained_limit: usize,
}

impl Default for KllSketch {
    fn default() -> Self {
        Self::new(DEFAULT_KLL_K)
    }
}

impl KllSketch {
    /// Sketch with parameter `k` (clamped to at least [`MIN_KLL_K`]) and the
    /// default coin seed.
    pub fn new(k: u16) -> Self {
        Self::with_seed(k, DEFAULT_COIN_SEED)
    }

    /// Sketch whose compaction coin starts from `seed`.
    pub fn with_seed(k: u16, seed: u64) -> Self {
        let mut sketch = Self {
            k: k.max(MIN_KLL_K),
            count: 0,
            min: 0.0,
            max: 0.0,
            levels: vec![Vec::new()],
            coin: Coin::seeded(seed),
            merge_buffer: Vec::new(),
            retained: 0,
            retained_limit: 0,
        };
        sketch.retained_limit = sketch.total_capacity();
        sketch
    }

    pub fn k(&self) -> u16 {
        self.k
    }

    /// Finite values absorbed (exact).
    pub fn count(&self) -> u64 {
        self.count
    }

    pub fn is_empty(&self) -> bool {
        self.count == 0
    }

    /// Exact minimum of the absorbed values.
    pub fn min(&self) -> Option<f64> {
        (self.count > 0).then_some(self.min)
    }

    /// Exact maximum of the absorbed values.
    pub fn max(&self) -> Option<f64> {
        (self.count > 0).then_some(self.max)
    }

    /// Items currently stored (memory is about 8 bytes each).
    pub fn retained(&self) -> usize {
        self.retained
    }

    /// Normalised rank error bound of this sketch's `k`
    /// ([`normalized_rank_error`]).
    pub fn rank_error_bound(&self) -> f64 {
        normalized_rank_error(self.k)
    }

    /// Adds one value; NaN and ±∞ are ignored. Amortised O(log k); no
    /// allocation once the level buffers have grown to their steady size.
    #[inline]
    pub fn update(&mut self, x: f64) {
        if !x.is_finite() {
            return;
        }
        if self.count == 0 {
            self.min = x;
            self.max = x;
        } else {
            self.min = self.min.min(x);
            self.max = self.max.max(x);
        }
        self.count += 1;
        self.levels[0].push(x);
        self.retained += 1;
        if self.retained >= self.retained_limit {
            self.compress();
        }
    }

    /// Adds every value of a slice.
    pub fn extend(&mut self, values: &[f64]) {
        for &value in values {
            self.update(value);
        }
    }

    /// Absorbs `other` (Karnin et al. §3: concatenate level by level, then
    /// compact). Sketches with different `k` merge to the smaller `k`, whose
    /// error bound then applies.
    pub fn merge(&mut self, other: &KllSketch) {
        if other.count == 0 {
            return;
        }
        if self.count == 0 {
            self.min = other.min;
            self.max = other.max;
        } else {
            self.min = self.min.min(other.min);
            self.max = self.max.max(other.max);
        }
        self.k = self.k.min(other.k);
        while self.levels.len() < other.levels.len() {
            self.levels.push(Vec::new());
        }
        for (height, (level, items)) in self.levels.iter_mut().zip(&other.levels).enumerate() {
            level.extend_from_slice(items);
            if height > 0 {
                level.sort_unstable_by(f64::total_cmp);
            }
        }
        self.count += other.count;
        self.retained += other.retained;
        self.retained_limit = self.total_capacity();
        while self.retained >= self.retained_limit {
            self.compress();
        }
    }

    fn level_capacity(&self, level: usize) -> usize {
        let depth = (self.levels.len() - 1 - level) as i32;
        let capacity = (f64::from(self.k) * CAPACITY_DECAY.powi(depth)).ceil() as usize;
        if level == 0 {
            // Level 0 keeps a full k-item buffer: its compactions carry
            // weight 1 and add the least error, while a large batch
            // amortises the sort that dominates update cost (~2x faster
            // than the paper's shrinking level 0, for ~1.3 KiB more).
            capacity.max(usize::from(self.k))
        } else {
            capacity.max(usize::from(MIN_KLL_K))
        }
    }

    fn total_capacity(&self) -> usize {
        (0..self.levels.len())
            .map(|level| self.level_capacity(level))
            .sum()
    }

    /// Compacts levels bottom-up until the sketch is below its limit again
    /// (the lazy schedule of the reference implementation).
    fn compress(&mut self) {
        let mut level = 0;
        while level < self.levels.len() {
            if self.levels[level].len() >= self.level_capacity(level) {
                if level + 1 == self.levels.len() {
                    self.levels.push(Vec::new());
                    self.retained_limit = self.total_capacity();
                }
                self.compact(level);
                if self.retained < self.retained_limit {
                    return;
                }
            }
            level += 1;
        }
    }

    /// Halves `level` into `level + 1`. With an odd number of items the
    /// smallest stays behind, so the compacted run has even length and the
    /// weight moved up is exactly the weight removed.
    fn compact(&mut self, level: usize) {
        let (lower, upper) = self.levels.split_at_mut(level + 1);
        let source = &mut lower[level];
        let target = &mut upper[0];
        if level == 0 {
            source.sort_unstable_by(f64::total_cmp);
        }
        let kept = source.len() % 2;
        let offset = self.coin.flip();
        let promoted = source[kept + offset..].iter().step_by(2).copied();
        let promoted_count = (source.len() - kept) / 2;

        // Merge the sorted promoted items with the sorted target level.
        let merged = &mut self.merge_buffer;
        merged.clear();
        let mut existing = target.iter().copied().peekable();
        for item in promoted {
            while let Some(&smaller) = existing.peek().filter(|&&value| value < item) {
                merged.push(smaller);
                existing.next();
            }
            merged.push(item);
        }
        merged.extend(existing);
        std::mem::swap(target, merged);

        source.truncate(kept);
        self.retained -= promoted_count;
    }

    /// Sorted, cumulative-weight view for repeated queries: build once per
    /// drift computation instead of once per quantile.
    pub fn sorted_view(&self) -> KllSortedView {
        let mut weighted: Vec<(f64, u64)> = Vec::with_capacity(self.retained);
        for (level, items) in self.levels.iter().enumerate() {
            let weight = 1u64 << level;
            weighted.extend(items.iter().map(|&value| (value, weight)));
        }
        weighted.sort_unstable_by(|a, b| a.0.total_cmp(&b.0));
        let mut cumulative = 0u64;
        let (values, cumulative_weights) = weighted
            .into_iter()
            .map(|(value, weight)| {
                cumulative += weight;
                (value, cumulative)
            })
            .unzip();
        KllSortedView {
            values,
            cumulative_weights,
            count: self.count,
            min: self.min,
            max: self.max,
        }
    }

    /// Approximate `q`-quantile (see [`KllSortedView::quantile`]).
    pub fn quantile(&self, q: f64) -> Option<f64> {
        self.sorted_view().quantile(q)
    }

    /// Approximate normalised rank of `x` (see [`KllSortedView::rank`]).
    pub fn rank(&self, x: f64) -> Option<f64> {
        self.sorted_view().rank(x)
    }

    /// Approximate CDF at `splits` (see [`KllSortedView::cdf`]).
    pub fn cdf(&self, splits: &[f64]) -> Option<Vec<f64>> {
        self.sorted_view().cdf(splits)
    }

    /// Approximate mass between `splits` (see [`KllSortedView::pmf`]).
    pub fn pmf(&self, splits: &[f64]) -> Option<Vec<f64>> {
        self.sorted_view().pmf(splits)
    }
}

/// Equal when the stored state is equal (the scratch buffer and the
/// derived sizes do not count).
impl PartialEq for KllSketch {
    fn eq(&self, other: &Self) -> bool {
        self.k == other.k
            && self.count == other.count
            && self.min.to_bits() == other.min.to_bits()
            && self.max.to_bits() == other.max.to_bits()
            && self.levels == other.levels
            && self.coin == other.coin
    }
}

/// Serialised form, validated on the way in so a corrupted stored sketch
/// is rejected instead of silently answering wrong quantiles.
#[derive(Deserialize)]
struct KllParts {
    k: u16,
    count: u64,
    min: f64,
    max: f64,
    levels: Vec<Vec<f64>>,
    coin: Coin,
}

impl TryFrom<KllParts> for KllSketch {
    type Error = String;

    fn try_from(parts: KllParts) -> Result<Self, String> {
        if parts.k < MIN_KLL_K {
            return Err(format!(
                "KLL k = {} is below the minimum {MIN_KLL_K}",
                parts.k
            ));
        }
        if parts.levels.is_empty() || parts.levels.len() > 64 {
            return Err(format!("KLL sketch has {} levels", parts.levels.len()));
        }
        let weight: u128 = parts
            .levels
            .iter()
            .enumerate()
            .map(|(level, items)| (items.len() as u128) << level)
            .sum();
        if weight != u128::from(parts.count) {
            return Err(format!(
                "KLL levels weigh {weight} but the sketch counts {}",
                parts.count
            ));
        }
        if parts
            .levels
            .iter()
            .flatten()
            .any(|value| !value.is_finite())
        {
            return Err("KLL sketch holds a non-finite item".to_owned());
        }
        if parts.coin.state == 0 {
            return Err("KLL coin state is zero".to_owned());
        }
        let mut levels = parts.levels;
        for level in levels.iter_mut().skip(1) {
            level.sort_unstable_by(f64::total_cmp);
        }
        let mut sketch = Self {
            retained: levels.iter().map(Vec::len).sum(),
            k: parts.k,
            count: parts.count,
            min: parts.min,
            max: parts.max,
            levels,
            coin: parts.coin,
            merge_buffer: Vec::new(),
            retained_limit: 0,
        };
        sketch.retained_limit = sketch.total_capacity();
        while sketch.retained >= sketch.retained_limit {
            sketch.compress();
        }
        Ok(sketch)
    }
}

/// Items of a [`KllSketch`] sorted with cumulative weights. Queries are
/// `O(log retained)`.
#[derive(Debug, Clone, PartialEq)]
pub struct KllSortedView {
    values: Vec<f64>,
    /// `cumulative_weights[i]` = total weight of `values[..=i]`.
    cumulative_weights: Vec<u64>,
    count: u64,
    min: f64,
    max: f64,
}

impl KllSortedView {
    pub fn count(&self) -> u64 {
        self.count
    }

    /// Smallest retained item whose cumulative weight reaches `q·n`
    /// (inverted-CDF definition). `q` is clamped to `[0, 1]`; `q = 0` and
    /// `q = 1` return the exact min and max. `None` when empty or `q` is NaN.
    pub fn quantile(&self, q: f64) -> Option<f64> {
        if self.count == 0 || q.is_nan() {
            return None;
        }
        if q <= 0.0 {
            return Some(self.min);
        }
        if q >= 1.0 {
            return Some(self.max);
        }
        let target = (q * self.count as f64).ceil() as u64;
        let index = self
            .cumulative_weights
            .partition_point(|&weight| weight < target);
        Some(self.values[index.min(self.values.len() - 1)])
    }

    /// Estimated share of values `≤ x`. Exact outside `[min, max)`.
    /// `None` when empty or `x` is NaN.
    pub fn rank(&self, x: f64) -> Option<f64> {
        if self.count == 0 || x.is_nan() {
            return None;
        }
        if x < self.min {
            return Some(0.0);
        }
        if x >= self.max {
            return Some(1.0);
        }
        let below = self.values.partition_point(|&value| value <= x);
        let weight = if below == 0 {
            0
        } else {
            self.cumulative_weights[below - 1]
        };
        Some(weight as f64 / self.count as f64)
    }

    /// `rank(split)` for each split, followed by 1.0: `splits.len() + 1`
    /// non-decreasing values when `splits` is increasing, so consecutive
    /// differences are the masses of the intervals
    /// `(-∞, s₀], (s₀, s₁], …, (s_last, ∞)`.
    pub fn cdf(&self, splits: &[f64]) -> Option<Vec<f64>> {
        if self.count == 0 {
            return None;
        }
        let mut cdf = splits
            .iter()
            .map(|&split| self.rank(split))
            .collect::<Option<Vec<f64>>>()?;
        cdf.push(1.0);
        Some(cdf)
    }

    /// Estimated mass of each interval `(-∞, s₀], (s₀, s₁], …, (s_last, ∞)`.
    pub fn pmf(&self, splits: &[f64]) -> Option<Vec<f64>> {
        let cdf = self.cdf(splits)?;
        let mut previous = 0.0;
        Some(
            cdf.into_iter()
                .map(|cumulative| {
                    let mass = cumulative - previous;
                    previous = cumulative;
                    mass
                })
                .collect(),
        )
    }
}
