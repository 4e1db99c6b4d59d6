//! `sextant predict`: batch scoring of a Parquet or CSV file with a
//! registered model, at engine speed: the file is read into columns, cut
//! into chunks, and the chunks are predicted on every core; predictions are
//! written as Parquet (or CSV, by the output's extension).

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Instant;

use anyhow::{bail, Context};
use arrow_array::cast::AsArray;
use arrow_array::types::{
    Float32Type, Float64Type, Int16Type, Int32Type, Int64Type, Int8Type, UInt16Type, UInt32Type,
    UInt64Type, UInt8Type,
};
use arrow_array::{
    Array, ArrayRef, BooleanArray, Float64Array, Int64Array, RecordBatch, StringArray,
};
use arrow_schema::{DataType as ArrowType, Field, Schema};
use sextant_serve::model::Layout;
use sextant_serve::{NamedTensor, Tensor, TensorData};

use crate::input::{parse_partition, select_input, Partition, SelectedInput};

#[derive(clap::Args)]
pub struct PredictArgs {
    /// The model: NAME@ALIAS, NAME/VERSION or NAME/latest (registered on
    /// the server), or a local MLflow model directory.
    #[arg(long)]
    model: String,
    /// Input rows: a .parquet or .csv file with a header, or a directory
    /// of them (read in name order, as one table); either may be on object
    /// storage (s3://bucket/prefix/, gs://…, az://…).
    #[arg(long)]
    input: String,
    /// Where predictions go: .parquet (default) or .csv.
    #[arg(long)]
    output: PathBuf,
    /// Score only share I of N of the input (0 ≤ I < N), so that N
    /// processes (an indexed Job's pods) score it together: a directory of
    /// at least N files is split by files, anything else by rows, each
    /// share contiguous, so the N outputs in order are the whole output.
    #[arg(long, value_parser = parse_partition, value_name = "I/N")]
    partition: Option<Partition>,
    /// Rows per chunk handed to the engine.
    #[arg(long, default_value_t = 8192)]
    chunk_rows: usize,
    /// Worker threads (default: every core).
    #[arg(long)]
    threads: Option<usize>,
    /// Which model output to write: all of them (default) or one by name
    /// (e.g. predict_proba).
    #[arg(long)]
    output_name: Option<String>,
    /// Where downloaded models are kept.
    #[arg(long, env = "SEXTANT_CACHE_DIR")]
    cache_dir: Option<PathBuf>,
}

pub async fn predict(
    connection: &crate::client::Connection,
    args: PredictArgs,
) -> anyhow::Result<()> {
    let started = Instant::now();
    let model_dir = model_dir(connection, &args.model, args.cache_dir.as_deref()).await?;
    let input = select_input(&args.input, args.partition).await?;
    let columns = tokio::task::spawn_blocking(move || read_input(&input)).await??;
    let rows = columns.first().map_or(0, |c| c.tensor.rows());
    let options = load_options(args.cache_dir.as_deref());
    let threads = args
        .threads
        .unwrap_or_else(|| std::thread::available_parallelism().map_or(1, |n| n.get()));
    let chunk_rows = args.chunk_rows.max(1);
    let output_name = args.output_name.clone();
    let output = args.output.clone();
    let (engine, written) =
        tokio::task::spawn_blocking(move || -> anyhow::Result<(&'static str, usize)> {
            let loaded = sextant_serve::mlflow::load_model_dir(&model_dir, &options)
                .map_err(|e| anyhow::anyhow!(e))
                .with_context(|| format!("while loading {}", model_dir.display()))?;
            let model = Arc::new(loaded.model);
            let outputs = predict_chunks(&model, &columns, rows, chunk_rows, threads)?;
            let outputs = match &output_name {
                Some(name) => {
                    let kept: Vec<NamedTensor> =
                        outputs.into_iter().filter(|o| &o.name == name).collect();
                    if kept.is_empty() {
                        bail!("the model has no output named '{name}'");
                    }
                    kept
                }
                None => outputs,
            };
            write_outputs(&output, &outputs)?;
            Ok((model.info().engine, rows))
        })
        .await??;
    let seconds = started.elapsed().as_secs_f64();
    eprintln!(
        "sextant: {written} rows predicted by the {engine} engine in {seconds:.2} s ({:.0} rows/s) -> {}",
        written as f64 / seconds.max(1e-9),
        args.output.display()
    );
    Ok(())
}

/// The local directory of `model`: itself when it is an MLflow model
/// directory, else the registered model (NAME@ALIAS, NAME/VERSION) fetched
/// from the server into the cache once. The cache is keyed by the server,
/// the version and its files' place and creation time: `scam/1` of another
/// server, or of a model deleted and registered again, is another model.
pub(crate) async fn model_dir(
    connection: &crate::client::Connection,
    model: &str,
    cache_dir: Option<&Path>,
) -> anyhow::Result<PathBuf> {
    use sha2::{Digest, Sha256};
    if Path::new(model).join("MLmodel").is_file() {
        return Ok(PathBuf::from(model));
    }
    if Path::new(model).is_dir() {
        bail!("{model} is a directory without an MLmodel file: not an MLflow model");
    }
    let reference = model.strip_prefix("models:/").unwrap_or(model);
    if !reference.contains('@') && !reference.contains('/') {
        bail!(
            "'{model}' is neither a local MLflow model directory (there is no such directory) \
             nor a registered model: use NAME@ALIAS, NAME/VERSION or NAME/latest"
        );
    }
    let server = crate::client::Client::new(connection)?.remote_server();
    let model = crate::deploy::resolve_remote_model(&server, model).await?;
    let response = server
        .get("/api/2.0/mlflow/model-versions/get")
        .query(&[
            ("name", model.name.clone()),
            ("version", model.version.to_string()),
        ])
        .send()
        .await
        .context("cannot reach the server")?;
    let status = response.status();
    let body: serde_json::Value = response.json().await.unwrap_or_default();
    anyhow::ensure!(
        status.is_success(),
        "the server answered {status}: {}",
        body["message"].as_str().unwrap_or("")
    );
    let version = &body["model_version"];
    let identity = format!(
        "{}\n{}\n{}\n{}",
        server.base_url,
        version["source"].as_str().unwrap_or(""),
        version["creation_timestamp"],
        version["run_id"].as_str().unwrap_or("")
    );
    let key: String = Sha256::digest(identity.as_bytes())[..6]
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect();
    let cache = cache_dir.map_or_else(crate::default_cache_dir, Path::to_path_buf);
    let dir =
        cache
            .join("models")
            .join(format!("{}-{}-{key}", sanitize(&model.name), model.version));
    if !dir.join("MLmodel").is_file() {
        sextant_server::serving::Source::Remote(server)
            .fetch_model(&model, &dir)
            .await
            .map_err(|e| anyhow::anyhow!(e))
            .with_context(|| format!("while downloading {model}"))?;
    }
    Ok(dir)
}

/// How batch commands load a model: Python environments cached beside the
/// models, progress on stderr.
pub(crate) fn load_options(cache_dir: Option<&Path>) -> sextant_serve::mlflow::LoadOptions {
    let cache = cache_dir.map_or_else(crate::default_cache_dir, Path::to_path_buf);
    sextant_serve::mlflow::LoadOptions {
        python: crate::python_config(None, &cache),
        force_python: false,
        progress: Some(sextant_serve::Progress::new(|stage| {
            eprintln!("sextant: {stage}")
        })),
    }
}

fn sanitize(name: &str) -> String {
    name.chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() || c == '-' || c == '_' {
                c
            } else {
                '_'
            }
        })
        .collect()
}

/// Predicts every chunk of `rows`, `threads` chunks at a time, and joins
/// the outputs in order.
fn predict_chunks(
    model: &sextant_serve::Model,
    columns: &[NamedTensor],
    rows: usize,
    chunk_rows: usize,
    threads: usize,
) -> anyhow::Result<Vec<NamedTensor>> {
    let chunks: Vec<(usize, usize)> = (0..rows)
        .step_by(chunk_rows)
        .map(|start| (start, (start + chunk_rows).min(rows)))
        .collect();
    let next = std::sync::atomic::AtomicUsize::new(0);
    let mut results: Vec<Option<anyhow::Result<Vec<NamedTensor>>>> =
        (0..chunks.len()).map(|_| None).collect();
    let slots = std::sync::Mutex::new(&mut results);
    std::thread::scope(|scope| {
        for _ in 0..threads.max(1).min(chunks.len().max(1)) {
            scope.spawn(|| loop {
                let index = next.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
                let Some(&(start, end)) = chunks.get(index) else {
                    break;
                };
                let inputs = columns.iter().map(|c| slice_rows(c, start, end)).collect();
                let result = model
                    .predict(inputs, Layout::Columns)
                    .map_err(|e| anyhow::anyhow!("rows {start}..{end}: {e}"));
                slots.lock().expect("results lock")[index] = Some(result);
            });
        }
    });
    let mut joined: Vec<NamedTensor> = Vec::new();
    for result in results {
        let outputs = result.expect("every chunk ran")?;
        if joined.is_empty() {
            joined = outputs;
            continue;
        }
        for (all, part) in joined.iter_mut().zip(outputs) {
            append(&mut all.tensor, part.tensor)?;
        }
    }
    Ok(joined)
}

pub(crate) fn slice_rows(column: &NamedTensor, start: usize, end: usize) -> NamedTensor {
    NamedTensor::new(column.name.clone(), column.tensor.slice_rows(start, end))
}

fn append(all: &mut Tensor, part: Tensor) -> anyhow::Result<()> {
    if !all.append(part) {
        bail!("the model returned different types for different chunks");
    }
    Ok(())
}

/// The rows to score: the selected files in name order as one table, and
/// of those this process's share of rows when the partition is by rows.
pub(crate) fn read_input(input: &SelectedInput) -> anyhow::Result<Vec<NamedTensor>> {
    let mut columns: Vec<NamedTensor> = Vec::new();
    for file in &input.files {
        let part = read_columns(file)?;
        if columns.is_empty() {
            columns = part;
            continue;
        }
        let names = |c: &[NamedTensor]| c.iter().map(|t| t.name.clone()).collect::<Vec<_>>();
        if names(&columns) != names(&part) {
            bail!(
                "{} has columns {:?}, the files before it {:?}",
                file.display(),
                names(&part),
                names(&columns)
            );
        }
        for (all, more) in columns.iter_mut().zip(part) {
            if !all.tensor.append(more.tensor) {
                bail!("{}: column '{}' changes type", file.display(), all.name);
            }
        }
    }
    Ok(match input.rows {
        Some(partition) => rows_of(&columns, partition),
        None => columns,
    })
}

/// The partition's contiguous rows of `columns`.
fn rows_of(columns: &[NamedTensor], partition: Partition) -> Vec<NamedTensor> {
    let rows = columns.first().map_or(0, |c| c.tensor.rows());
    let range = partition.range(rows);
    columns
        .iter()
        .map(|column| slice_rows(column, range.start, range.end))
        .collect()
}

/// Reads a Parquet or CSV file into one column tensor per column.
pub(crate) fn read_columns(path: &Path) -> anyhow::Result<Vec<NamedTensor>> {
    use sextant_monitor::dataset::{has_parquet_magic, NamedFormat};
    let format = NamedFormat::of(&path.file_name().unwrap_or_default().to_string_lossy());
    let columns = if has_parquet_magic(path).unwrap_or(false) || format.is_parquet() {
        read_parquet(path)?
    } else if let Some(delimiter) = format.delimiter() {
        let bytes = sextant_monitor::dataset::csv_bytes(path, u64::MAX)?;
        sextant_server::serving::read_delimited_columns(&bytes, delimiter)
            .map_err(|e| anyhow::anyhow!("{}: {}", path.display(), e.0))?
    } else {
        bail!(
            "cannot read '.{}' files: use .parquet, .csv or .tsv (.csv.gz, .csv.bz2, .csv.xz, .csv.zst, .csv.zip)",
            format.extension
        )
    };
    if columns.is_empty() {
        bail!("{} has no columns", path.display());
    }
    Ok(columns)
}

fn read_parquet(path: &Path) -> anyhow::Result<Vec<NamedTensor>> {
    let file =
        std::fs::File::open(path).with_context(|| format!("while opening {}", path.display()))?;
    let reader = parquet::arrow::arrow_reader::ParquetRecordBatchReaderBuilder::try_new(file)
        .with_context(|| format!("{} is not a Parquet file", path.display()))?
        .build()?;
    let mut columns: Vec<NamedTensor> = Vec::new();
    for batch in reader {
        let batch = batch.with_context(|| format!("while reading {}", path.display()))?;
        for (i, field) in batch.schema().fields().iter().enumerate() {
            let data = array_data(field.name(), batch.column(i))?;
            let tensor = Tensor::column(data);
            match columns.get_mut(i) {
                Some(column) => append(&mut column.tensor, tensor)?,
                None => columns.push(NamedTensor::new(field.name().clone(), tensor)),
            }
        }
    }
    Ok(columns)
}

/// An Arrow column as tensor data; nulls in numeric columns become NaN.
fn array_data(name: &str, array: &ArrayRef) -> anyhow::Result<TensorData> {
    macro_rules! floats {
        ($t:ty) => {
            TensorData::F64(
                array
                    .as_primitive::<$t>()
                    .iter()
                    .map(|v| v.map_or(f64::NAN, |v| v as f64))
                    .collect(),
            )
        };
    }
    macro_rules! ints {
        ($t:ty) => {{
            let values = array.as_primitive::<$t>();
            if values.null_count() > 0 {
                TensorData::F64(
                    values
                        .iter()
                        .map(|v| v.map_or(f64::NAN, |v| v as f64))
                        .collect(),
                )
            } else {
                TensorData::I64(values.values().iter().map(|&v| v as i64).collect())
            }
        }};
    }
    Ok(match array.data_type() {
        ArrowType::Float64 => floats!(Float64Type),
        ArrowType::Float32 => floats!(Float32Type),
        ArrowType::Int64 => ints!(Int64Type),
        ArrowType::Int32 => ints!(Int32Type),
        ArrowType::Int16 => ints!(Int16Type),
        ArrowType::Int8 => ints!(Int8Type),
        ArrowType::UInt64 => ints!(UInt64Type),
        ArrowType::UInt32 => ints!(UInt32Type),
        ArrowType::UInt16 => ints!(UInt16Type),
        ArrowType::UInt8 => ints!(UInt8Type),
        ArrowType::Boolean => TensorData::Bool(
            array
                .as_boolean()
                .iter()
                .map(|v| v.unwrap_or(false))
                .collect(),
        ),
        ArrowType::Utf8 => TensorData::Str(
            array
                .as_string::<i32>()
                .iter()
                .map(|v| v.unwrap_or("").to_string())
                .collect(),
        ),
        ArrowType::LargeUtf8 => TensorData::Str(
            array
                .as_string::<i64>()
                .iter()
                .map(|v| v.unwrap_or("").to_string())
                .collect(),
        ),
        ArrowType::Dictionary(_, value)
            if matches!(value.as_ref(), ArrowType::Utf8 | ArrowType::LargeUtf8) =>
        {
            let cast = arrow_cast_to_strings(array)?;
            TensorData::Str(cast)
        }
        other => bail!("column '{name}' has type {other}, which models cannot take"),
    })
}

/// A dictionary-encoded string column (pandas categoricals) as strings.
fn arrow_cast_to_strings(array: &ArrayRef) -> anyhow::Result<Vec<String>> {
    let dictionary = array
        .as_any_dictionary_opt()
        .ok_or_else(|| anyhow::anyhow!("unexpected dictionary column"))?;
    let values = dictionary.values();
    let strings: Vec<String> = match values.data_type() {
        ArrowType::Utf8 => values
            .as_string::<i32>()
            .iter()
            .map(|v| v.unwrap_or("").to_string())
            .collect(),
        _ => values
            .as_string::<i64>()
            .iter()
            .map(|v| v.unwrap_or("").to_string())
            .collect(),
    };
    let keys = dictionary.normalized_keys();
    Ok(keys
        .into_iter()
        .map(|k| strings.get(k).cloned().unwrap_or_default())
        .collect())
}

/// Writes the outputs: a 1-D output is a column named after it, a matrix
/// output one column per position (`predict_proba_0`, `predict_proba_1`, …).
pub(crate) fn write_outputs(path: &Path, outputs: &[NamedTensor]) -> anyhow::Result<()> {
    let mut fields = Vec::new();
    let mut arrays: Vec<ArrayRef> = Vec::new();
    for output in outputs {
        let width = output.tensor.row_width().max(1);
        let rows = output.tensor.rows();
        for k in 0..width {
            let name = if output.tensor.shape.len() <= 1 {
                output.name.clone()
            } else {
                format!("{}_{k}", output.name)
            };
            let pick = |i: usize| i * width + k;
            let (kind, array): (ArrowType, ArrayRef) = match &output.tensor.data {
                TensorData::F64(v) => (
                    ArrowType::Float64,
                    Arc::new(Float64Array::from_iter_values(
                        (0..rows).map(|i| v[pick(i)]),
                    )),
                ),
                TensorData::F32(v) => (
                    ArrowType::Float64,
                    Arc::new(Float64Array::from_iter_values(
                        (0..rows).map(|i| v[pick(i)] as f64),
                    )),
                ),
                TensorData::I64(v) => (
                    ArrowType::Int64,
                    Arc::new(Int64Array::from_iter_values((0..rows).map(|i| v[pick(i)]))),
                ),
                TensorData::Bool(v) => (
                    ArrowType::Boolean,
                    Arc::new(BooleanArray::from(
                        (0..rows).map(|i| v[pick(i)]).collect::<Vec<_>>(),
                    )),
                ),
                TensorData::Str(v) => (
                    ArrowType::Utf8,
                    Arc::new(StringArray::from_iter_values(
                        (0..rows).map(|i| v[pick(i)].as_str()),
                    )),
                ),
            };
            fields.push(Field::new(name, kind, false));
            arrays.push(array);
        }
    }
    let schema = Arc::new(Schema::new(fields));
    let batch = RecordBatch::try_new(schema.clone(), arrays)?;
    let extension = path
        .extension()
        .and_then(|e| e.to_str())
        .unwrap_or("parquet")
        .to_ascii_lowercase();
    let file = std::fs::File::create(path)
        .with_context(|| format!("while creating {}", path.display()))?;
    if extension == "csv" {
        let mut writer = csv::Writer::from_writer(std::io::BufWriter::new(file));
        writer.write_record(schema.fields().iter().map(|f| f.name().as_str()))?;
        for row in 0..batch.num_rows() {
            let record: Vec<String> = batch.columns().iter().map(|c| cell_text(c, row)).collect();
            writer.write_record(&record)?;
        }
        writer.flush()?;
        return Ok(());
    }
    let properties = parquet::file::properties::WriterProperties::builder()
        .set_compression(parquet::basic::Compression::SNAPPY)
        .build();
    let mut writer = parquet::arrow::ArrowWriter::try_new(file, schema, Some(properties))?;
    writer.write(&batch)?;
    writer.close()?;
    Ok(())
}

fn cell_text(array: &ArrayRef, row: usize) -> String {
    match array.data_type() {
        ArrowType::Float64 => array.as_primitive::<Float64Type>().value(row).to_string(),
        ArrowType::Int64 => array.as_primitive::<Int64Type>().value(row).to_string(),
        ArrowType::Boolean => array.as_boolean().value(row).to_string(),
        _ => array.as_string::<i32>().value(row).to_string(),
    }
}
