//! Weak-slice search: the segments of a test set where a metric falls
//! furthest below its overall value, found rather than listed by hand
//! (Deepchecks' weak segments, Giskard's slicing, SliceFinder).
//!
//! Each feature is cut into cells: one per category, `bins` quantile bins
//! for a number, and one for its missing values. The cells of one feature
//! are judged, then the intersections of two features' cells. Overlapping
//! findings are merged before they are reported:
//! - adjacent weak bins of one number become one range, judged again;
//! - an intersection is reported only when neither of its two cells is
//!   weak by itself (the larger segment already says it).
//!
//! The search is exhaustive within those cells, so its cost is the number
//! of cells squared per pair of features, each a pass over its rows.

use std::collections::BTreeMap;

use sextant_monitor::dataset::ColumnValues;

use crate::frame::Frame;

/// At most this many cells per feature: a text column with more values
/// is refused (its cells would be too small to judge).
pub(crate) const MAX_CELLS: usize = 50;

/// A set of rows described by conditions on features.
#[derive(Debug, Clone)]
pub(crate) struct Segment {
    pub name: String,
    pub rows: Vec<usize>,
}

/// One feature's cells, in order (a number's bins ascending, then its
/// missing values).
struct Feature {
    name: String,
    cells: Vec<Cell>,
}

struct Cell {
    condition: Condition,
    rows: Vec<usize>,
}

#[derive(Clone)]
enum Condition {
    Is(String),
    Missing,
    /// `low <= x < high`, or `low <= x <= high` for the last bin.
    Range {
        low: f64,
        high: f64,
        last: bool,
    },
}

impl Condition {
    fn describe(&self, feature: &str) -> String {
        match self {
            Condition::Is(value) => format!("{feature}={value}"),
            Condition::Missing => format!("{feature} is missing"),
            Condition::Range { low, high, .. } if low == high => {
                format!("{feature}={}", number(*low))
            }
            Condition::Range { low, high, last } => {
                let close = if *last { "]" } else { ")" };
                format!("{feature} in [{}, {}{close}", number(*low), number(*high))
            }
        }
    }
}

fn number(x: f64) -> String {
    let text = format!("{x:.6}");
    let text = text.trim_end_matches('0').trim_end_matches('.');
    if text.is_empty() || text == "-" {
        "0".into()
    } else {
        text.into()
    }
}

/// What the search is asked.
pub(crate) struct Search<'a> {
    pub features: &'a [String],
    pub bins: usize,
    pub depth: usize,
    pub min_support: usize,
}

/// The outcome: the weak segments (merged, largest shortfall first) and
/// how many segments were judged.
pub(crate) struct Found {
    pub weak: Vec<(Segment, f64, f64)>,
    pub judged: usize,
}

impl Search<'_> {
    /// Searches `frame` with `shortfall(rows)`: how far the metric on those
    /// rows falls short of the overall value (positive is worse), or None
    /// when it is undefined there. A segment is weak when its shortfall
    /// exceeds `max_gap`.
    pub(crate) fn run(
        &self,
        frame: &Frame,
        max_gap: f64,
        shortfall: impl Fn(&[usize]) -> Option<(f64, f64)>,
    ) -> Result<Found, String> {
        let features = self
            .features
            .iter()
            .map(|name| self.cells(frame, name))
            .collect::<Result<Vec<_>, _>>()?;
        let mut judged = 0usize;
        let mut judge = |rows: &[usize]| -> Option<(f64, f64)> {
            if rows.len() < self.min_support.max(1) {
                return None;
            }
            judged += 1;
            shortfall(rows)
        };
        let mut weak = Vec::new();
        // weak_cells[f][c]: cell c of feature f is weak by itself (or lies
        // in a weak merged range).
        let mut weak_cells: Vec<Vec<bool>> = Vec::with_capacity(features.len());
        for feature in &features {
            let mut flags = vec![false; feature.cells.len()];
            let verdicts: Vec<Option<(f64, f64)>> =
                feature.cells.iter().map(|c| judge(&c.rows)).collect();
            let is_weak = |k: usize| verdicts[k].is_some_and(|(gap, _)| gap > max_gap);
            let mut k = 0;
            while k < feature.cells.len() {
                if !is_weak(k) {
                    k += 1;
                    continue;
                }
                // A run of adjacent weak bins of a number is one finding.
                let is_range =
                    |k: usize| matches!(feature.cells[k].condition, Condition::Range { .. });
                let mut end = k + 1;
                while is_range(k) && end < feature.cells.len() && is_weak(end) && is_range(end) {
                    end += 1;
                }
                flags[k..end].iter_mut().for_each(|f| *f = true);
                if end - k == 1 {
                    let (gap, value) = verdicts[k].expect("weak");
                    weak.push((
                        Segment {
                            name: feature.cells[k].condition.describe(&feature.name),
                            rows: feature.cells[k].rows.clone(),
                        },
                        gap,
                        value,
                    ));
                } else {
                    let merged = merge_ranges(&feature.cells[k..end]);
                    let mut rows: Vec<usize> = feature.cells[k..end]
                        .iter()
                        .flat_map(|c| c.rows.iter().copied())
                        .collect();
                    rows.sort_unstable();
                    if let Some((gap, value)) = judge(&rows) {
                        weak.push((
                            Segment {
                                name: merged.describe(&feature.name),
                                rows,
                            },
                            gap,
                            value,
                        ));
                    }
                }
                k = end;
            }
            weak_cells.push(flags);
        }
        if self.depth >= 2 {
            for f in 0..features.len() {
                for g in (f + 1)..features.len() {
                    for (c, cell_f) in features[f].cells.iter().enumerate() {
                        if weak_cells[f][c] || cell_f.rows.len() < self.min_support {
                            continue;
                        }
                        for (d, cell_g) in features[g].cells.iter().enumerate() {
                            if weak_cells[g][d] || cell_g.rows.len() < self.min_support {
                                continue;
                            }
                            let rows = intersect(&cell_f.rows, &cell_g.rows);
                            if let Some((gap, value)) = judge(&rows) {
                                if gap > max_gap {
                                    let name = format!(
                                        "{} and {}",
                                        cell_f.condition.describe(&features[f].name),
                                        cell_g.condition.describe(&features[g].name)
                                    );
                                    weak.push((Segment { name, rows }, gap, value));
                                }
                            }
                        }
                    }
                }
            }
        }
        // Largest shortfall in rows first: what costs the most errors.
        weak.sort_by(|(a, gap_a, _), (b, gap_b, _)| {
            (gap_b * b.rows.len() as f64).total_cmp(&(gap_a * a.rows.len() as f64))
        });
        Ok(Found { weak, judged })
    }

    fn cells(&self, frame: &Frame, name: &str) -> Result<Feature, String> {
        let column = frame.column(name)?;
        let cells = match column {
            ColumnValues::Numeric { values, .. } => numeric_cells(values, self.bins),
            ColumnValues::Strings { codes, dictionary } => {
                let mut by_code: BTreeMap<u32, Vec<usize>> = BTreeMap::new();
                for (row, &code) in codes.iter().enumerate() {
                    by_code.entry(code).or_default().push(row);
                }
                by_code
                    .into_iter()
                    .map(|(code, rows)| Cell {
                        condition: match dictionary.get(code as usize) {
                            Some(label) => Condition::Is(label.clone()),
                            None => Condition::Missing,
                        },
                        rows,
                    })
                    .collect()
            }
            ColumnValues::Boolean { codes } => [0u32, 1]
                .into_iter()
                .map(|code| Cell {
                    condition: Condition::Is(if code == 1 { "True" } else { "False" }.into()),
                    rows: (0..codes.len()).filter(|&i| codes[i] == code).collect(),
                })
                .filter(|cell| !cell.rows.is_empty())
                .collect(),
            ColumnValues::Unsupported { type_name, .. } => {
                return Err(format!(
                    "column '{name}' is of type {type_name}, which weak-slice search cannot cut"
                ))
            }
        };
        if cells.len() > MAX_CELLS {
            return Err(format!(
                "column '{name}' has {} values (at most {MAX_CELLS} are searched); \
                 search a coarser column or list slices by hand",
                cells.len()
            ));
        }
        Ok(Feature {
            name: name.to_string(),
            cells,
        })
    }
}

/// `bins` bins between quantiles of the present values (edges that
/// coincide, as in a column of few distinct numbers, collapse), then the
/// missing values. A number with at most `bins` distinct values gets one
/// cell per value instead.
fn numeric_cells(values: &[f64], bins: usize) -> Vec<Cell> {
    let mut present: Vec<f64> = values.iter().copied().filter(|v| !v.is_nan()).collect();
    present.sort_unstable_by(f64::total_cmp);
    let mut cells = Vec::new();
    let mut distinct = present.clone();
    distinct.dedup();
    if distinct.len() <= bins {
        for value in distinct {
            cells.push(Cell {
                condition: Condition::Range {
                    low: value,
                    high: value,
                    last: true,
                },
                rows: (0..values.len()).filter(|&i| values[i] == value).collect(),
            });
        }
    } else {
        // Edges at the k/bins quantiles (lower order statistic), so each
        // bin holds about 1/bins of the rows unless values repeat.
        let mut edges: Vec<f64> = (0..=bins)
            .map(|k| present[(k * (present.len() - 1)) / bins])
            .collect();
        edges.dedup();
        let last_bin = edges.len() - 2;
        for (k, pair) in edges.windows(2).enumerate() {
            let (low, high, last) = (pair[0], pair[1], k == last_bin);
            cells.push(Cell {
                condition: Condition::Range { low, high, last },
                rows: (0..values.len())
                    .filter(|&i| {
                        values[i] >= low && (values[i] < high || (last && values[i] <= high))
                    })
                    .collect(),
            });
        }
    }
    let missing: Vec<usize> = (0..values.len()).filter(|&i| values[i].is_nan()).collect();
    if !missing.is_empty() {
        cells.push(Cell {
            condition: Condition::Missing,
            rows: missing,
        });
    }
    cells
}

/// The range adjacent bins cover together.
fn merge_ranges(cells: &[Cell]) -> Condition {
    let bounds = |c: &Cell| match c.condition {
        Condition::Range { low, high, last } => (low, high, last),
        _ => unreachable!("only ranges merge"),
    };
    let (low, _, _) = bounds(&cells[0]);
    let (_, high, last) = bounds(&cells[cells.len() - 1]);
    Condition::Range { low, high, last }
}

/// Rows in both sorted lists.
fn intersect(a: &[usize], b: &[usize]) -> Vec<usize> {
    let (mut i, mut j, mut out) = (0, 0, Vec::new());
    while i < a.len() && j < b.len() {
        match a[i].cmp(&b[j]) {
            std::cmp::Ordering::Less => i += 1,
            std::cmp::Ordering::Greater => j += 1,
            std::cmp::Ordering::Equal => {
                out.push(a[i]);
                i += 1;
                j += 1;
            }
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use super::*;

    fn frame(columns: Vec<(&str, ColumnValues)>) -> Frame {
        let (names, values): (Vec<_>, Vec<_>) = columns
            .into_iter()
            .map(|(n, c)| (n.to_string(), Arc::new(c)))
            .unzip();
        Frame::new(names, values)
    }

    fn strings(labels: &[&str], rows: impl Fn(usize) -> usize, n: usize) -> ColumnValues {
        ColumnValues::Strings {
            codes: (0..n).map(|i| rows(i) as u32).collect(),
            dictionary: labels.iter().map(|s| s.to_string()).collect(),
        }
    }

    /// Errors concentrated in region=south and, independently, in ages
    /// from 60 up; plus a pocket only where plan=b meets region=east. The
    /// search reports the two broad segments (the age bins merged into one
    /// range) and the pocket, and nothing inside the broad ones.
    #[test]
    fn finds_merges_and_keeps_the_most_general_segments() {
        let n = 4000;
        let region = |i: usize| i % 4; // north, south, east, west
        let plan = |i: usize| (i / 4) % 2; // a, b
        let age: Vec<f64> = (0..n).map(|i| 20.0 + (i * 7 % 60) as f64).collect();
        let wrong: Vec<bool> = (0..n)
            .map(|i| {
                region(i) == 1 || age[i] >= 60.0 || (plan(i) == 1 && region(i) == 2 && i % 3 != 0)
            })
            .collect();
        let frame = frame(vec![
            (
                "region",
                strings(&["north", "south", "east", "west"], region, n),
            ),
            ("plan", strings(&["a", "b"], plan, n)),
            (
                "age",
                ColumnValues::Numeric {
                    values: age.clone(),
                    integer: true,
                },
            ),
        ]);
        let overall = wrong.iter().filter(|&&w| !w).count() as f64 / n as f64;
        let accuracy = |rows: &[usize]| {
            let right = rows.iter().filter(|&&i| !wrong[i]).count() as f64;
            Some((
                overall - right / rows.len() as f64,
                right / rows.len() as f64,
            ))
        };
        let features = ["region".to_string(), "plan".to_string(), "age".to_string()];
        let search = Search {
            features: &features,
            bins: 6,
            depth: 2,
            min_support: 30,
        };
        let found = search.run(&frame, 0.1, accuracy).unwrap();
        let names: Vec<&str> = found.weak.iter().map(|(s, _, _)| s.name.as_str()).collect();
        assert!(names.contains(&"region=south"), "{names:?}");
        assert!(names.contains(&"region=east and plan=b"), "{names:?}");
        let age_ranges: Vec<&&str> = names.iter().filter(|n| n.starts_with("age in")).collect();
        assert_eq!(age_ranges.len(), 1, "adjacent weak bins merge: {names:?}");
        for (segment, _, _) in found
            .weak
            .iter()
            .filter(|(s, _, _)| s.name.starts_with("age"))
        {
            assert!(
                segment.rows.iter().all(|&i| age[i] >= 50.0),
                "{}",
                segment.name
            );
        }
        // Nothing inside a weak segment is reported again.
        assert!(
            !names.iter().any(|n| n.contains("region=south and")),
            "{names:?}"
        );
        assert!(found.judged > 10);
    }

    #[test]
    fn a_column_with_too_many_values_is_refused() {
        let n = 200;
        let labels: Vec<String> = (0..n).map(|i| format!("v{i}")).collect();
        let labels: Vec<&str> = labels.iter().map(String::as_str).collect();
        let frame = frame(vec![("id", strings(&labels, |i| i, n))]);
        let features = ["id".to_string()];
        let search = Search {
            features: &features,
            bins: 4,
            depth: 1,
            min_support: 1,
        };
        let error = search.run(&frame, 0.1, |_| Some((0.0, 1.0))).err().unwrap();
        assert!(error.contains("'id' has 200 values"), "{error}");
    }
}
