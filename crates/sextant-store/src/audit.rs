//! The audit log: append-only, numbered without gaps and hash-chained.
//!
//! Entry `n` stores `hash_n = SHA-256(hash_{n-1} ‖ canonical(entry_n))`, with
//! every field length-prefixed in `canonical` so that no two entries encode
//! alike. Editing a field breaks that entry's hash; deleting or inserting an
//! entry breaks the numbering or the next entry's link. (Cutting entries off
//! the end, or rewriting the whole tail with recomputed hashes, needs the head
//! hash kept elsewhere to detect: `AuditVerification::head_hash` is that.)
//!
//! Appends go through one task that numbers and chains a group of entries
//! and commits them in one transaction, like the metric writer; on
//! PostgreSQL a transaction-scoped advisory lock serialises the replicas.
//! `append_audit` answers once its entry has committed. The entries of run
//! data writes (metrics, params, tags: thousands a second) do not come here:
//! they ride in the metric writer's transaction with the data they record
//! (`LogBatch::audit`, `append_in`), so they cost no commit of their own and
//! exist exactly when their change does.

use std::sync::Arc;

use sextant_core::{AuditEntry, AuditVerification, NewAuditEntry};
use sha2::{Digest, Sha256};
use sqlx::any::AnyRow;
use sqlx::AnyPool;
use tokio::sync::{mpsc, oneshot, Mutex};
use tokio::task::JoinHandle;

use crate::db::{self, Bind, SqlBuilder};
use crate::{Backend, Result, Store, StoreError};

/// The `prev_hash` of entry 1.
pub const GENESIS_HASH: &str = "0000000000000000000000000000000000000000000000000000000000000000";
const MAX_ENTRIES_PER_COMMIT: usize = 256;
const QUEUE_CAPACITY: usize = 4096;
const AUDIT_LOCK: i64 = 7391002;

/// Query over the audit log; `None` fields match everything.
#[derive(Debug, Clone, Default)]
pub struct AuditQuery {
    pub resource_type: Option<String>,
    pub resource_id: Option<String>,
    pub actor: Option<String>,
    /// The request path the entry records (`/api/v1/run-manifests`).
    pub action: Option<String>,
    /// Inclusive lower bound on the timestamp (ms).
    pub since: Option<i64>,
    /// Exclusive upper bound on the timestamp (ms).
    pub until: Option<i64>,
    /// Entries after this sequence number (keyset paging).
    pub after_seq: Option<i64>,
    pub limit: i64,
}

/// SHA-256 of the previous hash and the entry's canonical bytes, in hex.
pub fn entry_hash(prev_hash: &str, seq: i64, entry: &NewAuditEntry) -> String {
    let mut hasher = Sha256::new();
    let mut field = |value: &str| {
        hasher.update((value.len() as u64).to_be_bytes());
        hasher.update(value.as_bytes());
    };
    field(prev_hash);
    field(&seq.to_string());
    field(&entry.ts.to_string());
    field(&entry.actor);
    field(&entry.source);
    field(&entry.user_agent);
    field(&entry.method);
    field(&entry.action);
    field(&entry.resource_type);
    field(&entry.resource_id);
    field(&entry.status.to_string());
    field(&entry.outcome);
    field(&entry.detail);
    // `None` and `Some("")` must differ.
    for state in [&entry.before, &entry.after] {
        match state {
            None => field("\u{0}none"),
            Some(text) => field(text),
        }
    }
    hex(&hasher.finalize())
}

fn hex(bytes: &[u8]) -> String {
    const DIGITS: &[u8; 16] = b"0123456789abcdef";
    let mut out = String::with_capacity(bytes.len() * 2);
    for byte in bytes {
        out.push(DIGITS[(byte >> 4) as usize] as char);
        out.push(DIGITS[(byte & 15) as usize] as char);
    }
    out
}

fn entry_from_row(row: &AnyRow) -> Result<AuditEntry> {
    Ok(AuditEntry {
        seq: db::int(row, "seq")?,
        entry: NewAuditEntry {
            ts: db::int(row, "ts")?,
            actor: db::text(row, "actor")?,
            source: db::text(row, "source")?,
            user_agent: db::text(row, "user_agent")?,
            method: db::text(row, "method")?,
            action: db::text(row, "action")?,
            resource_type: db::text(row, "resource_type")?,
            resource_id: db::text(row, "resource_id")?,
            status: db::int(row, "status")?,
            outcome: db::text(row, "outcome")?,
            detail: db::text(row, "detail")?,
            before: db::opt_text(row, "before_state")?,
            after: db::opt_text(row, "after_state")?,
        },
        prev_hash: db::text(row, "prev_hash")?,
        hash: db::text(row, "hash")?,
    })
}

type Pending = (NewAuditEntry, oneshot::Sender<Result<i64>>);

enum Job {
    Append(Pending),
    Shutdown(oneshot::Sender<()>),
}

#[derive(Clone)]
pub(crate) struct AuditWriter {
    sender: mpsc::Sender<Job>,
    task: Arc<Mutex<Option<JoinHandle<()>>>>,
}

impl AuditWriter {
    pub(crate) fn spawn(pool: AnyPool, backend: Backend) -> AuditWriter {
        let (sender, receiver) = mpsc::channel(QUEUE_CAPACITY);
        let task = tokio::spawn(run_writer(pool, backend, receiver));
        AuditWriter {
            sender,
            task: Arc::new(Mutex::new(Some(task))),
        }
    }

    async fn append(&self, entry: NewAuditEntry) -> Result<i64> {
        let (reply, answer) = oneshot::channel();
        self.sender
            .send(Job::Append((entry, reply)))
            .await
            .map_err(|_| StoreError::ShuttingDown)?;
        answer.await.map_err(|_| StoreError::ShuttingDown)?
    }

    pub(crate) async fn shutdown(&self) {
        let (done, finished) = oneshot::channel();
        if self.sender.send(Job::Shutdown(done)).await.is_ok() {
            let _ = finished.await;
        }
        if let Some(task) = self.task.lock().await.take() {
            if let Err(err) = task.await {
                tracing::error!(cause = %err, "audit writer task failed");
            }
        }
    }
}

async fn run_writer(pool: AnyPool, backend: Backend, mut receiver: mpsc::Receiver<Job>) {
    while let Some(first) = receiver.recv().await {
        let mut group = Vec::new();
        let mut shutdown = None;
        let mut next = Some(first);
        while let Some(job) = next.take() {
            match job {
                Job::Append(pending) => group.push(pending),
                Job::Shutdown(done) => {
                    shutdown = Some(done);
                    break;
                }
            }
            if group.len() >= MAX_ENTRIES_PER_COMMIT {
                break;
            }
            next = receiver.try_recv().ok();
        }
        if !group.is_empty() {
            commit_group(&pool, backend, group).await;
        }
        if let Some(done) = shutdown {
            receiver.close();
            let mut rest = Vec::new();
            while let Ok(job) = receiver.try_recv() {
                if let Job::Append(pending) = job {
                    rest.push(pending);
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

async fn commit_group(pool: &AnyPool, backend: Backend, group: Vec<Pending>) {
    let (entries, replies): (Vec<NewAuditEntry>, Vec<_>) = group.into_iter().unzip();
    match append_entries(pool, backend, entries).await {
        Ok(first_seq) => {
            for (offset, reply) in replies.into_iter().enumerate() {
                let _ = reply.send(Ok(first_seq + offset as i64));
            }
        }
        Err(err) => {
            tracing::error!(cause = %err, "cannot append to the audit log");
            for reply in replies {
                let _ = reply.send(Err(StoreError::Open(format!(
                    "the audit log could not be written: {err}"
                ))));
            }
        }
    }
}

async fn append_entries(
    pool: &AnyPool,
    backend: Backend,
    entries: Vec<NewAuditEntry>,
) -> Result<i64> {
    let mut tx = pool.begin().await?;
    let first_seq = append_in(&mut tx, backend, entries).await?;
    tx.commit().await?;
    Ok(first_seq)
}

/// Numbers, chains and inserts `entries` inside the caller's transaction;
/// returns the first entry's number. Every append, from either writer, goes
/// through here: the chain's head is read in the same transaction that
/// extends it (on SQLite every write shares one connection; on PostgreSQL
/// the advisory lock, held until commit, orders the replicas).
pub(crate) async fn append_in(
    conn: &mut sqlx::AnyConnection,
    backend: Backend,
    entries: Vec<NewAuditEntry>,
) -> Result<i64> {
    let tx = conn;
    if backend == Backend::Postgres {
        sqlx::query("SELECT pg_advisory_xact_lock($1)")
            .bind(AUDIT_LOCK)
            .execute(&mut *tx)
            .await?;
    }
    let last = sqlx::query("SELECT seq, hash FROM audit_log ORDER BY seq DESC LIMIT 1")
        .fetch_optional(&mut *tx)
        .await?;
    let (mut seq, mut prev_hash) = match last {
        Some(row) => (db::int(&row, "seq")?, db::text(&row, "hash")?),
        None => (0, GENESIS_HASH.to_string()),
    };
    let first_seq = seq + 1;
    let mut sql = SqlBuilder::new(
        backend,
        "INSERT INTO audit_log (seq, ts, actor, source, user_agent, method, action, resource_type, \
         resource_id, status, outcome, detail, before_state, after_state, prev_hash, hash) VALUES ",
    );
    for (idx, entry) in entries.into_iter().enumerate() {
        seq += 1;
        let hash = entry_hash(&prev_hash, seq, &entry);
        if idx > 0 {
            sql.push(", ");
        }
        sql.push("(");
        let values = [
            Bind::Int(seq),
            Bind::Int(entry.ts),
            Bind::Text(entry.actor),
            Bind::Text(entry.source),
            Bind::Text(entry.user_agent),
            Bind::Text(entry.method),
            Bind::Text(entry.action),
            Bind::Text(entry.resource_type),
            Bind::Text(entry.resource_id),
            Bind::Int(entry.status),
            Bind::Text(entry.outcome),
            Bind::Text(entry.detail),
            Bind::OptText(entry.before),
            Bind::OptText(entry.after),
            Bind::Text(std::mem::replace(&mut prev_hash, hash.clone())),
            Bind::Text(hash),
        ];
        for (col, value) in values.into_iter().enumerate() {
            if col > 0 {
                sql.push(", ");
            }
            sql.bind(value);
        }
        sql.push(")");
    }
    sql.query().execute(&mut *tx).await?;
    Ok(first_seq)
}

impl Store {
    /// Appends one entry and returns its sequence number once committed.
    pub async fn append_audit(&self, entry: NewAuditEntry) -> Result<i64> {
        self.audit.append(entry).await
    }

    /// Entries matching `query`, oldest first.
    pub async fn query_audit(&self, query: &AuditQuery) -> Result<Vec<AuditEntry>> {
        let mut sql = SqlBuilder::new(self.backend, "SELECT * FROM audit_log WHERE 1 = 1");
        if let Some(value) = &query.resource_type {
            sql.push(" AND resource_type = ").bind_text(value.clone());
        }
        if let Some(value) = &query.resource_id {
            sql.push(" AND resource_id = ").bind_text(value.clone());
        }
        if let Some(value) = &query.actor {
            sql.push(" AND actor = ").bind_text(value.clone());
        }
        if let Some(value) = &query.action {
            sql.push(" AND action = ").bind_text(value.clone());
        }
        if let Some(value) = query.since {
            sql.push(" AND ts >= ").bind(Bind::Int(value));
        }
        if let Some(value) = query.until {
            sql.push(" AND ts < ").bind(Bind::Int(value));
        }
        if let Some(value) = query.after_seq {
            sql.push(" AND seq > ").bind(Bind::Int(value));
        }
        sql.push(" ORDER BY seq LIMIT ")
            .bind(Bind::Int(query.limit.max(1)));
        sql.query()
            .fetch_all(&self.pool)
            .await?
            .iter()
            .map(entry_from_row)
            .collect()
    }

    /// Walks the whole chain in pages and reports the first entry whose
    /// number, link or hash is wrong. With `expected_head`, the hash of an
    /// entry seen earlier (the `head_hash` of a past verification, kept
    /// outside the database), it also reports a log cut short before it.
    pub async fn verify_audit(&self, expected_head: Option<&str>) -> Result<AuditVerification> {
        let mut expected_seq = 1;
        let mut prev_hash = GENESIS_HASH.to_string();
        let mut checked = 0;
        let mut head_seen = expected_head.is_none();
        loop {
            let rows =
                sqlx::query("SELECT * FROM audit_log WHERE seq >= $1 ORDER BY seq LIMIT 5000")
                    .bind(expected_seq)
                    .fetch_all(&self.pool)
                    .await?;
            if rows.is_empty() {
                break;
            }
            for row in &rows {
                let entry = entry_from_row(row)?;
                let problem = if entry.seq != expected_seq {
                    Some(format!(
                        "entry {expected_seq} is missing (the next entry is {})",
                        entry.seq
                    ))
                } else if entry.prev_hash != prev_hash {
                    Some("its link to the previous entry is wrong: an entry before it was changed or removed".to_string())
                } else if entry_hash(&entry.prev_hash, entry.seq, &entry.entry) != entry.hash {
                    Some("its content does not match its hash: the entry was edited".to_string())
                } else {
                    None
                };
                if let Some(problem) = problem {
                    return Ok(AuditVerification {
                        entries_checked: checked,
                        first_bad: Some((expected_seq.min(entry.seq), problem)),
                        head_hash: Some(prev_hash),
                    });
                }
                checked += 1;
                expected_seq += 1;
                head_seen |= expected_head == Some(entry.hash.as_str());
                prev_hash = entry.hash;
            }
        }
        let cut_short = (!head_seen).then(|| {
            (
                expected_seq,
                "the entry with the expected head hash is not in the log: entries were removed from its end".to_string(),
            )
        });
        Ok(AuditVerification {
            entries_checked: checked,
            first_bad: cut_short,
            head_hash: (checked > 0).then_some(prev_hash),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn entry() -> NewAuditEntry {
        NewAuditEntry {
            ts: 1,
            actor: "alice".into(),
            action: "runs/create".into(),
            ..NewAuditEntry::default()
        }
    }

    #[test]
    fn hash_changes_with_every_field_and_the_link() {
        let base = entry_hash(GENESIS_HASH, 1, &entry());
        assert_eq!(base.len(), 64);
        assert_eq!(base, entry_hash(GENESIS_HASH, 1, &entry()));
        assert_ne!(base, entry_hash(GENESIS_HASH, 2, &entry()));
        assert_ne!(base, entry_hash(&"1".repeat(64), 1, &entry()));
        let mut edited = entry();
        edited.actor = "mallory".into();
        assert_ne!(base, entry_hash(GENESIS_HASH, 1, &edited));
        let mut empty_after = entry();
        empty_after.after = Some(String::new());
        assert_ne!(base, entry_hash(GENESIS_HASH, 1, &empty_after));
        // Moving bytes between adjacent fields changes the hash too.
        let mut shifted = entry();
        shifted.actor = "alic".into();
        shifted.source = "e".into();
        assert_ne!(base, entry_hash(GENESIS_HASH, 1, &shifted));
    }
}
