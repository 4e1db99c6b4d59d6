//! The reader on hand-made pickles: each opcode, numpy's encodings, and
//! corrupt or hostile input. Byte strings follow CPython's `pickletools`
//! descriptions of the opcodes.

use super::builder::Bytes;
use super::numpy::{self, Kind};
use super::*;

fn root(bytes: &[u8]) -> Pickle {
    parse(bytes).unwrap_or_else(|e| panic!("parse failed: {e}"))
}

#[track_caller]
fn invalid(bytes: &[u8], expected: &str) {
    match parse(bytes) {
        Err(Error::InvalidModel(message)) => {
            assert!(
                message.contains(expected),
                "message {message:?} lacks {expected:?}"
            );
            assert!(
                message.contains("offset"),
                "message {message:?} lacks the offset"
            );
        }
        Err(other) => panic!("expected InvalidModel, got {other}"),
        Ok(pickle) => panic!("parsed to {:?}", pickle.root()),
    }
}

#[track_caller]
fn unsupported(bytes: &[u8], expected: &str) {
    match parse(bytes) {
        Err(Error::Unsupported(message)) => {
            assert!(
                message.contains(expected),
                "message {message:?} lacks {expected:?}"
            )
        }
        Err(other) => panic!("expected Unsupported, got {other}"),
        Ok(pickle) => panic!("parsed to {:?}", pickle.root()),
    }
}

// --- Scalars ----------------------------------------------------------------------------

#[test]
fn integers_of_every_encoding() {
    let cases: &[(&[u8], Value)] = &[
        (b"K\x05.", Value::Int(5)),
        (b"M\x34\x12.", Value::Int(0x1234)),
        (b"J\xff\xff\xff\xff.", Value::Int(-1)),
        (b"I42\n.", Value::Int(42)),
        (b"I-7\n.", Value::Int(-7)),
        (b"I01\n.", Value::Bool(true)),
        (b"I00\n.", Value::Bool(false)),
        (b"L123L\n.", Value::Int(123)),
        (b"\x8a\x00.", Value::Int(0)),
        (b"\x8a\x01\xff.", Value::Int(-1)),
        (b"\x8a\x02\xff\x00.", Value::Int(255)),
        (
            b"\x8a\x08\xff\xff\xff\xff\xff\xff\xff\x7f.",
            Value::Int(i64::MAX),
        ),
        (
            b"\x8a\x09\xff\xff\xff\xff\xff\xff\xff\x7f\x00.",
            Value::Int(i64::MAX),
        ),
        (
            b"\x8a\x09\x00\x00\x00\x00\x00\x00\x00\x80\xff.",
            Value::Int(i64::MIN),
        ),
        (b"\x8b\x01\x00\x00\x00\x07.", Value::Int(7)),
        (b"\x88.", Value::Bool(true)),
        (b"\x89.", Value::Bool(false)),
        (b"N.", Value::None),
    ];
    for (bytes, expected) in cases {
        assert_eq!(root(bytes).root().value(), expected, "{bytes:?}");
    }
}

#[test]
fn integers_beyond_i64_keep_their_bytes() {
    // 2**64 as LONG1: 9 bytes, little-endian.
    let pickle = root(b"\x8a\x09\x00\x00\x00\x00\x00\x00\x00\x00\x01.");
    assert_eq!(
        pickle.root().value(),
        &Value::BigInt(vec![0, 0, 0, 0, 0, 0, 0, 0, 1].into())
    );
    // The same number in protocol 0's text form, and its negation.
    let Value::BigInt(bytes) = root(b"L18446744073709551616L\n.").root().value().clone() else {
        panic!("not a big int")
    };
    assert_eq!(long_value(&bytes), Value::BigInt(bytes.clone()));
    assert_eq!(&bytes[..9], &[0, 0, 0, 0, 0, 0, 0, 0, 1]);
    let Value::BigInt(negative) = root(b"L-18446744073709551616L\n.").root().value().clone() else {
        panic!("not a big int")
    };
    assert_eq!(&negative[..9], &[0, 0, 0, 0, 0, 0, 0, 0, 0xff]);
}

#[test]
fn floats_text_and_big_endian_binary() {
    assert_eq!(root(b"F1.5\n.").root().as_f64(), Some(1.5));
    assert!(root(b"Fnan\n.").root().as_f64().unwrap().is_nan());
    assert_eq!(
        root(b"G\x3f\xf8\x00\x00\x00\x00\x00\x00.").root().as_f64(),
        Some(1.5)
    );
    assert_eq!(root(b"K\x02.").root().as_f64(), Some(2.0));
}

#[test]
fn strings_and_bytes_of_every_encoding() {
    let text = |bytes: &[u8]| root(bytes).root().as_str().map(str::to_owned);
    assert_eq!(text(b"\x8c\x03abc."), Some("abc".into()));
    assert_eq!(text(b"X\x02\x00\x00\x00\xc3\xa9."), Some("é".into()));
    assert_eq!(
        text(b"\x8d\x01\x00\x00\x00\x00\x00\x00\x00z."),
        Some("z".into())
    );
    // raw-unicode-escape: Latin-1 bytes and \u escapes; an escaped
    // backslash does not start one.
    assert_eq!(
        text(b"V\xe9t\\u0041\\U0001f600\n."),
        Some("\u{e9}tA\u{1f600}".into())
    );
    assert_eq!(text(b"V\\\\u0041\n."), Some("\\\\u0041".into()));
    // Python 2 `str`, read as Latin-1.
    assert_eq!(text(b"S'a\\nb\\x41\\'c'\n."), Some("a\nbA'c".into()));
    assert_eq!(text(b"U\x02\xe9a."), Some("\u{e9}a".into()));
    assert_eq!(text(b"T\x01\x00\x00\x00q."), Some("q".into()));

    let bytes = |input: &[u8]| root(input).root().as_bytes().map(<[u8]>::to_vec);
    assert_eq!(bytes(b"C\x02\x00\xff."), Some(vec![0, 255]));
    assert_eq!(bytes(b"B\x01\x00\x00\x00\x07."), Some(vec![7]));
    assert_eq!(
        bytes(b"\x8e\x01\x00\x00\x00\x00\x00\x00\x00\x08."),
        Some(vec![8])
    );
    assert_eq!(
        bytes(b"\x96\x01\x00\x00\x00\x00\x00\x00\x00\x09\x98."),
        Some(vec![9])
    );
}

// --- Containers and the memo ------------------------------------------------------------

#[test]
fn containers_of_every_opcode() {
    let pickle = root(b"\x80\x04]\x94(K\x01K\x02e(K\x03\x8c\x01xla.");
    let list = pickle.root().as_list().unwrap();
    assert_eq!(list.len(), 3);
    assert_eq!(
        list.get(2)
            .unwrap()
            .as_list()
            .unwrap()
            .get(1)
            .unwrap()
            .as_str(),
        Some("x")
    );

    let pickle = root(b"(K\x01K\x02tK\x03\x85K\x04K\x05\x86K\x06K\x07K\x08\x87)\x87.");
    let outer = pickle.root().as_tuple().unwrap();
    assert_eq!(outer.len(), 3);
    // TUPLE3 took the three values on top: (4, 5), (6, 7, 8) and ().
    assert_eq!(outer.get(0).unwrap().as_tuple().unwrap().len(), 2);
    assert_eq!(outer.get(1).unwrap().as_tuple().unwrap().len(), 3);
    assert!(outer.get(2).unwrap().as_tuple().unwrap().is_empty());

    // DICT from a mark, SETITEM, SETITEMS; a repeated key keeps the last.
    let pickle = root(b"(\x8c\x01aK\x01d\x8c\x01bK\x02s(\x8c\x01aK\x03\x8c\x01cNu.");
    let dict = pickle.root().as_dict().unwrap();
    assert_eq!(dict.get("a").unwrap().as_i64(), Some(3));
    assert_eq!(dict.get("b").unwrap().as_i64(), Some(2));
    assert!(dict.get("c").unwrap().is_none());
    assert!(dict.get("d").is_none());

    let pickle = root(b"\x8f(K\x01K\x02\x90.");
    assert!(matches!(pickle.root().value(), Value::Ref(_)));
    assert_eq!(pickle.root().describe(), "set of 2");
    assert_eq!(root(b"(K\x01\x91.").root().describe(), "set of 1");
}

#[test]
fn memoized_containers_are_shared() {
    // l = []; (l, l) memoized, then an item appended to l after the tuple
    // is built: both references see it, as in Python.
    let pickle = root(b"]\x94h\x00h\x00\x86\x94h\x00K\x07a0.");
    let pair = pickle.root().as_tuple().unwrap();
    for item in pair.iter() {
        let list = item.as_list().unwrap();
        assert_eq!(list.get(0).unwrap().as_i64(), Some(7));
    }
    // PUT and GET with text indices, LONG_BINPUT and LONG_BINGET.
    assert_eq!(root(b"K\x05p3\n0g3\n.").root().as_i64(), Some(5));
    assert_eq!(
        root(b"K\x06r\x00\x01\x00\x000j\x00\x01\x00\x00.")
            .root()
            .as_i64(),
        Some(6)
    );
}

#[test]
fn marks_are_fences() {
    // POP on an open mark discards the mark (`_pickle.c` load_pop).
    assert_eq!(root(b"K\x01(0.").root().as_i64(), Some(1));
    // POP_MARK drops everything above the mark.
    assert_eq!(root(b"K\x01(K\x02K\x031.").root().as_i64(), Some(1));
    // Values below a mark cannot be popped while it is open.
    invalid(b"K\x01(a.", "stack underflow");
    invalid(b"K\x01(.", "stack underflow");
}

// --- Globals and objects ----------------------------------------------------------------

#[test]
fn objects_record_their_class_arguments_and_state() {
    let bytes = Bytes::proto(4)
        .global("sklearn.tree._classes", "DecisionTreeClassifier")
        .op(op::EMPTY_TUPLE)
        .op(op::NEWOBJ)
        .op(op::EMPTY_DICT)
        .str("max_depth")
        .int(3)
        .op(op::SETITEM)
        .op(op::BUILD)
        .stop();
    let pickle = root(&bytes);
    let object = pickle.root().as_object().unwrap();
    let class = object.class().unwrap();
    assert!(class.is("sklearn.tree._classes", "DecisionTreeClassifier"));
    assert_eq!(
        class.to_string(),
        "sklearn.tree._classes.DecisionTreeClassifier"
    );
    assert!(object.args().is_empty());
    assert_eq!(
        object
            .attributes()
            .unwrap()
            .get("max_depth")
            .unwrap()
            .as_i64(),
        Some(3)
    );
    assert_eq!(
        pickle.root().describe(),
        "sklearn.tree._classes.DecisionTreeClassifier object"
    );
}

#[test]
fn reduce_newobj_ex_inst_and_obj() {
    // REDUCE of a function with arguments, and SETITEMS on the result (an
    // OrderedDict).
    let pickle = root(b"\x80\x02ccollections\nOrderedDict\n)R(\x8c\x01kK\x01u.");
    let object = pickle.root().as_object().unwrap();
    assert!(object.class().unwrap().is("collections", "OrderedDict"));
    assert_eq!(object.dict_items().get("k").unwrap().as_i64(), Some(1));

    let bytes = Bytes::proto(4)
        .global("m", "C")
        .int(1)
        .op(op::TUPLE1)
        .op(op::EMPTY_DICT)
        .str("k")
        .int(2)
        .op(op::SETITEM)
        .op(op::NEWOBJ_EX)
        .stop();
    let pickle = root(&bytes);
    let object = pickle.root().as_object().unwrap();
    assert_eq!(object.args().get(0).unwrap().as_i64(), Some(1));
    assert_eq!(object.kwargs().unwrap().get("k").unwrap().as_i64(), Some(2));

    // Protocol 0 INST and protocol 1 OBJ.
    let pickle = root(b"(K\x01imod\nKlass\n.");
    let object = pickle.root().as_object().unwrap();
    assert!(object.class().unwrap().is("mod", "Klass"));
    assert_eq!(object.args().len(), 1);
    let pickle = root(b"(cmod\nKlass\nK\x01K\x02o.");
    assert_eq!(pickle.root().as_object().unwrap().args().len(), 2);
}

#[test]
fn plain_data_builtins_are_evaluated() {
    // Protocol 2 bytes and a Python 2 module name.
    let pickle =
        root(b"\x80\x02c_codecs\nencode\nX\x03\x00\x00\x00\xc3\xbfaX\x06\x00\x00\x00latin1\x86R.");
    assert_eq!(pickle.root().as_bytes(), Some(&[0xff, b'a'][..]));
    let pickle = root(b"\x80\x02c__builtin__\nbytearray\nC\x01z\x85R.");
    assert_eq!(pickle.root().as_bytes(), Some(&b"z"[..]));
    // copyreg._reconstructor(cls, object, None): a plain instance.
    let pickle =
        root(b"ccopy_reg\n_reconstructor\n(cmod\nKlass\nc__builtin__\nobject\nNtR(dS'a'\nI01\nsb.");
    let object = pickle.root().as_object().unwrap();
    assert!(object.class().unwrap().is("mod", "Klass"));
    assert_eq!(
        object.attributes().unwrap().get("a").unwrap().as_bool(),
        Some(true)
    );
    // Other calls stay objects: nothing is run.
    let pickle = root(b"cos\nsystem\n(S'ls'\ntR.");
    assert!(pickle
        .root()
        .as_object()
        .unwrap()
        .class()
        .unwrap()
        .is("os", "system"));
}

// --- numpy ------------------------------------------------------------------------------

#[test]
fn arrays_in_both_byte_orders_and_orders() {
    let little: Vec<u8> = [1.5f64, -2.0]
        .iter()
        .flat_map(|v| v.to_le_bytes())
        .collect();
    let bytes = Bytes::proto(4)
        .array(&[2], false, |b| b.dtype("f8", "<", -1), &little)
        .stop();
    let pickle = root(&bytes);
    let array = numpy::ndarray(pickle.root()).unwrap();
    assert_eq!(array.shape, vec![2]);
    assert_eq!(array.to_f64().unwrap(), vec![1.5, -2.0]);

    let big: Vec<u8> = [7i32, -8].iter().flat_map(|v| v.to_be_bytes()).collect();
    let bytes = Bytes::proto(4)
        .array(&[2], false, |b| b.dtype("i4", ">", -1), &big)
        .stop();
    let pickle = root(&bytes);
    assert_eq!(
        numpy::ndarray(pickle.root()).unwrap().to_i64().unwrap(),
        vec![7, -8]
    );

    // [[1, 2, 3], [4, 5, 6]] stored in Fortran order: 1 4 2 5 3 6.
    let fortran: Vec<u8> = [1u16, 4, 2, 5, 3, 6]
        .iter()
        .flat_map(|v| v.to_le_bytes())
        .collect();
    let bytes = Bytes::proto(4)
        .array(&[2, 3], true, |b| b.dtype("u2", "<", -1), &fortran)
        .stop();
    let pickle = root(&bytes);
    let array = numpy::ndarray(pickle.root()).unwrap();
    assert_eq!(array.to_i64().unwrap(), vec![1, 2, 3, 4, 5, 6]);
}

#[test]
fn string_arrays_and_scalars() {
    // <U2 ["ab", "c"]: UTF-32, NUL-padded.
    let data: Vec<u8> = ['a', 'b', 'c', '\0']
        .iter()
        .flat_map(|&c| (c as u32).to_le_bytes())
        .collect();
    let bytes = Bytes::proto(4)
        .array(&[2], false, |b| b.dtype("U2", "<", 8), &data)
        .stop();
    let pickle = root(&bytes);
    let array = numpy::ndarray(pickle.root()).unwrap();
    assert_eq!(array.dtype.kind, Kind::Unicode);
    assert_eq!(array.to_strings().unwrap(), vec!["ab", "c"]);

    // numpy.int64(5) as `scalar(dtype, raw bytes)`.
    let bytes = Bytes::proto(4)
        .global("numpy.core.multiarray", "scalar")
        .dtype("i8", "<", -1)
        .bytes(&5i64.to_le_bytes())
        .op(op::TUPLE2)
        .op(op::REDUCE)
        .stop();
    let pickle = root(&bytes);
    assert_eq!(numpy::as_i64(pickle.root()), Some(5));
    assert_eq!(numpy::as_f64(pickle.root()), Some(5.0));
    assert_eq!(numpy::as_bool(pickle.root()), None);
}

#[test]
fn structured_arrays_give_their_fields() {
    // dtype([("a", "<i8"), ("b", "<f8")]): 16-byte records.
    let bytes = Bytes::proto(4)
        .array(
            &[2],
            false,
            |b| {
                b.global("numpy", "dtype")
                    .str("V16")
                    .op(op::NEWFALSE)
                    .op(op::NEWTRUE)
                    .op(op::TUPLE3)
                    .op(op::REDUCE)
                    .op(op::MARK)
                    .int(3)
                    .str("|")
                    .op(op::NONE)
                    .str("a")
                    .str("b")
                    .op(op::TUPLE2)
                    .op(op::EMPTY_DICT)
                    .str("a")
                    .dtype("i8", "<", -1)
                    .int(0)
                    .op(op::TUPLE2)
                    .op(op::SETITEM)
                    .str("b")
                    .dtype("f8", "<", -1)
                    .int(8)
                    .op(op::TUPLE2)
                    .op(op::SETITEM)
                    .int(16)
                    .int(1)
                    .int(16)
                    .op(op::TUPLE)
                    .op(op::BUILD)
            },
            &[
                3i64.to_le_bytes(),
                0.25f64.to_le_bytes(),
                (-4i64).to_le_bytes(),
                8.5f64.to_le_bytes(),
            ]
            .concat(),
        )
        .stop();
    let pickle = root(&bytes);
    let array = numpy::ndarray(pickle.root()).unwrap();
    assert!(array.has_field("a"));
    assert_eq!(array.field("a").unwrap().to_i64().unwrap(), vec![3, -4]);
    assert_eq!(array.field("b").unwrap().to_f64().unwrap(), vec![0.25, 8.5]);
    assert!(matches!(array.field("c"), Err(Error::InvalidModel(_))));
}

#[test]
fn inconsistent_arrays_are_invalid() {
    // Three float64 values declared, two given.
    let data: Vec<u8> = [1.0f64, 2.0].iter().flat_map(|v| v.to_le_bytes()).collect();
    let bytes = Bytes::proto(4)
        .array(&[3], false, |b| b.dtype("f8", "<", -1), &data)
        .stop();
    let pickle = root(&bytes);
    assert!(matches!(
        numpy::ndarray(pickle.root()),
        Err(Error::InvalidModel(_))
    ));
    // A shape whose element count overflows.
    let bytes = Bytes::proto(4)
        .array(
            &[i32::MAX, i32::MAX, i32::MAX],
            false,
            |b| b.dtype("f8", "<", -1),
            &data,
        )
        .stop();
    let pickle = root(&bytes);
    assert!(matches!(
        numpy::ndarray(pickle.root()),
        Err(Error::InvalidModel(_))
    ));
    // Complex numbers are valid numpy but not ours.
    let bytes = Bytes::proto(4)
        .array(&[1], false, |b| b.dtype("c16", "<", -1), &[0; 16])
        .stop();
    let pickle = root(&bytes);
    assert!(matches!(
        numpy::ndarray(pickle.root()),
        Err(Error::Unsupported(_))
    ));
    // Not an array at all.
    assert!(matches!(
        numpy::ndarray(root(b"K\x01.").root()),
        Err(Error::InvalidModel(_))
    ));
}

#[test]
fn a_dtype_that_contains_itself_is_refused() {
    // d = dtype("V8"); d's state names a field whose dtype is d (memo 0).
    let bytes = Bytes::proto(4)
        .global("numpy", "dtype")
        .str("V8")
        .op(op::NEWFALSE)
        .op(op::NEWTRUE)
        .op(op::TUPLE3)
        .op(op::REDUCE)
        .op(op::MEMOIZE)
        .op(op::MARK)
        .int(3)
        .str("|")
        .op(op::NONE)
        .str("x")
        .op(op::TUPLE1)
        .op(op::EMPTY_DICT)
        .str("x")
        .raw(&[op::BINGET, 0])
        .int(0)
        .op(op::TUPLE2)
        .op(op::SETITEM)
        .int(8)
        .int(1)
        .int(16)
        .op(op::TUPLE)
        .op(op::BUILD)
        .stop();
    let pickle = root(&bytes);
    match numpy::dtype(pickle.root()) {
        Err(Error::InvalidModel(message)) => {
            assert!(message.contains("nested too deeply"), "{message}")
        }
        other => panic!("expected InvalidModel, got {other:?}"),
    }
}

// --- Corrupt and hostile input ----------------------------------------------------------

#[test]
fn truncated_and_unknown_input_is_invalid() {
    invalid(b"", "no STOP");
    invalid(b"\x80\x04K\x01", "no STOP");
    invalid(b"\x80", "truncated operand");
    invalid(b"J\x01\x02", "truncated operand");
    invalid(b"I12", "without a newline");
    invalid(b"\xff.", "unknown opcode");
    invalid(b"Fabc\n.", "malformed float");
    invalid(b"Inope\n.", "malformed integer");
    // Python's own limit on decimal digits (the conversion is quadratic).
    let mut huge = b"I".to_vec();
    huge.extend(std::iter::repeat_n(b'7', 5000));
    huge.extend_from_slice(b"\n.");
    invalid(&huge, "malformed integer");
    invalid(b"S'unterminated\n.", "not quoted");
    invalid(b"X\x02\x00\x00\x00\xff\xfe.", "not UTF-8");
}

#[test]
fn stack_and_memo_misuse_is_invalid() {
    invalid(b".", "stack underflow");
    invalid(b"0.", "stack underflow");
    invalid(b"2.", "stack underflow");
    invalid(b"R.", "stack underflow");
    invalid(b"K\x01R.", "stack underflow");
    invalid(b"1.", "no mark to close");
    invalid(b"t.", "no mark to close");
    invalid(b"h\x05.", "memo has no entry 5");
    invalid(b"j\x00\x00\x00\x01.", "memo has no entry 16777216");
    invalid(b"g12\n.", "memo has no entry 12");
    invalid(b"\x94.", "stack underflow");
    invalid(b"(K\x01d.", "odd number of dict items");
    invalid(b")K\x01a.", "not a list");
    invalid(b"K\x00K\x01K\x02s.", "not a container");
    invalid(b"NN\x93.", "two strings");
    invalid(b"cmod\nf\nK\x01R.", "not a tuple");
    invalid(b"]Nb.", "not an object");
    invalid(b"cmod\nC\n)\x81NbNb.", "applied twice");
    invalid(b"K\x01\x98.", "not a buffer");
}

#[test]
fn hostile_lengths_are_checked_before_allocating() {
    invalid(b"\x8d\xff\xff\xff\xff\xff\xff\xff\x7f.", "exceeds");
    invalid(b"\x8e\x00\x00\x00\x00\x00\x00\x00\x80.", "exceeds");
    invalid(b"\x96\x00\x00\x00\x00\x01\x00\x00\x00.", "exceeds");
    invalid(b"X\xff\xff\xff\xff.", "exceeds");
    invalid(b"B\xff\xff\xff\xffab.", "exceeds");
    invalid(b"\x8b\xff\xff\xff\xff.", "negative length");
    invalid(b"T\xfe\xff\xff\xff.", "negative length");
    invalid(b"\x8b\x00\x00\x00\x40.", "exceeds");
    invalid(b"\x95\xff\xff\xff\xff\xff\xff\xff\xffK\x01.", "exceeds");
}

#[test]
fn features_needing_the_caller_are_unsupported() {
    unsupported(b"\x80\x06K\x01.", "protocol 6");
    unsupported(b"Pid\n.", "persistent ids");
    unsupported(b"K\x01Q.", "persistent ids");
    unsupported(b"\x97.", "out-of-band buffers");
    unsupported(b"\x82\x01.", "extension registry");
}

#[test]
fn limits_bound_stack_marks_and_containers() {
    let small = Limits {
        max_stack: 4,
        max_marks: 2,
        max_composites: 3,
    };
    let check = |bytes: &[u8], expected: &str| match parse_with_limits(bytes, small) {
        Err(Error::InvalidModel(message)) => assert!(message.contains(expected), "{message}"),
        other => panic!("expected InvalidModel, got {other:?}"),
    };
    check(b"NNNNN.", "stack too deep");
    check(b"(((.", "too many nested marks");
    check(b"]]]].", "too many containers");
    assert!(parse_with_limits(b"NNNN.", small).is_ok());
}

#[test]
fn repeated_conversions_cannot_outgrow_the_input() {
    // One 4 KiB string memoized, then `_codecs.encode` of it called again
    // and again: each call costs the string's length.
    let text = "a".repeat(4096);
    let mut bytes = Bytes::proto(4)
        .global("_codecs", "encode")
        .op(op::MEMOIZE)
        .str(&text)
        .str("latin1")
        .op(op::TUPLE2)
        .op(op::MEMOIZE)
        .op(op::POP)
        .op(op::POP);
    for _ in 0..200 {
        bytes = bytes.raw(&[op::BINGET, 0, op::BINGET, 1, op::REDUCE, op::POP]);
    }
    let bytes = bytes.op(op::NONE).stop();
    invalid(&bytes, "converts more data than the pickle holds");
}
