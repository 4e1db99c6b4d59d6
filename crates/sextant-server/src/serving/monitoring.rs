//! Live monitoring of deployments: every prediction updates its model
//! version's window sketches and gets an outlier verdict, against the
//! deployment's reference profile.
//!
//! The reference comes from one of two places: a table uploaded through
//! `PUT /api/v1/deployments/{name}/monitoring/reference` (the training or
//! validation data), or, until one is uploaded, the first
//! [`REFERENCE_WINDOW_ROWS`] rows the deployment serves (a designated
//! reference window, as NannyML calls it). Profiles are stored in the
//! artifact store (`monitoring/<deployment>/profile.json`) and loaded again
//! when the deployment is served after a restart.
//!
//! The pure statistics live in `sextant_monitor::live`; this module maps
//! requests onto the profile's features and keeps one monitor per model
//! version of each deployment.

use std::collections::HashMap;
use std::sync::{Arc, Mutex, RwLock};
use std::time::Duration;

use arc_swap::ArcSwapOption;
use sextant_core::ModelRef;
use sextant_monitor::live::{
    FeatureBatch, FeatureColumn, LiveMonitor, MonitorConfig, MonitorReport, OutlierVerdict,
    PredictionValues, ReferenceProfile,
};
use sextant_serve::tensor::TensorData;
use sextant_serve::NamedTensor;

/// Rows of live traffic that become the reference when none was uploaded.
pub const REFERENCE_WINDOW_ROWS: usize = 1000;

/// Where a deployment's reference came from.
#[derive(Debug, Clone, serde::Serialize, serde::Deserialize)]
pub struct ReferenceSource {
    /// `upload` (a table sent by a user) or `window` (the first rows served).
    pub kind: String,
    /// The uploaded file's name, or a description of the window.
    pub description: String,
    /// Microseconds since the Unix epoch.
    pub created_us: i64,
}

/// A profile and its provenance, as stored in the artifact store.
#[derive(Clone, serde::Serialize, serde::Deserialize)]
pub struct StoredProfile {
    pub source: ReferenceSource,
    pub profile: ReferenceProfile,
}

/// Rows gathered until the reference window is full.
struct Collecting {
    /// Feature names of the first request, which every later row must match.
    names: Option<Vec<String>>,
    rows: Vec<f64>,
    predictions: Vec<f64>,
    count: usize,
}

/// Monitoring of one deployment.
pub struct DeploymentMonitor {
    name: String,
    profile: ArcSwapOption<StoredProfile>,
    collecting: Mutex<Collecting>,
    /// One monitor per model version (`name/version`), kept across revisions.
    versions: RwLock<HashMap<String, Arc<VersionMonitor>>>,
    config: MonitorConfig,
    /// Set once the stored profile was looked for.
    profile_loaded: std::sync::atomic::AtomicBool,
}

/// The monitor of one model version in one deployment.
pub struct VersionMonitor {
    pub model: ModelRef,
    monitor: ArcSwapOption<LiveMonitor>,
    /// The version's own reference: the training data logged with it (and
    /// the model's predictions on it). A version trained on other data than
    /// the one before it is compared with its own data, not the old one's.
    own_profile: ArcSwapOption<StoredProfile>,
    /// Set once the stored own reference was looked for.
    own_profile_loaded: std::sync::atomic::AtomicBool,
    /// The reference `monitor` was built from.
    in_use: ArcSwapOption<StoredProfile>,
    /// Where the profile's features are in requests of the last layout
    /// seen: requests of one deployment nearly always share a layout, so
    /// names are matched once, not per request.
    layout: ArcSwapOption<LayoutMapping>,
    /// The sampled predictions' explanations.
    pub explanations: super::explain::ExplanationMonitor,
}

/// The profile's features in one request layout.
struct LayoutMapping {
    /// (name, rank, row width) of each input tensor.
    signature: Vec<(String, usize, usize)>,
    /// Per profile feature: (tensor, stride, offset) of its values.
    sources: Vec<Option<(usize, usize, usize)>>,
    /// The monitor (and so the profile) it was made for.
    monitor: std::sync::Weak<LiveMonitor>,
}

impl LayoutMapping {
    fn matches(&self, inputs: &[NamedTensor], monitor: &Arc<LiveMonitor>) -> bool {
        std::ptr::eq(self.monitor.as_ptr(), Arc::as_ptr(monitor))
            && self.signature.len() == inputs.len()
            && self
                .signature
                .iter()
                .zip(inputs)
                .all(|((name, rank, width), input)| {
                    *name == input.name
                        && *rank == input.tensor.shape.len()
                        && *width == input.tensor.row_width()
                })
    }
}

impl VersionMonitor {
    /// The version's own reference, when it has one.
    pub fn own_profile(&self) -> Option<Arc<StoredProfile>> {
        self.own_profile.load_full()
    }

    /// True the first time only: the caller looks for a stored own profile.
    pub fn mark_own_profile_loaded(&self) -> bool {
        !self
            .own_profile_loaded
            .swap(true, std::sync::atomic::Ordering::AcqRel)
    }

    pub fn report(&self, now_us: i64, span: Duration) -> Option<MonitorReport> {
        self.monitor.load().as_ref().map(|m| m.report(now_us, span))
    }

    pub fn windows(
        &self,
        now_us: i64,
        span: Duration,
    ) -> Option<Vec<sextant_monitor::live::WindowSummary>> {
        self.monitor
            .load()
            .as_ref()
            .map(|m| m.windows(now_us, span))
    }
}

/// What a profile change asks the caller to persist.
pub enum ProfileEvent {
    /// The reference window filled up: store this profile.
    WindowComplete(Arc<StoredProfile>),
}

impl DeploymentMonitor {
    pub fn new(name: &str) -> DeploymentMonitor {
        DeploymentMonitor {
            name: name.to_string(),
            profile: ArcSwapOption::empty(),
            collecting: Mutex::new(Collecting {
                names: None,
                rows: Vec::new(),
                predictions: Vec::new(),
                count: 0,
            }),
            versions: RwLock::new(HashMap::new()),
            config: MonitorConfig::default(),
            profile_loaded: std::sync::atomic::AtomicBool::new(false),
        }
    }

    /// True the first time only: the caller looks for a stored profile.
    pub fn mark_profile_loaded(&self) -> bool {
        !self
            .profile_loaded
            .swap(true, std::sync::atomic::Ordering::AcqRel)
    }

    pub fn name(&self) -> &str {
        &self.name
    }

    pub fn profile(&self) -> Option<Arc<StoredProfile>> {
        self.profile.load_full()
    }

    /// Rows gathered towards the reference window so far.
    pub fn collected_rows(&self) -> usize {
        self.collecting.lock().expect("collecting lock").count
    }

    /// The reference `version` is compared with: a table a user gave the
    /// deployment (an upload or a named source) comes first, then the
    /// version's own training data, then whatever the deployment has (the
    /// first rows served).
    pub fn profile_of(&self, version: &VersionMonitor) -> Option<Arc<StoredProfile>> {
        let deployment = self.profile.load_full();
        let given_by_user = deployment
            .as_ref()
            .is_some_and(|p| matches!(p.source.kind.as_str(), "upload" | "source"));
        if given_by_user {
            return deployment;
        }
        version.own_profile.load_full().or(deployment)
    }

    /// Uses `profile` from now on: every version's windows start afresh
    /// (versions with a reference of their own keep it, unless a user gave
    /// this one).
    pub fn set_profile(&self, profile: Option<Arc<StoredProfile>>) {
        self.profile.store(profile);
        let versions = self.versions.read().expect("versions lock");
        for version in versions.values() {
            self.refresh(version);
        }
        let mut collecting = self.collecting.lock().expect("collecting lock");
        collecting.names = None;
        collecting.rows.clear();
        collecting.predictions.clear();
        collecting.count = 0;
    }

    /// Gives `model`'s version its own reference.
    pub fn set_version_profile(&self, model: &ModelRef, profile: Arc<StoredProfile>) {
        let version = self.version(model);
        version.own_profile.store(Some(profile));
        self.refresh(&version);
    }

    /// Starts `version`'s windows afresh against its effective reference,
    /// when that changed.
    fn refresh(&self, version: &VersionMonitor) {
        let profile = self.profile_of(version);
        let same = match (version.in_use.load().as_ref(), &profile) {
            (Some(used), Some(p)) => Arc::ptr_eq(used, p),
            (None, None) => true,
            _ => false,
        };
        if !same {
            version.monitor.store(
                profile
                    .as_ref()
                    .map(|p| Arc::new(LiveMonitor::new(p.profile.clone(), self.config.clone()))),
            );
            version.in_use.store(profile);
        }
    }

    /// The monitor of `model`, created on first use.
    pub fn version(&self, model: &ModelRef) -> Arc<VersionMonitor> {
        let key = model.to_string();
        if let Some(found) = self.versions.read().expect("versions lock").get(&key) {
            return found.clone();
        }
        let mut versions = self.versions.write().expect("versions lock");
        versions
            .entry(key)
            .or_insert_with(|| {
                let profile = self.profile.load_full();
                let monitor = profile
                    .as_ref()
                    .map(|p| Arc::new(LiveMonitor::new(p.profile.clone(), self.config.clone())));
                Arc::new(VersionMonitor {
                    model: model.clone(),
                    monitor: ArcSwapOption::new(monitor),
                    own_profile: ArcSwapOption::empty(),
                    own_profile_loaded: std::sync::atomic::AtomicBool::new(false),
                    in_use: ArcSwapOption::new(profile),
                    layout: ArcSwapOption::empty(),
                    explanations: Default::default(),
                })
            })
            .clone()
    }

    /// Every version monitored so far.
    pub fn versions(&self) -> Vec<Arc<VersionMonitor>> {
        let mut versions: Vec<_> = self
            .versions
            .read()
            .expect("versions lock")
            .values()
            .cloned()
            .collect();
        versions.sort_by(|a, b| a.model.to_string().cmp(&b.model.to_string()));
        versions
    }

    /// Records one request's rows for `version` and scores them; while the
    /// reference window is still filling, gathers them instead (no verdict).
    pub fn observe(
        &self,
        version: &VersionMonitor,
        now_us: i64,
        inputs: &[NamedTensor],
        feature_names: Option<&[String]>,
        outputs: Option<&[NamedTensor]>,
        default_output: usize,
    ) -> (Option<Vec<OutlierVerdict>>, Option<ProfileEvent>) {
        let rows = match inputs.first() {
            Some(first) if first.tensor.rows() > 0 => first.tensor.rows(),
            _ => return (None, None),
        };
        let prediction = outputs.and_then(|o| Prediction::of(o, default_output));
        // Guards, not clones: both worker threads read these on every
        // request, and a reference count would be a cache line they fight over.
        let monitor_guard = version.monitor.load();
        let Some(monitor) = monitor_guard.as_ref() else {
            let Some(features) = RequestFeatures::of(inputs, feature_names) else {
                return (None, None);
            };
            return (None, self.collect(&features, prediction.as_ref(), now_us));
        };
        let layout_guard = version.layout.load();
        let fresh_mapping;
        let mapping: &LayoutMapping = match layout_guard.as_ref() {
            Some(mapping) if mapping.matches(inputs, monitor) => mapping,
            _ => {
                let Some(features) = RequestFeatures::of(inputs, feature_names) else {
                    return (None, None);
                };
                fresh_mapping = Arc::new(features.layout_for(inputs, monitor));
                version.layout.store(Some(fresh_mapping.clone()));
                &fresh_mapping
            }
        };
        // Values go to the monitor as the request sent them: numbers
        // (feature-major in one buffer) or the request's own strings. The
        // monitor matches a number to a categorical feature's category, and
        // parses text sent for a numerical one.
        let mut numbers: Vec<f64> = Vec::new();
        let mut texts: Vec<Option<&str>> = Vec::new();
        enum Slot {
            Absent,
            Numbers(usize),
            Texts(usize),
        }
        let mut slots = Vec::with_capacity(mapping.sources.len());
        for source in &mapping.sources {
            let Some((tensor, stride, offset)) = *source else {
                slots.push(Slot::Absent);
                continue;
            };
            let index = |row: usize| row * stride + offset;
            match &inputs[tensor].tensor.data {
                TensorData::Str(values) => {
                    slots.push(Slot::Texts(texts.len()));
                    texts.extend((0..rows).map(|row| values.get(index(row)).map(String::as_str)));
                }
                TensorData::F64(values) => {
                    slots.push(Slot::Numbers(numbers.len()));
                    numbers.extend(
                        (0..rows).map(|row| values.get(index(row)).copied().unwrap_or(f64::NAN)),
                    );
                }
                data => {
                    slots.push(Slot::Numbers(numbers.len()));
                    numbers.extend((0..rows).map(|row| element_number(data, index(row))));
                }
            }
        }
        let columns = slots
            .iter()
            .map(|slot| match *slot {
                Slot::Absent => FeatureColumn::Absent,
                Slot::Numbers(start) => FeatureColumn::Numeric(&numbers[start..start + rows]),
                Slot::Texts(start) => FeatureColumn::Text(&texts[start..start + rows]),
            })
            .collect();
        let batch = FeatureBatch { rows, columns };
        let class_labels: Vec<&str>;
        let predictions = match &prediction {
            Some(Prediction::Numbers(values)) => PredictionValues::Numbers(values),
            Some(Prediction::Classes(labels)) => {
                class_labels = labels.iter().map(String::as_str).collect();
                PredictionValues::Classes(&class_labels)
            }
            None => PredictionValues::None,
        };
        (Some(monitor.observe(now_us, &batch, &predictions)), None)
    }

    /// Adds numeric rows to the reference window; builds the profile when
    /// it is full.
    fn collect(
        &self,
        features: &RequestFeatures<'_>,
        prediction: Option<&Prediction>,
        now_us: i64,
    ) -> Option<ProfileEvent> {
        let mut collecting = self.collecting.lock().expect("collecting lock");
        if collecting.count >= REFERENCE_WINDOW_ROWS {
            return None;
        }
        let names = features.numeric_names();
        if names.is_empty() {
            return None;
        }
        match &collecting.names {
            None => collecting.names = Some(names.clone()),
            // A request with other features than the window's first one
            // does not belong to the same reference.
            Some(first) if *first != names => return None,
            Some(_) => {}
        }
        let rows = features.rows;
        for row in 0..rows {
            if collecting.count >= REFERENCE_WINDOW_ROWS {
                break;
            }
            let start = collecting.rows.len();
            for feature in 0..names.len() {
                let value = features.numeric_value(feature, row);
                collecting.rows.push(value);
            }
            // A row equal to the one before is left out: health checks and
            // warm-up probes repeat one payload, and a reference made of
            // them would call all real traffic drifted.
            let width = names.len();
            if start >= width {
                let (before, this) = collecting.rows.split_at(start);
                let previous = &before[start - width..];
                if previous
                    .iter()
                    .zip(this)
                    .all(|(a, b)| a.to_bits() == b.to_bits())
                {
                    collecting.rows.truncate(start);
                    continue;
                }
            }
            if let Some(Prediction::Numbers(values)) = prediction {
                if let Some(&value) = values.get(row) {
                    collecting.predictions.push(value);
                }
            }
            collecting.count += 1;
        }
        if collecting.count < REFERENCE_WINDOW_ROWS {
            return None;
        }
        let predictions = if collecting.predictions.len() == collecting.count {
            collecting.predictions.as_slice()
        } else {
            &[]
        };
        let profile = match ReferenceProfile::from_rows(&names, &collecting.rows, predictions) {
            Ok(profile) => profile,
            Err(err) => {
                tracing::warn!(deployment = %self.name, cause = %err, "cannot build a reference from the first rows");
                return None;
            }
        };
        let stored = Arc::new(StoredProfile {
            source: ReferenceSource {
                kind: "window".into(),
                description: format!("the first {REFERENCE_WINDOW_ROWS} rows served"),
                created_us: now_us,
            },
            profile,
        });
        drop(collecting);
        tracing::info!(deployment = %self.name, rows = REFERENCE_WINDOW_ROWS, "reference window complete");
        self.set_profile(Some(stored.clone()));
        Some(ProfileEvent::WindowComplete(stored))
    }
}

/// A request's inputs seen as named feature columns.
struct RequestFeatures<'a> {
    rows: usize,
    columns: Vec<RequestColumn<'a>>,
}

struct RequestColumn<'a> {
    name: std::borrow::Cow<'a, str>,
    /// Index of its tensor in the request's inputs.
    tensor: usize,
    data: &'a TensorData,
    /// Element `row * stride + offset`.
    stride: usize,
    offset: usize,
}

impl<'a> RequestFeatures<'a> {
    /// Columns of 1-D tensors by their names; one matrix by the model's
    /// feature names, or `<input>_<k>` when it has none.
    fn of(inputs: &'a [NamedTensor], feature_names: Option<&'a [String]>) -> Option<Self> {
        let rows = inputs.first()?.tensor.rows();
        if rows == 0 {
            return None;
        }
        let mut columns = Vec::new();
        if let [only] = inputs {
            if only.tensor.shape.len() == 2 {
                let width = only.tensor.row_width();
                for k in 0..width {
                    let name = match feature_names {
                        Some(names) if names.len() == width => {
                            std::borrow::Cow::Borrowed(names[k].as_str())
                        }
                        _ => std::borrow::Cow::Owned(format!("{}_{k}", only.name)),
                    };
                    columns.push(RequestColumn {
                        name,
                        tensor: 0,
                        data: &only.tensor.data,
                        stride: width,
                        offset: k,
                    });
                }
                return Some(RequestFeatures { rows, columns });
            }
        }
        for (tensor, input) in inputs.iter().enumerate() {
            if input.tensor.rows() != rows || input.tensor.row_width() != 1 {
                continue;
            }
            columns.push(RequestColumn {
                name: std::borrow::Cow::Borrowed(input.name.as_str()),
                tensor,
                data: &input.tensor.data,
                stride: 1,
                offset: 0,
            });
        }
        (!columns.is_empty()).then_some(RequestFeatures { rows, columns })
    }

    /// Where `monitor`'s profile features are in requests shaped like `inputs`.
    fn layout_for(&self, inputs: &[NamedTensor], monitor: &Arc<LiveMonitor>) -> LayoutMapping {
        let mapping = self.map_to(monitor.profile());
        LayoutMapping {
            signature: inputs
                .iter()
                .map(|i| (i.name.clone(), i.tensor.shape.len(), i.tensor.row_width()))
                .collect(),
            sources: mapping
                .sources
                .iter()
                .map(|source| {
                    source.map(|i| {
                        let column = &self.columns[i];
                        (column.tensor, column.stride, column.offset)
                    })
                })
                .collect(),
            monitor: Arc::downgrade(monitor),
        }
    }

    fn numeric_names(&self) -> Vec<String> {
        self.columns
            .iter()
            .filter(|c| !matches!(c.data, TensorData::Str(_)))
            .map(|c| c.name.to_string())
            .collect()
    }

    /// The `feature`-th numeric column's value at `row`.
    fn numeric_value(&self, feature: usize, row: usize) -> f64 {
        let column = self
            .columns
            .iter()
            .filter(|c| !matches!(c.data, TensorData::Str(_)))
            .nth(feature)
            .expect("feature index within the numeric columns");
        column.number(row)
    }

    /// Which request column feeds each profile feature: by name, or by
    /// position when the request is one unnamed matrix as wide as the
    /// profile.
    fn map_to(&self, profile: &ReferenceProfile) -> Mapping {
        let features = profile.features();
        let by_name: Vec<Option<usize>> = features
            .iter()
            .map(|f| self.columns.iter().position(|c| c.name == f.name))
            .collect();
        let matched = by_name.iter().filter(|i| i.is_some()).count();
        if matched == 0 && self.columns.len() == features.len() {
            return Mapping {
                sources: (0..features.len()).map(Some).collect(),
            };
        }
        Mapping { sources: by_name }
    }
}

impl RequestColumn<'_> {
    fn number(&self, row: usize) -> f64 {
        let index = row * self.stride + self.offset;
        if index >= self.data.len() {
            return f64::NAN;
        }
        self.data.get_f64(index).unwrap_or(f64::NAN)
    }
}

struct Mapping {
    sources: Vec<Option<usize>>,
}

/// Element `index` of a numeric or boolean tensor, NaN for text or past the end.
fn element_number(data: &TensorData, index: usize) -> f64 {
    if index >= data.len() {
        return f64::NAN;
    }
    data.get_f64(index).unwrap_or(f64::NAN)
}

/// The model's output as monitoring sees it: a number per row (a
/// regression value, or the positive class's probability of a binary
/// classifier) or a class per row (labels, or the most probable column of
/// a multi-class probability matrix).
enum Prediction {
    Numbers(Vec<f64>),
    Classes(Vec<String>),
}

impl Prediction {
    fn of(outputs: &[NamedTensor], default_output: usize) -> Option<Prediction> {
        let output = outputs.get(default_output).or(outputs.first())?;
        let tensor = &output.tensor;
        let rows = tensor.rows();
        let width = tensor.row_width().max(1);
        if let TensorData::Str(labels) = &tensor.data {
            return Some(Prediction::Classes(
                (0..rows).map(|r| labels[r * width].clone()).collect(),
            ));
        }
        match width {
            1 => Some(Prediction::Numbers(
                (0..rows)
                    .map(|r| tensor.data.get_f64(r).unwrap_or(f64::NAN))
                    .collect(),
            )),
            2 => Some(Prediction::Numbers(
                (0..rows)
                    .map(|r| tensor.data.get_f64(r * 2 + 1).unwrap_or(f64::NAN))
                    .collect(),
            )),
            _ => Some(Prediction::Classes(
                (0..rows)
                    .map(|r| {
                        let best = (0..width)
                            .max_by(|&a, &b| {
                                let value =
                                    |k| tensor.data.get_f64(r * width + k).unwrap_or(f64::NAN);
                                value(a).total_cmp(&value(b))
                            })
                            .unwrap_or(0);
                        best.to_string()
                    })
                    .collect(),
            )),
        }
    }
}

/// Every deployment's monitoring in this process.
#[derive(Default)]
pub struct Monitoring {
    deployments: RwLock<HashMap<String, Arc<DeploymentMonitor>>>,
}

impl Monitoring {
    /// The monitor of `deployment`, created on first use.
    pub fn deployment(&self, deployment: &str) -> Arc<DeploymentMonitor> {
        if let Some(found) = self
            .deployments
            .read()
            .expect("monitoring lock")
            .get(deployment)
        {
            return found.clone();
        }
        self.deployments
            .write()
            .expect("monitoring lock")
            .entry(deployment.to_string())
            .or_insert_with(|| Arc::new(DeploymentMonitor::new(deployment)))
            .clone()
    }

    pub fn existing(&self, deployment: &str) -> Option<Arc<DeploymentMonitor>> {
        self.deployments
            .read()
            .expect("monitoring lock")
            .get(deployment)
            .cloned()
    }

    pub fn remove(&self, deployment: &str) {
        self.deployments
            .write()
            .expect("monitoring lock")
            .remove(deployment);
    }

    pub fn all(&self) -> Vec<Arc<DeploymentMonitor>> {
        let mut all: Vec<_> = self
            .deployments
            .read()
            .expect("monitoring lock")
            .values()
            .cloned()
            .collect();
        all.sort_by(|a, b| a.name.cmp(&b.name));
        all
    }
}

/// Where a deployment's profile is stored in the artifact store.
pub fn profile_path(deployment: &str) -> String {
    format!("monitoring/{deployment}/profile.json")
}

/// Where the reference of one model version in a deployment is stored
/// (model names may hold any character: the name is hex-encoded).
pub fn version_profile_path(deployment: &str, model: &ModelRef) -> String {
    format!(
        "monitoring/{deployment}/versions/{}/{}.json",
        hex_name(model),
        model.version
    )
}

/// A model's name as a path segment (names may hold any character).
pub fn hex_name(model: &ModelRef) -> String {
    model.name.bytes().map(|b| format!("{b:02x}")).collect()
}

/// The span `/metrics` reports drift over.
const METRICS_SPAN: Duration = Duration::from_secs(3600);

/// Monitoring gauges in Prometheus' text format: per deployment and model
/// version over the last hour, the rows seen, the outlier rate, the number
/// of drifted features, and per feature its PSI, Jensen-Shannon distance
/// and missing share (and the same for the prediction); for the sampled
/// explanations, each feature's mean |SHAP| and attribution drift, and the
/// version's explanation drift.
pub fn render_metrics(monitors: &[Arc<DeploymentMonitor>], now_us: i64) -> String {
    use std::fmt::Write;
    let mut rows = String::new();
    let mut outliers = String::new();
    let mut drifted = String::new();
    let mut psi = String::new();
    let mut js = String::new();
    let mut missing = String::new();
    let mut prediction_psi = String::new();
    let mut importance = String::new();
    let mut attribution_drift = String::new();
    let mut explanation_drift = String::new();
    for monitor in monitors {
        for version in monitor.versions() {
            let labels = format!(
                "deployment=\"{}\",model=\"{}\",version=\"{}\"",
                escape_label(monitor.name()),
                escape_label(&version.model.name),
                version.model.version
            );
            // Explanations need no reference profile.
            if let Some(explained) = version.explanations.report(now_us, METRICS_SPAN) {
                // NaN (no rows after the reference yet) is left out.
                if explained.drift.is_finite() {
                    let _ = writeln!(
                        explanation_drift,
                        "sextant_monitor_explanation_drift{{{labels}}} {}",
                        explained.drift
                    );
                }
                for feature in &explained.features {
                    let feature_labels =
                        format!("{labels},feature=\"{}\"", escape_label(&feature.name));
                    if feature.mean_abs_shap.is_finite() {
                        let _ = writeln!(
                            importance,
                            "sextant_monitor_feature_mean_abs_shap{{{feature_labels}}} {}",
                            feature.mean_abs_shap
                        );
                    }
                    if feature.drift.is_finite() {
                        let _ = writeln!(
                            attribution_drift,
                            "sextant_monitor_feature_shap_drift{{{feature_labels}}} {}",
                            feature.drift
                        );
                    }
                }
            }
            let Some(report) = version.report(now_us, METRICS_SPAN) else {
                continue;
            };
            let _ = writeln!(rows, "sextant_monitor_rows{{{labels}}} {}", report.rows);
            let _ = writeln!(
                outliers,
                "sextant_monitor_outlier_rate{{{labels}}} {}",
                report.outlier_rate
            );
            let _ = writeln!(
                drifted,
                "sextant_monitor_drifted_features{{{labels}}} {}",
                report.drifted_features
            );
            for feature in &report.features {
                let feature_labels =
                    format!("{labels},feature=\"{}\"", escape_label(&feature.name));
                let _ = writeln!(
                    psi,
                    "sextant_monitor_feature_psi{{{feature_labels}}} {}",
                    feature.psi
                );
                let _ = writeln!(
                    js,
                    "sextant_monitor_feature_jensen_shannon{{{feature_labels}}} {}",
                    feature.jensen_shannon
                );
                let _ = writeln!(
                    missing,
                    "sextant_monitor_feature_missing_share{{{feature_labels}}} {}",
                    feature.missing_share
                );
            }
            if let Some(prediction) = &report.prediction {
                let _ = writeln!(
                    prediction_psi,
                    "sextant_monitor_prediction_psi{{{labels}}} {}",
                    prediction.psi
                );
            }
        }
    }
    let mut text = String::new();
    for (name, help, body) in [
        (
            "sextant_monitor_rows",
            "Rows seen in the last hour, by deployment and model version.",
            rows,
        ),
        (
            "sextant_monitor_outlier_rate",
            "Share of rows flagged as outliers in the last hour.",
            outliers,
        ),
        (
            "sextant_monitor_drifted_features",
            "Features whose last-hour distribution drifted from the reference.",
            drifted,
        ),
        (
            "sextant_monitor_feature_psi",
            "Population stability index of a feature, last hour against the reference.",
            psi,
        ),
        (
            "sextant_monitor_feature_jensen_shannon",
            "Jensen-Shannon distance (bits) of a feature, last hour against the reference.",
            js,
        ),
        (
            "sextant_monitor_feature_missing_share",
            "Share of missing values of a feature in the last hour.",
            missing,
        ),
        (
            "sextant_monitor_prediction_psi",
            "Population stability index of the prediction, last hour against the reference.",
            prediction_psi,
        ),
        (
            "sextant_monitor_feature_mean_abs_shap",
            "Mean |SHAP value| of a feature over the answers explained in the last hour (global importance).",
            importance,
        ),
        (
            "sextant_monitor_feature_shap_drift",
            "Kolmogorov-Smirnov distance of a feature's SHAP values, last hour against the first explained answers.",
            attribution_drift,
        ),
        (
            "sextant_monitor_explanation_drift",
            "Largest drifted feature's SHAP-value KS distance in the last hour (0 when none drifted).",
            explanation_drift,
        ),
    ] {
        if body.is_empty() {
            continue;
        }
        let _ = writeln!(text, "# HELP {name} {help}\n# TYPE {name} gauge");
        text.push_str(&body);
    }
    text
}

fn escape_label(value: &str) -> String {
    value
        .replace('\\', "\\\\")
        .replace('"', "\\\"")
        .replace('\n', "\\n")
}
