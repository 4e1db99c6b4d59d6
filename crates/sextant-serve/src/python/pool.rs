//! The supervised set of workers behind one model.
//!
//! A request takes an idle worker (waiting for one up to the queue
//! timeout), uses it alone, and gives it back. A worker that breaks is
//! killed by the request that saw it break; a supervisor thread keeps the
//! number of workers up, starting replacements one at a time, backing off
//! after failed starts so that a model that cannot load does not spin.

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Condvar, Mutex, MutexGuard, PoisonError};
use std::thread::{self, JoinHandle};
use std::time::{Duration, Instant};

use crate::error::{Error, Result};
use crate::python::protocol::Frame;
use crate::python::worker::{describe_exit, Launch, Outcome, StartError, Worker};
use crate::python::{format_duration, Health, LOG_TARGET};
use crate::tensor::NamedTensor;

/// How often the supervisor looks for workers that died while idle.
const IDLE_CHECK_INTERVAL: Duration = Duration::from_secs(1);

/// The pool's part of [`crate::python::PythonConfig`].
#[derive(Debug, Clone)]
pub(crate) struct PoolSettings {
    pub(crate) workers: usize,
    pub(crate) load_timeout: Duration,
    pub(crate) queue_timeout: Duration,
    pub(crate) request_timeout: Duration,
    pub(crate) restart_backoff: Duration,
    pub(crate) max_restart_backoff: Duration,
    pub(crate) max_start_failures: u32,
}

pub(crate) struct Pool {
    shared: Arc<Shared>,
    /// Joined on drop.
    supervisor: Option<JoinHandle<()>>,
}

struct Shared {
    launch: Launch,
    settings: PoolSettings,
    state: Mutex<State>,
    /// Signalled whenever a worker becomes idle, a worker is retired or
    /// started, a start fails, or the pool shuts down. Request threads and
    /// the supervisor all wait on it, so it is always `notify_all`.
    changed: Condvar,
    /// Read by a start in progress, so that dropping the pool does not wait
    /// for a model to finish loading.
    shutting_down: AtomicBool,
    next_worker_id: AtomicU64,
}

struct State {
    idle: Vec<Worker>,
    /// Workers out with a request.
    busy: usize,
    /// Worker id → pid of every running worker, idle or busy.
    pids: BTreeMap<u64, u32>,
    consecutive_start_failures: u32,
    last_start_error: Option<String>,
    /// No worker is started before this (the restart backoff).
    next_start_at: Instant,
}

impl State {
    fn running(&self) -> usize {
        self.idle.len() + self.busy
    }

    /// Requests fail at once rather than queue when no worker runs and
    /// starting one has failed too often in a row.
    fn fail_fast(&self, settings: &PoolSettings) -> Option<Error> {
        if self.running() > 0 || self.consecutive_start_failures < settings.max_start_failures {
            return None;
        }
        Some(Error::Worker(format!(
            "the model's python workers failed to start {} times in a row; last error: {}",
            self.consecutive_start_failures,
            self.last_start_error.as_deref().unwrap_or("unknown"),
        )))
    }
}

impl Shared {
    fn lock(&self) -> MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(PoisonError::into_inner)
    }

    fn wait<'a>(&self, state: MutexGuard<'a, State>, timeout: Duration) -> MutexGuard<'a, State> {
        match self.changed.wait_timeout(state, timeout) {
            Ok((state, _)) => state,
            Err(poisoned) => poisoned.into_inner().0,
        }
    }
}

impl Pool {
    /// A pool around a first worker that is already ready; the supervisor
    /// starts the others.
    pub(crate) fn new(launch: Launch, settings: PoolSettings, first: Worker) -> Result<Pool> {
        let next_worker_id = first.id() + 1;
        let mut pids = BTreeMap::new();
        pids.insert(first.id(), first.pid());
        let shared = Arc::new(Shared {
            launch,
            settings,
            state: Mutex::new(State {
                idle: vec![first],
                busy: 0,
                pids,
                consecutive_start_failures: 0,
                last_start_error: None,
                next_start_at: Instant::now(),
            }),
            changed: Condvar::new(),
            shutting_down: AtomicBool::new(false),
            next_worker_id: AtomicU64::new(next_worker_id),
        });
        let supervisor = thread::Builder::new()
            .name("python-supervisor".to_owned())
            .spawn({
                let shared = Arc::clone(&shared);
                move || supervise(&shared)
            })
            .map_err(|err| Error::io("starting the python worker supervisor", err))?;
        Ok(Pool {
            shared,
            supervisor: Some(supervisor),
        })
    }

    /// Runs one request on an idle worker.
    pub(crate) fn predict(&self, request_id: u64, request: Frame) -> Result<Vec<NamedTensor>> {
        let mut worker = self.acquire()?;
        match worker.predict(request_id, request, self.shared.settings.request_timeout) {
            Outcome::Answered(result) => {
                let mut state = self.shared.lock();
                state.busy -= 1;
                state.idle.push(worker);
                drop(state);
                self.shared.changed.notify_all();
                result
            }
            Outcome::Broken(error) => {
                self.retire(worker);
                Err(error)
            }
        }
    }

    fn acquire(&self) -> Result<Worker> {
        let settings = &self.shared.settings;
        let deadline = Instant::now() + settings.queue_timeout;
        let mut state = self.shared.lock();
        loop {
            if let Some(mut worker) = state.idle.pop() {
                state.busy += 1;
                drop(state);
                if worker.is_idle_and_alive() {
                    return Ok(worker);
                }
                terminate_idle_death(&mut worker);
                self.retire(worker);
                state = self.shared.lock();
                continue;
            }
            if let Some(error) = state.fail_fast(settings) {
                return Err(error);
            }
            let now = Instant::now();
            if now >= deadline {
                return Err(Error::Overloaded(format!(
                    "no python worker became free within {} ({} of {} running)",
                    format_duration(settings.queue_timeout),
                    state.running(),
                    settings.workers
                )));
            }
            state = self.shared.wait(state, deadline - now);
        }
    }

    /// Forgets a busy worker that broke (killing it if needed); the
    /// supervisor starts a replacement.
    fn retire(&self, worker: Worker) {
        let id = worker.id();
        drop(worker);
        let mut state = self.shared.lock();
        state.busy -= 1;
        state.pids.remove(&id);
        drop(state);
        self.shared.changed.notify_all();
    }

    pub(crate) fn health(&self) -> Health {
        let settings = &self.shared.settings;
        let state = self.shared.lock();
        let running = state.running();
        if running >= settings.workers {
            Health::Ready { workers: running }
        } else if state.fail_fast(settings).is_some() {
            Health::Unhealthy {
                consecutive_start_failures: state.consecutive_start_failures,
                last_error: state.last_start_error.clone().unwrap_or_default(),
            }
        } else {
            Health::Degraded {
                running,
                wanted: settings.workers,
                last_error: state.last_start_error.clone(),
            }
        }
    }

    pub(crate) fn worker_pids(&self) -> Vec<u32> {
        self.shared.lock().pids.values().copied().collect()
    }
}

impl Drop for Pool {
    fn drop(&mut self) {
        // Set the flag under the lock, so that the supervisor cannot check
        // it and then miss the notification.
        let state = self.shared.lock();
        self.shared.shutting_down.store(true, Ordering::Relaxed);
        drop(state);
        self.shared.changed.notify_all();
        if let Some(supervisor) = self.supervisor.take() {
            let _ = supervisor.join();
        }
        // Nobody can be predicting: that would borrow the pool. So every
        // worker is idle, and dropping it kills and reaps it.
        let idle = std::mem::take(&mut self.shared.lock().idle);
        drop(idle);
    }
}

/// The supervisor: keeps `settings.workers` workers running until the pool
/// shuts down.
fn supervise(shared: &Shared) {
    let settings = &shared.settings;
    let mut state = shared.lock();
    loop {
        if shared.shutting_down.load(Ordering::Relaxed) {
            return;
        }
        // Workers can die while idle (the out-of-memory killer, a stray
        // signal); replace them before a request finds out.
        let (alive, dead) = split_dead(std::mem::take(&mut state.idle));
        state.idle = alive;
        if !dead.is_empty() {
            for worker in &dead {
                state.pids.remove(&worker.id());
            }
            drop(state);
            for mut worker in dead {
                terminate_idle_death(&mut worker);
            }
            state = shared.lock();
            continue;
        }
        let now = Instant::now();
        if state.running() >= settings.workers {
            state = shared.wait(state, IDLE_CHECK_INTERVAL);
            continue;
        }
        if now < state.next_start_at {
            let until_retry = state.next_start_at - now;
            state = shared.wait(state, until_retry.min(IDLE_CHECK_INTERVAL));
            continue;
        }
        let id = shared.next_worker_id.fetch_add(1, Ordering::Relaxed);
        drop(state);
        let started = Worker::start(
            id,
            &shared.launch,
            settings.load_timeout,
            &shared.shutting_down,
        );
        state = shared.lock();
        match started {
            Ok((worker, _ready)) => {
                tracing::info!(target: LOG_TARGET, worker = id, pid = worker.pid(), "python worker ready");
                state.pids.insert(id, worker.pid());
                state.idle.push(worker);
                state.consecutive_start_failures = 0;
                state.last_start_error = None;
            }
            Err(StartError::Cancelled) => return,
            Err(error) => {
                state.consecutive_start_failures += 1;
                let backoff = restart_backoff(settings, state.consecutive_start_failures);
                let summary = error.summary();
                tracing::warn!(
                    target: LOG_TARGET,
                    worker = id,
                    failures = state.consecutive_start_failures,
                    "python worker failed to start, retrying in {}: {summary}",
                    format_duration(backoff)
                );
                state.last_start_error = Some(summary);
                state.next_start_at = Instant::now() + backoff;
            }
        }
        shared.changed.notify_all();
    }
}

/// `restart_backoff` doubled for each failure after the first, capped.
fn restart_backoff(settings: &PoolSettings, consecutive_failures: u32) -> Duration {
    let doublings = consecutive_failures.saturating_sub(1).min(20);
    settings
        .restart_backoff
        .saturating_mul(1 << doublings)
        .min(settings.max_restart_backoff)
}

/// Splits idle workers into those still fit for requests and those that
/// died while idle.
fn split_dead(workers: Vec<Worker>) -> (Vec<Worker>, Vec<Worker>) {
    let mut alive = Vec::new();
    let mut dead = Vec::new();
    for mut worker in workers {
        if worker.is_idle_and_alive() {
            alive.push(worker);
        } else {
            dead.push(worker);
        }
    }
    (alive, dead)
}

/// Kills and reaps a worker found dead (or out of turn) while idle.
fn terminate_idle_death(worker: &mut Worker) {
    let status = worker.terminate(Duration::ZERO);
    tracing::warn!(
        target: LOG_TARGET,
        worker = worker.id(),
        pid = worker.pid(),
        "python worker {} while idle",
        describe_exit(status)
    );
}
