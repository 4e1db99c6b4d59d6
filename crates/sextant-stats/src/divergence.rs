//! Divergences between two discrete distributions given as equal-length
//! slices of non-negative weights (bin counts or shares, bin by bin).
//!
//! Sums use numpy's pairwise order (`special::pairwise_sum_by`), so the
//! scipy-defined quantities agree with scipy to the last few bits.
//!
//! Every function panics if the two slices differ in length: that is a
//! bug in the caller's binning, not a property of the data.

use crate::special::pairwise_sum_by;

/// Logarithm base for the Jensen-Shannon distance.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LogBase {
    /// Bits: the distance lies in [0, 1].
    Two,
    /// Nats: the distance lies in [0, sqrt(ln 2)].
    E,
}

fn assert_same_length(p: &[f64], q: &[f64]) {
    assert_eq!(
        p.len(),
        q.len(),
        "the two distributions must have the same number of bins"
    );
}

/// scipy's `special.rel_entr(x, y)`: `x ln(x/y)` for x, y > 0, 0 when
/// x = 0 and y ≥ 0, +∞ otherwise (negative weights or x > 0 = y).
fn relative_entropy_term(x: f64, y: f64) -> f64 {
    if x.is_nan() || y.is_nan() {
        f64::NAN
    } else if x > 0.0 && y > 0.0 {
        x * (x / y).ln()
    } else if x == 0.0 && y >= 0.0 {
        0.0
    } else {
        f64::INFINITY
    }
}

/// Population Stability Index `Σ (r_i - c_i) ln(r_i / c_i)` over shares
/// (Karakoulas 2004; the formula of Evidently's `psi` stattest).
///
/// The shares are used as given, not normalised. A bin that is empty in
/// exactly one distribution makes the index +∞, so callers replace zero
/// shares first (Evidently substitutes 0.0001). A bin empty in both
/// contributes 0 — its limit along r = c — where numpy would give NaN.
pub fn psi(reference: &[f64], current: &[f64]) -> f64 {
    assert_same_length(reference, current);
    pairwise_sum_by(reference.len(), |i| {
        let (r, c) = (reference[i], current[i]);
        if r == 0.0 && c == 0.0 {
            0.0
        } else {
            (r - c) * (r / c).ln()
        }
    })
}

/// `(1+d) ln(1+d) + (1-d) ln(1-d)`, the Jensen-Shannon contribution of a
/// bin per unit of its midpoint weight, where `d = (p - q) / (p + q)`.
/// For |d| ≤ 1/2 by its series `Σ_{k≥1} d^(2k) / (k (2k-1))`, whose terms
/// are all non-negative: nearly equal bins keep full relative accuracy
/// instead of cancelling to rounding noise.
fn symmetric_entropy_excess(d: f64) -> f64 {
    if d.abs() > 0.5 {
        let x_ln_1p = |t: f64| {
            if t == -1.0 {
                0.0
            } else {
                (1.0 + t) * t.ln_1p()
            }
        };
        return x_ln_1p(d) + x_ln_1p(-d);
    }
    let d_squared = d * d;
    let mut power = d_squared;
    let mut sum = 0.0;
    let mut k = 1.0;
    loop {
        let term = power / (k * (2.0 * k - 1.0));
        sum += term;
        if term <= sum * f64::EPSILON {
            return sum;
        }
        power *= d_squared;
        k += 1.0;
    }
}

/// Jensen-Shannon distance, the quantity of
/// `scipy.spatial.distance.jensenshannon(p, q, base)`: both inputs are
/// normalised to sum 1, `m = (p + q) / 2`, and the result is
/// `sqrt((KL(p‖m) + KL(q‖m)) / (2 ln base))` (Lin 1991; Endres &
/// Schindelin 2003: the square root of the JS divergence is a metric).
///
/// Evaluation differs from scipy's to avoid its cancellation: per bin,
/// `p ln(p/m) + q ln(q/m) = m · [(1+d) ln(1+d) + (1-d) ln(1-d)]` with
/// `d = (p - q) / (p + q)`, summed as a series of non-negative terms. Where
/// scipy's sum does not cancel the two agree to ~1e-15; for nearly equal
/// inputs (distance ≲ 1e-7) scipy's value is dominated by rounding
/// (it can be off by a factor of several, or NaN from a negative sum)
/// while this one stays accurate. An all-zero input gives NaN, as scipy.
pub fn jensen_shannon_distance(p: &[f64], q: &[f64], base: LogBase) -> f64 {
    assert_same_length(p, q);
    let n = p.len();
    let p_total = pairwise_sum_by(n, |i| p[i]);
    let q_total = pairwise_sum_by(n, |i| q[i]);
    let twice_divergence = pairwise_sum_by(n, |i| {
        let (p_share, q_share) = (p[i] / p_total, q[i] / q_total);
        let sum = p_share + q_share;
        if sum.is_nan() {
            return f64::NAN;
        }
        if sum == 0.0 {
            return 0.0; // Bin empty in both (scipy's rel_entr(0, 0) = 0).
        }
        if p_share < 0.0 || q_share < 0.0 {
            return f64::INFINITY; // scipy's rel_entr of a negative weight
        }
        0.5 * sum * symmetric_entropy_excess((p_share - q_share) / sum)
    });
    let divergence = match base {
        LogBase::Two => twice_divergence / std::f64::consts::LN_2,
        LogBase::E => twice_divergence,
    };
    (divergence / 2.0).sqrt()
}

/// Kullback-Leibler divergence `KL(p‖q) = Σ p_i ln(p_i / q_i)` in nats,
/// as `scipy.stats.entropy(p, q)`: both inputs are normalised to sum 1
/// first. A bin with p > 0 and q = 0 makes it +∞; bins with p = 0 add 0.
pub fn kl_divergence(p: &[f64], q: &[f64]) -> f64 {
    assert_same_length(p, q);
    let n = p.len();
    let p_total = pairwise_sum_by(n, |i| p[i]);
    let q_total = pairwise_sum_by(n, |i| q[i]);
    pairwise_sum_by(n, |i| relative_entropy_term(p[i] / p_total, q[i] / q_total))
}

/// Hellinger distance `H = sqrt(1 - Σ sqrt(p_i q_i))` between the
/// normalised shares (Hellinger 1909; with this 1/2 normalisation it lies
/// in [0, 1]).
///
/// Computed in the equivalent form `sqrt(Σ (√p_i - √q_i)² / 2)`, with
/// `√p - √q = (p - q) / (√p + √q)`: it cannot go negative and keeps
/// relative accuracy when H is small (the Bhattacharyya form `1 - BC`
/// cancels there). Evidently's
/// `hellinger` stattest computes `sqrt(Σ (√p - √q)²) / √2` on binned
/// shares that already sum to 1: the same quantity; normalising here also
/// accepts raw counts.
pub fn hellinger(p: &[f64], q: &[f64]) -> f64 {
    assert_same_length(p, q);
    let n = p.len();
    let p_total = pairwise_sum_by(n, |i| p[i]);
    let q_total = pairwise_sum_by(n, |i| q[i]);
    let squared_distance = pairwise_sum_by(n, |i| {
        let (p_share, q_share) = (p[i] / p_total, q[i] / q_total);
        let root_sum = p_share.sqrt() + q_share.sqrt();
        if root_sum == 0.0 {
            return 0.0;
        }
        // √p - √q as (p - q) / (√p + √q): p - q is exact for close shares,
        // where subtracting two rounded roots would leave only noise.
        let difference = (p_share - q_share) / root_sum;
        difference * difference
    });
    (squared_distance / 2.0).sqrt()
}

/// L-infinity (Chebyshev) distance `max_i |p_i - q_i|` between the
/// normalised shares, the categorical drift measure of TensorFlow Data
/// Validation. Lies in [0, 1]; 0 for empty input.
pub fn l_infinity(p: &[f64], q: &[f64]) -> f64 {
    assert_same_length(p, q);
    let n = p.len();
    let p_total = pairwise_sum_by(n, |i| p[i]);
    let q_total = pairwise_sum_by(n, |i| q[i]);
    (0..n)
        .map(|i| (p[i] / p_total - q[i] / q_total).abs())
        .fold(0.0, |largest: f64, d| {
            if d.is_nan() || d > largest {
                d
            } else {
                largest
            }
        })
}
