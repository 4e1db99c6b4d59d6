//! Column typing and the prepared forms both method sets work on: sorted
//! finite numbers, or counts per category on a shared vocabulary.

use std::collections::HashMap;

use super::ColumnType;
use crate::dataset::{ColumnValues, MISSING_CODE};

/// Evidently 0.7's `infer_column_type` (`evidently/core/datasets.py`), on
/// the physical types pandas gives the same file: floats are numerical;
/// integers are categorical when they take at most 10 distinct values;
/// strings are text when more than half the non-missing values are
/// distinct, categorical otherwise; booleans are categorical. `None` for
/// what cannot be typed (dates, nested values, strings that are all missing).
pub(crate) fn infer_type(values: &ColumnValues) -> Option<ColumnType> {
    const INTEGER_CARDINALITY_LIMIT: usize = 10;
    match values {
        ColumnValues::Numeric { integer: false, .. } => Some(ColumnType::Numerical),
        ColumnValues::Numeric {
            values,
            integer: true,
        } => {
            if distinct_numbers_up_to(values, INTEGER_CARDINALITY_LIMIT + 1)
                <= INTEGER_CARDINALITY_LIMIT
            {
                Some(ColumnType::Categorical)
            } else {
                Some(ColumnType::Numerical)
            }
        }
        ColumnValues::Strings { codes, .. } => {
            let present = codes.iter().filter(|&&c| c != MISSING_CODE).count();
            if present == 0 {
                return None;
            }
            let mut seen = vec![false; values.dictionary().len()];
            let mut distinct = 0usize;
            for &code in codes.iter().filter(|&&c| c != MISSING_CODE) {
                if !std::mem::replace(&mut seen[code as usize], true) {
                    distinct += 1;
                }
            }
            if distinct as f64 > present as f64 * 0.5 {
                Some(ColumnType::Text)
            } else {
                Some(ColumnType::Categorical)
            }
        }
        ColumnValues::Boolean { .. } => Some(ColumnType::Categorical),
        ColumnValues::Unsupported { .. } => None,
    }
}

/// Distinct non-NaN values, counted up to `cap` (typing only asks
/// whether an integer column has more than 10).
fn distinct_numbers_up_to(values: &[f64], cap: usize) -> usize {
    let mut seen: Vec<u64> = Vec::with_capacity(cap);
    for value in values.iter().filter(|v| !v.is_nan()) {
        let bits = if *value == 0.0 { 0 } else { value.to_bits() };
        if !seen.contains(&bits) {
            seen.push(bits);
            if seen.len() >= cap {
                break;
            }
        }
    }
    seen.len()
}

/// Can both sides be compared as `column_type`?
pub(crate) fn check_compatible(
    reference: &ColumnValues,
    current: &ColumnValues,
    column_type: ColumnType,
) -> Result<(), String> {
    let kind = |values: &ColumnValues| match values {
        ColumnValues::Numeric { .. } => "numbers",
        ColumnValues::Strings { .. } => "strings",
        ColumnValues::Boolean { .. } => "booleans",
        ColumnValues::Unsupported { .. } => "values of an unsupported type",
    };
    if let ColumnValues::Unsupported { type_name, .. } = reference {
        return Err(format!(
            "the reference holds {type_name} values, which are not compared"
        ));
    }
    if let ColumnValues::Unsupported { type_name, .. } = current {
        return Err(format!(
            "the current data holds {type_name} values, which are not compared"
        ));
    }
    match column_type {
        ColumnType::Numerical => {
            for (side, values) in [("reference", reference), ("current data", current)] {
                if !matches!(values, ColumnValues::Numeric { .. }) {
                    return Err(format!(
                        "the column is numerical but the {side} holds {}: non-numeric values in a numeric column",
                        kind(values)
                    ));
                }
            }
            Ok(())
        }
        ColumnType::Categorical => {
            let numeric = |v: &ColumnValues| matches!(v, ColumnValues::Numeric { .. });
            if numeric(reference) != numeric(current) {
                return Err(format!(
                    "the reference holds {} and the current data {}: their categories cannot match",
                    kind(reference),
                    kind(current)
                ));
            }
            Ok(())
        }
        ColumnType::Text => Err(
            "text drift (Evidently's domain classifier on the words) is not computed; \
             pass the column as categorical to compare its values"
                .to_string(),
        ),
    }
}

/// A numeric column's finite values, sorted, and what was set aside.
pub(crate) struct SortedNumbers {
    pub values: Vec<f64>,
    /// NaN, null and ±infinity: Evidently drops all of them.
    pub missing: usize,
    pub total: usize,
}

impl SortedNumbers {
    pub fn new(values: &ColumnValues) -> SortedNumbers {
        let ColumnValues::Numeric { values, .. } = values else {
            unreachable!("checked by check_compatible");
        };
        let finite =
            sextant_stats::sort::sorted_floats(values.iter().copied().filter(|v| v.is_finite()));
        SortedNumbers {
            missing: values.len() - finite.len(),
            total: values.len(),
            values: finite,
        }
    }

    pub fn missing_share(&self) -> f64 {
        share(self.missing, self.total)
    }

    /// Distinct values (`pd.Series.nunique`), counted up to `cap`.
    pub fn distinct_up_to(&self, cap: usize) -> usize {
        let mut distinct = usize::from(!self.values.is_empty());
        for pair in self.values.windows(2) {
            if distinct >= cap {
                break;
            }
            distinct += usize::from(pair[0] != pair[1]);
        }
        distinct
    }
}

/// Distinct values in the union of two sorted slices, counted up to
/// `cap` (the callers only ask whether there are more than a few).
pub(crate) fn distinct_in_union_up_to(a: &[f64], b: &[f64], cap: usize) -> usize {
    let (mut i, mut j, mut distinct) = (0, 0, 0);
    let mut last: Option<f64> = None;
    while i < a.len() || j < b.len() {
        let next = if j >= b.len() || (i < a.len() && a[i] <= b[j]) {
            i += 1;
            a[i - 1]
        } else {
            j += 1;
            b[j - 1]
        };
        if last != Some(next) {
            distinct += 1;
            if distinct >= cap {
                return distinct;
            }
            last = Some(next);
        }
    }
    distinct
}

pub(crate) fn share(part: usize, whole: usize) -> f64 {
    if whole == 0 {
        0.0
    } else {
        part as f64 / whole as f64
    }
}

/// Counts per category on the vocabulary shared by both sides, in
/// ascending order of the values (numbers numerically, strings by code
/// point, as Python sorts them).
pub(crate) struct CategoryCounts {
    pub labels: Vec<String>,
    pub reference: Vec<u64>,
    pub current: Vec<u64>,
    pub reference_total: u64,
    pub current_total: u64,
    pub reference_missing: usize,
    pub current_missing: usize,
    pub reference_rows: usize,
    pub current_rows: usize,
}

impl CategoryCounts {
    pub fn new(reference: &ColumnValues, current: &ColumnValues) -> CategoryCounts {
        match (reference, current) {
            (ColumnValues::Numeric { .. }, ColumnValues::Numeric { .. }) => {
                CategoryCounts::of_numbers(
                    &SortedNumbers::new(reference),
                    &SortedNumbers::new(current),
                )
            }
            _ => CategoryCounts::of_labels(reference, current),
        }
    }

    pub fn of_numbers(reference: &SortedNumbers, current: &SortedNumbers) -> CategoryCounts {
        let (mut labels, mut reference_counts, mut current_counts) =
            (Vec::new(), Vec::new(), Vec::new());
        let (a, b) = (&reference.values, &current.values);
        let (mut i, mut j) = (0, 0);
        while i < a.len() || j < b.len() {
            let value = match (a.get(i), b.get(j)) {
                (Some(&x), Some(&y)) => x.min(y),
                (Some(&x), None) => x,
                (None, Some(&y)) => y,
                (None, None) => unreachable!(),
            };
            let start_i = i;
            while i < a.len() && a[i] == value {
                i += 1;
            }
            let start_j = j;
            while j < b.len() && b[j] == value {
                j += 1;
            }
            labels.push(format_number(value));
            reference_counts.push((i - start_i) as u64);
            current_counts.push((j - start_j) as u64);
        }
        CategoryCounts {
            labels,
            reference: reference_counts,
            current: current_counts,
            reference_total: a.len() as u64,
            current_total: b.len() as u64,
            reference_missing: reference.missing,
            current_missing: current.missing,
            reference_rows: reference.total,
            current_rows: current.total,
        }
    }

    fn of_labels(reference: &ColumnValues, current: &ColumnValues) -> CategoryCounts {
        let codes = |values: &ColumnValues| match values {
            ColumnValues::Strings { codes, .. } | ColumnValues::Boolean { codes } => codes.clone(),
            _ => unreachable!("checked by check_compatible"),
        };
        let (reference_codes, current_codes) = (codes(reference), codes(current));
        let count = |codes: &[u32], dictionary_len: usize| {
            let mut counts = vec![0u64; dictionary_len];
            let mut missing = 0usize;
            for &code in codes {
                if code == MISSING_CODE {
                    missing += 1;
                } else {
                    counts[code as usize] += 1;
                }
            }
            (counts, missing)
        };
        let (reference_by_code, reference_missing) =
            count(&reference_codes, reference.dictionary().len());
        let (current_by_code, current_missing) = count(&current_codes, current.dictionary().len());

        let mut by_label: HashMap<&str, (u64, u64)> = HashMap::new();
        for (label, &n) in reference.dictionary().iter().zip(&reference_by_code) {
            if n > 0 {
                by_label.entry(label).or_default().0 += n;
            }
        }
        for (label, &n) in current.dictionary().iter().zip(&current_by_code) {
            if n > 0 {
                by_label.entry(label).or_default().1 += n;
            }
        }
        let mut entries: Vec<(&str, (u64, u64))> = by_label.into_iter().collect();
        entries.sort_unstable_by(|a, b| a.0.cmp(b.0));
        CategoryCounts {
            labels: entries.iter().map(|(label, _)| label.to_string()).collect(),
            reference: entries.iter().map(|(_, (r, _))| *r).collect(),
            current: entries.iter().map(|(_, (_, c))| *c).collect(),
            reference_total: (reference_codes.len() - reference_missing) as u64,
            current_total: (current_codes.len() - current_missing) as u64,
            reference_missing,
            current_missing,
            reference_rows: reference_codes.len(),
            current_rows: current_codes.len(),
        }
    }

    pub fn reference_shares(&self) -> Vec<f64> {
        self.reference
            .iter()
            .map(|&n| n as f64 / self.reference_total as f64)
            .collect()
    }

    pub fn current_shares(&self) -> Vec<f64> {
        self.current
            .iter()
            .map(|&n| n as f64 / self.current_total as f64)
            .collect()
    }
}

/// A number as Python prints it when it is a whole float or an integer.
pub(crate) fn format_number(value: f64) -> String {
    if value.fract() == 0.0 && value.abs() < 1e15 {
        format!("{}", value as i64)
    } else {
        format!("{value}")
    }
}
