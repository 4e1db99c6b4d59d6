//! Lexer, recursive-descent parser and per-endpoint validation for search
//! filters and `order_by` clauses.
//!
//! MLflow runs filters through `sqlparse` and then inspects the generic SQL
//! token stream. Sextant instead uses a small lexer for exactly this grammar,
//! parses each clause into a syntax-only [`RawClause`], and then checks it
//! against the data tables of its [`SearchKind`] ([`KindSpec`]). Keeping the
//! per-endpoint rules as tables makes them easy to audit against MLflow's
//! `mlflow/utils/search_utils.py`.
//!
//! ```text
//! filter      := or_expr
//! or_expr     := and_expr ( OR and_expr )*
//! and_expr    := primary ( AND primary )*
//! primary     := '(' or_expr ')' | clause
//! clause      := identifier comparator value
//!              | identifier IS [NOT] NULL
//!              | identifier [NOT] IN '(' string ( ',' string )* ')'
//! order_by    := identifier [ ASC | DESC ]
//! ```

use super::{
    Comparator, Comparison, Entity, Filter, Identifier, OrderBy, SearchError, SearchKind, Value,
};
use crate::validation;

/// Parses a search filter. Returns `None` for an empty or whitespace-only
/// filter, which matches everything.
///
/// # Errors
///
/// A [`SearchError`] for malformed syntax, or for an entity, key, comparator
/// or value type that the `kind` endpoint does not accept.
pub fn parse_filter(kind: SearchKind, input: &str) -> Result<Option<Filter>, SearchError> {
    if input.trim().is_empty() {
        return Ok(None);
    }
    let src = Source {
        input,
        what: "filter",
    };
    let mut parser = Parser::new(src, kind, tokenize(src)?);
    let filter = parser.or_expr()?;
    match parser.peek() {
        None => {
            check_size(&filter)?;
            Ok(Some(filter))
        }
        // A stray `)` is almost always a parenthesis typo; say so instead
        // of the generic "expected AND or OR".
        Some(tok) if matches!(tok.kind, TokenKind::RParen) => Err(src.error(format!(
            "unbalanced ')' at position {}",
            src.position(tok.start)
        ))),
        Some(_) => Err(parser.expected("AND, OR or the end of the filter")),
    }
}

/// Refuses filters larger than the limits in `validation`, which databases
/// would refuse later as a server error.
fn check_size(filter: &Filter) -> Result<(), SearchError> {
    fn count(filter: &Filter, comparisons: &mut usize, values: &mut usize) {
        match filter {
            Filter::Comparison(comparison) => {
                *comparisons += 1;
                if let Value::List(items) = &comparison.value {
                    *values += items.len();
                }
            }
            Filter::And(children) | Filter::Or(children) => {
                for child in children {
                    count(child, comparisons, values);
                }
            }
        }
    }
    let (mut comparisons, mut values) = (0, 0);
    count(filter, &mut comparisons, &mut values);
    if comparisons > validation::MAX_FILTER_COMPARISONS {
        return Err(SearchError::new(format!(
            "Invalid filter: {comparisons} comparisons; a filter may hold at most {}",
            validation::MAX_FILTER_COMPARISONS
        )));
    }
    if values > validation::MAX_FILTER_VALUES {
        return Err(SearchError::new(format!(
            "Invalid filter: {values} values in IN lists; a filter may hold at most {}",
            validation::MAX_FILTER_VALUES
        )));
    }
    Ok(())
}

/// Parses a search's `order_by` clauses, at most
/// `validation::MAX_ORDER_BY_CLAUSES` of them; blank ones are skipped.
///
/// # Errors
///
/// Too many clauses, or a clause [`parse_order_by`] refuses.
pub fn parse_order_by_list(
    kind: SearchKind,
    clauses: &[String],
) -> Result<Vec<OrderBy>, SearchError> {
    let clauses: Vec<&String> = clauses.iter().filter(|c| !c.trim().is_empty()).collect();
    if clauses.len() > validation::MAX_ORDER_BY_CLAUSES {
        return Err(SearchError::new(format!(
            "Invalid order_by: {} clauses; a search may sort by at most {}",
            clauses.len(),
            validation::MAX_ORDER_BY_CLAUSES
        )));
    }
    clauses
        .into_iter()
        .map(|clause| parse_order_by(kind, clause))
        .collect()
}

/// Parses one `order_by` clause such as `metrics.acc DESC`. The direction
/// defaults to ascending.
///
/// # Errors
///
/// A [`SearchError`] for malformed syntax or a key the `kind` endpoint cannot
/// sort by; the message lists the keys it can.
pub fn parse_order_by(kind: SearchKind, input: &str) -> Result<OrderBy, SearchError> {
    let src = Source {
        input,
        what: "order_by clause",
    };
    let mut parser = Parser::new(src, kind, tokenize(src)?);
    let raw = parser.identifier()?;
    // The direction is optional; without one the order is ascending.
    let ascending = !parser.eat_keyword("DESC");
    if ascending {
        parser.eat_keyword("ASC");
    }
    if parser.peek().is_some() {
        return Err(parser.expected("ASC, DESC or the end of the clause"));
    }
    let ident = order_identifier(kind, raw).map_err(|detail| src.error(detail))?;
    Ok(OrderBy { ident, ascending })
}

// ---------------------------------------------------------------------------
// Per-endpoint rules
// ---------------------------------------------------------------------------

/// What kind of literal a comparison (other than `IN` and `IS NULL`) needs.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum ValueType {
    /// A quoted string.
    String,
    /// An unquoted number.
    Number,
    /// An unquoted integer literal (no fraction, no exponent).
    Integer,
}

/// How one entity key may be compared.
#[derive(Debug, Clone, Copy)]
struct Field {
    value: ValueType,
    comparators: &'static [Comparator],
}

/// A searchable attribute of an endpoint, by its canonical name.
struct AttrSpec {
    name: &'static str,
    field: Field,
}

const NUMERIC_OPS: &[Comparator] = &[
    Comparator::Gt,
    Comparator::Ge,
    Comparator::Lt,
    Comparator::Le,
    Comparator::Eq,
    Comparator::NotEq,
];
const STRING_OPS: &[Comparator] = &[
    Comparator::Eq,
    Comparator::NotEq,
    Comparator::Like,
    Comparator::ILike,
];
const STRING_LIST_OPS: &[Comparator] = &[
    Comparator::Eq,
    Comparator::NotEq,
    Comparator::Like,
    Comparator::ILike,
    Comparator::In,
    Comparator::NotIn,
];
/// Run params and tags can also be tested for absence.
const NULLABLE_STRING_OPS: &[Comparator] = &[
    Comparator::Eq,
    Comparator::NotEq,
    Comparator::Like,
    Comparator::ILike,
    Comparator::IsNull,
    Comparator::IsNotNull,
];
/// Ids are matched exactly; a pattern over ids makes no sense.
const ID_OPS: &[Comparator] = &[
    Comparator::Eq,
    Comparator::NotEq,
    Comparator::In,
    Comparator::NotIn,
];

const fn text_attr(name: &'static str, comparators: &'static [Comparator]) -> AttrSpec {
    AttrSpec {
        name,
        field: Field {
            value: ValueType::String,
            comparators,
        },
    }
}

const fn number_attr(name: &'static str) -> AttrSpec {
    AttrSpec {
        name,
        field: Field {
            value: ValueType::Number,
            comparators: NUMERIC_OPS,
        },
    }
}

const fn integer_attr(name: &'static str) -> AttrSpec {
    AttrSpec {
        name,
        field: Field {
            value: ValueType::Integer,
            comparators: NUMERIC_OPS,
        },
    }
}

/// Keys of the `dataset.` entity of runs.
const DATASET_KEYS: &[&str] = &["name", "digest", "context"];

/// Everything that differs between the search endpoints.
struct KindSpec {
    /// Accepted `entity.` prefixes; an unprefixed identifier is an attribute.
    entities: &'static [(&'static str, Entity)],
    /// Attributes that may appear in a filter.
    attributes: &'static [AttrSpec],
    /// Alternative attribute names, resolved before any other check.
    aliases: &'static [(&'static str, &'static str)],
    /// Comparators for param and tag keys.
    param_tag_ops: &'static [Comparator],
    /// Non-attribute entities whose every key can be ordered by.
    order_entities: &'static [Entity],
    /// Attributes that can be ordered by (after `aliases`).
    order_attributes: &'static [&'static str],
    /// Renames applied to an `order_by` attribute once it is accepted.
    order_aliases: &'static [(&'static str, &'static str)],
}

const RUNS: KindSpec = KindSpec {
    entities: &[
        ("metric", Entity::Metric),
        ("metrics", Entity::Metric),
        ("parameter", Entity::Param),
        ("parameters", Entity::Param),
        ("param", Entity::Param),
        ("params", Entity::Param),
        ("tag", Entity::Tag),
        ("tags", Entity::Tag),
        ("attribute", Entity::Attribute),
        ("attributes", Entity::Attribute),
        ("attr", Entity::Attribute),
        ("run", Entity::Attribute),
        ("dataset", Entity::Dataset),
        ("datasets", Entity::Dataset),
    ],
    attributes: &[
        // MLflow accepts IN only for run_id ("Only the 'run_id' attribute
        // supports comparison with a list of quoted string values").
        text_attr("run_id", STRING_LIST_OPS),
        text_attr("run_name", STRING_OPS),
        text_attr("status", STRING_OPS),
        text_attr("user_id", STRING_OPS),
        text_attr("artifact_uri", STRING_OPS),
        text_attr("lifecycle_stage", STRING_OPS),
        number_attr("start_time"),
        number_attr("end_time"),
    ],
    // The names the MLflow UI shows for these columns.
    aliases: &[
        ("created", "start_time"),
        ("Created", "start_time"),
        ("run name", "run_name"),
        ("Run name", "run_name"),
        ("Run Name", "run_name"),
    ],
    param_tag_ops: NULLABLE_STRING_OPS,
    order_entities: &[Entity::Metric, Entity::Param, Entity::Tag],
    order_attributes: &[
        "run_id",
        "run_name",
        "status",
        "user_id",
        "artifact_uri",
        "start_time",
        "end_time",
    ],
    order_aliases: &[],
};

const EXPERIMENTS: KindSpec = KindSpec {
    entities: &[
        ("attribute", Entity::Attribute),
        ("attributes", Entity::Attribute),
        ("attr", Entity::Attribute),
        ("tag", Entity::Tag),
        ("tags", Entity::Tag),
    ],
    attributes: &[
        text_attr("name", STRING_OPS),
        text_attr("experiment_id", ID_OPS),
        number_attr("creation_time"),
        number_attr("last_update_time"),
    ],
    aliases: &[],
    param_tag_ops: STRING_OPS,
    order_entities: &[],
    order_attributes: &["name", "experiment_id", "creation_time", "last_update_time"],
    order_aliases: &[],
};

/// Entity prefixes of both model-registry endpoints.
const MODEL_REGISTRY_ENTITIES: &[(&str, Entity)] = &[
    ("attribute", Entity::Attribute),
    ("attributes", Entity::Attribute),
    ("tag", Entity::Tag),
    ("tags", Entity::Tag),
];

const REGISTERED_MODELS: KindSpec = KindSpec {
    entities: MODEL_REGISTRY_ENTITIES,
    attributes: &[text_attr("name", STRING_LIST_OPS)],
    aliases: &[],
    param_tag_ops: STRING_OPS,
    order_entities: &[],
    order_attributes: &["name", "timestamp", "last_updated_timestamp"],
    // A registered model has no separate "timestamp": MLflow's SQL store
    // sorts `timestamp` by the last-updated column.
    order_aliases: &[("timestamp", "last_updated_timestamp")],
};

const MODEL_VERSIONS: KindSpec = KindSpec {
    entities: MODEL_REGISTRY_ENTITIES,
    attributes: &[
        text_attr("name", STRING_LIST_OPS),
        text_attr("run_id", STRING_LIST_OPS),
        text_attr("source_path", STRING_OPS),
        integer_attr("version_number"),
    ],
    aliases: &[],
    param_tag_ops: STRING_OPS,
    order_entities: &[],
    order_attributes: &[
        "name",
        "version_number",
        "creation_timestamp",
        "last_updated_timestamp",
    ],
    order_aliases: &[],
};

const LOGGED_MODELS: KindSpec = KindSpec {
    entities: &[
        ("metric", Entity::Metric),
        ("metrics", Entity::Metric),
        ("param", Entity::Param),
        ("params", Entity::Param),
        ("tag", Entity::Tag),
        ("tags", Entity::Tag),
        ("attribute", Entity::Attribute),
        ("attributes", Entity::Attribute),
    ],
    attributes: &[
        text_attr("name", STRING_LIST_OPS),
        text_attr("model_id", STRING_LIST_OPS),
        text_attr("model_type", STRING_LIST_OPS),
        text_attr("status", STRING_LIST_OPS),
        text_attr("source_run_id", STRING_LIST_OPS),
        number_attr("creation_timestamp"),
        number_attr("last_updated_timestamp"),
    ],
    aliases: &[
        ("creation_time", "creation_timestamp"),
        ("last_updated_time", "last_updated_timestamp"),
    ],
    param_tag_ops: STRING_OPS,
    order_entities: &[Entity::Metric],
    order_attributes: &[
        "name",
        "model_id",
        "creation_timestamp",
        "last_updated_timestamp",
    ],
    order_aliases: &[],
};

impl KindSpec {
    fn of(kind: SearchKind) -> &'static KindSpec {
        match kind {
            SearchKind::Runs => &RUNS,
            SearchKind::Experiments => &EXPERIMENTS,
            SearchKind::RegisteredModels => &REGISTERED_MODELS,
            SearchKind::ModelVersions => &MODEL_VERSIONS,
            SearchKind::LoggedModels => &LOGGED_MODELS,
        }
    }

    fn entity(&self, prefix: &str) -> Option<Entity> {
        self.entities
            .iter()
            .find(|(name, _)| *name == prefix)
            .map(|&(_, entity)| entity)
    }

    /// The accepted entity prefixes, for error messages.
    fn entity_names(&self) -> String {
        quoted_list(self.entities.iter().map(|(name, _)| *name))
    }

    fn canonical_attribute<'k>(&self, key: &'k str) -> &'k str {
        resolve_alias(self.aliases, key)
    }

    /// Resolves a filter identifier to its canonical key and the rules for
    /// comparing it.
    fn field(&self, entity: Entity, key: &str) -> Result<(String, Field), SearchError> {
        let field = match entity {
            Entity::Attribute => {
                let key = self.canonical_attribute(key);
                let attr = self
                    .attributes
                    .iter()
                    .find(|attr| attr.name == key)
                    .ok_or_else(|| {
                        SearchError::new(format!(
                            "Invalid attribute key '{key}' specified. Valid keys are {}",
                            quoted_list(self.attributes.iter().map(|attr| attr.name))
                        ))
                    })?;
                return Ok((key.to_owned(), attr.field));
            }
            Entity::Dataset => {
                if !DATASET_KEYS.contains(&key) {
                    return Err(SearchError::new(format!(
                        "Invalid dataset key '{key}' specified. Valid keys are {}",
                        quoted_list(DATASET_KEYS.iter().copied())
                    )));
                }
                Field {
                    value: ValueType::String,
                    comparators: STRING_LIST_OPS,
                }
            }
            Entity::Metric => Field {
                value: ValueType::Number,
                comparators: NUMERIC_OPS,
            },
            Entity::Param | Entity::Tag => Field {
                value: ValueType::String,
                comparators: self.param_tag_ops,
            },
        };
        Ok((key.to_owned(), field))
    }

    /// The message for an `IN` on an attribute that does not support lists.
    fn list_attributes_hint(&self) -> String {
        let names: Vec<&str> = self
            .attributes
            .iter()
            .filter(|attr| attr.field.comparators.contains(&Comparator::In))
            .map(|attr| attr.name)
            .collect();
        match names.as_slice() {
            [one] => format!(
                "Only the '{one}' attribute supports comparison with a list of quoted string values"
            ),
            _ => format!(
                "Only the attributes {} support comparison with a list of quoted string values",
                quoted_list(names.iter().copied())
            ),
        }
    }

    /// Lists what `order_by` accepts, for error messages.
    fn order_keys_hint(&self) -> String {
        let attributes = quoted_list(self.order_attributes.iter().copied());
        if self.order_entities.is_empty() {
            return format!("valid keys are {attributes}");
        }
        let entities: Vec<String> = self
            .order_entities
            .iter()
            .map(|entity| format!("'{}.<key>'", entity_prefix(*entity)))
            .collect();
        format!(
            "valid keys are {} or one of the attributes {attributes}",
            entities.join(", ")
        )
    }
}

fn resolve_alias<'k>(aliases: &[(&str, &'static str)], key: &'k str) -> &'k str {
    aliases
        .iter()
        .find(|(alias, _)| *alias == key)
        .map_or(key, |&(_, canonical)| canonical)
}

/// The noun used for an entity in error messages.
fn entity_noun(entity: Entity) -> &'static str {
    match entity {
        Entity::Metric => "metric",
        Entity::Param => "parameter",
        Entity::Tag => "tag",
        Entity::Attribute => "attribute",
        Entity::Dataset => "dataset",
    }
}

/// The usual prefix of an entity, for examples in error messages.
fn entity_prefix(entity: Entity) -> &'static str {
    match entity {
        Entity::Metric => "metrics",
        Entity::Param => "params",
        Entity::Tag => "tags",
        Entity::Attribute => "attributes",
        Entity::Dataset => "datasets",
    }
}

/// The SQL spelling of a comparator, for error messages.
fn comparator_sql(comparator: Comparator) -> &'static str {
    match comparator {
        Comparator::Eq => "=",
        Comparator::NotEq => "!=",
        Comparator::Gt => ">",
        Comparator::Ge => ">=",
        Comparator::Lt => "<",
        Comparator::Le => "<=",
        Comparator::Like => "LIKE",
        Comparator::ILike => "ILIKE",
        Comparator::In => "IN",
        Comparator::NotIn => "NOT IN",
        Comparator::IsNull => "IS NULL",
        Comparator::IsNotNull => "IS NOT NULL",
    }
}

/// Formats names like a Python list (`['a', 'b']`), as MLflow's messages do.
fn quoted_list<'a>(items: impl IntoIterator<Item = &'a str>) -> String {
    let items: Vec<String> = items.into_iter().map(|item| format!("'{item}'")).collect();
    format!("[{}]", items.join(", "))
}

// ---------------------------------------------------------------------------
// Validation of parsed clauses
// ---------------------------------------------------------------------------

/// An identifier as written: `entity` is the text before the first dot.
#[derive(Debug)]
struct RawIdent<'a> {
    entity: Option<&'a str>,
    key: String,
}

/// A literal on the right-hand side of a comparison, before it is checked
/// against the identifier's type.
#[derive(Debug)]
struct Scalar<'a> {
    kind: ScalarKind,
    /// The literal as written, for error messages.
    text: &'a str,
}

#[derive(Debug)]
enum ScalarKind {
    Number {
        value: f64,
        integer: bool,
    },
    String(String),
    /// An unquoted word or a backtick-quoted name where a value belongs,
    /// e.g. `status = FINISHED`. Always an error, but one worth explaining.
    Bare,
}

/// The comparator and right-hand side of a clause.
#[derive(Debug)]
enum Test<'a> {
    Compare(Comparator, Scalar<'a>),
    In { negated: bool, items: Vec<String> },
    Null { negated: bool },
}

impl Test<'_> {
    fn comparator(&self) -> Comparator {
        match *self {
            Test::Compare(comparator, _) => comparator,
            Test::In { negated: false, .. } => Comparator::In,
            Test::In { negated: true, .. } => Comparator::NotIn,
            Test::Null { negated: false } => Comparator::IsNull,
            Test::Null { negated: true } => Comparator::IsNotNull,
        }
    }
}

/// One syntactically valid clause, not yet checked against the endpoint.
#[derive(Debug)]
struct RawClause<'a> {
    ident: RawIdent<'a>,
    test: Test<'a>,
}

/// Checks a clause against the rules of `kind`: the entity and key must
/// exist, the comparator must suit them and the value must have their type.
fn comparison(kind: SearchKind, clause: RawClause<'_>) -> Result<Comparison, SearchError> {
    let spec = KindSpec::of(kind);
    let entity = match clause.ident.entity {
        None => Entity::Attribute,
        Some(prefix) => spec.entity(prefix).ok_or_else(|| {
            SearchError::new(format!(
                "Invalid entity type '{prefix}'. Valid values are {}",
                spec.entity_names()
            ))
        })?,
    };
    let (key, field) = spec.field(entity, &clause.ident.key)?;

    let comparator = clause.test.comparator();
    if !field.comparators.contains(&comparator) {
        if entity == Entity::Attribute && matches!(comparator, Comparator::In | Comparator::NotIn) {
            return Err(SearchError::new(spec.list_attributes_hint()));
        }
        return Err(SearchError::new(format!(
            "Invalid comparator '{}' for {} '{key}'. Valid comparators are {}",
            comparator_sql(comparator),
            entity_noun(entity),
            quoted_list(field.comparators.iter().map(|c| comparator_sql(*c)))
        )));
    }

    let value = match clause.test {
        Test::Null { .. } => Value::Null,
        Test::In { items, .. } => Value::List(items),
        Test::Compare(_, scalar) => scalar_value(entity, &key, field.value, scalar)?,
    };
    Ok(Comparison {
        ident: Identifier { entity, key },
        comparator,
        value,
    })
}

/// Converts a literal to the value type the identifier needs, with MLflow's
/// messages for the usual mistakes (quoted numbers, unquoted strings).
fn scalar_value(
    entity: Entity,
    key: &str,
    expected: ValueType,
    scalar: Scalar<'_>,
) -> Result<Value, SearchError> {
    let text = scalar.text;
    match (expected, scalar.kind) {
        (ValueType::String, ScalarKind::String(value)) => Ok(Value::String(value)),
        (ValueType::String, _) => Err(SearchError::new(format!(
            "Parameter value is either not quoted or unidentified quote types used for \
             string value {text}. Use either single or double quotes."
        ))),
        (ValueType::Integer, ScalarKind::Number { integer: false, .. }) => Err(SearchError::new(
            format!("Expected an integer value for attribute '{key}'. Found {text}"),
        )),
        (ValueType::Number | ValueType::Integer, ScalarKind::Number { value, .. }) => {
            Ok(Value::Number(value))
        }
        (ValueType::Number | ValueType::Integer, _) => Err(SearchError::new(match entity {
            Entity::Metric => format!("Expected numeric value type for metric. Found {text}"),
            _ => format!("Expected numeric value type for numeric attribute: {key}. Found {text}"),
        })),
    }
}

/// Resolves an `order_by` identifier. Errors are details for the caller to
/// wrap with the clause.
fn order_identifier(kind: SearchKind, raw: RawIdent<'_>) -> Result<Identifier, String> {
    let spec = KindSpec::of(kind);
    let entity = match raw.entity {
        None => Entity::Attribute,
        Some(prefix) => spec.entity(prefix).ok_or_else(|| {
            format!(
                "invalid entity type '{prefix}', valid values are {}",
                spec.entity_names()
            )
        })?,
    };
    let key = match entity {
        Entity::Attribute => {
            let key = spec.canonical_attribute(&raw.key);
            if !spec.order_attributes.contains(&key) {
                return Err(spec.order_keys_hint());
            }
            resolve_alias(spec.order_aliases, key).to_owned()
        }
        _ if spec.order_entities.contains(&entity) => raw.key,
        _ => return Err(spec.order_keys_hint()),
    };
    Ok(Identifier { entity, key })
}

// ---------------------------------------------------------------------------
// Lexer
// ---------------------------------------------------------------------------

/// The string being parsed, and what to call it in error messages.
#[derive(Debug, Clone, Copy)]
struct Source<'a> {
    input: &'a str,
    what: &'static str,
}

impl<'a> Source<'a> {
    /// A syntax error, quoting the whole input the way MLflow does.
    fn error(&self, detail: impl std::fmt::Display) -> SearchError {
        SearchError::new(format!("Invalid {} '{}': {detail}", self.what, self.input))
    }

    /// The 1-based character position of a byte offset, for messages.
    fn position(&self, offset: usize) -> usize {
        self.input
            .get(..offset)
            .map_or(offset, |before| before.chars().count())
            + 1
    }

    fn slice(&self, start: usize, end: usize) -> &'a str {
        self.input.get(start..end).unwrap_or_default()
    }
}

#[derive(Debug, Clone, PartialEq)]
enum TokenKind {
    /// A bare word: a keyword, a key, or `entity.key` (words include dots).
    Word,
    /// A quoted string or name with its quotes removed and doubled quotes
    /// unescaped. `'...'` is a value, `` `...` `` a key, `"..."` either.
    Quoted {
        quote: char,
        text: String,
    },
    /// `integer` is false when the literal has a fraction or exponent.
    Number {
        value: f64,
        integer: bool,
    },
    /// `=`, `!=`, `<>`, `>`, `>=`, `<`, `<=`.
    Op(Comparator),
    LParen,
    RParen,
    Comma,
}

#[derive(Debug, Clone)]
struct Token {
    kind: TokenKind,
    /// Byte offsets into the input.
    start: usize,
    end: usize,
}

fn is_word_start(c: char) -> bool {
    c.is_alphabetic() || c == '_'
}

/// Dots are word characters so that `tags.mlflow.runName` is one token; the
/// parser splits off the entity at the first dot.
fn is_word_char(c: char) -> bool {
    c.is_alphanumeric() || c == '_' || c == '.'
}

fn tokenize(src: Source<'_>) -> Result<Vec<Token>, SearchError> {
    let mut lexer = Lexer { src, pos: 0 };
    let mut tokens = Vec::new();
    while let Some(token) = lexer.token()? {
        tokens.push(token);
    }
    Ok(tokens)
}

struct Lexer<'a> {
    src: Source<'a>,
    /// Byte offset of the next character; always on a char boundary.
    pos: usize,
}

impl Lexer<'_> {
    fn rest(&self) -> &str {
        self.src.input.get(self.pos..).unwrap_or_default()
    }

    fn peek(&self) -> Option<char> {
        self.rest().chars().next()
    }

    fn bump(&mut self) -> Option<char> {
        let c = self.peek()?;
        self.pos += c.len_utf8();
        Some(c)
    }

    fn eat(&mut self, expected: char) -> bool {
        let matched = self.peek() == Some(expected);
        if matched {
            self.bump();
        }
        matched
    }

    fn eat_while(&mut self, pred: impl Fn(char) -> bool) -> usize {
        let start = self.pos;
        while self.peek().is_some_and(&pred) {
            self.bump();
        }
        self.pos - start
    }

    /// Lexes the next token, or returns `None` at the end of the input.
    fn token(&mut self) -> Result<Option<Token>, SearchError> {
        self.eat_while(char::is_whitespace);
        let start = self.pos;
        let Some(c) = self.bump() else {
            return Ok(None);
        };
        let kind = match c {
            '(' => TokenKind::LParen,
            ')' => TokenKind::RParen,
            ',' => TokenKind::Comma,
            '=' => TokenKind::Op(Comparator::Eq),
            '!' if self.eat('=') => TokenKind::Op(Comparator::NotEq),
            '<' if self.eat('=') => TokenKind::Op(Comparator::Le),
            '<' if self.eat('>') => TokenKind::Op(Comparator::NotEq),
            '<' => TokenKind::Op(Comparator::Lt),
            '>' if self.eat('=') => TokenKind::Op(Comparator::Ge),
            '>' => TokenKind::Op(Comparator::Gt),
            '\'' | '"' | '`' => self.quoted(c, start)?,
            c if c.is_ascii_digit() || matches!(c, '+' | '-' | '.') => self.number(start, c)?,
            c if is_word_start(c) => {
                self.eat_while(is_word_char);
                TokenKind::Word
            }
            _ => return Err(self.unexpected(start, c)),
        };
        Ok(Some(Token {
            kind,
            start,
            end: self.pos,
        }))
    }

    fn unexpected(&self, at: usize, c: char) -> SearchError {
        // `tags.my-key` is the classic case: keys with special characters
        // must be quoted, which MLflow's docs mention but users forget.
        let glued_to_word = self
            .src
            .input
            .get(..at)
            .and_then(|before| before.chars().next_back())
            .is_some_and(is_word_char);
        let hint = if glued_to_word {
            "; keys containing special characters must be quoted with backticks"
        } else {
            ""
        };
        self.src.error(format!(
            "unexpected character '{c}' at position {}{hint}",
            self.src.position(at)
        ))
    }

    /// Lexes the rest of a quoted string or name; a doubled quote stands for
    /// the quote itself (`'it''s'`), as in SQL.
    fn quoted(&mut self, quote: char, start: usize) -> Result<TokenKind, SearchError> {
        let mut text = String::new();
        loop {
            match self.bump() {
                Some(c) if c == quote => {
                    if !self.eat(quote) {
                        return Ok(TokenKind::Quoted { quote, text });
                    }
                    text.push(quote);
                }
                Some(c) => text.push(c),
                None => {
                    let what = if quote == '`' {
                        "backtick-quoted name"
                    } else {
                        "string"
                    };
                    return Err(self.src.error(format!(
                        "unterminated {what} starting at position {}",
                        self.src.position(start)
                    )));
                }
            }
        }
    }

    /// Lexes `[+-] digits [. digits] [(e|E) [+-] digits]`, where either the
    /// integer or the fraction digits may be missing (`.5`, `5.`). `first` is
    /// the character at `start`, already consumed by the caller.
    fn number(&mut self, start: usize, first: char) -> Result<TokenKind, SearchError> {
        self.pos = start;
        if !self.eat('+') {
            self.eat('-');
        }
        let mut digits = self.eat_while(|c| c.is_ascii_digit());
        let mut integer = true;
        if self.eat('.') {
            integer = false;
            digits += self.eat_while(|c| c.is_ascii_digit());
        }
        if digits == 0 {
            // A lone sign or dot, e.g. the `-` of `tags.my-key`.
            return Err(self.unexpected(start, first));
        }
        let mut valid = true;
        if self.peek().is_some_and(|c| c == 'e' || c == 'E') {
            integer = false;
            self.bump();
            if !self.eat('+') {
                self.eat('-');
            }
            valid = self.eat_while(|c| c.is_ascii_digit()) > 0;
        }
        // Swallow anything glued to the literal (`12abc`, `1.2.3`) so the
        // message shows the whole malformed word.
        valid &= self.eat_while(is_word_char) == 0;
        let text = self.src.slice(start, self.pos);
        let value = text.parse::<f64>().ok().filter(|value| value.is_finite());
        match value {
            Some(value) if valid => Ok(TokenKind::Number { value, integer }),
            _ => Err(self.src.error(format!(
                "invalid number '{text}' at position {}",
                self.src.position(start)
            ))),
        }
    }
}

// ---------------------------------------------------------------------------
// Parser
// ---------------------------------------------------------------------------

/// Words that cannot be used as a bare identifier; quote the key instead.
const KEYWORDS: &[&str] = &["AND", "OR", "NOT", "IN", "IS", "NULL", "LIKE", "ILIKE"];

/// Bounds parenthesis nesting so hostile input cannot overflow the stack.
const MAX_NESTING: usize = 64;

const COMPARATOR_LIST: &str = "a comparator (=, !=, <>, >, >=, <, <=, LIKE, ILIKE, IN, NOT IN, \
                               IS NULL or IS NOT NULL)";

/// `AND` or `OR`.
#[derive(Debug, Clone, Copy)]
enum Junction {
    And,
    Or,
}

impl Junction {
    fn keyword(self) -> &'static str {
        match self {
            Junction::And => "AND",
            Junction::Or => "OR",
        }
    }

    /// Adds an operand, splicing in the children of a (parenthesised)
    /// operand of the same junction so that `(a AND b) AND c` is one flat
    /// `And`.
    fn push(self, operands: &mut Vec<Filter>, operand: Filter) {
        match (self, operand) {
            (Junction::And, Filter::And(children)) | (Junction::Or, Filter::Or(children)) => {
                operands.extend(children);
            }
            (_, operand) => operands.push(operand),
        }
    }

    fn build(self, operands: Vec<Filter>) -> Filter {
        match self {
            Junction::And => Filter::And(operands),
            Junction::Or => Filter::Or(operands),
        }
    }
}

struct Parser<'a> {
    src: Source<'a>,
    kind: SearchKind,
    tokens: Vec<Token>,
    /// Index of the next token.
    pos: usize,
    /// Current parenthesis nesting.
    depth: usize,
}

impl<'a> Parser<'a> {
    fn new(src: Source<'a>, kind: SearchKind, tokens: Vec<Token>) -> Parser<'a> {
        Parser {
            src,
            kind,
            tokens,
            pos: 0,
            depth: 0,
        }
    }

    fn peek(&self) -> Option<&Token> {
        self.tokens.get(self.pos)
    }

    fn bump(&mut self) {
        self.pos += 1;
    }

    fn text(&self, token: &Token) -> &'a str {
        self.src.slice(token.start, token.end)
    }

    fn is_keyword(&self, token: &Token, keyword: &str) -> bool {
        token.kind == TokenKind::Word && self.text(token).eq_ignore_ascii_case(keyword)
    }

    fn peek_keyword(&self, keyword: &str) -> bool {
        self.peek()
            .is_some_and(|token| self.is_keyword(token, keyword))
    }

    fn eat_keyword(&mut self, keyword: &str) -> bool {
        let matched = self.peek_keyword(keyword);
        if matched {
            self.bump();
        }
        matched
    }

    fn eat(&mut self, kind: &TokenKind) -> bool {
        let matched = self.peek().is_some_and(|token| token.kind == *kind);
        if matched {
            self.bump();
        }
        matched
    }

    /// "expected X after 'previous token', found 'next token'": the error for
    /// whatever the parser is looking at.
    fn expected(&self, what: &str) -> SearchError {
        let after = self
            .pos
            .checked_sub(1)
            .and_then(|prev| self.tokens.get(prev))
            .map(|prev| format!(" after '{}'", self.text(prev)))
            .unwrap_or_default();
        self.src
            .error(format!("expected {what}{after}, found {}", self.found()))
    }

    /// Describes the next token, for "found ..." in messages.
    fn found(&self) -> String {
        match self.peek() {
            Some(token) => format!(
                "'{}' at position {}",
                self.text(token),
                self.src.position(token.start)
            ),
            None => "end of input".to_owned(),
        }
    }

    fn or_expr(&mut self) -> Result<Filter, SearchError> {
        self.junction(Junction::Or, Self::and_expr)
    }

    fn and_expr(&mut self) -> Result<Filter, SearchError> {
        self.junction(Junction::And, Self::primary)
    }

    /// `operand (junction operand)*`; a single operand is returned unwrapped.
    fn junction(
        &mut self,
        junction: Junction,
        operand: fn(&mut Self) -> Result<Filter, SearchError>,
    ) -> Result<Filter, SearchError> {
        let first = operand(self)?;
        if !self.peek_keyword(junction.keyword()) {
            return Ok(first);
        }
        let mut operands = Vec::new();
        junction.push(&mut operands, first);
        while self.eat_keyword(junction.keyword()) {
            let next = operand(self)?;
            junction.push(&mut operands, next);
        }
        Ok(junction.build(operands))
    }

    fn primary(&mut self) -> Result<Filter, SearchError> {
        let Some(open) = self.peek().filter(|t| t.kind == TokenKind::LParen) else {
            let clause = self.clause()?;
            return Ok(Filter::Comparison(comparison(self.kind, clause)?));
        };
        let open_at = self.src.position(open.start);
        if self.depth >= MAX_NESTING {
            return Err(self.src.error(format!(
                "parentheses nested deeper than {MAX_NESTING} levels at position {open_at}"
            )));
        }
        self.bump();
        self.depth += 1;
        let inner = self.or_expr()?;
        self.depth -= 1;
        if !self.eat(&TokenKind::RParen) {
            return Err(self.src.error(format!(
                "missing ')' for the '(' at position {open_at}, found {}",
                self.found()
            )));
        }
        Ok(inner)
    }

    fn clause(&mut self) -> Result<RawClause<'a>, SearchError> {
        let ident = self.identifier()?;
        let test = self.test()?;
        Ok(RawClause { ident, test })
    }

    /// `key`, `entity.key`, ``entity.`quoted key` ``, `entity."quoted key"`,
    /// or a lone quoted key (an attribute such as `` `run name` ``).
    fn identifier(&mut self) -> Result<RawIdent<'a>, SearchError> {
        let Some(token) = self.peek() else {
            return Err(self.expected("an identifier"));
        };
        let (start, end) = (token.start, token.end);
        let ident = match &token.kind {
            TokenKind::Quoted {
                quote: '`' | '"',
                text,
            } => {
                let key = text.clone();
                self.bump();
                RawIdent { entity: None, key }
            }
            TokenKind::Word => {
                let word = self.text(token);
                if KEYWORDS.iter().any(|kw| word.eq_ignore_ascii_case(kw)) {
                    return Err(self.expected("an identifier"));
                }
                self.bump();
                // `tags.`mlflow.runName``: the quoted key follows the dot
                // directly.
                let quoted_key = match word.strip_suffix('.') {
                    Some(entity) => self.adjacent_quoted_key(end).map(|key| (entity, key)),
                    None => None,
                };
                match quoted_key {
                    Some((entity, key)) => RawIdent {
                        entity: Some(entity),
                        key,
                    },
                    None => match word.split_once('.') {
                        Some((entity, key)) => RawIdent {
                            entity: Some(entity),
                            key: key.to_owned(),
                        },
                        None => RawIdent {
                            entity: None,
                            key: word.to_owned(),
                        },
                    },
                }
            }
            _ => return Err(self.expected("an identifier")),
        };
        if ident.key.is_empty() {
            let end = self
                .pos
                .checked_sub(1)
                .and_then(|last| self.tokens.get(last))
                .map_or(end, |last| last.end);
            return Err(self.src.error(format!(
                "missing key in identifier '{}' at position {}; keys containing special \
                 characters must be quoted with backticks",
                self.src.slice(start, end),
                self.src.position(start)
            )));
        }
        Ok(ident)
    }

    /// Consumes a backtick- or double-quoted name starting exactly at byte
    /// `at` (no whitespace in between).
    fn adjacent_quoted_key(&mut self, at: usize) -> Option<String> {
        let token = self.peek().filter(|token| token.start == at)?;
        let TokenKind::Quoted {
            quote: '`' | '"',
            text,
        } = &token.kind
        else {
            return None;
        };
        let key = text.clone();
        self.bump();
        Some(key)
    }

    /// The comparator and the value(s) after an identifier.
    fn test(&mut self) -> Result<Test<'a>, SearchError> {
        let Some(token) = self.peek() else {
            return Err(self.expected(COMPARATOR_LIST));
        };
        if let TokenKind::Op(op) = token.kind {
            self.bump();
            return Ok(Test::Compare(op, self.scalar()?));
        }
        let word = match token.kind {
            TokenKind::Word => self.text(token).to_ascii_uppercase(),
            _ => String::new(),
        };
        match word.as_str() {
            "LIKE" | "ILIKE" => {
                self.bump();
                let op = if word == "LIKE" {
                    Comparator::Like
                } else {
                    Comparator::ILike
                };
                Ok(Test::Compare(op, self.scalar()?))
            }
            "IN" => {
                self.bump();
                let items = self.list()?;
                Ok(Test::In {
                    negated: false,
                    items,
                })
            }
            "NOT" => {
                self.bump();
                if !self.eat_keyword("IN") {
                    return Err(self.expected("IN"));
                }
                let items = self.list()?;
                Ok(Test::In {
                    negated: true,
                    items,
                })
            }
            "IS" => {
                self.bump();
                let negated = self.eat_keyword("NOT");
                if !self.eat_keyword("NULL") {
                    return Err(self.expected(if negated { "NULL" } else { "NULL or NOT NULL" }));
                }
                Ok(Test::Null { negated })
            }
            _ => Err(self.expected(COMPARATOR_LIST)),
        }
    }

    /// A number or a quoted string. Bare words and backtick-quoted names are
    /// accepted here only to be rejected with a type-specific message.
    fn scalar(&mut self) -> Result<Scalar<'a>, SearchError> {
        let Some(token) = self.peek() else {
            return Err(self.expected("a value"));
        };
        let kind = match &token.kind {
            TokenKind::Number { value, integer } => ScalarKind::Number {
                value: *value,
                integer: *integer,
            },
            TokenKind::Quoted {
                quote: '\'' | '"',
                text,
            } => ScalarKind::String(text.clone()),
            TokenKind::Quoted { .. } | TokenKind::Word => ScalarKind::Bare,
            _ => return Err(self.expected("a value")),
        };
        let text = self.text(token);
        self.bump();
        Ok(Scalar { kind, text })
    }

    /// `'(' string (',' string)* ')'` after `IN` / `NOT IN`.
    fn list(&mut self) -> Result<Vec<String>, SearchError> {
        if !self.eat(&TokenKind::LParen) {
            return Err(self.expected("a parenthesised list of quoted strings"));
        }
        if let Some(token) = self.peek().filter(|t| t.kind == TokenKind::RParen) {
            return Err(self.src.error(format!(
                "expected a non-empty list of quoted strings, but got an empty list at position {}",
                self.src.position(token.start)
            )));
        }
        let mut items = Vec::new();
        loop {
            match self.peek().map(|token| &token.kind) {
                Some(TokenKind::Quoted {
                    quote: '\'' | '"',
                    text,
                }) => {
                    items.push(text.clone());
                    self.bump();
                }
                _ => return Err(self.expected("a quoted string in the list")),
            }
            if self.eat(&TokenKind::RParen) {
                return Ok(items);
            }
            if !self.eat(&TokenKind::Comma) {
                return Err(self.expected("',' or ')' in the list"));
            }
        }
    }
}
