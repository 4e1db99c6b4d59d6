//! Python workers: serving the models only Python can run.
//!
//! MLflow `python_function` models with user code, scikit-learn pipelines
//! with custom transformers and anything else our native engines cannot
//! run are served by a pool of Python processes, each running the embedded
//! script `worker.py` on the model directory. A [`PythonModel`] is that
//! pool behind the [`ModelRuntime`] trait: slower than the native engines
//! (every call crosses a pipe and runs Python), but isolated (a crash or a
//! hang costs one request and one process, never the server) and
//! supervised (broken workers are killed, reaped and replaced).
//!
//! Layout:
//! - `protocol`: the framed messages between the pool and a worker;
//!   `worker.py` implements the other side.
//! - `worker`: one worker process and its I/O threads.
//! - `pool`: the set of workers, request queueing, the supervisor that
//!   replaces workers with a restart backoff.
//! - `env`: the interpreter the workers run: as given, or a cached
//!   virtualenv built from the model's `requirements.txt`.
//! - `signature`: what the model's MLflow signature says about its inputs.
//!
//! Workers log their stderr (including everything the model prints) with
//! `tracing`, target `sextant_serve::python`, field `worker`.

mod env;
mod lines;
mod pool;
mod protocol;
mod sandbox;
mod signature;
#[cfg(test)]
mod tests;
mod worker;

use std::fs;
use std::io;
use std::num::NonZeroUsize;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use sha2::{Digest, Sha256};

use crate::error::{Error, Result};
use crate::python::pool::{Pool, PoolSettings};
use crate::python::signature::{SchemaForm, Signature};
use crate::python::worker::{Launch, Worker};
use crate::runtime::{CallCost, ModelRuntime, RuntimeInfo};
use crate::tensor::{DataType, NamedTensor, TensorSpec};

pub use env::EnvManager;
pub use protocol::InputLayout;
pub use sandbox::{Probed, Sandbox};

/// The `tracing` target of everything this module logs.
pub(crate) const LOG_TARGET: &str = "sextant_serve::python";

/// The worker script, written to [`PythonConfig::work_dir`] at start.
const WORKER_SCRIPT: &str = include_str!("worker.py");

/// How to serve one model with Python workers.
#[derive(Debug, Clone)]
pub struct PythonConfig {
    /// The MLflow model directory (the one holding `MLmodel`).
    pub model_dir: PathBuf,
    pub env: EnvManager,
    /// A directory the pool may write to: the worker script goes there.
    pub work_dir: PathBuf,
    /// Worker processes; each handles one request at a time.
    pub workers: NonZeroUsize,
    /// How long a worker may take to import its libraries and load the
    /// model.
    pub load_timeout: Duration,
    /// How long a request waits for an idle worker before it fails with
    /// [`Error::Overloaded`].
    pub queue_timeout: Duration,
    /// How long a worker may take to answer once it has the request; past
    /// that it is killed and the request fails with [`Error::Worker`].
    pub request_timeout: Duration,
    /// The wait before restarting after a failed start, doubled for each
    /// further failure in a row, up to `max_restart_backoff`.
    pub restart_backoff: Duration,
    pub max_restart_backoff: Duration,
    /// Failed starts in a row after which the model is unhealthy: with no
    /// worker running, requests then fail at once. Taken as 1 when 0.
    pub max_start_failures: u32,
    /// How long building the model's virtualenv (or waiting for another
    /// process to build it) may take.
    pub env_build_timeout: Duration,
    /// What workers may reach and use.
    pub sandbox: Sandbox,
    /// Told when the environment is built or found, and when the first
    /// worker starts loading the model.
    pub progress: Option<crate::Progress>,
}

/// How a server runs the Python models it serves: the interpreter (or how
/// to build one per model) and the sandbox workers start in.
#[derive(Debug, Clone)]
pub struct PythonSetup {
    pub env: EnvManager,
    pub sandbox: Sandbox,
}

impl PythonConfig {
    /// A config with one worker and MLflow-like timeouts: 5 minutes to load,
    /// 60 s per request (MLflow's scoring server default), 10 s in the
    /// queue; restarts back off from 1 s to 1 minute, and three failed
    /// starts in a row make the model unhealthy; 15 minutes to build an env.
    pub fn new(model_dir: PathBuf, env: EnvManager, work_dir: PathBuf) -> PythonConfig {
        PythonConfig {
            model_dir,
            env,
            work_dir,
            workers: NonZeroUsize::MIN,
            load_timeout: Duration::from_secs(300),
            queue_timeout: Duration::from_secs(10),
            request_timeout: Duration::from_secs(60),
            restart_backoff: Duration::from_secs(1),
            max_restart_backoff: Duration::from_secs(60),
            max_start_failures: 3,
            env_build_timeout: Duration::from_secs(15 * 60),
            sandbox: Sandbox::default(),
            progress: None,
        }
    }
}

/// Whether a model's workers are up, for the server to show.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Health {
    /// Every configured worker runs.
    Ready { workers: usize },
    /// Some workers are down and being replaced; the others serve.
    Degraded {
        running: usize,
        wanted: usize,
        /// Why the last start failed, if it did.
        last_error: Option<String>,
    },
    /// No worker runs and starting one failed too often in a row: requests
    /// fail at once (with this error) while restarts go on in the
    /// background, backing off.
    Unhealthy {
        consecutive_start_failures: u32,
        last_error: String,
    },
}

/// What the first worker reported about the model when it was ready.
#[derive(Debug, Clone, PartialEq)]
pub struct ModelMetadata {
    pub python_version: String,
    pub mlflow_version: String,
    /// The flavors in `MLmodel` (`python_function`, `sklearn`, …).
    pub flavors: Vec<String>,
    /// The pyfunc loader module (`mlflow.pyfunc.model`, `mlflow.sklearn`).
    pub loader_module: Option<String>,
    /// MLflow's signature: `{"inputs": schema | null, "outputs": schema |
    /// null}` with each schema in MLflow's JSON form.
    pub signature: Option<serde_json::Value>,
}

/// A model served by a pool of Python worker processes.
pub struct PythonModel {
    info: RuntimeInfo,
    metadata: ModelMetadata,
    signature: Signature,
    pool: Pool,
    next_request_id: AtomicU64,
}

impl PythonModel {
    /// Prepares the environment, starts the first worker and waits until it
    /// has loaded the model; the other workers start in the background.
    ///
    /// Fails with [`Error::InvalidModel`] when the model raises while
    /// loading (the message has the exception and the last lines of the
    /// worker's stderr), with [`Error::Worker`] when the worker dies or
    /// times out first, and with [`Error::Io`] when the interpreter cannot
    /// be run.
    pub fn start(config: PythonConfig) -> Result<PythonModel> {
        if !config.model_dir.join("MLmodel").is_file() {
            return Err(Error::InvalidModel(format!(
                "{} is not an MLflow model directory: it has no MLmodel file",
                config.model_dir.display()
            )));
        }
        let progress = config.progress.as_ref();
        let python = config
            .env
            .prepare(&config.model_dir, config.env_build_timeout, progress)?;
        crate::progress::report(
            progress,
            "starting a Python worker and loading the model in it",
        );
        let script = write_worker_script(&config.work_dir)?;
        let launch = Launch {
            python,
            script,
            model_dir: config.model_dir.clone(),
            sandbox: config.sandbox.clone(),
        };
        let never_cancelled = AtomicBool::new(false);
        let (first, ready) = Worker::start(1, &launch, config.load_timeout, &never_cancelled)
            .map_err(|error| error.into_error())?;
        tracing::info!(
            target: LOG_TARGET,
            model = %config.model_dir.display(),
            python = %ready.python_version,
            mlflow = %ready.mlflow_version,
            flavors = ?ready.flavors,
            "python model loaded"
        );
        let signature = Signature::from_ready(ready.signature.as_ref());
        let outputs = if ready.probabilities {
            let labels = signature
                .outputs
                .first()
                .map_or(DataType::Bytes, |o| o.dtype);
            vec![
                TensorSpec::new("predict", labels, vec![-1]),
                TensorSpec::new("predict_proba", DataType::F64, vec![-1, -1]),
            ]
        } else {
            signature.outputs.clone()
        };
        let info = RuntimeInfo {
            engine: "python",
            inputs: signature.inputs.clone(),
            outputs,
            feature_names: None,
            accepts_any_inputs: true,
        };
        let metadata = ModelMetadata {
            python_version: ready.python_version,
            mlflow_version: ready.mlflow_version,
            flavors: ready.flavors,
            loader_module: ready.loader_module,
            signature: ready.signature,
        };
        let settings = PoolSettings {
            workers: config.workers.get(),
            load_timeout: config.load_timeout,
            queue_timeout: config.queue_timeout,
            request_timeout: config.request_timeout,
            restart_backoff: config.restart_backoff,
            max_restart_backoff: config.max_restart_backoff,
            max_start_failures: config.max_start_failures.max(1),
        };
        Ok(PythonModel {
            info,
            metadata,
            signature,
            pool: Pool::new(launch, settings, first)?,
            next_request_id: AtomicU64::new(1),
        })
    }

    pub fn health(&self) -> Health {
        self.pool.health()
    }

    pub fn metadata(&self) -> &ModelMetadata {
        &self.metadata
    }

    /// The process ids of the running workers.
    pub fn worker_pids(&self) -> Vec<u32> {
        self.pool.worker_pids()
    }

    /// How [`ModelRuntime::predict`] hands `inputs` to the model:
    /// - with a tensor signature: a bare array when the signature's only
    ///   input is unnamed and one input is given, else a dict;
    /// - otherwise (column signature, or none): a DataFrame when every input
    ///   is 1-D with the same length (a column each); else a bare array
    ///   when there is one input (MLflow turns it into a DataFrame itself
    ///   for a column signature), else a dict.
    ///
    /// A server that knows the request's form (MLflow's `dataframe_split`
    /// vs `instances`) can choose with [`PythonModel::predict_with_layout`]
    /// instead.
    pub fn default_layout(&self, inputs: &[NamedTensor]) -> InputLayout {
        default_layout(&self.signature, inputs)
    }

    /// Predicts with the inputs handed to `predict` as `layout` says.
    pub fn predict_with_layout(
        &self,
        inputs: &[NamedTensor],
        layout: InputLayout,
    ) -> Result<Vec<NamedTensor>> {
        let request_id = self.next_request_id.fetch_add(1, Ordering::Relaxed);
        // Encoding first: a bad request must not take a worker.
        let request = protocol::encode_predict(request_id, layout, inputs)?;
        self.pool.predict(request_id, request)
    }
}

impl std::fmt::Debug for PythonModel {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("PythonModel")
            .field("info", &self.info)
            .field("metadata", &self.metadata)
            .field("health", &self.health())
            .finish_non_exhaustive()
    }
}

impl ModelRuntime for PythonModel {
    fn info(&self) -> &RuntimeInfo {
        &self.info
    }

    fn predict(&self, inputs: &[NamedTensor]) -> Result<Vec<NamedTensor>> {
        self.predict_with_layout(inputs, self.default_layout(inputs))
    }

    fn cost(&self) -> CallCost {
        CallCost::Blocking
    }
}

fn default_layout(signature: &Signature, inputs: &[NamedTensor]) -> InputLayout {
    if signature.input_form == Some(SchemaForm::Tensors) {
        return if inputs.len() == 1 && signature.single_unnamed_tensor_input {
            InputLayout::Array
        } else {
            InputLayout::TensorDict
        };
    }
    let first_len = inputs.first().map(|input| input.tensor.shape.as_slice());
    let all_columns = inputs.iter().all(|input| {
        input.tensor.shape.len() == 1 && Some(input.tensor.shape.as_slice()) == first_len
    });
    if all_columns {
        InputLayout::Dataframe
    } else if inputs.len() == 1 {
        InputLayout::Array
    } else {
        InputLayout::TensorDict
    }
}

/// Writes the worker script into `work_dir` under a name derived from its
/// contents (so that servers of different versions sharing the directory
/// do not overwrite each other's), atomically, unless it is there already.
fn write_worker_script(work_dir: &Path) -> Result<PathBuf> {
    let digest = Sha256::digest(WORKER_SCRIPT.as_bytes());
    let short: String = digest[..8]
        .iter()
        .map(|byte| format!("{byte:02x}"))
        .collect();
    let path = work_dir.join(format!("sextant-python-worker-{short}.py"));
    if fs::read(&path).is_ok_and(|existing| existing == WORKER_SCRIPT.as_bytes()) {
        return Ok(path);
    }
    fs::create_dir_all(work_dir)
        .map_err(|err| Error::io(format!("creating {}", work_dir.display()), err))?;
    let temporary = work_dir.join(format!(
        ".sextant-python-worker-{short}.{}.tmp",
        unique_suffix()
    ));
    let written = fs::write(&temporary, WORKER_SCRIPT).and_then(|()| fs::rename(&temporary, &path));
    written.map_err(|err: io::Error| {
        let _ = fs::remove_file(&temporary);
        Error::io(
            format!("writing the python worker script to {}", path.display()),
            err,
        )
    })?;
    Ok(path)
}

/// A suffix for temporary file names that no other process or thread
/// uses at the same time.
pub(crate) fn unique_suffix() -> String {
    let nanos = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|elapsed| elapsed.as_nanos())
        .unwrap_or_default();
    let thread = std::thread::current().id();
    format!("{}-{thread:?}-{nanos}", std::process::id())
        .chars()
        .filter(char::is_ascii_alphanumeric)
        .collect()
}

/// "30 s", "1.5 s", "0.25 s".
pub(crate) fn format_duration(duration: Duration) -> String {
    let millis = duration.as_millis();
    if millis.is_multiple_of(1000) {
        format!("{} s", millis / 1000)
    } else {
        let text = format!("{:.3}", duration.as_secs_f64());
        format!("{} s", text.trim_end_matches('0'))
    }
}
