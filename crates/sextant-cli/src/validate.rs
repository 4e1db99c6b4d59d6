//! `sextant validate`: runs a validation spec against a model, for any CI.
//! Exit code 0 when the model passed, 1 when a blocking check failed, 2
//! when the validation could not run (a bad spec, unreadable data, a model
//! that does not load).

use std::collections::BTreeMap;
use std::io::Write;
use std::path::{Path, PathBuf};

use anyhow::{bail, Context};
use reqwest::Method;
use sextant_validate::{Report, Spec, Status, Verdict};

use crate::client::{Client, Connection};

#[derive(clap::Args)]
pub struct ValidateArgs {
    /// The model: NAME/VERSION or NAME@ALIAS (registered on the server), or
    /// a local MLflow model directory.
    #[arg(long)]
    model: String,
    /// The validation spec (YAML); default: the `sextant-validation.yaml`
    /// logged in the model's directory.
    #[arg(long)]
    spec: Option<PathBuf>,
    /// The model to compare with (default: the spec's `baseline.model`).
    #[arg(long)]
    baseline: Option<String>,
    /// Write the report there instead of standard output.
    #[arg(long)]
    output: Option<PathBuf>,
    /// Worker threads (default: every core).
    #[arg(long)]
    threads: Option<usize>,
    /// Where downloaded models are kept.
    #[arg(long, env = "SEXTANT_CACHE_DIR")]
    cache_dir: Option<PathBuf>,
}

pub async fn validate(connection: &Connection, args: ValidateArgs) -> anyhow::Result<()> {
    connection.apply_format();
    let candidate_dir =
        crate::batch::model_dir(connection, &args.model, args.cache_dir.as_deref()).await?;
    let spec_path = match &args.spec {
        Some(path) => path.clone(),
        None => {
            let logged = candidate_dir.join(sextant_validate::LOGGED_SPEC_FILE);
            anyhow::ensure!(
                logged.is_file(),
                "no --spec given, and {} has no {} logged with it",
                args.model,
                sextant_validate::LOGGED_SPEC_FILE
            );
            logged
        }
    };
    let text = std::fs::read_to_string(&spec_path)
        .with_context(|| format!("cannot read the spec {}", spec_path.display()))?;
    let spec = Spec::parse(&text).map_err(|e| anyhow::anyhow!("{}: {e}", spec_path.display()))?;
    let spec_dir = spec_path
        .parent()
        .map(Path::to_path_buf)
        .unwrap_or_default();
    let downloads = tempfile::tempdir().context("cannot create a directory for downloads")?;
    let mut files = BTreeMap::new();
    for (name, uri) in spec.uris() {
        let path = resolve_dataset(connection, &spec_dir, downloads.path(), name, uri)
            .await
            .with_context(|| format!("dataset '{name}' ({uri})"))?;
        files.insert(name.to_string(), path);
    }

    let baseline_name = args
        .baseline
        .clone()
        .or_else(|| spec.baseline.as_ref().map(|b| b.model.clone()));
    let (baseline_dir, baseline_note) = match &baseline_name {
        None => (None, None),
        Some(name) => {
            match crate::batch::model_dir(connection, name, args.cache_dir.as_deref()).await {
                Ok(dir) => (Some(dir), None),
                Err(error) => {
                    let note =
                        format!("baseline {name} is absent ({error:#}); comparisons are skipped");
                    eprintln!("sextant: {note}");
                    (None, Some(note))
                }
            }
        }
    };
    let options = crate::batch::load_options(args.cache_dir.as_deref());
    let threads = args
        .threads
        .unwrap_or_else(|| std::thread::available_parallelism().map_or(1, |n| n.get()));
    let candidate_label = args.model.clone();
    let report = tokio::task::spawn_blocking(move || -> anyhow::Result<Report> {
        let load = |dir: &Path| {
            sextant_serve::mlflow::load_model_dir(dir, &options)
                .map(|loaded| loaded.model)
                .map_err(|e| anyhow::anyhow!("cannot load the model in {}: {e}", dir.display()))
        };
        let candidate = load(&candidate_dir)?;
        let baseline = baseline_dir.as_deref().map(load).transpose()?;
        Ok(sextant_validate::run(sextant_validate::Run {
            spec: &spec,
            candidate: sextant_validate::Subject {
                name: candidate_label,
                model: &candidate,
                size_bytes: Some(sextant_validate::directory_size(&candidate_dir)),
            },
            baseline: baseline.as_ref().map(|model| sextant_validate::Subject {
                name: baseline_name.clone().unwrap_or_default(),
                model,
                size_bytes: baseline_dir
                    .as_deref()
                    .map(sextant_validate::directory_size),
            }),
            baseline_note,
            files,
            threads,
        }))
    })
    .await??;
    drop(downloads);

    // `--format` (the client commands' flag): a summary on a terminal, the
    // JSON report when piped, or HTML or JUnit XML when asked.
    use crate::output::Format;
    use std::io::IsTerminal;
    let format = match crate::output::format() {
        Format::Auto if args.output.is_none() && std::io::stdout().is_terminal() => Format::Table,
        Format::Auto => Format::Json,
        other => other,
    };
    let rendered = match format {
        Format::Json | Format::Auto => serde_json::to_string_pretty(&report)? + "\n",
        Format::Html => report.to_html(),
        Format::Junit => report.to_junit(),
        Format::Table => summary(&report),
    };
    match &args.output {
        Some(path) => std::fs::write(path, rendered)
            .with_context(|| format!("cannot write {}", path.display()))?,
        None => std::io::stdout().write_all(rendered.as_bytes())?,
    }
    if format != Format::Table || args.output.is_some() {
        eprintln!(
            "sextant: {} {} ({} blocking failure(s)) in {:.2} s",
            report.model,
            report.status.as_str(),
            report.failed_checks.len(),
            report.seconds
        );
    }
    match report.status {
        Status::Passed => Ok(()),
        Status::Failed => std::process::exit(1),
        Status::Error => std::process::exit(2),
    }
}

/// One line per assertion, failures first named in a closing line.
fn summary(report: &Report) -> String {
    let mut out = String::new();
    for test in &report.tests {
        for a in &test.assertions {
            let mark = match a.verdict {
                Verdict::Passed => "pass",
                Verdict::Failed => "FAIL",
                Verdict::Skipped => "skip",
                Verdict::Error => "ERROR",
            };
            out.push_str(&format!("{mark:5} {}  {}\n", a.id, a.message));
        }
    }
    for gate in &report.gates {
        out.push_str(&format!(
            "gate {}: {}\n",
            gate.to,
            if gate.allowed {
                "allowed".to_string()
            } else {
                format!("blocked by {}", gate.blocking.join(", "))
            }
        ));
    }
    out.push_str(&format!(
        "{}: {} ({} blocking failure(s)) in {:.2} s\n",
        report.model,
        report.status.as_str(),
        report.failed_checks.len(),
        report.seconds
    ));
    out
}

/// A spec's dataset as a local file: a path (relative to the spec's
/// directory), a run artifact (`runs:/RUN_ID/path`), a stored dataset
/// (`dataset:NAME@DIGEST` or `@latest`), or an object-store URL.
async fn resolve_dataset(
    connection: &Connection,
    spec_dir: &Path,
    downloads: &Path,
    name: &str,
    uri: &str,
) -> anyhow::Result<PathBuf> {
    let target_dir = downloads.join(name);
    std::fs::create_dir_all(&target_dir)?;
    if let Some(rest) = uri.strip_prefix("runs:/") {
        let (run_id, path) = rest
            .split_once('/')
            .context("runs:/RUN_ID/PATH names a file")?;
        let client = Client::new(connection)?;
        let run = client
            .mlflow(
                Method::GET,
                "/runs/get",
                &[("run_id", run_id.to_string())],
                None,
            )
            .await?;
        let root = run["run"]["info"]["artifact_uri"]
            .as_str()
            .unwrap_or_default()
            .to_string();
        let file_name = path.rsplit('/').next().unwrap_or(path);
        let local = target_dir.join(file_name);
        let bytes = match root.strip_prefix("mlflow-artifacts:/") {
            Some(proxied) => {
                client
                    .get_artifact(&format!("{}/{path}", proxied.trim_matches('/')))
                    .await?
            }
            None => {
                let dir = root.strip_prefix("file://").unwrap_or(&root);
                std::fs::read(Path::new(dir).join(path))
                    .with_context(|| format!("cannot read the artifact {path} under {root}"))?
            }
        };
        std::fs::write(&local, bytes)?;
        return Ok(local);
    }
    if let Some(rest) = uri.strip_prefix("dataset:") {
        let (dataset, wanted) = rest.split_once('@').unwrap_or((rest, "latest"));
        let client = Client::new(connection)?;
        let version = client
            .call(
                Method::GET,
                &format!("/datasets/{dataset}/versions/{wanted}"),
                &[],
                None,
            )
            .await?;
        if version["kind"] == "directory" {
            bail!("dataset {dataset} is a directory; a validation reads one file");
        }
        // A file version's path is empty: its name (and so its format, as
        // the server reads it) is the one it was pushed from.
        let named = version["files"][0]["path"]
            .as_str()
            .filter(|path| !path.is_empty())
            .or(version["source"].as_str())
            .unwrap_or_default();
        let suffix = sextant_monitor::dataset::format_suffix(named);
        let local = target_dir.join(format!("data{suffix}"));
        crate::datasets::pull_version(&client, dataset, wanted, &local).await?;
        return Ok(local);
    }
    if uri.contains("://") && !uri.starts_with("file://") {
        let selected = crate::input::select_input(uri, None).await?;
        let [file] = selected.files.as_slice() else {
            bail!(
                "{uri} holds {} files; a validation reads one",
                selected.files.len()
            );
        };
        let local = target_dir.join(file.file_name().unwrap_or_default());
        std::fs::copy(file, &local)?;
        return Ok(local);
    }
    let path = Path::new(uri.strip_prefix("file://").unwrap_or(uri));
    let path = if path.is_absolute() {
        path.to_path_buf()
    } else {
        spec_dir.join(path)
    };
    if !path.is_file() {
        bail!("{} does not exist", path.display());
    }
    Ok(path)
}

#[derive(clap::Subcommand)]
pub enum GatesCommand {
    /// Attach a validation spec to a registered model: every version registered from now on is validated against it on the server.
    Attach {
        /// The registered model.
        #[arg(long)]
        model: String,
        /// The spec (YAML); its datasets must be on the server: run artifacts (runs:/RUN_ID/PATH) or stored datasets (dataset:NAME@DIGEST).
        spec: PathBuf,
    },
    /// A version's validation: status, failed checks; exits 1 when it failed, 2 when it could not run, 3 while pending.
    Status {
        /// NAME/VERSION.
        version: String,
    },
    /// Validate a version again against the model's current spec.
    Run {
        /// NAME/VERSION.
        version: String,
    },
    /// Let a version that failed through the gate (administrators; the reason is audited).
    Override {
        /// NAME/VERSION.
        version: String,
        /// Why the failure is accepted (kept in the audit log).
        #[arg(long)]
        reason: String,
    },
    /// Detach the model's spec.
    Detach {
        /// The registered model.
        #[arg(long)]
        model: String,
    },
}

fn split_version(text: &str) -> anyhow::Result<(String, String)> {
    let text = text.strip_prefix("models:/").unwrap_or(text);
    match text.rsplit_once('/') {
        Some((name, version)) if !name.is_empty() && version.parse::<u64>().is_ok() => {
            Ok((name.to_string(), version.to_string()))
        }
        _ => bail!("'{text}' is not NAME/VERSION"),
    }
}

fn path_segment(text: &str) -> String {
    text.bytes()
        .map(|b| match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'_' | b'.' | b'~' => {
                (b as char).to_string()
            }
            other => format!("%{other:02X}"),
        })
        .collect()
}

/// `sextant gates …`: the server's quality gates.
pub async fn gates(connection: &Connection, command: GatesCommand) -> anyhow::Result<()> {
    let client = Client::new(connection)?;
    let version_path = |text: &str| -> anyhow::Result<String> {
        let (name, version) = split_version(text)?;
        Ok(format!(
            "/registered-models/{}/versions/{version}/validation",
            path_segment(&name)
        ))
    };
    match command {
        GatesCommand::Attach { model, spec } => {
            let text = std::fs::read_to_string(&spec)
                .with_context(|| format!("cannot read {}", spec.display()))?;
            let mut answer = client
                .call(
                    Method::PUT,
                    &format!(
                        "/registered-models/{}/validation-spec",
                        path_segment(&model)
                    ),
                    &[],
                    Some(serde_json::json!({ "spec": text })),
                )
                .await?;
            if let Some(object) = answer.as_object_mut() {
                object.remove("spec");
            }
            crate::output::print(&answer);
        }
        GatesCommand::Status { version } => {
            let mut answer = client
                .call(Method::GET, &version_path(&version)?, &[], None)
                .await?;
            let status = answer["status"].as_str().unwrap_or_default().to_string();
            if let Some(object) = answer.as_object_mut() {
                object.remove("report");
            }
            crate::output::print(&answer);
            match status.as_str() {
                "passed" | "overridden" => {}
                "failed" => std::process::exit(1),
                "pending" => std::process::exit(3),
                _ => std::process::exit(2),
            }
        }
        GatesCommand::Run { version } => {
            let answer = client
                .call(Method::POST, &version_path(&version)?, &[], None)
                .await?;
            crate::output::print(&answer);
        }
        GatesCommand::Override { version, reason } => {
            let mut answer = client
                .call(
                    Method::POST,
                    &format!("{}/override", version_path(&version)?),
                    &[],
                    Some(serde_json::json!({ "reason": reason })),
                )
                .await?;
            if let Some(object) = answer.as_object_mut() {
                object.remove("report");
            }
            crate::output::print(&answer);
        }
        GatesCommand::Detach { model } => {
            client
                .call(
                    Method::DELETE,
                    &format!(
                        "/registered-models/{}/validation-spec",
                        path_segment(&model)
                    ),
                    &[],
                    None,
                )
                .await?;
            crate::output::print(
                &serde_json::json!({ "model": model, "validation_spec": "detached" }),
            );
        }
    }
    Ok(())
}

#[derive(clap::Subcommand)]
pub enum ExpectationsCommand {
    /// Propose expectations from a file's profile (types, missing values, ranges, categories, uniqueness), as YAML to edit and then check with.
    Infer {
        /// The data: a .csv, .tsv or .parquet file (a CSV may be compressed: .csv.gz, .csv.bz2, .csv.xz, .csv.zst, .csv.zip).
        data: PathBuf,
    },
    /// Check a CSV or Parquet file against an expectations file (`expectations: [...]`, the vocabulary of a spec's expectations tests) in one read; exit 0 when every expectation holds, 1 when one fails, 2 when the check could not run.
    Check {
        /// The data: a .csv, .tsv or .parquet file (a CSV may be compressed: .csv.gz, .csv.bz2, .csv.xz, .csv.zst, .csv.zip).
        data: PathBuf,
        /// The expectations (YAML).
        expectations: PathBuf,
    },
}

pub fn expectations(connection: &Connection, command: ExpectationsCommand) -> anyhow::Result<()> {
    connection.apply_format();
    let (data, expectations) = match command {
        ExpectationsCommand::Infer { data } => {
            let table =
                sextant_monitor::dataset::Table::open(&data).map_err(|e| anyhow::anyhow!(e))?;
            let profile = sextant_monitor::profile::Profile::of(&table, None)
                .map_err(|e| anyhow::anyhow!(e))?;
            print!(
                "{}",
                sextant_validate::expectations::infer(&profile, &data.display().to_string())
            );
            return Ok(());
        }
        ExpectationsCommand::Check { data, expectations } => (data, expectations),
    };
    let text = std::fs::read_to_string(&expectations)
        .with_context(|| format!("cannot read {}", expectations.display()))?;
    let (list, schema) = sextant_validate::expectations::parse_file(&text)
        .map_err(|e| anyhow::anyhow!("{}: {e}", expectations.display()))?;
    let checked = sextant_validate::expectations::check_file(&data, &list, &schema)
        .map_err(|e| anyhow::anyhow!(e))?;
    let errored = checked.outcomes.iter().any(|o| o.error.is_some());
    let value = serde_json::json!({
        "data": data.display().to_string(),
        "success": checked.success,
        "rows": checked.rows,
        "columns": checked.columns,
        "seconds": checked.seconds,
        "expectations": checked.outcomes,
    });
    use std::io::IsTerminal;
    let readable = match crate::output::format() {
        crate::output::Format::Table => true,
        crate::output::Format::Auto => std::io::stdout().is_terminal(),
        _ => false,
    };
    let data_name = data.display().to_string();
    if crate::output::format() == crate::output::Format::Junit {
        print!("{}", checked.to_junit(&data_name));
    } else if crate::output::format() == crate::output::Format::Html {
        print!("{}", checked.to_html(&data_name));
    } else if readable {
        let mut out = String::new();
        for outcome in &checked.outcomes {
            let mark = match (&outcome.error, outcome.success) {
                (Some(_), _) => "ERROR",
                (None, true) => "pass",
                (None, false) => "FAIL",
            };
            let what = match &outcome.column {
                Some(c) => format!("{}({c})", outcome.expectation),
                None => outcome.expectation.clone(),
            };
            let detail = match (&outcome.error, outcome.unexpected_count) {
                (Some(e), _) => e.clone(),
                (None, Some(n)) => format!(
                    "{n} unexpected; first rows {}",
                    serde_json::Value::from(outcome.unexpected_rows.clone())
                ),
                (None, None) => format!("observed {}", outcome.observed),
            };
            out.push_str(&format!("{mark:5} {what}  {detail}\n"));
        }
        out.push_str(&format!(
            "{} rows checked in {:.2} s\n",
            checked.rows, checked.seconds
        ));
        print!("{out}");
    } else {
        println!("{}", serde_json::to_string_pretty(&value)?);
    }
    if errored {
        std::process::exit(2);
    }
    if !checked.success {
        std::process::exit(1);
    }
    Ok(())
}
