//! The shared table reader timed inside a process that has already
//! started, as `bench/validation/read.py` times `pandas.read_csv` and
//! pyarrow: each line on standard input names a file; the reader reads it
//! whole (every column of a Parquet file too), drops it, and answers one
//! line: the wall seconds it took and the row count.
//!
//! ```text
//! cargo build --release -p sextant-monitor --example read_table
//! echo data.csv | target/release/examples/read_table
//! ```

use std::io::BufRead;
use std::path::Path;
use std::time::Instant;

use sextant_monitor::dataset::Table;

fn main() {
    let stdin = std::io::stdin();
    for line in stdin.lock().lines() {
        let Ok(line) = line else { break };
        let path = Path::new(line.trim());
        let started = Instant::now();
        let answer = Table::open(path).and_then(|table| {
            for name in table.column_names() {
                table.column(name)?;
            }
            Ok(table.rows())
        });
        let seconds = started.elapsed().as_secs_f64();
        match answer {
            Ok(rows) => println!("{seconds} {rows}"),
            Err(error) => println!("error {error}"),
        }
    }
}
