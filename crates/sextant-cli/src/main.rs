//! The `sextant` command.
//!
//! `sextant server` starts the tracking server and model registry on the
//! embedded default (SQLite and local files under the data directory) or on
//! PostgreSQL and object storage. This binary is the only place that reads
//! the environment, installs the log subscriber and builds the runtime.

mod batch;
mod capture;
mod client;
mod datasets;
mod deploy;
mod exec;
mod explain;
mod image;
mod input;
mod k8s;
mod monitor;
mod output;
mod profile;
mod reproduce;
mod validate;
mod watch;

use std::net::SocketAddr;
use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::Context;

/// mimalloc instead of glibc's allocator: a request of the inference path
/// makes a few dozen small allocations across two tokio workers, and
/// glibc's arenas spent about a sixth of a request's CPU in malloc and free
/// (measured with perf under wrk; see docs/BENCHMARKS.md).
#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;
use clap::{Parser, Subcommand};
use sextant_artifacts::ArtifactStore;
use sextant_server::{AppState, Auth, Options};
use sextant_store::{Store, StoreConfig};

#[derive(Parser)]
#[command(
    name = "sextant",
    version,
    about = "Sextant: experiment tracking, model registry and serving in one binary"
)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Start the server (MLflow-compatible REST API and artifact proxy).
    Server(ServerArgs),
    /// Set the first admin's password with the bootstrap token the server printed.
    Bootstrap {
        #[command(flatten)]
        connection: client::Connection,
        #[command(flatten)]
        args: client::BootstrapArgs,
    },
    /// Manage users (admins), or see who you are.
    Users {
        #[command(flatten)]
        connection: client::Connection,
        #[command(subcommand)]
        command: client::UsersCommand,
    },
    /// Manage groups of users (admins).
    Groups {
        #[command(flatten)]
        connection: client::Connection,
        #[command(subcommand)]
        command: client::GroupsCommand,
    },
    /// Create, list and revoke API tokens.
    Tokens {
        #[command(flatten)]
        connection: client::Connection,
        #[command(subcommand)]
        command: client::TokensCommand,
    },
    /// Grant and revoke permissions on experiments, models and deployments.
    Permissions {
        #[command(flatten)]
        connection: client::Connection,
        #[command(subcommand)]
        command: client::PermissionsCommand,
    },
    /// The promotion workflow: request, approve, reject, cancel; model policies.
    Transitions {
        #[command(flatten)]
        connection: client::Connection,
        #[command(subcommand)]
        command: client::TransitionsCommand,
    },
    /// Query, export and verify the audit log.
    Audit {
        #[command(flatten)]
        connection: client::Connection,
        #[command(subcommand)]
        command: client::AuditCommand,
    },
    /// Deploy registered models: create, update, canary, A/B test, shadow, promote, rollback, image.
    Deployments {
        #[command(flatten)]
        connection: client::Connection,
        #[command(subcommand)]
        command: deploy::DeploymentsCommand,
    },
    /// A deployment's live monitoring: drift, missing values, outliers, abuse, ground-truth feedback, performance, reference.
    Monitoring {
        #[command(flatten)]
        connection: client::Connection,
        #[command(subcommand)]
        command: watch::MonitoringCommand,
    },
    /// Alert rules on monitoring metrics: list what fires, set, delete, evaluate now.
    Alerts {
        #[command(flatten)]
        connection: client::Connection,
        #[command(subcommand)]
        command: watch::AlertsCommand,
    },
    /// A deployment's retraining trigger: show, set, delete, run now.
    Retrain {
        #[command(flatten)]
        connection: client::Connection,
        #[command(subcommand)]
        command: watch::RetrainCommand,
    },
    /// Serve deployments as a stateless replica that follows a server (or a bundle in an image).
    Serve {
        #[command(flatten)]
        connection: client::Connection,
        #[command(flatten)]
        args: deploy::ServeArgs,
    },
    /// Kubernetes manifests for an installation: servers, replicas with autoscaling, batch Jobs, monitoring.
    #[command(subcommand)]
    K8s(k8s::K8sCommand),
    /// Compare two Parquet or CSV files column by column: a drift report in JSON or HTML.
    Drift(monitor::DriftArgs),
    /// Profile a Parquet or CSV file (EDA): per column type, missing values, distinct values, quantiles, histogram or top categories, zeros, outliers; duplicate rows, constant columns, correlations, association with a target, a comparison with a second file.
    Profile(profile::ProfileArgs),
    /// Estimate a model's performance on unlabelled data from a labelled reference: CBPE for a binary classifier's scores, DLE for a regressor.
    Estimate(monitor::EstimateArgs),
    /// Score a Parquet or CSV file with a registered model (or a local MLflow model directory).
    Predict {
        #[command(flatten)]
        connection: client::Connection,
        #[command(flatten)]
        args: batch::PredictArgs,
    },
    /// Validate a model against a spec (metric thresholds, slices, fairness, behavioural tests, data expectations, budgets); exit 0 passed, 1 failed, 2 could not run.
    Validate {
        #[command(flatten)]
        connection: client::Connection,
        #[command(flatten)]
        args: validate::ValidateArgs,
    },
    /// Data expectations (Great Expectations' vocabulary, shortened) checked against a file in one read
    Expectations {
        #[command(flatten)]
        connection: client::Connection,
        #[command(subcommand)]
        command: validate::ExpectationsCommand,
    },
    /// Quality gates on the server: attach a model's validation spec, a version's validation status, run it again, override (admins)
    Gates {
        #[command(flatten)]
        connection: client::Connection,
        #[command(subcommand)]
        command: validate::GatesCommand,
    },
    /// SHAP values of every row of a Parquet or CSV file: TreeSHAP for tree ensembles, Linear SHAP for linear models, KernelSHAP for the rest.
    Explain {
        #[command(flatten)]
        connection: client::Connection,
        #[command(flatten)]
        args: explain::ExplainArgs,
    },
    /// Run a training command in an MLflow run and record what it depended on: code, packages, system, GPUs, container, seed, data hashes (sextant exec -- python train.py)
    Exec {
        #[command(flatten)]
        connection: client::Connection,
        #[command(flatten)]
        args: exec::ExecArgs,
    },
    /// Lineage: a deployment, model version or run back to its code, environment and data (deployment:NAME, models:/NAME@ALIAS, runs:/ID); or what a dataset or commit fed (dataset:sha256:HEX, commit:SHA)
    Lineage {
        #[command(flatten)]
        connection: client::Connection,
        #[command(flatten)]
        args: exec::LineageArgs,
    },
    /// Run a recorded run again from its manifest (commit and diff, packages, data by digest, seed) and compare its metrics; exit 1 when one moved beyond --tolerance
    Reproduce {
        #[command(flatten)]
        connection: client::Connection,
        #[command(flatten)]
        args: reproduce::ReproduceArgs,
    },
    /// Datasets stored by content: push a file or directory (deduplicated chunks), pull a version with every chunk checked, list
    Datasets {
        #[command(flatten)]
        connection: client::Connection,
        #[command(subcommand)]
        command: datasets::DatasetsCommand,
    },
    /// A run's environment manifest (from `sextant exec`), checked against the hash in the audit log; exits 1 when it was edited
    Manifest {
        #[command(flatten)]
        connection: client::Connection,
        #[command(flatten)]
        args: exec::ManifestArgs,
    },
}

#[derive(clap::Args)]
struct ServerArgs {
    /// Address to listen on. Only loopback by default.
    #[arg(long, default_value = "127.0.0.1", env = "SEXTANT_HOST")]
    host: String,
    /// Port to listen on (MLflow's default).
    #[arg(long, short = 'p', default_value_t = 5000, env = "SEXTANT_PORT")]
    port: u16,
    /// Share of monitored predictions explained (SHAP) in the background,
    /// for global importance and explanation drift in the monitoring report;
    /// 0 turns it off.
    #[arg(long, default_value_t = sextant_server::serving::explain::DEFAULT_SAMPLE_RATE, env = "SEXTANT_EXPLAIN_SAMPLE_RATE")]
    explain_sample_rate: f64,
    /// Share of one core the background explainer may use; beyond it,
    /// samples are dropped (counted in sextant_explanations_dropped_total).
    #[arg(long, default_value_t = sextant_server::serving::explain::DEFAULT_CORE_SHARE, env = "SEXTANT_EXPLAIN_CPU_SHARE")]
    explain_cpu_share: f64,
    /// Directory for the embedded SQLite database and local artifacts.
    /// Defaults to $XDG_DATA_HOME/sextant (~/.local/share/sextant).
    #[arg(long, env = "SEXTANT_DATA_DIR")]
    data_dir: Option<PathBuf>,
    /// Metadata database: sqlite:///path/file.db or postgresql://user:pass@host:port/db.
    /// Defaults to SQLite in the data directory.
    #[arg(long, env = "SEXTANT_BACKEND_STORE_URI")]
    backend_store_uri: Option<String>,
    /// Where artifacts go: a local path, file://, s3://bucket/prefix, gs://…, az://….
    /// Object-store credentials and endpoints come from the usual AWS_*, GOOGLE_* and AZURE_* variables.
    /// Defaults to <data-dir>/artifacts.
    #[arg(long, env = "SEXTANT_ARTIFACTS_DESTINATION")]
    artifacts_destination: Option<String>,
    /// Artifact root for new experiments, as `mlflow server` spells it. The
    /// default, `mlflow-artifacts:/`, makes clients upload and download
    /// through this server; a storage URL here (e.g. `s3://bucket/path`)
    /// makes clients talk to the storage directly with their own credentials.
    #[arg(
        long,
        default_value = "mlflow-artifacts:/",
        env = "SEXTANT_DEFAULT_ARTIFACT_ROOT"
    )]
    default_artifact_root: String,
    /// Accepted for `mlflow server` compatibility; Sextant always serves artifacts.
    #[arg(long = "serve-artifacts", hide = true)]
    _serve_artifacts: bool,
    /// Accepted for `mlflow server` compatibility and ignored: one Sextant
    /// process uses every core.
    #[arg(long, hide = true)]
    workers: Option<u32>,
    /// Largest single artifact upload, in bytes.
    #[arg(long, default_value_t = 50 * 1024 * 1024 * 1024, env = "SEXTANT_MAX_ARTIFACT_BYTES")]
    max_artifact_bytes: u64,
    /// Largest number of database connections.
    #[arg(long, default_value_t = 16, env = "SEXTANT_MAX_CONNECTIONS")]
    max_connections: u32,
    /// Require authentication (users, API tokens, permissions, promotion
    /// workflow). At first start the admin gets SEXTANT_ADMIN_PASSWORD, or a
    /// one-time bootstrap token is printed.
    #[arg(long, env = "SEXTANT_AUTH")]
    auth: bool,
    /// Serve a non-loopback address without authentication, so that anyone
    /// who can reach it can read and change everything.
    #[arg(long, env = "SEXTANT_ALLOW_UNAUTHENTICATED_NETWORK_ACCESS")]
    allow_unauthenticated_network_access: bool,
    /// Give every run data write (metric, param, tag) its own audit entry
    /// (`true`/`false`). Default: on with --auth, off without. Everything
    /// else, and every refused request, is always audited.
    #[arg(long, env = "SEXTANT_AUDIT_RUN_DATA")]
    audit_run_data: Option<bool>,
    /// What every signed-in user may do on every experiment and model
    /// without a grant: `none` (the default), `read` or `edit`.
    #[arg(long, default_value = "none", env = "SEXTANT_DEFAULT_PERMISSION", value_parser = ["none", "read", "edit"])]
    default_permission: String,
    /// A TOML file of server settings (the options above, e.g. `auth = true`,
    /// `port = 5000`); flags and SEXTANT_* variables override it.
    #[arg(long, env = "SEXTANT_CONFIG")]
    config: Option<PathBuf>,
    #[command(flatten)]
    python: PythonArgs,
    /// Seconds between rounds of the deployment controller (canary steps,
    /// deployments following an alias that moved).
    #[arg(long, default_value_t = 5.0, env = "SEXTANT_CANARY_CHECK_SECONDS")]
    canary_check_seconds: f64,
    /// Seconds between evaluations of the alert rules.
    #[arg(long, default_value_t = 60.0, env = "SEXTANT_ALERT_CHECK_SECONDS")]
    alert_check_seconds: f64,
    /// A webhook that receives every alert as Alertmanager's JSON (repeat
    /// for several; comma-separated in the variable).
    #[arg(
        long = "alert-webhook",
        env = "SEXTANT_ALERT_WEBHOOKS",
        value_delimiter = ','
    )]
    alert_webhooks: Vec<String>,
    /// Let retraining triggers run commands on this host (with the server's rights).
    #[arg(long, env = "SEXTANT_ALLOW_TRIGGER_COMMANDS")]
    allow_trigger_commands: bool,
    /// This server's address as alert receivers should link to it.
    #[arg(long, env = "SEXTANT_EXTERNAL_URL")]
    external_url: Option<String>,
    #[command(flatten)]
    origin: OriginArgs,
    #[command(flatten)]
    connections: ConnectionArgs,
    /// Directories whose files logged datasets may name: drift reports and
    /// monitoring references read local dataset files only from inside
    /// these (comma-separated in the variable). None by default.
    #[arg(long = "data-roots", env = "SEXTANT_DATA_ROOTS", value_delimiter = ',')]
    data_roots: Vec<PathBuf>,
    /// Internal hosts users' alert and retraining webhooks may reach anyway:
    /// names, `*.example.com`, addresses or CIDR ranges (`10.0.0.0/8`), or
    /// `*` (comma-separated in the variable). Loopback, private, link-local
    /// and metadata addresses are refused otherwise.
    #[arg(
        long = "webhook-allowed-hosts",
        env = "SEXTANT_WEBHOOK_ALLOWED_HOSTS",
        value_delimiter = ','
    )]
    webhook_allowed_hosts: Vec<String>,
    /// Answer /metrics without credentials on a server with --auth (it names
    /// deployments, models and features).
    #[arg(long, env = "SEXTANT_PUBLIC_METRICS")]
    public_metrics: bool,
}

/// How a server or replica serves models only Python can run.
#[derive(clap::Args, Debug, Clone)]
pub(crate) struct PythonArgs {
    /// Serve models only Python can run, each in a virtualenv built from its
    /// requirements.txt (wheels only) with the python3 on PATH. Off by
    /// default: a Python model runs its author's code on this server.
    #[arg(long = "python-models", env = "SEXTANT_PYTHON_MODELS")]
    python_models: bool,
    /// Serve models only Python can run with this interpreter, used as is (it
    /// needs mlflow and the models' dependencies, like `mlflow models serve
    /// --env-manager local`); implies --python-models.
    #[arg(long, env = "SEXTANT_PYTHON")]
    python: Option<PathBuf>,
    /// Refuse models that need Python (the default without --python-models).
    #[arg(long, env = "SEXTANT_NO_PYTHON", hide = true)]
    no_python: bool,
    /// Run Python workers as this user, e.g. `nobody` (the server must run as
    /// root, and the interpreter, models and cache must be readable by it).
    #[arg(long = "python-worker-user", env = "SEXTANT_PYTHON_WORKER_USER")]
    python_worker_user: Option<String>,
    /// Let Python workers use the network. By default each worker has a
    /// network namespace of its own (no network), where the platform allows.
    #[arg(long = "python-worker-network", env = "SEXTANT_PYTHON_WORKER_NETWORK")]
    python_worker_network: bool,
    /// Address space of one Python worker, in MiB.
    #[arg(
        long = "python-worker-memory-mib",
        default_value_t = 8192,
        env = "SEXTANT_PYTHON_WORKER_MEMORY_MIB"
    )]
    python_worker_memory_mib: u64,
}

impl PythonArgs {
    /// The Python setup the flags ask for, confined as far as the platform
    /// allows (what it does not allow is logged); `None` refuses Python models.
    pub(crate) fn setup(
        &self,
        cache_dir: &std::path::Path,
    ) -> Option<sextant_serve::python::PythonSetup> {
        use sextant_serve::python::{PythonSetup, Sandbox};
        let enabled = !self.no_python && (self.python_models || self.python.is_some());
        if !enabled {
            return None;
        }
        let env = env_manager(self.python.clone(), cache_dir)?;
        let wanted = Sandbox {
            no_network: !self.python_worker_network,
            user: self.python_worker_user.clone(),
            memory_bytes: Some(self.python_worker_memory_mib.saturating_mul(1024 * 1024)),
            open_files: Some(4096),
            ..Sandbox::default()
        };
        let probed = Sandbox::probe(wanted);
        for missing in &probed.missing {
            tracing::warn!("python worker sandbox: {missing}");
        }
        if probed.sandbox.user.is_none() && running_as_root() {
            tracing::warn!("python workers run as root: start the server as an unprivileged user, or give --python-worker-user");
        }
        Some(PythonSetup {
            env,
            sandbox: probed.sandbox,
        })
    }
}

fn running_as_root() -> bool {
    std::process::Command::new("id")
        .arg("-u")
        .output()
        .is_ok_and(|output| output.stdout.trim_ascii() == b"0")
}

/// How many HTTP connections a server or replica holds.
#[derive(clap::Args, Debug, Clone)]
pub(crate) struct ConnectionArgs {
    /// Most HTTP connections open at once (default: three quarters of the
    /// open-files limit, which is raised to its maximum at start).
    #[arg(long = "max-http-connections", env = "SEXTANT_MAX_HTTP_CONNECTIONS")]
    max_http_connections: Option<usize>,
    /// Seconds a connection may take to send a request's headers, or sit
    /// idle between requests, before it is closed.
    #[arg(
        long = "http-header-timeout",
        default_value_t = 15.0,
        env = "SEXTANT_HTTP_HEADER_TIMEOUT"
    )]
    http_header_timeout: f64,
    /// Seconds a request body may go without sending anything.
    #[arg(
        long = "http-body-timeout",
        default_value_t = 60.0,
        env = "SEXTANT_HTTP_BODY_TIMEOUT"
    )]
    http_body_timeout: f64,
}

impl ConnectionArgs {
    pub(crate) fn limits(&self) -> sextant_server::ConnectionLimits {
        // Idle or slow sockets must never take the descriptors the server
        // needs for its database, files and healthy clients.
        let open_files = rlimit::increase_nofile_limit(u64::MAX).unwrap_or(1024);
        let default = usize::try_from(open_files / 4 * 3)
            .unwrap_or(usize::MAX)
            .clamp(32, 65_536);
        let seconds = |value: f64| std::time::Duration::from_secs_f64(value.max(0.1));
        sextant_server::ConnectionLimits {
            max_connections: self.max_http_connections.unwrap_or(default),
            header_timeout: seconds(self.http_header_timeout),
            body_timeout: seconds(self.http_body_timeout),
        }
    }
}

/// Which hosts and pages browsers may reach a server or replica from.
#[derive(clap::Args, Debug, Clone)]
pub(crate) struct OriginArgs {
    /// Host names answered besides IP addresses and localhost: names,
    /// `*.example.com`, or `*` for any (comma-separated in the variable).
    /// Other names are refused, so a DNS-rebinding page cannot reach the server.
    #[arg(
        long = "allowed-hosts",
        env = "SEXTANT_ALLOWED_HOSTS",
        value_delimiter = ','
    )]
    allowed_hosts: Vec<String>,
    /// Origins (`https://app.example.com`, or `*`) whose pages may send
    /// state-changing requests; other origins are refused.
    #[arg(
        long = "cors-allowed-origins",
        env = "SEXTANT_CORS_ALLOWED_ORIGINS",
        value_delimiter = ','
    )]
    cors_allowed_origins: Vec<String>,
}

impl OriginArgs {
    pub(crate) fn policy(&self) -> sextant_server::origin::OriginPolicy {
        let clean = |items: &[String]| {
            items
                .iter()
                .map(|item| item.trim().to_string())
                .filter(|item| !item.is_empty())
                .collect()
        };
        sextant_server::origin::OriginPolicy {
            allowed_hosts: clean(&self.allowed_hosts),
            allowed_origins: clean(&self.cors_allowed_origins),
        }
    }
}

/// Settings a config file may hold: the `server` options, spelled with `_`
/// or `-`.
const CONFIG_KEYS: &[&str] = &[
    "host",
    "port",
    "data_dir",
    "backend_store_uri",
    "artifacts_destination",
    "default_artifact_root",
    "max_artifact_bytes",
    "max_connections",
    "auth",
    "allow_unauthenticated_network_access",
    "audit_run_data",
    "default_permission",
    "python",
    "python_models",
    "no_python",
    "python_worker_user",
    "python_worker_network",
    "python_worker_memory_mib",
    "canary_check_seconds",
    "alert_check_seconds",
    "alert_webhooks",
    "allow_trigger_commands",
    "external_url",
    "allowed_hosts",
    "cors_allowed_origins",
    "data_roots",
    "public_metrics",
    "webhook_allowed_hosts",
    "max_http_connections",
    "http_header_timeout",
    "http_body_timeout",
];

/// Reads `--config FILE` (or SEXTANT_CONFIG) before the flags are parsed and
/// turns each setting into its SEXTANT_* variable unless that is already
/// set: flags beat variables, variables beat the file.
fn apply_config_file() -> anyhow::Result<()> {
    let args: Vec<String> = std::env::args().collect();
    let from_flag = args.iter().enumerate().find_map(|(idx, arg)| {
        if arg == "--config" {
            args.get(idx + 1).cloned()
        } else {
            arg.strip_prefix("--config=").map(str::to_string)
        }
    });
    let Some(path) = from_flag.or_else(|| std::env::var("SEXTANT_CONFIG").ok()) else {
        return Ok(());
    };
    let text = std::fs::read_to_string(&path)
        .with_context(|| format!("while reading the config file {path}"))?;
    let table: toml::Table = text
        .parse()
        .with_context(|| format!("while parsing the config file {path}"))?;
    for (key, value) in table {
        let normalized = key.replace('-', "_");
        if !CONFIG_KEYS.contains(&normalized.as_str()) {
            anyhow::bail!(
                "unknown setting '{key}' in {path}; known settings: {}",
                CONFIG_KEYS.join(", ")
            );
        }
        let text = match value {
            toml::Value::String(s) => s,
            toml::Value::Integer(n) => n.to_string(),
            toml::Value::Boolean(b) => b.to_string(),
            // Lists (`allowed_hosts = ["a", "b"]`) become the variable's commas.
            toml::Value::Array(items) if items.iter().all(toml::Value::is_str) => items
                .iter()
                .filter_map(toml::Value::as_str)
                .collect::<Vec<_>>()
                .join(","),
            other => anyhow::bail!(
                "setting '{key}' in {path} must be a string, number, boolean or list of strings, not {}",
                other.type_str()
            ),
        };
        let variable = format!("SEXTANT_{}", normalized.to_ascii_uppercase());
        if std::env::var_os(&variable).is_none() {
            // Single-threaded here: no runtime or other thread exists yet.
            std::env::set_var(variable, text);
        }
    }
    Ok(())
}

fn main() -> ExitCode {
    if let Err(err) = apply_config_file() {
        eprintln!("sextant: error: {}", error_text(&err));
        return ExitCode::from(2);
    }
    let cli = Cli::parse();
    init_tracing();
    let runtime = match tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
    {
        Ok(runtime) => runtime,
        Err(err) => {
            tracing::error!(cause = %err, "cannot start the async runtime");
            return ExitCode::from(2);
        }
    };
    let result = runtime.block_on(async {
        match cli.command {
            Command::Server(args) => serve(args).await,
            Command::Bootstrap { connection, args } => client::bootstrap(&connection, args).await,
            Command::Users {
                connection,
                command,
            } => client::users(&connection, command).await,
            Command::Groups {
                connection,
                command,
            } => client::groups(&connection, command).await,
            Command::Tokens {
                connection,
                command,
            } => client::tokens(&connection, command).await,
            Command::Permissions {
                connection,
                command,
            } => client::permissions(&connection, command).await,
            Command::Transitions {
                connection,
                command,
            } => client::transitions(&connection, command).await,
            Command::Audit {
                connection,
                command,
            } => client::audit(&connection, command).await,
            Command::Deployments {
                connection,
                command,
            } => deploy::deployments(&connection, command).await,
            Command::Monitoring {
                connection,
                command,
            } => watch::monitoring(&connection, command).await,
            Command::Alerts {
                connection,
                command,
            } => watch::alerts(&connection, command).await,
            Command::Retrain {
                connection,
                command,
            } => watch::retrain(&connection, command).await,
            Command::Serve { connection, args } => deploy::serve(&connection, args).await,
            Command::Predict { connection, args } => batch::predict(&connection, args).await,
            Command::Explain { connection, args } => explain::explain(&connection, args).await,
            Command::Validate { connection, args } => validate::validate(&connection, args).await,
            Command::Gates {
                connection,
                command,
            } => validate::gates(&connection, command).await,
            Command::Expectations {
                connection,
                command,
            } => validate::expectations(&connection, command),
            Command::Exec { connection, args } => exec::exec(&connection, args).await,
            Command::Manifest { connection, args } => exec::manifest(&connection, args).await,
            Command::Lineage { connection, args } => exec::lineage(&connection, args).await,
            Command::Reproduce { connection, args } => {
                reproduce::reproduce(&connection, args).await
            }
            Command::Datasets {
                connection,
                command,
            } => datasets::datasets(&connection, command).await,
            Command::K8s(command) => k8s::k8s(command),
            Command::Drift(args) => monitor::drift(args).await,
            Command::Estimate(args) => monitor::estimate(args),
            Command::Profile(args) => profile::profile(args),
        }
    });
    match result {
        Ok(()) => ExitCode::SUCCESS,
        // `sextant … | head`: the reader has what it wanted.
        Err(err) if is_broken_pipe(&err) => ExitCode::SUCCESS,
        Err(err) => {
            // The one message a failed start must show, whatever RUST_LOG says.
            eprintln!("sextant: error: {}", error_text(&err));
            ExitCode::from(2)
        }
    }
}

/// The error and its causes, `: `-separated, as `{:#}` writes them, but
/// without a cause the message before it already quotes (errors that put
/// their source in their own message).
fn error_text(err: &anyhow::Error) -> String {
    let mut text = String::new();
    for cause in err.chain() {
        let cause = cause.to_string();
        if text.is_empty() {
            text = cause;
        } else if !text.ends_with(&cause) {
            text.push_str(": ");
            text.push_str(&cause);
        }
    }
    text
}

fn is_broken_pipe(err: &anyhow::Error) -> bool {
    err.chain().any(|cause| {
        cause
            .downcast_ref::<std::io::Error>()
            .is_some_and(|io| io.kind() == std::io::ErrorKind::BrokenPipe)
    })
}

fn init_tracing() {
    // An empty RUST_LOG counts as unset rather than as "log nothing".
    let filter = std::env::var("RUST_LOG")
        .ok()
        .filter(|directives| !directives.trim().is_empty())
        .and_then(|directives| tracing_subscriber::EnvFilter::try_new(directives).ok())
        .unwrap_or_else(|| tracing_subscriber::EnvFilter::new("info,sqlx=warn,tower_http=warn"));
    // Colour only on a terminal that wants it: a log file gets plain text.
    use std::io::IsTerminal;
    let colour = std::io::stderr().is_terminal()
        && std::env::var_os("NO_COLOR").is_none_or(|v| v.is_empty());
    tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_target(false)
        .with_ansi(colour)
        .with_writer(std::io::stderr)
        .init();
}

/// Where downloaded models and Python environments are cached:
/// `$XDG_CACHE_HOME/sextant` (`~/.cache/sextant`).
pub(crate) fn default_cache_dir() -> PathBuf {
    if let Some(dir) = std::env::var_os("XDG_CACHE_HOME").filter(|d| !d.is_empty()) {
        return PathBuf::from(dir).join("sextant");
    }
    match std::env::var_os("HOME").filter(|h| !h.is_empty()) {
        Some(home) => PathBuf::from(home).join(".cache/sextant"),
        None => std::env::temp_dir().join("sextant"),
    }
}

/// How Python-only models run: the given interpreter as is, else a
/// virtualenv per model from the python3 on PATH; `None` when there is no
/// Python at all.
pub(crate) fn env_manager(
    python: Option<PathBuf>,
    cache_dir: &std::path::Path,
) -> Option<sextant_serve::python::EnvManager> {
    use sextant_serve::python::EnvManager;
    if let Some(python) = python {
        return Some(EnvManager::Local { python });
    }
    let base = std::env::var_os("PATH")
        .into_iter()
        .flat_map(|paths| std::env::split_paths(&paths).collect::<Vec<_>>())
        .map(|dir| dir.join("python3"))
        .find(|candidate| candidate.is_file())?;
    Some(EnvManager::Virtualenv {
        base_python: base,
        cache_dir: cache_dir.join("python"),
    })
}

/// A Python worker config (its model directory is set per model).
pub(crate) fn python_config(
    python: Option<PathBuf>,
    cache_dir: &std::path::Path,
) -> Option<sextant_serve::python::PythonConfig> {
    env_manager(python, cache_dir).map(|env| {
        sextant_serve::python::PythonConfig::new(PathBuf::new(), env, cache_dir.join("python"))
    })
}

/// `host:port` as a socket address (IPv6 hosts with or without brackets).
pub(crate) fn socket_address(host: &str, port: u16) -> anyhow::Result<SocketAddr> {
    format!("{host}:{port}")
        .parse()
        .or_else(|_| format!("[{host}]:{port}").parse())
        .with_context(|| format!("invalid --host/--port: {host}:{port}"))
}

fn default_data_dir() -> PathBuf {
    if let Some(dir) = std::env::var_os("XDG_DATA_HOME").filter(|d| !d.is_empty()) {
        return PathBuf::from(dir).join("sextant");
    }
    match std::env::var_os("HOME").filter(|h| !h.is_empty()) {
        Some(home) => PathBuf::from(home).join(".local/share/sextant"),
        None => PathBuf::from("sextant-data"),
    }
}

/// Object-store settings from the environment (`AWS_ENDPOINT` becomes
/// `aws_endpoint`, …); `object_store` ignores keys it does not know.
fn object_store_options() -> Vec<(String, String)> {
    std::env::vars()
        .filter(|(key, _)| {
            key.starts_with("AWS_") || key.starts_with("GOOGLE_") || key.starts_with("AZURE_")
        })
        .map(|(key, value)| (key.to_ascii_lowercase(), value))
        .collect()
}

async fn serve(args: ServerArgs) -> anyhow::Result<()> {
    if let Some(workers) = args.workers {
        tracing::info!(
            workers,
            "--workers is ignored: one Sextant process uses every core"
        );
    }
    let data_dir = args.data_dir.clone().unwrap_or_else(default_data_dir);
    std::fs::create_dir_all(&data_dir)
        .with_context(|| format!("while creating the data directory {}", data_dir.display()))?;
    let database_url = match args.backend_store_uri.clone() {
        Some(uri) => uri,
        None => format!("sqlite://{}", data_dir.join("sextant.db").display()),
    };
    let artifacts_destination = args
        .artifacts_destination
        .clone()
        .unwrap_or_else(|| data_dir.join("artifacts").display().to_string());
    let store = Store::open(&StoreConfig {
        database_url: database_url.clone(),
        default_artifact_root: args.default_artifact_root.clone(),
        max_connections: args.max_connections,
    })
    .await
    .context("while opening the metadata store")?;
    let artifacts = ArtifactStore::open(
        &artifacts_destination,
        &object_store_options(),
        args.max_artifact_bytes,
    )
    .context("while opening the artifact destination")?;
    let address = socket_address(&args.host, args.port)?;
    if !args.auth && !address.ip().is_loopback() && !args.allow_unauthenticated_network_access {
        anyhow::bail!(
            "refusing to serve {address} without authentication: anyone who can reach it could read and \
             change every experiment and model. Start with --auth (recommended), listen on 127.0.0.1, or pass \
             --allow-unauthenticated-network-access if something in front of Sextant authenticates"
        );
    }
    if !args.auth && !address.ip().is_loopback() {
        tracing::warn!(%address, "serving a network address WITHOUT authentication (--allow-unauthenticated-network-access)");
    }
    let listener = tokio::net::TcpListener::bind(address)
        .await
        .with_context(|| format!("while binding {address}"))?;
    tracing::info!(
        address = %format!("http://{address}"),
        metadata = %sextant_store::redact_url(&database_url),
        artifacts = %artifacts.description(),
        "sextant is listening"
    );
    let auth = if args.auth {
        Auth::Enabled
    } else {
        Auth::Disabled
    };
    let mut options = Options::with_auth(auth);
    if let Some(audit_run_data) = args.audit_run_data {
        options.audit_run_data = audit_run_data;
    }
    options.default_permission = sextant_core::Permission::parse(&args.default_permission);
    options.origin = args.origin.policy();
    options.public_metrics = args.public_metrics;
    options.connections = args.connections.limits();
    options.webhooks = sextant_server::outbound::OutboundPolicy {
        allowed_hosts: args.webhook_allowed_hosts.clone(),
    };
    options.data_roots = args
        .data_roots
        .iter()
        .map(|root| {
            std::fs::canonicalize(root)
                .with_context(|| format!("--data-roots: cannot open {}", root.display()))
        })
        .collect::<anyhow::Result<_>>()?;
    let cache_dir = data_dir.join("serving");
    let serving_config = sextant_server::serving::ServingConfig {
        cache_dir: cache_dir.clone(),
        python: args.python.setup(&cache_dir),
        max_blocking: 64,
        // Unique across pods too, where every server may be pid 1.
        replica_name: format!(
            "server-{}-{}",
            std::env::var("HOSTNAME")
                .ok()
                .filter(|h| !h.is_empty())
                .unwrap_or_else(|| "local".into()),
            std::process::id()
        ),
        feedback_index_rows: sextant_server::serving::feedback::DEFAULT_INDEX_ROWS,
        explain_sample_rate: args.explain_sample_rate,
        explain_core_share: args.explain_cpu_share,
    };
    let period = std::time::Duration::from_secs_f64(args.canary_check_seconds.max(0.05));
    let serving = sextant_server::serving::Serving::embedded(
        store.clone(),
        artifacts.clone(),
        serving_config,
        period,
    );
    for url in &args.alert_webhooks {
        sextant_server::alerting::check_url(url)
            .map_err(|e| anyhow::anyhow!(e))
            .context("--alert-webhook")?;
    }
    let alerting = sextant_server::alerting::AlertingConfig {
        webhooks: args.alert_webhooks.clone(),
        allow_commands: args.allow_trigger_commands,
        external_url: args
            .external_url
            .clone()
            .unwrap_or_else(|| format!("http://{address}")),
    };
    let alert_period = std::time::Duration::from_secs_f64(args.alert_check_seconds.max(0.05));
    let state = AppState::with_options(store, artifacts, options)
        .with_serving(serving.clone())
        .with_alerting(alerting);
    serving.spawn(sextant_server::alerting::run(
        state.clone(),
        alert_period,
        serving.stopped(),
    ));
    if args.auth {
        let admin_password = std::env::var("SEXTANT_ADMIN_PASSWORD")
            .ok()
            .filter(|p| !p.is_empty());
        let token = state
            .governance()
            .bootstrap(admin_password.as_deref())
            .await
            .map_err(|err| anyhow::anyhow!(err))
            .context("while creating the first admin")?;
        if let Some(token) = token {
            // Printed once, whatever the log filter: it is the only way in.
            eprintln!(
                "\nsextant: authentication is on and the admin has no password yet.\n\
                 sextant: one-time bootstrap token (valid 24 hours, not shown again):\n\n    {token}\n\n\
                 sextant: set the admin password with:\n    sextant bootstrap --server http://{address} --token {token}\n"
            );
        }
    }
    sextant_server::run(listener, state, shutdown_signal())
        .await
        .context("while serving")?;
    tracing::info!("sextant stopped");
    Ok(())
}

/// Resolves on SIGINT (Ctrl-C) or SIGTERM.
pub(crate) async fn shutdown_signal() {
    let ctrl_c = async {
        if let Err(err) = tokio::signal::ctrl_c().await {
            tracing::error!(cause = %err, "cannot listen for Ctrl-C");
            std::future::pending::<()>().await;
        }
    };
    #[cfg(unix)]
    let terminate = async {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut signal) => {
                signal.recv().await;
            }
            Err(err) => {
                tracing::error!(cause = %err, "cannot listen for SIGTERM");
                std::future::pending::<()>().await;
            }
        }
    };
    #[cfg(not(unix))]
    let terminate = std::future::pending::<()>();
    tokio::select! {
        () = ctrl_c => {},
        () = terminate => {},
    }
    tracing::info!("shutting down: finishing in-flight requests");
}

#[cfg(test)]
mod tests {
    use clap::CommandFactory;

    /// A cause the message already quotes is not repeated; others are.
    #[test]
    fn error_text_quotes_each_cause_once() {
        let missing = std::io::Error::new(std::io::ErrorKind::NotFound, "no such file");
        let table = sextant_monitor::dataset::DatasetError::Io {
            path: "data.csv".into(),
            source: missing,
        };
        let err = anyhow::Error::new(table);
        assert_eq!(
            super::error_text(&err),
            "cannot read data.csv: no such file"
        );
        let wrapped = anyhow::anyhow!("no such file").context("while loading");
        assert_eq!(super::error_text(&wrapped), "while loading: no such file");
    }

    /// Every subcommand says what it does and every argument what it takes:
    /// `sextant <command> --help` is the documentation most users read.
    #[test]
    fn every_command_and_argument_has_help() {
        fn walk(command: &clap::Command, path: &str, missing: &mut Vec<String>) {
            for arg in command.get_arguments() {
                let id = arg.get_id().as_str();
                if id == "help" || id == "version" || arg.is_hide_set() {
                    continue;
                }
                if arg.get_help().is_none() && arg.get_long_help().is_none() {
                    missing.push(format!("{path} <{id}>"));
                }
            }
            for sub in command.get_subcommands() {
                let sub_path = format!("{path} {}", sub.get_name());
                if sub.get_about().is_none() && sub.get_long_about().is_none() {
                    missing.push(sub_path.clone());
                }
                walk(sub, &sub_path, missing);
            }
        }
        let cli = super::Cli::command();
        cli.clone().debug_assert();
        let mut missing = Vec::new();
        walk(&cli, "sextant", &mut missing);
        assert!(missing.is_empty(), "without help:\n{}", missing.join("\n"));
    }
}
