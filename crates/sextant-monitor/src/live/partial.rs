//! Drift of a dataset scored in parts: each process counts its share of the
//! rows in the reference's buckets (a [`DriftPartial`]), and the parts merge
//! by addition into the counts one process would have made over all the
//! rows, so the merged report is the same whichever way the rows were
//! split. The comparison is the live monitor's (PSI, Jensen-Shannon and the
//! chi-square test of homogeneity on the reference's buckets, see
//! [`super::FeatureDrift`]): unlike `drift`'s two-sample tests on raw
//! values, it needs nothing from a part but its counts.

use std::ops::Range;

use serde::{Deserialize, Serialize};

use super::monitor::MonitorConfig;
use super::profile::{FeatureProfile, ReferenceProfile};
use super::report::{compare_window, MonitorReport};
use super::window::{FeatureSketch, WindowSketch};
use super::FeatureColumn;
use crate::dataset::{ColumnValues, DatasetError, Table, MISSING_CODE};

/// One part's counts, with the reference profile they were counted in.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct DriftPartial {
    /// Which share of the data this is (`[index, count]`), when known; a
    /// merged partial has none.
    part: Option<[usize; 2]>,
    profile: ReferenceProfile,
    sketch: WindowSketch,
}

/// Why partials do not merge.
#[derive(Debug, thiserror::Error)]
pub enum MergeError {
    #[error("no partials to merge")]
    Empty,
    #[error("partial {index} was counted against another reference profile than partial 0 (made from other reference data or options)")]
    OtherProfile { index: usize },
}

impl DriftPartial {
    /// Nothing counted yet, against `profile`.
    pub fn new(profile: ReferenceProfile, part: Option<[usize; 2]>) -> DriftPartial {
        let sketch = WindowSketch::new(&profile, 0);
        DriftPartial {
            part,
            profile,
            sketch,
        }
    }

    /// Counts `rows` of `table`: each profile feature (and the prediction)
    /// by name; a feature the table lacks counts as missing.
    pub fn add_rows(&mut self, table: &Table, rows: Range<usize>) -> Result<(), DatasetError> {
        let profile = &self.profile;
        let column = |name: &str| -> Result<_, DatasetError> {
            table
                .has_column(name)
                .then(|| table.column(name))
                .transpose()
        };
        for (feature, sketch) in profile.features().iter().zip(&mut self.sketch.features) {
            record(
                sketch,
                feature,
                column(&feature.name)?.as_deref(),
                rows.clone(),
            );
        }
        if let (Some(feature), Some(sketch)) =
            (profile.prediction(), self.sketch.prediction.as_mut())
        {
            record(
                sketch,
                feature,
                column(&feature.name)?.as_deref(),
                rows.clone(),
            );
        }
        self.sketch.requests += 1;
        self.sketch.rows += rows.len() as u64;
        Ok(())
    }

    /// Rows counted.
    pub fn rows(&self) -> u64 {
        self.sketch.rows
    }

    pub fn profile(&self) -> &ReferenceProfile {
        &self.profile
    }

    /// The sum of `parts`, which must share one reference profile.
    pub fn merge(parts: Vec<DriftPartial>) -> Result<DriftPartial, MergeError> {
        let mut parts = parts.into_iter();
        let mut merged = parts.next().ok_or(MergeError::Empty)?;
        let profile = serde_json::to_value(&merged.profile).ok();
        for (index, part) in parts.enumerate() {
            if serde_json::to_value(&part.profile).ok() != profile {
                return Err(MergeError::OtherProfile { index: index + 1 });
            }
            merged.sketch.merge(&part.sketch);
        }
        merged.part = None;
        Ok(merged)
    }

    /// The counted rows compared with the reference.
    pub fn report(&self, config: &MonitorConfig) -> MonitorReport {
        let comparison = compare_window(&self.profile, &self.sketch, config);
        MonitorReport::new(&self.profile, &self.sketch, 0, comparison)
    }
}

/// Counts rows `rows` of `values` (`None`: the table lacks the column, so
/// every row is missing) in `feature`'s buckets.
fn record(
    sketch: &mut FeatureSketch,
    feature: &FeatureProfile,
    values: Option<&ColumnValues>,
    rows: Range<usize>,
) {
    let count = rows.len();
    match values {
        Some(ColumnValues::Numeric { values, .. }) => {
            sketch.record_column(feature, FeatureColumn::Numeric(&values[rows]), count)
        }
        Some(column @ (ColumnValues::Strings { codes, .. } | ColumnValues::Boolean { codes })) => {
            let dictionary = column.dictionary();
            let texts: Vec<Option<&str>> = codes[rows]
                .iter()
                .map(|&code| match code {
                    MISSING_CODE => None,
                    code => dictionary.get(code as usize).map(String::as_str),
                })
                .collect();
            sketch.record_column(feature, FeatureColumn::Text(&texts), count)
        }
        Some(ColumnValues::Unsupported { .. }) | None => sketch.record_missing_rows(count),
    }
}
