//! Metric histories kept in memory for the UI's charts.
//!
//! A chart re-reads whole histories whenever it is zoomed, smoothed or
//! opened again, and reading a million points from the store takes
//! seconds. Each history is kept with the generation its (run, metric) had
//! when it was read (`Store::metric_generations`, moved on by every write of
//! that metric in the same transaction), so a cached history is used only
//! while no point has been written since, on this server or any other on
//! the same database. The generations are read before the histories: a
//! write in between leaves a newer history under an older generation, which
//! the next read replaces, never the reverse.

use std::collections::{HashMap, VecDeque};
use std::sync::{Arc, Mutex};

use sextant_store::{Series, Store};

/// Points kept at most (24 bytes each: about 200 MB).
const MAX_POINTS: usize = 8_000_000;

#[derive(Default)]
pub struct SeriesCache {
    inner: Mutex<Inner>,
}

#[derive(Default)]
struct Inner {
    entries: HashMap<(String, String), (i64, Arc<Series>)>,
    /// Insertion order, for eviction.
    order: VecDeque<(String, String)>,
    points: usize,
}

impl SeriesCache {
    /// The `key` histories of `run_ids`, from memory where still whole and
    /// from the store otherwise. Runs without the metric are absent.
    pub async fn histories(
        &self,
        store: &Store,
        run_ids: &[String],
        key: &str,
    ) -> sextant_store::Result<HashMap<String, Arc<Series>>> {
        let generations = store.metric_generations(run_ids, key).await?;
        let generation_of = |run: &str| generations.get(run).copied().unwrap_or(0);
        let mut found = HashMap::new();
        let mut missing = Vec::new();
        {
            let inner = self.inner.lock().unwrap_or_else(|e| e.into_inner());
            for run in run_ids {
                match inner.entries.get(&(run.clone(), key.to_string())) {
                    Some((generation, series)) if *generation == generation_of(run) => {
                        found.insert(run.clone(), Arc::clone(series));
                    }
                    _ => missing.push(run.clone()),
                }
            }
        }
        if missing.is_empty() {
            return Ok(found);
        }
        let read = store.metric_series(&missing, key).await?;
        let mut inner = self.inner.lock().unwrap_or_else(|e| e.into_inner());
        for run in missing {
            // A run without points is remembered too, as an empty history.
            let series = Arc::new(read.get(&run).cloned().unwrap_or_default());
            inner.insert(
                (run.clone(), key.to_string()),
                generation_of(&run),
                Arc::clone(&series),
            );
            if !series.is_empty() {
                found.insert(run, series);
            }
        }
        Ok(found)
    }
}

impl Inner {
    fn insert(&mut self, slot: (String, String), generation: i64, series: Arc<Series>) {
        let size = series.len().max(1);
        if size > MAX_POINTS {
            return;
        }
        if let Some((_, old)) = self.entries.remove(&slot) {
            self.points -= old.len().max(1);
            self.order.retain(|s| s != &slot);
        }
        while self.points + size > MAX_POINTS {
            let Some(oldest) = self.order.pop_front() else {
                break;
            };
            if let Some((_, old)) = self.entries.remove(&oldest) {
                self.points -= old.len().max(1);
            }
        }
        self.points += size;
        self.order.push_back(slot.clone());
        self.entries.insert(slot, (generation, series));
    }
}
