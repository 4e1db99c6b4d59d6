//! Compiles parsed search filters (`sextant_core::search`) into SQL.
//!
//! Every comparison on a metric, param, tag or dataset becomes an `EXISTS`
//! sub-query keyed by the primary key of its table, so `AND`, `OR` and
//! parentheses compose freely and each test is one index lookup per
//! candidate row. Metrics are compared against `latest_metrics`, never the
//! history. MLflow's join semantics are kept: a run without tag `x` never
//! matches `tags.x != 'v'`, only `tags.x IS NULL`.

use sextant_core::search::{
    self, Comparator, Comparison, Entity, Filter, OrderBy, SearchKind, Value,
};
use sextant_core::ViewType;

use crate::db::{self, Bind, SqlBuilder};
use crate::{Backend, Result, StoreError};

/// The table family a search runs over, with its alias in the outer query.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Target {
    /// `runs r`
    Runs,
    /// `experiments e`
    Experiments,
    /// `registered_models rm`
    RegisteredModels,
    /// `model_versions mv`
    ModelVersions,
    /// `logged_models lm`
    LoggedModels,
}

#[derive(Clone, Copy, PartialEq, Eq)]
enum ColumnKind {
    Text,
    Number,
}

/// `lifecycle_stage IN (…)` for a view type.
pub(crate) fn push_view_type(sql: &mut SqlBuilder, column: &str, view_type: ViewType) {
    match view_type {
        ViewType::ActiveOnly => sql.push(column).push(" = 'active'"),
        ViewType::DeletedOnly => sql.push(column).push(" = 'deleted'"),
        ViewType::All => sql.push("1 = 1"),
    };
}

pub(crate) fn push_filter(
    sql: &mut SqlBuilder,
    backend: Backend,
    target: Target,
    filter: &Filter,
) -> Result<()> {
    match filter {
        Filter::Comparison(comparison) => push_comparison(sql, backend, target, comparison),
        Filter::And(children) | Filter::Or(children) => {
            let joiner = if matches!(filter, Filter::And(_)) {
                " AND "
            } else {
                " OR "
            };
            sql.push("(");
            for (idx, child) in children.iter().enumerate() {
                if idx > 0 {
                    sql.push(joiner);
                }
                push_filter(sql, backend, target, child)?;
            }
            sql.push(")");
            Ok(())
        }
    }
}

/// Pushes `expr IS NULL, expr ASC|DESC` so rows lacking the key sort last.
pub(crate) fn push_order_key(sql: &mut SqlBuilder, target: Target, order: &OrderBy) -> Result<()> {
    let direction = if order.ascending { " ASC" } else { " DESC" };
    match order.ident.entity {
        Entity::Attribute => {
            let (column, _) = attribute_column(target, &order.ident.key)?;
            sql.push(column)
                .push(" IS NULL, ")
                .push(column)
                .push(direction);
            Ok(())
        }
        Entity::Metric | Entity::Param | Entity::Tag => {
            let (table, value_column, join) = keyed_table(target, order.ident.entity)?;
            push_keyed_scalar(sql, table, value_column, join, &order.ident.key);
            sql.push(" IS NULL, ");
            push_keyed_scalar(sql, table, value_column, join, &order.ident.key);
            sql.push(direction);
            Ok(())
        }
        Entity::Dataset => Err(StoreError::InvalidInput(
            "Cannot order by a dataset field".into(),
        )),
    }
}

fn push_keyed_scalar(sql: &mut SqlBuilder, table: &str, value_column: &str, join: &str, key: &str) {
    sql.push("(SELECT x.")
        .push(value_column)
        .push(" FROM ")
        .push(table)
        .push(" x WHERE ")
        .push(join);
    sql.push(" AND x.key = ");
    sql.bind_text(key);
    if table == "latest_metrics" {
        sql.push(" AND x.is_nan = 0");
    }
    // A logged model's metric has a history (and may be on several
    // datasets): its latest value is the one that sorts.
    if table == "lm_metrics" {
        sql.push(" AND x.is_nan = 0 ORDER BY x.step DESC, x.timestamp DESC LIMIT 1");
    }
    sql.push(")");
}

fn push_comparison(
    sql: &mut SqlBuilder,
    backend: Backend,
    target: Target,
    comparison: &Comparison,
) -> Result<()> {
    let key = &comparison.ident.key;
    match comparison.ident.entity {
        Entity::Attribute => {
            let (column, kind) = attribute_column(target, key)?;
            push_predicate(sql, backend, column, kind, comparison)
        }
        // "The children of run X": the parent tag written out, so the
        // partial index `run_tags_by_parent` answers it without a scan.
        Entity::Tag
            if target == Target::Runs
                && key == "mlflow.parentRunId"
                && comparison.comparator == Comparator::Eq =>
        {
            let Value::String(parent) = &comparison.value else {
                return Err(invalid_value(comparison));
            };
            sql.push(
                "r.run_id IN (SELECT x.run_id FROM run_tags x \
                 WHERE x.key = 'mlflow.parentRunId' AND x.value = ",
            );
            sql.bind_text(parent.clone()).push(")");
            Ok(())
        }
        Entity::Metric | Entity::Param | Entity::Tag => {
            let (table, value_column, join) = keyed_table(target, comparison.ident.entity)?;
            let kind = if comparison.ident.entity == Entity::Metric {
                ColumnKind::Number
            } else {
                ColumnKind::Text
            };
            let column = format!("x.{value_column}");
            match comparison.comparator {
                Comparator::IsNull | Comparator::IsNotNull => {
                    if comparison.comparator == Comparator::IsNull {
                        sql.push("NOT ");
                    }
                    sql.push("EXISTS (SELECT 1 FROM ")
                        .push(table)
                        .push(" x WHERE ")
                        .push(join)
                        .push(" AND x.key = ");
                    sql.bind_text(key.clone()).push(")");
                    Ok(())
                }
                // MLflow treats a model without this tag as "not a prompt",
                // and its client appends this clause to every registry search.
                Comparator::NotEq
                    if comparison.ident.entity == Entity::Tag
                        && key == "mlflow.prompt.is_prompt" =>
                {
                    sql.push("NOT EXISTS (SELECT 1 FROM ")
                        .push(table)
                        .push(" x WHERE ")
                        .push(join)
                        .push(" AND x.key = ");
                    sql.bind_text(key.clone()).push(" AND ");
                    let positive = Comparison {
                        comparator: Comparator::Eq,
                        ..comparison.clone()
                    };
                    push_predicate(sql, backend, &column, kind, &positive)?;
                    sql.push(")");
                    Ok(())
                }
                _ => {
                    sql.push("EXISTS (SELECT 1 FROM ")
                        .push(table)
                        .push(" x WHERE ")
                        .push(join)
                        .push(" AND x.key = ");
                    sql.bind_text(key.clone());
                    if matches!(table, "latest_metrics" | "metrics" | "lm_metrics") {
                        sql.push(" AND x.is_nan = 0");
                    }
                    sql.push(" AND ");
                    push_predicate(sql, backend, &column, kind, comparison)?;
                    sql.push(")");
                    Ok(())
                }
            }
        }
        Entity::Dataset => {
            if target != Target::Runs {
                return Err(StoreError::InvalidInput(
                    "Dataset filters are only supported when searching runs".into(),
                ));
            }
            let column = match key.as_str() {
                "name" => "d.name",
                "digest" => "d.digest",
                "context" => "ri.context",
                other => {
                    return Err(StoreError::InvalidInput(format!(
                        "Invalid dataset key '{other}'"
                    )))
                }
            };
            sql.push(
                "EXISTS (SELECT 1 FROM run_dataset_inputs ri JOIN datasets d ON d.dataset_id = ri.dataset_id \
                 WHERE ri.run_id = r.run_id AND ",
            );
            push_predicate(sql, backend, column, ColumnKind::Text, comparison)?;
            sql.push(")");
            Ok(())
        }
    }
}

fn push_predicate(
    sql: &mut SqlBuilder,
    backend: Backend,
    column: &str,
    kind: ColumnKind,
    comparison: &Comparison,
) -> Result<()> {
    let operator = match comparison.comparator {
        Comparator::Eq => "=",
        Comparator::NotEq => "<>",
        Comparator::Gt => ">",
        Comparator::Ge => ">=",
        Comparator::Lt => "<",
        Comparator::Le => "<=",
        Comparator::IsNull => {
            sql.push(column).push(" IS NULL");
            return Ok(());
        }
        Comparator::IsNotNull => {
            sql.push(column).push(" IS NOT NULL");
            return Ok(());
        }
        Comparator::Like | Comparator::ILike => {
            let Value::String(pattern) = &comparison.value else {
                return Err(invalid_value(comparison));
            };
            let case_insensitive = comparison.comparator == Comparator::ILike;
            match (backend, case_insensitive) {
                (Backend::Postgres, true) => {
                    sql.push(column).push(" ILIKE ");
                    sql.bind_text(pattern.clone());
                }
                (Backend::Sqlite, true) => {
                    sql.push("LOWER(").push(column).push(") LIKE LOWER(");
                    sql.bind_text(pattern.clone()).push(")");
                }
                (_, false) => {
                    sql.push(column).push(" LIKE ");
                    sql.bind_text(pattern.clone());
                }
            }
            return Ok(());
        }
        Comparator::In | Comparator::NotIn => {
            let Value::List(values) = &comparison.value else {
                return Err(invalid_value(comparison));
            };
            if values.is_empty() {
                sql.push(if comparison.comparator == Comparator::In {
                    "1 = 0"
                } else {
                    "1 = 1"
                });
                return Ok(());
            }
            sql.push(column)
                .push(if comparison.comparator == Comparator::In {
                    " IN "
                } else {
                    " NOT IN "
                });
            sql.bind_text_list(values);
            return Ok(());
        }
    };
    sql.push(column).push(" ").push(operator).push(" ");
    match (&comparison.value, kind) {
        (Value::Number(number), ColumnKind::Number) => {
            sql.bind(Bind::Real(*number));
        }
        (Value::String(text), ColumnKind::Text) => {
            sql.bind_text(text.clone());
        }
        // A quoted number against a numeric column: compare numerically.
        (Value::String(text), ColumnKind::Number) => match text.trim().parse::<f64>() {
            Ok(number) => {
                sql.bind(Bind::Real(number));
            }
            Err(_) => return Err(invalid_value(comparison)),
        },
        (Value::Number(number), ColumnKind::Text) => {
            sql.bind_text(format_number(*number));
        }
        _ => return Err(invalid_value(comparison)),
    }
    Ok(())
}

fn format_number(number: f64) -> String {
    if number.fract() == 0.0 && number.abs() < 1e15 {
        format!("{}", number as i64)
    } else {
        number.to_string()
    }
}

fn invalid_value(comparison: &Comparison) -> StoreError {
    StoreError::InvalidInput(format!(
        "Invalid value for comparison on '{}': {:?}",
        comparison.ident.key, comparison.value
    ))
}

/// The SQL column of an attribute for a target.
fn attribute_column(target: Target, key: &str) -> Result<(&'static str, ColumnKind)> {
    use ColumnKind::{Number, Text};
    let column = match (target, key) {
        (Target::Runs, "run_id") => ("r.run_id", Text),
        (Target::Runs, "run_name") => ("r.name", Text),
        (Target::Runs, "status") => ("r.status", Text),
        (Target::Runs, "user_id") => ("r.user_id", Text),
        (Target::Runs, "artifact_uri") => ("r.artifact_uri", Text),
        (Target::Runs, "lifecycle_stage") => ("r.lifecycle_stage", Text),
        (Target::Runs, "start_time" | "created") => ("r.start_time", Number),
        (Target::Runs, "end_time") => ("r.end_time", Number),
        (Target::Experiments, "name") => ("e.name", Text),
        (Target::Experiments, "experiment_id") => ("CAST(e.experiment_id AS TEXT)", Text),
        (Target::Experiments, "creation_time") => ("e.creation_time", Number),
        (Target::Experiments, "last_update_time") => ("e.last_update_time", Number),
        (Target::RegisteredModels, "name") => ("rm.name", Text),
        (Target::RegisteredModels, "creation_timestamp") => ("rm.creation_timestamp", Number),
        (Target::RegisteredModels, "last_updated_timestamp" | "timestamp") => {
            ("rm.last_updated_timestamp", Number)
        }
        (Target::ModelVersions, "name") => ("mv.name", Text),
        (Target::ModelVersions, "run_id") => ("mv.run_id", Text),
        (Target::ModelVersions, "source_path" | "source") => ("mv.source", Text),
        (Target::ModelVersions, "version_number" | "version") => ("mv.version", Number),
        (Target::ModelVersions, "creation_timestamp") => ("mv.creation_timestamp", Number),
        (Target::ModelVersions, "last_updated_timestamp") => ("mv.last_updated_timestamp", Number),
        (Target::ModelVersions, "current_stage") => ("mv.current_stage", Text),
        (Target::LoggedModels, "name") => ("lm.name", Text),
        (Target::LoggedModels, "model_id") => ("lm.model_id", Text),
        (Target::LoggedModels, "model_type") => ("lm.model_type", Text),
        (Target::LoggedModels, "status") => ("lm.status", Text),
        (Target::LoggedModels, "source_run_id") => ("lm.source_run_id", Text),
        (Target::LoggedModels, "creation_timestamp" | "creation_time") => {
            ("lm.creation_timestamp_ms", Number)
        }
        (Target::LoggedModels, "last_updated_timestamp" | "last_updated_time") => {
            ("lm.last_updated_timestamp_ms", Number)
        }
        _ => {
            return Err(StoreError::InvalidInput(format!(
                "Invalid attribute key '{key}' specified."
            )))
        }
    };
    Ok(column)
}

/// `(table, value column, join condition against the outer alias)` for keyed
/// entities (metrics, params, tags) of a target.
fn keyed_table(
    target: Target,
    entity: Entity,
) -> Result<(&'static str, &'static str, &'static str)> {
    let table = match (target, entity) {
        (Target::Runs, Entity::Metric) => ("latest_metrics", "value", "x.run_id = r.run_id"),
        (Target::Runs, Entity::Param) => ("params", "value", "x.run_id = r.run_id"),
        (Target::Runs, Entity::Tag) => ("run_tags", "value", "x.run_id = r.run_id"),
        (Target::Experiments, Entity::Tag) => (
            "experiment_tags",
            "value",
            "x.experiment_id = e.experiment_id",
        ),
        (Target::RegisteredModels, Entity::Tag) => {
            ("registered_model_tags", "value", "x.name = rm.name")
        }
        (Target::ModelVersions, Entity::Tag) => (
            "model_version_tags",
            "value",
            "x.name = mv.name AND x.version = mv.version",
        ),
        // `lm_metrics` is the logged-model search's own view of `metrics`
        // (scoped to the datasets the search names).
        (Target::LoggedModels, Entity::Metric) => {
            ("lm_metrics", "value", "x.model_id = lm.model_id")
        }
        (Target::LoggedModels, Entity::Param) => {
            ("logged_model_params", "value", "x.model_id = lm.model_id")
        }
        (Target::LoggedModels, Entity::Tag) => {
            ("logged_model_tags", "value", "x.model_id = lm.model_id")
        }
        _ => {
            return Err(StoreError::InvalidInput(format!(
                "This search does not support {entity:?} filters"
            )))
        }
    };
    Ok(table)
}

/// Parses a search's filter and `order_by` strings for `kind`.
/// Refuses searches naming more experiments than one query can bind.
pub(crate) fn check_experiment_count(count: usize) -> Result<()> {
    if count > sextant_core::validation::MAX_SEARCH_EXPERIMENTS {
        return Err(crate::StoreError::InvalidInput(format!(
            "Invalid value for parameter 'experiment_ids': {count} ids; a search may name at most {}",
            sextant_core::validation::MAX_SEARCH_EXPERIMENTS
        )));
    }
    Ok(())
}

pub(crate) fn parse_search(
    kind: SearchKind,
    filter: Option<&str>,
    order_by: &[String],
) -> Result<(Option<Filter>, Vec<OrderBy>)> {
    let filter = filter
        .filter(|f| !f.trim().is_empty())
        .map(|f| search::parse_filter(kind, f))
        .transpose()?
        .flatten();
    let order_by = search::parse_order_by_list(kind, order_by)?;
    Ok((filter, order_by))
}

/// Appends ` AND <filter>` when there is one, then
/// ` ORDER BY <clauses…>, <tiebreak>`; the tiebreak makes the order total,
/// which pagination needs.
pub(crate) fn push_filter_and_order(
    sql: &mut SqlBuilder,
    backend: Backend,
    target: Target,
    filter: Option<&Filter>,
    order_by: &[OrderBy],
    tiebreak: &str,
) -> Result<()> {
    if let Some(filter) = filter {
        sql.push(" AND ");
        push_filter(sql, backend, target, filter)?;
    }
    sql.push(" ORDER BY ");
    for clause in order_by {
        push_order_key(sql, target, clause)?;
        sql.push(", ");
    }
    sql.push(tiebreak);
    Ok(())
}

/// Offset pagination behind an opaque token.
pub(crate) struct Paging {
    limit: i64,
    offset: i64,
}

impl Paging {
    /// Checks `max_results` against the endpoint's largest page `most`
    /// and decodes the token.
    pub(crate) fn new(max_results: i64, most: i64, page_token: Option<&str>) -> Result<Paging> {
        if !(1..=most).contains(&max_results) {
            return Err(StoreError::InvalidInput(format!(
                "Invalid value {max_results} for parameter 'max_results' supplied. It must be between 1 and {most}"
            )));
        }
        Ok(Paging {
            limit: max_results,
            offset: db::decode_page_token(page_token)?,
        })
    }

    /// Appends ` LIMIT <n + 1> OFFSET <o>`: the one extra row tells whether
    /// another page follows without a second query.
    pub(crate) fn push_limit(&self, sql: &mut SqlBuilder) {
        sql.push(" LIMIT ");
        sql.bind(Bind::Int(self.limit + 1));
        sql.push(" OFFSET ");
        sql.bind(Bind::Int(self.offset));
    }

    /// Drops the extra row and returns the token of the next page, if any.
    pub(crate) fn split<T>(&self, mut rows: Vec<T>) -> (Vec<T>, Option<String>) {
        let has_more = rows.len() as i64 > self.limit;
        rows.truncate(self.limit as usize);
        (
            rows,
            has_more.then(|| db::encode_page_token(self.offset + self.limit)),
        )
    }
}

/// How a sort key's value is read back from a row and carried in a token.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum ValueKind {
    Real,
    Int,
    Text,
}

/// One run's value for one sort key.
#[derive(Debug, Clone, PartialEq)]
pub(crate) enum SortValue {
    Null,
    Real(f64),
    Int(i64),
    Text(String),
}

#[derive(Debug, Clone)]
enum SortExpr {
    Column(&'static str),
    Keyed {
        table: &'static str,
        value_column: &'static str,
        join: &'static str,
        key: String,
    },
}

/// One key of a keyset-paginated order: an expression, its direction, and
/// whether it can be missing (missing values sort last, as in MLflow).
#[derive(Debug, Clone)]
pub(crate) struct SortKey {
    expr: SortExpr,
    kind: ValueKind,
    ascending: bool,
    /// Whether rows can lack a value. Only then does the order spell out
    /// "missing last", which would keep the database from reading an index
    /// in order.
    nullable: bool,
}

impl SortKey {
    /// The key for a user's `order_by` clause.
    pub(crate) fn for_order(target: Target, order: &OrderBy) -> Result<SortKey> {
        match order.ident.entity {
            Entity::Attribute => {
                let (column, kind) = attribute_column(target, &order.ident.key)?;
                let kind = match kind {
                    ColumnKind::Number => ValueKind::Int,
                    ColumnKind::Text => ValueKind::Text,
                };
                Ok(SortKey {
                    expr: SortExpr::Column(column),
                    kind,
                    ascending: order.ascending,
                    // Of the orderable run attributes only end_time can be unset.
                    nullable: column == "r.end_time",
                })
            }
            Entity::Metric | Entity::Param | Entity::Tag => {
                let (table, value_column, join) = keyed_table(target, order.ident.entity)?;
                let kind = if order.ident.entity == Entity::Metric {
                    ValueKind::Real
                } else {
                    ValueKind::Text
                };
                Ok(SortKey {
                    expr: SortExpr::Keyed {
                        table,
                        value_column,
                        join,
                        key: order.ident.key.clone(),
                    },
                    kind,
                    ascending: order.ascending,
                    nullable: true,
                })
            }
            Entity::Dataset => Err(StoreError::InvalidInput(
                "Cannot order by a dataset field".into(),
            )),
        }
    }

    /// A column that always has a value (tiebreaks, a joined metric value).
    pub(crate) fn column(column: &'static str, kind: ValueKind, ascending: bool) -> SortKey {
        SortKey {
            expr: SortExpr::Column(column),
            kind,
            ascending,
            nullable: false,
        }
    }

    fn push_expr(&self, sql: &mut SqlBuilder) {
        match &self.expr {
            SortExpr::Column(column) => {
                sql.push(column);
            }
            SortExpr::Keyed {
                table,
                value_column,
                join,
                key,
            } => push_keyed_scalar(sql, table, value_column, join, key),
        }
    }

    /// `[expr IS NULL, ]expr ASC|DESC`.
    pub(crate) fn push_order(&self, sql: &mut SqlBuilder) {
        if self.nullable {
            self.push_expr(sql);
            sql.push(" IS NULL, ");
        }
        self.push_expr(sql);
        sql.push(if self.ascending { " ASC" } else { " DESC" });
    }

    /// `expr AS alias` for the select list.
    pub(crate) fn push_select(&self, sql: &mut SqlBuilder, alias: &str) {
        self.push_expr(sql);
        sql.push(" AS ").push(alias);
    }

    pub(crate) fn decode(&self, row: &sqlx::any::AnyRow, alias: &str) -> Result<SortValue> {
        use sqlx::Row;
        Ok(match self.kind {
            ValueKind::Real => row
                .try_get::<Option<f64>, _>(alias)?
                .map_or(SortValue::Null, SortValue::Real),
            ValueKind::Int => row
                .try_get::<Option<i64>, _>(alias)?
                .map_or(SortValue::Null, SortValue::Int),
            ValueKind::Text => row
                .try_get::<Option<String>, _>(alias)?
                .map_or(SortValue::Null, SortValue::Text),
        })
    }

    fn bind_value(&self, sql: &mut SqlBuilder, value: &SortValue) {
        match value {
            SortValue::Real(x) => sql.bind(Bind::Real(*x)),
            SortValue::Int(n) => sql.bind(Bind::Int(*n)),
            SortValue::Text(text) => sql.bind(Bind::Text(text.clone())),
            SortValue::Null => sql.push("NULL"),
        };
    }
}

/// Appends the condition "comes after `cursor` in the order of `keys`":
/// the lexicographic comparison spelled out, with missing values last.
pub(crate) fn push_keyset_after(sql: &mut SqlBuilder, keys: &[SortKey], cursor: &[SortValue]) {
    let mut terms = 0;
    sql.push("(");
    for (idx, key) in keys.iter().enumerate() {
        // Nothing comes after a missing value within its own key: all
        // missing values are equal and sort last.
        if cursor[idx] == SortValue::Null {
            continue;
        }
        if terms > 0 {
            sql.push(" OR ");
        }
        terms += 1;
        sql.push("(");
        for (prior, value) in keys[..idx].iter().zip(cursor) {
            prior.push_expr(sql);
            if *value == SortValue::Null {
                sql.push(" IS NULL AND ");
            } else {
                sql.push(" = ");
                prior.bind_value(sql, value);
                sql.push(" AND ");
            }
        }
        sql.push("(");
        key.push_expr(sql);
        sql.push(if key.ascending { " > " } else { " < " });
        key.bind_value(sql, &cursor[idx]);
        if key.nullable {
            sql.push(" OR ");
            key.push_expr(sql);
            sql.push(" IS NULL");
        }
        sql.push("))");
    }
    if terms == 0 {
        sql.push("1 = 0");
    }
    sql.push(")");
}

/// Page token of a keyset page: the last row's sort values.
pub(crate) fn encode_cursor(values: &[SortValue]) -> String {
    use base64::Engine;
    let json: Vec<serde_json::Value> = values
        .iter()
        .map(|value| match value {
            SortValue::Null => serde_json::Value::Null,
            // Bits, not the float: exact, and infinities survive JSON.
            SortValue::Real(x) => serde_json::json!(x.to_bits()),
            SortValue::Int(n) => serde_json::json!(n),
            SortValue::Text(text) => serde_json::json!(text),
        })
        .collect();
    base64::engine::general_purpose::URL_SAFE_NO_PAD
        .encode(serde_json::Value::Array(json).to_string())
}

/// Reads a keyset token for `keys`; a token of another query is refused.
pub(crate) fn decode_cursor(
    token: Option<&str>,
    keys: &[SortKey],
) -> Result<Option<Vec<SortValue>>> {
    use base64::Engine;
    let Some(token) = token.filter(|t| !t.is_empty()) else {
        return Ok(None);
    };
    let invalid =
        || StoreError::InvalidInput(format!("Invalid page token '{token}' for this search"));
    let bytes = base64::engine::general_purpose::URL_SAFE_NO_PAD
        .decode(token)
        .map_err(|_| invalid())?;
    let json: Vec<serde_json::Value> = serde_json::from_slice(&bytes).map_err(|_| invalid())?;
    if json.len() != keys.len() {
        return Err(invalid());
    }
    keys.iter()
        .zip(json)
        .map(|(key, value)| match (key.kind, value) {
            (_, serde_json::Value::Null) => Ok(SortValue::Null),
            (ValueKind::Real, serde_json::Value::Number(n)) => n
                .as_u64()
                .map(|bits| SortValue::Real(f64::from_bits(bits)))
                .ok_or_else(invalid),
            (ValueKind::Int, serde_json::Value::Number(n)) => {
                n.as_i64().map(SortValue::Int).ok_or_else(invalid)
            }
            (ValueKind::Text, serde_json::Value::String(text)) => Ok(SortValue::Text(text)),
            _ => Err(invalid()),
        })
        .collect::<Result<Vec<_>>>()
        .map(Some)
}
