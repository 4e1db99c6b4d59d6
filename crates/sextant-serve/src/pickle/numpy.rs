//! numpy values in a pickle: arrays, dtypes and scalars, read from the
//! objects the reader records for them.
//!
//! numpy pickles (numpy's `ndarray.__reduce_ex__` and `dtype.__reduce__`,
//! in `numpy/_core/src/multiarray/methods.c` and `descriptor.c`):
//! - an array below protocol 5, or of `object` dtype:
//!   `numpy._core.multiarray._reconstruct(numpy.ndarray, (0,), b"b")` (the
//!   module is `numpy.core.multiarray` before numpy 2) then `BUILD` with
//!   `(version, shape, dtype, is_fortran, data)`, where `data` is the raw
//!   bytes, or the list of elements for `object` arrays;
//! - an array at protocol 5: `numpy._core.numeric._frombuffer(buffer, dtype,
//!   shape, order)`, the buffer pickled in band as `BYTEARRAY8`;
//! - a dtype: `numpy.dtype(code, False, True)`, e.g. `"f8"`, `"U3"`,
//!   `"V64"`, then `BUILD` with `(version, byte_order, subarray, names,
//!   fields, item_size, alignment, flags)` (version 3; version 4 adds
//!   metadata). `fields` maps each name of a structured dtype to
//!   `(dtype, offset)`;
//! - a scalar: `numpy._core.multiarray.scalar(dtype, raw bytes)`, or
//!   `scalar(dtype, value)` for `object`.
//!
//! Arrays are returned in C order whatever order they were pickled in.

use std::borrow::Cow;

use crate::error::{Error, Result};
use crate::pickle::{encode_latin1, Node, ObjectNode};

/// The element type of an array.
#[derive(Debug, Clone, PartialEq)]
pub struct Dtype {
    pub kind: Kind,
    /// Bytes per element.
    pub item_size: usize,
    /// Whether multi-byte numbers are stored big-endian.
    pub big_endian: bool,
    /// The named fields of a structured dtype (kind [`Kind::Void`]).
    pub fields: Vec<Field>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    Bool,
    Int,
    UInt,
    Float,
    /// `U`: UTF-32 code units, NUL-padded.
    Unicode,
    /// `S`: bytes, NUL-padded.
    Bytes,
    /// `V`: raw records, structured when the dtype has fields.
    Void,
    /// `O`: Python objects.
    Object,
}

/// One field of a structured dtype.
#[derive(Debug, Clone, PartialEq)]
pub struct Field {
    pub name: String,
    pub offset: usize,
    pub dtype: Dtype,
}

/// An array, its elements in C (row-major) order.
#[derive(Debug, Clone)]
pub struct NdArray<'p> {
    pub dtype: Dtype,
    pub shape: Vec<usize>,
    data: Data<'p>,
}

#[derive(Debug, Clone)]
enum Data<'p> {
    /// `len × item_size` bytes.
    Raw(Cow<'p, [u8]>),
    /// The elements of an `object` array.
    Objects(Vec<Node<'p>>),
}

/// Nested dtypes (fields of fields) deeper than this are refused: a
/// hostile pickle could make a dtype its own field.
const MAX_DTYPE_DEPTH: usize = 8;

fn invalid(message: impl Into<String>) -> Error {
    Error::invalid(format!("numpy: {}", message.into()))
}

fn is_numpy_module(module: &str, submodule: &str) -> bool {
    // numpy 2 renamed `numpy.core` to `numpy._core`; pickles use both.
    module
        .strip_prefix("numpy.core.")
        .or_else(|| module.strip_prefix("numpy._core."))
        == Some(submodule)
}

/// Whether `node` is a numpy array as numpy pickles them.
pub fn is_ndarray(node: Node<'_>) -> bool {
    let Some(class) = node.as_object().and_then(|object| object.class()) else {
        return false;
    };
    (class.name == "_reconstruct" && is_numpy_module(&class.module, "multiarray"))
        || (class.name == "_frombuffer" && is_numpy_module(&class.module, "numeric"))
}

/// Reads a numpy array.
pub fn ndarray(node: Node<'_>) -> Result<NdArray<'_>> {
    let object = node
        .as_object()
        .ok_or_else(|| invalid(format!("expected an array, found {}", node.describe())))?;
    let class = object
        .class()
        .ok_or_else(|| invalid("array constructor is not a global"))?;
    if class.name == "_reconstruct" && is_numpy_module(&class.module, "multiarray") {
        reconstructed(object)
    } else if class.name == "_frombuffer" && is_numpy_module(&class.module, "numeric") {
        from_buffer(object)
    } else {
        Err(invalid(format!(
            "expected an array, found {}",
            node.describe()
        )))
    }
}

/// `_reconstruct(ndarray, (0,), b"b")` and its `__setstate__` tuple.
fn reconstructed(object: ObjectNode<'_>) -> Result<NdArray<'_>> {
    let args = object.args();
    let subtype = args.get(0).and_then(|a| a.as_global());
    match subtype {
        Some(g) if g.is("numpy", "ndarray") => {}
        // `numpy.matrix`, masked arrays, … carry more than an ndarray.
        Some(g) => return Err(Error::unsupported(format!("numpy array subclass {g}"))),
        None => return Err(invalid("_reconstruct without an array type")),
    }
    let state = object
        .state()
        .and_then(|s| s.as_tuple())
        .ok_or_else(|| invalid("array without a state tuple"))?;
    // `(version, shape, dtype, is_fortran, data)`, or without the version
    // (numpy's `array_setstate` takes both).
    let offset = match state.len() {
        5 => 1,
        4 => 0,
        n => return Err(invalid(format!("array state of {n} items"))),
    };
    let field = |i: usize| {
        state
            .get(offset + i)
            .ok_or_else(|| invalid("short array state"))
    };
    let shape = shape_of(field(0)?)?;
    let dtype = dtype_at_depth(field(1)?, 0)?;
    let is_fortran = field(2)?
        .as_bool()
        .or_else(|| field(2).ok()?.as_i64().map(|i| i != 0))
        .ok_or_else(|| invalid("array is_fortran flag is not a bool"))?;
    let data = field(3)?;
    let data = if dtype.kind == Kind::Object {
        let items = data
            .as_list()
            .ok_or_else(|| invalid("object array data is not a list"))?;
        Data::Objects(items.iter().collect())
    } else if let Some(bytes) = data.as_bytes() {
        Data::Raw(Cow::Borrowed(bytes))
    } else if let Some(text) = data.as_str() {
        // Python 2 pickles hold the data as a `str`, read as Latin-1.
        let bytes =
            encode_latin1(text).ok_or_else(|| invalid("array data string is not Latin-1"))?;
        Data::Raw(Cow::Owned(bytes))
    } else {
        return Err(invalid(format!("array data is {}", data.describe())));
    };
    NdArray::new(dtype, shape, data, is_fortran)
}

/// `_frombuffer(buffer, dtype, shape, order)`.
fn from_buffer(object: ObjectNode<'_>) -> Result<NdArray<'_>> {
    let args = object.args();
    if args.len() != 4 {
        return Err(invalid(format!(
            "_frombuffer with {} arguments",
            args.len()
        )));
    }
    let arg = |i: usize| {
        args.get(i)
            .ok_or_else(|| invalid("short _frombuffer arguments"))
    };
    let bytes = arg(0)?
        .as_bytes()
        .ok_or_else(|| invalid("_frombuffer buffer is not bytes"))?;
    let dtype = dtype_at_depth(arg(1)?, 0)?;
    let shape = shape_of(arg(2)?)?;
    let is_fortran = match arg(3)?.as_str() {
        Some("C") => false,
        Some("F") => true,
        _ => return Err(invalid("_frombuffer order is not 'C' or 'F'")),
    };
    if dtype.kind == Kind::Object {
        return Err(invalid("_frombuffer of an object dtype"));
    }
    NdArray::new(dtype, shape, Data::Raw(Cow::Borrowed(bytes)), is_fortran)
}

fn shape_of(node: Node<'_>) -> Result<Vec<usize>> {
    let dims = node
        .as_tuple()
        .ok_or_else(|| invalid(format!("array shape is {}", node.describe())))?;
    dims.iter()
        .map(|d| {
            d.as_i64()
                .and_then(|d| usize::try_from(d).ok())
                .ok_or_else(|| invalid("array dimension is not a non-negative int"))
        })
        .collect()
}

/// Reads a `numpy.dtype`.
pub fn dtype(node: Node<'_>) -> Result<Dtype> {
    dtype_at_depth(node, 0)
}

fn dtype_at_depth(node: Node<'_>, depth: usize) -> Result<Dtype> {
    if depth > MAX_DTYPE_DEPTH {
        return Err(invalid("dtype nested too deeply"));
    }
    let object = node
        .as_object()
        .filter(|o| o.class().is_some_and(|g| g.is("numpy", "dtype")))
        .ok_or_else(|| invalid(format!("expected a dtype, found {}", node.describe())))?;
    let code = object
        .args()
        .get(0)
        .and_then(|c| c.as_str())
        .ok_or_else(|| invalid("dtype without a type code"))?;
    let state = object
        .state()
        .and_then(|s| s.as_tuple())
        .ok_or_else(|| invalid(format!("dtype {code:?} without a state tuple")))?;
    let version = state.get(0).and_then(|v| v.as_i64());
    if !matches!((version, state.len()), (Some(3), 8) | (Some(4), 9)) {
        return Err(Error::unsupported(format!(
            "numpy dtype state version {version:?} with {} items",
            state.len()
        )));
    }
    let item = |i: usize| state.get(i).ok_or_else(|| invalid("short dtype state"));
    let big_endian = match item(1)?.as_str() {
        Some(">") => true,
        // numpy writes the machine's order as `<` or `>`; `=` (native) and
        // `|` (not applicable) are read as little-endian, the order of
        // every platform numpy wheels exist for but s390x.
        Some("<" | "=" | "|") => false,
        _ => return Err(invalid(format!("dtype {code:?} has no valid byte order"))),
    };
    if !item(2)?.is_none() {
        return Err(Error::unsupported(format!(
            "numpy sub-array dtype {code:?}"
        )));
    }
    let (kind, code_size) = parse_type_code(code)?;
    let state_size = item(5)?
        .as_i64()
        .ok_or_else(|| invalid("dtype item size is not an int"))?;
    // Flexible types (`U`, `S`, `V`) carry their size in the state; the
    // others have -1 there and their size in the code.
    let item_size = match kind {
        Kind::Unicode | Kind::Bytes | Kind::Void => usize::try_from(state_size)
            .map_err(|_| invalid(format!("dtype {code:?} with item size {state_size}")))?,
        _ => code_size,
    };
    if kind == Kind::Unicode && item_size % 4 != 0 {
        return Err(invalid(format!("unicode dtype of {item_size} bytes")));
    }
    let fields = if item(3)?.is_none() {
        Vec::new()
    } else {
        structured_fields(item(3)?, item(4)?, item_size, depth)?
    };
    Ok(Dtype {
        kind,
        item_size,
        big_endian,
        fields,
    })
}

/// `names` (a tuple) and `fields` (name → `(dtype, offset[, title])`) of a
/// structured dtype.
fn structured_fields(
    names: Node<'_>,
    fields: Node<'_>,
    item_size: usize,
    depth: usize,
) -> Result<Vec<Field>> {
    let names = names
        .as_tuple()
        .ok_or_else(|| invalid("structured dtype names are not a tuple"))?;
    let fields = fields
        .as_dict()
        .ok_or_else(|| invalid("structured dtype fields are not a dict"))?;
    names
        .iter()
        .map(|name| {
            let name = name
                .as_str()
                .ok_or_else(|| invalid("structured dtype field name is not a string"))?;
            let entry = fields
                .get(name)
                .and_then(|e| e.as_tuple())
                .filter(|e| e.len() >= 2)
                .ok_or_else(|| invalid(format!("structured dtype has no field {name:?}")))?;
            let dtype = dtype_at_depth(
                entry.get(0).ok_or_else(|| invalid("empty field"))?,
                depth + 1,
            )?;
            let offset = entry
                .get(1)
                .and_then(|o| o.as_i64())
                .and_then(|o| usize::try_from(o).ok())
                .ok_or_else(|| invalid(format!("field {name:?} has no valid offset")))?;
            if offset
                .checked_add(dtype.item_size)
                .is_none_or(|end| end > item_size)
            {
                return Err(invalid(format!(
                    "field {name:?} overruns its {item_size}-byte record"
                )));
            }
            Ok(Field {
                name: name.to_owned(),
                offset,
                dtype,
            })
        })
        .collect()
}

/// The kind and size of a type code such as `f8`, `i4`, `b1`, `U3`, `O8`.
fn parse_type_code(code: &str) -> Result<(Kind, usize)> {
    let mut chars = code.chars();
    let letter = chars.next().ok_or_else(|| invalid("empty dtype code"))?;
    let digits = chars.as_str();
    let size = if digits.is_empty() {
        0
    } else {
        digits
            .parse::<usize>()
            .map_err(|_| invalid(format!("dtype code {code:?}")))?
    };
    let kind = match (letter, size) {
        ('b', 1) => Kind::Bool,
        ('i', 1 | 2 | 4 | 8) => Kind::Int,
        ('u', 1 | 2 | 4 | 8) => Kind::UInt,
        ('f', 2 | 4 | 8) => Kind::Float,
        ('U', _) => Kind::Unicode,
        ('S', _) => Kind::Bytes,
        ('V', _) => Kind::Void,
        ('O', _) => Kind::Object,
        // Complex, long double, datetime, timedelta, ….
        _ => return Err(Error::unsupported(format!("numpy dtype {code:?}"))),
    };
    let size = if kind == Kind::Object { 8 } else { size };
    Ok((kind, size))
}

/// Reads a numpy scalar (`numpy.float64(1.5)`, `numpy.int64(3)`, …) as a
/// zero-dimensional array.
pub fn scalar(node: Node<'_>) -> Result<NdArray<'_>> {
    let object = node
        .as_object()
        .filter(|o| {
            o.class()
                .is_some_and(|g| g.name == "scalar" && is_numpy_module(&g.module, "multiarray"))
        })
        .ok_or_else(|| {
            invalid(format!(
                "expected a numpy scalar, found {}",
                node.describe()
            ))
        })?;
    let args = object.args();
    let dtype = dtype(
        args.get(0)
            .ok_or_else(|| invalid("scalar without a dtype"))?,
    )?;
    let value = args
        .get(1)
        .ok_or_else(|| invalid("scalar without a value"))?;
    let data = if dtype.kind == Kind::Object {
        Data::Objects(vec![value])
    } else if let Some(bytes) = value.as_bytes() {
        Data::Raw(Cow::Borrowed(bytes))
    } else if let Some(text) = value.as_str() {
        let bytes =
            encode_latin1(text).ok_or_else(|| invalid("scalar data string is not Latin-1"))?;
        Data::Raw(Cow::Owned(bytes))
    } else {
        return Err(invalid(format!("scalar data is {}", value.describe())));
    };
    NdArray::new(dtype, Vec::new(), data, false)
}

fn is_numpy_scalar(node: Node<'_>) -> bool {
    node.as_object()
        .and_then(|o| o.class())
        .is_some_and(|g| g.name == "scalar" && is_numpy_module(&g.module, "multiarray"))
}

/// A Python `int` or a numpy integer scalar.
pub fn as_i64(node: Node<'_>) -> Option<i64> {
    if let Some(value) = node.as_i64() {
        return Some(value);
    }
    if !is_numpy_scalar(node) {
        return None;
    }
    let array = scalar(node).ok()?;
    match array.dtype.kind {
        Kind::Int | Kind::UInt => array.to_i64().ok()?.first().copied(),
        _ => None,
    }
}

/// A Python `float` or `int`, or a numpy number scalar, as `f64`.
pub fn as_f64(node: Node<'_>) -> Option<f64> {
    if let Some(value) = node.as_f64() {
        return Some(value);
    }
    if !is_numpy_scalar(node) {
        return None;
    }
    let array = scalar(node).ok()?;
    match array.dtype.kind {
        Kind::Int | Kind::UInt | Kind::Float => array.to_f64().ok()?.first().copied(),
        _ => None,
    }
}

/// A Python `bool` or a numpy `bool_` scalar.
pub fn as_bool(node: Node<'_>) -> Option<bool> {
    if let Some(value) = node.as_bool() {
        return Some(value);
    }
    if !is_numpy_scalar(node) {
        return None;
    }
    let array = scalar(node).ok()?;
    match array.dtype.kind {
        Kind::Bool => array.raw().and_then(|raw| raw.first()).map(|&b| b != 0),
        _ => None,
    }
}

impl<'p> NdArray<'p> {
    fn new(
        dtype: Dtype,
        shape: Vec<usize>,
        data: Data<'p>,
        is_fortran: bool,
    ) -> Result<NdArray<'p>> {
        let len = shape
            .iter()
            .try_fold(1usize, |acc, &d| acc.checked_mul(d))
            .ok_or_else(|| invalid(format!("array shape {shape:?} overflows")))?;
        let data = match data {
            Data::Raw(bytes) => {
                // Zero-sized elements would let a shape alone claim any
                // number of them.
                if dtype.item_size == 0 && len > 0 {
                    return Err(invalid(format!(
                        "array of shape {shape:?} with zero-sized elements"
                    )));
                }
                let expected = len
                    .checked_mul(dtype.item_size)
                    .ok_or_else(|| invalid(format!("array shape {shape:?} overflows")))?;
                if bytes.len() != expected {
                    return Err(invalid(format!(
                        "array of shape {shape:?} and {}-byte items holds {} bytes",
                        dtype.item_size,
                        bytes.len()
                    )));
                }
                if is_fortran && shape.len() > 1 && len > 0 {
                    let items: Vec<&[u8]> = bytes.chunks_exact(dtype.item_size).collect();
                    Data::Raw(Cow::Owned(fortran_to_c(&items, &shape).concat()))
                } else {
                    Data::Raw(bytes)
                }
            }
            Data::Objects(items) => {
                if items.len() != len {
                    return Err(invalid(format!(
                        "object array of shape {shape:?} holds {} items",
                        items.len()
                    )));
                }
                if is_fortran && shape.len() > 1 {
                    Data::Objects(fortran_to_c(&items, &shape))
                } else {
                    Data::Objects(items)
                }
            }
        };
        Ok(NdArray { dtype, shape, data })
    }

    /// The number of elements.
    pub fn len(&self) -> usize {
        match &self.data {
            // Zero-sized elements only exist in empty arrays (see `new`).
            Data::Raw(bytes) => bytes.len().checked_div(self.dtype.item_size).unwrap_or(0),
            Data::Objects(items) => items.len(),
        }
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// The raw bytes, C order; `None` for `object` arrays.
    pub fn raw(&self) -> Option<&[u8]> {
        match &self.data {
            Data::Raw(bytes) => Some(bytes),
            Data::Objects(_) => None,
        }
    }

    /// The elements of an `object` array.
    pub fn objects(&self) -> Option<&[Node<'p>]> {
        match &self.data {
            Data::Objects(items) => Some(items),
            Data::Raw(_) => None,
        }
    }

    fn elements(&self) -> impl Iterator<Item = &[u8]> {
        let size = self.dtype.item_size.max(1);
        self.raw().unwrap_or(&[]).chunks_exact(size)
    }

    /// Numbers (bool, int, uint or float elements) as `f64`; integers
    /// beyond 2^53 round as in numpy's `astype(float64)`.
    pub fn to_f64(&self) -> Result<Vec<f64>> {
        let big = self.dtype.big_endian;
        let size = self.dtype.item_size;
        let convert: fn(&[u8], bool) -> f64 = match (self.dtype.kind, size) {
            (Kind::Bool, 1) => |b, _| if b[0] != 0 { 1.0 } else { 0.0 },
            (Kind::Int, _) => |b, big| signed(b, big) as f64,
            (Kind::UInt, _) => |b, big| unsigned(b, big) as f64,
            (Kind::Float, 4) => |b, big| f32::from_bits(unsigned(b, big) as u32) as f64,
            (Kind::Float, 8) => |b, big| f64::from_bits(unsigned(b, big)),
            (Kind::Float, 2) => |b, big| f16_to_f64(unsigned(b, big) as u16),
            (Kind::Object, _) => {
                // `astype(float64)` of Python numbers (scikit-learn keeps
                // some statistics in object arrays).
                return self
                    .objects()
                    .unwrap_or(&[])
                    .iter()
                    .map(|&item| {
                        as_f64(item).ok_or_else(|| {
                            invalid(format!(
                                "object array holds {}, not a number",
                                item.describe()
                            ))
                        })
                    })
                    .collect();
            }
            _ => return Err(self.type_error("numbers")),
        };
        Ok(self.elements().map(|b| convert(b, big)).collect())
    }

    /// Integers (bool, int or uint elements) as `i64`.
    pub fn to_i64(&self) -> Result<Vec<i64>> {
        let big = self.dtype.big_endian;
        match self.dtype.kind {
            Kind::Bool | Kind::Int => Ok(self
                .elements()
                .map(|b| signed_or_bool(b, big, self.dtype.kind))
                .collect()),
            Kind::UInt => self
                .elements()
                .map(|b| {
                    i64::try_from(unsigned(b, big)).map_err(|_| invalid("uint64 value beyond i64"))
                })
                .collect(),
            _ => Err(self.type_error("integers")),
        }
    }

    /// Strings of a `U` or `S` array (trailing NULs removed, as numpy does
    /// when it reads an element), or of an `object` array of `str`.
    pub fn to_strings(&self) -> Result<Vec<String>> {
        let big = self.dtype.big_endian;
        match self.dtype.kind {
            Kind::Unicode => self
                .elements()
                .map(|element| {
                    let chars: Option<String> = element
                        .chunks_exact(4)
                        .map(|unit| char::from_u32(unsigned(unit, big) as u32))
                        .collect();
                    chars
                        .map(|s| s.trim_end_matches('\0').to_owned())
                        .ok_or_else(|| invalid("unicode array holds an invalid code point"))
                })
                .collect(),
            Kind::Bytes => self
                .elements()
                .map(|element| {
                    let end = element.iter().rposition(|&b| b != 0).map_or(0, |i| i + 1);
                    String::from_utf8(element[..end].to_vec())
                        .map_err(|_| invalid("bytes array holds a value that is not UTF-8"))
                })
                .collect(),
            Kind::Object => self
                .objects()
                .unwrap_or(&[])
                .iter()
                .map(|item| {
                    item.as_str()
                        .map(str::to_owned)
                        .ok_or_else(|| invalid(format!("object array holds {}", item.describe())))
                })
                .collect(),
            _ => Err(self.type_error("strings")),
        }
    }

    /// The named field of a structured array, as an array of the field's
    /// dtype and the same shape.
    pub fn field(&self, name: &str) -> Result<NdArray<'p>> {
        let field = self
            .dtype
            .fields
            .iter()
            .find(|f| f.name == name)
            .ok_or_else(|| invalid(format!("structured array has no field {name:?}")))?;
        let end = field.offset + field.dtype.item_size;
        let mut bytes = Vec::with_capacity(self.len() * field.dtype.item_size);
        for record in self.elements() {
            bytes.extend_from_slice(&record[field.offset..end]);
        }
        Ok(NdArray {
            dtype: field.dtype.clone(),
            shape: self.shape.clone(),
            data: Data::Raw(Cow::Owned(bytes)),
        })
    }

    /// Whether a structured array has the named field.
    pub fn has_field(&self, name: &str) -> bool {
        self.dtype.fields.iter().any(|f| f.name == name)
    }

    fn type_error(&self, wanted: &str) -> Error {
        invalid(format!(
            "expected {wanted}, found an array of {:?} ({} bytes)",
            self.dtype.kind, self.dtype.item_size
        ))
    }
}

fn unsigned(bytes: &[u8], big_endian: bool) -> u64 {
    let fold = |acc: u64, &b: &u8| acc << 8 | u64::from(b);
    if big_endian {
        bytes.iter().fold(0, fold)
    } else {
        bytes.iter().rev().fold(0, fold)
    }
}

fn signed(bytes: &[u8], big_endian: bool) -> i64 {
    let bits = bytes.len() * 8;
    let value = unsigned(bytes, big_endian);
    if bits >= 64 {
        value as i64
    } else {
        // Sign-extend from the element's width.
        ((value << (64 - bits)) as i64) >> (64 - bits)
    }
}

fn signed_or_bool(bytes: &[u8], big_endian: bool, kind: Kind) -> i64 {
    match kind {
        Kind::Bool => i64::from(bytes[0] != 0),
        _ => signed(bytes, big_endian),
    }
}

/// IEEE 754 half precision to `f64` (exact).
fn f16_to_f64(bits: u16) -> f64 {
    let sign = if bits & 0x8000 != 0 { -1.0 } else { 1.0 };
    let exponent = i32::from((bits >> 10) & 0x1f);
    let mantissa = f64::from(bits & 0x3ff);
    match exponent {
        0 => sign * mantissa * 2f64.powi(-24),
        31 if mantissa == 0.0 => sign * f64::INFINITY,
        31 => f64::NAN,
        _ => sign * (1.0 + mantissa / 1024.0) * 2f64.powi(exponent - 15),
    }
}

/// Elements stored in Fortran order (first index fastest), reordered to C
/// order (last index fastest).
fn fortran_to_c<T: Clone>(items: &[T], shape: &[usize]) -> Vec<T> {
    let len = items.len();
    let mut out = Vec::with_capacity(len);
    // Fortran strides, in elements.
    let mut strides = Vec::with_capacity(shape.len());
    let mut stride = 1usize;
    for &d in shape {
        strides.push(stride);
        stride = stride.saturating_mul(d);
    }
    let mut index = vec![0usize; shape.len()];
    for _ in 0..len {
        let source: usize = index.iter().zip(&strides).map(|(i, s)| i * s).sum();
        out.push(items[source].clone());
        // Advance the C-order multi-index.
        for axis in (0..shape.len()).rev() {
            index[axis] += 1;
            if index[axis] < shape[axis] {
                break;
            }
            index[axis] = 0;
        }
    }
    out
}
