//! `sextant exec -- COMMAND`: runs a training command inside an MLflow run
//! and records what the run depended on.
//!
//! The run is created (or attached to) first and exported to the command
//! (`MLFLOW_TRACKING_URI`, `MLFLOW_RUN_ID`, `MLFLOW_EXPERIMENT_ID`), with a
//! recorded seed (`SEXTANT_SEED`, `PYTHONHASHSEED`), so the unmodified
//! `mlflow` client logs into it. While the command runs, the environment
//! is captured beside it (`capture`): code, packages, system, devices,
//! container, allow-listed variables, hashes of the inputs. When it ends, the
//! whole is one JSON manifest stored as the run's artifact
//! `sextant/environment.json`, summarised in tags, and its SHA-256 is
//! recorded in the server's audit log (`POST /api/v1/run-manifests`), so an
//! edited manifest shows (`sextant manifest RUN_ID`).

use std::path::PathBuf;
use std::process::Stdio;
use std::time::{Instant, SystemTime, UNIX_EPOCH};

use anyhow::{bail, Context};
use reqwest::Method;
use serde_json::{json, Map, Value};
use tokio::io::{AsyncRead, AsyncReadExt};

use crate::capture;
use crate::client::{Client, Connection};

/// Where the manifest is stored among the run's artifacts.
pub const MANIFEST_PATH: &str = "sextant/environment.json";
/// How much of each output stream the manifest keeps (the end of it).
const OUTPUT_TAIL_BYTES: usize = 16 * 1024;

#[derive(clap::Args)]
pub struct ExecArgs {
    /// The experiment the run goes to, created when missing (default: the
    /// Default experiment).
    #[arg(long)]
    experiment: Option<String>,
    /// The new run's name.
    #[arg(long)]
    run_name: Option<String>,
    /// Attach to this existing run instead of creating one.
    #[arg(long, conflicts_with_all = ["experiment", "run_name"])]
    run_id: Option<String>,
    /// A data file or directory the command reads; its content hash goes
    /// into the manifest (repeatable).
    #[arg(long = "input", value_name = "PATH")]
    inputs: Vec<PathBuf>,
    /// The seed exported as SEXTANT_SEED (and PYTHONHASHSEED unless it is
    /// set); default: a random one, recorded.
    #[arg(long)]
    seed: Option<u32>,
    /// More environment variables to record (a name, or a prefix ending in
    /// `*`), beside the default allow-list. Names with TOKEN, SECRET,
    /// PASSWORD, KEY or CREDENTIAL are never recorded.
    #[arg(long = "env", value_name = "NAME")]
    env_allow: Vec<String>,
    /// A tag to set on the run, KEY=VALUE (repeatable).
    #[arg(long = "tag", value_name = "KEY=VALUE", value_parser = parse_tag)]
    tags: Vec<(String, String)>,
    /// The command and its arguments (after `--`).
    #[arg(required = true, trailing_var_arg = true, allow_hyphen_values = true)]
    command: Vec<String>,
}

fn parse_tag(text: &str) -> Result<(String, String), String> {
    match text.split_once('=') {
        Some((key, value)) if !key.is_empty() => Ok((key.to_string(), value.to_string())),
        _ => Err(format!("'{text}' is not KEY=VALUE")),
    }
}

fn now_ms() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_millis() as i64)
}

pub async fn exec(connection: &Connection, args: ExecArgs) -> anyhow::Result<()> {
    let client = Client::new(connection)?;
    let started = Instant::now();
    let started_ms = now_ms();
    let (run_id, experiment_id, artifact_uri) = open_run(&client, &args, started_ms).await?;
    let seed = args.seed.unwrap_or_else(|| {
        let bytes = uuid::Uuid::new_v4().into_bytes();
        u32::from_le_bytes([bytes[0], bytes[1], bytes[2], bytes[3]])
    });
    let cwd = std::env::current_dir().context("cannot read the working directory")?;

    // The capture runs beside the command, on a blocking thread.
    let inputs = args.inputs.clone();
    let program = args.command[0].clone();
    let env_allow = args.env_allow.clone();
    let capture_dir = cwd.clone();
    let captured = tokio::task::spawn_blocking(move || {
        capture::environment(&capture_dir, &program, &inputs, &env_allow)
    });

    let mut command = tokio::process::Command::new(&args.command[0]);
    command
        .args(&args.command[1..])
        .env("MLFLOW_TRACKING_URI", client.base())
        .env("MLFLOW_RUN_ID", &run_id)
        .env("MLFLOW_EXPERIMENT_ID", &experiment_id)
        .env("SEXTANT_SEED", seed.to_string())
        .stdin(Stdio::inherit())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    let python_hash_seed = std::env::var("PYTHONHASHSEED").ok();
    if python_hash_seed.is_none() {
        command.env("PYTHONHASHSEED", seed.to_string());
    }
    if let Some(token) = client.bearer_token() {
        command.env("MLFLOW_TRACKING_TOKEN", token);
    }
    let outcome = match command.spawn() {
        Ok(mut child) => {
            let stdout = child.stdout.take().expect("piped");
            let stderr = child.stderr.take().expect("piped");
            let (status, out_tail, err_tail) = tokio::join!(
                child.wait(),
                tee(stdout, std::io::stdout),
                tee(stderr, std::io::stderr),
            );
            let status = status.context("waiting for the command")?;
            json!({
                "exit_code": status.code(),
                "signal": std::os::unix::process::ExitStatusExt::signal(&status),
                "stdout_tail": out_tail,
                "stderr_tail": err_tail,
            })
        }
        Err(err) => {
            eprintln!("sextant: error: cannot run '{}': {err}", args.command[0]);
            json!({"exit_code": null, "error": format!("cannot run '{}': {err}", args.command[0])})
        }
    };
    let ended_ms = now_ms();
    let mut manifest = captured.await.context("the capture failed")?;
    let exit_code = outcome["exit_code"].as_i64();

    // Datasets the command logged with `mlflow.log_input` from local files.
    let run = client
        .mlflow(
            Method::GET,
            "/runs/get",
            &[("run_id", run_id.clone())],
            None,
        )
        .await?;
    manifest.insert(
        "logged_datasets".into(),
        capture::logged_datasets(&run["run"]["inputs"], &cwd),
    );
    let mut command_record = Map::new();
    command_record.insert("argv".into(), json!(args.command));
    command_record.insert("cwd".into(), json!(cwd.display().to_string()));
    command_record.insert("started_ms".into(), json!(started_ms));
    command_record.insert("ended_ms".into(), json!(ended_ms));
    command_record.insert(
        "duration_s".into(),
        json!((ended_ms - started_ms) as f64 / 1000.0),
    );
    if let Value::Object(fields) = outcome {
        command_record.extend(fields);
    }
    manifest.insert("command".into(), Value::Object(command_record));
    manifest.insert(
        "seed".into(),
        json!({
            "sextant_seed": seed,
            "pythonhashseed": python_hash_seed.unwrap_or_else(|| seed.to_string()),
            "given": args.seed.is_some(),
        }),
    );
    manifest.insert("run_id".into(), json!(run_id));
    manifest.insert("format".into(), json!("sextant.environment/1"));

    // Artifacts: the diff and lockfiles, then the manifest naming them.
    let artifacts = Artifacts::new(&client, &artifact_uri)?;
    if let Some(diff) = manifest
        .get_mut("git")
        .and_then(|git| git.as_object_mut())
        .and_then(|git| git.remove("diff_bytes"))
    {
        if let Some(text) = diff.as_str() {
            artifacts
                .put("sextant/git.diff", text.as_bytes().to_vec())
                .await?;
        }
    }
    for lockfile in manifest["lockfiles"]
        .as_array()
        .cloned()
        .unwrap_or_default()
    {
        let (Some(path), Some(name)) = (lockfile["path"].as_str(), lockfile["artifact"].as_str())
        else {
            continue;
        };
        if let Ok(bytes) = std::fs::read(path) {
            artifacts.put(name, bytes).await?;
        }
    }
    let manifest = Value::Object(manifest);
    let mut bytes = serde_json::to_vec_pretty(&manifest)?;
    bytes.push(b'\n');
    let sha256 = capture::sha256_hex(&bytes);
    artifacts.put(MANIFEST_PATH, bytes).await?;
    client
        .call(
            Method::POST,
            "/run-manifests",
            &[],
            Some(json!({"run_id": run_id, "artifact_path": MANIFEST_PATH, "sha256": sha256})),
        )
        .await
        .context("recording the manifest's hash in the audit log")?;

    // Tags a reader sees on the run page, and the run's end.
    let mut tags = vec![
        ("sextant.manifest.sha256".to_string(), sha256.clone()),
        ("sextant.seed".to_string(), seed.to_string()),
        (
            "sextant.exit_code".to_string(),
            exit_code.map_or("none".into(), |c| c.to_string()),
        ),
    ];
    tags.extend(capture::summary_tags(&manifest));
    tags.extend(args.tags.iter().cloned());
    let tags: Vec<Value> = tags
        .into_iter()
        .map(|(key, value)| json!({"key": key, "value": value}))
        .collect();
    client
        .mlflow(
            Method::POST,
            "/runs/log-batch",
            &[],
            Some(json!({"run_id": run_id, "tags": tags})),
        )
        .await?;
    let still_running = run["run"]["info"]["status"].as_str() == Some("RUNNING");
    if still_running {
        let status = if exit_code == Some(0) {
            "FINISHED"
        } else {
            "FAILED"
        };
        client
            .mlflow(
                Method::POST,
                "/runs/update",
                &[],
                Some(json!({"run_id": run_id, "status": status, "end_time": ended_ms})),
            )
            .await?;
    }
    eprintln!(
        "sextant: run {run_id}: manifest {sha256} recorded ({:.2} s)",
        started.elapsed().as_secs_f64()
    );
    match exit_code {
        Some(0) => Ok(()),
        Some(code) => std::process::exit(code.clamp(1, 255) as i32),
        // Killed by a signal, or never started.
        None => std::process::exit(if manifest["command"]["error"].is_null() {
            128
        } else {
            127
        }),
    }
}

/// The run to log into: `--run-id`, or a new one in `--experiment`
/// (created when missing). Returns (run id, experiment id, artifact URI).
async fn open_run(
    client: &Client,
    args: &ExecArgs,
    started_ms: i64,
) -> anyhow::Result<(String, String, String)> {
    if let Some(run_id) = &args.run_id {
        let run = client
            .mlflow(
                Method::GET,
                "/runs/get",
                &[("run_id", run_id.clone())],
                None,
            )
            .await?;
        let info = &run["run"]["info"];
        return Ok((
            run_id.clone(),
            info["experiment_id"].as_str().unwrap_or("0").to_string(),
            info["artifact_uri"]
                .as_str()
                .unwrap_or_default()
                .to_string(),
        ));
    }
    let experiment_id = match &args.experiment {
        None => "0".to_string(),
        Some(name) => {
            let found = client
                .mlflow(
                    Method::GET,
                    "/experiments/get-by-name",
                    &[("experiment_name", name.clone())],
                    None,
                )
                .await;
            match found {
                Ok(answer) => answer["experiment"]["experiment_id"]
                    .as_str()
                    .context("the server's answer has no experiment id")?
                    .to_string(),
                Err(_) => client
                    .mlflow(
                        Method::POST,
                        "/experiments/create",
                        &[],
                        Some(json!({"name": name})),
                    )
                    .await?["experiment_id"]
                    .as_str()
                    .context("the server's answer has no experiment id")?
                    .to_string(),
            }
        }
    };
    let program = std::path::Path::new(&args.command[0])
        .file_name()
        .map_or(args.command[0].clone(), |n| {
            n.to_string_lossy().into_owned()
        });
    let mut tags = vec![
        json!({"key": "mlflow.source.type", "value": "LOCAL"}),
        json!({"key": "mlflow.source.name", "value": args.command.join(" ")}),
        json!({"key": "mlflow.user", "value": capture::user()}),
        json!({"key": "sextant.exec", "value": "true"}),
    ];
    let run_name = args.run_name.clone().unwrap_or(program);
    tags.push(json!({"key": "mlflow.runName", "value": run_name}));
    let created = client
        .mlflow(
            Method::POST,
            "/runs/create",
            &[],
            Some(json!({
                "experiment_id": experiment_id,
                "run_name": run_name,
                "start_time": started_ms,
                "tags": tags,
            })),
        )
        .await?;
    let info = &created["run"]["info"];
    let run_id = info["run_id"]
        .as_str()
        .context("the server's answer has no run id")?
        .to_string();
    Ok((
        run_id,
        experiment_id,
        info["artifact_uri"]
            .as_str()
            .unwrap_or_default()
            .to_string(),
    ))
}

/// Copies `from` to our own stream (`to`: stdout or stderr) as it comes,
/// keeping the last [`OUTPUT_TAIL_BYTES`] as (lossy) text. The writes are
/// small and to a terminal or pipe, so they are made directly.
async fn tee<W: std::io::Write>(mut from: impl AsyncRead + Unpin, to: fn() -> W) -> String {
    let mut tail: Vec<u8> = Vec::new();
    let mut buffer = vec![0u8; 8192];
    loop {
        let read = match from.read(&mut buffer).await {
            Ok(0) | Err(_) => break,
            Ok(read) => read,
        };
        let mut out = to();
        let _ = out.write_all(&buffer[..read]);
        let _ = out.flush();
        tail.extend_from_slice(&buffer[..read]);
        if tail.len() > 2 * OUTPUT_TAIL_BYTES {
            tail.drain(..tail.len() - OUTPUT_TAIL_BYTES);
        }
    }
    if tail.len() > OUTPUT_TAIL_BYTES {
        tail.drain(..tail.len() - OUTPUT_TAIL_BYTES);
    }
    String::from_utf8_lossy(&tail).into_owned()
}

/// Uploads into a run's artifacts through the server's artifact proxy.
struct Artifacts<'a> {
    client: &'a Client,
    /// `<experiment>/<run>/artifacts`, the part after `mlflow-artifacts:/`.
    root: String,
}

impl<'a> Artifacts<'a> {
    fn new(client: &'a Client, artifact_uri: &str) -> anyhow::Result<Artifacts<'a>> {
        let Some(root) = artifact_uri.strip_prefix("mlflow-artifacts:") else {
            bail!(
                "the run's artifacts are at '{artifact_uri}', not behind the server's artifact proxy (mlflow-artifacts:/…): start the server with --artifacts-destination"
            );
        };
        let root = root.trim_start_matches('/');
        // `mlflow-artifacts://host/path` names a server too.
        let root = match root.split_once('/') {
            Some((host, rest))
                if artifact_uri.starts_with("mlflow-artifacts://") && !host.is_empty() =>
            {
                rest
            }
            _ => root,
        };
        Ok(Artifacts {
            client,
            root: root.trim_end_matches('/').to_string(),
        })
    }

    async fn put(&self, path: &str, bytes: Vec<u8>) -> anyhow::Result<()> {
        self.client
            .put_artifact(&format!("{}/{path}", self.root), bytes)
            .await
            .with_context(|| format!("uploading {path}"))
    }
}

/// `sextant manifest RUN_ID`: the recorded manifest, checked.
#[derive(clap::Args)]
pub struct ManifestArgs {
    /// The run.
    run_id: String,
    /// Print the manifest itself too.
    #[arg(long)]
    full: bool,
}

pub async fn manifest(connection: &Connection, args: ManifestArgs) -> anyhow::Result<()> {
    let client = Client::new(connection)?;
    let check = client
        .call(
            Method::GET,
            "/run-manifests",
            &[("run_id", args.run_id.clone())],
            None,
        )
        .await?;
    let mut shown = check.clone();
    if !args.full {
        if let Some(fields) = shown.as_object_mut() {
            fields.remove("manifest");
        }
    }
    crate::output::print(&shown);
    if check["intact"] != Value::Bool(true) {
        eprintln!(
            "sextant: the stored manifest of run {} is not the one recorded in the audit log",
            args.run_id
        );
        std::process::exit(1);
    }
    Ok(())
}

/// `sextant lineage THING`: where a deployment, model version or run came
/// from, or what a dataset or commit fed.
#[derive(clap::Args)]
pub struct LineageArgs {
    /// deployment:NAME, models:/NAME/VERSION, models:/NAME@ALIAS, runs:/RUN_ID,
    /// dataset:sha256:HEX or commit:SHA.
    of: String,
}

pub async fn lineage(connection: &Connection, args: LineageArgs) -> anyhow::Result<()> {
    let client = Client::new(connection)?;
    let graph = client
        .call(Method::GET, "/lineage", &[("of", args.of)], None)
        .await?;
    crate::output::print(&graph);
    Ok(())
}
