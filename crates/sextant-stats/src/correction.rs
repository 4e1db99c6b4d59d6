//! Multiple-testing corrections of a family of p-values.
//!
//! NaN p-values (a test that could not be computed) are not part of the
//! family: they are left out of the count m and come back as NaN in their
//! positions. Results are in the input order.

/// Bonferroni adjustment `min(1, m · p_i)` with m the number of non-NaN
/// p-values (Dunn 1961; `statsmodels multipletests(method="bonferroni")`).
pub fn bonferroni(p_values: &[f64]) -> Vec<f64> {
    let family_size = p_values.iter().filter(|p| !p.is_nan()).count() as f64;
    p_values
        .iter()
        .map(|&p| {
            if p.is_nan() {
                p
            } else {
                (p * family_size).min(1.0)
            }
        })
        .collect()
}

/// Benjamini-Hochberg adjusted p-values (q-values) controlling the false
/// discovery rate (Benjamini & Hochberg 1995), as
/// `scipy.stats.false_discovery_control(p, method="bh")` and
/// `statsmodels multipletests(method="fdr_bh")`: with the p-values sorted
/// ascending, `q_(k) = min_{j ≥ k} p_(j) · (m / j)`, capped at 1.
///
/// Each q is ≥ its p, and q is non-decreasing in the rank of p. Rejecting
/// the hypotheses with q ≤ α is the BH step-up procedure at level α.
pub fn benjamini_hochberg(p_values: &[f64]) -> Vec<f64> {
    let mut order: Vec<usize> = (0..p_values.len())
        .filter(|&i| !p_values[i].is_nan())
        .collect();
    order.sort_by(|&i, &j| p_values[i].total_cmp(&p_values[j]));
    let family_size = order.len() as f64;
    let mut adjusted = vec![f64::NAN; p_values.len()];
    // Walk from the largest p down, carrying the running minimum: that is
    // the step-up rule (reject every hypothesis ranked below a rejected one).
    let mut running_min = f64::INFINITY;
    for (rank_index, &i) in order.iter().enumerate().rev() {
        let rank = (rank_index + 1) as f64;
        running_min = running_min.min(p_values[i] * (family_size / rank));
        adjusted[i] = running_min.min(1.0);
    }
    adjusted
}
