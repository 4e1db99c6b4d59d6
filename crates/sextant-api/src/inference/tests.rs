use super::*;

fn data(json: &str) -> Result<TensorData, serde_json::Error> {
    serde_json::from_str(json)
}

#[test]
fn nested_and_flat_data_flatten_alike() {
    let nested = data("[[1, 2, 3], [4, 5, 6]]").unwrap();
    assert_eq!(nested.values, Values::Ints(vec![1, 2, 3, 4, 5, 6]));
    assert_eq!(nested.nested_shape, vec![2, 3]);
    let flat = data("[1, 2, 3, 4, 5, 6]").unwrap();
    assert_eq!(flat.values, nested.values);
    assert_eq!(flat.nested_shape, vec![6]);
}

#[test]
fn integers_widen_when_a_float_appears() {
    assert_eq!(
        data("[1, 2.5, 3]").unwrap().values,
        Values::Floats(vec![1.0, 2.5, 3.0])
    );
    assert_eq!(data("[1.5, null, \"NaN\"]").unwrap().values.len(), 3);
    let Values::Floats(v) = data("[0.5, null, \"Infinity\"]").unwrap().values else {
        panic!()
    };
    assert!(v[1].is_nan() && v[2] == f64::INFINITY);
}

#[test]
fn strings_and_booleans_keep_their_kind() {
    assert_eq!(
        data("[[\"a\"], [\"b\"]]").unwrap().values,
        Values::Strings(vec!["a".into(), "b".into()])
    );
    assert_eq!(
        data("[true, false]").unwrap().values,
        Values::Bools(vec![true, false])
    );
}

#[test]
fn mixtures_and_ragged_nesting_are_refused() {
    for (json, needle) in [
        ("[1, \"a\"]", "mixes numbers and strings"),
        ("[true, 1]", "mixes booleans and numbers"),
        ("[[1, 2], [3]]", "ragged"),
        ("[\"a\", null]", "null"),
        ("{\"a\": 1}", "a number, boolean"),
    ] {
        let err = data(json).unwrap_err().to_string();
        assert!(err.contains(needle), "{json}: {err}");
    }
}

#[test]
fn an_oip_request_parses() {
    let request: OipInferenceRequest = serde_json::from_str(
        r#"{"id": "42", "inputs": [{"name": "input-0", "shape": [2, 2], "datatype": "FP32", "data": [[1, 2], [3, 4.5]]}],
            "outputs": [{"name": "predict_proba"}]}"#,
    )
    .unwrap();
    assert_eq!(request.id.as_deref(), Some("42"));
    assert_eq!(
        request.inputs[0].data.as_ref().unwrap().values,
        Values::Floats(vec![1.0, 2.0, 3.0, 4.5])
    );
    assert_eq!(request.outputs.unwrap()[0].name, "predict_proba");
}

#[test]
fn scoring_payloads_parse() {
    let split: ScoringRequest = serde_json::from_str(
        r#"{"dataframe_split": {"columns": ["a", "b"], "data": [[1, "x"], [2.5, null]]}}"#,
    )
    .unwrap();
    let frame = split.dataframe_split.unwrap();
    assert_eq!(frame.data[1], vec![Cell::Float(2.5), Cell::Null]);
    let records: ScoringRequest =
        serde_json::from_str(r#"{"dataframe_records": [{"a": 1, "b": [1, 2]}]}"#).unwrap();
    assert_eq!(
        records.dataframe_records.unwrap()[0]["b"],
        Cell::Json("[1,2]".into())
    );
    let named: ScoringRequest =
        serde_json::from_str(r#"{"inputs": {"a": [1, 2], "b": [[1], [2]]}}"#).unwrap();
    let Some(TensorInput::Named(tensors)) = named.inputs else {
        panic!()
    };
    assert_eq!(tensors[1].1.nested_shape, vec![2, 1]);
    let single: ScoringRequest =
        serde_json::from_str(r#"{"instances": [[1, 2], [3, 4]]}"#).unwrap();
    assert!(matches!(single.instances, Some(TensorInput::Single(_))));
    let rows: ScoringRequest =
        serde_json::from_str(r#"{"instances": [{"a": 1}, {"a": 2}]}"#).unwrap();
    assert!(matches!(rows.instances, Some(TensorInput::Records(r)) if r.len() == 2));
    assert!(serde_json::from_str::<ScoringRequest>(r#"{"data": [1]}"#).is_err());
}
