//! scikit-learn models saved by skops (`skops.io.dump`), the format MLflow's
//! `sklearn` flavor writes by default outside Databricks (MLflow 3.17:
//! `serialization_format: skops`, `pickled_model: model.skops`).
//!
//! A skops file is a zip archive (entries stored, which is what
//! `skops.io.dump` and therefore MLflow write, or deflated when the caller
//! asked skops for `ZIP_DEFLATED`) holding `schema.json` and the numpy
//! arrays it names as `.npy` files. `schema.json` is a tree of nodes: JSON
//! objects naming a Python type (`__module__`, `__class__`), the skops
//! loader that rebuilds it (`__loader__`), its contents, and `__id__`, the
//! `id()` the object had when it was saved. skops' `get_tree` memoizes nodes
//! by `__id__` as it first meets them, before their children, so a node
//! whose id was already seen *is* that earlier object (an int or a dtype
//! shared by many attributes, or an object inside itself). The root also
//! carries `protocol` (2 for skops 0.16; 0 and 1 differ only in the
//! `FunctionNode` and `RandomGeneratorNode` layouts) and `_skops_version`.
//!
//! The loaders (`skops/io/_general.py`, `_numpy.py`, `_sklearn.py`,
//! `_scipy.py`, `_quantile_forest.py`, `_audit.py`):
//! - `JsonNode`: a Python primitive, `content` being its `json.dumps`
//!   (which writes `NaN` and `Infinity` for those floats);
//! - `DictNode` (`content`: key → node, `key_types`: a `ListNode` of the
//!   `TypeNode`s of the keys, as JSON keys are strings), `ListNode`,
//!   `TupleNode`, `SetNode` (`content`: a list of nodes);
//! - `ObjectNode`: `cls.__new__(cls)`, then `__setstate__(content)` (or an
//!   update of `__dict__`) unless `content` is absent or `None`;
//! - `TreeNode` (always `sklearn.tree._tree.Tree`), `LossNode` (the class
//!   named), `QuantileForestNode`: `constructor(*__reduce__.args)`, then
//!   `__setstate__(content)`, as `__reduce__` returned them;
//! - `NdArrayNode`: `type: numpy`, an `.npy` file (`__class__` `ndarray`,
//!   or a numpy scalar type such as `int64` for a scalar stored as a 0-d
//!   array); or `type: json`, an object array as `content`, the nested
//!   lists of `tolist()`, and its `shape`;
//! - `DTypeNode`: a dtype, stored as an empty array of it;
//! - `TypeNode`, `FunctionNode`: a module attribute;
//! - `BytesNode`, `BytearrayNode`: a file of raw bytes;
//! - `ConstructorFromReduceNode` (`cls(*content)`), `OperatorFuncNode`,
//!   `PartialNode`, `MethodNode`, `DefaultDictNode`, `SliceNode`,
//!   `RandomStateNode`, `RandomGeneratorNode`, `MaskedArrayNode`,
//!   `SparseMatrixNode` (an `.npz` file), and `CachedNode` (a reference to
//!   an earlier `__id__`).
//!
//! Rather than a second object model, this module writes the tree as a
//! pickle of the same objects, the way Python pickles them (`NEWOBJ` and
//! `BUILD` for an instance, `REDUCE` for a constructor call, an array as
//! `numpy._core.numeric._frombuffer(data, dtype, shape, order)`, a memo
//! entry per `__id__`), and [`crate::pickle`] reads that pickle: the
//! scikit-learn extraction then works on the very value graph it gets from
//! `model.pkl`. (Compared with cloudpickle's graph of the same estimator,
//! only what no extraction reads differs: scikit-learn's Cython losses and
//! numpy's random generators are instances of their classes here, where
//! pickle names their private constructor functions; dict keys that were
//! numpy scalars are the equal Python values.) Nothing is imported or
//! executed; a loader this module does not know gives
//! [`Error::Unsupported`] naming it.
//!
//! `.npy` files (numpy's `lib/format.py`): the magic `\x93NUMPY`, a major
//! and minor version, the header length (2 bytes little-endian in version
//! 1, 4 bytes in 2 and 3), then the header, a Python dict literal
//! (`{'descr': '<f8', 'fortran_order': False, 'shape': (3, 4), }`, Latin-1
//! text in versions 1 and 2, UTF-8 in 3), then the raw data. `descr` is a
//! type string, or for a structured dtype the list of `(name, descr)`
//! fields in order, unnamed `V` fields being padding (scikit-learn's `Tree`
//! nodes end with seven).
//!
//! Hostile input gives [`Error::InvalidModel`], never a panic: every length
//! is checked against the bytes present before it is trusted, the archive
//! may decompress at most [`Limits::max_total`] bytes in all (a file read
//! twice counts twice) and each entry must hold exactly the size its header
//! declares, `schema.json` is parsed with serde_json's nesting limit (so the
//! translation, which follows the JSON, cannot recurse deeply), and an
//! object that contains itself where a pickle cannot express it (inside a
//! tuple, or in its own constructor arguments) is refused.

#[cfg(test)]
mod tests;

use std::collections::HashMap;
use std::fmt;
use std::io::{Cursor, Read};

use serde::de::{self, Deserialize, Deserializer, MapAccess, SeqAccess, Visitor};
use zip::result::ZipError;
use zip::{CompressionMethod, ZipArchive};

use crate::error::{Error, Result};
use crate::pickle::numpy::{Dtype, Field, Kind};

/// Bounds on what an archive may make the reader decompress.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Limits {
    /// Bytes of all the files read, together.
    pub max_total: u64,
    /// Bytes of `schema.json`, which is parsed into memory whole (a tree
    /// of a forest or a boosting stage takes 10 to 20 KB of it).
    pub max_schema: u64,
}

impl Default for Limits {
    fn default() -> Limits {
        Limits {
            max_total: 2 << 30,
            max_schema: 256 << 20,
        }
    }
}

/// Reads a skops archive and writes its object as a pickle (protocol 4)
/// that [`crate::pickle::parse`] reads.
pub(crate) fn to_pickle(bytes: &[u8]) -> Result<Vec<u8>> {
    to_pickle_with_limits(bytes, Limits::default())
}

pub(crate) fn to_pickle_with_limits(bytes: &[u8], limits: Limits) -> Result<Vec<u8>> {
    let mut archive = Archive::open(bytes, limits)?;
    let schema: Json = serde_json::from_slice(&archive.read(SCHEMA, limits.max_schema)?)
        .map_err(|e| invalid(format!("{SCHEMA} is not JSON: {e}")))?;
    let protocol = protocol(&schema)?;
    let mut translator = Translator {
        archive,
        protocol,
        pickle: PickleWriter::new(),
        memo: HashMap::new(),
    };
    translator.node(&schema)?;
    Ok(translator.pickle.finish())
}

const SCHEMA: &str = "schema.json";

/// The newest skops protocol this reader knows (skops 0.16).
const SKOPS_PROTOCOL: i64 = 2;

fn invalid(message: impl Into<String>) -> Error {
    Error::invalid(format!("skops: {}", message.into()))
}

fn protocol(schema: &Json) -> Result<i64> {
    let value = schema
        .get("protocol")
        .ok_or_else(|| invalid(format!("{SCHEMA} has no protocol")))?;
    match value {
        Json::Number(number) => match number.as_i64() {
            Some(p) if p > SKOPS_PROTOCOL => Err(Error::unsupported(format!(
                "skops protocol {p} (this reader knows protocols up to {SKOPS_PROTOCOL})"
            ))),
            Some(p) if p >= 0 => Ok(p),
            _ => Err(invalid(format!("protocol {number} is not a valid version"))),
        },
        other => Err(invalid(format!("protocol is {}", other.describe()))),
    }
}

// --- The archive -----------------------------------------------------------------------

/// A deflate stream cannot expand one byte into more than about 1032.
const MAX_DEFLATE_RATIO: u64 = 1032;

/// At most this much is allocated ahead of the data actually read.
const INITIAL_CAPACITY: u64 = 16 << 20;

struct Archive<'a> {
    zip: ZipArchive<Cursor<&'a [u8]>>,
    limits: Limits,
    /// Bytes the archive may still decompress.
    budget: u64,
}

impl<'a> Archive<'a> {
    fn open(bytes: &'a [u8], limits: Limits) -> Result<Archive<'a>> {
        let zip = ZipArchive::new(Cursor::new(bytes)).map_err(|e| zip_error("the archive", e))?;
        Ok(Archive {
            zip,
            limits,
            budget: limits.max_total,
        })
    }

    /// The contents of the file `name`, of at most `limit` bytes.
    fn read(&mut self, name: &str, limit: u64) -> Result<Vec<u8>> {
        let mut file = self.zip.by_name(name).map_err(|e| match e {
            ZipError::FileNotFound => invalid(format!("the archive has no file {name:?}")),
            other => zip_error(name, other),
        })?;
        let declared = file.size();
        if declared > limit {
            return Err(invalid(format!(
                "{name} declares {declared} bytes, over this reader's limit of {limit}"
            )));
        }
        if declared > self.budget {
            return Err(invalid(format!(
                "{name} declares {declared} bytes, and the archive may decompress {} bytes \
                 in all ({} left)",
                self.limits.max_total, self.budget
            )));
        }
        let compressed = file.compressed_size();
        let plausible = match file.compression() {
            CompressionMethod::Stored => declared == compressed,
            CompressionMethod::Deflated => {
                declared
                    <= compressed
                        .saturating_mul(MAX_DEFLATE_RATIO)
                        .saturating_add(1024)
            }
            _ => true,
        };
        if !plausible {
            return Err(invalid(format!(
                "{name} declares {declared} bytes from {compressed} compressed ones"
            )));
        }
        let capacity = usize::try_from(declared.min(INITIAL_CAPACITY)).unwrap_or(0);
        let mut data = Vec::with_capacity(capacity);
        (&mut file)
            .take(declared.saturating_add(1))
            .read_to_end(&mut data)
            .map_err(|e| invalid(format!("reading {name}: {e}")))?;
        if data.len() as u64 != declared {
            return Err(invalid(format!(
                "{name} holds {} bytes, its header declares {declared}",
                data.len()
            )));
        }
        self.budget -= declared;
        Ok(data)
    }
}

fn zip_error(what: &str, error: ZipError) -> Error {
    match error {
        ZipError::UnsupportedArchive(why) => {
            Error::unsupported(format!("skops archive: {what}: {why}"))
        }
        ZipError::CompressionMethodNotSupported(method) => Error::unsupported(format!(
            "skops archive: {what} uses compression method {method}"
        )),
        ZipError::InvalidPassword => {
            Error::unsupported(format!("skops archive: {what} is encrypted"))
        }
        other => invalid(format!("{what}: {other}")),
    }
}

// --- JSON, in document order -----------------------------------------------------------

/// A JSON value that keeps the order of object members, as Python's
/// `json.loads` does: `DictNode` keys pair with `key_types` by position.
/// (serde_json's own `Value` sorts them unless its `preserve_order` feature
/// is on, which would change every JSON document the workspace writes.)
#[derive(Debug, Clone, PartialEq)]
enum Json {
    Null,
    Bool(bool),
    Number(serde_json::Number),
    String(String),
    Array(Vec<Json>),
    /// Members in document order, repeated keys included.
    Object(Vec<(String, Json)>),
}

impl Json {
    /// The member `key` of an object; the last one, as in Python.
    fn get(&self, key: &str) -> Option<&Json> {
        match self {
            Json::Object(members) => members.iter().rev().find(|(k, _)| k == key).map(|(_, v)| v),
            _ => None,
        }
    }

    fn as_str(&self) -> Option<&str> {
        match self {
            Json::String(text) => Some(text),
            _ => None,
        }
    }

    fn as_array(&self) -> Option<&[Json]> {
        match self {
            Json::Array(items) => Some(items),
            _ => None,
        }
    }

    fn describe(&self) -> &'static str {
        match self {
            Json::Null => "null",
            Json::Bool(_) => "a bool",
            Json::Number(_) => "a number",
            Json::String(_) => "a string",
            Json::Array(_) => "an array",
            Json::Object(_) => "an object",
        }
    }
}

impl<'de> Deserialize<'de> for Json {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Json, D::Error> {
        deserializer.deserialize_any(JsonVisitor)
    }
}

struct JsonVisitor;

impl<'de> Visitor<'de> for JsonVisitor {
    type Value = Json;

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("a JSON value")
    }

    fn visit_unit<E>(self) -> Result<Json, E> {
        Ok(Json::Null)
    }

    fn visit_bool<E>(self, value: bool) -> Result<Json, E> {
        Ok(Json::Bool(value))
    }

    fn visit_i64<E>(self, value: i64) -> Result<Json, E> {
        Ok(Json::Number(value.into()))
    }

    fn visit_u64<E>(self, value: u64) -> Result<Json, E> {
        Ok(Json::Number(value.into()))
    }

    fn visit_f64<E: de::Error>(self, value: f64) -> Result<Json, E> {
        serde_json::Number::from_f64(value)
            .map(Json::Number)
            .ok_or_else(|| E::custom("a number that is not finite"))
    }

    fn visit_str<E>(self, value: &str) -> Result<Json, E> {
        Ok(Json::String(value.to_owned()))
    }

    fn visit_string<E>(self, value: String) -> Result<Json, E> {
        Ok(Json::String(value))
    }

    fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<Json, A::Error> {
        let mut items = Vec::new();
        while let Some(item) = seq.next_element()? {
            items.push(item);
        }
        Ok(Json::Array(items))
    }

    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Json, A::Error> {
        let mut members = Vec::new();
        while let Some(member) = map.next_entry::<String, Json>()? {
            members.push(member);
        }
        Ok(Json::Object(members))
    }
}

/// The members of a JSON object as a Python dict holds them: each key once,
/// where it first appeared, with the value it was last given.
fn unique_members(members: &[(String, Json)]) -> Vec<(&str, &Json)> {
    let mut positions: HashMap<&str, usize> = HashMap::new();
    let mut unique: Vec<(&str, &Json)> = Vec::with_capacity(members.len());
    for (key, value) in members {
        match positions.get(key.as_str()) {
            Some(&position) => unique[position].1 = value,
            None => {
                positions.insert(key, unique.len());
                unique.push((key, value));
            }
        }
    }
    unique
}

// --- Nodes -----------------------------------------------------------------------------

/// A module attribute, as a node names its type.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Class<'j> {
    module: &'j str,
    name: &'j str,
}

impl Class<'static> {
    const fn of(module: &'static str, name: &'static str) -> Class<'static> {
        Class { module, name }
    }
}

impl Class<'_> {
    fn is(&self, module: &str, name: &str) -> bool {
        self.module == module && self.name == name
    }
}

impl fmt::Display for Class<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}.{}", self.module, self.name)
    }
}

/// A node of the schema: a JSON object.
#[derive(Clone, Copy)]
struct State<'j> {
    json: &'j Json,
}

impl<'j> State<'j> {
    fn new(json: &'j Json) -> Result<State<'j>> {
        match json {
            Json::Object(_) => Ok(State { json }),
            other => Err(invalid(format!(
                "a node is {}, not an object",
                other.describe()
            ))),
        }
    }

    fn get(&self, key: &str) -> Option<&'j Json> {
        self.json.get(key)
    }

    /// What the node says it is, for error messages.
    fn describe(&self) -> String {
        match (self.get("__loader__"), self.class()) {
            (Some(Json::String(loader)), Ok(class)) => format!("{loader} {class}"),
            (Some(Json::String(loader)), Err(_)) => loader.clone(),
            _ => "a node".into(),
        }
    }

    fn field(&self, key: &str) -> Result<&'j Json> {
        self.get(key)
            .ok_or_else(|| invalid(format!("{} has no {key:?}", self.describe())))
    }

    fn string(&self, key: &str) -> Result<&'j str> {
        let value = self.field(key)?;
        value.as_str().ok_or_else(|| {
            invalid(format!(
                "{}: {key:?} is {}, not a string",
                self.describe(),
                value.describe()
            ))
        })
    }

    fn array(&self, key: &str) -> Result<&'j [Json]> {
        let value = self.field(key)?;
        value.as_array().ok_or_else(|| {
            invalid(format!(
                "{}: {key:?} is {}, not an array",
                self.describe(),
                value.describe()
            ))
        })
    }

    /// A member that is itself a node.
    fn child(&self, key: &str) -> Result<State<'j>> {
        State::new(self.field(key)?)
    }

    fn loader(&self) -> Result<&'j str> {
        self.string("__loader__")
    }

    fn class(&self) -> Result<Class<'j>> {
        let text = |key: &str| match self.get(key) {
            Some(Json::String(text)) => Ok(text.as_str()),
            _ => Err(invalid(format!("a node without a string {key:?}"))),
        };
        Ok(Class {
            module: text("__module__")?,
            name: text("__class__")?,
        })
    }

    /// Whether the node is the Python `None` (a `JsonNode` of `null`).
    fn is_none(&self) -> bool {
        self.get("__loader__").and_then(Json::as_str) == Some("JsonNode")
            && self
                .get("content")
                .and_then(Json::as_str)
                .is_some_and(|text| text.trim() == "null")
    }

    /// Whether the node is a `TupleNode`, what `*args` must come from.
    fn is_tuple(&self) -> bool {
        self.get("__loader__").and_then(Json::as_str) == Some("TupleNode")
    }
}

/// The key of skops' memo: `__id__`, when it is truthy (skops memoizes
/// only those). Python compares the ids as values, so `1`, `1.0` and `true`
/// are one key.
fn memo_key(id: Option<&Json>) -> Result<Option<String>> {
    Ok(match id {
        None | Some(Json::Null) | Some(Json::Bool(false)) => None,
        Some(Json::Bool(true)) => Some("1".into()),
        Some(Json::Number(number)) => {
            if let Some(n) = number.as_i64() {
                (n != 0).then(|| n.to_string())
            } else if let Some(n) = number.as_u64() {
                Some(n.to_string())
            } else {
                let x = number.as_f64().unwrap_or(0.0);
                if x == 0.0 {
                    None
                } else if x.fract() == 0.0 && x.abs() < 9.2e18 {
                    Some((x as i64).to_string())
                } else {
                    Some(format!("float {}", x.to_bits()))
                }
            }
        }
        Some(Json::String(text)) => (!text.is_empty()).then(|| format!("str {text}")),
        Some(other) => {
            return Err(invalid(format!(
                "__id__ is {}, which cannot be a memo key",
                other.describe()
            )))
        }
    })
}

/// A memo entry: the object is being written (and has a pickle memo index
/// once its container exists), or is written.
#[derive(Debug, Clone, Copy)]
enum Memo {
    Building(Option<u32>),
    Built(u32),
}

/// A node about to be written.
struct Node<'j> {
    state: State<'j>,
    class: Class<'j>,
    id: Option<String>,
}

/// Items per `APPENDS`/`SETITEMS`/`ADDITEMS`, as Python's pickler batches
/// them: the reader bounds its stack.
const BATCH: usize = 1000;

/// Types of dict keys skops can write (`key_types`): what `json.dumps`
/// takes as keys, and numpy scalars, which skops writes as the Python value
/// of the same type (`key.item()`). A numpy key is read as that Python
/// value, which compares and hashes alike in Python.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum KeyType {
    Str,
    Int,
    Float,
    /// `bool(key)`, as skops converts it: true for any non-empty key.
    Bool,
}

struct Translator<'a> {
    archive: Archive<'a>,
    protocol: i64,
    pickle: PickleWriter,
    memo: HashMap<String, Memo>,
}

impl Translator<'_> {
    /// Writes the object of one node: exactly one value onto the pickle's
    /// stack.
    fn node(&mut self, json: &Json) -> Result<()> {
        let state = State::new(json)?;
        let id = memo_key(state.get("__id__"))?;
        if let Some(id) = &id {
            match self.memo.get(id) {
                Some(Memo::Built(index) | Memo::Building(Some(index))) => {
                    self.pickle.get(*index);
                    return Ok(());
                }
                Some(Memo::Building(None)) => {
                    return Err(invalid(format!(
                        "{} contains itself where a pickle cannot (in a tuple or its own \
                         constructor arguments)",
                        state.describe()
                    )))
                }
                None => {}
            }
        }
        let loader = state.loader()?;
        if loader == "CachedNode" {
            return Err(invalid(format!(
                "a CachedNode refers to object {}, which was not loaded before it",
                id.as_deref().unwrap_or("None")
            )));
        }
        let node = Node {
            state,
            class: state.class()?,
            id,
        };
        if let Some(id) = &node.id {
            self.memo.insert(id.clone(), Memo::Building(None));
        }
        self.dispatch(loader, &node)?;
        if let Some(id) = node.id {
            let index = match self.memo.get(&id) {
                Some(Memo::Building(Some(index))) => *index,
                _ => self.pickle.memoize()?,
            };
            self.memo.insert(id, Memo::Built(index));
        }
        Ok(())
    }

    /// Memoizes the value on top of the stack as `node`'s object, before
    /// its contents are written (a container or an instance, which the
    /// contents may refer back to).
    fn created(&mut self, node: &Node<'_>) -> Result<()> {
        if let Some(id) = &node.id {
            let index = self.pickle.memoize()?;
            self.memo.insert(id.clone(), Memo::Building(Some(index)));
        }
        Ok(())
    }

    fn dispatch(&mut self, loader: &str, node: &Node<'_>) -> Result<()> {
        match loader {
            "JsonNode" => self.json_text(node.state.string("content")?),
            "DictNode" => self.dict(node),
            "ListNode" => self.list(node),
            "TupleNode" => self.tuple(node),
            "SetNode" => self.set(node),
            "TypeNode" => {
                self.pickle.global(node.class);
                Ok(())
            }
            "FunctionNode" => self.function(node),
            "NdArrayNode" => self.ndarray(node),
            "DTypeNode" => self.dtype(node),
            "ObjectNode" => self.object(node),
            "TreeNode" => self.reduce(node, Class::of("sklearn.tree._tree", "Tree")),
            "LossNode" => self.reduce(node, node.class),
            "QuantileForestNode" => self.reduce(
                node,
                Class::of("quantile_forest._quantile_forest_fast", "QuantileForest"),
            ),
            "ConstructorFromReduceNode" => self.constructor_call(node),
            "OperatorFuncNode" => self.operator(node),
            "PartialNode" => self.partial(node),
            "MethodNode" => self.method(node),
            "DefaultDictNode" => self.default_dict(node),
            "BytesNode" => {
                let data = self.file(node.state)?;
                self.pickle.bytes(&data);
                Ok(())
            }
            "BytearrayNode" => {
                let data = self.file(node.state)?;
                self.pickle.bytearray(&data);
                Ok(())
            }
            "SliceNode" => self.slice(node),
            "RandomStateNode" => self.random_state(node),
            "RandomGeneratorNode" => self.random_generator(node),
            "MaskedArrayNode" => self.masked_array(node),
            "SparseMatrixNode" => self.sparse_matrix(node),
            other => Err(Error::unsupported(format!(
                "skops loader {other} (for {})",
                node.class
            ))),
        }
    }

    fn file(&mut self, state: State<'_>) -> Result<Vec<u8>> {
        let name = state.string("file")?;
        self.archive.read(name, u64::MAX)
    }

    // --- Primitives and containers ----------------------------------------------------

    /// A `JsonNode`'s content: what `json.loads` makes of it.
    fn json_text(&mut self, text: &str) -> Result<()> {
        let trimmed = text.trim_matches([' ', '\t', '\n', '\r']);
        match trimmed {
            "NaN" => self.pickle.float(f64::NAN),
            "Infinity" => self.pickle.float(f64::INFINITY),
            "-Infinity" => self.pickle.float(f64::NEG_INFINITY),
            // Any size: Python ints have none.
            _ if is_integer_literal(trimmed) => self.pickle.int_text(trimmed),
            _ => {
                let value: Json = serde_json::from_str(text)
                    .map_err(|e| invalid(format!("a JsonNode's content is not JSON: {e}")))?;
                self.json_value(&value)?;
            }
        }
        Ok(())
    }

    /// A JSON value as `json.loads` returns it.
    fn json_value(&mut self, value: &Json) -> Result<()> {
        match value {
            Json::Null => self.pickle.none(),
            Json::Bool(b) => self.pickle.bool(*b),
            Json::Number(number) => {
                if let Some(n) = number.as_i64() {
                    self.pickle.int(n);
                } else if let Some(n) = number.as_u64() {
                    self.pickle.int_text(&n.to_string());
                } else {
                    let x = number
                        .as_f64()
                        .ok_or_else(|| invalid(format!("the number {number}")))?;
                    self.pickle.float(x);
                }
            }
            Json::String(text) => self.pickle.str(text),
            Json::Array(items) => {
                self.pickle.op(op::EMPTY_LIST);
                for chunk in items.chunks(BATCH) {
                    self.pickle.op(op::MARK);
                    for item in chunk {
                        self.json_value(item)?;
                    }
                    self.pickle.op(op::APPENDS);
                }
            }
            Json::Object(members) => {
                self.pickle.op(op::EMPTY_DICT);
                for chunk in unique_members(members).chunks(BATCH) {
                    self.pickle.op(op::MARK);
                    for (key, item) in chunk {
                        self.pickle.str(key);
                        self.json_value(item)?;
                    }
                    self.pickle.op(op::SETITEMS);
                }
            }
        }
        Ok(())
    }

    fn dict(&mut self, node: &Node<'_>) -> Result<()> {
        if node.class.is("builtins", "dict") {
            self.pickle.op(op::EMPTY_DICT);
        } else {
            // A dict subclass (`OrderedDict`), as pickle writes one: the
            // instance, then its items.
            self.new_instance(node.class);
        }
        self.created(node)?;
        self.dict_items(node.state)
    }

    /// `SETITEMS` of a `DictNode`'s items onto the object on the stack.
    fn dict_items(&mut self, state: State<'_>) -> Result<()> {
        let members = match state.field("content")? {
            Json::Object(members) => unique_members(members),
            other => {
                return Err(invalid(format!(
                    "{}: content is {}, not an object",
                    state.describe(),
                    other.describe()
                )))
            }
        };
        let key_types = key_types(state.child("key_types")?)?;
        if key_types.len() != members.len() {
            return Err(invalid(format!(
                "{} has {} keys and {} key types",
                state.describe(),
                members.len(),
                key_types.len()
            )));
        }
        let items: Vec<_> = members.into_iter().zip(key_types).collect();
        for chunk in items.chunks(BATCH) {
            self.pickle.op(op::MARK);
            for ((key, value), key_type) in chunk {
                self.dict_key(key, *key_type)?;
                self.node(value)?;
            }
            self.pickle.op(op::SETITEMS);
        }
        Ok(())
    }

    /// A key converted by its type, as `DictNode` calls `key_type(key)`.
    fn dict_key(&mut self, key: &str, key_type: KeyType) -> Result<()> {
        match key_type {
            KeyType::Str => self.pickle.str(key),
            KeyType::Int => {
                let digits = key.trim();
                let digits = digits.strip_prefix('+').unwrap_or(digits);
                let unsigned = digits.strip_prefix('-').unwrap_or(digits);
                if unsigned.is_empty() || !unsigned.bytes().all(|b| b.is_ascii_digit()) {
                    return Err(invalid(format!("the int dict key {key:?}")));
                }
                self.pickle.int_text(digits);
            }
            KeyType::Float => {
                let value = key
                    .trim()
                    .parse::<f64>()
                    .map_err(|_| invalid(format!("the float dict key {key:?}")))?;
                self.pickle.float(value);
            }
            KeyType::Bool => self.pickle.bool(!key.is_empty()),
        }
        Ok(())
    }

    fn list(&mut self, node: &Node<'_>) -> Result<()> {
        let items = node.state.array("content")?;
        if node.class.is("builtins", "list") {
            self.pickle.op(op::EMPTY_LIST);
        } else {
            self.new_instance(node.class);
        }
        self.created(node)?;
        self.appends(items)
    }

    /// `APPENDS` of the nodes `items` onto the list (or list-like object)
    /// on the stack.
    fn appends(&mut self, items: &[Json]) -> Result<()> {
        for chunk in items.chunks(BATCH) {
            self.pickle.op(op::MARK);
            for item in chunk {
                self.node(item)?;
            }
            self.pickle.op(op::APPENDS);
        }
        Ok(())
    }

    /// A list of the nodes `items`.
    fn new_list(&mut self, items: &[Json]) -> Result<()> {
        self.pickle.op(op::EMPTY_LIST);
        self.appends(items)
    }

    fn tuple(&mut self, node: &Node<'_>) -> Result<()> {
        let items = node.state.array("content")?;
        let builtin = node.class.is("builtins", "tuple");
        if !builtin {
            // A named tuple: `cls.__new__(cls, *items)`.
            self.pickle.global(node.class);
        }
        self.pickle.op(op::MARK);
        for item in items {
            self.node(item)?;
        }
        self.pickle.op(op::TUPLE);
        if !builtin {
            self.pickle.op(op::NEWOBJ);
        }
        Ok(())
    }

    fn set(&mut self, node: &Node<'_>) -> Result<()> {
        let items = node.state.array("content")?;
        if node.class.is("builtins", "set") {
            self.pickle.op(op::EMPTY_SET);
            self.created(node)?;
            for chunk in items.chunks(BATCH) {
                self.pickle.op(op::MARK);
                for item in chunk {
                    self.node(item)?;
                }
                self.pickle.op(op::ADDITEMS);
            }
        } else if node.class.is("builtins", "frozenset") {
            self.pickle.op(op::MARK);
            for item in items {
                self.node(item)?;
            }
            self.pickle.op(op::FROZENSET);
        } else {
            // `cls([items])`, as skops builds it.
            self.pickle.global(node.class);
            self.pickle.op(op::MARK);
            self.new_list(items)?;
            self.pickle.op(op::TUPLE);
            self.pickle.op(op::REDUCE);
        }
        Ok(())
    }

    fn function(&mut self, node: &Node<'_>) -> Result<()> {
        if self.protocol == 0 {
            // Protocol 0 named the function in its content.
            let content = node.state.child("content")?;
            let class = Class {
                module: content.string("module_path")?,
                name: content.string("function")?,
            };
            self.pickle.global(class);
        } else {
            self.pickle.global(node.class);
        }
        Ok(())
    }

    // --- numpy --------------------------------------------------------------------------

    fn ndarray(&mut self, node: &Node<'_>) -> Result<()> {
        match node.state.string("type")? {
            "numpy" => {
                let name = node.state.string("file")?;
                let data = self.archive.read(name, u64::MAX)?;
                let npy = Npy::parse(&data).map_err(|e| in_file(name, e))?;
                if node.class.is("numpy", "ndarray") {
                    self.pickle.ndarray(&npy);
                } else if node.class.module == "numpy"
                    && NUMPY_SCALAR_TYPES.contains(&node.class.name)
                {
                    if !npy.shape.is_empty() {
                        return Err(invalid(format!(
                            "{name}: a {} scalar stored as an array of shape {:?}",
                            node.class, npy.shape
                        )));
                    }
                    self.pickle.scalar(&npy.dtype, npy.data);
                } else {
                    return Err(Error::unsupported(format!(
                        "numpy array subclass {}",
                        node.class
                    )));
                }
                Ok(())
            }
            "json" => self.object_array(node),
            other => Err(invalid(format!("an NdArrayNode of type {other:?}"))),
        }
    }

    /// An object array: `content` holds `tolist()`, nested as deep as the
    /// array has dimensions.
    fn object_array(&mut self, node: &Node<'_>) -> Result<()> {
        let content = node.state.array("content")?;
        let declared = declared_shape(node.state.child("shape")?)?;
        if declared.is_empty() {
            return Err(Error::unsupported("a zero-dimensional object array"));
        }
        if declared.len() > MAX_OBJECT_ARRAY_DIMENSIONS {
            return Err(invalid(format!(
                "an object array of {} dimensions",
                declared.len()
            )));
        }
        let mut items = Vec::new();
        flatten(content, &declared, &mut items)?;
        // `numpy._core.multiarray._reconstruct(ndarray, (0,), b"b")`, then
        // `(1, shape, dtype('O'), False, [items])`, as numpy pickles object
        // arrays.
        self.pickle
            .global(Class::of("numpy._core.multiarray", "_reconstruct"));
        self.pickle.global(Class::of("numpy", "ndarray"));
        self.pickle.shape(&[0]);
        self.pickle.bytes(b"b");
        self.pickle.op(op::TUPLE3);
        self.pickle.op(op::REDUCE);
        self.created(node)?;
        self.pickle.op(op::MARK);
        self.pickle.int(1);
        self.pickle.shape(&declared);
        self.pickle.dtype(&object_dtype());
        self.pickle.bool(false);
        self.pickle.op(op::EMPTY_LIST);
        for chunk in items.chunks(BATCH) {
            self.pickle.op(op::MARK);
            for item in chunk {
                self.node(item)?;
            }
            self.pickle.op(op::APPENDS);
        }
        self.pickle.op(op::TUPLE);
        self.pickle.op(op::BUILD);
        Ok(())
    }

    /// A `DTypeNode`: the dtype of the empty array it holds.
    fn dtype(&mut self, node: &Node<'_>) -> Result<()> {
        let array = node.state.child("content")?;
        let dtype = match array.string("type")? {
            "numpy" => {
                let name = array.string("file")?;
                let data = self.archive.read(name, u64::MAX)?;
                Npy::parse(&data).map_err(|e| in_file(name, e))?.dtype
            }
            "json" => object_dtype(),
            other => return Err(invalid(format!("a dtype stored as {other:?}"))),
        };
        self.pickle.dtype(&dtype);
        Ok(())
    }

    // --- Objects ------------------------------------------------------------------------

    /// `cls.__new__(cls)`.
    fn new_instance(&mut self, class: Class<'_>) {
        self.pickle.global(class);
        self.pickle.op(op::EMPTY_TUPLE);
        self.pickle.op(op::NEWOBJ);
    }

    /// `BUILD` with the node `content`, unless it is absent or `None`.
    fn set_state(&mut self, content: Option<&Json>) -> Result<()> {
        let Some(content) = content.filter(|c| **c != Json::Null) else {
            return Ok(());
        };
        if State::new(content)?.is_none() {
            return Ok(());
        }
        self.node(content)?;
        self.pickle.op(op::BUILD);
        Ok(())
    }

    fn object(&mut self, node: &Node<'_>) -> Result<()> {
        self.new_instance(node.class);
        self.created(node)?;
        self.set_state(node.state.get("content"))
    }

    /// `constructor(*__reduce__.args)`, then `BUILD` with `content`.
    fn reduce(&mut self, node: &Node<'_>, constructor: Class<'_>) -> Result<()> {
        let reduce = node.state.child("__reduce__")?;
        let args = reduce.child("args")?;
        if !args.is_tuple() {
            return Err(invalid(format!(
                "the constructor arguments of {} are {}, not a tuple",
                node.class,
                args.describe()
            )));
        }
        self.pickle.global(constructor);
        self.node(args.json)?;
        self.pickle.op(op::REDUCE);
        self.created(node)?;
        self.set_state(Some(node.state.field("content")?))
    }

    /// `cls(*content)`.
    fn constructor_call(&mut self, node: &Node<'_>) -> Result<()> {
        let args = node.state.child("content")?;
        if !args.is_tuple() {
            return Err(invalid(format!(
                "the constructor arguments of {} are {}, not a tuple",
                node.class,
                args.describe()
            )));
        }
        self.pickle.global(node.class);
        self.node(args.json)?;
        self.pickle.op(op::REDUCE);
        Ok(())
    }

    /// `getattr(operator, name)(*attrs)`.
    fn operator(&mut self, node: &Node<'_>) -> Result<()> {
        if node.class.module != "operator" {
            return Err(invalid(format!(
                "an OperatorFuncNode of module {:?}",
                node.class.module
            )));
        }
        let args = node.state.child("attrs")?;
        if !args.is_tuple() {
            return Err(invalid(format!(
                "the arguments of {} are {}, not a tuple",
                node.class,
                args.describe()
            )));
        }
        self.pickle.global(node.class);
        self.node(args.json)?;
        self.pickle.op(op::REDUCE);
        Ok(())
    }

    /// `functools.partial`, as it pickles itself: `partial(func)`, then
    /// the state `(func, args, kwds, namespace)`.
    fn partial(&mut self, node: &Node<'_>) -> Result<()> {
        let content = node.state.child("content")?;
        let func = content.field("func")?;
        self.pickle.global(Class::of("functools", "partial"));
        self.pickle.op(op::MARK);
        self.node(func)?;
        self.pickle.op(op::TUPLE);
        self.pickle.op(op::REDUCE);
        self.created(node)?;
        self.pickle.op(op::MARK);
        for key in ["func", "args", "kwds", "namespace"] {
            self.node(content.field(key)?)?;
        }
        self.pickle.op(op::TUPLE);
        self.pickle.op(op::BUILD);
        Ok(())
    }

    /// A bound method, as it pickles itself: `getattr(obj, name)`.
    fn method(&mut self, node: &Node<'_>) -> Result<()> {
        let content = node.state.child("content")?;
        let name = content.string("func")?;
        let owner = content.child("obj")?;
        let owner_class = owner.class()?;
        if owner_class != node.class {
            return Err(invalid(format!(
                "a method of {} bound to a {owner_class}",
                node.class
            )));
        }
        self.pickle.global(Class::of("builtins", "getattr"));
        self.pickle.op(op::MARK);
        self.node(owner.json)?;
        self.pickle.str(name);
        self.pickle.op(op::TUPLE);
        self.pickle.op(op::REDUCE);
        Ok(())
    }

    /// `defaultdict(default_factory)` and its items, as it pickles itself.
    fn default_dict(&mut self, node: &Node<'_>) -> Result<()> {
        let content = node.state.child("content")?;
        self.pickle.global(Class::of("collections", "defaultdict"));
        self.pickle.op(op::MARK);
        self.node(content.field("default_factory")?)?;
        self.pickle.op(op::TUPLE);
        self.pickle.op(op::REDUCE);
        self.created(node)?;
        self.dict_items(content.child("main")?)
    }

    /// `slice(start, stop, step)`, its arguments being plain JSON.
    fn slice(&mut self, node: &Node<'_>) -> Result<()> {
        let content = node.state.child("content")?;
        self.pickle.global(Class::of("builtins", "slice"));
        self.pickle.op(op::MARK);
        for key in ["start", "stop", "step"] {
            self.json_value(content.field(key)?)?;
        }
        self.pickle.op(op::TUPLE);
        self.pickle.op(op::REDUCE);
        Ok(())
    }

    /// A `RandomState`: the instance, with `get_state()`'s dict as its
    /// state.
    fn random_state(&mut self, node: &Node<'_>) -> Result<()> {
        self.new_instance(node.class);
        self.created(node)?;
        self.node(node.state.field("content")?)?;
        self.pickle.op(op::BUILD);
        Ok(())
    }

    /// A `Generator`: the instance, with `{"bit_generator": …,
    /// "seed_seq": …}` as its state (protocol 0 kept the bit generator's
    /// state as plain JSON, and protocols 0 and 1 had no seed sequence).
    fn random_generator(&mut self, node: &Node<'_>) -> Result<()> {
        let content = node.state.child("content")?;
        self.new_instance(node.class);
        self.created(node)?;
        self.pickle.op(op::EMPTY_DICT);
        self.pickle.op(op::MARK);
        self.pickle.str("bit_generator");
        let bit_generator = content.field("bit_generator")?;
        if self.protocol == 0 {
            self.json_value(bit_generator)?;
        } else {
            self.node(bit_generator)?;
        }
        if self.protocol >= 2 {
            self.pickle.str("seed_seq");
            self.node(content.field("seed_seq")?)?;
        }
        self.pickle.op(op::SETITEMS);
        self.pickle.op(op::BUILD);
        Ok(())
    }

    /// A masked array: the instance, with `{"data": …, "mask": …}` as its
    /// state.
    fn masked_array(&mut self, node: &Node<'_>) -> Result<()> {
        let content = node.state.child("content")?;
        self.new_instance(Class::of("numpy.ma.core", "MaskedArray"));
        self.created(node)?;
        self.pickle.op(op::EMPTY_DICT);
        self.pickle.op(op::MARK);
        for key in ["data", "mask"] {
            self.pickle.str(key);
            self.node(content.field(key)?)?;
        }
        self.pickle.op(op::SETITEMS);
        self.pickle.op(op::BUILD);
        Ok(())
    }

    /// A scipy sparse matrix: an instance of its class without state (its
    /// `.npz` file is read, to check it is there, but not decoded). No
    /// native model reads one; an estimator that needs it is refused when
    /// its attribute turns out not to be an array, as from a pickle.
    fn sparse_matrix(&mut self, node: &Node<'_>) -> Result<()> {
        let kind = node.state.string("type")?;
        if kind != "scipy" {
            return Err(invalid(format!("a SparseMatrixNode of type {kind:?}")));
        }
        self.file(node.state)?;
        self.new_instance(node.class);
        Ok(())
    }
}

/// The key types of a `DictNode`: a `ListNode` of `TypeNode`s.
fn key_types(list: State<'_>) -> Result<Vec<KeyType>> {
    list.array("content")?
        .iter()
        .map(|item| {
            let item = State::new(item)?;
            let class = item.class()?;
            if item.loader()? != "TypeNode" {
                return Err(invalid(format!("a dict key type is {}", item.describe())));
            }
            match (class.module, class.name) {
                ("builtins", "str") | ("numpy", "str_") => Ok(KeyType::Str),
                ("builtins", "int")
                | (
                    "numpy",
                    "int8" | "int16" | "int32" | "int64" | "uint8" | "uint16" | "uint32" | "uint64"
                    | "intc" | "uintc" | "intp" | "uintp" | "long" | "ulong" | "longlong"
                    | "ulonglong",
                ) => Ok(KeyType::Int),
                ("builtins", "float") | ("numpy", "float16" | "float32" | "float64") => {
                    Ok(KeyType::Float)
                }
                ("builtins", "bool") | ("numpy", "bool" | "bool_") => Ok(KeyType::Bool),
                _ => Err(Error::unsupported(format!("dict keys of type {class}"))),
            }
        })
        .collect()
}

/// Whether `text` is a JSON integer (`-?(0|[1-9][0-9]*)`), which Python's
/// `json.loads` reads as an `int` of any size.
fn is_integer_literal(text: &str) -> bool {
    let digits = text.strip_prefix('-').unwrap_or(text);
    !digits.is_empty()
        && digits.bytes().all(|b| b.is_ascii_digit())
        && (digits == "0" || !digits.starts_with('0'))
}

/// numpy scalar types, whose values skops stores as 0-d arrays.
const NUMPY_SCALAR_TYPES: &[&str] = &[
    "bool",
    "bool_",
    "int8",
    "int16",
    "int32",
    "int64",
    "uint8",
    "uint16",
    "uint32",
    "uint64",
    "float16",
    "float32",
    "float64",
    "longlong",
    "ulonglong",
    "long",
    "ulong",
    "intc",
    "uintc",
    "intp",
    "uintp",
    "short",
    "ushort",
    "byte",
    "ubyte",
    "half",
    "single",
    "double",
    "longdouble",
    "complex64",
    "complex128",
    "clongdouble",
    "str_",
    "bytes_",
    "void",
    "datetime64",
    "timedelta64",
];

/// numpy allows 64 dimensions; object arrays in models have one or two.
const MAX_OBJECT_ARRAY_DIMENSIONS: usize = 32;

/// The `shape` of an object array: a `TupleNode` of int `JsonNode`s.
fn declared_shape(shape: State<'_>) -> Result<Vec<usize>> {
    if !shape.is_tuple() {
        return Err(invalid(format!(
            "an object array's shape is {}",
            shape.describe()
        )));
    }
    shape
        .array("content")?
        .iter()
        .map(|dimension| {
            let text = State::new(dimension)?.string("content")?;
            text.trim()
                .parse::<usize>()
                .map_err(|_| invalid(format!("an object array dimension {text:?}")))
        })
        .collect()
}

/// The nodes of nested lists `items` of dimensions `shape`, in C order.
fn flatten<'j>(items: &'j [Json], shape: &[usize], out: &mut Vec<&'j Json>) -> Result<()> {
    let [length, inner @ ..] = shape else {
        return Err(invalid("an object array without dimensions"));
    };
    if items.len() != *length {
        return Err(invalid(format!(
            "an object array of shape {shape:?} holds {} items in a dimension of {length}",
            items.len()
        )));
    }
    if inner.is_empty() {
        out.extend(items);
        return Ok(());
    }
    for item in items {
        let row = State::new(item)?;
        if row.loader()? != "ListNode" {
            return Err(invalid(format!(
                "an object array row is {}, not a list",
                row.describe()
            )));
        }
        flatten(row.array("content")?, inner, out)?;
    }
    Ok(())
}

fn object_dtype() -> Dtype {
    Dtype {
        kind: Kind::Object,
        item_size: 8,
        big_endian: false,
        fields: Vec::new(),
    }
}

/// An error about the file `name`.
fn in_file(name: &str, error: Error) -> Error {
    match error {
        Error::InvalidModel(message) => invalid(format!("{name}: {message}")),
        Error::Unsupported(message) => Error::unsupported(format!("{message} (in {name})")),
        other => other,
    }
}

// --- .npy files ------------------------------------------------------------------------

/// An array read from an `.npy` file: its data borrowed from the file.
#[derive(Debug, Clone, PartialEq)]
struct Npy<'b> {
    dtype: Dtype,
    shape: Vec<usize>,
    fortran_order: bool,
    data: &'b [u8],
}

const NPY_MAGIC: &[u8] = b"\x93NUMPY";

/// numpy's `np.load` refuses longer headers (its `max_header_size`), and
/// skops loads arrays with it.
const MAX_NPY_HEADER: usize = 10_000;

/// Structured dtypes nested deeper than this are refused.
const MAX_DTYPE_DEPTH: usize = 8;

impl<'b> Npy<'b> {
    /// Reads an `.npy` file. Errors name what is wrong but not the file
    /// (see [`in_file`]).
    fn parse(bytes: &'b [u8]) -> Result<Npy<'b>> {
        let truncated = || Error::invalid("truncated npy header");
        let rest = bytes
            .strip_prefix(NPY_MAGIC)
            .ok_or_else(|| Error::invalid("not an npy file (no \\x93NUMPY magic)"))?;
        let [major, minor, rest @ ..] = rest else {
            return Err(truncated());
        };
        let (length, rest, utf8) = match (*major, rest) {
            (1, [a, b, rest @ ..]) => (usize::from(u16::from_le_bytes([*a, *b])), rest, false),
            (2 | 3, [a, b, c, d, rest @ ..]) => {
                let length = u32::from_le_bytes([*a, *b, *c, *d]);
                let length = usize::try_from(length).map_err(|_| truncated())?;
                (length, rest, *major == 3)
            }
            (1..=3, _) => return Err(truncated()),
            _ => {
                return Err(Error::unsupported(format!(
                    "npy format version {major}.{minor}"
                )))
            }
        };
        if length > MAX_NPY_HEADER {
            return Err(Error::invalid(format!(
                "an npy header of {length} bytes (numpy reads at most {MAX_NPY_HEADER})"
            )));
        }
        if length > rest.len() {
            return Err(Error::invalid(format!(
                "an npy header of {length} bytes with {} bytes left in the file",
                rest.len()
            )));
        }
        let (header, data) = rest.split_at(length);
        let text: String = if utf8 {
            std::str::from_utf8(header)
                .map_err(|_| Error::invalid("an npy version 3 header that is not UTF-8"))?
                .to_owned()
        } else {
            header.iter().map(|&b| char::from(b)).collect()
        };
        let Literal::Dict(entries) = parse_literal(&text)? else {
            return Err(Error::invalid("an npy header that is not a dict"));
        };
        let (mut descr, mut fortran_order, mut shape) = (None, None, None);
        for (key, value) in entries {
            match key {
                Literal::Str(key) if key == "descr" => descr = Some(value),
                Literal::Str(key) if key == "fortran_order" => fortran_order = Some(value),
                Literal::Str(key) if key == "shape" => shape = Some(value),
                other => return Err(Error::invalid(format!("the npy header key {other:?}"))),
            }
        }
        let dtype = descr_dtype(
            &descr.ok_or_else(|| Error::invalid("an npy header without descr"))?,
            0,
        )?;
        let fortran_order = match fortran_order {
            Some(Literal::Bool(value)) => value,
            other => return Err(Error::invalid(format!("npy fortran_order {other:?}"))),
        };
        let shape: Vec<usize> = match shape {
            Some(Literal::Tuple(dimensions)) => dimensions
                .iter()
                .map(|d| match d {
                    Literal::Int(n) => usize::try_from(*n).ok(),
                    _ => None,
                })
                .collect::<Option<_>>()
                .ok_or_else(|| Error::invalid(format!("npy shape {dimensions:?}")))?,
            other => return Err(Error::invalid(format!("npy shape {other:?}"))),
        };
        if dtype.kind == Kind::Object {
            return Err(Error::invalid(
                "an npy file of Python objects (numpy loads those only from pickles)",
            ));
        }
        let size = shape
            .iter()
            .try_fold(dtype.item_size, |acc, &d| acc.checked_mul(d))
            .ok_or_else(|| Error::invalid(format!("npy shape {shape:?} overflows")))?;
        if data.len() != size {
            return Err(Error::invalid(format!(
                "the npy header says shape {shape:?} of {}-byte items ({size} bytes), and the \
                 file holds {} bytes of data",
                dtype.item_size,
                data.len()
            )));
        }
        Ok(Npy {
            dtype,
            shape,
            fortran_order,
            data,
        })
    }
}

/// The dtype of a `descr`: a type string, or a list of fields.
fn descr_dtype(descr: &Literal, depth: usize) -> Result<Dtype> {
    match descr {
        Literal::Str(text) => simple_dtype(text),
        Literal::List(fields) => structured_dtype(fields, depth),
        Literal::Tuple(_) => Err(Error::unsupported("numpy sub-array dtypes")),
        other => Err(Error::invalid(format!("npy descr {other:?}"))),
    }
}

/// A type string such as `<f8`, `|b1`, `<U3`, `|S5`, `|V7`.
fn simple_dtype(descr: &str) -> Result<Dtype> {
    let (big_endian, code) = match descr.as_bytes().first() {
        Some(b'>') => (true, &descr[1..]),
        // `=` is the machine's order: little-endian on every platform
        // numpy ships wheels for but s390x.
        Some(b'<' | b'|' | b'=') => (false, &descr[1..]),
        _ => (false, descr),
    };
    let unsupported = || Error::unsupported(format!("numpy dtype {descr:?}"));
    let mut chars = code.chars();
    let letter = chars.next().ok_or_else(unsupported)?;
    let digits = chars.as_str();
    let size = if digits.is_empty() {
        None
    } else {
        // Datetimes (`<M8[ns]`) carry a unit after the size.
        Some(digits.parse::<usize>().map_err(|_| unsupported())?)
    };
    let (kind, item_size) = match (letter, size) {
        ('b', Some(1)) => (Kind::Bool, 1),
        ('i', Some(n @ (1 | 2 | 4 | 8))) => (Kind::Int, n),
        ('u', Some(n @ (1 | 2 | 4 | 8))) => (Kind::UInt, n),
        ('f', Some(n @ (2 | 4 | 8))) => (Kind::Float, n),
        ('U', Some(n)) => (
            Kind::Unicode,
            n.checked_mul(4)
                .ok_or_else(|| Error::invalid(format!("numpy dtype {descr:?}")))?,
        ),
        ('S', Some(n)) => (Kind::Bytes, n),
        ('V', Some(n)) => (Kind::Void, n),
        ('O', _) => (Kind::Object, 8),
        // Complex numbers, long doubles, datetimes, timedeltas.
        _ => return Err(unsupported()),
    };
    Ok(Dtype {
        kind,
        item_size,
        big_endian,
        fields: Vec::new(),
    })
}

/// A structured dtype from its `(name, descr)` fields; fields named `''`
/// of a plain void type are padding (numpy's `descr_to_dtype`).
fn structured_dtype(fields: &[Literal], depth: usize) -> Result<Dtype> {
    if depth >= MAX_DTYPE_DEPTH {
        return Err(Error::invalid("npy structured dtype nested too deeply"));
    }
    let mut offset = 0usize;
    let mut out: Vec<Field> = Vec::with_capacity(fields.len());
    for field in fields {
        let (name, descr) = match field {
            Literal::Tuple(items) => match items.as_slice() {
                [Literal::Str(name), descr] => (name, descr),
                [Literal::Tuple(_), _] => {
                    return Err(Error::unsupported("numpy structured fields with titles"))
                }
                [_, _, _] => return Err(Error::unsupported("numpy sub-array fields")),
                _ => return Err(Error::invalid(format!("npy field {field:?}"))),
            },
            _ => return Err(Error::invalid(format!("npy field {field:?}"))),
        };
        let dtype = descr_dtype(descr, depth + 1)?;
        let size = dtype.item_size;
        let padding = name.is_empty() && dtype.kind == Kind::Void && dtype.fields.is_empty();
        if !padding {
            if name.is_empty() || out.iter().any(|f| &f.name == name) {
                return Err(Error::invalid(format!("npy field name {name:?}")));
            }
            out.push(Field {
                name: name.clone(),
                offset,
                dtype,
            });
        }
        offset = offset
            .checked_add(size)
            .ok_or_else(|| Error::invalid("npy structured dtype overflows"))?;
    }
    Ok(Dtype {
        kind: Kind::Void,
        item_size: offset,
        big_endian: false,
        fields: out,
    })
}

/// A Python literal, as `ast.literal_eval` reads an npy header.
#[derive(Debug, Clone, PartialEq)]
enum Literal {
    Str(String),
    Int(i64),
    Bool(bool),
    None,
    Tuple(Vec<Literal>),
    List(Vec<Literal>),
    Dict(Vec<(Literal, Literal)>),
}

/// Literals nested deeper than this are refused.
const MAX_LITERAL_DEPTH: usize = 32;

fn parse_literal(text: &str) -> Result<Literal> {
    let mut parser = LiteralParser {
        chars: text.chars().collect(),
        position: 0,
    };
    let value = parser.value(0)?;
    parser.skip_whitespace();
    if parser.position != parser.chars.len() {
        return Err(Error::invalid("text after the npy header's dict"));
    }
    Ok(value)
}

struct LiteralParser {
    chars: Vec<char>,
    position: usize,
}

impl LiteralParser {
    fn error(&self, what: &str) -> Error {
        Error::invalid(format!("npy header: {what} at character {}", self.position))
    }

    fn peek(&self) -> Option<char> {
        self.chars.get(self.position).copied()
    }

    fn next(&mut self) -> Option<char> {
        let c = self.peek()?;
        self.position += 1;
        Some(c)
    }

    fn skip_whitespace(&mut self) {
        while matches!(self.peek(), Some(' ' | '\t' | '\n' | '\r')) {
            self.position += 1;
        }
    }

    fn keyword(&mut self, word: &str, value: Literal) -> Result<Literal> {
        for expected in word.chars() {
            if self.next() != Some(expected) {
                return Err(self.error("unknown name"));
            }
        }
        Ok(value)
    }

    fn value(&mut self, depth: usize) -> Result<Literal> {
        if depth > MAX_LITERAL_DEPTH {
            return Err(self.error("values nested too deeply"));
        }
        self.skip_whitespace();
        match self.peek() {
            Some('{') => {
                self.position += 1;
                self.dict(depth)
            }
            Some('(') => {
                self.position += 1;
                let (mut items, trailing_comma) = self.items(')', depth)?;
                // `(x)` is `x`; `(x,)` is a tuple.
                if items.len() == 1 && !trailing_comma {
                    Ok(items.remove(0))
                } else {
                    Ok(Literal::Tuple(items))
                }
            }
            Some('[') => {
                self.position += 1;
                Ok(Literal::List(self.items(']', depth)?.0))
            }
            Some(quote @ ('\'' | '"')) => {
                self.position += 1;
                self.string(quote).map(Literal::Str)
            }
            Some('-' | '0'..='9') => self.int(),
            Some('T') => self.keyword("True", Literal::Bool(true)),
            Some('F') => self.keyword("False", Literal::Bool(false)),
            Some('N') => self.keyword("None", Literal::None),
            Some(_) => Err(self.error("unexpected character")),
            None => Err(self.error("unexpected end")),
        }
    }

    /// Items up to `close`; whether a comma followed the last.
    fn items(&mut self, close: char, depth: usize) -> Result<(Vec<Literal>, bool)> {
        let mut items = Vec::new();
        let mut trailing_comma = false;
        loop {
            self.skip_whitespace();
            if self.peek() == Some(close) {
                self.position += 1;
                return Ok((items, trailing_comma));
            }
            items.push(self.value(depth + 1)?);
            self.skip_whitespace();
            match self.next() {
                Some(',') => trailing_comma = true,
                Some(c) if c == close => return Ok((items, false)),
                _ => return Err(self.error("expected a comma")),
            }
        }
    }

    fn dict(&mut self, depth: usize) -> Result<Literal> {
        let mut entries = Vec::new();
        loop {
            self.skip_whitespace();
            if self.peek() == Some('}') {
                self.position += 1;
                return Ok(Literal::Dict(entries));
            }
            let key = self.value(depth + 1)?;
            self.skip_whitespace();
            if self.next() != Some(':') {
                return Err(self.error("expected a colon"));
            }
            let value = self.value(depth + 1)?;
            entries.push((key, value));
            self.skip_whitespace();
            match self.next() {
                Some(',') => {}
                Some('}') => return Ok(Literal::Dict(entries)),
                _ => return Err(self.error("expected a comma")),
            }
        }
    }

    /// A decimal int; Python 2 headers may end it with `L`.
    fn int(&mut self) -> Result<Literal> {
        let start = self.position;
        if self.peek() == Some('-') {
            self.position += 1;
        }
        while matches!(self.peek(), Some('0'..='9')) {
            self.position += 1;
        }
        let text: String = self.chars[start..self.position].iter().collect();
        if matches!(self.peek(), Some('L' | 'l')) {
            self.position += 1;
        }
        text.parse::<i64>()
            .map(Literal::Int)
            .map_err(|_| self.error("malformed or too large int"))
    }

    /// A string after its opening `quote`, with Python's escapes.
    fn string(&mut self, quote: char) -> Result<String> {
        let mut out = String::new();
        loop {
            let c = self
                .next()
                .ok_or_else(|| self.error("unterminated string"))?;
            match c {
                c if c == quote => return Ok(out),
                '\n' => return Err(self.error("newline in a string")),
                '\\' => {
                    let escaped = self
                        .next()
                        .ok_or_else(|| self.error("unterminated string"))?;
                    match escaped {
                        '\\' | '\'' | '"' => out.push(escaped),
                        'n' => out.push('\n'),
                        't' => out.push('\t'),
                        'r' => out.push('\r'),
                        '0' => out.push('\0'),
                        '\n' => {}
                        'x' => out.push(self.hex_char(2)?),
                        'u' => out.push(self.hex_char(4)?),
                        'U' => out.push(self.hex_char(8)?),
                        other => {
                            // Python keeps unknown escapes as they are.
                            out.push('\\');
                            out.push(other);
                        }
                    }
                }
                c => out.push(c),
            }
        }
    }

    fn hex_char(&mut self, digits: usize) -> Result<char> {
        let mut code = 0u32;
        for _ in 0..digits {
            let digit = self
                .next()
                .and_then(|c| c.to_digit(16))
                .ok_or_else(|| self.error("malformed escape"))?;
            code = code * 16 + digit;
        }
        char::from_u32(code).ok_or_else(|| self.error("escape of an invalid code point"))
    }
}

// --- The pickle ------------------------------------------------------------------------

/// Opcodes, named as in CPython's `pickletools`.
mod op {
    pub const MARK: u8 = b'(';
    pub const STOP: u8 = b'.';
    pub const BININT: u8 = b'J';
    pub const LONG: u8 = b'L';
    pub const NONE: u8 = b'N';
    pub const REDUCE: u8 = b'R';
    pub const APPENDS: u8 = b'e';
    pub const BUILD: u8 = b'b';
    pub const EMPTY_DICT: u8 = b'}';
    pub const LONG_BINGET: u8 = b'j';
    pub const EMPTY_LIST: u8 = b']';
    pub const TUPLE: u8 = b't';
    pub const EMPTY_TUPLE: u8 = b')';
    pub const SETITEMS: u8 = b'u';
    pub const BINFLOAT: u8 = b'G';
    pub const PROTO: u8 = 0x80;
    pub const NEWOBJ: u8 = 0x81;
    pub const TUPLE3: u8 = 0x87;
    pub const NEWTRUE: u8 = 0x88;
    pub const NEWFALSE: u8 = 0x89;
    pub const LONG1: u8 = 0x8a;
    pub const BINUNICODE8: u8 = 0x8d;
    pub const BINBYTES8: u8 = 0x8e;
    pub const EMPTY_SET: u8 = 0x8f;
    pub const ADDITEMS: u8 = 0x90;
    pub const FROZENSET: u8 = 0x91;
    pub const STACK_GLOBAL: u8 = 0x93;
    pub const MEMOIZE: u8 = 0x94;
    pub const BYTEARRAY8: u8 = 0x96;
}

/// Writes pickle opcodes.
struct PickleWriter {
    bytes: Vec<u8>,
    memo_len: usize,
}

impl PickleWriter {
    fn new() -> PickleWriter {
        PickleWriter {
            bytes: vec![op::PROTO, 4],
            memo_len: 0,
        }
    }

    fn finish(mut self) -> Vec<u8> {
        self.op(op::STOP);
        self.bytes
    }

    fn op(&mut self, opcode: u8) {
        self.bytes.push(opcode);
    }

    fn none(&mut self) {
        self.op(op::NONE);
    }

    fn bool(&mut self, value: bool) {
        self.op(if value { op::NEWTRUE } else { op::NEWFALSE });
    }

    fn int(&mut self, value: i64) {
        match i32::try_from(value) {
            Ok(small) => {
                self.op(op::BININT);
                self.bytes.extend_from_slice(&small.to_le_bytes());
            }
            Err(_) => {
                self.op(op::LONG1);
                self.bytes.push(8);
                self.bytes.extend_from_slice(&value.to_le_bytes());
            }
        }
    }

    /// An int of any size, from its decimal digits (an optional `-`, then
    /// ASCII digits).
    fn int_text(&mut self, digits: &str) {
        match digits.parse::<i64>() {
            Ok(value) => self.int(value),
            Err(_) => {
                self.op(op::LONG);
                self.bytes.extend_from_slice(digits.as_bytes());
                self.bytes.extend_from_slice(b"L\n");
            }
        }
    }

    fn float(&mut self, value: f64) {
        self.op(op::BINFLOAT);
        self.bytes.extend_from_slice(&value.to_be_bytes());
    }

    fn str(&mut self, text: &str) {
        self.op(op::BINUNICODE8);
        self.bytes
            .extend_from_slice(&(text.len() as u64).to_le_bytes());
        self.bytes.extend_from_slice(text.as_bytes());
    }

    fn bytes(&mut self, data: &[u8]) {
        self.op(op::BINBYTES8);
        self.bytes
            .extend_from_slice(&(data.len() as u64).to_le_bytes());
        self.bytes.extend_from_slice(data);
    }

    fn bytearray(&mut self, data: &[u8]) {
        self.op(op::BYTEARRAY8);
        self.bytes
            .extend_from_slice(&(data.len() as u64).to_le_bytes());
        self.bytes.extend_from_slice(data);
    }

    fn global(&mut self, class: Class<'_>) {
        self.str(class.module);
        self.str(class.name);
        self.op(op::STACK_GLOBAL);
    }

    /// Memoizes the top of the stack; returns its memo index.
    fn memoize(&mut self) -> Result<u32> {
        let index = u32::try_from(self.memo_len)
            .map_err(|_| invalid("more objects than a pickle memo can index"))?;
        self.op(op::MEMOIZE);
        self.memo_len += 1;
        Ok(index)
    }

    fn get(&mut self, index: u32) {
        self.op(op::LONG_BINGET);
        self.bytes.extend_from_slice(&index.to_le_bytes());
    }

    fn shape(&mut self, shape: &[usize]) {
        self.op(op::MARK);
        for &dimension in shape {
            // A dimension counts bytes that exist, or is checked against
            // them: it fits.
            self.int(i64::try_from(dimension).unwrap_or(i64::MAX));
        }
        self.op(op::TUPLE);
    }

    /// `numpy.dtype(code, False, True)` and its version 3 state `(3,
    /// byte_order, None, names, fields, item_size, alignment, flags)`, as
    /// numpy pickles a dtype.
    fn dtype(&mut self, dtype: &Dtype) {
        let size = dtype.item_size;
        let code = match dtype.kind {
            Kind::Bool => "b1".to_string(),
            Kind::Int => format!("i{size}"),
            Kind::UInt => format!("u{size}"),
            Kind::Float => format!("f{size}"),
            Kind::Unicode => format!("U{}", size / 4),
            Kind::Bytes => format!("S{size}"),
            Kind::Void => format!("V{size}"),
            Kind::Object => "O8".to_string(),
        };
        let flexible = matches!(dtype.kind, Kind::Unicode | Kind::Bytes | Kind::Void);
        let byte_order = if dtype.big_endian {
            ">"
        } else if size <= 1 || matches!(dtype.kind, Kind::Bytes | Kind::Void | Kind::Object) {
            "|"
        } else {
            "<"
        };
        self.global(Class::of("numpy", "dtype"));
        self.str(&code);
        self.op(op::NEWFALSE);
        self.op(op::NEWTRUE);
        self.op(op::TUPLE3);
        self.op(op::REDUCE);
        self.op(op::MARK);
        self.int(3);
        self.str(byte_order);
        self.none();
        if dtype.fields.is_empty() {
            self.none();
            self.none();
        } else {
            self.op(op::MARK);
            for field in &dtype.fields {
                self.str(&field.name);
            }
            self.op(op::TUPLE);
            self.op(op::EMPTY_DICT);
            self.op(op::MARK);
            for field in &dtype.fields {
                self.str(&field.name);
                self.op(op::MARK);
                self.dtype(&field.dtype);
                self.int(i64::try_from(field.offset).unwrap_or(i64::MAX));
                self.op(op::TUPLE);
            }
            self.op(op::SETITEMS);
        }
        // numpy writes the item size of flexible types only, and the
        // alignment of aligned structs only (`arraydescr_reduce`); the flags
        // are not read back.
        self.int(if flexible {
            i64::try_from(size).unwrap_or(i64::MAX)
        } else {
            -1
        });
        self.int(-1);
        self.int(0);
        self.op(op::TUPLE);
        self.op(op::BUILD);
    }

    /// `numpy._core.numeric._frombuffer(data, dtype, shape, order)`, as
    /// numpy pickles an array at protocol 5.
    fn ndarray(&mut self, npy: &Npy<'_>) {
        self.global(Class::of("numpy._core.numeric", "_frombuffer"));
        self.op(op::MARK);
        self.bytes(npy.data);
        self.dtype(&npy.dtype);
        self.shape(&npy.shape);
        self.str(if npy.fortran_order { "F" } else { "C" });
        self.op(op::TUPLE);
        self.op(op::REDUCE);
    }

    /// `numpy._core.multiarray.scalar(dtype, data)`, as numpy pickles a
    /// scalar.
    fn scalar(&mut self, dtype: &Dtype, data: &[u8]) {
        self.global(Class::of("numpy._core.multiarray", "scalar"));
        self.op(op::MARK);
        self.dtype(dtype);
        self.bytes(data);
        self.op(op::TUPLE);
        self.op(op::REDUCE);
    }
}
