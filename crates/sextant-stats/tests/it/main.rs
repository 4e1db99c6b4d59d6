//! Integration tests for sextant-stats; one module per area, each checking
//! against golden values generated from scipy by `tests/golden/*.py`.

mod cbpe;
mod change;
mod dle;
mod ks;
mod normality;
mod performance;
mod sketch;
mod tests_divergences;

/// The committed golden file `tests/golden/<name>.json`.
pub fn golden(name: &str) -> serde_json::Value {
    // The directory `cargo test` runs us in, not the one we were compiled
    // in: a binary reused from a target directory another checkout shares
    // must read this checkout's files.
    let dir =
        std::env::var("CARGO_MANIFEST_DIR").unwrap_or_else(|_| env!("CARGO_MANIFEST_DIR").into());
    let path = format!("{dir}/tests/golden/{name}.json");
    let text = std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("reading {path}: {e}"));
    serde_json::from_str(&text).unwrap_or_else(|e| panic!("parsing {path}: {e}"))
}
