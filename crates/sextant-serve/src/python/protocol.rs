//! The framed protocol between the pool and a worker process.
//!
//! A worker is `python worker.py MODEL_DIR` (the script is
//! `src/python/worker.py`, which implements the same rules from the other
//! side). Frames go to the worker on its stdin and come back on its stdout;
//! its stderr is free text that the host logs.
//!
//! # Frames
//!
//! Every message, in both directions, is one frame:
//!
//! | bytes | content                                                     |
//! |-------|-------------------------------------------------------------|
//! | 4     | the magic `SXPW`, so that stray output is caught at once    |
//! | 4     | `H`, the header's length, `u32` little-endian               |
//! | 8     | `B`, the body's length, `u64` little-endian                 |
//! | `H`   | the header: a UTF-8 JSON object whose `"type"` names it     |
//! | `B`   | the body: the raw element buffers of numeric tensors        |
//!
//! A header is at most [`MAX_HEADER_BYTES`] and a body at most
//! [`MAX_BODY_BYTES`]; anything larger is a broken frame.
//!
//! # Tensors
//!
//! A tensor in a header is `{"name", "dtype", "shape", …}` where `dtype` is
//! numpy's name (`bool`, `int8` … `uint64`, `float16`, `float32`,
//! `float64`, `str`) and `shape` a list of dimensions.
//! - Numeric tensors add `"offset"` and `"nbytes"`: where their elements lie
//!   in the body, row-major and little-endian, so that numpy can
//!   `frombuffer` them in place. Offsets are multiples of 8. A `bool` is one
//!   byte, 0 or 1. A `float16` tensor's buffer holds `float32` values
//!   (4 bytes each), because the host stores FP16 as `f32`: the receiver
//!   casts.
//! - String tensors (`"dtype": "str"`) add `"values"`, their elements as a
//!   flat JSON list of strings, row-major.
//!
//! # Messages
//!
//! - worker → host, once, first: `{"type": "ready", "protocol": 1,
//!   "python_version", "mlflow_version", "flavors": [..], "loader_module",
//!   "signature": {"inputs": [..] | null, "outputs": [..] | null} | null,
//!   "probabilities": bool}`. The signature's lists are MLflow's schema
//!   JSON (`Schema.to_json()`, parsed). With `probabilities`, every result
//!   is the two outputs `predict` (pyfunc's labels) and `predict_proba`
//!   (the raw model's, on the same enforced input), as the native engines
//!   answer classifiers.
//! - worker → host, instead of `ready` when the model cannot be loaded:
//!   `{"type": "load_error", "error_type", "message"}`, the exception's
//!   qualified type and text (together, the last line of the traceback,
//!   which the worker also prints on stderr); then the worker exits.
//! - host → worker: `{"type": "predict", "id", "layout", "inputs": [..]}`
//!   where `layout` is one of
//!   - `"dataframe"`: the inputs are 1-D columns of one pandas DataFrame, in
//!     order;
//!   - `"tensor_dict"`: a dict of numpy arrays keyed by input name;
//!   - `"array"`: the one input, as a bare numpy array.
//! - worker → host, for each `predict`: `{"type": "result", "id",
//!   "outputs": [..]}`, or `{"type": "error", "id", "kind", "error_type",
//!   "message"}` when the model raised. `kind` is `"input"` when the
//!   exception says the request was bad (a `ValueError`, `TypeError` or
//!   `KeyError`, or MLflow's schema enforcement failing) and `"model"`
//!   otherwise. The worker turns what `predict` returns into outputs: a
//!   DataFrame gives one tensor per column, a dict one tensor per key, and
//!   anything else (Series, ndarray, list, scalar) one tensor named
//!   `predictions`.
//!
//! The host stops a worker by closing its stdin: the worker exits at EOF.

use std::io::{self, Read, Write};

use serde::{Deserialize, Serialize};

use crate::error::{Error, Result};
use crate::tensor::{DataType, NamedTensor, Tensor, TensorData};

/// The version in the `ready` message; bumped on any incompatible change.
pub(crate) const PROTOCOL_VERSION: u32 = 1;

const MAGIC: [u8; 4] = *b"SXPW";
const PREFIX_LEN: usize = 16;
/// Offsets of tensor buffers in a body are multiples of this, so that numpy
/// reads every element type aligned.
const BUFFER_ALIGN: usize = 8;

/// The largest header accepted: string tensors travel in it.
pub(crate) const MAX_HEADER_BYTES: u64 = 1 << 30;
/// The largest body accepted.
pub(crate) const MAX_BODY_BYTES: u64 = 16 << 30;

/// One frame, as read from or written to a pipe.
#[derive(Debug)]
pub(crate) struct Frame {
    pub(crate) header: Vec<u8>,
    pub(crate) body: Vec<u8>,
}

/// Why no frame could be read.
#[derive(Debug)]
pub(crate) enum FrameError {
    /// The stream ended between frames: the worker closed its stdout
    /// (usually because it exited).
    Closed,
    /// The stream ended inside a frame.
    Truncated,
    /// The bytes are not a frame (stray output on the protocol channel).
    BadMagic([u8; PREFIX_LEN]),
    TooLarge {
        header_len: u64,
        body_len: u64,
    },
    Io(io::Error),
}

impl std::fmt::Display for FrameError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            FrameError::Closed => f.write_str("it closed its output"),
            FrameError::Truncated => f.write_str("its output ended inside a frame"),
            FrameError::BadMagic(prefix) => write!(
                f,
                "it wrote something that is not a frame ({:?}); did the model write to \
                 file descriptor 1 from native code?",
                String::from_utf8_lossy(prefix)
            ),
            FrameError::TooLarge {
                header_len,
                body_len,
            } => write!(
                f,
                "it sent a frame too large to accept (header {header_len} bytes, \
                 body {body_len} bytes)"
            ),
            FrameError::Io(err) => write!(f, "reading its output failed: {err}"),
        }
    }
}

/// Reads one frame. The body grows as bytes arrive, so a corrupt length
/// cannot make us allocate more than the stream actually holds.
pub(crate) fn read_frame(reader: &mut impl Read) -> Result<Frame, FrameError> {
    let mut prefix = [0u8; PREFIX_LEN];
    let mut filled = 0;
    while filled < PREFIX_LEN {
        match reader.read(&mut prefix[filled..]) {
            Ok(0) if filled == 0 => return Err(FrameError::Closed),
            Ok(0) => return Err(FrameError::Truncated),
            Ok(n) => filled += n,
            Err(err) if err.kind() == io::ErrorKind::Interrupted => {}
            Err(err) => return Err(FrameError::Io(err)),
        }
    }
    if prefix[..4] != MAGIC {
        return Err(FrameError::BadMagic(prefix));
    }
    let header_len = u64::from(u32::from_le_bytes([
        prefix[4], prefix[5], prefix[6], prefix[7],
    ]));
    let mut body_len_bytes = [0u8; 8];
    body_len_bytes.copy_from_slice(&prefix[8..16]);
    let body_len = u64::from_le_bytes(body_len_bytes);
    if header_len > MAX_HEADER_BYTES || body_len > MAX_BODY_BYTES {
        return Err(FrameError::TooLarge {
            header_len,
            body_len,
        });
    }
    let header = read_exactly(reader, header_len)?;
    let body = read_exactly(reader, body_len)?;
    Ok(Frame { header, body })
}

fn read_exactly(reader: &mut impl Read, len: u64) -> Result<Vec<u8>, FrameError> {
    let mut buffer = Vec::new();
    reader
        .take(len)
        .read_to_end(&mut buffer)
        .map_err(FrameError::Io)?;
    if buffer.len() as u64 != len {
        return Err(FrameError::Truncated);
    }
    Ok(buffer)
}

/// Writes one frame and flushes it.
pub(crate) fn write_frame(writer: &mut impl Write, header: &[u8], body: &[u8]) -> io::Result<()> {
    let header_len = u32::try_from(header.len())
        .ok()
        .filter(|&len| u64::from(len) <= MAX_HEADER_BYTES)
        .ok_or_else(|| io::Error::new(io::ErrorKind::InvalidInput, "frame header too large"))?;
    let mut prefix = [0u8; PREFIX_LEN];
    prefix[..4].copy_from_slice(&MAGIC);
    prefix[4..8].copy_from_slice(&header_len.to_le_bytes());
    prefix[8..16].copy_from_slice(&(body.len() as u64).to_le_bytes());
    writer.write_all(&prefix)?;
    writer.write_all(header)?;
    writer.write_all(body)?;
    writer.flush()
}

/// How a predict request hands its inputs to the model's `predict`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum InputLayout {
    /// The inputs are 1-D columns, all of the same length: the model gets a
    /// pandas DataFrame with these columns, in order (MLflow's
    /// `dataframe_split` and `dataframe_records` requests).
    Dataframe,
    /// The model gets a dict of numpy arrays keyed by input name (MLflow's
    /// `inputs`/`instances` requests with named tensors).
    TensorDict,
    /// The one input is passed as a bare numpy array; its name is ignored
    /// (MLflow's `instances` request with a single unnamed tensor).
    Array,
}

/// A tensor in a header we write; numeric elements are in the body.
#[derive(Serialize)]
struct OutgoingTensor<'a> {
    name: &'a str,
    dtype: &'static str,
    shape: &'a [usize],
    #[serde(skip_serializing_if = "Option::is_none")]
    offset: Option<u64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    nbytes: Option<u64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    values: Option<&'a [String]>,
}

#[derive(Serialize)]
struct PredictHeader<'a> {
    #[serde(rename = "type")]
    message_type: &'static str,
    id: u64,
    layout: InputLayout,
    inputs: Vec<OutgoingTensor<'a>>,
}

/// Builds a `predict` frame. Inputs that cannot travel (a storage class
/// that contradicts the dtype, an integer out of its type's range, columns
/// of different lengths in a DataFrame) are the caller's mistake.
pub(crate) fn encode_predict(
    id: u64,
    layout: InputLayout,
    inputs: &[NamedTensor],
) -> Result<Frame> {
    check_layout(layout, inputs)?;
    let mut body = Vec::new();
    let mut tensors = Vec::with_capacity(inputs.len());
    for input in inputs {
        tensors.push(encode_tensor(input, &mut body)?);
    }
    let header = PredictHeader {
        message_type: "predict",
        id,
        layout,
        inputs: tensors,
    };
    let header = serde_json::to_vec(&header)
        .map_err(|err| Error::Input(format!("cannot encode the request: {err}")))?;
    Ok(Frame { header, body })
}

fn check_layout(layout: InputLayout, inputs: &[NamedTensor]) -> Result<()> {
    match layout {
        InputLayout::Array => {
            if inputs.len() != 1 {
                return Err(Error::Input(format!(
                    "this model takes one array, got {} inputs",
                    inputs.len()
                )));
            }
        }
        InputLayout::Dataframe | InputLayout::TensorDict => {
            for (idx, input) in inputs.iter().enumerate() {
                if inputs[..idx].iter().any(|other| other.name == input.name) {
                    return Err(Error::Input(format!(
                        "input {:?} is given more than once",
                        input.name
                    )));
                }
            }
        }
    }
    if layout == InputLayout::Dataframe {
        let mut n_rows = None;
        for input in inputs {
            let [rows] = input.tensor.shape[..] else {
                return Err(Error::Input(format!(
                    "dataframe column {:?} must be 1-D, got shape {:?}",
                    input.name, input.tensor.shape
                )));
            };
            match n_rows {
                Some(expected) if expected != rows => {
                    return Err(Error::Input(format!(
                        "dataframe columns have different lengths: {expected} and {rows} ({:?})",
                        input.name
                    )))
                }
                _ => n_rows = Some(rows),
            }
        }
    }
    Ok(())
}

fn encode_tensor<'a>(input: &'a NamedTensor, body: &mut Vec<u8>) -> Result<OutgoingTensor<'a>> {
    let tensor = &input.tensor;
    let expected_len = tensor
        .shape
        .iter()
        .try_fold(1usize, |acc, &d| acc.checked_mul(d));
    if expected_len != Some(tensor.data.len()) {
        return Err(Error::Input(format!(
            "input {:?} has {} elements but shape {:?}",
            input.name,
            tensor.data.len(),
            tensor.shape
        )));
    }
    let mismatch = || {
        Error::Input(format!(
            "input {:?} is declared {} but holds {} values",
            input.name,
            tensor.dtype,
            tensor.data.natural_dtype()
        ))
    };
    let mut outgoing = OutgoingTensor {
        name: &input.name,
        dtype: tensor.dtype.as_numpy(),
        shape: &tensor.shape,
        offset: None,
        nbytes: None,
        values: None,
    };
    if let TensorData::Str(values) = &tensor.data {
        if tensor.dtype != DataType::Bytes {
            return Err(mismatch());
        }
        outgoing.values = Some(values);
        return Ok(outgoing);
    }
    // Pad so that this buffer starts aligned.
    body.resize(body.len().next_multiple_of(BUFFER_ALIGN), 0);
    let start = body.len();
    match (&tensor.data, tensor.dtype) {
        (TensorData::Bool(values), DataType::Bool) => {
            body.extend(values.iter().map(|&value| u8::from(value)));
        }
        (TensorData::I64(values), dtype) if dtype.is_integer() => {
            let width = integer_width(dtype);
            body.reserve(values.len() * width);
            for &value in values {
                if !dtype.holds_integer(value) {
                    return Err(Error::Input(format!(
                        "input {:?}: {value} does not fit {dtype}",
                        input.name
                    )));
                }
                // Two's complement little-endian truncated to the type's
                // width is the value itself for every in-range integer,
                // signed or not.
                body.extend_from_slice(&value.to_le_bytes()[..width]);
            }
        }
        (TensorData::F32(values), DataType::F32 | DataType::F16) => {
            for value in values {
                body.extend_from_slice(&value.to_le_bytes());
            }
        }
        (TensorData::F64(values), DataType::F64) => {
            for value in values {
                body.extend_from_slice(&value.to_le_bytes());
            }
        }
        _ => return Err(mismatch()),
    }
    outgoing.offset = Some(start as u64);
    outgoing.nbytes = Some((body.len() - start) as u64);
    Ok(outgoing)
}

fn integer_width(dtype: DataType) -> usize {
    match dtype {
        DataType::U8 | DataType::I8 => 1,
        DataType::U16 | DataType::I16 => 2,
        DataType::U32 | DataType::I32 => 4,
        _ => 8,
    }
}

/// A message from a worker.
#[derive(Debug, Deserialize)]
#[serde(tag = "type", rename_all = "snake_case")]
pub(crate) enum WorkerMessage {
    Ready(ReadyMessage),
    LoadError {
        error_type: String,
        message: String,
    },
    Result {
        id: u64,
        outputs: Vec<IncomingTensor>,
    },
    Error {
        id: u64,
        kind: ErrorKind,
        error_type: String,
        message: String,
    },
}

#[derive(Debug, Clone, Deserialize)]
pub(crate) struct ReadyMessage {
    pub(crate) protocol: u32,
    pub(crate) python_version: String,
    pub(crate) mlflow_version: String,
    pub(crate) flavors: Vec<String>,
    pub(crate) loader_module: Option<String>,
    pub(crate) signature: Option<serde_json::Value>,
    /// The model answers `{"predict", "predict_proba"}`: a classifier of
    /// the scikit-learn API whose pyfunc predicts labels.
    #[serde(default)]
    pub(crate) probabilities: bool,
}

/// Whose fault a Python exception in `predict` is.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "snake_case")]
pub(crate) enum ErrorKind {
    /// The request was bad: [`Error::Input`].
    Input,
    /// The model failed on a valid request: [`Error::Worker`].
    Model,
}

/// A tensor in a header a worker wrote.
#[derive(Debug, Deserialize)]
pub(crate) struct IncomingTensor {
    name: String,
    dtype: String,
    shape: Vec<usize>,
    #[serde(default)]
    offset: Option<u64>,
    #[serde(default)]
    nbytes: Option<u64>,
    #[serde(default)]
    values: Option<Vec<String>>,
}

/// Parses a frame's header; the message is nonsense when this fails.
pub(crate) fn decode_message(header: &[u8]) -> Result<WorkerMessage, String> {
    serde_json::from_slice(header).map_err(|err| {
        let shown = String::from_utf8_lossy(&header[..header.len().min(200)]);
        format!("it sent a header that is not a message ({err}): {shown}")
    })
}

/// Turns the tensors of a `result` message into ours. Any inconsistency is
/// a broken worker, reported as a message.
pub(crate) fn decode_outputs(
    outputs: Vec<IncomingTensor>,
    body: &[u8],
) -> Result<Vec<NamedTensor>, String> {
    outputs
        .into_iter()
        .map(|output| {
            let tensor = decode_tensor(&output, body)
                .map_err(|problem| format!("its output {:?} {problem}", output.name))?;
            Ok(NamedTensor::new(output.name, tensor))
        })
        .collect()
}

fn decode_tensor(tensor: &IncomingTensor, body: &[u8]) -> Result<Tensor, String> {
    let dtype = DataType::from_numpy(&tensor.dtype)
        .ok_or_else(|| format!("has an unknown dtype {:?}", tensor.dtype))?;
    let data = if dtype == DataType::Bytes {
        let values = tensor
            .values
            .clone()
            .ok_or("is a string tensor without values")?;
        TensorData::Str(values)
    } else {
        let (Some(offset), Some(nbytes)) = (tensor.offset, tensor.nbytes) else {
            return Err("is a numeric tensor without a buffer".to_owned());
        };
        let buffer = usize::try_from(offset)
            .ok()
            .zip(usize::try_from(nbytes).ok())
            .and_then(|(start, len)| body.get(start..start.checked_add(len)?))
            .ok_or_else(|| {
                format!(
                    "points outside the body ({nbytes} bytes at {offset} of {})",
                    body.len()
                )
            })?;
        decode_buffer(dtype, buffer)?
    };
    Tensor::new(dtype, tensor.shape.clone(), data).ok_or_else(|| {
        format!(
            "has shape {:?} that disagrees with its elements",
            tensor.shape
        )
    })
}

fn decode_buffer(dtype: DataType, buffer: &[u8]) -> Result<TensorData, String> {
    let width = match dtype {
        DataType::Bool => 1,
        DataType::F16 | DataType::F32 => 4,
        DataType::F64 => 8,
        integer => integer_width(integer),
    };
    if !buffer.len().is_multiple_of(width) {
        return Err(format!(
            "has {} bytes, not a whole number of {width}-byte elements",
            buffer.len()
        ));
    }
    let elements = buffer.chunks_exact(width);
    Ok(match dtype {
        DataType::Bool => TensorData::Bool(
            buffer
                .iter()
                .map(|&byte| match byte {
                    0 => Ok(false),
                    1 => Ok(true),
                    other => Err(format!("holds the byte {other} in a bool tensor")),
                })
                .collect::<Result<_, _>>()?,
        ),
        DataType::F16 | DataType::F32 => TensorData::F32(
            elements
                .map(|bytes| f32::from_le_bytes([bytes[0], bytes[1], bytes[2], bytes[3]]))
                .collect(),
        ),
        DataType::F64 => TensorData::F64(
            elements
                .map(|bytes| f64::from_le_bytes(eight(bytes)))
                .collect(),
        ),
        DataType::Bytes => return Err("is a string tensor with a buffer".to_owned()),
        integer => TensorData::I64(
            elements
                .map(|bytes| decode_integer(integer, bytes))
                .collect::<Result<_, _>>()?,
        ),
    })
}

fn eight(bytes: &[u8]) -> [u8; 8] {
    let mut array = [0u8; 8];
    array.copy_from_slice(bytes);
    array
}

fn decode_integer(dtype: DataType, bytes: &[u8]) -> Result<i64, String> {
    Ok(match dtype {
        DataType::I8 => i64::from(i8::from_le_bytes([bytes[0]])),
        DataType::U8 => i64::from(bytes[0]),
        DataType::I16 => i64::from(i16::from_le_bytes([bytes[0], bytes[1]])),
        DataType::U16 => i64::from(u16::from_le_bytes([bytes[0], bytes[1]])),
        DataType::I32 => i64::from(i32::from_le_bytes([bytes[0], bytes[1], bytes[2], bytes[3]])),
        DataType::U32 => i64::from(u32::from_le_bytes([bytes[0], bytes[1], bytes[2], bytes[3]])),
        DataType::I64 => i64::from_le_bytes(eight(bytes)),
        // The worker refuses uint64 outputs above the INT64 range, since
        // every integer is stored as i64 here.
        _ => {
            let value = u64::from_le_bytes(eight(bytes));
            i64::try_from(value).map_err(|_| format!("holds {value}, beyond the INT64 range"))?
        }
    })
}
