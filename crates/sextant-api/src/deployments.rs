//! Deployments in the native API (`/api/v1/deployments`). [`DeploymentSpec`]
//! is also the JSON the store keeps for every revision, so fields are only
//! ever added, with defaults.

#![allow(missing_docs)]

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};
use sextant_core as core;
use utoipa::ToSchema;

/// A registered model version.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema, PartialEq)]
pub struct ModelRef {
    pub name: String,
    /// The version, as MLflow spells it (a decimal string).
    pub version: String,
    /// The alias the version was chosen by, if any.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub alias: Option<String>,
}

/// One model version in a deployment.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema, PartialEq)]
pub struct Arm {
    pub name: String,
    pub model: ModelRef,
    /// Percent of live traffic (0 for shadow and standby arms).
    pub weight: u32,
    /// `live`, `shadow` or `standby`.
    pub role: String,
}

/// How the rollout proceeds.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema, PartialEq)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum Policy {
    /// One arm takes all traffic.
    Single,
    /// The `canary` arm's weight climbs through `steps`, one per healthy
    /// `interval_seconds`; a breach of a bound rolls it back.
    Canary {
        steps: Vec<u32>,
        step: usize,
        step_started_ms: i64,
        interval_seconds: f64,
        max_error_rate: f64,
        #[serde(default)]
        max_p99_ms: Option<f64>,
        min_requests: u64,
    },
    /// Arms `a` and `b` split by weight, sticky per caller.
    Ab {
        #[serde(default)]
        sticky_header: Option<String>,
    },
    /// The `shadow` arm sees a copy of `percent` of the live requests.
    Shadow { percent: u32 },
}

/// Settings beyond routing.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema, PartialEq)]
pub struct Settings {
    #[serde(default = "default_true")]
    pub log_predictions: bool,
    /// Live monitoring: drift windows and an outlier verdict on every answer.
    #[serde(default = "default_true")]
    pub monitor: bool,
    #[serde(default = "default_one")]
    pub python_workers: u32,
    /// Keep the replaced version loaded as a standby (blue-green).
    #[serde(default)]
    pub keep_standby: bool,
    /// Answer 429 to callers flagged for abuse or model extraction, for
    /// one abuse window (60 s) after the last flag.
    #[serde(default)]
    pub throttle_abusive_callers: bool,
    /// When the alias the deployment follows moves: `replace`,
    /// `blue-green` or `canary` (5, 25, 50, 100% over five-minute steps).
    #[serde(default = "default_alias_rollout")]
    pub on_alias_move: String,
}

fn default_alias_rollout() -> String {
    "replace".into()
}

fn default_true() -> bool {
    true
}

fn default_one() -> u32 {
    1
}

#[derive(Debug, Clone, Serialize, Deserialize, ToSchema, PartialEq)]
pub struct DeploymentSpec {
    pub arms: Vec<Arm>,
    pub policy: Policy,
    pub settings: Settings,
}

impl From<&core::DeploymentSpec> for DeploymentSpec {
    fn from(spec: &core::DeploymentSpec) -> DeploymentSpec {
        DeploymentSpec {
            arms: spec
                .arms
                .iter()
                .map(|arm| Arm {
                    name: arm.name.clone(),
                    model: ModelRef {
                        name: arm.model.name.clone(),
                        version: arm.model.version.to_string(),
                        alias: arm.model.alias.clone(),
                    },
                    weight: arm.weight,
                    role: arm.role.as_str().to_string(),
                })
                .collect(),
            policy: match &spec.policy {
                core::Policy::Single => Policy::Single,
                core::Policy::Canary(c) => Policy::Canary {
                    steps: c.steps.clone(),
                    step: c.step,
                    step_started_ms: c.step_started_ms,
                    interval_seconds: c.interval_ms as f64 / 1000.0,
                    max_error_rate: c.max_error_rate,
                    max_p99_ms: c.max_p99_ms,
                    min_requests: c.min_requests,
                },
                core::Policy::AbTest(ab) => Policy::Ab {
                    sticky_header: ab.sticky_header.clone(),
                },
                core::Policy::Shadow(s) => Policy::Shadow { percent: s.percent },
            },
            settings: Settings {
                log_predictions: spec.settings.log_predictions,
                monitor: spec.settings.monitor,
                python_workers: spec.settings.python_workers,
                keep_standby: spec.settings.keep_standby,
                throttle_abusive_callers: spec.settings.throttle_abusive_callers,
                on_alias_move: spec.settings.on_alias_move.as_str().to_string(),
            },
        }
    }
}

impl TryFrom<&DeploymentSpec> for core::DeploymentSpec {
    type Error = String;

    fn try_from(spec: &DeploymentSpec) -> Result<core::DeploymentSpec, String> {
        let arms = spec
            .arms
            .iter()
            .map(|arm| {
                Ok(core::Arm {
                    name: arm.name.clone(),
                    model: core::ModelRef {
                        name: arm.model.name.clone(),
                        version: arm.model.version.parse().map_err(|_| {
                            format!(
                                "arm '{}': version '{}' is not a number",
                                arm.name, arm.model.version
                            )
                        })?,
                        alias: arm.model.alias.clone(),
                    },
                    weight: arm.weight,
                    role: core::ArmRole::parse(&arm.role).ok_or_else(|| {
                        format!("arm '{}': unknown role '{}'", arm.name, arm.role)
                    })?,
                })
            })
            .collect::<Result<Vec<_>, String>>()?;
        let policy = match &spec.policy {
            Policy::Single => core::Policy::Single,
            Policy::Canary {
                steps,
                step,
                step_started_ms,
                interval_seconds,
                max_error_rate,
                max_p99_ms,
                min_requests,
            } => core::Policy::Canary(core::CanaryPolicy {
                steps: steps.clone(),
                step: *step,
                step_started_ms: *step_started_ms,
                interval_ms: (interval_seconds * 1000.0) as i64,
                max_error_rate: *max_error_rate,
                max_p99_ms: *max_p99_ms,
                min_requests: *min_requests,
            }),
            Policy::Ab { sticky_header } => core::Policy::AbTest(core::AbPolicy {
                sticky_header: sticky_header.clone(),
            }),
            Policy::Shadow { percent } => {
                core::Policy::Shadow(core::ShadowPolicy { percent: *percent })
            }
        };
        let spec = core::DeploymentSpec {
            arms,
            policy,
            settings: core::DeploymentSettings {
                log_predictions: spec.settings.log_predictions,
                monitor: spec.settings.monitor,
                python_workers: spec.settings.python_workers,
                keep_standby: spec.settings.keep_standby,
                throttle_abusive_callers: spec.settings.throttle_abusive_callers,
                on_alias_move: core::AliasRollout::parse(&spec.settings.on_alias_move).ok_or_else(
                    || {
                        format!(
                            "on_alias_move '{}': use replace, blue-green or canary",
                            spec.settings.on_alias_move
                        )
                    },
                )?,
            },
        };
        spec.validate().map_err(|e| e.0)?;
        Ok(spec)
    }
}

/// Where a deployment answers.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema, PartialEq)]
pub struct Endpoints {
    /// Open Inference Protocol: `POST` here.
    pub infer: String,
    /// MLflow's scoring protocol: `POST` here.
    pub invocations: String,
}

impl Endpoints {
    pub fn for_deployment(name: &str) -> Endpoints {
        Endpoints {
            infer: format!("/v2/models/{name}/infer"),
            invocations: format!("/deployments/{name}/invocations"),
        }
    }
}

#[derive(Debug, Clone, Serialize, Deserialize, ToSchema, PartialEq)]
pub struct Deployment {
    pub name: String,
    /// Increases with every change.
    pub revision: i64,
    pub description: String,
    pub created_by: String,
    /// Milliseconds since the Unix epoch.
    pub creation_time: i64,
    pub last_updated_time: i64,
    pub spec: DeploymentSpec,
    pub endpoints: Endpoints,
}

#[derive(Debug, Serialize, Deserialize, ToSchema)]
pub struct Deployments {
    pub deployments: Vec<Deployment>,
}

#[derive(Debug, Serialize, Deserialize, ToSchema)]
pub struct DeploymentRevision {
    pub revision: i64,
    /// `create`, `update`, `canary`, `canary_step`, `ab`, `shadow`,
    /// `promote`, `rollback`, `auto_rollback`, `settings`.
    pub action: String,
    pub reason: String,
    pub actor: String,
    pub time: i64,
    pub spec: DeploymentSpec,
}

#[derive(Debug, Serialize, Deserialize, ToSchema)]
pub struct DeploymentHistory {
    pub revisions: Vec<DeploymentRevision>,
}

/// Settings to change; absent fields stay as they are.
#[derive(Debug, Default, Deserialize, Serialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct SettingsPatch {
    pub log_predictions: Option<bool>,
    pub monitor: Option<bool>,
    #[schema(minimum = 1, maximum = 64)]
    pub python_workers: Option<u32>,
    pub keep_standby: Option<bool>,
    pub throttle_abusive_callers: Option<bool>,
    /// `replace`, `blue-green` or `canary`.
    pub on_alias_move: Option<String>,
}

/// How an update replaces the served version (documents `strategy`).
#[derive(ToSchema)]
#[schema(rename_all = "snake_case")]
#[allow(dead_code)]
pub enum UpdateStrategyName {
    Replace,
    BlueGreen,
}

#[derive(Debug, Deserialize, Serialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct CreateDeployment {
    /// 1 to 63 letters, digits, `-`, `_` or `.`, starting with a letter or digit.
    #[schema(pattern = r"^[A-Za-z0-9][A-Za-z0-9._-]{0,62}$")]
    pub name: String,
    /// `MODEL@ALIAS` or `MODEL/VERSION`.
    #[schema(pattern = r"^\s*(models:/)?[^@\s][^@]*(@[A-Za-z0-9_-]+|/([0-9]{1,18}|latest))\s*$")]
    pub model: String,
    #[serde(default)]
    pub description: Option<String>,
    #[serde(default)]
    pub settings: Option<SettingsPatch>,
}

/// Replace the served version (ends any running experiment).
#[derive(Debug, Deserialize, Serialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct UpdateDeployment {
    /// `MODEL@ALIAS` or `MODEL/VERSION`; absent to change only settings
    /// or the description.
    #[serde(default)]
    #[schema(pattern = r"^\s*(models:/)?[^@\s][^@]*(@[A-Za-z0-9_-]+|/([0-9]{1,18}|latest))\s*$")]
    pub model: Option<String>,
    /// `replace` (default) or `blue_green`: keep the replaced version
    /// loaded as a standby for an instant rollback.
    #[serde(default)]
    #[schema(value_type = Option<UpdateStrategyName>)]
    pub strategy: Option<String>,
    #[serde(default)]
    pub description: Option<String>,
    #[serde(default)]
    pub settings: Option<SettingsPatch>,
    /// Refuse the change if the deployment moved past this revision.
    #[serde(default)]
    pub expected_revision: Option<i64>,
}

#[derive(Debug, Deserialize, Serialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct StartCanary {
    #[schema(pattern = r"^\s*(models:/)?[^@\s][^@]*(@[A-Za-z0-9_-]+|/([0-9]{1,18}|latest))\s*$")]
    pub model: String,
    /// The candidate's first weight; default 10. Ignored when `steps` is given.
    #[serde(default)]
    pub weight: Option<u32>,
    /// Weights to climb through; default `[weight, 25, 50, 100]` (those
    /// above `weight`).
    #[serde(default)]
    pub steps: Option<Vec<u32>>,
    /// Baking time per step; default 300 s.
    #[serde(default)]
    #[schema(minimum = 0.0, maximum = 1e9)]
    pub interval_seconds: Option<f64>,
    /// Default 0.05 (5% of requests failing).
    #[serde(default)]
    #[schema(minimum = 0.0, maximum = 1.0)]
    pub max_error_rate: Option<f64>,
    #[serde(default)]
    pub max_p99_ms: Option<f64>,
    /// Requests per step before judging; default 100.
    #[serde(default)]
    pub min_requests: Option<u64>,
}

#[derive(Debug, Deserialize, Serialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct StartAbTest {
    #[schema(pattern = r"^\s*(models:/)?[^@\s][^@]*(@[A-Za-z0-9_-]+|/([0-9]{1,18}|latest))\s*$")]
    pub model: String,
    /// The B arm's share; default 50.
    #[serde(default)]
    pub weight: Option<u32>,
    /// Header whose value keeps a caller on one arm (default: the caller's
    /// identity, else its address).
    #[serde(default)]
    pub sticky_header: Option<String>,
}

#[derive(Debug, Deserialize, Serialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct StartShadow {
    #[schema(pattern = r"^\s*(models:/)?[^@\s][^@]*(@[A-Za-z0-9_-]+|/([0-9]{1,18}|latest))\s*$")]
    pub model: String,
    /// Share of live requests copied to the shadow; default 100.
    #[serde(default)]
    pub percent: Option<u32>,
}

#[derive(Debug, Default, Deserialize, Serialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct Promote {
    /// The arm to make primary; default the experiment's candidate.
    #[serde(default)]
    pub arm: Option<String>,
}

#[derive(Debug, Default, Deserialize, Serialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct Rollback {
    #[serde(default)]
    pub reason: Option<String>,
}

/// Counters of one arm, cumulative since the replica started serving the
/// revision.
#[derive(Debug, Clone, Default, Serialize, Deserialize, ToSchema, PartialEq)]
pub struct ArmCounters {
    pub requests: u64,
    /// Requests that failed on the server's side (5xx).
    pub errors: u64,
    /// Requests refused as the caller's mistake (4xx).
    pub rejected: u64,
    /// Counts per latency bucket; the bounds are `LATENCY_BUCKETS_MS`.
    pub latency_buckets: Vec<u64>,
}

/// Upper bounds (ms) of the latency buckets in [`ArmCounters`]; the last
/// bucket is everything slower.
pub const LATENCY_BUCKETS_MS: &[f64] = &[
    0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 25.0, 50.0, 100.0, 250.0, 500.0, 1000.0, 2500.0,
    5000.0, 10000.0,
];

/// What a serving replica reports to the server.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct ReplicaReport {
    /// A name unique per replica process.
    pub replica: String,
    /// The revision it serves.
    pub revision: i64,
    pub arms: BTreeMap<String, ArmCounters>,
}

/// One arm as it runs.
#[derive(Debug, Serialize, Deserialize, ToSchema)]
pub struct ArmStatus {
    pub name: String,
    pub model: ModelRef,
    pub role: String,
    pub weight: u32,
    /// `loading`, `ready` or `failed`.
    pub state: String,
    /// The engine running it: `native-trees`, `onnx`, `python`.
    #[serde(default)]
    pub engine: Option<String>,
    /// Why the native engines did not take the model, when Python runs it
    /// (a custom transformer, an estimator they do not know, …).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub native_declined: Vec<String>,
    /// Seconds from fetching its files to warm, on this server.
    #[serde(default)]
    pub load_seconds: Option<f64>,
    #[serde(default)]
    pub error: Option<String>,
    /// Counters summed over every server and replica serving this
    /// revision (what each stored within the last minute), so any server
    /// answers the same figures.
    pub counters: ArmCounters,
    pub p50_ms: Option<f64>,
    pub p99_ms: Option<f64>,
}

#[derive(Debug, Serialize, Deserialize, ToSchema)]
pub struct DeploymentStatus {
    pub name: String,
    /// The latest revision in the store.
    pub revision: i64,
    /// The revision this server is serving (it lags while a new one loads,
    /// or stays behind when the new one failed to load).
    pub serving_revision: Option<i64>,
    pub ready: bool,
    pub policy: Policy,
    pub arms: Vec<ArmStatus>,
    /// Why the latest revision is not served, if it is not.
    #[serde(default)]
    pub message: Option<String>,
    /// The other processes (replicas, and servers on the same database)
    /// whose counters of this revision are included, as of the last minute.
    pub replicas: Vec<String>,
}

/// One stage of a deployment change, as `GET /api/v1/progress/{id}` shows
/// it.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct ProgressStage {
    /// Seconds since the request started.
    pub seconds: f64,
    /// What happened then: fetching model files, building a Python
    /// environment, loading, warming up.
    pub stage: String,
}

/// What a request that sent `X-Sextant-Progress: <id>` has done so far.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct ProgressReport {
    pub stages: Vec<ProgressStage>,
    /// The request has been answered.
    pub done: bool,
}
