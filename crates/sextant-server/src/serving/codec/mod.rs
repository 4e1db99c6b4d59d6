//! Request bodies into tensors and predictions back into bodies, for both
//! protocols: the Open Inference Protocol (`/v2/...`) and MLflow's scoring
//! protocol (`/invocations`: `dataframe_split`, `dataframe_records`,
//! `instances`, `inputs`, CSV).

use std::collections::BTreeMap;

use sextant_api::inference::{
    Cell, DataframeSplit, OipRequestInput, OipResponseOutput, OutputData, ScoringRequest,
    TensorData as WireData, TensorInput, Values,
};
use sextant_serve::model::Layout;
use sextant_serve::{DataType, NamedTensor, Tensor, TensorData};

/// A request the caller got wrong; the message names the problem.
#[derive(Debug)]
pub struct BadRequest(pub String);

type Result<T> = std::result::Result<T, BadRequest>;

fn bad<T>(message: impl Into<String>) -> Result<T> {
    Err(BadRequest(message.into()))
}

/// OIP inputs → tensors. The shape is checked against the element count
/// and the values are converted to the declared datatype. Inputs without
/// JSON `data` take their elements, in order, from `binary`: the bytes
/// after the JSON header in Triton's binary tensor data extension
/// (`parameters.binary_data_size` bytes each).
pub fn oip_inputs(inputs: Vec<OipRequestInput>, binary: &[u8]) -> Result<Vec<NamedTensor>> {
    if inputs.is_empty() {
        return bad("the request has no inputs");
    }
    let mut tensors = Vec::with_capacity(inputs.len());
    let mut rest = binary;
    for input in inputs {
        let dtype = DataType::from_oip(&input.datatype).ok_or_else(|| {
            BadRequest(format!(
                "input '{}': unknown datatype '{}' (use BOOL, UINT8…UINT64, INT8…INT64, FP16, FP32, FP64 or BYTES)",
                input.name, input.datatype
            ))
        })?;
        let mut shape = Vec::with_capacity(input.shape.len());
        for &dim in &input.shape {
            if dim < 0 {
                return bad(format!(
                    "input '{}': shape {:?} has a negative dimension",
                    input.name, input.shape
                ));
            }
            shape.push(dim as usize);
        }
        let Some(expected) = shape.iter().try_fold(1usize, |acc, &d| acc.checked_mul(d)) else {
            return bad(format!(
                "input '{}': shape {:?} is too large",
                input.name, input.shape
            ));
        };
        let binary_size = input.binary_data_size();
        let data = match (input.data, binary_size) {
            (Some(data), _) => {
                let count = data.values.len();
                if count != expected {
                    return bad(format!(
                        "input '{}': shape {:?} needs {expected} elements, the data has {count}",
                        input.name, input.shape
                    ));
                }
                convert(&input.name, dtype, data.values)?
            }
            (None, Some(size)) => {
                let size = usize::try_from(size).unwrap_or(usize::MAX);
                if size > rest.len() {
                    return bad(format!(
                        "input '{}': binary_data_size {size} is more than the {} bytes left in the body",
                        input.name,
                        rest.len()
                    ));
                }
                let (bytes, after) = rest.split_at(size);
                rest = after;
                decode_binary(&input.name, dtype, bytes, expected)?
            }
            (None, None) => return bad(format!("input '{}' has no data", input.name)),
        };
        tensors.push(NamedTensor::new(input.name, Tensor { dtype, shape, data }));
    }
    if !rest.is_empty() {
        return bad(format!(
            "{} bytes of binary data are not claimed by any input",
            rest.len()
        ));
    }
    Ok(tensors)
}

/// Raw little-endian elements (Triton's binary tensor data extension):
/// fixed-size types packed, BOOL one byte each, BYTES each prefixed with
/// its length as a little-endian u32.
fn decode_binary(name: &str, dtype: DataType, bytes: &[u8], count: usize) -> Result<TensorData> {
    if dtype == DataType::Bytes {
        let mut strings = Vec::with_capacity(count.min(bytes.len() / 4));
        let mut rest = bytes;
        while !rest.is_empty() {
            let (length, after) = match rest.split_first_chunk::<4>() {
                Some((length, after)) => (u32::from_le_bytes(*length) as usize, after),
                None => return bad(format!("input '{name}': a BYTES element is cut off")),
            };
            if length > after.len() {
                return bad(format!("input '{name}': a BYTES element is cut off"));
            }
            let (text, after) = after.split_at(length);
            strings.push(String::from_utf8(text.to_vec()).map_err(|_| {
                BadRequest(format!("input '{name}': BYTES elements must be UTF-8 text"))
            })?);
            rest = after;
        }
        if strings.len() != count {
            return bad(format!(
                "input '{name}': the shape needs {count} elements, the binary data has {}",
                strings.len()
            ));
        }
        return Ok(TensorData::Str(strings));
    }
    let width = match dtype {
        DataType::Bool | DataType::U8 | DataType::I8 => 1,
        DataType::U16 | DataType::I16 | DataType::F16 => 2,
        DataType::U32 | DataType::I32 | DataType::F32 => 4,
        _ => 8,
    };
    if bytes.len() != count * width {
        return bad(format!(
            "input '{name}': {count} {dtype} elements take {} bytes, binary_data_size says {}",
            count * width,
            bytes.len()
        ));
    }
    let words = bytes.chunks_exact(width);
    Ok(match dtype {
        DataType::Bool => TensorData::Bool(bytes.iter().map(|&b| b != 0).collect()),
        DataType::U8 => TensorData::I64(bytes.iter().map(|&b| i64::from(b)).collect()),
        DataType::I8 => TensorData::I64(bytes.iter().map(|&b| i64::from(b as i8)).collect()),
        DataType::U16 => TensorData::I64(
            words
                .map(|w| i64::from(u16::from_le_bytes([w[0], w[1]])))
                .collect(),
        ),
        DataType::I16 => TensorData::I64(
            words
                .map(|w| i64::from(i16::from_le_bytes([w[0], w[1]])))
                .collect(),
        ),
        DataType::F16 => TensorData::F32(
            words
                .map(|w| f16_to_f32(u16::from_le_bytes([w[0], w[1]])))
                .collect(),
        ),
        DataType::U32 => TensorData::I64(
            words
                .map(|w| i64::from(u32::from_le_bytes(w.try_into().expect("4 bytes"))))
                .collect(),
        ),
        DataType::I32 => TensorData::I64(
            words
                .map(|w| i64::from(i32::from_le_bytes(w.try_into().expect("4 bytes"))))
                .collect(),
        ),
        DataType::F32 => TensorData::F32(
            words
                .map(|w| f32::from_le_bytes(w.try_into().expect("4 bytes")))
                .collect(),
        ),
        DataType::U64 => {
            let mut values = Vec::with_capacity(count);
            for w in words {
                let v = u64::from_le_bytes(w.try_into().expect("8 bytes"));
                values.push(
                    i64::try_from(v).map_err(|_| {
                        BadRequest(format!("input '{name}': {v} does not fit INT64"))
                    })?,
                );
            }
            TensorData::I64(values)
        }
        DataType::I64 => TensorData::I64(
            words
                .map(|w| i64::from_le_bytes(w.try_into().expect("8 bytes")))
                .collect(),
        ),
        DataType::F64 => TensorData::F64(
            words
                .map(|w| f64::from_le_bytes(w.try_into().expect("8 bytes")))
                .collect(),
        ),
        DataType::Bytes => unreachable!("handled above"),
    })
}

/// An IEEE 754 binary16 value widened to binary32 (sign, 5-bit exponent
/// biased by 15, 10-bit fraction; subnormals scaled by 2^-24).
fn f16_to_f32(bits: u16) -> f32 {
    let sign = if bits & 0x8000 != 0 { -1.0 } else { 1.0 };
    let exponent = i32::from((bits >> 10) & 0x1f);
    let fraction = f32::from(bits & 0x3ff);
    match exponent {
        0 => sign * fraction * 2f32.powi(-24),
        0x1f if fraction == 0.0 => sign * f32::INFINITY,
        0x1f => f32::NAN,
        _ => sign * (1.0 + fraction / 1024.0) * 2f32.powi(exponent - 15),
    }
}

/// A tensor's elements as raw little-endian bytes, for a binary output.
pub fn encode_binary(tensor: &Tensor) -> Vec<u8> {
    let mut out = Vec::new();
    match &tensor.data {
        TensorData::Bool(v) => out.extend(v.iter().map(|&b| u8::from(b))),
        TensorData::F32(v) => {
            for x in v {
                match tensor.dtype {
                    DataType::F16 => out.extend_from_slice(&f32_to_f16(*x).to_le_bytes()),
                    _ => out.extend_from_slice(&x.to_le_bytes()),
                }
            }
        }
        TensorData::F64(v) => v
            .iter()
            .for_each(|x| out.extend_from_slice(&x.to_le_bytes())),
        TensorData::I64(v) => {
            for &x in v {
                match tensor.dtype {
                    DataType::Bool | DataType::U8 | DataType::I8 => out.push(x as u8),
                    DataType::U16 | DataType::I16 => {
                        out.extend_from_slice(&(x as u16).to_le_bytes())
                    }
                    DataType::U32 | DataType::I32 => {
                        out.extend_from_slice(&(x as u32).to_le_bytes())
                    }
                    _ => out.extend_from_slice(&x.to_le_bytes()),
                }
            }
        }
        TensorData::Str(v) => {
            for text in v {
                out.extend_from_slice(&(text.len() as u32).to_le_bytes());
                out.extend_from_slice(text.as_bytes());
            }
        }
    }
    out
}

/// The nearest binary16 value (round half to even; overflow to infinity).
fn f32_to_f16(x: f32) -> u16 {
    let bits = x.to_bits();
    let sign = ((bits >> 16) & 0x8000) as u16;
    if x.is_nan() {
        return sign | 0x7e00;
    }
    let magnitude = x.abs();
    if magnitude >= 65520.0 {
        return sign | 0x7c00;
    }
    if magnitude < 2f32.powi(-24) * 0.5 {
        return sign;
    }
    // Scale into the target's fraction and let f32 rounding (half to even)
    // do the work: subnormals have a fixed exponent of -24.
    let mut exponent = magnitude.log2().floor() as i32;
    // log2 can round across a power of two: settle it exactly.
    if magnitude < 2f32.powi(exponent) {
        exponent -= 1;
    } else if magnitude >= 2f32.powi(exponent + 1) {
        exponent += 1;
    }
    let exponent = exponent.max(-14);
    let scale = 2f32.powi(10 - exponent);
    let mut mantissa = (magnitude * scale).round_ties_even() as u32;
    let mut biased = exponent + 15;
    if mantissa >= 2048 {
        mantissa >>= 1;
        biased += 1;
    }
    if mantissa < 1024 {
        // Subnormal: no implicit bit.
        return sign | mantissa as u16;
    }
    sign | ((biased as u16) << 10) | (mantissa as u16 & 0x3ff)
}

/// Values as sent → storage of `dtype`, refusing what cannot convert
/// exactly (strings to numbers, fractions to integers, out-of-range
/// integers).
fn convert(name: &str, dtype: DataType, values: Values) -> Result<TensorData> {
    let mismatch = |got: &str| {
        BadRequest(format!(
            "input '{name}' is {dtype} but its data holds {got}"
        ))
    };
    Ok(match (dtype, values) {
        (DataType::Bytes, Values::Strings(s)) => TensorData::Str(s),
        (DataType::Bytes, _) => return Err(mismatch("non-strings")),
        (_, Values::Strings(_)) => return Err(mismatch("strings")),
        (DataType::Bool, Values::Bools(b)) => TensorData::Bool(b),
        (DataType::Bool, Values::Ints(v)) if v.iter().all(|&x| x == 0 || x == 1) => {
            TensorData::Bool(v.into_iter().map(|x| x == 1).collect())
        }
        (DataType::Bool, _) => return Err(mismatch("non-booleans")),
        (_, Values::Bools(_)) => return Err(mismatch("booleans")),
        (DataType::F64, Values::Floats(v)) => TensorData::F64(v),
        (DataType::F64, Values::Ints(v)) => {
            TensorData::F64(v.into_iter().map(|x| x as f64).collect())
        }
        (DataType::F32 | DataType::F16, Values::Floats(v)) => {
            TensorData::F32(v.into_iter().map(|x| x as f32).collect())
        }
        (DataType::F32 | DataType::F16, Values::Ints(v)) => {
            TensorData::F32(v.into_iter().map(|x| x as f32).collect())
        }
        (int_type, Values::Ints(v)) => {
            if let Some(bad_value) = v.iter().find(|&&x| !int_type.holds_integer(x)) {
                return bad(format!(
                    "input '{name}': {bad_value} does not fit {int_type}"
                ));
            }
            TensorData::I64(v)
        }
        (int_type, Values::Floats(v)) => {
            let mut out = Vec::with_capacity(v.len());
            for x in v {
                if x.fract() != 0.0 || !x.is_finite() || !int_type.holds_integer(x as i64) {
                    return bad(format!(
                        "input '{name}' is {int_type}; {x} is not a valid value"
                    ));
                }
                out.push(x as i64);
            }
            TensorData::I64(out)
        }
    })
}

/// A parsed `/invocations` body.
pub fn scoring_json(body: &[u8]) -> Result<(Vec<NamedTensor>, Layout)> {
    scoring_json_with_params(body).map(|(inputs, layout, _)| (inputs, layout))
}

/// The request's `params`: MLflow's inference parameters.
pub type ScoringParams = std::collections::BTreeMap<String, serde_json::Value>;

/// A parsed `/invocations` body with its `params` (the explain route's
/// options).
pub fn scoring_json_with_params(body: &[u8]) -> Result<(Vec<NamedTensor>, Layout, ScoringParams)> {
    let mut request: ScoringRequest = serde_json::from_slice(body).map_err(|e| {
        BadRequest(format!(
            "invalid scoring request: {e}. Send one of dataframe_split, dataframe_records, instances or inputs (MLflow's scoring protocol)"
        ))
    })?;
    let given = [
        request.dataframe_split.is_some(),
        request.dataframe_records.is_some(),
        request.instances.is_some(),
        request.inputs.is_some(),
    ]
    .iter()
    .filter(|g| **g)
    .count();
    let params = request.params.take().unwrap_or_default();
    if given != 1 {
        return bad(format!(
            "a scoring request needs exactly one of dataframe_split, dataframe_records, instances, inputs; got {given}"
        ));
    }
    let (inputs, layout) = scoring_inputs(request)?;
    Ok((inputs, layout, params))
}

/// The inputs of a request with exactly one of its input fields.
fn scoring_inputs(request: ScoringRequest) -> Result<(Vec<NamedTensor>, Layout)> {
    if let Some(split) = request.dataframe_split {
        return Ok((dataframe_split(split)?, Layout::Columns));
    }
    if let Some(records) = request.dataframe_records {
        return Ok((dataframe_records(records)?, Layout::Columns));
    }
    match request
        .instances
        .or(request.inputs)
        .expect("exactly one input field, checked by scoring_json_with_params")
    {
        TensorInput::Records(records) => Ok((dataframe_records(records)?, Layout::Columns)),
        TensorInput::Named(named) => {
            let tensors = named
                .into_iter()
                .map(|(name, data)| wire_tensor(&name, data).map(|t| NamedTensor::new(name, t)))
                .collect::<Result<Vec<_>>>()?;
            let columns = tensors.iter().all(|t| t.tensor.shape.len() == 1);
            Ok((
                tensors,
                if columns {
                    Layout::Columns
                } else {
                    Layout::Tensors
                },
            ))
        }
        TensorInput::Single(data) => Ok((
            vec![NamedTensor::new("input", wire_tensor("input", data)?)],
            Layout::Tensors,
        )),
    }
}

fn wire_tensor(name: &str, data: WireData) -> Result<Tensor> {
    let shape = if data.nested_shape.is_empty() {
        vec![1]
    } else {
        data.nested_shape
    };
    let stored = match data.values {
        Values::Ints(v) => TensorData::I64(v),
        Values::Floats(v) => TensorData::F64(v),
        Values::Bools(v) => TensorData::Bool(v),
        Values::Strings(v) => TensorData::Str(v),
    };
    let dtype = stored.natural_dtype();
    Tensor::new(dtype, shape, stored)
        .ok_or_else(|| BadRequest(format!("input '{name}' is not a regular array")))
}

fn dataframe_split(split: DataframeSplit) -> Result<Vec<NamedTensor>> {
    let width = split.data.first().map_or(0, Vec::len);
    let columns = match split.columns {
        Some(columns) => columns,
        None => (0..width).map(|i| i.to_string()).collect(),
    };
    let mut cells: Vec<Vec<Cell>> = vec![Vec::with_capacity(split.data.len()); columns.len()];
    for (r, row) in split.data.into_iter().enumerate() {
        if row.len() != columns.len() {
            return bad(format!(
                "dataframe_split row {r} has {} values for {} columns",
                row.len(),
                columns.len()
            ));
        }
        for (c, cell) in row.into_iter().enumerate() {
            cells[c].push(cell);
        }
    }
    if columns.is_empty() {
        return bad("dataframe_split has no columns");
    }
    columns
        .into_iter()
        .zip(cells)
        .map(|(name, column)| column_tensor(&name, column).map(|t| NamedTensor::new(name, t)))
        .collect()
}

fn dataframe_records(records: Vec<BTreeMap<String, Cell>>) -> Result<Vec<NamedTensor>> {
    if records.is_empty() {
        return bad("dataframe_records is empty");
    }
    // Columns in order of first appearance, as pandas builds them.
    let mut names: Vec<String> = Vec::new();
    for record in &records {
        for key in record.keys() {
            if !names.contains(key) {
                names.push(key.clone());
            }
        }
    }
    let mut columns: Vec<Vec<Cell>> = vec![Vec::with_capacity(records.len()); names.len()];
    for mut record in records {
        for (name, column) in names.iter().zip(columns.iter_mut()) {
            column.push(record.remove(name).unwrap_or(Cell::Null));
        }
    }
    names
        .into_iter()
        .zip(columns)
        .map(|(name, column)| column_tensor(&name, column).map(|t| NamedTensor::new(name, t)))
        .collect()
}

/// A dataframe column: integers (or floats once a fraction or a null
/// appears, as pandas does), booleans or strings.
fn column_tensor(name: &str, cells: Vec<Cell>) -> Result<Tensor> {
    let has = |f: fn(&Cell) -> bool| cells.iter().any(f);
    let is_text = |c: &Cell| matches!(c, Cell::Str(_) | Cell::Json(_));
    let is_number = |c: &Cell| matches!(c, Cell::Int(_) | Cell::Float(_));
    let data = if has(is_text) {
        if has(is_number) || has(|c| matches!(c, Cell::Bool(_))) {
            return bad(format!(
                "column '{name}' mixes strings with numbers or booleans"
            ));
        }
        if has(|c| matches!(c, Cell::Null)) {
            return bad(format!(
                "column '{name}' holds strings and nulls; send an empty string or drop the rows"
            ));
        }
        TensorData::Str(
            cells
                .into_iter()
                .map(|c| match c {
                    Cell::Str(s) | Cell::Json(s) => s,
                    _ => unreachable!("checked above"),
                })
                .collect(),
        )
    } else if has(|c| matches!(c, Cell::Bool(_))) {
        if has(|c| !matches!(c, Cell::Bool(_))) {
            return bad(format!("column '{name}' mixes booleans with other values"));
        }
        TensorData::Bool(
            cells
                .into_iter()
                .map(|c| matches!(c, Cell::Bool(true)))
                .collect(),
        )
    } else if has(|c| matches!(c, Cell::Float(_) | Cell::Null)) {
        TensorData::F64(
            cells
                .into_iter()
                .map(|c| match c {
                    Cell::Int(i) => i as f64,
                    Cell::Float(x) => x,
                    _ => f64::NAN,
                })
                .collect(),
        )
    } else {
        TensorData::I64(
            cells
                .into_iter()
                .map(|c| match c {
                    Cell::Int(i) => i,
                    _ => unreachable!("only integers are left"),
                })
                .collect(),
        )
    };
    Ok(Tensor::column(data))
}

/// A CSV body with a header row, as `pandas.read_csv` reads it: each cell
/// an integer, a float, empty (a missing value) or text.
pub fn scoring_csv(body: &[u8]) -> Result<Vec<NamedTensor>> {
    scoring_delimited(body, b',')
}

/// [`scoring_csv`] with another field delimiter (a TSV file's tab).
pub fn scoring_delimited(body: &[u8], delimiter: u8) -> Result<Vec<NamedTensor>> {
    let mut reader = csv::ReaderBuilder::new()
        .has_headers(true)
        .delimiter(delimiter)
        .flexible(true)
        .from_reader(body);
    let names: Vec<String> = reader
        .headers()
        .map_err(|e| BadRequest(format!("invalid CSV header: {e}")))?
        .iter()
        .map(str::to_string)
        .collect();
    if names.is_empty() || names.iter().all(String::is_empty) {
        return bad("the CSV body has no header row");
    }
    // Named as MLflow's `pd.read_csv` names them (`Unnamed: 0`, `a.1`), as
    // the table reader does.
    let names = sextant_monitor::dataset::pandas_header(names);
    let mut columns: Vec<Vec<Cell>> = vec![Vec::new(); names.len()];
    // pandas' implicit index, as the table reader reads it: the first
    // row's fields beyond the header's names lead every row and are the
    // frame's index, which the model does not see.
    let mut index_fields = None;
    for (r, record) in reader.records().enumerate() {
        let record = record.map_err(|e| BadRequest(format!("invalid CSV at data row {r}: {e}")))?;
        // As `pd.read_csv` (and the table reader): a blank line is skipped, a
        // short row's missing fields are missing values, a long row refused.
        if record.len() == 1 && sextant_monitor::dataset::is_blank_line(&record[0], delimiter) {
            continue;
        }
        let index_fields = *index_fields.get_or_insert(record.len().saturating_sub(names.len()));
        if record.len() > names.len() + index_fields {
            return bad(format!(
                "CSV row {r} has {} fields for {} columns",
                record.len(),
                names.len() + index_fields
            ));
        }
        for (c, column) in columns.iter_mut().enumerate() {
            column.push(record.get(index_fields + c).map_or(Cell::Null, csv_cell));
        }
    }
    if columns[0].is_empty() {
        return bad("the CSV body has no data rows");
    }
    names
        .into_iter()
        .zip(columns)
        .map(|(name, column)| column_tensor(&name, column).map(|t| NamedTensor::new(name, t)))
        .collect()
}

fn csv_cell(field: &str) -> Cell {
    let trimmed = field.trim();
    // pandas' missing-value spellings, as the table reader reads them.
    if sextant_monitor::dataset::is_na_spelling(trimmed) {
        return Cell::Null;
    }
    if let Ok(i) = trimmed.parse::<i64>() {
        return Cell::Int(i);
    }
    if let Ok(x) = trimmed.parse::<f64>() {
        return Cell::Float(x);
    }
    match trimmed {
        "True" | "true" => Cell::Bool(true),
        "False" | "false" => Cell::Bool(false),
        _ => Cell::Str(field.to_string()),
    }
}

/// An output tensor in OIP form.
pub fn oip_output(tensor: NamedTensor) -> OipResponseOutput {
    let NamedTensor { name, tensor } = tensor;
    OipResponseOutput {
        name,
        datatype: tensor.dtype.as_oip(),
        shape: tensor.shape,
        parameters: None,
        data: Some(output_data(tensor.data)),
    }
}

/// An output whose elements go after the JSON, appended to `binary`
/// (Triton's binary tensor data extension).
pub fn oip_binary_output(tensor: NamedTensor, binary: &mut Vec<u8>) -> OipResponseOutput {
    let bytes = encode_binary(&tensor.tensor);
    let mut parameters = sextant_api::inference::Parameters::new();
    parameters.insert("binary_data_size".into(), bytes.len().into());
    binary.extend_from_slice(&bytes);
    OipResponseOutput {
        name: tensor.name,
        datatype: tensor.tensor.dtype.as_oip(),
        shape: tensor.tensor.shape,
        parameters: Some(parameters),
        data: None,
    }
}

fn output_data(data: TensorData) -> OutputData {
    match data {
        TensorData::Bool(v) => OutputData::Bools(v),
        TensorData::I64(v) => OutputData::Ints(v),
        TensorData::F32(v) => OutputData::Floats32(v),
        TensorData::F64(v) => OutputData::Floats(v),
        TensorData::Str(v) => OutputData::Strings(v),
    }
}

/// MLflow's `{"predictions": …}` value: a flat list for a 1-D output, a
/// list of lists for a matrix, a list of records for a dataframe (a Python
/// model's output columns; its workers name a bare array `predictions`).
pub fn mlflow_predictions(
    outputs: &[NamedTensor],
    default_output: usize,
    as_records: bool,
) -> serde_json::Value {
    use serde_json::Value;
    let a_frame = !(outputs.len() == 1 && outputs[0].name == "predictions");
    if as_records
        && a_frame
        && !outputs.is_empty()
        && outputs.iter().all(|o| o.tensor.shape.len() == 1)
    {
        let rows = outputs[0].tensor.rows();
        let records = (0..rows)
            .map(|r| {
                Value::Object(
                    outputs
                        .iter()
                        .map(|o| (o.name.clone(), element(&o.tensor.data, r)))
                        .collect(),
                )
            })
            .collect();
        return Value::Array(records);
    }
    let Some(output) = outputs.get(default_output).or_else(|| outputs.first()) else {
        return Value::Array(Vec::new());
    };
    let tensor = &output.tensor;
    match tensor.shape.len() {
        0 | 1 => Value::Array(
            (0..tensor.len())
                .map(|i| element(&tensor.data, i))
                .collect(),
        ),
        _ => {
            let width = tensor.row_width().max(1);
            Value::Array(
                (0..tensor.rows())
                    .map(|r| {
                        Value::Array(
                            (0..width)
                                .map(|c| element(&tensor.data, r * width + c))
                                .collect(),
                        )
                    })
                    .collect(),
            )
        }
    }
}

fn element(data: &TensorData, i: usize) -> serde_json::Value {
    use serde_json::Value;
    match data {
        TensorData::Bool(v) => Value::Bool(v[i]),
        TensorData::I64(v) => Value::from(v[i]),
        // The f32's shortest decimal (0.9, not 0.8999999761581421).
        TensorData::F32(v) => float(v[i].to_string().parse().unwrap_or(f64::NAN)),
        TensorData::F64(v) => float(v[i]),
        TensorData::Str(v) => Value::String(v[i].clone()),
    }
}

/// JSON has no NaN: MLflow's server writes it as `NaN`, which strict
/// parsers refuse; `null` is what pandas reads back as missing.
fn float(x: f64) -> serde_json::Value {
    serde_json::Number::from_f64(x).map_or(serde_json::Value::Null, serde_json::Value::Number)
}

#[cfg(test)]
mod tests;
