//! `sextant reproduce RUN_ID`: runs a recorded run again from its manifest
//! and says how close the result came.
//!
//! From the manifest `sextant exec` recorded: the commit is checked out in a
//! temporary worktree of the repository (the current directory's, or
//! `--repo`) and the recorded diff applied; a virtualenv is built from the
//! recorded packages (`pip install name==version …`; or `--python` names an
//! interpreter to use as it is); each input is taken from the worktree when
//! its bytes still hash to the recorded digest, else pulled from a stored
//! dataset version with that digest; then the command runs again under
//! `exec`, with the same seed, in the same directory of the worktree, and
//! the new run is tagged `sextant.reproduction_of`. The report lists the
//! environment's differences and each metric's change against the
//! tolerance; the exit code is 0 when every metric is within it, 1 when one
//! is not, 2 when the run could not be reproduced at all.

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};
use std::process::Command;

use anyhow::{bail, Context};
use reqwest::Method;
use serde_json::{json, Value};

use crate::client::{Client, Connection};

#[derive(clap::Args)]
pub struct ReproduceArgs {
    /// The run to reproduce (one recorded by `sextant exec`).
    run_id: String,
    /// Largest absolute change of a metric still counted as reproduced.
    #[arg(long, default_value_t = 0.0)]
    tolerance: f64,
    /// The git repository the run's code came from (default: the current
    /// directory's).
    #[arg(long)]
    repo: Option<PathBuf>,
    /// Use this interpreter as it is instead of building a virtualenv from
    /// the recorded packages (its differences are reported).
    #[arg(long)]
    python: Option<PathBuf>,
    /// Where to build the worktree and the environment (default: a
    /// temporary directory, removed afterwards).
    #[arg(long)]
    workdir: Option<PathBuf>,
}

fn run(program: &str, args: &[&str], dir: &Path) -> anyhow::Result<String> {
    let output = Command::new(program)
        .args(args)
        .current_dir(dir)
        .output()
        .with_context(|| format!("cannot run {program}"))?;
    if !output.status.success() {
        bail!(
            "{program} {} failed: {}",
            args.join(" "),
            String::from_utf8_lossy(&output.stderr).trim()
        );
    }
    Ok(String::from_utf8_lossy(&output.stdout).trim().to_string())
}

pub async fn reproduce(connection: &Connection, args: ReproduceArgs) -> anyhow::Result<()> {
    let client = Client::new(connection)?;
    let check = client
        .call(
            Method::GET,
            "/run-manifests",
            &[("run_id", args.run_id.clone())],
            None,
        )
        .await?;
    if check["intact"] != Value::Bool(true) {
        bail!(
            "the manifest of run {} does not match the hash in the audit log: it cannot be trusted to reproduce the run",
            args.run_id
        );
    }
    let manifest = &check["manifest"];
    let original = client
        .mlflow(
            Method::GET,
            "/runs/get",
            &[("run_id", args.run_id.clone())],
            None,
        )
        .await?;

    // The code: the commit in a worktree, with the diff on top.
    let git = &manifest["git"];
    let commit = git["commit"]
        .as_str()
        .context("the run was not started in a git repository: there is no code to check out")?;
    let recorded_root = PathBuf::from(git["root"].as_str().unwrap_or("."));
    let repo = match &args.repo {
        Some(repo) => repo.clone(),
        None => std::env::current_dir()?,
    };
    let repo_root = PathBuf::from(
        run("git", &["rev-parse", "--show-toplevel"], &repo).with_context(|| {
            format!(
                "{} is not in a git repository (give --repo)",
                repo.display()
            )
        })?,
    );
    let temporary = match &args.workdir {
        Some(_) => None,
        None => Some(tempfile::tempdir().context("cannot create a working directory")?),
    };
    let workdir = args
        .workdir
        .clone()
        .unwrap_or_else(|| temporary.as_ref().expect("made above").path().to_path_buf());
    std::fs::create_dir_all(&workdir)?;
    let source = workdir.join("source");
    run(
        "git",
        &[
            "worktree",
            "add",
            "--detach",
            &source.display().to_string(),
            commit,
        ],
        &repo_root,
    )
    .with_context(|| format!("cannot check out commit {commit}"))?;
    let result = reproduce_in(
        &client,
        &args,
        manifest,
        &original,
        &recorded_root,
        &source,
        &workdir,
    )
    .await;
    let _ = run(
        "git",
        &[
            "worktree",
            "remove",
            "--force",
            &source.display().to_string(),
        ],
        &repo_root,
    );
    drop(temporary);
    let report = result?;
    crate::output::print(&report);
    if report["reproduced"] != Value::Bool(true) {
        std::process::exit(1);
    }
    Ok(())
}

#[allow(clippy::too_many_arguments)]
async fn reproduce_in(
    client: &Client,
    args: &ReproduceArgs,
    manifest: &Value,
    original: &Value,
    recorded_root: &Path,
    source: &Path,
    workdir: &Path,
) -> anyhow::Result<Value> {
    if manifest["git"]["diff_artifact"].is_string() {
        let artifact_uri = original["run"]["info"]["artifact_uri"]
            .as_str()
            .unwrap_or_default();
        let root = artifact_uri
            .strip_prefix("mlflow-artifacts:")
            .context("the run's artifacts are not behind this server's artifact proxy")?
            .trim_start_matches('/');
        let diff = client
            .get_artifact(&format!("{root}/sextant/git.diff"))
            .await?;
        let patch = workdir.join("git.diff");
        std::fs::write(&patch, diff)?;
        run(
            "git",
            &["apply", "--whitespace=nowarn", &patch.display().to_string()],
            source,
        )
        .context("the recorded diff does not apply to the commit")?;
    }
    // The same directory inside the worktree as the run had in its repository.
    let recorded_cwd = PathBuf::from(manifest["command"]["cwd"].as_str().unwrap_or("."));
    let cwd = source.join(
        recorded_cwd
            .strip_prefix(recorded_root)
            .unwrap_or(Path::new("")),
    );
    std::fs::create_dir_all(&cwd)?;

    // The environment.
    let recorded_python = manifest["python"]["executable"]
        .as_str()
        .unwrap_or("python3");
    let python = match &args.python {
        Some(python) => python.clone(),
        None => build_environment(manifest, workdir)?,
    };

    // The data: the worktree's file when its bytes match, else a stored version.
    let mut inputs = Vec::new();
    for input in manifest["inputs"].as_array().into_iter().flatten() {
        let (Some(path), Some(sha256)) = (input["path"].as_str(), input["sha256"].as_str()) else {
            continue;
        };
        let target = cwd.join(path);
        let present = crate::capture::input_hash(&target)["sha256"].as_str() == Some(sha256);
        if !present {
            fetch_by_digest(client, sha256, &target).await.with_context(|| {
                format!("input {path} (sha256:{sha256}) is not in the checkout and no stored dataset has that content (push it with `sextant datasets push`)")
            })?;
        }
        inputs.push(path.to_string());
    }

    // The command again, under exec, with the same seed.
    let mut argv: Vec<String> = manifest["command"]["argv"]
        .as_array()
        .context("the manifest has no command")?
        .iter()
        .filter_map(|a| a.as_str().map(str::to_string))
        .collect();
    if argv.is_empty() {
        bail!("the manifest has no command");
    }
    let program_name = Path::new(&argv[0])
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_default();
    if argv[0] == recorded_python || program_name.starts_with("python") {
        argv[0] = python.display().to_string();
    }
    let seed = manifest["seed"]["sextant_seed"]
        .as_u64()
        .context("the manifest has no seed")?;
    let experiment_id = original["run"]["info"]["experiment_id"]
        .as_str()
        .unwrap_or("0")
        .to_string();
    let experiment = client
        .mlflow(
            Method::GET,
            "/experiments/get",
            &[("experiment_id", experiment_id)],
            None,
        )
        .await?["experiment"]["name"]
        .as_str()
        .unwrap_or("Default")
        .to_string();
    let mut exec = Command::new(std::env::current_exe()?);
    exec.current_dir(&cwd)
        .env("SEXTANT_SERVER", client.base())
        .args([
            "exec",
            "--experiment",
            &experiment,
            "--seed",
            &seed.to_string(),
        ])
        .args(["--run-name", &format!("reproduce {}", args.run_id)])
        .args(["--tag", &format!("sextant.reproduction_of={}", args.run_id)]);
    if let Some(hash_seed) = manifest["seed"]["pythonhashseed"].as_str() {
        exec.env("PYTHONHASHSEED", hash_seed);
    }
    for input in &inputs {
        exec.args(["--input", input]);
    }
    exec.arg("--").args(&argv);
    let output = exec.output().context("cannot start sextant exec")?;
    let stderr = String::from_utf8_lossy(&output.stderr);
    eprint!("{stderr}");
    let new_run = stderr
        .lines()
        .find_map(|line| line.strip_prefix("sextant: run "))
        .and_then(|rest| rest.split(':').next())
        .map(str::to_string)
        .context("the new run did not start")?;
    let new_check = client
        .call(
            Method::GET,
            "/run-manifests",
            &[("run_id", new_run.clone())],
            None,
        )
        .await?;
    let renewed = client
        .mlflow(
            Method::GET,
            "/runs/get",
            &[("run_id", new_run.clone())],
            None,
        )
        .await?;

    let metrics = compare_metrics(original, &renewed, args.tolerance);
    let all_within = metrics
        .iter()
        .all(|m| m["within_tolerance"] == Value::Bool(true));
    let exit_code = output.status.code();
    Ok(json!({
        "run_id": args.run_id,
        "reproduction": new_run,
        "reproduced": exit_code == Some(0) && all_within && !metrics.is_empty(),
        "exit_code": exit_code,
        "tolerance": args.tolerance,
        "metrics": metrics,
        "environment_differences": environment_differences(manifest, &new_check["manifest"]),
    }))
}

/// A virtualenv with the recorded packages, built with the interpreter
/// found first on the PATH as `python3`.
fn build_environment(manifest: &Value, workdir: &Path) -> anyhow::Result<PathBuf> {
    let venv = workdir.join("venv");
    run(
        "python3",
        &["-m", "venv", &venv.display().to_string()],
        workdir,
    )
    .context("cannot create a virtualenv (python3 -m venv)")?;
    let python = venv.join("bin").join("python");
    let packages: Vec<String> = manifest["python"]["packages"]
        .as_array()
        .into_iter()
        .flatten()
        .filter_map(|p| p.as_str().map(str::to_string))
        .filter(|p| !p.starts_with("pip==") && !p.starts_with("setuptools=="))
        .collect();
    if !packages.is_empty() {
        let requirements = workdir.join("requirements.lock.txt");
        std::fs::write(&requirements, packages.join("\n") + "\n")?;
        run(
            &python.display().to_string(),
            &[
                "-m",
                "pip",
                "install",
                "--quiet",
                "--disable-pip-version-check",
                "-r",
                &requirements.display().to_string(),
            ],
            workdir,
        )
        .context("cannot install the recorded packages")?;
    }
    Ok(python)
}

/// Pulls the stored dataset version with content `sha256` to `target`.
async fn fetch_by_digest(client: &Client, sha256: &str, target: &Path) -> anyhow::Result<()> {
    let graph = client
        .call(
            Method::GET,
            "/lineage",
            &[("of", format!("dataset:sha256:{sha256}"))],
            None,
        )
        .await?;
    let digest = format!("sha256:{sha256}");
    let name = graph["datasets"]
        .as_array()
        .into_iter()
        .flatten()
        .filter(|d| d["digest"] == json!(digest))
        .flat_map(|d| d["stored_versions"].as_array().cloned().unwrap_or_default())
        .find_map(|v| v["name"].as_str().map(str::to_string));
    let name = match name {
        Some(name) => name,
        None => {
            // Not read by any run the caller can see: look through the datasets.
            let listed = client.call(Method::GET, "/datasets", &[], None).await?;
            listed["datasets"]
                .as_array()
                .into_iter()
                .flatten()
                .find(|d| {
                    d["versions"]
                        .as_array()
                        .into_iter()
                        .flatten()
                        .any(|v| v["digest"] == json!(digest))
                })
                .and_then(|d| d["name"].as_str().map(str::to_string))
                .context("no stored dataset has that content")?
        }
    };
    if let Some(parent) = target.parent() {
        std::fs::create_dir_all(parent)?;
    }
    crate::datasets::pull_version(client, &name, sha256, target).await
}

fn compare_metrics(original: &Value, renewed: &Value, tolerance: f64) -> Vec<Value> {
    let values = |run: &Value| -> BTreeMap<String, f64> {
        run["run"]["data"]["metrics"]
            .as_array()
            .into_iter()
            .flatten()
            .filter_map(|m| Some((m["key"].as_str()?.to_string(), m["value"].as_f64()?)))
            .collect()
    };
    let (before, after) = (values(original), values(renewed));
    before
        .iter()
        .map(|(key, old)| match after.get(key) {
            Some(new) => json!({
                "metric": key, "original": old, "reproduction": new, "change": new - old,
                "within_tolerance": (new - old).abs() <= tolerance,
            }),
            None => json!({"metric": key, "original": old, "reproduction": null, "within_tolerance": false}),
        })
        .collect()
}

/// What differs between two manifests' environments: Python, packages
/// (added, removed, changed), system and GPUs.
fn environment_differences(before: &Value, after: &Value) -> Value {
    let packages = |manifest: &Value| -> BTreeMap<String, String> {
        manifest["python"]["packages"]
            .as_array()
            .into_iter()
            .flatten()
            .filter_map(|p| {
                p.as_str()?
                    .split_once("==")
                    .map(|(n, v)| (n.to_string(), v.to_string()))
            })
            .collect()
    };
    let (old, new) = (packages(before), packages(after));
    let names: BTreeSet<&String> = old.keys().chain(new.keys()).collect();
    let mut changed = Vec::new();
    for name in names {
        match (old.get(name), new.get(name)) {
            (Some(a), Some(b)) if a != b => {
                changed.push(json!({"package": name, "original": a, "reproduction": b}))
            }
            (Some(a), None) => {
                changed.push(json!({"package": name, "original": a, "reproduction": null}))
            }
            (None, Some(b)) => {
                changed.push(json!({"package": name, "original": null, "reproduction": b}))
            }
            _ => {}
        }
    }
    let mut fields = Vec::new();
    for (label, path) in [
        ("python", &["python", "version"][..]),
        ("os", &["system", "os"][..]),
        ("kernel", &["system", "kernel"][..]),
        ("libc", &["system", "libc"][..]),
        ("cpu", &["system", "cpu_model"][..]),
        ("gpus", &["gpus", "nvidia"][..]),
        ("cudnn", &["gpus", "cudnn"][..]),
        ("container", &["container", "image_digest"][..]),
    ] {
        let pick = |m: &Value| path.iter().fold(m.clone(), |v, key| v[*key].clone());
        let (a, b) = (pick(before), pick(after));
        if a != b {
            fields.push(json!({"what": label, "original": a, "reproduction": b}));
        }
    }
    json!({"packages": changed, "system": fields})
}
