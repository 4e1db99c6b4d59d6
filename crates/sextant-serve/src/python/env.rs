//! The Python environment a model's workers run in.
//!
//! MLflow saves `requirements.txt` and `python_env.yaml` beside `MLmodel`.
//! With [`EnvManager::Virtualenv`] the pool builds a virtualenv from them,
//! once per distinct set of requirements, and shares it between models and
//! server processes:
//!
//! 1. The env's key is a SHA-256 of the base interpreter's path, the Python
//!    version `python_env.yaml` records and the bytes of `requirements.txt`.
//!    (Files that `requirements.txt` refers to, such as `-r other.txt` or a
//!    local wheel, are not part of the key.)
//! 2. `CACHE_DIR/envs/KEY` exists only once the env is complete: reuse it.
//! 3. Otherwise take the lock file `CACHE_DIR/envs/KEY.lock` (created
//!    exclusively; it holds the builder's pid, so that a lock left by a
//!    process that died is recognised and broken), wait while another
//!    process holds it, and check again.
//! 4. Build in a directory of our own, `CACHE_DIR/envs/KEY.PID-NANOS`:
//!    `BASE_PYTHON -m venv DIR`, then `DIR/bin/python -m pip install -r
//!    MODEL_DIR/requirements.txt` (run in the model directory, so that
//!    relative paths in the requirements resolve as MLflow resolves them).
//! 5. Publish it: a symlink `KEY → KEY.PID-NANOS` made under a temporary
//!    name and renamed over `KEY`, which is atomic. A symlink rather than a
//!    renamed directory, because a virtualenv records its own absolute path
//!    (script shebangs, editable installs) and must not move.
//!
//! Correctness rests on step 5 alone: two builders that both believe they
//! hold the lock (one broke a lock it judged stale just as its owner
//! finished) each publish a complete env, and the later rename wins. The
//! lock only saves the duplicate work.
//!
//! MLflow would also install the Python version `python_env.yaml` asks for
//! (with pyenv); we use `base_python` as it is and log a warning when its
//! version differs.

use std::fs;
use std::io::{self, Write as _};
use std::path::{Path, PathBuf};
use std::process::{Command, ExitStatus, Stdio};
use std::sync::Arc;
use std::thread;
use std::time::{Duration, Instant};

use sha2::{Digest, Sha256};

use crate::error::{Error, Result};
use crate::python::lines::{forward_lines, join_readers, LineTail};
use crate::python::worker::describe_exit;
use crate::python::{format_duration, unique_suffix, LOG_TARGET};

/// How often a process waiting for another's build looks again.
const LOCK_POLL: Duration = Duration::from_millis(200);
/// A lock file without a readable pid is taken for abandoned after this
/// long (its owner died between creating it and writing to it).
const UNREADABLE_LOCK_GRACE: Duration = Duration::from_secs(10);
/// Lines of pip's output kept for the error message.
const OUTPUT_TAIL_LINES: usize = 30;

/// Where the interpreter that runs a model's workers comes from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum EnvManager {
    /// This interpreter, as it is (like `mlflow models serve --env-manager
    /// local`): it must already have mlflow and the model's dependencies.
    Local { python: PathBuf },
    /// A virtualenv made with `base_python` from the model's
    /// `requirements.txt`, cached under `cache_dir/envs/` (like
    /// `--env-manager virtualenv`, see the module documentation).
    Virtualenv {
        base_python: PathBuf,
        cache_dir: PathBuf,
    },
}

impl EnvManager {
    /// The interpreter for the model in `model_dir`, building its
    /// virtualenv first when needed (giving up after `build_timeout`).
    ///
    /// A model without `requirements.txt`, or whose requirements pip cannot
    /// install, gives [`Error::InvalidModel`] with pip's last lines.
    pub fn prepare(
        &self,
        model_dir: &Path,
        build_timeout: Duration,
        progress: Option<&crate::Progress>,
    ) -> Result<PathBuf> {
        match self {
            EnvManager::Local { python } => Ok(python.clone()),
            EnvManager::Virtualenv {
                base_python,
                cache_dir,
            } => prepare_virtualenv(base_python, cache_dir, model_dir, build_timeout, progress),
        }
    }
}

fn prepare_virtualenv(
    base_python: &Path,
    cache_dir: &Path,
    model_dir: &Path,
    build_timeout: Duration,
    progress: Option<&crate::Progress>,
) -> Result<PathBuf> {
    let deadline = Instant::now() + build_timeout;
    let requirements_path = model_dir.join("requirements.txt");
    let requirements = fs::read(&requirements_path).map_err(|err| match err.kind() {
        io::ErrorKind::NotFound => Error::InvalidModel(format!(
            "{} is missing, so the model's virtualenv cannot be built",
            requirements_path.display()
        )),
        _ => Error::io(format!("reading {}", requirements_path.display()), err),
    })?;
    let python_version = recorded_python_version(model_dir)?;
    let base_python = absolute(base_python)?;
    let envs_dir = absolute(&cache_dir.join("envs"))?;
    fs::create_dir_all(&envs_dir)
        .map_err(|err| Error::io(format!("creating {}", envs_dir.display()), err))?;
    let key = env_key(&base_python, python_version.as_deref(), &requirements);
    let published = envs_dir.join(&key);
    let interpreter = published.join("bin").join("python");
    let found = |interpreter: PathBuf| {
        crate::progress::report(
            progress,
            &format!("using the cached Python environment {key} (same requirements)"),
        );
        Ok(interpreter)
    };
    if is_published(&published) {
        return found(interpreter);
    }
    let lock_path = envs_dir.join(format!("{key}.lock"));
    let Some(_lock) = EnvLock::acquire(&lock_path, &published, deadline)? else {
        // Another process published it while we waited.
        return found(interpreter);
    };
    if is_published(&published) {
        return found(interpreter);
    }
    crate::progress::report(
        progress,
        &format!(
            "building the Python environment {key}: a virtualenv with the model's requirements.txt \
             (pip install, once per set of requirements; later loads reuse it)"
        ),
    );
    let started = Instant::now();
    tracing::info!(
        target: LOG_TARGET,
        env = %published.display(),
        model = %model_dir.display(),
        "building a virtualenv for the model's requirements"
    );
    warn_on_version_mismatch(&base_python, python_version.as_deref());
    let build_dir = envs_dir.join(format!("{key}.{}", unique_suffix()));
    let built = build_env(
        &base_python,
        &build_dir,
        model_dir,
        &requirements_path,
        deadline,
    )
    .and_then(|()| publish(&build_dir, &published));
    if let Err(error) = built {
        let _ = fs::remove_dir_all(&build_dir);
        return Err(error);
    }
    tracing::info!(
        target: LOG_TARGET,
        env = %published.display(),
        "virtualenv built in {}",
        format_duration(started.elapsed())
    );
    Ok(interpreter)
}

fn is_published(published: &Path) -> bool {
    fs::symlink_metadata(published).is_ok()
}

fn absolute(path: &Path) -> Result<PathBuf> {
    std::path::absolute(path).map_err(|err| Error::io(format!("resolving {}", path.display()), err))
}

/// The `python` version `python_env.yaml` records, if the file exists.
fn recorded_python_version(model_dir: &Path) -> Result<Option<String>> {
    let path = model_dir.join("python_env.yaml");
    let text = match fs::read_to_string(&path) {
        Ok(text) => text,
        Err(err) if err.kind() == io::ErrorKind::NotFound => return Ok(None),
        Err(err) => return Err(Error::io(format!("reading {}", path.display()), err)),
    };
    let docs = yaml_rust2::YamlLoader::load_from_str(&text)
        .map_err(|err| Error::InvalidModel(format!("{} is not YAML: {err}", path.display())))?;
    // An unquoted `3.10` is a YAML float; keep its text either way.
    Ok(docs.first().and_then(|doc| match &doc["python"] {
        yaml_rust2::Yaml::String(version) | yaml_rust2::Yaml::Real(version) => {
            Some(version.clone())
        }
        _ => None,
    }))
}

/// The cache key of an env: see the module documentation. Fields are
/// separated by NUL bytes, which none of them can contain in a meaningful
/// way, so that different inputs cannot produce the same hashed text.
pub(super) fn env_key(
    base_python: &Path,
    python_version: Option<&str>,
    requirements: &[u8],
) -> String {
    let mut hasher = Sha256::new();
    hasher.update(b"sextant-virtualenv-v1\0");
    hasher.update(base_python.as_os_str().as_encoded_bytes());
    hasher.update(b"\0");
    hasher.update(python_version.unwrap_or("").as_bytes());
    hasher.update(b"\0");
    hasher.update(requirements);
    hasher.finalize()[..16]
        .iter()
        .map(|byte| format!("{byte:02x}"))
        .collect()
}

/// An exclusive claim on building one env, released (the file removed)
/// when dropped.
struct EnvLock {
    path: PathBuf,
}

impl EnvLock {
    /// Takes the lock, or returns `None` as soon as the env is published by
    /// its holder. Fails when `deadline` passes first.
    fn acquire(path: &Path, published: &Path, deadline: Instant) -> Result<Option<EnvLock>> {
        loop {
            match fs::OpenOptions::new()
                .write(true)
                .create_new(true)
                .open(path)
            {
                Ok(mut file) => {
                    let lock = EnvLock {
                        path: path.to_owned(),
                    };
                    writeln!(file, "{}", std::process::id())
                        .map_err(|err| Error::io(format!("writing {}", path.display()), err))?;
                    return Ok(Some(lock));
                }
                Err(err) if err.kind() == io::ErrorKind::AlreadyExists => {}
                Err(err) => return Err(Error::io(format!("creating {}", path.display()), err)),
            }
            if is_published(published) {
                return Ok(None);
            }
            if lock_is_abandoned(path) {
                tracing::warn!(
                    target: LOG_TARGET,
                    lock = %path.display(),
                    "breaking a virtualenv lock whose owner is gone"
                );
                let _ = fs::remove_file(path);
                continue;
            }
            if Instant::now() >= deadline {
                return Err(Error::io(
                    format!(
                        "waiting for another process to build the virtualenv {}",
                        published.display()
                    ),
                    io::Error::new(
                        io::ErrorKind::TimedOut,
                        format!("{} is still held", path.display()),
                    ),
                ));
            }
            thread::sleep(LOCK_POLL);
        }
    }
}

impl Drop for EnvLock {
    fn drop(&mut self) {
        let _ = fs::remove_file(&self.path);
    }
}

/// Whether the process that holds the lock at `path` is gone. Liveness is
/// read from `/proc`; where there is none, a lock is never broken (and
/// waiters time out).
fn lock_is_abandoned(path: &Path) -> bool {
    let proc_root = Path::new("/proc");
    if !proc_root.join("self").exists() {
        return false;
    }
    match fs::read_to_string(path) {
        Ok(text) => match text.trim().parse::<u32>() {
            Ok(pid) => !proc_root.join(pid.to_string()).exists(),
            Err(_) => fs::metadata(path)
                .and_then(|meta| meta.modified())
                .ok()
                .and_then(|modified| modified.elapsed().ok())
                .is_some_and(|age| age > UNREADABLE_LOCK_GRACE),
        },
        // Gone already: the next create attempt decides.
        Err(_) => false,
    }
}

fn warn_on_version_mismatch(base_python: &Path, recorded: Option<&str>) {
    let Some(recorded) = recorded else { return };
    let Ok(output) = Command::new(base_python)
        .args(["-c", "import sys; print('%d.%d.%d' % sys.version_info[:3])"])
        .stdin(Stdio::null())
        .output()
    else {
        return;
    };
    let actual = String::from_utf8_lossy(&output.stdout).trim().to_owned();
    let major_minor = |version: &str| version.split('.').take(2).collect::<Vec<_>>().join(".");
    if major_minor(&actual) != major_minor(recorded) {
        tracing::warn!(
            target: LOG_TARGET,
            recorded,
            actual = %actual,
            "the model was saved with another Python version than the virtualenv's"
        );
    }
}

fn build_env(
    base_python: &Path,
    build_dir: &Path,
    model_dir: &Path,
    requirements_path: &Path,
    deadline: Instant,
) -> Result<()> {
    let mut venv = Command::new(base_python);
    venv.arg("-m").arg("venv").arg(build_dir);
    let outcome = run_until(&mut venv, deadline)
        .map_err(|err| Error::io(format!("running {} -m venv", base_python.display()), err))?;
    if !outcome.succeeded() {
        return Err(Error::io(
            format!("creating a virtualenv with {}", base_python.display()),
            io::Error::other(outcome.describe()),
        ));
    }
    let env_python = build_dir.join("bin").join("python");
    let mut pip = Command::new(&env_python);
    pip.args([
        "-m",
        "pip",
        "install",
        "--disable-pip-version-check",
        "--no-input",
        // Wheels only: building a source distribution runs its setup code
        // on the server, with the server's rights and network.
        "--only-binary=:all:",
        "-r",
    ])
    .arg(requirements_path)
    .current_dir(model_dir);
    let outcome = run_until(&mut pip, deadline)
        .map_err(|err| Error::io(format!("running {} -m pip", env_python.display()), err))?;
    if !outcome.succeeded() {
        return Err(Error::InvalidModel(format!(
            "pip install -r {} failed: {}",
            requirements_path.display(),
            outcome.describe()
        )));
    }
    Ok(())
}

/// Makes `build_dir` visible as `published` in one atomic step.
fn publish(build_dir: &Path, published: &Path) -> Result<()> {
    let (Some(envs_dir), Some(target)) = (published.parent(), build_dir.file_name()) else {
        return Err(Error::io(
            format!("publishing {}", build_dir.display()),
            io::Error::other("the env paths have no parent or name"),
        ));
    };
    let temporary_link = envs_dir.join(format!(".link-{}", unique_suffix()));
    // Relative, so that the cache directory can be moved as a whole.
    symlink_dir(Path::new(target), &temporary_link)
        .map_err(|err| Error::io(format!("creating {}", temporary_link.display()), err))?;
    fs::rename(&temporary_link, published).map_err(|err| {
        let _ = fs::remove_file(&temporary_link);
        Error::io(format!("publishing {}", published.display()), err)
    })
}

#[cfg(unix)]
fn symlink_dir(target: &Path, link: &Path) -> io::Result<()> {
    std::os::unix::fs::symlink(target, link)
}

#[cfg(windows)]
fn symlink_dir(target: &Path, link: &Path) -> io::Result<()> {
    std::os::windows::fs::symlink_dir(target, link)
}

/// How a command run by [`run_until`] ended.
struct CommandOutcome {
    /// `None` when it was killed at the deadline.
    status: Option<ExitStatus>,
    waited: Duration,
    output_tail: String,
}

impl CommandOutcome {
    fn succeeded(&self) -> bool {
        self.status.is_some_and(|status| status.success())
    }

    fn describe(&self) -> String {
        let ending = match self.status {
            Some(status) => describe_exit(Some(status)),
            None => format!("was killed after {}", format_duration(self.waited)),
        };
        format!("it {ending}; its last output lines:\n{}", self.output_tail)
    }
}

/// Runs `command` to completion or until `deadline`, logging its stdout
/// and stderr (at debug level) and keeping their last lines.
fn run_until(command: &mut Command, deadline: Instant) -> io::Result<CommandOutcome> {
    let started = Instant::now();
    let mut child = command
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()?;
    let tail = Arc::new(LineTail::new(OUTPUT_TAIL_LINES));
    let mut readers = Vec::new();
    let pipes: [Option<Box<dyn io::Read + Send>>; 2] = [
        child
            .stdout
            .take()
            .map(|out| Box::new(out) as Box<dyn io::Read + Send>),
        child
            .stderr
            .take()
            .map(|err| Box::new(err) as Box<dyn io::Read + Send>),
    ];
    for pipe in pipes.into_iter().flatten() {
        let tail = Arc::clone(&tail);
        let reader = thread::Builder::new()
            .name("python-env-output".to_owned())
            .spawn(move || {
                forward_lines(pipe, &tail, |line| {
                    tracing::debug!(target: LOG_TARGET, "{line}");
                })
            });
        match reader {
            Ok(reader) => readers.push(reader),
            Err(err) => {
                let _ = child.kill();
                let _ = child.wait();
                return Err(err);
            }
        }
    }
    let status = loop {
        if let Some(status) = child.try_wait()? {
            break Some(status);
        }
        if Instant::now() >= deadline {
            let _ = child.kill();
            let _ = child.wait();
            break None;
        }
        thread::sleep(Duration::from_millis(50));
    };
    join_readers(readers, Duration::from_secs(1));
    Ok(CommandOutcome {
        status,
        waited: started.elapsed(),
        output_tail: tail.text(),
    })
}
