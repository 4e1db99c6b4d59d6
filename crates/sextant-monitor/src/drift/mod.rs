//! Drift reports: a reference table against a current one, column by column.
//!
//! Two method sets answer the same question differently:
//!
//! - [`MethodSet::Evidently`] reproduces Evidently 0.7's `DataDriftPreset`
//!   defaults: the per-column test chosen from the column's type, the
//!   reference's size and the number of distinct values, the test's default
//!   threshold, and the dataset rule "drift when at least half the columns
//!   drifted". Same data, same statistics (see `evidently.rs`).
//! - [`MethodSet::Sextant`] (the default) bins numbers at the reference's
//!   deciles, measures effect sizes (normed Wasserstein, PSI, Jensen-Shannon
//!   in bits), and calls a column drifted only when the effect is material
//!   *and* significant after Benjamini-Hochberg correction across the
//!   columns; categories unseen in the reference and changes in missingness
//!   are reported on their own (see `sextant.rs`).
//!
//! Columns are compared in parallel, each worker reading one column of each
//! table at a time.

mod columns;
mod evidently;
pub mod html;
mod sextant;

use std::collections::HashMap;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Mutex;

use serde::{Deserialize, Serialize};

use crate::dataset::{ColumnValues, DatasetError, Table};

/// Which methods decide drift.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum MethodSet {
    Evidently,
    Sextant,
}

impl std::str::FromStr for MethodSet {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s {
            "evidently" => Ok(MethodSet::Evidently),
            "sextant" => Ok(MethodSet::Sextant),
            other => Err(format!(
                "unknown method set '{other}': use evidently or sextant"
            )),
        }
    }
}

/// How a column's values are compared.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum ColumnType {
    /// Numbers on a scale.
    Numerical,
    /// Labels (strings, booleans, integers with few values).
    Categorical,
    /// Free text: mostly distinct strings.
    Text,
}

impl std::str::FromStr for ColumnType {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s {
            "num" | "numerical" | "numeric" => Ok(ColumnType::Numerical),
            "cat" | "categorical" => Ok(ColumnType::Categorical),
            "text" => Ok(ColumnType::Text),
            other => Err(format!(
                "unknown column type '{other}': use numerical, categorical or text"
            )),
        }
    }
}

/// What a column is to the model.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum ColumnRole {
    Feature,
    Target,
    Prediction,
}

/// What to compare and how.
#[derive(Debug, Clone)]
pub struct DriftOptions {
    pub methods: MethodSet,
    /// Only these columns (all shared columns when `None`).
    pub columns: Option<Vec<String>>,
    /// Types given explicitly; the others are inferred as Evidently does.
    pub column_types: HashMap<String, ColumnType>,
    /// The label column: its drift is label drift.
    pub target: Option<String>,
    /// The model's output column: its drift is prediction drift.
    pub prediction: Option<String>,
    /// The dataset drifts when at least this share of columns drifted.
    pub drift_share: f64,
    /// Worker threads (0: one per core).
    pub threads: usize,
}

/// Explicit column types from lists of numerical and categorical columns;
/// a column in both is an error naming it.
pub fn column_types(
    numerical: &[String],
    categorical: &[String],
) -> Result<HashMap<String, ColumnType>, String> {
    let mut types: HashMap<String, ColumnType> = numerical
        .iter()
        .map(|name| (name.clone(), ColumnType::Numerical))
        .collect();
    for name in categorical {
        if types
            .insert(name.clone(), ColumnType::Categorical)
            .is_some()
        {
            return Err(format!(
                "column '{name}' is given as both numerical and categorical"
            ));
        }
    }
    Ok(types)
}

impl DriftOptions {
    pub fn new(methods: MethodSet) -> DriftOptions {
        DriftOptions {
            methods,
            columns: None,
            column_types: HashMap::new(),
            target: None,
            prediction: None,
            drift_share: 0.5,
            threads: 0,
        }
    }
}

/// Why a report could not be made at all.
#[derive(Debug, thiserror::Error)]
pub enum DriftError {
    #[error(transparent)]
    Dataset(#[from] DatasetError),
    #[error("{0}")]
    Invalid(String),
}

/// A drift report. Its JSON form is what `sextant drift --format json` prints.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct DriftReport {
    pub methods: MethodSet,
    pub reference: TableSummary,
    pub current: TableSummary,
    pub columns: Vec<ColumnDrift>,
    /// Columns that could not be compared, and why.
    pub skipped: Vec<SkippedColumn>,
    pub dataset: DatasetDrift,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct TableSummary {
    pub path: String,
    pub rows: usize,
}

/// One column's verdict.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct ColumnDrift {
    pub column: String,
    #[serde(rename = "type")]
    pub column_type: ColumnType,
    pub role: ColumnRole,
    /// The method's short name (Evidently's registry name in `evidently` mode).
    pub method: String,
    /// The method's name for people.
    pub method_name: String,
    pub statistic: f64,
    /// The p-value behind the verdict, when the method has one (in
    /// `sextant` mode, adjusted for the number of columns compared).
    pub p_value: Option<f64>,
    pub threshold: f64,
    pub drifted: bool,
    /// What drifted: `distribution`, `missing values`.
    pub reasons: Vec<String>,
    /// Rows compared on each side, after missing values are set aside.
    pub reference_count: usize,
    pub current_count: usize,
    /// Share of missing values on each side (NaN, null, and infinities for
    /// numbers, which Evidently drops too).
    pub reference_missing_share: f64,
    pub current_missing_share: f64,
    /// The other effect sizes measured (`sextant` mode).
    #[serde(skip_serializing_if = "Option::is_none", default)]
    pub effect_sizes: Option<EffectSizes>,
    /// Share of current values whose category never appears in the reference.
    #[serde(skip_serializing_if = "Option::is_none", default)]
    pub unseen_share: Option<f64>,
    /// The categories behind `unseen_share`, most frequent first (at most 10).
    #[serde(skip_serializing_if = "Vec::is_empty", default)]
    pub unseen_categories: Vec<String>,
    /// A missingness test (`sextant` mode).
    #[serde(skip_serializing_if = "Option::is_none", default)]
    pub missing: Option<MissingDrift>,
    /// The two distributions on common bins, for charts.
    pub distribution: Distribution,
}

/// Effect sizes of one column (`sextant` mode).
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct EffectSizes {
    /// Population stability index on the reference's bins.
    pub psi: f64,
    /// Jensen-Shannon distance in bits (0 to 1) on the same bins.
    pub jensen_shannon: f64,
    /// Wasserstein-1 over the reference's standard deviation (numbers only).
    #[serde(skip_serializing_if = "Option::is_none", default)]
    pub wasserstein_normed: Option<f64>,
    /// Kolmogorov-Smirnov D (numbers only).
    #[serde(skip_serializing_if = "Option::is_none", default)]
    pub ks_statistic: Option<f64>,
    /// The test's raw p-value, before correction.
    pub raw_p_value: f64,
}

/// Did the share of missing values change?
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct MissingDrift {
    pub statistic: f64,
    /// Two-proportion z-test, adjusted for the number of columns.
    pub p_value: f64,
    /// Smallest change in share that counts.
    pub threshold: f64,
    pub drifted: bool,
}

/// Both sides on common bins or categories.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Distribution {
    /// `bins` (numbers; `edges` has one more entry than the shares) or
    /// `categories` (`labels`).
    pub kind: String,
    #[serde(skip_serializing_if = "Vec::is_empty", default)]
    pub edges: Vec<f64>,
    #[serde(skip_serializing_if = "Vec::is_empty", default)]
    pub labels: Vec<String>,
    pub reference: Vec<f64>,
    pub current: Vec<f64>,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct SkippedColumn {
    pub column: String,
    pub reason: String,
}

/// The dataset's verdict.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct DatasetDrift {
    pub drifted_columns: usize,
    /// Columns the verdict counts (skipped ones never; with Sextant's
    /// methods, features only).
    pub columns: usize,
    pub share: f64,
    pub drift_share: f64,
    pub drift: bool,
}

/// A column ready for a method: its role, type and both sides' values.
pub(crate) struct ColumnPair<'a> {
    pub name: &'a str,
    pub role: ColumnRole,
    pub column_type: ColumnType,
    pub reference: &'a ColumnValues,
    pub current: &'a ColumnValues,
}

/// What a method found for one column before the dataset-wide steps
/// (multiple-testing correction in `sextant` mode).
pub(crate) enum ColumnOutcome {
    Compared(Box<ColumnDrift>),
    Skipped(String),
}

/// Compares `reference` and `current`.
pub fn drift_report(
    reference: &Table,
    current: &Table,
    options: &DriftOptions,
) -> Result<DriftReport, DriftError> {
    if !(options.drift_share > 0.0 && options.drift_share <= 1.0) {
        return Err(DriftError::Invalid(format!(
            "drift share must be in (0, 1], not {}",
            options.drift_share
        )));
    }
    let names = columns_to_compare(reference, current, options)?;
    let threads = match options.threads {
        0 => std::thread::available_parallelism().map_or(1, |n| n.get()),
        n => n,
    }
    .min(names.len().max(1));

    let next = AtomicUsize::new(0);
    let outcomes: Mutex<Vec<Option<Result<ColumnOutcome, DriftError>>>> =
        Mutex::new((0..names.len()).map(|_| None).collect());
    std::thread::scope(|scope| {
        for _ in 0..threads {
            scope.spawn(|| loop {
                let index = next.fetch_add(1, Ordering::Relaxed);
                let Some(name) = names.get(index) else { break };
                let outcome = compare_column(reference, current, name, options);
                outcomes.lock().expect("no worker panics holding the lock")[index] = Some(outcome);
            });
        }
    });

    let mut compared = Vec::new();
    let mut skipped = Vec::new();
    let outcomes = outcomes.into_inner().expect("workers done");
    for (name, outcome) in names.iter().zip(outcomes) {
        match outcome.expect("every column was compared")? {
            ColumnOutcome::Compared(column) => compared.push(*column),
            ColumnOutcome::Skipped(reason) => skipped.push(SkippedColumn {
                column: name.clone(),
                reason,
            }),
        }
    }
    if options.methods == MethodSet::Sextant {
        sextant::correct_for_multiple_columns(&mut compared);
    }

    // Evidently's dataset verdict counts every compared column; Sextant's
    // counts the features: target and prediction drift are verdicts of
    // their own (label drift, prediction drift), not evidence that the
    // inputs moved.
    let counted: Vec<&ColumnDrift> = compared
        .iter()
        .filter(|c| options.methods == MethodSet::Evidently || c.role == ColumnRole::Feature)
        .collect();
    let drifted_columns = counted.iter().filter(|c| c.drifted).count();
    let share = if counted.is_empty() {
        0.0
    } else {
        drifted_columns as f64 / counted.len() as f64
    };
    let dataset = DatasetDrift {
        drifted_columns,
        columns: counted.len(),
        share,
        drift_share: options.drift_share,
        drift: !counted.is_empty() && share >= options.drift_share,
    };
    Ok(DriftReport {
        methods: options.methods,
        reference: TableSummary {
            path: reference.path().display().to_string(),
            rows: reference.rows(),
        },
        current: TableSummary {
            path: current.path().display().to_string(),
            rows: current.rows(),
        },
        columns: compared,
        skipped,
        dataset,
    })
}

/// The columns both tables share (or the ones asked for, which must exist
/// in both), target and prediction included.
fn columns_to_compare(
    reference: &Table,
    current: &Table,
    options: &DriftOptions,
) -> Result<Vec<String>, DriftError> {
    let missing_from = |name: &str| {
        let mut tables = Vec::new();
        if !reference.has_column(name) {
            tables.push(format!("the reference ({})", reference.path().display()));
        }
        if !current.has_column(name) {
            tables.push(format!("the current data ({})", current.path().display()));
        }
        tables
    };
    let mut wanted: Vec<String> = match &options.columns {
        Some(columns) => columns.clone(),
        None => current
            .column_names()
            .iter()
            .filter(|n| reference.has_column(n))
            .cloned()
            .collect(),
    };
    for special in [&options.target, &options.prediction].into_iter().flatten() {
        if !wanted.contains(special) {
            wanted.push(special.clone());
        }
    }
    for name in wanted.iter().chain(options.column_types.keys()) {
        let tables = missing_from(name);
        if !tables.is_empty() {
            return Err(DriftError::Invalid(format!(
                "column '{name}' is missing from {}",
                tables.join(" and ")
            )));
        }
    }
    if wanted.is_empty() {
        return Err(DriftError::Invalid(format!(
            "{} and {} have no column in common",
            reference.path().display(),
            current.path().display()
        )));
    }
    Ok(wanted)
}

fn compare_column(
    reference: &Table,
    current: &Table,
    name: &str,
    options: &DriftOptions,
) -> Result<ColumnOutcome, DriftError> {
    let reference_values = reference.column(name)?;
    let current_values = current.column(name)?;
    let role = if options.target.as_deref() == Some(name) {
        ColumnRole::Target
    } else if options.prediction.as_deref() == Some(name) {
        ColumnRole::Prediction
    } else {
        ColumnRole::Feature
    };
    let column_type = match options.column_types.get(name) {
        Some(&given) => given,
        // Evidently types the columns from the current data.
        None => match columns::infer_type(&current_values) {
            Some(inferred) => inferred,
            None => {
                return Ok(ColumnOutcome::Skipped(unsupported_reason(&current_values)));
            }
        },
    };
    if let Err(reason) = columns::check_compatible(&reference_values, &current_values, column_type)
    {
        return Ok(ColumnOutcome::Skipped(reason));
    }
    let pair = ColumnPair {
        name,
        role,
        column_type,
        reference: &reference_values,
        current: &current_values,
    };
    Ok(match options.methods {
        MethodSet::Evidently => evidently::compare(&pair),
        MethodSet::Sextant => sextant::compare(&pair),
    })
}

fn unsupported_reason(values: &ColumnValues) -> String {
    match values {
        ColumnValues::Unsupported { type_name, .. } => {
            format!("values of type {type_name} are not compared (dates and nested values have no drift method)")
        }
        _ => "every value is missing, so the column's type cannot be told".to_string(),
    }
}
