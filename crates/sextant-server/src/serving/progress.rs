//! What a deployment change is doing while its caller waits: each request
//! that carries `X-Sextant-Progress: <id>` (the CLI sends a fresh random id)
//! gets a board entry that the loads it starts write their stages to, and
//! `GET /api/v1/progress/{id}` reads. The id is the capability: it is
//! unguessable and known only to the caller, so reading needs no other
//! permission, and the stages name nothing the caller did not ask for.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use sextant_api::deployments::{ProgressReport, ProgressStage};
use sextant_serve::Progress;

/// The header naming a request's progress id.
pub const PROGRESS_HEADER: &str = "x-sextant-progress";

/// Entries kept at most; the oldest go first.
const MAX_ENTRIES: usize = 512;
/// How long an entry stays readable after its request ended.
const KEEP: Duration = Duration::from_secs(600);

tokio::task_local! {
    /// The progress of the request this task serves, when it asked for it.
    static CURRENT: Progress;
}

/// The progress sink of the request being served, if it has one.
pub fn current() -> Option<Progress> {
    CURRENT.try_with(Clone::clone).ok()
}

/// Runs `future` with `progress` as the current request's sink.
pub async fn scope<F: std::future::Future>(progress: Progress, future: F) -> F::Output {
    CURRENT.scope(progress, future).await
}

/// Whether `id` may name a board entry: 16 to 64 letters, digits and
/// dashes (a UUID).
pub fn valid_id(id: &str) -> bool {
    (16..=64).contains(&id.len()) && id.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-')
}

#[derive(Debug, Clone)]
struct Entry {
    started: Instant,
    stages: Vec<(f64, String)>,
    done: bool,
    touched: Instant,
}

/// Progress entries by id.
#[derive(Default, Clone)]
pub struct ProgressBoard {
    entries: Arc<Mutex<HashMap<String, Entry>>>,
}

impl ProgressBoard {
    /// Opens (or reopens) entry `id` and returns the sink that writes to it.
    pub fn start(&self, id: &str) -> Progress {
        let now = Instant::now();
        {
            let mut entries = self.entries.lock().expect("progress lock");
            entries.retain(|_, e| !e.done || now.duration_since(e.touched) < KEEP);
            if entries.len() >= MAX_ENTRIES {
                if let Some(oldest) = entries
                    .iter()
                    .min_by_key(|(_, e)| e.touched)
                    .map(|(k, _)| k.clone())
                {
                    entries.remove(&oldest);
                }
            }
            entries.insert(
                id.to_owned(),
                Entry {
                    started: now,
                    stages: Vec::new(),
                    done: false,
                    touched: now,
                },
            );
        }
        let board = self.clone();
        let id = id.to_owned();
        Progress::new(move |stage| board.record(&id, stage))
    }

    fn record(&self, id: &str, stage: &str) {
        let mut entries = self.entries.lock().expect("progress lock");
        if let Some(entry) = entries.get_mut(id) {
            let now = Instant::now();
            // Bounded: a load has a handful of stages.
            if entry.stages.len() < 64 {
                entry.stages.push((
                    now.duration_since(entry.started).as_secs_f64(),
                    stage.to_owned(),
                ));
            }
            entry.touched = now;
        }
    }

    /// Marks `id`'s request answered.
    pub fn finish(&self, id: &str) {
        if let Some(entry) = self.entries.lock().expect("progress lock").get_mut(id) {
            entry.done = true;
            entry.touched = Instant::now();
        }
    }

    pub fn read(&self, id: &str) -> Option<ProgressReport> {
        let entries = self.entries.lock().expect("progress lock");
        let entry = entries.get(id)?;
        Some(ProgressReport {
            stages: entry
                .stages
                .iter()
                .map(|(seconds, stage)| ProgressStage {
                    seconds: (seconds * 10.0).round() / 10.0,
                    stage: stage.clone(),
                })
                .collect(),
            done: entry.done,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn stages_are_read_by_id_until_the_request_is_done() {
        let board = ProgressBoard::default();
        let id = "0123456789abcdef-0123";
        assert!(valid_id(id));
        assert!(!valid_id("short"));
        assert!(!valid_id("../../../../etc/passwd/xx"));
        let progress = board.start(id);
        progress.report("fetching");
        progress.report("loading");
        let report = board.read(id).unwrap();
        assert_eq!(
            report
                .stages
                .iter()
                .map(|s| s.stage.as_str())
                .collect::<Vec<_>>(),
            ["fetching", "loading"]
        );
        assert!(!report.done);
        board.finish(id);
        assert!(board.read(id).unwrap().done);
        assert!(board.read("another-id-0123456").is_none());
    }
}
