//! The search grammar shared by every MLflow search endpoint.
//!
//! MLflow's filter language is a conjunction of comparisons such as
//! `metrics.acc > 0.5 and params.lr = '0.01'`.
//! Sextant accepts a superset: `OR` and parentheses are allowed as well.
//! Parsing produces a [`Filter`] tree that names entities and keys but knows
//! nothing about SQL; `sextant-store` compiles it.
//!
//! Each search endpoint ([`SearchKind`]) accepts a different set of entities,
//! keys and comparators, so parsing takes the kind and rejects what MLflow
//! would reject, with messages close to MLflow's own.

#[cfg(test)]
mod fuzz;
mod parse;
#[cfg(test)]
mod tests;

pub use parse::{parse_filter, parse_order_by, parse_order_by_list};

/// Which search endpoint a filter or `order_by` clause belongs to.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SearchKind {
    Runs,
    Experiments,
    RegisteredModels,
    ModelVersions,
    LoggedModels,
}

/// The entity an identifier refers to (`metrics.acc` is `Metric`, key `acc`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Entity {
    Metric,
    Param,
    Tag,
    Attribute,
    Dataset,
}

/// `entity.key`, with the key unquoted and attribute aliases resolved
/// (`created` becomes `start_time`, `run name` becomes `run_name`).
#[derive(Debug, Clone, PartialEq)]
pub struct Identifier {
    pub entity: Entity,
    pub key: String,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Comparator {
    Eq,
    NotEq,
    Gt,
    Ge,
    Lt,
    Le,
    Like,
    ILike,
    In,
    NotIn,
    IsNull,
    IsNotNull,
}

/// The right-hand side of a comparison, already checked against the
/// identifier: numeric entities get `Number`, string ones `String`,
/// `IN`/`NOT IN` get `List`, `IS [NOT] NULL` gets `Null`.
#[derive(Debug, Clone, PartialEq)]
pub enum Value {
    Number(f64),
    String(String),
    List(Vec<String>),
    Null,
}

#[derive(Debug, Clone, PartialEq)]
pub struct Comparison {
    pub ident: Identifier,
    pub comparator: Comparator,
    pub value: Value,
}

/// A parsed filter. `And`/`Or` hold at least two children.
#[derive(Debug, Clone, PartialEq)]
pub enum Filter {
    Comparison(Comparison),
    And(Vec<Filter>),
    Or(Vec<Filter>),
}

/// One `order_by` clause such as `metrics.acc DESC`.
#[derive(Debug, Clone, PartialEq)]
pub struct OrderBy {
    pub ident: Identifier,
    pub ascending: bool,
}

/// A filter or `order_by` string the caller got wrong. The message is shown
/// to the user as an `INVALID_PARAMETER_VALUE` error.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
#[error("{message}")]
pub struct SearchError {
    pub message: String,
}

impl SearchError {
    pub(crate) fn new(message: impl Into<String>) -> SearchError {
        SearchError {
            message: message.into(),
        }
    }
}
