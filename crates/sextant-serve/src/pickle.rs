//! A pickle reader that builds a value graph and never runs code.
//!
//! Python's unpickler is a small stack machine whose instructions may import
//! any module attribute (`GLOBAL`) and call it (`REDUCE`, `NEWOBJ`, `BUILD`).
//! This reader runs the same machine but only records what would have been
//! called: a global becomes [`Value::Global`] (module and name), and a call
//! becomes an [`Object`] holding the callable, its arguments, and the state
//! and items later applied to it. Interpreting those objects (a numpy array,
//! a scikit-learn estimator) is the job of the caller, by class path; see
//! [`numpy`] for arrays, dtypes and scalars.
//!
//! A handful of calls whose result is plain data are evaluated by this code
//! (never by Python): `_codecs.encode(text, "latin1")`, which protocols 0–2
//! use for `bytes`; `bytearray(...)` and `bytes(...)` of bytes; and
//! `copyreg._reconstructor(cls, object, None)`, which protocols 0–1 use for
//! instances of ordinary classes. Python 2 module names (`__builtin__`,
//! `copy_reg`) are mapped to Python 3's, as the standard unpickler does.
//!
//! The opcodes and their operands follow CPython's `Lib/pickletools.py`
//! (protocols 0 to 5) and the behaviour of `Modules/_pickle.c`: a value can
//! only be popped above the innermost mark, `POP` on a mark discards the
//! mark, `MEMOIZE` stores under the memo's current size. Out-of-band buffers
//! (`NEXT_BUFFER`), persistent ids and the extension registry (`EXT*`) need
//! the caller's help and are refused with [`Error::Unsupported`].
//!
//! Hostile input gives [`Error::InvalidModel`] naming the opcode and its
//! offset, never a panic: every length field is checked against the bytes
//! that remain before anything is allocated, the stack, the mark stack and
//! the number of containers are bounded ([`Limits`]), and the work spent
//! converting memoized values is bounded by the input size.

pub mod numpy;

#[cfg(test)]
pub(crate) mod builder;
#[cfg(test)]
mod tests;

use std::collections::HashMap;
use std::fmt;
use std::sync::Arc;

use crate::error::{Error, Result};

/// A decoded pickle: its root value and the containers it refers to.
#[derive(Debug, Clone)]
pub struct Pickle {
    composites: Vec<Composite>,
    root: Value,
}

/// One value of the graph. Containers and objects live in the pickle's
/// arena and are shared by reference, as they are in Python (a memoized
/// list appears once however many times it is referenced).
#[derive(Debug, Clone, PartialEq)]
pub enum Value {
    None,
    Bool(bool),
    Int(i64),
    /// An integer outside `i64`: its little-endian two's-complement bytes,
    /// as `LONG1`/`LONG4` store them.
    BigInt(Arc<[u8]>),
    Float(f64),
    Str(Arc<str>),
    /// `bytes` and `bytearray`.
    Bytes(Arc<[u8]>),
    /// A module attribute (usually a class or a function), never imported.
    Global(Arc<Global>),
    /// A list, tuple, dict, set or object in the arena.
    Ref(Ref),
}

/// A module attribute as `GLOBAL`/`STACK_GLOBAL` name it.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct Global {
    pub module: String,
    pub name: String,
}

impl Global {
    pub fn is(&self, module: &str, name: &str) -> bool {
        self.module == module && self.name == name
    }
}

impl fmt::Display for Global {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}.{}", self.module, self.name)
    }
}

/// The index of a container in its pickle's arena.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct Ref(usize);

/// A container, or an object the unpickler would have created.
#[derive(Debug, Clone, PartialEq)]
pub enum Composite {
    List(Vec<Value>),
    Tuple(Vec<Value>),
    /// Entries in insertion order; a repeated key is kept, and lookups take
    /// the last one, which is the one Python keeps.
    Dict(Vec<(Value, Value)>),
    /// `set` and `frozenset` from the protocol 4 opcodes. Protocols 0–3
    /// pickle sets as a call to `builtins.set`, which stays an [`Object`].
    Set(Vec<Value>),
    Object(Object),
}

/// What `REDUCE`, `NEWOBJ`, `NEWOBJ_EX`, `INST` or `OBJ` would have created:
/// `callable(*args, **kwargs)` (for `NEWOBJ*`, `cls.__new__(cls, *args)`),
/// then `BUILD`'s `__setstate__(state)` and any items appended or set.
#[derive(Debug, Clone, PartialEq)]
pub struct Object {
    /// The class or function called; a [`Value::Global`] in every pickle
    /// Python writes.
    pub callable: Value,
    /// A tuple.
    pub args: Value,
    /// A dict, for `NEWOBJ_EX` only.
    pub kwargs: Option<Value>,
    /// The argument of `BUILD`.
    pub state: Option<Value>,
    /// Items of `APPEND`/`APPENDS` applied to the object (list subclasses).
    pub list_items: Vec<Value>,
    /// Items of `SETITEM`/`SETITEMS` applied to the object (`OrderedDict`,
    /// `defaultdict`, dict subclasses).
    pub dict_items: Vec<(Value, Value)>,
}

/// Bounds on what a pickle may build. Every opcode adds at most one value,
/// so the input size bounds everything else; these keep a small hostile
/// file from using much more memory than its size.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Limits {
    /// Values on the stack at once.
    pub max_stack: usize,
    /// Open marks at once.
    pub max_marks: usize,
    /// Containers and objects in the arena.
    pub max_composites: usize,
}

impl Default for Limits {
    fn default() -> Limits {
        Limits {
            // Python's own pickler never nests deeper than its recursion
            // limit (about 1000), and batches container items by 1000.
            max_stack: 1 << 20,
            max_marks: 1 << 16,
            max_composites: 1 << 24,
        }
    }
}

/// Decodes `bytes` with the default [`Limits`].
pub fn parse(bytes: &[u8]) -> Result<Pickle> {
    parse_with_limits(bytes, Limits::default())
}

pub fn parse_with_limits(bytes: &[u8], limits: Limits) -> Result<Pickle> {
    let mut machine = Machine {
        input: bytes,
        position: 0,
        opcode: Opcode { byte: 0, offset: 0 },
        stack: Vec::new(),
        marks: Vec::new(),
        memo: HashMap::new(),
        composites: Vec::new(),
        limits,
        conversion_budget: bytes.len().saturating_mul(2).saturating_add(1 << 16),
    };
    let root = machine.run()?;
    Ok(Pickle {
        composites: machine.composites,
        root,
    })
}

impl Pickle {
    pub fn root(&self) -> Node<'_> {
        self.node(&self.root)
    }

    /// A view of `value`, which must come from this pickle.
    pub fn node<'p>(&'p self, value: &'p Value) -> Node<'p> {
        Node {
            pickle: self,
            value,
        }
    }

    fn composite(&self, reference: Ref) -> Option<&Composite> {
        self.composites.get(reference.0)
    }
}

/// A value together with the pickle it belongs to, to follow references.
#[derive(Clone, Copy)]
pub struct Node<'p> {
    pickle: &'p Pickle,
    value: &'p Value,
}

impl fmt::Debug for Node<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.describe())
    }
}

impl<'p> Node<'p> {
    pub fn value(&self) -> &'p Value {
        self.value
    }

    pub fn pickle(&self) -> &'p Pickle {
        self.pickle
    }

    fn composite(&self) -> Option<&'p Composite> {
        match self.value {
            Value::Ref(reference) => self.pickle.composite(*reference),
            _ => None,
        }
    }

    pub fn is_none(&self) -> bool {
        matches!(self.value, Value::None)
    }

    pub fn as_bool(&self) -> Option<bool> {
        match self.value {
            Value::Bool(b) => Some(*b),
            _ => None,
        }
    }

    /// A Python `int` that fits `i64` (`bool` is not taken as an int).
    pub fn as_i64(&self) -> Option<i64> {
        match self.value {
            Value::Int(i) => Some(*i),
            _ => None,
        }
    }

    /// A Python `float`, or an `int` converted as Python's `float(i)` does.
    pub fn as_f64(&self) -> Option<f64> {
        match self.value {
            Value::Float(x) => Some(*x),
            Value::Int(i) => Some(*i as f64),
            _ => None,
        }
    }

    pub fn as_str(&self) -> Option<&'p str> {
        match self.value {
            Value::Str(s) => Some(s),
            _ => None,
        }
    }

    pub fn as_bytes(&self) -> Option<&'p [u8]> {
        match self.value {
            Value::Bytes(b) => Some(b),
            _ => None,
        }
    }

    pub fn as_global(&self) -> Option<&'p Global> {
        match self.value {
            Value::Global(g) => Some(g),
            _ => None,
        }
    }

    /// The elements of a tuple.
    pub fn as_tuple(&self) -> Option<Sequence<'p>> {
        match self.composite()? {
            Composite::Tuple(items) => Some(self.sequence(items)),
            _ => None,
        }
    }

    /// The elements of a list.
    pub fn as_list(&self) -> Option<Sequence<'p>> {
        match self.composite()? {
            Composite::List(items) => Some(self.sequence(items)),
            _ => None,
        }
    }

    /// The elements of a list or a tuple.
    pub fn as_sequence(&self) -> Option<Sequence<'p>> {
        match self.composite()? {
            Composite::List(items) | Composite::Tuple(items) => Some(self.sequence(items)),
            _ => None,
        }
    }

    pub fn as_dict(&self) -> Option<Mapping<'p>> {
        match self.composite()? {
            Composite::Dict(entries) => Some(Mapping {
                pickle: self.pickle,
                entries,
            }),
            _ => None,
        }
    }

    pub fn as_object(&self) -> Option<ObjectNode<'p>> {
        match self.composite()? {
            Composite::Object(object) => Some(ObjectNode {
                pickle: self.pickle,
                object,
            }),
            _ => None,
        }
    }

    fn sequence(&self, items: &'p [Value]) -> Sequence<'p> {
        Sequence {
            pickle: self.pickle,
            items,
        }
    }

    /// A short description for error messages: `int`, `str`, `list of 3`,
    /// `sklearn.tree._classes.DecisionTreeClassifier object`, ….
    pub fn describe(&self) -> String {
        match self.value {
            Value::None => "None".into(),
            Value::Bool(_) => "bool".into(),
            Value::Int(_) | Value::BigInt(_) => "int".into(),
            Value::Float(_) => "float".into(),
            Value::Str(_) => "str".into(),
            Value::Bytes(_) => "bytes".into(),
            Value::Global(global) => format!("global {global}"),
            Value::Ref(_) => match self.composite() {
                Some(Composite::List(items)) => format!("list of {}", items.len()),
                Some(Composite::Tuple(items)) => format!("tuple of {}", items.len()),
                Some(Composite::Dict(entries)) => format!("dict of {}", entries.len()),
                Some(Composite::Set(items)) => format!("set of {}", items.len()),
                Some(Composite::Object(object)) => match &object.callable {
                    Value::Global(global) => format!("{global} object"),
                    _ => "object".into(),
                },
                None => "dangling reference".into(),
            },
        }
    }
}

/// The elements of a list or tuple.
#[derive(Clone, Copy)]
pub struct Sequence<'p> {
    pickle: &'p Pickle,
    items: &'p [Value],
}

impl<'p> Sequence<'p> {
    pub fn len(&self) -> usize {
        self.items.len()
    }

    pub fn is_empty(&self) -> bool {
        self.items.is_empty()
    }

    pub fn get(&self, index: usize) -> Option<Node<'p>> {
        self.items.get(index).map(|value| self.pickle.node(value))
    }

    pub fn iter(&self) -> impl Iterator<Item = Node<'p>> + 'p {
        let pickle = self.pickle;
        self.items.iter().map(move |value| pickle.node(value))
    }
}

/// The entries of a dict.
#[derive(Clone, Copy)]
pub struct Mapping<'p> {
    pickle: &'p Pickle,
    entries: &'p [(Value, Value)],
}

impl<'p> Mapping<'p> {
    pub fn len(&self) -> usize {
        self.entries.len()
    }

    pub fn is_empty(&self) -> bool {
        self.entries.is_empty()
    }

    /// The value of the string key `key` (the last one set, as in Python).
    pub fn get(&self, key: &str) -> Option<Node<'p>> {
        self.entries
            .iter()
            .rev()
            .find(|(k, _)| matches!(k, Value::Str(s) if &**s == key))
            .map(|(_, value)| self.pickle.node(value))
    }

    pub fn iter(&self) -> impl Iterator<Item = (Node<'p>, Node<'p>)> + 'p {
        let pickle = self.pickle;
        self.entries
            .iter()
            .map(move |(key, value)| (pickle.node(key), pickle.node(value)))
    }
}

/// An [`Object`] with its pickle.
#[derive(Clone, Copy)]
pub struct ObjectNode<'p> {
    pickle: &'p Pickle,
    object: &'p Object,
}

impl<'p> ObjectNode<'p> {
    pub fn callable(&self) -> Node<'p> {
        self.pickle.node(&self.object.callable)
    }

    /// The callable when it is a global: the object's class (or, for
    /// `REDUCE`, the factory function).
    pub fn class(&self) -> Option<&'p Global> {
        self.callable().as_global()
    }

    /// The positional arguments. Always a tuple: the reader refuses others.
    pub fn args(&self) -> Sequence<'p> {
        let empty: &'p [Value] = &[];
        let args = self.pickle.node(&self.object.args).as_tuple();
        args.unwrap_or(Sequence {
            pickle: self.pickle,
            items: empty,
        })
    }

    pub fn kwargs(&self) -> Option<Mapping<'p>> {
        self.object
            .kwargs
            .as_ref()
            .and_then(|kwargs| self.pickle.node(kwargs).as_dict())
    }

    pub fn state(&self) -> Option<Node<'p>> {
        self.object
            .state
            .as_ref()
            .map(|state| self.pickle.node(state))
    }

    /// The instance dictionary `BUILD` gives an ordinary object: the state
    /// itself when it is a dict, or the first element of a `(dict, slots)`
    /// pair, as Python's default `__setstate__` reads them.
    pub fn attributes(&self) -> Option<Mapping<'p>> {
        let state = self.state()?;
        if let Some(dict) = state.as_dict() {
            return Some(dict);
        }
        let pair = state.as_tuple().filter(|t| t.len() == 2)?;
        pair.get(0)?.as_dict()
    }

    pub fn list_items(&self) -> Sequence<'p> {
        Sequence {
            pickle: self.pickle,
            items: &self.object.list_items,
        }
    }

    pub fn dict_items(&self) -> Mapping<'p> {
        Mapping {
            pickle: self.pickle,
            entries: &self.object.dict_items,
        }
    }
}

// --- The machine ------------------------------------------------------------------------

/// The opcode being run, for error messages.
#[derive(Clone, Copy)]
struct Opcode {
    byte: u8,
    offset: usize,
}

struct Machine<'a> {
    input: &'a [u8],
    position: usize,
    opcode: Opcode,
    stack: Vec<Value>,
    /// Stack lengths at each open `MARK`.
    marks: Vec<usize>,
    memo: HashMap<u64, Value>,
    composites: Vec<Composite>,
    limits: Limits,
    /// Bytes the reader may still spend converting values it evaluates
    /// (`_codecs.encode`, `bytearray`): a memoized string converted again
    /// and again must not cost more than a multiple of the input.
    conversion_budget: usize,
}

/// Opcode bytes, named as in CPython's `pickletools`.
mod op {
    pub const MARK: u8 = b'(';
    pub const STOP: u8 = b'.';
    pub const POP: u8 = b'0';
    pub const POP_MARK: u8 = b'1';
    pub const DUP: u8 = b'2';
    pub const FLOAT: u8 = b'F';
    pub const INT: u8 = b'I';
    pub const BININT: u8 = b'J';
    pub const BININT1: u8 = b'K';
    pub const LONG: u8 = b'L';
    pub const BININT2: u8 = b'M';
    pub const NONE: u8 = b'N';
    pub const PERSID: u8 = b'P';
    pub const BINPERSID: u8 = b'Q';
    pub const REDUCE: u8 = b'R';
    pub const STRING: u8 = b'S';
    pub const BINSTRING: u8 = b'T';
    pub const SHORT_BINSTRING: u8 = b'U';
    pub const UNICODE: u8 = b'V';
    pub const BINUNICODE: u8 = b'X';
    pub const APPEND: u8 = b'a';
    pub const BUILD: u8 = b'b';
    pub const GLOBAL: u8 = b'c';
    pub const DICT: u8 = b'd';
    pub const EMPTY_DICT: u8 = b'}';
    pub const APPENDS: u8 = b'e';
    pub const GET: u8 = b'g';
    pub const BINGET: u8 = b'h';
    pub const INST: u8 = b'i';
    pub const LONG_BINGET: u8 = b'j';
    pub const LIST: u8 = b'l';
    pub const EMPTY_LIST: u8 = b']';
    pub const OBJ: u8 = b'o';
    pub const PUT: u8 = b'p';
    pub const BINPUT: u8 = b'q';
    pub const LONG_BINPUT: u8 = b'r';
    pub const SETITEM: u8 = b's';
    pub const TUPLE: u8 = b't';
    pub const EMPTY_TUPLE: u8 = b')';
    pub const SETITEMS: u8 = b'u';
    pub const BINFLOAT: u8 = b'G';
    // Protocol 2.
    pub const PROTO: u8 = 0x80;
    pub const NEWOBJ: u8 = 0x81;
    pub const EXT1: u8 = 0x82;
    pub const EXT2: u8 = 0x83;
    pub const EXT4: u8 = 0x84;
    pub const TUPLE1: u8 = 0x85;
    pub const TUPLE2: u8 = 0x86;
    pub const TUPLE3: u8 = 0x87;
    pub const NEWTRUE: u8 = 0x88;
    pub const NEWFALSE: u8 = 0x89;
    pub const LONG1: u8 = 0x8a;
    pub const LONG4: u8 = 0x8b;
    // Protocol 3.
    pub const BINBYTES: u8 = b'B';
    pub const SHORT_BINBYTES: u8 = b'C';
    // Protocol 4.
    pub const SHORT_BINUNICODE: u8 = 0x8c;
    pub const BINUNICODE8: u8 = 0x8d;
    pub const BINBYTES8: u8 = 0x8e;
    pub const EMPTY_SET: u8 = 0x8f;
    pub const ADDITEMS: u8 = 0x90;
    pub const FROZENSET: u8 = 0x91;
    pub const NEWOBJ_EX: u8 = 0x92;
    pub const STACK_GLOBAL: u8 = 0x93;
    pub const MEMOIZE: u8 = 0x94;
    pub const FRAME: u8 = 0x95;
    // Protocol 5.
    pub const BYTEARRAY8: u8 = 0x96;
    pub const NEXT_BUFFER: u8 = 0x97;
    pub const READONLY_BUFFER: u8 = 0x98;
}

/// The highest protocol this reader knows (Python 3.8+ writes up to 5).
const HIGHEST_PROTOCOL: u8 = 5;

impl<'a> Machine<'a> {
    fn run(&mut self) -> Result<Value> {
        loop {
            let offset = self.position;
            let byte = self.read_u8().map_err(|_| {
                Error::invalid(format!(
                    "pickle truncated: no STOP opcode by offset {offset}"
                ))
            })?;
            self.opcode = Opcode { byte, offset };
            if byte == op::STOP {
                return self.pop();
            }
            self.step(byte)?;
        }
    }

    fn step(&mut self, byte: u8) -> Result<()> {
        match byte {
            op::PROTO => {
                let version = self.read_u8()?;
                if version > HIGHEST_PROTOCOL {
                    return Err(self.unsupported(&format!("pickle protocol {version}")));
                }
            }
            op::FRAME => {
                // Frames only group opcodes for buffered reading; the length
                // must still fit in what is left.
                let length = self.read_u64()?;
                self.check_length(length)?;
            }
            op::MARK => {
                if self.marks.len() >= self.limits.max_marks {
                    return Err(self.invalid("too many nested marks"));
                }
                self.marks.push(self.stack.len());
            }
            op::POP => {
                if self.marks.last() == Some(&self.stack.len()) {
                    self.marks.pop();
                } else {
                    self.pop()?;
                }
            }
            op::POP_MARK => {
                self.pop_mark()?;
            }
            op::DUP => {
                let top = self.top()?.clone();
                self.push(top)?;
            }

            // Numbers and constants.
            op::NONE => self.push(Value::None)?,
            op::NEWTRUE => self.push(Value::Bool(true))?,
            op::NEWFALSE => self.push(Value::Bool(false))?,
            op::INT => {
                let line = self.read_line()?;
                // Protocol 0 writes booleans as `I01` and `I00`.
                let value = match line {
                    b"01" => Value::Bool(true),
                    b"00" => Value::Bool(false),
                    _ => self.decimal_int(line)?,
                };
                self.push(value)?;
            }
            op::BININT => {
                let value = i32::from_le_bytes(self.read_array()?);
                self.push(Value::Int(value.into()))?;
            }
            op::BININT1 => {
                let value = self.read_u8()?;
                self.push(Value::Int(value.into()))?;
            }
            op::BININT2 => {
                let value = u16::from_le_bytes(self.read_array()?);
                self.push(Value::Int(value.into()))?;
            }
            op::LONG => {
                let line = self.read_line()?;
                let digits = line.strip_suffix(b"L").unwrap_or(line);
                let value = self.decimal_int(digits)?;
                self.push(value)?;
            }
            op::LONG1 => {
                let length = self.read_u8()?;
                let bytes = self.read_bytes(length.into())?;
                self.push(long_value(bytes))?;
            }
            op::LONG4 => {
                let length = i32::from_le_bytes(self.read_array()?);
                let length = u64::try_from(length)
                    .map_err(|_| self.invalid(&format!("negative length {length}")))?;
                let bytes = self.read_sized(length)?;
                self.push(long_value(bytes))?;
            }
            op::FLOAT => {
                let line = self.read_line()?;
                let value = std::str::from_utf8(line)
                    .ok()
                    .and_then(|text| text.trim().parse::<f64>().ok())
                    .ok_or_else(|| self.invalid("malformed float"))?;
                self.push(Value::Float(value))?;
            }
            op::BINFLOAT => {
                // The one big-endian operand of the format.
                let value = f64::from_be_bytes(self.read_array()?);
                self.push(Value::Float(value))?;
            }

            // Strings and bytes.
            op::STRING => {
                let line = self.read_line()?;
                let bytes = self.python2_string_literal(line)?;
                self.push(Value::Str(latin1(&bytes).into()))?;
            }
            op::BINSTRING => {
                let length = i32::from_le_bytes(self.read_array()?);
                let length = u64::try_from(length)
                    .map_err(|_| self.invalid(&format!("negative length {length}")))?;
                let bytes = self.read_sized(length)?;
                // Python 2 `str`: read as Latin-1, as `encoding="latin1"`
                // does (numpy's own advice for Python 2 pickles).
                self.push(Value::Str(latin1(bytes).into()))?;
            }
            op::SHORT_BINSTRING => {
                let length = self.read_u8()?;
                let bytes = self.read_bytes(length.into())?;
                self.push(Value::Str(latin1(bytes).into()))?;
            }
            op::UNICODE => {
                let line = self.read_line()?;
                let text = self.raw_unicode_escape(line)?;
                self.push(Value::Str(text.into()))?;
            }
            op::BINUNICODE => {
                let length = u32::from_le_bytes(self.read_array()?);
                self.push_utf8(length.into())?;
            }
            op::SHORT_BINUNICODE => {
                let length = self.read_u8()?;
                self.push_utf8(length.into())?;
            }
            op::BINUNICODE8 => {
                let length = self.read_u64()?;
                self.push_utf8(length)?;
            }
            op::BINBYTES => {
                let length = u32::from_le_bytes(self.read_array()?);
                self.push_bytes(length.into())?;
            }
            op::SHORT_BINBYTES => {
                let length = self.read_u8()?;
                self.push_bytes(length.into())?;
            }
            op::BINBYTES8 | op::BYTEARRAY8 => {
                let length = self.read_u64()?;
                self.push_bytes(length)?;
            }
            op::NEXT_BUFFER => {
                return Err(self.unsupported("out-of-band buffers (pickled with a buffer_callback)"))
            }
            op::READONLY_BUFFER => {
                // Only marks the buffer on the stack read-only.
                if !matches!(self.top()?, Value::Bytes(_)) {
                    return Err(self.invalid("READONLY_BUFFER on a value that is not a buffer"));
                }
            }

            // Containers.
            op::EMPTY_TUPLE => self.push_composite(Composite::Tuple(Vec::new()))?,
            op::TUPLE => {
                let items = self.pop_mark()?;
                self.push_composite(Composite::Tuple(items))?;
            }
            op::TUPLE1 | op::TUPLE2 | op::TUPLE3 => {
                let count = usize::from(byte - op::TUPLE1 + 1);
                let items = self.pop_n(count)?;
                self.push_composite(Composite::Tuple(items))?;
            }
            op::EMPTY_LIST => self.push_composite(Composite::List(Vec::new()))?,
            op::LIST => {
                let items = self.pop_mark()?;
                self.push_composite(Composite::List(items))?;
            }
            op::APPEND => {
                let item = self.pop()?;
                self.append(vec![item])?;
            }
            op::APPENDS => {
                let items = self.pop_mark()?;
                self.append(items)?;
            }
            op::EMPTY_DICT => self.push_composite(Composite::Dict(Vec::new()))?,
            op::DICT => {
                let items = self.pop_mark()?;
                let entries = self.pairs(items)?;
                self.push_composite(Composite::Dict(entries))?;
            }
            op::SETITEM => {
                let value = self.pop()?;
                let key = self.pop()?;
                self.set_items(vec![(key, value)])?;
            }
            op::SETITEMS => {
                let items = self.pop_mark()?;
                let entries = self.pairs(items)?;
                self.set_items(entries)?;
            }
            op::EMPTY_SET => self.push_composite(Composite::Set(Vec::new()))?,
            op::ADDITEMS => {
                let items = self.pop_mark()?;
                let target = self.top_composite()?;
                match &mut self.composites[target.0] {
                    Composite::Set(set) => set.extend(items),
                    _ => return Err(self.invalid("ADDITEMS on a value that is not a set")),
                }
            }
            op::FROZENSET => {
                let items = self.pop_mark()?;
                self.push_composite(Composite::Set(items))?;
            }

            // Globals and objects.
            op::GLOBAL => {
                let module = self.read_text_line()?;
                let name = self.read_text_line()?;
                self.push_global(module, name)?;
            }
            op::STACK_GLOBAL => {
                let name = self.pop()?;
                let module = self.pop()?;
                let (Value::Str(module), Value::Str(name)) = (module, name) else {
                    return Err(self.invalid("STACK_GLOBAL needs two strings"));
                };
                self.push_global(module.to_string(), name.to_string())?;
            }
            op::REDUCE => {
                let args = self.pop()?;
                let callable = self.pop()?;
                self.check_tuple(&args, "REDUCE arguments")?;
                let value = self.reduce(callable, args)?;
                self.push(value)?;
            }
            op::NEWOBJ => {
                let args = self.pop()?;
                let class = self.pop()?;
                self.check_tuple(&args, "NEWOBJ arguments")?;
                self.push_object(class, args, None)?;
            }
            op::NEWOBJ_EX => {
                let kwargs = self.pop()?;
                let args = self.pop()?;
                let class = self.pop()?;
                self.check_tuple(&args, "NEWOBJ_EX arguments")?;
                if !matches!(self.composite_of(&kwargs), Some(Composite::Dict(_))) {
                    return Err(self.invalid("NEWOBJ_EX keyword arguments are not a dict"));
                }
                self.push_object(class, args, Some(kwargs))?;
            }
            op::INST => {
                let module = self.read_text_line()?;
                let name = self.read_text_line()?;
                let items = self.pop_mark()?;
                let class = self.global(module, name);
                let args = self.new_composite(Composite::Tuple(items))?;
                self.push_object(class, args, None)?;
            }
            op::OBJ => {
                let mut items = self.pop_mark()?.into_iter();
                let class = items
                    .next()
                    .ok_or_else(|| self.invalid("OBJ without a class"))?;
                let args = self.new_composite(Composite::Tuple(items.collect()))?;
                self.push_object(class, args, None)?;
            }
            op::BUILD => {
                let state = self.pop()?;
                let target = self.top_composite()?;
                match &mut self.composites[target.0] {
                    Composite::Object(object) if object.state.is_none() => {
                        object.state = Some(state);
                    }
                    Composite::Object(_) => {
                        return Err(self.invalid("BUILD applied twice to one object"))
                    }
                    _ => return Err(self.invalid("BUILD on a value that is not an object")),
                }
            }

            // The memo.
            op::PUT => {
                let line = self.read_line()?;
                let index = self.decimal_index(line)?;
                self.memoize(index)?;
            }
            op::BINPUT => {
                let index = self.read_u8()?;
                self.memoize(index.into())?;
            }
            op::LONG_BINPUT => {
                let index = u32::from_le_bytes(self.read_array()?);
                self.memoize(index.into())?;
            }
            op::MEMOIZE => {
                let index = self.memo.len() as u64;
                self.memoize(index)?;
            }
            op::GET => {
                let line = self.read_line()?;
                let index = self.decimal_index(line)?;
                self.recall(index)?;
            }
            op::BINGET => {
                let index = self.read_u8()?;
                self.recall(index.into())?;
            }
            op::LONG_BINGET => {
                let index = u32::from_le_bytes(self.read_array()?);
                self.recall(index.into())?;
            }

            // What needs the caller's help.
            op::PERSID | op::BINPERSID => {
                return Err(self.unsupported("persistent ids (objects stored outside the pickle)"))
            }
            op::EXT1 | op::EXT2 | op::EXT4 => {
                return Err(self.unsupported("the copyreg extension registry"))
            }
            _ => return Err(self.invalid("unknown opcode")),
        }
        Ok(())
    }

    // --- Errors -----------------------------------------------------------------------

    fn invalid(&self, message: &str) -> Error {
        Error::invalid(format!("pickle: {message} ({})", self.describe_opcode()))
    }

    fn unsupported(&self, what: &str) -> Error {
        Error::unsupported(format!("pickle uses {what} ({})", self.describe_opcode()))
    }

    fn describe_opcode(&self) -> String {
        let Opcode { byte, offset } = self.opcode;
        if byte.is_ascii_graphic() {
            format!("opcode {:?} at offset {offset}", byte as char)
        } else {
            format!("opcode 0x{byte:02x} at offset {offset}")
        }
    }

    // --- Input ------------------------------------------------------------------------

    fn remaining(&self) -> usize {
        self.input.len() - self.position
    }

    fn check_length(&self, length: u64) -> Result<usize> {
        match usize::try_from(length) {
            Ok(length) if length <= self.remaining() => Ok(length),
            _ => Err(self.invalid(&format!(
                "length {length} exceeds the {} bytes left",
                self.remaining()
            ))),
        }
    }

    fn read_bytes(&mut self, length: usize) -> Result<&'a [u8]> {
        if length > self.remaining() {
            return Err(self.invalid("truncated operand"));
        }
        let input: &'a [u8] = self.input;
        let start = self.position;
        self.position += length;
        Ok(&input[start..self.position])
    }

    /// `length` bytes, after checking the length field against the input.
    fn read_sized(&mut self, length: u64) -> Result<&'a [u8]> {
        let length = self.check_length(length)?;
        self.read_bytes(length)
    }

    fn read_array<const N: usize>(&mut self) -> Result<[u8; N]> {
        let bytes = self.read_bytes(N)?;
        let mut array = [0u8; N];
        array.copy_from_slice(bytes);
        Ok(array)
    }

    fn read_u8(&mut self) -> Result<u8> {
        Ok(self.read_array::<1>()?[0])
    }

    fn read_u64(&mut self) -> Result<u64> {
        Ok(u64::from_le_bytes(self.read_array()?))
    }

    /// The text operand of a protocol 0 opcode, up to its newline.
    fn read_line(&mut self) -> Result<&'a [u8]> {
        let input: &'a [u8] = self.input;
        let rest = &input[self.position..];
        let Some(end) = rest.iter().position(|&b| b == b'\n') else {
            return Err(self.invalid("text operand without a newline"));
        };
        self.position += end + 1;
        let line = &rest[..end];
        // Pickles written on Windows in text mode may carry `\r\n`.
        Ok(line.strip_suffix(b"\r").unwrap_or(line))
    }

    fn read_text_line(&mut self) -> Result<String> {
        let line = self.read_line()?;
        match std::str::from_utf8(line) {
            Ok(text) => Ok(text.to_owned()),
            Err(_) => Err(self.invalid("operand is not UTF-8")),
        }
    }

    // --- The stack --------------------------------------------------------------------

    /// The stack length below which values belong to an enclosing mark.
    fn fence(&self) -> usize {
        self.marks.last().copied().unwrap_or(0)
    }

    fn push(&mut self, value: Value) -> Result<()> {
        if self.stack.len() >= self.limits.max_stack {
            return Err(self.invalid("stack too deep"));
        }
        self.stack.push(value);
        Ok(())
    }

    fn pop(&mut self) -> Result<Value> {
        if self.stack.len() <= self.fence() {
            return Err(self.invalid("stack underflow"));
        }
        self.stack
            .pop()
            .ok_or_else(|| self.invalid("stack underflow"))
    }

    fn pop_n(&mut self, count: usize) -> Result<Vec<Value>> {
        if self.stack.len() < self.fence() + count {
            return Err(self.invalid("stack underflow"));
        }
        Ok(self.stack.split_off(self.stack.len() - count))
    }

    fn top(&self) -> Result<&Value> {
        if self.stack.len() <= self.fence() {
            return Err(self.invalid("stack underflow"));
        }
        self.stack
            .last()
            .ok_or_else(|| self.invalid("stack underflow"))
    }

    /// The values pushed since the innermost mark, which is closed.
    fn pop_mark(&mut self) -> Result<Vec<Value>> {
        let mark = self
            .marks
            .pop()
            .ok_or_else(|| self.invalid("no mark to close"))?;
        Ok(self.stack.split_off(mark))
    }

    // --- The arena --------------------------------------------------------------------

    fn new_composite(&mut self, composite: Composite) -> Result<Value> {
        if self.composites.len() >= self.limits.max_composites {
            return Err(self.invalid("too many containers"));
        }
        self.composites.push(composite);
        Ok(Value::Ref(Ref(self.composites.len() - 1)))
    }

    fn push_composite(&mut self, composite: Composite) -> Result<()> {
        let value = self.new_composite(composite)?;
        self.push(value)
    }

    fn composite_of(&self, value: &Value) -> Option<&Composite> {
        match value {
            Value::Ref(reference) => self.composites.get(reference.0),
            _ => None,
        }
    }

    /// The arena index of the container on top of the stack.
    fn top_composite(&self) -> Result<Ref> {
        match self.top()? {
            Value::Ref(reference) => Ok(*reference),
            _ => Err(self.invalid("target is not a container")),
        }
    }

    fn check_tuple(&self, value: &Value, what: &str) -> Result<()> {
        match self.composite_of(value) {
            Some(Composite::Tuple(_)) => Ok(()),
            _ => Err(self.invalid(&format!("{what} are not a tuple"))),
        }
    }

    fn append(&mut self, items: Vec<Value>) -> Result<()> {
        let target = self.top_composite()?;
        match &mut self.composites[target.0] {
            Composite::List(list) => list.extend(items),
            Composite::Object(object) => object.list_items.extend(items),
            _ => return Err(self.invalid("append to a value that is not a list")),
        }
        Ok(())
    }

    fn set_items(&mut self, entries: Vec<(Value, Value)>) -> Result<()> {
        let target = self.top_composite()?;
        match &mut self.composites[target.0] {
            Composite::Dict(dict) => dict.extend(entries),
            Composite::Object(object) => object.dict_items.extend(entries),
            _ => return Err(self.invalid("set items of a value that is not a dict")),
        }
        Ok(())
    }

    fn pairs(&self, items: Vec<Value>) -> Result<Vec<(Value, Value)>> {
        if items.len() % 2 == 1 {
            return Err(self.invalid("odd number of dict items"));
        }
        let mut entries = Vec::with_capacity(items.len() / 2);
        let mut items = items.into_iter();
        while let (Some(key), Some(value)) = (items.next(), items.next()) {
            entries.push((key, value));
        }
        Ok(entries)
    }

    // --- The memo ---------------------------------------------------------------------

    fn memoize(&mut self, index: u64) -> Result<()> {
        let top = self.top()?.clone();
        self.memo.insert(index, top);
        Ok(())
    }

    fn recall(&mut self, index: u64) -> Result<()> {
        let value = self
            .memo
            .get(&index)
            .cloned()
            .ok_or_else(|| self.invalid(&format!("memo has no entry {index}")))?;
        self.push(value)
    }

    fn decimal_index(&self, line: &[u8]) -> Result<u64> {
        std::str::from_utf8(line)
            .ok()
            .and_then(|text| text.parse::<u64>().ok())
            .ok_or_else(|| self.invalid("malformed memo index"))
    }

    // --- Globals and objects ----------------------------------------------------------

    fn global(&self, module: String, name: String) -> Value {
        // Python 3 reads Python 2's names for these modules the same way
        // (`_compat_pickle.IMPORT_MAPPING`).
        let module = match module.as_str() {
            "__builtin__" => "builtins".to_string(),
            "copy_reg" => "copyreg".to_string(),
            _ => module,
        };
        Value::Global(Arc::new(Global { module, name }))
    }

    fn push_global(&mut self, module: String, name: String) -> Result<()> {
        let global = self.global(module, name);
        self.push(global)
    }

    fn push_object(&mut self, callable: Value, args: Value, kwargs: Option<Value>) -> Result<()> {
        self.push_composite(Composite::Object(Object {
            callable,
            args,
            kwargs,
            state: None,
            list_items: Vec::new(),
            dict_items: Vec::new(),
        }))
    }

    /// `callable(*args)`: a plain value for the few builtins this reader
    /// evaluates itself, else an [`Object`].
    fn reduce(&mut self, callable: Value, args: Value) -> Result<Value> {
        if let Some(value) = self.evaluate_builtin(&callable, &args)? {
            return Ok(value);
        }
        let value = self.new_composite(Composite::Object(Object {
            callable,
            args,
            kwargs: None,
            state: None,
            list_items: Vec::new(),
            dict_items: Vec::new(),
        }))?;
        Ok(value)
    }

    fn evaluate_builtin(&mut self, callable: &Value, args: &Value) -> Result<Option<Value>> {
        /// What a recognised call evaluates to, taken out of the arena
        /// before the arena is changed.
        enum Evaluated {
            Latin1(Arc<str>),
            Bytes(Arc<[u8]>),
            Instance(Value),
        }
        let Value::Global(global) = callable else {
            return Ok(None);
        };
        let Some(Composite::Tuple(args)) = self.composite_of(args) else {
            return Ok(None);
        };
        let evaluated = match (
            global.module.as_str(),
            global.name.as_str(),
            args.as_slice(),
        ) {
            // Protocols 0–2 pickle `bytes` as `_codecs.encode(text, "latin1")`.
            ("_codecs", "encode", [Value::Str(text), Value::Str(encoding)])
                if matches!(&**encoding, "latin1" | "latin-1") =>
            {
                Evaluated::Latin1(text.clone())
            }
            ("builtins", "bytes" | "bytearray", []) => Evaluated::Bytes(Arc::from(&[][..])),
            ("builtins", "bytes" | "bytearray", [Value::Bytes(bytes)]) => {
                Evaluated::Bytes(bytes.clone())
            }
            // `object.__reduce_ex__` below protocol 2: a plain instance of
            // `cls`, whose state `BUILD` sets next.
            (
                "copyreg",
                "_reconstructor",
                [class @ Value::Global(_), Value::Global(base), Value::None],
            ) if base.is("builtins", "object") => Evaluated::Instance(class.clone()),
            _ => return Ok(None),
        };
        let value = match evaluated {
            Evaluated::Latin1(text) => {
                self.spend(text.len())?;
                let bytes = encode_latin1(&text)
                    .ok_or_else(|| self.invalid("_codecs.encode of a non-Latin-1 string"))?;
                Value::Bytes(bytes.into())
            }
            Evaluated::Bytes(bytes) => Value::Bytes(bytes),
            Evaluated::Instance(class) => {
                let args = self.new_composite(Composite::Tuple(Vec::new()))?;
                self.new_composite(Composite::Object(Object {
                    callable: class,
                    args,
                    kwargs: None,
                    state: None,
                    list_items: Vec::new(),
                    dict_items: Vec::new(),
                }))?
            }
        };
        Ok(Some(value))
    }

    fn spend(&mut self, bytes: usize) -> Result<()> {
        self.conversion_budget = self
            .conversion_budget
            .checked_sub(bytes)
            .ok_or_else(|| self.invalid("converts more data than the pickle holds"))?;
        Ok(())
    }

    // --- Text operands ----------------------------------------------------------------

    fn push_utf8(&mut self, length: u64) -> Result<()> {
        let bytes = self.read_sized(length)?;
        // Python writes strings as UTF-8 with lone surrogates allowed
        // ("surrogatepass"); a Rust string cannot hold those.
        let text = std::str::from_utf8(bytes).map_err(|_| self.invalid("string is not UTF-8"))?;
        self.push(Value::Str(text.into()))
    }

    fn push_bytes(&mut self, length: u64) -> Result<()> {
        let bytes: Arc<[u8]> = self.read_sized(length)?.into();
        self.push(Value::Bytes(bytes))
    }

    /// A decimal integer of `INT`/`LONG`, as `i64` when it fits.
    fn decimal_int(&self, digits: &[u8]) -> Result<Value> {
        let text = std::str::from_utf8(digits)
            .map_err(|_| self.invalid("malformed integer"))?
            .trim();
        if let Ok(value) = text.parse::<i64>() {
            return Ok(Value::Int(value));
        }
        decimal_to_twos_complement(text)
            .map(|bytes| Value::BigInt(bytes.into()))
            .ok_or_else(|| {
                self.invalid(&format!(
                    "malformed integer, or one of more than {MAX_DECIMAL_DIGITS} digits"
                ))
            })
    }

    /// The bytes of a Python 2 `str` literal (`'...'` or `"..."` with
    /// backslash escapes), as `STRING` writes it with `repr`.
    fn python2_string_literal(&self, line: &[u8]) -> Result<Vec<u8>> {
        let inner = match line {
            [b'\'', inner @ .., b'\''] | [b'"', inner @ .., b'"'] => inner,
            _ => return Err(self.invalid("STRING operand is not quoted")),
        };
        let mut out = Vec::with_capacity(inner.len());
        let mut bytes = inner.iter().copied();
        while let Some(byte) = bytes.next() {
            if byte != b'\\' {
                out.push(byte);
                continue;
            }
            let escaped = bytes
                .next()
                .ok_or_else(|| self.invalid("STRING ends in a backslash"))?;
            match escaped {
                b'\\' | b'\'' | b'"' => out.push(escaped),
                b'n' => out.push(b'\n'),
                b't' => out.push(b'\t'),
                b'r' => out.push(b'\r'),
                b'a' => out.push(0x07),
                b'b' => out.push(0x08),
                b'f' => out.push(0x0c),
                b'v' => out.push(0x0b),
                b'x' => {
                    let high = bytes.next().and_then(hex_digit);
                    let low = bytes.next().and_then(hex_digit);
                    match (high, low) {
                        (Some(high), Some(low)) => out.push(high << 4 | low),
                        _ => return Err(self.invalid("malformed \\x escape in STRING")),
                    }
                }
                b'0'..=b'7' => {
                    // Up to three octal digits; `repr` writes `\x` escapes,
                    // but hand-written literals may not.
                    let mut value = u32::from(escaped - b'0');
                    let mut rest = bytes.clone();
                    for _ in 0..2 {
                        match rest.next() {
                            Some(d @ b'0'..=b'7') => {
                                value = value * 8 + u32::from(d - b'0');
                                bytes.next();
                            }
                            _ => break,
                        }
                        rest = bytes.clone();
                    }
                    out.push((value & 0xff) as u8);
                }
                other => {
                    // Python keeps unknown escapes as they are.
                    out.push(b'\\');
                    out.push(other);
                }
            }
        }
        Ok(out)
    }

    /// Python's `raw-unicode-escape` codec, which `UNICODE` uses: Latin-1
    /// bytes, except `\uXXXX` and `\UXXXXXXXX`.
    fn raw_unicode_escape(&self, line: &[u8]) -> Result<String> {
        let mut out = String::with_capacity(line.len());
        let mut index = 0;
        while index < line.len() {
            let byte = line[index];
            let digits = match (byte, line.get(index + 1)) {
                (b'\\', Some(b'u')) => 4,
                (b'\\', Some(b'U')) => 8,
                _ => 0,
            };
            // A `\u` is an escape only when the run of backslashes it ends
            // is odd (CPython's raw-unicode-escape decoder).
            let escaped_backslash = digits != 0
                && line[..index]
                    .iter()
                    .rev()
                    .take_while(|&&b| b == b'\\')
                    .count()
                    % 2
                    == 1;
            if digits == 0 || escaped_backslash {
                out.push(char::from(byte));
                index += 1;
                continue;
            }
            let hex = line
                .get(index + 2..index + 2 + digits)
                .ok_or_else(|| self.invalid("truncated \\u escape in UNICODE"))?;
            let code = hex
                .iter()
                .try_fold(0u32, |acc, &d| {
                    hex_digit(d).map(|d| acc * 16 + u32::from(d))
                })
                .and_then(char::from_u32)
                .ok_or_else(|| self.invalid("malformed \\u escape in UNICODE"))?;
            out.push(code);
            index += 2 + digits;
        }
        Ok(out)
    }
}

fn hex_digit(byte: u8) -> Option<u8> {
    match byte {
        b'0'..=b'9' => Some(byte - b'0'),
        b'a'..=b'f' => Some(byte - b'a' + 10),
        b'A'..=b'F' => Some(byte - b'A' + 10),
        _ => None,
    }
}

/// Bytes read as Latin-1 (each byte is the code point of one character).
fn latin1(bytes: &[u8]) -> String {
    bytes.iter().map(|&b| char::from(b)).collect()
}

/// The inverse of [`latin1`]; `None` for characters above U+00FF.
pub(crate) fn encode_latin1(text: &str) -> Option<Vec<u8>> {
    text.chars()
        .map(|c| u8::try_from(u32::from(c)).ok())
        .collect()
}

/// A `LONG1`/`LONG4` operand: little-endian two's complement.
fn long_value(bytes: &[u8]) -> Value {
    let Some(&last) = bytes.last() else {
        return Value::Int(0);
    };
    let negative = last & 0x80 != 0;
    let extension = if negative { 0xff } else { 0x00 };
    // It fits `i64` when every byte above the eighth is sign extension and
    // the eighth byte's sign agrees.
    let fits = bytes.iter().skip(8).all(|&b| b == extension)
        && (bytes.len() <= 8 || (bytes[7] & 0x80 != 0) == negative);
    if !fits {
        return Value::BigInt(bytes.into());
    }
    let mut buffer = [extension; 8];
    for (slot, &byte) in buffer.iter_mut().zip(bytes) {
        *slot = byte;
    }
    Value::Int(i64::from_le_bytes(buffer))
}

/// Python refuses to convert longer decimal strings to `int` (its
/// `sys.int_info.default_max_str_digits`), because the conversion is
/// quadratic; so do we.
const MAX_DECIMAL_DIGITS: usize = 4300;

/// A decimal integer of any size as little-endian two's complement.
fn decimal_to_twos_complement(text: &str) -> Option<Vec<u8>> {
    let (negative, digits) = match text.strip_prefix('-') {
        Some(rest) => (true, rest),
        None => (false, text.strip_prefix('+').unwrap_or(text)),
    };
    if digits.is_empty()
        || digits.len() > MAX_DECIMAL_DIGITS
        || !digits.bytes().all(|b| b.is_ascii_digit())
    {
        return None;
    }
    // Magnitude, little-endian base 256.
    let mut magnitude: Vec<u8> = vec![0];
    for digit in digits.bytes() {
        let mut carry = u32::from(digit - b'0');
        for byte in magnitude.iter_mut() {
            let value = u32::from(*byte) * 10 + carry;
            *byte = (value & 0xff) as u8;
            carry = value >> 8;
        }
        if carry > 0 {
            magnitude.push(carry as u8);
        }
    }
    // Room for the sign bit.
    magnitude.push(0);
    if negative {
        let mut carry = 1u16;
        for byte in magnitude.iter_mut() {
            let value = u16::from(!*byte) + carry;
            *byte = (value & 0xff) as u8;
            carry = value >> 8;
        }
    }
    Some(magnitude)
}
