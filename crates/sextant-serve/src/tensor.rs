//! Tensors: the values that go into and come out of a model.
//!
//! A tensor is a row-major array with a declared [`DataType`] (the Open
//! Inference Protocol's thirteen types) and a storage class: every integer
//! type is stored as `i64`, `FP16` as `f32`, `BYTES` as UTF-8 strings. A
//! dataframe column is a 1-D tensor with one element per row, so requests in
//! every protocol (OIP tensors, MLflow's `dataframe_split`, CSV, …) become a
//! list of [`NamedTensor`]s before they reach a model.

use std::fmt;

/// The element type of a tensor, as the Open Inference Protocol names it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum DataType {
    Bool,
    U8,
    U16,
    U32,
    U64,
    I8,
    I16,
    I32,
    I64,
    F16,
    F32,
    F64,
    Bytes,
}

impl DataType {
    pub const ALL: [DataType; 13] = [
        DataType::Bool,
        DataType::U8,
        DataType::U16,
        DataType::U32,
        DataType::U64,
        DataType::I8,
        DataType::I16,
        DataType::I32,
        DataType::I64,
        DataType::F16,
        DataType::F32,
        DataType::F64,
        DataType::Bytes,
    ];

    /// The OIP spelling: `BOOL`, `UINT8`, …, `FP64`, `BYTES`.
    pub fn as_oip(self) -> &'static str {
        match self {
            DataType::Bool => "BOOL",
            DataType::U8 => "UINT8",
            DataType::U16 => "UINT16",
            DataType::U32 => "UINT32",
            DataType::U64 => "UINT64",
            DataType::I8 => "INT8",
            DataType::I16 => "INT16",
            DataType::I32 => "INT32",
            DataType::I64 => "INT64",
            DataType::F16 => "FP16",
            DataType::F32 => "FP32",
            DataType::F64 => "FP64",
            DataType::Bytes => "BYTES",
        }
    }

    pub fn from_oip(name: &str) -> Option<DataType> {
        DataType::ALL.into_iter().find(|t| t.as_oip() == name)
    }

    /// numpy's dtype names (`float64`, `int32`, `bool`, `str`, `object`, …),
    /// as MLflow tensor signatures write them.
    pub fn from_numpy(name: &str) -> Option<DataType> {
        Some(match name {
            "bool" => DataType::Bool,
            "uint8" => DataType::U8,
            "uint16" => DataType::U16,
            "uint32" => DataType::U32,
            "uint64" => DataType::U64,
            "int8" => DataType::I8,
            "int16" => DataType::I16,
            "int32" => DataType::I32,
            "int64" => DataType::I64,
            "float16" => DataType::F16,
            "float32" => DataType::F32,
            "float64" => DataType::F64,
            "str" | "object" | "bytes" | "string" => DataType::Bytes,
            _ => return None,
        })
    }

    /// The numpy spelling, the inverse of [`DataType::from_numpy`].
    pub fn as_numpy(self) -> &'static str {
        match self {
            DataType::Bool => "bool",
            DataType::U8 => "uint8",
            DataType::U16 => "uint16",
            DataType::U32 => "uint32",
            DataType::U64 => "uint64",
            DataType::I8 => "int8",
            DataType::I16 => "int16",
            DataType::I32 => "int32",
            DataType::I64 => "int64",
            DataType::F16 => "float16",
            DataType::F32 => "float32",
            DataType::F64 => "float64",
            DataType::Bytes => "str",
        }
    }

    /// MLflow's column types (`double`, `float`, `long`, `integer`,
    /// `boolean`, `string`, `binary`, `datetime`).
    pub fn from_mlflow_column(name: &str) -> Option<DataType> {
        Some(match name {
            "double" => DataType::F64,
            "float" => DataType::F32,
            "long" => DataType::I64,
            "integer" => DataType::I32,
            "boolean" => DataType::Bool,
            "string" | "binary" | "datetime" => DataType::Bytes,
            _ => return None,
        })
    }

    pub fn is_float(self) -> bool {
        matches!(self, DataType::F16 | DataType::F32 | DataType::F64)
    }

    pub fn is_integer(self) -> bool {
        matches!(
            self,
            DataType::U8
                | DataType::U16
                | DataType::U32
                | DataType::U64
                | DataType::I8
                | DataType::I16
                | DataType::I32
                | DataType::I64
        )
    }

    /// Whether `value` fits this integer type.
    pub fn holds_integer(self, value: i64) -> bool {
        match self {
            DataType::U8 => (0..=u8::MAX as i64).contains(&value),
            DataType::U16 => (0..=u16::MAX as i64).contains(&value),
            DataType::U32 => (0..=u32::MAX as i64).contains(&value),
            DataType::U64 => value >= 0,
            DataType::I8 => (i8::MIN as i64..=i8::MAX as i64).contains(&value),
            DataType::I16 => (i16::MIN as i64..=i16::MAX as i64).contains(&value),
            DataType::I32 => (i32::MIN as i64..=i32::MAX as i64).contains(&value),
            DataType::I64 => true,
            _ => false,
        }
    }
}

impl fmt::Display for DataType {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_oip())
    }
}

/// The elements of a tensor, row-major.
#[derive(Debug, Clone, PartialEq)]
pub enum TensorData {
    Bool(Vec<bool>),
    I64(Vec<i64>),
    F32(Vec<f32>),
    F64(Vec<f64>),
    Str(Vec<String>),
}

impl TensorData {
    pub fn len(&self) -> usize {
        match self {
            TensorData::Bool(v) => v.len(),
            TensorData::I64(v) => v.len(),
            TensorData::F32(v) => v.len(),
            TensorData::F64(v) => v.len(),
            TensorData::Str(v) => v.len(),
        }
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// The natural OIP type of this storage class.
    pub fn natural_dtype(&self) -> DataType {
        match self {
            TensorData::Bool(_) => DataType::Bool,
            TensorData::I64(_) => DataType::I64,
            TensorData::F32(_) => DataType::F32,
            TensorData::F64(_) => DataType::F64,
            TensorData::Str(_) => DataType::Bytes,
        }
    }

    /// Element `i` as a float, for numeric and boolean storage.
    pub fn get_f64(&self, i: usize) -> Option<f64> {
        match self {
            TensorData::Bool(v) => Some(if v[i] { 1.0 } else { 0.0 }),
            TensorData::I64(v) => Some(v[i] as f64),
            TensorData::F32(v) => Some(v[i] as f64),
            TensorData::F64(v) => Some(v[i]),
            TensorData::Str(_) => None,
        }
    }
}

/// A typed, shaped array.
#[derive(Debug, Clone, PartialEq)]
pub struct Tensor {
    pub dtype: DataType,
    pub shape: Vec<usize>,
    pub data: TensorData,
}

impl Tensor {
    /// A tensor whose element count matches its shape; `None` otherwise.
    pub fn new(dtype: DataType, shape: Vec<usize>, data: TensorData) -> Option<Tensor> {
        let expected = shape
            .iter()
            .try_fold(1usize, |acc, &d| acc.checked_mul(d))?;
        (expected == data.len()).then_some(Tensor { dtype, shape, data })
    }

    pub fn f64_matrix(rows: usize, cols: usize, values: Vec<f64>) -> Tensor {
        assert_eq!(rows * cols, values.len(), "matrix shape and data disagree");
        Tensor {
            dtype: DataType::F64,
            shape: vec![rows, cols],
            data: TensorData::F64(values),
        }
    }

    pub fn column(data: TensorData) -> Tensor {
        Tensor {
            dtype: data.natural_dtype(),
            shape: vec![data.len()],
            data,
        }
    }

    pub fn len(&self) -> usize {
        self.data.len()
    }

    pub fn is_empty(&self) -> bool {
        self.data.is_empty()
    }

    /// The first dimension: the batch size of a batched tensor (1 for a
    /// scalar).
    pub fn rows(&self) -> usize {
        self.shape.first().copied().unwrap_or(1)
    }

    /// Elements per row.
    pub fn row_width(&self) -> usize {
        self.shape.iter().skip(1).product()
    }

    /// Rows `start..end` (within `rows()`), with the same type and row shape.
    pub fn slice_rows(&self, start: usize, end: usize) -> Tensor {
        let width = self.row_width().max(1);
        let (a, b) = (start * width, end * width);
        let data = match &self.data {
            TensorData::Bool(v) => TensorData::Bool(v[a..b].to_vec()),
            TensorData::I64(v) => TensorData::I64(v[a..b].to_vec()),
            TensorData::F32(v) => TensorData::F32(v[a..b].to_vec()),
            TensorData::F64(v) => TensorData::F64(v[a..b].to_vec()),
            TensorData::Str(v) => TensorData::Str(v[a..b].to_vec()),
        };
        let mut shape = self.shape.clone();
        if let Some(rows) = shape.first_mut() {
            *rows = end - start;
        }
        Tensor {
            dtype: self.dtype,
            shape,
            data,
        }
    }

    /// Appends `other`'s rows; `false` (and nothing appended) when its
    /// storage class differs.
    pub fn append(&mut self, other: Tensor) -> bool {
        match (&mut self.data, other.data) {
            (TensorData::Bool(a), TensorData::Bool(b)) => a.extend(b),
            (TensorData::I64(a), TensorData::I64(b)) => a.extend(b),
            (TensorData::F32(a), TensorData::F32(b)) => a.extend(b),
            (TensorData::F64(a), TensorData::F64(b)) => a.extend(b),
            (TensorData::Str(a), TensorData::Str(b)) => a.extend(b),
            _ => return false,
        }
        if let (Some(a), Some(b)) = (self.shape.first_mut(), other.shape.first()) {
            *a += b;
        }
        true
    }
}

/// A tensor with the name a request or a model gives it.
#[derive(Debug, Clone, PartialEq)]
pub struct NamedTensor {
    pub name: String,
    pub tensor: Tensor,
}

impl NamedTensor {
    pub fn new(name: impl Into<String>, tensor: Tensor) -> NamedTensor {
        NamedTensor {
            name: name.into(),
            tensor,
        }
    }
}

/// What a model declares about one of its inputs or outputs; `-1` marks a
/// variable dimension, as in OIP metadata.
#[derive(Debug, Clone, PartialEq)]
pub struct TensorSpec {
    pub name: String,
    pub dtype: DataType,
    pub shape: Vec<i64>,
}

impl TensorSpec {
    pub fn new(name: impl Into<String>, dtype: DataType, shape: Vec<i64>) -> TensorSpec {
        TensorSpec {
            name: name.into(),
            dtype,
            shape,
        }
    }
}
