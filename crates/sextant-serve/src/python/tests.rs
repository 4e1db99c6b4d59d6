//! Unit tests of the pure parts: frames, tensor encoding, signatures,
//! layouts. The processes themselves are tested in `tests/it/python.rs`.

use std::io::Cursor;
use std::time::Duration;

use serde_json::{json, Value};

use crate::error::Error;
use crate::python::env::env_key;
use crate::python::lines::read_line_capped;
use crate::python::protocol::{
    decode_message, decode_outputs, encode_predict, read_frame, write_frame, FrameError,
    InputLayout, WorkerMessage,
};
use crate::python::signature::{SchemaForm, Signature};
use crate::python::{default_layout, format_duration};
use crate::tensor::{DataType, NamedTensor, Tensor, TensorData, TensorSpec};

fn tensor(name: &str, dtype: DataType, shape: Vec<usize>, data: TensorData) -> NamedTensor {
    NamedTensor::new(
        name,
        Tensor::new(dtype, shape, data).expect("consistent test tensor"),
    )
}

fn column_f64(name: &str, values: &[f64]) -> NamedTensor {
    NamedTensor::new(name, Tensor::column(TensorData::F64(values.to_vec())))
}

fn header_json(header: &[u8]) -> Value {
    serde_json::from_slice(header).expect("header is JSON")
}

#[test]
fn predict_frames_lay_out_every_dtype_as_numpy_reads_it() {
    let inputs = [
        tensor(
            "small",
            DataType::I8,
            vec![3],
            TensorData::I64(vec![-1, 0, 127]),
        ),
        tensor(
            "count",
            DataType::U32,
            vec![2],
            TensorData::I64(vec![0, 4_000_000_000]),
        ),
        tensor(
            "flag",
            DataType::Bool,
            vec![3],
            TensorData::Bool(vec![true, false, true]),
        ),
        tensor("half", DataType::F16, vec![1], TensorData::F32(vec![0.5])),
        tensor(
            "label",
            DataType::Bytes,
            vec![2],
            TensorData::Str(vec!["a".into(), "é".into()]),
        ),
        tensor(
            "x",
            DataType::F64,
            vec![2],
            TensorData::F64(vec![1.5, -2.0]),
        ),
    ];
    let frame = encode_predict(7, InputLayout::TensorDict, &inputs).expect("encodes");
    let header = header_json(&frame.header);
    assert_eq!(header["type"], "predict");
    assert_eq!(header["id"], 7);
    assert_eq!(header["layout"], "tensor_dict");
    let described = header["inputs"].as_array().expect("inputs list");
    let expected: [(&str, &str, Option<Vec<u8>>); 6] = [
        ("small", "int8", Some(vec![0xff, 0x00, 0x7f])),
        (
            "count",
            "uint32",
            Some([0u32.to_le_bytes(), 4_000_000_000u32.to_le_bytes()].concat()),
        ),
        ("flag", "bool", Some(vec![1, 0, 1])),
        // FP16 travels as float32.
        ("half", "float16", Some(0.5f32.to_le_bytes().to_vec())),
        ("label", "str", None),
        (
            "x",
            "float64",
            Some([1.5f64.to_le_bytes(), (-2.0f64).to_le_bytes()].concat()),
        ),
    ];
    for (desc, (name, dtype, bytes)) in described.iter().zip(expected) {
        assert_eq!(desc["name"], name);
        assert_eq!(desc["dtype"], dtype, "{name}");
        match bytes {
            Some(bytes) => {
                let offset = desc["offset"].as_u64().expect("offset") as usize;
                let nbytes = desc["nbytes"].as_u64().expect("nbytes") as usize;
                assert_eq!(offset % 8, 0, "{name} is aligned");
                assert_eq!(&frame.body[offset..offset + nbytes], &bytes[..], "{name}");
            }
            None => assert_eq!(desc["values"], json!(["a", "é"])),
        }
    }
}

#[test]
fn bad_requests_are_input_errors() {
    let ok_column = column_f64("x", &[1.0, 2.0]);
    let check = |layout: InputLayout, inputs: Vec<NamedTensor>, expected: &str| match encode_predict(
        1, layout, &inputs,
    ) {
        Err(Error::Input(message)) => {
            assert!(message.contains(expected), "{message:?} lacks {expected:?}")
        }
        other => panic!("expected an input error with {expected:?}, got {other:?}"),
    };
    check(
        InputLayout::TensorDict,
        vec![tensor(
            "b",
            DataType::I8,
            vec![1],
            TensorData::I64(vec![300]),
        )],
        "300 does not fit INT8",
    );
    check(
        InputLayout::TensorDict,
        vec![tensor(
            "b",
            DataType::I32,
            vec![1],
            TensorData::F64(vec![1.0]),
        )],
        "declared INT32 but holds FP64",
    );
    check(
        InputLayout::Dataframe,
        vec![NamedTensor::new(
            "m",
            Tensor::f64_matrix(1, 2, vec![1.0, 2.0]),
        )],
        "must be 1-D",
    );
    check(
        InputLayout::Dataframe,
        vec![ok_column.clone(), column_f64("y", &[1.0])],
        "different lengths",
    );
    check(
        InputLayout::TensorDict,
        vec![ok_column.clone(), ok_column.clone()],
        "more than once",
    );
    check(
        InputLayout::Array,
        vec![ok_column.clone(), column_f64("y", &[1.0, 2.0])],
        "one array",
    );
    let mut inconsistent = ok_column;
    inconsistent.tensor.shape = vec![3];
    check(
        InputLayout::Array,
        vec![inconsistent],
        "has 2 elements but shape [3]",
    );
}

#[test]
fn frames_round_trip_and_damage_is_reported() {
    let mut pipe = Vec::new();
    write_frame(&mut pipe, br#"{"type":"x"}"#, &[1, 2, 3]).expect("writes");
    write_frame(&mut pipe, b"{}", &[]).expect("writes");
    let mut reader = Cursor::new(pipe.clone());
    let first = read_frame(&mut reader).expect("first frame");
    assert_eq!(
        (first.header.as_slice(), first.body.as_slice()),
        (&br#"{"type":"x"}"#[..], &[1u8, 2, 3][..])
    );
    let second = read_frame(&mut reader).expect("second frame");
    assert_eq!(second.header, b"{}");
    assert!(matches!(read_frame(&mut reader), Err(FrameError::Closed)));

    let truncated = &pipe[..pipe.len() - 1];
    let mut reader = Cursor::new(truncated);
    read_frame(&mut reader).expect("first frame is whole");
    assert!(matches!(
        read_frame(&mut reader),
        Err(FrameError::Truncated)
    ));

    let mut stray = b"hello from print\n".to_vec();
    stray.extend_from_slice(&pipe);
    let error = read_frame(&mut Cursor::new(stray)).expect_err("not a frame");
    assert!(error.to_string().contains("hello from print"), "{error}");

    let mut huge = b"SXPW".to_vec();
    huge.extend_from_slice(&2u32.to_le_bytes());
    huge.extend_from_slice(&u64::MAX.to_le_bytes());
    assert!(matches!(
        read_frame(&mut Cursor::new(huge)),
        Err(FrameError::TooLarge { .. })
    ));
}

fn decode_result(header: Value, body: &[u8]) -> Result<Vec<NamedTensor>, String> {
    let header = serde_json::to_vec(&header).expect("json");
    match decode_message(&header)? {
        WorkerMessage::Result { outputs, .. } => decode_outputs(outputs, body),
        other => panic!("not a result: {other:?}"),
    }
}

#[test]
fn results_decode_into_tensors() {
    let mut body = vec![0xfeu8, 0x01, 0, 0, 0, 0, 0, 0];
    body.extend_from_slice(&1.25f32.to_le_bytes());
    body.extend_from_slice(&[0; 4]);
    body.extend_from_slice(&[1, 0]);
    let outputs = decode_result(
        json!({"type": "result", "id": 1, "outputs": [
            {"name": "i", "dtype": "int8", "shape": [2], "offset": 0, "nbytes": 2},
            {"name": "h", "dtype": "float16", "shape": [1, 1], "offset": 8, "nbytes": 4},
            {"name": "b", "dtype": "bool", "shape": [2], "offset": 16, "nbytes": 2},
            {"name": "s", "dtype": "str", "shape": [1], "values": ["x"]},
        ]}),
        &body,
    )
    .expect("decodes");
    let expected = [
        tensor("i", DataType::I8, vec![2], TensorData::I64(vec![-2, 1])),
        tensor("h", DataType::F16, vec![1, 1], TensorData::F32(vec![1.25])),
        tensor(
            "b",
            DataType::Bool,
            vec![2],
            TensorData::Bool(vec![true, false]),
        ),
        tensor(
            "s",
            DataType::Bytes,
            vec![1],
            TensorData::Str(vec!["x".into()]),
        ),
    ];
    assert_eq!(outputs, expected);
}

#[test]
fn inconsistent_results_are_rejected() {
    let check = |output: Value, body: &[u8], expected: &str| {
        let header = json!({"type": "result", "id": 1, "outputs": [output]});
        match decode_result(header, body) {
            Err(message) => assert!(message.contains(expected), "{message:?} lacks {expected:?}"),
            Ok(outputs) => panic!("expected {expected:?}, decoded {outputs:?}"),
        }
    };
    let word = [0u8; 8];
    check(
        json!({"name": "a", "dtype": "float64", "shape": [2], "offset": 0, "nbytes": 16}),
        &word,
        "outside the body",
    );
    check(
        json!({"name": "a", "dtype": "float64", "shape": [2], "offset": 0, "nbytes": 8}),
        &word,
        "disagrees",
    );
    check(
        json!({"name": "a", "dtype": "int32", "shape": [1], "offset": 0, "nbytes": 3}),
        &word,
        "whole number",
    );
    check(
        json!({"name": "a", "dtype": "bool", "shape": [1], "offset": 0, "nbytes": 1}),
        &[2],
        "byte 2",
    );
    check(
        json!({"name": "a", "dtype": "uint64", "shape": [1], "offset": 0, "nbytes": 8}),
        &[0xff; 8],
        "beyond the INT64",
    );
    check(
        json!({"name": "a", "dtype": "complex128", "shape": [1], "offset": 0, "nbytes": 8}),
        &word,
        "unknown dtype",
    );
    check(
        json!({"name": "a", "dtype": "str", "shape": [1]}),
        &word,
        "without values",
    );
    assert!(decode_message(b"not json").is_err());
}

#[test]
fn column_signatures_describe_dataframe_models() {
    let signature = Signature::from_ready(Some(&json!({
        "inputs": [
            {"type": "double", "name": "x", "required": true},
            {"type": "string", "name": "tag", "required": true},
        ],
        "outputs": [{"type": "long", "required": true}],
    })));
    assert_eq!(signature.input_form, Some(SchemaForm::Columns));
    assert_eq!(
        signature.inputs,
        [
            TensorSpec::new("x", DataType::F64, vec![-1]),
            TensorSpec::new("tag", DataType::Bytes, vec![-1]),
        ]
    );
    assert_eq!(
        signature.outputs,
        [TensorSpec::new("predictions", DataType::I64, vec![-1])]
    );
    assert!(!signature.single_unnamed_tensor_input);
}

#[test]
fn tensor_signatures_describe_array_models() {
    let signature = Signature::from_ready(Some(&json!({
        "inputs": [{"type": "tensor", "tensor-spec": {"dtype": "float32", "shape": [-1, 3]}}],
        "outputs": null,
    })));
    assert_eq!(signature.input_form, Some(SchemaForm::Tensors));
    assert_eq!(
        signature.inputs,
        [TensorSpec::new("", DataType::F32, vec![-1, 3])]
    );
    assert!(signature.outputs.is_empty());
    assert!(signature.single_unnamed_tensor_input);

    // A type with no tensor equivalent leaves the specs out, not the form.
    let signature = Signature::from_ready(Some(&json!({
        "inputs": [{"type": "array", "items": {"type": "string"}, "name": "tokens"}],
    })));
    assert_eq!(signature.input_form, Some(SchemaForm::Columns));
    assert!(signature.inputs.is_empty());

    assert_eq!(Signature::from_ready(None).input_form, None);
}

#[test]
fn layouts_follow_the_signature_and_the_shapes() {
    let columns =
        Signature::from_ready(Some(&json!({"inputs": [{"type": "double", "name": "x"}]})));
    let unnamed_tensor = Signature::from_ready(Some(&json!({
        "inputs": [{"type": "tensor", "tensor-spec": {"dtype": "float64", "shape": [-1, 2]}}],
    })));
    let named_tensor = Signature::from_ready(Some(&json!({
        "inputs": [{"type": "tensor", "name": "a", "tensor-spec": {"dtype": "float64", "shape": [-1]}}],
    })));
    let none = Signature::from_ready(None);
    let matrix = NamedTensor::new("m", Tensor::f64_matrix(2, 2, vec![0.0; 4]));
    let x = column_f64("x", &[1.0, 2.0]);
    let short = column_f64("y", &[1.0]);
    let cases = [
        (&columns, vec![x.clone()], InputLayout::Dataframe),
        (&columns, vec![matrix.clone()], InputLayout::Array),
        (&none, vec![x.clone(), x.clone()], InputLayout::Dataframe),
        (&none, vec![x.clone(), short], InputLayout::TensorDict),
        (
            &none,
            vec![matrix.clone(), x.clone()],
            InputLayout::TensorDict,
        ),
        (&unnamed_tensor, vec![matrix.clone()], InputLayout::Array),
        (&named_tensor, vec![x.clone()], InputLayout::TensorDict),
    ];
    for (idx, (signature, inputs, expected)) in cases.into_iter().enumerate() {
        assert_eq!(default_layout(signature, &inputs), expected, "case {idx}");
    }
}

#[test]
fn durations_read_naturally() {
    assert_eq!(format_duration(Duration::from_secs(30)), "30 s");
    assert_eq!(format_duration(Duration::from_millis(1500)), "1.5 s");
    assert_eq!(format_duration(Duration::from_millis(250)), "0.25 s");
}

#[cfg(unix)]
#[test]
fn exit_statuses_name_their_signal() {
    use std::os::unix::process::ExitStatusExt;
    use std::process::ExitStatus;

    use crate::python::worker::describe_exit;

    assert_eq!(
        describe_exit(Some(ExitStatus::from_raw(3 << 8))),
        "exited with status 3"
    );
    assert_eq!(
        describe_exit(Some(ExitStatus::from_raw(9))),
        "exited with signal 9 (SIGKILL, perhaps from the out-of-memory killer)"
    );
    assert_eq!(
        describe_exit(Some(ExitStatus::from_raw(11))),
        "exited with signal 11 (SIGSEGV)"
    );
}

#[test]
fn long_lines_are_cut_but_consumed() {
    let text = format!("{}\nnext\nlast", "x".repeat(50));
    let mut reader = std::io::BufReader::with_capacity(8, text.as_bytes());
    let mut line = Vec::new();
    assert_eq!(
        read_line_capped(&mut reader, &mut line, 10).expect("reads"),
        51
    );
    assert_eq!(line, b"xxxxxxxxxx");
    line.clear();
    read_line_capped(&mut reader, &mut line, 10).expect("reads");
    assert_eq!(line, b"next\n");
    line.clear();
    assert_eq!(
        read_line_capped(&mut reader, &mut line, 10).expect("reads"),
        4
    );
    assert_eq!(line, b"last");
    line.clear();
    assert_eq!(
        read_line_capped(&mut reader, &mut line, 10).expect("reads"),
        0
    );
}

#[test]
fn env_keys_change_with_every_input_and_only_then() {
    let python = std::path::Path::new("/usr/bin/python3");
    let key = env_key(python, Some("3.11.7"), b"six==1.17.0\n");
    assert_eq!(key.len(), 32);
    assert!(key.bytes().all(|byte| byte.is_ascii_hexdigit()));
    assert_eq!(env_key(python, Some("3.11.7"), b"six==1.17.0\n"), key);
    let others = [
        env_key(
            std::path::Path::new("/opt/python3"),
            Some("3.11.7"),
            b"six==1.17.0\n",
        ),
        env_key(python, Some("3.12.1"), b"six==1.17.0\n"),
        env_key(python, None, b"six==1.17.0\n"),
        env_key(python, Some("3.11.7"), b"six==1.16.0\n"),
        // The separator keeps field boundaries: moving bytes between the
        // version and the requirements changes the key.
        env_key(python, Some("3.11.7s"), b"ix==1.17.0\n"),
    ];
    for other in others {
        assert_ne!(other, key);
    }
}
