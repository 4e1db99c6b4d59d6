//! HyperLogLog distinct counting (Flajolet, Fusy, Gandouet & Meunier,
//! "HyperLogLog: the analysis of a near-optimal cardinality estimation
//! algorithm", AofA 2007).
//!
//! A 64-bit hash picks one of `m = 2^p` registers with its top `p` bits;
//! the register keeps the largest "rank" (position of the first 1 bit in
//! the remaining `64 − p` bits) seen. Merging is a register-wise maximum,
//! so `merge(hll(A), hll(B))` is bit-identical to `hll(A ∪ B)`.
//!
//! The estimate is Ertl's improved estimator ("New cardinality estimation
//! algorithms for HyperLogLog sketches", arXiv:1702.01284, 2017, Algorithm
//! 6). It replaces the 2007 paper's switch between linear counting and the
//! raw estimate — whose bias bump around `n ≈ 2.5m` HLL++ (Heule, Nunkesser
//! & Hall, EDBT 2013) removes with empirical tables of a few hundred
//! constants per precision — by a closed form over the register histogram
//! that is nearly unbiased from 0 to far beyond 2^50 distinct values.
//! Relative standard error is `1.04 / √m` (1.63% at the default p = 12,
//! 4 KiB of registers).
//!
//! Values are hashed with the crate's stable hash ([`super::hash`]), so a
//! sketch persisted by one process merges correctly with one from another.

use serde::{Deserialize, Serialize};

use super::hash::{hash_bytes, hash_f64};
use super::MergeError;

/// Default precision: 4096 registers, 1.63% standard error.
pub const DEFAULT_HLL_PRECISION: u8 = 12;
pub const MIN_HLL_PRECISION: u8 = 4;
pub const MAX_HLL_PRECISION: u8 = 18;

/// HyperLogLog sketch with `2^precision` one-byte registers.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(try_from = "HyperLogLogParts")]
pub struct HyperLogLog {
    precision: u8,
    registers: Vec<u8>,
}

impl Default for HyperLogLog {
    fn default() -> Self {
        Self::new(DEFAULT_HLL_PRECISION)
    }
}

impl HyperLogLog {
    /// Sketch with `2^precision` registers; `precision` is clamped to
    /// `[MIN_HLL_PRECISION, MAX_HLL_PRECISION]`.
    pub fn new(precision: u8) -> Self {
        let precision = precision.clamp(MIN_HLL_PRECISION, MAX_HLL_PRECISION);
        Self {
            precision,
            registers: vec![0; 1 << precision],
        }
    }

    pub fn precision(&self) -> u8 {
        self.precision
    }

    /// Relative standard error of [`HyperLogLog::estimate`], `1.04 / √m`.
    pub fn standard_error(&self) -> f64 {
        1.04 / (self.registers.len() as f64).sqrt()
    }

    /// Adds a value by its precomputed 64-bit hash (which must come from a
    /// stable, well-mixed hash for sketches that are persisted).
    #[inline]
    pub fn insert_hash(&mut self, hash: u64) {
        let rank_bits = 64 - u32::from(self.precision);
        let register = (hash >> rank_bits) as usize;
        // Position of the first 1 in the low `rank_bits` bits, counted from
        // 1; `rank_bits + 1` when they are all zero.
        let rank = ((hash << self.precision).leading_zeros().min(rank_bits) + 1) as u8;
        let slot = &mut self.registers[register];
        if rank > *slot {
            *slot = rank;
        }
    }

    /// Adds a number; NaN is ignored, `-0.0` counts as `0.0`.
    #[inline]
    pub fn insert_f64(&mut self, value: f64) {
        if !value.is_nan() {
            self.insert_hash(hash_f64(value));
        }
    }

    /// Adds a string by its UTF-8 bytes.
    #[inline]
    pub fn insert_str(&mut self, value: &str) {
        self.insert_hash(hash_bytes(value.as_bytes()));
    }

    /// Register-wise maximum; fails when precisions differ.
    pub fn merge(&mut self, other: &HyperLogLog) -> Result<(), MergeError> {
        if self.precision != other.precision {
            return Err(MergeError::PrecisionsDiffer {
                left: self.precision,
                right: other.precision,
            });
        }
        for (mine, theirs) in self.registers.iter_mut().zip(&other.registers) {
            *mine = (*mine).max(*theirs);
        }
        Ok(())
    }

    /// Estimated number of distinct values (Ertl 2017, Algorithm 6).
    pub fn estimate(&self) -> f64 {
        let rank_bits = 64 - usize::from(self.precision);
        let mut multiplicity = vec![0u32; rank_bits + 2];
        for &register in &self.registers {
            multiplicity[usize::from(register)] += 1;
        }
        let m = self.registers.len() as f64;
        let mut z = m * tau(1.0 - f64::from(multiplicity[rank_bits + 1]) / m);
        for k in (1..=rank_bits).rev() {
            z = 0.5 * (z + f64::from(multiplicity[k]));
        }
        z += m * sigma(f64::from(multiplicity[0]) / m);
        let alpha_infinity = 1.0 / (2.0 * std::f64::consts::LN_2);
        alpha_infinity * m * m / z
    }
}

/// σ(x) = x + Σ_{k≥1} x^{2^k} 2^{k−1} (Ertl 2017, eq. 24); ∞ at x = 1, which
/// makes the estimate of an empty sketch 0.
fn sigma(mut x: f64) -> f64 {
    if x == 1.0 {
        return f64::INFINITY;
    }
    let mut y = 1.0;
    let mut z = x;
    loop {
        x *= x;
        let previous = z;
        z += x * y;
        y += y;
        if z == previous {
            return z;
        }
    }
}

/// τ(x) = (1 − x − Σ_{k≥1} (1 − x^{2^{−k}})² 2^{−k}) / 3 (Ertl 2017, eq. 28).
fn tau(mut x: f64) -> f64 {
    if x == 0.0 || x == 1.0 {
        return 0.0;
    }
    let mut y = 1.0;
    let mut z = 1.0 - x;
    loop {
        x = x.sqrt();
        let previous = z;
        y *= 0.5;
        z -= (1.0 - x).powi(2) * y;
        if z == previous {
            return z / 3.0;
        }
    }
}

#[derive(Deserialize)]
struct HyperLogLogParts {
    precision: u8,
    registers: Vec<u8>,
}

impl TryFrom<HyperLogLogParts> for HyperLogLog {
    type Error = String;

    fn try_from(parts: HyperLogLogParts) -> Result<Self, String> {
        if !(MIN_HLL_PRECISION..=MAX_HLL_PRECISION).contains(&parts.precision) {
            return Err(format!(
                "HyperLogLog precision {} is out of range",
                parts.precision
            ));
        }
        if parts.registers.len() != 1 << parts.precision {
            return Err(format!(
                "HyperLogLog of precision {} needs {} registers, got {}",
                parts.precision,
                1u32 << parts.precision,
                parts.registers.len()
            ));
        }
        let max_rank = 64 - parts.precision + 1;
        if parts.registers.iter().any(|&register| register > max_rank) {
            return Err(format!(
                "HyperLogLog register above the maximum rank {max_rank}"
            ));
        }
        Ok(Self {
            precision: parts.precision,
            registers: parts.registers,
        })
    }
}
