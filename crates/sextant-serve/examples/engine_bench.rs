//! The in-process engine benchmark (bench/serving/engine.py runs it): how
//! long the native engine takes to predict, with no HTTP and no JSON.
//!
//! ```text
//! cargo run --release -p sextant-serve --example engine_bench -- MODEL [options]
//!
//!   MODEL                 a scikit-learn pickle (`*.pkl`, MLflow's model.pkl)
//!                         or an XGBoost model (`*.json`, `*.ubj`)
//!   --rows FILE           the rows to predict: little-endian f64, row-major,
//!                         --features per row (default: 10,000 pseudo-random rows)
//!   --features N          columns per row (default 20)
//!   --single-calls N      timed single-row calls (default 200,000)
//!   --warmup N            untimed single-row calls first (default 20,000)
//!   --batch-rows N        rows per batched measurement (default 1,000,000)
//!   --chunk N             rows per predict call when batched (default 1,000)
//!   --repeat N            batched measurements per thread count (default 5)
//!   --check-rows N        rows whose predict_proba is printed for checking (default 8)
//! ```
//!
//! Every call goes through `ModelRuntime::predict` with one FP64 tensor
//! `[rows, features]`, as the server makes it. Prints one JSON object:
//! - `single_row`: each of --single-calls calls timed alone (rows cycle
//!   through the input), nanoseconds: median, p90, p99, p99.9, mean, min;
//!   `timer_ns` is the cost of one `Instant::now()` pair, included in each;
//! - `batched`: --batch-rows rows predicted in --chunk-row calls on 1 thread
//!   and on 2 (`std::thread::scope`, calls split between the threads), rows
//!   per second of wall time; the median of --repeat measurements;
//! - `check`: `predict_proba` of the first --check-rows rows.

use std::sync::Arc;
use std::time::Instant;

use sextant_serve::{sklearn, trees, ModelRuntime, NamedTensor, Tensor, TensorData};

struct Options {
    model: String,
    rows: Option<String>,
    features: usize,
    single_calls: usize,
    warmup: usize,
    batch_rows: usize,
    chunk: usize,
    repeat: usize,
    check_rows: usize,
}

fn usage(message: &str) -> ! {
    eprintln!("engine_bench: {message}");
    eprintln!(
        "usage: engine_bench MODEL [--rows FILE] [--features N] [--single-calls N] [--warmup N] \
         [--batch-rows N] [--chunk N] [--repeat N] [--check-rows N]"
    );
    std::process::exit(2);
}

fn value(args: &mut impl Iterator<Item = String>, name: &str) -> String {
    args.next()
        .unwrap_or_else(|| usage(&format!("{name} needs a value")))
}

fn number(args: &mut impl Iterator<Item = String>, name: &str) -> usize {
    let text = value(args, name);
    text.replace('_', "")
        .parse()
        .unwrap_or_else(|_| usage(&format!("{name}: not a number: {text}")))
}

fn parse_options() -> Options {
    let mut options = Options {
        model: String::new(),
        rows: None,
        features: 20,
        single_calls: 200_000,
        warmup: 20_000,
        batch_rows: 1_000_000,
        chunk: 1_000,
        repeat: 5,
        check_rows: 8,
    };
    let mut args = std::env::args().skip(1);
    while let Some(arg) = args.next() {
        let a = &mut args;
        match arg.as_str() {
            "--rows" => options.rows = Some(value(a, "--rows")),
            "--features" => options.features = number(a, "--features"),
            "--single-calls" => options.single_calls = number(a, "--single-calls"),
            "--warmup" => options.warmup = number(a, "--warmup"),
            "--batch-rows" => options.batch_rows = number(a, "--batch-rows"),
            "--chunk" => options.chunk = number(a, "--chunk"),
            "--repeat" => options.repeat = number(a, "--repeat"),
            "--check-rows" => options.check_rows = number(a, "--check-rows"),
            other if other.starts_with("--") => usage(&format!("unknown option {other}")),
            other if options.model.is_empty() => options.model = other.to_string(),
            other => usage(&format!("unexpected argument {other}")),
        }
    }
    if options.model.is_empty() {
        usage("no model file given");
    }
    if options.features == 0
        || options.chunk == 0
        || options.single_calls == 0
        || options.repeat == 0
    {
        usage("--features, --chunk, --single-calls and --repeat must be positive");
    }
    options
}

/// The model behind the runtime interface, by file name.
fn load(path: &str) -> Arc<dyn ModelRuntime> {
    let bytes = std::fs::read(path).unwrap_or_else(|e| usage(&format!("reading {path}: {e}")));
    let result = if path.ends_with(".pkl") || path.ends_with(".pickle") {
        sklearn::from_pickle(&bytes)
    } else {
        trees::xgboost::load(&bytes)
            .and_then(trees::compile)
            .map(|ensemble| Arc::new(ensemble) as Arc<dyn ModelRuntime>)
    };
    result.unwrap_or_else(|e| {
        eprintln!("engine_bench: the native engine did not load {path}: {e}");
        std::process::exit(1);
    })
}

/// Rows from a file of f64s, or pseudo-random ones (a fixed xorshift, values
/// in [-3, 3), the scale of make_classification's features).
fn read_rows(options: &Options) -> Vec<f64> {
    match &options.rows {
        Some(path) => {
            let bytes =
                std::fs::read(path).unwrap_or_else(|e| usage(&format!("reading {path}: {e}")));
            if bytes.is_empty() || bytes.len() % (8 * options.features) != 0 {
                usage(&format!(
                    "{path}: not a whole number of {}-column f64 rows",
                    options.features
                ));
            }
            bytes
                .chunks_exact(8)
                .map(|b| f64::from_le_bytes(b.try_into().expect("8 bytes")))
                .collect()
        }
        None => {
            let mut state = 0x9E37_79B9_7F4A_7C15u64;
            (0..10_000 * options.features)
                .map(|_| {
                    state ^= state << 13;
                    state ^= state >> 7;
                    state ^= state << 17;
                    (state >> 11) as f64 / (1u64 << 53) as f64 * 6.0 - 3.0
                })
                .collect()
        }
    }
}

fn matrix(values: &[f64], features: usize) -> Vec<NamedTensor> {
    let rows = values.len() / features;
    vec![NamedTensor::new(
        "input-0",
        Tensor::f64_matrix(rows, features, values.to_vec()),
    )]
}

fn proba(outputs: &[NamedTensor]) -> Vec<f64> {
    let output = outputs
        .iter()
        .find(|o| o.name == "predict_proba")
        .unwrap_or(&outputs[0]);
    match &output.tensor.data {
        TensorData::F64(v) => v.clone(),
        TensorData::F32(v) => v.iter().map(|&x| x as f64).collect(),
        TensorData::I64(v) => v.iter().map(|&x| x as f64).collect(),
        other => panic!("unexpected output type {:?}", other.natural_dtype()),
    }
}

/// The first value of `predict_proba` (or the first output), without copying.
fn first_value(outputs: &[NamedTensor]) -> f64 {
    let output = outputs
        .iter()
        .find(|o| o.name == "predict_proba")
        .unwrap_or(&outputs[0]);
    output.tensor.data.get_f64(0).unwrap_or(0.0)
}

fn percentile(sorted: &[u64], pct: f64) -> u64 {
    let k = ((sorted.len() - 1) as f64 * pct / 100.0).round() as usize;
    sorted[k]
}

fn median(values: &[f64]) -> f64 {
    let mut sorted = values.to_vec();
    sorted.sort_by(|a, b| a.partial_cmp(b).expect("no NaN"));
    let n = sorted.len();
    if n % 2 == 1 {
        sorted[n / 2]
    } else {
        (sorted[n / 2 - 1] + sorted[n / 2]) / 2.0
    }
}

fn single_row(model: &dyn ModelRuntime, rows: &[f64], options: &Options) -> serde_json::Value {
    let features = options.features;
    // Distinct one-row inputs, cycled: the same row every time would let the
    // branch predictor learn its paths.
    let inputs: Vec<Vec<NamedTensor>> = rows
        .chunks_exact(features)
        .take(4096)
        .map(|row| matrix(row, features))
        .collect();
    for i in 0..options.warmup {
        std::hint::black_box(model.predict(&inputs[i % inputs.len()]).expect("predict"));
    }
    let mut timer = Vec::with_capacity(10_000);
    for _ in 0..10_000 {
        let t = Instant::now();
        timer.push(std::hint::black_box(t.elapsed()).as_nanos() as u64);
    }
    timer.sort_unstable();
    let mut ns = Vec::with_capacity(options.single_calls);
    let started = Instant::now();
    for i in 0..options.single_calls {
        let input = std::hint::black_box(&inputs[i % inputs.len()]);
        let t = Instant::now();
        let out = model.predict(input).expect("predict");
        let elapsed = t.elapsed();
        std::hint::black_box(out);
        ns.push(elapsed.as_nanos() as u64);
    }
    let wall = started.elapsed().as_secs_f64();
    ns.sort_unstable();
    let mean = ns.iter().sum::<u64>() as f64 / ns.len() as f64;
    serde_json::json!({
        "calls": options.single_calls,
        "warmup_calls": options.warmup,
        "distinct_rows": inputs.len(),
        "median_ns": percentile(&ns, 50.0),
        "p90_ns": percentile(&ns, 90.0),
        "p99_ns": percentile(&ns, 99.0),
        "p999_ns": percentile(&ns, 99.9),
        "mean_ns": mean.round(),
        "min_ns": ns[0],
        "max_ns": ns[ns.len() - 1],
        "timer_ns": percentile(&timer, 50.0),
        "calls_per_s_wall": (options.single_calls as f64 / wall).round(),
    })
}

fn batched(model: &dyn ModelRuntime, rows: &[f64], options: &Options) -> serde_json::Value {
    let features = options.features;
    let chunk = options.chunk.min(rows.len() / features);
    // Distinct chunks of `chunk` rows, cycled until --batch-rows rows are done.
    let chunks: Vec<Vec<NamedTensor>> = rows
        .chunks_exact(chunk * features)
        .map(|c| matrix(c, features))
        .collect();
    let calls = options.batch_rows.div_ceil(chunk);
    let total_rows = calls * chunk;
    for c in &chunks {
        std::hint::black_box(model.predict(c).expect("predict"));
    }
    let mut threads = serde_json::Map::new();
    for n_threads in [1usize, 2] {
        let mut rates = Vec::new();
        for _ in 0..options.repeat {
            let started = Instant::now();
            std::thread::scope(|scope| {
                for t in 0..n_threads {
                    let chunks = &chunks;
                    scope.spawn(move || {
                        let mut sum = 0.0;
                        for call in (t..calls).step_by(n_threads) {
                            let out = model
                                .predict(&chunks[call % chunks.len()])
                                .expect("predict");
                            sum += first_value(&out);
                        }
                        std::hint::black_box(sum);
                    });
                }
            });
            rates.push(total_rows as f64 / started.elapsed().as_secs_f64());
        }
        let rate = median(&rates);
        threads.insert(
            n_threads.to_string(),
            serde_json::json!({
                "rows_per_s": rate.round(),
                "ns_per_row": (1e9 / rate * 10.0).round() / 10.0,
                "all_rows_per_s": rates.iter().map(|r| r.round()).collect::<Vec<_>>(),
            }),
        );
    }
    serde_json::json!({
        "rows": total_rows,
        "chunk": chunk,
        "distinct_chunks": chunks.len(),
        "repeat": options.repeat,
        "threads": threads,
    })
}

fn main() {
    let options = parse_options();
    let started = Instant::now();
    let model = load(&options.model);
    let load_ms = started.elapsed().as_secs_f64() * 1e3;
    let rows = read_rows(&options);
    let info = model.info();

    let check_rows = options.check_rows.min(rows.len() / options.features);
    let check = if check_rows > 0 {
        let out = model
            .predict(&matrix(
                &rows[..check_rows * options.features],
                options.features,
            ))
            .expect("predict");
        let values = proba(&out);
        let width = values.len() / check_rows;
        serde_json::json!(values
            .chunks(width)
            .map(<[f64]>::to_vec)
            .collect::<Vec<_>>())
    } else {
        serde_json::Value::Null
    };

    let single = single_row(model.as_ref(), &rows, &options);
    let batch = batched(model.as_ref(), &rows, &options);
    let report = serde_json::json!({
        "model": options.model,
        "engine": info.engine,
        "load_ms": (load_ms * 1000.0).round() / 1000.0,
        "features": options.features,
        "input_rows": rows.len() / options.features,
        "outputs": info.outputs.iter().map(|o| o.name.clone()).collect::<Vec<_>>(),
        "single_row": single,
        "batched": batch,
        "check": {"rows": check_rows, "predict_proba": check},
        "threads_available": std::thread::available_parallelism().map(|n| n.get()).unwrap_or(1),
    });
    println!("{}", serde_json::to_string_pretty(&report).expect("json"));
}
