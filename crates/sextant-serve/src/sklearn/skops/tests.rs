//! The skops translation on hand-made archives: `.npy` headers, the
//! header's Python literals, each loader's pickle, skops' memo, and the
//! archive's bounds. Parity with scikit-learn on real files is in
//! `tests/it/skops.rs`.

use std::io::{Cursor, Write};

use serde_json::{json, Value};
use zip::write::SimpleFileOptions;
use zip::{CompressionMethod, ZipWriter};

use super::*;
use crate::pickle::{self, numpy};
use crate::sklearn::{from_pickle, from_skops};
use crate::tensor::{NamedTensor, Tensor, TensorData};

// --- Building archives ------------------------------------------------------------------

/// An `.npy` file (version 1) of `descr` and `shape`, Python literals.
fn npy(descr: &str, shape: &str, data: &[u8]) -> Vec<u8> {
    npy_version(
        1,
        &format!("{{'descr': {descr}, 'fortran_order': False, 'shape': {shape}, }}"),
        data,
    )
}

/// An `.npy` file with the header `dict`, padded to 64 bytes as numpy does.
fn npy_version(major: u8, dict: &str, data: &[u8]) -> Vec<u8> {
    let prefix = if major == 1 { 10 } else { 12 };
    let mut header = dict.to_string();
    while !(prefix + header.len() + 1).is_multiple_of(64) {
        header.push(' ');
    }
    header.push('\n');
    let mut out = b"\x93NUMPY".to_vec();
    out.extend_from_slice(&[major, 0]);
    if major == 1 {
        out.extend_from_slice(&u16::try_from(header.len()).unwrap().to_le_bytes());
    } else {
        out.extend_from_slice(&u32::try_from(header.len()).unwrap().to_le_bytes());
    }
    out.extend_from_slice(header.as_bytes());
    out.extend_from_slice(data);
    out
}

fn f64_bytes(values: &[f64]) -> Vec<u8> {
    values.iter().flat_map(|v| v.to_le_bytes()).collect()
}

/// A zip archive of `files`, compressed with `method`.
fn zip_with(files: &[(&str, Vec<u8>)], method: CompressionMethod) -> Vec<u8> {
    let mut zip = ZipWriter::new(Cursor::new(Vec::new()));
    let options = SimpleFileOptions::default().compression_method(method);
    for (name, data) in files {
        zip.start_file(*name, options).unwrap();
        zip.write_all(data).unwrap();
    }
    zip.finish().unwrap().into_inner()
}

/// A skops archive: `schema` (given protocol 2 unless it has one) and
/// `files`, stored.
fn skops(mut schema: Value, files: &[(&str, Vec<u8>)]) -> Vec<u8> {
    if schema.get("protocol").is_none() {
        schema["protocol"] = json!(2);
    }
    let mut all = vec![("schema.json", serde_json::to_vec(&schema).unwrap())];
    all.extend(files.iter().cloned());
    zip_with(&all, CompressionMethod::Stored)
}

/// Fresh ids, as Python's `id()` gives every live object its own.
struct Ids(u64);

impl Ids {
    fn next(&mut self) -> u64 {
        self.0 += 1;
        self.0
    }
}

fn node(loader: &str, module: &str, class: &str, id: u64) -> Value {
    json!({"__loader__": loader, "__module__": module, "__class__": class, "__id__": id})
}

fn json_node(content: &str, id: u64) -> Value {
    let mut n = node("JsonNode", "builtins", "str", id);
    n["content"] = json!(content);
    n["is_json"] = json!(true);
    n
}

fn type_node(module: &str, class: &str, id: u64) -> Value {
    node("TypeNode", module, class, id)
}

fn array_node(file: &str, id: u64) -> Value {
    let mut n = node("NdArrayNode", "numpy", "ndarray", id);
    n["type"] = json!("numpy");
    n["file"] = json!(file);
    n
}

fn list_node(items: Vec<Value>, id: u64) -> Value {
    let mut n = node("ListNode", "builtins", "list", id);
    n["content"] = Value::Array(items);
    n
}

fn tuple_node(items: Vec<Value>, id: u64) -> Value {
    let mut n = node("TupleNode", "builtins", "tuple", id);
    n["content"] = Value::Array(items);
    n
}

/// A dict with string keys.
fn dict_node(entries: Vec<(&str, Value)>, ids: &mut Ids) -> Value {
    let mut n = node("DictNode", "builtins", "dict", ids.next());
    let key_types: Vec<Value> = entries
        .iter()
        .map(|_| type_node("builtins", "str", 7))
        .collect();
    n["key_types"] = list_node(key_types, ids.next());
    n["content"] = Value::Object(
        entries
            .into_iter()
            .map(|(k, v)| (k.to_string(), v))
            .collect(),
    );
    n
}

fn object_node(module: &str, class: &str, attributes: Value, id: u64) -> Value {
    let mut n = node("ObjectNode", module, class, id);
    n["content"] = attributes;
    n
}

/// `LinearRegression` with two features: `coef_` from `coef.npy`.
fn linear_regression(ids: &mut Ids) -> Value {
    let attributes = dict_node(
        vec![
            ("n_features_in_", json_node("2", ids.next())),
            ("coef_", array_node("coef.npy", ids.next())),
            ("intercept_", json_node("0.5", ids.next())),
        ],
        ids,
    );
    object_node(
        "sklearn.linear_model._base",
        "LinearRegression",
        attributes,
        ids.next(),
    )
}

fn coef_file() -> (&'static str, Vec<u8>) {
    ("coef.npy", npy("'<f8'", "(2,)", &f64_bytes(&[2.0, -1.0])))
}

/// The pickle a schema translates to, parsed.
fn translate(schema: Value, files: &[(&str, Vec<u8>)]) -> pickle::Pickle {
    let bytes = to_pickle(&skops(schema, files)).unwrap();
    pickle::parse(&bytes).unwrap()
}

#[track_caller]
fn invalid(result: Result<impl Sized>, expected: &str) {
    match result {
        Err(Error::InvalidModel(message)) => assert!(
            message.contains(expected),
            "message {message:?} lacks {expected:?}"
        ),
        Err(other) => panic!("expected InvalidModel, got {other}"),
        Ok(_) => panic!("accepted"),
    }
}

#[track_caller]
fn unsupported(result: Result<impl Sized>, expected: &str) {
    match result {
        Err(Error::Unsupported(message)) => assert!(
            message.contains(expected),
            "message {message:?} lacks {expected:?}"
        ),
        Err(other) => panic!("expected Unsupported, got {other}"),
        Ok(_) => panic!("accepted"),
    }
}

// --- The Python literals of npy headers -------------------------------------------------

#[test]
fn header_literals_parse_as_python_reads_them() {
    let cases = [
        ("(3,)", Literal::Tuple(vec![Literal::Int(3)])),
        ("()", Literal::Tuple(vec![])),
        (
            "(2, 3)",
            Literal::Tuple(vec![Literal::Int(2), Literal::Int(3)]),
        ),
        (
            "( 2 , 3 , )",
            Literal::Tuple(vec![Literal::Int(2), Literal::Int(3)]),
        ),
        // Parentheses alone make no tuple.
        ("(5)", Literal::Int(5)),
        ("(3L,)", Literal::Tuple(vec![Literal::Int(3)])),
        ("-7", Literal::Int(-7)),
        ("True", Literal::Bool(true)),
        ("None", Literal::None),
        ("'it\\'s'", Literal::Str("it's".into())),
        ("\"it's\"", Literal::Str("it's".into())),
        ("'\\x41\\u00e9\\\\'", Literal::Str("Aé\\".into())),
        (
            "[('a', '<f8'), ('', '|V7')]",
            Literal::List(vec![
                Literal::Tuple(vec![Literal::Str("a".into()), Literal::Str("<f8".into())]),
                Literal::Tuple(vec![Literal::Str("".into()), Literal::Str("|V7".into())]),
            ]),
        ),
        (
            "{'k': 1, }",
            Literal::Dict(vec![(Literal::Str("k".into()), Literal::Int(1))]),
        ),
    ];
    for (text, expected) in cases {
        assert_eq!(parse_literal(text).unwrap(), expected, "{text}");
    }
    for bad in [
        "",
        "(1 2)",
        "{'a' 1}",
        "'open",
        "'a\nb'",
        "Truth",
        "99999999999999999999",
        "(1,) extra",
        "os.system('x')",
    ] {
        assert!(parse_literal(bad).is_err(), "{bad:?} parsed");
    }
    let deep = format!("{}{}", "(".repeat(100), ")".repeat(100));
    assert!(parse_literal(&deep).is_err());
}

// --- npy files --------------------------------------------------------------------------

#[test]
fn npy_files_of_every_version_and_byte_order() {
    let data = f64_bytes(&[1.5, -2.0]);
    let file = npy("'<f8'", "(2,)", &data);
    let array = Npy::parse(&file).unwrap();
    assert_eq!(array.shape, vec![2]);
    assert_eq!(array.dtype.kind, Kind::Float);
    assert_eq!(array.data, &data[..]);

    let header = "{'descr': '>i4', 'fortran_order': True, 'shape': (1, 2), }";
    let big: Vec<u8> = [7i32, -3].iter().flat_map(|v| v.to_be_bytes()).collect();
    for major in [1, 2, 3] {
        let file = npy_version(major, header, &big);
        let array = Npy::parse(&file).unwrap();
        assert!(array.dtype.big_endian && array.fortran_order);
        assert_eq!((array.dtype.kind, array.dtype.item_size), (Kind::Int, 4));
    }
    // Version 3 headers are UTF-8 (field names beyond Latin-1).
    let file = npy_version(
        3,
        "{'descr': [('größe', '<u2')], 'fortran_order': False, 'shape': (1,), }",
        &[1, 0],
    );
    assert_eq!(Npy::parse(&file).unwrap().dtype.fields[0].name, "größe");
    // Strings: `U` counts characters, four bytes each.
    let file = npy("'<U3'", "(1,)", &[0; 12]);
    assert_eq!(Npy::parse(&file).unwrap().dtype.item_size, 12);
}

#[test]
fn structured_npy_fields_skip_padding() {
    // scikit-learn's `Tree` nodes end in seven padding bytes.
    let descr = "[('left_child', '<i8'), ('threshold', '<f8'), ('missing_go_to_left', '|u1'), \
                 ('', '|V7'), ('nested', [('a', '<f4'), ('', '|V4')])]";
    let file = npy(descr, "(1,)", &[0; 32]);
    let dtype = Npy::parse(&file).unwrap().dtype;
    assert_eq!(dtype.kind, Kind::Void);
    assert_eq!(dtype.item_size, 32);
    let fields: Vec<(&str, usize)> = dtype
        .fields
        .iter()
        .map(|f| (f.name.as_str(), f.offset))
        .collect();
    assert_eq!(
        fields,
        [
            ("left_child", 0),
            ("threshold", 8),
            ("missing_go_to_left", 16),
            ("nested", 24)
        ]
    );
    assert_eq!(dtype.fields[3].dtype.item_size, 8);
}

#[test]
fn npy_files_that_lie_or_are_not_arrays_are_refused() {
    let data = f64_bytes(&[1.0, 2.0]);
    // Data shorter and longer than the header says.
    invalid(Npy::parse(&npy("'<f8'", "(3,)", &data)), "holds 16 bytes");
    invalid(Npy::parse(&npy("'<f8'", "(1,)", &data)), "holds 16 bytes");
    invalid(
        Npy::parse(&npy("'<f8'", "(4611686018427387904, 4)", &data)),
        "overflows",
    );
    invalid(Npy::parse(&npy("'<f8'", "(-2,)", &data)), "shape");
    // A header longer than the file, or truncated anywhere.
    let file = npy("'<f8'", "(2,)", &data);
    for cut in 0..64 {
        invalid(Npy::parse(&file[..cut]), "");
    }
    let mut lying = file.clone();
    lying[8] = 0xff;
    invalid(Npy::parse(&lying), "header of");
    invalid(Npy::parse(b"PK\x03\x04 not numpy"), "magic");
    // Keys numpy does not write, or missing.
    invalid(
        Npy::parse(&npy_version(1, "{'descr': '<f8', 'shape': (0,), }", &[])),
        "fortran_order",
    );
    invalid(
        Npy::parse(&npy_version(
            1,
            "{'descr': '<f8', 'fortran_order': False, 'shape': (0,), 'x': 1}",
            &[],
        )),
        "key",
    );
    // Objects need a pickle; numpy refuses them here.
    invalid(Npy::parse(&npy("'|O'", "(0,)", &[])), "Python objects");
    // Types the readers have no use for.
    unsupported(Npy::parse(&npy("'<c16'", "(0,)", &[])), "<c16");
    unsupported(Npy::parse(&npy("'<M8[ns]'", "(0,)", &[])), "M8");
    unsupported(
        Npy::parse(&npy("[('a', '<f8', (2,))]", "(0,)", &[])),
        "sub-array",
    );
    unsupported(Npy::parse(&npy_version(4, "{}", &[])), "version 4.0");
}

// --- The translation --------------------------------------------------------------------

#[test]
fn a_linear_regression_loads_and_predicts() {
    let mut ids = Ids(100);
    let bytes = skops(linear_regression(&mut ids), &[coef_file()]);
    let runtime = from_skops(&bytes).unwrap();
    assert_eq!(runtime.info().engine, "native-linear");
    let input = NamedTensor::new("input", Tensor::f64_matrix(1, 2, vec![1.0, 3.0]));
    let outputs = runtime.predict(&[input]).unwrap();
    assert_eq!(
        outputs[0].tensor.data,
        TensorData::F64(vec![2.0 - 3.0 + 0.5])
    );
    // The same archive deflated.
    let files = [
        ("schema.json", {
            let mut schema = linear_regression(&mut Ids(100));
            schema["protocol"] = json!(2);
            serde_json::to_vec(&schema).unwrap()
        }),
        coef_file(),
    ];
    let deflated = zip_with(&files, CompressionMethod::Deflated);
    assert!(from_skops(&deflated).is_ok());
}

#[test]
fn json_nodes_read_as_json_loads_reads_them() {
    let mut ids = Ids(0);
    let values = [
        "null",
        "true",
        "-12",
        "123456789012345678901234567890",
        "0.25",
        "NaN",
        "-Infinity",
        "\"text\"",
        "[1, [2.5]]",
    ];
    let items = values.iter().map(|v| json_node(v, ids.next())).collect();
    let pickle = translate(list_node(items, ids.next()), &[]);
    let list = pickle.root().as_list().unwrap();
    let item = |i: usize| list.get(i).unwrap();
    assert!(item(0).is_none());
    assert_eq!(item(1).as_bool(), Some(true));
    assert_eq!(item(2).as_i64(), Some(-12));
    assert_eq!(item(3).describe(), "int");
    assert!(item(3).as_i64().is_none());
    assert_eq!(item(4).as_f64(), Some(0.25));
    assert!(item(5).as_f64().unwrap().is_nan());
    assert_eq!(item(6).as_f64(), Some(f64::NEG_INFINITY));
    assert_eq!(item(7).as_str(), Some("text"));
    let nested = item(8).as_list().unwrap();
    assert_eq!(nested.get(0).unwrap().as_i64(), Some(1));
    assert_eq!(
        nested
            .get(1)
            .unwrap()
            .as_list()
            .unwrap()
            .get(0)
            .unwrap()
            .as_f64(),
        Some(2.5)
    );
    invalid(
        to_pickle(&skops(json_node("{not json", 1), &[])),
        "not JSON",
    );
}

#[test]
fn dict_keys_take_their_recorded_types() {
    // Written by hand to keep the keys in the order of their types.
    let schema = r#"{"__loader__": "DictNode", "__module__": "builtins", "__class__": "dict",
        "__id__": 1, "protocol": 2,
        "key_types": {"__loader__": "ListNode", "__module__": "builtins", "__class__": "list",
            "__id__": 2, "content": [
                {"__loader__": "TypeNode", "__module__": "builtins", "__class__": "str", "__id__": 3},
                {"__loader__": "TypeNode", "__module__": "builtins", "__class__": "int", "__id__": 4},
                {"__loader__": "TypeNode", "__module__": "numpy", "__class__": "float64", "__id__": 5},
                {"__loader__": "TypeNode", "__module__": "numpy", "__class__": "str_", "__id__": 6}]},
        "content": {
            "b": {"__loader__": "JsonNode", "__module__": "builtins", "__class__": "str",
                "content": "1", "__id__": 10},
            "-3": {"__loader__": "JsonNode", "__module__": "builtins", "__class__": "str",
                "content": "2", "__id__": 11},
            "0.5": {"__loader__": "JsonNode", "__module__": "builtins", "__class__": "str",
                "content": "3", "__id__": 12},
            "a": {"__loader__": "JsonNode", "__module__": "builtins", "__class__": "str",
                "content": "4", "__id__": 13}}}"#;
    let archive = zip_with(
        &[("schema.json", schema.as_bytes().to_vec())],
        CompressionMethod::Stored,
    );
    let pickle = pickle::parse(&to_pickle(&archive).unwrap()).unwrap();
    let dict = pickle.root().as_dict().unwrap();
    let keys: Vec<String> = dict.iter().map(|(k, _)| k.describe()).collect();
    assert_eq!(keys, ["str", "int", "float", "str"]);
    let (key, value) = dict.iter().nth(1).unwrap();
    assert_eq!((key.as_i64(), value.as_i64()), (Some(-3), Some(2)));
    assert_eq!(dict.get("a").unwrap().as_i64(), Some(4));

    // One key type per key, of a type skops can write.
    let short = schema.replacen(
        r#"{"__loader__": "TypeNode", "__module__": "builtins", "__class__": "str", "__id__": 3},"#,
        "",
        1,
    );
    let archive = zip_with(
        &[("schema.json", short.into_bytes())],
        CompressionMethod::Stored,
    );
    invalid(to_pickle(&archive), "4 keys and 3 key types");
    let odd = schema.replacen(r#""__class__": "int""#, r#""__class__": "complex""#, 1);
    let archive = zip_with(
        &[("schema.json", odd.into_bytes())],
        CompressionMethod::Stored,
    );
    unsupported(to_pickle(&archive), "dict keys of type builtins.complex");
}

#[test]
fn a_repeated_id_is_the_object_loaded_first() {
    let mut ids = Ids(0);
    let shared = array_node("coef.npy", 50);
    // The second node of id 50 names another file: skops ignores it, as
    // it returns the memoized node.
    let impostor = array_node("missing.npy", 50);
    let schema = list_node(
        vec![shared, impostor, json_node("7", 60), json_node("7", 60)],
        ids.next(),
    );
    let pickle = translate(schema, &[coef_file()]);
    let list = pickle.root().as_list().unwrap();
    assert_eq!(list.get(0).unwrap().value(), list.get(1).unwrap().value());
    assert_eq!(list.get(3).unwrap().as_i64(), Some(7));
    let array = numpy::ndarray(list.get(1).unwrap()).unwrap();
    assert_eq!(array.to_f64().unwrap(), [2.0, -1.0]);

    // A CachedNode refers to an id seen before, and only to one.
    let cached = node("CachedNode", "builtins", "int", 60);
    let schema = list_node(vec![json_node("7", 60), cached.clone()], 1);
    let pickle = translate(schema, &[]);
    assert_eq!(
        pickle.root().as_list().unwrap().get(1).unwrap().as_i64(),
        Some(7)
    );
    invalid(
        to_pickle(&skops(list_node(vec![cached], 1), &[])),
        "CachedNode",
    );
}

#[test]
fn objects_that_contain_themselves() {
    let mut ids = Ids(0);
    // A pipeline whose only step is itself: a cycle through the memo, which
    // the pipeline reader refuses as nesting too deep.
    let myself = node("ObjectNode", "sklearn.pipeline", "Pipeline", 99);
    let step = tuple_node(vec![json_node("\"p\"", ids.next()), myself], ids.next());
    let attributes = dict_node(vec![("steps", list_node(vec![step], ids.next()))], &mut ids);
    let pipeline = object_node("sklearn.pipeline", "Pipeline", attributes, 99);
    invalid(from_skops(&skops(pipeline, &[])), "nested too deeply");
    // A tuple inside itself cannot be pickled (nor built by Python).
    let inner = node("TupleNode", "builtins", "tuple", 5);
    let outer = tuple_node(vec![inner], 5);
    invalid(to_pickle(&skops(outer, &[])), "contains itself");
}

#[test]
fn object_arrays_keep_their_shape_in_c_order() {
    let mut ids = Ids(0);
    let row = |ids: &mut Ids, a: &str, b: &str| {
        let items = vec![json_node(a, ids.next()), json_node(b, ids.next())];
        list_node(items, ids.next())
    };
    let rows = vec![
        row(&mut ids, "1", "2"),
        row(&mut ids, "3", "4"),
        row(&mut ids, "5", "6"),
    ];
    let mut array = node("NdArrayNode", "numpy", "ndarray", ids.next());
    array["type"] = json!("json");
    array["content"] = Value::Array(rows);
    let shape = |ids: &mut Ids, dims: &[&str]| {
        let items = dims.iter().map(|d| json_node(d, ids.next())).collect();
        tuple_node(items, ids.next())
    };
    array["shape"] = shape(&mut ids, &["3", "2"]);
    let pickle = translate(array.clone(), &[]);
    let parsed = numpy::ndarray(pickle.root()).unwrap();
    assert_eq!(parsed.shape, [3, 2]);
    assert_eq!(parsed.to_f64().unwrap(), [1.0, 2.0, 3.0, 4.0, 5.0, 6.0]);
    array["shape"] = shape(&mut ids, &["2", "3"]);
    invalid(to_pickle(&skops(array, &[])), "object array of shape");
}

#[test]
fn numpy_scalars_and_dtypes() {
    let mut ids = Ids(0);
    let mut scalar = array_node("n.npy", ids.next());
    scalar["__class__"] = json!("int64");
    let mut dtype = node("DTypeNode", "numpy", "dtype", ids.next());
    dtype["content"] = array_node("empty.npy", ids.next());
    let files = [
        ("n.npy", npy("'<i8'", "()", &3i64.to_le_bytes())),
        ("empty.npy", npy("'<f4'", "(0,)", &[])),
    ];
    let pickle = translate(list_node(vec![scalar.clone(), dtype], ids.next()), &files);
    let list = pickle.root().as_list().unwrap();
    assert_eq!(numpy::as_i64(list.get(0).unwrap()), Some(3));
    let parsed = numpy::dtype(list.get(1).unwrap()).unwrap();
    assert_eq!((parsed.kind, parsed.item_size), (Kind::Float, 4));
    // A scalar type holding an array is not what skops writes.
    let files = [("n.npy", npy("'<i8'", "(1,)", &3i64.to_le_bytes()))];
    invalid(
        to_pickle(&skops(scalar.clone(), &files)),
        "scalar stored as an array",
    );
    scalar["__class__"] = json!("matrix");
    let files = [("n.npy", npy("'<i8'", "()", &3i64.to_le_bytes()))];
    unsupported(to_pickle(&skops(scalar, &files)), "numpy.matrix");
}

#[test]
fn protocols() {
    let mut ids = Ids(0);
    let mut schema = linear_regression(&mut ids);
    schema["protocol"] = json!("2");
    invalid(
        to_pickle(&skops(schema.clone(), &[coef_file()])),
        "protocol",
    );
    schema["protocol"] = json!(3);
    unsupported(
        to_pickle(&skops(schema.clone(), &[coef_file()])),
        "skops protocol 3",
    );
    let files = [(
        "schema.json",
        serde_json::to_vec(&json_node("1", 1)).unwrap(),
    )];
    invalid(
        to_pickle(&zip_with(&files, CompressionMethod::Stored)),
        "no protocol",
    );
    // Protocol 0 named functions in their content.
    let mut function = node("FunctionNode", "ignored", "ignored", 1);
    function["content"] = json!({"module_path": "numpy", "function": "exp"});
    function["protocol"] = json!(0);
    let pickle = translate(function, &[]);
    assert!(pickle.root().as_global().unwrap().is("numpy", "exp"));
}

#[test]
fn unknown_loaders_are_unsupported_and_malformed_nodes_invalid() {
    let mut pickled = node("PickleNode", "os", "system", 1);
    pickled["content"] = json!("rm -rf /");
    unsupported(
        to_pickle(&skops(pickled, &[])),
        "skops loader PickleNode (for os.system)",
    );
    invalid(
        to_pickle(&skops(
            json!({"__loader__": "JsonNode", "content": "1"}),
            &[],
        )),
        "__module__",
    );
    let mut list = list_node(vec![json!(3)], 1);
    invalid(to_pickle(&skops(list.clone(), &[])), "not an object");
    list["content"] = json!({});
    invalid(to_pickle(&skops(list, &[])), "not an array");
    let mut weird_id = json_node("1", 1);
    weird_id["__id__"] = json!([1]);
    invalid(to_pickle(&skops(weird_id, &[])), "__id__");
}

// --- The archive's bounds ---------------------------------------------------------------

#[test]
fn archives_may_not_decompress_beyond_the_limits() {
    let mut ids = Ids(100);
    let schema = {
        let mut schema = linear_regression(&mut ids);
        schema["protocol"] = json!(2);
        serde_json::to_vec(&schema).unwrap()
    };
    // Four megabytes of zeros deflate to a few kilobytes.
    let big = ("coef.npy", npy("'<f8'", "(524288,)", &vec![0; 1 << 22]));
    let archive = zip_with(
        &[("schema.json", schema.clone()), big],
        CompressionMethod::Deflated,
    );
    assert!(archive.len() < 64 << 10);
    let limits = Limits {
        max_total: 1 << 20,
        max_schema: 1 << 20,
    };
    invalid(
        to_pickle_with_limits(&archive, limits),
        "may decompress 1048576 bytes",
    );
    let limits = Limits {
        max_total: 1 << 30,
        max_schema: 64,
    };
    invalid(
        to_pickle_with_limits(&archive, limits),
        "over this reader's limit of 64",
    );
    // Within the limits, it is read (and refused for its shape).
    invalid(
        to_pickle_with_limits(&archive, Limits::default()).and_then(|p| from_pickle(&p)),
        "coef_",
    );
}

#[test]
fn entries_must_hold_what_they_declare() {
    let mut ids = Ids(100);
    let archive = skops(linear_regression(&mut ids), &[coef_file()]);
    // The central directory's uncompressed size of `coef.npy`, at offset 24
    // of its record.
    let record = archive
        .windows(4)
        .enumerate()
        .filter(|(_, w)| *w == b"PK\x01\x02")
        .map(|(i, _)| i)
        .find(|&i| archive[i + 46..].starts_with(b"coef.npy"))
        .unwrap();
    for size in [0u32, 10, 1 << 30] {
        let mut lying = archive.clone();
        lying[record + 24..record + 28].copy_from_slice(&size.to_le_bytes());
        match to_pickle(&lying) {
            Err(Error::InvalidModel(_)) => {}
            other => panic!("declared size {size}: {:?}", other.map(|p| p.len())),
        }
    }
}

#[test]
fn nesting_is_bounded_by_the_json_parser() {
    // As deep as serde_json's limit of 128 allows (two levels per list
    // node): translated without exhausting the stack.
    let mut schema = json_node("1", 1);
    for id in 2..62 {
        schema = list_node(vec![schema], id);
    }
    let pickle = translate(schema, &[]);
    assert!(pickle.root().as_list().is_some());
    // Deeper JSON is refused by the parser itself.
    let deep = format!("{}{}", "[".repeat(200), "]".repeat(200));
    let archive = zip_with(
        &[("schema.json", deep.into_bytes())],
        CompressionMethod::Stored,
    );
    invalid(to_pickle(&archive), "not JSON");
}
