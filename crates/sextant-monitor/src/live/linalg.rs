//! The little dense linear algebra the Mahalanobis distance needs, on
//! row-major `n × n` slices (d ≤ 64, so no blocking).

/// Cholesky–Banachiewicz factorisation `A = L Lᵀ` of the symmetric matrix
/// `matrix` into the lower-triangular `factor` (upper part left untouched),
/// both row-major `n × n` (Golub & Van Loan, "Matrix Computations", 4th ed.,
/// Alg. 4.2.1). Fails when a pivot `L_ii²` is below `min_pivot`: the matrix
/// is not positive definite, or so close to singular that its inverse would
/// amplify rounding into the distance. No allocation, so the per-row path
/// can refactor a sub-matrix in a scratch buffer.
pub(crate) fn cholesky(matrix: &[f64], n: usize, min_pivot: f64, factor: &mut [f64]) -> bool {
    debug_assert!(matrix.len() >= n * n && factor.len() >= n * n);
    for i in 0..n {
        for j in 0..=i {
            let mut sum = matrix[i * n + j];
            for k in 0..j {
                sum -= factor[i * n + k] * factor[j * n + k];
            }
            if i == j {
                if sum.is_nan() || sum < min_pivot {
                    return false;
                }
                factor[i * n + i] = sum.sqrt();
            } else {
                factor[i * n + j] = sum / factor[j * n + j];
            }
        }
    }
    true
}

/// Solves `L y = b` in place (forward substitution), `L` from [`cholesky`].
pub(crate) fn forward_substitute(factor: &[f64], n: usize, b: &mut [f64]) {
    for i in 0..n {
        let mut sum = b[i];
        for k in 0..i {
            sum -= factor[i * n + k] * b[k];
        }
        b[i] = sum / factor[i * n + i];
    }
}

/// `L⁻¹` of a lower-triangular factor, packed by rows: row `i` holds
/// columns `0..=i` at offset `i (i + 1) / 2`. With it, `‖L⁻¹ v‖²` is a
/// triangular matrix-vector product whose rows are independent dot
/// products, which pipelines better than a forward substitution (each of
/// whose steps waits for the previous one).
pub(crate) fn invert_lower_packed(factor: &[f64], n: usize) -> Vec<f64> {
    let mut inverse = vec![0.0; n * (n + 1) / 2];
    let mut column = vec![0.0; n];
    for j in 0..n {
        column.iter_mut().for_each(|c| *c = 0.0);
        column[j] = 1.0;
        forward_substitute(factor, n, &mut column);
        for (i, &value) in column.iter().enumerate().skip(j) {
            inverse[i * (i + 1) / 2 + j] = value;
        }
    }
    inverse
}

/// The upper-tail quantile of the chi-square distribution: the `x` with
/// `P(χ²_df > x) = tail`, by bisection on `chi2_sf` (60 halvings of a
/// bracket that starts at most a few hundred wide: far below f64 spacing
/// of the answer's relevant digits). Used once per dimension at profile
/// load, never per row.
pub(crate) fn chi2_upper_quantile(tail: f64, df: f64) -> f64 {
    use sextant_stats::special::chi2_sf;
    let mut high = df.max(1.0);
    while chi2_sf(high, df) > tail {
        high *= 2.0;
    }
    let mut low = 0.0;
    for _ in 0..100 {
        let middle = 0.5 * (low + high);
        if chi2_sf(middle, df) > tail {
            low = middle;
        } else {
            high = middle;
        }
    }
    0.5 * (low + high)
}

/// The `q`-quantile of sorted values by the inverted-CDF definition (the
/// smallest value whose empirical CDF reaches `q`, numpy's
/// `method="inverted_cdf"`), as the reference bins take theirs.
pub(crate) fn inverted_cdf_quantile(sorted: &[f64], q: f64) -> f64 {
    let n = sorted.len();
    let rank = ((q * n as f64).ceil() as usize).clamp(1, n);
    sorted[rank - 1]
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cholesky_reproduces_the_matrix_and_inverse_solves() {
        let a = [4.0, 2.0, 0.6, 2.0, 2.0, 0.5, 0.6, 0.5, 3.0];
        let mut l = [0.0; 9];
        assert!(cholesky(&a, 3, 1e-12, &mut l));
        for i in 0..3 {
            for j in 0..3 {
                let product: f64 = (0..3)
                    .map(|k| {
                        if k <= i && k <= j {
                            l[i * 3 + k] * l[j * 3 + k]
                        } else {
                            0.0
                        }
                    })
                    .sum();
                assert!((product - a[i * 3 + j]).abs() < 1e-12);
            }
        }
        let inverse = invert_lower_packed(&l, 3);
        let b = [1.0, -2.0, 0.5];
        let mut y = b;
        forward_substitute(&l, 3, &mut y);
        for i in 0..3 {
            let row = &inverse[i * (i + 1) / 2..][..=i];
            let via_inverse: f64 = row.iter().zip(&b).map(|(w, v)| w * v).sum();
            assert!((via_inverse - y[i]).abs() < 1e-12);
        }
        let singular = [1.0, 1.0, 1.0, 1.0];
        assert!(!cholesky(&singular, 2, 1e-9, &mut l));
    }

    #[test]
    fn chi2_quantile_matches_scipy() {
        // scipy.stats.chi2.isf(0.001, df)
        assert!((chi2_upper_quantile(0.001, 1.0) - 10.827566170662733).abs() < 1e-9);
        assert!((chi2_upper_quantile(0.001, 20.0) - 45.31474661812586).abs() < 1e-9);
    }
}
