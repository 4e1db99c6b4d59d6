//! Pull readers for the JSON data model in its two encodings that XGBoost
//! writes: UBJSON (Universal Binary JSON, <https://ubjson.org>) and JSON
//! text. The XGBoost loader walks a model through the [`Document`] trait
//! without building a tree of values: a model can hold millions of nodes,
//! and UBJSON stores each node array as one strongly typed array
//! (`[$d#L<count>` followed by big-endian `float32`s) that is decoded in
//! bulk.
//!
//! UBJSON as XGBoost writes it (`UBJWriter` in XGBoost's
//! `src/common/json.cc`): containers open with `{` / `[` and close with
//! `}` / `]`, or give their length as `#` plus an integer; object keys are
//! an integer length then UTF-8 bytes (no `S` marker); numbers are `i`
//! (int8), `U` (uint8), `I` (int16), `l` (int32), `L` (int64), `d`
//! (float32) and `D` (float64), all big-endian; `S` strings, `T`/`F`
//! booleans, `Z` null and `N` no-op as in the specification. Typed arrays
//! (`[$<type>#<count>`) carry their elements without markers. The reader
//! accepts the whole specification except typed objects (`{$`), which
//! XGBoost never writes.

use std::borrow::Cow;

use crate::error::{Error, Result};

/// Containers nested deeper than this are refused: XGBoost models nest fewer
/// than ten levels, and a hostile file must not exhaust the stack.
const MAX_DEPTH: usize = 64;

/// The kind of the next value.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Kind {
    Object,
    Array,
    String,
    Number,
    Bool,
    Null,
}

/// A reader positioned before a value. Each method consumes exactly one
/// value (or fails); `object` and `array` hand every entry to a callback
/// that must consume it.
pub(super) trait Document<'a>: Sized {
    fn peek(&mut self) -> Result<Kind>;

    /// Calls `entry` with each key of the next value, an object.
    fn object(&mut self, entry: impl FnMut(&mut Self, &str) -> Result<()>) -> Result<()>;

    /// Calls `element` for each element of the next value, an array.
    fn array(&mut self, element: impl FnMut(&mut Self) -> Result<()>) -> Result<()>;

    fn string(&mut self) -> Result<Cow<'a, str>>;

    /// A number as `float32`, rounded once from the encoded value the way
    /// XGBoost reads it (JSON text is parsed straight to `float32`).
    fn f32(&mut self) -> Result<f32>;

    /// A number that must be an integer.
    fn integer(&mut self) -> Result<i64>;

    fn boolean(&mut self) -> Result<bool>;

    /// Consumes the next value, whatever it is.
    fn skip(&mut self) -> Result<()>;

    /// An array of numbers as `float32`s.
    fn f32_array(&mut self) -> Result<Vec<f32>> {
        let mut values = Vec::new();
        self.array(|d| {
            values.push(d.f32()?);
            Ok(())
        })?;
        Ok(values)
    }

    /// An array of integers that fit `i32`.
    fn i32_array(&mut self) -> Result<Vec<i32>> {
        let mut values = Vec::new();
        self.array(|d| {
            values.push(to_i32(d.integer()?)?);
            Ok(())
        })?;
        Ok(values)
    }

    /// An array of booleans, written as `true`/`false` or as integers (XGBoost
    /// writes `default_left` as 0/1, a `uint8` typed array in UBJSON).
    fn flag_array(&mut self) -> Result<Vec<bool>> {
        flags_one_by_one(self)
    }
}

fn flags_one_by_one<'a>(doc: &mut impl Document<'a>) -> Result<Vec<bool>> {
    let mut values = Vec::new();
    doc.array(|d| {
        let flag = match d.peek()? {
            Kind::Bool => d.boolean()?,
            _ => d.integer()? != 0,
        };
        values.push(flag);
        Ok(())
    })?;
    Ok(values)
}

fn to_i32(value: i64) -> Result<i32> {
    i32::try_from(value)
        .map_err(|_| Error::invalid(format!("integer {value} does not fit 32 bits")))
}

fn syntax(message: impl std::fmt::Display, offset: usize) -> Error {
    Error::invalid(format!("{message} at byte {offset}"))
}

// --- UBJSON ----------------------------------------------------------------------------

/// Reads UBJSON from a byte slice.
pub(super) struct Ubjson<'a> {
    bytes: &'a [u8],
    pos: usize,
    depth: usize,
    /// The element type of the typed array being read: its elements carry no
    /// marker, so the next value read takes this one instead.
    implicit_marker: Option<u8>,
}

impl<'a> Ubjson<'a> {
    pub(super) fn new(bytes: &'a [u8]) -> Ubjson<'a> {
        Ubjson {
            bytes,
            pos: 0,
            depth: 0,
            implicit_marker: None,
        }
    }

    /// Fails unless only no-op markers remain.
    pub(super) fn finish(&mut self) -> Result<()> {
        while self.bytes.get(self.pos) == Some(&b'N') {
            self.pos += 1;
        }
        if self.pos != self.bytes.len() {
            return Err(syntax("trailing bytes after the document", self.pos));
        }
        Ok(())
    }

    fn take(&mut self, n: usize) -> Result<&'a [u8]> {
        let end = self
            .pos
            .checked_add(n)
            .filter(|&end| end <= self.bytes.len());
        let Some(end) = end else {
            return Err(syntax(
                format!("truncated: {n} more bytes expected"),
                self.pos,
            ));
        };
        let slice = &self.bytes[self.pos..end];
        self.pos = end;
        Ok(slice)
    }

    fn byte(&mut self) -> Result<u8> {
        Ok(self.take(1)?[0])
    }

    fn array_of<const N: usize>(&mut self) -> Result<[u8; N]> {
        let mut out = [0u8; N];
        out.copy_from_slice(self.take(N)?);
        Ok(out)
    }

    /// The marker of the next value, skipping no-op markers; consumed.
    fn marker(&mut self) -> Result<u8> {
        if let Some(marker) = self.implicit_marker.take() {
            return Ok(marker);
        }
        loop {
            let marker = self.byte()?;
            if marker != b'N' {
                return Ok(marker);
            }
        }
    }

    fn peek_marker(&mut self) -> Result<u8> {
        if let Some(marker) = self.implicit_marker {
            return Ok(marker);
        }
        while self.bytes.get(self.pos) == Some(&b'N') {
            self.pos += 1;
        }
        self.bytes
            .get(self.pos)
            .copied()
            .ok_or_else(|| syntax("truncated: a value expected", self.pos))
    }

    /// The payload of an integer whose marker was read.
    fn integer_payload(&mut self, marker: u8) -> Result<Option<i64>> {
        Ok(Some(match marker {
            b'i' => i8::from_be_bytes(self.array_of()?) as i64,
            b'U' => u8::from_be_bytes(self.array_of()?) as i64,
            b'I' => i16::from_be_bytes(self.array_of()?) as i64,
            b'l' => i32::from_be_bytes(self.array_of()?) as i64,
            b'L' => i64::from_be_bytes(self.array_of()?),
            _ => return Ok(None),
        }))
    }

    /// A length or count: an integer with its marker, not negative.
    fn length(&mut self) -> Result<usize> {
        let at = self.pos;
        let marker = self.byte()?;
        let value = self.integer_payload(marker)?.ok_or_else(|| {
            syntax(
                format!(
                    "expected an integer length, found marker {:?}",
                    marker as char
                ),
                at,
            )
        })?;
        usize::try_from(value).map_err(|_| syntax(format!("negative length {value}"), at))
    }

    fn str_payload(&mut self) -> Result<&'a str> {
        let at = self.pos;
        let len = self.length()?;
        let bytes = self.take(len)?;
        std::str::from_utf8(bytes).map_err(|_| syntax("string is not UTF-8", at))
    }

    /// After the opening `[` or `{`: the element type (`$`) and count (`#`),
    /// when given.
    fn container_header(&mut self) -> Result<(Option<u8>, Option<usize>)> {
        let mut element_type = None;
        if self.bytes.get(self.pos) == Some(&b'$') {
            self.pos += 1;
            element_type = Some(self.byte()?);
            if self.bytes.get(self.pos) != Some(&b'#') {
                return Err(syntax("a typed container must give its count", self.pos));
            }
        }
        let mut count = None;
        if self.bytes.get(self.pos) == Some(&b'#') {
            self.pos += 1;
            let n = self.length()?;
            // Every element takes at least one byte (typed ones their
            // width): a count beyond the remaining bytes is corrupt, and must
            // not be allocated.
            let width = element_type
                .map_or(1, |t| fixed_width(t).unwrap_or(1))
                .max(1);
            if n.checked_mul(width)
                .is_none_or(|needed| needed > self.bytes.len() - self.pos)
            {
                return Err(syntax(
                    format!("count {n} exceeds the remaining bytes"),
                    self.pos,
                ));
            }
            count = Some(n);
        }
        Ok((element_type, count))
    }

    fn enter(&mut self) -> Result<()> {
        self.depth += 1;
        if self.depth > MAX_DEPTH {
            return Err(syntax("containers nested too deeply", self.pos));
        }
        Ok(())
    }

    fn expect_open(&mut self, open: u8, what: &str) -> Result<()> {
        let at = self.pos;
        let marker = self.marker()?;
        if marker != open {
            return Err(syntax(
                format!("expected {what}, found {}", describe(marker)),
                at,
            ));
        }
        Ok(())
    }

    /// A typed array of fixed-width numbers whose header was read, decoded in
    /// bulk.
    fn typed_numbers<T>(
        &mut self,
        element_type: u8,
        count: usize,
        convert: impl Fn(Number) -> Result<T>,
    ) -> Result<Vec<T>> {
        // Booleans and null carry no payload, characters are strings.
        let width = fixed_width(element_type)
            .filter(|&w| w > 0 && element_type != b'C')
            .ok_or_else(|| {
                syntax(
                    format!("typed array of {} is not numeric", describe(element_type)),
                    self.pos,
                )
            })?;
        let bytes = self.take(count * width)?;
        // One loop per element type, so that each decodes without a branch.
        match element_type {
            b'd' => bytes
                .chunks_exact(4)
                .map(|c| convert(Number::F32(f32::from_be_bytes([c[0], c[1], c[2], c[3]]))))
                .collect(),
            b'l' => bytes
                .chunks_exact(4)
                .map(|c| {
                    convert(Number::Int(
                        i32::from_be_bytes([c[0], c[1], c[2], c[3]]) as i64
                    ))
                })
                .collect(),
            b'U' => bytes
                .iter()
                .map(|&b| convert(Number::Int(b as i64)))
                .collect(),
            _ => bytes
                .chunks_exact(width)
                .map(|chunk| convert(Number::decode(element_type, chunk)))
                .collect(),
        }
    }

    fn number(&mut self) -> Result<Number> {
        let at = self.pos;
        let marker = self.marker()?;
        if let Some(i) = self.integer_payload(marker)? {
            return Ok(Number::Int(i));
        }
        match marker {
            b'd' => Ok(Number::F32(f32::from_be_bytes(self.array_of()?))),
            b'D' => Ok(Number::F64(f64::from_be_bytes(self.array_of()?))),
            // High-precision numbers are decimal strings.
            b'H' => {
                let text = self.str_payload()?;
                Number::parse(text)
                    .ok_or_else(|| syntax(format!("bad high-precision number {text:?}"), at))
            }
            other => Err(syntax(
                format!("expected a number, found {}", describe(other)),
                at,
            )),
        }
    }

    /// Reads a numeric array, in bulk when typed.
    fn numbers<T>(&mut self, convert: impl Fn(Number) -> Result<T> + Copy) -> Result<Vec<T>> {
        let at = self.pos;
        self.expect_open(b'[', "an array")?;
        self.enter()?;
        let (element_type, count) = self.container_header()?;
        let values = match (element_type, count) {
            (Some(t), Some(n)) => self.typed_numbers(t, n, convert),
            (None, Some(n)) => (0..n).map(|_| self.number().and_then(convert)).collect(),
            _ => {
                let mut values = Vec::new();
                while self.peek_marker()? != b']' {
                    values.push(self.number().and_then(convert)?);
                }
                self.pos += 1;
                Ok(values)
            }
        }
        .map_err(|e| annotate(e, at))?;
        self.depth -= 1;
        Ok(values)
    }
}

/// Adds the start of an array to an error about one of its elements.
fn annotate(error: Error, array_start: usize) -> Error {
    match error {
        Error::InvalidModel(message) => {
            Error::InvalidModel(format!("{message} (in the array at byte {array_start})"))
        }
        other => other,
    }
}

/// Width of a fixed-size UBJSON value type.
fn fixed_width(marker: u8) -> Option<usize> {
    match marker {
        b'i' | b'U' | b'C' => Some(1),
        b'I' => Some(2),
        b'l' | b'd' => Some(4),
        b'L' | b'D' => Some(8),
        b'Z' | b'T' | b'F' => Some(0),
        _ => None,
    }
}

fn describe(marker: u8) -> String {
    match marker {
        b'{' => "an object".into(),
        b'[' => "an array".into(),
        b'S' | b'C' => "a string".into(),
        b'T' | b'F' => "a boolean".into(),
        b'Z' => "null".into(),
        b'i' | b'U' | b'I' | b'l' | b'L' | b'd' | b'D' | b'H' => "a number".into(),
        other if other.is_ascii_graphic() => format!("marker {:?}", other as char),
        other => format!("byte 0x{other:02x}"),
    }
}

/// A number as encoded, before conversion to what the reader asked for.
#[derive(Debug, Clone, Copy)]
enum Number {
    Int(i64),
    F32(f32),
    F64(f64),
}

impl Number {
    /// Decodes one big-endian element of a typed array of `marker`s.
    fn decode(marker: u8, bytes: &[u8]) -> Number {
        let mut buf = [0u8; 8];
        buf[..bytes.len()].copy_from_slice(bytes);
        match marker {
            b'i' => Number::Int(bytes[0] as i8 as i64),
            b'U' => Number::Int(bytes[0] as i64),
            b'I' => Number::Int(i16::from_be_bytes([buf[0], buf[1]]) as i64),
            b'l' => Number::Int(i32::from_be_bytes([buf[0], buf[1], buf[2], buf[3]]) as i64),
            b'L' => Number::Int(i64::from_be_bytes(buf)),
            b'd' => Number::F32(f32::from_be_bytes([buf[0], buf[1], buf[2], buf[3]])),
            _ => Number::F64(f64::from_be_bytes(buf)),
        }
    }

    fn parse(text: &str) -> Option<Number> {
        if let Ok(i) = text.parse::<i64>() {
            return Some(Number::Int(i));
        }
        text.parse::<f64>().ok().map(Number::F64)
    }

    fn to_f32(self) -> Result<f32> {
        Ok(match self {
            Number::Int(i) => i as f32,
            Number::F32(f) => f,
            Number::F64(f) => f as f32,
        })
    }

    fn to_integer(self) -> Result<i64> {
        let float = match self {
            Number::Int(i) => return Ok(i),
            Number::F32(f) => f as f64,
            Number::F64(f) => f,
        };
        // An integral float is accepted as the integer it holds.
        if float.fract() == 0.0 && float.abs() < 9.007_199_254_740_992e15 {
            Ok(float as i64)
        } else {
            Err(Error::invalid(format!(
                "expected an integer, found {float}"
            )))
        }
    }
}

impl<'a> Document<'a> for Ubjson<'a> {
    fn peek(&mut self) -> Result<Kind> {
        let at = self.pos;
        Ok(match self.peek_marker()? {
            b'{' => Kind::Object,
            b'[' => Kind::Array,
            b'S' | b'C' => Kind::String,
            b'i' | b'U' | b'I' | b'l' | b'L' | b'd' | b'D' | b'H' => Kind::Number,
            b'T' | b'F' => Kind::Bool,
            b'Z' => Kind::Null,
            other => {
                return Err(syntax(
                    format!("unknown UBJSON marker {}", describe(other)),
                    at,
                ))
            }
        })
    }

    fn object(&mut self, mut entry: impl FnMut(&mut Self, &str) -> Result<()>) -> Result<()> {
        self.expect_open(b'{', "an object")?;
        self.enter()?;
        let (element_type, count) = self.container_header()?;
        if element_type.is_some() {
            return Err(syntax("typed UBJSON objects are not supported", self.pos));
        }
        match count {
            Some(n) => {
                for _ in 0..n {
                    let key = self.str_payload()?;
                    entry(self, key)?;
                }
            }
            None => loop {
                if self.peek_marker()? == b'}' {
                    self.pos += 1;
                    break;
                }
                let key = self.str_payload()?;
                entry(self, key)?;
            },
        }
        self.depth -= 1;
        Ok(())
    }

    fn array(&mut self, mut element: impl FnMut(&mut Self) -> Result<()>) -> Result<()> {
        self.expect_open(b'[', "an array")?;
        self.enter()?;
        let (element_type, count) = self.container_header()?;
        let mut read_one = |reader: &mut Self| -> Result<()> {
            reader.implicit_marker = element_type;
            element(reader)?;
            if reader.implicit_marker.take().is_some() {
                return Err(syntax("array element left unread", reader.pos));
            }
            Ok(())
        };
        match count {
            Some(n) => {
                for _ in 0..n {
                    read_one(self)?;
                }
            }
            None => {
                while self.peek_marker()? != b']' {
                    read_one(self)?;
                }
                self.pos += 1;
            }
        }
        self.depth -= 1;
        Ok(())
    }

    fn string(&mut self) -> Result<Cow<'a, str>> {
        let at = self.pos;
        match self.marker()? {
            b'S' => Ok(Cow::Borrowed(self.str_payload()?)),
            b'C' => Ok(Cow::Owned(char::from(self.byte()?).to_string())),
            other => Err(syntax(
                format!("expected a string, found {}", describe(other)),
                at,
            )),
        }
    }

    fn f32(&mut self) -> Result<f32> {
        self.number()?.to_f32()
    }

    fn integer(&mut self) -> Result<i64> {
        let at = self.pos;
        self.number()?.to_integer().map_err(|e| match e {
            Error::InvalidModel(m) => syntax(m, at),
            other => other,
        })
    }

    fn boolean(&mut self) -> Result<bool> {
        let at = self.pos;
        match self.marker()? {
            b'T' => Ok(true),
            b'F' => Ok(false),
            other => Err(syntax(
                format!("expected a boolean, found {}", describe(other)),
                at,
            )),
        }
    }

    fn skip(&mut self) -> Result<()> {
        match self.peek()? {
            Kind::Object => self.object(|d, _| d.skip()),
            // A typed array of fixed-width values is skipped in one step
            // (XGBoost's unused node arrays, such as `loss_changes`).
            Kind::Array
                if self.implicit_marker.is_none()
                    && self.bytes.get(self.pos + 1) == Some(&b'$')
                    && self
                        .bytes
                        .get(self.pos + 2)
                        .and_then(|&t| fixed_width(t))
                        .is_some() =>
            {
                self.pos += 1;
                let (element_type, count) = self.container_header()?;
                let width = element_type.and_then(fixed_width).unwrap_or(0);
                self.take(count.unwrap_or(0) * width).map(drop)
            }
            Kind::Array => self.array(|d| d.skip()),
            Kind::String => self.string().map(drop),
            Kind::Number => self.number().map(drop),
            Kind::Bool => self.boolean().map(drop),
            Kind::Null => self.marker().map(drop),
        }
    }

    fn f32_array(&mut self) -> Result<Vec<f32>> {
        self.numbers(Number::to_f32)
    }

    fn i32_array(&mut self) -> Result<Vec<i32>> {
        self.numbers(|n| n.to_integer().and_then(to_i32))
    }

    fn flag_array(&mut self) -> Result<Vec<bool>> {
        // Typed arrays of booleans do not exist (`T`/`F` carry the value in
        // the marker); untyped ones go through the generic path.
        if self.peek_marker()? == b'[' && self.bytes.get(self.pos + 1) == Some(&b'$') {
            return self.numbers(|n| Ok(n.to_integer()? != 0));
        }
        flags_one_by_one(self)
    }
}

// --- JSON text -------------------------------------------------------------------------

/// Reads JSON text (RFC 8259, plus the `NaN`, `Infinity` and `-Infinity`
/// literals that XGBoost's own reader accepts, `JsonReader::ParseNumber`).
pub(super) struct JsonText<'a> {
    bytes: &'a [u8],
    pos: usize,
    depth: usize,
}

impl<'a> JsonText<'a> {
    pub(super) fn new(text: &'a [u8]) -> JsonText<'a> {
        JsonText {
            bytes: text,
            pos: 0,
            depth: 0,
        }
    }

    /// Fails unless only whitespace remains.
    pub(super) fn finish(&mut self) -> Result<()> {
        self.skip_whitespace();
        if self.pos != self.bytes.len() {
            return Err(syntax("trailing characters after the document", self.pos));
        }
        Ok(())
    }

    fn skip_whitespace(&mut self) {
        while matches!(self.bytes.get(self.pos), Some(b' ' | b'\t' | b'\n' | b'\r')) {
            self.pos += 1;
        }
    }

    fn peek_byte(&mut self) -> Result<u8> {
        self.skip_whitespace();
        self.bytes
            .get(self.pos)
            .copied()
            .ok_or_else(|| syntax("truncated: a value expected", self.pos))
    }

    fn expect(&mut self, byte: u8) -> Result<()> {
        let found = self.peek_byte()?;
        if found != byte {
            return Err(syntax(
                format!("expected {:?}, found {:?}", byte as char, found as char),
                self.pos,
            ));
        }
        self.pos += 1;
        Ok(())
    }

    /// Consumes the opening `{` or `[` of a container.
    fn open(&mut self, byte: u8) -> Result<()> {
        let found = self.peek_byte()?;
        if found != byte {
            return Err(syntax(
                format!(
                    "expected {}, found {}",
                    describe_json(byte),
                    describe_json(found)
                ),
                self.pos,
            ));
        }
        self.pos += 1;
        self.enter()
    }

    fn literal(&mut self, word: &str) -> Result<()> {
        if self.bytes[self.pos..].starts_with(word.as_bytes()) {
            self.pos += word.len();
            Ok(())
        } else {
            Err(syntax(format!("expected {word}"), self.pos))
        }
    }

    fn enter(&mut self) -> Result<()> {
        self.depth += 1;
        if self.depth > MAX_DEPTH {
            return Err(syntax("containers nested too deeply", self.pos));
        }
        Ok(())
    }

    /// The text of the next number, consumed.
    fn number_token(&mut self) -> Result<&'a str> {
        let first = self.peek_byte()?;
        let start = self.pos;
        match first {
            b'N' => self.literal("NaN")?,
            b'I' => self.literal("Infinity")?,
            b'-' if self.bytes.get(self.pos + 1) == Some(&b'I') => {
                self.pos += 1;
                self.literal("Infinity")?;
            }
            b'-' | b'0'..=b'9' => {
                while matches!(
                    self.bytes.get(self.pos),
                    Some(b'-' | b'+' | b'.' | b'e' | b'E' | b'0'..=b'9')
                ) {
                    self.pos += 1;
                }
            }
            other => {
                return Err(syntax(
                    format!("expected a number, found {}", describe_json(other)),
                    start,
                ))
            }
        }
        // Every byte accepted above is ASCII.
        Ok(std::str::from_utf8(&self.bytes[start..self.pos]).unwrap_or_default())
    }

    /// Consumes `,` before the next element or the closing `close`; returns
    /// whether the container goes on.
    fn next_element(&mut self, close: u8, first: bool) -> Result<bool> {
        let found = self.peek_byte()?;
        if found == close {
            self.pos += 1;
            return Ok(false);
        }
        if !first {
            if found != b',' {
                return Err(syntax(
                    format!(
                        "expected ',' or {:?}, found {:?}",
                        close as char, found as char
                    ),
                    self.pos,
                ));
            }
            self.pos += 1;
        }
        Ok(true)
    }
}

fn describe_json(byte: u8) -> String {
    match byte {
        b'{' => "an object".into(),
        b'[' => "an array".into(),
        b'"' => "a string".into(),
        b't' | b'f' => "a boolean".into(),
        b'n' => "null".into(),
        b'-' | b'0'..=b'9' | b'N' | b'I' => "a number".into(),
        other => format!("{:?}", other as char),
    }
}

/// Parses JSON number text the way XGBoost does: straight to `float32`
/// (`from_chars` in `JsonReader::ParseNumber`), one rounding.
fn parse_f32(token: &str) -> Option<f32> {
    match token {
        "NaN" => Some(f32::NAN),
        "Infinity" => Some(f32::INFINITY),
        "-Infinity" => Some(f32::NEG_INFINITY),
        _ => token.parse().ok(),
    }
}

impl<'a> Document<'a> for JsonText<'a> {
    fn peek(&mut self) -> Result<Kind> {
        let at = self.pos;
        Ok(match self.peek_byte()? {
            b'{' => Kind::Object,
            b'[' => Kind::Array,
            b'"' => Kind::String,
            b't' | b'f' => Kind::Bool,
            b'n' => Kind::Null,
            b'-' | b'0'..=b'9' | b'N' | b'I' => Kind::Number,
            other => return Err(syntax(format!("unexpected {:?}", other as char), at)),
        })
    }

    fn object(&mut self, mut entry: impl FnMut(&mut Self, &str) -> Result<()>) -> Result<()> {
        self.open(b'{')?;
        let mut first = true;
        while self.next_element(b'}', first)? {
            first = false;
            let key = self.string()?;
            self.expect(b':')?;
            entry(self, &key)?;
        }
        self.depth -= 1;
        Ok(())
    }

    fn array(&mut self, mut element: impl FnMut(&mut Self) -> Result<()>) -> Result<()> {
        self.open(b'[')?;
        let mut first = true;
        while self.next_element(b']', first)? {
            first = false;
            element(self)?;
        }
        self.depth -= 1;
        Ok(())
    }

    fn string(&mut self) -> Result<Cow<'a, str>> {
        self.expect(b'"')?;
        let start = self.pos;
        // Fast path: no escapes, borrow the input.
        while let Some(&b) = self.bytes.get(self.pos) {
            match b {
                b'"' => {
                    let text = std::str::from_utf8(&self.bytes[start..self.pos])
                        .map_err(|_| syntax("string is not UTF-8", start))?;
                    self.pos += 1;
                    return Ok(Cow::Borrowed(text));
                }
                b'\\' => break,
                0..=0x1f => return Err(syntax("control character in a string", self.pos)),
                _ => self.pos += 1,
            }
        }
        let mut out: Vec<u8> = self.bytes[start..self.pos].to_vec();
        loop {
            let Some(&b) = self.bytes.get(self.pos) else {
                return Err(syntax("truncated: unterminated string", start));
            };
            self.pos += 1;
            match b {
                b'"' => break,
                b'\\' => {
                    let escape = *self
                        .bytes
                        .get(self.pos)
                        .ok_or_else(|| syntax("truncated: unterminated string", start))?;
                    self.pos += 1;
                    let simple = match escape {
                        b'"' => Some(b'"'),
                        b'\\' => Some(b'\\'),
                        b'/' => Some(b'/'),
                        b'b' => Some(0x08),
                        b'f' => Some(0x0c),
                        b'n' => Some(b'\n'),
                        b'r' => Some(b'\r'),
                        b't' => Some(b'\t'),
                        b'u' => None,
                        other => {
                            return Err(syntax(
                                format!("bad escape \\{}", other as char),
                                self.pos - 1,
                            ))
                        }
                    };
                    match simple {
                        Some(byte) => out.push(byte),
                        None => {
                            let c = self.unicode_escape()?;
                            out.extend_from_slice(c.encode_utf8(&mut [0u8; 4]).as_bytes());
                        }
                    }
                }
                0..=0x1f => return Err(syntax("control character in a string", self.pos - 1)),
                other => out.push(other),
            }
        }
        String::from_utf8(out)
            .map(Cow::Owned)
            .map_err(|_| syntax("string is not UTF-8", start))
    }

    fn f32(&mut self) -> Result<f32> {
        let at = self.pos;
        let token = self.number_token()?;
        parse_f32(token).ok_or_else(|| syntax(format!("bad number {token:?}"), at))
    }

    fn integer(&mut self) -> Result<i64> {
        let at = self.pos;
        let token = self.number_token()?;
        if let Ok(i) = token.parse::<i64>() {
            return Ok(i);
        }
        token
            .parse::<f64>()
            .ok()
            .map(Number::F64)
            .ok_or_else(|| syntax(format!("bad number {token:?}"), at))?
            .to_integer()
            .map_err(|_| syntax(format!("expected an integer, found {token}"), at))
    }

    fn boolean(&mut self) -> Result<bool> {
        match self.peek_byte()? {
            b't' => self.literal("true").map(|_| true),
            b'f' => self.literal("false").map(|_| false),
            other => Err(syntax(
                format!("expected a boolean, found {}", describe_json(other)),
                self.pos,
            )),
        }
    }

    fn skip(&mut self) -> Result<()> {
        match self.peek()? {
            Kind::Object => self.object(|d, _| d.skip()),
            Kind::Array => self.array(|d| d.skip()),
            Kind::String => self.string().map(drop),
            Kind::Number => self.number_token().map(drop),
            Kind::Bool => self.boolean().map(drop),
            Kind::Null => self.literal("null"),
        }
    }
}

impl JsonText<'_> {
    /// The code point of a `\uXXXX` escape (after the `\u`), joining UTF-16
    /// surrogate pairs.
    fn unicode_escape(&mut self) -> Result<char> {
        let at = self.pos;
        let high = self.hex4()?;
        let code = if (0xD800..0xDC00).contains(&high) {
            if !self.bytes[self.pos..].starts_with(b"\\u") {
                return Err(syntax("unpaired surrogate in \\u escape", at));
            }
            self.pos += 2;
            let low = self.hex4()?;
            if !(0xDC00..0xE000).contains(&low) {
                return Err(syntax("unpaired surrogate in \\u escape", at));
            }
            0x10000 + ((high - 0xD800) << 10) + (low - 0xDC00)
        } else {
            high
        };
        char::from_u32(code).ok_or_else(|| syntax("bad \\u escape", at))
    }

    fn hex4(&mut self) -> Result<u32> {
        let at = self.pos;
        let digits = self
            .bytes
            .get(self.pos..self.pos + 4)
            .and_then(|d| std::str::from_utf8(d).ok())
            .and_then(|d| u32::from_str_radix(d, 16).ok())
            .ok_or_else(|| syntax("bad \\u escape", at))?;
        self.pos += 4;
        Ok(digits)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Reads `{"a": [1.5, 2], "b": {"c": "x"}, "d": true}` as both encodings
    /// would hold it.
    fn walk<'a>(doc: &mut impl Document<'a>) -> (Vec<f32>, String, bool) {
        let mut numbers = Vec::new();
        let mut text = String::new();
        let mut flag = false;
        doc.object(|d, key| {
            match key {
                "a" => numbers = d.f32_array()?,
                "b" => d.object(|d, _| {
                    text = d.string()?.into_owned();
                    Ok(())
                })?,
                "d" => flag = d.boolean()?,
                _ => d.skip()?,
            }
            Ok(())
        })
        .unwrap();
        (numbers, text, flag)
    }

    fn key(name: &str) -> Vec<u8> {
        let mut out = vec![b'i', name.len() as u8];
        out.extend_from_slice(name.as_bytes());
        out
    }

    #[test]
    fn both_encodings_read_the_same_document() {
        let json =
            br#" {"a": [1.5, 2], "z": [null, {"q": [1, "s"]}], "b": {"c": "x"}, "d": true} "#;
        let mut doc = JsonText::new(json);
        assert_eq!(walk(&mut doc), (vec![1.5, 2.0], "x".into(), true));
        doc.finish().unwrap();

        let mut ubj = vec![b'{'];
        ubj.extend(key("a"));
        ubj.extend([b'[', b'$', b'd', b'#', b'i', 2]);
        ubj.extend(1.5f32.to_be_bytes());
        ubj.extend(2.0f32.to_be_bytes());
        ubj.extend(key("z"));
        ubj.extend([b'[', b'Z', b'{']);
        ubj.extend(key("q"));
        ubj.extend([
            b'[', b'#', b'U', 2, b'U', 1, b'S', b'i', 1, b's', b'}', b']',
        ]);
        ubj.extend(key("b"));
        ubj.push(b'{');
        ubj.extend(key("c"));
        ubj.extend([b'S', b'U', 1, b'x', b'}']);
        ubj.extend(key("d"));
        ubj.extend([b'N', b'T', b'}']);
        let mut doc = Ubjson::new(&ubj);
        assert_eq!(walk(&mut doc), (vec![1.5, 2.0], "x".into(), true));
        doc.finish().unwrap();
    }

    #[test]
    fn json_numbers_round_once_to_f32() {
        // Halfway between two f32s in decimal, but just above it: parsing
        // through f64 would round to the midpoint first and then to even.
        let token = "1.0000000596046448";
        let direct: f32 = token.parse().unwrap();
        assert_ne!(
            direct,
            token.parse::<f64>().unwrap() as f32,
            "not a double-rounding case"
        );
        assert_eq!(JsonText::new(token.as_bytes()).f32().unwrap(), direct);
        assert_eq!(
            JsonText::new(b"-Infinity").f32().unwrap(),
            f32::NEG_INFINITY
        );
        assert!(JsonText::new(b"NaN").f32().unwrap().is_nan());
    }

    #[test]
    fn escapes_and_flags() {
        let mut doc = JsonText::new(br#""a\"b\u00e9\ud83d\ude00""#);
        assert_eq!(doc.string().unwrap(), "a\"b\u{e9}\u{1F600}");
        assert_eq!(
            JsonText::new(b"[0, 1, true, false]").flag_array().unwrap(),
            [false, true, true, false]
        );
        let typed = [b'[', b'$', b'U', b'#', b'i', 3, 0, 1, 7];
        assert_eq!(
            Ubjson::new(&typed).flag_array().unwrap(),
            [false, true, true]
        );
        let typed_ints = [
            b'[', b'$', b'l', b'#', b'i', 2, 0xff, 0xff, 0xff, 0xff, 0, 0, 0, 5,
        ];
        assert_eq!(Ubjson::new(&typed_ints).i32_array().unwrap(), [-1, 5]);
    }

    #[track_caller]
    fn refused(result: Result<impl std::fmt::Debug>, needle: &str) {
        match result {
            Err(Error::InvalidModel(message)) => {
                assert!(message.contains(needle), "{message:?} lacks {needle:?}")
            }
            other => panic!("expected InvalidModel({needle}), got {other:?}"),
        }
    }

    #[test]
    fn corrupt_input_is_an_invalid_model() {
        // A count far beyond the data must not be allocated.
        refused(
            Ubjson::new(&[b'[', b'$', b'd', b'#', b'L', 0x7f, 0, 0, 0, 0, 0, 0, 0]).f32_array(),
            "exceeds",
        );
        refused(
            Ubjson::new(&[b'[', b'$', b'd', b'#', b'i', 2, 0, 0]).f32_array(),
            "exceeds",
        );
        refused(
            Ubjson::new(&[b'[', b'#', b'i', -1i8 as u8]).skip(),
            "negative length",
        );
        refused(Ubjson::new(&[b'{', b'i', 5, b'a']).skip(), "truncated");
        refused(
            Ubjson::new(b"[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[")
                .skip(),
            "deeply",
        );
        refused(Ubjson::new(&[b'S', b'i', 1, 0xff]).string(), "UTF-8");
        refused(Ubjson::new(b"Q").skip(), "unknown UBJSON marker");
        refused(JsonText::new(br#"{"a": [1, 2"#).skip(), "truncated");
        refused(JsonText::new(br#"{"a" 1}"#).skip(), "expected ':'");
        refused(
            JsonText::new(br#"[1.5]"#).i32_array(),
            "expected an integer",
        );
        refused(JsonText::new(br#"[3000000000]"#).i32_array(), "32 bits");
        refused(JsonText::new(br#""\ud800x""#).string(), "surrogate");
        let mut doc = JsonText::new(b"{} {");
        doc.skip().unwrap();
        refused(doc.finish(), "trailing");
    }
}
