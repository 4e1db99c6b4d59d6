//! Row filters (`where:`): `eq, ne, in, not_in, gt, gte, lt, lte, between,
//! is_null, all, any, not`. A mapping of several columns means all of them.

use serde_json::Value;

use crate::frame::{Cells, Frame, Scalar};

#[derive(Debug, Clone)]
pub enum Filter {
    All(Vec<Filter>),
    Any(Vec<Filter>),
    Not(Box<Filter>),
    Column {
        column: String,
        condition: Condition,
    },
}

#[derive(Debug, Clone)]
pub enum Condition {
    Eq(Scalar),
    Ne(Scalar),
    In(Vec<Scalar>),
    NotIn(Vec<Scalar>),
    Gt(f64),
    Gte(f64),
    Lt(f64),
    Lte(f64),
    Between(f64, f64),
    IsNull(bool),
}

impl Filter {
    pub fn parse(value: &Value) -> Result<Filter, String> {
        let Some(object) = value.as_object() else {
            return Err("a filter is a mapping: {COLUMN: {OP: VALUE}}, all, any or not".into());
        };
        if object.is_empty() {
            return Err("an empty filter".into());
        }
        let mut parts = Vec::new();
        for (key, inner) in object {
            parts.push(match key.as_str() {
                "all" | "any" => {
                    let Value::Array(items) = inner else {
                        return Err(format!("`{key}` takes a list of filters"));
                    };
                    let filters = items
                        .iter()
                        .map(Filter::parse)
                        .collect::<Result<Vec<_>, _>>()?;
                    if key == "all" {
                        Filter::All(filters)
                    } else {
                        Filter::Any(filters)
                    }
                }
                "not" => Filter::Not(Box::new(Filter::parse(inner)?)),
                column => condition(column, inner)?,
            });
        }
        Ok(if parts.len() == 1 {
            parts.pop().expect("one part")
        } else {
            Filter::All(parts)
        })
    }

    /// Which rows of `frame` pass; a column the frame lacks is an error.
    pub fn rows(&self, frame: &Frame) -> Result<Vec<bool>, String> {
        let n = frame.rows();
        Ok(match self {
            Filter::All(parts) => {
                let mut keep = vec![true; n];
                for part in parts {
                    for (k, p) in keep.iter_mut().zip(part.rows(frame)?) {
                        *k &= p;
                    }
                }
                keep
            }
            Filter::Any(parts) => {
                let mut keep = vec![false; n];
                for part in parts {
                    for (k, p) in keep.iter_mut().zip(part.rows(frame)?) {
                        *k |= p;
                    }
                }
                keep
            }
            Filter::Not(inner) => inner.rows(frame)?.into_iter().map(|b| !b).collect(),
            Filter::Column { column, condition } => {
                let values = frame.column(column)?;
                (0..n).map(|i| condition.holds(&values.scalar(i))).collect()
            }
        })
    }

    /// The columns the filter reads.
    pub fn columns(&self, out: &mut Vec<String>) {
        match self {
            Filter::All(parts) | Filter::Any(parts) => parts.iter().for_each(|p| p.columns(out)),
            Filter::Not(inner) => inner.columns(out),
            Filter::Column { column, .. } => out.push(column.clone()),
        }
    }
}

fn condition(column: &str, value: &Value) -> Result<Filter, String> {
    let Some(object) = value.as_object() else {
        // `{column: value}` is shorthand for equality.
        return Ok(Filter::Column {
            column: column.to_string(),
            condition: Condition::Eq(Scalar::from_json(value)),
        });
    };
    let mut parts = Vec::new();
    for (op, argument) in object {
        let number = || {
            argument
                .as_f64()
                .ok_or_else(|| format!("`{column}.{op}` takes a number"))
        };
        let list = || match argument {
            Value::Array(items) => Ok(items.iter().map(Scalar::from_json).collect::<Vec<_>>()),
            _ => Err(format!("`{column}.{op}` takes a list")),
        };
        let condition = match op.as_str() {
            "eq" => Condition::Eq(Scalar::from_json(argument)),
            "ne" => Condition::Ne(Scalar::from_json(argument)),
            "in" => Condition::In(list()?),
            "not_in" => Condition::NotIn(list()?),
            "gt" => Condition::Gt(number()?),
            "gte" => Condition::Gte(number()?),
            "lt" => Condition::Lt(number()?),
            "lte" => Condition::Lte(number()?),
            "between" => match argument.as_array().map(|a| a.as_slice()) {
                Some([lo, hi]) if lo.is_number() && hi.is_number() => Condition::Between(
                    lo.as_f64().unwrap_or(f64::NAN),
                    hi.as_f64().unwrap_or(f64::NAN),
                ),
                _ => return Err(format!("`{column}.between` takes [low, high]")),
            },
            "is_null" => Condition::IsNull(
                argument
                    .as_bool()
                    .ok_or_else(|| format!("`{column}.is_null` takes true or false"))?,
            ),
            other => {
                return Err(format!(
                    "unknown operator `{other}` on `{column}`: expected eq, ne, in, not_in, gt, \
                     gte, lt, lte, between or is_null"
                ))
            }
        };
        parts.push(Filter::Column {
            column: column.to_string(),
            condition,
        });
    }
    if parts.is_empty() {
        return Err(format!("`{column}` has no operator"));
    }
    Ok(if parts.len() == 1 {
        parts.pop().expect("one part")
    } else {
        Filter::All(parts)
    })
}

impl Condition {
    pub fn holds(&self, value: &Scalar) -> bool {
        let number = value.as_f64();
        let compare = |f: fn(f64, f64) -> bool, bound: f64| number.is_some_and(|x| f(x, bound));
        match self {
            Condition::Eq(expected) => !value.is_null() && value.same(expected),
            Condition::Ne(expected) => !value.same(expected),
            Condition::In(set) => !value.is_null() && set.iter().any(|s| value.same(s)),
            Condition::NotIn(set) => !set.iter().any(|s| value.same(s)),
            Condition::Gt(b) => compare(|x, b| x > b, *b),
            Condition::Gte(b) => compare(|x, b| x >= b, *b),
            Condition::Lt(b) => compare(|x, b| x < b, *b),
            Condition::Lte(b) => compare(|x, b| x <= b, *b),
            Condition::Between(lo, hi) => number.is_some_and(|x| x >= *lo && x <= *hi),
            Condition::IsNull(wanted) => value.is_null() == *wanted,
        }
    }
}
