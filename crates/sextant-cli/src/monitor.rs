//! `sextant drift` and `sextant estimate`: a drift report, and performance
//! estimated without labels, on files, computed locally.

use std::io::Write;
use std::path::PathBuf;

use anyhow::Context;
use std::collections::HashMap;

use sextant_monitor::dataset::Table;
use sextant_monitor::drift::{self, DriftOptions, MethodSet};
use sextant_monitor::live::{DriftPartial, FeatureKind, MonitorConfig, ReferenceProfile};

#[derive(clap::Args)]
pub struct DriftArgs {
    /// The reference data (what the model was trained or validated on): .csv or .parquet.
    #[arg(required_unless_present = "merge")]
    reference: Option<PathBuf>,
    /// The data to compare with it: .csv or .parquet; with --partial, also a
    /// directory of them, on disk or object storage (s3://bucket/prefix/).
    #[arg(required_unless_present = "merge")]
    current: Option<String>,
    /// Count only share I of N of the current data (0 ≤ I < N) into a
    /// partial (--partial), for N processes to share the work; `--merge`
    /// sums the partials into one report.
    #[arg(long, value_parser = crate::input::parse_partition, value_name = "I/N", requires = "partial")]
    partition: Option<crate::input::Partition>,
    /// Write a partial instead of a report: the current data's counts in the
    /// reference's buckets, to merge with the other parts' (--merge).
    #[arg(long, value_name = "FILE", conflicts_with = "merge")]
    partial: Option<PathBuf>,
    /// Merge partials (files, or directories of .json partials) into one
    /// report of the whole data: the live monitor's comparison (PSI,
    /// Jensen-Shannon, chi-square on the reference's buckets), as JSON.
    #[arg(long, num_args = 1.., value_name = "PARTIAL")]
    merge: Vec<PathBuf>,
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

pub async fn drift(args: DriftArgs) -> anyhow::Result<()> {
    if !args.merge.is_empty() {
        return tokio::task::spawn_blocking(move || merge_partials(&args)).await?;
    }
    if args.partial.is_some() {
        return write_partial(args).await;
    }
    tokio::task::spawn_blocking(move || full_report(args)).await?
}

/// `drift REFERENCE CURRENT`: every column's two-sample comparison.
fn full_report(args: DriftArgs) -> anyhow::Result<()> {
    let (Some(reference), Some(current)) = (&args.reference, &args.current) else {
        anyhow::bail!("drift needs REFERENCE and CURRENT (or --merge)");
    };
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
    let reference = Table::open(reference)?;
    let current = Table::open(std::path::Path::new(current))?;
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

/// `drift --partial`: this share's counts in the reference's buckets.
async fn write_partial(args: DriftArgs) -> anyhow::Result<()> {
    let (Some(reference), Some(current), Some(out)) = (args.reference, args.current, args.partial)
    else {
        anyhow::bail!("--partial needs REFERENCE and CURRENT");
    };
    let input = crate::input::select_input(&current, args.partition).await?;
    let mut kinds = HashMap::new();
    for (names, kind) in [
        (&args.numerical, FeatureKind::Numerical),
        (&args.categorical, FeatureKind::Categorical),
    ] {
        for name in names {
            if kinds.insert(name.clone(), kind).is_some() {
                anyhow::bail!("column '{name}' is given as both numerical and categorical");
            }
        }
    }
    let part = args.partition.map(|p| [p.index, p.count]);
    let (columns, prediction) = (args.columns, args.prediction);
    tokio::task::spawn_blocking(move || -> anyhow::Result<()> {
        let reference = Table::open(&reference)?;
        let profile = ReferenceProfile::from_table_with_kinds(
            &reference,
            columns.as_deref(),
            prediction.as_deref(),
            &kinds,
        )?;
        let mut partial = DriftPartial::new(profile, part);
        let tables = input
            .files
            .iter()
            .map(|file| Table::open(file))
            .collect::<Result<Vec<_>, _>>()?;
        // A share of rows is taken over the files as one table.
        let total: usize = tables.iter().map(Table::rows).sum();
        let wanted = input.rows.map_or(0..total, |p| p.range(total));
        let mut start = 0;
        for table in &tables {
            let here = start..start + table.rows();
            let (from, to) = (wanted.start.max(here.start), wanted.end.min(here.end));
            if from < to {
                partial.add_rows(table, from - start..to - start)?;
            }
            start = here.end;
        }
        let json = serde_json::to_string(&partial)?;
        std::fs::write(&out, json).with_context(|| format!("cannot write {}", out.display()))?;
        eprintln!("{} rows counted into {}", partial.rows(), out.display());
        Ok(())
    })
    .await?
}

/// `drift --merge`: the partials summed and compared with the reference.
fn merge_partials(args: &DriftArgs) -> anyhow::Result<()> {
    if args.format != "json" {
        anyhow::bail!("--merge writes JSON only (the live monitor's report)");
    }
    let mut files = Vec::new();
    for path in &args.merge {
        if path.is_dir() {
            let mut inside: Vec<PathBuf> = std::fs::read_dir(path)
                .with_context(|| format!("while listing {}", path.display()))?
                .filter_map(|entry| entry.ok().map(|e| e.path()))
                .filter(|file| file.extension().is_some_and(|e| e == "json"))
                .collect();
            inside.sort();
            files.extend(inside);
        } else {
            files.push(path.clone());
        }
    }
    let parts = files
        .iter()
        .map(|file| -> anyhow::Result<DriftPartial> {
            let text = std::fs::read_to_string(file)
                .with_context(|| format!("cannot read {}", file.display()))?;
            serde_json::from_str(&text)
                .with_context(|| format!("{} is not a drift partial", file.display()))
        })
        .collect::<anyhow::Result<Vec<_>>>()?;
    let merged = DriftPartial::merge(parts)?;
    let report = merged.report(&MonitorConfig::default());
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
    if args.fail_on_drift && report.drift_share >= args.drift_share && report.drifted_features > 0 {
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
