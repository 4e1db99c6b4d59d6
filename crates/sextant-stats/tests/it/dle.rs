//! DLE against NannyML 0.13.1 (`tests/golden/dle.py`): the same sampling
//! errors, and estimates within a bound of NannyML's (whose nanny is
//! LightGBM, where ours is `gbdt`) that rise with the realised error.

use sextant_stats::dle::{Dle, DleMetric};
use sextant_stats::gbdt::GbdtConfig;

use crate::golden;

fn column(table: &serde_json::Value, name: &str) -> Vec<f64> {
    table[name]
        .as_array()
        .unwrap()
        .iter()
        .map(|v| v.as_f64().unwrap())
        .collect()
}

#[test]
fn estimates_agree_with_nannyml() {
    let golden = golden("dle");
    let (reference, analysis) = (&golden["reference"], &golden["analysis"]);
    let features = ["x0", "x1", "x2"];
    let reference_features: Vec<Vec<f64>> = features.iter().map(|f| column(reference, f)).collect();
    let refs: Vec<&[f64]> = reference_features.iter().map(Vec::as_slice).collect();
    let dle = Dle::fit(
        &refs,
        &column(reference, "y_pred"),
        &column(reference, "y_true"),
        &GbdtConfig::LIGHTGBM,
    )
    .unwrap();
    let analysis_features: Vec<Vec<f64>> = features.iter().map(|f| column(analysis, f)).collect();
    let predictions = column(analysis, "y_pred");
    let mut maes = Vec::new();
    for chunk in golden["chunks"].as_array().unwrap() {
        let (start, end) = (
            chunk["start"].as_u64().unwrap() as usize,
            chunk["end"].as_u64().unwrap() as usize,
        );
        let slices: Vec<&[f64]> = analysis_features.iter().map(|c| &c[start..end]).collect();
        let estimate = dle
            .estimate(&slices, &predictions[start..end])
            .unwrap()
            .unwrap();
        for metric in [DleMetric::Mae, DleMetric::Mse, DleMetric::Mape] {
            let ours = estimate.get(metric).unwrap();
            let theirs = &chunk["nannyml"][metric.name()];
            let (value, sampling_error) = (
                theirs["value"].as_f64().unwrap(),
                theirs["sampling_error"].as_f64().unwrap(),
            );
            assert!(
                (ours.sampling_error - sampling_error).abs() <= 1e-12 * sampling_error,
                "{} sampling error {} vs {sampling_error}",
                metric.name(),
                ours.sampling_error
            );
            // Two nannies on the same 3,000 rows differ by less than half
            // a standard error of the chunk's metric (0.3 measured).
            assert!(
                (ours.value - value).abs() <= 0.5 * sampling_error,
                "chunk {start}: {} {} vs NannyML {value} (σ {sampling_error})",
                metric.name(),
                ours.value
            );
        }
        maes.push((
            estimate.mae.value,
            chunk["realised"]["mae"].as_f64().unwrap(),
        ));
    }
    // Traffic moves to where the model errs more: the estimate follows.
    let (first, last) = (maes[0], maes[maes.len() - 1]);
    assert!(last.0 > first.0 * 1.3, "{maes:?}");
    assert!(last.1 > first.1 * 1.3, "{maes:?}");
}
