//! `sextant deployments …` (managing deployments through the native API)
//! and `sextant serve` (a serving replica that follows a server, or serves
//! a bundle baked into a container image).

use std::path::PathBuf;
use std::time::Duration;

use anyhow::{bail, Context};
use clap::{Args, Subcommand};
use reqwest::Method;
use serde_json::{json, Value};
use sextant_core::ModelRef;
use sextant_server::serving::{
    LogSink, PredictionLogConfig, RemoteServer, Serving, ServingConfig, Source,
};

use crate::client::{Client, Connection};

#[derive(Subcommand)]
pub enum DeploymentsCommand {
    /// Deploy a registered model version under a name (the model name in /v2/models/NAME/infer).
    Create {
        /// The deployment's name.
        name: String,
        /// NAME@ALIAS, NAME/VERSION or NAME/latest.
        #[arg(long)]
        model: String,
        /// A note shown with the deployment.
        #[arg(long)]
        description: Option<String>,
        /// Do not write predictions to the prediction log.
        #[arg(long)]
        no_prediction_log: bool,
        /// Do not monitor drift or flag outliers.
        #[arg(long)]
        no_monitoring: bool,
        /// Python worker processes for a model only Python can run.
        #[arg(long)]
        python_workers: Option<u32>,
        /// Answer 429 to callers flagged for abuse or model extraction.
        #[arg(long)]
        throttle_abusive_callers: bool,
        /// When --model is NAME@ALIAS and the alias moves: replace, blue-green or canary (default replace).
        #[arg(long, value_parser = ["replace", "blue-green", "canary"])]
        on_alias_move: Option<String>,
    },
    /// Serve another version (ends a running experiment). The new version loads and warms up first.
    Update {
        /// The deployment's name.
        name: String,
        /// The version to serve: NAME@ALIAS, NAME/VERSION or NAME/latest.
        #[arg(long)]
        model: Option<String>,
        /// Keep the replaced version loaded, so a rollback is instant.
        #[arg(long)]
        blue_green: bool,
        /// A note shown with the deployment.
        #[arg(long)]
        description: Option<String>,
        /// Turn the prediction log on or off.
        #[arg(long)]
        prediction_log: Option<bool>,
        /// Turn live monitoring (drift, outlier verdicts) on or off.
        #[arg(long)]
        monitoring: Option<bool>,
        /// Turn throttling of callers flagged for abuse on or off.
        #[arg(long)]
        throttle_abusive_callers: Option<bool>,
        /// What the deployment does when the alias it follows moves: replace, blue-green or canary.
        #[arg(long, value_parser = ["replace", "blue-green", "canary"])]
        on_alias_move: Option<String>,
        /// Refuse the change if the deployment moved past this revision.
        #[arg(long)]
        expected_revision: Option<i64>,
    },
    /// Switch all traffic to another version at once, keeping the current one loaded for an instant rollback.
    BlueGreen {
        /// The deployment's name.
        name: String,
        /// The version to serve: NAME@ALIAS, NAME/VERSION or NAME/latest.
        #[arg(long)]
        model: String,
    },
    /// Start a canary: the new version gets --weight percent, then more after each healthy interval; a breach rolls it back.
    Canary {
        /// The deployment's name.
        name: String,
        /// The version to serve: NAME@ALIAS, NAME/VERSION or NAME/latest.
        #[arg(long)]
        model: String,
        /// The canary's first share, in percent (default 10).
        #[arg(long)]
        weight: Option<u32>,
        /// Shares to climb through, e.g. 5,25,50,100 (default: weight, 25, 50, 100).
        #[arg(long, value_delimiter = ',')]
        steps: Option<Vec<u32>>,
        /// Baking time of each step, in seconds (default 300).
        #[arg(long)]
        interval: Option<f64>,
        /// Largest share of failing requests before rolling back (default 0.05).
        #[arg(long)]
        max_error_rate: Option<f64>,
        /// Largest p99 latency, in ms, before rolling back.
        #[arg(long)]
        max_p99_ms: Option<f64>,
        /// Requests per step before judging (default 100).
        #[arg(long)]
        min_requests: Option<u64>,
    },
    /// Start an A/B test: the new version gets --weight percent, each caller always reaching the same arm.
    Ab {
        /// The deployment's name.
        name: String,
        /// The version to serve: NAME@ALIAS, NAME/VERSION or NAME/latest.
        #[arg(long)]
        model: String,
        /// The new version's share of callers, in percent (default 50).
        #[arg(long)]
        weight: Option<u32>,
        /// Header keying stickiness (default: the caller's identity, else its address).
        #[arg(long)]
        sticky_header: Option<String>,
    },
    /// Copy live traffic to another version; its answers are logged, never returned.
    Shadow {
        /// The deployment's name.
        name: String,
        /// The version to serve: NAME@ALIAS, NAME/VERSION or NAME/latest.
        #[arg(long)]
        model: String,
        /// Share of requests copied (default 100).
        #[arg(long)]
        percent: Option<u32>,
    },
    /// Make the candidate (or --arm) the only version served; the replaced one stays loaded as a standby.
    Promote {
        /// The deployment's name.
        name: String,
        /// The arm to promote, by name (default: the candidate).
        #[arg(long)]
        arm: Option<String>,
    },
    /// Undo the last move: end an experiment, or go back to the previously served version.
    Rollback {
        /// The deployment's name.
        name: String,
        /// Why, kept in the deployment's history and the audit log.
        #[arg(long)]
        reason: Option<String>,
    },
    /// Every deployment you may see.
    List,
    /// What a deployment serves now: arms, engines, counters, latencies.
    Status {
        /// The deployment's name.
        name: String,
    },
    /// Every revision of a deployment.
    History {
        /// The deployment's name.
        name: String,
    },
    /// Stop serving and delete a deployment.
    Delete {
        /// The deployment's name.
        name: String,
    },
    /// Write an OCI image (docker load, Kubernetes) that serves the deployment's current revision.
    Image {
        /// The deployment's name.
        name: String,
        /// The image archive to write.
        #[arg(long, short)]
        output: PathBuf,
        /// The image reference recorded in the archive (default sextant/NAME:rREVISION).
        #[arg(long)]
        tag: Option<String>,
    },
}

pub async fn deployments(
    connection: &Connection,
    command: DeploymentsCommand,
) -> anyhow::Result<()> {
    let client = Client::new(connection)?;
    let path = |name: &str, action: &str| format!("/deployments/{name}{action}");
    let value = match command {
        DeploymentsCommand::Create {
            name,
            model,
            description,
            no_prediction_log,
            no_monitoring,
            python_workers,
            throttle_abusive_callers,
            on_alias_move,
        } => {
            let mut settings = json!({});
            if no_prediction_log {
                settings["log_predictions"] = json!(false);
            }
            if no_monitoring {
                settings["monitor"] = json!(false);
            }
            if let Some(workers) = python_workers {
                settings["python_workers"] = json!(workers);
            }
            if throttle_abusive_callers {
                settings["throttle_abusive_callers"] = json!(true);
            }
            if let Some(rollout) = on_alias_move {
                settings["on_alias_move"] = json!(rollout);
            }
            let body = json!({"name": name, "model": model, "description": description, "settings": settings});
            client
                .call_following(Method::POST, "/deployments", Some(body))
                .await?
        }
        DeploymentsCommand::Update {
            name,
            model,
            blue_green,
            description,
            prediction_log,
            monitoring,
            throttle_abusive_callers,
            on_alias_move,
            expected_revision,
        } => {
            let mut body = json!({
                "model": model,
                "strategy": if blue_green { "blue_green" } else { "replace" },
                "description": description,
                "expected_revision": expected_revision,
            });
            let mut settings = json!({});
            if let Some(log) = prediction_log {
                settings["log_predictions"] = json!(log);
            }
            if let Some(monitor) = monitoring {
                settings["monitor"] = json!(monitor);
            }
            if let Some(throttle) = throttle_abusive_callers {
                settings["throttle_abusive_callers"] = json!(throttle);
            }
            if let Some(rollout) = on_alias_move {
                settings["on_alias_move"] = json!(rollout);
            }
            if settings.as_object().is_some_and(|s| !s.is_empty()) {
                body["settings"] = settings;
            }
            client
                .call_following(Method::PATCH, &path(&name, ""), Some(body))
                .await?
        }
        DeploymentsCommand::BlueGreen { name, model } => {
            let body = json!({"model": model, "strategy": "blue_green"});
            client
                .call_following(Method::PATCH, &path(&name, ""), Some(body))
                .await?
        }
        DeploymentsCommand::Canary {
            name,
            model,
            weight,
            steps,
            interval,
            max_error_rate,
            max_p99_ms,
            min_requests,
        } => {
            let body = json!({
                "model": model, "weight": weight, "steps": steps, "interval_seconds": interval,
                "max_error_rate": max_error_rate, "max_p99_ms": max_p99_ms, "min_requests": min_requests,
            });
            client
                .call_following(Method::POST, &path(&name, "/canary"), Some(body))
                .await?
        }
        DeploymentsCommand::Ab {
            name,
            model,
            weight,
            sticky_header,
        } => {
            let body = json!({"model": model, "weight": weight, "sticky_header": sticky_header});
            client
                .call_following(Method::POST, &path(&name, "/ab"), Some(body))
                .await?
        }
        DeploymentsCommand::Shadow {
            name,
            model,
            percent,
        } => {
            let body = json!({"model": model, "percent": percent});
            client
                .call_following(Method::POST, &path(&name, "/shadow"), Some(body))
                .await?
        }
        DeploymentsCommand::Promote { name, arm } => {
            client
                .call_following(
                    Method::POST,
                    &path(&name, "/promote"),
                    Some(json!({"arm": arm})),
                )
                .await?
        }
        DeploymentsCommand::Rollback { name, reason } => {
            client
                .call_following(
                    Method::POST,
                    &path(&name, "/rollback"),
                    Some(json!({"reason": reason})),
                )
                .await?
        }
        DeploymentsCommand::List => client.call(Method::GET, "/deployments", &[], None).await?,
        DeploymentsCommand::Status { name } => {
            client
                .call(Method::GET, &path(&name, "/status"), &[], None)
                .await?
        }
        DeploymentsCommand::History { name } => {
            client
                .call(Method::GET, &path(&name, "/history"), &[], None)
                .await?
        }
        DeploymentsCommand::Delete { name } => {
            client
                .call(Method::DELETE, &path(&name, ""), &[], None)
                .await?
        }
        DeploymentsCommand::Image { name, output, tag } => {
            let server = client.remote_server();
            crate::image::write_image(&server, &name, &output, tag.as_deref()).await?;
            return Ok(());
        }
    };
    crate::client::print(&strip_nulls(value));
    Ok(())
}

fn strip_nulls(value: Value) -> Value {
    match value {
        Value::Object(map) => Value::Object(
            map.into_iter()
                .filter(|(_, v)| !v.is_null())
                .map(|(k, v)| (k, strip_nulls(v)))
                .collect(),
        ),
        Value::Array(items) => Value::Array(items.into_iter().map(strip_nulls).collect()),
        other => other,
    }
}

/// `NAME@ALIAS`, `NAME/VERSION` or `NAME/latest`, resolved through the
/// server's MLflow registry API.
pub async fn resolve_remote_model(server: &RemoteServer, text: &str) -> anyhow::Result<ModelRef> {
    let text = text.strip_prefix("models:/").unwrap_or(text);
    let get = |path: &str, query: Vec<(&str, String)>| {
        let request = server.get(&format!("/api/2.0/mlflow/{path}")).query(&query);
        async move {
            let response = request.send().await.context("cannot reach the server")?;
            let status = response.status();
            let body: Value = response.json().await.unwrap_or(Value::Null);
            if !status.is_success() {
                bail!(
                    "the server answered {status}: {}",
                    body["message"].as_str().unwrap_or("")
                );
            }
            Ok::<Value, anyhow::Error>(body)
        }
    };
    let (name, alias, version) = if let Some((name, alias)) = text.rsplit_once('@') {
        let body = get(
            "registered-models/alias",
            vec![("name", name.into()), ("alias", alias.into())],
        )
        .await?;
        (
            name,
            Some(alias.to_string()),
            body["model_version"]["version"]
                .as_str()
                .unwrap_or("")
                .to_string(),
        )
    } else if let Some((name, "latest")) = text.rsplit_once('/') {
        let body = get(
            "registered-models/get-latest-versions",
            vec![("name", name.into())],
        )
        .await?;
        let latest = body["model_versions"]
            .as_array()
            .into_iter()
            .flatten()
            .filter_map(|v| v["version"].as_str().and_then(|s| s.parse::<i64>().ok()))
            .max()
            .with_context(|| format!("registered model '{name}' has no versions"))?;
        (name, None, latest.to_string())
    } else if let Some((name, version)) = text.rsplit_once('/') {
        (name, None, version.to_string())
    } else {
        bail!("invalid model '{text}': use NAME@ALIAS, NAME/VERSION or NAME/latest");
    };
    let version = version
        .parse()
        .with_context(|| format!("invalid model version '{version}' in '{text}'"))?;
    Ok(ModelRef {
        name: name.to_string(),
        version,
        alias,
    })
}

#[derive(Args)]
pub struct ServeArgs {
    /// A deployment to serve (repeat for several).
    #[arg(long = "deployment", required = true)]
    deployments: Vec<String>,
    /// Serve from a bundle directory (a container image's) instead of following a server.
    #[arg(long, env = "SEXTANT_BUNDLE")]
    bundle: Option<PathBuf>,
    /// Address to listen on (loopback by default; a network address behind a load balancer).
    #[arg(long, default_value = "127.0.0.1", env = "SEXTANT_HOST")]
    host: String,
    /// Port to listen on.
    #[arg(long, short = 'p', default_value_t = 8080, env = "SEXTANT_PORT")]
    port: u16,
    /// Where model files are unpacked (default: $XDG_CACHE_HOME/sextant).
    #[arg(long, env = "SEXTANT_CACHE_DIR")]
    cache_dir: Option<PathBuf>,
    /// How often to check the server for changes, in seconds.
    #[arg(long, default_value_t = 2.0)]
    poll_seconds: f64,
    /// Where the prediction log goes: `server` (uploaded to the followed server, the default), a directory, or `off`.
    #[arg(long, env = "SEXTANT_PREDICTION_LOG")]
    prediction_log: Option<String>,
    #[command(flatten)]
    python: crate::PythonArgs,
    /// Let every caller through without asking the server whether it may
    /// invoke the deployment (for replicas behind a gateway that does).
    #[arg(long)]
    no_caller_auth: bool,
    /// Share of monitored predictions explained (SHAP) in the background;
    /// each replica's global importance and explanation drift are on its
    /// `/metrics`. 0 turns it off.
    #[arg(long, default_value_t = sextant_server::serving::explain::DEFAULT_SAMPLE_RATE, env = "SEXTANT_EXPLAIN_SAMPLE_RATE")]
    explain_sample_rate: f64,
    /// Share of one core the background explainer may use.
    #[arg(long, default_value_t = sextant_server::serving::explain::DEFAULT_CORE_SHARE, env = "SEXTANT_EXPLAIN_CPU_SHARE")]
    explain_cpu_share: f64,
    #[command(flatten)]
    origin: crate::OriginArgs,
    #[command(flatten)]
    connections: crate::ConnectionArgs,
}

pub async fn serve(connection: &Connection, args: ServeArgs) -> anyhow::Result<()> {
    let cache_dir = args
        .cache_dir
        .clone()
        .unwrap_or_else(crate::default_cache_dir);
    let replica = format!(
        "{}-{}",
        std::env::var("HOSTNAME")
            .ok()
            .filter(|h| !h.is_empty())
            .unwrap_or_else(|| "replica".into()),
        std::process::id()
    );
    let (source, default_log) = match &args.bundle {
        Some(dir) => (
            Source::Bundle { dir: dir.clone() },
            LogSink::Directory(cache_dir.join("predictions")),
        ),
        None => {
            let server = Client::new(connection)?.remote_server();
            (Source::Remote(server.clone()), LogSink::Server(server))
        }
    };
    let sink = match args.prediction_log.as_deref() {
        None => default_log,
        Some("server") if args.bundle.is_none() => default_log,
        Some("off") => LogSink::Disabled,
        Some("server") => bail!("--prediction-log server needs a server to follow (no --bundle)"),
        Some(dir) => LogSink::Directory(PathBuf::from(dir)),
    };
    let config = ServingConfig {
        cache_dir: cache_dir.clone(),
        python: args.python.setup(&cache_dir),
        max_blocking: 64,
        replica_name: replica.clone(),
        feedback_index_rows: sextant_server::serving::feedback::DEFAULT_INDEX_ROWS,
        explain_sample_rate: args.explain_sample_rate,
        explain_core_share: args.explain_cpu_share,
    };
    let serving = Serving::new(config, source, PredictionLogConfig::new(sink, replica));
    let address = crate::socket_address(&args.host, args.port)?;
    let listener = tokio::net::TcpListener::bind(address)
        .await
        .with_context(|| format!("while binding {address}"))?;
    // Every deployment loads before the first poll returns; readiness
    // (/v2/health/ready) says when.
    let poll = Duration::from_secs_f64(args.poll_seconds.max(0.1));
    let follower = serving.clone();
    let names = args.deployments.clone();
    let stopped = serving.stopped();
    serving.spawn(async move {
        for name in &names {
            match follower.source().deployment(name).await {
                Ok((revision, spec)) => {
                    if let Err(err) = follower.apply(name, revision, &spec).await {
                        tracing::error!(deployment = name, error = %err, "cannot serve deployment");
                    }
                }
                Err(err) => {
                    tracing::error!(deployment = name, error = %err, "cannot fetch deployment")
                }
            }
        }
        follower.set_booted();
        sextant_server::serving::controller::follow(follower, names, poll, stopped).await;
    });
    tracing::info!(address = %format!("http://{address}"), deployments = ?args.deployments, "sextant serve is listening");
    let app =
        sextant_server::serving_router(serving.clone(), !args.no_caller_auth, args.origin.policy());
    let served = sextant_server::serve_app(
        listener,
        app,
        crate::shutdown_signal(),
        args.connections.limits(),
    )
    .await;
    serving.shutdown().await;
    served.context("while serving")?;
    tracing::info!("sextant serve stopped");
    Ok(())
}
