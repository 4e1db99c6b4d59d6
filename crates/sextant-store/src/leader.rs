//! One leader among the `sextant server` processes that share a database,
//! for the background work that must run once: alert evaluation and its
//! webhooks, retraining schedules, the canary controller.
//!
//! PostgreSQL: a session-level advisory lock (`pg_try_advisory_lock`, keyed
//! by the work's name) held on a connection of its own, outside the pool.
//! When the leader's process dies, its session ends and PostgreSQL releases
//! the lock; the others try again every `period`, so one of them takes over
//! within a period. A leader whose connection fails stops leading at its
//! next check (it cannot know whether the lock is still its own), so two
//! processes lead at once for at most one period, and only when the
//! database has not yet noticed a lost connection.
//!
//! SQLite: one process owns the database file, and leads.

use std::time::Duration;

use sqlx::{AnyConnection, Connection, Row};
use tokio::sync::watch;

use crate::{Backend, Store};

/// How often a follower tries the lock and a leader checks its connection.
pub const LEADER_PERIOD: Duration = Duration::from_secs(2);

/// Whether this process leads a kind of background work.
pub struct Leadership {
    leading: watch::Receiver<bool>,
    task: std::sync::Mutex<Option<tokio::task::JoinHandle<()>>>,
}

impl Leadership {
    /// A leadership that is always held: one process, one database file.
    pub fn sole() -> Leadership {
        let (_, leading) = watch::channel(true);
        Leadership {
            leading,
            task: std::sync::Mutex::new(None),
        }
    }

    pub fn is_leader(&self) -> bool {
        *self.leading.borrow()
    }

    /// Changes of `is_leader`, to wait for leadership.
    pub fn watch(&self) -> watch::Receiver<bool> {
        self.leading.clone()
    }

    /// Ends the session that holds the lock (at shutdown), so that another
    /// process takes over at its next try.
    pub fn release(&self) {
        if let Some(task) = self.task.lock().expect("leadership lock").take() {
            task.abort();
        }
    }
}

impl Drop for Leadership {
    fn drop(&mut self) {
        self.release();
    }
}

/// The advisory lock's key for `name`: FNV-1a of the name, so that every
/// process derives the same key.
fn lock_key(name: &str) -> i64 {
    let mut hash: u64 = 0xcbf2_9ce4_8422_2325;
    for byte in b"sextant:".iter().chain(name.as_bytes()) {
        hash ^= u64::from(*byte);
        hash = hash.wrapping_mul(0x0000_0100_0000_01b3);
    }
    hash as i64
}

impl Store {
    /// This process's leadership of the background work called `name`,
    /// tried every `period` (`LEADER_PERIOD` in servers).
    pub fn leadership(&self, name: &str, period: Duration) -> Leadership {
        let Backend::Postgres = self.backend else {
            return Leadership::sole();
        };
        let url = self.url.clone();
        let key = lock_key(name);
        let name = name.to_owned();
        let (tell, leading) = watch::channel(false);
        let task = tokio::spawn(async move {
            let mut session: Option<AnyConnection> = None;
            let mut leader = false;
            loop {
                if session.is_none() {
                    match AnyConnection::connect(&url).await {
                        Ok(connection) => session = Some(connection),
                        Err(err) => {
                            tracing::warn!(work = name, cause = %err, "cannot open the leader election's connection")
                        }
                    }
                }
                if let Some(connection) = session.as_mut() {
                    let checked = if leader {
                        sqlx::query("SELECT 1")
                            .fetch_one(&mut *connection)
                            .await
                            .map(|_| true)
                    } else {
                        sqlx::query("SELECT pg_try_advisory_lock($1)")
                            .bind(key)
                            .fetch_one(&mut *connection)
                            .await
                            .and_then(|row| row.try_get::<bool, _>(0))
                    };
                    match checked {
                        Ok(held) => leader = held,
                        Err(err) => {
                            tracing::warn!(work = name, cause = %err, "the leader election's connection failed");
                            session = None;
                            leader = false;
                        }
                    }
                }
                tell.send_if_modified(|was| {
                    let changed = *was != leader;
                    if changed {
                        tracing::info!(work = name, leader, "leadership changed");
                    }
                    *was = leader;
                    changed
                });
                tokio::time::sleep(period).await;
            }
        });
        Leadership {
            leading,
            task: std::sync::Mutex::new(Some(task)),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keys_are_stable_and_differ_by_name() {
        assert_eq!(lock_key("background"), lock_key("background"));
        assert_ne!(lock_key("background"), lock_key("other"));
    }
}
