//! `sextant drift`: a drift report on two files, computed locally.

use std::collections::HashMap;
use std::io::Write;
use std::path::PathBuf;

use anyhow::Context;
use sextant_monitor::dataset::Table;
use sextant_monitor::drift::{self, ColumnType, DriftOptions, MethodSet};

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
    let mut column_types = HashMap::new();
    for name in &args.numerical {
        column_types.insert(name.clone(), ColumnType::Numerical);
    }
    for name in &args.categorical {
        if column_types
            .insert(name.clone(), ColumnType::Categorical)
            .is_some()
        {
            anyhow::bail!("column '{name}' is given as both numerical and categorical");
        }
    }
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
