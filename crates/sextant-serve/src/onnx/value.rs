//! ONNX element types and `TensorProto`s as the crate's [`Tensor`]s.
//!
//! Values inside the interpreter are plain [`Tensor`]s, stored the crate's
//! way: every integer type as `i64` (kept within its type's range by the
//! operators), `FLOAT` as `f32`, `DOUBLE` as `f64`, `STRING` as UTF-8
//! strings. Half precision, bfloat16, complex and the 8/4/2-bit types are
//! not supported.

use crate::error::{Error, Result};
use crate::onnx::proto::{self, data_type};
use crate::tensor::{DataType, Tensor, TensorData};

/// Our type for an ONNX `TensorProto.DataType`, or `Unsupported` naming it.
pub(crate) fn data_type_from_onnx(code: i32) -> Result<DataType> {
    Ok(match code {
        data_type::FLOAT => DataType::F32,
        data_type::UINT8 => DataType::U8,
        data_type::INT8 => DataType::I8,
        data_type::UINT16 => DataType::U16,
        data_type::INT16 => DataType::I16,
        data_type::INT32 => DataType::I32,
        data_type::INT64 => DataType::I64,
        data_type::STRING => DataType::Bytes,
        data_type::BOOL => DataType::Bool,
        data_type::DOUBLE => DataType::F64,
        data_type::UINT32 => DataType::U32,
        data_type::UINT64 => DataType::U64,
        other => {
            return Err(Error::unsupported(format!(
                "tensors of ONNX element type {} are not supported",
                onnx_type_name(other)
            )))
        }
    })
}

/// The ONNX spelling of an element type code, for messages.
pub(crate) fn onnx_type_name(code: i32) -> String {
    let name = match code {
        0 => "UNDEFINED",
        1 => "FLOAT",
        2 => "UINT8",
        3 => "INT8",
        4 => "UINT16",
        5 => "INT16",
        6 => "INT32",
        7 => "INT64",
        8 => "STRING",
        9 => "BOOL",
        10 => "FLOAT16",
        11 => "DOUBLE",
        12 => "UINT32",
        13 => "UINT64",
        14 => "COMPLEX64",
        15 => "COMPLEX128",
        16 => "BFLOAT16",
        17..=20 => "FLOAT8",
        21 => "UINT4",
        22 => "INT4",
        23 => "FLOAT4E2M1",
        _ => return format!("code {code}"),
    };
    name.to_string()
}

/// An empty storage vector of the class `dtype` uses.
pub(crate) fn empty_data(dtype: DataType) -> TensorData {
    match dtype {
        DataType::Bool => TensorData::Bool(Vec::new()),
        DataType::F16 | DataType::F32 => TensorData::F32(Vec::new()),
        DataType::F64 => TensorData::F64(Vec::new()),
        DataType::Bytes => TensorData::Str(Vec::new()),
        DataType::U8
        | DataType::U16
        | DataType::U32
        | DataType::U64
        | DataType::I8
        | DataType::I16
        | DataType::I32
        | DataType::I64 => TensorData::I64(Vec::new()),
    }
}

/// Whether `data` is stored the way `dtype` is.
pub(crate) fn storage_matches(dtype: DataType, data: &TensorData) -> bool {
    std::mem::discriminant(&empty_data(dtype)) == std::mem::discriminant(data)
}

/// `value` reduced to the range of the integer type `dtype` the way a
/// two's-complement machine does (ONNX integer arithmetic wraps, and so
/// does `Cast` between integer types).
pub(crate) fn wrap_integer(dtype: DataType, value: i64) -> i64 {
    match dtype {
        DataType::I8 => value as i8 as i64,
        DataType::I16 => value as i16 as i64,
        DataType::I32 => value as i32 as i64,
        DataType::U8 => value as u8 as i64,
        DataType::U16 => value as u16 as i64,
        DataType::U32 => value as u32 as i64,
        _ => value,
    }
}

/// The dims of a `TensorProto`, checked.
fn dims_of(tensor: &proto::TensorProto, what: &str) -> Result<Vec<usize>> {
    tensor
        .dims
        .iter()
        .map(|&d| {
            usize::try_from(d)
                .map_err(|_| Error::invalid(format!("{what} has a negative dimension {d}")))
        })
        .collect()
}

/// A `TensorProto` (an initializer, a `Constant`'s value, a tensor
/// attribute) as a [`Tensor`]. `what` names it in messages.
///
/// Data comes from `raw_data` (little-endian, packed, as `onnx.proto`
/// describes it) or from the typed repeated field the proto assigns to the
/// type (`int32_data` also carries the 8- and 16-bit integers and bools,
/// `uint64_data` also carries `UINT32`). Data stored in external files is
/// not supported.
pub(crate) fn tensor_from_proto(tensor: &proto::TensorProto, what: &str) -> Result<Tensor> {
    if tensor.data_location == Some(proto::DATA_LOCATION_EXTERNAL)
        || !tensor.external_data.is_empty()
    {
        return Err(Error::unsupported(format!(
            "{what} keeps its data in an external file, which is not supported (save the model with its weights inside)"
        )));
    }
    if tensor.segment.is_some() {
        return Err(Error::unsupported(format!(
            "{what} is a segment of a larger tensor"
        )));
    }
    let code = tensor.data_type.unwrap_or(0);
    let dtype = data_type_from_onnx(code).map_err(|e| match e {
        Error::Unsupported(message) => Error::unsupported(format!("{what}: {message}")),
        other => other,
    })?;
    let shape = dims_of(tensor, what)?;
    let count = shape
        .iter()
        .try_fold(1usize, |acc, &d| acc.checked_mul(d))
        .ok_or_else(|| Error::invalid(format!("{what} has too many elements")))?;
    let data = match &tensor.raw_data {
        Some(raw) if dtype != DataType::Bytes => from_raw(dtype, raw, count, what)?,
        _ => from_typed_fields(tensor, dtype, what)?,
    };
    if data.len() != count {
        return Err(Error::invalid(format!(
            "{what} has shape {shape:?} ({count} elements) but holds {} values",
            data.len()
        )));
    }
    Ok(Tensor { dtype, shape, data })
}

fn from_raw(dtype: DataType, raw: &[u8], count: usize, what: &str) -> Result<TensorData> {
    let width = match dtype {
        DataType::Bool | DataType::U8 | DataType::I8 => 1,
        DataType::U16 | DataType::I16 | DataType::F16 => 2,
        DataType::U32 | DataType::I32 | DataType::F32 => 4,
        DataType::U64 | DataType::I64 | DataType::F64 => 8,
        DataType::Bytes => unreachable!("strings are never stored in raw_data"),
    };
    if raw.len() != count * width {
        return Err(Error::invalid(format!(
            "{what} has {count} elements of {width} bytes but raw_data holds {} bytes",
            raw.len()
        )));
    }
    fn words<const W: usize>(raw: &[u8]) -> impl Iterator<Item = [u8; W]> + '_ {
        raw.chunks_exact(W).map(|c| {
            let mut word = [0u8; W];
            word.copy_from_slice(c);
            word
        })
    }
    Ok(match dtype {
        DataType::Bool => TensorData::Bool(raw.iter().map(|&b| b != 0).collect()),
        DataType::U8 => TensorData::I64(raw.iter().map(|&b| b as i64).collect()),
        DataType::I8 => TensorData::I64(raw.iter().map(|&b| b as i8 as i64).collect()),
        DataType::U16 => TensorData::I64(
            words::<2>(raw)
                .map(|w| u16::from_le_bytes(w) as i64)
                .collect(),
        ),
        DataType::I16 => TensorData::I64(
            words::<2>(raw)
                .map(|w| i16::from_le_bytes(w) as i64)
                .collect(),
        ),
        DataType::U32 => TensorData::I64(
            words::<4>(raw)
                .map(|w| u32::from_le_bytes(w) as i64)
                .collect(),
        ),
        DataType::I32 => TensorData::I64(
            words::<4>(raw)
                .map(|w| i32::from_le_bytes(w) as i64)
                .collect(),
        ),
        DataType::U64 => TensorData::I64(
            words::<8>(raw)
                .map(|w| u64::from_le_bytes(w) as i64)
                .collect(),
        ),
        DataType::I64 => TensorData::I64(words::<8>(raw).map(i64::from_le_bytes).collect()),
        DataType::F32 => TensorData::F32(words::<4>(raw).map(f32::from_le_bytes).collect()),
        DataType::F64 => TensorData::F64(words::<8>(raw).map(f64::from_le_bytes).collect()),
        DataType::F16 | DataType::Bytes => unreachable!("rejected by data_type_from_onnx"),
    })
}

fn from_typed_fields(
    tensor: &proto::TensorProto,
    dtype: DataType,
    what: &str,
) -> Result<TensorData> {
    Ok(match dtype {
        DataType::F32 => TensorData::F32(tensor.float_data.clone()),
        DataType::F64 => TensorData::F64(tensor.double_data.clone()),
        DataType::I64 => TensorData::I64(tensor.int64_data.clone()),
        DataType::Bool => TensorData::Bool(tensor.int32_data.iter().map(|&v| v != 0).collect()),
        DataType::U8 | DataType::I8 | DataType::U16 | DataType::I16 | DataType::I32 => {
            TensorData::I64(
                tensor
                    .int32_data
                    .iter()
                    .map(|&v| wrap_integer(dtype, v as i64))
                    .collect(),
            )
        }
        DataType::U32 | DataType::U64 => {
            TensorData::I64(tensor.uint64_data.iter().map(|&v| v as i64).collect())
        }
        DataType::Bytes => TensorData::Str(
            tensor
                .string_data
                .iter()
                .map(|bytes| {
                    String::from_utf8(bytes.clone()).map_err(|_| {
                        Error::invalid(format!("{what} holds a string that is not UTF-8"))
                    })
                })
                .collect::<Result<_>>()?,
        ),
        DataType::F16 => unreachable!("rejected by data_type_from_onnx"),
    })
}
