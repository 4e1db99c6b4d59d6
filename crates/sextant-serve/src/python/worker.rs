//! One worker process: starting it, talking to it, and killing it.
//!
//! Each worker has three threads, because pipes have no timeouts: one writes
//! request frames to its stdin, one reads reply frames from its stdout into
//! a channel (which the request thread waits on with a deadline), and one
//! forwards its stderr to the log, keeping the last lines for error
//! messages. Killing the process ends all three.

use std::fmt::Write as _;
use std::io::{self, BufReader, BufWriter};
use std::path::PathBuf;
use std::process::{Child, ChildStdin, ChildStdout, ExitStatus, Stdio};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{mpsc, Arc};
use std::thread::{self, JoinHandle};
use std::time::{Duration, Instant};

use crate::error::Error;
use crate::python::lines::{forward_lines, join_readers, LineTail};
use crate::python::protocol::{
    decode_message, decode_outputs, read_frame, write_frame, ErrorKind, Frame, FrameError,
    ReadyMessage, WorkerMessage, PROTOCOL_VERSION,
};
use crate::python::{format_duration, LOG_TARGET};
use crate::tensor::NamedTensor;

/// How many of a worker's last stderr lines are kept for error messages.
const STDERR_TAIL_LINES: usize = 40;
/// How often a start checks whether the pool is shutting down.
const START_POLL: Duration = Duration::from_millis(100);
/// How long a worker whose output ended gets to finish exiting before it is
/// killed, so that its own exit status is the one reported.
const EXIT_GRACE: Duration = Duration::from_secs(1);
/// How long to wait for the I/O threads once the process is gone. They end
/// at once unless a process the model started still holds the pipes.
const THREAD_JOIN_GRACE: Duration = Duration::from_millis(500);

/// How to start a worker.
#[derive(Debug, Clone)]
pub(crate) struct Launch {
    pub(crate) python: PathBuf,
    pub(crate) script: PathBuf,
    pub(crate) model_dir: PathBuf,
    pub(crate) sandbox: crate::python::Sandbox,
}

/// A running worker process and its I/O threads.
pub(crate) struct Worker {
    id: u64,
    pid: u32,
    child: Child,
    /// Frames for the writer thread. Dropping it closes the worker's stdin,
    /// which tells the worker to exit.
    requests: Option<mpsc::Sender<Frame>>,
    replies: mpsc::Receiver<Result<Frame, FrameError>>,
    stderr_tail: Arc<LineTail>,
    threads: Vec<JoinHandle<()>>,
    exit_status: Option<ExitStatus>,
}

/// Why a worker could not be started.
#[derive(Debug)]
pub(crate) enum StartError {
    /// The interpreter could not be run at all.
    Spawn { python: PathBuf, source: io::Error },
    /// Loading the model raised: `summary` is the traceback's last line.
    Load { summary: String, stderr: String },
    /// The process exited (or broke the protocol) before it was ready.
    Died { message: String, stderr: String },
    TimedOut {
        worker_id: u64,
        after: Duration,
        stderr: String,
    },
    /// The pool is being dropped.
    Cancelled,
}

impl StartError {
    /// One line for health reports and fail-fast errors.
    pub(crate) fn summary(&self) -> String {
        match self {
            StartError::Spawn { python, source } => {
                format!("cannot run {}: {source}", python.display())
            }
            StartError::Load { summary, .. } => summary.clone(),
            StartError::Died { message, stderr } => match stderr.lines().last() {
                Some(last) => format!("{message} ({last})"),
                None => message.clone(),
            },
            StartError::TimedOut {
                worker_id, after, ..
            } => format!(
                "worker {worker_id} did not load the model within {}",
                format_duration(*after)
            ),
            StartError::Cancelled => "the model is shutting down".to_owned(),
        }
    }

    pub(crate) fn into_error(self) -> Error {
        let summary = self.summary();
        let with_stderr = |message: String, stderr: &str| {
            if stderr.is_empty() {
                message
            } else {
                format!("{message}\nlast lines of the worker's stderr:\n{stderr}")
            }
        };
        match self {
            StartError::Spawn { python, source } => Error::io(
                format!("starting a python worker with {}", python.display()),
                source,
            ),
            StartError::Load { stderr, .. } => Error::InvalidModel(with_stderr(
                format!("the model failed to load in a python worker: {summary}"),
                &stderr,
            )),
            StartError::Died { message, stderr } => Error::Worker(with_stderr(message, &stderr)),
            StartError::TimedOut { stderr, .. } => Error::Worker(with_stderr(summary, &stderr)),
            StartError::Cancelled => Error::Overloaded(summary),
        }
    }
}

/// What became of one predict request.
pub(crate) enum Outcome {
    /// The worker answered (with outputs or with the model's exception); it
    /// can take the next request.
    Answered(crate::Result<Vec<NamedTensor>>),
    /// The worker crashed, timed out or broke the protocol. It has been
    /// killed and reaped; the request fails with this error.
    Broken(Error),
}

impl Worker {
    /// Starts a worker and waits until it has loaded the model, for at most
    /// `load_timeout`; gives up early when `cancel` is set.
    pub(crate) fn start(
        id: u64,
        launch: &Launch,
        load_timeout: Duration,
        cancel: &AtomicBool,
    ) -> Result<(Worker, ReadyMessage), StartError> {
        let mut command = launch.sandbox.command(
            &launch.python,
            &[
                launch.script.clone().into(),
                launch.model_dir.clone().into(),
            ],
        );
        command
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped());
        // A process group of its own, so that a Ctrl-C in the server's
        // terminal does not interrupt workers while the server drains its
        // requests: the pool alone decides when workers stop.
        #[cfg(unix)]
        std::os::unix::process::CommandExt::process_group(&mut command, 0);
        let spawn_error = |source| StartError::Spawn {
            python: launch.python.clone(),
            source,
        };
        let mut child = command.spawn().map_err(spawn_error)?;
        let pid = child.id();
        let pipes = (child.stdin.take(), child.stdout.take(), child.stderr.take());
        let (Some(stdin), Some(stdout), Some(stderr)) = pipes else {
            // Unreachable with piped stdio, but not worth a panic.
            let _ = child.kill();
            let _ = child.wait();
            return Err(spawn_error(io::Error::other(
                "the worker's pipes are missing",
            )));
        };
        tracing::debug!(target: LOG_TARGET, worker = id, pid, "python worker started");
        let (request_sender, request_receiver) = mpsc::channel();
        let (reply_sender, reply_receiver) = mpsc::channel();
        let stderr_tail = Arc::new(LineTail::new(STDERR_TAIL_LINES));
        let mut worker = Worker {
            id,
            pid,
            child,
            requests: Some(request_sender),
            replies: reply_receiver,
            stderr_tail: Arc::clone(&stderr_tail),
            threads: Vec::with_capacity(3),
            exit_status: None,
        };
        let threads = [
            spawn_named(format!("python-{id}-in"), move || {
                write_requests(stdin, request_receiver)
            }),
            spawn_named(format!("python-{id}-out"), move || {
                read_replies(stdout, reply_sender)
            }),
            spawn_named(format!("python-{id}-err"), move || {
                forward_lines(stderr, &stderr_tail, |line| {
                    tracing::info!(target: LOG_TARGET, worker = id, pid, "{line}");
                })
            }),
        ];
        for thread in threads {
            // Dropping `worker` on error kills the process and joins the
            // threads already started.
            worker.threads.push(thread.map_err(spawn_error)?);
        }
        let ready = worker.wait_ready(load_timeout, cancel)?;
        Ok((worker, ready))
    }

    pub(crate) fn id(&self) -> u64 {
        self.id
    }

    pub(crate) fn pid(&self) -> u32 {
        self.pid
    }

    fn wait_ready(
        &mut self,
        load_timeout: Duration,
        cancel: &AtomicBool,
    ) -> Result<ReadyMessage, StartError> {
        let id = self.id;
        let deadline = Instant::now() + load_timeout;
        loop {
            if cancel.load(Ordering::Relaxed) {
                self.terminate(Duration::ZERO);
                return Err(StartError::Cancelled);
            }
            let now = Instant::now();
            if now >= deadline {
                self.terminate(Duration::ZERO);
                return Err(StartError::TimedOut {
                    worker_id: id,
                    after: load_timeout,
                    stderr: self.stderr_tail(),
                });
            }
            let event = match self.replies.recv_timeout((deadline - now).min(START_POLL)) {
                Ok(event) => event,
                Err(mpsc::RecvTimeoutError::Timeout) => continue,
                Err(mpsc::RecvTimeoutError::Disconnected) => Err(FrameError::Closed),
            };
            let died = |worker: &mut Worker, message: String| {
                worker.terminate(EXIT_GRACE);
                StartError::Died {
                    message,
                    stderr: worker.stderr_tail(),
                }
            };
            let frame = match event {
                Ok(frame) => frame,
                Err(FrameError::Closed) => {
                    let status = self.terminate(EXIT_GRACE);
                    let message =
                        format!("worker {id} {} before it was ready", describe_exit(status));
                    return Err(died(self, message));
                }
                Err(error) => {
                    return Err(died(
                        self,
                        format!("worker {id} broke the protocol while loading: {error}"),
                    ))
                }
            };
            return match decode_message(&frame.header) {
                Ok(WorkerMessage::Ready(ready)) if ready.protocol == PROTOCOL_VERSION => Ok(ready),
                Ok(WorkerMessage::Ready(ready)) => Err(died(
                    self,
                    format!(
                        "worker {id} speaks protocol {}, not {PROTOCOL_VERSION}",
                        ready.protocol
                    ),
                )),
                Ok(WorkerMessage::LoadError {
                    error_type,
                    message,
                }) => {
                    self.terminate(EXIT_GRACE);
                    Err(StartError::Load {
                        summary: format!("{error_type}: {message}"),
                        stderr: self.stderr_tail(),
                    })
                }
                Ok(_) => Err(died(
                    self,
                    format!("worker {id} answered before it was ready"),
                )),
                Err(problem) => Err(died(
                    self,
                    format!("worker {id} broke the protocol: {problem}"),
                )),
            };
        }
    }

    /// Whether the worker is still fit to take a request: its process runs
    /// and it has not said anything out of turn (which includes its output
    /// closing while it was idle).
    pub(crate) fn is_idle_and_alive(&mut self) -> bool {
        matches!(self.child.try_wait(), Ok(None))
            && matches!(self.replies.try_recv(), Err(mpsc::TryRecvError::Empty))
    }

    /// Sends one request and waits for its reply for at most `timeout`.
    pub(crate) fn predict(
        &mut self,
        request_id: u64,
        request: Frame,
        timeout: Duration,
    ) -> Outcome {
        let id = self.id;
        // If the writer thread is gone the worker is dead, and the reader
        // reports that below.
        if let Some(requests) = &self.requests {
            let _ = requests.send(request);
        }
        let event = match self.replies.recv_timeout(timeout) {
            Ok(event) => event,
            Err(mpsc::RecvTimeoutError::Disconnected) => Err(FrameError::Closed),
            Err(mpsc::RecvTimeoutError::Timeout) => {
                self.terminate(Duration::ZERO);
                return self.broken(format!(
                    "worker {id} timed out after {} while predicting; it was killed",
                    format_duration(timeout)
                ));
            }
        };
        let frame = match event {
            Ok(frame) => frame,
            Err(FrameError::Closed) => {
                let status = self.terminate(EXIT_GRACE);
                return self.broken(format!(
                    "worker {id} {} while predicting",
                    describe_exit(status)
                ));
            }
            Err(error) => {
                return self.broken(format!(
                    "worker {id} broke the protocol while predicting: {error}"
                ))
            }
        };
        match decode_message(&frame.header) {
            Ok(WorkerMessage::Result {
                id: reply_id,
                outputs,
            }) if reply_id == request_id => match decode_outputs(outputs, &frame.body) {
                Ok(outputs) => Outcome::Answered(Ok(outputs)),
                Err(problem) => self.broken(format!("worker {id} answered nonsense: {problem}")),
            },
            Ok(WorkerMessage::Error {
                id: reply_id,
                kind,
                error_type,
                message,
            }) if reply_id == request_id => Outcome::Answered(Err(match kind {
                ErrorKind::Input => Error::Input(format!("{error_type}: {message}")),
                ErrorKind::Model => {
                    Error::Worker(format!("the model raised {error_type}: {message}"))
                }
            })),
            Ok(_) => self.broken(format!(
                "worker {id} did not answer request {request_id} with its result"
            )),
            Err(problem) => self.broken(format!("worker {id} {problem}")),
        }
    }

    /// Kills the worker (if `broken` is reached while it still runs) and
    /// reports the failure.
    fn broken(&mut self, message: String) -> Outcome {
        self.terminate(Duration::ZERO);
        tracing::warn!(target: LOG_TARGET, worker = self.id, pid = self.pid, "{message}");
        Outcome::Broken(Error::Worker(message))
    }

    /// Stops the worker: closes its stdin, gives it `grace` to exit by
    /// itself, then kills it; reaps it (so no zombie is left) and joins its
    /// I/O threads. Idempotent; returns the exit status.
    pub(crate) fn terminate(&mut self, grace: Duration) -> Option<ExitStatus> {
        if let Some(status) = self.exit_status {
            return Some(status);
        }
        self.requests = None;
        let deadline = Instant::now() + grace;
        let mut status = None;
        while status.is_none() {
            match self.child.try_wait() {
                Ok(Some(exited)) => status = Some(exited),
                Ok(None) if Instant::now() < deadline => thread::sleep(Duration::from_millis(5)),
                Ok(None) | Err(_) => break,
            }
        }
        if status.is_none() {
            // Killing a process that has just exited is harmless: it is not
            // reaped yet, so its pid cannot have been reused.
            let _ = self.child.kill();
            status = self.child.wait().ok();
        }
        self.exit_status = status;
        self.join_threads();
        tracing::debug!(
            target: LOG_TARGET,
            worker = self.id,
            pid = self.pid,
            status = %describe_exit(status),
            "python worker stopped"
        );
        status
    }

    fn join_threads(&mut self) {
        if !join_readers(self.threads.drain(..), THREAD_JOIN_GRACE) {
            tracing::warn!(
                target: LOG_TARGET,
                worker = self.id,
                "a process started by worker {} still holds its pipes; \
                 leaving its I/O threads to end with it",
                self.id
            );
        }
    }

    /// The worker's last stderr lines, oldest first.
    pub(crate) fn stderr_tail(&self) -> String {
        self.stderr_tail.text()
    }
}

impl Drop for Worker {
    fn drop(&mut self) {
        self.terminate(Duration::ZERO);
    }
}

/// "exited with status 3", "exited with signal 9 (SIGKILL)".
pub(crate) fn describe_exit(status: Option<ExitStatus>) -> String {
    let Some(status) = status else {
        return "exited in an unknown way".to_owned();
    };
    if let Some(code) = status.code() {
        return format!("exited with status {code}");
    }
    #[cfg(unix)]
    if let Some(signal) = std::os::unix::process::ExitStatusExt::signal(&status) {
        let mut text = format!("exited with signal {signal}");
        let name = match signal {
            6 => Some("SIGABRT"),
            7 => Some("SIGBUS"),
            9 => Some("SIGKILL, perhaps from the out-of-memory killer"),
            11 => Some("SIGSEGV"),
            15 => Some("SIGTERM"),
            _ => None,
        };
        if let Some(name) = name {
            let _ = write!(text, " ({name})");
        }
        return text;
    }
    format!("exited ({status})")
}

fn spawn_named(name: String, body: impl FnOnce() + Send + 'static) -> io::Result<JoinHandle<()>> {
    thread::Builder::new().name(name).spawn(body)
}

fn write_requests(stdin: ChildStdin, requests: mpsc::Receiver<Frame>) {
    let mut stdin = BufWriter::new(stdin);
    for frame in requests {
        // A failed write means the worker is gone; the reader sees that.
        if write_frame(&mut stdin, &frame.header, &frame.body).is_err() {
            return;
        }
    }
}

fn read_replies(stdout: ChildStdout, replies: mpsc::Sender<Result<Frame, FrameError>>) {
    let mut stdout = BufReader::with_capacity(1 << 16, stdout);
    loop {
        let event = read_frame(&mut stdout);
        let ended = event.is_err();
        if replies.send(event).is_err() || ended {
            return;
        }
    }
}
