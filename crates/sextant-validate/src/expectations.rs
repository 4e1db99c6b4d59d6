//! Data expectations in Great Expectations' vocabulary, shortened
//! (`expect_column_values_to_not_be_null` is `column_values_not_null`),
//! with its `mostly` (the share of non-missing rows that must pass; GX
//! counts missing values as neither passing nor failing a value check,
//! except in `column_values_not_null`). Each is checked over a column in
//! one pass, and a failure keeps a sample of the rows that failed.

use std::collections::{BTreeMap, HashSet};

use serde::Serialize;
use serde_json::{json, Value};
use sextant_monitor::dataset::{ColumnValues, MISSING_CODE};

use crate::frame::{Cells, Frame, Scalar};
use crate::spec::FeatureSchema;

const SAMPLE_ROWS: usize = 10;

#[derive(Debug, Clone)]
pub struct Expectation {
    pub kind: Kind,
    pub column: Option<String>,
    pub mostly: f64,
}

/// What `column_values_between`'s bounds may be.
const LIMIT_TYPES: &str = "must be a number (or, for dates and times, a date or time as text)";

/// A bound of `column_values_between`: a number, or a date or time as
/// text for a temporal column.
#[derive(Debug, Clone)]
pub enum Limit {
    Number(f64),
    Instant(String),
}

#[derive(Debug, Clone)]
pub enum Kind {
    TableRowCountBetween {
        min: Option<f64>,
        max: Option<f64>,
    },
    TableColumnsInclude(Vec<String>),
    ColumnExists,
    ColumnType(String),
    ValuesNotNull,
    ValuesInSet {
        values: Vec<Scalar>,
        from_schema: bool,
    },
    ValuesBetween {
        min: Option<Limit>,
        max: Option<Limit>,
    },
    ValuesUnique,
    ValuesMatchRegex(regex::Regex),
    MeanBetween {
        min: Option<f64>,
        max: Option<f64>,
    },
    DistinctCountBetween {
        min: Option<f64>,
        max: Option<f64>,
    },
    PairGreater {
        other: String,
        or_equal: bool,
    },
}

/// What checking one expectation found.
#[derive(Debug, Clone, Serialize)]
pub struct Outcome {
    pub expectation: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub column: Option<String>,
    pub success: bool,
    pub observed: Value,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub unexpected_count: Option<usize>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub unexpected_share: Option<f64>,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub unexpected_rows: Vec<Value>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
}

const KINDS: &str = "table_row_count_between, table_columns_include, column_exists, column_type, \
column_values_not_null, column_values_in_set, column_values_between, column_values_unique, \
column_values_match_regex, column_mean_between, column_distinct_count_between, \
column_pair_a_greater_than_b";

impl Expectation {
    /// Parses one entry; an error names the field (relative to the entry).
    pub fn parse(value: &Value) -> Result<Expectation, (String, String)> {
        let err = |field: &str, m: String| (field.to_string(), m);
        let Some(object) = value.as_object() else {
            return Err(err("", "an expectation is a mapping with `expect`".into()));
        };
        let name = match object.get("expect") {
            Some(Value::String(s)) => s.as_str(),
            _ => return Err(err("expect", "missing or not a string".into())),
        };
        let allowed: &[&str] = match name {
            "table_row_count_between" => &["min", "max"],
            "table_columns_include" => &["columns"],
            "column_exists" | "column_values_unique" => &["column"],
            "column_type" => &["column", "type"],
            "column_values_not_null" => &["column", "mostly"],
            "column_values_in_set" => &["column", "values", "from_schema", "mostly"],
            "column_values_between" => &["column", "min", "max", "mostly"],
            "column_values_match_regex" => &["column", "regex", "mostly"],
            "column_mean_between" | "column_distinct_count_between" => &["column", "min", "max"],
            "column_pair_a_greater_than_b" => {
                &["column", "column_a", "column_b", "or_equal", "mostly"]
            }
            other => {
                return Err(err(
                    "expect",
                    format!("unknown expectation '{other}': expected one of {KINDS}"),
                ))
            }
        };
        for key in object.keys() {
            if key != "expect" && !allowed.contains(&key.as_str()) {
                return Err(err(key, format!("unknown field `{key}` for {name}")));
            }
        }
        let number = |key: &str| -> Result<Option<f64>, (String, String)> {
            match object.get(key) {
                None | Some(Value::Null) => Ok(None),
                Some(v) => v
                    .as_f64()
                    .map(Some)
                    .ok_or_else(|| err(key, "must be a number".into())),
            }
        };
        let text = |key: &str| -> Result<String, (String, String)> {
            match object.get(key) {
                Some(Value::String(s)) if !s.is_empty() => Ok(s.clone()),
                _ => Err(err(key, format!("{name} needs `{key}` (a string)"))),
            }
        };
        let mostly = number("mostly")?.unwrap_or(1.0);
        if !(0.0..=1.0).contains(&mostly) {
            return Err(err("mostly", "must be within [0, 1]".into()));
        }
        let bounds = || -> Result<(Option<f64>, Option<f64>), (String, String)> {
            let (min, max) = (number("min")?, number("max")?);
            if min.is_none() && max.is_none() {
                return Err(err("", format!("{name} needs `min`, `max` or both")));
            }
            Ok((min, max))
        };
        let mut column = None;
        let kind = match name {
            "table_row_count_between" => {
                let (min, max) = bounds()?;
                Kind::TableRowCountBetween { min, max }
            }
            "table_columns_include" => Kind::TableColumnsInclude(
                serde_json::from_value(object.get("columns").cloned().unwrap_or(Value::Null))
                    .map_err(|_| err("columns", "must be a list of column names".into()))?,
            ),
            "column_pair_a_greater_than_b" => {
                column = Some(text("column_a")?);
                Kind::PairGreater {
                    other: text("column_b")?,
                    or_equal: object
                        .get("or_equal")
                        .and_then(Value::as_bool)
                        .unwrap_or(false),
                }
            }
            _ => {
                column = Some(text("column")?);
                match name {
                    "column_exists" => Kind::ColumnExists,
                    "column_values_unique" => Kind::ValuesUnique,
                    "column_type" => {
                        let t = text("type")?;
                        if !matches!(
                            t.as_str(),
                            "numeric"
                                | "integer"
                                | "float"
                                | "string"
                                | "boolean"
                                | "date"
                                | "datetime"
                                | "time"
                                | "duration"
                        ) {
                            return Err(err(
                                "type",
                                "must be numeric, integer, float, string, boolean, date, datetime, time or duration".into(),
                            ));
                        }
                        Kind::ColumnType(t)
                    }
                    "column_values_not_null" => Kind::ValuesNotNull,
                    "column_values_in_set" => {
                        let from_schema = object
                            .get("from_schema")
                            .and_then(Value::as_bool)
                            .unwrap_or(false);
                        let values =
                            match object.get("values") {
                                Some(Value::Array(items)) => {
                                    items.iter().map(Scalar::from_json).collect()
                                }
                                Some(_) => return Err(err("values", "must be a list".into())),
                                None if from_schema => Vec::new(),
                                None => return Err(err(
                                    "",
                                    "column_values_in_set needs `values` or `from_schema: true`"
                                        .into(),
                                )),
                            };
                        Kind::ValuesInSet {
                            values,
                            from_schema,
                        }
                    }
                    "column_values_between" => {
                        // A number, or text: a date or time for a temporal
                        // column (a number written as text is a number).
                        let limit = |key: &str| match object.get(key) {
                            None | Some(Value::Null) => Ok(None),
                            Some(Value::String(text)) if !text.trim().is_empty() => {
                                Ok(Some(match text.trim().parse::<f64>() {
                                    Ok(x) => Limit::Number(x),
                                    Err(_) => Limit::Instant(text.clone()),
                                }))
                            }
                            Some(v) => v
                                .as_f64()
                                .map(|x| Some(Limit::Number(x)))
                                .ok_or_else(|| err(key, LIMIT_TYPES.into())),
                        };
                        let (min, max) = (limit("min")?, limit("max")?);
                        if min.is_none() && max.is_none() {
                            return Err(err("", format!("{name} needs `min`, `max` or both")));
                        }
                        Kind::ValuesBetween { min, max }
                    }
                    "column_values_match_regex" => {
                        let pattern = text("regex")?;
                        Kind::ValuesMatchRegex(
                            regex::Regex::new(&pattern)
                                .map_err(|e| err("regex", format!("not a valid regex: {e}")))?,
                        )
                    }
                    "column_mean_between" => {
                        let (min, max) = bounds()?;
                        Kind::MeanBetween { min, max }
                    }
                    "column_distinct_count_between" => {
                        let (min, max) = bounds()?;
                        Kind::DistinctCountBetween { min, max }
                    }
                    _ => unreachable!("names are checked above"),
                }
            }
        };
        Ok(Expectation {
            kind,
            column,
            mostly,
        })
    }

    pub fn name(&self) -> &'static str {
        match self.kind {
            Kind::TableRowCountBetween { .. } => "table_row_count_between",
            Kind::TableColumnsInclude(_) => "table_columns_include",
            Kind::ColumnExists => "column_exists",
            Kind::ColumnType(_) => "column_type",
            Kind::ValuesNotNull => "column_values_not_null",
            Kind::ValuesInSet { .. } => "column_values_in_set",
            Kind::ValuesBetween { .. } => "column_values_between",
            Kind::ValuesUnique => "column_values_unique",
            Kind::ValuesMatchRegex(_) => "column_values_match_regex",
            Kind::MeanBetween { .. } => "column_mean_between",
            Kind::DistinctCountBetween { .. } => "column_distinct_count_between",
            Kind::PairGreater { .. } => "column_pair_a_greater_than_b",
        }
    }

    /// A short id for assertion names: `column_values_between(money)`.
    pub fn label(&self) -> String {
        match &self.column {
            Some(c) => format!("{}({c})", self.name()),
            None => self.name().to_string(),
        }
    }

    pub fn check(&self, frame: &Frame, schema: &BTreeMap<String, FeatureSchema>) -> Outcome {
        let mut outcome = Outcome {
            expectation: self.name().to_string(),
            column: self.column.clone(),
            success: false,
            observed: Value::Null,
            unexpected_count: None,
            unexpected_share: None,
            unexpected_rows: Vec::new(),
            error: None,
        };
        let within = |x: f64, min: Option<f64>, max: Option<f64>| {
            min.is_none_or(|m| x >= m) && max.is_none_or(|m| x <= m)
        };
        let rows = frame.rows();
        match &self.kind {
            Kind::TableRowCountBetween { min, max } => {
                outcome.observed = json!(rows);
                outcome.success = within(rows as f64, *min, *max);
                return outcome;
            }
            Kind::TableColumnsInclude(columns) => {
                let missing: Vec<&String> = columns.iter().filter(|c| !frame.has(c)).collect();
                outcome.observed = json!({ "missing": missing });
                outcome.success = missing.is_empty();
                return outcome;
            }
            _ => {}
        }
        let name = self.column.as_deref().unwrap_or_default();
        let column = match frame.column(name) {
            Ok(c) => c,
            Err(message) => {
                outcome.observed = json!({ "exists": false });
                if !matches!(self.kind, Kind::ColumnExists) {
                    outcome.error = Some(message);
                }
                return outcome;
            }
        };
        let type_name = match column {
            ColumnValues::Numeric { integer: true, .. } => "integer",
            ColumnValues::Numeric { .. } => "float",
            ColumnValues::Strings { .. } => "string",
            ColumnValues::Boolean { .. } => "boolean",
            ColumnValues::Unsupported {
                instants: Some(instants),
                ..
            } => instants.scale.kind_name(),
            ColumnValues::Unsupported { .. } => "unsupported",
        };
        // A row-wise check: `fails(row)` is Some(true) when the row breaks
        // the expectation, None when it does not count (missing).
        let mut row_check = |fails: &dyn Fn(usize) -> Option<bool>, count_missing: bool| {
            let (mut counted, mut unexpected) = (0usize, 0usize);
            for i in 0..rows {
                let Some(bad) = fails(i) else {
                    if count_missing {
                        counted += 1;
                    }
                    continue;
                };
                counted += 1;
                if bad {
                    unexpected += 1;
                    if outcome.unexpected_rows.len() < SAMPLE_ROWS {
                        outcome
                            .unexpected_rows
                            .push(json!({ "row": i, "value": column.scalar(i).to_json() }));
                    }
                }
            }
            let share = if counted == 0 {
                0.0
            } else {
                unexpected as f64 / counted as f64
            };
            outcome.unexpected_count = Some(unexpected);
            outcome.unexpected_share = Some(share);
            outcome.success = 1.0 - share >= self.mostly - 1e-12;
        };
        match &self.kind {
            Kind::ColumnExists => {
                outcome.observed = json!({ "exists": true });
                outcome.success = true;
            }
            Kind::ColumnType(wanted) => {
                outcome.observed = json!(type_name);
                outcome.success = match wanted.as_str() {
                    "numeric" => matches!(type_name, "integer" | "float"),
                    other => other == type_name || (other == "float" && type_name == "integer"),
                };
            }
            Kind::ValuesNotNull => {
                row_check(&|i| Some(is_missing(column, i)), true);
                outcome.observed = json!({ "missing_share": outcome.unexpected_share });
            }
            Kind::ValuesInSet {
                values,
                from_schema,
            } => {
                let mut allowed: HashSet<String> =
                    values.iter().filter_map(Scalar::canonical).collect();
                if *from_schema {
                    match schema.get(name).and_then(|f| f.values.as_ref()) {
                        Some(listed) => allowed.extend(
                            listed
                                .iter()
                                .filter_map(|v| Scalar::from_json(v).canonical()),
                        ),
                        None => {
                            outcome.error =
                                Some(format!("the spec's schema lists no values for '{name}'"));
                            return outcome;
                        }
                    }
                }
                match column {
                    // Decided once per category, not per row.
                    ColumnValues::Strings { codes, dictionary } => {
                        let bad: Vec<bool> = dictionary
                            .iter()
                            .map(|label| {
                                Scalar::Text(label.clone())
                                    .canonical()
                                    .is_none_or(|c| !allowed.contains(&c))
                            })
                            .collect();
                        row_check(
                            &|i| (codes[i] != MISSING_CODE).then(|| bad[codes[i] as usize]),
                            false,
                        );
                    }
                    ColumnValues::Numeric { values, .. } => {
                        let numbers: HashSet<u64> = allowed
                            .iter()
                            .filter_map(|c| c.parse::<f64>().ok())
                            .map(|x| (x + 0.0).to_bits())
                            .collect();
                        row_check(
                            &|i| {
                                let x = values[i];
                                (!x.is_nan()).then(|| !numbers.contains(&(x + 0.0).to_bits()))
                            },
                            false,
                        );
                    }
                    _ => row_check(
                        &|i| column.scalar(i).canonical().map(|c| !allowed.contains(&c)),
                        false,
                    ),
                }
            }
            Kind::ValuesBetween { min, max } => {
                if let ColumnValues::Unsupported {
                    instants: Some(instants),
                    present,
                    ..
                } = column
                {
                    // Dates and times: the bounds are read on the column's scale.
                    let ticks = |limit: &Option<Limit>, key: &str| match limit {
                        None => Ok(None),
                        Some(Limit::Instant(text)) => instants.scale.parse(text).map(Some),
                        Some(Limit::Number(_)) => Err(format!(
                            "'{name}' holds {type_name} values: write `{key}` as text, e.g. {}",
                            match type_name {
                                "duration" => "'2 days 04:00:00', '90s' or 'PT1H30M'",
                                "time" => "'08:00:00'",
                                _ => "'2026-01-31' or '2026-01-31 08:00:00'",
                            }
                        )),
                    };
                    let (low, high) = match (ticks(min, "min"), ticks(max, "max")) {
                        (Ok(low), Ok(high)) => (low, high),
                        (Err(message), _) | (_, Err(message)) => {
                            outcome.error = Some(message);
                            outcome.observed = json!({ "type": type_name });
                            return outcome;
                        }
                    };
                    let values = &instants.ticks;
                    row_check(
                        &|i| {
                            present[i].then(|| {
                                low.is_some_and(|l| values[i] < l)
                                    || high.is_some_and(|h| values[i] > h)
                            })
                        },
                        false,
                    );
                    return outcome;
                }
                if !matches!(
                    column,
                    ColumnValues::Numeric { .. } | ColumnValues::Boolean { .. }
                ) {
                    outcome.error = Some(format!("'{name}' holds {type_name} values, not numbers"));
                    outcome.observed = json!({ "type": type_name });
                    return outcome;
                }
                let number = |limit: &Option<Limit>| match limit {
                    Some(Limit::Number(x)) => Ok(Some(*x)),
                    None => Ok(None),
                    Some(Limit::Instant(text)) => {
                        Err(format!("'{name}' holds numbers, and '{text}' is not one"))
                    }
                };
                let (low, high) = match (number(min), number(max)) {
                    (Ok(low), Ok(high)) => (low, high),
                    (Err(message), _) | (_, Err(message)) => {
                        outcome.error = Some(message);
                        return outcome;
                    }
                };
                row_check(
                    &|i| column.scalar(i).as_f64().map(|x| !within(x, low, high)),
                    false,
                );
            }
            Kind::ValuesMatchRegex(pattern) => {
                if let ColumnValues::Strings { codes, dictionary } = column {
                    let bad: Vec<bool> = dictionary.iter().map(|l| !pattern.is_match(l)).collect();
                    row_check(
                        &|i| (codes[i] != MISSING_CODE).then(|| bad[codes[i] as usize]),
                        false,
                    );
                    return outcome;
                }
                row_check(
                    &|i| match column.scalar(i) {
                        Scalar::Null => None,
                        Scalar::Text(s) => Some(!pattern.is_match(&s)),
                        other => Some(!pattern.is_match(&other.canonical().unwrap_or_default())),
                    },
                    false,
                );
            }
            Kind::ValuesUnique => {
                let duplicated = repeated_rows(column, rows);
                row_check(
                    &|i| {
                        if is_missing(column, i) {
                            None
                        } else {
                            Some(duplicated[i])
                        }
                    },
                    false,
                );
                outcome.success = outcome.unexpected_count == Some(0);
            }
            Kind::MeanBetween { min, max } => {
                let (count, sum) = (0..rows)
                    .filter_map(|i| column.scalar(i).as_f64())
                    .fold((0usize, 0.0), |(n, sum), x| (n + 1, sum + x));
                if count == 0 {
                    outcome.error = Some(format!("'{name}' has no numeric values"));
                    return outcome;
                }
                let mean = sum / count as f64;
                outcome.observed = json!(mean);
                outcome.success = within(mean, *min, *max);
            }
            Kind::DistinctCountBetween { min, max } => {
                let distinct = distinct_count(column, rows);
                outcome.observed = json!(distinct);
                outcome.success = within(distinct as f64, *min, *max);
            }
            Kind::PairGreater { other, or_equal } => {
                let other_column = match frame.column(other) {
                    Ok(c) => c,
                    Err(message) => {
                        outcome.error = Some(message);
                        return outcome;
                    }
                };
                let or_equal = *or_equal;
                row_check(
                    &|i| match (column.scalar(i).as_f64(), other_column.scalar(i).as_f64()) {
                        (Some(a), Some(b)) => Some(if or_equal { a < b } else { a <= b }),
                        _ => None,
                    },
                    false,
                );
            }
            Kind::TableRowCountBetween { .. } | Kind::TableColumnsInclude(_) => {
                unreachable!("handled above")
            }
        }
        outcome
    }
}

/// Whether row `i` of `column` is missing, without building its value.
fn is_missing(column: &ColumnValues, i: usize) -> bool {
    match column {
        ColumnValues::Numeric { values, .. } => values[i].is_nan(),
        ColumnValues::Strings { codes, .. } => codes[i] == MISSING_CODE,
        ColumnValues::Boolean { .. } => false,
        ColumnValues::Unsupported { present, .. } => !present[i],
    }
}

/// A key equal for equal values of one column (the category's code, the
/// number's bits with −0 as 0), None when missing.
fn identity(column: &ColumnValues, i: usize) -> Option<u64> {
    match column {
        ColumnValues::Numeric { values, .. } => {
            (!values[i].is_nan()).then(|| (values[i] + 0.0).to_bits())
        }
        ColumnValues::Strings { codes, .. } => {
            (codes[i] != MISSING_CODE).then(|| u64::from(codes[i]))
        }
        ColumnValues::Boolean { codes } => Some(u64::from(codes[i])),
        // Dates and times by their bits; nested values have no identity.
        ColumnValues::Unsupported { present, keys, .. } => {
            keys.as_ref().filter(|_| present[i]).map(|keys| keys[i])
        }
    }
}

/// Present values' identities with their rows, sorted by identity and,
/// within one, by row: interned labels and numbers' bits sort (by radix,
/// stably, so rows stay in order) faster than a hash set of 10M values
/// fills.
fn sorted_identities(column: &ColumnValues, rows: usize) -> Vec<(u64, u32)> {
    let mut keyed: Vec<(u64, u32)> = (0..rows)
        .filter_map(|i| identity(column, i).map(|key| (key, i as u32)))
        .collect();
    radsort::sort_by_key(&mut keyed, |&(key, _)| key);
    keyed
}

/// For each row, whether its value appeared in an earlier row (pandas'
/// `duplicated(keep="first")`); missing values are never repeats.
fn repeated_rows(column: &ColumnValues, rows: usize) -> Vec<bool> {
    let mut repeated = vec![false; rows];
    if let ColumnValues::Strings { codes, dictionary } = column {
        // Codes index a dictionary of distinct labels: a bitmap of codes seen.
        let mut seen = vec![false; dictionary.len()];
        for (slot, &code) in repeated.iter_mut().zip(codes) {
            if code != MISSING_CODE {
                *slot = std::mem::replace(&mut seen[code as usize], true);
            }
        }
        return repeated;
    }
    let keyed = sorted_identities(column, rows);
    for pair in keyed.windows(2) {
        if pair[0].0 == pair[1].0 {
            // Sorted by (value, row): every later row of a run is a repeat.
            repeated[pair[1].1 as usize] = true;
        }
    }
    repeated
}

/// Distinct present values.
fn distinct_count(column: &ColumnValues, rows: usize) -> usize {
    if let ColumnValues::Strings { codes, dictionary } = column {
        let mut seen = vec![false; dictionary.len()];
        for &code in codes.iter().filter(|&&c| c != MISSING_CODE) {
            seen[code as usize] = true;
        }
        return seen.into_iter().filter(|&s| s).count();
    }
    let mut keys: Vec<u64> = (0..rows).filter_map(|i| identity(column, i)).collect();
    radsort::sort(&mut keys);
    keys.windows(2).filter(|p| p[0] != p[1]).count() + usize::from(!keys.is_empty())
}

/// An expectations file (`expectations: [...]`, and optionally the
/// `schema:` that `from_schema` reads) checked against one table.
#[derive(Debug, Clone, Serialize)]
pub struct Checked {
    pub success: bool,
    pub rows: usize,
    pub columns: usize,
    pub outcomes: Vec<Outcome>,
    pub seconds: f64,
}

impl Checked {
    /// JUnit XML for a CI job: one test case per expectation, in one
    /// suite named after the data.
    pub fn to_junit(&self, data: &str) -> String {
        use crate::report::xml;
        let failures = self
            .outcomes
            .iter()
            .filter(|o| o.error.is_none() && !o.success)
            .count();
        let errors = self.outcomes.iter().filter(|o| o.error.is_some()).count();
        let mut out = String::from("<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n");
        out.push_str(&format!(
            "<testsuites name=\"sextant expectations check\" tests=\"{}\" failures=\"{failures}\" errors=\"{errors}\" time=\"{:.3}\">\n",
            self.outcomes.len(),
            self.seconds
        ));
        out.push_str(&format!(
            "  <testsuite name=\"{}\" tests=\"{}\" failures=\"{failures}\" errors=\"{errors}\" time=\"{:.3}\">\n",
            xml(data),
            self.outcomes.len(),
            self.seconds
        ));
        for (k, outcome) in self.outcomes.iter().enumerate() {
            let name = match &outcome.column {
                Some(column) => format!("{k}:{}({column})", outcome.expectation),
                None => format!("{k}:{}", outcome.expectation),
            };
            out.push_str(&format!(
                "    <testcase classname=\"expectations\" name=\"{}\">",
                xml(&name)
            ));
            if let Some(error) = &outcome.error {
                out.push_str(&format!("<error message=\"{}\"/>", xml(error)));
            } else if !outcome.success {
                let message = match outcome.unexpected_count {
                    Some(n) => format!(
                        "{n} unexpected rows; first {}",
                        Value::from(outcome.unexpected_rows.clone())
                    ),
                    None => format!("observed {}", outcome.observed),
                };
                out.push_str(&format!(
                    "<failure type=\"blocking\" message=\"{}\"/>",
                    xml(&message)
                ));
            }
            out.push_str("</testcase>\n");
        }
        out.push_str("  </testsuite>\n</testsuites>\n");
        out
    }

    /// A self-contained HTML page (inline CSS, no script).
    pub fn to_html(&self, data: &str) -> String {
        crate::html::render_checked(self, data)
    }
}

/// Parses an expectations file; errors name the line and field.
pub fn parse_file(
    text: &str,
) -> Result<(Vec<Expectation>, BTreeMap<String, FeatureSchema>), crate::SpecError> {
    let doc = crate::yaml::parse(text).map_err(|e| crate::SpecError {
        line: Some(e.line),
        field: String::new(),
        message: format!("not valid YAML: {}", e.message),
    })?;
    let error = |field: &str, message: String| crate::SpecError {
        line: doc.line_of(field),
        field: field.to_string(),
        message,
    };
    let Some(object) = doc.value.as_object() else {
        return Err(error(
            "",
            "an expectations file is a mapping with `expectations`".into(),
        ));
    };
    if let Some(key) = object
        .keys()
        .find(|k| !matches!(k.as_str(), "expectations" | "schema"))
    {
        return Err(error(
            key,
            format!("unknown field `{key}`: expected `expectations` and `schema`"),
        ));
    }
    let Some(Value::Array(items)) = object.get("expectations") else {
        return Err(error("expectations", "must be a list".into()));
    };
    let mut expectations = Vec::with_capacity(items.len());
    for (i, item) in items.iter().enumerate() {
        let at = format!("expectations[{i}]");
        expectations.push(Expectation::parse(item).map_err(|(field, message)| {
            let path = if field.is_empty() {
                at.clone()
            } else {
                format!("{at}.{field}")
            };
            error(&path, message)
        })?);
    }
    let schema = match object.get("schema").and_then(|s| s.get("features")) {
        Some(features) => serde_json::from_value(features.clone())
            .map_err(|e| error("schema.features", e.to_string()))?,
        None => BTreeMap::new(),
    };
    Ok((expectations, schema))
}

/// Checks every expectation against the table at `path`.
pub fn check_file(
    path: &std::path::Path,
    expectations: &[Expectation],
    schema: &BTreeMap<String, FeatureSchema>,
) -> Result<Checked, String> {
    let started = std::time::Instant::now();
    let frame = Frame::read(path).map_err(|e| format!("{}: {e}", path.display()))?;
    let threads = std::thread::available_parallelism().map_or(1, |n| n.get());
    let outcomes =
        sextant_monitor::map_parallel(expectations, threads, |e| e.check(&frame, schema));
    Ok(Checked {
        success: outcomes.iter().all(|o| o.success && o.error.is_none()),
        rows: frame.rows(),
        columns: frame.names().len(),
        outcomes,
        seconds: started.elapsed().as_secs_f64(),
    })
}

/// Categories a column may have for `infer` to list them as its set.
const INFER_MAX_CATEGORIES: usize = 50;

/// Proposes expectations from a profile, TFDV's `infer_schema` way: every
/// column present with its type; not null where nothing was missing, else
/// at most twice the missing share; numbers within the range seen (mostly
/// 0.99, so new data may stray a little); the categories seen, for columns
/// with at most 50; unique where every value was. The data the profile came
/// from passes what it proposes; the file is meant to be read and edited.
pub fn infer(profile: &sextant_monitor::profile::Profile, data: &str) -> String {
    let quote = |text: &str| serde_json::to_string(text).unwrap_or_default();
    let mut out = format!(
        "# Expectations proposed by `sextant expectations infer` from {} ({} rows).\n\
         # Read them, tighten or loosen them, then: sextant expectations check DATA THIS_FILE\n\
         expectations:\n",
        data, profile.rows
    );
    let names: Vec<String> = profile.columns.iter().map(|c| quote(&c.name)).collect();
    out.push_str(&format!(
        "  - {{expect: table_columns_include, columns: [{}]}}\n",
        names.join(", ")
    ));
    for column in &profile.columns {
        let summary = column.summary(profile.rows);
        let name = quote(&column.name);
        let kind = match column.kind.as_str() {
            "integer" | "float" => "numeric",
            "categorical" => "string",
            "boolean" => "boolean",
            // No range: new data is usually later than what was seen.
            temporal @ ("date" | "datetime" | "time" | "duration") => temporal,
            _ => continue,
        };
        out.push_str(&format!(
            "  - {{expect: column_type, column: {name}, type: {kind}}}\n"
        ));
        if summary.missing == 0 {
            out.push_str(&format!(
                "  - {{expect: column_values_not_null, column: {name}}}\n"
            ));
        } else {
            let mostly = ((1.0 - 2.0 * summary.missing_share).max(0.0) * 1000.0).floor() / 1000.0;
            out.push_str(&format!(
                "  - {{expect: column_values_not_null, column: {name}, mostly: {mostly}}}\n"
            ));
        }
        if let (Some(min), Some(max)) = (summary.min, summary.max) {
            if min.is_finite() && max.is_finite() {
                out.push_str(&format!(
                    "  - {{expect: column_values_between, column: {name}, min: {min}, max: {max}, mostly: 0.99}}\n"
                ));
            }
        }
        if let Some(categories) = &column.categories {
            let top = categories.top(INFER_MAX_CATEGORIES + 1);
            let listed: u64 = top.iter().map(|c| c.estimate).sum();
            if top.len() <= INFER_MAX_CATEGORIES && listed == summary.count && kind == "string" {
                let values: Vec<String> = top.iter().map(|c| quote(&c.item)).collect();
                out.push_str(&format!(
                    "  - {{expect: column_values_in_set, column: {name}, values: [{}], mostly: 0.999}}\n",
                    values.join(", ")
                ));
            }
        }
        if summary.count > 1 && column.exact_distinct == Some(summary.count) && kind != "boolean" {
            out.push_str(&format!(
                "  - {{expect: column_values_unique, column: {name}}}\n"
            ));
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The first-seen rule with a hash set, row by row: the oracle.
    fn repeated_by_hashing(column: &ColumnValues, rows: usize) -> (Vec<bool>, usize) {
        let mut seen = HashSet::new();
        let repeated = (0..rows)
            .map(|i| identity(column, i).is_some_and(|key| !seen.insert(key)))
            .collect();
        (repeated, seen.len())
    }

    /// A bound is a number (also written as text) or, for dates and
    /// times, text; anything else names the field.
    #[test]
    fn between_bounds_are_numbers_or_instants() {
        let text = "expectations:\n\
                    \x20 - {expect: column_values_between, column: a, min: '5', max: 7}\n\
                    \x20 - {expect: column_values_between, column: t, min: 2026-01-01}\n";
        let (parsed, _) = parse_file(text).unwrap();
        assert!(matches!(
            parsed[0].kind,
            Kind::ValuesBetween {
                min: Some(Limit::Number(5.0)),
                max: Some(Limit::Number(7.0))
            }
        ));
        assert!(matches!(
            &parsed[1].kind,
            Kind::ValuesBetween { min: Some(Limit::Instant(day)), max: None } if day == "2026-01-01"
        ));
        let error =
            parse_file("expectations:\n  - {expect: column_values_between, column: a, min: [1]}\n")
                .unwrap_err()
                .to_string();
        assert!(error.contains("line 2") && error.contains("min"), "{error}");
    }

    #[test]
    fn repeats_and_distinct_counts_match_a_hash_set() {
        let numbers = ColumnValues::Numeric {
            values: vec![3.0, f64::NAN, 1.0, 3.0, -0.0, 0.0, f64::NAN, 1.0, 2.5, 3.0],
            integer: false,
        };
        let labels = ColumnValues::Strings {
            codes: vec![2, MISSING_CODE, 0, 2, 1, MISSING_CODE, 0],
            // A dictionary may list labels no row uses (a view's rows).
            dictionary: vec!["a".into(), "b".into(), "c".into(), "unused".into()],
        };
        for (column, rows) in [(&numbers, 10), (&labels, 7)] {
            let (repeated, distinct) = repeated_by_hashing(column, rows);
            assert_eq!(repeated_rows(column, rows), repeated);
            assert_eq!(distinct_count(column, rows), distinct);
        }
        assert_eq!(
            distinct_count(&numbers, 10),
            4,
            "-0.0 and 0.0 are one value"
        );
        let empty = ColumnValues::Numeric {
            values: vec![f64::NAN; 3],
            integer: false,
        };
        assert_eq!(distinct_count(&empty, 3), 0);
    }
}
