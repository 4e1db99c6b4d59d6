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
    let path = format!("{}/tests/golden/{name}.json", env!("CARGO_MANIFEST_DIR"));
    let text = std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("reading {path}: {e}"));
    serde_json::from_str(&text).unwrap_or_else(|e| panic!("parsing {path}: {e}"))
}
