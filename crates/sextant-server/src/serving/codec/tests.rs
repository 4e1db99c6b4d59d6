use super::*;
use sextant_api::inference::OipInferenceRequest;

fn oip(json: &str) -> Result<Vec<NamedTensor>> {
    let request: OipInferenceRequest = serde_json::from_str(json).unwrap();
    oip_inputs(request.inputs, &[])
}

fn message<T: std::fmt::Debug>(result: Result<T>) -> String {
    result.unwrap_err().0
}

#[test]
fn oip_inputs_take_their_declared_type() {
    let tensors = oip(r#"{"inputs": [{"name": "x", "shape": [2, 2], "datatype": "FP32", "data": [[1, 2], [3, 4.5]]},
                                     {"name": "n", "shape": [2], "datatype": "INT64", "data": [1, 2.0]},
                                     {"name": "s", "shape": [2], "datatype": "BYTES", "data": ["a", "b"]}]}"#)
    .unwrap();
    assert_eq!(
        tensors[0].tensor.data,
        TensorData::F32(vec![1.0, 2.0, 3.0, 4.5])
    );
    assert_eq!(tensors[0].tensor.shape, vec![2, 2]);
    assert_eq!(tensors[1].tensor.data, TensorData::I64(vec![1, 2]));
    assert_eq!(tensors[2].tensor.dtype, DataType::Bytes);
}

#[test]
fn oip_inputs_that_do_not_fit_are_named() {
    for (json, needle) in [
        (
            r#"{"inputs": [{"name": "x", "shape": [3], "datatype": "FP32", "data": [1, 2]}]}"#,
            "needs 3 elements, the data has 2",
        ),
        (
            r#"{"inputs": [{"name": "x", "shape": [1], "datatype": "FLOAT", "data": [1]}]}"#,
            "unknown datatype 'FLOAT'",
        ),
        (
            r#"{"inputs": [{"name": "x", "shape": [1], "datatype": "INT64", "data": [1.5]}]}"#,
            "1.5 is not a valid value",
        ),
        (
            r#"{"inputs": [{"name": "x", "shape": [1], "datatype": "UINT8", "data": [300]}]}"#,
            "300 does not fit UINT8",
        ),
        (
            r#"{"inputs": [{"name": "x", "shape": [1], "datatype": "FP64", "data": ["a"]}]}"#,
            "holds strings",
        ),
        (
            r#"{"inputs": [{"name": "x", "shape": [-1], "datatype": "FP64", "data": [1]}]}"#,
            "negative",
        ),
        (r#"{"inputs": []}"#, "no inputs"),
    ] {
        let got = message(oip(json));
        assert!(got.contains(needle), "{json}: {got}");
    }
}

#[test]
fn dataframe_payloads_become_columns() {
    let (tensors, layout) =
        scoring_json(br#"{"dataframe_split": {"columns": ["a", "b", "c"], "data": [[1, "x", true], [null, "y", false]]}}"#).unwrap();
    assert_eq!(layout, Layout::Columns);
    let TensorData::F64(a) = &tensors[0].tensor.data else {
        panic!("a null makes the column float")
    };
    assert!(a[0] == 1.0 && a[1].is_nan());
    assert_eq!(
        tensors[1].tensor.data,
        TensorData::Str(vec!["x".into(), "y".into()])
    );
    assert_eq!(tensors[2].tensor.data, TensorData::Bool(vec![true, false]));
    let (tensors, _) =
        scoring_json(br#"{"dataframe_records": [{"a": 1, "b": 2}, {"b": 3, "c": 4}]}"#).unwrap();
    let names: Vec<&str> = tensors.iter().map(|t| t.name.as_str()).collect();
    assert_eq!(names, vec!["a", "b", "c"]);
    assert_eq!(tensors[1].tensor.data, TensorData::I64(vec![2, 3]));
}

#[test]
fn tensor_payloads_keep_their_shape() {
    let (tensors, layout) = scoring_json(br#"{"instances": [[1, 2, 3], [4, 5, 6]]}"#).unwrap();
    assert_eq!(
        (tensors[0].tensor.shape.clone(), layout),
        (vec![2, 3], Layout::Tensors)
    );
    let (tensors, layout) = scoring_json(br#"{"inputs": {"a": [1, 2], "b": [0.5, 1.5]}}"#).unwrap();
    assert_eq!((tensors.len(), layout), (2, Layout::Columns));
}

#[test]
fn malformed_scoring_payloads_say_what_is_expected() {
    for (body, needle) in [
        (
            &br#"{"data": [1]}"#[..],
            "dataframe_split, dataframe_records, instances or inputs",
        ),
        (br#"{"inputs": [1], "instances": [1]}"#, "exactly one"),
        (
            br#"{"dataframe_split": {"columns": ["a"], "data": [[1, 2]]}}"#,
            "row 0 has 2 values for 1 columns",
        ),
        (
            br#"{"dataframe_records": [{"a": 1}, {"a": "x"}]}"#,
            "mixes strings",
        ),
        (br#"not json"#, "invalid scoring request"),
    ] {
        let got = message(scoring_json(body));
        assert!(
            got.contains(needle),
            "{}: {got}",
            String::from_utf8_lossy(body)
        );
    }
}

#[test]
fn csv_bodies_read_like_pandas() {
    let tensors = scoring_csv(b"a,b,c\n1,2.5,x\n3,,y\n").unwrap();
    assert_eq!(tensors[0].tensor.data, TensorData::I64(vec![1, 3]));
    let TensorData::F64(b) = &tensors[1].tensor.data else {
        panic!()
    };
    assert!(b[0] == 2.5 && b[1].is_nan());
    assert!(message(scoring_csv(b"a,b\n1,2\n1,2,3\n")).contains("3 fields"));
    // pandas' implicit index (`pd.read_csv(io.StringIO("a,b\n7,1,2\n8,3\n"))` has
    // a = [1, 3], b = [2, NaN], index [7, 8]): the leading field is not a column.
    let indexed = scoring_csv(b"a,b\n7,1,2\n8,3\n").unwrap();
    assert_eq!(indexed.len(), 2);
    assert_eq!(indexed[0].tensor.data, TensorData::I64(vec![1, 3]));
    let TensorData::F64(b) = &indexed[1].tensor.data else {
        panic!("{:?}", indexed[1].tensor.data)
    };
    assert!(b[0] == 2.0 && b[1].is_nan());
    assert!(message(scoring_csv(b"a,b\n7,1,2\n8,3,4,5\n")).contains("4 fields"));
    // A TSV file, as `sextant predict` reads one.
    let tabbed = scoring_delimited(b"a\tb\n1\tx y\n", b'\t').unwrap();
    assert_eq!(tabbed[0].tensor.data, TensorData::I64(vec![1]));
    // A short row is padded with missing values and a blank line skipped.
    let padded = scoring_csv(b"a,b\n1\n  \n2,4\n").unwrap();
    let TensorData::F64(b) = &padded[1].tensor.data else {
        panic!("{:?}", padded[1].tensor.data)
    };
    assert!(b.len() == 2 && b[0].is_nan() && b[1] == 4.0);
    assert!(message(scoring_csv(b"a,b\n")).contains("no data rows"));
    // `to_csv`'s unnamed index, a repeated name and pandas' missing spellings.
    let tensors = scoring_csv(b",a,a\n0,1,NA\n1,2,5\n").unwrap();
    let names: Vec<&str> = tensors.iter().map(|t| t.name.as_str()).collect();
    assert_eq!(names, ["Unnamed: 0", "a", "a.1"]);
    let TensorData::F64(repeated) = &tensors[2].tensor.data else {
        panic!("{:?}", tensors[2].tensor.data)
    };
    assert!(repeated[0].is_nan() && repeated[1] == 5.0);
}

#[test]
fn predictions_follow_mlflow_shapes() {
    let labels = NamedTensor::new("predict", Tensor::column(TensorData::I64(vec![0, 1])));
    let proba = NamedTensor::new(
        "predict_proba",
        Tensor::f64_matrix(2, 2, vec![0.9, 0.1, 0.2, 0.8]),
    );
    let outputs = vec![labels, proba];
    assert_eq!(
        mlflow_predictions(&outputs, 0, false),
        serde_json::json!([0, 1])
    );
    assert_eq!(
        mlflow_predictions(&outputs, 1, false),
        serde_json::json!([[0.9, 0.1], [0.2, 0.8]])
    );
    let frame = vec![
        NamedTensor::new("y", Tensor::column(TensorData::F32(vec![0.9]))),
        NamedTensor::new("tag", Tensor::column(TensorData::Str(vec!["a".into()]))),
    ];
    assert_eq!(
        mlflow_predictions(&frame, 0, true),
        serde_json::json!([{"y": 0.9, "tag": "a"}])
    );
}

#[test]
fn binary_tensor_data_follows_the_json() {
    let request: OipInferenceRequest = serde_json::from_str(
        r#"{"inputs": [{"name": "x", "shape": [1, 2], "datatype": "FP32", "parameters": {"binary_data_size": 8}},
                       {"name": "s", "shape": [2], "datatype": "BYTES", "parameters": {"binary_data_size": 13}},
                       {"name": "n", "shape": [1], "datatype": "INT64", "data": [7]}]}"#,
    )
    .unwrap();
    let mut binary = Vec::new();
    binary.extend_from_slice(&1.5f32.to_le_bytes());
    binary.extend_from_slice(&(-2f32).to_le_bytes());
    for text in ["ab", "cde"] {
        binary.extend_from_slice(&(text.len() as u32).to_le_bytes());
        binary.extend_from_slice(text.as_bytes());
    }
    let tensors = oip_inputs(request.inputs, &binary).unwrap();
    assert_eq!(tensors[0].tensor.data, TensorData::F32(vec![1.5, -2.0]));
    assert_eq!(
        tensors[1].tensor.data,
        TensorData::Str(vec!["ab".into(), "cde".into()])
    );
    assert_eq!(tensors[2].tensor.data, TensorData::I64(vec![7]));
    // Sizes that do not add up are named.
    let short: OipInferenceRequest = serde_json::from_str(
        r#"{"inputs": [{"name": "x", "shape": [1, 3], "datatype": "FP32", "parameters": {"binary_data_size": 8}}]}"#,
    )
    .unwrap();
    assert!(message(oip_inputs(short.inputs, &binary[..8])).contains("take 12 bytes"));
    let beyond: OipInferenceRequest = serde_json::from_str(
        r#"{"inputs": [{"name": "x", "shape": [1, 2], "datatype": "FP32", "parameters": {"binary_data_size": 800}}]}"#,
    )
    .unwrap();
    assert!(message(oip_inputs(beyond.inputs, &binary)).contains("more than the"));
    let missing: OipInferenceRequest =
        serde_json::from_str(r#"{"inputs": [{"name": "x", "shape": [1], "datatype": "FP32"}]}"#)
            .unwrap();
    assert!(message(oip_inputs(missing.inputs, &[])).contains("no data"));
}

#[test]
fn half_floats_convert_both_ways() {
    for (bits, value) in [
        (0x3c00u16, 1.0f32),
        (0xc000, -2.0),
        (0x7bff, 65504.0),
        (0x0001, 2f32.powi(-24)),
        (0x0400, 2f32.powi(-14)),
        (0x7c00, f32::INFINITY),
    ] {
        assert_eq!(f16_to_f32(bits), value, "{bits:#06x}");
        assert_eq!(f32_to_f16(value), bits, "{value}");
    }
    // 0.1 rounds to the nearest half, 0x2e66 (0.0999755859375).
    assert_eq!(f32_to_f16(0.1), 0x2e66);
    assert!(f16_to_f32(0x7e00).is_nan());
    for x in [0.333f32, 1234.5, -0.00071, 3.0e-6] {
        let back = f16_to_f32(f32_to_f16(x));
        assert!(
            (back - x).abs() <= x.abs() * 2f32.powi(-11) + 2f32.powi(-25),
            "{x} -> {back}"
        );
    }
}
