//! MLflow model directories: `MLmodel` (YAML: flavors, signature, ids) and
//! the files its flavors name.
//!
//! [`read_mlmodel`] parses the descriptor; [`load_model_dir`] picks an
//! engine for the directory: the native engines first (ONNX graphs,
//! XGBoost, LightGBM, scikit-learn pickles and skops files), and, when none
//! of them can run the model, the Python worker pool through the
//! `python_function` flavor, if the caller allows Python.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use yaml_rust2::{Yaml, YamlLoader};

use crate::error::{Error, Result};
use crate::model::{ColumnSpec, InputSchema, Model};
use crate::runtime::ModelRuntime;
use crate::tensor::{DataType, TensorSpec};
use crate::trees;

/// What `MLmodel` says.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct MlModel {
    /// Flavor name → its settings, as flat strings (`data`,
    /// `pickled_model`, `model_class`, `predict_fn`, …); nested values are
    /// kept as their YAML text.
    pub flavors: BTreeMap<String, BTreeMap<String, String>>,
    pub signature: Option<InputSchema>,
    /// The signature's `outputs` as written (a JSON string), for metadata.
    pub signature_outputs: Option<String>,
    /// Why a signature present in the file is not enforced (complex MLflow
    /// types such as arrays or objects), if so.
    pub signature_note: Option<String>,
    pub run_id: Option<String>,
    pub model_id: Option<String>,
    pub mlflow_version: Option<String>,
    pub utc_time_created: Option<String>,
}

impl MlModel {
    pub fn flavor(&self, name: &str) -> Option<&BTreeMap<String, String>> {
        self.flavors.get(name)
    }

    fn flavor_value(&self, flavor: &str, key: &str) -> Option<&str> {
        self.flavors.get(flavor)?.get(key).map(String::as_str)
    }
}

/// Parses an `MLmodel` file.
pub fn read_mlmodel(text: &str) -> Result<MlModel> {
    let docs = YamlLoader::load_from_str(text)
        .map_err(|e| Error::invalid(format!("MLmodel is not YAML: {e}")))?;
    let Some(Yaml::Hash(root)) = docs.into_iter().next() else {
        return Err(Error::invalid("MLmodel is not a YAML mapping"));
    };
    let get = |key: &str| root.get(&Yaml::String(key.into()));
    let scalar = |key: &str| get(key).and_then(yaml_scalar);
    let mut model = MlModel {
        run_id: scalar("run_id"),
        model_id: scalar("model_id"),
        mlflow_version: scalar("mlflow_version"),
        utc_time_created: scalar("utc_time_created"),
        ..MlModel::default()
    };
    match get("flavors") {
        Some(Yaml::Hash(flavors)) => {
            for (name, settings) in flavors {
                let Some(name) = yaml_scalar(name) else {
                    continue;
                };
                let mut values = BTreeMap::new();
                if let Yaml::Hash(settings) = settings {
                    for (key, value) in settings {
                        if let Some(key) = yaml_scalar(key) {
                            values.insert(key, yaml_text(value));
                        }
                    }
                }
                model.flavors.insert(name, values);
            }
        }
        _ => return Err(Error::invalid("MLmodel has no flavors")),
    }
    if let Some(Yaml::Hash(signature)) = get("signature") {
        let field = |key: &str| {
            signature
                .get(&Yaml::String(key.into()))
                .and_then(yaml_scalar)
        };
        if let Some(inputs) = field("inputs") {
            match parse_schema(&inputs) {
                Ok(schema) => model.signature = Some(schema),
                Err(SchemaError::NotEnforced(why)) => model.signature_note = Some(why),
                Err(SchemaError::Invalid(why)) => {
                    return Err(Error::invalid(format!("MLmodel signature inputs: {why}")))
                }
            }
        }
        model.signature_outputs = field("outputs");
    }
    Ok(model)
}

fn yaml_scalar(value: &Yaml) -> Option<String> {
    match value {
        Yaml::String(s) | Yaml::Real(s) => Some(s.clone()),
        Yaml::Integer(i) => Some(i.to_string()),
        Yaml::Boolean(b) => Some(b.to_string()),
        _ => None,
    }
}

/// A scalar as its text; lists and mappings as flow-style YAML.
fn yaml_text(value: &Yaml) -> String {
    if let Some(s) = yaml_scalar(value) {
        return s;
    }
    match value {
        Yaml::Null | Yaml::BadValue => String::new(),
        Yaml::Array(items) => format!(
            "[{}]",
            items.iter().map(yaml_text).collect::<Vec<_>>().join(", ")
        ),
        Yaml::Hash(map) => format!(
            "{{{}}}",
            map.iter()
                .map(|(k, v)| format!("{}: {}", yaml_text(k), yaml_text(v)))
                .collect::<Vec<_>>()
                .join(", ")
        ),
        _ => String::new(),
    }
}

enum SchemaError {
    /// Valid MLflow, but not something we check (arrays, objects, maps).
    NotEnforced(String),
    Invalid(String),
}

/// Parses MLflow's schema JSON (`Schema.to_json()`): a list of column specs
/// (`{"type": "double", "name": "x", "required": true}`) or of tensor specs
/// (`{"type": "tensor", "tensor-spec": {"dtype": "float64", "shape": [-1, 4]}}`).
fn parse_schema(json: &str) -> std::result::Result<InputSchema, SchemaError> {
    let value: serde_json::Value =
        serde_json::from_str(json).map_err(|e| SchemaError::Invalid(format!("not JSON: {e}")))?;
    let items = value
        .as_array()
        .ok_or_else(|| SchemaError::Invalid("not a list".into()))?;
    if items.is_empty() {
        return Err(SchemaError::Invalid("an empty list".into()));
    }
    let is_tensor =
        |item: &serde_json::Value| item.get("type").and_then(|t| t.as_str()) == Some("tensor");
    if items.iter().all(is_tensor) {
        let mut specs = Vec::with_capacity(items.len());
        for (i, item) in items.iter().enumerate() {
            let spec = item
                .get("tensor-spec")
                .ok_or_else(|| SchemaError::Invalid(format!("tensor {i} has no tensor-spec")))?;
            let dtype_name = spec.get("dtype").and_then(|d| d.as_str()).unwrap_or("");
            let dtype = DataType::from_numpy(dtype_name)
                .ok_or_else(|| SchemaError::NotEnforced(format!("tensor dtype '{dtype_name}'")))?;
            let shape = spec
                .get("shape")
                .and_then(|s| s.as_array())
                .map(|dims| dims.iter().map(|d| d.as_i64().unwrap_or(-1)).collect())
                .unwrap_or_default();
            let name = item
                .get("name")
                .and_then(|n| n.as_str())
                .unwrap_or("")
                .to_string();
            specs.push(TensorSpec::new(name, dtype, shape));
        }
        return Ok(InputSchema::Tensors(specs));
    }
    let mut columns = Vec::with_capacity(items.len());
    for (i, item) in items.iter().enumerate() {
        let type_name = item.get("type").and_then(|t| t.as_str()).unwrap_or("");
        let dtype = DataType::from_mlflow_column(type_name)
            .ok_or_else(|| SchemaError::NotEnforced(format!("column type '{type_name}'")))?;
        let Some(name) = item.get("name").and_then(|n| n.as_str()) else {
            // Unnamed columns are positional; the runtime's own input then rules.
            return Err(SchemaError::NotEnforced(format!("column {i} has no name")));
        };
        let required = item
            .get("required")
            .and_then(|r| r.as_bool())
            .unwrap_or(true);
        columns.push(ColumnSpec {
            name: name.to_string(),
            dtype,
            required,
        });
    }
    Ok(InputSchema::Columns(columns))
}

/// What [`load_model_dir`] may use.
#[derive(Debug, Clone)]
pub struct LoadOptions {
    /// Start Python workers for models no native engine can run (the
    /// config's `model_dir` is replaced by the directory being loaded).
    pub python: Option<crate::python::PythonConfig>,
    /// Use Python even when a native engine could run the model.
    pub force_python: bool,
    /// Told which engine loads the model, and why Python when it is.
    pub progress: Option<crate::Progress>,
}

/// A loaded directory: the model, what `MLmodel` said, and how the engine
/// was chosen.
pub struct LoadedModel {
    pub model: Model,
    pub mlmodel: MlModel,
    pub dir: PathBuf,
    /// Native engines that declined the model, and why; empty when one
    /// took it.
    pub declined: Vec<String>,
}

/// Loads an MLflow model directory.
pub fn load_model_dir(dir: &Path, options: &LoadOptions) -> Result<LoadedModel> {
    let mlmodel_path = dir.join("MLmodel");
    let text = std::fs::read_to_string(&mlmodel_path)
        .map_err(|e| Error::io(format!("reading {}", mlmodel_path.display()), e))?;
    let mlmodel = read_mlmodel(&text)?;
    let mut declined = Vec::new();
    if !options.force_python {
        crate::progress::report(
            options.progress.as_ref(),
            "loading the model with the native engines",
        );
        match load_native(dir, &mlmodel) {
            Ok(Some((runtime, default_output))) => {
                let mut model = Model::new(runtime, mlmodel.signature.clone());
                if let Some(name) = default_output {
                    model = model.with_default_output(&name);
                }
                return Ok(LoadedModel {
                    model,
                    mlmodel,
                    dir: dir.to_path_buf(),
                    declined,
                });
            }
            Ok(None) => {
                declined.push("no native flavor (onnx, xgboost, lightgbm, sklearn)".to_string())
            }
            Err(err @ (Error::Unsupported(_) | Error::InvalidModel(_))) => {
                declined.push(err.to_string())
            }
            Err(err) => return Err(err),
        }
    }
    if mlmodel.flavor("python_function").is_none() {
        return Err(Error::unsupported(format!(
            "no engine can run this model: {}; and it has no python_function flavor",
            declined.join("; ")
        )));
    }
    let Some(python) = &options.python else {
        return Err(Error::unsupported(format!(
            "this model needs Python ({}), and Python workers are disabled: an administrator enables them with --python-models or --python PATH",
            declined.join("; ")
        )));
    };
    crate::progress::report(
        options.progress.as_ref(),
        &format!(
            "no native engine runs it ({}): serving it with Python",
            declined.join("; ")
        ),
    );
    let config = crate::python::PythonConfig {
        model_dir: dir.to_path_buf(),
        progress: options.progress.clone(),
        ..python.clone()
    };
    let runtime = crate::python::PythonModel::start(config)?;
    let model = Model::new(Arc::new(runtime), mlmodel.signature.clone());
    Ok(LoadedModel {
        model,
        mlmodel,
        dir: dir.to_path_buf(),
        declined,
    })
}

type Native = (Arc<dyn ModelRuntime>, Option<String>);

/// The native runtime for the first flavor that has one, with the output
/// MLflow's pyfunc returns by default when it is not the runtime's first.
fn load_native(dir: &Path, mlmodel: &MlModel) -> Result<Option<Native>> {
    let read = |name: &str| -> Result<Vec<u8>> {
        let path = dir.join(name);
        std::fs::read(&path).map_err(|e| Error::io(format!("reading {}", path.display()), e))
    };
    let predict_fn = mlmodel
        .flavor_value("python_function", "predict_fn")
        .filter(|f| *f != "predict")
        .map(str::to_string);
    if let Some(data) = mlmodel.flavor_value("onnx", "data") {
        return Ok(Some((load_onnx(&read(data)?)?, None)));
    }
    if let Some(data) = mlmodel.flavor_value("xgboost", "data") {
        let spec = trees::xgboost::load(&read(data)?)?;
        let model_class = mlmodel.flavor_value("xgboost", "model_class").unwrap_or("");
        return Ok(Some(booster_runtime(spec, model_class)?));
    }
    if let Some(data) = mlmodel.flavor_value("lightgbm", "data") {
        let bytes = read(data)?;
        // The scikit-learn wrappers are saved like scikit-learn models:
        // skops (MLflow 3's default) or a pickle.
        if data.ends_with(".pkl") {
            return Ok(Some((crate::sklearn::from_pickle(&bytes)?, predict_fn)));
        }
        if data.ends_with(".skops") {
            return Ok(Some((crate::sklearn::from_skops(&bytes)?, predict_fn)));
        }
        let text = String::from_utf8(bytes)
            .map_err(|_| Error::invalid("LightGBM model is not UTF-8 text"))?;
        let spec = trees::lightgbm::from_text(&text)?;
        let model_class = mlmodel
            .flavor_value("lightgbm", "model_class")
            .unwrap_or("");
        return Ok(Some(booster_runtime(spec, model_class)?));
    }
    if let Some(flavor) = mlmodel.flavor("sklearn") {
        let format = flavor
            .get("serialization_format")
            .map(String::as_str)
            .unwrap_or("cloudpickle");
        let pickled_model = flavor.get("pickled_model").map(String::as_str);
        let runtime = match format {
            "cloudpickle" | "pickle" => {
                crate::sklearn::from_pickle(&read(pickled_model.unwrap_or("model.pkl"))?)?
            }
            "skops" => crate::sklearn::from_skops(&read(pickled_model.unwrap_or("model.skops"))?)?,
            other => {
                return Err(Error::unsupported(format!(
                    "scikit-learn models serialized with {other}"
                )))
            }
        };
        return Ok(Some((runtime, predict_fn)));
    }
    Ok(None)
}

fn load_onnx(bytes: &[u8]) -> Result<Arc<dyn ModelRuntime>> {
    Ok(Arc::new(crate::onnx::load(bytes)?))
}

/// A booster saved by the XGBoost or LightGBM flavor. Through MLflow's
/// pyfunc, a scikit-learn wrapper (`XGBClassifier`, `LGBMClassifier`)
/// predicts labels, while a bare `Booster` returns the library's raw
/// `predict`: the positive-class probability of a binary model, the class
/// probabilities of a multiclass one. The runtime's outputs are reordered
/// so that the first is what pyfunc would return.
fn booster_runtime(mut spec: trees::EnsembleSpec, model_class: &str) -> Result<Native> {
    let is_wrapper =
        model_class.contains(".sklearn.") || model_class.starts_with("lightgbm.sklearn");
    let classifier = matches!(spec.task, trees::Task::Classification(_));
    let categories = spec.categories.take();
    let ensemble = trees::compile(spec)?;
    let runtime: Arc<dyn ModelRuntime> = if is_wrapper || !classifier {
        Arc::new(ensemble)
    } else {
        Arc::new(BoosterScores::new(ensemble))
    };
    match categories {
        Some(categories) => Ok((
            trees::categories::with_categories(runtime, categories)?,
            None,
        )),
        None => Ok((runtime, None)),
    }
}

/// A classifier `Booster` answering like `Booster.predict`: `predict` is
/// the positive-class probability (binary) or the probability matrix
/// (multiclass); `predict_proba` and `predict_label` follow.
struct BoosterScores {
    ensemble: trees::TreeEnsemble,
    info: crate::runtime::RuntimeInfo,
}

impl BoosterScores {
    fn new(ensemble: trees::TreeEnsemble) -> BoosterScores {
        let mut info = ensemble.info().clone();
        let classes = ensemble.n_scores() as i64;
        let predict = if classes == 2 {
            TensorSpec::new("predict", DataType::F64, vec![-1])
        } else {
            TensorSpec::new("predict", DataType::F64, vec![-1, classes])
        };
        let label = TensorSpec {
            name: "predict_label".into(),
            ..info.outputs[0].clone()
        };
        info.outputs = vec![predict, info.outputs[1].clone(), label];
        BoosterScores { ensemble, info }
    }
}

impl ModelRuntime for BoosterScores {
    fn info(&self) -> &crate::runtime::RuntimeInfo {
        &self.info
    }

    fn predict(
        &self,
        inputs: &[crate::tensor::NamedTensor],
    ) -> Result<Vec<crate::tensor::NamedTensor>> {
        use crate::tensor::{NamedTensor, Tensor, TensorData};
        let mut outputs = self.ensemble.predict(inputs)?;
        let proba = outputs.pop().expect("classifiers return probabilities");
        let label = outputs.pop().expect("classifiers return labels");
        let rows = proba.tensor.rows();
        let predict = match (&proba.tensor.data, proba.tensor.shape.as_slice()) {
            (TensorData::F64(p), [_, 2]) => Tensor::column(TensorData::F64(
                p.iter().skip(1).step_by(2).copied().collect(),
            )),
            _ => proba.tensor.clone(),
        };
        debug_assert_eq!(predict.rows(), rows);
        Ok(vec![
            NamedTensor::new("predict", predict),
            proba,
            NamedTensor::new("predict_label", label.tensor),
        ])
    }
}

#[cfg(test)]
mod tests;
