//! Table-driven tests of the search grammar: each case is a filter or
//! `order_by` string with the tree (or an error-message fragment) it yields.

use super::*;

use Comparator as C;
use SearchKind::{Experiments, LoggedModels, ModelVersions, RegisteredModels, Runs};

// --- builders ---------------------------------------------------------------

fn clause(entity: Entity, key: &str, comparator: Comparator, value: Value) -> Filter {
    Filter::Comparison(Comparison {
        ident: Identifier {
            entity,
            key: key.to_owned(),
        },
        comparator,
        value,
    })
}

fn metric(key: &str, comparator: Comparator, value: f64) -> Filter {
    clause(Entity::Metric, key, comparator, Value::Number(value))
}

fn param(key: &str, comparator: Comparator, value: &str) -> Filter {
    clause(
        Entity::Param,
        key,
        comparator,
        Value::String(value.to_owned()),
    )
}

fn tag(key: &str, comparator: Comparator, value: &str) -> Filter {
    clause(
        Entity::Tag,
        key,
        comparator,
        Value::String(value.to_owned()),
    )
}

fn attr(key: &str, comparator: Comparator, value: &str) -> Filter {
    clause(
        Entity::Attribute,
        key,
        comparator,
        Value::String(value.to_owned()),
    )
}

fn attr_num(key: &str, comparator: Comparator, value: f64) -> Filter {
    clause(Entity::Attribute, key, comparator, Value::Number(value))
}

fn list(items: &[&str]) -> Value {
    Value::List(items.iter().map(|item| (*item).to_owned()).collect())
}

fn and(children: Vec<Filter>) -> Filter {
    Filter::And(children)
}

fn or(children: Vec<Filter>) -> Filter {
    Filter::Or(children)
}

// --- checkers ---------------------------------------------------------------

#[track_caller]
fn check(kind: SearchKind, input: &str, expected: Filter) {
    assert_eq!(
        parse_filter(kind, input),
        Ok(Some(expected)),
        "{kind:?} filter {input:?}"
    );
}

#[track_caller]
fn check_err(kind: SearchKind, input: &str, fragment: &str) {
    match parse_filter(kind, input) {
        Err(err) => assert!(
            err.message.contains(fragment),
            "{kind:?} filter {input:?}: message {:?} lacks {fragment:?}",
            err.message
        ),
        Ok(filter) => panic!("{kind:?} filter {input:?} parsed to {filter:?}, expected an error"),
    }
}

#[track_caller]
fn check_order(kind: SearchKind, input: &str, entity: Entity, key: &str, ascending: bool) {
    let expected = OrderBy {
        ident: Identifier {
            entity,
            key: key.to_owned(),
        },
        ascending,
    };
    assert_eq!(
        parse_order_by(kind, input),
        Ok(expected),
        "{kind:?} order_by {input:?}"
    );
}

#[track_caller]
fn check_order_err(kind: SearchKind, input: &str, fragment: &str) {
    match parse_order_by(kind, input) {
        Err(err) => assert!(
            err.message.contains(fragment),
            "{kind:?} order_by {input:?}: message {:?} lacks {fragment:?}",
            err.message
        ),
        Ok(order) => panic!("{kind:?} order_by {input:?} parsed to {order:?}, expected an error"),
    }
}

// --- filters: accepted ------------------------------------------------------

#[test]
fn empty_filter_is_none() {
    for input in ["", " ", "\t\n  "] {
        assert_eq!(parse_filter(Runs, input), Ok(None), "{input:?}");
    }
}

#[test]
fn run_filters() {
    let cases = [
        (
            "metrics.acc > 0.5 and params.lr = '0.01' and tags.team = 'rust-mlops'",
            and(vec![
                metric("acc", C::Gt, 0.5),
                param("lr", C::Eq, "0.01"),
                tag("team", C::Eq, "rust-mlops"),
            ]),
        ),
        // Every entity prefix and its aliases.
        ("metric.a >= 1", metric("a", C::Ge, 1.0)),
        ("parameter.a = 'x'", param("a", C::Eq, "x")),
        ("parameters.a != 'x'", param("a", C::NotEq, "x")),
        ("param.a LIKE 'x%'", param("a", C::Like, "x%")),
        ("tag.a ILIKE '%x'", tag("a", C::ILike, "%x")),
        (
            "attribute.status = 'FINISHED'",
            attr("status", C::Eq, "FINISHED"),
        ),
        ("attr.user_id != 'bob'", attr("user_id", C::NotEq, "bob")),
        ("run.run_name LIKE 'a%'", attr("run_name", C::Like, "a%")),
        ("status = \"RUNNING\"", attr("status", C::Eq, "RUNNING")),
        (
            "lifecycle_stage = 'active'",
            attr("lifecycle_stage", C::Eq, "active"),
        ),
        (
            "artifact_uri LIKE 's3://bucket/%'",
            attr("artifact_uri", C::Like, "s3://bucket/%"),
        ),
        (
            "start_time >= 1700000000000",
            attr_num("start_time", C::Ge, 1.7e12),
        ),
        (
            "attributes.end_time != 0",
            attr_num("end_time", C::NotEq, 0.0),
        ),
        // Aliases from the MLflow UI.
        (
            "attributes.created > 1000",
            attr_num("start_time", C::Gt, 1000.0),
        ),
        ("Created < 5", attr_num("start_time", C::Lt, 5.0)),
        ("`run name` = 'a'", attr("run_name", C::Eq, "a")),
        ("\"Run Name\" LIKE 'a%'", attr("run_name", C::Like, "a%")),
        ("attributes.`Run name` = 'a'", attr("run_name", C::Eq, "a")),
        // IN is accepted for run_id.
        (
            "run_id IN ('a1', 'b2')",
            clause(Entity::Attribute, "run_id", C::In, list(&["a1", "b2"])),
        ),
        (
            "attributes.run_id not in (\"a1\")",
            clause(Entity::Attribute, "run_id", C::NotIn, list(&["a1"])),
        ),
        // Datasets.
        ("datasets.name = 'ds'", clause_ds("name", C::Eq, "ds")),
        (
            "dataset.context LIKE 'train%'",
            clause_ds("context", C::Like, "train%"),
        ),
        (
            "datasets.digest IN ('d1','d2')",
            clause(Entity::Dataset, "digest", C::In, list(&["d1", "d2"])),
        ),
        (
            "datasets.name NOT IN ('x')",
            clause(Entity::Dataset, "name", C::NotIn, list(&["x"])),
        ),
    ];
    for (input, expected) in cases {
        check(Runs, input, expected);
    }
}

fn clause_ds(key: &str, comparator: Comparator, value: &str) -> Filter {
    clause(
        Entity::Dataset,
        key,
        comparator,
        Value::String(value.to_owned()),
    )
}

#[test]
fn quoted_keys() {
    let cases = [
        (
            "tags.`mlflow.runName` = 'x'",
            tag("mlflow.runName", C::Eq, "x"),
        ),
        // Without quotes everything after the first dot is the key.
        (
            "tags.mlflow.runName = 'x'",
            tag("mlflow.runName", C::Eq, "x"),
        ),
        (
            "tags.\"mlflow.user\" != 'bob'",
            tag("mlflow.user", C::NotEq, "bob"),
        ),
        ("metrics.`f1 score` >= 0.9", metric("f1 score", C::Ge, 0.9)),
        ("params.`my-param` = 'v'", param("my-param", C::Eq, "v")),
        ("tags.`a``b` = 'x'", tag("a`b", C::Eq, "x")),
        (
            "tags.\"say \"\"hi\"\"\" = 'x'",
            tag("say \"hi\"", C::Eq, "x"),
        ),
        (
            "metrics.1st_epoch_loss < 3",
            metric("1st_epoch_loss", C::Lt, 3.0),
        ),
        ("tags.ключ = 'значение'", tag("ключ", C::Eq, "значение")),
        // A key may itself spell a keyword once it is prefixed or quoted.
        ("params.and = 'x'", param("and", C::Eq, "x")),
        ("params.`OR` = 'x'", param("OR", C::Eq, "x")),
    ];
    for (input, expected) in cases {
        check(Runs, input, expected);
    }
}

#[test]
fn comparators_and_keywords() {
    let cases = [
        ("metrics.a = 1", metric("a", C::Eq, 1.0)),
        ("metrics.a != 1", metric("a", C::NotEq, 1.0)),
        ("metrics.a <> 1", metric("a", C::NotEq, 1.0)),
        ("metrics.a > 1", metric("a", C::Gt, 1.0)),
        ("metrics.a >= 1", metric("a", C::Ge, 1.0)),
        ("metrics.a < 1", metric("a", C::Lt, 1.0)),
        ("metrics.a <= 1", metric("a", C::Le, 1.0)),
        ("metrics.a<=1", metric("a", C::Le, 1.0)),
        ("params.a like 'x'", param("a", C::Like, "x")),
        ("params.a iLiKe 'x'", param("a", C::ILike, "x")),
        (
            "params.lr IS NULL",
            clause(Entity::Param, "lr", C::IsNull, Value::Null),
        ),
        (
            "params.lr is not null",
            clause(Entity::Param, "lr", C::IsNotNull, Value::Null),
        ),
        (
            "tags.x Is Not Null",
            clause(Entity::Tag, "x", C::IsNotNull, Value::Null),
        ),
        (
            "metrics.a > 1 AnD params.b LiKe 'x%' oR tags.c = 'y'",
            or(vec![
                and(vec![metric("a", C::Gt, 1.0), param("b", C::Like, "x%")]),
                tag("c", C::Eq, "y"),
            ]),
        ),
    ];
    for (input, expected) in cases {
        check(Runs, input, expected);
    }
}

#[test]
fn numbers() {
    let cases = [
        ("metrics.loss < -1.5", -1.5),
        ("metrics.loss <= 1e-3", 0.001),
        ("metrics.loss >= -2.5E+3", -2500.0),
        ("metrics.loss = +7", 7.0),
        ("metrics.loss = .5", 0.5),
        ("metrics.loss = -.5", -0.5),
        ("metrics.loss = 5.", 5.0),
        ("metrics.loss = 0", 0.0),
        ("metrics.loss = 12345678901234", 12_345_678_901_234.0),
        ("metrics.loss = 1E5", 100_000.0),
    ];
    for (input, value) in cases {
        let Ok(Some(Filter::Comparison(comparison))) = parse_filter(Runs, input) else {
            panic!("{input:?} did not parse to one comparison");
        };
        assert_eq!(comparison.value, Value::Number(value), "{input:?}");
    }
}

#[test]
fn string_escapes() {
    let cases = [
        ("params.msg = 'it''s'", "it's"),
        ("params.msg = ''''", "'"),
        ("params.msg = ''", ""),
        ("params.msg = \"say \"\"hi\"\"\"", "say \"hi\""),
        ("params.msg = \"it's\"", "it's"),
        ("params.msg = 'a \"quoted\" word'", "a \"quoted\" word"),
        // Backslashes are ordinary characters.
        ("params.path = 'C:\\dir\\'", "C:\\dir\\"),
        ("params.msg = 'a AND b OR (c)'", "a AND b OR (c)"),
    ];
    for (input, value) in cases {
        let key = if input.starts_with("params.path") {
            "path"
        } else {
            "msg"
        };
        check(Runs, input, param(key, C::Eq, value));
    }
}

#[test]
fn precedence_and_parentheses() {
    let a = || metric("a", C::Gt, 1.0);
    let b = || metric("b", C::Gt, 2.0);
    let c = || metric("c", C::Gt, 3.0);
    let d = || metric("d", C::Gt, 4.0);
    let cases = [
        // AND binds tighter than OR.
        (
            "metrics.a > 1 AND metrics.b > 2 OR metrics.c > 3",
            or(vec![and(vec![a(), b()]), c()]),
        ),
        (
            "metrics.a > 1 OR metrics.b > 2 AND metrics.c > 3",
            or(vec![a(), and(vec![b(), c()])]),
        ),
        (
            "metrics.a > 1 OR metrics.b > 2 OR metrics.c > 3",
            or(vec![a(), b(), c()]),
        ),
        // Parentheses override it.
        (
            "metrics.a > 1 AND (metrics.b > 2 OR metrics.c > 3)",
            and(vec![a(), or(vec![b(), c()])]),
        ),
        (
            "(metrics.a > 1 OR metrics.b > 2) AND (metrics.c > 3 OR metrics.d > 4)",
            and(vec![or(vec![a(), b()]), or(vec![c(), d()])]),
        ),
        // Redundant parentheses vanish; same-kind groups are flattened.
        ("((metrics.a > 1))", a()),
        ("(metrics.a > 1) AND metrics.b > 2", and(vec![a(), b()])),
        (
            "(metrics.a > 1 AND metrics.b > 2) AND metrics.c > 3",
            and(vec![a(), b(), c()]),
        ),
        (
            "metrics.a > 1 AND (metrics.b > 2 AND (metrics.c > 3 AND metrics.d > 4))",
            and(vec![a(), b(), c(), d()]),
        ),
        (
            "metrics.a > 1 OR (metrics.b > 2 OR metrics.c > 3)",
            or(vec![a(), b(), c()]),
        ),
        (
            "(metrics.a > 1 OR metrics.b > 2) AND metrics.c > 3",
            and(vec![or(vec![a(), b()]), c()]),
        ),
        ("(metrics.a>1)AND(metrics.b>2)", and(vec![a(), b()])),
    ];
    for (input, expected) in cases {
        check(Runs, input, expected);
    }
}

#[test]
fn experiment_filters() {
    let cases = [
        (
            "name LIKE 'exp%' AND tags.owner = 'me'",
            and(vec![
                attr("name", C::Like, "exp%"),
                tag("owner", C::Eq, "me"),
            ]),
        ),
        ("attr.name ILIKE '%X%'", attr("name", C::ILike, "%X%")),
        (
            "experiment_id IN ('1', '2')",
            clause(Entity::Attribute, "experiment_id", C::In, list(&["1", "2"])),
        ),
        ("experiment_id != '0'", attr("experiment_id", C::NotEq, "0")),
        (
            "attribute.creation_time > 5",
            attr_num("creation_time", C::Gt, 5.0),
        ),
        (
            "last_update_time <= 10",
            attr_num("last_update_time", C::Le, 10.0),
        ),
        ("tag.`a b` != 'c'", tag("a b", C::NotEq, "c")),
    ];
    for (input, expected) in cases {
        check(Experiments, input, expected);
    }
}

#[test]
fn registered_model_filters() {
    let cases = [
        (
            "name LIKE 'compat-flow%' AND tag.`mlflow.prompt.is_prompt` != 'true'",
            and(vec![
                attr("name", C::Like, "compat-flow%"),
                tag("mlflow.prompt.is_prompt", C::NotEq, "true"),
            ]),
        ),
        (
            "name IN ('a', 'b')",
            clause(Entity::Attribute, "name", C::In, list(&["a", "b"])),
        ),
        ("attributes.name = 'm'", attr("name", C::Eq, "m")),
        ("tags.x ILIKE 'y'", tag("x", C::ILike, "y")),
    ];
    for (input, expected) in cases {
        check(RegisteredModels, input, expected);
    }
}

#[test]
fn model_version_filters() {
    let cases = [
        (
            "name = 'm' AND version_number > 3",
            and(vec![
                attr("name", C::Eq, "m"),
                attr_num("version_number", C::Gt, 3.0),
            ]),
        ),
        (
            "run_id IN ('r1')",
            clause(Entity::Attribute, "run_id", C::In, list(&["r1"])),
        ),
        (
            "name NOT IN ('a','b')",
            clause(Entity::Attribute, "name", C::NotIn, list(&["a", "b"])),
        ),
        (
            "source_path LIKE 's3://%'",
            attr("source_path", C::Like, "s3://%"),
        ),
        ("tags.stage = 'prod'", tag("stage", C::Eq, "prod")),
    ];
    for (input, expected) in cases {
        check(ModelVersions, input, expected);
    }
}

#[test]
fn logged_model_filters() {
    let cases = [
        (
            "metrics.acc >= 0.9 AND params.lr = '0.1' AND status IN ('READY')",
            and(vec![
                metric("acc", C::Ge, 0.9),
                param("lr", C::Eq, "0.1"),
                clause(Entity::Attribute, "status", C::In, list(&["READY"])),
            ]),
        ),
        (
            "creation_time > 5",
            attr_num("creation_timestamp", C::Gt, 5.0),
        ),
        (
            "attributes.last_updated_time < 9",
            attr_num("last_updated_timestamp", C::Lt, 9.0),
        ),
        (
            "last_updated_timestamp < 9",
            attr_num("last_updated_timestamp", C::Lt, 9.0),
        ),
        ("source_run_id = 'r'", attr("source_run_id", C::Eq, "r")),
        ("model_type ILIKE 'x'", attr("model_type", C::ILike, "x")),
        (
            "model_id NOT IN ('m-1')",
            clause(Entity::Attribute, "model_id", C::NotIn, list(&["m-1"])),
        ),
        ("tag.x = 'y'", tag("x", C::Eq, "y")),
    ];
    for (input, expected) in cases {
        check(LoggedModels, input, expected);
    }
}

// --- filters: rejected ------------------------------------------------------

#[test]
fn syntax_errors() {
    let cases = [
        (
            "params.a = 'abc",
            "unterminated string starting at position 12",
        ),
        ("params.a = \"abc", "unterminated string"),
        ("tags.`abc = 'x'", "unterminated backtick-quoted name"),
        (
            "metrics.a > 1 AND",
            "expected an identifier after 'AND', found end of input",
        ),
        ("metrics.a > 1 or", "expected an identifier after 'or'"),
        (
            "AND metrics.a > 1",
            "expected an identifier, found 'AND' at position 1",
        ),
        (
            "metrics.a > 1 AND AND metrics.b > 1",
            "expected an identifier after 'AND'",
        ),
        (
            "(metrics.a > 1",
            "missing ')' for the '(' at position 1, found end of input",
        ),
        ("((metrics.a > 1)", "missing ')' for the '(' at position 1"),
        (
            "(metrics.a > 1 metrics.b > 2)",
            "missing ')' for the '(' at position 1, found 'metrics.b'",
        ),
        ("metrics.a > 1)", "unbalanced ')' at position 14"),
        ("()", "expected an identifier after '(', found ')'"),
        ("params.a 'x'", "expected a comparator"),
        ("params.a", "expected a comparator"),
        (
            "params.a =",
            "expected a value after '=', found end of input",
        ),
        ("params.a = (", "expected a value"),
        ("metrics.a == 1", "expected a value after '='"),
        (
            "params.a = 'x' params.b = 'y'",
            "expected AND, OR or the end of the filter",
        ),
        ("params.a = 'x';", "unexpected character ';' at position 15"),
        ("metrics.a ~ 1", "unexpected character '~'"),
        ("tags.my-tag = 'x'", "quoted with backticks"),
        (
            "params.a NOT LIKE 'x'",
            "expected IN after 'NOT', found 'LIKE'",
        ),
        ("params.a IS 'x'", "expected NULL or NOT NULL after 'IS'"),
        ("params.a IS NOT 'x'", "expected NULL after 'NOT'"),
        (
            "run_id IN 'a'",
            "expected a parenthesised list of quoted strings",
        ),
        (
            "run_id IN ()",
            "expected a non-empty list of quoted strings",
        ),
        ("run_id IN ('a', 1)", "expected a quoted string in the list"),
        ("run_id IN ('a',)", "expected a quoted string in the list"),
        ("run_id IN ('a' 'b')", "expected ',' or ')' in the list"),
        ("run_id IN ('a'", "expected ',' or ')' in the list"),
        ("metrics.a > 1.2.3", "invalid number '1.2.3'"),
        ("metrics.a > 1e", "invalid number '1e'"),
        ("metrics.a > 12abc", "invalid number '12abc'"),
        ("metrics.a > 1e999", "invalid number '1e999'"),
        ("metrics.a > -", "unexpected character '-'"),
        ("tags. = 'x'", "missing key in identifier 'tags.'"),
        ("tags.`` = 'x'", "missing key in identifier 'tags.``'"),
        ("'status' = 'x'", "expected an identifier, found ''status''"),
        ("5 = 5", "expected an identifier, found '5'"),
        ("NOT metrics.a > 1", "expected an identifier"),
    ];
    for (input, fragment) in cases {
        check_err(Runs, input, fragment);
        // Syntax errors quote the whole filter.
        check_err(Runs, input, &format!("Invalid filter '{input}': "));
    }
}

#[test]
fn semantic_errors_for_runs() {
    let cases = [
        (
            "metrics.acc > '0.5'",
            "Expected numeric value type for metric. Found '0.5'",
        ),
        (
            "params.lr = 0.01",
            "Parameter value is either not quoted or unidentified quote types used for \
             string value 0.01. Use either single or double quotes.",
        ),
        ("status = FINISHED", "used for string value FINISHED"),
        ("params.a = `x`", "used for string value `x`"),
        ("params.a = NULL", "used for string value NULL"),
        (
            "start_time > '5'",
            "Expected numeric value type for numeric attribute: start_time. Found '5'",
        ),
        (
            "xyz.a = 'b'",
            "Invalid entity type 'xyz'. Valid values are ['metric', 'metrics', 'parameter'",
        ),
        ("foo.bar = 'x'", "Invalid entity type 'foo'"),
        ("Metrics.a > 1", "Invalid entity type 'Metrics'"),
        (
            "foo = 'x'",
            "Invalid attribute key 'foo' specified. Valid keys are ['run_id', 'run_name'",
        ),
        ("attributes.name = 'x'", "Invalid attribute key 'name'"),
        ("`some name` = 'x'", "Invalid attribute key 'some name'"),
        (
            "attributes.status IN ('FINISHED','RUNNING')",
            "Only the 'run_id' attribute supports comparison with a list of quoted string values",
        ),
        (
            "run_name NOT IN ('a')",
            "Only the 'run_id' attribute supports",
        ),
        (
            "metrics.a LIKE '1'",
            "Invalid comparator 'LIKE' for metric 'a'. Valid comparators are ['>', '>='",
        ),
        (
            "metrics.a IN ('1')",
            "Invalid comparator 'IN' for metric 'a'",
        ),
        (
            "metrics.a IS NULL",
            "Invalid comparator 'IS NULL' for metric 'a'",
        ),
        ("params.a > '1'", "Invalid comparator '>' for parameter 'a'"),
        ("tags.a IN ('1')", "Invalid comparator 'IN' for tag 'a'"),
        (
            "start_time LIKE '1%'",
            "Invalid comparator 'LIKE' for attribute 'start_time'",
        ),
        (
            "status IS NULL",
            "Invalid comparator 'IS NULL' for attribute 'status'",
        ),
        (
            "datasets.foo = 'x'",
            "Invalid dataset key 'foo' specified. Valid keys are ['name', 'digest', 'context']",
        ),
        (
            "datasets.name > 'x'",
            "Invalid comparator '>' for dataset 'name'",
        ),
        // Errors in later clauses are found too.
        (
            "metrics.a > 1 AND (params.b = 'x' OR tags.c = 3)",
            "used for string value 3",
        ),
    ];
    for (input, fragment) in cases {
        check_err(Runs, input, fragment);
    }
}

#[test]
fn semantic_errors_for_other_kinds() {
    let cases = [
        (
            Experiments,
            "metrics.a > 1",
            "Invalid entity type 'metrics'",
        ),
        (
            Experiments,
            "params.a = 'x'",
            "Invalid entity type 'params'",
        ),
        (
            Experiments,
            "run_id = 'x'",
            "Invalid attribute key 'run_id'",
        ),
        (
            Experiments,
            "experiment_id LIKE '1%'",
            "Invalid comparator 'LIKE'",
        ),
        (
            Experiments,
            "name IN ('a')",
            "Only the 'experiment_id' attribute supports",
        ),
        (
            Experiments,
            "tags.a IS NULL",
            "Invalid comparator 'IS NULL' for tag 'a'",
        ),
        (
            Experiments,
            "creation_time > 'x'",
            "Expected numeric value type",
        ),
        (
            RegisteredModels,
            "attr.name = 'x'",
            "Invalid entity type 'attr'",
        ),
        (
            RegisteredModels,
            "creation_timestamp > 1",
            "Invalid attribute key 'creation_timestamp' specified. Valid keys are ['name']",
        ),
        (RegisteredModels, "name = 1", "not quoted"),
        (
            RegisteredModels,
            "tags.a IN ('x')",
            "Invalid comparator 'IN' for tag 'a'",
        ),
        (
            ModelVersions,
            "version_number = 1.5",
            "Expected an integer value for attribute 'version_number'. Found 1.5",
        ),
        (
            ModelVersions,
            "version_number = 1e3",
            "Expected an integer value",
        ),
        (
            ModelVersions,
            "version_number = '1'",
            "Expected numeric value type for numeric attribute: version_number",
        ),
        (
            ModelVersions,
            "source_path IN ('a')",
            "Only the attributes ['name', 'run_id'] support comparison with a list",
        ),
        (
            ModelVersions,
            "metrics.a > 1",
            "Invalid entity type 'metrics'",
        ),
        (
            LoggedModels,
            "datasets.name = 'x'",
            "Invalid entity type 'datasets'",
        ),
        (
            LoggedModels,
            "parameter.lr = 'x'",
            "Invalid entity type 'parameter'",
        ),
        (
            LoggedModels,
            "params.x IS NULL",
            "Invalid comparator 'IS NULL'",
        ),
        (
            LoggedModels,
            "run_id = 'x'",
            "Invalid attribute key 'run_id'",
        ),
        (
            LoggedModels,
            "creation_timestamp LIKE 'x'",
            "Invalid comparator 'LIKE'",
        ),
    ];
    for (kind, input, fragment) in cases {
        check_err(kind, input, fragment);
    }
}

#[test]
fn deep_nesting_is_rejected_not_overflowed() {
    let ok = format!("{}metrics.a > 1{}", "(".repeat(64), ")".repeat(64));
    check(Runs, &ok, metric("a", C::Gt, 1.0));
    let deep = format!(
        "{}metrics.a > 1{}",
        "(".repeat(100_000),
        ")".repeat(100_000)
    );
    check_err(Runs, &deep, "parentheses nested deeper than 64 levels");
}

/// Every truncation of valid inputs, and some noise, must produce an `Ok` or
/// an `Err`, never a panic (multi-byte characters included).
#[test]
fn truncated_input_never_panics() {
    let inputs = [
        "metrics.acc > -1.5e-3 and params.lr = 'it''s' OR (tags.`a``b` IS NOT NULL)",
        "run_id NOT IN ('a', \"b\") AND `Run Name` LIKE 'x%' AND start_time <> 5",
        "tags.ключ = 'значение' AND datasets.name IN ('ü')",
        "name LIKE 'compat-flow%' AND tag.`mlflow.prompt.is_prompt` != 'true'",
        "metrics.`f1 score` DESC",
        "\u{0}\u{7f}!<>=,.+-`'\"",
    ];
    let kinds = [
        Runs,
        Experiments,
        RegisteredModels,
        ModelVersions,
        LoggedModels,
    ];
    for input in inputs {
        for (end, _) in input.char_indices().chain([(input.len(), ' ')]) {
            let prefix = &input[..end];
            for kind in kinds {
                let _ = parse_filter(kind, prefix);
                let _ = parse_order_by(kind, prefix);
            }
        }
    }
}

// --- order_by ---------------------------------------------------------------

#[test]
fn order_by_accepted() {
    use Entity::{Attribute, Metric, Param, Tag};
    let cases = [
        (Runs, "metrics.acc DESC", Metric, "acc", false),
        (Runs, "metric.acc asc", Metric, "acc", true),
        (Runs, "params.lr", Param, "lr", true),
        (
            Runs,
            "tags.`mlflow.runName` desc",
            Tag,
            "mlflow.runName",
            false,
        ),
        (Runs, "tags.mlflow.runName", Tag, "mlflow.runName", true),
        (Runs, "metrics.`f1 score` DESC", Metric, "f1 score", false),
        (Runs, "start_time DESC", Attribute, "start_time", false),
        (Runs, "attributes.created", Attribute, "start_time", true),
        (Runs, "`Run Name` desc", Attribute, "run_name", false),
        (Runs, "\"run name\"", Attribute, "run_name", true),
        (Runs, "run_id", Attribute, "run_id", true),
        (Runs, "attr.end_time ASC", Attribute, "end_time", true),
        (Runs, "  status   DESC  ", Attribute, "status", false),
        (Experiments, "name", Attribute, "name", true),
        (
            Experiments,
            "experiment_id DESC",
            Attribute,
            "experiment_id",
            false,
        ),
        (
            Experiments,
            "attribute.creation_time",
            Attribute,
            "creation_time",
            true,
        ),
        (
            Experiments,
            "last_update_time desc",
            Attribute,
            "last_update_time",
            false,
        ),
        (RegisteredModels, "name ASC", Attribute, "name", true),
        (
            RegisteredModels,
            "timestamp DESC",
            Attribute,
            "last_updated_timestamp",
            false,
        ),
        (
            RegisteredModels,
            "last_updated_timestamp",
            Attribute,
            "last_updated_timestamp",
            true,
        ),
        (ModelVersions, "name", Attribute, "name", true),
        (
            ModelVersions,
            "version_number DESC",
            Attribute,
            "version_number",
            false,
        ),
        (
            ModelVersions,
            "creation_timestamp",
            Attribute,
            "creation_timestamp",
            true,
        ),
        (
            ModelVersions,
            "last_updated_timestamp desc",
            Attribute,
            "last_updated_timestamp",
            false,
        ),
        (LoggedModels, "name", Attribute, "name", true),
        (LoggedModels, "model_id DESC", Attribute, "model_id", false),
        (
            LoggedModels,
            "creation_timestamp",
            Attribute,
            "creation_timestamp",
            true,
        ),
        (
            LoggedModels,
            "last_updated_timestamp",
            Attribute,
            "last_updated_timestamp",
            true,
        ),
        (LoggedModels, "metrics.acc DESC", Metric, "acc", false),
    ];
    for (kind, input, entity, key, ascending) in cases {
        check_order(kind, input, entity, key, ascending);
    }
}

#[test]
fn order_by_rejected() {
    let cases = [
        (Runs, "", "expected an identifier, found end of input"),
        (
            Runs,
            "foo",
            "valid keys are 'metrics.<key>', 'params.<key>', 'tags.<key>' or one of the \
             attributes ['run_id'",
        ),
        (Runs, "attributes.lifecycle_stage", "valid keys are"),
        (Runs, "datasets.name", "valid keys are"),
        (Runs, "xyz.a", "invalid entity type 'xyz'"),
        (
            Runs,
            "metrics.acc up",
            "expected ASC, DESC or the end of the clause after 'metrics.acc', found 'up'",
        ),
        (Runs, "metrics.acc DESC extra", "found 'extra'"),
        (Runs, "metrics.acc DESC, params.b", "found ','"),
        (Runs, "metrics.acc > 1", "found '>'"),
        (Runs, "'start_time'", "expected an identifier"),
        (
            Experiments,
            "tags.x",
            "valid keys are ['name', 'experiment_id'",
        ),
        (Experiments, "foo", "valid keys are"),
        (
            RegisteredModels,
            "creation_timestamp",
            "valid keys are ['name', 'timestamp', 'last_updated_timestamp']",
        ),
        (RegisteredModels, "tags.x DESC", "valid keys are"),
        (
            ModelVersions,
            "run_id",
            "valid keys are ['name', 'version_number'",
        ),
        (
            LoggedModels,
            "params.x",
            "valid keys are 'metrics.<key>' or one of the attributes",
        ),
        (LoggedModels, "status", "valid keys are"),
    ];
    for (kind, input, fragment) in cases {
        check_order_err(kind, input, fragment);
        check_order_err(kind, input, &format!("Invalid order_by clause '{input}': "));
    }
}
