//! Evidently 0.7's default drift methods, reproduced.
//!
//! `evidently/legacy/calculations/data_drift.py::get_one_column_drift`
//! drops NaN and ±infinity from both sides, then
//! `stattests/registry.py::_get_default_stattest` picks the test from the
//! column's type, the cleaned **reference** length (cut at 1000 rows) and the
//! number of distinct values in reference ∪ current (cut at 2 and 5):
//!
//! | | reference ≤ 1000 | reference > 1000 |
//! |---|---|---|
//! | numerical, > 5 distinct | K-S p-value ≤ 0.05 | normed Wasserstein ≥ 0.1 |
//! | numerical, 3–5 distinct | chi-square p < 0.05 | Jensen-Shannon ≥ 0.1 |
//! | numerical, ≤ 2 distinct | Z-test p < 0.05 | Jensen-Shannon ≥ 0.1 |
//! | categorical, > 2 distinct | chi-square p < 0.05 | Jensen-Shannon ≥ 0.1 |
//! | categorical, ≤ 2 distinct | Z-test p < 0.05 | Jensen-Shannon ≥ 0.1 |
//!
//! The tests' quirks are kept on purpose, because this mode exists to give
//! Evidently's numbers: the chi-square is a goodness-of-fit test against the
//! reference's sampled proportions (it over-rejects; `sextant` mode uses a
//! two-sample test), Jensen-Shannon is in natural-log units, and numeric
//! bins are Sturges bins over the combined data.

use sextant_stats::{contingency, divergence, ks, wasserstein};

use super::columns::{distinct_in_union_up_to, CategoryCounts, SortedNumbers};
use super::{ColumnDrift, ColumnOutcome, ColumnPair, ColumnType, Distribution};

/// Evidently's cut between small and large references.
const SMALL_REFERENCE_ROWS: usize = 1000;

#[derive(Debug, Clone, Copy, PartialEq)]
enum StatTest {
    KolmogorovSmirnov,
    WassersteinNormed,
    JensenShannon,
    ChiSquare,
    ZTest,
}

impl StatTest {
    /// (registry name, display name, default threshold, higher score means drift)
    fn describe(self) -> (&'static str, &'static str, f64, bool) {
        match self {
            StatTest::KolmogorovSmirnov => ("ks", "K-S p_value", 0.05, false),
            StatTest::WassersteinNormed => {
                ("wasserstein", "Wasserstein distance (normed)", 0.1, true)
            }
            StatTest::JensenShannon => ("jensenshannon", "Jensen-Shannon distance", 0.1, true),
            StatTest::ChiSquare => ("chisquare", "chi-square p_value", 0.05, false),
            StatTest::ZTest => ("z", "Z-test p_value", 0.05, false),
        }
    }

    /// `_get_default_stattest`.
    fn default_for(column_type: ColumnType, reference_rows: usize, distinct: usize) -> StatTest {
        let small = reference_rows <= SMALL_REFERENCE_ROWS;
        match (column_type, small) {
            (ColumnType::Numerical, true) if distinct > 5 => StatTest::KolmogorovSmirnov,
            (ColumnType::Numerical, true) if distinct > 2 => StatTest::ChiSquare,
            (ColumnType::Numerical, true) => StatTest::ZTest,
            (ColumnType::Numerical, false) if distinct > 5 => StatTest::WassersteinNormed,
            (ColumnType::Numerical, false) => StatTest::JensenShannon,
            (_, true) if distinct > 2 => StatTest::ChiSquare,
            (_, true) => StatTest::ZTest,
            (_, false) => StatTest::JensenShannon,
        }
    }
}

pub(crate) fn compare(pair: &ColumnPair<'_>) -> ColumnOutcome {
    match pair.column_type {
        ColumnType::Numerical => compare_numerical(pair),
        ColumnType::Categorical => compare_categorical(pair),
        ColumnType::Text => ColumnOutcome::Skipped("text columns are not compared".to_string()),
    }
}

fn empty_reason(reference_empty: bool) -> String {
    let side = if reference_empty {
        "reference"
    } else {
        "current data"
    };
    format!("every value in the {side} is missing (Evidently stops here: \"An empty column was provided\")")
}

fn compare_numerical(pair: &ColumnPair<'_>) -> ColumnOutcome {
    let reference = SortedNumbers::new(pair.reference);
    let current = SortedNumbers::new(pair.current);
    if reference.values.is_empty() || current.values.is_empty() {
        return ColumnOutcome::Skipped(empty_reason(reference.values.is_empty()));
    }
    // The table only asks whether there are more than 2 or 5 values.
    let distinct = distinct_in_union_up_to(&reference.values, &current.values, 6);
    let test = StatTest::default_for(ColumnType::Numerical, reference.values.len(), distinct);
    let distribution = numeric_distribution(&reference, &current);
    let score = match test {
        StatTest::KolmogorovSmirnov => {
            ks::ks_2samp_sorted(&reference.values, &current.values).p_value
        }
        StatTest::WassersteinNormed => {
            // `np.std` of the reference (ddof 0), floored at 0.001.
            let norm = sextant_stats::wasserstein::population_std(&reference.values).max(0.001);
            wasserstein::wasserstein_1_sorted(&reference.values, &current.values) / norm
        }
        StatTest::JensenShannon => {
            let (reference_shares, current_shares) = binned_shares(&reference, &current);
            divergence::jensen_shannon_distance(
                &reference_shares,
                &current_shares,
                divergence::LogBase::E,
            )
        }
        StatTest::ChiSquare | StatTest::ZTest => {
            let counts = CategoryCounts::of_numbers(&reference, &current);
            categorical_score(test, &counts)
        }
    };
    ColumnOutcome::Compared(Box::new(verdict(
        pair,
        test,
        score,
        reference.values.len(),
        current.values.len(),
        reference.missing_share(),
        current.missing_share(),
        distribution,
    )))
}

fn compare_categorical(pair: &ColumnPair<'_>) -> ColumnOutcome {
    let counts = CategoryCounts::new(pair.reference, pair.current);
    if counts.reference_total == 0 || counts.current_total == 0 {
        return ColumnOutcome::Skipped(empty_reason(counts.reference_total == 0));
    }
    let test = StatTest::default_for(
        ColumnType::Categorical,
        counts.reference_total as usize,
        counts.labels.len(),
    );
    let score = match test {
        StatTest::JensenShannon => divergence::jensen_shannon_distance(
            &counts.reference_shares(),
            &counts.current_shares(),
            divergence::LogBase::E,
        ),
        _ => categorical_score(test, &counts),
    };
    let distribution = Distribution {
        kind: "categories".to_string(),
        edges: Vec::new(),
        labels: counts.labels.clone(),
        reference: counts.reference_shares(),
        current: counts.current_shares(),
    };
    ColumnOutcome::Compared(Box::new(verdict(
        pair,
        test,
        score,
        counts.reference_total as usize,
        counts.current_total as usize,
        super::columns::share(counts.reference_missing, counts.reference_rows),
        super::columns::share(counts.current_missing, counts.current_rows),
        distribution,
    )))
}

/// The chi-square and Z-test p-values, on counts per category.
fn categorical_score(test: StatTest, counts: &CategoryCounts) -> f64 {
    match test {
        StatTest::ChiSquare => {
            // `chisquare(f_obs=current counts, f_exp=reference counts · n_cur / n_ref)`.
            let scale = counts.current_total as f64 / counts.reference_total as f64;
            let expected: Vec<f64> = counts.reference.iter().map(|&n| n as f64 * scale).collect();
            let observed: Vec<f64> = counts.current.iter().map(|&n| n as f64).collect();
            contingency::chi_square_goodness_of_fit(&observed, &expected).p_value
        }
        StatTest::ZTest => {
            // One value on both sides, the same one: Evidently answers p = 1.
            if counts.labels.len() == 1 {
                return 1.0;
            }
            // The indicator "value is not the smallest key", compared with a
            // pooled two-proportion z statistic; the p-value as Evidently
            // writes it, 2·(1 − Φ(|z|)), so tiny p-values round to 0 as there.
            contingency::two_proportion_z_evidently(
                counts.reference_total - counts.reference[0],
                counts.reference_total,
                counts.current_total - counts.current[0],
                counts.current_total,
            )
            .p_value
        }
        _ => unreachable!("only chi-square and Z work on counts"),
    }
}

#[allow(clippy::too_many_arguments)]
fn verdict(
    pair: &ColumnPair<'_>,
    test: StatTest,
    score: f64,
    reference_count: usize,
    current_count: usize,
    reference_missing_share: f64,
    current_missing_share: f64,
    distribution: Distribution,
) -> ColumnDrift {
    let (method, method_name, threshold, higher_means_drift) = test.describe();
    // K-S drifts at p ≤ threshold, the other p-value tests at p < threshold
    // (`ks_stattest.py` against `chisquare_stattest.py` and `z_stattest.py`).
    let drifted = match test {
        _ if higher_means_drift => score >= threshold,
        StatTest::KolmogorovSmirnov => score <= threshold,
        _ => score < threshold,
    };
    ColumnDrift {
        column: pair.name.to_string(),
        column_type: pair.column_type,
        role: pair.role,
        method: method.to_string(),
        method_name: method_name.to_string(),
        statistic: score,
        p_value: (!higher_means_drift).then_some(score),
        threshold,
        drifted,
        reasons: if drifted {
            vec!["distribution".to_string()]
        } else {
            Vec::new()
        },
        reference_count,
        current_count,
        reference_missing_share,
        current_missing_share,
        effect_sizes: None,
        unseen_share: None,
        unseen_categories: Vec::new(),
        missing: None,
        distribution,
    }
}

/// Evidently's `get_binned_data` without zero filling (what its
/// Jensen-Shannon uses): Sturges bins over reference ∪ current when the
/// reference has more than 20 distinct values, one bin per distinct value
/// otherwise; shares of each side's own length.
fn binned_shares(reference: &SortedNumbers, current: &SortedNumbers) -> (Vec<f64>, Vec<f64>) {
    if reference.distinct_up_to(21) > 20 {
        let edges = sturges_edges(&reference.values, &current.values);
        let shares = |values: &[f64]| {
            histogram_counts(values, &edges)
                .into_iter()
                .map(|n| n as f64 / values.len() as f64)
                .collect()
        };
        (shares(&reference.values), shares(&current.values))
    } else {
        let counts = CategoryCounts::of_numbers(reference, current);
        (counts.reference_shares(), counts.current_shares())
    }
}

/// `np.histogram_bin_edges(concat(reference, current), bins="sturges")`:
/// width = ptp / (log2(n) + 1), bins = ⌈(max − min) / width⌉, edges from
/// `np.linspace(min, max, bins + 1)` (i·step + min, the last edge exactly max).
fn sturges_edges(reference: &[f64], current: &[f64]) -> Vec<f64> {
    let min = reference[0].min(current[0]);
    let max = reference[reference.len() - 1].max(current[current.len() - 1]);
    let n = (reference.len() + current.len()) as f64;
    let width = (max - min) / (n.log2() + 1.0);
    let (first, last, bins) = if width > 0.0 {
        (min, max, ((max - min) / width).ceil() as usize)
    } else {
        (min - 0.5, max + 0.5, 1)
    };
    linspace(first, last, bins + 1)
}

/// `np.linspace(start, stop, num)` with the endpoint.
fn linspace(start: f64, stop: f64, num: usize) -> Vec<f64> {
    let div = (num - 1) as f64;
    let delta = stop - start;
    let step = delta / div;
    let mut edges: Vec<f64> = if step == 0.0 {
        (0..num).map(|i| i as f64 / div * delta + start).collect()
    } else {
        (0..num).map(|i| i as f64 * step + start).collect()
    };
    edges[num - 1] = stop;
    edges
}

/// `np.histogram(values, edges)[0]` for sorted values: bin i holds
/// edges[i] ≤ x < edges[i+1], the last bin also x = edges[last]; values
/// outside the edges are not counted.
fn histogram_counts(sorted: &[f64], edges: &[f64]) -> Vec<u64> {
    let below = |edge: f64| sorted.partition_point(|&x| x < edge);
    let mut cumulative: Vec<usize> = edges[..edges.len() - 1].iter().map(|&e| below(e)).collect();
    cumulative.push(sorted.partition_point(|&x| x <= edges[edges.len() - 1]));
    cumulative
        .windows(2)
        .map(|w| (w[1] - w[0]) as u64)
        .collect()
}

/// The chart of a numeric column: Evidently-style Sturges bins over both
/// sides, capped at 40 bins so the chart stays readable.
pub(crate) fn numeric_distribution(
    reference: &SortedNumbers,
    current: &SortedNumbers,
) -> Distribution {
    if reference.values.is_empty() || current.values.is_empty() {
        return Distribution {
            kind: "bins".to_string(),
            edges: Vec::new(),
            labels: Vec::new(),
            reference: Vec::new(),
            current: Vec::new(),
        };
    }
    let mut edges = sturges_edges(&reference.values, &current.values);
    if edges.len() > 41 {
        edges = linspace(edges[0], edges[edges.len() - 1], 41);
    }
    let shares = |values: &[f64], edges: &[f64]| -> Vec<f64> {
        histogram_counts(values, edges)
            .into_iter()
            .map(|n| n as f64 / values.len() as f64)
            .collect()
    };
    let mut reference_shares = shares(&reference.values, &edges);
    // A skewed column (amounts, counts) puts most of the reference in one
    // equal-width bin, which says nothing: draw it on the reference's
    // quantiles instead, so each bar holds a similar share of it.
    if reference_shares.iter().any(|&share| share > 0.5) {
        if let Some(quantile_edges) = quantile_edges(&reference.values, &current.values, 20) {
            edges = quantile_edges;
            reference_shares = shares(&reference.values, &edges);
        }
    }
    Distribution {
        kind: "bins".to_string(),
        reference: reference_shares,
        current: shares(&current.values, &edges),
        edges,
        labels: Vec::new(),
    }
}

/// Bin edges at the reference's `bins`-quantiles (type 7, numpy's
/// default: linear between order statistics), stretched to cover both
/// sides; `None` when the reference has too few distinct values for more
/// than one bin.
fn quantile_edges(reference: &[f64], current: &[f64], bins: usize) -> Option<Vec<f64>> {
    let n = reference.len();
    let quantile = |q: f64| {
        let position = q * (n - 1) as f64;
        let (low, high) = (position.floor() as usize, position.ceil() as usize);
        reference[low] + (reference[high] - reference[low]) * (position - low as f64)
    };
    let mut edges: Vec<f64> = (0..=bins)
        .map(|i| quantile(i as f64 / bins as f64))
        .collect();
    edges[0] = edges[0].min(current.first().copied().unwrap_or(edges[0]));
    let last = edges.len() - 1;
    edges[last] = edges[last].max(current.last().copied().unwrap_or(edges[last]));
    edges.dedup();
    (edges.len() >= 3).then_some(edges)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn linspace_matches_numpy_construction() {
        let edges = linspace(0.0, 1.0, 11);
        assert_eq!(edges.len(), 11);
        assert_eq!(edges[3], 3.0 * 0.1);
        assert_eq!(edges[10], 1.0);
    }

    #[test]
    fn histogram_closes_the_last_bin() {
        let counts = histogram_counts(&[0.0, 0.5, 1.0, 1.0, 2.0], &[0.0, 1.0, 2.0]);
        assert_eq!(counts, vec![2, 3]);
    }

    #[test]
    fn default_tests_follow_evidentlys_table() {
        use ColumnType::*;
        assert_eq!(
            StatTest::default_for(Numerical, 1000, 6),
            StatTest::KolmogorovSmirnov
        );
        assert_eq!(
            StatTest::default_for(Numerical, 1000, 5),
            StatTest::ChiSquare
        );
        assert_eq!(StatTest::default_for(Numerical, 1000, 2), StatTest::ZTest);
        assert_eq!(
            StatTest::default_for(Numerical, 1001, 6),
            StatTest::WassersteinNormed
        );
        assert_eq!(
            StatTest::default_for(Numerical, 1001, 5),
            StatTest::JensenShannon
        );
        assert_eq!(
            StatTest::default_for(Categorical, 1000, 3),
            StatTest::ChiSquare
        );
        assert_eq!(StatTest::default_for(Categorical, 1000, 2), StatTest::ZTest);
        assert_eq!(
            StatTest::default_for(Categorical, 1001, 2),
            StatTest::JensenShannon
        );
    }
}
