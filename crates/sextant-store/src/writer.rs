//! Group commit for the hot write path (metrics, params, tags).
//!
//! Every `log-metric`, `log-batch`, `log-parameter` and `set-tag` request
//! becomes a job on one channel. A single task takes whatever jobs are
//! waiting, applies each inside its own savepoint (so one bad request does
//! not fail its neighbours) and commits them all in one transaction; only
//! then does each caller get its answer. Under load, one commit (and one
//! fsync where the engine does one) serves many requests, which is what
//! lets SQLite keep up with concurrent clients; an answered request has
//! always been committed.

use std::sync::Arc;

use sqlx::AnyPool;
use tokio::sync::{mpsc, oneshot, Mutex};
use tokio::task::JoinHandle;

use crate::runs::{apply_log_batch, LogBatch};
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

/// Applies each job in a savepoint and commits once. The outer `Result`
/// fails only when the transaction itself fails; per-job errors are inside.
async fn apply_group(
    pool: &AnyPool,
    backend: Backend,
    writes: &[Pending],
) -> Result<Vec<Result<()>>, sqlx::Error> {
    let mut tx = pool.begin().await?;
    let mut results = Vec::with_capacity(writes.len());
    let single = writes.len() == 1;
    for (batch, _) in writes {
        if single {
            let result = apply_log_batch(&mut tx, backend, batch).await;
            if let Err(StoreError::Database(err)) = result {
                return Err(err);
            }
            results.push(result);
            continue;
        }
        sqlx::query("SAVEPOINT job").execute(&mut *tx).await?;
        let result = apply_log_batch(&mut tx, backend, batch).await;
        match &result {
            Ok(()) => {
                sqlx::query("RELEASE SAVEPOINT job")
                    .execute(&mut *tx)
                    .await?;
            }
            Err(_) => {
                sqlx::query("ROLLBACK TO SAVEPOINT job")
                    .execute(&mut *tx)
                    .await?;
                sqlx::query("RELEASE SAVEPOINT job")
                    .execute(&mut *tx)
                    .await?;
            }
        }
        results.push(result);
    }
    if single && results.first().is_some_and(|r| r.is_err()) {
        tx.rollback().await?;
    } else {
        tx.commit().await?;
    }
    Ok(results)
}
