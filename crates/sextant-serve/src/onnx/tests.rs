//! Unit tests of the interpreter on small graphs built here: the graph
//! compiler (folding, pruning, validation, opset checks), tensor decoding,
//! and operator semantics the fixtures do not pin down. The fixtures
//! (`tests/it/onnx.rs`) compare whole models with ONNX Runtime.

use prost::Message;

use crate::error::Error;
use crate::onnx::broadcast::{broadcast_binary, broadcast_shapes};
use crate::onnx::ops::numeric::erf;
use crate::onnx::ops::post_transform::{logistic, probit, softmax, softmax_zero};
use crate::onnx::proto::{self, attribute_type, data_type};
use crate::onnx::{load, OnnxModel};
use crate::runtime::ModelRuntime;
use crate::tensor::{DataType, NamedTensor, Tensor, TensorData};

// --- builders -------------------------------------------------------------------------------

fn value_info(name: &str, elem_type: i32, dims: &[i64]) -> proto::ValueInfoProto {
    use proto::tensor_shape_proto::{dimension, Dimension};
    let dim = dims
        .iter()
        .map(|&d| Dimension {
            value: Some(if d < 0 {
                dimension::Value::DimParam("n".into())
            } else {
                dimension::Value::DimValue(d)
            }),
        })
        .collect();
    proto::ValueInfoProto {
        name: Some(name.into()),
        r#type: Some(proto::TypeProto {
            value: Some(proto::type_proto::Value::TensorType(
                proto::type_proto::Tensor {
                    elem_type: Some(elem_type),
                    shape: Some(proto::TensorShapeProto { dim }),
                },
            )),
        }),
    }
}

fn floats(name: &str, dims: &[i64], values: &[f32]) -> proto::TensorProto {
    proto::TensorProto {
        name: Some(name.into()),
        dims: dims.to_vec(),
        data_type: Some(data_type::FLOAT),
        float_data: values.to_vec(),
        ..Default::default()
    }
}

fn ints(name: &str, dims: &[i64], values: &[i64]) -> proto::TensorProto {
    proto::TensorProto {
        name: Some(name.into()),
        dims: dims.to_vec(),
        data_type: Some(data_type::INT64),
        int64_data: values.to_vec(),
        ..Default::default()
    }
}

enum Attr<'a> {
    Int(i64),
    Ints(&'a [i64]),
    Float(f32),
    Str(&'a str),
    Tensor(Box<proto::TensorProto>),
}

fn node(
    op_type: &str,
    inputs: &[&str],
    outputs: &[&str],
    attributes: Vec<(&str, Attr<'_>)>,
) -> proto::NodeProto {
    let attribute = attributes
        .into_iter()
        .map(|(name, value)| {
            let mut a = proto::AttributeProto {
                name: Some(name.into()),
                ..Default::default()
            };
            match value {
                Attr::Int(i) => {
                    a.r#type = Some(attribute_type::INT);
                    a.i = Some(i);
                }
                Attr::Ints(v) => {
                    a.r#type = Some(attribute_type::INTS);
                    a.ints = v.to_vec();
                }
                Attr::Float(f) => {
                    a.r#type = Some(attribute_type::FLOAT);
                    a.f = Some(f);
                }
                Attr::Str(s) => {
                    a.r#type = Some(attribute_type::STRING);
                    a.s = Some(s.as_bytes().to_vec());
                }
                Attr::Tensor(t) => {
                    a.r#type = Some(attribute_type::TENSOR);
                    a.t = Some(*t);
                }
            }
            a
        })
        .collect();
    proto::NodeProto {
        input: inputs.iter().map(|s| s.to_string()).collect(),
        output: outputs.iter().map(|s| s.to_string()).collect(),
        name: Some(format!("{op_type}:{}", outputs.first().unwrap_or(&""))),
        op_type: Some(op_type.into()),
        domain: Some(String::new()),
        attribute,
    }
}

struct GraphBuilder {
    nodes: Vec<proto::NodeProto>,
    inputs: Vec<proto::ValueInfoProto>,
    outputs: Vec<proto::ValueInfoProto>,
    initializers: Vec<proto::TensorProto>,
    opset: i64,
    ir_version: i64,
}

impl GraphBuilder {
    fn new(opset: i64) -> GraphBuilder {
        GraphBuilder {
            nodes: Vec::new(),
            inputs: Vec::new(),
            outputs: Vec::new(),
            initializers: Vec::new(),
            opset,
            ir_version: 8,
        }
    }

    fn input(mut self, name: &str, elem_type: i32, dims: &[i64]) -> Self {
        self.inputs.push(value_info(name, elem_type, dims));
        self
    }

    fn output(mut self, name: &str, elem_type: i32, dims: &[i64]) -> Self {
        self.outputs.push(value_info(name, elem_type, dims));
        self
    }

    fn initializer(mut self, tensor: proto::TensorProto) -> Self {
        self.initializers.push(tensor);
        self
    }

    fn node(mut self, node: proto::NodeProto) -> Self {
        self.nodes.push(node);
        self
    }

    fn bytes(self) -> Vec<u8> {
        proto::ModelProto {
            ir_version: Some(self.ir_version),
            opset_import: vec![proto::OperatorSetIdProto {
                domain: Some(String::new()),
                version: Some(self.opset),
            }],
            graph: Some(proto::GraphProto {
                node: self.nodes,
                name: Some("test".into()),
                initializer: self.initializers,
                input: self.inputs,
                output: self.outputs,
                ..Default::default()
            }),
            ..Default::default()
        }
        .encode_to_vec()
    }

    fn load(self) -> crate::error::Result<OnnxModel> {
        load(&self.bytes())
    }
}

fn f32_input(name: &str, shape: &[usize], values: &[f32]) -> NamedTensor {
    NamedTensor::new(
        name,
        Tensor::new(
            DataType::F32,
            shape.to_vec(),
            TensorData::F32(values.to_vec()),
        )
        .unwrap(),
    )
}

fn run_one(model: &OnnxModel, inputs: &[NamedTensor]) -> Tensor {
    model.predict(inputs).expect("predict").remove(0).tensor
}

// --- shapes and numerics -------------------------------------------------------------------

#[test]
fn broadcasting_follows_numpy() {
    assert_eq!(
        broadcast_shapes(&[&[2, 1, 3], &[4, 1]]).unwrap(),
        vec![2, 4, 3]
    );
    assert_eq!(broadcast_shapes(&[&[], &[5]]).unwrap(), vec![5]);
    assert!(matches!(
        broadcast_shapes(&[&[2, 3], &[4]]),
        Err(Error::Input(_))
    ));

    let column = [10.0f32, 20.0];
    let row = [1.0f32, 2.0, 3.0];
    let (sum, shape) = broadcast_binary(&column, &[2, 1], &row, &[1, 3], |a, b| a + b).unwrap();
    assert_eq!(shape, vec![2, 3]);
    assert_eq!(sum, vec![11.0, 12.0, 13.0, 21.0, 22.0, 23.0]);
    let matrix = [1.0f32, 2.0, 3.0, 4.0, 5.0, 6.0];
    let (difference, _) = broadcast_binary(&matrix, &[2, 3], &row, &[3], |a, b| a - b).unwrap();
    assert_eq!(difference, vec![0.0, 0.0, 0.0, 3.0, 3.0, 3.0]);
}

#[test]
fn erf_matches_reference_values() {
    // Reference values from scipy.special.erf; the series loses a few
    // digits to cancellation near |x| = 3, hence 1e-13.
    let cases = [
        (0.0, 0.0),
        (0.1, 0.112_462_916_018_284_9),
        (0.5, 0.520_499_877_813_046_5),
        (1.0, 0.842_700_792_949_714_9),
        (-1.5, -0.966_105_146_475_310_7),
        (2.0, 0.995_322_265_018_952_7),
        (2.999, 0.999_977_769_831_400_2),
        (3.5, 0.999_999_256_901_627_7),
        (5.0, 0.999_999_999_998_462_6),
        (7.0, 1.0),
    ];
    for (x, expected) in cases {
        let got = erf(x);
        assert!(
            (got - expected).abs() <= 1e-13,
            "erf({x}) = {got}, expected {expected}"
        );
    }
    assert!(erf(f64::NAN).is_nan());
}

#[test]
fn post_transforms_match_their_definitions() {
    assert_eq!(logistic(0.0), 0.5);
    assert!((logistic(2.0) - 0.880_797_1).abs() < 1e-7);
    assert!((logistic(-2.0) + logistic(2.0) - 1.0).abs() < 1e-7);
    assert_eq!(logistic(-200.0), 0.0);
    // Winitzki's erfinv approximation: probit(0.975) is 1.96 to 3 digits.
    assert_eq!(probit(0.5), 0.0);
    assert!(
        (probit(0.975) - 1.959_964).abs() < 2e-3,
        "{}",
        probit(0.975)
    );
    let mut scores = [1.0f32, 2.0, 3.0];
    softmax(&mut scores);
    assert!((scores.iter().sum::<f32>() - 1.0).abs() < 1e-6);
    assert!((scores[2] - 0.665_240_9).abs() < 1e-6);
    // SOFTMAX_ZERO leaves exact zeros at zero.
    let mut sparse = [0.0f32, 1.0, 1.0];
    softmax_zero(&mut sparse);
    assert_eq!(sparse, [0.0, 0.5, 0.5]);
}

// --- the graph compiler ----------------------------------------------------------------------

#[test]
fn constants_fold_and_unused_nodes_are_dropped() {
    let model = GraphBuilder::new(17)
        .input("x", data_type::FLOAT, &[-1, 2])
        .output("y", data_type::FLOAT, &[-1, 2])
        .initializer(floats("a", &[2], &[1.0, 2.0]))
        .node(node(
            "Constant",
            &[],
            &["b"],
            vec![(
                "value",
                Attr::Tensor(Box::new(floats("", &[2], &[10.0, 20.0]))),
            )],
        ))
        .node(node("Add", &["a", "b"], &["ab"], vec![]))
        .node(node("Exp", &["x"], &["unused"], vec![]))
        .node(node("Mul", &["x", "ab"], &["y"], vec![]))
        .load()
        .expect("load");
    // Only the Mul reads the input; Constant and Add ran at load time and
    // the Exp feeds nothing.
    assert_eq!(model.graph.n_steps(), 1);
    let y = run_one(&model, &[f32_input("x", &[1, 2], &[1.0, -1.0])]);
    assert_eq!(y.data, TensorData::F32(vec![11.0, -22.0]));
    assert_eq!(y.shape, vec![1, 2]);
}

#[test]
fn an_output_that_is_an_input_is_returned_whole() {
    let model = GraphBuilder::new(17)
        .input("x", data_type::FLOAT, &[-1, 2])
        .output("y", data_type::FLOAT, &[-1, 2])
        .output("z", data_type::FLOAT, &[-1, 2])
        .node(node("Identity", &["x"], &["y"], vec![]))
        .node(node("Dropout", &["y"], &["z"], vec![]))
        .load()
        .expect("load");
    let outputs = model
        .predict(&[f32_input("x", &[1, 2], &[3.0, 4.0])])
        .unwrap();
    assert_eq!(outputs.len(), 2);
    for output in outputs {
        assert_eq!(output.tensor.data, TensorData::F32(vec![3.0, 4.0]));
    }
}

#[test]
fn graphs_out_of_order_or_with_duplicate_names_are_invalid() {
    let unsorted = GraphBuilder::new(17)
        .input("x", data_type::FLOAT, &[-1, 2])
        .output("y", data_type::FLOAT, &[-1, 2])
        .node(node("Neg", &["a"], &["y"], vec![]))
        .node(node("Abs", &["x"], &["a"], vec![]))
        .load();
    match unsorted {
        Err(Error::InvalidModel(message)) => {
            assert!(message.contains("topologically"), "{message}")
        }
        other => panic!("expected InvalidModel, got {other:?}"),
    }
    let duplicate = GraphBuilder::new(17)
        .input("x", data_type::FLOAT, &[-1, 2])
        .output("y", data_type::FLOAT, &[-1, 2])
        .node(node("Neg", &["x"], &["y"], vec![]))
        .node(node("Abs", &["x"], &["y"], vec![]))
        .load();
    assert!(
        matches!(duplicate, Err(Error::InvalidModel(_))),
        "{duplicate:?}"
    );
    let missing_output = GraphBuilder::new(17)
        .input("x", data_type::FLOAT, &[-1, 2])
        .output("nowhere", data_type::FLOAT, &[-1, 2])
        .load();
    assert!(
        matches!(missing_output, Err(Error::InvalidModel(_))),
        "{missing_output:?}"
    );
    let mistyped = GraphBuilder::new(17)
        .input("x", data_type::FLOAT, &[-1, 2])
        .output("y", data_type::INT64, &[-1, 2])
        .node(node("Neg", &["x"], &["y"], vec![]))
        .load();
    assert!(
        matches!(mistyped, Err(Error::InvalidModel(_))),
        "{mistyped:?}"
    );
}

#[test]
fn opset_versions_are_checked() {
    let at = |opset: i64| {
        GraphBuilder::new(opset)
            .input("x", data_type::FLOAT, &[-1, 2])
            .output("y", data_type::FLOAT, &[-1, 2])
            .node(node("Add", &["x", "x"], &["y"], vec![]))
            .load()
    };
    assert!(at(7).is_ok());
    assert!(at(28).is_ok());
    match at(6) {
        Err(Error::Unsupported(message)) => {
            assert!(message.contains("supported from opset 7"), "{message}")
        }
        other => panic!("expected Unsupported, got {other:?}"),
    }
    match at(29) {
        Err(Error::Unsupported(message)) => assert!(message.contains("newer"), "{message}"),
        other => panic!("expected Unsupported, got {other:?}"),
    }
    let mut old = GraphBuilder::new(17)
        .input("x", data_type::FLOAT, &[-1, 2])
        .output("y", data_type::FLOAT, &[-1, 2])
        .node(node("Neg", &["x"], &["y"], vec![]));
    old.ir_version = 2;
    assert!(matches!(old.load(), Err(Error::Unsupported(_))));
    // An ai.onnx.ml node in a model that imports no ai.onnx.ml opset.
    let mut ml = node("Binarizer", &["x"], &["y"], vec![]);
    ml.domain = Some("ai.onnx.ml".into());
    let orphan = GraphBuilder::new(17)
        .input("x", data_type::FLOAT, &[-1, 2])
        .output("y", data_type::FLOAT, &[-1, 2])
        .node(ml)
        .load();
    assert!(matches!(orphan, Err(Error::InvalidModel(_))), "{orphan:?}");
}

#[test]
fn attributes_of_the_wrong_type_are_invalid() {
    let mut wrong = node("Softmax", &["x"], &["y"], vec![("axis", Attr::Float(1.0))]);
    wrong.attribute[0].r#type = Some(attribute_type::FLOAT);
    let result = GraphBuilder::new(13)
        .input("x", data_type::FLOAT, &[-1, 2])
        .output("y", data_type::FLOAT, &[-1, 2])
        .node(wrong)
        .load();
    match result {
        Err(Error::InvalidModel(message)) => assert!(
            message.contains("axis") && message.contains("Softmax"),
            "{message}"
        ),
        other => panic!("expected InvalidModel, got {other:?}"),
    }
}

#[test]
fn runtime_errors_name_the_node() {
    let model = GraphBuilder::new(17)
        .input("x", data_type::FLOAT, &[-1, -1])
        .output("y", data_type::FLOAT, &[-1, 2])
        .initializer(floats("w", &[3, 2], &[1.0; 6]))
        .node(node("MatMul", &["x", "w"], &["y"], vec![]))
        .load()
        .expect("load");
    match model.predict(&[f32_input("x", &[1, 2], &[1.0, 2.0])]) {
        Err(Error::Input(message)) => assert!(message.contains("MatMul"), "{message}"),
        other => panic!("expected an input error, got {other:?}"),
    }
}

// --- tensors from the file ---------------------------------------------------------------------

#[test]
fn raw_data_is_little_endian_and_checked() {
    let raw = |code: i32, dims: &[i64], bytes: Vec<u8>| proto::TensorProto {
        name: Some("c".into()),
        dims: dims.to_vec(),
        data_type: Some(code),
        raw_data: Some(bytes),
        ..Default::default()
    };
    let decode = |t: proto::TensorProto| crate::onnx::value::tensor_from_proto(&t, "c");
    let f = decode(raw(
        data_type::FLOAT,
        &[2],
        [1.5f32, -2.0]
            .iter()
            .flat_map(|v| v.to_le_bytes())
            .collect(),
    ))
    .unwrap();
    assert_eq!(f.data, TensorData::F32(vec![1.5, -2.0]));
    let d = decode(raw(data_type::DOUBLE, &[1], 0.1f64.to_le_bytes().to_vec())).unwrap();
    assert_eq!(d.data, TensorData::F64(vec![0.1]));
    let i = decode(raw(
        data_type::INT32,
        &[2],
        [-7i32, 9].iter().flat_map(|v| v.to_le_bytes()).collect(),
    ))
    .unwrap();
    assert_eq!(
        (i.dtype, i.data),
        (DataType::I32, TensorData::I64(vec![-7, 9]))
    );
    let b = decode(raw(data_type::INT8, &[2], vec![0xff, 0x05])).unwrap();
    assert_eq!(b.data, TensorData::I64(vec![-1, 5]));
    let flags = decode(raw(data_type::BOOL, &[3], vec![1, 0, 1])).unwrap();
    assert_eq!(flags.data, TensorData::Bool(vec![true, false, true]));
    assert!(matches!(
        decode(raw(data_type::FLOAT, &[3], vec![0; 8])),
        Err(Error::InvalidModel(_))
    ));
    assert!(matches!(
        decode(raw(data_type::FLOAT16, &[1], vec![0; 2])),
        Err(Error::Unsupported(_))
    ));
    let mut external = raw(data_type::FLOAT, &[1], Vec::new());
    external.data_location = Some(proto::DATA_LOCATION_EXTERNAL);
    match decode(external) {
        Err(Error::Unsupported(message)) => assert!(message.contains("external"), "{message}"),
        other => panic!("expected Unsupported, got {other:?}"),
    }
}

// --- operator semantics --------------------------------------------------------------------------

#[test]
fn softmax_axis_semantics_change_at_opset_13() {
    // A [1, 2, 2] input: before opset 13, axis 1 normalises the flattened
    // row of four; since, it normalises along axis 1 only.
    let build = |opset| {
        GraphBuilder::new(opset)
            .input("x", data_type::FLOAT, &[1, 2, 2])
            .output("y", data_type::FLOAT, &[1, 2, 2])
            .node(node(
                "Softmax",
                &["x"],
                &["y"],
                vec![("axis", Attr::Int(1))],
            ))
            .load()
            .expect("load")
    };
    let x = f32_input("x", &[1, 2, 2], &[0.0, 0.0, 0.0, 0.0]);
    assert_eq!(
        run_one(&build(11), std::slice::from_ref(&x)).data,
        TensorData::F32(vec![0.25; 4])
    );
    assert_eq!(
        run_one(&build(13), &[x]).data,
        TensorData::F32(vec![0.5; 4])
    );
}

#[test]
fn reshape_slice_gather_and_unsqueeze_follow_the_spec() {
    let model = GraphBuilder::new(17)
        .input("x", data_type::FLOAT, &[2, 3])
        .output("reshaped", data_type::FLOAT, &[3, 2])
        .output("reversed", data_type::FLOAT, &[2, 2])
        .output("gathered", data_type::FLOAT, &[2, 2])
        .output("unsqueezed", data_type::FLOAT, &[2, 3, 1])
        .initializer(ints("shape", &[2], &[-1, 2]))
        .initializer(ints("starts", &[1], &[-1]))
        .initializer(ints("ends", &[1], &[i64::MIN]))
        .initializer(ints("axes", &[1], &[1]))
        .initializer(ints("steps", &[1], &[-2]))
        .initializer(ints("indices", &[2], &[-1, 0]))
        .initializer(ints("new_axis", &[1], &[-1]))
        .node(node("Reshape", &["x", "shape"], &["reshaped"], vec![]))
        .node(node(
            "Slice",
            &["x", "starts", "ends", "axes", "steps"],
            &["reversed"],
            vec![],
        ))
        .node(node(
            "Gather",
            &["x", "indices"],
            &["gathered"],
            vec![("axis", Attr::Int(1))],
        ))
        .node(node(
            "Unsqueeze",
            &["x", "new_axis"],
            &["unsqueezed"],
            vec![],
        ))
        .load()
        .expect("load");
    let outputs = model
        .predict(&[f32_input("x", &[2, 3], &[1.0, 2.0, 3.0, 4.0, 5.0, 6.0])])
        .unwrap();
    let by_name = |name: &str| {
        outputs
            .iter()
            .find(|o| o.name == name)
            .unwrap()
            .tensor
            .clone()
    };
    assert_eq!(by_name("reshaped").shape, vec![3, 2]);
    let reversed = by_name("reversed");
    assert_eq!(reversed.shape, vec![2, 2]);
    assert_eq!(reversed.data, TensorData::F32(vec![3.0, 1.0, 6.0, 4.0]));
    assert_eq!(
        by_name("gathered").data,
        TensorData::F32(vec![3.0, 1.0, 6.0, 4.0])
    );
    assert_eq!(by_name("unsqueezed").shape, vec![2, 3, 1]);
}

#[test]
fn casts_truncate_wrap_and_parse() {
    let cast = |to: i32, input: Tensor| {
        let from = match input.dtype {
            DataType::F32 => data_type::FLOAT,
            DataType::Bytes => data_type::STRING,
            _ => data_type::INT64,
        };
        let model = GraphBuilder::new(17)
            .input("x", from, &[-1])
            .output("y", to, &[-1])
            .node(node(
                "Cast",
                &["x"],
                &["y"],
                vec![("to", Attr::Int(to as i64))],
            ))
            .load()
            .expect("load");
        run_one(&model, &[NamedTensor::new("x", input)])
    };
    let floats = Tensor::column(TensorData::F32(vec![2.9, -2.9, 300.5]));
    assert_eq!(
        cast(data_type::INT64, floats.clone()).data,
        TensorData::I64(vec![2, -2, 300])
    );
    // 300 wraps to 44 in a uint8.
    assert_eq!(
        cast(data_type::UINT8, floats).data,
        TensorData::I64(vec![2, 254, 44])
    );
    let strings = Tensor::column(TensorData::Str(vec![
        "1.5".into(),
        "-inf".into(),
        " 7 ".into(),
    ]));
    assert_eq!(
        cast(data_type::FLOAT, strings).data,
        TensorData::F32(vec![1.5, f32::NEG_INFINITY, 7.0])
    );
    // Float-to-string formatting differs between libraries: refused.
    let refused = GraphBuilder::new(17)
        .input("x", data_type::FLOAT, &[-1])
        .output("y", data_type::STRING, &[-1])
        .node(node(
            "Cast",
            &["x"],
            &["y"],
            vec![("to", Attr::Int(data_type::STRING as i64))],
        ))
        .load();
    assert!(matches!(refused, Err(Error::Unsupported(_))), "{refused:?}");
}

#[test]
fn integer_arithmetic_wraps_to_its_type() {
    let model = GraphBuilder::new(17)
        .input("x", data_type::INT32, &[-1])
        .output("y", data_type::INT32, &[-1])
        .output("q", data_type::INT32, &[-1])
        .initializer(proto::TensorProto {
            name: Some("big".into()),
            dims: vec![1],
            data_type: Some(data_type::INT32),
            int32_data: vec![i32::MAX],
            ..Default::default()
        })
        .initializer(proto::TensorProto {
            name: Some("two".into()),
            dims: vec![1],
            data_type: Some(data_type::INT32),
            int32_data: vec![2],
            ..Default::default()
        })
        .node(node("Add", &["x", "big"], &["y"], vec![]))
        .node(node("Div", &["x", "two"], &["q"], vec![]))
        .load()
        .expect("load");
    let x = NamedTensor::new(
        "x",
        Tensor::new(DataType::I32, vec![2], TensorData::I64(vec![1, -7])).unwrap(),
    );
    let outputs = model.predict(&[x]).unwrap();
    assert_eq!(
        outputs[0].tensor.data,
        TensorData::I64(vec![i32::MIN as i64, (i32::MAX - 7) as i64])
    );
    // Integer division truncates toward zero, as in C.
    assert_eq!(outputs[1].tensor.data, TensorData::I64(vec![0, -3]));
}

#[test]
fn top_k_keeps_equal_values_in_index_order() {
    let model = GraphBuilder::new(17)
        .input("x", data_type::FLOAT, &[1, 5])
        .output("values", data_type::FLOAT, &[1, 3])
        .output("indices", data_type::INT64, &[1, 3])
        .initializer(ints("k", &[1], &[3]))
        .node(node("TopK", &["x", "k"], &["values", "indices"], vec![]))
        .load()
        .expect("load");
    let outputs = model
        .predict(&[f32_input("x", &[1, 5], &[1.0, 3.0, 2.0, 3.0, 0.0])])
        .unwrap();
    assert_eq!(outputs[0].tensor.data, TensorData::F32(vec![3.0, 3.0, 2.0]));
    assert_eq!(outputs[1].tensor.data, TensorData::I64(vec![1, 3, 2]));
}

#[test]
fn reductions_take_axes_from_attributes_or_inputs_by_opset() {
    let build = |opset: i64, attribute: bool| {
        let mut builder = GraphBuilder::new(opset)
            .input("x", data_type::FLOAT, &[2, 2])
            .output("y", data_type::FLOAT, &[2]);
        builder = if attribute {
            builder.node(node(
                "ReduceMean",
                &["x"],
                &["y"],
                vec![("axes", Attr::Ints(&[1])), ("keepdims", Attr::Int(0))],
            ))
        } else {
            builder.initializer(ints("axes", &[1], &[1])).node(node(
                "ReduceMean",
                &["x", "axes"],
                &["y"],
                vec![("keepdims", Attr::Int(0))],
            ))
        };
        builder.load().expect("load")
    };
    let x = f32_input("x", &[2, 2], &[1.0, 3.0, 5.0, 9.0]);
    for model in [build(13, true), build(18, false)] {
        assert_eq!(
            run_one(&model, std::slice::from_ref(&x)).data,
            TensorData::F32(vec![2.0, 7.0])
        );
    }
}

#[test]
fn string_attributes_reach_their_operators() {
    // Gelu's `approximate` selects the tanh form.
    let build = |approximate: &str| {
        GraphBuilder::new(20)
            .input("x", data_type::FLOAT, &[1])
            .output("y", data_type::FLOAT, &[1])
            .node(node(
                "Gelu",
                &["x"],
                &["y"],
                vec![("approximate", Attr::Str(approximate))],
            ))
            .load()
    };
    let x = f32_input("x", &[1], &[1.0]);
    let exact = run_one(&build("none").unwrap(), std::slice::from_ref(&x));
    let tanh = run_one(&build("tanh").unwrap(), &[x]);
    assert!((exact.data.get_f64(0).unwrap() - 0.841_344_7).abs() < 1e-6);
    assert!((tanh.data.get_f64(0).unwrap() - 0.841_192).abs() < 1e-5);
    assert!(matches!(build("cubic"), Err(Error::InvalidModel(_))));
}
