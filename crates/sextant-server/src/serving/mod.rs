//! Serving: deployments of registered model versions answering inference
//! requests.
//!
//! [`Serving`] holds what a process serves. Each deployment is a
//! [`LiveDeployment`] snapshot (its arms with their loaded models and
//! counters) behind an atomic pointer: a request loads the snapshot once
//! and uses it to the end, and a change builds the next snapshot (loading
//! and warming up every new version first) and swaps it in, so no request
//! is dropped and a version that fails to load leaves the deployment as it
//! was.
//!
//! The same machinery runs in three places, told apart by [`Source`]:
//! inside `sextant server` (the registry and artifact store are local), in
//! a replica (`sextant serve --server URL`, which pulls specs and model
//! files over HTTP and follows changes), and in a container image (a bundle
//! of specs and model files on disk).

pub mod abuse;
mod codec;
pub mod controller;
pub mod explain;
pub mod feedback;
pub mod follow;
mod loader;
pub mod monitoring;
pub(crate) mod predlog;
pub mod progress;
pub(crate) mod replica_auth;
pub(crate) mod source;
mod stats;
pub mod traffic;

use std::collections::HashMap;
use std::path::PathBuf;
use std::sync::atomic::Ordering::Relaxed;
use std::sync::{Arc, Mutex, RwLock};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use arc_swap::ArcSwap;
use sextant_api::deployments::{self as dto, ArmCounters};
use sextant_core::{ArmRole, DeploymentSpec, ModelRef, Policy};
use sextant_serve::model::Layout;
use sextant_serve::{Background, CallCost, NamedTensor};
use tokio::sync::Semaphore;

pub use self::codec::BadRequest;
pub(crate) use self::codec::{
    mlflow_predictions, oip_binary_output, oip_inputs, oip_output, scoring_json_with_params,
    ScoringParams,
};
pub use self::codec::{
    scoring_csv as read_csv_columns, scoring_delimited as read_delimited_columns,
};
pub use self::loader::LoadedVersion;
use self::loader::ModelCache;
pub use self::predlog::{LogSink, PredictionLog, PredictionLogConfig};
pub use self::source::{
    artifact_root, bundle_model_dir, list_tree, RemoteServer, Source, BUNDLE_SPEC,
};
pub use self::stats::add_counters;
pub use self::stats::{quantile_ms, Metrics, Outcome};
use self::stats::{ArmLabels, Counters};

/// How a process serves.
#[derive(Debug, Clone)]
pub struct ServingConfig {
    /// Where model files are unpacked and Python workers keep their files.
    pub cache_dir: PathBuf,
    /// How Python-only models are run; `None` refuses them.
    pub python: Option<sextant_serve::python::PythonSetup>,
    /// Requests running on the blocking pool at once (Python models, large
    /// batches); beyond that callers get 503.
    pub max_blocking: usize,
    /// A name for this process in replica reports and log file names.
    pub replica_name: String,
    /// Rows of recent answers kept in memory for joining labels; older
    /// ones are found in the prediction log.
    pub feedback_index_rows: usize,
    /// Share of monitored requests explained in the background, for global
    /// importance and explanation drift (0 turns it off).
    pub explain_sample_rate: f64,
    /// Share of one core the background explainer may use (0 to 1).
    pub explain_core_share: f64,
}

/// One arm of a live deployment.
pub struct LiveArm {
    pub name: String,
    pub role: ArmRole,
    pub weight: u32,
    pub model: Arc<LoadedVersion>,
    /// Prometheus counters of (deployment, arm, model version).
    counters: Arc<Counters>,
    /// Counters of this revision only (canary health, replica reports).
    revision_counters: Arc<Counters>,
    /// The arm's name and model, shared with every prediction-log record.
    log_name: Arc<str>,
    log_model: Arc<ModelRef>,
    /// This model version's live monitor in this deployment.
    monitor: Arc<monitoring::VersionMonitor>,
}

impl LiveArm {
    pub fn model_ref(&self) -> &ModelRef {
        &self.model.model_ref
    }

    /// This arm's model version's monitor in its deployment.
    pub fn monitor(&self) -> &Arc<monitoring::VersionMonitor> {
        &self.monitor
    }
}

/// A deployment as this process serves it at one revision.
pub struct LiveDeployment {
    pub name: String,
    pub revision: i64,
    pub spec: DeploymentSpec,
    pub arms: Vec<LiveArm>,
    /// Cumulative weights of the live arms, paired with their index.
    cumulative: Vec<(u32, usize)>,
    shadow: Option<(usize, u32)>,
    sticky_header: Option<String>,
    /// The deployment's in-flight gauge, resolved once per snapshot.
    in_flight: Arc<std::sync::atomic::AtomicI64>,
    /// The name, shared with every prediction-log record.
    log_name: Arc<str>,
    /// Drift and outlier monitoring, shared by every revision.
    monitor: Arc<monitoring::DeploymentMonitor>,
}

/// Which arm answers, and why.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Pick {
    /// Chosen by the deployment's policy.
    Routed(usize),
    /// Named by the request (`/versions/{v}`).
    Pinned(usize),
}

impl Pick {
    pub fn index(self) -> usize {
        match self {
            Pick::Routed(i) | Pick::Pinned(i) => i,
        }
    }
}

impl LiveDeployment {
    /// The arm for a request. `version` pins a model version (OIP's
    /// `/versions/{v}` paths); otherwise A/B tests hash `sticky_key` (so a
    /// caller stays on one arm) and canaries draw at random.
    pub fn choose(&self, version: Option<&str>, sticky_key: Option<&str>) -> Option<Pick> {
        if let Some(version) = version {
            return self
                .arms
                .iter()
                .position(|arm| arm.model.model_ref.version.to_string() == version)
                .map(Pick::Pinned);
        }
        if self.cumulative.len() == 1 {
            return Some(Pick::Routed(self.cumulative[0].1));
        }
        let bucket = match (&self.spec.policy, sticky_key) {
            (Policy::AbTest(_), Some(key)) => sticky_bucket(&self.name, key),
            _ => (random_u64() % 100) as u32,
        };
        self.cumulative
            .iter()
            .find(|(upper, _)| bucket < *upper)
            .or(self.cumulative.last())
            .map(|(_, i)| Pick::Routed(*i))
    }

    /// The header an A/B test is sticky on, if the policy names one.
    pub fn sticky_header(&self) -> Option<&str> {
        self.sticky_header.as_deref()
    }

    pub fn is_ab_test(&self) -> bool {
        matches!(self.spec.policy, Policy::AbTest(_))
    }

    /// The shadow arm, when this request (drawn at the shadow's percentage)
    /// should be copied to it.
    pub fn shadow_for_request(&self) -> Option<&LiveArm> {
        let (index, percent) = self.shadow?;
        ((random_u64() % 100) < u64::from(percent)).then(|| &self.arms[index])
    }

    /// Counters of this revision, by arm.
    pub fn revision_counters(&self) -> Vec<(String, ArmCounters)> {
        self.arms
            .iter()
            .map(|a| (a.name.clone(), a.revision_counters.snapshot()))
            .collect()
    }
}

/// FNV-1a of `deployment/key`, finished with splitmix64's mixer so that
/// near-identical keys spread, then reduced to a bucket 0..100. Stable
/// across processes and builds, so every replica sends a caller to the same
/// arm.
fn sticky_bucket(deployment: &str, key: &str) -> u32 {
    let mut hash: u64 = 0xcbf2_9ce4_8422_2325;
    for byte in deployment.bytes().chain([b'/']).chain(key.bytes()) {
        hash ^= u64::from(byte);
        hash = hash.wrapping_mul(0x0000_0100_0000_01b3);
    }
    (mix64(hash) % 100) as u32
}

/// splitmix64's output function.
fn mix64(mut z: u64) -> u64 {
    z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
    z ^ (z >> 31)
}

thread_local! {
    /// splitmix64 state, seeded per thread from the std hasher's random keys.
    static RNG: std::cell::Cell<u64> = std::cell::Cell::new({
        use std::hash::{BuildHasher, Hasher};
        let mut hasher = std::collections::hash_map::RandomState::new().build_hasher();
        hasher.write_u64(SystemTime::now().duration_since(UNIX_EPOCH).map_or(0, |d| d.as_nanos() as u64));
        hasher.finish()
    });
}

/// A fast non-cryptographic random number (traffic splits, sampling, ids).
pub fn random_u64() -> u64 {
    RNG.with(|state| {
        let next = state.get().wrapping_add(0x9e37_79b9_7f4a_7c15);
        state.set(next);
        mix64(next)
    })
}

/// A random (version 4) UUID, for prediction ids.
pub fn prediction_id() -> String {
    let (high, low) = (random_u64(), random_u64());
    let high = (high & 0xffff_ffff_ffff_0fff) | 0x0000_0000_0000_4000;
    let low = (low & 0x3fff_ffff_ffff_ffff) | 0x8000_0000_0000_0000;
    // Hex digits written directly: `format!` was a measurable share of a
    // request's CPU.
    const HEX: &[u8; 16] = b"0123456789abcdef";
    let mut text = [0u8; 36];
    let mut at = 0;
    for (i, byte) in high
        .to_be_bytes()
        .into_iter()
        .chain(low.to_be_bytes())
        .enumerate()
    {
        if matches!(i, 4 | 6 | 8 | 10) {
            text[at] = b'-';
            at += 1;
        }
        text[at] = HEX[usize::from(byte >> 4)];
        text[at + 1] = HEX[usize::from(byte & 0xf)];
        at += 2;
    }
    String::from_utf8(text.to_vec()).expect("hex digits and dashes are ASCII")
}

/// A deployment's slot: the snapshot being served and what became of the
/// latest change.
pub struct DeploymentSlot {
    live: ArcSwap<LiveDeployment>,
    /// The latest revision seen and, if it could not be served, why.
    latest: Mutex<(i64, Option<String>)>,
}

impl DeploymentSlot {
    pub fn live(&self) -> Arc<LiveDeployment> {
        self.live.load_full()
    }

    pub fn latest(&self) -> (i64, Option<String>) {
        self.latest.lock().expect("slot lock").clone()
    }
}

/// Why a prediction failed.
#[derive(Debug)]
pub enum PredictFailure {
    /// The request does not fit the model (4xx).
    Input(String),
    /// No capacity now (503).
    Overloaded(String),
    /// The model or its worker failed (5xx); the message is safe to show.
    Model(String),
}

impl From<sextant_serve::Error> for PredictFailure {
    fn from(err: sextant_serve::Error) -> PredictFailure {
        use sextant_serve::Error;
        match err {
            Error::Input(message) => PredictFailure::Input(message),
            Error::Overloaded(message) => PredictFailure::Overloaded(message),
            Error::Worker(message) => {
                PredictFailure::Model(format!("the model's worker failed: {message}"))
            }
            other => {
                tracing::error!(cause = %other, "prediction failed");
                PredictFailure::Model(
                    "the model failed to predict; the server log has the details".into(),
                )
            }
        }
    }
}

/// What a prediction returns, beyond the outputs.
pub struct Answer {
    pub outputs: Vec<NamedTensor>,
    pub prediction_id: String,
    pub arm: String,
    pub model: ModelRef,
    pub default_output: usize,
    pub engine: &'static str,
    /// A verdict per row against the deployment's reference (none while
    /// the reference window is still filling).
    pub outliers: Option<Vec<sextant_monitor::live::OutlierVerdict>>,
}

/// Requests with at most this many rows run on the I/O thread when the
/// engine is cheap (native trees take a few µs a row); bigger ones, and
/// every Python call, go to the blocking pool.
const INLINE_ROWS: usize = 64;

/// Everything a process serves; cheap to clone.
#[derive(Clone)]
pub struct Serving {
    inner: Arc<ServingInner>,
}

struct ServingInner {
    config: ServingConfig,
    source: Source,
    deployments: RwLock<HashMap<String, Arc<DeploymentSlot>>>,
    models: ModelCache,
    metrics: Arc<Metrics>,
    log: PredictionLog,
    blocking: Arc<Semaphore>,
    shadow: tokio::sync::mpsc::Sender<ShadowJob>,
    /// Sampled answers waiting to be explained.
    explain_queue: tokio::sync::mpsc::Sender<ExplainJob>,
    /// Monitored requests so far, for sampling every n-th.
    monitored: std::sync::atomic::AtomicU64,
    /// Latest report of each replica, by deployment.
    reports: Mutex<HashMap<String, HashMap<String, (Instant, dto::ReplicaReport)>>>,
    /// Serialises changes per process, so snapshots are built one at a time.
    changes: tokio::sync::Mutex<()>,
    /// Turns true at shutdown: background loops end.
    stop: tokio::sync::watch::Sender<bool>,
    /// Background loops (shadow runner, prediction log writer, controllers),
    /// joined at shutdown.
    tasks: Mutex<tokio::task::JoinSet<()>>,
    booted: std::sync::atomic::AtomicBool,
    monitoring: monitoring::Monitoring,
    /// Recent answers, for joining ground-truth labels to them.
    feedback: Arc<feedback::PredictionIndex>,
    /// Callers watched for abuse and model extraction.
    abuse: Arc<abuse::AbuseMonitor>,
    /// Each deployment's traffic over the last hour, for the UI.
    traffic: traffic::TrafficHistory,
    /// Whether this server leads the background work several servers on
    /// one database must do once (unset: a replica, which does none).
    leadership: std::sync::OnceLock<sextant_store::Leadership>,
    /// Stages of the changes callers are waiting for.
    progress: progress::ProgressBoard,
}

struct ShadowJob {
    live: Arc<LiveDeployment>,
    arm: usize,
    inputs: Vec<NamedTensor>,
    layout: Layout,
    prediction_id: String,
    caller: Option<String>,
}

/// A sampled answer to explain in the background.
struct ExplainJob {
    live: Arc<LiveDeployment>,
    arm: usize,
    inputs: Vec<NamedTensor>,
    layout: Layout,
}

/// Rows of one sampled request explained at most (a batch of thousands
/// would take the explainer's core for long).
const EXPLAINED_ROWS_PER_REQUEST: usize = 8;

impl Serving {
    /// A serving state with nothing deployed yet. Its background tasks run
    /// until [`Serving::shutdown`].
    pub fn new(config: ServingConfig, source: Source, mut log: PredictionLogConfig) -> Serving {
        let metrics = Arc::new(Metrics::default());
        let mut tasks = tokio::task::JoinSet::new();
        let feedback = Arc::new(feedback::PredictionIndex::new(config.feedback_index_rows));
        log.index = Some(feedback.clone());
        let abuse = Arc::new(abuse::AbuseMonitor::default());
        log.abuse = Some(abuse.clone());
        let log = PredictionLog::start(log, metrics.clone(), &mut tasks);
        let (shadow, shadow_queue) = tokio::sync::mpsc::channel(1024);
        let (explain_queue, explain_jobs) = tokio::sync::mpsc::channel(64);
        let serving = Serving {
            inner: Arc::new(ServingInner {
                models: ModelCache::new(
                    config.cache_dir.clone(),
                    config.python.clone(),
                    metrics.clone(),
                ),
                blocking: Arc::new(Semaphore::new(config.max_blocking.max(1))),
                config,
                source,
                deployments: RwLock::new(HashMap::new()),
                metrics,
                log,
                shadow,
                explain_queue,
                monitored: std::sync::atomic::AtomicU64::new(0),
                reports: Mutex::new(HashMap::new()),
                changes: tokio::sync::Mutex::new(()),
                stop: tokio::sync::watch::channel(false).0,
                booted: std::sync::atomic::AtomicBool::new(false),
                monitoring: monitoring::Monitoring::default(),
                feedback,
                abuse,
                traffic: traffic::TrafficHistory::default(),
                leadership: std::sync::OnceLock::new(),
                progress: progress::ProgressBoard::default(),
                tasks: Mutex::new(tokio::task::JoinSet::new()),
            }),
        };
        tasks.spawn(serving.clone().run_shadows(shadow_queue));
        tasks.spawn(serving.clone().run_explanations(explain_jobs));
        *serving.inner.tasks.lock().expect("tasks lock") = tasks;
        serving
    }

    /// Serving inside `sextant server`: models come from this process's
    /// registry and artifact store, predictions are logged there, stored
    /// deployments load in the background (and changes other servers on
    /// the database make are followed), and the canary controller runs
    /// every `canary_period`.
    pub fn embedded(
        store: sextant_store::Store,
        artifacts: sextant_artifacts::ArtifactStore,
        config: ServingConfig,
        canary_period: Duration,
    ) -> Serving {
        let log = PredictionLogConfig::new(
            LogSink::Artifacts(artifacts.clone()),
            config.replica_name.clone(),
        );
        let source = Source::Local {
            store: store.clone(),
            artifacts,
        };
        let started_us = now_micros();
        let leadership = store.leadership("background", sextant_store::LEADER_PERIOD);
        let serving = Serving::new(config, source, log);
        let _ = serving.inner.leadership.set(leadership);
        let (sampler, mut sampler_stopped) = (serving.clone(), serving.stopped());
        serving.spawn(async move {
            let mut ticks = tokio::time::interval(traffic::SAMPLE_PERIOD);
            loop {
                tokio::select! {
                    _ = ticks.tick() => sampler.sample_traffic(),
                    _ = sampler_stopped.changed() => break,
                }
            }
        });
        let (loader, stopped) = (serving.clone(), serving.stopped());
        serving.spawn(async move {
            controller::load_stored(&store, &loader).await;
            loader.restore_feedback_index(&store, started_us).await;
            loader.set_booted();
            tokio::join!(
                controller::follow_stored(
                    store.clone(),
                    loader.clone(),
                    controller::FOLLOW_STORED_PERIOD,
                    stopped.clone(),
                ),
                controller::drive_canaries(store, loader, canary_period, stopped),
            );
        });
        serving
    }

    /// Refills the index of recent answers from the prediction log of
    /// every stored deployment (what this process answered before
    /// `started_us` was lost with the previous one).
    async fn restore_feedback_index(&self, store: &sextant_store::Store, started_us: i64) {
        let Source::Local { artifacts, .. } = &self.inner.source else {
            return;
        };
        let Ok(records) = store.list_deployments(&sextant_core::Readable::All).await else {
            return;
        };
        for record in records {
            let restored = feedback::restore_from_log(
                &self.inner.feedback,
                artifacts,
                &record.name,
                started_us,
            )
            .await;
            if restored > 0 {
                tracing::info!(
                    deployment = record.name,
                    predictions = restored,
                    "recent predictions restored from the prediction log"
                );
            }
        }
    }

    /// Samples every deployment's counters into its traffic history.
    pub fn sample_traffic(&self) {
        let names = self.deployment_names();
        let now_ms = now_micros() / 1000;
        for name in &names {
            if let Some(slot) = self.deployment(name) {
                self.inner
                    .traffic
                    .record(name, now_ms, slot.live().revision_counters());
            }
        }
        self.inner.traffic.retain(&names);
    }

    /// A deployment's traffic per arm over the last hour.
    pub fn traffic(&self, deployment: &str) -> Vec<(String, Vec<traffic::Interval>)> {
        self.inner.traffic.intervals(deployment)
    }

    /// Whether this process runs the background work that servers sharing
    /// a database run once (alert evaluation, retraining schedules, the
    /// canary controller): the leader does; a lone server always leads.
    pub fn leads_background_work(&self) -> bool {
        self.inner
            .leadership
            .get()
            .is_none_or(sextant_store::Leadership::is_leader)
    }

    /// `sextant_leader` for `/metrics` (servers only).
    pub fn leader_metric(&self) -> Option<String> {
        self.inner.leadership.get().map(|leadership| {
            format!(
                "# HELP sextant_leader 1 when this server leads the background work (alerts, retraining schedules, canaries) of the servers sharing its database.\n\
                 # TYPE sextant_leader gauge\nsextant_leader {}\n",
                u8::from(leadership.is_leader())
            )
        })
    }

    /// Runs `task` until shutdown (it should watch [`Serving::stopped`]).
    pub fn spawn(&self, task: impl std::future::Future<Output = ()> + Send + 'static) {
        self.inner.tasks.lock().expect("tasks lock").spawn(task);
    }

    /// A receiver that turns true when the process shuts down.
    pub fn stopped(&self) -> tokio::sync::watch::Receiver<bool> {
        self.inner.stop.subscribe()
    }

    /// Ends the background loops, writes the prediction log's buffer and
    /// waits for every task.
    pub async fn shutdown(&self) {
        let _ = self.inner.stop.send(true);
        self.inner.log.flush().await;
        self.inner.log.shutdown();
        let mut tasks = std::mem::take(&mut *self.inner.tasks.lock().expect("tasks lock"));
        while tasks.join_next().await.is_some() {}
        if let Some(leadership) = self.inner.leadership.get() {
            leadership.release();
        }
    }

    /// Marks the initial load done: readiness now depends on the
    /// deployments alone.
    pub fn set_booted(&self) {
        self.inner.booted.store(true, Relaxed);
    }

    pub fn source(&self) -> &Source {
        &self.inner.source
    }

    /// A model version loaded (or already loaded) on this server's engines,
    /// for work outside a deployment (validations).
    pub(crate) async fn load_version(
        &self,
        model: &ModelRef,
    ) -> Result<Arc<loader::LoadedVersion>, String> {
        self.inner
            .models
            .get_or_load(&self.inner.source, model, 1, None)
            .await
    }

    /// Drops loaded versions no deployment uses.
    pub(crate) fn evict_unused_models(&self) {
        self.inner.models.evict_unused();
    }

    pub fn metrics(&self) -> &Metrics {
        &self.inner.metrics
    }

    pub fn config(&self) -> &ServingConfig {
        &self.inner.config
    }

    pub fn prediction_log(&self) -> &PredictionLog {
        &self.inner.log
    }

    pub fn deployment(&self, name: &str) -> Option<Arc<DeploymentSlot>> {
        self.inner
            .deployments
            .read()
            .expect("deployments lock")
            .get(name)
            .cloned()
    }

    pub fn deployment_names(&self) -> Vec<String> {
        let mut names: Vec<String> = self
            .inner
            .deployments
            .read()
            .expect("deployments lock")
            .keys()
            .cloned()
            .collect();
        names.sort();
        names
    }

    /// The only deployment, for `/invocations` without a name.
    pub fn sole_deployment(&self) -> Option<String> {
        let deployments = self.inner.deployments.read().expect("deployments lock");
        (deployments.len() == 1)
            .then(|| deployments.keys().next().cloned())
            .flatten()
    }

    pub fn is_ready(&self) -> bool {
        self.inner.booted.load(Relaxed)
            && self
                .inner
                .deployments
                .read()
                .expect("deployments lock")
                .values()
                .all(|slot| slot.latest().1.is_none())
    }

    /// Loads every model `spec` needs (reusing loaded ones) and builds the
    /// snapshot, without serving it yet. Fails, naming the model, when a
    /// version cannot be fetched, loaded or warmed up.
    pub async fn prepare(
        &self,
        name: &str,
        revision: i64,
        spec: &DeploymentSpec,
    ) -> Result<Arc<LiveDeployment>, String> {
        let monitor = self.inner.monitoring.deployment(name);
        self.load_profile(&monitor).await;
        // The caller waiting for this change, when it asked to follow it.
        let progress = progress::current();
        let mut arms = Vec::with_capacity(spec.arms.len());
        for arm in &spec.arms {
            let model = self
                .inner
                .models
                .get_or_load(
                    &self.inner.source,
                    &arm.model,
                    spec.settings.python_workers,
                    progress.as_ref(),
                )
                .await
                .map_err(|err| format!("{} ({}): {err}", arm.model, arm.name))?;
            let labels = ArmLabels {
                deployment: name.to_string(),
                arm: arm.name.clone(),
                model: arm.model.name.clone(),
                version: arm.model.version.to_string(),
            };
            let log_model = Arc::new(model.model_ref.clone());
            let version_monitor = monitor.version(&log_model);
            self.load_version_profile(&monitor, &version_monitor).await;
            self.load_reference_background(&model).await;
            arms.push(LiveArm {
                name: arm.name.clone(),
                role: arm.role,
                weight: arm.weight,
                model,
                counters: self.inner.metrics.arm(labels),
                revision_counters: Arc::new(Counters::new()),
                log_name: Arc::from(arm.name.as_str()),
                monitor: version_monitor,
                log_model,
            });
        }
        let mut cumulative = Vec::new();
        let mut total = 0;
        for (i, arm) in arms.iter().enumerate() {
            if arm.role == ArmRole::Live && arm.weight > 0 {
                total += arm.weight;
                cumulative.push((total, i));
            }
        }
        if cumulative.is_empty() {
            return Err("the deployment has no live arm with traffic".into());
        }
        let shadow = match &spec.policy {
            Policy::Shadow(policy) => arms
                .iter()
                .position(|a| a.role == ArmRole::Shadow)
                .map(|i| (i, policy.percent)),
            _ => None,
        };
        let sticky_header = match &spec.policy {
            Policy::AbTest(ab) => ab.sticky_header.clone(),
            _ => None,
        };
        Ok(Arc::new(LiveDeployment {
            name: name.to_string(),
            revision,
            spec: spec.clone(),
            arms,
            cumulative,
            shadow,
            sticky_header,
            in_flight: self.inner.metrics.in_flight(name),
            log_name: Arc::from(name),
            monitor,
        }))
    }

    /// Serves `live` from now on, unless a newer revision already is.
    pub fn activate(&self, live: Arc<LiveDeployment>) {
        let revision = live.revision;
        let mut deployments = self.inner.deployments.write().expect("deployments lock");
        match deployments.get(&live.name) {
            Some(slot) => {
                if slot.live.load().revision <= revision {
                    slot.live.store(live);
                }
                let mut latest = slot.latest.lock().expect("slot lock");
                if latest.0 <= revision {
                    *latest = (revision, None);
                }
            }
            None => {
                deployments.insert(
                    live.name.clone(),
                    Arc::new(DeploymentSlot {
                        live: ArcSwap::new(live),
                        latest: Mutex::new((revision, None)),
                    }),
                );
            }
        }
        drop(deployments);
        self.inner.models.evict_unused();
    }

    /// Prepares and activates in one step, one change at a time; a failure
    /// is recorded on the slot (the old snapshot keeps serving).
    pub async fn apply(
        &self,
        name: &str,
        revision: i64,
        spec: &DeploymentSpec,
    ) -> Result<(), String> {
        let _one_at_a_time = self.inner.changes.lock().await;
        if let Some(slot) = self.deployment(name) {
            if slot.live().revision >= revision {
                return Ok(());
            }
        }
        match self.prepare(name, revision, spec).await {
            Ok(live) => {
                self.activate(live);
                tracing::info!(deployment = name, revision, "serving new revision");
                Ok(())
            }
            Err(message) => {
                tracing::warn!(deployment = name, revision, error = %message, "cannot serve revision");
                if let Some(slot) = self.deployment(name) {
                    *slot.latest.lock().expect("slot lock") = (revision, Some(message.clone()));
                }
                Err(message)
            }
        }
    }

    /// The stages of the changes callers are waiting for.
    pub fn progress(&self) -> &progress::ProgressBoard {
        &self.inner.progress
    }

    /// Stops serving `name`.
    pub fn remove(&self, name: &str) {
        self.inner
            .deployments
            .write()
            .expect("deployments lock")
            .remove(name);
        self.inner.abuse.forget(name);
        self.inner.models.evict_unused();
    }

    /// Runs `arm` of `live` on `inputs`: inline when cheap, else on the
    /// blocking pool; then records counters, copies the request to the
    /// shadow and writes the prediction log.
    pub async fn predict(
        &self,
        live: &Arc<LiveDeployment>,
        pick: Pick,
        inputs: Vec<NamedTensor>,
        layout: Layout,
        caller: Option<String>,
    ) -> Result<Answer, PredictFailure> {
        let started = Instant::now();
        let arm = &live.arms[pick.index()];
        let in_flight = &live.in_flight;
        in_flight.fetch_add(1, Relaxed);
        let shadow = match pick {
            Pick::Routed(_) => live.shadow_for_request(),
            Pick::Pinned(_) => None,
        };
        // The log, the shadow and the monitor read the inputs after the model ran.
        let keep_inputs = live.spec.settings.log_predictions
            || live.spec.settings.monitor
            || shadow.is_some()
            || arm.model.background.wants_rows();
        let kept = keep_inputs.then(|| inputs.clone());
        let rows = inputs.first().map_or(0, |t| t.tensor.rows());
        let result = self.run(&arm.model, inputs, layout).await;
        in_flight.fetch_sub(1, Relaxed);
        let latency = started.elapsed();
        let outcome = match &result {
            Ok(_) => Outcome::Ok,
            Err(PredictFailure::Input(_)) => Outcome::Rejected,
            Err(PredictFailure::Overloaded(_)) => Outcome::Overloaded,
            Err(PredictFailure::Model(_)) => Outcome::Failed,
        };
        arm.counters.record(outcome, rows, latency);
        arm.revision_counters.record(outcome, rows, latency);
        let prediction_id = prediction_id();
        if let (Some(inputs), Ok(_)) = (&kept, &result) {
            let room = arm.model.background.room();
            if room > 0 {
                // Answered, so it prepares: the version's explanation
                // background, from the rows it still wants.
                let head = inputs
                    .iter()
                    .map(|t| explain::first_rows(t, room.min(t.tensor.rows())))
                    .collect();
                if let Ok(prepared) = arm.model.model.prepare(head, layout) {
                    arm.model.background.offer(&prepared);
                }
            }
        }
        let outliers = match (&kept, &result) {
            (Some(inputs), Ok(outputs)) if live.spec.settings.monitor => {
                self.sample_for_explanation(live, pick.index(), inputs, layout);
                self.observe(live, arm, inputs, Some(outputs))
            }
            _ => None,
        };
        if let (Some(shadow_arm), Some(inputs)) = (shadow, &kept) {
            let index = live
                .arms
                .iter()
                .position(|a| std::ptr::eq(a, shadow_arm))
                .expect("the shadow is an arm");
            let job = ShadowJob {
                live: live.clone(),
                arm: index,
                inputs: inputs.clone(),
                layout,
                prediction_id: prediction_id.clone(),
                caller: caller.clone(),
            };
            if self.inner.shadow.try_send(job).is_err() {
                self.inner.metrics.shadow_dropped.fetch_add(1, Relaxed);
            }
        }
        if live.spec.settings.log_predictions {
            if let Some(inputs) = kept {
                self.inner.log.record(predlog::Record {
                    prediction_id: prediction_id.clone(),
                    time_us: now_micros(),
                    deployment: live.log_name.clone(),
                    arm: arm.log_name.clone(),
                    model: arm.log_model.clone(),
                    shadow: false,
                    latency_us: latency.as_micros() as u64,
                    caller,
                    error: result.as_ref().err().map(failure_message),
                    inputs,
                    outputs: result.as_ref().ok().cloned(),
                    feature_names: arm.model.feature_names.clone(),
                    default_output: arm.model.model.default_output(),
                });
            }
        }
        let outputs = result?;
        Ok(Answer {
            outputs,
            prediction_id,
            arm: arm.name.clone(),
            model: arm.model.model_ref.clone(),
            default_output: arm.model.model.default_output(),
            engine: arm.model.model.info().engine,
            outliers,
        })
    }

    /// SHAP values of `inputs` on `arm` of `live`, on the blocking pool
    /// (KernelSHAP runs the model thousands of times), with the version's
    /// background.
    pub async fn explain(
        &self,
        live: &Arc<LiveDeployment>,
        pick: Pick,
        inputs: Vec<NamedTensor>,
        layout: Layout,
        request: &explain::ExplainRequest,
    ) -> Result<(sextant_serve::Explanation, Option<usize>), PredictFailure> {
        let loaded = live.arms[pick.index()].model.clone();
        let background = loaded.background.current();
        let background_rows = background.as_ref().map(|b| b.rows);
        let options = sextant_serve::ExplainOptions {
            method: request.method,
            background,
            samples: request.samples,
            seed: request.seed,
            max_model_rows: Some(explain::KERNEL_MODEL_ROWS_PER_REQUEST),
            interactions: false,
        };
        let permit = self.blocking_permit()?;
        let result = tokio::task::spawn_blocking(move || {
            let _permit = permit;
            let prepared = loaded.model.prepare(inputs, layout)?;
            loaded.model.explain_prepared(&prepared, &options)
        })
        .await
        .map_err(|_| PredictFailure::Model("the explanation was interrupted".into()))?;
        match result {
            Ok(explanation) => Ok((explanation, background_rows)),
            // The model cannot be explained that way: the caller's choice
            // (or the model's format) is the problem, not the server.
            Err(sextant_serve::Error::Unsupported(message)) => Err(PredictFailure::Input(message)),
            Err(other) => Err(other.into()),
        }
    }

    /// Feeds `arm`'s monitor with a request and its answer: a verdict per
    /// row, or none while the reference window fills (storing the profile
    /// when it completes).
    fn observe(
        &self,
        live: &LiveDeployment,
        arm: &LiveArm,
        inputs: &[NamedTensor],
        outputs: Option<&Vec<NamedTensor>>,
    ) -> Option<Vec<sextant_monitor::live::OutlierVerdict>> {
        let (verdicts, event) = live.monitor.observe(
            &arm.monitor,
            now_micros(),
            inputs,
            arm.model.feature_names.as_deref().map(Vec::as_slice),
            outputs.map(Vec::as_slice),
            arm.model.model.default_output(),
        );
        if let Some(monitoring::ProfileEvent::WindowComplete(profile)) = event {
            let serving = self.clone();
            let deployment = live.name.clone();
            tokio::spawn(async move { serving.store_profile(&deployment, &profile).await });
        }
        verdicts
    }

    /// Recent answers, for joining labels.
    pub fn feedback_index(&self) -> &feedback::PredictionIndex {
        &self.inner.feedback
    }

    /// Callers' abuse signals.
    pub fn abuse(&self) -> &abuse::AbuseMonitor {
        &self.inner.abuse
    }

    /// Waits until every prediction answered so far is in the prediction
    /// log and the feedback index.
    pub async fn flush_log(&self) {
        self.inner.log.flush().await;
    }

    /// The monitoring of `deployment`, if it was ever served here.
    pub fn monitor(&self, deployment: &str) -> Option<Arc<monitoring::DeploymentMonitor>> {
        self.inner.monitoring.existing(deployment)
    }

    /// The monitoring of `deployment`, created when missing (a reference
    /// can be set before the deployment first serves here).
    pub fn monitor_or_create(&self, deployment: &str) -> Arc<monitoring::DeploymentMonitor> {
        self.inner.monitoring.deployment(deployment)
    }

    /// Every deployment's monitoring in this process.
    pub fn monitors(&self) -> Vec<Arc<monitoring::DeploymentMonitor>> {
        self.inner.monitoring.all()
    }

    /// Loads `monitor`'s stored profile the first time its deployment is
    /// prepared in this process (embedded servers only: a replica builds
    /// its own reference window).
    async fn load_profile(&self, monitor: &monitoring::DeploymentMonitor) {
        if monitor.profile().is_some() || !monitor.mark_profile_loaded() {
            return;
        }
        if let Some(stored) = self
            .get_profile(&monitoring::profile_path(monitor.name()))
            .await
        {
            monitor.set_profile(Some(Arc::new(stored)));
        }
    }

    /// Reads the stored reference of `version` in `monitor`'s deployment,
    /// once.
    async fn load_version_profile(
        &self,
        monitor: &monitoring::DeploymentMonitor,
        version: &monitoring::VersionMonitor,
    ) {
        if version.own_profile().is_some() || !version.mark_own_profile_loaded() {
            return;
        }
        let path = monitoring::version_profile_path(monitor.name(), &version.model);
        if let Some(stored) = self.get_profile(&path).await {
            monitor.set_version_profile(&version.model, Arc::new(stored));
        }
    }

    /// Sets `loaded`'s explanation background to rows of its reference
    /// data (`columns`, request columns), and stores them so that the next
    /// start finds them.
    pub async fn set_reference_background(
        &self,
        loaded: &LoadedVersion,
        columns: Vec<NamedTensor>,
    ) {
        let stored = explain::scoring_request(&columns);
        match loaded.model.prepare(columns, Layout::Columns) {
            Ok(prepared) => {
                loaded.background.set_reference(Background::new(prepared));
                self.put_profile(&explain::background_path(&loaded.model_ref), &stored)
                    .await;
            }
            Err(err) => {
                tracing::info!(model = %loaded.model_ref, cause = %err, "the reference rows cannot be the explanation background");
            }
        }
    }

    /// The stored reference background of `loaded`, if any (embedded
    /// servers).
    async fn load_reference_background(&self, loaded: &LoadedVersion) {
        if loaded.background.has_reference() {
            return;
        }
        let Some(stored) = self
            .get_profile::<serde_json::Value>(&explain::background_path(&loaded.model_ref))
            .await
        else {
            return;
        };
        let prepared = serde_json::to_vec(&stored)
            .ok()
            .and_then(|body| codec::scoring_json(&body).ok())
            .and_then(|(columns, layout)| loaded.model.prepare(columns, layout).ok());
        if let Some(prepared) = prepared {
            loaded.background.set_reference(Background::new(prepared));
        }
    }

    /// A stored profile, or other monitoring JSON (embedded servers);
    /// `None` when there is none, or (with a warning) when it cannot be
    /// read.
    async fn get_profile<T: serde::de::DeserializeOwned>(&self, path: &str) -> Option<T> {
        let Source::Local { artifacts, .. } = &self.inner.source else {
            return None;
        };
        let path = sextant_artifacts::ArtifactPath::parse(path).ok()?;
        let download = artifacts.get(&path).await.ok()?;
        use futures::TryStreamExt;
        let read = download.body.try_collect::<Vec<bytes::Bytes>>().await;
        let parsed = read.map_err(|e| e.to_string()).and_then(|chunks| {
            serde_json::from_slice::<T>(&chunks.concat()).map_err(|e| e.to_string())
        });
        match parsed {
            Ok(stored) => Some(stored),
            Err(err) => {
                tracing::warn!(path = path.as_str(), cause = %err, "stored monitoring profile unreadable; it is built again");
                None
            }
        }
    }

    /// Stores `profile` as `deployment`'s reference (embedded servers).
    pub async fn store_profile(&self, deployment: &str, profile: &monitoring::StoredProfile) {
        self.put_profile(&monitoring::profile_path(deployment), profile)
            .await;
    }

    /// Stores the reference of one model version in a deployment.
    pub async fn store_version_profile(
        &self,
        deployment: &str,
        model: &ModelRef,
        profile: &monitoring::StoredProfile,
    ) {
        self.put_profile(
            &monitoring::version_profile_path(deployment, model),
            profile,
        )
        .await;
    }

    async fn put_profile<T: serde::Serialize>(&self, path: &str, profile: &T) {
        let Source::Local { artifacts, .. } = &self.inner.source else {
            return;
        };
        let result = async {
            let path = sextant_artifacts::ArtifactPath::parse(path).map_err(|e| e.to_string())?;
            let json = serde_json::to_vec(profile).map_err(|e| e.to_string())?;
            let body = futures::stream::once(async move {
                Ok::<_, std::convert::Infallible>(bytes::Bytes::from(json))
            });
            artifacts
                .put(&path, body)
                .await
                .map(|_| ())
                .map_err(|e| e.to_string())
        }
        .await;
        if let Err(err) = result {
            tracing::warn!(path, cause = %err, "cannot store the monitoring profile");
        }
    }

    /// A slot on the blocking pool, or 503 when every slot is busy.
    fn blocking_permit(&self) -> Result<tokio::sync::OwnedSemaphorePermit, PredictFailure> {
        self.inner
            .blocking
            .clone()
            .try_acquire_owned()
            .map_err(|_| {
                PredictFailure::Overloaded(format!(
                    "all {} model slots are busy; retry shortly",
                    self.inner.config.max_blocking
                ))
            })
    }

    async fn run(
        &self,
        loaded: &Arc<LoadedVersion>,
        inputs: Vec<NamedTensor>,
        layout: Layout,
    ) -> Result<Vec<NamedTensor>, PredictFailure> {
        let rows = inputs.first().map_or(0, |t| t.tensor.rows());
        if loaded.model.cost() == CallCost::Cheap && rows <= INLINE_ROWS {
            return Ok(loaded.model.predict(inputs, layout)?);
        }
        let permit = self.blocking_permit()?;
        let model = loaded.clone();
        let result = tokio::task::spawn_blocking(move || {
            let _permit = permit;
            model.model.predict(inputs, layout)
        })
        .await
        .map_err(|_| PredictFailure::Model("the prediction was interrupted".into()))?;
        Ok(result?)
    }

    /// Queues every n-th monitored request (n = 1 / the sample rate) for a
    /// background explanation; drops it, counted, when the explainer is
    /// behind.
    fn sample_for_explanation(
        &self,
        live: &Arc<LiveDeployment>,
        arm: usize,
        inputs: &[NamedTensor],
        layout: Layout,
    ) {
        let rate = self.inner.config.explain_sample_rate;
        if !(rate > 0.0) {
            return;
        }
        let period = (1.0 / rate.min(1.0)).round().max(1.0) as u64;
        if self.inner.monitored.fetch_add(1, Relaxed) % period != 0 {
            return;
        }
        let rows = inputs.first().map_or(0, |t| t.tensor.rows());
        let inputs = if rows > EXPLAINED_ROWS_PER_REQUEST {
            inputs
                .iter()
                .map(|t| explain::first_rows(t, EXPLAINED_ROWS_PER_REQUEST))
                .collect()
        } else {
            inputs.to_vec()
        };
        let job = ExplainJob {
            live: live.clone(),
            arm,
            inputs,
            layout,
        };
        if self.inner.explain_queue.try_send(job).is_err() {
            self.inner
                .metrics
                .explanations_dropped
                .fetch_add(1, Relaxed);
        }
    }

    /// Explains sampled answers one after another, off every request's
    /// path, into their version's monitor.
    async fn run_explanations(self, mut queue: tokio::sync::mpsc::Receiver<ExplainJob>) {
        let mut stopped = self.stopped();
        loop {
            let job = tokio::select! {
                job = queue.recv() => match job {
                    Some(job) => job,
                    None => return,
                },
                _ = stopped.changed() => return,
            };
            let request = explain::ExplainRequest::default();
            let pick = Pick::Pinned(job.arm);
            let started = Instant::now();
            let result = self
                .explain(&job.live, pick, job.inputs, job.layout, &request)
                .await;
            // A duty cycle: after t of explaining, rest t·(1/share − 1), so the
            // explainer takes at most `share` of one core however busy the
            // deployment is; samples arriving meanwhile fill the queue and
            // the rest are dropped, counted.
            let rest = started
                .elapsed()
                .mul_f64(1.0 / self.inner.config.explain_core_share.clamp(0.001, 1.0) - 1.0);
            match result {
                Ok((explanation, _)) => {
                    job.live.arms[job.arm]
                        .monitor
                        .explanations
                        .record(now_micros(), &explanation);
                    self.inner
                        .metrics
                        .explanations
                        .fetch_add(explanation.rows as u64, Relaxed);
                }
                Err(failure) => {
                    self.inner
                        .metrics
                        .explanations_dropped
                        .fetch_add(1, Relaxed);
                    tracing::debug!(deployment = %job.live.name, cause = %failure_message(&failure), "background explanation skipped");
                }
            }
            tokio::select! {
                _ = tokio::time::sleep(rest) => {}
                _ = stopped.changed() => return,
            }
        }
    }

    /// Runs shadow requests one after another, off every request's path.
    async fn run_shadows(self, mut queue: tokio::sync::mpsc::Receiver<ShadowJob>) {
        let mut stopped = self.stopped();
        loop {
            let job = tokio::select! {
                job = queue.recv() => match job {
                    Some(job) => job,
                    None => return,
                },
                _ = stopped.changed() => return,
            };
            let arm = &job.live.arms[job.arm];
            let started = Instant::now();
            let rows = job.inputs.first().map_or(0, |t| t.tensor.rows());
            // Kept for the log and for the shadow version's own monitor.
            let kept_inputs = job.inputs.clone();
            let result = self.run(&arm.model, job.inputs, job.layout).await;
            if let (Ok(outputs), true) = (&result, job.live.spec.settings.monitor) {
                self.observe(&job.live, arm, &kept_inputs, Some(outputs));
            }
            let logged_inputs = job
                .live
                .spec
                .settings
                .log_predictions
                .then_some(kept_inputs);
            let latency = started.elapsed();
            let outcome = match &result {
                Ok(_) => Outcome::Ok,
                Err(PredictFailure::Input(_)) => Outcome::Rejected,
                Err(PredictFailure::Overloaded(_)) => Outcome::Overloaded,
                Err(PredictFailure::Model(_)) => Outcome::Failed,
            };
            arm.counters.record(outcome, rows, latency);
            arm.revision_counters.record(outcome, rows, latency);
            if let Some(inputs) = logged_inputs {
                self.inner.log.record(predlog::Record {
                    prediction_id: job.prediction_id,
                    time_us: now_micros(),
                    deployment: job.live.log_name.clone(),
                    arm: arm.log_name.clone(),
                    model: arm.log_model.clone(),
                    shadow: true,
                    latency_us: latency.as_micros() as u64,
                    caller: job.caller,
                    error: result.as_ref().err().map(failure_message),
                    inputs,
                    outputs: result.ok(),
                    feature_names: arm.model.feature_names.clone(),
                    default_output: arm.model.model.default_output(),
                });
            }
        }
    }

    /// Stores a replica's report.
    pub fn record_report(&self, deployment: &str, report: dto::ReplicaReport) {
        let mut reports = self.inner.reports.lock().expect("reports lock");
        reports
            .entry(deployment.to_string())
            .or_default()
            .insert(report.replica.clone(), (Instant::now(), report));
    }

    /// This process's own counters of `deployment`'s `revision` per arm
    /// (empty when it serves another revision).
    pub fn local_revision_counters(
        &self,
        deployment: &str,
        revision: i64,
    ) -> HashMap<String, ArmCounters> {
        let mut sums: HashMap<String, ArmCounters> = HashMap::new();
        if let Some(slot) = self.deployment(deployment) {
            let live = slot.live();
            if live.revision == revision {
                for (arm, counters) in live.revision_counters() {
                    add_counters(sums.entry(arm).or_default(), &counters);
                }
            }
        }
        sums
    }

    /// Counters of `revision` by arm: this process's plus those replicas
    /// reported within the last minute; and the names of those replicas.
    pub fn revision_counters(
        &self,
        deployment: &str,
        revision: i64,
    ) -> (HashMap<String, ArmCounters>, Vec<String>) {
        let mut sums = self.local_revision_counters(deployment, revision);
        let mut replicas = Vec::new();
        let mut reports = self.inner.reports.lock().expect("reports lock");
        if let Some(by_replica) = reports.get_mut(deployment) {
            by_replica.retain(|_, (at, _)| at.elapsed() < Duration::from_secs(60));
            for (replica, (_, report)) in by_replica.iter() {
                replicas.push(replica.clone());
                if report.revision == revision {
                    for (arm, counters) in &report.arms {
                        add_counters(sums.entry(arm.clone()).or_default(), counters);
                    }
                }
            }
        }
        replicas.sort();
        (sums, replicas)
    }
}

fn failure_message(failure: &PredictFailure) -> String {
    match failure {
        PredictFailure::Input(m) | PredictFailure::Overloaded(m) | PredictFailure::Model(m) => {
            m.clone()
        }
    }
}

pub fn now_micros() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_micros() as i64)
}

#[cfg(test)]
mod tests;
