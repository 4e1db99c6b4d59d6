//! Integration tests of sextant-monitor: drift reports on real files.

mod abuse;
mod alerts;
mod drift;
mod estimate;
mod evidently;
mod live;

use std::path::PathBuf;

/// Where scripts/test generated the Evidently goldens
/// (`tests/monitoring/evidently_golden.py`).
pub fn golden_dir() -> PathBuf {
    let dir = std::env::var_os("SEXTANT_DRIFT_GOLDEN")
        .map(PathBuf::from)
        .unwrap_or_else(|| {
            panic!(
                "SEXTANT_DRIFT_GOLDEN is not set: run scripts/test, or generate the goldens with \
             `python tests/monitoring/evidently_golden.py DIR` (Evidently 0.7.23, see \
             tests/monitoring/requirements.txt) and point SEXTANT_DRIFT_GOLDEN at DIR"
            )
        });
    assert!(
        dir.join("small/evidently.json").exists(),
        "no goldens in {}",
        dir.display()
    );
    dir
}
