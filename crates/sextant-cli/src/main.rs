//! The `sextant` command.
//!
//! `sextant server` starts the tracking server and model registry on the
//! embedded default (SQLite and local files under the data directory) or on
//! PostgreSQL and object storage. This binary is the only place that reads
//! the environment, installs the log subscriber and builds the runtime.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::Context;
use clap::{Parser, Subcommand};
use sextant_artifacts::ArtifactStore;
use sextant_server::AppState;
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
}

#[derive(clap::Args)]
struct ServerArgs {
    /// Address to listen on. Only loopback by default.
    #[arg(long, default_value = "127.0.0.1", env = "SEXTANT_HOST")]
    host: String,
    /// Port to listen on (MLflow's default).
    #[arg(long, short = 'p', default_value_t = 5000, env = "SEXTANT_PORT")]
    port: u16,
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
    #[arg(long, default_value_t = 16)]
    max_connections: u32,
}

fn main() -> ExitCode {
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
        }
    });
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(err) => {
            // The one message a failed start must show, whatever RUST_LOG says.
            eprintln!("sextant: error: {err:#}");
            ExitCode::from(2)
        }
    }
}

fn init_tracing() {
    // An empty RUST_LOG counts as unset rather than as "log nothing".
    let filter = std::env::var("RUST_LOG")
        .ok()
        .filter(|directives| !directives.trim().is_empty())
        .and_then(|directives| tracing_subscriber::EnvFilter::try_new(directives).ok())
        .unwrap_or_else(|| tracing_subscriber::EnvFilter::new("info,sqlx=warn,tower_http=warn"));
    tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_target(false)
        .init();
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
    let address: SocketAddr = format!("{}:{}", args.host, args.port)
        .parse()
        .or_else(|_| format!("[{}]:{}", args.host, args.port).parse())
        .with_context(|| format!("invalid --host/--port: {}:{}", args.host, args.port))?;
    let listener = tokio::net::TcpListener::bind(address)
        .await
        .with_context(|| format!("while binding {address}"))?;
    tracing::info!(
        address = %format!("http://{address}"),
        metadata = %sextant_store::redact_url(&database_url),
        artifacts = %artifacts.description(),
        "sextant is listening"
    );
    sextant_server::run(listener, AppState::new(store, artifacts), shutdown_signal())
        .await
        .context("while serving")?;
    tracing::info!("sextant stopped");
    Ok(())
}

/// Resolves on SIGINT (Ctrl-C) or SIGTERM.
async fn shutdown_signal() {
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
