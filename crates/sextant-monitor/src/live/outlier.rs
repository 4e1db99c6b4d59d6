//! Per-row outlier scores, tiers A and C of `monitoring.md` §6.7: a robust
//! z-score per feature and the Mahalanobis distance over the numeric
//! features, each divided by a threshold taken from the reference, so a
//! ratio of 1 is the boundary (see [`super::OutlierVerdict`]).

use serde::{Deserialize, Serialize};

use super::linalg::{
    chi2_upper_quantile, cholesky, forward_substitute, invert_lower_packed, inverted_cdf_quantile,
};

/// Robust z beyond which a value is an outlier even when the reference
/// never came close: 6 robust standard deviations, which Gaussian data
/// reach with probability 2·10⁻⁹, so the tier is silent on ordinary
/// traffic and fires on gross errors (a unit mistake, a sentinel 999999).
pub(crate) const Z_FLOOR: f64 = 6.0;
/// For a feature whose reference already reaches past [`Z_FLOOR`] (long
/// tails, rare discrete values), the threshold is this multiple of the
/// reference's own most extreme z: values as extreme as the reference's
/// are ordinary, values half as far again are not.
pub(crate) const Z_EXTREME_MARGIN: f64 = 1.5;
/// √(π/2): makes the mean absolute deviation a consistent estimate of σ
/// under normality, the fallback scale when over half the reference sits
/// on one value (MAD = 0).
const MEAN_ABSOLUTE_DEVIATION_TO_SIGMA: f64 = 1.253_314_137_315_500_3;
/// 1/Φ⁻¹(3/4): makes the MAD a consistent estimate of σ under normality.
const MAD_TO_SIGMA: f64 = 1.4826;

/// Share of reference rows allowed above the Mahalanobis threshold.
pub(crate) const MAHALANOBIS_TAIL: f64 = 0.001;
/// At most this many numeric features enter the Mahalanobis distance (the
/// first ones, in profile order): its cost grows as d², and a covariance of
/// more features is poorly estimated from a typical reference anyway.
pub(crate) const MAX_MAHALANOBIS_FEATURES: usize = 64;
/// At most this many reference rows estimate the covariance and calibrate
/// the threshold (evenly strided through the reference). 100k rows put
/// about 100 reference rows above the 99.9th percentile.
pub(crate) const MAX_COVARIANCE_ROWS: usize = 100_000;
/// A feature missing (or infinite) in more than this share of the
/// reference rows is left out of the Mahalanobis distance: the covariance
/// is estimated on complete rows, and a feature often missing would leave
/// few of them.
const MAX_MISSING_SHARE_FOR_COVARIANCE: f64 = 0.2;
/// Fewer complete reference rows than this (or than 3 per feature) and
/// the covariance is too noisy to score with: tier C is left out.
const MIN_COVARIANCE_ROWS: usize = 50;
/// Below this many rows the empirical 99.9th percentile is little more than
/// the sample maximum, so the threshold is at least the χ²_d quantile a
/// Gaussian reference would give.
const MIN_ROWS_FOR_EMPIRICAL_TAIL: usize = 1000;
/// Smallest Cholesky pivot accepted on the correlation matrix: a feature
/// that the preceding ones explain with R² > 1 − 10⁻⁶ is (nearly) a linear
/// combination of them, and its inverse conditional variance would turn
/// rounding into distance.
const MIN_PIVOT: f64 = 1e-6;
/// Ridges tried in turn on the correlation matrix (`R + λI`) when it is
/// singular. λ = 10⁻⁴ keeps a floor of 1% of a standard deviation under
/// every conditional deviation: a reference's exact linear relation
/// (x₃ = x₁ + x₂) stays usable, and a live row that breaks it by a tenth
/// of a standard deviation still scores far out.
const RIDGES: [f64; 5] = [0.0, 1e-4, 1e-3, 1e-2, 1e-1];

/// A numeric feature's robust location and scale (tier A).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub(crate) struct RobustScale {
    pub median: f64,
    /// Median absolute deviation from the median.
    pub mad: f64,
    /// σ estimate: `1.4826 · MAD`; when MAD = 0, `√(π/2) · mean |x − median|`;
    /// 0 for a constant reference, where any other value is an outlier.
    pub scale: f64,
    /// `τ = max(6, 1.5 · max_ref |x − median| / scale)`.
    pub z_threshold: f64,
}

impl RobustScale {
    /// From the finite reference values, sorted; `None` when there are none.
    pub fn fit(sorted: &[f64]) -> Option<RobustScale> {
        if sorted.is_empty() {
            return None;
        }
        let median = sorted_median(sorted);
        let mut deviations: Vec<f64> = sorted.iter().map(|&x| (x - median).abs()).collect();
        deviations.sort_unstable_by(f64::total_cmp);
        let mad = sorted_median(&deviations);
        let mut scale = MAD_TO_SIGMA * mad;
        if scale == 0.0 {
            let mean_absolute = deviations.iter().sum::<f64>() / deviations.len() as f64;
            scale = MEAN_ABSOLUTE_DEVIATION_TO_SIGMA * mean_absolute;
        }
        let extreme_z = if scale > 0.0 {
            deviations[deviations.len() - 1] / scale
        } else {
            0.0
        };
        let z_threshold = Z_FLOOR.max(Z_EXTREME_MARGIN * extreme_z);
        Some(RobustScale {
            median,
            mad,
            scale,
            z_threshold,
        })
    }

    /// `1 / (scale · τ)`, so that `|x − median| · inverse_fence` is the
    /// tier-A ratio; +∞ for a constant reference.
    pub fn inverse_fence(&self) -> f64 {
        if self.scale > 0.0 {
            1.0 / (self.scale * self.z_threshold)
        } else {
            f64::INFINITY
        }
    }

    pub fn is_valid(&self) -> bool {
        self.median.is_finite()
            && self.mad.is_finite()
            && self.mad >= 0.0
            && self.scale.is_finite()
            && self.scale >= 0.0
            && self.z_threshold.is_finite()
            && self.z_threshold >= Z_FLOOR
    }
}

/// The tier-A ratio of one value: `|x − median| / (scale · τ)`; 0 for NaN
/// (missing) and for the median itself (also when the scale is 0).
#[inline]
pub(crate) fn robust_ratio(x: f64, median: f64, inverse_fence: f64) -> f64 {
    let distance = (x - median).abs();
    if distance > 0.0 {
        distance * inverse_fence
    } else {
        0.0
    }
}

fn sorted_median(sorted: &[f64]) -> f64 {
    let n = sorted.len();
    if n % 2 == 1 {
        sorted[n / 2]
    } else {
        0.5 * (sorted[n / 2 - 1] + sorted[n / 2])
    }
}

/// The stored form of the Mahalanobis model (tier C).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub(crate) struct MahalanobisParts {
    /// Indices into the profile's features, all numerical.
    pub features: Vec<usize>,
    pub mean: Vec<f64>,
    /// Sample standard deviations (ddof 1), all > 0.
    pub std: Vec<f64>,
    /// Correlation matrix, row-major `d × d`, ridge included.
    pub correlation: Vec<f64>,
    /// The λ added to the correlation's diagonal (0 when none was needed).
    pub ridge: f64,
    /// The reference rows' 99.9th-percentile distance.
    pub threshold: f64,
    /// Complete reference rows the model was fitted on.
    pub rows: u64,
}

impl MahalanobisParts {
    /// Fits on `samples[c]`, the reference values of candidate feature
    /// `candidates[c]` at the same (strided) rows. Features missing in more
    /// than 20% of the rows and constant features are left out (tier A
    /// still scores them); then rows with a missing or infinite value
    /// (complete cases). `None` when too few rows or features remain.
    ///
    /// With `z = D⁻¹(x − μ)` (D the standard deviations) and the
    /// correlation `R = L Lᵀ`, `d²(x) = zᵀ R⁻¹ z = ‖L⁻¹ z‖²`. The threshold
    /// is the 99.9th percentile of the reference rows' own d (inverted
    /// CDF), at least `√χ²_d(0.999)` when fewer than 1000 rows calibrate
    /// it. In-sample distances run slightly small: under normality a new
    /// row's expected d² is `d (1 + 1/n)(n − 1)/(n − d − 2)` against
    /// `d (n − 1)/n` in sample (Hotelling's T²), a relative `≈ (d + 3)/n`,
    /// 0.1% at 20 features and 20 000 rows.
    pub fn fit(candidates: &[usize], samples: &[Vec<f64>]) -> Option<MahalanobisParts> {
        let sample_rows = samples.first().map_or(0, Vec::len);
        let (candidates, samples): (Vec<usize>, Vec<&Vec<f64>>) = candidates
            .iter()
            .zip(samples)
            .filter(|(_, column)| {
                let incomplete = column.iter().filter(|value| !value.is_finite()).count();
                incomplete as f64 <= MAX_MISSING_SHARE_FOR_COVARIANCE * sample_rows as f64
            })
            .map(|(&candidate, column)| (candidate, column))
            .unzip();
        let complete: Vec<usize> = (0..sample_rows)
            .filter(|&row| samples.iter().all(|column| column[row].is_finite()))
            .collect();
        let n = complete.len();
        if n < 2 {
            return None;
        }
        let mut kept = Vec::new();
        for (&candidate, &column) in candidates.iter().zip(&samples) {
            let mean = complete.iter().map(|&row| column[row]).sum::<f64>() / n as f64;
            let squares: f64 = complete
                .iter()
                .map(|&row| (column[row] - mean).powi(2))
                .sum();
            let std = (squares / (n - 1) as f64).sqrt();
            if std > 0.0 && std.is_finite() && kept.len() < MAX_MAHALANOBIS_FEATURES {
                kept.push((candidate, column, mean, std));
            }
        }
        let d = kept.len();
        if d == 0 || n < MIN_COVARIANCE_ROWS.max(3 * d) {
            return None;
        }
        // Standardised complete rows, row-major n × d.
        let mut standardised = Vec::with_capacity(n * d);
        for &row in &complete {
            standardised.extend(
                kept.iter()
                    .map(|(_, column, mean, std)| (column[row] - mean) / std),
            );
        }
        let mut correlation = vec![0.0; d * d];
        for z in standardised.chunks_exact(d) {
            for i in 0..d {
                for j in 0..=i {
                    correlation[i * d + j] += z[i] * z[j];
                }
            }
        }
        for i in 0..d {
            for j in 0..=i {
                let value = correlation[i * d + j] / (n - 1) as f64;
                correlation[i * d + j] = value;
                correlation[j * d + i] = value;
            }
        }
        let mut factor = vec![0.0; d * d];
        let mut ridged = correlation.clone();
        let ridge = RIDGES.into_iter().find(|&ridge| {
            ridged.copy_from_slice(&correlation);
            (0..d).for_each(|i| ridged[i * d + i] += ridge);
            cholesky(&ridged, d, MIN_PIVOT, &mut factor)
        })?;
        let whitening = invert_lower_packed(&factor, d);
        let mut squared_distances: Vec<f64> = standardised
            .chunks_exact(d)
            .map(|z| packed_squared_norm(&whitening, z))
            .collect();
        squared_distances.sort_unstable_by(f64::total_cmp);
        let mut tail = inverted_cdf_quantile(&squared_distances, 1.0 - MAHALANOBIS_TAIL);
        if n < MIN_ROWS_FOR_EMPIRICAL_TAIL {
            tail = tail.max(chi2_upper_quantile(MAHALANOBIS_TAIL, d as f64));
        }
        let threshold = tail.sqrt();
        if !(threshold > 0.0 && threshold.is_finite()) {
            return None;
        }
        Some(MahalanobisParts {
            features: kept.iter().map(|(feature, ..)| *feature).collect(),
            mean: kept.iter().map(|(_, _, mean, _)| *mean).collect(),
            std: kept.iter().map(|(.., std)| *std).collect(),
            correlation: ridged,
            ridge,
            threshold,
            rows: n as u64,
        })
    }
}

/// `‖W z‖²` for `W` lower-triangular packed by rows.
#[inline]
fn packed_squared_norm(packed: &[f64], z: &[f64]) -> f64 {
    let mut total = 0.0;
    let mut offset = 0;
    for i in 0..z.len() {
        let row = &packed[offset..offset + i + 1];
        let dot: f64 = row.iter().zip(&z[..=i]).map(|(w, v)| w * v).sum();
        total += dot * dot;
        offset += i + 1;
    }
    total
}

/// The Mahalanobis model ready to score: its parts plus what is derived
/// from them at load (never stored, so a stored profile cannot disagree
/// with itself).
#[derive(Debug, Clone)]
pub(crate) struct MahalanobisModel {
    pub parts: MahalanobisParts,
    /// `W = L⁻¹ D⁻¹`, lower-triangular, packed by rows: `d² = ‖W (x − μ)‖²`,
    /// one dot product per row. (Measured against a column-by-column
    /// update of `W v`, which vectorises but stores and reloads the partial
    /// sums: the rows' dot products were faster, their chains overlapping
    /// out of order.)
    whitening: Vec<f64>,
    /// The precision matrix in the features' units, `Σ⁻¹ = Wᵀ W`, row-major
    /// `d × d`, for rows with missing values.
    precision: Vec<f64>,
    /// `threshold_for_present[k]`: the threshold for a row with `k` of the
    /// `d` features present, `T · √(χ²_k(0.999) / χ²_d(0.999))`, so a row
    /// with missing values is held to the same tail probability under
    /// normality.
    threshold_for_present: Vec<f64>,
}

/// Buffers for scoring one row, reused across rows and requests.
#[derive(Debug, Default)]
pub(crate) struct MahalanobisScratch {
    deviations: Vec<f64>,
    missing: Vec<usize>,
    projected: Vec<f64>,
    matrix: Vec<f64>,
    factor: Vec<f64>,
}

impl MahalanobisModel {
    pub fn new(parts: MahalanobisParts, feature_count: usize) -> Result<MahalanobisModel, String> {
        let d = parts.features.len();
        if d == 0
            || parts.mean.len() != d
            || parts.std.len() != d
            || parts.correlation.len() != d * d
        {
            return Err("the Mahalanobis model's dimensions disagree".to_string());
        }
        if parts
            .features
            .iter()
            .any(|&feature| feature >= feature_count)
        {
            return Err(
                "the Mahalanobis model names a feature the profile does not have".to_string(),
            );
        }
        if parts.std.iter().any(|s| !(*s > 0.0 && s.is_finite()))
            || parts.mean.iter().any(|m| !m.is_finite())
            || !(parts.threshold > 0.0 && parts.threshold.is_finite())
        {
            return Err(
                "the Mahalanobis model holds a non-finite or non-positive value".to_string(),
            );
        }
        let mut factor = vec![0.0; d * d];
        if !cholesky(&parts.correlation, d, MIN_PIVOT, &mut factor) {
            return Err(
                "the Mahalanobis model's correlation matrix is not positive definite".to_string(),
            );
        }
        let mut whitening = invert_lower_packed(&factor, d);
        let mut offset = 0;
        for i in 0..d {
            for (k, w) in whitening[offset..offset + i + 1].iter_mut().enumerate() {
                *w /= parts.std[k];
            }
            offset += i + 1;
        }
        // Σ⁻¹_jk = Σ_i W_ij W_ik over the rows i ≥ max(j, k) of the packed W.
        let mut precision = vec![0.0; d * d];
        let mut offset = 0;
        for i in 0..d {
            let row = &whitening[offset..offset + i + 1];
            for j in 0..=i {
                for k in 0..=i {
                    precision[j * d + k] += row[j] * row[k];
                }
            }
            offset += i + 1;
        }
        let full = chi2_upper_quantile(MAHALANOBIS_TAIL, d as f64);
        let threshold_for_present = (0..=d)
            .map(|k| {
                if k == 0 {
                    f64::INFINITY
                } else {
                    parts.threshold
                        * (chi2_upper_quantile(MAHALANOBIS_TAIL, k as f64) / full).sqrt()
                }
            })
            .collect();
        Ok(MahalanobisModel {
            parts,
            whitening,
            precision,
            threshold_for_present,
        })
    }

    pub fn features(&self) -> &[usize] {
        &self.parts.features
    }

    /// `d(x) / T` for the row whose value of profile feature `f` is
    /// `value(f)`. NaN values are left out (the distance over the features
    /// present); an infinite value gives +∞.
    #[inline]
    pub fn ratio(&self, scratch: &mut MahalanobisScratch, value: impl Fn(usize) -> f64) -> f64 {
        scratch.deviations.clear();
        let mut any_missing = false;
        for (&feature, &mean) in self.parts.features.iter().zip(&self.parts.mean) {
            let deviation = value(feature) - mean;
            if !deviation.is_finite() {
                if deviation.is_nan() {
                    any_missing = true;
                } else {
                    return f64::INFINITY;
                }
            }
            scratch.deviations.push(deviation);
        }
        if any_missing {
            return self.ratio_of_present(scratch);
        }
        packed_squared_norm(&self.whitening, &scratch.deviations).sqrt() / self.parts.threshold
    }

    /// The rare path: the distance over the present features `O`, which is
    /// the full distance minimised over the missing ones `M` (the marginal
    /// of a Gaussian is Gaussian with the sub-covariance Σ_OO, and
    /// `v_Oᵀ Σ_OO⁻¹ v_O = min_{v_M} vᵀ Σ⁻¹ v`). With `P = Σ⁻¹` that minimum
    /// is `v_Oᵀ P_OO v_O − bᵀ P_MM⁻¹ b`, `b = P_MO v_O` (the Schur
    /// complement), so only the small `P_MM` is factorised: O(d² + m³) for
    /// `m` missing, against O(d³) to refactor `Σ_OO`.
    #[cold]
    fn ratio_of_present(&self, scratch: &mut MahalanobisScratch) -> f64 {
        let d = self.parts.features.len();
        let MahalanobisScratch {
            deviations,
            missing,
            projected,
            matrix,
            factor,
        } = scratch;
        missing.clear();
        for (k, deviation) in deviations.iter_mut().enumerate() {
            if deviation.is_nan() {
                missing.push(k);
                *deviation = 0.0;
            }
        }
        let present = d - missing.len();
        if present == 0 {
            return 0.0;
        }
        // projected = P v with v_M = 0, so projected_M = b and
        // v_Oᵀ projected_O = v_Oᵀ P_OO v_O.
        projected.clear();
        projected.extend(self.precision.chunks_exact(d).map(|row| {
            row.iter()
                .zip(deviations.iter())
                .map(|(p, v)| p * v)
                .sum::<f64>()
        }));
        let quadratic: f64 = deviations
            .iter()
            .zip(projected.iter())
            .map(|(v, p)| v * p)
            .sum();
        let m = missing.len();
        matrix.resize(m * m, 0.0);
        factor.resize(m * m, 0.0);
        for (a, &i) in missing.iter().enumerate() {
            for (b, &j) in missing.iter().enumerate() {
                matrix[a * m + b] = self.precision[i * d + j];
            }
        }
        if !cholesky(matrix, m, f64::MIN_POSITIVE, factor) {
            return 0.0;
        }
        // bᵀ P_MM⁻¹ b = ‖L⁻¹ b‖², reusing `deviations` for b (v_M is 0 now).
        for (a, &i) in missing.iter().enumerate() {
            deviations[a] = projected[i];
        }
        forward_substitute(factor, m, &mut deviations[..m]);
        let explained: f64 = deviations[..m].iter().map(|y| y * y).sum();
        (quadratic - explained).max(0.0).sqrt() / self.threshold_for_present[present]
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn robust_scale_falls_back_when_most_values_tie() {
        let mut values = vec![0.0; 99];
        values.push(1.0);
        let robust = RobustScale::fit(&values).unwrap();
        assert_eq!(robust.mad, 0.0);
        assert!(robust.scale > 0.0);
        // The reference's own 1 is not an outlier.
        assert!(robust_ratio(1.0, robust.median, robust.inverse_fence()) < 1.0);
        let constant = RobustScale::fit(&[2.0, 2.0, 2.0]).unwrap();
        assert_eq!(
            robust_ratio(2.0, constant.median, constant.inverse_fence()),
            0.0
        );
        assert_eq!(
            robust_ratio(2.5, constant.median, constant.inverse_fence()),
            f64::INFINITY
        );
        assert_eq!(
            robust_ratio(f64::NAN, constant.median, constant.inverse_fence()),
            0.0
        );
    }

    #[test]
    fn mahalanobis_survives_collinear_features_and_missing_values() {
        // x2 = x0 + x1 exactly: singular covariance, fixed by the ridge.
        let n = 500;
        let x0: Vec<f64> = (0..n).map(|i| ((i * 37 % 101) as f64) / 10.0).collect();
        let x1: Vec<f64> = (0..n).map(|i| ((i * 53 % 97) as f64) / 7.0).collect();
        let x2: Vec<f64> = x0.iter().zip(&x1).map(|(a, b)| a + b).collect();
        let parts = MahalanobisParts::fit(&[0, 1, 2], &[x0.clone(), x1.clone(), x2]).unwrap();
        assert!(parts.ridge > 0.0);
        let model = MahalanobisModel::new(parts, 3).unwrap();
        let mut scratch = MahalanobisScratch::default();
        let typical = model.ratio(&mut scratch, |f| [x0[7], x1[7], x0[7] + x1[7]][f]);
        assert!(typical < 1.0, "{typical}");
        let broken = model.ratio(&mut scratch, |f| [x0[7], x1[7], x0[7] + x1[7] + 20.0][f]);
        assert!(broken > 1.0, "{broken}");
        let partial = model.ratio(&mut scratch, |f| [x0[7], f64::NAN, x0[7] + x1[7]][f]);
        assert!(partial.is_finite() && partial < 1.0, "{partial}");
        assert_eq!(model.ratio(&mut scratch, |_| f64::NAN), 0.0);
        // The distance with x1 missing is the one over (x0, x2) alone.
        let row = [x0[11] + 0.5, f64::NAN, x0[11] + x1[11] - 1.0];
        let d = 3;
        let present = [0, 2];
        let mut sub = [0.0; 4];
        for (a, &i) in present.iter().enumerate() {
            for (b, &j) in present.iter().enumerate() {
                sub[a * 2 + b] = model.parts.correlation[i * d + j];
            }
        }
        let mut factor = [0.0; 4];
        assert!(cholesky(&sub, 2, 0.0, &mut factor));
        let mut z: Vec<f64> = present
            .iter()
            .map(|&i| (row[i] - model.parts.mean[i]) / model.parts.std[i])
            .collect();
        forward_substitute(&factor, 2, &mut z);
        let expected = z.iter().map(|y| y * y).sum::<f64>().sqrt() / model.threshold_for_present[2];
        let got = model.ratio(&mut scratch, |f| row[f]);
        assert!(
            (got - expected).abs() < 1e-9 * expected,
            "{got} vs {expected}"
        );
        assert_eq!(
            model.ratio(&mut scratch, |f| [f64::INFINITY, 0.0, 0.0][f]),
            f64::INFINITY
        );
    }
}
