//! Where a long load reports what it is doing (fetching, building a Python
//! environment, starting workers, warming up), so that whoever waits for it
//! can say so instead of printing nothing for a minute.

use std::fmt;
use std::sync::Arc;

/// A sink for stage descriptions; cheap to clone. Reporting never fails
/// and never blocks on the reader.
#[derive(Clone)]
pub struct Progress(Arc<dyn Fn(&str) + Send + Sync>);

impl Progress {
    pub fn new(report: impl Fn(&str) + Send + Sync + 'static) -> Progress {
        Progress(Arc::new(report))
    }

    /// Says what happens now.
    pub fn report(&self, stage: &str) {
        (self.0)(stage)
    }
}

impl fmt::Debug for Progress {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("Progress")
    }
}

/// Reports `stage` to `progress` when there is one.
pub fn report(progress: Option<&Progress>, stage: &str) {
    if let Some(progress) = progress {
        progress.report(stage);
    }
}
