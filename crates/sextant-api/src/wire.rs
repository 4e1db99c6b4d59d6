//! Serde helpers for protobuf-JSON as MLflow clients speak it.

use std::fmt;

use serde::de::{self, Deserializer, Visitor};
use serde::ser::Serializer;
use serde::Deserialize;

/// An int64 given as a JSON number or a decimal string (proto3 JSON allows
/// both, and GET query parameters are always strings). A visitor rather
/// than an untagged enum: this runs for every metric of every batch, and
/// untagged enums buffer each value before trying the variants.
pub fn opt_i64<'de, D: Deserializer<'de>>(deserializer: D) -> Result<Option<i64>, D::Error> {
    struct IntVisitor;

    impl<'de> Visitor<'de> for IntVisitor {
        type Value = Option<i64>;

        fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
            f.write_str("an integer, or a string holding one")
        }

        fn visit_i64<E: de::Error>(self, value: i64) -> Result<Self::Value, E> {
            Ok(Some(value))
        }

        fn visit_u64<E: de::Error>(self, value: u64) -> Result<Self::Value, E> {
            i64::try_from(value)
                .map(Some)
                .map_err(|_| E::custom(format!("integer {value} is out of range")))
        }

        fn visit_f64<E: de::Error>(self, value: f64) -> Result<Self::Value, E> {
            if value.fract() == 0.0 && value.abs() < 9.2e18 {
                Ok(Some(value as i64))
            } else {
                Err(E::custom(format!("expected an integer, got {value}")))
            }
        }

        fn visit_str<E: de::Error>(self, text: &str) -> Result<Self::Value, E> {
            if text.is_empty() {
                return Ok(None);
            }
            text.trim()
                .parse::<i64>()
                .map(Some)
                .map_err(|_| E::custom(format!("expected an integer, got '{text}'")))
        }

        fn visit_none<E: de::Error>(self) -> Result<Self::Value, E> {
            Ok(None)
        }

        fn visit_unit<E: de::Error>(self) -> Result<Self::Value, E> {
            Ok(None)
        }

        fn visit_some<D2: Deserializer<'de>>(
            self,
            deserializer: D2,
        ) -> Result<Self::Value, D2::Error> {
            deserializer.deserialize_any(IntVisitor)
        }
    }

    deserializer.deserialize_option(IntVisitor)
}

/// An optional integer query parameter of the native API. MLflow's routes
/// read `?max_results=` as "not given" (`opt_i64`); here an empty or
/// non-numeric value is a mistake the caller hears about, as the OpenAPI
/// document's `integer` type says.
pub fn query_i64<'de, D: Deserializer<'de>>(deserializer: D) -> Result<Option<i64>, D::Error> {
    #[derive(Deserialize)]
    #[serde(untagged)]
    enum Raw {
        Number(i64),
        Text(String),
    }
    match Option::<Raw>::deserialize(deserializer)? {
        None => Ok(None),
        Some(Raw::Number(value)) => Ok(Some(value)),
        Some(Raw::Text(text)) => text
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
    struct FloatVisitor;

    impl<'de> Visitor<'de> for FloatVisitor {
        type Value = Option<f64>;

        fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
            f.write_str("a number, or \"NaN\", \"Infinity\" or \"-Infinity\"")
        }

        fn visit_f64<E: de::Error>(self, value: f64) -> Result<Self::Value, E> {
            Ok(Some(value))
        }

        fn visit_i64<E: de::Error>(self, value: i64) -> Result<Self::Value, E> {
            Ok(Some(value as f64))
        }

        fn visit_u64<E: de::Error>(self, value: u64) -> Result<Self::Value, E> {
            Ok(Some(value as f64))
        }

        fn visit_str<E: de::Error>(self, text: &str) -> Result<Self::Value, E> {
            match text.trim() {
                "NaN" | "nan" => Ok(Some(f64::NAN)),
                "Infinity" | "inf" | "+Infinity" => Ok(Some(f64::INFINITY)),
                "-Infinity" | "-inf" => Ok(Some(f64::NEG_INFINITY)),
                other => other
                    .parse::<f64>()
                    .map(Some)
                    .map_err(|_| E::custom(format!("expected a number, got '{text}'"))),
            }
        }

        fn visit_none<E: de::Error>(self) -> Result<Self::Value, E> {
            Ok(None)
        }

        fn visit_unit<E: de::Error>(self) -> Result<Self::Value, E> {
            Ok(None)
        }

        fn visit_some<D2: Deserializer<'de>>(
            self,
            deserializer: D2,
        ) -> Result<Self::Value, D2::Error> {
            deserializer.deserialize_any(FloatVisitor)
        }
    }

    deserializer.deserialize_option(FloatVisitor)
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

    #[derive(Deserialize, Debug)]
    struct Query {
        #[serde(default, deserialize_with = "super::query_i64")]
        since: Option<i64>,
    }

    #[test]
    fn native_query_integers_refuse_empty_values() {
        let parse = |json: &str| serde_json::from_str::<Query>(json).map(|q| q.since);
        assert_eq!(parse(r#"{"since": "17"}"#).unwrap(), Some(17));
        assert_eq!(parse(r#"{"since": 17}"#).unwrap(), Some(17));
        assert_eq!(parse(r#"{}"#).unwrap(), None);
        assert!(parse(r#"{"since": ""}"#).is_err());
        assert!(parse(r#"{"since": "soon"}"#).is_err());
    }
}
