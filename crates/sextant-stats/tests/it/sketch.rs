//! Mergeable sketches: merge(sketch(A), sketch(B)) agrees with sketch(A ∪ B)
//! within each sketch's documented bound, bounds hold against exact
//! answers, and every sketch survives a serde round trip.

use sextant_stats::sketch::hash::{hash_bytes, hash_f64};
use sextant_stats::sketch::{
    normalized_pmf_error, normalized_rank_error, BinnedHistogram, CategoricalSketch,
    CategoryCounts, CategoryVocabulary, ColumnSketch, FrequentItems, Histogram, HyperLogLog,
    KllSketch, MergeError, Moments, NumericSketch, ReferenceBins, DEFAULT_KLL_K,
};

/// SplitMix64 (Steele, Lea & Flood 2014): deterministic test data without
/// a rand dependency.
struct Rng(u64);

impl Rng {
    fn next_u64(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9e37_79b9_7f4a_7c15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
        z ^ (z >> 31)
    }

    /// Uniform on [0, 1) with 53 random bits.
    fn uniform(&mut self) -> f64 {
        (self.next_u64() >> 11) as f64 / (1u64 << 53) as f64
    }

    /// Standard normal (Box–Muller).
    fn normal(&mut self) -> f64 {
        let u1 = 1.0 - self.uniform();
        let u2 = self.uniform();
        (-2.0 * u1.ln()).sqrt() * (std::f64::consts::TAU * u2).cos()
    }

    /// Approximately Zipf(1) over `0..n` by inverse CDF of a log-uniform.
    fn zipf_like(&mut self, n: u64) -> u64 {
        ((n as f64).powf(self.uniform()) - 1.0) as u64
    }
}

fn relative_difference(a: f64, b: f64) -> f64 {
    if a == b {
        0.0
    } else {
        (a - b).abs() / a.abs().max(b.abs())
    }
}

fn round_trip<T: serde::Serialize + serde::de::DeserializeOwned>(value: &T) -> T {
    let json = serde_json::to_string(value).expect("serialise");
    serde_json::from_str(&json).expect("deserialise")
}

// ---------------------------------------------------------------- Moments

/// Exact mean and central moments of `offset + noise[i]`, computed on the
/// noise (exactly representable shifts) with a two-pass algorithm.
fn two_pass_moments(noise: &[f64]) -> (f64, f64, f64, f64) {
    let n = noise.len() as f64;
    let mean = noise.iter().sum::<f64>() / n;
    let (mut m2, mut m3, mut m4) = (0.0, 0.0, 0.0);
    for &x in noise {
        let d = x - mean;
        m2 += d * d;
        m3 += d * d * d;
        m4 += d * d * d * d;
    }
    (mean, m2, m3, m4)
}

#[test]
fn moments_merge_matches_one_pass_and_two_pass_truth() {
    let mut rng = Rng(1);
    for offset in [0.0, 1e9] {
        // Noise on a 2^-20 grid, so offset + noise is exact and the true
        // moments are those of the noise.
        let noise: Vec<f64> = (0..100_000)
            .map(|_| ((rng.normal() * 3.0 + rng.uniform()) * 1048576.0).round() / 1048576.0)
            .collect();
        let values: Vec<f64> = noise.iter().map(|&x| offset + x).collect();

        let mut one_pass = Moments::new();
        one_pass.extend(&values);
        let mut merged = Moments::new();
        for chunk in values.chunks(7_919) {
            let mut part = Moments::new();
            part.extend(chunk);
            merged.merge(&part);
        }

        let (mean, m2, m3, m4) = two_pass_moments(&noise);
        let n = noise.len() as f64;
        assert_eq!(merged.count(), one_pass.count());
        assert_eq!(merged.min(), one_pass.min());
        assert_eq!(merged.max(), one_pass.max());
        let merged_mean = merged.mean().unwrap();
        let one_pass_mean = one_pass.mean().unwrap();
        assert!(relative_difference(merged_mean, one_pass_mean) < 1e-12);
        assert!(relative_difference(merged_mean, offset + mean) < 1e-12);
        let merged_var = merged.variance(1).unwrap();
        let one_pass_var = one_pass.variance(1).unwrap();
        let true_var = m2 / (n - 1.0);
        println!(
            "offset {offset:e}: variance rel. diff merge/one-pass {:.2e}, merge/truth {:.2e}, one-pass/truth {:.2e}",
            relative_difference(merged_var, one_pass_var),
            relative_difference(merged_var, true_var),
            relative_difference(one_pass_var, true_var),
        );
        assert!(relative_difference(merged_var, one_pass_var) < 1e-12);
        assert!(relative_difference(merged_var, true_var) < 1e-12);
        assert!(relative_difference(one_pass_var, true_var) < 1e-12);
        let true_skew = n.sqrt() * m3 / m2.powf(1.5);
        let true_kurt = n * m4 / (m2 * m2) - 3.0;
        // Skewness is near zero here, so compare absolutely.
        assert!((merged.skewness().unwrap() - true_skew).abs() < 1e-9);
        assert!((one_pass.skewness().unwrap() - true_skew).abs() < 1e-9);
        assert!((merged.excess_kurtosis().unwrap() - true_kurt).abs() < 1e-9);
        assert!((one_pass.excess_kurtosis().unwrap() - true_kurt).abs() < 1e-9);

        if offset > 0.0 {
            // The textbook Σx²/n − mean² loses every digit at this offset.
            let naive_mean = values.iter().sum::<f64>() / n;
            let naive_var =
                (values.iter().map(|x| x * x).sum::<f64>() / n - naive_mean * naive_mean) * n
                    / (n - 1.0);
            assert!(
                relative_difference(naive_var, true_var) > 1e-3,
                "naive {naive_var} vs {true_var}"
            );
        }
    }
}

#[test]
fn moments_count_missing_and_infinite_separately() {
    let mut moments = Moments::new();
    assert_eq!(moments.mean(), None);
    assert_eq!(moments.variance(0), None);
    moments.extend(&[
        1.0,
        f64::NAN,
        3.0,
        f64::INFINITY,
        f64::NEG_INFINITY,
        f64::NAN,
    ]);
    assert_eq!(moments.count(), 2);
    assert_eq!(moments.nan_count(), 2);
    assert_eq!(moments.infinite_count(), 2);
    assert_eq!(moments.total_count(), 6);
    assert_eq!(moments.mean(), Some(2.0));
    assert_eq!(moments.min(), Some(1.0));
    assert_eq!(moments.max(), Some(3.0));
    assert_eq!(moments.variance(0), Some(1.0));
    assert_eq!(moments.variance(1), Some(2.0));
    assert_eq!(moments.variance(2), None);
    assert_eq!(moments.missing_share(), Some(2.0 / 6.0));

    // Merging into and from empty summaries keeps the missing counts.
    let mut only_missing = Moments::new();
    only_missing.update(f64::NAN);
    let mut merged = only_missing.clone();
    merged.merge(&moments);
    assert_eq!(merged.nan_count(), 3);
    assert_eq!(merged.mean(), Some(2.0));
    moments.merge(&only_missing);
    assert_eq!(moments, merged);

    assert_eq!(round_trip(&Moments::new()), Moments::new());
    assert_eq!(round_trip(&moments), moments);
}

// ---------------------------------------------------------------- KLL

/// Largest normalised rank error of the sketch's quantiles at q = 0.01 …
/// 0.99 against the sorted data: distance from q to the returned value's
/// true rank interval [#{< x}/n, #{≤ x}/n].
fn max_quantile_rank_error(sketch: &KllSketch, sorted: &[f64]) -> f64 {
    let view = sketch.sorted_view();
    let n = sorted.len() as f64;
    (1..100)
        .map(|i| {
            let q = f64::from(i) / 100.0;
            let x = view.quantile(q).unwrap();
            let below = sorted.partition_point(|&v| v < x) as f64 / n;
            let at_or_below = sorted.partition_point(|&v| v <= x) as f64 / n;
            if q < below {
                below - q
            } else if q > at_or_below {
                q - at_or_below
            } else {
                0.0
            }
        })
        .fold(0.0, f64::max)
}

/// Largest |estimated − true| rank at the data's exact percentiles.
fn max_rank_error(sketch: &KllSketch, sorted: &[f64]) -> f64 {
    let view = sketch.sorted_view();
    let n = sorted.len();
    (1..100)
        .map(|i| {
            let x = sorted[i * n / 100];
            let truth = sorted.partition_point(|&v| v <= x) as f64 / n as f64;
            (view.rank(x).unwrap() - truth).abs()
        })
        .fold(0.0, f64::max)
}

fn sorted(values: &[f64]) -> Vec<f64> {
    let mut sorted = values.to_vec();
    sorted.sort_unstable_by(f64::total_cmp);
    sorted
}

#[test]
fn kll_rank_error_within_bound_for_one_pass_and_merged_windows() {
    let k = DEFAULT_KLL_K;
    let bound = normalized_rank_error(k);
    let mut worst: f64 = 0.0;
    for seed in 0..4u64 {
        let mut rng = Rng(100 + seed);
        let n = 200_000;
        let values: Vec<f64> = match seed % 2 {
            0 => (0..n).map(|_| rng.normal()).collect(),
            // Skewed, heavy-tailed (log-normal) data.
            _ => (0..n).map(|_| (2.0 * rng.normal()).exp()).collect(),
        };
        let truth = sorted(&values);

        let mut one_pass = KllSketch::with_seed(k, seed);
        one_pass.extend(&values);
        // 5-minute windows rolled up to an hour: 12 sketches merged in
        // sequence, each with its own coin.
        let mut hour = KllSketch::with_seed(k, seed);
        for (window, chunk) in values.chunks(n / 12 + 1).enumerate() {
            let mut part = KllSketch::with_seed(k, seed * 1000 + window as u64);
            part.extend(chunk);
            hour.merge(&part);
        }
        // And a balanced tree of merges.
        let mut leaves: Vec<KllSketch> = values
            .chunks(n / 16)
            .enumerate()
            .map(|(leaf, chunk)| {
                let mut part = KllSketch::with_seed(k, 7 + leaf as u64);
                part.extend(chunk);
                part
            })
            .collect();
        while leaves.len() > 1 {
            leaves = leaves
                .chunks(2)
                .map(|pair| {
                    let mut merged = pair[0].clone();
                    if let Some(right) = pair.get(1) {
                        merged.merge(right);
                    }
                    merged
                })
                .collect();
        }
        let tree = leaves.pop().unwrap();

        for (name, sketch) in [
            ("one pass", &one_pass),
            ("12 windows", &hour),
            ("tree", &tree),
        ] {
            assert_eq!(sketch.count(), n as u64);
            assert_eq!(sketch.min(), Some(truth[0]));
            assert_eq!(sketch.max(), Some(truth[n - 1]));
            assert_eq!(sketch.quantile(0.0), Some(truth[0]));
            assert_eq!(sketch.quantile(1.0), Some(truth[n - 1]));
            let quantile_error = max_quantile_rank_error(sketch, &truth);
            let rank_error = max_rank_error(sketch, &truth);
            println!(
                "seed {seed} {name}: retained {}, max quantile rank error {quantile_error:.4}, max rank error {rank_error:.4} (bound {bound:.4})",
                sketch.retained()
            );
            worst = worst.max(quantile_error).max(rank_error);
            assert!(
                quantile_error <= bound,
                "{name}: {quantile_error} > {bound}"
            );
            assert!(rank_error <= bound, "{name}: {rank_error} > {bound}");
        }
        // The CDF at many splits at once stays within the PMF bound.
        let splits: Vec<f64> = (1..20).map(|i| truth[i * n / 20]).collect();
        let cdf = hour.cdf(&splits).unwrap();
        assert_eq!(cdf.len(), splits.len() + 1);
        assert_eq!(cdf[splits.len()], 1.0);
        for (i, (&split, &estimate)) in splits.iter().zip(&cdf).enumerate() {
            let exact = truth.partition_point(|&v| v <= split) as f64 / n as f64;
            assert!(
                (estimate - exact).abs() <= normalized_pmf_error(k),
                "split {i}"
            );
        }
        let pmf = hour.pmf(&splits).unwrap();
        assert!((pmf.iter().sum::<f64>() - 1.0).abs() < 1e-12);
    }
    println!("worst normalised rank error over all runs: {worst:.4}, bound {bound:.4}");
}

#[test]
fn kll_is_exact_while_small_and_ignores_non_finite() {
    let mut sketch = KllSketch::new(DEFAULT_KLL_K);
    assert_eq!(sketch.quantile(0.5), None);
    assert_eq!(sketch.rank(1.0), None);
    for x in [5.0, 1.0, f64::NAN, 3.0, 2.0, f64::INFINITY, 4.0] {
        sketch.update(x);
    }
    assert_eq!(sketch.count(), 5);
    assert_eq!(sketch.quantile(0.5), Some(3.0));
    assert_eq!(sketch.quantile(0.2), Some(1.0));
    assert_eq!(sketch.quantile(0.21), Some(2.0));
    assert_eq!(sketch.rank(2.5), Some(0.4));
    assert_eq!(sketch.rank(0.0), Some(0.0));
    assert_eq!(sketch.rank(5.0), Some(1.0));
    assert_eq!(sketch.cdf(&[1.0, 3.0]), Some(vec![0.2, 0.6, 1.0]));
}

#[test]
fn kll_is_deterministic_and_round_trips() {
    let mut rng = Rng(9);
    let values: Vec<f64> = (0..50_000).map(|_| rng.uniform()).collect();
    let mut a = KllSketch::default();
    let mut b = KllSketch::default();
    a.extend(&values);
    b.extend(&values);
    assert_eq!(a, b, "same seed and input, same sketch");

    let mut restored = round_trip(&a);
    assert_eq!(restored, a);
    // The coin state travels with the sketch: both continue identically.
    a.extend(&values[..10_000]);
    restored.extend(&values[..10_000]);
    assert_eq!(restored, a);

    let corrupted =
        serde_json::to_string(&a)
            .unwrap()
            .replacen("\"count\":60000", "\"count\":60001", 1);
    assert!(serde_json::from_str::<KllSketch>(&corrupted).is_err());
}

#[test]
fn kll_merges_different_k_to_the_smaller() {
    let mut small = KllSketch::new(64);
    let mut large = KllSketch::new(400);
    let values: Vec<f64> = (0..100_000).map(f64::from).collect();
    small.extend(&values[..50_000]);
    large.extend(&values[50_000..]);
    large.merge(&small);
    assert_eq!(large.k(), 64);
    assert_eq!(large.count(), 100_000);
    let median = large.quantile(0.5).unwrap();
    assert!((median / 100_000.0 - 0.5).abs() <= normalized_rank_error(64));
}

// ---------------------------------------------------------------- Histograms

#[test]
fn reference_deciles_on_continuous_data_hold_a_tenth_each() {
    let mut rng = Rng(3);
    let reference: Vec<f64> = (0..10_000).map(|_| rng.normal()).collect();
    let bins = ReferenceBins::deciles(&reference);
    assert_eq!(bins.bin_count(), 10);
    let mut histogram = Histogram::for_bins(&bins);
    for &x in &reference {
        histogram.update(&bins, x);
    }
    assert!(
        histogram.counts.iter().all(|&count| count == 1_000),
        "{:?}",
        histogram.counts
    );
    assert_eq!(histogram.shares(), vec![0.1; 10]);
}

#[test]
fn reference_bins_on_discrete_data_collapse_equal_edges() {
    // 70% zeros, 20% ones, 10% twos: deciles are 0×7, 1×2 → edges [0, 1].
    let reference: Vec<f64> = (0..100)
        .map(|i| {
            if i < 70 {
                0.0
            } else if i < 90 {
                1.0
            } else {
                2.0
            }
        })
        .collect();
    let bins = ReferenceBins::from_reference(&reference, 10);
    assert_eq!(bins.edges(), &[0.0, 1.0]);
    assert_eq!(bins.bin_count(), 3);
    let mut histogram = BinnedHistogram::new(bins.clone());
    for &x in &reference {
        histogram.update(x);
    }
    // One value per bin: (-∞, 0], (0, 1], (1, ∞).
    assert_eq!(histogram.histogram().counts, vec![70, 20, 10]);
    // A constant reference yields one edge and two bins.
    assert_eq!(
        ReferenceBins::from_reference(&[4.0; 50], 10).edges(),
        &[4.0]
    );
    // No finite values: one bin holding everything.
    let empty = ReferenceBins::from_reference(&[f64::NAN], 10);
    assert_eq!(empty.bin_count(), 1);
    assert_eq!(empty.index(-1e300), Some(0));

    // Out-of-range, infinite and NaN values.
    assert_eq!(bins.index(-5.0), Some(0));
    assert_eq!(bins.index(0.0), Some(0));
    assert_eq!(bins.index(0.5), Some(1));
    assert_eq!(bins.index(1.0), Some(1));
    assert_eq!(bins.index(f64::INFINITY), Some(2));
    assert_eq!(bins.index(f64::NEG_INFINITY), Some(0));
    assert_eq!(bins.index(f64::NAN), None);
    histogram.update(f64::NAN);
    assert_eq!(histogram.histogram().nan, 1);
    let with_nan = histogram.histogram().shares_with_nan();
    assert_eq!(with_nan.len(), 4);
    assert!((with_nan.iter().sum::<f64>() - 1.0).abs() < 1e-12);
}

#[test]
fn histogram_merge_is_exact() {
    let mut rng = Rng(4);
    let reference: Vec<f64> = (0..5_000).map(|_| rng.uniform()).collect();
    let bins = ReferenceBins::deciles(&reference);
    let live: Vec<f64> = (0..50_000)
        .map(|i| {
            if i % 97 == 0 {
                f64::NAN
            } else {
                rng.normal() * 0.3 + 0.6
            }
        })
        .collect();
    let mut one_pass = BinnedHistogram::new(bins.clone());
    live.iter().for_each(|&x| one_pass.update(x));
    let mut merged = BinnedHistogram::new(bins.clone());
    for chunk in live.chunks(4_096) {
        let mut window = BinnedHistogram::new(bins.clone());
        chunk.iter().for_each(|&x| window.update(x));
        merged.merge(&window).unwrap();
    }
    assert_eq!(merged, one_pass);
    assert_eq!(merged.histogram().total(), 50_000);

    let other_bins = BinnedHistogram::new(ReferenceBins::from_reference(&reference, 5));
    assert_eq!(merged.merge(&other_bins), Err(MergeError::BinsDiffer));
    assert_eq!(merged, one_pass, "a failed merge changes nothing");

    assert_eq!(round_trip(&merged), merged);
    assert!(serde_json::from_str::<ReferenceBins>("[1.0, 0.5]").is_err());
    assert!(ReferenceBins::from_edges(vec![0.0, f64::INFINITY]).is_err());
}

// ---------------------------------------------------------------- Categories

#[test]
fn category_counts_track_unseen_values_and_merge() {
    let reference = ["red", "green", "blue", "green"];
    let mut window_a = CategoryCounts::from_reference(reference.iter().copied());
    assert_eq!(
        window_a.vocabulary().categories(),
        &["red", "green", "blue"]
    );
    let mut window_b = window_a.clone();
    for value in ["red", "red", "mauve", "green", "teal", "mauve"] {
        window_a.update(value);
    }
    window_b.update_option(Some("blue"));
    window_b.update_option(None);
    window_b.update("mauve");

    let mut merged = window_a.clone();
    merged.merge(&window_b).unwrap();
    assert_eq!(merged.counts(), &[2, 1, 1]);
    assert_eq!(merged.count_of("red"), Some(2));
    assert_eq!(merged.count_of("mauve"), None);
    assert_eq!(merged.unseen(), 4);
    assert_eq!(merged.missing(), 1);
    assert_eq!(merged.bucket_counts(), vec![2, 1, 1, 4]);
    assert_eq!(merged.shares(), vec![0.25, 0.125, 0.125, 0.5]);
    assert_eq!(merged.shares_with_missing().len(), 5);
    let top = merged.unseen_values().top(1);
    assert_eq!(top[0].item, "mauve");
    assert_eq!((top[0].lower_bound, top[0].upper_bound), (3, 3));

    let other = CategoryCounts::new(CategoryVocabulary::new(["red"]), 8);
    assert_eq!(merged.merge(&other), Err(MergeError::VocabulariesDiffer));
    assert_eq!(round_trip(&merged), merged);
}

// ---------------------------------------------------------------- SpaceSaving

/// Checks every item's bounds against exact counts and returns the widest
/// bound, as a multiple of N/m.
fn check_frequent_bounds(
    summary: &FrequentItems,
    exact: &std::collections::HashMap<String, u64>,
) -> f64 {
    let n = summary.total() as f64;
    let m = summary.capacity() as f64;
    let mut widest: u64 = summary.absent_bound();
    for (item, &truth) in exact {
        let (lower, upper) = (summary.lower_bound(item), summary.upper_bound(item));
        assert!(
            lower <= truth && truth <= upper,
            "{item}: {lower} ≤ {truth} ≤ {upper} fails"
        );
        widest = widest.max(upper - lower);
    }
    widest as f64 / (n / m)
}

#[test]
fn frequent_items_bounds_contain_true_counts_after_merges() {
    let capacity = 64;
    let mut rng = Rng(5);
    let stream: Vec<String> = (0..120_000)
        .map(|_| format!("item-{}", rng.zipf_like(5_000)))
        .collect();
    let mut exact = std::collections::HashMap::new();
    for item in &stream {
        *exact.entry(item.clone()).or_insert(0u64) += 1;
    }

    let mut one_pass = FrequentItems::new(capacity);
    stream.iter().for_each(|item| one_pass.update(item));
    let one_pass_width = check_frequent_bounds(&one_pass, &exact);
    assert!(
        one_pass_width <= 1.0,
        "one stream: width {one_pass_width} N/m"
    );

    // 12 windows rolled up in sequence, then 2 such hours merged.
    let mut day = FrequentItems::new(capacity);
    for hour_stream in stream.chunks(stream.len() / 2) {
        let mut hour = FrequentItems::new(capacity);
        for window_stream in hour_stream.chunks(hour_stream.len() / 12 + 1) {
            let mut window = FrequentItems::new(capacity);
            window_stream.iter().for_each(|item| window.update(item));
            hour.merge(&window);
        }
        day.merge(&hour);
    }
    assert_eq!(day.total(), stream.len() as u64);
    let merged_width = check_frequent_bounds(&day, &exact);
    println!("SpaceSaving m={capacity}: widest bound {one_pass_width:.3} N/m one pass, {merged_width:.3} N/m merged");
    assert!(merged_width <= 2.0, "merged: width {merged_width} N/m");

    // The heaviest items are found, in order.
    let mut heaviest: Vec<(&String, &u64)> = exact.iter().collect();
    heaviest.sort_by(|a, b| b.1.cmp(a.1).then_with(|| a.0.cmp(b.0)));
    let top: Vec<String> = day
        .top(3)
        .into_iter()
        .map(|estimate| estimate.item)
        .collect();
    let expected: Vec<String> = heaviest[..3]
        .iter()
        .map(|(item, _)| (*item).clone())
        .collect();
    assert_eq!(top, expected);

    let restored = round_trip(&day);
    assert_eq!(restored, day);
    check_frequent_bounds(&restored, &exact);
}

#[test]
fn frequent_items_exact_below_capacity() {
    let mut summary = FrequentItems::new(4);
    for item in ["a", "b", "a", "c", "a", "b"] {
        summary.update(item);
    }
    summary.update_by("d", 10);
    assert_eq!(summary.absent_bound(), 0);
    assert_eq!((summary.lower_bound("a"), summary.upper_bound("a")), (3, 3));
    assert_eq!(summary.upper_bound("zzz"), 0);
    let top = summary.top(2);
    assert_eq!((top[0].item.as_str(), top[0].estimate), ("d", 10));
    assert_eq!((top[1].item.as_str(), top[1].estimate), ("a", 3));
    // A fifth item evicts the smallest ("c", 1).
    summary.update("e");
    assert_eq!(summary.absent_bound(), 1);
    assert_eq!((summary.lower_bound("e"), summary.upper_bound("e")), (1, 2));
    assert_eq!(summary.upper_bound("c"), 1);
}

// ---------------------------------------------------------------- HyperLogLog

#[test]
fn hyperloglog_within_four_standard_errors_after_merge() {
    for distinct in [100_000u64, 1_000_000] {
        let mut numbers_merged = HyperLogLog::default();
        let mut strings_merged = HyperLogLog::default();
        let mut numbers_one_pass = HyperLogLog::default();
        for part in 0..4u64 {
            let mut numbers = HyperLogLog::default();
            let mut strings = HyperLogLog::default();
            // Overlapping ranges: each value appears in up to two parts.
            let start = part * distinct / 4;
            let end = ((part + 2) * distinct / 4).min(distinct);
            for i in start..end {
                numbers.insert_f64(i as f64 * 0.5);
                strings.insert_str(&format!("user-{i}"));
            }
            numbers_merged.merge(&numbers).unwrap();
            strings_merged.merge(&strings).unwrap();
        }
        for i in 0..distinct {
            numbers_one_pass.insert_f64(i as f64 * 0.5);
        }
        assert_eq!(numbers_merged, numbers_one_pass, "merge is exact");
        let tolerance = 4.0 * numbers_merged.standard_error();
        for (name, sketch) in [("numbers", &numbers_merged), ("strings", &strings_merged)] {
            let relative_error = sketch.estimate() / distinct as f64 - 1.0;
            println!("HLL p=12 {name} {distinct}: relative error {relative_error:+.4} (4σ = {tolerance:.4})");
            assert!(
                relative_error.abs() <= tolerance,
                "{name} {distinct}: {relative_error}"
            );
        }
    }
}

#[test]
fn hyperloglog_small_ranges_and_edge_cases() {
    let mut sketch = HyperLogLog::default();
    assert_eq!(sketch.estimate(), 0.0);
    sketch.insert_f64(f64::NAN);
    assert_eq!(sketch.estimate(), 0.0);
    sketch.insert_f64(0.0);
    sketch.insert_f64(-0.0);
    assert!((sketch.estimate() - 1.0).abs() < 0.01);
    for distinct in [10u64, 1_000, 10_000] {
        let mut sketch = HyperLogLog::default();
        for i in 0..distinct {
            sketch.insert_str(&i.to_string());
            sketch.insert_str(&i.to_string());
        }
        let relative_error = sketch.estimate() / distinct as f64 - 1.0;
        assert!(
            relative_error.abs() <= 4.0 * sketch.standard_error(),
            "{distinct}: {relative_error}"
        );
    }
    let mut coarse = HyperLogLog::new(10);
    assert_eq!(
        coarse.merge(&HyperLogLog::new(12)),
        Err(MergeError::PrecisionsDiffer {
            left: 10,
            right: 12
        })
    );
    assert_eq!(round_trip(&sketch), sketch);
    assert!(serde_json::from_str::<HyperLogLog>(r#"{"precision":4,"registers":[0,1]}"#).is_err());
}

#[test]
fn stable_hash_is_pinned() {
    // Stored HyperLogLogs depend on these exact values: changing the hash
    // invalidates them.
    let pinned = [
        hash_bytes(b""),
        hash_bytes(b"a"),
        hash_bytes(b"sextant drift monitoring"),
        hash_f64(1.5),
    ];
    println!("{pinned:#018x?}");
    assert_eq!(pinned, PINNED_HASHES);
    assert_eq!(hash_f64(0.0), hash_f64(-0.0));
    assert_ne!(hash_bytes(b"a"), hash_bytes(b"a\0"));
}

const PINNED_HASHES: [u64; 4] = [
    0x248870b868db9486,
    0xad548c27bfcdf92d,
    0xdf61639f47610275,
    0x0c0ccaceb4a41b31,
];

// ---------------------------------------------------------------- Column sketches

#[test]
fn column_sketches_merge_all_or_nothing_and_round_trip() {
    let mut rng = Rng(6);
    let reference: Vec<f64> = (0..1_000).map(|_| rng.normal()).collect();
    let bins = ReferenceBins::deciles(&reference);
    let numeric = || ColumnSketch::Numeric(NumericSketch::new(DEFAULT_KLL_K, Some(bins.clone())));
    let mut one_pass = numeric();
    let mut merged = numeric();
    let mut window = numeric();
    for i in 0..20_000 {
        let x = if i % 50 == 0 { f64::NAN } else { rng.normal() };
        for sketch in [&mut one_pass, &mut window] {
            if let ColumnSketch::Numeric(sketch) = sketch {
                sketch.update(x);
            }
        }
        if i % 5_000 == 4_999 {
            merged.merge(&window).unwrap();
            window = numeric();
        }
    }
    let (ColumnSketch::Numeric(one), ColumnSketch::Numeric(many)) = (&one_pass, &merged) else {
        unreachable!()
    };
    assert_eq!(one.histogram, many.histogram);
    assert_eq!(one.moments.count(), many.moments.count());
    assert_eq!(one.moments.nan_count(), 400);
    assert_eq!(one.quantiles.count(), many.quantiles.count());
    assert_eq!(round_trip(&merged), merged);

    let vocabulary = CategoryVocabulary::new(["a", "b"]);
    let categorical = || {
        ColumnSketch::Categorical(CategoricalSketch::new(
            16,
            12,
            Some(CategoryCounts::new(vocabulary.clone(), 4)),
        ))
    };
    let mut cats = categorical();
    if let ColumnSketch::Categorical(sketch) = &mut cats {
        for value in [Some("a"), Some("b"), None, Some("z"), Some("a")] {
            sketch.update(value);
        }
    }
    let mut cats_merged = categorical();
    cats_merged.merge(&cats).unwrap();
    cats_merged.merge(&cats).unwrap();
    let ColumnSketch::Categorical(sketch) = &cats_merged else {
        unreachable!()
    };
    assert_eq!((sketch.total, sketch.missing), (10, 2));
    assert_eq!(sketch.frequent.upper_bound("a"), 4);
    assert!((sketch.distinct.estimate() - 3.0).abs() < 0.1);
    let counts = sketch.reference_counts.as_ref().unwrap();
    assert_eq!(
        (counts.counts(), counts.unseen(), counts.missing()),
        (&[4u64, 2][..], 2, 2)
    );
    assert_eq!(round_trip(&cats_merged), cats_merged);

    let before = cats_merged.clone();
    assert_eq!(
        cats_merged.merge(&merged),
        Err(MergeError::ColumnKindsDiffer)
    );
    let unreferenced = ColumnSketch::Categorical(CategoricalSketch::new(16, 12, None));
    assert_eq!(
        cats_merged.merge(&unreferenced),
        Err(MergeError::VocabulariesDiffer)
    );
    assert_eq!(cats_merged, before);
    let no_bins = ColumnSketch::Numeric(NumericSketch::new(DEFAULT_KLL_K, None));
    assert_eq!(merged.clone().merge(&no_bins), Err(MergeError::BinsDiffer));
}
