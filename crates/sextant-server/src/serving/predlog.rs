//! The prediction log: every prediction (deployment, arm, model version,
//! time, inputs, outputs, latency, caller), appended as Parquet segments
//! that pandas, DuckDB and Spark read directly.
//!
//! The request path only hands a [`Record`] to a bounded queue
//! (`try_send`, never waiting). When the queue runs past three quarters
//! full the log keeps one record in ten, and when it is full it keeps none;
//! everything not kept is counted (`sextant_prediction_log_dropped_total`).
//! A writer task groups records by deployment and day and writes a segment
//! per group every `flush_interval` (or `max_rows`), named
//! `predictions/<deployment>/<YYYY-MM-DD>/<HHMMSS>-<replica>-<seq>.parquet`.
//! One row per predicted row: fixed columns (`prediction_id`, `row`,
//! `timestamp`, `deployment`, `arm`, `model`, `model_version`, `shadow`,
//! `latency_ms`, `caller`, `error`), then `input_<feature>` and
//! `output_<name>` (`output_<name>_<k>` for each column of a matrix output,
//! such as class probabilities).
//!
//! Segments are written when they are full, on the interval and at a
//! graceful shutdown; a crash loses at most the records of the last
//! interval, which is the price of keeping the request path free of I/O.

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::sync::atomic::{AtomicU64, Ordering::Relaxed};
use std::sync::Arc;
use std::time::Duration;

use arrow_array::{
    ArrayRef, BooleanArray, Float64Array, Int32Array, Int64Array, RecordBatch, StringArray,
    TimestampMicrosecondArray,
};
use arrow_schema::{DataType as ArrowType, Field, Schema, TimeUnit};
use bytes::Bytes;
use sextant_artifacts::{ArtifactPath, ArtifactStore};
use sextant_core::ModelRef;
use sextant_serve::{NamedTensor, TensorData};
use tokio::sync::{mpsc, watch};

use super::source::RemoteServer;
use super::stats::Metrics;

/// One prediction (or failed attempt), as the request path hands it over.
pub struct Record {
    pub prediction_id: String,
    /// Microseconds since the Unix epoch.
    pub time_us: i64,
    pub deployment: String,
    pub arm: String,
    pub model: ModelRef,
    pub shadow: bool,
    pub latency_us: u64,
    pub caller: Option<String>,
    pub error: Option<String>,
    pub inputs: Vec<NamedTensor>,
    pub outputs: Option<Vec<NamedTensor>>,
    /// Names for the columns of a single matrix input.
    pub feature_names: Option<Arc<Vec<String>>>,
}

/// Where segments go.
#[derive(Clone)]
pub enum LogSink {
    /// Under `predictions/` in the server's artifact store.
    Artifacts(ArtifactStore),
    /// Under a local directory.
    Directory(PathBuf),
    /// Uploaded to the server a replica follows.
    Server(RemoteServer),
    /// Nothing is logged.
    Disabled,
}

#[derive(Clone)]
pub struct PredictionLogConfig {
    pub sink: LogSink,
    /// Records waiting to be written, at most.
    pub queue_capacity: usize,
    pub flush_interval: Duration,
    /// Rows after which a segment is written without waiting.
    pub max_rows: usize,
    /// Part of every segment's name, so replicas never overwrite each other.
    pub replica: String,
}

impl PredictionLogConfig {
    pub fn new(sink: LogSink, replica: String) -> PredictionLogConfig {
        PredictionLogConfig {
            sink,
            queue_capacity: 65_536,
            flush_interval: Duration::from_secs(10),
            max_rows: 100_000,
            replica,
        }
    }
}

enum Message {
    Record(Box<Record>),
    /// Write what is buffered now and answer.
    Flush(tokio::sync::oneshot::Sender<()>),
}

/// The request path's handle on the log.
pub struct PredictionLog {
    queue: Option<mpsc::Sender<Message>>,
    capacity: usize,
    sampled: AtomicU64,
    metrics: Arc<Metrics>,
    stop: watch::Sender<bool>,
}

impl PredictionLog {
    /// Starts the writer task (in `tasks`) unless the sink is disabled.
    pub fn start(
        config: PredictionLogConfig,
        metrics: Arc<Metrics>,
        tasks: &mut tokio::task::JoinSet<()>,
    ) -> PredictionLog {
        let (stop, stopped) = watch::channel(false);
        let capacity = config.queue_capacity.max(16);
        let queue = if matches!(config.sink, LogSink::Disabled) {
            None
        } else {
            let (sender, receiver) = mpsc::channel(capacity);
            tasks.spawn(writer(config, receiver, stopped, metrics.clone()));
            Some(sender)
        };
        PredictionLog {
            queue,
            capacity,
            sampled: AtomicU64::new(0),
            metrics,
            stop,
        }
    }

    /// Queues a record without waiting: sampled when the queue is backing
    /// up, dropped (and counted) when it is full.
    pub fn record(&self, record: Record) {
        let Some(queue) = &self.queue else { return };
        let rows = record.inputs.first().map_or(1, |t| t.tensor.rows().max(1)) as u64;
        if queue.capacity() < self.capacity / 4 && self.sampled.fetch_add(1, Relaxed) % 10 != 0 {
            self.metrics.prediction_log_dropped.fetch_add(rows, Relaxed);
            return;
        }
        if queue.try_send(Message::Record(Box::new(record))).is_err() {
            self.metrics.prediction_log_dropped.fetch_add(rows, Relaxed);
        }
    }

    /// Writes everything queued so far (tests and shutdown).
    pub async fn flush(&self) {
        let Some(queue) = &self.queue else { return };
        let (done, wait) = tokio::sync::oneshot::channel();
        if queue.send(Message::Flush(done)).await.is_ok() {
            let _ = wait.await;
        }
    }

    /// Asks the writer to write what it holds and stop.
    pub fn shutdown(&self) {
        let _ = self.stop.send(true);
    }
}

async fn writer(
    config: PredictionLogConfig,
    mut queue: mpsc::Receiver<Message>,
    mut stopped: watch::Receiver<bool>,
    metrics: Arc<Metrics>,
) {
    let mut buffer: Vec<Box<Record>> = Vec::new();
    let mut buffered_rows = 0usize;
    let mut sequence = 0u64;
    let mut tick = tokio::time::interval(config.flush_interval);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tokio::select! {
            message = queue.recv() => match message {
                Some(Message::Record(record)) => {
                    buffered_rows += record.inputs.first().map_or(1, |t| t.tensor.rows().max(1));
                    buffer.push(record);
                    if buffered_rows >= config.max_rows {
                        write_segments(&config, std::mem::take(&mut buffer), &mut sequence, &metrics).await;
                        buffered_rows = 0;
                    }
                }
                Some(Message::Flush(done)) => {
                    write_segments(&config, std::mem::take(&mut buffer), &mut sequence, &metrics).await;
                    buffered_rows = 0;
                    let _ = done.send(());
                }
                None => break,
            },
            _ = tick.tick() => {
                if !buffer.is_empty() {
                    write_segments(&config, std::mem::take(&mut buffer), &mut sequence, &metrics).await;
                    buffered_rows = 0;
                }
            }
            _ = stopped.changed() => {
                // Take what is already queued, then write and stop.
                while let Ok(message) = queue.try_recv() {
                    match message {
                        Message::Record(record) => buffer.push(record),
                        Message::Flush(done) => { let _ = done.send(()); }
                    }
                }
                break;
            }
        }
    }
    write_segments(&config, buffer, &mut sequence, &metrics).await;
}

async fn write_segments(
    config: &PredictionLogConfig,
    records: Vec<Box<Record>>,
    sequence: &mut u64,
    metrics: &Metrics,
) {
    if records.is_empty() {
        return;
    }
    let mut groups: BTreeMap<(String, String), Vec<Box<Record>>> = BTreeMap::new();
    for record in records {
        let day = civil_date(record.time_us);
        groups
            .entry((record.deployment.clone(), day))
            .or_default()
            .push(record);
    }
    for ((deployment, day), records) in groups {
        *sequence += 1;
        let first_time = records[0].time_us;
        let rows: usize = records
            .iter()
            .map(|r| r.inputs.first().map_or(1, |t| t.tensor.rows().max(1)))
            .sum();
        let encoded = tokio::task::spawn_blocking(move || encode(&records)).await;
        let bytes = match encoded {
            Ok(Ok(bytes)) => bytes,
            Ok(Err(err)) => {
                tracing::error!(deployment, error = %err, "cannot encode a prediction log segment");
                metrics.prediction_log_failed_writes.fetch_add(1, Relaxed);
                continue;
            }
            Err(_) => continue,
        };
        let file = format!(
            "{}-{}-{:06}.parquet",
            clock_time(first_time),
            config.replica,
            sequence
        );
        let relative = format!("{deployment}/{day}/{file}");
        match put(&config.sink, &deployment, &relative, bytes).await {
            Ok(()) => {
                metrics
                    .prediction_log_written
                    .fetch_add(rows as u64, Relaxed);
            }
            Err(err) => {
                tracing::error!(deployment, file = relative, error = %err, "cannot write a prediction log segment");
                metrics.prediction_log_failed_writes.fetch_add(1, Relaxed);
            }
        }
    }
}

async fn put(
    sink: &LogSink,
    deployment: &str,
    relative: &str,
    bytes: Vec<u8>,
) -> Result<(), String> {
    match sink {
        LogSink::Disabled => Ok(()),
        LogSink::Artifacts(artifacts) => {
            let path = ArtifactPath::parse(&format!("predictions/{relative}"))
                .map_err(|e| e.to_string())?;
            let body =
                futures::stream::once(async move { Ok::<_, std::io::Error>(Bytes::from(bytes)) });
            artifacts
                .put(&path, body)
                .await
                .map(|_| ())
                .map_err(|e| e.to_string())
        }
        LogSink::Directory(dir) => {
            let path = dir.join(relative);
            if let Some(parent) = path.parent() {
                tokio::fs::create_dir_all(parent)
                    .await
                    .map_err(|e| e.to_string())?;
            }
            // Written aside and renamed, so readers never see half a file.
            let partial = path.with_extension("parquet.partial");
            tokio::fs::write(&partial, bytes)
                .await
                .map_err(|e| e.to_string())?;
            tokio::fs::rename(&partial, &path)
                .await
                .map_err(|e| e.to_string())
        }
        LogSink::Server(server) => {
            let file = relative.split_once('/').map_or(relative, |(_, rest)| rest);
            let response = server
                .put(&format!(
                    "/api/v1/deployments/{deployment}/prediction-log/{file}"
                ))
                .body(bytes)
                .send()
                .await
                .map_err(|e| e.to_string())?;
            if response.status().is_success() {
                Ok(())
            } else {
                Err(format!("the server answered {}", response.status()))
            }
        }
    }
}

/// A column being built, one optional value per row.
enum Column {
    F64(Vec<Option<f64>>),
    I64(Vec<Option<i64>>),
    Bool(Vec<Option<bool>>),
    Str(Vec<Option<String>>),
}

impl Column {
    fn len(&self) -> usize {
        match self {
            Column::F64(v) => v.len(),
            Column::I64(v) => v.len(),
            Column::Bool(v) => v.len(),
            Column::Str(v) => v.len(),
        }
    }

    fn pad(&mut self, rows: usize) {
        match self {
            Column::F64(v) => v.resize(rows, None),
            Column::I64(v) => v.resize(rows, None),
            Column::Bool(v) => v.resize(rows, None),
            Column::Str(v) => v.resize(rows, None),
        }
    }

    fn empty_like(data: &TensorData) -> Column {
        match data {
            TensorData::F32(_) | TensorData::F64(_) => Column::F64(Vec::new()),
            TensorData::I64(_) => Column::I64(Vec::new()),
            TensorData::Bool(_) => Column::Bool(Vec::new()),
            TensorData::Str(_) => Column::Str(Vec::new()),
        }
    }

    /// Appends element `i` of `data`, widening the column when a record
    /// brings another type under the same name (integers to floats,
    /// anything else to text).
    fn push(&mut self, data: &TensorData, i: usize) {
        match (&mut *self, data) {
            (Column::F64(v), TensorData::F64(d)) => v.push(Some(d[i])),
            (Column::F64(v), TensorData::F32(d)) => v.push(Some(d[i] as f64)),
            (Column::F64(v), TensorData::I64(d)) => v.push(Some(d[i] as f64)),
            (Column::I64(v), TensorData::I64(d)) => v.push(Some(d[i])),
            (Column::Bool(v), TensorData::Bool(d)) => v.push(Some(d[i])),
            (Column::Str(v), TensorData::Str(d)) => v.push(Some(d[i].clone())),
            (Column::I64(v), TensorData::F64(_) | TensorData::F32(_)) => {
                let widened = v.iter().map(|x| x.map(|x| x as f64)).collect();
                *self = Column::F64(widened);
                self.push(data, i);
            }
            (column, data) => {
                let texts = column.texts();
                *column = Column::Str(texts);
                if let Column::Str(v) = column {
                    v.push(Some(text_of(data, i)));
                }
            }
        }
    }

    fn texts(&self) -> Vec<Option<String>> {
        match self {
            Column::F64(v) => v.iter().map(|x| x.map(|x| x.to_string())).collect(),
            Column::I64(v) => v.iter().map(|x| x.map(|x| x.to_string())).collect(),
            Column::Bool(v) => v.iter().map(|x| x.map(|x| x.to_string())).collect(),
            Column::Str(v) => v.clone(),
        }
    }

    fn into_array(self) -> (ArrowType, ArrayRef) {
        match self {
            Column::F64(v) => (ArrowType::Float64, Arc::new(Float64Array::from(v))),
            Column::I64(v) => (ArrowType::Int64, Arc::new(Int64Array::from(v))),
            Column::Bool(v) => (ArrowType::Boolean, Arc::new(BooleanArray::from(v))),
            Column::Str(v) => (ArrowType::Utf8, Arc::new(StringArray::from(v))),
        }
    }
}

fn text_of(data: &TensorData, i: usize) -> String {
    match data {
        TensorData::Bool(v) => v[i].to_string(),
        TensorData::I64(v) => v[i].to_string(),
        TensorData::F32(v) => v[i].to_string(),
        TensorData::F64(v) => v[i].to_string(),
        TensorData::Str(v) => v[i].clone(),
    }
}

/// Feature and output columns in order of first appearance.
#[derive(Default)]
struct Columns {
    order: Vec<String>,
    by_name: BTreeMap<String, Column>,
}

impl Columns {
    fn push(&mut self, name: String, data: &TensorData, i: usize, row: usize) {
        let column = self.by_name.entry(name.clone()).or_insert_with(|| {
            self.order.push(name);
            Column::empty_like(data)
        });
        column.pad(row);
        column.push(data, i);
    }
}

/// The record's inputs as named per-row columns: 1-D tensors as they are,
/// one matrix split into the model's feature names, other tensors by
/// element (`input_<name>_<k>`).
fn input_columns(record: &Record, row: usize, columns: &mut Columns, out_row: usize) {
    let single_matrix = match (&record.feature_names, record.inputs.as_slice()) {
        (Some(names), [only])
            if only.tensor.shape.len() == 2 && only.tensor.row_width() == names.len() =>
        {
            Some(names)
        }
        _ => None,
    };
    for input in &record.inputs {
        let width = input.tensor.row_width().max(1);
        for k in 0..width {
            let name = match (single_matrix, width) {
                (Some(names), _) => format!("input_{}", names[k]),
                (None, 1) => format!("input_{}", input.name),
                (None, _) => format!("input_{}_{k}", input.name),
            };
            columns.push(name, &input.tensor.data, row * width + k, out_row);
        }
    }
}

fn output_columns(outputs: &[NamedTensor], row: usize, columns: &mut Columns, out_row: usize) {
    for output in outputs {
        let width = output.tensor.row_width().max(1);
        for k in 0..width {
            let name = if output.tensor.shape.len() <= 1 {
                format!("output_{}", output.name)
            } else {
                format!("output_{}_{k}", output.name)
            };
            columns.push(name, &output.tensor.data, row * width + k, out_row);
        }
    }
}

/// Encodes records as one Parquet file.
fn encode(records: &[Box<Record>]) -> Result<Vec<u8>, String> {
    let mut ids = Vec::new();
    let mut row_numbers = Vec::new();
    let mut times = Vec::new();
    let mut deployments = Vec::new();
    let mut arms = Vec::new();
    let mut models = Vec::new();
    let mut versions = Vec::new();
    let mut shadows = Vec::new();
    let mut latencies = Vec::new();
    let mut callers = Vec::new();
    let mut errors = Vec::new();
    let mut inputs = Columns::default();
    let mut outputs = Columns::default();
    let mut out_row = 0usize;
    for record in records {
        let rows = record.inputs.first().map_or(1, |t| t.tensor.rows().max(1));
        for row in 0..rows {
            ids.push(record.prediction_id.clone());
            row_numbers.push(row as i32);
            times.push(record.time_us);
            deployments.push(record.deployment.clone());
            arms.push(record.arm.clone());
            models.push(record.model.name.clone());
            versions.push(record.model.version);
            shadows.push(record.shadow);
            latencies.push(record.latency_us as f64 / 1000.0);
            callers.push(record.caller.clone());
            errors.push(record.error.clone());
            if !record.inputs.is_empty() {
                input_columns(record, row, &mut inputs, out_row);
            }
            if let Some(outs) = &record.outputs {
                // A model returns one row per input row; anything else is
                // not split by row.
                if outs.iter().all(|o| o.tensor.rows() == rows) {
                    output_columns(outs, row, &mut outputs, out_row);
                }
            }
            out_row += 1;
        }
    }
    let total = out_row;
    let mut fields = vec![
        Field::new("prediction_id", ArrowType::Utf8, false),
        Field::new("row", ArrowType::Int32, false),
        Field::new(
            "timestamp",
            ArrowType::Timestamp(TimeUnit::Microsecond, Some("UTC".into())),
            false,
        ),
        Field::new("deployment", ArrowType::Utf8, false),
        Field::new("arm", ArrowType::Utf8, false),
        Field::new("model", ArrowType::Utf8, false),
        Field::new("model_version", ArrowType::Int64, false),
        Field::new("shadow", ArrowType::Boolean, false),
        Field::new("latency_ms", ArrowType::Float64, false),
        Field::new("caller", ArrowType::Utf8, true),
        Field::new("error", ArrowType::Utf8, true),
    ];
    let mut arrays: Vec<ArrayRef> = vec![
        Arc::new(StringArray::from(ids)),
        Arc::new(Int32Array::from(row_numbers)),
        Arc::new(TimestampMicrosecondArray::from(times).with_timezone("UTC")),
        Arc::new(StringArray::from(deployments)),
        Arc::new(StringArray::from(arms)),
        Arc::new(StringArray::from(models)),
        Arc::new(Int64Array::from(versions)),
        Arc::new(BooleanArray::from(shadows)),
        Arc::new(Float64Array::from(latencies)),
        Arc::new(StringArray::from(callers)),
        Arc::new(StringArray::from(errors)),
    ];
    for columns in [inputs, outputs] {
        let Columns { order, mut by_name } = columns;
        for name in order {
            let mut column = by_name.remove(&name).expect("ordered names are columns");
            column.pad(total);
            debug_assert_eq!(column.len(), total);
            let (kind, array) = column.into_array();
            fields.push(Field::new(name, kind, true));
            arrays.push(array);
        }
    }
    let schema = Arc::new(Schema::new(fields));
    let batch = RecordBatch::try_new(schema.clone(), arrays).map_err(|e| e.to_string())?;
    let properties = parquet::file::properties::WriterProperties::builder()
        .set_compression(parquet::basic::Compression::SNAPPY)
        .build();
    let mut bytes = Vec::new();
    let mut writer = parquet::arrow::ArrowWriter::try_new(&mut bytes, schema, Some(properties))
        .map_err(|e| e.to_string())?;
    writer.write(&batch).map_err(|e| e.to_string())?;
    writer.close().map_err(|e| e.to_string())?;
    Ok(bytes)
}

/// `YYYY-MM-DD` (UTC) of a time in µs since the epoch, by Howard
/// Hinnant's `civil_from_days`.
fn civil_date(time_us: i64) -> String {
    let days = time_us.div_euclid(86_400_000_000);
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z - era * 146_097;
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let day = doy - (153 * mp + 2) / 5 + 1;
    let month = if mp < 10 { mp + 3 } else { mp - 9 };
    let year = yoe + era * 400 + i64::from(month <= 2);
    format!("{year:04}-{month:02}-{day:02}")
}

/// `HHMMSS` (UTC) of a time in µs since the epoch.
fn clock_time(time_us: i64) -> String {
    let seconds = time_us.div_euclid(1_000_000).rem_euclid(86_400);
    format!(
        "{:02}{:02}{:02}",
        seconds / 3600,
        seconds / 60 % 60,
        seconds % 60
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn dates_are_utc_calendar_days() {
        assert_eq!(civil_date(0), "1970-01-01");
        // 2026-12-02T01:02:03Z
        assert_eq!(civil_date(1_796_173_323_000_000), "2026-12-02");
        assert_eq!(clock_time(1_796_173_323_000_000), "010203");
        assert_eq!(civil_date(951_782_400_000_000), "2000-02-29");
    }
}
