//! Tests on counts: chi-square and G goodness of fit, chi-square and G
//! tests of independence, the pooled two-proportion z-test and Fisher's
//! exact test on a 2×2 table.

use std::fmt;

use crate::special::{chi2_sf, erfc, normal_cdf, pairwise_sum_by};
use crate::TestResult;

/// Result of a test of independence on an r×c contingency table.
#[derive(Debug, Clone, Copy, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct ContingencyResult {
    pub statistic: f64,
    pub p_value: f64,
    /// (r - 1)(c - 1).
    pub dof: usize,
}

/// Why a contingency table cannot be tested.
#[derive(Debug, Clone, PartialEq)]
pub enum ContingencyError {
    /// The table has no rows or no columns.
    Empty,
    /// Row `row` has `len` cells where the first row has `expected`.
    Ragged {
        row: usize,
        len: usize,
        expected: usize,
    },
    /// A cell is negative, infinite or NaN.
    InvalidCount {
        row: usize,
        column: usize,
        value: f64,
    },
    /// Every cell of this row is zero, so its expected frequencies are 0
    /// and the statistic is undefined (scipy raises `ValueError`). Drop the
    /// row — a category nobody observed carries no evidence — and retest.
    EmptyRow(usize),
    /// Every cell of this column is zero; see `EmptyRow`.
    EmptyColumn(usize),
}

impl fmt::Display for ContingencyError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Empty => write!(f, "the contingency table has no cells"),
            Self::Ragged { row, len, expected } => write!(
                f,
                "row {row} of the contingency table has {len} cells, but row 0 has {expected}"
            ),
            Self::InvalidCount { row, column, value } => write!(
                f,
                "cell ({row}, {column}) of the contingency table is {value}; counts must be finite and non-negative"
            ),
            Self::EmptyRow(row) => write!(
                f,
                "row {row} of the contingency table is all zero, so its expected frequencies are zero; drop it"
            ),
            Self::EmptyColumn(column) => write!(
                f,
                "column {column} of the contingency table is all zero, so its expected frequencies are zero; drop it"
            ),
        }
    }
}

impl std::error::Error for ContingencyError {}

/// Which member of the Cressie-Read power-divergence family to compute.
#[derive(Clone, Copy)]
enum Divergence {
    /// Pearson's X² = Σ (o - e)² / e.
    Pearson,
    /// The likelihood-ratio G = 2 Σ o ln(o / e).
    LogLikelihood,
}

/// One term of the statistic. With e = 0 and o > 0 both give +∞ (and a
/// p-value of 0), as scipy does; with o = e = 0 Pearson gives NaN (0/0),
/// as scipy does, while the G term is 0 (scipy's `xlogy(0, ·) = 0`).
fn divergence_term(kind: Divergence, observed: f64, expected: f64) -> f64 {
    match kind {
        Divergence::Pearson => {
            let difference = observed - expected;
            difference * difference / expected
        }
        Divergence::LogLikelihood => {
            if observed == 0.0 {
                0.0
            } else {
                2.0 * observed * (observed / expected).ln()
            }
        }
    }
}

fn goodness_of_fit(kind: Divergence, observed: &[f64], expected: &[f64]) -> TestResult {
    assert_eq!(
        observed.len(),
        expected.len(),
        "observed and expected must have one entry per category"
    );
    let statistic = pairwise_sum_by(observed.len(), |i| {
        divergence_term(kind, observed[i], expected[i])
    });
    let dof = observed.len() as f64 - 1.0;
    TestResult {
        statistic,
        p_value: chi2_sf(statistic, dof),
    }
}

/// Pearson's chi-square goodness-of-fit test,
/// `X² = Σ (o_i - e_i)² / e_i` against χ² with k - 1 degrees of freedom,
/// as `scipy.stats.chisquare(observed, expected)` (Pearson 1900).
///
/// Differences from scipy: scipy raises if Σo and Σe differ by more than
/// 1.5e-8 relative; this function computes the statistic regardless, so
/// scale `expected` to the observed total first. A category with e = 0 and
/// o > 0 gives statistic +∞ and p 0 (as scipy); o = e = 0 gives NaN (as
/// scipy); a single category gives p NaN (as scipy: 0 degrees of freedom).
///
/// Panics if the slices differ in length.
pub fn chi_square_goodness_of_fit(observed: &[f64], expected: &[f64]) -> TestResult {
    goodness_of_fit(Divergence::Pearson, observed, expected)
}

/// G-test (likelihood-ratio) goodness of fit, `G = 2 Σ o_i ln(o_i / e_i)`
/// against χ² with k - 1 degrees of freedom, as
/// `scipy.stats.power_divergence(observed, expected, lambda_="log-likelihood")`
/// (Sokal & Rohlf, Biometry, §17). Categories with o = 0 add 0; e = 0
/// with o > 0 gives +∞. Same caveats as [`chi_square_goodness_of_fit`].
pub fn g_test_goodness_of_fit(observed: &[f64], expected: &[f64]) -> TestResult {
    goodness_of_fit(Divergence::LogLikelihood, observed, expected)
}

/// A validated r×c table with its margins.
struct Margins {
    row_totals: Vec<f64>,
    column_totals: Vec<f64>,
    total: f64,
}

fn margins(table: &[&[f64]]) -> Result<Margins, ContingencyError> {
    let columns = table.first().map_or(0, |row| row.len());
    if columns == 0 {
        return Err(ContingencyError::Empty);
    }
    for (row, cells) in table.iter().enumerate() {
        if cells.len() != columns {
            return Err(ContingencyError::Ragged {
                row,
                len: cells.len(),
                expected: columns,
            });
        }
        for (column, &value) in cells.iter().enumerate() {
            if !(value.is_finite() && value >= 0.0) {
                return Err(ContingencyError::InvalidCount { row, column, value });
            }
        }
    }
    let row_totals: Vec<f64> = table
        .iter()
        .map(|cells| pairwise_sum_by(columns, |j| cells[j]))
        .collect();
    let column_totals: Vec<f64> = (0..columns)
        .map(|j| pairwise_sum_by(table.len(), |i| table[i][j]))
        .collect();
    if let Some(row) = row_totals.iter().position(|&t| t == 0.0) {
        return Err(ContingencyError::EmptyRow(row));
    }
    if let Some(column) = column_totals.iter().position(|&t| t == 0.0) {
        return Err(ContingencyError::EmptyColumn(column));
    }
    let total = pairwise_sum_by(table.len() * columns, |k| table[k / columns][k % columns]);
    Ok(Margins {
        row_totals,
        column_totals,
        total,
    })
}

fn independence_test(
    kind: Divergence,
    table: &[&[f64]],
) -> Result<ContingencyResult, ContingencyError> {
    let Margins {
        row_totals,
        column_totals,
        total,
    } = margins(table)?;
    let (rows, columns) = (row_totals.len(), column_totals.len());
    let dof = (rows - 1) * (columns - 1);
    if dof == 0 {
        // One row or one column: observed equals expected.
        return Ok(ContingencyResult {
            statistic: 0.0,
            p_value: 1.0,
            dof,
        });
    }
    let apply_yates = dof == 1;
    let statistic = pairwise_sum_by(rows * columns, |k| {
        let (i, j) = (k / columns, k % columns);
        let expected = row_totals[i] * column_totals[j] / total;
        let mut observed = table[i][j];
        if apply_yates {
            // Yates' continuity correction moves each observed count 0.5
            // towards its expected count, but never past it (scipy gh-13875).
            let gap = expected - observed;
            // (gap = 0 adds ±0: unchanged, like scipy's sign(0) = 0.)
            observed += gap.abs().min(0.5).copysign(gap);
        }
        divergence_term(kind, observed, expected)
    });
    Ok(ContingencyResult {
        statistic,
        p_value: chi2_sf(statistic, dof as f64),
        dof,
    })
}

/// Pearson's chi-square test of independence on an r×c table of counts,
/// as `scipy.stats.chi2_contingency(table)` with its defaults
/// (`correction=True`): expected counts `e_ij = row_i · col_j / N`,
/// `X² = Σ (o - e)² / e`, dof = (r-1)(c-1). When dof = 1 (2×2) Yates'
/// continuity correction replaces each o by o moved min(0.5, |e - o|)
/// towards e (Yates 1934; scipy's gh-13875 cap). A table with a single row
/// or column has dof 0 and returns statistic 0, p 1, as scipy.
///
/// Errors where scipy raises: an all-zero row or column (expected
/// frequency 0), ragged rows, negative or non-finite counts, an empty
/// table.
pub fn chi2_contingency(table: &[&[f64]]) -> Result<ContingencyResult, ContingencyError> {
    independence_test(Divergence::Pearson, table)
}

/// G-test (likelihood-ratio) of independence, `G = 2 Σ o ln(o / e)`, as
/// `scipy.stats.chi2_contingency(table, lambda_="log-likelihood")`:
/// same expected counts, dof and Yates rule (applied when dof = 1) as
/// [`chi2_contingency`], same errors.
pub fn g_test_contingency(table: &[&[f64]]) -> Result<ContingencyResult, ContingencyError> {
    independence_test(Divergence::LogLikelihood, table)
}

/// Pooled z statistic for p_a = p_b: `z = (p_a - p_b) / sqrt(P (1 - P)
/// (1/n_a + 1/n_b))`, `P = (x_a + x_b) / (n_a + n_b)`, evaluated in the
/// same order as Evidently's `proportions_diff_z_stat_ind`. `None` when
/// P is 0 or 1 (both samples constant and equal: no evidence of a
/// difference).
fn pooled_z(successes_a: u64, n_a: u64, successes_b: u64, n_b: u64) -> Option<f64> {
    let (n_a, n_b) = (n_a as f64, n_b as f64);
    let share_a = successes_a as f64 / n_a;
    let share_b = successes_b as f64 / n_b;
    let pooled = (share_a * n_a + share_b * n_b) / (n_a + n_b);
    let variance = pooled * (1.0 - pooled) * (1.0 / n_a + 1.0 / n_b);
    if variance == 0.0 {
        return None;
    }
    Some((share_a - share_b) / variance.sqrt())
}

fn is_valid_proportion(successes: u64, n: u64) -> bool {
    n > 0 && successes <= n
}

/// Two-sided pooled two-proportion z-test (e.g. Fleiss, Statistical
/// Methods for Rates and Proportions, §2.2 without continuity
/// correction): statistic z as above (positive when sample a has the
/// higher share), `p = 2 (1 - Φ(|z|))`, evaluated as `erfc(|z| / √2)`
/// so it keeps full relative accuracy in the tail.
///
/// Evidently's `z` stattest computes `2 * (1 - norm.cdf(|z|))`, which
/// loses relative accuracy from |z| ≈ 3 and is exactly 0 beyond |z| ≈ 8.3;
/// [`two_proportion_z_evidently`] reproduces it when bit-compatibility
/// matters more than the tail. `erfc(|z|/√2)` is `2 · normal_sf(|z|)`.
///
/// When both samples are all successes or all failures the statistic is 0
/// and p is 1. n = 0 or successes > n gives NaN for both.
pub fn two_proportion_z(successes_a: u64, n_a: u64, successes_b: u64, n_b: u64) -> TestResult {
    two_proportion(successes_a, n_a, successes_b, n_b, |z| {
        erfc(z.abs() * std::f64::consts::FRAC_1_SQRT_2)
    })
}

/// [`two_proportion_z`] with Evidently's p-value formula
/// `2 * (1 - Φ(|z|))`, for agreement with Evidently reports.
pub fn two_proportion_z_evidently(
    successes_a: u64,
    n_a: u64,
    successes_b: u64,
    n_b: u64,
) -> TestResult {
    two_proportion(successes_a, n_a, successes_b, n_b, |z| {
        2.0 * (1.0 - normal_cdf(z.abs()))
    })
}

fn two_proportion(
    successes_a: u64,
    n_a: u64,
    successes_b: u64,
    n_b: u64,
    two_sided_p: impl Fn(f64) -> f64,
) -> TestResult {
    if !is_valid_proportion(successes_a, n_a) || !is_valid_proportion(successes_b, n_b) {
        return TestResult {
            statistic: f64::NAN,
            p_value: f64::NAN,
        };
    }
    match pooled_z(successes_a, n_a, successes_b, n_b) {
        Some(z) => TestResult {
            statistic: z,
            p_value: two_sided_p(z),
        },
        None => TestResult {
            statistic: 0.0,
            p_value: 1.0,
        },
    }
}

/// Fisher's exact test, two-sided, on the 2×2 table `[[a, b], [c, d]]`, as
/// `scipy.stats.fisher_exact(table)` (Fisher 1922).
///
/// Statistic: the sample odds ratio `a d / (b c)` (+∞ when b c = 0).
/// p-value: with all margins fixed, `a` is hypergeometric; p is the total
/// probability of the tables no more likely than the observed one, with
/// scipy's relative tolerance `pmf ≤ pmf(a) · (1 + 1e-14)`, and 1 when the
/// observed table is as likely as the mode. A zero row or column gives
/// (NaN, 1) as scipy.
///
/// The probabilities are computed relative to the mode by the
/// hypergeometric ratio recurrence and normalised by their sum, so no
/// factorials are needed and each ratio is exact to rounding.
pub fn fisher_exact_2x2(a: u64, b: u64, c: u64, d: u64) -> TestResult {
    // Relative tolerance scipy uses to treat nearly equal probabilities as ties.
    const TIE_TOLERANCE: f64 = 1e-14;
    let first_row = a + b;
    let second_row = c + d;
    let first_column = a + c;
    let second_column = b + d;
    if first_row == 0 || second_row == 0 || first_column == 0 || second_column == 0 {
        return TestResult {
            statistic: f64::NAN,
            p_value: 1.0,
        };
    }
    let odds_ratio = if b > 0 && c > 0 {
        (a as u128 * d as u128) as f64 / (b as u128 * c as u128) as f64
    } else {
        f64::INFINITY
    };

    // a ranges over [low, high] with the margins fixed.
    let total = first_row + second_row;
    let low = first_column.saturating_sub(second_row);
    let high = first_column.min(first_row);
    let mode = ((first_column + 1) as f64 * (first_row + 1) as f64 / (total + 2) as f64) as u64;
    let mode = mode.clamp(low, high);

    // pmf(x+1) / pmf(x) = (row1 - x)(col1 - x) / ((x+1)(row2 - col1 + x + 1)).
    let ratio_up = |x: u64| {
        ((first_row - x) as f64 * (first_column - x) as f64)
            / ((x + 1) as f64 * (second_row + x + 1 - first_column) as f64)
    };
    let width = (high - low + 1) as usize;
    let mut weights = vec![0.0; width];
    let index = |x: u64| (x - low) as usize;
    weights[index(mode)] = 1.0;
    for x in mode..high {
        weights[index(x + 1)] = weights[index(x)] * ratio_up(x);
    }
    for x in (low..mode).rev() {
        weights[index(x)] = weights[index(x + 1)] / ratio_up(x);
    }
    let observed_weight = weights[index(a)];
    if (observed_weight - 1.0).abs() <= TIE_TOLERANCE {
        return TestResult {
            statistic: odds_ratio,
            p_value: 1.0,
        };
    }
    let threshold = observed_weight * (1.0 + TIE_TOLERANCE);
    let all = pairwise_sum_by(width, |k| weights[k]);
    let as_extreme = pairwise_sum_by(width, |k| {
        if weights[k] <= threshold {
            weights[k]
        } else {
            0.0
        }
    });
    TestResult {
        statistic: odds_ratio,
        p_value: (as_extreme / all).min(1.0),
    }
}
