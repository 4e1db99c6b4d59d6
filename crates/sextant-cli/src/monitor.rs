//! `sextant drift` and `sextant estimate`: a drift report, and performance
//! estimated without labels, on files, computed locally.

use std::io::Write;
use std::path::PathBuf;

use anyhow::Context;
use sextant_monitor::dataset::Table;
use sextant_monitor::drift::{self, DriftOptions, MethodSet};

#[derive(clap::Args)]
pub struct DriftArgs {
    /// The reference data (what the model was trained or validated on): .csv or .parquet.
    reference: PathBuf,
    /// The data to compare with it: .csv or .parquet.
    current: PathBuf,
    /// `sextant`: fixed reference bins, effect sizes, corrected p-values. `evidently`: Evidently 0.7's defaults, same statistics.
    #[arg(long, default_value = "sextant")]
    methods: MethodSet,
    /// `json` (one object) or `html` (a self-contained page).
    #[arg(long, default_value = "json", value_parser = ["json", "html"])]
    format: String,
    /// Write the report here instead of standard output.
    #[arg(long, short)]
    output: Option<PathBuf>,
    /// The label column (its drift is label drift).
    #[arg(long)]
    target: Option<String>,
    /// The model's prediction column (its drift is prediction drift).
    #[arg(long)]
    prediction: Option<String>,
    /// Compare only these columns (comma-separated).
    #[arg(long, value_delimiter = ',')]
    columns: Option<Vec<String>>,
    /// Columns to treat as numerical (comma-separated), whatever their inferred type.
    #[arg(long, value_delimiter = ',')]
    numerical: Vec<String>,
    /// Columns to treat as categorical (comma-separated), whatever their inferred type.
    #[arg(long, value_delimiter = ',')]
    categorical: Vec<String>,
    /// The dataset drifts when at least this share of its columns drifted.
    #[arg(long, default_value_t = 0.5)]
    drift_share: f64,
    /// Exit with status 1 when the dataset drifts (for pipelines).
    #[arg(long)]
    fail_on_drift: bool,
    /// Worker threads (default: one per core).
    #[arg(long, default_value_t = 0)]
    threads: usize,
}

pub fn drift(args: DriftArgs) -> anyhow::Result<()> {
    let column_types =
        drift::column_types(&args.numerical, &args.categorical).map_err(anyhow::Error::msg)?;
    let options = DriftOptions {
        methods: args.methods,
        columns: args.columns,
        column_types,
        target: args.target,
        prediction: args.prediction,
        drift_share: args.drift_share,
        threads: args.threads,
    };
    let reference = Table::open(&args.reference)?;
    let current = Table::open(&args.current)?;
    let report = drift::drift_report(&reference, &current, &options)?;
    let rendered = match args.format.as_str() {
        "html" => drift::html::render(&report),
        _ => {
            let mut json = serde_json::to_string_pretty(&report)?;
            json.push('\n');
            json
        }
    };
    match &args.output {
        Some(path) => std::fs::write(path, rendered)
            .with_context(|| format!("cannot write {}", path.display()))?,
        None => {
            let mut stdout = std::io::stdout().lock();
            stdout.write_all(rendered.as_bytes())?;
            stdout.flush()?;
        }
    }
    if args.fail_on_drift && report.dataset.drift {
        std::process::exit(1);
    }
    Ok(())
}

#[derive(clap::Args)]
pub struct EstimateArgs {
    /// Labelled data the model was not trained on (.csv or .parquet): features, prediction, target.
    reference: PathBuf,
    /// The data to estimate, without labels (or with them, to compare): .csv or .parquet.
    analysis: PathBuf,
    /// The label column (in the reference; in the analysis data when known).
    #[arg(long)]
    target: String,
    /// The model's output column: a regressor's prediction (DLE), or a classifier's predicted class.
    #[arg(long)]
    prediction: Option<String>,
    /// A binary classifier's probability of the positive class (CBPE).
    #[arg(long)]
    score: Option<String>,
    /// DLE's features (comma-separated; default: every column but target and prediction).
    #[arg(long, value_delimiter = ',')]
    features: Option<Vec<String>>,
    /// Rows per chunk (default: a tenth of the analysis data).
    #[arg(long)]
    chunk_size: Option<usize>,
    /// Scores at or above this are the positive class when no --prediction is given.
    #[arg(long, default_value_t = 0.5)]
    threshold: f64,
    /// Write the report here instead of standard output.
    #[arg(long, short)]
    output: Option<PathBuf>,
    /// Exit with status 1 when a chunk alerts (for pipelines).
    #[arg(long)]
    fail_on_alert: bool,
}

pub fn estimate(args: EstimateArgs) -> anyhow::Result<()> {
    use sextant_monitor::estimate::{estimate_report, EstimateOptions};

    if args.chunk_size == Some(0) {
        anyhow::bail!("--chunk-size must be at least 1");
    }
    let options = EstimateOptions {
        target: args.target,
        prediction: args.prediction,
        score: args.score,
        features: args.features,
        chunk_size: args.chunk_size,
        threshold: args.threshold,
    };
    let reference = Table::open(&args.reference)?;
    let analysis = Table::open(&args.analysis)?;
    let report = estimate_report(&reference, &analysis, &options)?;
    let mut json = serde_json::to_string_pretty(&report)?;
    json.push('\n');
    match &args.output {
        Some(path) => std::fs::write(path, json)
            .with_context(|| format!("cannot write {}", path.display()))?,
        None => {
            let mut stdout = std::io::stdout().lock();
            stdout.write_all(json.as_bytes())?;
            stdout.flush()?;
        }
    }
    if args.fail_on_alert && report.alerts > 0 {
        std::process::exit(1);
    }
    Ok(())
}
