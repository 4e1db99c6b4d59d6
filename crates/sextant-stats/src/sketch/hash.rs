//! Stable 64-bit hashing for sketches that are persisted and merged.
//!
//! A HyperLogLog written by one serving process is merged with one written
//! by another process, on another machine, possibly by another release, so
//! the same value must hash to the same bits everywhere. `std`'s
//! `DefaultHasher` promises none of that, so the crate carries its own:
//! a wyhash-style folded multiply over 16-byte blocks (Wang Yi, wyhash
//! v4 constants) followed by the SplitMix64 finaliser (Steele, Lea & Flood,
//! "Fast splittable pseudorandom number generators", OOPSLA 2014), which
//! gives full avalanche so the high bits (HLL register index) and the
//! remaining bits (HLL rank) are independent.
//!
//! Bytes are read little-endian explicitly, so results do not depend on
//! the platform. The outputs are pinned by a test: changing this function
//! invalidates every stored HyperLogLog.
//!
//! Not a cryptographic or DoS-resistant hash. Where it keys an in-memory
//! map (`FrequentItems`, `CategoryCounts`) the map holds at most a bounded
//! number of entries, so adversarial collisions can only cost a bounded
//! probe length.

use std::hash::{BuildHasher, Hasher};

const SECRET0: u64 = 0xa076_1d64_78bd_642f;
const SECRET1: u64 = 0xe703_7ed1_a0b4_28db;
const SECRET2: u64 = 0x8ebc_6af0_9c88_c6e3;

/// 64×64→128-bit multiply folded back to 64 bits by xoring the halves
/// (wyhash's `mum`): every input bit influences the middle output bits.
#[inline]
fn folded_multiply(a: u64, b: u64) -> u64 {
    let product = u128::from(a) * u128::from(b);
    (product as u64) ^ ((product >> 64) as u64)
}

/// SplitMix64 finaliser: a bijection on `u64` with full avalanche.
#[inline]
pub fn mix64(mut z: u64) -> u64 {
    z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
    z ^ (z >> 31)
}

/// Up to 8 bytes as a little-endian word, zero-padded. Short inputs are
/// read with overlapping loads rather than copied into a padded buffer:
/// the copy's byte stores followed by one 8-byte load defeat store
/// forwarding, and that stall was most of the cost of hashing a short
/// category label. Overlapping bytes land at the same position twice, so
/// the result is the padded buffer's, bit for bit.
#[inline]
fn read_u64_le(bytes: &[u8]) -> u64 {
    let n = bytes.len();
    let u32_at = |at: usize| {
        u64::from(u32::from_le_bytes([
            bytes[at],
            bytes[at + 1],
            bytes[at + 2],
            bytes[at + 3],
        ]))
    };
    match n {
        8.. => u64::from_le_bytes([
            bytes[0], bytes[1], bytes[2], bytes[3], bytes[4], bytes[5], bytes[6], bytes[7],
        ]),
        4..=7 => u32_at(0) | u32_at(n - 4) << (8 * (n - 4)),
        1..=3 => {
            u64::from(bytes[0])
                | u64::from(bytes[n / 2]) << (8 * (n / 2))
                | u64::from(bytes[n - 1]) << (8 * (n - 1))
        }
        0 => 0,
    }
}

/// Stable hash of a byte string.
#[inline]
pub fn hash_bytes(bytes: &[u8]) -> u64 {
    hash_bytes_seeded(bytes, 0)
}

/// Stable hash of a byte string, continuing from `seed`.
#[inline]
pub fn hash_bytes_seeded(bytes: &[u8], seed: u64) -> u64 {
    let mut state = seed ^ SECRET0;
    let mut blocks = bytes.chunks_exact(16);
    for block in &mut blocks {
        let low = read_u64_le(&block[..8]);
        let high = read_u64_le(&block[8..]);
        state = folded_multiply(low ^ SECRET1, high ^ state);
    }
    let tail = blocks.remainder();
    let (low, high) = if tail.len() > 8 {
        (read_u64_le(&tail[..8]), read_u64_le(&tail[8..]))
    } else {
        (read_u64_le(tail), 0)
    };
    // The length separates "a" from "a\0", which pad to the same block.
    state = folded_multiply(low ^ SECRET1, high ^ state ^ SECRET2);
    mix64(state ^ bytes.len() as u64)
}

/// Stable hash of a float by value: `-0.0` and `0.0` hash alike, as they
/// compare equal. NaN payloads are not canonicalised; callers skip NaN.
#[inline]
pub fn hash_f64(value: f64) -> u64 {
    let canonical = if value == 0.0 { 0.0f64 } else { value };
    mix64(canonical.to_bits() ^ SECRET0)
}

/// [`Hasher`] over [`hash_bytes_seeded`], for the in-memory maps the
/// sketches keep (faster than SipHash). Its seed is drawn once per process:
/// the maps' keys come from uploaded data (a reference's categories), and
/// with a seed known in advance crafted keys could share slots and make
/// each lookup a scan. Nothing depends on the maps' order.
#[derive(Debug, Clone, Copy)]
pub struct MapHasher {
    state: u64,
}

impl Hasher for MapHasher {
    #[inline]
    fn finish(&self) -> u64 {
        self.state
    }

    #[inline]
    fn write(&mut self, bytes: &[u8]) {
        self.state = hash_bytes_seeded(bytes, self.state);
    }

    // `str` hashes as its bytes then a 0xff terminator; a full block hash
    // for that one byte would double the cost of every lookup.
    #[inline]
    fn write_u8(&mut self, byte: u8) {
        self.state = mix64(self.state ^ u64::from(byte));
    }
}

/// [`BuildHasher`] producing [`MapHasher`]s.
#[derive(Debug, Default, Clone, Copy)]
pub struct MapBuildHasher;

impl BuildHasher for MapBuildHasher {
    type Hasher = MapHasher;

    #[inline]
    fn build_hasher(&self) -> MapHasher {
        static SEED: std::sync::OnceLock<u64> = std::sync::OnceLock::new();
        let seed =
            *SEED.get_or_init(|| std::collections::hash_map::RandomState::new().hash_one(0u64));
        MapHasher { state: seed }
    }
}

#[cfg(test)]
mod tests {
    /// The overlapping loads read what a zero-padded copy reads, at every
    /// length a tail can have.
    #[test]
    fn short_reads_equal_a_padded_copy() {
        let bytes: Vec<u8> = (1..=8).map(|b| b * 17).collect();
        for n in 0..=8 {
            let mut word = [0u8; 8];
            word[..n].copy_from_slice(&bytes[..n]);
            assert_eq!(
                super::read_u64_le(&bytes[..n]),
                u64::from_le_bytes(word),
                "{n} bytes"
            );
        }
    }
}
