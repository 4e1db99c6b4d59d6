//! The inference wire formats: the Open Inference Protocol (KServe V2)
//! REST messages and MLflow's scoring-server payloads (`/invocations`).
//!
//! Request tensors are parsed straight into flat, typed vectors
//! ([`Values`]), whatever the nesting of the JSON arrays (OIP allows both
//! `[[1, 2], [3, 4]]` and `[1, 2, 3, 4]`): no intermediate JSON tree is
//! built for tensor data, which is where the bytes of a request are.

#![allow(missing_docs)]

use std::collections::BTreeMap;
use std::fmt;

use serde::de::{self, DeserializeSeed, Deserializer, MapAccess, SeqAccess, Visitor};
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

/// The elements of a tensor, flattened in row-major order.
#[derive(Debug, Clone, PartialEq)]
pub enum Values {
    /// Every element was a JSON integer.
    Ints(Vec<i64>),
    /// At least one element had a fraction or exponent (integers among
    /// them are widened); `null` elements read as NaN.
    Floats(Vec<f64>),
    Bools(Vec<bool>),
    Strings(Vec<String>),
}

impl Values {
    pub fn len(&self) -> usize {
        match self {
            Values::Ints(v) => v.len(),
            Values::Floats(v) => v.len(),
            Values::Bools(v) => v.len(),
            Values::Strings(v) => v.len(),
        }
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

/// Accumulates elements of any nesting depth, upgrading integers to floats
/// when a float appears and refusing mixes of strings, booleans and
/// numbers.
struct Flattener {
    values: Values,
    /// Dimensions seen at each nesting depth, to report the nested shape.
    depth_lengths: Vec<Option<usize>>,
    ragged: bool,
    saw_element: bool,
}

impl Flattener {
    fn new() -> Flattener {
        Flattener {
            values: Values::Ints(Vec::new()),
            depth_lengths: Vec::new(),
            ragged: false,
            saw_element: false,
        }
    }

    fn kind_error<E: de::Error>(&self, got: &str) -> E {
        let have = match self.values {
            Values::Ints(_) | Values::Floats(_) => "numbers",
            Values::Bools(_) => "booleans",
            Values::Strings(_) => "strings",
        };
        E::custom(format!("tensor data mixes {have} and {got}"))
    }

    fn push_int<E: de::Error>(&mut self, x: i64) -> Result<(), E> {
        match &mut self.values {
            Values::Ints(v) => v.push(x),
            Values::Floats(v) => v.push(x as f64),
            Values::Bools(v) if v.is_empty() && !self.saw_element => {
                self.values = Values::Ints(vec![x]);
            }
            _ => return Err(self.kind_error("numbers")),
        }
        self.saw_element = true;
        Ok(())
    }

    fn push_float<E: de::Error>(&mut self, x: f64) -> Result<(), E> {
        match &mut self.values {
            Values::Floats(v) => v.push(x),
            Values::Ints(v) => {
                let mut floats: Vec<f64> = v.iter().map(|&i| i as f64).collect();
                floats.push(x);
                self.values = Values::Floats(floats);
            }
            _ if !self.saw_element => self.values = Values::Floats(vec![x]),
            _ => return Err(self.kind_error("numbers")),
        }
        self.saw_element = true;
        Ok(())
    }

    fn push_bool<E: de::Error>(&mut self, x: bool) -> Result<(), E> {
        match &mut self.values {
            Values::Bools(v) => v.push(x),
            _ if !self.saw_element => self.values = Values::Bools(vec![x]),
            _ => return Err(self.kind_error("booleans")),
        }
        self.saw_element = true;
        Ok(())
    }

    fn push_str<E: de::Error>(&mut self, x: String) -> Result<(), E> {
        match &mut self.values {
            Values::Strings(v) => v.push(x),
            _ if !self.saw_element => self.values = Values::Strings(vec![x]),
            _ => return Err(self.kind_error("strings")),
        }
        self.saw_element = true;
        Ok(())
    }
}

/// Walks one (possibly nested) JSON value into a [`Flattener`].
struct Element<'a> {
    out: &'a mut Flattener,
    depth: usize,
}

impl<'de> DeserializeSeed<'de> for Element<'_> {
    type Value = ();

    fn deserialize<D: Deserializer<'de>>(self, deserializer: D) -> Result<(), D::Error> {
        deserializer.deserialize_any(self)
    }
}

impl<'de> Visitor<'de> for Element<'_> {
    type Value = ();

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("a number, boolean, string, null or array of them")
    }

    fn visit_i64<E: de::Error>(self, x: i64) -> Result<(), E> {
        self.out.push_int(x)
    }

    fn visit_u64<E: de::Error>(self, x: u64) -> Result<(), E> {
        match i64::try_from(x) {
            Ok(x) => self.out.push_int(x),
            Err(_) => self.out.push_float(x as f64),
        }
    }

    fn visit_f64<E: de::Error>(self, x: f64) -> Result<(), E> {
        self.out.push_float(x)
    }

    fn visit_bool<E: de::Error>(self, x: bool) -> Result<(), E> {
        self.out.push_bool(x)
    }

    fn visit_str<E: de::Error>(self, x: &str) -> Result<(), E> {
        // MLflow and pandas spell non-finite floats as strings in JSON.
        if matches!(self.out.values, Values::Floats(_) | Values::Ints(_)) && self.out.saw_element {
            if let Some(x) = non_finite(x) {
                return self.out.push_float(x);
            }
        }
        self.out.push_str(x.to_string())
    }

    fn visit_string<E: de::Error>(self, x: String) -> Result<(), E> {
        if matches!(self.out.values, Values::Floats(_) | Values::Ints(_)) && self.out.saw_element {
            if let Some(x) = non_finite(&x) {
                return self.out.push_float(x);
            }
        }
        self.out.push_str(x)
    }

    fn visit_unit<E: de::Error>(self) -> Result<(), E> {
        match self.out.values {
            Values::Strings(_) | Values::Bools(_) if self.out.saw_element => Err(E::custom(
                "null is only allowed in numeric tensor data (as NaN)",
            )),
            _ => self.out.push_float(f64::NAN),
        }
    }

    fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<(), A::Error> {
        let depth = self.depth;
        if depth >= 32 {
            return Err(de::Error::custom("tensor data is nested more than 32 deep"));
        }
        let mut count = 0usize;
        while seq
            .next_element_seed(Element {
                out: &mut *self.out,
                depth: depth + 1,
            })?
            .is_some()
        {
            count += 1;
        }
        let lengths = &mut self.out.depth_lengths;
        if lengths.len() <= depth {
            lengths.resize(depth + 1, None);
        }
        match lengths[depth] {
            None => lengths[depth] = Some(count),
            Some(seen) if seen != count => self.out.ragged = true,
            Some(_) => {}
        }
        Ok(())
    }
}

fn non_finite(text: &str) -> Option<f64> {
    match text {
        "NaN" | "nan" => Some(f64::NAN),
        "Infinity" | "inf" => Some(f64::INFINITY),
        "-Infinity" | "-inf" => Some(f64::NEG_INFINITY),
        _ => None,
    }
}

/// Tensor data as sent: the flat values and the shape the nesting implied.
#[derive(Debug, Clone, PartialEq)]
pub struct TensorData {
    pub values: Values,
    /// Dimensions of the nested arrays (`[2, 3]` for `[[1,2,3],[4,5,6]]`;
    /// `[n]` for a flat list; `[]` for a scalar).
    pub nested_shape: Vec<usize>,
}

impl<'de> Deserialize<'de> for TensorData {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<TensorData, D::Error> {
        let mut flat = Flattener::new();
        Element {
            out: &mut flat,
            depth: 0,
        }
        .deserialize(deserializer)?;
        if flat.ragged {
            return Err(de::Error::custom(
                "tensor data is ragged: nested lists of different lengths",
            ));
        }
        let nested_shape = flat.depth_lengths.iter().map(|l| l.unwrap_or(0)).collect();
        Ok(TensorData {
            values: flat.values,
            nested_shape,
        })
    }
}

/// A parameter value: OIP allows strings, numbers and booleans.
pub type Parameters = BTreeMap<String, serde_json::Value>;

/// `$request_input`.
#[derive(Debug, Deserialize, ToSchema)]
pub struct OipRequestInput {
    pub name: String,
    /// Dimensions; the product must equal the number of elements.
    pub shape: Vec<i64>,
    /// `BOOL`, `UINT8` … `INT64`, `FP16`, `FP32`, `FP64` or `BYTES`.
    pub datatype: String,
    #[schema(value_type = Option<Object>)]
    #[serde(default)]
    pub parameters: Option<Parameters>,
    /// Row-major elements, flat or nested. Absent when the elements
    /// follow the JSON in binary (Triton's binary tensor data extension:
    /// `parameters.binary_data_size`).
    #[schema(value_type = Option<Vec<Object>>)]
    #[serde(default)]
    pub data: Option<TensorData>,
}

impl OipRequestInput {
    /// `parameters.binary_data_size`: the input's bytes in the binary part.
    pub fn binary_data_size(&self) -> Option<u64> {
        self.parameters.as_ref()?.get("binary_data_size")?.as_u64()
    }
}

/// `$request_output`.
#[derive(Debug, Deserialize, ToSchema)]
pub struct OipRequestOutput {
    pub name: String,
    #[schema(value_type = Option<Object>)]
    #[serde(default)]
    pub parameters: Option<Parameters>,
}

impl OipRequestOutput {
    /// `parameters.binary_data`: send this output in binary.
    pub fn binary(&self) -> bool {
        self.parameters
            .as_ref()
            .and_then(|p| p.get("binary_data"))
            .and_then(serde_json::Value::as_bool)
            .unwrap_or(false)
    }
}

/// `$inference_request`.
#[derive(Debug, Deserialize, ToSchema)]
pub struct OipInferenceRequest {
    /// Returned in the response when given.
    #[serde(default)]
    pub id: Option<String>,
    #[schema(value_type = Option<Object>)]
    #[serde(default)]
    pub parameters: Option<Parameters>,
    pub inputs: Vec<OipRequestInput>,
    /// The outputs to return; all of them when absent.
    #[serde(default)]
    pub outputs: Option<Vec<OipRequestOutput>>,
}

impl OipInferenceRequest {
    /// `parameters.binary_data_output`: send every output in binary.
    pub fn binary_outputs(&self) -> bool {
        self.parameters
            .as_ref()
            .and_then(|p| p.get("binary_data_output"))
            .and_then(serde_json::Value::as_bool)
            .unwrap_or(false)
    }
}

/// Output elements, row-major and flat.
#[derive(Debug, Clone, PartialEq)]
pub enum OutputData {
    Ints(Vec<i64>),
    Floats(Vec<f64>),
    Floats32(Vec<f32>),
    Bools(Vec<bool>),
    Strings(Vec<String>),
}

impl Serialize for OutputData {
    fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        match self {
            OutputData::Ints(v) => v.serialize(serializer),
            OutputData::Floats(v) => v.serialize(serializer),
            OutputData::Floats32(v) => v.serialize(serializer),
            OutputData::Bools(v) => v.serialize(serializer),
            OutputData::Strings(v) => v.serialize(serializer),
        }
    }
}

/// `$response_output`.
#[derive(Debug, Serialize, ToSchema)]
pub struct OipResponseOutput {
    pub name: String,
    pub shape: Vec<usize>,
    pub datatype: &'static str,
    #[serde(skip_serializing_if = "Option::is_none")]
    #[schema(value_type = Option<Object>)]
    pub parameters: Option<Parameters>,
    /// Absent for an output sent in binary after the JSON (its size is
    /// then `parameters.binary_data_size`).
    #[serde(skip_serializing_if = "Option::is_none")]
    #[schema(value_type = Option<Vec<Object>>)]
    pub data: Option<OutputData>,
}

/// The answer of `POST /v2/models/{name}/explain` and
/// `POST /deployments/{name}/explain`: SHAP values per row, feature and
/// output, with what they mean. `base_values[o] + Σ_f values[r][f][o]`
/// equals `predictions[r][o]` (to `additivity_error`).
#[derive(Debug, Serialize, Deserialize, ToSchema)]
pub struct ExplainResponse {
    /// The deployment.
    pub model_name: String,
    pub model_version: String,
    pub registered_model: String,
    pub arm: String,
    /// `tree_path_dependent`, `tree_interventional`, `linear` or `kernel`.
    pub method: String,
    /// `path_dependent` (the trees' training covers stand for absent
    /// features) or `interventional` (background rows do).
    pub value_function: String,
    /// `margin` (log-odds of a boosted or logistic classifier),
    /// `probability` or `prediction`.
    pub output_space: String,
    /// `sha256:…` of the background rows, for the interventional methods.
    pub background_hash: Option<String>,
    /// Rows the background held.
    pub background_rows: Option<usize>,
    pub features: Vec<String>,
    /// One per explained output: a class, or the prediction.
    pub outputs: Vec<String>,
    /// E[f] per output.
    pub base_values: Vec<f64>,
    /// rows × features × outputs.
    pub values: Vec<Vec<Vec<f64>>>,
    /// The model's answer per row and output, in `output_space`.
    pub predictions: Vec<Vec<f64>>,
    /// The largest |base + Σ values − prediction|.
    pub additivity_error: f64,
}

/// `$inference_response`, with Sextant's answer details in `parameters`:
/// `prediction_id` (for feedback), `arm`, `registered_model`.
#[derive(Debug, Serialize, ToSchema)]
pub struct OipInferenceResponse {
    pub model_name: String,
    pub model_version: String,
    pub id: String,
    #[schema(value_type = Object)]
    pub parameters: Parameters,
    pub outputs: Vec<OipResponseOutput>,
}

/// `$metadata_tensor`.
#[derive(Debug, Serialize, ToSchema)]
pub struct OipMetadataTensor {
    pub name: String,
    pub datatype: &'static str,
    /// `-1` marks a dimension of any size.
    pub shape: Vec<i64>,
}

/// `$metadata_model_response`.
#[derive(Debug, Serialize, ToSchema)]
pub struct OipModelMetadata {
    pub name: String,
    pub versions: Vec<String>,
    /// The engine: `native-trees`, `onnx`, `python`, ….
    pub platform: String,
    pub inputs: Vec<OipMetadataTensor>,
    pub outputs: Vec<OipMetadataTensor>,
    /// Sextant's details: registered model, arms.
    #[schema(value_type = Object)]
    pub parameters: Parameters,
}

/// `$metadata_server_response`.
#[derive(Debug, Serialize, ToSchema)]
pub struct OipServerMetadata {
    pub name: String,
    pub version: String,
    pub extensions: Vec<String>,
}

/// `$inference_error_response` (and every other OIP error).
#[derive(Debug, Serialize, ToSchema)]
pub struct OipError {
    pub error: String,
}

/// One cell of a dataframe payload.
#[derive(Debug, Clone, PartialEq)]
pub enum Cell {
    Int(i64),
    Float(f64),
    Bool(bool),
    Str(String),
    Null,
    /// A list or object: kept as JSON text.
    Json(String),
}

impl<'de> Deserialize<'de> for Cell {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Cell, D::Error> {
        struct CellVisitor;
        impl<'de> Visitor<'de> for CellVisitor {
            type Value = Cell;
            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("a dataframe cell")
            }
            fn visit_i64<E: de::Error>(self, x: i64) -> Result<Cell, E> {
                Ok(Cell::Int(x))
            }
            fn visit_u64<E: de::Error>(self, x: u64) -> Result<Cell, E> {
                Ok(i64::try_from(x)
                    .map(Cell::Int)
                    .unwrap_or(Cell::Float(x as f64)))
            }
            fn visit_f64<E: de::Error>(self, x: f64) -> Result<Cell, E> {
                Ok(Cell::Float(x))
            }
            fn visit_bool<E: de::Error>(self, x: bool) -> Result<Cell, E> {
                Ok(Cell::Bool(x))
            }
            fn visit_str<E: de::Error>(self, x: &str) -> Result<Cell, E> {
                Ok(Cell::Str(x.to_string()))
            }
            fn visit_string<E: de::Error>(self, x: String) -> Result<Cell, E> {
                Ok(Cell::Str(x))
            }
            fn visit_unit<E: de::Error>(self) -> Result<Cell, E> {
                Ok(Cell::Null)
            }
            fn visit_none<E: de::Error>(self) -> Result<Cell, E> {
                Ok(Cell::Null)
            }
            fn visit_seq<A: SeqAccess<'de>>(self, seq: A) -> Result<Cell, A::Error> {
                let value =
                    serde_json::Value::deserialize(de::value::SeqAccessDeserializer::new(seq))?;
                Ok(Cell::Json(value.to_string()))
            }
            fn visit_map<A: MapAccess<'de>>(self, map: A) -> Result<Cell, A::Error> {
                let value =
                    serde_json::Value::deserialize(de::value::MapAccessDeserializer::new(map))?;
                Ok(Cell::Json(value.to_string()))
            }
        }
        deserializer.deserialize_any(CellVisitor)
    }
}

/// `dataframe_split`: pandas' `to_dict(orient="split")`.
#[derive(Debug, Deserialize)]
pub struct DataframeSplit {
    #[serde(default)]
    pub columns: Option<Vec<String>>,
    pub data: Vec<Vec<Cell>>,
    #[serde(default)]
    pub index: Option<serde_json::Value>,
}

/// `inputs` / `instances` as sent: a named-tensor dict or a single tensor,
/// or (for `instances`) a list of records.
#[derive(Debug)]
pub enum TensorInput {
    /// `{"a": [...], "b": [...]}`.
    Named(Vec<(String, TensorData)>),
    /// `[[...], ...]`.
    Single(TensorData),
    /// `[{"a": 1, "b": 2}, ...]`.
    Records(Vec<BTreeMap<String, Cell>>),
}

impl<'de> Deserialize<'de> for TensorInput {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<TensorInput, D::Error> {
        // Records and tensors are told apart by their first element, so
        // the value is read once as JSON and then interpreted.
        let value = serde_json::Value::deserialize(deserializer)?;
        match value {
            serde_json::Value::Object(map) => map
                .into_iter()
                .map(|(name, v)| TensorData::deserialize(v).map(|d| (name, d)))
                .collect::<Result<_, _>>()
                .map(TensorInput::Named)
                .map_err(de::Error::custom),
            serde_json::Value::Array(items) if items.first().is_some_and(|i| i.is_object()) => {
                items
                    .into_iter()
                    .map(|item| BTreeMap::<String, Cell>::deserialize(item))
                    .collect::<Result<_, _>>()
                    .map(TensorInput::Records)
                    .map_err(de::Error::custom)
            }
            other => TensorData::deserialize(other)
                .map(TensorInput::Single)
                .map_err(de::Error::custom),
        }
    }
}

/// The JSON body of MLflow's `/invocations`: exactly one of the four
/// input keys, and optional `params`.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ScoringRequest {
    #[serde(default)]
    pub dataframe_split: Option<DataframeSplit>,
    #[serde(default)]
    pub dataframe_records: Option<Vec<BTreeMap<String, Cell>>>,
    #[serde(default)]
    pub instances: Option<TensorInput>,
    #[serde(default)]
    pub inputs: Option<TensorInput>,
    #[serde(default)]
    pub params: Option<BTreeMap<String, serde_json::Value>>,
}

#[cfg(test)]
mod tests;
