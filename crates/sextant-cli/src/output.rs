//! How the client commands print the server's answers: as aligned tables
//! and `key: value` lines for a person at a terminal, as the server's JSON
//! for scripts (`--format json`, and whenever standard output is not a
//! terminal, so `sextant … | jq` keeps working).

use std::fmt::Write as _;
use std::io::{IsTerminal, Write};
use std::sync::OnceLock;

use serde_json::{Map, Value};

#[derive(clap::ValueEnum, Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum Format {
    /// Tables on a terminal, JSON when piped or redirected.
    #[default]
    Auto,
    /// Tables and `key: value` lines.
    Table,
    /// The server's JSON, pretty-printed.
    Json,
    /// `sextant validate` and `expectations check`: the report as a
    /// self-contained HTML page (`profile` too; other commands print JSON).
    Html,
    /// `sextant validate` and `expectations check`: the report as JUnit XML
    /// (other commands print JSON).
    Junit,
}

/// The format this process chose.
pub fn format() -> Format {
    FORMAT.get().copied().unwrap_or_default()
}

static FORMAT: OnceLock<Format> = OnceLock::new();

/// Chooses the format for this process; the first call wins.
pub fn set_format(format: Format) {
    let _ = FORMAT.set(format);
}

/// Prints an answer in the chosen format.
pub fn print(value: &Value) {
    let readable = match FORMAT.get().copied().unwrap_or_default() {
        Format::Table => true,
        Format::Json | Format::Html | Format::Junit => false,
        Format::Auto => std::io::stdout().is_terminal(),
    };
    let text = if readable {
        readable_text(value)
    } else {
        serde_json::to_string_pretty(value).unwrap_or_default()
    };
    let mut stdout = std::io::stdout().lock();
    if let Err(err) = writeln!(stdout, "{}", text.trim_end()).and_then(|()| stdout.flush()) {
        // `sextant … | head` closed the pipe: stop quietly, as other tools do.
        if err.kind() == std::io::ErrorKind::BrokenPipe {
            std::process::exit(0);
        }
    }
}

/// Widest cell of a table, in characters; longer values are cut with `…`.
const CELL_CHARS: usize = 48;
/// Values of a list shown before "… and N more".
const LIST_ITEMS: usize = 8;

/// An answer as a person reads it. A list of records, alone or as the one
/// list in an object (`{"deployments": […], "next_page_token": …}`), is a
/// table of their plain fields; any other object is `key: value` lines,
/// nested objects indented under their key.
pub fn readable_text(value: &Value) -> String {
    let mut out = String::new();
    match value {
        Value::Null => out.push_str("done"),
        Value::Array(items) => write_list(&mut out, items, 0),
        Value::Object(map) => match lone_table(map) {
            Some((key, rows)) => {
                if rows.is_empty() {
                    let _ = writeln!(out, "no {}", key.replace('_', " "));
                } else {
                    write_table(&mut out, rows, 0);
                }
                for (other, value) in map.iter().filter(|(k, _)| *k != key) {
                    if !value.is_null() {
                        let _ = writeln!(out, "{}: {}", other, field_text(other, value));
                    }
                }
            }
            None => write_fields(&mut out, map, 0),
        },
        other => out.push_str(&scalar_text(other)),
    }
    out
}

/// The one list of records in an object whose other fields are plain.
fn lone_table(map: &Map<String, Value>) -> Option<(&String, &Vec<Value>)> {
    let mut tables = map.iter().filter_map(|(key, value)| match value {
        Value::Array(rows) if rows.iter().all(Value::is_object) => Some((key, rows)),
        _ => None,
    });
    let table = tables.next()?;
    let rest_plain = map
        .iter()
        .filter(|(key, _)| *key != table.0)
        .all(|(_, value)| !value.is_object() && !value.is_array());
    (tables.next().is_none() && rest_plain).then_some(table)
}

/// Fields that name a record come first; the rest keep their order
/// (alphabetical: the JSON is read into sorted maps).
const LEADING_FIELDS: [&str; 8] = [
    "name", "id", "username", "key", "model", "version", "status", "state",
];

fn leading_first<'a>(keys: impl Iterator<Item = &'a str>) -> Vec<&'a str> {
    let mut keys: Vec<&str> = keys.collect();
    keys.sort_by_key(|key| {
        LEADING_FIELDS
            .iter()
            .position(|lead| lead == key)
            .unwrap_or(LEADING_FIELDS.len())
    });
    keys
}

fn write_fields(out: &mut String, map: &Map<String, Value>, indent: usize) {
    let pad = " ".repeat(indent);
    for key in leading_first(map.keys().map(String::as_str)) {
        let value = &map[key];
        match value {
            Value::Null => {}
            Value::Object(inner) if inner.is_empty() => {}
            Value::Object(inner) => {
                let _ = writeln!(out, "{pad}{key}:");
                write_fields(out, inner, indent + 2);
            }
            Value::Array(items) if !items.is_empty() && items.iter().all(Value::is_object) => {
                let _ = writeln!(out, "{pad}{key}:");
                write_table(out, items, indent + 2);
            }
            Value::Array(items) => {
                let _ = writeln!(out, "{pad}{key}: {}", list_text(items));
            }
            scalar => {
                let _ = writeln!(out, "{pad}{key}: {}", field_text(key, scalar));
            }
        }
    }
}

fn write_list(out: &mut String, items: &[Value], indent: usize) {
    if items.is_empty() {
        out.push_str("none");
    } else if items.iter().all(Value::is_object) {
        write_table(out, items, indent);
    } else {
        for item in items {
            let _ = writeln!(out, "{}{}", " ".repeat(indent), cell_text(item));
        }
    }
}

/// Records as an aligned table: one column per field that holds a value in
/// some row, in the order the fields first appear.
fn write_table(out: &mut String, rows: &[Value], indent: usize) {
    let mut seen: Vec<&str> = Vec::new();
    for row in rows {
        for (key, value) in row.as_object().into_iter().flatten() {
            let shown = !value.is_null() && !matches!(value, Value::Object(m) if m.is_empty());
            if shown && !seen.contains(&key.as_str()) {
                seen.push(key);
            }
        }
    }
    let columns = leading_first(seen.into_iter());
    let cells: Vec<Vec<String>> = rows
        .iter()
        .map(|row| {
            columns
                .iter()
                .map(|column| {
                    row.get(*column)
                        .map(|value| match instant_text(column, value) {
                            Some(instant) => instant,
                            None => cell_text(value),
                        })
                        .unwrap_or_default()
                })
                .collect()
        })
        .collect();
    let headers: Vec<String> = columns.iter().map(|c| c.to_uppercase()).collect();
    let widths: Vec<usize> = (0..columns.len())
        .map(|i| {
            cells
                .iter()
                .map(|row| row[i].chars().count())
                .chain([headers[i].chars().count()])
                .max()
                .unwrap_or(0)
        })
        .collect();
    let pad = " ".repeat(indent);
    let mut line = |values: &[String]| {
        let mut text = pad.clone();
        for (i, value) in values.iter().enumerate() {
            if i + 1 == values.len() {
                text.push_str(value);
            } else {
                let _ = write!(text, "{value:<width$}  ", width = widths[i]);
            }
        }
        let _ = writeln!(out, "{}", text.trim_end());
    };
    line(&headers);
    for row in &cells {
        line(row);
    }
}

/// A value inside a table cell: one line, cut to `CELL_CHARS`. An object
/// reads as `key=value` pairs (a model `name=fraud version=3`, figures
/// `accuracy=0.91 f1=0.88`), nested ones in braces, nulls left out.
fn cell_text(value: &Value) -> String {
    let text = match value {
        Value::Array(items) => list_text(items),
        Value::Object(map) => map
            .iter()
            .filter(|(_, v)| !v.is_null())
            .map(|(key, v)| match v {
                Value::Object(_) => format!("{key}={{{}}}", cell_text(v)),
                _ => format!(
                    "{key}={}",
                    instant_text(key, v).unwrap_or_else(|| cell_text(v))
                ),
            })
            .collect::<Vec<_>>()
            .join(" "),
        scalar => scalar_text(scalar),
    };
    let text = text.replace(['\n', '\r', '\t'], " ");
    if text.chars().count() > CELL_CHARS {
        let cut: String = text.chars().take(CELL_CHARS - 1).collect();
        format!("{cut}…")
    } else {
        text
    }
}

/// A list of plain values on one line. A run of identical values (a
/// histogram of an idle deployment is eighteen zeros) is counted, not
/// repeated; long lists show their first items and how many more there are.
fn list_text(items: &[Value]) -> String {
    if items.is_empty() {
        return "none".into();
    }
    if items.len() > 2 && items.iter().all(|item| item == &items[0]) {
        return format!("{} × {}", items.len(), cell_text(&items[0]));
    }
    let mut shown: Vec<String> = items.iter().take(LIST_ITEMS).map(cell_text).collect();
    if items.len() > LIST_ITEMS {
        shown.push(format!("… and {} more", items.len() - LIST_ITEMS));
    }
    shown.join(", ")
}

/// A plain field's value: an instant as a date and time, anything else as is.
fn field_text(key: &str, value: &Value) -> String {
    instant_text(key, value).unwrap_or_else(|| scalar_text(value))
}

/// A field named as an instant (`created_at`, `start_time`,
/// `last_updated_timestamp`, …) holding an integer, as UTC date and time.
/// The server counts instants from the Unix epoch in milliseconds (MLflow's
/// unit) and, in places, seconds or microseconds; the unit is told by the
/// size (seconds reach 10¹¹ only in the year 5138, milliseconds reach 10¹⁴
/// only in the year 5138 too), so JSON output keeps the raw number and a
/// person reads a date.
fn instant_text(key: &str, value: &Value) -> Option<String> {
    let named_instant = key.ends_with("_at")
        || key.ends_with("_time")
        || key.contains("timestamp")
        || key.ends_with("_at_us")
        || key.ends_with("_at_ms");
    let number = value.as_i64().filter(|_| named_instant)?;
    let micros = match number.unsigned_abs() {
        0 => return None,
        n if n < 100_000_000_000 => number.checked_mul(1_000_000)?,
        n if n < 100_000_000_000_000 => number.checked_mul(1_000)?,
        _ => number,
    };
    let instant = chrono::DateTime::from_timestamp_micros(micros)?;
    Some(instant.format("%Y-%m-%d %H:%M:%S UTC").to_string())
}

fn scalar_text(value: &Value) -> String {
    match value {
        Value::String(text) => text.clone(),
        Value::Null => String::new(),
        other => other.to_string(),
    }
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::readable_text;

    #[test]
    fn instants_read_as_dates_whatever_their_unit() {
        let text = readable_text(&json!({
            "validations": [
                {"version": "3", "started_at": 1_765_152_000_000_i64, "finished_at": null},
                {"version": "4", "started_at": 1_765_152_000_i64},
            ],
            "alert": 0,
        }));
        assert_eq!(text.matches("2025-12-08 00:00:00 UTC").count(), 2, "{text}");
        let fields = readable_text(
            &json!({"received_at_us": 1_765_152_000_123_456_i64, "rows": 1_765_152_000_i64}),
        );
        assert!(
            fields.contains("received_at_us: 2025-12-08 00:00:00 UTC"),
            "{fields}"
        );
        // Only fields named as instants are read as dates.
        assert!(fields.contains("rows: 1765152000"), "{fields}");
    }

    #[test]
    fn objects_in_cells_read_as_key_value_pairs() {
        let text = readable_text(&json!({
            "versions": [
                {"model": {"name": "scam", "version": "3"}, "overall": {"metrics": {"accuracy": 0.91}, "labelled": 120, "note": null}},
            ],
        }));
        assert!(text.contains("name=scam version=3"), "{text}");
        assert!(
            text.contains("labelled=120 metrics={accuracy=0.91}"),
            "{text}"
        );
        assert!(!text.contains('"'), "{text}");
    }

    #[test]
    fn a_list_of_records_is_a_table_of_their_plain_fields() {
        let text = readable_text(&json!({
            "deployments": [
                {"name": "scam", "status": "ready", "revision": 3, "description": null},
                {"name": "fraud-detector", "status": "loading", "revision": 12, "arms": [{"model": "x"}]},
            ],
            "next_page_token": null,
        }));
        let lines: Vec<&str> = text.lines().collect();
        assert_eq!(
            lines[0], "NAME            STATUS   REVISION  ARMS",
            "{text}"
        );
        assert_eq!(lines[1], "scam            ready    3", "{text}");
        assert_eq!(
            lines[2], "fraud-detector  loading  12        model=x",
            "{text}"
        );
        assert_eq!(lines.len(), 3, "{text}");
    }

    #[test]
    fn an_object_is_key_value_lines_with_lists_summarised() {
        let text = readable_text(&json!({
            "name": "scam",
            "latency_histogram": [0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0],
            "features": ["a", "b", "c", "d", "e", "f", "g", "h", "i", "j"],
            "counters": {"requests": 10, "errors": 0},
            "arms": [{"name": "stable", "weight": 100}],
            "note": "two\nlines",
            "missing": null,
        }));
        assert_eq!(
            text,
            "name: scam\n\
             arms:\n  NAME    WEIGHT\n  stable  100\n\
             counters:\n  errors: 0\n  requests: 10\n\
             features: a, b, c, d, e, f, g, h, … and 2 more\n\
             latency_histogram: 18 × 0\n\
             note: two\nlines\n"
        );
    }

    #[test]
    fn empty_and_bare_answers_say_so() {
        assert_eq!(readable_text(&json!({"users": []})), "no users\n");
        assert_eq!(readable_text(&json!(null)), "done");
        assert_eq!(readable_text(&json!([])), "none");
        assert_eq!(readable_text(&json!(["x", 2])), "x\n2\n");
        let long = "y".repeat(100);
        let text = readable_text(&json!([{"value": long}]));
        assert!(text.lines().nth(1).unwrap().ends_with('…'), "{text}");
        assert_eq!(text.lines().nth(1).unwrap().chars().count(), 48);
    }
}
