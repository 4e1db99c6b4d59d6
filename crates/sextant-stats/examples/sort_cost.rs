//! Time of `sort::sorted_floats` (integer keys) against the standard library's unstable
//! comparison sort on normal-looking data: median of 7 runs.
//!
//! `cargo run --release -p sextant-stats --example sort_cost -- [N]`

use std::time::Instant;

fn main() {
    let n: usize = std::env::args()
        .nth(1)
        .and_then(|a| a.parse().ok())
        .unwrap_or(1_000_000);
    let mut state = 0x9e37_79b9_7f4a_7c15u64;
    let values: Vec<f64> = (0..n)
        .map(|_| {
            // Sum of uniforms: bell-shaped, like most monitored features.
            (0..4)
                .map(|_| {
                    state ^= state << 13;
                    state ^= state >> 7;
                    state ^= state << 17;
                    (state >> 11) as f64 / (1u64 << 53) as f64
                })
                .sum::<f64>()
                * 3.0
                - 6.0
        })
        .collect();
    let median = |mut times: Vec<f64>| {
        times.sort_by(f64::total_cmp);
        times[times.len() / 2]
    };
    let radix: Vec<f64> = (0..7)
        .map(|_| {
            let start = Instant::now();
            let sorted = sextant_stats::sort::sorted_floats(values.iter().copied());
            std::hint::black_box(sorted);
            start.elapsed().as_secs_f64() * 1e3
        })
        .collect();
    let comparison: Vec<f64> = (0..7)
        .map(|_| {
            let start = Instant::now();
            let mut sorted = values.clone();
            sorted.sort_unstable_by(f64::total_cmp);
            std::hint::black_box(sorted);
            start.elapsed().as_secs_f64() * 1e3
        })
        .collect();
    println!(
        "{n} values: sorted_floats {:.2} ms, sort_unstable_by(total_cmp) {:.2} ms",
        median(radix),
        median(comparison)
    );
}
