//! YAML to JSON values, remembering the line each value started on, so a
//! spec that does not deserialise is refused with the line and the field.
//!
//! Plain scalars follow YAML 1.2's core schema (`null`/`~`/empty, booleans,
//! integers, floats); quoted scalars are always strings.

use std::collections::HashMap;

use serde_json::{Map, Number, Value};
use yaml_rust2::parser::{Event, MarkedEventReceiver, Parser};
use yaml_rust2::scanner::{Marker, TScalarStyle};

/// A document as JSON, and the 1-based line of every path in it, spelled as
/// `serde_path_to_error` spells paths (`tests[3].metric`).
#[derive(Debug)]
pub struct Located {
    pub value: Value,
    lines: HashMap<String, usize>,
}

impl Located {
    /// The line of `path`, or of its nearest ancestor that has one.
    pub fn line_of(&self, path: &str) -> Option<usize> {
        let mut path = path.to_string();
        loop {
            if let Some(line) = self.lines.get(&path) {
                return Some(*line);
            }
            let cut = path.rfind(['.', '['])?;
            path.truncate(cut);
        }
    }
}

/// Why a text is not YAML.
#[derive(Debug)]
pub struct SyntaxError {
    pub line: usize,
    pub message: String,
}

pub fn parse(text: &str) -> Result<Located, SyntaxError> {
    let mut builder = Builder::default();
    let mut parser = Parser::new_from_str(text);
    parser
        .load(&mut builder, false)
        .map_err(|error| SyntaxError {
            line: error.marker().line(),
            message: error.info().to_string(),
        })?;
    if let Some(message) = builder.error {
        return Err(SyntaxError {
            line: builder.error_line,
            message,
        });
    }
    Ok(Located {
        value: builder.root.unwrap_or(Value::Null),
        lines: builder.lines,
    })
}

enum Frame {
    Map {
        map: Map<String, Value>,
        key: Option<String>,
        path: String,
        anchor: usize,
        /// `Builder::nodes` when the mapping started.
        started_at: usize,
        /// Entries from merge keys (`<<: *anchor`), which the mapping's own
        /// keys override whatever their order.
        merged: Map<String, Value>,
    },
    Seq {
        items: Vec<Value>,
        path: String,
        anchor: usize,
        /// `Builder::nodes` when the sequence started.
        started_at: usize,
    },
}

#[derive(Default)]
struct Builder {
    stack: Vec<Frame>,
    root: Option<Value>,
    lines: HashMap<String, usize>,
    /// Each anchored value with its count of nodes.
    anchors: HashMap<usize, (Value, usize)>,
    /// Nodes in the document so far, each alias counting its anchor's:
    /// a few hundred bytes of nested aliases would otherwise expand to
    /// billions (the "billion laughs").
    nodes: usize,
    error: Option<String>,
    error_line: usize,
}

impl Builder {
    /// The path of the node about to be added to the top frame.
    fn child_path(&self) -> String {
        match self.stack.last() {
            None => String::new(),
            Some(Frame::Map { key, path, .. }) => {
                let key = key.as_deref().unwrap_or("?");
                if path.is_empty() {
                    key.to_string()
                } else {
                    format!("{path}.{key}")
                }
            }
            Some(Frame::Seq { items, path, .. }) => format!("{path}[{}]", items.len()),
        }
    }

    fn fail(&mut self, line: usize, message: String) {
        if self.error.is_none() {
            self.error = Some(message);
            self.error_line = line;
        }
    }

    /// Adds a finished node of `nodes` nodes to its parent (or makes it the
    /// document).
    fn add(&mut self, value: Value, nodes: usize, anchor: usize, line: usize) {
        if anchor > 0 {
            self.anchors.insert(anchor, (value.clone(), nodes));
        }
        match self.stack.last_mut() {
            None => {
                if self.root.is_none() {
                    self.root = Some(value);
                }
            }
            Some(Frame::Seq { items, .. }) => items.push(value),
            Some(Frame::Map {
                map, key, merged, ..
            }) => match key.take() {
                Some(key) if key == MERGE_KEY => {
                    // YAML's merge key: a mapping, or a list of them where
                    // the earlier ones win.
                    let sources = match value {
                        Value::Object(source) => vec![source],
                        Value::Array(items) if items.iter().all(Value::is_object) => items
                            .into_iter()
                            .filter_map(|item| match item {
                                Value::Object(source) => Some(source),
                                _ => None,
                            })
                            .collect(),
                        _ => {
                            self.fail(
                                line,
                                "a merge key `<<` takes a mapping or a list of mappings".into(),
                            );
                            return;
                        }
                    };
                    for source in sources {
                        for (k, v) in source {
                            merged.entry(k).or_insert(v);
                        }
                    }
                }
                Some(key) => {
                    if map.contains_key(&key) {
                        self.fail(line, format!("key '{key}' appears twice"));
                        return;
                    }
                    map.insert(key, value);
                }
                None => match value {
                    Value::String(text) => *key = Some(text),
                    Value::Number(n) => *key = Some(n.to_string()),
                    Value::Bool(b) => *key = Some(b.to_string()),
                    Value::Null => *key = Some("null".into()),
                    _ => self.fail(line, "a mapping key must be a scalar".into()),
                },
            },
        }
    }

    /// Whether the next node is a mapping key (keys get no line entry of
    /// their own; the value does).
    fn expecting_key(&self) -> bool {
        matches!(self.stack.last(), Some(Frame::Map { key: None, .. }))
    }
}

impl MarkedEventReceiver for Builder {
    fn on_event(&mut self, event: Event, mark: Marker) {
        let line = mark.line();
        // Documents after the first are ignored.
        if self.root.is_some() && self.stack.is_empty() {
            return;
        }
        match event {
            Event::Scalar(text, style, anchor, _) => {
                if !self.expecting_key() {
                    let path = self.child_path();
                    self.lines.insert(path, line);
                }
                let value = scalar(&text, style);
                // Long text weighs more: ten aliases of a long string copy
                // its bytes ten times, not one node.
                let weight = 1 + text.len() / SCALAR_BYTES_PER_NODE;
                self.nodes = self.nodes.saturating_add(weight);
                self.add(value, weight, anchor, line);
            }
            Event::Alias(anchor) => {
                if !self.expecting_key() {
                    let path = self.child_path();
                    self.lines.insert(path, line);
                }
                let Some(&(_, nodes)) = self.anchors.get(&anchor) else {
                    self.fail(line, "alias to an unknown anchor".into());
                    return;
                };
                self.nodes = self.nodes.saturating_add(nodes);
                if self.nodes > MAX_NODES {
                    self.fail(
                        line,
                        format!("the document expands to more than {MAX_NODES} values (each alias repeats its anchor's)"),
                    );
                    return;
                }
                let value = self.anchors[&anchor].0.clone();
                self.add(value, nodes, 0, line);
            }
            Event::MappingStart(anchor, _) => {
                if self.expecting_key() {
                    self.fail(line, "a mapping key must be a scalar".into());
                }
                let path = self.child_path();
                self.lines.insert(path.clone(), line);
                self.stack.push(Frame::Map {
                    map: Map::new(),
                    key: None,
                    path,
                    anchor,
                    started_at: self.nodes,
                    merged: Map::new(),
                });
            }
            Event::SequenceStart(anchor, _) => {
                if self.expecting_key() {
                    self.fail(line, "a mapping key must be a scalar".into());
                }
                let path = self.child_path();
                self.lines.insert(path.clone(), line);
                self.stack.push(Frame::Seq {
                    items: Vec::new(),
                    path,
                    anchor,
                    started_at: self.nodes,
                });
            }
            Event::MappingEnd | Event::SequenceEnd => {
                let (value, anchor, started_at) = match self.stack.pop() {
                    Some(Frame::Map {
                        mut map,
                        anchor,
                        started_at,
                        merged,
                        ..
                    }) => {
                        for (k, v) in merged {
                            map.entry(k).or_insert(v);
                        }
                        (Value::Object(map), anchor, started_at)
                    }
                    Some(Frame::Seq {
                        items,
                        anchor,
                        started_at,
                        ..
                    }) => (Value::Array(items), anchor, started_at),
                    None => return,
                };
                self.nodes += 1;
                self.add(value, self.nodes - started_at, anchor, line);
            }
            _ => {}
        }
    }
}

/// Values a document may hold, its aliases expanded, a scalar counting one
/// more for every `SCALAR_BYTES_PER_NODE` bytes of its text: far beyond any
/// spec (an inline table of 10,000 rows × 20 short fields is 200,000), and
/// at most some 16 MB of expanded text.
const MAX_NODES: usize = 1_000_000;
const SCALAR_BYTES_PER_NODE: usize = 16;

/// The key whose mapping value is merged into the enclosing mapping
/// (YAML 1.1's merge key type, which specs use to share a test's fields).
const MERGE_KEY: &str = "<<";

/// A scalar under YAML 1.2's core schema.
fn scalar(text: &str, style: TScalarStyle) -> Value {
    if style != TScalarStyle::Plain {
        return Value::String(text.to_string());
    }
    match text {
        "" | "~" | "null" | "Null" | "NULL" => return Value::Null,
        "true" | "True" | "TRUE" => return Value::Bool(true),
        "false" | "False" | "FALSE" => return Value::Bool(false),
        _ => {}
    }
    let digits = text.strip_prefix(['-', '+']).unwrap_or(text);
    if !digits.is_empty() && digits.bytes().all(|b| b.is_ascii_digit()) {
        if let Ok(n) = text.trim_start_matches('+').parse::<i64>() {
            return Value::Number(n.into());
        }
    }
    let looks_numeric = digits
        .bytes()
        .next()
        .is_some_and(|b| b.is_ascii_digit() || b == b'.')
        && digits
            .bytes()
            .all(|b| b.is_ascii_digit() || matches!(b, b'.' | b'e' | b'E' | b'-' | b'+'));
    if looks_numeric {
        if let Some(n) = text.parse::<f64>().ok().and_then(Number::from_f64) {
            return Value::Number(n);
        }
    }
    Value::String(text.to_string())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn values_and_lines() {
        let text = "a: 1\nb:\n  - x\n  - {c: 2.5, d: \"3\"}\ne: true\nf: ~\n";
        let doc = parse(text).unwrap();
        assert_eq!(
            doc.value,
            serde_json::json!({"a": 1, "b": ["x", {"c": 2.5, "d": "3"}], "e": true, "f": null})
        );
        assert_eq!(doc.line_of("a"), Some(1));
        assert_eq!(doc.line_of("b[1].c"), Some(4));
        assert_eq!(doc.line_of("b[1].zzz"), Some(4));
        assert_eq!(doc.line_of("e"), Some(5));
    }

    #[test]
    fn duplicate_keys_and_syntax_errors_name_the_line() {
        let error = parse("a: 1\nb: 2\na: 3\n").unwrap_err();
        assert_eq!(error.line, 3);
        assert!(error.message.contains("'a'"));
        let error = parse("a: [1, 2\nb: 3\n").unwrap_err();
        assert!(error.line >= 1);
    }

    #[test]
    fn merge_keys_fill_in_what_the_mapping_does_not_say() {
        let doc = parse(
            "base: &b {kind: metric, min: 1, max: 2}\nother: &o {max: 9, extra: x}\n\
             t: {<<: *b, min: 5}\nu:\n  min: 7\n  <<: [*o, *b]\n",
        )
        .unwrap();
        assert_eq!(
            doc.value["t"],
            serde_json::json!({"kind": "metric", "min": 5, "max": 2})
        );
        assert_eq!(
            doc.value["u"],
            serde_json::json!({"kind": "metric", "min": 7, "max": 9, "extra": "x"})
        );
        let error = parse("t: {<<: 3}\n").unwrap_err();
        assert!(error.message.contains("merge key"), "{}", error.message);
    }

    /// Nested aliases that would expand to millions of values are refused
    /// at once, naming the line, rather than built.
    #[test]
    fn alias_expansion_is_bounded() {
        let mut text = String::from("a0: &a0 [\"xxxxxxxx\"]\n");
        for level in 1..8 {
            let previous = format!("*a{}", level - 1);
            let copies = vec![previous; 10].join(", ");
            text.push_str(&format!("a{level}: &a{level} [{copies}]\n"));
        }
        let started = std::time::Instant::now();
        let error = parse(&text).err().expect("refused");
        assert!(
            error.message.contains("expands to more than"),
            "{}",
            error.message
        );
        // `a6`, seventh line, would hold two million.
        assert_eq!(error.line, 7);
        assert!(started.elapsed() < std::time::Duration::from_secs(2));
        // A long string repeated by aliases counts its bytes.
        let long = "x".repeat(900_000);
        let copies = |name: &str| vec![format!("*{name}"); 10].join(", ");
        let repeated = format!(
            "a: &a \"{long}\"\nb: &b [{}]\nc: &c [{}]\nd: &d [{}]\n",
            copies("a"),
            copies("b"),
            copies("c")
        );
        let error = parse(&repeated).err().expect("refused");
        assert!(
            error.message.contains("expands to more than"),
            "{}",
            error.message
        );
        // Up to `a5` (200,000 values) is a large document, not an attack.
        let five: String = text.lines().take(6).map(|l| format!("{l}\n")).collect();
        assert!(parse(&five).is_ok());
    }

    #[test]
    fn anchors_are_copied() {
        let doc = parse("x: &t {min: 1}\ny: *t\n").unwrap();
        assert_eq!(doc.value["y"], serde_json::json!({"min": 1}));
    }
}
