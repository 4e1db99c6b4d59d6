//! A dataset in memory: named typed columns (the monitor's
//! [`ColumnValues`], shared by `Arc`), with the row operations tests need:
//! selection, perturbation, and conversion into a model's input tensors.

use std::collections::HashMap;
use std::path::Path;
use std::sync::Arc;

use serde_json::Value;
use sextant_monitor::dataset::{ColumnValues, Table, MISSING_CODE};
use sextant_monitor::temporal::Instants;
use sextant_serve::{NamedTensor, Tensor, TensorData};

use crate::rng::Rng;
use crate::spec::{ColumnGenerator, Generator, Perturbation};

/// One cell, for filters and reports.
#[derive(Debug, Clone, PartialEq)]
pub enum Scalar {
    Null,
    Bool(bool),
    Number(f64),
    Text(String),
}

impl Scalar {
    pub fn from_json(value: &Value) -> Scalar {
        match value {
            Value::Null => Scalar::Null,
            Value::Bool(b) => Scalar::Bool(*b),
            Value::Number(n) => Scalar::Number(n.as_f64().unwrap_or(f64::NAN)),
            Value::String(s) => Scalar::Text(s.clone()),
            other => Scalar::Text(other.to_string()),
        }
    }

    pub fn is_null(&self) -> bool {
        matches!(self, Scalar::Null)
    }

    pub fn as_f64(&self) -> Option<f64> {
        match self {
            Scalar::Number(x) if !x.is_nan() => Some(*x),
            Scalar::Bool(b) => Some(f64::from(u8::from(*b))),
            _ => None,
        }
    }

    /// The value as a class label: booleans and their spellings are `1` and
    /// `0`, integral numbers print without a fraction, so `true`, `1`,
    /// `1.0` and `"True"` name the same class whichever type a file or a
    /// model gave it.
    pub fn canonical(&self) -> Option<String> {
        match self {
            Scalar::Null => None,
            Scalar::Bool(b) => Some(if *b { "1" } else { "0" }.to_string()),
            Scalar::Number(x) if x.is_nan() => None,
            Scalar::Number(x) if x.fract() == 0.0 && x.abs() < 1e15 => {
                Some(format!("{}", *x as i64))
            }
            Scalar::Number(x) => Some(x.to_string()),
            Scalar::Text(s) => Some(match s.as_str() {
                "True" | "true" => "1".to_string(),
                "False" | "false" => "0".to_string(),
                _ => s.clone(),
            }),
        }
    }

    pub fn same(&self, other: &Scalar) -> bool {
        match (self.canonical(), other.canonical()) {
            (Some(a), Some(b)) => a == b,
            (None, None) => true,
            _ => false,
        }
    }

    pub fn to_json(&self) -> Value {
        match self {
            Scalar::Null => Value::Null,
            Scalar::Bool(b) => Value::Bool(*b),
            Scalar::Number(x) => {
                serde_json::Number::from_f64(*x).map_or(Value::Null, Value::Number)
            }
            Scalar::Text(s) => Value::String(s.clone()),
        }
    }
}

/// Reads a cell of a column.
pub trait Cells {
    fn scalar(&self, row: usize) -> Scalar;
}

impl Cells for ColumnValues {
    fn scalar(&self, row: usize) -> Scalar {
        match self {
            ColumnValues::Numeric { values, .. } => {
                let x = values[row];
                if x.is_nan() {
                    Scalar::Null
                } else {
                    Scalar::Number(x)
                }
            }
            ColumnValues::Strings { codes, dictionary } => match codes[row] {
                MISSING_CODE => Scalar::Null,
                code => Scalar::Text(dictionary[code as usize].clone()),
            },
            ColumnValues::Boolean { codes } => Scalar::Bool(codes[row] == 1),
            ColumnValues::Unsupported { .. } => Scalar::Null,
        }
    }
}

#[derive(Debug, Clone)]
pub struct Frame {
    names: Vec<String>,
    columns: Vec<Arc<ColumnValues>>,
    rows: usize,
}

impl Frame {
    pub fn new(names: Vec<String>, columns: Vec<Arc<ColumnValues>>) -> Frame {
        let rows = columns.iter().map(|c| c.len()).max().unwrap_or(0);
        Frame {
            names,
            columns,
            rows,
        }
    }

    /// Every column of a CSV or Parquet file.
    pub fn read(path: &Path) -> Result<Frame, String> {
        let table = Table::open(path).map_err(|e| e.to_string())?;
        let names = table.column_names().to_vec();
        // Columns are read (a Parquet file's decoded, a CSV file's already
        // typed) on every core, one column per thread at a time.
        let threads = std::thread::available_parallelism().map_or(1, |n| n.get());
        let columns = sextant_monitor::map_parallel(&names, threads, |name| table.column(name))
            .into_iter()
            .collect::<Result<Vec<_>, _>>()
            .map_err(|e| e.to_string())?;
        let mut frame = Frame::new(names, columns);
        frame.rows = table.rows();
        Ok(frame)
    }

    pub fn rows(&self) -> usize {
        self.rows
    }

    pub fn names(&self) -> &[String] {
        &self.names
    }

    pub fn has(&self, name: &str) -> bool {
        self.names.iter().any(|n| n == name)
    }

    pub fn column(&self, name: &str) -> Result<&ColumnValues, String> {
        self.names
            .iter()
            .position(|n| n == name)
            .map(|i| self.columns[i].as_ref())
            .ok_or_else(|| {
                format!(
                    "the dataset has no column '{name}' (it has {})",
                    self.names.join(", ")
                )
            })
    }

    /// Row `row`'s values by column name, for a report's sample of failing
    /// rows (a person needs the inputs to see why).
    pub fn row_json(&self, row: usize) -> Value {
        Value::Object(
            self.names
                .iter()
                .zip(&self.columns)
                .map(|(name, column)| (name.clone(), column.scalar(row).to_json()))
                .collect(),
        )
    }

    /// The rows at `indices`, in that order.
    pub fn select(&self, indices: &[usize]) -> Frame {
        let columns = self
            .columns
            .iter()
            .map(|column| {
                Arc::new(match column.as_ref() {
                    ColumnValues::Numeric { values, integer } => ColumnValues::Numeric {
                        values: indices.iter().map(|&i| values[i]).collect(),
                        integer: *integer,
                    },
                    ColumnValues::Strings { codes, dictionary } => ColumnValues::Strings {
                        codes: indices.iter().map(|&i| codes[i]).collect(),
                        dictionary: dictionary.clone(),
                    },
                    ColumnValues::Boolean { codes } => ColumnValues::Boolean {
                        codes: indices.iter().map(|&i| codes[i]).collect(),
                    },
                    ColumnValues::Unsupported {
                        type_name,
                        present,
                        keys,
                        instants,
                    } => ColumnValues::Unsupported {
                        type_name: type_name.clone(),
                        present: indices.iter().map(|&i| present[i]).collect(),
                        keys: keys
                            .as_ref()
                            .map(|keys| indices.iter().map(|&i| keys[i]).collect()),
                        instants: instants.as_ref().map(|instants| Instants {
                            scale: instants.scale,
                            ticks: indices.iter().map(|&i| instants.ticks[i]).collect(),
                        }),
                    },
                })
            })
            .collect();
        Frame {
            names: self.names.clone(),
            columns,
            rows: indices.len(),
        }
    }

    /// A copy with `column` perturbed.
    pub fn perturbed(&self, column: &str, perturbation: &Perturbation) -> Result<Frame, String> {
        let index =
            self.names.iter().position(|n| n == column).ok_or_else(|| {
                format!("cannot perturb '{column}': the dataset has no such column")
            })?;
        let changed = perturb(&self.columns[index], perturbation)
            .map_err(|m| format!("cannot perturb '{column}': {m}"))?;
        let mut frame = self.clone();
        frame.columns[index] = Arc::new(changed);
        Ok(frame)
    }

    /// The model's inputs: the columns it declares when the frame has them
    /// all, else every column but `exclude` (the label).
    pub fn tensors(&self, declared: &[String], exclude: &str) -> Vec<NamedTensor> {
        let wanted: Vec<&String> = if !declared.is_empty() && declared.iter().all(|d| self.has(d)) {
            declared.iter().collect()
        } else {
            self.names
                .iter()
                .filter(|n| n.as_str() != exclude)
                .collect()
        };
        wanted
            .into_iter()
            .filter_map(|name| {
                let column = self.column(name).ok()?;
                let data = match column {
                    ColumnValues::Numeric {
                        values,
                        integer: true,
                    } => TensorData::I64(values.iter().map(|&x| x as i64).collect()),
                    ColumnValues::Numeric { values, .. } => TensorData::F64(values.clone()),
                    ColumnValues::Strings { codes, dictionary } => TensorData::Str(
                        codes
                            .iter()
                            .map(|&c| match c {
                                MISSING_CODE => String::new(),
                                c => dictionary[c as usize].clone(),
                            })
                            .collect(),
                    ),
                    ColumnValues::Boolean { codes } => {
                        TensorData::Bool(codes.iter().map(|&c| c == 1).collect())
                    }
                    ColumnValues::Unsupported { .. } => return None,
                };
                Some(NamedTensor::new(name.clone(), Tensor::column(data)))
            })
            .collect()
    }

    /// A table from rows written in the spec.
    pub fn from_rows(rows: &[serde_json::Map<String, Value>]) -> Result<Frame, String> {
        let mut names: Vec<String> = Vec::new();
        for row in rows {
            for key in row.keys() {
                if !names.contains(key) {
                    names.push(key.clone());
                }
            }
        }
        let columns = names
            .iter()
            .map(|name| {
                let cells: Vec<Value> = rows
                    .iter()
                    .map(|r| r.get(name).cloned().unwrap_or(Value::Null))
                    .collect();
                Arc::new(column_from_json(&cells))
            })
            .collect();
        Ok(Frame::new(names, columns))
    }

    /// A table drawn from a seeded generator; `label` names the column that
    /// gets the generator's label.
    pub fn generate(generator: &Generator, label: &str) -> Frame {
        let mut rng = Rng::new(generator.seed);
        let n = generator.n;
        let mut names = Vec::new();
        let mut columns = Vec::new();
        for (name, kind) in &generator.columns {
            let cells: Vec<Value> = (0..n)
                .map(|_| match kind {
                    ColumnGenerator::Const(v) => v.clone(),
                    ColumnGenerator::Choice(options) => options
                        [rng.below(options.len().max(1) as u64) as usize % options.len().max(1)]
                    .clone(),
                    ColumnGenerator::Uniform([lo, hi]) => {
                        Value::from(lo + (hi - lo) * rng.next_f64())
                    }
                    ColumnGenerator::Integers([lo, hi]) => {
                        let span = (hi - lo).max(0) as u64 + 1;
                        Value::from(lo + rng.below(span) as i64)
                    }
                    ColumnGenerator::Normal([mean, sd]) => Value::from(mean + sd * rng.normal()),
                })
                .collect();
            names.push(name.clone());
            columns.push(Arc::new(column_from_json(&cells)));
        }
        if let Some(value) = &generator.label {
            if !names.iter().any(|n| n == label) {
                names.push(label.to_string());
                columns.push(Arc::new(column_from_json(&vec![value.clone(); n])));
            }
        }
        Frame::new(names, columns)
    }
}

/// A column from JSON cells: booleans, numbers (integers when all are), or
/// strings; `null` is missing.
fn column_from_json(cells: &[Value]) -> ColumnValues {
    let present = || cells.iter().filter(|c| !c.is_null());
    if present().all(Value::is_boolean) && cells.iter().all(|c| !c.is_null()) {
        return ColumnValues::Boolean {
            codes: cells
                .iter()
                .map(|c| u32::from(c.as_bool() == Some(true)))
                .collect(),
        };
    }
    if present().all(Value::is_number) && present().next().is_some() {
        let integer = cells.iter().all(|c| c.is_i64() || c.is_u64());
        return ColumnValues::Numeric {
            values: cells
                .iter()
                .map(|c| c.as_f64().unwrap_or(f64::NAN))
                .collect(),
            integer,
        };
    }
    let mut dictionary: Vec<String> = Vec::new();
    let mut index: HashMap<String, u32> = HashMap::new();
    let codes = cells
        .iter()
        .map(|c| {
            let text = match c {
                Value::Null => return MISSING_CODE,
                Value::String(s) => s.clone(),
                other => other.to_string(),
            };
            *index.entry(text.clone()).or_insert_with(|| {
                dictionary.push(text);
                (dictionary.len() - 1) as u32
            })
        })
        .collect();
    ColumnValues::Strings { codes, dictionary }
}

fn perturb(column: &ColumnValues, perturbation: &Perturbation) -> Result<ColumnValues, String> {
    let text = |v: &Value| match v {
        Value::String(s) => s.clone(),
        other => other.to_string(),
    };
    Ok(match (column, perturbation) {
        (ColumnValues::Numeric { values, integer }, p) => {
            let number = |v: &Value| {
                v.as_f64()
                    .ok_or_else(|| format!("the column is numeric, {v} is not a number"))
            };
            let map: Box<dyn Fn(f64) -> f64> = match p {
                Perturbation::Set(v) => {
                    let x = number(v)?;
                    Box::new(move |_| x)
                }
                Perturbation::Swap([a, b]) => {
                    let (a, b) = (number(a)?, number(b)?);
                    Box::new(move |x| {
                        if x == a {
                            b
                        } else if x == b {
                            a
                        } else {
                            x
                        }
                    })
                }
                Perturbation::Replace(map) => {
                    let pairs = map
                        .iter()
                        .map(|(from, to)| {
                            let from: f64 = from.parse().map_err(|_| {
                                format!("the column is numeric, '{from}' is not a number")
                            })?;
                            Ok((from, number(to)?))
                        })
                        .collect::<Result<Vec<_>, String>>()?;
                    Box::new(move |x| pairs.iter().find(|(f, _)| *f == x).map_or(x, |(_, t)| *t))
                }
                Perturbation::Multiply(k) => {
                    let k = *k;
                    Box::new(move |x| x * k)
                }
                Perturbation::Add(k) => {
                    let k = *k;
                    Box::new(move |x| x + k)
                }
            };
            let values: Vec<f64> = values
                .iter()
                .map(|&x| if x.is_nan() { x } else { map(x) })
                .collect();
            let integer = *integer && values.iter().all(|x| x.fract() == 0.0);
            ColumnValues::Numeric { values, integer }
        }
        (ColumnValues::Strings { codes, dictionary }, p) => {
            let mut dictionary = dictionary.clone();
            let mut code_of = |label: String| -> u32 {
                match dictionary.iter().position(|d| *d == label) {
                    Some(i) => i as u32,
                    None => {
                        dictionary.push(label);
                        (dictionary.len() - 1) as u32
                    }
                }
            };
            let mapping: Vec<(u32, u32)> = match p {
                Perturbation::Set(v) => {
                    let to = code_of(text(v));
                    let codes = codes
                        .iter()
                        .map(|&c| if c == MISSING_CODE { c } else { to })
                        .collect();
                    return Ok(ColumnValues::Strings { codes, dictionary });
                }
                Perturbation::Swap([a, b]) => {
                    let (a, b) = (code_of(text(a)), code_of(text(b)));
                    vec![(a, b), (b, a)]
                }
                Perturbation::Replace(map) => map
                    .iter()
                    .map(|(from, to)| (code_of(from.clone()), code_of(text(to))))
                    .collect(),
                Perturbation::Multiply(_) | Perturbation::Add(_) => {
                    return Err("the column holds text; multiply and add need numbers".into())
                }
            };
            let codes = codes
                .iter()
                .map(|&c| mapping.iter().find(|(f, _)| *f == c).map_or(c, |(_, t)| *t))
                .collect();
            ColumnValues::Strings { codes, dictionary }
        }
        (ColumnValues::Boolean { codes }, p) => {
            let flag = |v: &Value| {
                Scalar::from_json(v)
                    .canonical()
                    .and_then(|c| match c.as_str() {
                        "1" => Some(1u32),
                        "0" => Some(0u32),
                        _ => None,
                    })
                    .ok_or_else(|| format!("the column is boolean, {v} is not"))
            };
            let codes = match p {
                Perturbation::Set(v) => {
                    let to = flag(v)?;
                    codes.iter().map(|_| to).collect()
                }
                Perturbation::Swap([a, b]) => {
                    let (a, b) = (flag(a)?, flag(b)?);
                    codes
                        .iter()
                        .map(|&c| {
                            if c == a {
                                b
                            } else if c == b {
                                a
                            } else {
                                c
                            }
                        })
                        .collect()
                }
                Perturbation::Replace(map) => {
                    let pairs = map
                        .iter()
                        .map(|(from, to)| Ok((flag(&Value::String(from.clone()))?, flag(to)?)))
                        .collect::<Result<Vec<_>, String>>()?;
                    codes
                        .iter()
                        .map(|&c| pairs.iter().find(|(f, _)| *f == c).map_or(c, |(_, t)| *t))
                        .collect()
                }
                Perturbation::Multiply(_) | Perturbation::Add(_) => {
                    return Err("the column is boolean; multiply and add need numbers".into())
                }
            };
            ColumnValues::Boolean { codes }
        }
        (ColumnValues::Unsupported { type_name, .. }, _) => {
            return Err(format!("its type ({type_name}) cannot be perturbed"))
        }
    })
}
