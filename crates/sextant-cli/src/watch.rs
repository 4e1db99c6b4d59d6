//! `sextant monitoring`, `sextant alerts` and `sextant retrain`: a
//! deployment's live monitoring, ground-truth feedback, realised
//! performance, alert rules and retraining trigger, through the server's
//! `/api/v1` routes (the same ones `docs/MONITORING.md` shows with curl).

use std::path::{Path, PathBuf};

use anyhow::{bail, Context};
use clap::Subcommand;
use reqwest::Method;
use serde_json::{json, Value};

use crate::client::{print, Client, Connection};

/// Labels in one feedback request: the server takes at most 10,000.
const LABELS_PER_REQUEST: usize = 10_000;

#[derive(Subcommand)]
pub enum MonitoringCommand {
    /// Drift of every feature and of the prediction, missing values and outliers, per model version.
    Report {
        /// The deployment's name.
        name: String,
        /// How far back: `30m`, `1h`, `1d` (default 1h).
        #[arg(long)]
        span: Option<String>,
    },
    /// The same figures window by window, for trends.
    Windows {
        /// The deployment's name.
        name: String,
        /// How far back: `30m`, `1h`, `1d` (default 1h).
        #[arg(long)]
        span: Option<String>,
    },
    /// Callers flagged for abuse or model extraction.
    Abuse {
        /// The deployment's name.
        name: String,
    },
    /// Realised performance from the labels sent back, with label coverage, and estimated performance without them.
    Performance {
        /// The deployment's name.
        name: String,
        /// How far back: `30m`, `6h`, `7d` (default 1d).
        #[arg(long)]
        span: Option<String>,
        /// Window width: `5m`, `1h`, `1d` (default: about 24 windows).
        #[arg(long)]
        window: Option<String>,
        /// `classification` or `regression` (default: inferred).
        #[arg(long)]
        task: Option<String>,
    },
    /// Send ground truth for served predictions: a CSV with `prediction_id,label` columns, or JSON labels.
    Feedback {
        /// The deployment's name.
        name: String,
        /// A CSV (`prediction_id,label`) or JSON file (`[{"prediction_id": …, "label": …}]`); `-` for standard input.
        #[arg(long, conflicts_with_all = ["prediction_id", "label"], required_unless_present = "prediction_id")]
        file: Option<PathBuf>,
        /// One prediction's id, as its answer gave it (`parameters.prediction_id`, `prediction_id`, or the `x-sextant-prediction-id` header).
        #[arg(long, requires = "label")]
        prediction_id: Option<String>,
        /// The true label of that prediction.
        #[arg(long, requires = "prediction_id")]
        label: Option<String>,
    },
    /// Set the reference the live traffic is compared with, from a CSV or Parquet file.
    Reference {
        /// The deployment's name.
        name: String,
        /// The reference table: .csv or .parquet.
        #[arg(long)]
        file: PathBuf,
        /// Feature columns, comma-separated (default: every column but the prediction).
        #[arg(long)]
        features: Option<String>,
        /// The model's output column in the table, for prediction drift.
        #[arg(long)]
        prediction: Option<String>,
    },
}

#[derive(Subcommand)]
pub enum AlertsCommand {
    /// Alert rules with what is firing: of one deployment, or of every deployment you may see.
    List {
        /// Only this deployment's rules.
        #[arg(long)]
        deployment: Option<String>,
    },
    /// Create or replace a rule, e.g. `{"metric": "feature_drift_share", "op": ">", "threshold": 0.3}`.
    Set {
        /// The deployment's name.
        name: String,
        /// The rule's name.
        rule: String,
        /// The rule as JSON, or `@FILE` to read it from a file.
        #[arg(long)]
        json: String,
    },
    /// Delete a rule.
    Delete {
        /// The deployment's name.
        name: String,
        /// The rule's name.
        rule: String,
    },
    /// Evaluate a deployment's rules now instead of at the next tick.
    Evaluate {
        /// The deployment's name.
        name: String,
    },
    /// The metrics rules can watch, with their current values.
    Metrics {
        /// The deployment's name.
        name: String,
    },
}

#[derive(Subcommand)]
pub enum RetrainCommand {
    /// A deployment's retraining trigger and its recent runs.
    Show {
        /// The deployment's name.
        name: String,
    },
    /// Create or replace the trigger (a command or webhook, and the alerts that start it).
    Set {
        /// The deployment's name.
        name: String,
        /// The trigger as JSON, or `@FILE` to read it from a file.
        #[arg(long)]
        json: String,
    },
    /// Remove the trigger.
    Delete {
        /// The deployment's name.
        name: String,
    },
    /// Start a retraining run now.
    Run {
        /// The deployment's name.
        name: String,
        /// Why, recorded with the run.
        #[arg(long)]
        reason: Option<String>,
    },
}

fn deployment(name: &str, rest: &str) -> String {
    format!("/deployments/{name}{rest}")
}

fn query(pairs: &[(&'static str, &Option<String>)]) -> Vec<(&'static str, String)> {
    pairs
        .iter()
        .filter_map(|(key, value)| value.as_ref().map(|v| (*key, v.clone())))
        .collect()
}

/// JSON given on the command line, or `@FILE`.
fn json_argument(text: &str) -> anyhow::Result<Value> {
    let text = match text.strip_prefix('@') {
        Some(path) => {
            std::fs::read_to_string(path).with_context(|| format!("cannot read {path}"))?
        }
        None => text.to_string(),
    };
    serde_json::from_str(&text).context("not valid JSON")
}

pub async fn monitoring(connection: &Connection, command: MonitoringCommand) -> anyhow::Result<()> {
    let client = Client::new(connection)?;
    let value = match command {
        MonitoringCommand::Report { name, span } => {
            let query = query(&[("span", &span)]);
            client
                .call(Method::GET, &deployment(&name, "/monitoring"), &query, None)
                .await?
        }
        MonitoringCommand::Windows { name, span } => {
            let query = query(&[("span", &span)]);
            client
                .call(
                    Method::GET,
                    &deployment(&name, "/monitoring/windows"),
                    &query,
                    None,
                )
                .await?
        }
        MonitoringCommand::Abuse { name } => {
            client
                .call(
                    Method::GET,
                    &deployment(&name, "/monitoring/abuse"),
                    &[],
                    None,
                )
                .await?
        }
        MonitoringCommand::Performance {
            name,
            span,
            window,
            task,
        } => {
            let query = query(&[("span", &span), ("window", &window), ("task", &task)]);
            client
                .call(
                    Method::GET,
                    &deployment(&name, "/performance"),
                    &query,
                    None,
                )
                .await?
        }
        MonitoringCommand::Feedback {
            name,
            file,
            prediction_id,
            label,
        } => {
            let labels = match (file, prediction_id, label) {
                (Some(file), _, _) => read_labels(&file)?,
                (None, Some(id), Some(label)) => {
                    vec![json!({"prediction_id": id, "label": typed(&label)})]
                }
                _ => bail!("give --file, or --prediction-id with --label"),
            };
            let mut summary = Vec::new();
            for chunk in labels.chunks(LABELS_PER_REQUEST) {
                let body = json!({ "labels": chunk });
                summary.push(
                    client
                        .call(
                            Method::POST,
                            &deployment(&name, "/feedback"),
                            &[],
                            Some(body),
                        )
                        .await?,
                );
            }
            if summary.len() == 1 {
                summary.remove(0)
            } else {
                Value::Array(summary)
            }
        }
        MonitoringCommand::Reference {
            name,
            file,
            features,
            prediction,
        } => {
            let bytes =
                std::fs::read(&file).with_context(|| format!("cannot read {}", file.display()))?;
            let query = query(&[("features", &features), ("prediction", &prediction)]);
            client
                .call_with_bytes(
                    Method::PUT,
                    &deployment(&name, "/monitoring/reference"),
                    &query,
                    bytes,
                )
                .await?
        }
    };
    print(&value);
    Ok(())
}

pub async fn alerts(connection: &Connection, command: AlertsCommand) -> anyhow::Result<()> {
    let client = Client::new(connection)?;
    let value = match command {
        AlertsCommand::List { deployment: None } => {
            client.call(Method::GET, "/alerts", &[], None).await?
        }
        AlertsCommand::List {
            deployment: Some(name),
        } => {
            client
                .call(Method::GET, &deployment(&name, "/alerts"), &[], None)
                .await?
        }
        AlertsCommand::Set { name, rule, json } => {
            let body = json_argument(&json)?;
            client
                .call(
                    Method::PUT,
                    &deployment(&name, &format!("/alerts/{rule}")),
                    &[],
                    Some(body),
                )
                .await?
        }
        AlertsCommand::Delete { name, rule } => {
            client
                .call(
                    Method::DELETE,
                    &deployment(&name, &format!("/alerts/{rule}")),
                    &[],
                    None,
                )
                .await?
        }
        AlertsCommand::Evaluate { name } => {
            client
                .call(
                    Method::POST,
                    &deployment(&name, "/alerts/evaluate"),
                    &[],
                    None,
                )
                .await?
        }
        AlertsCommand::Metrics { name } => {
            client
                .call(
                    Method::GET,
                    &deployment(&name, "/alerts/metrics"),
                    &[],
                    None,
                )
                .await?
        }
    };
    print(&value);
    Ok(())
}

pub async fn retrain(connection: &Connection, command: RetrainCommand) -> anyhow::Result<()> {
    let client = Client::new(connection)?;
    let value = match command {
        RetrainCommand::Show { name } => {
            client
                .call(
                    Method::GET,
                    &deployment(&name, "/retrain-trigger"),
                    &[],
                    None,
                )
                .await?
        }
        RetrainCommand::Set { name, json } => {
            let body = json_argument(&json)?;
            client
                .call(
                    Method::PUT,
                    &deployment(&name, "/retrain-trigger"),
                    &[],
                    Some(body),
                )
                .await?
        }
        RetrainCommand::Delete { name } => {
            client
                .call(
                    Method::DELETE,
                    &deployment(&name, "/retrain-trigger"),
                    &[],
                    None,
                )
                .await?
        }
        RetrainCommand::Run { name, reason } => {
            let body = json!({ "reason": reason });
            client
                .call(
                    Method::POST,
                    &deployment(&name, "/retrain"),
                    &[],
                    Some(body),
                )
                .await?
        }
    };
    print(&value);
    Ok(())
}

/// A label as JSON: a number when it reads as one (`1`, `0.5`), `true` or
/// `false`, else the text (`"scam"`).
fn typed(text: &str) -> Value {
    if let Ok(number) = text.parse::<i64>() {
        return json!(number);
    }
    if let Ok(number) = text.parse::<f64>() {
        if number.is_finite() {
            return json!(number);
        }
    }
    match text {
        "true" => json!(true),
        "false" => json!(false),
        _ => json!(text),
    }
}

/// Labels from a JSON file (an array, or `{"labels": […]}`) or a CSV file
/// with `prediction_id` and `label` columns.
fn read_labels(path: &Path) -> anyhow::Result<Vec<Value>> {
    let text = if path.as_os_str() == "-" {
        std::io::read_to_string(std::io::stdin())?
    } else {
        std::fs::read_to_string(path).with_context(|| format!("cannot read {}", path.display()))?
    };
    let trimmed = text.trim_start();
    if trimmed.starts_with('[') || trimmed.starts_with('{') {
        return match serde_json::from_str::<Value>(trimmed).context("not valid JSON")? {
            Value::Array(items) => Ok(items),
            Value::Object(mut object) => match object.remove("labels") {
                Some(Value::Array(items)) => Ok(items),
                _ => Ok(vec![Value::Object(object)]),
            },
            _ => bail!("the JSON is an array of labels or {{\"labels\": […]}}"),
        };
    }
    let mut reader = csv::Reader::from_reader(text.as_bytes());
    let headers = reader.headers()?.clone();
    let column = |name: &str| {
        headers
            .iter()
            .position(|h| h.trim() == name)
            .with_context(|| {
                format!(
                    "the CSV has no `{name}` column (it has: {})",
                    headers.iter().collect::<Vec<_>>().join(", ")
                )
            })
    };
    let (id_column, label_column) = (column("prediction_id")?, column("label")?);
    let mut labels = Vec::new();
    for (line, record) in reader.records().enumerate() {
        let record = record.with_context(|| format!("CSV row {}", line + 2))?;
        let id = record.get(id_column).unwrap_or_default().trim();
        let label = record.get(label_column).unwrap_or_default().trim();
        labels.push(json!({ "prediction_id": id, "label": typed(label) }));
    }
    Ok(labels)
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::{read_labels, typed};

    #[test]
    fn labels_keep_their_type() {
        assert_eq!(typed("1"), json!(1));
        assert_eq!(typed("0.25"), json!(0.25));
        assert_eq!(typed("true"), json!(true));
        assert_eq!(typed("scam"), json!("scam"));
        assert_eq!(typed("NaN"), json!("NaN"));
    }

    #[test]
    fn labels_come_from_csv_or_json_files() {
        let dir = tempfile::tempdir().unwrap();
        let csv = dir.path().join("labels.csv");
        std::fs::write(&csv, "label,prediction_id\n1,a\nscam, b \n").unwrap();
        assert_eq!(
            read_labels(&csv).unwrap(),
            vec![
                json!({"prediction_id": "a", "label": 1}),
                json!({"prediction_id": "b", "label": "scam"})
            ]
        );
        let wrapped = dir.path().join("labels.json");
        std::fs::write(
            &wrapped,
            r#"{"labels": [{"prediction_id": "a", "label": 0}]}"#,
        )
        .unwrap();
        assert_eq!(
            read_labels(&wrapped).unwrap(),
            vec![json!({"prediction_id": "a", "label": 0})]
        );
        let bad = dir.path().join("bad.csv");
        std::fs::write(&bad, "id,truth\nx,1\n").unwrap();
        let err = read_labels(&bad).unwrap_err().to_string();
        assert!(err.contains("no `prediction_id` column"), "{err}");
    }
}
