//! Dataset profiles (exploratory data analysis): per column its type,
//! missing values, distinct count, moments, quantiles, histogram, zeros,
//! outliers and top categories; per dataset duplicate rows, constant
//! columns, correlations and each column's association with a target.
//!
//! A profile's column summaries are `sextant-stats` sketches (moments by
//! Chan's formula, KLL quantiles, HyperLogLog distinct counts, SpaceSaving
//! frequent items), so profiles of parts of a dataset merge into the
//! profile of the whole ([`Profile::merge`]); duplicate rows and
//! correlations need the rows together and are dropped by a merge.

use std::borrow::Cow;
use std::collections::HashSet;

use serde::{Deserialize, Serialize};
use sextant_stats::sketch::{FrequentItems, HyperLogLog, KllSketch, Moments};

use crate::dataset::{ColumnValues, DatasetError, Table, MISSING_CODE};
use crate::temporal::TemporalScale;

/// Rows the correlations are computed on (a seeded sample beyond it).
pub const CORRELATION_ROWS: usize = 200_000;
/// Categories kept per column.
const TOP_CATEGORIES: usize = 64;
/// Categories per column beyond which Cramér's V is not computed.
const MAX_CONTINGENCY_LEVELS: usize = 200;

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Profile {
    pub rows: u64,
    pub columns: Vec<ColumnProfile>,
    /// Rows equal to an earlier row (None after a merge).
    pub duplicate_rows: Option<u64>,
    /// Pairwise correlations (None after a merge).
    pub correlations: Option<Correlations>,
    /// Each column's association with the target, when one is named.
    pub target: Option<TargetAssociation>,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct ColumnProfile {
    pub name: String,
    /// `integer`, `float`, `boolean`, `categorical`, `date`, `datetime`,
    /// `time`, `duration` or `unsupported`.
    pub kind: String,
    pub missing: u64,
    pub distinct: HyperLogLog,
    pub moments: Option<Moments>,
    pub quantiles: Option<KllSketch>,
    pub zeros: u64,
    pub categories: Option<FrequentItems>,
    /// The exact number of distinct values, where it is cheap to know
    /// (categories, integers); None after a merge.
    #[serde(default)]
    pub exact_distinct: Option<u64>,
    /// The earliest and latest value of a date, time or duration column.
    #[serde(default)]
    pub temporal_range: Option<TemporalRange>,
    /// A number column's exact histogram (None after a merge: the bins
    /// of two parts differ, and the quantile sketch estimates it).
    #[serde(default)]
    pub histogram: Option<Histogram>,
}

/// Bins of a column's finite values: `HISTOGRAM_BINS` of equal width
/// between `low` and `high`, each `[lower, upper)` but the last, which
/// holds `high` (numpy's `histogram`).
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Histogram {
    pub low: f64,
    pub high: f64,
    pub counts: Vec<u64>,
}

/// Bins in a profile's histograms.
const HISTOGRAM_BINS: usize = 20;

impl Histogram {
    /// The histogram of `values`' finite values; None when they have
    /// fewer than two distinct values.
    fn of(values: &[f64], low: f64, high: f64) -> Option<Histogram> {
        if !(low.is_finite() && high.is_finite() && high > low) {
            return None;
        }
        let mut counts = vec![0u64; HISTOGRAM_BINS];
        let last = HISTOGRAM_BINS - 1;
        let scale = HISTOGRAM_BINS as f64 / (high - low);
        let width = (high - low) / HISTOGRAM_BINS as f64;
        // numpy's edges (`linspace`), and its correction of a value the
        // scaled index put one bin off by rounding.
        let edge = |k: usize| {
            if k == HISTOGRAM_BINS {
                high
            } else {
                k as f64 * width + low
            }
        };
        for &x in values.iter().filter(|x| x.is_finite()) {
            let mut bin = (((x - low) * scale) as usize).min(last);
            if x < edge(bin) {
                bin -= 1;
            } else if bin != last && x >= edge(bin + 1) {
                bin += 1;
            }
            counts[bin] += 1;
        }
        Some(Histogram { low, high, counts })
    }

    /// (lower edge, count) per bin.
    fn bins(&self) -> Vec<(f64, u64)> {
        let width = (self.high - self.low) / self.counts.len() as f64;
        self.counts
            .iter()
            .enumerate()
            .map(|(k, &count)| (k as f64 * width + self.low, count))
            .collect()
    }
}

/// A temporal column's smallest and largest value, on its scale.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct TemporalRange {
    pub scale: TemporalScale,
    pub min: i64,
    pub max: i64,
}

impl TemporalRange {
    /// The range of both; None when their scales differ (a merge of
    /// files that typed the column differently).
    fn merged(&self, other: &TemporalRange) -> Option<TemporalRange> {
        (self.scale == other.scale).then(|| TemporalRange {
            scale: self.scale,
            min: self.min.min(other.min),
            max: self.max.max(other.max),
        })
    }
}

/// Correlation matrices over `columns` (None where undefined).
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Correlations {
    pub rows_used: usize,
    pub numeric_columns: Vec<String>,
    pub pearson: Vec<Vec<Option<f64>>>,
    pub spearman: Vec<Vec<Option<f64>>>,
    pub categorical_columns: Vec<String>,
    /// Cramér's V between categorical columns.
    pub cramers_v: Vec<Vec<Option<f64>>>,
    /// Correlation ratio η of each numeric column (rows) given each
    /// categorical column (columns).
    pub correlation_ratio: Vec<Vec<Option<f64>>>,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct TargetAssociation {
    pub column: String,
    /// Per column: the measure used and its value.
    pub associations: Vec<(String, String, Option<f64>)>,
}

impl Profile {
    /// Profiles `table` (every column); `target` names the label column.
    pub fn of(table: &Table, target: Option<&str>) -> Result<Profile, DatasetError> {
        let names = table.column_names().to_vec();
        // Columns decoded on every core.
        let cores = std::thread::available_parallelism().map_or(1, |n| n.get());
        let columns: Vec<std::sync::Arc<ColumnValues>> =
            crate::map_parallel(&names, cores, |n| table.column(n))
                .into_iter()
                .collect::<Result<_, _>>()?;
        if let Some(target) = target {
            if !names.iter().any(|n| n == target) {
                return Err(DatasetError::NoSuchColumn {
                    path: table.path().to_path_buf(),
                    column: target.to_string(),
                });
            }
        }
        let rows = table.rows();
        // Columns on both cores.
        let threads = std::thread::available_parallelism()
            .map_or(1, |n| n.get())
            .min(columns.len().max(1));
        let next = std::sync::atomic::AtomicUsize::new(0);
        let profiles = std::sync::Mutex::new(vec![None; columns.len()]);
        std::thread::scope(|scope| {
            for _ in 0..threads {
                scope.spawn(|| loop {
                    let i = next.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
                    let Some(column) = columns.get(i) else { break };
                    let profile = profile_column(&names[i], column);
                    if let Ok(mut slots) = profiles.lock() {
                        slots[i] = Some(profile);
                    }
                });
            }
        });
        let column_profiles: Vec<ColumnProfile> = profiles
            .into_inner()
            .unwrap_or_default()
            .into_iter()
            .map(|p| p.expect("every column profiled"))
            .collect();
        let sample = sample_rows(rows, CORRELATION_ROWS);
        let correlations = correlations(&names, &columns, &sample);
        let target = target.map(|t| target_association(t, &names, &columns, &sample));
        Ok(Profile {
            rows: rows as u64,
            columns: column_profiles,
            duplicate_rows: Some(duplicate_rows(&columns, rows)),
            correlations: Some(correlations),
            target,
        })
    }

    /// The profile of both datasets' rows together (same columns, in the
    /// same order).
    pub fn merge(&mut self, other: &Profile) -> Result<(), String> {
        if self.columns.len() != other.columns.len()
            || self
                .columns
                .iter()
                .zip(&other.columns)
                .any(|(a, b)| a.name != b.name)
        {
            return Err("profiles of different columns do not merge".into());
        }
        self.rows += other.rows;
        for (a, b) in self.columns.iter_mut().zip(&other.columns) {
            let same_kind = a.kind == b.kind;
            a.exact_distinct = None;
            a.missing += b.missing;
            a.zeros += b.zeros;
            a.distinct.merge(&b.distinct).map_err(|e| e.to_string())?;
            if a.kind != b.kind {
                a.kind = if matches!(
                    (a.kind.as_str(), b.kind.as_str()),
                    ("integer", "float") | ("float", "integer")
                ) {
                    "float".into()
                } else {
                    "mixed".into()
                };
            }
            match (&mut a.moments, &b.moments) {
                (Some(x), Some(y)) => x.merge(y),
                (None, Some(y)) => a.moments = Some(y.clone()),
                _ => {}
            }
            match (&mut a.quantiles, &b.quantiles) {
                (Some(x), Some(y)) => x.merge(y),
                (None, Some(y)) => a.quantiles = Some(y.clone()),
                _ => {}
            }
            match (&mut a.categories, &b.categories) {
                (Some(x), Some(y)) => x.merge(y),
                (None, Some(y)) => a.categories = Some(y.clone()),
                _ => {}
            }
            a.histogram = None;
            a.temporal_range = match (&a.temporal_range, &b.temporal_range) {
                (Some(x), Some(y)) => x.merged(y),
                // A part of the same kind without values has no range.
                (x, y) if same_kind => x.as_ref().or(y.as_ref()).cloned(),
                _ => None,
            };
        }
        self.duplicate_rows = None;
        self.correlations = None;
        self.target = None;
        Ok(())
    }

    /// Columns with one distinct value (or none).
    pub fn constant_columns(&self) -> Vec<String> {
        self.columns
            .iter()
            .filter(|c| c.distinct.estimate().round() <= 1.0)
            .map(|c| c.name.clone())
            .collect()
    }
}

fn kind_of(column: &ColumnValues) -> &'static str {
    match column {
        ColumnValues::Numeric { integer: true, .. } => "integer",
        ColumnValues::Numeric { .. } => "float",
        ColumnValues::Boolean { .. } => "boolean",
        ColumnValues::Strings { .. } => "categorical",
        ColumnValues::Unsupported {
            instants: Some(instants),
            ..
        } => instants.scale.kind_name(),
        ColumnValues::Unsupported { .. } => "unsupported",
    }
}

fn profile_column(name: &str, column: &ColumnValues) -> ColumnProfile {
    let mut profile = ColumnProfile {
        name: name.to_string(),
        kind: kind_of(column).to_string(),
        missing: 0,
        distinct: HyperLogLog::new(sextant_stats::sketch::DEFAULT_HLL_PRECISION),
        moments: None,
        quantiles: None,
        zeros: 0,
        categories: None,
        exact_distinct: None,
        temporal_range: None,
        histogram: None,
    };
    match column {
        ColumnValues::Numeric { values, integer } => {
            if *integer {
                let mut bits: Vec<u64> = values.iter().map(|v| v.to_bits()).collect();
                bits.sort_unstable();
                bits.dedup();
                profile.exact_distinct = Some(bits.len() as u64);
            }
            let mut moments = Moments::new();
            let mut quantiles = KllSketch::new(sextant_stats::sketch::DEFAULT_KLL_K);
            for &x in values {
                if x.is_nan() {
                    profile.missing += 1;
                    continue;
                }
                moments.update(x);
                if x.is_finite() {
                    quantiles.update(x);
                }
                profile.distinct.insert_f64(x);
                profile.zeros += u64::from(x == 0.0);
            }
            profile.histogram = quantiles
                .min()
                .zip(quantiles.max())
                .and_then(|(low, high)| Histogram::of(values, low, high));
            profile.moments = Some(moments);
            profile.quantiles = Some(quantiles);
        }
        ColumnValues::Strings { codes, .. } | ColumnValues::Boolean { codes } => {
            let labels = column.dictionary();
            let mut counts = vec![0u64; labels.len()];
            for &code in codes {
                if code == MISSING_CODE {
                    profile.missing += 1;
                } else {
                    counts[code as usize] += 1;
                }
            }
            profile.exact_distinct = Some(counts.iter().filter(|&&c| c > 0).count() as u64);
            let mut frequent = FrequentItems::new(TOP_CATEGORIES);
            for (label, &count) in labels.iter().zip(&counts) {
                if count > 0 {
                    frequent.update_by(label, count);
                    profile.distinct.insert_str(label);
                }
            }
            profile.categories = Some(frequent);
        }
        // Nested values are not summarised, but their missing and distinct
        // values are counted; dates and times have a range too.
        ColumnValues::Unsupported {
            present,
            keys,
            instants,
            ..
        } => {
            profile.missing = present.iter().filter(|&&p| !p).count() as u64;
            profile.temporal_range = instants.as_ref().and_then(|instants| {
                let mut present_ticks = instants
                    .ticks
                    .iter()
                    .zip(present)
                    .filter(|(_, &p)| p)
                    .map(|(&t, _)| t);
                let first = present_ticks.next()?;
                let (min, max) =
                    present_ticks.fold((first, first), |(lo, hi), t| (lo.min(t), hi.max(t)));
                Some(TemporalRange {
                    scale: instants.scale,
                    min,
                    max,
                })
            });
            profile.exact_distinct = keys.as_ref().map(|keys| {
                let mut seen: Vec<u64> = (0..keys.len())
                    .filter(|&i| present[i])
                    .map(|i| keys[i])
                    .collect();
                seen.sort_unstable();
                seen.dedup();
                seen.len() as u64
            });
        }
    }
    profile
}

/// Indices of at most `limit` rows: all of them, or an evenly spaced
/// sample (deterministic).
fn sample_rows(rows: usize, limit: usize) -> Vec<usize> {
    if rows <= limit {
        return (0..rows).collect();
    }
    (0..limit).map(|k| k * rows / limit).collect()
}

/// Rows equal to an earlier row, by a 64-bit hash of each row's cells.
fn duplicate_rows(columns: &[std::sync::Arc<ColumnValues>], rows: usize) -> u64 {
    use sextant_stats::sketch::hash::mix64;
    let mut hashes = vec![0x9e37_79b9_7f4a_7c15u64; rows];
    for column in columns {
        match column.as_ref() {
            ColumnValues::Numeric { values, .. } => {
                for (h, &x) in hashes.iter_mut().zip(values) {
                    let bits = if x.is_nan() {
                        u64::MAX
                    } else {
                        (x + 0.0).to_bits()
                    };
                    *h = mix64(*h ^ bits);
                }
            }
            ColumnValues::Strings { codes, .. } | ColumnValues::Boolean { codes } => {
                for (h, &c) in hashes.iter_mut().zip(codes) {
                    *h = mix64(*h ^ u64::from(c));
                }
            }
            // Dates and times by their values' keys; nested values, which
            // have none, are not compared.
            ColumnValues::Unsupported {
                present,
                keys: Some(keys),
                ..
            } => {
                for ((h, &key), &present) in hashes.iter_mut().zip(keys).zip(present) {
                    *h = mix64(*h ^ if present { key } else { u64::MAX });
                }
            }
            ColumnValues::Unsupported { .. } => {}
        }
    }
    // Sorted, a repeat sits next to its first: fewer cycles than a hash set.
    hashes.sort_unstable();
    hashes.windows(2).filter(|pair| pair[0] == pair[1]).count() as u64
}

/// A column's numbers at the `sample` rows: the column itself when the
/// sample is every row (`sample_rows` then lists them in order), so that
/// 100k-row columns are not copied.
fn numeric_values<'a>(column: &'a ColumnValues, sample: &[usize]) -> Option<Cow<'a, [f64]>> {
    match column {
        ColumnValues::Numeric { values, .. } if sample.len() == values.len() => {
            Some(Cow::Borrowed(values))
        }
        ColumnValues::Numeric { values, .. } => {
            Some(Cow::Owned(sample.iter().map(|&i| values[i]).collect()))
        }
        ColumnValues::Boolean { codes } => Some(Cow::Owned(
            sample.iter().map(|&i| f64::from(codes[i])).collect(),
        )),
        _ => None,
    }
}

fn codes_of(column: &ColumnValues, sample: &[usize]) -> Option<(Vec<u32>, usize)> {
    match column {
        ColumnValues::Strings { codes, dictionary }
            if dictionary.len() <= MAX_CONTINGENCY_LEVELS =>
        {
            Some((sample.iter().map(|&i| codes[i]).collect(), dictionary.len()))
        }
        ColumnValues::Boolean { codes } => Some((sample.iter().map(|&i| codes[i]).collect(), 2)),
        _ => None,
    }
}

/// Pearson's r over rows where both are present; None when either is
/// constant on those rows.
fn pearson(x: &[f64], y: &[f64]) -> Option<f64> {
    (varies_where_shared(x, y) && varies_where_shared(y, x))
        .then(|| pearson_unchecked(x, y))
        .flatten()
}

/// Whether `values` holds two different numbers on rows where `other`
/// holds one too.
fn varies_where_shared(values: &[f64], other: &[f64]) -> bool {
    let mut shared = values
        .iter()
        .zip(other)
        .filter(|(v, o)| v.is_finite() && o.is_finite())
        .map(|(v, _)| *v);
    shared
        .next()
        .is_some_and(|first| shared.any(|v| v != first))
}

/// [`pearson`] for columns known to vary on their shared rows (a constant's
/// mean need not equal it, ten 0.1s average to 0.0999…, which would leave a
/// tiny Σ(x − x̄)² and a meaningless r).
///
/// One pass over values shifted by the first shared row's (the
/// shifted-data algorithm; Chan, Golub & LeVeque 1983): with a = x − x₀ and
/// b = y − y₀, Σ(x − x̄)(y − ȳ) = Σab − ΣaΣb/n. The subtraction loses about
/// ((x₀ − x̄)/σ)² of the precision, and a shared value lies within σ√(n−1)
/// of the shared rows' mean (Samuelson's inequality), so at most n·ε is
/// lost whatever the data; shifting by a column's own mean instead is
/// unbounded when the shared rows sit far from it. The sums run in `LANES`
/// interleaved partial sums: independent lanes let the compiler use vector
/// registers, where one running sum must be added in order.
fn pearson_unchecked(x: &[f64], y: &[f64]) -> Option<f64> {
    let rows = x.len().min(y.len());
    let (x, y) = (&x[..rows], &y[..rows]);
    let shared = |a: f64, b: f64| a.is_finite() && b.is_finite();
    let first = (0..rows).find(|&i| shared(x[i], y[i]))?;
    let (x0, y0) = (x[first], y[first]);
    let mut n = [0.0; LANES];
    let (mut sa, mut sb) = ([0.0; LANES], [0.0; LANES]);
    let (mut sab, mut saa, mut sbb) = ([0.0; LANES], [0.0; LANES], [0.0; LANES]);
    for (a, b) in x.chunks(LANES).zip(y.chunks(LANES)) {
        for k in 0..a.len() {
            let keep = shared(a[k], b[k]);
            let da = if keep { a[k] - x0 } else { 0.0 };
            let db = if keep { b[k] - y0 } else { 0.0 };
            n[k] += if keep { 1.0 } else { 0.0 };
            sa[k] += da;
            sb[k] += db;
            sab[k] += da * db;
            saa[k] += da * da;
            sbb[k] += db * db;
        }
    }
    let total = |lanes: [f64; LANES]| lanes.iter().sum::<f64>();
    let n = total(n);
    if n < 2.0 {
        return None;
    }
    let (sa, sb) = (total(sa), total(sb));
    correlation_of(
        total(sab) - sa * sb / n,
        total(saa) - sa * sa / n,
        total(sbb) - sb * sb / n,
    )
}

/// The mean of the numbers of `x` (0 when it has none).
fn finite_mean(x: &[f64]) -> f64 {
    let (mut n, mut sum) = (0.0, 0.0);
    for &v in x {
        if v.is_finite() {
            n += 1.0;
            sum += v;
        }
    }
    if n > 0.0 {
        sum / n
    } else {
        0.0
    }
}

/// Partial sums kept side by side in the sums above.
const LANES: usize = 4;

/// Σ (xᵢ − cx)(yᵢ − cy) over columns without gaps, in `LANES` interleaved
/// partial sums; the deviations are taken on the fly rather than from
/// centred copies (which cost as much memory as the columns themselves).
fn co_moment(x: &[f64], y: &[f64], centre_x: f64, centre_y: f64) -> f64 {
    let mut lanes = [0.0; LANES];
    for (a, b) in x.chunks(LANES).zip(y.chunks(LANES)) {
        for k in 0..a.len() {
            lanes[k] += (a[k] - centre_x) * (b[k] - centre_y);
        }
    }
    lanes.iter().sum()
}

/// Σ (2·rank_xᵢ − m − 1)(2·rank_yᵢ − m − 1) over the rows `shared` admits:
/// co-moments of doubled ranks about their mean m + 1, in integers (a
/// doubled average rank is an integer, and |Σ| ≤ m³ fits an `i64` for any
/// sample a profile takes), so Spearman's ρ is exact up to its last
/// division. Returns (Σab, Σa², Σb²).
fn rank_co_moments(
    rank_x: &[u32],
    rank_y: &[u32],
    ranked: usize,
    shared: impl Fn(usize) -> bool,
) -> (i64, i64, i64) {
    let mean = ranked as i64 + 1;
    let (mut sxy, mut sxx, mut syy) = (0i64, 0i64, 0i64);
    for (row, (&a, &b)) in rank_x.iter().zip(rank_y).enumerate() {
        let keep = i64::from(shared(row));
        let (a, b) = (keep * (i64::from(a) - mean), keep * (i64::from(b) - mean));
        sxy += a * b;
        sxx += a * a;
        syy += b * b;
    }
    (sxy, sxx, syy)
}

/// r from co-moments, undefined when either column is constant.
fn correlation_of(sxy: f64, sxx: f64, syy: f64) -> Option<f64> {
    (sxx > 0.0 && syy > 0.0).then(|| (sxy / (sxx * syy).sqrt()).clamp(-1.0, 1.0))
}

/// A column's numbers in increasing order: the row each came from, and
/// which neighbours are equal.
struct Sorted {
    rows: Vec<u32>,
    /// Bit k is set when the k-th and (k+1)-th numbers are equal.
    ties: Vec<u64>,
}

impl Sorted {
    /// Sorts (key, row) pairs, the key ordering as the numbers do, by radix
    /// (a pass per byte of the key that varies): linear, where a comparison
    /// sort of 100k rows makes some 1.7 million comparisons.
    fn of(x: &[f64]) -> Sorted {
        // `+ 0.0` makes −0 and 0, which are equal, one key.
        let mut keyed: Vec<(u64, u32)> = x
            .iter()
            .enumerate()
            .filter(|(_, v)| v.is_finite())
            .map(|(row, &v)| (sextant_stats::sort::order_key(v + 0.0), row as u32))
            .collect();
        radsort::sort_by_key(&mut keyed, |&(key, _)| key);
        let mut ties = vec![0u64; keyed.len().div_ceil(64)];
        for (k, pair) in keyed.windows(2).enumerate() {
            if pair[0].0 == pair[1].0 {
                ties[k / 64] |= 1 << (k % 64);
            }
        }
        Sorted {
            rows: keyed.iter().map(|&(_, row)| row).collect(),
            ties,
        }
    }

    fn len(&self) -> usize {
        self.rows.len()
    }

    fn equals_next(&self, k: usize) -> bool {
        self.ties[k / 64] >> (k % 64) & 1 == 1
    }
}

/// Doubled average ranks (ties share the mean of the ranks they span;
/// doubled, a half rank is an integer) of the rows `keep` admits, walking
/// the sorted column once, into a buffer the caller reuses from pair to
/// pair (fresh 100k-row buffers for each of hundreds of pairs cost more in
/// page faults than the ranking itself). Only the admitted rows' places in
/// `ranks` are written; their count is returned.
fn ranks_among_into(sorted: &Sorted, keep: impl Fn(usize) -> bool, ranks: &mut [u32]) -> usize {
    let rows = &sorted.rows;
    let mut ranked = 0u32;
    let mut start = 0;
    while start < rows.len() {
        let mut end = start + 1;
        while end < rows.len() && sorted.equals_next(end - 1) {
            end += 1;
        }
        if end == start + 1 {
            let row = rows[start] as usize;
            if keep(row) {
                ranked += 1;
                ranks[row] = 2 * ranked;
            }
        } else {
            let group = &rows[start..end];
            let admitted = group.iter().filter(|&&row| keep(row as usize)).count() as u32;
            // Ranks ranked + 1 ..= ranked + admitted average to
            // ranked + (admitted + 1) / 2.
            let doubled = 2 * ranked + admitted + 1;
            for &row in group {
                if keep(row as usize) {
                    ranks[row as usize] = doubled;
                }
            }
            ranked += admitted;
        }
        start = end;
    }
    ranked as usize
}

/// Which rows of a column hold a number, a bit each: 100k rows fit the
/// fastest cache, where the column itself does not (ranking a column among
/// the rows another shares asks at random rows).
struct Presence(Vec<u64>);

impl Presence {
    fn of(x: &[f64]) -> Presence {
        let mut bits = vec![0u64; x.len().div_ceil(64)];
        for (row, v) in x.iter().enumerate() {
            bits[row / 64] |= u64::from(v.is_finite()) << (row % 64);
        }
        Presence(bits)
    }

    fn has(&self, row: usize) -> bool {
        self.0[row / 64] >> (row % 64) & 1 == 1
    }
}

/// Buffers for Spearman's ρ of columns with gaps, reused across pairs.
struct SharedRanks {
    rank_x: Vec<u32>,
    rank_y: Vec<u32>,
}

impl SharedRanks {
    fn with_rows(rows: usize) -> SharedRanks {
        SharedRanks {
            rank_x: vec![0; rows],
            rank_y: vec![0; rows],
        }
    }

    /// The co-moments of Spearman's ρ over the rows where both `x` and `y`
    /// hold a number (None when fewer than two do): ρ is Pearson's r of
    /// their average ranks among those rows (the pairwise rule of pandas and
    /// scipy). Average ranks of m rows sum to m(m+1)/2 whatever the ties, so
    /// both means are (m+1)/2 and one pass over the shared rows gives the
    /// co-moments. A column is constant on those rows exactly when its
    /// ranks' sum of squares is zero.
    ///
    /// Each column comes sorted and with its own doubled ranks among its
    /// numbers.
    fn spearman(
        &mut self,
        (x, sorted_x, own_ranks_x): (&Presence, &Sorted, &[u32]),
        (y, sorted_y, own_ranks_y): (&Presence, &Sorted, &[u32]),
    ) -> Option<(i64, i64, i64)> {
        let rows = own_ranks_x.len();
        let x_complete = sorted_x.len() == rows;
        let y_complete = sorted_y.len() == rows;
        // A column's own ranks serve when the other has no gaps (the shared
        // rows are then exactly its own); otherwise it is ranked again
        // among the shared rows.
        let mut shared = sorted_x.len().min(sorted_y.len());
        let rank_x: &[u32] = if y_complete {
            own_ranks_x
        } else {
            shared = ranks_among_into(sorted_x, |row| y.has(row), &mut self.rank_x);
            &self.rank_x
        };
        let rank_y: &[u32] = if x_complete {
            own_ranks_y
        } else {
            shared = ranks_among_into(sorted_y, |row| x.has(row), &mut self.rank_y);
            &self.rank_y
        };
        if shared < 2 {
            return None;
        }
        // The shared rows in row order (the rank buffers hold stale values
        // elsewhere).
        Some(rank_co_moments(rank_x, rank_y, shared, |row| {
            x.has(row) && y.has(row)
        }))
    }
}

/// Cramér's V = sqrt(χ² / (n · (min(r, c) − 1))) of a contingency table
/// (Cramér 1946, §21.9), without bias correction, over rows where both
/// are present.
fn cramers_v(a: &[u32], levels_a: usize, b: &[u32], levels_b: usize) -> Option<f64> {
    let mut table = vec![0.0; levels_a * levels_b];
    let mut n = 0.0;
    for (&x, &y) in a.iter().zip(b) {
        if x != MISSING_CODE && y != MISSING_CODE {
            table[x as usize * levels_b + y as usize] += 1.0;
            n += 1.0;
        }
    }
    let rows: Vec<f64> = (0..levels_a)
        .map(|i| (0..levels_b).map(|j| table[i * levels_b + j]).sum())
        .collect();
    let cols: Vec<f64> = (0..levels_b)
        .map(|j| (0..levels_a).map(|i| table[i * levels_b + j]).sum())
        .collect();
    let (r, c) = (
        rows.iter().filter(|&&v| v > 0.0).count(),
        cols.iter().filter(|&&v| v > 0.0).count(),
    );
    if n == 0.0 || r < 2 || c < 2 {
        return None;
    }
    let mut chi2 = 0.0;
    for i in 0..levels_a {
        for j in 0..levels_b {
            let expected = rows[i] * cols[j] / n;
            if expected > 0.0 {
                chi2 += (table[i * levels_b + j] - expected).powi(2) / expected;
            }
        }
    }
    Some((chi2 / (n * (r.min(c) - 1) as f64)).sqrt())
}

/// Correlation ratio η = sqrt(Σ_g n_g (ȳ_g − ȳ)² / Σ (y − ȳ)²) of `y`
/// given the categories `g` (Pearson 1903), over rows where both are
/// present; None when `y` is constant on those rows. One pass over `y`
/// shifted by its first kept value, as in [`pearson_unchecked`] (whose
/// bound on the precision lost holds here too): with u = y − y₀, the total
/// Σ(y − ȳ)² is Σu² − n·ū², and the groups' deviations are those of their
/// means of u.
fn correlation_ratio(y: &[f64], g: &[u32], levels: usize) -> Option<f64> {
    let kept = |v: f64, c: u32| v.is_finite() && c != MISSING_CODE;
    let first = y.iter().zip(g).position(|(&v, &c)| kept(v, c))?;
    let shift = y[first];
    let mut sums = vec![0.0; levels];
    let mut counts = vec![0u32; levels];
    let (mut total, mut squares, mut n) = (0.0, 0.0, 0u32);
    let mut varies = false;
    for (&v, &c) in y.iter().zip(g) {
        if kept(v, c) {
            let u = v - shift;
            sums[c as usize] += u;
            counts[c as usize] += 1;
            total += u;
            squares += u * u;
            n += 1;
            varies |= u != 0.0;
        }
    }
    if n < 2 || !varies {
        return None;
    }
    let n = f64::from(n);
    let mean = total / n;
    let between: f64 = (0..levels)
        .filter(|&c| counts[c] > 0)
        .map(|c| {
            let count = f64::from(counts[c]);
            count * (sums[c] / count - mean).powi(2)
        })
        .sum();
    let within_total = squares - n * mean * mean;
    (within_total > 0.0).then(|| (between / within_total).sqrt().min(1.0))
}

/// What the pairs of one numeric column share, computed once.
struct PreparedColumn {
    mean: f64,
    present: Presence,
    sorted: Sorted,
    /// Doubled average ranks among the column's numbers (0 where it has
    /// none).
    ranks: Vec<u32>,
    /// Without gaps: Σ(x − x̄)² and the doubled ranks' Σ(2r − n − 1)², the
    /// denominators of every pair of two such columns.
    complete: Option<(f64, i64)>,
}

impl PreparedColumn {
    fn of(x: &[f64]) -> PreparedColumn {
        let mean = finite_mean(x);
        let sorted = Sorted::of(x);
        let mut ranks = vec![0; x.len()];
        let ranked = ranks_among_into(&sorted, |_| true, &mut ranks);
        let complete = (ranked == x.len()).then(|| {
            let (_, rank_squares, _) = rank_co_moments(&ranks, &ranks, ranked, |_| true);
            (co_moment(x, x, mean, mean), rank_squares)
        });
        PreparedColumn {
            mean,
            present: Presence::of(x),
            sorted,
            ranks,
            complete,
        }
    }
}

fn correlations(
    names: &[String],
    columns: &[std::sync::Arc<ColumnValues>],
    sample: &[usize],
) -> Correlations {
    let mut numeric_names = Vec::new();
    let mut numeric = Vec::new();
    let mut categorical_names = Vec::new();
    let mut categorical = Vec::new();
    for (name, column) in names.iter().zip(columns) {
        if let ColumnValues::Numeric { .. } = column.as_ref() {
            if let Some(values) = numeric_values(column, sample) {
                numeric_names.push(name.clone());
                numeric.push(values);
            }
        } else if let Some(codes) = codes_of(column, sample) {
            categorical_names.push(name.clone());
            categorical.push(codes);
        }
    }
    let threads = std::thread::available_parallelism().map_or(1, |t| t.get());
    // Each column's sorted form, ranks and sums of squares, on every core.
    let prepared = crate::map_parallel(&numeric, threads, |x| PreparedColumn::of(x));
    let n = numeric.len();
    let pairs: Vec<(usize, usize)> = (0..n)
        .flat_map(|i| ((i + 1)..n).map(move |j| (i, j)))
        .collect();
    // Pairs on every core; each pair is independent.
    let pair_threads = threads.min(pairs.len().max(1));
    let results: Vec<(usize, usize, Option<f64>, Option<f64>)> = std::thread::scope(|scope| {
        let handles: Vec<_> = (0..pair_threads)
            .map(|t| {
                let (pairs, numeric, prepared) = (&pairs, &numeric, &prepared);
                scope.spawn(move || {
                    let rows = numeric.first().map_or(0, |x| x.len());
                    let mut buffers = SharedRanks::with_rows(rows);
                    pairs
                        .iter()
                        .skip(t)
                        .step_by(pair_threads)
                        .map(|&(i, j)| {
                            let (x, y) = (&numeric[i], &numeric[j]);
                            let (a, b) = (&prepared[i], &prepared[j]);
                            // Two columns without gaps share every row: their
                            // means, ranks and sums of squares serve as they
                            // are, and one pass gives each co-moment.
                            // (A column is constant exactly when its ranks'
                            // sum of squares is zero: its r is undefined,
                            // whatever rounding leaves in Σ(x − x̄)².)
                            if let (Some((xx, rxx)), Some((yy, ryy))) = (a.complete, b.complete) {
                                let constant = rxx == 0 || ryy == 0;
                                let r = (!constant)
                                    .then(|| {
                                        correlation_of(co_moment(x, y, a.mean, b.mean), xx, yy)
                                    })
                                    .flatten();
                                let (rxy, _, _) =
                                    rank_co_moments(&a.ranks, &b.ranks, x.len(), |_| true);
                                let rho = correlation_of(rxy as f64, rxx as f64, ryy as f64);
                                return (i, j, r, rho);
                            }
                            // Spearman's ρ is Pearson's r of the ranks, ranked
                            // over the rows where both are present (pandas'
                            // and scipy's pairwise rule): a column's own
                            // ranks serve when the other misses no value,
                            // else it is ranked again among the shared rows,
                            // from its sorted form (no sort).
                            let Some((rxy, rxx, ryy)) = buffers.spearman(
                                (&a.present, &a.sorted, &a.ranks),
                                (&b.present, &b.sorted, &b.ranks),
                            ) else {
                                return (i, j, None, None);
                            };
                            let rho = correlation_of(rxy as f64, rxx as f64, ryy as f64);
                            let r = rho.and_then(|_| pearson_unchecked(x, y));
                            (i, j, r, rho)
                        })
                        .collect::<Vec<_>>()
                })
            })
            .collect();
        handles
            .into_iter()
            .flat_map(|h| h.join().unwrap_or_default())
            .collect()
    });
    let indices: Vec<usize> = (0..n).collect();
    let mut pearson_matrix: Vec<Vec<Option<f64>>> = vec![vec![None; n]; n];
    let mut spearman_matrix: Vec<Vec<Option<f64>>> = vec![vec![None; n]; n];
    for i in 0..n {
        pearson_matrix[i][i] = Some(1.0);
        spearman_matrix[i][i] = Some(1.0);
    }
    for (i, j, r, rho) in results {
        pearson_matrix[i][j] = r;
        pearson_matrix[j][i] = r;
        spearman_matrix[i][j] = rho;
        spearman_matrix[j][i] = rho;
    }
    Correlations {
        rows_used: sample.len(),
        pearson: pearson_matrix,
        spearman: spearman_matrix,
        cramers_v: crate::map_parallel(&categorical, threads, |(a, la)| {
            categorical
                .iter()
                .map(|(b, lb)| cramers_v(a, *la, b, *lb))
                .collect()
        }),
        correlation_ratio: crate::map_parallel(&indices, threads, |&i| {
            categorical
                .iter()
                .map(|(g, levels)| correlation_ratio(&numeric[i], g, *levels))
                .collect()
        }),
        numeric_columns: numeric_names,
        categorical_columns: categorical_names,
    }
}

/// Each column's association with the target: Pearson's r between
/// numbers, Cramér's V between categories, the correlation ratio between
/// a number and categories.
fn target_association(
    target: &str,
    names: &[String],
    columns: &[std::sync::Arc<ColumnValues>],
    sample: &[usize],
) -> TargetAssociation {
    let index = names.iter().position(|n| n == target).expect("checked");
    let target_column = &columns[index];
    let target_numbers = match target_column.as_ref() {
        ColumnValues::Numeric { .. } => numeric_values(target_column, sample),
        _ => None,
    };
    let target_codes = codes_of(target_column, sample);
    let mut associations = Vec::new();
    for (name, column) in names.iter().zip(columns) {
        if name == target {
            continue;
        }
        let numbers = matches!(column.as_ref(), ColumnValues::Numeric { .. })
            .then(|| numeric_values(column, sample))
            .flatten();
        let codes = codes_of(column, sample);
        let (measure, value) = match (&numbers, &codes, &target_numbers, &target_codes) {
            (Some(x), _, Some(t), _) => ("pearson", pearson(x, t)),
            (Some(x), _, None, Some((t, levels))) => {
                ("correlation_ratio", correlation_ratio(x, t, *levels))
            }
            (None, Some((c, levels)), Some(t), _) => {
                ("correlation_ratio", correlation_ratio(t, c, *levels))
            }
            (None, Some((c, lc)), None, Some((t, lt))) => ("cramers_v", cramers_v(c, *lc, t, *lt)),
            _ => ("none", None),
        };
        associations.push((name.clone(), measure.to_string(), value));
    }
    TargetAssociation {
        column: target.to_string(),
        associations,
    }
}

/// What a person reads: the sketches turned into figures.
#[derive(Debug, Clone, Serialize)]
pub struct ColumnSummary {
    pub name: String,
    pub kind: String,
    pub count: u64,
    pub missing: u64,
    pub missing_share: f64,
    pub distinct: u64,
    pub zeros: u64,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub mean: Option<f64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub std: Option<f64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub min: Option<f64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub max: Option<f64>,
    /// p1, p5, p25, p50, p75, p95, p99 (KLL estimates).
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub quantiles: Vec<(f64, f64)>,
    /// Rows outside Tukey's fences [Q1 − 1.5 IQR, Q3 + 1.5 IQR] (estimated
    /// from the quantile sketch).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub outliers: Option<u64>,
    /// 20 equal-width bins between min and max: (lower edge, count); exact
    /// for one table (numpy's `histogram`), estimated from the quantile
    /// sketch in a merged profile.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub histogram: Vec<(f64, u64)>,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub top_categories: Vec<(String, u64)>,
    /// A date, time or duration column's earliest and latest value, as
    /// pandas prints them.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub earliest: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub latest: Option<String>,
}

impl ColumnProfile {
    pub fn summary(&self, rows: u64) -> ColumnSummary {
        let count = rows.saturating_sub(self.missing);
        let mut summary = ColumnSummary {
            name: self.name.clone(),
            kind: self.kind.clone(),
            count,
            missing: self.missing,
            missing_share: if rows == 0 {
                0.0
            } else {
                self.missing as f64 / rows as f64
            },
            // Exact where known, else HyperLogLog's estimate, never more
            // than the values present.
            distinct: self
                .exact_distinct
                .unwrap_or_else(|| (self.distinct.estimate().round() as u64).min(count)),
            zeros: self.zeros,
            mean: None,
            std: None,
            min: None,
            max: None,
            quantiles: Vec::new(),
            outliers: None,
            histogram: Vec::new(),
            top_categories: Vec::new(),
            earliest: None,
            latest: None,
        };
        if let Some(range) = &self.temporal_range {
            summary.earliest = Some(range.scale.format(range.min));
            summary.latest = Some(range.scale.format(range.max));
        }
        if let Some(m) = &self.moments {
            summary.mean = m.mean();
            summary.std = m.std(1);
            summary.min = m.min();
            summary.max = m.max();
        }
        if let Some(q) = self.quantiles.as_ref().filter(|q| !q.is_empty()) {
            summary.quantiles = [0.01, 0.05, 0.25, 0.5, 0.75, 0.95, 0.99]
                .into_iter()
                .filter_map(|p| q.quantile(p).map(|v| (p, v)))
                .collect();
            if let (Some(q1), Some(q3)) = (q.quantile(0.25), q.quantile(0.75)) {
                let iqr = q3 - q1;
                if let Some(cdf) = q.cdf(&[q1 - 1.5 * iqr, q3 + 1.5 * iqr]) {
                    let n = q.count() as f64;
                    summary.outliers =
                        Some(((cdf[0] + (1.0 - cdf[1])) * n).round().max(0.0) as u64);
                }
            }
            if let Some(exact) = &self.histogram {
                summary.histogram = exact.bins();
            } else if let (Some(lo), Some(hi)) = (q.min(), q.max()) {
                if hi > lo {
                    let edges: Vec<f64> =
                        (1..20).map(|k| lo + (hi - lo) * k as f64 / 20.0).collect();
                    if let Some(pmf) = q.pmf(&edges) {
                        let n = q.count() as f64;
                        summary.histogram = pmf
                            .iter()
                            .enumerate()
                            .map(|(k, mass)| {
                                (lo + (hi - lo) * k as f64 / 20.0, (mass * n).round() as u64)
                            })
                            .collect();
                    }
                }
            }
        }
        if let Some(categories) = &self.categories {
            summary.top_categories = categories
                .top(20)
                .into_iter()
                .map(|item| (item.item.clone(), item.estimate))
                .collect();
        }
        summary
    }
}

/// A profile as people and the UI read it, with an optional comparison to
/// a second dataset (train against test, last month against this one).
#[derive(Debug, Clone, Serialize)]
pub struct ProfileReport {
    pub data: String,
    pub rows: u64,
    pub columns: Vec<ColumnSummary>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub duplicate_rows: Option<u64>,
    pub constant_columns: Vec<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub correlations: Option<Correlations>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub target: Option<TargetAssociation>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub comparison: Option<Comparison>,
}

#[derive(Debug, Clone, Serialize)]
pub struct Comparison {
    pub other: String,
    pub other_rows: u64,
    pub columns: Vec<ColumnChange>,
    /// Columns only one of the two has.
    pub only_here: Vec<String>,
    pub only_there: Vec<String>,
}

#[derive(Debug, Clone, Serialize)]
pub struct ColumnChange {
    pub name: String,
    pub missing_share: (f64, f64),
    #[serde(skip_serializing_if = "Option::is_none")]
    pub mean: Option<(f64, f64)>,
    /// (mean there − mean here) / std here.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub mean_shift_in_std: Option<f64>,
    /// Categories among the other's top categories that this one lacks.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub new_categories: Vec<String>,
}

impl ProfileReport {
    pub fn new(data: &str, profile: &Profile, other: Option<(&str, &Profile)>) -> ProfileReport {
        let summaries: Vec<ColumnSummary> = profile
            .columns
            .iter()
            .map(|c| c.summary(profile.rows))
            .collect();
        let comparison = other.map(|(name, other)| {
            let theirs: Vec<ColumnSummary> = other
                .columns
                .iter()
                .map(|c| c.summary(other.rows))
                .collect();
            let columns = summaries
                .iter()
                .filter_map(|here| {
                    let there = theirs.iter().find(|t| t.name == here.name)?;
                    let mean = here.mean.zip(there.mean);
                    let known: HashSet<&str> = here
                        .top_categories
                        .iter()
                        .map(|(c, _)| c.as_str())
                        .collect();
                    Some(ColumnChange {
                        name: here.name.clone(),
                        missing_share: (here.missing_share, there.missing_share),
                        mean,
                        mean_shift_in_std: mean
                            .zip(here.std.filter(|s| *s > 0.0))
                            .map(|((a, b), s)| (b - a) / s),
                        new_categories: there
                            .top_categories
                            .iter()
                            .filter(|(c, _)| !known.contains(c.as_str()))
                            .map(|(c, _)| c.clone())
                            .collect(),
                    })
                })
                .collect();
            Comparison {
                other: name.to_string(),
                other_rows: other.rows,
                columns,
                only_here: summaries
                    .iter()
                    .filter(|s| !theirs.iter().any(|t| t.name == s.name))
                    .map(|s| s.name.clone())
                    .collect(),
                only_there: theirs
                    .iter()
                    .filter(|t| !summaries.iter().any(|s| s.name == t.name))
                    .map(|t| t.name.clone())
                    .collect(),
            }
        });
        ProfileReport {
            data: data.to_string(),
            rows: profile.rows,
            constant_columns: profile.constant_columns(),
            columns: summaries,
            duplicate_rows: profile.duplicate_rows,
            correlations: profile.correlations.clone(),
            target: profile.target.clone(),
            comparison,
        }
    }

    /// A self-contained HTML page (inline CSS and SVG, no script).
    pub fn to_html(&self) -> String {
        use maud::{html, PreEscaped, DOCTYPE};
        let number = |x: Option<f64>| x.map_or("—".to_string(), |v| format!("{v:.4}"));
        let bars = |histogram: &[(f64, u64)]| {
            let max = histogram.iter().map(|(_, c)| *c).max().unwrap_or(1).max(1) as f64;
            html! {
                svg width="200" height="40" viewBox="0 0 200 40" {
                    @for (k, (_, count)) in histogram.iter().enumerate() {
                        @let h = (*count as f64 / max * 38.0).max(0.5);
                        rect x=(k * 10) y=(format!("{:.1}", 40.0 - h)) width="9" height=(format!("{h:.1}")) fill="#4a6fa5" {}
                    }
                }
            }
        };
        html! {
            (DOCTYPE)
            html lang="en" {
                head {
                    meta charset="utf-8";
                    title { "Profile of " (self.data) }
                    style { (PreEscaped("body{font:14px/1.45 system-ui,sans-serif;margin:2rem;color:#1d2330}table{border-collapse:collapse;margin:.5rem 0}td,th{border-bottom:1px solid #e3e6ee;padding:.25rem .5rem;text-align:left;vertical-align:top}th{background:#f5f6fa}.muted{color:#6b7280}")) }
                }
                body {
                    h1 { "Profile of " code { (self.data) } }
                    p.muted {
                        (self.rows) " rows, " (self.columns.len()) " columns"
                        @if let Some(d) = self.duplicate_rows { ", " (d) " duplicate rows" }
                        @if !self.constant_columns.is_empty() { ", constant: " (self.constant_columns.join(", ")) }
                    }
                    table {
                        tr { th { "Column" } th { "Type" } th { "Missing" } th { "Distinct" } th { "Mean" } th { "Std" } th { "Min" } th { "Median" } th { "Max" } th { "Zeros" } th { "Outliers" } th { "Distribution" } }
                        @for c in &self.columns {
                            tr {
                                td { code { (c.name) } }
                                td { (c.kind) }
                                td { (c.missing) " (" (format!("{:.1}%", c.missing_share * 100.0)) ")" }
                                td { (c.distinct) }
                                td { (number(c.mean)) } td { (number(c.std)) }
                                td { @if let Some(earliest) = &c.earliest { (earliest) } @else { (number(c.min)) } }
                                td { (number(c.quantiles.iter().find(|(p, _)| *p == 0.5).map(|(_, v)| *v))) }
                                td { @if let Some(latest) = &c.latest { (latest) } @else { (number(c.max)) } }
                                td { (c.zeros) }
                                td { (c.outliers.map_or("—".into(), |o| o.to_string())) }
                                td {
                                    @if !c.histogram.is_empty() { (bars(&c.histogram)) }
                                    @for (label, count) in c.top_categories.iter().take(5) { (label) " " span.muted { (count) } br; }
                                }
                            }
                        }
                    }
                    @if let Some(target) = &self.target {
                        h2 { "Association with " code { (target.column) } }
                        table {
                            tr { th { "Column" } th { "Measure" } th { "Value" } }
                            @for (name, measure, value) in &target.associations { tr { td { (name) } td { (measure) } td { (number(*value)) } } }
                        }
                    }
                    @if let Some(comparison) = &self.comparison {
                        h2 { "Compared with " code { (comparison.other) } " (" (comparison.other_rows) " rows)" }
                        table {
                            tr { th { "Column" } th { "Missing here / there" } th { "Mean here / there" } th { "Shift (std)" } th { "New categories" } }
                            @for c in &comparison.columns {
                                tr {
                                    td { (c.name) }
                                    td { (format!("{:.1}% / {:.1}%", c.missing_share.0 * 100.0, c.missing_share.1 * 100.0)) }
                                    td { @if let Some((a, b)) = c.mean { (format!("{a:.4} / {b:.4}")) } }
                                    td { (number(c.mean_shift_in_std)) }
                                    td { (c.new_categories.join(", ")) }
                                }
                            }
                        }
                    }
                }
            }
        }
        .into_string()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Histograms count every finite value once, in numpy's bins: the
    /// maximum in the last, values on an edge in the bin above it.
    #[test]
    fn histograms_are_exact() {
        let mut values: Vec<f64> = (0..100).map(f64::from).collect();
        values.extend([f64::NAN, f64::INFINITY]);
        let histogram = Histogram::of(&values, 0.0, 99.0).unwrap();
        assert_eq!(histogram.counts.iter().sum::<u64>(), 100);
        // Edges at 0, 4.95, 9.9, …: 0..=4 in the first bin, 5..=9 in the second.
        assert_eq!(histogram.counts[0], 5);
        assert_eq!(histogram.counts[19], 5, "99 is in the last bin");
        // Each value is counted in the bin whose edges hold it (the scaled
        // index alone can be one off by rounding).
        let edges = Histogram::of(&[0.0, 0.3, 0.6, 1.0], 0.0, 1.0).unwrap();
        let bins = edges.bins();
        let at = |x: f64| bins.iter().rposition(|(lower, _)| *lower <= x).unwrap();
        for (k, (_, count)) in bins.iter().enumerate() {
            let expected = [0.0, 0.3, 0.6, 1.0]
                .iter()
                .filter(|&&x| at(x).min(19) == k)
                .count() as u64;
            assert_eq!(*count, expected, "bin {k}");
        }
        assert!(Histogram::of(&[2.0, 2.0], 2.0, 2.0).is_none());
    }

    /// A Parquet column of timestamps with gaps: its rows, missing and
    /// distinct values are counted (they read 0 before), and its range is
    /// printed as dates.
    #[test]
    fn timestamps_with_gaps_are_counted() {
        use arrow_array::{ArrayRef, Int64Array, RecordBatch, TimestampMicrosecondArray};
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("times.parquet");
        let times: Vec<Option<i64>> = (0..30)
            .map(|i| (i % 3 != 1).then_some(1_600_000_000_000_000 + (i % 3) * 86_400_000_000))
            .collect();
        let batch = RecordBatch::try_from_iter([
            (
                "t",
                std::sync::Arc::new(TimestampMicrosecondArray::from(times)) as ArrayRef,
            ),
            (
                "n",
                std::sync::Arc::new(Int64Array::from_iter_values(0..30)) as ArrayRef,
            ),
        ])
        .unwrap();
        let mut writer = parquet::arrow::ArrowWriter::try_new(
            std::fs::File::create(&path).unwrap(),
            batch.schema(),
            None,
        )
        .unwrap();
        writer.write(&batch).unwrap();
        writer.close().unwrap();
        let table = crate::dataset::Table::open(&path).unwrap();
        let profile = Profile::of(&table, None).unwrap();
        let summary = profile.columns[0].summary(30);
        assert_eq!(summary.kind, "datetime");
        assert_eq!(
            (summary.count, summary.missing, summary.distinct),
            (20, 10, 2)
        );
        // 1_600_000_000 s is 2020-09-13 12:26:40 UTC; the latest is two days on.
        assert_eq!(summary.earliest.as_deref(), Some("2020-09-13 12:26:40"));
        assert_eq!(summary.latest.as_deref(), Some("2020-09-15 12:26:40"));
        // A merge keeps the widest range.
        let mut twice = profile.clone();
        twice.merge(&profile).unwrap();
        let merged = twice.columns[0].summary(60);
        assert_eq!(
            (merged.earliest, merged.latest),
            (summary.earliest, summary.latest)
        );
    }

    /// Gaps that follow a regime: the rows two columns share sit far from
    /// a column's own mean, where a one-pass sum about that mean cancels
    /// (r came out as 1.0 for 0.995); and a column constant on the shared
    /// rows, or constant but for rounding, has no r, ρ or η.
    #[test]
    fn correlations_survive_far_regimes_and_constants() {
        let rows = 1000;
        let noise = |i: usize| ((i * 7919) % 1000) as f64 / 1000.0;
        let y: Vec<f64> = (0..rows)
            .map(|i| {
                if i % 2 == 0 {
                    f64::NAN
                } else {
                    noise(i) + noise(i * 3) * 0.1
                }
            })
            .collect();
        let x: Vec<f64> = (0..rows)
            .map(|i| if i % 2 == 0 { 0.0 } else { 1e7 + noise(i) })
            .collect();
        let got = pearson(&x, &y).unwrap();
        let want = pearson_by_definition(&x, &y);
        assert!((got - want).abs() < 1e-9, "{got} vs {want}");
        let tenths = vec![0.1; rows];
        let constant_where_shared: Vec<f64> = (0..rows)
            .map(|i| if i % 2 == 0 { noise(i) } else { 0.1 })
            .collect();
        assert_eq!(pearson(&tenths, &x), None);
        assert_eq!(pearson(&constant_where_shared, &y), None);
        let groups: Vec<u32> = (0..rows as u32).map(|i| i % 3).collect();
        assert_eq!(correlation_ratio(&tenths, &groups, 3), None);
        let names: Vec<String> = ["tenths", "x"].iter().map(|n| n.to_string()).collect();
        let values: Vec<std::sync::Arc<ColumnValues>> = [tenths, x]
            .into_iter()
            .map(|values| {
                std::sync::Arc::new(ColumnValues::Numeric {
                    values,
                    integer: false,
                })
            })
            .collect();
        let found = correlations(&names, &values, &sample_rows(rows, CORRELATION_ROWS));
        assert_eq!((found.pearson[0][1], found.spearman[0][1]), (None, None));
    }

    /// Pearson's r in two passes (means, then co-moments) over the rows
    /// where both hold a number.
    fn pearson_by_definition(x: &[f64], y: &[f64]) -> f64 {
        let rows: Vec<usize> = (0..x.len())
            .filter(|&i| x[i].is_finite() && y[i].is_finite())
            .collect();
        let n = rows.len() as f64;
        let mx = rows.iter().map(|&i| x[i]).sum::<f64>() / n;
        let my = rows.iter().map(|&i| y[i]).sum::<f64>() / n;
        let (mut sxy, mut sxx, mut syy) = (0.0, 0.0, 0.0);
        for &i in &rows {
            sxy += (x[i] - mx) * (y[i] - my);
            sxx += (x[i] - mx).powi(2);
            syy += (y[i] - my).powi(2);
        }
        sxy / (sxx * syy).sqrt()
    }

    /// Spearman's ρ the long way: keep the rows where both hold a number,
    /// give each value its average rank by counting, and take Pearson's r
    /// of the ranks.
    fn spearman_by_definition(x: &[f64], y: &[f64]) -> Option<f64> {
        let rows: Vec<usize> = (0..x.len())
            .filter(|&i| x[i].is_finite() && y[i].is_finite())
            .collect();
        let rank = |v: &[f64], value: f64| {
            let below = rows.iter().filter(|&&i| v[i] < value).count() as f64;
            let equal = rows.iter().filter(|&&i| v[i] == value).count() as f64;
            below + (equal + 1.0) / 2.0
        };
        let rx: Vec<f64> = rows.iter().map(|&i| rank(x, x[i])).collect();
        let ry: Vec<f64> = rows.iter().map(|&i| rank(y, y[i])).collect();
        pearson(&rx, &ry)
    }

    /// Complete and gappy columns, with ties, in both orders: the shortcuts
    /// (a column's own ranks and mean reused, integer co-moments) give r and
    /// ρ by definition.
    #[test]
    fn correlations_with_gaps_and_ties_match_their_definitions() {
        let rows = 400;
        let mut state = 7u64;
        let mut next = move || {
            state = state
                .wrapping_mul(6364136223846793005)
                .wrapping_add(1442695040888963407);
            (state >> 33) as f64 / (1u64 << 31) as f64
        };
        let complete: Vec<f64> = (0..rows).map(|_| (next() * 50.0).floor()).collect();
        let other_complete: Vec<f64> = complete.iter().map(|v| v * 0.5 + next()).collect();
        let gappy = |missing: f64, next: &mut dyn FnMut() -> f64| -> Vec<f64> {
            (0..rows)
                .map(|i| {
                    if next() < missing {
                        f64::NAN
                    } else {
                        complete[i] + (next() * 20.0).floor()
                    }
                })
                .collect()
        };
        let gaps_a = gappy(0.1, &mut next);
        let gaps_b = gappy(0.3, &mut next);
        // Signed zeros are equal values, so tied.
        let zeros: Vec<f64> = (0..rows)
            .map(|i| match i % 3 {
                0 => -0.0,
                1 => 0.0,
                _ => complete[i],
            })
            .collect();
        let columns = [complete.clone(), other_complete, gaps_a, gaps_b, zeros];
        let names: Vec<String> = (0..columns.len()).map(|i| format!("c{i}")).collect();
        let values: Vec<std::sync::Arc<ColumnValues>> = columns
            .iter()
            .map(|x| {
                std::sync::Arc::new(ColumnValues::Numeric {
                    values: x.clone(),
                    integer: false,
                })
            })
            .collect();
        let found = correlations(&names, &values, &sample_rows(rows, CORRELATION_ROWS));
        for i in 0..columns.len() {
            for j in 0..columns.len() {
                let got = found.spearman[i][j].expect("a correlation");
                let want = spearman_by_definition(&columns[i], &columns[j]).expect("one too");
                assert!((got - want).abs() < 1e-12, "{i} {j}: {got} vs {want}");
                let got = found.pearson[i][j].expect("a correlation");
                let want = pearson_by_definition(&columns[i], &columns[j]);
                assert!((got - want).abs() < 1e-12, "{i} {j}: {got} vs {want}");
            }
        }
    }
}
