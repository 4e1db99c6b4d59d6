//! Floating-point reductions ordered exactly as numpy orders them, so sums
//! reproduce scipy's results bit for bit rather than merely closely.

/// `np.sum` of a contiguous `float64` array: `0.0 + pairwise(values)`, where
/// numpy's pairwise summation adds blocks of up to 128 elements with eight
/// interleaved accumulators and splits larger arrays in halves rounded down to
/// a multiple of eight (numpy `loops_utils.h.src`, `pairwise_sum`).
pub(crate) fn numpy_sum(values: &[f64]) -> f64 {
    0.0 + pairwise_sum(values)
}

fn pairwise_sum(values: &[f64]) -> f64 {
    const UNROLL: usize = 8;
    const BLOCK: usize = 128;
    let n = values.len();
    if n < UNROLL {
        let mut total = 0.0;
        for &v in values {
            total += v;
        }
        total
    } else if n <= BLOCK {
        let mut acc = [0.0; UNROLL];
        acc.copy_from_slice(&values[..UNROLL]);
        let full = n - n % UNROLL;
        let mut i = UNROLL;
        while i < full {
            for (lane, slot) in acc.iter_mut().enumerate() {
                *slot += values[i + lane];
            }
            i += UNROLL;
        }
        let mut total =
            ((acc[0] + acc[1]) + (acc[2] + acc[3])) + ((acc[4] + acc[5]) + (acc[6] + acc[7]));
        for &v in &values[full..] {
            total += v;
        }
        total
    } else {
        let mut half = n / 2;
        half -= half % UNROLL;
        pairwise_sum(&values[..half]) + pairwise_sum(&values[half..])
    }
}

/// `x // y` on Python floats (floor division via `fmod`, as CPython's
/// `float_floor_div` does), used where scipy floor-divides float values.
pub(crate) fn python_floor_div(x: f64, y: f64) -> f64 {
    let rem = x % y;
    let mut div = (x - rem) / y;
    if rem != 0.0 && ((y < 0.0) != (rem < 0.0)) {
        div -= 1.0;
    }
    if div == 0.0 {
        return 0.0_f64.copysign(x / y);
    }
    let floor = div.floor();
    if div - floor > 0.5 {
        floor + 1.0
    } else {
        floor
    }
}
