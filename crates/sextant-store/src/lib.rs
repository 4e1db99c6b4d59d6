//! The metadata store of Sextant: experiments, runs, metrics, logged models
//! and the model registry, on SQLite (embedded default) or PostgreSQL.
//!
//! One schema serves both backends (`migrations/{sqlite,postgres}/` hold the
//! same versions) and one set of SQL statements runs on both through sqlx's
//! `Any` driver, so the two cannot drift apart; the few dialect differences
//! (case-sensitive `LIKE`, advisory locks, pragmas) are switched on
//! [`Backend`] in one place each.
//!
//! Hot writes (metrics, params and tags) go through a single writer task that
//! commits many requests in one transaction (group commit, see `writer`), and
//! every acknowledged write has been committed.
//!
//! This crate knows nothing about HTTP; callers get domain types from
//! `sextant-core` and a [`StoreError`] that says whose mistake it was.

mod audit;
mod db;
mod deployments;
mod experiments;
mod governance;
mod leader;
mod logged_models;
mod migrate;
mod monitoring;
mod overview;
mod registry;
mod runs;
mod saved_views;
mod search_sql;
mod validation;
mod writer;

use std::time::{Duration, SystemTime, UNIX_EPOCH};

use sqlx::any::AnyPoolOptions;
use sqlx::AnyPool;

pub use crate::audit::{entry_hash, AuditQuery, GENESIS_HASH};
pub use crate::deployments::{ArmReportRecord, DeploymentRecord, RevisionRecord};
pub use crate::governance::{Credentials, NewTransitionRequest, TokenOwner, TransitionFilter};
pub use crate::leader::{Leadership, LEADER_PERIOD};
pub use crate::logged_models::NewLoggedModel;
pub use crate::monitoring::{
    AlertEventRecord, AlertRuleRecord, FeedbackRecord, FeedbackWrite, TriggerRunRecord,
};
pub use crate::overview::Series;
pub use crate::registry::NewModelVersion;
pub use crate::runs::{LogBatch, RunUpdate, MAX_BULK_INTERVAL_RESULTS};
pub use crate::saved_views::MAX_VIEW_TARGET;

/// Which database engine backs the store.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Backend {
    Sqlite,
    Postgres,
}

/// How to open the store.
#[derive(Debug, Clone)]
pub struct StoreConfig {
    /// `sqlite:///path/to/file.db`, `sqlite://relative.db` or `postgresql://…`.
    pub database_url: String,
    /// Prefix of new experiments' artifact locations, e.g. `mlflow-artifacts:/`.
    pub default_artifact_root: String,
    /// Largest number of pooled connections.
    pub max_connections: u32,
}

/// Errors of the store. The first four are the caller's mistakes and are
/// shown to the user; `Database` is ours and is logged, not shown.
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    #[error("{0}")]
    NotFound(String),
    #[error("{0}")]
    AlreadyExists(String),
    #[error("{0}")]
    InvalidInput(String),
    /// The change lost a race with another change of the same resource.
    #[error("{0}")]
    Conflict(String),
    #[error("the store is shutting down")]
    ShuttingDown,
    #[error("database error: {0}")]
    Database(#[from] sqlx::Error),
    #[error("cannot open the store: {0}")]
    Open(String),
}

impl From<sextant_core::validation::InvalidInput> for StoreError {
    fn from(err: sextant_core::validation::InvalidInput) -> StoreError {
        StoreError::InvalidInput(err.message)
    }
}

impl From<sextant_core::search::SearchError> for StoreError {
    fn from(err: sextant_core::search::SearchError) -> StoreError {
        StoreError::InvalidInput(err.message)
    }
}

pub type Result<T, E = StoreError> = std::result::Result<T, E>;

/// A handle to the metadata store; cheap to clone.
#[derive(Clone)]
pub struct Store {
    /// Connections for reads (and every access on PostgreSQL).
    pool: AnyPool,
    /// Connections for writes. On SQLite this is one connection: SQLite has
    /// a single writer anyway, and queueing writers here (asynchronously)
    /// replaces lock contention inside SQLite, whose busy handler sleeps
    /// and whose deferred transactions fail with "database is locked" when
    /// two of them try to upgrade to writing at once.
    write_pool: AnyPool,
    backend: Backend,
    /// The database's URL (for connections outside the pools: the leader
    /// election's session).
    url: String,
    default_artifact_root: String,
    writer: writer::WriterHandle,
    audit: audit::AuditWriter,
}

impl Store {
    /// Opens (and for SQLite creates) the database, applies pending
    /// migrations and makes sure the `Default` experiment exists.
    pub async fn open(config: &StoreConfig) -> Result<Store> {
        sqlx::any::install_default_drivers();
        let (backend, url) = normalize_url(&config.database_url)?;
        let open = |max_connections: u32| open_pool(backend, &url, max_connections);
        let pool = open(config.max_connections.max(2)).await.map_err(|err| {
            StoreError::Open(format!("{}: {err}", redact_url(&config.database_url)))
        })?;
        let write_pool = match backend {
            Backend::Sqlite => open(1).await?,
            Backend::Postgres => pool.clone(),
        };
        migrate::apply(&write_pool, backend).await?;
        let writer = writer::WriterHandle::spawn(write_pool.clone(), backend);
        let audit = audit::AuditWriter::spawn(write_pool.clone(), backend);
        let store = Store {
            pool,
            write_pool,
            backend,
            url,
            default_artifact_root: config.default_artifact_root.clone(),
            writer,
            audit,
        };
        store.ensure_default_experiment().await?;
        Ok(store)
    }

    /// The engine behind this store.
    pub fn backend(&self) -> Backend {
        self.backend
    }

    /// Stops the writer after it has committed everything queued, then
    /// closes the pool. Writes submitted afterwards fail with `ShuttingDown`.
    pub async fn close(&self) {
        self.writer.shutdown().await;
        self.audit.shutdown().await;
        self.write_pool.close().await;
        self.pool.close().await;
    }

    /// A cheap liveness probe of the database.
    pub async fn ping(&self) -> Result<()> {
        sqlx::query("SELECT 1").fetch_one(&self.pool).await?;
        Ok(())
    }
}

async fn open_pool(
    backend: Backend,
    url: &str,
    max_connections: u32,
) -> Result<AnyPool, sqlx::Error> {
    let pool_options = AnyPoolOptions::new()
        .max_connections(max_connections)
        .acquire_timeout(Duration::from_secs(30));
    let pool_options = match backend {
        Backend::Sqlite => pool_options.after_connect(|conn, _meta| {
            Box::pin(async move {
                // WAL lets readers proceed while the writer commits; NORMAL
                // sync in WAL mode keeps every committed transaction across a
                // crash of the process (kill -9) and only risks the last ones
                // on power loss. MLflow matches LIKE case-sensitively (ILIKE
                // lowers both sides).
                for pragma in [
                    "PRAGMA journal_mode = WAL",
                    "PRAGMA synchronous = NORMAL",
                    "PRAGMA busy_timeout = 10000",
                    "PRAGMA case_sensitive_like = ON",
                ] {
                    sqlx::Executor::execute(&mut *conn, pragma).await?;
                }
                Ok(())
            })
        }),
        Backend::Postgres => pool_options,
    };
    pool_options.connect(url).await
}

/// Accepts the spellings users know from MLflow (`sqlite:///abs/path.db`,
/// `postgresql://`, `postgresql+psycopg2://`) and returns the sqlx URL.
fn normalize_url(url: &str) -> Result<(Backend, String)> {
    if let Some(rest) = url.strip_prefix("sqlite://") {
        let path = rest.split('?').next().unwrap_or(rest);
        if path.is_empty() || path == ":memory:" || path == "/:memory:" {
            return Err(StoreError::Open(
                "an in-memory SQLite database would lose every write; give a file path".into(),
            ));
        }
        let separator = if rest.contains('?') { "&" } else { "?" };
        let with_mode = if rest.contains("mode=") {
            rest.to_string()
        } else {
            format!("{rest}{separator}mode=rwc")
        };
        return Ok((Backend::Sqlite, format!("sqlite://{with_mode}")));
    }
    for prefix in [
        "postgresql+psycopg2://",
        "postgresql+psycopg://",
        "postgresql://",
        "postgres://",
    ] {
        if let Some(rest) = url.strip_prefix(prefix) {
            return Ok((Backend::Postgres, format!("postgres://{rest}")));
        }
    }
    Err(StoreError::Open(format!(
        "unsupported backend store URI '{}': use sqlite:///path/to/file.db or postgresql://user:password@host/db",
        redact_url(url)
    )))
}

/// Hides a password in a database URL before it reaches a log or a message.
pub fn redact_url(url: &str) -> String {
    match (url.find("://"), url.rfind('@')) {
        (Some(scheme_end), Some(at)) if at > scheme_end => {
            let credentials = &url[scheme_end + 3..at];
            match credentials.find(':') {
                Some(colon) => format!(
                    "{}{}:***{}",
                    &url[..scheme_end + 3],
                    &credentials[..colon],
                    &url[at..]
                ),
                None => url.to_string(),
            }
        }
        _ => url.to_string(),
    }
}

/// Milliseconds since the Unix epoch, as MLflow timestamps are.
pub(crate) fn now_ms() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_millis() as i64)
        .unwrap_or(0)
}

/// 32 lowercase hex digits, the shape of MLflow run ids.
pub(crate) fn new_hex_id() -> String {
    uuid::Uuid::new_v4().simple().to_string()
}
