//! Sextant's drift methods.
//!
//! Evidently's defaults have three weaknesses measured in
//! `shared/reference/monitoring.md` §7.4: bins that move with every current
//! window (scores are not comparable over time), p-values taken per column
//! without multiple-testing control (chance alarms), and a goodness-of-fit
//! chi-square that treats the reference's sampled proportions as exact
//! (17–100% false positives at a nominal 5%). Here:
//!
//! - **Numbers** are binned at the reference's deciles (open-ended outer
//!   bins), fixed by the reference alone. The verdict statistic is the
//!   normed Wasserstein distance W1/σ_ref (a shift measured in reference
//!   standard deviations, threshold 0.1); PSI (threshold 0.25, "major
//!   shift" in credit-scoring practice, Yurdakul 2018) catches shape changes
//!   that move little mass far. Significance comes from the two-sample K-S
//!   test.
//! - **Categories** are compared on the union of both vocabularies with the
//!   Jensen-Shannon distance in bits (bounded by 1, threshold 0.1) and the
//!   two-sample chi-square test of homogeneity (`chi2_contingency`), which
//!   keeps its nominal level. Categories never seen in the reference are
//!   reported on their own (`unseen_share`, `unseen_categories`).
//! - A column drifts when its effect is **material** (over the threshold)
//!   **and significant**: the p-value, adjusted by Benjamini-Hochberg across
//!   the report's columns, is below 0.05. Large samples no longer flag
//!   negligible shifts; small samples no longer flag noise.
//! - **Missingness** is tested separately (pooled two-proportion z-test,
//!   adjusted the same way; material from a 1-point change), because every
//!   distribution test drops missing values and cannot see them change.

use sextant_stats::{contingency, correction, divergence, ks, wasserstein};

use super::columns::{share, CategoryCounts, SortedNumbers};
use super::evidently::numeric_distribution;
use super::{
    ColumnDrift, ColumnOutcome, ColumnPair, ColumnType, Distribution, EffectSizes, MissingDrift,
};

/// Significance level after correction.
const ALPHA: f64 = 0.05;
/// Normed Wasserstein: a shift of a tenth of the reference's standard deviation.
const WASSERSTEIN_THRESHOLD: f64 = 0.1;
/// PSI over decile bins: "major shift".
const PSI_MAJOR: f64 = 0.25;
/// Jensen-Shannon distance in bits.
const JENSEN_SHANNON_THRESHOLD: f64 = 0.1;
/// Missing share: a change of one percentage point.
const MISSING_SHARE_THRESHOLD: f64 = 0.01;
/// PSI's share for an empty bin (ln 0 is undefined), the usual ε.
const PSI_EMPTY_SHARE: f64 = 1e-4;
/// Reference deciles.
const NUMERIC_BINS: usize = 10;
/// A numeric column with at most this many distinct reference values is
/// compared value by value, like categories.
const DISCRETE_VALUES: usize = 20;

pub(crate) fn compare(pair: &ColumnPair<'_>) -> ColumnOutcome {
    match pair.column_type {
        ColumnType::Numerical => {
            let reference = SortedNumbers::new(pair.reference);
            let current = SortedNumbers::new(pair.current);
            if let Some(reason) = empty_side(reference.values.len(), current.values.len(), || {
                (reference.missing_share(), current.missing_share())
            }) {
                return ColumnOutcome::Skipped(reason);
            }
            if reference.distinct_up_to(DISCRETE_VALUES + 1) <= DISCRETE_VALUES {
                let counts = CategoryCounts::of_numbers(&reference, &current);
                let mut column = compare_counts(pair, &counts);
                column.distribution = numeric_distribution(&reference, &current);
                return ColumnOutcome::Compared(Box::new(column));
            }
            ColumnOutcome::Compared(Box::new(compare_continuous(pair, &reference, &current)))
        }
        ColumnType::Categorical => {
            let counts = CategoryCounts::new(pair.reference, pair.current);
            if let Some(reason) = empty_side(
                counts.reference_total as usize,
                counts.current_total as usize,
                || {
                    (
                        share(counts.reference_missing, counts.reference_rows),
                        share(counts.current_missing, counts.current_rows),
                    )
                },
            ) {
                return ColumnOutcome::Skipped(reason);
            }
            ColumnOutcome::Compared(Box::new(compare_counts(pair, &counts)))
        }
        ColumnType::Text => ColumnOutcome::Skipped("text columns are not compared".to_string()),
    }
}

fn empty_side(
    reference_present: usize,
    current_present: usize,
    missing_shares: impl Fn() -> (f64, f64),
) -> Option<String> {
    if reference_present > 0 && current_present > 0 {
        return None;
    }
    let (reference_missing, current_missing) = missing_shares();
    let side = if reference_present == 0 {
        "reference"
    } else {
        "current data"
    };
    Some(format!(
        "every value in the {side} is missing (missing share: reference {:.1}%, current {:.1}%)",
        reference_missing * 100.0,
        current_missing * 100.0
    ))
}

fn compare_continuous(
    pair: &ColumnPair<'_>,
    reference: &SortedNumbers,
    current: &SortedNumbers,
) -> ColumnDrift {
    let edges = decile_edges(&reference.values);
    let reference_shares = bin_shares(&reference.values, &edges);
    let current_shares = bin_shares(&current.values, &edges);
    let psi = psi_with_empty_bins(&reference_shares, &current_shares);
    let jensen_shannon = divergence::jensen_shannon_distance(
        &reference_shares,
        &current_shares,
        divergence::LogBase::Two,
    );
    let wasserstein_normed = wasserstein::wasserstein_1_sorted(&reference.values, &current.values)
        / sextant_stats::wasserstein::population_std(&reference.values).max(1e-3);
    // scipy's finite-sample p-value up to 10 000 values a side; beyond, the
    // limiting distribution (only "below 0.05 after correction" matters).
    let ks = if reference.values.len().min(current.values.len()) > 10_000 {
        ks::ks_2samp_limiting_sorted(&reference.values, &current.values)
    } else {
        ks::ks_2samp_sorted(&reference.values, &current.values)
    };
    ColumnDrift {
        column: pair.name.to_string(),
        column_type: pair.column_type,
        role: pair.role,
        method: "wasserstein_normed".to_string(),
        method_name: "Wasserstein distance / reference std (K-S significance)".to_string(),
        statistic: wasserstein_normed,
        p_value: Some(ks.p_value),
        threshold: WASSERSTEIN_THRESHOLD,
        drifted: false,
        reasons: Vec::new(),
        reference_count: reference.values.len(),
        current_count: current.values.len(),
        reference_missing_share: reference.missing_share(),
        current_missing_share: current.missing_share(),
        effect_sizes: Some(EffectSizes {
            psi,
            jensen_shannon,
            wasserstein_normed: Some(wasserstein_normed),
            ks_statistic: Some(ks.statistic),
            raw_p_value: ks.p_value,
        }),
        unseen_share: None,
        unseen_categories: Vec::new(),
        missing: Some(missing_test(
            reference.missing,
            reference.total,
            current.missing,
            current.total,
        )),
        distribution: numeric_distribution(reference, current),
    }
}

fn compare_counts(pair: &ColumnPair<'_>, counts: &CategoryCounts) -> ColumnDrift {
    let reference_shares = counts.reference_shares();
    let current_shares = counts.current_shares();
    let psi = psi_with_empty_bins(&reference_shares, &current_shares);
    let jensen_shannon = divergence::jensen_shannon_distance(
        &reference_shares,
        &current_shares,
        divergence::LogBase::Two,
    );
    let p_value = if counts.labels.len() < 2 {
        // One value on both sides: nothing can differ.
        1.0
    } else {
        let reference_row: Vec<f64> = counts.reference.iter().map(|&n| n as f64).collect();
        let current_row: Vec<f64> = counts.current.iter().map(|&n| n as f64).collect();
        contingency::chi2_contingency(&[&reference_row, &current_row])
            .map(|result| result.p_value)
            .unwrap_or(1.0)
    };
    let mut unseen: Vec<(u64, &str)> = counts
        .labels
        .iter()
        .zip(counts.reference.iter().zip(&counts.current))
        .filter(|(_, (&r, &c))| r == 0 && c > 0)
        .map(|(label, (_, &c))| (c, label.as_str()))
        .collect();
    let unseen_count: u64 = unseen.iter().map(|(c, _)| c).sum();
    unseen.sort_unstable_by(|a, b| b.0.cmp(&a.0).then(a.1.cmp(b.1)));
    ColumnDrift {
        column: pair.name.to_string(),
        column_type: pair.column_type,
        role: pair.role,
        method: "jensenshannon_bits".to_string(),
        method_name: "Jensen-Shannon distance, base 2 (chi-square homogeneity significance)"
            .to_string(),
        statistic: jensen_shannon,
        p_value: Some(p_value),
        threshold: JENSEN_SHANNON_THRESHOLD,
        drifted: false,
        reasons: Vec::new(),
        reference_count: counts.reference_total as usize,
        current_count: counts.current_total as usize,
        reference_missing_share: share(counts.reference_missing, counts.reference_rows),
        current_missing_share: share(counts.current_missing, counts.current_rows),
        effect_sizes: Some(EffectSizes {
            psi,
            jensen_shannon,
            wasserstein_normed: None,
            ks_statistic: None,
            raw_p_value: p_value,
        }),
        unseen_share: Some(unseen_count as f64 / counts.current_total as f64),
        unseen_categories: unseen
            .iter()
            .take(10)
            .map(|(_, label)| label.to_string())
            .collect(),
        missing: Some(missing_test(
            counts.reference_missing,
            counts.reference_rows,
            counts.current_missing,
            counts.current_rows,
        )),
        distribution: category_distribution(counts),
    }
}

/// Adjusts every column's p-values for the number of columns compared
/// (Benjamini-Hochberg, separately for distributions and missingness) and
/// settles the verdicts.
pub(crate) fn correct_for_multiple_columns(columns: &mut [ColumnDrift]) {
    let raw: Vec<f64> = columns.iter().map(|c| c.p_value.unwrap_or(1.0)).collect();
    let adjusted = correction::benjamini_hochberg(&raw);
    let raw_missing: Vec<f64> = columns
        .iter()
        .map(|c| c.missing.as_ref().map_or(1.0, |m| m.p_value))
        .collect();
    let adjusted_missing = correction::benjamini_hochberg(&raw_missing);
    for ((column, p), p_missing) in columns.iter_mut().zip(adjusted).zip(adjusted_missing) {
        column.p_value = Some(p);
        let material = match column.effect_sizes.as_ref() {
            Some(effect) if effect.wasserstein_normed.is_some() => {
                column.statistic >= column.threshold || effect.psi >= PSI_MAJOR
            }
            _ => column.statistic >= column.threshold,
        };
        let mut reasons = Vec::new();
        if material && p < ALPHA {
            reasons.push("distribution".to_string());
        }
        if let Some(missing) = column.missing.as_mut() {
            missing.p_value = p_missing;
            missing.drifted = missing.statistic.abs() >= missing.threshold && p_missing < ALPHA;
            if missing.drifted {
                reasons.push("missing values".to_string());
            }
        }
        column.drifted = !reasons.is_empty();
        column.reasons = reasons;
    }
}

/// The change in the share of missing values, tested with the pooled
/// two-proportion z-test: z = (p₁ − p₂) / √(p̄(1 − p̄)(1/n₁ + 1/n₂)).
fn missing_test(
    reference_missing: usize,
    reference_rows: usize,
    current_missing: usize,
    current_rows: usize,
) -> MissingDrift {
    let difference =
        share(current_missing, current_rows) - share(reference_missing, reference_rows);
    let p_value = if reference_missing + current_missing == 0
        || reference_missing + current_missing == reference_rows + current_rows
    {
        1.0
    } else {
        contingency::two_proportion_z(
            reference_missing as u64,
            reference_rows as u64,
            current_missing as u64,
            current_rows as u64,
        )
        .p_value
    };
    MissingDrift {
        statistic: difference,
        p_value,
        threshold: MISSING_SHARE_THRESHOLD,
        drifted: false,
    }
}

/// Interior edges at the reference's deciles (the nearest-rank quantile
/// x₍⌈q·n⌉₎), without repeats: a value sitting on many deciles gets one bin.
fn decile_edges(sorted_reference: &[f64]) -> Vec<f64> {
    let n = sorted_reference.len();
    let mut edges: Vec<f64> = (1..NUMERIC_BINS)
        .map(|i| {
            let rank = (i * n).div_ceil(NUMERIC_BINS).clamp(1, n);
            sorted_reference[rank - 1]
        })
        .collect();
    edges.dedup();
    edges
}

/// Shares in the bins (−∞, e₁), [e₁, e₂), …, [e_k, +∞) of sorted values.
fn bin_shares(sorted: &[f64], interior_edges: &[f64]) -> Vec<f64> {
    let n = sorted.len() as f64;
    let mut below: Vec<usize> = interior_edges
        .iter()
        .map(|&e| sorted.partition_point(|&x| x < e))
        .collect();
    below.insert(0, 0);
    below.push(sorted.len());
    below.windows(2).map(|w| (w[1] - w[0]) as f64 / n).collect()
}

/// PSI = Σ (c − r)·ln(c / r), empty shares replaced by ε = 1e-4.
fn psi_with_empty_bins(reference: &[f64], current: &[f64]) -> f64 {
    let fill = |shares: &[f64]| -> Vec<f64> {
        shares
            .iter()
            .map(|&s| if s == 0.0 { PSI_EMPTY_SHARE } else { s })
            .collect()
    };
    divergence::psi(&fill(reference), &fill(current))
}

/// The 30 most frequent categories of either side, for the chart.
fn category_distribution(counts: &CategoryCounts) -> Distribution {
    let reference = counts.reference_shares();
    let current = counts.current_shares();
    let mut order: Vec<usize> = (0..counts.labels.len()).collect();
    order.sort_by(|&a, &b| {
        (reference[b] + current[b])
            .total_cmp(&(reference[a] + current[a]))
            .then(a.cmp(&b))
    });
    order.truncate(30);
    order.sort_unstable();
    Distribution {
        kind: "categories".to_string(),
        edges: Vec::new(),
        labels: order.iter().map(|&i| counts.labels[i].clone()).collect(),
        reference: order.iter().map(|&i| reference[i]).collect(),
        current: order.iter().map(|&i| current[i]).collect(),
    }
}
