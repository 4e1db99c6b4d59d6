//! The Python worker pool against real MLflow models (made by
//! `tests/fixtures/python.py`) run by a real interpreter with mlflow, named
//! by `SEXTANT_TEST_PYTHON`.

use std::collections::BTreeSet;
use std::fs;
use std::num::NonZeroUsize;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::{Arc, Mutex};
use std::thread;
use std::time::{Duration, Instant};

use serde_json::Value;
use sextant_serve::python::{EnvManager, Health, InputLayout, PythonConfig, PythonModel};
use sextant_serve::{DataType, Error, ModelRuntime, NamedTensor, Tensor, TensorData};

/// The fixtures and the interpreter, or `None` (with a note) outside CI
/// when either is missing.
struct Setup {
    fixtures: PathBuf,
    python: PathBuf,
}

fn setup() -> Option<Setup> {
    let fixtures = crate::fixtures_dir("python")?;
    let python = match std::env::var_os("SEXTANT_TEST_PYTHON") {
        Some(python) => PathBuf::from(python),
        None if std::env::var_os("CI").is_some() => {
            panic!("SEXTANT_TEST_PYTHON must be set under CI")
        }
        None => {
            eprintln!("skipping: SEXTANT_TEST_PYTHON is not set");
            return None;
        }
    };
    Some(Setup { fixtures, python })
}

impl Setup {
    fn model_dir(&self, case: &str) -> PathBuf {
        self.fixtures.join(case).join("model")
    }

    fn case(&self, case: &str) -> Value {
        let path = self.fixtures.join(case).join("case.json");
        let text =
            fs::read_to_string(&path).unwrap_or_else(|err| panic!("{}: {err}", path.display()));
        serde_json::from_str(&text).expect("case.json is JSON")
    }

    /// A config for `model_dir` with the test interpreter and timeouts that
    /// allow for a busy machine (loading mlflow takes seconds).
    fn config(&self, model_dir: PathBuf, work_dir: &Path) -> PythonConfig {
        let mut config = PythonConfig::new(
            model_dir,
            EnvManager::Local {
                python: self.python.clone(),
            },
            work_dir.to_owned(),
        );
        config.load_timeout = Duration::from_secs(180);
        config.queue_timeout = Duration::from_secs(180);
        config.request_timeout = Duration::from_secs(60);
        config.restart_backoff = Duration::from_millis(100);
        config.max_restart_backoff = Duration::from_secs(1);
        config
    }

    fn start(&self, case: &str, work_dir: &Path) -> PythonModel {
        PythonModel::start(self.config(self.model_dir(case), work_dir))
            .unwrap_or_else(|err| panic!("starting {case}: {err}"))
    }
}

fn work_dir() -> tempfile::TempDir {
    tempfile::tempdir().expect("temp dir")
}

// --- tensors from and to case.json ------------------------------------------

fn tensor_from_json(entry: &Value) -> NamedTensor {
    let name = entry["name"].as_str().expect("name");
    let dtype_name = entry["dtype"].as_str().expect("dtype");
    let dtype = DataType::from_numpy(dtype_name).expect("known dtype");
    let shape: Vec<usize> = entry["shape"]
        .as_array()
        .expect("shape")
        .iter()
        .map(|d| d.as_u64().expect("dimension") as usize)
        .collect();
    let values = entry["values"].as_array().expect("values");
    let data = match dtype {
        DataType::Bool => {
            TensorData::Bool(values.iter().map(|v| v.as_bool().expect("bool")).collect())
        }
        DataType::F64 => {
            TensorData::F64(values.iter().map(|v| v.as_f64().expect("float")).collect())
        }
        DataType::F32 | DataType::F16 => TensorData::F32(
            values
                .iter()
                .map(|v| v.as_f64().expect("float") as f32)
                .collect(),
        ),
        DataType::Bytes => TensorData::Str(
            values
                .iter()
                .map(|v| v.as_str().expect("string").to_owned())
                .collect(),
        ),
        _ => TensorData::I64(
            values
                .iter()
                .map(|v| v.as_i64().expect("integer"))
                .collect(),
        ),
    };
    NamedTensor::new(
        name,
        Tensor::new(dtype, shape, data).expect("consistent fixture tensor"),
    )
}

fn inputs_of(case: &Value) -> Vec<NamedTensor> {
    case["inputs"]
        .as_array()
        .expect("inputs")
        .iter()
        .map(tensor_from_json)
        .collect()
}

fn column(name: &str, values: &[f64]) -> Vec<NamedTensor> {
    vec![NamedTensor::new(
        name,
        Tensor::column(TensorData::F64(values.to_vec())),
    )]
}

/// Floats agree to a relative `1e-12` (the worker runs the same library
/// code as the reference, so they should be identical) or, for `f32`
/// storage, to `f32` precision; everything else exactly.
fn assert_outputs_match(actual: &[NamedTensor], expected: &Value) {
    let expected: Vec<NamedTensor> = expected
        .as_array()
        .expect("expected")
        .iter()
        .map(tensor_from_json)
        .collect();
    let names =
        |tensors: &[NamedTensor]| tensors.iter().map(|t| t.name.clone()).collect::<Vec<_>>();
    assert_eq!(names(actual), names(&expected), "output names");
    for (actual, expected) in actual.iter().zip(&expected) {
        let name = &actual.name;
        assert_eq!(
            actual.tensor.dtype, expected.tensor.dtype,
            "dtype of {name}"
        );
        assert_eq!(
            actual.tensor.shape, expected.tensor.shape,
            "shape of {name}"
        );
        match (&actual.tensor.data, &expected.tensor.data) {
            (TensorData::F64(got), TensorData::F64(want)) => {
                for (idx, (g, w)) in got.iter().zip(want).enumerate() {
                    assert!(
                        (g - w).abs() <= 1e-12 * w.abs().max(1.0),
                        "{name}[{idx}]: {g} vs {w}"
                    );
                }
            }
            (TensorData::F32(got), TensorData::F32(want)) => {
                for (idx, (g, w)) in got.iter().zip(want).enumerate() {
                    assert!(
                        (g - w).abs() <= 1e-6 * w.abs().max(1.0),
                        "{name}[{idx}]: {g} vs {w}"
                    );
                }
            }
            (got, want) => assert_eq!(got, want, "values of {name}"),
        }
    }
}

fn layout_named(name: &str) -> InputLayout {
    match name {
        "dataframe" => InputLayout::Dataframe,
        "tensor_dict" => InputLayout::TensorDict,
        "array" => InputLayout::Array,
        other => panic!("unknown layout {other}"),
    }
}

/// Starts the case's model, checks that the default layout is the one the
/// reference used, and that predictions match the library's.
fn check_case(setup: &Setup, case_name: &str) -> PythonModel {
    let work = work_dir();
    let model = setup.start(case_name, work.path());
    let case = setup.case(case_name);
    let inputs = inputs_of(&case);
    let layout = layout_named(case["layout"].as_str().expect("layout"));
    assert_eq!(
        model.default_layout(&inputs),
        layout,
        "{case_name}: default layout"
    );
    let outputs = model
        .predict(&inputs)
        .unwrap_or_else(|err| panic!("{case_name}: {err}"));
    assert_outputs_match(&outputs, &case["expected"]);
    model
}

// --- processes ----------------------------------------------------------------

/// Whether `pid` is a child of this process, running or a zombie.
fn is_our_child(pid: u32) -> bool {
    let Ok(stat) = fs::read_to_string(format!("/proc/{pid}/stat")) else {
        return false;
    };
    // The command name, in parentheses, may hold spaces: fields after it
    // are state, then ppid.
    let after_name = &stat[stat.rfind(')').expect("stat has a command name") + 1..];
    let ppid = after_name.split_whitespace().nth(1).expect("ppid");
    ppid == std::process::id().to_string()
}

/// Children of this process whose command line mentions `needle`.
fn children_mentioning(needle: &str) -> BTreeSet<u32> {
    let mut found = BTreeSet::new();
    for entry in fs::read_dir("/proc").expect("/proc").flatten() {
        let Some(pid) = entry
            .file_name()
            .to_str()
            .and_then(|name| name.parse::<u32>().ok())
        else {
            continue;
        };
        let cmdline = fs::read(entry.path().join("cmdline")).unwrap_or_default();
        if is_our_child(pid) && String::from_utf8_lossy(&cmdline).contains(needle) {
            found.insert(pid);
        }
    }
    found
}

fn wait_for_health(
    model: &PythonModel,
    wanted: impl Fn(&Health) -> bool,
    within: Duration,
) -> Health {
    let deadline = Instant::now() + within;
    loop {
        let health = model.health();
        if wanted(&health) {
            return health;
        }
        assert!(Instant::now() < deadline, "health is still {health:?}");
        thread::sleep(Duration::from_millis(50));
    }
}

fn copy_dir(from: &Path, to: &Path) {
    fs::create_dir_all(to).expect("create dir");
    for entry in fs::read_dir(from).expect("read dir").flatten() {
        let target = to.join(entry.file_name());
        if entry.file_type().expect("file type").is_dir() {
            copy_dir(&entry.path(), &target);
        } else {
            fs::copy(entry.path(), &target).expect("copy");
        }
    }
}

fn expect_worker_error(result: Result<Vec<NamedTensor>, Error>, fragments: &[&str]) -> String {
    match result {
        Err(Error::Worker(message)) => {
            for fragment in fragments {
                assert!(message.contains(fragment), "{message:?} lacks {fragment:?}");
            }
            message
        }
        other => panic!("expected a worker error with {fragments:?}, got {other:?}"),
    }
}

// --- predictions ------------------------------------------------------------------

#[test]
fn a_custom_model_returns_its_dataframe_columns() {
    let Some(setup) = setup() else { return };
    let model = check_case(&setup, "doubler");
    let info = model.info();
    assert_eq!(info.engine, "python");
    assert!(info.accepts_any_inputs);
    let names = |specs: &[sextant_serve::TensorSpec]| {
        specs
            .iter()
            .map(|s| (s.name.clone(), s.dtype))
            .collect::<Vec<_>>()
    };
    assert_eq!(
        names(&info.inputs),
        [
            ("x".to_owned(), DataType::F64),
            ("tag".to_owned(), DataType::Bytes)
        ]
    );
    assert_eq!(
        names(&info.outputs),
        [
            ("doubled".to_owned(), DataType::F64),
            ("label".to_owned(), DataType::Bytes)
        ]
    );
    assert_eq!(model.metadata().flavors, ["python_function"]);
    assert_eq!(
        model.metadata().loader_module.as_deref(),
        Some("mlflow.pyfunc.model")
    );
    assert!(model.metadata().python_version.starts_with("3."));
}

#[test]
fn dicts_of_tensors_keep_their_dtypes_both_ways() {
    let Some(setup) = setup() else { return };
    check_case(&setup, "tensors");
}

#[test]
fn one_unnamed_tensor_is_passed_as_a_bare_array() {
    let Some(setup) = setup() else { return };
    check_case(&setup, "matrix");
}

#[test]
fn sklearn_pipelines_with_custom_transformers_match_the_library() {
    let Some(setup) = setup() else { return };
    let regressor = check_case(&setup, "sklearn_regressor");
    assert!(regressor.metadata().flavors.contains(&"sklearn".to_owned()));
    drop(regressor);
    check_case(&setup, "sklearn_classifier");
}

#[test]
fn prints_to_stdout_do_not_break_the_protocol() {
    let Some(setup) = setup() else { return };
    let model = check_case(&setup, "printer");
    // Again: stray output from one request must not leak into the next.
    let case = setup.case("printer");
    for _ in 0..3 {
        let outputs = model.predict(&inputs_of(&case)).expect("predicts");
        assert_outputs_match(&outputs, &case["expected"]);
    }
}

// --- failures -----------------------------------------------------------------------

#[test]
fn a_crash_fails_only_its_request_and_a_new_worker_takes_over() {
    let Some(setup) = setup() else { return };
    let work = work_dir();
    let model = setup.start("crasher", work.path());
    let case = setup.case("crasher");
    let expected = &case["expected"];
    assert_outputs_match(
        &model.predict(&inputs_of(&case)).expect("predicts"),
        expected,
    );

    let crashes = [
        (
            case["kill_value"].as_f64().expect("kill value"),
            "exited with signal 9",
        ),
        (
            case["exit_value"].as_f64().expect("exit value"),
            "exited with status 3",
        ),
    ];
    for (magic, description) in crashes {
        let [crashed_pid] = model.worker_pids()[..] else {
            panic!("one worker expected, got {:?}", model.worker_pids());
        };
        let message = expect_worker_error(
            model.predict(&column("x", &[1.0, magic])),
            &[description, "while predicting"],
        );
        assert!(message.starts_with("worker "), "{message}");
        assert!(
            !is_our_child(crashed_pid),
            "worker {crashed_pid} was not reaped"
        );
        // The next request waits for the replacement and succeeds.
        assert_outputs_match(
            &model
                .predict(&inputs_of(&case))
                .expect("predicts after a crash"),
            expected,
        );
        assert_ne!(model.worker_pids(), [crashed_pid]);
    }
}

#[test]
fn a_request_that_runs_too_long_is_killed() {
    let Some(setup) = setup() else { return };
    let work = work_dir();
    let mut config = setup.config(setup.model_dir("sleeper"), work.path());
    config.request_timeout = Duration::from_secs(1);
    let model = PythonModel::start(config).expect("starts");
    let [sleeping_pid] = model.worker_pids()[..] else {
        panic!("one worker expected")
    };
    let started = Instant::now();
    expect_worker_error(
        model.predict(&column("seconds", &[60.0])),
        &["timed out after 1 s", "killed"],
    );
    assert!(
        started.elapsed() < Duration::from_secs(10),
        "took {:?}",
        started.elapsed()
    );
    assert!(
        !is_our_child(sleeping_pid),
        "worker {sleeping_pid} was not reaped"
    );
    let case = setup.case("sleeper");
    assert_outputs_match(
        &model
            .predict(&inputs_of(&case))
            .expect("predicts after a timeout"),
        &case["expected"],
    );
}

#[test]
fn value_errors_are_bad_requests_and_other_exceptions_model_failures() {
    let Some(setup) = setup() else { return };
    let work = work_dir();
    let model = setup.start("validator", work.path());
    let case = setup.case("validator");
    let pids = model.worker_pids();
    match model.predict(&column("x", &[1.0, -2.0])) {
        Err(Error::Input(message)) => {
            assert!(
                message.contains("ValueError: x must be non-negative, got -2.0"),
                "{message}"
            )
        }
        other => panic!("expected an input error, got {other:?}"),
    }
    let fail_value = case["fail_value"].as_f64().expect("fail value");
    expect_worker_error(
        model.predict(&column("x", &[fail_value])),
        &["RuntimeError", "cannot handle 13"],
    );
    let odd_output_value = case["odd_output_value"].as_f64().expect("odd output value");
    expect_worker_error(
        model.predict(&column("x", &[odd_output_value])),
        &[
            "cannot convert the model's output",
            "'predictions' holds values of types dict",
        ],
    );
    // A request that does not fit the signature is refused by MLflow's
    // schema enforcement: a bad request too.
    let wrong_type = vec![NamedTensor::new(
        "x",
        Tensor::column(TensorData::Str(vec!["a".into()])),
    )];
    assert!(matches!(model.predict(&wrong_type), Err(Error::Input(_))));
    assert_outputs_match(
        &model.predict(&inputs_of(&case)).expect("predicts"),
        &case["expected"],
    );
    assert_eq!(
        model.worker_pids(),
        pids,
        "an exception must not cost the worker"
    );
}

#[test]
fn a_model_that_cannot_load_fails_to_start_with_the_python_error() {
    let Some(setup) = setup() else { return };
    let work = work_dir();
    let case = setup.case("broken_load");
    let missing = case["missing_module"].as_str().expect("module");
    match PythonModel::start(setup.config(setup.model_dir("broken_load"), work.path())) {
        Err(Error::InvalidModel(message)) => {
            let fragments = [
                format!("ModuleNotFoundError: No module named '{missing}'"),
                // From the worker's stderr: what the model printed, and the
                // traceback.
                "broken model: about to import its dependency".to_owned(),
                "Traceback".to_owned(),
            ];
            for fragment in fragments {
                assert!(
                    message.contains(&fragment),
                    "{message:?} lacks {fragment:?}"
                );
            }
        }
        Err(other) => panic!("expected an invalid model, got {other:?}"),
        Ok(_) => panic!("a model that cannot load started"),
    }
    assert!(children_mentioning(&setup.model_dir("broken_load").display().to_string()).is_empty());
}

#[test]
fn repeated_start_failures_make_the_model_unhealthy_until_it_can_load_again() {
    let Some(setup) = setup() else { return };
    let work = work_dir();
    // A private copy of the model, which this test breaks after the start.
    let model_dir = work.path().join("model");
    copy_dir(&setup.model_dir("crasher"), &model_dir);
    let mut config = setup.config(model_dir.clone(), work.path());
    config.max_start_failures = 2;
    let model = PythonModel::start(config).expect("starts");
    let pickle = model_dir.join("python_model.pkl");
    let hidden = model_dir.join("python_model.pkl.hidden");
    fs::rename(&pickle, &hidden).expect("hide the model");

    let case = setup.case("crasher");
    let kill_value = case["kill_value"].as_f64().expect("kill value");
    expect_worker_error(model.predict(&column("x", &[kill_value])), &["signal 9"]);
    let health = wait_for_health(
        &model,
        |h| matches!(h, Health::Unhealthy { .. }),
        Duration::from_secs(120),
    );
    let Health::Unhealthy { last_error, .. } = health else {
        unreachable!()
    };
    assert!(last_error.contains("python_model.pkl"), "{last_error}");
    // Requests fail at once, naming the start error.
    let started = Instant::now();
    expect_worker_error(
        model.predict(&inputs_of(&case)),
        &["failed to start 2 times", "python_model.pkl"],
    );
    assert!(
        started.elapsed() < Duration::from_secs(1),
        "took {:?}",
        started.elapsed()
    );

    fs::rename(&hidden, &pickle).expect("restore the model");
    wait_for_health(
        &model,
        |h| matches!(h, Health::Ready { .. }),
        Duration::from_secs(120),
    );
    assert_outputs_match(
        &model.predict(&inputs_of(&case)).expect("predicts"),
        &case["expected"],
    );
}

// --- concurrency and lifetime ----------------------------------------------------

#[test]
fn two_workers_serve_two_requests_at_once() {
    let Some(setup) = setup() else { return };
    let work = work_dir();
    let mut config = setup.config(setup.model_dir("sleeper"), work.path());
    config.workers = NonZeroUsize::new(2).expect("non-zero");
    let model = PythonModel::start(config).expect("starts");
    wait_for_health(
        &model,
        |h| *h == Health::Ready { workers: 2 },
        Duration::from_secs(120),
    );
    let sleep = 1.5;
    let started = Instant::now();
    thread::scope(|scope| {
        let requests: Vec<_> = (0..2)
            .map(|_| scope.spawn(|| model.predict(&column("seconds", &[sleep]))))
            .collect();
        for request in requests {
            let outputs = request.join().expect("request thread").expect("predicts");
            assert_eq!(outputs[0].tensor.data, TensorData::F64(vec![sleep]));
        }
    });
    // One after the other would take twice the sleep.
    let elapsed = started.elapsed();
    assert!(
        elapsed < Duration::from_secs_f64(sleep * 1.9),
        "took {elapsed:?}"
    );
}

#[test]
fn a_request_that_finds_every_worker_busy_is_overloaded() {
    let Some(setup) = setup() else { return };
    let work = work_dir();
    let mut config = setup.config(setup.model_dir("sleeper"), work.path());
    config.queue_timeout = Duration::from_millis(200);
    let model = PythonModel::start(config).expect("starts");
    thread::scope(|scope| {
        let long = scope.spawn(|| model.predict(&column("seconds", &[2.0])));
        thread::sleep(Duration::from_millis(500));
        match model.predict(&column("seconds", &[0.0])) {
            Err(Error::Overloaded(message)) => assert!(message.contains("0.2 s"), "{message}"),
            other => panic!("expected overloaded, got {other:?}"),
        }
        long.join()
            .expect("request thread")
            .expect("the long request succeeds");
    });
}

#[test]
fn dropping_the_model_kills_and_reaps_every_worker() {
    let Some(setup) = setup() else { return };
    let work = work_dir();
    // A private copy, so that the command lines of this test's workers are
    // told apart from those of tests running alongside.
    let model_dir = work.path().join("model-to-drop");
    copy_dir(&setup.model_dir("doubler"), &model_dir);
    let mut config = setup.config(model_dir.clone(), work.path());
    config.workers = NonZeroUsize::new(2).expect("non-zero");
    let model = PythonModel::start(config).expect("starts");
    wait_for_health(
        &model,
        |h| *h == Health::Ready { workers: 2 },
        Duration::from_secs(120),
    );
    let needle = model_dir.display().to_string();
    let pids: BTreeSet<u32> = model.worker_pids().into_iter().collect();
    assert_eq!(pids.len(), 2);
    assert_eq!(children_mentioning(&needle), pids);
    drop(model);
    assert_eq!(children_mentioning(&needle), BTreeSet::new());
    for pid in pids {
        assert!(
            !is_our_child(pid),
            "worker {pid} is still a child (a zombie?)"
        );
    }
}

#[test]
fn a_trivial_predict_round_trip_takes_milliseconds() {
    let Some(setup) = setup() else { return };
    let work = work_dir();
    let model = setup.start("validator", work.path());
    let inputs = column("x", &[4.0]);
    let mut timings: Vec<Duration> = (0..50)
        .map(|_| {
            let started = Instant::now();
            model.predict(&inputs).expect("predicts");
            started.elapsed()
        })
        .collect();
    timings.sort();
    let median = timings[timings.len() / 2];
    eprintln!(
        "python worker round trip: median {median:?}, max {:?}",
        timings[timings.len() - 1]
    );
    assert!(median < Duration::from_millis(100), "median {median:?}");
    // Halves: the whole numbers 13 and 42 make this model fail on purpose.
    let many_rows: Vec<f64> = (0..10_000).map(|i| f64::from(i) + 0.5).collect();
    let started = Instant::now();
    let outputs = model.predict(&column("x", &many_rows)).expect("predicts");
    eprintln!("python worker, 10000 rows: {:?}", started.elapsed());
    assert_eq!(outputs[0].tensor.shape, [10_000]);
}

// --- environments -------------------------------------------------------------------

/// A directory that looks like an MLflow model to the env manager.
fn requirements_dir(requirements: &str) -> tempfile::TempDir {
    let dir = work_dir();
    fs::write(dir.path().join("requirements.txt"), requirements).expect("write requirements");
    fs::write(
        dir.path().join("python_env.yaml"),
        "python: 3.11.7\nbuild_dependencies:\n- pip\ndependencies:\n- -r requirements.txt\n",
    )
    .expect("write python_env.yaml");
    dir
}

fn env_dir_names(cache: &Path) -> Vec<String> {
    let mut names: Vec<String> = fs::read_dir(cache.join("envs"))
        .expect("envs dir")
        .flatten()
        .map(|entry| entry.file_name().to_string_lossy().into_owned())
        .collect();
    names.sort();
    names
}

#[test]
fn a_virtualenv_is_built_once_from_the_requirements_and_shared() {
    let Some(setup) = setup() else { return };
    let cache = work_dir();
    // A tiny pure-Python package, so that the test stays fast.
    let model = requirements_dir("six==1.17.0\n");
    let env = EnvManager::Virtualenv {
        base_python: setup.python.clone(),
        cache_dir: cache.path().to_owned(),
    };
    let build_timeout = Duration::from_secs(300);
    // Two builders at once (as two servers would be): one builds, the
    // other waits on the lock and reuses the result.
    let (first, second) = thread::scope(|scope| {
        let first = scope.spawn(|| env.prepare(model.path(), build_timeout, None));
        let second = scope.spawn(|| env.prepare(model.path(), build_timeout, None));
        (
            first.join().expect("thread"),
            second.join().expect("thread"),
        )
    });
    let python = first.expect("builds");
    assert_eq!(second.expect("builds"), python);
    let output = Command::new(&python)
        .args(["-c", "import six, sys; print(six.__version__, sys.prefix)"])
        .output()
        .expect("runs the env's python");
    let stdout = String::from_utf8_lossy(&output.stdout);
    assert!(
        stdout.starts_with("1.17.0 "),
        "{stdout} {}",
        String::from_utf8_lossy(&output.stderr)
    );
    // One published link and one env directory: no second build, no lock
    // left behind.
    let names = env_dir_names(cache.path());
    assert_eq!(names.len(), 2, "{names:?}");
    let key = python
        .parent()
        .and_then(Path::parent)
        .and_then(Path::file_name)
        .expect("env key");
    assert!(fs::symlink_metadata(cache.path().join("envs").join(key))
        .expect("published")
        .is_symlink());
    // Reuse is immediate.
    let started = Instant::now();
    assert_eq!(
        env.prepare(model.path(), build_timeout, None)
            .expect("reuses"),
        python
    );
    assert!(
        started.elapsed() < Duration::from_secs(1),
        "took {:?}",
        started.elapsed()
    );
}

#[test]
fn a_lock_left_by_a_dead_builder_is_broken() {
    let Some(setup) = setup() else { return };
    let cache = work_dir();
    // No requirements at all: only the venv is made.
    let model = requirements_dir("# nothing to install\n");
    let env = EnvManager::Virtualenv {
        base_python: setup.python.clone(),
        cache_dir: cache.path().to_owned(),
    };
    // Learn the env's key from a first build, then fake a crashed builder
    // of the same env: its link gone and its lock held by a dead pid.
    let stages = Arc::new(Mutex::new(Vec::<String>::new()));
    let progress = {
        let stages = stages.clone();
        sextant_serve::Progress::new(move |stage| stages.lock().unwrap().push(stage.to_owned()))
    };
    let python = env
        .prepare(model.path(), Duration::from_secs(300), Some(&progress))
        .expect("builds");
    // The first load says it builds; the next says it reuses.
    env.prepare(model.path(), Duration::from_secs(300), Some(&progress))
        .expect("reuses");
    {
        let stages = stages.lock().unwrap();
        assert!(
            stages[0].starts_with("building the Python environment"),
            "{stages:?}"
        );
        assert!(
            stages
                .last()
                .unwrap()
                .starts_with("using the cached Python environment"),
            "{stages:?}"
        );
    }
    let published = python
        .parent()
        .and_then(Path::parent)
        .expect("env dir")
        .to_owned();
    fs::remove_file(&published).expect("unpublish");
    let mut dead = Command::new("true").spawn().expect("spawn true");
    let dead_pid = dead.id();
    dead.wait().expect("reap true");
    let lock = PathBuf::from(format!("{}.lock", published.display()));
    fs::write(&lock, format!("{dead_pid}\n")).expect("write lock");
    assert_eq!(
        env.prepare(model.path(), Duration::from_secs(300), None)
            .expect("rebuilds"),
        python
    );
    assert!(!lock.exists(), "the lock is released");
}

#[test]
fn requirements_pip_cannot_install_make_an_invalid_model() {
    let Some(setup) = setup() else { return };
    let cache = work_dir();
    // `--no-index` makes pip fail without asking the network.
    let model = requirements_dir("--no-index\nsextant-fixture-no-such-package==1.0\n");
    let env = EnvManager::Virtualenv {
        base_python: setup.python.clone(),
        cache_dir: cache.path().to_owned(),
    };
    match env.prepare(model.path(), Duration::from_secs(300), None) {
        Err(Error::InvalidModel(message)) => {
            for fragment in [
                "pip install -r",
                "exited with status 1",
                "sextant-fixture-no-such-package",
            ] {
                assert!(message.contains(fragment), "{message:?} lacks {fragment:?}");
            }
        }
        other => panic!("expected an invalid model, got {other:?}"),
    }
    // Nothing is published, the failed build is removed, the lock released.
    assert_eq!(env_dir_names(cache.path()), Vec::<String>::new());
}
