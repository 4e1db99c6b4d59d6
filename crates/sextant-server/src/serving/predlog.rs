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
//! Every segment of a deployment has the same columns with the same types,
//! so that pandas and DuckDB read the whole directory without losing any:
//! the writer keeps each deployment's [`LogSchema`], where a column keeps
//! the type it was first written with (numbers of the inputs are always
//! `float64`, so a column is never `int64` in one segment and `float64` in
//! the next; a value of another type is converted, a number to text or text
//! to a number when it parses) and new columns are only ever appended (a new
//! model version's features, its probabilities). Each segment carries every
//! column of the schema so far, null where it had no value, and the schema
//! itself is kept as a zero-row segment, `predictions/<deployment>/0-schema.parquet`,
//! whose name sorts first: readers that take the first file's schema
//! (pandas through pyarrow, DuckDB without `union_by_name`) see every column.
//!
//! Segments are written when they are full, on the interval and at a
//! graceful shutdown; a crash loses at most the records of the last
//! interval, which is the price of keeping the request path free of I/O.

use std::collections::{BTreeMap, HashMap};
use std::path::PathBuf;
use std::sync::atomic::{AtomicU64, Ordering::Relaxed};
use std::sync::Arc;
use std::time::Duration;

use arrow_array::builder::StringBuilder;
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

use super::abuse::AbuseMonitor;
use super::feedback::PredictionIndex;
use super::source::RemoteServer;
use super::stats::Metrics;

/// One prediction (or failed attempt), as the request path hands it over.
pub struct Record {
    pub prediction_id: String,
    /// Microseconds since the Unix epoch.
    pub time_us: i64,
    pub deployment: Arc<str>,
    pub arm: Arc<str>,
    pub model: Arc<ModelRef>,
    pub shadow: bool,
    pub latency_us: u64,
    pub caller: Option<String>,
    pub error: Option<String>,
    pub inputs: Vec<NamedTensor>,
    pub outputs: Option<Vec<NamedTensor>>,
    /// Names for the columns of a single matrix input.
    pub feature_names: Option<Arc<Vec<String>>>,
    /// Which output is the model's answer (the feedback index reads it).
    pub default_output: usize,
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
    /// Where answered predictions are remembered for joining labels.
    pub index: Option<Arc<PredictionIndex>>,
    /// Where callers' requests are watched for abuse.
    pub abuse: Option<Arc<AbuseMonitor>>,
}

impl PredictionLogConfig {
    pub fn new(sink: LogSink, replica: String) -> PredictionLogConfig {
        PredictionLogConfig {
            sink,
            queue_capacity: 65_536,
            flush_interval: Duration::from_secs(10),
            max_rows: 100_000,
            replica,
            index: None,
            abuse: None,
        }
    }
}

/// How often the writer takes what the queue holds.
const DRAIN_INTERVAL: std::time::Duration = std::time::Duration::from_millis(100);

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
        let queue = if matches!(config.sink, LogSink::Disabled)
            && config.index.is_none()
            && config.abuse.is_none()
        {
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
    // Open segments by deployment and day.
    let mut segments: BTreeMap<(Arc<str>, i64), Segment> = BTreeMap::new();
    let mut schemas: HashMap<String, LogSchema> = HashMap::new();
    let mut buffered_rows = 0usize;
    let mut sequence = 0u64;
    let mut last_write = tokio::time::Instant::now();
    // The writer wakes on its own clock and drains what came: waiting on
    // the queue instead would have every request wake it, a cross-thread
    // wake-up per prediction (measured: most of the log's cost).
    let mut tick = tokio::time::interval(DRAIN_INTERVAL);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    let logging = !matches!(config.sink, LogSink::Disabled);
    let index = config.index.clone();
    let abuse = config.abuse.clone();
    let add = |segments: &mut BTreeMap<(Arc<str>, i64), Segment>, record: &Record| {
        if let (Some(index), Some(outputs), false) = (&index, &record.outputs, record.shadow) {
            index.add(
                &record.prediction_id,
                &record.deployment,
                record.time_us,
                &record.model,
                &record.arm,
                outputs,
                record.default_output,
            );
        }
        if let (Some(abuse), Some(outputs), false) = (&abuse, &record.outputs, record.shadow) {
            abuse.observe(
                &record.deployment,
                record.caller.as_deref(),
                record.time_us,
                &record.inputs,
                record.feature_names.as_deref().map(Vec::as_slice),
                outputs,
                record.default_output,
            );
        }
        if !logging {
            return 0;
        }
        let key = (
            record.deployment.clone(),
            record.time_us.div_euclid(MICROS_PER_DAY),
        );
        let segment = segments
            .entry(key)
            .or_insert_with(|| Segment::new(record.time_us));
        let before = segment.rows();
        segment.push(record);
        segment.rows() - before
    };
    loop {
        let stopping = tokio::select! {
            _ = tick.tick() => false,
            _ = stopped.changed() => true,
        };
        let mut flushes = Vec::new();
        let mut closed = false;
        loop {
            match queue.try_recv() {
                Ok(Message::Record(record)) => buffered_rows += add(&mut segments, &record),
                Ok(Message::Flush(done)) => flushes.push(done),
                Err(mpsc::error::TryRecvError::Empty) => break,
                Err(mpsc::error::TryRecvError::Disconnected) => {
                    closed = true;
                    break;
                }
            }
        }
        let due = last_write.elapsed() >= config.flush_interval || buffered_rows >= config.max_rows;
        if !segments.is_empty() && (due || !flushes.is_empty() || stopping || closed) {
            write_segments(
                &config,
                std::mem::take(&mut segments),
                &mut schemas,
                &mut sequence,
                &metrics,
            )
            .await;
            buffered_rows = 0;
            last_write = tokio::time::Instant::now();
        }
        for done in flushes {
            let _ = done.send(());
        }
        if stopping || closed {
            break;
        }
    }
    write_segments(&config, segments, &mut schemas, &mut sequence, &metrics).await;
}

async fn write_segments(
    config: &PredictionLogConfig,
    segments: BTreeMap<(Arc<str>, i64), Segment>,
    schemas: &mut HashMap<String, LogSchema>,
    sequence: &mut u64,
    metrics: &Metrics,
) {
    for ((deployment, day), segment) in segments {
        let deployment = deployment.to_string();
        let day = civil_date(day * MICROS_PER_DAY);
        *sequence += 1;
        let first_time = segment.first_time_us;
        let rows = segment.rows();
        if !schemas.contains_key(&deployment) {
            let stored = read_schema(&config.sink, &deployment).await;
            schemas.insert(deployment.clone(), stored.unwrap_or_default());
        }
        let schema = schemas.get_mut(&deployment).expect("inserted above");
        let widened = segment.widen(schema);
        if widened {
            // The schema file first: a reader that finds the new segment
            // also finds its columns in the first file.
            match schema.file() {
                Ok(bytes) => {
                    let relative = format!("{deployment}/{SCHEMA_FILE}");
                    if let Err(err) = put_schema(&config.sink, &relative, bytes).await {
                        tracing::warn!(deployment, error = %err, "cannot write the prediction log's schema file");
                    }
                }
                Err(err) => {
                    tracing::warn!(deployment, error = %err, "cannot encode the prediction log's schema")
                }
            }
        }
        let snapshot = schema.clone();
        let encoded = tokio::task::spawn_blocking(move || segment.finish(&snapshot)).await;
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

/// The schema a deployment's log was written with so far, from its schema
/// file. Replicas writing through a server keep theirs in memory.
async fn read_schema(sink: &LogSink, deployment: &str) -> Option<LogSchema> {
    let bytes = match sink {
        LogSink::Artifacts(artifacts) => {
            let path =
                ArtifactPath::parse(&format!("predictions/{deployment}/{SCHEMA_FILE}")).ok()?;
            segment_bytes(artifacts, &path).await?.to_vec()
        }
        LogSink::Directory(dir) => tokio::fs::read(dir.join(deployment).join(SCHEMA_FILE))
            .await
            .ok()?,
        LogSink::Server(_) | LogSink::Disabled => return None,
    };
    LogSchema::parse(bytes)
}

async fn put_schema(sink: &LogSink, relative: &str, bytes: Vec<u8>) -> Result<(), String> {
    match sink {
        LogSink::Artifacts(_) | LogSink::Directory(_) => {
            let deployment = relative.split('/').next().unwrap_or_default();
            put(sink, deployment, relative, bytes).await
        }
        LogSink::Server(_) | LogSink::Disabled => Ok(()),
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

/// The type a log column keeps for the life of its deployment's log.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum LogType {
    Float,
    Int,
    Bool,
    Text,
}

impl LogType {
    fn arrow(self) -> ArrowType {
        match self {
            LogType::Float => ArrowType::Float64,
            LogType::Int => ArrowType::Int64,
            LogType::Bool => ArrowType::Boolean,
            LogType::Text => ArrowType::Utf8,
        }
    }

    fn of_arrow(data_type: &ArrowType) -> LogType {
        match data_type {
            ArrowType::Int64 => LogType::Int,
            ArrowType::Boolean => LogType::Bool,
            ArrowType::Utf8 | ArrowType::LargeUtf8 => LogType::Text,
            _ => LogType::Float,
        }
    }
}

/// The columns of one deployment's log beyond the fixed ones, in the
/// order they first appeared, each with its type.
#[derive(Debug, Clone, Default, PartialEq)]
pub(crate) struct LogSchema {
    columns: Vec<(String, LogType)>,
    known: HashMap<String, usize>,
}

/// The fixed columns every segment starts with.
fn fixed_fields() -> Vec<Field> {
    vec![
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
    ]
}

/// The schema file's name in a deployment's log directory.
pub(crate) const SCHEMA_FILE: &str = "0-schema.parquet";

impl LogSchema {
    /// The schema a schema file (or any segment) was written with.
    fn from_arrow(schema: &Schema) -> LogSchema {
        let fixed = fixed_fields().len();
        let mut out = LogSchema::default();
        for field in schema.fields().iter().skip(fixed) {
            out.widen(field.name(), LogType::of_arrow(field.data_type()));
        }
        out
    }

    /// Adds `name` with `natural` unless it is known; whether it was new.
    fn widen(&mut self, name: &str, natural: LogType) -> bool {
        if self.known.contains_key(name) {
            return false;
        }
        self.known.insert(name.to_owned(), self.columns.len());
        self.columns.push((name.to_owned(), natural));
        true
    }

    fn arrow(&self) -> Schema {
        let mut fields = fixed_fields();
        fields.extend(
            self.columns
                .iter()
                .map(|(name, ty)| Field::new(name, ty.arrow(), true)),
        );
        Schema::new(fields)
    }

    /// A zero-row Parquet file of the schema.
    fn file(&self) -> Result<Vec<u8>, String> {
        let schema = Arc::new(self.arrow());
        let mut bytes = Vec::new();
        let mut writer = parquet::arrow::ArrowWriter::try_new(&mut bytes, schema.clone(), None)
            .map_err(|e| e.to_string())?;
        writer
            .write(&RecordBatch::new_empty(schema))
            .map_err(|e| e.to_string())?;
        writer.close().map_err(|e| e.to_string())?;
        Ok(bytes)
    }

    fn parse(bytes: Vec<u8>) -> Option<LogSchema> {
        let builder = parquet::arrow::arrow_reader::ParquetRecordBatchReaderBuilder::try_new(
            Bytes::from(bytes),
        )
        .ok()?;
        Some(LogSchema::from_arrow(builder.schema()))
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

    /// The type the column has when it first appears: numbers of the
    /// inputs as floats (a request's integers and the next one's floats
    /// are the same feature), outputs as they came.
    fn natural_type(&self, input: bool) -> LogType {
        match self {
            Column::F64(_) => LogType::Float,
            Column::I64(_) if input => LogType::Float,
            Column::I64(_) => LogType::Int,
            Column::Bool(_) => LogType::Bool,
            Column::Str(_) => LogType::Text,
        }
    }

    /// The values as an array of `ty`: numbers become text, text that
    /// parses becomes a number (else null), booleans are 0 and 1.
    fn into_typed(self, ty: LogType) -> ArrayRef {
        fn parse_bool(text: &str) -> Option<bool> {
            match text.trim() {
                "true" | "True" | "1" => Some(true),
                "false" | "False" | "0" => Some(false),
                _ => None,
            }
        }
        fn whole(x: f64) -> Option<i64> {
            (x.fract() == 0.0 && x.abs() < 9.0e15).then_some(x as i64)
        }
        match (ty, self) {
            (LogType::Float, Column::F64(v)) => Arc::new(Float64Array::from(v)),
            (LogType::Float, Column::I64(v)) => Arc::new(Float64Array::from(
                v.into_iter()
                    .map(|x| x.map(|x| x as f64))
                    .collect::<Vec<_>>(),
            )),
            (LogType::Float, Column::Bool(v)) => Arc::new(Float64Array::from(
                v.into_iter()
                    .map(|x| x.map(|b| f64::from(u8::from(b))))
                    .collect::<Vec<_>>(),
            )),
            (LogType::Float, Column::Str(v)) => Arc::new(Float64Array::from(
                v.into_iter()
                    .map(|x| x.and_then(|t| t.trim().parse::<f64>().ok()))
                    .collect::<Vec<_>>(),
            )),
            (LogType::Int, Column::I64(v)) => Arc::new(Int64Array::from(v)),
            (LogType::Int, Column::F64(v)) => Arc::new(Int64Array::from(
                v.into_iter().map(|x| x.and_then(whole)).collect::<Vec<_>>(),
            )),
            (LogType::Int, Column::Bool(v)) => Arc::new(Int64Array::from(
                v.into_iter().map(|x| x.map(i64::from)).collect::<Vec<_>>(),
            )),
            (LogType::Int, Column::Str(v)) => Arc::new(Int64Array::from(
                v.into_iter()
                    .map(|x| x.and_then(|t| t.trim().parse::<i64>().ok()))
                    .collect::<Vec<_>>(),
            )),
            (LogType::Bool, Column::Bool(v)) => Arc::new(BooleanArray::from(v)),
            (LogType::Bool, Column::Str(v)) => Arc::new(BooleanArray::from(
                v.into_iter()
                    .map(|x| x.and_then(|t| parse_bool(&t)))
                    .collect::<Vec<_>>(),
            )),
            (LogType::Bool, column) => {
                let texts = column.texts();
                Arc::new(BooleanArray::from(
                    texts
                        .into_iter()
                        .map(|x| x.and_then(|t| t.parse::<f64>().ok()))
                        .map(|x| match x {
                            Some(v) if v == 1.0 => Some(true),
                            Some(v) if v == 0.0 => Some(false),
                            _ => None,
                        })
                        .collect::<Vec<_>>(),
                ))
            }
            (LogType::Text, column) => Arc::new(StringArray::from(column.texts())),
        }
    }
}

fn null_array(ty: LogType, rows: usize) -> ArrayRef {
    arrow_array::new_null_array(&ty.arrow(), rows)
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
    names: Vec<String>,
    columns: Vec<Column>,
    by_name: HashMap<String, usize>,
}

/// Where one element of a record's row goes: tensor, position in the
/// row, column.
struct Slot {
    tensor: usize,
    k: usize,
    width: usize,
    column: usize,
}

impl Columns {
    /// The column named `name`, created (typed like `data`) on first use.
    fn slot(&mut self, name: String, data: &TensorData) -> usize {
        if let Some(&index) = self.by_name.get(&name) {
            return index;
        }
        let index = self.columns.len();
        self.columns.push(Column::empty_like(data));
        self.names.push(name.clone());
        self.by_name.insert(name, index);
        index
    }

    /// Appends row `row` of `tensors` at output row `out_row`, through
    /// slots resolved once per record.
    fn push_row(&mut self, slots: &[Slot], tensors: &[NamedTensor], row: usize, out_row: usize) {
        for slot in slots {
            let column = &mut self.columns[slot.column];
            column.pad(out_row);
            column.push(&tensors[slot.tensor].tensor.data, row * slot.width + slot.k);
        }
    }

    /// Adds this segment's columns to `schema`; whether it grew.
    fn widen(&self, schema: &mut LogSchema, input: bool) -> bool {
        let mut grew = false;
        for (name, column) in self.names.iter().zip(&self.columns) {
            grew |= schema.widen(name, column.natural_type(input));
        }
        grew
    }

    /// The columns by name, padded to `total` rows.
    fn into_map(self, total: usize) -> HashMap<String, Column> {
        self.names
            .into_iter()
            .zip(self.columns)
            .map(|(name, mut column)| {
                column.pad(total);
                (name, column)
            })
            .collect()
    }
}

/// The columns of a record's inputs: 1-D tensors as they are, one matrix
/// split into the model's feature names, other tensors by element
/// (`input_<name>_<k>`).
fn resolve_input_slots(record: &Record, columns: &mut Columns) -> Vec<Slot> {
    let single_matrix = match (&record.feature_names, record.inputs.as_slice()) {
        (Some(names), [only])
            if only.tensor.shape.len() == 2 && only.tensor.row_width() == names.len() =>
        {
            Some(names)
        }
        _ => None,
    };
    let mut slots = Vec::new();
    for (tensor, input) in record.inputs.iter().enumerate() {
        let width = input.tensor.row_width().max(1);
        for k in 0..width {
            let name = match (single_matrix, width) {
                (Some(names), _) => format!("input_{}", names[k]),
                (None, 1) => format!("input_{}", input.name),
                (None, _) => format!("input_{}_{k}", input.name),
            };
            let column = columns.slot(name, &input.tensor.data);
            slots.push(Slot {
                tensor,
                k,
                width,
                column,
            });
        }
    }
    slots
}

/// The columns of a record's outputs: `output_<name>`, or
/// `output_<name>_<k>` for each column of a matrix.
fn resolve_output_slots(outputs: &[NamedTensor], columns: &mut Columns) -> Vec<Slot> {
    let mut slots = Vec::new();
    for (tensor, output) in outputs.iter().enumerate() {
        let width = output.tensor.row_width().max(1);
        for k in 0..width {
            let name = if output.tensor.shape.len() <= 1 {
                format!("output_{}", output.name)
            } else {
                format!("output_{}_{k}", output.name)
            };
            let column = columns.slot(name, &output.tensor.data);
            slots.push(Slot {
                tensor,
                k,
                width,
                column,
            });
        }
    }
    slots
}

/// What decides a record's columns: each tensor's name, storage, width
/// and rank, and the feature names of a single matrix.
struct Layout {
    tensors: Vec<(String, std::mem::Discriminant<TensorData>, usize, usize)>,
    feature_names: Option<usize>,
}

impl Layout {
    fn of(tensors: &[NamedTensor], feature_names: Option<&Arc<Vec<String>>>) -> Layout {
        Layout {
            tensors: tensors
                .iter()
                .map(|t| {
                    (
                        t.name.clone(),
                        std::mem::discriminant(&t.tensor.data),
                        t.tensor.row_width(),
                        t.tensor.shape.len(),
                    )
                })
                .collect(),
            // The names are shared per model version: their address is their identity.
            feature_names: feature_names.map(|names| Arc::as_ptr(names) as usize),
        }
    }

    /// Whether `tensors` have this layout (compared without building one).
    fn fits(&self, tensors: &[NamedTensor], feature_names: Option<&Arc<Vec<String>>>) -> bool {
        self.feature_names == feature_names.map(|names| Arc::as_ptr(names) as usize)
            && self.tensors.len() == tensors.len()
            && self
                .tensors
                .iter()
                .zip(tensors)
                .all(|((name, kind, width, rank), t)| {
                    *name == t.name
                        && *kind == std::mem::discriminant(&t.tensor.data)
                        && *width == t.tensor.row_width()
                        && *rank == t.tensor.shape.len()
                })
    }
}

/// One segment being built: records are turned into columns as they
/// arrive (so the work is spread over the interval instead of landing on
/// the machine all at once), and `finish` only assembles and compresses.
struct Segment {
    first_time_us: i64,
    ids: StringBuilder,
    row_numbers: Vec<i32>,
    times: Vec<i64>,
    deployments: StringBuilder,
    arms: StringBuilder,
    models: StringBuilder,
    versions: Vec<i64>,
    shadows: Vec<bool>,
    latencies: Vec<f64>,
    callers: StringBuilder,
    errors: StringBuilder,
    inputs: Columns,
    outputs: Columns,
    // Consecutive records of one model almost always share their layout:
    // their slots are reused instead of naming every column again.
    input_layout: Option<Layout>,
    input_slots: Vec<Slot>,
    output_layout: Option<Layout>,
    output_slots: Vec<Slot>,
}

impl Segment {
    fn new(first_time_us: i64) -> Segment {
        Segment {
            first_time_us,
            ids: StringBuilder::new(),
            row_numbers: Vec::new(),
            times: Vec::new(),
            deployments: StringBuilder::new(),
            arms: StringBuilder::new(),
            models: StringBuilder::new(),
            versions: Vec::new(),
            shadows: Vec::new(),
            latencies: Vec::new(),
            callers: StringBuilder::new(),
            errors: StringBuilder::new(),
            inputs: Columns::default(),
            outputs: Columns::default(),
            input_layout: None,
            input_slots: Vec::new(),
            output_layout: None,
            output_slots: Vec::new(),
        }
    }

    fn rows(&self) -> usize {
        self.row_numbers.len()
    }

    /// Appends one row per predicted row of `record`.
    fn push(&mut self, record: &Record) {
        let rows = record.inputs.first().map_or(1, |t| t.tensor.rows().max(1));
        let names = record.feature_names.as_ref();
        if !self
            .input_layout
            .as_ref()
            .is_some_and(|l| l.fits(&record.inputs, names))
        {
            self.input_slots = resolve_input_slots(record, &mut self.inputs);
            self.input_layout = Some(Layout::of(&record.inputs, names));
        }
        // A model returns one row per input row; anything else is not
        // split by row.
        let answer = record
            .outputs
            .as_deref()
            .filter(|outs| outs.iter().all(|o| o.tensor.rows() == rows));
        if let Some(outs) = answer {
            if !self
                .output_layout
                .as_ref()
                .is_some_and(|l| l.fits(outs, None))
            {
                self.output_slots = resolve_output_slots(outs, &mut self.outputs);
                self.output_layout = Some(Layout::of(outs, None));
            }
        }
        for row in 0..rows {
            let out_row = self.rows();
            self.ids.append_value(&record.prediction_id);
            self.row_numbers.push(row as i32);
            self.times.push(record.time_us);
            self.deployments.append_value(&record.deployment);
            self.arms.append_value(&record.arm);
            self.models.append_value(&record.model.name);
            self.versions.push(record.model.version);
            self.shadows.push(record.shadow);
            self.latencies.push(record.latency_us as f64 / 1000.0);
            self.callers.append_option(record.caller.as_deref());
            self.errors.append_option(record.error.as_deref());
            self.inputs
                .push_row(&self.input_slots, &record.inputs, row, out_row);
            if let Some(outs) = answer {
                self.outputs
                    .push_row(&self.output_slots, outs, row, out_row);
            }
        }
    }

    /// Adds this segment's input and output columns to `schema`; whether
    /// it grew.
    fn widen(&self, schema: &mut LogSchema) -> bool {
        let inputs = self.inputs.widen(schema, true);
        let outputs = self.outputs.widen(schema, false);
        inputs || outputs
    }

    /// The segment as one Parquet file with every column of `schema` (see
    /// [`Segment::widen`]), each of its type.
    fn finish(mut self, schema: &LogSchema) -> Result<Vec<u8>, String> {
        let total = self.rows();
        let mut arrays: Vec<ArrayRef> = vec![
            Arc::new(self.ids.finish()),
            Arc::new(Int32Array::from(self.row_numbers)),
            Arc::new(TimestampMicrosecondArray::from(self.times).with_timezone("UTC")),
            Arc::new(self.deployments.finish()),
            Arc::new(self.arms.finish()),
            Arc::new(self.models.finish()),
            Arc::new(Int64Array::from(self.versions)),
            Arc::new(BooleanArray::from(self.shadows)),
            Arc::new(Float64Array::from(self.latencies)),
            Arc::new(self.callers.finish()),
            Arc::new(self.errors.finish()),
        ];
        let mut columns = self.inputs.into_map(total);
        columns.extend(self.outputs.into_map(total));
        for (name, ty) in &schema.columns {
            arrays.push(match columns.remove(name) {
                Some(column) => column.into_typed(*ty),
                None => null_array(*ty, total),
            });
        }
        let schema = Arc::new(schema.arrow());
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
}

const MICROS_PER_DAY: i64 = 86_400_000_000;

/// The Parquet segments of `deployment`'s log written on the days from
/// `first_day` to `last_day` (`YYYY-MM-DD`, inclusive; `None` is open),
/// oldest first. A day or a listing that cannot be read is passed over.
pub(crate) async fn segments(
    artifacts: &ArtifactStore,
    deployment: &str,
    first_day: Option<&str>,
    last_day: Option<&str>,
) -> Vec<ArtifactPath> {
    let Ok(root) = ArtifactPath::parse(&format!("predictions/{deployment}")) else {
        return Vec::new();
    };
    let mut days = artifacts.list(&root).await.unwrap_or_default();
    days.retain(|d| {
        d.is_dir
            && first_day.is_none_or(|first| d.path.as_str() >= first)
            && last_day.is_none_or(|last| d.path.as_str() <= last)
    });
    days.sort_by(|a, b| a.path.cmp(&b.path));
    let mut paths = Vec::new();
    for day in days {
        let Ok(dir) = ArtifactPath::parse(&format!("predictions/{deployment}/{}", day.path)) else {
            continue;
        };
        let mut files = artifacts.list(&dir).await.unwrap_or_default();
        files.retain(|f| !f.is_dir && f.path.ends_with(".parquet"));
        files.sort_by(|a, b| a.path.cmp(&b.path));
        paths.extend(
            files
                .iter()
                .filter_map(|f| ArtifactPath::parse(&format!("{}/{}", dir.as_str(), f.path)).ok()),
        );
    }
    paths
}

/// A segment's bytes; `None` (with a warning) when it cannot be read.
pub(crate) async fn segment_bytes(artifacts: &ArtifactStore, path: &ArtifactPath) -> Option<Bytes> {
    use futures::TryStreamExt;
    let read = async {
        let download = artifacts.get(path).await.map_err(|e| e.to_string())?;
        let chunks: Vec<Bytes> = download
            .body
            .try_collect()
            .await
            .map_err(|e| e.to_string())?;
        Ok::<_, String>(Bytes::from(chunks.concat()))
    };
    match read.await {
        Ok(bytes) => Some(bytes),
        Err(err) => {
            tracing::warn!(segment = path.as_str(), cause = %err, "cannot read a prediction log segment");
            None
        }
    }
}

/// `YYYY-MM-DD` (UTC) of a time in µs since the epoch, by Howard
/// Hinnant's `civil_from_days`.
pub(crate) fn civil_date(time_us: i64) -> String {
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

    fn record(version: i64, inputs: Vec<NamedTensor>, outputs: Vec<NamedTensor>) -> Record {
        Record {
            prediction_id: format!("p{version}"),
            time_us: 1_796_173_323_000_000,
            deployment: Arc::from("calls"),
            arm: Arc::from("primary"),
            model: Arc::new(ModelRef {
                name: "scam".into(),
                version,
                alias: None,
            }),
            shadow: false,
            latency_us: 10,
            caller: None,
            error: None,
            inputs,
            outputs: Some(outputs),
            feature_names: None,
            default_output: 0,
        }
    }

    fn column(name: &str, data: TensorData) -> NamedTensor {
        NamedTensor::new(name, sextant_serve::Tensor::column(data))
    }

    fn types(bytes: Vec<u8>) -> Vec<(String, ArrowType)> {
        let builder = parquet::arrow::arrow_reader::ParquetRecordBatchReaderBuilder::try_new(
            Bytes::from(bytes),
        )
        .unwrap();
        builder
            .schema()
            .fields()
            .iter()
            .map(|f| (f.name().clone(), f.data_type().clone()))
            .collect()
    }

    #[test]
    fn a_deployments_segments_keep_one_schema_that_only_widens() {
        let mut schema = LogSchema::default();
        // Version 1: an integer feature and text, labels.
        let mut first = Segment::new(0);
        first.push(&record(
            1,
            vec![
                column("amount", TensorData::I64(vec![3])),
                column("country", TensorData::Str(vec!["NG".into()])),
            ],
            vec![column("predict", TensorData::I64(vec![1]))],
        ));
        assert!(first.widen(&mut schema));
        let first = types(first.finish(&schema).unwrap());
        // Version 2 sends a float amount, an encoded (numeric) country, and
        // answers probabilities too.
        let mut second = Segment::new(0);
        second.push(&record(
            2,
            vec![
                column("amount", TensorData::F64(vec![2.5])),
                column("country", TensorData::F64(vec![4.0])),
            ],
            vec![
                column("predict", TensorData::I64(vec![0])),
                NamedTensor::new(
                    "predict_proba",
                    sextant_serve::Tensor::f64_matrix(1, 2, vec![0.7, 0.3]),
                ),
            ],
        ));
        assert!(second.widen(&mut schema));
        let second = types(second.finish(&schema).unwrap());
        let of = |types: &[(String, ArrowType)], name: &str| {
            types
                .iter()
                .find(|(n, _)| n == name)
                .map(|(_, t)| t.clone())
        };
        for segment in [&first, &second] {
            assert_eq!(of(segment, "input_amount"), Some(ArrowType::Float64));
            assert_eq!(of(segment, "input_country"), Some(ArrowType::Utf8));
            assert_eq!(of(segment, "output_predict"), Some(ArrowType::Int64));
            assert_eq!(of(segment, "model_version"), Some(ArrowType::Int64));
        }
        assert_eq!(
            of(&second, "output_predict_proba_1"),
            Some(ArrowType::Float64)
        );
        // The schema file has every column, in the order they appeared.
        let file = types(schema.file().unwrap());
        assert_eq!(&file[..second.len()], &second[..]);
        // And reads back as the same schema.
        assert_eq!(LogSchema::parse(schema.file().unwrap()), Some(schema));
    }
}
