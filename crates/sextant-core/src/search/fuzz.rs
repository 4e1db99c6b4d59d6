//! Bounded fuzzing of the search grammar: whatever a client sends as a
//! filter or an `order_by` clause, parsing answers `Ok` or a
//! `SearchError`, never a panic (run by `cargo test`, a few thousand
//! inputs a run).

use proptest::prelude::*;

use super::{parse_filter, parse_order_by, SearchKind};

const KINDS: [SearchKind; 5] = [
    SearchKind::Runs,
    SearchKind::Experiments,
    SearchKind::RegisteredModels,
    SearchKind::ModelVersions,
    SearchKind::LoggedModels,
];

/// Pieces of the grammar, so generated filters reach deep into the parser
/// rather than failing at the first character.
fn token() -> impl Strategy<Value = String> {
    prop_oneof![
        Just("metrics.acc".to_string()),
        Just("params.lr".to_string()),
        Just("tags.\"a b\"".to_string()),
        Just("attributes.run_id".to_string()),
        Just("attribute.start_time".to_string()),
        Just("datasets.name".to_string()),
        Just("name".to_string()),
        Just("`mlflow.user`".to_string()),
        Just("=".to_string()),
        Just("!=".to_string()),
        Just(">=".to_string()),
        Just("<".to_string()),
        Just("LIKE".to_string()),
        Just("ILIKE".to_string()),
        Just("IN".to_string()),
        Just("NOT IN".to_string()),
        Just("IS NULL".to_string()),
        Just("IS NOT NULL".to_string()),
        Just("AND".to_string()),
        Just("OR".to_string()),
        Just("(".to_string()),
        Just(")".to_string()),
        Just(",".to_string()),
        Just("'x'".to_string()),
        Just("'".to_string()),
        Just("\"".to_string()),
        Just("0.5".to_string()),
        Just("-1e309".to_string()),
        Just("DESC".to_string()),
        "[a-z._]{1,8}",
        any::<char>().prop_map(String::from),
    ]
}

fn filter_text() -> impl Strategy<Value = String> {
    prop_oneof![
        proptest::collection::vec(token(), 0..40).prop_map(|tokens| tokens.join(" ")),
        proptest::collection::vec(token(), 0..40).prop_map(|tokens| tokens.concat()),
        any::<String>(),
    ]
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 3000, failure_persistence: None, ..ProptestConfig::default() })]

    #[test]
    fn the_search_grammar_never_panics(text in filter_text()) {
        for kind in KINDS {
            let _ = parse_filter(kind, &text);
            let _ = parse_order_by(kind, &text);
        }
    }
}
