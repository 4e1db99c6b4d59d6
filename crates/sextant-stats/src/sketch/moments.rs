//! Streaming moments: count, missing, min, max, mean and central moments
//! up to the fourth.
//!
//! One value is added with Welford's update (Welford 1962, "Note on a
//! method for calculating corrected sums of squares and products") extended
//! to the third and fourth moments by Terriberry (2007, "Computing
//! higher-order moments online"). Two summaries are combined with the
//! pairwise formula of Chan, Golub & LeVeque (1979, "Updating formulae and
//! a pairwise algorithm for computing sample variances") extended to M3/M4
//! by Pébay (2008, SAND2008-6212, eqs. 2.1–2.3).
//!
//! Both work on deviations from the running mean rather than on raw power
//! sums, which is what keeps the variance of `1e9 + noise` accurate where
//! `Σx²/n − mean²` cancels catastrophically. On top of that the data are
//! shifted by the first value seen ("shifted data", Chan, Golub & LeVeque
//! 1983, "Algorithms for computing the sample variance: analysis and
//! recommendations", §3): Welford alone keeps its running mean at the
//! magnitude of the data, and the mean's rounding (1.2e-7 at 1e9) then
//! costs ~1e-8 relative variance on unit noise; `x − shift` is exact for
//! values near the shift, so the accumulated mean is small and precise.

use serde::{Deserialize, Serialize};

/// Mergeable count, missing count, min, max, mean and central moments.
///
/// NaN is counted as missing; ±∞ is counted separately. Neither enters the
/// moments, min or max — one infinity would make every later mean infinite.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct Moments {
    count: u64,
    nan_count: u64,
    infinite_count: u64,
    // min/max are meaningful only when count > 0: ±∞ sentinels would not
    // survive a JSON round trip (serde_json writes them as null).
    min: f64,
    max: f64,
    /// First finite value seen; the moments below are of `x − shift`.
    shift: f64,
    /// Mean of `x − shift`.
    mean: f64,
    /// Σ (x − mean)²
    m2: f64,
    /// Σ (x − mean)³
    m3: f64,
    /// Σ (x − mean)⁴
    m4: f64,
}

impl Moments {
    pub fn new() -> Self {
        Self::default()
    }

    /// Adds one value (Welford/Terriberry update). No allocation.
    #[inline]
    pub fn update(&mut self, x: f64) {
        if !x.is_finite() {
            if x.is_nan() {
                self.nan_count += 1;
            } else {
                self.infinite_count += 1;
            }
            return;
        }
        let previous_count = self.count as f64;
        self.count += 1;
        let n = self.count as f64;
        if self.count == 1 {
            self.min = x;
            self.max = x;
            self.shift = x;
        } else {
            self.min = self.min.min(x);
            self.max = self.max.max(x);
        }
        let delta = (x - self.shift) - self.mean;
        let delta_n = delta / n;
        let delta_n2 = delta_n * delta_n;
        let term1 = delta * delta_n * previous_count;
        self.mean += delta_n;
        // Order matters: M4 uses the old M3 and M2, M3 the old M2.
        self.m4 += term1 * delta_n2 * (n * n - 3.0 * n + 3.0) + 6.0 * delta_n2 * self.m2
            - 4.0 * delta_n * self.m3;
        self.m3 += term1 * delta_n * (n - 2.0) - 3.0 * delta_n * self.m2;
        self.m2 += term1;
    }

    /// Adds every value of a slice.
    pub fn extend(&mut self, values: &[f64]) {
        for &value in values {
            self.update(value);
        }
    }

    /// Combines with a summary of disjoint data (Chan et al. 1979; Pébay 2008).
    pub fn merge(&mut self, other: &Moments) {
        self.nan_count += other.nan_count;
        self.infinite_count += other.infinite_count;
        if other.count == 0 {
            return;
        }
        if self.count == 0 {
            let (nan_count, infinite_count) = (self.nan_count, self.infinite_count);
            *self = other.clone();
            self.nan_count = nan_count;
            self.infinite_count = infinite_count;
            return;
        }
        let na = self.count as f64;
        let nb = other.count as f64;
        let n = na + nb;
        // Other's mean in this summary's shifted frame; the difference of
        // two nearby shifts is exact.
        let delta = (other.shift - self.shift) + other.mean - self.mean;
        let delta2 = delta * delta;
        let delta3 = delta2 * delta;
        let delta4 = delta2 * delta2;
        let (m2a, m3a, m4a) = (self.m2, self.m3, self.m4);
        let (m2b, m3b, m4b) = (other.m2, other.m3, other.m4);

        self.mean += delta * nb / n;
        self.m2 = m2a + m2b + delta2 * na * nb / n;
        self.m3 = m3a
            + m3b
            + delta3 * na * nb * (na - nb) / (n * n)
            + 3.0 * delta * (na * m2b - nb * m2a) / n;
        self.m4 = m4a
            + m4b
            + delta4 * na * nb * (na * na - na * nb + nb * nb) / (n * n * n)
            + 6.0 * delta2 * (na * na * m2b + nb * nb * m2a) / (n * n)
            + 4.0 * delta * (na * m3b - nb * m3a) / n;
        self.count += other.count;
        self.min = self.min.min(other.min);
        self.max = self.max.max(other.max);
    }

    /// Finite values seen.
    pub fn count(&self) -> u64 {
        self.count
    }

    /// NaN values seen (missing).
    pub fn nan_count(&self) -> u64 {
        self.nan_count
    }

    /// ±∞ values seen.
    pub fn infinite_count(&self) -> u64 {
        self.infinite_count
    }

    /// Every value seen: finite, NaN and infinite.
    pub fn total_count(&self) -> u64 {
        self.count + self.nan_count + self.infinite_count
    }

    /// Share of all values that were NaN; `None` before any value.
    pub fn missing_share(&self) -> Option<f64> {
        let total = self.total_count();
        (total > 0).then(|| self.nan_count as f64 / total as f64)
    }

    pub fn min(&self) -> Option<f64> {
        (self.count > 0).then_some(self.min)
    }

    pub fn max(&self) -> Option<f64> {
        (self.count > 0).then_some(self.max)
    }

    pub fn mean(&self) -> Option<f64> {
        (self.count > 0).then_some(self.shift + self.mean)
    }

    /// Σ (x − mean)², the quantity Chan et al. merge.
    pub fn sum_squared_deviations(&self) -> f64 {
        self.m2
    }

    /// `M2 / (n − ddof)`: `ddof = 0` population, `ddof = 1` sample variance
    /// (numpy's convention). `None` when `n ≤ ddof`.
    pub fn variance(&self, ddof: u64) -> Option<f64> {
        (self.count > ddof).then(|| self.m2 / (self.count - ddof) as f64)
    }

    /// Square root of [`Moments::variance`].
    pub fn std(&self, ddof: u64) -> Option<f64> {
        self.variance(ddof).map(f64::sqrt)
    }

    /// Population skewness g₁ = √n·M3 / M2^{3/2} (scipy `skew(bias=True)`).
    /// `None` for fewer than two values or zero variance.
    pub fn skewness(&self) -> Option<f64> {
        (self.count > 1 && self.m2 > 0.0)
            .then(|| (self.count as f64).sqrt() * self.m3 / self.m2.powf(1.5))
    }

    /// Population excess kurtosis g₂ = n·M4 / M2² − 3 (scipy
    /// `kurtosis(fisher=True, bias=True)`). `None` as for skewness.
    pub fn excess_kurtosis(&self) -> Option<f64> {
        (self.count > 1 && self.m2 > 0.0)
            .then(|| self.count as f64 * self.m4 / (self.m2 * self.m2) - 3.0)
    }
}
