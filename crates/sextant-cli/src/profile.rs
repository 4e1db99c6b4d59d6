//! `sextant profile`: a dataset's profile (EDA) as JSON or a self-contained
//! HTML page, optionally against a second dataset.

use std::path::PathBuf;

use anyhow::Context;
use sextant_monitor::dataset::Table;
use sextant_monitor::profile::{Profile, ProfileReport};

#[derive(clap::Args)]
pub struct ProfileArgs {
    /// The data: a .csv, .tsv or .parquet file (a CSV may be compressed: .csv.gz, .csv.bz2, .csv.xz, .csv.zst, .csv.zip).
    data: PathBuf,
    /// The label column: each column's association with it.
    #[arg(long)]
    target: Option<String>,
    /// A second dataset to compare with (train against test).
    #[arg(long)]
    compare: Option<PathBuf>,
    /// json (default) or html.
    #[arg(long, default_value = "json", value_parser = ["json", "html"])]
    format: String,
    /// Write there instead of standard output.
    #[arg(long)]
    output: Option<PathBuf>,
}

pub fn profile(args: ProfileArgs) -> anyhow::Result<()> {
    let started = std::time::Instant::now();
    let read = |path: &PathBuf| -> anyhow::Result<Profile> {
        let table = Table::open(path).map_err(|e| anyhow::anyhow!(e))?;
        Profile::of(&table, args.target.as_deref()).map_err(|e| anyhow::anyhow!(e))
    };
    let profile = read(&args.data)?;
    let other = args.compare.as_ref().map(read).transpose()?;
    let compare_name = args.compare.as_ref().map(|p| p.display().to_string());
    let report = ProfileReport::new(
        &args.data.display().to_string(),
        &profile,
        other
            .as_ref()
            .zip(compare_name.as_deref())
            .map(|(p, n)| (n, p)),
    );
    let text = match args.format.as_str() {
        "html" => report.to_html(),
        _ => serde_json::to_string_pretty(&report)? + "\n",
    };
    match &args.output {
        Some(path) => std::fs::write(path, text)
            .with_context(|| format!("cannot write {}", path.display()))?,
        None => print!("{text}"),
    }
    eprintln!(
        "sextant: profiled {} rows × {} columns in {:.2} s",
        profile.rows,
        profile.columns.len(),
        started.elapsed().as_secs_f64()
    );
    Ok(())
}
