//! `sextant explain`: SHAP values of every row of a Parquet or CSV file,
//! written as Parquet (or CSV). Rows are cut into chunks explained on every
//! core; each chunk is explained by the engine's exact method (TreeSHAP for
//! tree ensembles, Linear SHAP for linear models) or KernelSHAP.

use std::path::PathBuf;
use std::sync::Arc;
use std::time::Instant;

use anyhow::{bail, Context};
use sextant_serve::explain::Method;
use sextant_serve::model::Layout;
use sextant_serve::{Background, ExplainOptions, Explanation, NamedTensor, Tensor, TensorData};

use crate::batch;

#[derive(clap::Args)]
pub struct ExplainArgs {
    /// The model: NAME@ALIAS, NAME/VERSION or NAME/latest (registered on
    /// the server), or a local MLflow model directory.
    #[arg(long)]
    model: String,
    /// Rows to explain: a .parquet or .csv file with a header.
    #[arg(long)]
    input: PathBuf,
    /// Where the values go: .parquet (default) or .csv. One column per
    /// feature (`shap_<feature>`, with `[<output>]` for several outputs),
    /// plus `base_value` and `prediction`.
    #[arg(long)]
    output: PathBuf,
    /// tree_path_dependent, tree_interventional, linear or kernel (default:
    /// the engine's exact method, else kernel).
    #[arg(long)]
    method: Option<String>,
    /// Background rows (.parquet or .csv) for the interventional methods and
    /// KernelSHAP.
    #[arg(long)]
    background: Option<PathBuf>,
    /// At most this many background rows, evenly spaced through the file.
    #[arg(long, default_value_t = 100)]
    background_rows: usize,
    /// KernelSHAP: coalitions per row (default 2·M + 2048, as shap).
    #[arg(long)]
    samples: Option<usize>,
    /// KernelSHAP: the sampler's seed.
    #[arg(long, default_value_t = 0)]
    seed: u64,
    /// Rows per chunk (at most; fewer when there are not enough rows for
    /// every thread).
    #[arg(long, default_value_t = 256)]
    chunk_rows: usize,
    /// Worker threads (default: every core).
    #[arg(long)]
    threads: Option<usize>,
    /// Also the SHAP interaction values (path-dependent TreeSHAP, linear
    /// models): a column `shap_<a>*<b>` per pair of features a ≤ b in
    /// order (`shap_<a>*<a>` the main effect; Φ is symmetric, and each
    /// feature's row of Φ sums to its SHAP value).
    #[arg(long)]
    interactions: bool,
    /// Where downloaded models are kept.
    #[arg(long, env = "SEXTANT_CACHE_DIR")]
    cache_dir: Option<PathBuf>,
}

pub async fn explain(
    connection: &crate::client::Connection,
    args: ExplainArgs,
) -> anyhow::Result<()> {
    let started = Instant::now();
    let model_dir = batch::model_dir(connection, &args.model, args.cache_dir.as_deref()).await?;
    let input = args.input.clone();
    let columns = tokio::task::spawn_blocking(move || batch::read_columns(&input)).await??;
    let rows = columns.first().map_or(0, |c| c.tensor.rows());
    let background = match &args.background {
        Some(path) => {
            let all = batch::read_columns(path)?;
            Some(Background::new(evenly_spaced(
                &all,
                args.background_rows.max(1),
            )))
        }
        None => None,
    };
    let options = ExplainOptions {
        method: args.method.as_deref().map(Method::parse).transpose()?,
        background,
        samples: args.samples,
        seed: args.seed,
        max_model_rows: None,
        interactions: args.interactions,
    };
    let load = batch::load_options(args.cache_dir.as_deref());
    let threads = args
        .threads
        .unwrap_or_else(|| std::thread::available_parallelism().map_or(1, |n| n.get()));
    // Small inputs are split so that every thread has rows (KernelSHAP
    // spends seconds on a hundred rows).
    let chunk_rows = args
        .chunk_rows
        .clamp(1, rows.div_ceil(threads.max(1)).max(1));
    let output = args.output.clone();
    let summary = tokio::task::spawn_blocking(move || -> anyhow::Result<String> {
        let loaded = sextant_serve::mlflow::load_model_dir(&model_dir, &load)
            .map_err(|e| anyhow::anyhow!(e))
            .with_context(|| format!("while loading {}", model_dir.display()))?;
        let model = Arc::new(loaded.model);
        let explaining = Instant::now();
        let explanation = explain_chunks(&model, &columns, &options, rows, chunk_rows, threads)?;
        let seconds = explaining.elapsed().as_secs_f64();
        batch::write_outputs(&output, &explanation_columns(&explanation))?;
        Ok(format!(
            "{rows} rows explained by {} ({} values, {} space) in {seconds:.3} s \
             ({:.3} ms per row on {threads} threads); additivity error {:.2e}{}",
            explanation.method.name(),
            explanation.method.value_function(),
            explanation.output_space.name(),
            seconds * 1e3 / rows.max(1) as f64,
            explanation.additivity_error(),
            explanation
                .background_hash
                .as_deref()
                .map(|h| format!("; background {h}"))
                .unwrap_or_default(),
        ))
    })
    .await??;
    eprintln!(
        "sextant: {summary}; {:.2} s in all -> {}",
        started.elapsed().as_secs_f64(),
        args.output.display()
    );
    Ok(())
}

/// At most `limit` rows of `columns`, evenly spaced (all of them when there
/// are fewer), so that a sorted file still gives a representative sample.
fn evenly_spaced(columns: &[NamedTensor], limit: usize) -> Vec<NamedTensor> {
    let rows = columns.first().map_or(0, |c| c.tensor.rows());
    if rows <= limit {
        return columns.to_vec();
    }
    let picked: Vec<usize> = (0..limit).map(|i| i * rows / limit).collect();
    columns
        .iter()
        .map(|column| {
            let parts: Vec<NamedTensor> = picked
                .iter()
                .map(|&row| batch::slice_rows(column, row, row + 1))
                .collect();
            concatenate(parts)
        })
        .collect()
}

fn concatenate(parts: Vec<NamedTensor>) -> NamedTensor {
    let mut iter = parts.into_iter();
    let mut first = iter.next().expect("at least one part");
    for part in iter {
        let appended = first.tensor.append(part.tensor);
        debug_assert!(appended, "rows of one column share a type");
    }
    first
}

/// Explains every chunk of `rows`, `threads` chunks at a time, and joins
/// the explanations in order.
fn explain_chunks(
    model: &sextant_serve::Model,
    columns: &[NamedTensor],
    options: &ExplainOptions,
    rows: usize,
    chunk_rows: usize,
    threads: usize,
) -> anyhow::Result<Explanation> {
    let chunks: Vec<(usize, usize)> = (0..rows)
        .step_by(chunk_rows)
        .map(|start| (start, (start + chunk_rows).min(rows)))
        .collect();
    if chunks.is_empty() {
        bail!("the input has no rows");
    }
    let next = std::sync::atomic::AtomicUsize::new(0);
    let mut results: Vec<Option<anyhow::Result<Explanation>>> =
        (0..chunks.len()).map(|_| None).collect();
    let slots = std::sync::Mutex::new(&mut results);
    std::thread::scope(|scope| {
        for _ in 0..threads.max(1).min(chunks.len()) {
            scope.spawn(|| loop {
                let index = next.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
                let Some(&(start, end)) = chunks.get(index) else {
                    break;
                };
                let inputs = columns
                    .iter()
                    .map(|c| batch::slice_rows(c, start, end))
                    .collect();
                let result = model
                    .explain(inputs, Layout::Columns, options)
                    .map_err(|e| anyhow::anyhow!("rows {start}..{end}: {e}"));
                slots.lock().expect("results lock")[index] = Some(result);
            });
        }
    });
    let mut joined: Option<Explanation> = None;
    for result in results {
        let part = result.expect("every chunk ran")?;
        match &mut joined {
            None => joined = Some(part),
            Some(all) => {
                all.rows += part.rows;
                all.values.extend(part.values);
                all.predictions.extend(part.predictions);
                if let (Some(all), Some(part)) = (&mut all.interactions, part.interactions) {
                    all.extend(part);
                }
            }
        }
    }
    Ok(joined.expect("at least one chunk"))
}

/// The explanation as output columns.
fn explanation_columns(explanation: &Explanation) -> Vec<NamedTensor> {
    let (m, k) = (explanation.features.len(), explanation.outputs.len());
    let suffix = |o: usize| {
        if k == 1 {
            String::new()
        } else {
            format!("[{}]", explanation.outputs[o])
        }
    };
    let column = |name: String, values: Vec<f64>| {
        NamedTensor::new(name, Tensor::column(TensorData::F64(values)))
    };
    let mut columns = Vec::with_capacity(m * k + 2 * k);
    for (f, feature) in explanation.features.iter().enumerate() {
        for o in 0..k {
            let values = (0..explanation.rows)
                .map(|row| explanation.value(row, f, o))
                .collect();
            columns.push(column(format!("shap_{feature}{}", suffix(o)), values));
        }
    }
    if explanation.interactions.is_some() {
        for (a, first) in explanation.features.iter().enumerate() {
            for (b, second) in explanation.features.iter().enumerate().skip(a) {
                for o in 0..k {
                    let values = (0..explanation.rows)
                        .map(|row| explanation.interaction(row, a, b, o).unwrap_or(f64::NAN))
                        .collect();
                    columns.push(column(
                        format!("shap_{first}*{second}{}", suffix(o)),
                        values,
                    ));
                }
            }
        }
    }
    for o in 0..k {
        columns.push(column(
            format!("base_value{}", suffix(o)),
            vec![explanation.base_values[o]; explanation.rows],
        ));
        columns.push(column(
            format!("prediction{}", suffix(o)),
            (0..explanation.rows)
                .map(|row| explanation.predictions[row * k + o])
                .collect(),
        ));
    }
    columns
}
