//! Loaded model versions, shared by every deployment and arm that serves
//! them, and the path from a registry entry to a warm model: fetch the
//! version's files into the cache directory, pick an engine
//! (`sextant_serve::mlflow::load_model_dir`, on the blocking pool), and run
//! the model once on its own input example before it takes traffic.

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::Instant;

use sextant_core::ModelRef;
use sextant_serve::mlflow::{load_model_dir, LoadOptions};
use sextant_serve::model::Layout;
use sextant_serve::progress::report;
use sextant_serve::python::{PythonConfig, PythonSetup};
use sextant_serve::Progress;
use sextant_serve::{DataType, NamedTensor, Tensor, TensorData};
use tokio::sync::OnceCell;

use super::source::Source;
use super::stats::Metrics;

/// A model version ready to predict.
pub struct LoadedVersion {
    pub model_ref: ModelRef,
    pub model: sextant_serve::Model,
    /// Where its files are.
    pub dir: PathBuf,
    /// Seconds from fetch to warm.
    pub load_seconds: f64,
    /// Names of the features, in the model's order, for the prediction
    /// log (the signature's columns or the model file's names).
    pub feature_names: Option<Arc<Vec<String>>>,
    /// Native engines that declined the model, when Python serves it.
    pub declined: Vec<String>,
    pub run_id: Option<String>,
    /// Rows that stand for absent features in its explanations.
    pub background: super::explain::ExplainBackground,
}

type Key = (String, i64, u32);

/// Loaded versions by (model, version, Python workers); a version loads
/// once however many deployments ask for it at the same time.
pub(crate) struct ModelCache {
    dir: PathBuf,
    python: Option<PythonSetup>,
    metrics: Arc<Metrics>,
    entries: Mutex<HashMap<Key, Arc<OnceCell<Arc<LoadedVersion>>>>>,
}

impl ModelCache {
    pub(crate) fn new(
        dir: PathBuf,
        python: Option<PythonSetup>,
        metrics: Arc<Metrics>,
    ) -> ModelCache {
        ModelCache {
            dir,
            python,
            metrics,
            entries: Mutex::new(HashMap::new()),
        }
    }

    pub(crate) async fn get_or_load(
        &self,
        source: &Source,
        model: &ModelRef,
        python_workers: u32,
        progress: Option<&Progress>,
    ) -> Result<Arc<LoadedVersion>, String> {
        let key = (model.name.clone(), model.version, python_workers.max(1));
        let cell = self
            .entries
            .lock()
            .expect("model cache lock")
            .entry(key)
            .or_default()
            .clone();
        if let Some(loaded) = cell.get() {
            report(
                progress,
                &format!(
                    "{model}: already loaded ({} engine)",
                    loaded.model.info().engine
                ),
            );
            return Ok(loaded.clone());
        }
        cell.get_or_try_init(|| self.load(source, model, python_workers, progress))
            .await
            .cloned()
    }

    /// Drops versions no deployment uses any more (their Python workers
    /// stop when the last reference goes).
    pub(crate) fn evict_unused(&self) {
        self.entries
            .lock()
            .expect("model cache lock")
            .retain(|_, cell| {
                cell.get()
                    .is_none_or(|loaded| Arc::strong_count(loaded) > 1)
            });
    }

    async fn load(
        &self,
        source: &Source,
        model: &ModelRef,
        python_workers: u32,
        progress: Option<&Progress>,
    ) -> Result<Arc<LoadedVersion>, String> {
        let started = Instant::now();
        let dir = self
            .dir
            .join("models")
            .join(safe_name(&model.name))
            .join(model.version.to_string());
        if !dir.join("MLmodel").is_file() {
            report(progress, &format!("{model}: fetching the model's files"));
            source.fetch_model(model, &dir).await?;
        }
        let python = self.python.clone().map(|setup| {
            let mut config = PythonConfig::new(dir.clone(), setup.env, self.dir.join("python"));
            config.sandbox = setup.sandbox;
            config.progress = progress.cloned();
            config.workers = std::num::NonZeroUsize::new(python_workers.max(1) as usize)
                .unwrap_or(std::num::NonZeroUsize::MIN);
            config
        });
        let options = LoadOptions {
            python,
            force_python: false,
            progress: progress.cloned(),
        };
        let load_dir = dir.clone();
        let warm_up_progress = progress.cloned();
        let loaded = tokio::task::spawn_blocking(move || -> Result<_, String> {
            let loaded = load_model_dir(&load_dir, &options).map_err(|e| e.to_string())?;
            report(
                warm_up_progress.as_ref(),
                &format!(
                    "warming up the {} engine on the model's input example",
                    loaded.model.info().engine
                ),
            );
            warm_up(&loaded.model, &load_dir)?;
            Ok(loaded)
        })
        .await
        .map_err(|_| "loading was interrupted".to_string())??;
        let load_seconds = started.elapsed().as_secs_f64();
        let info = loaded.model.info();
        let engine = info.engine;
        let feature_names = loaded
            .model
            .declared_inputs()
            .iter()
            .all(|spec| spec.shape.len() <= 1)
            .then(|| {
                Arc::new(
                    loaded
                        .model
                        .declared_inputs()
                        .into_iter()
                        .map(|s| s.name)
                        .collect::<Vec<_>>(),
                )
            });
        self.metrics.model_loaded(
            &model.name,
            &model.version.to_string(),
            engine,
            load_seconds,
        );
        tracing::info!(model = %model, engine, seconds = load_seconds, "model loaded");
        report(
            progress,
            &format!("{model}: ready on the {engine} engine after {load_seconds:.1} s"),
        );
        Ok(Arc::new(LoadedVersion {
            model_ref: model.clone(),
            run_id: loaded.mlmodel.run_id.clone(),
            declined: loaded.declined,
            model: loaded.model,
            dir,
            load_seconds,
            feature_names,
            background: Default::default(),
        }))
    }
}

/// A directory name for a registered model name (which may hold any
/// character MLflow allows).
fn safe_name(name: &str) -> String {
    let mut out: String = name
        .chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() || c == '-' || c == '_' || c == '.' {
                c
            } else {
                '_'
            }
        })
        .collect();
    // Different names must not share a directory.
    out.push_str(&format!("-{:08x}", fnv32(name)));
    out
}

fn fnv32(text: &str) -> u32 {
    text.bytes().fold(0x811c_9dc5u32, |h, b| {
        (h ^ u32::from(b)).wrapping_mul(0x0100_0193)
    })
}

/// Runs the model once before it takes traffic: on the serving example
/// MLflow saved with it (`serving_input_example.json`, or the older
/// `input_example.json`), whose failure fails the load, or else on one row
/// of zeros shaped like its declared inputs, whose failure is only logged
/// (zeros may be outside what a model accepts).
fn warm_up(model: &sextant_serve::Model, dir: &Path) -> Result<(), String> {
    for file in ["serving_input_example.json", "input_example.json"] {
        let Ok(body) = std::fs::read(dir.join(file)) else {
            continue;
        };
        let Ok((inputs, layout)) = super::codec::scoring_json(&body) else {
            continue;
        };
        return model
            .predict(inputs, layout)
            .map(|_| ())
            .map_err(|e| format!("the model fails on its own input example ({file}): {e}"));
    }
    let inputs: Vec<NamedTensor> = model
        .declared_inputs()
        .into_iter()
        .filter_map(|spec| {
            let mut shape: Vec<usize> = spec
                .shape
                .iter()
                .map(|&d| if d < 0 { 1 } else { d as usize })
                .collect();
            if shape.is_empty() {
                shape.push(1);
            }
            let n: usize = shape.iter().product();
            let data = match spec.dtype {
                DataType::Bytes => TensorData::Str(vec![String::new(); n]),
                DataType::Bool => TensorData::Bool(vec![false; n]),
                DataType::F32 | DataType::F16 => TensorData::F32(vec![0.0; n]),
                DataType::F64 => TensorData::F64(vec![0.0; n]),
                _ => TensorData::I64(vec![0; n]),
            };
            Tensor::new(spec.dtype, shape, data).map(|t| NamedTensor::new(spec.name, t))
        })
        .collect();
    if inputs.is_empty() {
        return Ok(());
    }
    let layout = if inputs.iter().all(|t| t.tensor.shape.len() == 1) {
        Layout::Columns
    } else {
        Layout::Tensors
    };
    if let Err(err) = model.predict(inputs, layout) {
        tracing::debug!(error = %err, "warm-up on zeros failed (not an error)");
    }
    Ok(())
}
