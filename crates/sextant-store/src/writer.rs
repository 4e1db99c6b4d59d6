//! Group commit for the hot write path (metrics, params, tags).
//!
//! Every `log-metric`, `log-batch`, `log-parameter` and `set-tag` request
//! becomes a job on one channel, with its audit entry (appended to the
//! audit chain in the same transaction when the job is accepted). A single task takes whatever jobs are
//! waiting, applies each inside its own savepoint (so one bad request does
//! not fail its neighbours) and commits them all in one transaction; only
//! then does each caller get its answer. Under load, one commit (and one
//! fsync where the engine does one) serves many requests, which is what
//! lets SQLite keep up with concurrent clients; an answered request has
//! always been committed.

use std::collections::HashMap;
use std::sync::Arc;

use sqlx::{AnyPool, Row};
use tokio::sync::{mpsc, oneshot, Mutex};
use tokio::task::JoinHandle;

use crate::db::SqlBuilder;
use crate::runs::{
    apply_log_batch, insert_metric_points, run_not_active, run_not_found, LogBatch, RunPoint,
};
use crate::{Backend, Result, StoreError};

/// Most jobs committed together; bounds transaction size and latency.
const MAX_JOBS_PER_COMMIT: usize = 256;
/// Queue depth before callers wait (backpressure).
const QUEUE_CAPACITY: usize = 4096;

enum Job {
    Write {
        batch: LogBatch,
        reply: oneshot::Sender<Result<()>>,
    },
    Shutdown {
        done: oneshot::Sender<()>,
    },
}

#[derive(Clone)]
pub(crate) struct WriterHandle {
    sender: mpsc::Sender<Job>,
    task: Arc<Mutex<Option<JoinHandle<()>>>>,
}

impl WriterHandle {
    pub(crate) fn spawn(pool: AnyPool, backend: Backend) -> WriterHandle {
        let (sender, receiver) = mpsc::channel(QUEUE_CAPACITY);
        let task = tokio::spawn(run_writer(pool, backend, receiver));
        WriterHandle {
            sender,
            task: Arc::new(Mutex::new(Some(task))),
        }
    }

    /// Queues a batch and waits until it is committed (or rejected).
    pub(crate) async fn write(&self, batch: LogBatch) -> Result<()> {
        let (reply, answer) = oneshot::channel();
        self.sender
            .send(Job::Write { batch, reply })
            .await
            .map_err(|_| StoreError::ShuttingDown)?;
        answer.await.map_err(|_| StoreError::ShuttingDown)?
    }

    /// Commits everything queued so far, then stops the task.
    pub(crate) async fn shutdown(&self) {
        let (done, finished) = oneshot::channel();
        if self.sender.send(Job::Shutdown { done }).await.is_ok() {
            let _ = finished.await;
        }
        if let Some(task) = self.task.lock().await.take() {
            if let Err(err) = task.await {
                tracing::error!(cause = %err, "metric writer task failed");
            }
        }
    }
}

async fn run_writer(pool: AnyPool, backend: Backend, mut receiver: mpsc::Receiver<Job>) {
    while let Some(first) = receiver.recv().await {
        let mut writes = Vec::new();
        let mut shutdown = None;
        let mut next = Some(first);
        while let Some(job) = next.take() {
            match job {
                Job::Write { batch, reply } => writes.push((batch, reply)),
                Job::Shutdown { done } => {
                    shutdown = Some(done);
                    break;
                }
            }
            if writes.len() >= MAX_JOBS_PER_COMMIT {
                break;
            }
            next = receiver.try_recv().ok();
        }
        if !writes.is_empty() {
            commit_group(&pool, backend, writes).await;
        }
        if let Some(done) = shutdown {
            receiver.close();
            // Anything that slipped in before `close` is still committed.
            let mut rest = Vec::new();
            while let Ok(job) = receiver.try_recv() {
                if let Job::Write { batch, reply } = job {
                    rest.push((batch, reply));
                }
            }
            if !rest.is_empty() {
                commit_group(&pool, backend, rest).await;
            }
            let _ = done.send(());
            return;
        }
    }
}

type Pending = (LogBatch, oneshot::Sender<Result<()>>);

async fn commit_group(pool: &AnyPool, backend: Backend, writes: Vec<Pending>) {
    let n_jobs = writes.len();
    let outcome = apply_group(pool, backend, &writes).await;
    match outcome {
        Ok(results) => {
            for ((_, reply), result) in writes.into_iter().zip(results) {
                let _ = reply.send(result);
            }
        }
        Err(err) => {
            tracing::error!(cause = %err, n_jobs, "group commit failed");
            for (_, reply) in writes {
                let _ = reply.send(Err(StoreError::Database(sqlx::Error::Protocol(format!(
                    "group commit failed: {err}"
                )))));
            }
        }
    }
}

/// Applies a group of jobs in one transaction and commits once. The outer
/// `Result` fails only when the transaction itself fails; each job's own
/// outcome is inside.
///
/// Jobs that only log metrics (the hot path: `log-metric`, metric-only
/// `log-batch`) cannot fail once their run is known to be active, so their
/// points are merged into one set of statements. Jobs with params or tags
/// can be refused (a param may not change), so each runs inside its own
/// savepoint and a refusal undoes only that job.
async fn apply_group(
    pool: &AnyPool,
    backend: Backend,
    writes: &[Pending],
) -> Result<Vec<Result<()>>, sqlx::Error> {
    let mut tx = pool.begin().await?;
    let stages = run_stages(&mut tx, backend, writes).await?;
    let mut results: Vec<Result<()>> = Vec::with_capacity(writes.len());
    let mut merged: Vec<RunPoint<'_>> = Vec::new();
    let mut one_by_one = Vec::new();
    for (idx, (batch, _)) in writes.iter().enumerate() {
        let run_id = batch.run_id.as_str();
        match stages.get(run_id).map(String::as_str) {
            None => results.push(Err(run_not_found(run_id))),
            Some("active") if batch.params.is_empty() && batch.tags.is_empty() => {
                merged.extend(batch.metrics.iter().map(|metric| (run_id, metric)));
                results.push(Ok(()));
            }
            Some("active") => {
                one_by_one.push(idx);
                results.push(Ok(()));
            }
            Some(_) => results.push(Err(run_not_active(run_id))),
        }
    }
    if !merged.is_empty() {
        if let Err(err) = insert_metric_points(&mut tx, backend, &merged).await {
            return Err(into_sqlx(err));
        }
    }
    for idx in one_by_one {
        sqlx::query("SAVEPOINT job").execute(&mut *tx).await?;
        let result = apply_log_batch(&mut tx, backend, &writes[idx].0).await;
        if result.is_ok() {
            sqlx::query("RELEASE SAVEPOINT job")
                .execute(&mut *tx)
                .await?;
        } else {
            sqlx::query("ROLLBACK TO SAVEPOINT job")
                .execute(&mut *tx)
                .await?;
            sqlx::query("RELEASE SAVEPOINT job")
                .execute(&mut *tx)
                .await?;
        }
        results[idx] = result;
    }
    let entries: Vec<_> = writes
        .iter()
        .zip(&results)
        .filter(|(_, result)| result.is_ok())
        .filter_map(|((batch, _), _)| batch.audit.clone())
        .collect();
    if !entries.is_empty() {
        crate::audit::append_in(&mut tx, backend, entries)
            .await
            .map_err(into_sqlx)?;
    }
    tx.commit().await?;
    Ok(results)
}

/// Lifecycle stage of every run the group writes to, in one query.
async fn run_stages(
    tx: &mut sqlx::Transaction<'_, sqlx::Any>,
    backend: Backend,
    writes: &[Pending],
) -> Result<HashMap<String, String>, sqlx::Error> {
    let mut run_ids: Vec<String> = writes
        .iter()
        .map(|(batch, _)| batch.run_id.clone())
        .collect();
    run_ids.sort();
    run_ids.dedup();
    let mut sql = SqlBuilder::new(
        backend,
        "SELECT run_id, lifecycle_stage FROM runs WHERE run_id IN ",
    );
    sql.bind_text_list(&run_ids);
    let mut stages = HashMap::with_capacity(run_ids.len());
    for row in sql.query().fetch_all(&mut **tx).await? {
        stages.insert(
            row.try_get::<String, _>("run_id")?,
            row.try_get::<String, _>("lifecycle_stage")?,
        );
    }
    Ok(stages)
}

/// Statement failures inside the merged path fail the whole group.
fn into_sqlx(err: StoreError) -> sqlx::Error {
    match err {
        StoreError::Database(err) => err,
        other => sqlx::Error::Protocol(other.to_string()),
    }
}
