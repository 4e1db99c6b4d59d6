//! k-sample Anderson-Darling test, reproducing `scipy.stats.anderson_ksamp`
//! with its default midrank variant (scipy 1.17, `_morestats.py`).

use crate::ks::numpy_compat::numpy_sum;

/// Result of [`anderson_ksamp`].
#[derive(Debug, Clone, Copy, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct AndersonResult {
    /// Normalised statistic `(A2akN - (k-1)) / sigma_N`.
    pub statistic: f64,
    /// Critical values at significance levels 25%, 10%, 5%, 2.5%, 1%, 0.5%, 0.1%.
    pub critical_values: [f64; 7],
    /// Interpolated p-value, clipped to `[0.001, 0.25]` like scipy's.
    pub p_value: f64,
}

/// Significance levels matching [`AndersonResult::critical_values`].
pub const SIGNIFICANCE_LEVELS: [f64; 7] = [0.25, 0.1, 0.05, 0.025, 0.01, 0.005, 0.001];

/// k-sample Anderson-Darling test for discrete or continuous data
/// (Scholz & Stephens 1987, JASA 82(399), `A2akN` of eq. 7 with midranks,
/// normalised by the variance of eq. 4), as `scipy.stats.anderson_ksamp`
/// with its default `midrank=True`.
///
/// The p-value is scipy's: a quadratic fit of `log(significance)` against the
/// tabulated critical values (Scholz & Stephens Table 1 interpolation),
/// evaluated at the statistic, and clipped to `0.25` below the smallest and
/// `0.001` above the largest critical value.
///
/// Panics with fewer than two samples, an empty sample, or fewer than two
/// distinct observations overall (scipy raises `ValueError` there too).
pub fn anderson_ksamp(samples: &[&[f64]]) -> AndersonResult {
    let k = samples.len();
    assert!(k >= 2, "anderson_ksamp needs at least two samples");
    assert!(
        samples.iter().all(|s| !s.is_empty()),
        "anderson_ksamp: empty sample"
    );
    let sorted_samples: Vec<Vec<f64>> = samples
        .iter()
        .map(|s| {
            let mut v = s.to_vec();
            v.sort_unstable_by(f64::total_cmp);
            v
        })
        .collect();
    let mut pooled: Vec<f64> = samples.iter().flat_map(|s| s.iter().copied()).collect();
    pooled.sort_unstable_by(f64::total_cmp);
    let n_total = pooled.len();

    // Distinct pooled values with their multiplicities l_j and the midrank
    // position B_j = #{Z < z_j} + l_j / 2.
    let mut distinct: Vec<(f64, usize)> = Vec::new();
    for &z in &pooled {
        match distinct.last_mut() {
            Some((value, count)) if *value == z => *count += 1,
            _ => distinct.push((z, 1)),
        }
    }
    assert!(
        distinct.len() >= 2,
        "anderson_ksamp needs more than one distinct observation"
    );

    let nf = n_total as f64;
    let mut below = 0_usize;
    let mut midpoints = Vec::with_capacity(distinct.len());
    for &(_, count) in &distinct {
        midpoints.push(below as f64 + count as f64 / 2.0);
        below += count;
    }

    let mut a2akn = 0.0;
    let mut inner = Vec::with_capacity(distinct.len());
    for sample in &sorted_samples {
        let ni = sample.len() as f64;
        inner.clear();
        let mut at_or_below = 0_usize;
        for (&(value, l_j), &b_j) in distinct.iter().zip(&midpoints) {
            let before = at_or_below;
            while at_or_below < sample.len() && sample[at_or_below] <= value {
                at_or_below += 1;
            }
            // M_ij: number of sample values below z_j plus half of those equal.
            let f_ij = (at_or_below - before) as f64;
            let m_ij = at_or_below as f64 - f_ij / 2.0;
            let l = l_j as f64;
            let dev = nf * m_ij - b_j * ni;
            inner.push(l / nf * (dev * dev) / (b_j * (nf - b_j) - nf * l / 4.0));
        }
        a2akn += numpy_sum(&inner) / ni;
    }
    a2akn *= (nf - 1.0) / nf;

    let statistic = normalise(a2akn, samples, n_total);
    let critical_values = critical_values(k);
    let p_value = interpolate_p_value(statistic, &critical_values);
    AndersonResult {
        statistic,
        critical_values,
        p_value,
    }
}

/// `(A2akN - (k-1)) / sqrt(Var(A2akN))` with the finite-sample variance of
/// Scholz & Stephens (1987) eq. 4, in scipy's operation order.
fn normalise(a2akn: f64, samples: &[&[f64]], n_total: usize) -> f64 {
    let k = samples.len() as f64;
    let inverse_sizes: Vec<f64> = samples.iter().map(|s| 1.0 / s.len() as f64).collect();
    let big_h = numpy_sum(&inverse_sizes);
    // h = sum_{i=1}^{N-1} 1/i; g = sum_{i=1}^{N-2} sum_{j=i+1}^{N-1} 1/((N-i) j).
    let mut cumulative = Vec::with_capacity(n_total.saturating_sub(2));
    let mut running = 0.0;
    for i in (2..n_total).rev() {
        running += 1.0 / i as f64;
        cumulative.push(running);
    }
    let h = cumulative.last().copied().unwrap_or(0.0) + 1.0;
    let g_terms: Vec<f64> = cumulative
        .iter()
        .enumerate()
        .map(|(idx, c)| c / (idx + 2) as f64)
        .collect();
    let g = numpy_sum(&g_terms);

    let a = (4.0 * g - 6.0) * (k - 1.0) + (10.0 - 6.0 * g) * big_h;
    let b = (2.0 * g - 4.0) * (k * k) + 8.0 * h * k + (2.0 * g - 14.0 * h - 4.0) * big_h - 8.0 * h
        + 4.0 * g
        - 6.0;
    let c = (6.0 * h + 2.0 * g - 2.0) * (k * k)
        + (4.0 * h - 4.0 * g + 6.0) * k
        + (2.0 * h - 6.0) * big_h
        + 4.0 * h;
    let d = (2.0 * h + 6.0) * (k * k) - 4.0 * h * k;
    let n = n_total as u128;
    let nf = n_total as f64;
    let sigma_sq = (a * (n * n * n) as f64 + b * (n * n) as f64 + c * nf + d)
        / ((nf - 1.0) * (nf - 2.0) * (nf - 3.0));
    (a2akn - (k - 1.0)) / sigma_sq.sqrt()
}

/// Scholz & Stephens (1987) Table 1 fit: `b0 + b1/sqrt(m) + b2/m`, `m = k-1`.
fn critical_values(k: usize) -> [f64; 7] {
    const B0: [f64; 7] = [0.675, 1.281, 1.645, 1.96, 2.326, 2.573, 3.085];
    const B1: [f64; 7] = [-0.245, 0.25, 0.678, 1.149, 1.822, 2.364, 3.615];
    const B2: [f64; 7] = [-0.105, -0.305, -0.362, -0.391, -0.396, -0.345, -0.154];
    let m = (k - 1) as f64;
    std::array::from_fn(|i| B0[i] + B1[i] / m.sqrt() + B2[i] / m)
}

/// scipy's p-value: clip outside the table, else `exp` of the degree-2
/// least-squares fit of `log(significance)` on the critical values.
fn interpolate_p_value(statistic: f64, critical: &[f64; 7]) -> f64 {
    let min = critical.iter().copied().fold(f64::INFINITY, f64::min);
    let max = critical.iter().copied().fold(f64::NEG_INFINITY, f64::max);
    if statistic < min {
        return 0.25;
    }
    if statistic > max {
        return 0.001;
    }
    let log_sig = SIGNIFICANCE_LEVELS.map(f64::ln);
    let [c2, c1, c0] = quadratic_least_squares(critical, &log_sig);
    ((c2 * statistic + c1) * statistic + c0).exp()
}

/// Least-squares `y ~ c2 x^2 + c1 x + c0` (what `np.polyfit(x, y, 2)` solves),
/// by Householder QR on the column-scaled Vandermonde matrix — backward
/// stable, so it agrees with numpy's SVD solve to ~1e-15.
fn quadratic_least_squares(x: &[f64; 7], y: &[f64; 7]) -> [f64; 3] {
    const ROWS: usize = 7;
    const COLS: usize = 3;
    let mut a = [[0.0_f64; COLS]; ROWS];
    for (row, &xi) in a.iter_mut().zip(x) {
        *row = [xi * xi, xi, 1.0];
    }
    let mut scale = [0.0_f64; COLS];
    for (col, s) in scale.iter_mut().enumerate() {
        *s = a.iter().map(|r| r[col] * r[col]).sum::<f64>().sqrt();
        a.iter_mut().for_each(|r| r[col] /= *s);
    }
    let mut rhs = *y;
    for col in 0..COLS {
        let norm = (col..ROWS)
            .map(|r| a[r][col] * a[r][col])
            .sum::<f64>()
            .sqrt();
        let alpha = if a[col][col] > 0.0 { -norm } else { norm };
        let mut v = [0.0_f64; ROWS];
        for r in col..ROWS {
            v[r] = a[r][col];
        }
        v[col] -= alpha;
        let v_norm_sq: f64 = (col..ROWS).map(|r| v[r] * v[r]).sum();
        if v_norm_sq == 0.0 {
            continue;
        }
        for c in col..COLS {
            let dot: f64 = (col..ROWS).map(|r| v[r] * a[r][c]).sum();
            let f = 2.0 * dot / v_norm_sq;
            (col..ROWS).for_each(|r| a[r][c] -= f * v[r]);
        }
        let dot: f64 = (col..ROWS).map(|r| v[r] * rhs[r]).sum();
        let f = 2.0 * dot / v_norm_sq;
        (col..ROWS).for_each(|r| rhs[r] -= f * v[r]);
    }
    let mut coef = [0.0_f64; COLS];
    for row in (0..COLS).rev() {
        let tail: f64 = ((row + 1)..COLS).map(|c| a[row][c] * coef[c]).sum();
        coef[row] = (rhs[row] - tail) / a[row][row];
    }
    std::array::from_fn(|i| coef[i] / scale[i])
}
