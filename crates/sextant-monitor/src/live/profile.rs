//! The reference profile: what live traffic is compared with, built once
//! and stored as JSON.

use std::collections::HashMap;

use serde::{Deserialize, Serialize};
use sextant_stats::sketch::{CategoryVocabulary, Histogram, Moments, ReferenceBins};

use super::outlier::{
    MahalanobisModel, MahalanobisParts, RobustScale, MAX_COVARIANCE_ROWS, MAX_MAHALANOBIS_FEATURES,
};
use crate::dataset::{ColumnValues, DatasetError, Table, MISSING_CODE};

/// Version of the stored profile's shape; a profile of another version is
/// refused at load rather than misread.
const PROFILE_VERSION: u32 = 1;
/// A categorical feature keeps its this-many most frequent reference
/// categories; rarer ones share the bucket of values outside the
/// vocabulary (with their reference count, so they do not look new). 256
/// buckets keep a window's counts small and the chi-square test's
/// expected counts meaningful.
pub(crate) const MAX_CATEGORIES: usize = 256;
/// An integer column with at most this many distinct values is
/// categorical (Evidently 0.7's `infer_column_type`).
const INTEGER_CARDINALITY_LIMIT: usize = 10;
/// Name of the prediction's profile built by [`ReferenceProfile::from_rows`].
pub const DEFAULT_PREDICTION_NAME: &str = "prediction";

/// How a feature is compared.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum FeatureKind {
    /// Numbers on a scale: decile bins, moments, outlier scores.
    Numerical,
    /// Labels: counts over the reference's vocabulary.
    Categorical,
}

impl std::str::FromStr for FeatureKind {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s {
            "num" | "numerical" | "numeric" => Ok(FeatureKind::Numerical),
            "cat" | "categorical" => Ok(FeatureKind::Categorical),
            other => Err(format!(
                "unknown feature kind '{other}': use numerical or categorical"
            )),
        }
    }
}

/// Why a profile could not be built.
#[derive(Debug, thiserror::Error)]
pub enum ProfileError {
    #[error(transparent)]
    Dataset(#[from] DatasetError),
    #[error("feature '{name}' is not a column of the reference {table}")]
    UnknownFeature { name: String, table: String },
    #[error("prediction column '{name}' is not a column of the reference {table}")]
    UnknownPrediction { name: String, table: String },
    #[error("feature '{0}' is named twice")]
    DuplicateFeature(String),
    #[error("column '{column}' cannot be monitored: {reason}")]
    Unprofilable { column: String, reason: String },
    #[error("the reference has no rows")]
    NoRows,
    #[error("the reference has no feature to monitor")]
    NoFeatures,
    #[error("{0}")]
    Shape(String),
}

/// One feature of the reference: its bins or vocabulary and the
/// reference's own counts in them, moments, robust location and scale.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct FeatureProfile {
    pub name: String,
    pub kind: FeatureKind,
    /// Reference values present (numbers: finite or ±∞).
    present: u64,
    /// Reference values missing (NaN, null).
    missing: u64,
    /// The reference's count in each drift bucket: the bins of `bins` for
    /// a number; the vocabulary's categories then the bucket of values
    /// outside it for a category.
    bucket_counts: Vec<u64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    numeric: Option<NumericReference>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    categorical: Option<CategoricalReference>,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub(crate) struct NumericReference {
    pub bins: ReferenceBins,
    pub moments: Moments,
    /// `None` when the reference has no finite value.
    pub robust: Option<RobustScale>,
}

/// How live values are matched to a categorical reference's labels.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub(crate) enum CategoryEncoding {
    /// Strings: matched as they are; numbers by their printed form.
    Labels,
    /// Numbers printed as pandas prints them (`3`, `2.5`): numbers are
    /// matched by value, text by the number it parses to.
    Numbers,
    /// `False`/`True`: also `false`/`true` in any case, and 0/1.
    Booleans,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(from = "CategoricalParts", into = "CategoricalParts")]
pub(crate) struct CategoricalReference {
    pub vocabulary: CategoryVocabulary,
    pub encoding: CategoryEncoding,
    /// For [`CategoryEncoding::Numbers`]: each category's value and
    /// position, sorted by value, so a live number is found by binary
    /// search without printing it.
    numbers: Vec<(f64, usize)>,
}

#[derive(Serialize, Deserialize)]
struct CategoricalParts {
    vocabulary: CategoryVocabulary,
    encoding: CategoryEncoding,
}

impl From<CategoricalParts> for CategoricalReference {
    fn from(parts: CategoricalParts) -> Self {
        CategoricalReference::new(parts.vocabulary, parts.encoding)
    }
}

impl From<CategoricalReference> for CategoricalParts {
    fn from(reference: CategoricalReference) -> Self {
        CategoricalParts {
            vocabulary: reference.vocabulary,
            encoding: reference.encoding,
        }
    }
}

impl CategoricalReference {
    fn new(vocabulary: CategoryVocabulary, encoding: CategoryEncoding) -> Self {
        let mut numbers = Vec::new();
        if encoding == CategoryEncoding::Numbers {
            numbers = vocabulary
                .categories()
                .iter()
                .enumerate()
                .filter_map(|(index, label)| parse_number(label).map(|value| (value, index)))
                .collect();
            numbers.sort_unstable_by(|a, b| a.0.total_cmp(&b.0));
        }
        CategoricalReference {
            vocabulary,
            encoding,
            numbers,
        }
    }

    /// The bucket past the vocabulary: values the reference did not keep.
    #[inline]
    pub fn outside_bucket(&self) -> usize {
        self.vocabulary.len()
    }

    /// The bucket of a present text value.
    #[inline]
    pub fn bucket_of_text(&self, text: &str) -> usize {
        let found = match self.encoding {
            CategoryEncoding::Labels => self.vocabulary.index_of(text),
            CategoryEncoding::Numbers => {
                parse_number(text).and_then(|value| self.number_index(value))
            }
            CategoryEncoding::Booleans => {
                let text = text.trim();
                if text.eq_ignore_ascii_case("true") {
                    self.vocabulary.index_of("True")
                } else if text.eq_ignore_ascii_case("false") {
                    self.vocabulary.index_of("False")
                } else {
                    None
                }
            }
        };
        found.unwrap_or(self.outside_bucket())
    }

    /// The bucket of a present (non-NaN) number.
    #[inline]
    pub fn bucket_of_number(&self, value: f64) -> usize {
        let found = match self.encoding {
            CategoryEncoding::Numbers => self.number_index(value),
            CategoryEncoding::Booleans if value == 0.0 => self.vocabulary.index_of("False"),
            CategoryEncoding::Booleans if value == 1.0 => self.vocabulary.index_of("True"),
            CategoryEncoding::Booleans => None,
            CategoryEncoding::Labels => {
                with_number_label(value, |label| self.vocabulary.index_of(label))
            }
        };
        found.unwrap_or(self.outside_bucket())
    }

    fn number_index(&self, value: f64) -> Option<usize> {
        let value = if value == 0.0 { 0.0 } else { value }; // −0 is 0
        self.numbers
            .binary_search_by(|(category, _)| category.total_cmp(&value))
            .ok()
            .map(|position| self.numbers[position].1)
    }
}

fn parse_number(text: &str) -> Option<f64> {
    text.trim()
        .parse::<f64>()
        .ok()
        .filter(|value| !value.is_nan())
}

/// A number as pandas prints an integer or whole float (`3`), otherwise
/// Rust's shortest round-trip form, which is what `drift` labels numeric
/// categories with.
pub(crate) fn number_label(value: f64) -> String {
    if value.fract() == 0.0 && value.abs() < 1e15 {
        format!("{}", value as i64)
    } else {
        format!("{value}")
    }
}

/// Calls `f` with [`number_label`] of `value` printed on the stack (no
/// allocation); `None` when the label does not fit in 64 bytes (such a
/// number cannot be a short category label anyway).
fn with_number_label(value: f64, f: impl FnOnce(&str) -> Option<usize>) -> Option<usize> {
    use std::io::Write;
    let mut buffer = [0u8; 64];
    let mut cursor = std::io::Cursor::new(&mut buffer[..]);
    let written = if value.fract() == 0.0 && value.abs() < 1e15 {
        write!(cursor, "{}", value as i64)
    } else {
        write!(cursor, "{value}")
    };
    let length = cursor.position() as usize;
    written.ok()?;
    f(std::str::from_utf8(&buffer[..length]).ok()?)
}

impl FeatureProfile {
    /// A numerical feature from its reference values (NaN missing).
    pub(crate) fn numerical(name: &str, values: &[f64]) -> FeatureProfile {
        let bins = ReferenceBins::deciles(values);
        let mut counts = Histogram::for_bins(&bins);
        let mut moments = Moments::new();
        for &value in values {
            counts.update(&bins, value);
            moments.update(value);
        }
        let mut finite: Vec<f64> = values.iter().copied().filter(|v| v.is_finite()).collect();
        finite.sort_unstable_by(f64::total_cmp);
        let robust = RobustScale::fit(&finite);
        FeatureProfile {
            name: name.to_string(),
            kind: FeatureKind::Numerical,
            present: counts.binned_total(),
            missing: counts.nan,
            bucket_counts: counts.counts,
            numeric: Some(NumericReference {
                bins,
                moments,
                robust,
            }),
            categorical: None,
        }
    }

    /// A categorical feature from its labels' counts: the vocabulary is
    /// the [`MAX_CATEGORIES`] most frequent (ties by label, so the result
    /// does not depend on the input order).
    fn categorical(
        name: &str,
        encoding: CategoryEncoding,
        label_counts: HashMap<String, u64>,
        missing: u64,
    ) -> FeatureProfile {
        let mut labels: Vec<(String, u64)> = label_counts
            .into_iter()
            .filter(|(_, count)| *count > 0)
            .collect();
        labels.sort_unstable_by(|a, b| b.1.cmp(&a.1).then_with(|| a.0.cmp(&b.0)));
        let present = labels.iter().map(|(_, count)| count).sum();
        let outside: u64 = labels
            .iter()
            .skip(MAX_CATEGORIES)
            .map(|(_, count)| count)
            .sum();
        labels.truncate(MAX_CATEGORIES);
        let mut bucket_counts: Vec<u64> = labels.iter().map(|(_, count)| *count).collect();
        bucket_counts.push(outside);
        let vocabulary = CategoryVocabulary::new(labels.into_iter().map(|(label, _)| label));
        FeatureProfile {
            name: name.to_string(),
            kind: FeatureKind::Categorical,
            present,
            missing,
            bucket_counts,
            numeric: None,
            categorical: Some(CategoricalReference::new(vocabulary, encoding)),
        }
    }

    /// A feature of `kind` from a table's column.
    fn from_column(
        name: &str,
        kind: FeatureKind,
        values: &ColumnValues,
    ) -> Result<FeatureProfile, ProfileError> {
        let unprofilable = |reason: String| ProfileError::Unprofilable {
            column: name.to_string(),
            reason,
        };
        match (kind, values) {
            (_, ColumnValues::Unsupported { type_name, .. }) => Err(unprofilable(format!(
                "values of type {type_name} are not monitored"
            ))),
            (FeatureKind::Numerical, ColumnValues::Numeric { values, .. }) => {
                Ok(FeatureProfile::numerical(name, values))
            }
            (FeatureKind::Numerical, _) => Err(unprofilable(
                "it holds text or booleans, not numbers".to_string(),
            )),
            (FeatureKind::Categorical, ColumnValues::Numeric { values, .. }) => {
                let mut counts: HashMap<String, u64> = HashMap::new();
                let mut missing = 0;
                let mut sorted: Vec<f64> = Vec::with_capacity(values.len());
                for &value in values {
                    if value.is_nan() {
                        missing += 1;
                    } else {
                        sorted.push(if value == 0.0 { 0.0 } else { value });
                    }
                }
                sorted.sort_unstable_by(f64::total_cmp);
                for run in sorted.chunk_by(|a, b| a == b) {
                    *counts.entry(number_label(run[0])).or_default() += run.len() as u64;
                }
                Ok(FeatureProfile::categorical(
                    name,
                    CategoryEncoding::Numbers,
                    counts,
                    missing,
                ))
            }
            (
                FeatureKind::Categorical,
                ColumnValues::Strings { codes, .. } | ColumnValues::Boolean { codes },
            ) => {
                let dictionary = values.dictionary();
                let mut by_code = vec![0u64; dictionary.len()];
                let mut missing = 0;
                for &code in codes {
                    if code == MISSING_CODE {
                        missing += 1;
                    } else {
                        by_code[code as usize] += 1;
                    }
                }
                let mut counts: HashMap<String, u64> = HashMap::new();
                for (label, count) in dictionary.iter().zip(by_code) {
                    *counts.entry(label.clone()).or_default() += count;
                }
                let encoding = if matches!(values, ColumnValues::Boolean { .. }) {
                    CategoryEncoding::Booleans
                } else {
                    CategoryEncoding::Labels
                };
                Ok(FeatureProfile::categorical(name, encoding, counts, missing))
            }
        }
    }

    /// Share of the reference's values that were missing.
    pub fn reference_missing_share(&self) -> f64 {
        share(self.missing, self.present + self.missing)
    }

    /// Reference values present (numbers: finite or infinite).
    pub fn reference_count(&self) -> u64 {
        self.present
    }

    /// The reference's count per drift bucket: per bin for a number (see
    /// [`FeatureProfile::bin_edges`]), per category of
    /// [`FeatureProfile::categories`] then values outside them for a
    /// category.
    pub fn reference_bucket_counts(&self) -> &[u64] {
        &self.bucket_counts
    }

    /// Interior bin edges (reference deciles) of a numerical feature: bin
    /// `i` is `(edges[i−1], edges[i]]`, the outer bins open-ended.
    pub fn bin_edges(&self) -> Option<&[f64]> {
        self.numeric.as_ref().map(|numeric| numeric.bins.edges())
    }

    /// The reference vocabulary of a categorical feature, most frequent
    /// first.
    pub fn categories(&self) -> Option<&[String]> {
        self.categorical
            .as_ref()
            .map(|categorical| categorical.vocabulary.categories())
    }

    pub fn mean(&self) -> Option<f64> {
        self.numeric
            .as_ref()
            .and_then(|numeric| numeric.moments.mean())
    }

    pub fn std(&self) -> Option<f64> {
        self.numeric
            .as_ref()
            .and_then(|numeric| numeric.moments.std(1))
    }

    pub fn min(&self) -> Option<f64> {
        self.numeric
            .as_ref()
            .and_then(|numeric| numeric.moments.min())
    }

    pub fn max(&self) -> Option<f64> {
        self.numeric
            .as_ref()
            .and_then(|numeric| numeric.moments.max())
    }

    pub fn median(&self) -> Option<f64> {
        self.robust().map(|robust| robust.median)
    }

    /// Median absolute deviation from the median.
    pub fn mad(&self) -> Option<f64> {
        self.robust().map(|robust| robust.mad)
    }

    /// The robust z (`|x − median| / σ̂`) at which a value of this feature
    /// is an outlier (see [`super::OutlierVerdict`]).
    pub fn robust_z_threshold(&self) -> Option<f64> {
        self.robust().map(|robust| robust.z_threshold)
    }

    pub(crate) fn robust(&self) -> Option<&RobustScale> {
        self.numeric
            .as_ref()
            .and_then(|numeric| numeric.robust.as_ref())
    }

    pub(crate) fn numeric(&self) -> Option<&NumericReference> {
        self.numeric.as_ref()
    }

    pub(crate) fn categorical_reference(&self) -> Option<&CategoricalReference> {
        self.categorical.as_ref()
    }

    /// Number of drift buckets (bins, or categories plus the outside one).
    pub(crate) fn bucket_count(&self) -> usize {
        self.bucket_counts.len()
    }

    fn validate(&self) -> Result<(), String> {
        let name = &self.name;
        let expected_buckets = match (self.kind, &self.numeric, &self.categorical) {
            (FeatureKind::Numerical, Some(numeric), None) => {
                if numeric
                    .robust
                    .as_ref()
                    .is_some_and(|robust| !robust.is_valid())
                {
                    return Err(format!("feature '{name}': invalid robust scale"));
                }
                numeric.bins.bin_count()
            }
            (FeatureKind::Categorical, None, Some(categorical)) => categorical.vocabulary.len() + 1,
            _ => {
                return Err(format!(
                    "feature '{name}': its kind and its reference disagree"
                ))
            }
        };
        if self.bucket_counts.len() != expected_buckets {
            return Err(format!(
                "feature '{name}': {} reference counts for {expected_buckets} buckets",
                self.bucket_counts.len()
            ));
        }
        if self.bucket_counts.iter().sum::<u64>() != self.present {
            return Err(format!("feature '{name}': reference counts do not add up"));
        }
        Ok(())
    }
}

pub(crate) fn share(part: u64, whole: u64) -> f64 {
    if whole == 0 {
        0.0
    } else {
        part as f64 / whole as f64
    }
}

/// A deployment's reference: per-feature profiles, the prediction's, and
/// the Mahalanobis model of the numeric features. Stored as JSON (serde);
/// a stored profile is checked when loaded and what is derived from it
/// (the Cholesky factor's inverse, per-dimension thresholds) is recomputed,
/// so it cannot disagree with itself.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(try_from = "ProfileParts", into = "ProfileParts")]
pub struct ReferenceProfile {
    parts: ProfileParts,
    mahalanobis: Option<MahalanobisModel>,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
struct ProfileParts {
    version: u32,
    reference_rows: u64,
    features: Vec<FeatureProfile>,
    #[serde(default)]
    prediction: Option<FeatureProfile>,
    #[serde(default)]
    mahalanobis: Option<MahalanobisParts>,
}

impl TryFrom<ProfileParts> for ReferenceProfile {
    type Error = String;

    fn try_from(parts: ProfileParts) -> Result<Self, String> {
        if parts.version != PROFILE_VERSION {
            return Err(format!(
                "reference profile version {} is not supported (this build reads version {PROFILE_VERSION})",
                parts.version
            ));
        }
        if parts.features.is_empty() {
            return Err("the reference profile has no features".to_string());
        }
        let mut names = std::collections::HashSet::new();
        for feature in &parts.features {
            if !names.insert(feature.name.as_str()) {
                return Err(format!("feature '{}' appears twice", feature.name));
            }
            feature.validate()?;
        }
        if let Some(prediction) = &parts.prediction {
            prediction.validate()?;
        }
        let mahalanobis = match &parts.mahalanobis {
            Some(model) => {
                if model.features.iter().any(|&f| {
                    parts
                        .features
                        .get(f)
                        .is_none_or(|feature| feature.kind != FeatureKind::Numerical)
                }) {
                    return Err(
                        "the Mahalanobis model uses a feature that is not numerical".to_string()
                    );
                }
                Some(MahalanobisModel::new(model.clone(), parts.features.len())?)
            }
            None => None,
        };
        Ok(ReferenceProfile { parts, mahalanobis })
    }
}

impl From<ReferenceProfile> for ProfileParts {
    fn from(profile: ReferenceProfile) -> Self {
        profile.parts
    }
}

impl ReferenceProfile {
    /// From a reference table, for the named features (every column but
    /// the prediction when `None`), with an optional prediction column.
    /// Types are inferred as Evidently 0.7 does (see
    /// [`ReferenceProfile::from_table_with_kinds`]).
    pub fn from_table(
        table: &Table,
        features: Option<&[String]>,
        prediction: Option<&str>,
    ) -> Result<ReferenceProfile, ProfileError> {
        ReferenceProfile::from_table_with_kinds(table, features, prediction, &HashMap::new())
    }

    /// [`ReferenceProfile::from_table`] with some kinds given. The others
    /// are inferred as Evidently 0.7's `infer_column_type` does on the
    /// physical types pandas gives the file (the rule `drift` follows):
    /// floats are numerical, integers categorical when they take at most 10
    /// distinct values, strings and booleans categorical. Columns whose type
    /// cannot be monitored (dates, nested values, all missing, free text —
    /// strings mostly distinct) are left out when the features are not
    /// named, and are an error when they are (free text named explicitly is
    /// taken as categorical, keeping its 256 most frequent values).
    ///
    /// Each column is read once; numeric columns also contribute an evenly
    /// strided sample of at most 100 000 rows to the covariance.
    pub fn from_table_with_kinds(
        table: &Table,
        features: Option<&[String]>,
        prediction: Option<&str>,
        kinds: &HashMap<String, FeatureKind>,
    ) -> Result<ReferenceProfile, ProfileError> {
        let table_name = || table.path().display().to_string();
        if let Some(name) = prediction {
            if !table.has_column(name) {
                return Err(ProfileError::UnknownPrediction {
                    name: name.to_string(),
                    table: table_name(),
                });
            }
        }
        let named = features.is_some();
        let names: Vec<String> = match features {
            Some(names) => {
                let mut seen = std::collections::HashSet::new();
                for name in names {
                    if !table.has_column(name) {
                        return Err(ProfileError::UnknownFeature {
                            name: name.clone(),
                            table: table_name(),
                        });
                    }
                    if !seen.insert(name.as_str()) {
                        return Err(ProfileError::DuplicateFeature(name.clone()));
                    }
                }
                names.to_vec()
            }
            None => table
                .column_names()
                .iter()
                .filter(|name| Some(name.as_str()) != prediction)
                .cloned()
                .collect(),
        };
        if let Some(name) = kinds.keys().find(|name| !table.has_column(name)) {
            return Err(ProfileError::UnknownFeature {
                name: name.clone(),
                table: table_name(),
            });
        }
        let rows = table.rows();
        if rows == 0 {
            return Err(ProfileError::NoRows);
        }
        let stride = rows.div_ceil(MAX_COVARIANCE_ROWS);

        let mut profiles = Vec::new();
        let mut candidates = Vec::new();
        let mut samples = Vec::new();
        for name in &names {
            let values = table.column(name)?;
            let kind = match kinds.get(name) {
                Some(&kind) => kind,
                None => match (infer_kind(&values), named) {
                    (Inferred::Kind(kind), _) => kind,
                    (Inferred::FreeText, true) => FeatureKind::Categorical,
                    (Inferred::Untyped(reason), true) => {
                        return Err(ProfileError::Unprofilable {
                            column: name.clone(),
                            reason,
                        })
                    }
                    // Not asked for by name: a column that is not a feature.
                    (_, false) => continue,
                },
            };
            let profile = FeatureProfile::from_column(name, kind, &values)?;
            if let (FeatureKind::Numerical, ColumnValues::Numeric { values, .. }) =
                (kind, values.as_ref())
            {
                if candidates.len() < MAX_MAHALANOBIS_FEATURES {
                    candidates.push(profiles.len());
                    samples.push(values.iter().step_by(stride).copied().collect());
                }
            }
            profiles.push(profile);
        }
        if profiles.is_empty() {
            return Err(ProfileError::NoFeatures);
        }
        let prediction = match prediction {
            Some(name) => {
                let values = table.column(name)?;
                let kind = match kinds.get(name) {
                    Some(&kind) => kind,
                    None => match infer_kind(&values) {
                        Inferred::Kind(kind) => kind,
                        Inferred::FreeText => FeatureKind::Categorical,
                        Inferred::Untyped(reason) => {
                            return Err(ProfileError::Unprofilable {
                                column: name.to_string(),
                                reason,
                            })
                        }
                    },
                };
                Some(FeatureProfile::from_column(name, kind, &values)?)
            }
            None => None,
        };
        ReferenceProfile::assemble(rows as u64, profiles, prediction, &candidates, &samples)
    }

    /// From rows gathered live (e.g. the first rows a deployment served when
    /// no reference was given): numerical features only, named in order;
    /// `rows` row-major (`rows.len()` a multiple of the number of features,
    /// NaN missing); `predictions` one number per row, or empty.
    pub fn from_rows(
        feature_names: &[String],
        rows: &[f64],
        predictions: &[f64],
    ) -> Result<ReferenceProfile, ProfileError> {
        let width = feature_names.len();
        if width == 0 {
            return Err(ProfileError::NoFeatures);
        }
        let mut seen = std::collections::HashSet::new();
        if let Some(name) = feature_names
            .iter()
            .find(|name| !seen.insert(name.as_str()))
        {
            return Err(ProfileError::DuplicateFeature(name.clone()));
        }
        if rows.len() % width != 0 {
            return Err(ProfileError::Shape(format!(
                "{} values do not make whole rows of {width} features",
                rows.len()
            )));
        }
        let count = rows.len() / width;
        if count == 0 {
            return Err(ProfileError::NoRows);
        }
        if !predictions.is_empty() && predictions.len() != count {
            return Err(ProfileError::Shape(format!(
                "{} predictions for {count} rows: give one per row, or none",
                predictions.len()
            )));
        }
        let stride = count.div_ceil(MAX_COVARIANCE_ROWS);
        let mut profiles = Vec::with_capacity(width);
        let mut candidates = Vec::new();
        let mut samples = Vec::new();
        for (index, name) in feature_names.iter().enumerate() {
            let column: Vec<f64> = rows.iter().skip(index).step_by(width).copied().collect();
            profiles.push(FeatureProfile::numerical(name, &column));
            if candidates.len() < MAX_MAHALANOBIS_FEATURES {
                candidates.push(index);
                samples.push(column.iter().step_by(stride).copied().collect());
            }
        }
        let prediction = (!predictions.is_empty())
            .then(|| FeatureProfile::numerical(DEFAULT_PREDICTION_NAME, predictions));
        ReferenceProfile::assemble(count as u64, profiles, prediction, &candidates, &samples)
    }

    fn assemble(
        reference_rows: u64,
        features: Vec<FeatureProfile>,
        prediction: Option<FeatureProfile>,
        candidates: &[usize],
        samples: &[Vec<f64>],
    ) -> Result<ReferenceProfile, ProfileError> {
        let parts = ProfileParts {
            version: PROFILE_VERSION,
            reference_rows,
            features,
            prediction,
            mahalanobis: MahalanobisParts::fit(candidates, samples),
        };
        // Built here, so it is consistent; the check guards the invariant.
        ReferenceProfile::try_from(parts).map_err(ProfileError::Shape)
    }

    /// The monitored features, in the order [`super::FeatureBatch`]
    /// columns follow.
    pub fn features(&self) -> &[FeatureProfile] {
        &self.parts.features
    }

    /// The prediction's profile, when the reference had one.
    pub fn prediction(&self) -> Option<&FeatureProfile> {
        self.parts.prediction.as_ref()
    }

    /// Rows of the reference.
    pub fn reference_rows(&self) -> u64 {
        self.parts.reference_rows
    }

    /// Names of the features in the Mahalanobis distance (numerical, not
    /// constant, at most 64); empty when the reference had too few complete
    /// rows for a covariance (then only the robust z scores rows).
    pub fn mahalanobis_features(&self) -> Vec<&str> {
        self.mahalanobis.as_ref().map_or_else(Vec::new, |model| {
            model
                .features()
                .iter()
                .map(|&f| self.parts.features[f].name.as_str())
                .collect()
        })
    }

    /// The Mahalanobis distance at which a row is an outlier: the reference
    /// rows' own 99.9th percentile.
    pub fn mahalanobis_threshold(&self) -> Option<f64> {
        self.mahalanobis.as_ref().map(|model| model.parts.threshold)
    }

    pub(crate) fn mahalanobis(&self) -> Option<&MahalanobisModel> {
        self.mahalanobis.as_ref()
    }
}

enum Inferred {
    Kind(FeatureKind),
    /// Strings, more than half of them distinct (Evidently's text type).
    FreeText,
    /// No monitorable type; the reason.
    Untyped(String),
}

/// Evidently 0.7's `infer_column_type` on the reference (the rule of
/// `drift`'s column typing, repeated here because that one is private to
/// the batch reports).
fn infer_kind(values: &ColumnValues) -> Inferred {
    match values {
        ColumnValues::Numeric { integer: false, .. } => Inferred::Kind(FeatureKind::Numerical),
        ColumnValues::Numeric {
            values,
            integer: true,
        } => {
            let mut sorted: Vec<f64> = values.clone();
            sorted.sort_unstable_by(f64::total_cmp);
            sorted.dedup();
            if sorted.len() <= INTEGER_CARDINALITY_LIMIT {
                Inferred::Kind(FeatureKind::Categorical)
            } else {
                Inferred::Kind(FeatureKind::Numerical)
            }
        }
        ColumnValues::Strings { codes, dictionary } => {
            let mut seen = vec![false; dictionary.len()];
            let (mut present, mut distinct) = (0usize, 0usize);
            for &code in codes.iter().filter(|&&code| code != MISSING_CODE) {
                present += 1;
                if !std::mem::replace(&mut seen[code as usize], true) {
                    distinct += 1;
                }
            }
            if present == 0 {
                Inferred::Untyped("every value is missing, so its type cannot be told".to_string())
            } else if distinct as f64 > present as f64 * 0.5 {
                Inferred::FreeText
            } else {
                Inferred::Kind(FeatureKind::Categorical)
            }
        }
        ColumnValues::Boolean { .. } => Inferred::Kind(FeatureKind::Categorical),
        ColumnValues::Unsupported { type_name, .. } => {
            Inferred::Untyped(format!("values of type {type_name} are not monitored"))
        }
    }
}
