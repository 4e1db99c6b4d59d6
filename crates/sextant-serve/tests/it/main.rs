//! Integration tests of the engines against fixtures made by the libraries
//! themselves: `python tests/fixtures/<area>.py OUT_DIR` writes
//! `OUT_DIR/<area>/`, and `SEXTANT_SERVE_FIXTURES=OUT_DIR` points the tests
//! at it (`scripts/test` does both).

mod explain;
mod fuzz;
mod onnx;
mod python;
mod sandbox;
mod sklearn;
mod skops;
mod tabular;
mod trees;

use std::path::PathBuf;

/// The fixture directory of `area`, or `None` (with a note) when the
/// fixtures were not generated. Under CI they must be.
pub fn fixtures_dir(area: &str) -> Option<PathBuf> {
    match std::env::var_os("SEXTANT_SERVE_FIXTURES") {
        Some(root) => {
            let dir = PathBuf::from(root).join(area);
            assert!(
                dir.is_dir(),
                "fixture directory {} is missing",
                dir.display()
            );
            Some(dir)
        }
        None if std::env::var_os("CI").is_some() => {
            panic!("SEXTANT_SERVE_FIXTURES must be set under CI")
        }
        None => {
            eprintln!("skipping: SEXTANT_SERVE_FIXTURES is not set");
            None
        }
    }
}
