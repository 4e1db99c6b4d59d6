//! Small helpers over sqlx's `Any` driver: a query builder that numbers
//! `$n` placeholders (both SQLite and PostgreSQL accept them) and typed
//! column getters with the column name in the error.

use sextant_core::Readable;
use sqlx::any::{AnyArguments, AnyRow};
use sqlx::query::Query;
use sqlx::{Any, Row};

use crate::{Backend, Result};

/// A value bound to a placeholder.
#[derive(Debug, Clone)]
pub(crate) enum Bind {
    Text(String),
    OptText(Option<String>),
    Int(i64),
    Real(f64),
}

/// SQL text plus its bound values, built in one pass so that placeholder
/// numbers and values cannot get out of step.
#[derive(Debug)]
pub(crate) struct SqlBuilder {
    pub(crate) sql: String,
    binds: Vec<Bind>,
    backend: Backend,
}

impl SqlBuilder {
    pub(crate) fn new(backend: Backend, sql: &str) -> SqlBuilder {
        SqlBuilder {
            sql: sql.to_string(),
            binds: Vec::new(),
            backend,
        }
    }

    pub(crate) fn push(&mut self, sql: &str) -> &mut SqlBuilder {
        self.sql.push_str(sql);
        self
    }

    /// Appends a placeholder for `value`. SQLite gets anonymous `?`
    /// placeholders: with numbered ones sqlx looks every parameter up by
    /// name, which costs O(n) each and made a 900-value insert spend most
    /// of its time there. Values are bound in order of appearance, so both
    /// spellings mean the same.
    pub(crate) fn bind(&mut self, value: Bind) -> &mut SqlBuilder {
        self.binds.push(value);
        match self.backend {
            Backend::Sqlite => self.sql.push('?'),
            Backend::Postgres => {
                self.sql.push('$');
                self.sql.push_str(&self.binds.len().to_string());
            }
        }
        self
    }

    pub(crate) fn bind_text(&mut self, value: impl Into<String>) -> &mut SqlBuilder {
        self.bind(Bind::Text(value.into()))
    }

    /// Appends `(p1, p2, …)` for a non-empty list.
    pub(crate) fn bind_text_list<'a>(
        &mut self,
        values: impl IntoIterator<Item = &'a String>,
    ) -> &mut SqlBuilder {
        self.sql.push('(');
        for (idx, value) in values.into_iter().enumerate() {
            if idx > 0 {
                self.sql.push_str(", ");
            }
            self.bind_text(value.clone());
        }
        self.sql.push(')');
        self
    }

    /// Appends `(p1, p2, …)` for a non-empty list of integers.
    pub(crate) fn bind_int_list(&mut self, values: &[i64]) -> &mut SqlBuilder {
        self.sql.push('(');
        for (idx, value) in values.iter().enumerate() {
            if idx > 0 {
                self.sql.push_str(", ");
            }
            self.bind(Bind::Int(*value));
        }
        self.sql.push(')');
        self
    }

    /// Appends ` AND column IN (…)` restricting rows to the resources a
    /// caller may see; `None` means every row. Integer columns get the ids
    /// that parse as integers.
    pub(crate) fn push_visible(
        &mut self,
        column: &str,
        visible: &Readable,
        integer: bool,
    ) -> &mut SqlBuilder {
        let visible = match visible {
            Readable::All => return self,
            Readable::Only(ids) => ids,
        };
        if visible.is_empty() {
            return self.push(" AND 1 = 0");
        }
        self.push(" AND ").push(column).push(" IN ");
        if integer {
            let ids: Vec<i64> = visible.iter().filter_map(|id| id.parse().ok()).collect();
            if ids.is_empty() {
                return self.push("(NULL)");
            }
            self.bind_int_list(&ids)
        } else {
            self.bind_text_list(visible)
        }
    }

    pub(crate) fn query(&self) -> Query<'_, Any, AnyArguments<'_>> {
        bind_all(sqlx::query(&self.sql), &self.binds)
    }
}

/// Binds by reference: the values live in the builder for as long as the
/// query does, so nothing is copied on the way to the driver.
pub(crate) fn bind_all<'q>(
    mut query: Query<'q, Any, AnyArguments<'q>>,
    binds: &'q [Bind],
) -> Query<'q, Any, AnyArguments<'q>> {
    for value in binds {
        query = match value {
            Bind::Text(text) => query.bind(text.as_str()),
            Bind::OptText(text) => query.bind(text.as_deref()),
            Bind::Int(n) => query.bind(*n),
            Bind::Real(x) => query.bind(*x),
        };
    }
    query
}

pub(crate) fn text(row: &AnyRow, column: &str) -> Result<String> {
    Ok(row.try_get::<String, _>(column)?)
}

pub(crate) fn opt_text(row: &AnyRow, column: &str) -> Result<Option<String>> {
    Ok(row.try_get::<Option<String>, _>(column)?)
}

pub(crate) fn int(row: &AnyRow, column: &str) -> Result<i64> {
    Ok(row.try_get::<i64, _>(column)?)
}

pub(crate) fn opt_int(row: &AnyRow, column: &str) -> Result<Option<i64>> {
    Ok(row.try_get::<Option<i64>, _>(column)?)
}

pub(crate) fn real(row: &AnyRow, column: &str) -> Result<f64> {
    Ok(row.try_get::<f64, _>(column)?)
}

/// Stored metric value back to the float the client logged: NaN is kept as
/// a flag because neither engine stores NaN reliably.
pub(crate) fn metric_value(row: &AnyRow) -> Result<f64> {
    if int(row, "is_nan")? != 0 {
        Ok(f64::NAN)
    } else {
        real(row, "value")
    }
}

/// Whether an sqlx error is a uniqueness violation (both engines).
pub(crate) fn is_unique_violation(err: &sqlx::Error) -> bool {
    match err {
        sqlx::Error::Database(db_err) => {
            matches!(db_err.kind(), sqlx::error::ErrorKind::UniqueViolation)
                || db_err.message().contains("UNIQUE constraint failed")
        }
        _ => false,
    }
}

/// Opaque page token: base64 of the offset, as MLflow's SQL store does, so
/// tokens from either server look alike.
pub(crate) fn encode_page_token(offset: i64) -> String {
    use base64::Engine;
    base64::engine::general_purpose::STANDARD.encode(format!("{{\"offset\": {offset}}}"))
}

pub(crate) fn decode_page_token(token: Option<&str>) -> Result<i64> {
    use base64::Engine;
    let Some(token) = token.filter(|t| !t.is_empty()) else {
        return Ok(0);
    };
    let invalid = || {
        crate::StoreError::InvalidInput(format!(
            "Invalid page token, could not base64-decode: '{token}'"
        ))
    };
    let bytes = base64::engine::general_purpose::STANDARD
        .decode(token)
        .map_err(|_| invalid())?;
    let json: serde_json::Value = serde_json::from_slice(&bytes).map_err(|_| invalid())?;
    match json.get("offset").and_then(|v| v.as_i64()) {
        Some(offset) if offset >= 0 => Ok(offset),
        _ => Err(invalid()),
    }
}
