//! Frequent items with guaranteed bounds: SpaceSaving (Metwally, Agrawal &
//! El Abbadi, "Efficient computation of frequent and top-k elements in data
//! streams", ICDT 2005) with the merge of Agarwal, Cormode, Huang, Phillips,
//! Wei & Yi ("Mergeable summaries", PODS 2012, §3) adapted to SpaceSaving's
//! over-estimating counters.
//!
//! At most `m` counters are kept. A tracked item's counter grows with it;
//! an untracked item takes over the smallest counter, inheriting its value
//! as *error* — its true count is at most one more than that value, since
//! otherwise it would have been tracked. Every counter therefore satisfies
//! `count − error ≤ true ≤ count`, and any untracked item has a true count
//! of at most `absent_bound` (the largest counter ever evicted). On one
//! stream of `N` updates the counters sum to `N`, so the smallest is at most
//! `N/m` and every bound is within `N/m` of the truth (Metwally et al.,
//! Lemma 3.4).
//!
//! Merging adds counters item by item; an item tracked on one side only
//! may have occurred up to the other side's `absent_bound` times there, so
//! that is added to both its count and its error. The result keeps the `m`
//! largest counters; the largest dropped one joins the new `absent_bound`.
//! Bounds stay valid under any merge order. Their width after a merge is
//! at most `max(b_A + b_B, d)`, with `b_A + b_B ≤ N/m` and `d`, the largest
//! dropped counter, at most `N/(m+1) + b_A + b_B`: so at most `2N/m` after
//! one merge, and in practice (tests: 12 windows rolled up) close to `N/m`.
//!
//! Updates are O(log m) (a binary min-heap over the counters) and do not
//! allocate once the item strings have reached their longest length:
//! an evicted item's buffers are reused for its replacement.

use std::collections::HashMap;

use serde::{Deserialize, Serialize};

use super::hash::MapBuildHasher;

/// An item with its estimated count and guaranteed bounds.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ItemEstimate {
    pub item: String,
    /// SpaceSaving's estimate, equal to `upper_bound`.
    pub estimate: u64,
    pub lower_bound: u64,
    pub upper_bound: u64,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
struct Counter {
    item: String,
    /// Upper bound on the item's true count.
    count: u64,
    /// `count − error` is a lower bound on the true count.
    error: u64,
}

/// SpaceSaving summary over strings with capacity `m`.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(from = "FrequentItemsParts", into = "FrequentItemsParts")]
pub struct FrequentItems {
    capacity: usize,
    /// Total weight of all updates.
    total: u64,
    /// Upper bound on the true count of any untracked item.
    absent_bound: u64,
    /// Counter slots; a slot keeps its index for as long as it lives.
    counters: Vec<Counter>,
    /// Slot indices arranged as a binary min-heap on `count`.
    heap: Vec<u32>,
    /// `heap_position[slot]` = index of `slot` in `heap`.
    heap_position: Vec<u32>,
    /// Item → slot.
    index: HashMap<String, u32, MapBuildHasher>,
}

impl FrequentItems {
    /// Summary keeping at most `capacity` counters (at least 1). Counts of
    /// all items are then known to within `N / capacity`.
    pub fn new(capacity: usize) -> Self {
        let capacity = capacity.clamp(1, u32::MAX as usize);
        Self {
            capacity,
            total: 0,
            absent_bound: 0,
            counters: Vec::new(),
            heap: Vec::new(),
            heap_position: Vec::new(),
            index: HashMap::with_hasher(MapBuildHasher),
        }
    }

    pub fn capacity(&self) -> usize {
        self.capacity
    }

    /// Total weight of all updates, `N`.
    pub fn total(&self) -> u64 {
        self.total
    }

    /// Items currently tracked.
    pub fn len(&self) -> usize {
        self.counters.len()
    }

    pub fn is_empty(&self) -> bool {
        self.counters.is_empty()
    }

    /// Upper bound on the true count of any item not tracked.
    pub fn absent_bound(&self) -> u64 {
        self.absent_bound
    }

    /// Counts one occurrence of `item`.
    #[inline]
    pub fn update(&mut self, item: &str) {
        self.update_by(item, 1);
    }

    /// Counts `weight` occurrences of `item` (weighted SpaceSaving).
    pub fn update_by(&mut self, item: &str, weight: u64) {
        if weight == 0 {
            return;
        }
        self.total += weight;
        if let Some(&slot) = self.index.get(item) {
            self.counters[slot as usize].count += weight;
            self.sift_down(self.heap_position[slot as usize] as usize);
            return;
        }
        if self.counters.len() < self.capacity {
            let slot = self.counters.len() as u32;
            self.counters.push(Counter {
                item: item.to_owned(),
                count: self.absent_bound + weight,
                error: self.absent_bound,
            });
            self.index.insert(item.to_owned(), slot);
            self.heap.push(slot);
            self.heap_position.push(slot);
            self.sift_up(self.heap.len() - 1);
            return;
        }
        // Replace the smallest counter; the newcomer may have occurred up
        // to that many times unnoticed, which becomes its error.
        let slot = self.heap[0];
        let counter = &mut self.counters[slot as usize];
        let (mut key, _) = self
            .index
            .remove_entry(counter.item.as_str())
            .expect("every counter is indexed");
        let inherited = counter.count.max(self.absent_bound);
        self.absent_bound = inherited;
        key.clear();
        key.push_str(item);
        counter.item.clear();
        counter.item.push_str(item);
        counter.count = inherited + weight;
        counter.error = inherited;
        self.index.insert(key, slot);
        self.sift_down(0);
    }

    /// Lower bound on the true count of `item`.
    pub fn lower_bound(&self, item: &str) -> u64 {
        self.counter(item)
            .map_or(0, |counter| counter.count - counter.error)
    }

    /// Upper bound on the true count of `item` (SpaceSaving's estimate).
    pub fn upper_bound(&self, item: &str) -> u64 {
        self.counter(item)
            .map_or(self.absent_bound, |counter| counter.count)
    }

    /// SpaceSaving's estimate of `item`'s count: its upper bound.
    pub fn estimate(&self, item: &str) -> u64 {
        self.upper_bound(item)
    }

    fn counter(&self, item: &str) -> Option<&Counter> {
        self.index
            .get(item)
            .map(|&slot| &self.counters[slot as usize])
    }

    /// The `n` tracked items with the largest estimates, largest first
    /// (ties by item, so the order is deterministic).
    pub fn top(&self, n: usize) -> Vec<ItemEstimate> {
        let mut sorted: Vec<&Counter> = self.counters.iter().collect();
        sorted.sort_unstable_by(|a, b| b.count.cmp(&a.count).then_with(|| a.item.cmp(&b.item)));
        sorted
            .into_iter()
            .take(n)
            .map(|counter| ItemEstimate {
                item: counter.item.clone(),
                estimate: counter.count,
                lower_bound: counter.count - counter.error,
                upper_bound: counter.count,
            })
            .collect()
    }

    /// Absorbs `other` (see the module docs). The capacity stays this
    /// summary's.
    pub fn merge(&mut self, other: &FrequentItems) {
        if other.total == 0 {
            return;
        }
        let mut merged: HashMap<String, Counter, MapBuildHasher> =
            HashMap::with_capacity_and_hasher(self.len() + other.len(), MapBuildHasher);
        for counter in self.counters.drain(..) {
            let mut counter = counter;
            match other.counter(&counter.item) {
                Some(theirs) => {
                    counter.count += theirs.count;
                    counter.error += theirs.error;
                }
                None => {
                    counter.count += other.absent_bound;
                    counter.error += other.absent_bound;
                }
            }
            merged.insert(counter.item.clone(), counter);
        }
        for theirs in &other.counters {
            if !merged.contains_key(&theirs.item) {
                merged.insert(
                    theirs.item.clone(),
                    Counter {
                        item: theirs.item.clone(),
                        count: theirs.count + self.absent_bound,
                        error: theirs.error + self.absent_bound,
                    },
                );
            }
        }
        let mut counters: Vec<Counter> = merged.into_values().collect();
        counters.sort_unstable_by(|a, b| b.count.cmp(&a.count).then_with(|| a.item.cmp(&b.item)));
        let mut absent_bound = self.absent_bound + other.absent_bound;
        if counters.len() > self.capacity {
            absent_bound = absent_bound.max(counters[self.capacity].count);
            counters.truncate(self.capacity);
        }
        self.total += other.total;
        self.absent_bound = absent_bound;
        self.rebuild(counters);
    }

    /// Replaces the counters and rebuilds the index and heap around them.
    fn rebuild(&mut self, counters: Vec<Counter>) {
        self.index.clear();
        for (slot, counter) in counters.iter().enumerate() {
            self.index.insert(counter.item.clone(), slot as u32);
        }
        self.counters = counters;
        self.heap = (0..self.counters.len() as u32).collect();
        self.heap_position = self.heap.clone();
        for position in (0..self.heap.len() / 2).rev() {
            self.sift_down(position);
        }
    }

    fn count_at(&self, position: usize) -> u64 {
        self.counters[self.heap[position] as usize].count
    }

    fn swap_heap(&mut self, a: usize, b: usize) {
        self.heap.swap(a, b);
        self.heap_position[self.heap[a] as usize] = a as u32;
        self.heap_position[self.heap[b] as usize] = b as u32;
    }

    fn sift_up(&mut self, mut position: usize) {
        while position > 0 {
            let parent = (position - 1) / 2;
            if self.count_at(parent) <= self.count_at(position) {
                break;
            }
            self.swap_heap(parent, position);
            position = parent;
        }
    }

    fn sift_down(&mut self, mut position: usize) {
        loop {
            let left = 2 * position + 1;
            if left >= self.heap.len() {
                break;
            }
            let right = left + 1;
            let smaller = if right < self.heap.len() && self.count_at(right) < self.count_at(left) {
                right
            } else {
                left
            };
            if self.count_at(position) <= self.count_at(smaller) {
                break;
            }
            self.swap_heap(position, smaller);
            position = smaller;
        }
    }

    fn parts(&self) -> FrequentItemsParts {
        let mut counters = self.counters.clone();
        counters.sort_unstable_by(|a, b| b.count.cmp(&a.count).then_with(|| a.item.cmp(&b.item)));
        FrequentItemsParts {
            capacity: self.capacity,
            total: self.total,
            absent_bound: self.absent_bound,
            counters,
        }
    }
}

/// Equal when they track the same counters, whatever the heap layout.
impl PartialEq for FrequentItems {
    fn eq(&self, other: &Self) -> bool {
        self.parts() == other.parts()
    }
}

/// Stored form: the counters in canonical order; index and heap are rebuilt.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
struct FrequentItemsParts {
    capacity: usize,
    total: u64,
    absent_bound: u64,
    counters: Vec<Counter>,
}

impl From<FrequentItemsParts> for FrequentItems {
    fn from(parts: FrequentItemsParts) -> Self {
        let mut summary = FrequentItems::new(parts.capacity);
        summary.total = parts.total;
        summary.absent_bound = parts.absent_bound;
        // Stored data is repaired rather than trusted: a duplicated item
        // would corrupt the index, and error > count would underflow.
        let mut counters = parts.counters;
        counters.sort_by(|a, b| a.item.cmp(&b.item).then_with(|| b.count.cmp(&a.count)));
        counters.dedup_by(|later, earlier| later.item == earlier.item);
        for counter in &mut counters {
            counter.error = counter.error.min(counter.count);
        }
        counters.sort_unstable_by(|a, b| b.count.cmp(&a.count).then_with(|| a.item.cmp(&b.item)));
        counters.truncate(summary.capacity);
        summary.rebuild(counters);
        summary
    }
}

impl From<FrequentItems> for FrequentItemsParts {
    fn from(summary: FrequentItems) -> Self {
        summary.parts()
    }
}
