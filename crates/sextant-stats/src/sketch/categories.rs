//! Counts of a categorical column over a fixed reference vocabulary.
//!
//! Drift on a categorical compares the live share of each reference
//! category, plus the share of categories the reference never saw, with
//! the reference's shares. Counting is exact and merges by addition; the
//! unseen values themselves are summarised by a bounded [`FrequentItems`]
//! so an alert can name the new categories without unbounded memory.

use std::collections::HashMap;

use serde::{Deserialize, Serialize};

use super::frequent::FrequentItems;
use super::hash::MapBuildHasher;
use super::histogram::shares_of;
use super::MergeError;

/// Default number of unseen values whose counts are tracked.
pub const DEFAULT_UNSEEN_CAPACITY: usize = 32;

/// The reference's categories in a fixed order, with a hash index.
/// Duplicates are dropped (first occurrence kept).
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(from = "Vec<String>", into = "Vec<String>")]
pub struct CategoryVocabulary {
    categories: Vec<String>,
    index: HashMap<String, u32, MapBuildHasher>,
}

impl CategoryVocabulary {
    pub fn new<I, S>(categories: I) -> Self
    where
        I: IntoIterator<Item = S>,
        S: Into<String>,
    {
        let mut vocabulary = Self {
            categories: Vec::new(),
            index: HashMap::with_hasher(MapBuildHasher),
        };
        for category in categories {
            let category = category.into();
            if !vocabulary.index.contains_key(&category) {
                vocabulary
                    .index
                    .insert(category.clone(), vocabulary.categories.len() as u32);
                vocabulary.categories.push(category);
            }
        }
        vocabulary
    }

    pub fn categories(&self) -> &[String] {
        &self.categories
    }

    pub fn len(&self) -> usize {
        self.categories.len()
    }

    pub fn is_empty(&self) -> bool {
        self.categories.is_empty()
    }

    /// Position of `category`, or `None` when it is not in the reference.
    #[inline]
    pub fn index_of(&self, category: &str) -> Option<usize> {
        self.index.get(category).map(|&index| index as usize)
    }
}

impl PartialEq for CategoryVocabulary {
    fn eq(&self, other: &Self) -> bool {
        self.categories == other.categories
    }
}

impl From<Vec<String>> for CategoryVocabulary {
    fn from(categories: Vec<String>) -> Self {
        Self::new(categories)
    }
}

impl From<CategoryVocabulary> for Vec<String> {
    fn from(vocabulary: CategoryVocabulary) -> Self {
        vocabulary.categories
    }
}

/// Per-category counts over a [`CategoryVocabulary`], an `unseen` bucket,
/// a missing count, and the most frequent unseen values (SpaceSaving).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct CategoryCounts {
    vocabulary: CategoryVocabulary,
    /// `counts[i]` counts `vocabulary.categories()[i]`.
    counts: Vec<u64>,
    unseen: u64,
    missing: u64,
    unseen_values: FrequentItems,
}

impl CategoryCounts {
    /// Zero counts over `vocabulary`, tracking up to `unseen_capacity`
    /// distinct unseen values.
    pub fn new(vocabulary: CategoryVocabulary, unseen_capacity: usize) -> Self {
        let counts = vec![0; vocabulary.len()];
        Self {
            vocabulary,
            counts,
            unseen: 0,
            missing: 0,
            unseen_values: FrequentItems::new(unseen_capacity),
        }
    }

    /// Vocabulary = the distinct reference values, in first-seen order.
    pub fn from_reference<'a>(values: impl IntoIterator<Item = &'a str>) -> Self {
        Self::new(CategoryVocabulary::new(values), DEFAULT_UNSEEN_CAPACITY)
    }

    /// Counts one value. Known categories cost one hash lookup and no
    /// allocation; unseen values also update the SpaceSaving summary.
    #[inline]
    pub fn update(&mut self, value: &str) {
        match self.vocabulary.index_of(value) {
            Some(index) => self.counts[index] += 1,
            None => {
                self.unseen += 1;
                self.unseen_values.update(value);
            }
        }
    }

    /// Counts one missing value (null).
    #[inline]
    pub fn update_missing(&mut self) {
        self.missing += 1;
    }

    /// Counts `Some(value)` or a missing `None`.
    #[inline]
    pub fn update_option(&mut self, value: Option<&str>) {
        match value {
            Some(value) => self.update(value),
            None => self.update_missing(),
        }
    }

    /// Exact for the counts; SpaceSaving merge for the unseen values.
    /// Fails when the vocabularies differ.
    pub fn merge(&mut self, other: &CategoryCounts) -> Result<(), MergeError> {
        if self.vocabulary != other.vocabulary {
            return Err(MergeError::VocabulariesDiffer);
        }
        for (count, other_count) in self.counts.iter_mut().zip(&other.counts) {
            *count += other_count;
        }
        self.unseen += other.unseen;
        self.missing += other.missing;
        self.unseen_values.merge(&other.unseen_values);
        Ok(())
    }

    pub fn vocabulary(&self) -> &CategoryVocabulary {
        &self.vocabulary
    }

    /// Counts in vocabulary order.
    pub fn counts(&self) -> &[u64] {
        &self.counts
    }

    /// Count of one category; `None` when it is not in the vocabulary.
    pub fn count_of(&self, category: &str) -> Option<u64> {
        self.vocabulary
            .index_of(category)
            .map(|index| self.counts[index])
    }

    /// Values not in the vocabulary.
    pub fn unseen(&self) -> u64 {
        self.unseen
    }

    pub fn missing(&self) -> u64 {
        self.missing
    }

    /// The most frequent unseen values, with bounds on their counts.
    pub fn unseen_values(&self) -> &FrequentItems {
        &self.unseen_values
    }

    /// Non-missing values counted.
    pub fn present_total(&self) -> u64 {
        self.counts.iter().sum::<u64>() + self.unseen
    }

    /// Counts in vocabulary order followed by the unseen bucket: the
    /// buckets a categorical PSI/JS compares.
    pub fn bucket_counts(&self) -> Vec<u64> {
        let mut buckets = self.counts.clone();
        buckets.push(self.unseen);
        buckets
    }

    /// Shares of [`CategoryCounts::bucket_counts`] among non-missing
    /// values; all zeros when there are none.
    pub fn shares(&self) -> Vec<f64> {
        shares_of(&self.bucket_counts(), self.present_total())
    }

    /// Shares over the buckets followed by missing as a last bucket.
    pub fn shares_with_missing(&self) -> Vec<f64> {
        let mut buckets = self.bucket_counts();
        buckets.push(self.missing);
        shares_of(&buckets, self.present_total() + self.missing)
    }
}
