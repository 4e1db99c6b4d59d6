//! Serde helpers for protobuf-JSON as MLflow clients speak it.

use serde::de::{self, Deserializer};
use serde::ser::Serializer;
use serde::Deserialize;

/// An int64 given as a JSON number or a decimal string (proto3 JSON allows
/// both, and GET query parameters are always strings).
pub fn opt_i64<'de, D: Deserializer<'de>>(deserializer: D) -> Result<Option<i64>, D::Error> {
    #[derive(Deserialize)]
    #[serde(untagged)]
    enum Int {
        Number(i64),
        Float(f64),
        Text(String),
    }
    match Option::<Int>::deserialize(deserializer)? {
        None => Ok(None),
        Some(Int::Number(n)) => Ok(Some(n)),
        Some(Int::Float(x)) if x.fract() == 0.0 && x.abs() < 9.2e18 => Ok(Some(x as i64)),
        Some(Int::Float(x)) => Err(de::Error::custom(format!("expected an integer, got {x}"))),
        Some(Int::Text(text)) if text.is_empty() => Ok(None),
        Some(Int::Text(text)) => text
            .trim()
            .parse::<i64>()
            .map(Some)
            .map_err(|_| de::Error::custom(format!("expected an integer, got '{text}'"))),
    }
}

/// A double given as a number, a numeric string, or one of the strings
/// `"NaN"`, `"Infinity"`, `"-Infinity"` that MLflow clients send for
/// non-finite values.
pub fn opt_f64<'de, D: Deserializer<'de>>(deserializer: D) -> Result<Option<f64>, D::Error> {
    #[derive(Deserialize)]
    #[serde(untagged)]
    enum Float {
        Number(f64),
        Text(String),
    }
    match Option::<Float>::deserialize(deserializer)? {
        None => Ok(None),
        Some(Float::Number(x)) => Ok(Some(x)),
        Some(Float::Text(text)) => match text.trim() {
            "NaN" | "nan" => Ok(Some(f64::NAN)),
            "Infinity" | "inf" | "+Infinity" => Ok(Some(f64::INFINITY)),
            "-Infinity" | "-inf" => Ok(Some(f64::NEG_INFINITY)),
            other => other
                .parse::<f64>()
                .map(Some)
                .map_err(|_| de::Error::custom(format!("expected a number, got '{text}'"))),
        },
    }
}

/// A bool given as JSON `true`/`false` or the strings `"true"`/`"false"`.
pub fn opt_bool<'de, D: Deserializer<'de>>(deserializer: D) -> Result<Option<bool>, D::Error> {
    #[derive(Deserialize)]
    #[serde(untagged)]
    enum Bool {
        Bool(bool),
        Text(String),
    }
    match Option::<Bool>::deserialize(deserializer)? {
        None => Ok(None),
        Some(Bool::Bool(b)) => Ok(Some(b)),
        Some(Bool::Text(text)) => match text.to_ascii_lowercase().as_str() {
            "true" | "1" => Ok(Some(true)),
            "false" | "0" | "" => Ok(Some(false)),
            _ => Err(de::Error::custom(format!(
                "expected true or false, got '{text}'"
            ))),
        },
    }
}

/// A repeated string field given as an array or, from a query string with a
/// single occurrence, as one string.
pub fn string_list<'de, D: Deserializer<'de>>(deserializer: D) -> Result<Vec<String>, D::Error> {
    #[derive(Deserialize)]
    #[serde(untagged)]
    enum List {
        Many(Vec<String>),
        One(String),
    }
    Ok(match Option::<List>::deserialize(deserializer)? {
        None => Vec::new(),
        Some(List::Many(items)) => items,
        Some(List::One(item)) => vec![item],
    })
}

/// Writes a double, spelling non-finite values as protobuf-JSON does.
pub fn f64_proto<S: Serializer>(value: &f64, serializer: S) -> Result<S::Ok, S::Error> {
    if value.is_nan() {
        serializer.serialize_str("NaN")
    } else if value.is_infinite() {
        serializer.serialize_str(if *value > 0.0 {
            "Infinity"
        } else {
            "-Infinity"
        })
    } else {
        serializer.serialize_f64(*value)
    }
}

#[cfg(test)]
mod tests {
    use serde::Deserialize;

    #[derive(Deserialize)]
    struct Sample {
        #[serde(default, deserialize_with = "super::opt_i64")]
        n: Option<i64>,
        #[serde(default, deserialize_with = "super::opt_f64")]
        x: Option<f64>,
        #[serde(default, deserialize_with = "super::string_list")]
        list: Vec<String>,
    }

    #[test]
    fn accepts_every_spelling_clients_use() {
        let parsed: Sample =
            serde_json::from_str(r#"{"n": "17", "x": "NaN", "list": "a"}"#).unwrap();
        assert_eq!(parsed.n, Some(17));
        assert!(parsed.x.unwrap().is_nan());
        assert_eq!(parsed.list, vec!["a"]);
        let parsed: Sample =
            serde_json::from_str(r#"{"n": 17, "x": "-Infinity", "list": ["a", "b"]}"#).unwrap();
        assert_eq!(parsed.x, Some(f64::NEG_INFINITY));
        assert_eq!(parsed.list.len(), 2);
        assert!(serde_json::from_str::<Sample>(r#"{"n": "x"}"#).is_err());
        assert!(serde_json::from_str::<Sample>(r#"{"x": "abc"}"#).is_err());
    }
}
