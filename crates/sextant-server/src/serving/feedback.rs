//! Ground truth for served predictions: what each prediction said (kept by
//! the prediction log's writer, off the request path), labels joined to it
//! by prediction id, and per-window counts and score samples that the
//! performance report and the label-free estimate (CBPE) read.
//!
//! The index holds the most recent predictions in memory (a bounded number
//! of rows, oldest forgotten first). A label for an older prediction is
//! looked up in the prediction log's Parquet segments instead (see
//! `routes::feedback`), so labels that arrive days late still join.

use std::collections::{BTreeMap, HashMap, VecDeque};
use std::sync::{Arc, Mutex};

use sextant_core::ModelRef;
use sextant_serve::{NamedTensor, TensorData};

/// Rows of recent predictions kept in memory by default.
pub const DEFAULT_INDEX_ROWS: usize = 500_000;
/// Width of the windows that count predictions (aligned to the epoch).
pub const WINDOW_US: i64 = 5 * 60 * 1_000_000;
/// Windows kept per model version: a day of 5-minute windows.
const WINDOWS_KEPT: usize = 288;
/// Positive-class scores sampled per window for the label-free estimate.
const SCORE_SAMPLE: usize = 2_000;

pub use sextant_monitor::performance::{number_text, Outcome as RowOutcome};

/// One outcome per row of `outputs`. The label comes from an output
/// named like a label (`predict_label`, `output_label`, `label`) or from
/// the default output when it holds classes; probabilities from an
/// output named like them (`predict_proba`, `output_probability`,
/// `probabilities`) with one column per class.
pub fn outcomes_of(outputs: &[NamedTensor], default_output: usize) -> Vec<RowOutcome> {
    let Some(default) = outputs.get(default_output).or(outputs.first()) else {
        return Vec::new();
    };
    let rows = default.tensor.rows();
    let named = |test: fn(&str) -> bool| {
        outputs
            .iter()
            .find(|o| test(&o.name.to_ascii_lowercase()) && o.tensor.rows() == rows)
    };
    let label_output = named(|n| n.contains("label")).or_else(|| {
        matches!(
            default.tensor.data,
            TensorData::Str(_) | TensorData::I64(_) | TensorData::Bool(_)
        )
        .then_some(default)
    });
    let probability_output = named(|n| n.contains("prob")).filter(|o| o.tensor.row_width() >= 2);
    let value_output = (default.tensor.row_width() == 1
        && !matches!(default.tensor.data, TensorData::Str(_)))
    .then_some(default);
    (0..rows)
        .map(|row| RowOutcome {
            label: label_output.and_then(|o| {
                let width = o.tensor.row_width().max(1);
                element_text(&o.tensor.data, row * width)
            }),
            value: value_output.and_then(|o| o.tensor.data.get_f64(row)),
            probabilities: probability_output.map(|o| {
                let width = o.tensor.row_width();
                (0..width)
                    .map(|k| o.tensor.data.get_f64(row * width + k).unwrap_or(f64::NAN))
                    .collect()
            }),
        })
        .collect()
}

/// A tensor element as label text: strings as they are, numbers as the
/// shortest text that reads back to them (`1.0` is `"1"`, as a pandas
/// integer column prints it), booleans as `true`/`false`.
fn element_text(data: &TensorData, index: usize) -> Option<String> {
    match data {
        TensorData::Str(values) => values.get(index).cloned(),
        TensorData::Bool(values) => values.get(index).map(|b| b.to_string()),
        TensorData::I64(values) => values.get(index).map(|v| v.to_string()),
        _ => data.get_f64(index).map(number_text),
    }
}

/// A label as the caller sent it, as text comparable with [`RowOutcome::label`].
pub fn label_text(label: &serde_json::Value) -> Option<String> {
    match label {
        serde_json::Value::String(text) => Some(text.clone()),
        serde_json::Value::Number(number) => number.as_f64().map(number_text),
        serde_json::Value::Bool(value) => Some(value.to_string()),
        _ => None,
    }
}

/// A prediction as the index keeps it.
#[derive(Debug, Clone)]
pub struct IndexedPrediction {
    pub deployment: Arc<str>,
    pub time_us: i64,
    pub model: Arc<ModelRef>,
    pub arm: Arc<str>,
    pub rows: Vec<RowOutcome>,
}

/// Per model version and window: rows predicted and a sample of the
/// positive-class scores of binary classifiers.
#[derive(Debug, Clone, Default)]
pub struct PredictionWindow {
    pub rows: u64,
    /// Reservoir sample (Vitter's algorithm R) of positive-class scores.
    pub scores: Vec<f64>,
    scores_seen: u64,
}

impl PredictionWindow {
    fn add_score(&mut self, score: f64, random: &mut u64) {
        self.scores_seen += 1;
        if self.scores.len() < SCORE_SAMPLE {
            self.scores.push(score);
            return;
        }
        // Algorithm R: keep the new item with probability k/n.
        let slot = next_random(random) % self.scores_seen;
        if (slot as usize) < SCORE_SAMPLE {
            self.scores[slot as usize] = score;
        }
    }
}

fn next_random(state: &mut u64) -> u64 {
    // xorshift64*: the sample needs spread, not cryptographic quality.
    *state ^= *state >> 12;
    *state ^= *state << 25;
    *state ^= *state >> 27;
    state.wrapping_mul(0x2545_f491_4f6c_dd1d)
}

#[derive(Default)]
struct IndexInner {
    by_id: HashMap<Box<str>, IndexedPrediction>,
    /// Ids by age, for forgetting the oldest.
    order: VecDeque<Box<str>>,
    rows: usize,
    /// (deployment, model) → window start → counts.
    windows: HashMap<(Arc<str>, String), BTreeMap<i64, PredictionWindow>>,
    random: u64,
}

/// Recent predictions by id, and prediction counts per window.
pub struct PredictionIndex {
    inner: Mutex<IndexInner>,
    capacity_rows: usize,
}

impl PredictionIndex {
    pub fn new(capacity_rows: usize) -> PredictionIndex {
        PredictionIndex {
            inner: Mutex::new(IndexInner {
                random: 0x9e37_79b9_7f4a_7c15,
                ..IndexInner::default()
            }),
            capacity_rows: capacity_rows.max(1),
        }
    }

    /// Adds one answered prediction (the prediction log's writer calls this).
    pub fn add(
        &self,
        prediction_id: &str,
        deployment: &Arc<str>,
        time_us: i64,
        model: &Arc<ModelRef>,
        arm: &Arc<str>,
        outputs: &[NamedTensor],
        default_output: usize,
    ) {
        let rows = outcomes_of(outputs, default_output);
        self.add_rows(prediction_id, deployment, time_us, model, arm, rows);
    }

    /// Adds one answered prediction's row outcomes.
    fn add_rows(
        &self,
        prediction_id: &str,
        deployment: &Arc<str>,
        time_us: i64,
        model: &Arc<ModelRef>,
        arm: &Arc<str>,
        rows: Vec<RowOutcome>,
    ) {
        if rows.is_empty() {
            return;
        }
        let mut inner = self.inner.lock().expect("prediction index lock");
        let inner = &mut *inner;
        let window_start = time_us.div_euclid(WINDOW_US) * WINDOW_US;
        let windows = inner
            .windows
            .entry((deployment.clone(), model_key(model)))
            .or_default();
        let window = windows.entry(window_start).or_default();
        window.rows += rows.len() as u64;
        for row in &rows {
            if let Some(score) = binary_score(row) {
                window.add_score(score, &mut inner.random);
            }
        }
        while windows.len() > WINDOWS_KEPT {
            windows.pop_first();
        }
        inner.rows += rows.len();
        let id: Box<str> = prediction_id.into();
        inner.order.push_back(id.clone());
        inner.by_id.insert(
            id,
            IndexedPrediction {
                deployment: deployment.clone(),
                time_us,
                model: model.clone(),
                arm: arm.clone(),
                rows,
            },
        );
        while inner.rows > self.capacity_rows {
            let Some(oldest) = inner.order.pop_front() else {
                break;
            };
            if let Some(gone) = inner.by_id.remove(&oldest) {
                inner.rows -= gone.rows.len();
            }
        }
    }

    /// The predictions of `deployment` among `ids` that are still in memory.
    pub fn lookup(&self, deployment: &str, ids: &[&str]) -> HashMap<String, IndexedPrediction> {
        let inner = self.inner.lock().expect("prediction index lock");
        ids.iter()
            .filter_map(|id| {
                inner
                    .by_id
                    .get(*id)
                    .filter(|p| &*p.deployment == deployment)
                    .map(|p| (id.to_string(), p.clone()))
            })
            .collect()
    }

    /// Windows of one model version of a deployment overlapping `[from, to)`.
    pub fn windows(
        &self,
        deployment: &str,
        model: &str,
        from_us: i64,
        to_us: i64,
    ) -> Vec<(i64, PredictionWindow)> {
        let inner = self.inner.lock().expect("prediction index lock");
        let key = (Arc::<str>::from(deployment), model.to_string());
        inner
            .windows
            .get(&key)
            .map(|windows| {
                windows
                    .range(from_us.div_euclid(WINDOW_US) * WINDOW_US..to_us)
                    .map(|(start, window)| (*start, window.clone()))
                    .collect()
            })
            .unwrap_or_default()
    }

    /// The model versions of `deployment` that have windows in memory.
    pub fn models_of(&self, deployment: &str) -> Vec<String> {
        let inner = self.inner.lock().expect("prediction index lock");
        let mut models: Vec<String> = inner
            .windows
            .keys()
            .filter(|(d, _)| &**d == deployment)
            .map(|(_, m)| m.clone())
            .collect();
        models.sort();
        models
    }

    /// Forgets a deleted deployment's windows (its ids age out).
    pub fn forget(&self, deployment: &str) {
        let mut inner = self.inner.lock().expect("prediction index lock");
        inner.windows.retain(|(d, _), _| &**d != deployment);
    }
}

/// `name/version`, the key of a model version in reports and the store.
pub fn model_key(model: &ModelRef) -> String {
    format!("{}/{}", model.name, model.version)
}

/// The positive-class probability of a binary classifier's answer.
pub fn binary_score(row: &RowOutcome) -> Option<f64> {
    match row.probabilities.as_deref() {
        Some([_, positive]) if positive.is_finite() => Some(*positive),
        Some(_) => None,
        None => None,
    }
}

/// Refills the index from `deployment`'s prediction log: the predictions of
/// the windows it keeps (the last day) answered before `before_us`, in
/// prediction order. After a restart, labels for them join without a log
/// search and the windows behind coverage and CBPE's estimates come back.
/// Returns the predictions restored.
pub async fn restore_from_log(
    index: &PredictionIndex,
    artifacts: &sextant_artifacts::ArtifactStore,
    deployment: &str,
    before_us: i64,
) -> usize {
    let since_us = before_us - WINDOWS_KEPT as i64 * WINDOW_US;
    let first_day = super::predlog::civil_date(since_us);
    let mut restored: Vec<(String, IndexedPrediction)> = Vec::new();
    for path in super::predlog::segments(artifacts, deployment, Some(&first_day), None).await {
        let wanted = Wanted::Between(since_us, before_us);
        restored.extend(read_wanted(artifacts, deployment, &path, wanted).await);
    }
    restored.sort_by_key(|(_, p)| p.time_us);
    let count = restored.len();
    for (id, prediction) in restored {
        index.add_rows(
            &id,
            &prediction.deployment,
            prediction.time_us,
            &prediction.model,
            &prediction.arm,
            prediction.rows,
        );
    }
    count
}

/// Days of the prediction log searched for labels of forgotten predictions.
pub const LOG_SEARCH_DAYS: usize = 90;
const DAY_US: i64 = 86_400_000_000;

/// Finds `ids` in `deployment`'s prediction log (newest day first), for
/// labels of predictions the in-memory index no longer holds. Shadow rows
/// and failed predictions are skipped. Segments that cannot be read are
/// logged and passed over.
pub async fn find_in_log(
    artifacts: &sextant_artifacts::ArtifactStore,
    deployment: &str,
    ids: &std::collections::HashSet<String>,
) -> HashMap<String, IndexedPrediction> {
    let mut found: HashMap<String, IndexedPrediction> = HashMap::new();
    let first_day =
        super::predlog::civil_date(super::now_micros() - LOG_SEARCH_DAYS as i64 * DAY_US);
    let wanted = Arc::new(ids.clone());
    let paths = super::predlog::segments(artifacts, deployment, Some(&first_day), None).await;
    for path in paths.iter().rev() {
        let rows = read_wanted(artifacts, deployment, path, Wanted::Ids(wanted.clone())).await;
        for (id, prediction) in rows {
            found.entry(id).or_insert(prediction);
        }
        if found.len() == ids.len() {
            break;
        }
    }
    found
}

/// The wanted rows of the segment at `path`; none when it cannot be read.
async fn read_wanted(
    artifacts: &sextant_artifacts::ArtifactStore,
    deployment: &str,
    path: &sextant_artifacts::ArtifactPath,
    wanted: Wanted,
) -> HashMap<String, IndexedPrediction> {
    let Some(bytes) = super::predlog::segment_bytes(artifacts, path).await else {
        return HashMap::new();
    };
    let deployment: Arc<str> = deployment.into();
    match tokio::task::spawn_blocking(move || read_segment(bytes, &deployment, &wanted)).await {
        Ok(Ok(rows)) => rows,
        Ok(Err(err)) => {
            tracing::warn!(segment = path.as_str(), cause = %err, "cannot read a prediction log segment");
            HashMap::new()
        }
        Err(_) => HashMap::new(),
    }
}

/// Which rows of a log segment to read.
enum Wanted {
    /// Those with one of these prediction ids.
    Ids(Arc<std::collections::HashSet<String>>),
    /// Those predicted in `[from_us, to_us)`.
    Between(i64, i64),
}

/// The answered rows of one log segment that are `wanted`.
fn read_segment(
    bytes: bytes::Bytes,
    deployment: &Arc<str>,
    wanted: &Wanted,
) -> Result<HashMap<String, IndexedPrediction>, String> {
    use arrow_array::{Array, BooleanArray, Int32Array, Int64Array, StringArray};
    use parquet::arrow::arrow_reader::ParquetRecordBatchReaderBuilder;
    use sextant_serve::Tensor;

    let mut found: HashMap<String, IndexedPrediction> = HashMap::new();
    let builder = ParquetRecordBatchReaderBuilder::try_new(bytes).map_err(|e| e.to_string())?;
    let reader = builder.build().map_err(|e| e.to_string())?;
    for batch in reader {
        let batch = batch.map_err(|e| e.to_string())?;
        let column = |name: &str| batch.column_by_name(name);
        let ids_column = column("prediction_id")
            .and_then(|c| c.as_any().downcast_ref::<StringArray>())
            .ok_or("no prediction_id column")?;
        let times = column("timestamp").and_then(|c| {
            c.as_any()
                .downcast_ref::<arrow_array::TimestampMicrosecondArray>()
        });
        let matching: Vec<usize> = (0..batch.num_rows())
            .filter(|&i| match wanted {
                Wanted::Ids(ids) => ids.contains(ids_column.value(i)),
                Wanted::Between(from, to) => {
                    let (from, to) = (*from, *to);
                    times.is_some_and(|t| (from..to).contains(&t.value(i)))
                }
            })
            .collect();
        if matching.is_empty() {
            continue;
        }
        let text = |name: &str| column(name).and_then(|c| c.as_any().downcast_ref::<StringArray>());
        let rows_column = column("row").and_then(|c| c.as_any().downcast_ref::<Int32Array>());
        let versions =
            column("model_version").and_then(|c| c.as_any().downcast_ref::<Int64Array>());
        let shadows = column("shadow").and_then(|c| c.as_any().downcast_ref::<BooleanArray>());
        let (models, arms, errors) = (text("model"), text("arm"), text("error"));
        let outputs = output_columns(&batch);
        for i in matching {
            if shadows.is_some_and(|s| s.value(i)) || errors.is_some_and(|e| e.is_valid(i)) {
                continue;
            }
            let row_tensors: Vec<NamedTensor> = outputs
                .iter()
                .filter_map(|(name, columns)| {
                    let data = if columns.len() == 1 {
                        one_value(columns[0].as_ref(), i)?
                    } else {
                        let values: Option<Vec<f64>> =
                            columns.iter().map(|c| number_at(c.as_ref(), i)).collect();
                        TensorData::F64(values?)
                    };
                    let width = columns.len();
                    let shape = if width == 1 { vec![1] } else { vec![1, width] };
                    let dtype = data.natural_dtype();
                    Some(NamedTensor::new(
                        name.clone(),
                        Tensor { dtype, shape, data },
                    ))
                })
                .collect();
            let outcome = outcomes_of(&row_tensors, 0).pop().unwrap_or_default();
            let row = rows_column.map_or(0, |r| r.value(i)).max(0) as usize;
            let id = ids_column.value(i).to_string();
            let entry = found.entry(id).or_insert_with(|| IndexedPrediction {
                deployment: deployment.clone(),
                time_us: times.map_or(0, |t| t.value(i)),
                model: Arc::new(ModelRef {
                    name: models.map_or(String::new(), |m| m.value(i).to_string()),
                    version: versions.map_or(0, |v| v.value(i)),
                    alias: None,
                }),
                arm: arms.map_or("", |a| a.value(i)).into(),
                rows: Vec::new(),
            });
            if entry.rows.len() <= row {
                entry.rows.resize(row + 1, RowOutcome::default());
            }
            entry.rows[row] = outcome;
        }
    }
    Ok(found)
}

/// The segment's `output_…` columns grouped back into outputs: a matrix
/// output was written as `output_<name>_0`, `output_<name>_1`, ….
fn output_columns(batch: &arrow_array::RecordBatch) -> Vec<(String, Vec<arrow_array::ArrayRef>)> {
    let schema = batch.schema();
    let names: Vec<&str> = schema
        .fields()
        .iter()
        .filter_map(|f| f.name().strip_prefix("output_"))
        .collect();
    let mut groups: Vec<(String, Vec<arrow_array::ArrayRef>)> = Vec::new();
    let mut seen = std::collections::HashSet::new();
    for name in &names {
        if seen.contains(*name) {
            continue;
        }
        let column = |n: &str| batch.column_by_name(&format!("output_{n}")).cloned();
        let base = name
            .rsplit_once('_')
            .filter(|(_, k)| *k == "0")
            .map(|(base, _)| base);
        match base {
            Some(base) => {
                let mut columns = Vec::new();
                while let Some(c) = column(&format!("{base}_{}", columns.len())) {
                    seen.insert(format!("{base}_{}", columns.len()));
                    columns.push(c);
                }
                groups.push((base.to_string(), columns));
            }
            None => {
                seen.insert(name.to_string());
                if let Some(c) = column(name) {
                    groups.push((name.to_string(), vec![c]));
                }
            }
        }
    }
    groups
}

fn number_at(column: &dyn arrow_array::Array, i: usize) -> Option<f64> {
    use arrow_array::{Float64Array, Int64Array};
    if column.is_null(i) {
        return Some(f64::NAN);
    }
    let any = column.as_any();
    any.downcast_ref::<Float64Array>()
        .map(|a| a.value(i))
        .or_else(|| any.downcast_ref::<Int64Array>().map(|a| a.value(i) as f64))
}

fn one_value(column: &dyn arrow_array::Array, i: usize) -> Option<TensorData> {
    use arrow_array::{BooleanArray, Float64Array, Int64Array, StringArray};
    if column.is_null(i) {
        return None;
    }
    let any = column.as_any();
    if let Some(a) = any.downcast_ref::<Float64Array>() {
        return Some(TensorData::F64(vec![a.value(i)]));
    }
    if let Some(a) = any.downcast_ref::<Int64Array>() {
        return Some(TensorData::I64(vec![a.value(i)]));
    }
    if let Some(a) = any.downcast_ref::<BooleanArray>() {
        return Some(TensorData::Bool(vec![a.value(i)]));
    }
    any.downcast_ref::<StringArray>()
        .map(|a| TensorData::Str(vec![a.value(i).to_string()]))
}
