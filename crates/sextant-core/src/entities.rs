//! The records the tracking server and the model registry keep.
//!
//! Field names follow MLflow's protobuf messages so that the mapping to the
//! wire format in `sextant-api` stays one-to-one and easy to audit.

/// Declares a closed set of string-valued states with their canonical spelling.
macro_rules! string_enum {
    ($(#[$meta:meta])* $name:ident { $($variant:ident => $text:literal),+ $(,)? }) => {
        $(#[$meta])*
        #[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
        pub enum $name { $($variant),+ }

        impl $name {
            /// Every variant, in declaration order.
            pub const ALL: &'static [$name] = &[$($name::$variant),+];

            /// The canonical spelling, as MLflow sends it.
            pub fn as_str(self) -> &'static str {
                match self { $($name::$variant => $text),+ }
            }

            /// Parses the canonical spelling exactly.
            pub fn parse(text: &str) -> Option<$name> {
                match text { $($text => Some($name::$variant),)+ _ => None }
            }
        }

        impl ::std::fmt::Display for $name {
            fn fmt(&self, f: &mut ::std::fmt::Formatter<'_>) -> ::std::fmt::Result {
                f.write_str(self.as_str())
            }
        }
    };
}

string_enum!(
    /// Status of a run (`mlflow.RunStatus`).
    RunStatus { Running => "RUNNING", Scheduled => "SCHEDULED", Finished => "FINISHED", Failed => "FAILED", Killed => "KILLED" }
);

string_enum!(
    /// Which lifecycle stages a search returns (`mlflow.ViewType`).
    ViewType { ActiveOnly => "ACTIVE_ONLY", DeletedOnly => "DELETED_ONLY", All => "ALL" }
);

string_enum!(
    /// Soft-deletion state of experiments and runs.
    LifecycleStage { Active => "active", Deleted => "deleted" }
);

string_enum!(
    /// Upload state of an MLflow 3 logged model.
    LoggedModelStatus {
        Unspecified => "LOGGED_MODEL_STATUS_UNSPECIFIED",
        Pending => "LOGGED_MODEL_PENDING",
        Ready => "LOGGED_MODEL_READY",
        UploadFailed => "LOGGED_MODEL_UPLOAD_FAILED",
    }
);

string_enum!(
    /// Registry stage of a model version (deprecated in MLflow 2.9 but still
    /// used by its clients, and the basis of Sextant's promotion workflow).
    Stage { None => "None", Staging => "Staging", Production => "Production", Archived => "Archived" }
);

impl Stage {
    /// Parses a stage name case-insensitively, as MLflow's registry does.
    pub fn parse_loose(text: &str) -> Option<Stage> {
        Stage::ALL
            .iter()
            .copied()
            .find(|stage| stage.as_str().eq_ignore_ascii_case(text))
    }
}

impl ViewType {
    /// Whether a record in `stage` is visible under this view.
    pub fn includes(self, stage: LifecycleStage) -> bool {
        match self {
            ViewType::ActiveOnly => stage == LifecycleStage::Active,
            ViewType::DeletedOnly => stage == LifecycleStage::Deleted,
            ViewType::All => true,
        }
    }
}

/// A key/value pair: tags and params of every entity share this shape.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct KeyValue {
    pub key: String,
    pub value: String,
}

#[derive(Debug, Clone, PartialEq)]
pub struct Experiment {
    pub experiment_id: String,
    pub name: String,
    pub artifact_location: String,
    pub lifecycle_stage: LifecycleStage,
    pub creation_time: i64,
    pub last_update_time: i64,
    pub tags: Vec<KeyValue>,
}

/// One metric point. `value` may be NaN or infinite: MLflow clients send
/// those as the strings `"NaN"`, `"Infinity"` and `"-Infinity"`.
#[derive(Debug, Clone, PartialEq)]
pub struct Metric {
    pub key: String,
    pub value: f64,
    pub timestamp: i64,
    pub step: i64,
    pub model_id: Option<String>,
    pub dataset_name: Option<String>,
    pub dataset_digest: Option<String>,
}

/// A metric point together with the run it belongs to (bulk history).
#[derive(Debug, Clone, PartialEq)]
pub struct RunMetric {
    pub run_id: String,
    pub metric: Metric,
}

#[derive(Debug, Clone, PartialEq)]
pub struct RunInfo {
    pub run_id: String,
    pub run_name: String,
    pub experiment_id: String,
    pub user_id: String,
    pub status: RunStatus,
    pub start_time: i64,
    pub end_time: Option<i64>,
    pub artifact_uri: String,
    pub lifecycle_stage: LifecycleStage,
}

#[derive(Debug, Clone, PartialEq, Default)]
pub struct RunData {
    /// The latest value of each metric key (greatest `(step, timestamp, value)`).
    pub metrics: Vec<Metric>,
    pub params: Vec<KeyValue>,
    pub tags: Vec<KeyValue>,
}

#[derive(Debug, Clone, PartialEq)]
pub struct Dataset {
    pub name: String,
    pub digest: String,
    pub source_type: String,
    pub source: String,
    pub schema: Option<String>,
    pub profile: Option<String>,
}

#[derive(Debug, Clone, PartialEq)]
pub struct DatasetInput {
    pub tags: Vec<KeyValue>,
    pub dataset: Dataset,
}

#[derive(Debug, Clone, PartialEq, Default)]
pub struct RunInputs {
    pub dataset_inputs: Vec<DatasetInput>,
    pub model_inputs: Vec<String>,
}

#[derive(Debug, Clone, PartialEq)]
pub struct ModelOutput {
    pub model_id: String,
    pub step: i64,
}

#[derive(Debug, Clone, PartialEq)]
pub struct Run {
    pub info: RunInfo,
    pub data: RunData,
    pub inputs: RunInputs,
    pub outputs: Vec<ModelOutput>,
}

#[derive(Debug, Clone, PartialEq)]
pub struct LoggedModel {
    pub model_id: String,
    pub experiment_id: String,
    pub name: String,
    pub artifact_uri: String,
    pub status: LoggedModelStatus,
    pub status_message: Option<String>,
    pub model_type: Option<String>,
    pub source_run_id: Option<String>,
    pub creation_timestamp_ms: i64,
    pub last_updated_timestamp_ms: i64,
    pub tags: Vec<KeyValue>,
    pub params: Vec<KeyValue>,
    /// Metrics logged with this model's id (latest per key and dataset),
    /// with the run that logged each.
    pub metrics: Vec<RunMetric>,
}

#[derive(Debug, Clone, PartialEq)]
pub struct ModelVersion {
    pub name: String,
    pub version: i64,
    pub creation_timestamp: i64,
    pub last_updated_timestamp: i64,
    pub user_id: Option<String>,
    pub current_stage: Stage,
    pub description: Option<String>,
    pub source: String,
    /// Where the files are: `source` itself, or for a `models:/m-…` source
    /// the logged model's artifact URI.
    pub storage_location: String,
    pub run_id: Option<String>,
    pub run_link: Option<String>,
    pub model_id: Option<String>,
    pub tags: Vec<KeyValue>,
    pub aliases: Vec<String>,
}

#[derive(Debug, Clone, PartialEq)]
pub struct RegisteredModelAlias {
    pub alias: String,
    pub version: i64,
}

#[derive(Debug, Clone, PartialEq)]
pub struct RegisteredModel {
    pub name: String,
    pub creation_timestamp: i64,
    pub last_updated_timestamp: i64,
    pub description: Option<String>,
    /// The latest version in each stage.
    pub latest_versions: Vec<ModelVersion>,
    pub tags: Vec<KeyValue>,
    pub aliases: Vec<RegisteredModelAlias>,
}

/// A page of search results; `next_page_token` is opaque to clients.
#[derive(Debug, Clone, PartialEq)]
pub struct Page<T> {
    pub items: Vec<T>,
    pub next_page_token: Option<String>,
}
